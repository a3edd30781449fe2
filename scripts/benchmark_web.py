#!/usr/bin/env python
"""Speed of the in-browser page (`fbcnn web build`) in headless Chromium on WASM, beside the
CLI's engine on the same image, and the site's download size.

For each size, a JPEG of `fbcnn.benchmark.sample_image` (gradients and noise, QF 30) is
opened in the page (one automatic restore: the warm-up, which also reads the QF), then
restored `--repeats` times at QF 30 (the strength slider), interleaved with the CLI's
`Restorer.restore(qf=30)` (torch, the same tiles; its per-call QF prediction is skipped, as
the page caches it) and the same ONNX graph in onnxruntime's native CPU build. Times are the
network and blending only (no JPEG consistency, no decoding); MP/s = image megapixels per
second. Medians are reported.

    python scripts/benchmark_web.py                       # prints the markdown section
    python scripts/benchmark_web.py --write               # and updates docs/benchmarks.md
    python scripts/benchmark_web.py --sizes 256 --repeats 1 --site /tmp/site
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fbcnn.benchmark import cpu_model, sample_image  # noqa: E402
from fbcnn.checkpoints import load_network, resolve_model  # noqa: E402
from fbcnn.jpeg import encode  # noqa: E402
from fbcnn.restore import Restorer  # noqa: E402
from fbcnn.web.build import RUNTIME_FILES, build_site  # noqa: E402
from fbcnn.web.serve import make_server  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512,1024", help="square image sides")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--site", type=Path, default=None,
                        help="an existing build (default: build one in a temporary folder)")
    parser.add_argument("--note", default="", help="a sentence about the machine's load")
    parser.add_argument("--write", action="store_true",
                        help="replace the section in docs/benchmarks.md (and benchmarks_web.json)")
    args = parser.parse_args(argv)
    sides = [int(s) for s in args.sizes.split(",") if s.strip()]
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        site = args.site
        if site is None:
            site = tmp / "site"
            print("building the site…", file=sys.stderr)
            build_site(site)
        sizes = download_sizes(site)
        network = load_network(resolve_model("color")).network
        restorer = Restorer(network, device="cpu", tile=args.tile)
        restorer.predict_qf = lambda *a, **k: float(QF)  # type: ignore[method-assign]
        try:
            from fbcnn.onnx_backend import OnnxFBCNN

            onnx_restorer: Restorer | None = Restorer(
                OnnxFBCNN(site / "models" / "color.onnx", device="cpu"),  # type: ignore[arg-type]
                device="cpu", tile=args.tile)
            onnx_restorer.predict_qf = lambda *a, **k: float(QF)  # type: ignore[method-assign,union-attr]
        except Exception as e:  # noqa: BLE001 - optional column
            print(f"note: no native onnxruntime column ({e})", file=sys.stderr)
            onnx_restorer = None

        server = make_server(site, port=0, quiet=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/?ep=wasm&tile={args.tile}"
        from playwright.sync_api import sync_playwright

        rows = []
        browser_path = chromium()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, headless=True,
                                        args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(1_800_000)
            page.goto(url)
            backend = ""
            for side in sides:
                pixels = sample_image(side, side, 3)
                path = tmp / f"bench_{side}.jpg"
                path.write_bytes(encode(pixels, QF))
                from PIL import Image

                with Image.open(path) as im:
                    decoded = np.asarray(im.convert("RGB"))
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
                for _ in range(args.repeats):
                    page.evaluate("""(qf) => {  // as typing QF in the box: a restore at QF
                        const box = document.getElementById('strength-number');
                        box.value = String(qf);
                        box.dispatchEvent(new Event('change'));
                    }""", QF)
                    runs += 1
                    wait_for_run(page, runs)
                    web.append(page.evaluate("window.fbcnnLast.networkSeconds"))
                    cli.append(timed_torch(restorer, decoded, grid))
                    if onnx_restorer is not None:
                        native.append(timed_torch(onnx_restorer, decoded, grid))
                tiles = page.evaluate("window.fbcnnLast.tiles")
                row = {"side": side, "tiles": tiles, "browser_s": web, "torch_s": cli,
                       "onnxruntime_s": native}
                rows.append(row)
                mp = side * side / 1e6
                print(f"{side}x{side}: browser {mp / statistics.median(web):.3f} MP/s, "
                      f"torch {mp / statistics.median(cli):.3f} MP/s", file=sys.stderr)
            browser.close()
        server.shutdown()
        server.server_close()

    command = "python scripts/benchmark_web.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    machine = (f"{cpu_model()}, {threads} CPUs (load average at the end {load}: shared with "
               f"other jobs); {chromium_version(browser_path)} headless "
               f"(--disable-gpu, so WASM); torch {torch.__version__} with {threads} threads; "
               f"Python {platform.python_version()}")
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
    lines += ["| image | tiles | browser, WASM (s) | browser MP/s | torch CLI (s) | torch MP/s "
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
    mb = 1e6
    lines += ["", "Download size (what `fbcnn web build` writes; gzip -6 is what a static host "
              "that compresses sends):", "",
              "| what | MB | MB gzipped |", "| --- | ---: | ---: |"]
    for name, size in sizes.items():
        label = "the whole folder (both models, both runtimes)" if name == "folder" else (
            f"a visit: page, {BACKEND_NAMES[name.split(' + ')[0]]} runtime, one model")
        lines.append(f"| {label} | {size['raw'] / mb:.1f} | {size['gzip'] / mb:.1f} |")
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write:
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text()
        head = text.split(SECTION)[0].rstrip("\n") + "\n\n"
        doc.write_text(head + section)
        (ROOT / "docs" / "benchmarks_web.json").write_text(json.dumps(
            {"command": command, "machine": machine, "page": backend, "tile": args.tile,
             "qf": QF, "rows": rows, "download_bytes": sizes}, indent=1) + "\n")
        print(f"wrote {doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
