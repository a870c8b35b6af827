//! The simplified objective: a weighted MSE on ε, x_0 or v (Ho et al. 2020, eq. 14).

use burn::tensor::Tensor;

use crate::error;
use crate::loss::base::{Loss, LossOutput, mean_flat, noised_output, process_fingerprint};
use crate::loss::weighting::Weighting;
use crate::model::Denoiser;
use crate::prediction::Prediction;
use crate::process::{ForwardProcess, Posterior};
use crate::schedule::{TimestepInput, Timesteps, check_same_shape};

/// The simplified loss λ_t·‖target − output‖² (mean over dimensions), where the target is
/// ε, x_0 or v and λ_t a [`Weighting`]:
///
/// ```text
/// L_simple = E_{t, x_0, ε} [ λ_t · ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖² ]     (eq. 14 with λ_t = 1)
/// ```
///
/// $$L_\text{simple} = \mathbb E_{t,\mathbf x_0,\boldsymbol\epsilon}\left[\lambda_t\,\lVert\boldsymbol\epsilon - \boldsymbol\epsilon_\theta(\sqrt{\bar\alpha_t}\mathbf x_0 + \sqrt{1-\bar\alpha_t}\boldsymbol\epsilon, t)\rVert^2\right]$$
///
/// When to use: `Uniform` with ε-prediction is DDPM's default and gives the best samples;
/// `MinSnr` speeds up convergence (Hang et al. 2023); `Vlb` optimizes the likelihood bound
/// (noisier gradients); use x_0- or v-prediction with zero-terminal-SNR schedules.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::{
///     Loss,
///     loss::{SimpleLoss, Weighting},
///     noise::randn,
///     prediction::Prediction,
///     process::VpProcess,
///     schedule::ScheduleConfig,
/// };
///
/// let device = Device::flex();
/// let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
/// let loss = SimpleLoss::new(process, Prediction::Epsilon, Weighting::Uniform).unwrap();
/// let model = |x_t: Tensor<2>, _t: Tensor<1, Int>| x_t * 0.0; // predicts ε = 0
/// let x0 = randn::<2>([8, 2], 0, &device);
/// let out = loss.loss_seeded(&model, x0, 1).unwrap();
/// assert_eq!(out.loss.dims(), [8]);
/// ```
#[derive(Debug, Clone)]
pub struct SimpleLoss<P> {
    process: P,
    prediction: Prediction,
    weighting: Weighting,
    weights: Vec<f64>,
}

impl<P: ForwardProcess + Posterior> SimpleLoss<P> {
    /// The loss of a model that predicts `prediction`, weighted by `weighting`.
    ///
    /// # Errors
    /// See [`Weighting::table`].
    pub fn new(process: P, prediction: Prediction, weighting: Weighting) -> error::Result<Self> {
        let weights = weighting.table(&process, prediction)?;
        Ok(Self {
            process,
            prediction,
            weighting,
            weights,
        })
    }

    /// The per-timestep weights λ_t on ‖target − output‖².
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The weighting this loss was built with.
    pub fn weighting(&self) -> &Weighting {
        &self.weighting
    }

    /// The process the loss is defined on.
    pub fn process(&self) -> &P {
        &self.process
    }
}

impl<P: ForwardProcess + Posterior, const D: usize> Loss<D> for SimpleLoss<P> {
    fn num_timesteps(&self) -> usize {
        self.process.num_timesteps()
    }

    fn describe(&self) -> String {
        format!(
            "SimpleLoss {{ prediction: {:?}, weighting: {:?}, process: {} }}",
            self.prediction,
            self.weighting,
            process_fingerprint(&self.process)
        )
    }

    /// Terms: `mse` (the unweighted mean squared error of the output).
    fn loss<M: Denoiser<D>>(
        &self,
        model: &M,
        x0: Tensor<D>,
        t: &impl TimestepInput,
        noise: Tensor<D>,
    ) -> error::Result<LossOutput> {
        let ts = t.host(self.process.num_timesteps())?;
        let ts: &Timesteps = &ts;
        let (_, output) = noised_output(&self.process, model, x0.clone(), ts, noise.clone())?;
        let target = self.prediction.target(&self.process, x0, noise, ts)?;
        check_same_shape("model output vs x0", &target, &output)?;
        let mse = mean_flat((output - target).square());
        let weight = ts.gather(&self.weights, &mse)?;
        Ok(LossOutput {
            loss: mse.clone() * weight,
            terms: vec![("mse", mse)],
        })
    }
}
