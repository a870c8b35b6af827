//! The fused ops as a Burn backend extension: one trait, implemented per backend, routed
//! at runtime by the code `#[backend_extension]` generates for Burn's `Dispatch`.

// NdArray, which Burn 0.22 deprecates, is still a device of the suite; the macro expands
// the selector into code that an item-level `allow` does not reach.
#![allow(deprecated)]
// Without a backend feature the generated dispatch has no arm that uses the arguments.
#![cfg_attr(
    not(any(feature = "flex", feature = "ndarray")),
    allow(unused_variables)
)]

use burn::backend::{
    Backend, TensorMetadata, backend_extension, ops::ConvOptions, tensor::FloatTensor,
};

/// Fused primitives of the reference UNet's hot path, at the backend level.
///
/// Every method has a default body composing Burn's own primitives: a backend without
/// a kernel of its own (NdArray here) runs that composition, and the Flex backend runs
/// one-pass kernels for `f32` (falling back to the composition for other dtypes). The
/// `Autodiff` implementation records one node per fused op, whose backward calls the
/// matching `*_backward` method, so a fused op's gradient is fused as well.
///
/// Use it through the tensor-level functions of [`crate::fused`], which route a tensor
/// to this trait only on the backends it is implemented for and to the plain
/// composition everywhere else.
#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Autodiff,
)]
pub trait FusedOps: Backend {
    /// SiLU, x · σ(x), element-wise.
    ///
    /// # Shapes
    ///
    /// - `x`: any; the output has the same shape.
    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        silu_composed::<Self>(x)
    }

    /// The SiLU's vector-Jacobian product: `grad · σ(x) · (1 + x · (1 − σ(x)))`.
    ///
    /// # Shapes
    ///
    /// - `x`, `grad`: the same shape; the output has it too.
    fn silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        silu_backward_composed::<Self>(x, grad)
    }

    /// GroupNorm (Wu & He 2018, Sec. 3.1) with a per-channel affine, optionally followed by the
    /// SiLU: `z = (x − μ_g) / √(σ²_g + ε) · γ_c + β_c`, then `silu(z)` when `silu` is set,
    /// with the mean μ_g and the biased variance σ²_g over each group g of
    /// `channels / groups` channels of each example.
    ///
    /// # Shapes
    ///
    /// - `x`: `[n, channels, len]`; `gamma`, `beta`: `[channels]`; the output has `x`'s
    ///   shape.
    fn group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        silu: bool,
    ) -> FloatTensor<Self> {
        group_norm_composed::<Self>(x, gamma, beta, groups, epsilon, silu)
    }

    /// The vector-Jacobian product of [`FusedOps::group_norm`]: the gradients with respect
    /// to `x`, `gamma` and `beta`, given the output's gradient `grad`.
    ///
    /// # Shapes
    ///
    /// - `x`, `grad`: `[n, channels, len]`; `gamma`, `beta`: `[channels]`; the outputs
    ///   have the shapes of `x`, `gamma` and `beta`.
    fn group_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        silu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        group_norm_backward_composed::<Self>(x, gamma, beta, grad, groups, epsilon, silu)
    }

    /// The 2-D convolution, Burn's `conv2d` with a bias, as one node whose backward is
    /// [`FusedOps::convolution_backward`]. (The bias is not optional: Burn's extension
    /// macro does not take optional tensors; pass zeros for none.)
    ///
    /// # Shapes
    ///
    /// - `x`: `[n, c_in, h, w]`; `weight`: `[c_out, c_in / groups, k_h, k_w]`; `bias`:
    ///   `[c_out]`; the output: `[n, c_out, oh, ow]`.
    fn convolution(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        <Self as burn::backend::ops::ModuleOps<Self>>::conv2d(x, weight, Some(bias), options)
    }

    /// The vector-Jacobian products of [`FusedOps::convolution`] given the output's
    /// gradient `grad`: the gradients with respect to `x`, the weight and the bias, each
    /// computed when `wanted` (in that order) asks for it.
    ///
    /// # Shapes
    ///
    /// As [`FusedOps::convolution`], `grad` having the output's shape; the gradients have
    /// the shapes of `x`, `weight` and the bias.
    // A tuple of options: the extension macro takes no type alias for its outputs.
    #[allow(clippy::type_complexity)]
    fn convolution_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        wanted: [bool; 3],
    ) -> (
        Option<FloatTensor<Self>>,
        Option<FloatTensor<Self>>,
        Option<FloatTensor<Self>>,
    ) {
        convolution_backward_composed::<Self>(x, weight, grad, options, wanted)
    }

    /// Inverted dropout (Srivastava et al. 2014) with the counter-based mask of `seed`:
    /// `x · m / keep`, where mᵢ ∈ {0, 1} is [`super::kernels::dropout_keeps`] for the
    /// i-th element in row-major order and `keep` ∈ (0, 1] is the keep probability.
    /// Linear and diagonal, so under autodiff its backward is the same op on the gradient,
    /// and it keeps only the seed.
    ///
    /// # Shapes
    ///
    /// - `x`: any; the output has the same shape.
    fn dropout(x: FloatTensor<Self>, seed: u64, keep: f64) -> FloatTensor<Self> {
        dropout_composed::<Self>(x, seed, keep)
    }
}

/// The dropout as a product with the mask, made on the host and uploaded.
pub(crate) fn dropout_composed<B: Backend>(
    x: FloatTensor<B>,
    seed: u64,
    keep: f64,
) -> FloatTensor<B> {
    let shape = x.shape();
    let ones = vec![1.0f32; shape.num_elements()];
    let mut mask = vec![0.0f32; ones.len()];
    super::kernels::dropout(&ones, &mut mask, seed, keep, 0);
    let mask = B::float_from_data(burn::tensor::TensorData::new(mask, shape), &x.device());
    let mask = B::float_cast(mask, x.dtype().into());
    B::float_mul(x, mask)
}

/// The convolution's gradients as Burn's own `conv2d` node computes them.
#[allow(clippy::type_complexity)]
pub(crate) fn convolution_backward_composed<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    options: ConvOptions<2>,
    [x_grad, weight_grad, bias_grad]: [bool; 3],
) -> (
    Option<FloatTensor<B>>,
    Option<FloatTensor<B>>,
    Option<FloatTensor<B>>,
) {
    let dx = x_grad
        .then(|| B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options.clone()));
    let dbias = bias_grad.then(|| {
        let c = grad.shape()[1];
        let summed = B::float_sum_dim(B::float_sum_dim(B::float_sum_dim(grad.clone(), 0), 2), 3);
        B::float_reshape(summed, [c].into())
    });
    let dweight = weight_grad.then(|| B::conv2d_weight_backward(x, weight, grad, options));
    (dx, dweight, dbias)
}

/// x̂ = (x − μ_g) / √(σ²_g + ε) as `[n, groups, channels / groups · len]`, and the
/// per-group 1/√(σ²_g + ε) as `[n, groups, 1]`.
fn normalized<B: Backend>(
    x: FloatTensor<B>,
    groups: usize,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let [n, c, l] = x.shape().dims();
    let x = B::float_reshape(x, [n, groups, c / groups * l].into());
    let mean = B::float_mean_dim(x.clone(), 2);
    let centered = B::float_sub(x, mean);
    let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), 2);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, epsilon.into())));
    (B::float_mul(centered, rstd.clone()), rstd)
}

/// `[channels]` as `[1, channels, 1]`, to broadcast over `[n, channels, len]`.
fn per_channel<B: Backend>(v: FloatTensor<B>) -> FloatTensor<B> {
    let c = v.shape()[0];
    B::float_reshape(v, [1, c, 1].into())
}

/// The GroupNorm (+ SiLU) from Burn's primitives, as `burn::nn::GroupNorm` computes it.
pub(crate) fn group_norm_composed<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    groups: usize,
    epsilon: f64,
    silu: bool,
) -> FloatTensor<B> {
    let shape = x.shape();
    let (xhat, _) = normalized::<B>(x, groups, epsilon);
    let xhat = B::float_reshape(xhat, shape);
    let z = B::float_add(
        B::float_mul(xhat, per_channel::<B>(gamma)),
        per_channel::<B>(beta),
    );
    if silu { silu_composed::<B>(z) } else { z }
}

/// The GroupNorm's vector-Jacobian product from Burn's primitives: with dz the gradient at
/// z = x̂ γ + β, dβ = Σ dz, dγ = Σ dz x̂ (over the batch and each channel's elements), and
/// dx = (dx̂ − mean_g(dx̂) − x̂ · mean_g(dx̂ x̂)) / √(σ²_g + ε) with dx̂ = dz γ.
pub(crate) fn group_norm_backward_composed<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    grad: FloatTensor<B>,
    groups: usize,
    epsilon: f64,
    silu: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let c = shape[1];
    let (xhat_groups, rstd) = normalized::<B>(x, groups, epsilon);
    let xhat = B::float_reshape(xhat_groups.clone(), shape.clone());
    let dz = if silu {
        let z = B::float_add(
            B::float_mul(xhat.clone(), per_channel::<B>(gamma.clone())),
            per_channel::<B>(beta),
        );
        silu_backward_composed::<B>(z, grad)
    } else {
        grad
    };
    let channel_sum = |t: FloatTensor<B>| {
        B::float_reshape(B::float_sum_dim(B::float_sum_dim(t, 2), 0), [c].into())
    };
    let dbeta = channel_sum(dz.clone());
    let dgamma = channel_sum(B::float_mul(dz.clone(), xhat));
    let dxhat = B::float_mul(dz, per_channel::<B>(gamma));
    let dxhat = B::float_reshape(dxhat, xhat_groups.shape());
    let m1 = B::float_mean_dim(dxhat.clone(), 2);
    let m2 = B::float_mean_dim(B::float_mul(dxhat.clone(), xhat_groups.clone()), 2);
    let dx = B::float_sub(B::float_sub(dxhat, m1), B::float_mul(xhat_groups, m2));
    let dx = B::float_reshape(B::float_mul(dx, rstd), shape);
    (dx, dgamma, dbeta)
}

/// The SiLU from Burn's primitives, as `burn::tensor::activation::silu` computes it.
pub(crate) fn silu_composed<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let s = B::sigmoid(x.clone());
    B::float_mul(x, s)
}

/// The SiLU's vector-Jacobian product from Burn's primitives.
pub(crate) fn silu_backward_composed<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let s = B::sigmoid(x.clone());
    let one_minus_s = B::float_add_scalar(B::float_neg(s.clone()), 1.0.into());
    let slope = B::float_add_scalar(B::float_mul(x, one_minus_s), 1.0.into());
    B::float_mul(grad, B::float_mul(s, slope))
}

#[cfg(feature = "ndarray")]
impl FusedOps for burn::backend::NdArray {}
