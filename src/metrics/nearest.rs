//! Off-manifold mass: how far samples lie from the data, against how far the data lies
//! from itself.

use super::{check_pair, check_points, distance};
use crate::error::{self, DiffusionError};

/// For each point of `points`, the Euclidean distance to its nearest point of
/// `reference`. O(n·m·dim).
///
/// # Errors
/// `dim == 0`, an empty set, a length not
/// divisible by `dim`, a non-finite coordinate.
pub fn nearest_distances(points: &[f32], reference: &[f32], dim: usize) -> error::Result<Vec<f64>> {
    check_pair(points, reference, dim)?;
    Ok(points
        .chunks(dim)
        .map(|p| {
            reference
                .chunks(dim)
                .map(|r| distance(p, r))
                .fold(f64::INFINITY, f64::min)
        })
        .collect())
}

/// What [`off_manifold`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffManifold {
    /// The `quantile` of the data's nearest-reference distances: "far from the data".
    pub threshold: f64,
    /// The share of samples farther than `threshold` from the reference.
    pub fraction: f64,
    /// The share of the data farther than `threshold` (≈ 1 − quantile): the floor a
    /// perfect sampler reaches.
    pub data_fraction: f64,
    /// `fraction − data_fraction`: the samples' excess off-manifold mass.
    pub excess: f64,
    /// The standard error of `excess` under equal distributions (two proportions, pooled).
    pub standard_error: f64,
}

impl OffManifold {
    /// `excess / standard_error`: above about 3, the samples have more mass away from the
    /// data than the data itself.
    pub fn z(&self) -> f64 {
        self.excess / self.standard_error
    }
}

/// The samples' mass away from the data: the share of `samples` whose nearest point of
/// `reference` is farther than the `quantile` (e.g. 0.99) of the same distance for an
/// independent draw `data`, next to the data's own share (≈ 1 − quantile).
///
/// `reference` is a large draw of the data, independent of `data` and `samples` (a point
/// of `data` in `reference` would be at distance 0): with N reference points the
/// distances measure the data's local spread at the scale of its N-point neighbourhoods.
/// Points between or around a curve of data (a blurred sampler) are flagged; a sampler
/// that collapses onto part of the data is not (use [`energy_test`](super::energy_test)
/// for that).
///
/// # Errors
/// As [`nearest_distances`]; fewer than 2 data points; `quantile` outside (0, 1).
///
/// # Example
/// ```
/// use burn_diffusion::data::Toy2d;
/// use burn_diffusion::metrics::off_manifold;
///
/// let flat = |points: Vec<[f32; 2]>| points.concat();
/// let reference = flat(Toy2d::TwoMoons.sample(5000, 0));
/// let data = flat(Toy2d::TwoMoons.sample(1000, 1));
/// let noise = burn_diffusion::noise::SeededRng::new(3).standard_normals(2000);
/// let blurred: Vec<f32> = flat(Toy2d::TwoMoons.sample(1000, 2))
///     .iter()
///     .zip(noise)
///     .map(|(x, e)| x + 0.3 * e as f32)
///     .collect();
/// let report = off_manifold(&blurred, &data, &reference, 2, 0.99)?;
/// assert!(report.z() > 3.0 && report.fraction > 0.1);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub fn off_manifold(
    samples: &[f32],
    data: &[f32],
    reference: &[f32],
    dim: usize,
    quantile: f64,
) -> error::Result<OffManifold> {
    if !(quantile > 0.0 && quantile < 1.0) {
        return Err(DiffusionError::config(
            "quantile",
            quantile,
            "must be in (0, 1)",
        ));
    }
    if check_points(data, dim, "data")? < 2 {
        return Err(DiffusionError::config(
            "data",
            "1 point",
            "needs at least 2 points for a quantile",
        ));
    }
    let mut own = nearest_distances(data, reference, dim)?;
    let theirs = nearest_distances(samples, reference, dim)?;
    own.sort_by(f64::total_cmp);
    let rank = ((own.len() - 1) as f64 * quantile).round() as usize;
    let threshold = own[rank];
    let beyond = |d: &[f64]| d.iter().filter(|v| **v > threshold).count() as f64;
    let (ns, nd) = (theirs.len() as f64, own.len() as f64);
    let (fraction, data_fraction) = (beyond(&theirs) / ns, beyond(&own) / nd);
    let pooled = (beyond(&theirs) + beyond(&own)) / (ns + nd);
    Ok(OffManifold {
        threshold,
        fraction,
        data_fraction,
        excess: fraction - data_fraction,
        standard_error: (pooled * (1.0 - pooled) * (1.0 / ns + 1.0 / nd)).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_distances_are_exact_and_bad_input_is_an_error() {
        let reference = [0.0, 0.0, 3.0, 4.0];
        let got = nearest_distances(&[0.0, 1.0, 3.0, 0.0, 6.0, 8.0], &reference, 2).unwrap();
        assert_eq!(got, vec![1.0, 3.0, 5.0]);
        assert!(nearest_distances(&[0.0; 3], &reference, 2).is_err());
        assert!(off_manifold(&[0.0; 4], &[0.0; 4], &reference, 2, 1.0).is_err());
        assert!(off_manifold(&[0.0; 4], &[0.0; 2], &reference, 2, 0.5).is_err());
    }
}
