"""Which engine runs the network: torch, or onnxruntime on a graph exported once and cached.

On a CPU without native bf16 the network runs in fp32, and there onnxruntime runs this
architecture 1.3-1.5x faster than torch (docs/benchmarks.md) and starts without importing
torch (about 1.5 s of every `fbcnn restore`). So `backend="auto"` picks onnxruntime when:
the device is the CPU (`cpu`, or `auto` on a machine with no NVIDIA device and not a Mac),
the precision is fp32 (`fp32`, or `auto` on a CPU without AMX / AVX512-BF16, where `auto`
means fp32 anyway), and onnxruntime and onnx are installed. Elsewhere, torch: CUDA, MPS and
bf16 CPUs are faster in torch, except for small jobs on a bf16 CPU: there torch in bf16
computes about 1.5x faster than onnxruntime in fp32, but importing torch costs every process
about 1.4 s more, so for an image under `BF16_TORCH_MIN_MEGAPIXELS` (when the caller says
how big, as `pipeline.ModelSet` does per image for `fbcnn restore` and the app) `auto` still
picks onnxruntime (docs/benchmarks.md). Per image, not per batch: an image's pixels do not
depend on what else a batch holds.

The graph is the model's `fbcnn export --qf-input` (QF 0 = the image's own prediction),
written once per weights file into the cache folder (`FBCNN_CACHE_DIR`, else
`$XDG_CACHE_HOME/fbcnn`, else `~/.cache/fbcnn`) under the weights' sha256, so a changed
file gets a new graph. Exporting needs torch (a few seconds, the first time only); when the
cache cannot be written or the export fails, the model runs in torch.

`FBCNN_BACKEND=torch|onnx|auto` in the environment sets what `auto` means.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from .modelfiles import file_sha256

BACKENDS = ("auto", "torch", "onnx")
GRAPH_VERSION = 1  # bump when the cached graph's contract changes
# On a CPU with native bf16 (AMD EPYC with AVX512-BF16, `fbcnn restore` whole process): torch
# bf16 restores 1.0 s / MP and starts in 1.9 s, onnxruntime fp32 1.6 s / MP and 0.5 s, so
# torch pays for its start-up from about 2.4 MP on.
BF16_TORCH_MIN_MEGAPIXELS = 2.0


def cache_dir() -> Path:
    if os.environ.get("FBCNN_CACHE_DIR"):
        return Path(os.environ["FBCNN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fbcnn"


def onnxruntime_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def _may_have_gpu() -> bool:
    """An NVIDIA device node, or a Mac (MPS): torch's 'auto' device could be a GPU there."""
    return sys.platform == "darwin" or Path("/dev/nvidiactl").exists()


def choose_backend(backend: str, device: str, precision: str,
                   megapixels: float | None = None) -> str:
    """'torch' or 'onnx' for a model in a .safetensors / .pth file (see the module doc).
    `megapixels`: the size of the image to restore, when known (None: a big one)."""
    from .device import PRECISIONS

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
    if backend == "onnx":
        if device not in ("auto", "cpu") or precision == "bf16":
            raise ValueError("the onnx backend runs on the CPU in fp32 "
                             "(use --device cpu --precision fp32, or --backend torch)")
        if not onnxruntime_installed():
            raise ValueError("the onnx backend needs onnxruntime and onnx: "
                             "pip install onnxruntime onnx")
        return "onnx"
    if backend == "torch":
        return "torch"
    from .device import cpu_has_native_bf16

    if device not in ("auto", "cpu") or (device == "auto" and _may_have_gpu()):
        return "torch"
    if precision == "bf16":
        return "torch"
    if precision == "auto" and cpu_has_native_bf16() and (
            megapixels is None or megapixels >= BF16_TORCH_MIN_MEGAPIXELS):
        return "torch"
    return "onnx" if onnxruntime_installed() else "torch"


def cached_graph(weights: str | Path) -> Path:
    """The ONNX graph of a weights file, exported into the cache on first use.
    Raises OSError when the cache cannot be written, ExportError / CheckpointError when
    the export fails."""
    weights = Path(weights)
    digest = file_sha256(weights)[:20]
    path = cache_dir() / "onnx" / f"{weights.stem}-{digest}-v{GRAPH_VERSION}.onnx"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    from .export import export_model

    export_model(weights, "onnx", path, qf_input=True)
    return path
