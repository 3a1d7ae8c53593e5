//! Whether nodes we have not written to can reach us, in one address family (the node
//! keeps one of these for IPv4 and one for IPv6): a node behind NAT or a stateful
//! firewall receives only from the addresses it sent to lately, so a query from anyone else
//! proves it reachable. With [`Config::detect_unreachable`](crate::Config::detect_unreachable)
//! set, a node that hears no such query for that long takes itself for unreachable and acts
//! read-only (BEP 43) until it tries again [`REPROBE`] later: the others then keep it out of
//! their tables instead of handing it out and waiting for it in vain.
//!
//! For every node off by default: in a small or quiet network every querier is one we wrote
//! to lately, so reachable nodes would take themselves for unreachable (measured: 1–8 times
//! in two hours in networks of 3 to 80 public nodes with nothing but maintenance). Loopback
//! and private queriers count as strangers, so local test networks and LANs are safe; a
//! small network of public servers is not. On by default (after
//! [`Config::detect_unreachable_behind_nat`](crate::Config::detect_unreachable_behind_nat))
//! for a node that knows it is behind NAT: the address other nodes see is none of its own.
//! Simulated in docs/SIMULATION.md ("Nodes behind NAT that know it").
//!
//! The addresses written to are kept in two Bloom filters of [`WINDOW`]` / 2` each, turned
//! over at maintenance (a false positive only takes a stranger for an acquaintance, which
//! delays the proof); they are dropped once the node is proven reachable, which it then
//! stays.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How far back a write counts: longer than NAT mappings of UDP are kept (30 s to a few
/// minutes), so that a querier we wrote to within a mapping's life is never a stranger.
pub const WINDOW: Duration = Duration::from_secs(600);

/// How long a node that took itself for unreachable acts read-only before it tries again.
pub const REPROBE: Duration = Duration::from_secs(1800);

const BITS: usize = 2048;

/// What the node knows of its own reachability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// No query from a stranger yet, since `since`.
    Learning {
        /// When the wait began (start, or the last try again).
        since: Instant,
    },
    /// A node we had not written to queried us.
    Reachable,
    /// Nobody we had not written to queried us for `Config::detect_unreachable`: the node
    /// acts read-only, since `since`.
    Unreachable {
        /// When it took itself for unreachable.
        since: Instant,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Reach {
    state: Reachability,
    /// Addresses written to: the current filter, then the previous one.
    written: Option<Box<[[u64; BITS / 64]; 2]>>,
    rotated: Instant,
    key: u64,
}

impl Reach {
    pub(crate) fn new(now: Instant, key: u64) -> Self {
        Reach {
            state: Reachability::Learning { since: now },
            written: None,
            rotated: now,
            key,
        }
    }

    pub(crate) fn state(&self) -> Reachability {
        self.state
    }

    pub(crate) fn acts_read_only(&self) -> bool {
        matches!(self.state, Reachability::Unreachable { .. })
    }

    /// We sent a datagram to `to`.
    pub(crate) fn on_sent(&mut self, to: SocketAddr) {
        if self.state == Reachability::Reachable {
            return;
        }
        let key = self.key;
        let filters = self
            .written
            .get_or_insert_with(|| Box::new([[0; BITS / 64]; 2]));
        for bit in bits(key, &to) {
            filters[0][bit / 64] |= 1 << (bit % 64);
        }
    }

    /// A query came from `from`: true if it proved us reachable just now.
    pub(crate) fn on_query(&mut self, from: SocketAddr) -> bool {
        if self.state == Reachability::Reachable {
            return false;
        }
        // Loopback and private sources count as strangers: whoever shares such a network
        // with us reaches us, and a wrong "unreachable" costs more than a wrong "reachable".
        let local = xorro_wire::bep42::is_exempt(from.ip());
        let known = self.written.as_ref().is_some_and(|f| {
            let b = bits(self.key, &from);
            f.iter()
                .any(|filter| b.iter().all(|&i| filter[i / 64] & (1 << (i % 64)) != 0))
        });
        if local || !known {
            self.state = Reachability::Reachable;
            self.written = None;
            return true;
        }
        false
    }

    /// Maintenance of a family the node has no contact in: the wait starts over, so that it
    /// begins when the family is first used.
    pub(crate) fn idle(&mut self, now: Instant) {
        if let Reachability::Learning { since } = &mut self.state {
            *since = now;
        }
    }

    /// Maintenance: takes the node for unreachable once it waited `after` (zero: never),
    /// and tries again [`REPROBE`] later. Returns the new state when it changed.
    pub(crate) fn tick(&mut self, now: Instant, after: Duration) -> Option<Reachability> {
        self.rotate(now);
        let next = match self.state {
            Reachability::Learning { since }
                if !after.is_zero() && now.saturating_duration_since(since) >= after =>
            {
                Reachability::Unreachable { since: now }
            }
            Reachability::Unreachable { since }
                if now.saturating_duration_since(since) >= REPROBE =>
            {
                Reachability::Learning { since: now }
            }
            _ => return None,
        };
        self.state = next;
        Some(next)
    }

    fn rotate(&mut self, now: Instant) {
        if now.saturating_duration_since(self.rotated) < WINDOW / 2 {
            return;
        }
        self.rotated = now;
        if let Some(f) = &mut self.written {
            f[1] = f[0];
            f[0] = [0; BITS / 64];
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.written
            .as_ref()
            .map_or(0, |f| std::mem::size_of_val::<[[u64; BITS / 64]; 2]>(f))
    }
}

/// The filter bits of `addr`: three 11-bit slices of a keyed 64-bit mix.
fn bits(key: u64, addr: &SocketAddr) -> [usize; 3] {
    let a = match addr {
        SocketAddr::V4(a) => u64::from(a.ip().to_bits()) << 16 | u64::from(a.port()),
        SocketAddr::V6(a) => {
            let x = a.ip().to_bits();
            ((x >> 64) as u64).rotate_left(17) ^ (x as u64) ^ u64::from(a.port()) << 48
        }
    };
    let h = mix(key ^ mix(a));
    let mask = (BITS - 1) as u64;
    [
        (h & mask) as usize,
        ((h >> 11) & mask) as usize,
        ((h >> 22) & mask) as usize,
    ]
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::from_bits(0x1400_0000 + i), 6881))
    }

    #[test]
    fn a_stranger_proves_us_reachable_an_acquaintance_does_not() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let t = Instant::now();
        let mut r = Reach::new(t, 7);
        for i in 0..300 {
            r.on_sent(addr(i));
        }
        for i in 0..300 {
            assert!(!r.on_query(addr(i)), "we wrote to {i}");
        }
        assert!(r.heap_bytes() > 0);
        // Some strangers may pass for acquaintances (a Bloom filter's false positives),
        // but not many.
        let mut proved_at = None;
        for i in 1000..1100 {
            if r.on_query(addr(i)) {
                proved_at = Some(i);
                break;
            }
        }
        assert!(proved_at.is_some_and(|i| i < 1010), "{proved_at:?}");
        assert_eq!(r.state(), Reachability::Reachable);
        assert_eq!(r.heap_bytes(), 0, "the filters are dropped");
        assert_eq!(r.tick(t + REPROBE * 10, Duration::from_secs(60)), None);
    }

    #[test]
    fn a_write_counts_for_a_window_then_is_forgotten() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let t = Instant::now();
        let mut r = Reach::new(t, 7);
        let after = Duration::from_secs(3600);
        r.on_sent(addr(1));
        assert_eq!(r.tick(t + WINDOW / 2, after), None, "one turn-over");
        assert!(!r.on_query(addr(1)), "still in the previous filter");
        r.on_sent(addr(2));
        assert_eq!(r.tick(t + WINDOW, after), None, "two");
        assert!(!r.on_query(addr(2)));
        assert!(r.on_query(addr(1)), "forgotten");
    }

    #[test]
    fn unreachable_after_the_wait_then_tries_again() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let t = Instant::now();
        let after = Duration::from_secs(120);
        let mut r = Reach::new(t, 1);
        assert_eq!(r.tick(t + after / 2, after), None);
        assert!(!r.acts_read_only());
        assert_eq!(
            r.tick(t + after, after),
            Some(Reachability::Unreachable { since: t + after })
        );
        assert!(r.acts_read_only());
        assert_eq!(r.tick(t + after + REPROBE / 2, after), None);
        assert_eq!(
            r.tick(t + after + REPROBE, after),
            Some(Reachability::Learning {
                since: t + after + REPROBE
            })
        );
        assert!(!r.acts_read_only());
        // A family without contacts waits from when it is first used.
        let mut late = Reach::new(t, 1);
        late.idle(t + REPROBE);
        assert_eq!(late.tick(t + REPROBE + after / 2, after), None);
        assert!(late.tick(t + REPROBE + after, after).is_some());
        // Off: never unreachable.
        let mut off = Reach::new(t, 1);
        assert_eq!(off.tick(t + REPROBE * 4, Duration::ZERO), None);
        // Loopback and private queriers count as strangers.
        let mut local = Reach::new(t, 1);
        local.on_sent(SocketAddr::from(([127, 0, 0, 1], 1)));
        assert!(local.on_query(SocketAddr::from(([127, 0, 0, 1], 1))));
        let mut lan = Reach::new(t, 1);
        assert!(lan.on_query(SocketAddr::from(([192, 168, 1, 2], 1))));
    }
}
