"""One file end to end: read -> analyse -> restore -> write.

    file --imageio.read_image--> LoadedImage --analyse--> Analysis (predicted QF, double-JPEG
    verdict, the QF to feed) --restore_loaded--> Model.restore_array --Restorer--> pixels
    --imageio.write_image--> file(s)

(`analyse`, `Analysis` and `restore_loaded` live in `engine.analysis`.)

`ModelSet` picks the model for each image (colour or grey, loaded once, on first use);
`plan_outputs` names every output of a run before anything is written (no two inputs share
an output, none overwrites an input) and `check_output_folders` makes sure they can be
written there before any image is restored; `restore_file` and `inspect_file` are what
`fbcnn restore` and `fbcnn inspect` call per file; the app calls `read_image` + `analyse`
once and `restore_loaded` per setting. Values pass as arrays and small dataclasses; files
are touched only through imageio.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..images.files import (
    DEFAULT_QUALITY,
    ImageError,
    LoadedImage,
    check_output_size,
    check_quality,
    check_writable_folder,
    output_format,
    read_image,
    remove_stale_temps,
    write_image,
)
from ..jpeg.qf import jpegli_quality
from ..jpeg.tables import tables_are_ijg
from .analysis import analyse, restore_loaded
from .model import Model, load_model
from .restorer import DEFAULT_TILE, Progress


class ModelSet:
    """The model for each image: a fixed one (`model`), or `color` / `gray` by channels,
    each loaded once (by `load_model`, with the runtime `backend` picks)."""

    def __init__(self, model: str | None = None, device: str = "auto",
                 tile: int | None = DEFAULT_TILE, precision: str = "auto",
                 backend: str = "auto") -> None:
        self.fixed = model
        self.device = device
        self.tile = tile
        self.precision = precision
        self.backend = backend
        self.threads = 0  # 0: the runtime's default (one per core)
        self._loaded: dict[str, Model] = {}
        self._lock = threading.Lock()  # batches restore several images at a time

    def get(self, name: str, megapixels: float | None = None) -> Model:
        """The model `name` (`megapixels` is accepted for earlier callers and unused)."""
        with self._lock:
            if name not in self._loaded:
                model = load_model(name, device=self.device, tile=self.tile,
                                   precision=self.precision, backend=self.backend)
                if self.threads:
                    model.set_threads(self.threads)
                self._loaded[name] = model
            return self._loaded[name]

    def set_threads(self, threads: int) -> None:
        """CPU threads per model, for the models loaded and those still to come."""
        with self._lock:
            self.threads = threads
            for model in self._loaded.values():
                model.set_threads(threads)

    def prefetch(self, path: Path) -> threading.Thread | None:
        """Load the model a JPEG file will need in a thread of its own, while the caller
        reads and analyses the image (the load and compile take a few tenths of a second);
        None for other files (a never-JPEG image may need no model). A failure is left to
        the image's own request, which reports it."""
        name = _likely_model(path)
        if name is None:
            return None
        name = self.fixed or name

        def load() -> None:
            try:
                self.get(name).prepare()
            except Exception:  # noqa: BLE001, S110 - reported when the image asks for it
                pass

        # not a daemon: the interpreter never exits with a compile half done
        thread = threading.Thread(target=load, name="fbcnn-prefetch")
        thread.start()
        return thread

    def for_image(self, image: LoadedImage) -> Model:
        megapixels = image.pixels.shape[0] * image.pixels.shape[1] / 1e6
        if self.fixed:
            return self.get(self.fixed, megapixels)
        return self.get("gray" if image.looks_grey else "color", megapixels)


def _likely_model(path: Path) -> str | None:
    """'gray' or 'color' from a JPEG file's header (the decode decides for real); None for
    anything else."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format != "JPEG":
                return None
            return "gray" if im.mode == "L" else "color"
    except Exception:  # noqa: BLE001 - unreadable here: the read reports it
        return None


@dataclass
class RestoreOptions:
    """What `fbcnn restore` asks of every file (its flags)."""

    qf: float | None = None  # None: the predicted (or double-JPEG) QF
    sweep: list[int] | None = None  # one output per QF instead
    double: bool = True  # look for a non-aligned earlier compression (FBCNN-D)
    consistency: bool = True  # keep a JPEG's result inside its quantisation cells
    compare: bool = False  # also write <name>_compare.png (input | result)
    skip_existing: bool = False  # skip inputs whose outputs all exist
    overwrite: bool = False  # replace outputs that exist (else an error)
    max_megapixels: float | None = None  # refuse bigger inputs (None: imageio's default)
    # an input that is not a JPEG file and whose pixels bear no JPEG compression
    # (fbcnn.jpeg.trace): "copy" writes its pixels unchanged, "skip" writes nothing,
    # "restore" restores it anyway
    not_jpeg: str = "copy"
    # None: outputs named <stem>.<ext> in the output folder (default a restored/ folder
    # beside each input); a text (may be ""): named <stem><suffix>.<ext>, beside each input
    # unless an output folder is given
    suffix: str | None = None
    ext: str = "png"  # the outputs' format: one of OUTPUT_EXTS
    quality: int | None = None  # jpg / webp outputs (1..100); None: DEFAULT_QUALITY

    def __post_init__(self) -> None:
        _check_not_jpeg(self.not_jpeg)
        check_suffix(self.suffix)
        if self.ext not in OUTPUT_EXTS:
            raise ValueError(f"ext must be one of {', '.join(OUTPUT_EXTS)}, got {self.ext!r}")
        check_quality(self.quality)
        if self.quality is not None and self.ext == "png":
            raise ValueError("quality is for jpg and webp outputs (PNG is lossless)")

    @property
    def write_quality(self) -> int | None:
        """The quality outputs are written at (None for PNG)."""
        if self.ext == "png":
            return None
        return DEFAULT_QUALITY if self.quality is None else self.quality


NOT_JPEG_ACTIONS = ("copy", "skip", "restore")
OUTPUT_EXTS = ("png", "jpg", "webp")
# an output "folder" with one of these suffixes that is not a folder names the output file
OUTPUT_FILE_SUFFIXES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}


def output_file(outdir: str | Path | None) -> Path | None:
    """`outdir` when it names an image file rather than a folder (`-o photo_restored.png`):
    a .png, .jpg, .jpeg or .webp name that is not a folder already; else None."""
    if outdir is None:
        return None
    path = Path(outdir)
    if path.suffix.lower() in OUTPUT_FILE_SUFFIXES and not path.is_dir():
        return path
    return None


def output_ext(outdir: str | Path | None, ext: str | None) -> str:
    """The outputs' format: `ext` when given, else the named output file's, else png."""
    named = output_file(outdir)
    if ext is None:
        return OUTPUT_FILE_SUFFIXES[named.suffix.lower()] if named is not None else "png"
    return ext


def check_suffix(suffix: str | None) -> None:
    """ValueError for an output-name suffix that is not a plain piece of a file name."""
    if suffix is None:
        return
    seps = {"/", "\\", os.sep, os.altsep or "/"}
    if any(c in suffix for c in seps) or "\0" in suffix:
        raise ValueError(f"the suffix must be part of a file name (no folder separators), "
                         f"got {suffix!r}")


def _check_not_jpeg(value: str) -> None:
    if value not in NOT_JPEG_ACTIONS:
        raise ValueError(f"not_jpeg must be one of {', '.join(NOT_JPEG_ACTIONS)}, got {value!r}")


@dataclass
class FileReport:
    path: Path
    model: str
    predicted_qf: float
    used_qf: float
    outputs: list[Path] = field(default_factory=list)
    double: dict[str, Any] | None = None
    skipped: bool = False
    # what happened to an input without JPEG compression ("copied", "skipped"), else None
    not_jpeg: str | None = None
    trace: dict[str, Any] | None = None
    # said on the report line: colours converted when read (CMYK), alpha flattened (JPEG)
    notes: list[str] = field(default_factory=list)


@dataclass
class Planned:
    """The outputs of one input: `outputs[i]` for the i-th QF of the sweep (or the only
    one), `compares[i]` its side-by-side image when asked for."""

    outputs: list[Path]
    compares: list[Path]

    @property
    def all(self) -> list[Path]:
        return [*self.outputs, *self.compares]


# ------------------------------------------------------------------------------- outputs


def _suffixes(sweep: Sequence[int] | None) -> list[str]:
    return [f"_qf{q}" for q in sweep] if sweep else [""]


def _planned(folder: Path, base: str, sweep: Sequence[int] | None, compare: bool,
             suffix: str = "", ext: str = "png") -> Planned:
    outs = [folder / f"{base}{suffix}{s}.{ext}" for s in _suffixes(sweep)]
    cmps = ([folder / f"{base}{suffix}{s}_compare.{ext}" for s in _suffixes(sweep)]
            if compare else [])
    return Planned(outs, cmps)


def _key(path: Path) -> str:
    return str(path).casefold()  # case-insensitive file systems


def _file_key(path: Path) -> str:
    """The same key for every spelling of a file's path (relative, absolute, through a link
    to its folder, other letter case)."""
    try:
        return str(path.resolve()).casefold()
    except (OSError, RuntimeError):
        return str(path.absolute()).casefold()


def plan_outputs(paths: Sequence[Path], inputs: Sequence[str | Path], outdir: Path | None,
                 sweep: Sequence[int] | None = None, compare: bool = False, *,
                 suffix: str | None = None, ext: str = "png") -> dict[Path, Planned]:
    """The outputs of every input of a run, none shared by two inputs, none an input.

    Without `outdir` they go to a `restored/` folder beside each input, or beside the input
    itself when a `suffix` is given; with it, files found inside a folder input keep their
    sub-folders under `outdir`. An output is named after the input's stem, then `suffix`
    (default none), the sweep's `_qf<N>`, `_compare` for the side-by-side image, and `.ext`
    (`a.jpg` -> `a.png`, `a_restored_qf10.webp`); inputs whose outputs would collide (`a.jpg`
    and `a.png`, or two `x.jpg` from different folders into one `outdir`) are named after
    their whole file name instead (`a.jpg.png`, `a.png.png`), then numbered if needed
    (`x.jpg_2.png`). ImageError (one line) when an output would be an input file of the
    run (`--suffix ""` and `--ext jpg` beside `photo.jpg`, or `-o` the input's folder).
    An `outdir` that names an image file (`output_file`) is the output of the run's one
    input image (`x_qf10.png`, `x_compare.png` beside it for a sweep and the side-by-side);
    ImageError for several inputs, a folder input, a `suffix`, or an `ext` other than the
    file's."""
    plan = _name_outputs(paths, inputs, outdir, sweep, compare, suffix, ext)
    _refuse_overwriting_inputs(plan, paths)
    return plan


def _name_outputs(paths: Sequence[Path], inputs: Sequence[str | Path], outdir: Path | None,
                  sweep: Sequence[int] | None, compare: bool, suffix: str | None,
                  ext: str) -> dict[Path, Planned]:
    """`plan_outputs` without the check against the inputs."""
    check_suffix(suffix)
    if ext not in OUTPUT_EXTS:
        raise ValueError(f"ext must be one of {', '.join(OUTPUT_EXTS)}, got {ext!r}")
    target = output_file(outdir)
    if target is not None:
        return {paths[0]: _planned_file(target, paths, inputs, sweep, compare, suffix, ext)}
    listed = set(paths)
    roots = [Path(i) for i in inputs if Path(i) not in listed]  # the folder inputs

    def folder(path: Path) -> Path:
        if outdir is None:
            return path.parent if suffix is not None else path.parent / "restored"
        for root in roots:
            if path.is_relative_to(root):
                return outdir / path.parent.relative_to(root)
        return outdir

    def named(p: Path, base: str) -> Planned:
        return _planned(folders[p], base, sweep, compare, suffix or "", ext)

    folders = {p: folder(p) for p in paths}
    plan = {p: named(p, p.stem) for p in paths}
    for p in _clashing(plan):
        plan[p] = named(p, p.name)
    if _clashing(plan):  # still: numbered, in input order (the first keeps its name)
        _number(plan, paths, named)
    return plan


def _planned_file(target: Path, paths: Sequence[Path], inputs: Sequence[str | Path],
                  sweep: Sequence[int] | None, compare: bool, suffix: str | None,
                  ext: str) -> Planned:
    """The outputs of the one input of a run whose output is named (`output_file`): the
    file itself, or with the sweep's `_qf<N>` and `_compare` before its suffix."""
    folders = [i for i in inputs if Path(i).is_dir()]
    if len(paths) != 1 or folders:
        given = f"the folder {folders[0]}" if folders else f"{len(paths)} images"
        raise ImageError(target, f"an output file name takes one input image, got {given} "
                                 "(give an output folder instead)")
    if suffix is not None:
        raise ImageError(target, "an output file name takes no suffix")
    made = OUTPUT_FILE_SUFFIXES[target.suffix.lower()]
    if made != ext:
        raise ImageError(target, f"the output file is a {made} file but the output format "
                                 f"asked for is {ext} (--ext)")
    return _planned(target.parent, target.stem, sweep, compare, "", target.suffix[1:])


def _number(plan: dict[Path, Planned], paths: Sequence[Path],
            named: Callable[[Path, str], Planned]) -> None:
    """Rename, in input order, every input whose outputs an earlier one took
    (`x.jpg_2.png`, `x.jpg_3.png`, ...)."""
    taken: set[str] = set()
    for p in paths:
        n = 1
        while any(_key(o) in taken for o in plan[p].all):
            n += 1
            plan[p] = named(p, f"{p.name}_{n}")
        taken.update(_key(o) for o in plan[p].all)


def _refuse_overwriting_inputs(plan: dict[Path, Planned], paths: Sequence[Path]) -> None:
    """ImageError naming the first input with an output that is an input file of the run."""
    inputs = {_file_key(p): p for p in paths}
    found = [(p, o, inputs[_file_key(o)]) for p, planned in plan.items() for o in planned.all
             if _file_key(o) in inputs]
    if not found:
        return
    path, output, victim = found[0]
    what = "this input" if victim == path else f"the input {victim}"
    more = len({p for p, _, _ in found}) - 1
    raise ImageError(path, f"its output {output} would overwrite {what}; choose another "
                           f"--suffix, --ext or -o"
                           + (f" ({more} more input(s) like it)" if more else ""))


def plan_run(paths: Sequence[Path], inputs: Sequence[str | Path], outdir: Path | None,
             options: RestoreOptions) -> tuple[list[Path], dict[Path, Planned], list[Path]]:
    """`plan_outputs` for a run of `fbcnn restore` with `options`, less the files found inside
    a folder input that are named as an output of another input of the run: what an earlier
    run with `suffix` wrote beside its inputs (`a_restored.png` beside `a.jpg`) is an
    output, not an input, so that a rerun resumes (`skip_existing`) or replaces
    (`overwrite`) it instead of restoring it again. Files named as inputs are always
    inputs. Returns (the inputs, their outputs, the files left out); ImageError as
    `plan_outputs`."""
    named = {Path(i) for i in inputs}
    kept, left_out = list(paths), []
    while True:
        plan = _name_outputs(kept, inputs, outdir, options.sweep, options.compare,
                             options.suffix, options.ext)
        outputs: dict[str, Path] = {}
        for p, planned in plan.items():
            for o in planned.all:
                outputs.setdefault(_file_key(o), p)
        found = [p for p in kept if p not in named
                 and outputs.get(_file_key(p), p) != p]
        if not found:
            break
        left_out += found
        kept = [p for p in kept if p not in found]
    _refuse_overwriting_inputs(plan, kept)
    return kept, plan, left_out


def check_output_folders(plan: Iterable[Planned], options: RestoreOptions | None = None
                         ) -> list[Path]:
    """Make sure every folder the run will write into can be written (created if missing),
    before any image is restored: ImageError (one line naming the folder) for the first
    that cannot (`imageio.check_writable_folder`). With `skip_existing`, the folders of
    inputs whose outputs all exist are not checked. Returns the folders checked."""
    options = options or RestoreOptions()
    folders: dict[Path, None] = {}
    for planned in plan:
        if options.skip_existing and all(t.exists() for t in planned.outputs):
            continue
        for target in planned.all:
            folders.setdefault(target.parent)
    for folder in folders:
        check_writable_folder(folder)
    return list(folders)


def _clashing(plan: dict[Path, Planned]) -> list[Path]:
    """The inputs with an output that another input's outputs share."""
    counts = Counter(_key(o) for planned in plan.values() for o in planned.all)
    return [p for p, planned in plan.items() if any(counts[_key(o)] > 1 for o in planned.all)]


COMPARE_GAP = 8


def side_by_side(before: np.ndarray, after: np.ndarray, gap: int = COMPARE_GAP) -> np.ndarray:
    """The input and the result next to each other, white gap between."""
    h, w, c = before.shape
    canvas = np.full((h, 2 * w + gap, c), 255, np.uint8)
    canvas[:, :w] = before
    canvas[:, w + gap:] = after
    return canvas


def _check_targets(planned: Planned, overwrite: bool) -> None:
    if overwrite:
        return
    for target in planned.all:
        if target.exists():
            raise ImageError(target, "exists (use --overwrite to replace it, or "
                                     "--skip-existing to keep it)")


def restore_file(path: Path, models: ModelSet, planned: Planned,
                 options: RestoreOptions | None = None, *, protect: tuple[Path, ...] = (),
                 progress: Progress | None = None) -> FileReport:
    """Restore one file into `planned` outputs; raises imageio.ImageError / ValueError with
    one-line messages, before anything is written when the input or a target is the
    problem."""
    options = options or RestoreOptions()
    remove_stale_temps(*planned.all)  # temp files of a run killed mid-write
    if options.skip_existing and all(t.exists() for t in planned.outputs):
        return FileReport(path, "", float("nan"), float("nan"), planned.outputs, skipped=True)
    _check_targets(planned, options.overwrite)
    image = (read_image(path) if options.max_megapixels is None
             else read_image(path, max_megapixels=options.max_megapixels))
    h, w = image.pixels.shape[:2]
    for target in planned.outputs:  # a format too small for the image: before restoring
        check_output_size(target, w, h)
    for target in planned.compares:
        check_output_size(target, 2 * w + COMPARE_GAP, h)
    sweep = options.sweep
    # a sweep sets every QF itself: neither the double-JPEG QF nor the prediction is fed;
    # the model is asked for once the pixels are analysed (it may still be loading)
    found = analyse(image, lambda: models.for_image(image),
                    double=options.double and options.qf is None and not sweep,
                    trace=options.not_jpeg != "restore")
    model = found.model
    report = FileReport(path, model.name, float("nan"), float("nan"), double=found.double,
                        trace=None if found.trace is None else found.trace.to_json())
    if image.converted:
        report.notes.append(image.converted + (
            "" if image.format != "JPEG" else
            " (no JPEG consistency, no double-JPEG analysis)"))
    if image.alpha is not None and any(output_format(t) == "JPEG" for t in planned.outputs):
        report.notes.append("alpha flattened onto white (JPEG)")
    leave_alone = found.never_jpeg and options.not_jpeg != "restore"
    if leave_alone and options.not_jpeg == "skip":
        report.not_jpeg, report.skipped = "skipped", True
        return report
    qfs: list[float | None] = [float(q) for q in sweep] if sweep else [options.qf]
    keep = (path, *protect)
    for i, q in enumerate(qfs):
        if leave_alone:  # "copy": the input's pixels, unchanged
            pixels = image.pixels
            report.not_jpeg = "copied"
        else:
            result = restore_loaded(image, found, q, options.consistency, progress)
            found.predicted_qf = result.predicted_qf  # read once, reused by the next QF
            report.predicted_qf, report.used_qf = result.predicted_qf, result.used_qf
            pixels = result.image
        report.outputs.append(write_image(planned.outputs[i], pixels, alpha=image.alpha,
                                          icc_profile=image.icc_profile, exif=image.exif,
                                          protect=keep, quality=options.write_quality))
        if options.compare:
            pair = side_by_side(image.pixels, pixels)
            report.outputs.append(write_image(planned.compares[i], pair, protect=keep,
                                              quality=options.write_quality))
    return report


def report_line(report: FileReport, sweep: Sequence[int] | None = None,
                name: str | Path | None = None) -> str:
    """What `fbcnn restore` prints for a file that did not fail (`name`: how to call the
    input, e.g. the URI it was fetched from; default its path)."""
    name = report.path if name is None else name
    judged = report.trace is None or report.trace.get("judged", True)
    why = "no JPEG compression in its pixels" if judged else "too small to tell whether it " \
        "bears JPEG compression"
    if report.not_jpeg == "skipped":
        return f"{name}: skipped ({why})"
    if report.skipped:
        return f"{name}: skipped (output exists)"
    notes = "".join(f", {n}" for n in report.notes)
    if report.not_jpeg == "copied":
        return (f"{name}: {why}, copied unchanged "
                f"(--not-jpeg restore to restore it){notes} -> "
                f"{', '.join(str(o) for o in report.outputs)}")
    note = ""
    if report.double and report.double.get("detected"):
        d = report.double
        note = f", {d['kind']} double JPEG (QF1 {d['qf1']}, offset {d['offset']})"
    note += notes
    used = "sweep " + ",".join(map(str, sweep)) if sweep else f"{report.used_qf:.1f}"
    return (f"{name}: predicted QF {report.predicted_qf:.1f}, used QF {used}{note} "
            f"[{report.model}] -> {', '.join(str(o) for o in report.outputs)}")


def batch_summary(total: int, done: int, skipped: int, failed: int, seconds: float,
                  at_a_time: int, copied: int = 0) -> str:
    """The last line of `fbcnn restore` (any engine); `copied`: inputs without JPEG
    compression written unchanged (not counted as restored)."""
    summary = f"restored {done} of {total} image(s)"
    if copied:
        summary += f", copied {copied} without JPEG compression unchanged"
    if skipped:
        summary += f", skipped {skipped}"
    if failed:
        summary += f", {failed} failed"
    if done > 1:
        summary += f" ({done / seconds:.2f} images/s, {at_a_time} at a time)"
    return summary


def inspect_file(path: Path, models: ModelSet) -> dict[str, Any]:
    """What `fbcnn inspect --json` prints for one image."""
    image = read_image(path)
    model = models.for_image(image)
    found = analyse(image, model, double=True, need_qf=True)
    assert found.predicted_qf is not None
    return {
        "path": str(path),
        "format": image.format,
        "header_qf": image.header_qf,
        "predicted_qf": round(found.predicted_qf, 2),
        # the QF `fbcnn restore` feeds (a double JPEG's, or its tables' when the reading is
        # below them: fbcnn.jpeg.qf); the prediction when no rule applies
        "fed_qf": round(found.predicted_qf if found.feed_qf is None else found.feed_qf, 2),
        "model": model.name,
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "subsampling": image.subsampling,
        "double": found.double,
        # JPEG files: whether the tables are IJG's, the IJG quality they are nearest, and
        # the jpegli quality that writes them (None: not jpegli's)
        "tables": (None if image.header_qf is None or image.quantization is None else
                   {"ijg": tables_are_ijg(image.quantization),
                    "equivalent_qf": image.header_qf,
                    "jpegli_quality": (jpegli_quality(image.quantization[0],
                                                      image.quantization.get(1))
                                       if 0 in image.quantization else None)}),
        # other files: whether the pixels bear JPEG compression, and its grid offset
        "jpeg_trace": None if found.trace is None else found.trace.to_json(),
        # what the reader did to the colours ("CMYK converted to RGB ..."), else None
        "converted": image.converted,
    }
