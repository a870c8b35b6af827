"""PyTorch side of the sampler-overhead bench (benches/sampler.rs, docs/benchmarks.md):
diffusers' DDPMScheduler over 1000 steps and DDIMScheduler over 50 steps (eta = 0) on a
[64, 1, 28, 28] batch with a trivial model (output = input * 0.1), so that all the time
is the scheduler's (no clipping, as X0Options::default()). Same loops as the Rust bench: `scheduler.step` called directly with
the model's output computed inline.

    pip install torch diffusers
    THREADS=1 python benches/pytorch_sampler.py
    THREADS=2 python benches/pytorch_sampler.py

Prints the median seconds per whole run over 10 timed runs (after 1 warm-up run) and the
per-step overhead in microseconds.
"""
import os
import statistics
import time

import torch
from diffusers import DDIMScheduler, DDPMScheduler

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
SHAPE = (64, 1, 28, 28)


def run(scheduler, steps):
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    for t in scheduler.timesteps:
        output = x * 0.1
        x = scheduler.step(output, t, x, generator=generator).prev_sample
    return float(x.flatten()[0])


def bench(name, scheduler, steps, runs=10):
    run(scheduler, steps)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(scheduler, steps)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(
        f"{name}: {median:.4f} s per run ({min(times):.4f} - {max(times):.4f}), "
        f"{median / steps * 1e6:.1f} us per step, threads {torch.get_num_threads()}"
    )


def bench_randn(runs=200):
    """torch.randn of one step's noise, the part of DDPMScheduler.step that draws."""
    generator = torch.Generator().manual_seed(1)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        torch.randn(SHAPE, generator=generator)
        times.append(time.perf_counter() - start)
    print(f"randn {SHAPE}: {statistics.median(times) * 1e6:.1f} us per call")


def bench_ten_ops(runs=200):
    """Ten chained elementwise ops on one batch, read once (the Rust bench's floor)."""
    x = torch.randn(SHAPE)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        y = x
        for _ in range(10):
            y = y * 0.999
        float(y.flatten()[0])
        times.append(time.perf_counter() - start)
    print(f"ten elementwise ops: {statistics.median(times) * 1e6:.1f} us")


with torch.no_grad():
    bench_randn()
    bench_ten_ops()
    bench("ddpm_1000_step", DDPMScheduler(num_train_timesteps=1000, clip_sample=False), 1000)
    bench(
        "ddim_50_step",
        DDIMScheduler(
            num_train_timesteps=1000, steps_offset=1, set_alpha_to_one=True, clip_sample=False
        ),
        50,
    )
