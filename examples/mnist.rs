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
use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::data::ImageDataset;
use burn_diffusion::{
    image::write_png_grid_scaled,
    loss::{Decoder, SimpleLoss, VlbLoss, Weighting},
    model::{UNet, UNetConfig, WithLabels},
    prediction::{
        DecoderVariance, EpsSecondMoment, Parameterization, Prediction, ReverseVariances,
        VarianceKind,
    },
    process::{ForwardProcess, VpProcess},
    progress::ConsoleProgress,
    sampler::Guided,
    schedule::{DiscreteSchedule, ScheduleConfig},
    train::{Checkpoint, Examples, FitOptions, TrainConfig, Trainer},
};
use clap::{Parser, ValueEnum};
use common::classifier::Classifier;
use common::{exit_on_error, parse_sampler, sample_with};

/// mnist: train the reference UNet on MNIST, Fashion-MNIST or the 8x8 digits
#[derive(Parser, Debug)]
#[command(name = "mnist")]
struct Args {
    /// dataset
    #[arg(long, value_enum, default_value_t = DatasetName::Digits)]
    dataset: DatasetName,
    /// training steps
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// batch size
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// peak learning rate (AdamW)
    #[arg(long, default_value_t = 5e-4)]
    lr: f64,
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

/// The datasets of `--dataset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DatasetName {
    /// scikit-learn's 8×8 digits
    Digits,
    /// MNIST's 10,000 test images
    Mnist,
    /// Fashion-MNIST's 10,000 test images
    FashionMnist,
}

/// Files next to the checkpoints that `sample` reads to rebuild the model and process.
pub const UNET_CONFIG: &str = "unet.json";
/// The schedule's configuration.
pub const SCHEDULE_CONFIG: &str = "schedule.json";
/// The digits classifier's weights, in the digits folder (written by `classifier`).
const CLASSIFIER: &str = "classifier.bpk";
/// Classes of every dataset here; label 10 is the null label of a `--cond` model.
const CLASSES: usize = 10;
/// The guidance scales w of the `--cond` grids (ε̃ = (1 + w)·ε(x, c) − w·ε(x, ∅)).
const GUIDANCE: [f64; 3] = [0.0, 1.0, 3.0];

fn main() {
    let Args {
        dataset,
        steps,
        batch,
        lr,
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

    // Data as 8-bit images in [−1, 1] (the digits' 17 levels are rendered on 256), split.
    let (data, unet) = exit_on_error(load(dataset, &data_dir));
    let unet = match cond {
        true => unet.with_num_classes(Some(CLASSES)),
        false => unet,
    };
    let data = exit_on_error(data.quantized(256));
    let (train, held) = exit_on_error(data.split(held_out, seed));
    println!(
        "{}: {} training and {} held-out images of {:?}",
        dataset.to_possible_value().expect("not skipped").get_name(),
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
    device.seed(seed); // the initial weights: the same seed, the same run
    let model = exit_on_error(unet.init(&device));
    let config = TrainConfig::new(steps)
        .with_batch_size(batch)
        .with_learning_rate(lr)
        .with_warmup_steps(200)
        .with_ema_decay(0.999)
        .with_checkpoint_every(sample_every)
        .with_seed(seed)
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
    let [c, h, w] = data.image_shape();
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
    };
    // Unconditional: 16 samples. Conditional: a row of 4 per class, unguided.
    let draw = |model: &UNet, count: usize, seed: u64| match cond {
        true => grids.classes(model, count, 0.0, seed),
        false => grids.draw(model, count, seed),
    };
    while trainer.step() < steps {
        let until = (trainer.step() / sample_every + 1) * sample_every;
        let bar = ConsoleProgress::new(steps, "train").continuing_after(trainer.step());
        let summary = exit_on_error(trainer.fit_with(examples, until.min(steps), &options, |s| {
            bar.update(s.step, s.loss)
        }));
        bar.finish();
        let (count, columns) = if cond { (4 * CLASSES, 4) } else { (16, 4) };
        let grid = draw(&trainer.ema_model(), count, seed + 1);
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

    let model = trainer.ema_model();
    // The digits classifier's features score the samples (`classifier` example).
    let classifier_file = data_dir.join("digits").join(CLASSIFIER);
    let classifier = (dataset == DatasetName::Digits && classifier_file.exists())
        .then(|| exit_on_error(Classifier::load(&classifier_file, c * h * w, &device)));
    if cond {
        // One row of 8 per class (row c: class c), at each guidance scale.
        for w in GUIDANCE {
            let grid = grids.classes(&model, 8 * CLASSES, w, seed + 2);
            let png = out.join(format!("samples-guidance-{w}.png"));
            let accuracy = classifier.as_ref().map(|classifier| {
                let labels: Vec<i64> = (0..8 * CLASSES).map(|i| (i / 8) as i64).collect();
                exit_on_error(classifier.accuracy(grid.clone().clamp(-1.0, 1.0), &labels))
            });
            exit_on_error(write_png_grid_scaled(&png, grid, 8, scale));
            println!(
                "wrote {} (row c: class c, guidance scale {w}; {}, {sample_steps} steps){}",
                png.display(),
                sampler,
                accuracy
                    .map(|a| format!("; classifier accuracy {:.1} %", 100.0 * a))
                    .unwrap_or_default()
            );
        }
    } else {
        let grid = draw(&model, 64, seed + 2);
        let png = out.join("samples.png");
        exit_on_error(write_png_grid_scaled(&png, grid, 8, scale));
        println!(
            "wrote {} ({}, {sample_steps} steps)",
            png.display(),
            sampler
        );
    }

    if let Some(classifier) = &classifier {
        // 250 (conditional: 25 per class, unguided) or 256 samples against as many
        // held-out images, next to the same distance for as many training images.
        let count = if cond { 250 } else { 256 }
            .min(held.len())
            .min(train.len());
        let ids: Vec<usize> = (0..count).collect();
        let samples = draw(&model, count, seed + 5).clamp(-1.0, 1.0);
        let fit = |x: Tensor<4>| exit_on_error(classifier.fit(x));
        let held_fit = fit(exit_on_error(held.batch(&ids, &device)));
        let distance = |x: Tensor<4>| {
            exit_on_error(
                fit(x)
                    .frechet_distance(&held_fit)
                    .map_err(|e| e.to_string()),
            )
        };
        println!(
            "Fréchet distance in the digits classifier's features to {count} held-out images: samples {:.3}; training images (the floor) {:.3}",
            distance(samples),
            distance(exit_on_error(train.batch(&ids, &device)))
        );
    }

    if eval > 0 {
        let count = eval.min(held.len());
        let held_ids: Vec<usize> = (0..count).collect();
        let x0 = exit_on_error(held.batch(&held_ids, &device));
        let labels = exit_on_error(held.batch_labels(&held_ids, &device));
        // Analytic-DPM's statistic E‖ε_θ(x_t, t)‖²/d, on as many training images.
        let fit_ids: Vec<usize> = (0..count.max(2).min(train.len())).collect();
        let fit = exit_on_error(train.batch(&fit_ids, &device));
        let fit_labels = exit_on_error(train.batch_labels(&fit_ids, &device));
        let bounds = Bounds {
            process: &process,
            cond,
            seed,
        };
        exit_on_error(bounds.report(&model, (x0, labels), (fit, fit_labels)));
    }
}

/// The held-out bound L_0 + Σ L_{t−1} + L_T (Ho et al. 2020, eq. 5) with the discretized
/// decoder, in bits/dim, under three choices of the reverse variances.
struct Bounds<'a> {
    process: &'a VpProcess,
    cond: bool,
    seed: u64,
}

impl Bounds<'_> {
    /// Prints the bound with σ_t² = β_t and the decoder β̃_1 (improved-diffusion's
    /// convention, the one published bits/dim use), with the decoder β_0, and with
    /// Analytic-DPM's optimal variances estimated on `fit` (training images), each
    /// with the same noise, so that their differences are paired.
    fn report(
        &self,
        model: &UNet,
        held: (Tensor<4>, Tensor<1, Int>),
        fit: (Tensor<4>, Tensor<1, Int>),
    ) -> Result<(), String> {
        let parameterization = Parameterization::new()
            .with_prediction(Prediction::Epsilon)
            .with_variance(VarianceKind::FixedLarge);
        let fixed =
            |decoder| ReverseVariances::fixed(self.process, VarianceKind::FixedLarge, decoder);
        let (fit_x, fit_labels) = fit;
        let examples = fit_x.dims()[0];
        let gamma = match self.cond {
            true => EpsSecondMoment::estimate(
                &WithLabels::new(model, fit_labels),
                self.process,
                parameterization,
                &fit_x,
                64,
                self.seed + 4,
            ),
            false => EpsSecondMoment::estimate(
                model,
                self.process,
                parameterization,
                &fit_x,
                64,
                self.seed + 4,
            ),
        }
        .map_err(|e| e.to_string())?;
        let choices = [
            (
                "σ_t² = β_t, decoder β̃_1 (published convention)",
                fixed(DecoderVariance::Clipped),
            ),
            (
                "σ_t² = β_t, decoder β_0",
                fixed(DecoderVariance::Transition),
            ),
            (
                "Analytic-DPM σ*_t² (optimal, Bao et al. 2022)",
                ReverseVariances::analytic(self.process, &gamma),
            ),
        ];
        let count = held.0.dims()[0];
        println!(
            "held-out negative log-likelihood bound{} in bits/dim ({count} images, EMA weights; Analytic-DPM's E‖ε_θ‖² from {examples} training images):",
            if self.cond { " given the label" } else { "" },
        );
        let mut first: Option<Vec<f64>> = None;
        for (name, table) in choices {
            let vlb = VlbLoss::new(self.process.clone(), parameterization, Decoder::Discretized)
                .with_reverse_variances(table.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let bpd = self.bound(&vlb, model, held.clone())?;
            let (mean, se) = mean_se(&bpd);
            let change = match &first {
                Some(base) => {
                    let diff: Vec<f64> = bpd.iter().zip(base).map(|(a, b)| a - b).collect();
                    let (d, d_se) = mean_se(&diff);
                    format!("   (change {d:+.3} ± {d_se:.3})")
                }
                None => String::new(),
            };
            // Pad by what the terminal shows: a combining tilde (β̃) takes no column.
            let shown = name
                .chars()
                .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
                .count();
            let pad = " ".repeat(48usize.saturating_sub(shown));
            println!("  {name}{pad} {mean:.3} ± {se:.3}{change}");
            first.get_or_insert(bpd);
        }
        Ok(())
    }

    /// Per-image bits/dim of the bound under `vlb`; a conditional model's is of
    /// p(x_0 | c), given each image's own label.
    fn bound(
        &self,
        vlb: &VlbLoss<VpProcess>,
        model: &UNet,
        (x0, labels): (Tensor<4>, Tensor<1, Int>),
    ) -> Result<Vec<f64>, String> {
        let bar = ConsoleProgress::new(self.process.num_timesteps(), "bound (timesteps)");
        let report = |done: usize, _total: usize| bar.update(done, None);
        let bound = match self.cond {
            true => vlb.evaluate_bound_seeded(
                &WithLabels::new(model, labels),
                x0,
                self.seed + 3,
                report,
            ),
            false => vlb.evaluate_bound_seeded(model, x0, self.seed + 3, report),
        }
        .map_err(|e| e.to_string())?;
        bar.finish();
        let bpd: Vec<f32> = bound
            .total_bpd
            .try_into_vec_as::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        Ok(bpd.into_iter().map(f64::from).collect())
    }
}

/// Mean and standard error of the mean.
fn mean_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// How the sample grids are drawn.
struct Grids<'a> {
    sampler: &'a str,
    steps: usize,
    schedule: &'a DiscreteSchedule,
    shape: [usize; 3],
    device: &'a Device,
}

impl Grids<'_> {
    /// `count` unconditional samples.
    fn draw(&self, model: &UNet, count: usize, seed: u64) -> Tensor<4> {
        let [c, h, w] = self.shape;
        exit_on_error(sample_with(
            self.sampler,
            self.steps,
            self.schedule,
            model,
            [count, c, h, w],
            self.device,
            seed,
        ))
    }

    /// `count` samples of a class-conditional model, sample i of class
    /// ⌊i / (count / 10)⌋ (rows of classes), with guidance scale `w`.
    fn classes(&self, model: &UNet, count: usize, w: f64, seed: u64) -> Tensor<4> {
        let per_class = (count / CLASSES).max(1);
        let labels: Vec<i64> = (0..count)
            .map(|i| ((i / per_class) % CLASSES) as i64)
            .collect();
        let labels = Tensor::<1, Int>::from_ints(labels.as_slice(), self.device);
        let guided = exit_on_error(Guided::new(model, labels, CLASSES as i64, w));
        let [c, h, ww] = self.shape;
        exit_on_error(sample_with(
            self.sampler,
            self.steps,
            self.schedule,
            &guided,
            [count, c, h, ww],
            self.device,
            seed,
        ))
    }
}

/// The dataset `name` and the UNet preset for its image size.
fn load(name: DatasetName, dir: &Path) -> Result<(ImageDataset, UNetConfig), String> {
    let e = |e: burn_diffusion::DiffusionError| e.to_string();
    let idx = |folder: &str| {
        let images = dir.join(folder).join("t10k-images-idx3-ubyte.gz");
        let labels = dir.join(folder).join("t10k-labels-idx1-ubyte.gz");
        ImageDataset::load_idx(images, Some(labels.as_path())).map_err(e)
    };
    match name {
        DatasetName::Digits => Ok((
            ImageDataset::load_digits(dir.join("digits/digits.csv.gz")).map_err(e)?,
            UNetConfig::digits(),
        )),
        DatasetName::Mnist => Ok((idx("mnist")?, UNetConfig::mnist())),
        DatasetName::FashionMnist => Ok((idx("fashion-mnist")?, UNetConfig::mnist())),
    }
}
