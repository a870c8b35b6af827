//! Device-to-host reads per step, counted by `burn_diffusion::host::device_reads` (per
//! thread, so tests running in parallel do not disturb each other). A read waits for the
//! whole device queue; on a GPU every one of them stalls the pipeline.

use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::data::Toy2d;
use burn_diffusion::host::device_reads;
use burn_diffusion::loss::{Decoder, SimpleLoss, VlbLoss, Weighting};
use burn_diffusion::model::{Mlp, MlpConfig};
use burn_diffusion::prediction::{Parameterization, Prediction, VarianceKind};
use burn_diffusion::process::VpProcess;
use burn_diffusion::sampler::{DdimSampler, DdpmSampler, SampleOptions, sample_from_noise};
use burn_diffusion::schedule::{ScheduleConfig, Spacing};
use burn_diffusion::train::{FitOptions, TrainConfig, Trainer};
use burn_diffusion::{Denoiser, Loss, Result};

/// The reads that `f` makes on this thread, and its result.
fn reads<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let before = device_reads();
    let out = f();
    (device_reads() - before, out)
}

#[test]
fn sampling_steps_read_nothing() -> Result<()> {
    let device = Device::flex();
    let schedule = ScheduleConfig::new().init()?;
    let model = |x_t: Tensor<4>, _t: Tensor<1, Int>| x_t * 0.1;
    let options = SampleOptions::default();

    let ddim = DdimSampler::with_spacing(
        VpProcess::new(schedule.clone()),
        &Spacing::Linspace { steps: 50 },
        0.5, // η > 0: every step also draws noise
        Default::default(),
    )?;
    let (count, out) =
        reads(|| sample_from_noise(&ddim, &model, [4, 1, 8, 8], &device, options, |_, _| {}));
    assert_eq!(
        (count, out?.sample.dims()),
        (0, [4, 1, 8, 8]),
        "DDIM, 50 steps"
    );

    let respaced = VpProcess::new(schedule.respace(&Spacing::Linspace { steps: 20 })?);
    let ddpm = DdpmSampler::new(respaced, VarianceKind::FixedSmall, Default::default())?;
    let (count, out) =
        reads(|| sample_from_noise(&ddpm, &model, [4, 1, 8, 8], &device, options, |_, _| {}));
    assert_eq!(
        (count, out?.sample.dims()),
        (0, [4, 1, 8, 8]),
        "DDPM, 20 steps"
    );
    Ok(())
}

#[test]
fn losses_at_host_timesteps_read_nothing_and_tensor_timesteps_once() -> Result<()> {
    let device = Device::flex();
    let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(100).init()?);
    let model = MlpConfig::new(2).init(&device)?;
    let x0 = Toy2d::TwoMoons.sample_tensor(64, 0, &device);
    let simple = SimpleLoss::new(process.clone(), Prediction::Epsilon, Weighting::Uniform)?;
    let fixed = Parameterization::new()
        .with_prediction(Prediction::Epsilon)
        .with_variance(VarianceKind::FixedLarge);
    let vlb = VlbLoss::new(process, fixed, Decoder::Gaussian);

    let (count, out) = reads(|| simple.loss_seeded(&model, x0.clone(), 3));
    assert_eq!(
        (count, out?.loss.dims()),
        (0, [64]),
        "SimpleLoss::loss_seeded"
    );
    let (count, out) = reads(|| vlb.loss_seeded(&model, x0.clone(), 3));
    assert_eq!((count, out?.loss.dims()), (0, [64]), "VlbLoss::loss_seeded");

    // Timesteps given as a tensor are read once, at the edge, however many pieces of
    // math (forward process, target, posterior, variance) use them.
    let t = Tensor::<1, Int>::from_data([7i64; 64], &device);
    let noise = Tensor::<2>::zeros([64, 2], &device);
    let (count, out) = reads(|| vlb.loss(&model, x0, &t, noise));
    assert_eq!(
        (count, out?.loss.dims()),
        (1, [64]),
        "VlbLoss::loss, tensor timesteps"
    );
    Ok(())
}

/// Device reads of 20 training steps with `log_every`, the steps that logged a loss, and
/// the trained model's output on a fixed input.
fn training_reads(model: Mlp, log_every: usize) -> Result<(u64, Vec<usize>, Vec<f32>)> {
    let device = Device::flex();
    let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(100).init()?);
    let loss = SimpleLoss::new(process, Prediction::Epsilon, Weighting::Uniform)?;
    let config = TrainConfig::new(20)
        .with_batch_size(32)
        .with_grad_clip_norm(Some(1.0));
    let mut trainer = Trainer::new(config, model, loss, &device)?;
    let data = Toy2d::TwoMoons.sample_tensor(256, 0, &device);
    let mut logged = Vec::new();
    let (count, summary) = reads(|| {
        let options = FitOptions {
            log_every,
            ..FitOptions::default()
        };
        trainer.fit_with(&data, 20, &options, |s| {
            if s.loss.is_some() {
                logged.push(s.step);
            }
        })
    });
    assert_eq!(summary?.steps, 20);
    let probe = Toy2d::TwoMoons.sample_tensor(8, 9, &device);
    let t = Tensor::<1, Int>::from_data([50i64; 8], &device);
    let output = trainer.ema_model().denoise(probe, t, None);
    Ok((count, logged, output.try_into_vec_as::<f32>().unwrap()))
}

#[test]
fn training_steps_read_only_when_they_log() -> Result<()> {
    // A logging step reads its loss and its global gradient norm: two reads.
    // One initialization for both runs (a model's initial weights are not seeded).
    let model = MlpConfig::new(2).init(&Device::flex())?;
    let (count, logged, every_step) = training_reads(model.clone(), 1)?;
    assert_eq!((count, logged.len()), (2 * 20, 20), "log_every = 1");
    // With log_every = 10, steps 10 and 20 read, the 18 others read nothing; what is
    // computed is the same.
    let (count, logged, sparse) = training_reads(model, 10)?;
    assert_eq!((count, logged), (2 * 2, vec![10, 20]), "log_every = 10");
    assert_eq!(every_step, sparse, "the weights do not depend on log_every");
    Ok(())
}
