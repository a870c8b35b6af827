//! Running a sampler from noise to data.

use burn::tensor::{Device, Distribution, Shape, Tensor};

use crate::error;
use crate::model::Denoiser;
use crate::noise::randn;
use crate::sampler::base::ReverseSampler;
use crate::schedule::constant_timesteps;

/// The result of [`sample`]: the final sample and, if asked, every intermediate one.
#[derive(Debug, Clone)]
pub struct SampleOutput<const D: usize> {
    /// The sample after the last step (x_0).
    pub sample: Tensor<D>,
    /// x_T and the sample after each step, in order (empty unless asked for).
    pub trajectory: Vec<Tensor<D>>,
    /// x̂_0 predicted at each step (empty unless asked for).
    pub predicted_x0: Vec<Tensor<D>>,
}

/// Options of [`sample`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SampleOptions {
    /// Seed of the per-step noise (with [`NoiseSource::Host`], step i draws with
    /// `seed + 1 + i`).
    pub seed: u64,
    /// Keep the trajectory and the predicted x̂_0 of every step.
    pub keep_trajectory: bool,
    /// Where the per-step noise comes from.
    pub noise: NoiseSource,
}

/// Where the sampling loop draws each step's standard normal noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseSource {
    /// The crate's seeded host generator ([`randn`]), uploaded at each step that needs
    /// noise: the same numbers on every device and backend, so a seed gives the same
    /// samples on a CPU and a GPU (up to the backends' arithmetic). The default.
    #[default]
    Host,
    /// Burn's random tensors, generated on the device after `device.seed(seed + 1)` at the
    /// start of [`sample`] (and x_T of [`sample_from_noise`] after `device.seed(seed)`):
    /// no host generator and no upload, the fast path on a GPU. The
    /// numbers differ from `Host`'s and from one backend to another; a run is reproducible
    /// on one backend only while nothing else in the process draws from Burn's generator
    /// (its seed is process-global: other threads initializing models, dropout).
    Device,
}

/// Runs `sampler` with `model` from the given x_T: at visit i, the model is called at the
/// sampler's model timestep, then one step is taken with seeded noise. `progress(done,
/// total)` is called after each step.
///
/// # Shapes
/// - `x_t`: `[N, ...]`; output sample `[N, ...]`
///
/// # Errors
/// A model output or step that fails (wrong shapes).
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::{
///     noise::randn,
///     process::VpProcess,
///     sampler::{DdimSampler, SampleOptions, X0Options, sample},
///     schedule::{ScheduleConfig, Spacing},
/// };
///
/// let device = Device::flex();
/// let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
/// let ddim = DdimSampler::with_spacing(process, &Spacing::Trailing { steps: 10 }, 0.0, X0Options::default()).unwrap();
/// let model = |x_t: Tensor<2>, _t: Tensor<1, Int>| x_t * 0.1; // any closure is a model
/// let x_t = randn::<2>([4, 2], 0, &device);
/// let out = sample(&ddim, &model, x_t, SampleOptions::default(), |_, _| {}).unwrap();
/// assert_eq!(out.sample.dims(), [4, 2]);
/// ```
pub fn sample<S: ReverseSampler<D>, M: Denoiser<D>, const D: usize>(
    sampler: &S,
    model: &M,
    x_t: Tensor<D>,
    options: SampleOptions,
    mut progress: impl FnMut(usize, usize),
) -> error::Result<SampleOutput<D>> {
    let (device, shape) = (x_t.device(), x_t.shape());
    let total = sampler.timesteps().len();
    let mut state = S::State::default();
    let mut x = x_t;
    let mut trajectory = Vec::new();
    let mut predicted_x0 = Vec::new();
    if options.keep_trajectory {
        trajectory.push(x.clone());
    }
    if options.noise == NoiseSource::Device {
        device.seed(options.seed.wrapping_add(1));
    }
    for i in 0..total {
        let output = call_model(sampler, model, i, x.clone())?;
        let noise = sampler.needs_noise(i).then(|| match options.noise {
            NoiseSource::Host => randn(
                shape.clone(),
                options.seed.wrapping_add(1 + i as u64),
                &device,
            ),
            NoiseSource::Device => {
                Tensor::random(shape.clone(), Distribution::Normal(0.0, 1.0), &device)
            }
        });
        let step = sampler.step(&mut state, i, x, output, noise)?;
        x = step.x_prev;
        if options.keep_trajectory {
            trajectory.push(x.clone());
            predicted_x0.push(step.x0);
        }
        progress(i + 1, total);
    }
    Ok(SampleOutput {
        sample: x,
        trajectory,
        predicted_x0,
    })
}

/// The model's output at visit `i` of `sampler`, as [`sample`] calls it: at the
/// sampler's fractional model time when it asks for one between training timesteps
/// ([`ReverseSampler::fractional_model_time`]), at its integer model timestep otherwise.
/// For loops of your own around [`ReverseSampler::step`].
///
/// # Errors
/// As [`Denoiser::try_denoise`] / [`Denoiser::try_denoise_fractional`].
pub fn call_model<S: ReverseSampler<D>, M: Denoiser<D>, const D: usize>(
    sampler: &S,
    model: &M,
    i: usize,
    x: Tensor<D>,
) -> error::Result<Tensor<D>> {
    let (n, device) = (x.dims()[0], x.device());
    match sampler.fractional_model_time(i) {
        Some(t) if t.fract() != 0.0 => {
            let t = Tensor::<1>::full([n], t, &device);
            model.try_denoise_fractional(x, t, None)
        }
        _ => {
            let t = constant_timesteps(n, sampler.model_timestep(i), &device);
            model.try_denoise(x, t, None)
        }
    }
}

/// [`sample`] from x_T ~ N(0, I) of `shape`, drawn with `options.seed` (from the source of
/// `options.noise`).
///
/// # Errors
/// As [`sample`]; [`crate::DiffusionError::InvalidInput`] if `shape` does not have `D`
/// dimensions, and `InvalidConfig` if two tensors of its size cannot fit in the host's
/// memory (checked before anything is allocated).
pub fn sample_from_noise<S: ReverseSampler<D>, M: Denoiser<D>, const D: usize>(
    sampler: &S,
    model: &M,
    shape: impl Into<Shape>,
    device: &Device,
    options: SampleOptions,
    progress: impl FnMut(usize, usize),
) -> error::Result<SampleOutput<D>> {
    let shape = shape.into();
    if shape.num_dims() != D {
        return Err(crate::DiffusionError::input(
            "sample shape",
            shape.as_slice(),
            format!("the sampler's tensors have {D} dimensions"),
        ));
    }
    crate::size::check_elements("sample shape", shape.as_slice(), 2)?;
    let x_t = match options.noise {
        NoiseSource::Host => randn(shape, options.seed, device),
        NoiseSource::Device => {
            device.seed(options.seed);
            Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
        }
    };
    sample(sampler, model, x_t, options, progress)
}

/// Classifier-free guidance (Ho & Salimans 2022, eq. 6) around a conditional model:
///
/// ```text
/// ε̃(x_t, c) = (1 + w) ε(x_t, c) − w ε(x_t, ∅)
/// ```
///
/// The conditional and unconditional outputs are computed in one batch of 2N. It is itself
/// a [`Denoiser`], so it plugs into every sampler; the guided output combines whatever the
/// model predicts (ε, x_0 or v) the same way.
#[derive(Debug, Clone)]
pub struct Guided<'a, M> {
    model: &'a M,
    labels: burn::tensor::Tensor<1, burn::tensor::Int>,
    null_label: i64,
    scale: f64,
}

impl<'a, M> Guided<'a, M> {
    /// Guidance of `model` toward `labels` (shape `[N]`, one per example of the batches it
    /// will see) with weight `scale` = w, the unconditional branch using `null_label`.
    /// w = 0 is the conditional model alone.
    ///
    /// The labels are read back once, here, and checked with the model's
    /// [`Denoiser::check_labels`], together with `null_label`.
    ///
    /// # Errors
    /// `scale` not finite; [`crate::DiffusionError::LabelOutOfRange`] for a label (or the
    /// null label, at index N) that the model does not take; `TensorRead` if the labels
    /// cannot be read.
    pub fn new<const D: usize>(
        model: &'a M,
        labels: burn::tensor::Tensor<1, burn::tensor::Int>,
        null_label: i64,
        scale: f64,
    ) -> error::Result<Self>
    where
        M: Denoiser<D>,
    {
        if !scale.is_finite() {
            return Err(crate::DiffusionError::config(
                "guidance scale",
                scale,
                "must be finite",
            ));
        }
        let mut host: Vec<i64> = crate::host::read_vec(labels.clone(), "guidance labels")?;
        host.push(null_label);
        model.check_labels(&host)?;
        Ok(Self {
            model,
            labels,
            null_label,
            scale,
        })
    }
}

impl<M: Denoiser<D>, const D: usize> Denoiser<D> for Guided<'_, M> {
    /// The batch must have one example per guidance label; the model is asked about
    /// the doubled batch it will get.
    fn check_input(&self, dims: &[usize]) -> error::Result<()> {
        let labels = self.labels.dims()[0];
        if dims.first() != Some(&labels) {
            return Err(crate::DiffusionError::ShapeMismatch {
                what: "batch of x_t vs the guidance labels",
                expected: vec![labels],
                got: dims.first().copied().into_iter().collect(),
            });
        }
        let mut doubled = dims.to_vec();
        doubled[0] *= 2;
        self.model.check_input(&doubled)
    }

    /// The guided model's check (the guidance labels were checked by [`Guided::new`]).
    fn check_labels(&self, labels: &[i64]) -> error::Result<()> {
        self.model.check_labels(labels)
    }

    fn denoise(
        &self,
        x_t: Tensor<D>,
        t: burn::tensor::Tensor<1, burn::tensor::Int>,
        _labels: Option<burn::tensor::Tensor<1, burn::tensor::Int>>,
    ) -> Tensor<D> {
        let (n, x, labels) = self.doubled(x_t);
        let t = Tensor::cat(vec![t.clone(), t], 0);
        self.combine(self.model.denoise(x, t, Some(labels)), n)
    }

    /// Guidance of the model's fractional-timestep output (`None` when the model takes
    /// integer timesteps only).
    fn denoise_fractional(
        &self,
        x_t: Tensor<D>,
        t: Tensor<1>,
        _labels: Option<burn::tensor::Tensor<1, burn::tensor::Int>>,
    ) -> Option<Tensor<D>> {
        let (n, x, labels) = self.doubled(x_t);
        let t = Tensor::cat(vec![t.clone(), t], 0);
        let out = self.model.denoise_fractional(x, t, Some(labels))?;
        Some(self.combine(out, n))
    }
}

impl<M> Guided<'_, M> {
    /// The doubled batch [x_t; x_t] with labels [c; ∅], and N.
    fn doubled<const D: usize>(
        &self,
        x_t: Tensor<D>,
    ) -> (usize, Tensor<D>, Tensor<1, burn::tensor::Int>) {
        let null = self.labels.clone().full_like(self.null_label);
        let labels = Tensor::cat(vec![self.labels.clone(), null], 0);
        (
            x_t.dims()[0],
            Tensor::cat(vec![x_t.clone(), x_t], 0),
            labels,
        )
    }

    /// (1 + w)·(conditional half) − w·(unconditional half) of the doubled output.
    fn combine<const D: usize>(&self, out: Tensor<D>, n: usize) -> Tensor<D> {
        let cond = out.clone().narrow(0, 0, n);
        let uncond = out.narrow(0, n, n);
        cond * (1.0 + self.scale) - uncond * self.scale
    }
}
