"""`fbcnn restore` and `fbcnn inspect` end to end, on tiny models and tiny files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_photo
from PIL import Image

from fbcnn.frontends.cli import main


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
    assert info["tables"] == {"ijg": True, "equivalent_qf": 15, "jpegli_quality": None}
    assert info["jpeg_trace"] is None
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
    assert infos[0]["converted"] is None
    from conftest import cmyk_jpeg

    cmyk = cmyk_jpeg(tmp_path / "print.jpg", make_photo(96, 128))
    info = json.loads(run("inspect", "--json", str(cmyk)).output)
    assert info["converted"].startswith("CMYK converted to RGB") and info["double"] is None


def test_inspect_takes_folders_as_restore_does(tiny_named_models, tmp_path) -> None:
    """Was: "is a folder, not an image file"."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(make_photo(48, 64)).save(folder / "a.jpg", quality=20)
    Image.fromarray(make_photo(48, 64)).save(folder / "sub" / "b.jpg", quality=40)
    (folder / "notes.txt").write_text("not an image")
    infos = json.loads(run("inspect", "--json", str(folder)).output)
    assert [(Path(i["path"]).name, i["header_qf"]) for i in infos] == [("a.jpg", 20)]
    result = run("inspect", "--json", "--recursive", str(folder))
    assert result.exit_code == 0, result.output
    assert [Path(i["path"]).name for i in json.loads(result.output)] == ["a.jpg", "b.jpg"]
    lines = run("inspect", "--recursive", str(folder)).output.splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"{folder / 'sub' / 'b.jpg'}: 64x48 RGB")
    (folder / "sub" / "b.jpg").unlink()
    (folder / "a.jpg").unlink()
    result = run("inspect", str(folder))
    assert result.exit_code == 1 and "no images found in" in result.output


def test_inspect_reads_standard_input(tiny_named_models, photos) -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["inspect", "--json", "-"],
                         input=(photos / "color.jpg").read_bytes())
    assert done.exit_code == 0, done.output
    info = json.loads(done.stdout)
    assert info["path"] == "-" and info["header_qf"] == 15 and info["width"] == 80
    done = runner.invoke(main, ["inspect", "-"], input=b"not an image")
    assert done.exit_code == 1 and done.stderr == "error: -: not an image\n"
    done = runner.invoke(main, ["inspect", "-", str(photos / "color.jpg")], input=b"")
    assert done.exit_code == 2 and "takes one image" in done.output


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


def test_restore_help_says_consistency_bounds_a_low_qf() -> None:
    """Was: nothing told why --qf 10 removed much less on a re-saved high-quality JPEG with
    the consistency step on (the default) than with it off."""
    text = " ".join(run("restore", "--help").output.split())
    qf_help = text[text.index("--qf TEXT"):text.index("--qf-sweep")]
    consistency_help = text[text.index("--consistency [on|off]"):text.index("--not-jpeg")]
    for help_text in (qf_help, consistency_help):
        assert "below the file's own" in help_text and "smooths only within" in help_text
    assert "use --consistency off to let a low --qf remove more" in qf_help
    assert "off lets a low --qf remove more" in consistency_help


def test_consistency_bounds_a_qf_below_the_files_own(tiny_named_models, tmp_path) -> None:
    """The rule the help states: with consistency on, the result stays inside the file's
    quantisation cells, so --qf 10 on a JPEG compressed at QF 10 and re-saved at QF 90
    (a re-saved meme) changes it less than with consistency off (both change it)."""
    from fbcnn.jpeg.consistency import JpegTables, project
    from fbcnn.jpeg.tables import compress

    src = tmp_path / "meme.jpg"
    Image.fromarray(compress(make_photo(64, 80, seed=2), 10)).save(src, quality=90)
    with Image.open(src) as im:
        decoded = np.asarray(im.convert("RGB"))
        tables = JpegTables.from_pillow(im.quantization, "4:2:0")
    change, restored = {}, {}
    for mode in ("on", "off"):
        result = run("restore", str(src), "-o", str(tmp_path / mode), "--qf", "10",
                     "--consistency", mode)
        assert result.exit_code == 0, result.output
        restored[mode] = np.asarray(Image.open(tmp_path / mode / "meme.png"))
        change[mode] = np.abs(restored[mode].astype(int) - decoded).mean()
    assert 0 < change["on"] < 0.5 * change["off"], change
    # "on" is the "off" result kept inside the file's cells
    assert np.abs(project(restored["off"], decoded, tables).astype(int)
                  - restored["on"]).max() <= 1


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


# --------------------------------------------------- output folders checked before any work


def _never_restore(monkeypatch) -> None:
    """Make any run of the network fail the test."""
    import fbcnn.engine.model

    def never(*args, **kwargs):
        raise AssertionError("an image was restored")

    monkeypatch.setattr(fbcnn.engine.model.Model, "restore_array", never)


def _refused_up_front(result, reason: str) -> str:
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    (line,) = [x for x in result.output.splitlines() if x.strip()]
    assert line.lower().startswith("error:") and reason in line, line
    return line


@pytest.fixture
def batch(tmp_path) -> Path:
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(make_photo(32, 40, seed=i)).save(folder / f"p{i}.jpg", quality=20)
    return folder


def test_read_only_output_folder_is_refused_before_any_restore(tiny_named_models, batch,
                                                              tmp_path, monkeypatch) -> None:
    """Was: every image was restored, then each failed with "permission denied"."""
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        probe = out / "probe"
        try:
            probe.write_text("x")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("this user may write into a read-only folder (root)")
        _never_restore(monkeypatch)
        line = _refused_up_front(run("restore", str(batch), "-o", str(out)),
                                 "permission denied")
        assert line == f"error: {out}: cannot write there: permission denied"
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o755)


@pytest.mark.parametrize("where", ["restored", "-o parent", "suffix beside"])
def test_a_file_where_the_output_folder_should_be_is_refused_before_any_restore(
        tiny_named_models, batch, tmp_path, monkeypatch, where) -> None:
    _never_restore(monkeypatch)
    if where == "restored":  # the default folder beside the inputs is a file
        (batch / "restored").write_text("x")
        line = _refused_up_front(run("restore", str(batch)), "not a folder")
        assert line.startswith(f"error: {batch / 'restored'}: cannot write there")
    elif where == "-o parent":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        _refused_up_front(run("restore", str(batch), "-o", str(blocker / "out")),
                          "cannot create the folder: a parent path is not a folder")
    else:  # into -o/sub-folders with --recursive: one of them is a file
        (batch / "sub").mkdir()
        Image.fromarray(make_photo(32, 40)).save(batch / "sub" / "s.jpg", quality=20)
        out = tmp_path / "out"
        out.mkdir()
        (out / "sub").write_text("x")
        _refused_up_front(run("restore", str(batch), "--recursive", "-o", str(out),
                              "--suffix", "_r"), "not a folder")
        assert sorted(p.name for p in out.iterdir()) == ["sub"]


@pytest.mark.parametrize(("errno_", "reason"), [(30, "read-only file system"),
                                                (28, "no space left on device")])
def test_read_only_or_full_file_system_is_refused_before_any_restore(
        tiny_named_models, batch, tmp_path, monkeypatch, errno_, reason) -> None:
    """As root too: the probe file is refused as such a file system refuses it
    (tests/test_disk_full.py does it on a real one)."""
    import tempfile

    import fbcnn.images.files as imageio

    real = tempfile.TemporaryFile

    def temporary_file(*args, **kwargs):
        if kwargs.get("prefix") == ".fbcnn-check.":
            raise OSError(errno_, "refused")
        return real(*args, **kwargs)

    monkeypatch.setattr(imageio.tempfile, "TemporaryFile", temporary_file)
    _never_restore(monkeypatch)
    line = _refused_up_front(run("restore", str(batch), "-o", str(tmp_path / "out")), reason)
    assert line == f"error: {tmp_path / 'out'}: cannot write there: {reason}"


def test_skip_existing_does_not_check_finished_folders(tiny_named_models, batch,
                                                      tmp_path) -> None:
    """A resumed batch whose finished outputs sit in a folder that became read-only still
    runs (nothing to write there)."""
    out = tmp_path / "out"
    assert run("restore", str(batch / "p0.jpg"), "-o", str(out)).exit_code == 0
    from fbcnn.engine.pipeline import RestoreOptions, check_output_folders, plan_outputs

    plan = plan_outputs([batch / "p0.jpg"], [str(batch / "p0.jpg")], out)
    assert check_output_folders(plan.values(), RestoreOptions(skip_existing=True)) == []
    assert check_output_folders(plan.values(), RestoreOptions()) == [out]


# ------------------------------------------------------------------------- CMYK JPEGs


def test_cmyk_and_ycck_jpegs_are_restored_as_rgb(tiny_named_models, tmp_path,
                                                 monkeypatch) -> None:
    """Was: "CMYK images are not supported; convert to RGB first". Read as RGB, restored
    without JPEG consistency (the tables quantised ink planes) and without the double-JPEG
    analysis, and said so on the report line."""
    from conftest import cmyk_jpeg

    import fbcnn.engine.model
    import fbcnn.jpeg.recompress

    rgb = make_photo(96, 128)  # big enough for the double-JPEG analysis to run
    folder = tmp_path / "in"
    folder.mkdir()
    cmyk_jpeg(folder / "cmyk.jpg", rgb, quality=30)
    cmyk_jpeg(folder / "ycck.jpg", rgb, quality=30, ycck=True)
    tables = []
    original = fbcnn.engine.model.Model.restore_array

    def spy(self, pixels, qf=None, grid=8, tables_=None, **kwargs):
        tables.append(tables_)
        return original(self, pixels, qf, grid, tables_, **kwargs)

    def no_analysis(*args, **kwargs):
        raise AssertionError("double-JPEG analysis of a converted CMYK JPEG")

    monkeypatch.setattr(fbcnn.engine.model.Model, "restore_array", spy)
    monkeypatch.setattr(fbcnn.jpeg.recompress, "analyse", no_analysis)
    result = run("restore", str(folder), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert tables == [None, None]
    lines = sorted(line for line in result.output.splitlines() if "predicted QF" in line)
    assert len(lines) == 2 and "cmyk.jpg:" in lines[0]
    assert "CMYK converted to RGB (no JPEG consistency, no double-JPEG analysis) [color]" \
        in lines[0]
    assert "YCCK converted to RGB" in lines[1]
    with Image.open(tmp_path / "out" / "cmyk.png") as im:
        assert im.mode == "RGB" and im.size == (128, 96) and "icc_profile" not in im.info
        assert np.abs(np.asarray(im).astype(int) - rgb).mean() < 12
    with Image.open(tmp_path / "out" / "ycck.png") as im:
        assert im.mode == "RGB" and im.size == (128, 96)


def test_cmyk_jpeg_with_a_profile_is_restored_in_srgb(tiny_named_models, tmp_path) -> None:
    from conftest import cmyk_jpeg, cmyk_profile

    from fbcnn.images.files import srgb_profile

    rgb = make_photo(48, 64)
    path = cmyk_jpeg(tmp_path / "swapped.jpg", rgb, quality=60, icc=cmyk_profile(swap=True))
    result = run("restore", str(path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "CMYK converted to RGB through its ICC profile" in result.output
    with Image.open(tmp_path / "out" / "swapped.png") as im:
        assert im.info.get("icc_profile") == srgb_profile()
        out = np.asarray(im).astype(int)
    # the profile swapped cyan and yellow: the result is the BGR image, not the RGB one
    assert np.abs(out - rgb[..., ::-1]).mean() < 0.5 * np.abs(out - rgb).mean()
