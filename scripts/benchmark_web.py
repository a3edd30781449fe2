#!/usr/bin/env python
"""Speed of the in-browser page (`fbcnn web build`) in headless Chromium on WASM, beside the
CLI's engine on the same image, and the site's download size.

For each size, a JPEG of `fbcnn.evaluation.benchmark.sample_image` (gradients and noise, QF 30) is
opened in the page (one automatic restore: the warm-up, which also reads the QF), then
restored `--repeats` times at QF 30 (the strength slider), interleaved with the CLI's
`Restorer.restore(qf=30)` (torch, the same tiles; its per-call QF prediction is skipped, as
the page caches it) and the same ONNX graph in onnxruntime's native CPU build. Times are the
network and blending only (no JPEG consistency, no decoding); MP/s = image megapixels per
second. Medians are reported.

    python scripts/benchmark_web.py                       # prints the markdown section
    python scripts/benchmark_web.py --write               # and updates docs/benchmarks.md
    python scripts/benchmark_web.py --sizes 256 --repeats 1 --site /tmp/site

`--first-visit` measures instead what a visitor waits for (issue #27): a photo-like JPEG
(a Kodak photo, upscaled 2x and cropped to `--side` squared, QF `--qf`, 4:2:0), and in each
of `--rounds` rounds a fresh browser context (empty cache: the runtime and the model are
downloaded again) opens the page, is given the file and restores it automatically; the wall
time from opening the page to the result is paired with one run of the knusperli deblocking
decoder (`../shared/tools/knusperli IN.jpg OUT.png`, our speed yardstick) on the same JPEG,
interleaved. Prints every round, the page's own phase times, and the median ratio.

    python scripts/benchmark_web.py --first-visit                      # 1024x1024, 5 rounds
    python scripts/benchmark_web.py --first-visit --side 1024 --rounds 5 --site /tmp/site
    python scripts/benchmark_web.py --first-visit --site /tmp/before --site /tmp/after
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fbcnn.engine.restorer import Restorer  # noqa: E402
from fbcnn.evaluation.benchmark import cpu_model, sample_image  # noqa: E402
from fbcnn.frontends.web.build import RUNTIME_FILES, build_site  # noqa: E402
from fbcnn.frontends.web.serve import make_server  # noqa: E402
from fbcnn.jpeg.tables import encode  # noqa: E402
from fbcnn.networks.checkpoints import load_network, resolve_model  # noqa: E402

SECTION = "## In the browser"
BACKEND_NAMES = {"wasm": "WASM", "webgpu": "WebGPU"}
QF = 30
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    found = os.environ.get("FBCNN_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    if not found:
        sys.exit("error: chromium not found (scripts/install_browser.sh installs it)")
    return found


def chromium_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=6))


def download_sizes(site: Path) -> dict[str, dict[str, int]]:
    """Bytes (raw and gzip -6, as most static hosts send them) of the folder and a visit."""
    files = {p.relative_to(site).as_posix(): p for p in site.rglob("*") if p.is_file()}
    page = [name for name in files if "/" not in name]

    def total(names: list[str]) -> dict[str, int]:
        return {"raw": sum(files[n].stat().st_size for n in names),
                "gzip": sum(gzip_size(files[n]) for n in names)}

    visits = {}
    for backend in ("wasm", "webgpu"):
        runtime = [f"ort/{n}" for n in RUNTIME_FILES[backend] if f"ort/{n}" in files]
        if runtime:
            visits[f"{backend} + color model"] = total(page + runtime + ["models/color.onnx"])
    return {"folder": total(list(files)), **visits}


def timed_torch(restorer: Restorer, pixels: np.ndarray, grid: int) -> float:
    start = time.perf_counter()
    restorer.restore(pixels, qf=QF, grid=grid)
    return time.perf_counter() - start


def wait_for_run(page: object, runs: int) -> None:
    """Until the page has finished `runs` restores (exits with the page's error if any)."""
    page.wait_for_function(  # type: ignore[attr-defined]
        f"document.body.dataset.runs === '{runs}' || document.body.dataset.state === 'error'")
    if page.evaluate("document.body.dataset.state") == "error":  # type: ignore[attr-defined]
        sys.exit(f"error: the page says: {page.inner_text('#error')}")  # type: ignore[attr-defined]


KNUSPERLI = ROOT.parent / "shared" / "tools" / "knusperli"
KODAK = ROOT.parent / "shared" / "datasets" / "val" / "color" / "kodak24"


def first_visit_jpeg(path: Path, side: int, qf: int, photo: str = "kodim05.png") -> None:
    """A photo-like JPEG: a Kodak photo upscaled 2x (Lanczos) and cropped to side x side at
    its centre (a random photo-like image where the photo is missing), Pillow QF `qf`, 4:2:0."""
    from PIL import Image

    source = KODAK / photo
    if source.is_file():
        with Image.open(source) as im:
            big = im.convert("RGB").resize((im.width * 2, im.height * 2), Image.LANCZOS)
        while big.width < side or big.height < side:
            big = big.resize((big.width * 2, big.height * 2), Image.LANCZOS)
        left, top = (big.width - side) // 2, (big.height - side) // 2
        image = big.crop((left, top, left + side, top + side))
    else:
        print(f"note: {source} missing, using fbcnn.benchmark.sample_image", file=sys.stderr)
        image = Image.fromarray(sample_image(side, side, 3))
    image.save(path, quality=qf, subsampling=2)


def timed_knusperli(jpeg: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(KNUSPERLI), str(jpeg), str(out)], check=True, capture_output=True)
    return time.perf_counter() - start


def sites_or_build(given: list[Path] | None, tmp: Path) -> list[Path]:
    """The `--site` folders given, else one site built into `tmp`."""
    sites = list(given or [])
    if not sites:
        sites = [tmp / "site"]
        print("building the site…", file=sys.stderr)
        build_site(sites[0])
    return sites


def start_server(site: Path) -> tuple[Any, int]:
    """A quiet server for `site` on a free port, serving from a daemon thread, and its port."""
    server = make_server(site, port=0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def stop_server(server: Any) -> None:
    server.shutdown()
    server.server_close()


def launch_browser(playwright: Any, executable_path: str) -> Any:
    return playwright.chromium.launch(
        executable_path=executable_path, headless=True, args=CHROMIUM_ARGS)


def visit_once(browser: Any, url: str, jpeg: Path, site: Path) -> tuple[float, str, str]:
    """One first visit in a fresh context: the seconds from opening `url` to the restored
    `jpeg`, a line about the run (tiles, QF, the worker's phases) and the page's backend."""
    context = browser.new_context()  # empty cache, nothing compiled
    page = context.new_page()
    page.set_default_timeout(1_800_000)
    start = time.perf_counter()
    page.goto(url)
    page.set_input_files("#file", str(jpeg))
    wait_for_run(page, 1)
    page_s = time.perf_counter() - start
    last = page.evaluate("window.fbcnnLast")
    backend = page.inner_text("#backend")
    context.close()
    phases = " ".join(f"{k} {v:.2f}" for k, v in (last.get("phases") or {}).items())
    text = (f"{site}: {last['tiles']} tiles, QF {last['predictedQf']:.2f}; "
            f"worker s: {phases}")
    return page_s, text, backend


def first_visit_round(browser: Any, urls: list[str], sites: list[Path], jpeg: Path,
                      tmp: Path, round_: int) -> tuple[list[float], float]:
    """One round: every site's first visit in turn, then one knusperli run (printed).
    Returns each site's page seconds and knusperli's."""
    line = []
    backend = ""
    for site, url in zip(sites, urls, strict=True):
        page_s, text, backend = visit_once(browser, url, jpeg, site)
        line.append((page_s, text))
    knusperli_s = timed_knusperli(jpeg, tmp / "out.png")
    label = f"round {round_}" if round_ else "warm-up"
    print(f"{label}: knusperli {knusperli_s:.3f} s; {backend}", flush=True)
    for page_s, text in line:
        print(f"  page {page_s:.2f} s = {page_s / knusperli_s:.1f}x ({text})", flush=True)
    return [page_s for page_s, _ in line], knusperli_s


def print_first_visit_summary(args: argparse.Namespace, query: str, sites: list[Path],
                              times: dict[int, list[float]], yardstick: list[float]) -> None:
    print(f"{args.side}x{args.side} JPEG (QF {args.qf}), ?{query}, {args.rounds} rounds; "
          f"knusperli median {statistics.median(yardstick):.3f} s; load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    for i, site in enumerate(sites):
        ratios = [t / k for t, k in zip(times[i], yardstick, strict=True)]
        print(f"{site}: page median {statistics.median(times[i]):.2f} s, median ratio "
              f"{statistics.median(ratios):.1f}x (rounds: "
              f"{', '.join(f'{x:.1f}' for x in ratios)})")


def first_visit(args: argparse.Namespace) -> int:
    """The --first-visit measurement (see the module doc). More than one `--site` (say, a
    build before a change and one after): each round opens every site in turn, then runs
    knusperli once, and each site's ratio is to that run."""
    if not KNUSPERLI.is_file():
        sys.exit(f"error: {KNUSPERLI} not found (the yardstick)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sites = sites_or_build(args.site, tmp)
        jpeg = tmp / f"photo_{args.side}.jpg"
        first_visit_jpeg(jpeg, args.side, args.qf)
        query = "&".join(part for part in ("ep=wasm", args.query) if part)
        servers = [start_server(site) for site in sites]
        urls = [f"http://127.0.0.1:{port}/?{query}" for _, port in servers]
        timed_knusperli(jpeg, tmp / "warm.png")  # the binary in the page cache
        times: dict[int, list[float]] = {i: [] for i in range(len(sites))}
        yardstick: list[float] = []
        with sync_playwright() as p:
            browser = launch_browser(p, chromium())
            for round_ in range(args.rounds + 1):  # round 0 warms the browser process up
                page_times, knusperli_s = first_visit_round(browser, urls, sites, jpeg, tmp,
                                                            round_)
                if round_ > 0:
                    for i, page_s in enumerate(page_times):
                        times[i].append(page_s)
                    yardstick.append(knusperli_s)
            browser.close()
        for server, _ in servers:
            stop_server(server)
    print_first_visit_summary(args, query, sites, times, yardstick)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512,1024", help="square image sides")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--site", type=Path, action="append", default=None,
                        help="an existing build (default: build one in a temporary folder); "
                             "--first-visit takes several (A/B, interleaved)")
    parser.add_argument("--note", default="", help="a sentence about the machine's load")
    parser.add_argument("--write", action="store_true",
                        help="replace the section in docs/benchmarks.md (and benchmarks_web.json)")
    parser.add_argument("--first-visit", action="store_true",
                        help="time a first visit (empty cache) restoring a photo JPEG, "
                             "paired with knusperli (see the module doc)")
    parser.add_argument("--side", type=int, default=1024, help="--first-visit: image side")
    parser.add_argument("--qf", type=int, default=25, help="--first-visit: the JPEG's QF")
    parser.add_argument("--rounds", type=int, default=5, help="--first-visit: rounds")
    parser.add_argument("--query", default="",
                        help="--first-visit: more URL options for the page (e.g. tile=512)")
    return parser.parse_args(argv)


def torch_restorer(tile: int) -> Restorer:
    """The CLI's engine on the `color` model, its per-call QF prediction skipped (QF 30)."""
    network = load_network(resolve_model("color")).network
    restorer = Restorer.of(network, device="cpu", tile=tile)
    restorer.predict_qf = lambda *a, **k: float(QF)  # type: ignore[method-assign]
    return restorer


def onnx_restorer_for(site: Path, tile: int) -> Restorer | None:
    """The site's ONNX graph in onnxruntime's native CPU build, or None where unavailable."""
    try:
        from fbcnn.networks.onnx_runtime import OnnxFBCNN

        onnx_restorer: Restorer | None = Restorer.of(
            OnnxFBCNN(site / "models" / "color.onnx", device="cpu"), tile=tile)
        onnx_restorer.predict_qf = lambda *a, **k: float(QF)  # type: ignore[method-assign,union-attr]
    except Exception as e:  # noqa: BLE001 - optional column
        print(f"note: no native onnxruntime column ({e})", file=sys.stderr)
        onnx_restorer = None
    return onnx_restorer


def bench_jpeg(tmp: Path, side: int) -> tuple[Path, np.ndarray]:
    """The benchmark JPEG for `side` (written into `tmp`) and its decoded pixels."""
    from PIL import Image

    pixels = sample_image(side, side, 3)
    path = tmp / f"bench_{side}.jpg"
    path.write_bytes(encode(pixels, QF))
    with Image.open(path) as im:
        decoded = np.asarray(im.convert("RGB"))
    return path, decoded


def restore_in_page_at_qf(page: Any, runs: int) -> float:
    """A restore at QF 30 in the page (as typing it in the box); the network's seconds."""
    page.evaluate("""(qf) => {  // as typing QF in the box: a restore at QF
        const box = document.getElementById('strength-number');
        box.value = String(qf);
        box.dispatchEvent(new Event('change'));
    }""", QF)
    wait_for_run(page, runs)
    return page.evaluate("window.fbcnnLast.networkSeconds")


def bench_side(page: Any, side: int, tmp: Path, restorer: Restorer,
               onnx_restorer: Restorer | None, repeats: int) -> tuple[dict, str]:
    """One image size: opened in the page, then `repeats` interleaved restores in the page,
    with torch and with native onnxruntime. Returns the row and the page's backend."""
    path, decoded = bench_jpeg(tmp, side)
    grid = 16
    runs = int(page.evaluate("document.body.dataset.runs")) + 1  # counts every run
    print(f"{side}x{side}: opening in the page", file=sys.stderr)
    page.set_input_files("#file", str(path))
    wait_for_run(page, runs)
    backend = page.inner_text("#backend")
    timed_torch(restorer, decoded, grid)  # warm-up
    if onnx_restorer is not None:
        timed_torch(onnx_restorer, decoded, grid)
    web, cli, native = [], [], []
    for _ in range(repeats):
        runs += 1
        web.append(restore_in_page_at_qf(page, runs))
        cli.append(timed_torch(restorer, decoded, grid))
        if onnx_restorer is not None:
            native.append(timed_torch(onnx_restorer, decoded, grid))
    tiles = page.evaluate("window.fbcnnLast.tiles")
    row = {"side": side, "tiles": tiles, "browser_s": web, "torch_s": cli,
           "onnxruntime_s": native}
    mp = side * side / 1e6
    print(f"{side}x{side}: browser {mp / statistics.median(web):.3f} MP/s, "
          f"torch {mp / statistics.median(cli):.3f} MP/s", file=sys.stderr)
    return row, backend


def machine_line(threads: int, browser_path: str) -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"{cpu_model()}, {threads} CPUs (load average at the end {load}: shared with "
            f"other jobs); {chromium_version(browser_path)} headless "
            f"(--disable-gpu, so WASM); torch {torch.__version__} with {threads} threads; "
            f"Python {platform.python_version()}")


def speed_table(rows: list[dict]) -> list[str]:
    lines = ["| image | tiles | browser, WASM (s) | browser MP/s | torch CLI (s) | torch MP/s "
             "| onnxruntime native (s) | native MP/s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        mp = row["side"] ** 2 / 1e6
        web_s, cli_s = statistics.median(row["browser_s"]), statistics.median(row["torch_s"])
        native = (f"{statistics.median(row['onnxruntime_s']):.2f} | "
                  f"{mp / statistics.median(row['onnxruntime_s']):.3f}"
                  if row["onnxruntime_s"] else "– | –")
        lines.append(f"| {row['side']}x{row['side']} | {row['tiles']} | {web_s:.2f} | "
                     f"{mp / web_s:.3f} | {cli_s:.2f} | {mp / cli_s:.3f} | {native} |")
    return lines


def size_table(sizes: dict[str, dict[str, int]]) -> list[str]:
    mb = 1e6
    lines = ["", "Download size (what `fbcnn web build` writes; gzip -6 is what a static host "
             "that compresses sends):", "",
             "| what | MB | MB gzipped |", "| --- | ---: | ---: |"]
    for name, size in sizes.items():
        label = "the whole folder (both models, both runtimes)" if name == "folder" else (
            f"a visit: page, {BACKEND_NAMES[name.split(' + ')[0]]} runtime, one model")
        lines.append(f"| {label} | {size['raw'] / mb:.1f} | {size['gzip'] / mb:.1f} |")
    return lines


def markdown_section(args: argparse.Namespace, command: str, machine: str, backend: str,
                     threads: int, rows: list[dict],
                     sizes: dict[str, dict[str, int]]) -> str:
    lines = [SECTION, "",
             f"Generated by `{command}` on {time.strftime('%Y-%m-%d')}; raw numbers in "
             "`benchmarks_web.json`.", "",
             "The page built by `fbcnn web build` (the `color` model, exported to ONNX), in "
             "headless Chromium on WASM, beside the CLI's engine (`Restorer`, torch) and the "
             "same ONNX graph in onnxruntime's native CPU build, on the same JPEG "
             f"(gradients and noise, QF 30), tiles of {args.tile} px. Each restore is at QF 30 "
             "with the prediction already made (the page keeps it; the CLI's per-call "
             "prediction is skipped here), timing the network passes and the blending only. "
             f"Median of {args.repeats} runs after a warm-up, interleaved.", "",
             f"Machine: {machine}. Page: {backend}", ""]
    if os.getloadavg()[0] > threads:
        lines += [f"The machine was shared while this ran (load average above its {threads} "
                  "CPUs): every figure is lower and noisier than on an idle machine (compare "
                  "with the torch table above), so compare the columns with each other: they "
                  "were measured together, interleaved.", ""]
    if args.note:
        lines += [args.note, ""]
    lines += speed_table(rows) + size_table(sizes)
    return "\n".join(lines) + "\n"


def write_docs(section: str, record: dict) -> None:
    """Replaces the section in docs/benchmarks.md and writes docs/benchmarks_web.json."""
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text()
    head = text.split(SECTION)[0].rstrip("\n") + "\n\n"
    doc.write_text(head + section)
    (ROOT / "docs" / "benchmarks_web.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {doc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.first_visit:
        return first_visit(args)
    sides = [int(s) for s in args.sizes.split(",") if s.strip()]
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        site = sites_or_build(args.site, tmp)[0]
        sizes = download_sizes(site)
        restorer = torch_restorer(args.tile)
        onnx_restorer = onnx_restorer_for(site, args.tile)

        server, port = start_server(site)
        url = f"http://127.0.0.1:{port}/?ep=wasm&tile={args.tile}"
        from playwright.sync_api import sync_playwright

        rows = []
        browser_path = chromium()
        with sync_playwright() as p:
            browser = launch_browser(p, browser_path)
            page = browser.new_page()
            page.set_default_timeout(1_800_000)
            page.goto(url)
            backend = ""
            for side in sides:
                row, backend = bench_side(page, side, tmp, restorer, onnx_restorer,
                                          args.repeats)
                rows.append(row)
            browser.close()
        stop_server(server)

    command = "python scripts/benchmark_web.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    machine = machine_line(threads, browser_path)
    section = markdown_section(args, command, machine, backend, threads, rows, sizes)
    print(section)
    if args.write:
        write_docs(section, {"command": command, "machine": machine, "page": backend,
                             "tile": args.tile, "qf": QF, "rows": rows,
                             "download_bytes": sizes})
    return 0


if __name__ == "__main__":
    sys.exit(main())
