//! diffusers' `scheduler_config.json` (`DDPMScheduler`, `DDIMScheduler`,
//! `DPMSolverMultistepScheduler`, `EulerDiscreteScheduler`,
//! `EulerAncestralDiscreteScheduler`, `HeunDiscreteScheduler`, `LMSDiscreteScheduler`,
//! `UniPCMultistepScheduler`)
//! ↔ a schedule and a sampler of the matching kind.

use serde_json::{Value, json};

use crate::diffusers::json::{Fields, field_error};
use crate::error::{self, DiffusionError};
use crate::prediction::{Prediction, VarianceKind};
use crate::process::VpProcess;
use crate::sampler::{
    AnySampler, AnySamplerState, DdimSampler, DdpmSampler, DpmSolverOptions, DpmSolverSampler,
    DynamicThreshold, EdmHeunSampler, EulerAncestralSampler, EulerSampler, FinalSigma, LmsSampler,
    ModelTime, SecondOrder, SigmaGrid, SigmaSchedule, UniPcOptions, UniPcSampler, UniPcVariant,
    X0Options,
};
use crate::schedule::{BetaSchedule, NoiseSchedule, ScheduleConfig, Spacing};

/// The diffusers scheduler classes this crate reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerClass {
    /// `DDPMScheduler`: ancestral sampling ([`DdpmSampler`]).
    Ddpm,
    /// `DDIMScheduler` ([`DdimSampler`]).
    Ddim,
    /// `DPMSolverMultistepScheduler` with `algorithm_type` `dpmsolver++` or
    /// `sde-dpmsolver++` ([`DpmSolverSampler`]).
    DpmSolverMultistep,
    /// `EulerDiscreteScheduler` ([`EulerSampler`]).
    EulerDiscrete,
    /// `EulerAncestralDiscreteScheduler` ([`EulerAncestralSampler`], η = 1).
    EulerAncestralDiscrete,
    /// `HeunDiscreteScheduler` ([`EdmHeunSampler`]).
    HeunDiscrete,
    /// `LMSDiscreteScheduler` ([`LmsSampler`], order 4 as its pipelines call `step`).
    LmsDiscrete,
    /// `UniPCMultistepScheduler` ([`UniPcSampler`]).
    UniPcMultistep,
}

/// Every class, in the order error messages list them.
const CLASSES: [SchedulerClass; 8] = [
    SchedulerClass::Ddpm,
    SchedulerClass::Ddim,
    SchedulerClass::DpmSolverMultistep,
    SchedulerClass::EulerDiscrete,
    SchedulerClass::EulerAncestralDiscrete,
    SchedulerClass::HeunDiscrete,
    SchedulerClass::LmsDiscrete,
    SchedulerClass::UniPcMultistep,
];

impl SchedulerClass {
    /// The diffusers class name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ddpm => "DDPMScheduler",
            Self::Ddim => "DDIMScheduler",
            Self::DpmSolverMultistep => "DPMSolverMultistepScheduler",
            Self::EulerDiscrete => "EulerDiscreteScheduler",
            Self::EulerAncestralDiscrete => "EulerAncestralDiscreteScheduler",
            Self::HeunDiscrete => "HeunDiscreteScheduler",
            Self::LmsDiscrete => "LMSDiscreteScheduler",
            Self::UniPcMultistep => "UniPCMultistepScheduler",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        CLASSES.into_iter().find(|c| c.name() == name)
    }

    /// Euler, Euler ancestral, Heun and LMS: samplers on σ's that call the model at
    /// fractional timesteps.
    fn is_euler_family(self) -> bool {
        matches!(
            self,
            Self::EulerDiscrete
                | Self::EulerAncestralDiscrete
                | Self::HeunDiscrete
                | Self::LmsDiscrete
        )
    }
}

/// diffusers' choice of σ levels (`use_karras_sigmas`, `use_exponential_sigmas`,
/// `use_beta_sigmas`; none of them: the schedule's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigmaKind {
    /// The schedule's σ's at the `timestep_spacing` grid.
    #[default]
    Schedule,
    /// Karras et al. (2022), ρ = 7 ([`SigmaSchedule::Karras`]).
    Karras,
    /// Evenly spaced log σ ([`SigmaSchedule::Exponential`]).
    Exponential,
    /// Beta(0.6, 0.6) quantiles ([`SigmaSchedule::Beta`]).
    Beta,
}

/// diffusers' `timestep_spacing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestepSpacing {
    /// `"leading"`: multiples of ⌊T/K⌋, plus `steps_offset`.
    Leading,
    /// `"trailing"`: from T − 1 down in steps of T/K, rounded.
    Trailing,
    /// `"linspace"`: evenly spaced over [0, T − 1], rounded.
    Linspace,
}

impl TimestepSpacing {
    fn name(self) -> &'static str {
        match self {
            Self::Leading => "leading",
            Self::Trailing => "trailing",
            Self::Linspace => "linspace",
        }
    }
}

/// A diffusers `scheduler_config.json`: the training schedule and how the scheduler turns
/// model outputs into samples. [`SchedulerConfig::sampler`] builds the matching sampler.
///
/// Read from JSON with [`SchedulerConfig::from_json`]; written back with
/// [`SchedulerConfig::to_json`].
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Which scheduler.
    pub class: SchedulerClass,
    /// `num_train_timesteps`, `beta_schedule`, `beta_start`, `beta_end`, `trained_betas`,
    /// `rescale_betas_zero_snr`.
    pub schedule: ScheduleConfig,
    /// `prediction_type`, `clip_sample`, `clip_sample_range`, `thresholding`,
    /// `dynamic_thresholding_ratio`, `sample_max_value`.
    pub x0: X0Options,
    /// `variance_type` (DDPM).
    pub variance: VarianceKind,
    /// `set_alpha_to_one` (DDIM).
    pub set_alpha_to_one: bool,
    /// `timestep_spacing`.
    pub timestep_spacing: TimestepSpacing,
    /// `steps_offset` (added to `leading` timesteps).
    pub steps_offset: usize,
    /// `use_karras_sigmas` / `use_exponential_sigmas` / `use_beta_sigmas` (DPM-Solver,
    /// Euler, Heun).
    pub sigmas: SigmaKind,
    /// `final_sigmas_type` (DPM-Solver, Euler).
    pub final_sigma: FinalSigma,
    /// `solver_order`, `algorithm_type`, `solver_type`, `lower_order_final`,
    /// `euler_at_final` (DPM-Solver).
    pub dpm_solver: DpmSolverOptions,
    /// `solver_order`, `solver_type`, `lower_order_final`, `disable_corrector` (UniPC).
    pub unipc: UniPcOptions,
}

/// What a diffusers pipeline passes to `step` besides the config (DDIM only).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepArguments {
    /// DDIM's η (`DDIMPipeline`'s `eta`, 0 by default).
    pub eta: f64,
    /// DDIM's `use_clipped_model_output`.
    pub use_clipped_model_output: bool,
}

/// Fields of the supported classes' `__init__` that a class ignores (diffusers drops
/// them with a warning): hub configs copied between schedulers carry them.
const FOREIGN_FIELDS: &[&str] = &[
    "skip_prk_steps",
    "set_alpha_to_one",
    "clip_sample",
    "clip_sample_range",
    "variance_type",
    "solver_order",
    "algorithm_type",
    "solver_type",
    "lower_order_final",
    "euler_at_final",
    "final_sigmas_type",
    "lambda_min_clipped",
    "use_karras_sigmas",
    "use_exponential_sigmas",
    "use_beta_sigmas",
    "use_lu_lambdas",
    "use_flow_sigmas",
    "flow_shift",
    "use_dynamic_shifting",
    "time_shift_type",
    "steps_offset",
    "timestep_spacing",
    "interpolation_type",
    "timestep_type",
    "sigma_min",
    "sigma_max",
    "thresholding",
    "dynamic_thresholding_ratio",
    "sample_max_value",
    "disable_corrector",
    "solver_p",
    "predict_x0",
    "shift_terminal",
];

impl SchedulerConfig {
    /// Parses a `scheduler_config.json` of `DDPMScheduler`, `DDIMScheduler`,
    /// `DPMSolverMultistepScheduler`, `EulerDiscreteScheduler`,
    /// `EulerAncestralDiscreteScheduler` or `HeunDiscreteScheduler`, with each class's
    /// defaults for missing fields.
    ///
    /// Python's `Infinity`, `-Infinity` and `NaN` (which diffusers writes, e.g.
    /// `"lambda_min_clipped": -Infinity`) are read. Fields that belong to other
    /// schedulers (such as `skip_prk_steps` or a DPM-Solver config's `clip_sample`) are
    /// ignored, as diffusers ignores them; any other unknown field is an error.
    ///
    /// Refused, naming the field: another class (the message lists the supported
    /// ones), `beta_schedule` other than linear, scaled_linear, squaredcos_cap_v2 (and
    /// sigmoid for DDPM), `variance_type` `learned`, `prediction_type` `flow_prediction`;
    /// `rescale_betas_zero_snr` outside DDPM and DDIM (the others then also move ᾱ_{T−1}
    /// to 2⁻²⁴); more than one `use_*_sigmas`. For DPM-Solver: `solver_order` outside
    /// 1–3, the noise-prediction `algorithm_type`s (`dpmsolver`, `sde-dpmsolver`),
    /// `solver_type` other than `midpoint` / `heun`, exponential and Beta σ's and Karras
    /// σ's on the cosine schedule (diffusers truncates those timesteps to integers), Lu
    /// and flow σ's, dynamic shifting, a finite `lambda_min_clipped`, a `variance_type`.
    /// For Euler: `interpolation_type` `log_linear`, `timestep_type` `continuous`, a
    /// `sigma_min` / `sigma_max`. Euler ancestral with `prediction_type` `sample` (which
    /// diffusers does not implement). For UniPC: `solver_order` outside 1–3, a
    /// `solver_type` other than `bh1` / `bh2`, `predict_x0` false, a `solver_p`,
    /// exponential and Beta σ's (truncated timesteps), `final_sigmas_type` `sigma_min`
    /// (which repeats UniPC's last level).
    ///
    /// # Errors
    /// [`DiffusionError::UnsupportedConfig`] naming the field; an invalid schedule (as
    /// [`ScheduleConfig::init`] checks it: betas out of range, `trained_betas` of
    /// another length than `num_train_timesteps`, more timesteps than memory holds) or
    /// clipping bound or threshold.
    ///
    /// # Example
    /// ```
    /// use burn_diffusion::diffusers::{SchedulerClass, SchedulerConfig};
    ///
    /// // google/ddpm-cifar10-32's scheduler_config.json
    /// let config = SchedulerConfig::from_json(r#"{"_class_name": "DDPMScheduler",
    ///   "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001,
    ///   "clip_sample": true, "num_train_timesteps": 1000, "trained_betas": null,
    ///   "variance_type": "fixed_small"}"#)?;
    /// assert_eq!(config.class, SchedulerClass::Ddpm);
    /// assert!(config.x0.clip);
    /// let euler = SchedulerConfig::from_json(r#"{"_class_name": "EulerDiscreteScheduler"}"#)?;
    /// assert_eq!(euler.class, SchedulerClass::EulerDiscrete);
    /// let pndm = SchedulerConfig::from_json(r#"{"_class_name": "PNDMScheduler"}"#);
    /// assert!(pndm.unwrap_err().to_string().contains("UniPCMultistepScheduler"));
    /// # Ok::<(), burn_diffusion::DiffusionError>(())
    /// ```
    pub fn from_json(json: &str) -> error::Result<Self> {
        let classes = CLASSES.map(SchedulerClass::name);
        let mut f = Fields::parse(&python_numbers(json), "scheduler_config.json", &classes)?;
        let class = f
            .class_name()
            .and_then(SchedulerClass::from_name)
            .ok_or_else(|| {
                field_error(
                    "_class_name",
                    "missing",
                    format!("one of {classes:?} is needed"),
                )
            })?;
        let schedule = schedule(&mut f, class)?;
        let prediction = match f.string_or("prediction_type", "epsilon")?.as_str() {
            "epsilon" => Prediction::Epsilon,
            "sample" => Prediction::Sample,
            "v_prediction" => Prediction::Velocity,
            other => {
                return Err(field_error(
                    "prediction_type",
                    other,
                    "supported: epsilon, sample, v_prediction",
                ));
            }
        };
        let mut x0 = X0Options {
            prediction,
            ..X0Options::default()
        };
        if !class.is_euler_family() {
            let threshold = f.bool_or("thresholding", false)?;
            let ratio = f.f64_or("dynamic_thresholding_ratio", 0.995)?;
            let max_value = f.f64_or("sample_max_value", 1.0)?;
            x0.threshold = threshold.then_some(DynamicThreshold { ratio, max_value });
        }
        let mut variance = VarianceKind::FixedSmall;
        let mut set_alpha_to_one = true;
        let (mut sigmas, mut final_sigma) = (SigmaKind::Schedule, FinalSigma::Zero);
        let mut dpm_solver = DpmSolverOptions::default();
        let mut unipc = UniPcOptions::default();
        if matches!(
            class,
            SchedulerClass::Ddpm | SchedulerClass::Ddim | SchedulerClass::HeunDiscrete
        ) {
            // Heun's clip_sample is off by default, DDPM's and DDIM's on.
            x0.clip = f.bool_or("clip_sample", class != SchedulerClass::HeunDiscrete)?;
            x0.clip_range = f.f64_or("clip_sample_range", 1.0)?;
        }
        if matches!(
            class,
            SchedulerClass::DpmSolverMultistep
                | SchedulerClass::EulerDiscrete
                | SchedulerClass::HeunDiscrete
                | SchedulerClass::LmsDiscrete
                | SchedulerClass::UniPcMultistep
        ) {
            sigmas = sigma_kind(&mut f, class, &schedule)?;
        }
        if matches!(
            class,
            SchedulerClass::DpmSolverMultistep | SchedulerClass::EulerDiscrete
        ) {
            final_sigma = match f.string_or("final_sigmas_type", "zero")?.as_str() {
                "zero" => FinalSigma::Zero,
                "sigma_min" => FinalSigma::Min,
                other => {
                    return Err(field_error(
                        "final_sigmas_type",
                        other,
                        "supported: zero, sigma_min",
                    ));
                }
            };
        }
        if class == SchedulerClass::UniPcMultistep {
            // UniPC's sigma_min repeats its last level.
            f.require_str_in("final_sigmas_type", "zero", &["zero"])?;
        }
        match class {
            SchedulerClass::Ddpm => {
                variance = match f.string_or("variance_type", "fixed_small")?.as_str() {
                    "fixed_small" | "fixed_small_log" => VarianceKind::FixedSmall,
                    "fixed_large" | "fixed_large_log" => VarianceKind::FixedLarge,
                    "learned_range" => VarianceKind::LearnedRange,
                    other => {
                        return Err(field_error(
                            "variance_type",
                            other,
                            "supported: fixed_small(_log), fixed_large(_log), learned_range",
                        ));
                    }
                };
            }
            SchedulerClass::Ddim => set_alpha_to_one = f.bool_or("set_alpha_to_one", true)?,
            SchedulerClass::DpmSolverMultistep => dpm_solver = dpm_solver_options(&mut f)?,
            SchedulerClass::EulerDiscrete => euler_options(&mut f)?,
            SchedulerClass::EulerAncestralDiscrete => {
                if prediction == Prediction::Sample {
                    return Err(field_error(
                        "prediction_type",
                        "sample",
                        "EulerAncestralDiscreteScheduler does not implement it",
                    ));
                }
            }
            SchedulerClass::HeunDiscrete | SchedulerClass::LmsDiscrete => {}
            SchedulerClass::UniPcMultistep => unipc = unipc_options(&mut f)?,
        }
        let default_spacing = match class {
            SchedulerClass::Ddpm | SchedulerClass::Ddim => "leading",
            _ => "linspace",
        };
        let timestep_spacing = match f.string_or("timestep_spacing", default_spacing)?.as_str() {
            "leading" => TimestepSpacing::Leading,
            "trailing" => TimestepSpacing::Trailing,
            "linspace" => TimestepSpacing::Linspace,
            other => {
                return Err(field_error(
                    "timestep_spacing",
                    other,
                    "supported: leading, trailing, linspace",
                ));
            }
        };
        let steps_offset = f.usize_or("steps_offset", 0)?;
        f.ignore(FOREIGN_FIELDS);
        f.finish()?;
        let config = Self {
            class,
            schedule,
            x0,
            variance,
            set_alpha_to_one,
            timestep_spacing,
            steps_offset,
            sigmas,
            final_sigma,
            dpm_solver,
            unipc,
        };
        config.x0.validate()?;
        config.schedule.init()?;
        Ok(config)
    }

    /// The `scheduler_config.json` of this config: every field its class reads, so that
    /// `from_config` in diffusers gives the same scheduler.
    ///
    /// # Errors
    /// A schedule diffusers cannot express: a `Sigmoid` schedule outside DDPM, a
    /// cosine schedule with constants other than 0.008 and 0.999.
    pub fn to_json(&self) -> error::Result<String> {
        let s = &self.schedule;
        let (beta_schedule, start, end, trained): (&str, f64, f64, Option<&Vec<f64>>) = match &s
            .beta_schedule
        {
            BetaSchedule::Linear {
                beta_start,
                beta_end,
            } => ("linear", *beta_start, *beta_end, None),
            BetaSchedule::ScaledLinear {
                beta_start,
                beta_end,
            } => ("scaled_linear", *beta_start, *beta_end, None),
            BetaSchedule::Cosine {
                s: 0.008,
                max_beta: 0.999,
            } => ("squaredcos_cap_v2", 1e-4, 0.02, None),
            BetaSchedule::Sigmoid {
                beta_start,
                beta_end,
            } if self.class == SchedulerClass::Ddpm => ("sigmoid", *beta_start, *beta_end, None),
            BetaSchedule::Custom(betas) => ("linear", 1e-4, 0.02, Some(betas)),
            other => {
                return Err(DiffusionError::config(
                    "beta_schedule",
                    format!("{other:?}"),
                    format!("{} has no such schedule", self.class.name()),
                ));
            }
        };
        let prediction = match self.x0.prediction {
            Prediction::Epsilon => "epsilon",
            Prediction::Sample => "sample",
            Prediction::Velocity => "v_prediction",
        };
        let th = self.x0.threshold.unwrap_or_default();
        let mut v = json!({
            "_class_name": self.class.name(),
            "_diffusers_version": "0.42.1",
            "num_train_timesteps": s.num_timesteps,
            "beta_start": start,
            "beta_end": end,
            "beta_schedule": beta_schedule,
            "trained_betas": trained,
            "prediction_type": prediction,
            "timestep_spacing": self.timestep_spacing.name(),
            "steps_offset": self.steps_offset,
        });
        let map = v.as_object_mut().expect("an object");
        let mut put = |k: &str, value: Value| {
            map.insert(k.to_string(), value);
        };
        let class = self.class;
        if !matches!(
            class,
            SchedulerClass::HeunDiscrete | SchedulerClass::LmsDiscrete
        ) {
            put("rescale_betas_zero_snr", s.rescale_zero_terminal_snr.into());
        }
        if !class.is_euler_family() {
            put("thresholding", self.x0.threshold.is_some().into());
            put("dynamic_thresholding_ratio", th.ratio.into());
            put("sample_max_value", th.max_value.into());
        }
        if matches!(
            class,
            SchedulerClass::Ddpm | SchedulerClass::Ddim | SchedulerClass::HeunDiscrete
        ) {
            put("clip_sample", self.x0.clip.into());
            put("clip_sample_range", self.x0.clip_range.into());
        }
        if matches!(
            class,
            SchedulerClass::DpmSolverMultistep
                | SchedulerClass::EulerDiscrete
                | SchedulerClass::HeunDiscrete
                | SchedulerClass::LmsDiscrete
                | SchedulerClass::UniPcMultistep
        ) {
            put(
                "use_karras_sigmas",
                (self.sigmas == SigmaKind::Karras).into(),
            );
            put(
                "use_exponential_sigmas",
                (self.sigmas == SigmaKind::Exponential).into(),
            );
            put("use_beta_sigmas", (self.sigmas == SigmaKind::Beta).into());
        }
        if matches!(
            class,
            SchedulerClass::DpmSolverMultistep | SchedulerClass::EulerDiscrete
        ) {
            let last = match self.final_sigma {
                FinalSigma::Zero => "zero",
                FinalSigma::Min => "sigma_min",
            };
            put("final_sigmas_type", last.into());
        }
        match self.class {
            SchedulerClass::Ddpm => put(
                "variance_type",
                match self.variance {
                    VarianceKind::FixedSmall => "fixed_small",
                    VarianceKind::FixedLarge => "fixed_large",
                    VarianceKind::LearnedRange => "learned_range",
                }
                .into(),
            ),
            SchedulerClass::Ddim => put("set_alpha_to_one", self.set_alpha_to_one.into()),
            SchedulerClass::DpmSolverMultistep => {
                let o = &self.dpm_solver;
                let algorithm = if o.sde {
                    "sde-dpmsolver++"
                } else {
                    "dpmsolver++"
                };
                let solver_type = match o.second_order {
                    SecondOrder::Midpoint => "midpoint",
                    SecondOrder::Heun => "heun",
                };
                for (k, value) in [
                    ("solver_order", json!(o.order)),
                    ("algorithm_type", json!(algorithm)),
                    ("solver_type", json!(solver_type)),
                    ("lower_order_final", json!(o.lower_order_final)),
                    ("euler_at_final", json!(o.euler_at_final)),
                    ("variance_type", Value::Null),
                ] {
                    put(k, value);
                }
            }
            SchedulerClass::EulerDiscrete => {
                put("interpolation_type", "linear".into());
                put("timestep_type", "discrete".into());
                put("sigma_min", Value::Null);
                put("sigma_max", Value::Null);
            }
            SchedulerClass::UniPcMultistep => {
                let o = &self.unipc;
                let solver_type = match o.variant {
                    UniPcVariant::Bh1 => "bh1",
                    UniPcVariant::Bh2 => "bh2",
                };
                for (k, value) in [
                    ("solver_order", json!(o.order)),
                    ("solver_type", json!(solver_type)),
                    ("lower_order_final", json!(o.lower_order_final)),
                    ("disable_corrector", json!(o.disable_corrector)),
                    ("predict_x0", json!(true)),
                    ("final_sigmas_type", json!("zero")),
                    ("solver_p", Value::Null),
                ] {
                    put(k, value);
                }
            }
            SchedulerClass::EulerAncestralDiscrete
            | SchedulerClass::HeunDiscrete
            | SchedulerClass::LmsDiscrete => {}
        }
        Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
    }

    /// The sampler diffusers' scheduler runs after `set_timesteps(steps)`, on this
    /// config's schedule, with the same timesteps and the same step:
    ///
    /// - DDPM: ancestral sampling on the schedule respaced to the `leading` timesteps
    ///   (all T for `steps` = T);
    /// - DDIM: the `timestep_spacing` grid, each step going to t − ⌊T/K⌋ as diffusers
    ///   does ([`DdimSampler::with_diffusers_targets`]), `set_alpha_to_one`, and the
    ///   pipeline's `eta` and `use_clipped_model_output` from `args`;
    /// - DPM-Solver++: the `timestep_spacing` grid of K + 1 points without its end
    ///   (`linspace`, `leading`) or of K points (`trailing`), or K Karras σ's over the
    ///   whole schedule, with the config's order, SDE variant, second-order form and
    ///   final σ ([`DpmSolverSampler::with_grid`]); the model at rounded timesteps;
    /// - Euler, Euler ancestral (η = 1), Heun, LMS (order 4): K σ's interpolated at `linspace(T − 1, 0,
    ///   K)` (`linspace`) or at the `leading` / `trailing` timesteps, or Karras,
    ///   exponential or Beta σ's over that grid's range; the model at fractional
    ///   timesteps ([`ModelTime::Fractional`]: the model must implement
    ///   [`crate::Denoiser::denoise_fractional`], as the crate's UNet does).
    ///
    /// # Errors
    /// `steps` = 0 or more than T; DDPM with fewer steps than T and a spacing other
    /// than `leading` (diffusers then steps to timesteps it does not visit, which this
    /// crate's DDPM does not reproduce), or with `steps_offset` > 0 and a variance other
    /// than `fixed_small` (diffusers then adds noise at its last step); an invalid η;
    /// `args` other than the default for DDPM and DPM-Solver.
    pub fn sampler(&self, steps: usize, args: StepArguments) -> error::Result<DiffusersSampler> {
        if self.class != SchedulerClass::Ddim && args != StepArguments::default() {
            return Err(DiffusionError::config(
                "StepArguments",
                format!("{args:?}"),
                format!(
                    "η and use_clipped_model_output are DDIM's; {} has neither",
                    self.class.name()
                ),
            ));
        }
        let schedule = self.schedule.init()?;
        let t = schedule.num_timesteps();
        if steps == 0 || steps > t {
            return Err(DiffusionError::config(
                "steps",
                steps,
                format!("must be in 1..={t}"),
            ));
        }
        let offset = self.steps_offset;
        let spacing = |k: usize| match self.timestep_spacing {
            TimestepSpacing::Leading => Spacing::Leading { steps: k, offset },
            TimestepSpacing::Trailing => Spacing::Trailing { steps: k },
            TimestepSpacing::Linspace => Spacing::Linspace { steps: k },
        };
        let descending = |spacing: Spacing| -> error::Result<Vec<usize>> {
            let mut kept = spacing.timesteps(t)?;
            kept.reverse();
            Ok(kept)
        };
        Ok(match self.class {
            SchedulerClass::Ddpm => {
                let spacing = if steps == t {
                    Spacing::Leading { steps, offset: 0 }
                } else if self.timestep_spacing != TimestepSpacing::Leading {
                    return Err(field_error(
                        "timestep_spacing",
                        self.timestep_spacing.name(),
                        format!(
                            "DDPMScheduler at {steps} of {t} steps is reproduced for leading spacing only"
                        ),
                    ));
                } else if offset > 0 && self.variance != VarianceKind::FixedSmall {
                    return Err(field_error(
                        "steps_offset",
                        offset,
                        "DDPMScheduler with steps_offset > 0 adds noise at its last step, reproduced for variance_type fixed_small only",
                    ));
                } else {
                    spacing(steps)
                };
                let process = VpProcess::new(schedule.respace(&spacing)?);
                DiffusersSampler::Ddpm(DdpmSampler::new(process, self.variance, self.x0)?)
            }
            SchedulerClass::Ddim => {
                let visits = descending(spacing(steps))?;
                let process = VpProcess::new(schedule);
                let ddim = DdimSampler::new(process, visits, args.eta, self.x0)?
                    .with_set_alpha_to_one(self.set_alpha_to_one)
                    .with_diffusers_targets(t / steps)?
                    .with_clipped_model_output(args.use_clipped_model_output);
                DiffusersSampler::Ddim(ddim)
            }
            SchedulerClass::DpmSolverMultistep | SchedulerClass::UniPcMultistep => {
                let visits = match self.timestep_spacing {
                    TimestepSpacing::Trailing => descending(spacing(steps))?,
                    _ => {
                        let mut v = descending(spacing(steps + 1))?;
                        v.pop();
                        v
                    }
                };
                let process = VpProcess::new(schedule);
                let base = SigmaSchedule::Timesteps(visits);
                // The multistep solvers' Karras grids span the whole schedule whatever
                // the spacing.
                let levels = self.sigma_schedule(base, steps, None);
                let grid = SigmaGrid::new(&process, &levels, self.final_sigma, ModelTime::Rounded)?;
                if self.class == SchedulerClass::UniPcMultistep {
                    let unipc = UniPcSampler::new(grid, self.x0, self.unipc.clone())?;
                    DiffusersSampler::UniPc(unipc)
                } else {
                    let dpm = DpmSolverSampler::with_grid(process, grid, self.x0, self.dpm_solver)?;
                    DiffusersSampler::DpmSolver(dpm)
                }
            }
            SchedulerClass::EulerDiscrete
            | SchedulerClass::EulerAncestralDiscrete
            | SchedulerClass::HeunDiscrete
            | SchedulerClass::LmsDiscrete => {
                let process = VpProcess::new(schedule);
                let base = match self.timestep_spacing {
                    TimestepSpacing::Linspace => SigmaSchedule::Interpolated { steps },
                    _ => SigmaSchedule::Spaced(spacing(steps)),
                };
                // Their Karras, exponential and Beta grids span the base grid's σ's.
                let base_grid =
                    SigmaGrid::new(&process, &base, FinalSigma::Zero, ModelTime::Fractional)?;
                let range = (base_grid.sigma(steps - 1), base_grid.sigma(0));
                let levels = self.sigma_schedule(base, steps, Some(range));
                let grid =
                    SigmaGrid::new(&process, &levels, self.final_sigma, ModelTime::Fractional)?;
                match self.class {
                    SchedulerClass::EulerDiscrete => {
                        DiffusersSampler::Euler(EulerSampler::new(grid, self.x0)?)
                    }
                    SchedulerClass::EulerAncestralDiscrete => DiffusersSampler::EulerAncestral(
                        EulerAncestralSampler::new(grid, 1.0, self.x0)?,
                    ),
                    SchedulerClass::LmsDiscrete => {
                        DiffusersSampler::Lms(LmsSampler::new(grid, 4, self.x0)?)
                    }
                    _ => DiffusersSampler::Heun(EdmHeunSampler::new(grid, self.x0)?),
                }
            }
        })
    }

    /// The σ levels of [`SchedulerConfig::sigmas`]: `base` for the schedule's own, else
    /// the chosen grid over `range` (`None`: the schedule's range).
    fn sigma_schedule(
        &self,
        base: SigmaSchedule,
        steps: usize,
        range: Option<(f64, f64)>,
    ) -> SigmaSchedule {
        match self.sigmas {
            SigmaKind::Schedule => base,
            SigmaKind::Karras => SigmaSchedule::Karras {
                steps,
                rho: 7.0,
                range,
            },
            SigmaKind::Exponential => SigmaSchedule::Exponential { steps, range },
            SigmaKind::Beta => SigmaSchedule::Beta {
                steps,
                alpha: 0.6,
                beta: 0.6,
                range,
            },
        }
    }
}

/// The schedule fields.
fn schedule(f: &mut Fields, class: SchedulerClass) -> error::Result<ScheduleConfig> {
    let num_timesteps = f.usize_or("num_train_timesteps", 1000)?;
    // HeunDiscreteScheduler's defaults are Stable Diffusion's.
    let (start, end) = match class {
        SchedulerClass::HeunDiscrete => (0.00085, 0.012),
        _ => (1e-4, 0.02),
    };
    let beta_start = f.f64_or("beta_start", start)?;
    let beta_end = f.f64_or("beta_end", end)?;
    let name = f.string_or("beta_schedule", "linear")?;
    let trained = f.f64_list("trained_betas")?;
    let beta_schedule = match (trained, name.as_str()) {
        (Some(betas), _) => BetaSchedule::Custom(betas),
        (None, "linear") => BetaSchedule::Linear {
            beta_start,
            beta_end,
        },
        (None, "scaled_linear") => BetaSchedule::ScaledLinear {
            beta_start,
            beta_end,
        },
        (None, "squaredcos_cap_v2") => BetaSchedule::cosine(),
        (None, "sigmoid") if class == SchedulerClass::Ddpm => BetaSchedule::Sigmoid {
            beta_start,
            beta_end,
        },
        (None, other) => {
            return Err(field_error(
                "beta_schedule",
                other,
                format!(
                    "{} supports linear, scaled_linear, squaredcos_cap_v2{}",
                    class.name(),
                    if class == SchedulerClass::Ddpm {
                        ", sigmoid"
                    } else {
                        ""
                    }
                ),
            ));
        }
    };
    let rescale = if matches!(
        class,
        SchedulerClass::HeunDiscrete | SchedulerClass::LmsDiscrete
    ) {
        // Not a field of Heun's or LMS's: diffusers ignores it.
        f.ignore(&["rescale_betas_zero_snr"]);
        false
    } else {
        f.bool_or("rescale_betas_zero_snr", false)?
    };
    if rescale && !matches!(class, SchedulerClass::Ddpm | SchedulerClass::Ddim) {
        return Err(field_error(
            "rescale_betas_zero_snr",
            true,
            format!(
                "{} then also sets ᾱ_{{T−1}} to 2⁻²⁴, which is not reproduced",
                class.name()
            ),
        ));
    }
    Ok(ScheduleConfig {
        num_timesteps,
        beta_schedule,
        rescale_zero_terminal_snr: rescale,
    })
}

/// DPM-Solver's options, refusing the variants this crate does not have.
fn dpm_solver_options(f: &mut Fields) -> error::Result<DpmSolverOptions> {
    let order = f.usize_or("solver_order", 2)?;
    if !(1..=3).contains(&order) {
        return Err(field_error("solver_order", order, "supported: 1, 2, 3"));
    }
    let sde = f.require_str_in(
        "algorithm_type",
        "dpmsolver++",
        &["dpmsolver++", "sde-dpmsolver++"],
    )? == "sde-dpmsolver++";
    let second_order = match f
        .require_str_in("solver_type", "midpoint", &["midpoint", "heun"])?
        .as_str()
    {
        "heun" => SecondOrder::Heun,
        _ => SecondOrder::Midpoint,
    };
    let options = DpmSolverOptions {
        order,
        sde,
        second_order,
        lower_order_final: f.bool_or("lower_order_final", true)?,
        euler_at_final: f.bool_or("euler_at_final", false)?,
    };
    for flag in ["use_lu_lambdas", "use_flow_sigmas", "use_dynamic_shifting"] {
        f.require_eq_bool(flag, false, "this σ grid is not supported")?;
    }
    f.require_eq_f64(
        "lambda_min_clipped",
        f64::NEG_INFINITY,
        "only -Infinity (no clipping) is supported",
    )?;
    f.require_null(
        "variance_type",
        "only null (the model predicts no variance) is supported for DPM-Solver",
    )?;
    f.ignore(&["flow_shift", "time_shift_type"]);
    Ok(options)
}

/// UniPC's options, refusing the variants this crate does not have.
fn unipc_options(f: &mut Fields) -> error::Result<UniPcOptions> {
    let order = f.usize_or("solver_order", 2)?;
    if !(1..=3).contains(&order) {
        return Err(field_error("solver_order", order, "supported: 1, 2, 3"));
    }
    let variant = match f
        .require_str_in("solver_type", "bh2", &["bh1", "bh2"])?
        .as_str()
    {
        "bh1" => UniPcVariant::Bh1,
        _ => UniPcVariant::Bh2,
    };
    let options = UniPcOptions {
        order,
        variant,
        lower_order_final: f.bool_or("lower_order_final", true)?,
        disable_corrector: f.usize_list("disable_corrector", &[])?,
    };
    f.require_eq_bool(
        "predict_x0",
        true,
        "only the data-prediction form is supported",
    )?;
    for flag in ["use_flow_sigmas", "use_dynamic_shifting"] {
        f.require_eq_bool(flag, false, "this σ grid is not supported")?;
    }
    for key in ["solver_p", "sigma_min", "sigma_max", "shift_terminal"] {
        f.require_null(key, "only null is supported")?;
    }
    f.ignore(&["flow_shift", "time_shift_type"]);
    Ok(options)
}

/// `EulerDiscreteScheduler`'s own fields: only what its default path does is supported.
fn euler_options(f: &mut Fields) -> error::Result<()> {
    f.require_str_in("interpolation_type", "linear", &["linear"])?;
    f.require_str_in("timestep_type", "discrete", &["discrete"])?;
    for key in ["sigma_min", "sigma_max"] {
        f.require_null(key, "only null (the schedule's own range) is supported")?;
    }
    Ok(())
}

/// `use_karras_sigmas` / `use_exponential_sigmas` / `use_beta_sigmas`.
fn sigma_kind(
    f: &mut Fields,
    class: SchedulerClass,
    schedule: &ScheduleConfig,
) -> error::Result<SigmaKind> {
    let mut kind = SigmaKind::Schedule;
    for (flag, k) in [
        ("use_karras_sigmas", SigmaKind::Karras),
        ("use_exponential_sigmas", SigmaKind::Exponential),
        ("use_beta_sigmas", SigmaKind::Beta),
    ] {
        if f.bool_or(flag, false)? {
            if kind != SigmaKind::Schedule {
                return Err(field_error(flag, true, "only one σ grid can be chosen"));
            }
            kind = k;
        }
    }
    if matches!(
        class,
        SchedulerClass::DpmSolverMultistep | SchedulerClass::UniPcMultistep
    ) {
        // diffusers rounds DPM-Solver's Karras timesteps except on the cosine schedule
        // (UniPC's always), and casts the others to integers by truncation.
        let truncated = match kind {
            SigmaKind::Karras => {
                class == SchedulerClass::DpmSolverMultistep
                    && schedule.beta_schedule == BetaSchedule::cosine()
            }
            SigmaKind::Exponential | SigmaKind::Beta => true,
            SigmaKind::Schedule => false,
        };
        if truncated {
            return Err(field_error(
                "use_*_sigmas",
                format!("{kind:?}"),
                format!(
                    "{} truncates these grids' timesteps to integers (it rounds Karras \
                     timesteps on non-cosine schedules); not reproduced",
                    class.name()
                ),
            ));
        }
    }
    Ok(kind)
}

/// `json` with Python's bare `Infinity`, `-Infinity` and `NaN` (outside strings) turned
/// into strings that [`Fields`] reads as numbers.
fn python_numbers(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = json;
    while let Some(c) = rest.chars().next() {
        if in_string {
            in_string = c != '"' || escaped;
            escaped = c == '\\' && !escaped;
        } else if c == '"' {
            in_string = true;
        } else if let Some(token) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            out.push_str(&format!("\"{token}\""));
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The sampler of a diffusers scheduler config ([`SchedulerConfig::sampler`]): one of
/// the crate's samplers ([`AnySampler`]'s `Ddpm`, `Ddim` or `DpmSolver`).
pub type DiffusersSampler = AnySampler;

/// The state of a [`DiffusersSampler`].
pub type DiffusersSamplerState<const D: usize> = AnySamplerState<D>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_numbers_outside_strings_only() {
        assert_eq!(
            python_numbers(r#"{"a": -Infinity, "b": "NaN -Infinity", "c": [NaN, Infinity]}"#),
            r#"{"a": "-Infinity", "b": "NaN -Infinity", "c": ["NaN", "Infinity"]}"#
        );
        assert_eq!(python_numbers(r#"{"a\"": NaN}"#), r#"{"a\"": "NaN"}"#);
    }
}
