//! Models: the [`Denoiser`] trait that losses and samplers take, the reference DDPM
//! [`UNet`], and a small [`Mlp`] for low-dimensional data.

mod denoiser;
mod mlp;
mod unet;

pub use denoiser::Denoiser;
pub use mlp::{Mlp, MlpConfig};
pub use unet::{TimeEmbedding, UNet, UNetConfig, timestep_embedding};
