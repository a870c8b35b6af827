//! An exponential moving average of a module's weights.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};

/// An exponential moving average (EMA) of a module's weights, the weights DDPM evaluates
/// and samples with (Ho et al. 2020, app. B: decay 0.9999).
///
/// After the k-th update (k = 1, 2, ...):
///
/// ```text
/// θ_ema ← d_k·θ_ema + (1 − d_k)·θ,   d_k = min(decay, (1 + k) / (10 + k))  with warmup,
///                                     d_k = decay                          without
/// ```
///
/// The warmup (as in diffusers' `EMAModel` and TensorFlow's `ExponentialMovingAverage`
/// with `num_updates`) keeps the average from being dominated by the random initial
/// weights in short runs. The average is a validation snapshot (no autodiff) of the model,
/// with the same parameter ids.
///
/// # Example
/// ```
/// use burn::tensor::Device;
/// use burn_diffusion::{model::MlpConfig, train::Ema};
///
/// let model = MlpConfig::new(2).init(&Device::flex()).unwrap();
/// let mut ema = Ema::new(&model, 0.999, true).unwrap();
/// ema.update(&model).unwrap();
/// assert_eq!(ema.updates(), 1);
/// assert!((ema.decay_at(1) - 2.0 / 11.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct Ema<M: Module> {
    model: M,
    decay: f64,
    warmup: bool,
    updates: usize,
}

impl<M: Module> Ema<M> {
    /// An average that starts at `model`'s current weights.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] unless `decay` is in [0, 1].
    pub fn new(model: &M, decay: f64, warmup: bool) -> error::Result<Self> {
        if !(0.0..=1.0).contains(&decay) {
            return Err(DiffusionError::config(
                "ema_decay",
                decay,
                "must be in [0, 1]",
            ));
        }
        Ok(Self {
            model: model.valid(),
            decay,
            warmup,
            updates: 0,
        })
    }

    /// The decay d_k used by the k-th update.
    pub fn decay_at(&self, k: usize) -> f64 {
        if self.warmup {
            self.decay.min((1.0 + k as f64) / (10.0 + k as f64))
        } else {
            self.decay
        }
    }

    /// Moves the average toward `model`'s current weights (matched by parameter id).
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] if a parameter of the average has no parameter of
    /// the same id and size in `model` (another model, or a copy with new parameter ids):
    /// nothing is updated then, where a silent partial update would leave the average
    /// stale.
    pub fn update(&mut self, model: &M) -> error::Result<()> {
        let mut current = Collect(HashMap::new());
        model.valid().visit(&mut current);
        let mut sizes = Sizes(Vec::new());
        self.model.visit(&mut sizes);
        let unmatched = sizes
            .0
            .iter()
            .filter(|(id, n)| current.0.get(id).is_none_or(|t| t.dims()[0] != *n))
            .count();
        if unmatched > 0 {
            return Err(DiffusionError::config(
                "EMA update",
                format!("{unmatched} of {} parameters", sizes.0.len()),
                "have no parameter of the same id and size in the model (another model, or \
                 a copy with new parameter ids)",
            ));
        }
        self.updates += 1;
        let decay = self.decay_at(self.updates);
        let mut blend = Blend {
            current: current.0,
            decay,
        };
        self.model = self.model.clone().map(&mut blend);
        Ok(())
    }

    /// The averaged model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The number of updates so far.
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// An average restored from a checkpoint: its model and update count.
    pub(crate) fn restored(self, model: M, updates: usize) -> Self {
        Self {
            model: model.valid(),
            updates,
            ..self
        }
    }
}

/// Collects every float parameter, flattened, by id.
struct Collect(HashMap<ParamId, Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let n = value.shape().num_elements();
        self.0.insert(param.id, value.reshape([n]));
    }
}

/// The id and number of values of every float parameter.
struct Sizes(Vec<(ParamId, usize)>);

impl ModuleVisitor for Sizes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push((param.id, param.shape().num_elements()));
    }
}

/// Replaces each parameter θ_ema by d·θ_ema + (1 − d)·θ.
struct Blend {
    current: HashMap<ParamId, Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(current) = self.current.remove(&param.id) else {
            return param;
        };
        let decay = self.decay;
        param.map(|average| {
            let dims = average.dims();
            average * decay + current.reshape(dims) * (1.0 - decay)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MlpConfig;
    use burn::tensor::Device;

    fn weights<M: Module>(model: &M) -> Vec<f32> {
        let mut c = Collect(HashMap::new());
        model.visit(&mut c);
        let mut ids: Vec<_> = c.0.keys().copied().collect();
        ids.sort_by_key(|id| id.val());
        ids.iter()
            .flat_map(|id| c.0[id].clone().try_into_vec_as::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn a_model_of_other_parameters_is_an_error_and_changes_nothing() {
        let device = Device::flex();
        let a = MlpConfig::new(2).init(&device).unwrap();
        let other = MlpConfig::new(2).init(&device).unwrap(); // same shapes, new ids
        let wider = MlpConfig::new(2).with_hidden(8).init(&device).unwrap();
        let mut ema = Ema::new(&a, 0.9, false).unwrap();
        let before = weights(ema.model());
        for model in [&other, &wider] {
            let err = ema.update(model).unwrap_err().to_string();
            assert!(err.contains("parameters"), "{err}");
        }
        assert_eq!((ema.updates(), weights(ema.model())), (0, before));
    }

    #[test]
    fn the_average_is_the_closed_form_recursion() {
        let device = Device::flex();
        let a = MlpConfig::new(2).init(&device).unwrap();
        // A second model with the same parameter ids and different values.
        let b = a.clone().map(&mut Scale(3.0));
        let mut ema = Ema::new(&a, 0.9, false).unwrap();
        ema.update(&b).unwrap();
        ema.update(&b).unwrap();
        // θ_2 = 0.81·a + 0.19·(3a) = 1.38·a.
        let (wa, we) = (weights(&a), weights(ema.model()));
        for (x, y) in wa.iter().zip(&we) {
            assert!(
                (y - 1.38 * x).abs() <= 1e-6 * (1.0 + x.abs()),
                "{y} vs {}",
                1.38 * x
            );
        }
        let warm = Ema::new(&a, 0.9999, true).unwrap();
        assert_eq!(warm.decay_at(1), 2.0 / 11.0);
        assert_eq!(warm.decay_at(100_000), 0.9999);
        assert!(Ema::new(&a, 1.5, true).is_err());
    }

    struct Scale(f32);
    impl ModuleMapper for Scale {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let s = self.0;
            param.map(|t| t * s)
        }
    }
}
