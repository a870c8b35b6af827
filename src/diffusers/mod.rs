//! diffusers interop (feature `diffusers`): pretrained `UNet2DModel` folders, scheduler
//! configs and pipeline folders, read and written exactly.
//!
//! - [`load_unet`] / [`save_unet`]: a `UNet2DModel` folder (`config.json` +
//!   `diffusion_pytorch_model.safetensors`) ↔ the reference [`UNet`] and its
//!   [`UNetConfig`] ([`unet_config_from_json`] lists what maps to what, and what is
//!   refused).
//! - [`SchedulerConfig`]: a `scheduler_config.json` of `DDPMScheduler`,
//!   `DDIMScheduler` or `DPMSolverMultistepScheduler` ↔ the schedule, x̂_0 options and
//!   a [`DiffusersSampler`] that takes diffusers' steps.
//! - [`load_pipeline`] / [`save_pipeline`]: a pipeline folder (`model_index.json`,
//!   `unet/`, `scheduler/`).
//!
//! Nothing is loaded approximately: a config option the reference UNet cannot express, a
//! missing, extra or wrongly shaped tensor is an error naming it, never a model left
//! partly at its initial weights.
//!
//! # Example
//! ```no_run
//! use burn::tensor::Device;
//! use burn_diffusion::diffusers;
//!
//! let device = Device::flex();
//! // e.g. `hf download google/ddpm-cifar10-32 --local-dir ddpm-cifar10-32`
//! let (unet, config) = diffusers::load_unet("ddpm-cifar10-32/unet", &device)?;
//! diffusers::save_unet(&unet, &config, "exported")?; // diffusers' from_pretrained reads it
//! # Ok::<(), burn_diffusion::DiffusionError>(())
//! ```

mod json;
mod model_config;
mod scheduler;
mod weights;

use std::path::Path;

use burn::tensor::Device;

pub use model_config::{UNET_CLASS, unet_config_from_json, unet_config_to_json};
pub use scheduler::{
    DiffusersSampler, DiffusersSamplerState, SchedulerClass, SchedulerConfig, SigmaKind,
    StepArguments, TimestepSpacing,
};

use crate::error;
use crate::files::fail;
use crate::model::{UNet, UNetConfig};

/// The config file of a diffusers model folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a diffusers model folder.
pub const WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";

/// Loads a diffusers `UNet2DModel` folder (`config.json` and
/// `diffusion_pytorch_model.safetensors`) onto `device`.
///
/// The weights are read whole into memory, so the model does not depend on the folder
/// afterwards.
///
/// # Errors
/// - [`crate::DiffusionError::UnsupportedConfig`] naming the field of `config.json` that
///   is malformed or not supported ([`unet_config_from_json`]);
/// - [`crate::DiffusionError::Checkpoint`] naming the file if one is missing or
///   unreadable, if the safetensors file is malformed or truncated, or naming the tensor
///   that is missing, extra, of the wrong shape or not a float tensor.
pub fn load_unet(dir: impl AsRef<Path>, device: &Device) -> error::Result<(UNet, UNetConfig)> {
    let dir = dir.as_ref();
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| fail(&config_path, e))?;
    let config =
        unet_config_from_json(&text).map_err(|e| json::in_file(e, config_path.display()))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights_path).map_err(|e| {
        let bin = dir.join("diffusion_pytorch_model.bin");
        if bin.exists() {
            fail(
                &weights_path,
                format!("{e}; only safetensors weights are read (the folder has the PyTorch pickle {}: convert it with safetensors' `save_file`, or download the .safetensors file)", bin.display()),
            )
        } else {
            fail(&weights_path, e)
        }
    })?;
    let unet = config.init(device)?;
    let unet = weights::load_weights(unet, &config, bytes, &weights_path)?;
    Ok((unet, config))
}

/// Writes `unet` (built from `config`) as a diffusers `UNet2DModel` folder: `config.json`
/// ([`unet_config_to_json`]) and `diffusion_pytorch_model.safetensors` (float32, diffusers'
/// key names, `format = pt` metadata), which `UNet2DModel.from_pretrained(dir)` loads and
/// which gives this model's outputs. The folder is created if needed; both files are
/// written to temporary names first and renamed into place.
///
/// # Errors
/// An invalid config, or [`crate::DiffusionError::Checkpoint`] on an I/O failure.
pub fn save_unet(unet: &UNet, config: &UNetConfig, dir: impl AsRef<Path>) -> error::Result<()> {
    let dir = dir.as_ref();
    let json = unet_config_to_json(config)?;
    let bytes = weights::weights_bytes(unet, config)?;
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    write_replacing(&dir.join(WEIGHTS_FILE), &bytes)?;
    write_replacing(&dir.join(CONFIG_FILE), json.as_bytes())
}

/// The scheduler config file of a diffusers scheduler folder.
pub const SCHEDULER_FILE: &str = "scheduler_config.json";
/// The index file of a diffusers pipeline folder.
pub const MODEL_INDEX_FILE: &str = "model_index.json";

/// Reads a `scheduler_config.json` ([`SchedulerConfig::from_json`]).
///
/// # Errors
/// [`crate::DiffusionError::Checkpoint`] if the file cannot be read;
/// [`crate::DiffusionError::UnsupportedConfig`] naming the file and field.
pub fn load_scheduler_config(path: impl AsRef<Path>) -> error::Result<SchedulerConfig> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| fail(path, e))?;
    SchedulerConfig::from_json(&text).map_err(|e| json::in_file(e, path.display()))
}

/// A diffusers pipeline folder (`DDPMPipeline`, `DDIMPipeline` and the like) loaded:
/// its UNet, the UNet's config and its scheduler's config.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The `unet/` model.
    pub unet: UNet,
    /// Its configuration.
    pub unet_config: UNetConfig,
    /// The `scheduler/` config; [`SchedulerConfig::sampler`] gives the sampler.
    pub scheduler: SchedulerConfig,
}

/// Loads a diffusers pipeline folder: `model_index.json`, `unet/` (a `UNet2DModel`) and
/// `scheduler/` (one of [`SchedulerClass`]'s schedulers). The pipeline class itself is
/// not checked (unconditional `DDPMPipeline`, `DDIMPipeline` and custom pipelines with
/// these two components load alike); `model_index.json` must name `UNet2DModel` for
/// `unet` and a supported scheduler class for `scheduler`, and other components (a VAE,
/// a text encoder) are an error, since the pipeline would need them.
///
/// # Example
/// ```no_run
/// use burn::tensor::Device;
/// use burn_diffusion::{diffusers, sampler::{SampleOptions, sample_from_noise}};
///
/// let device = Device::flex();
/// let pipeline = diffusers::load_pipeline("ddpm-cifar10-32", &device)?;
/// let sampler = pipeline.scheduler.sampler(50, diffusers::StepArguments::default())?;
/// let c = pipeline.unet_config.in_channels;
/// let r = pipeline.unet_config.resolution;
/// let images = sample_from_noise(&sampler, &pipeline.unet, [4, c, r, r], &device,
///     SampleOptions::default(), |_, _| {})?.sample;
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
///
/// # Errors
/// As [`load_unet`] and [`load_scheduler_config`]; a missing or malformed
/// `model_index.json`, an unsupported component.
pub fn load_pipeline(dir: impl AsRef<Path>, device: &Device) -> error::Result<Pipeline> {
    let dir = dir.as_ref();
    let index = dir.join(MODEL_INDEX_FILE);
    let text = std::fs::read_to_string(&index).map_err(|e| fail(&index, e))?;
    check_model_index(&text).map_err(|e| json::in_file(e, index.display()))?;
    let (unet, unet_config) = load_unet(dir.join("unet"), device)?;
    let scheduler = load_scheduler_config(dir.join("scheduler").join(SCHEDULER_FILE))?;
    Ok(Pipeline {
        unet,
        unet_config,
        scheduler,
    })
}

/// Writes a pipeline folder that [`load_pipeline`] and diffusers' `DDPMPipeline` (or
/// `DDIMPipeline`, after the scheduler's class) read: `model_index.json`, `unet/`
/// ([`save_unet`]) and `scheduler/scheduler_config.json` ([`SchedulerConfig::to_json`]).
///
/// # Errors
/// As [`save_unet`] and [`SchedulerConfig::to_json`].
pub fn save_pipeline(
    unet: &UNet,
    unet_config: &UNetConfig,
    scheduler: &SchedulerConfig,
    dir: impl AsRef<Path>,
) -> error::Result<()> {
    let dir = dir.as_ref();
    let scheduler_json = scheduler.to_json()?;
    save_unet(unet, unet_config, dir.join("unet"))?;
    let scheduler_dir = dir.join("scheduler");
    std::fs::create_dir_all(&scheduler_dir).map_err(|e| fail(&scheduler_dir, e))?;
    write_replacing(
        &scheduler_dir.join(SCHEDULER_FILE),
        scheduler_json.as_bytes(),
    )?;
    let pipeline = match scheduler.class {
        SchedulerClass::Ddim => "DDIMPipeline",
        _ => "DDPMPipeline",
    };
    let index = serde_json::json!({
        "_class_name": pipeline,
        "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", scheduler.class.name()],
        "unet": ["diffusers", UNET_CLASS],
    });
    let text = serde_json::to_string_pretty(&index).unwrap_or_default() + "\n";
    write_replacing(&dir.join(MODEL_INDEX_FILE), text.as_bytes())
}

/// Checks that `model_index.json` has a `UNet2DModel` and a supported scheduler, and no
/// other component.
fn check_model_index(text: &str) -> error::Result<()> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        json::field_error(
            "model_index.json",
            "the file",
            format!("is not valid JSON: {e}"),
        )
    })?;
    let Some(map) = value.as_object() else {
        return Err(json::field_error(
            "model_index.json",
            "the file",
            "must be a JSON object",
        ));
    };
    let class_of = |key: &str| map.get(key).and_then(|v| v.get(1)).and_then(|c| c.as_str());
    if class_of("unet") != Some(UNET_CLASS) {
        return Err(json::field_error(
            "unet",
            map.get("unet").cloned().unwrap_or_default(),
            format!("the pipeline needs a {UNET_CLASS}"),
        ));
    }
    let scheduler = map.get("scheduler").cloned().unwrap_or_default();
    if !class_of("scheduler").is_some_and(|c| {
        [
            "DDPMScheduler",
            "DDIMScheduler",
            "DPMSolverMultistepScheduler",
        ]
        .contains(&c)
    }) {
        return Err(json::field_error(
            "scheduler",
            scheduler,
            "supported: DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler",
        ));
    }
    if let Some((key, v)) = map
        .iter()
        .find(|(k, v)| !k.starts_with('_') && *k != "unet" && *k != "scheduler" && !v.is_null())
    {
        return Err(json::field_error(
            key,
            v,
            "the pipeline needs this component, which this crate does not load",
        ));
    }
    Ok(())
}

/// Writes `bytes` to a temporary sibling of `path`, then renames it over `path`.
fn write_replacing(path: &Path, bytes: &[u8]) -> error::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| fail(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(path, e))
}
