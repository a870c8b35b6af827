//! Seeded Gaussian noise, generated on the host so that a seed gives the same numbers on
//! every device and in every thread.
//!
//! Burn's `device.seed(..)` may seed a backend globally, which makes results depend on
//! what else ran before (other tests, other threads). Every seeded function of this crate
//! draws its noise here instead: a SplitMix64 stream turned into standard normals by the
//! Box–Muller transform, computed in `f64` and uploaded once.
//!
//! The transform's `ln`, `sin` and `cos` are this module's own (fdlibm's polynomials,
//! without branches): they vectorize, several times faster than libm calls, and give the
//! same bits on every platform, where libms differ in the last place. Against 0.2.0's
//! libm stream, the f64 values agree to 4 ulp and the f32 values of [`randn`] are the
//! same but for about one in 2²⁹ (tested on 10⁶ draws).

use burn::tensor::{Device, Shape, Tensor, TensorData};

use crate::fused::kernels;

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
        mix(self.state)
    }

    /// A uniform draw from the open interval (0, 1).
    pub fn next_open01(&mut self) -> f64 {
        open01(self.next_u64())
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
    fn normals<T: Copy + Default + Send + Sync>(
        &mut self,
        n: usize,
        convert: impl Fn(f64) -> T + Copy + Send + Sync,
    ) -> Vec<T> {
        let pairs = n.div_ceil(2);
        let mut out = vec![T::default(); n];
        let start = self.state;
        let fill = |first_pair: usize, out: &mut [T]| {
            kernels::vectorized(FillPairs {
                start,
                first_pair: first_pair as u64,
                out,
                convert,
            })
        };
        #[cfg(feature = "flex")]
        if n >= PARALLEL_MIN {
            use rayon::prelude::*;
            out.par_chunks_mut(PARALLEL_CHUNK)
                .enumerate()
                .for_each(|(c, part)| fill(c * PARALLEL_CHUNK / 2, part));
        } else {
            fill(0, &mut out);
        }
        #[cfg(not(feature = "flex"))]
        fill(0, &mut out);
        self.state = start.wrapping_add((2 * pairs as u64).wrapping_mul(GAMMA));
        out
    }
}

/// Fills `out` with the Box–Muller pairs `first_pair, first_pair + 1, ...` of the stream
/// whose state is `start`: [`pair_at`] for every pair, 16 pairs at a time into two
/// arrays (so that the loop vectorizes), then interleaved.
struct FillPairs<'a, T, C> {
    start: u64,
    first_pair: u64,
    out: &'a mut [T],
    /// f64 to the output type: a closure (not a function pointer, which the compiler
    /// cannot inline, and which kept the loop scalar).
    convert: C,
}

impl<T, C: Fn(f64) -> T> kernels::Vectorized for FillPairs<'_, T, C> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        const BLOCK: usize = 16;
        let Self {
            start,
            first_pair,
            out,
            convert,
        } = self;
        let mut blocks = out.chunks_exact_mut(2 * BLOCK);
        let mut p = first_pair;
        for block in &mut blocks {
            let (mut cos, mut sin) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
            for j in 0..BLOCK {
                (cos[j], sin[j]) = pair_at(start, p + j as u64);
            }
            for (pair, (&c, &s)) in block.chunks_exact_mut(2).zip(cos.iter().zip(&sin)) {
                pair[0] = convert(c);
                pair[1] = convert(s);
            }
            p += BLOCK as u64;
        }
        for (p, pair) in (p..).zip(blocks.into_remainder().chunks_mut(2)) {
            let (c, s) = pair_at(start, p);
            pair[0] = convert(c);
            if let Some(second) = pair.get_mut(1) {
                *second = convert(s);
            }
        }
    }
}

/// Box–Muller pair `p` of the stream whose state is `start`: the draws 2p and 2p + 1,
/// whose SplitMix64 states are `start + (2p + 1)·γ` and `start + (2p + 2)·γ`, so that
/// every pair is computed on its own: (r cos θ, r sin θ) with r = √(−2 ln u₁), θ = 2π u₂.
#[inline(always)]
fn pair_at(start: u64, p: u64) -> (f64, f64) {
    let state = start.wrapping_add((2 * p + 1).wrapping_mul(GAMMA));
    let u1 = open01(mix(state));
    let u2 = open01(mix(state.wrapping_add(GAMMA)));
    let radius = (-2.0 * ln_open01(u1)).sqrt();
    let (sin, cos) = sin_cos(core::f64::consts::TAU * u2);
    (radius * cos, radius * sin)
}

/// SplitMix64's output function of a state.
#[inline(always)]
fn mix(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 53 random bits as a uniform draw from the open interval (0, 1), shifted by half an
/// ulp so that neither 0 nor 1 occurs.
#[inline(always)]
fn open01(bits: u64) -> f64 {
    ((bits >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// ln u for u in (0, 1) (normal numbers), within 1 ulp: fdlibm's `__ieee754_log` without
/// its branches (u = 2ᵏ·m with m in (√2/2, √2], ln m = 2 atanh(f / (2 + f)) with f = m − 1
/// by its degree-14 polynomial in s = f / (2 + f)). Pure arithmetic, so it vectorizes and
/// gives the same bits on every platform, where a libm's `ln` may differ in the last place.
#[inline(always)]
#[allow(clippy::excessive_precision)] // fdlibm's constants, digit for digit
fn ln_open01(u: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    const LG: [f64; 7] = [
        6.666_666_666_666_735_130e-1,
        3.999_999_999_940_941_908e-1,
        2.857_142_874_366_239_149e-1,
        2.222_219_843_214_978_396e-1,
        1.818_357_216_161_805_012e-1,
        1.531_383_769_920_937_332e-1,
        1.479_819_860_511_658_591e-1,
    ];
    let bits = u.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let above = m > core::f64::consts::SQRT_2;
    let (m, k) = if above {
        (m * 0.5, exponent + 1)
    } else {
        (m, exponent)
    };
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG[1] + w * (LG[3] + w * LG[5]));
    let t2 = z * (LG[0] + w * (LG[2] + w * (LG[4] + w * LG[6])));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let k = k as f64;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// (sin a, cos a) for a in [0, 2π], each within 1 ulp: a is reduced by the nearest
/// multiple q of π/2 (Cody–Waite with fdlibm's two-part π/2, exact for q ≤ 4), then
/// fdlibm's `__kernel_sin` / `__kernel_cos` polynomials on [−π/4, π/4] and q's quadrant.
#[inline(always)]
#[allow(clippy::excessive_precision)] // fdlibm's constants, digit for digit
fn sin_cos(a: f64) -> (f64, f64) {
    const PIO2_1: f64 = 1.570_796_326_734_125_614_17;
    const PIO2_1T: f64 = 6.077_100_506_506_192_249_32e-11;
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 · 2⁵²
    const S: [f64; 6] = [
        -1.666_666_666_666_663_243_48e-1,
        8.333_333_333_322_489_461_24e-3,
        -1.984_126_982_985_794_931_34e-4,
        2.755_731_370_707_006_767_89e-6,
        -2.505_076_025_340_686_341_95e-8,
        1.589_690_995_211_550_102_21e-10,
    ];
    const C: [f64; 6] = [
        4.166_666_666_666_660_190_37e-2,
        -1.388_888_888_887_410_957_49e-3,
        2.480_158_728_947_672_941_78e-5,
        -2.755_731_435_139_066_330_35e-7,
        2.087_572_321_298_174_827_90e-9,
        -1.135_964_755_778_819_482_65e-11,
    ];
    let shifted = a * core::f64::consts::FRAC_2_PI + ROUND;
    let q = shifted - ROUND;
    let quadrant = shifted.to_bits() & 3;
    let x = (a - q * PIO2_1) - q * PIO2_1T;
    let z = x * x;
    let sin_r = S[1] + z * (S[2] + z * (S[3] + z * (S[4] + z * S[5])));
    let sin_x = x + z * x * (S[0] + z * sin_r);
    let cos_r = z * (C[0] + z * (C[1] + z * (C[2] + z * (C[3] + z * (C[4] + z * C[5])))));
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let cos_x = w + (((1.0 - w) - hz) + z * cos_r);
    let (sin_abs, cos_abs) = if quadrant & 1 == 1 {
        (cos_x, sin_x)
    } else {
        (sin_x, cos_x)
    };
    let sin = if quadrant & 2 == 2 { -sin_abs } else { sin_abs };
    let cos = if (quadrant + 1) & 2 == 2 {
        -cos_abs
    } else {
        cos_abs
    };
    (sin, cos)
}

/// SplitMix64's increment γ (the golden ratio's fraction, as 64 bits).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
/// Below this many normals one thread is faster than handing parts to others.
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
const PARALLEL_MIN: usize = 1 << 15;
/// Normals per parallel task (even, so that no pair is split).
#[cfg(feature = "flex")]
const PARALLEL_CHUNK: usize = 1 << 13;

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

    /// The libm Box–Muller of 0.2.0's stream (`ln`, `cos`, `sin` of the platform's libm).
    fn libm_normals(seed: u64, n: usize) -> (Vec<f64>, SeededRng) {
        let mut rng = SeededRng::new(seed);
        let mut reference = Vec::with_capacity(n + 1);
        while reference.len() < n {
            let radius = (-2.0 * rng.next_open01().ln()).sqrt();
            let angle = core::f64::consts::TAU * rng.next_open01();
            reference.push(radius * angle.cos());
            reference.push(radius * angle.sin());
        }
        reference.truncate(n);
        (reference, rng)
    }

    /// The threaded, vectorized fill gives exactly the one-pair-at-a-time stream, and
    /// leaves the generator where the sequential loop would.
    #[test]
    fn threaded_normals_are_the_sequential_stream() {
        for n in [1, 2, 7, PARALLEL_MIN + 1, 3 * PARALLEL_MIN + 7] {
            let sequential: Vec<f64> = (0..n.div_ceil(2) as u64)
                .flat_map(|p| {
                    let (c, s) = pair_at(11, p);
                    [c, s]
                })
                .take(n)
                .collect();
            let mut threaded = SeededRng::new(11);
            assert_eq!(threaded.standard_normals(n), sequential, "n = {n}");
            assert_eq!(threaded, libm_normals(11, n).1, "state after n = {n}");
        }
    }

    /// The polynomial ln / sin / cos against the platform's libm on 10⁶ normals: within
    /// 4 ulp in f64, and the f32 values that `randn` uploads are identical but for a
    /// value within an f64 ulp of an f32 rounding boundary (about 2⁻²⁹ of them).
    #[test]
    fn normals_match_the_libm_stream() {
        let n = 1_000_000;
        let (reference, _) = libm_normals(5, n);
        let ours = SeededRng::new(5).standard_normals(n);
        let mut f32_differences = 0;
        for (i, (&a, &b)) in ours.iter().zip(&reference).enumerate() {
            assert!(
                (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(1e-300),
                "{i}: {a} against {b}"
            );
            f32_differences += usize::from(a as f32 != b as f32);
        }
        assert!(f32_differences <= 2, "{f32_differences} f32 values differ");
        let edges = [
            1e-300,
            0.5,
            1.0 - f64::EPSILON / 2.0,
            core::f64::consts::FRAC_1_SQRT_2,
        ];
        for u in edges {
            assert!(
                (ln_open01(u) - u.ln()).abs() <= f64::EPSILON * u.ln().abs(),
                "ln {u}"
            );
        }
        for k in 0..=4000 {
            let a = core::f64::consts::TAU * k as f64 / 4000.0;
            let (sin, cos) = sin_cos(a);
            assert!((sin - a.sin()).abs() <= 2.0 * f64::EPSILON, "sin {a}");
            assert!((cos - a.cos()).abs() <= 2.0 * f64::EPSILON, "cos {a}");
        }
    }

    /// The baseline, AVX2 and AVX-512 copies of the fill give the same bits, so a seed
    /// gives the same numbers whatever the CPU.
    #[test]
    fn every_instruction_set_gives_the_same_normals() {
        use crate::fused::kernels::Isa;
        let fill = |isa: Isa| {
            let mut out = vec![0.0f64; 1001];
            isa.run(FillPairs {
                start: 17,
                first_pair: 3,
                out: &mut out,
                convert: |v| v,
            })?;
            Some(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        };
        let baseline = fill(Isa::Baseline).unwrap();
        for isa in [Isa::Avx2, Isa::Avx512] {
            if let Some(other) = fill(isa) {
                assert!(other == baseline, "{isa:?} differs from the baseline");
            }
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
