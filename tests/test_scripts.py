"""scripts/make_results.py and scripts/make_model_card.py on tiny models and images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_photo, tiny_network
from PIL import Image

from fbcnn.networks.checkpoints import save_network

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import make_model_card  # noqa: E402
import make_results  # noqa: E402


class Evaluated(Exception):
    """Raised by a stand-in for `evaluate`: an evaluation was run."""


@pytest.fixture
def setup(tmp_path):
    data, bsd68, weights = tmp_path / "data", tmp_path / "bsd68", tmp_path / "weights"
    for folder in (data, bsd68, weights):
        folder.mkdir()
    for i in range(2):
        Image.fromarray(make_photo(48, 64, 3, seed=i)).save(data / f"im{i}.png")
        Image.fromarray(make_photo(48, 64, 1, seed=i)[:, :, 0]).save(bsd68 / f"g{i}.png")
    meta = {"iterations": "12", "train_seconds": "3600", "name": "tiny"}
    save_network(tiny_network(3), weights / "tiny.safetensors", meta)
    save_network(tiny_network(1), weights / "tinyg-double.safetensors", meta)
    return tmp_path


def run_results(root: Path, *extra: str, encoders: str = "libjpeg",
                models: tuple[str, ...] = ("tiny", "tinyg-double")) -> int:
    return make_results.main([
        "--data", str(root / "data"), "--bsd68", str(root / "bsd68"),
        "--models", ",".join(str(root / "weights" / f"{m}.safetensors") for m in models),
        "--limit", "2", "--double-limit", "1", "--qf-sweep-limit", "1",
        "--out-dir", str(root / "docs"), "--threads", "1", "--device", "cpu",
        "--encoders", encoders, *extra])


def test_make_results_and_model_card(setup, monkeypatch):
    root = setup
    assert run_results(root) == 0
    results = root / "docs" / "results"
    names = sorted(p.name for p in results.glob("*.json"))
    assert names == sorted(["tiny-none.json", "tiny-none-double.json", "tiny-dominant.json",
                            "tiny-qfsweep.json", "tinyg-double-none.json",
                            "tinyg-double-none-double.json", "tinyg-double-bsd68-none.json",
                            "tinyg-double-qfsweep.json"])
    none = json.loads((results / "tiny-none.json").read_text())
    assert none["images"] == 2 and len(none["rows"]) == 4 and none["rows"][0]["per_image"]
    dominant = json.loads((results / "tiny-dominant.json").read_text())
    assert dominant["images"] == 1 and len(dominant["rows"]) == 9
    sweep_json = json.loads((results / "tiny-qfsweep.json").read_text())
    sweep = sweep_json["qf_sweep"]
    assert [r["qf"] for r in sweep["per_qf"]] == list(make_results.SWEEP_QFS)
    # the stored MAE is that of the predictions at QF 10..90 only (one image): an MAE over
    # the whole sweep (QF 5, 95 and 100 too; the tiny network predicts a near-constant QF)
    # fails. sweep_summary's figures on hand-made input: tests/test_report.py
    errors = [abs(r["per_image"][0]["predicted_qf"] - r["qf"]) for r in sweep_json["rows"]
              if 10 <= r["qf"] <= 90]
    assert len(errors) == 17
    assert sweep["mae_qf10_90"] == pytest.approx(sum(errors) / 17, abs=1e-9)
    assert sweep["mae_met"] is (sum(errors) / 17 <= 3.0)
    bsd = json.loads((results / "tinyg-double-bsd68-none.json").read_text())
    assert bsd["gray"] and bsd["images"] == 2
    doc = (root / "docs" / "results.md").read_text()
    assert "## tiny" in doc and "## tinyg-double" in doc and "BSD68" in doc
    assert "same 1 image" in doc and "fbcnn evaluate" in doc
    assert (f"Predicted-QF MAE over QF 10..90: {sum(errors) / 17:.1f} (target <= 3: "
            f"{'met' if sweep['mae_met'] else 'not met'})") in doc.split("## tinyg-double")[0]
    # the dominant table compares with correction none on the same image, not the mean of 2
    section = doc.split("## tinyg-double")[0]
    dominant_part = section[section.index("dominant QF fed"):]
    dom_line = next(line for line in dominant_part.splitlines() if line.startswith("| 10 |"))
    assert " - |" not in dom_line

    # resume: matching settings are reused, other settings are not
    stamps = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    def no_evaluation(*args, **kwargs):
        raise Evaluated

    monkeypatch.setattr(make_results, "evaluate", no_evaluation)
    assert run_results(root, "--skip-existing-json") == 0
    assert stamps == {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    with pytest.raises(Evaluated):
        run_results(root, "--skip-existing-json", "--qf-sweep-limit", "2")
    monkeypatch.undo()

    # the model card, from the JSON files above and a config + log
    configs = root / "configs"
    configs.mkdir()
    (configs / "tiny.yaml").write_text(
        "name: tiny\nthreads: 1\ndata:\n  folders: [a, b]\n  gray: false\n"
        "  double_probability: 0.0\noptim:\n  iterations: 100\n")
    val = {"10": {"jpeg": 25.0, "restored": 26.0, "predicted_qf": 12.0}}
    (configs / "tiny.log.jsonl").write_text(
        json.dumps({"iteration": 10, "elapsed_s": 5.0, "val": val}) + "\n"
        + json.dumps({"iteration": 12, "elapsed_s": 6.0}) + "\n")
    args = ["--results-dir", str(results), "--weights-dir", str(root / "weights"),
            "--configs-dir", str(configs)]
    assert make_model_card.main(["tiny", *args]) == 0
    card = (root / "weights" / "tiny.md").read_text()
    assert "widths 8/8/16/16" in card and "12 iterations" in card and "1.00 h" in card
    assert "fbcnn train --config configs/tiny.yaml --resume" in card
    assert "iteration 10" in card and "+1.00" in card and "MAE" in card
    assert "Not measured yet" not in card.split("## Last validation")[0].split("BSD68")[0]

    # nothing but the weights: every measured section says so, no crash
    assert make_model_card.main(["tinyg-double", "--results-dir", str(root / "nowhere"),
                                 "--weights-dir", str(root / "weights"),
                                 "--configs-dir", str(root / "nowhere")]) == 0
    card = (root / "weights" / "tinyg-double.md").read_text()
    assert card.count("Not measured yet") == 5  # single, double, BSD68, QF sweep, log


def test_make_results_per_encoder(setup, monkeypatch):
    from fbcnn.jpeg.encoders import EncoderSpec, available, compress_with

    if not (available("mozjpeg") and available("jpegli")):
        pytest.skip("needs the mozjpeg and jpegli encoders")
    root = setup
    save_network(tiny_network(1, seed=1), root / "weights" / "tinyg.safetensors",
                 {"name": "tinyg"})
    models = ("tiny", "tinyg", "tinyg-double")
    results = root / "docs" / "results"
    # the paper's JPEGs alone first: the document as it was before other encoders
    assert run_results(root, models=models) == 0
    libjpeg_only = (root / "docs" / "results.md").read_text()
    libjpeg_files = {p.name: p.read_bytes() for p in results.glob("*.json")}
    # an older file, written before evaluations recorded their encoder, is still reused
    old = json.loads(libjpeg_files["tiny-none.json"])
    del old["encoder"]
    (results / "tiny-none.json").write_text(json.dumps(old))
    libjpeg_files["tiny-none.json"] = (results / "tiny-none.json").read_bytes()
    evaluated = []
    real = make_results.evaluate

    def counting(*args, **kwargs):
        evaluated.append(kwargs.get("encoder"))
        return real(*args, **kwargs)

    monkeypatch.setattr(make_results, "evaluate", counting)
    # every encoder (the default), the libjpeg files reused as they are
    assert make_results.main([
        "--data", str(root / "data"), "--bsd68", str(root / "bsd68"),
        "--models", ",".join(str(root / "weights" / f"{m}.safetensors") for m in models),
        "--limit", "2", "--double-limit", "1", "--qf-sweep-limit", "1",
        "--out-dir", str(root / "docs"), "--threads", "1", "--device", "cpu",
        "--skip-existing-json"]) == 0
    monkeypatch.undo()
    assert "libjpeg" not in evaluated and sorted(set(evaluated)) == ["jpegli", "mozjpeg"]
    assert {n: b for n, b in ((p.name, p.read_bytes()) for p in results.glob("*.json"))
            if n in libjpeg_files} == libjpeg_files
    new = sorted(p.name for p in results.glob("*.json") if p.name not in libjpeg_files)
    assert new == sorted(f"{m}-{e}-{k}.json" for e in ("mozjpeg", "jpegli")
                         for m, k in (("tiny", "none"), ("tiny", "qfsweep"), ("tinyg", "none"),
                                      ("tinyg", "bsd68-none"), ("tinyg", "qfsweep")))
    moz = json.loads((results / "tiny-mozjpeg-none.json").read_text())
    assert moz["encoder"] == "mozjpeg" and moz["settings"]["encoder"] == "mozjpeg"
    assert [r["qf"] for r in moz["rows"]] == [10, 30, 60, 90] and moz["images"] == 2
    assert "--encoder mozjpeg" in moz["command"]
    clean = np.asarray(Image.open(root / "data" / "im0.png"))
    for row in moz["rows"]:
        im = row["per_image"][0]
        assert im["name"] == "im0.png"
        assert im["header_qf"] == compress_with(EncoderSpec("mozjpeg"), clean, row["qf"])[1]
    grey = json.loads((results / "tinyg-jpegli-bsd68-none.json").read_text())
    assert grey["gray"] and grey["encoder"] == "jpegli" and grey["dataset"] == "bsd68"
    sweep = json.loads((results / "tinyg-mozjpeg-qfsweep.json").read_text())
    assert [r["qf"] for r in sweep["qf_sweep"]["per_qf"]] == list(make_results.SWEEP_QFS)

    doc = (root / "docs" / "results.md").read_text()
    before, after = doc.split("\n## Per encoder\n")
    # the libjpeg part of the document is the one written without other encoders
    first_line = [line for line in before.splitlines() if line.startswith("Generated by")]
    expected = libjpeg_only.split("\n## Commands\n")[0]
    for line in (line for line in expected.splitlines() if line.startswith("Generated by")):
        expected = expected.replace(line, first_line[0])
    assert before.rstrip() == expected.rstrip()
    sections = after.split("\n## Commands\n")[0]
    assert "### MozJPEG (`mozjpeg`)" in sections and "### jpegli (`jpegli`)" in sections
    moz_part = sections.split("### jpegli")[0]
    assert "model tiny," in moz_part and "model tinyg," in moz_part
    assert "tinyg-double" not in sections and "BSD68 (grey files), model tinyg" in moz_part
    row30 = next(line for line in moz_part.splitlines() if line.startswith("| 30 |"))
    assert f"| {moz['rows'][1]['header_qf']:.1f} |" in row30
    assert "predicted - file QF MAE" in moz_part
    commands = doc.split("\n## Commands\n")[1]
    assert commands.index("--encoder") > commands.index("tinyg-double")  # libjpeg first

    # resume with every file in place: nothing runs; other encoder options are new files
    stamps = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}

    def no_evaluation(*args, **kwargs):
        raise Evaluated

    monkeypatch.setattr(make_results, "evaluate", no_evaluation)
    assert run_results(root, "--skip-existing-json", models=models,
                       encoders="libjpeg,mozjpeg,jpegli") == 0
    assert stamps == {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    with pytest.raises(Evaluated):
        run_results(root, "--skip-existing-json", models=models, encoders="mozjpeg:table=2")
    with pytest.raises(SystemExit):
        run_results(root, models=models, encoders="libjpeg,gif")


def test_model_card_takes_the_last_stage_config_and_log(tmp_path):
    """A model whose last stage wrote runs/tiny-stage2: its card shows that stage's config
    and log, not configs/NAME.yaml of an earlier stage (the grey model started from colour)."""
    from fbcnn.networks.checkpoints import PROVENANCE_KEY

    weights, configs = tmp_path / "weights", tmp_path / "configs"
    weights.mkdir()
    configs.mkdir()
    stage = {"name": "tiny", "train_seconds": 60.0, "iterations": 7, "device": "cpu",
             "config": {"output": "runs/tiny-stage2", "init_from": "weights/colour.safetensors",
                        "data": {"folders": ["stage2-data"], "gray": True, "patch_size": 64,
                                 "batch_size": 16, "double_probability": 0.0}}}
    save_network(tiny_network(1), weights / "tiny.safetensors",
                 {PROVENANCE_KEY: json.dumps([stage])})
    (configs / "tiny.yaml").write_text("name: tiny\ndata:\n  folders: [stage1-data]\n"
                                      "  patch_size: 96\n")
    (configs / "tiny-stage2.yaml").write_text("name: tiny\n")
    for log, gain in (("tiny", 1.0), ("tiny-stage2", 2.0)):
        val = {"10": {"jpeg": 25.0, "restored": 25.0 + gain, "predicted_qf": 10.0}}
        (configs / f"{log}.log.jsonl").write_text(
            json.dumps({"iteration": 5, "elapsed_s": 5.0, "val": val}) + "\n")
    assert make_model_card.main(["tiny", "--results-dir", str(tmp_path / "nowhere"),
                                 "--weights-dir", str(weights),
                                 "--configs-dir", str(configs)]) == 0
    card = (weights / "tiny.md").read_text()
    data = card.split("## Training data")[1].split("## Training\n")[0]
    assert "stage2-data" in data and "stage1-data" not in data
    assert "patches of 64 pixels" in data and "tiny-stage2.yaml" in data
    assert "colour.safetensors" in data
    log = card.split("## Last validation")[1]
    assert "tiny-stage2.log.jsonl" in log and "+2.00" in log and "+1.00" not in log


def test_campaign_curve_accumulates_compute_per_device(tmp_path):
    import campaign_curve

    def record(stage, elapsed, gain10):
        return {"stage": stage, "iteration": 1, "elapsed_s": elapsed,
                "val": {"10": {"jpeg": 25.0, "restored": 25.0 + gain10}}}

    gpu, cpu = tmp_path / "gpu.log.jsonl", tmp_path / "cpu.log.jsonl"
    gpu.write_text(json.dumps(record(1, 120, 1.0)) + "\n" + json.dumps(record(1, 240, 1.2)))
    # a log of two stages: only stage 2 is asked for; its plain records count for time
    cpu.write_text("\n".join(json.dumps(r) for r in [
        record(1, 9999, 0.0), record(2, 1800, 1.25),
        {"stage": 2, "iteration": 2, "elapsed_s": 3600}]))
    stages = [campaign_curve.Stage.parse(f"{gpu}:gpu"),
              campaign_curve.Stage.parse(f"{cpu}:cpu:2:2"),
              campaign_curve.Stage.parse(f"{gpu}:gpu")]
    rows = [line.split(" | ") for line in campaign_curve.curve(stages, ["10"])[2:]]
    # GPU-minutes, CPU-core-hours, gain at QF 10, row by row
    assert [(r[3], r[4], r[5].rstrip(" |")) for r in rows] == [
        ("2.0", "0.00", "+1.00"), ("4.0", "0.00", "+1.20"),
        ("4.0", "1.00", "+1.25"),  # 1800 s x 2 threads
        ("6.0", "2.00", "+1.00"), ("8.0", "2.00", "+1.20")]  # the CPU stage ran to 3600 s
    with pytest.raises(Exception, match="LOG:gpu"):
        campaign_curve.Stage.parse("x.jsonl:tpu")
