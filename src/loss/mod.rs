//! Training objectives: the simplified ε / x_0 / v MSE family, the full variational
//! bound, the hybrid of both, bound evaluation, and timestep sampling.

mod base;
mod bound;
mod hybrid;
mod simple;
mod timestep_sampler;
mod vlb;
mod weighting;

#[cfg(feature = "train")]
pub(crate) use base::draw_uniform;
pub(crate) use base::mean_flat;
pub use base::{Loss, LossOutput, process_fingerprint, uniform_timestep_values, uniform_timesteps};
pub use bound::BoundEvaluation;
pub use hybrid::HybridLoss;
pub use simple::SimpleLoss;
pub use timestep_sampler::{LossSecondMomentResampler, TimestepSampler, UniformSampler};
pub use vlb::{Decoder, VbTerms, VlbLoss};
pub use weighting::Weighting;
