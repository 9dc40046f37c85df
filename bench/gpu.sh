#!/usr/bin/env bash
# Bark on one GPU: real-time factor at batch 1, 4 and 16 and peak GPU memory, on a random-weight checkpoint with
# bark-small's architecture (built under checkpoints/ on the first run, ~1.7 GB), then an out-of-memory check.
# Bounded to 7.5 minutes. Extra arguments go to bench/gpu.py, e.g. `bench/gpu.sh --device cpu --arch tiny`.
#
#   bench/gpu.sh                      # needs a CUDA build of torch 2.13.0 (see the README's GPU section)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
exec timeout --signal=INT --kill-after=10 450 "$python" bench/gpu.py "$@"
