// JPEG consistency, ported from src/fbcnn/consistency.py (`project`): clamp the restored
// image's 8x8 DCT coefficients into the quantisation cells of the decoded JPEG's, luma at
// full resolution, chroma at the stored (subsampled) resolution, whose samples are read back
// from the decoded planes by undoing libjpeg's fancy-upsampling smoothing. Blocks cut by the
// border are left as they are. Float32 where numpy works in float32 (the order of a few
// sums differs, so a pixel may round the other way: at most 1 grey level).

const BLOCK = 8;
export const STRIP = 512; // consistency.STRIP: rows projected at a time
export const MARGIN = 32; // consistency.MARGIN: rows of context above and below a strip

const f32 = Math.fround;

/** np.round: half to even. */
export function roundHalfEven(v) {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const DCT = (() => { // orthonormal, float32: coefficients = DCT @ block @ DCT.T
  const m = new Float64Array(64);
  for (let k = 0; k < BLOCK; k++) {
    for (let n = 0; n < BLOCK; n++) {
      let v = Math.cos((Math.PI * (2 * n + 1) * k) / (2 * BLOCK)) * Math.sqrt(2 / BLOCK);
      if (k === 0) v /= Math.sqrt(2);
      m[k * 8 + n] = f32(v);
    }
  }
  return m;
})();

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
const OFFSET = [0, 128, 128];

const tmp = new Float64Array(64);
const coef = new Float64Array(64);

/** coef = DCT @ block @ DCT.T (block: 64 values, row-major). */
function forward(block, out) {
  for (let r = 0; r < 8; r++) {
    for (let c = 0; c < 8; c++) {
      let s = 0;
      for (let k = 0; k < 8; k++) s += DCT[r * 8 + k] * block[k * 8 + c];
      tmp[r * 8 + c] = s;
    }
  }
  for (let r = 0; r < 8; r++) {
    for (let c = 0; c < 8; c++) {
      let s = 0;
      for (let k = 0; k < 8; k++) s += tmp[r * 8 + k] * DCT[c * 8 + k];
      out[r * 8 + c] = f32(s);
    }
  }
}

/** block = DCT.T @ coef @ DCT. */
function inverse(c64, out) {
  for (let r = 0; r < 8; r++) {
    for (let c = 0; c < 8; c++) {
      let s = 0;
      for (let k = 0; k < 8; k++) s += DCT[k * 8 + r] * c64[k * 8 + c];
      tmp[r * 8 + c] = s;
    }
  }
  for (let r = 0; r < 8; r++) {
    for (let c = 0; c < 8; c++) {
      let s = 0;
      for (let k = 0; k < 8; k++) s += tmp[r * 8 + k] * DCT[k * 8 + c];
      out[r * 8 + c] = f32(s);
    }
  }
}

/** consistency._project_plane: the plane `restored` (Float32Array h x w) with each whole
 * 8x8 block's coefficients clamped into the cells of `decoded`'s under `table`. */
export function projectPlane(restored, decoded, h, w, table) {
  const out = Float32Array.from(restored);
  const bh = Math.floor(h / BLOCK) * BLOCK;
  const bw = Math.floor(w / BLOCK) * BLOCK;
  if (bh === 0 || bw === 0) return out;
  const q = Float32Array.from(table);
  const bd = new Float64Array(64);
  const br = new Float64Array(64);
  const cd = new Float64Array(64);
  const cr = new Float64Array(64);
  const px = new Float64Array(64);
  for (let by = 0; by < bh; by += BLOCK) {
    for (let bx = 0; bx < bw; bx += BLOCK) {
      for (let r = 0; r < 8; r++) {
        for (let c = 0; c < 8; c++) {
          const i = (by + r) * w + bx + c;
          bd[r * 8 + c] = f32(decoded[i] - 128);
          br[r * 8 + c] = f32(restored[i] - 128);
        }
      }
      forward(bd, cd);
      forward(br, cr);
      for (let k = 0; k < 64; k++) {
        const cell = roundHalfEven(f32(cd[k] / q[k]));
        const lo = f32((cell - 0.5) * q[k]);
        const hi = f32((cell + 0.5) * q[k]);
        coef[k] = Math.min(Math.max(cr[k], lo), hi);
      }
      inverse(coef, px);
      for (let r = 0; r < 8; r++) {
        for (let c = 0; c < 8; c++) out[(by + r) * w + bx + c] = f32(px[r * 8 + c] + 128);
      }
    }
  }
  return out;
}

function chromaFactors(subsampling) {
  return { "4:2:0": [2, 2], "4:2:2": [1, 2] }[subsampling] ?? [1, 1];
}

/** consistency._down: means of fy x fx cells. */
function down(plane, h, w, fy, fx) {
  const hs = Math.floor(h / fy);
  const ws = Math.floor(w / fx);
  const out = new Float32Array(hs * ws);
  for (let y = 0; y < hs; y++) {
    for (let x = 0; x < ws; x++) {
      let s = 0;
      for (let dy = 0; dy < fy; dy++) for (let dx = 0; dx < fx; dx++) s = f32(s + plane[(y * fy + dy) * w + x * fx + dx]);
      out[y * ws + x] = f32(s / (fy * fx));
    }
  }
  return { plane: out, h: hs, w: ws };
}

/** consistency._undo_fancy_smoothing: solve (s[i-1] + 6 s[i] + s[i+1]) / 8 = means[i]
 * along an axis (0: rows, 1: columns; edges replicated), 24 Jacobi iterations. */
function undoFancySmoothing(means, h, w, axis, iterations = 24) {
  const n = axis === 0 ? h : w;
  if (n < 2) return means;
  let s = Float32Array.from(means);
  let next = new Float32Array(s.length);
  const strideIn = axis === 0 ? w : 1;
  for (let it = 0; it < iterations; it++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        const pos = axis === 0 ? y : x;
        const prev = pos === 0 ? s[i] : s[i - strideIn];
        const after = pos === n - 1 ? s[i] : s[i + strideIn];
        next[i] = f32(f32(f32(8 * means[i]) - f32(prev + after)) / 6);
      }
    }
    [s, next] = [next, s];
  }
  return s;
}

/** The restored piece (Uint8Array h x w x c, c = 1 or 3) made consistent with `decoded`. */
function projectPiece(restored, decoded, h, w, c, tables) {
  const n = h * w;
  const out = new Uint8Array(n * c);
  const clip = (v) => Math.min(255, Math.max(0, roundHalfEven(v)));
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
    const pg = projectPlane(rg, dg, h, w, tables.luma);
    for (let i = 0; i < n; i++) {
      const delta = f32(pg[i] - rg[i]);
      for (let k = 0; k < c; k++) out[i * c + k] = clip(f32(restored[i * c + k] + delta));
    }
    return out;
  }
  const toYcc = (src) => {
    const planes = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
    for (let i = 0; i < n; i++) {
      const r = src[3 * i];
      const g = src[3 * i + 1];
      const b = src[3 * i + 2];
      for (let j = 0; j < 3; j++) {
        planes[j][i] = f32(f32(TO_YCC[j][0] * r + TO_YCC[j][1] * g + TO_YCC[j][2] * b) + OFFSET[j]);
      }
    }
    return planes;
  };
  const r = toYcc(restored);
  const d = toYcc(decoded);
  const result = [projectPlane(r[0], d[0], h, w, tables.luma), Float32Array.from(r[1]), Float32Array.from(r[2])];
  const [fy, fx] = chromaFactors(tables.subsampling);
  for (const ch of [1, 2]) {
    const small = down(r[ch], h, w, fy, fx);
    let stored = down(d[ch], h, w, fy, fx).plane;
    if (fy === 2) stored = undoFancySmoothing(stored, small.h, small.w, 0);
    if (fx === 2) stored = undoFancySmoothing(stored, small.h, small.w, 1);
    const projected = projectPlane(small.plane, stored, small.h, small.w, tables.chroma);
    for (let y = 0; y < small.h * fy; y++) {
      for (let x = 0; x < small.w * fx; x++) {
        const si = Math.floor(y / fy) * small.w + Math.floor(x / fx);
        const delta = f32(projected[si] - small.plane[si]);
        result[ch][y * w + x] = f32(result[ch][y * w + x] + delta);
      }
    }
  }
  for (let i = 0; i < n; i++) {
    const y = result[0][i] - OFFSET[0];
    const cb = f32(result[1][i] - OFFSET[1]);
    const cr = f32(result[2][i] - OFFSET[2]);
    for (let j = 0; j < 3; j++) out[3 * i + j] = clip(f32(FROM_YCC[j][0] * y + FROM_YCC[j][1] * cb + FROM_YCC[j][2] * cr));
  }
  return out;
}

/** consistency.project: `restored` (Uint8Array h x w x c) made consistent with the JPEG
 * whose decoded pixels are `decoded` and whose tables are `tables` ({luma, chroma,
 * subsampling}); in strips of STRIP rows with MARGIN rows of context, as the CLI. */
export function project(restored, decoded, h, w, c, tables, strip = STRIP) {
  if (h <= strip + 2 * MARGIN) return projectPiece(restored, decoded, h, w, c, tables);
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

// Near-lossless JPEGs keep part of the correction, ported from src/fbcnn/nearlossless.py.
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
