// The tile plan of `fbcnn restore`, ported from src/fbcnn/engine/restorer.py (`tile_spans`,
// `_ramp`, `Restorer.predict_qf`) and src/fbcnn/jpeg/qf.py (`qf_tile_boxes`,
// `reading_boxes`). Keep them in step: tests/test_web_ports.py compares this plan with
// Python's for many sizes.
//
// Tiles: as few as fit, of nearly equal size, starting on the JPEG grid (16 for 4:2:0 and
// 4:2:2 colour, 8 otherwise), neighbours overlapping by OVERLAP pixels, blended with linear
// ramps. The QF fed to every tile is read, for a model that records its training patch size
// (the manifest's qf_tile), as the mean over windows of that size (QF_WINDOWS_MIN..MAX of
// them, about QF_TILE_SHARE of the image); else from QF tiles of their own size (QF_TILE),
// and an image restored in one pass reads its QF in that pass.

export const DEFAULT_TILE = 640; // engine/restorer.py DEFAULT_TILE (fbcnn restore --tile)
export const DEFAULT_OVERLAP = 32; // engine/restorer.py DEFAULT_OVERLAP
export const RAMP_EDGE = 8; // engine/restorer.py RAMP_EDGE
export const MIN_TILE = 64; // engine/restorer.py MIN_TILE: a tile side is 0 (one pass) or at least this
export const QF_TILE = 256; // jpeg/qf.py QF_TILE
export const QF_TILE_SHARE = 0.04; // jpeg/qf.py QF_TILE_SHARE
export const QF_TILES_MIN = 2; // jpeg/qf.py QF_TILES_MIN
export const QF_TILES_MAX = 16; // jpeg/qf.py QF_TILES_MAX
export const QF_WINDOWS_MIN = 8; // jpeg/qf.py QF_WINDOWS_MIN
export const QF_WINDOWS_MAX = 64; // jpeg/qf.py QF_WINDOWS_MAX

/** Why a tile side cannot be used (engine/restorer.py Restorer, fbcnn restore --tile), or null. */
export function tileProblem(tile) {
  if (!Number.isInteger(tile) || tile < 0) return `tile must be a whole number, got ${tile}`;
  if (tile > 0 && tile < MIN_TILE) return `tile must be 0 (one pass) or at least ${MIN_TILE}, got ${tile}`;
  return null;
}

/** Python's round(): to the nearest integer, halves to even. */
function pyRound(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** [start, end) spans covering [0, length): engine/restorer.py tile_spans (a RangeError
 * where it raises ValueError: a tile too small for the overlap on the grid). */
export function tileSpans(length, tile, overlap, grid) {
  if (tile <= 0 || length <= tile) return [[0, length]];
  if (tile < overlap + 2 * grid) {
    throw new RangeError(`tile ${tile} is too small for an overlap of ${overlap} on a ${grid}-pixel grid`);
  }
  let count = Math.max(2, Math.ceil((length - overlap) / (tile - overlap)));
  for (;;) {
    // interior starts rounded up to the grid where the spans fit (the first span is then
    // the longest), else to the nearest
    for (const toGrid of [Math.ceil, pyRound]) {
      const starts = [0];
      for (let i = 1; i < count; i++) starts.push(toGrid(i * (length - overlap) / count / grid) * grid);
      const ends = starts.slice(1).map((s) => s + overlap).concat([length]);
      let ok = true;
      for (let i = 0; i < count; i++) {
        if (ends[i] - starts[i] > tile || (i > 0 && starts[i] <= starts[i - 1])) ok = false;
      }
      if (ok) return starts.map((s, i) => [s, ends[i]]);
    }
    count += 1;
  }
}

/** The tiles of an h x w image, row by row: {y, x, h, w}; tile 0 means one pass. */
export function tilePlan(h, w, tile = DEFAULT_TILE, overlap = DEFAULT_OVERLAP, grid = 8) {
  const onePass = tile <= 0 || (h <= tile && w <= tile);
  const rows = onePass ? [[0, h]] : tileSpans(h, tile, overlap, grid);
  const cols = onePass ? [[0, w]] : tileSpans(w, tile, overlap, grid);
  const tiles = [];
  for (const [y0, y1] of rows) {
    for (const [x0, x1] of cols) tiles.push({ y: y0, x: x0, h: y1 - y0, w: x1 - x0 });
  }
  return tiles;
}

/** The QF tiles of an h x w image: jpeg/qf.py qf_tile_boxes, as {y, x, h, w}. */
export function qfTileBoxes(h, w, grid, side = QF_TILE, least = QF_TILES_MIN, most = QF_TILES_MAX) {
  const th = Math.min(side, h);
  const tw = Math.min(side, w);
  if (th === h && tw === w) return [{ y: 0, x: 0, h, w }];
  const wanted = pyRound(QF_TILE_SHARE * h * w / (th * tw));
  const count = Math.min(most, Math.max(least, wanted));
  const rows = Math.max(1, Math.min(pyRound(Math.sqrt(count * h / w)), count));
  const cols = Math.max(1, Math.ceil(count / rows));
  const spread = (length, size, n) => {
    if (n === 1 || length === size) return [Math.floor(Math.floor((length - size) / 2) / grid) * grid];
    const out = [];
    for (let i = 0; i < n; i++) out.push(Math.floor(Math.trunc(i * (length - size) / (n - 1)) / grid) * grid);
    return out;
  };
  const boxes = [];
  const seen = new Set();
  for (const y of spread(h, th, rows)) {
    for (const x of spread(w, tw, cols)) {
      const key = `${y},${x}`;
      if (!seen.has(key)) {
        seen.add(key);
        boxes.push({ y, x, h: th, w: tw });
      }
    }
  }
  return boxes;
}

/** Blending weights along one side of a tile (float32, as engine/restorer.py _ramp). */
export function ramp(length, overlap, atStart, atEnd) {
  const w = new Float32Array(length).fill(1);
  const n = Math.min(overlap, Math.floor(length / 2));
  if (n > 0) {
    const edge = Math.min(RAMP_EDGE, Math.floor(n / 4));
    const core = n - 2 * edge;
    for (let i = 0; i < n; i++) {
      let r = 1;
      if (i < edge) r = 0;
      else if (i < n - edge) r = Math.fround(Math.fround(i - edge + 0.5) / core);
      if (!atStart) w[i] = r;
      if (!atEnd) w[length - 1 - i] = r;
    }
  }
  return w;
}

/** engine/restorer.py Restorer.predict_qf: the global QF from the per-window readings
 * (network units, (100 - QF) / 100). */
export function meanQf(networkValues) {
  let sum = 0;
  for (const v of networkValues) sum += v;
  return 100 * (1 - sum / networkValues.length);
}
