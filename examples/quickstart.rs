//! Train a small MLP denoiser (with sinusoidal features of the points) on a 2-D toy
//! distribution, sample it with DDPM and DDIM, and compare the samples with held-out data.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! Writes `out/quickstart/quickstart.png` (held-out data, DDPM samples and DDIM samples
//! side by side, titled) and prints the sliced Wasserstein distance of each sample set to
//! held-out data next to the distance between two independent draws of the data, the
//! floor that a perfect model reaches, and the share of samples off the data's manifold
//! next to the data's own. The defaults (20,000 steps, a cosine decay from 2·10⁻³, 16
//! sinusoidal features per coordinate) put both samplers within the data's floor on that
//! share, in about a minute on 2 cores (docs/metrics.md).

mod common;

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use burn_diffusion::data::Toy2d;
use burn_diffusion::{
    image::write_png_grid,
    loss::{SimpleLoss, Weighting},
    metrics::{energy_test, off_manifold, sliced_wasserstein},
    model::MlpConfig,
    prediction::Prediction,
    process::VpProcess,
    progress::ConsoleProgress,
    schedule::ScheduleConfig,
    train::{FitOptions, LrSchedule, TrainConfig, Trainer},
};
use clap::{Parser, ValueEnum};
use common::{exit_on_error, sample_with};

/// quickstart: train a denoiser on a 2-D toy distribution, sample it with DDPM and DDIM,
/// and compare the samples with held-out data
#[derive(Parser, Debug)]
#[command(name = "quickstart")]
struct Args {
    /// toy distribution: moons | swiss-roll | 8gaussians
    #[arg(long, default_value_t = Toy2d::TwoMoons)]
    data: Toy2d,
    /// training steps
    #[arg(long, default_value_t = 20_000)]
    steps: usize,
    /// batch size
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// peak learning rate
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// the learning rate after the warmup: constant, or decayed to 0 by a cosine or a
    /// linear ramp
    #[arg(long, value_enum, default_value_t = Decay::Cosine)]
    lr_schedule: Decay,
    /// width of the MLP's hidden layers
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// sinusoidal features of each coordinate fed to the MLP (0: the coordinates alone;
    /// see MlpConfig::input_embedding)
    #[arg(long, default_value_t = 16)]
    input_embedding: usize,
    /// decay of the EMA of the weights that sample
    #[arg(long, default_value_t = 0.999)]
    ema: f64,
    /// samples per sampler (and held-out points)
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// DDIM steps
    #[arg(long, default_value_t = 50)]
    ddim_steps: usize,
    /// seed of data, training and sampling
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// output folder
    #[arg(long, default_value = "out/quickstart")]
    out: PathBuf,
}

/// `--lr-schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Decay {
    /// the peak rate throughout
    Constant,
    /// a cosine from the peak rate to 0
    Cosine,
    /// a linear ramp from the peak rate to 0
    Linear,
}

impl Decay {
    fn schedule(self) -> LrSchedule {
        match self {
            Decay::Constant => LrSchedule::Constant,
            Decay::Cosine => LrSchedule::Cosine { min_lr: 0.0 },
            Decay::Linear => LrSchedule::Linear { final_lr: 0.0 },
        }
    }
}

/// Diffusion steps of the process.
const T: usize = 1000;
/// Training examples drawn from the toy distribution.
const TRAIN: usize = 20_000;
/// Held-out sets the distances are averaged over.
const DRAWS: usize = 5;
/// The plotted square [−EXTENT, EXTENT]², and its size in pixels.
const EXTENT: f32 = 4.0;
const PIXELS: usize = 320;

fn main() {
    // Freed buffers are reused instead of returned to the system (see `tuning`).
    burn_diffusion::tuning::keep_freed_memory();
    let Args {
        data: toy,
        steps,
        batch,
        lr,
        lr_schedule,
        hidden,
        input_embedding,
        ema,
        samples,
        ddim_steps,
        seed,
        out,
    } = Args::parse();
    let device = Device::flex();

    // Data: a training set, and DRAWS pairs of held-out sets of `samples` points.
    let train = toy.sample_tensor(TRAIN, seed, &device);
    let held_out: Vec<(Vec<f32>, Vec<f32>)> = (0..DRAWS as u64)
        .map(|k| {
            let draw = |j: u64| flat(&toy.sample(samples, seed + 100 + 2 * k + j));
            (draw(0), draw(1))
        })
        .collect();

    // The model: ε-prediction with the simplified loss (Ho et al. 2020, eq. 14).
    let schedule = exit_on_error(ScheduleConfig::new().with_num_timesteps(T).init());
    let process = VpProcess::new(schedule);
    let loss = exit_on_error(SimpleLoss::new(
        process.clone(),
        Prediction::Epsilon,
        Weighting::Uniform,
    ));
    device.seed(seed); // the initial weights: the same seed, the same run
    let model = exit_on_error(
        MlpConfig::new(2)
            .with_hidden(hidden)
            .with_input_embedding(input_embedding)
            .init(&device),
    );
    let config = TrainConfig::new(steps)
        .with_batch_size(batch)
        .with_learning_rate(lr)
        .with_warmup_steps(steps / 20)
        .with_lr_schedule(lr_schedule.schedule())
        .with_ema_decay(ema)
        .with_seed(seed);
    let mut trainer = exit_on_error(Trainer::new(config, model, loss, &device));
    println!("training an MLP on {toy} for {steps} steps of {batch} ({TRAIN} examples)");
    let options = FitOptions {
        log_csv: Some(out.join("loss.csv")),
        ..FitOptions::default()
    };
    let bar = ConsoleProgress::new(steps, "train");
    let summary =
        exit_on_error(trainer.fit_with(&train, steps, &options, |s| bar.update(s.step, s.loss)));
    bar.finish();
    println!(
        "trained in {:.1} s ({:.0} steps/s), mean loss {:.4}",
        summary.seconds,
        summary.steps as f64 / summary.seconds,
        summary.mean_loss
    );

    // Sampling with the EMA weights: DDPM over all T steps, DDIM (η = 0) over a few.
    let model = trainer.ema_model();
    let schedule = process.schedule();
    let draw = |sampler: &str, steps: usize| {
        let start = std::time::Instant::now();
        let x = exit_on_error(sample_with(
            sampler,
            steps,
            schedule,
            &model,
            [samples, 2],
            &device,
            seed + 3,
        ));
        let points = exit_on_error(x.try_into_vec_as::<f32>().map_err(|e| format!("{e:?}")));
        println!(
            "{} ({steps} steps): {samples} samples in {:.1} s",
            sampler,
            start.elapsed().as_secs_f64()
        );
        points
    };
    let ddpm_points = draw("ddpm", T);
    let ddim_points = draw("ddim", ddim_steps);

    // Sliced 2-Wasserstein distances over 500 directions, each averaged over DRAWS
    // held-out sets: with a few thousand points a single distance fluctuates by ±30%.
    let distance = |points: &dyn Fn(usize) -> Vec<f32>| {
        let d: Vec<f64> = (0..DRAWS)
            .map(|k| exit_on_error(sliced_wasserstein(&points(k), &held_out[k].0, 2, 500, seed)))
            .collect();
        let mean = d.iter().sum::<f64>() / DRAWS as f64;
        let sd = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (DRAWS - 1) as f64).sqrt();
        format!("{mean:.4} ± {sd:.4}")
    };
    println!(
        "sliced Wasserstein distance to held-out data ({samples} points, mean ± sd over {DRAWS} held-out sets):"
    );
    println!(
        "  another draw of the data (the floor): {}",
        distance(&|k| held_out[k].1.clone())
    );
    println!(
        "  DDPM samples:                         {}",
        distance(&|_| ddpm_points.clone())
    );
    println!(
        "  DDIM samples:                         {}",
        distance(&|_| ddim_points.clone())
    );

    // Off-manifold mass: the share of points whose nearest neighbour among 20,000 fresh
    // data points is farther than it is for 99 % of a held-out draw; and the energy
    // two-sample test against the first held-out set.
    let reference = flat(&toy.sample(20_000, seed + 50));
    let quality = |points: &[f32]| {
        let off = exit_on_error(off_manifold(points, &held_out[0].0, &reference, 2, 0.99));
        let test = exit_on_error(energy_test(points, &held_out[0].0, 2, 99, seed));
        format!(
            "{:5.2} % (z = {:5.1}); energy test p = {:.2}",
            100.0 * off.fraction,
            off.z(),
            test.p_value
        )
    };
    println!(
        "share of points farther from the data than 99 % of held-out data ({samples} points, 20,000 reference points):"
    );
    println!(
        "  another draw of the data (the floor): {}",
        quality(&held_out[1].1)
    );
    println!(
        "  DDPM samples:                         {}",
        quality(&ddpm_points)
    );
    println!(
        "  DDIM samples:                         {}",
        quality(&ddim_points)
    );

    let png = out.join("quickstart.png");
    let panels = [
        panel("held-out data", &held_out[0].0, [40, 90, 200]),
        panel(&format!("DDPM, {T} steps"), &ddpm_points, [220, 110, 20]),
        panel(
            &format!("DDIM, {ddim_steps} steps"),
            &ddim_points,
            [20, 150, 60],
        ),
    ];
    let pixels: Vec<f32> = panels.into_iter().flatten().collect();
    let images = Tensor::<4>::from_data(TensorData::new(pixels, [3, 3, PIXELS, PIXELS]), &device);
    exit_on_error(write_png_grid(&png, images, 3));
    println!("wrote {} (held-out data | DDPM | DDIM)", png.display());
}

/// Points as one flat `[x0, y0, x1, y1, ...]` list.
fn flat(points: &[[f32; 2]]) -> Vec<f32> {
    points.iter().flatten().copied().collect()
}

/// An RGB scatter plot `[3, PIXELS, PIXELS]` in [−1, 1] of `points` (flat x, y pairs) on
/// white, with faint axes through the origin and `title` at the top left.
fn panel(title: &str, points: &[f32], color: [u8; 3]) -> Vec<f32> {
    let mut rgb = vec![1.0f32; 3 * PIXELS * PIXELS];
    let to_pixel = |v: f32| ((v + EXTENT) / (2.0 * EXTENT) * PIXELS as f32).floor() as isize;
    let mut set = |row: usize, col: usize, c: [u8; 3]| {
        for (k, level) in c.iter().enumerate() {
            rgb[(k * PIXELS + row) * PIXELS + col] = f32::from(*level) / 127.5 - 1.0;
        }
    };
    let middle = PIXELS / 2;
    for i in 0..PIXELS {
        set(middle, i, [215, 215, 215]);
        set(i, middle, [215, 215, 215]);
    }
    for p in points.chunks(2) {
        let (col, row) = (to_pixel(p[0]), to_pixel(-p[1]));
        for (r, c) in [
            (row, col),
            (row + 1, col),
            (row, col + 1),
            (row + 1, col + 1),
        ] {
            if (0..PIXELS as isize).contains(&r) && (0..PIXELS as isize).contains(&c) {
                set(r as usize, c as usize, color);
            }
        }
    }
    // The title in font8x8's glyphs at twice their size (bit j of row r: column j).
    for (i, ch) in title.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY
            .get(ch as usize)
            .copied()
            .unwrap_or([0; 8]);
        for (r, bits) in glyph.iter().enumerate() {
            for j in (0..8).filter(|j| bits >> j & 1 == 1) {
                let (row, col) = (6 + 2 * r, 8 + 16 * i + 2 * j);
                for (dr, dc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    if col + dc < PIXELS {
                        set(row + dr, col + dc, [30, 30, 30]);
                    }
                }
            }
        }
    }
    rgb
}
