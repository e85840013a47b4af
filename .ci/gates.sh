#!/usr/bin/env bash
# Static gates, fast and first: lint, formatting, types of the core, no import cycle.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "ruff>=0.6" "mypy>=1.10"
ruff check .
ruff format --check .
mypy core/ctxengine
python .ci/import_cycles.py core/ctxengine
