"""One file end to end: output names planned per run (never shared, never silently
replaced), the QF a double JPEG gets, and what the restore is told instead of recomputing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_photo
from PIL import Image

from fbcnn.engine.pipeline import plan_outputs
from fbcnn.frontends.cli import main
from fbcnn.jpeg.recompress import DoubleJpegVerdict


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def save(path: Path, seed: int = 0, quality: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_photo(40, 48, seed=seed)).save(path, quality=quality)
    return path


def test_plan_keeps_sub_folders_and_disambiguates_same_stems(tmp_path) -> None:
    rec = tmp_path / "rec"
    a, b = rec / "d1" / "x.jpg", rec / "d2" / "x.jpg"
    c, d = tmp_path / "same" / "a.jpg", tmp_path / "same" / "a.png"
    out = tmp_path / "out"
    plan = plan_outputs([a, b], [rec], out)
    assert plan[a].outputs == [out / "d1" / "x.png"] and plan[b].outputs == [out / "d2" / "x.png"]
    plan = plan_outputs([c, d], [c, d], out, sweep=[10, 90], compare=True)
    assert plan[c].outputs == [out / "a.jpg_qf10.png", out / "a.jpg_qf90.png"]
    assert plan[d].compares == [out / "a.png_qf10_compare.png", out / "a.png_qf90_compare.png"]
    # the same file name from two folders into one outdir: numbered after the whole name
    plan = plan_outputs([a, b], [a, b], out)
    assert [plan[a].outputs[0].name, plan[b].outputs[0].name] == ["x.jpg.png", "x.jpg_2.png"]
    # an input called like another's compare image
    e, f = tmp_path / "p" / "y.jpg", tmp_path / "p" / "y_compare.jpg"
    plan = plan_outputs([e, f], [e, f], out, compare=True)
    names = [p.name for pl in plan.values() for p in pl.all]
    assert len(names) == len(set(names)) == 4
    # without an outdir: restored/ beside each input, no clash to resolve
    assert plan_outputs([a], [rec], None)[a].outputs == [rec / "d1" / "restored" / "x.png"]


def test_cli_recursive_and_same_stem_inputs_never_overwrite_each_other(tiny_named_models,
                                                                       tmp_path) -> None:
    rec = tmp_path / "rec"
    save(rec / "d1" / "x.jpg", 1), save(rec / "d2" / "x.jpg", 2)
    result = run("restore", rec, "--recursive", "-o", tmp_path / "out", "--double", "off")
    assert result.exit_code == 0, result.output
    first = np.asarray(Image.open(tmp_path / "out" / "d1" / "x.png"))
    second = np.asarray(Image.open(tmp_path / "out" / "d2" / "x.png"))
    assert not np.array_equal(first, second) and "restored 2 of 2" in result.output
    same = tmp_path / "same"
    save(same / "a.jpg", 3)
    Image.fromarray(make_photo(40, 48, seed=4)).save(same / "a.png")
    result = run("restore", same / "a.jpg", same / "a.png", "-o", tmp_path / "o2")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["a.jpg.png", "a.png.png"]


def test_existing_output_is_kept_unless_overwrite(tiny_named_models, tmp_path) -> None:
    jpg = save(tmp_path / "in" / "p.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "p.png").write_bytes(b"someone else's file")
    result = run("restore", jpg, "-o", out)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[0].startswith(f"error: {out / 'p.png'}: exists")
    assert (out / "p.png").read_bytes() == b"someone else's file"
    result = run("restore", jpg, "-o", out, "--overwrite")
    assert result.exit_code == 0 and Image.open(out / "p.png").size == (48, 40)
    result = run("restore", jpg, "-o", out, "--overwrite", "--skip-existing")
    assert result.exit_code == 2 and "cannot be used together" in result.output


def test_sweep_with_repeated_qf_writes_each_once(tiny_named_models, tmp_path) -> None:
    jpg = save(tmp_path / "p.jpg")
    result = run("restore", jpg, "-o", tmp_path / "o", "--qf-sweep", "10,10,30")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["p_qf10.png", "p_qf30.png"]


@pytest.mark.parametrize("tile", ["1", "15", "63"])
def test_small_tiles_are_a_usage_error_not_a_traceback(tiny_named_models, tmp_path,
                                                       tile) -> None:
    jpg = save(tmp_path / "p.jpg")
    result = run("restore", jpg, "-o", tmp_path / "o", "--tile", tile)
    assert result.exit_code == 2 and "at least 64" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_double_jpeg_rule_feeds_the_earlier_qf_only_when_it_dominates() -> None:
    def verdict(detected, kind, qf1):
        return DoubleJpegVerdict(detected, kind, qf1, (3, 5) if detected else None, 0.9, 60)

    assert verdict(True, "non-aligned", 20).qf_to_feed(55.0) == 20.0
    assert verdict(True, "non-aligned", 70).qf_to_feed(55.0) is None  # weaker: prediction
    assert verdict(True, "aligned", 20).qf_to_feed(55.0) is None
    assert verdict(False, "single", None).qf_to_feed(55.0) is None


def test_restore_file_feeds_the_dominant_qf_to_a_double_jpeg(tiny_named_models, tmp_path,
                                                            monkeypatch) -> None:
    import fbcnn.engine.analysis as analysis
    import fbcnn.engine.pipeline as pipeline

    jpg = save(tmp_path / "d.jpg")
    fed = []

    class Found:
        detected, kind = True, "non-aligned"

        def qf_to_feed(self, predicted):
            return 17.0

        def to_json(self):
            return {"detected": True, "kind": "non-aligned", "qf1": 17, "offset": [3, 5]}

    monkeypatch.setattr(analysis, "analyse_double",
                        lambda image, progress=None, trace=None: Found())
    original = pipeline.Model.restore_array

    def spy(self, pixels, qf=None, *args, **kwargs):
        fed.append((qf, kwargs.get("predicted_qf")))
        return original(self, pixels, qf, *args, **kwargs)

    monkeypatch.setattr(pipeline.Model, "restore_array", spy)
    result = run("restore", jpg, "-o", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert "used QF 17.0" in result.output and "non-aligned double JPEG" in result.output
    ((qf, predicted),) = fed
    assert qf == 17.0 and predicted is not None  # read once, passed down


def test_batch_jobs_run_images_side_by_side_with_the_same_results(tiny_named_models,
                                                                  tmp_path) -> None:
    folder = tmp_path / "in"
    for i in range(4):
        save(folder / f"p{i}.jpg", seed=i)
    (folder / "bad.jpg").write_bytes(b"not a jpeg")
    one = run("restore", folder, "-o", tmp_path / "one", "--jobs", "1")
    two = run("restore", folder, "-o", tmp_path / "two", "--jobs", "2")
    assert one.exit_code == two.exit_code == 1  # the bad file, reported once each
    assert one.output.count("error: ") == two.output.count("error: ") == 1
    assert "restored 4 of 5 image(s), 1 failed" in two.output and "2 at a time" in two.output
    for i in range(4):
        a = np.asarray(Image.open(tmp_path / "one" / f"p{i}.png"), np.int16)
        b = np.asarray(Image.open(tmp_path / "two" / f"p{i}.png"), np.int16)
        assert np.abs(a - b).max() <= 1  # same model; only thread counts differ


def test_the_double_jpeg_analysis_does_not_wait_for_the_model(tiny_named_models, tmp_path,
                                                              monkeypatch):
    """`restore_file` asks for the model only once the pixels are analysed: the first
    image's model may still be loading (the prefetch thread), and the double-JPEG analysis
    needs none."""
    from fbcnn.engine import analysis, pipeline

    order: list[str] = []
    double = analysis.analyse_double
    monkeypatch.setattr(analysis, "analyse_double",
                        lambda *a, **k: order.append("double") or double(*a, **k))
    models = pipeline.ModelSet(precision="fp32")
    for_image = models.for_image
    monkeypatch.setattr(models, "for_image", lambda image: order.append("model") or
                        for_image(image))
    jpg = save(tmp_path / "a.jpg")
    planned = pipeline.plan_outputs([jpg], [str(jpg)], tmp_path / "out")[jpg]
    report = pipeline.restore_file(jpg, models, planned)
    assert order == ["double", "model"] and report.model == "color"


def test_prefetch_loads_the_first_jpeg_model_in_the_background(tiny_named_models, tmp_path):
    """`fbcnn restore` starts loading the model of its first input while the image is read:
    the one the header asks for (grey or colour, or the fixed --model), JPEGs only."""
    from conftest import make_photo
    from PIL import Image

    from fbcnn.engine.pipeline import ModelSet

    Image.fromarray(make_photo(32, 40)).save(tmp_path / "c.jpg", quality=30)
    Image.fromarray(make_photo(32, 40, channels=1)[:, :, 0]).save(tmp_path / "g.jpg")
    Image.fromarray(make_photo(32, 40)).save(tmp_path / "p.png")
    (tmp_path / "junk.jpg").write_bytes(b"not a jpeg")
    for name, want in (("c.jpg", "color"), ("g.jpg", "gray")):
        models = ModelSet(precision="fp32")
        models.prefetch(tmp_path / name).join()
        assert list(models._loaded) == [want]
    models = ModelSet(precision="fp32")
    assert models.prefetch(tmp_path / "p.png") is None  # may need no model at all
    assert models.prefetch(tmp_path / "junk.jpg") is None and not models._loaded
    fixed = ModelSet("gray", precision="fp32")
    fixed.prefetch(tmp_path / "c.jpg").join()
    assert list(fixed._loaded) == ["gray"]


# ------------------------------------------------------------- --suffix, --ext, --quality


def test_plan_with_suffix_and_ext(tmp_path) -> None:
    """--suffix puts outputs beside the inputs (or into -o), named <stem><suffix>[_qfN]
    [_compare].<ext>; collisions are resolved as for the default names."""
    a, b = tmp_path / "p" / "a.jpg", tmp_path / "p" / "a.png"
    plan = plan_outputs([a], [a], None, suffix="_r", ext="jpg")
    assert plan[a].outputs == [tmp_path / "p" / "a_r.jpg"] and plan[a].compares == []
    plan = plan_outputs([a], [a], tmp_path / "o", [10, 90], True, suffix="_r", ext="webp")
    assert [o.name for o in plan[a].all] == ["a_r_qf10.webp", "a_r_qf90.webp",
                                             "a_r_qf10_compare.webp", "a_r_qf90_compare.webp"]
    assert all(o.parent == tmp_path / "o" for o in plan[a].all)
    # an empty suffix beside the inputs, two inputs of one stem: named after the whole name
    plan = plan_outputs([a, b], [a, b], None, suffix="", ext="webp")
    assert [plan[a].outputs[0].name, plan[b].outputs[0].name] == ["a.jpg.webp", "a.png.webp"]
    # without --suffix nothing changes but the extension
    assert plan_outputs([a], [a], None, ext="jpg")[a].outputs == \
        [tmp_path / "p" / "restored" / "a.jpg"]
    # a sweep's names against an input called like one of them, compares included
    c = tmp_path / "p" / "a_qf10.jpg"
    plan = plan_outputs([a, c], [a, c], tmp_path / "o", [10], True, suffix="", ext="jpg")
    names = [o.name for pl in plan.values() for o in pl.all]
    assert len(names) == len(set(names)) == 4


@pytest.mark.parametrize(("files", "suffix", "ext", "outdir", "victim"), [
    (["photo.jpg"], "", "jpg", None, "this input"),  # the input itself
    (["Photo.JPG"], "", "jpg", None, "this input"),  # by another letter case
    (["a.jpg", "a_r.jpg"], "_r", "jpg", None, "the input"),  # another input
    (["x.png"], None, "png", "same", "this input"),  # -o the input's folder
    (["x.png"], "", "png", "same-absolute", "this input"),  # spelled another way
])
def test_plan_refuses_an_output_that_is_an_input(tmp_path, monkeypatch, files, suffix, ext,
                                                 outdir, victim) -> None:
    """Was: `--suffix "" --ext jpg` beside photo.jpg would have replaced it (write_image
    refused only after the restore, and only for the exact same spelling)."""
    from fbcnn.images.files import ImageError

    monkeypatch.chdir(tmp_path)
    paths = [Path("in") / f for f in files]
    out = {None: None, "same": Path("in"), "same-absolute": tmp_path / "in"}[outdir]
    with pytest.raises(ImageError) as info:
        plan_outputs(paths, paths, out, suffix=suffix, ext=ext)
    message = str(info.value)
    assert "\n" not in message and f"would overwrite {victim}" in message, message
    assert message.endswith("choose another --suffix, --ext or -o")


def test_cli_refuses_to_overwrite_an_input_before_restoring(tiny_named_models, tmp_path,
                                                            monkeypatch) -> None:
    import fbcnn.engine.pipeline as pipeline

    jpg = save(tmp_path / "in" / "photo.jpg")
    before = jpg.read_bytes()

    def never(*args, **kwargs):
        raise AssertionError("the network ran")

    monkeypatch.setattr(pipeline.Model, "restore_array", never)
    result = run("restore", jpg, "--suffix", "", "--ext", "jpg")
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line == (f"error: {jpg}: its output {jpg} would overwrite this input; choose "
                    "another --suffix, --ext or -o")
    assert jpg.read_bytes() == before and [p.name for p in jpg.parent.iterdir()] == ["photo.jpg"]


def test_cli_suffix_ext_quality(tiny_named_models, tmp_path) -> None:
    folder = tmp_path / "in"
    save(folder / "a.jpg", 1), save(folder / "b.jpg", 2)
    result = run("restore", folder, "--suffix", "_r", "--ext", "jpg", "--quality", "40",
                 "--compare")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == [
        "a.jpg", "a_r.jpg", "a_r_compare.jpg", "b.jpg", "b_r.jpg", "b_r_compare.jpg"]
    from fbcnn.images.files import read_image

    for name in ("a_r.jpg", "b_r_compare.jpg"):
        assert read_image(folder / name).header_qf == 40
    assert read_image(folder / "a_r.jpg").pixels.shape == (40, 48, 3)
    # rerun over the folder: the outputs found there are not inputs; resumed, not refused
    result = run("restore", folder, "--suffix", "_r", "--ext", "jpg", "--quality", "40",
                 "--compare", "--skip-existing")
    assert result.exit_code == 0, result.output
    assert "4 file(s) in the input folders are named as outputs" in result.output
    assert "restored 0 of 2 image(s), skipped 2" in result.output
    # webp into -o with a sweep, default quality (lossy 95)
    result = run("restore", folder / "a.jpg", "-o", tmp_path / "w", "--ext", "webp",
                 "--suffix", ".fbcnn", "--qf-sweep", "20,60")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == [
        "a.fbcnn_qf20.webp", "a.fbcnn_qf60.webp"]
    assert Image.open(tmp_path / "w" / "a.fbcnn_qf20.webp").format == "WEBP"


def test_cli_output_flags_bad_values(tiny_named_models, tmp_path) -> None:
    jpg = save(tmp_path / "in" / "p.jpg")
    for args, message in ((["--quality", "80"], "--quality is for --ext jpg or webp"),
                          (["--ext", "jpg", "--quality", "0"], "--quality"),
                          (["--ext", "gif"], "--ext"),
                          (["--suffix", "../up"], "no folder separators")):
        result = run("restore", jpg, *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert [p.name for p in jpg.parent.iterdir()] == ["p.jpg"]


def test_restore_options_check_the_new_fields() -> None:
    from fbcnn.engine.pipeline import RestoreOptions

    assert RestoreOptions().write_quality is None
    assert RestoreOptions(ext="jpg").write_quality == 95
    assert RestoreOptions(ext="webp", quality=70).write_quality == 70
    for bad in ({"ext": "gif"}, {"ext": "jpg", "quality": 0}, {"quality": 90},
                {"suffix": "a/b"}):
        with pytest.raises(ValueError):
            RestoreOptions(**bad)


def test_cli_jpeg_output_flattens_alpha(tiny_named_models, tmp_path) -> None:
    rgba = Image.fromarray(make_photo(40, 48)).convert("RGBA")
    alpha = np.zeros((40, 48), np.uint8)
    alpha[:, 24:] = 255
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "a.png")
    result = run("restore", tmp_path / "a.png", "--suffix", "_r", "--ext", "jpg")
    assert result.exit_code == 0, result.output
    assert "copied unchanged" in result.output  # never a JPEG: its pixels, flattened
    assert "alpha flattened onto white (JPEG)" in result.output
    with Image.open(tmp_path / "a_r.jpg") as im:
        out = np.asarray(im)
    assert im.mode == "RGB" and out[:, :20].min() > 240  # transparent: white
    assert np.abs(out[:, 28:].astype(int) - make_photo(40, 48)[:, 28:]).mean() < 4


def test_restore_many_takes_the_output_options_and_checks_first(tiny_named_models,
                                                                tmp_path) -> None:
    """The library's batch (fbcnn.restore_many, the engines of --engine) names outputs as
    the CLI does and refuses the same runs, before restoring."""
    import fbcnn
    from fbcnn.frontends.distributed import EngineError

    jpg = save(tmp_path / "in" / "p.jpg")
    done = fbcnn.restore_many([jpg], None, suffix="_r", ext="jpg", quality=50)
    assert [o.error for o in done] == [None]
    assert done[0].report.outputs == [tmp_path / "in" / "p_r.jpg"]
    with pytest.raises(EngineError, match="would overwrite this input"):
        fbcnn.restore_many([jpg], None, suffix="", ext="jpg")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EngineError, match="a parent path is not a folder"):
        fbcnn.restore_many([jpg], blocker / "out")


def test_plan_names_the_output_file_of_one_image(tmp_path) -> None:
    """-o photo_restored.jpg: the file itself (was: a folder named photo_restored.jpg)."""
    a = save(tmp_path / "p" / "a.jpg")
    target = tmp_path / "o" / "x.JPEG"
    assert plan_outputs([a], [a], target, ext="jpg")[a].outputs == [target]
    plan = plan_outputs([a], [a], tmp_path / "x.webp", [10, 60], True, ext="webp")
    assert [o.name for o in plan[a].all] == ["x_qf10.webp", "x_qf60.webp",
                                             "x_qf10_compare.webp", "x_qf60_compare.webp"]
    # a folder that exists is a folder, whatever its name
    (tmp_path / "d.png").mkdir()
    assert plan_outputs([a], [a], tmp_path / "d.png")[a].outputs == [tmp_path / "d.png" / "a.png"]
    b = save(tmp_path / "p" / "b.jpg", 1)
    from fbcnn.images.files import ImageError

    for paths, inputs, out, options, message in (
            ([a, b], [a, b], "x.png", {}, "takes one input image, got 2 images"),
            ([a], [a.parent], "x.png", {}, f"got the folder {a.parent}"),
            ([a], [a], "x.png", {"suffix": "_r"}, "takes no suffix"),
            ([a], [a], "x.png", {"ext": "jpg"}, "is a png file but the output format asked "
                                                "for is jpg"),
            ([a], [a], a, {"ext": "jpg"}, "would overwrite this input")):
        with pytest.raises(ImageError, match=message):
            plan_outputs(paths, inputs, tmp_path / out, **options)


def test_cli_and_api_write_the_output_file_named(tiny_named_models, tmp_path) -> None:
    import fbcnn
    from fbcnn.images.files import read_image

    jpg = save(tmp_path / "in" / "p.jpg")
    out = tmp_path / "out" / "p_restored.jpg"
    result = run("restore", jpg, "-o", out, "--quality", "70")
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.parent.iterdir()] == ["p_restored.jpg"]
    assert read_image(out).header_qf == 70  # its suffix set the format
    result = run("restore", jpg, "-o", out)
    assert result.exit_code == 1 and "p_restored.jpg: exists" in result.output
    assert run("restore", jpg, "-o", out, "--overwrite").exit_code == 0
    # refused before anything is written: several inputs, another --ext
    for args, message in (([jpg, save(tmp_path / "in" / "q.jpg", 2)], "takes one input image"),
                          ([jpg, "--ext", "webp"], "is a jpg file but the output format")):
        result = run("restore", *args, "-o", tmp_path / "none.jpg")
        assert result.exit_code == 1 and message in result.output, result.output
        assert not (tmp_path / "none.jpg").exists()
    done = fbcnn.restore_many([jpg], tmp_path / "api.webp", quality=60)
    assert [o.error for o in done] == [None]
    assert Image.open(tmp_path / "api.webp").format == "WEBP"


def test_cli_reads_standard_input_and_writes_standard_output(tiny_named_models,
                                                             tmp_path) -> None:
    import io

    from fbcnn.images.files import read_image

    jpg = save(tmp_path / "in" / "p.jpg")
    runner = CliRunner()
    # - to -: the PNG on standard output, the report line on standard error, naming "-"
    done = runner.invoke(main, ["restore", "-", "-o", "-"], input=jpg.read_bytes())
    assert done.exit_code == 0, done.stderr
    with Image.open(io.BytesIO(done.stdout_bytes)) as im:
        assert im.format == "PNG" and im.size == (48, 40)
        piped = np.asarray(im)
    assert done.stderr.startswith("-: predicted QF") and done.stderr.count("-> -") == 1
    # the same pixels as the file restored to a file; --ext sets the format on stdout
    assert run("restore", jpg, "-o", tmp_path / "p.png").exit_code == 0
    assert np.array_equal(piped, np.asarray(Image.open(tmp_path / "p.png")))
    done = runner.invoke(main, ["restore", str(jpg), "-o", "-", "--ext", "jpg",
                                "--quality", "60"])
    assert done.exit_code == 0 and read_image(_saved(tmp_path, done.stdout_bytes)).header_qf == 60
    # standard input into a folder or a file
    done = runner.invoke(main, ["restore", "-", "-o", str(tmp_path / "o")],
                         input=jpg.read_bytes())
    assert done.exit_code == 0 and (tmp_path / "o" / "stdin.png").exists()
    # bad input: one line on standard error, nothing on standard output
    done = runner.invoke(main, ["restore", "-", "-o", "-"], input=b"not an image")
    assert done.exit_code == 1 and done.stdout_bytes == b""
    assert "error: -: not an image" in done.stderr
    for args, message in ((["-"], "needs -o"), (["-", str(jpg), "-o", "-"], "one input image"),
                          ([str(jpg), "-o", "-", "--compare"], "no --qf-sweep, --compare"),
                          (["-", "-o", "-", "--engine", "ray"], "--engine local")):
        done = runner.invoke(main, ["restore", *args], input=b"")
        assert done.exit_code == 2 and message in done.output, (args, done.output)


def _saved(folder: Path, data: bytes) -> Path:
    path = folder / "saved.bin"
    path.write_bytes(data)
    return path


def test_cli_restores_a_grey_photo_saved_in_colour_as_grey(tiny_named_models,
                                                           tmp_path) -> None:
    """A black-and-white photo in a colour JPEG is picked the grey model (was: the colour
    one, whose result had faint colour); its result, in RGB, is the grey JPEG's."""
    grey = make_photo(48, 64, channels=1)[:, :, 0]
    (tmp_path / "in").mkdir()
    Image.fromarray(grey).convert("RGB").save(tmp_path / "in" / "rgb.jpg", quality=20)
    Image.fromarray(grey).save(tmp_path / "in" / "grey.jpg", quality=20)
    result = run("restore", tmp_path / "in", "-o", tmp_path / "out", "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert "rgb.jpg: predicted QF" in result.output and result.output.count("[gray]") == 2
    with Image.open(tmp_path / "out" / "rgb.png") as im:
        rgb = np.asarray(im)
    with Image.open(tmp_path / "out" / "grey.png") as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(rgb, np.repeat(np.asarray(im)[:, :, None], 3, axis=2))
