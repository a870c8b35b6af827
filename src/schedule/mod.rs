//! Variance schedules β_1..β_T, the tables derived from them, respacing, and the
//! per-example [`Timesteps`] that index them.

mod beta_schedule;
mod discrete;
mod noise_schedule;
mod spacing;
mod timesteps;
mod zero_snr;

pub use beta_schedule::BetaSchedule;
pub(crate) use beta_schedule::linspace;
pub use discrete::{DiscreteSchedule, ScheduleConfig};
pub use noise_schedule::NoiseSchedule;
pub use spacing::Spacing;
pub(crate) use timesteps::check_same_shape;
pub use timesteps::{TimestepInput, Timesteps, constant_timesteps};
