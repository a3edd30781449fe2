// Does an image that is not a JPEG file bear JPEG compression? Decided from its pixels: a port
// of src/fbcnn/jpeg/trace.py (`detect`), same constants, same tiles, same lattice score (see
// its docstring for the method). A decoded JPEG keeps, on its 8x8 grid, DCT coefficients on
// the lattice of its quantisation steps; a never-compressed image (a screenshot, rendered
// text, a downscaled photo) has no such lattice.
//
// Tiles: every position (on multiples of 8) when there are at most TILES of them, else an
// evenly spaced grid of gy x gx positions shaped like the image (gy * gx <= TILES), with
// integer arithmetic only so that both languages pick the same tiles (trace._tiles).
// The coefficients are rounded to float32 before they are binned, as in trace.py, so both
// put them in the same bins. The lattice sums loop over the distinct value bins (numpy does
// them as a float32 matrix product): scores agree with Python's to float32 rounding.

export const TILES = 32;
export const TILE = 72; // 64 pixels of blocks at any of the 8 offsets
export const FREQUENCIES = 12;
export const MAX_STEP = 60;
export const BIN = 0.1; // distinct values: coefficients rounded to this
export const RANGE = 400; // coefficients beyond +-RANGE are left out
export const MIN_BLOCKS = 128;
export const SCORE_MIN = 400;
export const RATIO_MIN = 6;

const STEPS = MAX_STEP - 1; // q = 2..MAX_STEP

/** np.round: half to even. */
function roundHalfEven(v) {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const DCT = (() => { // trace._dct, float64: coefficients = DCT @ block @ DCT.T
  const d = new Float64Array(64);
  for (let k = 0; k < 8; k++) {
    for (let n = 0; n < 8; n++) d[k * 8 + n] = Math.cos(((2 * n + 1) * k * Math.PI) / 16) * Math.sqrt(2 / 8);
  }
  for (let n = 0; n < 8; n++) d[n] /= Math.sqrt(2);
  return d;
})();

/** trace._frequencies: [u, v] of the lowest AC coefficients in zigzag order. */
export const FREQS = (() => {
  const all = [];
  for (let u = 0; u < 8; u++) for (let v = 0; v < 8; v++) all.push([u, v]);
  const key = ([u, v]) => [u + v, (u + v) % 2 ? u : v];
  all.sort((a, b) => key(a)[0] - key(b)[0] || key(a)[1] - key(b)[1]);
  return all.slice(1, FREQUENCIES + 1);
})();

let lattice = null;

/** trace._lattice: per value bin, cos(2 pi v / q) for q = 2..MAX_STEP (float32, bin
 * major) and how many leading steps have |v| >= q / 2 (the mask is a prefix of the steps). */
function latticeTables() {
  if (lattice) return lattice;
  // np.arange(-RANGE, RANGE + BIN / 2, BIN): its length, and start + i * (second - start)
  const n = Math.ceil((RANGE + BIN / 2 - -RANGE) / BIN);
  const delta = (-RANGE + BIN) - -RANGE;
  const cosines = new Float32Array(n * STEPS);
  const limit = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = i === 0 ? -RANGE : i === 1 ? -RANGE + BIN : -RANGE + i * delta;
    let count = 0;
    for (let s = 0; s < STEPS; s++) {
      const q = s + 2;
      if (Math.abs(v) >= q / 2) {
        count = s + 1;
        cosines[i * STEPS + s] = Math.cos((2 * Math.PI * v) / q);
      }
    }
    limit[i] = count;
  }
  lattice = { cosines, limit, bins: n };
  return lattice;
}

const isqrt = (n) => {
  let r = Math.floor(Math.sqrt(n));
  while (r * r > n) r--;
  while ((r + 1) * (r + 1) <= n) r++;
  return r;
};
const div = (a, b) => Math.floor(a / b); // non-negative integers well under 2 ** 52

/** trace._tiles: the side and top-left corners [y, x] of the tiles of an h x w image. */
export function tilePositions(h, w) {
  const side = Math.min(TILE, div(Math.min(h, w), 8) * 8);
  const rows = div(h - side, 8) + 1;
  const cols = div(w - side, 8) + 1;
  let gy = rows;
  let gx = cols;
  if (rows * cols > TILES) {
    gy = Math.min(rows, TILES, Math.max(1, isqrt(div(TILES * rows, cols))));
    gx = Math.min(cols, div(TILES, gy));
    gy = Math.min(rows, div(TILES, gx));
  }
  const corners = [];
  for (let i = 0; i < gy; i++) {
    for (let j = 0; j < gx; j++) {
      corners.push([8 * div((2 * i + 1) * rows, 2 * gy), 8 * div((2 * j + 1) * cols, 2 * gx)]);
    }
  }
  return { side, corners };
}

/** trace.offset_scores: the lattice score of every grid offset (Float64Array of 64, row
 * major (dy, dx)) and the blocks each was computed on. `pixels`: uint8, h x w x channels
 * (1: grey, 3: RGB, interleaved). */
export function offsetScores(pixels, h, w, channels) {
  const { side, corners } = tilePositions(h, w);
  const n = corners.length;
  // the tiles' luma - 128 (trace.luma, float64)
  const tiles = new Float64Array(n * side * side);
  for (let t = 0; t < n; t++) {
    const [y0, x0] = corners[t];
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const p = ((y0 + y) * w + x0 + x) * channels;
        const l = channels === 1 ? pixels[p] : 0.299 * pixels[p] + 0.587 * pixels[p + 1] + 0.114 * pixels[p + 2];
        tiles[(t * side + y) * side + x] = l - 128.0;
      }
    }
  }
  const inner = side > 8 ? side - 8 : side;
  const per = div(inner, 8);
  const offsets = side > 8 ? 8 : 1;
  const blocks = n * per * per;
  const { cosines, limit, bins } = latticeTables();
  const coeffs = new Float64Array(blocks * FREQUENCIES); // one offset's, block major
  const rowsUsed = Math.max(...FREQS.map(([u]) => u)) + 1;
  const tmp = new Float64Array(rowsUsed * 8);
  const seen = new Int32Array(bins); // series stamp: a bin counted once per series
  const count = new Float64Array(STEPS);
  const total = new Float64Array(STEPS);
  const scores = new Float64Array(64);
  let series = 0;
  for (let oy = 0; oy < offsets; oy++) {
    for (let ox = 0; ox < offsets; ox++) {
      let b = 0;
      for (let t = 0; t < n; t++) {
        for (let by = 0; by < per; by++) {
          for (let bx = 0; bx < per; bx++, b++) {
            const base = (t * side + oy + 8 * by) * side + ox + 8 * bx;
            for (let u = 0; u < rowsUsed; u++) { // (DCT @ block)[u, j]
              for (let j = 0; j < 8; j++) {
                let s = 0;
                for (let i = 0; i < 8; i++) s += DCT[u * 8 + i] * tiles[base + i * side + j];
                tmp[u * 8 + j] = s;
              }
            }
            for (let f = 0; f < FREQUENCIES; f++) { // (... @ DCT.T)[u, v]
              const [u, v] = FREQS[f];
              let s = 0;
              for (let j = 0; j < 8; j++) s += tmp[u * 8 + j] * DCT[v * 8 + j];
              coeffs[b * FREQUENCIES + f] = s;
            }
          }
        }
      }
      let score = 0;
      for (let f = 0; f < FREQUENCIES; f++) {
        series++;
        count.fill(0);
        total.fill(0);
        for (let k = 0; k < blocks; k++) {
          // rounded to float32 first: a coefficient exactly on a bin's edge (integer pixels
          // make many, e.g. 0.25 at (4, 0)) then falls in the same bin whatever the order of
          // the DCT's sums (numpy's BLAS and this loop differ in the last bits)
          const bin = roundHalfEven((Math.fround(coeffs[k * FREQUENCIES + f]) + RANGE) / BIN);
          if (!(bin >= 0 && bin < bins) || seen[bin] === series) continue;
          seen[bin] = series;
          const row = bin * STEPS;
          for (let s = 0, m = limit[bin]; s < m; s++) {
            count[s] += 1;
            total[s] += cosines[row + s];
          }
        }
        let best = 0; // z >= 0; max over the steps
        for (let s = 0; s < STEPS; s++) {
          if (count[s] < 8) continue;
          const r = total[s] / count[s];
          if (r > 0) best = Math.max(best, 2 * count[s] * r * r);
        }
        score += best;
      }
      scores[oy * 8 + ox] = score;
    }
  }
  return { scores, blocks };
}

/** trace.detect: {found, offset: [dy, dx], score, median, judged}; `scores` (64) and
 * `blocks` too when judged. Images too small to judge (fewer than MIN_BLOCKS blocks at an
 * offset) are not (found is then false). */
export function detect(pixels, h, w, channels) {
  const notJudged = { found: false, offset: [0, 0], score: 0, median: 0, judged: false };
  if (Math.min(h, w) < 16 || (div(h, 8) - 1) * (div(w, 8) - 1) < MIN_BLOCKS / 2) return notJudged;
  const { scores, blocks } = offsetScores(pixels, h, w, channels);
  if (blocks < MIN_BLOCKS) return notJudged;
  let best = 0;
  for (let i = 1; i < 64; i++) if (scores[i] > scores[best]) best = i; // the first maximum
  const sorted = Float64Array.from(scores).sort();
  const median = (sorted[31] + sorted[32]) / 2;
  const top = scores[best];
  const found = top >= SCORE_MIN && top >= RATIO_MIN * Math.max(median, 1);
  return { found, offset: [Math.floor(best / 8), best % 8], score: top, median, judged: true, scores, blocks };
}
