//! Samplers from the SDE view (Song et al. 2021): Euler–Maruyama on the reverse SDE and
//! Heun on the probability-flow ODE, over the discrete chain's per-step rates.

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::process::ForwardProcess;
use crate::sampler::Visits;
use crate::sampler::base::{
    ReverseSampler, StepOutput, X0Options, process_marginal, require_noise,
};
use crate::schedule::Spacing;

/// The forward chain seen as an SDE in units of one discrete step: with
/// q(x_t | x_{t−1}) = N(c_t x_{t−1}, d_t²), the drift is −(1 − c_t)·x and the squared
/// diffusion d_t² (VP: (1 − c) ≈ β/2 and d² = β — the VP SDE dx = −½β x dτ + √β dw;
/// VE: drift 0 and d² = σ_t² − σ_{t−1}² — the VE SDE).
///
/// The reverse-time SDE is dx = [−(1 − c)x − d²∇log p] dt + d dw̄ and the probability-flow
/// ODE dx = [−(1 − c)x − ½ d² ∇log p] dt, with ∇log p_t(x) = −ε̂ / s_t.
fn rates<P: ForwardProcess>(process: &P, t: usize) -> (f64, f64, f64) {
    let c = process.transition_scale()[t];
    (
        1.0 - c,
        process.transition_variance()[t],
        process.noise_std()[t],
    )
}

/// The score-equivalent drift term, d²·∇log p = −d²·ε̂/s_t, from a model output.
fn score_term<P: ForwardProcess, const D: usize>(
    process: &P,
    x0: &X0Options,
    t: usize,
    x_t: &Tensor<D>,
    output: Tensor<D>,
) -> error::Result<(Tensor<D>, Tensor<D>)> {
    let (x0_hat, eps) = x0.x0_eps_at(process, x_t, t, output)?;
    let (_, d2, s) = rates(process, t);
    Ok((eps * (-d2 / s), x0_hat))
}

/// Euler–Maruyama on the reverse SDE (Song et al. 2021, eq. 6), from each visited t to the
/// next (h discrete steps, or t + 1 to reach the data):
///
/// ```text
/// x' = x + h·[(1 − c_t)·x + d_t²·∇log p_t(x)] + √(h·d_t²)·z,   ∇log p_t = −ε̂/s_t
/// ```
///
/// When to choose: the plain SDE solver, for checking a model on the continuous view;
/// it needs many steps (hundreds) — DDPM is the better discretization of the same SDE.
#[derive(Debug, Clone)]
pub struct EulerMaruyamaSampler<P> {
    process: P,
    visits: Visits,
    x0: X0Options,
}

impl<P: ForwardProcess> EulerMaruyamaSampler<P> {
    /// The sampler over the timesteps `spacing` keeps.
    ///
    /// # Errors
    /// As [`Spacing::timesteps`]; an invalid dynamic threshold.
    pub fn new(process: P, spacing: &Spacing, x0: X0Options) -> error::Result<Self> {
        x0.validate()?;
        Ok(Self {
            visits: Visits::spaced(&process, spacing)?,
            process,
            x0,
        })
    }

    /// The step length from visit `i` (at `t`) to the next timestep, or to −1 (the data).
    fn h(&self, i: usize, t: usize) -> f64 {
        let next = self.visits.next(i).map_or(-1, |t| t as i64);
        (t as i64 - next) as f64
    }
}

impl<P: ForwardProcess, const D: usize> ReverseSampler<D> for EulerMaruyamaSampler<P> {
    type State = ();

    fn visits(&self) -> &Visits {
        &self.visits
    }

    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        process_marginal(&self.process, &self.visits, i)
    }

    fn needs_noise(&self, i: usize) -> bool {
        i < self.visits.len()
    }

    fn step(
        &self,
        _state: &mut (),
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        let t = self.visits.get(i)?;
        let (score, x0) = score_term(&self.process, &self.x0, t, &x_t, model_output)?;
        let (shrink, d2, _) = rates(&self.process, t);
        let h = self.h(i, t);
        let noise = require_noise(noise, &x_t, i, t)?;
        let x_prev = x_t.clone() + (x_t * shrink + score) * h + noise * (h * d2).sqrt();
        Ok(StepOutput { x_prev, x0 })
    }
}

/// Heun's method (2nd order) on the probability-flow ODE (Song et al. 2021, eq. 13;
/// Karras et al. 2022, Algorithm 1), F(x, t) = (1 − c_t)·x + ½ d_t²·∇log p_t(x):
///
/// ```text
/// x̃ = x + h·F(x, t);   x' = x + h/2·(F(x, t) + F(x̃, t'))   (Euler on the last step)
/// ```
///
/// Each step but the last evaluates the model twice: the visits are t_0, then t_1 twice
/// (corrector at x̃, predictor at x'), and so on. Deterministic. When to choose: a
/// deterministic sampler with good accuracy per model evaluation (≈ 2× the steps of DDIM
/// in evaluations).
#[derive(Debug, Clone)]
pub struct HeunSampler<P> {
    process: P,
    /// The distinct timesteps, decreasing.
    grid: Visits,
    /// Per visit: (grid index, is corrector).
    roles: Vec<(usize, bool)>,
    visits: Visits,
    x0: X0Options,
}

/// What Heun's predictor leaves for its corrector.
#[derive(Debug, Clone, Default)]
pub struct HeunState<const D: usize> {
    pending: Option<(Tensor<D>, Tensor<D>)>,
}

impl<P: ForwardProcess> HeunSampler<P> {
    /// The sampler over the timesteps `spacing` keeps.
    ///
    /// # Errors
    /// As [`Spacing::timesteps`]; an invalid dynamic threshold.
    pub fn new(process: P, spacing: &Spacing, x0: X0Options) -> error::Result<Self> {
        x0.validate()?;
        let grid = Visits::spaced(&process, spacing)?;
        let mut roles = vec![(0, false)];
        for k in 1..grid.len() {
            roles.push((k, true));
            roles.push((k, false));
        }
        let timesteps = roles.iter().map(|(k, _)| grid.timesteps()[*k]).collect();
        Ok(Self {
            visits: Visits::with_repeats(&process, timesteps)?,
            process,
            grid,
            roles,
            x0,
        })
    }

    fn drift<const D: usize>(
        &self,
        t: usize,
        x: Tensor<D>,
        output: Tensor<D>,
    ) -> error::Result<(Tensor<D>, Tensor<D>)> {
        let (score, x0) = score_term(&self.process, &self.x0, t, &x, output)?;
        let (shrink, _, _) = rates(&self.process, t);
        Ok((x * shrink + score * 0.5, x0))
    }
}

impl<P: ForwardProcess, const D: usize> ReverseSampler<D> for HeunSampler<P> {
    type State = HeunState<D>;

    fn visits(&self) -> &Visits {
        &self.visits
    }

    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        process_marginal(&self.process, &self.visits, i)
    }

    fn calls_per_step(&self) -> usize {
        2
    }

    fn needs_noise(&self, _i: usize) -> bool {
        false
    }

    fn step(
        &self,
        state: &mut HeunState<D>,
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        _noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        let t = self.visits.get(i)?;
        let (k, corrector) = self.roles[i];
        let (f, x0) = self.drift(t, x_t.clone(), model_output)?;
        if corrector {
            let (x_start, f_start) = state.pending.take().ok_or_else(|| {
                DiffusionError::config(
                    "step index",
                    i,
                    "a corrector visit must follow its predictor",
                )
            })?;
            let h = (self.grid.timesteps()[k - 1] - t) as f64;
            return Ok(StepOutput {
                x_prev: x_start + (f_start + f) * (0.5 * h),
                x0,
            });
        }
        match self.grid.next(k) {
            Some(next) => {
                let h = (t - next) as f64;
                let x_trial = x_t.clone() + f.clone() * h;
                state.pending = Some((x_t, f));
                Ok(StepOutput {
                    x_prev: x_trial,
                    x0,
                })
            }
            // The last step reaches the data: Euler, h = t + 1.
            None => Ok(StepOutput {
                x_prev: x_t + f * (t + 1) as f64,
                x0,
            }),
        }
    }
}
