"""The training loop: L1 image loss + L1 QF loss, AdamW, warm-up + cosine schedule, EMA,
periodic validation (JSONL log, with the QF sensitivity of the decoder), checkpoints that
resume exactly, bf16 autocast where the hardware runs it fast, DDP via torchrun, and weights
that carry their provenance (every stage's config, parent hash, commit, time)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..device import pick_device, resolve_precision
from ..evaluation.metrics import psnr
from ..jpeg.color import rgb_to_y
from ..jpeg.encoders import available, compress_with, parse_encoder
from ..jpeg.tables import compress
from ..networks.checkpoints import PROVENANCE_KEY, file_sha256, load_network, save_network
from ..networks.network import FBCNN, network_to_qf, orthogonal_init, qf_to_network
from .config import TrainConfig
from .convert import grey_from_colour
from .data import Batch, PatchSampler, PatchStream, find_images, load_images

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


def shutdown_distributed() -> None:
    """Wait for every rank, then close the process group: a rank that exits while another
    still writes the checkpoint can take gloo down with it (SIGABRT at exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def lr_factor(iteration: int, warmup: int, progress: float, min_ratio: float) -> float:
    """Linear warm-up over `warmup` iterations, then a cosine from 1 to min_ratio as
    `progress` (the share of the schedule done after warm-up) goes from 0 to 1, flat after."""
    if iteration < warmup:
        return (iteration + 1) / warmup
    t = min(1.0, max(0.0, progress))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def init_network(network: FBCNN) -> None:
    """Our initialisation: orthogonal (gain 0.2) for the image path, as published; with a
    global residual the tail starts at zero, so the network starts as the identity. The QF
    path starts live: the decoupler's and the QF embedding's linear layers and the
    gamma/beta heads keep PyTorch's default (fan-in) init, so from the first iteration the
    predicted QF depends on the image and gamma/beta on the QF they are given (with gain 0.2
    they stay near constants and the QF path may never learn)."""
    orthogonal_init(network)
    if network.config.global_residual:
        nn.init.zeros_(network.m_tail.weight)
    heads = [network.qf_embed] + [getattr(network, f"to_{p}_{k}")
                                  for p in ("gamma", "beta") for k in (1, 2, 3)]
    decoupler = [m for m in network.qf_pred if isinstance(m, nn.Linear)]
    for head in [*heads, *decoupler]:
        for m in head.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()


def git_commit() -> str:
    """The repository's commit (with '-dirty' for local changes), FBCNN_GIT_COMMIT if set
    (a copy of the tree without .git, e.g. on a lent GPU machine), else 'unknown'."""
    if os.environ.get("FBCNN_GIT_COMMIT"):
        return os.environ["FBCNN_GIT_COMMIT"]
    try:
        root = Path(__file__).resolve().parents[3]
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("-dirty" if dirty.strip() else "")) if commit else "unknown"


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


class EMA:
    """Exponential moving average of a model's parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        state = model.state_dict()
        floats = [k for k, v in state.items() if v.dtype.is_floating_point]
        torch._foreach_lerp_([self.shadow[k] for k in floats],
                             [state[k].detach() for k in floats], 1 - self.decay)
        for k, v in state.items():
            if not v.dtype.is_floating_point:
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


def check_validation_encoders(names: list[str]) -> None:
    """ValueError now for a misspelt or missing encoder, not at the first validation."""
    for name in names:
        spec = parse_encoder(name)
        if not available(spec.name):
            raise ValueError(f"validation.encoders: {spec.name} is not installed")


SENSITIVITY_OFFSET = 40


@torch.no_grad()
def validate(network: FBCNN, images: list[np.ndarray], qfs: list[int],
             device: torch.device, encoders: list[str] | None = None,
             ) -> dict[str, dict[str, float]]:
    """Per QF: mean PSNR of the JPEG and of the restored image (blind), mean predicted QF,
    and the QF sensitivity: PSNR with the true QF fed minus PSNR with QF + 40 fed (capped
    at 100). Near 0 dB means the decoder ignores its QF input (a collapsed QF path).
    With other `encoders` than libjpeg, their rows are keyed 'NAME:QF' (no sensitivity: the
    QF of their files is not the IJG one)."""
    network.eval()

    def run(x: torch.Tensor, qf: float | None) -> tuple[np.ndarray, float]:
        override = None if qf is None else float(qf_to_network(qf))
        out, qf_pred = network(x, override)
        restored = (out.float().clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0)
        return restored.cpu().numpy(), float(network_to_qf(qf_pred.float()).item())

    result = {}
    for name, qf in [(e, q) for e in encoders or ["libjpeg"] for q in qfs]:
        jpeg_psnr, restored_psnr, true_psnr, off_psnr, predicted = [], [], [], [], []
        higher = min(100, qf + SENSITIVITY_OFFSET) if name == "libjpeg" else qf
        for clean in images:
            degraded = (compress(clean, qf) if name == "libjpeg"
                        else compress_with(parse_encoder(name), clean, qf)[0])
            x = torch.from_numpy(degraded.copy()).permute(2, 0, 1)[None].float().div(255).to(device)
            restored, qf_pred = run(x, None)
            jpeg_psnr.append(psnr(degraded, clean))
            restored_psnr.append(psnr(restored, clean))
            predicted.append(qf_pred)
            if higher > qf:
                true_psnr.append(psnr(run(x, qf)[0], clean))
                off_psnr.append(psnr(run(x, higher)[0], clean))
        key = str(qf) if name == "libjpeg" else f"{name}:{qf}"
        result[key] = {"jpeg": float(np.mean(jpeg_psnr)),
                       "restored": float(np.mean(restored_psnr)),
                       "predicted_qf": float(np.mean(predicted)),
                       "qf_sensitivity_db": (float(np.mean(true_psnr) - np.mean(off_psnr))
                                             if true_psnr else 0.0)}
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
        self.device = pick_device("auto")
        self.dist = setup_distributed(self.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.commit = git_commit()  # the code this run started with
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.output = Path(config.output)
        if self.dist.is_main:
            self.output.mkdir(parents=True, exist_ok=True)

        torch.manual_seed(config.seed)
        self.network = FBCNN(config.model)
        init_network(self.network)
        self.parent_stages: list[dict[str, Any]] = []
        self.init_sha256: str | None = None
        if config.init_from:
            self._start_from_parent(config)
        self.network.to(self.device)
        if config.channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)
        self.model: nn.Module = self.network
        if self.dist.world_size > 1:
            self.model = nn.parallel.DistributedDataParallel(self.network)
        o = config.optim
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=o.lr,
                                           weight_decay=o.weight_decay,
                                           fused=self.device.type == "cuda" or None)
        self.ema = EMA(self.network, o.ema_decay) if o.ema_decay > 0 else None
        self.rng = np.random.default_rng([config.seed, self.dist.rank])
        self.iteration = 0
        self.elapsed = 0.0
        self.patches = 0
        self.best_gain = -math.inf
        if resume and (self.output / STATE_FILE).is_file():
            self.load_state(self.output / STATE_FILE)

        images = load_images(find_images(config.data.folders), config.data.patch_size + 8)
        self.sampler = PatchSampler(config.data, images)
        self.batches = self._batches()
        check_validation_encoders(config.validation.encoders)
        self.val_images = load_validation(config) if self.dist.is_main else []
        self.stop_requested = False

    def _start_from_parent(self, config: TrainConfig) -> None:
        """The weights of `config.init_from` (its sha256 checked against the pinned one; a
        colour parent made grey for a grey stage), but fresh ones for the `reinit` modules;
        the parent's stages are kept for the provenance."""
        is_file = Path(config.init_from).is_file()
        self.init_sha256 = file_sha256(config.init_from) if is_file else None
        if config.init_sha256 and self.init_sha256 != config.init_sha256:
            raise ValueError(f"init_from {config.init_from} has sha256 {self.init_sha256}, "
                             f"the config pins {config.init_sha256}")
        parent = load_network(config.init_from)
        parent_network = parent.network
        channels = (parent_network.config.in_channels, config.model.in_channels)
        if channels == (3, 1):
            parent_network = grey_from_colour(parent_network)  # a grey stage from colour
        elif channels[0] != channels[1]:
            raise ValueError(f"init_from {config.init_from}: a grey network cannot start "
                             "a colour model (colour to grey works)")
        fresh = {k: v for k, v in self.network.state_dict().items()
                 if k.split(".")[0] in config.reinit}
        unknown = set(config.reinit) - {k.split(".")[0] for k in fresh}
        if unknown:
            raise ValueError(f"reinit: no module named {', '.join(sorted(unknown))}")
        self.network.load_state_dict({**parent_network.state_dict(), **fresh})
        self.parent_stages = json.loads(parent.metadata.get(PROVENANCE_KEY, "[]"))

    def _batches(self) -> Iterator[Batch]:
        if self.config.data.workers <= 0:
            while True:
                yield self.sampler.sample(self.rng)
        stream = PatchStream(self.sampler, self.config.seed, self.dist.rank, self.iteration)
        loader = torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=self.config.data.workers,
            pin_memory=self.device.type == "cuda", prefetch_factor=4, persistent_workers=True)
        yield from loader

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
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "patches": self.patches,
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
        self.iteration = int(state["iteration"])
        self.elapsed = float(state["elapsed"])
        self.patches = int(state.get("patches", 0))
        self.best_gain = float(state["best_gain"])
        rng_states = json.loads(state["rng_numpy"])
        self.rng.bit_generator.state = rng_states[min(self.dist.rank, len(rng_states) - 1)]
        torch.set_rng_state(state["rng_torch"].cpu())

    def export_network(self) -> FBCNN:
        network = FBCNN(self.config.model)
        network.load_state_dict(self.ema.shadow if self.ema else self.network.state_dict())
        return network.eval()

    def stage_record(self) -> dict[str, Any]:
        """This run's entry in the weights' provenance."""
        return {
            "name": self.config.name,
            "config": self.config.to_dict(),
            "init_from": self.config.init_from,
            "init_sha256": self.init_sha256,
            "git_commit": self.commit,
            "iterations": self.iteration,
            "patches": self.patches,
            "train_seconds": round(self.elapsed, 1),
            "device": device_description(self.device),
            "world_size": self.dist.world_size,
            "precision": self.precision,
            "torch": torch.__version__,
        }

    def export(self, path: Path, extra: dict[str, str] | None = None) -> None:
        stages = [*self.parent_stages, self.stage_record()]
        meta = {"iterations": str(self.iteration), "train_seconds": f"{self.elapsed:.0f}",
                "name": self.config.name,
                "total_train_seconds": f"{sum(s['train_seconds'] for s in stages):.0f}",
                PROVENANCE_KEY: json.dumps(stages)}
        meta.update(extra or {})
        save_network(self.export_network(), path, meta)

    # -- the loop ----------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def set_learning_rate(self) -> None:
        o = self.config.optim
        if o.schedule_minutes:
            progress = self.elapsed / (60 * o.schedule_minutes)
        else:
            progress = (self.iteration - o.warmup) / max(1, o.iterations - o.warmup)
        lr = o.lr * lr_factor(self.iteration, o.warmup, progress, o.min_lr / o.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> dict[str, torch.Tensor]:
        batch = next(self.batches)
        self.set_learning_rate()
        non_blocking = self.device.type == "cuda"
        degraded = batch.degraded.to(self.device, non_blocking=non_blocking)
        clean = batch.clean.to(self.device, non_blocking=non_blocking)
        target = batch.qf_target.to(self.device, non_blocking=non_blocking)
        mask = batch.qf_mask.to(self.device, non_blocking=non_blocking)
        if self.config.channels_last:
            degraded = degraded.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            restored, qf_pred = self.model(degraded, detach_qf=self.config.optim.qf_detach)
        image_loss = F.l1_loss(restored.float(), clean)
        qf_err = (qf_pred.float() - target).abs() * mask
        qf_loss = qf_err.sum() / mask.sum().clamp(min=1)
        loss = image_loss + self.config.optim.qf_loss_weight * qf_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.optim.grad_clip:
            nn.utils.clip_grad_norm_(self.network.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        if self.ema:
            self.ema.update(self.network)
        self.iteration += 1
        self.patches += len(degraded) * self.dist.world_size
        return {"loss": loss.detach(), "image_loss": image_loss.detach(),
                "qf_loss": qf_loss.detach()}

    def log(self, record: dict[str, Any]) -> None:
        if self.dist.is_main:
            with open(self.output / LOG_FILE, "a") as f:
                f.write(json.dumps(record) + "\n")

    def run_validation(self) -> dict[str, Any]:
        if not self.val_images:
            return {}
        # fp32 whatever the training precision, so runs of different precisions compare
        network = self.export_network().to(self.device)
        val = validate(network, self.val_images, self.config.validation.qfs, self.device,
                       self.config.validation.encoders)
        gain = float(np.mean([v["restored"] - v["jpeg"] for v in val.values()]))
        if gain > self.best_gain:
            self.best_gain = gain
            self.export(self.output / "best.safetensors", {"val_gain_db": f"{gain:.3f}"})
        return {"val": val, "val_gain_db": gain}

    def _run_end(self) -> tuple[float, float]:
        """Where this run ends: the iteration (the schedule's, or --iterations from here; none
        for a schedule that ends by time) and the seconds of training (the schedule's)."""
        o = self.config.optim
        end = o.iterations if self.max_iterations is None else min(
            o.iterations, self.iteration + self.max_iterations)
        if o.schedule_minutes and self.max_iterations is None:
            end = math.inf  # the schedule ends by time
        budget = 60 * o.schedule_minutes if o.schedule_minutes else math.inf
        return end, budget

    def _log_window(self, window: list[dict[str, torch.Tensor]], window_start: float,
                    window_patches: int, validate: bool) -> dict[str, Any]:
        """Log the losses averaged over the steps since the last record (and the validation,
        on the main process, when `validate`); returns the record."""
        now = time.monotonic()
        record: dict[str, Any] = {
            "iteration": self.iteration,
            "elapsed_s": round(self.elapsed, 1),
            "patches": self.patches,
            "patches_per_s": round(window_patches / max(now - window_start, 1e-9), 2),
            "lr": self.optimizer.param_groups[0]["lr"],
            **{k: float(torch.stack([w[k] for w in window]).mean()) for k in window[0]},
        }
        if validate and self.dist.is_main:
            record.update(self.run_validation())
        self.log(record)
        return record

    def _stop_now(self, deadline: float | None) -> bool:
        """Whether a signal or --minutes ends the run here; every process of a distributed
        run agrees (one stopping stops all, so that none waits on the others)."""
        stop = self.stop_requested or (deadline is not None and time.monotonic() > deadline)
        if self.dist.world_size > 1:
            flag = torch.tensor([1.0 if stop else 0.0], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop

    def train(self) -> int:
        """Train until the schedule, --iterations or --minutes ends, or a signal arrives."""
        def request_stop(signum: int, frame: object) -> None:
            self.stop_requested = True

        old = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        end, budget = self._run_end()
        deadline = None if self.minutes is None else time.monotonic() + 60 * self.minutes
        last_checkpoint = time.monotonic()
        window: list[dict[str, torch.Tensor]] = []
        window_start, window_patches = time.monotonic(), 0
        bar = tqdm(total=None if math.isinf(end) else end, initial=self.iteration,
                   disable=self.quiet or not self.dist.is_main, desc=self.config.name,
                   dynamic_ncols=True)
        if self.iteration == 0 and self.config.init_from and self.dist.is_main \
                and self.val_images:
            # where a fine-tune starts: the parent's validation, logged as iteration 0
            self.log({"iteration": 0, "elapsed_s": 0.0, "patches": 0, **self.run_validation()})
        self.network.train()
        try:
            while self.iteration < end and self.elapsed < budget:
                t0 = time.monotonic()
                window.append(self.step())
                self.elapsed += time.monotonic() - t0
                window_patches += self.config.data.batch_size * self.dist.world_size
                bar.update(1)
                log_now = self.iteration % 100 == 0 or self.iteration == end
                val_now = self.iteration % self.config.validation.every == 0
                if log_now or val_now:
                    record = self._log_window(window, window_start, window_patches, val_now)
                    bar.set_postfix(loss=f"{record['loss']:.4f}")
                    window, window_start, window_patches = [], time.monotonic(), 0
                stop = self._stop_now(deadline)
                if stop or time.monotonic() - last_checkpoint > 60 * self.config.checkpoint_minutes:
                    self.save_state()
                    last_checkpoint = time.monotonic()
                if stop:
                    break
            unvalidated = self.iteration % self.config.validation.every != 0
            if self.dist.is_main and self.val_images and unvalidated:
                self.log({"iteration": self.iteration, "elapsed_s": round(self.elapsed, 1),
                          "patches": self.patches, **self.run_validation()})
            self.save_state()
        finally:
            bar.close()
            for s, handler in old.items():
                signal.signal(s, handler)
        return self.iteration
