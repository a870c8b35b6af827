//! Forward processes: the [`ForwardProcess`] trait q(x_t | x_0) and q(x_t | x_{t−1}), the
//! [`Posterior`] trait q(x_{t−1} | x_t, x_0), and the two processes the crate ships:
//! variance preserving ([`VpProcess`], DDPM) and variance exploding ([`VeProcess`], NCSN).

mod forward;
mod posterior;
mod variance_exploding;
mod variance_preserving;

pub use forward::ForwardProcess;
pub use posterior::Posterior;
pub use variance_exploding::{VeConfig, VeProcess};
pub use variance_preserving::VpProcess;

/// The linear-β DDPM process with `steps` steps, for unit tests.
#[cfg(test)]
pub(crate) fn test_vp(steps: usize) -> VpProcess {
    VpProcess::new(
        crate::schedule::ScheduleConfig::new()
            .with_num_timesteps(steps)
            .init()
            .unwrap(),
    )
}
