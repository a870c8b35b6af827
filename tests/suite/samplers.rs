//! Samplers: Gaussian data with the closed-form optimal model, DDIM's determinism and its
//! η = 1 equivalence with DDPM, guidance, and errors.

use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::{
    Denoiser, ForwardProcess, NoiseSchedule, Posterior, ReverseSampler,
    noise::randn,
    prediction::VarianceKind,
    process::VpProcess,
    sampler::{
        DdimSampler, DdpmSampler, Guided, NoiseSource, SampleOptions, X0Options, sample,
        sample_from_noise,
    },
    schedule::{ScheduleConfig, Spacing, Timesteps},
};

use crate::common::{assert_close, on_each_device, tensor, values};

/// The optimal ε-predictor for data N(m, s²) under `process`: ε̂ = s_t (x_t − a_t m) / V_t,
/// V_t = a_t² s² + s_t² (the posterior mean of ε given x_t).
fn optimal_model(
    process: &VpProcess,
    m: f64,
    s: f64,
) -> impl Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<2> {
    let (a, sd) = (
        process.signal_scale().to_vec(),
        process.noise_std().to_vec(),
    );
    move |x_t: Tensor<2>, t: Tensor<1, Int>| {
        let ts = Timesteps::read(&t, a.len()).unwrap();
        let k = ts
            .gather_map(|t| sd[t] / (a[t] * a[t] * s * s + sd[t] * sd[t]), &x_t)
            .unwrap();
        let c = ts.gather_map(|t| a[t] * m, &x_t).unwrap();
        (x_t - c) * k
    }
}

/// Sample mean and variance of a tensor's values.
fn moments(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (
        mean,
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0),
    )
}

/// One step x' = a'·m + k·(x − a·m) + σ z as (a, a', k, σ²).
type AffineStep = (f64, f64, f64, f64);

/// A sampler under test, the exact affine steps of its chain, and the allowed relative
/// distance of that chain's variance from the data's.
struct Case {
    name: String,
    sampler: Box<dyn ReverseSamplerDyn>,
    steps: Vec<AffineStep>,
    allowed: f64,
}

/// The exact mean and variance of a sample after the affine-Gaussian steps
/// x' = a'·m + k·(x − a·m) + σ z of a sampler driven by the optimal model, from
/// x_T ~ N(0, 1): each step is (a, a', k, σ²) with a the current signal scale.
fn predicted_moments(m: f64, steps: &[AffineStep]) -> (f64, f64) {
    let (mut mean, mut var) = (0.0, 1.0);
    for &(a, a_next, k, sigma2) in steps {
        mean = a_next * m + k * (mean - a * m);
        var = k * k * var + sigma2;
    }
    (mean, var)
}

/// Every sampler, driven by the optimal model for N(m, s²) data, produces samples whose
/// mean and variance match the exact moments of its own chain (computed in closed form:
/// every step is affine-Gaussian for Gaussian data) within Monte-Carlo error: n = 20,000
/// draws, mean within 5σ/√n, variance within 5·v·√(2/n). The exact moments' distance to
/// (m, s²) is each sampler's discretization error, printed and bounded per sampler.
#[test]
fn samplers_reproduce_gaussian_data() {
    let (m, s) = (0.4, 0.3);
    let n = 20_000;
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    let model = optimal_model(&process, m, s);
    let device = Device::flex();
    let x0 = X0Options::default();
    let (a, sd) = (
        process.signal_scale().to_vec(),
        process.noise_std().to_vec(),
    );
    let big_v = |t: usize| a[t] * a[t] * s * s + sd[t] * sd[t];
    // (name, sampler, exact steps, allowed |variance − s²| / s² from discretization)
    let mut cases: Vec<Case> = Vec::new();
    for variance in [VarianceKind::FixedSmall, VarianceKind::FixedLarge] {
        let sampler = DdpmSampler::new(process.clone(), variance, x0).unwrap();
        let steps = (0..1000)
            .rev()
            .map(|t| {
                let (c1, c2) = (
                    process.posterior_mean_coef1()[t],
                    process.posterior_mean_coef2()[t],
                );
                let k = c1 * a[t] * s * s / big_v(t) + c2;
                let a_next = if t == 0 { 1.0 } else { a[t - 1] };
                let sigma2 = match (t, variance) {
                    (0, _) => 0.0,
                    (_, VarianceKind::FixedSmall) => process.posterior_variance()[t],
                    _ => process.schedule().betas()[t],
                };
                (a[t], a_next, k, sigma2)
            })
            .collect();
        cases.push(Case {
            name: format!("DDPM {variance:?}, 1000 steps"),
            sampler: Box::new(sampler),
            steps,
            allowed: 0.03,
        });
    }
    // DDIM's bias for this narrow data (s = 0.3) comes from its coarse last steps (the
    // angle between (a s, s_t) and (a' s, s') is large near t = 0 on the linear schedule):
    // a property of the chain, shrinking as the step count grows.
    for (spacing, eta, allowed) in [
        (Spacing::Linspace { steps: 50 }, 0.0, 0.2),
        (Spacing::Linspace { steps: 200 }, 0.0, 0.05),
        (
            Spacing::Leading {
                steps: 25,
                offset: 1,
            },
            0.0,
            0.35,
        ),
        (Spacing::Trailing { steps: 50 }, 0.0, 0.2),
        (Spacing::Linspace { steps: 50 }, 1.0, 0.35),
    ] {
        let ddim = DdimSampler::with_spacing(process.clone(), &spacing, eta, x0).unwrap();
        let visited: Vec<usize> = ReverseSampler::<2>::timesteps(&ddim).to_vec();
        let steps = (0..visited.len())
            .map(|i| {
                let t = visited[i];
                let (a_next, s_next) = visited.get(i + 1).map_or((1.0, 0.0), |&u| (a[u], sd[u]));
                let sigma2 = eta
                    * eta
                    * s_next
                    * s_next
                    * (sd[t].powi(2) - (a[t] / a_next).powi(2) * s_next * s_next)
                    / sd[t].powi(2);
                let dir = (s_next * s_next - sigma2).sqrt();
                let k = (a_next * a[t] * s * s + dir * sd[t]) / big_v(t);
                (a[t], a_next, k, sigma2)
            })
            .collect();
        cases.push(Case {
            name: format!("DDIM η = {eta}, {spacing}"),
            sampler: Box::new(ddim),
            steps,
            allowed,
        });
    }
    for Case {
        name,
        sampler,
        steps,
        allowed,
    } in cases
    {
        let exact = predicted_moments(m, &steps);
        let got = sampler.run(&model, n, 3, &device);
        check_chain_moments(&name, &got, exact, (m, s), Some(allowed));
    }
}

/// Asserts that the samples `got` have their chain's exact moments `(mean, variance)`
/// within 5 standard errors (σ/√n and σ²·√(2/n) for Gaussian samples), that the chain's
/// mean is the data's mean to 0.01, and, with `allowed`, that the chain's variance is
/// within `allowed`·s² of the data's s² (its discretization error).
fn check_chain_moments(
    name: &str,
    got: &[f64],
    (mean_exact, var_exact): (f64, f64),
    (m, s): (f64, f64),
    allowed: Option<f64>,
) {
    let n = got.len() as f64;
    let (mean, var) = moments(got);
    println!(
        "{name}: sample mean {mean:.4}, variance {var:.5}; its chain's exact {mean_exact:.4}, {var_exact:.5}; data {m}, {:.5}",
        s * s
    );
    assert!(
        (mean - mean_exact).abs() < 5.0 * var_exact.sqrt() / n.sqrt(),
        "{name}: mean {mean} vs {mean_exact}"
    );
    assert!(
        (var - var_exact).abs() < 5.0 * var_exact * (2.0 / n).sqrt(),
        "{name}: variance {var} vs {var_exact}"
    );
    assert!(
        (mean_exact - m).abs() < 0.01,
        "{name}: chain mean {mean_exact}"
    );
    if let Some(allowed) = allowed {
        assert!(
            (var_exact - s * s).abs() < allowed * s * s,
            "{name}: chain variance {var_exact}"
        );
    }
}

/// Object-safe wrapper so the test can loop over different sampler types.
trait ReverseSamplerDyn {
    fn run(
        &self,
        model: &dyn Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<2>,
        n: usize,
        seed: u64,
        device: &Device,
    ) -> Vec<f64>;
}

impl<S: ReverseSampler<2>> ReverseSamplerDyn for S {
    fn run(
        &self,
        model: &dyn Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<2>,
        n: usize,
        seed: u64,
        device: &Device,
    ) -> Vec<f64> {
        let options = SampleOptions {
            seed,
            keep_trajectory: false,
            ..SampleOptions::default()
        };
        values(
            sample_from_noise(self, &model, [n, 1], device, options, |_, _| {})
                .unwrap()
                .sample,
        )
    }
}

/// DDIM with η = 0 is deterministic given x_T: the noise seed does not matter.
#[test]
fn ddim_eta_zero_is_deterministic() {
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    let model = optimal_model(&process, 0.1, 0.5);
    on_each_device(|device| {
        let ddim = DdimSampler::with_spacing(
            process.clone(),
            &Spacing::Leading {
                steps: 20,
                offset: 1,
            },
            0.0,
            X0Options::default(),
        )
        .unwrap();
        let x_t = randn::<2>([16, 3], 1, device);
        let run = |seed| {
            values(
                sample(
                    &ddim,
                    &model,
                    x_t.clone(),
                    SampleOptions {
                        seed,
                        keep_trajectory: false,
                        ..SampleOptions::default()
                    },
                    |_, _| {},
                )
                .unwrap()
                .sample,
            )
        };
        assert_eq!(run(1), run(2));
        assert!((0..20).all(|i| !ReverseSampler::<2>::needs_noise(&ddim, i)));
    });
}

/// DDIM with η = 1 on the full schedule is DDPM with σ_t² = β̃_t: the same mean and the
/// noise scale √β̃_t, step by step.
#[test]
fn ddim_eta_one_is_ddpm_with_posterior_variance() {
    let process = VpProcess::new(
        ScheduleConfig::new()
            .with_num_timesteps(100)
            .init()
            .unwrap(),
    );
    let all: Vec<usize> = (0..100).rev().collect();
    let ddim = DdimSampler::new(process.clone(), all, 1.0, X0Options::default()).unwrap();
    let ddpm = DdpmSampler::new(
        process.clone(),
        VarianceKind::FixedSmall,
        X0Options::default(),
    )
    .unwrap();
    on_each_device(|device| {
        let x_t = randn::<2>([3, 4], 5, device);
        let output = randn::<2>([3, 4], 6, device);
        let noise = randn::<2>([3, 4], 7, device);
        for i in [0usize, 10, 50, 98] {
            let t = 99 - i;
            let step = |s: &dyn Fn(Option<Tensor<2>>) -> Tensor<2>| {
                (s(Some(noise.clone())), s(Some(noise.zeros_like())))
            };
            let (d_noisy, d_mean) = step(&|z| {
                ReverseSampler::<2>::step(&ddim, &mut (), i, x_t.clone(), output.clone(), z)
                    .unwrap()
                    .x_prev
            });
            let (p_noisy, p_mean) = step(&|z| {
                ReverseSampler::<2>::step(&ddpm, &mut (), i, x_t.clone(), output.clone(), z)
                    .unwrap()
                    .x_prev
            });
            assert_close(
                &format!("mean at t = {t}"),
                &values(d_mean.clone()),
                &values(p_mean.clone()),
                1e-5,
                1e-6,
            );
            let sigma = process.posterior_variance()[t].sqrt();
            let want: Vec<f64> = values(noise.clone()).iter().map(|z| z * sigma).collect();
            assert_close(
                &format!("DDIM noise scale at t = {t}"),
                &values(d_noisy - d_mean),
                &want,
                1e-4,
                1e-6,
            );
            assert_close(
                &format!("DDPM noise scale at t = {t}"),
                &values(p_noisy - p_mean),
                &want,
                1e-4,
                1e-6,
            );
        }
    });
}

/// A model of the user's own (a struct with class conditioning) plugs into the samplers
/// through classifier-free guidance: ε̃ = (1 + w) ε(x, c) − w ε(x, ∅).
#[test]
fn guidance_combines_conditional_and_unconditional_outputs() {
    struct Conditional;
    impl Denoiser<2> for Conditional {
        fn denoise(
            &self,
            x_t: Tensor<2>,
            _t: Tensor<1, Int>,
            labels: Option<Tensor<1, Int>>,
        ) -> Tensor<2> {
            let n = x_t.dims()[0];
            let l = labels.expect("labels").float().reshape([n, 1]);
            x_t * 0.5 + l
        }

        fn denoise_fractional(
            &self,
            x_t: Tensor<2>,
            t: Tensor<1>,
            labels: Option<Tensor<1, Int>>,
        ) -> Option<Tensor<2>> {
            let n = x_t.dims()[0];
            let l = labels.expect("labels").float().reshape([n, 1]);
            Some(x_t * 0.5 + l + t.reshape([n, 1]))
        }
    }
    struct IntegerOnly;
    impl Denoiser<2> for IntegerOnly {
        fn denoise(
            &self,
            x_t: Tensor<2>,
            _: Tensor<1, Int>,
            _: Option<Tensor<1, Int>>,
        ) -> Tensor<2> {
            x_t
        }
    }
    on_each_device(|device| {
        let labels = Tensor::<1, Int>::from_ints([1, 2], device);
        let guided = Guided::new(&Conditional, labels, 0, 3.0).unwrap();
        let x = tensor(&[1.0, 2.0, 3.0, 4.0], [2, 2], device);
        let out = values(guided.denoise(x, Tensor::<1, Int>::from_ints([5, 5], device), None));
        // cond = 0.5x + c, uncond = 0.5x: guided = 0.5x + (1 + w)·c.
        assert_close(
            "guided",
            &out,
            &[0.5 + 4.0, 1.0 + 4.0, 1.5 + 8.0, 2.0 + 8.0],
            1e-6,
            1e-6,
        );
        // At fractional timesteps (the σ-grid samplers' `ModelTime::Fractional`): the same
        // combination, with each example's own t passed to both halves.
        let x = tensor(&[1.0, 2.0, 3.0, 4.0], [2, 2], device);
        let t = Tensor::<1>::from_floats([2.5, 7.25], device);
        let out = guided
            .denoise_fractional(x.clone(), t.clone(), None)
            .unwrap();
        assert_close(
            "guided, fractional t",
            &values(out),
            &[
                0.5 + 4.0 + 2.5,
                1.0 + 4.0 + 2.5,
                1.5 + 8.0 + 7.25,
                2.0 + 8.0 + 7.25,
            ],
            1e-6,
            1e-6,
        );
        let plain = Guided::new(
            &IntegerOnly,
            Tensor::<1, Int>::from_ints([1, 2], device),
            0,
            3.0,
        )
        .unwrap();
        assert!(plain.denoise_fractional(x, t, None).is_none());
        let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(20).init().unwrap());
        let ddim = DdimSampler::with_spacing(
            process,
            &Spacing::Linspace { steps: 5 },
            0.0,
            X0Options::default(),
        )
        .unwrap();
        let out = sample(
            &ddim,
            &guided,
            randn([2, 2], 1, device),
            SampleOptions::default(),
            |_, _| {},
        )
        .unwrap();
        assert!(values(out.sample).iter().all(|v| v.is_finite()));
    });
    assert!(
        Guided::new(
            &Conditional,
            Tensor::<1, Int>::from_ints([1], &Device::flex()),
            0,
            f64::NAN
        )
        .is_err()
    );
}

/// Bad timesteps and bad model outputs are errors, not panics.
#[test]
fn bad_sampler_input_is_an_error() {
    let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(50).init().unwrap());
    let x0 = X0Options::default();
    assert!(DdimSampler::new(process.clone(), vec![], 0.0, x0).is_err());
    assert!(DdimSampler::new(process.clone(), vec![10, 20], 0.0, x0).is_err());
    assert!(DdimSampler::new(process.clone(), vec![30, 30], 0.0, x0).is_err());
    let e = DdimSampler::new(process.clone(), vec![50, 10], 0.0, x0).unwrap_err();
    assert!(e.to_string().contains("timestep 50"), "{e}");
    assert!(DdimSampler::new(process.clone(), vec![10], -1.0, x0).is_err());
    let bad_threshold = X0Options {
        threshold: Some(burn_diffusion::sampler::DynamicThreshold {
            ratio: 1.5,
            max_value: 1.0,
        }),
        ..x0
    };
    assert!(DdpmSampler::new(process.clone(), VarianceKind::FixedSmall, bad_threshold).is_err());
    on_each_device(|device| {
        let ddpm = DdpmSampler::new(process.clone(), VarianceKind::FixedSmall, x0).unwrap();
        let wrong = |x_t: Tensor<2>, _t: Tensor<1, Int>| Tensor::cat(vec![x_t.clone(), x_t], 1);
        let e = sample(
            &ddpm,
            &wrong,
            randn([2, 3], 0, device),
            SampleOptions::default(),
            |_, _| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("model output"), "{e}");
        let e = ReverseSampler::<2>::step(
            &ddpm,
            &mut (),
            0,
            randn([2, 3], 0, device),
            randn([2, 3], 1, device),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs noise"), "{e}");
        assert!(
            ReverseSampler::<2>::step(
                &ddpm,
                &mut (),
                50,
                randn([2, 3], 0, device),
                randn([2, 3], 1, device),
                None
            )
            .is_err()
        );
    });
}

fn x0_options(prediction: &str, clip: &str) -> X0Options {
    X0Options {
        prediction: match prediction {
            "epsilon" => burn_diffusion::prediction::Prediction::Epsilon,
            "sample" => burn_diffusion::prediction::Prediction::Sample,
            _ => burn_diffusion::prediction::Prediction::Velocity,
        },
        clip: clip == "clip",
        clip_range: 1.0,
        threshold: None,
    }
}

/// Compares a step's x_prev and x̂_0 with diffusers' `prev_sample` and
/// `pred_original_sample` under `key`: f32 tensors against float64 diffusers, a few ulps of
/// values ≲ 10 (x̂_0 = x_t/√ᾱ_t reaches ~150 at t = 999 without clipping).
fn assert_step_matches(
    r: &crate::common::Reference,
    key: &str,
    step: burn_diffusion::sampler::StepOutput<2>,
) {
    let prev = r.get(&format!("{key}.prev_sample"));
    let x0 = r.get(&format!("{key}.pred_original_sample"));
    assert_close(
        &format!("{key}.prev_sample"),
        &values(step.x_prev),
        prev,
        2e-6,
        2e-6,
    );
    assert_close(
        &format!("{key}.pred_original_sample"),
        &values(step.x0),
        x0,
        2e-6,
        2e-6,
    );
}

/// Single steps against diffusers 0.42.1's `DDPMScheduler.step` and `DDIMScheduler.step`
/// (float64 tables; see tests/data/reference/README.md), for ε, x_0 and v predictions,
/// clipping on and off, both DDPM variances and DDIM η ∈ {0, 1} with the same noise.
#[test]
fn single_steps_match_diffusers() {
    let r = crate::common::Reference::load();
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    on_each_device(|device| {
        let t23 = |name: &str| tensor(r.get(name), [2, 3], device);
        let (x_t, output, noise) = (
            t23("ddpm.sample"),
            t23("ddpm.model_output"),
            t23("ddpm.noise"),
        );
        for p in ["epsilon", "sample", "v_prediction"] {
            for clip in ["clip", "noclip"] {
                for (v, kind) in [
                    ("fixed_small", VarianceKind::FixedSmall),
                    ("fixed_large", VarianceKind::FixedLarge),
                ] {
                    let ddpm =
                        DdpmSampler::new(process.clone(), kind, x0_options(p, clip)).unwrap();
                    for t in [999usize, 500, 1, 0] {
                        let key = format!("ddpm.{p}.{clip}.{v}.t{t}");
                        let step = ReverseSampler::<2>::step(
                            &ddpm,
                            &mut (),
                            999 - t,
                            x_t.clone(),
                            output.clone(),
                            Some(noise.clone()),
                        )
                        .unwrap();
                        assert_step_matches(&r, &key, step);
                    }
                }
                for eta in [0usize, 1] {
                    let timesteps: Vec<usize> = (0..50).rev().map(|k| 20 * k).collect();
                    let ddim = DdimSampler::new(
                        process.clone(),
                        timesteps,
                        eta as f64,
                        x0_options(p, clip),
                    )
                    .unwrap();
                    for t in [980usize, 500, 20, 0] {
                        let key = format!("ddim.{p}.{clip}.eta{eta}.t{t}");
                        let step = ReverseSampler::<2>::step(
                            &ddim,
                            &mut (),
                            (980 - t) / 20,
                            x_t.clone(),
                            output.clone(),
                            Some(noise.clone()),
                        )
                        .unwrap();
                        assert_step_matches(&r, &key, step);
                    }
                }
            }
        }
        // DDPM on 10 leading steps (diffusers' set_timesteps(10)): 800 → 700 is step 1 of
        // the respaced chain, whose β is 1 − ᾱ_800/ᾱ_700.
        let respaced = VpProcess::new(
            process
                .schedule()
                .respace(&Spacing::Leading {
                    steps: 10,
                    offset: 0,
                })
                .unwrap(),
        );
        let ddpm10 =
            DdpmSampler::new(respaced, VarianceKind::FixedSmall, X0Options::default()).unwrap();
        assert_eq!(ReverseSampler::<2>::model_timestep(&ddpm10, 1), 800);
        let step = ReverseSampler::<2>::step(
            &ddpm10,
            &mut (),
            1,
            x_t.clone(),
            output.clone(),
            Some(noise.clone()),
        )
        .unwrap();
        assert_close(
            "ddpm.respaced10.t800",
            &values(step.x_prev),
            r.get("ddpm.respaced10.t800.prev_sample"),
            2e-6,
            2e-6,
        );
    });
}

/// diffusers' own 10-step DDIM loop test: the dummy model x·t/(t + 1) from its
/// deterministic sample, float32 betas, clip_sample = True: sum |x| = 172.0067 (ε) and
/// 52.5302 (v), as diffusers asserts (to 1e-2), and every value within f32 precision of
/// diffusers' loop replayed in float64.
#[test]
fn diffusers_ddim_loop_is_reproduced() {
    let r = crate::common::Reference::load();
    let schedule = burn_diffusion::schedule::DiscreteSchedule::from_betas(
        r.get("linear.t1000.betas").to_vec(),
    )
    .unwrap();
    let process = VpProcess::new(schedule);
    let model = |x: Tensor<4>, t: Tensor<1, Int>| {
        let tf = t.float().reshape([-1, 1, 1, 1]);
        x * tf.clone() / (tf + 1.0)
    };
    on_each_device(|device| {
        let x_t = tensor(r.get("loop.sample"), [4, 3, 8, 8], device);
        for (p, name, want_sum) in [
            ("epsilon", "epsilon", 172.0067),
            ("v_prediction", "v", 52.5302),
        ] {
            let ddim = DdimSampler::with_spacing(
                process.clone(),
                &Spacing::Leading {
                    steps: 10,
                    offset: 0,
                },
                0.0,
                x0_options(p, "clip"),
            )
            .unwrap();
            assert_eq!(
                ReverseSampler::<4>::timesteps(&ddim)
                    .iter()
                    .map(|t| *t as f64)
                    .collect::<Vec<_>>(),
                r.get("loop.ddim10.timesteps")
            );
            let out = values(
                sample(
                    &ddim,
                    &model,
                    x_t.clone(),
                    SampleOptions::default(),
                    |_, _| {},
                )
                .unwrap()
                .sample,
            );
            let sum: f64 = out.iter().map(|v| v.abs()).sum();
            println!("diffusers DDIM loop ({name}): sum |x| = {sum:.4} (diffusers: {want_sum})");
            assert!((sum - want_sum).abs() < 1e-2, "{name}: sum |x| = {sum}");
            assert_close(
                &format!("loop {name}"),
                &out,
                r.get(&format!("loop.ddim10_f64.{name}.final")),
                1e-5,
                1e-6,
            );
        }
    });
}

/// x = A·x_T + B, an affine function of the starting noise (x_T ~ N(0, 1)): the exact
/// state of a deterministic sampler driven by the optimal model for Gaussian data.
#[derive(Clone, Copy)]
struct Affine(f64, f64);

impl Affine {
    fn scale(self, k: f64) -> Self {
        Affine(self.0 * k, self.1 * k)
    }
    fn plus(self, o: Affine) -> Self {
        Affine(self.0 + o.0, self.1 + o.1)
    }
    fn shift(self, c: f64) -> Self {
        Affine(self.0, self.1 + c)
    }
}

/// The deterministic samplers (Heun on the probability-flow ODE, DPM-Solver++(2M)) and
/// the stochastic SDE samplers (Euler–Maruyama, annealed Langevin on the VE process),
/// driven by the optimal model for N(m, s²) data, match the exact moments of their own
/// chains (each update re-derived here in scalar f64 from its paper), within Monte-Carlo
/// error (n = 20,000, 5 standard errors); the chains' distances to (m, s²) at the
/// samplers' intended step counts are printed and bounded.
#[test]
fn ode_sde_and_multistep_samplers_reproduce_gaussian_data() {
    // Unit-scale data: the chains are close to the data at the intended step counts.
    check_ode_sde_samplers(0.4, 1.0, true);
    // Narrow data (s = 0.3): the samplers still reproduce their chains exactly, but the
    // few-step chains are biased by their coarse final steps (printed, not bounded).
    check_ode_sde_samplers(0.4, 0.3, false);
}

fn check_ode_sde_samplers(m: f64, s: f64, near_data: bool) {
    let n = 20_000;
    let device = Device::flex();
    let x0 = X0Options::default();
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    let model = optimal_model(&process, m, s);
    let (a, sd) = (
        process.signal_scale().to_vec(),
        process.noise_std().to_vec(),
    );
    let (c, d2) = (
        process.transition_scale().to_vec(),
        process.transition_variance().to_vec(),
    );
    let big_v = |t: usize| a[t] * a[t] * s * s + sd[t] * sd[t];
    // ε̂ and x̂_0 of the optimal model as affine maps.
    let eps_hat = |x: Affine, t: usize| x.shift(-a[t] * m).scale(sd[t] / big_v(t));
    let x0_hat = |x: Affine, t: usize| x.shift(-a[t] * m).scale(a[t] * s * s / big_v(t)).shift(m);
    let check = |name: &str, got: Vec<f64>, mean_exact: f64, var_exact: f64, allowed: f64| {
        let allowed = near_data.then_some(allowed);
        check_chain_moments(name, &got, (mean_exact, var_exact), (m, s), allowed);
    };
    let run = |sampler: &dyn ReverseSamplerDyn| sampler.run(&model, n, 3, &device);

    // DPM-Solver++(2M), 20 linspace steps (Lu et al. 2022, Algorithm 2).
    let dpm = burn_diffusion::sampler::DpmSolverSampler::diffusers_default(process.clone(), 20, x0)
        .unwrap();
    let grid: Vec<usize> = ReverseSampler::<2>::timesteps(&dpm).to_vec();
    assert_eq!((grid.len(), grid[0], grid[19]), (20, 999, 50));
    let lambda = |t: usize| (a[t] / sd[t]).ln();
    let (mut x, mut prev): (Affine, Option<(Affine, f64)>) = (Affine(1.0, 0.0), None);
    for (i, &t) in grid.iter().enumerate() {
        let x0t = x0_hat(x, t);
        match grid.get(i + 1) {
            None => x = x0t,
            Some(&u) => {
                let h = lambda(u) - lambda(t);
                let d = match prev {
                    Some((x0p, hp)) => x0t
                        .scale(1.0 + 0.5 / (hp / h))
                        .plus(x0p.scale(-0.5 / (hp / h))),
                    None => x0t,
                };
                prev = Some((x0t, h));
                x = x.scale(sd[u] / sd[t]).plus(d.scale(-a[u] * (-h).exp_m1()));
            }
        }
    }
    check(
        "DPM-Solver++(2M), 20 steps",
        run(&dpm),
        x.1,
        x.0 * x.0,
        0.05,
    );

    // Heun on the probability-flow ODE, 50 linspace steps (99 model evaluations).
    let spacing = Spacing::Linspace { steps: 50 };
    let heun = burn_diffusion::sampler::HeunSampler::new(process.clone(), &spacing, x0).unwrap();
    let mut grid = spacing.timesteps(1000).unwrap();
    grid.reverse();
    let f = |x: Affine, t: usize| {
        x.scale(1.0 - c[t])
            .plus(eps_hat(x, t).scale(-0.5 * d2[t] / sd[t]))
    };
    let mut x = Affine(1.0, 0.0);
    for (i, &t) in grid.iter().enumerate() {
        match grid.get(i + 1) {
            Some(&u) => {
                let h = (t - u) as f64;
                let k1 = f(x, t);
                let trial = x.plus(k1.scale(h));
                x = x.plus(k1.plus(f(trial, u)).scale(0.5 * h));
            }
            None => x = x.plus(f(x, t).scale((t + 1) as f64)),
        }
    }
    check(
        "Heun probability-flow ODE, 50 steps",
        run(&heun),
        x.1,
        x.0 * x.0,
        0.1,
    );

    // Euler–Maruyama on the reverse VP SDE, all 1000 steps: mean' = k·mean + const,
    // var' = k²·var + h d².
    let em = burn_diffusion::sampler::EulerMaruyamaSampler::new(
        process.clone(),
        &Spacing::Linspace { steps: 1000 },
        x0,
    )
    .unwrap();
    let (mut mean, mut var) = (0.0, 1.0);
    for t in (0..1000).rev() {
        let k = 1.0 + (1.0 - c[t]) - d2[t] / big_v(t);
        mean = k * mean + d2[t] * a[t] * m / big_v(t);
        var = k * k * var + d2[t];
    }
    check(
        "Euler–Maruyama reverse SDE, 1000 steps",
        run(&em),
        mean,
        var,
        0.05,
    );

    // Annealed Langevin on the VE process (NCSN levels σ from 0.01 to 1, 10 levels),
    // 100 steps per level, ε = 2e-5, then the denoising step; optimal model for VE:
    // ε̂ = σ (x − m)/(s² + σ²).
    let ve = burn_diffusion::process::VeConfig::new().init().unwrap();
    let sig = ve.sigmas().to_vec();
    let ve_model = {
        let sig = sig.clone();
        move |x_t: Tensor<2>, t: Tensor<1, Int>| {
            let ts = Timesteps::read(&t, sig.len()).unwrap();
            let k = ts
                .gather_map(|t| sig[t] / (s * s + sig[t] * sig[t]), &x_t)
                .unwrap();
            (x_t - m) * k
        }
    };
    let langevin =
        burn_diffusion::sampler::AnnealedLangevinSampler::new(ve, 100, 2e-5, true, x0).unwrap();
    let (mut mean, mut var) = (0.0, 1.0);
    for t in (0..sig.len()).rev() {
        let alpha = 2e-5 * (sig[t] / sig[0]).powi(2);
        let vt = s * s + sig[t] * sig[t];
        for _ in 0..100 {
            let k = 1.0 - 0.5 * alpha / vt;
            mean = k * mean + 0.5 * alpha * m / vt;
            var = k * k * var + alpha;
        }
    }
    // Denoising: x̂_0 = x − σ_min ε̂ = x − σ_min²(x − m)/V_min.
    let k = 1.0 - sig[0] * sig[0] / (s * s + sig[0] * sig[0]);
    let (mean, var) = (k * mean + (1.0 - k) * m, k * k * var);
    let got = values(
        sample_from_noise(
            &langevin,
            &ve_model,
            [n, 1],
            &device,
            SampleOptions {
                seed: 3,
                keep_trajectory: false,
                ..SampleOptions::default()
            },
            |_, _| {},
        )
        .unwrap()
        .sample,
    );
    check(
        "annealed Langevin (VE), 10 × 100 steps",
        got,
        mean,
        var,
        0.1,
    );
}

/// Dynamic thresholding (Saharia et al. 2022) against its definition computed here in
/// f64: s = clamp(quantile_0.995(|x̂_0|), 1, max), x̂_0 ← clamp(x̂_0, −s, s)/s per example,
/// with torch.quantile's linear interpolation. An x_0-predicting model's output is x̂_0.
#[test]
fn dynamic_thresholding_matches_its_definition() {
    let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(10).init().unwrap());
    let threshold = burn_diffusion::sampler::DynamicThreshold {
        ratio: 0.9,
        max_value: 2.5,
    };
    let options = X0Options {
        prediction: burn_diffusion::prediction::Prediction::Sample,
        clip: true,
        clip_range: 1.0,
        threshold: Some(threshold),
    };
    let ddim = DdimSampler::new(process, vec![5], 0.0, options).unwrap();
    let rows = [
        vec![0.1, -0.5, 3.0, 0.7, -4.0, 0.2, 1.5, -1.2, 0.0, 2.2],
        vec![0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, 0.95],
    ];
    on_each_device(|device| {
        let flat: Vec<f64> = rows.concat();
        let out = tensor(&flat, [2, 10], device);
        let step =
            ReverseSampler::<2>::step(&ddim, &mut (), 0, out.clone() * 0.0, out, None).unwrap();
        let got = values(step.x0);
        for (r, row) in rows.iter().enumerate() {
            let mut abs: Vec<f64> = row.iter().map(|v| v.abs()).collect();
            abs.sort_by(f64::total_cmp);
            let pos = 0.9 * 9.0;
            let q = abs[8] + (abs[9] - abs[8]) * (pos - 8.0);
            let s = q.clamp(1.0, 2.5);
            let want: Vec<f64> = row.iter().map(|v| v.clamp(-s, s) / s).collect();
            assert_close(
                &format!("row {r}"),
                &got[r * 10..(r + 1) * 10],
                &want,
                1e-6,
                1e-6,
            );
        }
    });
}

/// The driver reports progress once per step and keeps x_T plus every step's sample and
/// x̂_0 when asked; every sampler rejects bad timestep lists.
#[test]
fn driver_progress_trajectory_and_timestep_errors() {
    let process = VpProcess::new(
        ScheduleConfig::new()
            .with_num_timesteps(100)
            .init()
            .unwrap(),
    );
    let heun = burn_diffusion::sampler::HeunSampler::new(
        process.clone(),
        &Spacing::Linspace { steps: 5 },
        X0Options::default(),
    )
    .unwrap();
    let model = |x: Tensor<2>, _t: Tensor<1, Int>| x * 0.5;
    let device = Device::flex();
    let mut calls = Vec::new();
    let options = SampleOptions {
        seed: 1,
        keep_trajectory: true,
        ..SampleOptions::default()
    };
    let out = sample(
        &heun,
        &model,
        randn([3, 2], 0, &device),
        options,
        |done, total| calls.push((done, total)),
    )
    .unwrap();
    let visits = ReverseSampler::<2>::timesteps(&heun).len();
    assert_eq!(visits, 9, "Heun: 1 + 2 visits per later step");
    assert_eq!(calls, (1..=visits).map(|d| (d, visits)).collect::<Vec<_>>());
    assert_eq!(
        (out.trajectory.len(), out.predicted_x0.len()),
        (visits + 1, visits)
    );
    assert_eq!(values(out.trajectory[visits].clone()), values(out.sample));
    let x0 = X0Options::default();
    assert!(
        burn_diffusion::sampler::DpmSolverSampler::with_timesteps(process.clone(), vec![], x0)
            .is_err()
    );
    assert!(
        burn_diffusion::sampler::DpmSolverSampler::with_timesteps(process.clone(), vec![3, 7], x0)
            .is_err()
    );
    assert!(
        burn_diffusion::sampler::DpmSolverSampler::with_timesteps(
            process.clone(),
            vec![100, 7],
            x0
        )
        .is_err()
    );
    assert!(
        burn_diffusion::sampler::DpmSolverSampler::diffusers_default(process.clone(), 100, x0)
            .is_err()
    );
    assert!(
        burn_diffusion::sampler::EulerMaruyamaSampler::new(
            process.clone(),
            &Spacing::Trailing { steps: 0 },
            x0
        )
        .is_err()
    );
    assert!(
        burn_diffusion::sampler::HeunSampler::new(process.clone(), &Spacing::Ddim(99), x0).is_err()
    );
    let ve = burn_diffusion::process::VeConfig::new().init().unwrap();
    assert!(
        burn_diffusion::sampler::AnnealedLangevinSampler::new(ve.clone(), 0, 2e-5, true, x0)
            .is_err()
    );
    assert!(burn_diffusion::sampler::AnnealedLangevinSampler::new(ve, 10, -1.0, true, x0).is_err());
}

/// DDPM with a learned variance: the second half of the output selects σ_t² in
/// [β̃_t, β_t]; at v = −1 and v = +1 the step equals the fixed-variance steps.
#[test]
fn ddpm_learned_variance_spans_the_fixed_ones() {
    let process = VpProcess::new(
        ScheduleConfig::new()
            .with_num_timesteps(100)
            .init()
            .unwrap(),
    );
    let x0 = X0Options::default();
    let learned = DdpmSampler::new(process.clone(), VarianceKind::LearnedRange, x0).unwrap();
    let small = DdpmSampler::new(process.clone(), VarianceKind::FixedSmall, x0).unwrap();
    let large = DdpmSampler::new(process, VarianceKind::FixedLarge, x0).unwrap();
    on_each_device(|device| {
        let x_t = randn::<2>([2, 3], 1, device);
        let eps = randn::<2>([2, 3], 2, device);
        let noise = randn::<2>([2, 3], 3, device);
        for i in [0usize, 40, 98] {
            let step = |s: &DdpmSampler<VpProcess>, out: Tensor<2>| {
                values(
                    ReverseSampler::<2>::step(s, &mut (), i, x_t.clone(), out, Some(noise.clone()))
                        .unwrap()
                        .x_prev,
                )
            };
            let with_v = |v: f64| Tensor::cat(vec![eps.clone(), eps.zeros_like() + v], 1);
            assert_close(
                "v = -1",
                &step(&learned, with_v(-1.0)),
                &step(&small, eps.clone()),
                1e-5,
                1e-6,
            );
            assert_close(
                "v = +1",
                &step(&learned, with_v(1.0)),
                &step(&large, eps.clone()),
                1e-5,
                1e-6,
            );
        }
    });
}

#[test]
fn device_noise_has_the_distribution_of_host_noise() {
    // DDIM with η = 1 and a model that predicts zero noise: the sample is a fixed linear
    // map of x_T and every step's noise, N(0, c²) with the same c whichever source draws
    // the noise. 20,000 values estimate the variance to ±1% (one sd).
    on_each_device(|device| {
        let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
        let ddim = DdimSampler::with_spacing(
            process,
            &Spacing::Linspace { steps: 10 },
            1.0,
            X0Options::default(),
        )
        .unwrap();
        let model = |x_t: Tensor<2>, _t: Tensor<1, Int>| x_t.zeros_like();
        let run = |noise: NoiseSource| {
            let options = SampleOptions {
                seed: 5,
                noise,
                ..SampleOptions::default()
            };
            let out = sample_from_noise(&ddim, &model, [20_000, 1], device, options, |_, _| {});
            values(out.unwrap().sample)
        };
        let (host, on_device) = (run(NoiseSource::Host), run(NoiseSource::Device));
        assert_ne!(host, on_device, "the two sources draw different numbers");
        let ((m_host, v_host), (m_dev, v_dev)) = (moments(&host), moments(&on_device));
        let sd = v_host.sqrt();
        assert!(
            v_host > 1.0,
            "the map scales the noise up (1/a_t'), variance {v_host}"
        );
        assert!(m_host.abs() < 5.0 * sd / 141.4 && m_dev.abs() < 5.0 * sd / 141.4);
        assert!((v_dev / v_host - 1.0).abs() < 0.05, "{v_dev} vs {v_host}");
    });
}
