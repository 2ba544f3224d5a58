#!/usr/bin/env bash
# The GPU checks, as one script for a machine with a CUDA GPU and a PyTorch already installed:
#   1. the test suite with device=auto, so every test that does not pin a device runs on CUDA;
#   2. Dreamer throughput at fixed model sizes and replay ratio (benchmarks/timed_run.py):
#      S on CartPole-v1 (vectors), L and M on ALE/Pong-v5 from 64x64 grey pixels, M for longest
#      (where Pong stands after that time);
#   3. A2C's and PPO's ALE/Pong-v5 presets for a short while (throughput; Pong needs millions of steps).
# Results go to $OUT (default ./gpu_check_out).  Extra wheels (gymnasium, ale-py, ...) are
# installed from .whl/ when that folder exists (a machine with no package index).
# Budgets in seconds (0 skips a part): TEST_S, CARTPOLE_S, PONG_M_S, PONG_L_S, A2C_S, PPO_S; TESTS
# names the tests to run (default: all).  DEVICE=cpu and PRESET=debug try the script out on a
# machine without a GPU.
set -u
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
PY=${PY:-python3}
if [ -d .whl ]; then $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl || exit 1; fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/machine.txt"
$PY -c "import torch, gymnasium, ale_py, os; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cpus', os.cpu_count())" | tee -a "$OUT/machine.txt"

echo "== tests on CUDA"
if [ "${TEST_S:-150}" -gt 0 ]; then  # the whole log in $OUT, so a timeout still shows what passed
    timeout "${TEST_S:-150}" $PY -m pytest -v -rfE --durations=10 -p no:cacheprovider -n 12 --timeout 120 \
        -k "not video" ${TESTS:-tests} > "$OUT/pytest.txt" 2>&1
    grep -E "FAILED|ERROR|passed|failed" "$OUT/pytest.txt" | grep -v "^\[gw" | tail -30
fi

run() {  # run NAME SECONDS ARGS...: one timed training run, its JSON into $OUT
    local name=$1 seconds=$2; shift 2
    [ "$seconds" -gt 0 ] || return 0
    echo "== $name"
    timeout $((seconds + 90)) $PY benchmarks/timed_run.py --seconds "$seconds" --json "$OUT/$name.json" "$@" 2>&1 \
        | grep -v "^A.L.E\|Powered by" | tail -4
}
PONG=(--env ALE/Pong-v5 --set pixels=64 grayscale=true buffer_size=500000 log_interval=250 device=${DEVICE:-cuda})
run dreamer_S_cartpole "${CARTPOLE_S:-20}" --algo dreamer --env CartPole-v1 --preset ${PRESET:-S} --set log_interval=250 device=${DEVICE:-cuda}
run dreamer_L_pong "${PONG_L_S:-40}" --algo dreamer --preset ${PRESET:-L} --eval-episodes 1 "${PONG[@]}"
run dreamer_M_pong "${PONG_M_S:-140}" --algo dreamer --preset ${PRESET:-M} --eval-episodes 3 "${PONG[@]}"
run a2c_pong "${A2C_S:-60}" --algo a2c --env ALE/Pong-v5 --eval-episodes 3 --set log_interval=5000 device=${DEVICE:-cuda}
run ppo_pong "${PPO_S:-60}" --algo ppo --env ALE/Pong-v5 --eval-episodes 3 --set log_interval=4096 device=${DEVICE:-cuda}
ls -la "$OUT"
