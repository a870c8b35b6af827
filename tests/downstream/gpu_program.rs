//! The program of the GPU-only downstream crates (`wgpu/`, `cuda/`): the forward process,
//! the posterior and a DDIM run on the device each crate's `main` picks. CI only checks
//! that they compile (no GPU there); on a machine with one, `cargo run --release` runs it.

use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::prelude::*;

/// Runs the program on `device`.
pub fn run(device: Device) -> Result<()> {
    let process = VpProcess::new(ScheduleConfig::new().init()?);
    let x0 = randn::<4>([2, 1, 8, 8], 0, &device);
    let eps = randn::<4>([2, 1, 8, 8], 1, &device);
    let t = Tensor::<1, Int>::from_ints([10, 900], &device);
    let x_t = process.q_sample(x0, &t, eps.clone())?;
    let (x0_hat, _) = Prediction::Epsilon.to_x0_eps(&process, x_t.clone(), &t, eps)?;
    let posterior = process.q_posterior(x0_hat, x_t, &t)?;

    // A model that always predicts zero noise, sampled with 10 DDIM steps.
    let model = |x_t: Tensor<4>, _t: Tensor<1, Int>| x_t.zeros_like();
    let sampler = DdimSampler::with_spacing(
        process,
        &Spacing::Linspace { steps: 10 },
        0.0,
        Default::default(),
    )?;
    let out = sample_from_noise(
        &sampler,
        &model,
        [2, 1, 8, 8],
        &device,
        SampleOptions::default(),
        |_, _| {},
    )?;
    println!(
        "posterior mean {:?}, sample {:?}",
        posterior.mean.dims(),
        out.sample.dims()
    );
    Ok(())
}
