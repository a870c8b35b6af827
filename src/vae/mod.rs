//! Variational autoencoder primitives: the diagonal Gaussian of q_φ(z | x) and p(z), the
//! decoder likelihood, the ELBO and the importance-weighted log-likelihood, and a
//! reference convolutional VAE.

mod diagonal_gaussian;
mod elbo;
mod model;

pub use diagonal_gaussian::DiagonalGaussian;
pub use elbo::{Elbo, Likelihood, elbo, importance_weighted_log_likelihood, nll_bits_per_dim};
pub use model::{Vae, VaeConfig};
