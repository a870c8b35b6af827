//! Heun's second-order method on a σ grid (Karras et al. 2022, Algorithm 1, deterministic).

use burn::tensor::Tensor;

use crate::error;
use crate::sampler::Visits;
use crate::sampler::base::{ReverseSampler, StepOutput, X0Options};
use crate::sampler::sigmas::{SigmaGrid, from_ve, to_ve, vp_scales, x0_at_sigma};

/// Heun's method on the probability-flow ODE in σ (Karras et al. 2022, "EDM",
/// Algorithm 1 with S_churn = 0), with x = x_t / a(σ):
///
/// ```text
/// d  = (x_i − x̂_0(x_i, σ_i)) / σ_i
/// x̃ = x_i + (σ_{i+1} − σ_i)·d                                   Euler predictor
/// x_{i+1} = x_i + (σ_{i+1} − σ_i)·(d + (x̃ − x̂_0(x̃, σ_{i+1}))/σ_{i+1}) / 2   if σ_{i+1} ≠ 0
/// ```
///
/// Second order, deterministic; the model is called twice per level except for the last
/// step to σ = 0, which is Euler's: 2K − 1 calls for K levels (2K with a final σ_min).
/// The visits are the predictor and corrector calls in order (level 0, then each later
/// level twice), as diffusers' `HeunDiscreteScheduler` lists its timesteps. When to
/// choose: the most accurate ODE solver per step of the three single-step ones; at equal
/// model calls DPM-Solver++(2M) is usually as good.
#[derive(Debug, Clone)]
pub struct EdmHeunSampler {
    grid: SigmaGrid,
    visits: Visits,
    /// Each visit's stage and level.
    stages: Vec<Stage>,
    x0: X0Options,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Euler from this level to the next.
    Predict(usize),
    /// Heun's correction of the step that ended at this level.
    Correct(usize),
}

impl Stage {
    fn level(self) -> usize {
        match self {
            Stage::Predict(l) | Stage::Correct(l) => l,
        }
    }
}

/// The predictor's sample and slope, which the corrector needs.
#[derive(Debug, Clone, Default)]
pub struct EdmHeunState<const D: usize> {
    predicted: Option<(Tensor<D>, Tensor<D>)>,
}

impl EdmHeunSampler {
    /// Heun over `grid`.
    ///
    /// # Errors
    /// An invalid clipping bound or threshold.
    pub fn new(grid: SigmaGrid, x0: X0Options) -> error::Result<Self> {
        x0.validate()?;
        let k = grid.levels();
        let mut stages = vec![Stage::Predict(0)];
        for level in 1..=k {
            if grid.sigma(level) > 0.0 {
                stages.push(Stage::Correct(level));
            }
            if level < k {
                stages.push(Stage::Predict(level));
            }
        }
        let levels: Vec<usize> = stages.iter().map(|s| s.level()).collect();
        Ok(Self {
            visits: grid.visits_at(&levels),
            grid,
            stages,
            x0,
        })
    }

    /// The stage of visit `i`, or an error past the last visit.
    fn stage(&self, i: usize) -> error::Result<Stage> {
        self.visits.get(i)?;
        Ok(self.stages[i])
    }
}

impl<const D: usize> ReverseSampler<D> for EdmHeunSampler {
    type State = EdmHeunState<D>;

    fn visits(&self) -> &Visits {
        &self.visits
    }

    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        Some(vp_scales(self.grid.sigma(self.stages.get(i)?.level())))
    }

    fn calls_per_step(&self) -> usize {
        2
    }

    fn fractional_model_time(&self, i: usize) -> Option<f64> {
        self.grid.fractional_time(self.stages.get(i)?.level())
    }

    fn needs_noise(&self, _i: usize) -> bool {
        false
    }

    fn step(
        &self,
        state: &mut EdmHeunState<D>,
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        _noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        let stage = self.stage(i)?;
        let sigma = self.grid.sigma(stage.level());
        let x0 = x0_at_sigma(&self.x0, &x_t, model_output, sigma)?;
        let x = to_ve(x_t, sigma);
        let d = (x.clone() - x0.clone()) / sigma;
        let (x_next, next) = match (stage, state.predicted.take()) {
            (Stage::Correct(level), Some((x_prev, d_prev))) => {
                let dt = sigma - self.grid.sigma(level - 1);
                (x_prev + (d_prev + d) * (0.5 * dt), sigma)
            }
            (Stage::Correct(level), None) => {
                return Err(crate::DiffusionError::config(
                    "step index",
                    i,
                    format!("Heun's corrector at level {level} needs the predictor's step first"),
                ));
            }
            (Stage::Predict(level), _) => {
                let next = self.grid.sigma(level + 1);
                let x_next = x.clone() + d.clone() * (next - sigma);
                if next > 0.0 {
                    state.predicted = Some((x, d));
                }
                (x_next, next)
            }
        };
        Ok(StepOutput {
            x_prev: from_ve(x_next, next),
            x0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::VpProcess;
    use crate::sampler::{FinalSigma, ModelTime, SigmaSchedule};
    use crate::schedule::ScheduleConfig;

    fn sampler(last: FinalSigma) -> EdmHeunSampler {
        let p = VpProcess::new(ScheduleConfig::new().init().unwrap());
        let spacing = SigmaSchedule::Spaced(crate::schedule::Spacing::Trailing { steps: 4 });
        let grid = SigmaGrid::new(&p, &spacing, last, ModelTime::Rounded).unwrap();
        EdmHeunSampler::new(grid, X0Options::default()).unwrap()
    }

    #[test]
    fn stages_follow_diffusers_order() {
        use Stage::*;
        let s = sampler(FinalSigma::Zero);
        assert_eq!(
            s.stages,
            [
                Predict(0),
                Correct(1),
                Predict(1),
                Correct(2),
                Predict(2),
                Correct(3),
                Predict(3)
            ]
        );
        assert_eq!(ReverseSampler::<2>::timesteps(&s).len(), 7);
        let t = ReverseSampler::<2>::timesteps(&s);
        assert_eq!(t, [999, 749, 749, 499, 499, 249, 249]);
        // A final σ_min adds its corrector.
        let s = sampler(FinalSigma::Min);
        assert_eq!(s.stages.last(), Some(&Correct(4)));
        assert_eq!(ReverseSampler::<2>::timesteps(&s).last(), Some(&0));
    }
}
