//! diffusers interop (feature `diffusers`): pretrained `UNet2DModel` folders, scheduler
//! configs and pipeline folders, read and written exactly.
//!
//! - [`load_unet`] / [`save_unet`]: a `UNet2DModel` folder (`config.json` +
//!   `diffusion_pytorch_model.safetensors`) ↔ the reference [`UNet`] and its
//!   [`UNetConfig`] ([`unet_config_from_json`] lists what maps to what, and what is
//!   refused).
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
    DiffusersSampler, DiffusersSamplerState, SchedulerClass, SchedulerConfig, StepArguments,
    TimestepSpacing,
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

/// Writes `bytes` to a temporary sibling of `path`, then renames it over `path`.
fn write_replacing(path: &Path, bytes: &[u8]) -> error::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| fail(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(path, e))
}
