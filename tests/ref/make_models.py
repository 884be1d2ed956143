#!/usr/bin/python3
"""make_models.py - random-weight embedding models in the Hugging Face /
sentence-transformers layout, and reference embeddings from a plain PyTorch
implementation of the BERT / XLM-RoBERTa forward pass (run with Debian's
/usr/bin/python3; no transformers / safetensors packages needed).

  make_models.py models OUT_DIR SHARED_DIR     write every model directory
  make_models.py ref MODEL_DIR IDS_JSON OUT_NPY reference embeddings for token ids
                                                (ids include special tokens)
  make_models.py bench OUT_DIR SHARED_DIR       a bge-small-shaped model (12 x 384)

Weights are written with our own safetensors writer (below) in F32, F16 or
BF16, in one file or sharded with model.safetensors.index.json, with or
without the `bert.` / `roberta.` name prefix. The reference reads the
weights back from the files, converts them to fp32 (so BF16 models are
compared against fp32 math on the same bf16-rounded weights) and runs each
sequence alone (no padding), as HF does for a batch of one.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

DT = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
      "F64": (torch.float64, 8), "I32": (torch.int32, 4), "I64": (torch.int64, 8)}


# ---- safetensors ------------------------------------------------------------------
def st_write(path, tensors):
    """tensors: list of (name, torch tensor); dtype taken from the tensor."""
    rev = {v[0]: k for k, v in DT.items()}
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors:
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            b = t.view(torch.int16).numpy().tobytes()
        else:
            b = t.numpy().tobytes()
        header[name] = {"dtype": rev[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def st_read(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dt, size = DT[e["dtype"]]
        b0, b1 = e["data_offsets"]
        raw = bytearray(data[base + b0:base + b1])
        if dt == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if raw else torch.zeros(0, dtype=dt)
        else:
            t = torch.frombuffer(raw, dtype=dt) if raw else torch.zeros(0, dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out


def load_weights(d):
    if os.path.exists(os.path.join(d, "model.safetensors")):
        return st_read(os.path.join(d, "model.safetensors"))
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    out = {}
    for f in sorted(set(idx["weight_map"].values())):
        out.update(st_read(os.path.join(d, f)))
    return out


# ---- random models ------------------------------------------------------------------
def bert_tensors(cfg, gen, pooler):
    C, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]

    def r(*shape, std=0.1, mean=0.0):
        return torch.randn(*shape, generator=gen) * std + mean

    t = [("embeddings.word_embeddings.weight", r(cfg["vocab_size"], C, std=0.5)),
         ("embeddings.position_embeddings.weight", r(cfg["max_position_embeddings"], C, std=0.3)),
         ("embeddings.token_type_embeddings.weight", r(cfg["type_vocab_size"], C, std=0.3)),
         ("embeddings.LayerNorm.weight", r(C, mean=1.0)),
         ("embeddings.LayerNorm.bias", r(C))]
    for l in range(L):
        p = "encoder.layer.%d." % l
        for k in ("query", "key", "value"):
            t += [(p + "attention.self.%s.weight" % k, r(C, C, std=1.5 / math.sqrt(C))),
                  (p + "attention.self.%s.bias" % k, r(C))]
        t += [(p + "attention.output.dense.weight", r(C, C, std=1.0 / math.sqrt(C))),
              (p + "attention.output.dense.bias", r(C)),
              (p + "attention.output.LayerNorm.weight", r(C, mean=1.0)),
              (p + "attention.output.LayerNorm.bias", r(C)),
              (p + "intermediate.dense.weight", r(F, C, std=1.0 / math.sqrt(C))),
              (p + "intermediate.dense.bias", r(F)),
              (p + "output.dense.weight", r(C, F, std=1.0 / math.sqrt(F))),
              (p + "output.dense.bias", r(C)),
              (p + "output.LayerNorm.weight", r(C, mean=1.0)),
              (p + "output.LayerNorm.bias", r(C))]
    if pooler:
        t += [("pooler.dense.weight", r(C, C)), ("pooler.dense.bias", r(C))]
    return t


def unigram_xlmr_tokenizer(shared):
    """The model2vec Unigram tokenizer with XLM-R's <s> <pad> </s> in front
    (ids 0, 1, 2) and a RobertaProcessing post-processor."""
    tok = json.load(open(os.path.join(shared, "fixtures/model2vec-bge-base-q128/tokenizer.json")))
    m = tok["model"]
    m["vocab"] = [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0]] + m["vocab"]
    m["unk_id"] = m["unk_id"] + 3
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in enumerate(["<s>", "<pad>", "</s>"])]
    for a in tok["added_tokens"]:
        a["id"] += 3
    tok["added_tokens"] = added + tok["added_tokens"]
    tok["post_processor"] = {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
                             "trim_offsets": True, "add_prefix_space": True}
    return tok, len(m["vocab"])


SPECS = [
    # name, arch, dtype, shards, prefix, pooling, normalize, act, max_seq, pooler, modules
    dict(name="bert-f32-cls", arch="bert", dtype="F32", shards=1, prefix="bert.", pooling="cls",
         normalize=True, act="gelu", max_seq=48, pooler=True, modules=True,
         prompts={"query": "Represent this sentence for searching relevant passages: ", "document": ""}),
    dict(name="bert-bf16-sharded-mean", arch="bert", dtype="BF16", shards=3, prefix="", pooling="mean",
         normalize=True, act="gelu", max_seq=None, pooler=False, modules=True),
    dict(name="bert-f16-max", arch="bert", dtype="F16", shards=1, prefix="bert.", pooling="max",
         normalize=True, act="gelu_new", max_seq=40, pooler=False, modules=True),
    dict(name="bert-f32-last", arch="bert", dtype="F32", shards=2, prefix="bert.", pooling="lasttoken",
         normalize=True, act="gelu", max_seq=64, pooler=False, modules=True),
    dict(name="bert-f32-nomodules", arch="bert", dtype="F32", shards=1, prefix="", pooling="mean",
         normalize=False, act="gelu", max_seq=None, pooler=False, modules=False),
    dict(name="xlmr-f32-mean", arch="xlmr", dtype="F32", shards=1, prefix="roberta.", pooling="mean",
         normalize=True, act="gelu", max_seq=48, pooler=False, modules=True),
    dict(name="xlmr-bf16-sharded-cls", arch="xlmr", dtype="BF16", shards=2, prefix="", pooling="cls",
         normalize=True, act="gelu", max_seq=None, pooler=True, modules=True),
    # sentence-transformers details: include_prompt false (prompt tokens not pooled), weightedmean,
    # mean_sqrt_len without Normalize, do_lower_case with a cased tokenizer, vocab.txt only
    dict(name="bert-f32-wmean-noprompt", arch="bert", dtype="F32", shards=1, prefix="bert.",
         pooling="weightedmean", normalize=True, act="gelu", max_seq=48, pooler=False, modules=True,
         include_prompt=False, prompts={"query": "Represent this sentence for searching relevant passages: "}),
    dict(name="bert-f16-max-noprompt-lower", arch="bert", dtype="F16", shards=1, prefix="", pooling="max",
         normalize=True, act="gelu", max_seq=40, pooler=False, modules=True, include_prompt=False,
         do_lower_case=True, cased=True, prompts={"query": "query: ", "empty": ""}),
    dict(name="xlmr-f32-sqrtlen-nonorm", arch="xlmr", dtype="F32", shards=1, prefix="roberta.",
         pooling="mean_sqrt_len", normalize=False, act="gelu", max_seq=48, pooler=False, modules=True,
         include_prompt=False, prompts={"query": "query: "}),
    dict(name="bert-f32-vocabtxt", arch="bert", dtype="F32", shards=1, prefix="bert.", pooling="mean",
         normalize=True, act="gelu", max_seq=48, pooler=False, modules=True, tok="vocabtxt"),
]


def write_model(out, shared, spec, seed, size=None):
    d = os.path.join(out, spec["name"])
    os.makedirs(d, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    C, L, NH, F = size or (64, 2, 4, 128)
    if spec["arch"] == "bert":
        tok = json.load(open(os.path.join(shared, "fixtures/bge-wordpiece/tokenizer.json")))
        if spec.get("cased"):  # a cased WordPiece: only do_lower_case lowercases
            tok["normalizer"]["lowercase"] = False
        vocab = max(max(tok["model"]["vocab"].values()), max(a["id"] for a in tok["added_tokens"])) + 1
        cfg = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab,
               "hidden_size": C, "num_hidden_layers": L, "num_attention_heads": NH,
               "intermediate_size": F, "hidden_act": spec["act"], "max_position_embeddings": 128,
               "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
               "position_embedding_type": "absolute", "hidden_dropout_prob": 0.1,
               "attention_probs_dropout_prob": 0.1}
    else:
        tok, vocab = unigram_xlmr_tokenizer(shared)
        cfg = {"architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta", "vocab_size": vocab,
               "hidden_size": C, "num_hidden_layers": L, "num_attention_heads": NH,
               "intermediate_size": F, "hidden_act": spec["act"], "max_position_embeddings": 130,
               "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0,
               "eos_token_id": 2, "position_embedding_type": "absolute"}
    if size:
        cfg["max_position_embeddings"] = 512 + (2 if spec["arch"] == "xlmr" else 0)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):
        if os.path.exists(os.path.join(d, f)):
            os.remove(os.path.join(d, f))
    if spec.get("tok") == "vocabtxt":
        # only vocab.txt + tokenizer_config.json; the reference ids come from the tokenizer.json
        # transformers' BertConverter builds from them (template with the vocab's [CLS]/[SEP] ids)
        v = tok["model"]["vocab"]
        by_id = sorted(v, key=lambda k: v[k])
        with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(by_id) + "\n")
        json.dump({"do_lower_case": True, "model_max_length": 512, "cls_token": "[CLS]", "sep_token": "[SEP]",
                   "unk_token": "[UNK]", "pad_token": "[PAD]", "mask_token": "[MASK]",
                   "tokenizer_class": "BertTokenizer"}, open(os.path.join(d, "tokenizer_config.json"), "w"))
        for k in ("[CLS]", "[SEP]"):
            tok["post_processor"]["special_tokens"][k]["ids"] = [v[k]]
        json.dump(tok, open(os.path.join(d, "ref-tokenizer.json"), "w"), ensure_ascii=False)
    else:
        json.dump(tok, open(os.path.join(d, "tokenizer.json"), "w"), ensure_ascii=False)
    tensors = bert_tensors(cfg, gen, spec["pooler"])
    dt = DT[spec["dtype"]][0]
    tensors = [(spec["prefix"] + n, t.to(dt)) for n, t in tensors]
    for f in os.listdir(d):
        if f.endswith(".safetensors") or f.endswith(".index.json"):
            os.remove(os.path.join(d, f))
    if spec["shards"] == 1:
        st_write(os.path.join(d, "model.safetensors"), tensors)
    else:
        k = spec["shards"]
        wm, total = {}, 0
        for i in range(k):
            fn = "model-%05d-of-%05d.safetensors" % (i + 1, k)
            part = tensors[i::k]
            st_write(os.path.join(d, fn), part)
            for n, t in part:
                wm[n] = fn
                total += t.numel() * t.element_size()
        json.dump({"metadata": {"total_size": total}, "weight_map": wm},
                  open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)
    if spec["modules"]:
        mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        if spec["normalize"]:
            mods.append({"idx": 2, "name": "2", "path": "2_Normalize",
                         "type": "sentence_transformers.models.Normalize"})
            os.makedirs(os.path.join(d, "2_Normalize"), exist_ok=True)
        json.dump(mods, open(os.path.join(d, "modules.json"), "w"), indent=2)
        os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
        pc = {"word_embedding_dimension": C}
        for m in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens",
                  "weightedmean_tokens", "lasttoken"):
            pc["pooling_mode_" + m] = {"cls": "cls_token", "mean": "mean_tokens", "max": "max_tokens",
                                       "lasttoken": "lasttoken", "weightedmean": "weightedmean_tokens",
                                       "mean_sqrt_len": "mean_sqrt_len_tokens"}[spec["pooling"]] == m
        pc["include_prompt"] = spec.get("include_prompt", True)
        json.dump(pc, open(os.path.join(d, "1_Pooling/config.json"), "w"), indent=2)
    if spec["max_seq"]:
        json.dump({"max_seq_length": spec["max_seq"], "do_lower_case": spec.get("do_lower_case", False)},
                  open(os.path.join(d, "sentence_bert_config.json"), "w"))
    if spec.get("prompts"):
        json.dump({"prompts": spec["prompts"], "default_prompt_name": None, "similarity_fn_name": "cosine"},
                  open(os.path.join(d, "config_sentence_transformers.json"), "w"), ensure_ascii=False)
    limit = cfg["max_position_embeddings"] - (cfg["pad_token_id"] + 1 if spec["arch"] == "xlmr" else 0)
    spec_out = dict(spec, max_length=spec["max_seq"] or limit)
    json.dump(spec_out, open(os.path.join(d, "spec.json"), "w"))
    return d


# ---- reference forward (plain torch, fp32) -----------------------------------------------
def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def gelu(x, act):
    if act == "gelu":
        return torch.nn.functional.gelu(x)
    if act in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return torch.nn.functional.gelu(x, approximate="tanh")
    return torch.relu(x)


def st_pool(x, mask, pool):
    """sentence-transformers' Pooling.forward for one mode, batch of one: x [T, C], mask [T]
    (attention mask with the prompt zeroed when include_prompt is false)."""
    x, mask = x.unsqueeze(0), mask.unsqueeze(0).float()
    T = x.shape[1]
    m = mask.unsqueeze(-1).expand(x.size())
    if pool == "cls":
        e = x[:, 0]
    elif pool == "max":
        e = torch.max(x.masked_fill(m == 0, -1e9), 1)[0]
    elif pool == "lasttoken":
        values, indices = mask.flip(1).max(1)
        indices = torch.where(values == 0, T - 1, indices)
        e = x[0, T - int(indices[0]) - 1].unsqueeze(0)
    elif pool == "weightedmean":
        w = torch.arange(1, T + 1).unsqueeze(0).unsqueeze(-1).expand(x.size()).to(x.dtype) * m
        e = torch.sum(x * w, 1) / torch.clamp(w.sum(1), min=1e-9)
    elif pool == "mean_sqrt_len":
        e = torch.sum(x * m, 1) / torch.sqrt(torch.clamp(m.sum(1), min=1e-9))
    else:
        e = torch.sum(x * m, 1) / torch.clamp(m.sum(1), min=1e-9)
    return e[0]


def reference(model_dir, ids_list, skip=0):
    """skip: sentence-transformers' prompt_length (tokens masked out of the pooling)."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    spec = json.load(open(os.path.join(model_dir, "spec.json")))
    W = {k: v.float() for k, v in load_weights(model_dir).items()}
    px = spec["prefix"]
    g = lambda n: W[px + n]
    C, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    HS = C // NH
    eps = cfg["layer_norm_eps"]
    xlmr = cfg["model_type"] in ("xlm-roberta", "roberta")
    out = []
    with torch.no_grad():
        for ids in ids_list:
            ids_t = torch.tensor(ids, dtype=torch.long)
            T = len(ids)
            if xlmr:  # create_position_ids_from_input_ids: cumsum(mask) * mask + padding_idx
                mask = (ids_t != cfg["pad_token_id"]).long()
                pos = torch.cumsum(mask, 0) * mask + cfg["pad_token_id"]
            else:
                pos = torch.arange(T)
            x = g("embeddings.word_embeddings.weight")[ids_t] + g("embeddings.position_embeddings.weight")[pos] \
                + g("embeddings.token_type_embeddings.weight")[torch.zeros(T, dtype=torch.long)]
            x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
            for l in range(cfg["num_hidden_layers"]):
                p = "encoder.layer.%d." % l
                lin = lambda v, n: v @ g(p + n + ".weight").T + g(p + n + ".bias")
                q = lin(x, "attention.self.query").view(T, NH, HS).transpose(0, 1)
                k = lin(x, "attention.self.key").view(T, NH, HS).transpose(0, 1)
                v = lin(x, "attention.self.value").view(T, NH, HS).transpose(0, 1)
                a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(HS), dim=-1) @ v
                a = a.transpose(0, 1).reshape(T, C)
                x = layer_norm(x + lin(a, "attention.output.dense"), g(p + "attention.output.LayerNorm.weight"),
                               g(p + "attention.output.LayerNorm.bias"), eps)
                h = gelu(lin(x, "intermediate.dense"), cfg["hidden_act"])
                x = layer_norm(x + lin(h, "output.dense"), g(p + "output.LayerNorm.weight"),
                               g(p + "output.LayerNorm.bias"), eps)
            mask = torch.ones(T)
            mask[:skip] = 0
            e = st_pool(x, mask, spec["pooling"])
            if spec["normalize"]:
                e = torch.nn.functional.normalize(e, p=2, dim=0)
            out.append(e.numpy())
    return np.stack(out).astype(np.float32)


def main():
    cmd = sys.argv[1]
    if cmd == "models":
        out, shared = sys.argv[2], sys.argv[3]
        for i, s in enumerate(SPECS):
            write_model(out, shared, s, seed=1234 + i)
            print(os.path.join(out, s["name"]))
    elif cmd == "ref":
        d, ids_path, out = sys.argv[2], sys.argv[3], sys.argv[4]
        ids = json.load(open(ids_path))
        np.save(out, reference(d, ids))
    elif cmd == "suite":
        # every model + golden ids (node) + reference embeddings, in one process
        out, shared, node_ref, texts_json = sys.argv[2:6]
        import subprocess
        texts = json.load(open(texts_json))

        def hf_ids(d, sp, texts, ml):
            # sentence-transformers' Transformer.tokenize: str.lower() first when do_lower_case
            if sp.get("do_lower_case"):
                texts = [t.lower() for t in texts]
            tj = os.path.join(d, "tmp-texts.json")
            json.dump(texts, open(tj, "w"), ensure_ascii=False)
            tf = os.path.join(d, "ref-tokenizer.json" if sp.get("tok") == "vocabtxt" else "tokenizer.json")
            r = subprocess.run(["node", os.path.join(node_ref, "encode_ids.js"), tf, tj, str(ml), "1"],
                               check=True, capture_output=True).stdout
            os.remove(tj)
            return r

        for i, sp in enumerate(SPECS):
            d = write_model(out, shared, sp, seed=1234 + i)
            ml = json.load(open(os.path.join(d, "spec.json")))["max_length"]
            ids = hf_ids(d, sp, texts, ml)
            open(os.path.join(d, "ids.json"), "wb").write(ids)
            ids = json.loads(ids)
            np.save(os.path.join(d, "ref.npy"), reference(d, ids))
            # every named prompt: SentenceTransformer.encode(prompt_name=...) on prompt + text, with
            # prompt_length = len(tokenize([prompt]).input_ids) - 1 masked when include_prompt is false
            for pn, pt in sorted((sp.get("prompts") or {}).items()):
                pids = json.loads(hf_ids(d, sp, [pt + t for t in texts], ml))
                skip = 0 if sp.get("include_prompt", True) else len(json.loads(hf_ids(d, sp, [pt], ml))[0]) - 1
                np.save(os.path.join(d, "ref-prompt-%s.npy" % pn), reference(d, pids, skip))
            with open(os.path.join(d, "ids.txt"), "w") as f:
                for x in ids:
                    f.write(" ".join(map(str, x)) + "\n")
            print(d)
    elif cmd == "bench":
        out, shared = sys.argv[2], sys.argv[3]
        spec = dict(name="bge-small-random", arch="bert", dtype="F32", shards=1, prefix="", pooling="cls",
                    normalize=True, act="gelu", max_seq=512, pooler=False, modules=True)
        print(write_model(out, shared, spec, seed=7, size=(384, 12, 12, 1536)))
    else:
        sys.exit("usage: make_models.py models|ref|bench ...")


if __name__ == "__main__":
    main()
