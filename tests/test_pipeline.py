"""One file end to end: output names planned per run (never shared, never silently
replaced), the QF a double JPEG gets, and what the restore is told instead of recomputing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_photo
from PIL import Image

from fbcnn.cli import main
from fbcnn.pipeline import plan_outputs
from fbcnn.recompress import DoubleJpegVerdict


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
    import fbcnn.pipeline as pipeline

    jpg = save(tmp_path / "d.jpg")
    fed = []

    class Found:
        detected, kind = True, "non-aligned"

        def qf_to_feed(self, predicted):
            return 17.0

        def to_json(self):
            return {"detected": True, "kind": "non-aligned", "qf1": 17, "offset": [3, 5]}

    monkeypatch.setattr(pipeline, "analyse_double",
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


def test_prefetch_loads_the_first_jpeg_model_in_the_background(tiny_named_models, tmp_path):
    """`fbcnn restore` starts loading the model of its first input while the image is read:
    the one the header asks for (grey or colour, or the fixed --model), JPEGs only."""
    from conftest import make_photo
    from PIL import Image

    from fbcnn.pipeline import ModelSet

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
