//! The `ForwardProcess` trait: the fixed noising chain q(x_{1:T} | x_0).

use burn::tensor::Tensor;

use crate::error::Result;
use crate::gaussian::Gaussian;
use crate::noise::randn;
use crate::schedule::{TimestepInput, check_same_shape};

/// A Gaussian forward (noising) process described by four tables over `t = 0..T`:
///
/// ```text
/// q(x_t | x_0)     = N(x_t; a_t x_0,     s_t² I)     marginal (Ho et al. 2020, eq. 4)
/// q(x_t | x_{t−1}) = N(x_t; c_t x_{t−1}, d_t² I)     one transition (eq. 2)
/// ```
///
/// $$q(\mathbf x_t \mid \mathbf x_0) = \mathcal N(a_t \mathbf x_0, s_t^2 \mathbf I), \qquad q(\mathbf x_t \mid \mathbf x_{t-1}) = \mathcal N(c_t \mathbf x_{t-1}, d_t^2 \mathbf I)$$
///
/// For the variance-preserving DDPM process a_t = √ᾱ_t, s_t = √(1 − ᾱ_t), c_t = √α_t,
/// d_t² = β_t; for the variance-exploding (NCSN) process a_t = c_t = 1, s_t = σ_t,
/// d_t² = σ_t² − σ_{t−1}². At t = 0 the transition starts from the data: x_{−1} = x_0.
///
/// Implementors give the tables; every tensor method is provided. Timesteps are one per
/// example (`t`, shape `[N]`, 0-based) and are checked against `0..T`; they are host
/// [`Timesteps`](crate::schedule::Timesteps) (no device read) or a `Tensor<1, Int>` read back once per call (see
/// [`TimestepInput`]).
pub trait ForwardProcess {
    /// Number of timesteps `T`.
    fn num_timesteps(&self) -> usize;
    /// a_t, the scale of x_0 in q(x_t | x_0).
    fn signal_scale(&self) -> &[f64];
    /// s_t, the standard deviation of q(x_t | x_0).
    fn noise_std(&self) -> &[f64];
    /// c_t, the scale of x_{t−1} in q(x_t | x_{t−1}).
    fn transition_scale(&self) -> &[f64];
    /// d_t², the variance of q(x_t | x_{t−1}).
    fn transition_variance(&self) -> &[f64];

    /// The training timestep that step `t` of this process stands for, which is what a
    /// model is called with: `t` itself, or for a respaced schedule the kept original
    /// timestep ([`crate::NoiseSchedule::original_timesteps`]).
    fn model_timestep(&self, t: usize) -> usize {
        t
    }

    /// q(x_t | x_0) = N(a_t x_0, s_t² I) (Ho et al. 2020, eq. 4).
    ///
    /// # Shapes
    /// - `x0`: `[N, ...]`; `t`: `[N]`
    /// - mean `[N, ...]`; variance and log-variance `[N, 1, ..., 1]`
    ///
    /// # Errors
    /// A timestep outside `0..T`, or `t`'s length not equal to `N`.
    fn q_marginal<const D: usize>(
        &self,
        x0: Tensor<D>,
        t: &impl TimestepInput,
    ) -> Result<Gaussian<D>> {
        let ts = t.host(self.num_timesteps())?;
        let (a, s) = (self.signal_scale(), self.noise_std());
        Ok(Gaussian {
            mean: ts.gather(a, &x0)? * x0.clone(),
            variance: ts.gather_map(|t| s[t] * s[t], &x0)?,
            log_variance: ts.gather_map(|t| 2.0 * s[t].ln(), &x0)?,
        })
    }

    /// A draw x_t = a_t x_0 + s_t ε from q(x_t | x_0), for a given noise ε (the
    /// reparameterization the simplified loss is built on, Ho et al. 2020, eq. 4 / §3.2).
    ///
    /// # Shapes
    /// - `x0`, `noise`: `[N, ...]`; `t`: `[N]`; output `[N, ...]`
    ///
    /// # Errors
    /// A timestep outside `0..T`, a batch-size mismatch, or `noise` of another shape.
    fn q_sample<const D: usize>(
        &self,
        x0: Tensor<D>,
        t: &impl TimestepInput,
        noise: Tensor<D>,
    ) -> Result<Tensor<D>> {
        check_same_shape("noise vs x0", &x0, &noise)?;
        let ts = t.host(self.num_timesteps())?;
        let a = ts.gather(self.signal_scale(), &x0)?;
        let s = ts.gather(self.noise_std(), &x0)?;
        Ok(a * x0 + s * noise)
    }

    /// [`ForwardProcess::q_sample`] with noise drawn from `seed` (see [`crate::noise::randn`]).
    ///
    /// # Errors
    /// As [`ForwardProcess::q_sample`].
    fn q_sample_seeded<const D: usize>(
        &self,
        x0: Tensor<D>,
        t: &impl TimestepInput,
        seed: u64,
    ) -> Result<Tensor<D>> {
        let noise = randn(x0.shape(), seed, &x0.device());
        self.q_sample(x0, t, noise)
    }

    /// One transition q(x_t | x_{t−1}) = N(c_t x_{t−1}, d_t² I) (Ho et al. 2020, eq. 2).
    ///
    /// # Shapes
    /// - `x_prev`: `[N, ...]`; `t`: `[N]`
    /// - mean `[N, ...]`; variance and log-variance `[N, 1, ..., 1]`
    ///
    /// # Errors
    /// A timestep outside `0..T`, or a batch-size mismatch.
    fn q_step<const D: usize>(
        &self,
        x_prev: Tensor<D>,
        t: &impl TimestepInput,
    ) -> Result<Gaussian<D>> {
        let ts = t.host(self.num_timesteps())?;
        let d2 = self.transition_variance();
        Ok(Gaussian {
            mean: ts.gather(self.transition_scale(), &x_prev)? * x_prev.clone(),
            variance: ts.gather(d2, &x_prev)?,
            log_variance: ts.gather_map(|t| d2[t].ln(), &x_prev)?,
        })
    }

    /// A draw x_t = c_t x_{t−1} + d_t ε from q(x_t | x_{t−1}) for a given noise ε.
    ///
    /// # Shapes
    /// - `x_prev`, `noise`: `[N, ...]`; `t`: `[N]`; output `[N, ...]`
    ///
    /// # Errors
    /// A timestep outside `0..T`, a batch-size mismatch, or `noise` of another shape.
    fn q_step_sample<const D: usize>(
        &self,
        x_prev: Tensor<D>,
        t: &impl TimestepInput,
        noise: Tensor<D>,
    ) -> Result<Tensor<D>> {
        check_same_shape("noise vs x_prev", &x_prev, &noise)?;
        let step = self.q_step(x_prev, t)?;
        Ok(step.mean + step.variance.sqrt() * noise)
    }
}
