//! Property tests: every formula against an independent f64 computation, for random
//! schedules, timesteps and inputs, on every device.

use burn::tensor::Tensor;
use burn_diffusion::{
    ForwardProcess, NoiseSchedule, Posterior,
    gaussian::{discretized_gaussian_log_likelihood, normal_kl},
    prediction::Prediction,
    process::{VeProcess, VpProcess},
    schedule::{BetaSchedule, ScheduleConfig, Spacing},
};
use proptest::prelude::*;

use crate::common::{assert_close, on_each_device, tensor, timesteps, values};
use crate::oracle::{Chain, kl_by_integration};

/// A random valid schedule configuration (every beta schedule, with and without the
/// zero-terminal-SNR rescale).
fn schedule_config() -> impl Strategy<Value = ScheduleConfig> {
    let beta = prop_oneof![
        (1e-5..0.01f64, 0.0..0.2f64).prop_map(|(s, w)| BetaSchedule::Linear {
            beta_start: s,
            beta_end: s + w
        }),
        (1e-5..0.01f64, 0.0..0.2f64).prop_map(|(s, w)| BetaSchedule::ScaledLinear {
            beta_start: s,
            beta_end: s + w
        }),
        (0.0..0.05f64, 0.5..0.999f64).prop_map(|(s, m)| BetaSchedule::Cosine { s, max_beta: m }),
        (1e-5..0.01f64, 0.0..0.2f64).prop_map(|(s, w)| BetaSchedule::Sigmoid {
            beta_start: s,
            beta_end: s + w
        }),
    ];
    (2usize..120, beta, proptest::bool::weighted(0.2)).prop_map(|(t, b, zsnr)| {
        ScheduleConfig::new()
            .with_num_timesteps(t)
            .with_beta_schedule(b)
            .with_rescale_zero_terminal_snr(zsnr)
    })
}

/// Strictly increasing noise levels for a variance-exploding process.
fn sigmas() -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(0.01..1.0f64, 2..40).prop_map(|steps| {
        let mut s = 0.0;
        steps
            .iter()
            .map(|d| {
                s += d;
                s
            })
            .collect()
    })
}

/// Cases per property: 256 by default (CI), or `BURN_DIFFUSION_PROPTEST_CASES` (e.g.
/// 10000 for the scheduled deep run: `.ci/proptest-deep`). Printed by every property.
fn cases() -> u32 {
    let cases = std::env::var("BURN_DIFFUSION_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    eprintln!("property test: {cases} cases");
    cases
}

/// Checks the tensor posterior of `process` against Bayes' rule on `chain`.
fn check_posterior<P: Posterior>(process: &P, chain: &Chain, ts: &[usize], x0: &[f64], xt: &[f64]) {
    let n = ts.len();
    let mut want_mean = Vec::new();
    let mut want_var = Vec::new();
    for i in 0..n {
        for j in 0..2 {
            let (m, v) = chain.bayes_posterior(ts[i], x0[2 * i + j], xt[2 * i + j]);
            want_mean.push(m);
            if j == 0 {
                want_var.push(v);
            }
        }
    }
    on_each_device(|device| {
        let post = process
            .q_posterior(
                tensor(x0, [n, 2], device),
                tensor(xt, [n, 2], device),
                &timesteps(ts, device),
            )
            .unwrap();
        // f32 inputs and coefficients: a few ulps of the largest term.
        assert_close("mu_tilde", &values(post.mean), &want_mean, 1e-5, 1e-5);
        assert_close("beta_tilde", &values(post.variance), &want_var, 1e-5, 1e-12);
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// μ̃_t and β̃_t (eq. 7) equal the posterior by Bayes' rule from q(x_t | x_{t−1}) and
    /// q(x_{t−1} | x_0), in the f64 tables and through tensors.
    #[test]
    fn vp_posterior_is_bayes_rule(
        config in schedule_config(),
        picks in proptest::collection::vec((0.0..1.0f64, -3.0..3.0f64, -3.0..3.0f64, -3.0..3.0f64, -3.0..3.0f64), 1..5),
    ) {
        let schedule = config.init().unwrap();
        let chain = Chain::vp(schedule.betas());
        let t_max = schedule.num_timesteps();
        let ts: Vec<usize> = picks.iter().map(|p| 1 + (p.0 * (t_max - 1) as f64) as usize % (t_max - 1)).collect();
        for &t in &ts {
            let (m1, v) = chain.bayes_posterior(t, 1.0, 0.0);
            let (m2, _) = chain.bayes_posterior(t, 0.0, 1.0);
            assert_close("posterior_variance", &[schedule.posterior_variance()[t]], &[v], 1e-10, 0.0);
            assert_close("coef1", &[schedule.posterior_mean_coef1()[t]], &[m1], 1e-10, 1e-15);
            assert_close("coef2", &[schedule.posterior_mean_coef2()[t]], &[m2], 1e-10, 1e-15);
        }
        let x0: Vec<f64> = picks.iter().flat_map(|p| [p.1, p.2]).collect();
        let xt: Vec<f64> = picks.iter().flat_map(|p| [p.3, p.4]).collect();
        check_posterior(&VpProcess::new(schedule), &chain, &ts, &x0, &xt);
    }

    /// The same identity for the variance-exploding process.
    #[test]
    fn ve_posterior_is_bayes_rule(
        sig in sigmas(),
        picks in proptest::collection::vec((0.0..1.0f64, -3.0..3.0f64, -3.0..3.0f64, -3.0..3.0f64, -3.0..3.0f64), 1..5),
    ) {
        let chain = Chain::ve(&sig);
        let t_max = sig.len();
        let process = VeProcess::from_sigmas(sig).unwrap();
        let ts: Vec<usize> = picks.iter().map(|p| 1 + (p.0 * (t_max - 1) as f64) as usize % (t_max - 1)).collect();
        let x0: Vec<f64> = picks.iter().flat_map(|p| [p.1, p.2]).collect();
        let xt: Vec<f64> = picks.iter().flat_map(|p| [p.3, p.4]).collect();
        check_posterior(&process, &chain, &ts, &x0, &xt);
    }

    /// t single transitions q(x_s | x_{s−1}) compose to q(x_t | x_0) (eq. 2 → eq. 4):
    /// the f64 chain from the definition against the marginal tables, and the tensor
    /// transitions applied one by one against the tensor marginal.
    #[test]
    fn transitions_compose_to_the_marginal(
        config in schedule_config(),
        sig in sigmas(),
        frac in 0.0..1.0f64,
        x in proptest::collection::vec(-3.0..3.0f64, 3),
    ) {
        let schedule = config.init().unwrap();
        let chain = Chain::vp(schedule.betas());
        let vp = VpProcess::new(schedule.clone());
        let ve_chain = Chain::ve(&sig);
        let ve = VeProcess::from_sigmas(sig).unwrap();
        for t in 0..schedule.num_timesteps() {
            let (scale, var) = chain.marginal(t);
            assert_close("sqrt_alphas_cumprod", &[vp.signal_scale()[t]], &[scale], 1e-11, 1e-300);
            assert_close("1 - alphas_cumprod", &[vp.noise_std()[t].powi(2)], &[var], 1e-11, 0.0);
        }
        for t in 0..ve.num_timesteps() {
            let (scale, var) = ve_chain.marginal(t);
            assert_close("ve scale", &[ve.signal_scale()[t]], &[scale], 1e-12, 0.0);
            assert_close("ve variance", &[ve.noise_std()[t].powi(2)], &[var], 1e-11, 0.0);
        }
        check_tensor_composition(&vp, frac, &x);
        check_tensor_composition(&ve, frac, &x);
    }

    /// ε ↔ x_0 ↔ v conversions invert each other for every parameterization.
    #[test]
    fn prediction_conversions_round_trip(
        config in schedule_config(),
        frac in 0.0..1.0f64,
        x0 in proptest::collection::vec(-2.0..2.0f64, 4),
        eps in proptest::collection::vec(-3.0..3.0f64, 4),
    ) {
        let schedule = config.init().unwrap();
        // Conversions to x_0 divide by a_t; at a_t = 0 (zero terminal SNR) there is no x_0.
        let last_usable = if schedule.alphas_cumprod()[schedule.num_timesteps() - 1] == 0.0 { 2 } else { 1 };
        let t = ((frac * schedule.num_timesteps() as f64) as usize).min(schedule.num_timesteps() - last_usable);
        let (a, s) = (schedule.sqrt_alphas_cumprod()[t], schedule.sqrt_one_minus_alphas_cumprod()[t]);
        let process = VpProcess::new(schedule);
        // Rounding x_t and the coefficients to f32 (~6e-8) is amplified by 1/a_t or 1/s_t.
        let tol = 4e-7 * (1.0 + 1.0 / a + 1.0 / s) * 5.0;
        on_each_device(|device| {
            let tt = timesteps(&[t, t], device);
            let x0_t = tensor(&x0, [2, 2], device);
            let eps_t = tensor(&eps, [2, 2], device);
            let x_t = process.q_sample(x0_t.clone(), &tt, eps_t.clone()).unwrap();
            for p in [Prediction::Epsilon, Prediction::Sample, Prediction::Velocity] {
                let target = p.target(&process, x0_t.clone(), eps_t.clone(), &tt).unwrap();
                let (x0_hat, eps_hat) = p.to_x0_eps(&process, x_t.clone(), &tt, target).unwrap();
                assert_close(&format!("{p:?} x0"), &values(x0_hat), &x0, 0.0, tol);
                assert_close(&format!("{p:?} eps"), &values(eps_hat), &eps, 0.0, tol);
            }
            // v by its definition a_t ε − s_t x_0.
            let v = Prediction::Velocity.target(&process, x0_t.clone(), eps_t.clone(), &tt).unwrap();
            let want: Vec<f64> = x0.iter().zip(&eps).map(|(x, e)| a * e - s * x).collect();
            assert_close("v", &values(v), &want, 1e-6, 1e-6);
        });
    }

    /// The closed-form KL between two Gaussians equals numerical integration of
    /// p1 log(p1/p2).
    #[test]
    fn normal_kl_matches_integration(
        m1 in -3.0..3.0f64, lv1 in -4.0..2.0f64, m2 in -3.0..3.0f64, lv2 in -4.0..2.0f64,
    ) {
        let want = kl_by_integration(m1, lv1.exp(), m2, lv2.exp());
        on_each_device(|device| {
            let t = |v: f64| tensor(&[v], [1], device);
            let got = values(normal_kl(t(m1), t(lv1), t(m2), t(lv2)).unwrap());
            // f32 evaluation of terms up to ~|m1 − m2|²/σ2² ≈ 2e3: relative 1e-5.
            assert_close("normal_kl", &got, &[want], 1e-5, 2e-6);
        });
    }

    /// The 256 bin probabilities of the discretized Gaussian decoder sum to 1.
    #[test]
    fn discretized_bins_sum_to_one(mean in -1.5..1.5f64, log_var in -14.0..3.0f64) {
        let grid: Vec<f64> = (0..256).map(|k| -1.0 + 2.0 * k as f64 / 255.0).collect();
        on_each_device(|device| {
            let x = tensor(&grid, [256], device);
            let m = Tensor::<1>::full([256], mean, device);
            let lv = Tensor::<1>::full([256], log_var, device);
            let logp = values(discretized_gaussian_log_likelihood(x, m, lv).unwrap());
            assert!(logp.iter().all(|l| *l <= 1e-6), "log-probability above 0: {logp:?}");
            let total: f64 = logp.iter().map(|l| l.exp()).sum();
            // Evaluation error: the erfc approximation's 1.2e-7 relative plus f32 rounding
            // per bin, within 2e-6 for the sum. Input rounding: each bin computes its edges
            // z = (x ± 1/255 − mean)/σ in f32 on its own, so neighbouring bins disagree on a
            // shared edge by up to ~4 ulps of (|x| + |mean| + 1/255), divided by σ; the sum
            // then misses Σ_edges φ(z_e)·δz_e, computed here in f64.
            let sigma = (0.5 * log_var).exp();
            let edge_error: f64 = grid[..255]
                .iter()
                .map(|x| {
                    let z = (x + 1.0 / 255.0 - mean) / sigma;
                    let dz = 4.0 * 6e-8 * (x.abs() + mean.abs() + 1.0 / 255.0) / sigma;
                    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt() * dz
                })
                .sum();
            let tol = 2e-6 + edge_error;
            assert!((total - 1.0).abs() < tol, "sum of bin probabilities {total} (tol {tol})");
        });
    }

    /// Every valid configuration gives finite tables; a linear schedule is valid exactly
    /// when 0 < beta_start ≤ beta_end ≤ 1 (β = 1 only for a last step).
    #[test]
    fn configurations_give_finite_tables_or_errors(
        t in 0usize..300,
        start in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(0.0), Just(1.0), -0.5..1.5f64],
        end in prop_oneof![Just(f64::NAN), Just(f64::NEG_INFINITY), Just(1.0), -0.5..1.5f64],
        zsnr in any::<bool>(),
        kind in 0usize..4,
        spacing_steps in 0usize..400,
        spacing_kind in 0usize..5,
    ) {
        let beta = match kind {
            0 => BetaSchedule::Linear { beta_start: start, beta_end: end },
            1 => BetaSchedule::ScaledLinear { beta_start: start, beta_end: end },
            2 => BetaSchedule::Sigmoid { beta_start: start, beta_end: end },
            _ => BetaSchedule::Cosine { s: start, max_beta: end },
        };
        let config = ScheduleConfig::new()
            .with_num_timesteps(t)
            .with_beta_schedule(beta)
            .with_rescale_zero_terminal_snr(zsnr);
        let result = config.init();
        if kind == 0 && !zsnr {
            let valid = t > 0 && start > 0.0 && start <= end && end <= 1.0 && !(start == 1.0 && t > 1);
            prop_assert_eq!(result.is_ok(), valid, "{:?} -> {:?}", config, result);
        }
        if let Ok(schedule) = result {
            check_finite(&schedule);
            let spacing = match spacing_kind {
                0 => Spacing::Leading { steps: spacing_steps, offset: spacing_steps % 3 },
                1 => Spacing::Trailing { steps: spacing_steps },
                2 => Spacing::Linspace { steps: spacing_steps },
                3 => Spacing::Ddim(spacing_steps),
                _ => Spacing::Sections(vec![spacing_steps / 2, spacing_steps - spacing_steps / 2]),
            };
            if let Ok(respaced) = schedule.respace(&spacing) {
                prop_assert!(spacing_steps >= 1 && spacing_steps <= t);
                check_finite(&respaced);
                prop_assert!(respaced.original_timesteps().windows(2).all(|w| w[0] < w[1]));
            } else {
                let must_work = matches!(spacing_kind, 1 | 2) && (1..=t).contains(&spacing_steps);
                prop_assert!(!must_work, "{spacing} of {t} steps rejected");
            }
        }
    }
}

fn check_finite<S: NoiseSchedule>(s: &S) {
    let tables: [(&str, &[f64]); 11] = [
        ("betas", s.betas()),
        ("alphas", s.alphas()),
        ("alphas_cumprod", s.alphas_cumprod()),
        ("alphas_cumprod_prev", s.alphas_cumprod_prev()),
        ("sqrt_alphas_cumprod", s.sqrt_alphas_cumprod()),
        (
            "sqrt_one_minus_alphas_cumprod",
            s.sqrt_one_minus_alphas_cumprod(),
        ),
        ("posterior_variance", s.posterior_variance()),
        (
            "posterior_log_variance_clipped",
            s.posterior_log_variance_clipped(),
        ),
        ("posterior_mean_coef1", s.posterior_mean_coef1()),
        ("posterior_mean_coef2", s.posterior_mean_coef2()),
        ("snr", s.snr()),
    ];
    for (name, table) in tables {
        assert_eq!(table.len(), s.num_timesteps(), "{name} length");
        assert!(
            table.iter().all(|v| v.is_finite()),
            "{name} not finite: {table:?}"
        );
    }
}

/// Applies the tensor transitions 0..=t one at a time and compares with the marginal.
fn check_tensor_composition<P: ForwardProcess>(process: &P, frac: f64, x: &[f64]) {
    let t = ((frac * process.num_timesteps() as f64) as usize).min(process.num_timesteps() - 1);
    on_each_device(|device| {
        let x0 = tensor(x, [1, 3], device);
        let mut mean = x0.clone();
        let mut var = 0.0;
        for s in 0..=t {
            let ts = timesteps(&[s], device);
            let step = process.q_step(mean, &ts).unwrap();
            let c = process.transition_scale()[s];
            var = c * c * var + values(step.variance)[0];
            mean = step.mean;
        }
        let marginal = process.q_marginal(x0, &timesteps(&[t], device)).unwrap();
        // t ≤ 120 f32 multiplications of the mean: relative error up to ~1e-5.
        assert_close(
            "composed mean",
            &values(mean),
            &values(marginal.mean),
            2e-5,
            1e-6,
        );
        assert_close(
            "composed variance",
            &[var],
            &values(marginal.variance),
            2e-5,
            1e-9,
        );
    });
}
