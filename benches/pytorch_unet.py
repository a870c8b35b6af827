"""PyTorch side of docs/benchmarks.md: diffusers' UNet2DModel configured to the same
architecture as burn-diffusion's UNetConfig::mnist() (same parameter count), timed on the
same machine: a forward pass and a training step (forward + backward + AdamW) at batch 32.

    python benches/pytorch_unet.py          # needs: pip install torch diffusers

Prints the parameter count, median ms per call over 10 timed calls (after 2 warm-up
calls) and the growth of the process's peak RSS during the first call of each.
"""
import resource
import statistics
import time

import torch
from diffusers import UNet2DModel

torch.manual_seed(0)
torch.set_num_threads(int(__import__("os").environ.get("THREADS", "2")))
BATCH, STEPS = 32, 1000

model = UNet2DModel(
    sample_size=28,
    in_channels=1,
    out_channels=1,
    layers_per_block=2,
    block_out_channels=(32, 64, 64),
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
    attention_head_dim=64,  # one head, as in DDPM
    dropout=0.1,
)
print("parameters", sum(p.numel() for p in model.parameters()))

x = torch.randn(BATCH, 1, 28, 28)
t = torch.randint(0, STEPS, (BATCH,))
noise = torch.randn(BATCH, 1, 28, 28)
optim = torch.optim.AdamW(model.parameters(), lr=1e-4)


def forward():
    with torch.no_grad():
        return model(x, t).sample


def train_step():
    out = model(x, t).sample
    loss = torch.nn.functional.mse_loss(out, noise)
    optim.zero_grad()
    loss.backward()
    optim.step()
    return loss.item()


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


for name, fn, train in [("forward", forward, False), ("train_step", train_step, True)]:
    model.train(train)
    before = rss_mib()
    fn()
    grown = rss_mib() - before
    fn()
    times = []
    for _ in range(10):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    print(f"{name}: median {statistics.median(times):.1f} ms (min {min(times):.1f}), peak RSS growth {grown:.1f} MiB")
