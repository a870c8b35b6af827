//! What the image examples share (`mnist`, `baseline`): the datasets and their UNet
//! presets, the training recipe, sample grids, and the evaluation of a trained UNet (the
//! final grids, the Fréchet distance and classifier accuracy in the digits classifier's
//! features, the held-out bits/dim bound), so that a model trained here and one trained
//! elsewhere are scored by the same code.

use std::path::Path;

use burn::config::Config;
use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::data::ImageDataset;
use burn_diffusion::{
    image::write_png_grid_scaled,
    loss::{Decoder, VlbLoss},
    model::{UNet, UNetConfig, WithLabels},
    prediction::{
        DecoderVariance, EpsSecondMoment, Parameterization, Prediction, ReverseVariances,
        VarianceKind,
    },
    process::{ForwardProcess, VpProcess},
    progress::ConsoleProgress,
    sampler::Guided,
    schedule::{DiscreteSchedule, ScheduleConfig},
    train::{Checkpoint, TrainConfig},
};
use clap::ValueEnum;

use super::classifier::Classifier;
use super::{exit_on_error, sample_with};

/// Classes of every dataset here; label 10 is the null label of a conditional model.
pub const CLASSES: usize = 10;
/// The guidance scales w of the conditional grids (ε̃ = (1 + w)·ε(x, c) − w·ε(x, ∅)).
pub const GUIDANCE: [f64; 3] = [0.0, 1.0, 3.0];
/// The digits classifier's weights, in the digits folder (written by `classifier`).
pub const CLASSIFIER: &str = "classifier.bpk";
/// Training steps of the recipe (`mnist --steps`).
pub const STEPS: usize = 2000;
/// Batch size of the recipe (`mnist --batch`).
pub const BATCH: usize = 64;
/// Peak learning rate of the recipe (`mnist --lr`).
pub const LR: f64 = 5e-4;
/// Warmup steps of the recipe.
pub const WARMUP: usize = 200;
/// EMA decay of the recipe.
pub const EMA_DECAY: f64 = 0.999;

/// The datasets of `--dataset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetName {
    /// scikit-learn's 8×8 digits
    Digits,
    /// MNIST's 10,000 test images
    Mnist,
    /// Fashion-MNIST's 10,000 test images
    FashionMnist,
}

impl DatasetName {
    /// The name `--dataset` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Digits => "digits",
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
        }
    }
}

/// The dataset `name` and the UNet preset for its image size.
pub fn load(name: DatasetName, dir: &Path) -> Result<(ImageDataset, UNetConfig), String> {
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

/// The dataset as 8-bit images in [−1, 1] (the digits' 17 levels rendered on 256), split
/// into training and `held_out` held-out images by `seed`; and its UNet preset.
pub fn split(
    name: DatasetName,
    dir: &Path,
    held_out: usize,
    seed: u64,
) -> Result<(ImageDataset, ImageDataset, UNetConfig), String> {
    let (data, unet) = load(name, dir)?;
    let data = data.quantized(256).map_err(|e| e.to_string())?;
    let (train, held) = data.split(held_out, seed).map_err(|e| e.to_string())?;
    Ok((train, held, unet))
}

/// The command-line flags of the recipe (`mnist`, `baseline prepare`).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct RecipeArgs {
    /// training steps
    #[arg(long, default_value_t = STEPS)]
    pub steps: usize,
    /// batch size
    #[arg(long, default_value_t = BATCH)]
    pub batch: usize,
    /// peak learning rate (AdamW)
    #[arg(long, default_value_t = LR)]
    pub lr: f64,
}

impl RecipeArgs {
    /// The recipe with these flags and `seed`.
    pub fn config(&self, seed: u64) -> TrainConfig {
        recipe(self.steps, self.batch, self.lr, seed)
    }
}

/// The training recipe of `mnist` (and of the PyTorch baseline, which reads it from the
/// JSON that `baseline prepare` writes): AdamW with `WARMUP` steps of linear warmup to
/// `lr` and then a constant rate, global gradient-norm clipping at 1, an EMA of decay
/// `EMA_DECAY` with warmup.
pub fn recipe(steps: usize, batch: usize, lr: f64, seed: u64) -> TrainConfig {
    TrainConfig::new(steps)
        .with_batch_size(batch)
        .with_learning_rate(lr)
        .with_warmup_steps(WARMUP)
        .with_ema_decay(EMA_DECAY)
        .with_seed(seed)
}

/// The initial UNet of a run with `seed`: the same seed, the same weights.
pub fn initial_unet(config: &UNetConfig, seed: u64, device: &Device) -> UNet {
    device.seed(seed);
    exit_on_error(config.init(device))
}

/// The model of a run of `mnist` (its `unet.json`, `schedule.json` and latest checkpoint
/// in `run`), with the EMA weights if `ema`, else the trained ones; and the checkpoint.
pub fn load_run(
    run: &Path,
    ema: bool,
    device: &Device,
) -> Result<(UNet, UNetConfig, DiscreteSchedule, Checkpoint), String> {
    let unet = UNetConfig::load(run.join("unet.json")).map_err(|e| {
        format!(
            "{}: {e} (train with the mnist example first)",
            run.join("unet.json").display()
        )
    })?;
    let schedule_config =
        ScheduleConfig::load(run.join("schedule.json")).map_err(|e| e.to_string())?;
    let schedule = schedule_config.init().map_err(|e| e.to_string())?;
    let root = run.join("checkpoints");
    let checkpoint = Checkpoint::latest(&root)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no checkpoint under {}", root.display()))?;
    let model = unet.init(device).map_err(|e| e.to_string())?;
    let model = match ema {
        true => checkpoint.load_ema(model),
        false => checkpoint.load_model(model),
    }
    .map_err(|e| e.to_string())?;
    Ok((model, unet, schedule, checkpoint))
}

/// How sample grids are drawn.
pub struct Grids<'a> {
    /// Sampler name (the registry's).
    pub sampler: &'a str,
    /// Sampler steps.
    pub steps: usize,
    /// The training schedule.
    pub schedule: &'a DiscreteSchedule,
    /// `[C, H, W]` of one image.
    pub shape: [usize; 3],
    /// Where to sample.
    pub device: &'a Device,
    /// Whether the model is class-conditional.
    pub cond: bool,
}

impl Grids<'_> {
    /// `count` unconditional samples, or a conditional model's `count` unguided samples
    /// in rows of classes.
    pub fn draw(&self, model: &UNet, count: usize, seed: u64) -> Tensor<4> {
        match self.cond {
            true => self.classes(model, count, 0.0, seed),
            false => self.unconditional(model, count, seed),
        }
    }

    /// `count` samples of the model without a label.
    fn unconditional(&self, model: &UNet, count: usize, seed: u64) -> Tensor<4> {
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
    pub fn classes(&self, model: &UNet, count: usize, w: f64, seed: u64) -> Tensor<4> {
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

/// The evaluation of a trained UNet on a split.
pub struct Evaluation<'a> {
    /// How grids and samples are drawn.
    pub grids: Grids<'a>,
    /// The diffusion process of the bound.
    pub process: &'a VpProcess,
    /// Training and held-out images.
    pub train: &'a ImageDataset,
    /// Held-out images.
    pub held: &'a ImageDataset,
    /// The digits classifier, when the data are the digits.
    pub classifier: Option<Classifier>,
    /// Held-out images of the bound (0 skips it).
    pub eval: usize,
    /// Output folder of the grids.
    pub out: &'a Path,
    /// Upscaling of the grids' pixels.
    pub scale: usize,
    /// Seed of the samples and the bound's noise.
    pub seed: u64,
}

/// The digits classifier in `data_dir`, for the digits (and if its file is there).
pub fn digits_classifier(
    name: DatasetName,
    data_dir: &Path,
    pixels: usize,
    device: &Device,
) -> Option<Classifier> {
    let file = data_dir.join("digits").join(CLASSIFIER);
    (name == DatasetName::Digits && file.exists())
        .then(|| exit_on_error(Classifier::load(&file, pixels, device)))
}

impl Evaluation<'_> {
    /// Writes the final grids (with guided grids and their classifier accuracy for a
    /// conditional model), prints the Fréchet distance of samples to held-out images in
    /// the classifier's features next to the training images' (the floor), and the
    /// held-out bound in bits/dim.
    pub fn run(&self, model: &UNet) {
        self.final_grids(model);
        self.frechet(model);
        if self.eval > 0 {
            let count = self.eval.min(self.held.len());
            let held_ids: Vec<usize> = (0..count).collect();
            let device = self.grids.device;
            let x0 = exit_on_error(self.held.batch(&held_ids, device));
            let labels = exit_on_error(self.held.batch_labels(&held_ids, device));
            // Analytic-DPM's statistic E‖ε_θ(x_t, t)‖²/d, on as many training images.
            let fit_ids: Vec<usize> = (0..count.max(2).min(self.train.len())).collect();
            let fit = exit_on_error(self.train.batch(&fit_ids, device));
            let fit_labels = exit_on_error(self.train.batch_labels(&fit_ids, device));
            let bounds = Bounds {
                process: self.process,
                cond: self.grids.cond,
                seed: self.seed,
            };
            exit_on_error(bounds.report(model, (x0, labels), (fit, fit_labels)));
        }
    }

    /// `samples.png` (8 × 8), or for a conditional model one grid per guidance scale
    /// with a row of 8 per class and the classifier's accuracy on it.
    fn final_grids(&self, model: &UNet) {
        let (sampler, steps) = (self.grids.sampler, self.grids.steps);
        if !self.grids.cond {
            let grid = self.grids.draw(model, 64, self.seed + 2);
            let png = self.out.join("samples.png");
            exit_on_error(write_png_grid_scaled(&png, grid, 8, self.scale));
            println!("wrote {} ({sampler}, {steps} steps)", png.display());
            return;
        }
        for w in GUIDANCE {
            let grid = self.grids.classes(model, 8 * CLASSES, w, self.seed + 2);
            let png = self.out.join(format!("samples-guidance-{w}.png"));
            let accuracy = self.classifier.as_ref().map(|classifier| {
                let labels: Vec<i64> = (0..8 * CLASSES).map(|i| (i / 8) as i64).collect();
                exit_on_error(classifier.accuracy(grid.clone().clamp(-1.0, 1.0), &labels))
            });
            exit_on_error(write_png_grid_scaled(&png, grid, 8, self.scale));
            println!(
                "wrote {} (row c: class c, guidance scale {w}; {sampler}, {steps} steps){}",
                png.display(),
                accuracy
                    .map(|a| format!("; classifier accuracy {:.1} %", 100.0 * a))
                    .unwrap_or_default()
            );
        }
    }

    /// 250 (conditional: 25 per class, unguided) or 256 samples against as many held-out
    /// images, next to the same distance for as many training images.
    fn frechet(&self, model: &UNet) {
        let Some(classifier) = &self.classifier else {
            return;
        };
        let device = self.grids.device;
        let count = if self.grids.cond { 250 } else { 256 }
            .min(self.held.len())
            .min(self.train.len());
        let ids: Vec<usize> = (0..count).collect();
        let samples = self
            .grids
            .draw(model, count, self.seed + 5)
            .clamp(-1.0, 1.0);
        let fit = |x: Tensor<4>| exit_on_error(classifier.fit(x));
        let held_fit = fit(exit_on_error(self.held.batch(&ids, device)));
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
            distance(exit_on_error(self.train.batch(&ids, device)))
        );
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
pub fn mean_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}
