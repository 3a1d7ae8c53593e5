//! Packet budgets: a token bucket per source address for what comes in, one global bucket for
//! what goes out.
//!
//! Both buckets are the GCRA form of a token bucket (the "virtual scheduling" algorithm): the
//! state is one `Instant`, the theoretical arrival time (TAT) of the next packet at the
//! sustained rate. A packet conforms when `TAT - now <= (burst - 1) / rate`; it then moves the
//! TAT forward by `1 / rate`. This is the same as a bucket of `burst` tokens refilled at `rate`
//! tokens a second, but it is exact (no floating point after the configuration is read), so
//! the results depend only on the inputs.
//!
//! # Inbound: [`InboundLimiter`]
//!
//! One bucket per source, for at most [`RateLimitConfig::tracked_ips_max`] sources. A source
//! is an IPv4 address, or an IPv6 /64 (one subscriber usually gets a whole /64; per-address
//! buckets would hand an attacker 2^64 of them). IPv4-mapped IPv6 addresses count as IPv4.
//!
//! When the map is full, a source that has not been seen lately is forgotten: the sources
//! sit in a ring swept by a CLOCK hand (the "second chance" approximation of least recently
//! seen). A packet from a tracked source sets its mark; on a new source the hand clears the
//! marks it passes and forgets the first unmarked source, so a source that keeps sending is
//! never forgotten while one-off sources (a scan, a spoofed flood) go first. Every packet is
//! O(1) amortized: one hash lookup for a known source, three (lookup, remove, insert) and a
//! short sweep for a new one. The index is a hash table of ring positions (4 bytes a slot)
//! with a per-process random seed, so spoofed sources cannot be chosen to collide; it is
//! never iterated, so results depend only on the inputs. A source idle for `burst / rate`
//! seconds has a full bucket again, which is what a forgotten source gets on its next packet,
//! so eviction loses nothing unless more than `tracked_ips_max` sources are all sending at
//! once; then the global [`OutgoingBudget`] still caps what the node sends back.
//!
//! The same fact keeps the map small: before a new source takes a new position, a second
//! cursor looks at the next two positions of the ring and reuses one whose bucket is full
//! again (its TAT is not after `now`). Forgetting such a source changes no decision, and the
//! ring stays about as large as the set of sources that sent within the last few
//! `1 / rate` intervals (tens of entries on a node of a million-node network) instead of
//! filling up to `tracked_ips_max` with sources that sent once.
//!
//! # Outgoing: [`OutgoingBudget`]
//!
//! One bucket for every datagram the node sends. The node asks [`OutgoingBudget::try_take`]
//! before a send and, when refused, sets a timer at [`OutgoingBudget::next_available`].

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use crate::routing::Stamp;

/// Default sustained rate of packets one source may send us, per second.
///
/// libtorrent ignores a source for 5 minutes once it sends more than 50 packets in 10 s
/// (5/s). We allow twice that sustained rate and no ban: an honest client that does many
/// lookups through us or announces many torrents we are close to stays served, and packets
/// over the rate are just dropped. A flood from one address gets at most 10 replies a second.
pub const PER_IP_RATE: f64 = 10.0;

/// Default burst from one source: 50 packets, libtorrent's per-10-second allowance, so a
/// client starting up (get_peers then announce_peer for many torrents) is not cut short.
pub const PER_IP_BURST: u32 = 50;

/// Default number of sources tracked (about 50 bytes each, ~0.5 MB).
pub const TRACKED_IPS_MAX: usize = 10_000;

/// Default sustained rate of datagrams the node sends, per second (anacrolix/dht's outbound
/// limit is 250/s): with replies under 1024 bytes (BEP 32) that is at most ~2 Mbit/s.
pub const OUTGOING_RATE: f64 = 250.0;

/// Default outgoing burst: one second at [`OUTGOING_RATE`], enough to start several lookups
/// (α requests each) and answer a burst of queries at once.
pub const OUTGOING_BURST: u32 = 250;

/// The longest interval between two packets a bucket can be configured for: a rate that is
/// zero, negative or NaN means one packet a day after the burst (effectively no refill).
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Packet budgets (all rates are packets per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Sustained packets a second accepted from one source ([`PER_IP_RATE`]).
    pub per_ip_rate: f64,
    /// Packets one source may send at once after being quiet ([`PER_IP_BURST`]); at least 1.
    pub per_ip_burst: u32,
    /// Sources tracked at once ([`TRACKED_IPS_MAX`]); the least recently seen is forgotten
    /// beyond it. Zero tracks nobody, which disables the per-source limit.
    pub tracked_ips_max: usize,
    /// Sustained datagrams a second the node sends ([`OUTGOING_RATE`]).
    pub outgoing_rate: f64,
    /// Datagrams the node may send at once after being quiet ([`OUTGOING_BURST`]); at least 1.
    pub outgoing_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_ip_rate: PER_IP_RATE,
            per_ip_burst: PER_IP_BURST,
            tracked_ips_max: TRACKED_IPS_MAX,
            outgoing_rate: OUTGOING_RATE,
            outgoing_burst: OUTGOING_BURST,
        }
    }
}

/// A GCRA bucket's parameters: the emission interval `1 / rate` and the tolerance
/// `(burst - 1) / rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gcra {
    interval: Duration,
    tolerance: Duration,
}

impl Gcra {
    fn new(rate: f64, burst: u32) -> Self {
        let interval = if rate > 0.0 {
            Duration::try_from_secs_f64(1.0 / rate).map_or(MAX_INTERVAL, |d| d.min(MAX_INTERVAL))
        } else {
            MAX_INTERVAL
        };
        let tolerance = interval.saturating_mul(burst.max(1) - 1);
        Self {
            interval,
            tolerance,
        }
    }

    /// Takes one packet's worth from the bucket whose TAT is `tat`, if it conforms.
    fn take(&self, tat: &mut Instant, now: Instant) -> bool {
        if tat.saturating_duration_since(now) > self.tolerance {
            return false;
        }
        let base = (*tat).max(now);
        *tat = base.checked_add(self.interval).unwrap_or(base);
        true
    }

    /// The first instant at or after `now` when a packet conforms.
    fn next_available(&self, tat: Instant, now: Instant) -> Instant {
        if tat.saturating_duration_since(now) <= self.tolerance {
            now
        } else {
            tat.checked_sub(self.tolerance).unwrap_or(now).max(now)
        }
    }
}

/// The bucket key of a source: the IPv4 address, or the /64 of an IPv6 address, as two words
/// of the IPv6 form. An IPv4 address is its IPv4-mapped form (`::ffff:a.b.c.d`, whose low
/// word is never zero) and an IPv6 /64 has a zero low word, so no two sources share a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SourceKey(u64, u64);

impl SourceKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(0, 0xffff_0000_0000 | u64::from(v4.to_bits())),
            IpAddr::V6(v6) => Self((v6.to_bits() >> 64) as u64, 0),
        }
    }
}

/// One tracked source: 32 bytes (40 with the TAT as an `Instant`).
#[derive(Debug, Clone, Copy)]
struct Source {
    key: SourceKey,
    /// The bucket's theoretical arrival time (exact: a stamp gives the same `Instant` back).
    tat: Stamp,
    /// Seen since the CLOCK hand last passed.
    seen: bool,
}

/// Per-source token buckets over a bounded map (see the module docs).
#[derive(Debug, Clone)]
pub struct InboundLimiter {
    gcra: Gcra,
    /// At most `u32::MAX`, so that a ring position fits the index.
    max: usize,
    /// The sources, in the order the CLOCK hand visits them; at most `max`.
    ring: Vec<Source>,
    /// Position in `ring` of each source, hashed by key. Point lookups only; never iterated.
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// The next ring position the hand looks at.
    hand: usize,
    /// The next ring position checked for a source whose bucket is full again (separate from
    /// the CLOCK hand, which only moves to evict).
    sweep: usize,
    evicted: u64,
}

impl InboundLimiter {
    /// An empty limiter with `per_ip_*` and `tracked_ips_max` from `config`.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            gcra: Gcra::new(config.per_ip_rate, config.per_ip_burst),
            max: config.tracked_ips_max.min(u32::MAX as usize),
            ring: Vec::new(),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            hand: 0,
            sweep: 0,
            evicted: 0,
        }
    }

    /// Counts a packet from `ip` at `now`; false means drop it (the source is over its rate).
    /// Dropped packets count as activity: a flooding source stays tracked.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let key = SourceKey::of(ip);
        let hash = self.hasher.hash_one(key);
        let ring = &mut self.ring;
        if let Some(&at) = self.index.find(hash, |&i| ring[i as usize].key == key) {
            let source = &mut ring[at as usize];
            source.seen = true;
            let mut tat = source.tat.get().unwrap_or(now);
            let allowed = self.gcra.take(&mut tat, now);
            source.tat = Stamp::new(tat);
            return allowed;
        }
        let mut tat = now;
        let allowed = self.gcra.take(&mut tat, now);
        if self.max == 0 {
            return allowed;
        }
        let source = Source {
            key,
            tat: Stamp::new(tat),
            seen: false,
        };
        let at = if let Some(at) = self.refilled_near_hand(now) {
            self.forget(at, source)
        } else if self.ring.len() < self.max {
            if self.ring.len() == self.ring.capacity() {
                // Grow by doubling, but never past the cap.
                let more = self.ring.len().max(16).min(self.max - self.ring.len());
                self.ring.reserve_exact(more);
            }
            self.ring.push(source);
            self.ring.len() - 1
        } else {
            self.evict_for(source)
        };
        let (ring, hasher) = (&self.ring, &self.hasher);
        self.index
            .insert_unique(hash, at as u32, |&i| hasher.hash_one(ring[i as usize].key));
        allowed
    }

    /// Forgets every source whose bucket is full again (TAT not after `now`) and gives their
    /// room back: a source seen for the first time gets a full bucket too, so no decision
    /// changes (the proptest against buckets never forgotten calls it between packets). The
    /// ring otherwise keeps the peak of a burst: [`allow`](Self::allow) reuses such places
    /// only two at a time. The node calls it at each maintenance tick; O(sources).
    pub fn forget_refilled(&mut self, now: Instant) {
        let now = Stamp::new(now);
        let before = self.ring.len();
        self.ring.retain(|s| s.tat > now);
        if self.ring.len() == before {
            return;
        }
        let (ring, hasher) = (&self.ring, &self.hasher);
        self.index.clear();
        for (at, source) in ring.iter().enumerate() {
            // At most `max` sources, which fits a u32.
            #[allow(clippy::cast_possible_truncation)]
            let at = at as u32;
            self.index
                .insert_unique(hasher.hash_one(source.key), at, |&i| {
                    hasher.hash_one(ring[i as usize].key)
                });
        }
        self.index
            .shrink_to(ring.len(), |&i| hasher.hash_one(ring[i as usize].key));
        self.ring.shrink_to(self.ring.len().max(16));
        self.hand = 0;
        self.sweep = 0;
    }

    /// A position at or just past the sweep whose source has a full bucket again (its TAT is
    /// not after `now`): tracking it changes nothing, since a source seen for the first time
    /// gets a full bucket too. Looks at two positions and moves the sweep past them, so that
    /// the ring stays about as large as the set of sources sending at once rather than growing
    /// to `tracked_ips_max` with one-off sources.
    fn refilled_near_hand(&mut self, now: Instant) -> Option<usize> {
        let len = self.ring.len();
        if len == 0 {
            return None;
        }
        for _ in 0..2.min(len) {
            let at = self.sweep % len;
            self.sweep = (at + 1) % len;
            if self.ring[at].tat <= Stamp::new(now) {
                return Some(at);
            }
        }
        None
    }

    /// Puts `source` at ring position `at`, forgetting the source there. Returns `at`.
    fn forget(&mut self, at: usize, source: Source) -> usize {
        let old = std::mem::replace(&mut self.ring[at], source).key;
        let hash = self.hasher.hash_one(old);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i as usize == at) {
            entry.remove();
        }
        at
    }

    /// The ring is full: moves the hand to the first source not seen since it last passed,
    /// clearing the marks on the way, and puts `source` in its place. Returns the position.
    fn evict_for(&mut self, source: Source) -> usize {
        let len = self.ring.len();
        // Terminates within one turn: the hand clears every mark it passes.
        while self.ring[self.hand].seen {
            self.ring[self.hand].seen = false;
            self.hand = (self.hand + 1) % len;
        }
        let at = self.hand;
        self.hand = (at + 1) % len;
        self.evicted += 1;
        self.forget(at, source)
    }

    /// Bytes the limiter holds on the heap (the ring and its index, by capacity).
    pub fn heap_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<Source>()
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
    }

    /// Sources tracked now (never more than `tracked_ips_max`).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Sources forgotten so far because the map was full (a metric).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// The node's global budget of outgoing datagrams (see the module docs).
#[derive(Debug, Clone)]
pub struct OutgoingBudget {
    gcra: Gcra,
    tat: Instant,
}

impl OutgoingBudget {
    /// A full bucket at `now`, with `outgoing_*` from `config`.
    pub fn new(config: &RateLimitConfig, now: Instant) -> Self {
        Self {
            gcra: Gcra::new(config.outgoing_rate, config.outgoing_burst),
            tat: now,
        }
    }

    /// Takes the budget for one datagram; false means wait until
    /// [`OutgoingBudget::next_available`].
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.gcra.take(&mut self.tat, now)
    }

    /// The first instant (`now` or later) at which [`OutgoingBudget::try_take`] succeeds.
    pub fn next_available(&self, now: Instant) -> Instant {
        self.gcra.next_available(self.tat, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// A fixed origin for virtual time; every other instant is derived from it.
    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_source_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Source>(), 32);
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    /// The ring and its index agree: every tracked source is found at its position, once.
    fn check(lim: &InboundLimiter) {
        assert!(lim.ring.len() <= lim.max);
        assert_eq!(lim.index.len(), lim.ring.len());
        let keys: std::collections::HashSet<SourceKey> = lim.ring.iter().map(|s| s.key).collect();
        assert_eq!(keys.len(), lim.ring.len(), "a source tracked twice");
        for (i, s) in lim.ring.iter().enumerate() {
            let hash = lim.hasher.hash_one(s.key);
            let found = lim.index.find(hash, |&j| lim.ring[j as usize].key == s.key);
            assert_eq!(found, Some(&(i as u32)));
        }
    }

    fn config(rate: f64, burst: u32, max: usize) -> RateLimitConfig {
        RateLimitConfig {
            per_ip_rate: rate,
            per_ip_burst: burst,
            tracked_ips_max: max,
            ..RateLimitConfig::default()
        }
    }

    #[test]
    fn flood_is_cut_to_rate_while_others_are_served() {
        let start = t0();
        let mut lim = InboundLimiter::new(&RateLimitConfig::default());
        let flooder = v4(0x0a00_0001);
        let honest = v4(0x0a00_0002);
        let mut flood_ok = 0;
        let mut honest_ok = 0;
        // 10 seconds: the flooder sends 1000 packets a second, the honest source 2 a second.
        for ms in 0..10_000u64 {
            let now = start + Duration::from_millis(ms);
            if lim.allow(flooder, now) {
                flood_ok += 1;
            }
            if ms % 500 == 0 && lim.allow(honest, now) {
                honest_ok += 1;
            }
        }
        // burst + rate × 10 s (the last refill may land on the edge).
        let bound = PER_IP_BURST as usize + 10 * PER_IP_RATE as usize;
        assert!(
            flood_ok <= bound && flood_ok >= bound - 1,
            "flood got {flood_ok}"
        );
        assert_eq!(honest_ok, 20);
    }

    #[test]
    fn burst_then_refill_in_virtual_time() {
        let start = t0();
        let mut lim = InboundLimiter::new(&config(10.0, 5, 10));
        let a = v4(1);
        for _ in 0..5 {
            assert!(lim.allow(a, start));
        }
        assert!(!lim.allow(a, start));
        assert!(!lim.allow(a, start + Duration::from_millis(99)));
        assert!(lim.allow(a, start + Duration::from_millis(100)));
        assert!(!lim.allow(a, start + Duration::from_millis(100)));
        // After burst / rate of silence the bucket is full again.
        let later = start + Duration::from_secs(2);
        for _ in 0..5 {
            assert!(lim.allow(a, later));
        }
        assert!(!lim.allow(a, later));
    }

    #[test]
    fn map_never_exceeds_cap_and_forgets_least_recently_seen() {
        let start = t0();
        let mut lim = InboundLimiter::new(&config(1.0, 1, 100));
        let keep = v4(7);
        assert!(lim.allow(keep, start));
        for i in 0..50_000u32 {
            let now = start + Duration::from_micros(u64::from(i));
            lim.allow(v4(0x1000_0000 + i), now);
            if i % 50 == 0 {
                // `keep` keeps talking, so it is never the least recently seen...
                assert!(!lim.allow(keep, now), "...and its bucket is remembered");
            }
            assert!(lim.len() <= 100);
        }
        assert_eq!(lim.len(), 100);
        assert_eq!(lim.evicted(), 50_001 - 100);
        check(&lim);
    }

    #[test]
    fn ipv6_shares_a_bucket_per_64() {
        let start = t0();
        let mut lim = InboundLimiter::new(&config(1.0, 2, 10));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(lim.allow(a, start));
        assert!(lim.allow(b, start));
        assert!(!lim.allow(a, start));
        assert!(lim.allow(other, start));
        // IPv4-mapped addresses are the IPv4 source.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert!(lim.allow(mapped, start));
        assert!(lim.allow(v4(0xc000_0201), start));
        assert!(!lim.allow(mapped, start));
        assert_eq!(lim.len(), 3);
        // The /64 of `::5` is not the IPv4 address 0.0.0.5.
        assert!(lim.allow("::5".parse().unwrap(), start));
        assert!(lim.allow("::5".parse().unwrap(), start));
        assert!(lim.allow(v4(5), start));
        assert_eq!(lim.len(), 5);
        check(&lim);
    }

    #[test]
    fn sources_with_full_buckets_again_are_forgotten_first() {
        let start = t0();
        let mut lim = InboundLimiter::new(&config(10.0, 5, 10_000));
        // 1000 sources, one packet each, 200 ms apart: each bucket is full again (TAT + 100
        // ms) before the next source arrives, so the ring never needs a second position.
        for i in 0..1000u32 {
            let now = start + Duration::from_millis(200 * u64::from(i));
            assert!(lim.allow(v4(0x1000_0000 + i), now));
            assert_eq!(lim.len(), 1);
            check(&lim);
        }
        assert_eq!(lim.evicted(), 0, "nothing was forgotten for lack of room");
        // Ten sources at once all need their own position.
        let now = start + Duration::from_secs(1000);
        for i in 0..10u32 {
            assert!(lim.allow(v4(0x2000_0000 + i), now));
        }
        assert!(lim.len() >= 10);
        check(&lim);
    }

    proptest! {
        /// With room for every source, the limiter decides exactly as one GCRA bucket per
        /// source that is never forgotten (forgetting a full bucket changes nothing).
        #[test]
        fn same_decisions_as_buckets_never_forgotten(
            events in prop::collection::vec((0u32..30, 0u64..400), 1..500),
        ) {
            let start = t0();
            let (rate, burst) = (4.0, 3u32);
            let mut lim = InboundLimiter::new(&config(rate, burst, 30));
            let gcra = Gcra::new(rate, burst);
            let mut model: std::collections::HashMap<u32, Instant> = Default::default();
            let mut now = start;
            for (src, dt_ms) in events {
                now += Duration::from_millis(dt_ms);
                let tat = model.entry(src).or_insert(now);
                let expected = gcra.take(tat, now);
                prop_assert_eq!(lim.allow(v4(src), now), expected);
                check(&lim);
                // Now and then, as a node's maintenance does.
                if dt_ms % 7 == 0 {
                    lim.forget_refilled(now);
                    check(&lim);
                }
            }
            prop_assert_eq!(lim.evicted(), 0);
        }
    }

    #[test]
    fn refilled_sources_are_forgotten_and_their_room_given_back() {
        let start = t0();
        let mut lim = InboundLimiter::new(&RateLimitConfig::default());
        let flooder = v4(0x0a00_0001);
        // One packet from each of 2,000 sources in the same instant, and a flood from one.
        for i in 0..2000 {
            assert!(lim.allow(v4(0x1400_0000 + i), start));
        }
        while lim.allow(flooder, start) {}
        assert_eq!(lim.len(), 2001);
        let peak = lim.heap_bytes();
        // A second later every one-packet source has a full bucket again; the flooder's is
        // still empty for seconds.
        let later = start + Duration::from_secs(1);
        lim.forget_refilled(later);
        check(&lim);
        assert_eq!(lim.len(), 1, "only the flooder is left");
        assert!(
            lim.heap_bytes() < peak / 20,
            "{} of {peak} bytes",
            lim.heap_bytes()
        );
        // Still held to its rate: a second's worth of packets, not a new burst.
        let mut allowed = 0;
        while lim.allow(flooder, later) {
            allowed += 1;
        }
        assert_eq!(allowed, 10);
        // Forgotten sources start again with a full bucket, as new ones do.
        for _ in 0..PER_IP_BURST {
            assert!(lim.allow(v4(0x1400_0000), later));
        }
        check(&lim);
    }

    #[test]
    fn zero_cap_disables_tracking() {
        let start = t0();
        let mut lim = InboundLimiter::new(&config(1.0, 1, 0));
        for _ in 0..10 {
            assert!(lim.allow(v4(1), start));
        }
        assert!(lim.is_empty());
    }

    #[test]
    fn outgoing_budget_and_next_available() {
        let start = t0();
        let cfg = RateLimitConfig {
            outgoing_rate: 4.0,
            outgoing_burst: 3,
            ..RateLimitConfig::default()
        };
        let mut out = OutgoingBudget::new(&cfg, start);
        assert_eq!(out.next_available(start), start);
        for _ in 0..3 {
            assert!(out.try_take(start));
        }
        assert!(!out.try_take(start));
        let at = out.next_available(start);
        assert_eq!(at, start + Duration::from_millis(250));
        assert!(!out.try_take(at - Duration::from_nanos(1)));
        assert!(out.try_take(at));
        assert!(!out.try_take(at));
    }

    #[test]
    fn zero_rate_does_not_panic() {
        let start = t0();
        let cfg = RateLimitConfig {
            outgoing_rate: 0.0,
            outgoing_burst: 0,
            ..RateLimitConfig::default()
        };
        let mut out = OutgoingBudget::new(&cfg, start);
        assert!(out.try_take(start), "burst is at least one");
        assert!(!out.try_take(start + Duration::from_secs(3600)));
        assert_eq!(out.next_available(start), start + MAX_INTERVAL);
        let nan = RateLimitConfig {
            outgoing_rate: f64::NAN,
            ..RateLimitConfig::default()
        };
        let _ = OutgoingBudget::new(&nan, start).next_available(start);
    }

    proptest! {
        /// Whatever the traffic, no source gets more than burst + rate × elapsed packets
        /// through, and the map stays within its cap.
        #[test]
        fn never_over_budget(events in prop::collection::vec((0u32..40, 0u64..300), 1..400)) {
            let start = t0();
            let (rate, burst, cap) = (5.0, 4u32, 16usize);
            let mut lim = InboundLimiter::new(&config(rate, burst, cap));
            // A reference limiter with room for every source, to compare against.
            let mut big = InboundLimiter::new(&config(rate, burst, 1000));
            let mut now = start;
            let mut allowed = [0u64; 40];
            for (src, dt_ms) in events {
                now += Duration::from_millis(dt_ms);
                let ok = big.allow(v4(src), now);
                if ok {
                    allowed[src as usize] += 1;
                }
                lim.allow(v4(src), now);
                prop_assert!(lim.len() <= cap);
                check(&lim);
            }
            let elapsed = now.duration_since(start).as_secs_f64();
            for n in allowed {
                prop_assert!(n as f64 <= f64::from(burst) + rate * elapsed + 1e-9);
            }
        }

        /// Waiting until next_available always succeeds, and not a nanosecond earlier.
        #[test]
        fn next_available_is_exact(rate in 0.5f64..2000.0, burst in 1u32..50, takes in 1usize..200) {
            let start = t0();
            let cfg = RateLimitConfig { outgoing_rate: rate, outgoing_burst: burst, ..RateLimitConfig::default() };
            let mut out = OutgoingBudget::new(&cfg, start);
            let mut now = start;
            for _ in 0..takes {
                let at = out.next_available(now);
                prop_assert!(at >= now);
                if at > now {
                    prop_assert!(!out.clone().try_take(at - Duration::from_nanos(1)));
                }
                prop_assert!(out.try_take(at));
                now = at;
            }
        }
    }
}
