//! The crate's single error type.

use thiserror::Error;

/// Everything that can go wrong in `burn-diffusion`.
///
/// Configuration is validated once, at construction; tensor functions validate the
/// shapes and timesteps a caller passes in. Every message names the offending value.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum DiffusionError {
    /// A configuration value is out of its allowed range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidConfig {
        /// Name of the parameter.
        name: &'static str,
        /// The value that was given, formatted.
        value: String,
        /// What the value must satisfy.
        reason: String,
    },
    /// A variance β_t outside (0, 1] or not finite.
    #[error(
        "invalid beta[{index}] = {value}: betas must be finite and in (0, 1] (exactly 1 only as the last step of a zero-terminal-SNR schedule)"
    )]
    InvalidBeta {
        /// 0-based timestep of the bad β.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// A timestep spacing or respacing that cannot be applied.
    #[error("invalid respacing {spec:?} of {num_timesteps} timesteps: {reason}")]
    InvalidRespacing {
        /// The requested spacing, formatted.
        spec: String,
        /// Number of timesteps of the schedule being respaced.
        num_timesteps: usize,
        /// Why it is rejected.
        reason: String,
    },
    /// A per-example timestep outside `0..num_timesteps`.
    #[error("timestep {timestep} at batch index {index} is out of range 0..{num_timesteps}")]
    TimestepOutOfRange {
        /// The bad timestep.
        timestep: i64,
        /// Its position in the batch.
        index: usize,
        /// Number of timesteps of the process.
        num_timesteps: usize,
    },
    /// A class label outside the model's class embedding, `0..num_labels` (see
    /// [`crate::Denoiser::check_labels`]).
    #[error(
        "label {label} at index {index} is out of range 0..{num_labels} of the model's class embedding"
    )]
    LabelOutOfRange {
        /// The bad label.
        label: i64,
        /// Its position among the labels checked.
        index: usize,
        /// Number of rows of the class embedding (the classes, and the null label if any).
        num_labels: usize,
    },
    /// A tensor a model or function cannot take: an empty batch, the wrong rank, channel
    /// count or resolution (checked before the call, see [`crate::Denoiser::check_input`]).
    #[error("invalid {what} of shape {shape:?}: {reason}")]
    InvalidInput {
        /// What the tensor is (e.g. "UNet input x_t").
        what: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// What is wrong with it.
        reason: String,
    },
    /// Two tensors (or a tensor and the timesteps) disagree in shape.
    #[error("shape mismatch for {what}: expected {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// What was being compared.
        what: &'static str,
        /// The shape that was required.
        expected: Vec<usize>,
        /// The shape that was given.
        got: Vec<usize>,
    },
    /// Saving or loading a model or its configuration failed.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file involved.
        path: String,
        /// What went wrong (I/O, format, or weights that do not fit the configuration).
        reason: String,
    },
    /// Reading a tensor back from its device failed.
    #[error("could not read tensor {what} from its device: {reason}")]
    TensorRead {
        /// Which tensor.
        what: &'static str,
        /// The backend's message.
        reason: String,
    },
    /// Training produced a NaN or infinite loss (a learning rate too high, or bad data).
    #[error("the loss at training step {step} is {value}: training diverged")]
    NonFiniteLoss {
        /// The 0-based step.
        step: usize,
        /// The loss.
        value: f64,
    },
    /// A field of a foreign configuration file (a diffusers `config.json`,
    /// `scheduler_config.json` or `model_index.json`) that is malformed, unknown, or
    /// names an option this crate cannot reproduce exactly.
    #[error("{file}: field `{field}` = {value}: {reason}")]
    UnsupportedConfig {
        /// The file (or, for a config given as a string, what it is).
        file: String,
        /// The field.
        field: String,
        /// Its value, as JSON.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A data file (dataset, image) could not be read, parsed or written.
    #[error("data file {path}: {reason}")]
    Data {
        /// The file involved.
        path: String,
        /// What went wrong: I/O, a bad header, a truncated body, wrong counts.
        reason: String,
    },
}

/// Shorthand for `Result<T, DiffusionError>`.
pub type Result<T> = core::result::Result<T, DiffusionError>;

impl DiffusionError {
    /// An [`DiffusionError::InvalidConfig`] for `name = value`.
    pub(crate) fn config(
        name: &'static str,
        value: impl core::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidConfig {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// An [`DiffusionError::InvalidInput`] for the tensor `what` of `shape`.
    pub(crate) fn input(what: &'static str, shape: &[usize], reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            what,
            shape: shape.to_vec(),
            reason: reason.into(),
        }
    }

    /// A [`DiffusionError::Data`] for the file at `path`.
    pub(crate) fn data(path: impl AsRef<std::path::Path>, reason: impl Into<String>) -> Self {
        Self::Data {
            path: path.as_ref().display().to_string(),
            reason: reason.into(),
        }
    }
}
