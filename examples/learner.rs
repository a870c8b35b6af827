//! Train a small MLP denoiser on a 2-D toy distribution with burn-train's `Learner`
//! (instead of the crate's `Trainer`), through `DiffusionObjective`, and print its losses.
//!
//! ```text
//! cargo run --release --features train --example learner
//! ```
//!
//! Writes burn-train's artifacts (metric logs, checkpoints) under `out/learner` and prints
//! the validation loss of the untrained model, then the training and validation loss of
//! every epoch as burn-train logged them.

mod common;

use std::path::PathBuf;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::optim::AdamWConfig;
use burn::tensor::Device;
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{LossMetric, MetricDefinition};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::{InferenceStep, Learner, LearnerSummary, MetricSummary, SupervisedTraining};
use burn_diffusion::data::Toy2d;
use burn_diffusion::{
    loss::{SimpleLoss, Weighting},
    model::MlpConfig,
    prediction::Prediction,
    process::VpProcess,
    schedule::ScheduleConfig,
    train::{DiffusionBatch, DiffusionBatcher, DiffusionObjective},
};
use clap::Parser;
use common::{exit_on_error, positive};

/// learner: train an MLP denoiser on a 2-D toy set with burn-train's Learner
#[derive(Parser, Debug)]
#[command(name = "learner")]
struct Args {
    /// toy distribution: moons | swiss-roll | 8gaussians
    #[arg(long, default_value_t = Toy2d::TwoMoons)]
    data: Toy2d,
    /// training epochs
    #[arg(long, default_value_t = 5, value_parser = positive)]
    epochs: usize,
    /// training points
    #[arg(long, default_value_t = 16_384, value_parser = positive)]
    train: usize,
    /// validation points
    #[arg(long, default_value_t = 2048, value_parser = positive)]
    valid: usize,
    /// batch size
    #[arg(long, default_value_t = 256, value_parser = positive)]
    batch: usize,
    /// learning rate (AdamW, constant)
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// seed of data, weights, noise, order
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// burn-train's artifact folder
    #[arg(long, default_value = "out/learner")]
    out: PathBuf,
}

/// Diffusion steps of the process.
const T: usize = 1000;

fn main() {
    let Args {
        data: toy,
        epochs,
        train,
        valid,
        batch,
        lr,
        seed,
        out,
    } = Args::parse();
    let device = Device::flex();

    // The objective: the MLP and the ε-prediction loss of DDPM.
    let process = VpProcess::new(exit_on_error(
        ScheduleConfig::new().with_num_timesteps(T).init(),
    ));
    let loss = exit_on_error(SimpleLoss::new(
        process,
        Prediction::Epsilon,
        Weighting::Uniform,
    ));
    device.seed(seed); // the MLP's initial weights
    let model = exit_on_error(MlpConfig::new(2).init(&device));
    let objective = DiffusionObjective::new(model, loss);

    // Batchers: fresh timesteps and noise for every training batch; the same ones for a
    // validation batch in every epoch, so the epochs' validation losses compare.
    let train_batcher = exit_on_error(DiffusionBatcher::<2>::new(&[2], T, seed));
    let valid_batcher = exit_on_error(DiffusionBatcher::<2>::new(&[2], T, seed + 1)).fixed();
    let train_points = toy.sample(train, seed);
    let valid_points = toy.sample(valid, seed + 1);

    // Fail early with an error rather than a panic inside the learner's step.
    let first: DiffusionBatch<2> = valid_batcher
        .clone()
        .batch(valid_points[..batch.min(valid)].to_vec(), &device);
    exit_on_error(objective.evaluate(first));
    let untrained = validation_loss(&objective, &valid_batcher, &valid_points, batch);

    let train_loader = DataLoaderBuilder::new(train_batcher)
        .batch_size(batch)
        .shuffle(seed)
        .build(InMemDataset::new(train_points));
    let valid_loader = DataLoaderBuilder::new(valid_batcher)
        .batch_size(batch)
        .build(InMemDataset::new(valid_points));

    let _ = std::fs::remove_dir_all(&out);
    println!(
        "training an MLP on {toy} with burn-train's Learner: {epochs} epochs of {} batches of {batch}",
        train.div_ceil(batch)
    );
    let result = SupervisedTraining::new(&out, train_loader, valid_loader)
        .num_epochs(epochs)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .renderer(Box::<EpochLines>::default())
        .with_default_checkpointers()
        .with_application_logger(None)
        .launch(Learner::new(objective, AdamWConfig::new().init(), lr));
    if let Some(error) = result.error {
        exit_on_error::<(), _>(Err(error));
    }

    let summary = exit_on_error(LearnerSummary::new(&out, &["Loss"]));
    let train_losses = losses(&summary.metrics.train);
    let valid_losses = losses(&summary.metrics.valid);
    println!("\nvalidation loss of the untrained model: {untrained:.4}");
    println!("epoch  train loss  valid loss");
    for (epoch, (t, v)) in train_losses.iter().zip(&valid_losses).enumerate() {
        println!("{:>5}  {t:>10.4}  {v:>10.4}", epoch + 1);
    }
    if let (Some(t), Some(v)) = (train_losses.last(), valid_losses.last()) {
        println!("final: train loss {t:.4}, valid loss {v:.4}");
    }
    println!("burn-train's logs and checkpoints: {}", out.display());
    let _trained_mlp = result.model.into_model(); // sample with this one
}

/// The mean loss of `objective` on `points`, batched as the validation loader does.
fn validation_loss<M>(
    objective: &M,
    batcher: &DiffusionBatcher<2>,
    points: &[[f32; 2]],
    batch: usize,
) -> f64
where
    M: InferenceStep<Input = DiffusionBatch<2>, Output = burn::train::RegressionOutput>,
{
    let device = Device::flex();
    let total: f64 = points
        .chunks(batch)
        .map(|chunk| {
            let losses = InferenceStep::step(objective, batcher.batch(chunk.to_vec(), &device));
            f64::from(losses.loss.sum().into_scalar::<f32>())
        })
        .sum();
    total / points.len() as f64
}

/// The per-epoch values of the metric "Loss" in `split`.
fn losses(split: &[MetricSummary]) -> Vec<f64> {
    split
        .iter()
        .find(|m| m.name == "Loss")
        .map(|m| m.entries.iter().map(|e| e.value).collect())
        .unwrap_or_default()
}

/// A renderer that prints one line per epoch (burn's CLI renderer prints one per batch;
/// its terminal dashboard needs burn's `tui` feature and a terminal).
#[derive(Default)]
struct EpochLines {
    epochs: usize,
}

impl TrainingProgressLogger for EpochLines {
    fn start(&mut self, epochs: usize, _: usize, _: Option<usize>, _: Option<&str>) {
        self.epochs = epochs;
    }
    fn update_epoch(&mut self, epoch: usize) {
        println!("epoch {epoch}/{} done", self.epochs);
    }
    fn start_split(&mut self, _: &str, _: usize) {}
    fn update_split(&mut self, _: usize) {}
    fn end_split(&mut self) {}
    fn end(&mut self) {}
    fn log_event_training(&mut self, _: String) {}
}

impl EvaluationProgressLogger for EpochLines {
    fn start_global_progress(&mut self, _: usize) {}
    fn start_test(&mut self, _: &str, _: usize) {}
    fn update_test_progress(&mut self, _: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _: String) {}
}

impl MetricsRendererTraining for EpochLines {
    fn update_train(&mut self, _: MetricState) {}
    fn update_valid(&mut self, _: MetricState) {}
}

impl MetricsRendererEvaluation for EpochLines {
    fn update_test(&mut self, _: EvaluationName, _: MetricState) {}
}

impl MetricsRenderer for EpochLines {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _: MetricDefinition) {}
}
