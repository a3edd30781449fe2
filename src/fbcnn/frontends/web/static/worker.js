// The page's Web Worker: decodes the image, runs the network with onnxruntime-web (WebGPU
// when the browser has an adapter, WASM with SIMD and threads otherwise), tiles big images on
// the JPEG grid with one global QF, applies JPEG consistency and encodes the PNG, as
// `fbcnn restore` does (src/fbcnn/engine/restorer.py, engine/finish.py). A file that is not
// a JPEG and whose pixels bear no JPEG compression (jpegtrace.js) is left unchanged, as
// `fbcnn restore` copies it, unless a restore asks for it `anyway` (--not-jpeg restore).
// At QF auto a JPEG is fed the QF `fbcnn restore` feeds a single JPEG: the reading, raised to
// its tables' QF when read below it, a jpegli file to its jpegli quality (jpeg/qf.py
// single_jpeg_qf; jpegli's tables, loaded from the site's jpegli_tables.json only for a JPEG
// of tables' QF up to 90, name its quality).
// The page does no double-JPEG analysis (`fbcnn restore --double off`).
// The page never freezes: everything heavy happens here. Messages in: init, open, restore
// ({qf, anyway}), png; out: backend, image, progress, result (`unchanged` when left alone),
// png, error (one line, naming the file).

import {
  ImageFileError, consistencyTables, floorTables, gridMultiple, inspectBytes, jpegliQualities, qfFromTables,
  singleJpegQf,
} from "./jpeg.js";
import {
  DEFAULT_OVERLAP, QF_WINDOWS_MAX, QF_WINDOWS_MIN, meanQf, qfTileBoxes, ramp, tilePlan, tileProblem,
} from "./tiles.js";
import { keepShare, nearLosslessQuality, project, roundHalfEven, strengths } from "./consistency.js";
import { encodePng } from "./png.js";
import { detect as detectJpegTrace } from "./jpegtrace.js";

export const MAX_MEGAPIXELS = 50; // memory cap: bigger images are refused with a message
// The page's tile side: an image up to PAGE_TILE on each side is restored in one pass (fewer
// pixels than overlapping tiles of DEFAULT_TILE, fewer runs), bigger ones in tiles of up to
// PAGE_TILE (memory in WASM). ?tile=N sets it (DEFAULT_TILE: tiles as fbcnn restore's).
export const PAGE_TILE = 1536;
const QF_BATCH_PIXELS = 1 << 20; // QF windows read in one run (memory: 12 MB of input)
const MIN_SIDE = 8; // as images/files.py MIN_SIDE
const f32 = Math.fround;

let options = { tile: PAGE_TILE, ep: "auto", threads: 0 };
let manifest = null;
let ort = null;
let backend = null; // {name: "webgpu" | "wasm", threads}
const sessions = new Map(); // "model/part" -> Promise<InferenceSession>
const weights = new Map(); // model name -> Promise<Uint8Array> (the parts share them)
let jpegli = null; // Promise<Map>: jpegli's tables and their qualities (jpegliQualities), once needed
let image = null; // the open image (pixels, metadata, cached prediction, last result)
let queue = Promise.resolve();
// seconds spent in each phase since the image was opened (the result carries them, for
// benchmarks): decode, runtime (loading onnxruntime-web), model (download), session, qf,
// tables (loading jpegli's tables), network, consistency, output
let phases = {};
const now = () => performance.now() / 1000;
async function timed(phase, work) {
  const start = now();
  try {
    return await work();
  } finally {
    phases[phase] = (phases[phase] ?? 0) + now() - start;
  }
}

const post = (message, transfer = []) => self.postMessage(message, transfer);

function firstLine(text) {
  return String(text).split("\n").map((s) => s.trim()).find((s) => s) ?? "unknown error";
}

function describe(err, name) {
  let text = err instanceof ImageFileError ? err.message : firstLine(err?.message ?? err);
  if (!(err instanceof ImageFileError) && /alloc|out of memory|memory access/i.test(text)) {
    text = `not enough memory in the browser (${text}); try a smaller image`;
  }
  return name ? `${name}: ${text}` : text;
}

self.onmessage = (event) => {
  const msg = event.data;
  queue = queue.then(() => handle(msg)).catch((err) => {
    post({ type: "error", request: msg.type, message: describe(err, msg.name ?? image?.name) });
  });
};
self.addEventListener("unhandledrejection", (event) => {
  post({ type: "error", request: "worker", message: describe(event.reason, image?.name) });
});

async function handle(msg) {
  if (msg.type === "init") {
    options = { ...options, ...msg.options };
  } else if (tileProblem(options.tile)) { // ?tile (app.js says so first): refused, not run
    throw new Error(`?tile=${options.tile}: ${tileProblem(options.tile)}`);
  } else if (msg.type === "open") {
    phases = {};
    await timed("decode", () => openImage(msg.file, msg.name));
    await restore(null);
  } else if (msg.type === "restore") {
    phases = {};
    await restore(msg.qf, Boolean(msg.anyway));
  } else if (msg.type === "png") {
    await png();
  }
}

// --------------------------------------------------------------------------- runtime

async function initRuntime() {
  if (!ort) await timed("runtime", loadRuntime);
}

async function loadRuntime() {
  const response = await fetch(new URL("./fbcnn-web.json", import.meta.url));
  if (!response.ok) throw new Error(`cannot load the site's fbcnn-web.json (HTTP ${response.status})`);
  manifest = await response.json();
  let gpu = false;
  if (options.ep !== "wasm" && manifest.backends.includes("webgpu") && self.navigator.gpu) {
    try { // a software (fallback) adapter would be slower than WASM
      const adapter = await self.navigator.gpu.requestAdapter();
      gpu = Boolean(adapter) && !(adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter);
    } catch {
      gpu = false;
    }
  }
  const isolated = Boolean(self.crossOriginIsolated);
  const threads = isolated ? (options.threads || Math.min(navigator.hardwareConcurrency || 1, 8)) : 1;
  ort = await import(gpu ? "./ort/ort.webgpu.min.mjs" : "./ort/ort.wasm.min.mjs");
  ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false; // this is already a worker
  ort.env.logLevel = "error";
  backend = { name: gpu ? "webgpu" : "wasm", threads, isolated };
  post({ type: "backend", ...backend, ort: manifest.onnxruntime_web });
}

async function download(file, expected, label) {
  const response = await fetch(new URL(file, import.meta.url));
  if (!response.ok || !response.body) throw new Error(`cannot load ${file} (HTTP ${response.status})`);
  const total = Number(response.headers.get("content-length")) || expected || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let done = 0;
  for (;;) {
    const part = await reader.read();
    if (part.done) break;
    chunks.push(part.value);
    done += part.value.length;
    post({ type: "progress", phase: "model", label, done, total });
  }
  const bytes = new Uint8Array(done);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** The model's weights file (downloaded once for both parts). */
function modelWeights(model) {
  if (!weights.has(model)) {
    const entry = manifest.models[model];
    weights.set(model, timed("model", () => download(entry.files.weights, entry.bytes.weights, model))
      .catch((err) => {
        weights.delete(model);
        throw err;
      }));
  }
  return weights.get(model);
}

/** A session for one part of a model: "qf" (image -> QF, network units) or "reconstruct"
 * ((image, QF 1..100) -> the restored image). */
async function createSession(model, part) {
  await initRuntime();
  const entry = manifest.models[model];
  const [graph, data] = await Promise.all([
    timed("model", () => download(entry.files[part], entry.bytes[part], model)), modelWeights(model)]);
  const name = entry.files.weights.split("/").pop();
  return timed("session", () => startSession(graph, [{ path: name, data }]));
}

async function startSession(bytes, externalData) {
  const settings = { graphOptimizationLevel: "all", externalData };
  if (backend.name === "webgpu") {
    try {
      return await ort.InferenceSession.create(bytes, { ...settings, executionProviders: ["webgpu", "wasm"] });
    } catch (err) {
      backend = { ...backend, name: "wasm", note: `WebGPU failed: ${firstLine(err?.message ?? err)}` };
      post({ type: "backend", ...backend, ort: manifest.onnxruntime_web });
    }
  }
  return ort.InferenceSession.create(bytes, { ...settings, executionProviders: ["wasm"] });
}

/** The tables jpegli writes (the site's jpegli_tables.json, named in the manifest), loaded
 * once, when a JPEG first needs them. */
function jpegliTables() {
  if (!jpegli) {
    jpegli = timed("tables", async () => {
      const file = manifest.jpegli_tables ?? "jpegli_tables.json";
      const response = await fetch(new URL(file, import.meta.url));
      if (!response.ok) throw new Error(`cannot load the site's ${file} (HTTP ${response.status})`);
      return jpegliQualities(await response.json());
    }).catch((err) => {
      jpegli = null;
      throw err;
    });
  }
  return jpegli;
}

function session(model, part) {
  const key = `${model}/${part}`;
  if (!sessions.has(key)) {
    sessions.set(key, createSession(model, part).catch((err) => {
      sessions.delete(key);
      throw err;
    }));
  }
  return sessions.get(key);
}

// --------------------------------------------------------------------------- decoding

function checkSize(width, height) {
  if (width * height > MAX_MEGAPIXELS * 1e6) {
    throw new ImageFileError(`image too large: ${width}x${height} pixels (limit ${MAX_MEGAPIXELS} megapixels in the browser; use fbcnn restore)`);
  }
  if (Math.min(width, height) < MIN_SIDE) {
    throw new ImageFileError(`image too small: ${width}x${height} (each side must be at least ${MIN_SIDE} pixels)`);
  }
}

function everyPixelGrey(rgba) {
  for (let i = 0; i < rgba.length; i += 4) {
    if (rgba[i] !== rgba[i + 1] || rgba[i + 1] !== rgba[i + 2]) return false;
  }
  return true;
}

async function openImage(file, name) {
  image = null;
  const bytes = new Uint8Array(await file.arrayBuffer());
  const info = inspectBytes(bytes);
  if (info.problem) throw new ImageFileError(info.problem);
  if (info.width && info.height) checkSize(info.width, info.height); // before decoding
  // CMYK / YCCK JPEGs (images/files.py _cmyk_to_rgb): the browser turns them into RGB (through
  // their ICC profile when they carry one); their tables do not bound RGB pixels, so they
  // are restored without the consistency step
  const cmyk = info.format === "JPEG" && info.components.length === 4;
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes]), {
      colorSpaceConversion: cmyk ? "default" : "none", premultiplyAlpha: "none",
    });
  } catch {
    throw new ImageFileError(info.format
      ? "corrupt or truncated image (the browser cannot decode it)" : "not an image");
  }
  const { width, height } = bitmap;
  checkSize(width, height);
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = context.getImageData(0, 0, width, height).data;
  const n = width * height;
  // an image whose pixels are all grey is restored as grey (the grey model), as the CLI
  // restores it: a palette image (GIF, PNG-8) is read as grey (images/files.py _unpalette),
  // a colour one (a black-and-white photo saved as a colour JPEG) keeps three equal
  // channels (jpeg/color.py is_neutral), so its tiles start on the colour grid
  const grey = info.grey || everyPixelGrey(rgba);
  const channels = grey ? 1 : 3;
  const stored = info.grey || (grey && info.palette) ? 1 : 3; // the channels Python reads
  const pixels = new Uint8Array(n * channels);
  let alpha = null;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) pixels[i * channels + c] = rgba[4 * i + c];
    if (rgba[4 * i + 3] !== 255 && !alpha) alpha = new Uint8Array(n);
  }
  if (alpha) for (let i = 0; i < n; i++) alpha[i] = rgba[4 * i + 3];
  const subsampling = info.format === "JPEG" ? info.subsampling : null;
  // another format: whether its pixels bear JPEG compression (engine/analysis.py analyse)
  let trace = null;
  if (info.format !== "JPEG") {
    const { found, offset, score, median, judged } = detectJpegTrace(pixels, height, width, channels);
    trace = { found, offset, score, median, judged };
  }
  image = {
    name, width, height, channels, stored, pixels, alpha,
    grid: gridMultiple(cmyk ? null : subsampling, stored),
    tables: cmyk ? null : consistencyTables(info),
    floor: cmyk ? null : floorTables(info), // what the QF rule of a single JPEG reads
    model: channels === 1 ? "gray" : "color",
    predictedQf: null,
    result: null,
    trace,
    anyway: false, // restore even without JPEG compression (asked for once, kept)
  };
  post({
    type: "image", name, width, height, channels, format: info.format ?? "image",
    headerQf: info.headerQf ?? null, subsampling, model: image.model, trace,
    orientation: info.orientation ?? 1, consistency: Boolean(image.tables), rgba: rgba.buffer,
    converted: cmyk ? "CMYK converted to RGB (no JPEG consistency)" : null,
  }, [rgba.buffer]);
}

// --------------------------------------------------------------------------- restoring

/** A tile of the image as the network's input: (1, C, h, w) float32 in [0, 1]. */
function tileTensor(tile) {
  const { channels: c, width: w, pixels } = image;
  const plane = tile.h * tile.w;
  const data = new Float32Array(c * plane);
  for (let y = 0; y < tile.h; y++) {
    for (let x = 0; x < tile.w; x++) {
      const src = ((tile.y + y) * w + tile.x + x) * c;
      for (let k = 0; k < c; k++) data[k * plane + y * tile.w + x] = pixels[src + k] / 255;
    }
  }
  return new ort.Tensor("float32", data, [1, c, tile.h, tile.w]);
}

/** The QF part on tiles of one size, as one batch: their predictions (network units,
 * (100 - QF) / 100). */
async function tilesQf(net, tiles) {
  const tensors = tiles.map(tileTensor);
  const { dims } = tensors[0];
  const size = tensors[0].data.length;
  const data = new Float32Array(size * tiles.length);
  tensors.forEach((t, i) => data.set(t.data, i * size));
  const out = await net.run({ [net.inputNames[0]]: new ort.Tensor("float32", data, [tiles.length, ...dims.slice(1)]) });
  const predicted = out[net.outputNames[0]];
  const values = Array.from(await predicted.getData());
  predicted.dispose?.();
  return values;
}

const tileQf = async (net, tile) => (await tilesQf(net, [tile]))[0];

/** The reconstruct part on a tile at `qf` (1..100): Float32Array (C, h, w). */
async function tileRestored(net, tile, qf) {
  const out = await net.run({
    [net.inputNames[0]]: tileTensor(tile),
    [net.inputNames[1]]: new ort.Tensor("float32", Float32Array.of(qf), [1, 1]),
  });
  const restored = out[net.outputNames[0]];
  const data = await restored.getData();
  restored.dispose?.();
  return data;
}

const toByte = (v) => roundHalfEven(f32(Math.min(1, Math.max(0, v)) * 255));

/** The RGBA of `pixels` (h x w x channels) with the image's alpha. */
function toRgba(pixels) {
  const { width: w, height: h, channels: c, alpha } = image;
  const rgba = new Uint8ClampedArray(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    for (let k = 0; k < 3; k++) rgba[4 * i + k] = pixels[i * c + (c === 1 ? 0 : k)];
    rgba[4 * i + 3] = alpha ? alpha[i] : 255;
  }
  return rgba;
}

/** engine/pipeline.py restore_file with --not-jpeg copy: the input's pixels as the result, no network. */
function leaveUnchanged() {
  const { width: w, height: h } = image;
  image.result = { pixels: image.pixels, qf: null, auto: true };
  const rgba = toRgba(image.pixels);
  post({
    type: "result", unchanged: true, trace: image.trace, usedQf: null, predictedQf: image.predictedQf,
    auto: true, tablesFloor: false, tiles: 0, networkSeconds: 0, seconds: 0, networkPixels: 0,
    width: w, height: h, rgba: rgba.buffer,
  }, [rgba.buffer]);
}

/** engine/analysis.py analyse / _tables_floor at QF auto: the QF a JPEG's tables ask to feed
 * instead of the reading (jpeg/qf.py single_jpeg_qf), or null (the reading itself). jpegli's
 * tables are loaded only where the rule can apply (floorTables: a JPEG with usable tables of
 * QF up to TABLES_FLOOR_MAX). */
async function tablesFloor() {
  const f = image.floor;
  if (!f) return null;
  return singleJpegQf(image.predictedQf, f.qf, f.luma, f.chroma, await jpegliTables());
}

async function restore(qf, anyway = false) {
  if (!image) throw new ImageFileError("no image open");
  if (anyway) image.anyway = true;
  if (image.trace && !image.trace.found && !image.anyway) {
    leaveUnchanged();
    return;
  }
  const [qfNet, net] = await Promise.all([session(image.model, "qf"), session(image.model, "reconstruct")]);
  const { width: w, height: h, channels: c, grid } = image;
  const overlap = DEFAULT_OVERLAP;
  const tiles = tilePlan(h, w, options.tile, overlap, grid);
  const started = performance.now();
  let out;
  let networkPixels = 0;
  const qfTile = manifest.models[image.model].qf_tile ?? null;
  const readQf = () => timed("qf", async () => { // engine/restorer.py Restorer.predict_qf
    const sample = qfTile ? qfTileBoxes(h, w, grid, qfTile, QF_WINDOWS_MIN, QF_WINDOWS_MAX)
      : qfTileBoxes(h, w, grid);
    // the windows (all of one size) in batches of QF_BATCH_PIXELS: one run each, not one
    // per window (each run costs far more than a 64 x 64 window's share of the work)
    const values = [];
    const batch = Math.max(1, Math.floor(QF_BATCH_PIXELS / (sample[0].h * sample[0].w)));
    for (let i = 0; i < sample.length; i += batch) {
      const part = sample.slice(i, i + batch);
      values.push(...await tilesQf(qfNet, part));
      for (const tile of part) networkPixels += tile.w * tile.h;
      post({ type: "progress", phase: "qf", done: i + part.length, total: sample.length });
    }
    image.predictedQf = meanQf(values);
  });
  if (qfTile && image.predictedQf === null) await readQf(); // always, as predict_qf
  let floor = null; // the tables' QF fed at auto instead of the reading
  const feed = async () => {
    floor = qf === null ? await tablesFloor() : null;
    return qf ?? floor ?? image.predictedQf;
  };
  if (tiles.length === 1) { // engine/restorer.py Restorer._restore_whole
    if (image.predictedQf === null) { // the QF of the whole image, in a pass of its own
      image.predictedQf = await timed("qf", async () => f32(100 * f32(1 - await tileQf(qfNet, tiles[0]))));
      networkPixels += w * h;
    }
    const data = await tileRestored(net, tiles[0], await feed());
    networkPixels += w * h;
    out = new Uint8Array(w * h * c);
    for (let i = 0; i < w * h; i++) {
      for (let k = 0; k < c; k++) out[i * c + k] = toByte(data[k * w * h + i]);
    }
    post({ type: "progress", phase: "restore", done: 1, total: 1 });
  } else {
    if (image.predictedQf === null) await readQf();
    out = await blendTiles(net, tiles, await feed(), overlap, (tile, i) => {
      networkPixels += tile.w * tile.h;
      post({ type: "progress", phase: "restore", done: i + 1, total: tiles.length });
    });
  }
  const networkSeconds = (performance.now() - started) / 1000;
  const consistencyStart = now();
  if (image.tables) out = project(out, image.pixels, h, w, c, image.tables);
  // engine/finish.py finish: a near-lossless JPEG keeps part of the change, when fed the
  // reading (not an override, nor its tables' QF)
  if (qf === null && floor === null) {
    const t = image.tables;
    const tableQf = t ? qfFromTables(t.chroma ? { 0: t.luma, 1: t.chroma } : { 0: t.luma }) : null;
    const quality = nearLosslessQuality(image.predictedQf, tableQf);
    const [luma, chroma] = strengths(quality, Boolean(t?.chroma && Math.max(...t.chroma) <= 1));
    out = keepShare(out, image.pixels, h, w, c, luma, chroma);
  }
  phases.consistency = now() - consistencyStart;
  const usedQf = qf ?? floor ?? image.predictedQf;
  image.result = { pixels: out, qf: usedQf, auto: qf === null };
  const outputStart = now();
  const rgba = toRgba(out);
  phases.network = networkSeconds - (phases.qf ?? 0) - (phases.tables ?? 0);
  phases.output = now() - outputStart;
  post({
    type: "result", unchanged: false, trace: image.trace, usedQf, predictedQf: image.predictedQf, auto: qf === null,
    tablesFloor: floor !== null, tiles: tiles.length,
    networkSeconds, seconds: (performance.now() - started) / 1000, networkPixels, phases,
    width: w, height: h, rgba: rgba.buffer,
  }, [rgba.buffer]);
}

/** engine/restorer.py Restorer._restore_tiled: every tile at the one QF, blended with linear ramps
 * (float32, as numpy). Only the rows still open to later tiles are kept in float (a window
 * of one tile's height), so memory stays near the image's own size. */
async function blendTiles(net, tiles, qf, overlap, progress) {
  const { width: w, height: h, channels: c } = image;
  const windowRows = Math.min(Math.max(...tiles.map((t) => t.h)), h);
  const acc = new Float32Array(windowRows * w * c);
  const weight = new Float32Array(windowRows * w);
  const out = new Uint8Array(w * h * c);
  let top = 0; // image row of the window's first row
  const flush = (until) => { // rows [top, until) are complete
    for (let y = top; y < until; y++) {
      for (let x = 0; x < w; x++) {
        const wi = (y - top) * w + x;
        for (let k = 0; k < c; k++) {
          const v = roundHalfEven(f32(acc[wi * c + k] / weight[wi]));
          out[(y * w + x) * c + k] = Math.min(255, Math.max(0, v));
        }
      }
    }
    const shift = until - top;
    acc.copyWithin(0, shift * w * c);
    acc.fill(0, (windowRows - shift) * w * c);
    weight.copyWithin(0, shift * w);
    weight.fill(0, (windowRows - shift) * w);
    top = until;
  };
  for (const [i, tile] of tiles.entries()) {
    if (tile.y > top) flush(tile.y);
    const data = await tileRestored(net, tile, qf);
    const wy = ramp(tile.h, overlap, tile.y === 0, tile.y + tile.h >= h);
    const wx = ramp(tile.w, overlap, tile.x === 0, tile.x + tile.w >= w);
    const plane = tile.h * tile.w;
    for (let y = 0; y < tile.h; y++) {
      for (let x = 0; x < tile.w; x++) {
        const wt = f32(wy[y] * wx[x]);
        const wi = (tile.y - top + y) * w + tile.x + x;
        weight[wi] += wt;
        for (let k = 0; k < c; k++) {
          const v = f32(Math.min(1, Math.max(0, data[k * plane + y * tile.w + x])) * 255);
          acc[wi * c + k] += f32(v * wt);
        }
      }
    }
    progress(tile, i);
  }
  flush(h);
  return out;
}

// --------------------------------------------------------------------------- download

async function png() {
  if (!image?.result) throw new ImageFileError("nothing restored yet");
  const { width: w, height: h, channels: c, stored, alpha } = image;
  const { pixels, qf, auto } = image.result;
  let data = pixels;
  let channels = c;
  if (alpha || stored !== c) {
    // a grey image stored in colour comes back in colour, three equal channels (as the CLI
    // writes it)
    const colours = stored;
    channels = colours + (alpha ? 1 : 0);
    data = new Uint8Array(w * h * channels);
    for (let i = 0; i < w * h; i++) {
      for (let k = 0; k < colours; k++) data[i * channels + k] = pixels[i * c + (c === 1 ? 0 : k)];
      if (alpha) data[i * channels + colours] = alpha[i];
    }
  }
  const blob = await encodePng(data, w, h, channels);
  const stem = image.name.includes(".") ? image.name.slice(0, image.name.lastIndexOf(".")) : image.name;
  const suffix = auto ? "" : `_qf${Number(qf.toFixed(4))}`;
  post({ type: "png", blob, filename: `${stem}_restored${suffix}.png` });
}
