"""PyTorch side of benches/ops.rs (docs/benchmarks.md, "Per op"): the same ops at the
same shapes (the reference UNet's 28×28 preset at batch 32), timed on the same machine.

    pip install torch
    THREADS=2 python benches/pytorch_ops.py

Prints the median milliseconds of 20 timed calls after 3 warm-up calls, per op.
"""
import os
import statistics
import time

import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
BATCH = 32
LEVELS = [(32, 28), (64, 14), (64, 7)]


def median_ms(fn, calls=20, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def report(name, fn):
    print(f"{name:32} {median_ms(fn):8.3f} ms")


for channels, side in LEVELS:
    x = torch.randn(BATCH, channels, side, side)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
    with torch.no_grad():
        report(f"conv3x3_fwd/{channels}x{side}", lambda: conv(x))
    x_ad = x.clone().requires_grad_(True)

    def conv_fwd_bwd():
        conv(x_ad).sum().backward()
        return x_ad.grad

    report(f"conv3x3_fwd_bwd/{channels}x{side}", conv_fwd_bwd)
    norm = torch.nn.GroupNorm(8, channels)
    with torch.no_grad():
        report(f"group_norm/{channels}x{side}", lambda: norm(x))

    def group_norm_silu_fwd_bwd():
        F.silu(norm(x_ad)).sum().backward()
        return x_ad.grad

    report(f"group_norm_silu_fwd_bwd/{channels}x{side}", group_norm_silu_fwd_bwd)

channels, side = LEVELS[0]
x = torch.randn(BATCH, channels, side, side)
y = torch.randn(BATCH, channels, side, side)
with torch.no_grad():
    report(f"silu/{channels}x{side}", lambda: F.silu(x))
x_ad = x.clone().requires_grad_(True)


def silu_fwd_bwd():
    F.silu(x_ad).sum().backward()
    return x_ad.grad


report(f"silu_fwd_bwd/{channels}x{side}", silu_fwd_bwd)
with torch.no_grad():
    report(f"add/{channels}x{side}", lambda: x + y)
    channels, side = LEVELS[1]
    a, b = torch.randn(BATCH, channels, side, side), torch.randn(BATCH, channels, side, side)
    report(f"cat_channels/2x{channels}x{side}", lambda: torch.cat([a, b], 1))
    channels, side = LEVELS[2]
    tokens = side * side
    q, k, v = (torch.randn(BATCH, tokens, channels) for _ in range(3))
    scale = channels ** -0.5
    report(f"attention/{tokens}x{channels}", lambda: torch.softmax(q @ k.transpose(1, 2) * scale, 2) @ v)

# One AdamW step over the UNet's 1,623,169 parameters as one tensor, after the backward
# of their sum (which gives the gradient).
w = torch.nn.Parameter(torch.randn(1_623_169))
adamw = torch.optim.AdamW([w], lr=1e-4)


def adamw_step():
    adamw.zero_grad(set_to_none=True)
    w.sum().backward()
    adamw.step()


report("adamw_step/1623169", adamw_step)
