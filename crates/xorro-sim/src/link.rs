//! The link model: where nodes are, how long datagrams take between them.
//!
//! Each node gets a point in a two-dimensional "latency plane" and an access delay (its last
//! mile), as in network-coordinate systems (Vivaldi's height vector model):
//! `rtt(a, b) = |xa − xb| + ha + hb`. Points are drawn around six regions weighted like the
//! internet's population of hosts (North America, Europe, East Asia, South America, Oceania,
//! Africa) so that nearby pairs are fast and intercontinental ones slow; access delays are
//! log-normal, which gives the long tail (satellite, mobile and congested links). The whole
//! plane is then scaled so that the median RTT over random pairs is the configured one.
//!
//! A datagram takes half the RTT plus up to 10 % jitter; it is lost independently with the
//! configured probability (the simulator draws that).

use rand::Rng;

/// Regions: (x, y) in ms of one-way distance, weight, spread σ (ms).
const REGIONS: [(f64, f64, f64, f64); 6] = [
    (0.0, 0.0, 0.26, 12.0),    // North America
    (45.0, 5.0, 0.28, 10.0),   // Europe
    (115.0, 15.0, 0.30, 15.0), // East Asia
    (20.0, -55.0, 0.08, 10.0), // South America
    (120.0, -60.0, 0.04, 8.0), // Oceania
    (60.0, -40.0, 0.04, 12.0), // Africa
];

/// Median of the log-normal access delay before scaling (ms).
const ACCESS_MEDIAN_MS: f64 = 6.0;

/// Coordinates of every node.
#[derive(Debug, Clone, Default)]
pub struct LinkModel {
    /// (x, y, access delay) per node, in ms after scaling.
    coords: Vec<[f32; 3]>,
    /// Multiplies raw coordinates to reach the median RTT.
    scale: f64,
    access_sigma: f64,
}

impl LinkModel {
    /// Bytes of the model per host (its coordinates).
    pub fn bytes_per_host(&self) -> f64 {
        std::mem::size_of::<[f32; 3]>() as f64
    }

    /// An empty model; `scale` is calibrated by [`LinkModel::calibrate`].
    pub fn new(access_sigma: f64) -> Self {
        LinkModel {
            coords: Vec::new(),
            scale: 1.0,
            access_sigma,
        }
    }

    /// Draws coordinates for node `i` (nodes are added in index order).
    pub fn add(&mut self, rng: &mut impl Rng) -> usize {
        let [x, y, h] = draw_raw(rng, self.access_sigma);
        let s = self.scale;
        self.coords
            .push([(x * s) as f32, (y * s) as f32, (h * s) as f32]);
        self.coords.len() - 1
    }

    /// Scales the plane so that the median RTT of random pairs drawn from the same
    /// distribution is `median_ms`. Call before adding nodes.
    pub fn calibrate(&mut self, median_ms: f64, rng: &mut impl Rng) {
        let mut rtts: Vec<f64> = (0..20_000)
            .map(|_| {
                let a = draw_raw(rng, self.access_sigma);
                let b = draw_raw(rng, self.access_sigma);
                raw_rtt(a, b)
            })
            .collect();
        rtts.sort_by(f64::total_cmp);
        let median = rtts[rtts.len() / 2];
        self.scale = if median > 0.0 {
            median_ms / median
        } else {
            1.0
        };
    }

    /// Nodes with coordinates.
    pub fn len(&self) -> usize {
        self.coords.len()
    }

    /// True when no node has coordinates.
    pub fn is_empty(&self) -> bool {
        self.coords.is_empty()
    }

    /// Round-trip time between nodes `a` and `b`, in microseconds.
    pub fn rtt_us(&self, a: usize, b: usize) -> u64 {
        let (p, q) = (self.coords[a], self.coords[b]);
        let dx = f64::from(p[0] - q[0]);
        let dy = f64::from(p[1] - q[1]);
        let ms = (dx * dx + dy * dy).sqrt() + f64::from(p[2]) + f64::from(q[2]);
        (ms * 1000.0) as u64
    }

    /// One-way delay of a datagram from `a` to `b` in nanoseconds: half the RTT plus up to
    /// 10 % jitter.
    pub fn one_way_ns(&self, a: usize, b: usize, rng: &mut impl Rng) -> u64 {
        let half = self.rtt_us(a, b) * 500;
        half + (half as f64 * 0.1 * rng.r#gen::<f64>()) as u64
    }
}

fn draw_raw(rng: &mut impl Rng, access_sigma: f64) -> [f64; 3] {
    let mut pick: f64 = rng.r#gen();
    let mut region = REGIONS[0];
    for r in REGIONS {
        if pick < r.2 {
            region = r;
            break;
        }
        pick -= r.2;
    }
    let x = region.0 + region.3 * normal(rng);
    let y = region.1 + region.3 * normal(rng);
    let h = ACCESS_MEDIAN_MS * (access_sigma * normal(rng)).exp();
    [x, y, h]
}

fn raw_rtt(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt() + a[2] + b[2]
}

/// A standard normal draw (Box–Muller).
pub(crate) fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Pairwise RTTs look like the internet's: median ≈ 100 ms, a long tail past 400 ms.
    #[test]
    fn rtt_distribution_is_internet_like() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut m = LinkModel::new(crate::scenario::LinkConfig::default().access_sigma);
        m.calibrate(100.0, &mut rng);
        for _ in 0..5000 {
            m.add(&mut rng);
        }
        let mut rtts: Vec<u64> = (0..50_000)
            .map(|_| {
                let a = rng.gen_range(0..m.len());
                let b = rng.gen_range(0..m.len());
                m.rtt_us(a, b)
            })
            .collect();
        rtts.sort_unstable();
        let q = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
        let (p10, p50, p99, max) = (q(0.10), q(0.5), q(0.99), q(1.0));
        eprintln!("rtt p10 {p10:.0} p50 {p50:.0} p99 {p99:.0} max {max:.0} ms");
        assert!((90.0..=110.0).contains(&p50), "median {p50}");
        assert!(p10 < 60.0, "p10 {p10}: nearby pairs should be fast");
        assert!(p99 > 400.0, "p99 {p99}: the tail should pass 400 ms");
        assert!(max < 5000.0, "max {max}");
    }
}
