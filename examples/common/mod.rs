//! Helpers shared by the examples: the sampler names of their command lines (parsed by
//! clap), error exits and sampling with a progress bar.
//!
//! Each example includes this file with `mod common;`.

#![allow(dead_code)] // each example uses a different subset

use std::fmt::Display;

/// Prints `error` and exits with status 1 (for errors after parsing).
pub fn exit_on_error<T, E: Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    })
}

/// A positive integer (a clap value parser: `#[arg(value_parser = positive)]`).
pub fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be positive".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

use burn::tensor::{Device, Tensor};
use burn_diffusion::{
    Denoiser,
    process::VpProcess,
    progress::ConsoleProgress,
    sampler::{
        ModelTime, ReverseSampler, SampleOptions, X0Options, canonical_sampler_name,
        sample_from_noise, sampler_by_name,
    },
    schedule::DiscreteSchedule,
};

/// `--sampler`: any name the crate's registry knows ("ddim", "dpmpp_2m_karras",
/// "Euler a", …), checked when the flag is parsed and returned in its canonical spelling.
pub fn parse_sampler(s: &str) -> Result<String, String> {
    canonical_sampler_name(s).map_err(|e| e.to_string())
}

/// Samples `shape` from `model` with the sampler called `sampler` (see
/// `burn_diffusion::sampler::sampler_by_name`) over `steps` steps of `schedule`, drawing a
/// progress bar. The crate's models take fractional timesteps, so σ-grid samplers call
/// them where diffusers would.
pub fn sample_with<M: Denoiser<D>, const D: usize>(
    sampler: &str,
    steps: usize,
    schedule: &DiscreteSchedule,
    model: &M,
    shape: [usize; D],
    device: &Device,
    seed: u64,
) -> Result<Tensor<D>, String> {
    let e = |e: burn_diffusion::DiffusionError| e.to_string();
    let process = VpProcess::new(schedule.clone());
    let chosen = sampler_by_name(
        sampler,
        &process,
        steps,
        X0Options::default(),
        ModelTime::Fractional,
    )
    .map_err(e)?;
    let options = SampleOptions {
        seed,
        keep_trajectory: false,
        ..SampleOptions::default()
    };
    let calls = ReverseSampler::<D>::timesteps(&chosen).len();
    let bar = ConsoleProgress::new(calls, sampler);
    let progress = |done: usize, _total: usize| bar.update(done, None);
    let out = sample_from_noise(&chosen, model, shape, device, options, progress);
    bar.finish();
    out.map(|o| o.sample).map_err(e)
}

pub mod classifier;
pub mod images;
