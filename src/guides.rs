//! The guides of the repository's `docs/` folder, rendered here so that a reader of the
//! API docs finds them.

// The guides' intra-doc links resolve in this scope.
#[allow(unused_imports)]
use crate::{Denoiser, Loss};

#[doc = include_str!("../docs/math.md")]
pub mod math {}

#[doc = include_str!("../docs/samplers.md")]
pub mod samplers {}

#[doc = include_str!("../docs/from-diffusers.md")]
pub mod from_diffusers {}

#[doc = include_str!("../docs/training.md")]
pub mod training {}

#[doc = include_str!("../docs/metrics.md")]
pub mod metrics {}

#[doc = include_str!("../docs/vae.md")]
pub mod vae {}

#[doc = include_str!("../docs/performance.md")]
pub mod performance {}

#[doc = include_str!("../docs/benchmarks.md")]
pub mod benchmarks {}

#[cfg(feature = "diffusers")]
#[cfg_attr(docsrs, doc(cfg(feature = "diffusers")))]
#[doc = include_str!("../docs/diffusers.md")]
pub mod diffusers {}
