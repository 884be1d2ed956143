"""finetune_bert_ref.py - a `embtune finetune` run of a tiny random BERT replayed
in PyTorch (float64), through the whole trainer: tokenization, batches, dropout,
loss, clipping, AdamW, schedule.

  finetune_bert_ref.py make OUT_DIR TOKENIZER.json
      writes OUT_DIR/model (2 layers, hidden 32, 4 heads, FF 64, CLS pooling +
      Normalize, hidden/attention dropout 0.1) and OUT_DIR/train.json (llama-index
      JSON, 24 short queries and passages) and OUT_DIR/texts.json.
  finetune_bert_ref.py traj MODEL_DIR DATA.json IDS.json RUN_DIR SEED
      RUN_DIR = the output of `embtune finetune ... --log-batches --seed SEED`
      (MNRL, no hard negatives, no GradCache). IDS.json: {"texts", "ids"} from the
      real HF tokenizer, special tokens included. Dropout: embtune's counter-based
      masks (bert_ref.dropout_keep); the encoder draws once per training forward,
      so step k embeds its queries with draw 2k and its passages with draw 2k+1.
      AdamW groups as the Hugging Face Trainer: no decay on biases and LayerNorm
      weights. Compares every step's loss (rel 1e-4) and every final parameter
      with RUN_DIR/model.safetensors (max abs diff 2e-5), except the attention key
      biases: their true gradient is 0 (softmax is shift-invariant), so AdamW turns
      float32 rounding noise into updates of up to ~lr in any float32
      implementation; their difference is printed, not checked. Exit 1 on mismatch."""
import json
import os
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_ref  # noqa: E402
import grad_ref  # noqa: E402

TOL_LOSS, TOL_PARAM = 1e-4, 2e-5


def make(out, tokenizer):
    tj = json.load(open(tokenizer))
    vocab = tj["model"]["vocab"]
    cfg = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": len(vocab), "hidden_size": 32,
           "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu",
           "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
           "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": 0,
           "position_embedding_type": "absolute"}
    params = bert_ref.random_params(cfg, seed=3, std=0.15)  # not 0.02: CLS vectors must differ
    grad_ref.write_model_dir(os.path.join(out, "model"), cfg, params, "cls", tokenizer)
    words = sorted(w for w in vocab if w.isalpha() and w.islower() and 3 <= len(w) <= 8)
    rnd = random.Random(4)
    ds = {"queries": {}, "corpus": {}, "relevant_docs": {}, "mode": "text"}
    for i in range(24):
        topic = [rnd.choice(words) for _ in range(4)]
        ds["corpus"][f"d{i}"] = " ".join(topic + [rnd.choice(words) for _ in range(rnd.randrange(8, 20))])
        ds["queries"][f"q{i}"] = " ".join(rnd.sample(topic, 2) + [rnd.choice(words) for _ in range(rnd.randrange(1, 5))])
        ds["relevant_docs"][f"q{i}"] = [f"d{i}"]
    json.dump(ds, open(os.path.join(out, "train.json"), "w"), indent=1)
    json.dump(list(ds["queries"].values()) + list(ds["corpus"].values()), open(os.path.join(out, "texts.json"), "w"))


def traj(model_dir, data, ids_path, run, seed):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    grad_ref.SEED = seed
    ds = json.load(open(data))
    idm = json.load(open(ids_path))
    ids_of = {t: i for t, i in zip(idm["texts"], idm["ids"])}
    log = [json.loads(line) for line in open(os.path.join(run, "train_log.jsonl"))]
    start = log[0]
    steps = [e for e in log if "grad_norm" in e]
    total, warmup, lr = start["steps"], start["warmup"], start["lr"]
    P = {k: v.double().clone().requires_grad_(True)
         for k, v in bert_ref.load_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    decay = [v for k, v in P.items() if not (k.endswith("bias") or "LayerNorm.weight" in k)]
    no_decay = [v for k, v in P.items() if k.endswith("bias") or "LayerNorm.weight" in k]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.999), eps=1e-8)
    lam = lambda k: k / max(1, warmup) if k < warmup else max(0.0, (total - k) / max(1, total - warmup))  # noqa
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    H, ph, pa = cfg["num_attention_heads"], cfg["hidden_dropout_prob"], cfg["attention_probs_dropout_prob"]
    worst = 0.0
    for k, e in enumerate(steps):
        cols = [[ids_of[ds["queries"][r[0]]] for r in e["rows"]], [ids_of[ds["corpus"][r[1]]] for r in e["rows"]]]
        embs = []
        for c, seqs in enumerate(cols):
            ids, mask = bert_ref.pad_batch(seqs, 0)
            drop = grad_ref.make_drop([len(s) for s in seqs], H, ph, pa, 2 * k + c)
            h = bert_ref.encode(P, cfg, ids, mask, drop=drop, padding_idx=0)
            embs.append(bert_ref.pool(h, mask, "cls", normalize=True))
        scores = F.normalize(embs[0], dim=1) @ F.normalize(embs[1], dim=1).T * 20.0
        loss = F.cross_entropy(scores, torch.arange(len(cols[0])))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        sched.step()
        worst = max(worst, abs(float(loss) - e["loss"]) / abs(float(loss)))
    got = bert_ref.load_safetensors(os.path.join(run, "model.safetensors"))
    diff, where, kdiff = 0.0, "", 0.0
    for name, v in P.items():
        d = float((got[name].double() - v.detach()).abs().max())
        if name.endswith("attention.self.key.bias"):
            kdiff = max(kdiff, d)
        elif d > diff:
            diff, where = d, name
    print(f"finetune_bert_ref: {len(steps)} steps with dropout, loss rel err {worst:.2e} (tol {TOL_LOSS}), "
          f"final parameters max abs diff {diff:.2e} at {where} (tol {TOL_PARAM}; attention key biases, "
          f"zero true gradient, not checked: {kdiff:.2e}), {len(P)} tensors")
    return 0 if worst <= TOL_LOSS and diff <= TOL_PARAM and set(got) >= set(P) else 1


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    else:
        sys.exit(traj(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])))
