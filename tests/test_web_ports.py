"""The web page's JavaScript ports (src/fbcnn/frontends/web/static: tiles.js, consistency.js,
jpeg.js) against the Python they were ported from, under Node (no browser; tests/web_ports_node.mjs
runs the calls). Skipped only where `node` is missing.

- tiles.js: tile spans and plans for many (length, tile, overlap, grid), the tiles Python
  refuses (a RangeError, not an endless loop; the page's ?tile check), QF tile boxes and
  QF windows for many sizes, the blend ramps (float32, exactly), the blend weights they make
  over a side (float32 closeness), the mean-QF rule (against `Restorer.predict_qf` with a
  stub network), the shared constants;
- consistency.js: `project` on random and on real JPEG-decoded images, grey and colour,
  4:2:0 / 4:2:2 / 4:4:4 tables, odd sizes with partial blocks, in strips, QF 100 files
  (the decoded pixels), decoded coefficients exactly on a cell's edge (half to even, as
  Python): of ~365k values none differ here (numpy on OpenBLAS, x86-64; a BLAS that sums
  in another order may round a few near-ties the other way); the near-lossless shares
  (exactly);
- jpeg.js: headers of JPEG files written by Pillow (qualities, subsamplings, grey,
  progressive, restart markers, EXIF orientation in both byte orders, custom, shared and
  16-bit tables, CMYK, truncated, 4:1:1 / 4:4:0, a step of 0): tables, subsampling, QF
  from the tables, grid multiple and consistency tables as the Python reader
  (`read_image`, `jpeg_tables`) has them; the IJG tables and the QF fit; a single JPEG's
  QF rule (`singleJpegQf`, `jpegliQuality` with the jpegli tables the site ships,
  `floorTables`) as `fbcnn.jpeg.qf.single_jpeg_qf` and engine/analysis.py `_tables_floor`,
  on ~1,070 (reading, tables) cases and on files (the header files, jpegli's, MozJPEG's
  tables, IJG around TABLES_FLOOR_MAX).

Where a port does not do what Python does, an xfail(strict=True) test says what (so that
it turns into a failure, to remove the mark, once the port is fixed).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import cmyk_jpeg, make_photo
from PIL import Image

from fbcnn.engine import analysis, restorer
from fbcnn.images import files
from fbcnn.jpeg import consistency, nearlossless
from fbcnn.jpeg import qf as qfrules
from fbcnn.jpeg import tables as tables_py
from fbcnn.networks.runtimes import ModelInfo

NODE = shutil.which("node")
DRIVER = Path(__file__).resolve().parent / "web_ports_node.mjs"

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def node(calls: list[list], timeout: float = 120) -> list:
    """The results of [op, *args] calls (web_ports_node.mjs), in one Node run; a call that
    throws gives {"error": "TypeName: message"}."""
    run = subprocess.run([NODE, str(DRIVER)], input=json.dumps(calls), capture_output=True,
                         text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, np.uint8).tobytes()).decode()


def unb64(text: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.uint8).reshape(shape)


# --------------------------------------------------------------------------- tiles.js

def test_constants_match() -> None:
    """tiles.js's (and jpeg.js's) numbers, as the Python rules have them."""
    (got,) = node([["constants"]])
    want = {name: getattr(restorer, name) for name in ("DEFAULT_TILE", "DEFAULT_OVERLAP",
                                                        "RAMP_EDGE", "MIN_TILE")}
    want |= {name: getattr(qfrules, name) for name in (
        "QF_TILE", "QF_TILE_SHARE", "QF_TILES_MIN", "QF_TILES_MAX", "QF_WINDOWS_MIN",
        "QF_WINDOWS_MAX", "TABLES_FLOOR_MAX", "TABLES_FLOOR_MIN_SHARE")}
    assert {name: got.get(name) for name in want} == want


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


# (length, tile, overlap, grid) that Python's tile_spans refuses (tile < overlap + 2 grid, the
# length over the tile): tileSpans looped for ever on them once
REFUSED_SPANS = [(100, 40, 32, 16), (1000, 40, 32, 16), (100, 47, 32, 8), (65, 63, 48, 8),
                 (300, 63, 32, 16), (1000, 8, 0, 8), (9, 8, 0, 8), (5000, 16, 16, 8)]


def test_tile_spans_refused_as_python() -> None:
    """Where Python raises ValueError, tileSpans (and tilePlan) throw a RangeError with the
    same message, at once (no endless loop: the Node run has 20 s)."""
    got = node([["tileSpans", *case] for case in REFUSED_SPANS]
               + [["tilePlan", n, n, t, o, g] for n, t, o, g in REFUSED_SPANS], timeout=20)
    n = len(REFUSED_SPANS)
    for case, spans, plan in zip(REFUSED_SPANS, got[:n], got[n:], strict=True):
        with pytest.raises(ValueError) as refused:
            restorer.tile_spans(*case)
        assert spans == plan == {"error": f"RangeError: {refused.value}"}, case


def test_tile_problem_as_restorer() -> None:
    """tileProblem (the page's ?tile check: a tile side is 0 or at least MIN_TILE) says what
    Restorer raises for the sides it refuses, and nothing for those it takes."""
    tiles = [0, 1, 8, 40, 63, 64, 65, 128, 512, 1536]
    got = node([["tileProblem", t] for t in tiles])
    for tile, problem in zip(tiles, got, strict=True):
        try:
            stub_restorer(tile, None)
        except ValueError as error:
            assert problem == str(error), tile
        else:
            assert problem is None, tile
    assert got.count(None) == 6


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
                cases.append((h, w, grid, side, qfrules.QF_WINDOWS_MIN, qfrules.QF_WINDOWS_MAX))
    return cases


def test_qf_tile_boxes_match() -> None:
    cases = box_cases()
    got = node([["qfTileBoxes", *case] for case in cases])
    for case, boxes in zip(cases, got, strict=True):
        assert [tuple(b) for b in boxes] == qfrules.qf_tile_boxes(*case), case


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
    """The weights each tile gets along a side: its ramp over the float32 sum of all the
    ramps there, as worker.js blendTiles divides by its summed weights (blendTiles itself is
    not exported: the driver makes them of tileSpans and ramp). Exactly `_blend_weights`'
    float32 values (~770k of them), adding up to 1 within 2 float32 steps."""
    cases = [(n, t, o, g) for n, t, o, g in span_cases()
             if t and n > t and o in (16, 32) and n <= 2100]
    got = node([["blendWeights", *case] for case in cases])
    for (length, tile, overlap, grid), weights in zip(cases, got, strict=True):
        spans = restorer.tile_spans(length, tile, overlap, grid)
        want = restorer._blend_weights(spans, length, overlap)
        total = np.zeros(length)
        for (a, b), w_js, w_py in zip(spans, weights, want, strict=True):
            w_js = np.asarray(w_js, np.float64)
            assert np.array_equal(w_js, w_py.astype(np.float64)), (length, tile, overlap, grid)
            total[a:b] += w_js
        assert np.allclose(total, 1, rtol=0, atol=1.2e-7), (length, tile, overlap, grid)
    assert len(cases) > 800


class StubRuntime:
    """A 'network' whose QF reading of a window is 0.9 x its mean level in [0, 1] (so every
    box chosen and every value in the mean shows in the result)."""

    name = "stub"
    precision = "fp32"
    device = "cpu"
    channels = 1
    has_qf_input = True
    runs_on_numpy = True  # the earlier Restorer's numpy backends
    config = SimpleNamespace(in_channels=1)

    @staticmethod
    def reading(window: np.ndarray) -> float:
        return float(window.mean(dtype=np.float64) / 255 * 0.9)

    def predict_qf(self, pixels: np.ndarray) -> np.ndarray:  # uint8 N x H x W x C
        return np.array([[self.reading(p)] for p in pixels], np.float32)

    def predict_qf_array(self, batch: np.ndarray) -> np.ndarray:  # float N x C x H x W
        return batch.mean(axis=(1, 2, 3), dtype=np.float64)[:, None] * 0.9


def stub_restorer(tile: int, qf_tile: int | None):
    """A Restorer on StubRuntime."""
    info = ModelInfo.of(StubRuntime(), qf_tile=qf_tile)
    return restorer.Restorer(StubRuntime(), info, tile)


# (h, w, tile, the model's qf_tile, grid)
QF_SIZES = [(40, 60, 512, None, 8), (600, 800, 512, None, 16), (1500, 700, 512, None, 8),
            (300, 300, 256, None, 8), (600, 800, 512, 64, 16), (200, 2000, 0, 96, 8),
            (128, 128, 512, 128, 8), (1000, 1000, 0, None, 8), (700, 333, 0, 48, 16)]


def test_mean_qf_matches_predict_qf() -> None:
    """worker.js reads the QF over the model's training-size windows (qfTileBoxes with
    QF_WINDOWS_MIN..MAX) when the manifest gives its qf_tile; else over the whole image when
    restored in one pass (tilePlan: one tile), over qfTileBoxes' QF tiles when tiled; and
    takes meanQf of the readings. Against `Restorer.qf_boxes` and `predict_qf` with a stub
    network whose reading is the window's mean level."""
    images = [np.add.outer(np.arange(h) * 200 // h, np.arange(w) * 55 // w).astype(np.uint8)
              [..., None] for h, w, *_ in QF_SIZES]  # gradients: each window its own level
    n = len(QF_SIZES)
    plans = node([["tilePlan", h, w, t, restorer.DEFAULT_OVERLAP, g] for h, w, t, _, g in QF_SIZES]
                 + [["qfTileBoxes", h, w, g] for h, w, _, _, g in QF_SIZES]
                 + [["qfTileBoxes", h, w, g, q or 64, qfrules.QF_WINDOWS_MIN,
                     qfrules.QF_WINDOWS_MAX] for h, w, _, q, g in QF_SIZES])
    calls, wants = [], []
    for k, (pixels, (h, w, tile, qf_tile, grid)) in enumerate(zip(images, QF_SIZES, strict=True)):
        if qf_tile:  # as worker.js restore(): readQf, or the one pass's own reading
            boxes = plans[2 * n + k]
        elif len(plans[k]) == 1:
            boxes = [[0, 0, h, w]]
        else:
            boxes = plans[n + k]
        r = stub_restorer(tile, qf_tile)
        assert [tuple(b) for b in boxes] == r.qf_boxes(h, w, grid), (h, w, tile, qf_tile)
        calls.append(["meanQf", [StubRuntime.reading(pixels[y:y + bh, x:x + bw])
                                 for y, x, bh, bw in boxes]])
        wants.append(r.predict_qf(pixels, grid))
    got = node(calls)
    for case, qf, want in zip(QF_SIZES, got, wants, strict=True):
        # Python rounds the mean reading to float32 first, JavaScript keeps float64
        assert abs(qf - want) <= 1e-5 * abs(want), (case, qf, want)


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
    "jpeg 4:4:4 q99 80x88": (jpeg_pair, 80, 88, 3, 99, "4:4:4", None),
    "jpeg 4:2:0 q97 90x110": (jpeg_pair, 90, 110, 3, 97, "4:2:0", None),
    "random grey q50 120x128 (DC steps of 16)": (random_pair, 120, 128, 1, 50, None, None),
    "random grey q75 96x104 (DC steps of 8)": (random_pair, 96, 104, 1, 75, None, None),
    "jpeg grey q98 96x128 (steps of 1 and 2)": (jpeg_pair, 96, 128, 1, 98, None, None),
    "jpeg 4:2:0 q20 200x48 in 64-row strips": (jpeg_pair, 200, 48, 3, 20, "4:2:0", 64),
    "jpeg 4:2:2 q60 190x40 in 64-row strips": (jpeg_pair, 190, 40, 3, 60, "4:2:2", 64),
    "jpeg grey q15 170x30 in 64-row strips": (jpeg_pair, 170, 30, 1, 15, None, 64),
}


def run_projections(cases: dict[str, tuple]) -> dict[str, SimpleNamespace]:
    """name: the case's projection in JavaScript (`got`) and Python (`want`), its restored
    image, and the mask of its exact-tie blocks (`tie_blocks`; grey tables only)."""
    pairs = {name: make(h, w, c, qf, sampling, seed)
             for seed, (name, (make, h, w, c, qf, sampling, _)) in enumerate(cases.items())}
    got = node([["project", b64(r), b64(d), *r.shape, js_tables(t), cases[name][6]]
                for name, (r, d, t) in pairs.items()])
    out = {}
    for (name, (r, d, t)), g in zip(pairs.items(), got, strict=True):
        ties = tie_blocks(d, t.luma) if t.chroma is None else np.zeros(r.shape[:2], bool)
        out[name] = SimpleNamespace(got=unb64(g, r.shape), restored=r, ties=ties[..., None],
                                    want=consistency.project(r, d, t, strip=cases[name][6]))
    return out


@pytest.fixture(scope="module")
def projections() -> dict[str, SimpleNamespace]:
    return run_projections(PROJECT_CASES)


@pytest.mark.parametrize("name", list(PROJECT_CASES))
def test_projection_matches(name, projections) -> None:
    """At most 1 level apart, on at most 2 values, but in blocks with a coefficient on (or
    within float32 rounding of) a cell's edge (grey tables; there a BLAS summing in another
    order may put a near-tie in the other cell: see test_projection_agreement). None
    differs here."""
    case = projections[name]
    diff = np.abs(case.got.astype(int) - case.want)
    off_ties = diff[~np.broadcast_to(case.ties, diff.shape)]
    assert off_ties.max(initial=0) <= 1, name
    assert np.count_nonzero(off_ties) <= 2, name
    h, w = case.restored.shape[:2]
    if min(h, w) >= 8:  # the projection changes the image: the comparison means something
        assert (case.want != case.restored).mean() > 0.02, name
    else:
        assert np.array_equal(case.got, case.restored), name


def test_projection_agreement(projections) -> None:
    """Over all the cases (364,608 values): none differs, off the tie blocks or in them
    (random grey data at steps of 8 and 16, a grey JPEG at QF 98 with steps of 1 and 2: DC
    coefficients of integer blocks on cell edges), with numpy on OpenBLAS (x86-64), whose
    float32 sums consistency.js makes in the same order. Allowed: 2 values off the tie
    blocks, and one block's 64 values in them (a BLAS summing in another order rounds a
    near-tie, e.g. c / q = 2.50000007, to 3 where the port has 2.5, so 2: the whole block)."""
    values = off = off_diff = tie_diff = 0
    for case in projections.values():
        diff = case.got != case.want
        ties = np.broadcast_to(case.ties, diff.shape)
        values += diff.size
        off += np.count_nonzero(~ties)
        off_diff += np.count_nonzero(diff & ~ties)
        tie_diff += np.count_nonzero(diff & ties)
    assert values > 350_000 and off > 0.9 * values
    assert off_diff <= 2, (off_diff, values)
    assert tie_diff <= 64, (tie_diff, values)


def tie_blocks(decoded: np.ndarray, table: tuple[int, ...]) -> np.ndarray:
    """H x W mask of the whole 8x8 blocks of `decoded`'s grey level (its channels' mean)
    with a DCT coefficient on the edge of its quantisation cell, c / q = k + 1/2 (in float64,
    to 1e-6): which cell it falls in is float32 rounding, and the projection of the whole
    block may go either way."""
    plane = decoded.astype(np.float64).mean(axis=2) - 128
    h, w = plane.shape
    bh, bw = h // 8 * 8, w // 8 * 8
    blocks = plane[:bh, :bw].reshape(bh // 8, 8, bw // 8, 8).transpose(0, 2, 1, 3)
    dct = consistency.DCT
    units = np.einsum("kn,ijnm,lm->ijkl", dct, blocks, dct) / np.reshape(table, (8, 8))
    ties = (np.abs(units - np.floor(units) - 0.5) < 1e-6).any(axis=(2, 3))
    mask = np.zeros((h, w), bool)
    mask[:bh, :bw] = np.kron(ties, np.ones((8, 8), bool))
    return mask


@pytest.mark.parametrize("channels, sampling", [(1, None), (3, "4:4:4")])
def test_projection_of_lossless_but_rounding_jpeg(channels, sampling) -> None:
    """A QF 100 grey or 4:4:4 JPEG lost nothing but rounding: Python and consistency.js
    return its decoded pixels as they are (`JpegTables.lossless_but_rounding`; projecting
    into the 1-wide cells instead, as the port once did, put 38% of the grey values off by
    up to 2, 58% of the 4:4:4 ones by up to 3)."""
    case = run_projections({"q100": (jpeg_pair, 64, 72, channels, 100, sampling, None)})["q100"]
    assert not np.array_equal(case.want, case.restored)
    assert np.array_equal(case.got, case.want)


def test_projection_ties_of_grey_jpegs() -> None:
    """Grey JPEGs at QF 97..99: steps of 1 and 2 put the DC coefficient of many decoded blocks
    (integer pixels: the DC is their sum / 8) exactly on a cell's edge. Python folds 1 / q
    into one float32 matrix (`_block_transforms`), whose DC row is exactly 1 / (8 q) for
    these steps, so the tie is exact (whatever the order of the sums) and np.round takes
    the even cell; consistency.js computes c / q with the same matrix, so it does too: no
    value differs. (Multiplying by float32 DCT rows and dividing by q after, as the port
    once did, put the coefficient a hair off the edge: 0.4% to 0.7% of the pixels off by 1.)"""
    cases = {f"q{qf}": (jpeg_pair, 128, 128, 1, qf, None, None) for qf in (97, 98, 99)}
    for name, case in run_projections(cases).items():
        assert case.ties.any(), name  # the case: ties there are
        assert np.array_equal(case.got, case.want), name


NEAR_LOSSLESS_QUALITIES = [float(q) for q in np.arange(80.0, 101.0, 0.5)] + [94.99, 99.49, 99.5]


def test_near_lossless_shares_match() -> None:
    """nearLosslessQuality, strengths (with and without chroma steps of 1) and keepShare."""
    pairs = [(93.6, 95), (80.0, 95), (96.5, None), (99.0, 100), (42.25, None)]
    rng = np.random.default_rng(3)
    shares = [(30, 41, 3, 0.0, 0.25), (20, 33, 3, 0.5, 0.625), (25, 17, 1, 0.3, 1.0),
              (16, 16, 3, 1.0, 1.0), (16, 24, 3, 0.8, 1.0), (19, 23, 1, 1.0, 0.0)]
    images = []
    for h, w, c, *_ in shares:
        decoded = rng.integers(0, 256, (h, w, c)).astype(np.uint8)
        restored = np.clip(decoded.astype(int) + rng.integers(-30, 31, decoded.shape), 0, 255)
        images.append((restored.astype(np.uint8), decoded))
    got = node([["nearLosslessQuality", p, t] for p, t in pairs]
               + [["strengths", q, steps] for steps in (False, True)
                  for q in NEAR_LOSSLESS_QUALITIES]
               + [["keepShare", b64(r), b64(d), h, w, c, luma, chroma]
                  for (r, d), (h, w, c, luma, chroma) in zip(images, shares, strict=True)])
    assert got[:len(pairs)] == [nearlossless.quality(p, t) for p, t in pairs]
    got = got[len(pairs):]
    n = len(NEAR_LOSSLESS_QUALITIES)
    for steps, values in ((False, got[:n]), (True, got[n:2 * n])):
        want = [nearlossless.strengths(q, steps) for q in NEAR_LOSSLESS_QUALITIES]
        assert np.allclose(values, want, rtol=0, atol=1e-12), steps
    for (r, d), case, kept in zip(images, shares, got[2 * n:], strict=True):
        want = nearlossless.keep_share(r, d, *case[3:])
        assert np.array_equal(unb64(kept, r.shape), want), case


# --------------------------------------------------------------------------- jpeg.js

def test_standard_tables_and_qf_fit_match() -> None:
    """standardTables (the IJG tables at QF 1..100) as Pillow writes them, and qfFromTables
    (the nearest fit) on random tables, colour and grey, and on scaled IJG tables."""
    rng = np.random.default_rng(0)
    standard = tables_py._standard_tables().astype(int)
    cases = ([{0: rng.integers(1, 120, 64).tolist(), 1: rng.integers(1, 120, 64).tolist()}
              for _ in range(30)] + [{0: rng.integers(1, 60, 64).tolist()} for _ in range(15)]
             + [{0: standard[q - 1, 0].tolist(), 1: standard[q - 1, 1].tolist()}
                for q in range(1, 101, 3)]
             + [{0: standard[q - 1, 0].tolist()} for q in (2, 37, 64, 88, 99, 100)]
             + [{0: np.maximum(1, standard[q - 1, 0] + rng.integers(-2, 3, 64)).tolist(),
                 1: np.maximum(1, standard[q - 1, 1] + rng.integers(-2, 3, 64)).tolist()}
                for q in (20, 50, 75, 90, 95)])
    got = node([["standardTables", q] for q in range(1, 101)]
               + [["qfFromTables", {str(k): v for k, v in c.items()}] for c in cases])
    assert np.array_equal(np.asarray(got[:100]), standard)
    assert got[100:] == [tables_py.qf_from_tables(c) for c in cases]


def patched(data: bytes, marker: bytes, edit) -> bytes:
    """`data` with `edit(buffer, at)` applied at the first `marker` segment."""
    buffer = bytearray(data)
    at = buffer.find(marker)
    assert at > 0
    edit(buffer, at)
    return bytes(buffer)


def resampled(data: bytes, luma: int, size: tuple[int, int]) -> bytes:
    """A JPEG of one sampling turned into another with as many blocks per MCU (4:2:0's 4 + 1
    + 1 as 4:1:1's, 4:2:2's 2 + 1 + 1 as 4:4:0's): the scan decodes as it is, the blocks in
    other places; `size` (w, h): the size with the same count of MCUs."""
    def edit(b: bytearray, at: int) -> None:
        b[at + 5:at + 7] = size[1].to_bytes(2, "big")
        b[at + 7:at + 9] = size[0].to_bytes(2, "big")
        assert b[at + 9] == 3 and b[at + 10] == 1
        b[at + 11] = luma  # the first component's sampling factors (h << 4 | v)
    return patched(data, b"\xff\xc0", edit)


def zeroed_step(data: bytes) -> bytes:
    """The last (zigzag) step of the first quantisation table set to 0."""
    def edit(b: bytearray, at: int) -> None:
        assert b[at + 4] == 0  # 8-bit, table 0
        b[at + 5 + 63] = 0
    return patched(data, b"\xff\xdb", edit)


def pillow_jpeg(pixels: np.ndarray, **options) -> bytes:
    data = io.BytesIO()
    Image.fromarray(pixels).save(data, "JPEG", **options)
    return data.getvalue()


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def little_endian_exif(orientation: int) -> bytes:
    """An EXIF block in Intel byte order (Pillow writes Motorola's): the image width, then
    the orientation."""
    entries = [(0x0100, 3, 1, 48), (0x0112, 3, 1, orientation)]  # tag, SHORT, count, value
    ifd = len(entries).to_bytes(2, "little") + b"".join(
        t.to_bytes(2, "little") + k.to_bytes(2, "little") + n.to_bytes(4, "little")
        + v.to_bytes(2, "little") + bytes(2) for t, k, n, v in entries) + bytes(4)
    return b"Exif\x00\x00II*\x00" + (8).to_bytes(4, "little") + ifd


def jpeg_files(folder: Path) -> dict[str, Path]:
    """name: a JPEG file (Pillow's, some edited after)."""
    colour = make_photo(40, 48, 3, seed=21)
    grey = make_photo(36, 52, 1, seed=22)[:, :, 0]
    made: dict[str, bytes] = {}
    for q in (1, 5, 10, 25, 50, 75, 90, 95, 99, 100):
        for sampling in ("4:2:0", "4:2:2", "4:4:4"):
            made[f"colour {sampling} q{q}"] = pillow_jpeg(colour, quality=q, subsampling=sampling)
        made[f"grey q{q}"] = pillow_jpeg(grey, quality=q)
    made |= {
        "progressive 4:2:0 q60": pillow_jpeg(colour, quality=60, progressive=True),
        "progressive grey q30": pillow_jpeg(grey, quality=30, progressive=True),
        "optimized 4:4:4 q70": pillow_jpeg(colour, quality=70, subsampling=0, optimize=True),
        "restart markers 4:2:0 q50": pillow_jpeg(colour, quality=50, restart_marker_blocks=1),
        "comment and ICC q80": pillow_jpeg(colour, quality=80, comment=b"\xff\xd9 a comment",
                                           icc_profile=files.srgb_profile()),
        "EXIF orientation 1 q40": pillow_jpeg(colour, quality=40, exif=exif_orientation(1)),
        "EXIF orientation 6 q40": pillow_jpeg(colour, quality=40, exif=exif_orientation(6)),
        "EXIF orientation 3 grey q40": pillow_jpeg(grey, quality=40, exif=exif_orientation(3)),
        "EXIF orientation 8 little-endian q40": pillow_jpeg(colour, quality=40,
                                                           exif=little_endian_exif(8)),
        "custom tables (not IJG)": pillow_jpeg(colour, qtables=[
            list(range(1, 65)), [int(v) for v in np.linspace(3, 140, 64)]]),
        "one table for all components": pillow_jpeg(colour, qtables=[[7] * 64]),
        "three tables": pillow_jpeg(colour, qtables=[[7] * 64, [9] * 64, [11] * 64]),
        "16-bit tables": pillow_jpeg(colour, qtables=[[300] * 64, [2] * 64]),
        "custom grey table": pillow_jpeg(grey, qtables=[list(range(64, 0, -1))]),
        "4:4:0 (from 4:2:2)": resampled(pillow_jpeg(colour[:32], quality=50, subsampling=1),
                                        0x12, (24, 64)),
        "zero step": zeroed_step(pillow_jpeg(colour, quality=50)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, data in made.items():
        out[name] = folder / f"{len(out):02d}.jpg"
        out[name].write_bytes(data)
    out["CMYK q30"] = cmyk_jpeg(folder / "cmyk.jpg", colour)
    out["4:1:1 (from 4:2:0)"] = folder / "411.jpg"
    out["4:1:1 (from 4:2:0)"].write_bytes(resampled(pillow_jpeg(
        colour[:32], quality=50, subsampling=2), 0x41, (96, 16)))
    return out


REFUSED = {  # name: what jpeg.js did before it refused them (test_jpeg_consistency_tables_refused)
    "4:4:0 (from 4:2:2)": "gave the tables of a colour JPEG of another sampling as grey ones",
    "4:1:1 (from 4:2:0)": "gave the tables of a colour JPEG of another sampling as grey ones",
    "zero step": "gave tables with a step of 0 for the projection",
}


@pytest.fixture(scope="module")
def inspected(tmp_path_factory) -> dict[str, tuple[dict, Path]]:
    """name: (what jpeg.js read from the file, the file)."""
    paths = jpeg_files(tmp_path_factory.mktemp("jpegs"))
    got = node([["inspect", base64.b64encode(p.read_bytes()).decode()] for p in paths.values()])
    return {name: (g, p) for (name, p), g in zip(paths.items(), got, strict=True)}


def python_reading(path: Path) -> dict:
    """What the Python reader makes of a JPEG file, in jpeg.js's terms."""
    loaded = files.read_image(path)
    with Image.open(path) as im:
        stored_size = im.size
        orientation = int(im.getexif().get(0x0112, 1))
        progressive = bool(im.info.get("progressive") or im.info.get("progression"))
        quantization = {int(k): list(v) for k, v in im.quantization.items()}
    tables = analysis.jpeg_tables(loaded)
    channels = loaded.pixels.shape[2]
    return {
        "format": loaded.format, "width": stored_size[0], "height": stored_size[1],
        "tables": quantization, "grey": loaded.mode == "L", "channels": channels,
        "subsampling": loaded.subsampling, "headerQf": loaded.header_qf,
        "orientation": orientation, "progressive": progressive,
        "grid": tables_py.grid_multiple(loaded.subsampling, channels),
        "consistency": None if tables is None else js_tables(tables),
    }


JPEG_NAMES = [f"colour {s} q{q}" for q in (1, 5, 10, 25, 50, 75, 90, 95, 99, 100)
              for s in ("4:2:0", "4:2:2", "4:4:4")] + [
    f"grey q{q}" for q in (1, 5, 10, 25, 50, 75, 90, 95, 99, 100)] + [
    "progressive 4:2:0 q60", "progressive grey q30", "optimized 4:4:4 q70",
    "restart markers 4:2:0 q50", "comment and ICC q80", "EXIF orientation 1 q40",
    "EXIF orientation 6 q40", "EXIF orientation 3 grey q40",
    "EXIF orientation 8 little-endian q40", "custom tables (not IJG)",
    "one table for all components", "three tables", "16-bit tables", "custom grey table",
    "CMYK q30"]


@pytest.mark.parametrize("name", JPEG_NAMES)
def test_jpeg_header_matches(name, inspected) -> None:
    got, path = inspected[name]
    want = python_reading(path)
    assert got["problem"] is None and got["complete"] is True, got["problem"]
    got_tables = {int(k): v for k, v in got["tables"].items()}
    assert got_tables == want.pop("tables"), name
    assert {k: got[k] for k in want} == want, name
    # the cases are what they claim to be
    if name.startswith("colour ") or name.startswith("grey "):
        assert want["headerQf"] == int(name.rsplit("q", 1)[1])
        assert want["subsampling"] == (name.split()[1] if name.startswith("colour") else None)
    assert (want["consistency"] is None) == (name.startswith("EXIF orientation ")
                                             and not name.startswith("EXIF orientation 1")
                                             or name == "CMYK q30")


@pytest.mark.parametrize("name", list(REFUSED))
def test_jpeg_consistency_tables_refused(name, inspected) -> None:
    """Python (`images.files._usable_tables`, `analysis.jpeg_tables`) does not project a
    colour JPEG sampled other than 4:2:0 / 4:2:2 / 4:4:4 (Pillow's subsampling None) nor one
    with a 0 step, and jpeg.js consistencyTables gives null for them too (it once gave
    {luma, chroma: null, subsampling: null} for the first, and consistency.js projected the
    colour image's mean level with the luma table as if grey; and the tables with the 0 for
    the second: 0 / 0, NaN luma coefficients, every whole block black)."""
    got, path = inspected[name]
    want = python_reading(path)
    assert want["consistency"] is None  # the cases
    assert {k: got[k] for k in ("headerQf", "subsampling", "grid", "grey")} == {
        k: want[k] for k in ("headerQf", "subsampling", "grid", "grey")}  # the rest agrees
    assert got["consistency"] is None, REFUSED[name]


@pytest.mark.parametrize("cut", ["half", "no EOI", "header only"])
def test_truncated_jpeg(cut, inspected, tmp_path) -> None:
    """A truncated JPEG: jpeg.js says so (problem set, not complete); Python refuses it too."""
    data = inspected["colour 4:2:0 q75"][1].read_bytes()
    at = data.find(b"\xff\xda")
    data = {"half": data[:len(data) // 2], "no EOI": data[:-2], "header only": data[:at]}[cut]
    path = tmp_path / "cut.jpg"
    path.write_bytes(data)
    (got,) = node([["inspect", base64.b64encode(data).decode()]])
    assert got["complete"] is False and got["problem"].startswith("corrupt or truncated"), got
    with pytest.raises(files.ImageError):
        files.read_image(path)


# ------------------------------------------------------- jpeg.js: a single JPEG's QF rule

JPEGLI = str(qfrules.JPEGLI_TABLES)


def jpegli_pairs() -> dict[int, list[list[int]]]:
    """quality: [luma, chroma] jpegli writes (the data file the site ships)."""
    tables = json.loads(qfrules.JPEGLI_TABLES.read_text())["tables"]
    return {int(q): pair for q, pair in tables.items()}


def single_jpeg_cases() -> dict[str, tuple]:
    """name: (reading, tables_qf, luma, chroma) for `single_jpeg_qf`."""
    standard = tables_py._standard_tables().astype(int)
    cases: dict[str, tuple] = {}
    for q in (1, 2, 5, 10, 20, 30, 50, 75, 85, 89, 90, 91, 95, 99, 100):
        luma, chroma = standard[q - 1, 0].tolist(), standard[q - 1, 1].tolist()
        tables_qf = tables_py.qf_from_tables({0: luma, 1: chroma})
        assert tables_qf == q  # the case: IJG tables at q
        share = qfrules.TABLES_FLOOR_MIN_SHARE * q  # below it: an earlier compression
        for reading in (0.5, share - 1e-9, share, q - 10, q - 0.5, q - 1e-9, q, q + 1e-9,
                        q + 0.5, q + 10, 100.0):
            cases[f"IJG q{q} colour, reading {reading}"] = (reading, tables_qf, luma, chroma)
            cases[f"IJG q{q} grey, reading {reading}"] = (reading, tables_qf, luma, None)
    for q, (luma, chroma) in jpegli_pairs().items():
        colour_qf = tables_py.qf_from_tables({0: luma, 1: chroma})
        grey_qf = tables_py.qf_from_tables({0: luma})
        for reading in (1.0, colour_qf - 0.5, colour_qf + 0.5):
            cases[f"jpegli q{q} colour, reading {reading}"] = (reading, colour_qf, luma, chroma)
        for reading in (1.0, grey_qf - 0.5):
            cases[f"jpegli q{q} luma only, reading {reading}"] = (reading, grey_qf, luma, None)
        for reading in (0.6 * q, q - 0.5) if q > 1 else ():  # its floor: its quality
            cases[f"jpegli q{q} colour, reading {reading} (own)"] = (reading, colour_qf, luma,
                                                                    chroma)
            cases[f"jpegli q{q} luma only, reading {reading} (own)"] = (reading, grey_qf, luma,
                                                                       None)
        # one step off, or jpegli's luma with a chroma table of another quality: not jpegli's
        other = [*luma[:5], luma[5] + 1, *luma[6:]]
        cases[f"jpegli q{q} luma one step off"] = (colour_qf - 0.5, colour_qf, other, chroma)
        cases[f"jpegli q{q} luma one step off, grey"] = (grey_qf - 0.5, grey_qf, other, None)
        mixed = jpegli_pairs()[101 - q][1]
        if mixed != chroma:
            cases[f"jpegli q{q} luma, chroma of q{101 - q}"] = (colour_qf - 0.5, colour_qf, luma,
                                                                mixed)
    luma, chroma = standard[29, 0].tolist(), standard[29, 1].tolist()
    cases |= {
        "no tables QF": (10.0, None, luma, chroma),
        "no tables": (10.0, 30, None, None),
        "neither": (10.0, None, None, None),
        "tables QF given apart from the tables": (40.0, 60, luma, chroma),
    }
    return cases


def test_single_jpeg_qf_matches() -> None:
    """jpeg.js singleJpegQf / jpegliQuality (with the tables the site ships) against
    `fbcnn.jpeg.qf.single_jpeg_qf` / `jpegli_quality`: IJG tables, colour and grey, at
    qualities below, at and above TABLES_FLOOR_MAX, read below, at and above their QF;
    jpegli's tables at every quality, colour and luma only, and near misses; no tables."""
    cases = single_jpeg_cases()
    got = node([["singleJpegQf", *case, JPEGLI] for case in cases.values()]
               + [["jpegliQuality", luma, chroma, JPEGLI]
                  for _, _, luma, chroma in cases.values() if luma is not None])
    want = {name: qfrules.single_jpeg_qf(*case) for name, case in cases.items()}
    assert dict(zip(cases, got[:len(cases)], strict=True)) == want
    jpegli_want = [qfrules.jpegli_quality(luma, chroma)
                   for _, _, luma, chroma in cases.values() if luma is not None]
    assert got[len(cases):] == jpegli_want
    # the cases reach every branch: raised, kept (read at or above the tables' QF, tables
    # above the floor's range, jpegli's tables, no tables), jpegli's and others' tables
    raised = {n for n, w in want.items() if w is not None}
    assert any(n.startswith("IJG") and "grey" in n for n in raised)
    assert any(n.startswith("IJG") and "colour" in n for n in raised)
    assert any("one step off" in n for n in raised) and any("chroma of" in n for n in raised)
    assert all(want[f"IJG q{q} colour, reading {q - 0.5}"] == q for q in (2, 20, 90))
    assert want["IJG q91 colour, reading 90.5"] is None  # above TABLES_FLOOR_MAX
    assert want["IJG q50 colour, reading 30.0"] == 50  # at the share: raised
    assert want["IJG q50 colour, reading 29.999999999"] is None  # below it: kept
    assert want["IJG q20 colour, reading 20"] is None and want["IJG q20 grey, reading 20"] is None
    jpegli_below = [n for n, (r, t, _, _) in cases.items() if n.startswith("jpegli")
                    and "off" not in n and "chroma of" not in n and "own" not in n
                    and qfrules.TABLES_FLOOR_MIN_SHARE * t <= r < t <= qfrules.TABLES_FLOOR_MAX]
    assert all(want[n] is None for n in jpegli_below)  # never raised to the tables' QF
    own = [n for n in cases if n.endswith("(own)")]
    assert all((want[n] is not None) == (int(n.split()[1][1:]) <= qfrules.JPEGLI_FLOOR_MAX)
               for n in own)
    assert any("colour" in n for n in jpegli_below) and any("luma only" in n for n in jpegli_below)
    assert sum(q is not None for q in jpegli_want) > 100 and None in jpegli_want
    assert want["no tables"] is None and want["no tables QF"] is None


def floor_files(folder: Path) -> dict[str, Path]:
    """JPEG files the rule meets: jpegli's (by jpegli where installed, colour and grey, and
    its tables written by Pillow, grey with the luma table alone), MozJPEG's tables
    (Pillow), IJG's at and around TABLES_FLOOR_MAX."""
    from fbcnn.jpeg import encoders

    colour = make_photo(40, 48, 3, seed=23)
    grey = make_photo(36, 52, 1, seed=24)[:, :, 0]
    made = {f"IJG colour q{q}": pillow_jpeg(colour, quality=q) for q in (89, 90, 91)}
    for q in (20, 60, 90):
        tables = [encoders.scaled_table(t, q) for t in encoders.MOZJPEG_TABLES[2]]
        made[f"MozJPEG tables colour q{q}"] = pillow_jpeg(colour, qtables=tables)
        made[f"MozJPEG tables grey q{q}"] = pillow_jpeg(grey, qtables=tables[:1])
    # jpegli's tables written by Pillow: grey (luma alone) and colour; at 80, the highest
    # quality raised (tables of QF 89 / 85), at 84 not (grey: tables of QF 89)
    for q in (30, 60, 80, 84):
        luma, chroma = jpegli_pairs()[q]
        made[f"jpegli's luma, grey q{q}"] = pillow_jpeg(grey, qtables=[luma])
        made[f"jpegli's tables, colour q{q}"] = pillow_jpeg(colour, qtables=[luma, chroma])
    if encoders.available("jpegli"):
        spec = encoders.parse_encoder("jpegli")
        for q in (10, 30, 60, 85, 95):
            made[f"jpegli colour q{q}"] = encoders.encode_with(spec, colour, q)
            made[f"jpegli grey q{q}"] = encoders.encode_with(spec, grey, q)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, data in made.items():
        out[name] = folder / f"floor{len(out):02d}.jpg"
        out[name].write_bytes(data)
    return out


def test_tables_floor_of_files_matches_pipeline(inspected, tmp_path) -> None:
    """What worker.js feeds at QF auto for a file and a reading (jpeg.js floorTables, then
    singleJpegQf), and whether it needs the jpegli tables, as engine/analysis.py
    `_tables_floor` has them from `read_image`: the header-test files (every quality,
    sampling, grey, custom, 16-bit, EXIF-turned, CMYK, 4:1:1, a 0 step) and jpegli's,
    MozJPEG-tabled and IJG files around TABLES_FLOOR_MAX."""
    paths = {name: path for name, (_, path) in inspected.items()} | floor_files(tmp_path)
    readings = {}
    quality = {}  # jpegli's files: the quality their tables name
    for name, path in paths.items():
        image = files.read_image(path)
        header = image.header_qf or 50
        # far below (an earlier compression: kept), within the share, at and above
        readings[name] = [1.0, 0.7 * header, header - 0.5, float(header), header + 0.5, 99.0]
        tables = image.quantization
        if tables and 0 in tables and qfrules.jpegli_quality(tables[0], tables.get(1)):
            quality[name] = qfrules.jpegli_quality(tables[0], tables.get(1))
            # around the jpegli quality, its floor
            readings[name] += [0.7 * quality[name], quality[name] - 0.5]
    got = node([["tablesFloor", base64.b64encode(p.read_bytes()).decode(), readings[n], JPEGLI]
                for n, p in paths.items()])
    want = {}
    for name, path in paths.items():
        floor = analysis._tables_floor(files.read_image(path))
        fed = [r if floor is None or floor(r) is None else floor(r) for r in readings[name]]
        want[name] = {"applies": floor is not None, "fed": fed}
    assert dict(zip(paths, got, strict=True)) == want
    # the cases: raised and kept, the rule out of reach (no jpegli tables loaded) and not
    assert want["colour 4:2:0 q50"]["fed"][:3] == [1.0, 50, 50]
    assert want["EXIF orientation 6 q40"]["fed"][1] == 40  # turned: its tables still count
    assert want["grey q25"]["fed"][1] == 25
    for name in ("colour 4:2:0 q95", "CMYK q30", "4:1:1 (from 4:2:0)", "zero step",
                 "IJG colour q91"):
        assert not want[name]["applies"], name
    assert want["IJG colour q90"]["applies"] and want["IJG colour q90"]["fed"][1] == 90
    moz = "MozJPEG tables colour q60"
    assert want[moz]["fed"][1] > readings[moz][1]
    jpegli = [n for n in paths if n.startswith("jpegli") and want[n]["applies"]]
    assert len(jpegli) >= 4 and "jpegli's luma, grey q30" in jpegli
    assert set(quality) >= set(jpegli)
    for n in jpegli:  # raised to the jpegli quality (up to 80), never to the tables' QF
        q = quality[n]
        raised = [q if 0.6 * q <= r < q <= qfrules.JPEGLI_FLOOR_MAX else r for r in readings[n]]
        assert want[n]["fed"] == raised, n
        assert raised[-1] == (q if q <= qfrules.JPEGLI_FLOOR_MAX else q - 0.5), n
    assert any(quality[n] > qfrules.JPEGLI_FLOOR_MAX for n in jpegli)  # kept: the reading
