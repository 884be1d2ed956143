#!/usr/bin/env bash
# bench/run.sh - `make bench`: embtune against PyTorch (fp32 and bf16 autocast)
# and ONNX Runtime, measured in the same run on the same random weights, plus
# the per-area benchmarks (ingest, tokenizer, generate, eval, serve,
# finetune). The work is in bench/bench.py (see its header); this script picks
# the OpenBLAS kernel for this CPU (bench/cpu.sh) and runs it with Debian's
# Python + PyTorch. Prints one table of ratios and writes bench/out/bench.json.
# Env: BENCH_ONLY=peak,infer,train,stream,scripts (subset), BENCH_QUICK=1.
set -eu
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
export TORCH_PY=${TORCH_PY:-/usr/bin/python3}
export SHARED=${SHARED:-$(cd .. && pwd)/shared}
. bench/cpu.sh
export CPU_NAME CPU_ISA
unset OPENBLAS_L2_SIZE
exec "$TORCH_PY" bench/bench.py
