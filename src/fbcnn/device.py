"""Where and in which precision networks run: one rule for inference and training; and the
CPU threads the array work around the network shares.

torch is imported where a device is picked, not with this module (`cpu_has_native_bf16`
decides for the onnxruntime path, which never imports torch)."""

from __future__ import annotations

import functools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA, else MPS, else CPU; or the device named (ValueError if absent).
    Under torchrun (LOCAL_RANK set) 'auto' and 'cuda' pick this process's GPU."""
    import torch

    if name not in ("auto", "cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise ValueError(f"unknown device '{name}' (choose auto, cpu, cuda or mps)")
    if name in ("auto", "cuda") and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    if name == "auto":
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("CUDA is not available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS is not available on this machine")
    return torch.device(name)


@functools.cache
def available_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity outside Linux
        return os.cpu_count() or 1


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
Item = TypeVar("Item")
Result = TypeVar("Result")


def _forget_pool() -> None:
    """In a forked child: the parent's threads are not there, so the pool is made anew on
    first use (a submit to the inherited one would never run)."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def worker_pool() -> ThreadPoolExecutor:
    """The process's threads for array work that lets go of the GIL (numpy, Pillow's codecs,
    zlib), one per available CPU, made on first use (again in a forked child): the
    double-JPEG analysis, the JPEG consistency projection and the PNG writer share them, so
    a restore starts its threads once and `--jobs` does not multiply them. What runs on them
    must not wait on them."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=available_cpus(),
                                       thread_name_prefix="fbcnn-worker")
        return _POOL


def ordered_map(work: Callable[[Item], Result], items: Iterable[Item],
                in_flight: int) -> Iterator[Result]:
    """`work(item)` for each item on `worker_pool()`, the results in order, with at most
    `in_flight` submitted and not yet taken (what bounds memory). On an error, or when the
    caller stops early, the items not started are dropped and the running ones waited
    for."""
    pool = worker_pool()
    pending: deque[Future[Result]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= max(1, in_flight):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        wait(pending)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AMX-BF16 or AVX512-BF16, from
    /proc/cpuinfo); elsewhere bf16 is emulated and slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool({"amx_bf16", "avx512_bf16"} & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """'fp32' or 'bf16' for `precision` ('auto', 'fp32', 'bf16') on `device`: auto is bf16
    on CUDA (with bf16 support) and on CPUs with native bf16, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"
