//! The `Denoiser` trait: what the losses and samplers need from a model.

use burn::tensor::{Int, Tensor};

use crate::error::{self, DiffusionError};

/// A denoising network: its raw output at noisy input `x_t` and per-example timesteps `t`.
///
/// What the output means (ε, x_0 or v, and for learned variances a second half of
/// channels) is declared by the loss or sampler that uses the model, not by the model.
/// Timesteps are the 0-based training timesteps (for a respaced schedule, the *original*
/// timestep, as in [`crate::NoiseSchedule::original_timesteps`]).
///
/// Any closure `Fn(Tensor<D>, Tensor<1, Int>) -> Tensor<D>` is a `Denoiser` (one that
/// also takes the labels is, wrapped in [`crate::model::LabeledFn`]); a Burn module
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

    /// Checks that the model takes an input `x_t` of shape `dims`, so that a wrong shape
    /// is an error instead of a panic inside Burn. It reads no tensor (it runs on the
    /// host before every model call that [`Denoiser::try_denoise`] makes, which is how
    /// every loss and sampler of the crate calls a model).
    ///
    /// The default accepts every shape: override it in a model of your own to name what
    /// it needs (as [`crate::model::UNet`] does: rank 4, its input channels, a resolution
    /// divisible by 2^(levels−1)).
    ///
    /// # Errors
    /// [`DiffusionError::InvalidInput`] (or `ShapeMismatch`) naming what is wrong.
    ///
    /// # Example
    /// ```
    /// use burn::tensor::{Device, Int, Tensor};
    /// use burn_diffusion::{Denoiser, DiffusionError};
    ///
    /// /// A model of 3-wide points.
    /// struct Points;
    /// impl Denoiser<2> for Points {
    ///     fn denoise(&self, x_t: Tensor<2>, _t: Tensor<1, Int>, _labels: Option<Tensor<1, Int>>) -> Tensor<2> {
    ///         x_t * 0.5
    ///     }
    ///     fn check_input(&self, dims: &[usize]) -> burn_diffusion::Result<()> {
    ///         if dims[1] == 3 {
    ///             Ok(())
    ///         } else {
    ///             Err(DiffusionError::ShapeMismatch {
    ///                 what: "Points input",
    ///                 expected: vec![dims[0], 3],
    ///                 got: dims.to_vec(),
    ///             })
    ///         }
    ///     }
    /// }
    ///
    /// let device = Device::flex();
    /// let t = Tensor::<1, Int>::from_ints([1, 2], &device);
    /// let ok = Points.try_denoise(Tensor::zeros([2, 3], &device), t.clone(), None);
    /// assert_eq!(ok?.dims(), [2, 3]);
    /// let wrong = Points.try_denoise(Tensor::zeros([2, 4], &device), t.clone(), None);
    /// assert!(matches!(wrong, Err(DiffusionError::ShapeMismatch { .. })));
    /// let empty = Points.try_denoise(Tensor::zeros([0, 3], &device), t.slice([0..0]), None);
    /// assert!(matches!(empty, Err(DiffusionError::InvalidInput { .. })));
    /// # Ok::<(), DiffusionError>(())
    /// ```
    fn check_input(&self, dims: &[usize]) -> error::Result<()> {
        let _ = dims;
        Ok(())
    }

    /// Checks that the model takes these class labels (read back to the host by the
    /// caller), so that a label outside a class embedding is an error instead of a
    /// panic, or an out-of-bounds read, inside Burn's embedding lookup. The crate calls it
    /// where the labels enter, reading them back once: [`crate::sampler::Guided::new`],
    /// [`crate::train::Trainer::fit`] (before its first step), `Trainer::train_step` (its
    /// batch) and, with the `train` feature, `DiffusionObjective::evaluate`; never per
    /// model call, which reads no tensor.
    ///
    /// The default accepts every label. [`crate::model::UNet`] and [`crate::model::Mlp`]
    /// accept the rows of their class embedding: `0..num_classes`, and `num_classes`
    /// itself (the null label) when the model has a null row (an `Mlp` always has one);
    /// a model without a class embedding accepts every label (it ignores them). Wrappers
    /// ([`crate::model::WithLabels`], `Guided`) ask their model.
    ///
    /// # Errors
    /// [`DiffusionError::LabelOutOfRange`] naming the first bad label.
    ///
    /// # Example
    /// ```
    /// use burn::tensor::Device;
    /// use burn_diffusion::model::UNetConfig;
    /// use burn_diffusion::{Denoiser, DiffusionError};
    ///
    /// // Three classes and the null label 3.
    /// let model = UNetConfig::digits().with_num_classes(Some(3)).init(&Device::flex())?;
    /// assert!(model.check_labels(&[0, 2, 3]).is_ok());
    /// let bad = model.check_labels(&[0, 4]);
    /// assert!(matches!(bad, Err(DiffusionError::LabelOutOfRange { label: 4, index: 1, num_labels: 4 })));
    /// # Ok::<(), DiffusionError>(())
    /// ```
    fn check_labels(&self, labels: &[i64]) -> error::Result<()> {
        let _ = labels;
        Ok(())
    }

    /// [`Denoiser::denoise`] after checking what can be checked without reading a
    /// tensor: a batch of at least one example, one timestep (and one label, when given)
    /// per example, and [`Denoiser::check_input`]. The losses and samplers call models
    /// through it; there is no reason to override it.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidInput`] for an empty batch, `ShapeMismatch` for timesteps
    /// or labels of another length, and whatever `check_input` returns.
    fn try_denoise(
        &self,
        x_t: Tensor<D>,
        t: Tensor<1, Int>,
        labels: Option<Tensor<1, Int>>,
    ) -> error::Result<Tensor<D>> {
        check_call(self, &x_t, t.dims()[0], labels.as_ref())?;
        Ok(self.denoise(x_t, t, labels))
    }

    /// The model's output at fractional timesteps `t` (in training-timestep units), for
    /// samplers whose levels fall between training timesteps (diffusers' Euler-family
    /// grids, [`crate::sampler::ModelTime::Fractional`]). `None`, the default, says the
    /// model takes integer timesteps only; a model whose timestep embedding is a smooth
    /// function of t (the crate's [`crate::model::UNet`] and [`crate::model::Mlp`], or
    /// diffusers' UNets) overrides it.
    ///
    /// # Shapes
    /// - `x_t`: `[N, ...]`; `t`: `[N]` (float); `labels`: `[N]`, when given
    fn denoise_fractional(
        &self,
        x_t: Tensor<D>,
        t: Tensor<1>,
        labels: Option<Tensor<1, Int>>,
    ) -> Option<Tensor<D>> {
        let _ = (x_t, t, labels);
        None
    }

    /// [`Denoiser::denoise_fractional`] after the checks of [`Denoiser::try_denoise`].
    ///
    /// # Errors
    /// As [`Denoiser::try_denoise`]; [`DiffusionError::InvalidConfig`] when the model
    /// takes integer timesteps only (the message names the two ways out).
    fn try_denoise_fractional(
        &self,
        x_t: Tensor<D>,
        t: Tensor<1>,
        labels: Option<Tensor<1, Int>>,
    ) -> error::Result<Tensor<D>> {
        check_call(self, &x_t, t.dims()[0], labels.as_ref())?;
        self.denoise_fractional(x_t, t, labels).ok_or_else(|| {
            DiffusionError::config(
                "model timesteps",
                "fractional",
                "the sampler calls the model between training timesteps \
                 (ModelTime::Fractional) but this model takes integer timesteps only: \
                 build the sampler with ModelTime::Rounded, or implement \
                 Denoiser::denoise_fractional",
            )
        })
    }
}

/// `Ok` when every label lies in `0..num_labels`, for a model with a class embedding of
/// `num_labels` rows (the [`Denoiser::check_labels`] of the crate's models).
pub(crate) fn labels_within(labels: &[i64], num_labels: usize) -> error::Result<()> {
    match labels
        .iter()
        .position(|&l| usize::try_from(l).map_or(true, |l| l >= num_labels))
    {
        Some(index) => Err(DiffusionError::LabelOutOfRange {
            label: labels[index],
            index,
            num_labels,
        }),
        None => Ok(()),
    }
}

/// The checks of [`Denoiser::try_denoise`]: a non-empty batch, one timestep (and label)
/// per example, and the model's own [`Denoiser::check_input`].
fn check_call<const D: usize, M: Denoiser<D> + ?Sized>(
    model: &M,
    x_t: &Tensor<D>,
    timesteps: usize,
    labels: Option<&Tensor<1, Int>>,
) -> error::Result<()> {
    let dims = x_t.dims();
    if dims[0] == 0 {
        return Err(DiffusionError::input(
            "model input x_t",
            &dims,
            "the batch has no examples",
        ));
    }
    let per_example = |what: &'static str, got: usize| {
        if got == dims[0] {
            Ok(())
        } else {
            Err(DiffusionError::ShapeMismatch {
                what,
                expected: vec![dims[0]],
                got: vec![got],
            })
        }
    };
    per_example("timesteps vs the batch of x_t", timesteps)?;
    if let Some(labels) = labels {
        per_example("labels vs the batch of x_t", labels.dims()[0])?;
    }
    model.check_input(&dims)
}

/// A closure that takes the class labels too, `Fn(x_t, t, labels) -> output`, as a
/// [`Denoiser`] (a plain two-argument closure is one already, and ignores labels; Rust
/// cannot give both closure shapes the trait directly).
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::{Denoiser, model::LabeledFn};
///
/// let model = LabeledFn(|x: Tensor<2>, _t: Tensor<1, Int>, labels: Option<Tensor<1, Int>>| {
///     let n = x.dims()[0];
///     match labels {
///         Some(c) => x + c.float().reshape([n, 1]),
///         None => x,
///     }
/// });
/// let device = Device::flex();
/// let labels = Tensor::<1, Int>::from_ints([2], &device);
/// let out = model.denoise(Tensor::zeros([1, 1], &device), Tensor::zeros([1], &device), Some(labels));
/// assert_eq!(out.into_data().to_vec::<f32>().unwrap(), vec![2.0]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LabeledFn<F>(pub F);

impl<const D: usize, F> Denoiser<D> for LabeledFn<F>
where
    F: Fn(Tensor<D>, Tensor<1, Int>, Option<Tensor<1, Int>>) -> Tensor<D>,
{
    /// Calls the closure with the labels.
    fn denoise(
        &self,
        x_t: Tensor<D>,
        t: Tensor<1, Int>,
        labels: Option<Tensor<1, Int>>,
    ) -> Tensor<D> {
        (self.0)(x_t, t, labels)
    }
}

impl<const D: usize, F> Denoiser<D> for F
where
    F: Fn(Tensor<D>, Tensor<1, Int>) -> Tensor<D>,
{
    /// Calls the closure; class labels are ignored (see [`LabeledFn`] for a closure that
    /// takes them).
    fn denoise(
        &self,
        x_t: Tensor<D>,
        t: Tensor<1, Int>,
        _labels: Option<Tensor<1, Int>>,
    ) -> Tensor<D> {
        self(x_t, t)
    }
}
