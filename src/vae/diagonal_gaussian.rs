//! The diagonal Gaussian of a VAE's encoder q_φ(z | x) and prior p(z): reparameterized
//! sampling, log-density and closed-form KL.

use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::gaussian::{Gaussian, gaussian_log_likelihood, normal_kl, normal_kl_unchecked};
use crate::noise::randn;
use crate::schedule::check_same_shape;

/// A batch of diagonal Gaussians N(μ, diag(σ²)) given by mean and log-variance: one
/// distribution per example (the first dimension), over all remaining dimensions.
///
/// This is the encoder output q_φ(z | x) of a VAE (Kingma & Welling 2014, §3; the article's
/// "mean and variance parameterization μ_φ, Σ_φ") and, with [`DiagonalGaussian::standard`],
/// its prior p(z) = N(0, I). Unlike [`Gaussian`], whose variance may broadcast (one per
/// example for the diffusion processes), every element here has its own log-variance, and
/// the log-variance is the parameter: a network outputs it unconstrained, and
/// σ = exp(½·log σ²) never needs a square root of an underflowed variance.
///
/// # Shapes
/// `mean` and `log_variance` are `[N, ...]` with the same shape; per-example results
/// ([`log_prob`](Self::log_prob), [`kl`](Self::kl)) are `[N]`, summed over the other
/// dimensions.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use burn_diffusion::vae::DiagonalGaussian;
///
/// let device = Device::flex();
/// let q = DiagonalGaussian::new(
///     Tensor::<2>::from_floats([[1.0, 0.0]], &device),
///     Tensor::<2>::from_floats([[0.0, 0.0]], &device),
/// )?;
/// // KL(N((1, 0), I) ‖ N(0, I)) = ½·1² = ½.
/// let kl: f32 = q.kl_standard().into_scalar();
/// assert!((kl - 0.5).abs() < 1e-6);
/// let z = q.sample_seeded(7); // μ + σ·ε, differentiable in μ and log σ²
/// assert_eq!(z.dims(), [1, 2]);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DiagonalGaussian<const D: usize> {
    mean: Tensor<D>,
    log_variance: Tensor<D>,
}

impl<const D: usize> DiagonalGaussian<D> {
    /// N(mean, diag(exp(log_variance))).
    ///
    /// # Errors
    /// [`crate::DiffusionError::ShapeMismatch`] if the two shapes differ.
    pub fn new(mean: Tensor<D>, log_variance: Tensor<D>) -> Result<Self> {
        check_same_shape("log_variance vs mean", &mean, &log_variance)?;
        Ok(Self { mean, log_variance })
    }

    /// The standard normal N(0, I) of the given shape: the VAE prior p(z).
    pub fn standard(shape: [usize; D], device: &Device) -> Self {
        let mean = Tensor::zeros(shape, device);
        Self {
            log_variance: mean.zeros_like(),
            mean,
        }
    }

    /// Builds without the shape check, for callers whose shapes match by construction.
    pub(crate) fn from_parts(mean: Tensor<D>, log_variance: Tensor<D>) -> Self {
        Self { mean, log_variance }
    }

    /// The mean μ.
    pub fn mean(&self) -> &Tensor<D> {
        &self.mean
    }

    /// The log-variance log σ².
    pub fn log_variance(&self) -> &Tensor<D> {
        &self.log_variance
    }

    /// The variance σ² = exp(log σ²).
    pub fn variance(&self) -> Tensor<D> {
        self.log_variance.clone().exp()
    }

    /// The standard deviation σ = exp(½·log σ²).
    pub fn std(&self) -> Tensor<D> {
        (self.log_variance.clone() * 0.5).exp()
    }

    /// The shape `[N, ...]` of a draw.
    pub fn dims(&self) -> [usize; D] {
        self.mean.dims()
    }

    /// (mean, log-variance).
    pub fn into_parts(self) -> (Tensor<D>, Tensor<D>) {
        (self.mean, self.log_variance)
    }

    /// The reparameterized draw z = μ + σ ⊙ ε for a given standard normal `noise` ε
    /// (Kingma & Welling 2014, §2.4): z is a differentiable function of μ and log σ², so
    /// gradients of anything computed from z reach the encoder through the sample.
    ///
    /// # Shapes
    /// `noise` has the mean's shape, which is the output's.
    ///
    /// # Errors
    /// [`crate::DiffusionError::ShapeMismatch`] if `noise` does not have the mean's shape.
    pub fn sample_with(&self, noise: Tensor<D>) -> Result<Tensor<D>> {
        check_same_shape("noise vs mean", &self.mean, &noise)?;
        Ok(self.mean.clone() + self.std() * noise)
    }

    /// [`sample_with`](Self::sample_with) with ε drawn by [`crate::noise::randn`] from `seed`
    /// (the same numbers on every device).
    pub fn sample_seeded(&self, seed: u64) -> Tensor<D> {
        let noise = randn(self.mean.shape(), seed, &self.mean.device());
        self.mean.clone() + self.std() * noise
    }

    /// log q(x) = Σ_i log N(x_i; μ_i, σ_i²) per example, in nats (the sum over all
    /// non-batch dimensions of [`crate::gaussian::gaussian_log_likelihood`]).
    ///
    /// # Shapes
    /// `x`: the mean's shape `[N, ...]`; output `[N]`.
    ///
    /// # Errors
    /// [`crate::DiffusionError::ShapeMismatch`] if `x` does not have the mean's shape.
    pub fn log_prob(&self, x: Tensor<D>) -> Result<Tensor<1>> {
        check_same_shape("x vs mean", &self.mean, &x)?;
        let elementwise = gaussian_log_likelihood(x, self.mean.clone(), self.log_variance.clone())?;
        Ok(sum_flat(elementwise))
    }

    /// KL(self ‖ other) per example, in nats, in closed form: the sum over all non-batch
    /// dimensions of [`crate::gaussian::normal_kl`],
    ///
    /// ```text
    /// KL = Σ_i ½ (log σ₂ᵢ² − log σ₁ᵢ² + σ₁ᵢ²/σ₂ᵢ² + (μ₁ᵢ − μ₂ᵢ)²/σ₂ᵢ² − 1)
    /// ```
    ///
    /// $$D_{\mathrm{KL}}(q\,\|\,p) = \sum_i \tfrac12\Big(\log\frac{\sigma_{2,i}^2}{\sigma_{1,i}^2} + \frac{\sigma_{1,i}^2 + (\mu_{1,i}-\mu_{2,i})^2}{\sigma_{2,i}^2} - 1\Big)$$
    ///
    /// # Shapes
    /// `other` has this distribution's shape `[N, ...]`; output `[N]`.
    ///
    /// # Errors
    /// [`crate::DiffusionError::ShapeMismatch`] if the shapes differ.
    pub fn kl(&self, other: &DiagonalGaussian<D>) -> Result<Tensor<1>> {
        check_same_shape("other vs self", &self.mean, &other.mean)?;
        let elementwise = normal_kl(
            self.mean.clone(),
            self.log_variance.clone(),
            other.mean.clone(),
            other.log_variance.clone(),
        )?;
        Ok(sum_flat(elementwise))
    }

    /// KL(self ‖ N(0, I)) per example, in nats: the VAE's regularization term (the article's
    /// D_KL(q_φ(z|x) ‖ p(z)); Kingma & Welling 2014, Appendix B),
    ///
    /// ```text
    /// KL = Σ_i ½ (μᵢ² + σᵢ² − log σᵢ² − 1)
    /// ```
    ///
    /// # Shapes
    /// Output `[N]`.
    pub fn kl_standard(&self) -> Tensor<1> {
        let zero = self.mean.zeros_like();
        // Mean and log-variance have one shape by construction, so no check is needed.
        sum_flat(normal_kl_unchecked(
            self.mean.clone(),
            self.log_variance.clone(),
            zero.clone(),
            zero,
        ))
    }
}

impl<const D: usize> From<DiagonalGaussian<D>> for Gaussian<D> {
    /// The crate's [`Gaussian`] bundle with `variance = exp(log_variance)`.
    fn from(q: DiagonalGaussian<D>) -> Self {
        Gaussian {
            variance: q.variance(),
            mean: q.mean,
            log_variance: q.log_variance,
        }
    }
}

/// The sum over every dimension but the first: `[N, ...]` → `[N]`.
pub(crate) fn sum_flat<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    let n = x.dims()[0];
    x.reshape([n as i64, -1]).sum_dim(1).reshape([n as i64])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The tensor's values as f64 (read back as f32); shared by the VAE's unit tests.
    pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
        let read: Vec<f32> = t.try_into_vec_as().unwrap();
        read.into_iter().map(f64::from).collect()
    }

    #[test]
    fn shapes_are_checked() {
        let device = Device::flex();
        let m = Tensor::<2>::zeros([2, 3], &device);
        assert!(DiagonalGaussian::new(m.clone(), Tensor::zeros([2, 1], &device)).is_err());
        let q = DiagonalGaussian::new(m.clone(), m.clone()).unwrap();
        assert!(q.sample_with(Tensor::zeros([3, 2], &device)).is_err());
        assert!(q.log_prob(Tensor::zeros([2, 4], &device)).is_err());
        let other = DiagonalGaussian::standard([1, 3], &device);
        assert!(q.kl(&other).is_err());
    }

    #[test]
    fn one_dimensional_values() {
        // N(1, 4) against N(0, 1): KL = ½(4 + 1 − ln 4 − 1) = 2 − ln 2; log N(3; 1, 4) =
        // −(2²)/(2·4) − ½ ln 4 − ½ ln 2π.
        let device = Device::flex();
        let q = DiagonalGaussian::new(
            Tensor::<2>::from_floats([[1.0]], &device),
            Tensor::<2>::from_floats([[4.0f32.ln()]], &device),
        )
        .unwrap();
        let kl = values(q.kl_standard())[0];
        assert!((kl - (2.0 - 2f64.ln())).abs() < 1e-6, "{kl}");
        let standard = DiagonalGaussian::standard([1, 1], &device);
        assert!((values(q.kl(&standard).unwrap())[0] - kl).abs() < 1e-7);
        let lp = values(q.log_prob(Tensor::from_floats([[3.0]], &device)).unwrap())[0];
        let want = -0.5 - 0.5 * 4f64.ln() - 0.5 * (2.0 * core::f64::consts::PI).ln();
        assert!((lp - want).abs() < 1e-6, "{lp} vs {want}");
        let z = values(
            q.sample_with(Tensor::from_floats([[0.5]], &device))
                .unwrap(),
        );
        assert!((z[0] - 2.0).abs() < 1e-6);
        let g: Gaussian<2> = q.into();
        assert!((values(g.variance)[0] - 4.0).abs() < 1e-5);
    }
}
