"""`fbcnn web build -o DIR`: the static site that restores JPEGs in the browser.

DIR gets:

* `index.html`, `app.js` (the page), `worker.js` (decoding, the network, tiling and JPEG
  consistency, in a Web Worker), `jpeg.js`, `tiles.js`, `consistency.js`, `png.js`,
  `style.css`: copied from `static/`;
* `models/<name>.qf.onnx`, `models/<name>.reconstruct.onnx`, `models/<name>.weights` for
  `color` and `gray` (the shipped models): the two parts of the network the page runs
  (`fbcnn.networks.weightgraphs`): `qf` (image -> the decoupler's QF, read over windows)
  and `reconstruct` (image and a QF in 1..100 -> the restored image: encoder and decoder
  without the QF head, what every tile runs once the QF is known, so the strength slider
  can set the QF); both read their tensors from the `.weights` file (ONNX external data,
  each tensor once), and are checked against the whole export (`fbcnn export --format
  onnx --qf-input`) before they are kept;
* `ort/`: the onnxruntime-web files the page loads, from the npm package pinned in this
  folder's `package.json` / `package-lock.json`: the WASM build (SIMD, threads) and, unless
  `webgpu=False`, the WebGPU build (which also runs on WASM); only what those two need;
* `jpegli_tables.json`: the tables jpegli writes at each quality
  (`fbcnn.jpeg.qf.JPEGLI_TABLES`), by which the QF rule of a single JPEG
  (`fbcnn.jpeg.qf.single_jpeg_qf`) raises a jpegli file to its quality, not its tables' QF;
  the page loads it only for a JPEG the rule may apply to;
* `fbcnn-web.json`: what was built (versions, models, channels, sizes, the jpegli tables'
  file); the page reads it.

The npm package is installed once with `npm ci` into a cache folder (`FBCNN_WEB_CACHE`, else
`$XDG_CACHE_HOME/fbcnn/web`, else `~/.cache/fbcnn/web`), keyed by the lock file's hash.
Every failure is a WebError with a one-line message.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import WebError

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PACKAGE_JSON = HERE / "package.json"
PACKAGE_LOCK = HERE / "package-lock.json"
ORT_PACKAGE = "onnxruntime-web"
MANIFEST = "fbcnn-web.json"
JPEGLI_FILE = "jpegli_tables.json"  # fbcnn.jpeg.qf.JPEGLI_TABLES, beside the manifest
DEFAULT_MODELS: dict[str, str] = {"color": "color", "gray": "gray"}
MODEL_CHANNELS = {"color": 3, "gray": 1}
# The onnxruntime-web files each backend needs (the package ships more variants: JSEP,
# JSPI, bundles, source maps; none of them is copied). The page imports the entry module,
# which loads the .mjs glue and the .wasm beside it.
RUNTIME_FILES: dict[str, tuple[str, ...]] = {
    "wasm": ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"),
    "webgpu": ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs",
               "ort-wasm-simd-threaded.asyncify.wasm"),
}
NPM_TIMEOUT_S = 900
MODEL_SUFFIXES = (".qf.onnx", ".reconstruct.onnx", ".weights")  # what a model is in the site
WEIGHT_BYTES_MIN = 64  # smaller tensors stay inside each graph


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def ort_version() -> str:
    """The onnxruntime-web version pinned in package.json."""
    data = json.loads(PACKAGE_JSON.read_text())
    return str(data["dependencies"][ORT_PACKAGE])


def cache_root() -> Path:
    """Where `npm ci` installs onnxruntime-web (never inside the repository's sources)."""
    if os.environ.get("FBCNN_WEB_CACHE"):
        return Path(os.environ["FBCNN_WEB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fbcnn" / "web"


def _runtime_folder(cache: Path) -> Path:
    key = hashlib.sha256(PACKAGE_LOCK.read_bytes()).hexdigest()[:12]
    return cache / f"{ORT_PACKAGE}-{ort_version()}-{key}"


def _dist(folder: Path) -> Path:
    return folder / "node_modules" / ORT_PACKAGE / "dist"


def _complete(dist: Path) -> bool:
    return all((dist / name).is_file() for names in RUNTIME_FILES.values() for name in names)


def _find_npm(npm: str | None) -> str:
    """`npm` if given, else the one on PATH (a WebError if there is none)."""
    found = npm or shutil.which("npm")
    if not found:
        raise WebError(f"npm not found: fbcnn web build needs Node.js and npm to fetch "
                       f"{ORT_PACKAGE} {ort_version()} (e.g. apt-get install npm)")
    return found


def _npm_ci(npm: str, folder: Path) -> None:
    """Runs `npm ci` in `folder` (a WebError with npm's last line if it fails)."""
    try:
        run = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                              "--loglevel=error"], cwd=folder, capture_output=True,
                             text=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise WebError(f"npm ci did not finish in {NPM_TIMEOUT_S} s") from None
    except OSError as e:
        raise WebError(f"cannot run npm: {e.strerror or e}") from None
    if run.returncode != 0:
        raise WebError(f"npm ci failed: {_one_line(run.stderr or run.stdout)}")


def _check_install(folder: Path) -> None:
    """A WebError unless `folder` holds the pinned onnxruntime-web with every runtime file."""
    installed = json.loads((folder / "node_modules" / ORT_PACKAGE / "package.json")
                           .read_text())["version"]
    if installed != ort_version():
        raise WebError(f"npm ci installed {ORT_PACKAGE} {installed}, "
                       f"expected {ort_version()}")
    if not _complete(_dist(folder)):
        missing = [n for ns in RUNTIME_FILES.values() for n in ns
                   if not (_dist(folder) / n).is_file()]
        raise WebError(f"{ORT_PACKAGE} {installed} lacks {', '.join(missing)}")


def _install_runtime(npm: str, tmp: Path, folder: Path) -> None:
    """`npm ci` into the fresh folder `tmp`, checked, then moved to `folder`."""
    tmp.mkdir(parents=True)
    shutil.copy2(PACKAGE_JSON, tmp / "package.json")
    shutil.copy2(PACKAGE_LOCK, tmp / "package-lock.json")
    _npm_ci(npm, tmp)
    _check_install(tmp)
    try:
        tmp.replace(folder)
    except OSError:
        if not _complete(_dist(folder)):  # not another build's install finished first
            raise


def runtime_dir(cache: Path | None = None, npm: str | None = None,
                log: Callable[[str], None] | None = None) -> Path:
    """The onnxruntime-web `dist` folder, installed with `npm ci` if it is not there yet."""
    folder = _runtime_folder(cache or cache_root())
    dist = _dist(folder)
    if _complete(dist):
        return dist
    npm = _find_npm(npm)
    if log:
        log(f"installing {ORT_PACKAGE} {ort_version()} with npm ci into {folder}")
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        _install_runtime(npm, tmp, folder)
    except OSError as e:
        raise WebError(f"cannot install {ORT_PACKAGE} into {folder}: "
                       f"{e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dist


@dataclass
class BuildReport:
    path: Path
    files: dict[str, int] = field(default_factory=dict)  # relative path -> bytes

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    def visit_bytes(self, backend: str = "wasm", model: str = "color") -> int:
        """What a visit downloads to restore one image: the page, one runtime, one model."""
        page = sum(size for name, size in self.files.items() if "/" not in name)
        runtime = sum(self.files.get(f"ort/{name}", 0) for name in RUNTIME_FILES[backend])
        return page + runtime + sum(self.files.get(f"models/{model}{suffix}", 0)
                                    for suffix in MODEL_SUFFIXES)


def _check_output(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise WebError(f"cannot write {output}: it is a file")
    if output.is_dir() and any(output.iterdir()) and not (output / MANIFEST).is_file():
        raise WebError(f"{output} is not empty and holds no earlier build; "
                       "pick a new or empty folder")
    parent = output.parent
    if not parent.is_dir():
        raise WebError(f"cannot write {output}: no such folder {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WebError(f"cannot write {output}: folder {parent} is not writable")


def _channels(path: Path) -> int:
    import onnx

    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return int(dims[1].dim_value)


def _export_parts(network: object, folder: Path) -> dict[str, Path]:
    """The `qf` and `reconstruct` parts of `network` (fbcnn.networks.weightgraphs), each an
    ONNX file with its tensors inside, in `folder`."""
    import torch

    from ...networks.export import _quiet
    from ...networks.weightgraphs import _QfReader, _Reconstructor

    channels = network.config.in_channels  # type: ignore[attr-defined]
    image = torch.rand(1, channels, 37, 45, generator=torch.Generator().manual_seed(0))
    spatial = {0: "batch", 2: "height", 3: "width"}
    specs = {
        "qf": (_QfReader(network), (image,), ["image"], ["qf_network"],
               {"image": spatial, "qf_network": {0: "batch"}}),
        "reconstruct": (_Reconstructor(network), (image, torch.tensor([[50.0]])),
                        ["image", "qf"], ["restored"],
                        {"image": spatial, "qf": {0: "batch"}, "restored": spatial}),
    }
    paths = {}
    for part, (module, example, names, outputs, axes) in specs.items():
        paths[part] = folder / f"{part}.onnx"
        with _quiet(), torch.no_grad():
            torch.onnx.export(module.eval(), example, str(paths[part]), input_names=names,
                              output_names=outputs, dynamic_axes=axes, opset_version=17,
                              dynamo=False, do_constant_folding=True)
    return paths


def _share_weights(parts: dict[str, Path], targets: dict[str, Path], weights: Path) -> None:
    """Write each part to its target with its tensors (those of WEIGHT_BYTES_MIN bytes and
    more) read from one `weights` file beside it (ONNX external data), each tensor once: the
    two graphs share the encoder, so a visit downloads it once."""
    import onnx
    from onnx import TensorProto

    blob = bytearray()
    placed: dict[bytes, tuple[int, int]] = {}
    models = {part: onnx.load(str(path)) for part, path in parts.items()}
    for model in models.values():
        for init in model.graph.initializer:
            data = init.raw_data
            if init.data_location == TensorProto.EXTERNAL or len(data) < WEIGHT_BYTES_MIN:
                continue
            if data not in placed:
                blob.extend(b"\0" * (-len(blob) % 16))  # aligned, as numpy likes them
                placed[data] = (len(blob), len(data))
                blob.extend(data)
            offset, length = placed[data]
            init.ClearField("raw_data")
            init.data_location = TensorProto.EXTERNAL
            del init.external_data[:]
            for key, value in (("location", weights.name), ("offset", str(offset)),
                               ("length", str(length))):
                init.external_data.add(key=key, value=value)
    weights.write_bytes(bytes(blob))
    for part, model in models.items():
        onnx.save(model, str(targets[part]))


def _check_parts(whole: Path, targets: dict[str, Path], channels: int) -> None:
    """The parts give the whole export's outputs (onnxruntime, CPU)."""
    import numpy as np
    import onnxruntime as ort

    def run(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        return session.run(None, {k: v for k, v in feed.items() if k in names})

    feed = {"image": np.random.default_rng(0).random((2, channels, 24, 40), dtype=np.float32),
            "qf": np.array([[10.0], [75.0]], np.float32)}
    restored, qf = run(whole, feed)
    for got, want in ((run(targets["reconstruct"], feed)[0], restored),
                      (run(targets["qf"], feed)[0], qf)):
        if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=1e-4):
            raise WebError("the model's parts differ from its whole graph")


def _export(name: str, source: str | Path, models: Path) -> dict[str, str]:
    """The model's two graphs and their shared weights in `models`; their file names."""
    import tempfile

    from ...networks.checkpoints import CheckpointError, load_network
    from ...networks.export import ExportError, export_model
    from ...networks.modelfiles import resolve_model

    files = {"qf": f"{name}.qf.onnx", "reconstruct": f"{name}.reconstruct.onnx",
             "weights": f"{name}.weights"}
    with tempfile.TemporaryDirectory() as folder:
        whole = Path(folder) / "whole.onnx"
        try:
            export_model(source, "onnx", whole, qf_input=True)
            channels = _channels(whole)
            if channels != MODEL_CHANNELS[name]:
                raise WebError(f"model {name} ({source}) takes {channels} channels, "
                               f"expected {MODEL_CHANNELS[name]}")
            network = load_network(resolve_model(source)).network.float().eval()
            parts = _export_parts(network, Path(folder))
        except (CheckpointError, ExportError) as e:
            raise WebError(f"model {name}: {e}") from None
        targets = {part: models / files[part] for part in parts}
        _share_weights(parts, targets, models / files["weights"])
        _check_parts(whole, targets, channels)
    return files


def _qf_tile(source: str | Path) -> int | None:
    from ...networks.modelfiles import resolve_model, training_patch_size

    return training_patch_size(resolve_model(source))


def build_site(output: str | Path, models: Mapping[str, str | Path] | None = None,
               webgpu: bool = True, cache: Path | None = None,
               log: Callable[[str], None] | None = None) -> BuildReport:
    """Write the static site to `output` (a new or empty folder, or an earlier build, which
    is replaced once the new one is complete). `models`: 'color' and 'gray' -> a model name
    or checkpoint path (default: the shipped models)."""
    from ...jpeg.qf import JPEGLI_TABLES
    from ...version import __version__

    output = Path(output)
    models = dict(DEFAULT_MODELS if models is None else models)
    if set(models) != set(MODEL_CHANNELS):
        raise WebError(f"the site needs exactly the models {sorted(MODEL_CHANNELS)}")
    _check_output(output)
    dist = runtime_dir(cache, log=log)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.mkdir()
        for item in sorted(STATIC.iterdir()):
            if item.is_file():
                shutil.copy2(item, tmp / item.name)
        shutil.copy2(JPEGLI_TABLES, tmp / JPEGLI_FILE)
        (tmp / "models").mkdir()
        files = {}
        for name, source in models.items():
            if log:
                log(f"exporting {name} ({source}) to ONNX")
            files[name] = _export(name, source, tmp / "models")
        (tmp / "ort").mkdir()
        backends = ["wasm", "webgpu"] if webgpu else ["wasm"]
        for backend in backends:
            for file in RUNTIME_FILES[backend]:
                shutil.copy2(dist / file, tmp / "ort" / file)
        (tmp / "ort" / "NOTICE.txt").write_text(
            f"{ORT_PACKAGE} {ort_version()} (ONNX Runtime Web), MIT License, "
            "Copyright (c) Microsoft Corporation. Copied unchanged from the npm package.\n")
        manifest = {
            "fbcnn": __version__,
            "onnxruntime_web": ort_version(),
            "backends": backends,
            "models": {name: {"files": {part: f"models/{file}"
                                        for part, file in files[name].items()},
                              "channels": MODEL_CHANNELS[name],
                              "source": str(source),
                              # the QF is read at the training patch size (fbcnn.engine.restorer)
                              "qf_tile": _qf_tile(source),
                              "bytes": {part: (tmp / "models" / file).stat().st_size
                                        for part, file in files[name].items()}}
                       for name, source in models.items()},
            # the tables jpegli writes and their qualities: a single JPEG's QF rule
            # (fbcnn.jpeg.qf) raises jpegli's files to their quality
            "jpegli_tables": JPEGLI_FILE,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if output.exists():
            shutil.rmtree(output)
        tmp.replace(output)
    except OSError as e:
        raise WebError(f"cannot write {output}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = {str(p.relative_to(output)): p.stat().st_size
             for p in sorted(output.rglob("*")) if p.is_file()}
    return BuildReport(output, files)
