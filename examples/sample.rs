//! Load a checkpoint written by the `mnist` example and sample from it with any sampler
//! and step count into a PNG grid.
//!
//! ```text
//! cargo run --release --example sample -- --run out/mnist --sampler dpm-solver --steps 20
//! ```

mod common;

use std::path::PathBuf;

use burn::config::Config;
use burn::tensor::Device;
use burn_diffusion::{Checkpoint, ScheduleConfig, UNetConfig, write_png_grid_scaled};
use common::{Flags, SAMPLERS, exit_on_error, sample_with};

const HELP: &str = "\
sample: draw images from a checkpoint of the mnist example into a PNG grid

USAGE: cargo run --release --example sample -- [OPTIONS]

OPTIONS:
  --run DIR          the mnist example's --out folder       [default: out/mnist]
  --sampler NAME     ddpm | ddim | dpm-solver | heun | euler-maruyama [default: ddim]
  --steps N          sampler steps                          [default: 50]
  --count N          images                                 [default: 64]
  --weights KIND     ema | trained                          [default: ema]
  --seed N           noise seed                             [default: 0]
  --out PATH         PNG to write                  [default: RUN/sample-SAMPLER-STEPS.png]
  -h, --help         print this help";

fn main() {
    let flags = Flags::parse(
        HELP,
        &["run", "sampler", "steps", "count", "weights", "seed", "out"],
    );
    let run: PathBuf = flags.get("run", PathBuf::from("out/mnist"));
    let sampler: String = flags.get("sampler", "ddim".to_string());
    let steps: usize = flags.get("steps", 50);
    let count: usize = flags.get("count", 64);
    let weights: String = flags.get("weights", "ema".to_string());
    let seed: u64 = flags.get("seed", 0);
    let default_out = run.join(format!("sample-{sampler}-{steps}.png"));
    let out: PathBuf = flags.get("out", default_out);
    if count == 0 {
        exit_on_error::<(), _>(Err("--count must be positive"));
    }
    let device = Device::flex();

    let unet = exit_on_error(UNetConfig::load(run.join("unet.json")).map_err(|e| {
        format!(
            "{}: {e} (train with the mnist example first)",
            run.join("unet.json").display()
        )
    }));
    let schedule_config = exit_on_error(ScheduleConfig::load(run.join("schedule.json")));
    let schedule = exit_on_error(schedule_config.init());
    let checkpoint = match exit_on_error(Checkpoint::latest(run.join("checkpoints"))) {
        Some(c) => c,
        None => exit_on_error(Err(format!(
            "no checkpoint under {}",
            run.join("checkpoints").display()
        ))),
    };
    let model = exit_on_error(unet.init(&device));
    let model = exit_on_error(match weights.as_str() {
        "ema" => checkpoint.load_ema(model),
        "trained" => checkpoint.load_model(model),
        other => Err(burn_diffusion::DiffusionError::Checkpoint {
            path: checkpoint.dir().display().to_string(),
            reason: format!("unknown --weights {other:?}: ema | trained"),
        }),
    });
    println!(
        "step {} of {}, {weights} weights; sampling {count} images with {sampler} ({steps} steps; one of {SAMPLERS})",
        checkpoint.state().step,
        checkpoint.dir().display()
    );
    let (c, h, w) = (unet.in_channels, unet.resolution, unet.resolution);
    let start = std::time::Instant::now();
    let images = exit_on_error(sample_with(
        &sampler,
        steps,
        &schedule,
        &model,
        [count, c, h, w],
        &device,
        seed,
    ));
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
