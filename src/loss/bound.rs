//! Evaluating the whole variational bound of a batch over all T steps
//! (improved-diffusion's `calc_bpd_loop`).

use core::f64::consts::LN_2;

use burn::tensor::Tensor;

use crate::error;
use crate::loss::base::{mean_flat, noised_output};
use crate::loss::vlb::VlbLoss;
use crate::model::Denoiser;
use crate::noise::randn;
use crate::process::{ForwardProcess, Posterior};
use crate::schedule::Timesteps;

/// The full bound of a batch, in bits per dimension.
///
/// Per-t tensors have shape `[N, T]` with **column t = timestep t** (ascending; note that
/// improved-diffusion's `calc_bpd_loop` returns them in loop order, t = T−1 first).
#[derive(Debug, Clone)]
pub struct BoundEvaluation {
    /// L_T + Σ_t L_t per example: an upper bound on −log p(x_0) in bits per dimension.
    pub total_bpd: Tensor<1>,
    /// L_T per example.
    pub prior_bpd: Tensor<1>,
    /// L_{t−1} (t ≥ 1) and L_0 (t = 0) per example and timestep, `[N, T]`.
    pub vb_bpd: Tensor<2>,
    /// ‖x̂_0 − x_0‖² (mean over dimensions) per example and timestep, `[N, T]`.
    pub x0_mse: Tensor<2>,
    /// ‖ε̂ − ε‖² (mean over dimensions) per example and timestep, `[N, T]`.
    pub eps_mse: Tensor<2>,
}

impl<P: ForwardProcess + Posterior> VlbLoss<P> {
    /// Evaluates every term of the bound for the batch `x0` ([N, ...]): for t = T−1 down
    /// to 0, x_t = q_sample(x_0, t, noise(t)), then the term at t. `progress(done, T)` is
    /// called after each step.
    ///
    /// With the discretized decoder and data on the 8-bit grid, `total_bpd` is the
    /// negative log-likelihood bound that papers report in bits/dim.
    ///
    /// # Errors
    /// A noise tensor of the wrong shape, or a model output that does not match.
    pub fn evaluate_bound<M: Denoiser<D>, const D: usize>(
        &self,
        model: &M,
        x0: Tensor<D>,
        mut noise: impl FnMut(usize) -> Tensor<D>,
        mut progress: impl FnMut(usize, usize),
    ) -> error::Result<BoundEvaluation> {
        let process = self.process();
        let steps = process.num_timesteps();
        let n = x0.dims()[0];
        let mut columns: Vec<[Tensor<1>; 3]> = Vec::with_capacity(steps);
        for (done, t) in (0..steps).rev().enumerate() {
            let tt = Timesteps::constant(n, t);
            let eps = noise(t);
            let (x_t, output) = noised_output(process, model, x0.clone(), &tt, eps.clone())?;
            let terms = self.vb_terms(output, x0.clone(), x_t, &tt)?;
            columns.push([
                terms.bits_per_dim(),
                mean_flat((terms.x0 - x0.clone()).square()),
                mean_flat((terms.eps - eps).square()),
            ]);
            progress(done + 1, steps);
        }
        columns.reverse(); // ascending t
        let stack =
            |k: usize| Tensor::stack::<2>(columns.iter().map(|c| c[k].clone()).collect(), 1);
        let vb_bpd = stack(0);
        let prior_bpd = self.prior_nats(x0)? / LN_2;
        Ok(BoundEvaluation {
            total_bpd: vb_bpd.clone().sum_dim(1).reshape([n as i64]) + prior_bpd.clone(),
            prior_bpd,
            vb_bpd,
            x0_mse: stack(1),
            eps_mse: stack(2),
        })
    }

    /// [`VlbLoss::evaluate_bound`] with the noise at step t drawn from `seed + t`.
    ///
    /// # Errors
    /// As [`VlbLoss::evaluate_bound`].
    pub fn evaluate_bound_seeded<M: Denoiser<D>, const D: usize>(
        &self,
        model: &M,
        x0: Tensor<D>,
        seed: u64,
        progress: impl FnMut(usize, usize),
    ) -> error::Result<BoundEvaluation> {
        let (shape, device) = (x0.shape(), x0.device());
        let noise = |t: usize| randn(shape.clone(), seed.wrapping_add(t as u64), &device);
        self.evaluate_bound(model, x0, noise, progress)
    }
}
