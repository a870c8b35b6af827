//! Inpainting by replacement: the known pixels follow their own forward process.

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::sampler::Visits;
use crate::sampler::base::{ReverseSampler, StepOutput};
use crate::schedule::check_same_shape;

/// Inpainting with any sampler by replacement (Song et al. 2021, App. I.2; diffusers'
/// inpainting pipelines with a plain UNet): after every step the known pixels (mask 1)
/// are replaced by the known image noised to the step's target level, the unknown ones
/// (mask 0) keep what the sampler made of them:
///
/// ```text
/// x' ← m ⊙ (a'·x_known + s'·ε) + (1 − m) ⊙ x'
/// ```
///
/// with (a', s') the scales of q(x_t | x_0) at the next visit (a' = 1, s' = 0 after the
/// last: the known pixels of the result are the image) and ε a fixed noise (diffusers uses
/// the starting noise). Replacement is exact where the unknown pixels are independent of
/// the known ones; where they are correlated it is an approximation (its error on a
/// correlated Gaussian is in `docs/samplers.md`).
///
/// # Shapes
/// - `known`, `mask`, `noise`: the sampled batch's shape `[N, ...]`; the mask holds 1
///   (known) or 0 (to paint), and may be fractional for soft edges.
#[derive(Debug, Clone)]
pub struct Inpaint<S, const D: usize> {
    sampler: S,
    known: Tensor<D>,
    mask: Tensor<D>,
    noise: Tensor<D>,
}

impl<S: ReverseSampler<D>, const D: usize> Inpaint<S, D> {
    /// `sampler`, keeping the pixels of `known` where `mask` is 1.
    ///
    /// # Errors
    /// `mask` or `noise` of another shape than `known`; a sampler without
    /// [`ReverseSampler::marginal`] at its visits.
    pub fn new(
        sampler: S,
        known: Tensor<D>,
        mask: Tensor<D>,
        noise: Tensor<D>,
    ) -> error::Result<Self> {
        check_same_shape("mask vs known image", &known, &mask)?;
        check_same_shape("noise vs known image", &known, &noise)?;
        if (0..sampler.timesteps().len()).any(|i| sampler.marginal(i).is_none()) {
            return Err(DiffusionError::config(
                "sampler",
                "no marginal",
                "inpainting needs a sampler that reports q(x_t | x_0) at its visits",
            ));
        }
        Ok(Self {
            sampler,
            known,
            mask,
            noise,
        })
    }

    /// x_T for the sampling loop: the known pixels noised to the first visit's level,
    /// `start` (e.g. N(0, I) noise) elsewhere.
    ///
    /// # Errors
    /// `start` of another shape than the known image.
    pub fn start(&self, start: Tensor<D>) -> error::Result<Tensor<D>> {
        check_same_shape("start vs known image", &self.known, &start)?;
        Ok(self.replace(start, self.sampler.marginal(0).unwrap_or((1.0, 0.0))))
    }

    fn replace(&self, x: Tensor<D>, (a, s): (f64, f64)) -> Tensor<D> {
        let known = self.known.clone() * a + self.noise.clone() * s;
        x.clone() + (known - x) * self.mask.clone()
    }
}

impl<S: ReverseSampler<D>, const D: usize> ReverseSampler<D> for Inpaint<S, D> {
    type State = S::State;

    fn visits(&self) -> &Visits {
        self.sampler.visits()
    }

    fn fractional_model_time(&self, i: usize) -> Option<f64> {
        self.sampler.fractional_model_time(i)
    }

    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        self.sampler.marginal(i)
    }

    fn calls_per_step(&self) -> usize {
        self.sampler.calls_per_step()
    }

    fn needs_noise(&self, i: usize) -> bool {
        self.sampler.needs_noise(i)
    }

    fn step(
        &self,
        state: &mut S::State,
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        check_same_shape("x_t vs known image", &self.known, &x_t)?;
        let out = self.sampler.step(state, i, x_t, model_output, noise)?;
        let next = self.sampler.marginal(i + 1).unwrap_or((1.0, 0.0));
        Ok(StepOutput {
            x_prev: self.replace(out.x_prev, next),
            x0: out.x0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::VpProcess;
    use crate::sampler::{ModelTime, X0Options, sampler_by_name};
    use crate::schedule::ScheduleConfig;
    use burn::tensor::Device;

    #[test]
    fn shapes_must_match_the_known_image() {
        let device = Device::flex();
        let p = VpProcess::new(ScheduleConfig::new().init().unwrap());
        let s = sampler_by_name("ddim", &p, 5, X0Options::default(), ModelTime::Rounded).unwrap();
        let known = Tensor::<2>::ones([2, 3], &device);
        let wrong = Tensor::<2>::ones([2, 4], &device);
        let new = |mask: &Tensor<2>, noise: &Tensor<2>| {
            Inpaint::new(s.clone(), known.clone(), mask.clone(), noise.clone())
        };
        assert!(
            new(&wrong, &known)
                .unwrap_err()
                .to_string()
                .contains("mask")
        );
        assert!(
            new(&known, &wrong)
                .unwrap_err()
                .to_string()
                .contains("noise")
        );
        let ok = new(&known, &known).unwrap();
        assert!(ok.start(wrong).is_err());
    }
}
