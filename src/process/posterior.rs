//! The `Posterior` trait: q(x_{t−1} | x_t, x_0), the target of every reverse step.

use burn::tensor::Tensor;

use crate::error::Result;
use crate::gaussian::Gaussian;
use crate::process::ForwardProcess;
use crate::schedule::{TimestepInput, check_same_shape};

/// The forward-process posterior q(x_{t−1} | x_t, x_0) = N(μ̃_t(x_t, x_0), β̃_t I)
/// (Ho et al. 2020, eq. 6–7):
///
/// ```text
/// μ̃_t(x_t, x_0) = coef1_t · x_0 + coef2_t · x_t
/// ```
///
/// $$\tilde\mu_t(\mathbf x_t, \mathbf x_0) = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}\mathbf x_0 + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\mathbf x_t$$
///
/// $$\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$$
///
/// for the DDPM process; any Gaussian [`crate::ForwardProcess`] has such a posterior, by
/// Bayes' rule on q(x_t | x_{t−1}) and q(x_{t−1} | x_0):
/// β̃_t = s_{t−1}² d_t² / s_t², coef1_t = a_{t−1} d_t² / s_t², coef2_t = c_t s_{t−1}² / s_t².
/// At t = 0 the posterior is a point mass at x_0 (β̃_0 = 0, coef1 = 1, coef2 = 0).
///
/// The posterior is a property of the forward process, hence the supertrait: the number
/// of timesteps is [`ForwardProcess::num_timesteps`].
pub trait Posterior: ForwardProcess {
    /// Coefficient of x_0 in μ̃_t.
    fn posterior_mean_coef1(&self) -> &[f64];
    /// Coefficient of x_t in μ̃_t.
    fn posterior_mean_coef2(&self) -> &[f64];
    /// β̃_t, the posterior variance.
    fn posterior_variance(&self) -> &[f64];
    /// log β̃_t with t = 0 clipped to the value at t = 1 (improved-diffusion's convention,
    /// so that the log-variance stays finite).
    fn posterior_log_variance_clipped(&self) -> &[f64];

    /// q(x_{t−1} | x_t, x_0): mean μ̃_t, variance β̃_t and the clipped log β̃_t
    /// (Ho et al. 2020, eq. 6–7).
    ///
    /// # Shapes
    /// - `x0`, `x_t`: `[N, ...]`; `t`: `[N]`
    /// - mean `[N, ...]`; variance and log-variance `[N, 1, ..., 1]`
    ///
    /// # Errors
    /// A timestep outside `0..T`, a batch-size mismatch, or `x_t` of another shape.
    fn q_posterior<const D: usize>(
        &self,
        x0: Tensor<D>,
        x_t: Tensor<D>,
        t: &impl TimestepInput,
    ) -> Result<Gaussian<D>> {
        check_same_shape("x_t vs x0", &x0, &x_t)?;
        let ts = t.host(self.num_timesteps())?;
        let coef1 = ts.gather(self.posterior_mean_coef1(), &x0)?;
        let coef2 = ts.gather(self.posterior_mean_coef2(), &x0)?;
        Ok(Gaussian {
            variance: ts.gather(self.posterior_variance(), &x0)?,
            log_variance: ts.gather(self.posterior_log_variance_clipped(), &x0)?,
            mean: coef1 * x0 + coef2 * x_t,
        })
    }
}
