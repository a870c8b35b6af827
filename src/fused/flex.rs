//! The Flex backend's fused ops: the slice kernels of [`super::kernels`] on contiguous
//! `f32` buffers.

use burn::backend::{
    Bytes, DType, Shape, TensorMetadata,
    flex::{Flex, FlexTensor, Layout},
    ops::{ConvOptions, ModuleOps},
};

use super::conv::{self, Conv2dShape};
use super::extension::{
    FusedOps, convolution_backward_composed, dropout_composed, group_norm_backward_composed,
    group_norm_composed, silu_backward_composed, silu_composed,
};
use super::kernels;

impl FusedOps for Flex {
    fn silu(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return silu_composed::<Flex>(x);
        }
        unary(x, kernels::silu)
    }

    fn silu_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 || grad.dtype() != DType::F32 || x.shape() != grad.shape() {
            return silu_backward_composed::<Flex>(x, grad);
        }
        binary(x, grad, kernels::silu_backward)
    }

    fn group_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        groups: usize,
        epsilon: f64,
        silu: bool,
    ) -> FlexTensor {
        let Some(shape) = f32_group_norm_shape(&[&x, &gamma, &beta], groups) else {
            return group_norm_composed::<Flex>(x, gamma, beta, groups, epsilon, silu);
        };
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let mut out = vec![0.0f32; shape.n * shape.channels * shape.len];
        kernels::group_norm(
            slice(&x),
            slice(&gamma),
            slice(&beta),
            shape,
            epsilon,
            silu,
            &mut out,
        );
        from_vec(out, &x)
    }

    fn group_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        grad: FlexTensor,
        groups: usize,
        epsilon: f64,
        silu: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = f32_group_norm_shape(&[&x, &gamma, &beta], groups)
            .filter(|_| grad.dtype() == DType::F32 && grad.shape() == x.shape());
        let Some(shape) = shape else {
            return group_norm_backward_composed::<Flex>(
                x, gamma, beta, grad, groups, epsilon, silu,
            );
        };
        let (x, gamma, beta, grad) = (
            contiguous(x),
            contiguous(gamma),
            contiguous(beta),
            contiguous(grad),
        );
        let mut dx = vec![0.0f32; shape.n * shape.channels * shape.len];
        let mut dgamma = vec![0.0f32; shape.channels];
        let mut dbeta = vec![0.0f32; shape.channels];
        kernels::group_norm_backward(
            slice(&x),
            slice(&gamma),
            slice(&beta),
            slice(&grad),
            shape,
            epsilon,
            silu,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );
        (
            from_vec(dx, &x),
            from_vec(dgamma, &gamma),
            from_vec(dbeta, &beta),
        )
    }

    fn dropout(x: FlexTensor, seed: u64, keep: f64) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return dropout_composed::<Flex>(x, seed, keep);
        }
        let x = contiguous(x);
        let input = slice(&x);
        let mut out = vec![0.0f32; input.len()];
        kernels::dropout(input, &mut out, seed, keep, 0);
        from_vec(out, &x)
    }

    fn convolution(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let Some(shape) = f32_conv_shape(&x, &weight, Some(&bias), &options) else {
            return <Flex as ModuleOps<Flex>>::conv2d(x, weight, Some(bias), options);
        };
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let mut out = vec![0.0f32; shape.lens()[2]];
        conv::conv2d(
            slice(&x),
            slice(&weight),
            Some(slice(&bias)),
            &shape,
            &mut out,
        );
        let [oh, ow] = shape.output;
        with_shape(out, [shape.batch, shape.channels_out, oh, ow].into())
    }

    fn convolution_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
        wanted: [bool; 3],
    ) -> (Option<FlexTensor>, Option<FlexTensor>, Option<FlexTensor>) {
        let shape = f32_conv_shape(&x, &weight, None, &options).filter(|s| {
            let [oh, ow] = s.output;
            grad.dtype() == DType::F32
                && grad.shape().dims::<4>() == [s.batch, s.channels_out, oh, ow]
        });
        let Some(shape) = shape else {
            return convolution_backward_composed::<Flex>(x, weight, grad, options, wanted);
        };
        let (x, weight, grad) = (contiguous(x), contiguous(weight), contiguous(grad));
        let [x_len, w_len, _] = shape.lens();
        let [x_grad, weight_grad, bias_grad] = wanted;
        let mut dx = x_grad.then(|| vec![0.0f32; x_len]);
        let mut dweight = weight_grad.then(|| vec![0.0f32; w_len]);
        let mut dbias = bias_grad.then(|| vec![0.0f32; shape.channels_out]);
        conv::conv2d_backward(
            slice(&x),
            slice(&weight),
            slice(&grad),
            &shape,
            dx.as_deref_mut(),
            dweight.as_deref_mut(),
            dbias.as_deref_mut(),
        );
        (
            dx.map(|v| from_vec(v, &x)),
            dweight.map(|v| from_vec(v, &weight)),
            dbias.map(|v| with_shape(v, [shape.channels_out].into())),
        )
    }
}

/// The kernel's geometry for a convolution of `x` by `weight` (+ `bias`), when all are
/// `f32` of a one-group 2-D convolution's shapes; `None` sends the call to Burn's own.
fn f32_conv_shape(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> Option<Conv2dShape> {
    let all_f32 = [Some(x), Some(weight), bias]
        .into_iter()
        .flatten()
        .all(|t| t.dtype() == DType::F32);
    if !all_f32 || x.shape().num_dims() != 4 || weight.shape().num_dims() != 4 {
        return None;
    }
    let [n, c_in, h, w] = x.shape().dims::<4>();
    let [c_out, w_in, kh, kw] = weight.shape().dims::<4>();
    let bias_fits = bias.is_none_or(|b| b.shape().dims::<1>() == [c_out]);
    if options.groups != 1 || w_in != c_in || !bias_fits {
        return None;
    }
    Conv2dShape::new(
        n,
        c_in,
        c_out,
        [h, w],
        [kh, kw],
        options.stride,
        options.padding,
        options.dilation,
    )
}

/// The kernel's shape for `[x, gamma, beta]`, when all are `f32` and their shapes are a
/// GroupNorm's (`[n, channels, len]`, `[channels]`, `[channels]`, channels in `groups`).
fn f32_group_norm_shape(
    tensors: &[&FlexTensor; 3],
    groups: usize,
) -> Option<kernels::GroupNormShape> {
    if tensors.iter().any(|t| t.dtype() != DType::F32) {
        return None;
    }
    let [x, gamma, beta] = tensors;
    let dims = x.shape();
    if dims.num_dims() != 3
        || gamma.shape().num_dims() != 1
        || gamma.shape()[0] != dims[1]
        || beta.shape() != gamma.shape()
    {
        return None;
    }
    (groups > 0 && dims[1].is_multiple_of(groups)).then_some(kernels::GroupNormShape {
        n: dims[0],
        channels: dims[1],
        len: dims[2],
        groups,
    })
}

fn slice(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// `f` of every element, in place when `x` owns its contiguous buffer.
fn unary(mut x: FlexTensor, f: impl Fn(f32) -> f32 + Send + Sync + Copy) -> FlexTensor {
    let n = x.shape().num_elements();
    if x.layout().contiguous_offsets() == Some((0, n))
        && let Some(data) = x.try_storage_mut::<f32>()
    {
        kernels::map_in_place(&mut data[..n], f);
        return x;
    }
    let x = contiguous(x);
    let input = x.as_slice::<f32>().expect("contiguous f32");
    let mut out = vec![0.0f32; input.len()];
    kernels::map(input, &mut out, f);
    from_vec(out, &x)
}

/// `f` of every pair of elements of two tensors of one shape.
fn binary(
    x: FlexTensor,
    y: FlexTensor,
    f: impl Fn(f32, f32) -> f32 + Send + Sync + Copy,
) -> FlexTensor {
    let (x, y) = (contiguous(x), contiguous(y));
    let (a, b) = (
        x.as_slice::<f32>().expect("contiguous f32"),
        y.as_slice::<f32>().expect("contiguous f32"),
    );
    let mut out = vec![0.0f32; a.len()];
    kernels::zip_map(a, b, &mut out, f);
    from_vec(out, &x)
}

fn contiguous(x: FlexTensor) -> FlexTensor {
    if x.layout().contiguous_offsets().is_some() {
        x
    } else {
        x.to_contiguous()
    }
}

/// A contiguous tensor of `like`'s shape holding `values`.
fn from_vec(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    with_shape(values, like.shape())
}

/// A contiguous tensor of `shape` holding `values`.
fn with_shape(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}
