//! The training hyperparameters.

use burn::config::Config;

use crate::error::{self, DiffusionError};
use crate::train::LabelDropout;

/// Hyperparameters of [`crate::train::Trainer`]: AdamW with linear learning-rate warmup,
/// global gradient-norm clipping, an EMA of the weights and periodic checkpoints.
///
/// The defaults are DDPM's CIFAR-10 recipe (Ho et al. 2020, app. B) except the batch
/// size and the warmup, which suit small CPU runs: learning rate 2·10⁻⁴, gradients
/// clipped to norm 1, EMA decay 0.9999, no weight decay.
///
/// # Example
/// ```
/// use burn_diffusion::train::TrainConfig;
///
/// let config = TrainConfig::new(10_000).with_warmup_steps(1000);
/// assert!((config.learning_rate_at(0) - 2e-7).abs() < 1e-18); // 2e-4 · 1/1000
/// assert_eq!(config.learning_rate_at(5000), 2e-4);
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    /// Number of optimizer steps in the whole run.
    pub steps: usize,
    /// Examples per step.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Peak learning rate of AdamW.
    #[config(default = 2e-4)]
    pub learning_rate: f64,
    /// Steps of linear warmup: the rate at step s is `learning_rate · min(1, (s + 1) / warmup)`.
    #[config(default = 0)]
    pub warmup_steps: usize,
    /// AdamW's decoupled weight decay.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    #[config(default = "Some(1.0)")]
    pub grad_clip_norm: Option<f64>,
    /// Decay of the exponential moving average of the weights.
    #[config(default = 0.9999)]
    pub ema_decay: f64,
    /// Warm the EMA decay up as min(decay, (1 + k)/(10 + k)) (see [`crate::train::Ema`]).
    #[config(default = true)]
    pub ema_warmup: bool,
    /// Write a checkpoint every this many steps (0: only at the end of a run).
    #[config(default = 0)]
    pub checkpoint_every: usize,
    /// How many of the newest checkpoints to keep on disk (at least 1).
    #[config(default = 2)]
    pub keep_checkpoints: usize,
    /// Seed of every random choice: batches, timesteps, noise, dropout.
    #[config(default = 0)]
    pub seed: u64,
    /// Label dropout for classifier-free guidance (Ho & Salimans 2022): the probability
    /// that a training label is replaced by `null_label` (see
    /// [`crate::train::LabelDropout`]; 0: never). Needs labelled examples
    /// ([`crate::train::Examples::labeled`]) and a `null_label`.
    #[config(default = 0.0)]
    pub p_uncond: f64,
    /// The null label that dropped labels become (for the crate's UNet and Mlp, their
    /// `num_classes`).
    #[config(default = "None")]
    pub null_label: Option<i64>,
}

impl TrainConfig {
    /// The learning rate of step `step` (0-based), with the linear warmup.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        if self.warmup_steps == 0 {
            return self.learning_rate;
        }
        self.learning_rate * ((step + 1) as f64 / self.warmup_steps as f64).min(1.0)
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] naming the first bad value.
    pub fn validate(&self) -> error::Result<()> {
        let positive = [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("keep_checkpoints", self.keep_checkpoints),
        ];
        if let Some((name, v)) = positive.into_iter().find(|(_, v)| *v == 0) {
            return Err(DiffusionError::config(name, v, "must be at least 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(DiffusionError::config(
                "learning_rate",
                self.learning_rate,
                "must be finite and positive",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(DiffusionError::config(
                "weight_decay",
                self.weight_decay,
                "must be finite and non-negative",
            ));
        }
        if let Some(norm) = self.grad_clip_norm
            && !(norm.is_finite() && norm > 0.0)
        {
            return Err(DiffusionError::config(
                "grad_clip_norm",
                norm,
                "must be finite and positive",
            ));
        }
        if !(0.0..=1.0).contains(&self.ema_decay) {
            return Err(DiffusionError::config(
                "ema_decay",
                self.ema_decay,
                "must be in [0, 1]",
            ));
        }
        self.label_dropout().map(|_| ())
    }

    /// The label dropout of `p_uncond` and `null_label` (`None` for `p_uncond` = 0).
    ///
    /// # Errors
    /// As [`crate::train::LabelDropout::new`]; a `p_uncond` > 0 without a `null_label`.
    pub fn label_dropout(&self) -> error::Result<Option<LabelDropout>> {
        if self.p_uncond == 0.0 {
            return Ok(None);
        }
        LabelDropout::new(self.p_uncond, 0)?; // the probability first
        let null = self.null_label.ok_or_else(|| {
            DiffusionError::config(
                "null_label",
                "None",
                format!(
                    "p_uncond = {} replaces labels by the null label: set null_label (the model's num_classes)",
                    self.p_uncond
                ),
            )
        })?;
        LabelDropout::new(self.p_uncond, null).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_linear_then_flat() {
        let c = TrainConfig::new(100)
            .with_warmup_steps(4)
            .with_learning_rate(1.0);
        let rates: Vec<f64> = (0..6).map(|s| c.learning_rate_at(s)).collect();
        assert_eq!(rates, vec![0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
        assert_eq!(TrainConfig::new(1).learning_rate_at(0), 2e-4);
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (TrainConfig::new(0), "steps"),
            (TrainConfig::new(1).with_batch_size(0), "batch_size"),
            (
                TrainConfig::new(1).with_learning_rate(f64::NAN),
                "learning_rate",
            ),
            (TrainConfig::new(1).with_weight_decay(-1.0), "weight_decay"),
            (
                TrainConfig::new(1).with_grad_clip_norm(Some(0.0)),
                "grad_clip_norm",
            ),
            (TrainConfig::new(1).with_ema_decay(1.5), "ema_decay"),
            (
                TrainConfig::new(1).with_keep_checkpoints(0),
                "keep_checkpoints",
            ),
            (TrainConfig::new(1).with_p_uncond(1.5), "p_uncond"),
            (TrainConfig::new(1).with_p_uncond(0.1), "null_label"),
            (
                TrainConfig::new(1)
                    .with_p_uncond(0.1)
                    .with_null_label(Some(-1)),
                "null_label",
            ),
        ];
        for (config, name) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
        assert!(TrainConfig::new(1).validate().is_ok());
    }
}
