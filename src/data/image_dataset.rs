//! An in-memory set of equally sized images with labels, batched onto a device on demand.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{self, DiffusionError};
use crate::noise::SeededRng;

/// Images with labels, held on the host as `f32` pixels in [−1, 1] (the data range the
/// processes of this crate assume), ready to be batched onto any device.
///
/// A source pixel p with L levels 0..L−1 is stored as 2p/(L−1) − 1, the scaling of
/// Ho et al. (2020, sec. 3.3): 256 levels for IDX files (MNIST, Fashion-MNIST), 17 for
/// the 8×8 digits (0..16).
///
/// # Example
/// ```
/// use burn::tensor::Device;
/// use burn_diffusion::data::ImageDataset;
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits/digits.csv.gz");
/// let digits = ImageDataset::load_digits(path).unwrap();
/// assert_eq!((digits.len(), digits.image_shape()), (1797, [1, 8, 8]));
/// let (train, held_out) = digits.split(297, 0).unwrap();
/// assert_eq!((train.len(), held_out.len()), (1500, 297));
/// let batch = train.batch(&[0, 1, 2, 3], &Device::flex()).unwrap();
/// assert_eq!(batch.dims(), [4, 1, 8, 8]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDataset {
    pixels: Vec<f32>,
    labels: Vec<u8>,
    image_shape: [usize; 3],
    levels: u32,
}

impl ImageDataset {
    /// A dataset from pixels already scaled to [−1, 1], row-major `[N, C, H, W]`, and one
    /// label per image; `levels` is the number of pixel levels of the source (256 for
    /// 8-bit images), kept for discretized likelihoods.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] for a zero dimension, fewer than 2 levels or a
    /// pixel outside [−1, 1]; [`DiffusionError::ShapeMismatch`] if `pixels` does not hold
    /// `labels.len()` images of `image_shape`.
    pub fn new(
        pixels: Vec<f32>,
        labels: Vec<u8>,
        image_shape: [usize; 3],
        levels: u32,
    ) -> error::Result<Self> {
        if image_shape.contains(&0) {
            return Err(DiffusionError::config(
                "image_shape",
                format!("{image_shape:?}"),
                "every dimension must be positive",
            ));
        }
        if levels < 2 {
            return Err(DiffusionError::config(
                "levels",
                levels,
                "pixels need at least 2 levels",
            ));
        }
        let per_image: usize = image_shape.iter().product();
        if pixels.len() != labels.len() * per_image {
            return Err(DiffusionError::ShapeMismatch {
                what: "pixels vs labels × image shape",
                expected: vec![labels.len(), image_shape[0], image_shape[1], image_shape[2]],
                got: vec![pixels.len()],
            });
        }
        if let Some(bad) = pixels.iter().find(|p| !(-1.0..=1.0).contains(*p)) {
            return Err(DiffusionError::config(
                "pixel",
                bad,
                "pixels must be in [-1, 1]",
            ));
        }
        Ok(Self {
            pixels,
            labels,
            image_shape,
            levels,
        })
    }

    /// A dataset from integer pixel levels `0..levels` (checked by the caller).
    pub(crate) fn from_levels(
        levels_u8: &[u8],
        labels: Vec<u8>,
        image_shape: [usize; 3],
        levels: u32,
    ) -> error::Result<Self> {
        let scale = 2.0 / (levels - 1) as f32;
        let pixels = levels_u8.iter().map(|&p| p as f32 * scale - 1.0).collect();
        Self::new(pixels, labels, image_shape, levels)
    }

    /// Reads scikit-learn's 8×8 digits CSV (`digits.csv.gz`, plain or gzipped).
    ///
    /// # Errors
    /// [`DiffusionError::Data`] naming the file and line for a missing file, a line
    /// without 65 fields, a pixel outside 0..=16 or a label outside 0..=9.
    pub fn load_digits(path: impl AsRef<Path>) -> error::Result<Self> {
        super::digits::load(path.as_ref())
    }

    /// Reads an IDX image file (`*-images-idx3-ubyte`, plain or gzipped) and, if given,
    /// its IDX label file; without labels every label is 0.
    ///
    /// # Errors
    /// [`DiffusionError::Data`] naming the file for a wrong magic number, a truncated
    /// body or trailing bytes, and for label and image counts that differ.
    pub fn load_idx(images: impl AsRef<Path>, labels: Option<&Path>) -> error::Result<Self> {
        super::idx::load(images.as_ref(), labels)
    }

    /// The same images with every pixel rounded to the nearest of `levels` evenly spaced
    /// values in [−1, 1] (2k/(levels−1) − 1): e.g. the 17-level digits rendered as 8-bit
    /// images, as the discretized decoder of the variational bound expects (256 levels).
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] for fewer than 2 levels.
    pub fn quantized(&self, levels: u32) -> error::Result<Self> {
        if levels < 2 {
            return Err(DiffusionError::config(
                "levels",
                levels,
                "pixels need at least 2 levels",
            ));
        }
        let half = (levels - 1) as f32 / 2.0;
        let pixels = self
            .pixels
            .iter()
            .map(|p| ((p + 1.0) * half).round() / half - 1.0)
            .collect();
        Ok(Self {
            pixels,
            labels: self.labels.clone(),
            image_shape: self.image_shape,
            levels,
        })
    }

    /// Number of images `N`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[C, H, W]` of every image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.image_shape
    }

    /// Number of pixel levels of the source data (256 for 8-bit, 17 for the digits).
    pub fn levels(&self) -> u32 {
        self.levels
    }

    /// All pixels in [−1, 1], row-major `[N, C, H, W]`.
    pub fn pixels(&self) -> &[f32] {
        &self.pixels
    }

    /// One label per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The images at `indices`, in that order (repeats allowed).
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] for an index out of `0..N`.
    pub fn subset(&self, indices: &[usize]) -> error::Result<Self> {
        let per_image = self.image_shape.iter().product::<usize>();
        let mut pixels = Vec::with_capacity(indices.len() * per_image);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            self.check_index(i)?;
            pixels.extend_from_slice(&self.pixels[i * per_image..(i + 1) * per_image]);
            labels.push(self.labels[i]);
        }
        Ok(Self {
            pixels,
            labels,
            ..self.clone_shape()
        })
    }

    /// Splits into `(train, held_out)` with `held_out` images chosen at random by `seed`;
    /// both keep the original order of their images.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] unless `0 < held_out < N`.
    pub fn split(&self, held_out: usize, seed: u64) -> error::Result<(Self, Self)> {
        if held_out == 0 || held_out >= self.len() {
            return Err(DiffusionError::config(
                "held_out",
                held_out,
                format!("must be in 1..{} to leave images on both sides", self.len()),
            ));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        SeededRng::new(seed).shuffle(&mut order);
        let (held, train) = order.split_at_mut(held_out);
        held.sort_unstable();
        train.sort_unstable();
        Ok((self.subset(train)?, self.subset(held)?))
    }

    /// The images at `indices` as one tensor on `device`.
    ///
    /// # Shapes
    /// - output: `[indices.len(), C, H, W]`
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] for an empty `indices` or an index out of `0..N`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> error::Result<Tensor<4>> {
        if indices.is_empty() {
            return Err(DiffusionError::config(
                "indices",
                "[]",
                "a batch needs at least one image",
            ));
        }
        let subset = self.subset(indices)?;
        Ok(subset.to_tensor(device))
    }

    /// The labels at `indices` as an Int tensor on `device`.
    ///
    /// # Shapes
    /// - output: `[indices.len()]`
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] for an index out of `0..N`.
    pub fn batch_labels(
        &self,
        indices: &[usize],
        device: &Device,
    ) -> error::Result<Tensor<1, Int>> {
        let labels = indices
            .iter()
            .map(|&i| self.check_index(i).map(|_| self.labels[i] as i64))
            .collect::<error::Result<Vec<i64>>>()?;
        Ok(Tensor::from_data(
            TensorData::new(labels, [indices.len()]),
            device,
        ))
    }

    /// The whole dataset as one tensor on `device`.
    ///
    /// # Shapes
    /// - output: `[N, C, H, W]`
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        let [c, h, w] = self.image_shape;
        let data = TensorData::new(self.pixels.clone(), [self.len(), c, h, w]);
        Tensor::from_data(data, device)
    }

    fn check_index(&self, i: usize) -> error::Result<()> {
        if i < self.len() {
            Ok(())
        } else {
            Err(DiffusionError::config(
                "index",
                i,
                format!("out of range 0..{}", self.len()),
            ))
        }
    }

    fn clone_shape(&self) -> Self {
        Self {
            pixels: Vec::new(),
            labels: Vec::new(),
            image_shape: self.image_shape,
            levels: self.levels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ImageDataset {
        // Four 1×1×2 images with pixel levels 0..=3 (4 levels).
        ImageDataset::from_levels(&[0, 1, 2, 3, 3, 2, 1, 0], vec![7, 8, 9, 5], [1, 1, 2], 4)
            .unwrap()
    }

    #[test]
    fn levels_scale_to_minus_one_one() {
        let d = tiny();
        let third = 2.0 / 3.0;
        let want = [-1.0, third - 1.0, 2.0 * third - 1.0, 1.0];
        for (got, want) in d.pixels()[..4].iter().zip(want) {
            assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        }
        assert_eq!((d.len(), d.levels(), d.image_shape()), (4, 4, [1, 1, 2]));
    }

    #[test]
    fn split_is_a_seeded_partition_in_order() {
        let d = tiny();
        let (train, held) = d.split(1, 3).unwrap();
        let mut all: Vec<u8> = train
            .labels()
            .iter()
            .chain(held.labels())
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, vec![5, 7, 8, 9]);
        assert_eq!(train.len(), 3);
        assert_eq!(d.split(1, 3).unwrap(), (train, held));
        // The first 3 labels in file order are 7, 8, 9; the train side keeps file order.
        let (train, _) = d.split(1, 11).unwrap();
        let positions: Vec<usize> = train
            .labels()
            .iter()
            .map(|l| d.labels().iter().position(|x| x == l).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
        assert!(d.split(0, 0).is_err() && d.split(4, 0).is_err());
    }

    #[test]
    fn batches_hold_the_chosen_images() {
        let d = tiny();
        let device = Device::flex();
        let batch = d.batch(&[3, 0], &device).unwrap();
        assert_eq!(batch.dims(), [2, 1, 1, 2]);
        let values = batch.try_into_vec_as::<f32>().unwrap();
        assert_eq!(values[..2], d.pixels()[6..8]);
        assert_eq!(values[2..], d.pixels()[0..2]);
        let labels = d.batch_labels(&[3, 0], &device).unwrap();
        assert_eq!(labels.try_into_vec_as::<i64>().unwrap(), vec![5, 7]);
        assert!(d.batch(&[4], &device).is_err());
        assert!(d.batch(&[], &device).is_err());
        assert!(d.batch_labels(&[9], &device).is_err());
    }

    #[test]
    fn quantizing_moves_each_pixel_to_the_nearest_level() {
        // 4 levels {−1, −⅓, ⅓, 1} onto 256: each value moves by at most half a step, 1/255.
        let d = tiny().quantized(256).unwrap();
        assert_eq!(d.levels(), 256);
        for (q, p) in d.pixels().iter().zip(tiny().pixels()) {
            let k = (q + 1.0) * 127.5;
            assert!(
                (k - k.round()).abs() < 1e-4,
                "{q} is not on the 256-level grid"
            );
            assert!((q - p).abs() <= 1.0 / 255.0 + 1e-6, "{q} vs {p}");
        }
        assert!(tiny().quantized(1).is_err());
    }

    #[test]
    fn inconsistent_construction_is_an_error() {
        assert!(ImageDataset::new(vec![0.0; 3], vec![0, 1], [1, 1, 2], 256).is_err());
        assert!(ImageDataset::new(vec![0.0; 4], vec![0, 1], [1, 0, 2], 256).is_err());
        assert!(ImageDataset::new(vec![0.0; 4], vec![0, 1], [1, 1, 2], 1).is_err());
        assert!(ImageDataset::new(vec![0.0, 2.0], vec![0], [1, 1, 2], 256).is_err());
        assert!(ImageDataset::new(vec![0.0; 4], vec![0, 1], [1, 1, 2], 256).is_ok());
    }
}
