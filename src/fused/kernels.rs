//! Slice kernels of the fused ops: plain Rust on `f32` slices, no Burn types, so they can
//! be reused by any backend that hands out its buffers (and offered upstream as they
//! are).
//!
//! Each kernel is one pass over its inputs. The loops are written so that the compiler
//! vectorizes them: the exponential is a branch-free polynomial ([`exp_neg`]), every
//! branch is a select, and [`vectorized`] runs the loop in a copy compiled for AVX-512
//! or AVX2 when the CPU has it (runtime detection, so one binary runs everywhere).
//! Results do not depend on the path taken: no fused multiply-add is used, so the
//! scalar, AVX2 and AVX-512 copies round identically.

/// Elements per parallel task: large enough to amortize a rayon task, small enough to
/// split a 28×28 UNet activation across both cores.
#[cfg(feature = "flex")]
const CHUNK: usize = 1 << 14;

/// e^(−a) for a ≥ 0, to within 2 ulp of the correctly rounded value; 0 for a > 87 (where
/// e^(−a) < 1.7·10⁻³⁸ is at the bottom of the normal range), NaN for NaN.
///
/// Cephes' `expf`: a = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by a degree-7 polynomial,
/// 2ⁿ by writing the exponent bits. The rounding of n uses the 1.5·2²³ trick, so no
/// branch or library call stops the loop from being vectorized.
#[inline(always)]
pub fn exp_neg(a: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 355.0 / 512.0; // ln 2 to 9 bits, so that n · LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³
    let x = -a;
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 0.166_666_65)
        * r
        + 0.5)
        * r)
        * r
        + r
        + 1.0;
    let scale = f32::from_bits((n_int.wrapping_add(127) as u32).wrapping_shl(23));
    if a > 87.0 { 0.0 } else { p * scale }
}

/// σ(x) = 1 / (1 + e^(−x)), computed from e^(−|x|) so that nothing overflows; NaN for NaN.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp_neg(x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 { r } else { e * r }
}

/// SiLU, x·σ(x).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// The SiLU's derivative times the incoming gradient g:
/// g · σ(x) · (1 + x · (1 − σ(x))).
#[inline(always)]
pub fn silu_backward(x: f32, g: f32) -> f32 {
    let s = sigmoid(x);
    g * (s * (1.0 + x * (1.0 - s)))
}

/// A loop to compile for several instruction sets: [`vectorized`] runs it in a copy
/// compiled for AVX-512 or AVX2 when the CPU has them.
///
/// `run` must be `#[inline(always)]`, and so must everything it calls that should be
/// vectorized: only what is inlined into the `#[target_feature]` copy is compiled for
/// its instruction set. (A closure does not guarantee that: a large one is compiled
/// once, for the baseline, and called; the noise generator's loop stayed scalar so.)
pub trait Vectorized {
    /// What the loop returns.
    type Output;
    /// Runs the loop.
    fn run(self) -> Self::Output;
}

/// Runs `kernel` in a copy compiled for the widest vector unit the CPU has (detected at
/// run time; the baseline copy elsewhere).
#[inline(always)]
pub fn vectorized<K: Vectorized>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if Isa::Avx512.available() {
            // SAFETY: the CPU has AVX-512F and DQ, checked just above.
            return unsafe { with_avx512(kernel) };
        }
        if Isa::Avx2.available() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { with_avx2(kernel) };
        }
    }
    kernel.run()
}

/// The instruction sets [`vectorized`] chooses from (`Baseline` is named by the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Isa {
    Baseline,
    Avx2,
    Avx512,
}

impl Isa {
    fn available(self) -> bool {
        match self {
            Isa::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512dq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// `kernel` in this instruction set's copy, `None` if the CPU does not have it (for
    /// the tests, which check that every copy gives the same bits).
    #[cfg(test)]
    pub(crate) fn run<K: Vectorized>(self, kernel: K) -> Option<K::Output> {
        if !self.available() {
            return None;
        }
        match self {
            Isa::Baseline => Some(kernel.run()),
            // SAFETY: `available` checked the CPU's features just above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Some(unsafe { with_avx2(kernel) }),
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Some(unsafe { with_avx512(kernel) }),
            #[cfg(not(target_arch = "x86_64"))]
            _ => None,
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn with_avx512<K: Vectorized>(kernel: K) -> K::Output {
    kernel.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<K: Vectorized>(kernel: K) -> K::Output {
    kernel.run()
}

/// `out[i] = f(x[i])`.
struct MapLoop<'a, F> {
    x: &'a [f32],
    out: &'a mut [f32],
    f: F,
}

impl<F: Fn(f32) -> f32> Vectorized for MapLoop<'_, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        map_loop(self.x, self.out, self.f)
    }
}

/// `x[i] = f(x[i])`.
struct InPlaceLoop<'a, F> {
    x: &'a mut [f32],
    f: F,
}

impl<F: Fn(f32) -> f32> Vectorized for InPlaceLoop<'_, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        in_place_loop(self.x, self.f)
    }
}

/// `out[i] = f(x[i], y[i])`.
struct ZipLoop<'a, F> {
    x: &'a [f32],
    y: &'a [f32],
    out: &'a mut [f32],
    f: F,
}

impl<F: Fn(f32, f32) -> f32> Vectorized for ZipLoop<'_, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        zip_loop(self.x, self.y, self.out, self.f)
    }
}

// The loops take their slices as arguments (not as a closure's captures): the compiler
// then knows that they do not overlap, and vectorizes them. Captured by a closure, the
// two-input loop stayed scalar (4.6× slower).

#[inline(always)]
fn map_loop(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

#[inline(always)]
fn in_place_loop(x: &mut [f32], f: impl Fn(f32) -> f32) {
    for v in x.iter_mut() {
        *v = f(*v);
    }
}

#[inline(always)]
fn zip_loop(x: &[f32], y: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
        *o = f(a, b);
    }
}

/// `out[i] = f(x[i])`, vectorized and, with the `flex` feature, split across threads.
///
/// # Panics
///
/// If the slices' lengths differ (a bug of the caller, never of user data).
pub fn map(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Send + Copy) {
    assert_eq!(x.len(), out.len(), "map: slice lengths differ");
    let serial = |x: &[f32], out: &mut [f32]| vectorized(MapLoop { x, out, f });
    #[cfg(feature = "flex")]
    {
        use rayon::prelude::*;
        if x.len() > CHUNK {
            out.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .for_each(|(out, x)| serial(x, out));
            return;
        }
    }
    serial(x, out)
}

/// `x[i] = f(x[i])`, as [`map`].
pub fn map_in_place(x: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Send + Copy) {
    let serial = |x: &mut [f32]| vectorized(InPlaceLoop { x, f });
    #[cfg(feature = "flex")]
    {
        use rayon::prelude::*;
        if x.len() > CHUNK {
            x.par_chunks_mut(CHUNK).for_each(serial);
            return;
        }
    }
    serial(x)
}

/// `out[i] = f(x[i], y[i])`, as [`map`].
///
/// # Panics
///
/// If the slices' lengths differ (a bug of the caller, never of user data).
pub fn zip_map(
    x: &[f32],
    y: &[f32],
    out: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Sync + Send + Copy,
) {
    assert!(
        x.len() == out.len() && y.len() == out.len(),
        "zip_map: slice lengths differ"
    );
    let serial = |x: &[f32], y: &[f32], out: &mut [f32]| vectorized(ZipLoop { x, y, out, f });
    #[cfg(feature = "flex")]
    {
        use rayon::prelude::*;
        if x.len() > CHUNK {
            out.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .zip(y.par_chunks(CHUNK))
                .for_each(|((out, x), y)| serial(x, y, out));
            return;
        }
    }
    serial(x, y, out)
}

/// The shape of a GroupNorm over a contiguous `[n, channels, len]` buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupNormShape {
    /// Batch size.
    pub n: usize,
    /// Channels; a multiple of `groups`.
    pub channels: usize,
    /// Elements per channel (the spatial size).
    pub len: usize,
    /// Groups of channels normalized together.
    pub groups: usize,
}

impl GroupNormShape {
    fn channels_per_group(&self) -> usize {
        self.channels / self.groups
    }
    fn block(&self) -> usize {
        self.channels_per_group() * self.len
    }
    /// Block `b`'s (example `b / groups`, group `b % groups`) parameters.
    fn group<'a>(
        &self,
        b: usize,
        gamma: &'a [f32],
        beta: &'a [f32],
        epsilon: f64,
        silu_after: bool,
    ) -> Group<'a> {
        let cpg = self.channels_per_group();
        let c = (b % self.groups) * cpg;
        Group {
            gamma: &gamma[c..c + cpg],
            beta: &beta[c..c + cpg],
            len: self.len,
            epsilon,
            silu_after,
        }
    }
    fn check(&self, x: usize, gamma: usize, beta: usize) {
        assert!(
            self.groups > 0 && self.channels.is_multiple_of(self.groups),
            "group_norm: {} channels in {} groups",
            self.channels,
            self.groups
        );
        assert_eq!(
            x,
            self.n * self.channels * self.len,
            "group_norm: input length"
        );
        assert_eq!(gamma, self.channels, "group_norm: γ length");
        assert_eq!(beta, self.channels, "group_norm: β length");
    }
}

/// The keep threshold of [`dropout`] for keep probability `keep` ∈ (0, 1]: an element is
/// kept when 24 random bits fall below it, so the probability is rounded to a multiple
/// of 2⁻²⁴.
pub fn dropout_threshold(keep: f64) -> u32 {
    (keep.clamp(0.0, 1.0) * f64::from(1u32 << 24)).round() as u32
}

/// Whether element `i` of the dropout mask of `seed` is kept: the top 24 bits of
/// SplitMix64's output for counter `i` (Steele, Lea & Flood 2014) below `threshold`. A
/// counter-based stream: any element is computed alone, so the mask does not depend on
/// how the work is split across threads or vector lanes.
#[inline(always)]
pub fn dropout_keeps(seed: u64, i: u64, threshold: u32) -> bool {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 40) as u32) < threshold
}

/// Inverted dropout: `out[i] = x[i] · (m_i / keep)` with the mask m of `seed`
/// ([`dropout_keeps`]) and keep probability `keep` ∈ (0, 1], for the elements numbered
/// from `first`. A dropped element is `x · 0` (NaN stays NaN, as in Burn's and PyTorch's
/// `x · mask`). Dropout is linear and diagonal, so its vector-Jacobian product is the
/// same call on the gradient.
///
/// # Panics
///
/// If the slices' lengths differ (a bug of the caller, never of user data).
pub fn dropout(x: &[f32], out: &mut [f32], seed: u64, keep: f64, first: u64) {
    assert_eq!(x.len(), out.len(), "dropout: slice lengths differ");
    let threshold = dropout_threshold(keep);
    let scale = (1.0 / keep) as f32;
    let serial = |x: &[f32], out: &mut [f32], first: u64| {
        vectorized(DropoutLoop {
            x,
            out,
            seed,
            first,
            threshold,
            scale,
        })
    };
    #[cfg(feature = "flex")]
    {
        use rayon::prelude::*;
        if x.len() > CHUNK {
            out.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .enumerate()
                .for_each(|(c, (out, x))| serial(x, out, first + (c * CHUNK) as u64));
            return;
        }
    }
    serial(x, out, first)
}

/// The loop of [`dropout`] over one chunk.
struct DropoutLoop<'a> {
    x: &'a [f32],
    out: &'a mut [f32],
    seed: u64,
    first: u64,
    threshold: u32,
    scale: f32,
}

impl Vectorized for DropoutLoop<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        for (i, (o, &x)) in self.out.iter_mut().zip(self.x).enumerate() {
            let kept = dropout_keeps(self.seed, self.first + i as u64, self.threshold);
            *o = x * if kept { self.scale } else { 0.0 };
        }
    }
}

/// Σ f(xᵢ) in f64, over eight accumulators (so that the loop vectorizes).
#[inline(always)]
pub(crate) fn lane_sum(x: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Mean and 1/√(variance + ε) of one group, both passes accumulated in f64.
#[inline(always)]
fn block_stats(x: &[f32], epsilon: f64) -> (f32, f32) {
    let count = x.len().max(1) as f64;
    let mean = lane_sum(x, f64::from) / count;
    let m = mean as f32;
    let var = lane_sum(x, |v| {
        let d = f64::from(v - m);
        d * d
    }) / count;
    (m, (1.0 / (var + epsilon).sqrt()) as f32)
}

/// What a group's kernel needs besides its data: its channels' γ and β, the elements per
/// channel, ε, and whether the SiLU follows.
#[derive(Clone, Copy)]
struct Group<'a> {
    gamma: &'a [f32],
    beta: &'a [f32],
    len: usize,
    epsilon: f64,
    silu_after: bool,
}

/// One group's normalization: [`group_norm_block`].
struct GroupNormBlock<'a> {
    x: &'a [f32],
    out: &'a mut [f32],
    group: Group<'a>,
}

impl Vectorized for GroupNormBlock<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        group_norm_block(self.x, self.out, self.group)
    }
}

/// One group's gradient: [`backward_block`].
struct BackwardBlock<'a> {
    x: &'a [f32],
    grad: &'a [f32],
    dx: &'a mut [f32],
    partial: &'a mut [(f64, f64)],
    group: Group<'a>,
}

impl Vectorized for BackwardBlock<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        backward_block(self.x, self.grad, self.dx, self.partial, self.group)
    }
}

#[inline(always)]
fn group_norm_block(x: &[f32], out: &mut [f32], group: Group) {
    let Group {
        gamma,
        beta,
        len,
        epsilon,
        silu_after,
    } = group;
    let (mean, rstd) = block_stats(x, epsilon);
    for ((x, out), (&g, &b)) in x
        .chunks_exact(len)
        .zip(out.chunks_exact_mut(len))
        .zip(gamma.iter().zip(beta))
    {
        let scale = rstd * g;
        if silu_after {
            map_loop(x, out, |v| silu((v - mean) * scale + b));
        } else {
            map_loop(x, out, |v| (v - mean) * scale + b);
        }
    }
}

/// GroupNorm, `out = (x − μ_g) / √(σ²_g + ε) · γ_c + β_c` over each group g of channels
/// of each example, optionally followed by the SiLU (`silu(out)`), in one pass after the
/// statistics (two passes, accumulated in f64).
///
/// # Shapes
///
/// - `x`, `out`: `[n, channels, len]`, contiguous; `gamma`, `beta`: `[channels]`.
///
/// # Panics
///
/// If the lengths do not match `shape` (a bug of the caller, never of user data).
pub fn group_norm(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    shape: GroupNormShape,
    epsilon: f64,
    silu_after: bool,
    out: &mut [f32],
) {
    shape.check(x.len(), gamma.len(), beta.len());
    assert_eq!(out.len(), x.len(), "group_norm: output length");
    let block = shape.block();
    if block == 0 {
        return;
    }
    let run = |b: usize, x: &[f32], out: &mut [f32]| {
        let group = shape.group(b, gamma, beta, epsilon, silu_after);
        vectorized(GroupNormBlock { x, out, group })
    };
    #[cfg(feature = "flex")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(block)
            .zip(x.par_chunks(block))
            .enumerate()
            .for_each(|(b, (out, x))| run(b, x, out));
    }
    #[cfg(not(feature = "flex"))]
    for (b, (out, x)) in out.chunks_mut(block).zip(x.chunks(block)).enumerate() {
        run(b, x, out);
    }
}

/// The gradients of [`group_norm`] (with or without its SiLU) with respect to `x`, `γ`
/// and `β`, given the output's gradient `grad`: the block statistics are recomputed
/// from `x`, then, with x̂ the normalized input, z = x̂ γ + β and dz the gradient at z,
///
/// dβ_c = Σ dz, dγ_c = Σ dz x̂ (over the batch and the channel's elements), and
/// dx = (dx̂ − mean_g(dx̂) − x̂ · mean_g(dx̂ x̂)) / √(σ²_g + ε) with dx̂ = dz γ_c.
///
/// # Shapes
///
/// - `x`, `grad`, `dx`: `[n, channels, len]`, contiguous; `gamma`, `beta`, `dgamma`,
///   `dbeta`: `[channels]`.
///
/// # Panics
///
/// If the lengths do not match `shape` (a bug of the caller, never of user data).
#[allow(clippy::too_many_arguments)] // the op's inputs and its three outputs
pub fn group_norm_backward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    grad: &[f32],
    shape: GroupNormShape,
    epsilon: f64,
    silu_after: bool,
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    shape.check(x.len(), gamma.len(), beta.len());
    assert!(
        grad.len() == x.len() && dx.len() == x.len(),
        "group_norm_backward: gradient length"
    );
    assert!(
        dgamma.len() == shape.channels && dbeta.len() == shape.channels,
        "group_norm_backward: parameter gradient length"
    );
    let (block, cpg) = (shape.block(), shape.channels_per_group());
    dgamma.fill(0.0);
    dbeta.fill(0.0);
    if block == 0 {
        return;
    }
    // Per example and channel: (Σ dz x̂, Σ dz), summed over the batch at the end.
    let mut partial = vec![(0.0f64, 0.0f64); shape.n * shape.channels];
    let run = |b: usize, x: &[f32], grad: &[f32], dx: &mut [f32], partial: &mut [(f64, f64)]| {
        let group = shape.group(b, gamma, beta, epsilon, silu_after);
        vectorized(BackwardBlock {
            x,
            grad,
            dx,
            partial,
            group,
        })
    };
    #[cfg(feature = "flex")]
    {
        use rayon::prelude::*;
        dx.par_chunks_mut(block)
            .zip(x.par_chunks(block))
            .zip(grad.par_chunks(block))
            .zip(partial.par_chunks_mut(cpg))
            .enumerate()
            .for_each(|(b, (((dx, x), grad), partial))| run(b, x, grad, dx, partial));
    }
    #[cfg(not(feature = "flex"))]
    for (b, (((dx, x), grad), partial)) in dx
        .chunks_mut(block)
        .zip(x.chunks(block))
        .zip(grad.chunks(block))
        .zip(partial.chunks_mut(cpg))
        .enumerate()
    {
        run(b, x, grad, dx, partial);
    }
    let mut sums = vec![(0.0f64, 0.0f64); shape.channels];
    for example in partial.chunks_exact(shape.channels) {
        for (sum, &(dg, db)) in sums.iter_mut().zip(example) {
            sum.0 += dg;
            sum.1 += db;
        }
    }
    for ((dg, db), (sg, sb)) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(sums) {
        *dg = sg as f32;
        *db = sb as f32;
    }
}

#[inline(always)]
fn backward_block(
    x: &[f32],
    grad: &[f32],
    dx: &mut [f32],
    partial: &mut [(f64, f64)],
    group: Group,
) {
    let Group {
        gamma,
        beta,
        len,
        epsilon,
        silu_after,
    } = group;
    let (mean, rstd) = block_stats(x, epsilon);
    // dx holds dz first; then the block's Σ dx̂ and Σ dx̂ x̂ give the gradient.
    let (mut sum_dxhat, mut sum_dxhat_xhat) = (0.0f64, 0.0f64);
    for ((((x, grad), dz), &g), (&b, partial)) in x
        .chunks_exact(len)
        .zip(grad.chunks_exact(len))
        .zip(dx.chunks_exact_mut(len))
        .zip(gamma)
        .zip(beta.iter().zip(partial.iter_mut()))
    {
        if silu_after {
            let scale = rstd * g;
            zip_loop(x, grad, dz, |v, d| silu_backward((v - mean) * scale + b, d));
        } else {
            dz.copy_from_slice(grad);
        }
        let sum_dz = lane_sum(dz, f64::from);
        let sum_dz_xhat = lane_sum_pairs(dz, x, |d, v| f64::from(d * ((v - mean) * rstd)));
        *partial = (sum_dz_xhat, sum_dz);
        sum_dxhat += f64::from(g) * sum_dz;
        sum_dxhat_xhat += f64::from(g) * sum_dz_xhat;
    }
    let count = x.len() as f64;
    let (m1, m2) = ((sum_dxhat / count) as f32, (sum_dxhat_xhat / count) as f32);
    for ((x, dz), &g) in x.chunks_exact(len).zip(dx.chunks_exact_mut(len)).zip(gamma) {
        in_place_zip_loop(dz, x, |d, v| rstd * (d * g - m1 - (v - mean) * rstd * m2));
    }
}

/// Σ f(aᵢ, bᵢ) in f64, as [`lane_sum`].
#[inline(always)]
fn lane_sum_pairs(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&u, &v)| f(u, v))
        .sum();
    for (ca, cb) in ca.zip(cb) {
        for ((acc, &u), &v) in acc.iter_mut().zip(ca).zip(cb) {
            *acc += f(u, v);
        }
    }
    acc.iter().sum::<f64>() + tail
}

#[inline(always)]
fn in_place_zip_loop(x: &mut [f32], y: &[f32], f: impl Fn(f32, f32) -> f32) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a = f(*a, b);
    }
}

/// How far an f32 SiLU vector-Jacobian product at (x, g) may be from the exact value: 8 ε
/// of the condition of the sum g σ + g x σ (1 − σ), plus σ's own error (4 ulp, times the
/// product's sensitivity to σ, |g (1 + x (1 − 2σ))|), plus σ's flush to 0 below e^(−87)
/// (|g| 1.7e-38 (1 + |x|)).
#[cfg(test)]
pub(crate) fn silu_backward_error_bound(x: f64, g: f64) -> f64 {
    let s = 1.0 / (1.0 + (-x).exp());
    let eps = f64::from(f32::EPSILON);
    let condition = (g * s).abs() + (g * x * s * (1.0 - s)).abs();
    let sensitivity = (g * (1.0 + x * (1.0 - 2.0 * s))).abs();
    8.0 * eps * condition + 4.0 * eps * s * sensitivity + g.abs() * 1.7e-38 * (1.0 + x.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite f32 of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_neg_is_within_two_ulp_of_the_f64_exponential() {
        let mut worst = 0;
        let mut a = 0.0f32;
        while a <= 87.0 {
            let exact = (-(a as f64)).exp() as f32;
            worst = worst.max(ulps(exp_neg(a), exact));
            a += 1.0e-3;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn exp_neg_limits() {
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(87.5), 0.0);
        assert_eq!(exp_neg(f32::INFINITY), 0.0);
        assert!(exp_neg(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_and_silu_match_f64_and_propagate_nan() {
        for i in -20_000..=20_000 {
            let x = i as f32 * 5.0e-3;
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            // Relative: 4 ulp; absolute: exp_neg's flush to 0 below e^(−87) < 1.7e-38.
            assert!(
                ulps(sigmoid(x), s as f32) <= 4 || (sigmoid(x) as f64 - s).abs() < 1.7e-38,
                "σ({x})"
            );
            let silu_exact = (x as f64 * s) as f32;
            assert!(
                (silu(x) - silu_exact).abs() <= 4.0 * f32::EPSILON * silu_exact.abs() + 1.7e-36,
                "silu({x})"
            );
            let (g, x64) = (0.5, x as f64);
            let exact = g * s * (1.0 + x64 * (1.0 - s));
            let back = silu_backward(x, g as f32) as f64;
            assert!(
                (back - exact).abs() <= silu_backward_error_bound(x64, g),
                "silu'({x})"
            );
        }
        assert!(silu(f32::NAN).is_nan());
        assert!(silu_backward(f32::NAN, 1.0).is_nan());
        assert!(silu_backward(1.0, f32::NAN).is_nan());
        assert_eq!(silu(f32::INFINITY), f32::INFINITY);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid(-100.0), 0.0);
        assert_eq!(sigmoid(100.0), 1.0);
    }

    /// The baseline, AVX2 and AVX-512 copies of each kernel give the same bits (those the
    /// CPU has; the others are skipped).
    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let n = 3 * 784 + 5;
        let x: Vec<f32> = (0..n)
            .map(|i| (i as f32 * 0.37).sin() * 9.0 + 0.5)
            .collect();
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let (gamma, beta) = ([0.7f32, 1.3, 0.9], [0.1f32, -0.2, 0.3]);
        let run = |isa: Isa| {
            let mut a = vec![0.0; n];
            isa.run(MapLoop {
                x: &x,
                out: &mut a,
                f: silu,
            })?;
            let mut b = vec![0.0; n];
            isa.run(ZipLoop {
                x: &x,
                y: &g,
                out: &mut b,
                f: silu_backward,
            })?;
            let len = 784;
            let group = Group {
                gamma: &gamma,
                beta: &beta,
                len,
                epsilon: 1e-5,
                silu_after: true,
            };
            let mut c = vec![0.0; 3 * len];
            isa.run(GroupNormBlock {
                x: &x[..3 * len],
                out: &mut c,
                group,
            })?;
            let (mut d, mut partial) = (vec![0.0; 3 * len], vec![(0.0, 0.0); 3]);
            isa.run(BackwardBlock {
                x: &x[..3 * len],
                grad: &g[..3 * len],
                dx: &mut d,
                partial: &mut partial,
                group,
            })?;
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            Some((bits(&a), bits(&b), bits(&c), bits(&d), partial))
        };
        let baseline = run(Isa::Baseline).unwrap();
        for isa in [Isa::Avx2, Isa::Avx512] {
            if let Some(other) = run(isa) {
                assert!(other == baseline, "{isa:?} differs from the baseline");
            }
        }
    }

    #[test]
    fn map_and_zip_map_agree_with_the_scalar_function_at_every_length() {
        for n in [0, 1, 7, 16, 17, 1000, (1 << 14) + 3, 3 << 14] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 12.0).collect();
            let mut out = vec![f32::NAN; n];
            map(&x, &mut out, silu);
            for (o, &v) in out.iter().zip(&x) {
                assert_eq!(o.to_bits(), silu(v).to_bits());
            }
            let mut in_place = x.clone();
            map_in_place(&mut in_place, silu);
            assert_eq!(in_place, out);
            let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            zip_map(&x, &g, &mut out, silu_backward);
            for ((o, &v), &w) in out.iter().zip(&x).zip(&g) {
                assert_eq!(o.to_bits(), silu_backward(v, w).to_bits());
            }
        }
    }
}
