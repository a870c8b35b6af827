//! Bad input gives a `DiffusionError` that names the value, never a panic.

use burn::tensor::{Int, Tensor};
use burn_diffusion::{
    DiffusionError, ForwardProcess, Posterior,
    gaussian::normal_kl,
    prediction::Prediction,
    process::{VeConfig, VpProcess},
    schedule::ScheduleConfig,
};

use crate::common::{on_each_device, tensor, timesteps};

#[test]
fn out_of_range_and_negative_timesteps_are_errors() {
    let process = VpProcess::new(ScheduleConfig::new().with_num_timesteps(10).init().unwrap());
    on_each_device(|device| {
        let x0 = tensor(&[0.0; 4], [2, 2], device);
        let t = timesteps(&[3, 10], device);
        let e = process.q_sample_seeded(x0.clone(), &t, 0).unwrap_err();
        assert_eq!(
            e,
            DiffusionError::TimestepOutOfRange {
                timestep: 10,
                index: 1,
                num_timesteps: 10
            }
        );
        let negative = Tensor::<1, Int>::from_ints([-1, 0], device);
        let e = process.q_marginal(x0.clone(), &negative).unwrap_err();
        assert!(e.to_string().contains("timestep -1"), "{e}");
        let e = process.q_posterior(x0.clone(), x0, &negative).unwrap_err();
        assert!(matches!(
            e,
            DiffusionError::TimestepOutOfRange { timestep: -1, .. }
        ));
    });
}

#[test]
fn shape_mismatches_are_errors() {
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    on_each_device(|device| {
        let x0 = tensor(&[0.0; 6], [2, 3], device);
        let t3 = timesteps(&[1, 2, 3], device);
        let t2 = timesteps(&[1, 2], device);
        let e = process.q_sample_seeded(x0.clone(), &t3, 0).unwrap_err();
        assert!(matches!(e, DiffusionError::ShapeMismatch { .. }), "{e}");
        let wrong = tensor(&[0.0; 4], [2, 2], device);
        let _ = wrong.clone();
        let noise3 = tensor(&[0.0; 9], [3, 3], device);
        assert!(process.q_sample(x0.clone(), &t2, noise3).is_err());
        let x_t = tensor(&[0.0; 8], [2, 4], device);
        assert!(process.q_posterior(x0.clone(), x_t.clone(), &t2).is_err());
        assert!(
            Prediction::Epsilon
                .to_x0_eps(&process, x0.clone(), &t2, x_t)
                .is_err()
        );
        let a = tensor(&[0.0; 2], [2], device);
        let b = tensor(&[0.0; 3], [3], device);
        let e = normal_kl(a.clone(), a.clone(), b, a).unwrap_err();
        assert!(e.to_string().contains("broadcast"), "{e}");
    });
}

#[test]
fn bad_configurations_name_the_value() {
    let e = ScheduleConfig::new()
        .with_num_timesteps(0)
        .init()
        .unwrap_err();
    assert!(e.to_string().contains("num_timesteps = 0"), "{e}");
    let e = ScheduleConfig::new()
        .with_beta_schedule(burn_diffusion::schedule::BetaSchedule::Linear {
            beta_start: 0.02,
            beta_end: 1e-4,
        })
        .init()
        .unwrap_err();
    assert!(e.to_string().contains("beta_end = 0.0001"), "{e}");
    let e = ScheduleConfig::new()
        .with_beta_schedule(burn_diffusion::schedule::BetaSchedule::Custom(vec![
            0.1,
            f64::INFINITY,
        ]))
        .with_num_timesteps(2)
        .init()
        .unwrap_err();
    assert!(e.to_string().contains("beta[1] = inf"), "{e}");
    let e = ScheduleConfig::new()
        .with_num_timesteps(1)
        .with_rescale_zero_terminal_snr(true)
        .init()
        .unwrap_err();
    assert!(e.to_string().contains("num_timesteps = 1"), "{e}");
    let e = VeConfig::new().with_sigma_min(-1.0).init().unwrap_err();
    assert!(e.to_string().contains("sigma_min = -1"), "{e}");
    let s = ScheduleConfig::new().init().unwrap();
    let e = s
        .respace(&burn_diffusion::schedule::Spacing::Linspace { steps: 1001 })
        .unwrap_err();
    assert!(e.to_string().contains("cannot keep 1001 of 1000"), "{e}");
}

#[test]
fn posterior_at_t0_is_a_point_mass_at_x0() {
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    assert_eq!(process.num_timesteps(), 1000);
    on_each_device(|device| {
        let x0 = tensor(&[0.3, -0.7], [2, 1], device);
        let x_t = tensor(&[1.5, 2.5], [2, 1], device);
        let p = process
            .q_posterior(x0, x_t, &timesteps(&[0, 0], device))
            .unwrap();
        assert_eq!(crate::common::values(p.variance), vec![0.0, 0.0]);
        crate::common::assert_close(
            "mean",
            &crate::common::values(p.mean),
            &[0.3, -0.7],
            1e-7,
            0.0,
        );
        // The clipped log-variance is finite: log β̃ of t = 1.
        let lv = crate::common::values(p.log_variance);
        assert!(lv.iter().all(|v| v.is_finite()));
    });
}

/// On a zero-terminal-SNR schedule the last timestep has a_t = 0: ε-prediction cannot
/// give x̂_0 there, so a sampler visiting it is an error naming the timestep (it gave
/// all-NaN samples); v-prediction samples finite values on the same grid.
#[test]
fn epsilon_prediction_where_alpha_bar_is_zero_is_an_error_not_nan() {
    use burn_diffusion::sampler::{DdimSampler, SampleOptions, X0Options, sample_from_noise};
    use burn_diffusion::schedule::Spacing;
    let schedule = ScheduleConfig::new()
        .with_rescale_zero_terminal_snr(true)
        .init()
        .unwrap();
    let process = VpProcess::new(schedule);
    assert_eq!(process.signal_scale()[999], 0.0);
    let grid = Spacing::Trailing { steps: 10 };
    let model = |x: Tensor<2>, _t: Tensor<1, Int>| x * 0.5;
    on_each_device(|device| {
        let run = |prediction| {
            let x0 = X0Options {
                prediction,
                ..X0Options::default()
            };
            let ddim = DdimSampler::with_spacing(process.clone(), &grid, 0.0, x0).unwrap();
            sample_from_noise(
                &ddim,
                &model,
                [4, 2],
                device,
                SampleOptions::default(),
                |_, _| {},
            )
        };
        let e = run(Prediction::Epsilon).unwrap_err().to_string();
        assert!(
            e.contains("timestep = 999") && e.contains("Velocity"),
            "{e}"
        );
        let v = crate::common::values(run(Prediction::Velocity).unwrap().sample);
        assert!(v.iter().all(|x| x.is_finite()), "{v:?}");
    });
}
