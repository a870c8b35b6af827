//! Rescaling a schedule to zero terminal SNR (Lin et al. 2023, Algorithm 1).

/// Rescales `betas` so that the last step has ᾱ_T = 0 (zero signal-to-noise ratio) while
/// ᾱ at the first step is unchanged (Lin et al. 2023, "Common Diffusion Noise Schedules
/// and Sample Steps are Flawed", Algorithm 1).
///
/// With `a = √ᾱ`: `a'_t = (a_t − a_T) · a_1 / (a_1 − a_T)`, then β'_t = 1 − ᾱ'_t / ᾱ'_{t−1}.
/// The last β becomes exactly 1, which [`crate::schedule::DiscreteSchedule`] accepts for the last
/// step only. With ᾱ_T = 0 an ε-predicting model cannot recover x_0 at the last step; use
/// v-prediction with such schedules.
///
/// The input must already be a valid schedule with at least two steps.
pub(crate) fn rescale_zero_terminal_snr(betas: &[f64]) -> Vec<f64> {
    let mut alpha_bar = 1.0;
    let sqrt_ab: Vec<f64> = betas
        .iter()
        .map(|b| {
            alpha_bar *= 1.0 - b;
            alpha_bar.sqrt()
        })
        .collect();
    let (first, last) = (sqrt_ab[0], sqrt_ab[sqrt_ab.len() - 1]);
    let scale = first / (first - last);
    let rescaled: Vec<f64> = sqrt_ab
        .iter()
        .map(|a| ((a - last) * scale).powi(2))
        .collect();
    let mut out = Vec::with_capacity(betas.len());
    out.push(1.0 - rescaled[0]);
    for w in rescaled.windows(2) {
        out.push(1.0 - w[1] / w[0]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_alpha_bar_is_zero_and_first_is_kept() {
        let betas: Vec<f64> = (0..50).map(|i| 1e-3 + 1e-3 * i as f64).collect();
        let out = rescale_zero_terminal_snr(&betas);
        assert_eq!(out[49], 1.0);
        assert!((out[0] - betas[0]).abs() < 1e-15);
        assert!(out.iter().all(|b| *b > 0.0 && *b <= 1.0));
    }
}
