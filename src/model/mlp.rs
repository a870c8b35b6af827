//! A small MLP denoiser for low-dimensional data (the 2-D toy sets).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Int, Tensor};

use crate::error::{self, DiffusionError};
use crate::model::Denoiser;
use crate::model::unet::{TimeEmbedding, sinusoidal, with_class_embedding};

/// Configuration of [`Mlp`].
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::{Denoiser, model::MlpConfig};
///
/// let device = Device::flex();
/// let mlp = MlpConfig::new(2).init(&device).unwrap();
/// let x = Tensor::<2>::zeros([5, 2], &device);
/// let t = Tensor::<1, Int>::from_ints([0, 1, 2, 3, 4], &device);
/// assert_eq!(mlp.denoise(x, t, None).dims(), [5, 2]);
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct MlpConfig {
    /// Data dimension (input and, unless `out_dim` is set, output size).
    pub dim: usize,
    /// Output size (e.g. 2·dim for a learned variance); defaults to `dim`.
    #[config(default = "None")]
    pub out_dim: Option<usize>,
    /// Width of the hidden layers.
    #[config(default = 128)]
    pub hidden: usize,
    /// Number of hidden layers.
    #[config(default = 3)]
    pub layers: usize,
    /// Size of the sinusoidal timestep embedding.
    #[config(default = 32)]
    pub time_embedding: usize,
    /// Number of classes for class conditioning (`None`: unconditional). A learned
    /// embedding of the label (rows `0..=num_classes`; label `num_classes` is the null
    /// label of classifier-free guidance) is added to the timestep embedding, as the
    /// crate's UNet does.
    #[config(default = "None")]
    pub num_classes: Option<usize>,
}

impl MlpConfig {
    /// Builds the network.
    ///
    /// # Errors
    /// A zero size or layer count, a timestep embedding below 2, or more parameters than
    /// the host's memory holds.
    pub fn init(&self, device: &Device) -> error::Result<Mlp> {
        for (name, v) in [
            ("dim", self.dim),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("time_embedding", self.time_embedding),
            ("out_dim", self.out_dim.unwrap_or(1)),
        ] {
            if v == 0 {
                return Err(DiffusionError::config(name, 0, "must be positive"));
            }
        }
        if self.time_embedding < 2 {
            return Err(DiffusionError::config(
                "time_embedding",
                self.time_embedding,
                "must be at least 2 (one sine and one cosine)",
            ));
        }
        let (inputs, width) = (
            self.dim as u128 + self.time_embedding as u128,
            self.hidden as u128,
        );
        let outputs = self.out_dim.unwrap_or(self.dim) as u128;
        let classes = self.num_classes.map_or(0, |n| n as u128 + 1);
        let parameters = [
            classes.saturating_mul(self.time_embedding as u128),
            (inputs + 1).saturating_mul(width),
            (self.layers as u128 - 1).saturating_mul((width + 1).saturating_mul(width)),
            (width + 1).saturating_mul(outputs),
        ]
        .into_iter()
        .fold(0u128, u128::saturating_add);
        crate::size::check_parameters("MlpConfig", parameters)?;
        let mut hidden =
            vec![LinearConfig::new(self.dim + self.time_embedding, self.hidden).init(device)];
        for _ in 1..self.layers {
            hidden.push(LinearConfig::new(self.hidden, self.hidden).init(device));
        }
        Ok(Mlp {
            hidden,
            out: LinearConfig::new(self.hidden, self.out_dim.unwrap_or(self.dim)).init(device),
            class_embedding: self
                .num_classes
                .map(|n| EmbeddingConfig::new(n + 1, self.time_embedding).init(device)),
            time_embedding: self.time_embedding,
        })
    }
}

/// An MLP on [x_t, sinusoidal(t) (+ a class embedding)] with SiLU activations: the
/// model of the 2-D examples.
///
/// # Shapes
/// - `x_t`: `[N, dim]`; `t`: `[N]`; `labels`: `[N]` in `0..=num_classes`; output
///   `[N, out_dim]`
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
    out: Linear,
    class_embedding: Option<Embedding>,
    time_embedding: usize,
}

impl Mlp {
    /// The network's output at `(x_t, t)`, unconditional.
    pub fn forward(&self, x_t: Tensor<2>, t: Tensor<1, Int>) -> Tensor<2> {
        self.forward_fractional(x_t, t.float(), None)
    }

    /// The network's output at `(x_t, t)` and, for a class-conditional model, `labels`
    /// (ignored by an unconditional one; `None` adds no class embedding).
    pub fn forward_labeled(
        &self,
        x_t: Tensor<2>,
        t: Tensor<1, Int>,
        labels: Option<Tensor<1, Int>>,
    ) -> Tensor<2> {
        self.forward_fractional(x_t, t.float(), labels)
    }

    /// [`Mlp::forward_labeled`] at fractional timesteps `t` (its embedding is smooth in t).
    ///
    /// # Shapes
    /// - `x_t`: `[N, dim]`; `t`: `[N]`; `labels`: `[N]`; output `[N, out_dim]`
    pub fn forward_fractional(
        &self,
        x_t: Tensor<2>,
        t: Tensor<1>,
        labels: Option<Tensor<1, Int>>,
    ) -> Tensor<2> {
        let mut temb = sinusoidal(
            t,
            self.time_embedding,
            &TimeEmbedding::ddpm(),
            &x_t.device(),
        );
        temb = with_class_embedding(temb, self.class_embedding.as_ref(), labels);
        let mut h = Tensor::cat(vec![x_t, temb], 1);
        for layer in &self.hidden {
            h = silu(layer.forward(h));
        }
        self.out.forward(h)
    }
}

impl Denoiser<2> for Mlp {
    /// `[N, dim]`.
    fn check_input(&self, dims: &[usize]) -> error::Result<()> {
        let dim = self.hidden[0].weight.dims()[0] - self.time_embedding;
        if dims.get(1) != Some(&dim) {
            return Err(DiffusionError::input(
                "Mlp input x_t",
                dims,
                format!("the model takes [N, {dim}]"),
            ));
        }
        Ok(())
    }

    fn denoise(
        &self,
        x_t: Tensor<2>,
        t: Tensor<1, Int>,
        labels: Option<Tensor<1, Int>>,
    ) -> Tensor<2> {
        self.forward_labeled(x_t, t, labels)
    }

    fn denoise_fractional(
        &self,
        x_t: Tensor<2>,
        t: Tensor<1>,
        labels: Option<Tensor<1, Int>>,
    ) -> Option<Tensor<2>> {
        Some(self.forward_fractional(x_t, t, labels))
    }
}
