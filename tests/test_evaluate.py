"""The evaluation harness on two tiny synthetic images with tiny random models."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from fbcnn import metrics
from fbcnn.checkpoints import save_network
from fbcnn.color import rgb_to_y
from fbcnn.degrade import double_jpeg
from fbcnn.evaluate import evaluate, format_table
from fbcnn.jpeg import compress
from fbcnn.network import FBCNN, FBCNNConfig


def tiny_model(channels: int) -> FBCNN:
    torch.manual_seed(channels)
    return FBCNN(FBCNNConfig(widths=(8, 8, 8, 8), blocks=1, qf_width=8,
                             in_channels=channels, out_channels=channels)).eval()


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    out = {}
    for name, (h, w) in {"a.png": (40, 56), "b.png": (48, 33)}.items():
        yy, xx = np.mgrid[0:h, 0:w]
        phase = np.arange(3)[None, None, :]
        base = 128 + 70 * np.sin(xx / 4.0)[:, :, None] * np.cos(yy[:, :, None] / 6.0 + phase)
        out[name] = np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
    return out


@pytest.fixture
def data_dir(tmp_path, images):
    folder = tmp_path / "clean"
    folder.mkdir()
    for name, pixels in images.items():
        Image.fromarray(pixels).save(folder / name)
    return folder


def test_json_shape_single_and_double_rows(data_dir):
    result = evaluate(data_dir, tiny_model(3), qfs=(10, 30), double=[(10, 30)],
                      progress=False, model_name="tiny", device="cpu")
    json.dumps(result)  # JSON-ready
    assert result["dataset"] == "clean" and result["gray"] is False
    assert result["model"] == "tiny" and result["correction"] == "none"
    assert [(r["qf"], r["qf2"], r["shift"]) for r in result["rows"]] == [
        (10, None, None), (30, None, None), (10, 30, [4, 4])]
    for row in result["rows"]:
        assert [im["name"] for im in row["per_image"]] == ["a.png", "b.png"]
        for key in ("jpeg", "restored"):
            assert set(row[key]) == {"psnr", "ssim", "psnrb"}
            for m in ("psnr", "ssim", "psnrb"):
                values = [im[key][m] for im in row["per_image"]]
                assert row[key][m] == pytest.approx(np.mean(values))
        assert row["predicted_qf"] == pytest.approx(
            np.mean([im["predicted_qf"] for im in row["per_image"]]))
        assert all(0 <= im["predicted_qf"] <= 100 for im in row["per_image"])


def test_jpeg_rows_equal_the_metrics_computed_directly(data_dir, images):
    result = evaluate(data_dir, tiny_model(3), qfs=(20,), double=[(30, 10)], shift=(3, 5),
                      progress=False, device="cpu")
    single, double = result["rows"]
    for im in single["per_image"]:
        clean = images[im["name"]]
        assert im["jpeg"] == metrics.quality(compress(clean, 20), clean)
    assert double["shift"] == [3, 5]
    for im in double["per_image"]:
        patch = double_jpeg(images[im["name"]], 30, 10, (3, 5))
        assert patch.degraded.shape[:2] == (images[im["name"]].shape[0] - 3,
                                            images[im["name"]].shape[1] - 5)
        assert im["jpeg"] == metrics.quality(patch.degraded, patch.clean)


def test_gray_uses_the_bt601_y_of_colour_images(data_dir, images):
    result = evaluate(data_dir, tiny_model(1), gray=True, qfs=(10,), progress=False,
                      device="cpu")
    assert result["gray"] is True
    for im in result["rows"][0]["per_image"]:
        y = rgb_to_y(images[im["name"]])
        assert im["jpeg"] == metrics.quality(compress(y, 10), y)
    # gray=None follows the model
    assert evaluate(data_dir, tiny_model(1), gray=None, qfs=(10,), progress=False,
                    device="cpu")["gray"] is True


def test_model_and_gray_must_agree(data_dir):
    with pytest.raises(ValueError, match="colour images"):
        evaluate(data_dir, tiny_model(3), gray=True, progress=False, device="cpu")
    with pytest.raises(ValueError, match="grey images"):
        evaluate(data_dir, tiny_model(1), gray=False, progress=False, device="cpu")


def test_limit_and_model_path(data_dir, tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_network(tiny_model(3), path)
    result = evaluate(data_dir, str(path), qfs=(40,), limit=1, progress=False, device="cpu")
    assert result["model"] == str(path)
    assert [im["name"] for im in result["rows"][0]["per_image"]] == ["a.png"]


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        evaluate(tmp_path / "nope", tiny_model(3), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        evaluate(tmp_path / "empty", tiny_model(3), progress=False)


def test_qf_input_is_fed_instead_of_the_prediction(data_dir):
    result = evaluate(data_dir, tiny_model(3), qfs=(10,), qf_input=55, progress=False,
                      device="cpu")
    assert result["qf_input"] == 55
    assert all(im["used_qf"] == 55 for im in result["rows"][0]["per_image"])
    assert "used QF" in format_table(result) and format_table(result).endswith("55.0")
    with pytest.raises(ValueError, match="cannot be used together"):
        evaluate(data_dir, tiny_model(3), qf_input=55, correction="dominant", progress=False)
    with pytest.raises(ValueError, match="correction"):
        evaluate(data_dir, tiny_model(3), correction="magic", progress=False)


def test_dominant_correction_feeds_the_verdicts_qf(data_dir, monkeypatch):
    calls = []

    class Verdict:
        def qf_to_feed(self, predicted_qf):
            return 12.5

    def analyse(pixels, last_qf=None):
        calls.append((pixels.shape, last_qf))
        return Verdict()

    fake = types.ModuleType("fbcnn.recompress")
    fake.analyse = analyse
    monkeypatch.setitem(sys.modules, "fbcnn.recompress", fake)
    result = evaluate(data_dir, tiny_model(3), qfs=(40,), double=[(10, 30)],
                      correction="dominant", progress=False, device="cpu")
    assert result["correction"] == "dominant"
    assert [last for _, last in calls] == [40, 30, 40, 30]  # image by image, row by row
    for row in result["rows"]:
        assert all(im["used_qf"] == 12.5 for im in row["per_image"])
        assert all(im["predicted_qf"] != 12.5 for im in row["per_image"])


def test_format_table(data_dir):
    result = evaluate(data_dir, tiny_model(3), qfs=(10,), double=[(10, 30)], progress=False,
                      model_name="tiny", device="cpu")
    text = format_table(result)
    lines = text.splitlines()
    assert "tiny" in lines[0] and "colour" in lines[0]
    jpeg = result["rows"][0]["jpeg"]
    assert lines[3].startswith("10 ")
    assert f"{jpeg['psnr']:.2f}|{jpeg['ssim']:.3f}|{jpeg['psnrb']:.2f}" in lines[3]
    assert lines[4].startswith("10:30")


def test_both_engines_measure_the_same(data_dir, tmp_path, monkeypatch):
    from fbcnn.backend import onnxruntime_installed

    if not onnxruntime_installed():
        pytest.skip("needs onnxruntime and onnx")
    monkeypatch.setenv("FBCNN_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "tiny.safetensors"
    save_network(tiny_model(3), path)
    runs = {b: evaluate(data_dir, str(path), qfs=(10, 90), progress=False, device="cpu",
                        precision="fp32", backend=b) for b in ("torch", "onnx")}
    assert [runs[b]["backend"] for b in runs] == ["torch", "onnx"]
    for a, b in zip(runs["torch"]["rows"], runs["onnx"]["rows"], strict=True):
        assert a["jpeg"] == b["jpeg"]
        assert abs(a["restored"]["psnr"] - b["restored"]["psnr"]) < 0.01
        assert abs(a["predicted_qf"] - b["predicted_qf"]) < 0.01
