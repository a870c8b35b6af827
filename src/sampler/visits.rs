//! The timesteps a sampler visits, validated once: the bookkeeping every sampler shares.

use crate::error::{self, DiffusionError};
use crate::process::ForwardProcess;
use crate::schedule::{Spacing, Timesteps};

/// The process timesteps a sampler visits, in visiting order, with the training timestep
/// the model is called with at each visit.
///
/// A sampler built on `Visits` is its step's math and little else: the constructors check
/// the grid once (non-empty, in `0..T`, decreasing), [`Visits::get`] turns a visit index
/// into its timestep or an error, [`Visits::next`] is the timestep the step goes to
/// (`None` after the last visit: the step reaches the data), and
/// [`crate::sampler::ReverseSampler`]'s `timesteps()` and `model_timestep()` read it.
///
/// # Example
/// ```
/// use burn_diffusion::process::VpProcess;
/// use burn_diffusion::sampler::Visits;
/// use burn_diffusion::schedule::{ScheduleConfig, Spacing};
///
/// let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
/// let visits = Visits::spaced(&process, &Spacing::Trailing { steps: 4 }).unwrap();
/// assert_eq!(visits.timesteps(), &[999, 749, 499, 249]);
/// assert_eq!(visits.next(0), Some(749));
/// assert_eq!(visits.next(3), None);
/// assert!(visits.get(4).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visits {
    timesteps: Vec<usize>,
    model_timesteps: Vec<usize>,
}

impl Visits {
    /// Visits `timesteps`, which must be strictly decreasing, non-empty and in `0..T`.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] for an empty or not strictly decreasing list,
    /// [`DiffusionError::TimestepOutOfRange`] for a timestep ≥ T.
    pub fn new<P: ForwardProcess + ?Sized>(
        process: &P,
        timesteps: Vec<usize>,
    ) -> error::Result<Self> {
        check_grid(process, &timesteps, |a, b| a > b, "strictly decreasing")?;
        Ok(Self::unchecked(process, timesteps))
    }

    /// Visits that may repeat a timestep (a sampler that calls the model more than once
    /// per level, as Heun's corrector or Langevin's inner steps): non-increasing,
    /// non-empty and in `0..T`.
    ///
    /// # Errors
    /// As [`Visits::new`], with "non-increasing" in place of "strictly decreasing".
    pub fn with_repeats<P: ForwardProcess + ?Sized>(
        process: &P,
        timesteps: Vec<usize>,
    ) -> error::Result<Self> {
        check_grid(process, &timesteps, |a, b| a >= b, "non-increasing")?;
        Ok(Self::unchecked(process, timesteps))
    }

    /// Visits in increasing order, for inversion (encoding x_0 to x_T): strictly
    /// increasing, non-empty and in `0..T`.
    ///
    /// # Errors
    /// As [`Visits::new`], with "strictly increasing" in place of "strictly decreasing".
    pub fn increasing<P: ForwardProcess + ?Sized>(
        process: &P,
        timesteps: Vec<usize>,
    ) -> error::Result<Self> {
        check_grid(process, &timesteps, |a, b| a < b, "strictly increasing")?;
        Ok(Self::unchecked(process, timesteps))
    }

    /// The timesteps `spacing` keeps, from the largest down.
    ///
    /// # Errors
    /// As [`Spacing::timesteps`].
    pub fn spaced<P: ForwardProcess + ?Sized>(
        process: &P,
        spacing: &Spacing,
    ) -> error::Result<Self> {
        let mut timesteps = spacing.timesteps(process.num_timesteps())?;
        timesteps.reverse();
        Self::new(process, timesteps)
    }

    /// Every timestep of the process, T − 1 down to 0.
    pub fn every<P: ForwardProcess + ?Sized>(process: &P) -> Self {
        Self::unchecked(process, (0..process.num_timesteps()).rev().collect())
    }

    fn unchecked<P: ForwardProcess + ?Sized>(process: &P, timesteps: Vec<usize>) -> Self {
        let model_timesteps = timesteps
            .iter()
            .map(|t| process.model_timestep(*t))
            .collect();
        Self {
            timesteps,
            model_timesteps,
        }
    }

    /// The visits at `indices` of this grid, in that order (for samplers that call the
    /// model more than once per level); `indices` must be non-decreasing and in range.
    pub(crate) fn select(&self, indices: &[usize]) -> Self {
        Self {
            timesteps: indices.iter().map(|&i| self.timesteps[i]).collect(),
            model_timesteps: indices.iter().map(|&i| self.model_timesteps[i]).collect(),
        }
    }

    /// The visited process timesteps, in visiting order.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// The number of visits (never 0).
    pub fn len(&self) -> usize {
        self.timesteps.len()
    }

    /// Always false: a `Visits` has at least one visit.
    pub fn is_empty(&self) -> bool {
        self.timesteps.is_empty()
    }

    /// The timestep of visit `i`.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] when `i` is past the last visit.
    pub fn get(&self, i: usize) -> error::Result<usize> {
        self.timesteps.get(i).copied().ok_or_else(|| {
            DiffusionError::config("step index", i, format!("must be below {}", self.len()))
        })
    }

    /// The timestep after visit `i`, or `None` when visit `i` is the last (or past it).
    pub fn next(&self, i: usize) -> Option<usize> {
        self.timesteps.get(i + 1).copied()
    }

    /// The training timestep the model is called with at visit `i`
    /// ([`ForwardProcess::model_timestep`] of the visited timestep).
    ///
    /// # Panics
    /// When `i ≥ len()` (the sampling loop never asks past the end).
    pub fn model_timestep(&self, i: usize) -> usize {
        self.model_timesteps[i]
    }
}

/// A non-empty grid in `0..T` whose neighbours all satisfy `ordered`, or an error naming
/// the first problem.
fn check_grid<P: ForwardProcess + ?Sized>(
    process: &P,
    timesteps: &[usize],
    ordered: impl Fn(usize, usize) -> bool,
    order: &str,
) -> error::Result<()> {
    if timesteps.is_empty() {
        return Err(DiffusionError::config(
            "timesteps",
            "[]",
            "at least one timestep is needed",
        ));
    }
    if let Some(w) = timesteps.windows(2).find(|w| !ordered(w[0], w[1])) {
        return Err(DiffusionError::config(
            "timesteps",
            format!("{timesteps:?}"),
            format!("must be {order} ({} then {})", w[0], w[1]),
        ));
    }
    Timesteps::new(timesteps.to_vec()).check_range(process.num_timesteps())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::VpProcess;
    use crate::schedule::{DiscreteSchedule, ScheduleConfig};

    fn process(steps: usize) -> VpProcess {
        crate::process::test_vp(steps)
    }

    #[test]
    fn strict_grids_reject_repeats_increase_range_and_empty() {
        let p = process(10);
        assert!(Visits::new(&p, vec![9, 5, 0]).is_ok());
        for bad in [vec![], vec![5, 5], vec![3, 7], vec![10, 2]] {
            assert!(Visits::new(&p, bad.clone()).is_err(), "{bad:?}");
        }
        assert!(matches!(
            Visits::new(&p, vec![12, 3]),
            Err(DiffusionError::TimestepOutOfRange { timestep: 12, .. })
        ));
    }

    #[test]
    fn repeats_are_allowed_only_where_asked() {
        let p = process(10);
        let v = Visits::with_repeats(&p, vec![9, 9, 4, 4, 0]).unwrap();
        assert_eq!(v.len(), 5);
        assert!(Visits::with_repeats(&p, vec![4, 9]).is_err());
    }

    #[test]
    fn next_and_get_walk_the_grid_and_stop_at_the_end() {
        let p = process(10);
        let v = Visits::every(&p);
        assert_eq!(v.timesteps(), &[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(v.next(0), Some(8));
        assert_eq!(v.next(9), None);
        assert_eq!(v.get(9).unwrap(), 0);
        assert!(v.get(10).is_err());
        assert!(!v.is_empty());
    }

    #[test]
    fn model_timesteps_follow_a_respaced_schedule() {
        let schedule: DiscreteSchedule = ScheduleConfig::new().init().unwrap();
        let respaced = schedule.respace(&Spacing::Trailing { steps: 4 }).unwrap();
        let p = VpProcess::new(respaced);
        let v = Visits::every(&p);
        assert_eq!(v.timesteps(), &[3, 2, 1, 0]);
        let model: Vec<usize> = (0..4).map(|i| v.model_timestep(i)).collect();
        assert_eq!(model, vec![999, 749, 499, 249]);
    }
}
