"""bert_step_torch.py - PyTorch reference for one fine-tuning step of a
bge-small-shaped BERT (random weights): forward of B queries (Tq tokens) and
B passages (Tp tokens), MNRL loss (cosine x 20, in-batch negatives), backward,
AdamW. Prints JSON: seconds per step (median of steps after warm-up), CPU
seconds per step, and peak RSS.
Usage: bert_step_torch.py [B Tq Tp steps torch_threads dropout [MODEL_DIR [fp32|bf16]]]
(dropout: 0 = off; > 0 = F.dropout at the Hugging Face sites, training mode).
With MODEL_DIR: its config and model.safetensors weights, and the token ids of
bench/bench_bert_step.c (same LCG), so both runs start from the same weights
and data and their per-step losses ("losses") compare; bf16 = the forward under
torch.autocast("cpu", dtype=torch.bfloat16), fp32 master weights."""
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import bert_ref  # noqa: E402

B, Tq, Tp, steps, nth, p_drop = 16, 32, 128, 5, 1, 0.0
args = sys.argv[1:]
defaults = [B, Tq, Tp, steps, nth, p_drop]
B, Tq, Tp, steps, nth = [int(a) for a in (args + [str(d) for d in defaults[len(args):]])[:5]]
p_drop = float(args[5]) if len(args) > 5 else 0.0
drop = (lambda x, site, layer: F.dropout(x, p_drop, training=True)) if p_drop > 0 else None
torch.set_num_threads(nth)
mdir = args[6] if len(args) > 6 else None
prec = args[7] if len(args) > 7 else "fp32"
cfg = dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=12, num_attention_heads=12,
           vocab_size=30522, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
           hidden_act="gelu")
params = bert_ref.random_params(cfg, seed=1) if not mdir else None
if mdir:
    import json as _json
    cfg = _json.load(open(os.path.join(mdir, "config.json")))
    params = {k: v.float() for k, v in bert_ref.load_safetensors(os.path.join(mdir, "model.safetensors")).items()}
for p in params.values():
    p.requires_grad_(True)
opt = torch.optim.AdamW(list(params.values()), lr=1e-5, weight_decay=0.01)
g = torch.Generator().manual_seed(2)
qids = torch.randint(1000, 30000, (B, Tq), generator=g)
pids = torch.randint(1000, 30000, (B, Tp), generator=g)
if mdir:  # the ids of bench_bert_step.c
    r, M64, flat = 2, (1 << 64) - 1, []
    for _ in range(B * Tq + B * Tp):
        r = (r * 6364136223846793005 + 1) & M64
        flat.append(1000 + (r >> 33) % 28000)
    qids = torch.tensor(flat[:B * Tq]).view(B, Tq)
    pids = torch.tensor(flat[B * Tq:]).view(B, Tp)
qm = torch.ones_like(qids)
pm = torch.ones_like(pids)
times, cpus, losses = [], [], []
ac = torch.autocast("cpu", dtype=torch.bfloat16, enabled=(prec == "bf16"))
for s in range(steps):
    t0, c0 = time.perf_counter(), time.process_time()
    opt.zero_grad(set_to_none=False)
    with ac:
        hq = bert_ref.encode(params, cfg, qids, qm, drop=drop)
        hp = bert_ref.encode(params, cfg, pids, pm, drop=drop)
    eq = bert_ref.pool(hq.float(), qm, "cls")
    ep = bert_ref.pool(hp.float(), pm, "cls")
    loss = F.cross_entropy(eq @ ep.T * 20.0, torch.arange(B))
    losses.append(loss.item())
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
warm = sorted(times[1:]) if len(times) > 1 else times
print(json.dumps({"impl": "pytorch-" + prec, "losses": losses, "torch": torch.__version__, "threads": nth, "dropout": p_drop, "B": B,
                  "Tq": Tq, "Tp": Tp, "step_s": warm[len(warm) // 2], "cpu_s": sorted(cpus[1:] or cpus)[len(warm) // 2], "first_s": times[0],
                  "pairs_per_s": B / warm[len(warm) // 2], "peak_rss_mb": rss / 2**20}))
