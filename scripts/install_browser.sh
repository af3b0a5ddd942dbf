#!/usr/bin/env bash
# Installs what the desk page's browser test (tests/test_desk_browser.py) needs:
# - Debian's chromium, when /usr/bin/chromium is absent (apt-get; root, or sudo);
# - the Python `playwright` package, which drives that chromium through `executable_path`. It is
#   in the `dev` extra, so `make install-dev` installs it too; here it is installed into PYTHON's
#   environment when that exists. No browser is downloaded by playwright: never `playwright install`.
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
/usr/bin/chromium --version 2>/dev/null

if [ -x "$PYTHON" ]; then
  "$PYTHON" -m pip install -q "playwright>=1.45"
fi
