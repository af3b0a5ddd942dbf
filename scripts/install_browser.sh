#!/usr/bin/env bash
# Installs what the desk page's browser test needs: Debian's chromium (when /usr/bin/chromium is
# absent) and the Python `playwright` package, which drives that chromium through
# `executable_path`. No browser is downloaded by playwright (never run `playwright install`).
# Usage: scripts/install_browser.sh [PYTHON]   (PYTHON defaults to .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-.venv/bin/python}"

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends chromium
fi
/usr/bin/chromium --version

"$PYTHON" -m pip install -q "playwright>=1.45"
