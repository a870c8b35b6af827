//! Training killed with SIGKILL at every moment of a checkpoint write, and at arbitrary
//! moments of training, resumes every time and ends with the weights of a run that was
//! never interrupted.
//!
//! The training runs in child processes of this test binary (`crash_child`, ignored
//! unless called). The crate's private pause points (`BURN_DIFFUSION_PAUSE_AT =
//! point:step`) stop a child at one exact moment of a checkpoint write and report it on
//! stderr; the parent then kills it with SIGKILL (`Child::kill`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::{
    data::Toy2d,
    loss::{SimpleLoss, Weighting},
    model::MlpConfig,
    prediction::Prediction,
    process::VpProcess,
    schedule::ScheduleConfig,
    train::{Checkpoint, Examples, FitOptions, LrSchedule, TimestepSampling, TrainConfig, Trainer},
};

use crate::common::{scratch, weights};

/// Steps of every run.
const STEPS: usize = 10;

/// The child: trains the MLP of `BURN_DIFFUSION_CRASH_ROOT` to `STEPS`, resuming from its
/// `latest` checkpoint if there is one, checkpointing every step (two kept). The run has
/// every piece of state a checkpoint holds: labels with label dropout, importance-sampled
/// timesteps (their loss history) and a cosine learning rate.
#[test]
#[ignore = "a child process of the crash tests"]
fn crash_child() {
    let root = PathBuf::from(std::env::var_os("BURN_DIFFUSION_CRASH_ROOT").unwrap());
    let device = Device::flex();
    device.seed(5);
    let schedule = ScheduleConfig::new().with_num_timesteps(50).init().unwrap();
    let loss = SimpleLoss::new(
        VpProcess::new(schedule),
        Prediction::Epsilon,
        Weighting::Uniform,
    )
    .unwrap();
    let config = TrainConfig::new(STEPS)
        .with_batch_size(16)
        .with_learning_rate(1e-3)
        .with_warmup_steps(2)
        .with_lr_schedule(LrSchedule::Cosine { min_lr: 1e-4 })
        .with_timestep_sampling(TimestepSampling::LossSecondMoment {
            history: 1,
            uniform_prob: 0.2,
        })
        .with_p_uncond(0.3)
        .with_null_label(Some(4))
        .with_checkpoint_every(1)
        .with_keep_checkpoints(2)
        .with_seed(11);
    let model = mlp().init(&device).unwrap();
    let mut trainer = Trainer::new(config, model, loss, &device).unwrap();
    if let Some(checkpoint) = Checkpoint::latest(&root).unwrap() {
        trainer = trainer.resume(&checkpoint).unwrap();
    }
    let data = Toy2d::TwoMoons.sample_tensor(64, 0, &device);
    let labels: Vec<i64> = (0..64).map(|i| i % 4).collect();
    let labels = Tensor::<1, Int>::from_ints(labels.as_slice(), &device);
    let options = FitOptions {
        checkpoint_dir: Some(root),
        ..FitOptions::default()
    };
    let examples = Examples::labeled(&data, &labels).unwrap();
    trainer.fit(examples, STEPS, &options).unwrap();
    if std::env::var_os("BURN_DIFFUSION_CRASH_SAVE_AGAIN").is_some() {
        // The step `latest` names, written again.
        trainer
            .save_checkpoint(options.checkpoint_dir.unwrap())
            .unwrap();
    }
}

/// The child's model: an MLP for 4 classes and the null label.
fn mlp() -> MlpConfig {
    MlpConfig::new(2).with_hidden(16).with_num_classes(Some(4))
}

fn spawn(root: &Path, pause_at: Option<&str>) -> Child {
    spawn_with(root, pause_at, false)
}

fn spawn_with(root: &Path, pause_at: Option<&str>, save_again: bool) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--ignored", "--exact", "crash::crash_child", "--nocapture"])
        .env("BURN_DIFFUSION_CRASH_ROOT", root)
        .env_remove("BURN_DIFFUSION_PAUSE_AT")
        .env_remove("BURN_DIFFUSION_CRASH_SAVE_AGAIN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(point) = pause_at {
        command.env("BURN_DIFFUSION_PAUSE_AT", point);
    }
    if save_again {
        command.env("BURN_DIFFUSION_CRASH_SAVE_AGAIN", "1");
    }
    command.spawn().unwrap()
}

/// Runs a child until it reports the pause point, then SIGKILLs it.
fn kill_at(root: &Path, point: &str) {
    kill_child_at(spawn(root, Some(point)), point);
}

fn kill_child_at(mut child: Child, point: &str) {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let paused = stderr
        .lines()
        .map_while(Result::ok)
        .any(|line| line == format!("paused at {point}"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(paused, "the child never reached {point}");
}

/// Runs a child for `millis` milliseconds (or until it ends), then SIGKILLs it.
fn kill_after(root: &Path, millis: u64) {
    let mut child = spawn(root, None);
    std::thread::sleep(Duration::from_millis(millis));
    let _ = child.kill();
    child.wait().unwrap();
}

/// Runs a child to the end; it must succeed.
fn finish(root: &Path) {
    let output = spawn(root, None).wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the resumed run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn final_weights(root: &Path) -> (Vec<f32>, Vec<f32>) {
    let checkpoint = Checkpoint::latest(root).unwrap().unwrap();
    assert_eq!(checkpoint.state().step, STEPS);
    let device = Device::flex();
    let model = checkpoint.load_model(mlp().init(&device).unwrap()).unwrap();
    let ema = checkpoint.load_ema(mlp().init(&device).unwrap()).unwrap();
    (weights(&model), weights(&ema))
}

#[test]
fn sigkill_at_every_moment_of_a_checkpoint_then_resume_ends_like_an_uninterrupted_run() {
    let dir = scratch("crash", "sigkill");
    let reference = dir.join("uninterrupted");
    finish(&reference);

    let root = dir.join("killed");
    // Inside a checkpoint write (one file written, then before the manifest), between
    // publishing a step and updating `latest`, then while that orphaned step is written
    // again (its old directory moved aside), after `latest` and before pruning.
    for point in [
        "writing:2",
        "manifest:3",
        "published:4",
        "replacing:4",
        "latest:5",
        "published:6",
        "writing:6",
        "published:7",
        "latest:7",
    ] {
        kill_at(&root, point);
        // Whatever the moment, `latest` names a complete checkpoint that loads.
        let latest = Checkpoint::latest(&root).unwrap().unwrap();
        latest
            .load_model(mlp().init(&Device::flex()).unwrap())
            .unwrap();
    }
    // And at moments nobody chose: the child is killed a few milliseconds in (process
    // start-up, a training step, or a write).
    for millis in [5, 20, 40, 80] {
        kill_after(&root, millis);
    }
    finish(&root);
    let want = final_weights(&reference);
    assert!(
        final_weights(&root) == want,
        "the weights differ from an uninterrupted run's"
    );
    // The step `latest` names saved again, killed with the old directory moved aside and
    // the new one not yet in place: `latest` restores the old one.
    kill_child_at(
        spawn_with(&root, Some("replacing:10"), true),
        "replacing:10",
    );
    assert!(
        final_weights(&root) == want,
        "the restored checkpoint differs"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
