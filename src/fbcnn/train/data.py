"""Training data: images held in memory, random patches, 8-fold augmentation, and the
paper's degradations. Deterministic given the generator, so a resumed run sees the same
patches it would have seen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..images.files import ImageError, list_inputs, read_image
from ..jpeg.color import rgb_to_gray_plain, rgb_to_y
from ..jpeg.degrade import (
    DegradedPatch,
    EncoderMixture,
    QFDistribution,
    augment,
    random_double_jpeg,
    single_jpeg,
)
from ..networks.network import qf_to_network
from .config import DataConfig


def find_images(folders: list[str]) -> list[Path]:
    """The image files under `folders` (recursively, sorted; as `fbcnn restore --recursive`
    lists them)."""
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"no such data folder: {folder}")
    paths = list_inputs(folders, recursive=True)
    if not paths:
        raise FileNotFoundError(f"no images in {', '.join(folders)}")
    return paths


def load_images(paths: list[Path], min_side: int) -> list[np.ndarray]:
    """uint8 arrays, HxWx3 for colour files and HxWx1 for grey ones (read as `fbcnn
    restore` reads them: a file it refuses, e.g. 16-bit, is a one-line ValueError)."""
    images = []
    for p in paths:
        try:
            arr = read_image(p).pixels
        except ImageError as e:
            raise ValueError(f"training data: {e}") from None
        if min(arr.shape[:2]) >= min_side:
            images.append(arr)
    return images


@dataclass
class Batch:
    degraded: torch.Tensor  # (N, C, P, P) float in [0, 1]
    clean: torch.Tensor
    qf_target: torch.Tensor  # (N, 1) in the network's convention (100 - QF) / 100
    qf_mask: torch.Tensor  # (N, 1) 1 where the sample has a QF target (single JPEG)

    def pin_memory(self) -> Batch:
        """Page-locked copies (DataLoader's pin_memory calls this), for fast GPU transfers."""
        return Batch(self.degraded.pin_memory(), self.clean.pin_memory(),
                     self.qf_target.pin_memory(), self.qf_mask.pin_memory())


class PatchSampler:
    """Draws batches of (degraded, clean, QF) patches from images in memory."""

    def __init__(self, config: DataConfig, images: list[np.ndarray]) -> None:
        self.config = config
        self.images = images
        self.margin = 8
        self.qfs = QFDistribution(common=config.qf_common, high=config.qf_high,
                                  full_range=(int(config.qf_range[0]), int(config.qf_range[1])),
                                  high_range=(int(config.qf_high_range[0]),
                                              int(config.qf_high_range[1])))
        self.encoders = EncoderMixture.from_config(config.encoders, config.subsampling)

    def _clean_patch(self, rng: np.random.Generator) -> np.ndarray:
        size = self.config.patch_size + self.margin
        image = self.images[int(rng.integers(len(self.images)))]
        h, w = image.shape[:2]
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        patch = image[y:y + size, x:x + size]
        (patch,) = augment((patch,), int(rng.integers(8)))
        if self.config.gray and patch.shape[2] == 3:
            use_plain = rng.random() < self.config.plain_gray_probability
            patch = rgb_to_gray_plain(patch) if use_plain else rgb_to_y(patch)
        elif not self.config.gray and patch.shape[2] == 1:
            patch = np.repeat(patch, 3, axis=2)
        return patch

    def sample(self, rng: np.random.Generator) -> Batch:
        p = self.config.patch_size
        degraded, clean, targets, mask = [], [], [], []
        for _ in range(self.config.batch_size):
            patch = self._clean_patch(rng)
            u = rng.random()
            if u < self.config.clean_probability:
                out = DegradedPatch(patch[:p, :p], patch[:p, :p], 100)
            elif u < self.config.clean_probability + self.config.double_probability:
                out = random_double_jpeg(patch, p, rng, gray=self.config.gray,
                                         distribution=self.qfs,
                                         stronger_first=self.config.double_stronger_first,
                                         encoders=self.encoders)
            else:
                qf = self.qfs.draw(rng)
                encoder = None if self.encoders is None else self.encoders.draw(rng)
                out = single_jpeg(patch, p, qf, rng, encoder)
            degraded.append(out.degraded)
            clean.append(out.clean)
            targets.append(0.0 if out.qf is None else float(qf_to_network(out.qf)))
            mask.append(0.0 if out.qf is None else 1.0)
        return Batch(
            degraded=_to_tensor(np.stack(degraded)),
            clean=_to_tensor(np.stack(clean)),
            qf_target=torch.tensor(targets, dtype=torch.float32)[:, None],
            qf_mask=torch.tensor(mask, dtype=torch.float32)[:, None],
        )


def _to_tensor(batch: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)


class PatchStream(torch.utils.data.IterableDataset):
    """Endless batches from a PatchSampler in DataLoader workers, one random stream per
    (seed, rank, start iteration, worker): a resumed run draws fresh patches, not the ones
    an uninterrupted run would have drawn (use workers: 0 for that)."""

    def __init__(self, sampler: PatchSampler, seed: int, rank: int, start: int) -> None:
        self.sampler = sampler
        self.key = [seed, rank, start]

    def __iter__(self):  # type: ignore[no-untyped-def]
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([*self.key, info.id if info else 0])
        while True:
            yield self.sampler.sample(rng)
