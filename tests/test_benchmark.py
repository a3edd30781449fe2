"""Benchmark structure on a tiny model at tiny sizes (no timing asserts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fbcnn.evaluation.benchmark import (
    format_benchmark,
    parameter_count,
    published_architecture,
    run_benchmark,
    sample_image,
)
from fbcnn.networks.network import FBCNN, FBCNNConfig


def tiny_model(channels: int = 3) -> FBCNN:
    torch.manual_seed(0)
    return FBCNN(FBCNNConfig(widths=(8, 8, 8, 8), blocks=1, qf_width=8,
                             in_channels=channels, out_channels=channels)).eval()


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


ROW_KEYS = {"model", "parameters", "channels", "height", "width", "tile", "tiles", "seconds",
            "runs", "megapixels_per_s", "peak_memory_mib", "memory_method", "threads"}


def test_in_process_untiled_and_tiled_rows():
    result = run_benchmark([("tiny", tiny_model()), ("tiny-grey", tiny_model(1))],
                           sizes=[(64, 96), (24, 24)], threads=1, repeats=2, tile=64,
                           isolate=False)
    json.dumps(result)
    rows = result["results"]
    # 96 > 64: untiled and tiled; 24x24 fits one tile: untiled only
    assert [(r["model"], r["width"], r["tile"]) for r in rows] == [
        ("tiny", 96, None), ("tiny", 96, 64), ("tiny", 24, None),
        ("tiny-grey", 96, None), ("tiny-grey", 96, 64), ("tiny-grey", 24, None)]
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert len(r["runs"]) == 2 and r["seconds"] > 0 and r["megapixels_per_s"] > 0
        assert r["peak_memory_mib"] >= 0 and r["threads"] == 1
    assert rows[1]["tiles"] > 1 and rows[0]["tiles"] == 1
    machine = result["machine"]
    for key in ("torch", "device", "device_name", "threads", "cpu", "cpu_count"):
        assert key in machine
    assert machine["threads"] == 1 and result["device"] == "cpu"


def test_isolated_measurement_runs_in_a_fresh_process():
    result = run_benchmark([("tiny", tiny_model())], sizes=[(256, 256)], threads=1, repeats=1,
                           tile=0)
    (row,) = result["results"]
    assert result["isolated"] is True and row["tile"] is None
    assert row["parameters"] == parameter_count(tiny_model())
    # a 256x256 restore allocates megabytes beyond the process's state before it
    assert row["peak_memory_mib"] > 0.5 and row["memory_method"]


def test_format_benchmark_is_a_markdown_table():
    result = run_benchmark([("tiny", tiny_model())], sizes=[(64, 80)], threads=1, repeats=1,
                           tile=64, isolate=False)
    text = format_benchmark(result)
    rows = [line for line in text.splitlines() if line.startswith("| tiny |")]
    assert len(rows) == 2 and "64 px tiles" in rows[1] and "80x64" in rows[0]
    assert "| model |" in text and "torch" in text


def test_sample_image_is_deterministic():
    a, b = sample_image(24, 40, 3), sample_image(24, 40, 3)
    assert a.dtype == np.uint8 and a.shape == (24, 40, 3) and np.array_equal(a, b)
    assert sample_image(16, 16, 1).shape == (16, 16, 1)


def test_published_architecture_size():
    network = published_architecture(1)
    assert network.config.in_channels == 1 and network.config.widths == (64, 128, 256, 512)
    assert 71e6 < parameter_count(published_architecture()) < 73e6


def test_benchmark_command_refuses_an_unknown_precision(tiny_named_models) -> None:
    from click.testing import CliRunner

    from fbcnn.frontends.cli import main

    result = CliRunner().invoke(main, ["benchmark", "--model", "color", "--sizes", "16",
                                       "--no-published", "--no-end-to-end",
                                       "--precision", "fp32,fp8"])
    assert result.exit_code == 2 and "expected fp32, bf16 or auto" in result.output
    assert "Traceback" not in result.output and "benchmark color" not in result.output


def test_onnxruntime_rows_run_the_exported_graph(tmp_path, monkeypatch):
    from fbcnn.networks.runtimes import onnxruntime_installed

    if not onnxruntime_installed():
        pytest.skip("needs onnxruntime and onnx")
    monkeypatch.setenv("FBCNN_CACHE_DIR", str(tmp_path))
    result = run_benchmark([("tiny", tiny_model())], sizes=[(64, 80)], threads=1, repeats=1,
                           tile=0, isolate=False, backends=("torch", "onnx", "openvino"),
                           openvino_precisions=("fp32", "int8"))
    torch_row, onnx_row, openvino_row = result["results"]  # no int8 graph: not a shipped model
    assert [r["backend"] for r in result["results"]] == ["torch", "onnx", "openvino"]
    for row in (onnx_row, openvino_row):
        assert abs(torch_row["predicted_qf"] - row["predicted_qf"]) < 0.01
    assert list(tmp_path.rglob("*.onnx"))  # the graph the rows ran
    text = format_benchmark(result)
    assert "fp32, onnxruntime" in text and "fp32, OpenVINO" in text


def test_whole_process_rows_beside_a_yardstick(tmp_path) -> None:
    """Each runtime row a fresh `fbcnn restore` per round beside the yardstick's run; a row
    that cannot run (here: a tile size it refuses) is named, not fatal."""
    from fbcnn.evaluation.benchmark import find_yardstick, format_whole_process, whole_process

    stick = tmp_path / "slow-decoder"
    stick.write_text("#!/bin/sh\nsleep 0.2\ncp \"$1\" \"$2\"\n")
    stick.chmod(0o755)
    assert find_yardstick(str(stick)) == stick and find_yardstick(str(tmp_path)) is None
    rows = (("default", ()), ("broken", ("--tile", "3")))
    w = whole_process(rows, yardstick=stick, repeats=2, height=48, width=64, small=16)
    assert [r["row"] for r in w["rows"]] == ["default", "default, 16x16", "yardstick"]
    assert "broken" in w["skipped"]
    by = {r["row"]: r for r in w["rows"]}
    assert by["yardstick"]["vs_yardstick"] == pytest.approx(1.0)
    assert 0.2 <= by["yardstick"]["seconds"] < by["default"]["seconds"]
    ratios = [a / b for a, b in zip(by["default"]["runs"], by["yardstick"]["runs"],
                                    strict=True)]
    assert by["default"]["vs_yardstick"] == pytest.approx(sorted(ratios)[0] / 2
                                                          + sorted(ratios)[1] / 2)
    text = format_whole_process(w)
    assert "x slow-decoder's time" in text and "Not run: broken" in text


def test_benchmark_command_refuses_an_unknown_backend(tiny_named_models) -> None:
    from click.testing import CliRunner

    from fbcnn.frontends.cli import main

    result = CliRunner().invoke(main, ["benchmark", "--model", "color", "--sizes", "16",
                                       "--no-published", "--no-end-to-end",
                                       "--backends", "torch,tensorflow"])
    assert result.exit_code == 2 and "expected openvino, torch and / or onnx" in result.output
    assert "Traceback" not in result.output and "benchmark color" not in result.output


def test_restore_phases_split_the_default_restore(tiny_named_models) -> None:
    from fbcnn.evaluation.benchmark import PHASES, format_phases, restore_phases

    p = restore_phases(96, 128, repeats=2, precision="fp32")
    assert set(p["seconds"]) == set(PHASES) and all(len(v) == 2 for v in p["runs"].values())
    assert all(v > 0 for v in p["seconds"].values())  # the analysis ran: a JPEG input
    assert p["total"] == pytest.approx(sum(p["seconds"].values()))
    assert p["analysis_share"] == pytest.approx(p["seconds"]["analysis"] / p["total"])
    assert p["engine"] in ("torch", "onnx", "openvino")
    assert f"{p['analysis_share']:.1%}" in format_phases(p)


def test_benchmark_refuses_a_yardstick_that_is_not_a_program(tmp_path) -> None:
    from click.testing import CliRunner

    from fbcnn.frontends.cli import main

    text = tmp_path / "notes.txt"
    text.write_text("not a program")
    for bad in (str(text), str(tmp_path), str(tmp_path / "missing")):
        result = CliRunner().invoke(main, ["benchmark", "--model", "color", "--sizes", "16",
                                           "--no-published", "--yardstick", bad])
        assert result.exit_code == 2 and "yardstick" in result.output.splitlines()[-1]
        assert "Traceback" not in result.output and "benchmark color" not in result.output


def test_whole_process_folder_rows_are_per_photo(tmp_path, monkeypatch) -> None:
    """`fbcnn benchmark --folder N`: one command restores a folder of N copies of the photo,
    with the default --jobs and with --jobs 1; its seconds and ratio are per photo. (The
    commands are not run here: each takes N seconds, the others 1, the yardstick 0.5.)"""
    from pathlib import Path

    import fbcnn.evaluation.benchmark as bench

    seen: list[list[str]] = []

    def timed(command: list[str]) -> tuple[float, float]:
        seen.append(command)
        folder = Path(command[-1])
        if folder.is_dir():
            assert sorted(p.name for p in folder.iterdir()) == ["photo0.jpg", "photo1.jpg",
                                                                 "photo2.jpg"]
            return 3.0, 100.0
        return (0.5 if "yardstick" in command[0] else 1.0), 50.0

    stick = tmp_path / "yardstick"
    stick.write_text("#!/bin/sh\n")
    stick.chmod(0o755)
    monkeypatch.setattr(bench, "_timed_command", timed)
    w = bench.whole_process((("default", ()),), yardstick=stick, repeats=2, height=48,
                            width=64, small=16, folder=3)
    by = {r["row"]: r for r in w["rows"]}
    for label in ("default, a folder of 3", "--jobs 1, a folder of 3"):
        assert by[label]["seconds"] == 1.0 and by[label]["vs_yardstick"] == 2.0
        assert by[label]["photos"] == 3 and by[label]["peak_rss_mib"] == 100.0
    folders = [c for c in seen if c[-1].endswith("album")]  # (removed with its temp folder)
    assert len(folders) == 2 * 3  # two rows: a warm-up and two rounds each
    assert sum(c[-3:-1] == ["--jobs", "1"] for c in folders) == 3
    text = bench.format_whole_process(w)
    assert "| --jobs 1, a folder of 3 | --jobs 1 | 1.00 | 100 | 2.00 |" in text
    assert "per photo" in text


def test_benchmark_command_refuses_a_negative_folder() -> None:
    from click.testing import CliRunner

    from fbcnn.frontends.cli import main

    result = CliRunner().invoke(main, ["benchmark", "--folder", "-2"])
    assert result.exit_code == 2 and "Invalid value for '--folder'" in result.output
    assert "Traceback" not in result.output and "benchmark color" not in result.output
