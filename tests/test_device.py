"""The worker threads the array work around the network shares (`fbcnn.device`)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from fbcnn.device import available_cpus, ordered_map, worker_pool


def test_ordered_map_keeps_the_order_and_bounds_the_work_in_flight() -> None:
    lock = threading.Lock()
    running, most = 0, 0

    def work(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01 * (5 - i % 5))  # later items finish first
        with lock:
            running -= 1
        return i * i

    assert list(ordered_map(work, range(12), 2)) == [i * i for i in range(12)]
    assert most <= 2  # at most `in_flight` submitted and not yet taken


def test_ordered_map_raises_the_first_error_and_drops_what_was_not_started() -> None:
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        if i == 1:
            raise ValueError("strip 1")
        time.sleep(0.01)
        return i

    with pytest.raises(ValueError, match="strip 1"):
        list(ordered_map(work, range(50), 2))
    assert len(started) < 50


def test_one_pool_of_a_thread_per_cpu() -> None:
    assert worker_pool() is worker_pool()
    assert worker_pool()._max_workers == available_cpus()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_threads_of_its_own() -> None:
    """The parent's pool threads are not in a forked child: work submitted there to the
    inherited pool would never run (the child hung, and its parent in waitpid)."""
    def slow(i: int) -> int:
        time.sleep(0.05)
        return i

    # the parent's pool has all its threads (jobs at once), which then wait, idle
    assert list(ordered_map(slow, range(8), 8)) == list(range(8))
    time.sleep(0.2)
    pid = os.fork()
    if pid == 0:
        try:
            ok = list(ordered_map(abs, [-3, -4, -5], 2)) == [3, 4, 5]
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's work never ran")
