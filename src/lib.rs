#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

//! # burn-diffusion
//!
//! Diffusion-model primitives on [Burn](https://burn.dev): the math of Denoising
//! Diffusion Probabilistic Models (Ho et al. 2020) as small, separately usable pieces
//! that work unchanged on every Burn device (Flex, NdArray, Wgpu, ...).
//!
//! ## Modules
//!
//! | module | what it is |
//! |---|---|
//! | [`schedule`] | variance schedules β_t ([`NoiseSchedule`], [`schedule::ScheduleConfig`], [`schedule::BetaSchedule`]), every derived table, respacing ([`schedule::Spacing`]), per-example [`schedule::Timesteps`] |
//! | [`process`] | q(x_t \| x_0) and q(x_t \| x_{t−1}) ([`ForwardProcess`]), q(x_{t−1} \| x_t, x_0) ([`Posterior`]); the variance-preserving (DDPM) and variance-exploding (NCSN) processes |
//! | [`prediction`] | ε, x_0 and v targets and their conversions; how a model output parameterizes p_θ(x_{t−1} \| x_t) |
//! | [`gaussian`] | KL between diagonal Gaussians, the discretized Gaussian decoder likelihood, standard normal log-CDF |
//! | [`noise`] | seeded Gaussian noise that gives the same numbers on every device |
//! | [`model`] | the [`Denoiser`] trait (any closure `Fn(x_t, t) -> output` is one), the DDPM UNet, an MLP |
//! | [`loss`] | the training objectives ([`Loss`]): simplified ε / x_0 / v MSE, the full variational bound, the hybrid; bound evaluation in bits/dim; training-timestep distributions |
//! | [`sampler`] | the [`ReverseSampler`] trait, the sampling loop, classifier-free guidance; DDPM, DDIM, DPM-Solver++(2M), Heun, Euler–Maruyama, annealed Langevin |
//! | [`train`] | the training loop (AdamW, warmup, global-norm clipping, EMA, atomic checkpoints, exact resume); with feature `train`, the objective as a burn-train model for Burn's `Learner` |
//! | [`vae`] | the VAE: reparameterized q_φ(z \| x), decoder likelihoods, ELBO, importance-weighted log p(x), a reference convolutional VAE |
//! | [`data`], [`image`], [`metrics`] | dataset loaders and 2-D toys, PNG image grids, distances between samples and data |
//! | `diffusers` | (feature `diffusers`) diffusers' `UNet2DModel` folders, scheduler configs and pipeline folders, read and written exactly |
//! | [`progress`] | progress callbacks and (feature `progress`) a console bar |
//! | [`host`] | the one place that reads tensors back from the device, and a read counter |
//! | [`guides`] | the guides of `docs/`: the math mapped to functions, training, the VAE, benchmarks |
//!
//! The root holds the six traits of the design — [`NoiseSchedule`], [`ForwardProcess`],
//! [`Posterior`], [`Denoiser`], [`Loss`], [`ReverseSampler`] — and the error type; the
//! [`prelude`] brings them and the types of the common path into scope.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `flex` | yes | Burn's Flex CPU backend (`Device::flex()`), threaded and vectorized |
//! | `progress` | yes | [`progress::ConsoleProgress`], a console bar drawn with indicatif |
//! | `ndarray`, `cpu` | no | Burn's NdArray and CubeCL CPU backends |
//! | `wgpu`, `vulkan`, `metal`, `cuda`, `rocm`, `tch` | no | Burn's GPU backends and LibTorch |
//! | `train` | no | burn-train integration (`train::DiffusionObjective` for Burn's `Learner`) |
//! | `diffusers` | no | the `diffusers` module: pretrained `UNet2DModel` weights (safetensors, through burn-store) and configs, schedulers, pipelines |
//!
//! The library compiles with no backend feature at all: a user may enable the backend
//! through their own `burn` dependency instead.
//!
//! ## Notation
//!
//! | symbol | code | meaning |
//! |---|---|---|
//! | T | `num_timesteps()` | number of diffusion steps |
//! | β_t | `betas()[t]` | variance of the forward step q(x_t \| x_{t−1}) |
//! | α_t = 1 − β_t | `alphas()[t]` | |
//! | ᾱ_t = ∏_{s≤t} α_s | `alphas_cumprod()[t]` | q(x_t \| x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) |
//! | μ̃_t, β̃_t | `q_posterior(..).mean`, `posterior_variance()[t]` | q(x_{t−1} \| x_t, x_0) |
//! | x_0, x_t, ε, v | `x0`, `x_t`, `eps`, `v` | data, noisy sample, noise, velocity |
//!
//! ## Timestep convention
//!
//! Timesteps are **0-based**: index `t` in `0..T` is the paper's step `t + 1`, so
//! `alphas_cumprod[t] = ∏_{s ≤ t} (1 − betas[s])`. This is the convention of diffusers and
//! improved-diffusion, so their numbers compare one to one. A batch carries one timestep
//! per example: a `Tensor<1, Int>` of shape `[N]` next to data of shape `[N, ...]`.
//!
//! Schedules are computed and stored in `f64` on the host; each coefficient is gathered at
//! the batch's timesteps in `f64` and rounded once to the tensor's float type.
//!
//! ## Errors, never panics
//!
//! Configuration is validated at construction and tensor functions check the shapes and
//! timesteps they are given; both return [`DiffusionError`] naming the bad value.
//!
//! ## Host and device
//!
//! Timesteps that the host knows stay on the host: every function that takes timesteps
//! takes `t: &impl` [`TimestepInput`], either host [`schedule::Timesteps`] (no device read)
//! or a `Tensor<1, Int>`, which is read back once per call, at the edge, to check it and
//! gather the schedule's `f64` tables. The samplers and the seeded losses pass host
//! timesteps, so a sampling step reads nothing back from the device. Every read goes
//! through [`host`], which counts them ([`host::device_reads`]).
//!
//! [`TimestepInput`]: schedule::TimestepInput
//!
//! ## Randomness
//!
//! Every function that draws noise has a variant that takes the noise tensor; seeded
//! variants draw from [`noise::randn`], which gives the same numbers on every device.
//!
//! ## Example
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use burn_diffusion::prelude::*;
//!
//! let device = Device::flex();
//! let process = VpProcess::new(ScheduleConfig::new().init()?);
//! let x0 = randn::<4>([2, 1, 8, 8], 0, &device);
//! let eps = randn::<4>([2, 1, 8, 8], 1, &device);
//! let t = Tensor::<1, Int>::from_ints([10, 900], &device);
//!
//! let x_t = process.q_sample(x0.clone(), &t, eps.clone())?;        // eq. 4
//! let (x0_hat, _) = Prediction::Epsilon.to_x0_eps(&process, x_t.clone(), &t, eps)?;
//! let posterior = process.q_posterior(x0_hat, x_t, &t)?;           // eq. 6–7
//! assert_eq!(posterior.mean.dims(), [2, 1, 8, 8]);
//! # Ok::<(), burn_diffusion::DiffusionError>(())
//! ```

pub mod data;
#[cfg(feature = "diffusers")]
#[cfg_attr(docsrs, doc(cfg(feature = "diffusers")))]
pub mod diffusers;
mod error;
mod files;
pub mod fused;
pub mod gaussian;
pub mod guides;
pub mod host;
pub mod image;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod noise;
pub mod prediction;
pub mod prelude;
pub mod process;
pub mod progress;
pub mod sampler;
pub mod schedule;
mod size;
pub mod train;
pub mod tuning;
pub mod vae;

pub use error::{DiffusionError, Result};

/// The README's code blocks run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use loss::Loss;
pub use model::Denoiser;
pub use process::{ForwardProcess, Posterior};
pub use sampler::ReverseSampler;
pub use schedule::NoiseSchedule;
