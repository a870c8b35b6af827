//! Helpers shared by the examples: `--name value` flags with defaults and `--help`.
//!
//! Each example includes this file with `mod common;`.

#![allow(dead_code)] // each example uses a different subset

use std::fmt::Display;
use std::str::FromStr;

/// The `--name value` flags of the command line.
pub struct Flags {
    pairs: Vec<(String, String)>,
}

impl Flags {
    /// Parses the command line. `-h` / `--help` prints `help` and exits with status 0; a
    /// flag not in `known`, or one without a value, prints the problem and `help` and exits
    /// with status 2.
    pub fn parse(help: &str, known: &[&str]) -> Self {
        let mut args = std::env::args().skip(1);
        let mut pairs = Vec::new();
        while let Some(flag) = args.next() {
            if flag == "-h" || flag == "--help" {
                println!("{help}");
                std::process::exit(0);
            }
            let name = flag.trim_start_matches("--");
            if !flag.starts_with("--") || !known.contains(&name) {
                usage_error(&format!("unknown argument {flag:?}"), help);
            }
            match args.next() {
                Some(value) => pairs.push((name.to_string(), value)),
                None => usage_error(&format!("{flag} needs a value"), help),
            }
        }
        Self { pairs }
    }

    /// The value of `--name`, or `default`; exits with status 2 if it does not parse.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T
    where
        T::Err: Display,
    {
        match self.pairs.iter().rev().find(|(n, _)| n == name) {
            None => default,
            Some((_, value)) => value.parse().unwrap_or_else(|e| {
                eprintln!("error: --{name} {value:?}: {e}");
                std::process::exit(2)
            }),
        }
    }
}

fn usage_error(message: &str, help: &str) -> ! {
    eprintln!("error: {message}\n\n{help}");
    std::process::exit(2)
}

/// Prints `error` and exits with status 1 (for errors after parsing).
pub fn exit_on_error<T, E: Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    })
}

use burn::tensor::{Device, Tensor};
use burn_diffusion::{
    DdimSampler, DdpmSampler, Denoiser, DiscreteSchedule, DpmSolverSampler, EulerMaruyamaSampler,
    HeunSampler, SampleOptions, Spacing, VarianceKind, VpProcess, sample_from_noise,
};

/// The samplers the examples offer, by name.
pub const SAMPLERS: &str = "ddpm | ddim | dpm-solver | heun | euler-maruyama";

/// Samples `shape` from `model` with the sampler called `name` over `steps` steps of
/// `schedule` (DDPM runs on the schedule respaced to `steps`; the others visit `steps`
/// evenly spaced timesteps), printing a progress line.
pub fn sample_with<M: Denoiser<D>, const D: usize>(
    name: &str,
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
    };
    let progress = |done: usize, total: usize| {
        if done == total || done.is_multiple_of((total / 10).max(1)) {
            eprint!("\r{name}: step {done}/{total}   ");
            if done == total {
                eprintln!();
            }
        }
    };
    let e = |e: burn_diffusion::DiffusionError| e.to_string();
    let out = match name {
        "ddpm" => {
            let respaced = VpProcess::new(schedule.respace(&spacing).map_err(e)?);
            let sampler = DdpmSampler::new(respaced, VarianceKind::FixedLarge, x0).map_err(e)?;
            sample_from_noise(&sampler, model, shape, device, options, progress)
        }
        "ddim" => {
            let sampler = DdimSampler::with_spacing(process, &spacing, 0.0, x0).map_err(e)?;
            sample_from_noise(&sampler, model, shape, device, options, progress)
        }
        "dpm-solver" => {
            let sampler = DpmSolverSampler::diffusers_default(process, steps, x0).map_err(e)?;
            sample_from_noise(&sampler, model, shape, device, options, progress)
        }
        "heun" => {
            let sampler = HeunSampler::new(process, &spacing, x0).map_err(e)?;
            sample_from_noise(&sampler, model, shape, device, options, progress)
        }
        "euler-maruyama" => {
            let sampler = EulerMaruyamaSampler::new(process, &spacing, x0).map_err(e)?;
            sample_from_noise(&sampler, model, shape, device, options, progress)
        }
        other => return Err(format!("unknown sampler {other:?}: use one of {SAMPLERS}")),
    };
    Ok(out.map_err(e)?.sample)
}
