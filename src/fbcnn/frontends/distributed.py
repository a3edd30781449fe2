"""Batch restoration: many files in this process (engine "local") or on Ray actors ("ray").

Both engines restore each file with `pipeline.restore_file` through the same `Worker` (one
`pipeline.ModelSet` per worker, so each model is loaded once per worker), into the outputs
that `pipeline.plan_outputs` names for the whole run on the driver. The Ray engine runs one
actor per worker with plain Ray actors (not Ray Data): each file's result comes back and is
reported as soon as it is done, so the command prints the local engine's lines.

Faults: an actor whose process dies is started again (`MAX_RESTARTS`) and the file it was
working on is sent again (`MAX_TASK_RETRIES`); outputs are written atomically by
`images.files.write_image`, so a killed worker leaves no half-written output (at most a hidden
`.<name>.*.tmp` file, which the retry removes), and a rerun with `skip_existing` finishes an
interrupted run.

Inputs are local files or folders (`images.files.list_inputs`) or URIs (`s3://`, `gs://`,
`file://`, ... as pyarrow.fs reads them): each worker copies a URI input into a temporary
folder and restores that copy. Outputs go to a local folder (shared by all workers on a
cluster).

    >>> import fbcnn
    >>> done = fbcnn.restore_many(["photos/"], "out", engine="ray", workers=4)
    >>> [o.error for o in done if o.failed]
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..engine.pipeline import (
    FileReport,
    ModelSet,
    Planned,
    RestoreOptions,
    batch_summary,
    check_output_folders,
    output_ext,
    plan_outputs,
    restore_file,
)
from ..engine.pipeline import report_line as pipeline_report_line
from ..engine.restorer import DEFAULT_TILE
from ..images.files import IMAGE_SUFFIXES, SKIP_FOLDER, ImageError, list_inputs

ENGINES = ("local", "ray")
MAX_RESTARTS = 3  # per actor: a worker process that died is started again this many times
MAX_TASK_RETRIES = 3  # per file: sent again this many times when its worker died on it

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_URI_ROOT = Path("/fbcnn-uri")  # URIs stand as paths under it when outputs are planned


class EngineError(Exception):
    """A batch that cannot start or go on (Ray missing, no cluster, bad URI); str() is one
    line for the user."""


@dataclass
class FileOutcome:
    """One input of a batch: its report, or the one-line error it failed with. For a URI
    input, `report.path` is the temporary local copy that was restored (removed since)."""

    input: str
    report: FileReport | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class ModelSpec:
    """How each worker builds its `pipeline.ModelSet` (a --model URI is copied first)."""

    model: str | None = None
    device: str = "auto"
    tile: int | None = DEFAULT_TILE
    precision: str = "auto"


def is_uri(text: str) -> bool:
    """True for 'scheme://...' inputs (s3://, gs://, file://, ...)."""
    return bool(_URI.match(str(text)))


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "unknown error"


def _uri_filesystem(uri: str) -> tuple[Any, str]:
    try:
        from pyarrow import fs as pafs
    except ImportError:
        raise EngineError(f"{uri}: reading URIs needs pyarrow: pip install 'fbcnn[ray]'") from None
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as e:  # ArrowInvalid (unknown scheme), OSError (credentials, network)
        raise EngineError(f"{uri}: unsupported or unreachable URI ({_one_line(e)})") from None


def list_uri(uri: str, recursive: bool = False) -> list[str]:
    """The image URIs under a folder URI (as `images.files.list_inputs` lists a local folder), or
    the URI itself (a missing one is then reported when it is read)."""
    from pyarrow import fs as pafs

    filesystem, root = _uri_filesystem(uri)
    try:
        info = filesystem.get_file_info(root)
        if info.type != pafs.FileType.Directory:
            return [uri]
        found = filesystem.get_file_info(pafs.FileSelector(root, recursive=recursive))
    except Exception as e:
        raise EngineError(f"{uri}: cannot list ({_one_line(e)})") from None
    base, _, query = uri.partition("?")
    out = []
    for item in found:
        rel = PurePosixPath(item.path).relative_to(PurePosixPath(root))
        if item.type != pafs.FileType.File or rel.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if any(p.startswith(".") for p in rel.parts) or SKIP_FOLDER in rel.parts[:-1]:
            continue
        out.append((rel.parts, base.rstrip("/") + "/" + str(rel) + (f"?{query}" if query else "")))
    return [u for _, u in sorted(out)]


def expand_inputs(inputs: Sequence[str | Path], recursive: bool = False) -> list[str]:
    """Local files and folders (via `images.files.list_inputs`) and URIs, in the order given."""
    out: list[str] = []
    seen: set[str] = set()
    local: list[str | Path] = []

    def add(names: list[str]) -> None:
        for name in names:
            if name not in seen:
                seen.add(name)
                out.append(name)

    def flush() -> None:
        add([str(p) for p in list_inputs(local, recursive=recursive)])
        local.clear()

    for item in inputs:
        if is_uri(str(item)):
            flush()
            add(list_uri(str(item), recursive))
        else:
            local.append(item)
    flush()
    return out


def _uri_name(uri: str) -> str:
    return PurePosixPath(uri.partition("?")[0]).name or "input"


def _fetch(uri: str, folder: Path) -> Path:
    """Copy a URI's bytes into `folder` under its own file name."""
    filesystem, path = _uri_filesystem(uri)
    try:
        with filesystem.open_input_stream(path) as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageError(uri, "no such file") from None
    except Exception as e:
        raise ImageError(uri, f"cannot read ({_one_line(e)})") from None
    local = folder / _uri_name(uri)
    local.write_bytes(data)
    return local


class Worker:
    """Restores files one at a time with its own models (loaded on first use, then kept).
    On Ray each actor is one Worker; the local engine uses one in this process."""

    def __init__(self, spec: ModelSpec, options: RestoreOptions, protect: tuple[Path, ...] = (),
                 threads: int | None = None, cwd: str | None = None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        if cwd and os.path.isdir(cwd):  # relative inputs mean what they mean to the driver
            os.chdir(cwd)
        self.spec = spec
        self.options = options
        self.protect = protect
        self.threads = threads or 0
        self._models: ModelSet | None = None
        self._model_copy: tempfile.TemporaryDirectory[str] | None = None

    def models(self) -> ModelSet:
        """The worker's models; a checkpoint given as a URI is copied here first, once."""
        if self._models is None:
            s = self.spec
            model = s.model
            if model and is_uri(model):
                self._model_copy = tempfile.TemporaryDirectory(prefix="fbcnn-model-")
                model = str(_fetch(model, Path(self._model_copy.name)))
            self._models = ModelSet(model, device=s.device, tile=s.tile, precision=s.precision)
            if self.threads:  # onnxruntime's threads are per model, not per process
                self._models.set_threads(self.threads)
        return self._models

    def _would_read(self, planned: Planned) -> bool:
        """Whether restore_file gets as far as reading the input (else no need to fetch it)."""
        o = self.options
        if o.skip_existing and all(t.exists() for t in planned.outputs):
            return False
        return o.overwrite or not any(t.exists() for t in planned.all)

    def restore(self, item: str, planned: Planned) -> FileOutcome:
        from ..networks.checkpoints import CheckpointError

        tmp: tempfile.TemporaryDirectory[str] | None = None
        path = Path(item)
        try:
            models = self.models()
            if is_uri(item):
                tmp = tempfile.TemporaryDirectory(prefix="fbcnn-")
                path = Path(tmp.name) / _uri_name(item)
                if self._would_read(planned):
                    path = _fetch(item, Path(tmp.name))
            report = restore_file(path, models, planned, self.options, protect=self.protect)
            return FileOutcome(item, report)
        except (ImageError, CheckpointError, EngineError, ValueError) as e:
            message = str(e)
            if tmp is not None:
                message = message.replace(str(path), item)
            return FileOutcome(item, error=message)
        finally:
            if tmp is not None:
                tmp.cleanup()


def _check_outdir(items: Sequence[str], outdir: Path | str | None) -> None:
    if outdir is not None and is_uri(str(outdir)):
        raise EngineError(f"{outdir}: the output folder must be a local path (on a cluster: "
                          "a folder every worker can write, e.g. a shared file system)")
    if outdir is None and any(is_uri(i) for i in items):
        raise EngineError("URI inputs need an output folder (-o OUTDIR)")


def _as_path(item: str | Path) -> Path:
    """A local path as it is; a URI as a path under _URI_ROOT (for `plan_outputs`)."""
    text = str(item)
    if not is_uri(text):
        return Path(item)
    scheme, _, rest = text.partition("?")[0].partition("://")
    return _URI_ROOT / scheme / rest.strip("/")


def plan(items: Sequence[str], inputs: Sequence[str | Path], outdir: str | Path | None,
         options: RestoreOptions) -> list[Planned]:
    """The outputs of each item, named by `pipeline.plan_outputs` for the whole run (URIs
    as their paths: files found in a folder URI keep their sub-folders under `outdir`);
    EngineError when an output would overwrite an input."""
    paths = [_as_path(i) for i in items]
    try:
        planned = plan_outputs(paths, [_as_path(i) for i in inputs],
                               Path(outdir) if outdir is not None else None, options.sweep,
                               options.compare, suffix=options.suffix, ext=options.ext)
    except ImageError as e:
        raise EngineError(str(e)) from None
    return [planned[p] for p in paths]


def _local_outcomes(items: Sequence[str], planned: Sequence[Planned], worker: Worker
                    ) -> Iterator[FileOutcome]:
    for item, target in zip(items, planned, strict=True):
        yield worker.restore(item, target)


def _start_ray(address: str | None, num_cpus: int | None) -> None:
    """Connect to Ray at `address`, or start a local instance (quiet, no dashboard)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None  # Ray's own convention
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Ray Client's time-out warning: said in one line
            if address:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, object_store_memory=256 * 1024**2)
    except Exception as e:  # ConnectionError, ValueError, RuntimeError from a bad address
        where = f"Ray at {address}" if address else "a local Ray instance"
        lines = str(e).strip().splitlines() or [type(e).__name__]
        raise EngineError(f"cannot connect to {where}: {_one_line(lines[0])}") from None


@contextlib.contextmanager
def ray_connection(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """The Ray module, connected: an already connected Ray is used as it is; otherwise connect
    to `address` or start a local instance, and disconnect (or stop it) on leaving."""
    try:
        import ray
    except ImportError:
        raise EngineError("the Ray engine needs Ray: pip install 'fbcnn[ray]'") from None
    if ray.is_initialized():
        yield ray
        return
    _start_ray(address, num_cpus)
    try:
        yield ray
    finally:
        ray.shutdown()


def check_resources(ray: Any, threads: int, gpus: float) -> None:
    """EngineError when the cluster cannot hold one worker (its actors would wait for ever)."""
    resources = ray.cluster_resources()
    cpus, gpus_there = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if cpus < threads or gpus_there < gpus:
        raise EngineError(f"the Ray cluster has {cpus:g} CPU(s) and {gpus_there:g} GPU(s); "
                          f"a worker needs {threads} and {gpus:g}")


def _default_workers(ray: Any, threads: int, gpus: float) -> int:
    resources = ray.cluster_resources()
    if gpus > 0:
        return max(1, int(resources.get("GPU", 0) // gpus))
    return max(1, int(resources.get("CPU", 1) // threads))


def _actor_outcome(ray: Any, ref: Any, item: str) -> tuple[FileOutcome, bool]:
    """The outcome of the file `item` that an actor was sent (`ref`: its result), and whether
    that actor is gone for good."""
    from ray.exceptions import RayActorError, RayError, RayTaskError

    try:
        return ray.get(ref), False
    except RayActorError as e:  # its process died more often than it may be retried
        tries = MAX_TASK_RETRIES + 1
        lines = str(e).strip().splitlines() or [type(e).__name__]
        return FileOutcome(item, error=f"{item}: worker process died while restoring it "
                                       f"(tried {tries} times; "
                                       f"{_one_line(lines[0])[:200]})"), True
    except RayTaskError as e:  # an unexpected exception in restore_file
        cause = e.cause if e.cause is not None else e
        return FileOutcome(item, error=f"{item}: {type(cause).__name__}: "
                                       f"{_one_line(cause)}"), False
    except RayError as e:
        return FileOutcome(item, error=f"{item}: {_one_line(e)}"), False


def _run_actors(ray: Any, items: Sequence[str], planned: Sequence[Planned],
                worker_args: tuple[Any, ...], workers: int | None, threads: int,
                gpus: float) -> Iterator[FileOutcome]:
    """Restore on `workers` actors, one file in flight each; outcomes as they finish."""
    check_resources(ray, threads, gpus)
    n = min(workers or _default_workers(ray, threads, gpus), len(items))
    actor_class = ray.remote(Worker).options(
        num_cpus=threads, num_gpus=gpus, max_restarts=MAX_RESTARTS,
        max_task_retries=MAX_TASK_RETRIES)
    actors: list[Any] = []

    def new_actor() -> Any:
        actors.append(actor_class.remote(*worker_args, threads, os.getcwd()))
        return actors[-1]

    try:
        idle = [new_actor() for _ in range(n)]
        queue = deque(range(len(items)))
        running: dict[Any, tuple[int, Any]] = {}
        replaced = 0
        while queue or running:
            while idle and queue:
                i, actor = queue.popleft(), idle.pop()
                running[actor.restore.remote(items[i], planned[i])] = (i, actor)
            ready, _ = ray.wait(list(running), num_returns=1)
            i, actor = running.pop(ready[0])
            result, dead = _actor_outcome(ray, ready[0], items[i])
            if dead:
                ray.kill(actor, no_restart=True)
                replaced += 1
                if replaced > n + 2:
                    raise EngineError(f"Ray workers keep dying ({result.error}); finish the "
                                      "batch later with --skip-existing")
                actor = new_actor()
            idle.append(actor)
            yield result
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)


@dataclass(frozen=True)
class Engine:
    """Where a batch runs: `name` "local" or "ray"; the Ray settings (see `restore_many`)."""

    name: str = "local"
    address: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    gpus_per_worker: float = 0.0

    def check(self) -> None:
        if self.name not in ENGINES:
            raise EngineError(f"engine must be one of {', '.join(ENGINES)}, got {self.name!r}")
        if self.name == "local" and (self.address or self.workers or self.gpus_per_worker):
            raise EngineError("address, workers and gpus_per_worker need the ray engine")
        if self.workers is not None and self.workers < 1:
            raise EngineError(f"workers must be at least 1, got {self.workers}")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise EngineError(f"threads per worker must be at least 1, got "
                              f"{self.threads_per_worker}")

    @property
    def num_cpus(self) -> int | None:
        """CPUs of a local Ray instance started for the batch (None: the machine's)."""
        return self.workers * (self.threads_per_worker or 1) if self.workers else None


def iter_restore(inputs: Sequence[str | Path], outdir: str | Path | None = None,
                 options: RestoreOptions | None = None, spec: ModelSpec | None = None,
                 engine: Engine | None = None, *, recursive: bool = False,
                 items: list[str] | None = None) -> Iterator[FileOutcome]:
    """`restore_many` one outcome at a time, as they finish (in input order with the local
    engine). `items`: the inputs already expanded (`expand_inputs`), to list them once."""
    options, spec, engine = options or RestoreOptions(), spec or ModelSpec(), engine or Engine()
    engine.check()
    if items is None:
        items = expand_inputs(inputs, recursive=recursive)
    _check_outdir(items, outdir)
    if not items:
        return
    planned = plan(items, inputs, outdir, options)
    protect = tuple(Path(i) for i in items if not is_uri(i))
    if engine.name == "local":  # (Ray's workers may see other file systems than the driver)
        try:  # before any image is restored
            check_output_folders(planned, options)
        except ImageError as e:
            raise EngineError(str(e)) from None
        worker = Worker(spec, options, protect, threads=engine.threads_per_worker)
        yield from _local_outcomes(items, planned, worker)
        return
    try:
        import ray  # noqa: F401
    except ImportError:
        raise EngineError("the Ray engine needs Ray: pip install 'fbcnn[ray]'") from None
    with ray_connection(engine.address, engine.num_cpus) as ray:
        yield from _run_actors(ray, items, planned, (spec, options, protect), engine.workers,
                               engine.threads_per_worker or 1, engine.gpus_per_worker)


def restore_many(inputs: Sequence[str | Path], outdir: str | Path | None = None,
                 engine: str = "local", *, recursive: bool = False, model: str | None = None,
                 device: str = "auto", tile: int | None = DEFAULT_TILE, precision: str = "auto",
                 address: str | None = None, workers: int | None = None,
                 threads_per_worker: int | None = None, gpus_per_worker: float = 0.0,
                 **options: Any) -> list[FileOutcome]:
    """Restore files, folders and URIs as `fbcnn restore` does; one `FileOutcome` per input
    file (its `report`, or its one-line `error`), in input order.

    engine: "local" (this process, one file at a time; `threads_per_worker` then sets torch's
    threads here) or "ray" (`workers` actors of `threads_per_worker` network threads and
    `gpus_per_worker` GPUs each; Ray at `address` ("auto", "ray://host:port"), or a local
    instance started and stopped here; an already connected Ray is used as it is).
    `options`: the fields of `pipeline.RestoreOptions` (qf, sweep, double, consistency,
    compare, skip_existing, overwrite, max_megapixels, ...). `outdir` may name the output
    file of one input image ("x_restored.jpg": its format unless `ext` is given). Raises
    EngineError (one line) when the batch cannot run; files that fail do not raise."""
    items = expand_inputs(inputs, recursive=recursive)
    options["ext"] = output_ext(outdir, options.get("ext"))  # outdir "x.jpg": a JPEG
    found = {o.input: o for o in iter_restore(
        inputs, outdir, RestoreOptions(**options), ModelSpec(model, device, tile, precision),
        Engine(engine, address, workers, threads_per_worker, gpus_per_worker), items=items)}
    return [found[i] for i in items]


# ------------------------------------------------------------------- the command's output


def check_model(spec: ModelSpec) -> None:
    """Fail once, up front, for a --model that cannot be loaded here (a URI: that is not
    there); EngineError."""
    from ..networks.modelfiles import CheckpointError

    model = spec.model
    if not model:
        return
    if is_uri(model):
        from pyarrow import fs as pafs

        filesystem, path = _uri_filesystem(model)
        try:
            found = filesystem.get_file_info(path).type == pafs.FileType.File
        except Exception as e:
            raise EngineError(f"{model}: cannot read ({_one_line(e)})") from None
        if not found:
            raise EngineError(f"{model}: no such checkpoint file")
        return
    try:
        ModelSet(model, device="cpu", tile=spec.tile).get(model)
    except (CheckpointError, ValueError) as e:
        raise EngineError(str(e)) from None


def report_line(outcome: FileOutcome, sweep: list[int] | None) -> str:
    """What `fbcnn restore` prints for a file that did not fail (named as given: a URI)."""
    assert outcome.report is not None
    return pipeline_report_line(outcome.report, sweep, name=outcome.input)


def restore_command(inputs: Sequence[str], outdir: str | None, *, recursive: bool,
                    options: RestoreOptions, engine: str = "local", address: str | None = None,
                    workers: int | None = None, threads_per_worker: int | None = None,
                    gpus_per_worker: float = 0.0, **model: Any) -> int:
    """`fbcnn restore` through `iter_restore`: the local engine's lines, progress bar and
    summary; returns the exit code (1 if any file failed). `model`: the `ModelSpec` fields.
    Raises EngineError."""
    spec = ModelSpec(**model)
    where = Engine(engine, address, workers, threads_per_worker, gpus_per_worker)
    where.check()
    check_model(spec)
    items = expand_inputs(inputs, recursive=recursive)
    if not items:
        raise EngineError("no images found in " + ", ".join(inputs))
    _check_outdir(items, outdir)
    with contextlib.ExitStack() as stack:
        at_a_time = 1
        if where.name == "ray":  # connect before the progress bar shows
            ray = stack.enter_context(ray_connection(address, where.num_cpus))
            check_resources(ray, threads_per_worker or 1, gpus_per_worker)
            at_a_time = min(workers or _default_workers(ray, threads_per_worker or 1,
                                                        gpus_per_worker), len(items))
        outcomes = iter_restore(inputs, outdir, options, spec, where, items=items)
        return _print_outcomes(outcomes, len(items), options.sweep, at_a_time)


def _print_outcomes(outcomes: Iterator[FileOutcome], total: int, sweep: list[int] | None,
                    at_a_time: int) -> int:
    import click
    from tqdm import tqdm

    failed = done = skipped = copied = 0
    started = time.perf_counter()
    bar = tqdm(outcomes, total=total, unit="image", disable=total < 2, file=sys.stderr)
    for outcome in bar:
        if outcome.failed:
            failed += 1
            bar.write(f"error: {outcome.error}", file=sys.stderr)
            continue
        assert outcome.report is not None
        if outcome.report.skipped:
            skipped += 1
        elif outcome.report.not_jpeg == "copied":
            copied += 1
        else:
            done += 1
        bar.write(report_line(outcome, sweep))
    seconds = time.perf_counter() - started
    summary = batch_summary(total, done, skipped, failed, seconds, at_a_time, copied)
    click.echo(summary, err=True)
    return 1 if failed else 0
