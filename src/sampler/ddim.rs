//! Denoising diffusion implicit models (Song, Meng & Ermon 2021).

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::process::ForwardProcess;
use crate::sampler::Visits;
use crate::sampler::base::{
    ReverseSampler, StepOutput, X0Options, process_marginal, require_noise,
};
use crate::schedule::Spacing;

/// DDIM (Song et al. 2021, eq. 12) on any decreasing subsequence of timesteps t → t':
///
/// ```text
/// x_{t'} = a_{t'} x̂_0 + √(s_{t'}² − σ²) ε̂ + σ z,
/// σ² = η² · s_{t'}² (s_t² − (a_t/a_{t'})² s_{t'}²) / s_t²
/// ```
///
/// $$\mathbf x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat{\mathbf x}_0 + \sqrt{1-\bar\alpha_{t'}-\sigma^2}\,\hat{\boldsymbol\epsilon} + \sigma\mathbf z, \quad \sigma = \eta\sqrt{\tfrac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_{t'}}}$$
///
/// (a_t = √ᾱ_t, s_t = √(1 − ᾱ_t) for DDPM). After the last visited step, a_{t'} = 1 and
/// s_{t'} = 0 (diffusers' `set_alpha_to_one`), so the result is x̂_0. ε̂ comes from the
/// raw output and x̂_0 is clipped or thresholded if asked, as diffusers does.
///
/// η = 0 is deterministic (an ODE-like map from x_T to x_0); η = 1 on the full schedule is
/// DDPM with σ_t² = β̃_t. When to choose: 20–100 steps with η = 0 give most of DDPM's
/// quality at a fraction of its cost.
#[derive(Debug, Clone)]
pub struct DdimSampler<P> {
    process: P,
    visits: Visits,
    eta: f64,
    x0: X0Options,
    /// (a, s) after the last step: (1, 0), or t = 0's with `set_alpha_to_one = false`.
    final_scales: (f64, f64),
    /// diffusers' rule for the step's target, t − `stride`, instead of the next visit.
    stride: Option<usize>,
    /// Recompute ε̂ from the clipped x̂_0 (diffusers' `use_clipped_model_output`).
    clipped_eps: bool,
}

impl<P: ForwardProcess> DdimSampler<P> {
    /// DDIM visiting `timesteps` (given in decreasing order, each in `0..T`).
    ///
    /// # Errors
    /// Empty or not strictly decreasing timesteps, a timestep out of range, η negative or
    /// not finite, an invalid dynamic threshold.
    pub fn new(process: P, timesteps: Vec<usize>, eta: f64, x0: X0Options) -> error::Result<Self> {
        x0.validate()?;
        if !(eta.is_finite() && eta >= 0.0) {
            return Err(DiffusionError::config(
                "eta",
                eta,
                "must be finite and >= 0",
            ));
        }
        Ok(Self {
            visits: Visits::new(&process, timesteps)?,
            process,
            eta,
            x0,
            final_scales: (1.0, 0.0),
            stride: None,
            clipped_eps: false,
        })
    }

    /// diffusers' `set_alpha_to_one`: `true` (the default) ends at ᾱ = 1, the data;
    /// `false` ends the last step at ᾱ_0, t = 0's level (as Stable Diffusion's configs).
    pub fn with_set_alpha_to_one(mut self, set_alpha_to_one: bool) -> Self {
        self.final_scales = if set_alpha_to_one {
            (1.0, 0.0)
        } else {
            (self.process.signal_scale()[0], self.process.noise_std()[0])
        };
        self
    }

    /// diffusers' target of each step, t − `stride` with `stride` = ⌊T/K⌋
    /// (`prev_timestep` in `DDIMScheduler.step`), instead of the next visited timestep;
    /// a negative target is the end. The two agree for `Spacing::Leading`; for
    /// `Trailing` and `Linspace` spacings diffusers steps to timesteps it does not visit.
    ///
    /// # Errors
    /// `stride` = 0.
    pub fn with_diffusers_targets(mut self, stride: usize) -> error::Result<Self> {
        if stride == 0 {
            return Err(DiffusionError::config("stride", 0, "must be positive"));
        }
        self.stride = Some(stride);
        Ok(self)
    }

    /// diffusers' `use_clipped_model_output`: with clipping or thresholding, recompute
    /// ε̂ = (x_t − a_t x̂_0)/s_t from the clipped x̂_0 instead of taking the model's.
    pub fn with_clipped_model_output(mut self, clipped: bool) -> Self {
        self.clipped_eps = clipped;
        self
    }

    /// DDIM visiting the timesteps that `spacing` keeps, in decreasing order.
    ///
    /// # Errors
    /// As [`Spacing::timesteps`] and [`DdimSampler::new`].
    pub fn with_spacing(
        process: P,
        spacing: &Spacing,
        eta: f64,
        x0: X0Options,
    ) -> error::Result<Self> {
        let visits = Visits::spaced(&process, spacing)?;
        Self::new(process, visits.timesteps().to_vec(), eta, x0)
    }

    /// (a, s) at the step after visit `i`: the next visited timestep (or diffusers'
    /// target), or the final scales at the end.
    fn next_scales(&self, i: usize) -> (f64, f64) {
        let target = match self.stride {
            Some(stride) => self.visits.timesteps()[i].checked_sub(stride),
            None => self.visits.next(i),
        };
        match target {
            Some(t) => (self.process.signal_scale()[t], self.process.noise_std()[t]),
            None => self.final_scales,
        }
    }

    /// σ of the step after visit `i`.
    fn sigma(&self, i: usize) -> f64 {
        let t = self.visits.timesteps()[i];
        let (a, s) = (self.process.signal_scale()[t], self.process.noise_std()[t]);
        let (a_next, s_next) = self.next_scales(i);
        let var = s_next * s_next * (s * s - (a / a_next).powi(2) * s_next * s_next) / (s * s);
        self.eta * var.max(0.0).sqrt()
    }
}

impl<P: ForwardProcess, const D: usize> ReverseSampler<D> for DdimSampler<P> {
    type State = ();

    fn visits(&self) -> &Visits {
        &self.visits
    }

    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        process_marginal(&self.process, &self.visits, i)
    }

    fn needs_noise(&self, i: usize) -> bool {
        i < self.visits.len() && self.sigma(i) > 0.0
    }

    fn step(
        &self,
        _state: &mut (),
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        let t = self.visits.get(i)?;
        let (x0, mut eps) = self.x0.x0_eps_at(&self.process, &x_t, t, model_output)?;
        if self.clipped_eps {
            let (a, s) = (self.process.signal_scale()[t], self.process.noise_std()[t]);
            eps = (x_t.clone() - x0.clone() * a) / s;
        }
        let (a_next, s_next) = self.next_scales(i);
        let sigma = self.sigma(i);
        let direction = (s_next * s_next - sigma * sigma).max(0.0).sqrt();
        let mut x_prev = x0.clone() * a_next + eps * direction;
        if sigma > 0.0 {
            let noise = require_noise(noise, &x_t, i, t)?;
            x_prev = x_prev + noise * sigma;
        }
        Ok(StepOutput { x_prev, x0 })
    }
}
