#!/usr/bin/env python
"""Write tests/data/forward_fixture.npz: the forward pass of FBCNN, frozen.

Two layouts, each with weights drawn from a fixed seed (so only the input and the outputs
are stored, a few tens of KB): the published layout (`FBCNNConfig()`, 71.9 M parameters,
the official checkpoints' keys) and the shipped models' layout (widths 16/32/64/128, two
blocks a stage, QF width 128, global residual). For each: the restored image with the
predicted QF, the predicted QF, and the restored image with QF 40 fed to the decoder, on one
1x3x29x38 input (not a multiple of 8: the replicate padding and the crop are in it too).

tests/test_forward_fixture.py rebuilds the networks from the same seeds and checks that the current
code reproduces the outputs within 1e-5: a change to the forward pass (layer order, the QF
attention, a residual, the padding) fails it. Rerun this script only for an intended change
of the forward pass, and say so in the commit.

    python scripts/make_forward_fixture.py [--out tests/data/forward_fixture.npz]
"""

from __future__ import annotations

import argparse
import math
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fbcnn.networks.network import FBCNN, FBCNNConfig, qf_to_network  # noqa: E402

SEED = 2021
INPUT_SHAPE = (1, 3, 29, 38)
QF_FED = 40.0
LAYOUTS = {
    "published": FBCNNConfig(),
    "shipped": FBCNNConfig(widths=(16, 32, 64, 128), blocks=2, qf_width=128,
                           global_residual=True),
}
OUT = ROOT / "tests" / "data" / "forward_fixture.npz"


def generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator per (seed, tensor name): the weights depend on the state-dict keys
    and shapes only, not on the order in which the modules are built."""
    return torch.Generator().manual_seed(seed * 2**32 + zlib.crc32(name.encode()))


def seeded_weights(name: str, shape: torch.Size, seed: int = SEED) -> torch.Tensor:
    """Uniform in +-1/sqrt(fan-in) (weights; a transposed 2x2 stride-2 convolution's fan-in
    is its input channels), +-0.1 (biases): activations keep their scale through the
    residual stacks, and every layer moves the output."""
    if len(shape) == 1:
        bound = 0.1
    elif ".0.weight" in name and name.startswith("m_up"):  # ConvTranspose2d (in, out, k, k)
        bound = 1 / math.sqrt(shape[0])
    else:
        bound = 1 / math.sqrt(math.prod(shape[1:]))
    return (torch.rand(shape, generator=generator(seed, name)) * 2 - 1) * bound


def seeded_network(config: FBCNNConfig, seed: int = SEED) -> FBCNN:
    """The network of `config` with `seeded_weights` (built on the meta device: no
    default initialisation of 71.9 M parameters to throw away)."""
    with torch.device("meta"):
        network = FBCNN(config)
    state = {k: seeded_weights(k, v.shape, seed) for k, v in network.state_dict().items()}
    network.load_state_dict(state, strict=True, assign=True)
    return network.eval()


def seeded_input(seed: int = SEED) -> torch.Tensor:
    """A smooth image with edges and noise in [0, 1], INPUT_SHAPE."""
    n, c, h, w = INPUT_SHAPE
    y = torch.linspace(0, 1, h)[:, None]
    x = torch.linspace(0, 1, w)[None, :]
    base = torch.stack([0.5 + 0.3 * torch.sin(6 * x + 2 * k) * torch.cos(4 * y + k)
                        + 0.2 * ((x > 0.4 + 0.1 * k) & (y < 0.6)).float() for k in range(c)])
    noise = torch.rand(INPUT_SHAPE, generator=generator(seed, "input")) * 0.1 - 0.05
    return (base[None] + noise).clamp(0, 1).expand(n, c, h, w).contiguous()


def forward_outputs(network: FBCNN, x: torch.Tensor) -> dict[str, np.ndarray]:
    """restored (predicted QF fed), qf (predicted, the network's convention), restored_qf40."""
    with torch.no_grad():
        restored, qf = network(x)
        fed, _ = network(x, torch.tensor([[qf_to_network(QF_FED)]]))
    return {"restored": restored.numpy(), "qf": qf.numpy(), "restored_qf40": fed.numpy()}


def fixture() -> dict[str, np.ndarray]:
    x = seeded_input()
    arrays = {"input": x.numpy()}
    for layout, config in LAYOUTS.items():
        for key, value in forward_outputs(seeded_network(config), x).items():
            arrays[f"{layout}/{key}"] = value
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.manual_seed(SEED)  # nothing here draws from it; a stray draw stays reproducible
    arrays = fixture()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    for key, value in arrays.items():
        print(f"{key}: {value.shape} mean {value.mean():.4f} std {value.std():.4f}",
              file=sys.stderr)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
