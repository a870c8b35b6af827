//! Train the reference UNet on MNIST, Fashion-MNIST or the 8×8 digits, write sample grids
//! during and after training, save checkpoints, and report the held-out negative
//! log-likelihood bound in bits/dim from the full variational bound.
//!
//! ```text
//! cargo run --release --example mnist                       # the digits: minutes on a CPU
//! cargo run --release --example mnist -- --dataset mnist    # MNIST: hours on 2 CPU cores
//! ```
//!
//! Only the 10,000 test images of MNIST and Fashion-MNIST ship with the crate; they are
//! split into training and held-out images. A run resumes from its latest checkpoint in
//! `--out` (delete the folder to start over); `sample` draws from the checkpoints.

mod common;

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::tensor::Device;
use burn_diffusion::data::ImageDataset;
use burn_diffusion::{
    Checkpoint, Decoder, FitOptions, Parameterization, Prediction, ScheduleConfig, SimpleLoss,
    TrainConfig, Trainer, UNet, UNetConfig, VarianceKind, VlbLoss, VpProcess, Weighting,
    write_png_grid_scaled,
};
use common::{Flags, exit_on_error, sample_with};

const HELP: &str = "\
mnist: train the reference UNet on MNIST, Fashion-MNIST or the 8x8 digits

USAGE: cargo run --release --example mnist -- [OPTIONS]

OPTIONS:
  --dataset NAME     digits | mnist | fashion-mnist               [default: digits]
  --steps N          training steps                              [default: 2000]
  --batch N          batch size                                  [default: 64]
  --lr X             peak learning rate (AdamW)                  [default: 0.0005]
  --held-out N       images kept out of training                 [default: 256]
  --eval N           held-out images the bits/dim bound uses     [default: 64]
                     (each costs 1000 network evaluations; 0 skips)
  --sample-every N   write a sample grid every N steps           [default: 500]
  --sampler NAME     ddpm | ddim | dpm-solver | heun | euler-maruyama [default: ddim]
  --sample-steps N   sampler steps for the grids                 [default: 50]
  --seed N           seed of the split, training and sampling    [default: 0]
  --out DIR          output folder                               [default: out/mnist]
  --data-dir DIR     folder holding digits/, mnist/, fashion-mnist/ [default: the crate's data/]
  -h, --help         print this help";

const FLAGS: [&str; 12] = [
    "dataset",
    "steps",
    "batch",
    "lr",
    "held-out",
    "eval",
    "sample-every",
    "sampler",
    "sample-steps",
    "seed",
    "out",
    "data-dir",
];

/// Files next to the checkpoints that `sample` reads to rebuild the model and process.
pub const UNET_CONFIG: &str = "unet.json";
/// The schedule's configuration.
pub const SCHEDULE_CONFIG: &str = "schedule.json";

fn main() {
    let flags = Flags::parse(HELP, &FLAGS);
    let dataset: String = flags.get("dataset", "digits".to_string());
    let steps: usize = flags.get("steps", 2000);
    let batch: usize = flags.get("batch", 64);
    let lr: f64 = flags.get("lr", 5e-4);
    let held_out: usize = flags.get("held-out", 256);
    let eval: usize = flags.get("eval", 64);
    let sample_every: usize = flags.get("sample-every", 500);
    let sampler: String = flags.get("sampler", "ddim".to_string());
    let sample_steps: usize = flags.get("sample-steps", 50);
    let seed: u64 = flags.get("seed", 0);
    let out: PathBuf = flags.get("out", PathBuf::from("out/mnist"));
    let data_dir: PathBuf = flags.get(
        "data-dir",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
    );
    let device = Device::flex();

    // Data as 8-bit images in [−1, 1] (the digits' 17 levels are rendered on 256), split.
    let (data, unet) = exit_on_error(load(&dataset, &data_dir));
    let data = exit_on_error(data.quantized(256));
    let (train, held) = exit_on_error(data.split(held_out, seed));
    println!(
        "{dataset}: {} training and {} held-out images of {:?}",
        train.len(),
        held.len(),
        data.image_shape()
    );

    let schedule_config = ScheduleConfig::new();
    let schedule = exit_on_error(schedule_config.init());
    let process = VpProcess::new(schedule.clone());
    let loss = exit_on_error(SimpleLoss::new(
        process.clone(),
        Prediction::Epsilon,
        Weighting::Uniform,
    ));
    let model = exit_on_error(unet.init(&device));
    let config = TrainConfig::new(steps)
        .with_batch_size(batch)
        .with_learning_rate(lr)
        .with_warmup_steps(200)
        .with_ema_decay(0.999)
        .with_checkpoint_every(sample_every)
        .with_seed(seed);
    exit_on_error(std::fs::create_dir_all(&out));
    exit_on_error(unet.save(out.join(UNET_CONFIG)));
    exit_on_error(schedule_config.save(out.join(SCHEDULE_CONFIG)));
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
    println!(
        "UNet with {} parameters",
        burn::module::Module::num_params(trainer.model())
    );

    let options = FitOptions {
        checkpoint_dir: Some(root),
        log_csv: Some(out.join("loss.csv")),
        progress: true,
    };
    let [c, h, w] = data.image_shape();
    let scale = (64 / h).max(1);
    let train_x = train.to_tensor(&device);
    let draw = |model: &UNet, count: usize, seed: u64| {
        let shape = [count, c, h, w];
        exit_on_error(sample_with(
            &sampler,
            sample_steps,
            &schedule,
            model,
            shape,
            &device,
            seed,
        ))
    };
    while trainer.step() < steps {
        let until = (trainer.step() / sample_every + 1) * sample_every;
        let summary = exit_on_error(trainer.fit(&train_x, until.min(steps), &options));
        let grid = draw(&trainer.ema_model(), 16, seed + 1);
        let png = out.join(format!("samples-step-{:06}.png", trainer.step()));
        exit_on_error(write_png_grid_scaled(&png, grid, 4, scale));
        println!(
            "step {}: mean loss {:.4} over the last {} steps; wrote {}",
            trainer.step(),
            summary.mean_loss,
            summary.steps,
            png.display()
        );
    }

    let model = trainer.ema_model();
    let grid = draw(&model, 64, seed + 2);
    let png = out.join("samples.png");
    exit_on_error(write_png_grid_scaled(&png, grid, 8, scale));
    println!("wrote {} ({sampler}, {sample_steps} steps)", png.display());

    if eval > 0 {
        // The full bound L_0 + Σ L_{t−1} + L_T (Ho et al. 2020, eq. 5) with σ_t² = β_t and
        // the discretized decoder, in bits/dim, on `eval` held-out images.
        let count = eval.min(held.len());
        let indices: Vec<usize> = (0..count).collect();
        let x0 = exit_on_error(held.batch(&indices, &device));
        let parameterization = Parameterization::new()
            .with_prediction(Prediction::Epsilon)
            .with_variance(VarianceKind::FixedLarge);
        let vlb = VlbLoss::new(process, parameterization, Decoder::Discretized);
        let report = |done: usize, total: usize| {
            if done == total || done.is_multiple_of(100) {
                eprint!("\rbound: {done}/{total} timesteps   ");
            }
        };
        let bound = exit_on_error(vlb.evaluate_bound_seeded(&model, x0, seed + 3, report));
        eprintln!();
        let bpd: Vec<f32> = exit_on_error(
            bound
                .total_bpd
                .try_into_vec_as::<f32>()
                .map_err(|e| format!("{e:?}")),
        );
        let n = bpd.len() as f64;
        let mean = bpd.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
        let sd = (bpd
            .iter()
            .map(|v| (f64::from(*v) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0).max(1.0))
        .sqrt();
        println!(
            "held-out negative log-likelihood bound: {mean:.3} ± {:.3} bits/dim ({count} images, EMA weights)",
            sd / n.sqrt()
        );
    }
}

/// The dataset called `name` and the UNet preset for its image size.
fn load(name: &str, dir: &Path) -> Result<(ImageDataset, UNetConfig), String> {
    let e = |e: burn_diffusion::DiffusionError| e.to_string();
    let idx = |folder: &str| {
        let images = dir.join(folder).join("t10k-images-idx3-ubyte.gz");
        let labels = dir.join(folder).join("t10k-labels-idx1-ubyte.gz");
        ImageDataset::load_idx(images, Some(labels.as_path())).map_err(e)
    };
    match name {
        "digits" => Ok((
            ImageDataset::load_digits(dir.join("digits/digits.csv.gz")).map_err(e)?,
            UNetConfig::digits(),
        )),
        "mnist" => Ok((idx("mnist")?, UNetConfig::mnist())),
        "fashion-mnist" => Ok((idx("fashion-mnist")?, UNetConfig::mnist())),
        other => Err(format!(
            "unknown dataset {other:?}: digits | mnist | fashion-mnist"
        )),
    }
}
