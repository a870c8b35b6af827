//! Reverse samplers: turn noise into data with a trained model.

mod base;
mod ddim;
mod ddpm;
mod driver;

pub use base::{DynamicThreshold, ReverseSampler, StepOutput, X0Options};
pub use ddim::DdimSampler;
pub use ddpm::DdpmSampler;
pub use driver::{Guided, SampleOptions, SampleOutput, sample, sample_from_noise};
