//! The Flex backend's fused ops: the slice kernels of [`super::kernels`] on contiguous
//! `f32` buffers.

use burn::backend::{
    Bytes, DType, TensorMetadata,
    flex::{Flex, FlexTensor, Layout},
};

use super::extension::{
    FusedOps, group_norm_backward_composed, group_norm_composed, silu_backward_composed,
    silu_composed,
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
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(like.shape()),
        DType::F32,
    )
}
