#!/usr/bin/env bash
# Install trtq with its dev extra into a virtual environment, lint, and run the test suite.
#   TRTQ_VENV  virtual environment to create/use (default .venv)
# Extra arguments go to pytest. pytest's "no tests collected" (exit 5) fails this script like any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TRTQ_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -e ".[dev]" 2>&1 | grep -v -e '^WARNING: Location' -e '^$' >&2 || true
"$venv/bin/python" -c "import trtq, pytest" # fail loudly here if the install failed
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
exec "$venv/bin/python" -m pytest -q "$@"
