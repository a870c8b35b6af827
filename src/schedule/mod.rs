//! Variance schedules β_1..β_T, the tables derived from them, and respacing.

mod beta_schedule;
mod discrete;
mod noise_schedule;
mod spacing;
mod zero_snr;

pub use beta_schedule::BetaSchedule;
pub use discrete::{DiscreteSchedule, ScheduleConfig};
pub use noise_schedule::NoiseSchedule;
pub use spacing::Spacing;
