//! Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::process::ForwardProcess;
use crate::sampler::Visits;
use crate::sampler::base::{
    ReverseSampler, StepOutput, X0Options, process_marginal, require_noise,
};

/// Annealed Langevin dynamics for noise-conditional score models (Song & Ermon 2019,
/// Algorithm 1), meant for the variance-exploding process ([`crate::process::VeProcess`]): for
/// each noise level σ_t from the largest to the smallest, `steps_per_level` steps of
///
/// ```text
/// x ← x + (α_t/2)·∇log p_{σ_t}(x) + √α_t·z,   α_t = ε·σ_t²/σ_min²,   ∇log p = −ε̂/σ_t
/// ```
///
/// $$\mathbf x \leftarrow \mathbf x + \frac{\alpha_i}{2}\,\mathbf s_\theta(\mathbf x, \sigma_i) + \sqrt{\alpha_i}\,\mathbf z$$
///
/// optionally followed by one denoising step x ← x − σ_min·ε̂ (Tweedie's formula;
/// Jolicoeur-Martineau et al. 2021). σ_t is the process's noise standard deviation s_t.
/// When to choose: to sample an NCSN-style model; it needs many steps (L × K).
#[derive(Debug, Clone)]
pub struct AnnealedLangevinSampler<P> {
    process: P,
    step_size: f64,
    visits: Visits,
    denoise_last: bool,
    x0: X0Options,
}

impl<P: ForwardProcess> AnnealedLangevinSampler<P> {
    /// `steps_per_level` steps at every level with step size ε = `step_size` at the
    /// smallest level (NCSN: 100 steps, ε = 2e-5), and the final denoising step if
    /// `denoise_last`.
    ///
    /// # Errors
    /// `steps_per_level = 0`, or ε not finite and positive.
    pub fn new(
        process: P,
        steps_per_level: usize,
        step_size: f64,
        denoise_last: bool,
        x0: X0Options,
    ) -> error::Result<Self> {
        x0.validate()?;
        if steps_per_level == 0 {
            return Err(DiffusionError::config(
                "steps_per_level",
                0,
                "must be at least 1",
            ));
        }
        if !(step_size.is_finite() && step_size > 0.0) {
            return Err(DiffusionError::config(
                "step_size",
                step_size,
                "must be finite and positive",
            ));
        }
        let mut levels: Vec<usize> = Visits::every(&process)
            .timesteps()
            .iter()
            .flat_map(|t| core::iter::repeat_n(*t, steps_per_level))
            .collect();
        if denoise_last {
            levels.push(0);
        }
        let visits = Visits::with_repeats(&process, levels)?;
        Ok(Self {
            process,
            step_size,
            visits,
            denoise_last,
            x0,
        })
    }

    fn is_denoise(&self, i: usize) -> bool {
        self.denoise_last && i + 1 == self.visits.len()
    }
}

impl<P: ForwardProcess, const D: usize> ReverseSampler<D> for AnnealedLangevinSampler<P> {
    type State = ();

    fn visits(&self) -> &Visits {
        &self.visits
    }

    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        process_marginal(&self.process, &self.visits, i)
    }

    fn needs_noise(&self, i: usize) -> bool {
        i < self.visits.len() && !self.is_denoise(i)
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
        let (x0, eps) = self.x0.x0_eps_at(&self.process, &x_t, t, model_output)?;
        let sigma = self.process.noise_std()[t];
        if self.is_denoise(i) {
            return Ok(StepOutput {
                x_prev: x0.clone(),
                x0,
            });
        }
        let sigma_min = self.process.noise_std()[0];
        let alpha = self.step_size * (sigma / sigma_min).powi(2);
        let noise = require_noise(noise, &x_t, i, t)?;
        Ok(StepOutput {
            x_prev: x_t - eps * (0.5 * alpha / sigma) + noise * alpha.sqrt(),
            x0,
        })
    }
}
