use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::prelude::*;

fn main() -> Result<()> {
    let device = Device::flex();
    let process = VpProcess::new(ScheduleConfig::new().init()?); // linear β, T = 1000
    let x0 = randn::<4>([2, 1, 8, 8], 0, &device);
    let eps = randn::<4>([2, 1, 8, 8], 1, &device);
    let t = Tensor::<1, Int>::from_ints([10, 900], &device); // one timestep per example

    let x_t = process.q_sample(x0.clone(), &t, eps.clone())?; // Ho et al. eq. 4
    let (x0_hat, _) = Prediction::Epsilon.to_x0_eps(&process, x_t.clone(), &t, eps)?;
    let posterior = process.q_posterior(x0_hat, x_t, &t)?; // eq. 6–7
    let variance = posterior.variance.into_data().to_vec::<f32>().unwrap();
    println!("β̃ at t = 10 and t = 900: {variance:?}");
    Ok(())
}
