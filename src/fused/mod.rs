//! Fused ops for the reference UNet's hot path, with a plain-Burn fallback everywhere.
//!
//! Burn computes `activation::silu(x)` as `x * sigmoid(x)`: two passes forward, and under
//! autodiff two nodes that keep both `x` and `σ(x)` for the backward, which then takes
//! several more passes. [`silu`] here is one pass forward and one pass backward, keeps
//! only `x`, and on the Flex backend runs a vectorized, multi-threaded kernel (at the
//! UNet's largest shape 15× faster than the composition forward, 4× forward + backward;
//! see docs/benchmarks.md).
//!
//! The ops are a Burn backend extension ([`FusedOps`], through Burn's
//! `#[backend_extension]`): implemented on Flex (`f32`; other dtypes compose) and on
//! NdArray (the composition, as one node). On every other device the functions here call
//! the plain composition, so they are a drop-in replacement on any backend; results agree
//! with the composition to float32 rounding (tested, values and gradients).
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use burn_diffusion::fused;
//!
//! let device = Device::flex();
//! let x = Tensor::<1>::from_floats([-2.0, 0.0, 3.0], &device);
//! let y = fused::silu(x.clone());
//! let reference = burn::tensor::activation::silu(x);
//! y.into_data().assert_approx_eq::<f32>(&reference.into_data(), Default::default());
//! ```

mod autodiff;
#[cfg(feature = "flex")]
pub mod conv;
mod extension;
#[cfg(feature = "flex")]
mod flex;
pub mod kernels;

use burn::backend::Dispatch;
use burn::nn::{Dropout, GroupNorm, PaddingConfig2d, conv::Conv2d};
use burn::tensor::{Device, Distribution, Tensor, ops::ConvOptions};

pub use extension::FusedOps;

/// SiLU, x · σ(x) element-wise, fused (one pass forward and one backward) where the
/// backend has the kernel.
///
/// # Shapes
///
/// - `x`: any; the output has the same shape.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !routed(&x.device()) {
        return burn::tensor::activation::silu(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::silu(x.into_dispatch()))
}

/// `norm`'s GroupNorm of `x`, fused (statistics, normalization and affine in one node)
/// where the backend has the kernel: the same function as `norm.forward(x)`.
///
/// A non-affine `norm` normalizes with γ = 1, β = 0; an empty batch gives an empty output
/// (where `GroupNorm::forward` panics).
///
/// # Shapes
///
/// - `x`: `[batch, channels, ...]` with `norm.num_channels` channels; the output has the
///   same shape.
///
/// # Panics
///
/// As `GroupNorm::forward`: if `x` does not have `norm.num_channels` channels.
pub fn group_norm<const D: usize>(x: Tensor<D>, norm: &GroupNorm) -> Tensor<D> {
    group_norm_then(x, norm, false)
}

/// `silu(norm.forward(x))`, GroupNorm and SiLU fused into one node (one pass forward
/// after the statistics, and one backward) where the backend has the kernel: the
/// pre-activation of every residual block of the UNet.
///
/// # Shapes
///
/// - `x`: `[batch, channels, ...]` with `norm.num_channels` channels; the output has the
///   same shape.
///
/// # Panics
///
/// As `GroupNorm::forward`: if `x` does not have `norm.num_channels` channels.
pub fn group_norm_silu<const D: usize>(x: Tensor<D>, norm: &GroupNorm) -> Tensor<D> {
    group_norm_then(x, norm, true)
}

fn group_norm_then<const D: usize>(x: Tensor<D>, norm: &GroupNorm, then_silu: bool) -> Tensor<D> {
    let shape = x.shape();
    if shape.num_elements() == 0 {
        // Nothing to normalize (Burn's `GroupNorm::forward` panics on an empty batch).
        return x;
    }
    if !routed(&x.device()) || D < 3 {
        let y = norm.forward(x);
        return if then_silu { silu(y) } else { y };
    }
    assert_eq!(
        shape[1], norm.num_channels,
        "group_norm: the input has {} channels, the GroupNorm {}",
        shape[1], norm.num_channels
    );
    let device = x.device();
    let c = norm.num_channels;
    let gamma = norm
        .gamma
        .as_ref()
        .map(|p| p.val())
        .unwrap_or_else(|| Tensor::ones([c], &device));
    let beta = norm
        .beta
        .as_ref()
        .map(|p| p.val())
        .unwrap_or_else(|| Tensor::zeros([c], &device));
    let x: Tensor<3> = x.reshape([shape[0] as i64, c as i64, -1]);
    let y = <Dispatch as FusedOps>::group_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        norm.num_groups,
        norm.epsilon,
        then_silu,
    );
    Tensor::<3>::from_dispatch(y).reshape(shape)
}

/// `conv`'s 2-D convolution of `x`, as one node whose backward computes the three
/// gradients together, and on Flex (`f32`, one group) im2col with a matrix multiply
/// forward and backward ([`conv`]): the same function as `conv.forward(x)`.
///
/// A `Same`-padded or grouped `conv`, or an input whose channels do not match, is handed
/// to `conv.forward` as it is.
///
/// # Shapes
///
/// - `x`: `[batch, channels_in, height, width]`; the output: `[batch, channels_out,
///   height_out, width_out]`, as `Conv2d::forward`.
///
/// # Panics
///
/// As `Conv2d::forward`: if `x` does not have the convolution's input channels.
pub fn conv2d(x: Tensor<4>, conv: &Conv2d) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        // burn-nn computes "same" padding from the input size; leave it to Burn.
        PaddingConfig2d::Same => return conv.forward(x),
    };
    if !routed(&x.device()) || conv.groups != 1 || x.dims()[1] != conv.weight.dims()[1] {
        return conv.forward(x);
    }
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, 1);
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([conv.weight.dims()[0]], &x.device()),
    };
    let y = <Dispatch as FusedOps>::convolution(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.into_dispatch(),
        options,
    );
    Tensor::from_dispatch(y)
}

/// `dropout`'s inverted dropout of `x`: during training on an autodiff device, each
/// element is kept with probability `1 − dropout.prob` (rounded to a multiple of 2⁻²⁴)
/// and scaled by `1 / (1 − prob)`, the rest set to `x · 0`; otherwise `x` unchanged, as
/// `Dropout::forward`.
///
/// The mask is not Burn's: it is a counter-based stream ([`kernels::dropout_keeps`])
/// whose seed is drawn from the device's generator, so `device.seed(s)` still makes a
/// run reproducible, and the backward regenerates the mask from the seed instead of
/// keeping it. On Flex one vectorized pass on rayon's threads (Burn draws the mask on
/// the host, element by element, then multiplies twice).
///
/// # Shapes
///
/// - `x`: any; the output has the same shape.
pub fn dropout<const D: usize>(x: Tensor<D>, dropout: &Dropout) -> Tensor<D> {
    let device = x.device();
    let active = dropout.training.is_enabled() && device.is_autodiff() && dropout.prob > 0.0;
    if !active || !routed(&device) || x.shape().num_elements() == 0 {
        return dropout.forward(x);
    }
    // 48 random bits from the device's generator (two f32 uniforms on [0, 1), 24 bits
    // each).
    let draws = Tensor::<1>::random([2], Distribution::Uniform(0.0, 1.0), &device.inner());
    let bits: Vec<f32> = draws.into_data().try_to_vec().expect("f32 uniforms");
    let word = |u: f32| (f64::from(u) * f64::from(1u32 << 24)) as u64;
    let seed = (word(bits[0]) << 24) | word(bits[1]);
    let y = <Dispatch as FusedOps>::dropout(x.into_dispatch(), seed, 1.0 - dropout.prob);
    Tensor::from_dispatch(y)
}

/// Whether `device` (under autodiff or not) is one that [`FusedOps`] is implemented for.
fn routed(device: &Device) -> bool {
    #[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(unused_imports))]
    use burn::backend::DispatchDevice;
    match device.clone().inner().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => true,
        #[cfg(feature = "ndarray")]
        DispatchDevice::NdArray(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    #[allow(deprecated)] // NdArray is deprecated in Burn 0.22 and still a device of the suite.
    fn devices() -> Vec<Device> {
        vec![Device::flex(), Device::ndarray()]
    }

    fn assert_close(a: Tensor<4>, b: Tensor<4>, what: &str) {
        let (a, b) = (a.into_data(), b.into_data());
        let a: Vec<f32> = a.try_to_vec().unwrap();
        let b: Vec<f32> = b.try_to_vec().unwrap();
        assert_eq!(a.len(), b.len());
        for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
            let ok = (x.is_nan() && y.is_nan())
                || x == y
                || (x - y).abs() <= 8.0 * f32::EPSILON * y.abs().max(1e-3);
            assert!(ok, "{what}[{i}]: {x} against {y}");
        }
    }

    #[test]
    fn silu_matches_the_composition_in_values_and_gradients() {
        for device in devices() {
            for (seed, shape) in [[2, 3, 5, 7], [1, 1, 1, 1], [4, 32, 9, 9]]
                .iter()
                .enumerate()
            {
                device.seed(seed as u64);
                let x = Tensor::<4>::random(*shape, Distribution::Normal(0.0, 4.0), &device);
                let g = Tensor::<4>::random(*shape, Distribution::Normal(0.0, 1.0), &device);
                assert_close(
                    silu(x.clone()),
                    burn::tensor::activation::silu(x.clone()),
                    "silu",
                );

                let grad_of = |f: fn(Tensor<4>) -> Tensor<4>| {
                    let x = x.clone().autodiff().require_grad();
                    let y = f(x.clone()) * g.clone();
                    let grads = y.sum().backward();
                    x.grad(&grads).expect("gradient")
                };
                // Against f64, within the f32 error bound of the product (its condition,
                // and σ's error times its sensitivity): both the fused gradient and the
                // composition's must be.
                let xs: Vec<f32> = x.to_data().try_to_vec().unwrap();
                let gs: Vec<f32> = g.to_data().try_to_vec().unwrap();
                for (what, grad) in [
                    ("fused", grad_of(silu)),
                    ("composed", grad_of(burn::tensor::activation::silu)),
                ] {
                    let grad: Vec<f32> = grad.into_data().try_to_vec().unwrap();
                    for ((&x, &g), &d) in xs.iter().zip(&gs).zip(&grad) {
                        let (x, g) = (f64::from(x), f64::from(g));
                        let s = 1.0 / (1.0 + (-x).exp());
                        let exact = g * s + g * x * s * (1.0 - s);
                        assert!(
                            (f64::from(d) - exact).abs()
                                <= kernels::silu_backward_error_bound(x, g),
                            "{what} ∂silu at x = {x}: {d} against {exact}"
                        );
                    }
                }
            }
        }
    }

    /// A GroupNorm of `gamma.len()` channels in `groups` groups with these parameters.
    fn norm_with(gamma: &[f32], beta: &[f32], groups: usize, device: &Device) -> GroupNorm {
        let param = |v: &[f32]| {
            let t = Tensor::<1>::from_floats(v, device);
            let t = if device.is_autodiff() {
                t.require_grad()
            } else {
                t
            };
            Some(burn::module::Param::from_tensor(t))
        };
        GroupNorm {
            gamma: param(gamma),
            beta: param(beta),
            num_groups: groups,
            num_channels: gamma.len(),
            epsilon: 1e-5,
            affine: true,
        }
    }

    fn values(x: Tensor<1>) -> Vec<f32> {
        x.into_data().try_to_vec().unwrap()
    }

    /// GroupNorm (+ SiLU) in f64 on the host, for `[n, c, len]` in row-major order.
    fn group_norm_f64(
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        [n, c, len]: [usize; 3],
        groups: usize,
        then_silu: bool,
    ) -> Vec<f64> {
        let block = c / groups * len;
        let mut out = vec![0.0; x.len()];
        for b in 0..n * groups {
            let xs = &x[b * block..(b + 1) * block];
            let mean = xs.iter().sum::<f64>() / block as f64;
            let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / block as f64;
            for (i, v) in xs.iter().enumerate() {
                let ch = (b % groups) * (c / groups) + i / len;
                let z = (v - mean) / (var + 1e-5).sqrt() * gamma[ch] + beta[ch];
                out[b * block + i] = if then_silu { z / (1.0 + (-z).exp()) } else { z };
            }
        }
        out
    }

    /// Values and gradients (of Σ y·w) of the fused GroupNorm against the host f64
    /// reference and its central finite differences, which share no code with either the
    /// Flex kernel or the composition.
    #[test]
    fn group_norm_matches_an_f64_reference_and_its_finite_differences() {
        for device in devices() {
            for (case, (dims, groups)) in [
                ([2, 4, 3, 3], 2),
                ([1, 6, 5, 1], 3),
                ([3, 2, 1, 1], 1),
                ([2, 3, 4, 2], 3),
            ]
            .into_iter()
            .enumerate()
            {
                for then_silu in [false, true] {
                    device.seed(case as u64);
                    let [n, c, h, w] = dims;
                    let shape3 = [n, c, h * w];
                    let x = Tensor::<4>::random(dims, Distribution::Normal(0.5, 2.0), &device);
                    let wt = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
                    let gamma: Vec<f32> = (0..c).map(|i| 0.5 + 0.3 * i as f32).collect();
                    let beta: Vec<f32> = (0..c).map(|i| 0.2 * i as f32 - 0.3).collect();
                    let ad = device.clone().autodiff();
                    let norm = norm_with(&gamma, &beta, groups, &ad);
                    let xa = x.clone().autodiff().require_grad();
                    let f = if then_silu {
                        group_norm_silu
                    } else {
                        group_norm
                    };
                    let y = f(xa.clone(), &norm);
                    let grads = (y.clone() * wt.clone()).sum().backward();
                    let got_y = values(y.flatten(0, 3));
                    let got_dx = values(xa.grad(&grads).unwrap().flatten(0, 3));
                    let got_dg = values(norm.gamma.as_ref().unwrap().grad(&grads).unwrap());
                    let got_db = values(norm.beta.as_ref().unwrap().grad(&grads).unwrap());

                    let f64s = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
                    let xs = f64s(values(x.flatten(0, 3)));
                    let ws = f64s(values(wt.flatten(0, 3)));
                    let (gs, bs) = (f64s(gamma.clone()), f64s(beta.clone()));
                    let forward = |xs: &[f64], gs: &[f64], bs: &[f64]| {
                        group_norm_f64(xs, gs, bs, shape3, groups, then_silu)
                    };
                    let loss = |xs: &[f64], gs: &[f64], bs: &[f64]| -> f64 {
                        forward(xs, gs, bs)
                            .iter()
                            .zip(&ws)
                            .map(|(y, w)| y * w)
                            .sum()
                    };
                    let fd = |which: usize, i: usize| {
                        let h = 1e-6;
                        let mut v = [xs.clone(), gs.clone(), bs.clone()];
                        v[which][i] += h;
                        let up = loss(&v[0], &v[1], &v[2]);
                        v[which][i] -= 2.0 * h;
                        (up - loss(&v[0], &v[1], &v[2])) / (2.0 * h)
                    };
                    let what = format!("{dims:?}/{groups} silu {then_silu} on {device:?}");
                    let reference = forward(&xs, &gs, &bs);
                    for (i, (&a, &r)) in got_y.iter().zip(&reference).enumerate() {
                        assert!(
                            (f64::from(a) - r).abs() <= 2e-6 * (1.0 + r.abs()),
                            "{what} y[{i}]"
                        );
                    }
                    for (which, got) in [(0, &got_dx), (1, &got_dg), (2, &got_db)] {
                        let exact: Vec<f64> = (0..got.len()).map(|i| fd(which, i)).collect();
                        let scale = exact.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                        for (i, (&a, &r)) in got.iter().zip(&exact).enumerate() {
                            assert!(
                                (f64::from(a) - r).abs() <= 2e-5 * scale,
                                "{what} gradient {which}[{i}]: {a} against {r}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// At the UNet's shapes (and with several threads' worth of groups), the fused op and
    /// Burn's `GroupNorm` + SiLU agree in values and in all three gradients.
    #[test]
    fn group_norm_silu_matches_burn_at_the_unets_shapes() {
        for device in devices() {
            device.seed(7);
            let dims = [4, 32, 14, 14];
            let x = Tensor::<4>::random(dims, Distribution::Normal(-0.3, 1.5), &device);
            let wt = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let gamma: Vec<f32> = (0..32).map(|i| 1.0 + 0.01 * i as f32).collect();
            let beta: Vec<f32> = (0..32).map(|i| 0.05 * i as f32 - 0.5).collect();
            let run = |fused_op: bool| {
                let ad = device.clone().autodiff();
                let norm = norm_with(&gamma, &beta, 8, &ad);
                let xa = x.clone().autodiff().require_grad();
                let y = if fused_op {
                    group_norm_silu(xa.clone(), &norm)
                } else {
                    burn::tensor::activation::silu(norm.forward(xa.clone()))
                };
                let grads = (y.clone() * wt.clone()).sum().backward();
                [
                    values(y.flatten(0, 3)),
                    values(xa.grad(&grads).unwrap().flatten(0, 3)),
                    values(norm.gamma.as_ref().unwrap().grad(&grads).unwrap()),
                    values(norm.beta.as_ref().unwrap().grad(&grads).unwrap()),
                ]
            };
            let (fused_out, burn_out) = (run(true), run(false));
            for (k, (a, b)) in fused_out.iter().zip(&burn_out).enumerate() {
                let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                for (i, (&u, &v)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (u - v).abs() <= 1e-5 * scale,
                        "output {k}[{i}]: {u} against {v}"
                    );
                }
            }
        }
    }

    #[test]
    fn group_norm_propagates_nan_within_its_group_only_and_handles_non_affine() {
        for device in devices() {
            let mut v: Vec<f32> = (0..16).map(|i| i as f32 * 0.25).collect();
            v[1] = f32::NAN;
            let x = Tensor::<4>::from_data(TensorData::new(v, [1, 4, 2, 2]), &device);
            let norm = norm_with(&[1.0, 2.0, 0.5, 1.5], &[0.0, 0.1, 0.2, 0.3], 2, &device);
            let y = values(group_norm_silu(x.clone(), &norm).flatten(0, 3));
            assert!(y[..8].iter().all(|v| v.is_nan()), "{y:?}");
            assert!(y[8..].iter().all(|v| v.is_finite()), "{y:?}");

            // A transposed (non-contiguous) input.
            let t = Tensor::<4>::random([2, 4, 3, 5], Distribution::Normal(0.0, 1.0), &device)
                .swap_dims(2, 3);
            let (a, b) = (
                values(group_norm_silu(t.clone(), &norm).flatten(0, 3)),
                values(burn::tensor::activation::silu(norm.forward(t)).flatten(0, 3)),
            );
            for (u, v) in a.iter().zip(&b) {
                assert!((u - v).abs() <= 1e-5 * (1.0 + v.abs()), "{u} against {v}");
            }

            let plain: GroupNorm = burn::nn::GroupNormConfig::new(2, 4)
                .with_affine(false)
                .init(&device);
            let x = Tensor::<3>::random([3, 4, 5], Distribution::Normal(0.0, 1.0), &device);
            let (a, b) = (
                values(group_norm(x.clone(), &plain).flatten(0, 2)),
                values(plain.forward(x).flatten(0, 2)),
            );
            for (u, v) in a.iter().zip(&b) {
                assert!((u - v).abs() <= 1e-5 * (1.0 + v.abs()), "{u} against {v}");
            }
        }
    }

    #[test]
    fn empty_batches_give_empty_outputs() {
        for device in devices() {
            let x = Tensor::<4>::zeros([0, 4, 3, 3], &device);
            let norm: GroupNorm = burn::nn::GroupNormConfig::new(2, 4).init(&device);
            assert_eq!(silu(x.clone()).dims(), [0, 4, 3, 3]);
            assert_eq!(group_norm_silu(x, &norm).dims(), [0, 4, 3, 3]);
        }
    }

    #[test]
    fn silu_propagates_nan_and_infinities_like_the_composition() {
        for device in devices() {
            let values = [
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                -100.0,
                100.0,
                0.0,
            ];
            let x = Tensor::<4>::from_data(TensorData::new(values.to_vec(), [1, 1, 2, 3]), &device);
            assert_close(silu(x.clone()), burn::tensor::activation::silu(x), "silu");
        }
    }

    #[test]
    fn silu_of_a_non_contiguous_tensor_and_of_f64() {
        for device in devices() {
            let x = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 3.0), &device);
            let t = x.clone().swap_dims(1, 3);
            assert_close(
                silu(t.clone()),
                burn::tensor::activation::silu(t),
                "transposed",
            );
            let x64 = x.cast(burn::tensor::DType::F64);
            silu(x64.clone()).into_data().assert_approx_eq::<f64>(
                &burn::tensor::activation::silu(x64).into_data(),
                Tolerance::default(),
            );
        }
    }

    /// The convolutions the tests compare: the UNet's 3×3 "same", its stride-2
    /// down-sampling (TensorFlow's padding, bottom and right), a 1×1 without bias, a
    /// dilated one, and a `Same`-padded one (handed to Burn).
    fn convolutions() -> Vec<(&'static str, burn::nn::conv::Conv2dConfig, [usize; 4])> {
        use burn::nn::conv::Conv2dConfig;
        vec![
            (
                "3x3 same",
                Conv2dConfig::new([32, 32], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
                [2, 32, 28, 28],
            ),
            (
                "3x3 stride 2",
                Conv2dConfig::new([8, 8], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(0, 0, 1, 1)),
                [3, 8, 14, 14],
            ),
            (
                "1x1 no bias",
                Conv2dConfig::new([16, 24], [1, 1]).with_bias(false),
                [2, 16, 7, 7],
            ),
            (
                "dilated",
                Conv2dConfig::new([3, 5], [3, 2])
                    .with_dilation([2, 1])
                    .with_padding(PaddingConfig2d::Explicit(2, 0, 1, 3)),
                [2, 3, 9, 8],
            ),
            (
                "same",
                Conv2dConfig::new([4, 4], [3, 3]).with_padding(PaddingConfig2d::Same),
                [2, 4, 6, 6],
            ),
        ]
    }

    /// `conv` with |weight| and |bias|: applied to |x| (and differentiated against |g|)
    /// it gives, per element of each result, the sum of the absolute values of the
    /// products that make it.
    fn abs_conv(conv: &Conv2d) -> Conv2d {
        let mut abs = conv.clone();
        abs.weight =
            burn::module::Param::from_tensor(conv.weight.val().abs().detach().require_grad());
        abs.bias = conv
            .bias
            .as_ref()
            .map(|b| burn::module::Param::from_tensor(b.val().abs().detach()));
        abs
    }

    #[test]
    fn conv2d_matches_burns_convolution_in_values_and_gradients() {
        for device in devices() {
            let ad = device.clone().autodiff();
            for (what, config, shape) in convolutions() {
                ad.seed(7);
                let conv = config.init(&ad);
                let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &ad);
                let g_shape = conv.forward(x.clone()).dims();
                let g = Tensor::<4>::random(g_shape, Distribution::Normal(0.0, 1.0), &ad);
                let run = |f: &dyn Fn(Tensor<4>) -> Tensor<4>,
                           conv: &Conv2d,
                           x: Tensor<4>,
                           g: Tensor<4>| {
                    let x = x.require_grad();
                    let y = f(x.clone());
                    let grads = (y.clone() * g).sum().backward();
                    let wg = conv.weight.grad(&grads).expect("a weight gradient");
                    let bg = conv
                        .bias
                        .as_ref()
                        .map(|b| b.grad(&grads).expect("a bias gradient"));
                    (
                        y.inner(),
                        x.grad(&grads).expect("an input gradient"),
                        wg,
                        bg,
                    )
                };
                let fused = run(&|x| conv2d(x, &conv), &conv, x.clone(), g.clone());
                let burn = run(&|x| conv.forward(x), &conv, x.clone(), g.clone());
                let abs = abs_conv(&conv);
                let bounds = run(&|x| abs.forward(x), &abs, x.abs(), g.abs());
                let [_, c_in, kh, kw] = conv.weight.dims();
                let c_out = conv.weight.dims()[0];
                let pixels = g_shape[0] * g_shape[2] * g_shape[3];
                let compare = |name: &str, a: Vec<f32>, b: Vec<f32>, abs: Vec<f32>, terms| {
                    // Both are f32 sums of the same products: each is within γ_m of the
                    // exact sum (times the sum of absolute values), so they are within 2γ_m
                    // of each other (2.5 for the rounding of the bound itself).
                    let mu = (terms + 8) as f32 * f32::EPSILON / 2.0;
                    assert_eq!(a.len(), b.len());
                    for (i, ((a, b), abs)) in a.iter().zip(&b).zip(&abs).enumerate() {
                        assert!(
                            (a - b).abs() <= 2.5 * mu / (1.0 - mu) * abs,
                            "{what}, {name}[{i}]: {a} against Burn's {b}"
                        );
                    }
                };
                let host = |t: Tensor<4>| -> Vec<f32> { t.into_data().try_to_vec().unwrap() };
                compare(
                    "y",
                    host(fused.0),
                    host(burn.0),
                    host(bounds.0),
                    c_in * kh * kw + 1,
                );
                compare(
                    "dx",
                    host(fused.1),
                    host(burn.1),
                    host(bounds.1),
                    c_out * kh * kw,
                );
                compare("dw", host(fused.2), host(burn.2), host(bounds.2), pixels);
                if let (Some(f), Some(b), Some(abs)) = (fused.3, burn.3, bounds.3) {
                    let host1 = |t: Tensor<1>| -> Vec<f32> { t.into_data().try_to_vec().unwrap() };
                    compare("db", host1(f), host1(b), host1(abs), pixels);
                }
            }
        }
    }

    #[test]
    fn conv2d_without_autodiff_and_without_a_tracked_input() {
        for device in devices() {
            for (what, config, shape) in convolutions() {
                device.seed(3);
                let conv = config.init(&device);
                let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
                let (a, b) = (conv2d(x.clone(), &conv), conv.forward(x.clone()));
                let scale = conv.weight.val().abs().max().into_scalar::<f32>() * 100.0;
                a.into_data()
                    .assert_approx_eq::<f32>(&b.into_data(), Tolerance::absolute(1e-5 * scale));
                // Only the weight tracked (the UNet's first convolution): the input gets
                // no gradient, the weight the same one.
                let ad = device.clone().autodiff();
                let conv_ad = config.init(&ad);
                let x = x.autodiff();
                let grads = conv2d(x.clone(), &conv_ad).sum().backward();
                let reference = conv_ad.forward(x.clone()).sum().backward();
                assert!(
                    x.grad(&grads).is_none(),
                    "{what}: an untracked input has no gradient"
                );
                let w = |g: &burn::tensor::Gradients| conv_ad.weight.grad(g).unwrap().into_data();
                w(&grads).assert_approx_eq::<f32>(&w(&reference), Tolerance::absolute(1e-3));
            }
        }
    }

    #[test]
    #[should_panic(expected = "conv2d")]
    fn conv2d_with_the_wrong_channels_panics_as_burns_does() {
        let device = Device::flex();
        let conv = burn::nn::conv::Conv2dConfig::new([3, 4], [3, 3]).init(&device);
        let _ = conv2d(Tensor::zeros([1, 5, 8, 8], &device), &conv);
    }

    #[test]
    fn conv2d_of_an_empty_batch_is_empty() {
        for device in devices() {
            let conv = burn::nn::conv::Conv2dConfig::new([3, 4], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(&device);
            let y = conv2d(Tensor::zeros([0, 3, 8, 8], &device), &conv);
            assert_eq!(y.dims(), [0, 4, 8, 8]);
        }
    }

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    #[test]
    fn dropout_keeps_each_element_with_its_probability_and_scales_it() {
        for device in devices() {
            let ad = device.clone().autodiff();
            for prob in [0.1, 0.5, 0.9] {
                let layer = burn::nn::DropoutConfig::new(prob).init();
                let shape = [4, 8, 32, 32];
                let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &ad);
                let y = dropout(x.clone(), &layer);
                let (xs, ys) = (host(x), host(y));
                let scale = (1.0 / (1.0 - prob)) as f32;
                let mut kept = 0usize;
                for (&x, &y) in xs.iter().zip(&ys) {
                    if y == 0.0 {
                        continue;
                    }
                    assert_eq!(y, x * scale, "a kept element is x / (1 − p)");
                    kept += 1;
                }
                // Binomial: within 5 standard deviations of n (1 − p).
                let n = xs.len() as f64;
                let sd = (n * prob * (1.0 - prob)).sqrt();
                assert!(
                    (kept as f64 - n * (1.0 - prob)).abs() < 5.0 * sd,
                    "p = {prob}: kept {kept} of {n}"
                );
            }
        }
    }

    #[test]
    fn dropout_gradient_is_the_same_mask_and_nan_stays_nan() {
        for device in devices() {
            let ad = device.clone().autodiff();
            let layer = burn::nn::DropoutConfig::new(0.3).init();
            let shape = [2, 3, 40, 40];
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &ad).require_grad();
            let g = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &ad);
            let y = dropout(x.clone(), &layer);
            let grads = (y.clone() * g.clone()).sum().backward();
            let dx = host(x.grad(&grads).unwrap());
            let (xs, ys, gs) = (host(x.clone()), host(y), host(g));
            let scale = (1.0f64 / 0.7) as f32;
            for i in 0..xs.len() {
                // dy/dx is m / keep: the gradient is the forward's mask applied to g.
                let expected = if ys[i] == 0.0 && xs[i] != 0.0 {
                    0.0
                } else {
                    gs[i] * scale
                };
                assert_eq!(dx[i], expected, "element {i}");
            }
            let nan = Tensor::<1>::from_floats([f32::NAN; 64], &ad);
            assert!(host(dropout(nan, &layer)).iter().all(|v| v.is_nan()));
        }
    }

    #[test]
    fn dropout_is_reproducible_from_the_device_seed_and_the_identity_outside_training() {
        for device in devices() {
            let ad = device.clone().autodiff();
            let layer = burn::nn::DropoutConfig::new(0.5).init();
            let x = Tensor::<2>::ones([64, 64], &ad);
            let run = |seed| {
                ad.seed(seed);
                (
                    host(dropout(x.clone(), &layer)),
                    host(dropout(x.clone(), &layer)),
                )
            };
            let (a, b) = run(9);
            assert_eq!(
                run(9),
                (a.clone(), b.clone()),
                "the same seed, the same masks"
            );
            assert_ne!(a, b, "two calls draw two masks");
            assert_ne!(run(10).0, a, "another seed, another mask");
            // Not on an autodiff device, or frozen, or p = 0: the identity, as Burn's.
            let plain = Tensor::<2>::ones([8, 8], &device);
            assert_eq!(host(dropout(plain.clone(), &layer)), host(plain));
            let none = burn::nn::DropoutConfig::new(0.0).init();
            assert_eq!(host(dropout(x.clone(), &none)), host(x.clone()));
            let frozen = burn::module::Module::freeze(layer.clone());
            assert_eq!(host(dropout(x.clone(), &frozen)), host(x));
        }
    }
}
