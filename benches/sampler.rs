//! Criterion benchmarks of the samplers' overhead: everything but the model. DDPM over
//! 1000 steps and DDIM over 50 (η = 0) on a `[64, 1, 28, 28]` batch with a trivial model
//! (output = input · 0.1), through [`sample`] (host noise included; for DDPM also with
//! device noise) and through
//! [`ReverseSampler::step`] called directly (one noise tensor made once), on Flex. The
//! last sample is read back once per run so that the timing includes all the work.
//!
//! ```text
//! cargo bench --bench sampler
//! BENCH_DEVICES=flex,ndarray cargo bench --bench sampler
//! ```
//!
//! The same loops in PyTorch + diffusers: `benches/pytorch_sampler.py`. Figures and ratios
//! in docs/benchmarks.md.

use std::hint::black_box;
use std::time::Duration;

use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::{
    ReverseSampler,
    noise::randn,
    prediction::VarianceKind,
    process::VpProcess,
    sampler::{DdimSampler, DdpmSampler, NoiseSource, SampleOptions, X0Options, sample},
    schedule::{ScheduleConfig, Spacing},
};
use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/mod.rs"]
mod common;
use common::{ScalarAt, devices};

const SHAPE: [usize; 4] = [64, 1, 28, 28];

/// The trivial model: all the time spent is the sampler's.
fn model(x: Tensor<4>, _t: Tensor<1, Int>) -> Tensor<4> {
    x * 0.1
}

/// The whole chain through `sample` with noise from `noise`, the final sample read back.
fn run_sample<S: ReverseSampler<4>>(sampler: &S, device: &Device, noise: NoiseSource) -> f32 {
    let x_t = randn(SHAPE, 0, device);
    let options = SampleOptions {
        noise,
        ..SampleOptions::default()
    };
    let out = sample(sampler, &model, x_t, options, |_, _| {}).unwrap();
    out.sample.into_scalar_at(0)
}

/// The whole chain calling `step` directly with the model's output computed inline and one
/// noise tensor reused: the step's own arithmetic, without the driver or noise generation.
fn run_steps<S: ReverseSampler<4>>(sampler: &S, device: &Device) -> f32 {
    let mut x = randn(SHAPE, 0, device);
    let noise = randn(SHAPE, 1, device);
    let mut state = S::State::default();
    for i in 0..sampler.timesteps().len() {
        let output = x.clone() * 0.1;
        let z = sampler.needs_noise(i).then(|| noise.clone());
        x = sampler.step(&mut state, i, x, output, z).unwrap().x_prev;
    }
    x.into_scalar_at(0)
}

fn bench(c: &mut Criterion) {
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    let ddpm = DdpmSampler::new(
        process.clone(),
        VarianceKind::FixedSmall,
        X0Options::default(),
    )
    .unwrap();
    let ddim = DdimSampler::with_spacing(
        process,
        &Spacing::Leading {
            steps: 50,
            offset: 1,
        },
        0.0,
        X0Options::default(),
    )
    .unwrap();
    for (name, device) in devices("flex") {
        let mut group = c.benchmark_group(format!("sampler/{name}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(20));
        group.bench_function("ddpm_1000_sample", |b| {
            b.iter(|| black_box(run_sample(&ddpm, &device, NoiseSource::Host)))
        });
        group.bench_function("ddpm_1000_sample_device_noise", |b| {
            b.iter(|| black_box(run_sample(&ddpm, &device, NoiseSource::Device)))
        });
        group.bench_function("ddpm_1000_step", |b| {
            b.iter(|| black_box(run_steps(&ddpm, &device)))
        });
        group.bench_function("ddim_50_sample", |b| {
            b.iter(|| black_box(run_sample(&ddim, &device, NoiseSource::Host)))
        });
        group.bench_function("ddim_50_step", |b| {
            b.iter(|| black_box(run_steps(&ddim, &device)))
        });
        // The N(0, 1) draws of one DDPM step: the seeded host generator, uploaded.
        group.bench_function("randn_one_step", |b| {
            b.iter(|| black_box(randn::<4>(SHAPE, 3, &device).into_scalar_at(0)))
        });
        // The floor of a step: ten chained elementwise ops on one batch, read once.
        let x = randn::<4>(SHAPE, 2, &device);
        group.bench_function("ten_elementwise_ops", |b| {
            b.iter(|| {
                let y = (0..10).fold(x.clone(), |y, _| y * 0.999);
                black_box(y.into_scalar_at(0))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
