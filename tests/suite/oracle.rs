//! Independent plain-f64 computations that the crate's results are compared against.
//! Nothing here calls the crate: each quantity is computed from its definition.

/// A Gaussian Markov chain from its definition: x_t | x_{t−1} ~ N(c_t x_{t−1}, d2_t),
/// x_{−1} = x_0.
pub struct Chain {
    pub c: Vec<f64>,
    pub d2: Vec<f64>,
}

impl Chain {
    /// DDPM: c_t = √(1 − β_t), d²_t = β_t (Ho et al. 2020, eq. 2).
    pub fn vp(betas: &[f64]) -> Self {
        Self {
            c: betas.iter().map(|b| (1.0 - b).sqrt()).collect(),
            d2: betas.to_vec(),
        }
    }

    /// NCSN: x_t = x_{t−1} + √(σ_t² − σ_{t−1}²) z, σ_{−1} = 0.
    pub fn ve(sigmas: &[f64]) -> Self {
        let mut prev = 0.0;
        let d2 = sigmas
            .iter()
            .map(|s| {
                let d = s * s - prev * prev;
                prev = *s;
                d
            })
            .collect();
        Self {
            c: vec![1.0; sigmas.len()],
            d2,
        }
    }

    /// (scale, variance) of q(x_t | x_0) by composing the transitions one at a time.
    pub fn marginal(&self, t: usize) -> (f64, f64) {
        let (mut scale, mut var) = (1.0, 0.0);
        for s in 0..=t {
            scale *= self.c[s];
            var = self.c[s] * self.c[s] * var + self.d2[s];
        }
        (scale, var)
    }

    /// q(x_{t−1} | x_t, x_0) for t ≥ 1 by Bayes' rule: prior q(x_{t−1} | x_0) times the
    /// likelihood q(x_t | x_{t−1}) as a function of x_{t−1}, by adding precisions.
    pub fn bayes_posterior(&self, t: usize, x0: f64, x_t: f64) -> (f64, f64) {
        let (a_prev, v_prev) = self.marginal(t - 1);
        let (c, d2) = (self.c[t], self.d2[t]);
        let precision = 1.0 / v_prev + c * c / d2;
        let mean = (a_prev * x0 / v_prev + c * x_t / d2) / precision;
        (mean, 1.0 / precision)
    }
}

/// KL(N(m1, v1) ‖ N(m2, v2)) by composite Simpson integration of p1·log(p1/p2).
pub fn kl_by_integration(m1: f64, v1: f64, m2: f64, v2: f64) -> f64 {
    let sd1 = v1.sqrt();
    let (lo, hi, n) = (m1 - 14.0 * sd1, m1 + 14.0 * sd1, 40_000);
    let h = (hi - lo) / n as f64;
    let log_pdf = |x: f64, m: f64, v: f64| {
        -0.5 * (x - m) * (x - m) / v - 0.5 * (2.0 * std::f64::consts::PI * v).ln()
    };
    let f = |x: f64| {
        let lp1 = log_pdf(x, m1, v1);
        lp1.exp() * (lp1 - log_pdf(x, m2, v2))
    };
    let mut sum = f(lo) + f(hi);
    for i in 1..n {
        sum += f(lo + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    sum * h / 3.0
}
