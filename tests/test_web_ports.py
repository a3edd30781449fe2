"""The web page's JavaScript ports (src/fbcnn/web/static: tiles.js, consistency.js, jpeg.js)
against the Python they were ported from, under Node (no browser; tests/web_ports_node.mjs
runs the calls). Skipped only where `node` is missing.

- tiles.js: tile spans and plans for many (length, tile, overlap, grid), QF tile boxes and
  QF windows for many sizes, the blend ramps (float32, exactly), the blend weights they make
  over a side (float32 closeness), the mean-QF rule (against `Restorer.predict_qf` with a
  stub network), the shared constants;
- consistency.js: `project` on random and on real JPEG-decoded images, grey and colour,
  4:2:0 / 4:2:2 / 4:4:4 tables, odd sizes with partial blocks, in strips: at most 1 grey
  level apart (float32 sums in another order round a few ties the other way) on nearly no
  pixels; the near-lossless shares;
- jpeg.js: headers of JPEG files written by Pillow (qualities, subsamplings, grey,
  progressive, EXIF orientation, custom and 16-bit tables, CMYK, truncated): tables,
  subsampling, QF from the tables, grid multiple and consistency tables as the Python
  reader (`read_image`, `jpeg_tables`) has them; the IJG tables and the QF fit.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
from conftest import cmyk_jpeg, make_photo
from PIL import Image


def _import(*names: str) -> ModuleType:
    """The first of these modules that exists (the package is being reorganised)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
    raise ModuleNotFoundError(f"none of {names}")


restorer = _import("fbcnn.engine.restorer", "fbcnn.restore")
consistency = _import("fbcnn.jpeg.consistency", "fbcnn.consistency")
tables_py = _import("fbcnn.jpeg.tables", "fbcnn.jpeg")
nearlossless = _import("fbcnn.jpeg.nearlossless", "fbcnn.nearlossless")
files = _import("fbcnn.images.files", "fbcnn.imageio")
pipeline = _import("fbcnn.engine.pipeline", "fbcnn.pipeline")

NODE = shutil.which("node")
DRIVER = Path(__file__).resolve().parent / "web_ports_node.mjs"

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def node(calls: list[list]) -> list:
    """The results of [op, *args] calls (web_ports_node.mjs), in one Node run."""
    run = subprocess.run([NODE, str(DRIVER)], input=json.dumps(calls), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, np.uint8).tobytes()).decode()


def unb64(text: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.uint8).reshape(shape)


# --------------------------------------------------------------------------- tiles.js

def test_constants_match() -> None:
    (got,) = node([["constants"]])
    names = {"DEFAULT_TILE": "DEFAULT_TILE", "DEFAULT_OVERLAP": "DEFAULT_OVERLAP",
             "RAMP_EDGE": "RAMP_EDGE", "QF_TILE": "QF_TILE", "QF_TILE_SHARE": "QF_TILE_SHARE",
             "QF_TILES_MIN": "QF_TILES_MIN", "QF_TILES_MAX": "QF_TILES_MAX",
             "QF_WINDOWS_MIN": "QF_WINDOWS_MIN", "QF_WINDOWS_MAX": "QF_WINDOWS_MAX"}
    assert got == {js: getattr(restorer, py) for js, py in names.items()}


LENGTHS = [1, 7, 8, 9, 63, 64, 65, 100, 200, 255, 256, 257, 300, 511, 512, 513, 520, 528, 543,
           544, 545, 700, 1000, 1023, 1024, 1025, 1080, 1500, 1920, 2047, 3000, 4000, 6000, 12345]
TILES = [0, 64, 80, 96, 128, 160, 256, 300, 512, 1024]


def span_cases() -> list[tuple[int, int, int, int]]:
    """(length, tile, overlap, grid): LENGTHS and lengths just above each tile, for tiles
    Python accepts (a tile under overlap + 2 grid raises ValueError there)."""
    cases = []
    for tile in TILES:
        for overlap in (0, 8, 16, 32, 48):
            for grid in (8, 16):
                if 0 < tile < overlap + 2 * grid:
                    continue
                near = [tile + 1, tile + 7, tile + grid, tile + overlap, tile + overlap + 1,
                        2 * tile - overlap, 2 * tile - overlap + 1] if tile else []
                cases += [(n, tile, overlap, grid) for n in sorted({*LENGTHS, *near})]
    return cases


def test_tile_spans_match() -> None:
    cases = span_cases()
    got = node([["tileSpans", *case] for case in cases])
    for case, spans in zip(cases, got, strict=True):
        assert [tuple(s) for s in spans] == restorer.tile_spans(*case), case
    assert len(cases) > 2000


PLAN_SIZES = [(210, 390, 160, 16), (300, 700, 128, 16), (300, 700, 512, 8), (4000, 3000, 512, 16),
              (1080, 1920, 512, 8), (64, 64, 0, 8), (513, 512, 512, 8), (512, 513, 512, 16),
              (512, 512, 512, 8), (1000, 90, 96, 8), (90, 1000, 96, 16), (5000, 5000, 0, 16),
              (33, 4000, 256, 8), (1025, 1025, 1024, 16), (2000, 3000, 300, 16)]


def test_tile_plans_match() -> None:
    """tilePlan, row by row, as Restorer restores (one pass when the tile covers the image)."""
    overlap = restorer.DEFAULT_OVERLAP
    got = node([["tilePlan", h, w, t, overlap, g] for h, w, t, g in PLAN_SIZES])
    for (h, w, tile, grid), plan in zip(PLAN_SIZES, got, strict=True):
        one = not tile or (h <= tile and w <= tile)
        rows = [(0, h)] if one else restorer.tile_spans(h, tile, overlap, grid)
        cols = [(0, w)] if one else restorer.tile_spans(w, tile, overlap, grid)
        assert plan == [[y0, x0, y1 - y0, x1 - x0] for y0, y1 in rows for x0, x1 in cols], \
            (h, w, tile, grid)


BOX_SIZES = [(8, 8), (20, 40), (64, 64), (200, 300), (255, 257), (256, 256), (257, 256),
             (300, 200), (512, 512), (513, 700), (1000, 90), (90, 1000), (1080, 1920),
             (1920, 1080), (3000, 4000), (4000, 6000), (100, 12000), (6000, 300), (771, 1029),
             (2048, 2048), (8000, 8000)]


def box_cases() -> list[tuple[int, ...]]:
    """(h, w, grid[, side, least, most]): the QF tiles and the training-size QF windows."""
    cases: list[tuple[int, ...]] = []
    for h, w in BOX_SIZES:
        for grid in (8, 16):
            cases.append((h, w, grid))
            for side in (48, 64, 96, 128, 256):
                cases.append((h, w, grid, side, restorer.QF_WINDOWS_MIN, restorer.QF_WINDOWS_MAX))
    return cases


def test_qf_tile_boxes_match() -> None:
    cases = box_cases()
    got = node([["qfTileBoxes", *case] for case in cases])
    for case, boxes in zip(cases, got, strict=True):
        assert [tuple(b) for b in boxes] == restorer.qf_tile_boxes(*case), case


RAMP_CASES = [(n, overlap, a, b) for n in (1, 2, 3, 7, 16, 17, 31, 32, 33, 40, 64, 65, 100, 160,
                                           512)
              for overlap in (0, 1, 3, 4, 8, 16, 31, 32, 48, 64)
              for a in (False, True) for b in (False, True)]


def test_ramps_match_exactly() -> None:
    got = node([["ramp", *case] for case in RAMP_CASES])
    for case, ramp in zip(RAMP_CASES, got, strict=True):
        want = restorer._ramp(*case)
        # exactly Python's float32 values (compared as float64: not merely close to them)
        assert np.array_equal(np.asarray(ramp, np.float64), want.astype(np.float64)), case


def test_blend_weights_match() -> None:
    """The weights each tile gets along a side (its ramp over the sum of all the ramps there;
    float32): as `_blend_weights`, to float32 rounding, and adding up to 1."""
    cases = [(n, t, o, g) for n, t, o, g in span_cases()
             if t and n > t and o in (16, 32, 48) and n <= 4000]
    got = node([["blendWeights", *case] for case in cases])
    worst = 0.0
    for (length, tile, overlap, grid), weights in zip(cases, got, strict=True):
        spans = restorer.tile_spans(length, tile, overlap, grid)
        want = restorer._blend_weights(spans, length, overlap)
        total = np.zeros(length)
        for (a, b), w_js, w_py in zip(spans, weights, want, strict=True):
            w_js = np.asarray(w_js)
            assert w_js.shape == w_py.shape, (length, tile, overlap, grid)
            worst = max(worst, float(np.abs(w_js - w_py).max()))
            total[a:b] += w_js
        assert np.allclose(total, 1, rtol=0, atol=3e-7), (length, tile, overlap, grid)
    assert worst <= 6e-8, worst  # one float32 step below 1 at most
    assert len(cases) > 500


class StubGraph:
    """A numpy 'network' whose QF reading of a window is its mean level (so every box
    chosen and every value in the mean shows in the result)."""

    runs_on_numpy = True
    device = "cpu"
    precision = "fp32"

    def __init__(self, channels: int) -> None:
        self.config = SimpleNamespace(in_channels=channels)
        self.has_qf_input = True

    def predict_qf_array(self, batch: np.ndarray) -> np.ndarray:
        return batch.mean(axis=(1, 2, 3), dtype=np.float64)[:, None] * 0.9


QF_SIZES = [(40, 60, 512, None, 8), (600, 800, 512, None, 16), (1500, 700, 512, None, 8),
            (300, 300, 256, None, 8), (600, 800, 512, 64, 16), (200, 2000, 0, 96, 8),
            (128, 128, 512, 128, 8), (1000, 1000, 0, None, 8)]


def test_mean_qf_matches_predict_qf() -> None:
    """worker.js reads the QF over qfTileBoxes (training-size windows with the model's qf_tile;
    else the whole image in one pass, QF tiles when tiled) and takes meanQf of the readings:
    `Restorer.predict_qf` on a stub network whose reading is the window's mean level."""
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (h, w, 1), np.uint8) for h, w, *_ in QF_SIZES]
    plans = node([["tilePlan", h, w, t, restorer.DEFAULT_OVERLAP, g] for h, w, t, _, g in QF_SIZES]
                 + [["qfTileBoxes", h, w, g] for h, w, _, _, g in QF_SIZES]
                 + [["qfTileBoxes", h, w, g, q or 64, restorer.QF_WINDOWS_MIN,
                     restorer.QF_WINDOWS_MAX] for h, w, _, q, g in QF_SIZES])
    n = len(QF_SIZES)
    calls, wants = [], []
    for k, (pixels, (h, w, tile, qf_tile, grid)) in enumerate(zip(images, QF_SIZES, strict=True)):
        if qf_tile:  # as worker.js restore(): readQf
            boxes = plans[2 * n + k]
        elif len(plans[k]) == 1:
            boxes = [[0, 0, h, w]]
        else:
            boxes = plans[n + k]
        stub = StubGraph(1)
        values = [float(v) for y, x, bh, bw in boxes for v in stub.predict_qf_array(
            restorer.Restorer._array_batch(pixels[None, y:y + bh, x:x + bw])).ravel()]
        calls.append(["meanQf", values])
        r = restorer.Restorer(stub, tile=tile, qf_tile=qf_tile)
        wants.append(r.predict_qf(pixels, grid))
        assert len(boxes) == len(r.qf_boxes(h, w, grid)), (h, w, tile, qf_tile)
    got = node(calls)
    for case, qf, want in zip(QF_SIZES, got, wants, strict=True):
        # Python rounds the mean reading to float32 first
        assert abs(qf - want) <= 2e-5 * max(1.0, abs(want)), (case, qf, want)


# --------------------------------------------------------------------------- consistency.js

def js_tables(t) -> dict:
    return {"luma": list(t.luma), "chroma": list(t.chroma) if t.chroma else None,
            "subsampling": t.subsampling}


def jpeg_pair(h: int, w: int, channels: int, qf: int, sampling: str | None, seed: int):
    """(restored, decoded, tables): a photo's JPEG as Pillow decodes it, its tables as the
    Python reader has them, and a 'restored' image (the photo itself, a little noise on it)."""
    photo = make_photo(h, w, channels, seed=seed)
    data = io.BytesIO()
    Image.fromarray(photo[:, :, 0] if channels == 1 else photo).save(
        data, "JPEG", quality=qf, **({"subsampling": sampling} if channels == 3 else {}))
    with Image.open(data) as im:
        decoded = np.asarray(im).reshape(h, w, channels)
        tables = consistency.JpegTables.from_pillow(
            im.quantization, tables_py.subsampling_of(im))
    rng = np.random.default_rng(seed)
    restored = np.clip(photo.astype(int) + rng.integers(-12, 13, photo.shape), 0, 255)
    return restored.astype(np.uint8), decoded, tables


def random_pair(h: int, w: int, channels: int, qf: int, sampling: str | None, seed: int):
    rng = np.random.default_rng(seed)
    decoded = rng.integers(0, 256, (h, w, channels)).astype(np.uint8)
    restored = np.clip(decoded.astype(int) + rng.integers(-40, 41, decoded.shape), 0, 255)
    tables = consistency.JpegTables.standard(qf, sampling is not None, sampling or "4:2:0")
    return restored.astype(np.uint8), decoded, tables


# name: (make, h, w, channels, qf, sampling, strip: JS / Python (None: their own))
PROJECT_CASES = {
    "random 4:2:0 q20 75x90": (random_pair, 75, 90, 3, 20, "4:2:0", None),
    "random 4:2:2 q20 40x57": (random_pair, 40, 57, 3, 20, "4:2:2", None),
    "random 4:4:4 q50 45x61": (random_pair, 45, 61, 3, 50, "4:4:4", None),
    "random grey q20 33x70": (random_pair, 33, 70, 1, 20, None, None),
    "random grey tables on colour q30 35x43": (random_pair, 35, 43, 3, 30, None, None),
    "random 4:2:0 q5 9x13 (no whole chroma block)": (random_pair, 9, 13, 3, 5, "4:2:0", None),
    "random 4:2:0 q90 600x24 (JS in strips)": (random_pair, 600, 24, 3, 90, "4:2:0", None),
    "random grey q10 5x7 (no whole block)": (random_pair, 5, 7, 1, 10, None, None),
    "random 4:2:0 q100 50x50": (random_pair, 50, 50, 3, 100, "4:2:0", None),
    "jpeg 4:2:0 q10 101x131": (jpeg_pair, 101, 131, 3, 10, "4:2:0", None),
    "jpeg 4:2:0 q50 96x128": (jpeg_pair, 96, 128, 3, 50, "4:2:0", None),
    "jpeg 4:2:0 q90 77x59": (jpeg_pair, 77, 59, 3, 90, "4:2:0", None),
    "jpeg 4:2:2 q30 63x97": (jpeg_pair, 63, 97, 3, 30, "4:2:2", None),
    "jpeg 4:4:4 q40 50x70": (jpeg_pair, 50, 70, 3, 40, "4:4:4", None),
    "jpeg grey q25 67x83": (jpeg_pair, 67, 83, 1, 25, None, None),
    "jpeg grey q95 40x41": (jpeg_pair, 40, 41, 1, 95, None, None),
    "jpeg 4:2:0 q20 200x48 in 64-row strips": (jpeg_pair, 200, 48, 3, 20, "4:2:0", 64),
    "jpeg 4:2:2 q60 190x40 in 64-row strips": (jpeg_pair, 190, 40, 3, 60, "4:2:2", 64),
    "jpeg grey q15 170x30 in 64-row strips": (jpeg_pair, 170, 30, 1, 15, None, 64),
}


@pytest.fixture(scope="module")
def projections() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name: (JavaScript's projection, Python's, the restored image)."""
    pairs = {name: make(h, w, c, qf, sampling, seed)
             for seed, (name, (make, h, w, c, qf, sampling, _)) in enumerate(PROJECT_CASES.items())}
    calls = [["project", b64(r), b64(d), *r.shape, js_tables(t), PROJECT_CASES[name][6]]
             for name, (r, d, t) in pairs.items()]
    got = node(calls)
    return {name: (unb64(g, r.shape),
                   consistency.project(r, d, t, strip=PROJECT_CASES[name][6]), r)
            for (name, (r, d, t)), g in zip(pairs.items(), got, strict=True)}


@pytest.mark.parametrize("name", list(PROJECT_CASES))
def test_projection_matches(name, projections) -> None:
    got, want, restored = projections[name]
    diff = np.abs(got.astype(int) - want)
    print(name, int(diff.max()), int((diff > 0).sum()), diff.size,
          float((want != restored).mean()))
    assert int(diff.max()) <= 1, name
