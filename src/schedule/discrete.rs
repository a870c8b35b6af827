//! `DiscreteSchedule`: the tables of a discrete schedule, built from a `ScheduleConfig`,
//! from betas, or by respacing another schedule.

use burn::config::Config;

use crate::error::{self, DiffusionError};
use crate::schedule::beta_schedule::{BetaSchedule, validate_betas};
use crate::schedule::noise_schedule::NoiseSchedule;
use crate::schedule::spacing::Spacing;
use crate::schedule::zero_snr::rescale_zero_terminal_snr;

/// Configuration of a [`DiscreteSchedule`].
///
/// # Example
/// ```
/// use burn_diffusion::{NoiseSchedule, schedule::{BetaSchedule, ScheduleConfig}};
///
/// let schedule = ScheduleConfig::new().init().unwrap(); // linear, T = 1000
/// // diffusers' DDPMScheduler (fixed_small) variance at t = 487:
/// assert!((schedule.posterior_variance()[487] - 0.0097916).abs() < 1e-7);
///
/// let cosine = ScheduleConfig::new()
///     .with_num_timesteps(4000)
///     .with_beta_schedule(BetaSchedule::cosine())
///     .init()
///     .unwrap();
/// assert_eq!(cosine.num_timesteps(), 4000);
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct ScheduleConfig {
    /// Number of diffusion steps `T`.
    #[config(default = 1000)]
    pub num_timesteps: usize,
    /// How β is laid out over the steps.
    #[config(default = "BetaSchedule::default()")]
    pub beta_schedule: BetaSchedule,
    /// Rescale to zero terminal SNR (Lin et al. 2023); needs `T >= 2`.
    #[config(default = false)]
    pub rescale_zero_terminal_snr: bool,
}

impl ScheduleConfig {
    /// Builds the schedule, validating every value.
    ///
    /// # Errors
    /// See [`BetaSchedule::betas`]; also `rescale_zero_terminal_snr` with `T < 2`.
    pub fn init(&self) -> error::Result<DiscreteSchedule> {
        let mut betas = self.beta_schedule.betas(self.num_timesteps)?;
        if self.rescale_zero_terminal_snr {
            if betas.len() < 2 {
                return Err(DiffusionError::config(
                    "num_timesteps",
                    betas.len(),
                    "rescaling to zero terminal SNR needs at least 2 timesteps",
                ));
            }
            betas = rescale_zero_terminal_snr(&betas);
        }
        DiscreteSchedule::from_betas(betas)
    }
}

/// A discrete noise schedule with all derived tables precomputed in `f64`.
///
/// See [`NoiseSchedule`] for the tables and their equations.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscreteSchedule {
    original_timesteps: Vec<usize>,
    betas: Vec<f64>,
    alphas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    log_alphas_cumprod: Vec<f64>,
    alphas_cumprod_prev: Vec<f64>,
    sqrt_alphas_cumprod: Vec<f64>,
    sqrt_one_minus_alphas_cumprod: Vec<f64>,
    posterior_variance: Vec<f64>,
    posterior_log_variance_clipped: Vec<f64>,
    posterior_mean_coef1: Vec<f64>,
    posterior_mean_coef2: Vec<f64>,
    snr: Vec<f64>,
}

impl DiscreteSchedule {
    /// A schedule from explicit betas (timesteps `0..T`).
    ///
    /// # Errors
    /// [`DiffusionError::InvalidBeta`] for a β that is not finite or not in (0, 1) (exactly
    /// 1 is allowed for the last step only); [`DiffusionError::InvalidConfig`] if empty.
    pub fn from_betas(betas: Vec<f64>) -> error::Result<Self> {
        let original = (0..betas.len()).collect();
        Self::with_original_timesteps(betas, original)
    }

    fn with_original_timesteps(
        betas: Vec<f64>,
        original_timesteps: Vec<usize>,
    ) -> error::Result<Self> {
        validate_betas(&betas)?;
        let alphas = betas.iter().map(|b| 1.0 - b).collect();
        // log ᾱ_t = Σ log(1 − β_s) by ln_1p keeps 1 − ᾱ_t = −expm1(log ᾱ_t) accurate
        // when ᾱ_t ≈ 1.
        let log_alphas_cumprod = betas
            .iter()
            .scan(0.0, |acc, b| {
                *acc += (-b).ln_1p();
                Some(*acc)
            })
            .collect();
        Ok(Self::from_steps(
            betas,
            alphas,
            log_alphas_cumprod,
            original_timesteps,
        ))
    }

    /// All tables from β_t, α_t = 1 − β_t and log ᾱ_t, each given in the form that is
    /// exact for it (β_t may round to 1 where α_t is tiny but positive).
    fn from_steps(
        betas: Vec<f64>,
        alphas: Vec<f64>,
        log_alphas_cumprod: Vec<f64>,
        original_timesteps: Vec<usize>,
    ) -> Self {
        let n = betas.len();
        let alphas_cumprod: Vec<f64> = log_alphas_cumprod.iter().map(|l| l.exp()).collect();
        let one_minus: Vec<f64> = log_alphas_cumprod.iter().map(|l| -l.exp_m1()).collect();
        let alphas_cumprod_prev: Vec<f64> = core::iter::once(1.0)
            .chain(alphas_cumprod[..n - 1].iter().copied())
            .collect();
        let one_minus_prev: Vec<f64> = core::iter::once(0.0)
            .chain(one_minus[..n - 1].iter().copied())
            .collect();
        let posterior_variance: Vec<f64> = (0..n)
            .map(|t| betas[t] * one_minus_prev[t] / one_minus[t])
            .collect();
        let posterior_log_variance_clipped = (0..n)
            .map(|t| match (t, n) {
                (0, 1) => betas[0].ln(),
                (0, _) => posterior_variance[1].ln(),
                _ => posterior_variance[t].ln(),
            })
            .collect();
        Self {
            original_timesteps,
            sqrt_alphas_cumprod: alphas_cumprod.iter().map(|a| a.sqrt()).collect(),
            sqrt_one_minus_alphas_cumprod: one_minus.iter().map(|a| a.sqrt()).collect(),
            posterior_mean_coef1: (0..n)
                .map(|t| betas[t] * alphas_cumprod_prev[t].sqrt() / one_minus[t])
                .collect(),
            posterior_mean_coef2: (0..n)
                .map(|t| one_minus_prev[t] * alphas[t].sqrt() / one_minus[t])
                .collect(),
            snr: (0..n).map(|t| alphas_cumprod[t] / one_minus[t]).collect(),
            posterior_variance,
            posterior_log_variance_clipped,
            alphas_cumprod_prev,
            alphas_cumprod,
            log_alphas_cumprod,
            alphas,
            betas,
        }
    }

    /// A schedule over `K` of these `T` steps, chosen by `spacing`, whose betas are
    /// recomputed from the kept ᾱ so that q(x_t | x_0) is unchanged at every kept step:
    /// β'_i = 1 − ᾱ_{k_i} / ᾱ_{k_{i−1}}, with ᾱ_{k_{−1}} = 1 (improved-diffusion's
    /// `SpacedDiffusion`). The ratio is taken in log space, so it stays exact where ᾱ is
    /// tiny; β'_i may then round to exactly 1 while α'_i stays positive. [`NoiseSchedule::original_timesteps`] maps step `i` back to its
    /// training timestep (through any earlier respacing too).
    ///
    /// # Example
    /// ```
    /// use burn_diffusion::{NoiseSchedule, schedule::{ScheduleConfig, Spacing}};
    ///
    /// let full = ScheduleConfig::new().init().unwrap();
    /// let fast = full.respace(&"ddim50".parse::<Spacing>().unwrap()).unwrap();
    /// assert_eq!(fast.num_timesteps(), 50);
    /// assert_eq!(fast.original_timesteps()[1], 20);
    /// assert_eq!(fast.alphas_cumprod()[1], full.alphas_cumprod()[20]);
    /// ```
    ///
    /// # Errors
    /// See [`Spacing::timesteps`].
    pub fn respace(&self, spacing: &Spacing) -> error::Result<Self> {
        let kept = spacing.timesteps(self.num_timesteps())?;
        // log α'_i = log ᾱ_{k_i} − log ᾱ_{k_{i−1}}: exact even where ᾱ underflows or the
        // ratio is below f64's epsilon (then β'_i rounds to 1 but α'_i stays positive).
        let log_alphas_cumprod: Vec<f64> =
            kept.iter().map(|&k| self.log_alphas_cumprod[k]).collect();
        let log_alphas: Vec<f64> = log_alphas_cumprod
            .iter()
            .scan(0.0, |last, &l| {
                let log_alpha = l - *last;
                *last = l;
                Some(log_alpha)
            })
            .collect();
        let betas = log_alphas.iter().map(|l| -l.exp_m1()).collect();
        let alphas = log_alphas.iter().map(|l| l.exp()).collect();
        let original = kept.iter().map(|&k| self.original_timesteps[k]).collect();
        Ok(Self::from_steps(
            betas,
            alphas,
            log_alphas_cumprod,
            original,
        ))
    }
}

impl NoiseSchedule for DiscreteSchedule {
    fn original_timesteps(&self) -> &[usize] {
        &self.original_timesteps
    }
    fn betas(&self) -> &[f64] {
        &self.betas
    }
    fn alphas(&self) -> &[f64] {
        &self.alphas
    }
    fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }
    fn alphas_cumprod_prev(&self) -> &[f64] {
        &self.alphas_cumprod_prev
    }
    fn sqrt_alphas_cumprod(&self) -> &[f64] {
        &self.sqrt_alphas_cumprod
    }
    fn sqrt_one_minus_alphas_cumprod(&self) -> &[f64] {
        &self.sqrt_one_minus_alphas_cumprod
    }
    fn posterior_variance(&self) -> &[f64] {
        &self.posterior_variance
    }
    fn posterior_log_variance_clipped(&self) -> &[f64] {
        &self.posterior_log_variance_clipped
    }
    fn posterior_mean_coef1(&self) -> &[f64] {
        &self.posterior_mean_coef1
    }
    fn posterior_mean_coef2(&self) -> &[f64] {
        &self.posterior_mean_coef2
    }
    fn snr(&self) -> &[f64] {
        &self.snr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn diffusers_default_fixed_small_variance() {
        // diffusers' DDPMScheduler test values (7 and 1 significant digits).
        let s = ScheduleConfig::new().init().unwrap();
        assert_abs_diff_eq!(s.posterior_variance()[487], 0.0097916, epsilon = 5e-8);
        assert_abs_diff_eq!(s.posterior_variance()[999], 0.02, epsilon = 5e-6);
        assert_eq!(s.posterior_variance()[0], 0.0);
    }

    #[test]
    fn zero_terminal_snr_schedule_is_accepted_and_finite() {
        let s = ScheduleConfig::new()
            .with_rescale_zero_terminal_snr(true)
            .init()
            .unwrap();
        assert_eq!(s.betas()[999], 1.0);
        assert_eq!(s.snr()[999], 0.0);
        assert!(s.posterior_variance().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn respacing_survives_ratios_below_epsilon() {
        // β from 0.128 to 1 over 232 steps: ᾱ_154 / ᾱ_76 ≈ 1e-29, so 1 − ratio is 1 in f64
        // (CI found this case; the kept ᾱ and α' must stay exact and the tables finite).
        let full = ScheduleConfig::new()
            .with_num_timesteps(232)
            .with_beta_schedule(BetaSchedule::Linear {
                beta_start: 0.12761805128410494,
                beta_end: 1.0,
            })
            .init()
            .unwrap();
        let fast = full.respace(&Spacing::Trailing { steps: 3 }).unwrap();
        assert_eq!(fast.original_timesteps(), &[76, 154, 231]);
        let ratio = full.alphas_cumprod()[154] / full.alphas_cumprod()[76];
        assert!(ratio > 0.0 && ratio < f64::EPSILON, "ratio {ratio}");
        assert_eq!(fast.betas()[1], 1.0);
        assert!((fast.alphas()[1] / ratio - 1.0).abs() < 1e-12);
        for (i, &k) in fast.original_timesteps().iter().enumerate() {
            assert_eq!(fast.alphas_cumprod()[i], full.alphas_cumprod()[k]);
        }
        let coef2 = fast.posterior_mean_coef2()[1];
        let want = (1.0 - full.alphas_cumprod()[76]) * ratio.sqrt();
        assert!((coef2 / want - 1.0).abs() < 1e-12, "{coef2} vs {want}");
        assert!(
            fast.posterior_log_variance_clipped()
                .iter()
                .all(|v| v.is_finite())
        );
    }

    #[test]
    fn respacing_composes_original_timesteps() {
        let full = ScheduleConfig::new().init().unwrap();
        let a = full.respace(&Spacing::Ddim(100)).unwrap(); // 0, 10, 20, ...
        let b = a.respace(&Spacing::Ddim(10)).unwrap(); // every 10th of those
        assert_eq!(b.original_timesteps()[3], 300);
        assert_abs_diff_eq!(
            b.alphas_cumprod()[3],
            full.alphas_cumprod()[300],
            epsilon = 1e-15
        );
    }
}
