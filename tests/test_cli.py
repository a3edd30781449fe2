"""`fbcnn restore` and `fbcnn inspect` end to end, on tiny models and tiny files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_photo
from PIL import Image

from fbcnn.cli import main


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(make_photo(64, 80)).save(folder / "color.jpg", quality=15)
    Image.fromarray(make_photo(48, 48, channels=1)[:, :, 0]).save(folder / "grey.jpg", quality=30)
    rgba = Image.fromarray(make_photo(40, 40)).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) * 6, (40, 1))))
    rgba.save(folder / "alpha.png")
    return folder


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_restore_folder_picks_model_by_image_and_keeps_alpha(tiny_named_models, photos) -> None:
    result = run("restore", str(photos))
    assert result.exit_code == 0, result.output
    out = photos / "restored"
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "color.png", "grey.png"]
    assert "[gray]" in result.output and "[color]" in result.output
    # the PNG bears no JPEG compression: written unchanged (alpha and all), counted apart
    assert "predicted QF" in result.output and \
        "restored 2 of 3 image(s), copied 1 without JPEG compression unchanged" in result.output
    with Image.open(out / "grey.png") as im:
        assert im.mode == "L" and im.size == (48, 48)
    with Image.open(out / "alpha.png") as im, Image.open(photos / "alpha.png") as orig:
        assert im.mode == "RGBA"
        assert np.array_equal(np.asarray(im)[..., 3], np.asarray(orig)[..., 3])


def test_qf_override_and_sweep(tiny_named_models, photos, tmp_path) -> None:
    result = run("restore", str(photos / "color.jpg"), "-o", str(tmp_path / "o"), "--qf", "40")
    assert result.exit_code == 0 and "used QF 40.0" in result.output
    result = run("restore", str(photos / "color.jpg"), "-o", str(tmp_path / "s"),
                 "--qf-sweep", "10,90")
    assert result.exit_code == 0, result.output
    a = np.asarray(Image.open(tmp_path / "s" / "color_qf10.png"))
    b = np.asarray(Image.open(tmp_path / "s" / "color_qf90.png"))
    assert a.shape == b.shape == (64, 80, 3) and not np.array_equal(a, b)


def test_skip_existing_resumes(tiny_named_models, photos, tmp_path) -> None:
    out = tmp_path / "o"
    run("restore", str(photos / "color.jpg"), "-o", str(out))
    stamp = (out / "color.png").stat().st_mtime_ns
    result = run("restore", str(photos), "-o", str(out), "--skip-existing")
    assert result.exit_code == 0 and "skipped" in result.output
    assert (out / "color.png").stat().st_mtime_ns == stamp and (out / "grey.png").exists()


def test_bad_files_fail_alone_with_one_line(tiny_named_models, photos, tmp_path) -> None:
    (photos / "broken.jpg").write_bytes((photos / "color.jpg").read_bytes()[:200])
    (photos / "notes.jpg").write_text("hello")
    result = run("restore", str(photos), "-o", str(tmp_path / "o"))
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "broken.jpg" in errors[0] + errors[1]
    assert "Traceback" not in result.output
    written = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert written == ["alpha.png", "color.png", "grey.png"]  # nothing half-written


def test_missing_input_unwritable_output_bad_qf_bad_model(tiny_named_models, photos,
                                                          tmp_path) -> None:
    assert run("restore", str(tmp_path / "nope.jpg")).exit_code == 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("restore", str(photos / "color.jpg"), "-o", str(blocker / "sub"))
    assert result.exit_code == 1 and "error:" in result.output
    assert run("restore", str(photos / "color.jpg"), "--qf", "0").exit_code == 2
    assert run("restore", str(photos / "color.jpg"), "--qf-sweep", "10,x").exit_code == 2
    result = run("restore", str(photos / "color.jpg"), "--model", str(tmp_path / "none.pth"))
    assert result.exit_code == 1 and "unknown model" in result.output


def test_never_overwrites_an_input(tiny_named_models, tmp_path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    Image.fromarray(make_photo(32, 32)).save(folder / "a.png")
    before = (folder / "a.png").read_bytes()
    result = run("restore", str(folder / "a.png"), "-o", str(folder))
    assert result.exit_code == 1
    assert (folder / "a.png").read_bytes() == before


def test_inspect_json(tiny_named_models, photos, tmp_path) -> None:
    result = run("inspect", "--json", str(photos / "color.jpg"))
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["header_qf"] == 15 and info["width"] == 80 and info["height"] == 64
    assert info["mode"] == "RGB" and info["subsampling"] == "4:2:0"
    assert isinstance(info["predicted_qf"], float)
    assert info["tables"] == {"ijg": True, "equivalent_qf": 15} and info["jpeg_trace"] is None
    # 80x64 is too small for the double-JPEG analysis to judge: no verdict rather than a guess
    assert info["double"] is None
    bigger = tmp_path / "bigger.jpg"
    Image.fromarray(make_photo(96, 128)).save(bigger, quality=15)
    info = json.loads(run("inspect", "--json", str(bigger)).output)
    assert set(info["double"]) >= {"detected", "kind", "qf1", "offset", "confidence"}
    result = run("inspect", "--json", str(photos / "color.jpg"), str(photos / "alpha.png"))
    infos = json.loads(result.output)
    assert isinstance(infos, list) and infos[1]["header_qf"] is None
    assert infos[1]["double"] is None and infos[1]["tables"] is None
    assert set(infos[1]["jpeg_trace"]) >= {"found", "offset", "judged"}


def test_module_entry_point() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "fbcnn", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "restore" in done.stdout


def test_evaluate_command_json_contract(tiny_named_models, tmp_path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    for i in range(2):
        Image.fromarray(make_photo(40, 48, seed=i)).save(clean / f"img{i}.png")
    out = tmp_path / "r.json"
    result = run("evaluate", "--data", str(clean), "--qf", "10,40", "--double", "10:30",
                 "--shift", "4,4", "--json", str(out))
    assert result.exit_code == 0, result.output
    d = json.loads(out.read_text())
    assert d["dataset"] == "clean" and d["gray"] is False and d["correction"] == "none"
    assert isinstance(d["model"], str)
    single, double = d["rows"][0], d["rows"][2]
    assert (single["qf"], single["qf2"], single["shift"]) == (10, None, None)
    assert (double["qf"], double["qf2"], double["shift"]) == (10, 30, [4, 4])
    for row in d["rows"]:
        assert set(row["jpeg"]) == set(row["restored"]) == {"psnr", "ssim", "psnrb"}
        assert isinstance(row["predicted_qf"], float)
        assert [im["name"] for im in row["per_image"]] == ["img0.png", "img1.png"]
    assert d["consistency"] is True
    result = run("evaluate", "--data", str(clean), "--gray", "--qf", "20", "--limit", "1")
    assert result.exit_code == 0 and "grey" in result.output
    result = run("evaluate", "--data", str(clean), "--qf", "95", "--consistency", "off",
                 "--json", str(out))
    assert result.exit_code == 0 and json.loads(out.read_text())["consistency"] is False


def test_consistency_keeps_near_lossless_jpegs_close(tiny_named_models, tmp_path) -> None:
    src = tmp_path / "q98.jpg"
    Image.fromarray(make_photo(64, 80)).save(src, quality=98)
    decoded = np.asarray(Image.open(src).convert("RGB")).astype(int)
    change = {}
    for mode in ("on", "off"):
        result = run("restore", str(src), "-o", str(tmp_path / mode), "--consistency", mode)
        assert result.exit_code == 0, result.output
        out = np.asarray(Image.open(tmp_path / mode / "q98.png")).astype(int)
        change[mode] = np.abs(out - decoded).mean()
    assert change["on"] < 0.5 * change["off"]
    assert run("restore", str(src), "--consistency", "maybe").exit_code == 2


def test_evaluate_command_bad_values(tiny_named_models, tmp_path) -> None:
    result = run("evaluate", "--data", str(tmp_path / "missing"))
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert run("evaluate", "--data", str(tmp_path), "--double", "10-30").exit_code == 2
    assert run("evaluate", "--data", str(tmp_path), "--shift", "9,9").exit_code == 2


def test_evaluate_json_to_unwritable_path_fails_cleanly(tiny_named_models, tmp_path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    Image.fromarray(make_photo(32, 32)).save(clean / "a.png")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("evaluate", "--data", str(clean), "--qf", "10", "--json",
                 str(blocker / "r.json"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert blocker.read_text() == "x"
