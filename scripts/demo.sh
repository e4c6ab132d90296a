#!/usr/bin/env bash
# Install trtq into a virtual environment and run the offline demo end to end:
# a small CNN trained on scikit-learn's digits -> INT8 Q/DQ ONNX, FP32 vs INT8 accuracy printed.
#   TRTQ_VENV     virtual environment to create/use (default .venv)
#   TRTQ_DEMO_OUT demo folder (default runs/demo; replaced if it exists)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TRTQ_VENV:-.venv}"
out="${TRTQ_DEMO_OUT:-runs/demo}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -e . 2>&1 | grep -v -e '^WARNING: Location' -e '^$' >&2 || true
"$venv/bin/python" -c "import trtq" # fail loudly here if the install failed
exec "$venv/bin/trtq" demo --out "$out" --force
