//! σ grids: the discrete VP chain seen as x_t / a_t = x_0 + σ_t·ε (Karras et al. 2022,
//! "Elucidating the Design Space", §2), with the step grids users choose by name.

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::prediction::Prediction;
use crate::process::ForwardProcess;
use crate::sampler::Visits;
use crate::sampler::base::X0Options;
use crate::schedule::Spacing;

/// How a σ grid picks its K noise levels σ_0 > σ_1 > … > σ_{K−1} (the final level,
/// [`FinalSigma`], is added after them).
///
/// On a variance-preserving process, σ_t = s_t / a_t = √((1 − ᾱ_t)/ᾱ_t). `range` is
/// (σ_min, σ_max); `None` is the schedule's own range [σ_0, σ_{T−1}] (what diffusers uses
/// unless its config sets `sigma_min` / `sigma_max`).
#[derive(Debug, Clone, PartialEq)]
pub enum SigmaSchedule {
    /// σ_t at the (integer) timesteps `spacing` keeps, largest first.
    Spaced(Spacing),
    /// σ at `steps` evenly spaced fractional timesteps from T − 1 down to 0, linearly
    /// interpolated between the schedule's σ's (diffusers' Euler-family default,
    /// `timestep_spacing = "linspace"`: `np.interp(np.linspace(0, T − 1, K), …)`).
    Interpolated {
        /// K.
        steps: usize,
    },
    /// Karras et al. (2022, eq. 5): σ_i = (σ_max^{1/ρ} + i/(K−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ.
    /// ρ = 7 is the paper's (diffusers' `use_karras_sigmas`).
    Karras {
        /// K.
        steps: usize,
        /// ρ (7 in the paper and in diffusers).
        rho: f64,
        /// (σ_min, σ_max), or the schedule's range.
        range: Option<(f64, f64)>,
    },
    /// log σ evenly spaced from log σ_max to log σ_min (diffusers' `use_exponential_sigmas`).
    Exponential {
        /// K.
        steps: usize,
        /// (σ_min, σ_max), or the schedule's range.
        range: Option<(f64, f64)>,
    },
    /// σ_i = σ_min + F⁻¹(1 − i/(K−1))·(σ_max − σ_min) with F the Beta(α, β) CDF (Lee et
    /// al. 2024, "Beta Sampling is All You Need"; diffusers' `use_beta_sigmas`, α = β = 0.6).
    Beta {
        /// K.
        steps: usize,
        /// α of the Beta distribution (0.6 in diffusers).
        alpha: f64,
        /// β of the Beta distribution (0.6 in diffusers).
        beta: f64,
        /// (σ_min, σ_max), or the schedule's range.
        range: Option<(f64, f64)>,
    },
    /// σ_t at explicit timesteps, strictly decreasing and below T.
    Timesteps(Vec<usize>),
    /// Explicit levels, strictly decreasing and positive.
    Custom(Vec<f64>),
}

impl SigmaSchedule {
    /// Karras et al.'s grid with ρ = 7 over the schedule's range.
    pub fn karras(steps: usize) -> Self {
        Self::Karras {
            steps,
            rho: 7.0,
            range: None,
        }
    }

    /// The exponential grid over the schedule's range.
    pub fn exponential(steps: usize) -> Self {
        Self::Exponential { steps, range: None }
    }

    /// The Beta(0.6, 0.6) grid over the schedule's range.
    pub fn beta(steps: usize) -> Self {
        Self::Beta {
            steps,
            alpha: 0.6,
            beta: 0.6,
            range: None,
        }
    }
}

/// The level the last step goes to (diffusers' `final_sigmas_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FinalSigma {
    /// σ = 0: the last step lands on the data (x̂_0). The default.
    #[default]
    Zero,
    /// σ_0 of the schedule, the smallest level of the training chain.
    Min,
}

/// What timestep the model is called with at a level σ that falls between training
/// timesteps (Karras, exponential, Beta and interpolated grids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelTime {
    /// The nearest training timestep (ties to even, as `np.round`): works with every
    /// [`crate::Denoiser`]. diffusers' DPM-Solver and UniPC do this. The default.
    #[default]
    Rounded,
    /// The fractional timestep t(σ), interpolated in log σ between training timesteps
    /// (diffusers' Euler, Euler ancestral and Heun): the model must implement
    /// [`crate::Denoiser::denoise_fractional`] (the crate's UNet and MLP do).
    Fractional,
}

/// A validated σ grid over a variance-preserving process: K levels, the final level, and
/// the model timestep of each level.
///
/// A σ-grid sampler works on x_t of the crate's convention (x_t = a_t·x_0 + s_t·ε, what
/// the model sees, diffusers' `scale_model_input(sample)`); at level σ its coefficients
/// are a(σ) = 1/√(1 + σ²), s(σ) = σ·a(σ). Levels between training timesteps are mapped to
/// a timestep by interpolating log σ (diffusers' `_sigma_to_t`).
///
/// # Example
/// ```
/// use burn_diffusion::process::VpProcess;
/// use burn_diffusion::sampler::{FinalSigma, ModelTime, SigmaGrid, SigmaSchedule};
/// use burn_diffusion::schedule::ScheduleConfig;
///
/// let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
/// let grid = SigmaGrid::new(&process, &SigmaSchedule::karras(10), FinalSigma::Zero, ModelTime::Rounded)?;
/// assert_eq!(grid.levels(), 10);
/// assert!(grid.sigma(0) > 150.0 && grid.sigma(10) == 0.0);
/// assert_eq!(grid.visits().timesteps()[0], 999);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaGrid {
    /// K levels then the final one.
    sigmas: Vec<f64>,
    /// The fractional process timestep of each of the K levels.
    times: Vec<f64>,
    /// The fractional model (training) timestep of each level (and of a final σ_min).
    model_times: Vec<f64>,
    /// One visit per level at its rounded timestep.
    visits: Visits,
    /// `visits` and, for a final σ_min, a last visit at timestep 0.
    extended: Visits,
    model_time: ModelTime,
}

impl SigmaGrid {
    /// The grid `schedule` gives on `process`, ending at `last`.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] for a process that is not variance preserving or
    /// has an infinite σ (zero terminal SNR), zero steps, a non-finite or non-positive ρ,
    /// α, β or range, σ_min ≥ σ_max, custom levels that are not strictly decreasing and
    /// positive, or levels that are not strictly decreasing after construction (a final
    /// σ_min at or above the last level); as [`Spacing::timesteps`] for a spacing.
    pub fn new<P: ForwardProcess + ?Sized>(
        process: &P,
        schedule: &SigmaSchedule,
        last: FinalSigma,
        model_time: ModelTime,
    ) -> error::Result<Self> {
        let table = sigma_table(process)?;
        let full = (table[0], table[table.len() - 1]);
        // The levels, and their timesteps where the grid is made of timesteps.
        let (mut sigmas, times): (Vec<f64>, Option<Vec<f64>>) = match schedule {
            SigmaSchedule::Spaced(spacing) => {
                let mut ts = spacing.timesteps(table.len())?;
                ts.reverse();
                at_timesteps(&table, &ts)
            }
            SigmaSchedule::Timesteps(ts) => {
                Visits::new(process, ts.clone())?;
                at_timesteps(&table, ts)
            }
            SigmaSchedule::Interpolated { steps } => {
                let k = check_steps(*steps)?;
                let top = (table.len() - 1) as f64;
                // diffusers' timesteps are float32.
                let ts: Vec<f64> = crate::schedule::linspace(top, 0.0, k)
                    .iter()
                    .map(|&t| t as f32 as f64)
                    .collect();
                (
                    ts.iter().map(|&t| interpolate(&table, t)).collect(),
                    Some(ts),
                )
            }
            SigmaSchedule::Karras { steps, rho, range } => {
                let k = check_steps(*steps)?;
                check_positive("Karras rho", *rho)?;
                let (lo, hi) = check_range(range.unwrap_or(full))?;
                let (lo, hi) = (lo.powf(1.0 / rho), hi.powf(1.0 / rho));
                let sigmas = ramp(k).map(|r| (hi + r * (lo - hi)).powf(*rho));
                (sigmas.collect(), None)
            }
            SigmaSchedule::Exponential { steps, range } => {
                let k = check_steps(*steps)?;
                let (lo, hi) = check_range(range.unwrap_or(full))?;
                let sigmas = ramp(k).map(|r| (hi.ln() + r * (lo.ln() - hi.ln())).exp());
                (sigmas.collect(), None)
            }
            SigmaSchedule::Beta {
                steps,
                alpha,
                beta,
                range,
            } => {
                let k = check_steps(*steps)?;
                check_positive("Beta sigmas alpha", *alpha)?;
                check_positive("Beta sigmas beta", *beta)?;
                let (lo, hi) = check_range(range.unwrap_or(full))?;
                let sigmas =
                    ramp(k).map(|r| lo + beta_quantile(1.0 - r, *alpha, *beta) * (hi - lo));
                (sigmas.collect(), None)
            }
            SigmaSchedule::Custom(levels) => (levels.clone(), None),
        };
        check_levels(&sigmas)?;
        let times =
            times.unwrap_or_else(|| sigmas.iter().map(|&s| sigma_to_t(&table, s)).collect());
        sigmas.push(match last {
            FinalSigma::Zero => 0.0,
            FinalSigma::Min => table[0],
        });
        if sigmas[sigmas.len() - 1] >= sigmas[sigmas.len() - 2] {
            return Err(DiffusionError::config(
                "final sigma",
                sigmas[sigmas.len() - 1],
                format!(
                    "must be below the last level {} (use FinalSigma::Zero)",
                    sigmas[sigmas.len() - 2]
                ),
            ));
        }
        // A final σ_min is the schedule's σ_0: timestep 0, for solvers that call the model
        // there (Heun's last corrector).
        let mut ext_times = times.clone();
        if last == FinalSigma::Min {
            ext_times.push(0.0);
        }
        let model_times = ext_times
            .iter()
            .map(|&t| fractional_model_timestep(process, t))
            .collect();
        let rounded = ext_times.iter().map(|&t| round_time(t)).collect();
        let extended = Visits::with_repeats(process, rounded)?;
        let levels: Vec<usize> = (0..times.len()).collect();
        Ok(Self {
            visits: extended.select(&levels),
            extended,
            sigmas,
            times,
            model_times,
            model_time,
        })
    }

    /// K, the number of levels before the final one (the number of steps of a one-stage
    /// solver).
    pub fn levels(&self) -> usize {
        self.times.len()
    }

    /// σ of level `i` (`i = levels()` is the final level).
    ///
    /// # Panics
    /// For `i > levels()`.
    pub fn sigma(&self, i: usize) -> f64 {
        self.sigmas[i]
    }

    /// All levels, the final one last.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// The process timestep of each of the K levels: the grid's own timesteps for
    /// `Spaced` and `Interpolated`, t(σ) by log-σ interpolation for the others.
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// One visit per level, at its rounded timestep (repeats allowed: several small
    /// Karras levels can round to one timestep; the solvers step in σ, so they are not
    /// affected).
    pub fn visits(&self) -> &Visits {
        &self.visits
    }

    /// How the model's timestep is chosen.
    pub fn model_time(&self) -> ModelTime {
        self.model_time
    }

    /// Visits at the given levels, in order (non-decreasing; `levels()` is allowed for a
    /// final σ_min), for solvers that call the model more than once per level.
    pub(crate) fn visits_at(&self, levels: &[usize]) -> Visits {
        self.extended.select(levels)
    }

    /// (a, s) of q(x_t | x_0) at level `level` (`None` past the K levels).
    pub(crate) fn marginal(&self, level: usize) -> Option<(f64, f64)> {
        self.visits.get(level).ok()?;
        Some(vp_scales(self.sigma(level)))
    }

    /// The fractional model timestep of level `level`, when the grid calls the model at
    /// fractional timesteps and this level is between training timesteps.
    pub(crate) fn fractional_time(&self, level: usize) -> Option<f64> {
        match self.model_time {
            ModelTime::Fractional => self.model_times.get(level).copied(),
            ModelTime::Rounded => None,
        }
    }
}

/// The [`crate::ReverseSampler`] methods of a sampler that visits each level of its
/// `grid: SigmaGrid` field once: `visits`, `marginal` and `fractional_model_time`.
macro_rules! visits_each_level {
    () => {
        fn visits(&self) -> &crate::sampler::Visits {
            self.grid.visits()
        }

        fn marginal(&self, i: usize) -> Option<(f64, f64)> {
            self.grid.marginal(i)
        }

        fn fractional_model_time(&self, i: usize) -> Option<f64> {
            self.grid.fractional_time(i)
        }
    };
}
pub(crate) use visits_each_level;

/// a(σ) = 1/√(1 + σ²) and s(σ) = σ·a(σ): the VP coefficients at level σ.
pub(crate) fn vp_scales(sigma: f64) -> (f64, f64) {
    let a = 1.0 / (1.0 + sigma * sigma).sqrt();
    (a, sigma * a)
}

/// x / a(σ): the sample in the variance-exploding coordinates x_0 + σ·ε (k-diffusion's
/// and diffusers' Euler-family `sample`).
pub(crate) fn to_ve<const D: usize>(x: Tensor<D>, sigma: f64) -> Tensor<D> {
    x * (1.0 + sigma * sigma).sqrt()
}

/// a(σ)·x: back from [`to_ve`]'s coordinates.
pub(crate) fn from_ve<const D: usize>(x: Tensor<D>, sigma: f64) -> Tensor<D> {
    x * vp_scales(sigma).0
}

/// x̂_0 from a model's output at level σ (after clipping or thresholding), in the crate's
/// x_t coordinates: ε: (x − s ε̂)/a; v: a x − s v̂; x_0: the output.
pub(crate) fn x0_at_sigma<const D: usize>(
    options: &X0Options,
    x_t: &Tensor<D>,
    output: Tensor<D>,
    sigma: f64,
) -> error::Result<Tensor<D>> {
    crate::schedule::check_same_shape("model output vs x_t", x_t, &output)?;
    let (a, s) = vp_scales(sigma);
    let x0 = match options.prediction {
        Prediction::Epsilon => (x_t.clone() - output * s) / a,
        Prediction::Velocity => x_t.clone() * a - output * s,
        Prediction::Sample => output,
    };
    Ok(options.finish(x0))
}

/// σ_t = s_t / a_t of every timestep of a VP process.
fn sigma_table<P: ForwardProcess + ?Sized>(process: &P) -> error::Result<Vec<f64>> {
    let (a, s) = (process.signal_scale(), process.noise_std());
    if let Some(t) = (0..a.len()).find(|&t| (a[t] * a[t] + s[t] * s[t] - 1.0).abs() > 1e-9) {
        return Err(DiffusionError::config(
            "process",
            format!("a_t² + s_t² = {} at t = {t}", a[t] * a[t] + s[t] * s[t]),
            "σ-grid samplers need a variance-preserving process (a_t² + s_t² = 1)",
        ));
    }
    if let Some(t) = (0..a.len()).find(|&t| a[t] <= 0.0) {
        return Err(DiffusionError::config(
            "process",
            format!("a_t = 0 at t = {t}"),
            "σ_t = s_t/a_t is infinite (a zero-terminal-SNR schedule): σ-grid samplers \
             need every a_t > 0; use DDIM or DPM-Solver with v-prediction instead",
        ));
    }
    Ok((0..a.len()).map(|t| s[t] / a[t]).collect())
}

/// The levels at integer timesteps `ts`, with those timesteps.
fn at_timesteps(table: &[f64], ts: &[usize]) -> (Vec<f64>, Option<Vec<f64>>) {
    let sigmas = ts.iter().map(|&t| table[t]).collect();
    (sigmas, Some(ts.iter().map(|&t| t as f64).collect()))
}

/// `np.interp(t, arange(T), table)`.
fn interpolate(table: &[f64], t: f64) -> f64 {
    let lo = (t.floor() as usize).min(table.len() - 1);
    let hi = (lo + 1).min(table.len() - 1);
    let w = t - lo as f64;
    table[lo] + w * (table[hi] - table[lo])
}

/// diffusers' `_sigma_to_t`: the fractional timestep whose σ is `sigma`, linear in log σ
/// between neighbouring timesteps, clamped to [0, T − 1].
fn sigma_to_t(table: &[f64], sigma: f64) -> f64 {
    if table.len() == 1 {
        return 0.0;
    }
    let log_sigma = sigma.max(1e-10).ln();
    // The last timestep with log σ_t ≤ log σ (0 when there is none), at most T − 2.
    let below = table.partition_point(|s| s.ln() <= log_sigma);
    let low = below.saturating_sub(1).min(table.len() - 2);
    let (l, h) = (table[low].ln(), table[low + 1].ln());
    let w = ((l - log_sigma) / (l - h)).clamp(0.0, 1.0);
    low as f64 + w
}

/// The training timestep of fractional process timestep `t` (interpolated between the
/// original timesteps of a respaced process).
fn fractional_model_timestep<P: ForwardProcess + ?Sized>(process: &P, t: f64) -> f64 {
    let lo = t.floor() as usize;
    let hi = (lo + 1).min(process.num_timesteps() - 1);
    let (m_lo, m_hi) = (
        process.model_timestep(lo) as f64,
        process.model_timestep(hi) as f64,
    );
    m_lo + (t - lo as f64) * (m_hi - m_lo)
}

fn round_time(t: f64) -> usize {
    t.round_ties_even() as usize
}

/// 0, 1/(K−1), …, 1 (just 0 for K = 1), as `np.linspace(0, 1, K)`.
fn ramp(k: usize) -> impl Iterator<Item = f64> {
    let denominator = (k.max(2) - 1) as f64;
    (0..k).map(move |i| i as f64 / denominator)
}

fn check_steps(steps: usize) -> error::Result<usize> {
    if steps == 0 {
        return Err(DiffusionError::config(
            "sigma grid steps",
            0,
            "must be at least 1",
        ));
    }
    crate::size::check_elements("sigma grid steps", &[steps], 8)?;
    Ok(steps)
}

fn check_positive(what: &'static str, value: f64) -> error::Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(DiffusionError::config(
            what,
            value,
            "must be finite and > 0",
        ))
    }
}

fn check_range((lo, hi): (f64, f64)) -> error::Result<(f64, f64)> {
    check_positive("sigma_min", lo)?;
    check_positive("sigma_max", hi)?;
    if lo >= hi {
        return Err(DiffusionError::config(
            "sigma range",
            format!("({lo}, {hi})"),
            "sigma_min must be below sigma_max",
        ));
    }
    Ok((lo, hi))
}

/// K ≥ 1 positive, finite, strictly decreasing levels.
fn check_levels(sigmas: &[f64]) -> error::Result<()> {
    if sigmas.is_empty() {
        return Err(DiffusionError::config(
            "sigma levels",
            "[]",
            "need at least one level",
        ));
    }
    if let Some(s) = sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(DiffusionError::config(
            "sigma levels",
            s,
            "every level must be finite and > 0",
        ));
    }
    if let Some(w) = sigmas.windows(2).find(|w| w[1] >= w[0]) {
        return Err(DiffusionError::config(
            "sigma levels",
            format!("{} then {}", w[0], w[1]),
            "levels must be strictly decreasing",
        ));
    }
    Ok(())
}

/// The p-quantile of Beta(α, β), by bisection on its CDF (52 halvings: f64 precision).
fn beta_quantile(p: f64, alpha: f64, beta: f64) -> f64 {
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if regularized_beta(mid, alpha, beta) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The regularized incomplete beta function I_x(α, β), by its continued fraction
/// (Lentz's method), using the symmetry I_x(α, β) = 1 − I_{1−x}(β, α) where the fraction
/// converges slowly.
fn regularized_beta(x: f64, alpha: f64, beta: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x > (alpha + 1.0) / (alpha + beta + 2.0) {
        return 1.0 - regularized_beta(1.0 - x, beta, alpha);
    }
    let log_front = alpha * x.ln() + beta * (1.0 - x).ln() - ln_beta(alpha, beta);
    log_front.exp() * beta_fraction(x, alpha, beta) / alpha
}

/// The continued fraction of the incomplete beta function (Numerical Recipes' `betacf`).
fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..1000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        for aa in [
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ] {
            d = 1.0 + aa * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + aa / c;
            c = if c.abs() < TINY { TINY } else { c };
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// ln B(α, β) = ln Γ(α) + ln Γ(β) − ln Γ(α + β).
fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9: ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |acc, (i, g)| acc + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::VpProcess;
    use crate::schedule::ScheduleConfig;

    fn process() -> VpProcess {
        VpProcess::new(ScheduleConfig::new().init().unwrap())
    }

    #[test]
    fn karras_grid_has_its_endpoints_and_rho_spacing() {
        let p = process();
        let table = sigma_table(&p).unwrap();
        let g = SigmaGrid::new(
            &p,
            &SigmaSchedule::karras(5),
            FinalSigma::Zero,
            ModelTime::Rounded,
        )
        .unwrap();
        assert!((g.sigma(0) - table[999]).abs() < 1e-9 * table[999]);
        assert!((g.sigma(4) - table[0]).abs() < 1e-12);
        // σ^{1/ρ} is evenly spaced.
        let roots: Vec<f64> = g.sigmas()[..5].iter().map(|s| s.powf(1.0 / 7.0)).collect();
        for w in roots.windows(3) {
            assert!(((w[0] - w[1]) - (w[1] - w[2])).abs() < 1e-12);
        }
        assert_eq!(g.sigma(5), 0.0);
        // The ends map back to the ends of the schedule.
        assert!((g.times()[0] - 999.0).abs() < 1e-9 && g.times()[4].abs() < 1e-9);
    }

    #[test]
    fn sigma_to_t_inverts_the_table_and_clamps() {
        let table = sigma_table(&process()).unwrap();
        for t in [0usize, 1, 17, 500, 998, 999] {
            assert!(
                (sigma_to_t(&table, table[t]) - t as f64).abs() < 1e-9,
                "t = {t}"
            );
        }
        // Halfway in log σ between two timesteps is halfway in t.
        let mid = (table[40].ln() * 0.5 + table[41].ln() * 0.5).exp();
        assert!((sigma_to_t(&table, mid) - 40.5).abs() < 1e-9);
        assert_eq!(sigma_to_t(&table, table[0] / 2.0), 0.0);
        assert_eq!(sigma_to_t(&table, table[999] * 2.0), 999.0);
    }

    #[test]
    fn beta_quantile_matches_closed_forms() {
        // Beta(1, 1) is uniform; Beta(2, 1) has F(x) = x² and Beta(1, 2) F(x) = 1 − (1 − x)².
        for p in [0.1, 0.25, 0.5, 0.9] {
            assert!((beta_quantile(p, 1.0, 1.0) - p).abs() < 1e-12);
            assert!((beta_quantile(p, 2.0, 1.0) - p.sqrt()).abs() < 1e-12);
            assert!((beta_quantile(p, 1.0, 2.0) - (1.0 - (1.0 - p).sqrt())).abs() < 1e-12);
        }
        // Beta(0.5, 0.5) is the arcsine law: F(x) = (2/π) asin √x.
        for p in [0.05, 0.3, 0.5, 0.77] {
            let want = (p * std::f64::consts::FRAC_PI_2).sin().powi(2);
            assert!((beta_quantile(p, 0.5, 0.5) - want).abs() < 1e-12, "p = {p}");
        }
    }

    #[test]
    fn bad_grids_are_errors() {
        let p = process();
        let grid = |s: SigmaSchedule, last| SigmaGrid::new(&p, &s, last, ModelTime::Rounded);
        assert!(grid(SigmaSchedule::karras(0), FinalSigma::Zero).is_err());
        let bad_rho = SigmaSchedule::Karras {
            steps: 4,
            rho: f64::NAN,
            range: None,
        };
        assert!(grid(bad_rho, FinalSigma::Zero).is_err());
        let flipped = SigmaSchedule::Exponential {
            steps: 4,
            range: Some((2.0, 1.0)),
        };
        assert!(grid(flipped, FinalSigma::Zero).is_err());
        assert!(grid(SigmaSchedule::Custom(vec![3.0, 3.0]), FinalSigma::Zero).is_err());
        assert!(grid(SigmaSchedule::Custom(vec![3.0, -1.0]), FinalSigma::Zero).is_err());
        // A final σ_min at or above the last level.
        let low = sigma_table(&p).unwrap()[0];
        assert!(grid(SigmaSchedule::Custom(vec![1.0, low]), FinalSigma::Min).is_err());
        assert!(grid(SigmaSchedule::Custom(vec![1.0, low]), FinalSigma::Zero).is_ok());
    }
}
