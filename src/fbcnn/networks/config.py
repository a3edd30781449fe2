"""What an FBCNN network is, without torch: its shape (`FBCNNConfig`) and the two ways of
writing a QF (1..100 outside the network, the paper's `(100 - QF) / 100` inside).

Kept apart from `fbcnn.networks.network` so that running an exported graph
(`fbcnn.networks.onnx_runtime`) never imports torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypeVar

Q = TypeVar("Q", bound=Any)  # a float, numpy array or torch tensor

GRID = 8  # three stride-2 stages: sizes must be multiples of 8
# an exported graph's metadata key: its qf input takes 0 for "the prediction" (a graph
# without it needs the prediction read first and fed back: two runs)
QF_AUTO_KEY = "fbcnn.qf_input_auto"


@dataclass(frozen=True)
class FBCNNConfig:
    """Shape of an FBCNN network. The defaults are the published models' layout."""

    in_channels: int = 3
    out_channels: int = 3
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    blocks: int = 4
    qf_width: int = 512
    # Ours, not in the published models: output = input + network(input). It makes small
    # models train far faster; published checkpoints have it off.
    global_residual: bool = False

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> FBCNNConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "widths" in known:
            known["widths"] = tuple(int(w) for w in known["widths"])  # type: ignore[union-attr]
        return cls(**known)  # type: ignore[arg-type]


def qf_to_network(qf: Q) -> Q:
    """QF in 1..100 -> the network's convention (100 - QF) / 100."""
    return 1.0 - qf / 100.0


def network_to_qf(value: Q) -> Q:
    """The network's (100 - QF) / 100 -> QF in 0..100."""
    return 100.0 * (1.0 - value)
