"""`fbcnn restore x.jpg --model FILE` with files nobody should trust: a pickle that runs code,
safetensors whose header lies, ONNX files that are no FBCNN graph. Each is refused with one
line naming the file; nothing in it is executed, nothing big is allocated, nothing written.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_photo, tiny_network
from PIL import Image
from safetensors.torch import save_file

from fbcnn.frontends.cli import main
from fbcnn.networks.checkpoints import CONFIG_KEY, CheckpointError, load_network, save_network

needs_onnx = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("onnx", "onnxruntime")),
    reason="onnx / onnxruntime not installed")


class _CreatesMarker:
    """Unpickling this calls open(marker, "w"): the file appears if the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def refuse(tmp_path: Path, model: Path, *expected: str) -> str:
    """Run `fbcnn restore photo.jpg --model MODEL`: exit 1, one line naming the model and
    containing `expected`, no warning, no output, done quickly. Returns the line."""
    photo = tmp_path / "photo.jpg"
    if not photo.exists():
        Image.fromarray(make_photo(32, 40)).save(photo, quality=30)
    out = tmp_path / "out"
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["restore", str(photo), "-o", str(out),
                                           "--model", str(model)], catch_exceptions=False)
    seconds = time.perf_counter() - start
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1, result.output
    line = lines[0]
    assert str(model) in line and "Traceback" not in line, line
    for text in expected:
        assert text in line, line
    assert "weights_only=False" not in line and "weights_only` set to `False" not in line
    assert not caught, [str(w.message) for w in caught]
    assert not out.exists()
    assert seconds < 20, f"{seconds:.1f} s to refuse {model.name}"
    return line


# ------------------------------------------------------------------------------- pickles


@pytest.mark.parametrize("container", ["torch.save", "raw-pickle"])
def test_malicious_pickle_is_refused_and_never_run(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"m_head.weight": _CreatesMarker(marker)}
    if container == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=4)  # torch warns about protocol 4: not shown
    line = refuse(tmp_path, path, "not a PyTorch checkpoint we can read safely")
    assert not marker.exists()
    if container == "torch.save":
        assert "builtins.open" in line or "io.open" in line  # what it asked for, named


def test_random_bytes_pth_gets_our_message(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    line = refuse(tmp_path, path, "not a PyTorch checkpoint we can read safely")
    assert "weights_only" not in line and "pytorch.org" not in line


# --------------------------------------------------------------------------- safetensors


def _safetensors(header: dict[str, object] | bytes, data: bytes,
                 header_len: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data


HEAD = {"m_head.weight": {"dtype": "F32", "shape": [8, 3, 3, 3], "data_offsets": [0, 864]}}

LYING_HEADERS: dict[str, bytes] = {
    "offsets-beyond-file": _safetensors(HEAD, b"\0" * 16),
    "huge-header-length": _safetensors(HEAD, b"\0" * 864, header_len=2**40),
    "header-length-past-end": _safetensors(HEAD, b"\0" * 864, header_len=5000),
    "invalid-json": _safetensors(b'{"m_head.weight": {"dtype": "F32", "sha', b"\0" * 864),
    "dtype-shape-mismatch": _safetensors(
        {"m_head.weight": {"dtype": "F32", "shape": [8, 3, 3, 3], "data_offsets": [0, 100]}},
        b"\0" * 100),
    "unknown-dtype": _safetensors(
        {"m_head.weight": {"dtype": "X99", "shape": [8, 3, 3, 3], "data_offsets": [0, 864]}},
        b"\0" * 864),
    "negative-shape": _safetensors(
        {"m_head.weight": {"dtype": "F32", "shape": [-8, 3, 3, 3], "data_offsets": [0, 864]}},
        b"\0" * 864),
}


@pytest.mark.parametrize("name", sorted(LYING_HEADERS))
def test_safetensors_with_a_lying_header(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(LYING_HEADERS[name])
    refuse(tmp_path, path, "not a valid safetensors file")


def _tiny_state() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in tiny_network(3).state_dict().items()}


def _tiny_metadata() -> dict[str, str]:
    return {CONFIG_KEY: json.dumps(tiny_network(3).config.to_dict())}


def _with_config(**changes: object) -> dict[str, str]:
    config = tiny_network(3).config.to_dict()
    config.update(changes)
    return {CONFIG_KEY: json.dumps(config)}


def _empty_giant(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # zero bytes in the file, yet the widths say a million channels: FBCNN(config) would
    # try to allocate terabytes
    key = next(k for k in state if k.startswith("m_down3.") and k.endswith(".weight")
               and ".res." not in k)
    state[key] = torch.empty((1_000_000, 0, 2, 2))
    return state


def _nan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state["m_tail.weight"][0, 0, 0, 0] = float("nan")
    return state


def _ints(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state["m_tail.weight"] = state["m_tail.weight"].to(torch.int32)
    return state


def _wrong_shape(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    key = next(k for k in state if ".res.0.weight" in k)
    state[key] = torch.zeros(state[key].shape[0], state[key].shape[1], 5, 5)
    return state


# (state change, metadata, words of the refusal)
BAD_CONTENT: dict[str, tuple[Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
                             dict[str, str], str]] = {
    "config-not-an-object": (lambda s: s, {CONFIG_KEY: "[1, 2]"}, "bad fbcnn.config"),
    "config-not-json": (lambda s: s, {CONFIG_KEY: "{widths: 8"}, "bad fbcnn.config"),
    "config-bad-types": (lambda s: s, _with_config(widths="wide"), "bad fbcnn.config"),
    "config-huge-widths": (lambda s: s, _with_config(widths=[1_000_000] * 4),
                           "does not match the tensors (widths)"),
    "config-more-blocks": (lambda s: s, _with_config(blocks=50),
                           "does not match the tensors (blocks)"),
    "empty-tensor-giant-widths": (_empty_giant, {}, "is empty"),
    "nan-weights": (_nan, _tiny_metadata(), "NaN or infinite"),
    "integer-weights": (_ints, _tiny_metadata(), "not floating point"),
    "wrong-kernel-shape": (_wrong_shape, _tiny_metadata(), "does not match FBCNN"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONTENT))
def test_safetensors_whose_content_lies(tmp_path: Path, name: str) -> None:
    change, metadata, words = BAD_CONTENT[name]
    path = tmp_path / f"{name}.safetensors"
    save_file(change(_tiny_state()), str(path), metadata=metadata)
    refuse(tmp_path, path, words)


def test_good_files_still_load(tmp_path: Path) -> None:
    # the checks refuse only what is wrong: our files, plain state dicts, wrapped ones
    save_network(tiny_network(3), tmp_path / "ok.safetensors")
    assert load_network(tmp_path / "ok.safetensors").network.config.global_residual
    torch.save({"params": tiny_network(1).state_dict()}, tmp_path / "ok.pth")
    assert load_network(tmp_path / "ok.pth").network.config.in_channels == 1
    # a grey network saved with a colour config in its metadata
    save_file(tiny_network(1).state_dict(), str(tmp_path / "x.safetensors"),
              metadata=_tiny_metadata())
    with pytest.raises(CheckpointError, match="metadata does not match"):
        load_network(tmp_path / "x.safetensors")


# ---------------------------------------------------------------------------------- ONNX


def _onnx_model(path: Path, inputs: list[tuple[str, int, list[object]]],
                outputs: list[tuple[str, int, list[object]]],
                nodes: list[object], initializers: list[object] | None = None) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(
        nodes, "not-fbcnn",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _image_to_qf_nodes() -> list[object]:
    from onnx import helper

    return [helper.make_node("ReduceMean", ["image"], ["mean4"], keepdims=1),
            helper.make_node("Flatten", ["mean4"], ["qf"], axis=1)]


@needs_onnx
@pytest.mark.parametrize("name", ["random-bytes", "text", "no-inputs", "rank-2-input",
                                  "one-output", "int64-input", "fixed-size", "five-channels"])
def test_onnx_files_that_are_not_fbcnn_graphs(tmp_path: Path, name: str) -> None:
    import onnx
    from onnx import TensorProto as T
    from onnx import helper

    f = T.FLOAT
    path = tmp_path / f"{name}.onnx"
    image = [("image", f, ["N", 3, "H", "W"])]
    identity = [helper.make_node("Identity", ["image"], ["restored"]), *_image_to_qf_nodes()]
    if name == "random-bytes":
        path.write_bytes(np.random.default_rng(1).bytes(3000))
        words = "cannot load ONNX model"
    elif name == "text":
        path.write_text("this is a README, not a network\n")
        words = "cannot load ONNX model"
    elif name == "no-inputs":
        const = onnx.numpy_helper.from_array(np.zeros((1, 3, 8, 8), np.float32), "c")
        qf = onnx.numpy_helper.from_array(np.zeros((1, 1), np.float32), "q")
        _onnx_model(path, [], [("restored", f, [1, 3, 8, 8]), ("qf", f, [1, 1])],
                    [helper.make_node("Identity", ["c"], ["restored"]),
                     helper.make_node("Identity", ["q"], ["qf"])], [const, qf])
        words = "0 input(s)"
    elif name == "rank-2-input":
        _onnx_model(path, [("image", f, ["N", 8])], [("restored", f, ["N", 8]),
                                                     ("qf", f, ["N", 1])],
                    [helper.make_node("Identity", ["image"], ["restored"]),
                     helper.make_node("ReduceMean", ["image"], ["qf"], keepdims=1)])
        words = "not (N, C, H, W)"
    elif name == "one-output":
        _onnx_model(path, image, [("restored", f, ["N", 3, "H", "W"])],
                    [helper.make_node("Identity", ["image"], ["restored"])])
        words = "1 output(s)"
    elif name == "int64-input":
        _onnx_model(path, [("image", T.INT64, ["N", 3, "H", "W"])],
                    [("restored", T.INT64, ["N", 3, "H", "W"]), ("qf", T.INT64, ["N", 1])],
                    [helper.make_node("Identity", ["image"], ["restored"]),
                     helper.make_node("ReduceMax", ["image"], ["m4"], keepdims=1),
                     helper.make_node("Flatten", ["m4"], ["qf"], axis=1)])
        words = "other than float32"
    elif name == "fixed-size":
        _onnx_model(path, [("image", f, [1, 3, 64, 64])],
                    [("restored", f, [1, 3, 64, 64]), ("qf", f, [1, 1])], identity)
        words = "fixed image size"
    else:
        _onnx_model(path, [("image", f, ["N", 5, "H", "W"])],
                    [("restored", f, ["N", 5, "H", "W"]), ("qf", f, ["N", 1])], identity)
        words = "5 image channels"
    refuse(tmp_path, path, words)


@needs_onnx
def test_onnx_graph_that_fails_to_run_is_one_line_per_file(tmp_path: Path) -> None:
    """A graph with the right signature whose body cannot run on the image (a Reshape to a
    fixed size): each file fails with one line, the batch goes on, no traceback."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper

    f = T.FLOAT
    target = onnx.numpy_helper.from_array(np.array([1, 3, 64, 64], np.int64), "target")
    path = _onnx_model(
        tmp_path / "reshape.onnx", [("image", f, ["N", 3, "H", "W"])],
        [("restored", f, ["N", 3, "H", "W"]), ("qf", f, ["N", 1])],
        [helper.make_node("Reshape", ["image", "target"], ["restored"]), *_image_to_qf_nodes()],
        [target])
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(make_photo(24, 40, seed=i)).save(folder / f"p{i}.jpg", quality=40)
    result = CliRunner().invoke(main, ["restore", str(folder), "-o", str(tmp_path / "out"),
                                       "--model", str(path)], catch_exceptions=False)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1, result.output
    assert len(errors) == 2 and all("failed to run" in e and str(path) in e for e in errors)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
