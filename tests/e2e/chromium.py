"""The headless Chromium the browser tests drive (Debian's, installed by
scripts/install_browser.sh; FBCNN_CHROMIUM names another)."""

from __future__ import annotations

import os
import shutil

CHROMIUM = os.environ.get("FBCNN_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
# this machine has no network: nothing may phone home or wait for it
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
