//! The reverse variances σ_t² as a host table: the fixed choices with a choice of the
//! decoder's variance at t = 0, and Analytic-DPM's optimal variances (Bao et al. 2022).

use burn::config::Config;
use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::model::Denoiser;
use crate::noise::randn;
use crate::prediction::{Parameterization, VarianceKind};
use crate::process::{ForwardProcess, Posterior};
use crate::schedule::{TimestepInput, Timesteps};

/// The variance σ_0² of the decoder p_θ(x_0 | x_1), the bound's last term L_0 (t = 0),
/// for the fixed variance kinds.
///
/// The true Var(x_0 | x_1) is about d_0² = β_0 wherever the data is much wider than
/// √β_0 (Ho et al. 2020 set σ_1² = β_1, 1-based); improved-diffusion's `FIXED_SMALL` and
/// `FIXED_LARGE` both use β̃ at t = 1 there, ≈ β_0/2, a decoder twice too sharp that costs
/// about ½(2 − 1 − ln 2) ≈ 0.15 nats per dimension of bound. Published bits/dim use
/// `Clipped`, so it is the default.
#[derive(Config, Debug, PartialEq, Copy)]
pub enum DecoderVariance {
    /// β̃_1, the clipped posterior variance (improved-diffusion; [`VarianceKind`]'s values).
    Clipped,
    /// d_0², the first transition variance (β_0 for DDPM): Ho et al.'s σ_1² = β_1.
    Transition,
    /// A given variance (finite, positive).
    Value(f64),
}

/// σ_t² for every step t of a process, in place of a fixed [`VarianceKind`]'s: for the
/// bound ([`crate::loss::VlbLoss::with_reverse_variances`]) and for ancestral sampling
/// ([`crate::sampler::DdpmSampler::with_reverse_variances`]), on the full process or a
/// respaced one.
///
/// - [`ReverseVariances::fixed`]: β̃_t or β_t with a [`DecoderVariance`] at t = 0;
/// - [`ReverseVariances::analytic`]: the optimal isotropic variances of Analytic-DPM,
///   σ*_t² = β̃_t + coef1_t² · (s_t²/a_t²) · (1 − Γ_t), from an estimate Γ_t of
///   E‖ε_θ(x_t, t)‖²/d ([`EpsSecondMoment`]).
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::prelude::*;
/// use burn_diffusion::prediction::{DecoderVariance, EpsSecondMoment, ReverseVariances};
/// use burn_diffusion::schedule::Timesteps;
///
/// let device = Device::flex();
/// let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(50).init()?);
/// let parameterization = Parameterization::new(); // ε, fixed small variance
/// // An ε-predictor (here the exact one for N(0, 1) data: ε̂ = s_t x_t).
/// let s = process.noise_std().to_vec();
/// let model = |x_t: Tensor<2>, t: Tensor<1, Int>| {
///     let ts = Timesteps::read(&t, s.len()).unwrap();
///     x_t.clone() * ts.gather(&s, &x_t).unwrap()
/// };
/// let data = Tensor::<2>::random([256, 2], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
/// let gamma = EpsSecondMoment::estimate(&model, &process, parameterization, &data, 256, 0)?;
/// let optimal = ReverseVariances::analytic(&process, &gamma)?;
/// let small = ReverseVariances::fixed(&process, VarianceKind::FixedSmall, DecoderVariance::Clipped)?;
/// // The optimum lies above β̃_t (for N(0, 1) data it is β_t itself).
/// assert!(optimal.variances()[10] > small.variances()[10]);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReverseVariances {
    log_variances: Vec<f64>,
}

impl ReverseVariances {
    /// The variances of a fixed `kind` on `process` (exactly [`Parameterization::variance`]'s
    /// for [`DecoderVariance::Clipped`]), with the decoder's variance at t = 0 as `decoder`
    /// says.
    ///
    /// # Errors
    /// [`VarianceKind::LearnedRange`] (the model gives its own variances); a
    /// [`DecoderVariance::Value`] that is not finite and positive.
    pub fn fixed<P: Posterior + ?Sized>(
        process: &P,
        kind: VarianceKind,
        decoder: DecoderVariance,
    ) -> error::Result<Self> {
        let clipped = process.posterior_log_variance_clipped();
        let mut log_variances: Vec<f64> = match kind {
            VarianceKind::FixedSmall => clipped.to_vec(),
            VarianceKind::FixedLarge => (0..process.num_timesteps())
                .map(|t| match t {
                    0 => clipped[0],
                    _ => process.transition_variance()[t].ln(),
                })
                .collect(),
            VarianceKind::LearnedRange => {
                return Err(DiffusionError::config(
                    "variance",
                    "LearnedRange",
                    "a learned variance comes from the model: a variance table is for the fixed kinds",
                ));
            }
        };
        log_variances[0] = match decoder {
            DecoderVariance::Clipped => clipped[0],
            DecoderVariance::Transition => process.transition_variance()[0].ln(),
            DecoderVariance::Value(v) if v.is_finite() && v > 0.0 => v.ln(),
            DecoderVariance::Value(v) => {
                return Err(DiffusionError::config(
                    "decoder variance",
                    v,
                    "must be finite and positive",
                ));
            }
        };
        Ok(Self { log_variances })
    }

    /// Analytic-DPM's optimal variances on `process` (Bao et al. 2022, Theorem 1, with
    /// λ_t² = β̃_t): the variance that minimizes the bound's term at t for the model's mean,
    ///
    /// ```text
    /// σ*_t² = β̃_t + coef1_t² · (s_t² / a_t²) · (1 − Γ_t),   Γ_t = E‖ε_θ(x_t, t)‖² / d
    /// ```
    ///
    /// $$\sigma_t^{*2} = \tilde\beta_t + \Big(\frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}\Big)^2 \frac{1-\bar\alpha_t}{\bar\alpha_t}\Big(1 - \frac{\mathbb E\|\epsilon_\theta(\mathbf x_t, t)\|^2}{d}\Big)$$
    ///
    /// (coef1 is the weight of x̂_0 in μ̃_t; s_t²/a_t² (1 − Γ_t) is Var(x_0 | x_t) for the
    /// exact model). 1 − Γ_t is clipped to [0, 1], so σ*_t² lies in the theorem's range
    /// [β̃_t, β̃_t + coef1_t² s_t²/a_t²]. At t = 0 it is the decoder's variance
    /// (s_0²/a_0²)(1 − Γ_0). `process` may be respaced: each of its steps uses Γ at its
    /// model timestep ([`ForwardProcess::model_timestep`]).
    ///
    /// # Errors
    /// A step whose model timestep `moments` has no estimate for; Γ_0 ≥ 1 (an estimate
    /// that leaves the decoder no variance: estimate over more data, or use
    /// [`ReverseVariances::fixed`]).
    pub fn analytic<P: Posterior + ?Sized>(
        process: &P,
        moments: &EpsSecondMoment,
    ) -> error::Result<Self> {
        let (a, s) = (process.signal_scale(), process.noise_std());
        let (coef1, beta_tilde) = (process.posterior_mean_coef1(), process.posterior_variance());
        let log_variances = (0..process.num_timesteps())
            .map(|t| {
                let gamma = moments.get(process.model_timestep(t)).ok_or_else(|| {
                    DiffusionError::config(
                        "timestep",
                        process.model_timestep(t),
                        "has no estimate of E‖ε_θ‖² (estimate on this process's timesteps)",
                    )
                })?;
                let spread = (1.0 - gamma).clamp(0.0, 1.0);
                let variance = beta_tilde[t] + (coef1[t] * s[t] / a[t]).powi(2) * spread;
                if variance > 0.0 && variance.is_finite() {
                    Ok(variance.ln())
                } else {
                    Err(DiffusionError::config(
                        "E‖ε_θ‖²/d",
                        gamma,
                        format!(
                            "at timestep {} leaves the decoder no variance (it must be below 1)",
                            process.model_timestep(t)
                        ),
                    ))
                }
            })
            .collect::<error::Result<_>>()?;
        Ok(Self { log_variances })
    }

    /// A table of variances given directly, one per step.
    ///
    /// # Errors
    /// An empty table, or a variance that is not finite and positive.
    pub fn from_variances(variances: &[f64]) -> error::Result<Self> {
        if variances.is_empty() {
            return Err(DiffusionError::config(
                "variances",
                "[]",
                "must not be empty",
            ));
        }
        if let Some(v) = variances.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(DiffusionError::config(
                "variance",
                v,
                "must be finite and positive",
            ));
        }
        Ok(Self {
            log_variances: variances.iter().map(|v| v.ln()).collect(),
        })
    }

    /// σ_t², one per step.
    pub fn variances(&self) -> Vec<f64> {
        self.log_variances.iter().map(|l| l.exp()).collect()
    }

    /// log σ_t², one per step.
    pub fn log_variances(&self) -> &[f64] {
        &self.log_variances
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.log_variances.len()
    }

    /// Whether the table is empty (never, for a constructed table).
    pub fn is_empty(&self) -> bool {
        self.log_variances.is_empty()
    }

    /// Checks that the table has one variance per step of a `num_timesteps`-step process.
    pub(crate) fn check_len(&self, num_timesteps: usize) -> error::Result<()> {
        if self.len() == num_timesteps {
            return Ok(());
        }
        Err(DiffusionError::config(
            "reverse variances",
            format!("{} steps", self.len()),
            format!("the process has {num_timesteps} steps"),
        ))
    }

    /// (σ², log σ²) at the batch's timesteps, shaped `[N, 1, ...]` like `like`.
    pub(crate) fn gather<const D: usize>(
        &self,
        t: &Timesteps,
        like: &Tensor<D>,
    ) -> error::Result<(Tensor<D>, Tensor<D>)> {
        let log_variance = t.gather(&self.log_variances, like)?;
        Ok((log_variance.clone().exp(), log_variance))
    }

    /// A CRC-32 of the table's bits, for a loss's description.
    pub(crate) fn fingerprint(&self) -> String {
        let mut hasher = crc32fast::Hasher::new();
        for v in &self.log_variances {
            hasher.update(&v.to_bits().to_le_bytes());
        }
        format!("{:08x}", hasher.finalize())
    }
}

/// A Monte-Carlo estimate of Γ_t = E‖ε_θ(x_t, t)‖²/d, x_t ~ q(x_t | x_0), x_0 from the
/// data (Analytic-DPM's only model statistic), for the training timesteps of a process's
/// steps, with its standard error.
#[derive(Debug, Clone, PartialEq)]
pub struct EpsSecondMoment {
    /// (model timestep, mean, standard error), ascending timesteps.
    estimates: Vec<(usize, f64, f64)>,
    examples: usize,
}

impl EpsSecondMoment {
    /// Estimates Γ_t at every step of `process` (for a respaced process, at its kept
    /// timesteps only): for each step, every example of `data` is noised once
    /// (x_t = a_t x_0 + s_t ε, ε seeded by `seed` and the step) and the model's ε̂ (from its
    /// output under `parameterization`, called at the step's model timestep) gives ‖ε̂‖²/d.
    /// Costs one model call per step and
    /// batch of `batch_size`, and one device read per step and batch.
    ///
    /// For a class-conditional model pass it with its labels bound
    /// ([`crate::model::WithLabels`]).
    ///
    /// # Shapes
    /// - `data`: `[N, ...]`, N ≥ 2
    ///
    /// # Errors
    /// Fewer than 2 examples or `batch_size = 0`; the model's errors (shapes).
    pub fn estimate<M: Denoiser<D>, P: ForwardProcess + ?Sized, const D: usize>(
        model: &M,
        process: &P,
        parameterization: Parameterization,
        data: &Tensor<D>,
        batch_size: usize,
        seed: u64,
    ) -> error::Result<Self> {
        let n = data.dims()[0];
        if n < 2 {
            return Err(DiffusionError::input(
                "data",
                &data.dims(),
                "needs at least 2 examples for a mean and its standard error",
            ));
        }
        if batch_size == 0 {
            return Err(DiffusionError::config(
                "batch_size",
                0,
                "must be at least 1",
            ));
        }
        let batches: Vec<Tensor<D>> = (0..n)
            .step_by(batch_size)
            .map(|start| data.clone().narrow(0, start, batch_size.min(n - start)))
            .collect();
        let mut estimates = Vec::with_capacity(process.num_timesteps());
        for t in 0..process.num_timesteps() {
            let (mut sum, mut sum_sq) = (0.0, 0.0);
            for (b, x0) in batches.iter().enumerate() {
                let ts = Timesteps::constant(x0.dims()[0], t);
                let noise_seed = seed.wrapping_add(((t as u64) << 24) | b as u64);
                let noise = randn(x0.shape(), noise_seed, &x0.device());
                let x_t = process.q_sample(x0.clone(), &ts, noise)?;
                let model_t = Timesteps::constant(x_t.dims()[0], process.model_timestep(t));
                let output = model.try_denoise(x_t.clone(), model_t.tensor(&x_t.device()), None)?;
                let (mean_part, _) = parameterization.split(output, &x_t)?;
                let (_, eps) = parameterization
                    .prediction
                    .to_x0_eps(process, x_t, &ts, mean_part)?;
                let norms = crate::loss::mean_flat(eps.square());
                for v in crate::host::read_vec::<f64, 1, _>(norms, "‖ε̂‖²")? {
                    sum += v;
                    sum_sq += v * v;
                }
            }
            let mean = sum / n as f64;
            let var = ((sum_sq - n as f64 * mean * mean) / (n - 1) as f64).max(0.0);
            estimates.push((process.model_timestep(t), mean, (var / n as f64).sqrt()));
        }
        estimates.sort_by_key(|e| e.0);
        Ok(Self {
            estimates,
            examples: n,
        })
    }

    /// Γ_t at model timestep `t`, if estimated.
    pub fn get(&self, t: usize) -> Option<f64> {
        self.find(t).map(|e| e.1)
    }

    /// The standard error of Γ_t at model timestep `t`, if estimated.
    pub fn standard_error(&self, t: usize) -> Option<f64> {
        self.find(t).map(|e| e.2)
    }

    /// The model timesteps estimated, ascending.
    pub fn timesteps(&self) -> Vec<usize> {
        self.estimates.iter().map(|e| e.0).collect()
    }

    /// Number of examples each Γ_t averages over.
    pub fn examples(&self) -> usize {
        self.examples
    }

    fn find(&self, t: usize) -> Option<&(usize, f64, f64)> {
        self.estimates
            .binary_search_by_key(&t, |e| e.0)
            .ok()
            .map(|i| &self.estimates[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::VpProcess;
    use crate::schedule::{ScheduleConfig, Spacing};
    use burn::tensor::{Device, Int};

    fn process(steps: usize) -> VpProcess {
        crate::process::test_vp(steps)
    }

    #[test]
    fn fixed_tables_are_the_parameterizations_variances() {
        let p = process(20);
        let device = Device::flex();
        let like = Tensor::<2>::zeros([20, 3], &device);
        let ts = Timesteps::new((0..20).collect());
        for kind in [VarianceKind::FixedSmall, VarianceKind::FixedLarge] {
            let table = ReverseVariances::fixed(&p, kind, DecoderVariance::Clipped).unwrap();
            let param = Parameterization::new().with_variance(kind);
            let (_, want) = param.variance(&p, &like, &ts, None).unwrap();
            let want = crate::host::read_vec::<f32, 2, _>(want, "want").unwrap();
            for (got, want) in table.log_variances().iter().zip(want) {
                assert!(
                    (got - f64::from(want)).abs() < 1e-5,
                    "{kind:?}: {got} vs {want}"
                );
            }
        }
        let beta0 = p.transition_variance()[0];
        let decoders = [
            (DecoderVariance::Transition, beta0),
            (DecoderVariance::Value(0.25), 0.25),
        ];
        for (decoder, want) in decoders {
            let table = ReverseVariances::fixed(&p, VarianceKind::FixedSmall, decoder).unwrap();
            assert!((table.variances()[0] - want).abs() < 1e-15 * want.max(1.0));
            assert_eq!(
                table.log_variances()[1..],
                p.posterior_log_variance_clipped()[1..]
            );
        }
    }

    #[test]
    fn bad_tables_are_errors() {
        let p = process(10);
        let learned =
            ReverseVariances::fixed(&p, VarianceKind::LearnedRange, DecoderVariance::Clipped);
        assert!(learned.unwrap_err().to_string().contains("LearnedRange"));
        for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let bad =
                ReverseVariances::fixed(&p, VarianceKind::FixedSmall, DecoderVariance::Value(v));
            assert!(bad.is_err(), "{v}");
            assert!(ReverseVariances::from_variances(&[1.0, v]).is_err(), "{v}");
        }
        assert!(ReverseVariances::from_variances(&[]).is_err());
        let table = ReverseVariances::from_variances(&[0.5; 10]).unwrap();
        assert!(table.check_len(10).is_ok());
        assert!(
            table
                .check_len(9)
                .unwrap_err()
                .to_string()
                .contains("9 steps")
        );
    }

    /// With ε̂ = 0 (Γ = 0) the optimum is the whole range's top, β̃_t + coef1² s²/a²; with
    /// ‖ε̂‖ = 1 (Γ = 1) its bottom β̃_t, and the decoder is refused.
    #[test]
    fn analytic_variances_span_the_theorems_range() {
        let device = Device::flex();
        let data = Tensor::<2>::ones([4, 3], &device);
        let full = process(30);
        let respaced = VpProcess::new(
            ScheduleConfig::new()
                .with_num_timesteps(30)
                .init()
                .unwrap()
                .respace(&Spacing::Trailing { steps: 5 })
                .unwrap(),
        );
        let zero = |x: Tensor<2>, _t: Tensor<1, Int>| x.zeros_like();
        let param = Parameterization::new();
        for p in [&full, &respaced] {
            let gamma = EpsSecondMoment::estimate(&zero, p, param, &data, 3, 0).unwrap();
            assert_eq!(gamma.examples(), 4);
            let table = ReverseVariances::analytic(p, &gamma).unwrap();
            let (a, s) = (p.signal_scale(), p.noise_std());
            for (t, got) in table.variances().iter().enumerate() {
                let want =
                    p.posterior_variance()[t] + (p.posterior_mean_coef1()[t] * s[t] / a[t]).powi(2);
                assert!(
                    (got - want).abs() < 1e-12 * want,
                    "t = {t}: {got} vs {want}"
                );
            }
        }
        let gamma = EpsSecondMoment::estimate(&zero, &full, param, &data, 4, 0).unwrap();
        assert!(ReverseVariances::analytic(&respaced, &gamma).is_ok()); // a subset of 0..30
        let short = EpsSecondMoment::estimate(&zero, &respaced, param, &data, 4, 0).unwrap();
        let missing = ReverseVariances::analytic(&full, &short).unwrap_err();
        assert!(missing.to_string().contains("no estimate"), "{missing}");
        let unit = |x: Tensor<2>, _t: Tensor<1, Int>| x.ones_like();
        let gamma = EpsSecondMoment::estimate(&unit, &full, param, &data, 4, 0).unwrap();
        assert_eq!(
            (gamma.get(7), gamma.standard_error(7)),
            (Some(1.0), Some(0.0))
        );
        let err = ReverseVariances::analytic(&full, &gamma).unwrap_err();
        assert!(err.to_string().contains("no variance"), "{err}");
        let one = Tensor::<2>::ones([1, 3], &device);
        assert!(EpsSecondMoment::estimate(&unit, &full, param, &one, 4, 0).is_err());
        assert!(EpsSecondMoment::estimate(&unit, &full, param, &data, 0, 0).is_err());
    }
}
