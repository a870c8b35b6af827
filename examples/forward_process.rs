//! Noise handwritten digits along the DDPM forward process q(x_t | x_0) and write the
//! strip as a PNG: one row per digit, one column per timestep.
//!
//! ```text
//! cargo run --release --example forward_process -- --out out/forward_process.png
//! ```
//!
//! It also prints, per timestep, the empirical mean and variance of x_t − √ᾱ_t x_0 over all
//! 1,797 digits next to the values the closed form promises (0 and 1 − ᾱ_t).

use std::io::Read;
use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_diffusion::{BetaSchedule, ForwardProcess, NoiseSchedule, ScheduleConfig, VpProcess};

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

struct Args {
    out: PathBuf,
    schedule: BetaSchedule,
    rows: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: PathBuf::from("out/forward_process.png"),
        schedule: BetaSchedule::default(),
        rows: 6,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Err(HELP.to_string()),
            "--out" => args.out = PathBuf::from(value()?),
            "--schedule" => {
                args.schedule = match value()?.as_str() {
                    "linear" => BetaSchedule::default(),
                    "cosine" => BetaSchedule::cosine(),
                    other => return Err(format!("unknown schedule {other:?}\n\n{HELP}")),
                }
            }
            "--rows" => {
                args.rows = value()?.parse().map_err(|e| format!("--rows: {e}"))?;
                if !(1..=20).contains(&args.rows) {
                    return Err("--rows must be in 1..=20".into());
                }
            }
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            other => return Err(format!("unknown argument {other:?}\n\n{HELP}")),
        }
    }
    Ok(args)
}

/// The digits scaled from 0..16 to [−1, 1], shape [1797, 64].
fn load_digits() -> Result<Vec<[f32; 64]>, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits/digits.csv.gz");
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let values: Vec<f32> = line
                .split(',')
                .take(64)
                .map(|v| v.trim().parse::<f32>().map(|p| p / 8.0 - 1.0))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{path}: line {}: {e}", i + 1))?;
            values
                .try_into()
                .map_err(|_| format!("{path}: line {}: fewer than 64 pixels", i + 1))
        })
        .collect()
}

fn main() {
    let args = parse_args().unwrap_or_else(|message| {
        println!("{message}");
        std::process::exit(if message == HELP { 0 } else { 2 });
    });
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let device = Device::flex();
    let digits = load_digits()?;
    let n = digits.len();
    let schedule = ScheduleConfig::new()
        .with_beta_schedule(args.schedule.clone())
        .init()
        .map_err(|e| e.to_string())?;
    let process = VpProcess::new(schedule.clone());
    let flat: Vec<f32> = digits.iter().flatten().copied().collect();
    let x0 = Tensor::<2>::from_data(TensorData::new(flat, [n, 64]), &device);

    println!(
        "{n} digits; per timestep: mean and variance of x_t − √ᾱ_t·x_0 (closed form: 0 and 1 − ᾱ_t)"
    );
    let mut columns = Vec::new();
    for (i, &t) in TIMESTEPS.iter().enumerate() {
        let tt = Tensor::<1, Int>::from_data(TensorData::new(vec![t as i64; n], [n]), &device);
        let x_t = process
            .q_sample_seeded(x0.clone(), &tt, args.seed + i as u64)
            .map_err(|e| e.to_string())?;
        let resid = x_t.clone() - x0.clone() * schedule.sqrt_alphas_cumprod()[t];
        let mean: f32 = resid.clone().mean().into_scalar();
        let var: f32 = (resid - mean).square().mean().into_scalar();
        println!(
            "t = {t:>3}: mean {mean:>8.4} (0), variance {var:.4} ({:.4})",
            1.0 - schedule.alphas_cumprod()[t]
        );
        let rows = x_t.slice([0..args.rows, 0..64]);
        columns.push(
            rows.try_into_vec_as::<f32>()
                .map_err(|e| format!("{e:?}"))?,
        );
    }
    write_strip(&args.out, &columns, args.rows)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// One row per digit, one column per timestep; values in [−1, 1] mapped to 0..255.
fn write_strip(path: &PathBuf, columns: &[Vec<f32>], rows: usize) -> Result<(), String> {
    let cell = 8 * SCALE + 4; // 4 px gutter
    let (width, height) = (columns.len() * cell, rows * cell);
    let mut pixels = vec![255u8; width * height];
    for (c, column) in columns.iter().enumerate() {
        for r in 0..rows {
            for y in 0..8 * SCALE {
                for x in 0..8 * SCALE {
                    let v = column[r * 64 + (y / SCALE) * 8 + x / SCALE];
                    let gray = ((1.0 - v.clamp(-1.0, 1.0)) * 127.5).round() as u8; // ink dark
                    pixels[(r * cell + y) * width + c * cell + x] = gray;
                }
            }
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&pixels).map_err(|e| e.to_string())
}
