"""A full disk under `fbcnn restore`: one line per file that did not fit, nothing partial.

The output folder is a 64 KiB tmpfs, mounted in a private user + mount namespace
(`unshare -rm`, or `unshare -m` as root), so the test needs no privileges and leaves no mount
behind; it is skipped, saying why, where the system allows neither. The restore runs inside
the namespace and what it left in the tmpfs is copied out (hidden files too) for checking.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_photo, tiny_network
from PIL import Image

from fbcnn.networks.checkpoints import save_network

TMPFS_SIZE = "64k"


def _namespace_prefix() -> list[str]:
    """The unshare command that can mount a tmpfs here, or skip the test with the reason."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs util-linux unshare to mount a small tmpfs")
    tried = []
    for flags in (["-rm"], ["-m"]):
        probe = subprocess.run([unshare, *flags, "sh", "-c",
                                f"mount -t tmpfs -o size={TMPFS_SIZE} tmpfs /mnt 2>&1 || "
                                "exit 3"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return [unshare, *flags]
        tried.append(f"unshare {' '.join(flags)}: {(probe.stdout + probe.stderr).strip()}")
    pytest.skip("cannot mount a tmpfs in a private namespace here (" + "; ".join(tried) + ")")


def test_disk_full_fails_per_file_with_one_line_and_no_partial_file(tmp_path: Path) -> None:
    prefix = _namespace_prefix()
    folder, out, seen = tmp_path / "in", tmp_path / "out", tmp_path / "seen"
    for d in (folder, out, seen):
        d.mkdir()
    # outputs of ~20-50 KB each, then small ones that still fit once the big ones failed
    sizes = {"a_big": (120, 160), "b_big": (128, 176), "c_big": (112, 160), "d_big": (120, 144),
             "e_small": (16, 16), "f_small": (16, 24)}
    for i, (stem, (h, w)) in enumerate(sizes.items()):
        Image.fromarray(make_photo(h, w, seed=i)).save(folder / f"{stem}.jpg", quality=30)
    model = tmp_path / "tiny.safetensors"
    save_network(tiny_network(3), model)

    restore = [sys.executable, "-m", "fbcnn", "restore", str(folder), "-o", str(out),
               "--model", str(model)]
    script = (f"mount -t tmpfs -o size={TMPFS_SIZE} tmpfs {shlex.quote(str(out))} || exit 90\n"
              f"{shlex.join(restore)}\nrc=$?\n"
              f"cp -a {shlex.quote(str(out))}/. {shlex.quote(str(seen))}/ || exit 91\n"
              "exit $rc\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    done = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode not in (90, 91), done.stderr
    stderr = [line.split("\r")[-1].strip() for line in done.stderr.split("\n")]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]

    errors: dict[str, list[str]] = {}
    for line in stderr:
        stems = [s for s in sizes if s in line]
        if stems and not line.startswith(str(folder)):
            assert line.startswith("error: "), f"a line about a file that is not an error: {line}"
            assert re.fullmatch(r"error: \S+: .*no space left on device.*", line), line
            errors.setdefault(stems[0], []).append(line)
    written = {p.name for p in seen.iterdir()}
    assert not [n for n in written if n.endswith(".tmp") or n.startswith(".")], written

    failed = set(errors)
    succeeded = {Path(n).stem for n in written}
    assert all(len(v) == 1 for v in errors.values()), errors
    assert failed, f"nothing failed: the tmpfs should be too small ({written})"
    assert succeeded, "nothing fitted, not even the first image"
    assert not failed & succeeded, failed & succeeded  # no partial file of a failed input
    assert failed | succeeded == set(sizes)  # the batch went on to the end
    assert done.returncode == 1
    assert f"{len(failed)} failed" in done.stderr  # the batch's summary counts them
    for name in written:  # whatever is there is whole
        with Image.open(seen / name) as im:
            im.verify()
        with Image.open(seen / name) as im:
            im.load()
    print(f"disk full: {len(succeeded)} written ({sorted(succeeded)}), {len(failed)} failed: "
          f"{[errors[s][0] for s in sorted(failed)][:2]}")


@pytest.mark.parametrize(("kind", "reason"), [("read-only", "read-only file system"),
                                              ("full", "no space left on device")])
def test_unwritable_output_file_system_is_refused_before_any_restore(tmp_path: Path, kind: str,
                                                                    reason: str) -> None:
    """Was: every image was restored, then each failed writing. A read-only tmpfs, or one
    already full, is refused with one line before the first image (as root too)."""
    prefix = _namespace_prefix()
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir(), out.mkdir()
    for i in range(3):
        Image.fromarray(make_photo(64, 80, seed=i)).save(folder / f"p{i}.jpg", quality=30)
    model = tmp_path / "tiny.safetensors"
    save_network(tiny_network(3), model)
    options = f"size={TMPFS_SIZE}" + (",ro" if kind == "read-only" else "")
    fill = (f"head -c 1M /dev/zero > {shlex.quote(str(out / 'filler'))} 2>/dev/null\n"
            if kind == "full" else "")
    restore = [sys.executable, "-m", "fbcnn", "restore", str(folder), "-o", str(out),
               "--model", str(model)]
    script = (f"mount -t tmpfs -o {options} tmpfs {shlex.quote(str(out))} || exit 90\n"
              f"{fill}{shlex.join(restore)}\nrc=$?\nls -A {shlex.quote(str(out))}\nexit $rc\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    done = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode not in (0, 90), done.stderr
    assert "Traceback" not in done.stderr and "predicted QF" not in done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {out}: cannot write there: {reason}"], done.stderr
    assert done.stdout.split() == ([] if kind == "read-only" else ["filler"])
