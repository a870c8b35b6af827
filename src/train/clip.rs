//! Clipping of the gradients' global norm.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};

/// Scales every gradient by min(1, max_norm / (‖g‖ + 10⁻⁶)), where ‖g‖ is the Euclidean
/// norm of all of `model`'s gradients together (PyTorch's `clip_grad_norm_`, which DDPM's
/// training uses with max_norm = 1). Returns ‖g‖ before clipping (NaN if the device cannot
/// be read: the norm is read back once, see [`crate::host`]).
///
/// Burn's optimizers clip each tensor on its own; this is the global version.
///
/// # Errors
/// [`DiffusionError::InvalidConfig`] unless `max_norm` is finite and positive (a
/// negative one would flip every gradient's sign).
///
/// # Example
/// ```
/// use burn::optim::GradientsParams;
/// use burn::tensor::Device;
/// use burn_diffusion::{model::MlpConfig, train::clip_grad_norm};
///
/// let model = MlpConfig::new(2).init(&Device::flex()).unwrap();
/// let mut grads = GradientsParams::new(); // no gradients: norm 0
/// assert_eq!(clip_grad_norm(&mut grads, &model, 1.0).unwrap(), 0.0);
/// assert!(clip_grad_norm(&mut grads, &model, -1.0).is_err());
/// ```
pub fn clip_grad_norm<M: Module>(
    grads: &mut GradientsParams,
    model: &M,
    max_norm: f64,
) -> error::Result<f64> {
    match clip_grad_norm_on_device(grads, model, max_norm)? {
        // One device read (see `crate::host`); a device that cannot be read gives NaN.
        Some(norm) => Ok(crate::host::read_scalar(norm, "gradient norm").unwrap_or(f64::NAN)),
        None => Ok(0.0),
    }
}

/// [`clip_grad_norm`] without reading anything back: the norm stays on the device (shape
/// `[1]`, `None` when `model` has no gradients) and the scale
/// min(1, max_norm / (‖g‖ + 10⁻⁶)) is applied there, so the host need not wait for the
/// backward pass.
///
/// # Errors
/// As [`clip_grad_norm`].
pub fn clip_grad_norm_on_device<M: Module>(
    grads: &mut GradientsParams,
    model: &M,
    max_norm: f64,
) -> error::Result<Option<Tensor<1>>> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(DiffusionError::config(
            "max_norm",
            max_norm,
            "must be finite and positive",
        ));
    }
    let mut squares = SumOfSquares { grads, total: None };
    model.visit(&mut squares);
    let Some(total) = squares.total else {
        return Ok(None);
    };
    let norm = total.sqrt();
    let scale = ((norm.clone() + 1e-6).recip() * max_norm).clamp_max(1.0);
    model.visit(&mut ScaleGrads { grads, scale });
    Ok(Some(norm))
}

/// Sums the squares of all gradients into one `[1]` tensor.
struct SumOfSquares<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SumOfSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let sum = grad.square().sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + sum,
                None => sum,
            });
        }
    }
}

/// Multiplies every gradient by the one-element `scale`.
struct ScaleGrads<'a> {
    grads: &'a mut GradientsParams,
    scale: Tensor<1>,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let scale: Tensor<D> = self.scale.clone().to_device(&grad.device()).reshape([1; D]);
            self.grads.register(param.id, grad * scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MlpConfig;
    use burn::tensor::Device;

    #[test]
    fn the_global_norm_is_clipped_to_max_norm() {
        let device = Device::flex().autodiff();
        let model = MlpConfig::new(2).init(&device).unwrap().train();
        let x = Tensor::<2>::from_floats([[0.5, -1.0], [2.0, 0.25]], &device);
        let t = burn::tensor::Tensor::<1, burn::tensor::Int>::from_ints([3, 7], &device);
        let out = crate::Denoiser::denoise(&model, x, t, None);
        // Large enough that every initialization (drawn from the process-global
        // generator, which parallel tests share) has a gradient norm well above 1.
        let loss = (out * 1000.0).square().sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        // The norm computed here from each gradient's values, in f64.
        let mut each = Vec::new();
        model.visit(&mut Values(&grads, &mut each));
        let want: f64 = each.iter().map(|g| (*g as f64).powi(2)).sum::<f64>().sqrt();
        let norm = clip_grad_norm(&mut grads, &model, 1.0).unwrap();
        assert!((norm / want - 1.0).abs() < 1e-5, "{norm} vs {want}");
        assert!(norm > 1.0, "the test needs a gradient to clip, norm {norm}");
        let mut clipped = Vec::new();
        model.visit(&mut Values(&grads, &mut clipped));
        let after: f64 = clipped
            .iter()
            .map(|g| (*g as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((after - 1.0).abs() < 1e-5, "norm after clipping {after}");
        // Below the threshold nothing changes.
        let again = clip_grad_norm(&mut grads, &model, 10.0).unwrap();
        assert!((again - after).abs() < 1e-5);
        // A negative, zero or NaN bound is an error, and leaves the gradients alone.
        for bad in [-1.0, 0.0, f64::NAN, f64::INFINITY] {
            assert!(clip_grad_norm(&mut grads, &model, bad).is_err(), "{bad}");
        }
        let mut kept = Vec::new();
        model.visit(&mut Values(&grads, &mut kept));
        assert_eq!(kept, clipped);
    }

    struct Values<'a>(&'a GradientsParams, &'a mut Vec<f32>);
    impl ModuleVisitor for Values<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                self.1.extend(g.try_into_vec_as::<f32>().unwrap());
            }
        }
    }
}
