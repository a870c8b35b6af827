//! Noise handwritten digits along the DDPM forward process q(x_t | x_0) and write the
//! strip as a PNG: one row per digit, one column per timestep.
//!
//! ```text
//! cargo run --release --example forward_process -- --out out/forward_process.png
//! ```
//!
//! It also prints, per timestep, the empirical mean and variance of x_t − √ᾱ_t x_0 over all
//! 1,797 digits next to the values the closed form promises (0 and 1 − ᾱ_t).

mod common;

use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_diffusion::data::ImageDataset;
use burn_diffusion::{
    ForwardProcess, NoiseSchedule,
    image::write_png_grid_scaled,
    process::VpProcess,
    schedule::{BetaSchedule, ScheduleConfig},
};
use clap::{Parser, ValueEnum};
use common::exit_on_error;

/// forward_process: noise digits along q(x_t | x_0) and write a PNG strip
#[derive(Parser, Debug)]
#[command(name = "forward_process")]
struct Args {
    /// PNG to write
    #[arg(long, default_value = "out/forward_process.png")]
    out: PathBuf,
    /// β schedule
    #[arg(long, value_enum, default_value_t = ScheduleName::Linear)]
    schedule: ScheduleName,
    /// digits to show
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(1..=20))]
    rows: u8,
    /// noise seed
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScheduleName {
    Linear,
    Cosine,
}

const TIMESTEPS: [usize; 8] = [0, 50, 100, 200, 300, 500, 700, 999];
const SCALE: usize = 8; // each 8×8 digit becomes 64×64 pixels

fn main() {
    let Args {
        out,
        schedule,
        rows,
        seed,
    } = Args::parse();
    let rows = usize::from(rows);
    let schedule = match schedule {
        ScheduleName::Linear => BetaSchedule::default(),
        ScheduleName::Cosine => BetaSchedule::cosine(),
    };

    let device = Device::flex();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits/digits.csv.gz");
    let x0 = exit_on_error(ImageDataset::load_digits(path)).to_tensor(&device);
    let n = x0.dims()[0];
    let schedule = exit_on_error(ScheduleConfig::new().with_beta_schedule(schedule).init());
    let process = VpProcess::new(schedule.clone());

    println!(
        "{n} digits; per timestep: mean and variance of x_t − √ᾱ_t·x_0 (closed form: 0 and 1 − ᾱ_t)"
    );
    let mut columns = Vec::new();
    for (i, &t) in TIMESTEPS.iter().enumerate() {
        let tt = Tensor::<1, Int>::from_data(TensorData::new(vec![t as i64; n], [n]), &device);
        let x_t = exit_on_error(process.q_sample_seeded(x0.clone(), &tt, seed + i as u64));
        let resid = x_t.clone() - x0.clone() * schedule.sqrt_alphas_cumprod()[t];
        let mean: f32 = resid.clone().mean().into_scalar();
        let var: f32 = (resid - mean).square().mean().into_scalar();
        println!(
            "t = {t:>3}: mean {mean:>8.4} (0), variance {var:.4} ({:.4})",
            1.0 - schedule.alphas_cumprod()[t]
        );
        columns.push(x_t.narrow(0, 0, rows));
    }
    // One row per digit, one column per timestep; negated so that ink is dark.
    let grid = Tensor::stack::<5>(columns, 1).reshape([rows * TIMESTEPS.len(), 1, 8, 8]);
    exit_on_error(write_png_grid_scaled(&out, -grid, TIMESTEPS.len(), SCALE));
    println!("wrote {}", out.display());
}
