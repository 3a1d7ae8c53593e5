//! Session lengths: how long a node stays online.
//!
//! Measured Mainline sessions are heavy-tailed (many nodes leave within minutes, a few stay
//! for days); a Weibull distribution with shape k < 1 fits them. The scale is derived from
//! the median: `median = λ (ln 2)^(1/k)`.
//!
//! A session drawn when a node arrives ([`Weibull::sample`]) is not what is left of the
//! sessions of a network that has been running for a while ([`Weibull::sample_residual`]).
//! With k < 1 the chance of leaving falls with the time already online, and a network in
//! equilibrium holds mostly nodes that have stayed long: with k = 0.5 and a median of two
//! hours, 13 % of freshly arrived nodes leave within five minutes, but only 0.9 % of the
//! nodes of a network in equilibrium do.

use rand::Rng;
use rand_distr::{Distribution, Gamma};

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

    /// What is left of the session of a node found online in a network in equilibrium
    /// (renewal theory's forward recurrence time, density `P(session > t) / E[session]`), in
    /// seconds.
    ///
    /// The session a node found online is in is length-biased (long sessions are more likely
    /// to be caught): with `u = (t/λ)^k`, its density `t f(t) / E[T]` makes `u` a Gamma of shape
    /// `1 + 1/k`. The node is at a uniform point of it.
    pub fn sample_residual(&self, rng: &mut impl Rng) -> f64 {
        let u = match Gamma::new(1.0 + 1.0 / self.shape, 1.0) {
            Ok(g) => g.sample(rng),
            // Only for a shape that is not positive and finite, which scenarios refuse.
            Err(_) => return self.sample(rng),
        };
        let whole = self.scale * u.powf(1.0 / self.shape);
        let left: f64 = rng.r#gen::<f64>();
        whole * left
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

    /// `n` draws of `f` from a generator seeded with `seed`.
    fn draw(n: usize, seed: u64, mut f: impl FnMut(&mut ChaCha8Rng) -> f64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| f(&mut rng)).collect()
    }

    /// The share of `draws` that are at most `t`.
    fn share_within(draws: &[f64], t: f64) -> f64 {
        draws.iter().filter(|&&s| s <= t).count() as f64 / draws.len() as f64
    }

    /// About half of the nodes are gone within two hours, and the tail is heavy.
    #[test]
    fn half_gone_in_two_hours() {
        let w = Weibull::with_median(0.5, 7200.0);
        let draws = draw(100_000, 1, |rng| w.sample(rng));
        let gone = |t: f64| share_within(&draws, t);
        let two_h = gone(7200.0);
        assert!((0.48..=0.52).contains(&two_h), "gone in 2 h: {two_h}");
        assert!((w.cdf(7200.0) - 0.5).abs() < 1e-9);
        // Heavy tail: many short sessions, and a tenth past 25 h.
        assert!(gone(600.0) > 0.15, "gone in 10 min: {}", gone(600.0));
        assert!(1.0 - gone(25.0 * 3600.0) > 0.08);
    }

    /// The residual sessions of a network in equilibrium follow `1 − (1 + z) e^(−z)` with
    /// `z = (t/λ)^½` (the closed form for k = ½) and average `6 λ` (`E[T²] / 2 E[T]`).
    #[test]
    fn residual_sessions_of_a_network_in_equilibrium() {
        let w = Weibull::with_median(0.5, 7200.0);
        let draws = draw(200_000, 2, |rng| w.sample_residual(rng));
        let gone = |t: f64| share_within(&draws, t);
        let expected = |t: f64| {
            let z = (t / w.scale).sqrt();
            1.0 - (1.0 + z) * (-z).exp()
        };
        for t in [300.0, 3600.0, 7200.0, 86_400.0] {
            let (got, want) = (gone(t), expected(t));
            assert!(
                (got - want).abs() < 0.005,
                "P(left within {t} s): {got} against {want}"
            );
        }
        // Five minutes: 0.9 % of the nodes of a running network, against 13 % of new ones.
        assert!(gone(300.0) < 0.012 && w.cdf(300.0) > 0.12);
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean / (6.0 * w.scale) - 1.0).abs() < 0.03, "mean {mean}");
    }
}
