"""`fbcnn web build` and `fbcnn web serve` without a browser: the server's headers and MIME
types, one-line errors (npm missing or failing, port taken, not a site, a folder in use),
the pinned runtime, and a build from tiny models with a stand-in runtime cache (no npm)."""

from __future__ import annotations

import json
import socket
import stat
import threading
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from fbcnn.frontends.cli import main
from fbcnn.frontends.web import WebError
from fbcnn.frontends.web import build as web_build
from fbcnn.frontends.web.serve import make_server


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line_error(result, exit_code: int = 1) -> str:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def fake_runtime(tmp_path, monkeypatch) -> Path:
    """A cache holding stand-ins for the onnxruntime-web files (so no npm is needed)."""
    cache = tmp_path / "cache"
    dist = web_build._dist(web_build._runtime_folder(cache))
    dist.mkdir(parents=True)
    for names in web_build.RUNTIME_FILES.values():
        for name in names:
            (dist / name).write_text(f"// {name}\n")
    (dist / "ort.all.min.mjs").write_text("// a variant the site does not need\n")
    monkeypatch.setenv("FBCNN_WEB_CACHE", str(cache))
    return dist


def test_runtime_is_pinned_and_locked() -> None:
    version = web_build.ort_version()
    assert version[0].isdigit() and not any(c in version for c in "^~<>*x ")
    lock = json.loads(web_build.PACKAGE_LOCK.read_text())
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == version
    assert lock["packages"][""]["dependencies"]["onnxruntime-web"] == version


def test_serve_sends_isolation_headers_and_mime_types(tmp_path) -> None:
    for name, data in (("index.html", b"<!doctype html>"), ("ort/x.wasm", b"\0asm"),
                       ("ort/x.mjs", b"export {}"), ("models/color.onnx", b"onnx"),
                       ("app.js", b"//")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    server = make_server(tmp_path, port=0, quiet=True)
    assert server.server_address[0] == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        for path, mime in (("", "text/html"), ("ort/x.wasm", "application/wasm"),
                           ("ort/x.mjs", "text/javascript"), ("app.js", "text/javascript"),
                           ("models/color.onnx", "application/octet-stream")):
            with urllib.request.urlopen(base + path) as response:
                assert response.headers["Content-Type"].split(";")[0] == mime, path
                assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
                assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    finally:
        server.shutdown()
        server.server_close()


def test_serve_port_taken_is_one_line_error(tmp_path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = one_line_error(invoke("web", "serve", str(tmp_path), "--port", str(port)))
    assert line == f"Error: port {port} on 127.0.0.1 is already in use; pick another with --port"


def test_serve_needs_a_built_site(tmp_path) -> None:
    line = one_line_error(invoke("web", "serve", str(tmp_path / "nowhere")))
    assert "is not a built site (no index.html)" in line


def test_build_without_npm_is_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FBCNN_WEB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(web_build.shutil, "which", lambda name: None)
    line = one_line_error(invoke("web", "build", "-o", str(tmp_path / "site")))
    assert line.startswith("Error: npm not found: fbcnn web build needs Node.js and npm")
    assert not (tmp_path / "site").exists()


def test_failing_npm_is_one_line_error(tmp_path) -> None:
    npm = tmp_path / "npm"
    npm.write_text("#!/bin/sh\necho 'npm ERR! code E404' >&2\n"
                   "echo 'npm ERR! 404 Not Found - GET onnxruntime-web' >&2\nexit 1\n")
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(WebError, match=r"^npm ci failed: npm ERR! 404 Not Found") as e:
        web_build.runtime_dir(tmp_path / "cache", npm=str(npm))
    assert "\n" not in str(e.value)
    assert not list((tmp_path / "cache").iterdir())  # nothing half-installed is left


def test_build_refuses_a_folder_in_use(tmp_path, fake_runtime) -> None:
    used = tmp_path / "photos"
    used.mkdir()
    (used / "holiday.jpg").write_bytes(b"\xff\xd8")
    line = one_line_error(invoke("web", "build", "-o", str(used)))
    assert line == (f"Error: {used} is not empty and holds no earlier build; "
                    "pick a new or empty folder")
    assert (used / "holiday.jpg").exists()


def test_build_with_tiny_models(tmp_path, fake_runtime, tiny_model_files) -> None:
    site = tmp_path / "site"
    report = web_build.build_site(site, models=tiny_model_files)
    names = set(report.files)
    for page_file in ("index.html", "app.js", "worker.js", "jpeg.js", "tiles.js",
                      "consistency.js", "png.js", "style.css", "fbcnn-web.json",
                      "ort/NOTICE.txt"):
        assert page_file in names
    # each model: its two parts (the QF reader, the reconstructor) on one shared weights file
    models = {n for n in names if n.startswith("models/")}
    assert models == {f"models/{m}{s}" for m in ("color", "gray")
                      for s in web_build.MODEL_SUFFIXES}
    runtime = {n for n in names if n.startswith("ort/") and n != "ort/NOTICE.txt"}
    assert runtime == {f"ort/{n}" for ns in web_build.RUNTIME_FILES.values() for n in ns}
    manifest = json.loads((site / "fbcnn-web.json").read_text())
    assert manifest["onnxruntime_web"] == web_build.ort_version()
    assert {k: v["channels"] for k, v in manifest["models"].items()} == {"color": 3, "gray": 1}
    for name, entry in manifest["models"].items():
        assert entry["files"] == {"qf": f"models/{name}.qf.onnx",
                                  "reconstruct": f"models/{name}.reconstruct.onnx",
                                  "weights": f"models/{name}.weights"}
        assert entry["bytes"] == {part: report.files[file] for part, file in entry["files"].items()}
        # the graphs hold no weights of their own: the .weights file does, each tensor once
        assert entry["bytes"]["weights"] > entry["bytes"]["qf"] + entry["bytes"]["reconstruct"]
    assert report.visit_bytes("wasm") < report.visit_bytes("webgpu") < report.total_bytes
    # jpegli's tables and their qualities (a single JPEG's QF rule), beside the manifest
    from fbcnn.jpeg.qf import JPEGLI_TABLES

    assert manifest["jpegli_tables"] == "jpegli_tables.json" in names
    assert (site / manifest["jpegli_tables"]).read_bytes() == JPEGLI_TABLES.read_bytes()
    assert len(json.loads((site / "jpegli_tables.json").read_text())["tables"]) == 100

    # a rebuild replaces the earlier build; a grey model in the colour slot is refused
    (site / "stale.txt").write_text("old")
    web_build.build_site(site, models=tiny_model_files, webgpu=False)
    assert not (site / "stale.txt").exists()
    assert not (site / "ort" / "ort.webgpu.min.mjs").exists()
    swapped = {"color": tiny_model_files["gray"], "gray": tiny_model_files["color"]}
    with pytest.raises(WebError, match="model color .* takes 1 channels, expected 3"):
        web_build.build_site(tmp_path / "other", models=swapped)
    assert not (tmp_path / "other").exists()
