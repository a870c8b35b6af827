//! Seeded Gaussian noise, generated on the host so that a seed gives the same numbers on
//! every device and in every thread.
//!
//! Burn's `device.seed(..)` may seed a backend globally, which makes results depend on
//! what else ran before (other tests, other threads). Every seeded function of this crate
//! draws its noise here instead: a SplitMix64 stream turned into standard normals by the
//! Box–Muller transform, computed in `f64` and uploaded once.

use burn::tensor::{Device, Shape, Tensor, TensorData};

/// A small, fast, reproducible pseudo-random generator (SplitMix64, Steele et al. 2014).
///
/// It is not cryptographic; it exists so that seeded noise is identical on every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw from the open interval (0, 1).
    pub fn next_open01(&mut self) -> f64 {
        // 53 random bits, shifted by half an ulp so that neither 0 nor 1 occurs.
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform draw from `0..n` (0 when `n` is 0), without modulo bias (Lemire 2019).
    pub fn next_below(&mut self, n: usize) -> usize {
        let n = n as u64;
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as usize;
            }
        }
    }

    /// Shuffles `items` in place, every permutation equally likely (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.next_below(i + 1));
        }
    }

    /// `n` independent standard normal draws (Box–Muller).
    pub fn standard_normals(&mut self, n: usize) -> Vec<f64> {
        self.normals(n, |v| v)
    }

    /// `n` standard normals converted by `convert`: the Box–Muller pair `p` uses the
    /// stream's draws `2p` and `2p + 1`. SplitMix64's state after `k` draws is
    /// `seed + k·γ`, so long outputs are filled by several threads from their own
    /// offsets, with the very numbers one thread would give.
    fn normals<T: Copy + Default + Send>(&mut self, n: usize, convert: fn(f64) -> T) -> Vec<T> {
        let pairs = n.div_ceil(2);
        let mut out = vec![T::default(); n];
        let threads = if n < PARALLEL_MIN {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |p| p.get().min(MAX_THREADS))
        };
        let chunk = 2 * pairs.div_ceil(threads);
        let start = self.state;
        let fill = |c: usize, part: &mut [T]| {
            let mut rng =
                SeededRng::new(start.wrapping_add(((c * chunk) as u64).wrapping_mul(GAMMA)));
            for pair in part.chunks_mut(2) {
                let radius = (-2.0 * rng.next_open01().ln()).sqrt();
                let angle = core::f64::consts::TAU * rng.next_open01();
                pair[0] = convert(radius * angle.cos());
                if let Some(second) = pair.get_mut(1) {
                    *second = convert(radius * angle.sin());
                }
            }
        };
        if threads == 1 {
            fill(0, &mut out);
        } else {
            std::thread::scope(|scope| {
                for (c, part) in out.chunks_mut(chunk).enumerate() {
                    scope.spawn(move || fill(c, part));
                }
            });
        }
        self.state = start.wrapping_add((2 * pairs as u64).wrapping_mul(GAMMA));
        out
    }
}

/// SplitMix64's increment γ (the golden ratio's fraction, as 64 bits).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
/// Below this many normals one thread is faster than spawning others.
const PARALLEL_MIN: usize = 1 << 15;
/// At most this many threads fill one output.
const MAX_THREADS: usize = 8;

/// A tensor of independent N(0, 1) draws, fixed by `seed` whatever the device.
///
/// # Shapes
/// - output: `shape`
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use burn_diffusion::noise::randn;
///
/// let device = Device::flex();
/// let a: Tensor<2> = randn([2, 3], 7, &device);
/// let b: Tensor<2> = randn([2, 3], 7, &device);
/// assert_eq!(a.into_data(), b.into_data());
/// ```
pub fn randn<const D: usize>(shape: impl Into<Shape>, seed: u64, device: &Device) -> Tensor<D> {
    let shape = shape.into();
    let values: Vec<f32> = SeededRng::new(seed).normals(shape.num_elements(), |v| v as f32);
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_unit_moments() {
        let n = 200_000;
        let xs = SeededRng::new(3).standard_normals(n);
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let kurt = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n as f64 / var.powi(2);
        // Standard errors: mean 1/sqrt(n) = 0.0022, variance sqrt(2/n) = 0.0032,
        // kurtosis sqrt(24/n) = 0.011; allow five of each.
        assert!(mean.abs() < 0.011, "mean {mean}");
        assert!((var - 1.0).abs() < 0.016, "variance {var}");
        assert!((kurt - 3.0).abs() < 0.055, "kurtosis {kurt}");
    }

    /// The threaded fill gives exactly the one-thread stream, and leaves the generator
    /// where the one-thread loop would.
    #[test]
    fn threaded_normals_are_the_sequential_stream() {
        for n in [PARALLEL_MIN + 1, 3 * PARALLEL_MIN + 7] {
            let mut rng = SeededRng::new(11);
            let mut reference = Vec::with_capacity(n + 1);
            while reference.len() < n {
                let radius = (-2.0 * rng.next_open01().ln()).sqrt();
                let angle = core::f64::consts::TAU * rng.next_open01();
                reference.push(radius * angle.cos());
                reference.push(radius * angle.sin());
            }
            reference.truncate(n);
            let mut threaded = SeededRng::new(11);
            assert_eq!(threaded.standard_normals(n), reference, "n = {n}");
            assert_eq!(threaded, rng, "state after n = {n}");
        }
    }

    #[test]
    fn different_seeds_differ_and_same_seed_repeats() {
        let a = SeededRng::new(1).standard_normals(5);
        assert_eq!(a, SeededRng::new(1).standard_normals(5));
        assert_ne!(a, SeededRng::new(2).standard_normals(5));
        assert_eq!(a.len(), 5);
    }

    #[test]
    fn bounded_draws_are_uniform_and_shuffles_are_permutations() {
        // 60,000 draws from 0..6: each count is Binomial(60000, 1/6), sd ≈ 91; allow 5 sd.
        let mut rng = SeededRng::new(5);
        let mut counts = [0usize; 6];
        (0..60_000).for_each(|_| counts[rng.next_below(6)] += 1);
        assert!(
            counts.iter().all(|&c| c.abs_diff(10_000) < 456),
            "{counts:?}"
        );
        assert_eq!(rng.next_below(0), 0);
        let mut items: Vec<usize> = (0..50).collect();
        rng.shuffle(&mut items);
        assert_ne!(items, (0..50).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..50).collect::<Vec<_>>());
    }
}
