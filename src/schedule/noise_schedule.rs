//! The `NoiseSchedule` trait: a discrete variance schedule and every table derived from it.

/// A discrete variance schedule β_0..β_{T−1} (0-based; the article's β_1..β_T) and the
/// tables derived from it, all in `f64` on the host.
///
/// Index `t` of every table is the article's step `t + 1`. With α_t = 1 − β_t and
/// ᾱ_t = ∏_{s ≤ t} α_s:
///
/// | accessor | value at t | equation |
/// |---|---|---|
/// | `betas` | β_t | forward variances, Ho et al. eq. 2 |
/// | `alphas` | α_t = 1 − β_t | §2 |
/// | `alphas_cumprod` | ᾱ_t | eq. 4 |
/// | `alphas_cumprod_prev` | ᾱ_{t−1}, with ᾱ_{−1} = 1 | eq. 7 |
/// | `sqrt_alphas_cumprod` | √ᾱ_t | eq. 4 mean |
/// | `sqrt_one_minus_alphas_cumprod` | √(1 − ᾱ_t) | eq. 4 std |
/// | `posterior_variance` | β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t | eq. 7 |
/// | `posterior_log_variance_clipped` | log β̃_t, with β̃_0 replaced by β̃_1 | improved-diffusion |
/// | `posterior_mean_coef1` | √ᾱ_{t−1} β_t / (1 − ᾱ_t) (multiplies x_0) | eq. 7 |
/// | `posterior_mean_coef2` | √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) (multiplies x_t) | eq. 7 |
/// | `snr` | ᾱ_t / (1 − ᾱ_t) | Kingma et al. 2021 |
///
/// [`crate::schedule::DiscreteSchedule`] is the implementation the crate ships; a user with a
/// schedule of their own gives it as [`crate::schedule::BetaSchedule::Custom`], or implements this
/// trait on a type that holds the tables.
pub trait NoiseSchedule {
    /// Number of timesteps `T`.
    fn num_timesteps(&self) -> usize {
        self.betas().len()
    }
    /// The training timestep that each step of this schedule stands for: `0..T` for a
    /// schedule built directly, the kept timesteps for a respaced one.
    fn original_timesteps(&self) -> &[usize];
    /// β_t.
    fn betas(&self) -> &[f64];
    /// α_t = 1 − β_t.
    fn alphas(&self) -> &[f64];
    /// ᾱ_t = ∏_{s ≤ t} α_s (Ho et al. 2020, eq. 4).
    fn alphas_cumprod(&self) -> &[f64];
    /// ᾱ_{t−1}, with ᾱ_{−1} = 1.
    fn alphas_cumprod_prev(&self) -> &[f64];
    /// √ᾱ_t, the mean scale of q(x_t | x_0) (eq. 4).
    fn sqrt_alphas_cumprod(&self) -> &[f64];
    /// √(1 − ᾱ_t), the standard deviation of q(x_t | x_0) (eq. 4).
    fn sqrt_one_minus_alphas_cumprod(&self) -> &[f64];
    /// β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t (eq. 7); 0 at t = 0.
    fn posterior_variance(&self) -> &[f64];
    /// log β̃_t with the 0 at t = 0 replaced by β̃ of t = 1 (improved-diffusion's
    /// clipping); for a one-step schedule, log β_0.
    fn posterior_log_variance_clipped(&self) -> &[f64];
    /// √ᾱ_{t−1} β_t / (1 − ᾱ_t), the coefficient of x_0 in μ̃_t (eq. 7).
    fn posterior_mean_coef1(&self) -> &[f64];
    /// √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), the coefficient of x_t in μ̃_t (eq. 7).
    fn posterior_mean_coef2(&self) -> &[f64];
    /// Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) (Kingma et al. 2021, §2: SNR = α²/σ²).
    fn snr(&self) -> &[f64];
}
