//! Ancestral sampling (Ho et al. 2020, Algorithm 2).

use burn::tensor::Tensor;

use crate::error;
use crate::prediction::{Parameterization, ReverseVariances, VarianceKind};
use crate::process::{ForwardProcess, Posterior};
use crate::sampler::Visits;
use crate::sampler::base::{
    ReverseSampler, StepOutput, X0Options, process_marginal, require_noise,
};
use crate::schedule::Timesteps;

/// DDPM ancestral sampling (Ho et al. 2020, Algorithm 2): for t = T−1, …, 0,
///
/// ```text
/// x_{t−1} = μ̃_t(x_t, x̂_0) + σ_t z,   z ~ N(0, I)   (no noise at the last step)
/// ```
///
/// $$\mathbf x_{t-1} = \tilde\mu_t(\mathbf x_t, \hat{\mathbf x}_0) + \sigma_t \mathbf z$$
///
/// with x̂_0 from the model's output (eq. 15, clipped or thresholded if asked) and σ_t² from
/// the [`VarianceKind`]: β̃_t, β_t or the model's learned variance. On a respaced schedule
/// ([`crate::schedule::DiscreteSchedule::respace`]) it takes the K kept steps with their recomputed
/// betas (Nichol & Dhariwal 2021, §4), calling the model with the original timesteps.
///
/// When to choose: the reference sampler; needs as many steps as training (hundreds to
/// 1000) for its best quality; fewer on a respaced schedule with a learned variance.
#[derive(Debug, Clone)]
pub struct DdpmSampler<P> {
    process: P,
    variance: VarianceKind,
    x0: X0Options,
    visits: Visits,
    variances: Option<ReverseVariances>,
}

impl<P: ForwardProcess + Posterior> DdpmSampler<P> {
    /// Ancestral sampling over every step of `process`.
    ///
    /// # Errors
    /// An invalid dynamic threshold.
    pub fn new(process: P, variance: VarianceKind, x0: X0Options) -> error::Result<Self> {
        x0.validate()?;
        Ok(Self {
            visits: Visits::every(&process),
            process,
            variance,
            x0,
            variances: None,
        })
    }

    /// Samples with the variances σ_t² of `variances` (one per step of this sampler's
    /// process) instead of the fixed kind's: e.g. Analytic-DPM's optimal variances
    /// ([`ReverseVariances::analytic`] on the same, possibly respaced, process), which
    /// improve sampling with few steps (Bao et al. 2022).
    ///
    /// # Errors
    /// A table whose length is not the process's number of steps; a learned variance.
    pub fn with_reverse_variances(mut self, variances: ReverseVariances) -> error::Result<Self> {
        variances.check_len(self.process.num_timesteps())?;
        if self.variance == VarianceKind::LearnedRange {
            return Err(crate::DiffusionError::config(
                "variance",
                "LearnedRange",
                "the model gives its own variances: a variance table is for fixed-variance models",
            ));
        }
        self.variances = Some(variances);
        Ok(self)
    }

    fn parameterization(&self) -> Parameterization {
        Parameterization {
            prediction: self.x0.prediction,
            variance: self.variance,
        }
    }
}

impl<P: ForwardProcess + Posterior, const D: usize> ReverseSampler<D> for DdpmSampler<P> {
    type State = ();

    fn visits(&self) -> &Visits {
        &self.visits
    }

    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        process_marginal(&self.process, &self.visits, i)
    }

    fn needs_noise(&self, i: usize) -> bool {
        self.visits.get(i).is_ok_and(|t| t > 0)
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
        let tt = Timesteps::constant(x_t.dims()[0], t);
        let parameterization = self.parameterization();
        let (mean_part, var_part) = parameterization.split(model_output, &x_t)?;
        let (x0, _) = self.x0.x0_eps(&self.process, x_t.clone(), &tt, mean_part)?;
        let mean = self.process.q_posterior(x0.clone(), x_t.clone(), &tt)?.mean;
        if t == 0 {
            return Ok(StepOutput { x_prev: mean, x0 });
        }
        let noise = require_noise(noise, &x_t, i, t)?;
        let (_, log_variance) = match &self.variances {
            Some(table) => table.gather(&tt, &x_t)?,
            None => parameterization.variance(&self.process, &x_t, &tt, var_part)?,
        };
        Ok(StepOutput {
            x_prev: mean + (log_variance * 0.5).exp() * noise,
            x0,
        })
    }
}
