"""`fbcnn export`: ONNX and TorchScript parity with PyTorch, the ONNX backend, the CLI, and
whether spandrel (chaiNNer / ComfyUI's loader) reads our state dicts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_photo, tiny_network
from PIL import Image

import fbcnn.networks.export as export
from fbcnn.frontends.cli import main
from fbcnn.networks.checkpoints import save_network
from fbcnn.networks.export import ExportError, export_model, export_onnx
from fbcnn.networks.network import FBCNN, FBCNNConfig, network_to_qf, qf_to_network

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="onnx / onnxruntime not installed")
TOL = 1e-4
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.(load|trace)` is deprecated")
SIZES = [(37, 45), (517, 389)]


def image(channels: int, h: int, w: int, n: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, h, w, generator=torch.Generator().manual_seed(seed))


def max_diff(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[int, tuple[FBCNN, Path]]:
    """Tiny random colour and grey models (global residual on) and their files."""
    folder = tmp_path_factory.mktemp("models")
    out = {}
    for channels in (1, 3):
        net = tiny_network(channels, seed=channels)
        path = folder / f"tiny{channels}.safetensors"
        save_network(net, path)
        out[channels] = (net, path)
    return out


@pytest.fixture(scope="module")
def onnx_files(tiny, tmp_path_factory) -> dict[tuple[int, bool], Path]:
    """(channels, qf_input) -> an ONNX export of the tiny model."""
    if not HAS_ONNX:
        pytest.skip("onnx / onnxruntime not installed")
    folder = tmp_path_factory.mktemp("onnx")
    files = {}
    for channels, (_, path) in tiny.items():
        for qf_input in (False, True):
            target = folder / f"tiny{channels}{'_qf' if qf_input else ''}.onnx"
            files[channels, qf_input] = export_model(path, "onnx", target, qf_input=qf_input)
    return files


def session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


# ONNX graph ---------------------------------------------------------------------------------

@needs_onnx
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("qf_input", [False, True], ids=["predicted", "qf-input"])
@pytest.mark.parametrize("channels", [1, 3], ids=["grey", "colour"])
def test_onnx_matches_pytorch(tiny, onnx_files, channels, qf_input, size):
    net = tiny[channels][0]
    x = image(channels, *size)
    feed = {"image": x.numpy()}
    with torch.no_grad():
        if qf_input:
            feed["qf"] = np.array([[30.0]], np.float32)
            want = net(x, torch.tensor([[qf_to_network(30.0)]]))
        else:
            want = net(x)
    restored, qf = session(onnx_files[channels, qf_input]).run(None, feed)
    assert restored.shape == (1, channels, *size) and qf.shape == (1, 1)
    assert max_diff(restored, want[0]) <= TOL
    assert max_diff(qf, want[1]) <= TOL


@needs_onnx
@pytest.mark.parametrize("size", [(8, 8), (1, 3), (16, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_onnx_any_size_and_batch(tiny, onnx_files, size):
    """The pad to 8 and the crop are dynamic; batch items keep their own QF."""
    net = tiny[3][0]
    x = image(3, *size, n=2, seed=3)
    qf = np.array([[20.0], [70.0]], np.float32)
    restored, predicted = session(onnx_files[3, True]).run(None, {"image": x.numpy(), "qf": qf})
    with torch.no_grad():
        want, want_qf = net(x, qf_to_network(torch.from_numpy(qf)))
    assert restored.shape == (2, 3, *size)
    assert max_diff(restored, want) <= TOL and max_diff(predicted, want_qf) <= TOL
    assert max_diff(restored[0], restored[1]) > 0  # different QFs, different results


@needs_onnx
def test_onnx_graph_contract(onnx_files):
    import onnx

    for (channels, qf_input), path in onnx_files.items():
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        sess = session(path)
        inputs, outputs = sess.get_inputs(), sess.get_outputs()
        assert [i.name for i in inputs] == (["image", "qf"] if qf_input else ["image"])
        assert [o.name for o in outputs] == ["restored", "qf_network"]
        assert inputs[0].shape == ["batch", channels, "height", "width"]
        assert outputs[0].shape == ["batch", channels, "height", "width"]
        assert outputs[1].shape == ["batch", 1]
        if qf_input:
            assert inputs[1].shape == ["batch", 1]
        meta = sess.get_modelmeta().custom_metadata_map
        assert json.loads(meta["fbcnn.config"])["in_channels"] == channels
        assert "(100 - QF) / 100" in meta["fbcnn.qf_output"]
        assert ("fbcnn.qf_input" in meta) == qf_input
        assert {o.domain: o.version for o in model.opset_import}[""] == export.DEFAULT_OPSET


@needs_onnx
def test_onnx_export_leaves_callers_network_alone(tmp_path):
    net = tiny_network(3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export_onnx(net, tmp_path / "a.onnx", opset=13)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not net.training


@needs_onnx
def test_failed_export_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")

    def broken(*args, **kwargs):
        raise ExportError("ONNX check: exported restored differs from PyTorch by 1")

    monkeypatch.setattr(export, "_verify_onnx", broken)
    with pytest.raises(ExportError, match="differs"):
        export_onnx(tiny_network(3), target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    with pytest.raises(ExportError, match="not supported"):
        export_onnx(tiny_network(3), tmp_path / "n.onnx", opset=99)
    assert not (tmp_path / "n.onnx").exists()


@pytest.mark.slow
@needs_onnx
def test_onnx_dynamo_exporter(tiny, tmp_path):
    """The torch.export-based exporter makes an equivalent graph (slow: ~10 s)."""
    pytest.importorskip("onnxscript")
    net = tiny[3][0]
    path = export_onnx(net, tmp_path / "d.onnx", qf_input=True, exporter="dynamo")
    x = image(3, 37, 45, n=2)
    qf = np.array([[30.0], [60.0]], np.float32)
    restored, predicted = session(path).run(None, {"image": x.numpy(), "qf": qf})
    with torch.no_grad():
        want, want_qf = net(x, qf_to_network(torch.from_numpy(qf)))
    assert max_diff(restored, want) <= TOL and max_diff(predicted, want_qf) <= TOL


# The ONNX backend ---------------------------------------------------------------------------

@needs_onnx
@pytest.mark.parametrize("channels", [1, 3], ids=["grey", "colour"])
def test_onnx_runtime_runs_what_the_module_runs(tiny, onnx_files, channels):
    from fbcnn.networks.onnx_runtime import OnnxFBCNN
    from fbcnn.networks.runtimes import NO_QF_INPUT, Runtime

    net = tiny[channels][0]
    plain = OnnxFBCNN(onnx_files[channels, False], device="cpu")
    with_qf = OnnxFBCNN(onnx_files[channels, True], device="cpu")
    for graph in (plain, with_qf):
        assert graph.config.in_channels == graph.config.out_channels == channels
        assert graph.channels == channels and isinstance(graph, Runtime)
        assert graph.config.global_residual  # from the export's metadata
    x = image(channels, 29, 50)
    override = qf_to_network(40.0)
    with torch.no_grad():
        want = net(x)
        want_override = net(x, torch.tensor([[override]]))
        want_qf = net.predict_qf(x)
    for graph in (plain, with_qf):
        got = graph.run_array(x.numpy())
        assert max_diff(got[0], want[0]) <= TOL and max_diff(got[1], want[1]) <= TOL
        assert max_diff(graph.predict_qf_array(x.numpy()), want_qf) <= TOL
        assert got[0].dtype == np.float32
    assert max_diff(with_qf.run_array(x.numpy(), override)[0], want_override[0]) <= TOL
    assert max_diff(with_qf.reconstruct_array(x.numpy(), override), want_override[0]) <= TOL
    with pytest.raises(ValueError, match="re-export it with --qf-input") as info:
        plain.run_array(x.numpy(), override)
    assert str(info.value) == NO_QF_INPUT
    # an override equal to the graph's own prediction is no override at all
    assert max_diff(plain.run_array(x.numpy(), want[1].numpy())[0], want[0]) <= TOL


@needs_onnx
def test_load_model_routes_onnx(tiny, onnx_files):
    from fbcnn.engine.model import load_model
    from fbcnn.networks.onnx_runtime import OnnxFBCNN
    from fbcnn.networks.openvino_runtime import OpenVinoFBCNN

    photo = make_photo(40, 56)
    pt = load_model(tiny[3][1], device="cpu", backend="torch", precision="fp32")
    for runtime, kind in (("onnx", OnnxFBCNN), ("openvino", OpenVinoFBCNN)):
        graph = load_model(onnx_files[3, True], device="cpu", backend=runtime,
                           precision="fp32")
        assert isinstance(graph.network, kind) and graph.backend == runtime
    # a graph file runs in OpenVINO unless onnxruntime is asked for
    assert load_model(onnx_files[3, True], device="cpu").backend == "openvino"
    ox = load_model(onnx_files[3, True], device="cpu", precision="fp32")
    assert ox.channels == 3
    assert abs(pt.predict_qf(photo) - ox.predict_qf(photo)) < 0.01
    for qf in (None, 25):
        a, b = pt.restore(photo, qf=qf), ox.restore(photo, qf=qf)
        assert max_diff(a.image, b.image) <= 1
        assert abs(a.predicted_qf - b.predicted_qf) < 0.01 and abs(a.used_qf - b.used_qf) < 0.01
    # grey images through a colour ONNX model, as through a colour torch model
    grey = make_photo(24, 32, channels=1)[:, :, 0]
    assert max_diff(pt.restore(grey).image, ox.restore(grey).image) <= 1


def test_bad_onnx_file_is_a_checkpoint_error(tmp_path):
    pytest.importorskip("onnxruntime")
    from fbcnn.engine.model import load_model
    from fbcnn.networks.checkpoints import CheckpointError

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx graph")
    for runtime in ("auto", "onnx", "openvino"):
        with pytest.raises(CheckpointError, match="cannot load ONNX model"):
            load_model(junk, device="cpu", backend=runtime)


# TorchScript --------------------------------------------------------------------------------

@pytest.mark.parametrize("qf_input", [False, True], ids=["predicted", "qf-input"])
@pytest.mark.parametrize("channels", [1, 3], ids=["grey", "colour"])
def test_torchscript_matches_pytorch(tiny, tmp_path, channels, qf_input):
    net, path = tiny[channels]
    target = export_model(path, "torchscript", tmp_path / "m.pt", qf_input=qf_input)
    extra = {"fbcnn.json": ""}
    loaded = torch.jit.load(str(target), _extra_files=extra)
    assert json.loads(extra["fbcnn.json"])["fbcnn.config"]
    for size in [(37, 45), (64, 24), (9, 17)]:
        x = image(channels, *size, n=2)
        with torch.no_grad():
            if qf_input:
                qf = torch.tensor([[35.0], [90.0]])
                got, want = loaded(x, qf), net(x, qf_to_network(qf))
            else:
                got, want = loaded(x), net(x)
        assert got[0].shape == (2, channels, *size)
        assert max_diff(got[0], want[0]) <= 1e-5 and max_diff(got[1], want[1]) <= 1e-5


# CLI ----------------------------------------------------------------------------------------

def run_cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_cli_export_writes_file(tiny, tmp_path, fmt, suffix):
    if fmt == "onnx" and not HAS_ONNX:
        pytest.skip("onnx / onnxruntime not installed")
    out = tmp_path / f"tiny{suffix}"
    result = run_cli("export", "--model", tiny[3][1], "--format", fmt, "-o", out, "--qf-input")
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temp files left
    if fmt == "onnx":
        assert [i.name for i in session(out).get_inputs()] == ["image", "qf"]
        result = run_cli("export", "--model", tiny[1][1], "--format", fmt, "-o", out,
                         "--opset", "13")
        assert result.exit_code == 0, result.output
        assert [i.name for i in session(out).get_inputs()] == ["image"]
    else:
        loaded = torch.jit.load(str(out))
        assert loaded(image(3, 10, 12), torch.tensor([[50.0]]))[0].shape == (1, 3, 10, 12)


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model", "--format", "onnx"], "unknown model"),
    (["--model", "{junk}", "--format", "onnx"], "cannot read checkpoint"),
    (["--model", "{tiny}", "--format", "onnx", "--opset", "99"], "not supported"),
    (["--model", "{tiny}", "--format", "torchscript", "--opset", "17"], "--opset"),
    (["--model", "{tiny}", "--format", "onnx", "--opset", "9"], "--opset"),
    (["--model", "{tiny}", "--format", "keras"], "--format"),
], ids=["name", "junk-file", "opset-high", "opset-torchscript", "opset-low", "format"])
def test_cli_export_bad_input(tiny, tmp_path, args, message):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    out = tmp_path / "out.onnx"
    args = [a.format(junk=junk, tiny=tiny[3][1]) for a in args]
    result = run_cli("export", *args, "-o", out)
    assert result.exit_code != 0
    assert message in result.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.safetensors"]


@pytest.mark.parametrize("where", ["missing-folder", "is-folder"])
def test_cli_export_unwritable_output(tiny, tmp_path, where):
    out = tmp_path / "nope" / "m.pt" if where == "missing-folder" else tmp_path
    result = run_cli("export", "--model", tiny[3][1], "--format", "torchscript", "-o", out)
    assert result.exit_code == 1
    assert "cannot write" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_cli_restore_with_onnx_matches_torch(tiny, tmp_path):
    """`fbcnn restore --model tiny.onnx` writes what `--model tiny.safetensors` writes."""
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(make_photo(72, 88, seed=4)).save(jpeg, quality=30)
    plain, with_qf = tmp_path / "plain.onnx", tmp_path / "qf.onnx"
    for target, extra in ((plain, []), (with_qf, ["--qf-input"])):
        result = run_cli("export", "--model", tiny[3][1], "--format", "onnx", "-o", target, *extra)
        assert result.exit_code == 0, result.output

    def restored(model: Path, name: str, *extra: str) -> np.ndarray:
        result = run_cli("restore", jpeg, "--model", model, "-o", tmp_path / name,
                         "--device", "cpu", *extra)
        assert result.exit_code == 0, result.output
        return np.asarray(Image.open(tmp_path / name / "photo.png"), np.int16)

    torch_qf30 = restored(tiny[3][1], "pt30", "--qf", "30")
    assert np.abs(restored(with_qf, "onnx30", "--qf", "30") - torch_qf30).max() <= 1
    # in tiles: one QF for the whole image, fed to every tile (needs --qf-input)
    tiled = restored(tiny[3][1], "pt_tiles", "--tile", "64")
    assert np.abs(restored(with_qf, "onnx_tiles", "--tile", "64") - tiled).max() <= 1
    # without --qf-input, tiles each read their own QF (no error, close to the torch model)
    assert np.abs(restored(plain, "onnx_plain_tiles", "--tile", "64",
                           "--double", "off").astype(int) - tiled).max() <= 8
    # without --qf-input: fine in one tile with the predicted QF, a clear error otherwise
    auto = restored(tiny[3][1], "pt_auto", "--double", "off")
    assert np.abs(restored(plain, "onnx_auto", "--double", "off") - auto).max() <= 1
    result = run_cli("restore", jpeg, "--model", plain, "-o", tmp_path / "x", "--qf", "30")
    assert result.exit_code == 1
    assert "exported without --qf-input" in result.output


# spandrel (chaiNNer, ComfyUI) ----------------------------------------------------------------

def import_spandrel():
    try:
        import spandrel
    except Exception as e:  # noqa: BLE001 - missing, or broken by a missing torchvision
        pytest.skip(f"spandrel not usable here: {type(e).__name__}: {e}")
    return spandrel


@pytest.mark.parametrize("config, loads", [
    (FBCNNConfig(), True),  # the published layout
    (FBCNNConfig(in_channels=1, out_channels=1), True),
    (FBCNNConfig(global_residual=True), True),  # loads, but spandrel drops the `+ input`
    (FBCNNConfig(widths=(16, 32, 64, 512), blocks=2), True),  # c0..c2 and blocks are free
    (FBCNNConfig(widths=(16, 32, 64, 512), blocks=1), False),
    (FBCNNConfig(widths=(16, 32, 64, 128), qf_width=512), False),
    (FBCNNConfig(widths=(16, 32, 64, 128), qf_width=128, blocks=2), False),  # shipped layout
], ids=["published", "published-grey", "published-residual", "c3-512", "one-block", "c3-128",
        "shipped"])
def test_spandrel_reads_published_layout(tmp_path, config, loads):
    """spandrel's FBCNN hard-codes 512 for the last stage width and the QF branch, and
    unwraps one-block stages (other keys): it reads widths (*, *, *, 512), qf_width 512,
    blocks >= 2, grey or colour. It knows nothing of `global_residual`."""
    spandrel = import_spandrel()
    torch.manual_seed(0)
    net = FBCNN(config).eval()
    path = tmp_path / "m.safetensors"
    save_network(net, path)
    if not loads:
        with pytest.raises(RuntimeError, match="size mismatch|Missing key"):
            spandrel.ModelLoader().load_from_file(str(path))
        return
    descriptor = spandrel.ModelLoader().load_from_file(str(path))
    assert descriptor.architecture.id == "FBCNN"
    assert descriptor.input_channels == config.in_channels
    x = image(config.in_channels, 37, 45)
    with torch.no_grad():
        ours, ours_qf = net(x)
        if config.global_residual:  # what spandrel computes is ours without the `+ input`
            ours = ours - x
            net.config = FBCNNConfig(global_residual=False)
        theirs, theirs_qf = descriptor.model(x)
        called = descriptor(x)  # what chaiNNer / ComfyUI call: clamped to [0, 1]
        with_qf = descriptor.model(x, torch.tensor([[qf_to_network(40.0)]]))[0]
    assert max_diff(theirs, ours) <= TOL and max_diff(theirs_qf, ours_qf) <= TOL
    assert max_diff(called, ours.clamp(0, 1)) <= TOL
    assert max_diff(with_qf, net(x, torch.tensor([[0.6]]))[0].detach()) <= TOL
    assert 0 <= float(network_to_qf(ours_qf)) <= 100


def test_export_help_names_the_outputs_as_the_graph_does():
    from click.testing import CliRunner

    from fbcnn.frontends.cli import main

    text = " ".join(CliRunner().invoke(main, ["export", "--help"]).output.split())
    assert "'qf_network'" in text and "'restored'" in text
    assert "predicted_qf" not in text  # the graph has no output of that name
