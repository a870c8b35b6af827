//! A model bound to per-example labels, for losses and samplers that call it without.

use burn::tensor::{Int, Tensor};

use crate::error::{self, DiffusionError};
use crate::model::Denoiser;

/// `model` conditioned on fixed per-example class `labels`: every call passes them on,
/// whatever labels the caller gives (the losses call models without labels). Training
/// a class-conditional model is the loss of `WithLabels::new(&model, labels)` on the
/// batch (with [`crate::train::LabelDropout`] applied to the labels first, to train the
/// unconditional model of classifier-free guidance at the same time).
///
/// # Shapes
/// - `labels`: `[N]`, one per example of every batch the model is called with
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::{Denoiser, model::WithLabels};
///
/// struct ByClass;
/// impl Denoiser<2> for ByClass {
///     fn denoise(&self, x: Tensor<2>, _t: Tensor<1, Int>, labels: Option<Tensor<1, Int>>) -> Tensor<2> {
///         let n = x.dims()[0];
///         x.zeros_like() + labels.expect("labels").float().reshape([n, 1])
///     }
/// }
/// let device = Device::flex();
/// let labeled = WithLabels::new(&ByClass, Tensor::<1, Int>::from_ints([3, 5], &device));
/// let out = labeled.try_denoise(Tensor::zeros([2, 1], &device), Tensor::zeros([2], &device), None)?;
/// assert_eq!(out.into_data().to_vec::<f32>().unwrap(), vec![3.0, 5.0]);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct WithLabels<'a, M> {
    model: &'a M,
    labels: Tensor<1, Int>,
}

impl<'a, M> WithLabels<'a, M> {
    /// `model` called with `labels`.
    pub fn new(model: &'a M, labels: Tensor<1, Int>) -> Self {
        Self { model, labels }
    }

    /// The labels every call passes on.
    pub fn labels(&self) -> &Tensor<1, Int> {
        &self.labels
    }
}

impl<M: Denoiser<D>, const D: usize> Denoiser<D> for WithLabels<'_, M> {
    /// The wrapped model with this wrapper's labels (the `labels` argument is ignored).
    fn denoise(
        &self,
        x_t: Tensor<D>,
        t: Tensor<1, Int>,
        _labels: Option<Tensor<1, Int>>,
    ) -> Tensor<D> {
        self.model.denoise(x_t, t, Some(self.labels.clone()))
    }

    fn denoise_fractional(
        &self,
        x_t: Tensor<D>,
        t: Tensor<1>,
        _labels: Option<Tensor<1, Int>>,
    ) -> Option<Tensor<D>> {
        self.model
            .denoise_fractional(x_t, t, Some(self.labels.clone()))
    }

    /// One label per example, then the wrapped model's own check.
    ///
    /// # Errors
    /// [`DiffusionError::ShapeMismatch`] when the batch and the labels differ in length.
    fn check_input(&self, dims: &[usize]) -> error::Result<()> {
        let n = self.labels.dims()[0];
        if dims.first() != Some(&n) {
            return Err(DiffusionError::ShapeMismatch {
                what: "labels vs the batch of x_t",
                expected: dims.first().map(|&d| vec![d]).unwrap_or_default(),
                got: vec![n],
            });
        }
        self.model.check_input(dims)
    }

    /// The wrapped model's check (its own labels are the caller's to check, with this).
    fn check_labels(&self, labels: &[i64]) -> error::Result<()> {
        self.model.check_labels(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    struct Echo;
    impl Denoiser<2> for Echo {
        fn denoise(
            &self,
            x: Tensor<2>,
            _: Tensor<1, Int>,
            labels: Option<Tensor<1, Int>>,
        ) -> Tensor<2> {
            let n = x.dims()[0];
            x + labels.expect("labels").float().reshape([n, 1])
        }
    }

    #[test]
    fn labels_reach_the_model_and_must_match_the_batch() {
        let device = Device::flex();
        let labeled = WithLabels::new(&Echo, Tensor::<1, Int>::from_ints([1, 2, 3], &device));
        let x = Tensor::<2>::zeros([3, 2], &device);
        let t = Tensor::<1, Int>::zeros([3], &device);
        let out: Vec<f32> = labeled
            .try_denoise(x, t, None)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(out, vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
        let short = labeled.try_denoise(
            Tensor::<2>::zeros([2, 2], &device),
            Tensor::<1, Int>::zeros([2], &device),
            None,
        );
        assert!(matches!(short, Err(DiffusionError::ShapeMismatch { .. })));
    }
}
