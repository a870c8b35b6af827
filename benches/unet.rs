//! Criterion benchmarks of the reference UNet's 28×28 preset (`UNetConfig::mnist()`) at
//! batch 32: a forward pass, and a training step (forward + backward + AdamW), on the
//! Flex and NdArray CPU devices. Peak heap memory of one call of each is measured with a
//! counting allocator and printed.
//!
//! ```text
//! cargo bench --bench unet                       # both devices
//! BENCH_DEVICES=flex cargo bench --bench unet    # one device
//! ```
//!
//! Figures and the PyTorch comparison are in docs/benchmarks.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Int, Tensor};
use burn_diffusion::{
    Denoiser, Loss,
    loss::{SimpleLoss, Weighting, uniform_timesteps},
    model::{UNet, UNetConfig},
    noise::randn,
    prediction::Prediction,
    process::VpProcess,
    schedule::ScheduleConfig,
};
use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/mod.rs"]
mod common;
use common::devices;

/// The system allocator, counting live bytes and their peak.
struct PeakAlloc;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// Peak heap bytes above the starting level while `f` runs.
fn peak_bytes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = CURRENT.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - start)
}

const BATCH: usize = 32;
const STEPS: usize = 1000;

fn forward(model: &UNet, x: &Tensor<4>, t: &Tensor<1, Int>) -> Vec<f32> {
    let out = model.denoise(x.clone(), t.clone(), None);
    out.try_into_vec_as::<f32>().expect("readable output")
}

fn bench_unet(c: &mut Criterion) {
    let config = UNetConfig::mnist();
    let process = VpProcess::new(ScheduleConfig::new().init().expect("schedule"));
    let loss = SimpleLoss::new(process, Prediction::Epsilon, Weighting::Uniform).expect("loss");
    let mut group = c.benchmark_group("unet_mnist_b32");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for (name, device) in devices("flex,ndarray") {
        let model = config.init(&device).expect("unet");
        println!("UNetConfig::mnist(): {} parameters", model.num_params());
        let x = randn::<4>([BATCH, 1, 28, 28], 1, &device);
        let t = uniform_timesteps(BATCH, STEPS, 2, &device).unwrap();
        let (_, fwd_peak) = peak_bytes(|| forward(&model, &x, &t));
        group.bench_function(format!("forward/{name}"), |b| {
            b.iter(|| black_box(forward(&model, &x, &t)))
        });

        let ad = device.clone().autodiff();
        let mut model = Some(config.init(&ad).expect("unet").train());
        let mut optim = AdamWConfig::new().init();
        let x0 = randn::<4>([BATCH, 1, 28, 28], 3, &ad).tanh();
        let noise = randn::<4>([BATCH, 1, 28, 28], 4, &ad);
        let t = uniform_timesteps(BATCH, STEPS, 5, &ad).unwrap();
        let mut step = || {
            let m = model.take().expect("model");
            let l = loss
                .loss(&m, x0.clone(), &t, noise.clone())
                .expect("loss")
                .loss
                .mean();
            let value: f32 = l.clone().into_scalar();
            let grads = GradientsParams::from_grads(l.backward(), &m);
            model = Some(optim.step(1e-4, m, grads));
            value
        };
        let start = Instant::now();
        let (_, train_peak) = peak_bytes(&mut step);
        let first_step = start.elapsed().as_secs_f64();
        println!(
            "peak heap above baseline, {name}: forward {:.1} MiB, train step {:.1} MiB; first train step {first_step:.1} s",
            fwd_peak as f64 / (1 << 20) as f64,
            train_peak as f64 / (1 << 20) as f64
        );
        // NdArray's train step takes minutes: 10 Criterion samples only on request.
        if name == "ndarray" && std::env::var("BENCH_NDARRAY_TRAIN").is_err() {
            let start = Instant::now();
            black_box(step());
            println!(
                "train_step/{name}: one timed step {:.1} s (set BENCH_NDARRAY_TRAIN=1 for Criterion)",
                start.elapsed().as_secs_f64()
            );
            continue;
        }
        group.bench_function(format!("train_step/{name}"), |b| {
            b.iter(|| black_box(step()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_unet);
criterion_main!(benches);
