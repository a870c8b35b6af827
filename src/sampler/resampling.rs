//! RePaint's resampling schedule: go back up the chain and step down again.

use crate::error::{self, DiffusionError};

/// RePaint's resampling (Lugmayr et al. 2022, Alg. 1 and §4.2 "jumps"), for
/// [`crate::sampler::Inpaint`]: at every `jump`-th level of the sampler's grid (never at
/// the last step), the sample is noised back up `jump` levels with the forward process
/// and the steps are taken again, `repeats − 1` more times. Each pass lets the painted
/// pixels adjust to the known ones, which replacement alone cannot do where they are
/// correlated. The model is called
/// `steps + (repeats − 1)·jump·⌊(steps − 1)/jump⌋` times (RePaint: 250 steps, `jump` 10,
/// `repeats` 10).
///
/// Going back up from level b to the noisier level a draws
/// `x_a = r·x_b + √(s_a² − r²·s_b²)·z` with r = a_a/a_b, where q(x_t | x_0) =
/// N(a_t·x_0, s_t²·I): q(x_a | x_b) of the forward process, jumping `jump` levels at once
/// (in distribution the same as RePaint's one level at a time). `z` is the crate's seeded
/// host noise ([`crate::noise::randn`]) with `seed + m` at the m-th jump, since a step
/// gets only one noise tensor (its sampler's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resampling {
    /// Levels to go back up at each jump (RePaint's jump length, ≥ 1).
    pub jump: usize,
    /// Passes over each stretch of `jump` levels (RePaint's `r`, ≥ 1; 1 is no resampling).
    pub repeats: usize,
    /// Seed of the noise drawn when going back up.
    pub seed: u64,
}

impl Resampling {
    /// `repeats` passes, going back up `jump` levels at a time, with noise from `seed`.
    pub fn new(jump: usize, repeats: usize, seed: u64) -> Self {
        Self {
            jump,
            repeats,
            seed,
        }
    }

    /// The steps taken, in order, for a grid of `steps` steps: entry m is the step (0 for
    /// the first, from the noisiest level) taken m-th.
    ///
    /// # Errors
    /// `jump` or `repeats` of 0, or more steps than `usize` holds.
    pub fn schedule(&self, steps: usize) -> error::Result<Vec<usize>> {
        if self.jump == 0 || self.repeats == 0 {
            return Err(DiffusionError::config(
                "resampling",
                format!("jump {}, repeats {}", self.jump, self.repeats),
                "jump and repeats must be at least 1",
            ));
        }
        let jumps = steps.saturating_sub(1) / self.jump;
        let total = (self.repeats - 1)
            .checked_mul(self.jump)
            .and_then(|n| n.checked_mul(jumps))
            .and_then(|n| n.checked_add(steps))
            .ok_or_else(|| {
                DiffusionError::config(
                    "resampling",
                    format!(
                        "{steps} steps, jump {}, repeats {}",
                        self.jump, self.repeats
                    ),
                    "too many model calls",
                )
            })?;
        let mut left = vec![self.repeats - 1; steps];
        let mut order = Vec::with_capacity(total);
        let mut level = 0;
        while level < steps {
            order.push(level);
            level += 1;
            if level < steps && level % self.jump == 0 && left[level] > 0 {
                left[level] -= 1;
                level -= self.jump;
            }
        }
        Ok(order)
    }
}

/// The forward step from level b (scales `(a_b, s_b)`) up to the noisier level a:
/// (r, σ) with x_a = r·x_b + σ·z.
pub(crate) fn renoise_scales((a_a, s_a): (f64, f64), (a_b, s_b): (f64, f64)) -> (f64, f64) {
    let r = a_a / a_b;
    (r, (s_a * s_a - r * r * s_b * s_b).max(0.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_repeat_is_the_plain_chain() {
        let r = Resampling::new(3, 1, 0);
        assert_eq!(r.schedule(5).unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn jumps_of_one_repeat_every_step_but_the_last() {
        let r = Resampling::new(1, 3, 0);
        assert_eq!(r.schedule(3).unwrap(), vec![0, 0, 0, 1, 1, 1, 2]);
    }

    #[test]
    fn longer_jumps_go_back_over_their_stretch() {
        let r = Resampling::new(2, 2, 0);
        // Jump points at levels 2 and 4 (not 5, the data): back up two levels once each.
        assert_eq!(r.schedule(5).unwrap(), vec![0, 1, 0, 1, 2, 3, 2, 3, 4]);
        // steps + (repeats − 1)·jump·⌊(steps − 1)/jump⌋ calls.
        let (steps, jump, repeats) = (5, r.jump, r.repeats);
        let calls = steps + (repeats - 1) * jump * ((steps - 1) / jump);
        assert_eq!(r.schedule(steps).unwrap().len(), calls);
        assert_eq!(calls, 9);
    }

    #[test]
    fn zero_jump_or_repeats_and_overflow_are_refused() {
        assert!(Resampling::new(0, 2, 0).schedule(5).is_err());
        assert!(Resampling::new(2, 0, 0).schedule(5).is_err());
        assert!(Resampling::new(1, usize::MAX, 0).schedule(5).is_err());
    }

    #[test]
    fn renoising_is_the_forward_step() {
        // VP: a² + s² = 1, so σ² = 1 − r².
        let (a, b) = (0.6f64, 0.9f64);
        let (r, sigma) = renoise_scales((a, (1.0 - a * a).sqrt()), (b, (1.0 - b * b).sqrt()));
        assert!((r - a / b).abs() < 1e-15);
        assert!((sigma * sigma - (1.0 - r * r)).abs() < 1e-12);
        // VE: σ² = s_a² − s_b².
        let (_, sigma) = renoise_scales((1.0, 3.0), (1.0, 2.0));
        assert!((sigma * sigma - 5.0).abs() < 1e-12);
    }
}
