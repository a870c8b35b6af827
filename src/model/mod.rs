//! Models: the [`Denoiser`] trait that losses and samplers take, the reference DDPM
//! [`UNet`], and a small [`Mlp`] for low-dimensional data.

mod denoiser;
mod mlp;
mod unet;
mod with_labels;

pub use denoiser::{Denoiser, LabeledFn};
pub use mlp::{Mlp, MlpConfig};
pub use unet::{TimeEmbedding, UNet, UNetConfig, timestep_embedding};
pub use with_labels::WithLabels;
