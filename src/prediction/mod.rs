//! What a model predicts and what that means for the reverse step: the ε / x_0 / v
//! [`Prediction`] targets and the conversions between them, and the
//! [`Parameterization`] of p_θ(x_{t−1} | x_t) by a model's raw output (prediction plus
//! [`VarianceKind`]), and variance tables ([`ReverseVariances`]: a decoder variance
//! choice, Analytic-DPM's optimal variances).

mod conversions;
mod parameterization;
mod reverse_variances;

pub use conversions::{Prediction, eps_from_x0, v_from_x0_eps, x0_from_eps};
pub use parameterization::{Parameterization, ReverseStep, VarianceKind};
pub use reverse_variances::{DecoderVariance, EpsSecondMoment, ReverseVariances};
