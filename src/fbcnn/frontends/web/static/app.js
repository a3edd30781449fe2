// The page: picks up an image (drop, paste, file picker), hands it to the worker, shows the
// QFs, the progress and the before/after view, and turns the strength and download controls
// into worker requests. A file that is not a JPEG and whose pixels bear no JPEG compression
// comes back unchanged (as `fbcnn restore` copies it), with "Restore anyway" (--not-jpeg
// restore). URL options (for tests and benchmarks): ?tile=N (tile side, 0: one pass, else
// at least tiles.js's MIN_TILE as fbcnn restore --tile: a smaller one is refused; default:
// one pass up to worker.js's PAGE_TILE per side, 512: fbcnn restore's tiles), ?ep=wasm
// (never WebGPU), ?threads=N (default: navigator.hardwareConcurrency, at most 8).

import { tileProblem } from "./tiles.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const intParam = (name) => (params.has(name) && /^\d+$/.test(params.get(name)) ? Number(params.get(name)) : undefined);
const options = {};
if (intParam("tile") !== undefined) options.tile = intParam("tile");
// a ?tile the plan cannot use (fbcnn restore refuses it too): said at once, and no image is
// opened while it stands
const optionProblem = options.tile === undefined ? null : tileProblem(options.tile);
const optionMessage = optionProblem && `?tile=${options.tile}: ${optionProblem}; change or remove it in the address`;
if (intParam("threads") !== undefined) options.threads = intParam("threads");
if (params.get("ep") === "wasm") options.ep = "wasm";

const state = {
  image: null, // the "image" message of the open image
  busy: false,
  pending: null, // {qf} asked for while busy
  result: null, // the last "result" message (without pixels)
  runs: 0,
};

let worker = startWorker();

function startWorker() {
  const w = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  w.onmessage = (event) => onMessage(event.data);
  w.onerror = (event) => {
    event.preventDefault();
    showError(`the page's worker stopped (${event.message || "script error"}); reload the page`);
    setBusy(false, "error");
    worker.terminate();
    worker = startWorker();
  };
  w.postMessage({ type: "init", options });
  return w;
}

// --------------------------------------------------------------------------- state, text

function setBusy(busy, pageState) {
  state.busy = busy;
  document.body.dataset.state = pageState ?? (busy ? "busy" : "done");
  $("download").disabled = busy || !state.result;
  $("strength-box").disabled = !state.image || Boolean(state.result?.unchanged);
  $("restore-anyway").disabled = busy;
  $("file").disabled = false;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function hideError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function setStatus(text, progress = null) {
  $("status").textContent = text;
  if (progress === null) $("progress").removeAttribute("value");
  else $("progress").value = progress;
}

function resetInfo() {
  for (const id of ["info-name", "info-size", "qf-file", "qf-predicted", "info-model", "info-trace"]) $(id).textContent = "–";
  $("not-jpeg").hidden = true;
}

/** What the detector (jpegtrace.js) saw in a non-JPEG file's pixels. */
function describeTrace(trace) {
  if (!trace) return "– (a JPEG file)";
  if (!trace.judged) return "too small to tell";
  return trace.found ? `found (grid offset ${trace.offset[0]}, ${trace.offset[1]})` : "none";
}

const fmtQf = (qf) => (qf === null || qf === undefined ? "–" : qf.toFixed(1));

// --------------------------------------------------------------------------- worker messages

function onMessage(msg) {
  if (msg.type === "backend") {
    const what = msg.name === "webgpu" ? "WebGPU"
      : `WASM (SIMD, ${msg.threads} thread${msg.threads === 1 ? "" : "s"}${msg.isolated ? "" : ": no cross-origin isolation"})`;
    $("backend").textContent = `Runs on ${what}, onnxruntime-web ${msg.ort}.${msg.note ? ` ${msg.note}` : ""}`;
    document.body.dataset.backend = msg.name;
  } else if (msg.type === "image") {
    state.image = msg;
    $("info-name").textContent = msg.name;
    $("info-size").textContent = `${msg.width} × ${msg.height}, ${msg.channels === 1 ? "grey" : "colour"}${msg.converted ? ` (${msg.converted})` : ""}`
      + (msg.subsampling ? `, ${msg.subsampling}` : "");
    $("qf-file").textContent = msg.headerQf === null ? `– (${msg.format === "JPEG" ? "no tables" : "not a JPEG"})` : String(msg.headerQf);
    $("info-model").textContent = msg.model;
    $("info-trace").textContent = describeTrace(msg.trace);
    showImage(msg.width, msg.height, new Uint8ClampedArray(msg.rgba));
    setStatus("reading the image…", null);
    setBusy(true);
  } else if (msg.type === "progress") {
    const label = { model: `downloading the ${msg.label} model`, qf: "reading the QF", restore: "restoring" }[msg.phase];
    if (msg.phase === "model") {
      setStatus(`${label}: ${(msg.done / 1e6).toFixed(1)} of ${(msg.total / 1e6).toFixed(1)} MB`, msg.total ? msg.done / msg.total : null);
    } else {
      setStatus(`${label}: tile ${msg.done} of ${msg.total}`, msg.done / msg.total);
    }
  } else if (msg.type === "result") {
    onResult(msg);
  } else if (msg.type === "png") {
    const url = URL.createObjectURL(msg.blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = msg.filename;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    setBusy(false);
  } else if (msg.type === "error") {
    showError(msg.message);
    setStatus("", 0);
    if (msg.request === "open") {
      state.image = null;
      state.result = null;
      resetInfo();
      clearImage();
    }
    state.pending = null;
    setBusy(false, "error");
  }
}

function onResult(msg) {
  const { rgba, ...info } = msg;
  state.result = info;
  window.fbcnnLast = info; // for tests and benchmarks
  drawAfter(msg.width, msg.height, new Uint8ClampedArray(rgba));
  $("qf-predicted").textContent = fmtQf(msg.predictedQf);
  $("not-jpeg").hidden = !msg.unchanged;
  if (msg.unchanged) {
    setStatus(msg.trace?.judged === false
      ? "Too small to tell whether this image's pixels bear JPEG compression: left unchanged"
      : "No JPEG compression found in this image's pixels: left unchanged", 1);
    finishRun();
    return;
  }
  if (msg.auto) {
    const rounded = String(Math.min(100, Math.max(1, Math.round(msg.usedQf))));
    $("strength").value = rounded;
    $("strength-number").value = rounded;
  }
  const mps = (msg.width * msg.height) / 1e6 / msg.seconds;
  // auto fed a JPEG read below its tables' QF that QF (as fbcnn restore): say what was read
  const how = !msg.auto ? ""
    : msg.tablesFloor ? ` (auto: read QF ${fmtQf(msg.predictedQf)}, below the file's QF)` : " (auto)";
  setStatus(`Restored with QF ${fmtQf(msg.usedQf)}${how} in ${msg.seconds.toFixed(1)} s`
    + ` (${msg.tiles} tile${msg.tiles === 1 ? "" : "s"}, ${mps.toFixed(2)} MP/s)`, 1);
  finishRun();
}

function finishRun() {
  state.runs += 1;
  document.body.dataset.runs = String(state.runs);
  setBusy(false);
  if (state.pending) {
    const { qf } = state.pending;
    state.pending = null;
    requestRestore(qf);
  }
}

// --------------------------------------------------------------------------- requests

function openFile(file, name) {
  if (!file) return;
  if (optionMessage) {
    showError(optionMessage);
    return;
  }
  hideError();
  state.image = null;
  state.result = null;
  state.pending = null;
  resetInfo();
  $("info-name").textContent = name;
  $("auto").checked = true;
  setStatus("opening…", null);
  setBusy(true);
  worker.postMessage({ type: "open", file, name });
}

function requestRestore(qf, anyway = false) {
  if (!state.image) return;
  if (state.busy) {
    state.pending = { qf };
    return;
  }
  hideError();
  setStatus(qf === null ? "restoring with the auto QF…" : `restoring with QF ${qf}…`, null);
  setBusy(true);
  worker.postMessage({ type: "restore", qf, anyway });
}

function setFixed(value) {
  const qf = Math.min(100, Math.max(1, Math.round(Number(value) || 50)));
  $("strength").value = String(qf);
  $("strength-number").value = String(qf);
  $("auto").checked = false;
  requestRestore(qf);
}

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) openFile(file, file.name);
  $("file").value = "";
});
$("auto").addEventListener("change", () => requestRestore($("auto").checked ? null : Number($("strength").value)));
$("strength").addEventListener("input", () => { $("strength-number").value = $("strength").value; });
$("strength").addEventListener("change", () => setFixed($("strength").value));
// Enter restores at the typed QF even when it is the value shown (auto's rounded QF),
// which fires no "change"; the "change" that follows an edited value's Enter is skipped
let enterCommitted = false;
$("strength-number").addEventListener("input", () => { enterCommitted = false; });
$("strength-number").addEventListener("keydown", (e) => {
  if (e.key !== "Enter") return;
  enterCommitted = true;
  setFixed($("strength-number").value);
});
$("strength-number").addEventListener("change", () => {
  if (enterCommitted) {
    enterCommitted = false;
    return;
  }
  setFixed($("strength-number").value);
});
$("restore-anyway").addEventListener("click", () => {
  if (!state.result?.unchanged || state.busy) return;
  requestRestore($("auto").checked ? null : Number($("strength").value), true);
});
$("download").addEventListener("click", () => {
  if (!state.result || state.busy) return;
  setBusy(true);
  worker.postMessage({ type: "png" });
});

const drop = $("drop");
for (const type of ["dragenter", "dragover"]) {
  window.addEventListener(type, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
}
window.addEventListener("dragleave", () => drop.classList.remove("over"));
window.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const file = e.dataTransfer?.files?.[0];
  if (file) openFile(file, file.name);
});
document.addEventListener("paste", (e) => {
  const item = [...(e.clipboardData?.items ?? [])].find((i) => i.kind === "file" && i.type.startsWith("image/"));
  const file = item?.getAsFile();
  if (file) openFile(file, file.name || "pasted.png");
});

// --------------------------------------------------------------------------- before / after

const view = { scale: 1, x: 0, y: 0, split: 0.5, width: 0, height: 0 };
const viewer = $("viewer");
const stage = $("stage");

function showImage(width, height, rgba) {
  for (const id of ["before", "after"]) {
    $(id).width = width;
    $(id).height = height;
  }
  $("before").getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
  $("after").getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
  stage.style.width = `${width}px`;
  stage.style.height = `${height}px`;
  viewer.classList.remove("empty");
  view.width = width;
  view.height = height;
  fit();
}

function drawAfter(width, height, rgba) {
  $("after").getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
}

function clearImage() {
  viewer.classList.add("empty");
  for (const id of ["before", "after"]) {
    $(id).width = 0;
    $(id).height = 0;
  }
}

function render() {
  stage.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
  stage.classList.toggle("pixelated", view.scale >= 2);
  const splitX = view.split * viewer.clientWidth;
  $("divider").style.left = `${splitX}px`;
  $("divider").setAttribute("aria-valuenow", String(Math.round(view.split * 100)));
  const cut = Math.min(view.width, Math.max(0, (splitX - view.x) / view.scale));
  $("before").style.clipPath = `inset(0 ${view.width - cut}px 0 0)`;
  $("zoom-level").textContent = view.width ? `${Math.round(view.scale * 100)}%` : "";
}

function zoomTo(scale, cx = viewer.clientWidth / 2, cy = viewer.clientHeight / 2) {
  const s = Math.min(32, Math.max(0.02, scale));
  view.x = cx - ((cx - view.x) * s) / view.scale;
  view.y = cy - ((cy - view.y) * s) / view.scale;
  view.scale = s;
  render();
}

function fit() {
  if (!view.width) return;
  const s = Math.min(viewer.clientWidth / view.width, viewer.clientHeight / view.height);
  view.scale = s;
  view.x = (viewer.clientWidth - view.width * s) / 2;
  view.y = (viewer.clientHeight - view.height * s) / 2;
  render();
}

$("zoom-in").addEventListener("click", () => zoomTo(view.scale * 1.5));
$("zoom-out").addEventListener("click", () => zoomTo(view.scale / 1.5));
$("zoom-fit").addEventListener("click", fit);
$("zoom-1").addEventListener("click", () => zoomTo(1));
viewer.addEventListener("wheel", (e) => {
  if (!view.width) return;
  e.preventDefault();
  const box = viewer.getBoundingClientRect();
  zoomTo(view.scale * Math.exp(-e.deltaY / 400), e.clientX - box.left, e.clientY - box.top);
}, { passive: false });

let drag = null;
viewer.addEventListener("pointerdown", (e) => {
  if (!view.width) return;
  const onDivider = e.target.closest("#divider") !== null;
  drag = { divider: onDivider, x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
  viewer.setPointerCapture(e.pointerId);
  if (!onDivider) viewer.classList.add("panning");
});
viewer.addEventListener("pointermove", (e) => {
  if (!drag) return;
  if (drag.divider) {
    const box = viewer.getBoundingClientRect();
    view.split = Math.min(1, Math.max(0, (e.clientX - box.left) / box.width));
  } else {
    view.x = drag.vx + e.clientX - drag.x;
    view.y = drag.vy + e.clientY - drag.y;
  }
  render();
});
const endDrag = () => {
  drag = null;
  viewer.classList.remove("panning");
};
viewer.addEventListener("pointerup", endDrag);
viewer.addEventListener("pointercancel", endDrag);
$("divider").addEventListener("keydown", (e) => {
  const step = { ArrowLeft: -0.02, ArrowRight: 0.02 }[e.key];
  if (step) {
    view.split = Math.min(1, Math.max(0, view.split + step));
    render();
    e.preventDefault();
  }
});
window.addEventListener("resize", render);
render();
setBusy(false, "idle");
if (optionMessage) showError(optionMessage);
