//! DDIM inversion: deterministic encoding of data to noise along increasing timesteps.

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::prediction::Prediction;
use crate::process::ForwardProcess;
use crate::sampler::Visits;
use crate::sampler::base::{ReverseSampler, StepOutput, X0Options, process_marginal};
use crate::schedule::Spacing;

/// DDIM inversion (Song et al. 2021, §4.3; Mokady et al. 2023): the η = 0 DDIM update run
/// from the data toward the noise, over increasing timesteps τ_1 < … < τ_K, each step
/// going from the level τ_i − ⌊T/K⌋ (the clean data, a = 1, before the first) to τ_i:
///
/// ```text
/// ε̂ = ε_θ(x, τ_i),   x̂_0 = (x − s_src·ε̂)/a_src,   x' = a_{τ_i}·x̂_0 + s_{τ_i}·ε̂
/// ```
///
/// $$\mathbf x_{\tau_i} = a_{\tau_i}\hat{\mathbf x}_0 + s_{\tau_i}\hat\epsilon_\theta(\mathbf x, \tau_i)$$
///
/// The model is called at the step's target τ_i with the sample at its source (it cannot
/// be called at x_{τ_i}, which is what the step computes), as diffusers'
/// `DDIMInverseScheduler` does; that approximation is the only thing between an encoding
/// and its exact reconstruction by [`crate::sampler::DdimSampler`] with the same
/// timesteps, and it shrinks with the step size. With `set_alpha_to_one` false, the first
/// source is the level of timestep 0 instead of the clean data.
///
/// When to choose: encode an image to the noise DDIM would decode back to it (image
/// editing, interpolation between images).
#[derive(Debug, Clone)]
pub struct DdimInverseSampler<P> {
    process: P,
    visits: Visits,
    stride: usize,
    set_alpha_to_one: bool,
    x0: X0Options,
}

impl<P: ForwardProcess> DdimInverseSampler<P> {
    /// Inversion over the timesteps `spacing` keeps, in increasing order, each step
    /// starting ⌊T/K⌋ below its target (diffusers' `DDIMInverseScheduler` with the
    /// `leading` or `trailing` spacing and `set_alpha_to_one`).
    ///
    /// # Errors
    /// As [`Spacing::timesteps`]; an invalid clipping bound or threshold.
    pub fn new(
        process: P,
        spacing: &Spacing,
        set_alpha_to_one: bool,
        x0: X0Options,
    ) -> error::Result<Self> {
        let timesteps = spacing.timesteps(process.num_timesteps())?;
        let stride = process.num_timesteps() / timesteps.len();
        Self::with_timesteps(process, timesteps, stride, set_alpha_to_one, x0)
    }

    /// Inversion over explicit increasing `timesteps`, each step starting `stride` below
    /// its target (at the clean data, or timestep 0 without `set_alpha_to_one`, when that
    /// is below 0).
    ///
    /// # Errors
    /// Empty, not strictly increasing or out-of-range timesteps; a `stride` of 0; an
    /// invalid clipping bound or threshold.
    pub fn with_timesteps(
        process: P,
        timesteps: Vec<usize>,
        stride: usize,
        set_alpha_to_one: bool,
        x0: X0Options,
    ) -> error::Result<Self> {
        if stride == 0 {
            return Err(DiffusionError::config("stride", 0, "must be at least 1"));
        }
        x0.validate()?;
        Ok(Self {
            visits: Visits::increasing(&process, timesteps)?,
            process,
            stride,
            set_alpha_to_one,
            x0,
        })
    }

    /// (a, s) of step `i`'s source level.
    fn source(&self, target: usize) -> (f64, f64) {
        let (a, s) = (self.process.signal_scale(), self.process.noise_std());
        match target.checked_sub(self.stride) {
            Some(t) => (a[t], s[t]),
            None if self.set_alpha_to_one => (1.0, 0.0),
            None => (a[0], s[0]),
        }
    }
}

impl<P: ForwardProcess, const D: usize> ReverseSampler<D> for DdimInverseSampler<P> {
    type State = ();

    fn visits(&self) -> &Visits {
        &self.visits
    }

    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        process_marginal(&self.process, &self.visits, i)
    }

    fn needs_noise(&self, _i: usize) -> bool {
        false
    }

    fn step(
        &self,
        _state: &mut (),
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        _noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        let target = self.visits.get(i)?;
        crate::schedule::check_same_shape("model output vs x_t", &x_t, &model_output)?;
        let (a, s) = self.source(target);
        let (x0, eps) = match self.x0.prediction {
            Prediction::Epsilon => ((x_t - model_output.clone() * s) / a, model_output),
            Prediction::Velocity => (
                x_t.clone() * a - model_output.clone() * s,
                model_output * a + x_t * s,
            ),
            Prediction::Sample if s == 0.0 => {
                return Err(DiffusionError::config(
                    "prediction",
                    "Sample",
                    "an x_0-predicting model gives no ε̂ at the clean data: use \
                     set_alpha_to_one = false",
                ));
            }
            Prediction::Sample => (model_output.clone(), (x_t - model_output * a) / s),
        };
        // Clipped after ε̂ is taken, as diffusers does.
        let x0 = self.x0.finish(x0);
        let (a_next, s_next) = (
            self.process.signal_scale()[target],
            self.process.noise_std()[target],
        );
        Ok(StepOutput {
            x_prev: x0.clone() * a_next + eps * s_next,
            x0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::VpProcess;
    use crate::schedule::ScheduleConfig;
    use burn::tensor::Device;

    fn process() -> VpProcess {
        VpProcess::new(ScheduleConfig::new().init().unwrap())
    }

    #[test]
    fn grids_must_increase_and_strides_be_positive() {
        let x0 = X0Options::default();
        let down = DdimInverseSampler::with_timesteps(process(), vec![500, 0], 100, true, x0);
        assert!(
            down.unwrap_err()
                .to_string()
                .contains("strictly increasing")
        );
        assert!(DdimInverseSampler::with_timesteps(process(), vec![0, 500], 0, true, x0).is_err());
        // And a decoding sampler refuses an increasing grid.
        let ddim = crate::sampler::DdimSampler::new(process(), vec![0, 500], 0.0, x0);
        assert!(
            ddim.unwrap_err()
                .to_string()
                .contains("strictly decreasing")
        );
    }

    #[test]
    fn sample_prediction_needs_a_noisy_first_source() {
        let device = Device::flex();
        let x0 = X0Options {
            prediction: Prediction::Sample,
            ..X0Options::default()
        };
        let x = Tensor::<2>::ones([2, 2], &device);
        let clean =
            DdimInverseSampler::with_timesteps(process(), vec![0, 500], 500, true, x0).unwrap();
        assert!(clean.step(&mut (), 0, x.clone(), x.clone(), None).is_err());
        let noisy =
            DdimInverseSampler::with_timesteps(process(), vec![0, 500], 500, false, x0).unwrap();
        assert!(noisy.step(&mut (), 0, x.clone(), x, None).is_ok());
    }
}
