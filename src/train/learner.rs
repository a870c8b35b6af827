//! burn-train integration (feature `train`): the diffusion objective as a
//! [`TrainStep`] / [`InferenceStep`] model, and a [`Batcher`] that draws each batch's
//! timesteps and noise, so any [`Denoiser`] trains with Burn's own `Learner` and its
//! single- and multi-device strategies.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::module::{Module, ModuleDisplay};
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::{InferenceStep, RegressionOutput, TrainOutput, TrainStep};

use crate::data::ImageDataset;
use crate::error::{self, DiffusionError};
use crate::loss::draw_uniform;
use crate::loss::{Loss, LossOutput};
use crate::model::{Denoiser, WithLabels};
use crate::noise::{SeededRng, randn};
use crate::schedule::Timesteps;
use crate::train::LabelDropout;

/// One training or validation batch of the diffusion objective: clean data, the
/// timesteps and noise to corrupt it with (eq. 4 of Ho et al. 2020), and for a
/// class-conditional model the labels (after label dropout).
///
/// Built by [`DiffusionBatcher`]; any batch built by hand works too.
///
/// The timesteps stay on the host: the loss reads nothing back from the device for them.
///
/// # Shapes
/// - `x0`, `noise`: `[N, ...]`; `t`: `N` timesteps
///
/// # Example
/// ```
/// use burn::tensor::Device;
/// use burn_diffusion::{noise::randn, schedule::Timesteps, train::DiffusionBatch};
///
/// let device = Device::flex();
/// let batch = DiffusionBatch {
///     x0: randn::<2>([4, 2], 0, &device),
///     t: Timesteps::new(vec![0, 10, 20, 30]),
///     noise: randn::<2>([4, 2], 1, &device),
///     labels: None,
///     seed: 0,
/// };
/// assert_eq!(batch.x0.dims(), batch.noise.dims());
/// ```
#[derive(Debug, Clone)]
pub struct DiffusionBatch<const D: usize> {
    /// Clean data x_0.
    pub x0: Tensor<D>,
    /// One 0-based timestep per example, in `0..T` (checked by the loss).
    pub t: Timesteps,
    /// The noise ε, of the shape of `x0`.
    pub noise: Tensor<D>,
    /// One class label per example for a class-conditional model (`[N]`; dropped labels
    /// are the null label), or `None`.
    pub labels: Option<Tensor<1, Int>>,
    /// The seed `t` and `noise` were drawn from; [`TrainStep::step`] seeds the device's
    /// generator with it, so a model's own randomness (dropout) is reproducible too
    /// (Flex's generator is global to the process: other threads drawing from it at the
    /// same time break that).
    pub seed: u64,
}

/// How a [`DiffusionBatcher`] seeds each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seeding {
    /// Seed `i` for the `i`-th batch the batcher builds: new noise every batch.
    Counter,
    /// A seed from the batch's contents: the same batch always gets the same noise.
    Content,
}

/// A burn [`Batcher`] from examples to a [`DiffusionBatch`]: it stacks the examples into
/// `x0` and draws uniform timesteps in `0..T` and standard normal noise for them.
///
/// Items are anything that is `AsRef<[f32]>`, holding one example in row-major order: `[f32; 2]` points (e.g. [`crate::data::Toy2d::sample`]), `Vec<f32>` images (e.g.
/// an [`ImageDataset`], which implements burn's [`Dataset`] under this feature); or
/// [`Labeled`] examples for a class-conditional model (e.g. [`LabeledImages`]), whose
/// labels go into [`DiffusionBatch::labels`], after the label dropout of
/// [`DiffusionBatcher::with_label_dropout`] if one is set.
///
/// # Randomness
///
/// Every batch gets a seed; its timesteps are [`uniform_timestep_values`](crate::loss::uniform_timestep_values)`(N, T, seed)` and its
/// noise [`randn`]`(shape, seed + 1)` (the convention of [`Loss::loss_seeded`]), so they
/// are the same on every device.
///
/// - [`DiffusionBatcher::new`] (training): batch `i` built by this batcher (counting from
///   0, across epochs) gets a seed mixed from `seed` and `i`, so every batch gets fresh
///   noise and a run is reproducible as long as batches are built in order. That holds
///   for burn's default data loader (`num_workers` 0 or unset); with worker threads, the
///   order in which the workers build batches (and so which batch gets which noise)
///   varies from run to run.
/// - [`DiffusionBatcher::fixed`] (validation): the seed is mixed from `seed` and the
///   bits of the batch's data, so the same batch gets the same timesteps and noise in
///   every epoch and with any number of workers. The validation loss of two epochs then
///   differs only because the model did (common random numbers).
///
/// # Shapes
/// - items: `prod(example_shape)` values each; output `x0`, `noise`: `[N, example_shape..]`,
///   `t`: `[N]`, for `N` items
///
/// # Panics
/// [`Batcher::batch`] cannot return an error: it panics on an empty batch or an item
/// whose length is not `prod(example_shape)` (both are bugs of the data pipeline, not of
/// training, and burn's data loaders never build an empty batch).
///
/// # Example
/// ```
/// use burn::data::dataloader::batcher::Batcher;
/// use burn::tensor::Device;
/// use burn_diffusion::train::DiffusionBatcher;
///
/// let device = Device::flex();
/// let batcher = DiffusionBatcher::<2>::new(&[2], 1000, 0)?;
/// let batch = batcher.batch(vec![[0.5f32, -1.0], [1.0, 0.0], [0.0, 0.25]], &device);
/// assert_eq!((batch.x0.dims(), batch.t.len(), batch.noise.dims()), ([3, 2], 3, [3, 2]));
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Debug)]
pub struct DiffusionBatcher<const D: usize> {
    example_shape: Vec<usize>,
    example_len: usize,
    num_timesteps: usize,
    seed: u64,
    seeding: Seeding,
    dropout: Option<LabelDropout>,
    batches: AtomicU64,
}

impl<const D: usize> DiffusionBatcher<D> {
    /// A batcher of examples of `example_shape` (the shape of one example, `D − 1`
    /// dimensions) for a process of `num_timesteps` steps (e.g. [`Loss::num_timesteps`]),
    /// drawing fresh timesteps and noise for every batch from `seed` (see the type's
    /// documentation).
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] if `example_shape` does not have `D − 1`
    /// dimensions or has a zero one, or if `num_timesteps` is 0.
    pub fn new(example_shape: &[usize], num_timesteps: usize, seed: u64) -> error::Result<Self> {
        if D < 2 || example_shape.len() != D - 1 {
            return Err(DiffusionError::config(
                "example_shape",
                format!("{example_shape:?}"),
                format!(
                    "a batch of rank {D} needs examples of rank {}",
                    D.saturating_sub(1)
                ),
            ));
        }
        if example_shape.contains(&0) {
            return Err(DiffusionError::config(
                "example_shape",
                format!("{example_shape:?}"),
                "every dimension must be positive",
            ));
        }
        if num_timesteps == 0 {
            return Err(DiffusionError::config(
                "num_timesteps",
                0,
                "must be positive",
            ));
        }
        Ok(Self {
            example_len: example_shape.iter().product(),
            example_shape: example_shape.to_vec(),
            num_timesteps,
            seed,
            seeding: Seeding::Counter,
            dropout: None,
            batches: AtomicU64::new(0),
        })
    }

    /// This batcher, replacing each label of a [`Labeled`] batch by the null label with
    /// probability `p_uncond` (Ho & Salimans 2022; drawn from the batch's seed), so one
    /// model learns the conditional and the unconditional ε for classifier-free
    /// guidance. Leave it off for validation.
    pub fn with_label_dropout(mut self, dropout: LabelDropout) -> Self {
        self.dropout = Some(dropout);
        self
    }

    /// This batcher, drawing each batch's timesteps and noise from its contents: the
    /// same batch always gets the same ones. Use it for validation.
    pub fn fixed(mut self) -> Self {
        self.seeding = Seeding::Content;
        self
    }

    /// The shape of one example.
    pub fn example_shape(&self) -> &[usize] {
        &self.example_shape
    }

    /// Number of timesteps T that timesteps are drawn from (`0..T`).
    pub fn num_timesteps(&self) -> usize {
        self.num_timesteps
    }

    /// Batches built so far.
    pub fn batches_built(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    fn batch_seed(&self, values: &[f32]) -> u64 {
        let index = self.batches.fetch_add(1, Ordering::Relaxed);
        match self.seeding {
            Seeding::Counter => mix(self.seed, index),
            Seeding::Content => {
                // FNV-1a over the bits of the data and its length.
                let mut hash = 0xCBF2_9CE4_8422_2325u64;
                for bits in values
                    .iter()
                    .map(|v| u64::from(v.to_bits()))
                    .chain([values.len() as u64])
                {
                    hash = (hash ^ bits).wrapping_mul(0x0000_0100_0000_01B3);
                }
                mix(self.seed, hash)
            }
        }
    }
}

impl<const D: usize> Clone for DiffusionBatcher<D> {
    /// A batcher with the same settings whose batch counter continues from this one's.
    fn clone(&self) -> Self {
        Self {
            example_shape: self.example_shape.clone(),
            example_len: self.example_len,
            num_timesteps: self.num_timesteps,
            seed: self.seed,
            seeding: self.seeding,
            dropout: self.dropout,
            batches: AtomicU64::new(self.batches_built()),
        }
    }
}

impl<I, const D: usize> Batcher<I, DiffusionBatch<D>> for DiffusionBatcher<D>
where
    I: AsRef<[f32]>,
{
    fn batch(&self, items: Vec<I>, device: &Device) -> DiffusionBatch<D> {
        self.stack(items.iter().map(AsRef::as_ref), None, device)
    }
}

impl<I, const D: usize> Batcher<Labeled<I>, DiffusionBatch<D>> for DiffusionBatcher<D>
where
    I: AsRef<[f32]>,
{
    /// # Panics
    /// As the unlabelled batch (an empty batch, an item of the wrong length).
    fn batch(&self, items: Vec<Labeled<I>>, device: &Device) -> DiffusionBatch<D> {
        let labels: Vec<i64> = items.iter().map(|item| item.label).collect();
        let examples = items.iter().map(|item| item.example.as_ref());
        self.stack(examples, Some(labels), device)
    }
}

impl<const D: usize> DiffusionBatcher<D> {
    /// The batch of `examples` (and `labels`), with its seed's timesteps, noise and label
    /// dropout.
    fn stack<'a>(
        &self,
        examples: impl ExactSizeIterator<Item = &'a [f32]>,
        labels: Option<Vec<i64>>,
        device: &Device,
    ) -> DiffusionBatch<D> {
        let n = examples.len();
        assert!(
            n > 0,
            "DiffusionBatcher: a batch needs at least one example"
        );
        let mut values = Vec::with_capacity(n * self.example_len);
        for (i, item) in examples.enumerate() {
            assert!(
                item.len() == self.example_len,
                "DiffusionBatcher: example {i} of the batch has {} values, but examples of shape {:?} have {}",
                item.len(),
                self.example_shape,
                self.example_len
            );
            values.extend_from_slice(item);
        }
        let seed = self.batch_seed(&values);
        let shape: Vec<usize> = core::iter::once(n)
            .chain(self.example_shape.iter().copied())
            .collect();
        let x0 = Tensor::from_data(TensorData::new(values, shape.clone()), device);
        let labels = labels.map(|mut labels| {
            if let Some(dropout) = &self.dropout {
                let dropped = dropout.dropped(n, seed.wrapping_add(2));
                for (label, drop) in labels.iter_mut().zip(dropped) {
                    if drop {
                        *label = dropout.null_label();
                    }
                }
            }
            Tensor::from_data(TensorData::new(labels, [n]), device)
        });
        DiffusionBatch {
            x0,
            t: draw_uniform(n, self.num_timesteps, seed),
            noise: randn(shape, seed.wrapping_add(1), device),
            labels,
            seed,
        }
    }
}

/// One example and its class label: the item of a labelled [`DiffusionBatcher`].
#[derive(Debug, Clone, PartialEq)]
pub struct Labeled<I> {
    /// The example, row-major (e.g. `Vec<f32>`, `[f32; 2]`).
    pub example: I,
    /// Its class label.
    pub label: i64,
}

/// An [`ImageDataset`] whose items are [`Labeled`] images, for class-conditional
/// training with burn-train (feature `train`).
///
/// # Example
/// ```
/// use burn::data::dataset::Dataset;
/// use burn_diffusion::data::ImageDataset;
/// use burn_diffusion::train::LabeledImages;
///
/// let images = ImageDataset::new(vec![0.0; 2 * 4], vec![3, 7], [1, 2, 2], 256)?;
/// let labelled = LabeledImages::new(images);
/// assert_eq!(labelled.get(1).map(|item| item.label).ok(), Some(7));
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LabeledImages {
    images: ImageDataset,
}

impl LabeledImages {
    /// The images of `images` with their labels.
    pub fn new(images: ImageDataset) -> Self {
        Self { images }
    }

    /// The images.
    pub fn images(&self) -> &ImageDataset {
        &self.images
    }
}

impl Dataset<Labeled<Vec<f32>>> for LabeledImages {
    /// # Errors
    /// As the [`ImageDataset`]'s: an `index` not below the number of images.
    fn get(&self, index: usize) -> Result<Labeled<Vec<f32>>, DatasetError> {
        let example = Dataset::<Vec<f32>>::get(&self.images, index)?;
        let label = i64::from(self.images.labels()[index]);
        Ok(Labeled { example, label })
    }

    fn len(&self) -> usize {
        self.images.len()
    }
}

/// A seed for position `index` of the stream of `seed`.
fn mix(seed: u64, index: u64) -> u64 {
    let mut rng = SeededRng::new(seed ^ 0x6A09_E667_F3BC_C908);
    SeededRng::new(rng.next_u64() ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// One image per item: its `C·H·W` pixels in [−1, 1], row-major (feature `train`).
///
/// Batch them with a [`DiffusionBatcher`] of example shape [`ImageDataset::image_shape`].
impl Dataset<Vec<f32>> for ImageDataset {
    /// # Errors
    /// A [`DatasetError`] wrapping [`DiffusionError::InvalidConfig`] if `index` is not
    /// below the number of images.
    fn get(&self, index: usize) -> Result<Vec<f32>, DatasetError> {
        let len = ImageDataset::len(self);
        if index >= len {
            let reason = format!("out of range 0..{len}");
            return Err(DatasetError::new(DiffusionError::config(
                "index", index, reason,
            )));
        }
        let size: usize = self.image_shape().iter().product();
        Ok(self.pixels()[index * size..(index + 1) * size].to_vec())
    }

    fn len(&self) -> usize {
        ImageDataset::len(self)
    }
}

/// A denoiser with its training loss, as a model burn-train's `Learner` can train: it
/// implements [`TrainStep`] (the loss's batch mean, backward) and [`InferenceStep`] (the
/// loss without gradients) on [`DiffusionBatch`]es.
///
/// Both steps return a [`RegressionOutput`] whose `loss` is the **per-example** loss
/// (`[N]`), so burn's `LossMetric` reports the dataset mean weighted by batch size. A
/// diffusion loss has no regression target: `output` is the per-example loss as
/// `[N, 1]` and `targets` zeros of that shape, so metrics other than the loss's mean
/// are meaningless on it.
///
/// Only the denoiser is a module (its parameters are trained, saved and moved across
/// devices); the loss is a plain field, cloned with the model.
///
/// # Panics
///
/// Burn's steps cannot return errors. Every error of [`Loss::loss`] panics inside
/// [`TrainStep::step`] / [`InferenceStep::step`]: a model output of the wrong shape (e.g.
/// an `Mlp` whose `out_dim` does not match a learned-variance loss), data whose shape the
/// loss rejects, or a timestep outside `0..T` (a [`DiffusionBatcher`] made for a different
/// number of timesteps). Call [`DiffusionObjective::evaluate`] on one batch before
/// training to get these as a [`DiffusionError`] instead. A NaN loss does not panic:
/// watch the logged loss.
///
/// # Example
/// ```
/// use burn::data::dataloader::batcher::Batcher;
/// use burn::tensor::Device;
/// use burn::train::InferenceStep;
/// use burn_diffusion::data::Toy2d;
/// use burn_diffusion::{
///     loss::{SimpleLoss, Weighting},
///     model::MlpConfig,
///     prediction::Prediction,
///     process::VpProcess,
///     schedule::ScheduleConfig,
///     train::{DiffusionBatcher, DiffusionObjective},
/// };
///
/// let device = Device::flex();
/// let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(100).init()?);
/// let loss = SimpleLoss::new(process, Prediction::Epsilon, Weighting::Uniform)?;
/// let batcher = DiffusionBatcher::<2>::new(&[2], 100, 0)?;
/// let objective = DiffusionObjective::new(MlpConfig::new(2).init(&device)?, loss);
///
/// let batch = batcher.batch(Toy2d::TwoMoons.sample(16, 0), &device);
/// objective.evaluate(batch.clone())?; // shapes and timesteps check out
/// let output = InferenceStep::step(&objective, batch);
/// assert_eq!(output.loss.dims(), [16]);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
#[derive(Module, Debug)]
pub struct DiffusionObjective<M, L, const D: usize> {
    /// The denoiser being trained.
    pub model: M,
    #[module(skip)]
    loss: L,
}

impl<M, L, const D: usize> DiffusionObjective<M, L, D>
where
    M: Module + ModuleDisplay + Denoiser<D>,
    L: Loss<D> + Clone + fmt::Debug + Send + Sync + 'static,
{
    /// `model` trained with `loss`, put in training mode ([`Module::train`]: gradients
    /// enabled, as `backward` needs). The model may live on any device: burn-train forks
    /// it to the autodiff version of the training device itself.
    pub fn new(model: M, loss: L) -> Self {
        Self {
            model: model.train(),
            loss,
        }
    }

    /// The loss.
    pub fn loss(&self) -> &L {
        &self.loss
    }

    /// The denoiser, e.g. the trained one of burn-train's `LearningResult::model`.
    pub fn into_model(self) -> M {
        self.model
    }

    /// The loss of the model on `batch`, per example (given the batch's labels, if any).
    /// This is the check to run on one batch before `launch`: it also reads the batch's
    /// labels back and checks them with the model's [`Denoiser::check_labels`] (the train
    /// and validation steps skip that read; there a label out of range gives a NaN loss).
    ///
    /// # Errors
    /// As [`Loss::loss`]: timesteps out of range, or shapes that do not match;
    /// [`crate::DiffusionError::LabelOutOfRange`] for a label the model cannot take.
    pub fn evaluate(&self, batch: DiffusionBatch<D>) -> error::Result<LossOutput> {
        if let Some(labels) = &batch.labels {
            let host: Vec<i64> = crate::host::read_vec(labels.clone(), "batch labels")?;
            self.model.check_labels(&host)?;
        }
        self.loss_of(batch)
    }

    /// [`DiffusionObjective::evaluate`] without reading the labels back.
    fn loss_of(&self, batch: DiffusionBatch<D>) -> error::Result<LossOutput> {
        match batch.labels {
            Some(labels) => {
                let model = WithLabels::new(&self.model, labels);
                self.loss.loss(&model, batch.x0, &batch.t, batch.noise)
            }
            None => self.loss.loss(&self.model, batch.x0, &batch.t, batch.noise),
        }
    }

    fn regression_output(&self, batch: DiffusionBatch<D>) -> RegressionOutput {
        let loss = self
            .loss_of(batch)
            .unwrap_or_else(|e| panic!("DiffusionObjective: the loss failed: {e}"))
            .loss;
        let [n] = loss.dims();
        let output = loss.clone().reshape([n, 1]);
        let targets = Tensor::zeros([n, 1], &loss.device());
        RegressionOutput::new(loss, output, targets)
    }
}

impl<M, L, const D: usize> TrainStep for DiffusionObjective<M, L, D>
where
    M: Module + ModuleDisplay + Denoiser<D>,
    L: Loss<D> + Clone + fmt::Debug + Send + Sync + 'static,
{
    type Input = DiffusionBatch<D>;
    type Output = RegressionOutput;

    /// Seeds the device with `batch.seed`, evaluates the loss and backpropagates its
    /// batch mean.
    ///
    /// # Panics
    /// On an error of [`Loss::loss`] (see [`DiffusionObjective`]).
    fn step(&self, batch: DiffusionBatch<D>) -> TrainOutput<RegressionOutput> {
        batch.x0.device().seed(batch.seed);
        let output = self.regression_output(batch);
        let grads = output.loss.clone().mean().backward();
        TrainOutput::new(self, grads, output)
    }
}

impl<M, L, const D: usize> InferenceStep for DiffusionObjective<M, L, D>
where
    M: Module + ModuleDisplay + Denoiser<D>,
    L: Loss<D> + Clone + fmt::Debug + Send + Sync + 'static,
{
    type Input = DiffusionBatch<D>;
    type Output = RegressionOutput;

    /// The per-example loss on `batch`, without gradients on a validation model.
    ///
    /// # Panics
    /// On an error of [`Loss::loss`] (see [`DiffusionObjective`]).
    fn step(&self, batch: DiffusionBatch<D>) -> RegressionOutput {
        self.regression_output(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Toy2d;
    use crate::loss::{SimpleLoss, Weighting};
    use crate::model::MlpConfig;
    use crate::prediction::Prediction;
    use crate::process::VpProcess;
    use crate::schedule::ScheduleConfig;

    fn values<const D: usize>(x: Tensor<D>) -> Vec<f32> {
        x.try_into_vec_as::<f32>().unwrap()
    }

    fn ints(t: Timesteps) -> Vec<usize> {
        t.as_slice().to_vec()
    }

    #[test]
    fn batch_has_the_shapes_of_the_examples() {
        let device = Device::flex();
        let batcher = DiffusionBatcher::<4>::new(&[1, 2, 3], 50, 0).unwrap();
        let items: Vec<Vec<f32>> = (0..5).map(|i| vec![i as f32; 6]).collect();
        let batch = batcher.batch(items, &device);
        assert_eq!(batch.x0.dims(), [5, 1, 2, 3]);
        assert_eq!(batch.noise.dims(), [5, 1, 2, 3]);
        assert_eq!(batch.t.len(), 5);
        // x0 holds the items in order.
        let x0 = values(batch.x0);
        assert_eq!(&x0[6..12], &[1.0; 6]);
        assert_eq!(&x0[24..], &[4.0; 6]);
        assert!(ints(batch.t).iter().all(|&t| (0..50).contains(&t)));
    }

    #[test]
    fn seeding_counts_batches_and_repeats_across_runs() {
        let device = Device::flex();
        let items = || Toy2d::TwoMoons.sample(32, 0);
        let run = || {
            let batcher = DiffusionBatcher::<2>::new(&[2], 1000, 7).unwrap();
            let a: DiffusionBatch<2> = batcher.batch(items(), &device);
            let b: DiffusionBatch<2> = batcher.batch(items(), &device);
            (a, b)
        };
        let (a1, b1) = run();
        let (a2, b2) = run();
        // The same batch, built twice in one run, gets new noise and timesteps...
        assert_ne!(a1.seed, b1.seed);
        assert_ne!(values(a1.noise.clone()), values(b1.noise.clone()));
        assert_ne!(ints(a1.t.clone()), ints(b1.t.clone()));
        // ...and a second run repeats the first one exactly.
        assert_eq!((a1.seed, b1.seed), (a2.seed, b2.seed));
        assert_eq!(values(a1.noise), values(a2.noise));
        assert_eq!(ints(b1.t), ints(b2.t));
        // A different seed gives different noise.
        let other = DiffusionBatcher::<2>::new(&[2], 1000, 8).unwrap();
        let c: DiffusionBatch<2> = other.batch(items(), &device);
        assert_ne!(values(c.noise), values(b2.noise));
    }

    #[test]
    fn fixed_seeding_depends_on_the_data_only() {
        let device = Device::flex();
        let batcher = DiffusionBatcher::<2>::new(&[2], 1000, 7).unwrap().fixed();
        let first: DiffusionBatch<2> = batcher.batch(Toy2d::TwoMoons.sample(32, 0), &device);
        let again: DiffusionBatch<2> = batcher.batch(Toy2d::TwoMoons.sample(32, 0), &device);
        let other: DiffusionBatch<2> = batcher.batch(Toy2d::TwoMoons.sample(32, 1), &device);
        assert_eq!(batcher.batches_built(), 3);
        assert_eq!(first.seed, again.seed);
        assert_eq!(values(first.noise.clone()), values(again.noise));
        assert_eq!(ints(first.t.clone()), ints(again.t));
        assert_ne!(first.seed, other.seed);
        assert_ne!(values(first.noise), values(other.noise));
    }

    #[test]
    fn batch_noise_is_standard_normal_and_timesteps_uniform() {
        let device = Device::flex();
        let batcher = DiffusionBatcher::<2>::new(&[2], 10, 3).unwrap();
        let batch: DiffusionBatch<2> = batcher.batch(vec![[0.0f32; 2]; 20_000], &device);
        let noise = values(batch.noise);
        let n = noise.len() as f64;
        let mean = noise.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = noise
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        // Standard errors: 1/sqrt(n) = 0.005 (mean), sqrt(2/n) = 0.007 (variance); 5 each.
        assert!(mean.abs() < 0.025, "mean {mean}");
        assert!((var - 1.0).abs() < 0.035, "variance {var}");
        // Each of the 10 timesteps has probability 0.1: count sd sqrt(20000·0.09) ≈ 42.
        let t = ints(batch.t);
        for step in 0..10 {
            let count = t.iter().filter(|&&v| v == step).count() as f64;
            assert!(
                (count - 2000.0).abs() < 5.0 * 42.5,
                "timestep {step}: {count}"
            );
        }
    }

    #[test]
    fn bad_configuration_is_an_error() {
        assert!(DiffusionBatcher::<2>::new(&[2, 2], 10, 0).is_err());
        assert!(DiffusionBatcher::<4>::new(&[1, 0, 3], 10, 0).is_err());
        assert!(DiffusionBatcher::<2>::new(&[2], 0, 0).is_err());
        assert!(DiffusionBatcher::<1>::new(&[], 10, 0).is_err());
    }

    #[test]
    #[should_panic(expected = "has 3 values")]
    fn item_of_the_wrong_length_panics() {
        let batcher = DiffusionBatcher::<2>::new(&[2], 10, 0).unwrap();
        let _: DiffusionBatch<2> =
            batcher.batch(vec![vec![0.0f32; 2], vec![0.0; 3]], &Device::flex());
    }

    #[test]
    fn image_dataset_items_are_images() {
        let pixels: Vec<f32> = (0..3 * 4).map(|i| i as f32 / 12.0).collect();
        let data = ImageDataset::new(pixels.clone(), vec![0, 1, 2], [1, 2, 2], 256).unwrap();
        assert_eq!(Dataset::<Vec<f32>>::len(&data), 3);
        assert_eq!(Dataset::get(&data, 1).unwrap(), pixels[4..8].to_vec());
        let err = Dataset::get(&data, 3).unwrap_err().to_string();
        assert!(err.contains("out of range 0..3"), "{err}");
    }

    fn objective() -> (
        DiffusionObjective<crate::model::Mlp, SimpleLoss<VpProcess>, 2>,
        DiffusionBatcher<2>,
    ) {
        let device = Device::flex();
        let process = VpProcess::new(
            ScheduleConfig::new()
                .with_num_timesteps(100)
                .init()
                .unwrap(),
        );
        let loss = SimpleLoss::new(process, Prediction::Epsilon, Weighting::Uniform).unwrap();
        let model = MlpConfig::new(2).with_hidden(16).init(&device).unwrap();
        (
            DiffusionObjective::new(model, loss),
            DiffusionBatcher::new(&[2], 100, 0).unwrap(),
        )
    }

    #[test]
    fn steps_report_the_per_example_loss() {
        let (objective, batcher) = objective();
        let device = Device::flex();
        let batch: DiffusionBatch<2> = batcher.batch(Toy2d::TwoMoons.sample(8, 0), &device);
        let expected = values(objective.evaluate(batch.clone()).unwrap().loss);
        let output = InferenceStep::step(&objective, batch.clone());
        assert_eq!(values(output.loss), expected);
        assert_eq!(values(output.output), expected);

        // On an autodiff device, the train step's gradients reach every parameter.
        let device = device.autodiff();
        let objective = objective.fork(&device).train();
        let batch = DiffusionBatch {
            x0: batch.x0.to_device(&device),
            t: batch.t,
            noise: batch.noise.to_device(&device),
            labels: None,
            seed: batch.seed,
        };
        let train = TrainStep::step(&objective, batch);
        assert_eq!(values(train.item.loss), expected);
        struct Count(usize);
        impl burn::module::ModuleVisitor for Count {
            fn visit_float<const N: usize>(&mut self, _: &burn::module::Param<Tensor<N>>) {
                self.0 += 1;
            }
        }
        let mut params = Count(0);
        objective.visit(&mut params);
        assert_eq!(params.0, 8); // 4 linear layers: weights and biases
        assert_eq!(train.grads.len(), params.0);
    }

    #[test]
    #[should_panic(expected = "the loss failed")]
    fn out_of_range_timesteps_panic_in_the_step() {
        let (objective, _) = objective();
        // Made for 1000 timesteps, the loss's process has 100.
        let batcher = DiffusionBatcher::<2>::new(&[2], 1000, 0).unwrap();
        let device = Device::flex();
        let mut batch: DiffusionBatch<2> = batcher.batch(Toy2d::TwoMoons.sample(8, 0), &device);
        batch.t = Timesteps::new(vec![999, 0, 0, 0, 0, 0, 0, 0]);
        assert!(objective.evaluate(batch.clone()).is_err());
        let _ = InferenceStep::step(&objective, batch);
    }

    /// Labelled items keep their labels in order; the label dropout replaces them by the
    /// null label as `LabelDropout::dropped` says for the batch's seed (p = 0: none,
    /// p = 1: all); the objective evaluates a labelled batch given its labels.
    #[test]
    fn labelled_batches_carry_labels_and_drop_them() {
        let device = Device::flex();
        let items: Vec<Labeled<[f32; 2]>> = Toy2d::TwoMoons
            .sample(64, 0)
            .into_iter()
            .enumerate()
            .map(|(i, example)| Labeled {
                example,
                label: (i % 3) as i64,
            })
            .collect();
        let labels = |batcher: &DiffusionBatcher<2>| {
            let batch: DiffusionBatch<2> = batcher.batch(items.clone(), &device);
            let labels = batch.labels.unwrap().try_into_vec_as::<i64>().unwrap();
            (labels, batch.seed)
        };
        let plain = DiffusionBatcher::<2>::new(&[2], 50, 0).unwrap();
        let want: Vec<i64> = (0..64).map(|i| (i % 3) as i64).collect();
        assert_eq!(labels(&plain).0, want);
        let none = plain
            .clone()
            .with_label_dropout(LabelDropout::new(0.0, 3).unwrap());
        assert_eq!(labels(&none).0, want);
        let all = plain
            .clone()
            .with_label_dropout(LabelDropout::new(1.0, 3).unwrap());
        assert_eq!(labels(&all).0, vec![3; 64]);
        let dropout = LabelDropout::new(0.5, 3).unwrap();
        let half = plain.clone().with_label_dropout(dropout);
        let (got, seed) = labels(&half);
        let dropped = dropout.dropped(64, seed.wrapping_add(2));
        assert!(dropped.iter().any(|d| *d) && dropped.iter().any(|d| !*d));
        for ((got, want), dropped) in got.iter().zip(&want).zip(dropped) {
            assert_eq!(*got, if dropped { 3 } else { *want });
        }
        // Unlabelled items of the same batcher have no labels.
        let batch: DiffusionBatch<2> = plain.batch(Toy2d::TwoMoons.sample(4, 0), &device);
        assert!(batch.labels.is_none());

        // A conditional model's loss on a labelled batch is its loss given the labels.
        let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(50).init().unwrap());
        let loss = SimpleLoss::new(process, Prediction::Epsilon, Weighting::Uniform).unwrap();
        let model = MlpConfig::new(2)
            .with_num_classes(Some(3))
            .init(&device)
            .unwrap();
        let objective = DiffusionObjective::new(model.clone(), loss.clone());
        let batch: DiffusionBatch<2> = plain.batch(items.clone(), &device);
        let given = |labels: Tensor<1, Int>| {
            let model = WithLabels::new(&model, labels);
            values(
                loss.loss(&model, batch.x0.clone(), &batch.t, batch.noise.clone())
                    .unwrap()
                    .loss,
            )
        };
        let labels = batch.labels.clone().unwrap();
        assert_eq!(
            values(objective.evaluate(batch.clone()).unwrap().loss),
            given(labels)
        );
        let null = Tensor::<1, Int>::full([64], 3, &device);
        assert_ne!(
            values(objective.evaluate(batch.clone()).unwrap().loss),
            given(null)
        );

        // A label outside the model's embedding (0..=3) is an error of `evaluate`, and a
        // NaN loss for exactly its example in the train step's path (no panic).
        let mut bad = batch.clone();
        let mut host = labels_of(&batch);
        host[5] = 4;
        bad.labels = Some(Tensor::from_data(TensorData::new(host, [64]), &device));
        assert!(matches!(
            objective.evaluate(bad.clone()),
            Err(crate::DiffusionError::LabelOutOfRange {
                label: 4,
                index: 5,
                num_labels: 4
            })
        ));
        let per_example = values(objective.loss_of(bad).unwrap().loss);
        for (i, l) in per_example.iter().enumerate() {
            assert_eq!(l.is_nan(), i == 5, "example {i}: {l}");
        }
    }

    fn labels_of(batch: &DiffusionBatch<2>) -> Vec<i64> {
        batch
            .labels
            .clone()
            .unwrap()
            .try_into_vec_as::<i64>()
            .unwrap()
    }

    #[test]
    fn labelled_images_are_the_images_with_their_labels() {
        let images = ImageDataset::new(vec![0.5; 3 * 4], vec![3, 7, 1], [1, 2, 2], 256).unwrap();
        let labelled = LabeledImages::new(images.clone());
        assert_eq!(Dataset::<Labeled<Vec<f32>>>::len(&labelled), 3);
        let item = labelled.get(2).unwrap();
        assert_eq!(item.label, 1);
        assert_eq!(item.example, Dataset::<Vec<f32>>::get(&images, 2).unwrap());
        assert!(labelled.get(3).is_err());
    }
}
