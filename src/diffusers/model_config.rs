//! diffusers' `UNet2DModel` `config.json` ↔ [`UNetConfig`].

use serde_json::{Value, json};

use crate::diffusers::json::{Fields, as_usize, field_error};
use crate::error;
use crate::model::{TimeEmbedding, UNetConfig};

/// The `_class_name` of the models this module reads and writes.
pub const UNET_CLASS: &str = "UNet2DModel";

/// The [`UNetConfig`] of a diffusers `UNet2DModel` `config.json`.
///
/// Every field of `UNet2DModel.__init__` is read, with diffusers' own default where the
/// file leaves it out (old files, such as google/ddpm-cifar10-32's, omit several): a
/// missing `flip_sin_to_cos` is `true`, `freq_shift` 0, `downsample_padding` 1,
/// `attention_head_dim` 8, `norm_eps` 1e-5, `dropout` 0. Keys starting with `_`
/// (`_class_name`, `_diffusers_version`, `_name_or_path`) are metadata; any other key
/// that `UNet2DModel` does not have is an error, as is every option the reference UNet
/// cannot express.
///
/// | diffusers | [`UNetConfig`] |
/// |---|---|
/// | `block_out_channels` | `base_channels` = the first, `channel_multipliers` = each ÷ the first |
/// | `layers_per_block` | `res_blocks` |
/// | `AttnDownBlock2D` at level i (and `AttnUpBlock2D` mirrored) | `attention_resolutions` ∋ `sample_size` / 2^i |
/// | `norm_num_groups`, `norm_eps` | `norm_groups`, `norm_eps` |
/// | `attention_head_dim` (`null`: one head) | `attention_head_dim` |
/// | `flip_sin_to_cos`, `freq_shift` | `time_embedding` |
/// | `downsample_padding` | `downsample_padding` |
/// | `num_class_embeds` | `num_classes`, with `null_label` `Some(false)` |
///
/// Refused, each naming the field and value: `center_input_sample = true`,
/// `time_embedding_type` other than `"positional"`, a `time_embedding_dim` other than 4 ×
/// the first channel count, `act_fn` other than `silu`/`swish`, `mid_block_scale_factor`
/// ≠ 1, `resnet_time_scale_shift = "scale_shift"`, `add_attention = false`,
/// `class_embed_type`, `downsample_type`/`upsample_type` other than `"conv"`, block types
/// other than `DownBlock2D`/`AttnDownBlock2D`/`UpBlock2D`/`AttnUpBlock2D`, attention on
/// the way down without its mirror on the way up, channel counts that are not multiples of
/// the first, a non-square `sample_size`.
///
/// # Errors
/// [`crate::DiffusionError::UnsupportedConfig`] naming the field: malformed JSON, another
/// `_class_name`, a field of the wrong type, an unknown field or an unsupported option.
///
/// # Example
/// ```
/// use burn_diffusion::{diffusers::unet_config_from_json, model::UNetConfig};
///
/// let json = r#"{"_class_name": "UNet2DModel", "sample_size": 32,
///   "block_out_channels": [128, 256, 256, 256], "attention_head_dim": null,
///   "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
///   "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
///   "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1, "norm_eps": 1e-6}"#;
/// let config = unet_config_from_json(json)?;
/// assert_eq!(config.attention_resolutions, vec![16]);
/// assert_eq!(config.channel_multipliers, UNetConfig::cifar10().channel_multipliers);
/// assert!(unet_config_from_json(r#"{"center_input_sample": true}"#).is_err());
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub fn unet_config_from_json(json: &str) -> error::Result<UNetConfig> {
    let mut f = Fields::parse(json, "UNet2DModel config.json", &[UNET_CLASS])?;
    let in_channels = f.usize_or("in_channels", 3)?;
    let out_channels = f.usize_or("out_channels", 3)?;
    let resolution = sample_size(&mut f)?;
    f.require_eq_bool(
        "center_input_sample",
        false,
        "center_input_sample = true (2x − 1 before the first layer) is not supported",
    )?;
    f.require_str_in("time_embedding_type", "positional", &["positional"])?;
    f.require_str_in("act_fn", "silu", &["silu", "swish"])?;
    f.require_str_in("resnet_time_scale_shift", "default", &["default"])?;
    f.require_str_in("downsample_type", "conv", &["conv"])?;
    f.require_str_in("upsample_type", "conv", &["conv"])?;
    match f.take("mid_block_type") {
        None => {}
        Some(Value::String(s)) if s == "UNetMidBlock2D" => {}
        Some(v) => {
            return Err(field_error(
                "mid_block_type",
                v,
                "only UNetMidBlock2D is supported (null: no middle block)",
            ));
        }
    }
    f.require_eq_bool(
        "add_attention",
        true,
        "a middle block without attention is not supported",
    )?;
    f.require_eq_f64("mid_block_scale_factor", 1.0, "only 1 is supported")?;
    f.require_null(
        "class_embed_type",
        "only null (a learned class embedding from num_class_embeds) is supported",
    )?;
    let channels = f.usize_list("block_out_channels", &[224, 448, 672, 896])?;
    let (base, multipliers) = split_channels(&channels)?;
    let res_blocks = f.usize_or("layers_per_block", 2)?;
    let levels = channels.len();
    let down = f.str_list(
        "down_block_types",
        &[
            "DownBlock2D",
            "AttnDownBlock2D",
            "AttnDownBlock2D",
            "AttnDownBlock2D",
        ],
    )?;
    let up = f.str_list(
        "up_block_types",
        &[
            "AttnUpBlock2D",
            "AttnUpBlock2D",
            "AttnUpBlock2D",
            "UpBlock2D",
        ],
    )?;
    let attention_resolutions = attention_levels(&down, &up, levels)?
        .into_iter()
        .map(|level| resolution >> level)
        .collect();
    let norm_groups = f.usize_or("norm_num_groups", 32)?;
    if let Some(g) = f.take_non_null("attn_norm_num_groups")
        && g != json!(norm_groups)
    {
        return Err(field_error(
            "attn_norm_num_groups",
            g,
            format!("only null or norm_num_groups ({norm_groups}) is supported"),
        ));
    }
    let temb = f.take_non_null("time_embedding_dim");
    if let Some(d) = temb
        && d != json!(4 * base)
    {
        return Err(field_error(
            "time_embedding_dim",
            d,
            format!(
                "only null or 4 × block_out_channels[0] ({}) is supported",
                4 * base
            ),
        ));
    }
    // Only read by a learned time embedding, which positional models do not have.
    f.take("num_train_timesteps");
    let head_dim = match f.take("attention_head_dim") {
        None => Some(8),
        Some(Value::Null) => None,
        Some(v) => Some(as_usize("attention_head_dim", &v)?),
    };
    let config = UNetConfig {
        in_channels,
        out_channels,
        resolution,
        base_channels: base,
        channel_multipliers: multipliers,
        res_blocks,
        attention_resolutions,
        dropout: f.f64_or("dropout", 0.0)?,
        norm_groups,
        num_classes: f.optional_usize("num_class_embeds")?,
        null_label: Some(false),
        norm_eps: Some(f.f64_or("norm_eps", 1e-5)?),
        // One head of all the channels is what diffusers does when the head dimension is
        // the channel count; keeping `None` there keeps the config DDPM's.
        attention_head_dim: head_dim,
        time_embedding: Some(TimeEmbedding::new(
            f.bool_or("flip_sin_to_cos", true)?,
            f.f64_or("freq_shift", 0.0)?,
        )),
        downsample_padding: Some(f.usize_or("downsample_padding", 1)?),
    };
    f.finish()?;
    Ok(config)
}

/// The diffusers `config.json` of a [`UNetConfig`] (`UNet2DModel`, every field written,
/// as `save_pretrained` writes them).
///
/// A model with a null label (`null_label` `None` or `Some(true)`) is written with
/// `num_class_embeds` = `num_classes` + 1: in diffusers, the null label is then the
/// class `num_classes`.
///
/// # Errors
/// An invalid config (as [`UNetConfig::init`] checks it) or one whose attention heads do
/// not divide a level diffusers applies them to.
pub fn unet_config_to_json(config: &UNetConfig) -> error::Result<String> {
    config.validate()?;
    let levels = config.channel_multipliers.len();
    let attn = |level: usize| {
        config
            .attention_resolutions
            .contains(&(config.resolution >> level))
    };
    let down: Vec<&str> = (0..levels)
        .map(|l| {
            if attn(l) {
                "AttnDownBlock2D"
            } else {
                "DownBlock2D"
            }
        })
        .collect();
    let up: Vec<&str> = (0..levels)
        .rev()
        .map(|l| {
            if attn(l) {
                "AttnUpBlock2D"
            } else {
                "UpBlock2D"
            }
        })
        .collect();
    let channels: Vec<usize> = config
        .channel_multipliers
        .iter()
        .map(|m| m * config.base_channels)
        .collect();
    let time = config
        .time_embedding
        .clone()
        .unwrap_or_else(TimeEmbedding::ddpm);
    let classes = config
        .num_classes
        .map(|n| n + usize::from(config.null_label.unwrap_or(true)));
    let value = json!({
        "_class_name": UNET_CLASS,
        "_diffusers_version": "0.42.1",
        "act_fn": "silu",
        "add_attention": true,
        "attention_head_dim": config.attention_head_dim,
        "attn_norm_num_groups": null,
        "block_out_channels": channels,
        "center_input_sample": false,
        "class_embed_type": null,
        "down_block_types": down,
        "downsample_padding": config.downsample_padding.unwrap_or(0),
        "downsample_type": "conv",
        "dropout": config.dropout,
        "flip_sin_to_cos": time.flip_sin_to_cos,
        "freq_shift": time.freq_shift,
        "in_channels": config.in_channels,
        "layers_per_block": config.res_blocks,
        "mid_block_scale_factor": 1,
        "mid_block_type": "UNetMidBlock2D",
        "norm_eps": config.norm_eps.unwrap_or(1e-5),
        "norm_num_groups": config.norm_groups,
        "num_class_embeds": classes,
        "num_train_timesteps": null,
        "out_channels": config.out_channels,
        "resnet_time_scale_shift": "default",
        "sample_size": config.resolution,
        "time_embedding_dim": null,
        "time_embedding_type": "positional",
        "up_block_types": up,
        "upsample_type": "conv",
    });
    Ok(serde_json::to_string_pretty(&value).unwrap_or_default() + "\n")
}

/// `sample_size`: an integer or a square `[h, w]`.
fn sample_size(f: &mut Fields) -> error::Result<usize> {
    match f.take("sample_size") {
        None | Some(Value::Null) => Err(field_error(
            "sample_size",
            "null",
            "the reference UNet needs its resolution",
        )),
        Some(Value::Array(sides)) => {
            let sides: Vec<usize> = sides
                .iter()
                .map(|v| as_usize("sample_size", v))
                .collect::<error::Result<_>>()?;
            match sides.as_slice() {
                [h, w] if h == w => Ok(*h),
                _ => Err(field_error(
                    "sample_size",
                    format!("{sides:?}"),
                    "only square inputs are supported",
                )),
            }
        }
        Some(v) => as_usize("sample_size", &v),
    }
}

/// (base, multipliers) of `block_out_channels`.
fn split_channels(channels: &[usize]) -> error::Result<(usize, Vec<usize>)> {
    let Some(&base) = channels.first().filter(|b| **b > 0) else {
        return Err(field_error(
            "block_out_channels",
            format!("{channels:?}"),
            "needs at least one positive channel count",
        ));
    };
    if let Some(c) = channels.iter().find(|c| !c.is_multiple_of(base)) {
        return Err(field_error(
            "block_out_channels",
            format!("{channels:?}"),
            format!(
                "{c} is not a multiple of the first, {base}: the reference UNet's levels are multiples of its base width"
            ),
        ));
    }
    Ok((base, channels.iter().map(|c| c / base).collect()))
}

/// The levels with attention, from the down and up block types.
fn attention_levels(down: &[String], up: &[String], levels: usize) -> error::Result<Vec<usize>> {
    for (name, types) in [("down_block_types", down), ("up_block_types", up)] {
        if types.len() != levels {
            return Err(field_error(
                name,
                format!("{types:?}"),
                format!("needs one block per entry of block_out_channels ({levels})"),
            ));
        }
    }
    let mut with_attention = Vec::new();
    for level in 0..levels {
        let d = match down[level].as_str() {
            "DownBlock2D" => false,
            "AttnDownBlock2D" => true,
            other => {
                return Err(field_error(
                    "down_block_types",
                    other,
                    "only DownBlock2D and AttnDownBlock2D are supported",
                ));
            }
        };
        let mirrored = &up[levels - 1 - level];
        let u = match mirrored.as_str() {
            "UpBlock2D" => false,
            "AttnUpBlock2D" => true,
            other => {
                return Err(field_error(
                    "up_block_types",
                    other,
                    "only UpBlock2D and AttnUpBlock2D are supported",
                ));
            }
        };
        if d != u {
            return Err(field_error(
                "up_block_types",
                format!("{up:?}"),
                format!(
                    "level {level} has {} on the way down but {mirrored} on the way up; the reference UNet has attention at a resolution in both directions or in neither",
                    down[level]
                ),
            ));
        }
        if d {
            with_attention.push(level);
        }
    }
    Ok(with_attention)
}
