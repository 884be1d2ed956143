"""finetune_traj_ref.py - a full fine-tuning run of a tiny random BERT replayed
step by step in PyTorch (float64): the weight trajectory, not only the end.

  finetune_traj_ref.py data OUT_DIR
      writes OUT_DIR/train_flag.jsonl (FlagEmbedding JSONL, 40 rows, one hard
      negative each, negatives never a positive) and OUT_DIR/flag_texts.json,
      from OUT_DIR/train.json's vocabulary (finetune_bert_ref.py make first).
  finetune_traj_ref.py traj MODEL_DIR DATA IDS.json RUN_DIR OPTS_JSON [CKPT ...]
      RUN_DIR: the output of `embtune finetune ... --log-batches`; DATA its -t
      (llama-index .json or FlagEmbedding .jsonl); IDS.json {"texts", "ids"}
      from the real HF tokenizer (special tokens included); OPTS_JSON: the run's
      options that the log does not hold: {"seed", "loss": mnrl | mnrl-sym |
      gist, "scale", "temperature", "dims", "weights", "clip", "wd", "guide":
      bool (the guide model is MODEL_DIR itself), "dropout": false for
      --no-dropout}. CKPT: checkpoint files
      (checkpoint/state.bin copied after a SIGTERM) whose parameters are
      compared with PyTorch's after the same step.
      Replays: the logged batches of every step (grad accumulation: one
      backward per batch of the group, each scaled 1/group size), the dropout
      masks (one draw per column forward, in order), the loss, clip_grad_norm_,
      torch.optim.AdamW (no decay on biases and LayerNorm weights) and the
      linear warm-up + decay schedule. Checks per step: loss (rel TOL_LOSS),
      pre-clip gradient norm (rel TOL_GNORM), learning rate (rel 1e-6); then
      every parameter in each CKPT and in RUN_DIR/model.safetensors (max abs
      diff TOL_PARAM). Attention key biases are not checked: their true
      gradient is 0 (softmax is shift-invariant), so AdamW turns float32
      rounding noise into updates of up to ~lr in any float32 implementation.
      Exit 1 on mismatch."""
import json
import os
import random
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_ref  # noqa: E402
import grad_ref  # noqa: E402
import loss_ref  # noqa: E402

TOL_LOSS, TOL_GNORM, TOL_PARAM = 1e-5, 1e-4, 2e-5


def fnv_id(text):  # dataset.c: JSONL texts get "d" + FNV-1a 64 of the UTF-8 bytes
    h = 0xcbf29ce484222325
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "d%016x" % h


def data(out):
    ds = json.load(open(os.path.join(out, "train.json")))
    words = sorted({w for t in list(ds["queries"].values()) + list(ds["corpus"].values()) for w in t.split()})
    rnd = random.Random(11)
    rows, texts = [], []
    for i in range(40):
        topic = rnd.sample(words, 4)
        pos = " ".join(topic + rnd.sample(words, rnd.randrange(6, 16)))
        neg = " ".join(topic[:1] + rnd.sample(words, rnd.randrange(6, 16)))  # shares a word: hard
        q = " ".join(rnd.sample(topic, 2) + rnd.sample(words, rnd.randrange(1, 4)))
        rows.append({"query": q, "pos": [pos], "neg": [neg]})
        texts += [q, pos, neg]
    with open(os.path.join(out, "train_flag.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    json.dump(texts, open(os.path.join(out, "flag_texts.json"), "w"))


def load_rows(path):
    """qid -> text, doc id -> text, as embtune names them."""
    if path.endswith(".json"):
        ds = json.load(open(path))
        return ds["queries"], ds["corpus"]
    queries, corpus = {}, {}
    for i, line in enumerate(open(path)):
        r = json.loads(line)
        queries[f"q{i}"] = r["query"]
        for t in r["pos"] + r.get("neg", []):
            corpus[fnv_id(t)] = t
    return queries, corpus


def flat_c(P, cfg):
    """The parameters in embtune's flat order (model_params.c), key biases as NaN."""
    L = cfg["num_hidden_layers"]
    g = lambda n: P[n].detach().reshape(-1)  # noqa: E731
    parts = [g("embeddings.word_embeddings.weight"), g("embeddings.position_embeddings.weight"),
             g("embeddings.token_type_embeddings.weight"), g("embeddings.LayerNorm.weight"),
             g("embeddings.LayerNorm.bias")]
    lay = lambda n: torch.cat([g(f"encoder.layer.{i}.{n}") for i in range(L)])  # noqa: E731
    parts.append(torch.cat([g(f"encoder.layer.{i}.attention.self.{s}.weight")
                            for i in range(L) for s in ("query", "key", "value")]))
    qkvb = []
    for i in range(L):
        for s in ("query", "key", "value"):
            b = g(f"encoder.layer.{i}.attention.self.{s}.bias")
            qkvb.append(torch.full_like(b, float("nan")) if s == "key" else b)
    parts.append(torch.cat(qkvb))
    for n in ("attention.output.dense.weight", "attention.output.dense.bias", "attention.output.LayerNorm.weight",
              "attention.output.LayerNorm.bias", "intermediate.dense.weight", "intermediate.dense.bias",
              "output.dense.weight", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"):
        parts.append(lay(n))
    return torch.cat(parts)


def read_ckpt(path):
    """(step, params f32[n]) of a train_ckpt.c file ("ETCKPT02" layout)."""
    b = open(path, "rb").read()
    assert b[:8] == b"ETCKPT02", path
    jl = struct.unpack_from("<Q", b, 8)[0]
    st = json.loads(b[16:16 + jl].rstrip(b"\0").decode())
    off = 16 + (jl + 7) // 8 * 8
    n = struct.unpack_from("<Q", b, off)[0]
    params = np.frombuffer(b, dtype="<f4", count=n, offset=off + 24)
    return int(st["step"]), torch.from_numpy(params.astype(np.float64))


def traj(model_dir, data_path, ids_path, run, opts, ckpts):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    grad_ref.SEED = opts["seed"]
    queries, corpus = load_rows(data_path)
    idm = json.load(open(ids_path))
    ids_of = {t: i for t, i in zip(idm["texts"], idm["ids"])}
    log = [json.loads(line) for line in open(os.path.join(run, "train_log.jsonl"))]
    start = log[0]
    steps = [e for e in log if "grad_norm" in e]
    total, warmup, lr = start["steps"], start["warmup"], start["lr"]
    assert len(steps) == total, f"log has {len(steps)} steps, start line says {total}"
    P = {k: v.double().clone().requires_grad_(True)
         for k, v in bert_ref.load_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    guide_of = None
    if opts.get("guide"):
        G = {k: v.detach().clone() for k, v in P.items()}

        def guide_of(seqs):
            ids, mask = bert_ref.pad_batch(seqs, 0)
            with torch.no_grad():
                return bert_ref.pool(bert_ref.encode(G, cfg, ids, mask), mask, "cls", normalize=True)
    nodecay = lambda k: k.endswith("bias") or "LayerNorm.weight" in k  # noqa: E731
    opt = torch.optim.AdamW([{"params": [v for k, v in P.items() if not nodecay(k)], "weight_decay": opts["wd"]},
                             {"params": [v for k, v in P.items() if nodecay(k)], "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.999), eps=1e-8)
    lam = lambda k: k / max(1, warmup) if k < warmup else max(0.0, (total - k) / max(1, total - warmup))  # noqa
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    H, ph, pa = cfg["num_attention_heads"], cfg["hidden_dropout_prob"], cfg["attention_probs_dropout_prob"]
    if not opts.get("dropout", True):  # --no-dropout
        ph = pa = 0.0
    lcfg = {"kind": opts.get("loss", "mnrl"), "scale": opts.get("scale", 20.0),
            "temperature": opts.get("temperature", 0.01), "margin": 0.0, "margin_relative": 0}
    if opts.get("dims"):
        lcfg["dims"], lcfg["weights"] = opts["dims"], opts.get("weights") or [1.0] * len(opts["dims"])
    want = {}
    for c in ckpts:
        s, v = read_ckpt(c)
        want.setdefault(s, []).append((c, v))
    draw, worst_l, worst_g, worst_lr, worst_p, clipped, fails = 0, 0.0, 0.0, 0.0, 0.0, 0, []
    for k, e in enumerate(steps):
        opt.zero_grad()
        rows, off, loss_step = e["rows"], 0, 0.0
        nb = len(e["batches"])
        for bs in e["batches"]:
            batch = rows[off:off + bs]
            off += bs
            ncol = len(batch[0])
            reps, guides, valid = [], [], None
            for c in range(ncol):
                names = [r[c] for r in batch]
                present = [i for i, n in enumerate(names) if n is not None]
                texts = [(queries if c == 0 else corpus)[names[i]] for i in present]
                seqs = [ids_of[t] for t in texts]
                emb = torch.zeros(bs, cfg["hidden_size"], dtype=torch.float64)
                gemb = None
                if seqs:
                    ids, mask = bert_ref.pad_batch(seqs, 0)
                    drop = grad_ref.make_drop([len(s) for s in seqs], H, ph, pa, draw) if ph > 0 or pa > 0 else None
                    draw += 1
                    h = bert_ref.encode(P, cfg, ids, mask, drop=drop, padding_idx=0)
                    e_c = bert_ref.pool(h, mask, "cls", normalize=True)
                    emb = emb.index_put((torch.tensor(present),), e_c)
                    if guide_of:
                        gemb = torch.zeros(bs, cfg["hidden_size"], dtype=torch.float64)
                        gemb[present] = guide_of(seqs)
                reps.append(emb)
                guides.append(gemb)
            if ncol > 2:
                valid = torch.tensor([[1 if r[c] is not None else 0 for r in batch] for c in range(2, ncol)],
                                     dtype=torch.int32)
            loss = loss_ref.loss_fn(reps, guides if guide_of else None, lcfg, valid)
            (loss / nb).backward()
            loss_step += float(loss) / nb
        gn = float(torch.nn.utils.clip_grad_norm_(list(P.values()), opts["clip"]))
        clipped += gn > opts["clip"]
        lr_k = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        el = abs(loss_step - e["loss"]) / abs(loss_step)
        eg = abs(gn - e["grad_norm"]) / gn
        elr = abs(lr_k - e["lr"]) / max(lr_k, 1e-30) if lr_k > 0 else abs(e["lr"])
        worst_l, worst_g, worst_lr = max(worst_l, el), max(worst_g, eg), max(worst_lr, elr)
        print(f"  step {k + 1}: {nb} batch(es) of {e['batches']}, loss {loss_step:.6f} (embtune {e['loss']:.6f}, "
              f"rel {el:.1e}), grad norm {gn:.5f} (rel {eg:.1e}), lr {lr_k:.3e}")
        for c, v in want.get(k + 1, []):
            ref = flat_c(P, cfg)
            if ref.numel() != v.numel():
                fails.append(f"{c}: {v.numel()} parameters, expected {ref.numel()}")
                continue
            m = ~torch.isnan(ref)
            d = float((v[m] - ref[m]).abs().max())
            worst_p = max(worst_p, d)
            print(f"  checkpoint at step {k + 1} ({os.path.basename(c)}): max abs diff {d:.2e} (tol {TOL_PARAM})")
            if d > TOL_PARAM:
                fails.append(f"checkpoint step {k + 1}: {d:.2e}")
    missing = set(want) - set(range(1, len(steps) + 1))
    if missing:
        fails.append(f"checkpoints at steps {sorted(missing)} not in the log")
    got = bert_ref.load_safetensors(os.path.join(run, "model.safetensors"))
    diff, where, kdiff = 0.0, "", 0.0
    for name, v in P.items():
        d = float((got[name].double() - v.detach()).abs().max())
        if name.endswith("attention.self.key.bias"):
            kdiff = max(kdiff, d)
        elif d > diff:
            diff, where = d, name
    worst_p = max(worst_p, diff)
    print(f"finetune_traj_ref: {len(steps)} steps ({clipped} clipped), {draw} dropout draws, loss {lcfg['kind']}"
          f"{' matryoshka ' + str(lcfg['dims']) if lcfg.get('dims') else ''}: loss rel err {worst_l:.2e} "
          f"(tol {TOL_LOSS}), grad norm rel err {worst_g:.2e} (tol {TOL_GNORM}), lr rel err {worst_lr:.1e} "
          f"(tol 1e-6); parameters max abs diff {worst_p:.2e} (final: {diff:.2e} at {where}; tol {TOL_PARAM}; "
          f"key biases, zero true gradient, not checked: {kdiff:.2e})")
    if worst_l > TOL_LOSS:
        fails.append("loss")
    if worst_g > TOL_GNORM:
        fails.append("grad norm")
    if worst_lr > 1e-6:
        fails.append("lr")
    if diff > TOL_PARAM:
        fails.append("final parameters")
    if not set(got) >= set(P):
        fails.append("tensors missing from the output")
    if opts.get("expect_clipped") and not clipped:
        fails.append("no step was clipped: the test does not exercise clipping")
    for f in fails:
        print("FAIL:", f)
    return 1 if fails else 0


if __name__ == "__main__":
    if sys.argv[1] == "data":
        data(sys.argv[2])
    else:
        sys.exit(traj(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], json.loads(sys.argv[6]), sys.argv[7:]))
