"""The page's jpegtrace.js (src/fbcnn/frontends/web/static) against `fbcnn.jpeg.trace.detect`,
under Node (no browser): decoded JPEGs cropped at an offset (colour and grey, a grid of tiles
or every position), a never-JPEG graphic with text, a smooth gradient and an image too small
to judge.
Verdict, grid offset, judged and block count must match exactly, the tile positions too, and
the 64 offset scores to float32 rounding (numpy sums the lattice as a float32 matrix
product, the port loops over the distinct bins). Skipped only where `node` is missing.

Both pick their tiles without a random generator (`jpegtrace._tile_corners`) and round the
coefficients to float32 before binning them, so a coefficient exactly on a bin's edge
(integer pixels make many) falls in the same bin whatever the order of the DCT's sums."""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import make_photo
from PIL import Image, ImageDraw, ImageFont

from fbcnn.jpeg import trace as jpegtrace
from fbcnn.jpeg.tables import encode

NODE = shutil.which("node")
DRIVER = Path(__file__).resolve().parent / "jpegtrace_node.mjs"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut_qf10.jpg"

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def decoded_jpeg(pixels: np.ndarray, qf: int, crop: tuple[int, int], **options) -> np.ndarray:
    with Image.open(io.BytesIO(encode(pixels, qf, **options))) as im:
        decoded = np.asarray(im)
    return decoded[crop[0]:, crop[1]:]


def text_graphic(h: int, w: int) -> np.ndarray:
    """A never-JPEG screenshot-like image: panels, a button, anti-aliased text."""
    im = Image.new("RGB", (w, h), (246, 247, 249))
    draw = ImageDraw.Draw(im)
    draw.rectangle((8, 8, w - 9, 40), fill=(47, 111, 222))
    draw.rounded_rectangle((20, h - 50, 140, h - 18), radius=8, fill=(255, 255, 255),
                           outline=(208, 213, 221))
    try:
        font = ImageFont.load_default(size=15)
    except TypeError:  # Pillow without FreeType sizes
        font = ImageFont.load_default()
    draw.text((16, 14), "FBCNN restore: settings", fill=(255, 255, 255), font=font)
    for k, line in enumerate(("The quick brown fox jumps over the lazy dog 0123456789",
                              "JPEG artifacts removal, quality factor, open, save, help",
                              "Cancel  OK  Apply  File  Edit  View  Window")):
        draw.text((16, 56 + 22 * k), line, fill=(29, 35, 48), font=font)
    draw.text((36, h - 44), "Restore", fill=(29, 35, 48), font=font)
    return np.asarray(im)


def gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([40 + 170 * x / w, 30 + 190 * y / h, 200 - 120 * (x + y) / (h + w)],
                    axis=2).round().astype(np.uint8)


def astronaut() -> np.ndarray:
    """examples/astronaut_qf10.jpg decoded (512x512 RGB): a real photo's JPEG."""
    with Image.open(EXAMPLE) as im:
        return np.asarray(im.convert("RGB"))


CASES = {
    # name: (pixels, the verdict expected: found, offset (None: any), judged)
    "colour JPEG q10 cropped (3, 5), 509x507 (a grid of tiles)": (
        astronaut()[3:, 5:], (True, (5, 3), True)),
    "colour JPEG q10 cropped (3, 5), 200x300 (every position)": (
        astronaut()[3:203, 5:305], (True, (5, 3), True)),
    "grey JPEG q60 cropped (0, 6)": (
        decoded_jpeg(make_photo(150, 170, 1, seed=12)[:, :, 0], 60, (0, 6)),
        (True, (0, 2), True)),
    "grey JPEG q40 cropped (7, 1)": (
        decoded_jpeg(np.asarray(Image.fromarray(astronaut()).convert("L")), 40, (7, 1)),
        (True, (1, 7), True)),
    "never JPEG: text graphic": (text_graphic(180, 320), (False, None, True)),
    "never JPEG: smooth gradient": (gradient(128, 200), (False, None, True)),
    "too small to judge": (make_photo(20, 40, 3, seed=14), (False, (0, 0), False)),
}


@pytest.fixture(scope="module")
def node_verdicts(tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("jpegtrace")
    cases = []
    for k, (pixels, _) in enumerate(CASES.values()):
        file = folder / f"case{k}.raw"
        file.write_bytes(np.ascontiguousarray(pixels).tobytes())
        h, w = pixels.shape[:2]
        cases.append({"file": str(file), "height": h, "width": w,
                      "channels": 1 if pixels.ndim == 2 else pixels.shape[2]})
    run = subprocess.run([NODE, str(DRIVER)], input=json.dumps(cases), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return dict(zip(CASES, json.loads(run.stdout), strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_javascript_verdict_matches_python(name, node_verdicts) -> None:
    pixels, (found, offset, judged) = CASES[name]
    got = node_verdicts[name]
    want = jpegtrace.detect(pixels)
    assert (want.found, want.judged) == (found, judged), want  # the cases are what they claim
    if offset is not None:
        assert want.offset == offset, want
    assert got["found"] is want.found and got["judged"] is want.judged, (got, want)
    assert tuple(got["offset"]) == want.offset
    rtol = 1e-5
    assert math.isclose(got["score"], want.score, rel_tol=rtol, abs_tol=1e-3)
    assert math.isclose(got["median"], want.median, rel_tol=rtol, abs_tol=1e-3)
    if judged:
        scores, blocks = jpegtrace.offset_scores(pixels)
        assert got["blocks"] == blocks
        got_scores = np.asarray(got["scores"]).reshape(8, 8)
        assert np.allclose(got_scores, scores, rtol=rtol, atol=1e-3), np.abs(got_scores - scores)
    assert got["seconds"] < 5  # a few tenths of a second at most on one core


SIZES = [(20, 40), (96, 104), (150, 165), (203, 261), (330, 500), (4000, 3000), (1080, 1920),
         (100, 2000), (2000, 90), (72, 5000), (80, 200), (112, 112)]


def test_tile_positions_match() -> None:
    """tilePositions on many sizes (panoramas, tall strips, every position or a grid)."""
    static = Path(jpegtrace.__file__).parents[1] / "frontends" / "web" / "static" / "jpegtrace.js"
    script = ("const src = require('fs').readFileSync(process.argv[1], 'utf8');"
              "import('data:text/javascript;base64,' + Buffer.from(src).toString('base64'))"
              ".then((m) => console.log(JSON.stringify("
              "JSON.parse(process.argv[2]).map(([h, w]) => m.tilePositions(h, w)))));")
    run = subprocess.run([NODE, "-e", script, str(static), json.dumps(SIZES)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    for (h, w), got in zip(SIZES, json.loads(run.stdout), strict=True):
        side, corners = jpegtrace._tile_corners(h, w)
        assert got["side"] == side, (h, w)
        assert [tuple(c) for c in got["corners"]] == corners, (h, w)
        assert 1 <= len(corners) <= jpegtrace.TILES
