//! The common path in one import: `use burn_diffusion::prelude::*;`
//!
//! The six traits of the design, the error type, and the types most programs name: a
//! schedule and the DDPM process, the prediction target, the simplified loss, the DDPM
//! and DDIM samplers with the sampling loop, the UNet, seeded noise and the trainer.

pub use crate::error::{DiffusionError, Result};
pub use crate::loss::{Loss, SimpleLoss, Weighting};
pub use crate::model::{Denoiser, UNet, UNetConfig};
pub use crate::noise::randn;
pub use crate::prediction::{Parameterization, Prediction, VarianceKind};
pub use crate::process::{ForwardProcess, Posterior, VpProcess};
#[cfg(feature = "progress")]
pub use crate::progress::ConsoleProgress;
pub use crate::sampler::{
    DdimSampler, DdpmSampler, ReverseSampler, SampleOptions, sample, sample_from_noise,
};
pub use crate::schedule::{BetaSchedule, DiscreteSchedule, NoiseSchedule, ScheduleConfig, Spacing};
pub use crate::train::{FitOptions, TrainConfig, Trainer};
