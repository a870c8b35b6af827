//! Models: the `Denoiser` trait that losses and samplers take, and the reference UNet.

mod denoiser;
mod mlp;
mod unet;

pub use denoiser::Denoiser;
pub use mlp::{Mlp, MlpConfig};
pub use unet::{AttnBlock, ResBlock, Stage, UNet, UNetConfig, timestep_embedding};
