"""grad_ref.py - reference gradients of tiny random BERT / XLM-R encoders for
tests/test_bert_grad.c, computed with PyTorch (tests/ref/bert_ref.py).

Usage: grad_ref.py OUT_DIR TOKENIZER_JSON

For each case it writes OUT_DIR/<case>/ : a model directory (config.json,
model.safetensors, tokenizer.json, sentence-transformers modules) and
ref.safetensors with the inputs (packed token ids and lengths of a query
batch and a passage batch, the projection matrices of the projection loss)
and the outputs: embeddings, loss, and the gradient of every parameter, in
float64 ("grad.<name>", stored as F32) and, for context, the max abs error of
PyTorch's own float32 gradient ("err32.<name>", F64). OUT_DIR/cases.json lists the cases.

Loss: "proj" = sum(R_q * emb_q) + sum(R_p * emb_p) (fixed random R), or
"mnrl" = MultipleNegativesRankingLoss (cosine * 20, cross-entropy over the
in-batch passages), as sentence-transformers. Dropout cases apply the masks
of embtune's counter-based RNG (same function in bert_ref.py): the C test
runs the query batch as training draw 0 and the passage batch as draw 1.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_ref  # noqa: E402

SEED = 1234  # dropout seed (opts.seed in the C test)

CASES = [
    # name, arch, pooling, act, dropout (None = off, else (hidden, attention)), loss, prefix
    ("bert_cls_proj", "bert", "cls", "gelu", None, "proj", ""),
    ("bert_mean_mnrl", "bert", "mean", "gelu", None, "mnrl", ""),
    ("bert_cls_mnrl_dropout", "bert", "cls", "gelu", (0.1, 0.2), "mnrl", ""),
    ("xlmr_mean_proj", "xlm-roberta", "mean", "gelu_new", None, "proj", "roberta."),
    ("xlmr_cls_mnrl_dropout", "xlm-roberta", "cls", "gelu", (0.15, 0.1), "mnrl", ""),
    ("bert_max_relu_proj_dropout", "bert", "max", "relu", (0.1, 0.1), "proj", "bert."),
]

Q_LENS = [5, 9, 3, 12]
P_LENS = [17, 6, 24, 11]


def make_drop(lens, H, p_hidden, p_attn, draw):
    """drop(x, site, layer) applying embtune's masks to padded [B,T,C] hidden
    states or [B,H,T,T] attention probabilities."""
    def fn(x, site, layer):
        if site == "emb":
            s, p = 0, p_hidden
        elif site == "attn":
            s, p = 1 + 3 * layer, p_attn
        elif site == "attn_out":
            s, p = 2 + 3 * layer, p_hidden
        else:
            s, p = 3 + 3 * layer, p_hidden
        if p <= 0:
            return x
        key = bert_ref.dropout_key(SEED, (draw << 16) | s)
        m = torch.ones_like(x)
        if site == "attn":
            B, _, T, _ = x.shape
            for b in range(B):
                rows = [(b * H + h) * 65536 + i for h in range(H) for i in range(T)]
                k = bert_ref.dropout_keep(key, p, rows, T).reshape(H, T, T)
                m[b] = torch.from_numpy(k.astype(np.float64)).to(x.dtype)
        else:
            B, T, C = x.shape
            for b in range(B):
                k = bert_ref.dropout_keep(key, p, [b * 65536 + t for t in range(T)], C)
                m[b] = torch.from_numpy(k.astype(np.float64)).to(x.dtype)
        scale = 1.0 / (1.0 - float(np.float32(p)))
        return x * m * scale
    return fn


def write_model_dir(d, cfg, params, pooling, tokenizer):
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    os.makedirs(os.path.join(d, "2_Normalize"), exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    bert_ref.save_safetensors(os.path.join(d, "model.safetensors"), params)
    shutil.copyfile(tokenizer, os.path.join(d, "tokenizer.json"))
    mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    with open(os.path.join(d, "modules.json"), "w") as f:
        json.dump(mods, f, indent=1)
    with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": cfg["hidden_size"],
                   "pooling_mode_cls_token": pooling == "cls",
                   "pooling_mode_mean_tokens": pooling == "mean",
                   "pooling_mode_max_tokens": pooling == "max",
                   "pooling_mode_mean_sqrt_len_tokens": False}, f, indent=1)
    with open(os.path.join(d, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": 48, "do_lower_case": False}, f)


def run_case(out, tokenizer, vocab, name, arch, pooling, act, drop, loss_kind, prefix, seed):
    g = torch.Generator().manual_seed(seed)
    xlmr = arch != "bert"
    pad = 1 if xlmr else 0
    cfg = {"model_type": arch, "architectures": ["XLMRobertaModel" if xlmr else "BertModel"],
           "vocab_size": vocab, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 128, "hidden_act": act,
           "max_position_embeddings": 64 + (pad + 1 if xlmr else 0),
           "type_vocab_size": 1 if xlmr else 2, "layer_norm_eps": 1e-5 if xlmr else 1e-12,
           "hidden_dropout_prob": drop[0] if drop else 0.1,
           "attention_probs_dropout_prob": drop[1] if drop else 0.1,
           "pad_token_id": pad, "position_embedding_type": "absolute"}
    if xlmr:
        cfg.update(bos_token_id=0, eos_token_id=2)
    params = bert_ref.random_params(cfg, seed=seed, prefix=prefix)
    d = os.path.join(out, name)
    write_model_dir(d, cfg, params, pooling, tokenizer)

    cls_id, sep_id = (0, 2) if xlmr else (101, 102)

    def seqs(lens):
        return [[cls_id] + torch.randint(1000, vocab, (n - 2,), generator=g).tolist() + [sep_id]
                if n >= 2 else [cls_id] for n in lens]
    qs, ps = seqs(Q_LENS), seqs(P_LENS)
    C = cfg["hidden_size"]
    Rq = torch.randn(len(qs), C, generator=g)
    Rp = torch.randn(len(ps), C, generator=g)

    res, g64 = {}, {}
    for dt, tag in ((torch.float64, "grad"), (torch.float32, "grad32")):
        P = {k: v.to(dt).clone().requires_grad_(True) for k, v in params.items()}
        embs = []
        for draw, batch in enumerate((qs, ps)):
            ids, mask = bert_ref.pad_batch(batch, pad)
            dfn = None
            if drop:
                dfn = make_drop([len(s) for s in batch], cfg["num_attention_heads"], drop[0], drop[1], draw)
            h = bert_ref.encode(P, cfg, ids, mask, arch="bert" if not xlmr else "xlmr", prefix=prefix,
                                drop=dfn, padding_idx=pad)
            embs.append(bert_ref.pool(h, mask, pooling, normalize=True))
        eq, ep = embs
        if loss_kind == "proj":
            loss = (Rq.to(dt) * eq).sum() + (Rp.to(dt) * ep).sum()
        else:
            scores = F.normalize(eq, dim=1) @ F.normalize(ep, dim=1).T * 20.0
            loss = F.cross_entropy(scores, torch.arange(len(qs)))
        loss.backward()
        for k, v in P.items():
            if tag == "grad":
                res["grad." + k] = v.grad.detach().to(torch.float32)
                g64[k] = v.grad.detach()
            else:  # PyTorch's own float32 error, for context
                res["err32." + k] = (v.grad.detach().double() - g64[k]).abs().max().reshape(1)
        if dt == torch.float64:
            res["emb_q"] = eq.detach().to(torch.float32)
            res["emb_p"] = ep.detach().to(torch.float32)
            res["loss"] = loss.detach().reshape(1).to(torch.float32)
    res["q_ids"] = torch.tensor([t for s in qs for t in s], dtype=torch.int32)
    res["q_lens"] = torch.tensor([len(s) for s in qs], dtype=torch.int32)
    res["p_ids"] = torch.tensor([t for s in ps for t in s], dtype=torch.int32)
    res["p_lens"] = torch.tensor([len(s) for s in ps], dtype=torch.int32)
    res["proj_q"] = Rq
    res["proj_p"] = Rp
    bert_ref.save_safetensors(os.path.join(d, "ref.safetensors"), res)
    return {"name": name, "dir": d, "arch": arch, "pooling": pooling, "act": act,
            "dropout": -1.0 if drop else 0.0, "seed": SEED, "loss": loss_kind,
            "loss_value": float(loss)}


def main():
    out, tokenizer = sys.argv[1], sys.argv[2]
    with open(tokenizer) as f:
        tj = json.load(f)
    ids = list(tj["model"]["vocab"].values()) + [t["id"] for t in tj.get("added_tokens", [])]
    vocab = max(ids) + 1
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    cases = [run_case(out, tokenizer, vocab, *c, seed=11 + i) for i, c in enumerate(CASES)]
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print("grad_ref: %d cases in %s" % (len(cases), out))


if __name__ == "__main__":
    main()
