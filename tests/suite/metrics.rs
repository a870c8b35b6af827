//! Sample-quality measures on cases with known answers: the level and the power of the
//! energy test and of the off-manifold fraction against two-moons data contaminated by
//! a known share of blurred points (the quickstart's failure: mass between and around the
//! moons).

use burn_diffusion::data::Toy2d;
use burn_diffusion::metrics::{energy_test, off_manifold};
use burn_diffusion::noise::SeededRng;

fn moons(n: usize, seed: u64) -> Vec<f32> {
    Toy2d::TwoMoons.sample(n, seed).concat()
}

/// `n` two-moons points of which a share `contamination` (the first ⌊share·n⌋) is
/// replaced by points uniform on the box [−3, 3] × [−2, 2] around the moons (most of
/// which lie off them: mass between and around the moons).
fn contaminated(n: usize, contamination: f64, seed: u64) -> Vec<f32> {
    let mut points = moons(n, seed);
    let replaced = (contamination * n as f64) as usize;
    let mut rng = SeededRng::new(seed ^ 0xB1);
    for point in points.chunks_mut(2).take(replaced) {
        point[0] = (6.0 * rng.next_open01() - 3.0) as f32;
        point[1] = (4.0 * rng.next_open01() - 2.0) as f32;
    }
    points
}

/// Over 40 repeats of 500 samples against 500 data points: the energy test (99
/// permutations, α = 0.05) rejects clean samples at about its level and samples 1.2×
/// too wide every time; the off-manifold fraction (quantile 0.95 of the distances to
/// 20,000 reference points, z > 3) almost never flags clean samples and flags samples
/// with 20 % of their mass uniform around the moons every time. The bounds allow for
/// binomial noise: at the true level 0.05, 40 draws exceed 6 rejections with probability
/// 0.014; at a power of 0.99, fewer than 36 detections have probability 0.0001.
///
/// The energy distance of a mixture (1 − ε)P + εQ from P is ε² times that of Q: the
/// energy test does not see a 20 % contamination at this size (it rejected 0 of 10 in a
/// trial), which is why the off-manifold fraction exists.
#[test]
fn contamination_of_known_size_is_detected_and_clean_samples_pass() {
    let repeats = 40;
    let reference = moons(20_000, 1);
    let mut counts = [0usize; 5];
    for r in 0..repeats {
        let seed = 100 + 10 * r as u64;
        let data = moons(500, seed);
        let clean = moons(500, seed + 1);
        let wide: Vec<f32> = moons(500, seed + 2).iter().map(|v| 1.2 * v).collect();
        let reject = |x: &[f32]| energy_test(x, &data, 2, 99, seed + 3).unwrap().p_value <= 0.05;
        counts[0] += usize::from(reject(&clean));
        counts[1] += usize::from(reject(&wide));
        let flag = |x: &[f32]| off_manifold(x, &data, &reference, 2, 0.95).unwrap().z() > 3.0;
        counts[2] += usize::from(flag(&clean));
        counts[3] += usize::from(flag(&contaminated(500, 0.2, seed + 4)));
        counts[4] += usize::from(flag(&contaminated(500, 0.1, seed + 5)));
    }
    println!(
        "over {repeats} repeats: energy test rejects clean {}, 1.2× wide {}; off-manifold flags clean {}, 20 % contaminated {}, 10 % contaminated {}",
        counts[0], counts[1], counts[2], counts[3], counts[4]
    );
    assert!(
        counts[0] <= 6,
        "energy test level: {} of {repeats}",
        counts[0]
    );
    assert!(
        counts[1] >= 36,
        "energy test power: {} of {repeats}",
        counts[1]
    );
    assert!(
        counts[2] <= 3,
        "off-manifold false alarms: {} of {repeats}",
        counts[2]
    );
    assert!(
        counts[3] >= 36,
        "off-manifold power: {} of {repeats}",
        counts[3]
    );
}
