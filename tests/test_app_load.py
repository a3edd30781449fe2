"""`fbcnn serve` as a subprocess on 127.0.0.1 (the shipped `color` model, 128-pixel tiles),
driven by gradio_client like users: concurrent users are all served the PNG `fbcnn restore`
writes for the same file, the server's memory stays bounded and does not grow from one round
to the next, a request whose client goes away (a cancelled call, a closed client) is dropped
at the next tile and the next user does not wait for it, and an upload over the pixel limit
is refused from its header in one line.

The 20-user round is `slow` (`make test-slow`); the default suite runs 3 users.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import huge_png, jpeg_batch, make_photo
from PIL import Image

import fbcnn

pytest.importorskip("gradio", reason="the web app needs gradio: pip install -e '.[app]'")
gradio_client = pytest.importorskip("gradio_client")

SRC = Path(fbcnn.__file__).resolve().parents[1]  # the package under test, for subprocesses
TILE = 128
MAX_MEGAPIXELS = 4
MAX_UPLOAD_MB = 1
DOWNLOAD = 4  # the download button among the outputs (see app.Outputs)
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "TMPDIR": str(tmp),
            "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class RssSampler:
    """The peak resident memory of a process, sampled every 20 ms while active."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> RssSampler:
        self.peak = rss_mb(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path
    tmp: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def results(self) -> list[Path]:
        """Files the app keeps (its own results folder, not Gradio's cache)."""
        return [p for d in self.tmp.glob("fbcnn-app-*/results") for p in d.rglob("*")
                if p.is_file()]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    import httpx

    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    log = tmp / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fbcnn", "serve", "--port", str(port), "--tile", str(TILE),
             "--max-megapixels", str(MAX_MEGAPIXELS), "--max-upload-mb", str(MAX_UPLOAD_MB)],
            stdout=out, stderr=subprocess.STDOUT, env=env(tmp), cwd=tmp)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"server exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"server did not start: {log.read_text()}"
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield Server(url, proc, log, tmp)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert not list(tmp.glob("fbcnn-app-*")), "the server left its temp folder"


def client(server: Server, tmp: Path) -> Any:
    return gradio_client.Client(server.url, verbose=False, download_files=str(tmp),
                                analytics_enabled=False)


def restore_on_server(server: Server, path: Path, tmp: Path) -> Path:
    """One user: upload `path` (auto strength), wait for the result, download the PNG."""
    c = client(server, tmp)
    try:
        out = c.predict(gradio_client.handle_file(str(path)), "auto", "", True,
                        api_name="/restore")
    finally:
        c.close()
    download = out[DOWNLOAD]  # gr.update(value=..., interactive=True)
    return Path(download["value"] if isinstance(download, dict) else download)


def cli_restore(paths: list[Path], outdir: Path, tmp: Path) -> None:
    """`fbcnn restore` in a subprocess, like the server (same threads, same model)."""
    result = subprocess.run([sys.executable, "-m", "fbcnn", "restore", *map(str, paths), "-o",
                             str(outdir), "--tile", str(TILE)], env=env(tmp),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def photos(folder: Path, count: int, seed: int) -> list[Path]:
    """`count` JPEGs of 64..160 pixels a side, each different."""
    return jpeg_batch(folder, count, seed, (64, 160), name="user{seed}_{i:02d}.jpg")


def serve_round(server: Server, files: list[Path], tmp: Path) -> tuple[list[Path], float, float]:
    """All users at once: (their PNGs, seconds, the server's peak RSS in MB)."""
    started = time.monotonic()
    with RssSampler(server.proc.pid) as rss, ThreadPoolExecutor(len(files)) as pool:
        pngs = list(pool.map(lambda p: restore_on_server(server, p, tmp / p.stem), files))
    return pngs, time.monotonic() - started, rss.peak


@pytest.mark.parametrize("users", [
    3, pytest.param(20, marks=pytest.mark.slow)])
def test_concurrent_users_get_the_cli_png_in_bounded_memory(server, tmp_path, users) -> None:
    idle = rss_mb(server.proc.pid)
    files = {r: photos(tmp_path / "in", users, seed=r) for r in (1, 2)}
    cli_restore(files[1] + files[2], tmp_path / "cli", tmp_path)
    rounds = []
    for r in (1, 2):
        pngs, seconds, peak = serve_round(server, files[r], tmp_path / f"users{r}")
        assert len(pngs) == users  # every user served
        for path, png in zip(files[r], pngs, strict=True):
            assert png.name == f"{path.stem}_restored.png"
            assert np.array_equal(pixels(png), pixels(tmp_path / "cli" / f"{path.stem}.png"))
        rounds.append((seconds, peak))
        print(f"\n{users} users, round {r}: all served in {seconds:.1f} s, server peak RSS "
              f"{peak:.0f} MB (idle before: {idle:.0f} MB)")
    (_, peak1), (_, peak2) = rounds
    assert max(peak1, peak2) < idle + 1500  # small images: far below a decoded 50 MP upload
    assert peak2 < peak1 + 100  # a second round of users does not grow it
    assert not server.results()  # every result removed once served


def big_jpeg(folder: Path) -> Path:
    """A JPEG restored in 121 tiles of 128 pixels."""
    path = folder / "big.jpg"
    Image.fromarray(make_photo(1024, 1024, seed=9)).save(path, quality=30)
    return path


# A client that submits the big JPEG and prints "<tile> <of> <monotonic time>" as the
# server restores its tiles
CLIENT = """
import sys, time, gradio_client
c = gradio_client.Client(sys.argv[1], verbose=False, analytics_enabled=False)
job = c.submit(gradio_client.handle_file(sys.argv[2]), "auto", "", True, api_name="/restore")
seen = printed = 0
while not job.done():
    for u in job.status().progress_data or []:
        if u.desc == "restoring" and u.index and u.index > seen:
            seen = u.index
            printed += 1
            print(u.index, u.length, time.monotonic(), flush=True)
    # the test reads 4 lines first: wait after printing them (a fast server's tiles can
    # pass several at a time between two polls)
    if sys.argv[3] == "cancel" and printed >= 4:
        sys.stdin.readline()  # the test says when
        job.cancel()
        print("cancelled", flush=True)
        sys.stdin.readline()
    time.sleep(0.02)
"""


@dataclass
class Leaving:
    """A client whose request is restoring the big JPEG: `tile_s` is how long a tile takes,
    `left` how many tiles are left; `leave()` makes the client go away."""

    proc: subprocess.Popen
    how: str
    tile_s: float
    left: int

    def leave(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.how == "cancel":  # gradio_client's job.cancel() (/cancel), then it exits
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
            while self.proc.stdout.readline() not in ("cancelled\n", ""):
                pass
        self.proc.kill()  # a closed tab: its connections drop
        self.proc.wait()


def restoring(server: Server, path: Path, tmp: Path, how: str) -> Leaving:
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, server.url, str(path), how],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env(tmp))
    try:
        assert proc.stdout is not None
        tiles = [proc.stdout.readline().split() for _ in range(4)]
        (first, total, t1), *_, (last, _, t2) = tiles
        tile_s = (float(t2) - float(t1)) / (int(last) - int(first))
        return Leaving(proc, how, tile_s, int(total) - int(last))
    except BaseException:
        proc.kill()
        proc.wait()
        raise


@pytest.mark.parametrize("how", ["cancel", "close"])
def test_request_of_a_client_gone_is_dropped(server, tmp_path, how) -> None:
    small = photos(tmp_path / "in", 1, seed=7)[0]
    started = time.monotonic()
    restore_on_server(server, small, tmp_path / "alone")
    alone = time.monotonic() - started  # a small image on an idle server
    logged = len(server.log_text())

    gone = restoring(server, big_jpeg(tmp_path), tmp_path / "gone", how)
    with ThreadPoolExecutor(1) as pool:  # the next user, queued behind the big restore
        following = pool.submit(restore_on_server, server, small, tmp_path / "next")
        time.sleep(0.5)
        started = time.monotonic()
        gone.leave()
        png = following.result(timeout=600)
    waited = time.monotonic() - started
    assert png.is_file()
    log = server.log_text()[logged:]
    # the next user waits for a tile or two of the big restore, not for the 80+ left
    assert gone.left >= 80, gone  # of 121: most of it (a fast runtime is a few tiles on)
    assert waited < alone + gone.left * gone.tile_s / 2, (waited, alone, gone, log)
    assert log.count("fbcnn app: dropped a request whose client went away after ") == 1, log
    assert not server.results()  # nothing written for the dropped request


def test_upload_over_the_limit_is_refused_from_its_header(server, tmp_path) -> None:
    png = huge_png(tmp_path / "huge.png", 20000, 20000)
    assert png.stat().st_size < 10_000
    c = client(server, tmp_path)
    started = time.monotonic()
    try:
        with RssSampler(server.proc.pid) as rss, pytest.raises(Exception) as err:
            c.predict(gradio_client.handle_file(str(png)), "auto", "", True,
                      api_name="/restore")
    finally:
        c.close()
    seconds = time.monotonic() - started
    message = str(err.value)
    assert message == ("huge.png: 20000x20000 is 400.0 megapixels, over this server's limit "
                       f"of {MAX_MEGAPIXELS}; restore it with the command line instead "
                       "(fbcnn restore FILE)"), message
    assert seconds < 10 and rss.peak < rss_mb(server.proc.pid) + 100
    assert "Traceback" not in server.log_text()


def test_upload_over_the_size_limit_is_refused(server, tmp_path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(2_000_000))
    c = client(server, tmp_path)
    try:
        with pytest.raises(Exception, match="(?i)size|large|limit") as err:
            c.predict(gradio_client.handle_file(str(big)), "auto", "", True,
                      api_name="/restore")
    finally:
        c.close()
    assert "\n" not in str(err.value).strip(), err.value
    assert "Traceback" not in server.log_text()
