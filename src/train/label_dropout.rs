//! Label dropout: one model trained both with and without its condition.

use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::error::{self, DiffusionError};
use crate::noise::SeededRng;

/// Classifier-free guidance's training trick (Ho & Salimans 2022, Alg. 1): each label is
/// replaced by the null label with probability `p_uncond`, so that one network learns
/// ε(x_t, c) and ε(x_t, ∅), which [`crate::sampler::Guided`] combines at sampling time.
/// The draws come from the crate's seeded generator: a seed gives the same dropped
/// positions on every device, with no device-to-host read.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::train::LabelDropout;
///
/// let device = Device::flex();
/// let dropout = LabelDropout::new(0.1, 10)?; // 10 classes, label 10 is the null label
/// let labels = Tensor::<1, Int>::from_ints([3, 7, 1, 0], &device);
/// let dropped = dropout.apply(labels, 42);
/// assert_eq!(dropped.dims(), [4]);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelDropout {
    p_uncond: f64,
    null_label: i64,
}

impl LabelDropout {
    /// Drops each label with probability `p_uncond` (0: never, 1: always), replacing it by
    /// `null_label` (for the crate's UNet, its `num_classes`).
    ///
    /// # Errors
    /// `p_uncond` outside [0, 1] or not finite; a negative `null_label`.
    pub fn new(p_uncond: f64, null_label: i64) -> error::Result<Self> {
        if !(0.0..=1.0).contains(&p_uncond) {
            return Err(DiffusionError::config(
                "p_uncond",
                p_uncond,
                "must be a probability in [0, 1]",
            ));
        }
        if null_label < 0 {
            return Err(DiffusionError::config(
                "null_label",
                null_label,
                "must be a class index >= 0",
            ));
        }
        Ok(Self {
            p_uncond,
            null_label,
        })
    }

    /// The probability of dropping a label.
    pub fn p_uncond(&self) -> f64 {
        self.p_uncond
    }

    /// The label that stands for "no condition".
    pub fn null_label(&self) -> i64 {
        self.null_label
    }

    /// Which of `n` labels a draw with `seed` drops.
    pub fn dropped(&self, n: usize, seed: u64) -> Vec<bool> {
        let mut rng = SeededRng::new(seed);
        // next_open01 is in (0, 1): p = 0 never drops, p = 1 always does.
        (0..n).map(|_| rng.next_open01() < self.p_uncond).collect()
    }

    /// `labels` with the [`LabelDropout::dropped`] ones replaced by the null label.
    ///
    /// # Shapes
    /// - `labels`: `[N]`; output `[N]`
    pub fn apply(&self, labels: Tensor<1, Int>, seed: u64) -> Tensor<1, Int> {
        let n = labels.dims()[0];
        let mask = Tensor::<1, Bool>::from_data(
            TensorData::new(self.dropped(n, seed), [n]),
            &labels.device(),
        );
        labels.mask_fill(mask, self.null_label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Over 200 batches of 500, the dropped fraction is p within 5 standard errors
    /// (√(p(1 − p)/n)); p = 0 and 1 drop none and all.
    #[test]
    fn the_dropped_fraction_is_p_uncond() {
        for p in [0.1, 0.5] {
            let d = LabelDropout::new(p, 10).unwrap();
            let n = 200 * 500;
            let dropped = (0..200u64)
                .map(|seed| d.dropped(500, seed).iter().filter(|&&b| b).count())
                .sum::<usize>();
            let fraction = dropped as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!((fraction - p).abs() < 5.0 * se, "p {p}: {fraction}");
        }
        let never = LabelDropout::new(0.0, 10).unwrap();
        let always = LabelDropout::new(1.0, 10).unwrap();
        for seed in 0..50 {
            assert!(never.dropped(100, seed).iter().all(|&b| !b));
            assert!(always.dropped(100, seed).iter().all(|&b| b));
        }
    }

    #[test]
    fn kept_labels_are_unchanged_and_dropped_ones_become_null() {
        let device = Device::flex();
        let d = LabelDropout::new(0.5, 9).unwrap();
        let labels: Vec<i64> = (0..64).map(|i| i % 9).collect();
        let out: Vec<i64> = d
            .apply(Tensor::<1, Int>::from_ints(labels.as_slice(), &device), 3)
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .unwrap();
        let mask = d.dropped(64, 3);
        assert!(mask.iter().any(|&b| b) && mask.iter().any(|&b| !b));
        for ((got, want), drop) in out.iter().zip(&labels).zip(&mask) {
            assert_eq!(*got, if *drop { 9 } else { *want });
        }
        assert_eq!(d.dropped(64, 3), d.dropped(64, 3));
    }

    #[test]
    fn bad_probabilities_and_null_labels_are_refused() {
        for p in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(LabelDropout::new(p, 0).is_err(), "{p}");
        }
        assert!(LabelDropout::new(0.1, -1).is_err());
    }
}
