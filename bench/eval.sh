#!/usr/bin/env bash
# bench/eval.sh - `embtune eval` speed with cached embeddings, against its peers
# measured in the same run (called by bench/run.sh; runs alone too); then `embtune eval` end to
# end with every embedding read from its on-disk cache.
#   ND x NQ at DIM (default 10000 x 1000 at 384): exact top-100 + metrics, and BM25.
# Peers: sentence-transformers' InformationRetrievalEvaluator search + metrics and
# rank_bm25's BM25Okapi, re-implemented on PyTorch/NumPy (bench/eval_peer.py; the
# packages themselves are not installable here). Writes bench/out/eval.json.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ND=${ND:-10000} NQ=${NQ:-1000} DIM=${DIM:-384}
THREADS=${ET_THREADS:-$(nproc)}
TORCH_PY=${TORCH_PY:-/usr/bin/python3}
make -s "$BUILD/bench/bench_eval" >/dev/null
OUT=$BUILD/bench-out/eval
mkdir -p "$OUT" bench/out
ours=$("$BUILD/bench/bench_eval" "$OUT" "$ND" "$NQ" "$DIM")
peer=$("$TORCH_PY" bench/eval_peer.py "$OUT" "$ND" "$NQ" "$DIM" "$THREADS")
"$TORCH_PY" - "$ours" "$peer" <<'PY'
import json, sys
o, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
same = all(abs(o[k] - p[k]) < 1e-6 for k in ("acc1", "acc5", "mrr10", "ndcg10", "map100"))
print(f"eval, cached embeddings: {o['nd']} passages x {o['nq']} queries, dim {o['dim']}, "
      f"{o['threads']} threads (peer: torch {p['torch_threads']} threads)")
print(f"  {'':42s} {'queries/s':>10s} {'ratio':>8s}")
print(f"  {'embtune et_topk + metrics':42s} {o['topk_qps']:10.0f} {o['topk_qps'] / p['st_qps']:7.1f}x")
print(f"  {'embtune et_topk_ref (plain reference)':42s} {o['topk_ref_qps']:10.0f} {o['topk_ref_qps'] / p['st_qps']:7.2f}x")
print(f"  {'peer: sentence-transformers IR evaluator':42s} {p['st_qps']:10.0f} {1:7.1f}x")
print(f"  {'embtune BM25 search + metrics':42s} {o['bm25_qps']:10.0f} {o['bm25_qps'] / p['bm25_qps']:7.1f}x"
      f"   (index {o['bm25_build_s']:.2f} s)")
print(f"  {'peer: rank_bm25 BM25Okapi':42s} {p['bm25_qps']:10.0f} {1:7.1f}x   (index {p['bm25_build_s']:.2f} s)")
print(f"  metrics equal to the peer's on the same rankings: {'yes' if same else 'NO'} "
      f"(acc@1 {o['acc1']:.4f}/{p['acc1']:.4f}, MRR@10 {o['mrr10']:.4f}/{p['mrr10']:.4f}, "
      f"NDCG@10 {o['ndcg10']:.4f}/{p['ndcg10']:.4f}, MAP@100 {o['map100']:.4f}/{p['map100']:.4f})")
print(f"  BM25 acc@5 {o['bm25_acc5']:.4f} (rank_bm25, first 100 queries: {p['bm25_acc5']:.4f}; idf and stop words differ)")
print(f"  end to end the peer evaluates ~35 queries/s with local bge-small (embedding included, PEERS.md)")
json.dump({"ours": o, "peer": p, "metrics_match": same}, open("bench/out/eval.json", "w"), indent=1)
PY

# ---- end to end: `embtune eval` with the embeddings in the on-disk cache -------------------------
# ND passages x NQ queries of text (random words of a 5000-word vocabulary; each query is 6 words
# of its passage), the real model2vec fixture (dim 64). The first run embeds and fills the cache;
# the second reads every embedding from it: the whole command (load the dataset, read the cache,
# exact top-100 over the corpus, metrics, report) timed from outside, as a user re-evaluating sees.
SHARED=${SHARED:-$(cd .. && pwd)/shared}
EMBTUNE=${EMBTUNE:-$BUILD/embtune}
FIX=$SHARED/fixtures/model2vec-bge-base-q128
"$TORCH_PY" - "$OUT/text.json" "$ND" "$NQ" <<'PY'
import json, random, sys
rnd = random.Random(5)
nd, nq = int(sys.argv[2]), int(sys.argv[3])
syl = ["ka", "ri", "to", "mu", "sen", "lo", "va", "pe", "dor", "qui", "na", "bel", "ti", "gra", "fo"]
vocab = sorted({"".join(rnd.choice(syl) for _ in range(rnd.randint(2, 4))) for _ in range(6000)})[:5000]
corpus = {"d%05d" % i: " ".join(rnd.choice(vocab) for _ in range(rnd.randint(40, 80))) for i in range(nd)}
ids = sorted(corpus)
queries, rel = {}, {}
for j in range(nq):
    d = rnd.choice(ids)
    queries["q%04d" % j] = " ".join(rnd.sample(corpus[d].split(), 6))
    rel["q%04d" % j] = [d]
json.dump({"queries": queries, "corpus": corpus, "relevant_docs": rel, "mode": "text"}, open(sys.argv[1], "w"))
PY
rm -f "$OUT/cache.sqlite"
e2e() { # label -> seconds on stdout
    local s0 s1
    s0=$(date +%s.%N)
    "$EMBTUNE" eval -d "$OUT/text.json" -m "$FIX" --cache "$OUT/cache.sqlite" -t "$THREADS" -o "$OUT/report-$1" \
        >"$OUT/$1.out" 2>"$OUT/$1.err"
    s1=$(date +%s.%N)
    echo "$s1 - $s0" | bc -l
}
t_cold=$(e2e cold)
t_warm=$(e2e warm)
cached=$(grep -oE '\(([0-9]+) from the cache\)' "$OUT/warm.err" | grep -oE '[0-9]+')
"$TORCH_PY" - "$t_cold" "$t_warm" "$NQ" "$ND" "${cached:-0}" "$OUT/report-warm/metrics.json" <<'PY'
import json, sys
cold, warm, nq, nd, cached = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
m = json.load(open(sys.argv[6]))["runs"][0]
print(f"embtune eval end to end, {nd} passages x {nq} queries, model2vec fixture (dim 64):")
print(f"  {'first run (embeds, fills the cache)':42s} {nq / cold:10.0f} queries/s ({cold:.2f} s)")
print(f"  {'second run (all embeddings from the cache)':42s} {nq / warm:10.0f} queries/s ({warm:.2f} s; "
      f"{cached} of {nq + nd} texts from the cache)   peer: ~35 queries/s")
print(f"  (inside the command: embed/cache {m['embed_seconds']:.2f} s, search + metrics {m['search_seconds']:.2f} s)")
if cached != nq + nd:
    sys.exit("the second run did not read every embedding from the cache")
d = json.load(open("bench/out/eval.json"))
d["e2e"] = {"nd": nd, "nq": nq, "model": "model2vec-bge-base-q128", "cold_s": cold, "warm_s": warm,
            "warm_qps": nq / warm, "cold_qps": nq / cold, "cached_texts": cached}
json.dump(d, open("bench/out/eval.json", "w"), indent=1)
PY
