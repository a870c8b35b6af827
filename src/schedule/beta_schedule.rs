//! The variance schedules β_1..β_T: linear, scaled linear, cosine, sigmoid and user-given.

use burn::config::Config;

use crate::error::{self, DiffusionError};

/// How the forward-process variances β_t are laid out over `T` steps.
///
/// Timesteps are 0-based: entry `t` of the produced vector is the article's β_{t+1}.
///
/// | variant | β_t for t = 0..T-1 | source |
/// |---|---|---|
/// | `Linear` | linspace(start, end, T) | Ho et al. 2020, §4 (1e-4 to 0.02) |
/// | `ScaledLinear` | linspace(√start, √end, T)² | Rombach et al. 2022 (latent diffusion) |
/// | `Cosine` | min(1 − ᾱ(t+1)/ᾱ(t), max_beta), ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2) | Nichol & Dhariwal 2021, eq. 17 |
/// | `Sigmoid` | start + (end − start)·sigmoid(linspace(−6, 6, T)) | Jabri et al. 2022 (as in diffusers) |
/// | `Custom` | the given values | |
///
/// # Example
/// ```
/// use burn_diffusion::schedule::BetaSchedule;
///
/// let betas = BetaSchedule::default().betas(1000).unwrap();
/// assert_eq!(betas.len(), 1000);
/// assert!((betas[0] - 1e-4).abs() < 1e-15 && (betas[999] - 0.02).abs() < 1e-15);
/// assert!(BetaSchedule::Linear { beta_start: 0.02, beta_end: 1e-4 }.betas(10).is_err());
/// ```
#[derive(Config, Debug, PartialEq)]
pub enum BetaSchedule {
    /// Evenly spaced β from `beta_start` to `beta_end` (DDPM's schedule).
    Linear {
        /// β of the first step.
        beta_start: f64,
        /// β of the last step.
        beta_end: f64,
    },
    /// Evenly spaced √β, squared (Stable Diffusion uses 0.00085 to 0.012).
    ScaledLinear {
        /// β of the first step.
        beta_start: f64,
        /// β of the last step.
        beta_end: f64,
    },
    /// The cosine schedule of improved DDPM (diffusers' `squaredcos_cap_v2`).
    Cosine {
        /// Offset `s` that keeps β small near t = 0 (the paper uses 0.008).
        s: f64,
        /// Upper clip for β (the paper uses 0.999).
        max_beta: f64,
    },
    /// A sigmoid ramp from `beta_start` to `beta_end` over linspace(−6, 6, T).
    Sigmoid {
        /// Lower end of the ramp.
        beta_start: f64,
        /// Upper end of the ramp.
        beta_end: f64,
    },
    /// Betas supplied by the user; their count must equal `T`.
    Custom(Vec<f64>),
}

impl Default for BetaSchedule {
    /// DDPM's linear schedule, β from 1e-4 to 0.02.
    fn default() -> Self {
        Self::Linear {
            beta_start: 1e-4,
            beta_end: 0.02,
        }
    }
}

impl BetaSchedule {
    /// The cosine schedule with the paper's constants s = 0.008, max β = 0.999.
    pub fn cosine() -> Self {
        Self::Cosine {
            s: 0.008,
            max_beta: 0.999,
        }
    }

    /// The `T` betas of this schedule, in `f64`, each checked to be finite and in (0, 1].
    ///
    /// # Errors
    /// `T = 0`; a start or end outside (0, 1]; `beta_end < beta_start`; a cosine offset
    /// that is negative or not finite; a `Custom` vector whose length is not `T`; any
    /// resulting β outside (0, 1) (1 is allowed only for the last step).
    pub fn betas(&self, num_timesteps: usize) -> error::Result<Vec<f64>> {
        if num_timesteps == 0 {
            return Err(DiffusionError::config(
                "num_timesteps",
                0,
                "a schedule needs at least one timestep",
            ));
        }
        // The betas and the schedule's tables are f64: at least two f32's worth each.
        crate::size::check_elements("num_timesteps", &[num_timesteps], 2)?;
        let betas = match self {
            Self::Linear {
                beta_start,
                beta_end,
            } => {
                check_range(*beta_start, *beta_end)?;
                linspace(*beta_start, *beta_end, num_timesteps)
            }
            Self::ScaledLinear {
                beta_start,
                beta_end,
            } => {
                check_range(*beta_start, *beta_end)?;
                linspace(beta_start.sqrt(), beta_end.sqrt(), num_timesteps)
                    .into_iter()
                    .map(|b| b * b)
                    .collect()
            }
            Self::Cosine { s, max_beta } => cosine(*s, *max_beta, num_timesteps)?,
            Self::Sigmoid {
                beta_start,
                beta_end,
            } => {
                check_range(*beta_start, *beta_end)?;
                linspace(-6.0, 6.0, num_timesteps)
                    .into_iter()
                    .map(|x| beta_start + (beta_end - beta_start) / (1.0 + (-x).exp()))
                    .collect()
            }
            Self::Custom(betas) => {
                if betas.len() != num_timesteps {
                    return Err(DiffusionError::config(
                        "Custom betas length",
                        betas.len(),
                        format!("must equal num_timesteps = {num_timesteps}"),
                    ));
                }
                betas.clone()
            }
        };
        validate_betas(&betas)?;
        Ok(betas)
    }
}

/// Checks every β: finite, in (0, 1), and exactly 1 allowed only as the last step
/// (the terminal step of a zero-terminal-SNR schedule).
pub(crate) fn validate_betas(betas: &[f64]) -> error::Result<()> {
    if betas.is_empty() {
        return Err(DiffusionError::config(
            "num_timesteps",
            0,
            "a schedule needs at least one timestep",
        ));
    }
    let last = betas.len() - 1;
    for (index, &value) in betas.iter().enumerate() {
        let ok =
            value.is_finite() && value > 0.0 && (value < 1.0 || (value == 1.0 && index == last));
        if !ok {
            return Err(DiffusionError::InvalidBeta { index, value });
        }
    }
    Ok(())
}

fn check_range(beta_start: f64, beta_end: f64) -> error::Result<()> {
    for (name, v) in [("beta_start", beta_start), ("beta_end", beta_end)] {
        if !(v.is_finite() && v > 0.0 && v <= 1.0) {
            return Err(DiffusionError::config(
                name,
                v,
                "must be finite and in (0, 1]",
            ));
        }
    }
    if beta_end < beta_start {
        return Err(DiffusionError::config(
            "beta_end",
            beta_end,
            format!("must not be below beta_start = {beta_start}"),
        ));
    }
    Ok(())
}

/// `n` evenly spaced values from `start` to `end` inclusive, as `numpy.linspace`.
pub(crate) fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f64;
    let mut out: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
    out[n - 1] = end;
    out
}

/// Nichol & Dhariwal (2021), eq. 17: β_t = min(1 − ᾱ(t+1)/ᾱ(t), max_beta).
fn cosine(s: f64, max_beta: f64, num_timesteps: usize) -> error::Result<Vec<f64>> {
    if !(s.is_finite() && s >= 0.0) {
        return Err(DiffusionError::config(
            "cosine s",
            s,
            "must be finite and >= 0",
        ));
    }
    if !(max_beta.is_finite() && max_beta > 0.0 && max_beta <= 1.0) {
        return Err(DiffusionError::config(
            "cosine max_beta",
            max_beta,
            "must be finite and in (0, 1]",
        ));
    }
    let alpha_bar = |u: f64| {
        ((u + s) / (1.0 + s) * core::f64::consts::FRAC_PI_2)
            .cos()
            .powi(2)
    };
    let n = num_timesteps as f64;
    Ok((0..num_timesteps)
        .map(|i| {
            let beta = 1.0 - alpha_bar((i + 1) as f64 / n) / alpha_bar(i as f64 / n);
            beta.min(max_beta)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_endpoints_and_spacing() {
        let v = linspace(1.0, 3.0, 5);
        assert_eq!(v, vec![1.0, 1.5, 2.0, 2.5, 3.0]);
        assert_eq!(linspace(0.5, 0.7, 1), vec![0.5]);
    }

    #[test]
    fn cosine_first_beta_matches_closed_form() {
        // β_0 = 1 − cos²((1/T + s)/(1+s)·π/2) / cos²(s/(1+s)·π/2), computed by hand for T = 4.
        let b = BetaSchedule::cosine().betas(4).unwrap();
        let f = |u: f64| {
            ((u + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                .cos()
                .powi(2)
        };
        assert!((b[0] - (1.0 - f(0.25) / f(0.0))).abs() < 1e-15);
        // The last step hits the 0.999 clip (ᾱ(1) = 0).
        assert_eq!(b[3], 0.999);
    }

    #[test]
    fn rejects_bad_values_by_name() {
        let e = BetaSchedule::Linear {
            beta_start: f64::NAN,
            beta_end: 0.02,
        }
        .betas(10);
        assert!(e.unwrap_err().to_string().contains("beta_start"));
        let e = BetaSchedule::Custom(vec![0.1, 1.0, 0.2])
            .betas(3)
            .unwrap_err();
        assert_eq!(
            e,
            DiffusionError::InvalidBeta {
                index: 1,
                value: 1.0
            }
        );
        assert!(BetaSchedule::Custom(vec![0.1, 1.0]).betas(2).is_ok());
        assert!(BetaSchedule::default().betas(0).is_err());
    }
}
