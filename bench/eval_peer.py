"""eval_peer.py - the peers of `embtune eval`, timed on the same data as bench_eval.

sentence-transformers and rank_bm25 are not installable here (no PyPI), so this
re-implements their evaluation algorithms with what they run on: PyTorch and
NumPy (Debian's /usr/bin/python3).

- sentence-transformers InformationRetrievalEvaluator with precomputed
  embeddings: corpus in chunks of 50,000, cosine similarity (normalize + mm),
  torch.topk(max_k = 100, sorted=False), a heapq of (score, id) per query,
  then the per-query Python metric loops (tests/ref/st_ir_eval.py).
- rank_bm25 BM25Okapi: whitespace tokens, a dict of term counts per document,
  get_scores builds an array of per-document counts with a Python loop per
  query term; top 100 by argsort; then the same metric loops.

usage: /usr/bin/python3 eval_peer.py DIR ND NQ DIM THREADS -> one JSON line
"""
import heapq
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import st_ir_eval  # the evaluator's metric loops

d, nd, nq, dim, threads = sys.argv[1], *map(int, sys.argv[2:6])
torch.set_num_threads(threads)
docs = torch.from_numpy(np.fromfile(d + "/eval_docs.f32", dtype=np.float32).reshape(nd, dim))
queries = torch.from_numpy(np.fromfile(d + "/eval_queries.f32", dtype=np.float32).reshape(nq, dim))
rel = np.fromfile(d + "/eval_rel.u32", dtype=np.uint32)
relevant = {i: {int(rel[i])} for i in range(nq)}
max_k = 100


def metrics(results):
    m, _ = st_ir_eval.metrics(results, [relevant[i] for i in range(len(results))])
    return {"acc1": m["accuracy@1"], "acc5": m["accuracy@5"], "mrr10": m["mrr@10"], "ndcg10": m["ndcg@10"],
            "map100": m["map@100"]}


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
