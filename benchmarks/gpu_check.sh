#!/usr/bin/env bash
# The GPU check as one command on a machine with no network (benchmarks/gpu_check/).
#
#   bash benchmarks/gpu_check.sh [gpu_check flags, e.g. --sections train]
#
# Results go to $GPU_CHECK_OUT, else $OUT/gpu (the device tool's result folder), else
# ./gpu_check_out: gpu_check.json, gpu_check.md, gpu_check.log (the console) and
# nvidia-smi.txt. Before it: bash benchmarks/gather_wheels.sh (fills .whl/) and
# cp ../shared/official/weights.pth .whl/weights.pth, then carry .whl to the machine.
# Installs .whl/*.whl into /tmp/site, finds the official weights (.whl/weights.pth,
# $JAXDARK_OFFICIAL_WEIGHTS, ../shared/official/weights.pth) and runs the check under a
# hard limit of $GPU_CHECK_TIMEOUT seconds (default 480; the check budgets itself 420 s and
# stops itself 45 s past that).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${GPU_CHECK_OUT:-}
if [ -z "$OUT_DIR" ]; then
  if [ -n "${OUT:-}" ]; then OUT_DIR=$OUT/gpu; else OUT_DIR=gpu_check_out; fi
fi
mkdir -p "$OUT_DIR"

if compgen -G ".whl/*.whl" > /dev/null; then
  if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
       --target /tmp/site .whl/*.whl; then
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "gpu_check.sh: installing .whl/*.whl failed; going on without them" >&2
  fi
else
  echo "gpu_check.sh: no wheels in .whl/ (run benchmarks/gather_wheels.sh); going on" >&2
fi

WEIGHTS=""
for w in .whl/weights.pth "${JAXDARK_OFFICIAL_WEIGHTS:-}" ../shared/official/weights.pth; do
  if [ -n "$w" ] && [ -f "$w" ]; then WEIGHTS=$w; break; fi
done
[ -n "$WEIGHTS" ] || echo "gpu_check.sh: official weights not found; parity will fail" >&2

export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1 || true
timeout -k 15 "${GPU_CHECK_TIMEOUT:-480}" python3 -m benchmarks.gpu_check --out "$OUT_DIR" \
  ${WEIGHTS:+--weights "$WEIGHTS"} "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
status=${PIPESTATUS[0]}
echo "gpu_check.sh: exit status $status; results in $OUT_DIR"
exit "$status"
