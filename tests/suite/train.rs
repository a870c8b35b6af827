//! The training loop: checkpoint round trips, exact resume, crash safety, the CSV log and
//! clear errors.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::data::Toy2d;
use burn_diffusion::{
    Denoiser, DiffusionError, Loss,
    loss::{
        Decoder, LossSecondMomentResampler, SimpleLoss, TimestepSampler, UniformSampler, VlbLoss,
        Weighting,
    },
    model::{MlpConfig, UNetConfig},
    noise::{SeededRng, randn},
    prediction::{Parameterization, Prediction},
    process::VpProcess,
    schedule::{ScheduleConfig, Timesteps},
    train::{Checkpoint, Examples, FitOptions, LrSchedule, TimestepSampling, TrainConfig, Trainer},
};

use crate::common::{scratch, step_dirs, weights};

fn loss() -> SimpleLoss<VpProcess> {
    let schedule = ScheduleConfig::new()
        .with_num_timesteps(100)
        .init()
        .unwrap();
    SimpleLoss::new(
        VpProcess::new(schedule),
        Prediction::Epsilon,
        Weighting::Uniform,
    )
    .unwrap()
}

fn config(steps: usize) -> TrainConfig {
    TrainConfig::new(steps)
        .with_batch_size(16)
        .with_learning_rate(1e-3)
        .with_warmup_steps(2)
        .with_ema_decay(0.9)
        .with_checkpoint_every(3)
        .with_seed(11)
}

fn options(dir: &Path) -> FitOptions {
    FitOptions {
        checkpoint_dir: Some(dir.join("checkpoints")),
        log_csv: Some(dir.join("log.csv")),
        log_every: 1,
    }
}

/// Trains `model` 6 steps in one go, and 3 steps + resume (into a differently initialized
/// model) + 3 steps: weights, EMA and the CSV log must be identical. With `labels`, the
/// examples are labelled and 30 % of the labels are dropped to the null label 4.
fn check_exact_resume<M, const D: usize>(
    name: &str,
    init: impl Fn() -> M,
    data: Tensor<D>,
    labels: Option<Tensor<1, Int>>,
) where
    M: Module + Denoiser<D>,
{
    check_exact_resume_of(name, init, data, labels, loss, |c| c);
}

/// [`check_exact_resume`] with another loss and an edit of the configuration.
fn check_exact_resume_of<M, L, const D: usize>(
    name: &str,
    init: impl Fn() -> M,
    data: Tensor<D>,
    labels: Option<Tensor<1, Int>>,
    loss: impl Fn() -> L,
    edit: impl Fn(TrainConfig) -> TrainConfig,
) where
    M: Module + Denoiser<D>,
    L: Loss<D>,
{
    let device = Device::flex();
    let model = init();
    let examples = || match &labels {
        Some(labels) => Examples::labeled(&data, labels).unwrap(),
        None => Examples::from(&data),
    };
    let config = |steps: usize| match labels {
        Some(_) => edit(config(steps).with_p_uncond(0.3).with_null_label(Some(4))),
        None => edit(config(steps)),
    };
    let (one, two) = (
        scratch("train", &format!("{name}-one")),
        scratch("train", &format!("{name}-two")),
    );

    let mut straight = Trainer::new(config(6), model.clone(), loss(), &device).unwrap();
    straight.fit(examples(), 6, &options(&one)).unwrap();

    let mut first = Trainer::new(config(6), model, loss(), &device).unwrap();
    first.fit(examples(), 3, &options(&two)).unwrap();
    // Steps 4..5 run and are logged, then the process "crashes" before a checkpoint.
    first
        .fit(
            examples(),
            5,
            &FitOptions {
                checkpoint_dir: None,
                ..options(&two)
            },
        )
        .unwrap();
    drop(first);
    let latest = Checkpoint::latest(two.join("checkpoints"))
        .unwrap()
        .unwrap();
    assert_eq!(latest.state().step, 3);
    if let Some(history) = &latest.state().timestep_losses {
        // The importance sampler has seen every timestep by then (so the resumed steps
        // draw by importance, not uniformly).
        assert!(history.iter().all(|h| !h.is_empty()), "{name}: {history:?}");
    }
    let fresh = init();
    assert_ne!(
        weights(&fresh),
        weights(&straight.model().valid()),
        "{name}: same init"
    );
    let mut resumed = Trainer::new(config(6), fresh, loss(), &device)
        .unwrap()
        .resume(&latest)
        .unwrap();
    assert_eq!(resumed.step(), 3);
    resumed.fit(examples(), 6, &options(&two)).unwrap();

    assert_identical(
        &weights(straight.model()),
        &weights(resumed.model()),
        name,
        "weights",
    );
    let ema = (
        weights(&straight.ema_model()),
        weights(&resumed.ema_model()),
    );
    assert_identical(&ema.0, &ema.1, name, "EMA");
    let log = |dir: &Path| std::fs::read_to_string(dir.join("log.csv")).unwrap();
    assert_eq!(log(&one), log(&two), "{name}: CSV log");
    assert_eq!(log(&one).lines().count(), 7, "{name}: header + 6 steps");
    std::fs::remove_dir_all(one).unwrap();
    std::fs::remove_dir_all(two).unwrap();
}

/// Bit-for-bit equality, reporting the first difference instead of both vectors.
fn assert_identical(a: &[f32], b: &[f32], name: &str, what: &str) {
    assert_eq!(a.len(), b.len(), "{name}: {what} sizes");
    let same = |(x, y): (&f32, &f32)| x.to_bits() == y.to_bits();
    let differ = a.iter().zip(b).filter(|p| !same(*p)).count();
    let first = a.iter().zip(b).position(|p| !same(p));
    assert_eq!(
        differ,
        0,
        "{name}: {what}: {differ} of {} differ, first at {first:?}",
        a.len()
    );
}

#[test]
fn resume_continues_exactly_where_it_stopped() {
    let device = Device::flex();
    check_exact_resume(
        "mlp",
        || MlpConfig::new(2).with_hidden(32).init(&device).unwrap(),
        Toy2d::TwoMoons.sample_tensor(64, 0, &device),
        None,
    );
}

/// Exact resume holds for a class-conditional model with label dropout too: the dropped
/// labels of step s are a function of the seed and s.
#[test]
fn labelled_runs_with_label_dropout_resume_exactly() {
    let device = Device::flex();
    let labels: Vec<i64> = (0..64).map(|i| i % 4).collect();
    check_exact_resume(
        "mlp-labelled",
        || {
            MlpConfig::new(2)
                .with_hidden(32)
                .with_num_classes(Some(4))
                .init(&device)
                .unwrap()
        },
        Toy2d::TwoMoons.sample_tensor(64, 0, &device),
        Some(Tensor::<1, Int>::from_ints(labels.as_slice(), &device)),
    );
}

/// The UNet's dropout masks come from the backend's random generator, which Flex keeps
/// global to the process: other threads drawing from it (the parallel tests initializing
/// models) would change them. So this check runs alone, in a child process of this test
/// binary.
#[test]
fn resume_with_dropout_is_exact_in_a_process_of_its_own() {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "train::unet_with_dropout_resumes_exactly",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "the isolated run failed: {status}");
}

#[test]
#[ignore = "run in its own process by resume_with_dropout_is_exact_in_a_process_of_its_own"]
fn unet_with_dropout_resumes_exactly() {
    let device = Device::flex();
    let unet = UNetConfig::digits()
        .with_base_channels(16)
        .with_dropout(0.1);
    check_exact_resume(
        "unet-dropout",
        || unet.init(&device).unwrap(),
        randn::<4>([48, 1, 8, 8], 3, &device).tanh(),
        None,
    );
}

/// Exact resume with importance-sampled timesteps (the loss history travels in the
/// checkpoint) and a cosine learning rate after a warmup.
#[test]
fn importance_sampled_cosine_runs_resume_exactly() {
    let device = Device::flex();
    let vlb = || {
        let schedule = ScheduleConfig::new().with_num_timesteps(8).init().unwrap();
        VlbLoss::new(
            VpProcess::new(schedule),
            Parameterization::new(),
            Decoder::Gaussian,
        )
    };
    let labels: Vec<i64> = (0..64).map(|i| i % 4).collect();
    for (name, labels) in [
        ("mlp-importance", None),
        (
            "mlp-importance-labelled",
            Some(Tensor::<1, Int>::from_ints(labels.as_slice(), &device)),
        ),
    ] {
        let classes = labels.as_ref().map(|_| 4);
        check_exact_resume_of(
            name,
            || {
                MlpConfig::new(2)
                    .with_hidden(32)
                    .with_num_classes(classes)
                    .init(&device)
                    .unwrap()
            },
            Toy2d::TwoMoons.sample_tensor(64, 0, &device),
            labels,
            vlb,
            |c| {
                c.with_timestep_sampling(TimestepSampling::LossSecondMoment {
                    history: 2,
                    uniform_prob: 0.1,
                })
                .with_lr_schedule(LrSchedule::Cosine { min_lr: 1e-4 })
            },
        );
    }
}

/// The learning rates a `Trainer` uses are the warmup ramp and then the schedule's closed
/// form (cosine: PyTorch's `CosineAnnealingLR`; linear: a straight line to `final_lr` at
/// step `steps`).
#[test]
fn learning_rates_follow_the_schedule() {
    let device = Device::flex();
    let data = Toy2d::TwoMoons.sample_tensor(64, 0, &device);
    let (steps, warmup, lr) = (12usize, 4usize, 1e-3);
    let cases = [
        LrSchedule::Constant,
        LrSchedule::Cosine { min_lr: 2e-4 },
        LrSchedule::Linear { final_lr: 0.0 },
    ];
    for schedule in cases {
        let config = TrainConfig::new(steps)
            .with_batch_size(16)
            .with_learning_rate(lr)
            .with_warmup_steps(warmup)
            .with_lr_schedule(schedule);
        let model = MlpConfig::new(2).with_hidden(8).init(&device).unwrap();
        let mut trainer = Trainer::new(config.clone(), model, loss(), &device).unwrap();
        let mut used = Vec::new();
        trainer
            .fit_with(&data, steps, &FitOptions::default(), |s| {
                used.push(s.learning_rate)
            })
            .unwrap();
        for (s, got) in used.iter().enumerate() {
            let want = if s < warmup {
                lr * (s + 1) as f64 / warmup as f64
            } else {
                let k = (s - warmup) as f64 / (steps - warmup) as f64;
                match schedule {
                    LrSchedule::Constant => lr,
                    LrSchedule::Cosine { min_lr } => {
                        min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * k).cos())
                    }
                    LrSchedule::Linear { final_lr } => lr + (final_lr - lr) * k,
                }
            };
            assert!(
                (got - want).abs() < 1e-12,
                "{schedule:?} step {s}: {got} vs {want}"
            );
            assert_eq!(*got, config.learning_rate_at(s), "{schedule:?} step {s}");
        }
    }
}

/// Importance-sampled timesteps on a trained model (Nichol & Dhariwal 2021, §3.3): with
/// the loss history the trainer built, the reweighted per-example VLB term has the
/// uniform-t mean (within Monte-Carlo error) and a smaller variance than uniform t.
#[test]
fn importance_sampling_is_unbiased_and_lowers_the_variance_on_a_trained_model() {
    let device = Device::flex();
    let steps = 50;
    let process = VpProcess::new(
        ScheduleConfig::new()
            .with_num_timesteps(steps)
            .init()
            .unwrap(),
    );
    let vlb = VlbLoss::new(process, Parameterization::new(), Decoder::Gaussian);
    let data = Toy2d::TwoMoons.sample_tensor(2048, 0, &device);
    let config = TrainConfig::new(400)
        .with_batch_size(64)
        .with_learning_rate(2e-3)
        .with_ema_decay(0.99)
        .with_timestep_sampling(TimestepSampling::loss_second_moment())
        .with_seed(5);
    let model = MlpConfig::new(2).with_hidden(64).init(&device).unwrap();
    let mut trainer = Trainer::new(config, model, vlb.clone(), &device).unwrap();
    let dir = scratch("train", "importance-trained");
    let options = FitOptions {
        checkpoint_dir: Some(dir.join("checkpoints")),
        ..FitOptions::default()
    };
    trainer.fit(&data, 400, &options).unwrap();
    let latest = Checkpoint::latest(dir.join("checkpoints"))
        .unwrap()
        .unwrap();
    let history = latest.state().timestep_losses.clone().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    let mut resampler = LossSecondMomentResampler::new(steps).unwrap();
    resampler.restore(&history).unwrap();
    assert!(
        resampler.warmed_up(),
        "400 steps of 64 fill 10 losses at each of 50 t"
    );

    // Per-example estimates l(x_0, t, ε)·w(t) on fresh draws, both ways.
    let model = trainer.ema_model();
    let n = 16_384;
    let x0 = Toy2d::TwoMoons.sample_tensor(n, 1, &device);
    let noise = randn::<2>([n, 2], 2, &device);
    let estimate = |sampler: &dyn TimestepSampler| {
        let (ts, w) = sampler.sample(n, &mut SeededRng::new(3));
        let out = vlb
            .loss(&model, x0.clone(), &Timesteps::new(ts), noise.clone())
            .unwrap();
        let l: Vec<f32> = out.loss.into_data().try_to_vec().unwrap();
        let v: Vec<f64> = l.iter().zip(&w).map(|(l, w)| f64::from(*l) * w).collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (mean, var)
    };
    let (mean_is, var_is) = estimate(&resampler);
    let (mean_u, var_u) = estimate(&UniformSampler::new(steps).unwrap());
    let se = (var_is / n as f64 + var_u / n as f64).sqrt();
    println!(
        "VLB term per example: importance {mean_is:.5} (variance {var_is:.4}), uniform {mean_u:.5} (variance {var_u:.4}); difference {:.5} ± {se:.5}",
        mean_is - mean_u
    );
    assert!(
        (mean_is - mean_u).abs() < 5.0 * se,
        "biased: {mean_is} vs {mean_u} ± {se}"
    );
    assert!(
        var_is < var_u / 2.0,
        "importance sampling did not lower the variance: {var_is} vs {var_u}"
    );
}

/// The importance sampler's loss history is part of a run's random state: it must come
/// back from `state.json` bit for bit, or a resumed run's weights and timestep draws
/// differ in the last bits (serde_json's default float parsing is best-effort and misses
/// by an ulp on some numbers; the crate turns on its `float_roundtrip`).
#[test]
fn checkpoint_state_round_trips_every_f64_bit_for_bit() {
    use burn::config::Config;
    use burn_diffusion::train::CheckpointState;
    let mut rng = SeededRng::new(11);
    // Losses as the sampler stores them (f32 values widened to f64, their squares and
    // means) and arbitrary f64s over many exponents.
    let history: Vec<Vec<f64>> = (0..100)
        .map(|_| {
            (0..100)
                .map(|k| match k % 3 {
                    0 => f64::from((rng.next_open01() * 5.0) as f32),
                    1 => rng.next_open01() * 5.0,
                    _ => rng.next_open01() * 10f64.powi(rng.next_below(40) as i32 - 20),
                })
                .collect()
        })
        .collect();
    let state = CheckpointState::new(7, 7, config(10), "objective".into())
        .with_timestep_losses(Some(history.clone()));
    let dir = scratch("train", "state-round-trip");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    state.save(&path).unwrap();
    let back = CheckpointState::load(&path).unwrap();
    let back = back.timestep_losses.unwrap();
    let changed = history
        .iter()
        .flatten()
        .zip(back.iter().flatten())
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(changed, 0, "of {} values", 100 * 100);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn checkpoints_round_trip_and_survive_a_crash_mid_write() {
    let device = Device::flex();
    let dir = scratch("train", "round-trip");
    let root = dir.join("checkpoints");
    let data = Toy2d::EightGaussians.sample_tensor(64, 1, &device);
    let mlp = MlpConfig::new(2).with_hidden(32);
    let mut trainer = Trainer::new(
        config(6).with_keep_checkpoints(1),
        mlp.init(&device).unwrap(),
        loss(),
        &device,
    )
    .unwrap();
    trainer.fit(&data, 6, &options(&dir)).unwrap();

    let latest = Checkpoint::latest(&root).unwrap().unwrap();
    assert_eq!((latest.state().step, latest.state().ema_updates), (6, 6));
    assert_eq!(latest.state().config, *trainer.config());
    let model = latest.load_model(mlp.init(&device).unwrap()).unwrap();
    let ema = latest.load_ema(mlp.init(&device).unwrap()).unwrap();
    assert_eq!(weights(&model), weights(trainer.model()));
    assert_eq!(weights(&ema), weights(&trainer.ema_model()));
    assert_ne!(weights(&model), weights(&ema));
    // keep_checkpoints = 1: only step 6 is left.
    assert_eq!(step_dirs(&root), vec!["step-00000006".to_string()]);

    // A crash mid-write leaves a partial directory and the old pointer: still loadable.
    std::fs::create_dir_all(root.join(".partial-step-00000009")).unwrap();
    std::fs::write(
        root.join(".partial-step-00000009/model.bpk"),
        b"half a file",
    )
    .unwrap();
    assert_eq!(Checkpoint::latest(&root).unwrap().unwrap().state().step, 6);
    // A pointer to a missing checkpoint is a clear error, and an empty root has none.
    std::fs::write(root.join("latest"), "step-00000042").unwrap();
    let err = Checkpoint::latest(&root).unwrap_err();
    assert!(matches!(err, DiffusionError::Checkpoint { .. }), "{err}");
    assert!(Checkpoint::latest(dir.join("nowhere")).unwrap().is_none());
    // Weights of another architecture do not load.
    let wider = MlpConfig::new(2).with_hidden(64).init(&device).unwrap();
    assert!(matches!(
        latest.load_model(wider),
        Err(DiffusionError::Checkpoint { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_runs_are_clear_errors() {
    let device = Device::flex();
    let dir = scratch("train", "errors");
    let mlp = MlpConfig::new(2).with_hidden(16);
    let data = Toy2d::SwissRoll.sample_tensor(32, 2, &device);
    let mut trainer = Trainer::new(config(6), mlp.init(&device).unwrap(), loss(), &device).unwrap();
    trainer.fit(&data, 3, &options(&dir)).unwrap();
    let latest = Checkpoint::latest(dir.join("checkpoints"))
        .unwrap()
        .unwrap();

    // Resuming with another batch size is refused; another number of steps is fine.
    let other = Trainer::new(
        config(6).with_batch_size(8),
        mlp.init(&device).unwrap(),
        loss(),
        &device,
    )
    .unwrap();
    let err = other.resume(&latest).err().unwrap().to_string();
    assert!(err.contains("differs"), "{err}");
    let longer = Trainer::new(config(60), mlp.init(&device).unwrap(), loss(), &device).unwrap();
    assert_eq!(longer.resume(&latest).unwrap().step(), 3);

    // Past config.steps, more examples per batch than data, NaN data.
    assert!(trainer.fit(&data, 7, &FitOptions::default()).is_err());
    let tiny = Toy2d::SwissRoll.sample_tensor(8, 2, &device);
    let err = trainer
        .fit(&tiny, 4, &FitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch_size"), "{err}");
    // Labels: one per example, and label dropout only with labels.
    let labels = Tensor::<1, Int>::zeros([31], &device);
    let err = Examples::labeled(&data, &labels).unwrap_err();
    assert!(matches!(err, DiffusionError::ShapeMismatch { .. }), "{err}");
    let mut dropping = Trainer::new(
        config(6).with_p_uncond(0.2).with_null_label(Some(3)),
        mlp.init(&device).unwrap(),
        loss(),
        &device,
    )
    .unwrap();
    let err = dropping.fit(&data, 1, &FitOptions::default()).unwrap_err();
    assert!(err.to_string().contains("labelled examples"), "{err}");
    let nan = Tensor::<2>::full([32, 2], f32::NAN, &device);
    let err = trainer.fit(&nan, 4, &FitOptions::default()).unwrap_err();
    assert!(
        matches!(err, DiffusionError::NonFiniteLoss { step: 3, .. }),
        "{err}"
    );
    assert!(
        Trainer::new(
            TrainConfig::new(0),
            mlp.init(&device).unwrap(),
            loss(),
            &device
        )
        .is_err()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn training_lowers_the_held_out_loss() {
    // The ε-MSE of the initial and the trained weights on the same held-out examples,
    // timesteps and noise: the paired per-example differences give the standard error.
    let device = Device::flex();
    let data = Toy2d::EightGaussians.sample_tensor(2048, 4, &device);
    let held_out = Toy2d::EightGaussians.sample_tensor(4096, 5, &device);
    let model = MlpConfig::new(2).init(&device).unwrap();
    let config = TrainConfig::new(300)
        .with_batch_size(128)
        .with_learning_rate(2e-3)
        .with_seed(5);
    let mut trainer = Trainer::new(config, model.clone(), loss(), &device).unwrap();
    trainer.fit(&data, 300, &FitOptions::default()).unwrap();
    let eval = |model: &burn_diffusion::model::Mlp| {
        loss()
            .loss_seeded(model, held_out.clone(), 99)
            .unwrap()
            .loss
            .try_into_vec_as::<f32>()
            .unwrap()
    };
    let (before, after) = (eval(&model), eval(&trainer.model().valid()));
    let n = before.len() as f64;
    let diffs: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| f64::from(b - a))
        .collect();
    let mean = diffs.iter().sum::<f64>() / n;
    let se = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt();
    let avg = |v: &[f32]| v.iter().map(|x| f64::from(*x)).sum::<f64>() / n;
    println!(
        "held-out ε-MSE: initial {:.4}, trained {:.4}; drop {mean:.4} ± {se:.4}",
        avg(&before),
        avg(&after)
    );
    assert!(
        mean > 5.0 * se,
        "the loss must drop by more than 5 standard errors"
    );
}

#[test]
fn with_sparse_logging_a_nan_is_caught_before_any_checkpoint_holds_it() {
    // log_every = 4 reads the loss at steps 4, 8, …, and at every checkpoint step (here
    // every 2): the NaN of step 1 (0-based index 0) is seen at step 2, before the
    // checkpoint of step 2 is written.
    let device = Device::flex();
    let dir = scratch("train", "sparse-nan");
    let config = config(8).with_checkpoint_every(2);
    let model = MlpConfig::new(2).init(&device).unwrap();
    let mut trainer = Trainer::new(config, model, loss(), &device).unwrap();
    let nan = Tensor::<2>::full([32, 2], f32::NAN, &device);
    let sparse = FitOptions {
        log_every: 4,
        ..options(&dir)
    };
    let err = trainer.fit(&nan, 8, &sparse).unwrap_err();
    assert!(
        matches!(err, DiffusionError::NonFiniteLoss { step: 1, .. }),
        "{err}"
    );
    assert!(
        Checkpoint::latest(dir.join("checkpoints"))
            .unwrap()
            .is_none()
    );
    let log = std::fs::read_to_string(dir.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 1, "only the header: {log}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Class-conditional training with label dropout, on 8 Gaussians (σ = 0.1) evenly spaced
/// on the circle of radius 2, component c labelled c. A conditional MLP trained for a
/// short budget (1,500 steps, p_uncond = 0.2) samples class c near component c: the
/// fraction of 400 samples per class within 0.5 of their own component (neighbours are
/// 1.53 apart, so a point is within 0.5 of at most one) must exceed 0.8 by 5 standard
/// errors (chance, ignoring the label, is 1/8). With the null label (the unconditional
/// model that the dropout trained, on a fifth of the batches), the samples must cover
/// every component: of the samples near some component, each component holds at least
/// half of the mean count (measured: 98.5–99.8 % per class; null label 223–248 per
/// component, 58 % of its 3,200 samples near one: the unconditional model is the
/// weaker one at this budget).
#[test]
fn a_conditional_model_samples_the_class_it_is_given() {
    use burn_diffusion::{
        model::WithLabels,
        sampler::{ModelTime, SampleOptions, X0Options, sample_from_noise, sampler_by_name},
    };
    let device = Device::flex();
    let (classes, per_class) = (8usize, 512usize);
    let centre = |c: usize| {
        let angle = std::f64::consts::TAU * c as f64 / classes as f64;
        (2.0 * angle.cos(), 2.0 * angle.sin())
    };
    let noise = burn_diffusion::noise::SeededRng::new(5).standard_normals(2 * classes * per_class);
    let (mut points, mut labels) = (Vec::new(), Vec::new());
    for c in 0..classes {
        for k in 0..per_class {
            let (x, y) = centre(c);
            let i = 2 * (c * per_class + k);
            points.extend([(x + 0.1 * noise[i]) as f32, (y + 0.1 * noise[i + 1]) as f32]);
            labels.push(c as i64);
        }
    }
    let n = classes * per_class;
    let data = Tensor::<1>::from_floats(points.as_slice(), &device).reshape([n, 2]);
    let labels = Tensor::<1, Int>::from_ints(labels.as_slice(), &device);
    let model = MlpConfig::new(2)
        .with_hidden(128)
        .with_num_classes(Some(classes))
        .init(&device)
        .unwrap();
    let config = TrainConfig::new(1500)
        .with_batch_size(256)
        .with_learning_rate(2e-3)
        .with_warmup_steps(50)
        .with_ema_decay(0.995)
        .with_p_uncond(0.2)
        .with_null_label(Some(classes as i64));
    let mut trainer = Trainer::new(config, model, loss(), &device).unwrap();
    let options = FitOptions {
        log_every: 100,
        ..FitOptions::default()
    };
    trainer
        .fit(Examples::labeled(&data, &labels).unwrap(), 1500, &options)
        .unwrap();
    let model = trainer.ema_model();
    let process = VpProcess::new(
        ScheduleConfig::new()
            .with_num_timesteps(100)
            .init()
            .unwrap(),
    );
    let ddim = sampler_by_name(
        "ddim",
        &process,
        50,
        X0Options::default(),
        ModelTime::Rounded,
    )
    .unwrap();
    let draw = |label: i64, count: usize, seed: u64| -> Vec<(f64, f64)> {
        let labels = Tensor::<1, Int>::full([count], label, &device);
        let options = SampleOptions {
            seed,
            ..SampleOptions::default()
        };
        let out = sample_from_noise(
            &ddim,
            &WithLabels::new(&model, labels),
            [count, 2],
            &device,
            options,
            |_, _| {},
        )
        .unwrap();
        crate::common::values(out.sample)
            .chunks(2)
            .map(|p| (p[0], p[1]))
            .collect()
    };
    let near = |(x, y): (f64, f64), c: usize| {
        let (cx, cy) = centre(c);
        ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() < 0.5
    };
    let count = 400;
    let mut report = Vec::new();
    for c in 0..classes {
        let hits = draw(c as i64, count, 10 + c as u64)
            .into_iter()
            .filter(|&p| near(p, c))
            .count();
        let f = hits as f64 / count as f64;
        let se = (f * (1.0 - f) / count as f64)
            .sqrt()
            .max(1.0 / count as f64);
        report.push(format!("{f:.3}±{se:.3}"));
        assert!(
            f - 5.0 * se > 0.8 || f > 0.99,
            "class {c}: {f} of its samples near its component ({report:?})"
        );
    }
    let unconditional = draw(classes as i64, classes * count, 99);
    let shares: Vec<usize> = (0..classes)
        .map(|c| unconditional.iter().filter(|&&p| near(p, c)).count())
        .collect();
    eprintln!(
        "conditional: fraction near the own component per class {report:?}; null label: samples per component {shares:?} of {}",
        classes * count
    );
    let mean_share = shares.iter().sum::<usize>() as f64 / classes as f64;
    assert!(
        shares.iter().all(|&s| s as f64 >= 0.5 * mean_share),
        "the null label does not cover every component: {shares:?}"
    );
}
