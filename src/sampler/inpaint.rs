//! Inpainting by replacement: the known pixels follow their own forward process.

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::noise::randn;
use crate::sampler::Visits;
use crate::sampler::base::{ReverseSampler, StepOutput};
use crate::sampler::resampling::{Resampling, renoise_scales};
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
/// correlated Gaussian is in `docs/samplers.md`); [`Inpaint::with_resampling`] adds
/// RePaint's resampling, which closes most of that error.
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
    plan: Option<Plan>,
}

/// The sampler's steps in RePaint's order, as visits of the wrapped sampler.
#[derive(Debug, Clone)]
struct Plan {
    /// The inner step taken m-th.
    steps: Vec<usize>,
    /// The inner visits in the order they are made.
    visits: Visits,
    /// After the m-th step: the jump's number and the inner visit it goes back up to.
    jumps: Vec<Option<(u64, usize)>>,
    seed: u64,
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
            plan: None,
        })
    }

    /// With RePaint's resampling (see [`Resampling`]): the visits become the wrapped
    /// sampler's visits in the resampling order, and after a step that a jump follows the
    /// sample is noised back up. A multistep sampler's history is cleared at each jump
    /// (it belongs to the abandoned path), so it restarts at first order.
    ///
    /// # Errors
    /// As [`Resampling::schedule`].
    ///
    /// # Example
    /// ```
    /// use burn::tensor::{Device, Tensor};
    /// use burn_diffusion::process::VpProcess;
    /// use burn_diffusion::sampler::{
    ///     Inpaint, ModelTime, Resampling, ReverseSampler, X0Options, sampler_by_name,
    /// };
    /// use burn_diffusion::schedule::ScheduleConfig;
    ///
    /// let device = Device::flex();
    /// let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    /// let ddpm = sampler_by_name("ddpm", &process, 50, X0Options::default(), ModelTime::Rounded)?;
    /// let image = Tensor::<2>::zeros([1, 4], &device);
    /// let mask = Tensor::<1>::from_floats([1.0, 1.0, 0.0, 0.0], &device).reshape([1, 4]);
    /// let noise = Tensor::<2>::zeros([1, 4], &device);
    /// let repaint = Inpaint::new(ddpm, image, mask, noise)?
    ///     .with_resampling(Resampling::new(1, 10, 7))?;
    /// // 50 steps, each but the last taken 10 times.
    /// assert_eq!(ReverseSampler::<2>::timesteps(&repaint).len(), 50 + 9 * 49);
    /// # Ok::<(), burn_diffusion::DiffusionError>(())
    /// ```
    pub fn with_resampling(mut self, resampling: Resampling) -> error::Result<Self> {
        // The last step may make fewer calls (Heun's to σ = 0 is an Euler step); it is
        // never revisited, so visit `m·calls` starts the m-th step taken.
        let (calls, len) = (
            self.sampler.calls_per_step(),
            self.sampler.timesteps().len(),
        );
        let steps = resampling.schedule(len.div_ceil(calls))?;
        let visits: Vec<usize> = steps
            .iter()
            .flat_map(|&step| step * calls..((step + 1) * calls).min(len))
            .collect();
        let mut count = 0;
        let jumps = (0..steps.len())
            .map(|m| {
                let next = *steps.get(m + 1)?;
                (next != steps[m] + 1).then(|| {
                    count += 1;
                    (count - 1, next * calls)
                })
            })
            .collect();
        self.plan = Some(Plan {
            visits: self.sampler.visits().select(&visits),
            steps,
            jumps,
            seed: resampling.seed,
        });
        Ok(self)
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

    /// The wrapped sampler's visit made at visit `i`.
    fn inner(&self, i: usize) -> usize {
        match &self.plan {
            None => i,
            Some(plan) => {
                let calls = self.sampler.calls_per_step();
                plan.steps
                    .get(i / calls)
                    .map_or(i, |step| step * calls + i % calls)
            }
        }
    }

    /// After visit `i`: the jump's number and the inner visit it goes back up to, when a
    /// jump follows.
    fn jump_after(&self, i: usize) -> Option<(u64, usize)> {
        let calls = self.sampler.calls_per_step();
        let jump = *self.plan.as_ref()?.jumps.get(i / calls)?;
        jump.filter(|_| i % calls == calls - 1)
    }
}

impl<S: ReverseSampler<D>, const D: usize> ReverseSampler<D> for Inpaint<S, D> {
    type State = S::State;

    fn visits(&self) -> &Visits {
        self.plan
            .as_ref()
            .map_or_else(|| self.sampler.visits(), |plan| &plan.visits)
    }

    fn fractional_model_time(&self, i: usize) -> Option<f64> {
        self.sampler.fractional_model_time(self.inner(i))
    }

    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        self.sampler.marginal(self.inner(i))
    }

    fn calls_per_step(&self) -> usize {
        self.sampler.calls_per_step()
    }

    fn needs_noise(&self, i: usize) -> bool {
        self.sampler.needs_noise(self.inner(i))
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
        let inner = self.inner(i);
        let out = self.sampler.step(state, inner, x_t, model_output, noise)?;
        let reached = self.sampler.marginal(inner + 1).unwrap_or((1.0, 0.0));
        let mut x_prev = self.replace(out.x_prev, reached);
        if let (Some((jump, back)), Some(plan)) = (self.jump_after(i), &self.plan) {
            let above = self.sampler.marginal(back).unwrap_or((1.0, 0.0));
            let (r, sigma) = renoise_scales(above, reached);
            let z = randn(
                x_prev.shape(),
                plan.seed.wrapping_add(jump),
                &x_prev.device(),
            );
            x_prev = x_prev * r + z * sigma;
            *state = S::State::default();
        }
        Ok(StepOutput { x_prev, x0: out.x0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::VpProcess;
    use crate::sampler::{ModelTime, SampleOptions, X0Options, sample, sampler_by_name};
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
        assert!(ok.with_resampling(Resampling::new(0, 2, 0)).is_err());
    }

    #[test]
    fn resampling_revisits_steps_and_every_sampler_runs_through_the_jumps() {
        let device = Device::flex();
        let p = VpProcess::new(ScheduleConfig::new().init().unwrap());
        let known = Tensor::<2>::zeros([2, 3], &device);
        let mask = Tensor::<1>::from_floats([1.0, 0.0, 0.0], &device)
            .reshape([1, 3])
            .repeat_dim(0, 2);
        let model = |x: Tensor<2>, _: Tensor<1, burn::tensor::Int>| x * 0.5;
        for name in [
            "ddpm",
            "dpmpp_2m",
            "dpmpp_3m_sde",
            "unipc_3",
            "heun",
            "euler_a",
        ] {
            let s = sampler_by_name(name, &p, 4, X0Options::default(), ModelTime::Rounded).unwrap();
            let calls = ReverseSampler::<2>::calls_per_step(&s);
            let plain = ReverseSampler::<2>::timesteps(&s).to_vec();
            let inpaint = Inpaint::new(s, known.clone(), mask.clone(), known.clone())
                .unwrap()
                .with_resampling(Resampling::new(2, 2, 1))
                .unwrap();
            // Steps 0 1 | 0 1 2 3 (one jump back two levels at level 2).
            let want: Vec<usize> = [0, 1, 0, 1, 2, 3]
                .iter()
                .flat_map(|k| plain[k * calls..((k + 1) * calls).min(plain.len())].to_vec())
                .collect();
            assert_eq!(
                ReverseSampler::<2>::timesteps(&inpaint),
                want.as_slice(),
                "{name}"
            );
            let start = inpaint.start(Tensor::ones([2, 3], &device)).unwrap();
            let out = sample(&inpaint, &model, start, SampleOptions::default(), |_, _| {})
                .unwrap()
                .sample;
            let v = out.into_data().try_to_vec::<f32>().unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "{name}: {v:?}");
            assert_eq!((v[0], v[3]), (0.0, 0.0), "{name}: known pixels");
        }
    }
}
