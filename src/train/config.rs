//! The training hyperparameters.

use burn::config::Config;

use burn::lr_scheduler::LrSchedulerConfig;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::{ModuleLrScheduler, ModuleLrSchedulerConfig};
use burn::lr_scheduler::sequential::SequentialLrSchedulerConfig;

use crate::error::{self, DiffusionError};
use crate::loss::LossSecondMomentResampler;
use crate::train::LabelDropout;

/// Hyperparameters of [`crate::train::Trainer`]: AdamW with linear learning-rate warmup
/// and a [`LrSchedule`], the [`TimestepSampling`], global gradient-norm clipping, an EMA
/// of the weights and periodic checkpoints.
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
    /// Steps of linear warmup: the rate at step s < warmup is `learning_rate · (s + 1) / warmup`.
    #[config(default = 0)]
    pub warmup_steps: usize,
    /// The learning rate after the warmup ([`LrSchedule`]; default constant).
    #[config(default = "LrSchedule::Constant")]
    pub lr_schedule: LrSchedule,
    /// How each step draws its timesteps ([`TimestepSampling`]; default uniform).
    #[config(default = "TimestepSampling::Uniform")]
    pub timestep_sampling: TimestepSampling,
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

/// The learning rate after the warmup, for steps `warmup_steps..steps`, run by Burn's
/// schedulers (`burn::lr_scheduler`; [`TrainConfig::lr_scheduler`]).
#[derive(Config, Debug, PartialEq, Copy)]
pub enum LrSchedule {
    /// `learning_rate` throughout (DDPM, improved-diffusion).
    Constant,
    /// Cosine annealing from `learning_rate` towards `min_lr`, which it would reach at step
    /// `steps` (PyTorch's `CosineAnnealingLR`, diffusers' `cosine` schedule for
    /// `min_lr` = 0).
    Cosine {
        /// The rate the cosine ends at (in [0, `learning_rate`]).
        min_lr: f64,
    },
    /// A linear ramp from `learning_rate` towards `final_lr`, reached at step `steps`
    /// (diffusers' `linear` schedule for `final_lr` = 0).
    Linear {
        /// The rate the ramp ends at (in [0, 1]).
        final_lr: f64,
    },
}

/// How [`crate::train::Trainer`] draws the timesteps of each training example.
#[derive(Config, Debug, PartialEq, Copy)]
pub enum TimestepSampling {
    /// Uniformly from `0..T` (Ho et al. 2020).
    Uniform,
    /// By importance, p_t ∝ √E(L_t²) over each timestep's last `history` losses, mixed
    /// with `uniform_prob` of uniform, after every timestep has `history` losses (uniform
    /// until then); each example's loss is weighted by 1/(T·p_t), so the batch mean
    /// stays an unbiased estimate of the uniform-t loss (Nichol & Dhariwal 2021, §3.3;
    /// [`crate::loss::LossSecondMomentResampler`]). Meant for the VLB and hybrid losses,
    /// whose terms differ by orders of magnitude across t; improved-diffusion uses
    /// `history` 10 and `uniform_prob` 0.001. Each step reads its per-example losses back
    /// from the device to update the history, which the checkpoints keep.
    LossSecondMoment {
        /// Losses kept per timestep (at least 1).
        history: usize,
        /// The uniform share of the distribution (in (0, 1]).
        uniform_prob: f64,
    },
}

impl TimestepSampling {
    /// improved-diffusion's `loss-second-moment` sampler: 10 losses per timestep,
    /// uniform share 0.001.
    pub fn loss_second_moment() -> Self {
        Self::LossSecondMoment {
            history: 10,
            uniform_prob: 0.001,
        }
    }
}

impl TrainConfig {
    /// The learning rate of step `step` (0-based): the warmup, then the [`LrSchedule`]
    /// (from the scheduler of [`TrainConfig::lr_scheduler`], advanced to `step`: O(step),
    /// for inspection). An invalid configuration gives NaN.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        match self.lr_scheduler() {
            Ok(mut scheduler) => {
                (0..step).fold(scheduler.step().base(), |_, _| scheduler.step().base())
            }
            Err(_) => f64::NAN,
        }
    }

    /// A fresh Burn scheduler of this configuration's rates, one `step()` per optimizer
    /// step: a linear ramp from `learning_rate / warmup_steps` to `learning_rate` over
    /// the warmup (`LinearLrSchedulerConfig`), then the [`LrSchedule`] (`learning_rate`,
    /// `CosineAnnealingLrSchedulerConfig` or `LinearLrSchedulerConfig` over the remaining
    /// steps), joined by a `SequentialLrSchedulerConfig`.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] for rates Burn's schedulers refuse (a
    /// `learning_rate` above 1 with a warmup or a non-constant schedule; a `min_lr` outside
    /// [0, `learning_rate`], a `final_lr` outside [0, 1]).
    pub fn lr_scheduler(&self) -> error::Result<ModuleLrScheduler> {
        let lr = self.learning_rate;
        let main_steps = self.steps.saturating_sub(self.warmup_steps).max(1);
        let main = match self.lr_schedule {
            LrSchedule::Constant => LrSchedulerConfig::Constant(lr),
            LrSchedule::Cosine { min_lr } => CosineAnnealingLrSchedulerConfig::new(lr, main_steps)
                .with_min_lr(min_lr)
                .into(),
            LrSchedule::Linear { final_lr } => {
                LinearLrSchedulerConfig::new(lr, final_lr, main_steps).into()
            }
        };
        let config = match self.warmup_steps {
            0 | 1 => main,
            w => {
                // The part of the ramp inside the run, so that a warmup far longer than
                // the run keeps its rates exact (Burn's linear ramp counts down from its
                // end: its rounding error scales with the ramp's length).
                let ramp = w.min(self.steps.max(2));
                let top = lr * ramp as f64 / w as f64;
                let warmup = LinearLrSchedulerConfig::new(lr / w as f64, top, ramp - 1);
                match w < self.steps {
                    true => {
                        SequentialLrSchedulerConfig::new(vec![warmup.into(), main], vec![w]).into()
                    }
                    false => warmup.into(),
                }
            }
        };
        ModuleLrSchedulerConfig::new(config).init().map_err(|e| {
            DiffusionError::config("lr_schedule", format!("{:?}", self.lr_schedule), e)
        })
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
        if let TimestepSampling::LossSecondMoment {
            history,
            uniform_prob,
        } = self.timestep_sampling
        {
            LossSecondMomentResampler::with_options(1, history, uniform_prob)?;
        }
        self.lr_scheduler()?;
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
        // One warmup step is no warmup; a warmup longer than the run ramps all of it.
        let one = TrainConfig::new(3)
            .with_warmup_steps(1)
            .with_learning_rate(0.5);
        assert_eq!(one.learning_rate_at(0), 0.5);
        let long = TrainConfig::new(3)
            .with_warmup_steps(10)
            .with_learning_rate(1.0);
        assert!((long.learning_rate_at(2) - 0.3).abs() < 1e-15);
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
            (
                TrainConfig::new(10).with_lr_schedule(LrSchedule::Cosine { min_lr: 1.0 }),
                "lr_schedule",
            ),
            (
                TrainConfig::new(10).with_lr_schedule(LrSchedule::Linear { final_lr: -1.0 }),
                "lr_schedule",
            ),
            (
                TrainConfig::new(10)
                    .with_learning_rate(2.0)
                    .with_warmup_steps(5),
                "lr_schedule",
            ),
            (
                TrainConfig::new(1).with_timestep_sampling(TimestepSampling::LossSecondMoment {
                    history: 0,
                    uniform_prob: 0.1,
                }),
                "history",
            ),
            (
                TrainConfig::new(1).with_timestep_sampling(TimestepSampling::LossSecondMoment {
                    history: 10,
                    uniform_prob: 0.0,
                }),
                "uniform_prob",
            ),
        ];
        for (config, name) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
        assert!(TrainConfig::new(1).validate().is_ok());
    }
}
