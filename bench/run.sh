#!/usr/bin/env bash
# bench/run.sh - `make bench`: embtune vs PyTorch fp32 on a bge-small-shaped
# random model (12 layers, hidden 384, 12 heads, FFN 1536), 256 sequences of
# 128 tokens, batch 32, measured in the same run: sequences/s and peak RSS.
# PyTorch: 1 intra-op thread + OpenBLAS 2 threads; embtune: 2 threads (its own
# AVX2 GEMM, and again with OpenBLAS sgemm). OPENBLAS_CORETYPE is chosen from
# the CPU (Cooperlake only on AVX-512 Intel; Haswell for AVX2 Zen/Intel).
# Writes a table to stdout and JSON to bench/out/embed.json.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
EMBTUNE=$PWD/$BUILD/embtune
TORCH_PY=${TORCH_PY:-/usr/bin/python3}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
OUT=bench/out
W=$BUILD/bench
mkdir -p "$OUT" "$W"
N=${BENCH_N:-256}; T=${BENCH_T:-128}; BS=${BENCH_BATCH:-32}; THREADS=${BENCH_THREADS:-2}

if grep -q avx512f /proc/cpuinfo && grep -q GenuineIntel /proc/cpuinfo; then CORE=Cooperlake
elif grep -q avx2 /proc/cpuinfo; then CORE=Haswell
else CORE=Prescott; fi
export OPENBLAS_CORETYPE=$CORE
unset OPENBLAS_L2_SIZE
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')

[ -f "$W/bge-small-random/model.safetensors" ] ||
    $TORCH_PY tests/ref/make_models.py bench "$W" "$SHARED" >/dev/null
M=$W/bge-small-random
$TORCH_PY -c "
import json, random
random.seed(1)
ids = [[101] + [random.randrange(1000, 29000) for _ in range($T - 2)] + [102] for _ in range($N)]
json.dump(ids, open('$W/ids.json', 'w'))
open('$W/ids.txt', 'w').write(''.join(' '.join(map(str, x)) + '\n' for x in ids))
open('$W/one.txt', 'w').write(' '.join(map(str, ids[0])) + '\n')"

# GEMM kernels alone (bge-small shapes, N = 32 x 128 tokens)
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc $(pkg-config --cflags openblas) bench/gemm_bench.c \
    "$BUILD/libembtune.a" $(pkg-config --libs libcjson libutf8proc oniguruma libcurl libmicrohttpd \
    poppler-glib openblas) -lm -pthread -o "$W/gemm_bench"
"$W/gemm_bench" $THREADS > "$W/gemm.txt"

peak() { grep "Maximum resident" "$1" | awk '{print $NF}'; }

# PyTorch
OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=1 /usr/bin/time -v \
    $TORCH_PY bench/torch_bench.py "$M" "$W/ids.json" "$W/torch.npy" $BS > "$W/torch.out" 2> "$W/torch.time"
t_torch=$(awk '/seconds/ {print $2}' "$W/torch.out")
rss_torch=$(peak "$W/torch.time")

run_et() { # label gemm
    # load-only run (one sequence) to separate model loading from the forward
    local s0=$(date +%s.%N)
    ET_GEMM=$2 "$EMBTUNE" embed -q -m "$M" --ids -i "$W/one.txt" -o "$W/et1.npy" --threads $THREADS
    local s1=$(date +%s.%N)
    ET_GEMM=$2 /usr/bin/time -v "$EMBTUNE" embed -q -m "$M" --ids -i "$W/ids.txt" -o "$W/et-$2.npy" \
        --threads $THREADS --batch-size $BS 2> "$W/et-$2.time"
    local s2=$(date +%s.%N)
    echo "$(echo "$s2 - $s1 - ($s1 - $s0)" | bc -l) $(peak "$W/et-$2.time") $(echo "$s1 - $s0" | bc -l)"
}
read t_avx2 rss_avx2 load_avx2 < <(run_et avx2 avx2)
read t_blas rss_blas load_blas < <(run_et blas blas)
err=$($TORCH_PY -c "
import numpy as np
a, b = np.load('$W/et-avx2.npy'), np.load('$W/torch.npy')
print('%.3g' % np.abs(a - b).max())")

sps() { echo "$N / $1" | bc -l; }
printf '\nembed: %d x %d tokens, batch %d, %d threads, bge-small shape (12 x 384, FFN 1536)\n' $N $T $BS $THREADS
printf 'CPU: %s  OPENBLAS_CORETYPE=%s\n\n' "$cpu" "$CORE"
printf '%-34s %10s %9s %10s\n' "" "seq/s" "vs torch" "peak RSS"
printf '%-34s %10.1f %9s %8d MB\n' "PyTorch fp32 (1 thread + BLAS $THREADS)" "$(sps $t_torch)" "1.00x" $((rss_torch / 1024))
printf '%-34s %10.1f %8.2fx %8d MB\n' "embtune (AVX2 GEMM)" "$(sps $t_avx2)" "$(echo "$t_torch / $t_avx2" | bc -l)" $((rss_avx2 / 1024))
printf '%-34s %10.1f %8.2fx %8d MB\n' "embtune (OpenBLAS sgemm)" "$(sps $t_blas)" "$(echo "$t_torch / $t_blas" | bc -l)" $((rss_blas / 1024))
printf '\nGEMM GFLOP/s (%d threads):\n' $THREADS; cat "$W/gemm.txt"
printf '\nforward only (model load %.2fs excluded); max |embtune - torch| = %s\n' "$load_avx2" "$err"
cat > "$OUT/embed.json" <<JSON
{"bench": "embed", "model": "bge-small-shaped random (12x384, FFN 1536)", "sequences": $N, "tokens": $T,
 "batch": $BS, "threads": $THREADS, "cpu": "$cpu", "openblas_coretype": "$CORE",
 "torch": {"seconds": $t_torch, "seq_per_s": $(sps $t_torch), "peak_rss_kb": $rss_torch},
 "embtune_avx2": {"seconds": $t_avx2, "seq_per_s": $(sps $t_avx2), "peak_rss_kb": $rss_avx2, "load_seconds": $load_avx2},
 "embtune_blas": {"seconds": $t_blas, "seq_per_s": $(sps $t_blas), "peak_rss_kb": $rss_blas},
 "max_abs_diff_vs_torch": $err}
JSON
echo "wrote $OUT/embed.json"
