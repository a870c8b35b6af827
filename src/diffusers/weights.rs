//! diffusers' `diffusion_pytorch_model.safetensors` ↔ the reference [`UNet`], through
//! burn-store's safetensors store, its PyTorch adapters and an exact key remapping.

use std::collections::BTreeMap;
use std::path::Path;

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleContext,
    ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, SafetensorsStore, bridge,
};
use burn::tensor::{DType, TensorData};

use crate::error::{self, DiffusionError};
use crate::files::fail;
use crate::model::{UNet, UNetConfig};

/// One tensor of the model: its path here, its key in diffusers (and the key of folders
/// written before diffusers 0.15, for attention projections), and its shape there.
#[derive(Debug, Clone)]
struct Entry {
    /// The path here with a normalization's `gamma`/`beta` as PyTorch's `weight`/`bias`: the
    /// name burn-store's PyTorch adapter looks up.
    ours_pytorch: String,
    key: String,
    legacy: Option<String>,
    shape: Vec<usize>,
}

/// Every tensor of `unet` with its diffusers key, in the module's order.
fn entries(unet: &UNet, config: &UNetConfig) -> error::Result<Vec<Entry>> {
    let prefixes = module_prefixes(config);
    unet.collect(None, None, false)
        .into_iter()
        .map(|t| {
            let (module, param) = t.name.rsplit_once('.').unwrap_or(("", &t.name));
            let Some((key_module, legacy_module)) = prefixes.get(module) else {
                return Err(DiffusionError::config(
                    "UNet tensor",
                    &t.name,
                    "has no diffusers counterpart (a bug: please report it)",
                ));
            };
            let param = match param {
                "gamma" => "weight",
                "beta" => "bias",
                other => other,
            };
            let dims = t.shape.as_slice().to_vec();
            let shape = match (dims.as_slice(), kind(&t.name)) {
                ([i, o], Kind::Linear) => vec![*o, *i],
                ([o, i, 1, 1], Kind::AttentionProjection) => vec![*o, *i],
                _ => dims,
            };
            Ok(Entry {
                ours_pytorch: format!("{module}.{param}"),
                key: format!("{key_module}.{param}"),
                legacy: legacy_module.as_ref().map(|m| format!("{m}.{param}")),
                shape,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Linear,
    AttentionProjection,
    Other,
}

/// What kind of layer holds the tensor at `path` (a path of this crate's UNet).
fn kind(path: &str) -> Kind {
    let parts: Vec<&str> = path.rsplit('.').take(3).collect();
    match parts.as_slice() {
        ["weight", "q" | "k" | "v" | "proj_out", "attn" | "mid_attn"] => Kind::AttentionProjection,
        [_, "temb_dense0" | "temb_dense1" | "temb_proj", ..] => Kind::Linear,
        _ => Kind::Other,
    }
}

/// Our module path → (diffusers module path, legacy diffusers path) for every leaf layer.
fn module_prefixes(config: &UNetConfig) -> BTreeMap<String, (String, Option<String>)> {
    let mut map = BTreeMap::new();
    let mut add = |ours: String, theirs: String, legacy: Option<String>| {
        map.insert(ours, (theirs, legacy));
    };
    let resnet = |add: &mut dyn FnMut(String, String, Option<String>), ours: &str, theirs: &str| {
        for (o, t) in [
            ("norm1", "norm1"),
            ("conv1", "conv1"),
            ("temb_proj", "time_emb_proj"),
            ("norm2", "norm2"),
            ("conv2", "conv2"),
            ("shortcut", "conv_shortcut"),
        ] {
            add(format!("{ours}.{o}"), format!("{theirs}.{t}"), None);
        }
    };
    let attention =
        |add: &mut dyn FnMut(String, String, Option<String>), ours: &str, theirs: &str| {
            for (o, t, legacy) in [
                ("norm", "group_norm", None),
                ("q", "to_q", Some("query")),
                ("k", "to_k", Some("key")),
                ("v", "to_v", Some("value")),
                ("proj_out", "to_out.0", Some("proj_attn")),
            ] {
                add(
                    format!("{ours}.{o}"),
                    format!("{theirs}.{t}"),
                    legacy.map(|l| format!("{theirs}.{l}")),
                );
            }
        };
    for (o, t) in [
        ("temb_dense0", "time_embedding.linear_1"),
        ("temb_dense1", "time_embedding.linear_2"),
        ("class_embedding", "class_embedding"),
        ("conv_in", "conv_in"),
        ("norm_out", "conv_norm_out"),
        ("conv_out", "conv_out"),
    ] {
        add(o.into(), t.into(), None);
    }
    let levels = config.channel_multipliers.len();
    let blocks = config.res_blocks;
    let mut k = 0;
    for level in 0..levels {
        for j in 0..blocks {
            let theirs = format!("down_blocks.{level}");
            resnet(
                &mut add,
                &format!("down.{k}.block"),
                &format!("{theirs}.resnets.{j}"),
            );
            attention(
                &mut add,
                &format!("down.{k}.attn"),
                &format!("{theirs}.attentions.{j}"),
            );
            k += 1;
        }
        if level + 1 != levels {
            add(
                format!("down.{k}.resample"),
                format!("down_blocks.{level}.downsamplers.0.conv"),
                None,
            );
            k += 1;
        }
    }
    resnet(&mut add, "mid_block1", "mid_block.resnets.0");
    attention(&mut add, "mid_attn", "mid_block.attentions.0");
    resnet(&mut add, "mid_block2", "mid_block.resnets.1");
    let mut k = 0;
    for (u, level) in (0..levels).rev().enumerate() {
        for j in 0..=blocks {
            let theirs = format!("up_blocks.{u}");
            resnet(
                &mut add,
                &format!("up.{k}.block"),
                &format!("{theirs}.resnets.{j}"),
            );
            attention(
                &mut add,
                &format!("up.{k}.attn"),
                &format!("{theirs}.attentions.{j}"),
            );
            k += 1;
        }
        if level != 0 {
            add(
                format!("up.{k}.resample"),
                format!("up_blocks.{u}.upsamplers.0.conv"),
                None,
            );
            k += 1;
        }
    }
    map
}

/// Loads diffusers weights (`bytes` of a `diffusion_pytorch_model.safetensors`, read from
/// `path`) into `unet`, built from `config`.
///
/// Every tensor of the file must be one of the model's, by its current key or by the
/// legacy attention keys (`query`, `key`, `value`, `proj_attn`), with its PyTorch shape
/// (Linear weights are transposed, attention projections become 1×1 convolutions), and
/// every tensor of the model must be in the file. Float16 and bfloat16 files are cast
/// to the model's float type.
pub(crate) fn load_weights(
    unet: UNet,
    config: &UNetConfig,
    bytes: Vec<u8>,
    path: &Path,
) -> error::Result<UNet> {
    let entries = entries(&unet, config)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .validate(false)
        .allow_partial(true);
    let stored: BTreeMap<String, (Vec<usize>, DType)> = store
        .get_all_tensors()
        .map_err(|e| fail(path, format!("not a readable safetensors file: {e}")))?
        .iter()
        .map(|(k, t)| (k.clone(), (t.shape.as_slice().to_vec(), t.dtype)))
        .collect();
    let mut patterns = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for e in &entries {
        let found = [Some(&e.key), e.legacy.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| stored.contains_key(*k));
        let Some(key) = found else {
            return Err(fail(
                path,
                format!(
                    "tensor {} (shape {:?}) is missing: the weights are not those of this config",
                    e.key, e.shape
                ),
            ));
        };
        let (shape, dtype) = &stored[key];
        if *shape != e.shape {
            return Err(fail(
                path,
                format!(
                    "tensor {key} has shape {shape:?} where the config needs {:?}",
                    e.shape
                ),
            ));
        }
        if !dtype.is_float() {
            return Err(fail(
                path,
                format!("tensor {key} is {dtype:?}, not a float type"),
            ));
        }
        used.insert(key.clone());
        patterns.push((format!("^{}$", escape(key)), e.ours_pytorch.clone()));
    }
    if let Some(extra) = stored.keys().find(|k| !used.contains(*k)) {
        return Err(fail(
            path,
            format!(
                "tensor {extra} is not part of the model this config describes ({} of the file's {} tensors are)",
                used.len(),
                stored.len()
            ),
        ));
    }
    let remapper = KeyRemapper::from_patterns(patterns)
        .map_err(|e| fail(path, format!("key remapping: {e}")))?;
    let dtype = unet
        .collect(None, None, false)
        .first()
        .map_or(DType::F32, |t| t.dtype);
    let mut store = store.remap(remapper).with_from_adapter(
        PyTorchToBurnAdapter
            .chain(AttentionProjections)
            .chain(FloatCastAdapter::to(dtype)),
    );
    let mut unet = unet;
    let result = unet
        .load_from(&mut store)
        .map_err(|e| fail(path, format!("{e}")))?;
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(fail(
            path,
            format!(
                "the weights did not all load: errors {:?}, missing {:?}, unused {:?}",
                result.errors, result.missing, result.unused
            ),
        ));
    }
    Ok(unet)
}

/// The diffusers `diffusion_pytorch_model.safetensors` bytes of `unet` (float32 unless
/// the model is another float type).
pub(crate) fn weights_bytes(unet: &UNet, config: &UNetConfig) -> error::Result<Vec<u8>> {
    let entries = entries(unet, config)?;
    let patterns: Vec<(String, String)> = entries
        .iter()
        .map(|e| (format!("^{}$", escape(&e.ours_pytorch)), e.key.clone()))
        .collect();
    let remapper = KeyRemapper::from_patterns(patterns)
        .map_err(|e| DiffusionError::config("key remapping", e, "is invalid"))?;
    let mut store = SafetensorsStore::from_bytes(None)
        .clear_metadata()
        .metadata("format", "pt")
        .remap(remapper)
        .with_to_adapter(BurnToPyTorchAdapter.chain(AttentionProjections));
    let write_error = |e: String| DiffusionError::Checkpoint {
        path: "diffusion_pytorch_model.safetensors".into(),
        reason: e,
    };
    unet.save_into(&mut store)
        .map_err(|e| write_error(e.to_string()))?;
    store.get_bytes().map_err(|e| write_error(e.to_string()))
}

/// Escapes a tensor key (letters, digits, `_` and `.`) for a regex.
fn escape(key: &str) -> String {
    key.replace('.', r"\.")
}

/// Attention projections are `Linear` layers in diffusers ([out, in]) and 1×1
/// convolutions here ([out, in, 1, 1]): reshapes between the two. Rank tells the
/// direction, so one adapter serves loading and saving.
#[derive(Debug, Clone)]
struct AttentionProjections;

impl ModuleAdapter for AttentionProjections {
    fn adapt(&self, tensor: PackTensor, _ctx: ModuleContext<'_>) -> PackTensor {
        if kind(&tensor.name) != Kind::AttentionProjection {
            return tensor;
        }
        let dims = tensor.shape.as_slice().to_vec();
        let shape: Vec<usize> = match dims.as_slice() {
            [o, i] => vec![*o, *i, 1, 1],
            [o, i, 1, 1] => vec![*o, *i],
            _ => return tensor,
        };
        let (name, dtype) = (tensor.name.clone(), tensor.dtype);
        let target = shape.clone();
        bridge::map_data(
            tensor,
            name,
            dtype,
            shape.into(),
            move |data: TensorData| {
                let dtype = data.dtype();
                TensorData::from_bytes(data.into_bytes(), target.clone(), dtype)
            },
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_paths() {
        assert_eq!(kind("down.3.attn.q.weight"), Kind::AttentionProjection);
        assert_eq!(kind("mid_attn.proj_out.weight"), Kind::AttentionProjection);
        assert_eq!(kind("mid_attn.proj_out.bias"), Kind::Other);
        assert_eq!(kind("down.0.block.shortcut.weight"), Kind::Other);
        assert_eq!(kind("down.0.block.temb_proj.weight"), Kind::Linear);
        assert_eq!(kind("temb_dense1.bias"), Kind::Linear);
        assert_eq!(kind("conv_out.weight"), Kind::Other);
    }
}
