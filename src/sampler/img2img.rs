//! Image-to-image: start a sampler part-way down from a noised image (SDEdit).

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::sampler::Visits;
use crate::sampler::base::{ReverseSampler, StepOutput};
use crate::schedule::check_same_shape;

/// Image-to-image translation by SDEdit (Meng et al. 2022): noise an image x_0 to a
/// level of the sampler's grid and run the sampler from there, as diffusers'
/// img2img pipelines do with `strength`:
///
/// ```text
/// kept steps = min(⌊K·strength⌋, K),   start step = K − kept steps
/// x_start = a·x_0 + s·ε   at the start step's level,   ε ~ N(0, I)
/// ```
///
/// `strength` = 1 starts from (almost) pure noise and ignores the image; small strengths
/// keep its layout and change details. Works with every sampler that reports its
/// [`ReverseSampler::marginal`] (all of the crate's discrete VP samplers); multistep
/// samplers start their history afresh, and two-call samplers (Heun) start at a
/// predictor visit, as in diffusers (`timesteps[t_start · order:]`).
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::{noise::randn, process::VpProcess, schedule::ScheduleConfig};
/// use burn_diffusion::sampler::{Img2Img, ModelTime, ReverseSampler, SampleOptions, X0Options, sample, sampler_by_name};
///
/// let device = Device::flex();
/// let process = VpProcess::new(ScheduleConfig::new().init()?);
/// let euler = sampler_by_name("euler", &process, 10, X0Options::default(), ModelTime::Rounded)?;
/// let img2img = Img2Img::new(euler, 0.6)?;
/// assert_eq!(ReverseSampler::<2>::timesteps(&img2img).len(), 6);
/// let image = Tensor::<2>::ones([4, 2], &device);
/// let start = img2img.noised_start(image, randn::<2>([4, 2], 1, &device))?;
/// let model = |x_t: Tensor<2>, _t: Tensor<1, Int>| x_t * 0.1;
/// let out = sample(&img2img, &model, start, SampleOptions::default(), |_, _| {})?;
/// assert_eq!(out.sample.dims(), [4, 2]);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Img2Img<S, const D: usize> {
    sampler: S,
    /// The first kept visit of `sampler`.
    start: usize,
    visits: Visits,
    /// (a, s) of the first kept visit.
    scales: (f64, f64),
}

impl<S: ReverseSampler<D>, const D: usize> Img2Img<S, D> {
    /// `sampler` from the level `strength` ∈ (0, 1] keeps.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] for a strength outside (0, 1] (or NaN), one that
    /// keeps no step (⌊K·strength⌋ = 0), or a sampler without
    /// [`ReverseSampler::marginal`].
    pub fn new(sampler: S, strength: f64) -> error::Result<Self> {
        if !(strength > 0.0 && strength <= 1.0) {
            return Err(DiffusionError::config(
                "strength",
                strength,
                "must be in (0, 1]",
            ));
        }
        let per_step = sampler.calls_per_step().max(1);
        let visits = sampler.timesteps().len();
        let steps = visits.div_ceil(per_step);
        let kept = ((steps as f64 * strength) as usize).min(steps);
        if kept == 0 {
            return Err(DiffusionError::config(
                "strength",
                strength,
                format!("keeps no step of {steps}: it must be at least 1/{steps}"),
            ));
        }
        let start = (steps - kept) * per_step;
        let scales = sampler.marginal(start).ok_or_else(|| {
            DiffusionError::config(
                "sampler",
                "no marginal",
                "img2img needs a sampler that reports q(x_t | x_0) at its visits",
            )
        })?;
        let kept_visits: Vec<usize> = (start..visits).collect();
        Ok(Self {
            visits: sampler.visits().select(&kept_visits),
            sampler,
            start,
            scales,
        })
    }

    /// x_start = a·`image` + s·`noise`: the image noised to the first kept level
    /// (diffusers' `scheduler.add_noise(image, noise, timesteps[:1])`).
    ///
    /// # Shapes
    /// - `image`, `noise`: `[N, ...]`; output `[N, ...]`
    ///
    /// # Errors
    /// `noise` of another shape than `image`.
    pub fn noised_start(&self, image: Tensor<D>, noise: Tensor<D>) -> error::Result<Tensor<D>> {
        check_same_shape("noise vs image", &image, &noise)?;
        let (a, s) = self.scales;
        Ok(image * a + noise * s)
    }

    /// The index of the first kept visit in the underlying sampler.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The underlying sampler.
    pub fn sampler(&self) -> &S {
        &self.sampler
    }
}

impl<S: ReverseSampler<D>, const D: usize> ReverseSampler<D> for Img2Img<S, D> {
    type State = S::State;

    fn visits(&self) -> &Visits {
        &self.visits
    }

    fn fractional_model_time(&self, i: usize) -> Option<f64> {
        self.sampler.fractional_model_time(i + self.start)
    }

    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        self.sampler.marginal(i + self.start)
    }

    fn calls_per_step(&self) -> usize {
        self.sampler.calls_per_step()
    }

    fn needs_noise(&self, i: usize) -> bool {
        self.sampler.needs_noise(i + self.start)
    }

    fn step(
        &self,
        state: &mut S::State,
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        self.visits.get(i)?;
        self.sampler
            .step(state, i + self.start, x_t, model_output, noise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::VpProcess;
    use crate::sampler::{ModelTime, X0Options, sampler_by_name};
    use crate::schedule::ScheduleConfig;

    fn named(name: &str, steps: usize) -> crate::sampler::AnySampler {
        let p = VpProcess::new(ScheduleConfig::new().init().unwrap());
        sampler_by_name(name, &p, steps, X0Options::default(), ModelTime::Rounded).unwrap()
    }

    #[test]
    fn kept_visits_follow_diffusers_get_timesteps() {
        // diffusers: init = min(int(K·strength), K), t_start = K − init,
        // timesteps[t_start · order:].
        for (name, order) in [("ddim", 1), ("dpmpp_2m", 1), ("euler", 1), ("heun", 2)] {
            let s = named(name, 10);
            let all = ReverseSampler::<2>::timesteps(&s).to_vec();
            for strength in [0.1, 0.35, 0.75, 1.0] {
                let img = Img2Img::<_, 2>::new(s.clone(), strength).unwrap();
                let init = ((10.0 * strength) as usize).min(10);
                let t_start = 10 - init;
                assert_eq!(
                    img.timesteps(),
                    &all[t_start * order..],
                    "{name} {strength}"
                );
            }
        }
    }

    #[test]
    fn bad_strengths_are_errors() {
        let s = named("ddim", 10);
        for strength in [0.0, -0.5, 1.5, f64::NAN, 0.05] {
            assert!(
                Img2Img::<_, 2>::new(s.clone(), strength).is_err(),
                "{strength}"
            );
        }
    }
}
