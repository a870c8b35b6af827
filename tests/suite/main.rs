//! The integration test suite: one binary, every test run on every CPU device
//! (see `common::devices`).

mod bounds;
mod common;
mod crash;
mod cross_device;
#[cfg(feature = "diffusers")]
mod diffusers;
mod errors;
mod examples;
mod host_reads;
mod hostile;
mod losses;
mod metrics;
mod monte_carlo;
mod oracle;
mod package;
mod properties;
mod reference;
mod samplers;
mod sigma_gaussian;
mod sigma_samplers;
mod stored;
mod train;
mod unet;
mod vae;
