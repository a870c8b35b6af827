//! The training loop for any [`Denoiser`] and [`Loss`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::checkpoint::{self, Checkpoint, CheckpointState};
use super::clip::clip_grad_norm_on_device;
use super::config::{LrSchedule, TimestepSampling, TrainConfig};
use super::ema::Ema;
use crate::error::{self, DiffusionError};
use crate::loss::{Loss, LossOutput, LossSecondMomentResampler, TimestepSampler};
use crate::model::{Denoiser, WithLabels};
use crate::noise::{SeededRng, randn};
use crate::schedule::Timesteps;

/// The examples a [`Trainer`] draws its batches from: the data and, for a
/// class-conditional model, one label per example. A plain `&Tensor` is unlabelled
/// examples, so `trainer.fit(&data, …)` trains an unconditional model and
/// `trainer.fit(Examples::labeled(&data, &labels)?, …)` a conditional one (with
/// [`TrainConfig::p_uncond`] label dropout for classifier-free guidance).
///
/// # Shapes
/// - data: `[N, ...]`; labels: `[N]`
#[derive(Debug, Clone, Copy)]
pub struct Examples<'a, const D: usize> {
    data: &'a Tensor<D>,
    labels: Option<&'a Tensor<1, Int>>,
}

impl<'a, const D: usize> Examples<'a, D> {
    /// `data` with one class label per example.
    ///
    /// # Errors
    /// [`DiffusionError::ShapeMismatch`] if there are not as many labels as examples.
    pub fn labeled(data: &'a Tensor<D>, labels: &'a Tensor<1, Int>) -> error::Result<Self> {
        let (n, got) = (data.dims()[0], labels.dims()[0]);
        if n != got {
            return Err(DiffusionError::ShapeMismatch {
                what: "labels vs the training examples",
                expected: vec![n],
                got: vec![got],
            });
        }
        Ok(Self {
            data,
            labels: Some(labels),
        })
    }

    /// The data, `[N, ...]`.
    pub fn data(&self) -> &'a Tensor<D> {
        self.data
    }

    /// The labels, `[N]`, if any.
    pub fn labels(&self) -> Option<&'a Tensor<1, Int>> {
        self.labels
    }
}

impl<'a, const D: usize> From<&'a Tensor<D>> for Examples<'a, D> {
    /// Unlabelled examples.
    fn from(data: &'a Tensor<D>) -> Self {
        Self { data, labels: None }
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Steps completed, this one included (1-based).
    pub step: usize,
    /// Mean loss of the batch, on the steps that read it back from the device
    /// ([`FitOptions::log_every`]; `None` on the others).
    pub loss: Option<f64>,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Global gradient norm before clipping, on the steps that read the loss (`None` on
    /// the others and without clipping).
    pub grad_norm: Option<f64>,
    /// EMA decay used.
    pub ema_decay: f64,
}

/// Where [`Trainer::fit`] writes, and how often it reads the loss back from the device.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Root of the checkpoints (see [`Checkpoint`]); `None`: no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// CSV log, one row per step that reads its loss (every step with the default
    /// `log_every = 1`): `step,loss,learning_rate,grad_norm,ema_decay`. Its parent
    /// directories are created; on a resume, the rows of an existing log after the resumed
    /// step (and lines that do not start with a step number) are dropped.
    pub log_csv: Option<PathBuf>,
    /// Read the loss and the gradient norm back from the device every this many steps (at
    /// least 1; default 1): to log them and to check that the loss is finite. The steps in
    /// between make no device read, so the host can queue work ahead of a GPU (on Flex and
    /// NdArray, which run eagerly and queue nothing, [`crate::fused::dropout`] reads its
    /// two-value seed each call); a NaN loss
    /// then goes unseen for at most `log_every − 1` steps, and never into a checkpoint
    /// (the steps that write one, and the last step of each `fit`, read too). It does
    /// not change what is computed: the weights are the same for every `log_every`.
    pub log_every: usize,
}

impl Default for FitOptions {
    /// No checkpoints, no CSV log, the loss read every step.
    fn default() -> Self {
        Self {
            checkpoint_dir: None,
            log_csv: None,
            log_every: 1,
        }
    }
}

/// Trains a [`Denoiser`] with a [`Loss`]: AdamW (ε = 10⁻⁸, as DDPM) with linear warmup,
/// global gradient-norm clipping, an [`Ema`] of the weights, atomic checkpoints with
/// exact resume, a CSV log and a per-step callback (e.g. a progress bar).
///
/// Every random choice of step s (its batch, timesteps, noise and the model's dropout) is
/// a function of `config.seed` and s alone, so training N steps in one go and training
/// N/2, saving, resuming and training N/2 more give identical weights.
///
/// Batches are drawn without replacement: each epoch is a seeded permutation of the data,
/// cut into ⌊N / batch_size⌋ batches (the remainder is left out of that epoch).
///
/// # Example
/// ```
/// use burn::tensor::Device;
/// use burn_diffusion::data::Toy2d;
/// use burn_diffusion::{
///     loss::{SimpleLoss, Weighting},
///     model::MlpConfig,
///     prediction::Prediction,
///     process::VpProcess,
///     schedule::ScheduleConfig,
///     train::{FitOptions, TrainConfig, Trainer},
/// };
///
/// let device = Device::flex();
/// let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(100).init()?);
/// let loss = SimpleLoss::new(process, Prediction::Epsilon, Weighting::Uniform)?;
/// let model = MlpConfig::new(2).init(&device)?;
/// let config = TrainConfig::new(20).with_batch_size(64).with_learning_rate(1e-3);
/// let mut trainer = Trainer::new(config, model, loss, &device)?;
/// let data = Toy2d::TwoMoons.sample_tensor(512, 0, &device);
/// let summary = trainer.fit(&data, 20, &FitOptions::default())?;
/// assert_eq!((trainer.step(), summary.steps), (20, 20));
/// let ema_model = trainer.ema_model(); // sample with this one
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub struct Trainer<M, L, const D: usize>
where
    M: Module + Denoiser<D>,
    L: Loss<D>,
{
    config: TrainConfig,
    model: M,
    ema: Ema<M>,
    optimizer: ModuleOptimizer,
    scheduler: ModuleLrScheduler,
    resampler: Option<LossSecondMomentResampler>,
    loss: L,
    step: usize,
    device: Device,
}

/// Totals of one [`Trainer::fit`] call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitSummary {
    /// Steps taken by this call.
    pub steps: usize,
    /// Mean of the losses read back (every [`FitOptions::log_every`] steps, the
    /// checkpoint steps and the last step; every step with the default `log_every = 1`).
    pub mean_loss: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl<M, L, const D: usize> Trainer<M, L, D>
where
    M: Module + Denoiser<D>,
    L: Loss<D>,
{
    /// A trainer at step 0; the model is moved to `device` with autodiff.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] for a bad `config` (see [`TrainConfig::validate`]).
    pub fn new(config: TrainConfig, model: M, loss: L, device: &Device) -> error::Result<Self> {
        config.validate()?;
        let device = device.clone().autodiff();
        let model = model.to_device(&device).train();
        let ema = Ema::new(&model, config.ema_decay, config.ema_warmup)?;
        let optimizer = AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(config.weight_decay as f32)
            .init();
        let scheduler = config.lr_scheduler()?;
        let resampler = match config.timestep_sampling {
            TimestepSampling::Uniform => None,
            TimestepSampling::LossSecondMoment {
                history,
                uniform_prob,
            } => Some(LossSecondMomentResampler::with_options(
                loss.num_timesteps(),
                history,
                uniform_prob,
            )?),
        };
        Ok(Self {
            config,
            model,
            ema,
            optimizer,
            scheduler,
            resampler,
            loss,
            step: 0,
            device,
        })
    }

    /// Continues from `checkpoint`: its weights, EMA, optimizer state and step.
    ///
    /// The checkpoint's configuration must equal this trainer's except for `steps` (a run
    /// with [`LrSchedule::Constant`] may be extended; the other schedules depend on
    /// `steps`), `checkpoint_every` and `keep_checkpoints`, and its
    /// objective must be this trainer's loss ([`Loss::describe`]: the loss, the
    /// prediction type, the schedule).
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] if the configurations or the objectives differ;
    /// [`DiffusionError::Checkpoint`] if a file is unreadable, fails its checksum or does
    /// not fit the model.
    pub fn resume(mut self, checkpoint: &Checkpoint) -> error::Result<Self> {
        let state = checkpoint.state();
        let objective = self.loss.describe();
        if state.objective != objective {
            return Err(DiffusionError::config(
                "checkpoint",
                checkpoint.dir().display(),
                format!(
                    "was trained with the objective {}, not this run's {objective}",
                    state.objective
                ),
            ));
        }
        let comparable = |c: &TrainConfig| TrainConfig {
            steps: match c.lr_schedule {
                LrSchedule::Constant => 1,
                _ => c.steps,
            },
            checkpoint_every: 0,
            keep_checkpoints: 1,
            ..c.clone()
        };
        if comparable(&state.config) != comparable(&self.config) {
            return Err(DiffusionError::config(
                "checkpoint",
                checkpoint.dir().display(),
                format!(
                    "was trained with {:?}, which differs from this run's {:?} beyond steps and checkpoint settings",
                    state.config, self.config
                ),
            ));
        }
        self.model = checkpoint.load_model(self.model)?.train();
        let ema_model = checkpoint.load_ema(self.ema.model().clone())?;
        self.ema = self.ema.restored(ema_model, state.ema_updates);
        self.optimizer = self.optimizer.load_record(checkpoint.load_optimizer()?);
        if let Some(resampler) = &mut self.resampler {
            let history = state.timestep_losses.as_deref().ok_or_else(|| {
                DiffusionError::config(
                    "checkpoint",
                    checkpoint.dir().display(),
                    "holds no timestep-loss history for the importance sampler",
                )
            })?;
            resampler.restore(history)?;
        }
        // The scheduler's state is its step count: advance a fresh one to the step.
        self.scheduler = self.config.lr_scheduler()?;
        (0..state.step).for_each(|_| {
            self.scheduler.step();
        });
        self.step = state.step;
        Ok(self)
    }

    /// Steps completed.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The model being trained (on the autodiff device).
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The EMA of the weights, a validation snapshot: the model to evaluate and sample with.
    pub fn ema_model(&self) -> M {
        self.ema.model().clone()
    }

    /// One optimizer step on a batch of `data` (all training examples, `[N, ...]`), which
    /// reads its loss and gradient norm back from the device (two reads; see
    /// [`Trainer::fit`] for steps that read only every [`FitOptions::log_every`]).
    ///
    /// With labelled examples, the batch's labels (after label dropout) are read back
    /// too and checked with the model's [`Denoiser::check_labels`] (a third read).
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] if `N < batch_size`; the loss's errors (shapes);
    /// [`DiffusionError::LabelOutOfRange`] for a batch label the model does not take;
    /// [`DiffusionError::NonFiniteLoss`] if the loss is NaN or infinite. After an error
    /// the model is unchanged.
    pub fn train_step<'a>(
        &mut self,
        examples: impl Into<Examples<'a, D>>,
    ) -> error::Result<StepStats> {
        self.step_reading(examples.into(), true, true)
    }

    /// One optimizer step; with `read`, the loss is read back and checked, and so is the
    /// gradient norm; without, the step makes no device-to-host read. With
    /// `check_labels`, the batch's labels are read and checked.
    fn step_reading(
        &mut self,
        examples: Examples<'_, D>,
        read: bool,
        check_labels: bool,
    ) -> error::Result<StepStats> {
        let step = self.step;
        let data = examples.data;
        let indices = batch_indices(
            data.dims()[0],
            self.config.batch_size,
            self.config.seed,
            step,
        )?;
        let index = |device: &Device| {
            Tensor::<1, Int>::from_data(
                TensorData::new(indices.iter().map(|&i| i as i64).collect(), [indices.len()]),
                device,
            )
        };
        let x0 = data
            .clone()
            .select(0, index(&data.device()))
            .to_device(&self.device);
        let labels = self.batch_labels(examples.labels, step, index)?;
        if let Some(labels) = labels.as_ref().filter(|_| check_labels) {
            let host: Vec<i64> = crate::host::read_vec(labels.clone(), "batch labels")?;
            self.model.check_labels(&host)?;
        }
        let seed = stream_seed(self.config.seed, step as u64, Stream::Step);
        self.device.seed(seed);
        let sampler = self.resampler.as_ref();
        let batch = match labels {
            Some(labels) => {
                let model = WithLabels::new(&self.model, labels);
                batch_loss(&self.loss, &model, sampler, x0, seed)
            }
            None => batch_loss(&self.loss, &self.model, sampler, x0, seed),
        }?;
        let (loss, value) = match (batch.importance, read) {
            (None, true) => {
                let loss = batch.output.loss.mean();
                let value = crate::host::read_scalar(loss.clone(), "loss")?;
                (loss, Some(value))
            }
            (None, false) => (batch.output.loss.mean(), None),
            (Some((timesteps, weights)), _) => {
                // The history needs every step's losses: one read of the [N] vector.
                let per_example = batch.output.loss;
                let losses = crate::host::read_vec::<f64, 1, _>(per_example.clone(), "losses")?;
                let n = losses.len() as f64;
                let value = losses.iter().zip(&weights).map(|(l, w)| l * w).sum::<f64>() / n;
                if value.is_finite()
                    && let Some(resampler) = &mut self.resampler
                {
                    resampler.update(&timesteps, &losses);
                }
                let weights =
                    TensorData::new(weights.iter().map(|&w| w as f32).collect(), [weights.len()]);
                let weights = Tensor::<1>::from_data(weights, &self.device);
                ((per_example * weights).mean(), Some(value))
            }
        };
        if let Some(value) = value.filter(|v| !v.is_finite()) {
            return Err(DiffusionError::NonFiniteLoss { step, value });
        }
        let mut grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let norm = match self.config.grad_clip_norm {
            Some(max) => clip_grad_norm_on_device(&mut grads, &self.model, max)?,
            None => None,
        };
        let grad_norm = match (norm, read) {
            (Some(norm), true) => Some(crate::host::read_scalar(norm, "gradient norm")?),
            _ => None,
        };
        let learning_rate = self.scheduler.step().base();
        self.model = self
            .optimizer
            .step(learning_rate, self.model.clone(), grads);
        self.ema.update(&self.model)?;
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss: value,
            learning_rate,
            grad_norm,
            ema_decay: self.ema.decay_at(self.ema.updates()),
        })
    }

    /// Trains until `until_step` steps are complete (at most `config.steps`), writing
    /// checkpoints every `config.checkpoint_every` steps and at the end, and the CSV log,
    /// as `options` say. Call it again with a later step to continue (e.g. to write samples
    /// in between). [`Trainer::fit_with`] also reports every step to a callback.
    ///
    /// Device reads: a step reads its loss and gradient norm back (two reads, to log them
    /// and check that the loss is finite) every [`FitOptions::log_every`] steps, at the
    /// steps that write a checkpoint and at `until_step`; the other steps read nothing, so
    /// on a GPU the host queues work ahead of the device. A NaN loss goes unseen for at
    /// most `log_every − 1` steps and is caught before any checkpoint is written. With
    /// labelled examples, the labels are read once, before the first step, and checked
    /// with the model's [`Denoiser::check_labels`] (with the label dropout's null label).
    ///
    /// A CSV log that already holds rows beyond the current step (a run that crashed after
    /// its last checkpoint) is cut back to the current step first, so a resumed run's log
    /// has every step once.
    ///
    /// # Errors
    /// [`DiffusionError::InvalidConfig`] if `until_step` exceeds `config.steps` or
    /// `options.log_every` is 0; the errors
    /// of [`Trainer::train_step`]; [`DiffusionError::Checkpoint`] and
    /// [`DiffusionError::Data`] for files that cannot be written.
    pub fn fit<'a>(
        &mut self,
        examples: impl Into<Examples<'a, D>>,
        until_step: usize,
        options: &FitOptions,
    ) -> error::Result<FitSummary> {
        self.fit_with(examples, until_step, options, |_| {})
    }

    /// [`Trainer::fit`], calling `on_step(&stats)` after every optimizer step (before its
    /// checkpoint, if one is due): the hook for a progress bar or a custom log. With the
    /// `progress` feature, [`ConsoleProgress`](crate::progress::ConsoleProgress) draws one:
    ///
    /// ```
    /// use burn::tensor::Device;
    /// use burn_diffusion::data::Toy2d;
    /// use burn_diffusion::model::MlpConfig;
    /// use burn_diffusion::prelude::*;
    ///
    /// let device = Device::flex();
    /// let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(100).init()?);
    /// let loss = SimpleLoss::new(process, Prediction::Epsilon, Weighting::Uniform)?;
    /// let model = MlpConfig::new(2).init(&device)?;
    /// let config = TrainConfig::new(10).with_batch_size(32);
    /// let mut trainer = Trainer::new(config, model, loss, &device)?;
    /// let data = Toy2d::TwoMoons.sample_tensor(256, 0, &device);
    ///
    /// let bar = ConsoleProgress::new(10, "train").continuing_after(trainer.step());
    /// // Read the loss back every 4 steps only (and at the last step).
    /// let options = FitOptions { log_every: 4, ..FitOptions::default() };
    /// let mut logged = Vec::new();
    /// trainer.fit_with(&data, 10, &options, |s| {
    ///     bar.update(s.step, s.loss);
    ///     if s.loss.is_some() {
    ///         logged.push(s.step);
    ///     }
    /// })?;
    /// bar.finish();
    /// assert_eq!(logged, [4, 8, 10]);
    /// # Ok::<(), burn_diffusion::DiffusionError>(())
    /// ```
    ///
    /// # Errors
    /// Those of [`Trainer::fit`].
    pub fn fit_with<'a>(
        &mut self,
        examples: impl Into<Examples<'a, D>>,
        until_step: usize,
        options: &FitOptions,
        mut on_step: impl FnMut(&StepStats),
    ) -> error::Result<FitSummary> {
        if until_step > self.config.steps {
            return Err(DiffusionError::config(
                "until_step",
                until_step,
                format!("must not exceed config.steps = {}", self.config.steps),
            ));
        }
        if options.log_every == 0 {
            return Err(DiffusionError::config("log_every", 0, "must be at least 1"));
        }
        let examples = examples.into();
        if let Some(labels) = examples.labels {
            self.check_training_labels(labels)?;
        }
        let mut log = match &options.log_csv {
            Some(path) => Some(CsvLog::open(path, self.step)?),
            None => None,
        };
        let start = Instant::now();
        let first = self.step;
        let (mut total, mut read_steps) = (0.0, 0usize);
        while self.step < until_step {
            let next = self.step + 1;
            let every = self.config.checkpoint_every;
            let checkpoint = options
                .checkpoint_dir
                .as_ref()
                .filter(|_| (every > 0 && next.is_multiple_of(every)) || next == until_step);
            let read = next.is_multiple_of(options.log_every)
                || checkpoint.is_some()
                || next == until_step;
            let stats = self.step_reading(examples, read, false)?;
            if let Some(loss) = stats.loss {
                total += loss;
                read_steps += 1;
                if let Some(log) = &mut log {
                    log.write(&stats, loss)?;
                }
            }
            on_step(&stats);
            if let Some(dir) = checkpoint {
                self.save_checkpoint(dir)?;
            }
        }
        Ok(FitSummary {
            steps: self.step - first,
            mean_loss: if read_steps > 0 {
                total / read_steps as f64
            } else {
                f64::NAN
            },
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Reads the training labels back (once) and checks them, with the label dropout's
    /// null label, against the model.
    ///
    /// # Errors
    /// [`DiffusionError::LabelOutOfRange`]: a label's index is its example's; the null
    /// label's is N.
    fn check_training_labels(&self, labels: &Tensor<1, Int>) -> error::Result<()> {
        let mut host: Vec<i64> = crate::host::read_vec(labels.clone(), "training labels")?;
        if let Some(dropout) = self.config.label_dropout()? {
            host.push(dropout.null_label());
        }
        self.model.check_labels(&host)
    }

    /// The labels of step `step`'s batch (the examples at `index`), after the configured
    /// label dropout (seeded by the run's seed and the step).
    ///
    /// # Errors
    /// `p_uncond` > 0 for unlabelled examples.
    fn batch_labels(
        &self,
        labels: Option<&Tensor<1, Int>>,
        step: usize,
        index: impl Fn(&Device) -> Tensor<1, Int>,
    ) -> error::Result<Option<Tensor<1, Int>>> {
        let dropout = self.config.label_dropout()?;
        let Some(labels) = labels else {
            return match dropout {
                Some(d) => Err(DiffusionError::config(
                    "p_uncond",
                    d.p_uncond(),
                    "label dropout needs labelled examples (Examples::labeled)",
                )),
                None => Ok(None),
            };
        };
        let batch = labels
            .clone()
            .select(0, index(&labels.device()))
            .to_device(&self.device);
        let seed = stream_seed(self.config.seed, step as u64, Stream::Labels);
        Ok(Some(match dropout {
            Some(d) => d.apply(batch, seed),
            None => batch,
        }))
    }

    /// Writes a checkpoint of the current step under `root` (see [`Checkpoint`]).
    ///
    /// # Errors
    /// [`DiffusionError::Checkpoint`] if a file cannot be written.
    pub fn save_checkpoint(&self, root: impl AsRef<Path>) -> error::Result<Checkpoint> {
        let state = CheckpointState {
            step: self.step,
            ema_updates: self.ema.updates(),
            config: self.config.clone(),
            objective: self.loss.describe(),
            timestep_losses: self.resampler.as_ref().map(|r| r.history().to_vec()),
        };
        checkpoint::write(
            root.as_ref(),
            state,
            &self.model,
            self.ema.model(),
            self.optimizer.to_record(),
        )
    }
}

/// A batch's loss and, when its timesteps were drawn by importance, the timesteps and
/// their weights 1/(T·p_t).
struct BatchLoss {
    output: LossOutput,
    importance: Option<(Vec<usize>, Vec<f64>)>,
}

/// The loss of `model` on `x0` with the step's `seed`: uniform timesteps and noise as
/// [`Loss::loss_seeded`], or timesteps drawn by `sampler` from the same seed (and the
/// same noise).
fn batch_loss<L: Loss<D>, M: Denoiser<D>, const D: usize>(
    loss: &L,
    model: &M,
    sampler: Option<&LossSecondMomentResampler>,
    x0: Tensor<D>,
    seed: u64,
) -> error::Result<BatchLoss> {
    let Some(sampler) = sampler else {
        let output = loss.loss_seeded(model, x0, seed)?;
        return Ok(BatchLoss {
            output,
            importance: None,
        });
    };
    let (timesteps, weights) = sampler.sample(x0.dims()[0], &mut SeededRng::new(seed));
    let noise = randn(x0.shape(), seed.wrapping_add(1), &x0.device());
    let t = Timesteps::new(timesteps.clone());
    let output = loss.loss(model, x0, &t, noise)?;
    Ok(BatchLoss {
        output,
        importance: Some((timesteps, weights)),
    })
}

/// Independent random streams derived from the run's seed.
#[derive(Clone, Copy)]
enum Stream {
    Step = 1,
    Epoch = 2,
    Labels = 3,
}

/// A seed for `stream` at position `index`, a function of the run's `seed` alone.
fn stream_seed(seed: u64, index: u64, stream: Stream) -> u64 {
    let mut rng = SeededRng::new(seed ^ (stream as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    SeededRng::new(rng.next_u64() ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// The example indices of step `step`: epoch e = step / ⌊n / b⌋ is a seeded permutation,
/// and the step takes its (step mod ⌊n / b⌋)-th slice of b.
fn batch_indices(n: usize, b: usize, seed: u64, step: usize) -> error::Result<Vec<usize>> {
    if n < b {
        return Err(DiffusionError::config(
            "batch_size",
            b,
            format!("larger than the {n} training examples"),
        ));
    }
    let per_epoch = n / b;
    let (epoch, k) = (step / per_epoch, step % per_epoch);
    let mut order: Vec<usize> = (0..n).collect();
    SeededRng::new(stream_seed(seed, epoch as u64, Stream::Epoch)).shuffle(&mut order);
    Ok(order[k * b..(k + 1) * b].to_vec())
}

/// The CSV log of [`FitOptions::log_csv`].
struct CsvLog {
    path: PathBuf,
    file: std::fs::File,
}

impl CsvLog {
    const HEADER: &'static str = "step,loss,learning_rate,grad_norm,ema_decay";

    /// Opens `path` for appending after keeping only its rows up to `step`.
    fn open(path: &Path, step: usize) -> error::Result<Self> {
        let fail = |e: std::io::Error| DiffusionError::data(path, e.to_string());
        let kept: Vec<String> = match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .skip(1)
                .filter(|line| {
                    let first = line.split(',').next().unwrap_or("");
                    first.parse::<usize>().is_ok_and(|s| s <= step)
                })
                .map(str::to_owned)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(fail(e)),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        let mut text = String::from(Self::HEADER) + "\n";
        kept.iter().for_each(|line| {
            text.push_str(line);
            text.push('\n');
        });
        checkpoint::replace_file(path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(fail)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// One row: the step's statistics with its (read) `loss`.
    fn write(&mut self, s: &StepStats, loss: f64) -> error::Result<()> {
        let norm = s.grad_norm.map(|n| n.to_string()).unwrap_or_default();
        writeln!(
            self.file,
            "{},{},{},{},{}",
            s.step, loss, s.learning_rate, norm, s.ema_decay
        )
        .map_err(|e| DiffusionError::data(&self.path, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_permutations_cut_into_batches() {
        // 10 examples, batches of 3: 3 batches per epoch, 1 example left out each epoch.
        let epoch: Vec<usize> = (0..3)
            .flat_map(|s| batch_indices(10, 3, 7, s).unwrap())
            .collect();
        let mut sorted = epoch.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 9, "no repeats within an epoch: {epoch:?}");
        let next: Vec<usize> = (3..6)
            .flat_map(|s| batch_indices(10, 3, 7, s).unwrap())
            .collect();
        assert_ne!(epoch, next, "each epoch is reshuffled");
        assert_eq!(
            batch_indices(10, 3, 7, 4).unwrap(),
            batch_indices(10, 3, 7, 4).unwrap()
        );
        assert_ne!(
            batch_indices(10, 3, 7, 4).unwrap(),
            batch_indices(10, 3, 8, 4).unwrap()
        );
        assert!(batch_indices(2, 3, 7, 0).is_err());
    }
}
