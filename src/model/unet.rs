//! The UNet of Ho et al. (2020) as a Burn module, with its `UNetConfig`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, GroupNorm, GroupNormConfig, Initializer,
    Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor};

use crate::error::{self, DiffusionError};
use crate::files;
use crate::fused::{conv2d, dropout, group_norm, group_norm_silu, silu};
use crate::model::Denoiser;

/// Configuration of [`UNet`]: the architecture of Ho et al. (2020, Appendix B; the
/// official `diffusion_tf` model).
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::{Denoiser, model::UNetConfig};
///
/// let device = Device::flex();
/// let unet = UNetConfig::digits().init(&device).unwrap();
/// let x = Tensor::<4>::zeros([2, 1, 8, 8], &device);
/// let t = Tensor::<1, Int>::from_ints([3, 500], &device);
/// assert_eq!(unet.denoise(x, t, None).dims(), [2, 1, 8, 8]);
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct UNetConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (twice the input channels for a learned variance).
    pub out_channels: usize,
    /// Height and width of the (square) input.
    pub resolution: usize,
    /// Base channel count `ch`.
    #[config(default = 128)]
    pub base_channels: usize,
    /// Channel multiplier per resolution level (`ch_mult`).
    #[config(default = "vec![1, 2, 2, 2]")]
    pub channel_multipliers: Vec<usize>,
    /// Residual blocks per level on the way down (`num_res_blocks`; one more going up).
    #[config(default = 2)]
    pub res_blocks: usize,
    /// Resolutions (feature-map sizes) with self-attention.
    #[config(default = "vec![16]")]
    pub attention_resolutions: Vec<usize>,
    /// Dropout rate inside residual blocks.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Groups of every GroupNorm.
    #[config(default = 32)]
    pub norm_groups: usize,
    /// Number of classes for class conditioning (`None`: unconditional). Label
    /// `num_classes` is the null label of classifier-free guidance (see `null_label`).
    #[config(default = "None")]
    pub num_classes: Option<usize>,
    /// Whether the class embedding has one more row, label `num_classes`, for the null
    /// label of classifier-free guidance (`None`: yes). diffusers' `num_class_embeds`
    /// models have none: they load with `Some(false)`.
    #[config(default = "None")]
    pub null_label: Option<bool>,
    /// ε of every GroupNorm (`None`: Burn's 1e-5; diffusers' DDPM models use 1e-6, as
    /// the original TensorFlow code).
    #[config(default = "None")]
    pub norm_eps: Option<f64>,
    /// Channels per attention head (`None`: one head over all channels, as DDPM).
    /// Every attention level's channel count must be a multiple of it.
    #[config(default = "None")]
    pub attention_head_dim: Option<usize>,
    /// The sinusoidal timestep embedding's variant (`None`: DDPM's,
    /// [`TimeEmbedding::ddpm`]).
    #[config(default = "None")]
    pub time_embedding: Option<TimeEmbedding>,
    /// Padding of the stride-2 downsampling convolutions: `None` or `Some(0)` pads one row
    /// and column at the bottom and right (TensorFlow's "SAME", as DDPM and diffusers'
    /// `downsample_padding = 0`); `Some(1)` pads one on every side (diffusers' default).
    #[config(default = "None")]
    pub downsample_padding: Option<usize>,
}

/// The variant of the sinusoidal timestep embedding (diffusers' `Timesteps`):
/// frequencies f_i = 10000^(−i/(d/2 − `freq_shift`)), i = 0..d/2, and the embedding
/// [sin(t·f), cos(t·f)], or [cos(t·f), sin(t·f)] with `flip_sin_to_cos`.
#[derive(Config, Debug, PartialEq)]
pub struct TimeEmbedding {
    /// Put the cosines first (diffusers' `flip_sin_to_cos`).
    pub flip_sin_to_cos: bool,
    /// diffusers' `freq_shift` (`downscale_freq_shift`): 1 in DDPM, 0 in diffusers'
    /// defaults.
    pub freq_shift: f64,
}

impl TimeEmbedding {
    /// DDPM's embedding (`get_timestep_embedding` of `diffusion_tf`): sines first,
    /// `freq_shift` 1.
    pub fn ddpm() -> Self {
        Self::new(false, 1.0)
    }
}

impl UNetConfig {
    /// The paper's CIFAR-10 model: 32×32×3, ch 128, multipliers 1,2,2,2, 2 residual blocks,
    /// attention at 16×16, dropout 0.1 — 35,746,307 parameters.
    pub fn cifar10() -> Self {
        Self::new(3, 3, 32)
    }

    /// A 28×28 grayscale (MNIST) model that trains on a CPU: ch 32, multipliers 1,2,2,
    /// attention at 7×7.
    pub fn mnist() -> Self {
        Self::new(1, 1, 28)
            .with_base_channels(32)
            .with_channel_multipliers(vec![1, 2, 2])
            .with_attention_resolutions(vec![7])
            .with_norm_groups(8)
    }

    /// An 8×8 grayscale (scikit-learn digits) model: ch 32, multipliers 1,2, one residual
    /// block, attention at 4×4.
    pub fn digits() -> Self {
        Self::new(1, 1, 8)
            .with_base_channels(32)
            .with_channel_multipliers(vec![1, 2])
            .with_res_blocks(1)
            .with_attention_resolutions(vec![4])
            .with_norm_groups(8)
    }

    /// Builds the network.
    ///
    /// # Errors
    /// A zero channel count or level count, `base_channels` below 2, more than 32 levels, a
    /// resolution not divisible by 2^(levels−1), a channel count that overflows or is not
    /// divisible by the GroupNorm groups, an attention resolution the network never has,
    /// a dropout outside [0, 1).
    pub fn init(&self, device: &Device) -> error::Result<UNet> {
        self.validate()?;
        let ch = self.base_channels;
        let temb_ch = 4 * ch;
        let levels = self.channel_multipliers.len();
        let mut down = Vec::new();
        let mut skip_channels = vec![ch];
        let mut channels = ch;
        let mut res = self.resolution;
        for (level, mult) in self.channel_multipliers.iter().enumerate() {
            let out = ch * mult;
            let attn = self.attention_resolutions.contains(&res);
            for _ in 0..self.res_blocks {
                down.push(Stage::block(self, channels, out, attn, device));
                channels = out;
                skip_channels.push(channels);
            }
            if level + 1 != levels {
                down.push(Stage::down(channels, self.downsample_padding, device));
                skip_channels.push(channels);
                res /= 2;
            }
        }
        let mid = [
            ResBlock::new(self, channels, channels, device),
            ResBlock::new(self, channels, channels, device),
        ];
        let mid_attn = AttnBlock::new(self, channels, device);
        let mut up = Vec::new();
        for (level, mult) in self.channel_multipliers.iter().enumerate().rev() {
            let out = ch * mult;
            let attn = self.attention_resolutions.contains(&res);
            for _ in 0..=self.res_blocks {
                let skip = skip_channels.pop().unwrap_or(ch);
                up.push(Stage::block(self, channels + skip, out, attn, device));
                channels = out;
            }
            if level != 0 {
                up.push(Stage::up(channels, device));
                res *= 2;
            }
        }
        Ok(UNet {
            temb_dense0: LinearConfig::new(ch, temb_ch).init(device),
            temb_dense1: LinearConfig::new(temb_ch, temb_ch).init(device),
            class_embedding: self
                .num_classes
                .map(|n| EmbeddingConfig::new(n + self.null_rows(), temb_ch).init(device)),
            conv_in: conv3(self.in_channels, ch, device),
            down,
            mid_block1: mid[0].clone(),
            mid_attn,
            mid_block2: mid[1].clone(),
            up,
            norm_out: self.group_norm(channels, device),
            conv_out: conv3(channels, self.out_channels, device).with_zero_init(device),
            base_channels: ch,
            num_classes: self.num_classes.unwrap_or(0),
            time_embedding: self
                .time_embedding
                .clone()
                .unwrap_or_else(TimeEmbedding::ddpm),
        })
    }

    /// A GroupNorm of `channels` with this config's groups and ε.
    fn group_norm(&self, channels: usize, device: &Device) -> GroupNorm {
        GroupNormConfig::new(self.norm_groups, channels)
            .with_epsilon(self.norm_eps.unwrap_or(1e-5))
            .init(device)
    }

    /// The class embedding's rows beyond `num_classes`: 1 for the null label, or 0.
    fn null_rows(&self) -> usize {
        usize::from(self.null_label.unwrap_or(true))
    }

    /// Attention heads at a level of `channels` channels.
    fn heads(&self, channels: usize) -> usize {
        self.attention_head_dim.map_or(1, |d| channels / d)
    }

    pub(crate) fn validate(&self) -> error::Result<()> {
        let bad = |name: &'static str, value: String, reason: String| {
            Err(DiffusionError::config(name, value, reason))
        };
        if self.in_channels == 0 || self.out_channels == 0 || self.base_channels == 0 {
            return bad(
                "channels",
                format!("{self:?}"),
                "channel counts must be positive".into(),
            );
        }
        if self.channel_multipliers.is_empty() || self.channel_multipliers.contains(&0) {
            return bad(
                "channel_multipliers",
                format!("{:?}", self.channel_multipliers),
                "need at least one level and positive multipliers".into(),
            );
        }
        if self.res_blocks == 0 {
            return bad(
                "res_blocks",
                "0".into(),
                "need at least one block per level".into(),
            );
        }
        if self.base_channels < 2 {
            return bad(
                "base_channels",
                self.base_channels.to_string(),
                "must be at least 2 (it is the timestep embedding's width)".into(),
            );
        }
        let levels = self.channel_multipliers.len();
        let Some(factor) = 1usize
            .checked_shl(levels as u32 - 1)
            .filter(|_| levels <= 32)
        else {
            return bad(
                "channel_multipliers",
                format!("{levels} levels"),
                "at most 32 levels (each halves the resolution)".into(),
            );
        };
        if self.resolution == 0 || !self.resolution.is_multiple_of(factor) {
            return bad(
                "resolution",
                self.resolution.to_string(),
                format!("must be a positive multiple of 2^(levels−1) = {factor}"),
            );
        }
        if self.norm_groups == 0 {
            return bad("norm_groups", "0".into(), "must be positive".into());
        }
        for mult in &self.channel_multipliers {
            let Some(c) = self.base_channels.checked_mul(*mult) else {
                return bad(
                    "channel_multipliers",
                    format!("{:?}", self.channel_multipliers),
                    format!("base_channels × {mult} overflows"),
                );
            };
            if !c.is_multiple_of(self.norm_groups) {
                return bad(
                    "norm_groups",
                    self.norm_groups.to_string(),
                    format!("must divide every channel count; {c} is not divisible"),
                );
            }
        }
        // A lower bound, so that nothing that fits is refused: each level has
        // `res_blocks` + 1 up blocks, each with two 3×3 convolutions of at least c × c
        // (18 c² weights), plus the class embedding.
        let convolutions = self.channel_multipliers.iter().fold(0u128, |sum, m| {
            let c = (self.base_channels as u128).saturating_mul(*m as u128);
            sum.saturating_add(c.saturating_mul(c).saturating_mul(18))
        });
        let classes = self.num_classes.map_or(0, |n| n as u128 + 1);
        let embedding = classes.saturating_mul(4 * self.base_channels as u128);
        crate::size::check_parameters(
            "UNetConfig",
            convolutions
                .saturating_mul(self.res_blocks as u128)
                .saturating_add(embedding),
        )?;
        let resolutions: Vec<usize> = (0..levels).map(|l| self.resolution >> l).collect();
        if let Some(r) = self
            .attention_resolutions
            .iter()
            .find(|r| !resolutions.contains(r))
        {
            return bad(
                "attention_resolutions",
                format!("{:?}", self.attention_resolutions),
                format!("{r} is not one of the network's resolutions {resolutions:?}"),
            );
        }
        self.validate_variants(levels)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(
                "dropout",
                self.dropout.to_string(),
                "must be in [0, 1)".into(),
            );
        }
        Ok(())
    }
}

impl UNetConfig {
    /// Checks the options that diffusers' models set: ε, heads, embedding, padding.
    fn validate_variants(&self, levels: usize) -> error::Result<()> {
        let bad = |name: &'static str, value: String, reason: String| {
            Err(DiffusionError::config(name, value, reason))
        };
        if let Some(eps) = self.norm_eps
            && !(eps.is_finite() && eps > 0.0)
        {
            return bad("norm_eps", eps.to_string(), "must be finite and > 0".into());
        }
        if let Some(d) = self.attention_head_dim {
            let channels = self
                .channel_multipliers
                .iter()
                .map(|m| self.base_channels * m);
            let mut levels_with_attention = channels
                .take(levels)
                .enumerate()
                .filter(|(l, _)| self.attention_resolutions.contains(&(self.resolution >> l)))
                .map(|(_, c)| c)
                .chain(std::iter::once(
                    self.base_channels * self.channel_multipliers[levels - 1],
                ));
            if let Some(c) = levels_with_attention.find(|c| d == 0 || !c.is_multiple_of(d)) {
                return bad(
                    "attention_head_dim",
                    d.to_string(),
                    format!(
                        "must be positive and divide every attention level's channels; {c} is not divisible"
                    ),
                );
            }
        }
        if let Some(te) = &self.time_embedding {
            let half = (self.base_channels / 2) as f64;
            if !te.freq_shift.is_finite() || half - te.freq_shift <= 0.0 {
                return bad(
                    "time_embedding.freq_shift",
                    te.freq_shift.to_string(),
                    format!("must be finite and below half the embedding width ({half})"),
                );
            }
        }
        if let Some(p) = self.downsample_padding
            && p > 1
        {
            return bad(
                "downsample_padding",
                p.to_string(),
                "must be 0 (bottom and right, as DDPM) or 1 (every side)".into(),
            );
        }
        Ok(())
    }
}

/// 3×3 convolution, "same" padding.
fn conv3(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// 1×1 convolution (a per-pixel dense layer, "NIN").
fn conv1(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [1, 1]).init(device)
}

trait ZeroInit {
    fn with_zero_init(self, device: &Device) -> Self;
}

impl ZeroInit for Conv2d {
    /// The paper's `init_scale = 0`: the layer starts as the zero map.
    fn with_zero_init(self, device: &Device) -> Self {
        let [cout, cin, kh, kw] = self.weight.dims();
        let mut config =
            Conv2dConfig::new([cin, cout], [kh, kw]).with_initializer(Initializer::Zeros);
        if kh == 3 {
            config = config.with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
        }
        config.init(device)
    }
}

/// A residual block with timestep-embedding injection (Ho et al., Appendix B).
#[derive(Module, Debug)]
pub(crate) struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    temb_proj: Linear,
    norm2: GroupNorm,
    dropout: Dropout,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl ResBlock {
    fn new(config: &UNetConfig, cin: usize, cout: usize, device: &Device) -> Self {
        Self {
            norm1: config.group_norm(cin, device),
            conv1: conv3(cin, cout, device),
            temb_proj: LinearConfig::new(4 * config.base_channels, cout).init(device),
            norm2: config.group_norm(cout, device),
            dropout: DropoutConfig::new(config.dropout).init(),
            conv2: conv3(cout, cout, device).with_zero_init(device),
            shortcut: (cin != cout).then(|| conv1(cin, cout, device)),
        }
    }

    fn forward(&self, x: Tensor<4>, temb: Tensor<2>) -> Tensor<4> {
        let h = conv2d(group_norm_silu(x.clone(), &self.norm1), &self.conv1);
        let [n, c] = [h.dims()[0], h.dims()[1]];
        let h = h + self.temb_proj.forward(silu(temb)).reshape([n, c, 1, 1]);
        let h = conv2d(
            dropout(group_norm_silu(h, &self.norm2), &self.dropout),
            &self.conv2,
        );
        let x = match &self.shortcut {
            Some(conv) => conv2d(x, conv),
            None => x,
        };
        x + h
    }
}

/// Spatial self-attention (one head, or `heads` heads over equal channel groups) with a
/// residual connection.
#[derive(Module, Debug)]
pub(crate) struct AttnBlock {
    norm: GroupNorm,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj_out: Conv2d,
    heads: usize,
}

impl AttnBlock {
    fn new(config: &UNetConfig, c: usize, device: &Device) -> Self {
        Self {
            norm: config.group_norm(c, device),
            q: conv1(c, c, device),
            k: conv1(c, c, device),
            v: conv1(c, c, device),
            proj_out: conv1(c, c, device).with_zero_init(device),
            heads: config.heads(c),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let (heads, d) = (self.heads, c / self.heads);
        let y = group_norm(x.clone(), &self.norm);
        // [n, c, h, w] → [n, heads, d, hw]: head i holds channels i·d..(i+1)·d.
        let split = |t: Tensor<4>| t.reshape([n, heads, d, h * w]);
        let q = split(conv2d(y.clone(), &self.q)).swap_dims(2, 3); // [n, heads, hw, d]
        let k = split(conv2d(y.clone(), &self.k)); // [n, heads, d, hw]
        let v = split(conv2d(y, &self.v)).swap_dims(2, 3); // [n, heads, hw, d]
        let weights = softmax(q.matmul(k) * (d as f64).powf(-0.5), 3);
        let out = weights.matmul(v).swap_dims(2, 3).reshape([n, c, h, w]);
        x + conv2d(out, &self.proj_out)
    }
}

/// One stage of the UNet: a residual block (with optional attention), or a resampling.
#[derive(Module, Debug)]
pub(crate) struct Stage {
    block: Option<ResBlock>,
    attn: Option<AttnBlock>,
    resample: Option<Conv2d>,
    upsample: bool,
}

impl Stage {
    fn block(config: &UNetConfig, cin: usize, cout: usize, attn: bool, device: &Device) -> Self {
        Self {
            block: Some(ResBlock::new(config, cin, cout, device)),
            attn: attn.then(|| AttnBlock::new(config, cout, device)),
            resample: None,
            upsample: false,
        }
    }

    /// 3×3 convolution with stride 2: TensorFlow's "SAME" (pad bottom and right) for
    /// `padding` `None` or 0, one on every side for 1.
    fn down(c: usize, padding: Option<usize>, device: &Device) -> Self {
        let padding = match padding {
            Some(1) => PaddingConfig2d::Explicit(1, 1, 1, 1),
            _ => PaddingConfig2d::Explicit(0, 0, 1, 1),
        };
        let conv = Conv2dConfig::new([c, c], [3, 3])
            .with_stride([2, 2])
            .with_padding(padding)
            .init(device);
        Self {
            block: None,
            attn: None,
            resample: Some(conv),
            upsample: false,
        }
    }

    /// Nearest-neighbour ×2, then a 3×3 convolution.
    fn up(c: usize, device: &Device) -> Self {
        Self {
            block: None,
            attn: None,
            resample: Some(conv3(c, c, device)),
            upsample: true,
        }
    }

    fn is_block(&self) -> bool {
        self.block.is_some()
    }

    fn forward(&self, x: Tensor<4>, temb: Tensor<2>) -> Tensor<4> {
        let mut h = match &self.block {
            Some(block) => block.forward(x, temb),
            None => x,
        };
        if let Some(attn) = &self.attn {
            h = attn.forward(h);
        }
        if let Some(conv) = &self.resample {
            if self.upsample {
                let [n, c, hh, ww] = h.dims();
                h = h
                    .reshape([n, c, hh, 1, ww, 1])
                    .expand([n, c, hh, 2, ww, 2])
                    .reshape([n, c, 2 * hh, 2 * ww]);
            }
            h = conv2d(h, conv);
        }
        h
    }
}

/// The DDPM UNet (Ho et al. 2020): a sinusoidal timestep embedding through a two-layer
/// MLP, residual blocks with GroupNorm and SiLU, self-attention at chosen resolutions,
/// skip connections between mirrored levels, and zero-initialized output layers.
///
/// # Shapes
/// - input `x_t`: `[N, in_channels, R, R]` with R divisible by 2^(levels−1)
/// - `t`: `[N]`; labels `[N]` (class conditioning)
/// - output: `[N, out_channels, R, R]`
#[derive(Module, Debug)]
pub struct UNet {
    temb_dense0: Linear,
    temb_dense1: Linear,
    class_embedding: Option<Embedding>,
    conv_in: Conv2d,
    down: Vec<Stage>,
    mid_block1: ResBlock,
    mid_attn: AttnBlock,
    mid_block2: ResBlock,
    up: Vec<Stage>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    base_channels: usize,
    num_classes: usize,
    #[module(skip)]
    time_embedding: TimeEmbedding,
}

impl UNet {
    /// The network's output at `(x_t, t)`, conditioned on `labels` when the model has a
    /// class embedding (label `num_classes` is the null label); labels are ignored by an
    /// unconditional model, and a conditional model given no labels adds no class
    /// embedding. Labels must lie in the embedding's rows (see [`Denoiser::check_labels`]):
    /// the output of an example whose label does not is NaN.
    pub fn forward(
        &self,
        x_t: Tensor<4>,
        t: Tensor<1, Int>,
        labels: Option<Tensor<1, Int>>,
    ) -> Tensor<4> {
        self.forward_fractional(x_t, t.float(), labels)
    }

    /// [`UNet::forward`] at fractional timesteps `t` (the sinusoidal embedding is smooth
    /// in t; diffusers' Euler-family samplers call models between training timesteps).
    ///
    /// # Shapes
    /// - `x_t`: `[N, C, H, W]`; `t`: `[N]`; `labels`: `[N]`; output `[N, C_out, H, W]`
    pub fn forward_fractional(
        &self,
        x_t: Tensor<4>,
        t: Tensor<1>,
        labels: Option<Tensor<1, Int>>,
    ) -> Tensor<4> {
        let mut temb = sinusoidal(t, self.base_channels, &self.time_embedding, &x_t.device());
        temb = self
            .temb_dense1
            .forward(silu(self.temb_dense0.forward(temb)));
        temb = with_class_embedding(temb, self.class_embedding.as_ref(), labels);
        let mut skips = vec![conv2d(x_t, &self.conv_in)];
        for stage in &self.down {
            let h = stage.forward(skips[skips.len() - 1].clone(), temb.clone());
            skips.push(h);
        }
        // The middle takes the last down output, which also stays a skip (as in DDPM).
        let last = skips[skips.len() - 1].clone();
        let mut h = self.mid_block1.forward(last, temb.clone());
        h = self.mid_attn.forward(h);
        h = self.mid_block2.forward(h, temb.clone());
        for stage in &self.up {
            if stage.is_block() {
                let skip = skips.pop().unwrap_or_else(|| h.zeros_like());
                h = stage.forward(Tensor::cat(vec![h, skip], 1), temb.clone());
            } else {
                h = stage.forward(h, temb.clone());
            }
        }
        conv2d(group_norm_silu(h, &self.norm_out), &self.conv_out)
    }

    /// The number of classes of the class embedding (0: unconditional).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Saves the model to `dir`: `config.json` (the [`UNetConfig`]), `weights.bpk`
    /// (Burn's burnpack format) and `checksums` (CRC-32 and length of both, which
    /// [`UNet::load`] verifies). The directory is created if needed.
    ///
    /// # Errors
    /// [`DiffusionError::Checkpoint`] on any I/O or encoding failure.
    pub fn save(self, config: &UNetConfig, dir: impl AsRef<std::path::Path>) -> error::Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| files::fail(dir, e))?;
        let config_path = dir.join(CONFIG_FILE);
        config
            .save(&config_path)
            .map_err(|e| files::fail(&config_path, e))?;
        files::save_module(&self, &dir.join(WEIGHTS_FILE))?;
        files::Manifest::write(dir, &[CONFIG_FILE, WEIGHTS_FILE])
    }

    /// Loads a model saved by [`UNet::save`] onto `device`, returning it with its config.
    ///
    /// Both files are read whole and checked against `checksums`, so the model owns its
    /// weights: rewriting or deleting `dir` afterwards does not change it. A directory
    /// without `checksums` (written by burn-diffusion 0.1 or by hand) loads unverified.
    ///
    /// # Errors
    /// [`DiffusionError::Checkpoint`] naming the file if one is missing, unreadable or
    /// fails its checksum, or if the weights do not fit the saved configuration (e.g.
    /// weights of another config).
    pub fn load(
        dir: impl AsRef<std::path::Path>,
        device: &Device,
    ) -> error::Result<(UNet, UNetConfig)> {
        let dir = dir.as_ref();
        let manifest = dir
            .join(files::MANIFEST_FILE)
            .exists()
            .then(|| files::Manifest::read(dir))
            .transpose()?;
        let read = |name: &str| match &manifest {
            Some(m) => m.read_file(name),
            None => std::fs::read(dir.join(name)).map_err(|e| files::fail(&dir.join(name), e)),
        };
        let config_path = dir.join(CONFIG_FILE);
        let config = UNetConfig::load_binary(&read(CONFIG_FILE)?)
            .map_err(|e| files::fail(&config_path, e))?;
        let weights = dir.join(WEIGHTS_FILE);
        let model = files::load_module(config.init(device)?, read(WEIGHTS_FILE)?, &weights)?;
        Ok((model, config))
    }

    /// Loads weights from a burnpack file into this model. The file is read whole, so
    /// the model owns its weights afterwards (it does not read the file again).
    ///
    /// # Errors
    /// [`DiffusionError::Checkpoint`] if the file is unreadable or its tensors do not fit
    /// this model's shapes.
    pub fn load_weights(self, path: impl AsRef<std::path::Path>) -> error::Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| files::fail(path, e))?;
        files::load_module(self, bytes, path)
    }
}

/// [`UNet::save`]'s configuration file.
const CONFIG_FILE: &str = "config.json";
/// [`UNet::save`]'s weights file.
const WEIGHTS_FILE: &str = "weights.bpk";

impl Denoiser<4> for UNet {
    /// `[N, in_channels, H, W]` with H and W positive multiples of 2^(levels−1) (the
    /// skip connections need every downsampling to halve exactly).
    fn check_input(&self, dims: &[usize]) -> error::Result<()> {
        let in_channels = self.conv_in.weight.dims()[1];
        let factor = 1usize << self.down.iter().filter(|s| s.resample.is_some()).count();
        let what = "UNet input x_t";
        if dims.len() != 4 || dims[1] != in_channels {
            return Err(DiffusionError::input(
                what,
                dims,
                format!("the model takes [N, {in_channels}, H, W]"),
            ));
        }
        if dims[2..]
            .iter()
            .any(|&r| r == 0 || !r.is_multiple_of(factor))
        {
            return Err(DiffusionError::input(
                what,
                dims,
                format!(
                    "height and width must be positive multiples of {factor} (the model downsamples by it)"
                ),
            ));
        }
        Ok(())
    }

    fn denoise(
        &self,
        x_t: Tensor<4>,
        t: Tensor<1, Int>,
        labels: Option<Tensor<1, Int>>,
    ) -> Tensor<4> {
        self.forward(x_t, t, labels)
    }

    /// Labels in `0..num_classes`, and `num_classes` itself (the null label) when the
    /// model has a null row; every label when the model has no class embedding.
    fn check_labels(&self, labels: &[i64]) -> error::Result<()> {
        check_class_labels(self.class_embedding.as_ref(), labels)
    }

    fn denoise_fractional(
        &self,
        x_t: Tensor<4>,
        t: Tensor<1>,
        labels: Option<Tensor<1, Int>>,
    ) -> Option<Tensor<4>> {
        Some(self.forward_fractional(x_t, t, labels))
    }
}

/// The sinusoidal timestep embedding of the Transformer, as in DDPM's
/// `get_timestep_embedding`: [sin(t·f_i), cos(t·f_i)], f_i = 10000^(−i/(d/2 − 1)).
///
/// # Shapes
/// - `t`: `[N]`; output `[N, dim]`
///
/// # Errors
/// `dim` below 2 (the embedding needs at least one sine and one cosine).
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::model::timestep_embedding;
///
/// let device = Device::flex();
/// let t = Tensor::<1, Int>::from_ints([0, 10], &device);
/// let emb = timestep_embedding(t, 8, &device)?;
/// assert_eq!(emb.dims(), [2, 8]);
/// assert!(timestep_embedding(Tensor::<1, Int>::from_ints([0], &device), 1, &device).is_err());
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub fn timestep_embedding(
    t: Tensor<1, Int>,
    dim: usize,
    device: &Device,
) -> error::Result<Tensor<2>> {
    if dim < 2 {
        return Err(DiffusionError::config(
            "timestep embedding dim",
            dim,
            "must be at least 2",
        ));
    }
    Ok(sinusoidal(t.float(), dim, &TimeEmbedding::ddpm(), device))
}

/// `temb` plus the class embedding of `labels` (`[N]` → `[N, width]`), when the model
/// has one and labels are given; `temb` unchanged otherwise.
pub(crate) fn with_class_embedding(
    temb: Tensor<2>,
    embedding: Option<&Embedding>,
    labels: Option<Tensor<1, Int>>,
) -> Tensor<2> {
    match (embedding, labels) {
        (Some(embedding), Some(labels)) => {
            let n = labels.dims()[0];
            // A label outside the embedding looks up row 0 and makes its example's
            // embedding NaN: no backend then panics or reads out of bounds, and the bad
            // example cannot pass for a good one (`check_labels` names it as an error).
            let rows = embedding.weight.dims()[0] as i64;
            let outside = labels
                .clone()
                .lower_elem(0)
                .bool_or(labels.clone().greater_equal_elem(rows));
            let looked_up = embedding
                .forward(labels.mask_fill(outside.clone(), 0).reshape([n, 1]))
                .reshape([n as i64, -1]);
            let width = looked_up.dims()[1];
            temb + looked_up.mask_fill(outside.reshape([n, 1]).expand([n, width]), f32::NAN)
        }
        _ => temb,
    }
}

/// [`Denoiser::check_labels`] of a model with this class embedding (none: every label
/// is ignored, so every label is fine).
pub(crate) fn check_class_labels(
    embedding: Option<&Embedding>,
    labels: &[i64],
) -> error::Result<()> {
    embedding.map_or(Ok(()), |e| {
        crate::model::denoiser::labels_within(labels, e.weight.dims()[0])
    })
}

/// [`timestep_embedding`] of a `variant`, for a `dim` ≥ 2 validated by a model's config.
pub(crate) fn sinusoidal(
    t: Tensor<1>,
    dim: usize,
    variant: &TimeEmbedding,
    device: &Device,
) -> Tensor<2> {
    let n = t.dims()[0];
    let half = dim / 2;
    // DDPM's denominator d/2 − 1 is 0 for d < 4 (it then has one frequency, 1); a
    // configured variant is validated to have a positive one.
    let denominator = half as f64 - variant.freq_shift;
    let denominator = if denominator > 0.0 { denominator } else { 1.0 };
    let scale = (10000f64).ln() / denominator;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(i as f64) * scale).exp() as f32)
        .collect();
    let freqs = Tensor::<1>::from_floats(freqs.as_slice(), device).reshape([1, half]);
    let args = t.reshape([n, 1]) * freqs;
    let (sin, cos) = (args.clone().sin(), args.cos());
    let emb = if variant.flip_sin_to_cos {
        Tensor::cat(vec![cos, sin], 1)
    } else {
        Tensor::cat(vec![sin, cos], 1)
    };
    if dim % 2 == 1 {
        Tensor::cat(vec![emb, Tensor::zeros([n, 1], device)], 1)
    } else {
        emb
    }
}
