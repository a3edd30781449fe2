"""Benchmark structure on a tiny model at tiny sizes (no timing asserts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fbcnn.benchmark import (
    format_benchmark,
    parameter_count,
    published_architecture,
    run_benchmark,
    sample_image,
)
from fbcnn.network import FBCNN, FBCNNConfig


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

    from fbcnn.cli import main

    result = CliRunner().invoke(main, ["benchmark", "--model", "color", "--sizes", "16",
                                       "--no-published", "--no-end-to-end",
                                       "--precision", "fp32,fp8"])
    assert result.exit_code == 2 and "expected fp32, bf16 or auto" in result.output
    assert "Traceback" not in result.output and "benchmark color" not in result.output


def test_onnxruntime_rows_run_the_exported_graph(tmp_path, monkeypatch):
    from fbcnn.backend import onnxruntime_installed

    if not onnxruntime_installed():
        pytest.skip("needs onnxruntime and onnx")
    monkeypatch.setenv("FBCNN_CACHE_DIR", str(tmp_path))
    result = run_benchmark([("tiny", tiny_model())], sizes=[(64, 80)], threads=1, repeats=1,
                           tile=0, isolate=False, backends=("torch", "onnx"))
    torch_row, onnx_row = result["results"]
    assert (torch_row["backend"], onnx_row["backend"]) == ("torch", "onnx")
    assert abs(torch_row["predicted_qf"] - onnx_row["predicted_qf"]) < 0.01
    assert list(tmp_path.rglob("*.onnx"))  # the graph the row ran
    assert "fp32, onnxruntime" in format_benchmark(result)


def test_benchmark_command_refuses_an_unknown_backend(tiny_named_models) -> None:
    from click.testing import CliRunner

    from fbcnn.cli import main

    result = CliRunner().invoke(main, ["benchmark", "--model", "color", "--sizes", "16",
                                       "--no-published", "--no-end-to-end",
                                       "--backends", "torch,tensorflow"])
    assert result.exit_code == 2 and "expected torch and / or onnx" in result.output
    assert "Traceback" not in result.output and "benchmark color" not in result.output


def test_restore_phases_split_the_default_restore(tiny_named_models) -> None:
    from fbcnn.benchmark import PHASES, format_phases, restore_phases

    p = restore_phases(96, 128, repeats=2, precision="fp32")
    assert set(p["seconds"]) == set(PHASES) and all(len(v) == 2 for v in p["runs"].values())
    assert all(v > 0 for v in p["seconds"].values())  # the analysis ran: a JPEG input
    assert p["total"] == pytest.approx(sum(p["seconds"].values()))
    assert p["analysis_share"] == pytest.approx(p["seconds"]["analysis"] / p["total"])
    assert p["engine"] in ("torch", "onnx")
    assert f"{p['analysis_share']:.1%}" in format_phases(p)
