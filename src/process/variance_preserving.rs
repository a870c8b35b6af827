//! The variance-preserving DDPM process (Ho et al. 2020).

use crate::process::{ForwardProcess, Posterior};
use crate::schedule::{DiscreteSchedule, NoiseSchedule};

/// The DDPM forward process q(x_t | x_{t−1}) = N(√α_t x_{t−1}, β_t I) over a
/// [`NoiseSchedule`], with marginal q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) (Ho et al.
/// 2020, eq. 2 and 4) and posterior μ̃_t, β̃_t (eq. 6–7). "Variance preserving": a
/// unit-variance x_0 keeps unit variance at every step.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::{ForwardProcess, Posterior, process::VpProcess, schedule::ScheduleConfig};
///
/// let device = Device::flex();
/// let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
/// let x0 = Tensor::<4>::zeros([2, 1, 8, 8], &device);
/// let t = Tensor::<1, Int>::from_ints([0, 999], &device);
/// let x_t = process.q_sample_seeded(x0.clone(), &t, 42).unwrap();
/// let posterior = process.q_posterior(x0, x_t, &t).unwrap();
/// assert_eq!(posterior.mean.dims(), [2, 1, 8, 8]);
/// assert_eq!(posterior.variance.dims(), [2, 1, 1, 1]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VpProcess<S: NoiseSchedule = DiscreteSchedule> {
    schedule: S,
    sqrt_alphas: Vec<f64>,
}

impl<S: NoiseSchedule> VpProcess<S> {
    /// The process over `schedule`.
    pub fn new(schedule: S) -> Self {
        let sqrt_alphas = schedule.alphas().iter().map(|a| a.sqrt()).collect();
        Self {
            schedule,
            sqrt_alphas,
        }
    }

    /// The schedule this process runs on.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }
}

impl<S: NoiseSchedule> ForwardProcess for VpProcess<S> {
    fn num_timesteps(&self) -> usize {
        self.schedule.num_timesteps()
    }
    /// √ᾱ_t.
    fn signal_scale(&self) -> &[f64] {
        self.schedule.sqrt_alphas_cumprod()
    }
    /// √(1 − ᾱ_t).
    fn noise_std(&self) -> &[f64] {
        self.schedule.sqrt_one_minus_alphas_cumprod()
    }
    /// √α_t.
    fn transition_scale(&self) -> &[f64] {
        &self.sqrt_alphas
    }
    /// β_t.
    fn transition_variance(&self) -> &[f64] {
        self.schedule.betas()
    }
    fn model_timestep(&self, t: usize) -> usize {
        self.schedule.original_timesteps()[t]
    }
}

impl<S: NoiseSchedule> Posterior for VpProcess<S> {
    fn posterior_mean_coef1(&self) -> &[f64] {
        self.schedule.posterior_mean_coef1()
    }
    fn posterior_mean_coef2(&self) -> &[f64] {
        self.schedule.posterior_mean_coef2()
    }
    fn posterior_variance(&self) -> &[f64] {
        self.schedule.posterior_variance()
    }
    fn posterior_log_variance_clipped(&self) -> &[f64] {
        self.schedule.posterior_log_variance_clipped()
    }
}
