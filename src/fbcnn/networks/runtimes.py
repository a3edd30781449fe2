"""Which runtime runs the network, and the graph it runs.

Three runtimes: OpenVINO and onnxruntime run the model's ONNX graph on numpy arrays (so
restoring never imports torch); torch runs the `fbcnn.networks.network.FBCNN` module.
`backend="auto"` picks:

* **torch** where the device may be a GPU (`cuda`, `mps`, or `auto` on a machine with an
  NVIDIA device node or a Mac) and torch is installed: CUDA and MPS run through torch;
* else **OpenVINO** on the CPU: bf16 where the CPU computes it natively (AMX-BF16 or
  AVX512-BF16), f32 elsewhere, and `--precision int8` (a quantised graph, OpenVINO only).
  On the 2-core AMD EPYC it runs a 512x512 tile 2.2x faster than onnxruntime (fp32), as
  fast as torch in bf16, and needs no torch import (a 64x64 JPEG: 0.48 s whole process;
  docs/benchmarks.md);
* else onnxruntime (fp32), else torch.

The graph: a shipped model has its graph beside its weights (`color.onnx` next to
`color.safetensors`, made by `scripts/make_graphs.py`), which reads its tensors straight
from the safetensors file (ONNX external data) and records the file's sha256
(`GRAPH_WEIGHTS_KEY`); a graph whose hash does not match is not used. Any other weights file
is exported once (torch needed, a few seconds) into the cache folder (`FBCNN_CACHE_DIR`,
else `$XDG_CACHE_HOME/fbcnn`, else `~/.cache/fbcnn`) under its sha256, so a changed file
gets a new graph. The int8 graph of a shipped model is `<name>.int8.xml` / `.bin`
(OpenVINO IR, `scripts/make_int8_graphs.py`).

`FBCNN_BACKEND=openvino|onnx|torch|auto` in the environment sets what `auto` means.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from .modelfiles import file_sha256

BACKENDS = ("auto", "openvino", "onnx", "torch")
# int8: OpenVINO's quantised graph; fp16: torch on CUDA cards without bf16
PRECISIONS = ("auto", "fp32", "bf16", "int8", "fp16")
FP16_NEEDS = "--precision fp16 is for CUDA GPUs (torch: --device cuda or auto)"
GRAPH_VERSION = 1  # bump when the cached graph's contract changes
GRAPH_WEIGHTS_KEY = "fbcnn.weights_sha256"  # metadata of a graph made for one weights file
INT8_SUFFIX = ".int8.xml"
INT8_NEEDS = ("--precision int8 runs the model's quantised graph in OpenVINO "
              "(--backend auto or openvino, on the CPU)")


def cache_dir() -> Path:
    if os.environ.get("FBCNN_CACHE_DIR"):
        return Path(os.environ["FBCNN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fbcnn"


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def onnxruntime_installed() -> bool:
    return installed("onnxruntime")


def openvino_installed() -> bool:
    return installed("openvino")


def torch_installed() -> bool:
    return installed("torch")


def _may_have_gpu() -> bool:
    """An NVIDIA device node, or a Mac (MPS): torch's 'auto' device could be a GPU there."""
    return sys.platform == "darwin" or Path("/dev/nvidiactl").exists()


def _check(backend: str, precision: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, "
                         f"got {precision!r}")
    if backend == "auto":
        backend = os.environ.get("FBCNN_BACKEND", "auto")
        if backend not in BACKENDS:
            raise ValueError(f"FBCNN_BACKEND must be one of {', '.join(BACKENDS)}, "
                             f"got {backend!r}")
    return backend


def choose_backend(backend: str, device: str, precision: str,
                   megapixels: float | None = None) -> str:
    """'openvino', 'onnx' or 'torch' for a model in a .safetensors / .pth file (see the
    module doc). `megapixels` is accepted for callers of earlier versions; the choice no
    longer depends on the image's size."""
    backend = _check(backend, precision)
    on_cpu = device in ("auto", "cpu")
    if precision == "int8" and (backend not in ("auto", "openvino") or not on_cpu):
        raise ValueError(INT8_NEEDS)
    if precision == "fp16":
        if backend not in ("auto", "torch") or device in ("cpu", "mps"):
            raise ValueError(FP16_NEEDS)
        return "torch"
    if backend != "auto" or precision == "int8":
        return _asked(backend if backend != "auto" else "openvino", on_cpu, precision)
    gpu = not on_cpu or (device == "auto" and _may_have_gpu())
    if gpu and (torch_installed() or not on_cpu):
        return "torch"
    if openvino_installed():
        return "openvino"
    if onnxruntime_installed() and precision != "bf16":
        return "onnx"
    return "torch"


def _asked(backend: str, on_cpu: bool, precision: str) -> str:
    """The runtime asked for by name, once it is known to be usable (else ValueError)."""
    if backend == "openvino":
        if not on_cpu:
            raise ValueError("the openvino backend runs on the CPU (use --device cpu, or "
                             "--backend torch for a GPU)")
        if not openvino_installed():
            needs = INT8_NEEDS if precision == "int8" else "the openvino backend needs OpenVINO"
            raise ValueError(f"{needs}: pip install openvino")
    elif backend == "onnx":
        if not on_cpu or precision == "bf16":
            raise ValueError("the onnx backend runs on the CPU in fp32 "
                             "(use --device cpu --precision fp32, or --backend torch)")
        if not onnxruntime_installed():
            raise ValueError("the onnx backend needs onnxruntime: pip install onnxruntime")
    return backend


def shipped_graph(weights: Path, precision: str = "auto") -> Path | None:
    """The graph made for `weights` and kept beside it (`<stem>.onnx`, or for int8
    `<stem>.int8.xml`), if there is one. Whether it matches the file's bytes is checked
    when it is loaded (`graph_matches`)."""
    if weights.suffix.lower() != ".safetensors":
        return None
    graph = weights.with_name(weights.stem + (INT8_SUFFIX if precision == "int8" else ".onnx"))
    return graph if graph.is_file() else None


def graph_matches(metadata: dict[str, str], weights: Path) -> bool:
    """True when a graph's metadata names the sha256 of `weights` (so it runs those weights)."""
    return metadata.get(GRAPH_WEIGHTS_KEY) == file_sha256(weights)


def cached_graph(weights: str | Path) -> Path:
    """The ONNX graph of a weights file, exported into the cache on first use (needs torch).
    Raises OSError when the cache cannot be written, ExportError / CheckpointError when
    the export fails."""
    weights = Path(weights)
    digest = file_sha256(weights)[:20]
    path = cache_dir() / "onnx" / f"{weights.stem}-{digest}-v{GRAPH_VERSION}.onnx"
    if path.is_file():
        return path
    if not torch_installed():
        raise OSError(f"running {weights.name} as a graph needs a one-time export with torch "
                      "(pip install 'fbcnn[torch]')")
    path.parent.mkdir(parents=True, exist_ok=True)
    from .export import export_model

    export_model(weights, "onnx", path, qf_input=True)
    return path
