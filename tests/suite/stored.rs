//! Files the crate writes and reads back: loaded weights own their data, checksums catch
//! corrupt or replaced files, pruning never loses the checkpoint `latest` names, and a
//! resume with another objective is refused.

use std::path::Path;

use burn::tensor::Device;
use burn_diffusion::data::{ImageDataset, Toy2d};
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
/// loads silently. (A saved UNet's files: see the every-byte test below.)
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

/// Positions to corrupt in a file of `len` bytes: about 150, spread over the whole file,
/// always including both ends.
fn positions(len: usize) -> Vec<usize> {
    let stride = (len / 150).max(1);
    let mut p: Vec<usize> = (0..len).step_by(stride).collect();
    p.push(len - 1);
    p.dedup();
    p
}

/// Decides what a corruption's load result must be: `(kind, position, result)`.
type Judge<'a, T> = dyn Fn(&str, usize, Result<T, DiffusionError>) + 'a;

/// Every sampled truncation and flipped byte (XOR 0xFF) of `path` runs `load`, which must
/// not panic; `judge(kind, position, result)` decides what the result must be. The file
/// is restored afterwards. Returns the number of corruptions tried.
fn corrupt_each<T>(
    path: &Path,
    load: &dyn Fn() -> Result<T, DiffusionError>,
    judge: &Judge<'_, T>,
) -> usize {
    let good = std::fs::read(path).unwrap();
    let mut tried = 0;
    for at in positions(good.len()) {
        for (kind, bytes) in [
            ("truncated", good[..at].to_vec()),
            ("flipped", {
                let mut b = good.clone();
                b[at] ^= 0xFF;
                b
            }),
        ] {
            std::fs::write(path, &bytes).unwrap();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load))
                .unwrap_or_else(|_| panic!("{} {kind} at {at}: panicked", path.display()));
            judge(kind, at, result);
            tried += 1;
        }
    }
    std::fs::write(path, &good).unwrap();
    tried
}

/// A checksummed file: every corruption is a `Checkpoint` error naming the file (a
/// corrupt manifest may instead name the file whose entry it garbled).
fn refused_naming<T>(path: &Path) -> impl Fn(&str, usize, Result<T, DiffusionError>) + '_ {
    move |kind, at, result| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match result {
            Err(e @ DiffusionError::Checkpoint { .. }) => assert!(
                name == "checksums" || e.to_string().contains(&name),
                "{name} {kind} at {at}: {e}"
            ),
            Err(e) => panic!("{name} {kind} at {at}: not a checkpoint error: {e}"),
            Ok(_) => panic!("{name} {kind} at {at}: loaded"),
        }
    }
}

/// Every file of a checkpoint and of a saved UNet, and the `latest` pointer, truncated at
/// and flipped in ~150 places each: a clear error naming the file, never a panic, never a
/// silent load (the checksums cover every byte). The data files (IDX, plain and gzipped,
/// and the digits CSV) carry no checksum: a truncation or a flipped header byte is an
/// error, and what loads is exactly what the damaged bytes say (a changed pixel, or for
/// CSV a prefix of whole rows).
#[test]
fn every_truncation_and_flipped_byte_is_refused_or_what_the_bytes_say() {
    let device = Device::flex();
    let dir = scratch("stored", "every-byte");
    let root = dir.join("checkpoints");
    let data = Toy2d::TwoMoons.sample_tensor(64, 0, &device);
    let mut trainer = mlp_trainer(config_keep(2, 1), loss(Prediction::Epsilon), &device);
    trainer.fit(&data, 2, &fit_options(&root)).unwrap();
    let step_dir = Checkpoint::latest(&root)
        .unwrap()
        .unwrap()
        .dir()
        .to_path_buf();
    let mlp = || MlpConfig::new(2).with_hidden(16).init(&device).unwrap();
    let load_all = || -> Result<(), DiffusionError> {
        let checkpoint = Checkpoint::latest(&root)?.expect("latest exists");
        checkpoint.load_model(mlp())?;
        checkpoint.load_ema(mlp())?;
        let fresh = mlp_trainer(config_keep(2, 1), loss(Prediction::Epsilon), &device);
        fresh.resume(&checkpoint).map(|_| ())
    };
    load_all().unwrap();
    let mut tried = 0;
    for file in [
        "model.bpk",
        "ema.bpk",
        "optimizer.bpk",
        "state.json",
        "checksums",
    ] {
        let path = step_dir.join(file);
        tried += corrupt_each(&path, &load_all, &refused_naming(&path));
    }
    // `latest`: any damage names a missing or malformed step, except losing the newline.
    let latest = root.join("latest");
    let text = std::fs::read_to_string(&latest).unwrap();
    tried += corrupt_each(&latest, &load_all, &|kind, at, result| {
        let harmless = kind == "truncated" && text[..at].trim() == text.trim();
        match result {
            Ok(()) => assert!(harmless, "latest {kind} at {at}: loaded"),
            Err(e) => assert!(
                !harmless && e.to_string().contains("latest") || e.to_string().contains("step-"),
                "latest {kind} at {at}: {e}"
            ),
        }
    });
    load_all().unwrap();

    // A saved UNet: config.json, weights.bpk and the manifest.
    let unet_dir = dir.join("unet");
    let config = tiny_unet();
    config
        .init(&device)
        .unwrap()
        .save(&config, &unet_dir)
        .unwrap();
    let load_unet = || UNet::load(&unet_dir, &device).map(|_| ());
    for file in ["config.json", "weights.bpk", "checksums"] {
        let path = unet_dir.join(file);
        tried += corrupt_each(&path, &load_unet, &refused_naming(&path));
    }
    // Without a manifest (a directory of burn-diffusion 0.1): another type's JSON, another
    // model's config and a truncated config are errors naming config.json.
    std::fs::remove_file(unet_dir.join("checksums")).unwrap();
    load_unet().unwrap();
    let other = tiny_unet().with_base_channels(16);
    for (what, content) in [
        ("a TrainConfig", serde_json_of(&TrainConfig::new(3))),
        ("another model's config", serde_json_of(&other)),
        ("a truncated config", "{\"in_channels\": 1".to_string()),
    ] {
        let good = std::fs::read(unet_dir.join("config.json")).unwrap();
        std::fs::write(unet_dir.join("config.json"), content).unwrap();
        let e = load_unet().expect_err(what);
        assert!(
            e.to_string().contains("config.json") || e.to_string().contains("weights.bpk"),
            "{what}: {e}"
        );
        std::fs::write(unet_dir.join("config.json"), good).unwrap();
        tried += 1;
    }

    // IDX images and labels, plain and gzipped.
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2];
    images.extend((0..12).map(|i| (i * 20) as u8));
    let labels = vec![0, 0, 8, 1, 0, 0, 0, 3, 7, 1, 4];
    let idx_dir = dir.join("idx");
    std::fs::create_dir_all(&idx_dir).unwrap();
    for gz in [false, true] {
        let encode = |bytes: &[u8]| {
            if gz {
                use std::io::Write;
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(bytes).unwrap();
                e.finish().unwrap()
            } else {
                bytes.to_vec()
            }
        };
        let (ip, lp) = (
            idx_dir.join(format!("images-{gz}")),
            idx_dir.join(format!("labels-{gz}")),
        );
        std::fs::write(&ip, encode(&images)).unwrap();
        std::fs::write(&lp, encode(&labels)).unwrap();
        let load = || ImageDataset::load_idx(&ip, Some(&lp));
        let want = load().unwrap();
        for (path, header) in [(&ip, 16), (&lp, 8)] {
            tried += corrupt_each(path, &load, &|kind, at, result| match result {
                Err(e) => assert!(matches!(e, DiffusionError::Data { .. }), "{e}"),
                Ok(got) => {
                    // A flipped body byte of an uncompressed file loads, with that value
                    // changed. In a gzipped file the CRC-32 covers the data, so only the
                    // header's MTIME, XFL and OS bytes (4..10) can flip, changing nothing.
                    let changed = (got.pixels() != want.pixels()) as usize
                        + (got.labels() != want.labels()) as usize;
                    let expected = if gz {
                        (4..10).contains(&at).then_some(0)
                    } else {
                        (at >= header).then_some(1)
                    };
                    assert!(
                        kind == "flipped" && expected == Some(changed),
                        "{kind} at {at}: loaded"
                    );
                }
            });
        }
    }

    // The digits CSV: non-UTF-8 bytes are refused; a truncation loads only whole rows.
    let csv = dir.join("digits.csv");
    let row = |label: usize| {
        let pixels: Vec<String> = (0..64).map(|i| ((i + label) % 17).to_string()).collect();
        format!("{},{label}\n", pixels.join(","))
    };
    let text: String = (0..3).map(row).collect();
    std::fs::write(&csv, &text).unwrap();
    let load = || ImageDataset::load_digits(&csv);
    let want = load().unwrap();
    tried += corrupt_each(&csv, &load, &|kind, at, result| match result {
        Err(e) => assert!(matches!(e, DiffusionError::Data { .. }), "{e}"),
        Ok(got) => {
            assert_eq!(kind, "truncated", "flipped at {at}: loaded");
            let rows = text[..at].trim_end().lines().count();
            assert!(
                text[..at].ends_with('\n') || text[at..].starts_with('\n'),
                "{at}"
            );
            assert_eq!(got.len(), rows);
            assert_eq!(got.pixels(), &want.pixels()[..rows * 64]);
        }
    });
    println!("{tried} corruptions tried");
    assert!(tried > 1500, "{tried}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `config`'s JSON, as Burn's `Config::save` writes it.
fn serde_json_of<C: burn::config::Config>(config: &C) -> String {
    let path = std::env::temp_dir().join(format!("burn-diffusion-json-{}", std::process::id()));
    config.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(path).unwrap();
    text
}
