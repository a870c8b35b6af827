//! Load a checkpoint written by the `mnist` example and sample from it with any sampler
//! and step count into a PNG grid.
//!
//! ```text
//! cargo run --release --example sample -- --run out/mnist --sampler "DPM++ 2M Karras" --steps 20
//! cargo run --release --example sample -- --run out/mnist-cond --label 7   # a --cond run's class 7
//! ```

mod common;

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use burn_diffusion::{Denoiser, image::write_png_grid_scaled, model::WithLabels};
use clap::{Parser, ValueEnum};
use common::images::load_run;
use common::{exit_on_error, parse_sampler, sample_with};

/// sample: draw images from a checkpoint of the mnist example into a PNG grid
#[derive(Parser, Debug)]
#[command(name = "sample")]
struct Args {
    /// the mnist example's --out folder
    #[arg(long, default_value = "out/mnist")]
    run: PathBuf,
    /// sampler, by name: ddpm, ddim, euler, euler_a, heun, lms, dpmpp_2m, dpmpp_2m_sde,
    /// dpmpp_3m, dpmpp_3m_sde, unipc, unipc_bh1, unipc_3, unipc_bh1_3 (each σ-grid one
    /// also with _karras, _exponential or _beta),
    /// heun_vp, euler_maruyama; A1111's names ("DPM++ 2M Karras") work too
    #[arg(long, default_value = "ddim", value_parser = parse_sampler)]
    sampler: String,
    /// sampler steps
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// images
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// which weights of the checkpoint
    #[arg(long, value_enum, default_value_t = Weights::Ema)]
    weights: Weights,
    /// noise seed
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// for a class-conditional run (mnist --cond): the class to draw [default: the null
    /// label, the unconditional model]
    #[arg(long)]
    label: Option<i64>,
    /// PNG to write [default: RUN/sample-SAMPLER-STEPS.png]
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The weights of `--weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Weights {
    /// the exponential moving average
    Ema,
    /// the trained weights
    Trained,
}

fn main() {
    // Freed buffers are reused instead of returned to the system (see `tuning`).
    burn_diffusion::tuning::keep_freed_memory();
    let Args {
        run,
        sampler,
        steps,
        count,
        weights,
        seed,
        label,
        out,
    } = Args::parse();
    let count = count as usize;
    let out = out.unwrap_or_else(|| run.join(format!("sample-{}-{steps}.png", sampler)));
    let device = Device::flex();

    let (model, unet, schedule, checkpoint) =
        exit_on_error(load_run(&run, weights == Weights::Ema, &device));
    println!(
        "step {} of {}, {} weights; sampling {count} images with {} ({steps} steps)",
        checkpoint.state().step,
        checkpoint.dir().display(),
        weights.to_possible_value().expect("not skipped").get_name(),
        sampler
    );
    let (c, h, w) = (unet.in_channels, unet.resolution, unet.resolution);
    let start = std::time::Instant::now();
    let shape = [count, c, h, w];
    let images = exit_on_error(match (unet.num_classes, label) {
        (None, None) => sample_with(&sampler, steps, &schedule, &model, shape, &device, seed),
        (None, Some(_)) => Err("--label: this run's model is not class-conditional".to_string()),
        (Some(classes), label) => {
            let label = label.unwrap_or(classes as i64);
            match model.check_labels(&[label]) {
                Ok(()) => {
                    let labeled = WithLabels::new(&model, Tensor::full([count], label, &device));
                    sample_with(&sampler, steps, &schedule, &labeled, shape, &device, seed)
                }
                Err(e) => Err(format!("--label {label}: {e}")),
            }
        }
    });
    let columns = (count as f64).sqrt().ceil() as usize;
    exit_on_error(write_png_grid_scaled(
        &out,
        images,
        columns,
        (64 / h).max(1),
    ));
    println!(
        "wrote {} in {:.1} s",
        out.display(),
        start.elapsed().as_secs_f64()
    );
}
