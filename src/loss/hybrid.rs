//! The hybrid objective L_simple + λ·L_vlb for models that learn their variance
//! (Nichol & Dhariwal 2021, §3.1).

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::loss::base::{Loss, LossOutput, mean_flat, noised_output};
use crate::loss::vlb::{Decoder, VlbLoss};
use crate::model::Denoiser;
use crate::prediction::Parameterization;
use crate::process::{ForwardProcess, Posterior};
use crate::schedule::{TimestepInput, Timesteps};

/// L_hybrid = L_simple + λ·L_vlb (Nichol & Dhariwal 2021, eq. 16), λ = 0.001 by default.
///
/// L_simple is the unweighted MSE of the mean part of the output (ε, x_0 or v). L_vlb is
/// estimated at the drawn t as T·L_t in bits per dimension (improved-diffusion's
/// `RESCALED_MSE`: λ·T = T/1000), with the gradient **stopped through the mean**: the
/// bound trains only the variance (the second half of the output channels for
/// [`crate::prediction::VarianceKind::LearnedRange`]); the mean is trained by L_simple alone.
///
/// When to use: with learned variances, for better likelihoods and sampling with fewer
/// steps than fixed variances allow.
#[derive(Debug, Clone)]
pub struct HybridLoss<P> {
    vlb: VlbLoss<P>,
    lambda: f64,
}

impl<P: ForwardProcess + Posterior> HybridLoss<P> {
    /// The hybrid loss with λ = 0.001.
    pub fn new(process: P, parameterization: Parameterization, decoder: Decoder) -> Self {
        Self {
            vlb: VlbLoss::new(process, parameterization, decoder),
            lambda: 0.001,
        }
    }

    /// Sets λ.
    ///
    /// # Errors
    /// λ not finite or negative.
    pub fn with_lambda(mut self, lambda: f64) -> error::Result<Self> {
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(DiffusionError::config(
                "lambda",
                lambda,
                "must be finite and >= 0",
            ));
        }
        self.lambda = lambda;
        Ok(self)
    }

    /// λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The bound used for the λ·L_vlb term.
    pub fn vlb(&self) -> &VlbLoss<P> {
        &self.vlb
    }
}

impl<P: ForwardProcess + Posterior, const D: usize> Loss<D> for HybridLoss<P> {
    fn num_timesteps(&self) -> usize {
        self.vlb.process().num_timesteps()
    }

    fn describe(&self) -> String {
        let vlb = <VlbLoss<P> as Loss<D>>::describe(&self.vlb);
        format!("HybridLoss {{ lambda: {}, vlb: {vlb} }}", self.lambda)
    }

    /// Terms: `mse` (L_simple) and `vb` (λ·T·L_t in bits per dimension).
    fn loss<M: Denoiser<D>>(
        &self,
        model: &M,
        x0: Tensor<D>,
        t: &impl TimestepInput,
        noise: Tensor<D>,
    ) -> error::Result<LossOutput> {
        let process = self.vlb.process();
        let parameterization = self.vlb.parameterization();
        let ts = t.host(process.num_timesteps())?;
        let ts: &Timesteps = &ts;
        let (x_t, output) = noised_output(process, model, x0.clone(), ts, noise.clone())?;
        let (mean_part, var_part) = parameterization.split(output, &x_t)?;
        let target = parameterization
            .prediction
            .target(process, x0.clone(), noise, ts)?;
        let mse = mean_flat((mean_part.clone() - target).square());
        let frozen = match var_part {
            Some(v) => Tensor::cat(vec![mean_part.detach(), v], 1),
            None => mean_part.detach(),
        };
        let scale = self.lambda * process.num_timesteps() as f64;
        let vb = self.vlb.vb_terms(frozen, x0, x_t, ts)?.bits_per_dim() * scale;
        Ok(LossOutput {
            loss: mse.clone() + vb.clone(),
            terms: vec![("mse", mse), ("vb", vb)],
        })
    }
}
