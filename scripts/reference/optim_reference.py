"""Reference numbers for tests/train_optim.rs (AdamW, learning-rate schedule, clipping).

Run with a Python that has PyTorch (the project used torch 2.15.0, CPU, float32):
    python scripts/reference/optim_reference.py
and paste the printed Rust constants into tests/train_optim.rs.

Problem: W (2x3), b (2), loss = mean((tanh(x W^T + b) - y)^2) with fixed x (4x3), y (4x2).
AdamW (betas 0.9/0.999, eps 1e-8), weight decay 0.1 on W only (rank >= 2; b is not decayed),
schedule SequentialLR(LinearLR(1/warmup, 1, warmup-1), CosineAnnealingLR(total-warmup, floor))
with warmup 2, total 6, peak 0.1, floor 0.01, gradient clipping clip_grad_norm_(max_norm=0.5),
7 steps (the last one past `total`: the schedule is read from our closed form there, floor).
"""

import math
import struct

import torch

torch.set_default_dtype(torch.float32)

W0 = [[0.5, -0.3, 0.8], [-0.6, 0.2, 0.4]]
B0 = [0.1, -0.2]
X = [[1.0, 2.0, -1.0], [0.5, -1.5, 2.0], [-2.0, 0.3, 0.7], [1.2, 1.1, -0.4]]
Y = [[0.3, -0.5], [-0.8, 0.9], [0.1, 0.2], [0.7, -0.1]]
WARMUP, TOTAL, PEAK, FLOOR, MAX_NORM, STEPS = 2, 6, 0.1, 0.01, 0.5, 7


def f32_repr(v):
    """Shortest decimal that reads back as the same float32 (what clippy accepts for f32)."""
    target = struct.pack("<f", v)
    for p in range(1, 10):
        text = f"{v:.{p}g}"
        if struct.pack("<f", float(text)) == target:
            return text if any(c in text for c in ".e") else text + ".0"
    return repr(v)


def fmt(values, f32=False):
    return "[" + ", ".join(f32_repr(float(v)) if f32 else repr(float(v)) for v in values) + "]"


def main():
    w = torch.tensor(W0, requires_grad=True)
    b = torch.tensor(B0, requires_grad=True)
    x, y = torch.tensor(X), torch.tensor(Y)
    opt = torch.optim.AdamW(
        [{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}],
        lr=PEAK,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / WARMUP, end_factor=1.0, total_iters=WARMUP - 1)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=TOTAL - WARMUP, eta_min=FLOOR)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[WARMUP])
    lrs, norms, ws, bs, losses = [], [], [], [], []
    for step in range(STEPS):
        if step > TOTAL:
            raise SystemExit("STEPS too large")
        if step == TOTAL:
            # Past the schedule: our closed form holds the floor.
            for g in opt.param_groups:
                g["lr"] = FLOOR
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        loss = ((torch.tanh(x @ w.T + b) - y) ** 2).mean()
        loss.backward()
        losses.append(loss.item())
        norms.append(torch.nn.utils.clip_grad_norm_([w, b], MAX_NORM).item())
        opt.step()
        if step < TOTAL - 1:
            sched.step()
        ws.extend(w.detach().flatten().tolist())
        bs.extend(b.detach().flatten().tolist())
    # Schedule alone over a longer run (warmup 3, total 10): steps 0..=10.
    p = torch.zeros(1, requires_grad=True)
    o = torch.optim.SGD([p], lr=1.0)
    s = torch.optim.lr_scheduler.SequentialLR(
        o,
        [
            torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / 3, end_factor=1.0, total_iters=2),
            torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.1),
        ],
        milestones=[3],
    )
    sched_lrs = []
    for _ in range(11):
        sched_lrs.append(o.param_groups[0]["lr"])
        o.step()
        s.step()
    print(f"// torch {torch.__version__}")
    print(f"const LRS: [f64; {STEPS}] = {fmt(lrs)};")
    print(f"const LOSSES: [f32; {STEPS}] = {fmt(losses, True)};")
    print(f"const NORMS: [f32; {STEPS}] = {fmt(norms, True)};")
    print(f"const W_AFTER: [f32; {6 * STEPS}] = {fmt(ws, True)};")
    print(f"const B_AFTER: [f32; {2 * STEPS}] = {fmt(bs, True)};")
    print(f"const SCHED_W3_T10: [f64; 11] = {fmt(sched_lrs)};")
    assert not math.isnan(sum(losses))


if __name__ == "__main__":
    main()
