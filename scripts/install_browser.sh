#!/usr/bin/env bash
# Headless Chromium for the web app's browser test (tests/e2e/test_app_browser.py):
# Debian's `chromium` package, driven by Playwright for Python (a pip package, in the
# `e2e` extra). Never `playwright install`: it downloads browsers from a CDN.
# Needs root (CI) or sudo; does nothing when chromium is already there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(chromium --version 2>/dev/null)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
$SUDO apt-get update -q
# fonts: a bare image has none, and the page's text would render as boxes
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
echo "installed $(chromium --version 2>/dev/null) in $(( $(date +%s) - start )) s"
