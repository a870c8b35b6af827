//! Seeded Monte-Carlo checks of the samplers of q(x_t | x_0) and q(x_t | x_{t−1}).

use burn_diffusion::{
    ForwardProcess,
    process::{VeConfig, VpProcess},
    schedule::ScheduleConfig,
};

use crate::common::{on_each_device, tensor, timesteps, values};

/// Sample mean and (biased) variance of each of the `rows` rows of `v` ([rows, n]).
fn row_moments(v: &[f64], rows: usize) -> Vec<(f64, f64)> {
    let n = v.len() / rows;
    v.chunks(n)
        .map(|r| {
            let m = r.iter().sum::<f64>() / n as f64;
            (m, r.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64)
        })
        .collect()
}

/// Checks a sample against N(mean, var) with `n` draws: the sample mean within 5 standard
/// errors σ/√n, the sample variance within 5·σ²·√(2/n) (its standard error for a Gaussian).
fn assert_moments(what: &str, got: (f64, f64), mean: f64, var: f64, n: usize) {
    let n = n as f64;
    let (m, v) = got;
    assert!(
        (m - mean).abs() < 5.0 * (var / n).sqrt(),
        "{what}: mean {m}, want {mean}"
    );
    assert!(
        (v - var).abs() < 5.0 * var * (2.0 / n).sqrt(),
        "{what}: variance {v}, want {var}"
    );
}

/// 40 000 draws per example at four timesteps: q_sample has mean √ᾱ_t x_0 and variance
/// 1 − ᾱ_t (eq. 4), and the single step has mean √α_t x_{t−1} and variance β_t (eq. 2).
#[test]
fn q_sample_has_the_stated_moments() {
    let n = 40_000;
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    let ve = VeConfig::new().init().unwrap();
    let ts = [0usize, 100, 500, 999];
    let x0_values = [0.8, -0.3, 1.0, -1.0];
    let x0_flat: Vec<f64> = x0_values.iter().flat_map(|x| vec![*x; n]).collect();
    on_each_device(|device| {
        let x0 = tensor(&x0_flat, [4, n], device);
        let t = timesteps(&ts, device);
        let ve_ts = [0usize, 3, 6, 9];
        let noise = burn_diffusion::noise::randn([4, n], 12, device);
        // (what, draws [4, n], per-row scale of x_0, per-row variance)
        let cases = [
            (
                "vp q_sample",
                values(process.q_sample_seeded(x0.clone(), &t, 11).unwrap()),
                ts.map(|t| process.signal_scale()[t]),
                ts.map(|t| process.noise_std()[t].powi(2)),
            ),
            (
                "vp q_step",
                values(process.q_step_sample(x0.clone(), &t, noise).unwrap()),
                ts.map(|t| process.transition_scale()[t]),
                ts.map(|t| process.transition_variance()[t]),
            ),
            (
                "ve q_sample",
                values(
                    ve.q_sample_seeded(x0.clone(), &timesteps(&ve_ts, device), 13)
                        .unwrap(),
                ),
                [1.0; 4],
                ve_ts.map(|t| ve.noise_std()[t].powi(2)),
            ),
        ];
        for (what, draws, scale, var) in cases {
            for (i, got) in row_moments(&draws, 4).into_iter().enumerate() {
                assert_moments(
                    &format!("{what} row {i}"),
                    got,
                    scale[i] * x0_values[i],
                    var[i],
                    n,
                );
            }
        }
    });
}

/// The same seed gives the same sample on repeated calls and on every device.
#[test]
fn seeded_samples_repeat_across_devices() {
    let process = VpProcess::new(ScheduleConfig::new().init().unwrap());
    let draw = |device: &burn::tensor::Device| {
        let x0 = tensor(&[0.5; 6], [2, 3], device);
        values(
            process
                .q_sample_seeded(x0, &timesteps(&[3, 700], device), 5)
                .unwrap(),
        )
    };
    let per_device: Vec<Vec<f64>> = crate::common::devices()
        .iter()
        .map(|(_, d)| draw(d))
        .collect();
    for (i, (_, device)) in crate::common::devices().iter().enumerate() {
        assert_eq!(draw(device), per_device[i], "repeat on the same device");
        crate::common::assert_close(
            "device vs first device",
            &per_device[i],
            &per_device[0],
            1e-6,
            1e-7,
        );
    }
}
