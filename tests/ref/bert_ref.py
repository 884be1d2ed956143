"""bert_ref.py - an independent BERT / XLM-RoBERTa encoder in plain PyTorch.

Used by the gradient tests (grad_ref.py) and the training benchmark as the
reference embtune's C forward and backward passes are compared against. It
follows Hugging Face transformers' modeling_bert.py / modeling_xlm_roberta.py
semantics (read from their documentation, written here from scratch):

  x   = LN(word[ids] + pos[pos_ids] + type[type_ids])        (dropout after)
  per layer:
    q,k,v = x Wq^T + bq, ...                                 [B,H,T,d]
    p     = softmax(q k^T / sqrt(d) + mask_add)              (dropout on p)
    a     = (p v) merged heads; x = LN(x + drop(a Wo^T + bo))
    x     = LN(x + drop(gelu(x W1^T + b1) W2^T + b2))
  mask_add = (1 - mask) * finfo(float32).min
  BERT:  pos_ids = 0..T-1
  XLM-R: pos_ids = cumsum(mask) * mask + padding_idx (padding_idx = 1)

Pooling (sentence-transformers): cls = x[:,0]; mean = sum(x*mask)/max(sum(mask),1e-9);
Normalize: F.normalize(p=2, eps=1e-12).

Safetensors are read and written with the standard library only (8-byte
little-endian header length, JSON header, raw little-endian data).
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

_DT = {"F32": (np.float32, torch.float32), "I32": (np.int32, torch.int32),
       "I64": (np.int64, torch.int64), "F64": (np.float64, torch.float64),
       "U8": (np.uint8, torch.uint8)}
_DT_NAME = {torch.float32: "F32", torch.int32: "I32", torch.int64: "I64",
            torch.float64: "F64", torch.uint8: "U8"}


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} as a safetensors file (names sorted, offsets packed)."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        b = t.numpy().astype(_DT[_DT_NAME[t.dtype]][0]).tobytes()
        header[name] = {"dtype": _DT_NAME[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        npdt, _ = _DT[info["dtype"]]
        arr = np.frombuffer(data[base + a:base + b], dtype=npdt).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


# ---- counter-based dropout masks (same function as src/kernels_bwd.c) --------

_M64 = (1 << 64) - 1


def _mix64_int(z):
    z &= _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _lowbias32_np(x):
    x = x.astype(np.uint32)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint32(16)
        x *= np.uint32(0x7FEB352D)
        x ^= x >> np.uint32(15)
        x *= np.uint32(0x846CA68B)
        x ^= x >> np.uint32(16)
    return x


def dropout_key(seed, stream):
    return _mix64_int(seed ^ _mix64_int(stream))


def dropout_keep(key, p, rows, ncols):
    """Keep mask [len(rows), ncols] (bool) of one dropout site, as
    src/kernels_bwd.c: R = mix64(key + row * GOLD64); x = (col * GOLD32 + hi32(R))
    ^ lo32(R); keep iff (lowbias32(x) >> 8) >= round(p * 2^24)."""
    thr = int(float(np.float32(p)) * (1 << 24) + 0.5)
    out = np.empty((len(rows), ncols), dtype=bool)
    cols = np.arange(ncols, dtype=np.uint64)
    for i, r in enumerate(rows):
        R = _mix64_int(key + int(r) * 0x9E3779B97F4A7C15)
        add, xr = R >> 32, R & 0xFFFFFFFF
        x = ((cols * np.uint64(0x9E3779B9) + np.uint64(add)) & np.uint64(0xFFFFFFFF)) ^ np.uint64(xr)
        out[i] = (_lowbias32_np(x) >> np.uint32(8)) >= thr
    return out


# ---- the model ---------------------------------------------------------------

def param_names(n_layers, prefix=""):
    names = [prefix + "embeddings.word_embeddings.weight",
             prefix + "embeddings.position_embeddings.weight",
             prefix + "embeddings.token_type_embeddings.weight",
             prefix + "embeddings.LayerNorm.weight", prefix + "embeddings.LayerNorm.bias"]
    for i in range(n_layers):
        p = f"{prefix}encoder.layer.{i}."
        for s in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            names += [p + s + ".weight", p + s + ".bias"]
        names += [p + "attention.output.LayerNorm.weight", p + "attention.output.LayerNorm.bias",
                  p + "intermediate.dense.weight", p + "intermediate.dense.bias",
                  p + "output.dense.weight", p + "output.dense.bias",
                  p + "output.LayerNorm.weight", p + "output.LayerNorm.bias"]
    return names


def random_params(cfg, seed=0, std=0.02, prefix=""):
    """Random weights in HF layout ([out, in] for dense weights). LayerNorm
    weights around 1 and biases non-zero so their gradients are exercised."""
    g = torch.Generator().manual_seed(seed)
    C, F_, V, P, TV = (cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"],
                       cfg["max_position_embeddings"], cfg["type_vocab_size"])

    def rn(*shape, s=std):
        return torch.randn(*shape, generator=g) * s

    p = {}
    e = prefix + "embeddings."
    p[e + "word_embeddings.weight"] = rn(V, C, s=0.5)
    p[e + "position_embeddings.weight"] = rn(P, C, s=0.5)
    p[e + "token_type_embeddings.weight"] = rn(TV, C, s=0.5)
    p[e + "LayerNorm.weight"] = 1 + rn(C, s=0.1)
    p[e + "LayerNorm.bias"] = rn(C, s=0.1)
    for i in range(cfg["num_hidden_layers"]):
        L = f"{prefix}encoder.layer.{i}."
        for s in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            p[L + s + ".weight"] = rn(C, C, s=std)
            p[L + s + ".bias"] = rn(C, s=0.1)
        p[L + "attention.output.LayerNorm.weight"] = 1 + rn(C, s=0.1)
        p[L + "attention.output.LayerNorm.bias"] = rn(C, s=0.1)
        p[L + "intermediate.dense.weight"] = rn(F_, C, s=std)
        p[L + "intermediate.dense.bias"] = rn(F_, s=0.1)
        p[L + "output.dense.weight"] = rn(C, F_, s=std)
        p[L + "output.dense.bias"] = rn(C, s=0.1)
        p[L + "output.LayerNorm.weight"] = 1 + rn(C, s=0.1)
        p[L + "output.LayerNorm.bias"] = rn(C, s=0.1)
    return p


def gelu(x, act):
    if act in ("gelu", "gelu_python"):
        return F.gelu(x)
    if act in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if act == "relu":
        return F.relu(x)
    raise ValueError("activation " + act)


def encode(params, cfg, ids, mask, type_ids=None, arch="bert", prefix="", drop=None,
           padding_idx=None):
    """ids, mask [B,T] (int64, mask 1/0); returns hidden [B,T,C].
    drop: None (no dropout) or a function drop(x, site, layer) -> dropped x
    (used to apply embtune's masks). padding_idx: as nn.Embedding's (the
    row gets no gradient): HF sets it on the word embeddings (both
    architectures) and on XLM-R's position embeddings."""
    B, T = ids.shape
    C = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    d = C // H
    eps = cfg.get("layer_norm_eps", 1e-12)
    act = cfg.get("hidden_act", "gelu")
    P = lambda n: params[prefix + n]
    if type_ids is None:
        type_ids = torch.zeros_like(ids)
    if arch == "bert":
        pos = torch.arange(T).unsqueeze(0).expand(B, T)
    else:
        pad = cfg.get("pad_token_id", 1)
        pos = torch.cumsum(mask, 1) * mask + pad
    x = (F.embedding(ids, P("embeddings.word_embeddings.weight"), padding_idx=padding_idx)
         + F.embedding(pos, P("embeddings.position_embeddings.weight"),
                       padding_idx=None if arch == "bert" else padding_idx)
         + F.embedding(type_ids, P("embeddings.token_type_embeddings.weight")))
    x = F.layer_norm(x, (C,), P("embeddings.LayerNorm.weight"), P("embeddings.LayerNorm.bias"), eps)
    if drop:
        x = drop(x, "emb", -1)
    madd = (1.0 - mask.to(torch.float32)) * torch.finfo(torch.float32).min
    madd = madd[:, None, None, :]
    for i in range(cfg["num_hidden_layers"]):
        L = f"encoder.layer.{i}."
        lin = lambda t, n: F.linear(t, P(L + n + ".weight"), P(L + n + ".bias"))
        q = lin(x, "attention.self.query").view(B, T, H, d).transpose(1, 2)
        k = lin(x, "attention.self.key").view(B, T, H, d).transpose(1, 2)
        v = lin(x, "attention.self.value").view(B, T, H, d).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + madd
        pr = torch.softmax(s, dim=-1)
        if drop:
            pr = drop(pr, "attn", i)
        a = torch.matmul(pr, v).transpose(1, 2).reshape(B, T, C)
        a = lin(a, "attention.output.dense")
        if drop:
            a = drop(a, "attn_out", i)
        x = F.layer_norm(a + x, (C,), P(L + "attention.output.LayerNorm.weight"),
                         P(L + "attention.output.LayerNorm.bias"), eps)
        h = gelu(lin(x, "intermediate.dense"), act)
        h = lin(h, "output.dense")
        if drop:
            h = drop(h, "ffn_out", i)
        x = F.layer_norm(h + x, (C,), P(L + "output.LayerNorm.weight"),
                         P(L + "output.LayerNorm.bias"), eps)
    return x


def pool(x, mask, mode="cls", normalize=True):
    if mode == "cls":
        e = x[:, 0]
    elif mode == "mean":
        m = mask.to(x.dtype).unsqueeze(-1)
        e = (x * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
    elif mode == "max":  # sentence-transformers: padded positions set to -1e9
        m = mask.unsqueeze(-1).expand(x.shape)
        e = torch.max(x.masked_fill(m == 0, -1e9), 1)[0]
    else:
        raise ValueError(mode)
    return F.normalize(e, p=2, dim=1, eps=1e-12) if normalize else e


def pad_batch(seqs, pad_id):
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(seqs), T), dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.int64)
        mask[i, :len(s)] = 1
    return ids, mask
