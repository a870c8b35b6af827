//! The variational lower bound: L_T, the KL terms L_{t−1} and the decoder term L_0.

use core::f64::consts::LN_2;

use burn::config::Config;
use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::gaussian::{discretized_gaussian_log_likelihood, gaussian_log_likelihood, normal_kl};
use crate::loss::base::{Loss, LossOutput, mean_flat, noised_output, process_fingerprint};
use crate::model::Denoiser;
use crate::prediction::{Parameterization, ReverseVariances, VarianceKind};
use crate::process::{ForwardProcess, Posterior};
use crate::schedule::{TimestepInput, Timesteps, check_same_shape};

/// The decoder p_θ(x_0 | x_1) of the bound's last term L_0.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Decoder {
    /// 8-bit data scaled to [−1, 1]: the Gaussian integrated over 256 bins (Ho et al. 2020,
    /// eq. 13), see [`crate::gaussian::discretized_gaussian_log_likelihood`].
    Discretized,
    /// Continuous data: the Gaussian density N(x_0; μ_θ(x_1, 1), σ_1²).
    Gaussian,
}

impl Decoder {
    fn log_likelihood<const D: usize>(
        &self,
        x0: Tensor<D>,
        mean: Tensor<D>,
        log_variance: Tensor<D>,
    ) -> error::Result<Tensor<D>> {
        match self {
            Self::Discretized => discretized_gaussian_log_likelihood(x0, mean, log_variance),
            Self::Gaussian => gaussian_log_likelihood(x0, mean, log_variance),
        }
    }
}

/// The variational bound's terms (Ho et al. 2020, eq. 5), per example, as a mean over
/// dimensions:
///
/// ```text
/// L_T     = KL(q(x_T | x_0) ‖ N(0, I))                        prior term
/// L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))     t ≥ 1 (0-based)
/// L_0     = −log p_θ(x_0 | x_1)                               t = 0, the decoder
/// ```
///
/// $$L = \underbrace{D_{KL}(q(\mathbf x_T|\mathbf x_0)\,\|\,p(\mathbf x_T))}_{L_T} + \sum_{t>1}\underbrace{D_{KL}(q(\mathbf x_{t-1}|\mathbf x_t,\mathbf x_0)\,\|\,p_\theta(\mathbf x_{t-1}|\mathbf x_t))}_{L_{t-1}} \underbrace{- \log p_\theta(\mathbf x_0|\mathbf x_1)}_{L_0}$$
///
/// As a training loss (the `Loss` impl) it returns the term at the drawn t, in bits per
/// dimension (nats / ln 2 averaged over dimensions, improved-diffusion's unit), multiplied
/// by T when `scale_by_num_timesteps` is set — then its expectation over uniform t is the
/// whole bound minus L_T. When to use: to train or compare likelihoods; for samples, the
/// simplified loss trains faster.
#[derive(Debug, Clone)]
pub struct VlbLoss<P> {
    process: P,
    parameterization: Parameterization,
    decoder: Decoder,
    scale_by_num_timesteps: bool,
    variances: Option<ReverseVariances>,
}

/// The bound's term at (x_t, t) for each example, and the model's x_0 and ε estimates.
#[derive(Debug, Clone)]
pub struct VbTerms<const D: usize> {
    /// L_{t−1} (t ≥ 1) or L_0 (t = 0) per example, in nats per dimension.
    pub nats: Tensor<1>,
    /// x̂_0 implied by the model.
    pub x0: Tensor<D>,
    /// ε̂ implied by the model.
    pub eps: Tensor<D>,
}

impl<const D: usize> VbTerms<D> {
    /// The term in bits per dimension.
    pub fn bits_per_dim(&self) -> Tensor<1> {
        self.nats.clone() / LN_2
    }
}

impl<P: ForwardProcess + Posterior> VlbLoss<P> {
    /// The bound for a model with the given parameterization and decoder.
    pub fn new(process: P, parameterization: Parameterization, decoder: Decoder) -> Self {
        Self {
            process,
            parameterization,
            decoder,
            scale_by_num_timesteps: false,
            variances: None,
        }
    }

    /// Uses the variances σ_t² of `variances` in p_θ(x_{t−1} | x_t) instead of the fixed
    /// kind's: a [`DecoderVariance`](crate::prediction::DecoderVariance) at t = 0, or
    /// Analytic-DPM's optimal variances ([`ReverseVariances::analytic`]), which tighten the
    /// bound of a model trained with fixed variances without retraining it.
    ///
    /// # Errors
    /// A table whose length is not the process's T; a learned-variance parameterization
    /// (its model gives the variances).
    pub fn with_reverse_variances(mut self, variances: ReverseVariances) -> error::Result<Self> {
        variances.check_len(self.process.num_timesteps())?;
        if self.parameterization.variance == VarianceKind::LearnedRange {
            return Err(DiffusionError::config(
                "variance",
                "LearnedRange",
                "the model gives its own variances: a variance table is for fixed-variance models",
            ));
        }
        self.variances = Some(variances);
        Ok(self)
    }

    /// The variance table in use, if any ([`VlbLoss::with_reverse_variances`]).
    pub fn reverse_variances(&self) -> Option<&ReverseVariances> {
        self.variances.as_ref()
    }

    /// Multiplies the training loss by T (improved-diffusion's `RESCALED_KL`).
    pub fn with_scale_by_num_timesteps(mut self, scale: bool) -> Self {
        self.scale_by_num_timesteps = scale;
        self
    }

    /// The process the bound is defined on.
    pub fn process(&self) -> &P {
        &self.process
    }

    /// The model parameterization.
    pub fn parameterization(&self) -> Parameterization {
        self.parameterization
    }

    /// The bound's term at `t` for a model `output` at (x_t, t): the KL between the true
    /// posterior and p_θ for t ≥ 1, the decoder's −log p_θ(x_0 | x_1) for t = 0
    /// (improved-diffusion's `_vb_terms_bpd`, in nats).
    ///
    /// # Shapes
    /// - `output`: model output for `x_t`; `x0`, `x_t`: `[N, ...]`; `t`: `[N]`
    ///
    /// # Errors
    /// Timesteps out of range, or shapes that do not match.
    pub fn vb_terms<const D: usize>(
        &self,
        output: Tensor<D>,
        x0: Tensor<D>,
        x_t: Tensor<D>,
        t: &impl TimestepInput,
    ) -> error::Result<VbTerms<D>> {
        check_same_shape("x_t vs x0", &x0, &x_t)?;
        let ts = t.host(self.process.num_timesteps())?;
        let ts: &Timesteps = &ts;
        let truth = self.process.q_posterior(x0.clone(), x_t.clone(), ts)?;
        let step = self
            .parameterization
            .reverse_step(&self.process, output, x_t, ts)?;
        let mut model = step.distribution;
        if let Some(table) = &self.variances {
            (model.variance, model.log_variance) = table.gather(ts, &x0)?;
        }
        let kl = mean_flat(normal_kl(
            truth.mean,
            truth.log_variance,
            model.mean.clone(),
            model.log_variance.clone(),
        )?);
        let nll = mean_flat(
            self.decoder
                .log_likelihood(x0, model.mean, model.log_variance)?
                .neg(),
        );
        let at_zero = ts
            .gather_map(|t| if t == 0 { 1.0 } else { 0.0 }, &kl)?
            .equal_elem(1.0);
        Ok(VbTerms {
            nats: kl.mask_where(at_zero, nll),
            x0: step.x0,
            eps: step.eps,
        })
    }

    /// L_T = KL(q(x_T | x_0) ‖ N(0, I)) per example, in nats per dimension (no parameters:
    /// it only measures how close the last step is to the prior).
    ///
    /// # Shapes
    /// - `x0`: `[N, ...]`; output `[N]`
    ///
    /// # Errors
    /// A zero-sized batch dimension cannot occur here; the `Result` mirrors the other terms.
    pub fn prior_nats<const D: usize>(&self, x0: Tensor<D>) -> error::Result<Tensor<1>> {
        let last = self.process.num_timesteps() - 1;
        let t = Timesteps::constant(x0.dims()[0], last);
        let q = self.process.q_marginal(x0, &t)?;
        let zeros = q.mean.zeros_like();
        let log_variance = q.log_variance.expand(q.mean.shape());
        Ok(mean_flat(normal_kl(
            q.mean,
            log_variance,
            zeros.clone(),
            zeros,
        )?))
    }
}

impl<P: ForwardProcess + Posterior, const D: usize> Loss<D> for VlbLoss<P> {
    fn num_timesteps(&self) -> usize {
        self.process.num_timesteps()
    }

    fn describe(&self) -> String {
        format!(
            "VlbLoss {{ parameterization: {:?}, decoder: {:?}, scale_by_num_timesteps: {}, process: {}{} }}",
            self.parameterization,
            self.decoder,
            self.scale_by_num_timesteps,
            process_fingerprint(&self.process),
            match &self.variances {
                Some(table) => format!(", reverse variances: crc={}", table.fingerprint()),
                None => String::new(),
            }
        )
    }

    /// Terms: `vb` (bits per dimension, before the optional ×T), `vb_nats`.
    fn loss<M: Denoiser<D>>(
        &self,
        model: &M,
        x0: Tensor<D>,
        t: &impl TimestepInput,
        noise: Tensor<D>,
    ) -> error::Result<LossOutput> {
        let ts = t.host(self.process.num_timesteps())?;
        let (x_t, output) = noised_output(&self.process, model, x0.clone(), &*ts, noise)?;
        let terms = self.vb_terms(output, x0, x_t, &*ts)?;
        let bits = terms.bits_per_dim();
        let scale = if self.scale_by_num_timesteps {
            self.process.num_timesteps() as f64
        } else {
            1.0
        };
        Ok(LossOutput {
            loss: bits.clone() * scale,
            terms: vec![("vb", bits), ("vb_nats", terms.nats)],
        })
    }
}
