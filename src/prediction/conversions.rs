//! What a model predicts — noise ε, data x_0 or velocity v — and the conversions between
//! them at a given x_t and t.
//!
//! With x_t = a_t x_0 + s_t ε (a_t = √ᾱ_t, s_t = √(1 − ᾱ_t) for DDPM; see
//! [`ForwardProcess`]):
//!
//! | conversion | formula | source |
//! |---|---|---|
//! | ε → x_0 | x_0 = (x_t − s_t ε) / a_t | Ho et al. 2020, eq. 4 / 15 |
//! | x_0 → ε | ε = (x_t − a_t x_0) / s_t | eq. 4 |
//! | (x_0, ε) → v | v = a_t ε − s_t x_0 | Salimans & Ho 2022, §4 |
//! | v → x_0 | x_0 = (a_t x_t − s_t v) / (a_t² + s_t²) | idem |
//! | v → ε | ε = (s_t x_t + a_t v) / (a_t² + s_t²) | idem |
//!
//! For the variance-preserving process a_t² + s_t² = 1. With a zero-terminal-SNR schedule
//! (a_{T−1} = 0), ε → x_0 divides by zero at the last step: use x_0- or v-prediction there.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::process::ForwardProcess;
use crate::schedule::{TimestepInput, Timesteps, check_same_shape};

/// The quantity a denoising model is trained to output.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::{
///     ForwardProcess,
///     noise::randn,
///     prediction::Prediction,
///     process::VpProcess,
///     schedule::ScheduleConfig,
/// };
///
/// let device = Device::flex();
/// let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
/// let x0 = randn::<2>([4, 3], 1, &device);
/// let eps = randn::<2>([4, 3], 2, &device);
/// let t = Tensor::<1, Int>::from_ints([0, 10, 500, 999], &device);
/// let x_t = process.q_sample(x0.clone(), &t, eps.clone()).unwrap();
///
/// // A perfect v-predictor's output converts back to the true x_0 and ε.
/// let v = Prediction::Velocity.target(&process, x0.clone(), eps.clone(), &t).unwrap();
/// let (x0_hat, _eps_hat) = Prediction::Velocity.to_x0_eps(&process, x_t, &t, v).unwrap();
/// assert!(x0_hat.all_close(x0, Some(1e-4), Some(1e-4)));
/// ```
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Prediction {
    /// The noise ε (Ho et al. 2020, eq. 11–12); the usual choice.
    Epsilon,
    /// The clean data x_0.
    Sample,
    /// The velocity v = a_t ε − s_t x_0 (Salimans & Ho 2022); well-behaved at every SNR.
    Velocity,
}

impl Prediction {
    /// Converts a model's `output` at `(x_t, t)` into the implied `(x_0, ε)`.
    ///
    /// # Shapes
    /// - `x_t`, `output`: `[N, ...]`; `t`: `[N]`; both results `[N, ...]`
    ///
    /// # Errors
    /// A timestep outside `0..T`, a batch-size mismatch, or `output` of another shape;
    /// ε-prediction at a timestep with a_t = 0 (zero terminal SNR: x_t holds no signal, so
    /// x̂_0 = (x_t − s_t ε̂)/a_t does not exist), which would otherwise give NaN samples.
    /// v-prediction is defined at every timestep.
    pub fn to_x0_eps<P: ForwardProcess + ?Sized, const D: usize>(
        &self,
        process: &P,
        x_t: Tensor<D>,
        t: &impl TimestepInput,
        output: Tensor<D>,
    ) -> error::Result<(Tensor<D>, Tensor<D>)> {
        check_same_shape("model output vs x_t", &x_t, &output)?;
        let ts = t.host(process.num_timesteps())?;
        let (a, s) = (process.signal_scale(), process.noise_std());
        if let (Self::Epsilon, Some(&t)) = (self, ts.as_slice().iter().find(|&&t| a[t] == 0.0)) {
            return Err(DiffusionError::config(
                "timestep",
                t,
                "epsilon prediction cannot give x0 where sqrt(alpha_bar_t) = 0 (the last step \
                 of a zero-terminal-SNR schedule): use Prediction::Velocity, or leave this \
                 timestep out of the sampler's grid",
            ));
        }
        Ok(match self {
            Self::Epsilon => {
                let x0 = linear(&ts, &x_t, |t| 1.0 / a[t], &output, |t| -s[t] / a[t])?;
                (x0, output)
            }
            Self::Sample => {
                let eps = linear(&ts, &x_t, |t| 1.0 / s[t], &output, |t| -a[t] / s[t])?;
                (output, eps)
            }
            Self::Velocity => {
                let norm = |t: usize| a[t] * a[t] + s[t] * s[t];
                let x0 = linear(&ts, &x_t, |t| a[t] / norm(t), &output, |t| -s[t] / norm(t))?;
                let eps = linear(&ts, &x_t, |t| s[t] / norm(t), &output, |t| a[t] / norm(t))?;
                (x0, eps)
            }
        })
    }

    /// The training target of this parameterization for data `x0` noised with `eps` at `t`:
    /// ε, x_0, or v = a_t ε − s_t x_0.
    ///
    /// # Shapes
    /// - `x0`, `eps`: `[N, ...]`; `t`: `[N]`; output `[N, ...]`
    ///
    /// # Errors
    /// A timestep outside `0..T`, a batch-size mismatch, or `eps` of another shape.
    pub fn target<P: ForwardProcess + ?Sized, const D: usize>(
        &self,
        process: &P,
        x0: Tensor<D>,
        eps: Tensor<D>,
        t: &impl TimestepInput,
    ) -> error::Result<Tensor<D>> {
        check_same_shape("eps vs x0", &x0, &eps)?;
        let ts = t.host(process.num_timesteps())?;
        ts.check_batch(&x0)?;
        Ok(match self {
            Self::Epsilon => eps,
            Self::Sample => x0,
            Self::Velocity => {
                let (a, s) = (process.signal_scale(), process.noise_std());
                linear(&ts, &eps, |t| a[t], &x0, |t| -s[t])?
            }
        })
    }
}

/// x_0 = (x_t − s_t ε) / a_t (Ho et al. 2020, eq. 4 solved for x_0).
///
/// # Errors
/// As [`Prediction::to_x0_eps`].
pub fn x0_from_eps<P: ForwardProcess + ?Sized, const D: usize>(
    process: &P,
    x_t: Tensor<D>,
    t: &impl TimestepInput,
    eps: Tensor<D>,
) -> error::Result<Tensor<D>> {
    Ok(Prediction::Epsilon.to_x0_eps(process, x_t, t, eps)?.0)
}

/// ε = (x_t − a_t x_0) / s_t.
///
/// # Errors
/// As [`Prediction::to_x0_eps`].
pub fn eps_from_x0<P: ForwardProcess + ?Sized, const D: usize>(
    process: &P,
    x_t: Tensor<D>,
    t: &impl TimestepInput,
    x0: Tensor<D>,
) -> error::Result<Tensor<D>> {
    Ok(Prediction::Sample.to_x0_eps(process, x_t, t, x0)?.1)
}

/// v = a_t ε − s_t x_0 (Salimans & Ho 2022).
///
/// # Errors
/// As [`Prediction::target`].
pub fn v_from_x0_eps<P: ForwardProcess + ?Sized, const D: usize>(
    process: &P,
    x0: Tensor<D>,
    eps: Tensor<D>,
    t: &impl TimestepInput,
) -> error::Result<Tensor<D>> {
    Prediction::Velocity.target(process, x0, eps, t)
}

/// `f(t)·x + g(t)·y` with the per-example coefficients computed in `f64`.
fn linear<const D: usize>(
    ts: &Timesteps,
    x: &Tensor<D>,
    f: impl Fn(usize) -> f64,
    y: &Tensor<D>,
    g: impl Fn(usize) -> f64,
) -> error::Result<Tensor<D>> {
    Ok(ts.gather_map(f, x)? * x.clone() + ts.gather_map(g, y)? * y.clone())
}
