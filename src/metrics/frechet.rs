//! The Fréchet distance between Gaussian fits of two feature sets (FID's formula,
//! Heusel et al. 2017).

use super::check_points;
use crate::error::{self, DiffusionError};

/// The mean and covariance of a set of feature vectors: what the Fréchet distance
/// compares. Compute a dataset's once and compare many sample sets against it.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianFit {
    dim: usize,
    mean: Vec<f64>,
    /// Row-major `dim × dim`.
    covariance: Vec<f64>,
}

impl GaussianFit {
    /// The sample mean and the unbiased sample covariance (divided by n − 1) of
    /// `features`, `dim` numbers per row.
    ///
    /// # Errors
    /// `dim == 0`, fewer than 2 rows, a length not divisible by `dim`, a non-finite value.
    pub fn of(features: &[f32], dim: usize) -> error::Result<Self> {
        let n = check_points(features, dim, "features")?;
        if n < 2 {
            return Err(DiffusionError::config(
                "features",
                "1 row",
                "needs at least 2 rows for a covariance",
            ));
        }
        let mut mean = vec![0.0; dim];
        for row in features.chunks(dim) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += f64::from(*v) / n as f64;
            }
        }
        let mut covariance = vec![0.0; dim * dim];
        for row in features.chunks(dim) {
            let centred: Vec<f64> = row
                .iter()
                .zip(&mean)
                .map(|(v, m)| f64::from(*v) - m)
                .collect();
            for i in 0..dim {
                for j in i..dim {
                    covariance[i * dim + j] += centred[i] * centred[j] / (n - 1) as f64;
                }
            }
        }
        for i in 0..dim {
            for j in 0..i {
                covariance[i * dim + j] = covariance[j * dim + i];
            }
        }
        Ok(Self {
            dim,
            mean,
            covariance,
        })
    }

    /// A fit with a given mean and covariance (row-major `dim × dim`, symmetric).
    ///
    /// # Errors
    /// An empty mean, a covariance of the wrong size, not symmetric, or not finite.
    pub fn new(mean: Vec<f64>, covariance: Vec<f64>) -> error::Result<Self> {
        let dim = mean.len();
        let symmetric = (0..dim).all(|i| {
            (0..dim).all(|j| {
                let (a, b) = (covariance[i * dim + j], covariance[j * dim + i]);
                (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
            })
        });
        if dim == 0
            || covariance.len() != dim * dim
            || !mean.iter().chain(&covariance).all(|v| v.is_finite())
            || !symmetric
        {
            return Err(DiffusionError::config(
                "Gaussian fit",
                format!("mean of {dim}, covariance of {}", covariance.len()),
                "needs a non-empty finite mean and a finite symmetric dim × dim covariance",
            ));
        }
        Ok(Self {
            dim,
            mean,
            covariance,
        })
    }

    /// The mean.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The covariance, row-major.
    pub fn covariance(&self) -> &[f64] {
        &self.covariance
    }

    /// The Fréchet (2-Wasserstein) distance squared between N(μ₁, Σ₁) and N(μ₂, Σ₂):
    ///
    /// ```text
    /// d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2})
    /// ```
    ///
    /// the quantity FID reports, computed with symmetric eigendecompositions (Jacobi), so
    /// without the complex square roots of `scipy.linalg.sqrtm(Σ₁Σ₂)`. Clamped at 0.
    ///
    /// # Errors
    /// Fits of different dimensions.
    pub fn frechet_distance(&self, other: &GaussianFit) -> error::Result<f64> {
        if self.dim != other.dim {
            return Err(DiffusionError::config(
                "Gaussian fits",
                format!("{} and {} dimensions", self.dim, other.dim),
                "must have the same dimension",
            ));
        }
        let d = self.dim;
        let root = psd_function(&self.covariance, d, f64::sqrt);
        let middle = multiply(&multiply(&root, &other.covariance, d), &root, d);
        let cross: f64 = eigenvalues(&symmetrize(middle, d), d)
            .iter()
            .map(|l| l.max(0.0).sqrt())
            .sum();
        let trace = |m: &[f64]| (0..d).map(|i| m[i * d + i]).sum::<f64>();
        let shift: f64 = self
            .mean
            .iter()
            .zip(&other.mean)
            .map(|(a, b)| (a - b).powi(2))
            .sum();
        Ok((shift + trace(&self.covariance) + trace(&other.covariance) - 2.0 * cross).max(0.0))
    }
}

/// The Fréchet distance squared between the Gaussian fits of two feature sets
/// ([`GaussianFit::of`] each, then [`GaussianFit::frechet_distance`]): FID's formula, in
/// whatever feature space the rows are (Inception's for FID; any network's features, or
/// raw coordinates).
///
/// # Errors
/// As [`GaussianFit::of`].
///
/// # Example
/// ```
/// use burn_diffusion::metrics::frechet_distance;
///
/// let a = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
/// let b: Vec<f32> = a.iter().map(|v| v + 2.0).collect(); // shifted by (2, 2)
/// assert!((frechet_distance(&a, &b, 2)? - 8.0).abs() < 1e-9);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub fn frechet_distance(x: &[f32], y: &[f32], dim: usize) -> error::Result<f64> {
    GaussianFit::of(x, dim)?.frechet_distance(&GaussianFit::of(y, dim)?)
}

/// `a · b` for `n × n` row-major matrices.
fn multiply(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                out[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    out
}

/// (m + mᵀ)/2, removing rounding asymmetry.
fn symmetrize(mut m: Vec<f64>, n: usize) -> Vec<f64> {
    for i in 0..n {
        for j in 0..i {
            let v = 0.5 * (m[i * n + j] + m[j * n + i]);
            m[i * n + j] = v;
            m[j * n + i] = v;
        }
    }
    m
}

/// f(M) = V f(Λ) Vᵀ for a symmetric positive semi-definite M (eigenvalues clamped at 0).
fn psd_function(m: &[f64], n: usize, f: impl Fn(f64) -> f64) -> Vec<f64> {
    let (values, vectors) = jacobi(m.to_vec(), n);
    let mut out = vec![0.0; n * n];
    for (k, l) in values.iter().enumerate() {
        let fl = f(l.max(0.0));
        for i in 0..n {
            for j in 0..n {
                out[i * n + j] += vectors[i * n + k] * fl * vectors[j * n + k];
            }
        }
    }
    out
}

fn eigenvalues(m: &[f64], n: usize) -> Vec<f64> {
    jacobi(m.to_vec(), n).0
}

/// Eigenvalues and eigenvectors (columns of V, row-major) of a symmetric matrix by cyclic
/// Jacobi rotations, to full f64 precision.
fn jacobi(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |j| *j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        let scale: f64 = (0..n).map(|i| a[i * n + i].powi(2)).sum::<f64>() + off;
        if off <= 1e-30 * scale || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
                let (c, s) = {
                    let c = 1.0 / (t * t + 1.0).sqrt();
                    (c, t * c)
                };
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::SeededRng;

    /// tr √M = √(tr M + 2√det M) for a 2 × 2 PSD M, and tr(Σ₁^{1/2}Σ₂Σ₁^{1/2}) = tr(Σ₁Σ₂),
    /// det = det Σ₁ det Σ₂: an independent closed form for non-commuting covariances.
    #[test]
    fn two_by_two_covariances_have_the_closed_form() {
        let cases = [
            ([2.0, 0.3, 0.3, 1.0], [0.5, -0.2, -0.2, 3.0], [1.0, -2.0]),
            ([1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0], [0.0, 0.0]),
            ([4.0, 1.9, 1.9, 1.0], [1.0, -0.9, -0.9, 1.0], [0.5, 0.5]),
        ];
        for (s1, s2, shift) in cases {
            let a = GaussianFit::new(vec![0.0, 0.0], s1.to_vec()).unwrap();
            let b = GaussianFit::new(shift.to_vec(), s2.to_vec()).unwrap();
            let det = |s: [f64; 4]| s[0] * s[3] - s[1] * s[2];
            let tr12 = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3];
            let cross = (tr12 + 2.0 * (det(s1) * det(s2)).sqrt()).sqrt();
            let want = shift[0] * shift[0] + shift[1] * shift[1] + s1[0] + s1[3] + s2[0] + s2[3]
                - 2.0 * cross;
            let got = a.frechet_distance(&b).unwrap();
            assert!((got - want.max(0.0)).abs() < 1e-10, "{got} vs {want}");
            let back = b.frechet_distance(&a).unwrap();
            assert!((got - back).abs() < 1e-10, "symmetry: {got} vs {back}");
        }
    }

    /// Samples of N(0, I₄) and N(m·1, s²I₄): d² = 4m² + 4(1 − s)². Over 12 independent
    /// pairs of 5,000 points each, the mean estimate must match within 5 standard errors
    /// (from the 12) plus the estimator's O(d/n) bias, bounded by 2·d(1 + s²)/n (the
    /// expected ‖μ̂₁ − μ̂₂‖² noise, doubled for the covariance term).
    #[test]
    fn sampled_gaussians_match_their_distance_and_identical_sets_are_zero() {
        let (n, repeats) = (5000, 12);
        let mut rng = SeededRng::new(4);
        let draw = |rng: &mut SeededRng, mean: f64, sd: f64| -> Vec<f32> {
            rng.standard_normals(4 * n)
                .iter()
                .map(|v| (mean + sd * v) as f32)
                .collect()
        };
        for (mean, sd) in [(0.5, 1.0), (0.0, 2.0), (1.0, 0.5)] {
            let estimates: Vec<f64> = (0..repeats)
                .map(|_| {
                    let (x, y) = (draw(&mut rng, 0.0, 1.0), draw(&mut rng, mean, sd));
                    frechet_distance(&x, &y, 4).unwrap()
                })
                .collect();
            let avg = estimates.iter().sum::<f64>() / repeats as f64;
            let var =
                estimates.iter().map(|e| (e - avg).powi(2)).sum::<f64>() / (repeats - 1) as f64;
            let se = (var / repeats as f64).sqrt();
            let want = 4.0 * mean * mean + 4.0 * (1.0 - sd) * (1.0 - sd);
            let bias = 2.0 * 4.0 * (1.0 + sd * sd) / n as f64;
            assert!(
                (avg - want).abs() < 5.0 * se + bias,
                "m = {mean}, s = {sd}: {avg} ± {se} vs {want}"
            );
        }
        let x = draw(&mut rng, 0.0, 1.0);
        assert!(frechet_distance(&x, &x, 4).unwrap() < 1e-9);
        assert!(frechet_distance(&x, &x[..8], 4).is_ok());
        assert!(frechet_distance(&x, &x[..4], 4).is_err());
        assert!(GaussianFit::new(vec![0.0; 2], vec![1.0, 2.0, 0.0, 1.0]).is_err());
        let a = GaussianFit::new(vec![0.0], vec![1.0]).unwrap();
        assert!(
            a.frechet_distance(&GaussianFit::of(&x, 4).unwrap())
                .is_err()
        );
    }

    /// Commuting covariances Q D₁ Qᵀ and Q D₂ Qᵀ in 12 dimensions (Q a Householder
    /// reflection): d² = Σ_i (√d₁ᵢ − √d₂ᵢ)², to 1e-9.
    #[test]
    fn rotated_diagonal_covariances_have_the_closed_form() {
        let n = 12;
        let mut rng = SeededRng::new(8);
        let v = rng.standard_normals(n);
        let norm2: f64 = v.iter().map(|x| x * x).sum();
        let q: Vec<f64> = (0..n * n)
            .map(|k| f64::from(u8::from(k / n == k % n)) - 2.0 * v[k / n] * v[k % n] / norm2)
            .collect();
        let diag = |rng: &mut SeededRng| -> Vec<f64> {
            (0..n).map(|_| 0.1 + 3.0 * rng.next_open01()).collect()
        };
        let (d1, d2) = (diag(&mut rng), diag(&mut rng));
        let rotate = |d: &[f64]| -> Vec<f64> {
            (0..n * n)
                .map(|k| {
                    (0..n)
                        .map(|m| q[k / n * n + m] * d[m] * q[k % n * n + m])
                        .sum()
                })
                .collect()
        };
        let a = GaussianFit::new(vec![0.0; n], symmetrize(rotate(&d1), n)).unwrap();
        let b = GaussianFit::new(vec![0.0; n], symmetrize(rotate(&d2), n)).unwrap();
        let want: f64 = d1
            .iter()
            .zip(&d2)
            .map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2))
            .sum();
        let got = a.frechet_distance(&b).unwrap();
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        assert!(a.frechet_distance(&a).unwrap() < 1e-9);
    }
}
