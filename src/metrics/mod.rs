//! Sample-quality measures, for judging a sampler's output against data: distances
//! between point sets ([`sliced_wasserstein`], [`energy_distance`]), a two-sample test
//! with a p-value ([`energy_test`]), the off-manifold mass of samples measured by
//! their nearest-neighbour distances to the data ([`off_manifold`]), and the Fréchet
//! distance between Gaussian fits of features ([`frechet_distance`], FID's formula).
//!
//! Point sets are flat row-major `f32` slices, `dim` numbers per point (what
//! `Tensor::try_into_vec_as::<f32>()` gives for `[N, dim]`), computed on the host in
//! `f64`.

mod energy;
mod frechet;
mod nearest;
mod sliced_wasserstein;

pub use energy::{TwoSampleTest, energy_distance, energy_test};
pub use frechet::{GaussianFit, frechet_distance};
pub use nearest::{OffManifold, nearest_distances, off_manifold};
pub use sliced_wasserstein::sliced_wasserstein;

use crate::error::{self, DiffusionError};

/// Checks that `points` is a non-empty set of finite `dim`-dimensional points and
/// returns their number.
pub(crate) fn check_points(points: &[f32], dim: usize, what: &'static str) -> error::Result<usize> {
    if dim == 0 {
        return Err(DiffusionError::config("dim", 0, "must be positive"));
    }
    if points.is_empty() || !points.len().is_multiple_of(dim) {
        return Err(DiffusionError::config(
            what,
            format!("{} numbers", points.len()),
            format!("must be a non-empty set of {dim}-dimensional points"),
        ));
    }
    if let Some(v) = points.iter().find(|v| !v.is_finite()) {
        return Err(DiffusionError::config(
            what,
            v,
            "every coordinate must be finite (a diverged sampler gives NaN)",
        ));
    }
    Ok(points.len() / dim)
}

/// [`check_points`] for two sets: their numbers of points.
pub(crate) fn check_pair(x: &[f32], y: &[f32], dim: usize) -> error::Result<(usize, usize)> {
    Ok((check_points(x, dim, "x")?, check_points(y, dim, "y")?))
}

/// The Euclidean distance between two points.
pub(crate) fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (f64::from(*p) - f64::from(*q)).powi(2))
        .sum::<f64>()
        .sqrt()
}
