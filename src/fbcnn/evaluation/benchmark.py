"""Speed and memory of restoration: megapixels per second and peak memory, per model, image
size and tiling, with the machine they were measured on.

Each measurement restores a fixed test image (a gradient with noise, JPEG-compressed at QF
30) through `Restorer` exactly as `fbcnn restore` does: one warm-up run, then `repeats`
timed runs; the time reported is their median.

Peak memory is the extra memory the restoration needs on top of the loaded model and the
input (activations, workspaces, tiles, outputs):

* CPU: every measurement runs in a fresh Python process (`isolate=True`, the default), so
  memory freed by an earlier, bigger run and kept by the allocator cannot hide a peak, and
  nothing from the parent process counts. In that process the model is loaded, the input
  made, then the resident-set high-water mark is reset (Linux: writing 5 to
  /proc/self/clear_refs) and the peak is VmHWM after the runs minus VmRSS before them. Where
  the reset is not available (macOS, old kernels) the fallback is the process' ru_maxrss
  before and after, which is still right in a fresh process unless loading the model peaked
  higher than the restoration. `memory_method` in the result says which was used.
* CUDA: `torch.cuda.max_memory_allocated()` after `reset_peak_memory_stats()`, minus the
  memory allocated before the runs (tensors only; the caching allocator's reserve is not
  counted).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..engine.finish import finish
from ..engine.restorer import DEFAULT_TILE, Restorer
from ..jpeg.tables import grid_multiple
from ..networks.modelfiles import NAMED_MODELS, named_model_path
from ..networks.network import FBCNN, FBCNNConfig

DEFAULT_SIZES = ((256, 256), (512, 512), (1024, 1024))
TEST_IMAGE_QF = 30
MIB = 1024 * 1024


def published_architecture(channels: int = 3) -> FBCNN:
    """The published FBCNN layout (about 72 M parameters) with random weights: timings do
    not depend on the weights."""
    return FBCNN(FBCNNConfig(in_channels=channels, out_channels=channels)).eval()


def parameter_count(network: FBCNN) -> int:
    return sum(p.numel() for p in network.parameters())


def sample_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 test image: smooth gradients plus noise, JPEG-compressed at
    QF 30 (4:2:0 for colour), like a real compressed photo for the network's cost."""
    from ..jpeg.tables import compress

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = 128 + 60 * np.sin(xx / 37.0 + yy / 91.0) + 45 * np.cos(yy / 23.0)
    phases = np.arange(channels, dtype=np.float64)[None, None, :]
    image = base[:, :, None] + 20 * np.sin(xx[:, :, None] / 11.0 + phases)
    image += rng.normal(0, 12, (height, width, channels))
    return compress(np.clip(np.round(image), 0, 255).astype(np.uint8), TEST_IMAGE_QF)


# -------------------------------------------------------------------------- machine info


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: ")):
                    name = line.split(":", 1)[1].strip()
                    if name and not name.isdigit():
                        return name
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(device: str = "cpu", threads: int | None = None) -> dict:
    """Versions and hardware: torch, numpy, Python, OS, CPU model and count, device name,
    torch threads."""
    info = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "device_name": cpu_model(),
        "threads": threads if threads else torch.get_num_threads(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info


# ---------------------------------------------------------------------------- measuring


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _maxrss_bytes() -> int:
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024  # bytes on macOS, KiB on Linux


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def measure(network: FBCNN, height: int, width: int, *, device: str = "cpu",
            threads: int | None = None, repeats: int = 3, tile: int | None = None,
            precision: str = "fp32") -> dict:
    """Time and memory of restoring one test image in this process (see the module doc;
    `run_benchmark` calls this in a fresh process for each measurement)."""
    if threads:
        torch.set_num_threads(threads)
    channels = network.config.in_channels
    restorer = Restorer.of(network, device=device, tile=tile or 0, precision=precision)
    grid = grid_multiple("4:2:0" if channels == 3 else None, channels)
    pixels = sample_image(height, width, channels)
    tiles = restorer.tile_count(height, width, grid)
    cuda = restorer.info.device.startswith("cuda")
    gc.collect()

    if cuda:
        torch.cuda.synchronize(restorer.info.device)
        torch.cuda.reset_peak_memory_stats(restorer.info.device)
        before = torch.cuda.memory_allocated(restorer.info.device)
        method = "cuda max_memory_allocated"
    elif _reset_peak_rss():
        before = (_status_kib("VmRSS") or 0) * 1024
        method = "VmHWM after a reset"
    else:
        before = _maxrss_bytes()
        method = "ru_maxrss"

    out = restorer.restore(pixels, grid=grid)  # warm-up
    finish(out.pixels, pixels, None, out.predicted_qf)
    seconds = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = restorer.restore(pixels, grid=grid)
        finish(out.pixels, pixels, None, out.predicted_qf)
        seconds.append(time.perf_counter() - start)

    if cuda:
        peak = torch.cuda.max_memory_allocated(restorer.info.device)
    elif method.startswith("VmHWM"):
        peak = (_status_kib("VmHWM") or 0) * 1024
    else:
        peak = _maxrss_bytes()
    median = statistics.median(seconds)
    return {
        "height": height,
        "width": width,
        "tile": tile or None,
        "tiles": tiles,
        "seconds": median,
        "runs": seconds,
        "megapixels_per_s": height * width / 1e6 / median,
        "peak_memory_mib": max(0, peak - before) / MIB,
        "memory_method": method,
        "threads": torch.get_num_threads(),
        "device": restorer.info.device,
        "precision": restorer.info.precision,
        "backend": restorer.info.runtime,
        "predicted_qf": out.predicted_qf,
    }


def _worker() -> None:
    """Entry point of the measuring subprocess: a JSON job on stdin, a JSON line out."""
    job = json.loads(sys.stdin.read())
    from ..networks.checkpoints import load_network

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    network = load_network(job["weights"]).network
    if job.get("backend") in ("onnx", "openvino"):  # the graph `fbcnn restore` runs
        from ..engine.model import _graph_of

        network = _graph_of(Path(job["weights"]), job["backend"],  # type: ignore[assignment]
                            job.get("precision", "auto"))
        network.set_threads(int(job.get("threads") or 0))
    result = measure(network, job["height"], job["width"], device=job["device"],
                     threads=job.get("threads"), repeats=job["repeats"], tile=job["tile"],
                     precision=job.get("precision", "fp32"))
    print(json.dumps(result))


def _measure_isolated(weights: Path, height: int, width: int, device: str,
                      threads: int | None, repeats: int, tile: int | None,
                      precision: str = "fp32", backend: str = "torch") -> dict:
    job = {"weights": str(weights), "height": height, "width": width, "device": device,
           "threads": threads, "repeats": repeats, "tile": tile, "precision": precision,
           "backend": backend}
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    worker = "from fbcnn.evaluation.benchmark import _worker; _worker()"
    done = subprocess.run([sys.executable, "-c", worker],
                          input=json.dumps(job), capture_output=True, text=True, env=env,
                          check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"benchmark run {height}x{width} tile={tile} failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _one(network: FBCNN, name: str, weights: Path, height: int, width: int, device: str,
         threads: int | None, repeats: int, mode: int | None, precision: str, isolate: bool,
         progress: bool, backend: str = "torch") -> dict:
    if progress:
        print(f"benchmark {name} {width}x{height} {'tile ' + str(mode) if mode else 'untiled'} "
              f"{precision} {backend}", file=sys.stderr, flush=True)
    if isolate or backend != "torch":
        if not weights.is_file():
            from ..networks.checkpoints import save_network

            save_network(network, weights)
        row = _measure_isolated(weights, height, width, device, threads, repeats, mode,
                                precision, backend)
    else:
        row = measure(network, height, width, device=device, threads=threads, repeats=repeats,
                      tile=mode, precision=precision)
    row.update(model=name, parameters=parameter_count(network),
               channels=network.config.in_channels,
               weights_mib=parameter_count(network) * 4 / MIB)
    return row


def _runs(name: str, precisions: Sequence[str], backends: Sequence[str],
          openvino_precisions: Sequence[str]) -> list[tuple[str, str]]:
    """The (precision, backend) pairs `run_benchmark` measures the model `name` in: the
    published-size architecture in torch fp32 only (as released), int8 for shipped models
    only."""
    runs = [(p, "torch") for p in (("fp32",) if "published" in name else precisions)] \
        if "torch" in backends else []
    if "onnx" in backends and "published" not in name:
        runs.append(("fp32", "onnx"))
    if "openvino" in backends and "published" not in name:
        runs += [(p, "openvino") for p in openvino_precisions
                 if p != "int8" or name in NAMED_MODELS]
    return runs


def run_benchmark(models: Sequence[tuple[str, FBCNN]],
                  sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES, device: str = "cpu",
                  threads: int | None = None, repeats: int = 3, tile: int | None = None,
                  *, isolate: bool = True, progress: bool = False,
                  precisions: Sequence[str] = ("fp32",),
                  backends: Sequence[str] = ("torch",),
                  openvino_precisions: Sequence[str] = ("auto", "int8")) -> dict:
    """Megapixels/s and peak memory of each (name, network) at each (height, width) size,
    untiled and, for sizes with a side longer than the tile, tiled.

    `tile`: tile side of the tiled runs (None: the restorer's default 512; 0: untiled only).
    `threads`: torch CPU threads (None: torch's default). `isolate`: one fresh process per
    measurement (see the module doc for why); False measures in this process (quicker,
    memory less reliable). `precisions`: each model is measured in each ('fp32', 'bf16',
    'auto'); a model named with "published" is measured in fp32 only (as released).
    `backends`: 'torch', 'onnx' (the model's graph in onnxruntime, fp32) and / or
    'openvino' (the graph in OpenVINO, what `fbcnn restore` runs on the CPU, in each of
    `openvino_precisions`; int8 for shipped models only); graph runtimes always run in a
    fresh process.
    """
    tile_side = DEFAULT_TILE if tile is None else int(tile)
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("CUDA is not available on this machine")
    results = []
    with tempfile.TemporaryDirectory(prefix="fbcnn-bench-") as tmp:
        for index, (name, network) in enumerate(models):
            weights = Path(tmp, f"model{index}.safetensors")
            if name in NAMED_MODELS:  # the shipped file: its graphs (and int8 graph) beside it
                weights = named_model_path(name)
            elif isolate:
                from ..networks.checkpoints import save_network

                save_network(network, weights)
            for height, width in sizes:
                modes: list[int | None] = [None]
                if tile_side and max(height, width) > tile_side:
                    modes.append(tile_side)
                for mode in modes:
                    runs = _runs(name, precisions, backends, openvino_precisions)
                    for precision, engine in runs:
                        row = _one(network, name, weights, height, width, device, threads,
                                   repeats, mode, precision, isolate, progress, engine)
                        results.append(row)
    used_threads = results[0]["threads"] if results else threads
    methods = sorted({r["memory_method"] for r in results})
    return {
        "machine": machine_info(device, used_threads),
        "device": device,
        "threads": used_threads,
        "repeats": repeats,
        "tile": tile_side or None,
        "isolated": isolate,
        "memory_method": ", ".join(methods),
        "results": results,
    }


def format_benchmark(result: dict) -> str:
    """A markdown table of a `run_benchmark` result, with the machine above it."""
    m = result["machine"]
    lines = [
        f"Machine: {m['device_name']} ({m['device']}), torch threads: {m['threads']}, "
        f"{m['cpu_count']} CPUs ({m['cpu']}); torch {m['torch']}, Python {m['python']}, "
        f"{m['platform']}.",
        f"Median of {result['repeats']} timed run(s) after a warm-up; peak memory = extra "
        "memory "
        f"during restoration ({result['memory_method']}"
        f"{', a fresh process per measurement' if result.get('isolated') else ''}).",
        "",
        "| model | parameters | image | tiling | tiles | precision | s / image | MP/s "
        "| peak memory (MiB) |",
        "| --- | ---: | --- | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in result["results"]:
        tiling = f"{r['tile']} px tiles" if r["tile"] else "one pass"
        lines.append(
            f"| {r['model']} | {r['parameters'] / 1e6:.2f} M | {r['width']}x{r['height']} | "
            f"{tiling} | {r['tiles']} | {r.get('precision', 'fp32')}"
            f"{RUNTIME_NAMES.get(r.get('backend', 'torch'), '')} | {r['seconds']:.3f} | "
            f"{r['megapixels_per_s']:.3f} | {r['peak_memory_mib']:.0f} |")
    for e in result.get("end_to_end", []):
        lines.append("")
        lines.append(format_end_to_end(e))
    if result.get("phases"):
        lines += ["", format_phases(result["phases"])]
    if result.get("whole_process"):
        lines += ["", format_whole_process(result["whole_process"])]
    return "\n".join(lines)


# ------------------------------------------------------------------------- end to end


def _timed_command(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of a command run in a fresh child process."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "r = subprocess.run(sys.argv[1:]).returncode; "
             "print(time.perf_counter() - t, "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r)")
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                          text=True, check=False)
    seconds, maxrss_kib, code = done.stdout.split()[-3:]
    if code != "0":
        raise RuntimeError(f"{' '.join(args[-6:])} failed")
    return float(seconds), float(maxrss_kib) / 1024


def end_to_end(height: int = 1536, width: int = 2048, repeats: int = 3,
               precision: str = "auto", extra: Sequence[str] = ()) -> dict:
    """`fbcnn restore x.jpg -o out` as a user runs it (file in, file out, default settings,
    a fresh process each time) on a colour JPEG of the test image at QF 30: the median
    whole-process time, its peak RSS, and the start-up (the same command on a 64x64 JPEG),
    so `megapixels_per_s_after_startup` = MP / (time - start-up). The start-up run is held
    to the engine the photo runs in (`auto` may pick another for a 64x64 JPEG: see
    `fbcnn.networks.runtimes`)."""
    from PIL import Image

    from ..networks.runtimes import choose_backend

    startup_extra: list[str] = []
    if "--backend" not in extra:
        chosen = choose_backend("auto", "auto", precision, megapixels=height * width / 1e6)
        startup_extra = ["--backend", chosen]

    with tempfile.TemporaryDirectory(prefix="fbcnn-e2e-") as tmp:
        big, small = Path(tmp, "photo.jpg"), Path(tmp, "small.jpg")
        Image.fromarray(sample_image(height, width, 3)).save(big, quality=TEST_IMAGE_QF)
        Image.fromarray(sample_image(64, 64, 3)).save(small, quality=TEST_IMAGE_QF)
        command = [sys.executable, "-m", "fbcnn", "restore", "-o", str(Path(tmp, "out")),
                   "--overwrite", "--precision", precision, *extra]
        runs, peaks, starts = [], [], []
        _timed_command([*command, *startup_extra, str(small)])  # warm-up (and graph cache)
        for _ in range(max(1, repeats)):
            start, _ = _timed_command([*command, *startup_extra, str(small)])
            seconds, peak = _timed_command([*command, str(big)])
            runs.append(seconds)
            peaks.append(peak)
            starts.append(start)
    seconds = statistics.median(runs)
    startup = statistics.median(starts)
    mp = height * width / 1e6
    return {"height": height, "width": width, "precision": precision, "options": list(extra),
            "startup_options": startup_extra,
            "seconds": seconds, "runs": runs, "startup_seconds": startup,
            "megapixels_per_s": mp / seconds,
            "megapixels_per_s_after_startup": mp / max(1e-9, seconds - startup),
            "peak_rss_mib": max(peaks)}


PHASES = ("read", "analysis", "restore", "write")


def restore_phases(height: int = 1536, width: int = 2048, repeats: int = 3,
                   precision: str = "auto", model: str | None = None) -> dict:
    """Where a default `fbcnn restore` of a colour JPEG (the test image at QF 30) spends its
    time after start-up, timed in one process through the same pipeline functions (decode,
    double-JPEG analysis, restoration, PNG write): one warm-up (it loads the model), then
    the median of `repeats` runs per phase. `analysis_share` is the analysis' part of the
    file's whole time (the four phases)."""
    from PIL import Image

    from ..engine.analysis import analyse, restore_loaded
    from ..engine.pipeline import ModelSet
    from ..images.files import read_image, write_image

    models = ModelSet(model, precision=precision)
    times: dict[str, list[float]] = {p: [] for p in PHASES}
    with tempfile.TemporaryDirectory(prefix="fbcnn-phases-") as tmp:
        path = Path(tmp, "photo.jpg")
        Image.fromarray(sample_image(height, width, 3)).save(path, quality=TEST_IMAGE_QF)
        for run in range(max(1, repeats) + 1):  # run 0: the warm-up
            t0 = time.perf_counter()
            image = read_image(path)
            t1 = time.perf_counter()
            model = models.for_image(image)
            found = analyse(image, model, double=True)
            t2 = time.perf_counter()
            result = restore_loaded(image, found)
            t3 = time.perf_counter()
            write_image(Path(tmp, f"out{run}.png"), result.image)
            t4 = time.perf_counter()
            if run:
                for phase, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3),
                                          strict=True):
                    times[phase].append(seconds)
        engine = model.backend
    medians = {p: statistics.median(v) for p, v in times.items()}
    total = sum(medians.values())
    return {"height": height, "width": width, "precision": precision, "engine": engine,
            "repeats": max(1, repeats), "seconds": medians, "runs": times, "total": total,
            "analysis_share": medians["analysis"] / total if total > 0 else 0.0}


def format_phases(p: dict) -> str:
    s = p["seconds"]
    return (f"Phases of the default restore of the {p['width']}x{p['height']} colour JPEG "
            f"after start-up, in one process ({p['engine']}, precision {p['precision']}), "
            f"median of {p['repeats']}: read {s['read']:.2f} s, double-JPEG analysis "
            f"{s['analysis']:.2f} s, restoration {s['restore']:.2f} s, write "
            f"{s['write']:.2f} s; the analysis is **{p['analysis_share']:.1%}** of the "
            f"{p['total']:.2f} s.")


def format_end_to_end(e: dict) -> str:
    options = " ".join(e["options"]) or "default settings"
    return (f"End to end, `fbcnn restore photo.jpg -o out --precision {e['precision']}` "
            f"({options}) on a {e['width']}x{e['height']} colour JPEG, whole process, median "
            f"of {len(e['runs'])}: {e['seconds']:.2f} s ({e['megapixels_per_s']:.2f} MP/s), "
            f"start-up {e['startup_seconds']:.2f} s (a 64x64 JPEG"
            + (f", {' '.join(e['startup_options'])}" if e.get("startup_options") else "")
            + "), so "
            f"{e['megapixels_per_s_after_startup']:.2f} MP/s after start-up; peak RSS "
            f"{e['peak_rss_mib']:.0f} MiB.")


# ---------------------------------------------------- whole process, beside a yardstick

RUNTIME_NAMES = {"onnx": ", onnxruntime", "openvino": ", OpenVINO", "torch": ""}
# the runtimes `fbcnn restore` can run, as a user picks them (label, extra options)
RUNTIME_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("default", ()),
    ("int8", ("--precision", "int8")),
    ("onnxruntime", ("--backend", "onnx", "--precision", "fp32")),
    ("torch", ("--backend", "torch")),
)


# a folder restored by one command (`whole_process(folder=N)`): the default (a job per
# core, the network's threads split between them) and one image at a time
FOLDER_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("default", ()),
    ("--jobs 1", ("--jobs", "1")),
)


def find_yardstick(path: str | None = None) -> Path | None:
    """The classical decoder timed beside `fbcnn restore` (knusperli): `path`, else
    `knusperli` on the PATH; None when there is none."""
    found = path if path else shutil.which("knusperli")
    return Path(found) if found and Path(found).is_file() and os.access(found, os.X_OK) \
        else None


def _whole_process_jobs(tmp: Path, rows: Sequence[tuple[str, Sequence[str]]],
                        yardstick: Path | None, height: int, width: int, small: int,
                        folder: int) -> tuple[list[tuple[str, list[str]]], dict[str, int]]:
    """The commands of `whole_process` (label, argv) on files made in `tmp`, and how many
    photos each restores."""
    from PIL import Image

    photo, tiny = tmp / "photo.jpg", tmp / "small.jpg"
    Image.fromarray(sample_image(height, width, 3)).save(photo, quality=20)
    Image.fromarray(sample_image(small, small, 3)).save(tiny, quality=20)
    fbcnn = [sys.executable, "-m", "fbcnn", "restore", "-o", str(tmp / "out"), "--overwrite"]
    jobs = [(label, [*fbcnn, *extra, str(photo)]) for label, extra in rows]
    jobs.append((f"default, {small}x{small}", [*fbcnn, str(tiny)]))
    photos = {label: 1 for label, _ in jobs}
    if folder > 0:
        album = tmp / "album"
        album.mkdir()
        for i in range(folder):
            shutil.copyfile(photo, album / f"photo{i}.jpg")
        for label, extra in FOLDER_ROWS:
            jobs.append((f"{label}, a folder of {folder}", [*fbcnn, *extra, str(album)]))
            photos[jobs[-1][0]] = folder
    if yardstick is not None:
        jobs.append(("yardstick", [str(yardstick), str(photo), str(tmp / "k.png")]))
        photos["yardstick"] = 1
    return jobs, photos


def whole_process(rows: Sequence[tuple[str, Sequence[str]]] = RUNTIME_ROWS,
                  yardstick: Path | None = None, repeats: int = 5, height: int = 1536,
                  width: int = 2048, small: int = 64, folder: int = 0) -> dict:
    """`fbcnn restore photo.jpg -o out` in a fresh process per run, once per row per round,
    each round beside one run of `yardstick in.jpg out.png` (interleaved, so a drift of
    the machine's speed hits both): per row the median seconds, peak RSS and the median of
    the per-round ratios to the yardstick; also the default on a `small`-pixel JPEG (what
    every run pays before the first pixel). The photo is the colour test image at QF 20.
    `folder` > 0 adds a folder of that many copies of the photo, restored by one command
    with the default `--jobs` and with `--jobs 1` (a batch: the model loaded once); their
    seconds and ratios are per photo."""
    with tempfile.TemporaryDirectory(prefix="fbcnn-whole-") as tmp:
        jobs, photos = _whole_process_jobs(Path(tmp), rows, yardstick, height, width, small,
                                           folder)
        skipped: dict[str, str] = {}
        for label, command in list(jobs):  # warm-up: caches (graphs, compiled models, files)
            try:
                _timed_command(command)
            except RuntimeError as e:  # a runtime this install lacks: say so, go on
                skipped[label] = str(e)
                jobs.remove((label, command))
        times: dict[str, list[float]] = {label: [] for label, _ in jobs}
        peaks: dict[str, float] = {label: 0.0 for label, _ in jobs}
        for _ in range(max(1, repeats)):
            for label, command in jobs:
                seconds, peak = _timed_command(command)
                times[label].append(seconds / photos[label])
                peaks[label] = max(peaks[label], peak)
    out = []
    for label, _ in jobs:
        row = {"row": label, "seconds": statistics.median(times[label]), "runs": times[label],
               "peak_rss_mib": peaks[label], "photos": photos[label]}
        if yardstick is not None:
            ratios = [a / b for a, b in zip(times[label], times["yardstick"], strict=True)]
            row["vs_yardstick"] = statistics.median(ratios)
        out.append(row)
    return {"height": height, "width": width, "small": small, "repeats": max(1, repeats),
            "yardstick": None if yardstick is None else yardstick.name, "rows": out,
            "skipped": skipped, "folder": folder}


def format_whole_process(w: dict) -> str:
    stick = w["yardstick"]
    lines = [f"Whole process, `fbcnn restore photo.jpg -o out` on a {w['width']}x{w['height']} "
             f"colour JPEG (QF 20), a fresh process per run, medians of {w['repeats']} "
             "interleaved rounds" + (f", each beside one run of {stick}" if stick else
                                     " (no yardstick found: pass --yardstick PATH)") + ".", "",
             "| run | options | seconds | peak RSS (MiB) |"
             + (f" x {stick}'s time |" if stick else ""),
             "| --- | --- | --- | --- |" + (" --- |" if stick else "")]
    options = dict(RUNTIME_ROWS)
    folder = f", a folder of {w.get('folder', 0)}"
    options |= {label + folder: extra for label, extra in FOLDER_ROWS}
    for r in w["rows"]:
        extra = " ".join(options.get(r["row"], ())) or ("-" if r["row"] != "yardstick" else "")
        ratio = f" {r['vs_yardstick']:.2f} |" if stick else ""
        lines.append(f"| {r['row']} | {extra} | {r['seconds']:.2f} | {r['peak_rss_mib']:.0f} |"
                     + ratio)
    if w.get("folder"):
        lines.append(f"\n(The folder rows: one command restores {w['folder']} copies of the "
                     "photo; their seconds and ratios are per photo.)")
    lines += [f"\nNot run: {label} ({reason})." for label, reason in w.get("skipped", {}).items()]
    return "\n".join(lines)
