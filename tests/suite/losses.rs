//! The losses: the article's central identity, reference
//! values from improved-diffusion, the learned-range extremes, an optimizer step, and the
//! importance sampler.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::{
    Denoiser, ForwardProcess, Loss, NoiseSchedule,
    loss::{
        Decoder, HybridLoss, LossSecondMomentResampler, SimpleLoss, TimestepSampler,
        UniformSampler, VlbLoss, Weighting,
    },
    noise::{SeededRng, randn},
    prediction::{Parameterization, Prediction, VarianceKind},
    process::VpProcess,
    schedule::{BetaSchedule, DiscreteSchedule, ScheduleConfig, Timesteps},
};
use proptest::prelude::*;

use crate::common::{
    Reference, assert_close, on_each_device, tensor, timesteps, transcendental_slack, values,
};

fn param(prediction: Prediction, variance: VarianceKind) -> Parameterization {
    Parameterization::new()
        .with_prediction(prediction)
        .with_variance(variance)
}

/// A "model" that returns a fixed tensor whatever its input.
fn constant(output: Tensor<2>) -> impl Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<2> {
    move |_x, _t| output.clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The article's last equation: with fixed σ_t² and an ε-parameterized mean, the KL
    /// term L_{t−1} equals β_t² / (2σ_t² α_t (1 − ᾱ_t)) · ‖ε − ε_θ‖² (Ho et al. eq. 12),
    /// for σ_t² = β̃_t and σ_t² = β_t. The right side is computed in f64 from the betas.
    #[test]
    fn kl_term_is_the_weighted_eps_error(
        t_max in 3usize..400,
        beta_end in 0.005..0.3f64,
        frac in 0.0..1.0f64,
        x0 in proptest::collection::vec(-1.5..1.5f64, 6),
        eps in proptest::collection::vec(-2.5..2.5f64, 6),
        delta in proptest::collection::vec(-1.0..1.0f64, 6),
    ) {
        let schedule = ScheduleConfig::new()
            .with_num_timesteps(t_max)
            .with_beta_schedule(BetaSchedule::Linear { beta_start: 1e-4, beta_end })
            .init()
            .unwrap();
        let t = 1 + ((frac * (t_max - 1) as f64) as usize).min(t_max - 2);
        // Independent f64 quantities from the betas.
        let betas = schedule.betas().to_vec();
        let ab: f64 = betas[..=t].iter().map(|b| 1.0 - b).product();
        let ab_prev: f64 = betas[..t].iter().map(|b| 1.0 - b).product();
        let (beta, alpha) = (betas[t], 1.0 - betas[t]);
        let eps_hat: Vec<f64> = eps.iter().zip(&delta).map(|(e, d)| e + d).collect();
        let sq: f64 = delta.iter().map(|d| d * d).sum();
        let process = VpProcess::new(schedule);
        for (variance, sigma2) in [
            (VarianceKind::FixedSmall, (1.0 - ab_prev) / (1.0 - ab) * beta),
            (VarianceKind::FixedLarge, beta),
        ] {
            let want = beta * beta / (2.0 * sigma2 * alpha * (1.0 - ab)) * sq;
            let vlb = VlbLoss::new(process.clone(), param(Prediction::Epsilon, variance), Decoder::Gaussian);
            // With σ² = β_t the KL also has the variance-mismatch term
            // ½(r − 1 − log r) per dimension, r = β̃_t/β_t.
            let extra = if variance == VarianceKind::FixedLarge {
                let r = (1.0 - ab_prev) / (1.0 - ab);
                0.5 * (r - 1.0 - r.ln()) * 6.0
            } else {
                0.0
            };
            on_each_device(|device| {
                let tt = timesteps(&[t], device);
                let x0_t = tensor(&x0, [1, 6], device);
                let x_t = process.q_sample(x0_t.clone(), &tt, tensor(&eps, [1, 6], device)).unwrap();
                let size = values(x_t.clone()).iter().map(|v| v.abs()).fold(1.0, f64::max);
                let terms = vlb.vb_terms(tensor(&eps_hat, [1, 6], device), x0_t, x_t, &tt).unwrap();
                let got = values(terms.nats)[0] * 6.0; // mean over 6 dims → sum
                // (Δμ)²/(2σ²): Δμ is a difference of two f32 posterior means of size
                // ≲ 2·|x_t|, so it carries an absolute error e ≈ 4 ulps of that size;
                // the sum over 6 dims then moves by ≤ 6·(2|Δμ|e + e²)/(2σ²).
                let e = 4.0 * 1.2e-7 * 2.0 * size;
                let dmu = (want * 2.0 * sigma2 / 6.0).sqrt();
                let tol = 1e-5 * (want + extra) + 6.0 * (2.0 * dmu * e + e * e) / (2.0 * sigma2) + 6e-6;
                assert!(
                    (got - (want + extra)).abs() <= tol,
                    "{variance:?} t={t}: got {got}, want {} (tol {tol})",
                    want + extra
                );
            });
        }
        // The simplified loss with the Vlb weighting is the same quantity (σ² = β̃_t).
        let simple = SimpleLoss::new(process.clone(), Prediction::Epsilon, Weighting::Vlb).unwrap();
        let w = simple.weights()[t];
        let want_w = beta * beta / (2.0 * ((1.0 - ab_prev) / (1.0 - ab) * beta) * alpha * (1.0 - ab));
        prop_assert!((w - want_w).abs() <= 1e-9 * want_w, "weight {w} vs {want_w}");
    }
}

/// improved-diffusion's toy models of `tests/data/reference/losses.txt`.
fn toy_model(name: &str) -> impl Fn(Tensor<4>, Tensor<1, Int>) -> Tensor<4> {
    let name = name.to_string();
    move |x: Tensor<4>, t: Tensor<1, Int>| {
        let n = x.dims()[0];
        let tf = t.float().reshape([n, 1, 1, 1]);
        match name.as_str() {
            "eps" => x * 0.8 + (tf * 0.01).sin() * 0.1,
            "x0" => x.tanh() * 0.5 + (tf * 0.02).cos() * 0.05,
            _ => {
                let mean = x.clone() * 0.8 + (tf * 0.01).sin() * 0.1;
                Tensor::cat(vec![mean, (x * 0.7 - 0.2).tanh()], 1)
            }
        }
    }
}

/// (config name, model, parameterization) of the reference vectors.
fn reference_configs() -> [(&'static str, &'static str, Parameterization); 4] {
    [
        (
            "eps_small",
            "eps",
            param(Prediction::Epsilon, VarianceKind::FixedSmall),
        ),
        (
            "eps_large",
            "eps",
            param(Prediction::Epsilon, VarianceKind::FixedLarge),
        ),
        (
            "x0_small",
            "x0",
            param(Prediction::Sample, VarianceKind::FixedSmall),
        ),
        (
            "learned",
            "learned",
            param(Prediction::Epsilon, VarianceKind::LearnedRange),
        ),
    ]
}

fn reference_process(r: &Reference, s: &str) -> VpProcess {
    VpProcess::new(DiscreteSchedule::from_betas(r.get(&format!("vb.{s}.betas")).to_vec()).unwrap())
}

/// The bound's terms against improved-diffusion's `_vb_terms_bpd` (float64). KL terms
/// (t ≥ 1) compare directly; decoder terms (t = 0) against the `_exact` vectors, because
/// improved-diffusion approximates Φ by tanh there and clamps at 1e-12.
#[test]
fn vb_terms_match_improved_diffusion() {
    let r = Reference::load();
    on_each_device(|device| {
        let x0 = tensor(r.get("vb.x0"), [2, 2, 2, 2], device);
        for s in ["s1", "s2"] {
            let process = reference_process(&r, s);
            for (name, model_name, parameterization) in reference_configs() {
                let vlb = VlbLoss::new(process.clone(), parameterization, Decoder::Discretized);
                let model = toy_model(model_name);
                for b in ["b0", "b1"] {
                    let key = format!("vb.{s}.{name}.{b}");
                    let ts = r.get_usize(&format!("{key}.t"));
                    let t = timesteps(&ts, device);
                    let x_t = tensor(r.get(&format!("{key}.x_t")), [2, 2, 2, 2], device);
                    let output = model(x_t.clone(), t.clone());
                    let terms = vlb.vb_terms(output, x0.clone(), x_t, &t).unwrap();
                    let want = if ts.contains(&0) {
                        r.get(&format!("{key}.output_exact"))
                    } else {
                        r.get(&format!("{key}.output"))
                    };
                    // f32 model outputs and coefficients: relative 1e-5 of the term.
                    assert_close(&key, &values(terms.bits_per_dim()), want, 2e-5, 2e-6);
                    assert_close(
                        &format!("{key}.pred_xstart"),
                        &values(terms.x0),
                        r.get(&format!("{key}.pred_xstart")),
                        1e-5,
                        2e-5,
                    );
                }
            }
        }
    });
}

/// The whole bound over all T steps against improved-diffusion's `calc_bpd_loop`, with
/// its noise (stored row k = timestep T−1−k).
#[test]
fn bound_evaluation_matches_calc_bpd_loop() {
    let r = Reference::load();
    on_each_device(|device| {
        let x0 = tensor(r.get("vb.x0"), [2, 2, 2, 2], device);
        for s in ["s1", "s2"] {
            let process = reference_process(&r, s);
            let steps = process.num_timesteps();
            let noise_rows = r.get(&format!("bpd.{s}.noise")).to_vec();
            for (name, model_name, parameterization) in reference_configs() {
                let vlb = VlbLoss::new(process.clone(), parameterization, Decoder::Discretized);
                let mut calls = 0;
                let eval = vlb
                    .evaluate_bound(
                        &toy_model(model_name),
                        x0.clone(),
                        |t| {
                            let k = steps - 1 - t;
                            tensor(&noise_rows[k * 16..(k + 1) * 16], [2, 2, 2, 2], device)
                        },
                        |done, total| {
                            assert_eq!(total, steps);
                            calls = done;
                        },
                    )
                    .unwrap();
                assert_eq!(calls, steps);
                let key = format!("bpd.{s}.{name}");
                // improved-diffusion's [N, T] in loop order (column k = t T−1−k) → ascending t.
                let ascending = |v: &[f64]| -> Vec<f64> {
                    (0..2)
                        .flat_map(|i| (0..steps).map(move |t| v[i * steps + steps - 1 - t]))
                        .collect()
                };
                // (what, ours [N, T], reference, relative, absolute): f32 evaluation.
                let per_t = [
                    ("vb_exact", eval.vb_bpd, 2e-5, 2e-6),
                    ("xstart_mse", eval.x0_mse, 1e-4, 1e-9),
                    ("mse", eval.eps_mse, 1e-4, 1e-9),
                ];
                for (what, ours, rel, abs) in per_t {
                    let want = ascending(r.get(&format!("{key}.{what}")));
                    assert_close(&format!("{key}.{what}"), &values(ours), &want, rel, abs);
                }
                // The prior KL (~3e-7 bits) is a difference of order-1 terms: exact to
                // 1e-12 where exp and log are libm-grade, to their error elsewhere.
                assert_close(
                    &format!("{key}.prior"),
                    &values(eval.prior_bpd),
                    r.get(&format!("{key}.prior_bpd")),
                    1e-4,
                    1e-12 + transcendental_slack(device),
                );
                assert_close(
                    &format!("{key}.total"),
                    &values(eval.total_bpd),
                    r.get(&format!("{key}.total_bpd_exact")),
                    2e-5,
                    1e-6,
                );
            }
        }
    });
}

/// A loss evaluated at (t, noise) on the reference batch.
type LossFn<'a> = Box<dyn Fn(&Tensor<1, Int>, Tensor<4>) -> Vec<f64> + 'a>;

/// The per-example loss of `loss` for the toy model `kind` on `x0` at `(t, noise)`.
fn per_example<L: Loss<4>>(
    loss: &L,
    kind: &str,
    x0: &Tensor<4>,
    t: &Tensor<1, Int>,
    noise: Tensor<4>,
) -> Vec<f64> {
    values(
        loss.loss(&toy_model(kind), x0.clone(), t, noise)
            .unwrap()
            .loss,
    )
}

/// The training losses against improved-diffusion's `training_losses`: MSE (L_simple),
/// KL and RESCALED_KL (the bound's term, ×T), and the hybrid MSE / RESCALED_MSE
/// (λ = 1/T and 0.001) for the learned-range model.
#[test]
fn training_losses_match_improved_diffusion() {
    let r = Reference::load();
    on_each_device(|device| {
        let x0 = tensor(r.get("vb.x0"), [2, 2, 2, 2], device);
        for s in ["s1", "s2"] {
            let process = reference_process(&r, s);
            let steps = process.num_timesteps() as f64;
            let eps_small = param(Prediction::Epsilon, VarianceKind::FixedSmall);
            let learned = param(Prediction::Epsilon, VarianceKind::LearnedRange);
            let hybrid = |lambda: f64| {
                HybridLoss::new(process.clone(), learned, Decoder::Discretized)
                    .with_lambda(lambda)
                    .unwrap()
            };
            let vlb = VlbLoss::new(process.clone(), eps_small, Decoder::Discretized);
            let simple =
                SimpleLoss::new(process.clone(), Prediction::Epsilon, Weighting::Uniform).unwrap();
            let scaled = vlb.clone().with_scale_by_num_timesteps(true);
            let (hybrid_t, hybrid_fixed) = (hybrid(1.0 / steps), hybrid(0.001));
            let x0 = &x0;
            let cases: Vec<(&str, LossFn)> = vec![
                (
                    "eps_small.mse",
                    Box::new(|t, n| per_example(&simple, "eps", x0, t, n)),
                ),
                (
                    "eps_small.kl",
                    Box::new(|t, n| per_example(&vlb, "eps", x0, t, n)),
                ),
                (
                    "eps_small.rescaled_kl",
                    Box::new(|t, n| per_example(&scaled, "eps", x0, t, n)),
                ),
                (
                    "learned.mse",
                    Box::new(|t, n| per_example(&hybrid_t, "learned", x0, t, n)),
                ),
                (
                    "learned.rescaled_mse",
                    Box::new(|t, n| per_example(&hybrid_fixed, "learned", x0, t, n)),
                ),
            ];
            for (name, compute) in cases {
                let key = format!("train.{s}.{name}");
                let t = timesteps(&r.get_usize(&format!("{key}.t")), device);
                let noise = tensor(r.get(&format!("{key}.noise")), [2, 2, 2, 2], device);
                let got = compute(&t, noise);
                let want_key = if r.has(&format!("{key}.loss_exact")) {
                    format!("{key}.loss_exact")
                } else {
                    format!("{key}.loss")
                };
                assert_close(&key, &got, r.get(&want_key), 2e-5, 2e-6);
            }
        }
    });
}

/// Learned-range variance at its extremes reproduces the fixed variances: v = −1 gives
/// FixedSmall's log β̃_t, v = +1 gives log β_t (FixedLarge's, away from t = 0).
#[test]
fn learned_range_extremes_are_the_fixed_variances() {
    let process = VpProcess::new(
        ScheduleConfig::new()
            .with_num_timesteps(100)
            .init()
            .unwrap(),
    );
    on_each_device(|device| {
        let ts = [0usize, 1, 50, 99];
        let t = timesteps(&ts, device);
        let x_t = randn::<2>([4, 3], 3, device);
        let eps = randn::<2>([4, 3], 4, device);
        let learned = param(Prediction::Epsilon, VarianceKind::LearnedRange);
        let log_var = |v: f64| {
            let output = Tensor::cat(vec![eps.clone(), eps.clone().zeros_like() + v], 1);
            values(
                learned
                    .reverse_step(&process, output, x_t.clone(), &t)
                    .unwrap()
                    .distribution
                    .log_variance,
            )
        };
        let fixed = |kind| {
            let step = param(Prediction::Epsilon, kind)
                .reverse_step(&process, eps.clone(), x_t.clone(), &t)
                .unwrap();
            values(step.distribution.log_variance.expand([4, 3]))
        };
        assert_close(
            "v = -1",
            &log_var(-1.0),
            &fixed(VarianceKind::FixedSmall),
            1e-6,
            1e-6,
        );
        let large = fixed(VarianceKind::FixedLarge);
        let schedule = process.schedule();
        let want: Vec<f64> = ts
            .iter()
            .flat_map(|&t| [schedule.betas()[t].ln(); 3])
            .collect();
        assert_close("v = +1", &log_var(1.0), &want, 1e-6, 1e-6);
        assert_close("FixedLarge t >= 1", &large[3..], &want[3..], 1e-6, 1e-6);
        // The mean does not depend on the variance half of the output.
        let mean = |v: f64| {
            let output = Tensor::cat(vec![eps.clone(), eps.clone().zeros_like() + v], 1);
            values(
                learned
                    .reverse_step(&process, output, x_t.clone(), &t)
                    .unwrap()
                    .distribution
                    .mean,
            )
        };
        assert_eq!(mean(-0.3), mean(0.9));
        // A wrong channel count is an error.
        assert!(
            learned
                .reverse_step(&process, eps.clone(), x_t.clone(), &t)
                .is_err()
        );
    });
}

/// A tiny denoiser for 2-D data: a linear map of (x_t, t/T).
#[derive(Module, Debug)]
struct Tiny {
    linear: Linear,
    steps: usize,
}

impl Tiny {
    fn new(out: usize, steps: usize, device: &Device) -> Self {
        device.seed(0);
        Self {
            linear: LinearConfig::new(3, out).init(device),
            steps,
        }
    }
}

impl Denoiser<2> for Tiny {
    fn denoise(
        &self,
        x_t: Tensor<2>,
        t: Tensor<1, Int>,
        _labels: Option<Tensor<1, Int>>,
    ) -> Tensor<2> {
        let n = x_t.dims()[0];
        let tf = t.float().reshape([n, 1]) / self.steps as f64;
        self.linear.forward(Tensor::cat(vec![x_t, tf], 1))
    }
}

/// One SGD step on a fixed batch lowers the loss, for every loss (so gradients reach
/// the parameters through each; for the hybrid loss the variance half is trained too).
fn check_step_lowers<L: Loss<2>>(name: &str, loss: &L, out: usize, device: &Device) {
    let steps = loss.num_timesteps();
    let x0 = randn::<2>([64, 2], 1, device) * 0.5;
    let t = burn_diffusion::loss::uniform_timesteps(64, steps, 2, device).unwrap();
    let noise = randn::<2>([64, 2], 3, device);
    let value = |m: &Tiny| {
        loss.loss(m, x0.clone(), &t, noise.clone())
            .unwrap()
            .loss
            .mean()
    };
    let model = Tiny::new(out, steps, device).train();
    let before = value(&model);
    let before_value: f32 = before.clone().into_scalar();
    let grads = GradientsParams::from_grads(before.backward(), &model);
    // The weightings span many orders of magnitude (SNR weights reach 1e8 on x_0 errors),
    // so the step is scaled by 1/loss: a small step on any of them.
    let lr = 1e-4 / f64::from(before_value).max(1.0);
    let model = SgdConfig::new().init().step(lr, model, grads);
    let after: f32 = value(&model).into_scalar();
    println!("{name}: {before_value} -> {after}");
    assert!(
        after < before_value,
        "{name}: loss {before_value} -> {after}"
    );
}

#[test]
fn one_optimizer_step_lowers_each_loss() {
    let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(50).init().unwrap());
    let device = Device::flex().autodiff();
    for (prediction, weighting) in [
        (Prediction::Epsilon, Weighting::Uniform),
        (Prediction::Sample, Weighting::Snr),
        (Prediction::Velocity, Weighting::MinSnr { gamma: 5.0 }),
        (Prediction::Epsilon, Weighting::Vlb),
    ] {
        let loss = SimpleLoss::new(process.clone(), prediction, weighting.clone()).unwrap();
        check_step_lowers(
            &format!("simple {prediction:?} {weighting:?}"),
            &loss,
            2,
            &device,
        );
    }
    let vlb = VlbLoss::new(
        process.clone(),
        param(Prediction::Epsilon, VarianceKind::FixedLarge),
        Decoder::Gaussian,
    );
    check_step_lowers("vlb", &vlb, 2, &device);
    let learned = param(Prediction::Epsilon, VarianceKind::LearnedRange);
    let vlb_learned = VlbLoss::new(process.clone(), learned, Decoder::Gaussian);
    check_step_lowers("vlb learned", &vlb_learned, 4, &device);
    let hybrid = HybridLoss::new(process.clone(), learned, Decoder::Gaussian);
    check_step_lowers("hybrid", &hybrid, 4, &device);
}

/// The hybrid loss's bound term trains only the variance: its gradient with respect to
/// the mean half of the output is zero.
#[test]
fn hybrid_vlb_term_stops_the_gradient_through_the_mean() {
    let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(20).init().unwrap());
    let device = Device::flex().autodiff();
    let learned = param(Prediction::Epsilon, VarianceKind::LearnedRange);
    let hybrid = HybridLoss::new(process, learned, Decoder::Gaussian);
    let output = randn::<2>([8, 4], 5, &device).require_grad();
    let x0 = randn::<2>([8, 2], 6, &device);
    let t = burn_diffusion::loss::uniform_timesteps(8, 20, 7, &device).unwrap();
    let out = hybrid
        .loss(&constant(output.clone()), x0, &t, randn([8, 2], 8, &device))
        .unwrap();
    let vb = out.term("vb").unwrap().clone().sum();
    let grads = vb.backward();
    let g = values(output.grad(&grads).unwrap().without_autodiff());
    let (mean_half, var_half): (Vec<f64>, Vec<f64>) = (
        g.chunks(4).flat_map(|r| r[..2].to_vec()).collect(),
        g.chunks(4).flat_map(|r| r[2..].to_vec()).collect(),
    );
    assert!(
        mean_half.iter().all(|v| *v == 0.0),
        "gradient through the mean: {mean_half:?}"
    );
    assert!(
        var_half.iter().any(|v| *v != 0.0),
        "no gradient to the variance"
    );
}

/// Importance sampling by the loss second moment keeps the estimate unbiased: on a fixed
/// table of per-t losses, Σ_t p_t · L_t / (T p_t) equals the uniform mean exactly, and the
/// sampled estimate agrees within Monte-Carlo error, with a smaller variance.
#[test]
fn importance_sampler_is_unbiased() {
    let steps = 40;
    let table: Vec<f64> = (0..steps)
        .map(|t| 0.1 + ((t * 7 % 13) as f64).powi(2) / (1.0 + t as f64))
        .collect();
    let uniform_mean = table.iter().sum::<f64>() / steps as f64;
    let mut sampler = LossSecondMomentResampler::new(steps).unwrap();
    assert!(!sampler.warmed_up());
    assert_eq!(sampler.weights(), vec![1.0; steps]);
    for _ in 0..10 {
        let ts: Vec<usize> = (0..steps).collect();
        sampler.update(&ts, &table);
    }
    assert!(sampler.warmed_up());
    let w = sampler.weights();
    let total: f64 = w.iter().sum();
    let exact: f64 = (0..steps)
        .map(|t| (w[t] / total) * table[t] * total / (steps as f64 * w[t]))
        .sum();
    assert!((exact - uniform_mean).abs() < 1e-12 * uniform_mean);
    let n = 100_000;
    let estimate = |s: &dyn TimestepSampler| {
        let (ts, iw) = s.sample(n, &mut SeededRng::new(9));
        let v: Vec<f64> = ts.iter().zip(&iw).map(|(t, w)| table[*t] * w).collect();
        let mu = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (n - 1) as f64;
        (mu, var)
    };
    let (mu_is, var_is) = estimate(&sampler);
    let (mu_u, var_u) = estimate(&UniformSampler::new(steps).unwrap());
    assert!(
        (mu_is - uniform_mean).abs() < 5.0 * (var_is / n as f64).sqrt() + 1e-12,
        "{mu_is} vs {uniform_mean}"
    );
    assert!(
        (mu_u - uniform_mean).abs() < 5.0 * (var_u / n as f64).sqrt(),
        "{mu_u} vs {uniform_mean}"
    );
    assert!(
        var_is < var_u / 10.0,
        "importance sampling did not reduce the variance: {var_is} vs {var_u}"
    );
}

/// Zero-terminal-SNR schedules: no weighting divides by zero. Every (prediction,
/// weighting) pair gives finite weights, except the VLB weight of an ε-predictor, which is
/// infinite at the last step and rejected with an error that says what to use instead; the
/// losses at the last step are finite.
#[test]
fn zero_terminal_snr_weights_are_finite_or_rejected() {
    let schedule = ScheduleConfig::new()
        .with_num_timesteps(100)
        .with_rescale_zero_terminal_snr(true)
        .init()
        .unwrap();
    let process = VpProcess::new(schedule);
    let device = Device::flex();
    let x0 = randn::<2>([4, 3], 1, &device);
    let t = timesteps(&[99, 99, 0, 50], &device);
    let noise = randn::<2>([4, 3], 2, &device);
    let model = |x_t: Tensor<2>, _t: Tensor<1, Int>| x_t * 0.3;
    for prediction in [
        Prediction::Epsilon,
        Prediction::Sample,
        Prediction::Velocity,
    ] {
        for weighting in [
            Weighting::Uniform,
            Weighting::Vlb,
            Weighting::Snr,
            Weighting::MinSnr { gamma: 5.0 },
        ] {
            match SimpleLoss::new(process.clone(), prediction, weighting.clone()) {
                Ok(loss) => {
                    assert!(loss.weights().iter().all(|w| w.is_finite()));
                    let out = loss.loss(&model, x0.clone(), &t, noise.clone()).unwrap();
                    let v = values(out.loss);
                    assert!(
                        v.iter().all(|l| l.is_finite()),
                        "{prediction:?} {weighting:?}: {v:?}"
                    );
                }
                Err(e) => {
                    assert_eq!(
                        (prediction, weighting.clone()),
                        (Prediction::Epsilon, Weighting::Vlb)
                    );
                    assert!(e.to_string().contains("predict x_0 or v"), "{e}");
                }
            }
        }
    }
    // MinSnr at SNR = 0 is min(1, γ/0) = 1 for ε, i.e. plain ε-MSE.
    let min_snr = SimpleLoss::new(
        process,
        Prediction::Epsilon,
        Weighting::MinSnr { gamma: 5.0 },
    )
    .unwrap();
    assert_eq!(min_snr.weights()[99], 1.0);
    assert!(
        SimpleLoss::new(
            VpProcess::new(ScheduleConfig::new().init().unwrap()),
            Prediction::Epsilon,
            Weighting::MinSnr { gamma: -1.0 }
        )
        .is_err()
    );
}

/// A class-conditional model trained through a loss: the losses call the model without
/// labels, so `WithLabels` binds them, with `LabelDropout` applied first. With a model
/// that predicts ε̂ = its label, the ε-MSE of example i is mean_j (c_i − ε_ij)², computed
/// here from the noise; dropped labels use the null label.
#[test]
fn losses_pass_bound_labels_to_the_model() {
    use burn_diffusion::{model::WithLabels, train::LabelDropout};
    struct LabelIsEps;
    impl Denoiser<2> for LabelIsEps {
        fn denoise(
            &self,
            x: Tensor<2>,
            _t: Tensor<1, Int>,
            labels: Option<Tensor<1, Int>>,
        ) -> Tensor<2> {
            let n = x.dims()[0];
            x.zeros_like() + labels.expect("labels").float().reshape([n, 1])
        }
    }
    let device = Device::flex();
    let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(50).init().unwrap());
    let loss = SimpleLoss::new(process, Prediction::Epsilon, Weighting::Uniform).unwrap();
    let (n, d) = (16, 3);
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 4).collect();
    let dropout = LabelDropout::new(0.5, 7).unwrap();
    let dropped = dropout.dropped(n, 11);
    let bound = dropout.apply(Tensor::<1, Int>::from_ints(labels.as_slice(), &device), 11);
    let x0 = randn::<2>([n, d], 1, &device);
    let noise = randn::<2>([n, d], 2, &device);
    let t = Timesteps::new((0..n).map(|i| i * 3 % 50).collect());
    let got = values(
        loss.loss(&WithLabels::new(&LabelIsEps, bound), x0, &t, noise.clone())
            .unwrap()
            .loss,
    );
    let eps = values(noise);
    for i in 0..n {
        let c = if dropped[i] { 7.0 } else { labels[i] as f64 };
        let want = (0..d).map(|j| (c - eps[i * d + j]).powi(2)).sum::<f64>() / d as f64;
        assert!(
            (got[i] - want).abs() < 1e-4 * want.max(1.0),
            "example {i}: {} vs {want}",
            got[i]
        );
    }
    assert!(dropped.iter().any(|&b| b) && dropped.iter().any(|&b| !b));
}
