#!/usr/bin/python3
"""torch_bench.py MODEL_DIR IDS_JSON OUT_NPY BATCH - PyTorch fp32 peer for
`make bench`: the same BERT forward as tests/ref/make_models.py, batched
(torch.nn.functional ops, fp32, no_grad), CLS pooling + normalize. Prints
"seconds N" for the forward of all sequences (after one warm-up batch)."""
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../tests/ref"))
from make_models import load_weights  # noqa: E402

d, ids_path, out, bs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(1)
cfg = json.load(open(os.path.join(d, "config.json")))
W = {k: v.float() for k, v in load_weights(d).items()}
C, NH, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
HS, eps = C // NH, cfg["layer_norm_eps"]
F = torch.nn.functional
ids_all = json.load(open(ids_path))


def forward(ids):
    B, T = ids.shape
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:T] \
        + W["embeddings.token_type_embeddings.weight"][0]
    x = F.layer_norm(x, (C,), W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    for l in range(L):
        p = "encoder.layer.%d." % l
        lin = lambda v, n: F.linear(v, W[p + n + ".weight"], W[p + n + ".bias"])
        q = lin(x, "attention.self.query").view(B, T, NH, HS).transpose(1, 2)
        k = lin(x, "attention.self.key").view(B, T, NH, HS).transpose(1, 2)
        v = lin(x, "attention.self.value").view(B, T, NH, HS).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HS), dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, T, C)
        x = F.layer_norm(x + lin(a, "attention.output.dense"), (C,), W[p + "attention.output.LayerNorm.weight"],
                         W[p + "attention.output.LayerNorm.bias"], eps)
        h = F.gelu(lin(x, "intermediate.dense"))
        x = F.layer_norm(x + lin(h, "output.dense"), (C,), W[p + "output.LayerNorm.weight"],
                         W[p + "output.LayerNorm.bias"], eps)
    return F.normalize(x[:, 0], p=2, dim=-1)


with torch.no_grad():
    batches = [torch.tensor(ids_all[i:i + bs]) for i in range(0, len(ids_all), bs)]
    forward(batches[0])  # warm-up
    t0 = time.perf_counter()
    outs = [forward(b) for b in batches]
    dt = time.perf_counter() - t0
np.save(out, torch.cat(outs).numpy())
print("seconds %.4f" % dt)
