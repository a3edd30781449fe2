"""Restore in the browser: a static page that runs FBCNN on the client (nothing uploaded).

`fbcnn web build -o DIR` (`build.build_site`) writes the site: the page and its JavaScript
(`static/`), the colour and grey models exported to ONNX with the QF input, and the
onnxruntime-web runtime files from the npm package pinned in `package.json` /
`package-lock.json` (fetched once with `npm ci` into a cache folder). `fbcnn web serve DIR`
(`serve.make_server`) serves it on 127.0.0.1 with the cross-origin-isolation headers that
WASM threads need.
"""

from __future__ import annotations


class WebError(RuntimeError):
    """A build or serve that could not be done (one-line message)."""
