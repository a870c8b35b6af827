//! Choosing K of the T timesteps: diffusers' spacings and improved-diffusion's section counts.

use core::fmt;
use core::str::FromStr;

use crate::error::{DiffusionError, Result};
use crate::schedule::beta_schedule::linspace;

/// Which `K` of the `T` training timesteps a sampler (or a respaced schedule) visits.
///
/// [`Spacing::timesteps`] returns the kept 0-based timesteps in ascending order.
///
/// | variant | kept timesteps | source |
/// |---|---|---|
/// | `Leading` | `i·⌊T/K⌋ + offset`, i = 0..K | diffusers `timestep_spacing="leading"` with `steps_offset` |
/// | `Trailing` | `round(T − i·T/K) − 1`, i = 0..K | diffusers `"trailing"` (Lin et al. 2023, Table 2) |
/// | `Linspace` | `round(linspace(0, T−1, K))` | diffusers `"linspace"` |
/// | `Sections` | per section, evenly strided counts (`"10,10,30"`) | improved-diffusion `space_timesteps` |
/// | `Ddim` | `range(0, T, stride)` with exactly K entries (`"ddim50"`) | improved-diffusion `space_timesteps` |
///
/// Rounding is half-to-even, as NumPy's and Python's.
///
/// # Example
/// ```
/// use burn_diffusion::schedule::Spacing;
///
/// // diffusers' DDIM with 5 of 1000 steps and steps_offset = 1.
/// let kept = Spacing::Leading { steps: 5, offset: 1 }.timesteps(1000).unwrap();
/// assert_eq!(kept, vec![1, 201, 401, 601, 801]);
/// let kept = "ddim50".parse::<Spacing>().unwrap().timesteps(1000).unwrap();
/// assert_eq!(kept.len(), 50);
/// assert!(Spacing::Linspace { steps: 0 }.timesteps(1000).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spacing {
    /// diffusers' `leading` spacing: multiples of ⌊T/K⌋, shifted by `offset`.
    Leading {
        /// Number of kept steps K.
        steps: usize,
        /// diffusers' `steps_offset` (Stable Diffusion uses 1).
        offset: usize,
    },
    /// diffusers' `trailing` spacing: always keeps the last timestep T − 1.
    Trailing {
        /// Number of kept steps K.
        steps: usize,
    },
    /// diffusers' `linspace` spacing: K rounded, evenly spaced points of [0, T − 1].
    Linspace {
        /// Number of kept steps K.
        steps: usize,
    },
    /// improved-diffusion's section counts: T is cut into equal sections and the i-th
    /// section keeps `counts[i]` evenly strided steps.
    Sections(Vec<usize>),
    /// improved-diffusion's `"ddimK"`: the integer stride whose `range(0, T, stride)` has
    /// exactly K entries.
    Ddim(usize),
}

impl Spacing {
    /// The kept timesteps of a `T`-step schedule, ascending and distinct.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidRespacing`] if no step would be kept, if more than `T`
    /// are requested, if `Leading`'s offset pushes a step past `T − 1`, if a section asks
    /// for more steps than it holds, or if no stride gives exactly K steps (`Ddim`).
    pub fn timesteps(&self, num_timesteps: usize) -> Result<Vec<usize>> {
        let t = num_timesteps;
        let fail = |reason: String| DiffusionError::InvalidRespacing {
            spec: self.to_string(),
            num_timesteps: t,
            reason,
        };
        let requested = match self {
            Self::Leading { steps, .. } | Self::Trailing { steps } | Self::Linspace { steps } => {
                *steps
            }
            Self::Sections(counts) => counts.iter().sum(),
            Self::Ddim(steps) => *steps,
        };
        if requested == 0 {
            return Err(fail("at least one step must be kept".into()));
        }
        if requested > t {
            return Err(fail(format!("cannot keep {requested} of {t} steps")));
        }
        let mut kept = match self {
            Self::Leading { steps, offset } => {
                let ratio = t / steps;
                let last = ((steps - 1) * ratio).checked_add(*offset);
                if last.is_none_or(|last| last >= t) {
                    let last = last.map_or("past usize::MAX".into(), |l| l.to_string());
                    return Err(fail(format!(
                        "offset {offset} puts the last step at {last}, beyond {}",
                        t - 1
                    )));
                }
                (0..*steps).map(|i| i * ratio + offset).collect()
            }
            Self::Trailing { steps } => {
                let step = t as f64 / *steps as f64;
                (0..*steps)
                    .map(|i| (t as f64 - i as f64 * step).round_ties_even() as usize - 1)
                    .collect()
            }
            Self::Linspace { steps } => linspace(0.0, (t - 1) as f64, *steps)
                .into_iter()
                .map(|v| v.round_ties_even() as usize)
                .collect(),
            Self::Sections(counts) => sections(counts, t).map_err(fail)?,
            Self::Ddim(steps) => (1..=t)
                .find(|stride| t.div_ceil(*stride) == *steps)
                .map(|stride| (0..t).step_by(stride).collect())
                .ok_or_else(|| fail(format!("no integer stride gives exactly {steps} steps")))?,
        };
        kept.sort_unstable();
        kept.dedup();
        Ok(kept)
    }
}

/// improved-diffusion's `space_timesteps` for explicit section counts.
fn sections(counts: &[usize], t: usize) -> core::result::Result<Vec<usize>, String> {
    let per = t / counts.len();
    let extra = t % counts.len();
    let mut start = 0;
    let mut kept = Vec::new();
    for (i, &count) in counts.iter().enumerate() {
        let size = per + usize::from(i < extra);
        if size < count {
            return Err(format!("section {i} has {size} steps, cannot keep {count}"));
        }
        let stride = if count <= 1 {
            1.0
        } else {
            (size - 1) as f64 / (count - 1) as f64
        };
        let mut cur = 0.0_f64;
        for _ in 0..count {
            kept.push(start + cur.round_ties_even() as usize);
            cur += stride;
        }
        start += size;
    }
    Ok(kept)
}

impl fmt::Display for Spacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leading { steps, offset } => write!(f, "leading{steps}+{offset}"),
            Self::Trailing { steps } => write!(f, "trailing{steps}"),
            Self::Linspace { steps } => write!(f, "linspace{steps}"),
            Self::Sections(counts) => {
                let parts: Vec<String> = counts.iter().map(|c| c.to_string()).collect();
                write!(f, "{}", parts.join(","))
            }
            Self::Ddim(steps) => write!(f, "ddim{steps}"),
        }
    }
}

impl FromStr for Spacing {
    type Err = DiffusionError;

    /// Parses improved-diffusion's strings (`"10,10,30"`, `"ddim50"`) and this type's
    /// own display forms (`"leading50+1"`, `"trailing50"`, `"linspace50"`).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let bad = |reason: &str| DiffusionError::config("spacing", format!("{s:?}"), reason);
        let number = |text: &str| {
            text.trim()
                .parse::<usize>()
                .map_err(|_| bad("expected a non-negative integer step count"))
        };
        if let Some(rest) = s.strip_prefix("ddim") {
            return Ok(Self::Ddim(number(rest)?));
        }
        if let Some(rest) = s.strip_prefix("trailing") {
            return Ok(Self::Trailing {
                steps: number(rest)?,
            });
        }
        if let Some(rest) = s.strip_prefix("linspace") {
            return Ok(Self::Linspace {
                steps: number(rest)?,
            });
        }
        if let Some(rest) = s.strip_prefix("leading") {
            let (steps, offset) = rest.split_once('+').unwrap_or((rest, "0"));
            return Ok(Self::Leading {
                steps: number(steps)?,
                offset: number(offset)?,
            });
        }
        let counts = s.split(',').map(number).collect::<Result<Vec<_>>>()?;
        Ok(Self::Sections(counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for text in ["10,10,30", "ddim50", "leading5+1", "trailing7", "linspace3"] {
            let s: Spacing = text.parse().unwrap();
            assert_eq!(s.to_string(), text);
        }
        assert!("ddimx".parse::<Spacing>().is_err());
        assert!("10,-1".parse::<Spacing>().is_err());
    }

    #[test]
    fn sections_round_half_to_even() {
        // T = 10 in one section keeping 5: stride 9/4 = 2.25 → 0, 2.25, 4.5, 6.75, 9
        // → 0, 2, 4 (4.5 rounds to even), 7, 9.
        assert_eq!(
            Spacing::Sections(vec![5]).timesteps(10).unwrap(),
            vec![0, 2, 4, 7, 9]
        );
    }

    #[test]
    fn errors_name_the_spacing() {
        let e = Spacing::Ddim(999).timesteps(1000).unwrap_err();
        assert!(e.to_string().contains("ddim999"), "{e}");
        assert!(
            Spacing::Leading {
                steps: 5,
                offset: 201
            }
            .timesteps(1000)
            .is_err()
        );
        assert!(Spacing::Trailing { steps: 11 }.timesteps(10).is_err());
        assert!(Spacing::Sections(vec![6, 1]).timesteps(10).is_err());
        // An offset that overflows is an error, not a wrapped-around timestep.
        let huge = Spacing::Leading {
            steps: 5,
            offset: usize::MAX,
        };
        let e = huge.timesteps(1000).unwrap_err().to_string();
        assert!(e.contains("past usize::MAX"), "{e}");
    }
}
