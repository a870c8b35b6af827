//! How a model's raw output parameterizes the reverse step p_θ(x_{t−1} | x_t).

use burn::config::Config;
use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::gaussian::Gaussian;
use crate::prediction::Prediction;
use crate::process::Posterior;
use crate::schedule::{TimestepInput, Timesteps};

/// The reverse-process variance Σ_θ(x_t, t) = σ_t² I.
///
/// With d_t² the forward transition variance (β_t for DDPM):
///
/// | variant | log σ_t² | source |
/// |---|---|---|
/// | `FixedSmall` | log β̃_t (clipped at t = 0) | Ho et al. 2020 §3.2, σ² = β̃; improved-diffusion `FIXED_SMALL` |
/// | `FixedLarge` | log β_t, with β̃_1 at t = 0 | Ho et al. §3.2, σ² = β; improved-diffusion `FIXED_LARGE` |
/// | `LearnedRange` | u·log β_t + (1 − u)·log β̃_t, u = (v + 1)/2 | Nichol & Dhariwal 2021, eq. 15 |
///
/// For `LearnedRange` the model outputs twice the channels of x_t: the first half is the
/// mean part (ε, x_0 or v), the second half is v, expected in [−1, 1].
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum VarianceKind {
    /// σ_t² = β̃_t, the posterior variance (a lower bound on the optimal variance).
    FixedSmall,
    /// σ_t² = β_t (an upper bound), with β̃_1 at t = 0 so that the decoder stays sharp.
    FixedLarge,
    /// A per-dimension interpolation between log β̃_t and log β_t, output by the model.
    LearnedRange,
}

/// What a model's raw output means: which quantity it predicts and how the reverse
/// variance is chosen. Together with a [`Posterior`] it defines
/// p_θ(x_{t−1} | x_t) = N(μ̃_t(x_t, x̂_0), σ_t² I) (Ho et al. 2020, eq. 1 and 11).
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub struct Parameterization {
    /// What the (first half of the) output predicts.
    #[config(default = "Prediction::Epsilon")]
    pub prediction: Prediction,
    /// How σ_t² is chosen.
    #[config(default = "VarianceKind::FixedSmall")]
    pub variance: VarianceKind,
}

/// The model's reverse step at (x_t, t): the Gaussian p_θ(x_{t−1} | x_t) and the x_0 and ε
/// that the model's output implies.
#[derive(Debug, Clone)]
pub struct ReverseStep<const D: usize> {
    /// p_θ(x_{t−1} | x_t): mean μ_θ, variance and log-variance σ_t² (broadcastable).
    pub distribution: Gaussian<D>,
    /// x̂_0 implied by the output.
    pub x0: Tensor<D>,
    /// ε̂ implied by the output.
    pub eps: Tensor<D>,
}

impl Parameterization {
    /// Number of output channels for `channels` input channels (doubled for a learned
    /// variance).
    pub fn output_channels(&self, channels: usize) -> usize {
        match self.variance {
            VarianceKind::LearnedRange => 2 * channels,
            _ => channels,
        }
    }

    /// Splits a raw output into its mean part and, for `LearnedRange`, the variance part.
    ///
    /// # Errors
    /// [`DiffusionError::ShapeMismatch`] if the output's channel count (dimension 1) is not
    /// what [`Parameterization::output_channels`] gives for `x_t`;
    /// [`DiffusionError::InvalidInput`] for a learned variance on rank-1 data.
    pub fn split<const D: usize>(
        &self,
        output: Tensor<D>,
        x_t: &Tensor<D>,
    ) -> error::Result<(Tensor<D>, Option<Tensor<D>>)> {
        let (want, got) = (x_t.dims(), output.dims());
        if D < 2 && self.variance == VarianceKind::LearnedRange {
            return Err(DiffusionError::input(
                "x_t",
                &want,
                "a learned variance doubles dimension 1 (channels), which rank-1 data lacks: \
                 use data of shape [N, C, ...]",
            ));
        }
        let mut expected = want;
        if D >= 2 {
            expected[1] = self.output_channels(want[1]);
        }
        if got != expected {
            return Err(DiffusionError::ShapeMismatch {
                what: "model output (dimension 1 doubles for a learned variance)",
                expected: expected.to_vec(),
                got: got.to_vec(),
            });
        }
        Ok(match self.variance {
            VarianceKind::LearnedRange => {
                let c = want[1];
                let mean = output.clone().narrow(1, 0, c);
                (mean, Some(output.narrow(1, c, c)))
            }
            _ => (output, None),
        })
    }

    /// p_θ(x_{t−1} | x_t) from the model's raw `output` at `(x_t, t)`: x̂_0 from the output
    /// ([`Prediction::to_x0_eps`]), mean μ̃_t(x_t, x̂_0) (eq. 7 and 11), variance per
    /// [`VarianceKind`].
    ///
    /// # Shapes
    /// - `output`: `[N, C', ...]` with `C' = output_channels(C)`; `x_t`: `[N, C, ...]`; `t`: `[N]`
    /// - distribution mean, `x0`, `eps`: `[N, C, ...]`; variance `[N, 1, ...]` (fixed) or
    ///   `[N, C, ...]` (learned)
    ///
    /// # Errors
    /// A timestep outside `0..T`, or shapes that do not match.
    pub fn reverse_step<P: Posterior + ?Sized, const D: usize>(
        &self,
        process: &P,
        output: Tensor<D>,
        x_t: Tensor<D>,
        t: &impl TimestepInput,
    ) -> error::Result<ReverseStep<D>> {
        let (mean_part, var_part) = self.split(output, &x_t)?;
        let ts = t.host(process.num_timesteps())?;
        let ts: &Timesteps = &ts;
        let (x0, eps) = self
            .prediction
            .to_x0_eps(process, x_t.clone(), ts, mean_part)?;
        let posterior = process.q_posterior(x0.clone(), x_t.clone(), ts)?;
        let (variance, log_variance) = self.variance(process, &x_t, ts, var_part)?;
        Ok(ReverseStep {
            distribution: Gaussian {
                mean: posterior.mean,
                variance,
                log_variance,
            },
            x0,
            eps,
        })
    }

    /// (σ_t², log σ_t²) of p_θ(x_{t−1} | x_t) for this variance kind; `var_part` is the
    /// second half of the model's output for `LearnedRange` (ignored otherwise).
    ///
    /// # Shapes
    /// - `like`: `[N, ...]`, `t`: `[N]`; outputs `[N, 1, ...]` (fixed) or the shape of
    ///   `var_part` (learned)
    ///
    /// # Errors
    /// A timestep outside `0..T`, or a batch-size mismatch.
    pub fn variance<P: Posterior + ?Sized, const D: usize>(
        &self,
        process: &P,
        like: &Tensor<D>,
        t: &impl TimestepInput,
        var_part: Option<Tensor<D>>,
    ) -> error::Result<(Tensor<D>, Tensor<D>)> {
        let ts = t.host(process.num_timesteps())?;
        let small = process.posterior_log_variance_clipped();
        let log_variance = match var_part {
            Some(v) => {
                let frac = (v + 1.0) * 0.5;
                let max_log = ts.gather_map(|t| log_transition_variance(process, t), like)?;
                let min_log = ts.gather(small, like)?;
                frac.clone() * max_log + (frac.neg() + 1.0) * min_log
            }
            None if self.variance == VarianceKind::FixedLarge => {
                ts.gather_map(|t| large_log_variance(process, t), like)?
            }
            None => ts.gather(small, like)?,
        };
        Ok((log_variance.clone().exp(), log_variance))
    }
}

/// log d_t² (log β_t for DDPM): the upper end of the learned range. Computed for the
/// batch's timesteps only, so no T-long table is built per call.
fn log_transition_variance<P: Posterior + ?Sized>(process: &P, t: usize) -> f64 {
    process.transition_variance()[t].ln()
}

/// log σ_t² of `FixedLarge`: log β_t, with log β̃_1 at t = 0 (improved-diffusion's
/// `np.append(posterior_variance[1], betas[1:])`); log β_0 for a one-step process.
fn large_log_variance<P: Posterior + ?Sized>(process: &P, t: usize) -> f64 {
    if t == 0 && process.num_timesteps() > 1 {
        process.posterior_variance()[1].ln()
    } else {
        log_transition_variance(process, t)
    }
}
