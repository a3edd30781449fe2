"""Graphs made on a weights file: ONNX graphs that read their tensors from the .safetensors
beside them (ONNX external data at the tensors' offsets), so they are a few tens of kB,
cannot drift from the weights and run without torch. Making them needs torch (export).

The whole graph (`export_graph_on_weights`: `<stem>.onnx`, `fbcnn export --qf-input`'s
graph, checked bit for bit against the embedded export), and two parts of it:

* `qf`: `<stem>.qf.onnx`, image -> the decoupler's QF (network convention, (N, 1)): the
  encoder and the QF head, what reading the global QF over windows needs;
* `reconstruct`: `<stem>.reconstruct.onnx`, (image, qf in 1..100) -> the restored image,
  encoder and decoder without the QF head (`FBCNN.reconstruct`): what every tile runs once
  the QF is known.

Each records the weights' sha256 (`GRAPH_WEIGHTS_KEY`) and its part (`fbcnn.part`), and is
checked against torch before it is kept.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .export import ExportError, _atomic_target, _quiet, export_model
from .network import FBCNN, qf_to_network

PARTS = ("qf", "reconstruct")
PART_KEY = "fbcnn.part"


class _QfReader(nn.Module):
    def __init__(self, network: FBCNN) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.network.predict_qf(image)


class _Reconstructor(nn.Module):
    def __init__(self, network: FBCNN) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor, qf: torch.Tensor) -> torch.Tensor:
        return self.network.reconstruct(image, qf_to_network(qf))


def _safetensors_layout(path: Path) -> tuple[int, dict[str, dict[str, object]]]:
    """(where the tensor bytes start, the header's entries) of a safetensors file."""
    import json
    import struct

    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return 8 + size, header


def externalise(model: object, weights: Path) -> int:
    """Point every float initializer of an ONNX `model` that is a tensor of `weights` (by
    name, less the 'network.' prefix, and by bytes) at its place in that file; returns how
    many. A tensor whose bytes differ is an ExportError."""
    from onnx import TensorProto, numpy_helper

    start, header = _safetensors_layout(weights)
    data = weights.read_bytes()
    count = 0
    for init in model.graph.initializer:  # type: ignore[attr-defined]
        entry = header.get(init.name.removeprefix("network."))
        if entry is None or entry["dtype"] != "F32":
            continue  # a constant of the graph's own: stays inside it
        a, b = entry["data_offsets"]  # type: ignore[misc]
        if data[start + a:start + b] != numpy_helper.to_array(init).astype("<f4").tobytes():
            raise ExportError(f"tensor {init.name} of the export differs from the file")
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        del init.external_data[:]
        for key, value in (("location", weights.name), ("offset", str(start + a)),
                           ("length", str(b - a))):
            init.external_data.add(key=key, value=value)
        count += 1
    return count


def export_graph_on_weights(weights: str | Path, output: str | Path | None = None) -> Path:
    """Write the whole ONNX graph of a .safetensors model beside it (`<stem>.onnx`, or
    `output` in the same folder), reading its tensors from the file (see the module doc).
    Its metadata records the weights' sha256 (`fbcnn.networks.runtimes.GRAPH_WEIGHTS_KEY`)."""
    import onnx

    from .modelfiles import file_sha256
    from .runtimes import GRAPH_WEIGHTS_KEY

    weights = Path(weights)
    target = Path(output) if output is not None else weights.with_suffix(".onnx")
    if weights.suffix.lower() != ".safetensors":
        raise ExportError(f"{weights} is not a .safetensors file")
    if target.resolve().parent != weights.resolve().parent:
        raise ExportError("the graph must sit beside its weights file (it reads them)")
    with tempfile.TemporaryDirectory() as folder:
        embedded = Path(folder) / "embedded.onnx"
        export_model(weights, "onnx", embedded, qf_input=True)
        model = onnx.load(str(embedded))
        externalise(model, weights)
        model.metadata_props.add(key=GRAPH_WEIGHTS_KEY, value=file_sha256(weights))
        with _atomic_target(target) as tmp:
            onnx.save(model, str(tmp))
            _check_same_outputs(tmp, embedded)  # tmp sits beside the weights too
    return target


def _check_same_outputs(graph: Path, embedded: Path) -> None:
    """`graph` (beside the weights it reads) gives the embedded export's outputs exactly."""
    import onnxruntime as ort

    a = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(embedded), providers=["CPUExecutionProvider"])
    channels = a.get_inputs()[0].shape[1]
    feed = {"image": np.random.default_rng(0).random((2, channels, 24, 40), dtype=np.float32),
            "qf": np.array([[0.0], [30.0]], np.float32)}
    for x, y in zip(a.run(None, feed), b.run(None, feed), strict=True):
        if not np.array_equal(x, y):
            raise ExportError("the graph on the weights file differs from the export")


def export_part_on_weights(weights: str | Path, part: str) -> Path:
    """Write `<stem>.<part>.onnx` beside a .safetensors model (see the module doc)."""
    import onnx
    import onnxruntime as ort

    from .checkpoints import load_network
    from .modelfiles import file_sha256
    from .runtimes import GRAPH_WEIGHTS_KEY

    if part not in PARTS:
        raise ExportError(f"unknown part {part!r} ({', '.join(PARTS)})")
    weights = Path(weights)
    network = load_network(weights).network.float().eval()
    channels = network.config.in_channels
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, channels, 37, 45, generator=gen)
    spatial = {0: "batch", 2: "height", 3: "width"}
    if part == "qf":
        module: nn.Module = _QfReader(network)
        example: tuple[torch.Tensor, ...] = (image,)
        names, outputs = ["image"], ["qf_network"]
        axes = {"image": spatial, "qf_network": {0: "batch"}}
    else:
        module = _Reconstructor(network)
        example = (image, torch.tensor([[50.0]]))
        names, outputs = ["image", "qf"], ["restored"]
        axes = {"image": spatial, "qf": {0: "batch"}, "restored": spatial}
    target = weights.with_name(f"{weights.stem}.{part}.onnx")
    with tempfile.TemporaryDirectory() as folder:
        embedded = Path(folder, "part.onnx")
        with _quiet(), torch.no_grad():
            torch.onnx.export(module.eval(), example, str(embedded), input_names=names,
                              output_names=outputs, dynamic_axes=axes, opset_version=17,
                              dynamo=False, do_constant_folding=True)
        model = onnx.load(str(embedded))
        if externalise(model, weights) < 10:
            raise ExportError(f"the {part} graph does not read {weights.name}")
        model.metadata_props.add(key=GRAPH_WEIGHTS_KEY, value=file_sha256(weights))
        model.metadata_props.add(key=PART_KEY, value=part)
        with _atomic_target(target) as tmp:
            onnx.save(model, str(tmp))
            session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            check = (torch.rand(2, channels, 24, 40, generator=gen),
                     torch.tensor([[30.0], [75.0]]))[:len(names)]
            got = session.run(None, {n: a.numpy() for n, a in zip(names, check, strict=True)})
            with torch.no_grad():
                want = module(*check)
            if not np.allclose(got[0], want.numpy(), rtol=0, atol=1e-4):
                raise ExportError(f"the {part} graph differs from torch")
    return target
