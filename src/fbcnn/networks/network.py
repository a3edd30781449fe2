"""The FBCNN network (Jiang, Zhang, Timofte, ICCV 2021), read top to bottom like its figure.

    image -> head -> down1 -> down2 -> down3 -> body_encoder --+--> qf_pred --> predicted QF
                                                               |
                                                               +--> body_decoder
    QF (predicted or given) -> qf_embed -> (gamma_k, beta_k)        |
    up3 (QF attention) <- (+ skip) <------------------------------ +
    up2 (QF attention) <- (+ skip)
    up1 (QF attention) <- (+ skip) -> tail -> restored image

The published layout (widths 64/128/256/512, four blocks a stage) is the default
configuration, and its state-dict keys are the published ones, so the official checkpoints
load unchanged. Inside this module the QF is the paper's `(100 - QF) / 100`; everything
outside speaks QF in 1..100 (see `qf_to_network` / `network_to_qf`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import GRID, FBCNNConfig, network_to_qf, qf_to_network

__all__ = ["FBCNN", "FBCNNConfig", "GRID", "network_to_qf", "qf_to_network"]


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, bias=True)


class ResBlock(nn.Module):
    """x + conv3x3(relu(conv3x3(x)))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.res = nn.Sequential(conv3x3(channels, channels), nn.ReLU(inplace=True),
                                 conv3x3(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res(x)


class QFAttention(nn.Module):
    """x + gamma * body(x) + beta, gamma and beta per channel, computed from the QF."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.res = nn.Sequential(conv3x3(channels, channels), nn.ReLU(inplace=True),
                                 conv3x3(channels, channels))

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        if gamma.shape[0] == 1 and not _exporting():
            # one image, one QF: gamma and beta fold into the second convolution's weights
            # and bias (the same sum, without two more passes over full-size features)
            first, relu, second = self.res
            g = gamma.reshape(-1).to(second.weight.dtype)
            weight = second.weight * g[:, None, None, None]
            bias = second.bias * g + beta.reshape(-1).to(second.bias.dtype)
            return F.conv2d(relu(first(x)), weight, bias, padding=1).add_(x)
        body = self.res(x)
        gamma = gamma.to(body.dtype).unsqueeze(-1).unsqueeze(-1)
        beta = beta.to(body.dtype).unsqueeze(-1).unsqueeze(-1)
        return x + gamma * body + beta


def _exporting() -> bool:
    """True while the network is traced, scripted, exported or compiled: the graph keeps
    gamma and beta apart, valid for any batch."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting()
            or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling())


def down_stage(c_in: int, c_out: int, blocks: int) -> nn.Sequential:
    """blocks x ResBlock(c_in), then a stride-2 2x2 convolution c_in -> c_out."""
    return nn.Sequential(*[ResBlock(c_in) for _ in range(blocks)],
                         nn.Conv2d(c_in, c_out, 2, stride=2, bias=True))


def up_stage(c_in: int, c_out: int, blocks: int) -> nn.ModuleList:
    """A stride-2 2x2 transposed convolution c_in -> c_out, then blocks x QFAttention(c_out)."""
    return nn.ModuleList([nn.ConvTranspose2d(c_in, c_out, 2, stride=2, bias=True),
                          *[QFAttention(c_out) for _ in range(blocks)]])


def run_up_stage(stage: nn.ModuleList, x: torch.Tensor, gamma: torch.Tensor,
                 beta: torch.Tensor) -> torch.Tensor:
    x = stage[0](x)
    for block in stage[1:]:
        x = block(x, gamma, beta)
    return x


class FBCNN(nn.Module):
    """Flexible blind JPEG artifact removal network.

    `forward(x, qf_override=None)` takes an (N, C, H, W) float image in [0, 1] of any size
    and returns `(restored, qf)`: the restored image (same size, not clamped) and the
    predicted quality in the network's convention, shape (N, 1). `qf_override`, an (N, 1)
    tensor (or a float) in the same convention, is fed to the decoder instead of the
    prediction (a NaN row keeps that image's own prediction); `detach_qf` stops the image
    loss's gradient at the prediction.
    """

    has_qf_input = True  # the decoder takes an override (an ONNX graph may not)

    def __init__(self, config: FBCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FBCNNConfig()
        c0, c1, c2, c3 = config.widths
        nb, qw = config.blocks, config.qf_width

        self.m_head = conv3x3(config.in_channels, c0)
        self.m_down1 = down_stage(c0, c1, nb)
        self.m_down2 = down_stage(c1, c2, nb)
        self.m_down3 = down_stage(c2, c3, nb)
        self.m_body_encoder = nn.Sequential(*[ResBlock(c3) for _ in range(nb)])

        # QF decoupler: predicts (100 - QF) / 100 from the encoder's features.
        self.qf_pred = nn.Sequential(
            *[ResBlock(c3) for _ in range(nb)],
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.Linear(c3, qw), nn.ReLU(inplace=True),
            nn.Linear(qw, qw), nn.ReLU(inplace=True),
            nn.Linear(qw, 1), nn.Sigmoid(),
        )
        self.m_body_decoder = nn.Sequential(*[ResBlock(c3) for _ in range(nb)])

        # QF embedding and the per-stage attention parameters.
        self.qf_embed = nn.Sequential(
            nn.Linear(1, qw), nn.ReLU(inplace=True),
            nn.Linear(qw, qw), nn.ReLU(inplace=True),
            nn.Linear(qw, qw), nn.ReLU(inplace=True),
        )
        self.to_gamma_3 = nn.Sequential(nn.Linear(qw, c2), nn.Sigmoid())
        self.to_beta_3 = nn.Sequential(nn.Linear(qw, c2), nn.Tanh())
        self.to_gamma_2 = nn.Sequential(nn.Linear(qw, c1), nn.Sigmoid())
        self.to_beta_2 = nn.Sequential(nn.Linear(qw, c1), nn.Tanh())
        self.to_gamma_1 = nn.Sequential(nn.Linear(qw, c0), nn.Sigmoid())
        self.to_beta_1 = nn.Sequential(nn.Linear(qw, c0), nn.Tanh())

        self.m_up3 = up_stage(c3, c2, nb)
        self.m_up2 = up_stage(c2, c1, nb)
        self.m_up1 = up_stage(c1, c0, nb)
        self.m_tail = conv3x3(c0, config.out_channels)

    @staticmethod
    def pad_to_grid(x: torch.Tensor) -> torch.Tensor:
        """Replicate-pad bottom and right to multiples of 8 (plain tensor ops, export-safe)."""
        h, w = x.shape[-2], x.shape[-1]
        pad_h = (GRID - h % GRID) % GRID
        pad_w = (GRID - w % GRID) % GRID
        return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x1 = self.m_head(x)
        x2 = self.m_down1(x1)
        x3 = self.m_down2(x2)
        x4 = self.m_down3(x3)
        return x1, x2, x3, x4, self.m_body_encoder(x4)

    def read_qf(self, encoded: torch.Tensor) -> torch.Tensor:
        """The QF decoupler on the encoder's features. Its pooling and MLP run in fp32 even
        under bf16 autocast: a bf16 sigmoid near 1 can only say QF in steps of 0.4."""
        blocks = self.config.blocks
        features = self.qf_pred[:blocks](encoded)
        with torch.autocast(features.device.type, enabled=False):
            return self.qf_pred[blocks:](features.float())

    def predict_qf(self, x: torch.Tensor) -> torch.Tensor:
        """The decoupler alone: (N, 1) in the network's convention, half the cost of forward."""
        return self.read_qf(self.encode(self.pad_to_grid(x))[-1])

    def forward(self, x: torch.Tensor, qf_override: torch.Tensor | float | None = None,
                detach_qf: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2], x.shape[-1]
        padded = self.pad_to_grid(x)
        features = self.encode(padded)
        qf = self.read_qf(features[-1])

        # detach_qf (training): the decoder follows the estimate, the image loss does not
        # move the decoupler, which learns from its own QF loss alone
        qf_in = (qf.detach() if detach_qf else qf) if qf_override is None else qf_override
        if not isinstance(qf_in, torch.Tensor):
            qf_in = torch.full_like(qf, float(qf_in))
        qf_in = qf_in.reshape(-1, 1).to(qf.dtype).expand(qf.shape[0], 1)
        if qf_override is not None and isinstance(qf_override, torch.Tensor):
            qf_in = torch.where(torch.isnan(qf_in), qf, qf_in)  # NaN: this image's own QF
        return self.decode(padded, features, qf_in)[..., :h, :w], qf

    def reconstruct(self, x: torch.Tensor, qf: torch.Tensor | float) -> torch.Tensor:
        """The restored image with `qf` fed (network convention; (N, 1), (1, 1) or a float),
        without running the decoupler: `forward(x, qf)[0]` when the prediction is not wanted."""
        h, w = x.shape[-2], x.shape[-1]
        padded = self.pad_to_grid(x)
        qf_in = torch.as_tensor(qf, dtype=torch.float32, device=x.device)
        qf_in = qf_in.reshape(-1, 1).expand(x.shape[0], 1)
        return self.decode(padded, self.encode(padded), qf_in)[..., :h, :w]

    def decode(self, padded: torch.Tensor, features: tuple[torch.Tensor, ...],
               qf_in: torch.Tensor) -> torch.Tensor:
        """The reconstructor: the encoder's `features` of the `padded` image, decoded with
        QF attention driven by `qf_in` ((N, 1), network convention)."""
        x1, x2, x3, x4, encoded = features
        decoded = self.m_body_decoder(encoded)
        # the QF's MLPs in fp32 under autocast too (bf16 holds a QF near 100 in 0.4 steps);
        # gamma and beta then take the features' precision
        with torch.autocast(qf_in.device.type, enabled=False):
            embedding = self.qf_embed(qf_in.float())
            gb = [(self.to_gamma_3(embedding), self.to_beta_3(embedding)),
                  (self.to_gamma_2(embedding), self.to_beta_2(embedding)),
                  (self.to_gamma_1(embedding), self.to_beta_1(embedding))]

        d = run_up_stage(self.m_up3, decoded + x4, *gb[0])
        d = run_up_stage(self.m_up2, d + x3, *gb[1])
        d = run_up_stage(self.m_up1, d + x2, *gb[2])
        out = self.m_tail(d + x1)
        if self.config.global_residual:
            out = out + padded
        return out


def orthogonal_init(module: nn.Module, gain: float = 0.2) -> None:
    """Orthogonal initialisation of convolution and linear weights (the published recipe)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
