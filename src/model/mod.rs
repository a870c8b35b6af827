//! Models: the `Denoiser` trait that losses and samplers take.

mod denoiser;

pub use denoiser::Denoiser;
