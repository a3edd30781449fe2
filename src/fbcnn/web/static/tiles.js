// The tile plan of `fbcnn restore`, ported from src/fbcnn/restore.py (`tile_starts`, `_ramp`,
// `Restorer._tiles`, `Restorer.predict_qf`) as it was when this page was written. Keep the
// two in step: tests/e2e/test_web.py compares this plan with restore.py's for many sizes.
//
// Tiles start on the JPEG grid (16 for 4:2:0 and 4:2:2 colour, 8 otherwise), neighbours
// overlap by at least OVERLAP pixels and are blended with linear ramps; the QF fed to every
// tile is the mean prediction over at most QF_SAMPLE_TILES tiles spread across the image.

export const DEFAULT_TILE = 512; // restore.DEFAULT_TILE (fbcnn restore --tile)
export const DEFAULT_OVERLAP = 32; // restore.DEFAULT_OVERLAP
export const QF_SAMPLE_TILES = 16; // restore.QF_SAMPLE_TILES

/** Start positions covering [0, length): multiples of `grid`, neighbours overlapping by at
 * least `overlap` (rounded up to the grid). restore.tile_starts. */
export function tileStarts(length, tile, overlap, grid) {
  if (length <= tile) return [0];
  const step = Math.max(grid, Math.floor((tile - overlap) / grid) * grid);
  const starts = new Set();
  for (let s = 0; s < length - tile; s += step) starts.add(s);
  starts.add(Math.ceil((length - tile) / grid) * grid); // the first grid start reaching the end
  return [...starts].sort((a, b) => a - b);
}

/** The tiles of an h x w image, row by row: {y, x, h, w}. restore.Restorer._tiles;
 * tile 0 means one tile for the whole image. */
export function tilePlan(h, w, tile = DEFAULT_TILE, overlap = DEFAULT_OVERLAP, grid = 8) {
  const size = tile > 0 ? tile : Math.max(h, w);
  const tiles = [];
  for (const y of tileStarts(h, size, overlap, grid)) {
    for (const x of tileStarts(w, size, overlap, grid)) {
      tiles.push({ y, x, h: Math.min(size, h - y), w: Math.min(size, w - x) });
    }
  }
  return tiles;
}

/** The tiles whose predictions are averaged into the global QF: all of them, or
 * QF_SAMPLE_TILES picked at np.linspace(0, n - 1, 16).round(). */
export function qfSampleTiles(tiles) {
  if (tiles.length <= QF_SAMPLE_TILES) return tiles;
  const n = tiles.length;
  const step = (n - 1) / (QF_SAMPLE_TILES - 1);
  const picked = [];
  for (let i = 0; i < QF_SAMPLE_TILES; i++) {
    // linspace never lands on .5 here (2 i (n - 1) / 15 is never an odd integer)
    const index = i === QF_SAMPLE_TILES - 1 ? n - 1 : Math.round(i * step);
    picked.push(tiles[index]);
  }
  return picked;
}

/** Blending weights along one side of a tile (float32, as restore._ramp). */
export function ramp(length, overlap, atStart, atEnd) {
  const w = new Float32Array(length).fill(1);
  const n = Math.min(overlap, Math.floor(length / 2));
  if (n > 0) {
    for (let i = 0; i < n; i++) {
      const r = Math.fround((i + 0.5) / n);
      if (!atStart) w[i] = r;
      if (!atEnd) w[length - 1 - i] = r;
    }
  }
  return w;
}

/** restore: the global QF from the per-tile predictions (network units, (100 - QF) / 100). */
export function meanQf(networkValues) {
  let sum = 0;
  for (const v of networkValues) sum += v;
  return 100 * (1 - sum / networkValues.length);
}
