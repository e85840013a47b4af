#!/usr/bin/env bash
# The package claims Python >= 3.10 (pyproject's requires-python): prove it on that Python.
# A venv on the lowest claimed version installs the core and the store drivers, imports
# every module of the three packages that needs no optional framework, and runs the
# store tests that need no model. Usage: .ci/lowest_python.sh  (exit non-zero on failure)
set -euo pipefail
cd "$(dirname "$0")/.."
want="$(python3 - <<'PY'
import re, tomllib
spec = tomllib.load(open("pyproject.toml", "rb"))["project"]["requires-python"]
print(re.search(r">=\s*(\d+\.\d+)", spec).group(1))
PY
)"
root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
py="$(ls -d "$root"/versions/"$want".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)"
[ -n "$py" ] || py="$(command -v "python$want" || true)"
if [ -z "$py" ]; then
    echo "lowest_python.sh: no Python $want found (pyenv or python$want); cannot check the claim" >&2
    exit 1
fi
venv="${CTXENGINE_LOWEST_VENV:-/var/tmp/ctxengine-py$want}"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q -e ".[postgres]" "pytest>=8" "hypothesis>=6.100" "pytest-asyncio>=0.23"
echo "lowest_python.sh: $("$venv/bin/python" --version) in $venv"
"$venv/bin/python" - <<'PY'
import importlib, pkgutil, sys
import ctxengine
failed = []
for module in pkgutil.walk_packages(ctxengine.__path__, "ctxengine."):
    if module.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(module.name)
    except ImportError as error:  # an optional extra that is not installed here is fine
        if "ctxengine" in str(error):
            failed.append(f"{module.name}: {error!r}")
    except Exception as error:  # noqa: BLE001 - any other failure is a real one
        failed.append(f"{module.name}: {error!r}")
from ctxengine.memory.sqlite import SQLiteStore
from ctxengine.memory.postgres import PostgresStore
print(f"imported ctxengine on {sys.version.split()[0]}: stores {SQLiteStore.__name__}, {PostgresStore.__name__}")
if failed:
    print("\n".join(failed))
    raise SystemExit(1)
PY
# The store tests that need neither a model nor a framework.
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/engine/test_lowest_python.py
