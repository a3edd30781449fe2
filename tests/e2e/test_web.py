"""`fbcnn web build` in a real browser: headless Chromium (Debian's `chromium`) driven by
Playwright, on the site served by `fbcnn web serve`'s server, running the shipped models on
WASM. The page's downloaded PNG must match `fbcnn restore` on the same file within 1 grey
level, at QF auto and at two fixed QFs, for a colour JPEG restored in tiles and a grey JPEG;
bad files must give a readable message; a PNG whose pixels bear no JPEG compression must
come back unchanged (as `fbcnn restore` copies it) until "Restore anyway". The JavaScript
ports (IJG tables and QF, tile plan, JPEG consistency) are also compared with the Python
they copy, on many inputs.

The site is built once per module (`npm ci` runs only when the onnxruntime-web cache is
empty). Runs in `make test` and CI; skipped only where chromium or npm is missing.
FBCNN_SCREENSHOT=1 also saves the page to docs/images/web.png. The parity figures are
printed (pytest -s shows them).
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS
from click.testing import CliRunner
from conftest import make_photo
from PIL import Image, ImageDraw

from fbcnn.frontends.cli import main
from fbcnn.jpeg.tables import encode

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "astronaut_qf10.jpg"
SCREENSHOT = ROOT / "docs" / "images" / "web.png"
TIMEOUT_MS = 600_000  # generous: the machines running this are shared and slow
COLOUR_TILE = 128  # 302x198 in 6 tiles of 128 (grid 16): the tiled path, cheaply
FIXED_QFS = (10, 60)
PARITY: dict[str, dict[str, float]] = {}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                       "(apt-get install chromium; CI installs it)"),
]


def _runtime_cached() -> bool:
    from fbcnn.frontends.web.build import _complete, _dist, _runtime_folder, cache_root

    return _complete(_dist(_runtime_folder(cache_root())))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site with the shipped models, built once for the module."""
    if shutil.which("npm") is None and not _runtime_cached():
        pytest.skip("npm is not installed (it fetches onnxruntime-web once)")
    out = tmp_path_factory.mktemp("web") / "site"
    result = CliRunner().invoke(main, ["web", "build", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def server(site) -> Iterator[str]:
    from fbcnn.frontends.web.serve import make_server

    httpd = make_server(site, port=0, quiet=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright  # pip install playwright (no browsers)

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            headless=True, args=CHROMIUM_ARGS, accept_downloads=True,
            viewport={"width": 1280, "height": 860})
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="module", autouse=True)
def report_parity() -> Iterator[None]:
    yield
    if PARITY:
        print("\nweb parity (max abs diff vs fbcnn restore, grey levels):")
        for case, figures in PARITY.items():
            print(f"  {case}: " + ", ".join(f"{k} {v:g}" for k, v in figures.items()))


def cli(*args: str) -> str:
    """`fbcnn ARGS`; a restore in fp32, as the page computes (the CLI's default is bf16 on
    CPUs that have it natively)."""
    extra = ["--precision", "fp32"] if args[0] == "restore" else []
    result = CliRunner().invoke(main, [*args, *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def runs(page) -> int:
    return int(page.evaluate("document.body.dataset.runs"))


def wait_for_run(page, count: int) -> None:
    page.wait_for_function(f"document.body.dataset.runs === '{count}' || "
                           "document.body.dataset.state === 'error'")
    assert page.evaluate("document.body.dataset.state") == "done", page.inner_text("#error")
    assert runs(page) == count


def set_qf(page, qf: int) -> None:
    before = runs(page)
    page.fill("#strength-number", str(qf))
    page.press("#strength-number", "Enter")
    wait_for_run(page, before + 1)
    assert not page.is_checked("#auto")
    assert page.input_value("#strength") == str(qf)


def download(page, tmp_path: Path) -> tuple[str, np.ndarray, str]:
    with page.expect_download() as info:
        page.click("#download")
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    with Image.open(target) as im:
        return info.value.suggested_filename, np.asarray(im).copy(), im.mode


def canvas_pixels(page, canvas: str) -> np.ndarray:
    """RGB pixels drawn on a canvas of the page (the decoded 'before' image)."""
    data = page.evaluate("""(id) => {
        const c = document.getElementById(id);
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
    }""", canvas)
    height, width = page.evaluate(
        f"[document.getElementById('{canvas}').height, document.getElementById('{canvas}').width]")
    return np.asarray(data, np.uint8).reshape(height, width, 4)[:, :, :3]


def decoded_by_pillow(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def check_parity(page, tmp_path: Path, jpeg: Path, case: str, mode: str,
                 cli_args: tuple[str, ...]) -> tuple[float, float]:
    """Auto, then each fixed QF: the page's PNG vs `fbcnn restore`'s, within 1 grey level;
    at auto the page used the QF the CLI used. Returns the QFs the CLI predicted and used."""
    figures = PARITY.setdefault(case, {})
    # the browser's decode vs Pillow's (libjpeg-turbo): what the network sees
    figures["decode"] = max_diff(canvas_pixels(page, "before"), decoded_by_pillow(jpeg))
    assert figures["decode"] <= 1
    with Image.open(jpeg) as im:
        size = im.size
    auto = page.evaluate("window.fbcnnLast")
    for qf in (None, *FIXED_QFS):
        if qf is not None:
            set_qf(page, qf)
        name, got, got_mode = download(page, tmp_path)
        suffix = "" if qf is None else f"_qf{qf}"
        assert name == f"{jpeg.stem}_restored{suffix}.png"
        out = tmp_path / f"cli{suffix or '_auto'}"
        qf_args = () if qf is None else ("--qf", str(qf))
        printed = cli("restore", str(jpeg), "-o", str(out), *cli_args, *qf_args)
        if qf is None:  # used: the reading, or a single JPEG's tables' QF (jpeg/qf.py)
            predicted = float(printed.split("predicted QF ")[1].split(",")[0])
            used = float(printed.split("used QF ")[1].split()[0])
            assert f"{auto['usedQf']:.1f}" == f"{used:.1f}" and auto["auto"]
            assert page.input_value("#strength") == str(round(used))
        with Image.open(out / f"{jpeg.stem}.png") as im:
            want, want_mode = np.asarray(im).copy(), im.mode
        assert got_mode == want_mode == mode and got.shape[:2] == (size[1], size[0])
        diff = max_diff(got, want)
        figures["auto" if qf is None else f"qf {qf}"] = diff
        figures[f"pixels off ({'auto' if qf is None else qf})"] = int(
            (got.astype(np.int16) != want.astype(np.int16)).sum())
        assert diff <= 1, f"{case} at QF {qf or 'auto'}: max abs diff {diff}"
    return predicted, used


def header_qf(path: Path) -> int | None:
    from fbcnn.jpeg.tables import header_qf as qf_of

    with Image.open(path) as im:
        return qf_of(im)


def test_colour_jpeg_in_tiles_matches_cli(server, page, tmp_path) -> None:
    jpeg = tmp_path / "colour.jpg"
    jpeg.write_bytes(encode(make_photo(198, 302, 3, seed=3), 20))  # 4:2:0
    page.goto(f"{server}?tile={COLOUR_TILE}&ep=wasm")
    assert page.evaluate("crossOriginIsolated") is True  # COOP/COEP from the server
    page.set_input_files("#file", str(jpeg))
    wait_for_run(page, 1)
    assert "WASM (SIMD, " in page.inner_text("#backend")
    assert page.is_checked("#auto")
    assert page.inner_text("#qf-file") == "20"
    assert page.inner_text("#info-model") == "color"
    assert "302 × 198, colour, 4:2:0" in page.inner_text("#info-size")
    last = page.evaluate("window.fbcnnLast")
    assert last["tiles"] == 6 and last["auto"]
    assert page.inner_text("#qf-predicted") == f"{last['predictedQf']:.1f}"

    # fed what `fbcnn restore` feeds (the reading, or the tables' QF: jpeg/qf.py), and the
    # page says which
    want = fed_qf(jpeg, last["predictedQf"])
    assert last["usedQf"] == pytest.approx(want) and last["tablesFloor"] == (want == 20)
    note = (f"(auto: read QF {last['predictedQf']:.1f}, below the file's QF)" if want == 20
            else "(auto)")
    assert page.inner_text("#status").startswith(f"Restored with QF {want:.1f} {note}")
    assert page.input_value("#strength") == str(round(want))
    cli_predicted, cli_used = check_parity(page, tmp_path, jpeg, "colour 302x198, 4:2:0, 6 tiles",
                                           "RGB", ("--tile", str(COLOUR_TILE)))
    assert abs(last["predictedQf"] - cli_predicted) < 0.1 and cli_used == pytest.approx(want, 0.01)


def fed_qf(jpeg, reading: float) -> float:
    """The QF `fbcnn restore` feeds this single JPEG read as `reading` (jpeg/qf.py)."""
    from fbcnn.engine.analysis import _tables_floor
    from fbcnn.images.files import read_image

    rule = _tables_floor(read_image(jpeg))
    raised = rule(reading) if rule is not None else None
    return reading if raised is None else raised


def test_grey_jpeg_matches_cli(server, page, tmp_path) -> None:
    jpeg = tmp_path / "grey.jpg"
    jpeg.write_bytes(encode(make_photo(141, 203, 1, seed=4)[:, :, 0], 30))
    page.goto(f"{server}?ep=wasm")
    page.set_input_files("#file", str(jpeg))
    wait_for_run(page, 1)
    assert page.inner_text("#qf-file") == str(header_qf(jpeg)) == "30"
    assert page.inner_text("#info-model") == "gray"
    assert "203 × 141, grey" in page.inner_text("#info-size")
    last = page.evaluate("window.fbcnnLast")
    assert last["tiles"] == 1
    cli_predicted, _ = check_parity(page, tmp_path, jpeg, "grey 203x141, one pass", "L", ())
    assert abs(last["predictedQf"] - cli_predicted) < 0.1
    assert last["usedQf"] == pytest.approx(fed_qf(jpeg, last["predictedQf"]))

    # the same grey photo in a colour JPEG (4:2:0): the grey model, as `fbcnn restore` picks
    # it; both give RGB with three equal channels
    neutral = tmp_path / "neutral.jpg"
    neutral.write_bytes(encode(np.repeat(make_photo(141, 203, 1, seed=4), 3, axis=2), 30))
    before = runs(page)
    page.set_input_files("#file", str(neutral))
    wait_for_run(page, before + 1)
    assert page.inner_text("#info-model") == "gray"
    assert "203 × 141, grey" in page.inner_text("#info-size")
    _, got, mode = download(page, tmp_path)
    printed = cli("restore", str(neutral), "-o", str(tmp_path / "cli_neutral"))
    assert "[gray]" in printed
    with Image.open(tmp_path / "cli_neutral" / "neutral.png") as im:
        want = np.asarray(im).copy()
    assert mode == "RGB" and (want == want[:, :, :1]).all() and (got == got[:, :, :1]).all()
    PARITY.setdefault("grey photo in a colour JPEG", {})["auto"] = max_diff(got, want)
    assert max_diff(got, want) <= 1


def test_cmyk_jpeg_is_converted_and_restored(server, page, tmp_path) -> None:
    """A CMYK JPEG: the browser turns it into RGB, the page restores it without the
    consistency step and says so; close to what `fbcnn restore` makes of it (the two
    CMYK -> RGB conversions may differ by a level or two)."""
    rgb = make_photo(96, 128, 3, seed=6)
    jpeg = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(jpeg, quality=40)
    page.goto(f"{server}?ep=wasm")
    page.set_input_files("#file", str(jpeg))
    wait_for_run(page, 1)
    assert "CMYK converted to RGB" in page.inner_text("#info-size")
    name, got, mode = download(page, tmp_path)
    assert (name, mode, got.shape) == ("cmyk_restored.png", "RGB", (96, 128, 3))
    out = tmp_path / "cli_cmyk"
    cli("restore", str(jpeg), "-o", str(out))
    with Image.open(out / "cmyk.png") as im:
        want = np.asarray(im.convert("RGB")).astype(np.int16)
    diff = np.abs(got.astype(np.int16) - want)
    PARITY.setdefault("CMYK 128x96", {})["mean"] = float(diff.mean())
    assert diff.mean() < 3
    assert np.abs(got.astype(np.int16) - rgb).mean() < 12  # the colours survive


@pytest.mark.slow
def test_colour_jpeg_many_tiles_matches_cli(server, page, tmp_path) -> None:
    """700x300 in tiles of 128 (3 rows of 7): the QF is read on its own QF tiles."""
    from fbcnn.engine.restorer import tile_spans

    jpeg = tmp_path / "wide.jpg"
    jpeg.write_bytes(encode(make_photo(300, 700, 3, seed=5), 40, subsampling="4:4:4"))
    page.goto(f"{server}?tile=128&ep=wasm")
    page.set_input_files("#file", str(jpeg))
    wait_for_run(page, 1)
    tiles = len(tile_spans(300, 128, 32, 8)) * len(tile_spans(700, 128, 32, 8))
    assert page.evaluate("window.fbcnnLast.tiles") == tiles == 21
    check_parity(page, tmp_path, jpeg, "colour 700x300, 4:4:4, 21 tiles", "RGB",
                 ("--tile", "128"))


def test_bad_files_give_a_readable_message(server, page, tmp_path) -> None:
    page.goto(f"{server}?ep=wasm")
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    page.set_input_files("#file", str(notes))
    page.wait_for_function("document.body.dataset.state === 'error'")
    assert page.inner_text("#error") == "notes.jpg: not an image"
    assert page.inner_text("#status") == ""
    assert page.is_disabled("#download")

    good = encode(make_photo(48, 64, 1, seed=6)[:, :, 0], 50)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good[: len(good) // 2])
    page.set_input_files("#file", str(cut))
    page.wait_for_function("document.body.dataset.state === 'error' && "
                           "document.getElementById('error').textContent.startsWith('cut.jpg')")
    assert page.inner_text("#error").startswith("cut.jpg: corrupt or truncated image (")
    assert "\n" not in page.inner_text("#error")

    # dropped and pasted files take the same path
    page.evaluate("""() => {
        const dt = new DataTransfer();
        dt.items.add(new File(['hello'], 'dropped.jpg', {type: 'image/jpeg'}));
        window.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, cancelable: true}));
    }""")
    page.wait_for_function("document.getElementById('error').textContent.startsWith('dropped')")
    assert page.inner_text("#error") == "dropped.jpg: not an image"
    page.evaluate("""() => {
        const dt = new DataTransfer();
        dt.items.add(new File(['GIF89a'], 'clip.gif', {type: 'image/gif'}));
        document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt}));
    }""")
    page.wait_for_function("document.getElementById('error').textContent.startsWith('clip')")
    assert page.inner_text("#error") == ("clip.gif: corrupt or truncated image "
                                         "(the browser cannot decode it)")

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    page.set_input_files("#file", str(empty))
    page.wait_for_function("document.getElementById('error').textContent.startsWith('empty')")
    assert page.inner_text("#error") == "empty.png: empty file"

    # the worker is still alive: a good file restores after the bad ones
    ok = tmp_path / "ok.jpg"
    ok.write_bytes(good)
    page.set_input_files("#file", str(ok))
    wait_for_run(page, 1)
    assert page.is_hidden("#error")
    assert page.inner_text("#qf-file") == "50"


def never_jpeg_graphic(h: int = 150, w: int = 260) -> np.ndarray:
    """Panels, a button and text drawn straight to pixels: no JPEG compression in them."""
    im = Image.new("RGB", (w, h), (246, 247, 249))
    draw = ImageDraw.Draw(im)
    draw.rectangle((8, 8, w - 9, 36), fill=(47, 111, 222))
    draw.rounded_rectangle((16, h - 44, 120, h - 16), radius=8, fill=(255, 255, 255),
                           outline=(208, 213, 221))
    draw.text((14, 16), "Settings", fill=(255, 255, 255))
    for k, line in enumerate(("The quick brown fox jumps over the lazy dog",
                              "JPEG artifacts removal 0123456789", "Open  Save  Help")):
        draw.text((14, 48 + 16 * k), line, fill=(29, 35, 48))
    draw.text((30, h - 36), "Restore", fill=(29, 35, 48))
    return np.asarray(im)


def test_never_jpeg_png_is_left_unchanged(server, page, tmp_path) -> None:
    """jpegtrace.js in the page: a PNG without JPEG compression comes back unchanged, with
    the message, without loading the network, as `fbcnn restore` copies it; "Restore anyway"
    restores it as `fbcnn restore --not-jpeg restore`. A PNG of a decoded JPEG (cropped off
    its grid) is restored straight away."""
    pixels = never_jpeg_graphic()
    png = tmp_path / "graphic.png"
    Image.fromarray(pixels).save(png)
    printed = cli("restore", str(png), "-o", str(tmp_path / "cli_copy"))
    assert "no JPEG compression in its pixels, copied unchanged" in printed

    page.goto(f"{server}?ep=wasm")
    page.set_input_files("#file", str(png))
    wait_for_run(page, 1)
    last = page.evaluate("window.fbcnnLast")
    assert last["unchanged"] and last["trace"]["judged"] and not last["trace"]["found"]
    assert page.inner_text("#status") == ("No JPEG compression found in this image's pixels: "
                                          "left unchanged")
    assert page.is_visible("#not-jpeg") and page.is_visible("#restore-anyway")
    assert page.evaluate("document.getElementById('strength-box').disabled") is True
    assert page.inner_text("#info-trace") == "none"
    assert page.inner_text("#qf-file") == "– (not a JPEG)"
    assert page.inner_text("#qf-predicted") == "–"
    assert page.inner_text("#backend") == "loading…"  # the runtime and model never loaded
    name, got, mode = download(page, tmp_path)
    assert (name, mode) == ("graphic_restored.png", "RGB")
    assert np.array_equal(got, pixels)

    page.click("#restore-anyway")
    wait_for_run(page, 2)
    last = page.evaluate("window.fbcnnLast")
    assert not last["unchanged"] and last["auto"] and last["tiles"] == 1
    assert page.is_hidden("#not-jpeg")
    assert page.evaluate("document.getElementById('strength-box').disabled") is False
    assert page.inner_text("#status").startswith("Restored with QF ")
    name, got, _ = download(page, tmp_path)
    assert name == "graphic_restored.png"
    out = tmp_path / "cli_restored"
    cli("restore", str(png), "-o", str(out), "--not-jpeg", "restore")
    with Image.open(out / "graphic.png") as im:
        want = np.asarray(im).copy()
    PARITY.setdefault("never-JPEG PNG 260x150, restore anyway", {})["auto"] = max_diff(got, want)
    assert max_diff(got, want) <= 1
    assert not np.array_equal(got, pixels)

    # pixels of a decoded JPEG, cropped by (3, 5): JPEG compression at grid offset (5, 3)
    with Image.open(EXAMPLE) as im:
        decoded = np.asarray(im.convert("RGB"))[3:203, 5:305]
    cropped = tmp_path / "cropped.png"
    Image.fromarray(decoded).save(cropped)
    page.set_input_files("#file", str(cropped))
    wait_for_run(page, 3)  # the page counts its runs across files
    last = page.evaluate("window.fbcnnLast")
    assert not last["unchanged"] and last["trace"]["found"] and last["trace"]["offset"] == [5, 3]
    assert page.inner_text("#info-trace") == "found (grid offset 5, 3)"
    assert page.is_hidden("#not-jpeg")
    assert page.inner_text("#status").startswith("Restored with QF ")

    # a PNG-8 whose colours are all grey is a grey image, as the CLI reads it (was: RGB)
    grey = tmp_path / "grey8.png"
    Image.fromarray(pixels[:, :, 0]).convert("P").save(grey)
    cli("restore", str(grey), "-o", str(tmp_path / "cli_grey"))
    with Image.open(tmp_path / "cli_grey" / "grey8.png") as im:
        assert im.mode == "L"
    page.set_input_files("#file", str(grey))
    wait_for_run(page, 4)
    assert page.inner_text("#info-size") == "260 × 150, grey"
    name, got, mode = download(page, tmp_path)
    assert (name, mode) == ("grey8_restored.png", "L") and np.array_equal(got, pixels[:, :, 0])


def test_javascript_ports_match_python(server, page) -> None:
    """jpeg.js (IJG tables, QF from tables), tiles.js (tile plan, QF tiles, ramps) and
    consistency.js (projection, near-lossless shares) against the Python they were ported
    from."""
    from fbcnn.engine.restorer import _ramp, tile_spans
    from fbcnn.jpeg.consistency import JpegTables, project
    from fbcnn.jpeg.qf import QF_WINDOWS_MAX, QF_WINDOWS_MIN, qf_tile_boxes
    from fbcnn.jpeg.tables import _standard_tables, qf_from_tables

    page.goto(f"{server}?ep=wasm")
    load = "Promise.all([import('./jpeg.js'), import('./tiles.js'), import('./consistency.js')])"

    tables = page.evaluate(f"""async () => {{
        const [jpeg] = await {load};
        return Array.from({{length: 100}}, (_, i) => jpeg.standardTables(i + 1));
    }}""")
    assert np.array_equal(np.asarray(tables), _standard_tables().astype(int))

    rng = np.random.default_rng(0)
    cases = [{0: rng.integers(1, 120, 64).tolist(), 1: rng.integers(1, 120, 64).tolist()}
             for _ in range(20)] + [{0: rng.integers(1, 60, 64).tolist()} for _ in range(10)]
    got = page.evaluate(f"""async (cases) => {{
        const [jpeg] = await {load};
        return cases.map((t) => jpeg.qfFromTables(t));
    }}""", [{str(k): v for k, v in c.items()} for c in cases])
    assert got == [qf_from_tables(c) for c in cases]

    sizes = [(210, 390, 160, 16), (300, 700, 128, 16), (300, 700, 512, 8), (4000, 3000, 512, 16),
             (1080, 1920, 512, 8), (64, 64, 0, 8), (513, 512, 512, 8), (1000, 90, 96, 8)]
    plans = page.evaluate(f"""async (sizes) => {{
        const [, tiles] = await {load};
        return sizes.map(([h, w, t, g]) => {{
            const plan = tiles.tilePlan(h, w, t, tiles.DEFAULT_OVERLAP, g);
            return {{plan: plan.map((p) => [p.y, p.x, p.h, p.w]),
                     qf: tiles.qfTileBoxes(h, w, g).map((p) => [p.y, p.x, p.h, p.w]),
                     windows: tiles.qfTileBoxes(h, w, g, 64, tiles.QF_WINDOWS_MIN,
                                                tiles.QF_WINDOWS_MAX)
                         .map((p) => [p.y, p.x, p.h, p.w])}};
        }});
    }}""", sizes)
    for (h, w, tile, grid), got_plan in zip(sizes, plans, strict=True):
        one = not tile or (h <= tile and w <= tile)
        rows = [(0, h)] if one else tile_spans(h, tile, 32, grid)
        cols = [(0, w)] if one else tile_spans(w, tile, 32, grid)
        want = [[y0, x0, y1 - y0, x1 - x0] for y0, y1 in rows for x0, x1 in cols]
        assert got_plan["plan"] == want, (h, w, tile, grid)
        assert got_plan["qf"] == [list(b) for b in qf_tile_boxes(h, w, grid)], (h, w, grid)
        windows = qf_tile_boxes(h, w, grid, 64, QF_WINDOWS_MIN, QF_WINDOWS_MAX)
        assert got_plan["windows"] == [list(b) for b in windows], (h, w, grid)
    ramps = page.evaluate(f"""async () => {{
        const [, tiles] = await {load};
        return [[160, 32, false, false], [17, 32, true, false], [40, 32, false, true]]
            .map(([n, o, a, b]) => Array.from(tiles.ramp(n, o, a, b)));
    }}""")
    for got_ramp, args in zip(ramps, [(160, 32, False, False), (17, 32, True, False),
                                      (40, 32, False, True)], strict=True):
        assert np.array_equal(np.asarray(got_ramp, np.float32), _ramp(*args))

    # JPEG consistency on random data: colour 4:2:0 and 4:2:2, grey, and in strips (> 576 rows)
    for h, w, channels, sampling in ((75, 90, 3, "4:2:0"), (40, 57, 3, "4:2:2"),
                                     (33, 70, 1, None), (600, 24, 3, "4:2:0")):
        decoded = rng.integers(0, 256, (h, w, channels)).astype(np.uint8)
        restored = np.clip(decoded.astype(int) + rng.integers(-40, 41, decoded.shape), 0,
                           255).astype(np.uint8)
        t = JpegTables.standard(20, channels == 3, sampling or "4:2:0")
        want = project(restored, decoded, t)
        got = page.evaluate(f"""async ([r, d, h, w, c, t]) => {{
            const [, , consistency] = await {load};
            return Array.from(consistency.project(Uint8Array.from(r), Uint8Array.from(d),
                                                  h, w, c, t));
        }}""", [restored.ravel().tolist(), decoded.ravel().tolist(), h, w, channels,
                {"luma": list(t.luma), "chroma": list(t.chroma) if t.chroma else None,
                 "subsampling": t.subsampling}])
        got = np.asarray(got, np.uint8).reshape(want.shape)
        assert max_diff(got, want) <= 1, (h, w, channels, sampling)
        assert (got != want).mean() < 0.001, (h, w, channels, sampling)

    # near-lossless JPEGs: the quality that decides, the shares kept, the change kept
    from fbcnn.jpeg import nearlossless

    qualities = [(93.6, 95), (80.0, 95), (96.5, None), (99.0, 100)]
    quality_cases = [q for q in np.arange(85.0, 101.0, 0.75)]
    got = page.evaluate(f"""async ([pairs, qs]) => {{
        const [, , consistency] = await {load};
        return [pairs.map(([p, t]) => consistency.nearLosslessQuality(p, t)),
                qs.map((q) => consistency.strengths(q, false)),
                qs.map((q) => consistency.strengths(q, true))];
    }}""", [qualities, quality_cases])
    assert got[0] == [nearlossless.quality(p, t) for p, t in qualities]
    assert np.allclose(got[1], [nearlossless.strengths(q) for q in quality_cases])
    assert np.allclose(got[2], [nearlossless.strengths(q, True) for q in quality_cases])
    for h, w, channels, shares in ((30, 41, 3, (0.0, 0.25)), (20, 33, 3, (0.5, 0.625)),
                                   (25, 17, 1, (0.3, 1.0))):
        decoded = rng.integers(0, 256, (h, w, channels)).astype(np.uint8)
        restored = np.clip(decoded.astype(int) + rng.integers(-30, 31, decoded.shape), 0,
                           255).astype(np.uint8)
        want = nearlossless.keep_share(restored, decoded, *shares)
        got = page.evaluate(f"""async ([r, d, h, w, c, l, ch]) => {{
            const [, , consistency] = await {load};
            return Array.from(consistency.keepShare(Uint8Array.from(r), Uint8Array.from(d),
                                                    h, w, c, l, ch));
        }}""", [restored.ravel().tolist(), decoded.ravel().tolist(), h, w, channels, *shares])
        got = np.asarray(got, np.uint8).reshape(want.shape)
        assert max_diff(got, want) <= 1, (h, w, channels, shares)


def test_screenshot(server, page, tmp_path) -> None:
    """FBCNN_SCREENSHOT=1: the page with the example restored, to docs/images/web.png."""
    if os.environ.get("FBCNN_SCREENSHOT", "") in ("", "0"):
        pytest.skip("FBCNN_SCREENSHOT is not set")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(f"{server}?ep=wasm")
    page.set_input_files("#file", str(EXAMPLE))
    wait_for_run(page, 1)
    page.click("#zoom-in")
    page.mouse.move(0, 0)
    raw = page.screenshot(full_page=True)
    with Image.open(io.BytesIO(raw)) as im:
        small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=0)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    small.save(SCREENSHOT, optimize=True)
    assert SCREENSHOT.stat().st_size < 400_000
