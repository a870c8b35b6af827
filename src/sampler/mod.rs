//! Reverse samplers: turn noise into data with a trained model.

mod base;
mod continuous;
mod ddim;
mod ddpm;
mod dpm_solver;
mod driver;
mod langevin;
mod visits;

pub use base::{DynamicThreshold, ReverseSampler, StepOutput, X0Options};
pub use continuous::{EulerMaruyamaSampler, HeunSampler, HeunState};
pub use ddim::DdimSampler;
pub use ddpm::DdpmSampler;
pub use dpm_solver::{DpmSolverSampler, DpmSolverState};
pub use driver::{Guided, NoiseSource, SampleOptions, SampleOutput, sample, sample_from_noise};
pub use langevin::AnnealedLangevinSampler;
pub use visits::Visits;
