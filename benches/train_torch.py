"""The separator's training step in PyTorch: the yardstick of `cargo bench --bench train`.

The same network as src/model (U-Net of src/model/unet.rs, query encoder of
src/model/query.rs), built from the same JSON training config, the same batch shape (batch x
crop frames x bands, the example-query share of the batch), the same discriminative loss
(MSE of the output against the mask target, plus the query-alignment MSE), global-norm
clipping, AdamW and an EMA of the weights. Random inputs: speed does not depend on values.

    python3 benches/train_torch.py --config configs/cpu-small-disc.json --steps 12 --threads 2

Prints `params N` and `step_seconds S` (median over the steps after one warm-up step).
Benchmarks only: the product trains on candle.
"""

import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    def __init__(self, ci, co, groups, emb):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, ci, eps=1e-5)
        self.conv1 = nn.Conv2d(ci, co, 3, padding=1)
        self.film = nn.Linear(emb, 2 * co)
        self.norm2 = nn.GroupNorm(groups, co, eps=1e-5)
        self.conv2 = nn.Conv2d(co, co, 3, padding=1)
        self.skip = nn.Conv2d(ci, co, 1) if ci != co else None
        self.co = co

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        gamma, beta = self.film(emb).split(self.co, dim=1)
        h = self.norm2(h) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        h = self.conv2(F.silu(h))
        return (self.skip(x) if self.skip is not None else x) + h


class TimeAttention(nn.Module):
    def __init__(self, c, groups, heads):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-5)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        self.heads = heads

    def forward(self, x):
        b, c, f, t = x.shape
        h, dh = self.heads, c // self.heads
        qkv = self.qkv(self.norm(x)).reshape(b, 3, h, dh, f, t)
        q, k, v = (qkv[:, i].permute(0, 3, 1, 4, 2).reshape(b * f * h, t, dh) for i in range(3))
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(dh), dim=-1)
        y = (att @ v).reshape(b, f, h, t, dh).permute(0, 2, 4, 1, 3).reshape(b, c, f, t)
        return x + self.proj(y)


def sinusoidal(x, dim):
    half = dim // 2
    i = torch.arange(half, dtype=torch.float32)
    freqs = 1000.0 * torch.exp(-math.log(10000.0) * i / half)
    args = x[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class UNet(nn.Module):
    def __init__(self, u, query_dim):
        super().__init__()
        ch, g, e = u["channels"], u["groups"], u["emb_dim"]
        self.ch, self.time_dim = ch, u["time_dim"]
        self.in_conv = nn.Conv2d(3, ch[0], 3, padding=1)
        self.time1 = nn.Linear(2 * u["time_dim"], e)
        self.time2 = nn.Linear(e, e)
        self.query_proj = nn.Linear(query_dim, e)
        n = u["res_blocks"]
        self.enc = nn.ModuleList(nn.ModuleList(ResBlock(c, c, g, e) for _ in range(n)) for c in ch)
        self.dec = nn.ModuleList(
            nn.ModuleList(ResBlock(2 * c if i == 0 else c, c, g, e) for i in range(n)) for c in ch
        )
        self.down = nn.ModuleList(nn.Conv2d(ch[l], ch[l + 1], 2, stride=2) for l in range(len(ch) - 1))
        self.up = nn.ModuleList(nn.Conv2d(ch[l], ch[l - 1], 1) for l in range(1, len(ch)))
        self.mid = nn.ModuleList([ResBlock(ch[-1], ch[-1], g, e), ResBlock(ch[-1], ch[-1], g, e)])
        heads = u["attention_heads"]
        self.attn = TimeAttention(ch[-1], g, heads) if heads > 0 else None
        self.out_norm = nn.GroupNorm(g, ch[0], eps=1e-5)
        self.out_conv = nn.Conv2d(ch[0], 1, 3, padding=1)

    def forward(self, z, cond, r, t, query):
        b, _, f, tl = z.shape
        m = 1 << (len(self.ch) - 1)
        fp, tp = -(-f // m) * m, -(-tl // m) * m
        pad = lambda x: F.pad(x, (0, tp - tl, 0, fp - f))
        pos = torch.tensor([-1.0 + 2.0 * i / (f - 1) for i in range(fp)])[None, None, :, None]
        x = torch.cat([pad(z), pad(cond), pos.expand(b, 1, fp, tp)], dim=1)
        te = torch.cat([sinusoidal(t, self.time_dim), sinusoidal(t - r, self.time_dim)], dim=1)
        emb = F.silu(self.time2(F.silu(self.time1(te))) + self.query_proj(query))
        h = self.in_conv(x)
        skips = []
        for l in range(len(self.ch)):
            for blk in self.enc[l]:
                h = blk(h, emb)
            skips.append(h)
            if l + 1 < len(self.ch):
                h = self.down[l](h)
        h = self.mid[0](h, emb)
        if self.attn is not None:
            h = self.attn(h)
        h = self.mid[1](h, emb)
        for l in reversed(range(len(self.ch))):
            h = torch.cat([h, skips[l]], dim=1)
            for blk in self.dec[l]:
                h = blk(h, emb)
            if l > 0:
                h = F.interpolate(self.up[l - 1](h), scale_factor=2, mode="nearest")
        y = self.out_conv(F.silu(self.out_norm(h)))
        return y[:, :, :f, :tl]


class QueryEncoder(nn.Module):
    def __init__(self, n_labels, dim):
        super().__init__()
        self.labels = nn.Parameter(torch.randn(n_labels, dim))
        chans, cin = [16, 32, 64, 128], 1
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for c in chans:
            self.convs.append(nn.Conv2d(cin, c, 3, padding=1))
            self.norms.append(nn.GroupNorm(8, c, eps=1e-5))
            cin = c
        self.proj = nn.Linear(cin, dim)

    def label(self, ids):
        return F.normalize(self.labels[ids], dim=-1, eps=1e-6)

    def example(self, x):
        for conv, norm in zip(self.convs, self.norms):
            x = conv(x)
            x = F.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2))
            x = F.silu(norm(F.avg_pool2d(x, 2)))
        return F.normalize(self.proj(x.mean(dim=(2, 3))), dim=-1, eps=1e-6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = json.load(open(a.config))
    model = cfg["model"]
    bands = model["bands"]
    seconds = cfg.get("data", {}).get("seconds", 3.0)
    qseconds = cfg.get("data", {}).get("query_seconds", seconds)
    batch = cfg.get("batch_size", 8)
    frac = cfg.get("example_query_fraction", 0.25)
    n_ex = min(batch, round(batch * frac))
    fps = bands["rate"] / bands["hop"]
    frames = round(seconds * fps) + 1
    qframes = round(qseconds * fps) + 1
    f = bands["n_bands"]
    unet = UNet(model["unet"], model["query_dim"])
    query = QueryEncoder(model["n_labels"], model["query_dim"])
    params = list(unet.parameters()) + list(query.parameters())
    print("params", sum(p.numel() for p in params))
    opt = torch.optim.AdamW(params, lr=cfg.get("lr", 1e-3), weight_decay=cfg.get("weight_decay", 1e-2))
    ema = [p.detach().clone() for p in params]
    decay = cfg.get("ema_decay", 0.999)
    times = []
    for step in range(a.steps + 1):
        cond = torch.rand(batch, 1, f, frames)
        x = torch.rand(batch, 1, f, frames) * 2 - 1
        clips = torch.rand(n_ex, 1, f, qframes)
        labels = torch.randint(0, model["n_labels"], (batch,))
        s = time.perf_counter()
        q_lab = query.label(labels)
        if n_ex > 0:
            q_ex = query.example(clips)
            align = ((q_ex - q_lab[:n_ex].detach()) ** 2).mean()
            q = torch.cat([q_ex, q_lab[n_ex:]], dim=0)
        else:
            align, q = 0.0, q_lab
        zeros = torch.zeros(batch)
        out = unet(torch.zeros_like(x), cond, zeros, zeros, q)
        loss = ((out - x) ** 2).mean() + cfg.get("query_align_weight", 0.1) * align
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.get("grad_clip", 1.0))
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p, 1 - decay)
        if step > 0:
            times.append(time.perf_counter() - s)
    times.sort()
    print("step_seconds", times[len(times) // 2])


if __name__ == "__main__":
    main()
