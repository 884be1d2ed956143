"""finetune_ref.py - independent PyTorch checks of `embtune finetune` runs on a
static (model2vec) model.

  finetune_ref.py traj BASE_DIR DATASET.json IDS.json OUT_DIR [adapter]
      Replays the run logged in OUT_DIR/train_log.jsonl (--log-batches: the rows
      of every step) in PyTorch (float64): the base table expanded (weights[v] *
      embeddings[mapping[v]]), mean of the rows of the ids (UNK dropped) +
      F.normalize, sentence-transformers' MNRL (scale 20), clip_grad_norm_(1),
      AdamW (decoupled decay on the table / adapter weights, not on biases),
      the linear warm-up/decay schedule. With "adapter": a linear adapter
      (identity init) on the frozen base embeddings of the queries. Compares
      every step's loss with the log and the final parameters with
      OUT_DIR/model.safetensors (or adapter.safetensors). Exit 1 on mismatch.

  finetune_ref.py reload MODEL_DIR IDS.json EMB.npy
      Loads a fine-tuned static model directory as sentence-transformers
      describes it (modules.json: StaticEmbedding at ".", Normalize) from the
      files alone, embeds the texts whose ids are given and compares with
      EMB.npy written by `embtune embed`. Exit 1 on mismatch.

IDS.json: {"texts": [...], "ids": [[...], ...]} (ids from the real HF tokenizer,
no special tokens); texts in DATASET.json are looked up there."""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import st_io  # noqa: E402

TOL_LOSS = 1e-4   # relative, per step
TOL_PARAM = 1e-5  # max abs difference of the final parameters


def unk_id(model_dir):
    tj = json.load(open(os.path.join(model_dir, "tokenizer.json")))
    m = tj.get("model", {})
    if m.get("type") == "Unigram":
        return m.get("unk_id")
    unk = m.get("unk_token")
    return m.get("vocab", {}).get(unk) if unk else None


def base_table(model_dir):
    t = st_io.load(os.path.join(model_dir, "model.safetensors"))
    emb = t.get("embeddings", t.get("embedding.weight")).double()
    if "mapping" in t:
        emb = emb[t["mapping"].long()]
    if "weights" in t:
        emb = emb * t["weights"].double().unsqueeze(1)
    return emb.float()


def embed(table, seqs, unk):
    rows = []
    for s in seqs:
        kept = [i for i in s if i != unk]
        rows.append(table[torch.tensor(kept)].mean(0) if kept else torch.zeros(table.shape[1], dtype=table.dtype))
    return F.normalize(torch.stack(rows), p=2, dim=1)


def mnrl(a, cands, scale=20.0):
    s = F.normalize(a, dim=1) @ F.normalize(cands, dim=1).T * scale
    return F.cross_entropy(s, torch.arange(a.shape[0]))


def traj(base, dataset, ids_path, out, adapter):
    ds = json.load(open(dataset))
    idm = json.load(open(ids_path))
    ids_of = {t: i for t, i in zip(idm["texts"], idm["ids"])}
    log = [json.loads(line) for line in open(os.path.join(out, "train_log.jsonl"))]
    start = log[0]
    steps = [e for e in log if "grad_norm" in e]
    assert steps and all("rows" in e for e in steps), "run without --log-batches"
    total, warmup, lr = start["steps"], start["warmup"], start["lr"]
    unk = unk_id(base)
    # float64: the exact trajectory (a float32 replay drifts from it by ~2e-5 after 30 AdamW
    # steps, more than embtune's float32 run does: ~4e-6)
    table0 = base_table(base).double()
    if adapter:
        W = torch.nn.Parameter(torch.eye(table0.shape[1], dtype=torch.float64))
        params, decay = [W], [W]
    else:
        table = torch.nn.Parameter(table0.clone())
        params, decay = [table], [table]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    lam = lambda k: k / max(1, warmup) if k < warmup else max(0.0, (total - k) / max(1, total - warmup))  # noqa
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    worst_loss = 0.0
    for e in steps:
        q = [ids_of[ds["queries"][r[0]]] for r in e["rows"]]
        p = [ids_of[ds["corpus"][r[1]]] for r in e["rows"]]
        if adapter:
            with torch.no_grad():
                qb, pb = embed(table0, q, unk), embed(table0, p, unk)
            loss = mnrl(qb @ W.T, pb)
        else:
            loss = mnrl(embed(table, q, unk), embed(table, p, unk))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        rel = abs(float(loss) - e["loss"]) / max(1e-12, abs(float(loss)))
        worst_loss = max(worst_loss, rel)
    if adapter:
        got = st_io.load(os.path.join(out, "adapter.safetensors"))["linear.weight"]
        want = W.detach()
    else:
        got = st_io.load(os.path.join(out, "model.safetensors"))["embeddings"]
        want = table.detach()
    diff = float((got.double() - want).abs().max())
    print(f"finetune_ref traj{' adapter' if adapter else ''}: {len(steps)} steps, loss rel err {worst_loss:.2e} "
          f"(tol {TOL_LOSS}), final parameters max abs diff {diff:.2e} (tol {TOL_PARAM})")
    return 0 if worst_loss <= TOL_LOSS and diff <= TOL_PARAM else 1


def reload(model_dir, ids_path, npy):
    mods = json.load(open(os.path.join(model_dir, "modules.json")))
    types = [m["type"].split(".")[-1] for m in mods]
    assert types[0] == "StaticEmbedding", types
    st = [m for m in mods if m["type"].endswith("StaticEmbedding")][0]
    w = st_io.load(os.path.join(model_dir, st["path"], "model.safetensors"))
    table = w["embeddings"].float()
    assert "mapping" not in w and "weights" not in w, "expected a full table"
    idm = json.load(open(ids_path))
    unk = unk_id(model_dir)
    seqs = idm["ids"]
    rows = []
    for s in seqs:
        kept = [i for i in s if i != unk]
        rows.append(table[torch.tensor(kept)].mean(0) if kept else torch.zeros(table.shape[1]))
    x = torch.stack(rows)
    if "Normalize" in types:
        x = F.normalize(x, p=2, dim=1)
    got = torch.from_numpy(np.load(npy))
    diff = float((got - x).abs().max())
    print(f"finetune_ref reload: {len(seqs)} texts, max abs diff vs embtune embed {diff:.2e} (tol 1e-5)")
    return 0 if diff <= 1e-5 else 1


def main():
    cmd = sys.argv[1]
    if cmd == "traj":
        sys.exit(traj(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], len(sys.argv) > 6))
    if cmd == "reload":
        sys.exit(reload(sys.argv[2], sys.argv[3], sys.argv[4]))
    sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
