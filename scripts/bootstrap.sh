# Sourced by run.sh and test.sh: make sure python3 can build a venv, then create .venv.
# On a fresh Debian machine python3 may lack ensurepip/venv: install python3-venv then.

PYTHON="${PYTHON:-python3}"

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "need root (or sudo) to run: $*" >&2
        return 1
    fi
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "$@"
}

if [[ ! -x .venv/bin/python ]]; then
    if ! "${PYTHON}" -m venv --help >/dev/null 2>&1 || ! "${PYTHON}" -c "import ensurepip" 2>/dev/null; then
        echo "==> installing python3-venv"
        apt_install python3-venv python3-pip
    fi
    echo "==> creating .venv with ${PYTHON}"
    "${PYTHON}" -m venv .venv
fi
