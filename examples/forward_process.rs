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
    BetaSchedule, ForwardProcess, NoiseSchedule, ScheduleConfig, VpProcess, write_png_grid_scaled,
};
use common::{Flags, exit_on_error};

const HELP: &str = "\
forward_process: noise digits along q(x_t | x_0) and write a PNG strip

USAGE: cargo run --release --example forward_process -- [OPTIONS]

OPTIONS:
  --out PATH         PNG to write            [default: out/forward_process.png]
  --schedule NAME    linear | cosine         [default: linear]
  --rows N           digits to show (1..=20) [default: 6]
  --seed N           noise seed              [default: 0]
  -h, --help         print this help";

const TIMESTEPS: [usize; 8] = [0, 50, 100, 200, 300, 500, 700, 999];
const SCALE: usize = 8; // each 8×8 digit becomes 64×64 pixels

fn main() {
    let flags = Flags::parse(HELP, &["out", "schedule", "rows", "seed"]);
    let out: PathBuf = flags.get("out", PathBuf::from("out/forward_process.png"));
    let schedule = match flags.get("schedule", String::from("linear")).as_str() {
        "linear" => BetaSchedule::default(),
        "cosine" => BetaSchedule::cosine(),
        other => exit_on_error(Err(format!("unknown schedule {other:?}: linear | cosine"))),
    };
    let rows: usize = flags.get("rows", 6);
    if !(1..=20).contains(&rows) {
        exit_on_error::<(), _>(Err("--rows must be in 1..=20"));
    }
    let seed: u64 = flags.get("seed", 0);

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
