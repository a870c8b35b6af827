"""PyTorch peer of `examples/quickstart.rs` (docs/benchmarks.md, "The quickstart"): the
same recipe timed on the same machine. A timing peer: the same network, optimizer,
schedule and sampling loops, written in plain PyTorch (with diffusers' schedulers for
DDPM and DDIM); its data generator and initial weights are PyTorch's, so its samples
are not the quickstart's.

    pip install torch diffusers
    THREADS=2 python benches/pytorch_quickstart.py

The recipe (the quickstart's defaults): two moons, 20,000 training points; an MLP on x_t
and 16 sinusoidal features per coordinate (scale 25) plus a 32-wide sinusoidal timestep
embedding, three hidden layers of 128 with SiLU; ε-MSE over T = 1000 linear-β steps;
AdamW (lr 2·10⁻³, no weight decay), 1,000 warmup steps then a cosine to 0, global
gradient-norm clipping at 1, EMA 0.999 with DDPM's warmup; 20,000 steps of 256; then
2,000 samples with the EMA weights by DDPM (1,000 steps) and DDIM (50 steps, η = 0).
Prints the time of each phase and the wall time.
"""
import math
import os
import time

import torch
from diffusers import DDIMScheduler, DDPMScheduler

WALL = time.perf_counter()
torch.manual_seed(0)
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
T, STEPS, BATCH, LR, WARMUP, EMA = 1000, 20_000, 256, 2e-3, 1_000, 0.999
FEATURES, SCALE, TIME_EMB, HIDDEN, SAMPLES = 16, 25.0, 32, 128, 2000


def two_moons(n, noise=0.05):
    a = torch.rand(n) * math.pi
    upper = torch.rand(n) < 0.5
    x = torch.where(upper, torch.cos(a), 1.0 - torch.cos(a))
    y = torch.where(upper, torch.sin(a), 0.5 - torch.sin(a))
    return torch.stack([x, y], 1) + noise * torch.randn(n, 2)


def sinusoidal(v, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1))
    args = v[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], 1)


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        inputs = 2 * (1 + FEATURES) + TIME_EMB
        self.hidden = torch.nn.ModuleList(
            [torch.nn.Linear(inputs, HIDDEN)] + [torch.nn.Linear(HIDDEN, HIDDEN) for _ in range(2)]
        )
        self.out = torch.nn.Linear(HIDDEN, 2)

    def forward(self, x, t):
        parts = [x] + [sinusoidal(x[:, j] * SCALE, FEATURES) for j in range(2)]
        h = torch.cat(parts + [sinusoidal(t.float(), TIME_EMB)], 1)
        for layer in self.hidden:
            h = torch.nn.functional.silu(layer(h))
        return self.out(h)


data = two_moons(20_000)
betas = torch.linspace(1e-4, 0.02, T)
alpha_bar = torch.cumprod(1.0 - betas, 0)
model = Mlp()
ema = Mlp()
ema.load_state_dict(model.state_dict())
opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)


def lr_at(step):
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, STEPS - WARMUP)
    return LR * 0.5 * (1.0 + math.cos(math.pi * progress))


start = time.perf_counter()
for step in range(STEPS):
    x0 = data[torch.randint(0, data.shape[0], (BATCH,))]
    t = torch.randint(0, T, (BATCH,))
    eps = torch.randn_like(x0)
    ab = alpha_bar[t][:, None]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    loss = torch.nn.functional.mse_loss(model(x_t, t), eps)
    for group in opt.param_groups:
        group["lr"] = lr_at(step)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    decay = min(EMA, (1 + step) / (10 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(decay).add_(p, alpha=1 - decay)
train_s = time.perf_counter() - start
print(f"trained {STEPS} steps of {BATCH} in {train_s:.1f} s, last loss {loss.item():.4f}")


@torch.no_grad()
def sample(scheduler, steps):
    scheduler.set_timesteps(steps)
    x = torch.randn(SAMPLES, 2)
    start = time.perf_counter()
    for t in scheduler.timesteps:
        eps = ema(x, torch.full((SAMPLES,), int(t)))
        x = scheduler.step(eps, t, x).prev_sample
    return time.perf_counter() - start


ddpm_s = sample(DDPMScheduler(num_train_timesteps=T, clip_sample=False), T)
ddim_s = sample(DDIMScheduler(num_train_timesteps=T, clip_sample=False), 50)
print(f"DDPM {T} steps in {ddpm_s:.2f} s, DDIM 50 steps in {ddim_s:.3f} s")
print(f"wall {time.perf_counter() - WALL:.1f} s (imports and setup included)")
