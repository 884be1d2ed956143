#!/usr/bin/env bash
# bench/eval.sh - `embtune eval` speed with cached embeddings, against its peers
# measured in the same run (called by bench/run.sh; runs alone too).
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
