"""st_ir_eval.py - sentence-transformers' InformationRetrievalEvaluator
algorithm (search + metrics), re-implemented with NumPy for reference checks
and the benchmark (the package itself is not installable here: no PyPI).

search(): cosine similarity (rows L2-normalized, matrix product), per corpus
chunk the top max_k by argpartition, a heapq of (score, corpus index) per
query, as the evaluator's torch.topk + heapq loop.
metrics(): the evaluator's compute_metrics loops, unchanged in substance:
accuracy@k, precision@k, recall@k, MRR@k, NDCG@k (binary relevance, IDCG over
min(k, |relevant|) ideal hits), MAP@k (divided by min(k, |relevant|)).
"""
import heapq
import math

import numpy as np


def search(q, d, max_k=100, chunk=50000):
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    results = [[] for _ in range(len(q))]
    for start in range(0, len(d), chunk):
        s = q @ d[start:start + chunk].T
        k = min(max_k, s.shape[1])
        idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
        for qi in range(len(q)):
            for j in idx[qi]:
                item = (float(s[qi, j]), start + int(j))
                if len(results[qi]) < max_k:
                    heapq.heappush(results[qi], item)
                else:
                    heapq.heappushpop(results[qi], item)
    return [[{"corpus_id": c, "score": sc} for sc, c in r] for r in results]


def dcg(rels, k):
    return sum(rels[i] / math.log2(i + 2) for i in range(min(len(rels), k)))


def metrics(results, relevant, acc_k=(1, 3, 5, 10), pr_k=(1, 3, 5, 10), mrr_k=(10,), ndcg_k=(10,), map_k=(100,)):
    """results[i]: list of {"corpus_id", "score"}; relevant[i]: set of corpus ids."""
    hits = {k: 0 for k in acc_k}
    prec = {k: [] for k in pr_k}
    rec = {k: [] for k in pr_k}
    mrr = {k: 0.0 for k in mrr_k}
    ndcg = {k: [] for k in ndcg_k}
    ap = {k: [] for k in map_k}
    first = []
    for qi, res in enumerate(results):
        top = sorted(res, key=lambda x: x["score"], reverse=True)
        rd = relevant[qi]
        first.append(next((r + 1 for r, h in enumerate(top) if h["corpus_id"] in rd), 0))
        for k in acc_k:
            if any(h["corpus_id"] in rd for h in top[:k]):
                hits[k] += 1
        for k in pr_k:
            c = sum(1 for h in top[:k] if h["corpus_id"] in rd)
            prec[k].append(c / k)
            rec[k].append(c / len(rd))
        for k in mrr_k:
            for r, h in enumerate(top[:k]):
                if h["corpus_id"] in rd:
                    mrr[k] += 1.0 / (r + 1)
                    break
        for k in ndcg_k:
            pred = [1 if h["corpus_id"] in rd else 0 for h in top[:k]]
            ndcg[k].append(dcg(pred, k) / dcg([1] * len(rd), k))
        for k in map_k:
            c, s = 0, 0.0
            for r, h in enumerate(top[:k]):
                if h["corpus_id"] in rd:
                    c += 1
                    s += c / (r + 1)
            ap[k].append(s / min(k, len(rd)))
    n = len(results)
    out = {}
    for k in acc_k:
        out[f"accuracy@{k}"] = hits[k] / n
    for k in pr_k:
        out[f"precision@{k}"] = float(np.mean(prec[k]))
        out[f"recall@{k}"] = float(np.mean(rec[k]))
    for k in mrr_k:
        out[f"mrr@{k}"] = mrr[k] / n
    for k in ndcg_k:
        out[f"ndcg@{k}"] = float(np.mean(ndcg[k]))
    for k in map_k:
        out[f"map@{k}"] = float(np.mean(ap[k]))
    return out, first
