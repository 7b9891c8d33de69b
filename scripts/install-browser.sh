#!/usr/bin/env bash
# Debian's headless Chromium and its chromedriver for the dashboard's browser test
# (tests/e2e/test_dashboard_browser.py). Test tools cannot download a browser here,
# so the packages come from apt. Idempotent: does nothing when both are present.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "[browser] $(chromium --version 2>/dev/null | head -n1) and chromedriver present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
  command -v sudo >/dev/null 2>&1 || { echo "[browser] run as root: apt-get install -y chromium chromium-driver" >&2; exit 1; }
else
  SUDO=
fi
echo "[browser] installing Debian's chromium and chromium-driver (first run only, ~100 MB)"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver
echo "[browser] $(chromium --version | head -n1) installed"
