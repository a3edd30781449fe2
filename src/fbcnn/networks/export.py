"""Export an FBCNN network to ONNX or TorchScript, for runtimes without this package, or as
a safetensors file in spandrel's FBCNN layout (chaiNNer, ComfyUI: `export_spandrel`).

The exported graph takes one input, `image`: an (N, C, H, W) float32 image in [0, 1], with
batch, height and width dynamic (any size: the pad to a multiple of 8 and the crop back are
part of the graph). It returns two outputs, like `FBCNN.forward` / `model.network`:

* `restored`: (N, C, H, W) float32, the restored image (not clamped: clamp to [0, 1]);
* `qf_network`: (N, 1) float32, the predicted quality in the *network's* convention
  `(100 - QF) / 100` (0 = best quality); the QF in 1..100 is `100 * (1 - qf_network)`.

With `qf_input=True` (`fbcnn export --qf-input`) the graph takes a second input, `qf`: an
(N, 1) float32 QF in *QF units* 1..100 (converted to the network's convention inside the
graph), fed to the decoder instead of the prediction; a row whose QF is 0 keeps that image's
own prediction, so one run restores blind (in graphs with the metadata
`fbcnn.qf_input_auto`; a graph without it takes 1..100 only). Names follow one rule: `qf` is
always in 1..100, the network's own value is `qf_network`. Files exported by fbcnn 0.1 name
that output `qf` (or `predicted_qf` with `--qf-input`); the outputs are in the same order, so
read them by position (restored first, the predicted QF second), as fbcnn itself does.

ONNX files carry metadata properties (`fbcnn.config`, `fbcnn.qf_output`, `fbcnn.qf_input`);
TorchScript files carry the same as an extra file `fbcnn.json`. Files are written to a
temporary name beside the target and renamed when complete, so a failed export leaves no
file behind.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from .checkpoints import NAMED_MODELS, CheckpointError, load_network, resolve_model
from .config import QF_AUTO_KEY
from .network import FBCNN, FBCNNConfig, qf_to_network

FORMATS = ("onnx", "torchscript", "spandrel")
DEFAULT_OPSET = 17
MIN_OPSET = 11  # Pad with mode "edge" (replicate) needs opset 11
try:
    from torch.onnx._constants import ONNX_MAX_OPSET as MAX_OPSET
    from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as LEGACY_MAX_OPSET
except ImportError:  # a private module: if it moves, assume the legacy exporter's range
    MAX_OPSET, LEGACY_MAX_OPSET = 20, 20
QF_OUTPUT_NOTE = ("qf_network: predicted QF in the network convention (100 - QF) / 100; "
                  "QF = 100 * (1 - qf_network)")
QF_INPUT_NOTE = ("QF in 1..100, shape (N, 1), fed to the decoder instead of the prediction; "
                 "0 (or below): that image's own prediction")
TRACE_SIZE = (37, 45)  # not multiples of 8, so the pad and the crop are traced
VERIFY_SIZE = (13, 22)  # a second size, checked after export: the graph must not fix sizes


class ExportError(RuntimeError):
    """An export that could not be made (one-line message)."""


class _Exportable(nn.Module):
    """The network with the exported signature: `image` (and the QF in 1..100)."""

    def __init__(self, network: FBCNN, qf_input: bool) -> None:
        super().__init__()
        self.network = network
        self.qf_input = qf_input

    def forward(self, image: torch.Tensor,
                qf: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if qf is None:
            return self.network(image)
        # a QF of 0 or below asks for the image's own prediction (NaN to the network)
        wanted = qf_to_network(qf)
        return self.network(image, torch.where(qf > 0, wanted, torch.full_like(wanted, math.nan)))


def io_names(qf_input: bool) -> tuple[list[str], list[str]]:
    """Input and output names of an exported graph."""
    outputs = ["restored", "qf_network"]  # `qf` names the QF in 1..100 only
    return (["image", "qf"] if qf_input else ["image"]), outputs


def _cpu_copy(network: FBCNN) -> FBCNN:
    """A float32 CPU copy in eval mode (the caller's network is left as it is)."""
    return copy.deepcopy(network).cpu().float().eval()


def _example(network: FBCNN, qf_input: bool) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, network.config.in_channels, *TRACE_SIZE, generator=gen)
    return (image, torch.tensor([[50.0]])) if qf_input else (image,)


def _metadata(network: FBCNN, qf_input: bool, source: str) -> dict[str, str]:
    meta = {
        "fbcnn.config": json.dumps(network.config.to_dict()),
        "fbcnn.qf_output": QF_OUTPUT_NOTE,
        "fbcnn.source": source,
    }
    if qf_input:
        meta["fbcnn.qf_input"] = QF_INPUT_NOTE
        meta[QF_AUTO_KEY] = "1"
    return meta


def _check_writable(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ExportError(f"cannot write {path}: it is a folder")
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: no such folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {path}: folder {folder} is not writable")


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    """A temporary name beside `path`, renamed onto it if the block succeeds, else removed."""
    _check_writable(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if not tmp.is_file():
            raise ExportError(f"cannot write {path}: the exporter wrote nothing")
        tmp.replace(path)
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters warn about their own deprecations and traced shapes; keep that quiet."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _check_close(label: str, got: tuple[torch.Tensor, ...],
                 want: tuple[torch.Tensor, ...]) -> None:
    for g, w, name in zip(got, want, ("restored", "qf_network"), strict=True):
        if g.shape != w.shape:
            raise ExportError(f"{label}: exported {name} has shape {tuple(g.shape)}, "
                              f"expected {tuple(w.shape)}")
        tol = 1e-3 * (1.0 + float(w.abs().max()))
        err = float((g - w).abs().max())
        if not err <= tol:
            raise ExportError(f"{label}: exported {name} differs from PyTorch by {err:.3g}")


def _verify_inputs(network: FBCNN, qf_input: bool) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(2, network.config.in_channels, *VERIFY_SIZE, generator=gen)
    return (image, torch.tensor([[0.0], [80.0]])) if qf_input else (image,)


# ONNX ---------------------------------------------------------------------------------------

def _onnx_legacy(module: nn.Module, example: tuple[torch.Tensor, ...], target: Path,
                 qf_input: bool, opset: int) -> None:
    inputs, outputs = io_names(qf_input)
    spatial = {0: "batch", 2: "height", 3: "width"}
    axes: dict[str, dict[int, str]] = {inputs[0]: spatial, outputs[0]: spatial,
                                       outputs[1]: {0: "batch"}}
    if qf_input:
        axes[inputs[1]] = {0: "batch"}
    torch.onnx.export(module, example, str(target), input_names=inputs, output_names=outputs,
                      dynamic_axes=axes, opset_version=opset, dynamo=False,
                      do_constant_folding=True)


def _onnx_dynamo(module: nn.Module, example: tuple[torch.Tensor, ...], target: Path,
                 qf_input: bool, opset: int) -> None:
    from torch.export import Dim

    inputs, outputs = io_names(qf_input)
    batch = Dim("batch")
    shapes: dict[str, dict[int, object]] = {
        "image": {0: batch, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}}
    if qf_input:
        shapes["qf"] = {0: batch}
    program = torch.onnx.export(module, example, input_names=inputs, output_names=outputs,
                                dynamic_shapes=shapes, opset_version=max(opset, 18),
                                dynamo=True, external_data=False, verbose=False)
    program.save(str(target), external_data=False)


def _finish_onnx(target: Path, network: FBCNN, qf_input: bool, source: str) -> None:
    """Name the symbolic sizes, fix the channel sizes, add the metadata, check the model."""
    import onnx

    model = onnx.load(str(target))
    c_in, c_out = network.config.in_channels, network.config.out_channels
    graph = model.graph
    for value, channels, spatial in ((graph.input[0], c_in, True),
                                     (graph.output[0], c_out, True),
                                     (graph.output[1], 1, False)):
        dims = value.type.tensor_type.shape.dim
        dims[0].dim_param = "batch"
        if spatial:
            dims[1].dim_value = channels
            dims[2].dim_param, dims[3].dim_param = "height", "width"
        else:
            dims[1].dim_value = 1
    if qf_input:
        dims = graph.input[1].type.tensor_type.shape.dim
        dims[0].dim_param = "batch"
    del model.metadata_props[:]
    for key, value in _metadata(network, qf_input, source).items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = ("FBCNN JPEG artifact removal. image: (N, C, H, W) float in [0, 1]; "
                        f"outputs: restored image, {QF_OUTPUT_NOTE}."
                        + (f" Input qf: {QF_INPUT_NOTE}." if qf_input else ""))
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def _verify_onnx(target: Path, network: FBCNN, qf_input: bool) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        return  # nothing to run it with; the export itself succeeded
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    args = _verify_inputs(network, qf_input)
    names = io_names(qf_input)[0]
    got = session.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})
    with torch.no_grad():
        want = _Exportable(network, qf_input)(*args)
    _check_close("ONNX check", tuple(torch.from_numpy(g) for g in got), want)


def export_onnx(network: FBCNN, path: str | Path, qf_input: bool = False,
                opset: int = DEFAULT_OPSET, exporter: str = "auto", verify: bool = True,
                source: str = "") -> Path:
    """Write `network` as an ONNX file (see the module docstring for the graph's contract).

    `exporter`: "legacy" (TorchScript-based, `dynamo=False`, opsets up to 20), "dynamo"
    (torch.export-based, needs onnxscript; opsets below 18 are raised to 18) or "auto"
    (legacy, then dynamo if legacy fails; dynamo alone for opsets above 20).
    `verify` runs the file with onnxruntime (when installed) at another size and batch and
    compares it with PyTorch.
    """
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: "
                          "pip install 'fbcnn[export]'") from None
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported: use {MIN_OPSET}..{MAX_OPSET}")
    path = Path(path)
    network = _cpu_copy(network)
    module = _Exportable(network, qf_input).eval()
    example = _example(network, qf_input)
    exporters = _onnx_exporters(exporter, opset)
    with _atomic_target(path) as tmp:
        _run_onnx_exporters(exporters, module, example, tmp, network, qf_input, opset,
                            source or "FBCNN")
        if verify:
            try:
                _verify_onnx(tmp, network, qf_input)
            except ExportError:
                raise
            except Exception as e:  # noqa: BLE001 - onnxruntime raises its own error types
                raise ExportError(f"ONNX check failed: {_first_line(e)}") from None
    return path


def _onnx_exporters(exporter: str, opset: int) -> list[Callable[..., None]]:
    """The exporters `export_onnx` tries in turn for `exporter` ("legacy", "dynamo",
    "auto") at `opset`: dynamo alone above the legacy exporter's opsets."""
    exporters = {"legacy": [_onnx_legacy], "dynamo": [_onnx_dynamo],
                 "auto": [_onnx_legacy, _onnx_dynamo]}.get(exporter)
    if exporters is None:
        raise ValueError(f"unknown exporter '{exporter}' (legacy, dynamo or auto)")
    if opset > LEGACY_MAX_OPSET:
        if exporter == "legacy":
            raise ExportError(f"the legacy exporter supports opsets up to {LEGACY_MAX_OPSET}")
        exporters = [_onnx_dynamo]
    return exporters


def _run_onnx_exporters(exporters: list[Callable[..., None]], module: nn.Module,
                        example: tuple[torch.Tensor, ...], tmp: Path, network: FBCNN,
                        qf_input: bool, opset: int, source: str) -> None:
    """Write `tmp` with the first exporter that succeeds (its graph finished: names,
    metadata); ExportError naming every failure when none does."""
    errors = []
    for run in exporters:
        try:
            with _quiet(), torch.no_grad():
                run(module, example, tmp, qf_input, opset)
                _finish_onnx(tmp, network, qf_input, source)
            return
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001 - exporter failures vary by torch version
            errors.append(_first_line(e))
    raise ExportError(f"ONNX export failed: {'; '.join(errors)}")


# TorchScript --------------------------------------------------------------------------------

def export_torchscript(network: FBCNN, path: str | Path, qf_input: bool = False,
                       verify: bool = True, source: str = "") -> Path:
    """Write `network` as a traced TorchScript file (`torch.jit.load` reads it; the module
    takes `image` (and `qf` in 1..100) and returns `(restored, qf)` as described above)."""
    path = Path(path)
    network = _cpu_copy(network)
    module = _Exportable(network, qf_input).eval()
    example = _example(network, qf_input)
    extra = {"fbcnn.json": json.dumps(_metadata(network, qf_input, source or "FBCNN"))}
    with _atomic_target(path) as tmp:
        try:
            with _quiet(), torch.no_grad():
                traced = torch.jit.trace(module, example, check_trace=False)
                torch.jit.save(traced, str(tmp), _extra_files=extra)
        except Exception as e:  # noqa: BLE001 - tracing failures vary by torch version
            raise ExportError(f"TorchScript export failed: {_first_line(e)}") from None
        if verify:
            args = _verify_inputs(network, qf_input)
            try:
                with _quiet(), torch.no_grad():
                    loaded = torch.jit.load(str(tmp))
                    got = loaded(*args)
                    want = module(*args)
            except Exception as e:  # noqa: BLE001 - as above
                raise ExportError(f"TorchScript check failed: {_first_line(e)}") from None
            _check_close("TorchScript check", got, want)
    return path


# From a model name or file -----------------------------------------------------------------

def export_model(model: str | Path, fmt: str, output: str | Path, qf_input: bool = False,
                 opset: int | None = None) -> Path:
    """Load a shipped model (by name) or a checkpoint file and export it to `output`.
    For "spandrel", `output` may be a folder: the file is `1x_fbcnn_<model>.safetensors`
    in it. Raises CheckpointError for a bad model, ExportError for a failed export."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format '{fmt}' (onnx, torchscript or spandrel)")
    if opset is not None and fmt != "onnx":
        raise ExportError("--opset applies to --format onnx only")
    if qf_input and fmt == "spandrel":
        raise ExportError("--qf-input applies to --format onnx and torchscript only")
    output = Path(output)
    if fmt == "spandrel" and output.is_dir():
        output = output / spandrel_file_name(model)
    _check_writable(output)  # before the (slow) load and export
    path = resolve_model(model)
    if path.suffix.lower() in (".onnx", ".ts"):
        raise CheckpointError(f"{path} is already an exported model; export from a "
                              ".safetensors or .pth checkpoint")
    loaded = load_network(path)
    source = str(model) if str(model) in NAMED_MODELS else path.name
    if fmt == "spandrel":
        return export_spandrel(loaded.network, output, source=source)
    if fmt == "onnx":
        return export_onnx(loaded.network, output, qf_input=qf_input,
                           opset=DEFAULT_OPSET if opset is None else opset, source=source)
    return export_torchscript(loaded.network, output, qf_input=qf_input, source=source)


# spandrel (chaiNNer, ComfyUI) ---------------------------------------------------------------

# spandrel's FBCNN (0.4) hard-codes 512 for the QF branch and reads the last width from the
# file, but its QF predictor's first Linear takes 512 inputs: both must be 512
SPANDREL_WIDTH = 512
# one block a stage: spandrel's `sequential` unwraps the stage's only block (other keys)
SPANDREL_MIN_BLOCKS = 2
SPANDREL_NOTE_KEY = "fbcnn.spandrel"
SPANDREL_NOTE = ("FBCNN for spandrel (chaiNNer, ComfyUI): the fbcnn model {source} widened "
                 "with zero channels to spandrel's fixed layout (last width and QF branch 512) "
                 "and its global residual carried by {extra} identity channels at the first "
                 "width; it computes the same function. Original config: {config}")
SPANDREL_TOL = 1e-4  # measured: 3e-7 apart


def spandrel_file_name(model: str | Path) -> str:
    """`1x_fbcnn_<model>.safetensors`: chaiNNer's naming (scale first) for a shipped name or
    a checkpoint's stem."""
    name = str(model) if str(model) in NAMED_MODELS else Path(model).stem
    return f"1x_fbcnn_{name}.safetensors"


def _check_spandrel_config(config: FBCNNConfig) -> None:
    problems = []
    if config.blocks < SPANDREL_MIN_BLOCKS:
        problems.append(f"{config.blocks} block a stage (spandrel needs "
                        f"{SPANDREL_MIN_BLOCKS} or more)")
    if config.widths[3] > SPANDREL_WIDTH:
        problems.append(f"last width {config.widths[3]} (spandrel's is {SPANDREL_WIDTH})")
    if config.qf_width > SPANDREL_WIDTH:
        problems.append(f"QF branch width {config.qf_width} (spandrel's is {SPANDREL_WIDTH})")
    if config.global_residual and config.in_channels != config.out_channels:
        problems.append(f"a global residual from {config.in_channels} to "
                        f"{config.out_channels} channels")
    if problems:
        raise ExportError(f"spandrel cannot represent this network: {'; '.join(problems)}")


def spandrel_network(network: FBCNN) -> FBCNN:
    """`network` rewritten in spandrel's FBCNN layout, computing the same function:

    * the last width and the QF branch are padded to 512 with zero weights and biases: the
      extra channels are 0 at every layer (ReLU(0) = 0, a ResBlock adds 0 to 0), and the
      layers reading them (the QF MLPs, the gamma/beta heads, m_up3's transposed
      convolution) give them zero weights;
    * the global residual (`+ input`, which spandrel does not compute) becomes C extra
      channels at the first width: m_head copies the image into them (a centre tap of 1),
      every first-width layer passes them through unchanged (their ResBlock and QFAttention
      branches are 0 there: zero weights, beta = tanh(0) = 0), m_up1 writes 0 into them, so
      the skip `d + x1` brings the image back, and m_tail adds it to its output (a centre
      tap of 1 from each channel to its own output).

    The result is a plain FBCNN (no global residual) whose keys and shapes are those of
    spandrel's, so fbcnn loads the file too."""
    config = network.config
    _check_spandrel_config(config)
    extra = config.in_channels if config.global_residual else 0
    c0, c1, c2, _ = config.widths
    wide = FBCNNConfig(in_channels=config.in_channels, out_channels=config.out_channels,
                       widths=(c0 + extra, c1, c2, SPANDREL_WIDTH), blocks=config.blocks,
                       qf_width=SPANDREL_WIDTH, global_residual=False)
    source = {k: v.detach().float().cpu() for k, v in network.state_dict().items()}
    target = FBCNN(wide)
    state = {k: torch.zeros_like(v) for k, v in target.state_dict().items()}
    for key, value in source.items():
        # every widened dimension gains channels at its end: the original sits in the corner
        state[key][tuple(slice(0, n) for n in value.shape)] = value
    for i in range(extra):
        state["m_head.weight"][c0 + i, i, 1, 1] = 1.0
        state["m_tail.weight"][i, c0 + i, 1, 1] = 1.0
    target.load_state_dict(state, strict=True)
    return target.eval()


def _verify_spandrel(wide: FBCNN, network: FBCNN) -> None:
    args = _verify_inputs(network, qf_input=False)
    with torch.no_grad():
        got, want = wide(*args), network(*args)
    for g, w, name in zip(got, want, ("restored", "qf_network"), strict=True):
        err = float((g - w).abs().max())
        if not err <= SPANDREL_TOL:
            raise ExportError(f"spandrel check: the widened {name} differs by {err:.3g}")


def export_spandrel(network: FBCNN, path: str | Path, verify: bool = True,
                    source: str = "") -> Path:
    """Write `network` as a safetensors file that spandrel 0.4 (the model loader of chaiNNer
    and ComfyUI) loads as FBCNN and runs as fbcnn does (see `spandrel_network`). The
    restored image is spandrel's first output; it uses the predicted QF. ExportError for a
    network spandrel cannot represent (one block a stage; last or QF width over 512)."""
    from safetensors.torch import save

    from .checkpoints import CONFIG_KEY

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ExportError(f"cannot write {path}: spandrel files end in .safetensors")
    _check_spandrel_config(network.config)  # before copying a network it cannot take
    network = _cpu_copy(network)
    wide = spandrel_network(network)
    if verify:
        _verify_spandrel(wide, network)
    config = network.config
    extra = config.in_channels if config.global_residual else 0
    meta = {CONFIG_KEY: json.dumps(wide.config.to_dict()),
            SPANDREL_NOTE_KEY: SPANDREL_NOTE.format(
                source=source or "FBCNN", extra=extra,
                config=json.dumps(config.to_dict()))}
    state = {k: v.contiguous() for k, v in wide.state_dict().items()}
    with _atomic_target(path) as tmp:
        # written by Python, not safetensors' save_file (which makes the file 0600): the
        # file is for another program, perhaps run by another user
        tmp.write_bytes(save(state, metadata=meta))
    return path
