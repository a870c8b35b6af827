//! DPM-Solver++ 1S/2M/3M and their SDE variants (Lu et al. 2022, "DPM-Solver++").

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::process::ForwardProcess;
use crate::sampler::base::{ReverseSampler, StepOutput, X0Options, require_noise};
use crate::sampler::euler::levels;
use crate::sampler::sigmas::{
    FinalSigma, ModelTime, SigmaGrid, SigmaSchedule, visits_each_level, vp_scales, x0_at_sigma,
};
use crate::schedule::Spacing;

/// DPM-Solver++ (Lu et al. 2022, "DPM-Solver++", Algorithm 2 and its third-order and SDE
/// variants): a multistep solver of the probability-flow ODE in its data-prediction form,
/// with λ = log(a/s) = −log σ and h_i = λ_{i+1} − λ_i. For the second order (2M):
///
/// ```text
/// x_{i+1} = (s_{i+1}/s_i)·x_i − a_{i+1}·(e^{−h_i} − 1)·D_i
/// D_i = x̂_0(t_i)                                       first step and last step
/// D_i = (1 + 1/(2r_i))·x̂_0(t_i) − 1/(2r_i)·x̂_0(t_{i−1}),  r_i = h_{i−1}/h_i   otherwise
/// ```
///
/// $$\mathbf x_{t_{i+1}} = \frac{\sigma_{i+1}}{\sigma_i}\mathbf x_{t_i} - \alpha_{i+1}(e^{-h_i}-1)\mathbf D_i$$
///
/// [`DpmSolverOptions`] chooses the order (1, 2 or 3: DPM-Solver++(3M) adds a second
/// difference of x̂_0), the second-order form (midpoint, as above, or Heun's), and the SDE
/// variant (DPM-Solver++(2M) SDE, Lu et al. 2023, §4: the coefficients of the
/// variance-preserving SDE, e^{−h} on x and fresh noise s_{i+1}·√(1 − e^{−2h})·z). The
/// first steps use the orders their history allows; the last step to σ = 0 is first order
/// (x = D); with few steps (< 15) and `lower_order_final`, the last two drop to orders 1
/// and 2. This is diffusers' `DPMSolverMultistepScheduler` with `algorithm_type`
/// `dpmsolver++` / `sde-dpmsolver++`, and A1111's "DPM++ 2M", "DPM++ 2M SDE" and
/// "DPM++ 3M SDE" (with Karras σ's: "… Karras").
///
/// It runs on any [`SigmaGrid`]; [`DpmSolverSampler::new`] is the schedule's own σ's at a
/// spacing. When to choose: 10–25 steps for DDPM-quality samples; the SDE variant needs
/// more (20–50) but is more robust to an imperfect model.
#[derive(Debug, Clone)]
pub struct DpmSolverSampler<P> {
    process: P,
    grid: SigmaGrid,
    x0: X0Options,
    options: DpmSolverOptions,
}

/// The choices of DPM-Solver++ (diffusers' names in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpmSolverOptions {
    /// 1, 2 or 3 (`solver_order`; 2 by default).
    pub order: usize,
    /// The SDE variant (`algorithm_type = "sde-dpmsolver++"`); it draws noise.
    pub sde: bool,
    /// The second-order form (`solver_type`).
    pub second_order: SecondOrder,
    /// With fewer than 15 steps, lower the order of the last two steps
    /// (`lower_order_final`, true by default).
    pub lower_order_final: bool,
    /// The last step is always first order (`euler_at_final`, false by default).
    pub euler_at_final: bool,
}

impl Default for DpmSolverOptions {
    /// DPM-Solver++(2M), midpoint, ODE, `lower_order_final`: diffusers' defaults.
    fn default() -> Self {
        Self {
            order: 2,
            sde: false,
            second_order: SecondOrder::Midpoint,
            lower_order_final: true,
            euler_at_final: false,
        }
    }
}

/// The second-order update of DPM-Solver++(2M).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecondOrder {
    /// D = x̂_0 + ½·(x̂_0 − x̂_0')/r, the paper's (diffusers' default).
    #[default]
    Midpoint,
    /// The Heun-like form, φ₂ weighting of the difference (diffusers' `solver_type = "heun"`).
    Heun,
}

/// The previous steps' x̂_0 and λ (most recent last), which the multistep updates need.
#[derive(Debug, Clone, Default)]
pub struct DpmSolverState<const D: usize> {
    previous: Vec<(Tensor<D>, f64)>,
}

impl<P: ForwardProcess> DpmSolverSampler<P> {
    /// The solver over the timesteps `spacing` keeps (diffusers uses `Linspace` or
    /// `Trailing`).
    ///
    /// # Errors
    /// As [`Spacing::timesteps`]; an invalid dynamic threshold.
    pub fn new(process: P, spacing: &Spacing, x0: X0Options) -> error::Result<Self> {
        let grid = SigmaSchedule::Spaced(spacing.clone());
        let grid = SigmaGrid::new(&process, &grid, FinalSigma::Zero, ModelTime::Rounded)?;
        Self::with_grid(process, grid, x0, DpmSolverOptions::default())
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
        let grid = SigmaSchedule::Timesteps(timesteps);
        let grid = SigmaGrid::new(&process, &grid, FinalSigma::Zero, ModelTime::Rounded)?;
        Self::with_grid(process, grid, x0, DpmSolverOptions::default())
    }

    /// The solver over any σ grid (Karras, exponential, …) with the given options.
    ///
    /// # Errors
    /// An order other than 1, 2 or 3; an invalid clipping bound or threshold.
    pub fn with_grid(
        process: P,
        grid: SigmaGrid,
        x0: X0Options,
        options: DpmSolverOptions,
    ) -> error::Result<Self> {
        if !(1..=3).contains(&options.order) {
            return Err(DiffusionError::config(
                "DPM-Solver order",
                options.order,
                "must be 1, 2 or 3",
            ));
        }
        x0.validate()?;
        Ok(Self {
            process,
            grid,
            x0,
            options,
        })
    }

    /// The process the solver was built on.
    pub fn process(&self) -> &P {
        &self.process
    }

    /// The order of step `i` given `history` earlier x̂_0's (diffusers' rules).
    fn order_at(&self, i: usize, history: usize) -> usize {
        let k = self.grid.levels();
        let few = self.options.lower_order_final && k < 15;
        let last = i + 1 == k && (self.options.euler_at_final || few || self.grid.sigma(k) == 0.0);
        let second_last = i + 2 == k && few;
        if last {
            1
        } else if second_last {
            self.options.order.min(2).min(history + 1)
        } else {
            self.options.order.min(history + 1)
        }
    }
}

impl<P: ForwardProcess, const D: usize> ReverseSampler<D> for DpmSolverSampler<P> {
    type State = DpmSolverState<D>;

    visits_each_level!();

    fn needs_noise(&self, i: usize) -> bool {
        self.options.sde && levels(&self.grid, i).is_ok_and(|(_, next)| next > 0.0)
    }

    fn step(
        &self,
        state: &mut DpmSolverState<D>,
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        let (sigma, next) = levels(&self.grid, i)?;
        let x0 = x0_at_sigma(&self.x0, &x_t, model_output, sigma)?;
        let order = self.order_at(i, state.previous.len());
        if next == 0.0 {
            state.previous.clear();
            return Ok(StepOutput {
                x_prev: x0.clone(),
                x0,
            });
        }
        let (lambda, lambda_next) = (-sigma.ln(), -next.ln());
        let h = lambda_next - lambda;
        let c = Coefficients::new(sigma, next, h, self.options.sde);
        let mut x = x_t.clone() * c.x + x0.clone() * c.phi1;
        let recent = state.previous.len();
        if order >= 2 {
            let (m1, lambda1) = &state.previous[recent - 1];
            let r0 = (lambda - lambda1) / h;
            let d1 = (x0.clone() - m1.clone()) / r0;
            if order == 3 {
                let (m2, lambda2) = &state.previous[recent - 2];
                let r1 = (lambda1 - lambda2) / h;
                let d1_1 = (m1.clone() - m2.clone()) / r1;
                let d1_0 = d1;
                let d2 = (d1_0.clone() - d1_1.clone()) / (r0 + r1);
                let d1 = d1_0.clone() + (d1_0 - d1_1) * (r0 / (r0 + r1));
                x = x + d1 * c.phi2 + d2 * c.phi3;
            } else {
                x = x + match self.options.second_order {
                    SecondOrder::Midpoint => d1 * (0.5 * c.phi1),
                    SecondOrder::Heun => d1 * c.phi2,
                };
            }
        }
        if self.options.sde {
            let t = self.grid.visits().get(i)?;
            x = x + require_noise(noise, &x_t, i, t)? * c.noise;
        }
        state.previous.push((x0.clone(), lambda));
        if state.previous.len() > self.options.order.saturating_sub(1) {
            state.previous.remove(0);
        }
        Ok(StepOutput { x_prev: x, x0 })
    }
}

/// The coefficients of x, D_0, D_1, D_2 and the noise in one DPM-Solver++ step from σ to
/// σ' (> 0) with h = λ' − λ, a' = a(σ'), s' = s(σ'), e = e^{−h} − 1:
///
/// ```text
/// ODE: x: s'/s       φ1 = −a'·e          φ2 = a'·(e/h + 1)          φ3 = −a'·((e + h)/h² − ½)
/// SDE: x: s'/s·e^{−h}  φ1 = a'·ε₂  φ2 = a'·(ε₂/(−2h) + 1)  φ3 = a'·((ε₂ − 2h)/(2h)² − ½)
///      noise: s'·√ε₂,   ε₂ = 1 − e^{−2h}
/// ```
struct Coefficients {
    x: f64,
    phi1: f64,
    phi2: f64,
    phi3: f64,
    noise: f64,
}

impl Coefficients {
    fn new(sigma: f64, next: f64, h: f64, sde: bool) -> Self {
        let ((_, s), (a_next, s_next)) = (vp_scales(sigma), vp_scales(next));
        if sde {
            let e2 = -(-2.0 * h).exp_m1();
            Self {
                x: s_next / s * (-h).exp(),
                phi1: a_next * e2,
                phi2: a_next * (e2 / (-2.0 * h) + 1.0),
                phi3: a_next * ((e2 - 2.0 * h) / (4.0 * h * h) - 0.5),
                noise: s_next * e2.sqrt(),
            }
        } else {
            let e = (-h).exp_m1();
            Self {
                x: s_next / s,
                phi1: -a_next * e,
                phi2: a_next * (e / h + 1.0),
                phi3: -a_next * ((e + h) / (h * h) - 0.5),
                noise: 0.0,
            }
        }
    }
}
