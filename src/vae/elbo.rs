//! The VAE objective: the decoder likelihood p_θ(x | z), the evidence lower bound
//! (ELBO) per example, bits per dimension, and the importance-weighted estimate of
//! log p(x) (Burda et al. 2016).

use burn::config::Config;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Shape, Tensor};

use crate::error::{self, DiffusionError};
use crate::gaussian::{gaussian_log_likelihood, standard_normal_log_prob};
use crate::schedule::check_same_shape;
use crate::vae::diagonal_gaussian::{DiagonalGaussian, sum_flat};
use core::f64::consts::LN_2;

/// The decoder's likelihood p_θ(x | z): how a decoder output (one value per data element)
/// defines a distribution over x.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use burn_diffusion::vae::Likelihood;
///
/// let d = Device::flex();
/// let x = Tensor::<2>::from_floats([[1.0, 0.0]], &d);
/// let logits = Tensor::<2>::from_floats([[0.0, 0.0]], &d);
/// // Two fair coins: log p = 2·ln ½.
/// let lp: f32 = Likelihood::Bernoulli.log_prob(x, logits)?.into_scalar();
/// assert!((lp - 2.0 * 0.5f32.ln()).abs() < 1e-6);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Config, Debug, PartialEq, Copy)]
pub enum Likelihood {
    /// Continuous data: x ~ N(output, σ²) per element with a fixed variance
    /// σ² = exp(`log_variance`); the decoder output is the mean.
    /// log p = −(x − output)²/(2σ²) − ½·log σ² − ½·log 2π per element.
    Gaussian {
        /// log σ² of every element.
        log_variance: f64,
    },
    /// Binary data x ∈ {0, 1}: x ~ Bernoulli(sigmoid(output)) per element; the decoder
    /// output is the logit l. log p = x·l − softplus(l) = x·log σ(l) + (1 − x)·log σ(−l),
    /// computed as x·l − max(l, 0) − log1p(exp(−|l|)), finite for every logit.
    /// For intensities in (0, 1) this is the usual cross-entropy, which is not a
    /// normalized density over [0, 1].
    Bernoulli,
}

impl Likelihood {
    /// log p_θ(x | z) of each element, in nats, for decoder `output` at z.
    ///
    /// # Shapes
    /// `x` and `output` have one shape `[N, ...]`, which is the output's.
    ///
    /// # Errors
    /// [`DiffusionError::ShapeMismatch`] if the shapes differ.
    pub fn log_prob_elementwise<const D: usize>(
        &self,
        x: Tensor<D>,
        output: Tensor<D>,
    ) -> error::Result<Tensor<D>> {
        check_same_shape("decoder output vs x", &x, &output)?;
        match *self {
            Self::Gaussian { log_variance } => {
                let log_variance = Tensor::full(Shape::new([1; D]), log_variance, &output.device());
                gaussian_log_likelihood(x, output, log_variance)
            }
            Self::Bernoulli => {
                let softplus =
                    output.clone().clamp_min(0.0) + output.clone().abs().neg().exp().log1p();
                Ok(x * output - softplus)
            }
        }
    }

    /// log p_θ(x | z) per example, in nats: the sum over the non-batch dimensions of
    /// [`log_prob_elementwise`](Self::log_prob_elementwise).
    ///
    /// # Shapes
    /// `x` and `output`: `[N, ...]`; output `[N]`.
    ///
    /// # Errors
    /// [`DiffusionError::ShapeMismatch`] if the shapes differ.
    pub fn log_prob<const D: usize>(
        &self,
        x: Tensor<D>,
        output: Tensor<D>,
    ) -> error::Result<Tensor<1>> {
        self.log_prob_elementwise(x, output).map(sum_flat)
    }

    /// The mean E[x | z] of p_θ(x | z) for decoder `output`: the output itself (Gaussian)
    /// or sigmoid(output) (Bernoulli, a probability per element).
    ///
    /// # Shapes
    /// Output has the shape of `output`.
    pub fn mean<const D: usize>(&self, output: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gaussian { .. } => output,
            Self::Bernoulli => sigmoid(output),
        }
    }
}

/// The ELBO of each example and its two terms, in nats (see [`elbo`]).
///
/// Every tensor has shape `[N]` and stays differentiable on an autodiff device.
#[derive(Debug, Clone)]
pub struct Elbo {
    /// log p_θ(x | z) at the z that was given: a one-sample estimate of the
    /// reconstruction term E_q[log p_θ(x | z)].
    pub reconstruction: Tensor<1>,
    /// KL(q_φ(z | x) ‖ N(0, I)) in closed form: the regularization term.
    pub kl: Tensor<1>,
    /// `reconstruction − kl`: a (one-sample estimate of a) lower bound on log p_θ(x).
    pub elbo: Tensor<1>,
    /// Number of data elements per example (C·H·W for images), for bits per dimension.
    pub dims: usize,
}

impl Elbo {
    /// The VAE loss L(x) = −ELBO = KL − reconstruction per example (the article's L(x)):
    /// minimize its batch mean.
    pub fn loss(&self) -> Tensor<1> {
        self.elbo.clone().neg()
    }

    /// −ELBO / (dims·ln 2): the negative log-likelihood bound in bits per dimension,
    /// see [`nll_bits_per_dim`].
    pub fn nll_bits_per_dim(&self) -> Tensor<1> {
        nll_bits_per_dim(self.elbo.clone(), self.dims)
    }
}

/// A log-likelihood (or a lower bound on one) in nats per example, turned into the
/// negative log-likelihood in bits per dimension: −log p(x) / (dims · ln 2).
///
/// The sign follows the papers' convention: bits/dim are reported as an NLL (lower is
/// better), so a lower bound on log p(x) gives an upper bound in bits/dim. What the
/// number means depends on the likelihood: for a continuous Gaussian density it is a
/// differential entropy-like quantity (it can be negative and is not comparable with the
/// discrete 8-bit bits/dim of [`crate::loss::VlbLoss::evaluate_bound`]); for a Bernoulli
/// decoder on binary data it is a true discrete NLL.
///
/// # Shapes
/// `log_likelihood`: `[N]`; output `[N]`.
pub fn nll_bits_per_dim(log_likelihood: Tensor<1>, dims: usize) -> Tensor<1> {
    log_likelihood.neg() / (dims.max(1) as f64 * LN_2)
}

/// The evidence lower bound of each example (Kingma & Welling 2014, eq. 3 and the
/// estimator of eq. 7; the article's L(x) = −ELBO):
///
/// ```text
/// ELBO(x) = E_{q_φ(z|x)}[log p_θ(x | z)] − KL(q_φ(z | x) ‖ p(z)) ≤ log p_θ(x),  p(z) = N(0, I)
/// ```
///
/// $$\log p_\theta(\mathbf x) \ge \mathbb E_{q_\phi(\mathbf z|\mathbf x)}[\log p_\theta(\mathbf x|\mathbf z)] - D_{\mathrm{KL}}(q_\phi(\mathbf z|\mathbf x)\,\|\,p(\mathbf z))$$
///
/// The gap is exactly KL(q_φ(z | x) ‖ p_θ(z | x)). The KL term is computed in closed form
/// ([`DiagonalGaussian::kl_standard`]); the reconstruction term is log p_θ(x | z) at the
/// z that produced `decoder_output` (draw it with [`DiagonalGaussian::sample_with`] for an
/// unbiased, reparameterized one-sample estimate; average several for more).
///
/// # Shapes
/// - `x`, `decoder_output`: `[N, ...]` (data)
/// - `posterior`: `[N, ...]` (latents)
/// - output: `[N]` tensors
///
/// # Errors
/// [`DiffusionError::ShapeMismatch`] if `decoder_output` does not have the shape of `x`
/// or the posterior's batch size differs.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use burn_diffusion::{noise::randn, vae::{DiagonalGaussian, Likelihood, elbo}};
///
/// let device = Device::flex();
/// let x = Tensor::<2>::from_floats([[0.5, -0.2, 1.0]], &device);
/// // q(z | x) from an encoder; a linear decoder z ↦ W z.
/// let q = DiagonalGaussian::new(
///     Tensor::<2>::from_floats([[0.3, -0.1]], &device),
///     Tensor::<2>::from_floats([[-1.0, -2.0]], &device),
/// )?;
/// let w = Tensor::<2>::from_floats([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]], &device);
/// let z = q.sample_with(randn([1, 2], 0, &device))?;
/// let bound = elbo(x, &q, z.matmul(w), &Likelihood::Gaussian { log_variance: -2.0 })?;
/// assert_eq!(bound.elbo.dims(), [1]);
/// let bpd: f32 = bound.nll_bits_per_dim().into_scalar();
/// assert!(bpd.is_finite());
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub fn elbo<const D: usize, const L: usize>(
    x: Tensor<D>,
    posterior: &DiagonalGaussian<L>,
    decoder_output: Tensor<D>,
    likelihood: &Likelihood,
) -> error::Result<Elbo> {
    check_batch(&x, posterior)?;
    let dims = x.dims()[1..].iter().product();
    let reconstruction = likelihood.log_prob(x, decoder_output)?;
    let kl = posterior.kl_standard();
    Ok(Elbo {
        elbo: reconstruction.clone() - kl.clone(),
        reconstruction,
        kl,
        dims,
    })
}

/// The importance-weighted estimate of log p_θ(x) with k samples (Burda et al. 2016,
/// eq. 8), per example, in nats:
///
/// ```text
/// L_k(x) = log (1/k) Σ_{i=1..k} p_θ(x | z_i) p(z_i) / q_φ(z_i | x),   z_i ~ q_φ(z | x)
/// ```
///
/// $$\mathcal L_k(\mathbf x) = \log \frac1k \sum_{i=1}^k \frac{p_\theta(\mathbf x|\mathbf z_i)\,p(\mathbf z_i)}{q_\phi(\mathbf z_i|\mathbf x)}$$
///
/// with p(z) = N(0, I). E(L_1) is the ELBO, E(L_k) ≤ E(L_{k+1}) ≤ log p_θ(x) and
/// L_k → log p_θ(x) as k → ∞ (Burda et al., Theorem 1): the standard evaluation of a VAE's
/// likelihood. k is the number of `noise` tensors; `decoder` maps a latent batch z_i to
/// its decoder output and is called once per sample. The log-mean-exp is accumulated
/// online with a running maximum, so it neither overflows nor underflows and, off an
/// autodiff device, holds one sample at a time; it is differentiable (the IWAE
/// objective).
///
/// # Shapes
/// - `x`: `[N, ...]`; `posterior` and every `noise` tensor: `[N, ...]` (latents)
/// - `decoder`: latents `[N, ...]` → output of the shape of `x`
/// - output: `[N]`
///
/// # Errors
/// [`DiffusionError::InvalidConfig`] if `noise` is empty;
/// [`DiffusionError::ShapeMismatch`] if a noise tensor, the decoder output or the
/// posterior's batch size does not fit.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use burn_diffusion::{
///     noise::randn,
///     vae::{DiagonalGaussian, Likelihood, importance_weighted_log_likelihood},
/// };
///
/// let device = Device::flex();
/// let x = Tensor::<2>::from_floats([[1.0, 0.0]], &device);
/// let q = DiagonalGaussian::standard([1, 2], &device);
/// let noise = (0..100).map(|i| randn::<2>([1, 2], i, &device));
/// let ll = importance_weighted_log_likelihood(
///     x, &q, &Likelihood::Bernoulli, noise, |z| z * 2.0)?;
/// assert!(ll.into_scalar::<f32>() < 0.0);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub fn importance_weighted_log_likelihood<const D: usize, const L: usize>(
    x: Tensor<D>,
    posterior: &DiagonalGaussian<L>,
    likelihood: &Likelihood,
    noise: impl IntoIterator<Item = Tensor<L>>,
    mut decoder: impl FnMut(Tensor<L>) -> Tensor<D>,
) -> error::Result<Tensor<1>> {
    check_batch(&x, posterior)?;
    // Running log-sum-exp: max m and Σ exp(log w_i − m).
    let mut acc: Option<(Tensor<1>, Tensor<1>)> = None;
    let mut k = 0usize;
    for eps in noise {
        let z = posterior.sample_with(eps)?;
        let log_w = likelihood.log_prob(x.clone(), decoder(z.clone()))?
            + sum_flat(standard_normal_log_prob(z.clone()))
            - posterior.log_prob(z)?;
        acc = Some(match acc {
            None => (log_w.clone(), log_w.ones_like()),
            Some((max, sum)) => {
                let new_max = max.clone().max_pair(log_w.clone());
                let sum = sum * (max - new_max.clone()).exp() + (log_w - new_max.clone()).exp();
                (new_max, sum)
            }
        });
        k += 1;
    }
    let (max, sum) =
        acc.ok_or_else(|| DiffusionError::config("samples", 0, "need at least one sample"))?;
    Ok(max + sum.log() - (k as f64).ln())
}

/// Checks that the data and the latents have the same batch size.
fn check_batch<const D: usize, const L: usize>(
    x: &Tensor<D>,
    posterior: &DiagonalGaussian<L>,
) -> error::Result<()> {
    let (n, m) = (x.dims()[0], posterior.dims()[0]);
    if n != m {
        return Err(DiffusionError::ShapeMismatch {
            what: "posterior batch vs x batch",
            expected: vec![n],
            got: vec![m],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vae::diagonal_gaussian::tests::values;
    use burn::tensor::Device;

    #[test]
    fn bernoulli_is_stable_for_large_logits() {
        let d = Device::flex();
        let x = Tensor::<1>::from_floats([1.0, 0.0, 1.0, 0.0, 0.25], &d);
        let l = Tensor::<1>::from_floats([100.0, 100.0, -100.0, -100.0, 0.3], &d);
        let lp = values(Likelihood::Bernoulli.log_prob_elementwise(x, l).unwrap());
        let want = [
            0.0,
            -100.0,
            -100.0,
            0.0,
            0.25 * 0.3 - (1.0 + 0.3f64.exp()).ln(),
        ];
        for (g, w) in lp.iter().zip(want) {
            assert!((g - w).abs() < 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }

    #[test]
    fn gaussian_likelihood_and_bits_per_dim() {
        let d = Device::flex();
        let x = Tensor::<2>::from_floats([[1.0, 2.0]], &d);
        let mean = Tensor::<2>::from_floats([[0.0, 2.0]], &d);
        let lp = values(
            Likelihood::Gaussian { log_variance: 0.0 }
                .log_prob(x, mean)
                .unwrap(),
        )[0];
        let want = -0.5 - (2.0 * core::f64::consts::PI).ln();
        assert!((lp - want).abs() < 1e-6);
        let bpd = values(nll_bits_per_dim(Tensor::from_floats([-2.0 * LN_2], &d), 2))[0];
        assert!((bpd - 1.0).abs() < 1e-6);
    }

    #[test]
    fn errors_for_bad_shapes_and_no_samples() {
        let d = Device::flex();
        let x = Tensor::<2>::zeros([2, 3], &d);
        let q = DiagonalGaussian::standard([3, 1], &d);
        let lik = Likelihood::Bernoulli;
        assert!(elbo(x.clone(), &q, x.clone(), &lik).is_err());
        let q = DiagonalGaussian::standard([2, 1], &d);
        assert!(elbo(x.clone(), &q, Tensor::zeros([2, 2], &d), &lik).is_err());
        let none = core::iter::empty::<Tensor<2>>();
        let e = importance_weighted_log_likelihood(x, &q, &lik, none, |z| z).unwrap_err();
        assert!(e.to_string().contains("samples"), "{e}");
    }
}
