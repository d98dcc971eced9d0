#!/usr/bin/env bash
# `make ui-test`: a browser check of the Dagster UI (tests/ui/run_ui_check.py), with Playwright's
# Python package driving Debian's Chromium. Installs what is missing first: Debian's chromium
# (/usr/bin/chromium) and playwright in the venv. No `playwright install`: Playwright never downloads
# a browser here, it starts /usr/bin/chromium. Arguments go to run_ui_check.py (e.g. --data-dir DIR
# to reuse a demo build; without it the demo is built into a temporary directory, ~5 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
PLAYWRIGHT_VERSION=1.65.2

if [ ! -x /usr/bin/chromium ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "playwright==$PLAYWRIGHT_VERSION"
fi
exec "$VENV/bin/python" tests/ui/run_ui_check.py "$@"
