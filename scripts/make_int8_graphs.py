"""Quantise the shipped models' graphs to int8 with NNCF (post-training, calibrated on
training patches) and write them beside the weights as OpenVINO IR
(src/fbcnn/weights/<name>.int8.xml / .bin), what `--precision int8` runs.

Left in float: the QF layers (the decoupler `qf_pred`, the QF embedding, the gamma / beta
MLPs and the attention's own arithmetic x + gamma * body + beta), the first and last
convolutions and the global residual (the image's own pixels: an int8 copy of them costs
about a grey level). Every other convolution is int8. `python
scripts/probes/int8_scopes.py` measures the choice on the first 12 BSDS500 test images at
QF 10 / 40, restored as `fbcnn restore` restores (the QF read, then fed): with the MLPs and
the QF input alone in float the gain fell 0.21 / 0.21 dB below the float graph's, with
head, tail and residual too 0.11 / 0.06, with the attention too 0.04 / 0.05.
Calibration: `--samples` patches drawn by the training sampler
(`fbcnn.train.data.PatchSampler`) with the data section of each model's last training
stage (`CONFIGS`), half fed QF 0 (the image's own prediction), half a QF drawn
from 5..100 (a restore feeds the global QF to every tile: the nodes that take a fed QF stay
in float too). Deterministic for a given seed.

    python scripts/make_int8_graphs.py [--models color,gray,...] [--samples 300]

Needs the int8 extra (nncf) and torch; running the graphs needs OpenVINO only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fbcnn.networks.modelfiles import file_sha256, named_model_path
from fbcnn.networks.runtimes import INT8_SUFFIX

ROOT = Path(__file__).resolve().parent.parent
# the config of each shipped model's last training stage (its data: folders, QFs, encoders)
CONFIGS = {"color": "configs/color-stage6.yaml", "gray": "configs/gray-stage5.yaml",
           "color-double": "configs/color-double-stage5.yaml",
           "gray-double": "configs/gray-double-stage5.yaml"}
# left in float (node names of the exported graph; see the module doc)
FLOAT_SCOPES = [".*qf_pred.*", ".*qf_embed.*", ".*to_gamma.*", ".*to_beta.*",
                r".*m_up\d\.\d+/Mul$", r".*m_up\d\.\d+/Add(_1)?$", ".*m_head.*", ".*m_tail.*"]
CALIBRATION_PATCH = 96
IMAGES = 200  # spread over the training folders


def calibration_inputs(name: str, samples: int, seed: int) -> list[dict[str, np.ndarray]]:
    from dataclasses import replace

    from fbcnn.train.config import load_config
    from fbcnn.train.data import PatchSampler, find_images, load_images

    config = load_config(ROOT / CONFIGS[name])
    data = replace(config.data, patch_size=CALIBRATION_PATCH, batch_size=1)
    folders = [str((ROOT / f).resolve()) if not Path(f).is_absolute() else f
               for f in data.folders]
    paths = find_images(folders)
    images = load_images(paths[::max(1, len(paths) // IMAGES)], CALIBRATION_PATCH + 8)
    sampler = PatchSampler(data, images)
    rng = np.random.default_rng(seed)
    inputs = []
    for i in range(samples):
        batch = sampler.sample(rng)
        # half fed the image's own prediction (QF 0), half a QF (as tiles are fed the
        # global one)
        qf = 0.0 if i % 2 == 0 else float(rng.integers(5, 101))
        inputs.append({"image": batch.degraded.numpy().astype(np.float32),
                       "qf": np.full((1, 1), qf, np.float32)})
    return inputs


def qf_input_path(model: object) -> list[str]:
    """The nodes between the `qf` input and the QF embedding (the QF's conversion and the
    choice between the fed QF and the prediction): left in float, so that any QF fed goes
    through unchanged."""
    start = [p for p in model.inputs if p.get_any_name() == "qf"]  # type: ignore[attr-defined]
    if not start:
        return []
    names: list[str] = []
    frontier = [t.get_node() for t in start[0].get_target_inputs()]
    while frontier:
        node = frontier.pop()
        name = node.get_friendly_name()
        if name in names or "qf_embed" in name:
            continue
        names.append(name)
        for output in node.outputs():
            frontier += [t.get_node() for t in output.get_target_inputs()]
    return names


def residual_adds(model: object) -> list[str]:
    """The global residual (the Add that feeds the restored output, past the crop's
    Slices), if the network has one."""
    node = model.outputs[0].get_node().input_value(0).get_node()  # type: ignore[attr-defined]
    while node.get_type_name() in ("Slice", "StridedSlice"):
        node = node.input_value(0).get_node()
    if node.get_type_name() == "Add" and "m_tail" not in node.get_friendly_name():
        return [node.get_friendly_name()]
    return []


def quantised_graph(graph: Path, dataset: object, samples: int,
                    patterns: list[str] = FLOAT_SCOPES, residual: bool = True) -> object:
    """The OpenVINO model of `graph` quantised by NNCF on `dataset`, `patterns` (and the QF
    input's path, and the global residual unless `residual` is False) left in float; the
    export's metadata carried over."""
    import logging

    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)
    model = ov.Core().read_model(str(graph))
    framework = model.get_rt_info(["framework"]).astype(dict)
    names = qf_input_path(model) + (residual_adds(model) if residual else [])
    scope = nncf.IgnoredScope(patterns=patterns, names=names, validate=False)
    quantised = nncf.quantize(model, dataset, subset_size=samples, ignored_scope=scope)
    for key, value in framework.items():
        quantised.set_rt_info(value.astype(str), ["framework", key])
    return quantised


def quantise(name: str, samples: int, seed: int) -> Path:
    import nncf
    import openvino as ov

    weights = named_model_path(name)
    graph = weights.with_suffix(".onnx")
    made_for = ov.Core().read_model(str(graph)).get_rt_info(["framework"]).astype(dict)
    if made_for["fbcnn.weights_sha256"].astype(str) != file_sha256(weights):
        raise SystemExit(f"{graph} was not made for {weights}: run scripts/make_graphs.py")
    dataset = nncf.Dataset(calibration_inputs(name, samples, seed))
    quantised = quantised_graph(graph, dataset, samples)
    quantised.set_rt_info("int8", ["framework", "fbcnn.precision"])
    quantised.set_rt_info(f"nncf {nncf.__version__}, {samples} training patches of "
                          f"{CALIBRATION_PATCH} px, seed {seed}, float: "
                          f"{' '.join(FLOAT_SCOPES)}", ["framework", "fbcnn.int8"])
    target = weights.with_name(weights.stem + INT8_SUFFIX)
    ov.save_model(quantised, str(target), compress_to_fp16=False)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(CONFIGS))
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.models.split(","):
        target = quantise(name, args.samples, args.seed)
        size = target.stat().st_size + target.with_suffix(".bin").stat().st_size
        print(f"{name}: {target} ({size} bytes)")


if __name__ == "__main__":
    main()
