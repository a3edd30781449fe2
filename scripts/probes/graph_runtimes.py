"""The figures behind fbcnn.networks.runtimes's choice of OpenVINO: one 512x512 tile of the colour
model in each runtime and precision (one process, interleaved, medians), the fixed-size
compile against the dynamic one, the compile from a cold and a warm cache, and how far
each runtime's restore of the bundled example is from torch fp32 (grey levels, with and
without the JPEG-consistency step). Run it on an idle machine.

    python scripts/probes/graph_runtimes.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "astronaut_qf10.jpg"


def tile_times(repeats: int) -> None:
    import openvino as ov
    import torch

    from fbcnn.networks.checkpoints import load_network
    from fbcnn.networks.modelfiles import named_model_path
    from fbcnn.networks.onnx_runtime import OnnxFBCNN

    graph = named_model_path("color").with_suffix(".onnx")
    x = np.random.default_rng(0).random((1, 3, 512, 512), dtype=np.float32)
    qf = np.full((1, 1), 20.0, np.float32)
    core = ov.Core()
    runs = {}
    for hint in ("bf16", "f32"):
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        dynamic = core.compile_model(core.read_model(str(graph)), "CPU", config)
        fixed_model = core.read_model(str(graph))
        fixed_model.reshape({"image": [1, 3, 512, 512], "qf": [1, 1]})
        fixed = core.compile_model(fixed_model, "CPU", config)
        runs[f"OpenVINO {hint}, dynamic sizes"] = lambda c=dynamic: c({"image": x, "qf": qf})
        runs[f"OpenVINO {hint}, fixed 512x512"] = lambda c=fixed: c({"image": x, "qf": qf})
    onnx = OnnxFBCNN(graph, device="cpu")
    runs["onnxruntime fp32"] = lambda: onnx.run_array(x, np.full((1, 1), 0.8, np.float32))
    network = load_network(named_model_path("color")).network.eval()
    network = network.to(memory_format=torch.channels_last)
    tensor = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)

    def torch_run(bf16: bool) -> None:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            network(tensor, torch.tensor([[0.8]]))

    runs["torch fp32"] = lambda: torch_run(False)
    runs["torch bf16"] = lambda: torch_run(True)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for run in runs.values():
        run()  # warm-up
    for _ in range(repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    print(f"one 512x512 tile, colour model, median of {repeats} interleaved runs:")
    for name, values in times.items():
        print(f"  {name:32s} {statistics.median(values):.3f} s")


def compile_times() -> None:
    import openvino as ov

    from fbcnn.networks.modelfiles import named_model_path

    graph = str(named_model_path("color").with_suffix(".onnx"))
    config = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"}
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold cache", "warm cache"):
            core = ov.Core()
            core.set_property({"CACHE_DIR": cache})
            t = time.perf_counter()
            core.compile_model(core.read_model(graph), "CPU", config)
            print(f"read + compile, {label}: {time.perf_counter() - t:.3f} s")


def output_differences() -> None:
    from fbcnn.engine.model import load_model

    want = {c: np.asarray(load_model("color", backend="torch", precision="fp32")
                          .restore(Image.open(EXAMPLE), consistency=c).image).astype(int)
            for c in (False, True)}
    print(f"{EXAMPLE.name}, grey levels from torch fp32 (max; values differing by 1 / by 2+, "
          f"of {want[True].size}):")
    for backend, precision in (("openvino", "auto"), ("openvino", "fp32"), ("onnx", "fp32"),
                               ("openvino", "int8")):
        model = load_model("color", backend=backend, precision=precision)
        for consistency in (False, True):
            got = np.asarray(model.restore(Image.open(EXAMPLE),
                                           consistency=consistency).image).astype(int)
            d = np.abs(got - want[consistency])
            print(f"  {backend} {model.info.precision:5s} consistency "
                  f"{'on ' if consistency else 'off'}: max {d.max()}, "
                  f"{int((d == 1).sum())} / {int((d >= 2).sum())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tile_times(args.repeats)
    compile_times()
    output_differences()


if __name__ == "__main__":
    main()
