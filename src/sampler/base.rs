//! The `ReverseSampler` trait and the x̂_0 post-processing shared by the samplers.

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::prediction::Prediction;
use crate::process::ForwardProcess;
use crate::sampler::Visits;
use crate::schedule::{TimestepInput, Timesteps, check_same_shape};

/// The result of one reverse step.
#[derive(Debug, Clone)]
pub struct StepOutput<const D: usize> {
    /// The sample at the next visited timestep (x_{t−1} for DDPM, x_{t'} for DDIM).
    pub x_prev: Tensor<D>,
    /// The x̂_0 the step used (after clipping or thresholding).
    pub x0: Tensor<D>,
}

/// A reverse-process sampler: the timesteps it visits and one step between them.
///
/// A sampler holds no per-batch state: methods that need memory across steps (multistep
/// solvers) keep it in an explicit [`ReverseSampler::State`], so one sampler serves any
/// batch in any thread. [`crate::sampler::sample`] runs the whole chain.
///
/// To write one: keep a validated [`Visits`] (it checks the grid and maps visits to
/// timesteps), return it from [`ReverseSampler::visits`], and write the step's math.
pub trait ReverseSampler<const D: usize> {
    /// State carried from one step to the next (`()` for one-step methods).
    type State: Default;

    /// The visited timesteps and the model timestep of each visit.
    fn visits(&self) -> &Visits;

    /// The process timesteps visited, in visiting order (non-increasing, except for an
    /// inversion such as [`crate::sampler::DdimInverseSampler`], which increases).
    fn timesteps(&self) -> &[usize] {
        self.visits().timesteps()
    }

    /// The training timestep to call the model with at visit `i` (for
    /// `i < timesteps().len()`, as [`crate::sampler::sample`] calls it).
    fn model_timestep(&self, i: usize) -> usize {
        self.visits().model_timestep(i)
    }

    /// The fractional training timestep to call the model with at visit `i`, for samplers
    /// whose levels fall between training timesteps and that were asked to call the model
    /// there ([`crate::sampler::ModelTime::Fractional`]); `None` (the default) calls it at
    /// [`ReverseSampler::model_timestep`].
    fn fractional_model_time(&self, i: usize) -> Option<f64> {
        let _ = i;
        None
    }

    /// The scales (a, s) of q(x_t | x_0) = N(a·x_0, s²·I) at visit `i`, where the sampler
    /// can start from a noised image ([`crate::sampler::Img2Img`]); `None` (the default)
    /// for a sampler that cannot.
    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        let _ = i;
        None
    }

    /// Model calls per step: 2 for Heun's predictor–corrector samplers, 1 otherwise
    /// (diffusers' `scheduler.order`). Visit `k·calls_per_step()` starts step k.
    fn calls_per_step(&self) -> usize {
        1
    }

    /// Whether step `i` draws noise (so that the driver draws it only when needed).
    fn needs_noise(&self, i: usize) -> bool;

    /// One step from visit `i` (sample `x_t` at `timesteps()[i]`) to the next, given the
    /// model's output at `x_t` and, when [`ReverseSampler::needs_noise`], standard normal
    /// `noise` of `x_t`'s shape.
    ///
    /// # Errors
    /// `i` out of range, missing noise, or shapes that do not match.
    fn step(
        &self,
        state: &mut Self::State,
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>>;
}

/// Dynamic thresholding of x̂_0 (Saharia et al. 2022, §2.3): per example, s is the
/// `ratio`-quantile of |x̂_0|, clamped to [1, `max_value`]; x̂_0 is clamped to [−s, s] and
/// divided by s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DynamicThreshold {
    /// Quantile of |x̂_0| (Imagen: 0.995).
    pub ratio: f64,
    /// Upper bound of s (diffusers' `sample_max_value`, 1.0 for pixel data).
    pub max_value: f64,
}

impl Default for DynamicThreshold {
    fn default() -> Self {
        Self {
            ratio: 0.995,
            max_value: 1.0,
        }
    }
}

/// How a sampler turns the model's output into x̂_0 (and ε̂).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct X0Options {
    /// What the model predicts.
    pub prediction: Prediction,
    /// Clip x̂_0 to [−`clip_range`, `clip_range`] (diffusers' `clip_sample`; for data
    /// scaled to [−1, 1]).
    pub clip: bool,
    /// The bound of `clip` (diffusers' `clip_sample_range`; 1 by default).
    pub clip_range: f64,
    /// Dynamic thresholding; applied instead of clipping when set.
    pub threshold: Option<DynamicThreshold>,
}

impl Default for X0Options {
    /// ε-prediction, no clipping, no thresholding.
    fn default() -> Self {
        Self {
            prediction: Prediction::Epsilon,
            clip: false,
            clip_range: 1.0,
            threshold: None,
        }
    }
}

impl X0Options {
    /// Checks the clipping bound and the threshold's values.
    pub(crate) fn validate(&self) -> error::Result<()> {
        if !(self.clip_range.is_finite() && self.clip_range > 0.0) {
            return Err(DiffusionError::config(
                "clip_range",
                self.clip_range,
                "must be finite and > 0",
            ));
        }
        if let Some(th) = self.threshold {
            if !(th.ratio > 0.0 && th.ratio <= 1.0) {
                return Err(DiffusionError::config(
                    "threshold ratio",
                    th.ratio,
                    "must be in (0, 1]",
                ));
            }
            if !(th.max_value.is_finite() && th.max_value >= 1.0) {
                return Err(DiffusionError::config(
                    "threshold max_value",
                    th.max_value,
                    "must be finite and >= 1",
                ));
            }
        }
        Ok(())
    }

    /// (x̂_0 after clipping / thresholding, ε̂ from the raw output) at process step `t`.
    pub(crate) fn x0_eps<P: ForwardProcess + ?Sized, const D: usize>(
        &self,
        process: &P,
        x_t: Tensor<D>,
        t: &impl TimestepInput,
        output: Tensor<D>,
    ) -> error::Result<(Tensor<D>, Tensor<D>)> {
        let (x0, eps) = self.prediction.to_x0_eps(process, x_t, t, output)?;
        Ok((self.finish(x0), eps))
    }

    /// x̂_0 after clipping or thresholding, as configured.
    pub(crate) fn finish<const D: usize>(&self, x0: Tensor<D>) -> Tensor<D> {
        match self.threshold {
            Some(th) => dynamic_threshold(x0, th),
            None if self.clip => x0.clamp(-self.clip_range, self.clip_range),
            None => x0,
        }
    }

    /// [`X0Options::x0_eps`] with every example of `x_t` at the one timestep `t`.
    pub(crate) fn x0_eps_at<P: ForwardProcess + ?Sized, const D: usize>(
        &self,
        process: &P,
        x_t: &Tensor<D>,
        t: usize,
        output: Tensor<D>,
    ) -> error::Result<(Tensor<D>, Tensor<D>)> {
        let tt = Timesteps::constant(x_t.dims()[0], t);
        self.x0_eps(process, x_t.clone(), &tt, output)
    }
}

/// Saharia et al.'s dynamic thresholding, per example (linear-interpolated quantile, as
/// `torch.quantile`).
fn dynamic_threshold<const D: usize>(x0: Tensor<D>, th: DynamicThreshold) -> Tensor<D> {
    let dims = x0.dims();
    let n = dims[0];
    let flat: Tensor<2> = x0.clone().reshape([n as i64, -1]);
    let m = flat.dims()[1];
    let sorted = flat.abs().sort(1);
    let pos = th.ratio * (m - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(m - 1);
    let q_lo = sorted.clone().narrow(1, lo, 1);
    let q_hi = sorted.narrow(1, hi, 1);
    let s = (q_lo.clone() + (q_hi - q_lo) * frac).clamp(1.0, th.max_value);
    let mut shape = [1i64; D];
    shape[0] = n as i64;
    let s: Tensor<D> = s.reshape(shape).expand(x0.shape());
    x0.min_pair(s.clone()).max_pair(s.clone().neg()) / s
}

/// The scales of q(x_t | x_0) at visit `i` of a sampler on `process` (`None` past the
/// last visit).
pub(crate) fn process_marginal<P: ForwardProcess + ?Sized>(
    process: &P,
    visits: &Visits,
    i: usize,
) -> Option<(f64, f64)> {
    let t = *visits.timesteps().get(i)?;
    Some((process.signal_scale()[t], process.noise_std()[t]))
}

/// The step's noise, checked against `x_t`'s shape, or an error when it is missing.
pub(crate) fn require_noise<const D: usize>(
    noise: Option<Tensor<D>>,
    x_t: &Tensor<D>,
    i: usize,
    t: usize,
) -> error::Result<Tensor<D>> {
    let noise = noise.ok_or_else(|| {
        DiffusionError::config("noise", "None", format!("step {i} (t = {t}) needs noise"))
    })?;
    check_same_shape("noise vs x_t", x_t, &noise)?;
    Ok(noise)
}
