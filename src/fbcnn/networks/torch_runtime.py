"""The torch `FBCNN` module behind the `fbcnn.networks.runtimes.Runtime` interface.

Everything torch about running a network lives here, so that the engine never touches a
tensor: the device, the precision (bf16 autocast where it is fast, fp16 on request on CUDA,
else fp32; the QF's MLPs stay in fp32), channels-last memory on the CPU, and inference
mode.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


class TorchRuntime:
    """A torch module (`fbcnn.networks.network.FBCNN`) on `device` in `precision`: 'auto'
    (bf16 where the hardware computes it natively: CUDA, AMX / AVX512-BF16 CPUs; else fp32),
    'fp32', 'bf16' or 'fp16' (CUDA only)."""

    name = "torch"

    def __init__(self, module: torch.nn.Module, device: str | torch.device = "auto",
                 precision: str = "auto") -> None:
        import torch

        from ..device import pick_device, resolve_precision

        self.torch_device = pick_device(device) if isinstance(device, str) else device
        self.module = module.to(self.torch_device).eval()
        # channels-last convolutions are faster on the CPU
        self.channels_last = self.torch_device.type == "cpu"
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        if precision == "fp16":  # opt-in, for CUDA cards without bf16
            if self.torch_device.type != "cuda":
                raise ValueError(f"--precision fp16 is for CUDA GPUs, not "
                                 f"{self.torch_device.type}")
            self.precision = "fp16"
        else:
            self.precision = resolve_precision(precision, self.torch_device)
        self.device = str(self.torch_device)
        self.channels = int(module.config.in_channels)
        self.has_qf_input = True

    def computing(self) -> contextlib.ExitStack:
        """Inference mode, and autocast in bf16 / fp16."""
        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            stack.enter_context(torch.autocast(self.torch_device.type, dtype=dtype))
        return stack

    def _tensor(self, pixels: np.ndarray) -> torch.Tensor:
        """N x H x W x C uint8 -> float (N, C, H, W) in [0, 1] on the device."""
        import torch

        x = torch.from_numpy(np.array(pixels)).permute(0, 3, 1, 2)  # a writable copy
        x = x.to(self.torch_device, torch.float32).div_(255.0)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _fed(self, qf: float, n: int) -> torch.Tensor:
        import torch

        return torch.full((n, 1), qf, dtype=torch.float32, device=self.torch_device)

    def run(self, pixels: np.ndarray,
            qf: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        with self.computing():
            fed = None if qf is None else self._fed(qf, len(pixels))
            restored, read = self.module(self._tensor(pixels), fed)
            return _nhwc(restored), read.float().cpu().numpy()

    def predict_qf(self, pixels: np.ndarray) -> np.ndarray:
        with self.computing():
            return self.module.predict_qf(self._tensor(pixels)).float().cpu().numpy()

    def reconstruct(self, pixels: np.ndarray, qf: float) -> np.ndarray:
        with self.computing():
            return _nhwc(self.module.reconstruct(self._tensor(pixels),
                                                 self._fed(qf, len(pixels))))

    def set_threads(self, threads: int) -> None:
        """torch's threads are the process's."""
        import torch

        torch.set_num_threads(max(1, int(threads)))

    def release_memory(self) -> None:
        """Nothing: torch's CPU allocator keeps no arena of its own."""

    def prepare(self) -> None:
        """Nothing: the module is ready once loaded."""

    def __repr__(self) -> str:
        return f"TorchRuntime({type(self.module).__name__}, {self.device}, {self.precision})"


def _nhwc(restored: Any) -> np.ndarray:
    """A (N, C, H, W) network output as float32 N x H x W x C numpy."""
    return restored.float().permute(0, 2, 3, 1).cpu().numpy()
