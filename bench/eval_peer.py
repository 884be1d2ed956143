"""eval_peer.py - the peers of `embtune eval`, timed on the same data as bench_eval.

sentence-transformers and rank_bm25 are not installable here (no PyPI), so this
re-implements their evaluation algorithms with what they run on: PyTorch and
NumPy (Debian's /usr/bin/python3).

- sentence-transformers InformationRetrievalEvaluator with precomputed
  embeddings: corpus in chunks of 50,000, cosine similarity (normalize + mm),
  torch.topk(max_k = 100, sorted=False), a heapq of (score, id) per query,
  then the per-query Python metric loops (accuracy/precision/recall@k, MRR@10,
  NDCG@10, MAP@100).
- rank_bm25 BM25Okapi: whitespace tokens, a dict of term counts per document,
  get_scores builds an array of per-document counts with a Python loop per
  query term; top 100 by argsort; then the same metric loops.

usage: /usr/bin/python3 eval_peer.py DIR ND NQ DIM THREADS -> one JSON line
"""
import heapq
import json
import math
import sys
import time

import numpy as np
import torch

d, nd, nq, dim, threads = sys.argv[1], *map(int, sys.argv[2:6])
torch.set_num_threads(threads)
docs = torch.from_numpy(np.fromfile(d + "/eval_docs.f32", dtype=np.float32).reshape(nd, dim))
queries = torch.from_numpy(np.fromfile(d + "/eval_queries.f32", dtype=np.float32).reshape(nq, dim))
rel = np.fromfile(d + "/eval_rel.u32", dtype=np.uint32)
relevant = {i: {int(rel[i])} for i in range(nq)}
acc_k, pr_k, mrr_k, ndcg_k, map_k = [1, 3, 5, 10], [1, 3, 5, 10], [10], [10], [100]
max_k = 100


def dcg(rels, k):
    return sum(rels[i] / math.log2(i + 2) for i in range(min(len(rels), k)))


def metrics(results):
    hits = {k: 0 for k in acc_k}
    prec = {k: [] for k in pr_k}
    rec = {k: [] for k in pr_k}
    mrr = {k: 0 for k in mrr_k}
    ndcg = {k: [] for k in ndcg_k}
    ap = {k: [] for k in map_k}
    for qi, res in enumerate(results):
        top = sorted(res, key=lambda x: x["score"], reverse=True)
        rd = relevant[qi]
        for k in acc_k:
            for h in top[:k]:
                if h["corpus_id"] in rd:
                    hits[k] += 1
                    break
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
            c, s = 0, 0
            for r, h in enumerate(top[:k]):
                if h["corpus_id"] in rd:
                    c += 1
                    s += c / (r + 1)
            ap[k].append(s / min(k, len(rd)))
    n = len(results)
    return {"n": n, "acc1": hits[1] / n, "acc5": hits[5] / n, "mrr10": mrr[10] / n,
            "ndcg10": float(np.mean(ndcg[10])), "map100": float(np.mean(ap[100]))}


def st_eval():
    results = [[] for _ in range(nq)]
    q = torch.nn.functional.normalize(queries, p=2, dim=1)
    for start in range(0, nd, 50000):
        sub = torch.nn.functional.normalize(docs[start:start + 50000], p=2, dim=1)
        scores = torch.mm(q, sub.transpose(0, 1))
        vals, idx = torch.topk(scores, min(max_k, len(scores[0])), dim=1, largest=True, sorted=False)
        vals, idx = vals.tolist(), idx.tolist()
        for qi in range(nq):
            for j, s in zip(idx[qi], vals[qi]):
                if len(results[qi]) < max_k:
                    heapq.heappush(results[qi], (s, start + j))
                else:
                    heapq.heappushpop(results[qi], (s, start + j))
    results = [[{"corpus_id": c, "score": s} for s, c in r] for r in results]
    return metrics(results)


class BM25Okapi:
    def __init__(self, corpus, k1=1.5, b=0.75, epsilon=0.25):
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self.doc_freqs, self.doc_len, nd_ = [], [], {}
        for doc in corpus:
            self.doc_len.append(len(doc))
            f = {}
            for w in doc:
                f[w] = f.get(w, 0) + 1
            self.doc_freqs.append(f)
            for w in f:
                nd_[w] = nd_.get(w, 0) + 1
        self.corpus_size = len(corpus)
        self.avgdl = sum(self.doc_len) / self.corpus_size
        self.doc_len = np.array(self.doc_len)
        self.idf, neg, s = {}, [], 0
        for w, df in nd_.items():
            v = math.log(self.corpus_size - df + 0.5) - math.log(df + 0.5)
            self.idf[w] = v
            s += v
            if v < 0:
                neg.append(w)
        eps = self.epsilon * s / len(self.idf)
        for w in neg:
            self.idf[w] = eps

    def get_scores(self, query):
        score = np.zeros(self.corpus_size)
        for q in query:
            qf = np.array([(doc.get(q) or 0) for doc in self.doc_freqs])
            score += (self.idf.get(q) or 0) * (qf * (self.k1 + 1) /
                                              (qf + self.k1 * (1 - self.b + self.b * self.doc_len / self.avgdl)))
        return score


def bm25_eval():
    corpus = [l.split(" ") for l in open(d + "/eval_docs.txt").read().splitlines()]
    # rank_bm25 scores a query with a Python loop over every document: ~0.2 s per
    # query here, so the peer is timed on the first 100 queries only
    qs = [l.split(" ") for l in open(d + "/eval_queries.txt").read().splitlines()][:100]
    t0 = time.perf_counter()
    ix = BM25Okapi(corpus, k1=1.2, b=0.75)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = []
    for q in qs:
        s = ix.get_scores(q)
        top = np.argsort(s)[::-1][:max_k]
        results.append([{"corpus_id": int(i), "score": float(s[i])} for i in top])
    m = metrics(results)
    return build, time.perf_counter() - t0, m


t0 = time.perf_counter()
m = st_eval()
t_st = time.perf_counter() - t0
b_build, b_search, bm = bm25_eval()
print(json.dumps({"st_s": t_st, "st_qps": nq / t_st, "acc1": m["acc1"], "acc5": m["acc5"], "mrr10": m["mrr10"],
                  "ndcg10": m["ndcg10"], "map100": m["map100"], "bm25_build_s": b_build, "bm25_search_s": b_search,
                  "bm25_qps": min(nq, 100) / b_search, "bm25_acc5": bm["acc5"], "bm25_mrr10": bm["mrr10"],
                  "torch_threads": torch.get_num_threads()}))
