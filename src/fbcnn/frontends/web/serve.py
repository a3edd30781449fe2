"""`fbcnn web serve DIR`: the built site on a local port, as a static host should serve it.

Every response carries the cross-origin-isolation headers (COOP same-origin, COEP
require-corp) that SharedArrayBuffer, and so onnxruntime-web's WASM threads, need; `.wasm`
is served as application/wasm (for streaming compilation) and `.mjs` as JavaScript (module
scripts are refused with any other type). Without the headers the page still works, on one
WASM thread.
"""

from __future__ import annotations

import errno
import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import WebError

DEFAULT_PORT = 8000
MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class SiteHandler(SimpleHTTPRequestHandler):
    """Static files with the isolation headers and the right MIME types."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def end_headers(self) -> None:
        for key, value in ISOLATION_HEADERS.items():
            self.send_header(key, value)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)


def make_server(directory: str | Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                quiet: bool = False) -> ThreadingHTTPServer:
    """A server for the built site in `directory` (not started: call serve_forever)."""
    directory = Path(directory)
    if not (directory / "index.html").is_file():
        raise WebError(f"{directory} is not a built site (no index.html); "
                       f"make one with: fbcnn web build -o {directory}")
    handler = functools.partial(SiteHandler, directory=str(directory))
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise WebError(f"port {port} on {host} is already in use; "
                           "pick another with --port") from None
        raise WebError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    server.daemon_threads = True
    server.quiet = quiet  # type: ignore[attr-defined]
    return server


def serve(directory: str | Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          echo: Any = print) -> None:
    """Serve until Ctrl+C."""
    server = make_server(directory, host, port)
    echo(f"serving {directory} at http://{host}:{server.server_address[1]}/ (Ctrl+C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
