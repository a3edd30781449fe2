"""Write the graphs of each shipped model beside its weights (src/fbcnn/weights/<name>.onnx,
and its parts <name>.qf.onnx, <name>.reconstruct.onnx): the ONNX graphs OpenVINO and
onnxruntime run, reading their tensors from <name>.safetensors
(`fbcnn.networks.weightgraphs`). Run after the weights
change; tests/test_graphs.py checks that every shipped graph matches its weights.

    python scripts/make_graphs.py [--models color,gray,...]
"""

from __future__ import annotations

import argparse

from fbcnn.networks.modelfiles import available_models, named_model_path
from fbcnn.networks.weightgraphs import PARTS, export_graph_on_weights, export_part_on_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(available_models()))
    args = parser.parse_args()
    for name in args.models.split(","):
        paths = [export_graph_on_weights(named_model_path(name))]
        paths += [export_part_on_weights(named_model_path(name), part) for part in PARTS]
        for path in paths:
            print(f"{name}: {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
