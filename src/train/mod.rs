//! Training: the [`Trainer`] loop (AdamW, warmup, gradient clipping, EMA, checkpoints,
//! exact resume, CSV log, per-step callback) and its parts; with the `train` feature, the
//! objective as a burn-train model for Burn's own `Learner`.

mod checkpoint;
mod clip;
mod config;
mod ema;
mod label_dropout;
#[cfg(feature = "train")]
mod learner;
mod trainer;

pub use checkpoint::{Checkpoint, CheckpointState};
pub use clip::{clip_grad_norm, clip_grad_norm_on_device};
pub use config::{LrSchedule, TimestepSampling, TrainConfig};
pub use ema::Ema;
pub use label_dropout::LabelDropout;
#[cfg(feature = "train")]
#[cfg_attr(docsrs, doc(cfg(feature = "train")))]
pub use learner::{DiffusionBatch, DiffusionBatcher, DiffusionObjective, Labeled, LabeledImages};
pub use trainer::{Examples, FitOptions, FitSummary, StepStats, Trainer};
