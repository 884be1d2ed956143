#!/usr/bin/python3
"""infer_torch.py MODEL_DIR IDS_TXT OUT_F32 BATCH N BUDGET_S TORCH_THREADS fp32|bf16

The PyTorch peer of `make bench` inference: the Hugging Face BertModel forward
(tests/ref/bert_ref.py, plain torch ops on the weights of MODEL_DIR's
model.safetensors), CLS pooling + L2 normalization, torch.inference_mode.
bf16 = torch.autocast("cpu", dtype=torch.bfloat16) around the forward.
IDS_TXT: one sequence of token ids per line (all the same length here, mask
all ones). One warm-up batch of 2 sequences, then batches of BATCH until N
sequences are done or BUDGET_S seconds have passed (at least one batch).
Writes the float32 embeddings of the sequences done to OUT_F32 (raw [n, dim])
and prints one JSON line (sequences, seconds, seq_per_s, peak_rss_kb)."""
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import bert_ref  # noqa: E402

mdir, ids_path, out_path = sys.argv[1:4]
bs, n_want, budget, nth, prec = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
torch.set_num_threads(nth)
cfg = json.load(open(os.path.join(mdir, "config.json")))
params = {k: v.float() for k, v in bert_ref.load_safetensors(os.path.join(mdir, "model.safetensors")).items()}
seqs = []
with open(ids_path) as f:
    for line in f:
        if len(seqs) == n_want:
            break
        seqs.append([int(t) for t in line.split()])


def forward(rows):
    ids = torch.tensor(rows, dtype=torch.long)
    mask = torch.ones_like(ids)
    if prec == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = bert_ref.encode(params, cfg, ids, mask)
        return bert_ref.pool(h.float(), mask, "cls")
    return bert_ref.pool(bert_ref.encode(params, cfg, ids, mask), mask, "cls")


with torch.inference_mode():
    forward(seqs[:2])  # warm-up
    outs, done = [], 0
    t0 = time.perf_counter()
    while done < len(seqs):
        outs.append(forward(seqs[done:done + bs]).float())
        done += len(outs[-1])
        if time.perf_counter() - t0 > budget:
            break
    dt = time.perf_counter() - t0
torch.cat(outs).numpy().astype("float32").tofile(out_path)
print(json.dumps({"impl": "pytorch-" + prec, "torch": torch.__version__, "torch_threads": nth,
                  "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "sequences": done, "seconds": dt,
                  "seq_per_s": done / dt, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
