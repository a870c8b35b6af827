//! The variational bound on Gaussian data x_0 ~ N(m, s²), where the optimal ε-predictor,
//! the true reverse variances and the negative log-likelihood are known in closed form:
//!
//! - the optimal ε-predictor is ε̂(x_t, t) = s_t (x_t − a_t m) / (a_t² s² + s_t²);
//! - the true reverse step q(x_{t−1} | x_t) is Gaussian with variance
//!   V β_t / (α_t V + β_t), V = Var(x_{t−1}) (at t = 0, Var(x_0 | x_1) with V = s²);
//! - Γ_t = E‖ε̂‖² = s_t² / (a_t² s² + s_t²), so Analytic-DPM's optimal variances are those
//!   true variances.
//!
//! The bound (continuous decoder, T = 1000) minus the exact NLL is measured per example
//! with the same data and noise for every variance choice, so differences are paired.

use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::{
    ForwardProcess, NoiseSchedule,
    loss::{Decoder, VlbLoss},
    noise::SeededRng,
    prediction::{
        DecoderVariance, EpsSecondMoment, Parameterization, Prediction, ReverseVariances,
        VarianceKind,
    },
    process::VpProcess,
    schedule::{DiscreteSchedule, ScheduleConfig, Timesteps},
};

use crate::common::{tensor, values};

/// N(m, s²) data on the default linear schedule (T = 1000), n examples.
struct GaussianData {
    m: f64,
    s: f64,
    schedule: DiscreteSchedule,
    process: VpProcess,
    x0: Tensor<2>,
    /// −log N(x_0; m, s²) per example, in nats.
    nll: Vec<f64>,
}

impl GaussianData {
    fn new(m: f64, s: f64, n: usize, device: &Device) -> Self {
        let schedule = ScheduleConfig::new().init().unwrap();
        let x0_values: Vec<f64> = SeededRng::new(5)
            .standard_normals(n)
            .iter()
            .map(|z| m + s * z)
            .collect();
        let nll = x0_values
            .iter()
            .map(|x| 0.5 * ((x - m) / s).powi(2) + s.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln())
            .collect();
        Self {
            m,
            s,
            process: VpProcess::new(schedule.clone()),
            schedule,
            x0: tensor(&x0_values, [n, 1], device),
            nll,
        }
    }

    fn steps(&self) -> usize {
        self.schedule.num_timesteps()
    }

    /// log Var(x_{t−1} | x_t) of the true reverse process, in f64.
    fn exact_log_variances(&self) -> Vec<f64> {
        let (a, sd) = (self.process.signal_scale(), self.process.noise_std());
        let betas = self.schedule.betas();
        (0..self.steps())
            .map(|t| {
                let v = match t {
                    0 => self.s * self.s,
                    _ => a[t - 1].powi(2) * self.s * self.s + sd[t - 1].powi(2),
                };
                (v * betas[t] / ((1.0 - betas[t]) * v + betas[t])).ln()
            })
            .collect()
    }

    /// The closed-form Γ_t = E‖ε̂(x_t, t)‖².
    fn gamma(&self, t: usize) -> f64 {
        let (a, sd) = (self.process.signal_scale()[t], self.process.noise_std()[t]);
        sd * sd / (a * a * self.s * self.s + sd * sd)
    }

    /// `scale` × the optimal ε-predictor.
    fn eps_hat(&self, x_t: Tensor<2>, t: &Tensor<1, Int>, scale: f64) -> Tensor<2> {
        let (a, sd) = (self.process.signal_scale(), self.process.noise_std());
        let ts = Timesteps::read(t, a.len()).unwrap();
        let (m, s) = (self.m, self.s);
        let k = ts
            .gather_map(
                |t| scale * sd[t] / (a[t] * a[t] * s * s + sd[t] * sd[t]),
                &x_t,
            )
            .unwrap();
        let c = ts.gather_map(|t| a[t] * m, &x_t).unwrap();
        (x_t - c) * k
    }

    /// Bound − NLL per example, in nats, for `vlb` and a model.
    fn gap(
        &self,
        vlb: &VlbLoss<VpProcess>,
        model: impl Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<2>,
    ) -> Vec<f64> {
        let eval = vlb
            .evaluate_bound_seeded(&model, self.x0.clone(), 17, |_, _| {})
            .unwrap();
        values(eval.total_bpd)
            .iter()
            .zip(&self.nll)
            .map(|(b, l)| b * std::f64::consts::LN_2 - l)
            .collect()
    }

    /// Bound − NLL with the optimal ε-predictor and fixed `variance` (or a table).
    fn fixed_gap(&self, variance: VarianceKind, table: Option<ReverseVariances>) -> Vec<f64> {
        let mut vlb = VlbLoss::new(self.process.clone(), param(variance), Decoder::Gaussian);
        if let Some(table) = table {
            vlb = vlb.with_reverse_variances(table).unwrap();
        }
        self.gap(&vlb, |x_t, t| self.eps_hat(x_t, &t, 1.0))
    }
}

fn param(variance: VarianceKind) -> Parameterization {
    Parameterization::new()
        .with_prediction(Prediction::Epsilon)
        .with_variance(variance)
}

/// Mean and standard error.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let mu = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    (mu, (var / v.len() as f64).sqrt())
}

/// Paired difference a − b: mean and standard error.
fn paired(a: &[f64], b: &[f64]) -> (f64, f64) {
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    mean_se(&diff)
}

/// - With the exact variance (given through `LearnedRange`), the model is the true reverse
///   process, so the full bound equals the exact NLL up to Monte-Carlo error and the tiny
///   prior mismatch.
/// - With a fixed variance (σ² = β̃_t) it is a strict upper bound, by the stated closed form.
/// - A worse predictor (0.9·ε̂) gives a larger bound.
#[test]
fn optimal_predictor_bound_is_tight_on_gaussian_data() {
    let device = Device::flex();
    let data = GaussianData::new(0.4, 0.3, 4096, &device);
    let steps = data.steps();
    let exact_log_var = data.exact_log_variances();
    let betas = data.schedule.betas().to_vec();
    // The LearnedRange value v that selects it: u = (log σ² − log β̃)/(log β − log β̃).
    let small = data.schedule.posterior_log_variance_clipped().to_vec();
    let v_exact: Vec<f64> = (0..steps)
        .map(|t| 2.0 * (exact_log_var[t] - small[t]) / (betas[t].ln() - small[t]) - 1.0)
        .collect();
    assert!(
        v_exact.iter().all(|v| (-1.0..=1.0).contains(v)),
        "exact variance outside [β̃, β]"
    );
    let learned = VlbLoss::new(
        data.process.clone(),
        param(VarianceKind::LearnedRange),
        Decoder::Gaussian,
    );
    let exact = data.gap(&learned, |x_t, t| {
        let ts = Timesteps::read(&t, steps).unwrap();
        let v = ts.gather_map(|t| v_exact[t], &x_t).unwrap();
        Tensor::cat(vec![data.eps_hat(x_t, &t, 1.0), v], 1)
    });
    let (gap, se) = mean_se(&exact);
    println!("exact reverse process: bound − NLL = {gap:.5} ± {se:.5} nats (T = 1000)");
    assert!(
        gap.abs() < 4.0 * se + 1e-3,
        "bound with the true reverse process is not the NLL: {gap} ± {se}"
    );
    let fixed = data.fixed_gap(VarianceKind::FixedSmall, None);
    let (gap_fixed, se_fixed) = mean_se(&fixed);
    // With the exact mean, each step's excess is KL(true reverse ‖ model) =
    // ½(r − 1 − log r), r = σ*_t² / σ_t², σ_t² = β̃_t (β̃_1 at t = 0): the expected gap.
    let predicted: f64 = (0..steps)
        .map(|t| {
            let r = (exact_log_var[t] - small[t]).exp();
            0.5 * (r - 1.0 - r.ln())
        })
        .sum();
    println!(
        "σ² = β̃_t: bound − NLL = {gap_fixed:.5} ± {se_fixed:.5} nats, closed form {predicted:.5}"
    );
    assert!(
        gap_fixed > 5.0 * se_fixed,
        "fixed-variance bound not above the NLL: {gap_fixed} ± {se_fixed}"
    );
    assert!(
        (gap_fixed - predicted).abs() < 4.0 * se_fixed,
        "gap {gap_fixed} ± {se_fixed} vs closed form {predicted}"
    );
    let small_vlb = VlbLoss::new(
        data.process.clone(),
        param(VarianceKind::FixedSmall),
        Decoder::Gaussian,
    );
    let worse = data.gap(&small_vlb, |x_t, t| data.eps_hat(x_t, &t, 0.9));
    let (diff_mean, diff_se) = paired(&worse, &fixed);
    println!("worse predictor (0.9 ε̂): bound larger by {diff_mean:.5} ± {diff_se:.5} nats");
    assert!(
        diff_mean > 5.0 * diff_se,
        "worse predictor not worse: {diff_mean} ± {diff_se}"
    );
}

/// Analytic-DPM on Gaussian data: the estimated Γ_t and the optimal variances equal their
/// closed forms within Monte-Carlo error (5 SE at every t), and the bound with them is the
/// NLL (the gap of the exact reverse process), below the bounds with β̃_t and β_t; the
/// decoder variance β_0 at t = 0 removes most of the fixed-β gap.
#[test]
fn analytic_variances_are_optimal_and_tighten_the_bound() {
    let device = Device::flex();
    let data = GaussianData::new(0.4, 0.3, 4096, &device);
    let process = &data.process;
    let model = |x_t: Tensor<2>, t: Tensor<1, Int>| data.eps_hat(x_t, &t, 1.0);
    let gamma = EpsSecondMoment::estimate(
        &model,
        process,
        param(VarianceKind::FixedSmall),
        &data.x0,
        4096,
        3,
    )
    .unwrap();
    let optimal = ReverseVariances::analytic(process, &gamma).unwrap();
    let exact = data.exact_log_variances();
    let (a, sd) = (process.signal_scale(), process.noise_std());
    let coef1 = data.schedule.posterior_mean_coef1();
    let (mut worst_gamma, mut worst_variance) = (0.0f64, 0.0f64);
    for t in 0..data.steps() {
        let se = gamma.standard_error(t).unwrap();
        let z = (gamma.get(t).unwrap() - data.gamma(t)) / se;
        worst_gamma = worst_gamma.max(z.abs());
        // σ*² is affine in Γ: its error is coef1² s²/a² times Γ's (f32 model output).
        let slope = (coef1[t] * sd[t] / a[t]).powi(2);
        let error = optimal.variances()[t] - exact[t].exp();
        worst_variance = worst_variance.max(error.abs() / (slope * se + 1e-7 * exact[t].exp()));
    }
    println!("Γ_t: worst |z| = {worst_gamma:.2}; σ*_t²: worst error / SE = {worst_variance:.2}");
    assert!(
        worst_gamma < 5.0,
        "Γ_t off its closed form: |z| = {worst_gamma}"
    );
    assert!(
        worst_variance < 5.0,
        "σ*_t² off its closed form: {worst_variance} SE"
    );

    // Rows 0–3: (β̃_t, β_t) × (decoder β̃_1, β_0); row 4: Analytic-DPM.
    let mut rows: Vec<(String, VarianceKind, Option<ReverseVariances>)> = Vec::new();
    for (kind, kind_name) in [
        (VarianceKind::FixedSmall, "β̃_t"),
        (VarianceKind::FixedLarge, "β_t"),
    ] {
        for (decoder, decoder_name) in [
            (DecoderVariance::Clipped, "β̃_1 (improved-diffusion)"),
            (DecoderVariance::Transition, "β_0"),
        ] {
            let table = ReverseVariances::fixed(process, kind, decoder).unwrap();
            rows.push((
                format!("{kind_name}, decoder {decoder_name}"),
                kind,
                Some(table),
            ));
        }
    }
    rows.push((
        "Analytic-DPM σ*_t²".to_string(),
        VarianceKind::FixedSmall,
        Some(optimal),
    ));
    let gaps: Vec<Vec<f64>> = rows
        .iter()
        .map(|(_, kind, table)| data.fixed_gap(*kind, table.clone()))
        .collect();
    for ((name, ..), gap) in rows.iter().zip(&gaps) {
        let (mean, se) = mean_se(gap);
        let ln2 = std::f64::consts::LN_2;
        println!(
            "{name}: bound − NLL = {:.4} ± {:.4} bits/dim",
            mean / ln2,
            se / ln2
        );
    }
    // The tables reproduce the parameterization's own variances.
    assert_eq!(gaps[0], data.fixed_gap(VarianceKind::FixedSmall, None));
    let (analytic, se) = mean_se(&gaps[4]);
    assert!(
        analytic.abs() < 4.0 * se + 1e-3,
        "the bound with the optimal variances is not the NLL: {analytic} ± {se}"
    );
    for (other, name) in [(0, "β̃_t"), (2, "β_t")] {
        let (diff, se) = paired(&gaps[other], &gaps[4]);
        assert!(diff > 5.0 * se, "analytic not below {name}: {diff} ± {se}");
    }
    let (decoder_gain, se) = paired(&gaps[2], &gaps[3]);
    let (large_gap, _) = mean_se(&gaps[2]);
    assert!(
        decoder_gain > 5.0 * se && decoder_gain > 0.5 * large_gap,
        "the β_0 decoder does not remove most of the fixed-β gap: {decoder_gain} ± {se} of {large_gap}"
    );
}
