#!/usr/bin/env bash
# Create bench/.venv with alphaswarm (editable) and the peer frameworks.
#
#   bash bench/setup.sh            # from the repo root or from bench/
#   bench/.venv/bin/python -m bench            # everything, full sizes
#   bench/.venv/bin/python -m bench --quick    # small sizes
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --upgrade pip >/dev/null
.venv/bin/python -m pip install -e "..[postgres]"  # psycopg for the PostgreSQL ledger rows
.venv/bin/python -m pip install -r requirements.txt
.venv/bin/python - <<'PY'
from importlib.metadata import version
for name in ("alphaswarm", "backtrader", "backtesting", "psutil", "pyinstrument", "pandas", "numpy"):
    print(f"{name:12s} {version(name)}")
PY
