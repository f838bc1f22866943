#!/usr/bin/env bash
# The main job: install alphaswarm into .venv and serve the dashboard on
# http://localhost:8000 with a demo bot paper trading (embedded SQLite ledger).
#
#   scripts/run.sh                   # dashboard + demo
#   scripts/run.sh --port 9000       # extra arguments go to `alphaswarm serve`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
echo "==> installing alphaswarm (editable)"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
echo "==> serving the dashboard with a demo bot on http://localhost:8000"
exec .venv/bin/alphaswarm serve --demo "$@"
