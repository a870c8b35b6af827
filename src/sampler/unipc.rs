//! UniPC: the unified predictor–corrector multistep solver (Zhao et al. 2023).

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::sampler::base::{ReverseSampler, StepOutput, X0Options};
use crate::sampler::euler::levels;
use crate::sampler::sigmas::{SigmaGrid, visits_each_level, vp_scales, x0_at_sigma};

/// UniPC in its data-prediction form (Zhao et al. 2023, "UniPC", Algorithms 2 and 3 with
/// B(h) = h for `bh1` or e^h − 1 for `bh2`), on any [`SigmaGrid`]. With λ = −log σ,
/// h = λ_{i+1} − λ_i and x̂_0 history m_i, m_{i−1}, …:
///
/// ```text
/// UniP (predictor, order p):  x̃_{i+1} = (s_{i+1}/s_i)·x_i − a_{i+1}(e^{−h} − 1)·m_i
///                                        − a_{i+1}·B(−h)·Σ_k ρ_k·(m_{i−k} − m_i)/r_k
/// UniC (corrector, order p):  x_{i+1}  = the same with the new model output m_{i+1}
///                                        added to the differences (ρ^c from the p × p
///                                        system, ½ at order 1)
/// ```
///
/// r_k = (λ_{i−k} − λ_i)/h, and the ρ's solve the order conditions R·ρ = b with
/// R_{jk} = r_k^{j}, b_j = φ_{j+1}(−h)·(j+1)!/B(−h). The corrector reuses the model call
/// of the next step, so UniPC costs one call per step like DPM-Solver++ and gains an
/// order. The first steps use the orders their history allows; with
/// `lower_order_final` the order drops to the steps left; the last step to σ = 0 lands on
/// x̂_0. This is diffusers' `UniPCMultistepScheduler` with `predict_x0`.
///
/// When to choose: 5–20 steps; with order 3 (and `bh1` below 10 steps, as its authors
/// suggest) the best of the crate's solvers at very few steps.
#[derive(Debug, Clone)]
pub struct UniPcSampler {
    grid: SigmaGrid,
    x0: X0Options,
    options: UniPcOptions,
}

/// UniPC's choices (diffusers' names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniPcOptions {
    /// 1, 2 or 3 (`solver_order`, 2 by default).
    pub order: usize,
    /// B(h) (`solver_type`).
    pub variant: UniPcVariant,
    /// Lower the order to the number of steps left (`lower_order_final`, true).
    pub lower_order_final: bool,
    /// Steps after which the corrector is skipped (`disable_corrector`: with `k` in the
    /// list, step k + 1 starts without correcting step k's prediction).
    pub disable_corrector: Vec<usize>,
}

impl Default for UniPcOptions {
    /// Order 2, `bh2`, `lower_order_final`, every corrector: diffusers' defaults.
    fn default() -> Self {
        Self {
            order: 2,
            variant: UniPcVariant::Bh2,
            lower_order_final: true,
            disable_corrector: Vec::new(),
        }
    }
}

/// UniPC's B(h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UniPcVariant {
    /// B(h) = h (`bh1`; recommended below 10 steps).
    Bh1,
    /// B(h) = e^h − 1 (`bh2`, the default).
    #[default]
    Bh2,
}

/// The previous steps' x̂_0 and λ (most recent last), and the sample and order of the
/// last prediction, which the corrector revisits.
#[derive(Debug, Clone, Default)]
pub struct UniPcState<const D: usize> {
    outputs: Vec<(Tensor<D>, f64)>,
    predicted_from: Option<(Tensor<D>, usize)>,
}

impl UniPcSampler {
    /// UniPC over `grid`.
    ///
    /// # Errors
    /// An order other than 1, 2 or 3; an invalid clipping bound or threshold.
    pub fn new(grid: SigmaGrid, x0: X0Options, options: UniPcOptions) -> error::Result<Self> {
        if !(1..=3).contains(&options.order) {
            return Err(DiffusionError::config(
                "UniPC order",
                options.order,
                "must be 1, 2 or 3",
            ));
        }
        x0.validate()?;
        Ok(Self { grid, x0, options })
    }

    /// The predictor's order at step `i` with `history` earlier x̂_0's.
    fn order_at(&self, i: usize, history: usize) -> usize {
        let left = self.grid.levels() - i;
        let order = if self.options.lower_order_final {
            self.options.order.min(left)
        } else {
            self.options.order
        };
        order.min(history + 1)
    }

    /// One UniP (`newest` = None) or UniC (`newest` = the new level's x̂_0) update of `x`
    /// from level σ to `next` (> 0), with x̂_0 `m0` at σ and the `older` (x̂_0, λ)'s,
    /// most recent first.
    fn update<const D: usize>(
        &self,
        x: Tensor<D>,
        m0: &Tensor<D>,
        (sigma, next): (f64, f64),
        older: &[(Tensor<D>, f64)],
        newest: Option<&Tensor<D>>,
    ) -> Tensor<D> {
        let ((_, s), (a_next, s_next)) = (vp_scales(sigma), vp_scales(next));
        let (lambda, h) = (-sigma.ln(), sigma.ln() - next.ln());
        let hh = -h;
        let phi1 = hh.exp_m1();
        let b_h = match self.options.variant {
            UniPcVariant::Bh1 => hh,
            UniPcVariant::Bh2 => hh.exp_m1(),
        };
        // r_k of the older outputs, then 1 for the newest (the corrector's) output.
        let mut rks: Vec<f64> = older.iter().map(|(_, l)| (l - lambda) / h).collect();
        rks.push(1.0);
        let order = rks.len();
        let (mut b, mut phi_k, mut factorial) = (Vec::new(), phi1 / hh - 1.0, 1.0);
        for k in 1..=order {
            b.push(phi_k * factorial / b_h);
            factorial *= (k + 1) as f64;
            phi_k = phi_k / hh - 1.0 / factorial;
        }
        let r = |j: usize, k: usize| rks[k].powi(j as i32);
        let mut x_next = x * (s_next / s) - m0.clone() * (a_next * phi1);
        let diffs: Vec<Tensor<D>> = older
            .iter()
            .zip(&rks)
            .map(|((m, _), rk)| (m.clone() - m0.clone()) / *rk)
            .collect();
        let rhos = match newest {
            // Corrector: the full order × order system (½ at order 1).
            Some(_) if order == 1 => vec![0.5],
            Some(_) => solve(order, &r, &b),
            // Predictor: without the newest column (½ at order 2).
            None if order == 1 => Vec::new(),
            None if order == 2 => vec![0.5],
            None => solve(order - 1, &r, &b),
        };
        for (diff, rho) in diffs.into_iter().zip(&rhos) {
            x_next = x_next - diff * (a_next * b_h * rho);
        }
        if let Some(m_t) = newest {
            let rho = rhos[rhos.len() - 1];
            x_next = x_next - (m_t.clone() - m0.clone()) * (a_next * b_h * rho);
        }
        x_next
    }
}

/// Solves the n × n system Σ_k R(j, k)·ρ_k = b_j by Gaussian elimination with partial
/// pivoting (n ≤ 3).
fn solve(n: usize, r: &impl Fn(usize, usize) -> f64, b: &[f64]) -> Vec<f64> {
    let mut m: Vec<Vec<f64>> = (0..n)
        .map(|j| (0..n).map(|k| r(j, k)).chain([b[j]]).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&p, &q| m[p][col].abs().total_cmp(&m[q][col].abs()))
            .unwrap_or(col);
        m.swap(col, pivot);
        for row in col + 1..n {
            let f = m[row][col] / m[col][col];
            let (top, bottom) = m.split_at_mut(row);
            for (x, p) in bottom[0][col..].iter_mut().zip(&top[col][col..]) {
                *x -= f * p;
            }
        }
    }
    let mut rho = vec![0.0; n];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|k| m[row][k] * rho[k]).sum();
        rho[row] = (m[row][n] - tail) / m[row][row];
    }
    rho
}

impl<const D: usize> ReverseSampler<D> for UniPcSampler {
    type State = UniPcState<D>;

    visits_each_level!();

    fn needs_noise(&self, _i: usize) -> bool {
        false
    }

    fn step(
        &self,
        state: &mut UniPcState<D>,
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        _noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        let (sigma, next) = levels(&self.grid, i)?;
        let m = x0_at_sigma(&self.x0, &x_t, model_output, sigma)?;
        // UniC: correct the last prediction with this step's model output.
        let mut x = x_t;
        let correct = i > 0 && !self.options.disable_corrector.contains(&(i - 1));
        if let (true, Some((from, order)), Some((m0, _))) =
            (correct, state.predicted_from.take(), state.outputs.last())
        {
            let history = state.outputs.len();
            let older = &state.outputs[history - order..history - 1];
            let older: Vec<(Tensor<D>, f64)> = older.iter().rev().cloned().collect();
            let previous = self.grid.sigma(i - 1);
            x = self.update(from, m0, (previous, sigma), &older, Some(&m));
        }
        state.outputs.push((m.clone(), -sigma.ln()));
        if state.outputs.len() > self.options.order {
            state.outputs.remove(0);
        }
        let order = self.order_at(i, state.outputs.len() - 1);
        if next == 0.0 {
            // The run is over: a state reused for another run starts empty.
            state.predicted_from = None;
            state.outputs.clear();
            return Ok(StepOutput {
                x_prev: m.clone(),
                x0: m,
            });
        }
        state.predicted_from = Some((x.clone(), order));
        // UniP: predict the next level from this one and the `order − 1` before it.
        let history = state.outputs.len();
        let older: Vec<(Tensor<D>, f64)> = state.outputs[history - order..history - 1]
            .iter()
            .rev()
            .cloned()
            .collect();
        Ok(StepOutput {
            x_prev: self.update(x, &m, (sigma, next), &older, None),
            x0: m,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_inverts_small_systems() {
        let r = |j: usize, k: usize| [[2.0, 1.0, 0.5], [1.0, 3.0, -1.0], [0.0, 1.0, 4.0]][j][k];
        let x = [0.3, -1.2, 2.0];
        let b: Vec<f64> = (0..3)
            .map(|j| (0..3).map(|k| r(j, k) * x[k]).sum())
            .collect();
        for (got, want) in solve(3, &r, &b).iter().zip(x) {
            assert!((got - want).abs() < 1e-12);
        }
    }
}
