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
    prediction::VarianceKind,
    process::VpProcess,
    progress::ConsoleProgress,
    sampler::{
        DdimSampler, DdpmSampler, DpmSolverSampler, EulerMaruyamaSampler, HeunSampler,
        SampleOptions, sample_from_noise,
    },
    schedule::{DiscreteSchedule, Spacing},
};

/// The samplers the examples offer, by name (`--sampler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SamplerName {
    /// Ancestral sampling on the schedule respaced to the step count.
    Ddpm,
    /// Deterministic DDIM (η = 0).
    Ddim,
    /// DPM-Solver++(2M), diffusers' defaults.
    DpmSolver,
    /// Heun on the probability-flow ODE.
    Heun,
    /// Euler–Maruyama on the reverse SDE.
    EulerMaruyama,
}

impl SamplerName {
    /// The name as typed on the command line.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .expect("no variant is skipped")
            .get_name()
            .to_string()
    }
}

/// Samples `shape` from `model` with `sampler` over `steps` steps of `schedule` (DDPM runs
/// on the schedule respaced to `steps`; the others visit `steps` evenly spaced timesteps),
/// drawing a progress bar.
pub fn sample_with<M: Denoiser<D>, const D: usize>(
    sampler: SamplerName,
    steps: usize,
    schedule: &DiscreteSchedule,
    model: &M,
    shape: [usize; D],
    device: &Device,
    seed: u64,
) -> Result<Tensor<D>, String> {
    let spacing = Spacing::Linspace { steps };
    let process = VpProcess::new(schedule.clone());
    let x0 = Default::default();
    let options = SampleOptions {
        seed,
        keep_trajectory: false,
        ..SampleOptions::default()
    };
    let bar = ConsoleProgress::new(steps, sampler.name());
    let progress = |done: usize, _total: usize| bar.update(done, None);
    let e = |e: burn_diffusion::DiffusionError| e.to_string();
    let out = match sampler {
        SamplerName::Ddpm => {
            let respaced = VpProcess::new(schedule.respace(&spacing).map_err(e)?);
            let sampler = DdpmSampler::new(respaced, VarianceKind::FixedLarge, x0).map_err(e)?;
            sample_from_noise(&sampler, model, shape, device, options, progress)
        }
        SamplerName::Ddim => {
            let sampler = DdimSampler::with_spacing(process, &spacing, 0.0, x0).map_err(e)?;
            sample_from_noise(&sampler, model, shape, device, options, progress)
        }
        SamplerName::DpmSolver => {
            let sampler = DpmSolverSampler::diffusers_default(process, steps, x0).map_err(e)?;
            sample_from_noise(&sampler, model, shape, device, options, progress)
        }
        SamplerName::Heun => {
            let sampler = HeunSampler::new(process, &spacing, x0).map_err(e)?;
            sample_from_noise(&sampler, model, shape, device, options, progress)
        }
        SamplerName::EulerMaruyama => {
            let sampler = EulerMaruyamaSampler::new(process, &spacing, x0).map_err(e)?;
            sample_from_noise(&sampler, model, shape, device, options, progress)
        }
    };
    bar.finish();
    out.map(|o| o.sample).map_err(e)
}
