//! The `Loss` trait and what every loss returns.

use burn::tensor::{Int, Tensor};

use crate::error;
use crate::model::Denoiser;
use crate::noise::{SeededRng, randn};
use crate::process::ForwardProcess;
use crate::schedule::{TimestepInput, Timesteps};

/// A loss's value for each example of a batch and its named terms.
///
/// Every tensor has shape `[N]`; `loss` is what to minimize (its mean over the batch),
/// and it stays differentiable on an autodiff device.
#[derive(Debug, Clone)]
pub struct LossOutput {
    /// The per-example loss.
    pub loss: Tensor<1>,
    /// Named per-example terms (for logging), e.g. `("mse", ..)`, `("vb", ..)`.
    pub terms: Vec<(&'static str, Tensor<1>)>,
}

impl LossOutput {
    /// The term called `name`, if the loss produced it.
    pub fn term(&self, name: &str) -> Option<&Tensor<1>> {
        self.terms.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }
}

/// A diffusion training objective evaluated at given timesteps and noise.
///
/// Implementations: [`crate::loss::SimpleLoss`] (ε / x_0 / v MSE with a weighting),
/// [`crate::loss::VlbLoss`] (the variational bound's term at t) and [`crate::loss::HybridLoss`]
/// (L_simple + λ·L_vlb for learned variances).
pub trait Loss<const D: usize> {
    /// Number of timesteps of the process the loss is defined on.
    fn num_timesteps(&self) -> usize;

    /// The loss of `model` on data `x0` (`[N, ...]`) noised with `noise` at timesteps `t` (`[N]`).
    ///
    /// # Errors
    /// Timesteps out of range, or shapes (data, noise, model output) that do not match.
    fn loss<M: Denoiser<D>>(
        &self,
        model: &M,
        x0: Tensor<D>,
        t: &impl TimestepInput,
        noise: Tensor<D>,
    ) -> error::Result<LossOutput>;

    /// What this objective is, for a checkpoint to record and compare on resume: the
    /// loss, what the model predicts, and a fingerprint of the process (see
    /// [`process_fingerprint`]). The default is the type's name; the crate's losses give
    /// their settings too, so a resume with another prediction type, weighting or
    /// schedule is refused.
    fn describe(&self) -> String {
        core::any::type_name::<Self>().to_string()
    }

    /// [`Loss::loss`] at timesteps drawn uniformly from `0..T` and noise drawn from `seed`.
    ///
    /// # Errors
    /// As [`Loss::loss`].
    fn loss_seeded<M: Denoiser<D>>(
        &self,
        model: &M,
        x0: Tensor<D>,
        seed: u64,
    ) -> error::Result<LossOutput> {
        let device = x0.device();
        let n = x0.dims()[0];
        let t = uniform_timestep_values(n, self.num_timesteps(), seed)?;
        let noise = randn(x0.shape(), seed.wrapping_add(1), &device);
        self.loss(model, x0, &t, noise)
    }
}

/// A short fingerprint of a process: T and the CRC-32 of its signal and noise scales
/// bits, e.g. `T=1000 crc=1a2b3c4d` (two processes agree on it only with the same tables).
pub fn process_fingerprint<P: ForwardProcess + ?Sized>(process: &P) -> String {
    let mut hasher = crc32fast::Hasher::new();
    for v in process.signal_scale().iter().chain(process.noise_std()) {
        hasher.update(&v.to_bits().to_le_bytes());
    }
    format!(
        "T={} crc={:08x}",
        process.num_timesteps(),
        hasher.finalize()
    )
}

/// `n` timesteps drawn uniformly from `0..num_timesteps` with [`SeededRng`], as a tensor
/// on `device` ([`uniform_timestep_values`] on the host, uploaded).
///
/// # Shapes
/// - output: `[n]`
///
/// # Errors
/// `num_timesteps = 0` (there is no timestep to draw).
pub fn uniform_timesteps(
    n: usize,
    num_timesteps: usize,
    seed: u64,
    device: &burn::tensor::Device,
) -> error::Result<Tensor<1, Int>> {
    Ok(uniform_timestep_values(n, num_timesteps, seed)?.to_tensor(device))
}

/// `n` timesteps drawn uniformly from `0..num_timesteps` with [`SeededRng`], on the host
/// (the same values as [`uniform_timesteps`]).
///
/// # Errors
/// `num_timesteps = 0` (there is no timestep to draw).
pub fn uniform_timestep_values(
    n: usize,
    num_timesteps: usize,
    seed: u64,
) -> error::Result<Timesteps> {
    if num_timesteps == 0 {
        return Err(crate::DiffusionError::config(
            "num_timesteps",
            0,
            "there is no timestep to draw",
        ));
    }
    Ok(draw_uniform(n, num_timesteps, seed))
}

/// [`uniform_timestep_values`] for a `num_timesteps` ≥ 1 known to the caller.
pub(crate) fn draw_uniform(n: usize, num_timesteps: usize, seed: u64) -> Timesteps {
    let mut rng = SeededRng::new(seed);
    let values = (0..n)
        .map(|_| ((rng.next_open01() * num_timesteps as f64) as usize).min(num_timesteps - 1))
        .collect();
    Timesteps::new(values)
}

/// x_t = a_t x_0 + s_t ε (eq. 4) and the model's output at (x_t, t): the first step of
/// every training loss.
pub(crate) fn noised_output<P: ForwardProcess, M: Denoiser<D>, const D: usize>(
    process: &P,
    model: &M,
    x0: Tensor<D>,
    t: &impl TimestepInput,
    noise: Tensor<D>,
) -> error::Result<(Tensor<D>, Tensor<D>)> {
    let x_t = process.q_sample(x0, t, noise)?;
    let output = model.try_denoise(x_t.clone(), t.tensor(&x_t.device()), None)?;
    Ok((x_t, output))
}

/// The mean over every dimension but the first: `[N, ...]` → `[N]`.
pub(crate) fn mean_flat<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    let n = x.dims()[0];
    x.reshape([n as i64, -1]).mean_dim(1).reshape([n as i64])
}
