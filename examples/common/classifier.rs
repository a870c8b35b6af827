//! A small image classifier whose hidden features score samples: the Fréchet distance in
//! its feature space (an MNIST-scale stand-in for FID) and the accuracy of class-
//! conditional samples. Trained by the `classifier` example; read by `mnist`.

use std::path::Path;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::store::ModuleRecord;
use burn::tensor::activation::relu;
use burn::tensor::{Bytes, Device, Int, Tensor};
use burn_diffusion::metrics::GaussianFit;

/// Width of the feature layer.
pub const FEATURES: usize = 64;

/// x (flattened, in [−1, 1]) → 256 → ReLU → FEATURES → ReLU (the features) → 10 logits.
#[derive(Module, Debug)]
pub struct Classifier {
    hidden: Linear,
    features: Linear,
    out: Linear,
}

impl Classifier {
    /// A fresh classifier of images of `pixels` values.
    pub fn new(pixels: usize, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(pixels, 256).init(device),
            features: LinearConfig::new(256, FEATURES).init(device),
            out: LinearConfig::new(FEATURES, 10).init(device),
        }
    }

    /// The feature layer's activations, `[N, FEATURES]`, of images `[N, C, H, W]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let n = images.dims()[0];
        let x = images.reshape([n as i64, -1]);
        relu(self.features.forward(relu(self.hidden.forward(x))))
    }

    /// Class logits, `[N, 10]`.
    pub fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.out.forward(self.features(images))
    }

    /// The most likely class of each image.
    pub fn classes(&self, images: Tensor<4>) -> Tensor<1, Int> {
        let n = images.dims()[0];
        self.logits(images).argmax(1).reshape([n as i64])
    }

    /// The Gaussian fit of the features of `images`.
    pub fn fit(&self, images: Tensor<4>) -> Result<GaussianFit, String> {
        let features = self
            .features(images)
            .try_into_vec_as::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        GaussianFit::of(&features, FEATURES).map_err(|e| e.to_string())
    }

    /// The share of `images` classified as `labels`.
    pub fn accuracy(&self, images: Tensor<4>, labels: &[i64]) -> Result<f64, String> {
        let got = self
            .classes(images)
            .try_into_vec_as::<i64>()
            .map_err(|e| format!("{e:?}"))?;
        let right = got.iter().zip(labels).filter(|(a, b)| a == b).count();
        Ok(right as f64 / labels.len() as f64)
    }

    /// Loads the weights at `path` (burnpack) into a classifier of `pixels` inputs; the
    /// result owns its data.
    pub fn load(path: &Path, pixels: usize, device: &Device) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| format!("{}: {e:?}", path.display()))?;
        Self::new(pixels, device)
            .try_load_record(record)
            .map_err(|e| format!("{}: {e:?}", path.display()))
    }
}
