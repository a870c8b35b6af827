//! Training: the [`Trainer`] loop (AdamW, warmup, gradient clipping, EMA, checkpoints,
//! exact resume, CSV log, progress bar) and its parts.

mod checkpoint;
mod clip;
mod config;
mod ema;
mod trainer;

pub use checkpoint::{
    Checkpoint, CheckpointState, EMA_FILE, LATEST_FILE, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE,
};
pub use clip::clip_grad_norm;
pub use config::TrainConfig;
pub use ema::Ema;
pub use trainer::{FitOptions, FitSummary, StepStats, Trainer};
