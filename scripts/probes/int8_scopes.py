"""Which layers of the int8 graph stay in float (scripts/make_int8_graphs.py): the colour
model quantised three ways, each restoring the first 12 BSDS500 test images at QF 10 and
40 (gain over the JPEG, dB) beside the float graph; then one 512x512 tile in each
(interleaved, medians).

    python scripts/probes/int8_scopes.py [--samples 150] [--images 12]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import make_int8_graphs as make  # noqa: E402

MLPS = [".*qf_pred.*", ".*qf_embed.*", ".*to_gamma.*", ".*to_beta.*"]
ENDS = [".*m_head.*", ".*m_tail.*"]
VARIANTS = {
    "QF MLPs (and the QF input) in float": (MLPS, False),
    "+ head, tail, global residual": (MLPS + ENDS, True),
    "+ the attention's arithmetic (shipped)": (make.FLOAT_SCOPES, True),
}


def gains(path: Path, clean: list[np.ndarray]) -> list[float]:
    from fbcnn.engine.model import Model
    from fbcnn.evaluation.metrics import psnr
    from fbcnn.networks.modelfiles import named_model_path, training_patch_size
    from fbcnn.networks.openvino_runtime import OpenVinoFBCNN

    # as `fbcnn restore` runs a shipped model: the QF read over training-size windows,
    # then fed to the network
    model = Model(OpenVinoFBCNN(path), qf_tile=training_patch_size(named_model_path("color")))
    out = []
    for qf in (10, 40):
        values = []
        for image in clean:
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, "JPEG", quality=qf)
            jpeg = Image.open(io.BytesIO(buffer.getvalue()))
            restored = np.asarray(model.restore(jpeg).image)
            values.append(psnr(restored, image) - psnr(np.asarray(jpeg.convert("RGB")), image))
        out.append(float(np.mean(values)))
    return out


def main() -> None:
    import logging

    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)

    from fbcnn.networks.openvino_runtime import OpenVinoFBCNN

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=150)
    parser.add_argument("--images", type=int, default=12)
    args = parser.parse_args()
    graph = ROOT / "src/fbcnn/weights/color.onnx"
    folder = ROOT.parent / "shared/datasets/val/color/bsds500_test"
    clean = [np.asarray(Image.open(f).convert("RGB"))
             for f in sorted(folder.iterdir())[:args.images]]
    data = nncf.Dataset(make.calibration_inputs("color", args.samples, 0))
    paths = {"float (bf16 where native)": graph}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, (patterns, residual)) in enumerate(VARIANTS.items()):
            quantised = make.quantised_graph(graph, data, args.samples, patterns, residual)
            paths[label] = Path(tmp, f"v{i}.xml")
            ov.save_model(quantised, str(paths[label]), compress_to_fp16=False)
        print(f"gain over the JPEG, first {args.images} BSDS500 test images, QF 10 / 40:")
        for label, path in paths.items():
            g = gains(path, clean)
            print(f"  {label:40s} {g[0]:+.2f} / {g[1]:+.2f} dB")
        nets = {label: OpenVinoFBCNN(path) for label, path in paths.items()}
        x = np.random.default_rng(0).random((1, 3, 512, 512), dtype=np.float32)
        qf = np.full((1, 1), 0.8, np.float32)
        times: dict[str, list[float]] = {label: [] for label in nets}
        for net in nets.values():
            net.run_array(x, qf)
        for _ in range(5):
            for label, net in nets.items():
                t = time.perf_counter()
                net.run_array(x, qf)
                times[label].append(time.perf_counter() - t)
        print("one 512x512 tile, median of 5 interleaved runs:")
        for label, values in times.items():
            print(f"  {label:40s} {np.median(values):.3f} s")


if __name__ == "__main__":
    main()
