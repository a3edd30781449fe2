"""The shipped models on photos they never saw (scikit-image's samples): they must help.

These use the real weights in src/fbcnn/weights (skipped where a build ships none)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fbcnn.engine.model import load_model
from fbcnn.evaluation.metrics import psnr
from fbcnn.jpeg.color import rgb_to_y
from fbcnn.jpeg.tables import compress
from fbcnn.networks.checkpoints import available_models

skimage_data = pytest.importorskip("skimage.data")


def needs(name: str):
    return pytest.mark.skipif(name not in available_models(), reason=f"'{name}' not shipped")


def coffee() -> np.ndarray:
    return np.ascontiguousarray(skimage_data.coffee()[:256, :384])


@needs("color")
def test_color_model_beats_the_jpeg_at_qf10() -> None:
    clean = coffee()
    jpeg = compress(clean, 10)
    result = load_model("color", device="cpu").restore(jpeg)
    assert psnr(result.image, clean) > psnr(jpeg, clean) + 0.2
    assert 1 <= result.predicted_qf <= 100


@needs("gray")
def test_gray_model_beats_the_jpeg_at_qf10() -> None:
    clean = rgb_to_y(coffee())
    jpeg = compress(clean, 10)
    result = load_model("gray", device="cpu").restore(jpeg)
    assert psnr(result.image, clean) > psnr(jpeg, clean) + 0.2


@needs("color")
def test_higher_qf_keeps_more_of_the_input() -> None:
    jpeg = compress(coffee(), 10)
    model = load_model("color", device="cpu")
    change = {q: np.abs(model.restore(jpeg, qf=q).image.astype(int) - jpeg).mean()
              for q in (10, 90)}
    assert change[90] < change[10]


@pytest.mark.parametrize("name", ["color", "gray", "color-double", "gray-double"])
def test_qf_input_changes_every_shipped_model(name: str) -> None:
    if name not in available_models():
        pytest.skip(f"'{name}' not shipped")
    model = load_model(name, device="cpu")
    clean = coffee()[:128, :128]
    jpeg = compress(rgb_to_y(clean) if name.startswith("gray") else clean, 20)
    low, high = model.restore(jpeg, qf=10).image, model.restore(jpeg, qf=90).image
    # a QF path that collapsed (the decoder ignoring its QF input) gives identical outputs
    assert np.abs(low.astype(int) - high).mean() > 0.1


@needs("color")
def test_predicted_qf_follows_the_jpeg() -> None:
    model = load_model("color", device="cpu")
    predicted = [model.predict_qf(compress(coffee(), q)) for q in (10, 40, 80)]
    assert predicted[0] < predicted[1] < predicted[2]
    assert abs(predicted[0] - 10) < 8


# The restore of a 24-MP photo by `fbcnn restore`, peak resident memory of that process.
PEAK_RSS_LIMIT_MIB = 1024
# A floor that only a process which decoded the image reaches (6000 x 4000 x 3 bytes):
# the figure measured is the restore's, not an empty process'.
PEAK_RSS_FLOOR_MIB = 6000 * 4000 * 3 / 2**20

# A wrapper whose only child is the command: RUSAGE_CHILDREN after it is that child's peak
# RSS (KiB on Linux), nothing of the test process or of other tests' subprocesses.
MEASURE_CHILD = ("import resource, subprocess, sys\n"
                 "done = subprocess.run(sys.argv[1:])\n"
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
                 "sys.exit(done.returncode)")


@pytest.mark.slow
@needs("color")
def test_24_megapixel_jpeg_restores_within_1_gb(tmp_path) -> None:
    """`fbcnn restore` of a 24-MP JPEG peaks below 1 GiB, measured on the restore process
    from outside. Fails when the restore holds the image at full size in float, or runs
    the network or the JPEG-consistency step in one piece (2.8 GB before the strips)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (750, 1000, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((6000, 4000), Image.BILINEAR)
    path = tmp_path / "big.jpg"
    big.save(path, quality=30)
    del big
    command = [sys.executable, "-m", "fbcnn", "restore", str(path), "-o", str(tmp_path / "out")]
    done = subprocess.run([sys.executable, "-c", MEASURE_CHILD, *command], capture_output=True,
                          text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mib = int(done.stdout.strip().splitlines()[-1]) / 1024
    print(f"fbcnn restore, 24 MP: peak RSS {peak_mib:.0f} MiB")
    assert PEAK_RSS_FLOOR_MIB < peak_mib < PEAK_RSS_LIMIT_MIB
    with Image.open(tmp_path / "out" / "big.png") as out:
        assert out.size == (6000, 4000)
