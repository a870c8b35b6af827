//! Sample from a pretrained diffusers pipeline folder (`model_index.json`, `unet/`,
//! `scheduler/`), e.g. google/ddpm-cifar10-32, into a PNG grid.
//!
//! ```text
//! hf download google/ddpm-cifar10-32 --local-dir ddpm-cifar10-32
//! cargo run --release --features diffusers --example pretrained -- \
//!     --model ddpm-cifar10-32 --sampler ddim --steps 50 --n 16
//! ```

mod common;

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use burn_diffusion::{
    diffusers::{SchedulerClass, SchedulerConfig, StepArguments, load_pipeline},
    image::write_png_grid_scaled,
    progress::ConsoleProgress,
    sampler::{SampleOptions, sample_from_noise},
};
use clap::{Parser, ValueEnum};
use common::exit_on_error;

/// pretrained: sample a diffusers pipeline folder (UNet2DModel + scheduler) into a PNG
#[derive(Parser, Debug)]
#[command(name = "pretrained")]
struct Args {
    /// the pipeline folder (model_index.json, unet/, scheduler/)
    #[arg(long)]
    model: PathBuf,
    /// sampler: the folder's own scheduler, or another diffusers scheduler class on its
    /// schedule, prediction type and clipping
    #[arg(long, value_enum, default_value_t = Sampler::Ddim)]
    sampler: Sampler,
    /// sampler steps
    #[arg(long, default_value_t = 50, value_parser = common::positive)]
    steps: usize,
    /// images
    #[arg(long, default_value_t = 16, value_parser = common::positive)]
    n: usize,
    /// images per batch
    #[arg(long, default_value_t = 16, value_parser = common::positive)]
    batch: usize,
    /// DDIM's eta (0: deterministic)
    #[arg(long, default_value_t = 0.0)]
    eta: f64,
    /// noise seed
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// PNG to write [default: MODEL/samples-SAMPLER-STEPS.png]
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `--sampler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Sampler {
    /// the scheduler the folder names
    Scheduler,
    /// DDPMScheduler
    Ddpm,
    /// DDIMScheduler
    Ddim,
    /// DPMSolverMultistepScheduler
    DpmSolver,
    /// EulerDiscreteScheduler
    Euler,
    /// EulerAncestralDiscreteScheduler
    EulerA,
    /// HeunDiscreteScheduler
    Heun,
    /// LMSDiscreteScheduler
    Lms,
    /// UniPCMultistepScheduler
    Unipc,
}

impl Sampler {
    fn name(self) -> String {
        self.to_possible_value()
            .expect("no variant is skipped")
            .get_name()
            .to_string()
    }

    /// The folder's scheduler config with this sampler's class.
    fn config(self, own: &SchedulerConfig) -> SchedulerConfig {
        let class = match self {
            Self::Scheduler => own.class,
            Self::Ddpm => SchedulerClass::Ddpm,
            Self::Ddim => SchedulerClass::Ddim,
            Self::DpmSolver => SchedulerClass::DpmSolverMultistep,
            Self::Euler => SchedulerClass::EulerDiscrete,
            Self::EulerA => SchedulerClass::EulerAncestralDiscrete,
            Self::Heun => SchedulerClass::HeunDiscrete,
            Self::Lms => SchedulerClass::LmsDiscrete,
            Self::Unipc => SchedulerClass::UniPcMultistep,
        };
        SchedulerConfig {
            class,
            ..own.clone()
        }
    }
}

fn main() {
    // Freed buffers are reused instead of returned to the system (see `tuning`).
    burn_diffusion::tuning::keep_freed_memory();
    let args = Args::parse();
    let device = Device::flex();
    let out = args.out.clone().unwrap_or_else(|| {
        args.model.join(format!(
            "samples-{}-{}.png",
            args.sampler.name(),
            args.steps
        ))
    });
    let load = Instant::now();
    let pipeline = exit_on_error(load_pipeline(&args.model, &device));
    let config = args.sampler.config(&pipeline.scheduler);
    let step_args = StepArguments {
        eta: args.eta,
        use_clipped_model_output: false,
    };
    let sampler = exit_on_error(config.sampler(args.steps, step_args));
    let unet = &pipeline.unet_config;
    let (c, r) = (unet.in_channels, unet.resolution);
    println!(
        "{}: {c}×{r}×{r} UNet ({:.1} M parameters) and {} loaded in {:.1} s; {} images, {} with {} steps",
        args.model.display(),
        burn::module::Module::num_params(&pipeline.unet) as f64 / 1e6,
        pipeline.scheduler.class.name(),
        load.elapsed().as_secs_f64(),
        args.n,
        config.class.name(),
        args.steps,
    );
    let start = Instant::now();
    let mut batches = Vec::new();
    let mut done = 0;
    while done < args.n {
        let size = args.batch.min(args.n - done);
        let label = format!("images {}–{} of {}", done + 1, done + size, args.n);
        let bar = ConsoleProgress::new(args.steps, label);
        let options = SampleOptions {
            seed: args.seed.wrapping_add(done as u64),
            ..SampleOptions::default()
        };
        let images = exit_on_error(sample_from_noise(
            &sampler,
            &pipeline.unet,
            [size, c, r, r],
            &device,
            options,
            |i, _| bar.update(i, None),
        ));
        bar.finish();
        batches.push(images.sample);
        done += size;
    }
    let seconds = start.elapsed().as_secs_f64();
    let images = Tensor::cat(batches, 0);
    let columns = (args.n as f64).sqrt().ceil() as usize;
    exit_on_error(write_png_grid_scaled(
        &out,
        images,
        columns,
        (64 / r).max(1),
    ));
    println!(
        "wrote {}: {:.1} s, {:.2} s per image",
        out.display(),
        seconds,
        seconds / args.n as f64
    );
}
