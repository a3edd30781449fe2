"""`fbcnn restore --engine ray` and `fbcnn.restore_many` (fbcnn.frontends.distributed): the same
files and lines as the local engine, a worker killed mid-run, URIs, one-line errors."""

from __future__ import annotations

import functools
import json
import re
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_photo
from PIL import Image

import fbcnn
from fbcnn.frontends.cli import main

try:
    import ray  # noqa: F401

    HAS_RAY = True
except ImportError:
    HAS_RAY = False
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray is not importable (pip install "
                               "'fbcnn[ray]'; make setup installs it)")
needs_pyarrow = pytest.mark.skipif(find_spec("pyarrow") is None,
                                   reason="pyarrow is not installed (comes with fbcnn[ray])")


def _exit_once_hook(marker: str):
    """A Ray worker process setup hook (pickled by value, so the workers need not import
    this module): the first worker about to restore the input named in `marker` deletes
    the file and kills its own process, as a crash or an out-of-memory kill would. Nothing
    happens while the file is absent."""

    def setup() -> None:
        import os
        from pathlib import Path, PurePosixPath

        from fbcnn.frontends import distributed

        restore = distributed.Worker.restore

        def restore_or_exit(self, item, planned):
            try:
                name = Path(marker).read_text().strip()
            except OSError:
                name = ""
            if name and name == PurePosixPath(item).name:
                try:
                    os.unlink(marker)  # only one process wins
                except FileNotFoundError:
                    return restore(self, item, planned)
                os._exit(1)
            return restore(self, item, planned)

        distributed.Worker.restore = restore_or_exit

    return setup


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory):
    """One local Ray instance (2 CPUs) for the module, started as the engine starts it, its
    workers set up by `_exit_once_hook`; yields the hook's marker file (absent: no fault)."""
    import ray

    from fbcnn.frontends.distributed import _start_ray

    marker = tmp_path_factory.mktemp("hook") / "exit-once"
    runtime_env = {"worker_process_setup_hook": _exit_once_hook(str(marker))}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray, "init", functools.partial(ray.init, runtime_env=runtime_env))
        _start_ray(None, 2)
    yield marker
    ray.shutdown()


@pytest.fixture
def photos(tmp_path) -> Path:
    """A colour and a grey JPEG (48x40) and a truncated one."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(make_photo(40, 48)).save(folder / "a_color.jpg", quality=20)
    Image.fromarray(make_photo(40, 48, channels=1, seed=1)[:, :, 0]).save(
        folder / "b_grey.jpg", quality=30)
    data = (folder / "a_color.jpg").read_bytes()
    (folder / "c_corrupt.jpg").write_bytes(data[: len(data) // 3])
    return folder


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def lines(result, outdir: Path) -> list[str]:
    """Result lines (stdout, then stderr) without the progress bar, the output folder
    replaced by OUT."""
    out = []
    for line in (result.stdout + result.stderr).replace("\r", "\n").splitlines():
        line = line.strip()
        if line.startswith(("error:", "restored ")) or " -> " in line:
            line = re.sub(r" \([0-9.]+ images/s, \d+ at a time\)$", "", line)
            out.append(line.replace(str(outdir), "OUT"))
    return out


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@needs_ray
def test_ray_engine_writes_the_local_engines_files_and_lines(ray_instance, photos,
                                                            tmp_path) -> None:
    local = run("restore", str(photos), "-o", str(tmp_path / "local"), "--compare")
    by_ray = run("restore", str(photos), "-o", str(tmp_path / "ray"), "--compare",
                 "--engine", "ray", "--workers", "2", "--threads-per-worker", "1")
    assert local.exit_code == by_ray.exit_code == 1, (local.output, by_ray.output)
    assert isinstance(by_ray.exception, SystemExit), by_ray.exception
    assert "Traceback" not in by_ray.output
    expected = lines(local, tmp_path / "local")
    got = lines(by_ray, tmp_path / "ray")
    assert sorted(got) == sorted(expected)  # (each engine prints files as they finish)
    assert sum(x.startswith("error:") and "c_corrupt.jpg" in x for x in got) == 1
    assert got[-1] == expected[-1] == "restored 2 of 3 image(s), 1 failed"
    assert sum("a_color.jpg: predicted QF" in x and "[color]" in x for x in got) == 1
    assert sum("b_grey.jpg: predicted QF" in x and "[gray]" in x for x in got) == 1
    out_local, out_ray = files(tmp_path / "local"), files(tmp_path / "ray")
    assert sorted(out_ray) == ["a_color.png", "a_color_compare.png", "b_grey.png",
                               "b_grey_compare.png"]
    assert out_ray == out_local


@needs_ray
def test_killed_worker_is_replaced_and_skip_existing_finishes(ray_instance, photos,
                                                             tmp_path) -> None:
    (photos / "c_corrupt.jpg").unlink()
    for i in range(2):  # four inputs for two workers
        Image.fromarray(make_photo(40, 48, seed=10 + i)).save(photos / f"d{i}.jpg", quality=25)
    reference = tmp_path / "local"
    assert run("restore", str(photos), "-o", str(reference)).exit_code == 0

    ray_instance.write_text("b_grey.jpg")  # the worker that takes it exits, once
    out = tmp_path / "ray"
    result = run("restore", str(photos), "-o", str(out), "--engine", "ray", "--workers", "2")
    assert not ray_instance.exists(), "no worker process was killed"
    assert result.exit_code == 0, result.output
    assert lines(result, out)[-1] == "restored 4 of 4 image(s)"
    assert files(out) == files(reference)  # complete, identical, no temp files left

    # an interrupted run: one output missing; the rerun restores only that one
    (out / "d1.png").unlink()
    stamp = (out / "a_color.png").stat().st_mtime_ns
    outcomes = fbcnn.restore_many([photos], out, engine="ray", workers=1, skip_existing=True)
    assert [o.input for o in outcomes] == [str(photos / n) for n in
                                           ("a_color.jpg", "b_grey.jpg", "d0.jpg", "d1.jpg")]
    assert not any(o.failed for o in outcomes)
    assert [o.report.skipped for o in outcomes] == [True, True, True, False]
    assert outcomes[3].report.outputs == [out / "d1.png"]
    assert (out / "a_color.png").stat().st_mtime_ns == stamp
    assert files(out) == files(reference)


@needs_pyarrow
def test_file_uri_inputs_match_paths(tiny_model_files, photos, tmp_path) -> None:
    """URIs go through pyarrow.fs (here file://, in this process): same files, URI named."""
    model = str(tiny_model_files["color"])
    by_path = run("restore", str(photos), "-o", str(tmp_path / "p"), "--model", model)
    by_uri = run("restore", photos.as_uri(), "-o", str(tmp_path / "u"), "--model", model)
    assert by_path.exit_code == by_uri.exit_code == 1
    assert files(tmp_path / "u") == files(tmp_path / "p")
    uri_lines = lines(by_uri, tmp_path / "u")
    path_lines = lines(by_path, tmp_path / "p")
    assert sorted(uri_lines) == sorted(x.replace(str(photos), photos.as_uri())
                                       for x in path_lines)
    assert f"error: {photos.as_uri()}/c_corrupt.jpg: corrupt" in by_uri.stderr
    assert f"{photos.as_uri()}/a_color.jpg: predicted QF" in by_uri.output
    again = run("restore", photos.as_uri(), "-o", str(tmp_path / "u"), "--model", model,
                "--skip-existing")
    assert lines(again, tmp_path / "u")[-1] == "restored 0 of 3 image(s), skipped 2, 1 failed"
    assert f"{photos.as_uri()}/b_grey.jpg: skipped (output exists)" in again.stdout


@pytest.mark.parametrize("args, message", [
    (["nosuch://bucket/x.jpg", "-o", "OUT"], "Error: nosuch://bucket/x.jpg: unsupported or "
                                             "unreachable URI"),
    (["IN", "-o", "s3://bucket/out"], "the output folder must be a local path"),
    (["IN", "--workers", "2"], "need --engine ray"),
    (["IN", "--engine", "ray", "--workers", "0"], "Invalid value for '--workers'"),
    (["IN", "--engine", "ray", "--jobs", "2"], "--jobs is for --engine local"),
])
def test_bad_engine_options_are_one_line_errors(args, message, photos, tmp_path) -> None:
    args = [a.replace("IN", str(photos)).replace("OUT", str(tmp_path / "o")) for a in args]
    if args[0].startswith("nosuch") and find_spec("pyarrow") is None:
        pytest.skip("pyarrow is not installed")
    result = run("restore", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()
    assert isinstance(result.exception, SystemExit)


def test_ray_engine_without_ray_says_how_to_install(monkeypatch, photos, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = run("restore", str(photos), "-o", str(tmp_path / "o"), "--engine", "ray")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: the Ray engine needs Ray: pip install 'fbcnn[ray]'")


def test_restore_many_local_engine_reports_each_file(tiny_model_files, photos,
                                                     tmp_path) -> None:
    outcomes = fbcnn.restore_many([str(photos)], tmp_path / "o",
                                  model=str(tiny_model_files["color"]), qf=40)
    assert [o.failed for o in outcomes] == [False, False, True]
    assert outcomes[2].error.startswith(f"{photos / 'c_corrupt.jpg'}: corrupt")
    assert outcomes[0].report.used_qf == 40.0
    grey = np.asarray(Image.open(outcomes[1].report.outputs[0]))
    assert grey.shape == (40, 48)


def test_benchmark_script_prints_a_table(tmp_path, capsys) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import benchmark_ray

    data = tmp_path / "clean"
    data.mkdir()
    for i in range(2):
        Image.fromarray(make_photo(40, 48, seed=i)).save(data / f"im{i}.png")
    assert benchmark_ray.main(["--data", str(data), "--configs", "local:1",
                               "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "2 images (0.00 MPix) from clean, JPEG QF 30" in out
    row = [x for x in out.splitlines() if x.startswith("| local (1 process x 1 thread) |")]
    assert len(row) == 1 and len(row[0].split("|")) == 6
    assert len(json.loads((tmp_path / "b.json").read_text())["runs"]) == 1
    with pytest.raises(SystemExit):
        benchmark_ray.parse_config("ray:two")
