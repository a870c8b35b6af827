//! burn-train's `Learner` trains a denoiser through `DiffusionObjective` (feature `train`).
//!
//! Run with `cargo test --release --features train --test learner`.

#![cfg(feature = "train")]

use std::path::PathBuf;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::optim::AdamWConfig;
use burn::tensor::Device;
use burn::train::metric::LossMetric;
use burn::train::renderer::CliMetricsRenderer;
use burn::train::{
    ExecutionStrategy, InferenceStep, Learner, LearnerSummary, MultiDeviceOptim, SupervisedTraining,
};
use burn_diffusion::data::Toy2d;
use burn_diffusion::{
    loss::{SimpleLoss, Weighting},
    model::MlpConfig,
    noise::randn,
    prediction::Prediction,
    process::VpProcess,
    schedule::ScheduleConfig,
    train::{DiffusionBatch, DiffusionBatcher, DiffusionObjective, LabelDropout, Labeled},
};

const TIMESTEPS: usize = 100;
const TRAIN: usize = 4096;
const VALID: usize = 1024;
const BATCH: usize = 64;
const EPOCHS: usize = 3;

type Objective = DiffusionObjective<burn_diffusion::model::Mlp, SimpleLoss<VpProcess>, 2>;

/// The per-example losses of `objective` on the validation set, batched as the learner's
/// validation loader batches it (in order, `BATCH` at a time) with a fixed batcher, so
/// every call sees the timesteps and noise the learner validates with.
fn validation_losses(
    objective: &Objective,
    batcher: &DiffusionBatcher<2>,
    points: &[[f32; 2]],
) -> Vec<f64> {
    let device = Device::flex();
    points
        .chunks(BATCH)
        .flat_map(|chunk| {
            let batch: DiffusionBatch<2> = batcher.batch(chunk.to_vec(), &device);
            let loss = InferenceStep::step(objective, batch).loss;
            loss.try_into_vec_as::<f32>().unwrap()
        })
        .map(f64::from)
        .collect()
}

/// The ε-loss on the linear schedule of `TIMESTEPS` steps.
fn eps_loss() -> SimpleLoss<VpProcess> {
    let process = VpProcess::new(
        ScheduleConfig::new()
            .with_num_timesteps(TIMESTEPS)
            .init()
            .unwrap(),
    );
    SimpleLoss::new(process, Prediction::Epsilon, Weighting::Uniform).unwrap()
}

/// burn-train's supervised training for `EPOCHS` epochs in `dir`, batching `train`
/// (shuffled) and `valid` (in order) `BATCH` at a time, logging the loss.
fn supervised<I>(
    dir: &std::path::Path,
    train: (DiffusionBatcher<2>, Vec<I>),
    valid: (DiffusionBatcher<2>, Vec<I>),
) -> SupervisedTraining<Objective>
where
    I: Clone + std::fmt::Debug + Send + Sync + 'static,
    DiffusionBatcher<2>: Batcher<I, DiffusionBatch<2>>,
{
    let train_loader = DataLoaderBuilder::new(train.0)
        .batch_size(BATCH)
        .shuffle(0)
        .build(InMemDataset::new(train.1));
    let valid_loader = DataLoaderBuilder::new(valid.0)
        .batch_size(BATCH)
        .build(InMemDataset::new(valid.1));
    SupervisedTraining::new(dir, train_loader, valid_loader)
        .num_epochs(EPOCHS)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .renderer(Box::new(CliMetricsRenderer::new()))
        .with_application_logger(None)
}

fn mean_and_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "burn-diffusion-learner-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn learner_trains_the_mlp_on_two_moons() {
    train_and_check("single", None);
}

/// burn-train's multi-device strategy (data parallel, optimizer on the first device),
/// here on two Flex devices: the same objective trains unchanged.
#[test]
fn multi_device_strategy_trains_the_mlp() {
    let devices = vec![Device::flex(), Device::flex()];
    train_and_check(
        "multi",
        Some(ExecutionStrategy::MultiDevice(
            devices,
            MultiDeviceOptim::OptimMainDevice,
        )),
    );
}

/// Trains the MLP on two moons for `EPOCHS` epochs with the learner (on one Flex device
/// unless `strategy` says otherwise) and checks that the validation loss drops by more
/// than its noise and that burn-train logged it.
fn train_and_check(name: &str, strategy: Option<ExecutionStrategy>) {
    let device = Device::flex();
    let loss = eps_loss();
    device.seed(0); // the MLP's initial weights
    let model = MlpConfig::new(2).init(&device).unwrap();
    let objective = DiffusionObjective::new(model, loss);

    let train_batcher = DiffusionBatcher::<2>::new(&[2], TIMESTEPS, 1).unwrap();
    let valid_batcher = DiffusionBatcher::<2>::new(&[2], TIMESTEPS, 2)
        .unwrap()
        .fixed();
    let train_points = Toy2d::TwoMoons.sample(TRAIN, 0);
    let valid_points = Toy2d::TwoMoons.sample(VALID, 1);
    let before = validation_losses(&objective, &valid_batcher, &valid_points);

    let dir = temp_dir(name);
    let mut training = supervised(
        &dir,
        (train_batcher, train_points),
        (valid_batcher.clone(), valid_points.clone()),
    );
    if let Some(strategy) = strategy {
        training = training.with_training_strategy(strategy.into());
    }
    let result = training.launch(Learner::new(objective, AdamWConfig::new().init(), 2e-3));
    assert!(
        result.error.is_none(),
        "training failed: {:?}",
        result.error
    );
    assert!(result.interrupted.is_none());

    // The trained model on the same validation batches, paired example by example with
    // the untrained one (same data, timesteps and noise).
    let after = validation_losses(&result.model, &valid_batcher, &valid_points);
    let (mean_before, _) = mean_and_sd(&before);
    let (mean_after, sd_after) = mean_and_sd(&after);
    let differences: Vec<f64> = before.iter().zip(&after).map(|(b, a)| b - a).collect();
    let (drop, sd_drop) = mean_and_sd(&differences);
    let se_drop = sd_drop / (VALID as f64).sqrt();
    println!(
        "{name}: validation loss: untrained {mean_before:.4}, trained {mean_after:.4}; drop {drop:.4} ± {se_drop:.4} (standard error of the paired mean)"
    );
    // The drop must exceed its own noise: five standard errors of the paired mean
    // (a false failure has probability < 3·10⁻⁷ under a normal approximation).
    assert!(
        drop > 5.0 * se_drop,
        "validation loss dropped by {drop} only, standard error {se_drop}"
    );

    // What burn-train logged (LossMetric, mean of the per-example losses) is that loss.
    let summary = LearnerSummary::new(&dir, &["Loss"]).unwrap();
    assert_eq!(summary.epochs, EPOCHS);
    let logged = |split: &[burn::train::MetricSummary]| -> Vec<f64> {
        let metric = split
            .iter()
            .find(|m| m.name == "Loss")
            .expect("Loss logged");
        metric.entries.iter().map(|e| e.value).collect()
    };
    let train = logged(&summary.metrics.train);
    let valid = logged(&summary.metrics.valid);
    println!("{name}: logged per epoch: train {train:?}, valid {valid:?}");
    assert_eq!((train.len(), valid.len()), (EPOCHS, EPOCHS));
    let last_valid = valid[EPOCHS - 1];
    assert!(
        (last_valid - mean_after).abs() < 1e-4 * mean_after,
        "logged validation loss {last_valid} differs from the trained model's {mean_after}"
    );
    // The logged training loss measures the same thing: in the last epoch (the model
    // changes little within it) it matches the trained model's validation loss up to
    // the noise of the two means, sd·sqrt(1/TRAIN + 1/VALID) with sd one example's
    // loss's standard deviation (estimated on the validation set); allow five of those.
    assert!(
        train.iter().all(|v| v.is_finite()),
        "training losses {train:?}"
    );
    let noise = sd_after * (1.0 / TRAIN as f64 + 1.0 / VALID as f64).sqrt();
    let last_train = train[EPOCHS - 1];
    assert!(
        (last_train - mean_after).abs() < 5.0 * noise,
        "last epoch's training loss {last_train} vs validation loss {mean_after} (noise {noise})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A class-conditional MLP trained through burn-train on labelled examples with label
/// dropout: two blobs, N((−1.5, 0), 0.3²) labelled 0 and N((1.5, 0), 0.3²) labelled 1.
/// After training, the validation loss given each example's own label is below the loss
/// given the other label (paired, same timesteps and noise) by more than five standard
/// errors: the labels reach the model and it uses them.
#[test]
fn learner_trains_a_conditional_model_with_label_dropout() {
    let device = Device::flex();
    let loss = eps_loss();
    device.seed(0);
    let model = MlpConfig::new(2)
        .with_num_classes(Some(2))
        .init(&device)
        .unwrap();
    let objective = DiffusionObjective::new(model, loss);
    let blobs = |n: usize, seed: u64| -> Vec<Labeled<[f32; 2]>> {
        let noise = randn::<2>([n, 2], seed, &device)
            .try_into_vec_as::<f32>()
            .unwrap();
        (0..n)
            .map(|i| {
                let label = (i % 2) as i64;
                let centre = if label == 0 { -1.5 } else { 1.5 };
                let example = [centre + 0.3 * noise[2 * i], 0.3 * noise[2 * i + 1]];
                Labeled { example, label }
            })
            .collect()
    };
    let dropout = LabelDropout::new(0.2, 2).unwrap();
    let train_batcher = DiffusionBatcher::<2>::new(&[2], TIMESTEPS, 1)
        .unwrap()
        .with_label_dropout(dropout);
    let valid_batcher = DiffusionBatcher::<2>::new(&[2], TIMESTEPS, 2)
        .unwrap()
        .fixed();
    let (train, valid) = (blobs(TRAIN, 10), blobs(VALID, 11));
    let dir = temp_dir("conditional");
    let result = supervised(
        &dir,
        (train_batcher, train),
        (valid_batcher.clone(), valid.clone()),
    )
    .launch(Learner::new(objective, AdamWConfig::new().init(), 2e-3));
    assert!(
        result.error.is_none(),
        "training failed: {:?}",
        result.error
    );
    let _ = std::fs::remove_dir_all(&dir);

    let losses = |swap: bool| -> Vec<f64> {
        valid
            .chunks(BATCH)
            .flat_map(|chunk| {
                let items: Vec<Labeled<[f32; 2]>> = chunk
                    .iter()
                    .map(|item| Labeled {
                        example: item.example,
                        label: if swap { 1 - item.label } else { item.label },
                    })
                    .collect();
                // The fixed batcher seeds by the data alone: the same timesteps and noise
                // whatever the labels.
                let batch: DiffusionBatch<2> = valid_batcher.batch(items, &device);
                let loss = InferenceStep::step(&result.model, batch).loss;
                loss.try_into_vec_as::<f32>().unwrap()
            })
            .map(f64::from)
            .collect()
    };
    let (own, other) = (losses(false), losses(true));
    let differences: Vec<f64> = other.iter().zip(&own).map(|(o, s)| o - s).collect();
    let (gain, sd) = mean_and_sd(&differences);
    let se = sd / (VALID as f64).sqrt();
    println!(
        "conditional: validation loss {:.4} given the own label, {:.4} given the other; gain {gain:.4} ± {se:.4}",
        mean_and_sd(&own).0,
        mean_and_sd(&other).0
    );
    assert!(gain > 5.0 * se, "the labels do not help: {gain} ± {se}");
}
