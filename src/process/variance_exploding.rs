//! The variance-exploding process of noise-conditional score networks (Song & Ermon 2019).

use burn::config::Config;

use crate::error::{self, DiffusionError};
use crate::process::{ForwardProcess, Posterior};

/// Configuration of a [`VeProcess`] with NCSN's geometric noise levels
/// σ_t = σ_min · (σ_max / σ_min)^{t/(T−1)}, t = 0..T−1 (Song & Ermon 2019, §4.2; their
/// σ_1 > … > σ_L in reverse order).
#[derive(Config, Debug, PartialEq)]
pub struct VeConfig {
    /// Number of noise levels `T` (NCSN: 10).
    #[config(default = 10)]
    pub num_timesteps: usize,
    /// The smallest noise level, at t = 0 (NCSN: 0.01).
    #[config(default = 0.01)]
    pub sigma_min: f64,
    /// The largest noise level, at t = T − 1 (NCSN: 1.0).
    #[config(default = 1.0)]
    pub sigma_max: f64,
}

impl VeConfig {
    /// Builds the process.
    ///
    /// # Errors
    /// `T = 0`; σ_min or σ_max not finite and positive; σ_max ≤ σ_min when `T ≥ 2`.
    pub fn init(&self) -> error::Result<VeProcess> {
        let n = self.num_timesteps;
        if n == 0 {
            return Err(DiffusionError::config(
                "num_timesteps",
                0,
                "must be at least 1",
            ));
        }
        for (name, v) in [("sigma_min", self.sigma_min), ("sigma_max", self.sigma_max)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(DiffusionError::config(
                    name,
                    v,
                    "must be finite and positive",
                ));
            }
        }
        if n == 1 {
            return VeProcess::from_sigmas(vec![self.sigma_max]);
        }
        let ratio = self.sigma_max / self.sigma_min;
        let sigmas = (0..n)
            .map(|t| self.sigma_min * ratio.powf(t as f64 / (n - 1) as f64))
            .collect();
        VeProcess::from_sigmas(sigmas)
    }
}

/// The variance-exploding forward process x_t = x_0 + σ_t ε (Song & Ermon 2019; the
/// "VE SDE" of Song et al. 2021), as a Markov chain
/// q(x_t | x_{t−1}) = N(x_{t−1}, (σ_t² − σ_{t−1}²) I) with σ_{−1} = 0.
///
/// It shares no table with the DDPM process: its posterior, by Bayes' rule, is
/// β̃_t = σ_{t−1}² (σ_t² − σ_{t−1}²) / σ_t², μ̃_t = (1 − σ_{t−1}²/σ_t²) x_0 + (σ_{t−1}²/σ_t²) x_t.
///
/// # Example
/// ```
/// use burn_diffusion::{ForwardProcess, process::VeConfig};
///
/// let ve = VeConfig::new().init().unwrap();
/// assert!((ve.noise_std()[0] - 0.01).abs() < 1e-15);
/// assert!((ve.noise_std()[9] - 1.0).abs() < 1e-12);
/// assert!(VeConfig::new().with_sigma_max(0.001).init().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VeProcess {
    sigmas: Vec<f64>,
    ones: Vec<f64>,
    transition_variance: Vec<f64>,
    coef1: Vec<f64>,
    coef2: Vec<f64>,
    posterior_variance: Vec<f64>,
    posterior_log_variance_clipped: Vec<f64>,
}

impl VeProcess {
    /// The process over explicit noise levels σ_0 < σ_1 < … (strictly increasing, positive).
    ///
    /// # Errors
    /// An empty list, or a σ that is not finite, not positive, or not above its predecessor.
    pub fn from_sigmas(sigmas: Vec<f64>) -> error::Result<Self> {
        if sigmas.is_empty() {
            return Err(DiffusionError::config(
                "num_timesteps",
                0,
                "must be at least 1",
            ));
        }
        let mut prev = 0.0;
        for (t, &s) in sigmas.iter().enumerate() {
            if !(s.is_finite() && s > prev) {
                return Err(DiffusionError::config(
                    "sigma",
                    format!("{s} at t = {t}"),
                    format!("noise levels must be finite and strictly increasing from {prev}"),
                ));
            }
            prev = s;
        }
        let n = sigmas.len();
        let prev_var = |t: usize| if t == 0 { 0.0 } else { sigmas[t - 1].powi(2) };
        let var = |t: usize| sigmas[t].powi(2);
        let transition_variance: Vec<f64> = (0..n).map(|t| var(t) - prev_var(t)).collect();
        let posterior_variance: Vec<f64> = (0..n)
            .map(|t| prev_var(t) * transition_variance[t] / var(t))
            .collect();
        let posterior_log_variance_clipped = (0..n)
            .map(|t| match (t, n) {
                (0, 1) => transition_variance[0].ln(),
                (0, _) => posterior_variance[1].ln(),
                _ => posterior_variance[t].ln(),
            })
            .collect();
        Ok(Self {
            coef1: (0..n).map(|t| transition_variance[t] / var(t)).collect(),
            coef2: (0..n).map(|t| prev_var(t) / var(t)).collect(),
            ones: vec![1.0; n],
            transition_variance,
            posterior_variance,
            posterior_log_variance_clipped,
            sigmas,
        })
    }

    /// The noise levels σ_t.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }
}

impl ForwardProcess for VeProcess {
    fn num_timesteps(&self) -> usize {
        self.sigmas.len()
    }
    /// 1: the data is never scaled.
    fn signal_scale(&self) -> &[f64] {
        &self.ones
    }
    /// σ_t.
    fn noise_std(&self) -> &[f64] {
        &self.sigmas
    }
    /// 1.
    fn transition_scale(&self) -> &[f64] {
        &self.ones
    }
    /// σ_t² − σ_{t−1}².
    fn transition_variance(&self) -> &[f64] {
        &self.transition_variance
    }
}

impl Posterior for VeProcess {
    fn posterior_mean_coef1(&self) -> &[f64] {
        &self.coef1
    }
    fn posterior_mean_coef2(&self) -> &[f64] {
        &self.coef2
    }
    fn posterior_variance(&self) -> &[f64] {
        &self.posterior_variance
    }
    fn posterior_log_variance_clipped(&self) -> &[f64] {
        &self.posterior_log_variance_clipped
    }
}
