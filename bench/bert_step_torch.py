"""bert_step_torch.py - PyTorch reference for one fine-tuning step of a
bge-small-shaped BERT (random weights): forward of B queries (Tq tokens) and
B passages (Tp tokens), MNRL loss (cosine x 20, in-batch negatives), backward,
AdamW. Prints JSON: seconds per step (median of steps after warm-up) and peak
RSS. Usage: bert_step_torch.py [B Tq Tp steps torch_threads]."""
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import bert_ref  # noqa: E402

B, Tq, Tp, steps, nth = 16, 32, 128, 5, 1
args = [int(a) for a in sys.argv[1:]]
if args:
    B, Tq, Tp, steps, nth = (args + [B, Tq, Tp, steps, nth][len(args):])[:5]
torch.set_num_threads(nth)
cfg = dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=12, num_attention_heads=12,
           vocab_size=30522, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
           hidden_act="gelu")
params = bert_ref.random_params(cfg, seed=1)
for p in params.values():
    p.requires_grad_(True)
opt = torch.optim.AdamW(list(params.values()), lr=1e-5, weight_decay=0.01)
g = torch.Generator().manual_seed(2)
qids = torch.randint(1000, 30000, (B, Tq), generator=g)
pids = torch.randint(1000, 30000, (B, Tp), generator=g)
qm = torch.ones_like(qids)
pm = torch.ones_like(pids)
times = []
for s in range(steps):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=False)
    eq = bert_ref.pool(bert_ref.encode(params, cfg, qids, qm), qm, "cls")
    ep = bert_ref.pool(bert_ref.encode(params, cfg, pids, pm), pm, "cls")
    loss = F.cross_entropy(eq @ ep.T * 20.0, torch.arange(B))
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t0)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
warm = sorted(times[1:]) if len(times) > 1 else times
print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": nth, "B": B,
                  "Tq": Tq, "Tp": Tp, "step_s": warm[len(warm) // 2], "first_s": times[0],
                  "pairs_per_s": B / warm[len(warm) // 2], "peak_rss_mb": rss / 2**20}))
