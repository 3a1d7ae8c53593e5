//! Session lengths: how long a node stays online.
//!
//! Measured Mainline sessions are heavy-tailed (many nodes leave within minutes, a few stay
//! for days); a Weibull distribution with shape k < 1 fits them. The scale is derived from
//! the median: `median = λ (ln 2)^(1/k)`.

use rand::Rng;

/// A Weibull distribution of session lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weibull {
    /// Shape k.
    pub shape: f64,
    /// Scale λ (seconds).
    pub scale: f64,
}

impl Weibull {
    /// The Weibull with shape `shape` whose median is `median` (seconds).
    pub fn with_median(shape: f64, median: f64) -> Self {
        Weibull {
            shape,
            scale: median / std::f64::consts::LN_2.powf(1.0 / shape),
        }
    }

    /// A draw, in seconds (inverse transform).
    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        let u: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
        self.scale * (-u.ln()).powf(1.0 / self.shape)
    }

    /// P(session ≤ t).
    pub fn cdf(&self, t: f64) -> f64 {
        1.0 - (-(t / self.scale).powf(self.shape)).exp()
    }
}

/// An exponential draw with mean `mean` (seconds).
pub fn exponential(rng: &mut impl Rng, mean: f64) -> f64 {
    let u: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
    -mean * u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// About half of the nodes are gone within two hours, and the tail is heavy.
    #[test]
    fn half_gone_in_two_hours() {
        let w = Weibull::with_median(0.5, 7200.0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let draws: Vec<f64> = (0..100_000).map(|_| w.sample(&mut rng)).collect();
        let gone = |t: f64| draws.iter().filter(|&&s| s <= t).count() as f64 / draws.len() as f64;
        let two_h = gone(7200.0);
        assert!((0.48..=0.52).contains(&two_h), "gone in 2 h: {two_h}");
        assert!((w.cdf(7200.0) - 0.5).abs() < 1e-9);
        // Heavy tail: many short sessions, and a tenth past 25 h.
        assert!(gone(600.0) > 0.15, "gone in 10 min: {}", gone(600.0));
        assert!(1.0 - gone(25.0 * 3600.0) > 0.08);
    }
}
