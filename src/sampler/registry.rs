//! Samplers by the names users know: k-diffusion's and A1111's ("DPM++ 2M Karras",
//! "Euler a") and diffusers' scheduler classes.

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};
use crate::prediction::VarianceKind;
use crate::process::VpProcess;
use crate::sampler::Visits;
use crate::sampler::base::{ReverseSampler, StepOutput, X0Options};
use crate::sampler::continuous::{EulerMaruyamaSampler, HeunSampler, HeunState};
use crate::sampler::ddim::DdimSampler;
use crate::sampler::ddpm::DdpmSampler;
use crate::sampler::dpm_solver::{DpmSolverOptions, DpmSolverSampler, DpmSolverState};
use crate::sampler::edm_heun::{EdmHeunSampler, EdmHeunState};
use crate::sampler::euler::{EulerAncestralSampler, EulerSampler};
use crate::sampler::lms::{LmsSampler, LmsState};
use crate::sampler::sigmas::{FinalSigma, ModelTime, SigmaGrid, SigmaSchedule};
use crate::sampler::unipc::{UniPcOptions, UniPcSampler, UniPcState, UniPcVariant};
use crate::schedule::Spacing;

/// The base names [`sampler_by_name`] knows. The σ-grid samplers (`euler`, `euler_a`,
/// `heun`, `lms`, `dpmpp_*`, `unipc*`) also take a grid suffix: `_karras`, `_exponential`
/// or `_beta`.
pub const SAMPLER_NAMES: &[&str] = &[
    "ddpm",
    "ddim",
    "euler",
    "euler_a",
    "heun",
    "lms",
    "dpmpp_2m",
    "dpmpp_2m_sde",
    "dpmpp_3m",
    "dpmpp_3m_sde",
    "unipc",
    "unipc_bh1",
    "unipc_3",
    "unipc_bh1_3",
    "heun_vp",
    "euler_maruyama",
];

/// Other spellings of the base names: k-diffusion's function names, diffusers' classes.
const ALIASES: &[(&str, &str)] = &[
    ("euler_ancestral", "euler_a"),
    ("dpm_solver", "dpmpp_2m"),
    ("dpmsolver", "dpmpp_2m"),
    ("ddpmscheduler", "ddpm"),
    ("ddimscheduler", "ddim"),
    ("eulerdiscretescheduler", "euler"),
    ("eulerancestraldiscretescheduler", "euler_a"),
    ("heundiscretescheduler", "heun"),
    ("lmsdiscretescheduler", "lms"),
    ("dpmsolvermultistepscheduler", "dpmpp_2m"),
    ("unipcmultistepscheduler", "unipc"),
    ("unipc_bh2", "unipc"),
    ("unipc_bh2_3", "unipc_3"),
];

const GRIDS: &[&str] = &["karras", "exponential", "beta"];

/// Builds the sampler called `name` for `steps` steps of `process`.
///
/// Names are matched case-insensitively after turning `++` into `pp` and spaces, `-` and
/// `.` into `_`, and dropping k-diffusion's `sample_` prefix: "DPM++ 2M Karras",
/// `dpmpp_2m_karras` and `sample_dpmpp_2m_karras` are one sampler; diffusers' class names
/// (`EulerDiscreteScheduler`, …) name the class's default. The default grids follow
/// diffusers' `linspace` spacing: DDPM on the schedule respaced to `steps`
/// ([`Spacing::Linspace`], fixed-small variance); DDIM (η = 0), `heun_vp` and
/// `euler_maruyama` over [`Spacing::Linspace`]; Euler, Euler a and Heun over
/// [`SigmaSchedule::Interpolated`]; LMS (order 4, as diffusers' pipelines call it) over
/// the same; DPM-Solver++ over
/// [`DpmSolverSampler::diffusers_default`]'s timesteps. A grid suffix replaces the
/// σ-grid samplers' grid with K = `steps` levels. `heun` is EDM's Heun on σ
/// ([`EdmHeunSampler`]: 2·steps − 1 model calls); `heun_vp` is [`HeunSampler`].
///
/// `model_time` applies to the σ-grid samplers ([`ModelTime::Fractional`] is what
/// diffusers' Euler-family schedulers do).
///
/// # Errors
/// [`DiffusionError::InvalidConfig`] for an unknown name (the message lists the known
/// ones) or a grid suffix on a sampler without a σ grid; whatever the sampler's
/// constructor returns for `steps` (0, or more than the schedule has).
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::process::VpProcess;
/// use burn_diffusion::sampler::{ModelTime, ReverseSampler, X0Options, sampler_by_name};
/// use burn_diffusion::schedule::ScheduleConfig;
///
/// let process = VpProcess::new(ScheduleConfig::new().init()?);
/// let s = sampler_by_name("DPM++ 2M Karras", &process, 20, X0Options::default(), ModelTime::Rounded)?;
/// assert_eq!(ReverseSampler::<2>::timesteps(&s).len(), 20);
/// let err = sampler_by_name("plms", &process, 20, X0Options::default(), ModelTime::Rounded);
/// assert!(err.unwrap_err().to_string().contains("dpmpp_2m"));
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub fn sampler_by_name(
    name: &str,
    process: &VpProcess,
    steps: usize,
    x0: X0Options,
    model_time: ModelTime,
) -> error::Result<AnySampler> {
    let (base, grid) = parse(name)?;
    let p = process.clone();
    let linspace = Spacing::Linspace { steps };
    let sigma_grid = |default: SigmaSchedule| {
        let schedule = match grid {
            Some("karras") => SigmaSchedule::karras(steps),
            Some("exponential") => SigmaSchedule::exponential(steps),
            Some("beta") => SigmaSchedule::beta(steps),
            _ => default,
        };
        SigmaGrid::new(process, &schedule, FinalSigma::Zero, model_time)
    };
    let interpolated = || sigma_grid(SigmaSchedule::Interpolated { steps });
    let dpm = |order: usize, sde: bool| -> error::Result<AnySampler> {
        let default = DpmSolverSampler::diffusers_default(p.clone(), steps, x0)?;
        let schedule = SigmaSchedule::Timesteps(ReverseSampler::<1>::timesteps(&default).to_vec());
        let options = DpmSolverOptions {
            order,
            sde,
            ..DpmSolverOptions::default()
        };
        let s = DpmSolverSampler::with_grid(p.clone(), sigma_grid(schedule)?, x0, options)?;
        Ok(AnySampler::DpmSolver(s))
    };
    Ok(match base {
        "ddpm" => {
            let respaced = VpProcess::new(process.schedule().respace(&linspace)?);
            AnySampler::Ddpm(DdpmSampler::new(respaced, VarianceKind::FixedSmall, x0)?)
        }
        "ddim" => AnySampler::Ddim(DdimSampler::with_spacing(p, &linspace, 0.0, x0)?),
        "euler" => AnySampler::Euler(EulerSampler::new(interpolated()?, x0)?),
        "euler_a" => {
            AnySampler::EulerAncestral(EulerAncestralSampler::new(interpolated()?, 1.0, x0)?)
        }
        "heun" => AnySampler::Heun(EdmHeunSampler::new(interpolated()?, x0)?),
        "lms" => AnySampler::Lms(LmsSampler::new(interpolated()?, 4, x0)?),
        "dpmpp_2m" => dpm(2, false)?,
        "dpmpp_2m_sde" => dpm(2, true)?,
        "dpmpp_3m" => dpm(3, false)?,
        "dpmpp_3m_sde" => dpm(3, true)?,
        "unipc" | "unipc_bh1" | "unipc_3" | "unipc_bh1_3" => {
            let default = DpmSolverSampler::diffusers_default(p.clone(), steps, x0)?;
            let ts = ReverseSampler::<1>::timesteps(&default).to_vec();
            let options = UniPcOptions {
                order: if base.ends_with("_3") { 3 } else { 2 },
                variant: if base.contains("bh1") {
                    UniPcVariant::Bh1
                } else {
                    UniPcVariant::Bh2
                },
                ..UniPcOptions::default()
            };
            let grid = sigma_grid(SigmaSchedule::Timesteps(ts))?;
            AnySampler::UniPc(UniPcSampler::new(grid, x0, options)?)
        }
        "heun_vp" => AnySampler::VpHeun(HeunSampler::new(p, &linspace, x0)?),
        _ => AnySampler::EulerMaruyama(EulerMaruyamaSampler::new(p, &linspace, x0)?),
    })
}

/// The canonical spelling of a sampler name [`sampler_by_name`] accepts (e.g.
/// "DPM++ 2M Karras" → `dpmpp_2m_karras`, `EulerDiscreteScheduler` → `euler`): for
/// checking a command-line flag before any work starts, and for labels.
///
/// # Errors
/// As [`sampler_by_name`] for an unknown name.
pub fn canonical_sampler_name(name: &str) -> error::Result<String> {
    let (base, grid) = parse(name)?;
    Ok(match grid {
        Some(grid) => format!("{base}_{grid}"),
        None => base.to_string(),
    })
}

/// (base name, grid suffix) of a user's name, or an error listing the known names.
fn parse(name: &str) -> error::Result<(&'static str, Option<&'static str>)> {
    let normalized = normalize(name);
    let unknown = |reason: String| DiffusionError::config("sampler name", name, reason);
    let known = |n: &str| -> Option<&'static str> {
        SAMPLER_NAMES
            .iter()
            .copied()
            .find(|&k| k == n)
            .or_else(|| ALIASES.iter().find(|(a, _)| *a == n).map(|(_, k)| *k))
    };
    if let Some(base) = known(&normalized) {
        return Ok((base, None));
    }
    for grid in GRIDS {
        if let Some(stem) = normalized.strip_suffix(&format!("_{grid}")) {
            return match known(stem) {
                Some(base) if has_sigma_grid(base) => Ok((base, Some(grid))),
                Some(base) => Err(unknown(format!(
                    "{base} has no σ grid to make {grid}; grids apply to euler, euler_a, heun, lms, dpmpp_* and unipc*"
                ))),
                None => Err(unknown(known_names())),
            };
        }
    }
    Err(unknown(known_names()))
}

fn has_sigma_grid(base: &str) -> bool {
    matches!(base, "euler" | "euler_a" | "heun" | "lms")
        || base.starts_with("dpmpp_")
        || base.starts_with("unipc")
}

fn known_names() -> String {
    format!(
        "unknown sampler; known: {} (σ-grid samplers also take _karras, _exponential or _beta), \
         and diffusers' class names",
        SAMPLER_NAMES.join(", ")
    )
}

/// Lowercase, `++` → `pp`, separators → `_`, no `sample_` / `k_` prefix.
fn normalize(name: &str) -> String {
    let lower = name.trim().to_lowercase().replace("++", "pp");
    let mut out = String::new();
    for c in lower.chars() {
        let c = if matches!(c, ' ' | '-' | '.') { '_' } else { c };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    let out = out.trim_matches('_');
    out.strip_prefix("sample_")
        .or_else(|| out.strip_prefix("k_"))
        .unwrap_or(out)
        .to_string()
}

/// Any of the crate's samplers on a discrete VP process: what [`sampler_by_name`] and
/// diffusers scheduler configs (`diffusers::SchedulerConfig::sampler`, feature `diffusers`) build.
#[derive(Debug, Clone)]
pub enum AnySampler {
    /// [`DdpmSampler`].
    Ddpm(DdpmSampler<VpProcess>),
    /// [`DdimSampler`].
    Ddim(DdimSampler<VpProcess>),
    /// [`EulerSampler`].
    Euler(EulerSampler),
    /// [`EulerAncestralSampler`].
    EulerAncestral(EulerAncestralSampler),
    /// [`EdmHeunSampler`].
    Heun(EdmHeunSampler),
    /// [`LmsSampler`].
    Lms(LmsSampler),
    /// [`DpmSolverSampler`].
    DpmSolver(DpmSolverSampler<VpProcess>),
    /// [`UniPcSampler`].
    UniPc(UniPcSampler),
    /// [`HeunSampler`] (Heun on the VP probability-flow ODE in t).
    VpHeun(HeunSampler<VpProcess>),
    /// [`EulerMaruyamaSampler`].
    EulerMaruyama(EulerMaruyamaSampler<VpProcess>),
}

/// The state of an [`AnySampler`]: that of its multistep or two-stage sampler.
#[derive(Debug, Clone, Default)]
pub struct AnySamplerState<const D: usize> {
    dpm_solver: DpmSolverState<D>,
    heun: EdmHeunState<D>,
    vp_heun: HeunState<D>,
    unipc: UniPcState<D>,
    lms: LmsState<D>,
}

/// Calls `$body` with `$s` bound to the variant's sampler (and `$st` to its state).
macro_rules! dispatch {
    ($self:expr, |$s:ident| $body:expr) => {
        match $self {
            AnySampler::Ddpm($s) => $body,
            AnySampler::Ddim($s) => $body,
            AnySampler::Euler($s) => $body,
            AnySampler::EulerAncestral($s) => $body,
            AnySampler::Heun($s) => $body,
            AnySampler::Lms($s) => $body,
            AnySampler::DpmSolver($s) => $body,
            AnySampler::UniPc($s) => $body,
            AnySampler::VpHeun($s) => $body,
            AnySampler::EulerMaruyama($s) => $body,
        }
    };
    ($self:expr, $state:expr, |$s:ident, $st:ident| $body:expr) => {
        match $self {
            AnySampler::Ddpm($s) => {
                let $st = &mut ();
                $body
            }
            AnySampler::Ddim($s) => {
                let $st = &mut ();
                $body
            }
            AnySampler::Euler($s) => {
                let $st = &mut ();
                $body
            }
            AnySampler::EulerAncestral($s) => {
                let $st = &mut ();
                $body
            }
            AnySampler::Heun($s) => {
                let $st = &mut $state.heun;
                $body
            }
            AnySampler::Lms($s) => {
                let $st = &mut $state.lms;
                $body
            }
            AnySampler::DpmSolver($s) => {
                let $st = &mut $state.dpm_solver;
                $body
            }
            AnySampler::UniPc($s) => {
                let $st = &mut $state.unipc;
                $body
            }
            AnySampler::VpHeun($s) => {
                let $st = &mut $state.vp_heun;
                $body
            }
            AnySampler::EulerMaruyama($s) => {
                let $st = &mut ();
                $body
            }
        }
    };
}

impl<const D: usize> ReverseSampler<D> for AnySampler {
    type State = AnySamplerState<D>;

    fn visits(&self) -> &Visits {
        dispatch!(self, |s| ReverseSampler::<D>::visits(s))
    }

    fn fractional_model_time(&self, i: usize) -> Option<f64> {
        dispatch!(self, |s| ReverseSampler::<D>::fractional_model_time(s, i))
    }

    fn marginal(&self, i: usize) -> Option<(f64, f64)> {
        dispatch!(self, |s| ReverseSampler::<D>::marginal(s, i))
    }

    fn calls_per_step(&self) -> usize {
        dispatch!(self, |s| ReverseSampler::<D>::calls_per_step(s))
    }

    fn needs_noise(&self, i: usize) -> bool {
        dispatch!(self, |s| ReverseSampler::<D>::needs_noise(s, i))
    }

    fn step(
        &self,
        state: &mut AnySamplerState<D>,
        i: usize,
        x_t: Tensor<D>,
        model_output: Tensor<D>,
        noise: Option<Tensor<D>>,
    ) -> error::Result<StepOutput<D>> {
        dispatch!(self, state, |s, st| s.step(st, i, x_t, model_output, noise))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleConfig;

    #[test]
    fn names_normalize_to_one_sampler() {
        for (name, want) in [
            ("DPM++ 2M Karras", ("dpmpp_2m", Some("karras"))),
            ("sample_dpmpp_2m_sde", ("dpmpp_2m_sde", None)),
            ("Euler a", ("euler_a", None)),
            ("k_euler_ancestral", ("euler_a", None)),
            ("EulerDiscreteScheduler", ("euler", None)),
            ("dpm-solver", ("dpmpp_2m", None)),
            (
                "DPM++ 3M SDE Exponential",
                ("dpmpp_3m_sde", Some("exponential")),
            ),
            ("heun_beta", ("heun", Some("beta"))),
            ("UniPC bh1 3 Karras", ("unipc_bh1_3", Some("karras"))),
            ("UniPCMultistepScheduler", ("unipc", None)),
        ] {
            assert_eq!(parse(name).unwrap(), want, "{name}");
        }
        assert_eq!(parse("LMS Karras").unwrap(), ("lms", Some("karras")));
        let err = parse("PLMS Karras").unwrap_err().to_string();
        assert!(err.contains("euler_a") && err.contains("PLMS"), "{err}");
        assert!(
            parse("ddim_karras")
                .unwrap_err()
                .to_string()
                .contains("no σ grid")
        );
    }

    #[test]
    fn every_name_builds_with_its_step_count() {
        let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
        for &name in SAMPLER_NAMES {
            let s = sampler_by_name(name, &process, 10, X0Options::default(), ModelTime::Rounded)
                .unwrap();
            let calls = ReverseSampler::<1>::timesteps(&s).len();
            let want = match name {
                "heun" | "heun_vp" => 19,
                _ => 10,
            };
            assert_eq!(calls, want, "{name}");
        }
        assert!(
            sampler_by_name(
                "euler",
                &process,
                0,
                X0Options::default(),
                ModelTime::Rounded
            )
            .is_err()
        );
    }
}
