//! Reference values from diffusers 0.42.1 and improved-diffusion (commit 1bc7bbb), and
//! exact values from mpmath; see `tests/data/reference/README.md` for how each vector was
//! made.

use burn_diffusion::{
    ForwardProcess, NoiseSchedule, Posterior,
    gaussian::{
        discretized_gaussian_log_likelihood, log_standard_normal_cdf, normal_kl,
        standard_normal_cdf,
    },
    prediction::Prediction,
    process::VpProcess,
    schedule::{BetaSchedule, DiscreteSchedule, ScheduleConfig, Spacing},
};

use crate::common::{
    Reference, assert_close, on_each_device, tensor, timesteps, transcendental_slack, values,
};

fn schedule(kind: &str) -> BetaSchedule {
    match kind {
        "linear" | "linear_f64" => BetaSchedule::Linear {
            beta_start: 1e-4,
            beta_end: 0.02,
        },
        "scaled_linear" => BetaSchedule::ScaledLinear {
            beta_start: 0.00085,
            beta_end: 0.012,
        },
        "cosine" | "diffusers_cosine" => BetaSchedule::cosine(),
        "sigmoid" => BetaSchedule::Sigmoid {
            beta_start: 1e-4,
            beta_end: 0.02,
        },
        _ => unreachable!("{kind}"),
    }
}

/// Generated betas: to f64 rounding against float64 references (improved-diffusion's
/// cosine, NumPy's linspace); to float32 rounding (2 ulp) against diffusers, whose
/// schedulers build betas in float32.
#[test]
fn beta_schedules_match_diffusers_and_improved_diffusion() {
    let r = Reference::load();
    for t in [10, 1000] {
        for (kind, rel) in [
            ("linear_f64", 1e-15),
            ("cosine", 1e-13),
            ("linear", 2.4e-7),
            ("scaled_linear", 2.4e-7),
            ("sigmoid", 2.4e-7),
            ("diffusers_cosine", 1.2e-7),
        ] {
            let ours = schedule(kind).betas(t).unwrap();
            assert_close(
                &format!("{kind}.t{t}.betas"),
                &ours,
                r.get(&format!("{kind}.t{t}.betas")),
                rel,
                0.0,
            );
        }
        // improved-diffusion's "linear" scales β by 1000/T: at T = 10 that gives β up to 2,
        // which is not a variance; we reject it where improved-diffusion would assert.
        let e = DiscreteSchedule::from_betas(r.get("improved_linear.t10.betas").to_vec());
        assert!(e.is_err());
    }
}

/// Every derived table, from the same betas, against improved-diffusion's float64
/// `GaussianDiffusion`. Both sides are float64; the differences come from summing log(1−β)
/// instead of multiplying (1−β) over up to 1000 steps: relative 1e-10 bounds them.
#[test]
fn derived_tables_match_improved_diffusion() {
    let r = Reference::load();
    for kind in ["linear", "scaled_linear", "cosine", "sigmoid"] {
        for t in [10, 1000] {
            let s = DiscreteSchedule::from_betas(r.get(&format!("{kind}.t{t}.betas")).to_vec())
                .unwrap();
            let tables: [(&str, &[f64]); 6] = [
                ("alphas_cumprod", s.alphas_cumprod()),
                ("alphas_cumprod_prev", s.alphas_cumprod_prev()),
                ("posterior_variance", s.posterior_variance()),
                (
                    "posterior_log_variance_clipped",
                    s.posterior_log_variance_clipped(),
                ),
                ("posterior_mean_coef1", s.posterior_mean_coef1()),
                ("posterior_mean_coef2", s.posterior_mean_coef2()),
            ];
            for (name, ours) in tables {
                let key = format!("{kind}.t{t}.{name}");
                assert_close(&key, ours, r.get(&key), 1e-10, 1e-300);
            }
        }
    }
}

/// Lin et al.'s rescale against diffusers' `rescale_zero_terminal_snr` recomputed in
/// float64, and against diffusers' own float32 result.
#[test]
fn zero_terminal_snr_matches_diffusers() {
    let r = Reference::load();
    for t in [10, 1000] {
        let s = ScheduleConfig::new()
            .with_num_timesteps(t)
            .with_rescale_zero_terminal_snr(true)
            .init()
            .unwrap();
        assert_close(
            "zsnr f64 betas",
            s.betas(),
            r.get(&format!("linear_zsnr_f64.t{t}.betas")),
            1e-11,
            1e-15,
        );
        assert_close(
            "zsnr f64 alphas_cumprod",
            s.alphas_cumprod(),
            r.get(&format!("linear_zsnr_f64.t{t}.alphas_cumprod")),
            1e-10,
            1e-300,
        );
        // diffusers rescales float32 betas in float32, so 1 − ᾱ'_t/ᾱ'_{t−1} carries an
        // absolute error of a few float32 ulps of 1 (it differs from float64 by up to 2e-6).
        assert_close(
            "zsnr diffusers betas",
            s.betas(),
            r.get(&format!("linear_zsnr.t{t}.betas")),
            0.0,
            3e-6,
        );
        assert_close(
            "zsnr diffusers alphas_cumprod",
            s.alphas_cumprod(),
            r.get(&format!("linear_zsnr.t{t}.alphas_cumprod")),
            0.0,
            3e-6,
        );
        assert_eq!(s.alphas_cumprod()[t - 1], 0.0);
    }
}

/// diffusers' `set_timesteps` for every spacing, offset and step count, and
/// improved-diffusion's `space_timesteps` and `SpacedDiffusion` betas.
#[test]
fn respacing_matches_diffusers_and_improved_diffusion() {
    let r = Reference::load();
    // diffusers.<ddim|ddpm>.<spacing>.t<T>.k<K>.off<offset>
    let names: Vec<String> = ["diffusers.ddim.", "diffusers.ddpm."]
        .iter()
        .flat_map(|p| r.names_with_prefix(p))
        .filter(|n| n.split('.').count() == 6)
        .collect();
    assert_eq!(names.len(), 84, "diffusers spacing vectors");
    for name in names {
        let parts: Vec<&str> = name.split('.').collect();
        let num = |p: &str, prefix: &str| p.strip_prefix(prefix).unwrap().parse::<usize>().unwrap();
        let (t, k, offset) = (num(parts[3], "t"), num(parts[4], "k"), num(parts[5], "off"));
        let spacing = match parts[2] {
            "leading" => Spacing::Leading { steps: k, offset },
            "trailing" => Spacing::Trailing { steps: k },
            _ => Spacing::Linspace { steps: k },
        };
        let mut want = r.get_usize(&name);
        if want.iter().any(|&s| s >= t) {
            // diffusers returns timestep T here (an index past its own tables).
            assert!(
                spacing.timesteps(t).is_err(),
                "{name}: out-of-range steps must be an error"
            );
            continue;
        }
        want.sort_unstable();
        assert_eq!(spacing.timesteps(t).unwrap(), want, "{name}");
    }
    for (t, spec) in [
        (1000, "10,10,30"),
        (1000, "ddim50"),
        (1000, "250"),
        (1000, "ddim25"),
        (100, "7,3"),
        (10, "3"),
        (1000, "1,2,3,4"),
        (4000, "10,15,20,25"),
    ] {
        let key = format!("improved.space.t{t}.{}", spec.replace(',', "_"));
        let spacing: Spacing = spec.parse().unwrap();
        assert_eq!(spacing.timesteps(t).unwrap(), r.get_usize(&key), "{key}");
        if r.has(&format!("{key}.betas")) {
            // improved-diffusion's "linear" at T steps: β from 1e-4·1000/T to 0.02·1000/T.
            let scale = 1000.0 / t as f64;
            let full = ScheduleConfig::new()
                .with_num_timesteps(t)
                .with_beta_schedule(BetaSchedule::Linear {
                    beta_start: 1e-4 * scale,
                    beta_end: 0.02 * scale,
                })
                .init()
                .unwrap();
            let respaced = full.respace(&spacing).unwrap();
            assert_close(
                &format!("{key}.betas"),
                respaced.betas(),
                r.get(&format!("{key}.betas")),
                1e-10,
                1e-15,
            );
            assert_eq!(respaced.original_timesteps(), r.get_usize(&key).as_slice());
        }
    }
}

/// q(x_t | x_0), the posterior and ε → x_0 at fixed inputs against improved-diffusion in
/// float64, and q_sample / v against diffusers (whose ᾱ is float32).
#[test]
fn forward_and_posterior_match_improved_diffusion() {
    let r = Reference::load();
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    let ts = r.get_usize("t");
    on_each_device(|device| {
        let x0 = tensor(r.get("x0"), [4, 3], device);
        let noise = tensor(r.get("noise"), [4, 3], device);
        let t = timesteps(&ts, device);
        let x_t = process.q_sample(x0.clone(), &t, noise.clone()).unwrap();
        // Inputs and outputs in f32: a few ulps of values of order 1.
        assert_close("q_sample", &values(x_t), r.get("q_sample"), 0.0, 1e-6);
        let q = process.q_marginal(x0.clone(), &t).unwrap();
        assert_close("q_mean", &values(q.mean), r.get("q_mean"), 0.0, 1e-6);
        assert_close(
            "q_variance",
            &values(q.variance),
            r.get("q_variance"),
            2e-7,
            0.0,
        );
        assert_close(
            "q_log_variance",
            &values(q.log_variance),
            r.get("q_log_variance"),
            2e-7,
            1e-10,
        );

        let ref_x_t = tensor(r.get("q_sample"), [4, 3], device);
        let post = process
            .q_posterior(x0.clone(), ref_x_t.clone(), &t)
            .unwrap();
        assert_close(
            "posterior_mean",
            &values(post.mean),
            r.get("posterior_mean"),
            0.0,
            1e-6,
        );
        assert_close(
            "posterior_variance",
            &values(post.variance),
            r.get("posterior_variance"),
            2e-7,
            0.0,
        );
        assert_close(
            "posterior_log_variance_clipped",
            &values(post.log_variance),
            r.get("posterior_log_variance_clipped"),
            2e-7,
            0.0,
        );

        // x_0 = (x_t − s ε)/a: the f32 rounding of x_t and ε (6e-8 relative) is amplified by
        // 1/a_t (157 at t = 999).
        let x0_hat =
            burn_diffusion::prediction::x0_from_eps(&process, ref_x_t, &t, noise.clone()).unwrap();
        let tol: Vec<f64> = ts
            .iter()
            .flat_map(|&t| [5e-7 * (2.0 + 1.0 / process.signal_scale()[t]); 3])
            .collect();
        for ((g, w), tol) in values(x0_hat)
            .iter()
            .zip(r.get("pred_xstart_from_eps"))
            .zip(tol)
        {
            assert!(
                (g - w).abs() <= tol,
                "pred_xstart_from_eps: got {g}, want {w}, tol {tol}"
            );
        }

        // diffusers computes ᾱ by a float32 cumprod of float32 betas (relative drift up to
        // ~2e-6 at t = 999 against the float64 table): agreement to 2e-6.
        let diffusers = VpProcess::new(
            DiscreteSchedule::from_betas(r.get("linear.t1000.betas").to_vec()).unwrap(),
        );
        let add_noise = diffusers.q_sample(x0.clone(), &t, noise.clone()).unwrap();
        assert_close(
            "diffusers.add_noise",
            &values(add_noise),
            r.get("diffusers.add_noise"),
            0.0,
            2e-6,
        );
        let v = Prediction::Velocity
            .target(&diffusers, x0, noise, &t)
            .unwrap();
        assert_close(
            "diffusers.get_velocity",
            &values(v),
            r.get("diffusers.get_velocity"),
            0.0,
            2e-6,
        );
        let ab: Vec<f64> = ts
            .iter()
            .map(|&t| diffusers.signal_scale()[t].powi(2))
            .collect();
        assert_close(
            "alphas_cumprod",
            &ab,
            r.get("diffusers.alphas_cumprod_at_t"),
            3e-6,
            0.0,
        );
    });
}

/// The fixed points: diffusers' default DDPMScheduler variance and DDIM timesteps.
#[test]
fn diffusers_fixed_points() {
    let r = Reference::load();
    let ours = ScheduleConfig::new().init().unwrap();
    assert!((ours.posterior_variance()[487] - 0.0097916).abs() < 5e-8);
    assert!((ours.posterior_variance()[999] - 0.02).abs() < 5e-6);
    let with_f32_betas =
        DiscreteSchedule::from_betas(r.get("linear.t1000.betas").to_vec()).unwrap();
    for t in [487, 999] {
        let want = r.get(&format!("diffusers.ddpm.default.variance_t{t}"))[0];
        // diffusers forms ᾱ by a float32 cumprod (relative drift up to ~3e-6 by t = 487)
        // and evaluates the variance in float32.
        assert_close(
            "fixed_small variance",
            &[with_f32_betas.posterior_variance()[t]],
            &[want],
            5e-6,
            0.0,
        );
    }
    let mut ddim = Spacing::Leading {
        steps: 5,
        offset: 1,
    }
    .timesteps(1000)
    .unwrap();
    ddim.reverse();
    assert_eq!(ddim, vec![801, 601, 401, 201, 1]);
    assert_eq!(ddim, r.get_usize("diffusers.ddim.t1000.k5.off1"));
}

/// log Φ, Φ, the discretized decoder and the KL against exact (mpmath) values, in f32.
#[test]
fn gaussian_helpers_match_exact_values() {
    let r = Reference::load();
    let x = r.get("log_ndtr.x");
    on_each_device(|device| {
        let xt = tensor(x, [x.len()], device);
        // log Φ(x) for x ≤ 0: the erfc approximation's 1.2e-7 plus f32 rounding, relative.
        // Φ(−|x|) itself (and log Φ(x) ≈ −Φ(−x) for x > 0) has condition number ≈ x², so
        // f32 evaluation costs a relative 6e-8·(2 + x²) there.
        let got_log = values(log_standard_normal_cdf(xt.clone()));
        let got = values(standard_normal_cdf(xt));
        for (i, &xi) in x.iter().enumerate() {
            let conditioned = 1.2e-7 * (2.0 + xi * xi);
            let rel_log = if xi <= 0.0 { 5e-7 } else { conditioned };
            assert_close(
                &format!("log_ndtr({xi})"),
                &got_log[i..=i],
                &r.get("log_ndtr.y")[i..=i],
                rel_log,
                transcendental_slack(device),
            );
            // Φ underflows f32 below ~1.2e-38 (x < −13): there the reference is compared as 0.
            assert_close(
                &format!("ndtr({xi})"),
                &got[i..=i],
                &r.get("ndtr.y")[i..=i],
                conditioned,
                1.2e-38,
            );
        }

        let n = r.get("dgll.x").len();
        let lv: Vec<f64> = r.get("dgll.log_scale").iter().map(|l| 2.0 * l).collect();
        let got = values(
            discretized_gaussian_log_likelihood(
                tensor(r.get("dgll.x"), [n], device),
                tensor(r.get("dgll.mean"), [n], device),
                tensor(&lv, [n], device),
            )
            .unwrap(),
        );
        let exact = r.get("dgll.exact");
        let (xs, means, scales) = (r.get("dgll.x"), r.get("dgll.mean"), r.get("dgll.log_scale"));
        let mut worst = 0.0f64;
        for i in 0..n {
            // Two sources of f32 error, both bounded from first principles:
            // - evaluation: a few ulps of log p (relative 2e-6 covers the ~10 roundings);
            // - input rounding: x and mean rounded to f32 move z = (x − mean)/σ by up to
            //   6e-8·(|x| + |mean|)/σ, and log p moves by at most (2 + |z|) per unit of z.
            let sigma = scales[i].exp();
            let z = ((xs[i] - means[i]).abs() + 1.0 / 255.0) / sigma;
            let dz = 6e-8 * (xs[i].abs() + means[i].abs()) / sigma;
            let tol = 1e-6 + 2e-6 * exact[i].abs() + dz * (2.0 + z);
            assert!(got[i].is_finite(), "dgll[{i}] not finite");
            assert!(
                (got[i] - exact[i]).abs() <= tol,
                "dgll[{i}]: got {}, exact {}, tol {tol}",
                got[i],
                exact[i]
            );
            worst = worst.max((got[i] - exact[i]).abs() / exact[i].abs().max(1.0));
        }
        println!(
            "dgll: worst relative error {worst:.2e} over {n} cases, log p down to {:.1}",
            exact.iter().cloned().fold(0.0, f64::min)
        );

        let t = |name: &str| tensor(r.get(name), [10], device);
        let kl = normal_kl(
            t("normal_kl.mean1"),
            t("normal_kl.logvar1"),
            t("normal_kl.mean2"),
            t("normal_kl.logvar2"),
        )
        .unwrap();
        assert_close(
            "normal_kl",
            &values(kl),
            r.get("normal_kl.exact"),
            2e-6,
            1e-12 + transcendental_slack(device),
        );
    });
}
