"""optim_ref.py OUT.safetensors - 10 AdamW steps with PyTorch as the Hugging
Face Trainer runs them: two parameter groups (weight decay / none),
clip_grad_norm_(1.0), get_linear_schedule_with_warmup as a LambdaLR.
Writes the initial parameters, the gradients fed at each step, the decay mask,
and the parameters and learning rate after every step."""
import sys

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
import st_io  # noqa: E402

N, STEPS, WARMUP, LR, WD = 1000, 10, 3, 1e-3, 0.01


def main():
    torch.manual_seed(7)
    p0 = torch.randn(N)
    mask = torch.zeros(N, dtype=torch.int32)
    mask[:600] = 1
    grads = torch.randn(STEPS, N) * 0.02
    grads[2] *= 200.0  # clipping kicks in on these steps
    grads[5] *= 100.0
    pd = torch.nn.Parameter(p0[:600].clone())
    pn = torch.nn.Parameter(p0[600:].clone())
    opt = torch.optim.AdamW([{"params": [pd], "weight_decay": WD}, {"params": [pn], "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.999), eps=1e-8)

    def lam(step):
        if step < WARMUP:
            return float(step) / float(max(1, WARMUP))
        return max(0.0, float(STEPS - step) / float(max(1, STEPS - WARMUP)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    traj, lrs, norms = [], [], []
    for s in range(STEPS):
        pd.grad = grads[s, :600].clone()
        pn.grad = grads[s, 600:].clone()
        norms.append(float(torch.nn.utils.clip_grad_norm_([pd, pn], 1.0)))
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        traj.append(torch.cat([pd.detach(), pn.detach()]).clone())
    st_io.save(sys.argv[1], {"params0": p0, "mask": mask, "grads": grads, "traj": torch.stack(traj),
                             "lrs": torch.tensor(lrs, dtype=torch.float64),
                             "norms": torch.tensor(norms, dtype=torch.float64)})
    print(f"optim_ref: {STEPS} steps -> {sys.argv[1]}")


if __name__ == "__main__":
    main()
