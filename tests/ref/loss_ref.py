"""loss_ref.py OUT.safetensors - reference losses and gradients with PyTorch.

Re-implements sentence-transformers' MultipleNegativesRankingLoss,
MultipleNegativesSymmetricRankingLoss, GISTEmbedLoss and MatryoshkaLoss on
plain embedding tensors (float64, autograd) and writes, per case, the inputs,
the loss and d loss / d embedding of every column. tests/test_loss.c reads
the file and compares embtune's losses against it."""
import json
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __import__("os").path.dirname(__file__))
import st_io  # noqa: E402


def cos_sim(a, b):  # sentence_transformers.util.cos_sim
    return F.normalize(a, p=2, dim=1) @ F.normalize(b, p=2, dim=1).T


def mask_invalid(scores, valid, B, offset):
    # valid: [n_neg, B] (1 = present); candidate columns offset + k*B + j
    if valid is None:
        return scores
    m = torch.zeros_like(scores, dtype=torch.bool)
    for k in range(valid.shape[0]):
        for j in range(B):
            if not valid[k, j]:
                m[:, offset + k * B + j] = True
    return scores.masked_fill(m, float("-inf"))


def mnrl(reps, cfg, valid):
    a, B = reps[0], reps[0].shape[0]
    scores = cos_sim(a, torch.cat(reps[1:])) * cfg["scale"]
    scores = mask_invalid(scores, valid, B, B)
    return F.cross_entropy(scores, torch.arange(B))


def mnrl_sym(reps, cfg, valid):
    a, B = reps[0], reps[0].shape[0]
    scores = cos_sim(a, torch.cat(reps[1:])) * cfg["scale"]
    scores = mask_invalid(scores, valid, B, B)
    labels = torch.arange(B)
    fwd = F.cross_entropy(scores, labels)
    bwd = F.cross_entropy(scores[:, :B].transpose(0, 1), labels)
    return (fwd + bwd) / 2


def gist(reps, guides, cfg, valid):
    sim = torch.nn.CosineSimilarity(dim=-1)

    def sim_matrix(x, y):
        return sim(x.unsqueeze(1), y.unsqueeze(0))

    anchor, positive, negs = reps[0], reps[1], reps[2:]
    ga, gp, gnegs = guides[0], guides[1], guides[2:]
    B = anchor.shape[0]
    ap, aa, pp = sim_matrix(anchor, positive), sim_matrix(anchor, anchor), sim_matrix(positive, positive)
    g_ap, g_aa, g_pp = sim_matrix(ga, gp), sim_matrix(ga, ga), sim_matrix(gp, gp)
    g_sim = g_ap.diagonal().view(-1, 1)

    def mask_fn(g, s, protect=None):
        if cfg["margin_relative"]:
            m = g > (g_sim * (1 - cfg["margin"]))
        else:
            m = g > (g_sim - cfg["margin"])
        if protect is not None:
            m = m & ~protect
        return s.masked_fill(m, float("-inf"))

    eye = torch.eye(B, dtype=torch.bool)
    scores = [mask_fn(g_ap, ap, eye), mask_fn(g_aa, aa), mask_fn(g_pp, pp)]
    for k, (n, gn) in enumerate(zip(negs, gnegs)):
        s = mask_fn(sim_matrix(ga, gn), sim_matrix(anchor, n))
        if valid is not None:
            s = s.masked_fill(~valid[k].bool().view(1, -1).expand(B, B), float("-inf"))
        scores.append(s)
    scores = torch.cat(scores, dim=1) / cfg["temperature"]
    return F.cross_entropy(scores, torch.arange(B))


def loss_fn(reps, guides, cfg, valid):
    kind = cfg["kind"]

    def inner(r):
        if kind == "mnrl":
            return mnrl(r, cfg, valid)
        if kind == "mnrl-sym":
            return mnrl_sym(r, cfg, valid)
        return gist(r, guides, cfg, valid)

    if not cfg.get("dims"):
        return inner(reps)
    total = 0.0
    for d, w in zip(cfg["dims"], cfg["weights"]):  # MatryoshkaLoss: shrink = truncate + normalize
        total = total + w * inner([F.normalize(r[..., :d], p=2, dim=-1) for r in reps])
    return total


CASES = [
    dict(kind="mnrl", B=5, d=7, n_neg=0, scale=20.0),
    dict(kind="mnrl", B=6, d=9, n_neg=2, scale=20.0, invalid=[(0, 1), (1, 4), (1, 5)]),
    dict(kind="mnrl", B=70, d=33, n_neg=1, scale=20.0),
    dict(kind="mnrl-sym", B=5, d=7, n_neg=0, scale=20.0),
    dict(kind="mnrl-sym", B=40, d=16, n_neg=1, scale=10.0),
    dict(kind="gist", B=6, d=8, n_neg=1, gd=5, temperature=0.05, margin=0.0, margin_relative=0),
    dict(kind="gist", B=7, d=8, n_neg=0, gd=6, temperature=0.01, margin=0.0, margin_relative=0, noise=3.0),
    dict(kind="gist", B=6, d=8, n_neg=2, gd=5, temperature=0.05, margin=0.1, margin_relative=1,
         invalid=[(1, 2)]),
    dict(kind="gist", B=45, d=12, n_neg=1, gd=10, temperature=0.05, margin=0.05, margin_relative=0),
    dict(kind="mnrl", B=6, d=12, n_neg=1, scale=20.0, dims=[12, 6, 3], weights=[1.0, 0.5, 0.25]),
    dict(kind="mnrl-sym", B=5, d=10, n_neg=0, scale=20.0, dims=[8, 4], weights=[1.0, 1.0]),
    dict(kind="gist", B=6, d=10, n_neg=1, gd=5, temperature=0.05, margin=0.0, margin_relative=0,
         dims=[10, 5], weights=[1.0, 2.0]),
]


def main():
    out = sys.argv[1]
    torch.manual_seed(1234)
    tensors = {}
    for ci, cfg in enumerate(CASES):
        B, d, nc = cfg["B"], cfg["d"], 2 + cfg["n_neg"]
        cfg.setdefault("scale", 20.0)
        cfg.setdefault("temperature", 0.01)
        cfg.setdefault("margin", 0.0)
        cfg.setdefault("margin_relative", 0)
        # related rows so the losses are not trivially large: p = a + noise
        base = torch.randn(B, d)
        emb = [base + cfg.get("noise", 0.3) * torch.randn(B, d) for _ in range(nc)]
        emb = [e.float() for e in emb]
        guides = None
        if cfg["kind"] == "gist":
            gbase = torch.randn(B, cfg["gd"])
            guides = [(gbase + 0.8 * torch.randn(B, cfg["gd"])).float() for _ in range(nc)]
        valid = None
        if cfg["n_neg"]:
            valid = torch.ones(cfg["n_neg"], B, dtype=torch.int32)
            for k, j in cfg.get("invalid", []):
                valid[k, j] = 0
        reps = [e.double().requires_grad_() for e in emb]
        loss = loss_fn(reps, [g.double() for g in guides] if guides else None, cfg,
                       valid if cfg.get("invalid") else None)
        loss.backward()
        p = f"case{ci}."
        for c in range(nc):
            tensors[p + f"emb{c}"] = emb[c]
            tensors[p + f"grad{c}"] = reps[c].grad
            if guides:
                tensors[p + f"guide{c}"] = guides[c]
        if cfg.get("invalid"):
            tensors[p + "valid"] = valid
        tensors[p + "loss"] = loss.detach().reshape(1)
    st_io.save(out, tensors, {"cases": json.dumps(CASES)})
    print(f"loss_ref: {len(CASES)} cases -> {out}")


if __name__ == "__main__":
    main()
