//! DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2).

use burn::tensor::Tensor;

use crate::error;
use crate::process::ForwardProcess;
use crate::sampler::Visits;
use crate::sampler::base::{ReverseSampler, StepOutput, X0Options};
use crate::schedule::Spacing;

/// DPM-Solver++(2M): a second-order multistep solver of the probability-flow ODE in its
/// data-prediction form, with λ_t = log(a_t / s_t) and h_i = λ_{t_{i+1}} − λ_{t_i}:
///
/// ```text
/// x_{t_{i+1}} = (s_{i+1}/s_i)·x_{t_i} − a_{i+1}·(e^{−h_i} − 1)·D_i
/// D_i = x̂_0(t_i)                                       first step and last step
/// D_i = (1 + 1/(2r_i))·x̂_0(t_i) − 1/(2r_i)·x̂_0(t_{i−1}),  r_i = h_{i−1}/h_i   otherwise
/// ```
///
/// $$\mathbf x_{t_{i+1}} = \frac{\sigma_{i+1}}{\sigma_i}\mathbf x_{t_i} - \alpha_{i+1}(e^{-h_i}-1)\mathbf D_i$$
///
/// The last step goes to the data (a = 1, s = 0): x = D with the first-order D (diffusers'
/// `final_sigmas_type = "zero"`). Deterministic; the previous x̂_0 and h are the explicit
/// [`DpmSolverState`]. When to choose: 10–25 steps for DDPM-quality samples.
#[derive(Debug, Clone)]
pub struct DpmSolverSampler<P> {
    process: P,
    visits: Visits,
    x0: X0Options,
}

/// The previous step's x̂_0 and h, which the second-order update needs.
#[derive(Debug, Clone, Default)]
pub struct DpmSolverState<const D: usize> {
    previous: Option<(Tensor<D>, f64)>,
}

impl<P: ForwardProcess> DpmSolverSampler<P> {
    /// The solver over the timesteps `spacing` keeps (diffusers uses `Linspace` or
    /// `Trailing`).
    ///
    /// # Errors
    /// As [`Spacing::timesteps`]; an invalid dynamic threshold.
    pub fn new(process: P, spacing: &Spacing, x0: X0Options) -> error::Result<Self> {
        let visits = Visits::spaced(&process, spacing)?;
        Self::with_timesteps(process, visits.timesteps().to_vec(), x0)
    }

    /// diffusers' default grid for `steps` steps: linspace(0, T − 1, steps + 1) rounded,
    /// without its last point 0 — the final step then goes from the smallest kept t
    /// straight to the data, avoiding a second-order step across the steep end of log-SNR.
    ///
    /// # Errors
    /// `steps` = 0 or ≥ T; an invalid dynamic threshold.
    pub fn diffusers_default(process: P, steps: usize, x0: X0Options) -> error::Result<Self> {
        let mut timesteps =
            Spacing::Linspace { steps: steps + 1 }.timesteps(process.num_timesteps())?;
        timesteps.reverse();
        timesteps.pop();
        Self::with_timesteps(process, timesteps, x0)
    }

    /// The solver over explicit timesteps, in decreasing order.
    ///
    /// # Errors
    /// Empty, not strictly decreasing or out-of-range timesteps; an invalid threshold.
    pub fn with_timesteps(process: P, timesteps: Vec<usize>, x0: X0Options) -> error::Result<Self> {
        x0.validate()?;
        Ok(Self {
            visits: Visits::new(&process, timesteps)?,
            process,
            x0,
        })
    }

    fn lambda(&self, t: usize) -> f64 {
        (self.process.signal_scale()[t] / self.process.noise_std()[t]).ln()
    }
}

impl<P: ForwardProcess, const D: usize> ReverseSampler<D> for DpmSolverSampler<P> {
    type State = DpmSolverState<D>;

    fn visits(&self) -> &Visits {
        &self.visits
    }

    fn needs_noise(&self, _i: usize) -> bool {
        false
    }

    fn step(
        &self,
        state: &mut DpmSolverState<D>,
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        _noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        let t = self.visits.get(i)?;
        let (x0, _) = self.x0.x0_eps_at(&self.process, &x_t, t, model_output)?;
        let Some(next) = self.visits.next(i) else {
            state.previous = None;
            return Ok(StepOutput {
                x_prev: x0.clone(),
                x0,
            });
        };
        let (a_next, s_now, s_next) = (
            self.process.signal_scale()[next],
            self.process.noise_std()[t],
            self.process.noise_std()[next],
        );
        let h = self.lambda(next) - self.lambda(t);
        let d = match state.previous.take() {
            Some((x0_prev, h_prev)) => {
                let r = h_prev / h;
                x0.clone() * (1.0 + 0.5 / r) - x0_prev * (0.5 / r)
            }
            None => x0.clone(),
        };
        state.previous = Some((x0.clone(), h));
        Ok(StepOutput {
            x_prev: x_t * (s_next / s_now) - d * (a_next * (-h).exp_m1()),
            x0,
        })
    }
}
