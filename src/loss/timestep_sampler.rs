//! Drawing training timesteps: uniformly, or by importance (improved-diffusion's
//! `LossSecondMomentResampler`).

use crate::error::{self, DiffusionError};
use crate::noise::SeededRng;

/// A distribution p over the T timesteps for training, with the importance weights
/// 1/(T·p_t) that keep the loss estimate unbiased: E_{t∼p}[w_t L_t] = (1/T) Σ_t L_t.
pub trait TimestepSampler {
    /// The (unnormalized, non-negative) weight of each timestep.
    fn weights(&self) -> Vec<f64>;

    /// `n` timesteps drawn from p ∝ weights, and their importance weights 1/(T·p_t).
    fn sample(&self, n: usize, rng: &mut SeededRng) -> (Vec<usize>, Vec<f64>) {
        let weights = self.weights();
        let total: f64 = weights.iter().sum();
        let steps = weights.len();
        let cdf: Vec<f64> = weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w / total;
                Some(*acc)
            })
            .collect();
        (0..n)
            .map(|_| {
                let u = rng.next_open01();
                let t = cdf.partition_point(|c| *c < u).min(steps - 1);
                (t, total / (steps as f64 * weights[t]))
            })
            .unzip()
    }
}

/// Uniform timesteps: every importance weight is 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniformSampler {
    num_timesteps: usize,
}

impl UniformSampler {
    /// Uniform over `0..num_timesteps`.
    ///
    /// # Errors
    /// `num_timesteps = 0`.
    pub fn new(num_timesteps: usize) -> error::Result<Self> {
        if num_timesteps == 0 {
            return Err(DiffusionError::config(
                "num_timesteps",
                0,
                "must be at least 1",
            ));
        }
        Ok(Self { num_timesteps })
    }
}

impl TimestepSampler for UniformSampler {
    fn weights(&self) -> Vec<f64> {
        vec![1.0; self.num_timesteps]
    }
}

/// Importance sampling by each timestep's loss second moment (Nichol & Dhariwal 2021,
/// §3.3): p_t ∝ √E(L_t²) over the last `history` losses seen at t, mixed with a uniform
/// share `uniform_prob`; uniform until every timestep has a full history.
///
/// Used with [`crate::loss::VlbLoss`] it reduces the variance of the bound's gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct LossSecondMomentResampler {
    history: usize,
    uniform_prob: f64,
    losses: Vec<Vec<f64>>,
}

impl LossSecondMomentResampler {
    /// improved-diffusion's defaults: 10 losses per timestep, uniform share 0.001.
    ///
    /// # Errors
    /// `num_timesteps = 0`.
    pub fn new(num_timesteps: usize) -> error::Result<Self> {
        Self::with_options(num_timesteps, 10, 0.001)
    }

    /// A resampler keeping `history` losses per timestep and mixing in `uniform_prob`.
    ///
    /// # Errors
    /// `num_timesteps = 0`, `history = 0`, or `uniform_prob` outside (0, 1].
    pub fn with_options(
        num_timesteps: usize,
        history: usize,
        uniform_prob: f64,
    ) -> error::Result<Self> {
        if num_timesteps == 0 {
            return Err(DiffusionError::config(
                "num_timesteps",
                0,
                "must be at least 1",
            ));
        }
        if history == 0 {
            return Err(DiffusionError::config("history", 0, "must be at least 1"));
        }
        if !(uniform_prob > 0.0 && uniform_prob <= 1.0) {
            return Err(DiffusionError::config(
                "uniform_prob",
                uniform_prob,
                "must be in (0, 1]",
            ));
        }
        Ok(Self {
            history,
            uniform_prob,
            losses: vec![Vec::new(); num_timesteps],
        })
    }

    /// Records the losses of a batch at its timesteps (oldest dropped beyond `history`).
    /// Timesteps out of range and non-finite losses are ignored.
    pub fn update(&mut self, timesteps: &[usize], losses: &[f64]) {
        for (&t, &loss) in timesteps.iter().zip(losses) {
            if let Some(h) = self.losses.get_mut(t).filter(|_| loss.is_finite()) {
                if h.len() == self.history {
                    h.remove(0);
                }
                h.push(loss);
            }
        }
    }

    /// The losses seen at each timestep, oldest first (at most `history` each): the
    /// sampler's whole state.
    pub fn history(&self) -> &[Vec<f64>] {
        &self.losses
    }

    /// Restores a [`LossSecondMomentResampler::history`].
    ///
    /// # Errors
    /// A history with another number of timesteps, more than `history` losses at a
    /// timestep, or a non-finite loss.
    pub fn restore(&mut self, history: &[Vec<f64>]) -> error::Result<()> {
        if history.len() != self.losses.len() {
            return Err(DiffusionError::config(
                "loss history",
                format!("{} timesteps", history.len()),
                format!("the sampler has {}", self.losses.len()),
            ));
        }
        if let Some(h) = history
            .iter()
            .find(|h| h.len() > self.history || h.iter().any(|l| !l.is_finite()))
        {
            return Err(DiffusionError::config(
                "loss history",
                format!("{h:?}"),
                format!(
                    "must hold at most {} finite losses per timestep",
                    self.history
                ),
            ));
        }
        self.losses = history.to_vec();
        Ok(())
    }

    /// Whether every timestep has a full history (before that, sampling is uniform).
    pub fn warmed_up(&self) -> bool {
        self.losses.iter().all(|h| h.len() == self.history)
    }
}

impl TimestepSampler for LossSecondMomentResampler {
    fn weights(&self) -> Vec<f64> {
        let steps = self.losses.len();
        if !self.warmed_up() {
            return vec![1.0; steps];
        }
        // √(E[L²]) scaled by the largest |L| first, so that losses near f64's range
        // (1e300) do not overflow to ∞ and NaN weights.
        let largest = self
            .losses
            .iter()
            .flatten()
            .fold(0.0f64, |m, l| m.max(l.abs()));
        if largest == 0.0 {
            return vec![1.0; steps];
        }
        let rms: Vec<f64> = self
            .losses
            .iter()
            .map(|h| {
                let mean_square = h.iter().map(|l| (l / largest).powi(2)).sum::<f64>();
                (mean_square / h.len() as f64).sqrt()
            })
            .collect();
        let total: f64 = rms.iter().sum();
        rms.iter()
            .map(|r| r / total * (1.0 - self.uniform_prob) + self.uniform_prob / steps as f64)
            .collect()
    }
}
