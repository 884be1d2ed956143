"""st_bert_reload.py MODEL_DIR IDS.json EMB.npy [TOL] - loads a sentence-transformers model
directory the way sentence-transformers + transformers would, with its own small torch.nn
BERT (module names = Hugging Face BertModel's, so load_state_dict(strict=True) fails on any
missing, extra or misshapen tensor), and compares its embeddings with EMB.npy
(`embtune embed` on the same directory). Nothing is shared with embtune or with the other
reference scripts.

  modules.json    must be Transformer [, Pooling [, Normalize]] in this order
  1_Pooling/config.json   cls / mean / max pooling
  sentence_bert_config.json   max_seq_length: longer inputs are cut (keeping [SEP])
  config.json     hidden sizes, activation, layer_norm_eps, vocab, positions
IDS.json: token ids (special tokens included) from the Hugging Face tokenizer of
MODEL_DIR/tokenizer.json. Exit 1 if max abs difference > TOL (default 1e-5)."""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
from torch import nn


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] in ("F32", "F16", "BF16"), v["dtype"]
        a, b = v["data_offsets"]
        buf = raw[8 + n + a:8 + n + b]
        if v["dtype"] == "F32":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<f4").copy())
        elif v["dtype"] == "F16":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<f2").astype(np.float32))
        else:
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            t = torch.from_numpy(u.view(np.float32).copy())
        out[k] = t.reshape(v["shape"])
    return out


class Embeddings(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
        s.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
        s.token_type_embeddings = nn.Embedding(c.get("type_vocab_size", 2), c["hidden_size"])
        s.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c.get("layer_norm_eps", 1e-12))

    def forward(s, ids, pos):
        return s.LayerNorm(s.word_embeddings(ids) + s.position_embeddings(pos)
                           + s.token_type_embeddings(torch.zeros_like(ids)))


class SelfAttention(nn.Module):
    def __init__(s, c):
        super().__init__()
        C = c["hidden_size"]
        s.h = c["num_attention_heads"]
        s.query, s.key, s.value = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)

    def forward(s, x, mask):
        B, T, C = x.shape
        d = C // s.h
        sp = lambda t: t.view(B, T, s.h, d).transpose(1, 2)  # noqa: E731
        q, k, v = sp(s.query(x)), sp(s.key(x)), sp(s.value(x))
        sc = q @ k.transpose(-1, -2) / math.sqrt(d)
        sc = sc.masked_fill(~mask[:, None, None, :].bool(), float("-inf"))
        return (sc.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)


class DenseLN(nn.Module):  # BertSelfOutput / BertOutput
    def __init__(s, i, o, eps):
        super().__init__()
        s.dense, s.LayerNorm = nn.Linear(i, o), nn.LayerNorm(o, eps=eps)

    def forward(s, h, res):
        return s.LayerNorm(s.dense(h) + res)


class Layer(nn.Module):
    def __init__(s, c):
        super().__init__()
        C, Fi, eps = c["hidden_size"], c["intermediate_size"], c.get("layer_norm_eps", 1e-12)
        s.attention = nn.Module()
        s.attention.self = SelfAttention(c)
        s.attention.output = DenseLN(C, C, eps)
        s.intermediate = nn.Module()
        s.intermediate.dense = nn.Linear(C, Fi)
        s.output = DenseLN(Fi, C, eps)
        act = c.get("hidden_act", "gelu")
        s.act = {"gelu": nn.GELU(), "gelu_new": nn.GELU(approximate="tanh"),
                 "gelu_pytorch_tanh": nn.GELU(approximate="tanh"), "relu": nn.ReLU()}[act]

    def forward(s, x, mask):
        x = s.attention.output(s.attention.self(x, mask), x)
        return s.output(s.act(s.intermediate.dense(x)), x)


class Bert(nn.Module):
    def __init__(s, c, pooler):
        super().__init__()
        s.c = c
        s.embeddings = Embeddings(c)
        s.encoder = nn.Module()
        s.encoder.layer = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        if pooler:
            s.pooler = nn.Module()
            s.pooler.dense = nn.Linear(c["hidden_size"], c["hidden_size"])

    def forward(s, ids, mask):
        if s.c.get("model_type") in ("xlm-roberta", "roberta"):
            pad = s.c.get("pad_token_id", 1)
            pos = torch.cumsum(mask, 1) * mask + pad
        else:
            pos = torch.arange(ids.shape[1]).expand_as(ids)
        x = s.embeddings(ids, pos)
        for layer in s.encoder.layer:
            x = layer(x, mask)
        return x


def main():
    d, ids_path, emb_path = sys.argv[1:4]
    tol = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-5
    cfg = json.load(open(os.path.join(d, "config.json")))
    mods = [m["type"].split(".")[-1] for m in json.load(open(os.path.join(d, "modules.json")))]
    assert mods[:2] == ["Transformer", "Pooling"] and mods[2:] in ([], ["Normalize"]), mods
    pool = json.load(open(os.path.join(d, "1_Pooling", "config.json")))
    assert pool["word_embedding_dimension"] == cfg["hidden_size"], pool
    max_len = json.load(open(os.path.join(d, "sentence_bert_config.json")))["max_seq_length"]
    sd = read_safetensors(os.path.join(d, "model.safetensors"))
    prefix = next((p for p in ("bert.", "roberta.", "") if p + "embeddings.word_embeddings.weight" in sd), "")
    sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    sd.pop("embeddings.position_ids", None)
    model = Bert(cfg, "pooler.dense.weight" in sd).double().eval()
    model.load_state_dict({k: v.double() for k, v in sd.items()}, strict=True)
    seqs = json.load(open(ids_path))
    longest = max(len(s) for s in seqs)
    seqs = [s if len(s) <= max_len else s[:max_len - 1] + s[-1:] for s in seqs]
    T = max(len(s) for s in seqs)
    pad = cfg.get("pad_token_id", 0)
    ids = torch.full((len(seqs), T), pad, dtype=torch.int64)
    mask = torch.zeros((len(seqs), T), dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    with torch.no_grad():
        h = model(ids, mask)
    m = mask.unsqueeze(-1).double()
    if pool["pooling_mode_cls_token"]:
        e = h[:, 0]
    elif pool["pooling_mode_mean_tokens"]:
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    elif pool["pooling_mode_max_tokens"]:
        e = h.masked_fill(m == 0, -1e9).max(1)[0]
    else:
        raise SystemExit(f"pooling not handled: {pool}")
    if "Normalize" in mods:
        e = torch.nn.functional.normalize(e, dim=1)
    got = torch.from_numpy(np.load(emb_path)).double()
    assert got.shape == e.shape, (got.shape, e.shape)
    diff = float((got - e).abs().max())
    print(f"st_bert_reload: {len(seqs)} texts (longest {longest} tokens, max_seq_length {max_len}), "
          f"{len(sd)} tensors loaded strictly, {'+'.join(mods)}, max abs diff {diff:.2e} (tol {tol})")
    sys.exit(0 if diff <= tol else 1)


if __name__ == "__main__":
    main()
