//! Reverse samplers: turn noise into data with a trained model.

mod base;
mod continuous;
mod ddim;
mod ddim_inverse;
mod ddpm;
mod dpm_solver;
mod driver;
mod edm_heun;
mod euler;
mod img2img;
mod inpaint;
mod langevin;
mod lms;
mod registry;
mod resampling;
mod sigmas;
mod unipc;
mod visits;

pub use base::{DynamicThreshold, ReverseSampler, StepOutput, X0Options};
pub use continuous::{EulerMaruyamaSampler, HeunSampler, HeunState};
pub use ddim::DdimSampler;
pub use ddim_inverse::DdimInverseSampler;
pub use ddpm::DdpmSampler;
pub use dpm_solver::{DpmSolverOptions, DpmSolverSampler, DpmSolverState, SecondOrder};
pub use driver::{
    Guided, NoiseSource, SampleOptions, SampleOutput, call_model, sample, sample_from_noise,
};
pub use edm_heun::{EdmHeunSampler, EdmHeunState};
pub use euler::{EulerAncestralSampler, EulerSampler};
pub use img2img::Img2Img;
pub use inpaint::Inpaint;
pub use langevin::AnnealedLangevinSampler;
pub use lms::{LmsSampler, LmsState};
pub use registry::{
    AnySampler, AnySamplerState, SAMPLER_NAMES, canonical_sampler_name, sampler_by_name,
};
pub use resampling::Resampling;
pub use sigmas::{FinalSigma, ModelTime, SigmaGrid, SigmaSchedule};
pub use unipc::{UniPcOptions, UniPcSampler, UniPcState, UniPcVariant};
pub use visits::Visits;
