//! The two forward processes the crate ships: variance preserving (DDPM) and variance
//! exploding (NCSN).

mod variance_exploding;
mod variance_preserving;

pub use variance_exploding::{VeConfig, VeProcess};
pub use variance_preserving::VpProcess;
