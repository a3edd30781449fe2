"""The evaluation harness on two tiny synthetic images with tiny random models."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from fbcnn.evaluation import metrics
from fbcnn.evaluation.evaluate import evaluate, format_table
from fbcnn.jpeg.color import rgb_to_y
from fbcnn.jpeg.degrade import double_jpeg
from fbcnn.jpeg.tables import compress
from fbcnn.networks.checkpoints import save_network
from fbcnn.networks.network import FBCNN, FBCNNConfig


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
        detected = True

        def qf_to_feed(self, predicted_qf):
            return 12.5

    def analyse(pixels, last_qf=None):
        calls.append((pixels.shape, last_qf))
        return Verdict()

    fake = types.ModuleType("fbcnn.jpeg.recompress")
    fake.analyse = analyse
    monkeypatch.setitem(sys.modules, "fbcnn.jpeg.recompress", fake)
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
    from fbcnn.networks.runtimes import onnxruntime_installed

    if not onnxruntime_installed():
        pytest.skip("needs onnxruntime and onnx")
    monkeypatch.setenv("FBCNN_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "tiny.safetensors"
    save_network(tiny_model(3), path)
    runs = {b: evaluate(data_dir, str(path), qfs=(10, 90), progress=False, device="cpu",
                        precision="fp32", backend=b) for b in ("torch", "onnx", "openvino")}
    assert [runs[b]["backend"] for b in runs] == ["torch", "onnx", "openvino"]
    for graph in ("onnx", "openvino"):
        for a, b in zip(runs["torch"]["rows"], runs[graph]["rows"], strict=True):
            assert a["jpeg"] == b["jpeg"]
            assert abs(a["restored"]["psnr"] - b["restored"]["psnr"]) < 0.01
            assert abs(a["predicted_qf"] - b["predicted_qf"]) < 0.01


# ------------------------------------------------------------------ --encoder (other JPEGs)


def _needs(name: str) -> None:
    from fbcnn.jpeg.encoders import available

    if not available(name):
        pytest.skip(f"the {name} encoder is not installed here")


def _spied(channels: int, monkeypatch):
    """A Restorer whose restorations are recorded (pixels and grid as restored, the tables
    the result is then kept consistent with)."""
    import fbcnn.evaluation.evaluate as evaluate_module
    from fbcnn.engine.restorer import Restorer

    restorer = Restorer.of(tiny_model(channels), device="cpu")
    calls = []
    real, real_finish = restorer.restore, evaluate_module.finish

    def restore(pixels, **kwargs):
        calls.append({"pixels": pixels.copy(), "grid": kwargs.get("grid")})
        return real(pixels, **kwargs)

    def finish(restored, decoded, tables, *args, **kwargs):
        calls[-1]["tables"] = tables
        return real_finish(restored, decoded, tables, *args, **kwargs)

    restorer.restore = restore
    monkeypatch.setattr(evaluate_module, "finish", finish)
    return restorer, calls


def _file_tables(data: bytes, gray: bool = False):
    """The JpegTables of an encoded file, read with Pillow (grey: its luma table alone)."""
    import io

    from fbcnn.jpeg.consistency import JpegTables
    from fbcnn.jpeg.tables import subsampling_of

    with Image.open(io.BytesIO(data)) as im:
        quantization = dict(im.quantization)
        subsampling = subsampling_of(im)
    if gray:
        return JpegTables.from_pillow({0: quantization[0]}, None)
    return JpegTables.from_pillow(quantization, subsampling)


def test_default_encoder_is_the_papers_libjpeg(data_dir, images, monkeypatch):
    from fbcnn.jpeg.consistency import JpegTables

    restorer, calls = _spied(3, monkeypatch)
    result = evaluate(data_dir, restorer, qfs=(20,), double=[(30, 10)], progress=False)
    assert result["encoder"] == "libjpeg"
    # image by image, row by row: IJG tables at the last QF, 4:2:0, the 16-pixel grid
    expected = [(20, images["a.png"]), (10, None), (20, images["b.png"]), (10, None)]
    for call, (qf, clean) in zip(calls, expected, strict=True):
        assert call["tables"] == JpegTables.standard(qf, True)
        assert call["tables"].subsampling == "4:2:0" and call["grid"] == 16
        if clean is not None:
            np.testing.assert_array_equal(call["pixels"], compress(clean, qf))
    for row, qf in zip(result["rows"], (20, 10), strict=True):
        assert row["header_qf"] == qf and all(im["header_qf"] == qf for im in row["per_image"])
    again = evaluate(data_dir, tiny_model(3), qfs=(20,), double=[(30, 10)], progress=False,
                     encoder="libjpeg", device="cpu")
    plain = evaluate(data_dir, tiny_model(3), qfs=(20,), double=[(30, 10)], progress=False,
                     device="cpu")
    for a, b in zip(again["rows"], plain["rows"], strict=True):
        assert a["per_image"] == b["per_image"]
    assert "encoder" not in format_table(plain) and "file QF" not in format_table(plain)


def test_libjpeg_444_keeps_chroma_and_the_8_pixel_grid(data_dir, images, monkeypatch):
    restorer, calls = _spied(3, monkeypatch)
    result = evaluate(data_dir, restorer, qfs=(30,), progress=False, encoder="libjpeg:4:4:4")
    assert result["encoder"] == "libjpeg:4:4:4"
    for call, name in zip(calls, ("a.png", "b.png"), strict=True):
        np.testing.assert_array_equal(call["pixels"], compress(images[name], 30, "4:4:4"))
        assert call["tables"].subsampling == "4:4:4" and call["grid"] == 8


def test_mozjpeg_writes_every_jpeg_and_consistency_uses_its_tables(data_dir, images, monkeypatch):
    from fbcnn.jpeg.consistency import JpegTables
    from fbcnn.jpeg.encoders import EncoderSpec, compress_with, encode_with

    _needs("mozjpeg")
    spec = EncoderSpec("mozjpeg")
    restorer, calls = _spied(3, monkeypatch)
    result = evaluate(data_dir, restorer, qfs=(30, 90), progress=False, encoder="mozjpeg")
    assert result["encoder"] == "mozjpeg"
    calls_by = iter(calls)
    for name in ("a.png", "b.png"):
        clean = images[name]
        for quality, row in zip((30, 90), result["rows"], strict=True):
            call = next(calls_by)
            degraded, file_qf = compress_with(spec, clean, quality)
            np.testing.assert_array_equal(call["pixels"], degraded)
            im = next(im for im in row["per_image"] if im["name"] == name)
            assert im["jpeg"] == metrics.quality(degraded, clean)
            assert im["header_qf"] == file_qf
            tables = _file_tables(encode_with(spec, clean, quality))
            assert call["tables"] == tables
            # not the IJG tables at the quality setting, nor at the file's QF
            assert call["tables"] != JpegTables.standard(quality, True, tables.subsampling)
            assert call["tables"] != JpegTables.standard(file_qf, True, tables.subsampling)
            # MozJPEG writes 4:4:4 from quality 90: the 8-pixel grid of that file
            assert call["grid"] == (8 if quality == 90 else 16)
            assert tables.subsampling == ("4:4:4" if quality == 90 else "4:2:0")
    assert result["rows"][0]["header_qf"] != 30  # the file's QF, not the setting
    text = format_table(result)
    assert "encoder mozjpeg" in text.splitlines()[0] and "file QF" in text


def test_mozjpeg_double_jpeg_and_the_dominant_correction_read_the_file(data_dir, images,
                                                                       monkeypatch):
    from fbcnn.jpeg.encoders import EncoderSpec, compress_with

    _needs("mozjpeg")
    spec = EncoderSpec("mozjpeg", trellis=False)
    seen = []

    class Verdict:
        detected = True

        def qf_to_feed(self, predicted_qf):
            return 12.5

    def analyse(pixels, last_qf=None):
        seen.append(last_qf)
        return Verdict()

    fake = types.ModuleType("fbcnn.jpeg.recompress")
    fake.analyse = analyse
    monkeypatch.setitem(sys.modules, "fbcnn.jpeg.recompress", fake)
    restorer, calls = _spied(3, monkeypatch)
    result = evaluate(data_dir, restorer, qfs=(), double=[(10, 60)], shift=(3, 5),
                      progress=False, correction="dominant", encoder="mozjpeg:notrellis")
    assert result["encoder"] == "mozjpeg:notrellis"
    expected_qfs = []
    for call, name in zip(calls, ("a.png", "b.png"), strict=True):
        clean = images[name]
        first = compress_with(spec, clean, 10)[0][3:, 5:]
        second, file_qf = compress_with(spec, np.ascontiguousarray(first), 60)
        np.testing.assert_array_equal(call["pixels"], second)
        im = next(im for im in result["rows"][0]["per_image"] if im["name"] == name)
        assert im["jpeg"] == metrics.quality(second, clean[3:, 5:])
        expected_qfs.append(file_qf)
    assert seen == expected_qfs and all(q != 60 for q in seen)


def test_jpegli_grey_reads_the_luma_plane_of_its_colour_file(data_dir, images, monkeypatch):
    from fbcnn.jpeg.encoders import EncoderSpec, compress_with, encode_with

    _needs("jpegli")
    restorer, calls = _spied(1, monkeypatch)
    result = evaluate(data_dir, restorer, gray=True, qfs=(90,), progress=False,
                      encoder="jpegli")
    for call, name in zip(calls, ("a.png", "b.png"), strict=True):
        y = rgb_to_y(images[name])
        degraded, file_qf = compress_with(EncoderSpec("jpegli"), y, 90)
        np.testing.assert_array_equal(call["pixels"], degraded)
        tables = _file_tables(encode_with(EncoderSpec("jpegli"), y, 90), gray=True)
        assert call["tables"] == tables and call["tables"].chroma is None
        assert call["grid"] == 8
        # what the near-lossless share goes by: the file's QF (above 90 here), not 90
        assert call["tables"].quality == file_qf > 90
        im = next(im for im in result["rows"][0]["per_image"] if im["name"] == name)
        assert im["header_qf"] == file_qf


def test_bad_encoder_is_a_one_line_error(data_dir, tmp_path):
    from click.testing import CliRunner

    from fbcnn.frontends.cli import main

    path = tmp_path / "tiny.safetensors"
    save_network(tiny_model(3), path)
    for spec in ("gif", "mozjpeg:table=12", "jpegli:4:4:4", "mozjpeg:fast"):
        result = CliRunner().invoke(main, ["evaluate", "--data", str(data_dir), "--model",
                                           str(path), "--qf", "10", "--encoder", spec])
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        lines = result.output.strip().splitlines()
        assert "Traceback" not in result.output and "--encoder" in lines[-1]
        assert lines[-1].count("Invalid value") == 1
    with pytest.raises(ValueError, match="unknown encoder"):
        evaluate(data_dir, tiny_model(3), qfs=(10,), progress=False, encoder="gif")


def test_encoder_on_the_command_line(data_dir, tmp_path):
    from click.testing import CliRunner

    from fbcnn.frontends.cli import main

    _needs("mozjpeg")
    path = tmp_path / "tiny.safetensors"
    save_network(tiny_model(3), path)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["evaluate", "--data", str(data_dir), "--model", str(path),
                                       "--qf", "30", "--limit", "1", "--encoder", "mozjpeg",
                                       "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "encoder mozjpeg" in result.output
    data = json.loads(out.read_text())
    assert data["encoder"] == "mozjpeg" and data["rows"][0]["header_qf"] != 30


def test_missing_encoder_is_a_one_line_error(data_dir, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import fbcnn.evaluation.evaluate as evaluate_module
    from fbcnn.frontends.cli import main
    from fbcnn.jpeg.encoders import EncoderError

    def missing(spec, image, quality):
        raise EncoderError("MozJPEG needs Node.js (node not found on PATH)")

    monkeypatch.setattr(evaluate_module, "encode_with", missing)
    path = tmp_path / "tiny.safetensors"
    save_network(tiny_model(3), path)
    result = CliRunner().invoke(main, ["evaluate", "--data", str(data_dir), "--model", str(path),
                                       "--qf", "30", "--encoder", "mozjpeg", "--device", "cpu"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: MozJPEG needs Node.js (node not found on PATH)")
