"""The inference engine: the only place that runs a network on an image.

Works on uint8 arrays (HxWx1 grey or HxWx3 colour); files are imageio's business.

    pixels -> QF (one global value) -> tiles on the JPEG grid -> network -> blend
           -> JPEG consistency (`fbcnn.jpeg.consistency`)
           -> near-lossless share (`fbcnn.jpeg.nearlossless`)

- **One global QF.** A model that knows the patch size its last training stage saw
  (`qf_tile`, from the weights' provenance) reads the QF as the mean of its decoupler over
  windows of that size, spread over the image (`qf_tile_boxes`: about 4% of a large
  image, at least 8 windows): the decoupler reads best at the size it learned on (whole
  photos read up to 5 QF low or high), and the reading never depends on the restoration
  tile size. Without it (published checkpoints, graphs without a QF input) an image
  restored in one pass reads its QF in that same pass, and an image restored in tiles from
  a few 256-pixel QF tiles (`QF_TILE`). Every tile gets that one QF.
- **Balanced tiles.** Images with a side longer than `tile` are cut into as few tiles as fit,
  of nearly equal size, whose corners sit on the JPEG block grid (so every tile sees its 8x8
  blocks where they are), overlapping by `overlap` pixels and blended with linear ramps.
- **Bounded memory.** Tiles are run row by row; a row's blended pixels are final once the next
  row's tiles are in, so besides the input and output images only one row of tiles is held
  in float (memory grows with the tile size and the image width, not the image area).
- **Precision.** bf16 autocast where it is fast (CUDA, or a CPU with AMX / AVX512-BF16), fp32
  elsewhere (`precision="auto"`); the blend and the output are always fp32 -> uint8.
- **Three runtimes, one path.** The network is a torch module (`fbcnn.networks.network.FBCNN`) or a
  graph run by OpenVINO or onnxruntime (`fbcnn.networks.onnx_runtime.GraphFBCNN`, numpy in and out:
  torch is not even imported); everything around it, tiles, QF, blend, projection, is the
  same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..device import available_cpus
from ..jpeg import nearlossless
from ..jpeg.consistency import JpegTables, project
from ..jpeg.tables import check_qf
from ..networks.config import FBCNNConfig, network_to_qf, qf_to_network

if TYPE_CHECKING:
    import torch

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32  # pixels shared by neighbouring tiles ...
RAMP_EDGE = 8  # ... whose outer 8 count for nothing in the blend (`_ramp`)
MIN_TILE = 64
QF_TILE = 256  # side of the tiles the global QF is read from (own size, not `tile`)
QF_TILE_SHARE = 0.04  # share of the image's area the QF tiles cover, at most ...
QF_TILES_MIN, QF_TILES_MAX = 2, 16  # ... within these counts
QF_WINDOWS_MIN, QF_WINDOWS_MAX = 8, 64  # counts of training-size QF windows (`qf_tile`)
QF_BATCH = 16  # QF windows per network call

Progress = Callable[[int, int], None]


class Backend(Protocol):
    """What runs the network: `fbcnn.networks.network.FBCNN` or a graph runtime
    (`fbcnn.networks.onnx_runtime.GraphFBCNN`, whose `runs_on_numpy` makes Restorer call its numpy
    methods `run_array` and `predict_qf_array` instead, with the same units and shapes).

    Both take and return tensors in the network's units: images (N, C, H, W) in [0, 1], the
    QF as (100 - QF) / 100 of shape (N, 1). A backend without a QF input (an ONNX graph
    exported without `--qf-input`) always uses its own prediction."""

    config: FBCNNConfig
    has_qf_input: bool

    def __call__(self, x: torch.Tensor,
                 qf_override: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        ...

    def predict_qf(self, x: torch.Tensor) -> torch.Tensor:
        ...

    def to(self, *args: Any, **kwargs: Any) -> Any:
        ...

    def eval(self) -> Any:
        ...


NO_QF_INPUT = ("this ONNX model was exported without --qf-input, so it can only use its own "
               "QF prediction; re-export it with --qf-input to set the QF")


@dataclass
class RestoreOutput:
    pixels: np.ndarray  # uint8, same shape as the input
    predicted_qf: float  # what the network reads from the image (1..100)
    used_qf: float  # what was fed to the decoder (the prediction, or the override)


def tile_spans(length: int, tile: int, overlap: int, grid: int) -> list[tuple[int, int]]:
    """[start, end) spans covering [0, length) with as few tiles of at most `tile` pixels as
    possible, of nearly equal size: starts on multiples of `grid`, neighbours overlapping by
    `overlap` pixels. One span if `tile` is 0 or covers the length."""
    if tile <= 0 or length <= tile:
        return [(0, length)]
    if tile < overlap + 2 * grid:
        raise ValueError(f"tile {tile} is too small for an overlap of {overlap} on a "
                         f"{grid}-pixel grid")
    count = max(2, math.ceil((length - overlap) / (tile - overlap)))
    while True:
        # interior boundaries evenly spaced, rounded to the grid
        starts = [0] + [round(i * (length - overlap) / count / grid) * grid
                        for i in range(1, count)]
        ends = [s + overlap for s in starts[1:]] + [length]
        if all(e - s <= tile for s, e in zip(starts, ends, strict=True)) and \
                all(b > a for a, b in zip(starts, starts[1:], strict=False)):
            return list(zip(starts, ends, strict=True))
        count += 1


def tile_starts(length: int, tile: int, overlap: int, grid: int) -> list[int]:
    """The start positions of `tile_spans` (kept for callers of the earlier API)."""
    return [s for s, _ in tile_spans(length, tile, overlap, grid)]


def qf_tile_boxes(h: int, w: int, grid: int, side: int = QF_TILE, least: int = QF_TILES_MIN,
                  most: int = QF_TILES_MAX) -> list[tuple[int, int, int, int]]:
    """(y, x, th, tw) of the tiles the global QF is read from: `side`-sized tiles on the
    block grid, spread evenly over the image, covering about QF_TILE_SHARE of it (within
    `least`..`most` tiles, fewer when the image has no room for them apart); the whole
    image when it is that small."""
    th, tw = min(side, h), min(side, w)
    if th == h and tw == w:
        return [(0, 0, h, w)]
    wanted = round(QF_TILE_SHARE * h * w / (th * tw))
    count = min(most, max(least, wanted))
    rows = max(1, min(round(math.sqrt(count * h / w)), count))
    cols = max(1, math.ceil(count / rows))

    def spread(length: int, size: int, n: int) -> list[int]:
        if n == 1 or length == size:
            return [(length - size) // 2 // grid * grid]
        return [int(i * (length - size) / (n - 1)) // grid * grid for i in range(n)]

    boxes = [(y, x, th, tw) for y in spread(h, th, rows) for x in spread(w, tw, cols)]
    return list(dict.fromkeys(boxes))


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """Blending weights along one side of a tile: over each overlap with a neighbour, 0 on
    the outer RAMP_EDGE pixels (at most a quarter of it; the network sees least there),
    then a linear ramp, then 1 on the inner RAMP_EDGE; the neighbour's weights mirror
    these, so the two add up to 1."""
    w = np.ones(length, np.float32)
    n = min(overlap, length // 2)
    if n > 0:
        edge = min(RAMP_EDGE, n // 4)
        core = n - 2 * edge
        ramp = np.zeros(n, np.float32)
        ramp[edge:n - edge] = (np.arange(core, dtype=np.float32) + 0.5) / core
        ramp[n - edge:] = 1
        if not at_start:
            w[:n] = ramp
        if not at_end:
            w[-n:] = ramp[::-1]
    return w


class Restorer:
    """Restores images with one FBCNN network (torch module or graph runtime).

    `tile` bounds memory: images with a side longer than `tile` are processed in tiles;
    0 or None restores in one pass. `precision`: 'auto', 'fp32', 'bf16' or (CUDA) 'fp16'
    (autocast; the QF's MLPs stay in fp32).
    """

    def __init__(self, network: Backend, device: str | torch.device = "auto",
                 tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                 precision: str = "auto", qf_tile: int | None = None) -> None:
        tile = tile or 0
        if 0 < tile < MIN_TILE:
            raise ValueError(f"tile must be 0 (one pass) or at least {MIN_TILE}, got {tile}")
        if qf_tile is not None and not 8 <= qf_tile <= 4096:
            raise ValueError(f"qf_tile must be 8..4096 pixels, got {qf_tile}")
        self.on_numpy = bool(getattr(network, "runs_on_numpy", False))
        self.is_torch = False  # a torch.nn.Module (else a look-alike: fp32, as it is)
        self.channels_last = False
        if self.on_numpy:  # a graph runtime: its own device and precision
            self.device: Any = getattr(network, "device", "cpu")
            self.network = network
            self.precision = str(getattr(network, "precision", "fp32"))
        else:
            import torch

            from ..device import pick_device, resolve_precision

            self.is_torch = isinstance(network, torch.nn.Module)
            self.device = pick_device(device) if isinstance(device, str) else device
            self.network = network.to(self.device).eval()
            self.channels_last = self.is_torch and self.device.type == "cpu"
            if self.channels_last:
                self.network = self.network.to(memory_format=torch.channels_last)
            if precision == "fp16":  # opt-in, for CUDA cards without bf16
                if self.device.type != "cuda":
                    raise ValueError("--precision fp16 is for CUDA GPUs, not "
                                     f"{self.device.type}")
                self.precision = "fp16" if self.is_torch else "fp32"
            else:
                self.precision = (resolve_precision(precision, self.device) if self.is_torch
                                  else "fp32")
        self.tile = tile
        self.overlap = overlap
        self.threads = available_cpus()  # CPU threads for the numpy work (the projection)
        # windows of the last training stage's patch size (None: the image, or QF_TILE tiles)
        self.qf_tile = qf_tile if self.has_qf_input else None

    def set_threads(self, threads: int) -> None:
        """CPU threads for the network (torch's are per process, onnxruntime's per model)
        and for the JPEG-consistency projection."""
        self.threads = max(1, int(threads))
        if self.on_numpy:
            self.network.set_threads(threads)  # type: ignore[attr-defined]
        else:
            import torch

            torch.set_num_threads(threads)

    @property
    def channels(self) -> int:
        return self.network.config.in_channels

    @property
    def has_qf_input(self) -> bool:
        return bool(getattr(self.network, "has_qf_input", True))

    def _tensor(self, pixels: np.ndarray) -> torch.Tensor:
        """uint8 H x W x C -> float (1, C, H, W) in [0, 1] on the device."""
        return self._tensor_batch(pixels[None])

    def _tensor_batch(self, batch: np.ndarray) -> torch.Tensor:
        """N x H x W x C uint8 -> float (N, C, H, W) in [0, 1] on the device."""
        import torch

        x = torch.from_numpy(np.array(batch)).permute(0, 3, 1, 2)  # a writable copy
        x = x.to(self.device, torch.float32).div_(255.0)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _array(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 H x W x C -> float32 (1, C, H, W) in [0, 1], what an onnxruntime graph takes."""
        return self._array_batch(pixels[None])

    @staticmethod
    def _array_batch(batch: np.ndarray) -> np.ndarray:
        """N x H x W x C uint8 -> float32 (N, C, H, W) in [0, 1]."""
        x = batch.transpose(0, 3, 1, 2).astype(np.float32)
        x *= np.float32(1 / 255.0)
        return x

    def _engine(self) -> Any:
        """No-grad (and autocast) for a torch network; nothing for onnxruntime."""
        if self.on_numpy:
            return nullcontext()
        import contextlib

        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            stack.enter_context(torch.autocast(self.device.type, dtype=dtype))
        return stack

    def check(self, pixels: np.ndarray) -> np.ndarray:
        """HxWxC uint8 pixels with this network's channel count (ValueError otherwise)."""
        if pixels.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image, got {pixels.dtype}")
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.ndim != 3 or pixels.shape[2] != self.channels:
            raise ValueError(f"this model takes {self.channels}-channel images, "
                             f"got shape {pixels.shape}")
        return pixels

    def one_pass(self, h: int, w: int) -> bool:
        """True when an h x w image is restored in one pass (no tiles)."""
        return not self.tile or (h <= self.tile and w <= self.tile)

    def tile_count(self, h: int, w: int, grid: int = 8) -> int:
        """How many tiles an h x w image is restored in (1: one pass)."""
        if self.one_pass(h, w):
            return 1
        return (len(tile_spans(h, self.tile, self.overlap, grid))
                * len(tile_spans(w, self.tile, self.overlap, grid)))

    def qf_boxes(self, h: int, w: int, grid: int = 8) -> list[tuple[int, int, int, int]]:
        """Where the global QF of an h x w image is read (see the module docstring)."""
        if self.qf_tile:
            return qf_tile_boxes(h, w, grid, self.qf_tile, QF_WINDOWS_MIN, QF_WINDOWS_MAX)
        return [(0, 0, h, w)] if self.one_pass(h, w) else qf_tile_boxes(h, w, grid)

    def predict_qf(self, pixels: np.ndarray, grid: int = 8) -> float:
        """The image's QF (1..100) as the network reads it, the same value `restore` uses:
        the mean of the decoupler over `qf_boxes` (windows of the same size go through the
        network together), whatever the restoration tile size."""
        pixels = self.check(pixels)
        h, w = pixels.shape[:2]
        boxes = self.qf_boxes(h, w, grid)
        groups: dict[tuple[int, int], list[np.ndarray]] = {}
        for y, x, th, tw in boxes:
            groups.setdefault((th, tw), []).append(pixels[y:y + th, x:x + tw])
        values = []
        with self._engine():
            for parts in groups.values():
                for i in range(0, len(parts), QF_BATCH):
                    batch = np.stack(parts[i:i + QF_BATCH])  # N x H x W x C
                    if self.on_numpy:
                        value = self.network.predict_qf_array(  # type: ignore[attr-defined]
                            self._array_batch(batch))
                        values += [float(v) for v in np.ravel(value)]
                    else:
                        read = self.network.predict_qf(self._tensor_batch(batch))
                        values += [float(v) for v in read.float().flatten()]
        return float(network_to_qf(np.float32(np.mean(values))))

    def restore(self, pixels: np.ndarray, qf: float | None = None, grid: int = 8,
                progress: Progress | None = None, tables: JpegTables | None = None,
                predicted_qf: float | None = None,
                near_lossless: bool = True) -> RestoreOutput:
        """Restore a uint8 image.

        `qf` (1..100) overrides the predicted QF; `predicted_qf`, when the caller already
        has `predict_qf`'s value, saves reading it again; `grid` is the JPEG block grid the
        tiles start on (16 for 4:2:0 colour, 8 otherwise); `progress(done, total)` is called
        after each tile; `tables`, the quantisation tables of the JPEG the pixels were
        decoded from, keep the result consistent with that file (`fbcnn.jpeg.consistency`).
        Without `qf`, a near-lossless JPEG (QF above 90, by its tables or else by the
        reading) keeps only part of the change (`fbcnn.jpeg.nearlossless`), unless
        `near_lossless` is False (a double JPEG: its earlier compression is not)."""
        pixels = self.check(pixels)
        if qf is not None:
            qf = check_qf(qf)
            if not self.has_qf_input and qf != predicted_qf:
                raise ValueError(NO_QF_INPUT)
        h, w = pixels.shape[:2]
        if self.qf_tile and predicted_qf is None:
            predicted_qf = self.predict_qf(pixels, grid)
        if self.one_pass(h, w) and self.qf_tile:
            with self._engine():
                restored, _ = self._run(pixels, predicted_qf if qf is None else qf,
                                        need_qf=False)
            out = RestoreOutput(_to_uint8(restored), float(predicted_qf),  # type: ignore[arg-type]
                                predicted_qf if qf is None else qf)  # type: ignore[arg-type]
        elif self.one_pass(h, w):
            # without an override the pass reads the QF itself: the same value as
            # predict_qf (same input, same encoder), so callers that read it first get
            # exactly the pixels of those that did not
            with self._engine():
                restored, own = self._run(pixels, qf)
            predicted = own if predicted_qf is None else predicted_qf
            out = RestoreOutput(_to_uint8(restored), predicted,
                                predicted if qf is None else qf)
        else:
            if predicted_qf is None:
                predicted_qf = self.predict_qf(pixels, grid)
            used = predicted_qf if qf is None else qf
            with self._engine():
                tiled = self._restore_tiled(pixels, used, grid, progress)
            out = RestoreOutput(tiled, predicted_qf, used)
            if self.on_numpy:  # onnxruntime keeps its arena: shrink it first
                self.network.release_memory()  # type: ignore[attr-defined]
            _release_free_memory()  # the tiles' activations, before the projection
        if progress and self.one_pass(h, w):
            progress(1, 1)
        if tables is not None:
            out.pixels = project(out.pixels, pixels, tables, workers=self.threads)
        if qf is None and near_lossless:  # a near-lossless JPEG keeps part of the change
            quality = nearlossless.quality(out.predicted_qf,
                                           None if tables is None else tables.quality)
            luma, chroma = nearlossless.strengths(
                quality, tables is not None and tables.chroma_steps_one)
            out.pixels = nearlossless.keep_share(out.pixels, pixels, luma, chroma)
        return out

    def _run(self, tile: np.ndarray, qf: float | None,
             need_qf: bool = True) -> tuple[np.ndarray, float]:
        """The network on one uint8 tile (inside `_engine()`): the restored image, float32
        H x W x C in the network's [0, 1] scale (not clamped), and the QF it read (1..100);
        `qf` (1..100) is fed to the decoder when given. With a QF fed and `need_qf` False a
        torch FBCNN skips its decoupler (`FBCNN.reconstruct`) and the QF returned is NaN."""
        wanted = qf_to_network(float(qf)) if qf is not None and self.has_qf_input else None
        if self.on_numpy and wanted is not None and not need_qf:
            out = self.network.reconstruct_array(self._array(tile), wanted)  # type: ignore[attr-defined]
            return out[0].transpose(1, 2, 0), math.nan
        if self.on_numpy:
            out, predicted = self.network.run_array(self._array(tile), wanted)  # type: ignore[attr-defined]
            return out[0].transpose(1, 2, 0), float(np.mean(network_to_qf(predicted)))
        import torch

        override = None if wanted is None else torch.tensor([[wanted]], device=self.device)
        if override is not None and not need_qf and hasattr(self.network, "reconstruct"):
            restored = self.network.reconstruct(self._tensor(tile), override)
            return _hwc(restored), math.nan
        restored, read = self.network(self._tensor(tile), override)
        return _hwc(restored), float(network_to_qf(read.float()).mean())

    def _restore_tiled(self, pixels: np.ndarray, qf: float, grid: int,
                       progress: Progress | None) -> np.ndarray:
        """Tiles row by row, each row blended into a float buffer that holds only the rows
        not yet final (see the module docstring)."""
        h, w, c = pixels.shape
        rows = tile_spans(h, self.tile, self.overlap, grid)
        cols = tile_spans(w, self.tile, self.overlap, grid)
        row_weights = _blend_weights(rows, h, self.overlap)
        col_weights = [255 * wx[:, None] for wx in _blend_weights(cols, w, self.overlap)]
        # a backend without a QF input reads its own QF in every tile
        tile_qf = qf if self.has_qf_input else None
        result = np.empty_like(pixels)
        carry: np.ndarray | None = None  # blended rows shared with the next row of tiles
        total, done = len(rows) * len(cols), 0
        for r, (y0, y1) in enumerate(rows):
            acc = np.zeros((y1 - y0, w, c), np.float32)
            if carry is not None:
                acc[:len(carry)] = carry
            wy = row_weights[r][:, None, None]
            for (x0, x1), wx in zip(cols, col_weights, strict=True):
                tile, _ = self._run(pixels[y0:y1, x0:x1], tile_qf, need_qf=False)
                np.clip(tile, 0, 1, out=tile)
                tile *= wy * wx  # the blend weight, and the scale to 0..255
                acc[:, x0:x1] += tile
                done += 1
                if progress:
                    progress(done, total)
            final = (rows[r + 1][0] if r + 1 < len(rows) else y1) - y0
            np.round(acc[:final], out=acc[:final])
            result[y0:y0 + final] = np.clip(acc[:final], 0, 255, out=acc[:final])
            carry = acc[final:] if final < y1 - y0 else None
        return result


def _blend_weights(spans: list[tuple[int, int]], length: int, overlap: int) -> list[np.ndarray]:
    """Each span's `_ramp`, divided by the sum of all the spans' ramps at each position, so
    that they add up to exactly 1 along the side (the 2-D weights of a tile are the product
    of its row's and its column's, so they add up to 1 too)."""
    ramps = [_ramp(b - a, overlap, a == 0, b >= length) for a, b in spans]
    total = np.zeros(length, np.float32)
    for (a, b), ramp in zip(spans, ramps, strict=True):
        total[a:b] += ramp
    return [ramp / total[a:b] for (a, b), ramp in zip(spans, ramps, strict=True)]


def _hwc(restored: torch.Tensor) -> np.ndarray:
    """The first image of a (N, C, H, W) network output as float32 H x W x C numpy."""
    return restored[0].float().permute(1, 2, 0).cpu().numpy()


def _release_free_memory() -> None:
    """Hand memory freed by the network back to the OS (glibc keeps it otherwise, and the
    process's peak would add the next step's needs on top of it)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _to_uint8(out: np.ndarray) -> np.ndarray:
    """float32 H x W x C in [0, 1] (not clamped) -> uint8, rounding half to even."""
    scaled = np.clip(out, 0, 1)
    scaled *= 255
    return np.round(scaled).astype(np.uint8)
