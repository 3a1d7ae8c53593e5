//! The Kademlia routing table of one address family (BEP 5; BEP 32 keeps one table for IPv4
//! and one for IPv6, so the node owns two of these).
//!
//! # Layout
//!
//! A list of buckets. Bucket `i` holds the nodes whose ids share exactly `i` leading bits with
//! our own id; the last bucket holds every node closer than that. Only the last bucket (the
//! one that covers our id) splits, and only up to [`MAX_BUCKETS`]; it holds
//! [`RoutingConfig::bucket_size`] nodes. Every other bucket `i` holds
//! [`RoutingConfig::bucket_sizes_far`]`[i]` nodes when the config gives such a size
//! (libtorrent's extended routing table, [`BUCKET_SIZES_FAR`]: 128, 64, 32, 16 for the four
//! farthest buckets; not the default) and [`RoutingConfig::bucket_size`] (k = 8) otherwise.
//! Each bucket keeps its members' positions in id order too, so that
//! [`RoutingTable::closest`] looks only at the members around the target's place. Every
//! bucket keeps a replacement cache of at most
//! [`RoutingConfig::replacement_cache_size`] contacts that did not fit.
//!
//! # Membership
//!
//! Only a node that answered one of our queries ([`RoutingTable::on_response`]) becomes a
//! member. A node that only queried us ([`RoutingTable::on_query_from`]) is unverified: its
//! source address may be spoofed. It waits in the replacement cache and the table tells the
//! caller to ping it when it would be useful; its answer makes it a member.
//!
//! When a node answers and its bucket is full, in this order:
//!
//! 1. a bad member (BEP 5: "If any nodes in the bucket are known to have become bad, then one
//!    is replaced by the new node") is replaced ([`Insertion::ReplacedBad`]);
//! 2. the bucket splits if it covers our id. Splitting first (as libtorrent does) never loses a
//!    contact, whereas pinging a questionable node in our own bucket would evict one we could
//!    keep;
//! 3. with [`RoutingConfig::prefer_low_rtt`] (on by default), outside the near buckets, the
//!    node takes the place of the slowest member of its slot (the bits after the bucket's
//!    prefix) if it is faster, or of the slowest member of a crowded slot if its own is
//!    empty ([`Insertion::ReplacedSlower`]; the member waits in the replacement cache). The
//!    buckets between the wide far ones and the near ones then get their refresh lookup every
//!    [`RoutingConfig::bucket_refresh_interval`] though their members answer: its answers
//!    are the candidates measured for them;
//! 4. the least recently seen questionable member that was not pinged in the last
//!    [`RoutingConfig::node_ping_interval`] is returned for the caller to ping
//!    ([`Insertion::PingFirst`]); the new node waits in the replacement cache. If the stale
//!    node answers it stays; if it fails [`RoutingConfig::node_fail_limit`] times in a row it
//!    turns bad and the most recently verified replacement takes its place
//!    ([`FailureOutcome::Replaced`]);
//! 5. otherwise the new node goes to the replacement cache ([`Insertion::Cached`]).
//!
//! # Liveness
//!
//! A member is good for [`RoutingConfig::node_good_interval`] (15 min, BEP 5) after it
//! answered, then questionable; maintenance pings questionable members
//! ([`RoutingTable::stale_to_ping`]). Three defaults found with the simulator keep departed
//! nodes out of answers sooner (docs/SIMULATION.md, "Good nodes first in answers"):
//! members of the [`RoutingConfig::near_buckets`] buckets nearest our id, the ones handed out
//! most, are pinged once silent for [`RoutingConfig::near_ping_interval`] though still good;
//! [`RoutingTable::closest_for_answer`] gives good members with no failure since their last
//! answer before the others ([`RoutingConfig::answer_good_first`], BEP 5's "K closest good
//! nodes"); and a member that failed and then queries us is pinged, since only an answer
//! clears its failures ([`RoutingConfig::ping_failed_queriers`]).
//!
//! # Sybil limits
//!
//! One entry per IP address (members and cache together), unless
//! [`RoutingConfig::one_node_per_ip`] is off or the address is a loopback address and
//! [`RoutingConfig::one_node_per_ip_exempt_loopback`] is on. An id is held by one address
//! only. An address that answers with a new id loses its entry ([`Insertion::IdChanged`]);
//! the new id joins on its next answer, as in libtorrent, so that one packet cannot both evict
//! and replace. A query showing a new id for a known address changes nothing: the caller is
//! told to ping the address and the answer decides.
//!
//! # Memory
//!
//! A table is one family's ([`RoutingTable::of_family`]) and keeps each contact in a compact
//! record: 44 bytes for IPv4 (the id, the address and port in 6 bytes, three times as
//! 4-byte millisecond ticks from the table's own epoch, the RTT, the failures), 68 for IPv6
//! (the address whole, flow info and scope included). A table in a network of a million
//! nodes holds ~150 of them, most of a node's memory. [`Entry`] is the copy of a record the
//! table gives out; its instants are exact to the millisecond.
//!
//! # Determinism
//!
//! No clock, no randomness but the caller's RNG ([`RoutingTable::refresh_targets`]). The hash
//! maps are indexes only (point lookups, never iterated), so their per-process random seed
//! (which keeps hostile addresses from being chosen to collide) changes no result; every
//! result is computed by walking the buckets in order.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tracing::debug;
use xorro_wire::{ID_LEN, NodeId, NodeInfo};

use hashbrown::HashTable;
use smallvec::SmallVec;

/// BEP 5: "Each bucket can only hold K nodes, currently eight, before becoming 'full.'"
pub const BUCKET_SIZE: usize = 8;

/// Sizes of the four farthest buckets, farthest first: libtorrent's extended routing table
/// (`dht_extended_routing_table`, on by default) multiplies k by 16, 8, 4 and 2 there. Half of
/// all lookups start in the farthest bucket, so wide far buckets get a lookup closer on its
/// first hop. Not our default ([`RoutingConfig::bucket_sizes_far`] is empty): a wide bucket
/// is rarely full, so it keeps whoever answers, and tables of k-sized buckets chosen for
/// speed ([`RoutingConfig::prefer_low_rtt`]) make lookups faster than the hop it saves.
pub const BUCKET_SIZES_FAR: [usize; 4] = [128, 64, 32, 16];

/// Replacement cache size per bucket: k again, as libtorrent keeps (`m_bucket_size`
/// replacements per bucket).
pub const REPLACEMENT_CACHE_SIZE: usize = 8;

/// BEP 5: "A good node is a node has responded to one of our queries within the last 15
/// minutes [...] After 15 minutes of inactivity, a node becomes questionable."
pub const NODE_GOOD_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// BEP 5: "Nodes become bad when they fail to respond to multiple queries in a row" and "If a
/// node in the bucket fails to respond to a ping, it is suggested to try once more before
/// discarding the node": two consecutive failures. (libtorrent evicts after one failure when
/// a replacement is waiting; jech/dht after three.)
pub const NODE_FAIL_LIMIT: u8 = 2;

/// How long to wait before pinging the same node again (our choice: a request times out in
/// seconds, so a minute leaves room for the answer and bounds pings to one a minute a node).
pub const NODE_PING_INTERVAL: Duration = Duration::from_secs(60);

/// Buckets near our id (the last ones) whose members are pinged once silent for
/// [`NEAR_PING_INTERVAL`] (our choice). A node is asked for targets near its id, so it hands
/// out the members of these buckets far more often than the others: a departed one is handed
/// out as alive until a query to it fails. Three buckets hold the ~k to 3k nodes nearest to
/// us. Simulated at 10^4 nodes with churn and 1 % loss (with
/// [`RoutingConfig::answer_good_first`] and [`RoutingConfig::ping_failed_queriers`]), seeds 1
/// and 2: median lookup 616 / 635 → 513 / 516 ms, true 8 closest 95.95 / 96.35 → 97.05 /
/// 96.90 %, 9.1 more pings a node a minute (3.1 → 12.3; near pings are at most 3k a
/// minute). Alone it gives 60-70 % of the median's gain and no exactness; with a two-minute
/// interval exactness fell just below the baseline on both seeds (see docs/SIMULATION.md).
pub const NEAR_BUCKETS: usize = 3;

/// How long a member of a near bucket may stay silent before maintenance pings it (our
/// choice; [`NEAR_BUCKETS`]).
pub const NEAR_PING_INTERVAL: Duration = Duration::from_secs(60);

/// How long an unverified contact that queried us keeps its place in a full replacement cache
/// before a newer unverified querier may take it (our choice). A busy node hears from new
/// nodes hundreds of times a second: without it each of them would turn a cache entry over
/// (and a flood of spoofed sources would flush the cache); with it a cache turns over at most
/// one unverified entry per bucket a minute. Contacts that answered us always displace
/// unverified ones.
pub const CACHE_TURNOVER: Duration = Duration::from_secs(60);

/// BEP 5: "Buckets that have not been changed in 15 minutes should be 'refreshed.'"
pub const BUCKET_REFRESH_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The most members a bucket holds, whatever the config asks (positions in a bucket are
/// 16-bit).
pub const BUCKET_CAPACITY_MAX: usize = 1 << 16;

/// BEP 5: "The routing table covers the entire node ID space from 0 to 2^160": with one bucket
/// per shared-prefix length, at most 160 buckets.
pub const MAX_BUCKETS: usize = ID_LEN * 8;

/// Routing table settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Nodes per bucket, k ([`BUCKET_SIZE`]); at least 1.
    pub bucket_size: usize,
    /// Sizes of the farthest buckets, farthest first; buckets past the list hold
    /// `bucket_size`. Empty by default: every bucket holds k. Each size is at least 1.
    /// [`BUCKET_SIZES_FAR`] gives libtorrent's wide far buckets, which save a hop while
    /// tables are young but, rarely full, keep whoever answers; with `prefer_low_rtt` k-sized
    /// buckets converge to fast members (docs/SIMULATION.md, "Fast tables by default").
    pub bucket_sizes_far: Vec<usize>,
    /// A bucket with no answer from its nodes and no lookup into it for this long gets a
    /// refresh target ([`BUCKET_REFRESH_INTERVAL`]).
    pub bucket_refresh_interval: Duration,
    /// Contacts waiting per bucket ([`REPLACEMENT_CACHE_SIZE`]); zero disables the cache, and
    /// with it the way the table takes in contacts it was told of (they wait there until
    /// they answer a ping): only nodes that answer our queries become members, and tables
    /// stay a few buckets deep (docs/SIMULATION.md, "Scale").
    pub replacement_cache_size: usize,
    /// Least time an unverified querier keeps its place in a full replacement cache before
    /// another unverified querier may take it ([`CACHE_TURNOVER`]).
    pub cache_turnover: Duration,
    /// A node is good for this long after it answered us ([`NODE_GOOD_INTERVAL`]).
    pub node_good_interval: Duration,
    /// Members of the last `near_buckets` buckets (the ones closest to our id, which we hand
    /// out in answers to queries for targets near us; wide buckets excepted) not heard from for
    /// `near_ping_interval` are pinged by maintenance (returned by
    /// [`RoutingTable::stale_to_ping`]) though still good ([`NEAR_BUCKETS`]; 0: none).
    pub near_buckets: usize,
    /// See `near_buckets` ([`NEAR_PING_INTERVAL`]).
    pub near_ping_interval: Duration,
    /// [`RoutingTable::closest_for_answer`] gives the closest good members (good, and no
    /// failure since their last answer) and only then, when fewer than the count asked for
    /// are good, the closest questionable ones (default on). Off, it gives the closest
    /// members that are not bad, as [`RoutingTable::closest`] does.
    pub answer_good_first: bool,
    /// A member that failed a query since its last answer (bad ones included) and then
    /// queries us is pinged ([`QueryOutcome::PingToVerify`], at most once a
    /// `node_ping_interval`): it is evidently back, and only an answer clears its failures
    /// (default on). Off, its query only updates its last query time, and a bad member is
    /// never asked again.
    pub ping_failed_queriers: bool,
    /// A member handed out in an answer ([`RoutingTable::closest_for_answer`]) that has been
    /// silent for this long, and not pinged for as long, is pinged
    /// ([`RoutingTable::due_after_handout`]): a departed member is then found out by the
    /// nodes that hand it out, soon after they first do, rather than at its next scheduled
    /// ping. Zero: off (the default). Simulated at 10^4 nodes with churn (docs/SIMULATION.md,
    /// "Pings of members handed out"): 30 s cuts the median lookup by 22–36 ms for 47 % more
    /// bytes, 10 s by 35–46 ms for 70 % more; exactness does not move.
    pub handout_ping_after: Duration,
    /// Consecutive failures after which a node is bad ([`NODE_FAIL_LIMIT`]); at least 1.
    pub node_fail_limit: u8,
    /// Least time between two pings of one node ([`NODE_PING_INTERVAL`]).
    pub node_ping_interval: Duration,
    /// When a node answers and its bucket is full of members that are not bad, it may take a
    /// member's place (which then waits in the replacement cache), as libtorrent's
    /// `replace_node_impl` does: the bucket's range is cut into slots by the bits that follow
    /// its prefix (as many slots as the largest power of two within its size), and the
    /// newcomer replaces the slowest member of its slot if it is faster, or, when its slot
    /// is empty, the slowest member of a slot that holds two or more. So a full bucket's
    /// members spread over its range (a lookup through it gets that many bits closer) and
    /// are the fastest the node has heard from (proximity neighbour selection). The
    /// `near_buckets` keep their members whatever their speed (a node slow for everyone
    /// must stay findable by its neighbours). The buckets between the wide far ones and the
    /// near ones are refreshed every `bucket_refresh_interval` though their members answer:
    /// a bucket at depth d hears from its range only through the lookups that pass it, and
    /// its refresh, aimed at its empty or slowest slot, brings it candidates to measure.
    /// Wide far buckets are rarely full, so they keep whoever answers: the tables converge
    /// with `bucket_sizes_far` empty, as by default (members 41–44 ms away after two
    /// simulated hours at 10^4 against 100 ms for random ones, lookups ~90 ms faster at the
    /// median, a third fewer datagrams once converged). On by default since 6 Dec 2026: see
    /// docs/SIMULATION.md, "Fast tables by default".
    pub prefer_low_rtt: bool,
    /// Keep one entry per IP address (default on): a second port of a known IP is refused.
    pub one_node_per_ip: bool,
    /// Exempt loopback addresses from `one_node_per_ip` (default on), so that local test
    /// networks on 127.0.0.1 with many ports work.
    pub one_node_per_ip_exempt_loopback: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            bucket_size: BUCKET_SIZE,
            bucket_sizes_far: Vec::new(),
            bucket_refresh_interval: BUCKET_REFRESH_INTERVAL,
            replacement_cache_size: REPLACEMENT_CACHE_SIZE,
            cache_turnover: CACHE_TURNOVER,
            node_good_interval: NODE_GOOD_INTERVAL,
            near_buckets: NEAR_BUCKETS,
            near_ping_interval: NEAR_PING_INTERVAL,
            answer_good_first: true,
            ping_failed_queriers: true,
            handout_ping_after: Duration::ZERO,
            node_fail_limit: NODE_FAIL_LIMIT,
            node_ping_interval: NODE_PING_INTERVAL,
            prefer_low_rtt: true,
            one_node_per_ip: true,
            one_node_per_ip_exempt_loopback: true,
        }
    }
}

/// A node's standing, per BEP 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Answered one of our queries within `node_good_interval`, or answered once and queried
    /// us within `node_good_interval`.
    Good,
    /// Neither good nor bad: silent for `node_good_interval`, or never heard from since it was
    /// restored.
    Questionable,
    /// Failed `node_fail_limit` queries in a row.
    Bad,
}

/// What the table knows about one contact, as [`RoutingTable::iter`] and
/// [`RoutingTable::get`] show it (a copy: the table keeps a compact record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    node: NodeInfo,
    last_response: Option<Instant>,
    last_query_from: Option<Instant>,
    pinged_at: Option<Instant>,
    rtt: Option<Duration>,
    failures: u8,
}

impl Entry {
    /// The contact.
    pub fn node(&self) -> NodeInfo {
        self.node
    }

    /// The contact's address.
    pub fn addr(&self) -> SocketAddr {
        self.node.addr
    }

    /// When it last answered one of our queries (to the millisecond).
    pub fn last_response(&self) -> Option<Instant> {
        self.last_response
    }

    /// When it last sent us a query (to the millisecond).
    pub fn last_query_from(&self) -> Option<Instant> {
        self.last_query_from
    }

    /// Queries it failed to answer since its last answer.
    pub fn failures(&self) -> u8 {
        self.failures
    }

    /// Smoothed round-trip time (EWMA with gain 1/8, as TCP's SRTT).
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// When the table last asked the caller to ping it (to the millisecond).
    pub fn pinged_at(&self) -> Option<Instant> {
        self.pinged_at
    }
}

/// How a table of one address family keeps its contacts' addresses in their records.
trait Packed: Copy + Eq + std::fmt::Debug + 'static {
    /// A record that [`Table::select`] uses to fill unused places.
    const PLACEHOLDER: &'static Record<Self>;

    /// The packed form of `addr`, or `None` when it is of the other family.
    fn pack(addr: &SocketAddr) -> Option<Self>;

    fn unpack(self) -> SocketAddr;
}

/// An IPv4 address and port, big-endian, in 6 bytes (a `SocketAddr` takes 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct V4([u8; 6]);

impl Packed for V4 {
    const PLACEHOLDER: &'static Record<Self> = &Record::placeholder(V4([0; 6]));

    fn pack(addr: &SocketAddr) -> Option<Self> {
        match addr {
            SocketAddr::V4(a) => {
                let ([a, b, c, d], [p0, p1]) = (a.ip().octets(), a.port().to_be_bytes());
                Some(V4([a, b, c, d, p0, p1]))
            }
            SocketAddr::V6(_) => None,
        }
    }

    fn unpack(self) -> SocketAddr {
        let [a, b, c, d, p0, p1] = self.0;
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(a, b, c, d),
            u16::from_be_bytes([p0, p1]),
        ))
    }
}

/// An IPv6 table keeps the address whole (flow info and scope too, so that a link-local
/// contact stays reachable).
impl Packed for SocketAddrV6 {
    const PLACEHOLDER: &'static Record<Self> =
        &Record::placeholder(SocketAddrV6::new(std::net::Ipv6Addr::UNSPECIFIED, 0, 0, 0));

    fn pack(addr: &SocketAddr) -> Option<Self> {
        match addr {
            SocketAddr::V6(a) => Some(*a),
            SocketAddr::V4(_) => None,
        }
    }

    fn unpack(self) -> SocketAddr {
        SocketAddr::V6(self)
    }
}

/// The table's record of one contact: 44 bytes for IPv4 (a table of a million-node network
/// holds ~150 of them, most of a node's memory), 68 for IPv6. The times are [`Tick`]s, the
/// RTT nanoseconds in a `u32`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record<A> {
    id: NodeId,
    addr: A,
    last_response: Tick,
    last_query_from: Tick,
    pinged_at: Tick,
    rtt: Rtt,
    failures: u8,
}

/// An optional instant in 4 bytes: 1 + whole milliseconds since the table's epoch, 0 for
/// none; orders as `Option<Instant>` does (none first). A table's epoch lies a day before the
/// first instant it was given ([`EPOCH_MARGIN`], so that contacts restored as having answered
/// minutes before still count as such) and moves forward to [`REBASE_KEEP`] before now once
/// the clock reaches [`REBASE_AT`] (~25 days; in one step, however long the table was left
/// alone): every tick then moves back by as much, and the ticks
/// older than the new epoch (~12 days before now, far past every interval the table uses)
/// become its first millisecond. A table runs for ever; its instants are exact to the
/// millisecond.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Tick(u32);

/// See [`Tick`].
const EPOCH_MARGIN: Duration = Duration::from_secs(24 * 60 * 60);
/// See [`Tick`].
const REBASE_AT: u32 = 1 << 31;
/// See [`Tick`].
const REBASE_KEEP: u32 = 1 << 30;

impl Tick {
    const NONE: Tick = Tick(0);

    /// The tick of `t` for a table whose epoch is `epoch` (the first tick for instants
    /// before it; saturates ~50 days after it, which a rebase keeps from happening).
    fn at(epoch: Instant, t: Instant) -> Tick {
        let ms = t.checked_duration_since(epoch).map_or(0, |d| d.as_millis());
        Tick(u32::try_from(ms).map_or(u32::MAX, |ms| ms.saturating_add(1)))
    }

    /// The instant this tick stands for.
    fn instant(self, epoch: Instant) -> Option<Instant> {
        self.is_some()
            .then(|| epoch + Duration::from_millis(u64::from(self.0 - 1)))
    }

    fn is_some(self) -> bool {
        self != Self::NONE
    }

    /// The same instant after the epoch moved forward by `shift` ticks.
    fn shifted(self, shift: u32) -> Tick {
        if self.is_some() {
            Tick(self.0.saturating_sub(shift).max(1))
        } else {
            self
        }
    }
}

/// An optional instant in 8 bytes: signed nanoseconds from a process-wide anchor (the first
/// instant a stamp was made of), `i64::MIN` for none. Exact: the same `Instant` comes back
/// whatever the anchor, for instants within 292 years of it (beyond, they saturate), so no
/// result depends on the anchor. Orders as `Option<Instant>` does (none first). A table's
/// epoch is one; the inbound rate limiter keeps its times so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(i64);

static ANCHOR: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

impl Default for Stamp {
    fn default() -> Self {
        Self::NONE
    }
}

impl Stamp {
    const NONE: Stamp = Stamp(i64::MIN);

    pub(crate) fn new(t: Instant) -> Self {
        let anchor = *ANCHOR.get_or_init(|| t);
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Stamp(if t >= anchor {
            nanos(t.duration_since(anchor))
        } else {
            -nanos(anchor.duration_since(t))
        })
    }

    pub(crate) fn get(self) -> Option<Instant> {
        if self == Self::NONE {
            return None;
        }
        let anchor = *ANCHOR
            .get()
            .expect("a stamp other than NONE was made from an instant, which set the anchor");
        let d = Duration::from_nanos(self.0.unsigned_abs());
        Some(if self.0 >= 0 {
            anchor.checked_add(d).unwrap_or(anchor)
        } else {
            anchor.checked_sub(d).unwrap_or(anchor)
        })
    }
}

/// An optional RTT in 4 bytes: nanoseconds, `u32::MAX` for none. RTTs saturate at ~4.29 s,
/// which changes no soft timeout unless `lookup_soft_timeout` is set above 8.6 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rtt(u32);

impl Rtt {
    const NONE: Rtt = Rtt(u32::MAX);

    fn get(self) -> Option<Duration> {
        (self != Self::NONE).then(|| Duration::from_nanos(u64::from(self.0)))
    }
}

impl From<Option<Duration>> for Rtt {
    fn from(d: Option<Duration>) -> Self {
        d.map_or(Self::NONE, |d| {
            Rtt(u32::try_from(d.as_nanos()).map_or(u32::MAX - 1, |n| n.min(u32::MAX - 1)))
        })
    }
}

impl<A: Packed> Record<A> {
    /// A record of `node`, or `None` when its address is of the other family.
    fn new(node: NodeInfo) -> Option<Self> {
        Some(Self {
            id: node.id,
            ..Self::placeholder(A::pack(&node.addr)?)
        })
    }

    const fn placeholder(addr: A) -> Self {
        Self {
            id: NodeId::ZERO,
            addr,
            last_response: Tick::NONE,
            last_query_from: Tick::NONE,
            pinged_at: Tick::NONE,
            rtt: Rtt::NONE,
            failures: 0,
        }
    }

    fn node(&self) -> NodeInfo {
        NodeInfo {
            id: self.id,
            addr: self.addr(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.addr.unpack()
    }

    fn verified(&self) -> bool {
        self.last_response.is_some()
    }

    /// How slow a member is, for [`RoutingConfig::prefer_low_rtt`]: more failures first,
    /// then an unknown RTT, then a higher one.
    fn slowness(&self) -> (u8, Duration) {
        (self.failures, self.rtt.get().unwrap_or(Duration::MAX))
    }

    /// When it last queried us or we last pinged it: how fresh an unverified contact is.
    fn last_heard(&self) -> Tick {
        self.last_query_from.max(self.pinged_at)
    }

    fn last_seen(&self) -> Tick {
        self.last_response.max(self.last_query_from)
    }

    fn ping_due(&self, now: Tick, interval: Duration) -> bool {
        !Recent::new(now, interval).holds(self.pinged_at)
    }

    fn answered(&mut self, rtt: Option<Duration>, now: Tick) {
        self.last_response = now;
        self.failures = 0;
        self.pinged_at = Tick::NONE;
        self.rtt = Rtt::from(match (self.rtt.get(), rtt) {
            (old, None) => old,
            (None, Some(sample)) => Some(sample),
            (Some(old), Some(sample)) => Some((old - old / 8).saturating_add(sample / 8)),
        });
    }

    /// Every time in the record, after the epoch moved forward by `shift` ticks.
    fn shift(&mut self, shift: u32) {
        for t in [
            &mut self.last_response,
            &mut self.last_query_from,
            &mut self.pinged_at,
        ] {
            *t = t.shifted(shift);
        }
    }
}

/// Why a contact was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// It claims our own id.
    OwnId,
    /// Another address holds this id.
    IdInUse,
    /// Another port of this IP address is in the table (one node per IP).
    IpInUse,
    /// The address is in the table under another id, and an unverified message does not
    /// change that.
    AddressInUse,
    /// Its bucket is full, and so is the replacement cache (or the cache is disabled).
    BucketFull,
    /// The address is of the other family (a node keeps one table for each).
    WrongFamily,
}

/// What [`RoutingTable::on_response`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Insertion {
    /// The node joined its bucket.
    Added,
    /// The node was a member; its record was refreshed.
    Updated,
    /// The node took the place of a bad member, which left the table.
    ReplacedBad {
        /// The bad node.
        evicted: NodeInfo,
    },
    /// The bucket is full and `stale` is questionable: ping it. The new node waits in the
    /// replacement cache and takes `stale`'s place if `stale` turns bad.
    PingFirst {
        /// The member to ping.
        stale: NodeInfo,
    },
    /// The node took the place of a slower member ([`RoutingConfig::prefer_low_rtt`]), which
    /// now waits in the replacement cache (or left the table when the cache had no room).
    ReplacedSlower {
        /// The member that gave up its place.
        moved: NodeInfo,
    },
    /// The bucket is full of good nodes (or of nodes already being pinged): the node waits in
    /// the replacement cache.
    Cached,
    /// The address answered with a new id: the entry (a member or a verified waiting contact)
    /// under the old id was removed. The new id is not recorded yet; its next answer adds it.
    /// (An unverified waiting contact under the old id is simply replaced, with the outcome
    /// of the insertion.)
    IdChanged {
        /// The entry that was removed.
        old: NodeInfo,
    },
    /// Not recorded.
    Rejected(RejectReason),
}

/// What [`RoutingTable::on_query_from`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryOutcome {
    /// A member: its last query time was updated.
    Member,
    /// Ping this address: its answer ([`RoutingTable::on_response`]) would be useful, either to
    /// make a waiting contact a member or to learn which id really answers there.
    PingToVerify,
    /// The contact waits in the replacement cache; no ping is needed now.
    Cached,
    /// Not recorded.
    Ignored(RejectReason),
}

/// What [`RoutingTable::on_failure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureOutcome {
    /// No entry at that address (with that id).
    Unknown,
    /// The failure was counted; the node is not bad yet.
    Counted {
        /// Consecutive failures so far.
        failures: u8,
    },
    /// The member is bad and stays until a new node takes its place (no verified replacement
    /// is waiting).
    TurnedBad,
    /// The member turned bad and left; a verified replacement took its place.
    Replaced {
        /// The node that left.
        bad: NodeInfo,
        /// The replacement.
        by: NodeInfo,
    },
    /// A waiting contact turned bad and left the replacement cache.
    Dropped,
}

/// A contact as saved to disk by [`RoutingTable::snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SavedContact {
    /// The contact.
    pub node: NodeInfo,
    /// Its smoothed round-trip time.
    pub rtt: Option<Duration>,
    /// How long before the snapshot it last answered one of our queries (none: never, or
    /// not known). A contact restored while this is within
    /// [`RoutingConfig::node_good_interval`] comes back good, as it was: a warm restart
    /// soon after the snapshot need not ping it again.
    pub answered_ago: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Bucket<A> {
    /// Members, in the order they joined.
    nodes: Vec<Record<A>>,
    /// Positions in `nodes`, in id order (so that the members closest to a target are found
    /// around the target's place, without a look at every member of a wide bucket). Two
    /// bytes a member: a bucket holds at most [`BUCKET_CAPACITY_MAX`]. Inline up to k
    /// members, on the heap beyond (wide buckets).
    by_id: SmallVec<[u16; BUCKET_SIZE]>,
    /// Replacement cache, least recently added first (a few entries: a `Vec`, whose
    /// removals from the front move a few hundred bytes at most, is 8 bytes smaller than a
    /// `VecDeque`, in every bucket).
    cache: Vec<Record<A>>,
    /// Last answer from a member or lookup into the range; none until then.
    refreshed: Tick,
    /// False only when no member is bad: set when a member fails or joins with failures,
    /// cleared by a pass that finds no bad member (so that the question "does a full bucket
    /// hold a bad node?", asked for every query from an unknown node, rarely needs a pass).
    may_have_bad: bool,
}

impl<A> Default for Bucket<A> {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            by_id: SmallVec::new(),
            cache: Vec::new(),
            refreshed: Tick::NONE,
            may_have_bad: false,
        }
    }
}

impl<A: Packed> Bucket<A> {
    /// A bucket of these members (in join order).
    fn with_nodes(nodes: Vec<Record<A>>, cache: Vec<Record<A>>, refreshed: Tick) -> Self {
        let mut bucket = Self {
            nodes,
            by_id: SmallVec::new(),
            cache,
            refreshed,
            may_have_bad: false,
        };
        bucket.reorder();
        bucket
    }

    /// Rebuilds `by_id` from `nodes`.
    fn reorder(&mut self) {
        let nodes = &self.nodes;
        self.may_have_bad = nodes.iter().any(|e| e.failures > 0);
        self.by_id = (0..nodes.len())
            .map(|i| u16::try_from(i).expect("a bucket holds at most BUCKET_CAPACITY_MAX"))
            .collect();
        self.by_id
            .sort_unstable_by_key(|&i| DistanceKey::of(&nodes[usize::from(i)].id));
    }

    /// Where a member with this id goes in `by_id`.
    fn id_place(&self, id: &NodeId) -> usize {
        let key = DistanceKey::of(id);
        self.by_id
            .partition_point(|&i| DistanceKey::of(&self.nodes[usize::from(i)].id) < key)
    }

    /// Adds a member (last in join order).
    fn push_member(&mut self, entry: Record<A>) {
        self.may_have_bad |= entry.failures > 0;
        let at = self.id_place(&entry.id);
        let i =
            u16::try_from(self.nodes.len()).expect("a bucket holds at most BUCKET_CAPACITY_MAX");
        self.by_id.insert(at, i);
        if self.nodes.len() == self.nodes.capacity() {
            // Double up to k, then grow by k: a wide bucket that stops at 70 members does not
            // keep room for 128 (tables are most of a node's memory).
            let more = self.nodes.len().clamp(4, BUCKET_SIZE);
            self.nodes.reserve_exact(more);
        }
        self.nodes.push(entry);
    }

    /// Removes member `i`.
    fn remove_member(&mut self, i: usize) -> Record<A> {
        let at = self.id_place(&self.nodes[i].id);
        self.by_id.remove(at);
        for p in &mut self.by_id {
            if usize::from(*p) > i {
                *p -= 1;
            }
        }
        self.nodes.remove(i)
    }

    /// Puts `entry` in member `i`'s place in join order; returns the member it replaced.
    fn replace_member(&mut self, i: usize, entry: Record<A>) -> Record<A> {
        self.may_have_bad |= entry.failures > 0;
        let at = self.id_place(&self.nodes[i].id);
        self.by_id.remove(at);
        let old = std::mem::replace(&mut self.nodes[i], entry);
        let at = self.id_place(&self.nodes[i].id);
        self.by_id.insert(
            at,
            u16::try_from(i).expect("a bucket holds at most BUCKET_CAPACITY_MAX"),
        );
        old
    }
}

/// The index of every entry (members and cache) by address: address -> bits its id shares
/// with ours (which gives the bucket, splits or not: bucket `min(shared, buckets - 1)`). It
/// also finds the entry holding an IP address for the one-node-per-IP rule.
///
/// An IPv4 entry is one word (IP, port and shared bits packed) in a sorted vector: point
/// lookups by binary search, and the holder of an IP is the one entry at the start of the
/// IP's range. A hash table took ~19 bytes an entry instead of 8 (hashbrown's control byte,
/// its load factor and the power-of-two rounding), which is a tenth of a node's memory in a
/// large network; a table holds a few hundred entries, so an insertion moves at most a few
/// kilobytes, and a lookup touches a handful of cache lines.
///
/// IPv6 entries are rare and larger, and stay in a hash table with a per-process random seed
/// (so that hostile addresses cannot be chosen to collide), point lookups only, never
/// iterated (results do not depend on the seed). Entries subject to the IP rule are hashed by
/// their canonical IP alone, so that the holder of an IP is found with the same probe as an
/// address; the others (the rule is off, or exempt loopback) by the whole address.
/// Subjection depends only on the IP and the configuration, so an address is always hashed
/// the same way.
#[derive(Debug, Clone, Default)]
struct AddrIndex {
    /// `SocketAddr::V4` entries, `ip << 32 | port << 16 | shared`, in ascending order: one
    /// word per address.
    v4: Vec<u64>,
    /// `SocketAddr::V6` entries (IPv6, or IPv4-mapped).
    v6: HashTable<(SocketAddrV6, u8)>,
    keying: Keying,
}

/// How an address is hashed in [`AddrIndex`].
#[derive(Debug, Clone, Default)]
struct Keying {
    hasher: foldhash::fast::RandomState,
    one_node_per_ip: bool,
    exempt_loopback: bool,
}

/// Least growth of the IPv4 index (entries).
const V4_INDEX_STEP: usize = 8;

fn pack_v4(a: &SocketAddrV4, shared: u8) -> u64 {
    (u64::from(a.ip().to_bits()) << 32) | (u64::from(a.port()) << 16) | u64::from(shared)
}

fn unpack_v4(w: u64) -> SocketAddrV4 {
    // The high word is the IP, the next 16 bits the port: the casts take exactly those.
    SocketAddrV4::new(Ipv4Addr::from_bits((w >> 32) as u32), (w >> 16) as u16)
}

impl Keying {
    /// The IP the one-node-per-IP rule keys `addr` by, if the rule applies to it.
    fn ip_key(&self, addr: &SocketAddr) -> Option<IpAddr> {
        if !self.one_node_per_ip {
            return None;
        }
        let ip = addr.ip().to_canonical();
        if self.exempt_loopback && ip.is_loopback() {
            return None;
        }
        Some(ip)
    }

    fn hash(&self, addr: &SocketAddr) -> u64 {
        match self.ip_key(addr) {
            Some(ip) => self.hasher.hash_one(ip),
            None => self.hasher.hash_one(addr),
        }
    }
}

impl AddrIndex {
    fn new(config: &RoutingConfig) -> Self {
        Self {
            keying: Keying {
                hasher: foldhash::fast::RandomState::default(),
                one_node_per_ip: config.one_node_per_ip,
                exempt_loopback: config.one_node_per_ip_exempt_loopback,
            },
            ..Self::default()
        }
    }

    fn ip_key(&self, addr: &SocketAddr) -> Option<IpAddr> {
        self.keying.ip_key(addr)
    }

    /// Where `a` is in `v4` (`Ok`), or where it would go (`Err`). The shared bits, the low
    /// byte, take no part: an address is in the index at most once.
    fn v4_position(&self, a: &SocketAddrV4) -> Result<usize, usize> {
        let key = pack_v4(a, 0) >> 8;
        self.v4.binary_search_by(|&w| (w >> 8).cmp(&key))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
    }

    /// The shared bits recorded for `addr`.
    fn get(&self, addr: &SocketAddr) -> Option<u8> {
        match addr {
            SocketAddr::V4(a) => self.v4_position(a).ok().map(|i| (self.v4[i] & 0xff) as u8),
            SocketAddr::V6(a) => self
                .v6
                .find(self.keying.hash(addr), |(k, _)| k == a)
                .map(|&(_, s)| s),
        }
    }

    fn contains(&self, addr: &SocketAddr) -> bool {
        self.get(addr).is_some()
    }

    /// Records `addr` (not in the index) with `shared`.
    fn insert(&mut self, addr: &SocketAddr, shared: u8) {
        let keying = &self.keying;
        match addr {
            SocketAddr::V4(a) => {
                let at = self.v4_position(a).unwrap_or_else(|at| at);
                if self.v4.len() == self.v4.capacity() {
                    // A quarter more at a time, not twice as much: the index of a table of
                    // 257 entries would otherwise keep room for 512.
                    self.v4
                        .reserve_exact((self.v4.len() / 4).max(V4_INDEX_STEP));
                }
                self.v4.insert(at, pack_v4(a, shared));
            }
            SocketAddr::V6(a) => {
                self.v6
                    .insert_unique(keying.hash(addr), (*a, shared), |(a, _)| {
                        keying.hash(&SocketAddr::V6(*a))
                    });
            }
        }
    }

    /// Forgets `addr`.
    fn remove(&mut self, addr: &SocketAddr) {
        match addr {
            SocketAddr::V4(a) => {
                if let Ok(i) = self.v4_position(a) {
                    self.v4.remove(i);
                    if self.v4.len() < self.v4.capacity() / 2 {
                        self.v4.shrink_to(self.v4.len() + self.v4.len() / 4);
                    }
                }
            }
            SocketAddr::V6(a) => {
                if let Ok(e) = self.v6.find_entry(self.keying.hash(addr), |(k, _)| k == a) {
                    e.remove();
                }
            }
        }
    }

    /// The address of the entry on IP `ip` (canonical, subject to the rule).
    fn holder_of(&self, ip: IpAddr) -> Option<SocketAddr> {
        if let IpAddr::V4(v4) = ip {
            // Under the rule an IP has at most one entry: the first of the IP's range.
            let ip_bits = u64::from(v4.to_bits());
            let at = self.v4.partition_point(|&w| w >> 32 < ip_bits);
            if let Some(&w) = self.v4.get(at)
                && w >> 32 == ip_bits
            {
                return Some(SocketAddr::V4(unpack_v4(w)));
            }
        }
        self.v6
            .find(self.keying.hasher.hash_one(ip), |(a, _)| {
                a.ip().to_canonical() == ip
            })
            .map(|&(a, _)| SocketAddr::V6(a))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Node(usize),
    Cache(usize),
}

/// The routing table of one family, its addresses packed as `A`.
#[derive(Debug, Clone)]
struct Table<A> {
    own_id: NodeId,
    /// Shared by the tables of one node (and may be by many nodes).
    config: Arc<RoutingConfig>,
    /// Never empty; at most [`MAX_BUCKETS`].
    buckets: Vec<Bucket<A>>,
    /// Every entry, members and cache, by address (and by IP for the one-node-per-IP rule).
    index: AddrIndex,
    /// The instant of the records' first [`Tick`]; none until the table is given an instant.
    epoch: Stamp,
}

/// The methods of [`RoutingTable`], whose docs they follow, for one family.
impl<A: Packed> Table<A> {
    fn with_config(own_id: NodeId, config: Arc<RoutingConfig>) -> Self {
        Self {
            own_id,
            index: AddrIndex::new(&config),
            config,
            buckets: vec![Bucket::default()],
            epoch: Stamp::NONE,
        }
    }

    /// The tick of `now`, fixing the epoch on the first call and moving it forward when the
    /// clock nears its end (see [`Tick`]).
    fn clock(&mut self, now: Instant) -> Tick {
        let epoch = match self.epoch.get() {
            Some(epoch) => epoch,
            None => {
                let epoch = now.checked_sub(EPOCH_MARGIN).unwrap_or(now);
                self.epoch = Stamp::new(epoch);
                epoch
            }
        };
        let tick = Tick::at(epoch, now);
        if tick.0 < REBASE_AT {
            return tick;
        }
        // The new epoch is `REBASE_KEEP` before now; the records' ticks were all made before
        // now, with the old epoch, and none saturated (this runs before any is made).
        let ms = now.saturating_duration_since(epoch).as_millis() - u128::from(REBASE_KEEP);
        let epoch = epoch + Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
        let shift = u32::try_from(ms).unwrap_or(u32::MAX);
        self.epoch = Stamp::new(epoch);
        for bucket in &mut self.buckets {
            bucket.refreshed = bucket.refreshed.shifted(shift);
            for r in bucket.nodes.iter_mut().chain(&mut bucket.cache) {
                r.shift(shift);
            }
        }
        debug!(epoch = ?epoch, "routing table clock moved forward");
        Tick::at(epoch, now)
    }

    /// The tick of `t`, for reading: before the first [`clock`](Self::clock) no record
    /// holds a time, and any tick compares alike with none.
    fn tick(&self, t: Instant) -> Tick {
        self.epoch.get().map_or(Tick(1), |epoch| Tick::at(epoch, t))
    }

    fn instant(&self, t: Tick) -> Option<Instant> {
        t.instant(self.epoch.get()?)
    }

    /// What the caller sees of a record.
    fn view(&self, r: &Record<A>) -> Entry {
        Entry {
            node: r.node(),
            last_response: self.instant(r.last_response),
            last_query_from: self.instant(r.last_query_from),
            pinged_at: self.instant(r.pinged_at),
            rtt: r.rtt.get(),
            failures: r.failures,
        }
    }

    fn records(&self) -> impl Iterator<Item = &Record<A>> + '_ {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.nodes.is_empty())
    }

    fn cached_len(&self) -> usize {
        self.buckets.iter().map(|b| b.cache.len()).sum()
    }

    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let buckets: usize = self
            .buckets
            .iter()
            .map(|b| {
                b.nodes.capacity() * size_of::<Record<A>>()
                    + if b.by_id.spilled() {
                        b.by_id.capacity() * size_of::<u16>()
                    } else {
                        0
                    }
                    + b.cache.capacity() * size_of::<Record<A>>()
            })
            .sum();
        // hashbrown: one control byte a slot besides the slot itself.
        let index = self.index.v4.capacity() * size_of::<u64>()
            + self.index.v6.capacity() * (size_of::<(SocketAddrV6, u8)>() + 1);
        self.buckets.capacity() * size_of::<Bucket<A>>()
            + buckets
            + index
            + self.config.bucket_sizes_far.capacity() * size_of::<usize>()
    }

    fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        self.records().map(|r| self.view(r))
    }

    fn get(&self, addr: SocketAddr) -> Option<Entry> {
        self.member(addr).map(|r| self.view(r))
    }

    /// The member's record at this address.
    fn member(&self, addr: SocketAddr) -> Option<&Record<A>> {
        match self.locate(&addr)? {
            (b, Slot::Node(i)) => Some(&self.buckets[b].nodes[i]),
            (_, Slot::Cache(_)) => None,
        }
    }

    fn state(&self, entry: &Entry, now: Instant) -> NodeState {
        // The entry's instants are on the table's millisecond grid: their ticks are exact.
        let tick = |t: Option<Instant>| t.map_or(Tick::NONE, |t| self.tick(t));
        self.state_of(
            entry.failures,
            tick(entry.last_response),
            tick(entry.last_query_from),
            &self.horizons(self.tick(now)),
        )
    }

    fn on_response(&mut self, node: NodeInfo, rtt: Option<Duration>, now: Instant) -> Insertion {
        if node.id == self.own_id {
            return Insertion::Rejected(RejectReason::OwnId);
        }
        if A::pack(&node.addr).is_none() {
            return Insertion::Rejected(RejectReason::WrongFamily);
        }
        let now = self.clock(now);
        let entry = match self.locate(&node.addr) {
            Some((b, slot)) => {
                let known = self.entry(b, slot);
                if known.id != node.id {
                    let (old, protected) = (known.node(), known.verified());
                    self.evict(b, slot);
                    if protected {
                        debug!(addr = %node.addr, old = %old.id, new = %node.id, "address changed id");
                        return Insertion::IdChanged { old };
                    }
                    // Only an unverified contact was waiting there: nothing to protect.
                    match self.fresh_entry(node, rtt, now) {
                        Ok(entry) => entry,
                        Err(reason) => return Insertion::Rejected(reason),
                    }
                } else if let Slot::Node(i) = slot {
                    self.buckets[b].nodes[i].answered(rtt, now);
                    self.changed(b, now);
                    return Insertion::Updated;
                } else {
                    // A waiting contact answered: take it out and insert it afresh.
                    let mut entry = self.take(b, slot);
                    entry.answered(rtt, now);
                    entry
                }
            }
            None => match self.fresh_entry(node, rtt, now) {
                Ok(entry) => entry,
                Err(reason) => return Insertion::Rejected(reason),
            },
        };
        self.insert_verified(entry, now)
    }

    fn on_query_from(&mut self, node: NodeInfo, now: Instant) -> QueryOutcome {
        if node.id == self.own_id {
            return QueryOutcome::Ignored(RejectReason::OwnId);
        }
        let Some(mut entry) = Record::<A>::new(node) else {
            return QueryOutcome::Ignored(RejectReason::WrongFamily);
        };
        let now = self.clock(now);
        let interval = self.config.node_ping_interval;
        if let Some((b, slot)) = self.locate(&node.addr) {
            let entry = self.entry(b, slot);
            // Whether the bucket wants the node costs a scan of the bucket: only asked when
            // the answer matters.
            let ping = entry.id == node.id
                && matches!(slot, Slot::Cache(_))
                && !entry.verified()
                && entry.ping_due(now, interval)
                && self.bucket_wants(b);
            let recheck = self.config.ping_failed_queriers
                && entry.id == node.id
                && matches!(slot, Slot::Node(_))
                && entry.failures > 0
                && entry.ping_due(now, interval);
            let entry = self.entry_mut(b, slot);
            if entry.id != node.id {
                // A spoofed source or a restarted node: only an answer can tell.
                if entry.ping_due(now, interval) {
                    entry.pinged_at = now;
                    return QueryOutcome::PingToVerify;
                }
                return QueryOutcome::Ignored(RejectReason::AddressInUse);
            }
            entry.last_query_from = now;
            return match slot {
                Slot::Node(_) if recheck => {
                    entry.pinged_at = now;
                    QueryOutcome::PingToVerify
                }
                Slot::Node(_) => QueryOutcome::Member,
                Slot::Cache(_) if ping => {
                    entry.pinged_at = now;
                    QueryOutcome::PingToVerify
                }
                Slot::Cache(_) => QueryOutcome::Cached,
            };
        }
        // One pass over the bucket answers the id rule and whether the bucket wants the node;
        // the IP rule is one lookup. Only when one of the rules bites does the general path
        // run (it may evict, which changes what the bucket wants; it never splits, so `b`
        // stays).
        let b = self.bucket_index(&node.id);
        // The common case on a busy node: a full bucket of live members and a cache that
        // turned over recently. Nothing would change (the rules below only evict bad entries
        // for an unverified newcomer): answered without a pass over the bucket's ids.
        if !self.can_split(b)
            && self.buckets[b].nodes.len() >= self.capacity(b)
            && !self.cache_takes_querier(b, now)
            && !self.holds_bad(b)
        {
            return QueryOutcome::Ignored(RejectReason::BucketFull);
        }
        let (same_id, any_bad) = self.scan_for(b, &node.id);
        let ip_taken = self
            .ip_key(&node.addr)
            .is_some_and(|ip| self.index.holder_of(ip).is_some());
        let wanted = if same_id.is_some() || ip_taken {
            if let Err(reason) = self.make_room_for(&node, false) {
                return QueryOutcome::Ignored(reason);
            }
            self.bucket_wants(b)
        } else {
            self.buckets[b].nodes.len() < self.capacity(b) || any_bad || self.can_split(b)
        };
        if !wanted && !self.cache_takes_querier(b, now) {
            return QueryOutcome::Ignored(RejectReason::BucketFull);
        }
        entry.last_query_from = now;
        if wanted {
            entry.pinged_at = now;
        }
        match self.push_cache(b, entry) {
            Ok(()) => {
                self.index(&node);
                if wanted {
                    QueryOutcome::PingToVerify
                } else {
                    QueryOutcome::Cached
                }
            }
            Err(_) => QueryOutcome::Ignored(RejectReason::BucketFull),
        }
    }

    fn on_failure(
        &mut self,
        addr: SocketAddr,
        id: Option<NodeId>,
        _now: Instant,
    ) -> FailureOutcome {
        let Some((b, slot)) = self.locate(&addr) else {
            return FailureOutcome::Unknown;
        };
        let limit = self.fail_limit();
        let entry = self.entry_mut(b, slot);
        if id.is_some_and(|id| id != entry.id) {
            return FailureOutcome::Unknown;
        }
        entry.failures = entry.failures.saturating_add(1);
        let (failures, node) = (entry.failures, entry.node());
        if let Slot::Node(_) = slot {
            self.buckets[b].may_have_bad = true;
        }
        if failures < limit {
            return FailureOutcome::Counted { failures };
        }
        if let Slot::Cache(_) = slot {
            self.take(b, slot);
            return FailureOutcome::Dropped;
        }
        if self.best_replacement(b).is_none() {
            if failures == limit {
                debug!(node = ?node, "node turned bad");
            }
            return FailureOutcome::TurnedBad;
        }
        match self.evict(b, slot) {
            Some(by) => {
                debug!(bad = ?node, by = ?by, "bad node replaced");
                FailureOutcome::Replaced { bad: node, by }
            }
            None => FailureOutcome::TurnedBad,
        }
    }

    fn remove(&mut self, addr: SocketAddr) -> Option<NodeInfo> {
        let (b, slot) = self.locate(&addr)?;
        let node = self.entry(b, slot).node();
        self.evict(b, slot);
        Some(node)
    }

    fn closest(&self, target: &NodeId, count: usize, out: &mut Vec<NodeInfo>) {
        out.clear();
        let limit = self.fail_limit();
        self.walk(target, count, out, &|e: &Record<A>| e.failures < limit);
    }

    fn closest_for_answer(
        &self,
        target: &NodeId,
        count: usize,
        now: Instant,
        out: &mut Vec<NodeInfo>,
    ) {
        if !self.config.answer_good_first {
            return self.closest(target, count, out);
        }
        out.clear();
        let h = self.horizons(self.tick(now));
        let limit = self.fail_limit();
        self.walk(target, count, out, &|e: &Record<A>| {
            self.good_for_answer(e, &h)
        });
        if out.len() < count {
            self.walk(target, count, out, &|e: &Record<A>| {
                e.failures < limit && !self.good_for_answer(e, &h)
            });
        }
    }

    fn due_after_handout(&mut self, handed: &[NodeInfo], now: Instant, out: &mut Vec<NodeInfo>) {
        let after = self.config.handout_ping_after;
        if after.is_zero() {
            return;
        }
        let now = self.clock(now);
        let silent = Recent::new(now, after);
        for node in handed {
            let Some((b, Slot::Node(i))) = self.locate(&node.addr) else {
                continue;
            };
            let e = &mut self.buckets[b].nodes[i];
            if !silent.holds(e.last_seen()) && !silent.holds(e.pinged_at) {
                e.pinged_at = now;
                out.push(*node);
            }
        }
    }

    /// Appends to `out` the members that `keep` accepts, closest to `target` first, until
    /// `out` holds `count`.
    fn walk(
        &self,
        target: &NodeId,
        count: usize,
        out: &mut Vec<NodeInfo>,
        keep: &impl Fn(&Record<A>) -> bool,
    ) {
        if count <= out.len() {
            return;
        }
        // Bucket `i` below the target's bucket `d` (nodes sharing `i` bits with us) is at
        // distance prefix exactly `i` from the target; every bucket past `d` is at prefix
        // exactly `d`; bucket `d` itself is closer than all of them. So the groups, closest
        // first, are: bucket d, buckets d+1.., then buckets d-1, d-2, .., 0.
        let n = self.buckets.len();
        let d = self.bucket_index(target);
        let key = DistanceKey::of(target);
        if self.gather(d..d + 1, key, count, out, keep)
            || self.gather(d + 1..n, key, count, out, keep)
        {
            return;
        }
        for b in (0..d).rev() {
            if self.gather(b..b + 1, key, count, out, keep) {
                return;
            }
        }
    }

    fn has_usable(&self) -> bool {
        let limit = self.fail_limit();
        self.buckets
            .iter()
            .flat_map(|b| &b.nodes)
            .any(|e| e.failures < limit)
    }

    fn refresh_targets(&mut self, now: Instant, max: usize, rng: &mut impl Rng) -> Vec<NodeId> {
        let now = self.clock(now);
        let fresh = Recent::new(now, self.config.bucket_refresh_interval);
        let mut targets = Vec::new();
        for b in 0..self.buckets.len() {
            if targets.len() >= max {
                break;
            }
            if !fresh.holds(self.buckets[b].refreshed) {
                let target = if self.sampled(b) {
                    self.sample_target(b, rng)
                } else {
                    self.random_id_in(b, rng)
                };
                targets.push(target);
                self.buckets[b].refreshed = now;
            }
        }
        targets
    }

    fn mark_refreshed(&mut self, target: &NodeId, now: Instant) {
        let now = self.clock(now);
        let b = self.bucket_index(target);
        self.buckets[b].refreshed = now;
    }

    fn stale_to_ping(&mut self, now: Instant, max: usize) -> Vec<NodeInfo> {
        let now = self.clock(now);
        let h = self.horizons(now);
        let mut stale: Vec<(Tick, usize, usize)> = Vec::new();
        for (b, bucket) in self.buckets.iter().enumerate() {
            for (i, e) in bucket.nodes.iter().enumerate() {
                if self.is_stale(e, b, &h) {
                    stale.push((e.last_seen(), b, i));
                }
            }
        }
        stale.sort_unstable();
        stale.truncate(max);
        stale
            .into_iter()
            .map(|(_, b, i)| {
                let e = &mut self.buckets[b].nodes[i];
                e.pinged_at = now;
                e.node()
            })
            .collect()
    }

    fn snapshot(&self, now: Instant) -> Vec<SavedContact> {
        self.records()
            .filter(|e| !self.is_bad(e))
            .map(|e| SavedContact {
                node: e.node(),
                rtt: e.rtt.get(),
                answered_ago: self
                    .instant(e.last_response)
                    .map(|t| now.saturating_duration_since(t)),
            })
            .collect()
    }

    fn restore(&mut self, contacts: impl IntoIterator<Item = SavedContact>, now: Instant) -> usize {
        self.clock(now);
        let mut members = 0;
        for contact in contacts {
            let node = contact.node;
            let Some(mut entry) = Record::<A>::new(node) else {
                continue;
            };
            if node.id == self.own_id
                || self.index.contains(&node.addr)
                || self.make_room_for(&node, false).is_err()
            {
                continue;
            }
            entry.rtt = Rtt::from(contact.rtt);
            let answered = contact
                .answered_ago
                .filter(|ago| *ago < self.config.node_good_interval)
                .and_then(|ago| now.checked_sub(ago));
            if let Some(t) = answered {
                entry.last_response = self.tick(t);
            }
            let stamp = entry.last_response;
            if self.place(entry, true) {
                members += 1;
                let b = self.bucket_index(&node.id);
                let bucket = &mut self.buckets[b];
                bucket.refreshed = bucket.refreshed.max(stamp);
            }
        }
        members
    }

    fn set_own_id(&mut self, new_id: NodeId) {
        if new_id == self.own_id {
            return;
        }
        let old = std::mem::replace(&mut self.buckets, vec![Bucket::default()]);
        self.index.clear();
        self.own_id = new_id;
        let mut waiting = Vec::new();
        for bucket in old {
            for entry in bucket.nodes {
                if entry.id != new_id && !self.is_bad(&entry) {
                    self.place(entry, true);
                }
            }
            waiting.extend(bucket.cache);
        }
        for entry in waiting {
            if entry.id != new_id {
                let verified = entry.verified();
                self.place(entry, verified);
            }
        }
        debug!(own_id = %new_id, members = self.len(), buckets = self.buckets.len(), "routing table rebuilt");
    }

    // ---- internals ----

    /// The entry of a node that answered us and whose address is not in the table, once the
    /// id and IP rules allow it.
    fn fresh_entry(
        &mut self,
        node: NodeInfo,
        rtt: Option<Duration>,
        now: Tick,
    ) -> Result<Record<A>, RejectReason> {
        let mut entry = Record::new(node).ok_or(RejectReason::WrongFamily)?;
        self.make_room_for(&node, true)?;
        entry.answered(rtt, now);
        Ok(entry)
    }

    fn state_with(&self, entry: &Record<A>, h: &Horizons) -> NodeState {
        self.state_of(
            entry.failures,
            entry.last_response,
            entry.last_query_from,
            h,
        )
    }

    fn state_of(
        &self,
        failures: u8,
        last_response: Tick,
        last_query_from: Tick,
        h: &Horizons,
    ) -> NodeState {
        let good = h.good;
        if failures >= self.fail_limit() {
            NodeState::Bad
        } else if good.holds(last_response)
            || (last_response.is_some() && good.holds(last_query_from))
        {
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }

    /// What counts as recent at `now` for "good" and for "pinged lately", computed once for
    /// a scan of many entries.
    fn horizons(&self, now: Tick) -> Horizons {
        Horizons {
            good: Recent::new(now, self.config.node_good_interval),
            near_heard: Recent::new(now, self.config.near_ping_interval),
            near_from: self.buckets.len().saturating_sub(self.config.near_buckets),
            pinged: Recent::new(now, self.config.node_ping_interval),
        }
    }

    /// Not pinged lately, and questionable, or in a near bucket and not heard from for
    /// `near_ping_interval`. `b` is the entry's bucket (the callers walk one).
    fn is_stale(&self, entry: &Record<A>, b: usize, h: &Horizons) -> bool {
        if h.pinged.holds(entry.pinged_at) {
            return false;
        }
        match self.state_with(entry, h) {
            NodeState::Questionable => true,
            NodeState::Good => !h.near_heard.holds(entry.last_seen()) && self.is_near(b, h),
            NodeState::Bad => false,
        }
    }

    /// Bucket `b` is one of the last `near_buckets` and holds k (a young table's wide far
    /// buckets are not pinged every `near_ping_interval`, whatever their place).
    fn is_near(&self, b: usize, h: &Horizons) -> bool {
        b >= h.near_from && self.capacity(b) <= self.config.bucket_size
    }

    /// Good, and no query to it failed since its last answer: handed out first by
    /// [`closest_for_answer`](Self::closest_for_answer).
    fn good_for_answer(&self, entry: &Record<A>, h: &Horizons) -> bool {
        entry.failures == 0 && self.state_with(entry, h) == NodeState::Good
    }

    fn fail_limit(&self) -> u8 {
        self.config.node_fail_limit.max(1)
    }

    fn is_bad(&self, entry: &Record<A>) -> bool {
        entry.failures >= self.fail_limit()
    }

    fn capacity(&self, b: usize) -> usize {
        // The bucket covering our id holds k and splits when full: the wide sizes are for far
        // buckets once they split off. Otherwise a young table is one wide bucket of random
        // contacts that never splits, and lookups take more hops (seen in simulation).
        let size = if self.can_split(b) {
            self.config.bucket_size
        } else {
            self.config
                .bucket_sizes_far
                .get(b)
                .copied()
                .unwrap_or(self.config.bucket_size)
        };
        size.clamp(1, BUCKET_CAPACITY_MAX)
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        self.bucket_of(self.shared_bits(id))
    }

    /// Leading bits `id` shares with ours (0 to 160).
    fn shared_bits(&self, id: &NodeId) -> u8 {
        // At most 160: fits.
        self.own_id.distance(id).leading_zeros() as u8
    }

    /// The bucket of an id sharing `shared` leading bits with ours.
    fn bucket_of(&self, shared: u8) -> usize {
        usize::from(shared).min(self.buckets.len() - 1)
    }

    fn can_split(&self, b: usize) -> bool {
        b + 1 == self.buckets.len() && self.buckets.len() < MAX_BUCKETS
    }

    /// Whether a verified node for bucket `b` would become a member right away.
    fn bucket_wants(&self, b: usize) -> bool {
        let nodes = &self.buckets[b].nodes;
        nodes.len() < self.capacity(b) || nodes.iter().any(|e| self.is_bad(e)) || self.can_split(b)
    }

    fn ip_key(&self, addr: &SocketAddr) -> Option<IpAddr> {
        self.index.ip_key(addr)
    }

    fn index(&mut self, node: &NodeInfo) {
        let shared = self.shared_bits(&node.id);
        self.index.insert(&node.addr, shared);
    }

    fn unindex(&mut self, node: &NodeInfo) {
        self.index.remove(&node.addr);
    }

    fn locate(&self, addr: &SocketAddr) -> Option<(usize, Slot)> {
        let b = self.bucket_of(self.index.get(addr)?);
        let packed = A::pack(addr)?;
        let bucket = &self.buckets[b];
        if let Some(i) = bucket.nodes.iter().position(|e| e.addr == packed) {
            return Some((b, Slot::Node(i)));
        }
        bucket
            .cache
            .iter()
            .position(|e| e.addr == packed)
            .map(|i| (b, Slot::Cache(i)))
    }

    fn find_id(&self, id: &NodeId) -> Option<(usize, Slot)> {
        let b = self.bucket_index(id);
        let bucket = &self.buckets[b];
        let prefix = id_prefix(id);
        let same = |e: &Record<A>| id_prefix(&e.id) == prefix && e.id == *id;
        if let Some(i) = bucket.nodes.iter().position(same) {
            return Some((b, Slot::Node(i)));
        }
        bucket
            .cache
            .iter()
            .position(same)
            .map(|i| (b, Slot::Cache(i)))
    }

    /// One pass over bucket `b` for a node that is not in the table: the slot holding its id,
    /// if any, and whether a member is bad.
    fn scan_for(&self, b: usize, id: &NodeId) -> (Option<Slot>, bool) {
        let limit = self.fail_limit();
        let bucket = &self.buckets[b];
        let prefix = id_prefix(id);
        let mut found = None;
        let mut bad = false;
        for (i, e) in bucket.nodes.iter().enumerate() {
            bad |= e.failures >= limit;
            if id_prefix(&e.id) == prefix && e.id == *id {
                found = Some(Slot::Node(i));
            }
        }
        if found.is_none() {
            found = bucket
                .cache
                .iter()
                .position(|e| id_prefix(&e.id) == prefix && e.id == *id)
                .map(Slot::Cache);
        }
        (found, bad)
    }

    fn entry(&self, b: usize, slot: Slot) -> &Record<A> {
        match slot {
            Slot::Node(i) => &self.buckets[b].nodes[i],
            Slot::Cache(i) => &self.buckets[b].cache[i],
        }
    }

    fn entry_mut(&mut self, b: usize, slot: Slot) -> &mut Record<A> {
        match slot {
            Slot::Node(i) => &mut self.buckets[b].nodes[i],
            Slot::Cache(i) => &mut self.buckets[b].cache[i],
        }
    }

    /// Removes an entry from its bucket and the indexes.
    fn take(&mut self, b: usize, slot: Slot) -> Record<A> {
        let entry = match slot {
            Slot::Node(i) => self.buckets[b].remove_member(i),
            Slot::Cache(i) => self.buckets[b].cache.remove(i),
        };
        self.unindex(&entry.node());
        entry
    }

    /// Removes an entry; a member's place goes to a replacement, which is returned.
    fn evict(&mut self, b: usize, slot: Slot) -> Option<NodeInfo> {
        self.take(b, slot);
        match slot {
            Slot::Node(_) => self.promote(b),
            Slot::Cache(_) => None,
        }
    }

    /// An entry a newcomer may push out: a bad one, or (for a verified newcomer) an unverified
    /// waiting contact.
    fn displaceable(&self, b: usize, slot: Slot, verified: bool) -> bool {
        let entry = self.entry(b, slot);
        self.is_bad(entry) || (verified && matches!(slot, Slot::Cache(_)) && !entry.verified())
    }

    /// Enforces "one address per id" and "one node per IP" for a node whose address is not in
    /// the table, evicting what it may push out.
    fn make_room_for(&mut self, node: &NodeInfo, verified: bool) -> Result<(), RejectReason> {
        if let Some((b, slot)) = self.find_id(&node.id) {
            if !self.displaceable(b, slot, verified) {
                return Err(RejectReason::IdInUse);
            }
            self.evict(b, slot);
        }
        if let Some(ip) = self.ip_key(&node.addr)
            && let Some(other) = self.index.holder_of(ip)
        {
            let (b, slot) = self
                .locate(&other)
                .expect("the holder of an IP is an entry");
            if !self.displaceable(b, slot, verified) {
                return Err(RejectReason::IpInUse);
            }
            self.evict(b, slot);
        }
        Ok(())
    }

    /// Puts an entry in bucket `b`'s replacement cache, pushing out the oldest unverified
    /// contact when full (or, for a verified entry, the oldest one). Does not index `entry`;
    /// unindexes what it pushes out. Gives the entry back when it does not fit.
    fn push_cache(&mut self, b: usize, entry: Record<A>) -> Result<(), Record<A>> {
        let max = self.config.replacement_cache_size;
        if max == 0 {
            return Err(entry);
        }
        while self.buckets[b].cache.len() >= max {
            let victim = self.stalest_unverified(b).or(entry.verified().then_some(0));
            let Some(v) = victim else {
                return Err(entry);
            };
            let old = self.buckets[b].cache.remove(v);
            self.unindex(&old.node());
        }
        let cache = &mut self.buckets[b].cache;
        if cache.len() == cache.capacity() {
            // One place at a time: most caches hold two or three contacts, and a doubled `Vec`
            // would keep room for four or eight.
            cache.reserve_exact(1);
        }
        cache.push(entry);
        Ok(())
    }

    /// Whether bucket `b` has a bad member (a pass over it only when one may have turned bad
    /// since the last pass that found none).
    fn holds_bad(&mut self, b: usize) -> bool {
        if !self.buckets[b].may_have_bad {
            return false;
        }
        let limit = self.fail_limit();
        let bad = self.buckets[b].nodes.iter().any(|e| e.failures >= limit);
        self.buckets[b].may_have_bad = bad;
        bad
    }

    /// Whether an unverified querier may enter the replacement cache of bucket `b` now: there
    /// is room, or the unverified entry `push_cache` would evict has been there (unheard
    /// from) for `cache_turnover`.
    fn cache_takes_querier(&self, b: usize, now: Tick) -> bool {
        let cache = &self.buckets[b].cache;
        if cache.len() < self.config.replacement_cache_size {
            return true;
        }
        // The stalest unverified entry is settled exactly when some unverified entry is:
        // never heard from, or not within `cache_turnover`.
        let heard = Recent::new(now, self.config.cache_turnover);
        cache
            .iter()
            .any(|e| !e.verified() && !heard.holds(e.last_heard()))
    }

    /// The position of the unverified cache entry heard from least recently (never heard
    /// from first, then the oldest).
    fn stalest_unverified(&self, b: usize) -> Option<usize> {
        self.buckets[b]
            .cache
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.verified())
            .min_by_key(|(_, e)| e.last_heard())
            .map(|(i, _)| i)
    }

    /// The waiting contact that answered us most recently.
    fn best_replacement(&self, b: usize) -> Option<usize> {
        self.buckets[b]
            .cache
            .iter()
            .enumerate()
            .filter(|(_, e)| e.verified() && !self.is_bad(e))
            .max_by_key(|(_, e)| e.last_response)
            .map(|(i, _)| i)
    }

    /// Fills bucket `b` from its replacement cache; returns the first contact promoted.
    fn promote(&mut self, b: usize) -> Option<NodeInfo> {
        let mut first = None;
        while self.buckets[b].nodes.len() < self.capacity(b) {
            let Some(i) = self.best_replacement(b) else {
                break;
            };
            let entry = self.buckets[b].cache.remove(i);
            first = first.or(Some(entry.node()));
            self.buckets[b].push_member(entry);
        }
        if self.buckets[b].cache.is_empty() {
            self.buckets[b].cache = Vec::new();
        }
        first
    }

    /// Splits the last bucket: nodes sharing more bits with us than its index go to a new
    /// last bucket.
    fn split(&mut self) {
        let i = self.buckets.len() - 1;
        let own = self.own_id;
        let deeper = |e: &Record<A>| own.distance(&e.id).leading_zeros() as usize > i;
        let old = &mut self.buckets[i];
        let (nodes, kept): (Vec<Record<A>>, Vec<Record<A>>) =
            std::mem::take(&mut old.nodes).into_iter().partition(deeper);
        old.nodes = kept;
        old.reorder();
        let (cache, kept): (Vec<Record<A>>, Vec<Record<A>>) =
            std::mem::take(&mut old.cache).into_iter().partition(deeper);
        old.cache = kept;
        let refreshed = old.refreshed;
        if old.nodes.is_empty() {
            // The split left this far bucket with no member: no node we know shares exactly
            // `i` bits with us. In a large network that is a gap in our knowledge, not in
            // the network (a node of a young network that joined before the others, whose
            // own-id lookups find only its own side of the split), so refresh it at the
            // next maintenance tick instead of 15 minutes later.
            old.refreshed = Tick::NONE;
        }
        if self.buckets.len() == self.buckets.capacity() {
            // One bucket at a time (a table splits a dozen times; a doubled `Vec` kept room
            // for four more buckets of 80 bytes).
            self.buckets.reserve_exact(1);
        }
        self.buckets
            .push(Bucket::with_nodes(nodes, cache, refreshed));
        self.rebalance(i);
        self.rebalance(i + 1);
        debug!(
            buckets = self.buckets.len(),
            "routing table split its last bucket"
        );
    }

    /// After a split, brings bucket `b` back to its capacity: bad members over it are dropped,
    /// the least recently seen go to the cache; a bucket under it is filled from the cache.
    fn rebalance(&mut self, b: usize) {
        let cap = self.capacity(b);
        while self.buckets[b].nodes.len() > cap {
            let nodes = &self.buckets[b].nodes;
            let victim = nodes.iter().position(|e| self.is_bad(e)).or_else(|| {
                nodes
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.last_seen())
                    .map(|(i, _)| i)
            });
            let Some(v) = victim else {
                break;
            };
            let entry = self.buckets[b].remove_member(v);
            if self.is_bad(&entry) {
                self.unindex(&entry.node());
            } else if let Err(entry) = self.push_cache(b, entry) {
                self.unindex(&entry.node());
            }
        }
        self.promote(b);
    }

    /// Places an entry without the ping-first logic (restore and rebuild): as a member when
    /// `member` and there is room (splitting as needed), else in the cache. Returns true when
    /// it became a member. The caller checked the id and IP rules.
    fn place(&mut self, entry: Record<A>, member: bool) -> bool {
        let node = entry.node();
        loop {
            let b = self.bucket_index(&node.id);
            if member {
                if self.buckets[b].nodes.len() < self.capacity(b) {
                    self.index(&node);
                    self.buckets[b].push_member(entry);
                    return true;
                }
                if self.can_split(b) {
                    self.split();
                    continue;
                }
            }
            if self.push_cache(b, entry).is_ok() {
                self.index(&node);
            }
            return false;
        }
    }

    /// Inserts a node that just answered us and is not in the table.
    fn insert_verified(&mut self, entry: Record<A>, now: Tick) -> Insertion {
        let node = entry.node();
        let b = loop {
            let b = self.bucket_index(&node.id);
            if self.buckets[b].nodes.len() < self.capacity(b) {
                self.index(&node);
                self.buckets[b].push_member(entry);
                self.changed(b, now);
                return Insertion::Added;
            }
            if let Some(i) = self.buckets[b].nodes.iter().position(|e| self.is_bad(e)) {
                let old = self.buckets[b].replace_member(i, entry);
                self.unindex(&old.node());
                self.index(&node);
                self.changed(b, now);
                debug!(bad = ?old.node(), by = ?node, "bad node replaced");
                return Insertion::ReplacedBad {
                    evicted: old.node(),
                };
            }
            if !self.can_split(b) {
                break b;
            }
            self.split();
        };
        if let Some(i) = self.slower_member(b, &entry) {
            self.index(&node);
            let old = self.buckets[b].replace_member(i, entry);
            self.changed(b, now);
            let moved = old.node();
            if let Err(old) = self.push_cache(b, old) {
                self.unindex(&old.node());
            }
            debug!(slower = ?moved, by = ?node, "member replaced by a faster node");
            return Insertion::ReplacedSlower { moved };
        }
        let h = self.horizons(now);
        let stale = self.buckets[b]
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, e)| self.is_stale(e, b, &h))
            .min_by_key(|(_, e)| e.last_seen())
            .map(|(i, _)| i);
        if self.push_cache(b, entry).is_err() {
            return Insertion::Rejected(RejectReason::BucketFull);
        }
        self.index(&node);
        match stale {
            Some(i) => {
                let stale = &mut self.buckets[b].nodes[i];
                stale.pinged_at = now;
                Insertion::PingFirst {
                    stale: stale.node(),
                }
            }
            None => Insertion::Cached,
        }
    }

    /// A member of bucket `b` answered, or the bucket took a new member: BEP 5's "changed",
    /// so the bucket needs no refresh for `bucket_refresh_interval`, unless it is one whose
    /// members are chosen for speed ([`sampled`](Self::sampled)).
    fn changed(&mut self, b: usize, now: Tick) {
        if !self.sampled(b) {
            self.buckets[b].refreshed = now;
        }
    }

    /// With [`RoutingConfig::prefer_low_rtt`], bucket `b` is refreshed every
    /// `bucket_refresh_interval` though its members answer: it is past the wide far buckets
    /// (which hear from enough strangers through every lookup: half of all targets fall in
    /// the farthest) and before the near ones (which keep their members whatever their
    /// speed). Such a bucket at depth d hears from its range only through the lookups that
    /// pass it (a 2^-d share of random targets); its refresh lookup's answers are the
    /// candidates, measured, that may take the places of slower members.
    fn sampled(&self, b: usize) -> bool {
        self.chosen_for_speed(b) && b >= self.config.bucket_sizes_far.len()
    }

    /// With [`RoutingConfig::prefer_low_rtt`], bucket `b` is not one of the near buckets:
    /// faster nodes take the places of its slower members.
    fn chosen_for_speed(&self, b: usize) -> bool {
        self.config.prefer_low_rtt && b + self.config.near_buckets < self.buckets.len()
    }

    /// With [`RoutingConfig::prefer_low_rtt`], the member of full bucket `b` (not the last)
    /// whose place `entry`, a node that just answered, takes: the slowest member of
    /// `entry`'s slot when `entry` is faster, or, when no member is in that slot, the
    /// slowest member of a slot that holds two or more. Slower means more failures, then an
    /// unknown RTT, then a higher one.
    fn slower_member(&self, b: usize, entry: &Record<A>) -> Option<usize> {
        // Near buckets keep their members whatever their speed: they are what we hand out
        // for targets near us, and a node slow for everyone (a slow access link) that no
        // near neighbour kept could not be found by any lookup.
        if !self.chosen_for_speed(b) {
            return None;
        }
        let new_rtt = entry.rtt.get()?;
        let nodes = &self.buckets[b].nodes;
        let slot = |id: &NodeId| bucket_slot(id, b, nodes.len());
        let own = slot(&entry.id);
        // One pass: members a slot, and the slowest member of `entry`'s slot.
        let mut count = [0u16; SLOTS_MAX];
        let mut same: Option<usize> = None;
        for (i, e) in nodes.iter().enumerate() {
            let s = slot(&e.id);
            count[s] = count[s].saturating_add(1);
            if s == own && same.is_none_or(|j| e.slowness() >= nodes[j].slowness()) {
                same = Some(i);
            }
        }
        if let Some(i) = same {
            return (nodes[i].slowness() > (0, new_rtt)).then_some(i);
        }
        nodes
            .iter()
            .enumerate()
            .filter(|(_, e)| count[slot(&e.id)] > 1)
            .max_by_key(|(_, e)| e.slowness())
            .map(|(i, _)| i)
    }

    /// Appends to `out` the members of `range` that `keep` accepts, closest to `target`,
    /// sorted, until `out` holds `count` (everything already in `out` is closer than this
    /// group). True when `out` is full.
    ///
    /// A group of one bucket is narrowed to the members around the target's place in id order
    /// ([`window`]). Then a bounded insertion: a candidate costs one word of distance and one
    /// comparison with the worst kept so far unless it beats it. Up to [`SMALL`] results are
    /// selected in arrays on the stack (the first word of each distance kept beside it); more
    /// go through `out` directly.
    fn gather(
        &self,
        range: Range<usize>,
        target: DistanceKey,
        count: usize,
        out: &mut Vec<NodeInfo>,
        keep: &impl Fn(&Record<A>) -> bool,
    ) -> bool {
        let need = count.saturating_sub(out.len());
        if need == 0 {
            return true;
        }
        let buckets = &self.buckets[range];
        if let [bucket] = buckets {
            let nodes = &bucket.nodes;
            let window = window(nodes, &bucket.by_id, target, need, keep);
            let members = window.iter().map(|&i| &nodes[usize::from(i)]);
            Self::select(members, target, count, need, keep, out);
        } else {
            let members = buckets.iter().flat_map(|b| &b.nodes);
            Self::select(members, target, count, need, keep, out);
        }
        out.len() >= count
    }

    /// The selection of [`gather`](Self::gather) over some lists of members.
    fn select<'a>(
        members: impl Iterator<Item = &'a Record<A>>,
        target: DistanceKey,
        count: usize,
        need: usize,
        keep: &impl Fn(&Record<A>) -> bool,
        out: &mut Vec<NodeInfo>,
    ) where
        A: 'a,
    {
        if need <= SMALL {
            // The first word of each kept distance beside it: most comparisons end there.
            let mut firsts = [0u64; SMALL];
            let mut kept: [&Record<A>; SMALL] = [A::PLACEHOLDER; SMALL];
            let mut len = 0;
            for entry in members {
                if !keep(entry) {
                    continue;
                }
                let first = target.0 ^ DistanceKey::first_word(&entry.id);
                let closer = |first_j: u64, node_j: &Record<A>| {
                    first < first_j
                        || (first == first_j
                            && target.xor(DistanceKey::of(&entry.id))
                                < target.xor(DistanceKey::of(&node_j.id)))
                };
                let mut i = if len < need {
                    len += 1;
                    len - 1
                } else if closer(firsts[len - 1], kept[len - 1]) {
                    len - 1
                } else {
                    continue;
                };
                // The farther ones move one place out (a short loop: `copy_within` would
                // call memmove); the last place was free or held the one that drops out.
                while i > 0 && closer(firsts[i - 1], kept[i - 1]) {
                    firsts[i] = firsts[i - 1];
                    kept[i] = kept[i - 1];
                    i -= 1;
                }
                firsts[i] = first;
                kept[i] = entry;
            }
            out.extend(kept[..len].iter().map(|e| e.node()));
        } else {
            let start = out.len();
            let distance = |id: &NodeId| target.xor(DistanceKey::of(id));
            let mut worst = None;
            for entry in members {
                if !keep(entry) {
                    continue;
                }
                let d = distance(&entry.id);
                if out.len() >= count {
                    if worst.is_some_and(|w| d >= w) {
                        continue;
                    }
                    out.pop();
                }
                let at = start + out[start..].partition_point(|n| distance(&n.id) < d);
                out.insert(at, entry.node());
                worst = out.last().map(|n| distance(&n.id));
            }
        }
    }

    /// A refresh target in bucket `b` whose members are chosen for speed: a random id in
    /// the slot ([`bucket_slot`]) with no member, or else in the slot of the slowest member.
    /// The nodes that answer a lookup share the target's leading bits, so they are
    /// candidates for its slot alone: a random target would measure one random slot a
    /// refresh, and the slowest members would wait for their turn by chance.
    fn sample_target(&self, b: usize, rng: &mut impl Rng) -> NodeId {
        let mut id = self.random_id_in(b, rng);
        let nodes = &self.buckets[b].nodes;
        let bits = slot_bits(b, nodes.len());
        if bits == 0 {
            return id;
        }
        let mut worst = [None; SLOTS_MAX];
        for e in nodes {
            let s = &mut worst[bucket_slot(&e.id, b, nodes.len())];
            *s = (*s).max(Some(e.slowness()));
        }
        let slots = &worst[..1 << bits];
        let slot = match slots.iter().position(Option::is_none) {
            Some(empty) => empty,
            None => (0..slots.len()).max_by_key(|&s| slots[s]).unwrap_or(0),
        };
        for i in 0..bits {
            id.set_bit(b + 1 + i, slot >> (bits - 1 - i) & 1 == 1);
        }
        id
    }

    /// A random id in bucket `b`'s range: our first `b` bits, then (except in the last bucket,
    /// which covers our id) bit `b` flipped, then random bits.
    fn random_id_in(&self, b: usize, rng: &mut impl Rng) -> NodeId {
        let mut bytes = [0u8; ID_LEN];
        rng.fill(&mut bytes[..]);
        let mut id = NodeId(bytes);
        let last = b + 1 == self.buckets.len();
        let fixed = if last { b } else { b + 1 };
        for bit in 0..fixed {
            // Our prefix, then (but in the last bucket) bit b flipped.
            id.set_bit(bit, self.own_id.bit(bit) != (bit == b));
        }
        id
    }
}

/// The Kademlia routing table of one address family.
#[derive(Debug, Clone)]
pub struct RoutingTable(Family);

/// A table of each family: IPv4 records keep their address in 6 bytes, IPv6 ones whole.
#[derive(Debug, Clone)]
enum Family {
    V4(Table<V4>),
    V6(Table<SocketAddrV6>),
}

/// Runs `$e` with `$t` bound to the table, whatever its family.
macro_rules! each {
    ($self:expr, $t:ident => $e:expr) => {
        match &$self.0 {
            Family::V4($t) => $e,
            Family::V6($t) => $e,
        }
    };
    (mut $self:expr, $t:ident => $e:expr) => {
        match &mut $self.0 {
            Family::V4($t) => $e,
            Family::V6($t) => $e,
        }
    };
}

impl RoutingTable {
    /// An empty IPv4 table around `own_id`.
    pub fn new(own_id: NodeId, config: RoutingConfig) -> Self {
        Self::with_config(own_id, Arc::new(config))
    }

    /// An empty IPv4 table around `own_id` whose settings are shared (one copy for a node's
    /// two tables).
    pub fn with_config(own_id: NodeId, config: Arc<RoutingConfig>) -> Self {
        Self::of_family(xorro_wire::Family::V4, own_id, config)
    }

    /// An empty table of `family` around `own_id`. It takes only addresses of its family
    /// (an IPv4-mapped IPv6 address is an IPv6 address here); others are refused with
    /// [`RejectReason::WrongFamily`].
    pub fn of_family(
        family: xorro_wire::Family,
        own_id: NodeId,
        config: Arc<RoutingConfig>,
    ) -> Self {
        Self(match family {
            xorro_wire::Family::V4 => Family::V4(Table::with_config(own_id, config)),
            xorro_wire::Family::V6 => Family::V6(Table::with_config(own_id, config)),
        })
    }

    /// The family of the addresses the table takes.
    pub fn family(&self) -> xorro_wire::Family {
        match self.0 {
            Family::V4(_) => xorro_wire::Family::V4,
            Family::V6(_) => xorro_wire::Family::V6,
        }
    }

    /// Our id.
    pub fn own_id(&self) -> NodeId {
        each!(self, t => t.own_id)
    }

    /// The settings.
    pub fn config(&self) -> &RoutingConfig {
        each!(self, t => &t.config)
    }

    /// Number of members (the replacement caches are not counted).
    pub fn len(&self) -> usize {
        each!(self, t => t.len())
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        each!(self, t => t.is_empty())
    }

    /// Number of contacts waiting in the replacement caches.
    pub fn cached_len(&self) -> usize {
        each!(self, t => t.cached_len())
    }

    /// Bytes the table holds on the heap (allocated capacities times element sizes).
    pub fn heap_bytes(&self) -> usize {
        each!(self, t => t.heap_bytes())
    }

    /// Number of buckets (1 to [`MAX_BUCKETS`]).
    pub fn bucket_count(&self) -> usize {
        each!(self, t => t.buckets.len())
    }

    /// The members, farthest bucket first, in the order they joined each bucket.
    pub fn iter(&self) -> Box<dyn Iterator<Item = Entry> + '_> {
        each!(self, t => Box::new(t.iter()))
    }

    /// True when a member has this address.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        each!(self, t => t.member(addr).is_some())
    }

    /// The member at this address.
    pub fn get(&self, addr: SocketAddr) -> Option<Entry> {
        each!(self, t => t.get(addr))
    }

    /// The standing of `entry` at `now`.
    pub fn state(&self, entry: &Entry, now: Instant) -> NodeState {
        each!(self, t => t.state(entry, now))
    }

    /// A node answered one of our queries: `rtt` is the round trip of that query when known.
    pub fn on_response(
        &mut self,
        node: NodeInfo,
        rtt: Option<Duration>,
        now: Instant,
    ) -> Insertion {
        each!(mut self, t => t.on_response(node, rtt, now))
    }

    /// A node sent us a query. Its address is unverified: a member is updated; an unknown
    /// node only waits in the replacement cache until it answers one of our queries.
    pub fn on_query_from(&mut self, node: NodeInfo, now: Instant) -> QueryOutcome {
        each!(mut self, t => t.on_query_from(node, now))
    }

    /// A query to `addr` timed out. `id` is the id we expected there, when known; a different
    /// id at that address means the failure is not about that entry.
    ///
    /// After `node_fail_limit` failures in a row a member is bad: the most recently verified
    /// replacement takes its place, or it stays (excluded from [`closest`](Self::closest))
    /// until a new node replaces it. A waiting contact that turns bad is dropped. Failures
    /// are counted, not timed: `now` keeps the inputs uniform.
    pub fn on_failure(
        &mut self,
        addr: SocketAddr,
        id: Option<NodeId>,
        now: Instant,
    ) -> FailureOutcome {
        each!(mut self, t => t.on_failure(addr, id, now))
    }

    /// Removes the entry (member or waiting contact) at `addr`. A member's place goes to the
    /// most recently verified replacement.
    pub fn remove(&mut self, addr: SocketAddr) -> Option<NodeInfo> {
        each!(mut self, t => t.remove(addr))
    }

    /// Replaces the contents of `out` with the `count` members closest to `target` by XOR,
    /// closest first, leaving out bad nodes.
    ///
    /// Walks the buckets in order of distance from the target and stops once `out` is full;
    /// each candidate goes through a bounded insertion, so the cost is about one bucket (a
    /// distance and a comparison a node), not a sort of the table.
    pub fn closest(&self, target: &NodeId, count: usize, out: &mut Vec<NodeInfo>) {
        each!(self, t => t.closest(target, count, out))
    }

    /// The members to put in an answer to a query for `target`: with
    /// [`RoutingConfig::answer_good_first`] (BEP 5: a node answers with "the K closest good
    /// nodes in its routing table") the `count` closest good members with no failure since
    /// their last answer, then, when fewer are good, the closest questionable ones after
    /// them; otherwise what [`closest`](Self::closest) gives. Good and failing is decided at
    /// `now`.
    pub fn closest_for_answer(
        &self,
        target: &NodeId,
        count: usize,
        now: Instant,
        out: &mut Vec<NodeInfo>,
    ) {
        each!(self, t => t.closest_for_answer(target, count, now, out))
    }

    /// Of `handed` (an answer just built), the members silent and not pinged for
    /// [`RoutingConfig::handout_ping_after`]: each is marked pinged at `now` and appended to
    /// `out`, for the caller to ping. Nothing when the setting is zero.
    pub fn due_after_handout(
        &mut self,
        handed: &[NodeInfo],
        now: Instant,
        out: &mut Vec<NodeInfo>,
    ) {
        each!(mut self, t => t.due_after_handout(handed, now, out))
    }

    /// Whether a member is not bad (a lookup or an answer has someone to name).
    pub fn has_usable(&self) -> bool {
        each!(self, t => t.has_usable())
    }

    /// For every bucket with no answer from its members (whatever their answers for the
    /// buckets whose members [`RoutingConfig::prefer_low_rtt`] chooses by speed, past the wide
    /// and before the near ones) and no lookup into it for `bucket_refresh_interval`, an id
    /// in its range to look up; the bucket counts as refreshed from `now`. Farthest bucket
    /// first, at most `max`: the buckets past them stay due for the next call.
    pub fn refresh_targets(&mut self, now: Instant, max: usize, rng: &mut impl Rng) -> Vec<NodeId> {
        each!(mut self, t => t.refresh_targets(now, max, rng))
    }

    /// A lookup for `target` ran: its bucket counts as refreshed.
    pub fn mark_refreshed(&mut self, target: &NodeId, now: Instant) {
        each!(mut self, t => t.mark_refreshed(target, now))
    }

    /// Up to `max` questionable members not pinged in the last `node_ping_interval`, least
    /// recently seen first. They count as pinged from `now`: ping them, then report the answer
    /// or the timeout.
    pub fn stale_to_ping(&mut self, now: Instant, max: usize) -> Vec<NodeInfo> {
        each!(mut self, t => t.stale_to_ping(now, max))
    }

    /// The members that are not bad, in [`iter`](Self::iter) order, to save.
    pub fn snapshot(&self, now: Instant) -> Vec<SavedContact> {
        each!(self, t => t.snapshot(now))
    }

    /// Adds saved contacts as members; those that do not fit wait in the replacement
    /// caches. Contacts that break the table's rules (or are of the other family) are
    /// skipped. Returns how many became members.
    ///
    /// A contact that answered less than [`RoutingConfig::node_good_interval`] before `now`
    /// (its `answered_ago`) comes back good, answered then, and its bucket counts as
    /// refreshed then; the others come back questionable, so
    /// [`stale_to_ping`](Self::stale_to_ping) returns them (they have not answered us yet).
    pub fn restore(
        &mut self,
        contacts: impl IntoIterator<Item = SavedContact>,
        now: Instant,
    ) -> usize {
        each!(mut self, t => t.restore(contacts, now))
    }

    /// Changes our id (BEP 42 may ask for a new one) and rebuilds the table around it: members
    /// are placed again first, then the waiting contacts; what no longer fits waits in a
    /// replacement cache or is dropped, bad members are dropped, and every bucket is due for a
    /// refresh.
    pub fn set_own_id(&mut self, new_id: NodeId) {
        each!(mut self, t => t.set_own_id(new_id))
    }
}

/// What counts as recent at one instant, computed once for a scan of many entries.
#[derive(Debug, Clone, Copy)]
struct Horizons {
    /// Answered (or, verified, queried us) within `node_good_interval`.
    good: Recent,
    /// Answered or queried us within `near_ping_interval`.
    near_heard: Recent,
    /// The first near bucket (the bucket count when none is near).
    near_from: usize,
    /// Pinged within `node_ping_interval`.
    pinged: Recent,
}

/// Whether a tick lies less than some interval before `now` (`now - t < interval`, to the
/// millisecond, later ticks included), as one comparison with a precomputed bound instead of
/// a subtraction per entry.
#[derive(Debug, Clone, Copy)]
enum Recent {
    /// `now - interval` is before the clock's first tick: every tick is recent.
    Always,
    /// Ticks after this one are recent.
    After(Tick),
    /// A zero interval: nothing is recent.
    Never,
}

impl Recent {
    fn new(now: Tick, interval: Duration) -> Self {
        if interval.is_zero() {
            return Recent::Never;
        }
        match u32::try_from(interval.as_millis()) {
            Ok(ms) if ms < now.0 => Recent::After(Tick(now.0 - ms)),
            _ => Recent::Always,
        }
    }

    fn holds(self, t: Tick) -> bool {
        match self {
            _ if !t.is_some() => false,
            Recent::Never => false,
            Recent::Always => true,
            Recent::After(bound) => t > bound,
        }
    }
}

/// Results of [`RoutingTable::closest`] selected on the stack; more use the output vector.
const SMALL: usize = 16;

/// The part of `by_id` (one bucket's positions in `nodes`, in id order) that holds the `need`
/// members `keep` accepts closest to `target`, or all of them when there are fewer.
///
/// The bits an id shares with the target shrink (or stay) going away from the target's place
/// in id order, on either side, and sharing more bits means closer by XOR. So the members,
/// taken outwards from the target's place by merging the two sides on shared bits, come in
/// order of shared bits: take them until `keep` accepted `need`, then the rest of that last
/// level (one side's block, in no useful order); every member outside is farther than all
/// those inside. Costs a binary search and a walk of about `need` to `2 × need` members
/// instead of a look at every member of a wide bucket.
fn window<'a, A>(
    nodes: &[Record<A>],
    by_id: &'a [u16],
    target: DistanceKey,
    need: usize,
    keep: &impl Fn(&Record<A>) -> bool,
) -> &'a [u16] {
    let entry = |i: u16| &nodes[usize::from(i)];
    let shared = |i: u16| -> i32 {
        let d = target.xor(DistanceKey::of(&entry(i).id));
        // At most 160: fits.
        if d.0 != 0 {
            d.0.leading_zeros() as i32
        } else if d.1 != 0 {
            64 + d.1.leading_zeros() as i32
        } else {
            128 + d.2.leading_zeros() as i32
        }
    };
    let n = by_id.len();
    let at = by_id.partition_point(|&i| DistanceKey::of(&entry(i).id) < target);
    let (mut lo, mut hi) = (at, at);
    let mut taken = 0;
    let mut level = -1;
    while taken < need && (lo > 0 || hi < n) {
        let left = if lo > 0 { shared(by_id[lo - 1]) } else { -1 };
        let right = if hi < n { shared(by_id[hi]) } else { -1 };
        let next = if left >= right {
            lo -= 1;
            level = left;
            by_id[lo]
        } else {
            hi += 1;
            level = right;
            by_id[hi - 1]
        };
        if keep(entry(next)) {
            taken += 1;
        }
    }
    while lo > 0 && shared(by_id[lo - 1]) == level {
        lo -= 1;
    }
    while hi < n && shared(by_id[hi]) == level {
        hi += 1;
    }
    &by_id[lo..hi]
}

/// The most slots a full bucket is cut into ([`bucket_slot`]).
const SLOTS_MAX: usize = 256;

/// The slot of `id` in bucket `b` of `size` members, as [`RoutingConfig::prefer_low_rtt`]
/// spreads a full bucket over its range: the `log2(size)` id bits (at most 8) that follow
/// bit `b`, the bit that sets the bucket apart from our id. Below 256.
pub fn bucket_slot(id: &NodeId, b: usize, size: usize) -> usize {
    (0..slot_bits(b, size)).fold(0, |s, i| s << 1 | usize::from(id.bit(b + 1 + i)))
}

/// How many id bits make the slot of bucket `b` of `size` members ([`bucket_slot`]).
fn slot_bits(b: usize, size: usize) -> usize {
    (size.max(1).ilog2() as usize)
        .min(SLOTS_MAX.ilog2() as usize)
        .min(MAX_BUCKETS.saturating_sub(b + 1))
}

/// An id's first eight bytes as a word, to rule out most unequal ids with one comparison.
#[inline]
fn id_prefix(id: &NodeId) -> u64 {
    let [a0, a1, a2, a3, a4, a5, a6, a7, ..] = id.0;
    u64::from_ne_bytes([a0, a1, a2, a3, a4, a5, a6, a7])
}

/// An id as three big-endian integers: XOR of two keys orders like [`NodeId::distance`], with
/// integer comparisons (usually one) instead of twenty byte comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct DistanceKey(u64, u64, u32);

impl DistanceKey {
    #[inline]
    fn of(id: &NodeId) -> Self {
        let [
            a0,
            a1,
            a2,
            a3,
            a4,
            a5,
            a6,
            a7,
            b0,
            b1,
            b2,
            b3,
            b4,
            b5,
            b6,
            b7,
            c0,
            c1,
            c2,
            c3,
        ] = id.0;
        Self(
            u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
            u32::from_be_bytes([c0, c1, c2, c3]),
        )
    }

    /// The first word of [`DistanceKey::of`] alone.
    #[inline]
    fn first_word(id: &NodeId) -> u64 {
        let [a0, a1, a2, a3, a4, a5, a6, a7, ..] = id.0;
        u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7])
    }

    #[inline]
    fn xor(self, other: Self) -> Self {
        Self(self.0 ^ other.0, self.1 ^ other.1, self.2 ^ other.2)
    }
}

/// The tests look inside IPv4 tables.
#[cfg(test)]
impl RoutingTable {
    fn v4(&self) -> &Table<V4> {
        match &self.0 {
            Family::V4(t) => t,
            Family::V6(_) => panic!("an IPv6 table"),
        }
    }

    fn v4_mut(&mut self) -> &mut Table<V4> {
        match &mut self.0 {
            Family::V4(t) => t,
            Family::V6(_) => panic!("an IPv6 table"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    #[test]
    fn records_are_compact_and_keep_addresses_whole() {
        use std::mem::size_of;
        assert_eq!(size_of::<Record<V4>>(), 44);
        assert_eq!(size_of::<Record<SocketAddrV6>>(), 68);
        // Members, positions and cache as `Vec`s, the refresh time as a tick.
        assert_eq!(size_of::<Bucket<V4>>(), 80);
        let id = NodeId([7; ID_LEN]);
        for addr in [
            SocketAddr::from((Ipv4Addr::new(1, 2, 3, 4), 65535)),
            SocketAddr::from((Ipv4Addr::new(255, 0, 128, 9), 1)),
        ] {
            let r = Record::<V4>::new(NodeInfo { id, addr }).expect("IPv4");
            assert_eq!(r.node(), NodeInfo { id, addr });
            assert!(Record::<SocketAddrV6>::new(NodeInfo { id, addr }).is_none());
        }
        let v6 = SocketAddrV6::new("fe80::1".parse().expect("an IPv6 address"), 6881, 5, 3);
        let mapped = SocketAddrV6::new(Ipv4Addr::new(9, 8, 7, 6).to_ipv6_mapped(), 80, 0, 0);
        for addr in [SocketAddr::V6(v6), SocketAddr::V6(mapped)] {
            let r = Record::<SocketAddrV6>::new(NodeInfo { id, addr }).expect("IPv6");
            assert_eq!(r.node(), NodeInfo { id, addr });
            assert!(Record::<V4>::new(NodeInfo { id, addr }).is_none());
        }
    }

    #[allow(clippy::disallowed_methods)] // one real instant; every other time derives from it
    fn t0() -> Instant {
        Instant::now()
    }

    const MIN: Duration = Duration::from_secs(60);
    const SEC: Duration = Duration::from_secs(1);

    /// An id sharing exactly `shared` leading bits with `own` (all of them when 160).
    fn id_at(own: NodeId, shared: usize, rng: &mut impl Rng) -> NodeId {
        let mut bytes: [u8; ID_LEN] = rng.r#gen();
        for bit in 0..shared.min(160) {
            let mask = 0x80u8 >> (bit % 8);
            bytes[bit / 8] = (bytes[bit / 8] & !mask) | (own.0[bit / 8] & mask);
        }
        if shared < 160 {
            let mask = 0x80u8 >> (shared % 8);
            bytes[shared / 8] = (bytes[shared / 8] & !mask) | (!own.0[shared / 8] & mask);
        }
        NodeId(bytes)
    }

    fn v4(i: u32) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + i), 6881))
    }

    #[test]
    fn the_ipv4_index_is_sorted_and_keeps_little_spare_room() {
        let mut index = AddrIndex::new(&RoutingConfig::default());
        // Descending IPs, two ports on one loopback IP (exempt from the IP rule).
        for i in (0..300u32).rev() {
            index.insert(&v4(i * 7919 % 1000), (i % 160) as u8);
        }
        let lo = |port| SocketAddr::from(([127, 0, 0, 1], port));
        index.insert(&lo(2), 5);
        index.insert(&lo(1), 6);
        assert!(index.v4.is_sorted());
        assert_eq!(index.len(), 302);
        assert!(index.v4.capacity() <= 302 + 302 / 4 + V4_INDEX_STEP);
        for i in 0..300u32 {
            let a = v4(i * 7919 % 1000);
            assert_eq!(index.get(&a), Some((i % 160) as u8));
            assert_eq!(index.holder_of(a.ip()), Some(a));
        }
        assert_eq!((index.get(&lo(1)), index.get(&lo(2))), (Some(6), Some(5)));
        assert_eq!(index.get(&v4(1001)), None);
        assert_eq!(index.holder_of(v4(1001).ip()), None);
        for i in 0..290u32 {
            index.remove(&v4(i * 7919 % 1000));
        }
        index.remove(&v4(1001));
        assert_eq!(index.len(), 12);
        assert!(
            index.v4.capacity() < 32,
            "{} places kept",
            index.v4.capacity()
        );
        assert_eq!(index.get(&v4(299 * 7919 % 1000)), Some((299 % 160) as u8));
    }

    /// BEP 5's table: every bucket k, members kept whatever their speed.
    fn narrow() -> RoutingConfig {
        RoutingConfig {
            bucket_sizes_far: Vec::new(),
            prefer_low_rtt: false,
            ..RoutingConfig::default()
        }
    }

    /// libtorrent's layout (our default until 6 Dec 2026): wide far buckets, members kept
    /// whatever their speed. For the rules that choosing by speed would reorder.
    fn wide() -> RoutingConfig {
        RoutingConfig {
            bucket_sizes_far: BUCKET_SIZES_FAR.to_vec(),
            prefer_low_rtt: false,
            ..RoutingConfig::default()
        }
    }

    fn shared_bits(table: &RoutingTable, id: &NodeId) -> usize {
        table.own_id().distance(id).leading_zeros() as usize
    }

    /// Every structural rule of the table.
    fn check(table: &RoutingTable) {
        assert!(!table.v4().buckets.is_empty() && table.v4().buckets.len() <= MAX_BUCKETS);
        let mut ids = HashSet::new();
        let mut addrs = HashSet::new();
        let mut ips = HashSet::new();
        let n = table.v4().buckets.len();
        for (b, bucket) in table.v4().buckets.iter().enumerate() {
            assert!(
                bucket.nodes.len() <= table.v4().capacity(b),
                "bucket {b} over its size"
            );
            assert!(bucket.cache.len() <= table.v4().config.replacement_cache_size);
            assert!(
                bucket.may_have_bad || !bucket.nodes.iter().any(|e| table.v4().is_bad(e)),
                "bucket {b} holds a bad member but says it cannot"
            );
            let mut order: Vec<u16> = bucket.by_id.to_vec();
            assert!(
                order.is_sorted_by_key(|&i| DistanceKey::of(&bucket.nodes[usize::from(i)].id)),
                "bucket {b}: by_id not in id order"
            );
            order.sort_unstable();
            assert!(
                order
                    .iter()
                    .copied()
                    .map(usize::from)
                    .eq(0..bucket.nodes.len()),
                "bucket {b}: by_id is not a permutation of the members"
            );
            for (member, e) in bucket
                .nodes
                .iter()
                .map(|e| (true, e))
                .chain(bucket.cache.iter().map(|e| (false, e)))
            {
                let shared = shared_bits(table, &e.id);
                assert_ne!(e.id, table.v4().own_id);
                assert_eq!(shared.min(n - 1), b, "entry in the wrong bucket");
                assert!(ids.insert(e.id), "duplicate id");
                assert!(addrs.insert(e.addr()), "duplicate address");
                assert_eq!(
                    table.v4().index.get(&e.addr()),
                    Some(table.v4().shared_bits(&e.id))
                );
                if let Some(ip) = table.v4().ip_key(&e.addr()) {
                    assert!(ips.insert(ip), "two entries on one IP");
                    assert_eq!(table.v4().index.holder_of(ip), Some(e.addr()));
                }
                if !member {
                    assert!(!table.v4().is_bad(e), "bad entry left in a cache");
                }
            }
        }
        assert_eq!(table.v4().index.len(), addrs.len());
    }

    fn brute_closest(table: &RoutingTable, target: &NodeId, count: usize) -> Vec<NodeInfo> {
        let mut all: Vec<NodeInfo> = table
            .iter()
            .filter(|e| e.failures() < table.v4().fail_limit())
            .map(|e| e.node())
            .collect();
        all.sort_by_key(|n| n.id.distance(target));
        all.truncate(count);
        all
    }

    #[test]
    fn defaults_follow_the_beps() {
        let c = RoutingConfig::default();
        assert_eq!(c.bucket_size, 8);
        // Not libtorrent's wide far buckets: k-sized ones chosen for speed (the simulator's).
        assert!(c.bucket_sizes_far.is_empty() && c.prefer_low_rtt);
        assert_eq!(c.node_good_interval, Duration::from_secs(900));
        assert_eq!(c.bucket_refresh_interval, Duration::from_secs(900));
        assert_eq!(c.node_fail_limit, 2);
        assert!(c.one_node_per_ip && c.one_node_per_ip_exempt_loopback);
        // BEP 5: answers hold "the K closest good nodes".
        assert!(c.answer_good_first);
        assert_eq!(
            (c.near_buckets, c.near_ping_interval),
            (3, Duration::from_secs(60))
        );
        assert!(c.ping_failed_queriers);
        let t = RoutingTable::new(NodeId::ZERO, c);
        assert!(t.is_empty());
        assert_eq!((t.len(), t.bucket_count(), t.cached_len()), (0, 1, 0));
    }

    #[test]
    fn own_bucket_splits_and_far_buckets_do_not() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, narrow());
        let now = t0();
        let mut i = 0;
        let mut add = |t: &mut RoutingTable, shared: usize, rng: &mut ChaCha8Rng| {
            i += 1;
            t.on_response(NodeInfo::new(id_at(own, shared, rng), v4(i)), None, now)
        };
        for _ in 0..8 {
            assert_eq!(add(&mut t, 0, &mut rng), Insertion::Added);
        }
        assert_eq!(t.bucket_count(), 1);
        // The only bucket covers our id: a ninth far node splits it, then waits (bucket 0
        // no longer covers our id).
        assert_eq!(add(&mut t, 0, &mut rng), Insertion::Cached);
        assert_eq!(t.bucket_count(), 2);
        assert_eq!((t.len(), t.cached_len()), (8, 1));
        for _ in 0..8 {
            assert_eq!(add(&mut t, 1, &mut rng), Insertion::Added);
        }
        // A node sharing 5 bits lands in the last bucket (index 1), full of nodes sharing 1
        // bit: it splits, and the new last bucket takes the node.
        assert_eq!(add(&mut t, 5, &mut rng), Insertion::Added);
        assert_eq!(t.bucket_count(), 3);
        assert_eq!(add(&mut t, 5, &mut rng), Insertion::Added);
        assert_eq!(t.v4().buckets[2].nodes.len(), 2);
        assert_eq!(t.v4().buckets[1].nodes.len(), 8);
        // Far bucket 0 is full of good nodes and does not split.
        assert_eq!(add(&mut t, 0, &mut rng), Insertion::Cached);
        assert_eq!(t.bucket_count(), 3);
        check(&t);

        // With one node per bucket, one node per prefix length splits all the way down.
        let mut t = RoutingTable::new(
            own,
            RoutingConfig {
                bucket_size: 1,
                ..narrow()
            },
        );
        for shared in 0..160 {
            assert_eq!(add(&mut t, shared, &mut rng), Insertion::Added, "{shared}");
        }
        assert_eq!(t.bucket_count(), MAX_BUCKETS);
        assert_eq!(t.len(), MAX_BUCKETS);
        assert_eq!(
            add(&mut t, 100, &mut rng),
            Insertion::Cached,
            "only the last bucket splits"
        );
        check(&t);
    }

    #[test]
    fn far_buckets_are_wide() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let own = NodeId(rng.r#gen());
        for (config, sizes) in [
            (wide(), vec![128, 64, 32, 16, 8, 8]),
            (RoutingConfig::default(), vec![8; 6]),
            (narrow(), vec![8; 6]),
            (
                RoutingConfig {
                    bucket_sizes_far: vec![3, 2],
                    ..narrow()
                },
                vec![3, 2, 8, 8, 8, 8],
            ),
        ] {
            let mut t = RoutingTable::new(own, config);
            let mut i = 0;
            for shared in 0..6 {
                for _ in 0..200 {
                    i += 1;
                    t.on_response(
                        NodeInfo::new(id_at(own, shared, &mut rng), v4(i)),
                        None,
                        t0(),
                    );
                }
            }
            let got: Vec<usize> = t
                .v4()
                .buckets
                .iter()
                .take(6)
                .map(|b| b.nodes.len())
                .collect();
            assert_eq!(got, sizes);
            check(&t);
        }
    }

    #[test]
    fn ping_before_evict() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, narrow());
        let start = t0();
        let far: Vec<NodeInfo> = (0..8)
            .map(|i| NodeInfo::new(id_at(own, 0, &mut rng), v4(i)))
            .collect();
        for n in &far {
            assert_eq!(t.on_response(*n, None, start), Insertion::Added);
        }
        // Make bucket 0 a far bucket (no longer covering our id).
        t.on_response(NodeInfo::new(id_at(own, 3, &mut rng), v4(100)), None, start);
        assert_eq!(t.bucket_count(), 2);

        // Twenty minutes of silence: bucket 0 is questionable.
        let later = start + 20 * MIN;
        assert_eq!(
            t.state(&t.get(far[0].addr).unwrap(), later),
            NodeState::Questionable
        );
        let new1 = NodeInfo::new(id_at(own, 0, &mut rng), v4(200));
        let Insertion::PingFirst { stale } = t.on_response(new1, None, later) else {
            panic!("a full bucket with questionable nodes asks for a ping");
        };
        assert_eq!(
            stale, far[0],
            "the least recently seen (first joined on ties)"
        );
        assert!(!t.contains(new1.addr));
        assert_eq!(t.cached_len(), 1);

        // The stale node answers: it stays, the newcomer keeps waiting.
        assert_eq!(
            t.on_response(
                stale,
                Some(Duration::from_millis(50)),
                later + Duration::from_secs(1)
            ),
            Insertion::Updated
        );
        assert_eq!(t.state(&t.get(stale.addr).unwrap(), later), NodeState::Good);
        assert!(!t.contains(new1.addr));
        assert_eq!(t.cached_len(), 1);

        // Another newcomer: the next questionable node is pinged, and it fails twice.
        let new2 = NodeInfo::new(id_at(own, 0, &mut rng), v4(201));
        let Insertion::PingFirst { stale: stale2 } =
            t.on_response(new2, None, later + Duration::from_secs(2))
        else {
            panic!("expected a ping");
        };
        assert_eq!(stale2, far[1]);
        // While that ping is pending, a third newcomer does not ping it again.
        let new3 = NodeInfo::new(id_at(own, 0, &mut rng), v4(202));
        assert!(
            matches!(t.on_response(new3, None, later + Duration::from_secs(3)), Insertion::PingFirst { stale } if stale == far[2])
        );
        assert_eq!(
            t.on_failure(stale2.addr, Some(stale2.id), later + Duration::from_secs(5)),
            FailureOutcome::Counted { failures: 1 }
        );
        assert_eq!(
            t.on_failure(
                stale2.addr,
                Some(stale2.id),
                later + MIN + Duration::from_secs(10)
            ),
            FailureOutcome::Replaced {
                bad: stale2,
                by: new3
            },
            "the most recently verified replacement takes the place"
        );
        assert!(t.contains(new3.addr) && !t.contains(stale2.addr));
        assert_eq!(t.cached_len(), 2);
        check(&t);
    }

    /// An id sharing no leading bit with `own` whose next three bits (bits 1 to 3: the slot
    /// of a far bucket of 8) are `slot`.
    fn id_in_slot(own: NodeId, slot: u8, rng: &mut impl Rng) -> NodeId {
        let mut id = id_at(own, 0, rng);
        id.0[0] = (id.0[0] & 0x8f) | (slot & 7) << 4;
        id
    }

    #[test]
    fn faster_nodes_take_the_places_of_slower_members_slot_by_slot() {
        let ms = Duration::from_millis;
        for prefer in [true, false] {
            let mut rng = ChaCha8Rng::seed_from_u64(31);
            let own = NodeId(rng.r#gen());
            let config = RoutingConfig {
                prefer_low_rtt: prefer,
                near_buckets: 0,
                ..narrow()
            };
            let mut t = RoutingTable::new(own, config);
            let now = t0();
            // Slot 0 holds two members (100 and 300 ms), slots 1 to 6 one each, slot 7 none.
            let mut members = Vec::new();
            for (i, (slot, rtt)) in [(0, 100), (0, 300), (1, 50), (2, 50), (3, 50), (4, 50)]
                .into_iter()
                .chain([(5, 50), (6, 50)])
                .enumerate()
            {
                let n = NodeInfo::new(id_in_slot(own, slot, &mut rng), v4(i as u32));
                assert_eq!(t.on_response(n, Some(ms(rtt)), now), Insertion::Added);
                members.push(n);
            }
            // Bucket 0 splits off: it no longer covers our id and stays full.
            t.on_response(NodeInfo::new(id_at(own, 3, &mut rng), v4(50)), None, now);
            assert_eq!(t.bucket_count(), 2);

            let faster = NodeInfo::new(id_in_slot(own, 0, &mut rng), v4(100));
            let got = t.on_response(faster, Some(ms(200)), now);
            if !prefer {
                assert_eq!(
                    got,
                    Insertion::Cached,
                    "off: the bucket is full of good members"
                );
                assert!(!t.contains(faster.addr));
                continue;
            }
            assert_eq!(got, Insertion::ReplacedSlower { moved: members[1] });
            assert!(t.contains(faster.addr) && !t.contains(members[1].addr));
            assert_eq!(t.cached_len(), 1, "the slower member waits in the cache");
            // Not faster than the slowest of its slot (now 200 ms): it waits.
            let slower = NodeInfo::new(id_in_slot(own, 0, &mut rng), v4(101));
            assert_eq!(t.on_response(slower, Some(ms(250)), now), Insertion::Cached);
            // Without a measured RTT a node takes nobody's place.
            let unmeasured = NodeInfo::new(id_in_slot(own, 7, &mut rng), v4(102));
            assert_eq!(t.on_response(unmeasured, None, now), Insertion::Cached);
            // An empty slot is filled, though the newcomer is slow: the slowest member of a
            // slot holding two goes.
            let spread = NodeInfo::new(id_in_slot(own, 7, &mut rng), v4(103));
            assert_eq!(
                t.on_response(spread, Some(ms(400)), now),
                Insertion::ReplacedSlower { moved: faster }
            );
            // Every slot now holds one member: a faster node of slot 3 replaces its member,
            // a slower one nobody.
            let slow3 = NodeInfo::new(id_in_slot(own, 3, &mut rng), v4(104));
            assert_eq!(t.on_response(slow3, Some(ms(60)), now), Insertion::Cached);
            let fast3 = NodeInfo::new(id_in_slot(own, 3, &mut rng), v4(105));
            assert_eq!(
                t.on_response(fast3, Some(ms(20)), now),
                Insertion::ReplacedSlower { moved: members[4] }
            );
            // A member that failed counts as slower than any that did not.
            t.on_failure(members[5].addr, Some(members[5].id), now);
            let slow4 = NodeInfo::new(id_in_slot(own, 4, &mut rng), v4(106));
            assert_eq!(
                t.on_response(slow4, Some(ms(900)), now),
                Insertion::ReplacedSlower { moved: members[5] }
            );
            let in_bucket: Vec<_> = t
                .iter()
                .filter(|e| shared_bits(&t, &e.node().id) == 0)
                .collect();
            assert_eq!(in_bucket.len(), 8);
            check(&t);
        }
    }

    #[test]
    fn bad_nodes_are_replaced_directly_or_stay_until_then() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, narrow());
        let now = t0();
        let far: Vec<NodeInfo> = (0..8)
            .map(|i| NodeInfo::new(id_at(own, 0, &mut rng), v4(i)))
            .collect();
        for n in &far {
            t.on_response(*n, None, now);
        }
        t.on_response(NodeInfo::new(id_at(own, 3, &mut rng), v4(100)), None, now);
        assert_eq!(
            t.on_failure(far[4].addr, None, now),
            FailureOutcome::Counted { failures: 1 }
        );
        assert_eq!(
            t.on_failure(far[4].addr, Some(far[5].id), now),
            FailureOutcome::Unknown,
            "another id"
        );
        assert_eq!(t.on_failure(v4(999), None, now), FailureOutcome::Unknown);
        assert_eq!(
            t.on_failure(far[4].addr, None, now),
            FailureOutcome::TurnedBad
        );
        assert_eq!(t.state(&t.get(far[4].addr).unwrap(), now), NodeState::Bad);
        let mut out = Vec::new();
        t.closest(&far[4].id, 20, &mut out);
        assert!(!out.contains(&far[4]), "bad nodes are not handed out");
        let newcomer = NodeInfo::new(id_at(own, 0, &mut rng), v4(300));
        assert_eq!(
            t.on_response(newcomer, None, now),
            Insertion::ReplacedBad { evicted: far[4] }
        );
        assert!(t.contains(newcomer.addr) && !t.contains(far[4].addr));
        check(&t);
    }

    /// `t` refuses `node`, of the other family, whether it answers or queries.
    fn refuses_family(t: &mut RoutingTable, node: NodeInfo, now: Instant) {
        assert_eq!(
            t.on_response(node, None, now),
            Insertion::Rejected(RejectReason::WrongFamily)
        );
        assert_eq!(
            t.on_query_from(node, now),
            QueryOutcome::Ignored(RejectReason::WrongFamily)
        );
    }

    #[test]
    fn one_node_per_ip_and_address_with_new_id() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        let now = t0();
        let a = NodeInfo::new(NodeId(rng.r#gen()), "192.0.2.1:1000".parse().unwrap());
        assert_eq!(t.on_response(a, None, now), Insertion::Added);
        let same_ip = NodeInfo::new(NodeId(rng.r#gen()), "192.0.2.1:2000".parse().unwrap());
        assert_eq!(
            t.on_response(same_ip, None, now),
            Insertion::Rejected(RejectReason::IpInUse)
        );
        let mapped = NodeInfo::new(
            NodeId(rng.r#gen()),
            "[::ffff:192.0.2.1]:3000".parse().unwrap(),
        );
        // An IPv4-mapped address is an IPv6 address: the node gives it to its IPv6 table.
        refuses_family(&mut t, mapped, now);
        assert_eq!(
            t.on_query_from(same_ip, now),
            QueryOutcome::Ignored(RejectReason::IpInUse)
        );
        let same_id = NodeInfo::new(a.id, "192.0.2.9:1000".parse().unwrap());
        assert_eq!(
            t.on_response(same_id, None, now),
            Insertion::Rejected(RejectReason::IdInUse)
        );
        assert_eq!(
            t.on_response(NodeInfo::new(own, v4(7)), None, now),
            Insertion::Rejected(RejectReason::OwnId)
        );

        // An unverified query showing a new id at a's address changes nothing but asks for a
        // ping (once a minute).
        let renamed = NodeInfo::new(NodeId(rng.r#gen()), a.addr);
        assert_eq!(t.on_query_from(renamed, now), QueryOutcome::PingToVerify);
        assert_eq!(
            t.on_query_from(renamed, now),
            QueryOutcome::Ignored(RejectReason::AddressInUse)
        );
        assert_eq!(t.get(a.addr).unwrap().node(), a);
        // The address answers with the new id: the old entry goes; the next answer adds it.
        assert_eq!(
            t.on_response(renamed, None, now),
            Insertion::IdChanged { old: a }
        );
        assert!(!t.contains(a.addr) && t.is_empty());
        assert_eq!(t.on_response(renamed, None, now), Insertion::Added);
        // A bad node's IP is free for a newcomer.
        t.on_failure(renamed.addr, None, now);
        t.on_failure(renamed.addr, None, now);
        assert_eq!(t.on_response(same_ip, None, now), Insertion::Added);
        assert!(!t.contains(renamed.addr));
        check(&t);
    }

    #[test]
    fn loopback_is_exempt_unless_configured() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let own = NodeId(rng.r#gen());
        let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let mut t = RoutingTable::new(own, wide());
        for port in 1..=50 {
            let n = NodeInfo::new(NodeId(rng.r#gen()), local(port));
            assert_eq!(t.on_response(n, None, t0()), Insertion::Added);
        }
        assert_eq!(t.len(), 50);
        check(&t);
        let strict = RoutingConfig {
            one_node_per_ip_exempt_loopback: false,
            ..wide()
        };
        let mut t = RoutingTable::new(own, strict);
        assert_eq!(
            t.on_response(NodeInfo::new(NodeId(rng.r#gen()), local(1)), None, t0()),
            Insertion::Added
        );
        assert_eq!(
            t.on_response(NodeInfo::new(NodeId(rng.r#gen()), local(2)), None, t0()),
            Insertion::Rejected(RejectReason::IpInUse)
        );
        let off = RoutingConfig {
            one_node_per_ip: false,
            ..wide()
        };
        let mut t = RoutingTable::new(own, off);
        for port in 1..=3 {
            let n = NodeInfo::new(
                NodeId(rng.r#gen()),
                SocketAddr::from(([192, 0, 2, 1], port)),
            );
            assert_eq!(t.on_response(n, None, t0()), Insertion::Added);
        }
    }

    #[test]
    fn states_over_time() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        let start = t0();
        let n = NodeInfo::new(NodeId(rng.r#gen()), v4(1));
        t.on_response(n, None, start);
        let state = |t: &RoutingTable, at: Instant| t.state(&t.get(n.addr).unwrap(), at);
        assert_eq!(state(&t, start + 14 * MIN), NodeState::Good);
        assert_eq!(state(&t, start + 15 * MIN), NodeState::Questionable);
        // It answered once and queries us: good again (BEP 5).
        assert_eq!(t.on_query_from(n, start + 30 * MIN), QueryOutcome::Member);
        assert_eq!(state(&t, start + 40 * MIN), NodeState::Good);
        assert_eq!(state(&t, start + 45 * MIN), NodeState::Questionable);
        assert_eq!(
            t.on_failure(n.addr, Some(n.id), start + 46 * MIN),
            FailureOutcome::Counted { failures: 1 }
        );
        assert_eq!(state(&t, start + 46 * MIN), NodeState::Questionable);
        assert_eq!(
            t.on_failure(n.addr, Some(n.id), start + 47 * MIN),
            FailureOutcome::TurnedBad
        );
        assert_eq!(state(&t, start + 47 * MIN), NodeState::Bad);
        // An answer clears the failures.
        assert_eq!(t.on_response(n, None, start + 48 * MIN), Insertion::Updated);
        assert_eq!(state(&t, start + 48 * MIN), NodeState::Good);
        assert_eq!(t.get(n.addr).unwrap().failures(), 0);
    }

    #[test]
    fn failed_members_that_query_us_are_pinged() {
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        let own = NodeId(rng.r#gen());
        for on in [false, true] {
            let config = RoutingConfig {
                ping_failed_queriers: on,
                ..RoutingConfig::default()
            };
            let mut t = RoutingTable::new(own, config);
            let start = t0();
            let n = NodeInfo::new(NodeId(rng.r#gen()), v4(1));
            t.on_response(n, None, start);
            // Not failed: a query only updates it.
            assert_eq!(t.on_query_from(n, start + MIN), QueryOutcome::Member);
            t.on_failure(n.addr, Some(n.id), start + 2 * MIN);
            t.on_failure(n.addr, Some(n.id), start + 2 * MIN);
            assert_eq!(
                t.state(&t.get(n.addr).unwrap(), start + 2 * MIN),
                NodeState::Bad
            );
            let want = if on {
                QueryOutcome::PingToVerify
            } else {
                QueryOutcome::Member
            };
            assert_eq!(t.on_query_from(n, start + 3 * MIN), want);
            // Once a ping interval.
            assert_eq!(
                t.on_query_from(n, start + 3 * MIN + Duration::from_secs(30)),
                QueryOutcome::Member
            );
            assert_eq!(t.on_query_from(n, start + 4 * MIN), want);
            // Its answer clears the failures: a query only updates it again.
            assert_eq!(t.on_response(n, None, start + 4 * MIN), Insertion::Updated);
            assert_eq!(
                t.state(&t.get(n.addr).unwrap(), start + 4 * MIN),
                NodeState::Good
            );
            assert_eq!(t.on_query_from(n, start + 6 * MIN), QueryOutcome::Member);
        }
    }

    #[test]
    fn queries_alone_do_not_make_members() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        let start = t0();
        let n = NodeInfo::new(NodeId(rng.r#gen()), v4(1));
        assert_eq!(t.on_query_from(n, start), QueryOutcome::PingToVerify);
        assert!(t.is_empty());
        assert_eq!(t.cached_len(), 1);
        assert_eq!(
            t.on_query_from(n, start + Duration::from_secs(5)),
            QueryOutcome::Cached,
            "ping pending"
        );
        assert_eq!(
            t.on_query_from(n, start + 2 * MIN),
            QueryOutcome::PingToVerify,
            "ping again later"
        );
        let mut out = Vec::new();
        t.closest(&n.id, 8, &mut out);
        assert!(out.is_empty(), "unverified contacts are not handed out");
        assert_eq!(
            t.on_response(n, Some(Duration::from_millis(30)), start + 2 * MIN),
            Insertion::Added
        );
        assert_eq!((t.len(), t.cached_len()), (1, 0));
        assert_eq!(
            t.get(n.addr).unwrap().last_query_from(),
            Some(start + 2 * MIN)
        );
        // An unverified contact that fails to answer is dropped.
        let m = NodeInfo::new(NodeId(rng.r#gen()), v4(2));
        t.on_query_from(m, start);
        assert_eq!(
            t.on_failure(m.addr, Some(m.id), start),
            FailureOutcome::Counted { failures: 1 }
        );
        assert_eq!(
            t.on_failure(m.addr, Some(m.id), start),
            FailureOutcome::Dropped
        );
        assert_eq!(t.cached_len(), 0);
        // A spoofed query put an unverified id on an address; the address answers with
        // another id: the unverified contact is simply replaced.
        let spoofed = NodeInfo::new(NodeId(rng.r#gen()), v4(3));
        assert_eq!(t.on_query_from(spoofed, start), QueryOutcome::PingToVerify);
        let real = NodeInfo::new(NodeId(rng.r#gen()), v4(3));
        assert_eq!(t.on_response(real, None, start), Insertion::Added);
        assert_eq!(t.get(real.addr).unwrap().node(), real);
        assert_eq!(t.cached_len(), 0);
        check(&t);
    }

    /// A narrow table with a replacement cache of 2 whose farthest bucket (0) is full of good
    /// nodes and cannot split.
    fn full_far_bucket(seed: u64) -> (RoutingTable, NodeId, ChaCha8Rng) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let own = NodeId(rng.r#gen());
        // No near bucket: a member silent for a minute would be pinged before a newcomer
        // waits (`near_buckets_are_pinged_sooner`); these tests are about the cache.
        let config = RoutingConfig {
            replacement_cache_size: 2,
            near_buckets: 0,
            ..narrow()
        };
        let mut t = RoutingTable::new(own, config);
        for i in 0..8 {
            t.on_response(NodeInfo::new(id_at(own, 0, &mut rng), v4(i)), None, t0());
        }
        t.on_response(NodeInfo::new(id_at(own, 4, &mut rng), v4(50)), None, t0());
        (t, own, rng)
    }

    #[test]
    fn full_cache_keeps_the_most_recent_and_prefers_verified() {
        let (mut t, own, mut rng) = full_far_bucket(9);
        let now = t0();
        let far = |i: u32, rng: &mut ChaCha8Rng| NodeInfo::new(id_at(own, 0, rng), v4(i));
        let unverified = far(100, &mut rng);
        assert_eq!(
            t.on_query_from(unverified, now),
            QueryOutcome::Cached,
            "full of good nodes: no ping"
        );
        let (a, b, c) = (far(101, &mut rng), far(102, &mut rng), far(103, &mut rng));
        assert_eq!(t.on_response(a, None, now), Insertion::Cached);
        assert_eq!(
            t.on_response(b, None, now),
            Insertion::Cached,
            "pushes out the unverified contact"
        );
        assert_eq!(
            t.on_query_from(far(104, &mut rng), now),
            QueryOutcome::Ignored(RejectReason::BucketFull)
        );
        assert_eq!(
            t.on_response(c, None, now),
            Insertion::Cached,
            "pushes out the oldest"
        );
        let cached: Vec<NodeInfo> = t.v4().buckets[0].cache.iter().map(|e| e.node()).collect();
        assert_eq!(cached, vec![b, c]);
        assert!(!t.v4().index.contains(&unverified.addr) && !t.v4().index.contains(&a.addr));
        check(&t);
    }

    #[test]
    fn unverified_queriers_turn_a_full_cache_over_once_per_turnover() {
        let (mut t, own, mut rng) = full_far_bucket(19);
        let turnover = t.v4().config.cache_turnover;
        let now = t0();
        let far = |i: u32, rng: &mut ChaCha8Rng| NodeInfo::new(id_at(own, 0, rng), v4(i));
        let (a, b, c) = (far(100, &mut rng), far(101, &mut rng), far(102, &mut rng));
        assert_eq!(t.on_query_from(a, now), QueryOutcome::Cached);
        assert_eq!(t.on_query_from(b, now), QueryOutcome::Cached);
        // A flood of new queriers does not flush the cache ...
        for i in 0..100 {
            let later = now + turnover - Duration::from_secs(1);
            assert_eq!(
                t.on_query_from(far(200 + i, &mut rng), later),
                QueryOutcome::Ignored(RejectReason::BucketFull)
            );
        }
        // ... `a` querying again keeps its place fresh, so `b` (unheard from) goes first ...
        assert_eq!(
            t.on_query_from(a, now + Duration::from_secs(30)),
            QueryOutcome::Cached
        );
        assert_eq!(t.on_query_from(c, now + turnover), QueryOutcome::Cached);
        let cached: Vec<NodeInfo> = t.v4().buckets[0].cache.iter().map(|e| e.node()).collect();
        assert_eq!(cached, vec![a, c]);
        // ... and a contact that answered us takes a place at once.
        let d = far(103, &mut rng);
        assert_eq!(t.on_response(d, None, now + turnover), Insertion::Cached);
        let cached: Vec<NodeInfo> = t.v4().buckets[0].cache.iter().map(|e| e.node()).collect();
        assert_eq!(
            cached,
            vec![c, d],
            "the stalest unverified contact (a) made room"
        );
        check(&t);
    }

    #[test]
    fn stamps_and_rtts_give_back_what_was_stored() {
        let base = t0();
        let mut times = vec![
            base,
            base + Duration::from_nanos(1),
            base + Duration::from_secs(3 * 365 * 86_400),
        ];
        times.extend(base.checked_sub(Duration::from_secs(5)));
        for t in times {
            assert_eq!(Stamp::new(t).get(), Some(t));
        }
        assert_eq!(Stamp::NONE.get(), None);
        assert!(Stamp::NONE < Stamp::new(base));
        assert!(Stamp::new(base) < Stamp::new(base + Duration::from_nanos(1)));
        for d in [Duration::ZERO, Duration::from_nanos(123_456_789)] {
            assert_eq!(Rtt::from(Some(d)).get(), Some(d));
        }
        assert_eq!(Rtt::from(None).get(), None);
        // Past ~4.29 s an RTT saturates rather than wrapping or turning into "none".
        assert_eq!(
            Rtt::from(Some(Duration::from_secs(10))).get(),
            Some(Duration::from_nanos(u64::from(u32::MAX - 1)))
        );
    }

    #[test]
    fn rtt_is_smoothed() {
        let mut t = RoutingTable::new(NodeId::ZERO, RoutingConfig::default());
        let n = NodeInfo::new(NodeId([0xff; 20]), v4(1));
        let now = t0();
        t.on_response(n, Some(Duration::from_millis(100)), now);
        t.on_response(n, None, now);
        assert_eq!(
            t.get(n.addr).unwrap().rtt(),
            Some(Duration::from_millis(100))
        );
        t.on_response(n, Some(Duration::from_millis(200)), now);
        assert_eq!(
            t.get(n.addr).unwrap().rtt(),
            Some(Duration::from_micros(112_500))
        );
    }

    #[test]
    fn closest_walks_outward() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        for i in 0..3000 {
            t.on_response(NodeInfo::new(NodeId(rng.r#gen()), v4(i)), None, t0());
        }
        assert!(t.bucket_count() > 6);
        let mut out = Vec::new();
        for _ in 0..200 {
            let target = if rng.r#gen() {
                NodeId(rng.r#gen())
            } else {
                id_at(own, rng.gen_range(0..12), &mut rng)
            };
            let count = rng.gen_range(0..40);
            t.closest(&target, count, &mut out);
            assert_eq!(out, brute_closest(&t, &target, count));
        }
        t.closest(&own, 8, &mut out);
        assert_eq!(out.len(), 8);
        assert_eq!(out, brute_closest(&t, &own, 8));
    }

    #[test]
    fn closest_in_wide_buckets_with_clusters_and_bad_members() {
        // Ids in tight clusters (long shared prefixes) inside the wide far buckets, some
        // members bad: the window around the target's place must still hold the closest.
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        let now = t0();
        let centres: Vec<NodeId> = (0..6).map(|i| id_at(own, i % 3, &mut rng)).collect();
        for i in 0..2000u32 {
            let mut id = centres[i as usize % centres.len()];
            let from: usize = rng.gen_range(4..20);
            for byte in &mut id.0[from..] {
                *byte = rng.r#gen();
            }
            t.on_response(NodeInfo::new(id, v4(i)), None, now);
        }
        let members: Vec<NodeInfo> = t.iter().map(|e| e.node()).collect();
        for n in members.iter().step_by(5) {
            t.on_failure(n.addr, Some(n.id), now);
            t.on_failure(n.addr, Some(n.id), now);
        }
        check(&t);
        let mut out = Vec::new();
        for i in 0..500 {
            let mut target = match i % 3 {
                0 => NodeId(rng.r#gen()),
                1 => members[rng.gen_range(0..members.len())].id,
                _ => centres[rng.gen_range(0..centres.len())],
            };
            if i % 2 == 0 {
                target.0[19] ^= 1;
            }
            let count = rng.gen_range(1..30);
            t.closest(&target, count, &mut out);
            assert_eq!(out, brute_closest(&t, &target, count), "target {target}");
        }
    }

    /// What `closest_for_answer` must give with `answer_good_first`: the closest good members
    /// with no failure, then the closest of the other members that are not bad.
    fn brute_answer(
        table: &RoutingTable,
        target: &NodeId,
        count: usize,
        now: Instant,
    ) -> Vec<NodeInfo> {
        let good = |e: &Entry| e.failures() == 0 && table.state(e, now) == NodeState::Good;
        let sorted = |keep: &dyn Fn(&Entry) -> bool| {
            let mut v: Vec<NodeInfo> = table.iter().filter(|e| keep(e)).map(|e| e.node()).collect();
            v.sort_by_key(|n| n.id.distance(target));
            v
        };
        let mut out = sorted(&good);
        out.truncate(count);
        let rest = sorted(&|e| e.failures() < table.v4().fail_limit() && !good(e));
        let missing = count.saturating_sub(out.len());
        out.extend(rest.into_iter().take(missing));
        out
    }

    #[test]
    fn answers_hold_good_members_first() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let own = NodeId(rng.r#gen());
        let config = RoutingConfig {
            answer_good_first: true,
            ..wide()
        };
        let mut t = RoutingTable::new(own, config);
        let start = t0();
        // Members that answered 20 minutes before `now` (questionable), 5 minutes before
        // (good), good but failed once, and bad.
        for i in 0..1500u32 {
            let id = id_at(own, rng.gen_range(0..12), &mut rng);
            t.on_response(NodeInfo::new(id, v4(i)), None, start);
        }
        let members: Vec<NodeInfo> = t.iter().map(|e| e.node()).collect();
        for (i, n) in members.iter().enumerate() {
            if i % 3 == 0 {
                assert_eq!(
                    t.on_response(*n, None, start + 15 * MIN),
                    Insertion::Updated
                );
            }
            match i % 7 {
                0 => {
                    t.on_failure(n.addr, Some(n.id), start);
                }
                1 => {
                    t.on_failure(n.addr, Some(n.id), start);
                    t.on_failure(n.addr, Some(n.id), start);
                }
                _ => {}
            }
        }
        check(&t);
        let now = start + 20 * MIN;
        let good = t
            .iter()
            .filter(|e| e.failures() == 0 && t.state(e, now) == NodeState::Good)
            .count();
        let questionable = t
            .iter()
            .filter(|e| t.state(e, now) == NodeState::Questionable)
            .count();
        assert!(
            good > 50 && questionable > 100,
            "{good} good, {questionable} questionable"
        );
        let mut out = Vec::new();
        let mut plain = Vec::new();
        let mut differ = 0;
        for i in 0..400 {
            let target = match i % 2 {
                0 => NodeId(rng.r#gen()),
                _ => members[rng.gen_range(0..members.len())].id,
            };
            // Up to more than every good member, so that the fallback runs too.
            let count = if i % 10 == 0 {
                good + 20
            } else {
                rng.gen_range(1..30)
            };
            t.closest_for_answer(&target, count, now, &mut out);
            assert_eq!(
                out,
                brute_answer(&t, &target, count, now),
                "target {target}"
            );
            t.closest(&target, count, &mut plain);
            differ += usize::from(out != plain);
        }
        assert!(differ > 100, "good first changed only {differ} answers");
        // Off, an answer is what `closest` gives.
        t.v4_mut().config = Arc::new(RoutingConfig {
            answer_good_first: false,
            ..wide()
        });
        for _ in 0..50 {
            let target = NodeId(rng.r#gen());
            t.closest_for_answer(&target, 8, now, &mut out);
            t.closest(&target, 8, &mut plain);
            assert_eq!(out, plain);
        }
    }

    #[test]
    fn members_handed_out_after_a_silence_are_pinged_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        let own = NodeId(rng.r#gen());
        let config = RoutingConfig {
            handout_ping_after: MIN / 2,
            ..narrow()
        };
        let mut t = RoutingTable::new(own, config);
        let start = t0();
        for i in 0..60u32 {
            let id = id_at(own, rng.gen_range(0..6), &mut rng);
            t.on_response(NodeInfo::new(id, v4(i)), None, start);
        }
        let target = NodeId(rng.r#gen());
        let mut handed = Vec::new();
        t.closest_for_answer(&target, 8, start, &mut handed);
        assert_eq!(handed.len(), 8);
        let mut due = Vec::new();
        // Just heard from: nothing to ping.
        t.due_after_handout(&handed, start + MIN / 4, &mut due);
        assert!(due.is_empty());
        // One of them speaks; the others have been silent for the interval.
        let later = start + MIN / 2;
        t.on_query_from(handed[0], later);
        t.due_after_handout(&handed, later, &mut due);
        assert_eq!(due, handed[1..].to_vec());
        // Pinged now: not again within the interval, handed out as often as may be.
        let mut again = Vec::new();
        t.due_after_handout(&handed, later + MIN / 4, &mut again);
        assert!(again.is_empty());
        // Someone not in the table (an answer built from another table) is skipped.
        let stranger = NodeInfo::new(NodeId(rng.r#gen()), v4(1000));
        t.due_after_handout(&[stranger], later + MIN, &mut again);
        assert!(again.is_empty());
        // Off (the default): never.
        t.v4_mut().config = Arc::new(narrow());
        t.due_after_handout(&handed, later + 10 * MIN, &mut again);
        assert!(again.is_empty());
        check(&t);
    }

    #[test]
    fn near_buckets_are_pinged_sooner() {
        let mut rng = ChaCha8Rng::seed_from_u64(22);
        let own = NodeId(rng.r#gen());
        let config = RoutingConfig {
            near_buckets: 2,
            near_ping_interval: 2 * MIN,
            ..narrow()
        };
        let mut t = RoutingTable::new(own, config);
        let start = t0();
        for i in 0..200u32 {
            let id = id_at(own, rng.gen_range(0..10), &mut rng);
            t.on_response(NodeInfo::new(id, v4(i)), None, start);
        }
        check(&t);
        assert!(t.stale_to_ping(start + MIN, 1000).is_empty());
        let buckets = t.bucket_count();
        assert!(buckets > 4, "{buckets} buckets");
        let near = |e: &Entry| t.v4().bucket_index(&e.node().id) + 2 >= buckets;
        let later = start + 3 * MIN;
        let (mut n_near, mut n_far) = (0, 0);
        for e in t.iter() {
            // Good either way: pinged sooner, not distrusted sooner.
            assert_eq!(t.state(&e, later), NodeState::Good);
            if near(&e) {
                n_near += 1;
            } else {
                n_far += 1;
            }
        }
        assert!(n_near >= 8 && n_far > n_near, "{n_near} near, {n_far} far");
        // Maintenance pings exactly the near members, once a ping interval.
        let mut want: Vec<SocketAddr> = t.iter().filter(|e| near(e)).map(|e| e.addr()).collect();
        let stale = t.stale_to_ping(later, 1000);
        let mut got: Vec<SocketAddr> = stale.iter().map(|n| n.addr).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        assert!(t.stale_to_ping(later + MIN / 2, 1000).is_empty());
        // One that answers is not pinged again before `near_ping_interval`; the others are,
        // after `node_ping_interval`.
        t.on_response(stale[0], None, later + MIN / 2);
        let again = t.stale_to_ping(later + MIN + MIN / 2, 1000);
        assert_eq!(again.len(), stale.len() - 1);
        assert!(!again.contains(&stale[0]));
        // With no near bucket, nobody is pinged before 15 minutes.
        t.v4_mut().config = Arc::new(RoutingConfig {
            near_buckets: 0,
            ..narrow()
        });
        assert!(t.stale_to_ping(start + 14 * MIN, 1000).is_empty());
        // A young table's wide far bucket is not near, whatever its place.
        let mut t = RoutingTable::new(
            own,
            RoutingConfig {
                near_buckets: 3,
                near_ping_interval: 2 * MIN,
                ..wide()
            },
        );
        for i in 0..40u32 {
            let id = id_at(own, usize::from(i % 10 == 0), &mut rng);
            t.on_response(NodeInfo::new(id, v4(i)), None, start);
        }
        assert_eq!(t.bucket_count(), 2);
        assert!(t.v4().buckets[0].nodes.len() > 8, "a wide bucket");
        let stale = t.stale_to_ping(later, 1000);
        assert!(!stale.is_empty());
        assert!(stale.iter().all(|n| t.v4().bucket_index(&n.id) == 1));
    }

    #[test]
    fn refresh_targets_fall_in_their_bucket() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, narrow());
        let start = t0();
        for i in 0..400 {
            t.on_query_from(NodeInfo::new(NodeId(rng.r#gen()), v4(i)), start);
        }
        // Queries alone neither add members nor refresh buckets; restore builds buckets.
        let contacts: Vec<SavedContact> = (0..400)
            .map(|i| SavedContact {
                node: NodeInfo::new(NodeId(rng.r#gen()), v4(1000 + i)),
                rtt: None,
                answered_ago: None,
            })
            .collect();
        t.restore(contacts, start);
        let n = t.bucket_count();
        assert!(n > 4);
        // Never refreshed: every bucket is due; two at a time, the farthest first, and the
        // others stay due.
        let first = t.refresh_targets(start, 2, &mut rng);
        assert_eq!(first.len(), 2);
        let rest = t.refresh_targets(start, usize::MAX, &mut rng);
        assert_eq!(rest.len(), n - 2);
        let targets: Vec<NodeId> = first.into_iter().chain(rest).collect();
        for (b, target) in targets.iter().enumerate() {
            assert_eq!(t.v4().bucket_index(target), b);
            if b + 1 < n {
                assert_eq!(shared_bits(&t, target), b);
            } else {
                assert!(shared_bits(&t, target) >= b);
            }
        }
        assert!(
            t.refresh_targets(start + 14 * MIN, usize::MAX, &mut rng)
                .is_empty()
        );
        // A lookup into bucket 2 and an answer from a member of bucket 1 refresh them.
        t.mark_refreshed(&targets[2], start + 10 * MIN);
        let member = t.v4().buckets[1].nodes[0].node();
        t.on_response(member, None, start + 10 * MIN);
        let due = t.refresh_targets(start + 16 * MIN, usize::MAX, &mut rng);
        assert_eq!(due.len(), n - 2);
        assert!(
            due.iter()
                .all(|id| ![1, 2].contains(&t.v4().bucket_index(id)))
        );
        assert_eq!(
            t.refresh_targets(start + 26 * MIN, usize::MAX, &mut rng)
                .len(),
            2
        );
    }

    #[test]
    fn a_far_bucket_a_split_leaves_empty_is_refreshed_at_once() {
        // A young network's first node knows only nodes on its own side of the id space: its
        // members all share our first bit, so the split leaves the far half's bucket empty.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut t = RoutingTable::new(NodeId::ZERO, narrow());
        let start = t0();
        let same_side = |rng: &mut ChaCha8Rng| {
            let mut id: [u8; 20] = rng.r#gen();
            id[0] = 0x40 | (id[0] & 0x3f);
            NodeId(id)
        };
        for i in 0..8 {
            t.on_response(NodeInfo::new(same_side(&mut rng), v4(i)), None, start);
        }
        assert_eq!(t.bucket_count(), 1);
        // Their answers refreshed the one bucket.
        assert!(t.refresh_targets(start, usize::MAX, &mut rng).is_empty());
        t.on_response(NodeInfo::new(same_side(&mut rng), v4(8)), None, start + MIN);
        assert!(t.bucket_count() >= 2, "the ninth member split the table");
        assert!(t.v4().buckets[0].nodes.is_empty());
        // Due a minute after the last refresh: only the bucket left empty, not the ones
        // that kept members.
        let due = t.refresh_targets(start + MIN, usize::MAX, &mut rng);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(t.v4().bucket_index(&due[0]), 0);
        assert!(
            t.refresh_targets(start + MIN, usize::MAX, &mut rng)
                .is_empty()
        );
    }

    #[test]
    fn buckets_chosen_for_speed_are_refreshed_though_their_members_answer() {
        for prefer in [false, true] {
            let mut rng = ChaCha8Rng::seed_from_u64(13);
            let own = NodeId(rng.r#gen());
            let config = RoutingConfig {
                prefer_low_rtt: prefer,
                bucket_sizes_far: vec![16, 16],
                near_buckets: 2,
                ..RoutingConfig::default()
            };
            let mut t = RoutingTable::new(own, config);
            let start = t0();
            let contacts: Vec<SavedContact> = (0..600)
                .map(|i| SavedContact {
                    node: NodeInfo::new(NodeId(rng.r#gen()), v4(i)),
                    rtt: None,
                    answered_ago: None,
                })
                .collect();
            t.restore(contacts, start);
            let n = t.bucket_count();
            assert!(n > 6, "{n} buckets");
            assert_eq!(t.refresh_targets(start, usize::MAX, &mut rng).len(), n);
            // Every member answers ten minutes on.
            let members: Vec<NodeInfo> = t.iter().map(|e| e.node).collect();
            for m in members {
                t.on_response(m, Some(Duration::from_millis(80)), start + 10 * MIN);
            }
            let due: Vec<usize> = t
                .refresh_targets(start + 16 * MIN, usize::MAX, &mut rng)
                .iter()
                .map(|id| t.v4().bucket_index(id))
                .collect();
            if prefer {
                // Past the two wide buckets, before the two near ones.
                assert_eq!(due, (2..n - 2).collect::<Vec<_>>());
            } else {
                assert!(due.is_empty(), "{due:?}");
            }
        }
    }

    #[test]
    fn a_fast_bucket_is_refreshed_in_the_slot_of_its_slowest_member() {
        let ms = Duration::from_millis;
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let own = NodeId(rng.r#gen());
        // The default table (k-sized buckets chosen for speed) with one near bucket.
        let config = RoutingConfig {
            near_buckets: 1,
            ..RoutingConfig::default()
        };
        let mut t = RoutingTable::new(own, config);
        let start = t0();
        // Bucket 0: slots 0 to 6 hold one member each, 40 ms but slot 4's (90 ms).
        for slot in 0..7u8 {
            let rtt = if slot == 4 { 90 } else { 40 };
            let n = NodeInfo::new(id_in_slot(own, slot, &mut rng), v4(u32::from(slot)));
            assert_eq!(t.on_response(n, Some(ms(rtt)), start), Insertion::Added);
        }
        for i in 0..2 {
            let deeper = NodeInfo::new(id_at(own, 3, &mut rng), v4(50 + i));
            t.on_response(deeper, Some(ms(40)), start);
        }
        assert_eq!(t.bucket_count(), 2);
        let slot_of =
            |t: &RoutingTable, id: &NodeId| bucket_slot(id, 0, t.v4().buckets[0].nodes.len());
        let refresh = |t: &mut RoutingTable, rng: &mut ChaCha8Rng, at| {
            let targets = t.refresh_targets(at, usize::MAX, rng);
            assert_eq!(t.v4().bucket_index(&targets[0]), 0);
            targets[0]
        };
        // Seven members make four slots (2 bits): the 90 ms member of 3-bit slot 4 is in
        // slot 2. Then eight make eight, one member each.
        let target = refresh(&mut t, &mut rng, start + 16 * MIN);
        assert_eq!(slot_of(&t, &target), 2, "the slot of the 90 ms member");
        let last = NodeInfo::new(id_in_slot(own, 7, &mut rng), v4(7));
        assert_eq!(
            t.on_response(last, Some(ms(40)), start + 17 * MIN),
            Insertion::Added
        );
        let target = refresh(&mut t, &mut rng, start + 32 * MIN);
        assert_eq!(slot_of(&t, &target), 4);
        // A faster node of slot 4 takes its place; then slot 7's member answers in 60 ms (its
        // estimate rises above 40 ms) and its slot is next.
        let fast = NodeInfo::new(id_in_slot(own, 4, &mut rng), v4(104));
        assert!(matches!(
            t.on_response(fast, Some(ms(20)), start + 33 * MIN),
            Insertion::ReplacedSlower { .. }
        ));
        t.on_response(last, Some(ms(60)), start + 33 * MIN);
        let target = refresh(&mut t, &mut rng, start + 48 * MIN);
        assert_eq!(slot_of(&t, &target), 7);
    }

    #[test]
    fn stale_to_ping_is_bounded_and_rate_limited() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let own = NodeId(rng.r#gen());
        // Questionable members only: no near bucket pinged sooner (see
        // `near_buckets_are_pinged_sooner`).
        let config = RoutingConfig {
            near_buckets: 0,
            ..wide()
        };
        let mut t = RoutingTable::new(own, config);
        let start = t0();
        for i in 0..20 {
            t.on_response(
                NodeInfo::new(NodeId(rng.r#gen()), v4(i)),
                None,
                start + Duration::from_secs(u64::from(i)),
            );
        }
        assert!(
            t.stale_to_ping(start + 10 * MIN, 100).is_empty(),
            "all good"
        );
        let later = start + 20 * MIN;
        let first = t.stale_to_ping(later, 5);
        let expected: Vec<SocketAddr> = (0..5).map(v4).collect();
        assert_eq!(
            first.iter().map(|n| n.addr).collect::<Vec<_>>(),
            expected,
            "least recently seen first"
        );
        assert_eq!(t.stale_to_ping(later, 100).len(), 15);
        assert!(
            t.stale_to_ping(later + Duration::from_secs(30), 100)
                .is_empty(),
            "pinged within a minute"
        );
        assert_eq!(t.stale_to_ping(later + MIN, 100).len(), 20);
    }

    #[test]
    fn snapshot_restore_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        let start = t0();
        for i in 0..2000 {
            let rtt = Duration::from_millis(rng.gen_range(10..500));
            t.on_response(NodeInfo::new(NodeId(rng.r#gen()), v4(i)), Some(rtt), start);
        }
        let bad = t.v4().buckets.last().unwrap().nodes[0].node();
        t.on_failure(bad.addr, None, start);
        t.on_failure(bad.addr, None, start);
        let saved = t.snapshot(start + 5 * SEC);
        let good: Vec<SavedContact> = t
            .iter()
            .filter(|e| t.state(e, start) != NodeState::Bad)
            .map(|e| SavedContact {
                node: e.node(),
                rtt: e.rtt(),
                answered_ago: Some(5 * SEC),
            })
            .collect();
        assert_eq!(saved, good, "bad nodes are not saved");
        assert!(!saved.iter().any(|c| c.node == bad));

        // An hour later, as the caller ages them: no contact answered within 15 minutes.
        let later = start + 60 * MIN;
        let answered = |ago: Option<Duration>| -> Vec<SavedContact> {
            saved
                .iter()
                .map(|c| SavedContact {
                    answered_ago: ago,
                    ..*c
                })
                .collect()
        };
        let mut fresh = RoutingTable::new(own, RoutingConfig::default());
        assert_eq!(fresh.restore(answered(Some(60 * MIN)), later), saved.len());
        assert_eq!(fresh.snapshot(later), answered(None));
        assert_eq!(fresh.bucket_count(), t.bucket_count());
        check(&fresh);
        assert!(
            fresh
                .iter()
                .all(|e| fresh.state(&e, later) == NodeState::Questionable)
        );
        assert_eq!(fresh.stale_to_ping(later, 10_000).len(), saved.len());
        assert_eq!(
            fresh.refresh_targets(later, usize::MAX, &mut rng).len(),
            fresh.bucket_count()
        );
        // Restoring again adds nothing.
        assert_eq!(fresh.restore(saved, later), 0);
    }

    #[test]
    fn contacts_that_answered_lately_come_back_good() {
        let mut rng = ChaCha8Rng::seed_from_u64(31);
        let own = NodeId(rng.r#gen());
        let config = RoutingConfig {
            near_buckets: 0,
            ..RoutingConfig::default()
        };
        let start = t0() + 60 * MIN;
        let contacts: Vec<SavedContact> = (0..400)
            .map(|i| SavedContact {
                node: NodeInfo::new(NodeId(rng.r#gen()), v4(i)),
                rtt: None,
                // Every third one answered 20 minutes ago, the others within the last ten.
                answered_ago: Some(if i % 3 == 0 {
                    20 * MIN
                } else {
                    (i % 600) * SEC
                }),
            })
            .collect();
        let mut t = RoutingTable::new(own, config);
        let members = t.restore(contacts.clone(), start);
        assert!(members > 50, "{members}");
        check(&t);
        let by_addr: std::collections::HashMap<SocketAddr, SavedContact> =
            contacts.iter().map(|c| (c.node.addr, *c)).collect();
        let mut stale_expected = 0;
        for e in t.iter() {
            let c = by_addr[&e.node().addr];
            let ago = c.answered_ago.unwrap();
            if ago < NODE_GOOD_INTERVAL {
                assert_eq!(e.last_response(), Some(start - ago));
                assert_eq!(t.state(&e, start), NodeState::Good);
            } else {
                assert_eq!(e.last_response(), None, "too old to be trusted");
                assert_eq!(t.state(&e, start), NodeState::Questionable);
                stale_expected += 1;
            }
        }
        // Only the questionable ones are due a ping, and a bucket whose member answered
        // lately is not due a refresh.
        assert_eq!(t.stale_to_ping(start, 10_000).len(), stale_expected);
        let due = t.refresh_targets(start, usize::MAX, &mut rng).len();
        assert!(due < t.bucket_count(), "{due} of {}", t.bucket_count());
        // A snapshot gives the ages back (as of its own instant).
        let again = t.snapshot(start + 10 * SEC);
        for c in &again {
            let ago = by_addr[&c.node.addr].answered_ago.unwrap();
            if ago < NODE_GOOD_INTERVAL {
                assert_eq!(c.answered_ago, Some(ago + 10 * SEC));
            } else {
                assert_eq!(c.answered_ago, None);
            }
        }
    }

    #[test]
    fn new_own_id_rebuilds_the_table() {
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, wide());
        let now = t0();
        for i in 0..1000 {
            t.on_response(NodeInfo::new(NodeId(rng.r#gen()), v4(i)), None, now);
        }
        let before: HashSet<NodeInfo> = t.iter().map(|e| e.node()).collect();
        let member = t.iter().next().unwrap().node();
        // The new id is a member's id: that contact must go.
        t.set_own_id(member.id);
        assert_eq!(t.own_id(), member.id);
        check(&t);
        assert!(!t.contains(member.addr));
        assert!(t.len() + 1 >= before.len().min(100));
        let kept = t.iter().filter(|e| before.contains(&e.node())).count();
        assert!(kept * 2 > t.len(), "old members are kept where they fit");
        assert_eq!(
            t.refresh_targets(now, usize::MAX, &mut rng).len(),
            t.bucket_count()
        );
        let mut out = Vec::new();
        let target = NodeId(rng.r#gen());
        t.closest(&target, 8, &mut out);
        assert_eq!(out, brute_closest(&t, &target, 8));
    }

    #[test]
    fn remove_promotes_a_replacement() {
        let mut rng = ChaCha8Rng::seed_from_u64(15);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, narrow());
        let now = t0();
        let far: Vec<NodeInfo> = (0..9)
            .map(|i| NodeInfo::new(id_at(own, 0, &mut rng), v4(i)))
            .collect();
        for n in &far {
            t.on_response(*n, None, now);
        }
        assert_eq!((t.len(), t.cached_len()), (8, 1));
        assert_eq!(t.remove(far[0].addr), Some(far[0]));
        assert!(t.contains(far[8].addr));
        assert_eq!((t.len(), t.cached_len()), (8, 0));
        assert_eq!(t.remove(far[0].addr), None);
        check(&t);
    }

    #[test]
    fn an_ipv6_table_keeps_whole_addresses_and_refuses_ipv4() {
        let mut rng = ChaCha8Rng::seed_from_u64(61);
        let own = NodeId(rng.r#gen());
        let config = Arc::new(RoutingConfig::default());
        let mut t = RoutingTable::of_family(xorro_wire::Family::V6, own, Arc::clone(&config));
        assert_eq!(t.family(), xorro_wire::Family::V6);
        let now = t0();
        let link_local = SocketAddrV6::new("fe80::1".parse().expect("an IPv6 address"), 6881, 7, 3);
        let mapped = SocketAddrV6::new(Ipv4Addr::new(9, 8, 7, 6).to_ipv6_mapped(), 80, 0, 0);
        let mut nodes: Vec<NodeInfo> = [link_local, mapped]
            .into_iter()
            .map(|a| NodeInfo::new(NodeId(rng.r#gen()), SocketAddr::V6(a)))
            .collect();
        for i in 0..40u16 {
            let ip = std::net::Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 1);
            nodes.push(NodeInfo::new(
                id_at(own, usize::from(i % 6), &mut rng),
                SocketAddr::from((ip, 6881)),
            ));
        }
        for (i, n) in nodes.iter().enumerate() {
            let rtt = Duration::from_millis(10 + i as u64);
            assert!(matches!(
                t.on_response(*n, Some(rtt), now),
                Insertion::Added | Insertion::Cached | Insertion::PingFirst { .. }
            ));
        }
        let v4 = NodeInfo::new(NodeId(rng.r#gen()), v4(1));
        refuses_family(&mut t, v4, now);
        assert_eq!(t.on_failure(v4.addr, None, now), FailureOutcome::Unknown);
        for n in &nodes[..2] {
            let e = t.get(n.addr).expect("a member");
            assert_eq!(e.node(), *n, "flow info and scope kept");
            assert_eq!(e.last_response(), Some(now));
            assert_eq!(t.state(&e, now + MIN), NodeState::Good);
        }
        let mut out = Vec::new();
        t.closest(&nodes[0].id, 1, &mut out);
        assert_eq!(out, vec![nodes[0]]);
        let members: HashSet<NodeInfo> = t.iter().map(|e| e.node()).collect();
        assert!(members.len() > 8 && members.iter().all(|n| nodes.contains(n)));
        let saved = t.snapshot(now + MIN);
        let mut back = RoutingTable::of_family(xorro_wire::Family::V6, own, config);
        assert_eq!(
            back.restore(saved.iter().copied(), now + 2 * MIN),
            saved.len()
        );
        for c in &saved {
            let e = back.get(c.node.addr).expect("restored");
            assert_eq!(
                e.last_response(),
                Some(now + 2 * MIN - c.answered_ago.expect("answered"))
            );
            assert_eq!(e.rtt(), c.rtt);
        }
        let mut v4_table = RoutingTable::new(own, RoutingConfig::default());
        assert_eq!(
            v4_table.restore(saved, now),
            0,
            "IPv6 contacts are not for an IPv4 table"
        );
        assert!(v4_table.is_empty());
    }

    #[test]
    fn the_clock_moves_its_epoch_forward_and_keeps_every_time_it_needs() {
        let mut rng = ChaCha8Rng::seed_from_u64(62);
        let own = NodeId(rng.r#gen());
        let mut t = RoutingTable::new(own, narrow());
        let start = t0();
        let old = NodeInfo::new(id_at(own, 0, &mut rng), v4(1));
        let kept = NodeInfo::new(id_at(own, 1, &mut rng), v4(2));
        t.on_response(old, None, start);
        let epoch = t.v4().epoch;
        // Every few days for 100 days (four moves of the epoch), `kept` answers.
        let mut now = start;
        for day in (3..=100).step_by(3) {
            now = start + Duration::from_secs(day * 24 * 3600) + Duration::from_millis(day);
            assert_eq!(
                t.on_response(kept, None, now),
                if day == 3 {
                    Insertion::Added
                } else {
                    Insertion::Updated
                }
            );
            let e = t.get(kept.addr).expect("kept");
            assert_eq!(
                e.last_response(),
                Some(now),
                "day {day}: exact to the millisecond"
            );
            assert_eq!(t.state(&e, now + 14 * MIN), NodeState::Good);
            assert_eq!(t.state(&e, now + 15 * MIN), NodeState::Questionable);
            check(&t);
        }
        assert!(t.v4().epoch > epoch, "the epoch moved");
        let gone = t.get(old.addr).expect("still a member");
        assert!(
            gone.last_response().expect("answered once")
                < now - Duration::from_secs(10 * 24 * 3600)
        );
        assert_eq!(t.state(&gone, now), NodeState::Questionable);
        // The one silent for long is the one to ping; after the ping, not again for a minute.
        assert_eq!(t.stale_to_ping(now + 16 * MIN, 10), vec![old, kept]);
        assert!(t.stale_to_ping(now + 16 * MIN + SEC, 10).is_empty());
        assert_eq!(t.stale_to_ping(now + 17 * MIN, 10).len(), 2);
        // Left alone for 400 days: the epoch moves in one step to 2^30 ms before now, and
        // every older time becomes its first millisecond.
        let far = now + Duration::from_secs(400 * 24 * 3600);
        assert_eq!(t.on_response(kept, None, far), Insertion::Updated);
        let e = t.get(kept.addr).expect("kept");
        assert_eq!(e.last_response(), Some(far));
        assert_eq!(t.state(&e, far + 14 * MIN), NodeState::Good);
        let keep = Duration::from_millis(u64::from(REBASE_KEEP));
        let gone = t.get(old.addr).expect("still a member");
        assert_eq!(gone.last_response(), Some(far - keep));
        assert_eq!(t.state(&gone, far), NodeState::Questionable);
        check(&t);
    }

    // ---- properties ----

    proptest! {
        #[test]
        fn recent_is_a_subtraction_done_as_a_comparison(
            now_ms in 0u64..10_000,
            t_ms in 0u64..10_000,
            interval_ms in 0u64..5_000,
        ) {
            let origin = t0();
            let (now, t) = (origin + Duration::from_millis(now_ms), origin + Duration::from_millis(t_ms));
            let interval = Duration::from_millis(interval_ms);
            let expected = now.saturating_duration_since(t) < interval;
            let (now, t) = (Tick::at(origin, now), Tick::at(origin, t));
            prop_assert_eq!(Recent::new(now, interval).holds(t), expected);
            prop_assert!(!Recent::new(now, interval).holds(Tick::NONE));
        }

        #[test]
        fn ticks_keep_instants_to_the_millisecond(ms in 0u64..1 << 32, nanos in 0u32..1_000_000) {
            let epoch = t0();
            let t = epoch + Duration::from_millis(ms) + Duration::from_nanos(u64::from(nanos));
            let tick = Tick::at(epoch, t);
            if ms < u64::from(u32::MAX) {
                prop_assert_eq!(tick.instant(epoch), Some(epoch + Duration::from_millis(ms)));
                prop_assert_eq!(Tick::at(epoch, epoch + Duration::from_millis(ms)), tick);
            } else {
                prop_assert_eq!(tick, Tick(u32::MAX));
            }
            let shifted = tick.shifted(REBASE_KEEP);
            prop_assert!(shifted.is_some());
            if tick.0 > REBASE_KEEP {
                let later = epoch + Duration::from_millis(u64::from(REBASE_KEEP));
                prop_assert_eq!(shifted.instant(later), tick.instant(epoch));
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Response { who: usize, rtt_ms: u16 },
        QueryFrom { who: usize },
        Failure { who: usize, with_id: bool },
        Remove { who: usize },
        Advance { secs: u16 },
        PingStale { max: u8 },
        Refresh { seed: u64 },
    }

    const POOL: usize = 64;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0..POOL, 0u16..500).prop_map(|(who, rtt_ms)| Op::Response { who, rtt_ms }),
            3 => (0..POOL).prop_map(|who| Op::QueryFrom { who }),
            4 => (0..POOL, any::<bool>()).prop_map(|(who, with_id)| Op::Failure { who, with_id }),
            1 => (0..POOL).prop_map(|who| Op::Remove { who }),
            2 => (0u16..1200).prop_map(|secs| Op::Advance { secs }),
            1 => (0u8..10).prop_map(|max| Op::PingStale { max }),
            1 => any::<u64>().prop_map(|seed| Op::Refresh { seed }),
        ]
    }

    /// Pool contacts: how many bits they share with our id (skewed towards far), random id
    /// bits, and an address from a small set so that IPs and addresses collide.
    fn pool() -> impl Strategy<Value = Vec<(usize, [u8; 20], u8, u16)>> {
        let shared = prop_oneof![3 => 0usize..6, 1 => 0usize..161];
        prop::collection::vec((shared, any::<[u8; 20]>(), 0u8..40, 0u16..3), POOL)
    }

    fn config() -> impl Strategy<Value = RoutingConfig> {
        prop_oneof![
            Just(RoutingConfig::default()),
            Just(RoutingConfig {
                bucket_size: 2,
                bucket_sizes_far: vec![4, 3],
                replacement_cache_size: 2,
                ..RoutingConfig::default()
            }),
            Just(RoutingConfig {
                prefer_low_rtt: true,
                ..RoutingConfig::default()
            }),
            Just(RoutingConfig {
                bucket_size: 3,
                bucket_sizes_far: vec![5],
                replacement_cache_size: 1,
                prefer_low_rtt: true,
                ..RoutingConfig::default()
            }),
            Just(RoutingConfig {
                bucket_size: 1,
                bucket_sizes_far: Vec::new(),
                replacement_cache_size: 0,
                node_fail_limit: 1,
                ..RoutingConfig::default()
            }),
        ]
    }

    fn build(own: NodeId, pool: &[(usize, [u8; 20], u8, u16)]) -> Vec<NodeInfo> {
        pool.iter()
            .map(|&(shared, bytes, ip, port)| {
                let mut rng = ChaCha8Rng::from_seed([0; 32]);
                let mut id = id_at(own, shared, &mut rng);
                // Keep the forced prefix and take the rest from the pool.
                for bit in shared.saturating_add(1)..160 {
                    let mask = 0x80u8 >> (bit % 8);
                    id.0[bit / 8] = (id.0[bit / 8] & !mask) | (bytes[bit / 8] & mask);
                }
                let addr = if ip < 5 {
                    SocketAddr::from(([127, 0, 0, 1], 1000 + u16::from(ip)))
                } else {
                    SocketAddr::from(([10, 0, 0, ip], 1000 + port))
                };
                NodeInfo::new(id, addr)
            })
            .collect()
    }

    fn run(
        t: &mut RoutingTable,
        nodes: &[NodeInfo],
        ops: &[Op],
        start: Instant,
        each: impl Fn(&RoutingTable),
    ) {
        let mut now = start;
        for op in ops {
            match *op {
                Op::Response { who, rtt_ms } => {
                    t.on_response(
                        nodes[who],
                        Some(Duration::from_millis(u64::from(rtt_ms))),
                        now,
                    );
                }
                Op::QueryFrom { who } => {
                    t.on_query_from(nodes[who], now);
                }
                Op::Failure { who, with_id } => {
                    t.on_failure(nodes[who].addr, with_id.then_some(nodes[who].id), now);
                }
                Op::Remove { who } => {
                    t.remove(nodes[who].addr);
                }
                Op::Advance { secs } => now += Duration::from_secs(u64::from(secs)),
                Op::PingStale { max } => {
                    let got = t.stale_to_ping(now, usize::from(max));
                    assert!(got.len() <= usize::from(max));
                }
                Op::Refresh { seed } => {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    for target in t.refresh_targets(now, usize::MAX, &mut rng) {
                        assert!(t.v4().bucket_index(&target) < t.bucket_count());
                    }
                }
            }
            each(t);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn buckets_never_overflow(
            own in any::<[u8; 20]>(),
            pool in pool(),
            config in config(),
            ops in prop::collection::vec(op(), 1..300),
        ) {
            let own = NodeId(own);
            let nodes = build(own, &pool);
            let mut t = RoutingTable::new(own, config);
            run(&mut t, &nodes, &ops, t0(), check);
            let members = t.len();
            let mut copy = RoutingTable::new(own, t.config().clone());
            copy.restore(t.snapshot(t0()), t0());
            check(&copy);
            prop_assert!(copy.len() <= members);
        }

        #[test]
        fn closest_matches_brute_force(
            own in any::<[u8; 20]>(),
            pool in pool(),
            config in config(),
            ops in prop::collection::vec(op(), 1..300),
            targets in prop::collection::vec((any::<[u8; 20]>(), 0usize..8, 0usize..30), 1..20),
        ) {
            let own = NodeId(own);
            let nodes = build(own, &pool);
            let mut t = RoutingTable::new(own, config);
            run(&mut t, &nodes, &ops, t0(), |_| {});
            let mut out = Vec::new();
            for (bytes, near, count) in targets {
                // Half the targets near our id or a pool node, where the buckets are deep.
                let target = match near {
                    0 => own,
                    1 => nodes[usize::from(bytes[0]) % POOL].id,
                    2 | 3 => {
                        let mut rng = ChaCha8Rng::from_seed([bytes[0]; 32]);
                        id_at(own, usize::from(bytes[1]) % 40, &mut rng)
                    }
                    _ => NodeId(bytes),
                };
                t.closest(&target, count, &mut out);
                prop_assert_eq!(&out, &brute_closest(&t, &target, count));
            }
        }
    }
}
