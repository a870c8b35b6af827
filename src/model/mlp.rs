//! A small MLP denoiser for low-dimensional data (the 2-D toy sets).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};

use crate::error::{self, DiffusionError};
use crate::fused::silu;
use crate::model::Denoiser;
use crate::model::unet::{TimeEmbedding, check_class_labels, sinusoidal, with_class_embedding};

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
    /// Sinusoidal (Fourier) features of each input coordinate, fed to the first layer
    /// next to x_t itself: sin and cos of `input_scale`·x_j at `input_embedding / 2`
    /// geometric frequencies (those of the timestep embedding), per coordinate j; 0 feeds
    /// x_t alone. An MLP on raw low-dimensional coordinates is slow to fit a score that
    /// varies sharply across a thin manifold (the spectral bias of Tancik et al. 2020,
    /// "Fourier features let networks learn high frequency functions"); with 16 of
    /// them the quickstart's two moons are sampled to within their data's noise on the
    /// off-manifold share, where the plain MLP leaves 3–5 % of samples off the moons
    /// (docs/metrics.md).
    #[config(default = 0)]
    pub input_embedding: usize,
    /// The scale of the coordinates before their embedding: the highest frequency, in
    /// radians per unit of x (as tiny-diffusion's 25 for data of unit scale).
    #[config(default = 25.0)]
    pub input_scale: f64,
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
        if self.input_embedding > 0 && !(self.input_scale.is_finite() && self.input_scale > 0.0) {
            return Err(DiffusionError::config(
                "input_scale",
                self.input_scale,
                "must be positive and finite",
            ));
        }
        if self.input_embedding == 1 {
            return Err(DiffusionError::config(
                "input_embedding",
                1,
                "must be 0 (none) or at least 2 (one sine and one cosine)",
            ));
        }
        if self.time_embedding < 2 {
            return Err(DiffusionError::config(
                "time_embedding",
                self.time_embedding,
                "must be at least 2 (one sine and one cosine)",
            ));
        }
        let features = (self.dim as u128).saturating_mul(1 + self.input_embedding as u128);
        let (inputs, width) = (
            features.saturating_add(self.time_embedding as u128),
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
        let features = self.dim * (1 + self.input_embedding);
        let mut hidden =
            vec![LinearConfig::new(features + self.time_embedding, self.hidden).init(device)];
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
            dim: self.dim,
            input_embedding: self.input_embedding,
            input_scale: self.input_scale,
        })
    }
}

/// An MLP on [x_t, Fourier features of x_t (if configured), sinusoidal(t) (+ a class
/// embedding)] with SiLU activations: the model of the 2-D examples.
///
/// # Shapes
/// - `x_t`: `[N, dim]`; `t`: `[N]`; `labels`: `[N]` in `0..=num_classes` (an example with
///   a label outside gets a NaN output, see [`Denoiser::check_labels`]); output
///   `[N, out_dim]`
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
    out: Linear,
    class_embedding: Option<Embedding>,
    time_embedding: usize,
    dim: usize,
    input_embedding: usize,
    input_scale: f64,
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
        let mut h = Tensor::cat(vec![self.input_features(x_t), temb], 1);
        for layer in &self.hidden {
            h = silu(layer.forward(h));
        }
        self.out.forward(h)
    }
}

impl Mlp {
    /// x_t and, if configured, the sinusoidal features of each coordinate:
    /// `[N, dim · (1 + input_embedding)]`.
    fn input_features(&self, x_t: Tensor<2>) -> Tensor<2> {
        if self.input_embedding == 0 {
            return x_t;
        }
        let [n, dim] = x_t.dims();
        let device = x_t.device();
        let mut parts = vec![x_t.clone()];
        for j in 0..dim {
            let coordinate = x_t.clone().slice([0..n, j..j + 1]).reshape([n]);
            parts.push(sinusoidal(
                coordinate * self.input_scale,
                self.input_embedding,
                &TimeEmbedding::ddpm(),
                &device,
            ));
        }
        Tensor::cat(parts, 1)
    }
}

impl Denoiser<2> for Mlp {
    /// `[N, dim]`.
    fn check_input(&self, dims: &[usize]) -> error::Result<()> {
        let dim = self.dim;
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

    /// Labels in `0..=num_classes` (`num_classes` the null label); every label when the
    /// model has no class embedding.
    fn check_labels(&self, labels: &[i64]) -> error::Result<()> {
        check_class_labels(self.class_embedding.as_ref(), labels)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The first layer's input is [x, sin(s·x_j·f_k), cos(s·x_j·f_k)] with the timestep
    /// embedding's frequencies f_k = 10000^(−k/(K−1)) (DDPM's, K = input_embedding / 2),
    /// computed here in f64.
    #[test]
    fn input_features_are_sines_and_cosines_of_each_scaled_coordinate() {
        let device = Device::flex();
        let mlp = MlpConfig::new(2)
            .with_input_embedding(6)
            .with_input_scale(25.0)
            .init(&device)
            .unwrap();
        let points = [[0.3f32, -1.7], [2.0, 0.01]];
        let x = Tensor::<2>::from_floats(points, &device);
        let got = mlp
            .input_features(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(got.len(), 2 * 2 * (1 + 6));
        for (i, point) in points.iter().enumerate() {
            let mut expected: Vec<f64> = point.iter().map(|&v| f64::from(v)).collect();
            for &v in point {
                let freqs = (0..3).map(|k| (-(k as f64) * 10000f64.ln() / 2.0).exp());
                let args: Vec<f64> = freqs.map(|f| 25.0 * f64::from(v) * f).collect();
                expected.extend(args.iter().map(|a| a.sin()));
                expected.extend(args.iter().map(|a| a.cos()));
            }
            // f32 arguments up to 50 rad carry ≈ 50 · 2⁻²³ · 2 ≈ 1.2e-5 of rounding (the
            // scale's and the frequency's products); sin and cos add ~1e-7.
            for (k, e) in expected.iter().enumerate() {
                let g = f64::from(got[i * 14 + k]);
                assert!((g - e).abs() < 2e-5, "row {i} feature {k}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn without_an_input_embedding_the_input_is_x_t_alone() {
        let device = Device::flex();
        let mlp = MlpConfig::new(3).init(&device).unwrap();
        let x = Tensor::<2>::from_floats([[1.0, 2.0, 3.0]], &device);
        let got = mlp
            .input_features(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(got, vec![1.0, 2.0, 3.0]);
        assert_eq!(mlp.hidden[0].weight.dims(), [3 + 32, 128]);
    }

    #[test]
    fn an_embedded_mlp_takes_and_returns_its_data_shape() {
        let device = Device::flex();
        let mlp = MlpConfig::new(2)
            .with_input_embedding(16)
            .init(&device)
            .unwrap();
        assert_eq!(mlp.hidden[0].weight.dims(), [2 * 17 + 32, 128]);
        let x = Tensor::<2>::zeros([4, 2], &device);
        let t = Tensor::<1, Int>::from_ints([0, 10, 500, 999], &device);
        assert_eq!(mlp.denoise(x, t, None).dims(), [4, 2]);
        assert!(mlp.check_input(&[4, 2]).is_ok());
        assert!(mlp.check_input(&[4, 34]).is_err());
        // An empty batch stays empty; a NaN coordinate reaches the output.
        let empty = Tensor::<2>::zeros([0, 2], &device);
        let none = Tensor::<1, Int>::zeros([0], &device);
        assert_eq!(mlp.denoise(empty, none, None).dims(), [0, 2]);
        let x = Tensor::<2>::from_floats([[f32::NAN, 0.5]], &device);
        let out = mlp.denoise(x, Tensor::from_ints([3], &device), None);
        let out = out.into_data().try_to_vec::<f32>().unwrap();
        assert!(out.iter().all(|v| v.is_nan()), "{out:?}");
    }

    #[test]
    fn bad_input_embeddings_are_refused_by_name() {
        let device = Device::flex();
        let refused = |config: MlpConfig, field: &str| {
            let e = config.init(&device).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        };
        let embedded = MlpConfig::new(2).with_input_embedding(8);
        for scale in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            refused(embedded.clone().with_input_scale(scale), "input_scale");
        }
        refused(MlpConfig::new(2).with_input_embedding(1), "input_embedding");
        // The scale is not read without an embedding.
        assert!(
            MlpConfig::new(2)
                .with_input_scale(0.0)
                .init(&device)
                .is_ok()
        );
    }
}
