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

import fbcnn.backend as backend
from fbcnn.checkpoints import save_network
from fbcnn.model import load_model
from fbcnn.modelfiles import CheckpointError

needs_onnx = pytest.mark.skipif(not backend.onnxruntime_installed(),
                                reason="needs onnxruntime and onnx")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("FBCNN_CACHE_DIR", str(folder))
    monkeypatch.delenv("FBCNN_BACKEND", raising=False)
    return folder


def test_auto_picks_onnxruntime_for_fp32_on_the_cpu_only(monkeypatch):
    import fbcnn.device as device

    monkeypatch.delenv("FBCNN_BACKEND", raising=False)
    monkeypatch.setattr(backend, "onnxruntime_installed", lambda: True)
    monkeypatch.setattr(backend, "_may_have_gpu", lambda: False)
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    choose = backend.choose_backend
    assert choose("auto", "auto", "auto") == "onnx"
    assert choose("auto", "cpu", "fp32") == "onnx"
    assert choose("auto", "cpu", "bf16") == "torch"
    assert choose("auto", "cuda", "auto") == "torch"
    assert choose("torch", "cpu", "fp32") == "torch"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)  # AMX: torch bf16
    assert choose("auto", "cpu", "auto") == "torch"
    assert choose("auto", "cpu", "fp32") == "onnx"
    # ... except for a small job, where importing torch costs more than bf16 saves
    small, big = 0.5 * backend.BF16_TORCH_MIN_MEGAPIXELS, backend.BF16_TORCH_MIN_MEGAPIXELS
    assert choose("auto", "cpu", "auto", megapixels=small) == "onnx"
    assert choose("auto", "cpu", "auto", megapixels=big) == "torch"
    assert choose("auto", "cpu", "bf16", megapixels=small) == "torch"
    assert choose("torch", "cpu", "auto", megapixels=small) == "torch"
    monkeypatch.setattr(backend, "_may_have_gpu", lambda: True)
    assert choose("auto", "auto", "fp32") == "torch"
    assert choose("auto", "cpu", "fp32") == "onnx"
    monkeypatch.setattr(backend, "onnxruntime_installed", lambda: False)
    assert choose("auto", "cpu", "fp32") == "torch"
    with pytest.raises(ValueError, match="needs onnxruntime"):
        choose("onnx", "cpu", "fp32")
    monkeypatch.setattr(backend, "onnxruntime_installed", lambda: True)
    with pytest.raises(ValueError, match="CPU in fp32"):
        choose("onnx", "cuda", "auto")
    with pytest.raises(ValueError, match="backend must be"):
        choose("tensorflow", "cpu", "auto")
    monkeypatch.setenv("FBCNN_BACKEND", "torch")
    assert choose("auto", "cpu", "fp32") == "torch"
    monkeypatch.setenv("FBCNN_BACKEND", "bogus")
    with pytest.raises(ValueError, match="FBCNN_BACKEND"):
        choose("auto", "cpu", "fp32")


@needs_onnx
def test_the_graph_is_exported_once_per_weights_file(tmp_path, cache, monkeypatch):
    import fbcnn.export as export

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
@pytest.mark.parametrize("channels", [1, 3], ids=["grey", "colour"])
def test_onnxruntime_restores_what_torch_restores(tmp_path, cache, channels):
    weights = tmp_path / "tiny.safetensors"
    save_network(tiny_network(channels), weights)
    fast = load_model(weights, backend="onnx", tile=64)
    slow = load_model(weights, backend="torch", device="cpu", tile=64)
    assert (fast.backend, slow.backend) == ("onnx", "torch")
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
    with pytest.raises(CheckpointError, match="cannot run .* in onnxruntime"):
        load_model(weights, backend="onnx")


@needs_onnx
def test_a_restore_through_onnxruntime_never_imports_torch(tmp_path, cache):
    weights = tmp_path / "tiny.safetensors"
    save_network(tiny_network(3), weights)
    backend.cached_graph(weights)  # what the first run does
    photo = tmp_path / "photo.jpg"
    Image.fromarray(make_photo(48, 64)).save(photo, quality=30)
    # fp32 on the CPU: what `auto` means on a CPU without native bf16, and onnxruntime's
    args = ["restore", str(photo), "-o", str(tmp_path / "out"), "--model", str(weights),
            "--device", "cpu", "--precision", "fp32"]
    code = ("import sys\n"
            "from fbcnn.cli import main\n"
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

    from fbcnn.modelfiles import training_patch_size

    stages = [{"config": {"data": {"patch_size": 96}}}, {"config": {"data": {"patch_size": 48}}}]
    trained, plain, odd = (tmp_path / f"{n}.safetensors" for n in ("trained", "plain", "odd"))
    save_network(tiny_network(3), trained, metadata={"fbcnn.provenance": json.dumps(stages)})
    save_network(tiny_network(3), plain)
    save_network(tiny_network(3), odd, metadata={"fbcnn.provenance": "[{\"config\": 3}]"})
    assert training_patch_size(trained) == 48  # the last stage's
    assert training_patch_size(plain) is None and training_patch_size(odd) is None
    assert training_patch_size(tmp_path / "published.pth") is None
    for engine in ("torch",) + (("onnx",) if backend.onnxruntime_installed() else ()):
        model = load_model(trained, backend=engine, device="cpu", precision="fp32")
        assert model.restorer.qf_tile == 48
        assert all((h, w) == (48, 48) for _, _, h, w in model.restorer.qf_boxes(200, 300))
        assert load_model(plain, backend=engine, device="cpu").restorer.qf_tile is None


def test_each_image_runs_in_the_engine_its_size_asks_for(tiny_named_models, tmp_path,
                                                         monkeypatch):
    """On a bf16 CPU, `fbcnn restore` runs an image under BF16_TORCH_MIN_MEGAPIXELS in
    onnxruntime and a bigger one in torch (each model loaded once per engine), so an image
    comes out the same alone or in a batch; an explicit --backend is kept."""
    from click.testing import CliRunner
    from conftest import make_photo
    from PIL import Image

    import fbcnn.device as device
    from fbcnn.cli import main

    monkeypatch.delenv("FBCNN_BACKEND", raising=False)
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(backend, "_may_have_gpu", lambda: False)
    monkeypatch.setattr(backend, "BF16_TORCH_MIN_MEGAPIXELS", 0.004)  # 64x80 big, 48x40 small
    seen: list[tuple[float | None, str]] = []
    real = backend.choose_backend

    def spy(name, device, precision, megapixels=None):
        chosen = real(name, device, precision, megapixels)
        seen.append((megapixels, chosen))
        return chosen

    monkeypatch.setattr(backend, "choose_backend", spy)
    Image.fromarray(make_photo(64, 80)).save(tmp_path / "big.jpg", quality=20)
    Image.fromarray(make_photo(48, 40)).save(tmp_path / "small.jpg", quality=20)
    both = [str(tmp_path / "big.jpg"), str(tmp_path / "small.jpg")]
    result = CliRunner().invoke(main, ["restore", *both, "-o", str(tmp_path / "o"),
                                       "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert (64 * 80 / 1e6, "torch") in seen and (48 * 40 / 1e6, "onnx") in seen
    result = CliRunner().invoke(main, ["restore", both[1], "-o", str(tmp_path / "alone")])
    assert result.exit_code == 0, result.output
    batch, alone = (np.asarray(Image.open(tmp_path / d / "small.png")) for d in ("o", "alone"))
    assert np.array_equal(batch, alone)
    seen.clear()
    result = CliRunner().invoke(main, ["restore", both[1], "-o", str(tmp_path / "t"),
                                       "--backend", "torch"])
    assert result.exit_code == 0 and {c for _, c in seen} == {"torch"}


def test_a_model_checked_up_front_against_an_unreadable_first_input(tiny_named_models,
                                                                   tmp_path):
    """`--model` is loaded before the batch, for the first input's size: an unreadable
    first input (no size in its header) must not stop the check or the batch; it gets its
    own one-line error, the next file is restored, and the exit code is 1."""
    from click.testing import CliRunner
    from conftest import make_photo
    from PIL import Image

    from fbcnn.cli import main

    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    Image.fromarray(make_photo(48, 40)).save(tmp_path / "good.jpg", quality=20)
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["restore", str(tmp_path / "broken.jpg"),
                                       str(tmp_path / "good.jpg"), "-o", str(out),
                                       "--model", "color"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "broken.jpg" in line]
    assert len(errors) == 1
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]
