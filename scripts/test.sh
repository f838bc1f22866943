#!/usr/bin/env bash
# Run the whole test suite the way CI does: venv, system packages, lint, pytest.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh tests/ledger -q # arguments go to pytest
#
# System packages (PostgreSQL server for the ledger tests, Chromium for the browser
# tests, curl) are installed with apt-get only when missing, and only when running
# as root or with sudo available.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/bootstrap.sh

echo "==> installing alphaswarm[test,notebook] (editable)"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,notebook]'

missing=()
if [[ ! -x /usr/bin/chromium ]]; then
    missing+=(chromium)
fi
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    missing+=(postgresql)
fi
if ! command -v curl >/dev/null 2>&1; then
    missing+=(curl)
fi

if ((${#missing[@]})); then
    sudo_cmd=()
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo_cmd=(sudo -n)
        else
            sudo_cmd=(none)
        fi
    fi
    if [[ "${sudo_cmd[*]-}" == "none" ]]; then
        echo "==> missing system packages: ${missing[*]} (not root, no sudo: tests needing them skip)" >&2
    else
        echo "==> installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        "${sudo_cmd[@]}" apt-get update
        "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

echo "==> ruff check"
.venv/bin/ruff check .

run_pytest() {
    echo "==> pytest $*"
    local status=0
    .venv/bin/python -m pytest "$@" || status=$?
    if [[ ${status} -eq 5 ]]; then
        echo "pytest collected no tests: treating that as a failure" >&2
        return 1
    fi
    return "${status}"
}

# The suite must leave the tree as it found it (screenshots go to test-artifacts/;
# docs/img/ is refreshed by hand with scripts/screenshots.py).
tree_before="$(git status --porcelain 2>/dev/null || true)"
check_tree() {
    local after
    after="$(git status --porcelain 2>/dev/null || true)"
    if [[ "${after}" != "${tree_before}" ]]; then
        echo "the test run changed the tree (git status --porcelain):" >&2
        diff <(echo "${tree_before}") <(echo "${after}") >&2 || true
        return 1
    fi
}

status=0
if (($#)); then
    run_pytest "$@" || status=$?
else
    # Two worker processes (pytest-xdist), each test file whole in one of them: most tests
    # wait on a server, a browser or a database, so two files at once use both cores.
    # ALPHASWARM_TEST_WORKERS=0 runs each of the three runs below in one process.
    workers="${ALPHASWARM_TEST_WORKERS:-2}"
    xdist=()
    if [[ "${workers}" != "0" ]]; then
        xdist=(-n "${workers}" --dist loadfile)
    fi
    # Three runs, each in processes of its own: a browser test leaves Playwright's event
    # loop running in its process, which would break a later test's asyncio.run(); the
    # JupyterLab suite drives Playwright's sync API with no loop another test left behind.
    run_pytest "${xdist[@]}" --durations=15 --ignore=tests/ui || status=$?
    run_pytest "${xdist[@]}" --durations=15 tests/ui --ignore=tests/ui/test_jupyterlab.py || status=$?
    run_pytest --durations=10 tests/ui/test_jupyterlab.py || status=$?
fi
check_tree || status=1
exit "${status}"
