//! Train the reference UNet on MNIST, Fashion-MNIST or the 8×8 digits, write sample grids
//! during and after training, save checkpoints, and report the held-out negative
//! log-likelihood bound in bits/dim from the full variational bound.
//!
//! ```text
//! cargo run --release --example mnist                       # the digits: minutes on a CPU
//! cargo run --release --example mnist -- --dataset mnist    # MNIST: hours on 2 CPU cores
//! cargo run --release --example mnist -- --cond             # class-conditional, guided grids
//! ```
//!
//! Only the 10,000 test images of MNIST and Fashion-MNIST ship with the crate; they are
//! split into training and held-out images. A run resumes from its latest checkpoint in
//! `--out` (delete the folder to start over); `sample` draws from the checkpoints.

mod common;

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::tensor::Device;
use burn_diffusion::{
    image::write_png_grid_scaled,
    loss::{SimpleLoss, Weighting},
    prediction::Prediction,
    process::VpProcess,
    progress::ConsoleProgress,
    schedule::ScheduleConfig,
    train::{Checkpoint, Examples, FitOptions, Trainer},
};
use clap::Parser;
use common::images::{
    CLASSES, DatasetName, Evaluation, Grids, RecipeArgs, digits_classifier, initial_unet, split,
};
use common::{exit_on_error, parse_sampler};

/// mnist: train the reference UNet on MNIST, Fashion-MNIST or the 8x8 digits
#[derive(Parser, Debug)]
#[command(name = "mnist")]
struct Args {
    /// dataset
    #[arg(long, value_enum, default_value_t = DatasetName::Digits)]
    dataset: DatasetName,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// images kept out of training
    #[arg(long, default_value_t = 256)]
    held_out: usize,
    /// held-out images the bits/dim bound uses (each costs 1000 network evaluations; 0
    /// skips)
    #[arg(long, default_value_t = 64)]
    eval: usize,
    /// write a sample grid every N steps
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    sample_every: u64,
    /// sampler of the grids, by name (as the `sample` example's --sampler)
    #[arg(long, default_value = "ddim", value_parser = parse_sampler)]
    sampler: String,
    /// sampler steps for the grids
    #[arg(long, default_value_t = 50)]
    sample_steps: usize,
    /// seed of the split, training and sampling
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// train class-conditionally (labels 0–9) with label dropout, for classifier-free
    /// guidance; the final grids have one row per class, at guidance scales 0, 1 and 3
    #[arg(long)]
    cond: bool,
    /// with --cond: the probability that a training label is dropped to the null label
    #[arg(long, default_value_t = 0.1)]
    p_uncond: f64,
    /// output folder
    #[arg(long, default_value = "out/mnist")]
    out: PathBuf,
    /// folder holding digits/, mnist/, fashion-mnist/ [default: the crate's data/]
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Files next to the checkpoints that `sample` reads to rebuild the model and process.
pub const UNET_CONFIG: &str = "unet.json";
/// The schedule's configuration.
pub const SCHEDULE_CONFIG: &str = "schedule.json";

fn main() {
    // Freed buffers are reused instead of returned to the system (see `tuning`).
    burn_diffusion::tuning::keep_freed_memory();
    let Args {
        dataset,
        recipe,
        held_out,
        eval,
        sample_every,
        sampler,
        sample_steps,
        seed,
        cond,
        p_uncond,
        out,
        data_dir,
    } = Args::parse();
    let sample_every = usize::try_from(sample_every).unwrap_or(usize::MAX);
    let data_dir = data_dir.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("data"));
    let device = Device::flex();

    let (train, held, unet) = exit_on_error(split(dataset, &data_dir, held_out, seed));
    let unet = match cond {
        true => unet.with_num_classes(Some(CLASSES)),
        false => unet,
    };
    let [c, h, w] = train.image_shape();
    println!(
        "{}: {} training and {} held-out images of {:?}",
        dataset.name(),
        train.len(),
        held.len(),
        [c, h, w]
    );

    let schedule_config = ScheduleConfig::new();
    let schedule = exit_on_error(schedule_config.init());
    let process = VpProcess::new(schedule.clone());
    let loss = exit_on_error(SimpleLoss::new(
        process.clone(),
        Prediction::Epsilon,
        Weighting::Uniform,
    ));
    let model = initial_unet(&unet, seed, &device);
    let steps = recipe.steps;
    let config = recipe
        .config(seed)
        .with_checkpoint_every(sample_every)
        .with_p_uncond(if cond { p_uncond } else { 0.0 })
        .with_null_label(cond.then_some(CLASSES as i64));
    let root = out.join("checkpoints");
    let mut trainer = exit_on_error(Trainer::new(config, model, loss, &device));
    if let Some(checkpoint) = exit_on_error(Checkpoint::latest(&root)) {
        trainer = exit_on_error(trainer.resume(&checkpoint));
        println!(
            "resuming from step {} ({})",
            trainer.step(),
            checkpoint.dir().display()
        );
    }
    // Written only once a resume (if any) was accepted: a refused run leaves `out` as it was.
    exit_on_error(std::fs::create_dir_all(&out));
    exit_on_error(unet.save(out.join(UNET_CONFIG)));
    exit_on_error(schedule_config.save(out.join(SCHEDULE_CONFIG)));
    println!(
        "UNet with {} parameters",
        burn::module::Module::num_params(trainer.model())
    );

    let options = FitOptions {
        checkpoint_dir: Some(root),
        log_csv: Some(out.join("loss.csv")),
        ..FitOptions::default()
    };
    let scale = (64 / h).max(1);
    let train_x = train.to_tensor(&device);
    let everyone: Vec<usize> = (0..train.len()).collect();
    let train_labels = exit_on_error(train.batch_labels(&everyone, &device));
    let examples = match cond {
        true => exit_on_error(Examples::labeled(&train_x, &train_labels)),
        false => Examples::from(&train_x),
    };
    let grids = Grids {
        sampler: &sampler,
        steps: sample_steps,
        schedule: &schedule,
        shape: [c, h, w],
        device: &device,
        cond,
    };
    let mut seconds = 0.0;
    while trainer.step() < steps {
        let until = (trainer.step() / sample_every + 1) * sample_every;
        let bar = ConsoleProgress::new(steps, "train").continuing_after(trainer.step());
        let summary = exit_on_error(trainer.fit_with(examples, until.min(steps), &options, |s| {
            bar.update(s.step, s.loss)
        }));
        bar.finish();
        seconds += summary.seconds;
        // Unconditional: 16 samples. Conditional: a row of 4 per class, unguided.
        let (count, columns) = if cond { (4 * CLASSES, 4) } else { (16, 4) };
        let grid = grids.draw(&trainer.ema_model(), count, seed + 1);
        let png = out.join(format!("samples-step-{:06}.png", trainer.step()));
        exit_on_error(write_png_grid_scaled(&png, grid, columns, scale));
        println!(
            "step {}: mean loss {:.4} over the last {} steps; wrote {}",
            trainer.step(),
            summary.mean_loss,
            summary.steps,
            png.display()
        );
    }

    if seconds > 0.0 {
        println!("trained for {seconds:.1} s in this run");
    }
    // The digits classifier's features score the samples (`classifier` example).
    let evaluation = Evaluation {
        classifier: digits_classifier(dataset, &data_dir, c * h * w, &device),
        grids,
        process: &process,
        train: &train,
        held: &held,
        eval,
        out: &out,
        scale,
        seed,
    };
    evaluation.run(&trainer.ema_model());
}
