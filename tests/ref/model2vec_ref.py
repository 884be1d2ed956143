#!/usr/bin/python3
"""model2vec_ref.py MODEL_DIR IDS_JSON OUT_NPY [MAX_LEN] - model2vec's StaticModel.encode
formula in numpy from the model's safetensors and HF token ids (no special
tokens): drop the UNK id, keep the first MAX_LEN (512) ids, mean of
weights[id] * embeddings[mapping[id]] in float64, zero vector when nothing is
left, then L2-normalized (norm + 1e-32) when config.json says normalize."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_models import st_read  # noqa: E402

d, ids_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
max_len = int(sys.argv[4]) if len(sys.argv) > 4 else 512
W = {k: v.numpy() for k, v in st_read(os.path.join(d, "model.safetensors")).items()}
emb = W["embeddings"].astype(np.float64)
mapping = W.get("mapping")
weights = W.get("weights")
tok = json.load(open(os.path.join(d, "tokenizer.json")))
unk = tok["model"].get("unk_id")
normalize = json.load(open(os.path.join(d, "config.json"))).get("normalize", False)
rows = []
for ids in json.load(open(ids_path)):
    ids = [i for i in ids if i != unk][:max_len]
    if not ids:
        rows.append(np.zeros(emb.shape[1]))
        continue
    ids = np.array(ids)
    e = emb[mapping[ids] if mapping is not None else ids]
    if weights is not None:
        e = e * weights[ids][:, None]
    rows.append(e.mean(axis=0))
v = np.stack(rows)
if normalize:
    v = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-32)
np.save(out, v.astype(np.float32))
