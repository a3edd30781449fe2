// JPEG consistency, ported from src/fbcnn/jpeg/consistency.py (`project`): clamp the
// restored image's 8x8 DCT coefficients into the quantisation cells of the decoded JPEG's,
// luma at full resolution, chroma at the stored (subsampled) resolution, whose samples are
// read back from the decoded planes by undoing libjpeg's fancy-upsampling smoothing; the
// changes are made in YCbCr and carried back to RGB. Blocks cut by the border are left as
// they are. A JPEG that lost nothing but rounding (every step 1, grey or 4:4:4) gives its
// decoded pixels. Float32 as numpy, with Python's 64 x 64 matrices per table (1 / q folded
// into the forward one, so a decoded coefficient exactly on a cell's edge stays there and
// rounds half to even as in Python), and its matrix products' sums made as numpy's BLAS
// (OpenBLAS on x86-64) makes them: in float32, one product after another, each fused. The
// results then agree with Python's exactly on tests/test_web_ports.py's cases; a BLAS that
// adds in another order may make a pixel round the other way now and then (1 grey level).

const BLOCK = 8;
// consistency.STRIP, STRIP_PIXELS, MARGIN and strip_rows: Python's strips on one worker (its
// `fbcnn restore` splits them further between threads; the result is the same in strips as
// in one piece, but for rounding ties)
export const STRIP = 256; // rows projected at a time at least (a multiple of 16) ...
export const STRIP_PIXELS = 1 << 20; // ... and more rows for narrower images, up to about this many pixels
export const MARGIN = 16; // rows of context above and below a strip (a multiple of 16)

/** consistency.strip_rows: STRIP rows, or more for an image narrower than STRIP_PIXELS / STRIP. */
export function stripRows(width) {
  return Math.max(STRIP, Math.floor(Math.floor(STRIP_PIXELS / Math.max(1, width)) / 16) * 16);
}

const f32 = Math.fround;

/** np.round: half to even. */
export function roundHalfEven(v) {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// orthonormal (consistency.DCT): coefficients = DCT @ block @ DCT.T; numpy's float64 values,
// written out (Math.cos may differ from numpy's cos in the last bit, and then a float32
// entry of the folded matrices below might too)
const DCT = Float64Array.from([
  0.35355339059327373, 0.35355339059327373, 0.35355339059327373, 0.35355339059327373,
  0.35355339059327373, 0.35355339059327373, 0.35355339059327373, 0.35355339059327373,
  0.4903926402016152, 0.4157348061512726, 0.27778511650980114, 0.09754516100806417,
  -0.0975451610080641, -0.277785116509801, -0.4157348061512727, -0.4903926402016152,
  0.46193976625564337, 0.19134171618254492, -0.19134171618254486, -0.46193976625564337,
  -0.4619397662556434, -0.19134171618254517, 0.191341716182545, 0.46193976625564326,
  0.4157348061512726, -0.0975451610080641, -0.4903926402016152, -0.2777851165098011,
  0.2777851165098009, 0.4903926402016153, 0.09754516100806396, -0.4157348061512721,
  0.3535533905932738, -0.35355339059327373, -0.35355339059327384, 0.3535533905932737,
  0.35355339059327384, -0.35355339059327334, -0.35355339059327356, 0.3535533905932733,
  0.27778511650980114, -0.4903926402016152, 0.09754516100806415, 0.41573480615127273,
  -0.41573480615127256, -0.09754516100806489, 0.49039264020161516, -0.27778511650980076,
  0.19134171618254492, -0.4619397662556434, 0.46193976625564326, -0.19134171618254495,
  -0.19134171618254528, 0.4619397662556437, -0.46193976625564354, 0.19134171618254314,
  0.09754516100806417, -0.2777851165098011, 0.41573480615127273, -0.4903926402016153,
  0.4903926402016152, -0.415734806151272, 0.2777851165098022, -0.09754516100806254,
]);

const transforms = new Map(); // table (as a string) -> consistency._block_transforms

/** consistency._block_transforms: {forward, inverse}, 64 x 64 Float32Arrays (row-major)
 * for blocks flattened row-major: `block @ forward` are the coefficients in units of the
 * steps (c / q): forward[n][k] = f32(dct2[k][n] / q[k]); `units @ inverse` the
 * pixels: inverse[k][n] = f32(q[k] * dct2[k][n]); dct2 = kron(DCT, DCT) in float64. */
function blockTransforms(table) {
  const key = Array.from(table).join(",");
  let made = transforms.get(key);
  if (made) return made;
  const forward = new Float32Array(64 * 64);
  const inverse = new Float32Array(64 * 64);
  for (let k = 0; k < 64; k++) {
    const q = table[k];
    for (let n = 0; n < 64; n++) {
      const dct2 = DCT[(k >> 3) * 8 + (n >> 3)] * DCT[(k & 7) * 8 + (n & 7)];
      forward[n * 64 + k] = dct2 / q; // rounded to float32 as stored
      inverse[k * 64 + n] = q * dct2;
    }
  }
  made = { forward, inverse };
  if (transforms.size >= 16) transforms.delete(transforms.keys().next().value);
  transforms.set(key, made);
  return made;
}

// JFIF RGB <-> YCbCr (full range), as consistency._TO_YCC / _FROM_YCC (then float32)
const TO_YCC64 = [
  [0.299, 0.587, 0.114],
  [-0.168735892, -0.331264108, 0.5],
  [0.5, -0.418687589, -0.081312411],
];
function inverse3(m) {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  return [
    [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
    [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
    [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
  ];
}
const TO_YCC = TO_YCC64.map((row) => row.map(f32));
const FROM_YCC = inverse3(TO_YCC64).map((row) => row.map(f32));
// consistency._TO_Y32 (RGB -> Y), _TO_CBCR32 (RGB -> Cb, Cr less 128), _FROM_CBCR32 (Cb, Cr
// changes -> RGB changes: FROM_YCC's chroma columns)
const TO_Y = TO_YCC[0];
const TO_CBCR = [TO_YCC[1], TO_YCC[2]];
const FROM_CBCR = [1, 2].map((j) => FROM_YCC.map((row) => row[j]));

/** a m[0] + b m[1] + c m[2] in float32, added in order, each product fused (as BLAS). */
const dot3 = (m, a, b, c) => f32(f32(f32(m[0] * a) + m[1] * b) + m[2] * c);

/** consistency._correction: what the projection adds to the plane `restored` (Float32Array
 * h x w): the change that clamps the DCT coefficients of each whole 8x8 block into the
 * cells of `decoded`'s under `table` (zero outside the whole blocks). In units of the
 * steps: k = round(c / q) of the decoded block, the restored one's offset t from it clamped
 * to [-1/2, 1/2]. */
export function correction(restored, decoded, h, w, table) {
  const change = new Float32Array(h * w);
  const bh = Math.floor(h / BLOCK) * BLOCK;
  const bw = Math.floor(w / BLOCK) * BLOCK;
  if (bh === 0 || bw === 0) return change;
  const { forward, inverse } = blockTransforms(table);
  const bd = new Float32Array(64);
  const br = new Float32Array(64);
  const kd = new Float32Array(64); // float32 accumulators: each sum rounded as it grows
  const kr = new Float32Array(64);
  const moved = new Float32Array(64);
  const px = new Float32Array(64);
  const nonzero = new Int32Array(64);
  for (let by = 0; by < bh; by += BLOCK) {
    for (let bx = 0; bx < bw; bx += BLOCK) {
      for (let r = 0; r < 8; r++) {
        for (let c = 0; c < 8; c++) {
          const i = (by + r) * w + bx + c;
          bd[r * 8 + c] = decoded[i] - 128;
          br[r * 8 + c] = restored[i] - 128;
        }
      }
      kd.fill(0);
      kr.fill(0);
      for (let n = 0; n < 64; n++) { // block @ forward, products added in order (fused)
        const d = bd[n];
        const r = br[n];
        const row = n * 64;
        for (let k = 0; k < 64; k++) {
          const f = forward[row + k];
          kd[k] += d * f;
          kr[k] += r * f;
        }
      }
      let count = 0;
      for (let k = 0; k < 64; k++) {
        const offset = f32(kr[k] - roundHalfEven(kd[k]));
        const m = f32(Math.min(0.5, Math.max(-0.5, offset)) - offset);
        moved[k] = m;
        if (m !== 0) nonzero[count++] = k;
      }
      if (count === 0) continue; // nothing moved: no change
      px.fill(0);
      for (let j = 0; j < count; j++) { // moved @ inverse, in order (the zeros add nothing)
        const k = nonzero[j];
        const m = moved[k];
        const row = k * 64;
        for (let n = 0; n < 64; n++) px[n] += m * inverse[row + n];
      }
      for (let r = 0; r < 8; r++) {
        for (let c = 0; c < 8; c++) change[(by + r) * w + bx + c] = px[r * 8 + c];
      }
    }
  }
  return change;
}

function chromaFactors(subsampling) {
  return { "4:2:0": [2, 2], "4:2:2": [1, 2] }[subsampling] ?? [1, 1];
}

/** consistency._undo_fancy_smoothing: solve (s[i-1] + 6 s[i] + s[i+1]) / 8 = means[i]
 * along an axis (0: rows, 1: columns; edges replicated), 12 Jacobi iterations, float32 in
 * Python's order. */
function undoFancySmoothing(means, h, w, axis, iterations = 12) {
  const n = axis === 0 ? h : w;
  if (n < 2) return means;
  const m6 = means.map((v) => f32(v * f32(8 / 6)));
  let s = m6.map((v) => f32(v * f32(6 / 8)));
  let next = new Float32Array(s.length);
  const stride = axis === 0 ? w : 1;
  const sixth = f32(1 / 6);
  for (let it = 0; it < iterations; it++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        const pos = axis === 0 ? y : x;
        let around;
        if (pos === 0) around = f32(s[i] + s[i + stride]);
        else if (pos === n - 1) around = f32(s[i - stride] + s[i]);
        else around = f32(s[i - stride] + s[i + stride]);
        next[i] = f32(m6[i] - f32(around * sixth));
      }
    }
    [s, next] = [next, s];
  }
  return s;
}

/** consistency._project_piece: the restored piece (Uint8Array h x w x c, c = 1 or 3) made
 * consistent with `decoded`. */
function projectPiece(restored, decoded, h, w, c, tables) {
  const n = h * w;
  const r = Float32Array.from(restored);
  if (c === 1 || !tables.chroma) { // grey JPEG: project the mean level
    const rg = new Float32Array(n);
    const dg = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let sr = 0;
      let sd = 0;
      for (let k = 0; k < c; k++) {
        sr += restored[i * c + k];
        sd += decoded[i * c + k];
      }
      rg[i] = f32(sr / c);
      dg[i] = f32(sd / c);
    }
    const change = correction(rg, dg, h, w, tables.luma);
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < c; k++) r[i * c + k] = f32(r[i * c + k] + change[i]);
    }
    return roundedUint8(r);
  }
  const [fy, fx] = chromaFactors(tables.subsampling);
  const hs = Math.floor(h / fy);
  const ws = Math.floor(w / fx);
  // _down (fy x fx cell means, RGB) @ _TO_CBCR32 + 128: the chroma planes at the stored size
  const smallChroma = (src) => {
    const planes = [new Float32Array(hs * ws), new Float32Array(hs * ws)];
    const scale = f32(1 / (fy * fx));
    const rgb = [0, 0, 0];
    for (let y = 0; y < hs; y++) {
      for (let x = 0; x < ws; x++) {
        for (let k = 0; k < 3; k++) {
          let s = 0;
          for (let dy = 0; dy < fy; dy++) for (let dx = 0; dx < fx; dx++) s += src[((y * fy + dy) * w + x * fx + dx) * 3 + k];
          rgb[k] = f32(s * scale); // sums of up to 4 integers: exact in float32 too
        }
        for (let j = 0; j < 2; j++) planes[j][y * ws + x] = f32(dot3(TO_CBCR[j], rgb[0], rgb[1], rgb[2]) + 128);
      }
    }
    return planes;
  };
  const smallR = smallChroma(restored);
  const smallD = smallChroma(decoded).map((plane) => {
    let stored = plane;
    if (fy === 2) stored = undoFancySmoothing(stored, hs, ws, 0);
    if (fx === 2) stored = undoFancySmoothing(stored, hs, ws, 1);
    return stored;
  });
  const luma = (src) => {
    const plane = new Float32Array(n);
    for (let i = 0; i < n; i++) plane[i] = dot3(TO_Y, src[3 * i], src[3 * i + 1], src[3 * i + 2]);
    return plane;
  };
  const lumaChange = correction(luma(restored), luma(decoded), h, w, tables.luma);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 3; k++) r[3 * i + k] = f32(r[3 * i + k] + lumaChange[i]);
  }
  const cb = correction(smallR[0], smallD[0], hs, ws, tables.chroma);
  const cr = correction(smallR[1], smallD[1], hs, ws, tables.chroma);
  const rgb = [0, 0, 0];
  for (let y = 0; y < hs; y++) {
    for (let x = 0; x < ws; x++) {
      const si = y * ws + x;
      if (cb[si] === 0 && cr[si] === 0) continue;
      for (let k = 0; k < 3; k++) rgb[k] = f32(f32(cb[si] * FROM_CBCR[0][k]) + cr[si] * FROM_CBCR[1][k]);
      for (let dy = 0; dy < fy; dy++) {
        for (let dx = 0; dx < fx; dx++) {
          const i = ((y * fy + dy) * w + x * fx + dx) * 3;
          for (let k = 0; k < 3; k++) r[i + k] = f32(r[i + k] + rgb[k]);
        }
      }
    }
  }
  return roundedUint8(r);
}

/** consistency.rounded_uint8: rounded half to even and clipped. */
function roundedUint8(pixels) {
  const out = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = Math.min(255, Math.max(0, roundHalfEven(pixels[i])));
  return out;
}

/** consistency.JpegTables.lossless_but_rounding: every step 1 and no chroma subsampling. */
function losslessButRounding(tables) {
  const steps = tables.chroma ? [...tables.luma, ...tables.chroma] : tables.luma;
  return Math.max(...steps) <= 1 && (tables.subsampling ?? "4:4:4") === "4:4:4";
}

/** consistency.project: `restored` (Uint8Array h x w x c) made consistent with the JPEG
 * whose decoded pixels are `decoded` and whose tables are `tables` ({luma, chroma,
 * subsampling}); in strips of `strip` rows (default stripRows) with MARGIN rows of context,
 * as Python's. */
export function project(restored, decoded, h, w, c, tables, strip = stripRows(w)) {
  if (losslessButRounding(tables)) return Uint8Array.from(decoded);
  if (h <= strip + 2 * MARGIN) return projectPiece(restored, decoded, h, w, c, tables);
  if (strip % 16) throw new RangeError(`strip must be a multiple of 16, got ${strip}`);
  const row = w * c;
  const out = new Uint8Array(restored.length);
  for (let y0 = 0; y0 < h; y0 += strip) {
    const y1 = Math.min(h, y0 + strip);
    const a = Math.max(0, y0 - MARGIN);
    const b = Math.min(h, y1 + MARGIN);
    const piece = projectPiece(restored.subarray(a * row, b * row), decoded.subarray(a * row, b * row), b - a, w, c, tables);
    out.set(piece.subarray((y0 - a) * row, (y1 - a) * row), y0 * row);
  }
  return out;
}

// Near-lossless JPEGs keep part of the correction, ported from src/fbcnn/jpeg/nearlossless.py.
const LUMA_FULL_UNTIL = 90;
const LUMA_NONE_FROM = 95;
const CHROMA_NEAR_LOSSLESS = 0.25;
const CHROMA_SUBSAMPLING_ONLY = 0.5;

/** nearlossless.quality: the file's QF, else the network's reading. */
export function nearLosslessQuality(predictedQf, tableQf) {
  return tableQf === null ? predictedQf : tableQf;
}

/** nearlossless.strengths: [luma, chroma] shares of the correction kept at this quality. */
export function strengths(quality, chromaStepsOne = false) {
  const fade = Math.min(1, Math.max(0, (LUMA_NONE_FROM - quality) / (LUMA_NONE_FROM - LUMA_FULL_UNTIL)));
  let chroma = CHROMA_NEAR_LOSSLESS + (1 - CHROMA_NEAR_LOSSLESS) * fade;
  if (chromaStepsOne || quality >= 99.5) chroma = Math.max(chroma, CHROMA_SUBSAMPLING_ONLY);
  return [fade, chroma];
}

/** nearlossless.keep_share: `decoded` plus the shares of the change to `restored`
 * (Uint8Array h x w x c), split in YCbCr; float32 as numpy. */
export function keepShare(restored, decoded, h, w, c, luma, chroma) {
  if (luma >= 1 && (chroma >= 1 || c === 1)) return restored;
  const out = new Uint8Array(restored.length);
  const n = h * w;
  const clip = (v) => roundHalfEven(Math.min(255, Math.max(0, v)));
  if (c === 1) {
    const l = f32(luma);
    for (let i = 0; i < n; i++) out[i] = clip(f32(decoded[i] + f32(l * f32(restored[i] - decoded[i]))));
    return out;
  }
  const share = [f32(luma), f32(chroma), f32(chroma)];
  const change = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const dr = restored[3 * i] - decoded[3 * i];
    const dg = restored[3 * i + 1] - decoded[3 * i + 1];
    const db = restored[3 * i + 2] - decoded[3 * i + 2];
    for (let j = 0; j < 3; j++) {
      change[j] = f32(f32(f32(TO_YCC[j][0] * dr + TO_YCC[j][1] * dg + TO_YCC[j][2] * db)) * share[j]);
    }
    for (let j = 0; j < 3; j++) {
      const back = f32(FROM_YCC[j][0] * change[0] + FROM_YCC[j][1] * change[1] + FROM_YCC[j][2] * change[2]);
      out[3 * i + j] = clip(f32(decoded[3 * i + j] + back));
    }
  }
  return out;
}
