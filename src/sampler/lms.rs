//! Linear multistep (LMS) on a σ grid (k-diffusion's `sample_lms`; diffusers'
//! `LMSDiscreteScheduler`).

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::sampler::base::{ReverseSampler, StepOutput, X0Options};
use crate::sampler::euler::levels;
use crate::sampler::sigmas::{SigmaGrid, from_ve, to_ve, visits_each_level, x0_at_sigma};

/// The linear multistep method of order p (Adams–Bashforth in σ; Karras et al. 2022's
/// k-diffusion `sample_lms`) on the probability-flow ODE dx/dσ = (x − x̂_0)/σ: with the
/// derivatives d_{i−j} of the last p levels,
///
/// ```text
/// x' = x + Σ_{j<p} c_j·d_{i−j},   c_j = ∫_{σ_i}^{σ_{i+1}} Π_{k<p, k≠j} (τ − σ_{i−k}) / (σ_{i−j} − σ_{i−k}) dτ
/// ```
///
/// $$\mathbf x_{i+1} = \mathbf x_i + \sum_{j<p} \mathbf d_{i-j}\int_{\sigma_i}^{\sigma_{i+1}}\prod_{k\ne j}\frac{\tau-\sigma_{i-k}}{\sigma_{i-j}-\sigma_{i-k}}\,d\tau$$
///
/// — the integral of the Lagrange polynomial through the past derivatives, computed
/// exactly here (diffusers integrates it numerically with `scipy.integrate.quad`). The
/// first steps use the orders their history allows (order min(i + 1, p)); one model call
/// per level. diffusers' `LMSDiscreteScheduler` with its pipelines' default order 4 (A1111's
/// "LMS"). When to choose: an old, cheap high-order solver that does well at 30–50 steps
/// and can be unstable at very few; prefer DPM-Solver++(2M) or UniPC.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::{noise::randn, process::VpProcess, schedule::ScheduleConfig};
/// use burn_diffusion::sampler::{FinalSigma, LmsSampler, ModelTime, SampleOptions, SigmaGrid, SigmaSchedule, X0Options, sample};
///
/// let process = VpProcess::new(ScheduleConfig::new().init()?);
/// let grid = SigmaGrid::new(&process, &SigmaSchedule::Interpolated { steps: 20 }, FinalSigma::Zero, ModelTime::Rounded)?;
/// let lms = LmsSampler::new(grid, 4, X0Options::default())?;
/// let model = |x_t: Tensor<2>, _t: Tensor<1, Int>| x_t * 0.1;
/// let x_t = randn::<2>([4, 2], 0, &Device::flex());
/// let out = sample(&lms, &model, x_t, SampleOptions::default(), |_, _| {})?;
/// assert_eq!(out.sample.dims(), [4, 2]);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LmsSampler {
    grid: SigmaGrid,
    order: usize,
    x0: X0Options,
}

/// The derivatives (x − x̂_0)/σ of the last levels, newest last.
#[derive(Debug, Clone)]
pub struct LmsState<const D: usize> {
    derivatives: Vec<Tensor<D>>,
}

impl<const D: usize> Default for LmsState<D> {
    fn default() -> Self {
        Self {
            derivatives: Vec::new(),
        }
    }
}

impl LmsSampler {
    /// LMS of `order` (1 to 4; 1 is Euler) over `grid`.
    ///
    /// # Errors
    /// An order outside 1..=4; an invalid clipping bound or threshold.
    pub fn new(grid: SigmaGrid, order: usize, x0: X0Options) -> error::Result<Self> {
        if !(1..=4).contains(&order) {
            return Err(DiffusionError::config("order", order, "must be 1 to 4"));
        }
        x0.validate()?;
        Ok(Self { grid, order, x0 })
    }

    /// The weights c_j (j = 0 the newest) of the step from level `i` with `order` points.
    fn coefficients(&self, i: usize, order: usize) -> Vec<f64> {
        let sigma = self.grid.sigma(i);
        let h = self.grid.sigma(i + 1) - sigma;
        // Nodes shifted by σ_i, so the integral runs over [0, h].
        let nodes: Vec<f64> = (0..order).map(|k| self.grid.sigma(i - k) - sigma).collect();
        (0..order)
            .map(|j| {
                let mut poly = vec![1.0];
                for (k, &node) in nodes.iter().enumerate().filter(|&(k, _)| k != j) {
                    poly = times_linear(&poly, node, nodes[j] - nodes[k]);
                }
                poly.iter()
                    .enumerate()
                    .map(|(m, c)| c * h.powi(m as i32 + 1) / (m + 1) as f64)
                    .sum()
            })
            .collect()
    }
}

/// The polynomial `poly` (coefficients, lowest first) times (u − `root`)/`scale`.
fn times_linear(poly: &[f64], root: f64, scale: f64) -> Vec<f64> {
    let mut out = vec![0.0; poly.len() + 1];
    for (m, c) in poly.iter().enumerate() {
        out[m + 1] += c / scale;
        out[m] -= c * root / scale;
    }
    out
}

impl<const D: usize> ReverseSampler<D> for LmsSampler {
    type State = LmsState<D>;

    visits_each_level!();

    fn needs_noise(&self, _i: usize) -> bool {
        false
    }

    fn step(
        &self,
        state: &mut LmsState<D>,
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        _noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        let (sigma, next) = levels(&self.grid, i)?;
        let x0 = x0_at_sigma(&self.x0, &x_t, model_output, sigma)?;
        let x = to_ve(x_t, sigma);
        state.derivatives.push((x.clone() - x0.clone()) / sigma);
        if state.derivatives.len() > self.order {
            state.derivatives.remove(0);
        }
        let order = state.derivatives.len().min(i + 1);
        let x_prev = self
            .coefficients(i, order)
            .into_iter()
            .zip(state.derivatives.iter().rev())
            .fold(x, |x, (c, d)| x + d.clone() * c);
        if i + 1 == self.grid.visits().len() {
            state.derivatives.clear();
        }
        Ok(StepOutput {
            x_prev: from_ve(x_prev, next),
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

    fn grid() -> SigmaGrid {
        let p = VpProcess::new(ScheduleConfig::new().init().unwrap());
        SigmaGrid::new(
            &p,
            &SigmaSchedule::karras(8),
            FinalSigma::Zero,
            ModelTime::Rounded,
        )
        .unwrap()
    }

    fn lms(order: usize) -> LmsSampler {
        LmsSampler::new(grid(), order, X0Options::default()).unwrap()
    }

    /// The weights integrate polynomials through the nodes exactly: Σ_j c_j·q(σ_{i−j}) =
    /// ∫ q over the step for every q of degree < p (here 1, τ, τ², τ³).
    #[test]
    fn coefficients_integrate_polynomials_of_the_order_exactly() {
        let s = lms(4);
        let i = 5;
        let (a, b) = (s.grid.sigma(i), s.grid.sigma(i + 1));
        let c = s.coefficients(i, 4);
        for degree in 0..4 {
            let got: f64 = (0..4)
                .map(|j| c[j] * s.grid.sigma(i - j).powi(degree))
                .sum();
            let want = (b.powi(degree + 1) - a.powi(degree + 1)) / (degree + 1) as f64;
            assert!(
                (got - want).abs() < 1e-12 * want.abs().max(1.0),
                "degree {degree}: {got} vs {want}"
            );
        }
        // Order 1 is Euler: one weight, the step.
        assert!((s.coefficients(i, 1)[0] - (b - a)).abs() < 1e-15);
    }

    #[test]
    fn order_is_checked() {
        assert!(LmsSampler::new(grid(), 0, X0Options::default()).is_err());
        assert!(LmsSampler::new(grid(), 5, X0Options::default()).is_err());
        let _ = lms(1);
    }
}
