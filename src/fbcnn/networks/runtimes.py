"""What runs the network: the interface every runtime implements (`Runtime`), the facts the
engine is given about a loaded model (`ModelInfo`), which runtime runs it, and the graph it
runs.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

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
# what a runtime without a QF input says when fed another QF than its own reading
NO_QF_INPUT = ("this ONNX model was exported without --qf-input, so it can only use its own "
               "QF prediction; re-export it with --qf-input to set the QF")


@runtime_checkable
class Runtime(Protocol):
    """A network as the engine drives it, numpy in and numpy out (the engine's `Restorer`):
    `fbcnn.networks.torch_runtime.TorchRuntime` (the torch module),
    `fbcnn.networks.onnx_runtime.OnnxFBCNN` and `fbcnn.networks.openvino_runtime.OpenVinoFBCNN`
    (its graph).

    Pixels go in as uint8 (N, H, W, C), and each runtime turns them into the network's
    [0, 1] floats its own way (the two ways differ in the last bit, and each is what its
    runtime's results were checked with); restored images come out as float32
    (N, H, W, C) in the network's [0, 1] scale, not clamped. QF values are the network's
    own, (100 - QF) / 100 (`fbcnn.networks.config.qf_to_network`): readings (N, 1) float32,
    a QF fed one float for the whole batch. A runtime without a QF input
    (`has_qf_input` False: a graph exported without `--qf-input`) always uses its own
    reading."""

    name: str  # 'openvino', 'onnx' or 'torch', as `fbcnn restore --backend` names it
    precision: str  # what it computes in: 'fp32', 'bf16', 'fp16' or 'int8'
    device: str  # where it runs: 'cpu', 'cuda:0', ...
    channels: int  # 1 (grey) or 3 (colour), in and out
    has_qf_input: bool

    def run(self, pixels: np.ndarray,
            qf: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(restored, the QF read); with `qf` the decoder is fed it instead of the reading."""
        ...

    def predict_qf(self, pixels: np.ndarray) -> np.ndarray:
        """The QF read from each image (the decoupler alone where the runtime can)."""
        ...

    def reconstruct(self, pixels: np.ndarray, qf: float) -> np.ndarray:
        """The restored images with `qf` fed, when the reading is not wanted (skips the
        decoupler where the runtime can)."""
        ...

    def set_threads(self, threads: int) -> None:
        """CPU threads the network may use (0: one per core)."""
        ...

    def release_memory(self) -> None:
        """Hand back memory the runtime keeps between runs (after a tiled restore)."""
        ...

    def prepare(self) -> None:
        """Make ready now what a restore will run (compile its graphs), so that a load in a
        thread of its own spares the first image the wait; nothing where loading did it."""
        ...


@dataclass(frozen=True)
class ModelInfo:
    """What the engine is told about a loaded model, fixed when it is loaded: its identity,
    its runtime's facts, and the size its QF is best read at."""

    name: str  # 'color', ..., or the file's name
    source: Path | None  # the weights or graph file it was loaded from (None: given in memory)
    runtime: str  # 'openvino', 'onnx' or 'torch' (`Runtime.name`)
    precision: str  # 'fp32', 'bf16', 'fp16' or 'int8'
    device: str  # 'cpu', 'cuda:0', ...
    channels: int  # 1 (grey) or 3 (colour)
    has_qf_input: bool  # False: it always uses its own QF reading
    # the patch size of its last training stage (`modelfiles.training_patch_size`): its QF
    # is read best over windows of that size; None when not known (published checkpoints)
    qf_tile: int | None = None

    def __post_init__(self) -> None:
        if self.qf_tile is not None and not 8 <= self.qf_tile <= 4096:
            raise ValueError(f"qf_tile must be 8..4096 pixels, got {self.qf_tile}")

    @classmethod
    def of(cls, runtime: Runtime, name: str = "model", source: Path | None = None,
           qf_tile: int | None = None) -> ModelInfo:
        """The facts of a model loaded into `runtime`."""
        return cls(name, source, runtime.name, runtime.precision, runtime.device,
                   runtime.channels, runtime.has_qf_input, qf_tile)


def as_runtime(network: Any, device: str = "auto", precision: str = "auto") -> Runtime:
    """`network` behind the `Runtime` interface: a runtime as it is (it has its own device
    and precision), a torch module in a `TorchRuntime` on `device` in `precision`."""
    if isinstance(network, Runtime):
        return network
    from .torch_runtime import TorchRuntime

    return TorchRuntime(network, device=device, precision=precision)


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
    module doc). `megapixels` is accepted and unused: the choice does not depend on the
    image's size."""
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


def _asked(runtime: str, on_cpu: bool, precision: str) -> str:
    """The runtime asked for by name, once it is known to be usable (else ValueError)."""
    if runtime == "openvino":
        if not on_cpu:
            raise ValueError("the openvino backend runs on the CPU (use --device cpu, or "
                             "--backend torch for a GPU)")
        if not openvino_installed():
            needs = INT8_NEEDS if precision == "int8" else "the openvino backend needs OpenVINO"
            raise ValueError(f"{needs}: pip install openvino")
    elif runtime == "onnx":
        if not on_cpu or precision == "bf16":
            raise ValueError("the onnx backend runs on the CPU in fp32 "
                             "(use --device cpu --precision fp32, or --backend torch)")
        if not onnxruntime_installed():
            raise ValueError("the onnx backend needs onnxruntime: pip install onnxruntime")
    return runtime


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
