//! Per-timestep weights of the simplified objective.

use burn::config::Config;

use crate::error::{self, DiffusionError};
use crate::prediction::Prediction;
use crate::process::{ForwardProcess, Posterior};

/// How the noise-estimation error at timestep t is weighted.
///
/// Each weighting is a weight λ_t on the **ε error** ‖ε − ε̂‖² — so it defines the same
/// objective whatever the model predicts. A model that predicts x_0 or v is scored on its
/// own error, rescaled exactly: with x_t = a_t x_0 + s_t ε,
/// ‖ε − ε̂‖² = (a_t/s_t)²·‖x_0 − x̂_0‖² = (a_t/(a_t² + s_t²))²·‖v − v̂‖².
///
/// | variant | λ_t on ‖ε − ε̂‖² | source |
/// |---|---|---|
/// | `Uniform` | 1 | L_simple, Ho et al. 2020, eq. 14 |
/// | `Vlb` | β_t² / (2σ_t² α_t (1 − ᾱ_t)), σ_t² = β̃_t (β̃_1 at t = 0) | the exact L_{t−1} weight, eq. 12 (the article's last equation) |
/// | `Snr` | SNR_t = ᾱ_t / (1 − ᾱ_t) | ‖x_0 − x̂_0‖² (Kingma et al. 2021) |
/// | `MinSnr { gamma }` | min(SNR_t, γ) / SNR_t | Hang et al. 2023 (γ = 5) |
///
/// `Vlb` is written in the x_0 form coef1_t² / (2σ_t²) · ‖x_0 − x̂_0‖² (coef1 the posterior
/// mean's coefficient of x_0), which equals eq. 12 and stays finite at a zero-SNR step,
/// where only the ε form divides by zero; that combination (ε-prediction, `Vlb`, a zero
/// terminal SNR) is rejected at construction. `MinSnr` is evaluated as min(1, γ/SNR_t),
/// which is 1 at SNR = 0.
#[derive(Config, Debug, PartialEq)]
pub enum Weighting {
    /// λ_t = 1.
    Uniform,
    /// The variational bound's weight with σ_t² = β̃_t.
    Vlb,
    /// λ_t = SNR_t.
    Snr,
    /// λ_t = min(SNR_t, γ) / SNR_t.
    MinSnr {
        /// The clamp γ (Hang et al. use 5).
        gamma: f64,
    },
}

impl Weighting {
    /// The weight of each timestep on the error of a model that predicts `prediction`
    /// (the weight on ‖output − target‖², per dimension).
    ///
    /// # Errors
    /// `MinSnr` with γ not finite and positive; any weight that is not finite (the `Vlb`
    /// weight of an ε-predictor at a zero-SNR step).
    pub fn table<P: ForwardProcess + Posterior + ?Sized>(
        &self,
        process: &P,
        prediction: Prediction,
    ) -> error::Result<Vec<f64>> {
        if let Self::MinSnr { gamma } = self
            && !(gamma.is_finite() && *gamma > 0.0)
        {
            return Err(DiffusionError::config(
                "MinSnr gamma",
                gamma,
                "must be finite and positive",
            ));
        }
        let (a, s) = (process.signal_scale(), process.noise_std());
        let coef1 = process.posterior_mean_coef1();
        let log_var = process.posterior_log_variance_clipped();
        let table: Vec<f64> = (0..process.num_timesteps())
            .map(|t| {
                let (a2, s2) = (a[t] * a[t], s[t] * s[t]);
                // Factors turning an ε-space weight into one on the model's own error.
                let eps_per_x0 = a2 / s2; // ‖ε − ε̂‖² / ‖x_0 − x̂_0‖²
                let eps_per_v = a2 / (a2 + s2).powi(2); // ‖ε − ε̂‖² / ‖v − v̂‖²
                let snr = a2 / s2;
                match (self, prediction) {
                    (Self::Uniform, Prediction::Epsilon) => 1.0,
                    (Self::Uniform, Prediction::Sample) => eps_per_x0,
                    (Self::Uniform, Prediction::Velocity) => eps_per_v,
                    (Self::Snr, Prediction::Epsilon) => snr,
                    (Self::Snr, Prediction::Sample) => snr * eps_per_x0,
                    (Self::Snr, Prediction::Velocity) => snr * eps_per_v,
                    (Self::MinSnr { gamma }, p) => {
                        let w = (gamma / snr).min(1.0);
                        match p {
                            Prediction::Epsilon => w,
                            Prediction::Sample => w * eps_per_x0,
                            Prediction::Velocity => w * eps_per_v,
                        }
                    }
                    (Self::Vlb, p) => {
                        // L_{t−1} = coef1² / (2σ²) ‖x_0 − x̂_0‖², σ² = β̃_t (eq. 8 with eq. 7);
                        // at t = 0, coef1 = 1 and σ² = β̃_1 (the clipped value): the
                        // continuous Gaussian decoder's −log p(x_0 | x_1) up to a constant.
                        let per_x0 = coef1[t].powi(2) / (2.0 * log_var[t].exp());
                        // ‖x_0 − x̂_0‖² = (s²/a²)‖ε − ε̂‖² = s²/(a² + s²)²·‖v − v̂‖².
                        match p {
                            Prediction::Sample => per_x0,
                            Prediction::Epsilon => per_x0 * s2 / a2,
                            Prediction::Velocity => per_x0 * s2 / (a2 + s2).powi(2),
                        }
                    }
                }
            })
            .collect();
        if let Some((t, w)) = table.iter().enumerate().find(|(_, w)| !w.is_finite()) {
            return Err(DiffusionError::config(
                "weighting",
                format!("{self:?} for {prediction:?}"),
                format!(
                    "weight at t = {t} is {w} (a zero-SNR step); predict x_0 or v with this schedule"
                ),
            ));
        }
        Ok(table)
    }
}
