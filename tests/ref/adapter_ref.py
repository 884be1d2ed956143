"""adapter_ref.py OUT_DIR - adapters trained in PyTorch, as llama-index's
LinearLayer / TwoLayerNN (add_residual) on frozen embeddings, with
sentence-transformers' MNRL (scale 20, one hard-negative column), AdamW
(lr 1e-2, wd 0.01 on weights and residual_weight, none on biases),
clip_grad_norm_(1) and the linear warm-up (1 step) / decay schedule, 4 steps.

For each case writes OUT_DIR/<case>/init/ (an adapter directory: config.json
+ adapter.safetensors, loaded by embtune) and OUT_DIR/<case>/ref.safetensors
with the batches, the first step's gradient, the losses and the parameters
after every step (flattened in embtune's order)."""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import st_io  # noqa: E402

D, H, B, STEPS = 6, 10, 5, 4


class Linear(torch.nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.linear = torch.nn.Linear(D, D, bias=bias)
        self.linear.weight.data.copy_(torch.eye(D) + 0.05 * torch.randn(D, D))
        if bias:
            self.linear.bias.data.copy_(0.05 * torch.randn(D))

    def forward(self, x):
        return self.linear(x)


class TwoLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear1 = torch.nn.Linear(D, H, bias=True)
        self.linear2 = torch.nn.Linear(H, D, bias=True)
        self.residual_weight = torch.nn.Parameter(torch.tensor([0.3]))

    def forward(self, x):
        return self.residual_weight * self.linear2(F.relu(self.linear1(x))) + x


def mnrl(a, cands, scale=20.0):
    s = F.normalize(a, dim=1) @ F.normalize(cands, dim=1).T * scale
    return F.cross_entropy(s, torch.arange(a.shape[0]))


def run_case(out_dir, name, model, kind, bias, both):
    d = os.path.join(out_dir, name, "init")
    os.makedirs(d, exist_ok=True)
    cfg = {"adapter_type": kind, "in_features": D, "out_features": D, "bias": bias,
           "apply_to": "both" if both else "query", "normalize": True}
    if kind == "mlp":
        cfg.update({"hidden_features": H, "activation_fn_str": "relu", "add_residual": True})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    st_io.save(os.path.join(d, "adapter.safetensors"), {k: v.detach() for k, v in model.state_dict().items()})
    names = [n for n, _ in model.named_parameters()]
    order = ["linear.weight", "linear.bias"] if kind == "linear" else \
        ["linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias", "residual_weight"]
    params = dict(model.named_parameters())
    order = [n for n in order if n in params]
    assert set(order) == set(names)
    decay = [params[n] for n in order if not n.endswith("bias")]
    no_decay = [params[n] for n in order if n.endswith("bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: k / 1.0 if k < 1 else max(0.0, (STEPS - k) / (STEPS - 1.0)))
    base = torch.randn(STEPS, B, D)
    q = (base + 0.5 * torch.randn(STEPS, B, D)).float()
    p = (base + 0.5 * torch.randn(STEPS, B, D)).float()
    n = torch.randn(STEPS, B, D).float()
    flat = lambda: torch.cat([params[k].detach().reshape(-1) for k in order]).clone()  # noqa: E731
    losses, traj, grad0 = [], [], None
    for s in range(STEPS):
        qa = model(q[s])
        docs = torch.cat([model(p[s]), model(n[s])]) if both else torch.cat([p[s], n[s]])
        loss = mnrl(qa, docs)
        opt.zero_grad()
        loss.backward()
        if s == 0:
            grad0 = torch.cat([params[k].grad.reshape(-1) for k in order]).clone()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss))
        traj.append(flat())
    x = torch.randn(7, D)
    with torch.no_grad():
        applied = F.normalize(model(x), dim=1)
    st_io.save(os.path.join(out_dir, name, "ref.safetensors"),
               {"q": q, "p": p, "n": n, "grad0": grad0, "losses": torch.tensor(losses, dtype=torch.float64),
                "traj": torch.stack(traj), "x": x, "applied": applied})


def main():
    out = sys.argv[1]
    torch.manual_seed(11)
    run_case(out, "linear_bias_query", Linear(True), "linear", True, False)
    run_case(out, "linear_both", Linear(False), "linear", False, True)
    run_case(out, "mlp_query", TwoLayer(), "mlp", True, False)
    run_case(out, "mlp_both", TwoLayer(), "mlp", True, True)
    print(f"adapter_ref: 4 cases -> {out}")


if __name__ == "__main__":
    main()
