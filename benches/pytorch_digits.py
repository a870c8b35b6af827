"""The same-budget PyTorch + diffusers baseline of the `mnist` example (docs/benchmarks.md,
"Model quality against PyTorch"): trains diffusers' UNet2DModel, configured and initialized
as burn-diffusion's UNetConfig::digits() by `baseline prepare`, with the same recipe on the
same split, and reports the held-out bits/dim bound as improved-diffusion computes it.

    pip install torch diffusers safetensors numpy
    cargo run --release --features diffusers --example baseline -- prepare
    python benches/pytorch_digits.py out/baseline            # writes out/baseline/torch
    cargo run --release --features diffusers --example baseline -- evaluate --model out/baseline/torch
    python benches/pytorch_digits.py out/baseline --bound-of out/baseline/ours   # after `baseline export`

Options: --init ours (the weights `mnist` starts from, default) or torch (PyTorch's own
initialization of the same architecture); --out (default: DIR/torch, or DIR/torch-init
with --init torch); --bound-of FOLDER (no training: the bound of a UNet2DModel folder,
e.g. burn-diffusion's trained model written by `baseline export`); THREADS=2 (the machine's cores, as the Rust side uses).

The recipe is read from DIR/train.json (burn-diffusion's TrainConfig) and DIR/schedule.json,
and every field that this script does not reproduce is refused: AdamW (β 0.9/0.999,
ε 1e-8, decoupled weight decay), linear warmup (rate·(s+1)/warmup) then a constant rate,
global gradient-norm clipping, ε-prediction MSE at uniform timesteps, batches drawn as
per-epoch permutations (⌊N/batch⌋ batches an epoch), an EMA with decay
min(d, (1+k)/(10+k)) at the k-th update. Only the random streams differ from the Rust side.

The bound: L_T + Σ_{t>1} KL(q(x_{t−1}|x_t,x_0) ‖ p(x_{t−1}|x_t)) + L_0 (Ho et al. 2020,
eq. 5) with σ_t² = β_t and the decoder variance β̃ of the second step (improved-diffusion's
"fixed large" choice), the discretized Gaussian decoder with improved-diffusion's tanh
approximation of Φ, one noise draw per timestep, in bits/dim; written here from the
equations, with improved-diffusion's tables in float64 cast to float32. Reported without
clipping x̂_0 (as burn-diffusion's bound) and with it (improved-diffusion's image_nll.py
default, clip_denoised=True), and once more unclipped with the exact Φ (what
burn-diffusion's decoder computes); the per-image values go to bound-bpd.npy,
bound-bpd-exact.npy and bound-bpd-clipped.npy in the model's folder (the same noise for
every model: paired).
"""
import argparse
import copy
import json
import math
import os
import resource
import time

import numpy as np
import torch
from diffusers import UNet2DModel

parser = argparse.ArgumentParser()
parser.add_argument("dir")
parser.add_argument("--init", choices=["ours", "torch"], default="ours")
parser.add_argument("--out")
parser.add_argument("--eval", type=int, default=64, help="held-out images of the bound")
parser.add_argument("--bound-of", help="skip training: the bound of this UNet2DModel folder")
args = parser.parse_args()
torch.set_num_threads(int(os.environ.get("THREADS", "2")))

recipe = json.load(open(os.path.join(args.dir, "train.json")))
schedule = json.load(open(os.path.join(args.dir, "schedule.json")))


def refuse(what, value):
    raise SystemExit(f"pytorch_digits.py does not reproduce {what} = {value!r}")


for key, expected in [
    ("lr_schedule", "Constant"),
    ("timestep_sampling", "Uniform"),
    ("p_uncond", 0.0),
    ("ema_warmup", True),
]:
    if recipe[key] != expected:
        refuse(key, recipe[key])
if schedule.get("rescale_zero_terminal_snr"):
    refuse("rescale_zero_terminal_snr", True)
beta = schedule["beta_schedule"]
if not (isinstance(beta, dict) and list(beta) == ["Linear"]):
    refuse("beta_schedule", beta)
T = schedule["num_timesteps"]
betas = np.linspace(beta["Linear"]["beta_start"], beta["Linear"]["beta_end"], T, dtype=np.float64)

seed = recipe["seed"]
torch.manual_seed(seed)
rng = np.random.default_rng(seed)
init_dir = os.path.join(args.dir, "init")
if args.init == "ours":
    model = UNet2DModel.from_pretrained(init_dir, low_cpu_mem_usage=False)
else:
    model = UNet2DModel.from_config(UNet2DModel.load_config(init_dir))
print("UNet2DModel with", sum(p.numel() for p in model.parameters()), "parameters,", args.init, "initialization")

train_x = torch.from_numpy(np.load(os.path.join(args.dir, "train-images.npy")))
held_x = torch.from_numpy(np.load(os.path.join(args.dir, "held-images.npy")))
n = train_x.shape[0]
batch, steps = recipe["batch_size"], recipe["steps"]
per_epoch = n // batch
alphas_cumprod = np.cumprod(1.0 - betas)
sqrt_ab = torch.tensor(np.sqrt(alphas_cumprod), dtype=torch.float32)
sqrt_1mab = torch.tensor(np.sqrt(1.0 - alphas_cumprod), dtype=torch.float32)


def q_sample(x0, t, noise):
    shape = (-1,) + (1,) * (x0.dim() - 1)
    return sqrt_ab[t].view(shape) * x0 + sqrt_1mab[t].view(shape) * noise


optim = torch.optim.AdamW(
    model.parameters(), lr=recipe["learning_rate"], betas=(0.9, 0.999), eps=1e-8,
    weight_decay=recipe["weight_decay"],
)
if args.bound_of:
    ema = UNet2DModel.from_pretrained(args.bound_of, low_cpu_mem_usage=False).eval().requires_grad_(False)
    steps = 0
else:
    ema = copy.deepcopy(model).eval().requires_grad_(False)
warmup, peak, clip = recipe["warmup_steps"], recipe["learning_rate"], recipe["grad_clip_norm"]
model.train()
order = None
losses = []
start = time.perf_counter()
for step in range(steps):
    epoch, k = divmod(step, per_epoch)
    if k == 0:
        order = torch.from_numpy(rng.permutation(n))
    x0 = train_x[order[k * batch:(k + 1) * batch]]
    t = torch.randint(0, T, (batch,))
    noise = torch.randn_like(x0)
    loss = torch.nn.functional.mse_loss(model(q_sample(x0, t, noise), t).sample, noise)
    optim.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    for group in optim.param_groups:
        group["lr"] = peak * (step + 1) / warmup if step < warmup else peak
    optim.step()
    decay = min(recipe["ema_decay"], (1 + step + 1) / (10 + step + 1))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(decay).add_(p, alpha=1 - decay)
    losses.append(loss.item())
    if (step + 1) % 500 == 0 or step + 1 == steps:
        print(f"step {step + 1}: mean loss {np.mean(losses[-500:]):.4f} over the last {min(500, len(losses))} steps")
seconds = time.perf_counter() - start
out = args.out or os.path.join(args.dir, "torch" if args.init == "ours" else "torch-init")
if args.bound_of:
    print("the bound of", args.bound_of)
else:
    print(f"trained {steps} steps of {batch} in {seconds:.1f} s ({steps / seconds:.1f} steps/s); peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    ema.save_pretrained(out, safe_serialization=True)
    print("wrote the EMA weights to", out)

# The bound, in float32 with float64 tables as improved-diffusion keeps them.
alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
post_var = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
tables = {
    "post_logvar": np.log(np.append(post_var[1], post_var[1:])),
    "post_c0": betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
    "post_ct": (1.0 - alphas_cumprod_prev) * np.sqrt(1.0 - betas) / (1.0 - alphas_cumprod),
    "model_logvar": np.log(np.append(post_var[1], betas[1:])),
    "recip": np.sqrt(1.0 / alphas_cumprod),
    "recipm1": np.sqrt(1.0 / alphas_cumprod - 1.0),
}
tables = {k: torch.tensor(v, dtype=torch.float32) for k, v in tables.items()}


def gaussian_kl(m1, lv1, m2, lv2):
    return 0.5 * (-1.0 + lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2))


def phi(x):  # improved-diffusion's approximation of the standard normal CDF
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def exact_phi(x):  # the standard normal CDF itself
    return torch.special.ndtr(x)


def decoder_log_likelihood(x, mean, log_scale, phi=phi):
    inv = torch.exp(-log_scale)
    upper, lower = phi(inv * (x - mean + 1 / 255)), phi(inv * (x - mean - 1 / 255))
    log_upper = torch.log(upper.clamp(min=1e-12))
    log_lower_tail = torch.log((1.0 - lower).clamp(min=1e-12))
    log_mass = torch.log((upper - lower).clamp(min=1e-12))
    return torch.where(x < -0.999, log_upper, torch.where(x > 0.999, log_lower_tail, log_mass))


def bound_bpd(x0, clip_x0, generator, cdf=phi):
    dims = list(range(1, x0.dim()))
    total = torch.zeros(x0.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for t_int in reversed(range(T)):
            t = torch.full((x0.shape[0],), t_int)
            noise = torch.randn(x0.shape, generator=generator)
            xt = q_sample(x0, t, noise)
            eps = ema(xt, t).sample
            x0_hat = tables["recip"][t_int] * xt - tables["recipm1"][t_int] * eps
            if clip_x0:
                x0_hat = x0_hat.clamp(-1, 1)
            mean = tables["post_c0"][t_int] * x0_hat + tables["post_ct"][t_int] * xt
            logvar = tables["model_logvar"][t_int]
            if t_int == 0:
                nats = -decoder_log_likelihood(x0, mean, 0.5 * logvar * torch.ones_like(x0), cdf)
            else:
                true_mean = tables["post_c0"][t_int] * x0 + tables["post_ct"][t_int] * xt
                nats = gaussian_kl(true_mean, tables["post_logvar"][t_int], mean, logvar * torch.ones_like(x0))
            total += nats.mean(dim=dims).double() / math.log(2.0)
        # L_T: KL(q(x_T | x_0) ‖ N(0, I)).
        m, lv = sqrt_ab[T - 1] * x0, torch.log(sqrt_1mab[T - 1] ** 2) * torch.ones_like(x0)
        total += gaussian_kl(m, lv, torch.zeros_like(x0), torch.zeros_like(x0)).mean(dim=dims).double() / math.log(2.0)
    return total.numpy()


model_dir = args.bound_of or out
x0 = held_x[: args.eval]
print(f"held-out negative log-likelihood bound in bits/dim ({x0.shape[0]} images, EMA weights, improved-diffusion's bound):")
variants = [
    ("x̂_0 not clipped (as burn-diffusion's bound)", False, phi, "bound-bpd.npy"),
    ("x̂_0 not clipped, exact Φ in the decoder", False, exact_phi, "bound-bpd-exact.npy"),
    ("x̂_0 clipped to [−1, 1] (image_nll.py's default)", True, phi, "bound-bpd-clipped.npy"),
]
for label, clip_x0, cdf, file in variants:
    start = time.perf_counter()
    bpd = bound_bpd(x0, clip_x0, torch.Generator().manual_seed(seed + 3), cdf)
    print(f"  {label:48} {bpd.mean():.3f} ± {bpd.std(ddof=1) / math.sqrt(len(bpd)):.3f}   ({time.perf_counter() - start:.1f} s)")
    # Per-image values: every model's bound draws the same noise (the generator's seed),
    # so two models' files give paired differences.
    np.save(os.path.join(model_dir, file), bpd)
