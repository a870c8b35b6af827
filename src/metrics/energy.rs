//! The energy distance and its permutation test (Székely & Rizzo 2004).

use super::{check_pair, distance};
use crate::error::{self, DiffusionError};
use crate::noise::SeededRng;

/// The energy distance between the empirical distributions of two point sets:
///
/// ```text
/// E(x, y) = 2·mean_ij |x_i − y_j| − mean_ij |x_i − x_j| − mean_ij |y_i − y_j|
/// ```
///
/// (the V-statistic, every pair including i = j). It is non-negative, 0 for identical
/// sets, and its population value 2E|X − Y| − E|X − X'| − E|Y − Y'| is 0 only for equal
/// distributions (Székely & Rizzo 2004). For N(0, 1) against N(μ, 1) in one dimension it
/// is 2·E|N(μ, 2)| − 4/√π. Unlike a sliced distance it sees every direction at once and
/// mass at any distance. O((n + m)²) time.
///
/// # Errors
/// [`DiffusionError::InvalidConfig`] for `dim == 0`, an empty set, a length not divisible
/// by `dim`, or a non-finite coordinate.
///
/// # Example
/// ```
/// use burn_diffusion::metrics::energy_distance;
///
/// let a = [0.0, 1.0];
/// assert_eq!(energy_distance(&a, &a, 1)?, 0.0);
/// // 2·(mean of |0−2|, |0−3|, |1−2|, |1−3|) − ½ − ½ = 4 − 1
/// assert!((energy_distance(&a, &[2.0, 3.0], 1)? - 3.0).abs() < 1e-12);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub fn energy_distance(x: &[f32], y: &[f32], dim: usize) -> error::Result<f64> {
    check_pair(x, y, dim)?;
    let pooled = Pooled::new(x, y, dim);
    let labels: Vec<bool> = (0..pooled.n).map(|i| i >= pooled.nx).collect();
    Ok(pooled.statistic(&labels))
}

/// The result of a two-sample test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoSampleTest {
    /// The test statistic on the two sets as given.
    pub statistic: f64,
    /// The permutation p-value (1 + #{permuted statistic ≥ statistic}) / (1 + permutations):
    /// the probability, were both sets drawn from one distribution, of a statistic at
    /// least this large. Never below 1 / (1 + permutations).
    pub p_value: f64,
    /// Number of permutations.
    pub permutations: usize,
}

/// The energy-distance two-sample test: [`energy_distance`] and its permutation p-value
/// over `permutations` seeded relabellings of the pooled points (an exact-level test:
/// under equal distributions, P(p ≤ α) ≤ α).
///
/// Holds the pooled pairwise distances (4·(n + m)²/2 bytes: 32 MB for 2,000 + 2,000
/// points) and costs O((n + m)²) per permutation.
///
/// # Errors
/// As [`energy_distance`]; `permutations == 0`.
///
/// # Example
/// ```
/// use burn_diffusion::data::Toy2d;
/// use burn_diffusion::metrics::energy_test;
///
/// let flat = |points: Vec<[f32; 2]>| points.concat();
/// let (a, b) = (flat(Toy2d::TwoMoons.sample(300, 0)), flat(Toy2d::TwoMoons.sample(300, 1)));
/// let shifted: Vec<f32> = b.iter().map(|v| v + 0.5).collect();
/// assert!(energy_test(&a, &shifted, 2, 99, 0)?.p_value <= 0.01);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub fn energy_test(
    x: &[f32],
    y: &[f32],
    dim: usize,
    permutations: usize,
    seed: u64,
) -> error::Result<TwoSampleTest> {
    check_pair(x, y, dim)?;
    if permutations == 0 {
        return Err(DiffusionError::config(
            "permutations",
            0,
            "must be at least 1",
        ));
    }
    let pooled = Pooled::new(x, y, dim);
    let mut labels: Vec<bool> = (0..pooled.n).map(|i| i >= pooled.nx).collect();
    let statistic = pooled.statistic(&labels);
    let mut rng = SeededRng::new(seed);
    let at_least = (0..permutations)
        .filter(|_| {
            rng.shuffle(&mut labels);
            // A relative tolerance, so that a relabelling that reproduces the sets is
            // counted despite the summation order.
            pooled.statistic(&labels) >= statistic * (1.0 - 1e-12)
        })
        .count();
    Ok(TwoSampleTest {
        statistic,
        p_value: (1 + at_least) as f64 / (1 + permutations) as f64,
        permutations,
    })
}

/// The pairwise distances of the pooled points x ∪ y (upper triangle, row-major).
struct Pooled {
    n: usize,
    nx: usize,
    distances: Vec<f32>,
    total: f64,
}

impl Pooled {
    fn new(x: &[f32], y: &[f32], dim: usize) -> Self {
        let points: Vec<&[f32]> = x.chunks(dim).chain(y.chunks(dim)).collect();
        let n = points.len();
        let mut distances = Vec::with_capacity(n * (n - 1) / 2);
        for i in 0..n {
            for j in i + 1..n {
                distances.push(distance(points[i], points[j]) as f32);
            }
        }
        let total = distances.iter().map(|d| f64::from(*d)).sum();
        Self {
            n,
            nx: x.len() / dim,
            distances,
            total,
        }
    }

    /// The energy distance between the points labelled `false` and those labelled
    /// `true`.
    fn statistic(&self, in_y: &[bool]) -> f64 {
        let (mut within_x, mut within_y) = (0.0f64, 0.0f64);
        let mut k = 0;
        for i in 0..self.n {
            let row = &self.distances[k..k + self.n - 1 - i];
            k += row.len();
            let (mut sx, mut sy) = (0.0f64, 0.0f64);
            for (d, &y) in row.iter().zip(&in_y[i + 1..]) {
                match (in_y[i], y) {
                    (false, false) => sx += f64::from(*d),
                    (true, true) => sy += f64::from(*d),
                    _ => {}
                }
            }
            within_x += sx;
            within_y += sy;
        }
        let between = self.total - within_x - within_y;
        let ny = in_y.iter().filter(|y| **y).count() as f64;
        let nx = self.n as f64 - ny;
        // Ordered pairs: each unordered pair counts twice within a set.
        2.0 * between / (nx * ny) - 2.0 * within_x / (nx * nx) - 2.0 * within_y / (ny * ny)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Φ(z) = ½ + ∫_0^z φ, by Simpson's rule on 2,000 intervals (error far below 1e-10).
    fn standard_normal_cdf(z: f64) -> f64 {
        let pdf = |x: f64| (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let (n, h) = (2000, z / 2000.0);
        let inner: f64 = (1..n)
            .map(|i| pdf(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
            .sum();
        0.5 + h / 3.0 * (pdf(0.0) + inner + pdf(z))
    }

    fn normals(n: usize, mean: f64, seed: u64) -> Vec<f32> {
        let mut rng = SeededRng::new(seed);
        rng.standard_normals(n)
            .iter()
            .map(|v| (v + mean) as f32)
            .collect()
    }

    /// E|N(μ, σ²)| = σ√(2/π)·exp(−μ²/2σ²) + μ(1 − 2Φ(−μ/σ)).
    fn mean_abs(mu: f64, sigma: f64) -> f64 {
        let pi = std::f64::consts::PI;
        sigma * (2.0 / pi).sqrt() * (-mu * mu / (2.0 * sigma * sigma)).exp()
            + mu * (1.0 - 2.0 * standard_normal_cdf(-mu / sigma))
    }

    /// N(0, 1) against N(μ, 1): the V-statistic's expectation is the closed form plus
    /// the diagonal's share, E|X − X'|·(1/n + 1/m) (the i = j pairs count 0, O(1/n)
    /// beyond that). The mean of 20 independent estimates at n = m = 500 must match it
    /// within 5 standard errors, estimated from the 20.
    #[test]
    fn shifted_gaussians_have_the_closed_form() {
        let (n, repeats) = (500, 20);
        let pi = std::f64::consts::PI;
        for mu in [0.0, 0.3, 1.0, 2.5] {
            let estimates: Vec<f64> = (0..repeats)
                .map(|r| {
                    let x = normals(n, 0.0, 2 * r);
                    let y = normals(n, mu, 2 * r + 1);
                    energy_distance(&x, &y, 1).unwrap()
                })
                .collect();
            let mean = estimates.iter().sum::<f64>() / repeats as f64;
            let sd = (estimates.iter().map(|e| (e - mean).powi(2)).sum::<f64>()
                / (repeats - 1) as f64)
                .sqrt();
            let population = 2.0 * mean_abs(mu, 2f64.sqrt()) - 4.0 / pi.sqrt();
            let want = population + 2.0 / pi.sqrt() * 2.0 / n as f64;
            let se = sd / (repeats as f64).sqrt();
            assert!(
                (mean - want).abs() < 5.0 * se,
                "μ = {mu}: {mean} ± {se} vs {want}"
            );
        }
        assert_eq!(
            energy_distance(&normals(50, 0.0, 1), &normals(50, 0.0, 1), 1).unwrap(),
            0.0
        );
    }

    #[test]
    fn the_statistic_is_symmetric_and_the_p_value_has_its_floor() {
        let (x, y) = (normals(200, 0.0, 1), normals(150, 3.0, 2));
        let a = energy_distance(&x, &y, 2).unwrap();
        let b = energy_distance(&y, &x, 2).unwrap();
        assert!((a - b).abs() < 1e-9 * a);
        let test = energy_test(&x, &y, 2, 49, 0).unwrap();
        assert_eq!(test.p_value, 1.0 / 50.0);
        assert!((test.statistic - a).abs() < 1e-12);
        assert!(energy_test(&x, &y, 2, 0, 0).is_err());
        assert!(energy_distance(&x, &[f32::NAN, 0.0], 2).is_err());
        assert!(energy_distance(&[], &y, 2).is_err());
    }
}
