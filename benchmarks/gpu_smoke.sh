#!/usr/bin/env bash
# The first-device smoke test of graphc's GPU path: one unattended run, under 8 minutes.
#
#   bash benchmarks/gpu_smoke.sh [OUT_DIR]        (default: $OUT, else build/gpu_smoke)
#   bash benchmarks/gpu_smoke.sh --stand-in [OUT_DIR]
#
# --stand-in checks the script itself on a machine without a GPU, before device minutes are
# spent on it: the probes run with numpy standing in for cupy (gpu_probe.py --stand-in), the
# test stage runs the stand-in suite (tests/test_cupy_backend.py), the benchmarks are skipped,
# and graphc's own interpreter ($PYTHON, with graphc importable) is used as it is.
#
# From a fresh clone on a machine with a CUDA device and no network, using only the packages
# the machine has (numpy, networkx, cupy, pytest, setuptools; torch when present). Packages
# it lacks (on this workplace's H200 image: lark) come as wheels from .whl/ in the checkout,
# made beforehand on a machine with pip:
#   pip download --no-deps --only-binary=:all: -d .whl lark
# It makes a venv that sees the system's packages, adds those wheels, runs graphc from this
# checkout (PYTHONPATH), then runs each stage under its own time limit, so one stage that hangs cannot eat the
# others' minutes:
#   1. environment  (env.txt)   nvidia-smi, versions, a cupy kernel (CUDA headers present?)
#   2. probes       (probe.json, probe.log)  benchmarks/gpu_probe.py: README quick start,
#      mlp3 numpy vs cupy vs CUDA Graph, matmuls under capture with pool churn, variables
#      replaced between replays, float16/bool/int8, denormals, host<->device copies per
#      step, the README CNN's and LSTM's host steps and variable copies, uniform draws
#      against numpy bit for bit, step times against torch CUDA
#   3. pytest -m gpu (pytest.log)
#   4. the GPU benchmarks (bench.log): mlp2, mlp3, chain with the GPU contenders
# and writes summary.txt: each stage's status and seconds.
set -u
cd "$(dirname "$0")/.."
STAND_IN=
if [ "${1:-}" = --stand-in ]; then
    STAND_IN=--stand-in
    shift
fi
OUT_DIR=${1:-${OUT:-build/gpu_smoke}}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
PY=${PYTHON:-python3}
SUMMARY="$OUT_DIR/summary.txt"
: >"$SUMMARY"

stage() {   # stage NAME SECONDS LOG COMMAND...
    local name=$1 limit=$2 log=$3; shift 3
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
    local rc=$?
    local status=ok
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && status="timed out after ${limit}s"
    [ $rc -ne 0 ] && [ "$status" = ok ] && status="failed (exit $rc)"
    printf '%-12s %-28s %4ss  %s\n' "$name" "$status" $((SECONDS - t0)) "$(basename "$log")" \
        | tee -a "$SUMMARY"
}

# -- install: a venv over the system's packages, wheels from .whl/; graphc from this checkout
# (PYTHONPATH: a source checkout finds its grammar, so nothing is built or fetched)
t0=$SECONDS
VENV=${TMPDIR:-/tmp}/graphc-smoke-venv
if [ -n "$STAND_IN" ]; then
    PYTHONPATH="$PWD" $PY -c 'import lark, networkx, numpy, graphc; print(graphc.__file__)'
else
    $PY -m venv --system-site-packages --without-pip "$VENV" &&
    if ls .whl/*.whl >/dev/null 2>&1; then
        $PY -m pip install -q --no-index --no-deps --no-compile \
            --target "$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')" \
            .whl/*.whl
    fi &&
    PYTHONPATH="$PWD" "$VENV/bin/python" -c 'import lark, networkx, numpy, graphc; print(graphc.__file__)'
fi >"$OUT_DIR/install.log" 2>&1
printf '%-12s %-28s %4ss  %s\n' install "$([ $? -eq 0 ] && echo ok || echo failed)" \
    $((SECONDS - t0)) install.log | tee -a "$SUMMARY"
[ -z "$STAND_IN" ] && PY="$VENV/bin/python"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

stage environment 60 "$OUT_DIR/env.txt" bash -c "
    [ -n '$STAND_IN' ] || nvidia-smi || true
    $PY - <<'EOF'
import sys, numpy, networkx
print('python', sys.version)
print('numpy', numpy.__version__, 'networkx', networkx.__version__)
import lark; print('lark', lark.__version__)
if '$STAND_IN':
    import graphc; print('graphc', graphc.__file__, '(stand-in: no device)'); sys.exit(0)
import cupy
print('cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())
print('runtime', cupy.cuda.runtime.runtimeGetVersion(), 'driver', cupy.cuda.runtime.driverGetVersion())
print('cupy kernel', int((cupy.arange(10) * 2).sum()))
import graphc
from graphc.backends.cupy_backend import gpu_unavailable_reason
from graphc.backends import cuda_compile
print('graphc', graphc.__file__, 'gpu:', gpu_unavailable_reason() or 'available')
print('graphc NVRTC', cuda_compile.nvrtc())
EOF"

stage probes 150 "$OUT_DIR/probe.log" "$PY" -m benchmarks.gpu_probe "$OUT_DIR" $STAND_IN
if [ -n "$STAND_IN" ]; then  # the stand-in suite: the orchestration with numpy as cupy
    stage pytest-cpu 240 "$OUT_DIR/pytest.log" "$PY" -m pytest -q -p no:cacheprovider \
        -o addopts= --maxfail=20 tests/test_cupy_device.py tests/test_cupy_backend.py
    echo "benchmarks   skipped (stand-in: no device)" | tee -a "$SUMMARY"
    echo "total ${SECONDS}s" | tee -a "$SUMMARY"
    exit 0
fi
stage pytest-gpu 170 "$OUT_DIR/pytest.log" "$PY" -m pytest -m gpu -q -p no:cacheprovider \
    -o addopts= --maxfail=20 tests/test_cupy_device.py tests/test_cupy_backend.py
for w in mlp2 mlp3 chain; do
    stage "bench-$w" 40 "$OUT_DIR/bench-$w.log" "$PY" -m benchmarks --workload "$w" \
        --rounds 5 --budget 0.05 --settle 0
done
cat "$OUT_DIR"/bench-*.log >"$OUT_DIR/bench.log" 2>/dev/null && rm -f "$OUT_DIR"/bench-*.log
echo "total ${SECONDS}s" | tee -a "$SUMMARY"
