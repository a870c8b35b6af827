//! Files the crate writes and reads back: loaded weights own their data, checksums catch
//! corrupt or replaced files, pruning never loses the checkpoint `latest` names, and a
//! resume with another objective is refused.

use std::path::Path;

use burn::tensor::Device;
use burn_diffusion::data::Toy2d;
use burn_diffusion::{
    DiffusionError,
    loss::{SimpleLoss, Weighting},
    model::{MlpConfig, UNet, UNetConfig},
    prediction::Prediction,
    process::VpProcess,
    schedule::ScheduleConfig,
    train::{Checkpoint, FitOptions, TrainConfig, Trainer},
};

use crate::common::{scratch, step_dirs, weights};

fn loss(prediction: Prediction) -> SimpleLoss<VpProcess> {
    let schedule = ScheduleConfig::new().with_num_timesteps(50).init().unwrap();
    SimpleLoss::new(VpProcess::new(schedule), prediction, Weighting::Uniform).unwrap()
}

fn config(steps: usize) -> TrainConfig {
    TrainConfig::new(steps)
        .with_batch_size(16)
        .with_learning_rate(1e-3)
        .with_warmup_steps(1)
        .with_checkpoint_every(2)
        .with_seed(3)
}

fn fit_options(root: &Path) -> FitOptions {
    FitOptions {
        checkpoint_dir: Some(root.to_path_buf()),
        ..FitOptions::default()
    }
}

fn tiny_unet() -> UNetConfig {
    UNetConfig::new(1, 1, 8)
        .with_base_channels(8)
        .with_channel_multipliers(vec![1])
        .with_res_blocks(1)
        .with_attention_resolutions(vec![])
        .with_norm_groups(4)
}

/// A model loaded with `UNet::load` and not used yet keeps its weights when its files
/// are rewritten in place with another model's, or deleted; the checkpoint's loaders do
/// the same when pruning deletes their directory. (With Burn's lazy `load_file`, the
/// first use after a rewrite reads the new weights, and after a deletion panics.)
#[test]
fn loaded_weights_do_not_depend_on_their_files() {
    let device = Device::flex();
    let dir = scratch("stored", "owned");
    let config = tiny_unet();
    let init = |seed: u64| {
        device.seed(seed);
        config.init(&device).unwrap()
    };
    let (first, second) = (init(1), init(2));
    let expected = weights(&first);
    assert_ne!(weights(&second), expected, "two different models");
    first.save(&config, &dir).unwrap();
    second.save(&config, dir.join("second")).unwrap();
    let (rewritten, _) = UNet::load(&dir, &device).unwrap();
    let (deleted, _) = UNet::load(&dir, &device).unwrap();
    let other = std::fs::read(dir.join("second/weights.bpk")).unwrap();
    std::fs::write(dir.join("weights.bpk"), other).unwrap();
    assert_eq!(weights(&rewritten), expected);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(weights(&deleted), expected);

    // Checkpoints: a model loaded from step 2, first used after pruning removed step 2.
    let root = dir.join("checkpoints");
    let mlp = MlpConfig::new(2).with_hidden(16);
    let data = Toy2d::TwoMoons.sample_tensor(64, 0, &device);
    let mut trainer = mlp_trainer(config_keep(4, 1), loss(Prediction::Epsilon), &device);
    trainer.fit(&data, 2, &fit_options(&root)).unwrap();
    let at_two = Checkpoint::latest(&root).unwrap().unwrap();
    let values = weights(&at_two.load_model(mlp.init(&device).unwrap()).unwrap());
    let model = at_two.load_model(mlp.init(&device).unwrap()).unwrap();
    let ema = at_two.load_ema(mlp.init(&device).unwrap()).unwrap();
    let ema_values = weights(&at_two.load_ema(mlp.init(&device).unwrap()).unwrap());
    trainer.fit(&data, 4, &fit_options(&root)).unwrap();
    assert!(!at_two.dir().exists(), "keep_checkpoints 1 pruned step 2");
    assert_eq!(weights(&model), values);
    assert_eq!(weights(&ema), ema_values);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn config_keep(steps: usize, keep: usize) -> TrainConfig {
    config(steps).with_keep_checkpoints(keep)
}

type MlpTrainer = Trainer<burn_diffusion::model::Mlp, SimpleLoss<VpProcess>, 2>;

/// A trainer of a fresh 16-wide MLP with `config` and `loss`.
fn mlp_trainer(config: TrainConfig, loss: SimpleLoss<VpProcess>, device: &Device) -> MlpTrainer {
    let model = MlpConfig::new(2).with_hidden(16).init(device).unwrap();
    Trainer::new(config, model, loss, device).unwrap()
}

/// Flipped bytes, truncation and another run's file (weights, EMA, optimizer state), an
/// edited `state.json` and an edited manifest are each an error naming the file; nothing
/// loads silently.
#[test]
fn corrupt_or_replaced_files_are_refused_by_name() {
    let device = Device::flex();
    let dir = scratch("stored", "corrupt");
    let root = dir.join("checkpoints");
    let mlp = MlpConfig::new(2).with_hidden(16);
    let data = Toy2d::TwoMoons.sample_tensor(64, 0, &device);
    let run = |root: &Path| {
        let mut trainer = mlp_trainer(config_keep(2, 1), loss(Prediction::Epsilon), &device);
        trainer.fit(&data, 2, &fit_options(root)).unwrap();
        Checkpoint::latest(root).unwrap().unwrap()
    };
    let checkpoint = run(&root);
    let step_dir = checkpoint.dir().to_path_buf();
    let other = run(&dir.join("other")).dir().to_path_buf();
    let original = |name: &str| std::fs::read(step_dir.join(name)).unwrap();
    let expect_refused = |what: &str, file: &str, load: &dyn Fn() -> Result<(), DiffusionError>| {
        let err = load().expect_err(what);
        let text = err.to_string();
        assert!(
            matches!(err, DiffusionError::Checkpoint { .. }),
            "{what}: {text}"
        );
        assert!(text.contains(file), "{what}: {text} names {file}");
    };
    let load_model = || {
        Checkpoint::open(&step_dir)?
            .load_model(mlp.init(&device).unwrap())
            .map(|_| ())
    };
    let load_ema = || {
        Checkpoint::open(&step_dir)?
            .load_ema(mlp.init(&device).unwrap())
            .map(|_| ())
    };
    // The optimizer state is read by a resume (after the weights, which stay good here).
    let resume = || {
        let trainer = mlp_trainer(config_keep(2, 1), loss(Prediction::Epsilon), &device);
        trainer.resume(&Checkpoint::open(&step_dir)?).map(|_| ())
    };
    for (file, load) in [
        (
            "model.bpk",
            &load_model as &dyn Fn() -> Result<(), DiffusionError>,
        ),
        ("ema.bpk", &load_ema),
        ("optimizer.bpk", &resume),
    ] {
        let good = original(file);
        // 16 bytes flipped in the middle.
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid..mid + 16].iter_mut().for_each(|b| *b ^= 0xFF);
        std::fs::write(step_dir.join(file), &flipped).unwrap();
        expect_refused("flipped bytes", file, load);
        std::fs::write(step_dir.join(file), &good[..good.len() - 1]).unwrap();
        expect_refused("truncated", file, load);
        std::fs::copy(other.join(file), step_dir.join(file)).unwrap();
        if std::fs::read(step_dir.join(file)).unwrap() != good {
            expect_refused("another run's file", file, load);
        }
        std::fs::write(step_dir.join(file), &good).unwrap();
        load().unwrap();
    }
    // An edited state.json (another step) and an edited manifest.
    let state = String::from_utf8(original("state.json")).unwrap();
    std::fs::write(
        step_dir.join("state.json"),
        state.replace("\"step\": 2", "\"step\": 9"),
    )
    .unwrap();
    assert_ne!(original("state.json"), state.as_bytes(), "the edit took");
    expect_refused("edited state", "state.json", &|| {
        Checkpoint::open(&step_dir).map(|_| ())
    });
    std::fs::write(step_dir.join("state.json"), &state).unwrap();
    std::fs::write(step_dir.join("checksums"), "00000000 checksums\n").unwrap();
    expect_refused("edited manifest", "checksums", &|| {
        Checkpoint::open(&step_dir).map(|_| ())
    });

    // UNet::save's directory: a flipped weight byte is refused, naming weights.bpk.
    let unet_dir = dir.join("unet");
    let config = tiny_unet();
    config
        .init(&device)
        .unwrap()
        .save(&config, &unet_dir)
        .unwrap();
    let mut bytes = std::fs::read(unet_dir.join("weights.bpk")).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 1;
    std::fs::write(unet_dir.join("weights.bpk"), bytes).unwrap();
    expect_refused("unet weights", "weights.bpk", &|| {
        UNet::load(&unet_dir, &device).map(|_| ())
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The crash of the issue: step 8 published, `latest` still naming step 4. A resume from
/// step 4 with `keep_checkpoints 1` to step 6 keeps step 6 (the new `latest`) and drops
/// the orphaned step 8; `latest` always names a checkpoint that exists.
#[test]
fn pruning_keeps_what_latest_names() {
    let device = Device::flex();
    let dir = scratch("stored", "prune");
    let root = dir.join("checkpoints");
    let data = Toy2d::TwoMoons.sample_tensor(64, 0, &device);
    let trainer = |steps: usize, keep: usize| {
        mlp_trainer(config_keep(steps, keep), loss(Prediction::Epsilon), &device)
    };
    let mut first = trainer(8, 10);
    first.fit(&data, 8, &fit_options(&root)).unwrap();
    // The crash: `latest` went back to step 4 (as if step 8's pointer update was lost).
    std::fs::write(root.join("latest"), "step-00000004").unwrap();
    let step4 = Checkpoint::latest(&root).unwrap().unwrap();
    let mut resumed = trainer(8, 1).resume(&step4).unwrap();
    resumed.fit(&data, 6, &fit_options(&root)).unwrap();
    let latest = Checkpoint::latest(&root).unwrap().unwrap();
    assert_eq!(latest.state().step, 6);
    assert_eq!(step_dirs(&root), vec!["step-00000006".to_string()]);
    // keep 2 keeps the newest before latest too.
    let mut kept = trainer(8, 2).resume(&latest).unwrap();
    kept.fit(&data, 8, &fit_options(&root)).unwrap();
    assert_eq!(step_dirs(&root), vec!["step-00000006", "step-00000008"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A checkpoint of an ε-prediction run does not resume a v-prediction run (nor one on
/// another schedule).
#[test]
fn resume_refuses_another_objective() {
    let device = Device::flex();
    let dir = scratch("stored", "objective");
    let root = dir.join("checkpoints");
    let data = Toy2d::TwoMoons.sample_tensor(64, 0, &device);
    let mut eps = mlp_trainer(config(2), loss(Prediction::Epsilon), &device);
    eps.fit(&data, 2, &fit_options(&root)).unwrap();
    let checkpoint = Checkpoint::latest(&root).unwrap().unwrap();
    assert!(checkpoint.state().objective.contains("Epsilon"));
    let v = mlp_trainer(config(2), loss(Prediction::Velocity), &device);
    let err = v.resume(&checkpoint).err().unwrap().to_string();
    assert!(
        err.contains("objective") && err.contains("Velocity"),
        "{err}"
    );
    let other_schedule = SimpleLoss::new(
        VpProcess::new(ScheduleConfig::new().with_num_timesteps(60).init().unwrap()),
        Prediction::Epsilon,
        Weighting::Uniform,
    )
    .unwrap();
    let longer = mlp_trainer(config(2), other_schedule, &device);
    assert!(longer.resume(&checkpoint).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
