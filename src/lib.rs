#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

//! # burn-diffusion
//!
//! Diffusion-model primitives on [Burn](https://burn.dev): the math of Denoising
//! Diffusion Probabilistic Models (Ho et al. 2020) as small, separately usable pieces
//! that work unchanged on every Burn device (Flex, NdArray, Wgpu, ...).
//!
//! | piece | what it is |
//! |---|---|
//! | [`NoiseSchedule`], [`DiscreteSchedule`], [`ScheduleConfig`], [`BetaSchedule`], [`Spacing`] | variance schedules β_t, every derived table, respacing |
//! | [`ForwardProcess`] | q(x_t \| x_0) and q(x_t \| x_{t−1}): mean, variance, sample |
//! | [`Posterior`] | q(x_{t−1} \| x_t, x_0): μ̃_t and β̃_t |
//! | [`VpProcess`], [`VeProcess`] | the variance-preserving (DDPM) and variance-exploding (NCSN) processes |
//! | [`Prediction`] | ε, x_0 and v parameterizations and their conversions |
//! | [`normal_kl`], [`discretized_gaussian_log_likelihood`], ... | Gaussian helpers of the variational bound |
//! | [`Denoiser`], [`UNet`], [`UNetConfig`] | the model trait (any closure `Fn(x_t, t) -> output` is one) and the DDPM UNet |
//! | [`Parameterization`], [`VarianceKind`] | how a model output defines p_θ(x_{t−1} \| x_t) |
//! | [`Loss`], [`SimpleLoss`], [`VlbLoss`], [`HybridLoss`] | the training objectives; [`VlbLoss::evaluate_bound`] for bits/dim |
//! | [`TimestepSampler`], [`LossSecondMomentResampler`] | uniform and importance-sampled training timesteps |
//! | [`ReverseSampler`], [`sample`], [`Guided`] | the sampler trait, the sampling loop, classifier-free guidance |
//! | [`DdpmSampler`], [`DdimSampler`], [`DpmSolverSampler`], [`HeunSampler`], [`EulerMaruyamaSampler`], [`AnnealedLangevinSampler`] | the samplers: ancestral, implicit, multistep ODE, 2nd-order ODE, reverse SDE, NCSN |
//! | [`DiagonalGaussian`], [`Likelihood`], [`elbo`], [`importance_weighted_log_likelihood`], [`Vae`], [`VaeConfig`] | the VAE: reparameterized q_φ(z \| x), decoder likelihoods, ELBO, importance-weighted log p(x), a reference convolutional VAE (see `docs/vae.md`) |
//! | [`write_png_grid`], [`Progress`] | PNG image grids and a dependency-free progress line for examples |
//! | [`Trainer`], [`TrainConfig`], [`Ema`], [`Checkpoint`], [`clip_grad_norm`] | the training loop: AdamW, warmup, global-norm clipping, EMA, atomic checkpoints, exact resume |
//! | `DiffusionObjective`, `DiffusionBatcher`, `DiffusionBatch` (feature `train`) | the objective as a burn-train `TrainStep` / `InferenceStep` model, to train with Burn's `Learner` and its multi-device strategies (see `docs/training.md`) |
//! | [`data::ImageDataset`], [`data::Toy2d`] | MNIST / Fashion-MNIST (IDX) and digits (CSV) loaders; 2-D toy distributions |
//! | [`sliced_wasserstein`] | a distance between samples and data |
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
//! timesteps they are given; both return [`DiffusionError`] naming the bad value. (This
//! reads timesteps back from the device once per call: a small synchronization that buys
//! a clear error instead of an out-of-bounds gather.)
//!
//! ## Randomness
//!
//! Every function that draws noise has a variant that takes the noise tensor; seeded
//! variants draw from [`randn`], which gives the same numbers on every device.
//!
//! ## Example
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use burn_diffusion::{ForwardProcess, Posterior, Prediction, ScheduleConfig, VpProcess, randn};
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
mod error;
mod forward;
mod gaussian;
mod image;
mod loss;
mod metrics;
mod model;
mod noise;
mod parameterization;
mod posterior;
mod prediction;
mod process;
mod progress;
mod sampler;
mod schedule;
mod timesteps;
mod train;
mod vae;

pub use error::{DiffusionError, Result};
pub use forward::ForwardProcess;
pub use gaussian::{
    Gaussian, discretized_gaussian_log_likelihood, gaussian_log_likelihood,
    log_standard_normal_cdf, log_standard_normal_cdf_diff, normal_kl, standard_normal_cdf,
    standard_normal_log_prob,
};
pub use image::{write_png_grid, write_png_grid_scaled};
pub use loss::{
    BoundEvaluation, Decoder, HybridLoss, LN_2, Loss, LossOutput, LossSecondMomentResampler,
    SimpleLoss, TimestepSampler, UniformSampler, VbTerms, VlbLoss, Weighting, uniform_timesteps,
};
pub use metrics::sliced_wasserstein;
pub use model::{
    AttnBlock, Denoiser, Mlp, MlpConfig, ResBlock, Stage, UNet, UNetConfig, timestep_embedding,
};
pub use noise::{SeededRng, randn};
pub use parameterization::{Parameterization, ReverseStep, VarianceKind};
pub use posterior::Posterior;
pub use prediction::{Prediction, eps_from_x0, v_from_x0_eps, x0_from_eps};
pub use process::{VeConfig, VeProcess, VpProcess};
pub use progress::Progress;
pub use sampler::{
    AnnealedLangevinSampler, DdimSampler, DdpmSampler, DpmSolverSampler, DpmSolverState,
    DynamicThreshold, EulerMaruyamaSampler, Guided, HeunSampler, HeunState, ReverseSampler,
    SampleOptions, SampleOutput, StepOutput, X0Options, sample, sample_from_noise,
};
pub use schedule::{BetaSchedule, DiscreteSchedule, NoiseSchedule, ScheduleConfig, Spacing};
pub use timesteps::{Timesteps, constant_timesteps};
pub use train::{
    Checkpoint, CheckpointState, EMA_FILE, Ema, FitOptions, FitSummary, LATEST_FILE, MODEL_FILE,
    OPTIMIZER_FILE, STATE_FILE, StepStats, TrainConfig, Trainer, clip_grad_norm,
};
#[cfg(feature = "train")]
#[cfg_attr(docsrs, doc(cfg(feature = "train")))]
pub use train::{DiffusionBatch, DiffusionBatcher, DiffusionObjective};
pub use vae::{
    DiagonalGaussian, Elbo, Likelihood, Vae, VaeConfig, elbo, importance_weighted_log_likelihood,
    nll_bits_per_dim,
};
