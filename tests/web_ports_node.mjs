// Runs the page's tiles.js, consistency.js and jpeg.js under Node for tests/test_web_ports.py:
// reads a JSON list of calls [op, ...args] on stdin and writes a JSON list of their results.
// Pixels and file bytes travel as base64 strings. The modules are loaded from their sources
// as data: URLs (they import nothing), so Node needs no package.json saying they are ES
// modules. WEB_PORTS_STATIC (a folder) loads them from elsewhere than src/fbcnn/frontends/web/static,
// e.g. a copy with a bug put in on purpose, to see a test fail.

import { readFileSync } from "node:fs";

const folder = process.env.WEB_PORTS_STATIC
  ? new URL(`file://${process.env.WEB_PORTS_STATIC.replace(/\/?$/, "/")}`)
  : new URL("../src/fbcnn/frontends/web/static/", import.meta.url);
const load = (name) => {
  const source = readFileSync(new URL(name, folder), "utf8");
  return import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);
};
const [tiles, consistency, jpeg] = await Promise.all(
  ["tiles.js", "consistency.js", "jpeg.js"].map(load));

const bytes = (b64) => new Uint8Array(Buffer.from(b64, "base64"));
const b64 = (array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength).toString("base64");
const box = (b) => [b.y, b.x, b.h, b.w];
const f32 = Math.fround;
// jpeg.jpegliQualities of a jpegli_tables.json (a path), read once per path
const jpegliSets = new Map();
const jpegli = (path) => {
  if (!jpegliSets.has(path)) jpegliSets.set(path, jpeg.jpegliQualities(JSON.parse(readFileSync(path, "utf8"))));
  return jpegliSets.get(path);
};

const ops = {
  tileSpans: (length, tile, overlap, grid) => tiles.tileSpans(length, tile, overlap, grid),
  tilePlan: (h, w, tile, overlap, grid) => tiles.tilePlan(h, w, tile, overlap, grid).map(box),
  qfTileBoxes: (...args) => tiles.qfTileBoxes(...args).map(box),
  ramp: (length, overlap, atStart, atEnd) => Array.from(tiles.ramp(length, overlap, atStart, atEnd)),
  // the weights worker.js blendTiles gives each tile along one side: its ramp (over the
  // spans of tileSpans, at_start / at_end as there) over the float32 sum of all the ramps
  blendWeights: (length, tile, overlap, grid) => {
    const spans = tiles.tileSpans(length, tile, overlap, grid);
    const ramps = spans.map(([a, b]) => tiles.ramp(b - a, overlap, a === 0, b >= length));
    const total = new Float32Array(length);
    spans.forEach(([a], k) => ramps[k].forEach((v, i) => { total[a + i] += v; }));
    return spans.map(([a], k) => Array.from(ramps[k], (v, i) => f32(v / total[a + i])));
  },
  tileProblem: (tile) => tiles.tileProblem(tile),
  meanQf: (values) => tiles.meanQf(values),
  constants: () => Object.fromEntries(Object.entries({ ...jpeg, ...tiles }).filter(([, v]) => typeof v === "number")),
  project: (restored, decoded, h, w, c, tables, strip) => b64(consistency.project(
    bytes(restored), bytes(decoded), h, w, c, tables, strip ?? undefined)),
  strengths: (quality, stepsOne) => consistency.strengths(quality, stepsOne),
  nearLosslessQuality: (predicted, tableQf) => consistency.nearLosslessQuality(predicted, tableQf),
  keepShare: (restored, decoded, h, w, c, luma, chroma) => b64(consistency.keepShare(
    bytes(restored), bytes(decoded), h, w, c, luma, chroma)),
  standardTables: (q) => jpeg.standardTables(q),
  qfFromTables: (tables) => jpeg.qfFromTables(tables),
  gridMultiple: (subsampling, channels) => jpeg.gridMultiple(subsampling, channels),
  jpegliQuality: (luma, chroma, tablesPath) => jpeg.jpegliQuality(jpegli(tablesPath), luma, chroma),
  singleJpegQf: (predicted, tablesQf, luma, chroma, tablesPath) => jpeg.singleJpegQf(
    predicted, tablesQf, luma, chroma, jpegli(tablesPath)),
  // what worker.js does at QF auto for a file's bytes and readings: whether the rule can
  // apply (the jpegli tables are loaded only then), and the QF fed for each reading
  tablesFloor: (data, readings, tablesPath) => {
    const info = jpeg.inspectBytes(bytes(data));
    const cmyk = info.format === "JPEG" && info.components.length === 4;
    const floor = cmyk ? null : jpeg.floorTables(info);
    return {
      applies: floor !== null,
      fed: readings.map((r) => (floor === null ? r
        : jpeg.singleJpegQf(r, floor.qf, floor.luma, floor.chroma, jpegli(tablesPath)) ?? r)),
    };
  },
  // what worker.js openImage reads from a file's bytes before decoding it
  inspect: (data) => {
    let info;
    try {
      info = jpeg.inspectBytes(bytes(data));
    } catch (error) {
      return { error: `${error.constructor.name}: ${error.message}` };
    }
    const channels = info.grey ? 1 : 3;
    const cmyk = info.format === "JPEG" && info.components.length === 4;
    return {
      ...info, channels,
      grid: jpeg.gridMultiple(cmyk ? null : info.subsampling ?? null, channels),
      consistency: cmyk ? null : jpeg.consistencyTables(info),
    };
  },
};

const calls = JSON.parse(readFileSync(0, "utf8"));
// a call that throws gives {error: "TypeName: message"} (the others still run)
const out = calls.map(([op, ...args]) => {
  if (!(op in ops)) throw new Error(`unknown op ${op}`);
  try {
    return ops[op](...args);
  } catch (error) {
    return { error: `${error.constructor.name}: ${error.message}` };
  }
});
process.stdout.write(JSON.stringify(out));
