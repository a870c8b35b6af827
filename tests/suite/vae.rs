//! The VAE primitives against closed forms: KL against Monte Carlo, reparameterized
//! moments, gradients through the sample, and a linear-Gaussian latent model
//! (probabilistic PCA) where log p(x) and the true posterior are known exactly.
//!
//! Tolerances are derived, never tuned: Monte-Carlo checks allow 5 standard errors
//! computed from the sample itself; exact identities allow the `f32` rounding of the
//! tensor arithmetic, `F32_OPS · 2⁻²⁴ · S`, where S is the sum of the magnitudes of the
//! terms that are added up (each term passes through at most `F32_OPS` roundings, each
//! with relative error ≤ 2⁻²⁴; inputs are rounded to `f32` *before* the `f64` reference is
//! computed, so input rounding does not count).

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use burn_diffusion::{
    noise::randn,
    vae::{DiagonalGaussian, Likelihood, VaeConfig, elbo, importance_weighted_log_likelihood},
};
use proptest::prelude::*;

use crate::common::{on_each_device, tensor, values};

/// Unit roundoff of f32.
const U32: f64 = 1.0 / (1u64 << 24) as f64;
/// Upper bound on the sequential f32 roundings a term of the ELBO goes through (upload,
/// reparameterization 3, matmul 2, residual 2, square, ×exp(−log σ²) 2, + log σ², ×−½,
/// −½·log 2π, sum over ≤ 3 elements 2, corner mean 2, − KL with its own ≈ 8): about 26.
const F32_OPS: f64 = 32.0;

/// Rounds to the nearest f32 (what a tensor upload does).
fn f32r(v: f64) -> f64 {
    v as f32 as f64
}

/// Sample mean and standard error of the mean.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// Closed-form KL(q ‖ p) of two diagonal Gaussians equals the Monte-Carlo mean of
/// log q(z) − log p(z) over 20 000 reparameterized draws z ~ q, within 5 standard errors.
#[test]
fn closed_form_kl_equals_monte_carlo() {
    let n = 20_000;
    let (qm, qlv) = ([0.5, -1.0, 2.0, 0.0], [0.3, -1.2, 0.0, 1.0]);
    let (pm, plv) = ([0.0, 0.5, 1.0, -0.5], [0.0, 0.4, -0.5, 1.5]);
    let rows = |v: &[f64; 4]| -> Vec<f64> { (0..n).flat_map(|_| v.iter().copied()).collect() };
    on_each_device(|device| {
        let t = |v: &[f64; 4]| tensor(&rows(v), [n, 4], device);
        let q = DiagonalGaussian::new(t(&qm), t(&qlv)).unwrap();
        let p = DiagonalGaussian::new(t(&pm), t(&plv)).unwrap();
        let z = q.sample_seeded(21);
        let log_ratio = values(q.log_prob(z.clone()).unwrap() - p.log_prob(z).unwrap());
        let (mc, se) = mean_se(&log_ratio);
        let closed = values(q.kl(&p).unwrap());
        let kl = closed[0];
        assert!(closed.iter().all(|k| *k == kl));
        let want: f64 = (0..4)
            .map(|i| {
                let (v1, v2) = (qlv[i].exp(), plv[i].exp());
                0.5 * (plv[i] - qlv[i] + v1 / v2 + (qm[i] - pm[i]).powi(2) / v2 - 1.0)
            })
            .sum();
        println!("KL closed form {kl:.6} (f64 {want:.6}), Monte Carlo {mc:.6} ± {se:.6} (n = {n})");
        assert!(
            (kl - want).abs() < F32_OPS * U32 * want.abs() * 4.0,
            "{kl} vs {want}"
        );
        assert!(
            (mc - kl).abs() < 5.0 * se,
            "MC {mc} ± {se} vs closed form {kl}"
        );
        // Against N(0, I) through the dedicated function.
        let standard = DiagonalGaussian::standard([n, 4], device);
        let ks = values(q.kl_standard())[0];
        let kq = values(q.kl(&standard).unwrap())[0];
        assert!((ks - kq).abs() <= F32_OPS * U32 * ks);
    });
}

/// z = μ + σ ε has mean μ and variance σ² per element: 40 000 draws, mean within
/// 5·σ/√n and variance within 5·σ²·√(2/n) (the standard errors of a Gaussian sample).
#[test]
fn reparameterized_samples_have_the_stated_moments() {
    let n = 40_000;
    let (mean, log_var) = ([1.5, -0.5, 0.0], [-2.0, 0.0, 1.5]);
    on_each_device(|device| {
        let m = tensor(&mean, [1, 3], device).repeat_dim(0, n);
        let lv = tensor(&log_var, [1, 3], device).repeat_dim(0, n);
        let q = DiagonalGaussian::new(m, lv).unwrap();
        let z = values(q.sample_seeded(5));
        for i in 0..3 {
            let col: Vec<f64> = z.iter().skip(i).step_by(3).copied().collect();
            let (m, _) = mean_se(&col);
            let v = col.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
            let var = log_var[i].exp();
            println!(
                "dim {i}: mean {m:.4} (want {}), variance {v:.4} (want {var:.4})",
                mean[i]
            );
            assert!(
                (m - mean[i]).abs() < 5.0 * (var / n as f64).sqrt(),
                "mean {m}"
            );
            assert!(
                (v - var).abs() < 5.0 * var * (2.0 / n as f64).sqrt(),
                "var {v}"
            );
        }
    });
}

/// The gradients of f(z) = Σ z² with z = μ + exp(½ log σ²) ε reach μ and log σ² through
/// the sample: ∂f/∂μ = 2z and ∂f/∂log σ² = z·σ·ε; and through the reference VAE, the
/// reconstruction term alone (no KL) trains the encoder.
#[test]
fn gradients_reach_the_encoder_through_the_sample() {
    on_each_device(|device| {
        let ad = device.clone().autodiff();
        let (mu, lv, eps) = ([0.5, -1.0, 2.0], [0.0, -1.0, 0.7], [1.0, -0.3, 0.8]);
        let m = tensor(&mu, [1, 3], &ad).require_grad();
        let l = tensor(&lv, [1, 3], &ad).require_grad();
        let q = DiagonalGaussian::new(m.clone(), l.clone()).unwrap();
        let z = q.sample_with(tensor(&eps, [1, 3], &ad)).unwrap();
        let grads = z.square().sum().backward();
        let gm = values(m.grad(&grads).unwrap());
        let gl = values(l.grad(&grads).unwrap());
        for i in 0..3 {
            let s = (lv[i] / 2.0).exp();
            let zi = mu[i] + s * eps[i];
            let tol = F32_OPS * U32 * (1.0 + zi.abs()) * (1.0 + s * eps[i].abs());
            assert!(
                (gm[i] - 2.0 * zi).abs() < tol,
                "dμ {} vs {}",
                gm[i],
                2.0 * zi
            );
            assert!((gl[i] - zi * s * eps[i]).abs() < tol, "dlogσ² {}", gl[i]);
        }

        // The reference VAE: the reconstruction term reaches the encoder only through z.
        let vae = VaeConfig::digits().init(&ad).unwrap().train();
        let x = randn::<4>([4, 1, 8, 8], 1, &ad).clamp(-1.0, 1.0) * 0.5 + 0.5;
        let bound = vae.elbo(x, randn([4, 8], 2, &ad)).unwrap();
        let grads = bound.reconstruction.mean().backward();
        let grads = GradientsParams::from_grads(grads, &vae);
        let mut with_grad = 0;
        vae.visit(&mut CountGrads {
            grads: &grads,
            count: &mut with_grad,
        });
        // Every parameter tensor (encoder and decoder) gets a gradient.
        assert_eq!(
            with_grad,
            vae.num_params_tensors(),
            "parameters with a gradient"
        );
    });
}

/// Counts the parameter tensors that have a gradient.
struct CountGrads<'a> {
    grads: &'a GradientsParams,
    count: &'a mut usize,
}

impl burn::module::ModuleVisitor for CountGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let nonzero = self
            .grads
            .get::<D>(param.id)
            .is_some_and(|g| g.abs().sum().into_scalar::<f32>() > 0.0);
        *self.count += usize::from(nonzero);
    }
}

/// Number of float parameter tensors of a module.
trait NumParamTensors {
    fn num_params_tensors(&self) -> usize;
}

impl<M: Module> NumParamTensors for M {
    fn num_params_tensors(&self) -> usize {
        struct Count(usize);
        impl burn::module::ModuleVisitor for Count {
            fn visit_float<const D: usize>(&mut self, _: &burn::module::Param<Tensor<D>>) {
                self.0 += 1;
            }
        }
        let mut c = Count(0);
        self.visit(&mut c);
        c.0
    }
}

/// Probabilistic PCA (Tipping & Bishop 1999): z ~ N(0, I₂), x | z ~ N(W z + μ, σ² I₃).
/// W has orthogonal columns, so M = WᵀW + σ² I is diagonal and so is the true posterior
/// p(z | x) = N(M⁻¹ Wᵀ (x − μ), σ² M⁻¹). Every constant is exact in f32.
struct Ppca;

impl Ppca {
    /// W (3 × 2), columns (2, 0, 1) and (0, 1, 0).
    const W: [[f64; 2]; 3] = [[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]];
    const MU: [f64; 3] = [0.5, -1.0, 0.25];
    const SIGMA2: f64 = 0.25;

    /// log σ² as the decoder is given it (rounded to f32 when uploaded).
    fn log_sigma2() -> f64 {
        f32r(Self::SIGMA2.ln())
    }

    /// The decoder's σ² after the f32 rounding of log σ²: the reference uses this value.
    fn sigma2() -> f64 {
        Self::log_sigma2().exp()
    }

    /// log p(x) = log N(x; μ, W Wᵀ + σ² I) by a Cholesky factorization in f64.
    fn log_evidence(x: &[f64; 3]) -> f64 {
        let mut c = [[0.0; 3]; 3];
        for (i, row) in c.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (0..2).map(|k| Self::W[i][k] * Self::W[j][k]).sum::<f64>();
            }
            row[i] += Self::sigma2();
        }
        let mut l = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..=i {
                let s = c[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
                l[i][j] = if i == j { s.sqrt() } else { s / l[j][j] };
            }
        }
        // Solve L y = x − μ; the quadratic form is ‖y‖².
        let mut y = [0.0; 3];
        for i in 0..3 {
            y[i] = (x[i] - Self::MU[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
        }
        let log_det: f64 = (0..3).map(|i| 2.0 * l[i][i].ln()).sum();
        let quad: f64 = y.iter().map(|v| v * v).sum();
        -0.5 * (3.0 * (2.0 * core::f64::consts::PI).ln() + log_det + quad)
    }

    /// The true posterior (means, log-variances) of z given x, in f64.
    fn posterior(x: &[f64; 3]) -> ([f64; 2], [f64; 2]) {
        let mut mean = [0.0; 2];
        let mut log_var = [0.0; 2];
        for j in 0..2 {
            let m = (0..3).map(|i| Self::W[i][j].powi(2)).sum::<f64>() + Self::sigma2();
            let wx: f64 = (0..3).map(|i| Self::W[i][j] * (x[i] - Self::MU[i])).sum();
            mean[j] = wx / m;
            log_var[j] = (Self::sigma2() / m).ln();
        }
        (mean, log_var)
    }

    fn likelihood() -> Likelihood {
        Likelihood::Gaussian {
            log_variance: Self::log_sigma2(),
        }
    }

    /// The decoder mean W z + μ for latents `[N, 2]`.
    fn decode(z: Tensor<2>) -> Tensor<2> {
        let device = z.device();
        let wt: Vec<f64> = (0..2)
            .flat_map(|k| (0..3).map(move |i| Self::W[i][k]))
            .collect();
        z.matmul(tensor(&wt, [2, 3], &device)) + tensor(&Self::MU, [1, 3], &device)
    }

    /// The exact ELBO of each row of `x` under `q` through the crate's `elbo`:
    /// log p(x | z) is quadratic in z, so its expectation under q equals the mean over
    /// the 2² corner draws z = μ + σ ⊙ ξ, ξ ∈ {±1}² (they match the first three moments of
    /// ε ~ N(0, I)). Returns (ELBO, the magnitude sum S of its terms) per row.
    fn exact_elbo(x: &Tensor<2>, q: &DiagonalGaussian<2>) -> (Vec<f64>, Vec<f64>) {
        let (n, device) = (x.dims()[0], x.device());
        let corners = [[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]];
        let mut recon = vec![0.0; n];
        let mut kl = vec![0.0; n];
        for xi in corners {
            let noise = tensor(&xi, [1, 2], &device).repeat_dim(0, n);
            let z = q.sample_with(noise).unwrap();
            let b = elbo(x.clone(), q, Self::decode(z), &Self::likelihood()).unwrap();
            for (r, v) in recon.iter_mut().zip(values(b.reconstruction)) {
                *r += v / 4.0;
            }
            kl = values(b.kl);
        }
        let elbo = recon.iter().zip(&kl).map(|(r, k)| r - k).collect();
        // S: |reconstruction| bounds its terms' magnitudes (all of one sign, ≤ 0, but
        // for −½ log σ² > 0: add 3·|½ log σ²| twice), plus the KL's terms μ², σ², |log σ²|, 1.
        let mean = values(q.mean().clone());
        let lv = values(q.log_variance().clone());
        let scale = recon
            .iter()
            .zip(&kl)
            .enumerate()
            .map(|(row, (r, k))| {
                let kl_terms: f64 = (0..2)
                    .map(|j| {
                        let (m, l) = (mean[2 * row + j], lv[2 * row + j]);
                        0.5 * (m * m + l.exp() + l.abs() + 1.0)
                    })
                    .sum();
                r.abs() + 3.0 * Self::log_sigma2().abs() + k.abs() + kl_terms
            })
            .collect();
        (elbo, scale)
    }
}

/// Uploads rows of 3-vectors rounded to f32, returning the rounded values too.
fn rows3(xs: &[[f64; 3]], device: &Device) -> (Tensor<2>, Vec<[f64; 3]>) {
    let rounded: Vec<[f64; 3]> = xs.iter().map(|x| x.map(f32r)).collect();
    let flat: Vec<f64> = rounded.iter().flatten().copied().collect();
    (tensor(&flat, [xs.len(), 3], device), rounded)
}

/// A diagonal Gaussian with rows of (mean, log-variance) pairs.
fn gaussian_rows(params: &[([f64; 2], [f64; 2])], device: &Device) -> DiagonalGaussian<2> {
    let n = params.len();
    let m: Vec<f64> = params.iter().flat_map(|p| p.0).collect();
    let l: Vec<f64> = params.iter().flat_map(|p| p.1).collect();
    DiagonalGaussian::new(tensor(&m, [n, 2], device), tensor(&l, [n, 2], device)).unwrap()
}

/// With the true posterior, the ELBO is log p(x) exactly (the gap KL(q ‖ p(z|x)) is 0).
#[test]
fn ppca_elbo_with_the_true_posterior_is_the_log_evidence() {
    let xs = [
        [0.0, 0.0, 0.0],
        [1.5, -2.0, 0.75],
        [-3.0, 0.5, 2.0],
        [4.0, 1.0, -1.0],
        [0.5, -1.0, 0.25],
    ];
    on_each_device(|device| {
        let (x, xs) = rows3(&xs, device);
        let posteriors: Vec<_> = xs.iter().map(Ppca::posterior).collect();
        let q = gaussian_rows(&posteriors, device);
        let (got, scale) = Ppca::exact_elbo(&x, &q);
        for (i, xi) in xs.iter().enumerate() {
            let want = Ppca::log_evidence(xi);
            let tol = F32_OPS * U32 * scale[i];
            println!(
                "x {xi:?}: ELBO(true posterior) {:.7}, log p(x) {want:.7}, |diff| {:.2e} ≤ {tol:.2e}",
                got[i],
                (got[i] - want).abs()
            );
            assert!((got[i] - want).abs() <= tol, "{} vs {want}", got[i]);
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// For any diagonal Gaussian q, log p(x) − ELBO(q) = KL(q ‖ p(z | x)) exactly (the
    /// article's first identity), with the KL from the crate's closed form; so the ELBO
    /// is lower than log p(x) by exactly that KL.
    #[test]
    fn ppca_elbo_gap_is_the_kl_to_the_true_posterior(
        cases in proptest::collection::vec(
            (
                prop::array::uniform3(-4.0..4.0f64),
                prop::array::uniform2(-2.0..2.0f64),
                prop::array::uniform2(-3.0..2.0f64),
            ),
            1..6,
        ),
    ) {
        on_each_device(|device| {
            let xs: Vec<[f64; 3]> = cases.iter().map(|c| c.0).collect();
            let (x, xs) = rows3(&xs, device);
            let truth: Vec<_> = xs.iter().map(Ppca::posterior).collect();
            let other: Vec<_> = truth
                .iter()
                .zip(&cases)
                .map(|((m, l), (_, dm, dl))| {
                    ([m[0] + dm[0], m[1] + dm[1]], [l[0] + dl[0], l[1] + dl[1]])
                })
                .collect();
            let q = gaussian_rows(&other, device);
            let (got, scale) = Ppca::exact_elbo(&x, &q);
            let kl = values(q.kl(&gaussian_rows(&truth, device)).unwrap());
            for (i, xi) in xs.iter().enumerate() {
                let gap = Ppca::log_evidence(xi) - got[i];
                let tol = F32_OPS * U32 * (scale[i] + kl[i].abs());
                assert!(
                    (gap - kl[i]).abs() <= tol,
                    "x {xi:?}: log p − ELBO = {gap}, KL = {}, tol {tol}", kl[i]
                );
                assert!(gap >= -tol, "ELBO above log p(x): gap {gap}");
            }
        });
    }
}

/// E_q[(p(z|x)/q(z))^m] for diagonal Gaussians, a product of 1-D integrals by composite
/// Simpson on ±14 standard deviations (f64).
fn ratio_moment(p: &([f64; 2], [f64; 2]), q: &([f64; 2], [f64; 2]), m: i32) -> f64 {
    let log_n = |z: f64, mean: f64, lv: f64| {
        -0.5 * ((z - mean).powi(2) / lv.exp() + lv + (2.0 * core::f64::consts::PI).ln())
    };
    (0..2)
        .map(|j| {
            let sd = (p.1[j].exp().max(q.1[j].exp())).sqrt();
            let (a, b) = (
                p.0[j].min(q.0[j]) - 14.0 * sd,
                p.0[j].max(q.0[j]) + 14.0 * sd,
            );
            let steps = 20_000;
            let h = (b - a) / steps as f64;
            let f = |z: f64| {
                (f64::from(m) * log_n(z, p.0[j], p.1[j])
                    + f64::from(1 - m) * log_n(z, q.0[j], q.1[j]))
                .exp()
            };
            let inner: f64 = (1..steps)
                .map(|i| f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
                .sum();
            (f(a) + f(b) + inner) * h / 3.0
        })
        .product()
}

/// The importance-weighted bound L_k (Burda et al. 2016) on PPCA with a proposal q that
/// is not the posterior, over R = 10 000 independent repeats for k = 1, 10, 100, 1000:
/// E[L_1] is the ELBO (within 5 standard errors); the means rise strictly with k (the
/// expected rises, ≥ 0.0075 nats, are over 5 standard errors of their difference at this
/// R); they stay below log p(x) (within 5 standard errors); and at k = 1000 the gap to
/// log p(x) is the delta-method value χ²/(2k) − μ₃/(3k²) + 3χ⁴/(4k²) (χ² and μ₃: variance
/// and third central moment of r = p(z|x)/q(z) under q, by quadrature) within 5 standard
/// errors plus the size of the k⁻² terms, which bounds the omitted O(k⁻³) remainder.
#[test]
fn ppca_importance_weighted_bound_rises_toward_the_log_evidence() {
    let r = 10_000;
    let x = [1.5f64, -2.0, 0.75];
    let truth = Ppca::posterior(&x);
    // Wider and shifted: Var[w] is finite (q has at least 2/3 of p's variance, here 2×).
    let proposal = (
        [f32r(truth.0[0] + 0.3), f32r(truth.0[1] - 0.2)],
        [f32r(truth.1[0] + 0.7), f32r(truth.1[1] + 0.7)],
    );
    let chi2 = ratio_moment(&truth, &proposal, 2) - 1.0;
    let third = ratio_moment(&truth, &proposal, 3) - 3.0 * (chi2 + 1.0) + 2.0;
    let log_p = Ppca::log_evidence(&x);
    on_each_device(|device| {
        let (xr, _) = rows3(&vec![x; r], device);
        let q = gaussian_rows(&vec![proposal; r], device);
        let (elbo_exact, _) = Ppca::exact_elbo(&xr.clone().slice([0..1, 0..3]), &{
            gaussian_rows(&[proposal], device)
        });
        let mut results = Vec::new();
        let mut seed = 1000u64;
        for k in [1usize, 10, 100, 1000] {
            let noise: Vec<Tensor<2>> = (0..k)
                .map(|i| randn([r, 2], seed + i as u64, device))
                .collect();
            seed += k as u64;
            let lk = importance_weighted_log_likelihood(
                xr.clone(),
                &q,
                &Ppca::likelihood(),
                noise,
                Ppca::decode,
            )
            .unwrap();
            let (mean, se) = mean_se(&values(lk));
            println!(
                "k = {k:>4}: E[L_k] = {mean:.5} ± {se:.5}, gap to log p(x) = {:.5} \
                 (delta method χ²/2k = {:.5})",
                log_p - mean,
                chi2 / (2.0 * k as f64)
            );
            results.push((k, mean, se));
        }
        println!(
            "log p(x) = {log_p:.5}, ELBO = {:.5}, KL(q ‖ p(z|x)) = {:.5}, χ² = {chi2:.4}, μ₃ = {third:.4}",
            elbo_exact[0],
            log_p - elbo_exact[0]
        );
        let (_, m1, se1) = results[0];
        assert!(
            (m1 - elbo_exact[0]).abs() < 5.0 * se1,
            "E[L_1] {m1} vs ELBO {}",
            elbo_exact[0]
        );
        for w in results.windows(2) {
            let ((k0, m0, s0), (k1, m1, s1)) = (w[0], w[1]);
            let se = (s0 * s0 + s1 * s1).sqrt();
            println!(
                "L_{k0} → L_{k1}: rise {:.5} = {:.1} standard errors",
                m1 - m0,
                (m1 - m0) / se
            );
            assert!(m1 > m0, "L_{k1} {m1} not above L_{k0} {m0} (se {se})");
        }
        for &(k, m, se) in &results {
            assert!(
                m <= log_p + 5.0 * se,
                "L_{k} = {m} above log p(x) = {log_p}"
            );
        }
        // k = 1000: gap = χ²/(2k) − μ₃/(3k²) + O(k⁻³); the k⁻² term bounds the remainder.
        let (k, m, se) = results[3];
        let k = k as f64;
        let k2_terms = -third / (3.0 * k * k) + 3.0 * chi2 * chi2 / (4.0 * k * k);
        let predicted = chi2 / (2.0 * k) + k2_terms;
        let remainder = (third / (3.0 * k * k)).abs() + 3.0 * chi2 * chi2 / (4.0 * k * k);
        assert!(
            ((log_p - m) - predicted).abs() < 5.0 * se + remainder,
            "gap {} vs predicted {predicted}",
            log_p - m
        );
    });
}

/// AdamW steps on a fixed batch lower the reference VAE's −ELBO (seeded noise).
#[test]
fn vae_training_lowers_the_negative_elbo() {
    let device = Device::flex().autodiff();
    let mut vae = VaeConfig::digits()
        .with_base_channels(8)
        .init(&device)
        .unwrap()
        .train();
    let x = (randn::<4>([16, 1, 8, 8], 3, &device).clamp(-1.0, 1.0) + 1.0) * 0.5;
    let loss = |vae: &burn_diffusion::vae::Vae| {
        // The same noise every time: the objective is a fixed function of the weights.
        vae.elbo(x.clone(), randn([16, 8], 4, &device))
            .unwrap()
            .loss()
            .mean()
    };
    let mut optim = AdamWConfig::new().init();
    let first: f32 = loss(&vae).into_scalar();
    for _ in 0..20 {
        let l = loss(&vae);
        let grads = GradientsParams::from_grads(l.backward(), &vae);
        vae = optim.step(3e-3, vae, grads);
    }
    let last: f32 = loss(&vae).into_scalar();
    println!("VAE −ELBO on a fixed batch: {first} -> {last} after 20 AdamW steps");
    assert!(last < first, "{first} -> {last}");
}
