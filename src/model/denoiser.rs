//! The `Denoiser` trait: what the losses and samplers need from a model.

use burn::tensor::{Int, Tensor};

/// A denoising network: its raw output at noisy input `x_t` and per-example timesteps `t`.
///
/// What the output means (ε, x_0 or v, and for learned variances a second half of
/// channels) is declared by the loss or sampler that uses the model, not by the model.
/// Timesteps are the 0-based training timesteps (for a respaced schedule, the *original*
/// timestep, as in [`crate::NoiseSchedule::original_timesteps`]).
///
/// Any closure `Fn(Tensor<D>, Tensor<1, Int>) -> Tensor<D>` is a `Denoiser`; a Burn module
/// implements the trait by calling its `forward`.
///
/// # Shapes
/// - `x_t`: `[N, ...]`; `t`: `[N]`; `labels`: `[N]` class indices, when given
/// - output: `[N, ...]` (for learned variances, `[N, 2C, ...]` for `C` input channels)
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::Denoiser;
///
/// // A closure: a "model" that predicts ε = 0.5·x_t at every timestep.
/// let model = |x_t: Tensor<2>, _t: Tensor<1, Int>| x_t * 0.5;
///
/// // A struct of your own.
/// struct Shrink(f32);
/// impl Denoiser<2> for Shrink {
///     fn denoise(&self, x_t: Tensor<2>, _t: Tensor<1, Int>, _labels: Option<Tensor<1, Int>>) -> Tensor<2> {
///         x_t * self.0
///     }
/// }
///
/// // A Burn module of your own.
/// use burn::module::Module;
/// use burn::nn::{Linear, LinearConfig};
///
/// #[derive(Module, Debug)]
/// struct MyNet {
///     linear: Linear,
/// }
/// impl Denoiser<2> for MyNet {
///     fn denoise(&self, x_t: Tensor<2>, _t: Tensor<1, Int>, _labels: Option<Tensor<1, Int>>) -> Tensor<2> {
///         self.linear.forward(x_t)
///     }
/// }
///
/// let device = Device::flex();
/// let net = MyNet { linear: LinearConfig::new(4, 4).init(&device) };
/// let x = Tensor::<2>::ones([3, 4], &device);
/// let t = Tensor::<1, Int>::from_ints([0, 1, 2], &device);
/// assert_eq!(net.denoise(x.clone(), t, None).dims(), [3, 4]);
/// let t = Tensor::<1, Int>::from_ints([0, 1, 2], &device);
/// let a = model.denoise(x.clone(), t.clone(), None);
/// let b = Shrink(0.5).denoise(x, t, None);
/// assert!(a.all_close(b, None, None));
/// ```
pub trait Denoiser<const D: usize> {
    /// The model's output at `(x_t, t)`, optionally conditioned on class `labels`.
    fn denoise(
        &self,
        x_t: Tensor<D>,
        t: Tensor<1, Int>,
        labels: Option<Tensor<1, Int>>,
    ) -> Tensor<D>;
}

impl<const D: usize, F> Denoiser<D> for F
where
    F: Fn(Tensor<D>, Tensor<1, Int>) -> Tensor<D>,
{
    /// Calls the closure; class labels are ignored.
    fn denoise(
        &self,
        x_t: Tensor<D>,
        t: Tensor<1, Int>,
        _labels: Option<Tensor<1, Int>>,
    ) -> Tensor<D> {
        self(x_t, t)
    }
}
