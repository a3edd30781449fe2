"""`fbcnn web build -o DIR`: the static site that restores JPEGs in the browser.

DIR gets:

* `index.html`, `app.js` (the page), `worker.js` (decoding, the network, tiling and JPEG
  consistency, in a Web Worker), `jpeg.js`, `tiles.js`, `consistency.js`, `png.js`,
  `style.css`: copied from `static/`;
* `models/color.onnx`, `models/gray.onnx`: the shipped models exported with the QF input
  (`fbcnn export --format onnx --qf-input`), so the strength slider can set the QF;
* `ort/`: the onnxruntime-web files the page loads, from the npm package pinned in this
  folder's `package.json` / `package-lock.json`: the WASM build (SIMD, threads) and, unless
  `webgpu=False`, the WebGPU build (which also runs on WASM); only what those two need;
* `fbcnn-web.json`: what was built (versions, models, channels, sizes); the page reads it.

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


def runtime_dir(cache: Path | None = None, npm: str | None = None,
                log: Callable[[str], None] | None = None) -> Path:
    """The onnxruntime-web `dist` folder, installed with `npm ci` if it is not there yet."""
    folder = _runtime_folder(cache or cache_root())
    dist = _dist(folder)
    if _complete(dist):
        return dist
    npm = npm or shutil.which("npm")
    if not npm:
        raise WebError(f"npm not found: fbcnn web build needs Node.js and npm to fetch "
                       f"{ORT_PACKAGE} {ort_version()} (e.g. apt-get install npm)")
    if log:
        log(f"installing {ORT_PACKAGE} {ort_version()} with npm ci into {folder}")
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.mkdir(parents=True)
        shutil.copy2(PACKAGE_JSON, tmp / "package.json")
        shutil.copy2(PACKAGE_LOCK, tmp / "package-lock.json")
        try:
            run = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                                  "--loglevel=error"], cwd=tmp, capture_output=True,
                                 text=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise WebError(f"npm ci did not finish in {NPM_TIMEOUT_S} s") from None
        except OSError as e:
            raise WebError(f"cannot run npm: {e.strerror or e}") from None
        if run.returncode != 0:
            raise WebError(f"npm ci failed: {_one_line(run.stderr or run.stdout)}")
        installed = json.loads((tmp / "node_modules" / ORT_PACKAGE / "package.json")
                               .read_text())["version"]
        if installed != ort_version():
            raise WebError(f"npm ci installed {ORT_PACKAGE} {installed}, "
                           f"expected {ort_version()}")
        if not _complete(_dist(tmp)):
            missing = [n for ns in RUNTIME_FILES.values() for n in ns
                       if not (_dist(tmp) / n).is_file()]
            raise WebError(f"{ORT_PACKAGE} {installed} lacks {', '.join(missing)}")
        try:
            tmp.replace(folder)
        except OSError:
            if not _complete(dist):  # not another build's install finished first
                raise
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
        return page + runtime + self.files.get(f"models/{model}.onnx", 0)


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


def _export(name: str, source: str | Path, target: Path) -> None:
    from ..networks.checkpoints import CheckpointError
    from ..networks.export import ExportError, export_model

    try:
        export_model(source, "onnx", target, qf_input=True)
    except (CheckpointError, ExportError) as e:
        raise WebError(f"model {name}: {e}") from None
    channels = _channels(target)
    if channels != MODEL_CHANNELS[name]:
        raise WebError(f"model {name} ({source}) takes {channels} channels, "
                       f"expected {MODEL_CHANNELS[name]}")


def _qf_tile(source: str | Path) -> int | None:
    from ..networks.modelfiles import resolve_model, training_patch_size

    return training_patch_size(resolve_model(source))


def build_site(output: str | Path, models: Mapping[str, str | Path] | None = None,
               webgpu: bool = True, cache: Path | None = None,
               log: Callable[[str], None] | None = None) -> BuildReport:
    """Write the static site to `output` (a new or empty folder, or an earlier build, which
    is replaced once the new one is complete). `models`: 'color' and 'gray' -> a model name
    or checkpoint path (default: the shipped models)."""
    from ..version import __version__

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
        (tmp / "models").mkdir()
        for name, source in models.items():
            if log:
                log(f"exporting {name} ({source}) to ONNX")
            _export(name, source, tmp / "models" / f"{name}.onnx")
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
            "models": {name: {"file": f"models/{name}.onnx", "channels": MODEL_CHANNELS[name],
                              "source": str(source),
                              # the QF is read at the training patch size (fbcnn.engine.restorer)
                              "qf_tile": _qf_tile(source),
                              "bytes": (tmp / "models" / f"{name}.onnx").stat().st_size}
                       for name, source in models.items()},
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
