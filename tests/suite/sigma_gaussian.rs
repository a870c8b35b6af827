//! The named samplers on Gaussian data N(m, s²) with the closed-form optimal model.
//!
//! For Gaussian data the optimal model is affine in x_t, and every sampler step is affine
//! in (x, x̂_0, noise), so a sampler's output is x_0 = A·x_T + B + Σ_j c_j·z_j exactly:
//! its mean is B and its variance A² + Σ c_j² (x_T, z_j ~ N(0, 1)). One batch gives all
//! of them — row 0 starts at x_T = 0 with no noise, row 1 at x_T = 1, row 2 + j at
//! x_T = 0 with z_j = 1 — so each sampler's distance to the data is measured without
//! Monte-Carlo error. A Monte-Carlo run through `sample_from_noise` checks the method on
//! the stochastic samplers.

use std::cmp::Ordering;

use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::{
    Denoiser, ForwardProcess, ReverseSampler,
    process::VpProcess,
    sampler::{
        AnySampler, ModelTime, SampleOptions, X0Options, call_model, sample_from_noise,
        sampler_by_name,
    },
    schedule::ScheduleConfig,
};

use crate::common::values;

const M: f64 = 0.4;
const S: f64 = 0.5;

/// The optimal ε-predictor for N(M, S²) data at level σ(t): ε̂ = s(x − a·M)/(a²S² + s²)
/// with a = 1/√(1 + σ²), s = σ·a; σ(t) interpolates log σ between timesteps (the inverse
/// of the σ grids' t(σ)).
struct Optimal {
    log_sigmas: Vec<f64>,
}

impl Optimal {
    fn new(process: &VpProcess) -> Self {
        let (a, s) = (process.signal_scale(), process.noise_std());
        Self {
            log_sigmas: (0..a.len()).map(|t| (s[t] / a[t]).ln()).collect(),
        }
    }

    fn eps<const D: usize>(&self, x: Tensor<D>, t: Tensor<1>) -> Tensor<D> {
        // One timestep per call (the samplers call the model at one t per batch).
        let t = values(t)[0];
        let lo = (t.floor() as usize).min(self.log_sigmas.len() - 2);
        let w = t - lo as f64;
        let sigma = (self.log_sigmas[lo] * (1.0 - w) + self.log_sigmas[lo + 1] * w).exp();
        let a = 1.0 / (1.0 + sigma * sigma).sqrt();
        let s = sigma * a;
        (x - a * M) * (s / (a * a * S * S + s * s))
    }
}

impl Denoiser<2> for Optimal {
    fn denoise(&self, x: Tensor<2>, t: Tensor<1, Int>, _: Option<Tensor<1, Int>>) -> Tensor<2> {
        self.eps(x, t.float())
    }

    fn denoise_fractional(
        &self,
        x: Tensor<2>,
        t: Tensor<1>,
        _: Option<Tensor<1, Int>>,
    ) -> Option<Tensor<2>> {
        Some(self.eps(x, t))
    }
}

/// The exact (mean, variance) of `sampler`'s output with `model` (see the module docs).
fn exact_moments(sampler: &AnySampler, model: &Optimal, device: &Device) -> (f64, f64) {
    let calls = ReverseSampler::<2>::timesteps(sampler).len();
    let rows = 2 + calls;
    let mut start = vec![0.0f32; rows];
    start[1] = 1.0;
    let mut x = Tensor::<1>::from_floats(start.as_slice(), device).reshape([rows, 1]);
    let mut state = Default::default();
    for i in 0..calls {
        let output = call_model(sampler, model, i, x.clone()).unwrap();
        let noise = ReverseSampler::<2>::needs_noise(sampler, i).then(|| {
            let mut z = vec![0.0f32; rows];
            z[2 + i] = 1.0;
            Tensor::<1>::from_floats(z.as_slice(), device).reshape([rows, 1])
        });
        x = sampler
            .step(&mut state, i, x, output, noise)
            .unwrap()
            .x_prev;
    }
    let out = values(x);
    let b = out[0];
    let variance = (out[1] - b).powi(2) + out[2..].iter().map(|v| (v - b).powi(2)).sum::<f64>();
    (b, variance)
}

fn named(process: &VpProcess, name: &str, steps: usize) -> AnySampler {
    sampler_by_name(
        name,
        process,
        steps,
        X0Options::default(),
        ModelTime::Fractional,
    )
    .unwrap()
}

/// The samplers of the table and their order of convergence (0: not asserted — the
/// SDE solvers, and the 3M solvers, whose first-order last step to σ = 0 dominates).
const SAMPLERS: &[(&str, u32)] = &[
    ("ddim", 1),
    ("euler", 1),
    ("euler_karras", 1),
    ("euler_a", 1),
    ("heun", 2),
    ("heun_karras", 2),
    ("dpmpp_2m", 2),
    ("dpmpp_2m_karras", 2),
    ("dpmpp_3m", 0),
    ("dpmpp_3m_karras", 0),
    ("dpmpp_2m_sde_karras", 0),
    ("dpmpp_3m_sde_karras", 0),
];

/// Each sampler's exact mean and variance error against the data at 10, 20 and 50 steps
/// (the table of docs/samplers.md, printed), with checks derived from the solvers'
/// orders rather than from the measured numbers:
///
/// - every error shrinks from 10 to 50 steps;
/// - a p-th order solver's variance error falls by (50/20)^p from 20 to 50 steps
///   (2.5× first order, 6.25× second); at least half that factor is required;
/// - the mean is within 1% of s of the data's mean at 20 steps and more, after the
///   deterministic samplers' exact offset from starting at N(0, 1) instead of q(x_T):
///   the exact flow maps x_T to m + s·(x_T − a_T·m)/√V_T, mean m − s·a_T·m/√V_T;
/// - the second-order solvers (Heun, DPM-Solver++(2M)) and DPM-Solver++(3M) at 20 steps
///   have a smaller variance error than DDIM (first order) at 50.
#[test]
fn named_samplers_approach_gaussian_data() {
    let device = Device::flex();
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    let model = Optimal::new(&process);
    let top = process.num_timesteps() - 1;
    let (a_t, s_t) = (process.signal_scale()[top], process.noise_std()[top]);
    let prior_offset = -S * a_t * M / (a_t * a_t * S * S + s_t * s_t).sqrt();
    let error = |name: &str, steps: usize| {
        let (mean, var) = exact_moments(&named(&process, name, steps), &model, &device);
        (mean - M, var / (S * S) - 1.0)
    };
    let mut table = vec!["| sampler | 10 steps | 20 steps | 50 steps |".to_string()];
    table.push("|---|---|---|---|".into());
    let ddim_50 = error("ddim", 50).1.abs();
    let mut failures = Vec::new();
    for &(name, order) in SAMPLERS {
        let row: Vec<(f64, f64)> = [10, 20, 50].iter().map(|&k| error(name, k)).collect();
        table.push(format!(
            "| {name} | {} |",
            row.iter()
                .map(|(dm, dv)| format!("{:+.2}% ({dm:+.4})", 100.0 * dv))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
        let stochastic = name.contains("sde") || name == "euler_a";
        let offset = if stochastic { 0.0 } else { prior_offset };
        if row[2].1.abs().partial_cmp(&row[0].1.abs()) != Some(Ordering::Less) {
            failures.push(format!(
                "{name}: variance error does not shrink from 10 to 50 steps"
            ));
        }
        if order > 0 && row[1].1.abs() / row[2].1.abs() < 0.5 * 2.5f64.powi(order as i32) {
            failures.push(format!("{name}: not order {order} from 20 to 50 steps"));
        }
        if row[1..]
            .iter()
            .any(|(dm, _)| (dm - offset).abs() > 0.01 * S)
        {
            failures.push(format!("{name}: mean off by more than 1% of s"));
        }
        let beats_ddim = name.starts_with("heun") || (name.starts_with("dpmpp") && !stochastic);
        if beats_ddim && row[1].1.abs().partial_cmp(&ddim_50) != Some(Ordering::Less) {
            failures.push(format!("{name}: at 20 steps not better than DDIM at 50"));
        }
    }
    eprintln!(
        "variance error (mean error) against N({M}, {S}²), exact; prior offset of the \
         deterministic samplers {prior_offset:+.4}:\n{}",
        table.join("\n")
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The exact moments are the moments of `sample_from_noise`'s output: 20,000 draws of the
/// stochastic samplers agree within 5 standard errors (mean: 5·σ/√n; variance:
/// 5·v·√(2/n)).
#[test]
fn exact_moments_match_monte_carlo_sampling() {
    let device = Device::flex();
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    let model = Optimal::new(&process);
    let n = 20_000;
    for (name, steps) in [
        ("euler_a", 20),
        ("dpmpp_2m_sde_karras", 15),
        ("heun_karras", 10),
    ] {
        let s = named(&process, name, steps);
        let (mean, var) = exact_moments(&s, &model, &device);
        let options = SampleOptions {
            seed: 11,
            ..SampleOptions::default()
        };
        let out = sample_from_noise(&s, &model, [n, 1], &device, options, |_, _| {}).unwrap();
        let v = values(out.sample);
        let got_mean = v.iter().sum::<f64>() / n as f64;
        let got_var = v.iter().map(|x| (x - got_mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let (se_mean, se_var) = ((var / n as f64).sqrt(), var * (2.0 / n as f64).sqrt());
        assert!(
            (got_mean - mean).abs() < 5.0 * se_mean && (got_var - var).abs() < 5.0 * se_var,
            "{name}: sampled ({got_mean:.4}, {got_var:.4}) vs exact ({mean:.4}, {var:.4})"
        );
    }
}
