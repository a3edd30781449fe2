"""The onnxruntime backend: when `auto` picks it, its graph cache, and that it restores what
torch restores, without importing torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_photo, tiny_network
from PIL import Image

import fbcnn.networks.runtimes as backend
from fbcnn.engine.model import load_model
from fbcnn.networks.checkpoints import save_network
from fbcnn.networks.modelfiles import CheckpointError

needs_onnx = pytest.mark.skipif(not (backend.onnxruntime_installed()
                                     and backend.installed("onnx")),
                                reason="needs onnxruntime and onnx")
needs_openvino = pytest.mark.skipif(not backend.openvino_installed(), reason="needs openvino")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("FBCNN_CACHE_DIR", str(folder))
    monkeypatch.delenv("FBCNN_BACKEND", raising=False)
    return folder


def test_auto_picks_openvino_on_the_cpu_and_torch_on_a_gpu(monkeypatch):
    monkeypatch.delenv("FBCNN_BACKEND", raising=False)
    have = {"openvino": True, "onnxruntime": True, "torch": True}
    monkeypatch.setattr(backend, "installed", lambda m: have[m])
    monkeypatch.setattr(backend, "_may_have_gpu", lambda: False)
    choose = backend.choose_backend
    for precision in ("auto", "fp32", "bf16", "int8"):
        assert choose("auto", "auto", precision) == "openvino"
        assert choose("auto", "cpu", precision) == "openvino"
    assert choose("auto", "cuda", "auto") == "torch"
    assert choose("auto", "mps", "fp32") == "torch"
    assert choose("torch", "cpu", "fp32") == "torch"
    assert choose("onnx", "cpu", "fp32") == "onnx"
    monkeypatch.setattr(backend, "_may_have_gpu", lambda: True)  # a GPU may be there
    assert choose("auto", "auto", "auto") == "torch"
    assert choose("auto", "cpu", "auto") == "openvino"
    have["torch"] = False  # ... but no torch to drive it: the CPU runtimes
    assert choose("auto", "auto", "auto") == "openvino"
    have["openvino"] = False
    assert choose("auto", "auto", "fp32") == "onnx"
    assert choose("auto", "auto", "bf16") == "torch"  # onnxruntime computes fp32 only
    with pytest.raises(ValueError, match="needs OpenVINO"):
        choose("openvino", "cpu", "auto")
    with pytest.raises(ValueError, match="int8 .*OpenVINO"):
        choose("auto", "cpu", "int8")
    have["openvino"] = True
    with pytest.raises(ValueError, match="int8 runs .* OpenVINO"):
        choose("onnx", "cpu", "int8")
    with pytest.raises(ValueError, match="int8 runs .* OpenVINO"):
        choose("auto", "cuda", "int8")
    with pytest.raises(ValueError, match="runs on the CPU"):
        choose("openvino", "cuda", "auto")
    have["onnxruntime"] = False
    with pytest.raises(ValueError, match="needs onnxruntime"):
        choose("onnx", "cpu", "fp32")
    have["onnxruntime"] = True
    with pytest.raises(ValueError, match="CPU in fp32"):
        choose("onnx", "cuda", "auto")
    with pytest.raises(ValueError, match="CPU in fp32"):
        choose("onnx", "cpu", "bf16")
    with pytest.raises(ValueError, match="backend must be"):
        choose("tensorflow", "cpu", "auto")
    with pytest.raises(ValueError, match="precision must be"):
        choose("auto", "cpu", "fp8")
    monkeypatch.setenv("FBCNN_BACKEND", "torch")
    assert choose("auto", "cpu", "fp32") == "torch"
    monkeypatch.setenv("FBCNN_BACKEND", "bogus")
    with pytest.raises(ValueError, match="FBCNN_BACKEND"):
        choose("auto", "cpu", "fp32")


@needs_onnx
def test_the_graph_is_exported_once_per_weights_file(tmp_path, cache, monkeypatch):
    import fbcnn.networks.export as export

    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_network(tiny_network(3, seed=0), first)
    save_network(tiny_network(3, seed=1), second)
    calls = []
    real = export.export_model
    monkeypatch.setattr(export, "export_model",
                        lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    graph = backend.cached_graph(first)
    assert graph.is_file() and graph.parent.parent == cache and calls == [first]
    assert backend.cached_graph(first) == graph and calls == [first]  # from the cache
    other = backend.cached_graph(second)  # other weights, other graph
    assert other != graph and calls == [first, second]
    save_network(tiny_network(3, seed=2), first)  # the file changes: a new graph
    assert backend.cached_graph(first) not in (graph, other) and len(calls) == 3
    assert not list(cache.rglob("*.tmp"))


@needs_onnx
@pytest.mark.parametrize("runtime, precision", [("onnx", "auto"), ("openvino", "fp32")])
@pytest.mark.parametrize("channels", [1, 3], ids=["grey", "colour"])
def test_graph_runtimes_restore_what_torch_restores(tmp_path, cache, channels, runtime,
                                                    precision):
    if runtime == "openvino" and not backend.openvino_installed():
        pytest.skip("needs openvino")
    weights = tmp_path / "tiny.safetensors"
    save_network(tiny_network(channels), weights)
    fast = load_model(weights, backend=runtime, tile=64, precision=precision)
    slow = load_model(weights, backend="torch", device="cpu", tile=64, precision="fp32")
    assert (fast.backend, slow.backend) == (runtime, "torch")
    assert fast.info.precision == "fp32"
    small = make_photo(40, 56, channels=channels)  # one pass
    large = make_photo(150, 170, channels=channels, seed=3)  # 3 x 3 tiles
    for pixels in (small, large):
        for qf in (None, 20, 90):
            a, b = slow.restore_array(pixels, qf=qf), fast.restore_array(pixels, qf=qf)
            assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
            assert abs(a.predicted_qf - b.predicted_qf) < 0.01
            assert abs(a.used_qf - b.used_qf) < 0.01
    # the QF input works in the graph: a different QF, a different image
    assert not np.array_equal(fast.restore_array(large, qf=10).image,
                              fast.restore_array(large, qf=90).image)
    fast.set_threads(1)
    assert fast.network.threads == 1
    assert np.abs(fast.restore_array(small).image.astype(int)
                  - slow.restore_array(small).image.astype(int)).max() <= 1


@needs_onnx
def test_a_cache_that_cannot_be_written_falls_back_to_torch(tmp_path, monkeypatch):
    weights = tmp_path / "tiny.safetensors"
    save_network(tiny_network(3), weights)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("FBCNN_CACHE_DIR", str(blocker))
    monkeypatch.delenv("FBCNN_BACKEND", raising=False)
    assert load_model(weights, device="cpu", precision="fp32").backend == "torch"
    with pytest.raises(CheckpointError, match="no int8 graph"):
        load_model(weights, precision="int8")
    with pytest.raises(CheckpointError, match="cannot run .* in onnx"):
        load_model(weights, backend="onnx")


@needs_onnx
@pytest.mark.parametrize("runtime", ["auto", "onnx"])
def test_a_restore_through_a_graph_runtime_never_imports_torch(tmp_path, cache, runtime):
    weights = tmp_path / "tiny.safetensors"
    save_network(tiny_network(3), weights)
    backend.cached_graph(weights)  # what the first run does
    photo = tmp_path / "photo.jpg"
    Image.fromarray(make_photo(48, 64)).save(photo, quality=30)
    args = ["restore", str(photo), "-o", str(tmp_path / "out"), "--model", str(weights),
            "--backend", runtime] + (["--precision", "fp32"] if runtime == "onnx" else [])
    code = ("import sys\n"
            "from fbcnn.frontends.cli import main\n"
            "try:\n"
            f"    main({args!r})\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print('torch' in sys.modules)\n")
    env = {**os.environ, "FBCNN_CACHE_DIR": str(cache)}
    env.pop("FBCNN_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "out" / "photo.png").is_file()


def test_the_qf_is_read_at_the_last_training_stage_patch_size(tmp_path, cache):
    import json

    from fbcnn.networks.modelfiles import training_patch_size

    stages = [{"config": {"data": {"patch_size": 96}}}, {"config": {"data": {"patch_size": 48}}}]
    trained, plain, odd = (tmp_path / f"{n}.safetensors" for n in ("trained", "plain", "odd"))
    save_network(tiny_network(3), trained, metadata={"fbcnn.provenance": json.dumps(stages)})
    save_network(tiny_network(3), plain)
    save_network(tiny_network(3), odd, metadata={"fbcnn.provenance": "[{\"config\": 3}]"})
    assert training_patch_size(trained) == 48  # the last stage's
    assert training_patch_size(plain) is None and training_patch_size(odd) is None
    assert training_patch_size(tmp_path / "published.pth") is None
    for engine in ("torch", "onnx", "openvino"):
        model = load_model(trained, backend=engine, device="cpu", precision="fp32")
        assert model.restorer.qf_tile == 48
        assert all((h, w) == (48, 48) for _, _, h, w in model.restorer.qf_boxes(200, 300))
        assert load_model(plain, backend=engine, device="cpu").restorer.qf_tile is None


def test_fp16_is_torch_on_cuda_only(monkeypatch):
    """--precision fp16 (CUDA cards without bf16): torch with fp16 autocast; refused with
    one line where it cannot run (the CPU runtimes, the CPU, MPS)."""
    import torch
    from conftest import tiny_network

    from fbcnn.engine.restorer import Restorer
    from fbcnn.networks.torch_runtime import TorchRuntime

    monkeypatch.delenv("FBCNN_BACKEND", raising=False)
    choose = backend.choose_backend
    assert choose("auto", "cuda", "fp16") == "torch" == choose("torch", "auto", "fp16")
    for args in (("auto", "cpu"), ("openvino", "cuda"), ("onnx", "auto"), ("auto", "mps")):
        with pytest.raises(ValueError, match="fp16 is for CUDA"):
            choose(*args, "fp16")
    with pytest.raises(ValueError, match="fp16 is for CUDA GPUs, not cpu"):
        Restorer.of(tiny_network(3), device="cpu", precision="fp16")
    runtime = TorchRuntime(tiny_network(3), device="cpu", precision="fp32")
    runtime.precision = "fp16"  # as on a CUDA device: the autocast it enters
    with runtime.computing():
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.float16
