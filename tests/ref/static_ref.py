"""static_ref.py OUT.safetensors - a static (model2vec-style) embedding table
trained 3 steps with MNRL + AdamW in PyTorch: mean of the rows of the ids
(UNK id 1 dropped) then F.normalize, sentence-transformers' MNRL (scale 20,
one hard-negative column), clip_grad_norm_(1), AdamW(lr 1e-2, wd 0.01) with
the linear warm-up/decay schedule (warm-up 1 of 3 steps). Writes the table,
the id sequences, the first step's table gradient, the losses, and the table
after each step."""
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __import__("os").path.dirname(__file__))
import st_io  # noqa: E402

V, D, B, STEPS, UNK = 40, 8, 4, 3, 1


def embed(table, seqs):
    rows = []
    for s in seqs:
        kept = [i for i in s if i != UNK]
        if kept:
            rows.append(table[torch.tensor(kept)].mean(0))
        else:
            rows.append(torch.zeros(D, dtype=table.dtype))
    return F.normalize(torch.stack(rows), p=2, dim=1)


def mnrl(a, cands, scale=20.0):
    scores = F.normalize(a, dim=1) @ F.normalize(cands, dim=1).T * scale
    return F.cross_entropy(scores, torch.arange(a.shape[0]))


def main():
    g = torch.Generator().manual_seed(3)
    table0 = torch.randn(V, D, generator=g)
    # STEPS batches x 3 columns x B sequences of 1..6 ids (some with UNK, one all-UNK)
    seqs = []
    for s in range(STEPS):
        for c in range(3):
            for b in range(B):
                n = int(torch.randint(1, 7, (1,), generator=g))
                ids = torch.randint(0, V, (n,), generator=g).tolist()
                seqs.append(ids)
    seqs[5] = [UNK, UNK]          # an empty bag
    seqs[2] = seqs[2] + [UNK]
    table = torch.nn.Parameter(table0.clone())
    opt = torch.optim.AdamW([table], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    lam = lambda k: k / 1.0 if k < 1 else max(0.0, (STEPS - k) / float(STEPS - 1))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    losses, traj, grad0 = [], [], None
    for s in range(STEPS):
        cols = [embed(table, seqs[(s * 3 + c) * B:(s * 3 + c + 1) * B]) for c in range(3)]
        loss = mnrl(cols[0], torch.cat(cols[1:]))
        opt.zero_grad()
        loss.backward()
        if s == 0:
            grad0 = table.grad.detach().clone()
        torch.nn.utils.clip_grad_norm_([table], 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss))
        traj.append(table.detach().clone())
    flat = [i for s in seqs for i in s]
    lens = [len(s) for s in seqs]
    st_io.save(sys.argv[1], {"table0": table0, "ids": torch.tensor(flat, dtype=torch.int32),
                             "lens": torch.tensor(lens, dtype=torch.int32), "grad0": grad0,
                             "losses": torch.tensor(losses, dtype=torch.float64), "traj": torch.stack(traj)})
    print(f"static_ref: {STEPS} steps -> {sys.argv[1]}")


if __name__ == "__main__":
    main()
