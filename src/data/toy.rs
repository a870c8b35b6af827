//! Two-dimensional toy distributions, generated in code: the swiss roll, two moons and
//! eight Gaussians of the FFJORD / score-matching literature (Grathwohl et al. 2019).

use core::f64::consts::PI;
use core::fmt;
use core::str::FromStr;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{self, DiffusionError};
use crate::noise::SeededRng;

/// A 2-D toy distribution, sampled with a seed. With u ~ U(0, 1) and ε ~ N(0, I):
///
/// - `SwissRoll`: t = 1.5π(1 + 2u), x = (t·cos t + ε₁, t·sin t + ε₂) / 5 (scikit-learn's
///   `make_swiss_roll(noise = 1)`, coordinates 0 and 2, scaled by 1/5 as in FFJORD);
/// - `TwoMoons`: θ = πu, a fair coin picks the upper moon (cos θ, sin θ) or the lower one
///   (1 − cos θ, ½ − sin θ); x = 2·(moon + 0.1·ε) − (1, 0.2) (`make_moons(noise = 0.1)`);
/// - `EightGaussians`: a centre c uniform on the 8 points 4·(cos kπ/4, sin kπ/4), and
///   x = (c + ε/2) / 1.414.
///
/// All three have coordinates of order 1, like normalized image data.
///
/// # Example
/// ```
/// use burn::tensor::Device;
/// use burn_diffusion::data::Toy2d;
///
/// let toy: Toy2d = "moons".parse().unwrap();
/// let x = toy.sample_tensor(512, 0, &Device::flex()); // [512, 2]
/// assert_eq!(x.dims(), [512, 2]);
/// assert_eq!(toy.sample(3, 7), toy.sample(3, 7));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Toy2d {
    /// A noisy 2-D spiral.
    SwissRoll,
    /// Two interleaving half circles.
    TwoMoons,
    /// A mixture of eight Gaussians on a circle.
    EightGaussians,
}

impl Toy2d {
    /// All toy distributions, in the order of their names in [`Toy2d::NAMES`].
    pub const ALL: [Toy2d; 3] = [Toy2d::SwissRoll, Toy2d::TwoMoons, Toy2d::EightGaussians];
    /// The names that [`FromStr`] accepts and [`fmt::Display`] writes.
    pub const NAMES: [&'static str; 3] = ["swiss-roll", "moons", "8gaussians"];

    /// `n` points, fixed by `seed`.
    pub fn sample(self, n: usize, seed: u64) -> Vec<[f32; 2]> {
        let mut rng = SeededRng::new(seed);
        (0..n).map(|_| self.point(&mut rng)).collect()
    }

    /// `n` points as a tensor on `device`.
    ///
    /// # Shapes
    /// - output: `[n, 2]`
    pub fn sample_tensor(self, n: usize, seed: u64, device: &Device) -> Tensor<2> {
        let flat: Vec<f32> = self.sample(n, seed).into_iter().flatten().collect();
        Tensor::from_data(TensorData::new(flat, [n, 2]), device)
    }

    fn point(self, rng: &mut SeededRng) -> [f32; 2] {
        let u = rng.next_open01();
        let eps = rng.standard_normals(2);
        let [x, y] = match self {
            Toy2d::SwissRoll => {
                let t = 1.5 * PI * (1.0 + 2.0 * u);
                [(t * t.cos() + eps[0]) / 5.0, (t * t.sin() + eps[1]) / 5.0]
            }
            Toy2d::TwoMoons => {
                let theta = PI * u;
                let [mx, my] = if rng.next_open01() < 0.5 {
                    [theta.cos(), theta.sin()]
                } else {
                    [1.0 - theta.cos(), 0.5 - theta.sin()]
                };
                [
                    2.0 * (mx + 0.1 * eps[0]) - 1.0,
                    2.0 * (my + 0.1 * eps[1]) - 0.2,
                ]
            }
            Toy2d::EightGaussians => {
                let k = (u * 8.0).floor();
                let (s, c) = (k * PI / 4.0).sin_cos();
                [
                    (4.0 * c + 0.5 * eps[0]) / 1.414,
                    (4.0 * s + 0.5 * eps[1]) / 1.414,
                ]
            }
        };
        [x as f32, y as f32]
    }
}

impl fmt::Display for Toy2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = Self::ALL.iter().position(|t| t == self).unwrap_or(0);
        f.write_str(Self::NAMES[i])
    }
}

impl FromStr for Toy2d {
    type Err = DiffusionError;

    /// Parses one of [`Toy2d::NAMES`].
    fn from_str(s: &str) -> error::Result<Self> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| {
                DiffusionError::config(
                    "toy distribution",
                    s,
                    format!("must be one of {:?}", Self::NAMES),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::f64::consts::FRAC_1_SQRT_2 as DIAGONAL;

    /// Per coordinate: the sample mean and its standard error, the sample variance and its
    /// standard error √((m₄ − s⁴)/n) from the sample's fourth central moment m₄.
    fn moments(points: &[[f32; 2]]) -> [(f64, f64, f64, f64); 2] {
        let n = points.len() as f64;
        [0, 1].map(|d| {
            let mean = points.iter().map(|p| p[d] as f64).sum::<f64>() / n;
            let central = |k: i32| {
                points
                    .iter()
                    .map(|p| (p[d] as f64 - mean).powi(k))
                    .sum::<f64>()
                    / n
            };
            let (var, m4) = (central(2), central(4));
            (mean, (var / n).sqrt(), var, ((m4 - var * var) / n).sqrt())
        })
    }

    #[test]
    fn sample_means_match_the_closed_forms() {
        // E over t ~ U(1.5π, 4.5π): E[t cos t] = 6π / 3π = 2 and E[t sin t] = 2 / 3π.
        // Moons: the two half circles average to (½, ¼), so E x = 2·(½, ¼) − (1, 0.2).
        // Eight Gaussians: the centres are symmetric, E x = 0, and
        // Var x₁ = (16·E[cos²] + ¼) / 1.414² with E[cos²] = (2 + 4·DIAGONAL²) / 8 = ½.
        let cases = [
            (Toy2d::SwissRoll, [2.0 / 5.0, 2.0 / (3.0 * PI) / 5.0], None),
            (Toy2d::TwoMoons, [0.0, 0.3], None),
            (
                Toy2d::EightGaussians,
                [0.0, 0.0],
                Some((16.0 * (2.0 + 4.0 * DIAGONAL * DIAGONAL) / 8.0 + 0.25) / (1.414f64 * 1.414)),
            ),
        ];
        for (toy, want_mean, want_var) in cases {
            let m = moments(&toy.sample(40_000, 1));
            for d in 0..2 {
                let (mean, se, var, se_var) = m[d];
                // 5 standard errors: a false alarm has probability below 1e-6.
                let want = want_mean[d];
                assert!(
                    (mean - want).abs() < 5.0 * se,
                    "{toy} mean[{d}] {mean} vs {want} (se {se})"
                );
                if let Some(v) = want_var {
                    assert!(
                        (var - v).abs() < 5.0 * se_var,
                        "{toy} var[{d}] {var} vs {v} (se {se_var})"
                    );
                }
            }
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for toy in Toy2d::ALL {
            assert_eq!(toy.to_string().parse::<Toy2d>().unwrap(), toy);
        }
        let err = "spiral".parse::<Toy2d>().unwrap_err().to_string();
        assert!(err.contains("swiss-roll"), "{err}");
        assert_ne!(Toy2d::TwoMoons.sample(4, 1), Toy2d::TwoMoons.sample(4, 2));
    }
}
