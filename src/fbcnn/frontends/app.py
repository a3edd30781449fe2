"""`fbcnn serve`: a Gradio page over the library (`pip install 'fbcnn[app]'`).

Upload or paste an image: the page shows the QF the network predicts, the QF written in the
file and the double-JPEG verdict, restores the image (tiled, with progress) and offers the
restored PNG. That PNG is exactly what `fbcnn restore [--qf N]` writes for the same file: the
handlers call `pipeline.restore_file` on the uploaded file itself, never on pixels the
browser or Gradio re-encoded. Everything heavy runs one request at a time; other users wait
in the queue.

A request whose client goes away (a cancelled call, a closed or reloaded tab) is dropped: its
work stops at the next tile (or step of the analysis) and the next user's starts. Failures
show once, as one line that stays until dismissed, and clear the result. While auto is on,
the strength slider shows the QF the restore used (greyed out until an image's prediction is
known).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import errno
import mimetypes
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import gradio as gr

from ..engine import analysis
from ..engine.pipeline import ModelSet
from ..engine.restorer import DEFAULT_TILE
from ..images.files import ImageError, ImageTooLarge, LoadedImage, read_image, write_image
from ..networks.modelfiles import CheckpointError, available_models
from . import APP_MAX_MEGAPIXELS, APP_MAX_UPLOAD_MB

KINDS = ("auto", "colour", "grey")
# model variants: (label, suffix of the named model)
VARIANTS = (("FBCNN (color / gray)", ""),
            ("FBCNN-D, double JPEG (color-double / gray-double)", "-double"))
BROWSER_FORMATS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
KEEP_RESULTS_S = 3600
QUEUE = "fbcnn"  # one concurrency group: one model call at a time, whoever asks
Outputs = tuple[Any, ...]  # (info, strength, auto, comparison, download, status, image)

STRENGTH_INFO = "The QF fed to the network."
WAITING_INFO = "auto: the predicted QF, shown once an image is read"  # greyed out meanwhile
CSS = "#fbcnn-info table {font-size: 0.95em} #fbcnn-compare img {image-rendering: pixelated}"


@dataclass
class Analysis:
    """What the page shows about an upload before restoring it."""

    name: str  # the file name as uploaded
    model: str
    width: int
    height: int
    format: str
    mode: str
    subsampling: str | None
    header_qf: int | None
    predicted_qf: float
    double: dict[str, Any] | None  # DoubleJpegVerdict.to_json(), None if not a JPEG
    auto_qf: float  # what `fbcnn restore` uses: the prediction, or the double-JPEG QF
    # not a JPEG file: whether its pixels bear JPEG compression (JpegTrace.to_json())
    trace: dict[str, Any] | None = None
    image: LoadedImage | None = None  # the decoded upload, restored without reading it again
    found: analysis.Analysis | None = None  # what restoring it needs (model, grid, QFs)


@dataclass
class Restored:
    png: Path  # the restored PNG (what the page offers for download)
    before: Path  # the input, in a format the browser shows
    used_qf: float
    model: str
    seconds: float
    command: str  # the equivalent command line
    # no JPEG compression in a non-JPEG upload, restored in auto: its pixels are the result
    unchanged: bool = False


def uploaded_file(**kwargs: Any) -> gr.Image:
    """The image input. The events that read it take their inputs unprocessed
    (preprocess=False) and get the uploaded file from `upload_path`, untouched: Gradio does
    not decode it, so bad files reach fbcnn.images.files, which explains them in one line.

    (Not an override of the component's `preprocess`: Gradio rebuilds a session's copy of a
    component from its constructor arguments whenever an event updates it, so after the
    first result that copy would decode uploads again, and a bad file would fail inside
    Gradio with no message on the page. Nor a subclass: Gradio writes .pyi stubs next to
    modules that define components.)"""
    return gr.Image(type="filepath", image_mode=None, **kwargs)


def upload_path(payload: Any, folder: str | Path) -> str | None:
    """The uploaded file's path from the image input's unprocessed value (Gradio's FileData,
    as a dict; a path when called directly): the file itself, never re-encoded. An image
    sent inline as a data: URL (API clients) is written to a new folder in `folder` as its
    own bytes."""
    if payload is None or isinstance(payload, (str, Path)):
        return None if payload is None else str(payload)

    def field(name: str) -> Any:
        return payload.get(name) if isinstance(payload, dict) else getattr(payload, name, None)

    url, path = field("url") or "", field("path")
    if not url.startswith("data:"):
        if not path:
            raise gr.Error("no file in the upload", duration=None, print_exception=False)
        return str(path)
    header, _, data = url.partition(",")
    try:
        content = (base64.b64decode(data, validate=True) if header.endswith(";base64")
                   else data.encode())
    except (binascii.Error, ValueError):
        raise gr.Error("the inline image (data: URL) is not valid base64", duration=None,
                       print_exception=False) from None
    kind = header[len("data:"):].split(";")[0]
    name = Path(field("orig_name") or "").name or (
        "pasted" + (mimetypes.guess_extension(kind) or ".img"))
    target = Path(folder) / uuid.uuid4().hex / name
    target.parent.mkdir(parents=True)
    target.write_bytes(content)
    return str(target)


def _message(exc: Exception, path: str | Path) -> str:
    """One line for the page; the uploaded file is named as the user named it."""
    if isinstance(exc, ImageError) and exc.path is not None:
        return f"{Path(path).name}: {exc.reason}"
    return " ".join(str(exc).split()) or type(exc).__name__


class Dropped(Exception):
    """The client of a running request went away: raised between tiles (or steps of the
    analysis) by the request's progress callbacks, so its work stops there."""


class Stop(threading.Event):
    """Set when a request's client goes away; `where` says where its work stopped."""

    where = ""


def _check(stop: Stop | None, where: str) -> None:
    """Raise Dropped (at `where`) once `stop` is set."""
    if stop is not None and stop.is_set():
        stop.where = where
        raise Dropped(where)


_END = object()  # a generator's end, as a value (StopIteration cannot cross threads)


async def _step(steps: Iterator[Outputs], stop: Stop) -> Any:
    """The next value of `steps`, computed in a worker thread (_END when it is done). If the
    request is cancelled meanwhile, `stop` is set and the worker is waited for (it stops at
    its next tile) before the cancellation goes on: one model call at a time, even then."""
    finished = threading.Event()

    def run() -> Any:
        try:
            return next(steps, _END)
        finally:
            finished.set()

    try:
        return await asyncio.to_thread(run)  # a cancel does not wait for it: see below
    except asyncio.CancelledError:
        stop.set()
        while not finished.is_set():
            try:
                await asyncio.sleep(0.02)
            except asyncio.CancelledError:  # a second cancel: still wait for the worker
                continue
        raise


class Handlers:
    """The page's actions as plain methods over the library (tests call them directly);
    Gradio calls their `*_event` versions, with the inputs unprocessed (the image as the
    uploaded file, see `upload_path`), which run them in a worker thread and drop the
    request when its client goes away."""

    def __init__(self, models: ModelSet | None = None,
                 max_megapixels: float = APP_MAX_MEGAPIXELS,
                 workdir: str | Path | None = None) -> None:
        self.models = models if models is not None else ModelSet()
        self.max_megapixels = float(max_megapixels)
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="fbcnn-app-")
            atexit.register(shutil.rmtree, workdir, ignore_errors=True)
        self.workdir = Path(workdir)
        self._analyses: OrderedDict[tuple[str, int, str], Analysis] = OrderedDict()
        self._running: dict[str, set[Stop]] = {}  # session -> its requests' stops
        self._lock = threading.Lock()
        self.dropped = 0  # requests stopped because their client went away

    # ---------------------------------------------------------------- choices

    def variants(self) -> list[tuple[str, str]]:
        """The model variants that have at least one shipped model."""
        named = set(available_models())
        found = [(label, suffix) for label, suffix in VARIANTS
                 if {"color" + suffix, "gray" + suffix} & named]
        return found or [VARIANTS[0]]

    @staticmethod
    def model_name(kind: str, variant: str, is_gray: bool) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown model kind '{kind}' (choose {', '.join(KINDS)})")
        base = {"auto": "gray" if is_gray else "color", "colour": "color", "grey": "gray"}[kind]
        return base + (variant or "")

    # ---------------------------------------------------------------- library calls

    def _read(self, path: str | Path) -> LoadedImage:
        """The decoded upload; one over the pixel limit is refused from its header, before
        its pixels are decoded."""
        try:
            return read_image(path, max_megapixels=self.max_megapixels)
        except ImageTooLarge as e:
            raise ImageError(path, (
                f"{e.width}x{e.height} is {e.width * e.height / 1e6:.1f} megapixels, over "
                f"this server's limit of {self.max_megapixels:g}; restore it with the command "
                "line instead (fbcnn restore FILE)")) from None

    def analyse(self, path: str | Path, kind: str = "auto", variant: str = "",
                progress: Callable[..., Any] | None = None,
                stop: Stop | None = None) -> Analysis:
        """Predicted QF, header QF and double-JPEG verdict of an uploaded file (cached)."""
        path = Path(path)
        stat = path.stat() if path.exists() else None
        key = (str(path), stat.st_mtime_ns if stat else 0, f"{kind}{variant}")
        if key in self._analyses:
            self._analyses.move_to_end(key)
            return self._analyses[key]
        if progress is not None:
            progress(0, desc="reading the image")
        image = self._read(path)
        name = self.model_name(kind, variant, image.looks_grey)
        model = self.models.get(name, image.width * image.height / 1e6)  # as fbcnn restore

        def double(fraction: float) -> None:
            _check(stop, "during the double-JPEG analysis")
            if progress is not None:
                progress(fraction, desc="looking for an earlier compression")

        double(0.0)
        found = analysis.analyse(image, model, double=True, need_qf=True, progress=double)
        assert found.predicted_qf is not None
        result = Analysis(
            name=path.name, model=model.name, width=image.width, height=image.height,
            format=image.format, mode=image.mode, subsampling=image.subsampling,
            header_qf=image.header_qf, predicted_qf=found.predicted_qf, double=found.double,
            auto_qf=found.feed_qf if found.feed_qf is not None else found.predicted_qf,
            trace=None if found.trace is None else found.trace.to_json(),
            image=image, found=found)
        self._analyses[key] = result
        while len(self._analyses) > 8:  # each holds a decoded image
            self._analyses.popitem(last=False)
        return result

    def restore(self, path: str | Path, qf: float | None = None, kind: str = "auto",
                variant: str = "", progress: Callable[..., Any] | None = None,
                consistency: bool = True, stop: Stop | None = None) -> Restored:
        """`fbcnn restore [--qf QF] [--consistency off]` of the uploaded file, into a fresh
        folder. Once `stop` is set, the next tile raises Dropped (nothing is written). As
        `fbcnn restore` does, an upload that is not a JPEG and bears no JPEG compression is
        left unchanged in auto; a strength the user sets restores it."""
        path = Path(path)
        self._prune()
        info = self.analyse(path, kind, variant, stop=stop)
        image, found = info.image, info.found
        assert image is not None and found is not None
        folder = self.workdir / uuid.uuid4().hex
        started = time.perf_counter()

        def tiles(done: int, total: int) -> None:
            if progress is not None:
                progress((done, total), desc="restoring", unit="tiles")
            _check(stop, f"after {done} of {total} tiles")

        unchanged = found.never_jpeg and qf is None
        if progress is not None:
            progress(0, desc="restoring")
        if unchanged:
            pixels, used_qf = image.pixels, info.auto_qf
        else:
            result = analysis.restore_loaded(image, found, qf, consistency, tiles)
            pixels, used_qf = result.image, result.used_qf
        seconds = time.perf_counter() - started
        suffix = "" if qf is None else f"_qf{qf:g}"
        png = write_image(folder / f"{path.stem}_restored{suffix}.png", pixels,
                          alpha=image.alpha, icc_profile=image.icc_profile, exif=image.exif,
                          protect=(path,))
        before = path
        if path.suffix.lower() not in BROWSER_FORMATS:
            before = write_image(folder / f"{path.stem}_input.png", image.pixels,
                                 alpha=image.alpha)
        name = found.model.name
        default = "gray" if image.looks_grey else "color"
        command = "fbcnn restore" + ("" if qf is None else f" --qf {qf:g}") + (
            "" if name == default else f" --model {name}") + (
            "" if consistency else " --consistency off") + (
            " --not-jpeg restore" if found.never_jpeg and not unchanged else "") + f" {path.name}"
        return Restored(png, before, used_qf, name, seconds, command, unchanged)

    def _prune(self) -> None:
        """Forget results older than KEEP_RESULTS_S (Gradio keeps its own copies)."""
        now = time.time()
        for folder in self.workdir.glob("*"):
            try:
                if now - folder.stat().st_mtime > KEEP_RESULTS_S:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                pass

    # ---------------------------------------------------------------- page events

    def process(self, path: str | None, auto: bool, strength: float, kind: str, variant: str,
                consistency: bool = True, progress: Any = None,
                stop: Stop | None = None) -> Iterator[Outputs]:
        """Analyse, then restore; yields (info, strength, auto, comparison, download, status,
        image) twice: the analysis as soon as it is known, then the result. The strength
        slider shows the QF used (in auto: the prediction, or the double-JPEG QF). Expected
        failures (bad file, too big, wrong model) yield cleared outputs, then raise gr.Error
        with one line that stays until dismissed; in auto the slider is then greyed out (no
        prediction to show). The result's files go once Gradio has copied them into its cache
        (it then asks for the next value) or drops the request (closes this)."""
        if not path:
            yield ("", waiting(auto), auto, None, gr.update(value=None, interactive=False), "",
                   gr.skip())
            return
        qf = None if auto else float(strength)
        done: Restored | None = None
        try:
            try:
                info = self.analyse(path, kind, variant, progress, stop)
                shown = info.auto_qf if qf is None else qf
                yield (info_markdown(info), showing(shown), auto, gr.skip(), gr.skip(),
                       f"Restoring with QF {shown:.1f}...", gr.skip())
                done = self.restore(path, qf, kind, variant, progress, consistency, stop)
            except (ImageError, CheckpointError, ValueError, OSError) as e:
                message = _message(e, path)
                yield failed(message, bad_file=isinstance(e, ImageError) and e.path == Path(path),
                             auto=auto)
                raise gr.Error(message, duration=None, print_exception=False) from None
            yield (info_markdown(info), showing(done.used_qf), auto,
                   (str(done.before), str(done.png)),
                   gr.update(value=str(done.png), interactive=True), _status(done, auto),
                   gr.skip())
        finally:
            if done is not None:
                shutil.rmtree(done.png.parent, ignore_errors=True)

    def on_upload(self, path: str | None, kind: str, variant: str, consistency: bool = True,
                  progress: Any = None, stop: Stop | None = None) -> Iterator[Outputs]:
        """A new image starts at the prediction (auto)."""
        yield from self.process(path, True, 50, kind, variant, consistency, progress, stop)

    def on_strength(self, path: str | None, strength: float, kind: str, variant: str,
                    consistency: bool = True, progress: Any = None,
                    stop: Stop | None = None) -> Iterator[Outputs]:
        """Moving the strength restores at that QF (auto off)."""
        yield from self.process(path, False, strength, kind, variant, consistency, progress,
                                stop)

    def on_settings(self, path: str | None, auto: bool, strength: float, kind: str,
                    variant: str, consistency: bool = True, progress: Any = None,
                    stop: Stop | None = None) -> Iterator[Outputs]:
        """Auto switched, another model, or JPEG consistency toggled: restore again. Without
        an image, only the slider follows auto (greyed out while it is on)."""
        if not path:
            yield (gr.skip(), waiting(auto), *(gr.skip(),) * 5)
            return
        yield from self.process(path, auto, strength, kind, variant, consistency, progress,
                                stop)

    # ---------------------------------------------------------------- what Gradio calls

    async def upload_event(self, path: str | None, kind: str, variant: str,
                           consistency: bool = True, request: gr.Request | None = None,
                           progress: Any = gr.Progress()  # noqa: B008
                           ) -> AsyncIterator[Outputs]:
        file = upload_path(path, self.workdir)
        async for out in self._served(request, lambda stop: self.on_upload(
                file, kind, variant, consistency, progress, stop)):
            yield out

    async def strength_event(self, path: str | None, strength: float, kind: str, variant: str,
                             consistency: bool = True, request: gr.Request | None = None,
                             progress: Any = gr.Progress()  # noqa: B008
                             ) -> AsyncIterator[Outputs]:
        file = upload_path(path, self.workdir)
        async for out in self._served(request, lambda stop: self.on_strength(
                file, strength, kind, variant, consistency, progress, stop)):
            yield out

    async def settings_event(self, path: str | None, auto: bool, strength: float, kind: str,
                             variant: str, consistency: bool = True,
                             request: gr.Request | None = None,
                             progress: Any = gr.Progress()  # noqa: B008
                             ) -> AsyncIterator[Outputs]:
        file = upload_path(path, self.workdir)
        async for out in self._served(request, lambda stop: self.on_settings(
                file, auto, strength, kind, variant, consistency, progress, stop)):
            yield out

    async def _served(self, request: gr.Request | None,
                      work: Callable[[Stop], Iterator[Outputs]]) -> AsyncIterator[Outputs]:
        """Run a handler's steps in a worker thread and pass on what they yield. The request
        is dropped, its work stopped at the next tile, when Gradio cancels it (the client
        called /cancel) or when its page goes away (`drop_session`)."""
        stop = Stop()
        session = getattr(request, "session_hash", None)
        self._track(session, stop, running=True)
        steps = work(stop)
        try:
            while (out := await _step(steps, stop)) is not _END:
                yield out
        except Dropped:
            self._note_drop(stop)
        except asyncio.CancelledError:
            self._note_drop(stop)
            raise
        finally:
            self._track(session, stop, running=False)
            steps.close()  # not running: _step waited for it

    def _track(self, session: str | None, stop: Stop, running: bool) -> None:
        if session is None:
            return
        with self._lock:
            stops = self._running.setdefault(session, set())
            if running:
                stops.add(stop)
            else:
                stops.discard(stop)
                if not stops:
                    del self._running[session]

    def drop_session(self, request: gr.Request | None = None) -> None:
        """The page was closed or reloaded (Gradio's unload event): its running request
        stops at its next tile. (Gradio itself removes its queued ones.)"""
        session = getattr(request, "session_hash", None)
        with self._lock:
            for stop in self._running.get(session or "", ()):
                stop.set()

    def _note_drop(self, stop: Stop) -> None:
        self.dropped += 1
        where = f" {stop.where}" if stop.where else ""
        click.echo(f"fbcnn app: dropped a request whose client went away{where}", err=True)


def failed(message: str, bad_file: bool, auto: bool = True) -> Outputs:
    """What the page shows after a failure: no result (no stale or broken image), the message
    in the status line; a file that cannot be used is also taken off the input. In auto (as
    an upload always starts) the slider is greyed out: there is no prediction to show."""
    return ("", waiting(auto), auto, None, gr.update(value=None, interactive=False),
            f"Failed: {message}", None if bad_file else gr.skip())


def showing(qf: float) -> dict[str, Any]:
    """The strength slider at the QF a restore uses (in auto: the prediction), movable."""
    return gr.update(value=round(qf), interactive=True, info=STRENGTH_INFO)


def waiting(auto: bool) -> dict[str, Any]:
    """The strength slider with no QF to show: greyed out while auto is on, and saying so
    (it shows the prediction once an image is read); movable, at the user's value, when
    auto is off."""
    return gr.update(interactive=not auto, info=WAITING_INFO if auto else STRENGTH_INFO)


def new_input() -> tuple[Any, ...]:
    """What the page shows at once when an image is dropped, pasted or removed, before the
    request runs (outputs: comparison, download, status, info, strength): no result, and
    the slider greyed out until the new image's prediction is known (an upload starts in
    auto)."""
    return None, gr.update(value=None, interactive=False), "", "", waiting(True)


def _status(done: Restored, auto: bool) -> str:
    if done.unchanged:
        return ("No JPEG compression found in this image's pixels (or too small to tell): "
                "**left unchanged**, as `fbcnn restore` leaves it. Set a strength to restore "
                "it anyway.")
    return (f"Restored with QF **{done.used_qf:.1f}**{' (auto)' if auto else ''}, model "
            f"`{done.model}`, in {done.seconds:.1f} s. Same PNG as `{done.command}`.")


def info_markdown(info: Analysis) -> str:
    header = "-" if info.header_qf is None else str(info.header_qf)
    d = info.double
    if d is None:
        double = ("- (too small to analyse)"
                  if info.format == "JPEG" or (info.trace and info.trace["found"])
                  else "- (not a JPEG)")
    elif not d["detected"]:
        double = f"no (confidence {d['confidence']:.2f})"
    else:
        offset = "" if d["offset"] is None else f", grid offset {tuple(d['offset'])}"
        first = "" if d["qf1"] is None else f", earlier QF {d['qf1']}"
        double = f"**yes**: {d['kind']}{first}{offset} (confidence {d['confidence']:.2f})"
    detail = f"{info.width}x{info.height} {info.format} {info.mode}"
    if info.subsampling:
        detail += f", {info.subsampling}"
    t = info.trace
    traces = [] if t is None else [
        "| JPEG compression in the pixels | " + (
            f"found, grid offset {tuple(t['offset'])} |" if t["found"] else
            "none (left unchanged in auto) |" if t["judged"] else
            "too small to judge (left unchanged in auto) |")]
    return "\n".join([
        "| Image analysis | |", "|---|---|",
        f"| Predicted QF | **{info.predicted_qf:.1f}** |",
        f"| QF in the file | {header} |",
        *traces,
        f"| Double JPEG | {double} |",
        f"| Auto strength | {info.auto_qf:.1f} |",
        f"| Image | {detail} |",
        f"| Model | `{info.model}` |",
    ])


def build_app(models: ModelSet | None = None,
              max_megapixels: float = APP_MAX_MEGAPIXELS,
              workdir: str | Path | None = None) -> gr.Blocks:
    """The page (not launched). `models` gives the device and tile size (default: auto,
    `DEFAULT_TILE`);
    `workdir` the folder for results (default: a temp folder removed at exit)."""
    h = Handlers(models, max_megapixels, workdir)
    variants = h.variants()
    with gr.Blocks(title="FBCNN: JPEG artifact removal", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as demo:
        gr.Markdown("## FBCNN: JPEG artifact removal\nUpload or paste a JPEG. The network "
                    "reads its quality factor (QF) and removes the artifacts; a lower QF "
                    "removes more, a higher one keeps more detail.")
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                image = uploaded_file(label="Image", sources=["upload", "clipboard"],
                                      height=260, elem_id="fbcnn-input")
                with gr.Row():
                    # greyed out while auto waits for an image's prediction, then at it
                    strength = gr.Slider(1, 100, value=50, step=1, label="Strength (QF)",
                                         info=WAITING_INFO, scale=3,
                                         buttons=[], interactive=False,
                                         elem_id="fbcnn-strength")
                    auto = gr.Checkbox(True, label="auto", info="predicted QF", scale=1,
                                       min_width=90, elem_id="fbcnn-auto")
                kind = gr.Radio(list(KINDS), value="auto", label="Colour or grey model",
                                elem_id="fbcnn-kind")
                variant = gr.Dropdown(variants, value=variants[0][1], label="Model",
                                      elem_id="fbcnn-model")
                consistency = gr.Checkbox(True, label="JPEG consistency",
                                          info="keep the result within what the JPEG file "
                                               "allows (protects near-lossless JPEGs)",
                                          elem_id="fbcnn-consistency")
                info = gr.Markdown(elem_id="fbcnn-info")
                download = gr.DownloadButton("Download restored PNG", interactive=False,
                                             variant="primary", elem_id="fbcnn-download")
                status = gr.Markdown(elem_id="fbcnn-status")
            with gr.Column(scale=3, min_width=400):
                compare = gr.ImageSlider(label="Before | after (scroll to zoom, drag to pan)",
                                         type="filepath", format="png", max_height=720,
                                         buttons=["fullscreen"], interactive=False,
                                         elem_id="fbcnn-compare")
        outputs = [info, strength, auto, compare, download, status, image]
        # preprocess=False: the handlers get the upload as it came (see upload_path).
        # always_last: an image dropped (or a control moved) while its event's request runs
        # is restored after it; Gradio's default ("once") ignored it, and the page showed the
        # new image beside the old one's result
        run = {"outputs": outputs, "concurrency_id": QUEUE, "concurrency_limit": 1,
               "show_progress_on": [compare, info], "preprocess": False,
               "trigger_mode": "always_last"}
        # `input`, not `change`: Gradio's image fires `change` twice for one upload, and
        # the second ran the request again once the first had ended (an error showed as
        # "Error (2)"); `input` fires once per upload, paste or removal, and not when an
        # event sets the image (a bad file taken off the input)
        image.input(new_input, None, [compare, download, status, info, strength],
                    queue=False, show_progress="hidden").then(
            h.upload_event, [image, kind, variant, consistency], api_name="restore", **run)
        strength.release(h.strength_event, [image, strength, kind, variant, consistency],
                         api_name="strength", **run)
        settings = [image, auto, strength, kind, variant, consistency]
        for control in (auto, kind, variant, consistency):
            control.input(h.settings_event, settings, **run)
        demo.unload(h.drop_session)  # a closed tab: its running request stops
    demo.queue(default_concurrency_limit=1, max_size=64)
    demo.fbcnn_handlers = h  # type: ignore[attr-defined]
    return demo


def _bind_error(host: str, port: int) -> OSError | None:
    """The error binding `port` at `host` gives (None: it can be listened on). As the
    server binds it: a port left in TIME_WAIT by a server that stopped is free."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as probe:
        if os.name != "nt":  # (on Windows SO_REUSEADDR would share a port in use)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            return e
    return None


def _port_in_use(host: str, port: int) -> str:
    """One line for a port that is taken, naming a free one near it if there is one."""
    free = next((p for p in range(port + 1, min(port + 21, 65536))
                 if _bind_error(host, p) is None), None)
    return (f"port {port} on {host} is in use: pass another with --port"
            + ("" if free is None else f", e.g. --port {free}"))


def check_port(host: str, port: int) -> None:
    """Raise click.ClickException (one line) unless `port` can be listened on at `host`:
    checked by binding it, before Gradio tries (whose own failure reads as its internals)."""
    try:
        error = _bind_error(host, port)
    except socket.gaierror as e:
        raise click.ClickException(f"cannot listen on {host}: {e.strerror} (--host)") from None
    if error is None:
        return
    if error.errno == errno.EADDRINUSE:
        raise click.ClickException(_port_in_use(host, port))
    raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror or error}")


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860,
           max_upload_mb: float = APP_MAX_UPLOAD_MB, block: bool = True,
           quiet: bool = False) -> Any:
    """Serve the page (blocks until Ctrl-C unless block=False). A port that is taken is a
    click.ClickException (one line)."""
    check_port(host, port)
    try:
        result = demo.launch(server_name=host, server_port=port, prevent_thread_lock=True,
                             max_file_size=max(1, round(max_upload_mb * 1024 * 1024)),
                             ssr_mode=False, quiet=True, theme=gr.themes.Default(), css=CSS,
                             footer_links=["gradio"], mcp_server=False)
    except OSError as e:  # taken between the check and the launch
        if "empty port" in str(e):  # Gradio's words for it
            raise click.ClickException(_port_in_use(host, port)) from None
        raise click.ClickException(f"cannot serve on {host}:{port}: "
                                   f"{' '.join(str(e).split())}") from None
    if not quiet:
        click.echo(f"fbcnn app on http://{host}:{port} (Ctrl-C to stop)", err=True)
    if block:
        try:
            demo.block_thread()
        except KeyboardInterrupt:
            pass
        finally:
            demo.close()
    return result


def _private_temp_dir() -> Path:
    """One temp folder for this server's files and Gradio's uploads and cache, removed when
    the server stops (Ctrl-C or SIGTERM)."""
    folder = Path(tempfile.mkdtemp(prefix="fbcnn-app-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder / "gradio")

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    return folder


def serve(host: str = "127.0.0.1", port: int = 7860, device: str = "auto",
          tile: int = DEFAULT_TILE,
          max_megapixels: float = APP_MAX_MEGAPIXELS,
          max_upload_mb: float = APP_MAX_UPLOAD_MB, precision: str = "auto",
          backend: str = "auto") -> None:
    """What `fbcnn serve` runs. A port that is taken is a click.ClickException (one line),
    before anything is loaded."""
    check_port(host, port)
    workdir = _private_temp_dir()
    models = ModelSet(device=device, tile=tile, precision=precision, backend=backend)
    demo = build_app(models, max_megapixels, workdir=workdir / "results")
    launch(demo, host, port, max_upload_mb)
