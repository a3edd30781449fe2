"""The plain user-facing API: `load_model(name_or_path)`, `model.restore(image, qf=None)`
(an image file, a PIL image or an array) and `result.save(path)`."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar, overload

import numpy as np
from PIL import Image

from ..device import available_cpus
from ..jpeg.color import is_neutral
from ..jpeg.consistency import JpegTables
from ..networks.modelfiles import NAMED_MODELS, resolve_model, training_patch_size
from ..networks.runtimes import Runtime
from .finish import finish
from .restorer import DEFAULT_TILE, Progress, Restorer

if TYPE_CHECKING:
    import torch

    from ..images.files import LoadedImage
    from ..networks.onnx_runtime import GraphFBCNN

API_MODES = ("L", "LA", "RGB", "RGBA")

ImageT = TypeVar("ImageT", np.ndarray, Image.Image)


@dataclass
class Result(Generic[ImageT]):
    """What `Model.restore` gives: the restored image and the QFs, and for a file or PIL
    image what `save` writes with it (the input's ICC profile and EXIF)."""

    image: ImageT  # an array for an array (same shape); else a PIL image, upright
    predicted_qf: float  # the QF the network reads from the image (1..100)
    used_qf: float  # the QF fed to the network (the prediction, or the one asked for)
    icc_profile: bytes | None = None  # the input's ICC profile
    exif: bytes | None = None  # the input's EXIF block (b"Exif\0\0"...), orientation 1
    source: Path | None = None  # the file restored: `save` never overwrites it

    def save(self, path: str | Path, *, protect: Iterable[str | Path] = (),
             quality: int | None = None) -> Path:
        """Write the image to `path` as `fbcnn restore` writes its outputs: the format by
        the suffix (.png, the default when there is none; .jpg/.jpeg at `quality`, default
        95, alpha flattened onto white; .webp lossless, or lossy at `quality` when given;
        .tif, .bmp), alpha kept (but in JPEG), the ICC profile and EXIF kept (EXIF in PNG,
        JPEG and WebP), atomically (a temp file renamed). Refuses to overwrite the file
        restored or any path in `protect` (ImageError). Returns the path written."""
        from ..images.files import write_image

        pixels, alpha = _pixels_and_alpha(self.image)
        keep = [Path(p) for p in protect]
        if self.source is not None:
            keep.append(self.source)
        return write_image(path, pixels, alpha=alpha, icc_profile=self.icc_profile,
                           exif=self.exif, protect=keep, quality=quality)


def _pixels_and_alpha(image: np.ndarray | Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 HxW / HxWx1 / HxWx3 pixels and the HxW alpha (None) of a result's image."""
    if isinstance(image, Image.Image):
        if image.mode not in API_MODES:
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (2, 4):
        return image[:, :, :-1], np.ascontiguousarray(image[:, :, -1])
    return image, None


class Model:
    """A loaded FBCNN model. `network` is what computes: the torch module, or its graph in
    OpenVINO or onnxruntime (`backend`); `info` says what it is (`ModelInfo`)."""

    def __init__(self, network: torch.nn.Module | Runtime, name: str = "model",
                 device: str = "auto", tile: int | None = DEFAULT_TILE,
                 precision: str = "auto", qf_tile: int | None = None, *,
                 source: Path | None = None) -> None:
        """`network`: a torch module (run on `device` in `precision`) or a graph runtime (its
        own device and precision); `qf_tile`: the window side the QF is read at
        (`fbcnn.jpeg.qf`), which `load_model` takes from the weights' provenance; `source`:
        the file it was loaded from."""
        self.network = network
        self.restorer = Restorer.of(network, device=device, precision=precision,
                                    qf_tile=qf_tile, tile=tile, name=name, source=source)
        self.info = self.restorer.info
        self.threads = available_cpus()  # for the JPEG-consistency projection

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def backend(self) -> str:
        """What runs the network: 'openvino', 'onnx' (onnxruntime) or 'torch'."""
        return self.info.runtime

    def set_threads(self, threads: int) -> None:
        """CPU threads the network and the projection may use (batches split the cores
        between images)."""
        self.threads = max(1, int(threads))
        self.restorer.runtime.set_threads(threads)

    def prepare(self) -> None:
        """Compile now what a restore runs (see `Runtime.prepare`)."""
        self.restorer.runtime.prepare()

    @property
    def channels(self) -> int:
        return self.info.channels

    def _fit_channels(self, pixels: np.ndarray) -> tuple[np.ndarray, str | None]:
        """The pixels the network takes, and how they were fitted: "grey on colour" (grey
        images on a colour model are restored as RGB and turned back into grey), "neutral
        on grey" (a colour image whose channels are all equal, on a grey model: one of them
        restored, then given to all three), None (as they are)."""
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.shape[2] == self.channels:
            return pixels, None
        if pixels.shape[2] == 1 and self.channels == 3:
            return np.repeat(pixels, 3, axis=2), "grey on colour"
        if self.channels == 1 and is_neutral(pixels):
            return pixels[:, :, :1], "neutral on grey"
        raise ValueError(f"model '{self.name}' takes {self.channels}-channel images, "
                         f"got {pixels.shape[2]} channels (use a colour model)")

    def predict_qf(self, pixels: np.ndarray, grid: int = 8) -> float:
        return self.restorer.predict_qf(self._fit_channels(pixels)[0], grid)

    def restore_array(self, pixels: np.ndarray, qf: float | None = None,
                      grid: int = 8, tables: JpegTables | None = None, *,
                      predicted_qf: float | None = None,
                      progress: Progress | None = None,
                      near_lossless: bool = True) -> Result[np.ndarray]:
        """Restore a uint8 HxW, HxWx1 or HxWx3 array; the result has the input's shape.
        `tables`: the quantisation tables of the JPEG the pixels come from, to keep the
        result consistent with that file (JPEG consistency); `predicted_qf`: this model's
        `predict_qf` of the pixels when already known; `progress(done, total)` per tile;
        `near_lossless`: without `qf`, a near-lossless JPEG keeps only part of the change
        (`fbcnn.jpeg.nearlossless`; False for a double JPEG)."""
        fitted, fit = self._fit_channels(pixels)
        out = self.restorer.restore(fitted, qf=qf, grid=grid, predicted_qf=predicted_qf,
                                    progress=progress)
        # finished in one channel for a grey model on three equal ones: a colour JPEG's
        # tables then bound its luma (as `consistency.project` does a grey image's)
        result = finish(out.pixels, fitted, tables, out.predicted_qf,
                        near_lossless=near_lossless and qf is None, workers=self.threads)
        if fit == "grey on colour":
            grey = result.astype(np.float32).mean(axis=2, keepdims=True)
            result = np.round(grey).astype(np.uint8)
        elif fit == "neutral on grey":
            result = np.repeat(result, 3, axis=2)
        return Result(result.reshape(pixels.shape), out.predicted_qf, out.used_qf)

    @overload
    def restore(self, image: np.ndarray, qf: float | None = None, consistency: bool = True,
                near_lossless: bool = True) -> Result[np.ndarray]: ...

    @overload
    def restore(self, image: Image.Image | str | os.PathLike[str], qf: float | None = None,
                consistency: bool = True,
                near_lossless: bool = True) -> Result[Image.Image]: ...

    def restore(self, image: np.ndarray | Image.Image | str | os.PathLike[str],
                qf: float | None = None, consistency: bool = True,
                near_lossless: bool = True) -> Result[np.ndarray] | Result[Image.Image]:
        """Restore an image file (a path), a PIL image (L, LA, RGB, RGBA; P, PA and CMYK are
        read as their files are) or a numpy uint8 array (HxW, HxWx1, HxWx3).

        A path or a PIL image goes the way `fbcnn restore` takes a file (`imageio`, then
        `analysis.analyse` and `analysis.restore_loaded`): the result is a PIL image turned
        upright by the EXIF orientation, alpha kept, with the input's ICC profile and EXIF
        (orientation 1) in `result.image.info` and in `Result.save`'s files; one from a
        JPEG is kept consistent with its quantisation tables unless `consistency` is False,
        and without `qf` is checked for an earlier, double compression. A CMYK or YCCK JPEG
        file is read as RGB (through its ICC profile into sRGB when it has one) and then
        restored without either. (A file without
        JPEG compression is restored all the same, as `fbcnn restore --not-jpeg restore`.)
        An array is restored as it is (no tables, no analysis) into an array of its shape.
        A near-lossless JPEG keeps only part of the change unless `qf` is given or
        `near_lossless` is False (`fbcnn.jpeg.nearlossless`)."""
        if isinstance(image, np.ndarray):
            return self.restore_array(image, qf, near_lossless=near_lossless)
        from ..images.files import loaded_from_pil, read_image

        if isinstance(image, (str, os.PathLike)):
            loaded = read_image(image)
            source: Path | None = loaded.path
        elif isinstance(image, Image.Image):
            if image.mode not in (*API_MODES, "CMYK", "P", "PA"):
                raise ValueError(f"cannot restore a PIL image in mode {image.mode} (convert it "
                                 f"to one of {', '.join(API_MODES)} first)")
            loaded = loaded_from_pil(image)  # CMYK, palettes: as their files are read
            filename = getattr(image, "filename", "")
            source = Path(filename) if filename else None
        else:
            raise TypeError("expected an image file path (str or pathlib.Path), a PIL image "
                            f"or a numpy array, got {type(image).__name__}")
        return self._restore_loaded(loaded, qf, consistency, near_lossless, source)

    def _restore_loaded(self, loaded: LoadedImage, qf: float | None, consistency: bool,
                        near_lossless: bool, source: Path | None) -> Result[Image.Image]:
        """A decoded file or PIL image through the CLI's analysis and restoration."""
        from .analysis import analyse, restore_loaded

        # as `fbcnn restore` (its default --not-jpeg aside): no double-JPEG analysis when
        # the QF is given
        found = analyse(loaded, self, double=qf is None, trace=False)
        result = restore_loaded(loaded, found, qf, consistency, near_lossless=near_lossless)
        pixels = result.image
        restored = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        if loaded.alpha is not None:
            restored.putalpha(Image.fromarray(loaded.alpha))
        if loaded.icc_profile:
            restored.info["icc_profile"] = loaded.icc_profile
        if loaded.exif:
            restored.info["exif"] = loaded.exif
        return Result(restored, result.predicted_qf, result.used_qf, loaded.icc_profile,
                      loaded.exif, source)


def load_model(name_or_path: str | Path = "color", device: str = "auto",
               tile: int | None = DEFAULT_TILE, precision: str = "auto",
               backend: str = "auto", megapixels: float | None = None) -> Model:
    """A shipped model by name ('color', 'gray', 'color-double', 'gray-double') or a
    checkpoint file (.safetensors, or the published .pth files), or an exported .onnx graph
    (or OpenVINO .xml). `precision`: 'auto' (bf16 where the hardware computes it natively,
    else fp32), 'fp32', 'bf16' or 'int8' (a shipped model's quantised graph, in OpenVINO).
    `backend`: 'auto' (OpenVINO on the CPU, torch on a GPU: see `fbcnn.networks.runtimes`),
    'openvino', 'onnx' or 'torch'. `megapixels` is accepted for earlier callers and unused."""
    from ..networks.runtimes import choose_backend

    path = resolve_model(name_or_path)
    name = str(name_or_path) if str(name_or_path) in NAMED_MODELS else path.name
    if path.suffix.lower() in (".onnx", ".xml"):  # a graph: OpenVINO or onnxruntime
        return Model(_graph_file(path, device, precision, backend), name=name, tile=tile,
                     source=path)
    chosen = choose_backend(backend, device, precision, megapixels)
    qf_tile = training_patch_size(path)  # the QF is read at the size the model learned on
    if chosen != "torch":
        try:
            network = _graph_of(path, chosen, precision)
        except (OSError, ValueError, RuntimeError) as e:
            explicit = chosen if backend != "auto" or precision == "int8" else \
                os.environ.get("FBCNN_BACKEND")
            if explicit in ("onnx", "openvino") or precision == "int8":
                from ..networks.modelfiles import CheckpointError

                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise CheckpointError(f"cannot run {path} in {chosen}: {reason}") from None
            # no graph and no cache to export one into: torch (a bad checkpoint then fails
            # below with its own message)
        else:
            return Model(network, name=name, tile=tile, qf_tile=qf_tile, source=path)
    from ..networks.checkpoints import load_network

    loaded = load_network(path)
    return Model(loaded.network, name=name, device=device, tile=tile, precision=precision,
                 qf_tile=qf_tile, source=path)


def _graph_file(path: Path, device: str, precision: str, backend: str) -> GraphFBCNN:
    """An exported graph file in the runtime asked for (auto: OpenVINO on the CPU)."""
    from ..networks.onnx_runtime import OnnxFBCNN
    from ..networks.openvino_runtime import OpenVinoFBCNN
    from ..networks.runtimes import _check, onnxruntime_installed, openvino_installed

    backend = _check(backend, precision)
    ir = path.suffix.lower() == ".xml"
    if backend == "torch":
        raise ValueError(f"{path.name} is an exported graph: run it with --backend openvino "
                         "or onnx")
    if backend == "openvino" or ir or (
            backend == "auto" and device in ("auto", "cpu") and openvino_installed()):
        if backend == "onnx":
            raise ValueError(f"{path.name} is an OpenVINO graph: run it with --backend openvino")
        return OpenVinoFBCNN(path, precision="auto" if precision == "int8" else precision)
    if not onnxruntime_installed():
        raise ValueError("running .onnx graphs needs OpenVINO or onnxruntime: "
                         "pip install openvino")
    return OnnxFBCNN(path, device=device)


def _graph_of(weights: Path, runtime: str, precision: str) -> GraphFBCNN:
    """The weights' graph in `runtime`: the one shipped beside them if it was made for these
    bytes, else (not for int8) the graph exported into the cache."""
    from ..networks.onnx_runtime import OnnxFBCNN
    from ..networks.openvino_runtime import OpenVinoFBCNN
    from ..networks.runtimes import cached_graph, graph_matches, shipped_graph

    def open_graph(graph: Path) -> GraphFBCNN:
        if runtime == "openvino":
            return OpenVinoFBCNN(graph, precision=precision)
        return OnnxFBCNN(graph, device="cpu")

    shipped = shipped_graph(weights, precision)
    if shipped is not None:
        network = open_graph(shipped)
        if graph_matches(network.metadata, weights):
            return network
    if precision == "int8":
        raise ValueError(f"no int8 graph made for {weights.name} (the shipped models have "
                         "one: scripts/make_int8_graphs.py)")
    return open_graph(cached_graph(weights))
