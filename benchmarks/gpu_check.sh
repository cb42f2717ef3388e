#!/usr/bin/env bash
# GPU check of the CuPy fast paths (issue 9): equivalence tests, then the benchmark tables.
#
#   bash benchmarks/gpu_check.sh          # from the project root; writes to "$OUT" (default /tmp/reflip_gpu)
#
# Needs cupy, pytest, hypothesis (torch optional: the "PyTorch way" columns) and reflip's
# dependencies importable (array-api-compat, array-api-strict, autograd). Finishes in under
# 4 minutes on an H200 (each step has its own time-out); writes at most 5 files:
#   device.txt  GPU, driver, library versions
#   pytest.txt  CI=1 pytest -x of tests/test_fast_cupy.py tests/test_fast.py (tail)
#   bench.md    benchmarks/run.py --backend cupy (every section but nn and universality)
#   bench.err   its stderr
#   summary.txt the lines below
set -u
OUT=${OUT:-/tmp/reflip_gpu}
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import cupy, numpy; print("cupy", cupy.__version__, "numpy", numpy.__version__)'
  python3 -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo "torch: absent"
} > "$OUT/device.txt" 2>&1

start=$(date +%s)
CI=1 timeout 130 python3 -m pytest -q -x -p no:cacheprovider tests/test_fast_cupy.py tests/test_fast.py \
  > "$OUT/pytest.full" 2>&1
echo "exit status $?" >> "$OUT/pytest.full"
tail -n 60 "$OUT/pytest.full" > "$OUT/pytest.txt"; rm -f "$OUT/pytest.full"
t_tests=$(( $(date +%s) - start ))

start=$(date +%s)
timeout 95 python3 benchmarks/run.py --backend cupy \
  --sections groupsort bjorck registry projection memory scaling > "$OUT/bench.md" 2> "$OUT/bench.err"
echo "exit status $?" >> "$OUT/bench.err"
t_bench=$(( $(date +%s) - start ))

{
  echo "== device"; cat "$OUT/device.txt"
  echo "== tests (${t_tests}s): $(grep -E 'passed|failed|error' "$OUT/pytest.txt" | tail -n 1)"
  echo "== benchmarks (${t_bench}s), $(tail -n 1 "$OUT/bench.err")"
  grep -E '^\| (2|4|8|16|32|n) \||^Copy|^GEMM|forward|tf32|^\| [0-9]+ x ' "$OUT/bench.md"
} > "$OUT/summary.txt"
cat "$OUT/summary.txt"
