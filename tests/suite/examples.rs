//! Every example runs end to end in a tiny configuration. `cargo test` builds the
//! examples next to this test binary (`target/<profile>/examples/`); each is run as a
//! child process with small settings and its outputs are checked.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The built example `name`.
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile = deps.parent().unwrap().parent().unwrap();
    profile
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Runs example `name` with `args`, asserting success; returns its stdout.
pub fn run_example(name: &str, args: &[&str]) -> String {
    let path = example(name);
    assert!(
        path.exists(),
        "{} is not built (cargo test builds the examples)",
        path.display()
    );
    let out = Command::new(&path)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// A fresh output folder for one example run.
pub fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "burn-diffusion-example-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn forward_process_writes_its_strip() {
    let dir = out_dir("forward");
    let png = dir.join("strip.png");
    let stdout = run_example(
        "forward_process",
        &["--rows", "2", "--out", png.to_str().unwrap()],
    );
    assert!(is_png(&png), "{stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn quickstart_trains_samples_and_reports_distances() {
    let dir = out_dir("quickstart");
    let stdout = run_example(
        "quickstart",
        &[
            "--steps",
            "30",
            "--batch",
            "64",
            "--samples",
            "64",
            "--ddim-steps",
            "5",
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    assert!(is_png(&dir.join("quickstart.png")), "{stdout}");
    let log = std::fs::read_to_string(dir.join("loss.csv")).unwrap();
    assert_eq!(log.lines().count(), 31, "header + 30 steps");
    for needle in ["the floor", "DDPM samples", "DDIM samples"] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn mnist_trains_checkpoints_reports_bits_per_dim_and_sample_reads_it() {
    let dir = out_dir("mnist");
    let out = dir.to_str().unwrap();
    // `steps` training steps of 8 digits, grids every 2 steps with 3 sampler steps.
    let mnist = |steps: &str, eval: &str| {
        let args = ["--steps", steps, "--batch", "8", "--sample-every", "2"];
        let more = ["--sample-steps", "3", "--eval", eval, "--out", out];
        run_example("mnist", &[&args[..], &more[..]].concat())
    };
    let stdout = mnist("4", "2");
    for file in [
        "samples-step-000002.png",
        "samples-step-000004.png",
        "samples.png",
    ] {
        assert!(is_png(&dir.join(file)), "{file} missing:\n{stdout}");
    }
    assert!(stdout.contains("bits/dim"), "{stdout}");
    // The shipped digits classifier scores the samples.
    assert!(
        stdout.contains("Fréchet distance in the digits classifier's features"),
        "{stdout}"
    );
    let latest = burn_diffusion::train::Checkpoint::latest(dir.join("checkpoints"))
        .unwrap()
        .unwrap();
    assert_eq!(latest.state().step, 4);
    // A second run with more steps resumes from step 4 instead of starting over.
    let stdout = mnist("6", "0");
    assert!(stdout.contains("resuming from step 4"), "{stdout}");
    // `sample` loads the EMA weights of the latest checkpoint.
    let png = dir.join("grid.png");
    let args = [
        "--run",
        out,
        "--sampler",
        "heun",
        "--steps",
        "3",
        "--count",
        "4",
    ];
    let stdout = run_example(
        "sample",
        &[&args[..], &["--out", png.to_str().unwrap()]].concat(),
    );
    assert!(stdout.contains("step 6") && is_png(&png), "{stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--cond`: a class-conditional run writes one guided grid per scale, reports the bound
/// given the label, and `sample --label` draws a class (an unknown one is refused).
#[test]
fn mnist_cond_writes_guided_class_grids_and_sample_takes_a_label() {
    let dir = out_dir("mnist-cond");
    let out = dir.to_str().unwrap();
    let args = [
        "--cond",
        "--steps",
        "2",
        "--batch",
        "8",
        "--sample-every",
        "2",
    ];
    let more = ["--sample-steps", "2", "--eval", "1", "--out", out];
    let stdout = run_example("mnist", &[&args[..], &more[..]].concat());
    for file in [
        "samples-step-000002.png",
        "samples-guidance-0.png",
        "samples-guidance-1.png",
        "samples-guidance-3.png",
    ] {
        assert!(is_png(&dir.join(file)), "{file} missing:\n{stdout}");
    }
    assert!(stdout.contains("given the label"), "{stdout}");
    let png = dir.join("seven.png");
    let sample = ["--run", out, "--steps", "2", "--count", "2", "--label", "7"];
    run_example(
        "sample",
        &[&sample[..], &["--out", png.to_str().unwrap()]].concat(),
    );
    assert!(is_png(&png));
    let refused = Command::new(example("sample"))
        .args([
            "--run", out, "--steps", "2", "--count", "2", "--label", "11",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--label 11"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// `classifier` trains the digits classifier and writes weights that load.
#[test]
fn classifier_trains_and_writes_its_weights() {
    let dir = out_dir("classifier");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("classifier.bpk");
    let stdout = run_example(
        "classifier",
        &["--steps", "50", "--out", file.to_str().unwrap()],
    );
    assert!(
        stdout.contains("held-out accuracy") && file.exists(),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn vae_trains_and_reports_the_elbo_and_iw_bound() {
    let dir = out_dir("vae");
    let args = [
        "--steps",
        "3",
        "--batch",
        "8",
        "--iw-k",
        "2",
        "--held-out",
        "16",
    ];
    let stdout = run_example(
        "vae",
        &[&args[..], &["--out", dir.to_str().unwrap()]].concat(),
    );
    for file in ["reconstructions.png", "samples.png"] {
        assert!(is_png(&dir.join(file)), "{file} missing:\n{stdout}");
    }
    assert!(stdout.contains("held-out evaluation"), "{stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn examples_answer_help_and_reject_unknown_flags_and_bad_values() {
    let mut names = vec![
        "quickstart",
        "mnist",
        "sample",
        "forward_process",
        "vae",
        "classifier",
    ];
    if cfg!(feature = "diffusers") {
        names.push("baseline");
    }
    for name in names {
        let help = run_example(name, &["--help"]);
        assert!(help.contains("Usage:") && help.contains("--seed"), "{help}");
        let refused = |args: &[&str], expected: &str| {
            let out = Command::new(example(name)).args(args).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr}");
            assert!(stderr.contains(expected), "{name} {args:?}: {stderr}");
        };
        refused(&["--bogus"], "unexpected argument '--bogus'");
        refused(
            &["--seed", "minus-one"],
            "invalid value 'minus-one' for '--seed",
        );
        refused(&["--seed"], "a value is required for '--seed");
    }
    let out = Command::new(example("mnist"))
        .args(["--dataset", "cifar"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2)
            && stderr.contains("[possible values: digits, mnist, fashion-mnist]"),
        "{stderr}"
    );
}

/// `pretrained` samples a diffusers pipeline folder (the ddpm-small fixture with
/// google/ddpm-cifar10-32's scheduler) with its own scheduler and with DDIM.
#[cfg(feature = "diffusers")]
#[test]
fn pretrained_samples_a_pipeline_folder() {
    let dir = out_dir("pretrained");
    crate::diffusers::pipeline_folder(&dir);
    let model = dir.to_str().unwrap();
    for sampler in ["ddim", "scheduler", "dpm-solver", "euler", "unipc"] {
        let png = dir.join(format!("{sampler}.png"));
        let stdout = run_example(
            "pretrained",
            &[
                "--model",
                model,
                "--sampler",
                sampler,
                "--steps",
                "4",
                "--n",
                "3",
                "--batch",
                "2",
                "--out",
                png.to_str().unwrap(),
            ],
        );
        assert!(
            stdout.contains("s per image") && stdout.contains("DDPMScheduler"),
            "{stdout}"
        );
        assert!(is_png(&png), "{sampler}: {stdout}");
    }
    let out = Command::new(example("pretrained"))
        .args(["--model", dir.join("missing").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("model_index.json"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `baseline`: `prepare` writes the PyTorch script's inputs (readable NumPy arrays of the
/// split, the initial UNet as a diffusers folder, the recipe); `export` writes a run of
/// `mnist` as a diffusers folder; and `evaluate` of that folder prints exactly the numbers
/// that `mnist` printed for its own model: one evaluation, whoever trained the model.
#[cfg(feature = "diffusers")]
#[test]
fn baseline_prepares_exports_and_evaluates_as_mnist_does() {
    let dir = out_dir("baseline");
    let (run, prep, ours) = (dir.join("run"), dir.join("prep"), dir.join("ours"));
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let stdout = run_example(
        "baseline",
        &["prepare", "--steps", "5", "--out", &path(&prep)],
    );
    assert!(stdout.contains("701345 parameters"), "{stdout}");
    let recipe = std::fs::read_to_string(prep.join("train.json")).unwrap();
    assert!(recipe.contains("\"steps\": 5") && recipe.contains("\"warmup_steps\": 200"));
    for (file, header) in [
        ("train-images.npy", "'shape': (1541, 1, 8, 8)"),
        ("train-labels.npy", "'shape': (1541,)"),
        ("held-images.npy", "'shape': (256, 1, 8, 8)"),
        ("held-labels.npy", "'shape': (256,)"),
    ] {
        let bytes = std::fs::read(prep.join(file)).unwrap();
        assert!(bytes.starts_with(b"\x93NUMPY\x01\x00"), "{file}");
        let length = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!(
            (10 + length) % 64,
            0,
            "{file}: the header is padded to 64 bytes"
        );
        let text = String::from_utf8_lossy(&bytes[10..10 + length]);
        assert!(
            text.contains(header) && text.ends_with('\n'),
            "{file}: {text}"
        );
        let width = if file.contains("images") { 4 * 64 } else { 8 };
        let count: usize = if file.starts_with("train") { 1541 } else { 256 };
        assert_eq!(bytes.len(), 10 + length + width * count, "{file}");
    }
    let (unet, config) =
        burn_diffusion::diffusers::load_unet(prep.join("init"), &burn::tensor::Device::flex())
            .unwrap();
    let digits = burn_diffusion::model::UNetConfig::digits();
    assert_eq!(burn::module::Module::num_params(&unet), 701_345);
    assert_eq!(
        (
            config.base_channels,
            &config.channel_multipliers,
            config.res_blocks
        ),
        (
            digits.base_channels,
            &digits.channel_multipliers,
            digits.res_blocks
        )
    );
    assert_eq!(config.attention_resolutions, digits.attention_resolutions);

    let numbers = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .filter(|l| l.contains("Fréchet distance") || l.contains("σ"))
            .map(str::to_string)
            .collect()
    };
    let args = ["--steps", "2", "--batch", "8", "--sample-every", "2"];
    let more = ["--sample-steps", "3", "--eval", "2", "--out", &path(&run)];
    let trained = run_example("mnist", &[&args[..], &more[..]].concat());
    let stdout = run_example(
        "baseline",
        &["export", "--run", &path(&run), "--out", &path(&ours)],
    );
    assert!(stdout.contains("step 2"), "{stdout}");
    let scored = run_example(
        "baseline",
        &[
            "evaluate",
            "--model",
            &path(&ours),
            "--eval",
            "2",
            "--sample-steps",
            "3",
        ],
    );
    assert!(is_png(&ours.join("samples.png")), "{scored}");
    let (expected, got) = (numbers(&trained), numbers(&scored));
    assert_eq!(expected.len(), 4, "{trained}");
    assert_eq!(got, expected, "{scored}");

    // A folder of another image size is refused with both sizes named.
    let out = Command::new(example("baseline"))
        .args(["--dataset", "mnist", "evaluate", "--model", &path(&ours)])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && stderr.contains("a model of 1×8×8 images"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
