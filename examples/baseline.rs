//! The same-budget PyTorch baseline of `mnist`: hands the split, the initial weights and
//! the recipe to `benches/pytorch_digits.py` (diffusers' `UNet2DModel`, PyTorch's AdamW),
//! and scores the model it trains with exactly `mnist`'s evaluation: the sample grid, the
//! Fréchet distance in the digits classifier's features and the held-out bits/dim bound.
//!
//! ```text
//! cargo run --release --features diffusers --example baseline -- prepare   # out/baseline
//! python benches/pytorch_digits.py out/baseline                             # out/baseline/torch
//! cargo run --release --features diffusers --example baseline -- evaluate --model out/baseline/torch
//! cargo run --release --example mnist                                       # ours, same recipe
//! cargo run --release --features diffusers --example baseline -- export    # out/baseline/ours
//! python benches/pytorch_digits.py out/baseline --bound-of out/baseline/ours # its bound in PyTorch
//! ```
//!
//! `prepare` writes, for `mnist`'s defaults (the digits, 256 held-out images, seed 0):
//! `train.json` (the `TrainConfig` of `mnist`'s recipe), `schedule.json`, `init/` (the
//! initial UNet that `mnist` starts from, as a diffusers folder), and the split as NumPy
//! arrays (`train-images.npy`, `train-labels.npy`, `held-images.npy`, `held-labels.npy`:
//! float32 images in [−1, 1], int64 labels).

mod common;

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Device;
use burn_diffusion::{
    data::ImageDataset,
    diffusers::{load_unet, save_unet},
    process::VpProcess,
    schedule::ScheduleConfig,
};
use clap::{Parser, Subcommand};
use common::images::{
    DatasetName, Evaluation, Grids, RecipeArgs, digits_classifier, initial_unet, load_run, split,
};
use common::{exit_on_error, parse_sampler};

/// baseline: the PyTorch baseline's inputs, and the evaluation of the model it trains
#[derive(Parser, Debug)]
#[command(name = "baseline")]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// dataset
    #[arg(long, global = true, value_enum, default_value_t = DatasetName::Digits)]
    dataset: DatasetName,
    /// images kept out of training (as mnist's --held-out)
    #[arg(long, global = true, default_value_t = 256)]
    held_out: usize,
    /// seed of the split, the initial weights and the evaluation (as mnist's --seed)
    #[arg(long, global = true, default_value_t = 0)]
    seed: u64,
    /// folder holding digits/, mnist/, fashion-mnist/ [default: the crate's data/]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// write the split, the initial weights and the recipe for the PyTorch script
    Prepare {
        /// the recipe (as mnist's flags)
        #[command(flatten)]
        recipe: RecipeArgs,
        /// output folder
        #[arg(long, default_value = "out/baseline")]
        out: PathBuf,
    },
    /// write the EMA weights of a run of mnist as a diffusers UNet2DModel folder (for the
    /// PyTorch script's bound)
    Export {
        /// the mnist run (its --out folder)
        #[arg(long, default_value = "out/mnist")]
        run: PathBuf,
        /// the folder to write
        #[arg(long, default_value = "out/baseline/ours")]
        out: PathBuf,
    },
    /// score a diffusers UNet2DModel folder as mnist scores its own model
    Evaluate {
        /// the model folder (config.json, diffusion_pytorch_model.safetensors)
        #[arg(long)]
        model: PathBuf,
        /// held-out images of the bits/dim bound (as mnist's --eval; 0 skips)
        #[arg(long, default_value_t = 64)]
        eval: usize,
        /// sampler of the grid and the Fréchet samples (as mnist's --sampler)
        #[arg(long, default_value = "ddim", value_parser = parse_sampler)]
        sampler: String,
        /// sampler steps (as mnist's --sample-steps)
        #[arg(long, default_value_t = 50)]
        sample_steps: usize,
    },
}

fn main() {
    // Freed buffers are reused instead of returned to the system (see `tuning`).
    burn_diffusion::tuning::keep_freed_memory();
    let Args {
        command,
        dataset,
        held_out,
        seed,
        data_dir,
    } = Args::parse();
    let data_dir = data_dir.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("data"));
    let device = Device::flex();
    let (train, held, unet) = exit_on_error(split(dataset, &data_dir, held_out, seed));
    match command {
        Command::Prepare { recipe, out } => {
            let model = initial_unet(&unet, seed, &device);
            exit_on_error(save_unet(&model, &unet, out.join("init")));
            exit_on_error(recipe.config(seed).save(out.join("train.json")));
            exit_on_error(ScheduleConfig::new().save(out.join("schedule.json")));
            for (name, set) in [("train", &train), ("held", &held)] {
                exit_on_error(write_split(&out, name, set));
            }
            println!(
                "wrote {}: a UNet of {} parameters (init/), the recipe (train.json, schedule.json), {} training and {} held-out images",
                out.display(),
                model.num_params(),
                train.len(),
                held.len()
            );
        }
        Command::Export { run, out } => {
            let (model, config, _, checkpoint) = exit_on_error(load_run(&run, true, &device));
            exit_on_error(save_unet(&model, &config, &out));
            println!(
                "wrote {} (the EMA weights of step {} of {})",
                out.display(),
                checkpoint.state().step,
                checkpoint.dir().display()
            );
        }
        Command::Evaluate {
            model,
            eval,
            sampler,
            sample_steps,
        } => {
            let (unet_model, config) = exit_on_error(load_unet(&model, &device));
            let shape = train.image_shape();
            if [config.in_channels, config.resolution, config.resolution] != shape {
                exit_on_error::<(), _>(Err(format!(
                    "{}: a model of {}×{}×{} images, the data are {shape:?}",
                    model.display(),
                    config.in_channels,
                    config.resolution,
                    config.resolution
                )));
            }
            println!(
                "{}: a UNet of {} parameters",
                model.display(),
                unet_model.num_params()
            );
            let schedule = exit_on_error(ScheduleConfig::new().init());
            let process = VpProcess::new(schedule.clone());
            let evaluation = Evaluation {
                grids: Grids {
                    sampler: &sampler,
                    steps: sample_steps,
                    schedule: &schedule,
                    shape,
                    device: &device,
                    cond: config.num_classes.is_some(),
                },
                process: &process,
                train: &train,
                held: &held,
                classifier: digits_classifier(dataset, &data_dir, shape.iter().product(), &device),
                eval,
                out: &model,
                scale: (64 / shape[1]).max(1),
                seed,
            };
            evaluation.run(&unet_model);
        }
    }
}

/// Writes `set`'s images and labels as `{name}-images.npy` (float32 `[N, C, H, W]`) and
/// `{name}-labels.npy` (int64 `[N]`) in `out`.
fn write_split(out: &Path, name: &str, set: &ImageDataset) -> Result<(), String> {
    let [c, h, w] = set.image_shape();
    let images: Vec<u8> = set.pixels().iter().flat_map(|v| v.to_le_bytes()).collect();
    let labels: Vec<u8> = set
        .labels()
        .iter()
        .flat_map(|&l| i64::from(l).to_le_bytes())
        .collect();
    let n = set.len();
    write_npy(
        &out.join(format!("{name}-images.npy")),
        "<f4",
        &[n, c, h, w],
        &images,
    )?;
    write_npy(
        &out.join(format!("{name}-labels.npy")),
        "<i8",
        &[n],
        &labels,
    )
}

/// Writes a C-ordered NumPy array file (format 1.0) of `data` (little-endian values of
/// type `descr`, e.g. `<f4`) and `shape`.
fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) -> Result<(), String> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let length = u16::try_from(header.len()).map_err(|e| e.to_string())?;
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}
