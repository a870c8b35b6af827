//! Euler and Euler ancestral on a σ grid (Karras et al. 2022, Algorithm 1 without its
//! correction; k-diffusion's `sample_euler` / `sample_euler_ancestral`).

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::sampler::base::{ReverseSampler, StepOutput, X0Options, require_noise};
use crate::sampler::sigmas::{SigmaGrid, from_ve, to_ve, visits_each_level, x0_at_sigma};

/// Euler's method on the probability-flow ODE in σ (Karras et al. 2022, eq. 3 with
/// σ(t) = t), from level σ_i to σ_{i+1}, with x = x_t / a(σ) the sample in σ's coordinates:
///
/// ```text
/// d = (x − x̂_0) / σ_i,    x' = x + (σ_{i+1} − σ_i)·d
/// ```
///
/// $$\mathbf x_{i+1} = \mathbf x_i + (\sigma_{i+1}-\sigma_i)\,\frac{\mathbf x_i - \hat{\mathbf x}_0}{\sigma_i}$$
///
/// First order, deterministic, one model call per level (diffusers'
/// `EulerDiscreteScheduler`, A1111's "Euler"). When to choose: the simplest solver, with
/// Karras σ's a good 20–50 step sampler; DPM-Solver++(2M) is better at the same cost.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::{noise::randn, process::VpProcess, schedule::ScheduleConfig};
/// use burn_diffusion::sampler::{EulerSampler, FinalSigma, ModelTime, SampleOptions, SigmaGrid, SigmaSchedule, X0Options, sample};
///
/// let process = VpProcess::new(ScheduleConfig::new().init()?);
/// let grid = SigmaGrid::new(&process, &SigmaSchedule::karras(10), FinalSigma::Zero, ModelTime::Rounded)?;
/// let euler = EulerSampler::new(grid, X0Options::default())?;
/// let model = |x_t: Tensor<2>, _t: Tensor<1, Int>| x_t * 0.1;
/// let x_t = randn::<2>([4, 2], 0, &Device::flex());
/// let out = sample(&euler, &model, x_t, SampleOptions::default(), |_, _| {})?;
/// assert_eq!(out.sample.dims(), [4, 2]);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct EulerSampler {
    grid: SigmaGrid,
    x0: X0Options,
}

impl EulerSampler {
    /// Euler over `grid`.
    ///
    /// # Errors
    /// An invalid clipping bound or threshold.
    pub fn new(grid: SigmaGrid, x0: X0Options) -> error::Result<Self> {
        x0.validate()?;
        Ok(Self { grid, x0 })
    }
}

impl<const D: usize> ReverseSampler<D> for EulerSampler {
    type State = ();

    visits_each_level!();

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
        let (sigma, next) = levels(&self.grid, i)?;
        let x0 = x0_at_sigma(&self.x0, &x_t, model_output, sigma)?;
        let x = to_ve(x_t, sigma);
        let d = (x.clone() - x0.clone()) / sigma;
        Ok(StepOutput {
            x_prev: from_ve(x + d * (next - sigma), next),
            x0,
        })
    }
}

/// Euler ancestral (k-diffusion's `sample_euler_ancestral`; Song et al. 2021's reverse
/// SDE split into a deterministic step down to σ_down and fresh noise of size σ_up):
///
/// ```text
/// σ_up = min(σ_{i+1}, η·√(σ_{i+1}²(σ_i² − σ_{i+1}²)/σ_i²)),   σ_down = √(σ_{i+1}² − σ_up²)
/// x' = x + (σ_down − σ_i)·(x − x̂_0)/σ_i + σ_up·z
/// ```
///
/// With η = 1 (diffusers' `EulerAncestralDiscreteScheduler`, A1111's "Euler a") each step
/// is DDPM's ancestral step in σ's coordinates; η = 0 is [`EulerSampler`]. First order,
/// stochastic. When to choose: varied samples that do not converge as steps grow (the
/// noise keeps being replaced); 20–40 steps.
#[derive(Debug, Clone)]
pub struct EulerAncestralSampler {
    grid: SigmaGrid,
    eta: f64,
    x0: X0Options,
}

impl EulerAncestralSampler {
    /// Euler ancestral over `grid` with noise scale `eta` (1 in diffusers).
    ///
    /// # Errors
    /// `eta` not finite or negative; an invalid clipping bound or threshold.
    pub fn new(grid: SigmaGrid, eta: f64, x0: X0Options) -> error::Result<Self> {
        if !(eta.is_finite() && eta >= 0.0) {
            return Err(DiffusionError::config(
                "eta",
                eta,
                "must be finite and >= 0",
            ));
        }
        x0.validate()?;
        Ok(Self { grid, eta, x0 })
    }

    /// (σ_down, σ_up) of the step from level σ to `next`.
    fn split(&self, sigma: f64, next: f64) -> (f64, f64) {
        let up = (self.eta
            * (next * next * (sigma * sigma - next * next) / (sigma * sigma)).sqrt())
        .min(next);
        ((next * next - up * up).max(0.0).sqrt(), up)
    }
}

impl<const D: usize> ReverseSampler<D> for EulerAncestralSampler {
    type State = ();

    visits_each_level!();

    fn needs_noise(&self, i: usize) -> bool {
        levels(&self.grid, i).is_ok_and(|(sigma, next)| self.split(sigma, next).1 > 0.0)
    }

    fn step(
        &self,
        _state: &mut (),
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        let (sigma, next) = levels(&self.grid, i)?;
        let (down, up) = self.split(sigma, next);
        let x0 = x0_at_sigma(&self.x0, &x_t, model_output, sigma)?;
        let x = to_ve(x_t.clone(), sigma);
        let d = (x.clone() - x0.clone()) / sigma;
        let mut x = x + d * (down - sigma);
        if up > 0.0 {
            let t = self.grid.visits().get(i)?;
            x = x + require_noise(noise, &x_t, i, t)? * up;
        }
        Ok(StepOutput {
            x_prev: from_ve(x, next),
            x0,
        })
    }
}

/// (σ_i, σ_{i+1}) of step `i`, or an error past the last level.
pub(crate) fn levels(grid: &SigmaGrid, i: usize) -> error::Result<(f64, f64)> {
    grid.visits().get(i)?;
    Ok((grid.sigma(i), grid.sigma(i + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::VpProcess;
    use crate::sampler::{FinalSigma, ModelTime, SigmaSchedule};
    use crate::schedule::ScheduleConfig;
    use burn::tensor::{Device, Tensor};

    fn grid(steps: usize) -> SigmaGrid {
        let p = VpProcess::new(ScheduleConfig::new().init().unwrap());
        SigmaGrid::new(
            &p,
            &SigmaSchedule::karras(steps),
            FinalSigma::Zero,
            ModelTime::Rounded,
        )
        .unwrap()
    }

    #[test]
    fn ancestral_with_eta_zero_is_euler() {
        let device = Device::flex();
        let x = Tensor::<2>::from_floats([[0.3, -1.2], [2.0, 0.1]], &device);
        let out = x.clone() * 0.4;
        let euler = EulerSampler::new(grid(5), X0Options::default()).unwrap();
        let ancestral = EulerAncestralSampler::new(grid(5), 0.0, X0Options::default()).unwrap();
        for i in 0..5 {
            assert!(!ReverseSampler::<2>::needs_noise(&ancestral, i));
            let a = euler
                .step(&mut (), i, x.clone(), out.clone(), None)
                .unwrap();
            let b = ancestral
                .step(&mut (), i, x.clone(), out.clone(), None)
                .unwrap();
            assert!(
                a.x_prev.all_close(b.x_prev, Some(1e-6), Some(1e-6)),
                "step {i}"
            );
        }
    }

    #[test]
    fn ancestral_split_keeps_the_variance_of_the_next_level() {
        let a = EulerAncestralSampler::new(grid(5), 1.0, X0Options::default()).unwrap();
        let (sigma, next) = (3.0, 1.5);
        let (down, up) = a.split(sigma, next);
        assert!((down * down + up * up - next * next).abs() < 1e-12);
        // DDPM's posterior noise in σ's coordinates: σ_up² = σ'²(σ² − σ'²)/σ².
        assert!(
            (up * up - next * next * (sigma * sigma - next * next) / (sigma * sigma)).abs() < 1e-12
        );
        assert!(EulerAncestralSampler::new(grid(5), -1.0, X0Options::default()).is_err());
        // The last step (to σ = 0) draws no noise; the others do.
        assert!(ReverseSampler::<2>::needs_noise(&a, 0));
        assert!(!ReverseSampler::<2>::needs_noise(&a, 4));
    }
}
