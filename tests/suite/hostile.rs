//! The hostile-input suite: hundreds of bad inputs across the public API, each run inside
//! `catch_unwind`. Every case either expects a clear error (a `DiffusionError` whose
//! message names what is wrong) or a documented behaviour that it checks; the test fails
//! on any panic, any bad input that is accepted, and any wrong documented result, and
//! prints the counts (`BURN_DIFFUSION_HOSTILE_VERBOSE=1` prints every error message).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::{
    Denoiser, DiffusionError, ForwardProcess, Loss, Posterior, ReverseSampler,
    data::{ImageDataset, Toy2d},
    gaussian::{
        Gaussian, discretized_gaussian_log_likelihood, gaussian_log_likelihood, normal_kl,
        standard_normal_cdf,
    },
    image::{write_png_grid, write_png_grid_scaled},
    loss::{
        Decoder, HybridLoss, LossSecondMomentResampler, SimpleLoss, TimestepSampler,
        UniformSampler, VlbLoss, Weighting, uniform_timestep_values, uniform_timesteps,
    },
    metrics::sliced_wasserstein,
    model::{MlpConfig, TimeEmbedding, UNetConfig, timestep_embedding},
    noise::SeededRng,
    prediction::{Parameterization, Prediction, VarianceKind, x0_from_eps},
    process::{VeConfig, VeProcess, VpProcess},
    sampler::{
        AnnealedLangevinSampler, DdimSampler, DdpmSampler, DpmSolverSampler, DynamicThreshold,
        EulerMaruyamaSampler, Guided, HeunSampler, SampleOptions, Visits, X0Options,
        sample_from_noise,
    },
    schedule::{BetaSchedule, DiscreteSchedule, ScheduleConfig, Spacing, Timesteps},
    train::{Checkpoint, Ema, FitOptions, TrainConfig, Trainer, clip_grad_norm},
    vae::{DiagonalGaussian, Likelihood, VaeConfig},
};

use crate::common::tensor;

type Outcome = Result<bool, DiffusionError>;
type Run = Box<dyn FnOnce() -> Outcome>;

/// What a case expects.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// A `DiffusionError`.
    Error,
    /// `Ok(true)`: the documented behaviour holds.
    Holds,
}

#[derive(Default)]
struct Suite {
    cases: Vec<(String, Expect, Run)>,
}

impl Suite {
    /// A bad input that must be refused with an error.
    fn error<T: 'static>(
        &mut self,
        name: impl Into<String>,
        f: impl FnOnce() -> burn_diffusion::Result<T> + 'static,
    ) {
        self.cases.push((
            name.into(),
            Expect::Error,
            Box::new(move || f().map(|_| true)),
        ));
    }

    /// A bad-looking input with a documented result, which `f` checks.
    fn holds(&mut self, name: impl Into<String>, f: impl FnOnce() -> Outcome + 'static) {
        self.cases.push((name.into(), Expect::Holds, Box::new(f)));
    }

    /// Runs every case; returns (clear errors, documented behaviours, failures).
    fn run(self) -> (usize, usize, Vec<String>) {
        let (mut errors, mut documented, mut failures) = (0, 0, Vec::new());
        for (name, expect, run) in self.cases {
            match (expect, catch_unwind(AssertUnwindSafe(run))) {
                (_, Err(panic)) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!("{name}: PANIC {message}"));
                }
                (Expect::Error, Ok(Err(e))) if e.to_string().len() >= 20 => {
                    if std::env::var_os("BURN_DIFFUSION_HOSTILE_VERBOSE").is_some() {
                        println!("{name}: {e}");
                    }
                    errors += 1
                }
                (Expect::Error, Ok(Err(e))) => failures.push(format!("{name}: vague error {e}")),
                (Expect::Error, Ok(Ok(_))) => failures.push(format!("{name}: accepted")),
                (Expect::Holds, Ok(Ok(true))) => documented += 1,
                (Expect::Holds, Ok(Ok(false))) => {
                    failures.push(format!("{name}: wrong documented result"))
                }
                (Expect::Holds, Ok(Err(e))) => failures.push(format!("{name}: error {e}")),
            }
        }
        (errors, documented, failures)
    }
}

fn flex() -> Device {
    Device::flex()
}

fn process(t: usize) -> VpProcess {
    VpProcess::new(ScheduleConfig::new().with_num_timesteps(t).init().unwrap())
}

fn ints(values: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::<1, Int>::from_ints(values, device)
}

fn zeros2(shape: [usize; 2]) -> Tensor<2> {
    Tensor::zeros(shape, &flex())
}

fn zeros4(shape: [usize; 4]) -> Tensor<4> {
    Tensor::zeros(shape, &flex())
}

/// A model that predicts 0.1·x_t.
fn shrink(x: Tensor<2>, _t: Tensor<1, Int>) -> Tensor<2> {
    x * 0.1
}

/// A model whose output has one column too many.
fn too_wide(x: Tensor<2>, _t: Tensor<1, Int>) -> Tensor<2> {
    let n = x.dims()[0];
    Tensor::cat(vec![x, Tensor::zeros([n, 1], &flex())], 1)
}

/// A fresh empty directory for one case.
fn scratch(name: &str) -> PathBuf {
    crate::common::scratch("hostile", name)
}

const BAD_FLOATS: [f64; 4] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0];

fn schedules(s: &mut Suite) {
    s.error("schedule: 0 timesteps", || {
        ScheduleConfig::new().with_num_timesteps(0).init()
    });
    s.error("schedule: 2^60 timesteps (beyond memory)", || {
        ScheduleConfig::new().with_num_timesteps(1 << 60).init()
    });
    let pairs = [
        (f64::NAN, 0.02),
        (1e-4, f64::NAN),
        (f64::INFINITY, 0.02),
        (1e-4, f64::INFINITY),
        (-0.1, 0.02),
        (0.0, 0.02),
        (0.02, 1e-4),
        (0.5, 1.5),
    ];
    for (beta_start, beta_end) in pairs {
        for (kind, schedule) in [
            (
                "linear",
                BetaSchedule::Linear {
                    beta_start,
                    beta_end,
                },
            ),
            (
                "scaled_linear",
                BetaSchedule::ScaledLinear {
                    beta_start,
                    beta_end,
                },
            ),
            (
                "sigmoid",
                BetaSchedule::Sigmoid {
                    beta_start,
                    beta_end,
                },
            ),
        ] {
            s.error(
                format!("schedule: {kind} {beta_start}..{beta_end}"),
                move || ScheduleConfig::new().with_beta_schedule(schedule).init(),
            );
        }
    }
    for (cosine_s, max_beta) in [
        (f64::NAN, 0.999),
        (-1.0, 0.999),
        (f64::INFINITY, 0.999),
        (0.008, 0.0),
        (0.008, f64::NAN),
        (0.008, 1.5),
        (0.008, -0.1),
    ] {
        s.error(
            format!("schedule: cosine s={cosine_s} max_beta={max_beta}"),
            move || {
                ScheduleConfig::new()
                    .with_beta_schedule(BetaSchedule::Cosine {
                        s: cosine_s,
                        max_beta,
                    })
                    .init()
            },
        );
    }
    let bad_betas: [(&str, Vec<f64>); 8] = [
        ("empty", vec![]),
        ("NaN", vec![0.1, f64::NAN]),
        ("zero", vec![0.0, 0.1]),
        ("negative", vec![-0.1, 0.1]),
        ("above 1", vec![0.1, 1.1]),
        ("1 before the end", vec![1.0, 0.5]),
        ("infinite", vec![0.1, f64::INFINITY]),
        ("subnormal then 1 twice", vec![1e-310, 1.0, 1.0]),
    ];
    for (what, betas) in bad_betas {
        let b = betas.clone();
        s.error(format!("from_betas: {what}"), move || {
            DiscreteSchedule::from_betas(b)
        });
        s.error(format!("custom schedule: {what}"), move || {
            ScheduleConfig::new()
                .with_num_timesteps(betas.len().max(1))
                .with_beta_schedule(BetaSchedule::Custom(betas))
                .init()
        });
    }
    s.error("custom schedule: length differs from num_timesteps", || {
        ScheduleConfig::new()
            .with_num_timesteps(10)
            .with_beta_schedule(BetaSchedule::Custom(vec![0.1; 5]))
            .init()
    });
    s.holds(
        "schedule: betas ending at exactly 1 (zero terminal SNR)",
        || {
            let schedule = DiscreteSchedule::from_betas(vec![0.1, 0.5, 1.0])?;
            Ok(process_alpha_bar_last(&VpProcess::new(schedule)) == 0.0)
        },
    );
    let spacings = [
        (
            "leading 0 steps",
            Spacing::Leading {
                steps: 0,
                offset: 0,
            },
        ),
        (
            "leading 101 steps",
            Spacing::Leading {
                steps: 101,
                offset: 0,
            },
        ),
        (
            "leading offset overflow",
            Spacing::Leading {
                steps: 10,
                offset: usize::MAX,
            },
        ),
        (
            "leading offset past the end",
            Spacing::Leading {
                steps: 10,
                offset: 10,
            },
        ),
        ("trailing 0", Spacing::Trailing { steps: 0 }),
        ("trailing 101", Spacing::Trailing { steps: 101 }),
        ("linspace 0", Spacing::Linspace { steps: 0 }),
        ("linspace 101", Spacing::Linspace { steps: 101 }),
        ("sections empty", Spacing::Sections(vec![])),
        ("sections zero", Spacing::Sections(vec![0])),
        ("sections too many", Spacing::Sections(vec![200])),
        (
            "sections zero-length section",
            Spacing::Sections(vec![1; 101]),
        ),
        ("ddim 0", Spacing::Ddim(0)),
        ("ddim 101", Spacing::Ddim(101)),
    ];
    for (what, spacing) in spacings {
        let sp = spacing.clone();
        s.error(format!("spacing: {what}"), move || sp.timesteps(100));
        let sp = spacing.clone();
        s.error(format!("respace: {what}"), move || {
            ScheduleConfig::new()
                .with_num_timesteps(100)
                .init()?
                .respace(&sp)
        });
        s.error(format!("spaced visits: {what}"), move || {
            Visits::spaced(&process(100), &spacing)
        });
    }
    s.error("spacing of a 0-step process", || {
        Spacing::Ddim(1).timesteps(0)
    });
    for (what, sigma_min, sigma_max, t) in [
        ("0 timesteps", 0.01, 1.0, 0),
        ("sigma_min 0", 0.0, 1.0, 10),
        ("sigma_min negative", -1.0, 1.0, 10),
        ("sigma_min NaN", f64::NAN, 1.0, 10),
        ("sigma_max NaN", 0.01, f64::NAN, 10),
        ("sigma_max infinite", 0.01, f64::INFINITY, 10),
        ("sigma_max below sigma_min", 1.0, 0.01, 10),
    ] {
        s.error(format!("VE config: {what}"), move || {
            VeConfig::new()
                .with_num_timesteps(t)
                .with_sigma_min(sigma_min)
                .with_sigma_max(sigma_max)
                .init()
        });
    }
    for (what, sigmas) in [
        ("empty", vec![]),
        ("NaN", vec![0.1, f64::NAN]),
        ("negative", vec![-0.1, 1.0]),
        ("zero", vec![0.0, 1.0]),
        ("decreasing", vec![1.0, 0.1]),
        ("infinite", vec![0.1, f64::INFINITY]),
    ] {
        s.error(format!("VE sigmas: {what}"), move || {
            VeProcess::from_sigmas(sigmas)
        });
    }
    for (what, values) in [
        ("negative", vec![-1i64, 0]),
        ("T", vec![0, 100]),
        ("i32::MAX", vec![i32::MAX as i64]),
        ("i32::MIN", vec![i32::MIN as i64]),
    ] {
        let v = values.clone();
        s.error(format!("Timesteps::from_values {what}"), move || {
            Timesteps::from_values(&v, 100)
        });
        s.error(format!("Timesteps::read {what}"), move || {
            Timesteps::read(&ints(&values, &flex()), 100)
        });
    }
    s.error("Timesteps::new out of range, checked", || {
        Timesteps::new(vec![5, 100]).check_range(100)
    });
}

fn process_alpha_bar_last(p: &VpProcess) -> f64 {
    *p.signal_scale().last().unwrap()
}

fn forward_and_posterior(s: &mut Suite) {
    let p = process(10);
    for (what, x0, t, noise) in [
        ("t out of range", [2, 3], vec![1, 10], [2, 3]),
        ("t negative", [2, 3], vec![-1, 0], [2, 3]),
        ("t longer than the batch", [2, 3], vec![1, 2, 3], [2, 3]),
        ("t shorter than the batch", [2, 3], vec![1], [2, 3]),
        ("noise of another shape", [2, 3], vec![1, 2], [2, 4]),
        ("noise of another batch", [2, 3], vec![1, 2], [3, 3]),
    ] {
        let (pp, tt) = (p.clone(), t.clone());
        s.error(format!("q_sample: {what}"), move || {
            pp.q_sample(zeros2(x0), &ints(&tt, &flex()), zeros2(noise))
        });
        let (pp, tt) = (p.clone(), t.clone());
        s.error(format!("q_sample rank 4: {what}"), move || {
            let [a, b] = x0;
            let [c, d] = noise;
            pp.q_sample(
                zeros4([a, b, 2, 2]),
                &ints(&tt, &flex()),
                zeros4([c, d, 2, 2]),
            )
        });
        if noise == x0 {
            let (pp, tt) = (p.clone(), t.clone());
            s.error(format!("q_marginal: {what}"), move || {
                pp.q_marginal(zeros2(x0), &ints(&tt, &flex()))
            });
            let (pp, tt) = (p.clone(), t.clone());
            s.error(format!("q_posterior: {what}"), move || {
                pp.q_posterior(zeros2(x0), zeros2(x0), &ints(&tt, &flex()))
            });
        }
    }
    let pp = p.clone();
    s.error("q_posterior: x_t of another shape", move || {
        pp.q_posterior(zeros2([2, 3]), zeros2([2, 4]), &ints(&[1, 2], &flex()))
    });
    let pp = p.clone();
    s.holds(
        "q_sample: a batch of 0 examples is an empty result",
        move || {
            let x = pp.q_sample(zeros2([0, 3]), &Timesteps::new(vec![]), zeros2([0, 3]))?;
            Ok(x.dims() == [0, 3])
        },
    );
    for prediction in [
        Prediction::Epsilon,
        Prediction::Sample,
        Prediction::Velocity,
    ] {
        let pp = p.clone();
        s.error(
            format!("to_x0_eps {prediction:?}: output of another shape"),
            move || {
                prediction.to_x0_eps(&pp, zeros2([2, 3]), &ints(&[1, 2], &flex()), zeros2([2, 4]))
            },
        );
        let pp = p.clone();
        s.error(
            format!("to_x0_eps {prediction:?}: t of another length"),
            move || prediction.to_x0_eps(&pp, zeros2([2, 3]), &ints(&[1], &flex()), zeros2([2, 3])),
        );
        let pp = p.clone();
        s.error(
            format!("target {prediction:?}: noise of another shape"),
            move || prediction.target(&pp, zeros2([2, 3]), zeros2([2, 4]), &ints(&[1, 2], &flex())),
        );
    }
    let zero_snr = VpProcess::new(
        ScheduleConfig::new()
            .with_num_timesteps(10)
            .with_rescale_zero_terminal_snr(true)
            .init()
            .unwrap(),
    );
    let z = zero_snr.clone();
    s.error("x_0 from ε where ᾱ_t = 0", move || {
        x0_from_eps(&z, zeros2([1, 2]), &ints(&[9], &flex()), zeros2([1, 2]))
    });
    s.holds("x_0 from v where ᾱ_t = 0 is finite", move || {
        let (x0, _) = Prediction::Velocity.to_x0_eps(
            &zero_snr,
            tensor(&[1.0, 2.0], [1, 2], &flex()),
            &ints(&[9], &flex()),
            tensor(&[0.5, -0.5], [1, 2], &flex()),
        )?;
        let v = x0.into_data().try_to_vec::<f32>().unwrap();
        Ok(v == vec![-0.5, 0.5])
    });
}

fn gaussians(s: &mut Suite) {
    let dev = flex;
    s.error("normal_kl: shapes that do not broadcast", move || {
        normal_kl(
            zeros2([2, 3]),
            zeros2([2, 3]),
            zeros2([2, 4]),
            zeros2([2, 3]),
        )
    });
    s.error(
        "gaussian_log_likelihood: shapes that do not broadcast",
        move || gaussian_log_likelihood(zeros2([2, 3]), zeros2([3, 3]), zeros2([2, 3])),
    );
    s.error(
        "discretized log-likelihood: shapes that do not broadcast",
        move || discretized_gaussian_log_likelihood(zeros2([2, 3]), zeros2([2, 3]), zeros2([2, 2])),
    );
    s.error("Gaussian::sample_with: noise of another shape", move || {
        let g = Gaussian {
            mean: zeros2([2, 3]),
            variance: zeros2([2, 3]),
            log_variance: zeros2([2, 3]),
        };
        g.sample_with(zeros2([2, 2]))
    });
    s.holds("standard_normal_cdf at ±∞ is 0 and 1", move || {
        let x = tensor(&[f64::NEG_INFINITY, f64::INFINITY], [2], &dev());
        let v = standard_normal_cdf(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        Ok(v == vec![0.0, 1.0])
    });
}

fn losses(s: &mut Suite) {
    let p = process(10);
    for gamma in [f64::NAN, 0.0, -1.0, f64::INFINITY] {
        let pp = p.clone();
        s.error(format!("SimpleLoss: min-SNR γ = {gamma}"), move || {
            SimpleLoss::new(pp, Prediction::Epsilon, Weighting::MinSnr { gamma })
        });
    }
    for prediction in [
        Prediction::Epsilon,
        Prediction::Sample,
        Prediction::Velocity,
    ] {
        let loss = SimpleLoss::new(p.clone(), prediction, Weighting::Uniform).unwrap();
        let l = loss.clone();
        s.error(
            format!("SimpleLoss {prediction:?}: model output too wide"),
            move || l.loss_seeded(&too_wide, zeros2([4, 2]), 0),
        );
        let l = loss.clone();
        s.error(
            format!("SimpleLoss {prediction:?}: a batch of 0"),
            move || l.loss_seeded(&shrink, zeros2([0, 2]), 0),
        );
        for (what, x0, t, noise) in [
            ("t of another length", [4, 2], vec![1, 2], [4, 2]),
            ("t out of range", [2, 2], vec![1, 10], [2, 2]),
            ("noise of another shape", [2, 2], vec![1, 2], [2, 3]),
        ] {
            let l = loss.clone();
            s.error(format!("SimpleLoss {prediction:?}: {what}"), move || {
                l.loss(&shrink, zeros2(x0), &Timesteps::new(t), zeros2(noise))
            });
        }
        let l = loss.clone();
        s.error(
            format!("SimpleLoss {prediction:?}: Mlp of another dim"),
            move || {
                let mlp = MlpConfig::new(3).init(&flex())?;
                l.loss_seeded(&mlp, zeros2([4, 2]), 0)
            },
        );
    }
    for variance in [
        VarianceKind::FixedSmall,
        VarianceKind::FixedLarge,
        VarianceKind::LearnedRange,
    ] {
        let parameterization = Parameterization::new().with_variance(variance);
        for decoder in [Decoder::Discretized, Decoder::Gaussian] {
            let vlb = VlbLoss::new(p.clone(), parameterization, decoder);
            let l = vlb.clone();
            s.error(
                format!("VlbLoss {variance:?} {decoder:?}: output too wide"),
                move || l.loss_seeded(&too_wide, zeros2([4, 2]), 0),
            );
            let l = vlb.clone();
            s.error(
                format!("VlbLoss {variance:?} {decoder:?}: batch of 0"),
                move || l.loss_seeded(&shrink, zeros2([0, 2]), 0),
            );
        }
        let hybrid = HybridLoss::new(p.clone(), parameterization, Decoder::Discretized);
        let h = hybrid.clone();
        s.error(format!("HybridLoss {variance:?}: batch of 0"), move || {
            h.loss_seeded(&shrink, zeros2([0, 2]), 0)
        });
        for lambda in BAD_FLOATS {
            let h = hybrid.clone();
            s.error(
                format!("HybridLoss {variance:?}: λ = {lambda}"),
                move || h.with_lambda(lambda),
            );
        }
    }
    let learned = Parameterization::new().with_variance(VarianceKind::LearnedRange);
    let l = VlbLoss::new(p.clone(), learned, Decoder::Gaussian);
    s.error("VlbLoss: learned range on rank-1 data", move || {
        let model = |x: Tensor<1>, _t: Tensor<1, Int>| x;
        l.loss_seeded(&model, Tensor::<1>::zeros([4], &flex()), 0)
    });
    let l = VlbLoss::new(p.clone(), learned, Decoder::Gaussian);
    s.error(
        "VlbLoss: learned range, model output of C channels",
        move || l.loss_seeded(&shrink, zeros2([4, 2]), 0),
    );
    s.error("UniformSampler: 0 timesteps", || UniformSampler::new(0));
    for (what, t, history, prob) in [
        ("0 timesteps", 0, 10, 0.001),
        ("history 0", 10, 0, 0.001),
        ("uniform_prob 0", 10, 10, 0.0),
        ("uniform_prob above 1", 10, 10, 1.5),
        ("uniform_prob NaN", 10, 10, f64::NAN),
    ] {
        s.error(format!("LossSecondMomentResampler: {what}"), move || {
            LossSecondMomentResampler::with_options(t, history, prob)
        });
    }
    s.holds(
        "resampler: out-of-range timesteps and non-finite losses are ignored",
        || {
            let mut r = LossSecondMomentResampler::with_options(2, 1, 0.5)?;
            r.update(&[5, 0, 1], &[1.0, f64::NAN, f64::INFINITY]);
            Ok(!r.warmed_up() && r.weights() == vec![1.0, 1.0])
        },
    );
    s.holds("resampler: draws stay in range once warmed up", || {
        let mut r = LossSecondMomentResampler::with_options(3, 1, 0.01)?;
        r.update(&[0, 1, 2], &[0.0, 0.0, 1e300]);
        let (t, w) = r.sample(100, &mut SeededRng::new(1));
        Ok(r.warmed_up() && t.iter().all(|&t| t < 3) && w.iter().all(|w| w.is_finite()))
    });
    s.error("uniform_timesteps: 0 timesteps", || {
        uniform_timesteps(4, 0, 0, &flex())
    });
    s.error("uniform_timestep_values: 0 timesteps", || {
        uniform_timestep_values(4, 0, 0)
    });
    s.holds("uniform_timestep_values: 0 draws are empty", || {
        Ok(uniform_timestep_values(0, 10, 0)?.is_empty())
    });
    let pp = p.clone();
    s.error("bound: batch of 0", move || {
        let vlb = VlbLoss::new(pp, Parameterization::new(), Decoder::Discretized);
        vlb.evaluate_bound_seeded(&shrink, zeros2([0, 2]), 0, |_, _| ())
    });
    let pp = p.clone();
    s.error("bound: model output too wide", move || {
        let vlb = VlbLoss::new(pp, Parameterization::new(), Decoder::Discretized);
        vlb.evaluate_bound_seeded(&too_wide, zeros2([2, 2]), 0, |_, _| ())
    });
}

fn models(s: &mut Suite) {
    type Edit = fn(UNetConfig) -> UNetConfig;
    let configs: [(&str, Edit); 29] = [
        ("in_channels 0", |c| UNetConfig {
            in_channels: 0,
            ..c
        }),
        ("out_channels 0", |c| UNetConfig {
            out_channels: 0,
            ..c
        }),
        ("base_channels 0", |c| c.with_base_channels(0)),
        ("base_channels 1", |c| c.with_base_channels(1)),
        ("no levels", |c| c.with_channel_multipliers(vec![])),
        ("multiplier 0", |c| c.with_channel_multipliers(vec![1, 0])),
        ("33 levels", |c| c.with_channel_multipliers(vec![1; 33])),
        ("64 levels", |c| c.with_channel_multipliers(vec![1; 64])),
        ("res_blocks 0", |c| c.with_res_blocks(0)),
        ("resolution 0", |c| UNetConfig { resolution: 0, ..c }),
        ("resolution not divisible", |c| UNetConfig {
            resolution: 6,
            ..c
        }),
        ("norm_groups 0", |c| c.with_norm_groups(0)),
        ("norm_groups not dividing", |c| c.with_norm_groups(3)),
        ("attention at a missing resolution", |c| {
            c.with_attention_resolutions(vec![5])
        }),
        ("dropout negative", |c| c.with_dropout(-0.1)),
        ("dropout 1", |c| c.with_dropout(1.0)),
        ("dropout NaN", |c| c.with_dropout(f64::NAN)),
        ("multiplier overflow", |c| {
            c.with_channel_multipliers(vec![1, usize::MAX])
        }),
        ("base_channels beyond memory", |c| {
            c.with_base_channels(1 << 24).with_norm_groups(1)
        }),
        ("base_channels 2^62", |c| {
            c.with_base_channels(1 << 62)
                .with_norm_groups(1)
                .with_channel_multipliers(vec![1, 3])
        }),
        ("num_classes beyond memory", |c| {
            c.with_num_classes(Some(usize::MAX / 8))
        }),
        ("res_blocks beyond memory", |c| c.with_res_blocks(1 << 40)),
        ("norm_eps 0", |c| c.with_norm_eps(Some(0.0))),
        ("norm_eps NaN", |c| c.with_norm_eps(Some(f64::NAN))),
        ("attention_head_dim 0", |c| {
            c.with_attention_head_dim(Some(0))
        }),
        ("attention_head_dim not dividing", |c| {
            c.with_attention_head_dim(Some(5))
        }),
        ("freq_shift at half the width", |c| {
            c.with_time_embedding(Some(TimeEmbedding::new(false, 16.0)))
        }),
        ("freq_shift NaN", |c| {
            c.with_time_embedding(Some(TimeEmbedding::new(true, f64::NAN)))
        }),
        ("downsample_padding 2", |c| {
            c.with_downsample_padding(Some(2))
        }),
    ];
    for (what, edit) in configs {
        s.error(format!("UNetConfig: {what}"), move || {
            edit(UNetConfig::digits()).init(&flex())
        });
    }
    let unet = UNetConfig::digits()
        .with_num_classes(Some(3))
        .init(&flex())
        .unwrap();
    for (what, shape, t, labels) in [
        ("wrong channels", [2, 3, 8, 8], 2, None),
        ("resolution 5", [2, 1, 5, 5], 2, None),
        ("width 7", [2, 1, 8, 7], 2, None),
        ("height 0", [2, 1, 0, 8], 2, None),
        ("batch of 0", [0, 1, 8, 8], 0, None),
        ("t of another length", [2, 1, 8, 8], 3, None),
        ("labels of another length", [2, 1, 8, 8], 2, Some(3)),
    ] {
        let u = unet.clone();
        s.error(format!("UNet::try_denoise: {what}"), move || {
            let labels = labels.map(|n: usize| Tensor::<1, Int>::zeros([n], &flex()));
            u.try_denoise(zeros4(shape), Tensor::zeros([t], &flex()), labels)
        });
    }
    let u = unet.clone();
    s.holds("UNet::try_denoise: 16×8 input is fine", move || {
        let out = u.try_denoise(zeros4([1, 1, 16, 8]), ints(&[3], &flex()), None)?;
        Ok(out.dims() == [1, 1, 16, 8])
    });
    let u = unet.clone();
    s.error("SimpleLoss with a UNet: wrong channels", move || {
        let loss = SimpleLoss::new(process(10), Prediction::Epsilon, Weighting::Uniform)?;
        loss.loss_seeded(&u, zeros4([2, 3, 8, 8]), 0)
    });
    for (what, config) in [
        ("dim 0", MlpConfig::new(0)),
        ("hidden 0", MlpConfig::new(2).with_hidden(0)),
        ("layers 0", MlpConfig::new(2).with_layers(0)),
        ("time_embedding 0", MlpConfig::new(2).with_time_embedding(0)),
        ("time_embedding 1", MlpConfig::new(2).with_time_embedding(1)),
        ("out_dim 0", MlpConfig::new(2).with_out_dim(Some(0))),
        (
            "hidden beyond memory",
            MlpConfig::new(2).with_hidden(1 << 40),
        ),
        ("dim overflow", MlpConfig::new(usize::MAX)),
    ] {
        s.error(format!("MlpConfig: {what}"), move || config.init(&flex()));
    }
    let mlp = MlpConfig::new(2).init(&flex()).unwrap();
    for (what, shape, t) in [
        ("wrong dim", [3, 3], 3),
        ("batch of 0", [0, 2], 0),
        ("t of another length", [3, 2], 2),
    ] {
        let m = mlp.clone();
        s.error(format!("Mlp::try_denoise: {what}"), move || {
            m.try_denoise(zeros2(shape), Tensor::zeros([t], &flex()), None)
        });
    }
    for dim in [0, 1] {
        s.error(format!("timestep_embedding: dim {dim}"), move || {
            timestep_embedding(ints(&[1], &flex()), dim, &flex())
        });
    }
    s.holds("timestep_embedding: odd dim pads a zero column", || {
        let e = timestep_embedding(ints(&[0, 5], &flex()), 3, &flex())?;
        let v = e.into_data().try_to_vec::<f32>().unwrap();
        Ok(v.len() == 6 && v[2] == 0.0 && v[5] == 0.0)
    });
    s.error("UNet::load: a missing directory", || {
        burn_diffusion::model::UNet::load(scratch("unet-missing").join("nope"), &flex())
    });
    s.error("UNet::load: an empty directory", || {
        burn_diffusion::model::UNet::load(scratch("unet-empty"), &flex())
    });
    s.error("UNet::load: garbage files", || {
        let dir = scratch("unet-garbage");
        std::fs::write(dir.join("config.json"), b"{not json").unwrap();
        std::fs::write(dir.join("weights.bpk"), b"garbage").unwrap();
        burn_diffusion::model::UNet::load(dir, &flex())
    });
    s.error("UNet::load_weights: garbage file", || {
        let path = scratch("unet-weights").join("w.bpk");
        std::fs::write(&path, [0u8; 64]).unwrap();
        UNetConfig::digits().init(&flex())?.load_weights(path)
    });
    s.error("UNet::load_weights: weights of another config", || {
        let dir = scratch("unet-mlp-weights");
        let unet = UNetConfig::digits().init(&flex())?;
        let other = UNetConfig::digits().with_base_channels(16);
        other.init(&flex())?.save(&other, &dir)?;
        unet.load_weights(dir.join("weights.bpk"))
    });
}

fn samplers(s: &mut Suite) {
    let p = process(20);
    let thresholds = [
        (
            "ratio 0",
            DynamicThreshold {
                ratio: 0.0,
                max_value: 1.0,
            },
        ),
        (
            "ratio 1.5",
            DynamicThreshold {
                ratio: 1.5,
                max_value: 1.0,
            },
        ),
        (
            "ratio NaN",
            DynamicThreshold {
                ratio: f64::NAN,
                max_value: 1.0,
            },
        ),
        (
            "max 0.5",
            DynamicThreshold {
                ratio: 0.9,
                max_value: 0.5,
            },
        ),
        (
            "max ∞",
            DynamicThreshold {
                ratio: 0.9,
                max_value: f64::INFINITY,
            },
        ),
        (
            "max NaN",
            DynamicThreshold {
                ratio: 0.9,
                max_value: f64::NAN,
            },
        ),
    ];
    for (what, th) in thresholds {
        let x0 = X0Options {
            threshold: Some(th),
            ..X0Options::default()
        };
        let pp = p.clone();
        s.error(format!("DDPM threshold {what}"), move || {
            DdpmSampler::new(pp, VarianceKind::FixedSmall, x0)
        });
        let pp = p.clone();
        s.error(format!("DDIM threshold {what}"), move || {
            DdimSampler::with_spacing(pp, &Spacing::Ddim(5), 0.0, x0)
        });
        let pp = p.clone();
        s.error(format!("DPM-Solver threshold {what}"), move || {
            DpmSolverSampler::diffusers_default(pp, 5, x0)
        });
        let pp = p.clone();
        s.error(format!("Heun threshold {what}"), move || {
            HeunSampler::new(pp, &Spacing::Ddim(5), x0)
        });
        let pp = p.clone();
        s.error(format!("Euler–Maruyama threshold {what}"), move || {
            EulerMaruyamaSampler::new(pp, &Spacing::Ddim(5), x0)
        });
        let pp = p.clone();
        s.error(format!("Langevin threshold {what}"), move || {
            AnnealedLangevinSampler::new(pp, 2, 0.1, true, x0)
        });
    }
    for (what, timesteps) in [
        ("empty", vec![]),
        ("repeated", vec![5, 5]),
        ("increasing", vec![3, 7]),
        ("out of range", vec![20, 3]),
    ] {
        let (pp, ts) = (p.clone(), timesteps.clone());
        s.error(format!("DDIM timesteps {what}"), move || {
            DdimSampler::new(pp, ts, 0.0, X0Options::default())
        });
        let (pp, ts) = (p.clone(), timesteps.clone());
        s.error(format!("DPM-Solver timesteps {what}"), move || {
            DpmSolverSampler::with_timesteps(pp, ts, X0Options::default())
        });
        let (pp, ts) = (p.clone(), timesteps.clone());
        s.error(format!("Visits::new {what}"), move || Visits::new(&pp, ts));
    }
    let pp = p.clone();
    s.error("Visits::with_repeats increasing", move || {
        Visits::with_repeats(&pp, vec![1, 2])
    });
    for eta in BAD_FLOATS {
        let pp = p.clone();
        s.error(format!("DDIM η = {eta}"), move || {
            DdimSampler::with_spacing(pp, &Spacing::Ddim(5), eta, X0Options::default())
        });
    }
    for steps in [0, 21] {
        let pp = p.clone();
        s.error(format!("DPM-Solver {steps} steps"), move || {
            DpmSolverSampler::diffusers_default(pp, steps, X0Options::default())
        });
        let pp = p.clone();
        s.error(format!("Heun {steps} steps"), move || {
            HeunSampler::new(pp, &Spacing::Trailing { steps }, X0Options::default())
        });
        let pp = p.clone();
        s.error(format!("Euler–Maruyama {steps} steps"), move || {
            EulerMaruyamaSampler::new(pp, &Spacing::Trailing { steps }, X0Options::default())
        });
    }
    for (what, per_level, step_size) in [
        ("0 steps per level", 0, 0.1),
        ("step size 0", 2, 0.0),
        ("step size NaN", 2, f64::NAN),
        ("step size negative", 2, -0.1),
        ("step size ∞", 2, f64::INFINITY),
    ] {
        let pp = p.clone();
        s.error(format!("Langevin: {what}"), move || {
            AnnealedLangevinSampler::new(pp, per_level, step_size, true, X0Options::default())
        });
    }
    let ddim =
        DdimSampler::with_spacing(p.clone(), &Spacing::Ddim(5), 1.0, X0Options::default()).unwrap();
    let options = SampleOptions::default();
    let d = ddim.clone();
    s.error("sample_from_noise: a shape of another rank", move || {
        sample_from_noise(&d, &shrink, [2, 2, 2], &flex(), options, |_, _| ())
    });
    let d = ddim.clone();
    s.error("sample_from_noise: a batch of 0", move || {
        sample_from_noise(&d, &shrink, [0, 2], &flex(), options, |_, _| ())
    });
    let d = ddim.clone();
    s.error("sample_from_noise: a shape beyond memory", move || {
        sample_from_noise(&d, &shrink, [1 << 30, 1 << 30], &flex(), options, |_, _| ())
    });
    let d = ddim.clone();
    s.error("sample_from_noise: an overflowing shape", move || {
        sample_from_noise(&d, &shrink, [usize::MAX, 2], &flex(), options, |_, _| ())
    });
    let d = ddim.clone();
    s.error("sample_from_noise: model output too wide", move || {
        sample_from_noise(&d, &too_wide, [3, 2], &flex(), options, |_, _| ())
    });
    let d = ddim.clone();
    s.error("sample_from_noise: Mlp of another dim", move || {
        let mlp = MlpConfig::new(3).init(&flex())?;
        sample_from_noise(&d, &mlp, [3, 2], &flex(), options, |_, _| ())
    });
    let unet = UNetConfig::digits()
        .with_num_classes(Some(2))
        .init(&flex())
        .unwrap();
    let image_ddim =
        DdimSampler::with_spacing(p.clone(), &Spacing::Ddim(2), 0.0, X0Options::default()).unwrap();
    let (d, u) = (image_ddim.clone(), unet.clone());
    s.error("sample_from_noise: UNet, wrong channels", move || {
        sample_from_noise(&d, &u, [1, 3, 8, 8], &flex(), options, |_, _| ())
    });
    let (d, u) = (image_ddim.clone(), unet.clone());
    s.error("sample_from_noise: UNet, resolution 9", move || {
        sample_from_noise(&d, &u, [1, 1, 9, 9], &flex(), options, |_, _| ())
    });
    let (d, u) = (image_ddim.clone(), unet.clone());
    s.error("Guided: fewer labels than examples", move || {
        let guided = Guided::new(&u, Tensor::<1, Int>::zeros([1], &flex()), 2, 1.0)?;
        sample_from_noise(&d, &guided, [2, 1, 8, 8], &flex(), options, |_, _| ())
    });
    let (d, u) = (image_ddim.clone(), unet.clone());
    s.error("Guided: wrong channels reach the UNet's check", move || {
        let guided = Guided::new(&u, Tensor::<1, Int>::zeros([1], &flex()), 2, 1.0)?;
        sample_from_noise(&d, &guided, [1, 2, 8, 8], &flex(), options, |_, _| ())
    });
    for scale in [f64::NAN, f64::INFINITY] {
        let u = unet.clone();
        s.error(format!("Guided: scale {scale}"), move || {
            Guided::new(&u, Tensor::<1, Int>::zeros([1], &flex()), 2, scale).map(|_| ())
        });
    }
    for (what, i, output, noise) in [
        ("index past the grid", 5, [1, 2], Some([1, 2])),
        ("noise missing where needed", 0, [1, 2], None),
        ("noise of another shape", 0, [1, 2], Some([2, 2])),
        ("model output of another shape", 0, [1, 3], Some([1, 2])),
    ] {
        let d = ddim.clone();
        s.error(format!("step: {what}"), move || {
            d.step(
                &mut (),
                i,
                zeros2([1, 2]),
                zeros2(output),
                noise.map(zeros2),
            )
        });
    }
    let ddpm =
        DdpmSampler::new(p.clone(), VarianceKind::LearnedRange, X0Options::default()).unwrap();
    let d = ddpm.clone();
    s.error("DDPM learned range: output of C channels", move || {
        d.step(&mut (), 0, zeros4([1, 1, 2, 2]), zeros4([1, 1, 2, 2]), None)
    });
    s.error("DDPM learned range: rank-1 data", move || {
        let x = Tensor::<1>::zeros([2], &flex());
        ddpm.step(&mut (), 0, x.clone(), x.clone(), Some(x))
    });
    let d = ddim.clone();
    s.error("Visits::get past the end", move || {
        ReverseSampler::<2>::visits(&d).get(5)
    });
    s.holds("Visits::next at the last visit is None", move || {
        let visits = ReverseSampler::<2>::visits(&ddim);
        Ok(visits.next(4).is_none() && visits.next(3).is_some())
    });
}

fn training(s: &mut Suite) {
    type Edit = fn(TrainConfig) -> TrainConfig;
    let configs: [(&str, Edit); 17] = [
        ("steps 0", |_| TrainConfig::new(0)),
        ("batch 0", |c| c.with_batch_size(0)),
        ("keep 0", |c| c.with_keep_checkpoints(0)),
        ("lr NaN", |c| c.with_learning_rate(f64::NAN)),
        ("lr 0", |c| c.with_learning_rate(0.0)),
        ("lr negative", |c| c.with_learning_rate(-1e-3)),
        ("lr ∞", |c| c.with_learning_rate(f64::INFINITY)),
        ("weight decay NaN", |c| c.with_weight_decay(f64::NAN)),
        ("weight decay negative", |c| c.with_weight_decay(-0.1)),
        ("clip 0", |c| c.with_grad_clip_norm(Some(0.0))),
        ("clip negative", |c| c.with_grad_clip_norm(Some(-1.0))),
        ("clip NaN", |c| c.with_grad_clip_norm(Some(f64::NAN))),
        ("clip ∞", |c| c.with_grad_clip_norm(Some(f64::INFINITY))),
        ("ema 1.5", |c| c.with_ema_decay(1.5)),
        ("ema negative", |c| c.with_ema_decay(-0.1)),
        ("ema NaN", |c| c.with_ema_decay(f64::NAN)),
        ("warmup beyond steps", |c| c.with_warmup_steps(usize::MAX)),
    ];
    for (what, edit) in configs {
        let config = edit(TrainConfig::new(10));
        if what == "warmup beyond steps" {
            s.holds(
                "TrainConfig: warmup longer than training ramps the whole run",
                move || {
                    config.validate()?;
                    let lr = config.learning_rate_at(5);
                    Ok(lr > 0.0 && lr < config.learning_rate)
                },
            );
        } else {
            s.error(format!("TrainConfig: {what}"), move || config.validate());
        }
    }
    let trainer = || {
        let loss = SimpleLoss::new(process(10), Prediction::Epsilon, Weighting::Uniform)?;
        let mlp = MlpConfig::new(2).with_hidden(8).init(&flex())?;
        Trainer::new(TrainConfig::new(4).with_batch_size(2), mlp, loss, &flex())
    };
    s.error("Trainer::new: invalid config", || {
        let loss = SimpleLoss::new(process(10), Prediction::Epsilon, Weighting::Uniform)?;
        let mlp = MlpConfig::new(2).init(&flex())?;
        Trainer::new(TrainConfig::new(4).with_batch_size(0), mlp, loss, &flex()).map(|_| ())
    });
    s.error("train_step: data of another dim", move || {
        trainer()?.train_step(&zeros2([8, 3]))
    });
    s.error("train_step: a dataset of 0 examples", move || {
        trainer()?.train_step(&zeros2([0, 2]))
    });
    s.error("fit: data of another dim", move || {
        trainer()?.fit(&zeros2([8, 3]), 2, &FitOptions::default())
    });
    s.holds(
        "fit: a log path in a missing directory is created",
        move || {
            let path = scratch("fit-log").join("missing").join("log.csv");
            let options = FitOptions {
                log_csv: Some(path.clone()),
                ..FitOptions::default()
            };
            trainer()?.fit(&zeros2([8, 2]), 2, &options)?;
            Ok(std::fs::read_to_string(path).is_ok_and(|log| log.lines().count() == 3))
        },
    );
    s.error("fit: a log path under a file", move || {
        let file = scratch("fit-log-file").join("file");
        std::fs::write(&file, b"x").unwrap();
        let options = FitOptions {
            log_csv: Some(file.join("log.csv")),
            ..FitOptions::default()
        };
        trainer()?.fit(&zeros2([8, 2]), 2, &options)
    });
    s.error("fit: log_every 0", move || {
        let options = FitOptions {
            log_every: 0,
            ..FitOptions::default()
        };
        trainer()?.fit(&zeros2([8, 2]), 2, &options)
    });
    s.error("fit: checkpoints under a file", move || {
        let file = scratch("fit-ckpt").join("file");
        std::fs::write(&file, b"x").unwrap();
        let options = FitOptions {
            checkpoint_dir: Some(file),
            ..FitOptions::default()
        };
        trainer()?.fit(&zeros2([8, 2]), 2, &options)
    });

    s.holds(
        "fit: a target step already reached trains nothing",
        move || {
            let mut t = trainer()?;
            t.fit(&zeros2([8, 2]), 2, &FitOptions::default())?;
            let summary = t.fit(&zeros2([8, 2]), 1, &FitOptions::default())?;
            Ok(summary.steps == 0 && t.step() == 2)
        },
    );
    for max_norm in [-1.0, 0.0, f64::NAN, f64::INFINITY] {
        s.error(format!("clip_grad_norm: max norm {max_norm}"), move || {
            let ad = flex().autodiff();
            let mlp = MlpConfig::new(2).with_hidden(4).init(&ad)?;
            let out = mlp.forward(Tensor::zeros([1, 2], &ad), ints(&[1], &ad));
            let grads = out.sum().backward();
            let mut grads = burn::optim::GradientsParams::from_grads(grads, &mlp);
            clip_grad_norm(&mut grads, &mlp, max_norm)
        });
    }
    for decay in [f64::NAN, 1.5, -0.1] {
        s.error(format!("Ema::new: decay {decay}"), move || {
            Ema::new(&MlpConfig::new(2).init(&flex())?, decay, false).map(|_| ())
        });
    }
    s.error("Ema::update: a model of other parameters", || {
        let mut ema = Ema::new(&MlpConfig::new(2).init(&flex())?, 0.9, false)?;
        ema.update(&MlpConfig::new(2).init(&flex())?)
    });
    s.error("Checkpoint::open: a missing directory", || {
        Checkpoint::open(scratch("ckpt-missing").join("step-1"))
    });
    s.error("Checkpoint::open: an empty directory", || {
        Checkpoint::open(scratch("ckpt-empty"))
    });
    s.error("Checkpoint::open: a file", || {
        let file = scratch("ckpt-file").join("step-1");
        std::fs::write(&file, b"x").unwrap();
        Checkpoint::open(file)
    });
    s.holds("Checkpoint::latest: no `latest` is None", || {
        Ok(Checkpoint::latest(scratch("latest-none"))?.is_none())
    });
    for (what, content) in [
        ("naming a missing step", "step-00000099"),
        ("empty", ""),
        ("a path outside the root", "../../etc"),
        ("binary garbage", "\u{0}\u{1}\u{2}"),
        ("a step with a path", "step-1/../../etc"),
        ("a step without digits", "step-"),
    ] {
        s.error(format!("Checkpoint::latest: `latest` {what}"), move || {
            let root = scratch(&format!("latest-{}", what.replace(' ', "-")));
            std::fs::write(root.join("latest"), content).unwrap();
            Checkpoint::latest(root)
        });
    }
}

fn data(s: &mut Suite) {
    let dev = flex;
    for (what, pixels, labels, shape, levels) in [
        ("a zero dimension", 4, 1, [1, 0, 4], 256),
        ("too few pixels", 15, 1, [1, 4, 4], 256),
        ("too many pixels", 17, 1, [1, 4, 4], 256),
        ("labels of another count", 32, 1, [1, 4, 4], 256),
        ("0 levels", 16, 1, [1, 4, 4], 0),
        ("1 level", 16, 1, [1, 4, 4], 1),
        ("overflowing shape", 16, 1, [usize::MAX, 2, 2], 256),
    ] {
        s.error(format!("ImageDataset::new: {what}"), move || {
            ImageDataset::new(vec![0.0; pixels], vec![0; labels], shape, levels)
        });
    }
    s.error("ImageDataset::new: a NaN pixel", || {
        let mut pixels = vec![0.0; 16];
        pixels[3] = f32::NAN;
        ImageDataset::new(pixels, vec![0], [1, 4, 4], 256)
    });
    let set = ImageDataset::new(vec![0.0; 48], vec![0, 1, 2], [1, 4, 4], 256).unwrap();
    for levels in [0, 1] {
        let d = set.clone();
        s.error(format!("quantized: {levels} levels"), move || {
            d.quantized(levels)
        });
    }
    let d = set.clone();
    s.error("subset: index out of range", move || d.subset(&[0, 3]));
    let d = set.clone();
    s.error("batch: no indices", move || d.batch(&[], &dev()));
    let d = set.clone();
    s.error("batch: index out of range", move || {
        d.batch(&[usize::MAX], &dev())
    });
    let d = set.clone();
    s.error("batch_labels: index out of range", move || {
        d.batch_labels(&[3], &dev())
    });
    for held_out in [0, 3, usize::MAX] {
        let d = set.clone();
        s.error(format!("split: hold out {held_out}"), move || {
            d.split(held_out, 0)
        });
    }
    let idx_cases: [(&str, Vec<u8>); 9] = [
        ("an empty file", vec![]),
        ("a short header", vec![0, 0, 8]),
        ("a wrong magic", vec![1, 2, 3, 4, 0, 0, 0, 1]),
        (
            "float data",
            vec![0, 0, 0x0d, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1],
        ),
        ("rank 1", vec![0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4]),
        (
            "truncated pixels",
            vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2],
        ),
        (
            "trailing bytes",
            vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7, 9],
        ),
        (
            "a huge claimed size",
            vec![
                0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
            ],
        ),
        (
            "a zero dimension",
            vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4],
        ),
    ];
    for (what, bytes) in idx_cases {
        s.error(format!("load_idx: {what}"), move || {
            let path = scratch(&format!("idx-{}", what.replace(' ', "-"))).join("images.idx");
            std::fs::write(&path, bytes).unwrap();
            ImageDataset::load_idx(&path, None)
        });
    }
    let images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 10, 200];
    for (what, labels) in [
        (
            "labels of another count",
            vec![0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3],
        ),
        ("labels of rank 3", images.clone()),
        ("labels truncated", vec![0, 0, 8, 1, 0, 0, 0, 2, 1]),
        ("a missing label file", vec![]),
    ] {
        let images = images.clone();
        s.error(format!("load_idx: {what}"), move || {
            let dir = scratch(&format!("idx-labels-{}", what.replace(' ', "-")));
            std::fs::write(dir.join("images.idx"), images).unwrap();
            let label_path = dir.join("labels.idx");
            if !labels.is_empty() {
                std::fs::write(&label_path, labels).unwrap();
            }
            ImageDataset::load_idx(dir.join("images.idx"), Some(&label_path))
        });
    }
    s.error("load_idx: a missing file", || {
        ImageDataset::load_idx(scratch("idx-missing").join("none.idx"), None)
    });
    s.error("load_idx: a directory", || {
        ImageDataset::load_idx(scratch("idx-dir"), None)
    });
    let row = |label: &str| {
        let pixels: Vec<String> = (0..64).map(|i| (i % 17).to_string()).collect();
        format!("{},{label}\n", pixels.join(","))
    };
    let good = row("3");
    for (what, content) in [
        ("an empty file", String::new()),
        ("a short row", "1,2,3\n".to_string()),
        ("a non-number", good.replacen('1', "x", 1)),
        ("a pixel above 16", good.replacen("16", "17", 1)),
        ("a negative pixel", good.replacen("16", "-1", 1)),
        ("a label above 9", row("10")),
        ("a NaN", good.replacen("16", "NaN", 1)),
        ("binary bytes", "\u{0}\u{1}\u{2}".to_string()),
        ("a long row", good.replace('\n', ",1\n")),
    ] {
        s.error(format!("load_digits: {what}"), move || {
            let path = scratch(&format!("digits-{}", what.replace(' ', "-"))).join("d.csv");
            std::fs::write(&path, content).unwrap();
            ImageDataset::load_digits(&path)
        });
    }
    s.error("load_digits: a missing file", || {
        ImageDataset::load_digits(scratch("digits-missing").join("none.csv"))
    });
    s.holds("Toy2d: 0 points is an empty tensor", move || {
        Ok(Toy2d::TwoMoons.sample_tensor(0, 1, &dev()).dims() == [0, 2])
    });
}

fn images_metrics_vae(s: &mut Suite) {
    let dir = || scratch("png");
    for (what, shape, columns, scale) in [
        ("a batch of 0", [0, 1, 4, 4], 2, 1),
        ("2 channels", [2, 2, 4, 4], 2, 1),
        ("4 channels", [2, 4, 4, 4], 2, 1),
        ("0 columns", [2, 1, 4, 4], 0, 1),
        ("scale 0", [2, 1, 4, 4], 2, 0),
        ("an overflowing scale", [2, 1, 4, 4], 2, usize::MAX),
        ("a scale beyond memory", [2, 1, 4, 4], 2, 1 << 20),
        ("zero height", [2, 1, 0, 4], 2, 1),
    ] {
        s.error(format!("write_png_grid: {what}"), move || {
            write_png_grid_scaled(dir().join("x.png"), zeros4(shape), columns, scale)
        });
    }
    s.holds(
        "write_png_grid: missing parent directories are created",
        move || {
            let path = dir().join("missing").join("x.png");
            write_png_grid(&path, zeros4([1, 1, 4, 4]), 1)?;
            Ok(path.exists())
        },
    );
    s.error("write_png_grid: a path under a file", move || {
        let file = dir().join("file");
        std::fs::write(&file, b"x").unwrap();
        write_png_grid(file.join("x.png"), zeros4([1, 1, 4, 4]), 1)
    });
    s.holds(
        "write_png_grid: NaN pixels are written black, not refused",
        move || {
            let path = dir().join("nan.png");
            let images = Tensor::<4>::full([1, 1, 2, 2], f32::NAN, &flex());
            write_png_grid(&path, images, 1)?;
            Ok(std::fs::metadata(path).is_ok_and(|m| m.len() > 0))
        },
    );
    for (what, x, y, dim, projections) in [
        ("dim 0", vec![0.0; 4], vec![0.0; 4], 0, 8),
        ("0 projections", vec![0.0; 4], vec![0.0; 4], 2, 0),
        (
            "length not a multiple of dim",
            vec![0.0; 5],
            vec![0.0; 4],
            2,
            8,
        ),
        ("empty x", vec![], vec![0.0; 4], 2, 8),
        ("empty y", vec![0.0; 4], vec![], 2, 8),
        ("a NaN", vec![f32::NAN, 0.0], vec![0.0; 2], 2, 8),
        ("an infinity", vec![f32::INFINITY, 0.0], vec![0.0; 2], 2, 8),
    ] {
        s.error(format!("sliced_wasserstein: {what}"), move || {
            sliced_wasserstein(&x, &y, dim, projections, 0)
        });
    }
    s.holds("SeededRng::next_below(0) is 0", || {
        Ok(SeededRng::new(1).next_below(0) == 0)
    });
    type Edit = fn(VaeConfig) -> VaeConfig;
    let configs: [(&str, Edit); 9] = [
        ("input_channels 0", |c| VaeConfig {
            input_channels: 0,
            ..c
        }),
        ("input_size 0", |c| VaeConfig { input_size: 0, ..c }),
        ("latent 0", |c| VaeConfig {
            latent_size: 0,
            ..c
        }),
        ("base 0", |c| c.with_base_channels(0)),
        ("levels 64", |c| c.with_levels(64)),
        ("levels 2^32 + 1", |c| c.with_levels((1 << 32) + 1)),
        ("size not divisible", |c| VaeConfig { input_size: 7, ..c }),
        ("Gaussian log-variance NaN", |c| {
            c.with_likelihood(Likelihood::Gaussian {
                log_variance: f64::NAN,
            })
        }),
        ("base beyond memory", |c| c.with_base_channels(1 << 30)),
    ];
    for (what, edit) in configs {
        s.error(format!("VaeConfig: {what}"), move || {
            edit(VaeConfig::digits()).init(&flex())
        });
    }
    s.holds("VaeConfig: levels 0 is a VAE without downsampling", || {
        let vae = VaeConfig::digits().with_levels(0).init(&flex())?;
        Ok(vae.reconstruct(zeros4([1, 1, 8, 8]))?.dims() == [1, 1, 8, 8])
    });
    let vae = VaeConfig::digits().init(&flex()).unwrap();
    let v = vae.clone();
    s.error("Vae::sample_prior: 0 samples", move || {
        v.sample_prior(0, 1, &flex())
    });
    let v = vae.clone();
    s.error("Vae::sample_prior: beyond memory", move || {
        v.sample_prior(1 << 40, 1, &flex())
    });
    let v = vae.clone();
    s.error("Vae::decode: a batch of 0", move || {
        v.decode(zeros2([0, 8]))
    });
    let v = vae.clone();
    s.error("Vae::encode: wrong shape", move || {
        v.encode(zeros4([2, 1, 4, 4]))
    });
    let v = vae.clone();
    s.error("Vae::encode: a batch of 0", move || {
        v.encode(zeros4([0, 1, 8, 8]))
    });
    let v = vae.clone();
    s.error("Vae::decode: wrong latent size", move || {
        v.decode(zeros2([2, 3]))
    });
    let v = vae.clone();
    s.error("Vae::elbo: noise of another shape", move || {
        v.elbo(zeros4([2, 1, 8, 8]), zeros2([3, 8]))
    });
    let v = vae.clone();
    s.error("Vae::importance_weighted: 0 samples", move || {
        v.importance_weighted_log_likelihood(zeros4([2, 1, 8, 8]), 0, 0)
    });
    s.error("DiagonalGaussian::new: shapes differ", || {
        DiagonalGaussian::new(zeros2([2, 3]), zeros2([2, 2]))
    });
    s.error("DiagonalGaussian::kl: shapes differ", || {
        let a = DiagonalGaussian::new(zeros2([2, 3]), zeros2([2, 3]))?;
        let b = DiagonalGaussian::new(zeros2([2, 2]), zeros2([2, 2]))?;
        a.kl(&b)
    });
    s.error("DiagonalGaussian::log_prob: x of another shape", || {
        DiagonalGaussian::new(zeros2([2, 3]), zeros2([2, 3]))?.log_prob(zeros2([2, 2]))
    });
    s.error("Likelihood::log_prob: output of another shape", || {
        Likelihood::Bernoulli.log_prob(zeros2([2, 3]), zeros2([2, 2]))
    });
}

/// `Ok(true)` when `result` is the `LabelOutOfRange` error of `label` at `index`.
fn label_error<T>(result: burn_diffusion::Result<T>, label: i64, index: usize) -> Outcome {
    match result {
        Err(DiffusionError::LabelOutOfRange {
            label: l, index: i, ..
        }) => Ok((l, i) == (label, index)),
        Err(e) => Err(e),
        Ok(_) => Ok(false),
    }
}

/// Class labels outside a model's class embedding: errors where the labels enter
/// (`check_labels`, `Guided::new`, `fit`, `train_step`), and, for a model called
/// directly, a NaN output for exactly the bad examples on every device (Burn's embedding
/// lookup panics on the CPU backends and is unchecked on a GPU).
fn labels(s: &mut Suite) {
    for (name, device) in crate::common::devices() {
        let on = device.clone();
        s.holds(
            format!("UNet::try_denoise: labels 4 and -1 of 0..4 give NaN ({name})"),
            move || {
                let device = on;
                let unet = UNetConfig::digits()
                    .with_num_classes(Some(3))
                    .init(&device)?;
                let x = Tensor::<4>::ones([3, 1, 8, 8], &device);
                let out = unet.try_denoise(
                    x,
                    ints(&[5, 5, 5], &device),
                    Some(ints(&[3, 4, -1], &device)),
                )?;
                let v = out.try_into_vec_as::<f32>().unwrap();
                let (good, bad) = v.split_at(64);
                Ok(good.iter().all(|x| x.is_finite()) && bad.iter().all(|x| x.is_nan()))
            },
        );
        s.holds(
            format!("Mlp::try_denoise: label 3 of 0..3 gives NaN ({name})"),
            move || {
                let mlp = MlpConfig::new(2).with_num_classes(Some(2)).init(&device)?;
                let x = Tensor::<2>::ones([2, 2], &device);
                let out =
                    mlp.try_denoise(x, ints(&[5, 5], &device), Some(ints(&[3, 2], &device)))?;
                let v = out.try_into_vec_as::<f32>().unwrap();
                Ok(v[..2].iter().all(|x| x.is_nan()) && v[2..].iter().all(|x| x.is_finite()))
            },
        );
    }
    let with_null = UNetConfig::digits()
        .with_num_classes(Some(3))
        .init(&flex())
        .unwrap();
    let no_null = UNetConfig::digits()
        .with_num_classes(Some(3))
        .with_null_label(Some(false))
        .init(&flex())
        .unwrap();
    let mlp = MlpConfig::new(2)
        .with_num_classes(Some(2))
        .init(&flex())
        .unwrap();
    let u = with_null.clone();
    s.holds("UNet::check_labels: 0..=3 with a null row", move || {
        Ok(u.check_labels(&[0, 1, 2, 3]).is_ok())
    });
    let u = with_null.clone();
    s.holds("UNet::check_labels: 4 with a null row", move || {
        label_error(u.check_labels(&[0, 4]), 4, 1)
    });
    let u = no_null.clone();
    s.holds("UNet::check_labels: 3 without a null row", move || {
        label_error(u.check_labels(&[2, 3]), 3, 1)
    });
    let u = with_null.clone();
    s.holds("UNet::check_labels: -1", move || {
        label_error(u.check_labels(&[-1]), -1, 0)
    });
    s.holds(
        "UNet::check_labels: an unconditional model ignores labels",
        || {
            let u = UNetConfig::digits().init(&flex())?;
            Ok(u.check_labels(&[-7, 1 << 40]).is_ok())
        },
    );
    let m = mlp.clone();
    s.holds("Mlp::check_labels: i64::MAX", move || {
        label_error(m.check_labels(&[0, 2, i64::MAX]), i64::MAX, 2)
    });
    let m = mlp.clone();
    s.holds("WithLabels::check_labels asks its model", move || {
        let wrapped = burn_diffusion::model::WithLabels::new(&m, ints(&[0], &flex()));
        label_error(wrapped.check_labels(&[3]), 3, 0)
    });
    let u = with_null.clone();
    s.holds("Guided::new: a guidance label out of range", move || {
        label_error(Guided::new(&u, ints(&[0, 5], &flex()), 3, 1.0), 5, 1)
    });
    let u = no_null.clone();
    s.holds("Guided::new: a null label the model lacks", move || {
        label_error(Guided::new(&u, ints(&[0, 2], &flex()), 3, 1.0), 3, 2)
    });
    let labeled_trainer = |config: TrainConfig| {
        let loss = SimpleLoss::new(process(10), Prediction::Epsilon, Weighting::Uniform)?;
        let mlp = MlpConfig::new(2)
            .with_hidden(8)
            .with_num_classes(Some(2))
            .init(&flex())?;
        Trainer::new(config.with_batch_size(4), mlp, loss, &flex())
    };
    let data = || Toy2d::TwoMoons.sample_tensor(8, 0, &flex());
    s.holds(
        "fit: a training label out of range, before any step",
        move || {
            let mut trainer = labeled_trainer(TrainConfig::new(4))?;
            let (x, y) = (data(), ints(&[0, 1, 2, 0, 1, 2, 0, 9], &flex()));
            let examples = burn_diffusion::train::Examples::labeled(&x, &y)?;
            let result = trainer.fit(examples, 4, &FitOptions::default());
            Ok(label_error(result, 9, 7)? && trainer.step() == 0)
        },
    );
    s.holds("fit: label dropout's null label out of range", move || {
        let config = TrainConfig::new(4)
            .with_p_uncond(0.5)
            .with_null_label(Some(3));
        let mut trainer = labeled_trainer(config)?;
        let (x, y) = (data(), ints(&[0, 1, 2, 0, 1, 2, 0, 1], &flex()));
        let examples = burn_diffusion::train::Examples::labeled(&x, &y)?;
        let result = trainer.fit(examples, 4, &FitOptions::default());
        Ok(label_error(result, 3, 8)? && trainer.step() == 0)
    });
    s.holds(
        "train_step: batch labels out of range, no step taken",
        move || {
            let mut trainer = labeled_trainer(TrainConfig::new(4))?;
            let (x, y) = (data(), ints(&[-3; 8], &flex()));
            let examples = burn_diffusion::train::Examples::labeled(&x, &y)?;
            let result = trainer.train_step(examples);
            Ok(label_error(result, -3, 0)? && trainer.step() == 0)
        },
    );
}

#[test]
fn hostile_inputs_are_errors_or_documented_never_panics() {
    let mut suite = Suite::default();
    schedules(&mut suite);
    forward_and_posterior(&mut suite);
    gaussians(&mut suite);
    losses(&mut suite);
    models(&mut suite);
    samplers(&mut suite);
    training(&mut suite);
    labels(&mut suite);
    data(&mut suite);
    images_metrics_vae(&mut suite);
    let total = suite.cases.len();
    let (errors, documented, failures) = suite.run();
    println!(
        "hostile inputs: {total} cases, {errors} clear errors, {documented} documented \
         behaviours, {} failures",
        failures.len()
    );
    let prefix = format!("burn-diffusion-hostile-{}-", std::process::id());
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total >= 300, "only {total} cases");
}
