"""Run an FBCNN graph in OpenVINO: the default CPU runtime (`fbcnn.networks.runtimes`).

OpenVINO computes in bf16 on CPUs that do it natively (AMX-BF16 or AVX512-BF16) and in f32
elsewhere (`precision` 'auto'; 'fp32' and 'bf16' ask for one). On the 2-core AMD EPYC
(AVX512-BF16) a 512x512 tile takes 0.125 s in bf16, as long as torch's bf16 and against
0.275 s in onnxruntime fp32 (`python scripts/probes/graph_runtimes.py`); a whole 2048x1536
image in one pass 1.41 s against torch's 2.07 (docs/benchmarks.md); and it needs no torch.

The graph is compiled once per model with dynamic sizes: a fixed-size compile ran a 512x512
tile 9% faster (0.114 s) but would need one compile per tile shape (balanced tiles come in
up to four shapes, QF windows in more), each about as long as the tiles it would save on a
photo. The compiled model is cached on disk (OpenVINO's `CACHE_DIR`, under
`fbcnn.networks.runtimes.cache_dir()/openvino`, keyed by OpenVINO on the graph and its weights),
which takes reading and compiling from 0.17 s to 0.06 s in later processes.
A cache that cannot be written is skipped.

Each thread gets its own infer request, so a batch that restores several images at a time
can share one compiled model.

Beside a shipped model's graph lie two parts of it (`scripts/make_graphs.py`), made for the
same weights: `<name>.qf.onnx`, the decoupler alone (encoder and QF head: the global QF read
over windows), and `<name>.reconstruct.onnx`, encoder and decoder fed a QF (what every tile
runs once the QF is known): the whole graph would also run the QF head on every tile, about
a ninth of its work. Each is compiled by `prepare` (which `fbcnn restore` calls in the
thread that loads the model while the first image is read) or on first use; a part whose
metadata names other weights is not used.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..device import available_cpus
from .config import network_to_qf
from .modelfiles import CheckpointError
from .onnx_runtime import GraphFBCNN, Port, first_line
from .runtimes import GRAPH_WEIGHTS_KEY, cache_dir

OV_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}
PRECISION_KEY = "fbcnn.precision"  # 'int8' in a quantised graph's metadata
PARTS = ("qf", "reconstruct")  # sibling graphs `<stem>.<part>.onnx` (see the module doc)


def import_openvino() -> Any:
    """The `openvino` module, imported without its model converter when nothing imported it
    yet: `import openvino` also imports `openvino.tools.ovc` (the converter, its telemetry
    and their dependencies), which a restore never uses; in `fbcnn restore` that import ran
    beside the first image's analysis and cost the whole process 4% of its time (a
    2048x1536 photo, interleaved runs). openvino's own `__init__` skips the converter when
    importing it fails (an install without it), which a `None` in `sys.modules` makes it
    do; the entry is removed at once, and `openvino.convert_model` imports the converter
    when first called, so code that uses it later in the process sees no difference."""
    import sys

    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    converter = "openvino.tools.ovc"
    blocked = converter not in sys.modules
    if blocked:
        sys.modules[converter] = None  # type: ignore[assignment]
    try:
        import openvino
    finally:
        if blocked and sys.modules.get(converter, 0) is None:
            del sys.modules[converter]
    if not hasattr(openvino, "convert_model"):
        def convert_model(*args: Any, **kwargs: Any) -> Any:
            from openvino.tools.ovc import convert_model as convert

            return convert(*args, **kwargs)

        openvino.convert_model = convert_model
    return openvino


def _core() -> Any:
    """One OpenVINO Core per cache folder, with the compiled-model cache when it can be
    written."""
    return _core_in(str(cache_dir() / "openvino"))


@functools.cache
def _core_in(cache: str) -> Any:
    core = import_openvino().Core()
    folder = Path(cache)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{threading.get_ident()}"
        probe.touch()
        probe.unlink()
    except OSError:
        return core  # no cache: every process compiles
    core.set_property({"CACHE_DIR": str(folder)})
    return core


def hint_for(precision: str) -> str:
    """OpenVINO's inference precision for ours: 'auto' -> bf16 where the CPU computes it
    natively, else f32; 'int8' graphs run their float parts the same way."""
    from ..device import cpu_has_native_bf16

    if precision in OV_PRECISIONS:
        return OV_PRECISIONS[precision]
    return "bf16" if cpu_has_native_bf16() else "f32"


class OpenVinoFBCNN(GraphFBCNN):
    """An FBCNN graph (ONNX, or OpenVINO IR .xml) compiled by OpenVINO for the CPU."""

    name = "openvino"

    def __init__(self, path: str | Path, precision: str = "auto", threads: int = 0) -> None:
        """`precision`: 'auto', 'fp32' or 'bf16' (see `hint_for`); `threads`: OpenVINO's
        inference threads (0: its default, one per core)."""
        self._open(path, "openvino", "OpenVINO")
        self.device = "cpu"
        self.label = "ONNX model" if self.path.suffix.lower() == ".onnx" else "OpenVINO model"
        self.hint = hint_for(precision)
        try:
            self.model = _core().read_model(str(self.path))
        except Exception as e:  # noqa: BLE001 - OpenVINO raises its own error types
            raise CheckpointError(f"cannot load {self.label} {self.path}: {first_line(e)}"
                                  ) from None

        def ports(args: list[Any]) -> list[Port]:
            return [(a.get_any_name(), a.get_element_type().to_dtype().name,
                     [d.get_length() if d.is_static else None for d in a.get_partial_shape()])
                    for a in args]

        self._read_ports(ports(self.model.inputs), ports(self.model.outputs), self._metadata())
        self.precision = ("int8" if self.metadata.get(PRECISION_KEY) == "int8"
                          else "bf16" if self.hint == "bf16" else "fp32")
        siblings = {part: self.path.with_name(f"{self.path.stem}.{part}.onnx") for part in PARTS}
        self.parts = {part: path for part, path in siblings.items() if path.is_file()}
        self._compiled_parts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.threads = -1
        self._local = threading.local()
        self.set_threads(threads)

    def _metadata(self) -> dict[str, str]:
        """The export's metadata (ONNX metadata_props, which OpenVINO keeps under
        'framework'; an IR written by fbcnn keeps them the same way)."""
        try:
            info = self.model.get_rt_info(["framework"])
            return {str(k): str(v.astype(str)) for k, v in info.astype(dict).items()}
        except Exception:  # noqa: BLE001 - a graph without the export's metadata
            return {}

    def set_threads(self, threads: int) -> None:
        """Compile so that a run uses `threads` threads (0: one per core) from now on; from
        the disk cache a compile takes a few tens of milliseconds. With both parts beside it
        the whole graph is compiled only if something asks for it (a restore runs the
        parts), else now, so that a graph that cannot compile fails at load.

        Fewer threads than CPUs is how a batch shares the cores between images restored at
        once (`fbcnn restore --jobs`): the CPUs are then cut into streams of `threads`
        threads, each running one request, so that requests from several threads run side
        by side (one stream, under the latency hint, ran them one at a time, on `threads`
        threads: a batch of two jobs of one thread each ran its network on one core)."""
        if threads == self.threads:
            return
        self.config_ov: dict[str, Any] = {"INFERENCE_PRECISION_HINT": self.hint}
        streams = available_cpus() // threads if threads > 0 else 1
        if streams > 1:
            self.config_ov.update(NUM_STREAMS=streams, INFERENCE_NUM_THREADS=streams * threads)
        else:
            self.config_ov["PERFORMANCE_HINT"] = "LATENCY"
            if threads > 0:
                self.config_ov["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled: Any = None
        self._compiled_parts = {}
        self._local = threading.local()  # requests of the previous compile are stale
        self.threads = threads
        if set(self.parts) != set(PARTS):
            _ = self.compiled

    @property
    def compiled(self) -> Any:
        """The whole graph, compiled (on first use)."""
        with self._lock:
            if self._compiled is None:
                try:
                    self._compiled = _core().compile_model(self.model, "CPU", self.config_ov)
                except Exception as e:  # noqa: BLE001 - OpenVINO raises its own error types
                    raise CheckpointError(f"cannot compile {self.label} {self.path}: "
                                          f"{first_line(e)}") from None
            return self._compiled

    def _part(self, part: str) -> Any | None:
        """The compiled part graph (see the module doc), or None: not there, or made for
        other weights (then it is dropped for good)."""
        if part not in self.parts:
            return None
        with self._lock:
            if part not in self._compiled_parts:
                try:
                    model = _core().read_model(str(self.parts[part]))
                    info = model.get_rt_info(["framework"]).astype(dict)
                    made_for = info[GRAPH_WEIGHTS_KEY].astype(str) \
                        if GRAPH_WEIGHTS_KEY in info else None
                    if made_for is None or made_for != self.metadata.get(GRAPH_WEIGHTS_KEY):
                        del self.parts[part]
                        return None
                    self._compiled_parts[part] = _core().compile_model(model, "CPU",
                                                                       self.config_ov)
                except Exception:  # noqa: BLE001 - a broken part: the whole graph does it
                    del self.parts[part]
                    return None
            return self._compiled_parts[part]

    def prepare(self) -> None:
        """Compile what a restore runs, the two parts (or the whole graph without them): from
        the disk cache about 0.04 s each, spent in the prefetch thread instead of before the
        first QF reading and the first tile."""
        if any(self._part(part) is None for part in PARTS):
            _ = self.compiled

    def _run_part(self, part: str, feed: dict[str, np.ndarray]) -> np.ndarray | None:
        compiled = self._part(part)
        if compiled is None:
            return None
        requests = getattr(self._local, "parts", None)
        if requests is None:
            requests = self._local.parts = {}
        if part not in requests:
            requests[part] = compiled.create_infer_request()
        try:
            # the inputs are contiguous float32 arrays that outlive the call: read in place;
            # the outputs come back as arrays of their own (share_outputs False)
            result = requests[part].infer(feed, share_inputs=True)
        except Exception as e:  # noqa: BLE001 - OpenVINO raises its own error types
            raise CheckpointError(f"{self.label} {self.parts[part]} failed to run: "
                                  f"{first_line(e)}") from None
        return np.asarray(result[0], np.float32)

    def predict_qf_array(self, image: np.ndarray) -> np.ndarray:
        """(N, 1) predicted QF in the network's convention: the decoupler graph where there
        is one, else the whole graph."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        predicted = self._run_part("qf", {"image": image})
        if predicted is None or predicted.shape != (image.shape[0], 1):
            return super().predict_qf_array(image)
        return predicted

    def reconstruct_array(self, image: np.ndarray, qf: np.ndarray | float) -> np.ndarray:
        """The restored image with `qf` fed (network convention): the reconstructor graph
        where there is one (no decoupler), else the whole graph."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        n, _, h, w = image.shape
        wanted = np.broadcast_to(np.asarray(qf, np.float32).reshape(-1, 1), (n, 1))
        restored = self._run_part("reconstruct",
                                  {"image": image, "qf": network_to_qf(wanted).astype(np.float32)})
        if restored is None or restored.shape != (n, self.config.out_channels, h, w):
            return super().reconstruct_array(image, qf)
        return restored

    def _request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def _infer(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        try:
            result = self._request().infer(feed, share_inputs=True)
        except Exception as e:  # noqa: BLE001 - OpenVINO raises its own error types
            raise CheckpointError(f"{self.label} {self.path} failed to run: {first_line(e)}"
                                  ) from None
        restored, predicted = (np.asarray(result[i], np.float32) for i in (0, 1))
        return restored, predicted

    def __repr__(self) -> str:
        qf = ", qf input" if self.qf_name else ""
        return (f"OpenVinoFBCNN({self.path.name}, {self.config.in_channels}->"
                f"{self.config.out_channels} channels{qf}, {self.hint})")
