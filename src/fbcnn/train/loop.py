"""The training loop: L1 image loss + L1 QF loss, AdamW, warm-up + cosine schedule, EMA,
periodic validation (JSONL log), checkpoints that resume exactly, DDP via torchrun."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..checkpoints import load_network, save_network
from ..degrade import rgb_to_y
from ..jpeg import compress
from ..metrics import psnr
from ..network import FBCNN, network_to_qf, orthogonal_init
from .config import TrainConfig
from .data import Batch, PatchSampler, find_images, load_images

STATE_FILE = "last.pt"
LOG_FILE = "log.jsonl"


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size())


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def lr_factor(iteration: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to min_ratio at `total` (flat after)."""
    if iteration < warmup:
        return (iteration + 1) / warmup
    t = min(1.0, (iteration - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def revive_qf_attention(network: FBCNN) -> None:
    """Fresh QF embedding (default init) and zero gamma/beta weights (biases kept): the
    network computes what it did (up to its old, near-zero embedding) but the QF path can
    learn again. For models whose QF attention never learned to follow the QF."""
    for m in network.qf_embed.modules():
        if isinstance(m, nn.Linear):
            m.reset_parameters()
    for k in (1, 2, 3):
        for name in (f"to_gamma_{k}", f"to_beta_{k}"):
            nn.init.zeros_(getattr(network, name)[0].weight)


class EMA:
    """Exponential moving average of a model's parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach(), 1 - self.decay)
            else:
                self.shadow[k].copy_(v)


def load_validation(config: TrainConfig) -> list[np.ndarray]:
    folder = Path(config.validation.folder)
    if not folder.is_dir() or config.validation.limit == 0:
        return []
    paths = find_images([str(folder)])[: config.validation.limit]
    images = []
    for image in load_images(paths, 16):
        c = config.validation.crop
        if c:
            h, w = image.shape[:2]
            y, x = max(0, (h - c) // 2) // 16 * 16, max(0, (w - c) // 2) // 16 * 16
            image = image[y:y + c, x:x + c]
        if config.data.gray and image.shape[2] == 3:
            image = rgb_to_y(image)
        images.append(np.ascontiguousarray(image))
    return images


@torch.no_grad()
def validate(network: FBCNN, images: list[np.ndarray], qfs: list[int],
             device: torch.device) -> dict[str, dict[str, float]]:
    """Mean PSNR of the JPEG and of the restored image, and mean predicted QF, per QF."""
    network.eval()
    result = {}
    for qf in qfs:
        jpeg_psnr, restored_psnr, predicted = [], [], []
        for clean in images:
            degraded = compress(clean, qf)
            x = torch.from_numpy(degraded.copy()).permute(2, 0, 1)[None].float().div(255).to(device)
            out, qf_pred = network(x)
            restored = (out.clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).cpu().numpy()
            jpeg_psnr.append(psnr(degraded, clean))
            restored_psnr.append(psnr(restored, clean))
            predicted.append(float(network_to_qf(qf_pred).item()))
        result[str(qf)] = {"jpeg": float(np.mean(jpeg_psnr)),
                           "restored": float(np.mean(restored_psnr)),
                           "predicted_qf": float(np.mean(predicted))}
    network.train()
    return result


class Trainer:
    def __init__(self, config: TrainConfig, resume: bool = False, minutes: float | None = None,
                 iterations: int | None = None, quiet: bool = False) -> None:
        self.config = config
        self.minutes = minutes
        self.max_iterations = iterations
        self.quiet = quiet
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = pick_device()
        self.dist = setup_distributed(self.device)
        self.output = Path(config.output)
        if self.dist.is_main:
            self.output.mkdir(parents=True, exist_ok=True)

        torch.manual_seed(config.seed)
        self.network = FBCNN(config.model)
        orthogonal_init(self.network)
        if config.model.global_residual:
            # start as the identity: the network learns the correction only
            nn.init.zeros_(self.network.m_tail.weight)
        if config.init_from:
            self.network.load_state_dict(load_network(config.init_from).network.state_dict())
            if config.revive_qf_attention:
                revive_qf_attention(self.network)
        self.network.to(self.device)
        if config.channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)
        self.model: nn.Module = self.network
        if self.dist.world_size > 1:
            self.model = nn.parallel.DistributedDataParallel(self.network)
        o = config.optim
        head = list(self.network.qf_pred.parameters())
        head_ids = {id(p) for p in head}
        body = [p for p in self.network.parameters() if id(p) not in head_ids]
        self.optimizer = torch.optim.AdamW(
            [{"params": body, "lr": o.lr}, {"params": head, "lr": o.lr * o.qf_head_lr_scale}],
            lr=o.lr, weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda i: lr_factor(i, o.warmup, o.iterations, o.min_lr / o.lr))
        self.ema = EMA(self.network, o.ema_decay) if o.ema_decay > 0 else None
        self.rng = np.random.default_rng([config.seed, self.dist.rank])
        self.iteration = 0
        self.elapsed = 0.0
        self.best_gain = -math.inf
        if resume and (self.output / STATE_FILE).is_file():
            self.load_state(self.output / STATE_FILE)

        images = load_images(find_images(config.data.folders), config.data.patch_size + 8)
        self.sampler = PatchSampler(config.data, images)
        self.val_images = load_validation(config) if self.dist.is_main else []
        self.stop_requested = False

    # -- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        rng_states = [self.rng.bit_generator.state]
        if self.dist.world_size > 1:
            gathered: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(gathered, self.rng.bit_generator.state)
            rng_states = gathered
        return {
            "model": self.network.state_dict(),
            "ema": self.ema.shadow if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "best_gain": self.best_gain,
            "rng_numpy": json.dumps(rng_states),
            "rng_torch": torch.get_rng_state(),
            "config": json.dumps(self.config.to_dict()),
        }

    def save_state(self) -> None:
        state = self.state()  # every rank joins the gather
        if not self.dist.is_main:
            return
        tmp = self.output / (STATE_FILE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(self.output / STATE_FILE)
        self.export(self.output / "model.safetensors")

    def load_state(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.network.load_state_dict(state["model"])
        if self.ema and state["ema"] is not None:
            self.ema.shadow = {k: v.to(self.device) for k, v in state["ema"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.iteration = int(state["iteration"])
        self.elapsed = float(state["elapsed"])
        self.best_gain = float(state["best_gain"])
        rng_states = json.loads(state["rng_numpy"])
        self.rng.bit_generator.state = rng_states[min(self.dist.rank, len(rng_states) - 1)]
        torch.set_rng_state(state["rng_torch"].cpu())

    def export_network(self) -> FBCNN:
        network = FBCNN(self.config.model)
        network.load_state_dict(self.ema.shadow if self.ema else self.network.state_dict())
        return network.eval()

    def export(self, path: Path, extra: dict[str, str] | None = None) -> None:
        meta = {"iterations": str(self.iteration), "train_seconds": f"{self.elapsed:.0f}",
                "name": self.config.name}
        meta.update(extra or {})
        save_network(self.export_network(), path, meta)

    # -- the loop ----------------------------------------------------------------------
    def decoder_qf(self, degraded: torch.Tensor, batch: Batch) -> torch.Tensor | None:
        """The QF fed to the decoder: with probability `qf_teacher_forcing` a sample's true
        QF (single JPEG), else the network's own prediction (None: all predicted)."""
        p = self.config.optim.qf_teacher_forcing
        if p <= 0:
            return None
        forced = (torch.from_numpy(self.rng.random(len(batch.qf_mask)) < p).float()[:, None]
                  * batch.qf_mask).to(self.device)
        if not forced.any():
            return None
        target = batch.qf_target.to(self.device)
        if forced.all():
            return target
        with torch.no_grad():
            predicted = self.network.predict_qf(degraded)
        return forced * target + (1 - forced) * predicted

    def step(self) -> dict[str, float]:
        batch = self.sampler.sample(self.rng)
        degraded = batch.degraded.to(self.device)
        clean = batch.clean.to(self.device)
        if self.config.channels_last:
            degraded = degraded.contiguous(memory_format=torch.channels_last)
        restored, qf_pred = self.model(degraded, self.decoder_qf(degraded, batch))
        image_loss = F.l1_loss(restored, clean)
        mask = batch.qf_mask.to(self.device)
        qf_err = (qf_pred - batch.qf_target.to(self.device)).abs() * mask
        qf_loss = qf_err.sum() / mask.sum().clamp(min=1)
        loss = image_loss + self.config.optim.qf_loss_weight * qf_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.optim.grad_clip:
            nn.utils.clip_grad_norm_(self.network.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        if self.ema:
            self.ema.update(self.network)
        self.iteration += 1
        return {"loss": loss.item(), "image_loss": image_loss.item(), "qf_loss": qf_loss.item()}

    def log(self, record: dict[str, Any]) -> None:
        if self.dist.is_main:
            with open(self.output / LOG_FILE, "a") as f:
                f.write(json.dumps(record) + "\n")

    def run_validation(self) -> dict[str, Any]:
        if not self.val_images:
            return {}
        val = validate(self.export_network().to(self.device), self.val_images,
                       self.config.validation.qfs, self.device)
        gain = float(np.mean([v["restored"] - v["jpeg"] for v in val.values()]))
        if gain > self.best_gain:
            self.best_gain = gain
            self.export(self.output / "best.safetensors", {"val_gain_db": f"{gain:.3f}"})
        return {"val": val, "val_gain_db": gain}

    def train(self) -> int:
        """Train until the schedule, --iterations or --minutes ends, or a signal arrives."""
        def request_stop(signum: int, frame: object) -> None:
            self.stop_requested = True

        old = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        o = self.config.optim
        end = o.iterations if self.max_iterations is None else min(
            o.iterations, self.iteration + self.max_iterations)
        deadline = None if self.minutes is None else time.monotonic() + 60 * self.minutes
        last_checkpoint = time.monotonic()
        window: list[dict[str, float]] = []
        window_start, window_patches = time.monotonic(), 0
        bar = tqdm(total=end, initial=self.iteration, disable=self.quiet or not self.dist.is_main,
                   desc=self.config.name, dynamic_ncols=True)
        self.network.train()
        try:
            while self.iteration < end:
                t0 = time.monotonic()
                window.append(self.step())
                self.elapsed += time.monotonic() - t0
                window_patches += self.config.data.batch_size * self.dist.world_size
                bar.update(1)
                log_now = self.iteration % 100 == 0 or self.iteration == end
                val_now = self.iteration % self.config.validation.every == 0
                if log_now or val_now:
                    now = time.monotonic()
                    record: dict[str, Any] = {
                        "iteration": self.iteration,
                        "elapsed_s": round(self.elapsed, 1),
                        "patches_per_s": round(window_patches / max(now - window_start, 1e-9), 2),
                        "lr": self.scheduler.get_last_lr()[0],
                        **{k: float(np.mean([w[k] for w in window])) for k in window[0]},
                    }
                    if val_now and self.dist.is_main:
                        record.update(self.run_validation())
                    self.log(record)
                    bar.set_postfix(loss=f"{record['loss']:.4f}")
                    window, window_start, window_patches = [], time.monotonic(), 0
                stop = self.stop_requested or (deadline is not None and time.monotonic() > deadline)
                if self.dist.world_size > 1:
                    flag = torch.tensor([1.0 if stop else 0.0], device=self.device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    stop = bool(flag.item())
                if stop or time.monotonic() - last_checkpoint > 60 * self.config.checkpoint_minutes:
                    self.save_state()
                    last_checkpoint = time.monotonic()
                if stop:
                    break
            self.save_state()
        finally:
            bar.close()
            for s, handler in old.items():
                signal.signal(s, handler)
        return self.iteration
