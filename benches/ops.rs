//! Per-op Criterion benchmarks at the shapes of the reference UNet's 28×28 preset
//! (`UNetConfig::mnist()`, batch 32): 3×3 convolutions forward and forward + backward at
//! each level's width, GroupNorm (8 groups) forward and GroupNorm + SiLU forward +
//! backward, SiLU forward and forward + backward (each as Burn's op or composition and
//! as `burn_diffusion::fused`'s op), an
//! elementwise add, the skip connection's `cat`, one-head self-attention at 7×7, and an
//! AdamW step over as many parameters as the UNet has.
//! `benches/pytorch_ops.py` times the same ops in PyTorch; the table is in
//! docs/benchmarks.md.
//!
//! ```text
//! cargo bench --bench ops                      # Flex
//! BENCH_DEVICES=flex,ndarray cargo bench --bench ops
//! ```
//!
//! Each call ends with a one-element read of its result (Flex runs ops eagerly; the
//! read waits for them, and copies 4 bytes).

use std::hint::black_box;
use std::time::Duration;

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, Tensor};
use burn_diffusion::{fused, noise::randn};
use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/mod.rs"]
mod common;
use common::{ScalarAt, devices};

const BATCH: usize = 32;
/// (channels, side) of the UNet's three levels.
const LEVELS: [(usize, usize); 3] = [(32, 28), (64, 14), (64, 7)];

/// Reads one element of `x`: waits for the ops that made it.
fn sync<const D: usize>(x: Tensor<D>) -> f32 {
    x.into_scalar_at(0)
}

fn conv3(channels: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels, channels], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

fn bench_ops(c: &mut Criterion) {
    let mut group = c.benchmark_group("ops_unet_mnist_b32");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, device) in devices("flex") {
        let ad = device.clone().autodiff();
        for (channels, side) in LEVELS {
            let shape = [BATCH, channels, side, side];
            let x = randn::<4>(shape, 1, &device);
            let conv = conv3(channels, &device);
            group.bench_function(format!("conv3x3_fwd/{channels}x{side}/{name}"), |b| {
                b.iter(|| black_box(sync(conv.forward(x.clone()))))
            });
            let conv_ad = conv3(channels, &ad);
            let x_ad = randn::<4>(shape, 1, &ad).require_grad();
            group.bench_function(format!("conv3x3_fwd_bwd/{channels}x{side}/{name}"), |b| {
                b.iter(|| {
                    let grads = conv_ad.forward(x_ad.clone()).sum().backward();
                    black_box(sync(x_ad.grad(&grads).expect("a gradient")))
                })
            });
            group.bench_function(format!("conv3x3_fused_fwd/{channels}x{side}/{name}"), |b| {
                b.iter(|| black_box(sync(fused::conv2d(x.clone(), &conv))))
            });
            group.bench_function(
                format!("conv3x3_fused_fwd_bwd/{channels}x{side}/{name}"),
                |b| {
                    b.iter(|| {
                        let grads = fused::conv2d(x_ad.clone(), &conv_ad).sum().backward();
                        black_box(sync(x_ad.grad(&grads).expect("a gradient")))
                    })
                },
            );
            let norm: GroupNorm = GroupNormConfig::new(8, channels).init(&device);
            group.bench_function(format!("group_norm/{channels}x{side}/{name}"), |b| {
                b.iter(|| black_box(sync(norm.forward(x.clone()))))
            });
            group.bench_function(format!("group_norm_fused/{channels}x{side}/{name}"), |b| {
                b.iter(|| black_box(sync(fused::group_norm(x.clone(), &norm))))
            });
            let norm_ad: GroupNorm = GroupNormConfig::new(8, channels).init(&ad);
            group.bench_function(
                format!("group_norm_silu_fwd_bwd/{channels}x{side}/{name}"),
                |b| {
                    b.iter(|| {
                        let y = silu(norm_ad.forward(x_ad.clone()));
                        let grads = y.sum().backward();
                        black_box(sync(x_ad.grad(&grads).expect("a gradient")))
                    })
                },
            );
            group.bench_function(
                format!("group_norm_silu_fused_fwd_bwd/{channels}x{side}/{name}"),
                |b| {
                    b.iter(|| {
                        let y = fused::group_norm_silu(x_ad.clone(), &norm_ad);
                        let grads = y.sum().backward();
                        black_box(sync(x_ad.grad(&grads).expect("a gradient")))
                    })
                },
            );
        }
        let (channels, side) = LEVELS[0];
        let shape = [BATCH, channels, side, side];
        let x = randn::<4>(shape, 1, &device);
        let y = randn::<4>(shape, 2, &device);
        group.bench_function(format!("silu/{channels}x{side}/{name}"), |b| {
            b.iter(|| black_box(sync(silu(x.clone()))))
        });
        let x_ad = randn::<4>(shape, 1, &ad).require_grad();
        group.bench_function(format!("silu_fwd_bwd/{channels}x{side}/{name}"), |b| {
            b.iter(|| {
                let grads = silu(x_ad.clone()).sum().backward();
                black_box(sync(x_ad.grad(&grads).expect("a gradient")))
            })
        });
        group.bench_function(format!("silu_fused/{channels}x{side}/{name}"), |b| {
            b.iter(|| black_box(sync(fused::silu(x.clone()))))
        });
        group.bench_function(
            format!("silu_fused_fwd_bwd/{channels}x{side}/{name}"),
            |b| {
                b.iter(|| {
                    let grads = fused::silu(x_ad.clone()).sum().backward();
                    black_box(sync(x_ad.grad(&grads).expect("a gradient")))
                })
            },
        );
        group.bench_function(format!("add/{channels}x{side}/{name}"), |b| {
            b.iter(|| black_box(sync(x.clone() + y.clone())))
        });
        let (channels, side) = LEVELS[1];
        let shape = [BATCH, channels, side, side];
        let (a, b2) = (randn::<4>(shape, 3, &device), randn::<4>(shape, 4, &device));
        group.bench_function(format!("cat_channels/2x{channels}x{side}/{name}"), |b| {
            b.iter(|| black_box(sync(Tensor::cat(vec![a.clone(), b2.clone()], 1))))
        });
        let (channels, side) = LEVELS[2];
        let tokens = side * side;
        let [q, k, v] = [5, 6, 7].map(|s| randn::<3>([BATCH, tokens, channels], s, &device));
        let scale = (channels as f64).powf(-0.5);
        group.bench_function(format!("attention/{tokens}x{channels}/{name}"), |b| {
            b.iter(|| {
                let w = softmax(q.clone().matmul(k.clone().swap_dims(1, 2)) * scale, 2);
                black_box(sync(w.matmul(v.clone())))
            })
        });
        // One AdamW step over the UNet's 1,623,169 parameters as one tensor, after the
        // backward of their sum (which gives the gradient).
        let mut model = Flat {
            w: Param::from_tensor(randn::<1>([UNET_PARAMETERS], 8, &ad).require_grad()),
        };
        let mut optim = AdamWConfig::new().init();
        group.bench_function(format!("adamw_step/{UNET_PARAMETERS}/{name}"), |b| {
            b.iter(|| {
                let grads = GradientsParams::from_grads(model.w.val().sum().backward(), &model);
                model = optim.step(1e-4, model.clone(), grads);
                black_box(sync(model.w.val()))
            })
        });
    }
    group.finish();
}

/// The parameters of `UNetConfig::mnist()`, as one tensor.
const UNET_PARAMETERS: usize = 1_623_169;

#[derive(Module, Debug)]
struct Flat {
    w: Param<Tensor<1>>,
}

criterion_group!(benches, bench_ops);
criterion_main!(benches);
