#!/usr/bin/env bash
# bench/finetune.sh - `embtune finetune` speed and memory beside PyTorch, measured in the
# same run (called by bench/run.sh; runs alone too). Writes bench/out/finetune.json.
#   1. static model2vec fixture, MNRL, batch 32: pairs/s and peak RSS vs sentence-
#      transformers' StaticEmbedding training re-implemented on PyTorch (bench/finetune_peer.py)
#   2. adapter on frozen static embeddings: first run (embeds, fills the cache) vs a rerun
#      (cache only), per-epoch cost, vs llama-index's loop that re-embeds every batch
#   3. full fine-tuning of a bge-small-shaped random BERT (12 x 384), batch 16, queries 32
#      tokens, passages 128, MNRL, AdamW: pairs/s and peak RSS vs PyTorch
#      (bench/bert_step_torch.py) with 1 and 2 torch threads
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TORCH_PY=${TORCH_PY:-/usr/bin/python3}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
EMBTUNE=$PWD/$BUILD/embtune
FIX=$SHARED/fixtures/model2vec-bge-base-q128
OUT=$PWD/$BUILD/bench-out/finetune
rm -rf "$OUT"; mkdir -p "$OUT" bench/out
export EMBTUNE_CACHE_DIR=$OUT/cache ET_PROGRESS=0
THREADS=${ET_THREADS:-$(nproc)}
# Debian's OpenBLAS misdetects AVX-512 Intel CPUs: the core type comes from the CPU flags
. bench/cpu.sh

pdftotext "$SHARED/corpus/R-intro.pdf" "$OUT/r-intro.txt"
"$TORCH_PY" tests/ref/make_ft_data.py "$OUT/r-intro.txt" "$OUT/data" 400 >/dev/null
"$TORCH_PY" -c "import json,sys; d=json.load(open(sys.argv[1])); json.dump(list(d['queries'].values())+list(d['corpus'].values()), open(sys.argv[2],'w'))" \
    "$OUT/data/train.json" "$OUT/data/texts.json"
(cd tests/ref && node tok_ids.js "$FIX/tokenizer.json" "$OUT/data/texts.json" "$OUT/data/ids_only.json")
"$TORCH_PY" -c "import json,sys; json.dump({'texts': json.load(open(sys.argv[1])), 'ids': json.load(open(sys.argv[2]))}, open(sys.argv[3],'w'))" \
    "$OUT/data/texts.json" "$OUT/data/ids_only.json" "$OUT/data/ids.json"
pairs=$(grep -c '"q-' "$OUT/data/train.json" || true)

# runs embtune finetune; prints "pairs_per_s seconds peak_rss_mb"
run_ft() {
    local log=$1; shift
    /usr/bin/time -f "%M %e" -o "$log.time" "$EMBTUNE" finetune "$@" >"$log" 2>"$log.err" || { cat "$log.err"; return 1; }
    local pps rss wall
    pps=$(grep -o '[0-9.]* pairs/s' "$log" | head -1 | cut -d' ' -f1)
    read -r rss wall < "$log.time"
    echo "$pps $wall $((rss / 1024))"
}

echo "fine-tuning, $(nproc) cores (ET_THREADS=$THREADS)"
# ---- 1. static ----
read -r s_pps s_wall s_rss < <(run_ft "$OUT/static" -m "$FIX" -t "$OUT/data/train.json" -o "$OUT/static-out" \
    --epochs 5 --batch-size 32 -q)
peer_s=$("$TORCH_PY" bench/finetune_peer.py static "$FIX" "$OUT/data/train.json" "$OUT/data/ids.json" 32 5 "$THREADS")
p_pps=$(echo "$peer_s" | "$TORCH_PY" -c "import json,sys; print(json.load(sys.stdin)['pairs_per_s'])")
p_rss=$(echo "$peer_s" | "$TORCH_PY" -c "import json,sys; print(json.load(sys.stdin)['peak_rss_mb'])")
printf "  static (model2vec 29524 x 64), batch 32, MNRL:   embtune %8.0f pairs/s %6.0f MB | PyTorch %8.0f pairs/s %6.0f MB | %.1fx\n" \
    "$s_pps" "$s_rss" "$p_pps" "$p_rss" "$(echo "$s_pps / $p_pps" | bc -l)"

# ---- 2. adapter with the embedding cache ----
read -r a1_pps a1_wall a1_rss < <(run_ft "$OUT/adapter1" -m "$FIX" -t "$OUT/data/train.json" -o "$OUT/adapter1-out" \
    --mode adapter --epochs 20)
read -r a2_pps a2_wall a2_rss < <(run_ft "$OUT/adapter2" -m "$FIX" -t "$OUT/data/train.json" -o "$OUT/adapter2-out" \
    --mode adapter --epochs 20)
peer_a=$("$TORCH_PY" bench/finetune_peer.py adapter "$FIX" "$OUT/data/train.json" "$OUT/data/ids.json" 32 20 "$THREADS")
pa_pps=$(echo "$peer_a" | "$TORCH_PY" -c "import json,sys; print(json.load(sys.stdin)['pairs_per_s'])")
hits=$(grep -o 'embeddings: [0-9]* texts, [0-9]* from the cache' "$OUT/adapter2.err" || echo "?")
printf "  adapter (linear 64 x 64), 20 epochs: first run %.2f s wall, rerun %.2f s wall (%s);\n" "$a1_wall" "$a2_wall" "$hits"
printf "    training %8.0f pairs/s (%.4f s per epoch) | llama-index loop (re-embeds each batch) %8.0f pairs/s | %.1fx\n" \
    "$a2_pps" "$(echo "$pairs / $a2_pps" | bc -l)" "$pa_pps" "$(echo "$a2_pps / $pa_pps" | bc -l)"

# ---- 3. full fine-tuning of a bge-small-shaped BERT ----
"$TORCH_PY" bench/make_bert_model.py "$OUT/bge-small-random" "$SHARED/fixtures/bge-wordpiece/tokenizer.json"
bert="skipped"
if out=$(run_ft "$OUT/bert" -m "$OUT/bge-small-random" -t "$OUT/bge-small-random/pairs.jsonl" -o "$OUT/bert-out" \
        --batch-size 16 --epochs 1 --no-dropout --max-length 128 -q 2>&1); then
    read -r b_pps b_wall b_rss <<<"$out"
    t1=$("$TORCH_PY" bench/bert_step_torch.py 16 32 128 6 1)
    t2=$("$TORCH_PY" bench/bert_step_torch.py 16 32 128 6 2)
    best=$(printf '%s\n%s\n' "$t1" "$t2" | "$TORCH_PY" -c "
import json,sys; r=[json.loads(l) for l in sys.stdin if l.strip()]; b=max(r, key=lambda x: x['pairs_per_s'])
print(b['pairs_per_s'], b['peak_rss_mb'], b['threads'])")
    read -r t_pps t_rss t_thr <<<"$best"
    printf "  bge-small shape (12 x 384), batch 16, q 32 / p 128 tokens, MNRL + AdamW:\n"
    printf "    embtune %6.2f pairs/s %6.0f MB | PyTorch (best: %s threads) %6.2f pairs/s %6.0f MB | %.2fx speed, %.2fx memory\n" \
        "$b_pps" "$b_rss" "$t_thr" "$t_pps" "$t_rss" "$(echo "$b_pps / $t_pps" | bc -l)" "$(echo "$b_rss / $t_rss" | bc -l)"
    read -r c_pps c_wall c_rss < <(run_ft "$OUT/bert-cached" -m "$OUT/bge-small-random" \
        -t "$OUT/bge-small-random/pairs.jsonl" -o "$OUT/bert-cached-out" --batch-size 128 --loss cached-mnrl \
        --mini-batch 16 --epochs 1 --no-dropout --max-length 128 -q)
    printf "    GradCache (cached-mnrl) batch 128 in mini-batches of 16: %6.2f pairs/s %6.0f MB (plain batch 16: %.0f MB)\n" \
        "$c_pps" "$c_rss" "$b_rss"
    bert="{\"pairs_per_s\": $b_pps, \"peak_rss_mb\": $b_rss, \"torch_pairs_per_s\": $t_pps, \"torch_peak_rss_mb\": $t_rss, \"cached128_pairs_per_s\": $c_pps, \"cached128_peak_rss_mb\": $c_rss}"
else
    echo "  bge-small full fine-tuning: not measured ($(echo "$out" | tail -1))"
fi
cat > bench/out/finetune.json <<JSON
{"static": {"pairs_per_s": $s_pps, "peak_rss_mb": $s_rss, "torch_pairs_per_s": $p_pps, "torch_peak_rss_mb": $p_rss},
 "adapter": {"first_run_s": $a1_wall, "rerun_s": $a2_wall, "pairs_per_s": $a2_pps, "llama_index_loop_pairs_per_s": $pa_pps},
 "bert": $( [ "$bert" = skipped ] && echo '"not measured"' || echo "$bert" )}
JSON
