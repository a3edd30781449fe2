"""Run an exported FBCNN graph (`fbcnn export --format onnx`, or the graph shipped beside a
model's weights) in a graph runtime, in place of the torch `FBCNN` module.

`GraphFBCNN` is what every graph runtime shares; `OnnxFBCNN` runs the graph in onnxruntime,
`fbcnn.networks.openvino_runtime.OpenVinoFBCNN` in OpenVINO. Both implement the engine's
`fbcnn.networks.runtimes.Runtime` interface (`run`, `predict_qf`, `reconstruct` on uint8
pixels) on numpy arrays, so restoring through them never imports torch; `run_array`,
`predict_qf_array` and `reconstruct_array` take the graph's own float (N, C, H, W) images
in [0, 1] and its QF convention, (100 - QF) / 100, like `FBCNN.forward`.

A graph has no cheaper path to the QF alone, so `predict_qf` runs the whole graph. A graph
exported with `--qf-input` takes a QF for every image; 0 asks for the image's own prediction
(graphs without the `fbcnn.qf_input_auto` metadata do not know that: without an override
they are run once to read the prediction and again with it). A graph
exported without `--qf-input` accepts an override only when it equals the graph's own
prediction (which is what `fbcnn restore` passes for an image restored in one tile); any
other QF raises ValueError: re-export with `--qf-input` to set the QF, to restore in tiles
(one QF for the whole image) or to follow a detected double compression.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .config import QF_AUTO_KEY, FBCNNConfig, network_to_qf
from .modelfiles import CheckpointError
from .runtimes import NO_QF_INPUT

OVERRIDE_ATOL = 1e-4  # network units: 0.01 QF
FLOAT = "float32"

# (name, element type, shape): a dimension is an int when fixed, anything else when dynamic
Port = tuple[str, str, list[Any]]


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(e).__name__


def check_signature(path: Path, inputs: list[Port], outputs: list[Port]) -> None:
    """Refuse a graph that is not an `fbcnn export`: inputs image (N, C, H, W) float of any
    size [and qf (N, 1) float], outputs restored (N, C, H, W) and qf (N, 1)."""

    def describe(ports: list[Port]) -> str:
        return ", ".join(f"{n} {t} {s}" for n, t, s in ports) or "none"

    problem = None
    if len(inputs) not in (1, 2) or len(outputs) != 2:
        problem = f"{len(inputs)} input(s) and {len(outputs)} output(s)"
    elif any(t != FLOAT for _, t, _ in (*inputs, *outputs)):
        problem = "tensors other than float32"
    elif len(inputs[0][2]) != 4 or len(outputs[0][2]) != 4:
        problem = "an image that is not (N, C, H, W)"
    elif any(len(s) != 2 for _, _, s in (*inputs[1:], outputs[1])):
        problem = "a QF that is not (N, 1)"
    elif any(isinstance(d, int) for d in inputs[0][2][2:]):
        problem = f"a fixed image size {inputs[0][2][2:]} (exports take any size)"
    elif isinstance(inputs[0][2][1], int) and inputs[0][2][1] not in (1, 3):
        problem = f"{inputs[0][2][1]} image channels"
    if problem:
        raise CheckpointError(
            f"{path} is not an exported FBCNN graph ({problem}; inputs: {describe(inputs)}; "
            f"outputs: {describe(outputs)}): expected inputs image[, qf] and outputs "
            "restored, qf")


def graph_config(meta: dict[str, str], in_shape: list[Any], out_shape: list[Any]) -> FBCNNConfig:
    """Channels from the graph's shapes; the rest from the export's metadata if present."""
    config = FBCNNConfig()
    if "fbcnn.config" in meta:
        try:
            config = FBCNNConfig.from_dict(json.loads(meta["fbcnn.config"]))
        except (ValueError, TypeError):
            pass
    c_in = in_shape[1] if isinstance(in_shape[1], int) else config.in_channels
    c_out = out_shape[1] if isinstance(out_shape[1], int) else c_in
    return replace(config, in_channels=int(c_in), out_channels=int(c_out))


class GraphFBCNN:
    """An exported FBCNN graph behind the `Runtime` interface (inference only): the QF
    conventions, the signature check and the pixel conversions every graph runtime shares.
    A runtime implements `_infer`, `set_threads` and `release_memory`."""

    name = "graph"  # what runs it, as `fbcnn restore --backend` names it
    precision = "fp32"  # what it computes in: fp32, bf16 or int8 (as `--precision` names it)

    path: Path
    device: str
    image_name: str
    qf_name: str | None
    qf_auto: bool
    config: FBCNNConfig
    metadata: dict[str, str]  # the export's (`fbcnn.networks.export`)

    def _open(self, path: str | Path, runtime_module: str, runtime_name: str) -> None:
        """Check the runtime is installed and the file is there; sets `path`."""
        import importlib.util

        if importlib.util.find_spec(runtime_module) is None:
            raise CheckpointError(f"running model graphs in {runtime_name} needs it: "
                                  f"pip install {runtime_module}")
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"no such model: {self.path}")

    def _read_ports(self, inputs: list[Port], outputs: list[Port],
                    meta: dict[str, str]) -> None:
        check_signature(self.path, inputs, outputs)
        self.metadata = meta
        self.image_name = inputs[0][0]
        self.qf_name = inputs[1][0] if len(inputs) == 2 else None
        self.qf_auto = self.qf_name is not None and meta.get(QF_AUTO_KEY) == "1"
        self.config = graph_config(meta, inputs[0][2], outputs[0][2])

    # what a runtime provides -----------------------------------------------------------

    def _infer(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Run the graph: (restored, predicted) as float32 arrays the caller may keep."""
        raise NotImplementedError

    def set_threads(self, threads: int) -> None:
        """CPU threads the runtime may use (0: one per core)."""
        raise NotImplementedError

    def release_memory(self) -> None:
        """Hand back memory the runtime keeps between runs (nothing by default)."""

    def prepare(self) -> None:
        """Make ready what a restore runs (nothing by default: the session opens at load)."""

    @property
    def has_qf_input(self) -> bool:
        return self.qf_name is not None

    @property
    def channels(self) -> int:
        return self.config.in_channels

    def _feed(self, x: np.ndarray, qf: np.ndarray | None) -> dict[str, np.ndarray]:
        feed = {self.image_name: x}
        if self.qf_name is not None:
            feed[self.qf_name] = qf if qf is not None else np.full((x.shape[0], 1), 50.0,
                                                                   np.float32)
        return feed

    def _run(self, x: np.ndarray, qf: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        restored, predicted = self._infer(self._feed(x, qf))
        n, _, h, w = x.shape
        if restored.shape != (n, self.config.out_channels, h, w) or predicted.shape != (n, 1):
            # a graph that runs but does not restore (a foreign or broken file)
            raise CheckpointError(
                f"model graph {self.path} failed to run: it returned {restored.shape} and "
                f"{predicted.shape} for an image of {x.shape}")
        return restored, predicted

    # the graph's own floats and QF convention -----------------------------------------

    def run_array(self, image: np.ndarray,
                  qf_override: np.ndarray | float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`(restored, qf)` for an (N, C, H, W) float32 array, like `FBCNN.forward`: qf and
        qf_override in the network's convention (100 - QF) / 100."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        n = image.shape[0]
        override = None
        if qf_override is not None:
            override = np.broadcast_to(np.asarray(qf_override, np.float32).reshape(-1, 1),
                                       (n, 1)).copy()
        if self.qf_name is None:
            restored, predicted = self._run(image, None)
            # Without a qf input the graph can only use its own prediction: an override equal
            # to it (as `fbcnn restore` passes for one-tile images) changes nothing.
            if override is not None and not np.allclose(override, predicted,
                                                        rtol=0, atol=OVERRIDE_ATOL):
                raise ValueError(NO_QF_INPUT)
        elif override is not None:
            restored, predicted = self._run(image, network_to_qf(override).astype(np.float32))
        elif self.qf_auto:
            restored, predicted = self._run(image, np.zeros((n, 1), np.float32))
        else:
            _, predicted = self._run(image, None)
            restored, _ = self._run(image, network_to_qf(predicted).astype(np.float32))
        return restored, predicted

    def predict_qf_array(self, image: np.ndarray) -> np.ndarray:
        """(N, 1) predicted QF in the network's convention (runs the whole graph)."""
        _, predicted = self._run(np.ascontiguousarray(image, dtype=np.float32), None)
        return predicted

    def reconstruct_array(self, image: np.ndarray, qf: np.ndarray | float) -> np.ndarray:
        """The restored (N, C, H, W) image with `qf` fed (network convention), when the
        prediction is not wanted (`FBCNN.reconstruct`); a runtime with a graph that skips
        the decoupler runs that instead."""
        return self.run_array(image, qf)[0]

    # the Runtime interface: uint8 pixels in ------------------------------------------

    def run(self, pixels: np.ndarray,
            qf: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        restored, predicted = self.run_array(_floats(pixels), qf)
        return restored.transpose(0, 2, 3, 1), predicted

    def predict_qf(self, pixels: np.ndarray) -> np.ndarray:
        return self.predict_qf_array(_floats(pixels))

    def reconstruct(self, pixels: np.ndarray, qf: float) -> np.ndarray:
        return self.reconstruct_array(_floats(pixels), qf).transpose(0, 2, 3, 1)


def _floats(pixels: np.ndarray) -> np.ndarray:
    """N x H x W x C uint8 -> float32 (N, C, H, W) in [0, 1], what a graph takes."""
    x = pixels.transpose(0, 3, 1, 2).astype(np.float32)
    x *= np.float32(1 / 255.0)
    return x


def _providers(device: Any) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    kind = str(device).split(":")[0] if str(device) != "auto" else "auto"
    if kind in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxFBCNN(GraphFBCNN):
    """An exported FBCNN graph in onnxruntime (fp32; CUDA when onnxruntime has it and the
    device asks for it, else the CPU)."""

    name = "onnx"

    def __init__(self, path: str | Path, device: Any = "auto", threads: int = 0) -> None:
        """`device`: 'auto' or 'cuda' use onnxruntime's CUDA provider where it has one;
        `threads`: onnxruntime's intra-op threads (0: its default, one per core)."""
        self._open(path, "onnxruntime", "onnxruntime")
        self.asked_device = device
        self.threads = -1
        self.set_threads(threads)

        def ports(args: list[Any]) -> list[Port]:
            return [(a.name, "float32" if a.type == "tensor(float)" else a.type, list(a.shape))
                    for a in args]

        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self._read_ports(ports(self.session.get_inputs()), ports(self.session.get_outputs()),
                         meta)

    def set_threads(self, threads: int) -> None:
        """(Re)open the session with `threads` intra-op threads (0: one per core)."""
        if threads == self.threads:
            return
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = max(0, int(threads))
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                                providers=_providers(self.asked_device))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own error types
            raise CheckpointError(f"cannot load ONNX model {self.path}: {first_line(e)}"
                                  ) from None
        self.threads = threads
        # where the session runs
        self.device = ("cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider"
                       else "cpu")

    def _infer(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        try:
            restored, predicted = self.session.run(None, feed)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own error types
            raise CheckpointError(f"ONNX model {self.path} failed to run: {first_line(e)}"
                                  ) from None
        return restored, predicted

    def release_memory(self) -> None:
        """Hand the memory onnxruntime's arena keeps between runs back (a tiny run that asks
        for the arena to shrink), so what comes after a tiled restore does not add to it."""
        import onnxruntime as ort

        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        feed = self._feed(np.zeros((1, self.config.in_channels, 8, 8), np.float32), None)
        try:
            self.session.run(None, feed, options)
        except Exception:  # noqa: BLE001, S110 - only an optimisation: keep the memory then
            pass

    def __repr__(self) -> str:
        qf = ", qf input" if self.qf_name else ""
        return (f"OnnxFBCNN({self.path.name}, {self.config.in_channels}->"
                f"{self.config.out_channels} channels{qf}, "
                f"providers={self.session.get_providers()})")
