"""Write the graph of each shipped model beside its weights (src/fbcnn/weights/<name>.onnx):
the ONNX graph OpenVINO and onnxruntime run, reading its tensors from <name>.safetensors
(`fbcnn.export.export_graph_on_weights`). Run after the weights change; tests/test_graphs.py
checks that every shipped graph matches its weights.

    python scripts/make_graphs.py [--models color,gray,...]
"""

from __future__ import annotations

import argparse

from fbcnn.export import export_graph_on_weights
from fbcnn.modelfiles import available_models, named_model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(available_models()))
    args = parser.parse_args()
    for name in args.models.split(","):
        path = export_graph_on_weights(named_model_path(name))
        print(f"{name}: {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
