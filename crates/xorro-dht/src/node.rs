//! The node: inputs, outputs, commands, timers, and the lookups it drives.
//!
//! The server side (answering queries) is in [`crate::server`]; the lookup search logic in
//! [`crate::lookup`]; requests in flight in [`crate::rpc`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use xorro_wire::bep33::BloomFilter;
use xorro_wire::bep44::{self, Keypair};
use xorro_wire::{
    Body, Family, InfoHash, Message, MutablePut, NodeId, NodeInfo, PublicKey, PutQuery, Query,
    QueryKind, RawValue, Response, Signature, Token, TransactionId, Want, encode_append,
};

use crate::config::Config;
use crate::event::{CommandError, CommandId, Event, LookupStats, Outcome, Stats};
use crate::lookup::{Hint, Leg};
use crate::ratelimit::{InboundLimiter, OutgoingBudget};
use crate::routing::{FailureOutcome, Insertion, NodeState, RoutingTable, SavedContact};
use crate::rpc::{Deadline, Purpose, Request, Requests};
use crate::store::{ItemStore, PeerStore, StoredItem};
use crate::tokens::{TokenSecrets, Tokens};

/// Why a command could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// `lookups_max` lookups are running.
    #[error("too many lookups running (limit {0})")]
    TooManyLookups(usize),
    /// A BEP 44 value is not one bencoded value, or is over 1000 bytes, or a salt over 64.
    #[error("invalid item: {0}")]
    InvalidItem(&'static str),
}

/// What to fetch with [`Node::start_get_item`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemTarget {
    /// An immutable item by its target (SHA-1 of the bencoded value).
    Immutable(NodeId),
    /// A mutable item by key and salt; `min_seq` asks only for items with a higher seq.
    Mutable {
        /// The publisher's key.
        key: PublicKey,
        /// The salt (empty for none).
        salt: Vec<u8>,
        /// Only items with a seq above this.
        min_seq: Option<i64>,
    },
}

impl ItemTarget {
    /// The DHT key of the item.
    pub fn target(&self) -> NodeId {
        match self {
            ItemTarget::Immutable(t) => *t,
            ItemTarget::Mutable { key, salt, .. } => bep44::mutable_target(key, Some(salt)),
        }
    }
}

/// What to store with [`Node::start_put_item`].
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per command, never in a hot collection
pub enum PutRequest {
    /// An immutable item: `value` is one bencoded value.
    Immutable {
        /// The bencoded value.
        value: Vec<u8>,
    },
    /// A mutable item signed with `keypair`.
    Mutable {
        /// The signing key.
        keypair: Keypair,
        /// The salt (empty for none).
        salt: Vec<u8>,
        /// The bencoded value.
        value: Vec<u8>,
        /// The seq to store; `None` takes one more than the highest the network holds.
        seq: Option<i64>,
        /// Compare-and-swap: store only if the network holds this seq.
        cas: Option<i64>,
    },
}

impl PutRequest {
    /// The bencoded value to store.
    pub fn value(&self) -> &[u8] {
        match self {
            PutRequest::Immutable { value } | PutRequest::Mutable { value, .. } => value,
        }
    }
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per lookup
pub(crate) enum Kind {
    FindNode,
    Bootstrap,
    Refresh,
    GetPeers { no_seed: bool, scrape: bool },
    Announce { port: Option<u16>, seed: bool },
    GetItem(ItemTarget),
    PutItem(PutRequest),
    Samples,
}

#[derive(Debug)]
pub(crate) enum Phase {
    Search,
    Store {
        /// A mutable put's signed fields, kept to send the put again.
        signed: Option<Box<SignedPut>>,
    },
}

/// The store queries (announce_peer / put) of a lookup and what came of them.
///
/// An announce may store before its search ends (see `Config::announce_quorum`): its
/// targets then include nodes the search passed by; only those among the `k` closest at
/// its end (`StoreTarget::closest`) decide when it is reported.
#[derive(Debug, Default)]
pub(crate) struct Stores {
    /// The nodes asked to store, in the order they were asked.
    targets: Vec<StoreTarget>,
    stored_at: Vec<NodeInfo>,
    errors: Vec<xorro_wire::ErrorCode>,
    /// The outcome went to the caller; the queries still waiting run on, unreported.
    reported: bool,
}

/// A node of a store phase (announce_peer / put) and what we heard from it.
///
/// Its store query is sent again when it passes its soft timeout, as a lookup's queries are,
/// until `lookup_attempts` were sent: a lost datagram (1 % each way on the Internet, so one
/// store in seven of eight nodes) costs one soft timeout instead of `request_timeout`.
#[derive(Debug)]
pub(crate) struct StoreTarget {
    node: NodeInfo,
    token: Token,
    /// Its RTT as measured by the search, for the soft timeout.
    rtt: Option<Duration>,
    /// Store queries sent to it.
    sent: u8,
    /// Of those, the ones neither answered nor timed out.
    in_flight: u8,
    state: StoreState,
    /// Among the `k` closest nodes that answered the search once it ended (always, for a
    /// target chosen then; an announce's early target may not be).
    closest: bool,
}

impl StoreTarget {
    /// A target not yet asked.
    fn new(node: NodeInfo, token: Token, rtt: Option<Duration>, closest: bool) -> Self {
        StoreTarget {
            node,
            token,
            rtt,
            sent: 0,
            in_flight: 0,
            state: StoreState::Waiting,
            closest,
        }
    }
}

/// Where a [`StoreTarget`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreState {
    /// Waiting for an answer.
    Waiting,
    /// Its last attempt passed its soft timeout: it no longer holds the store phase up (a node
    /// that left since the search would otherwise cost `request_timeout`), but its late answer
    /// still counts while the phase runs.
    Slow,
    /// It answered: stored.
    Stored,
    /// It answered with an error, or every attempt timed out.
    Failed,
}

/// The fields of a BEP 44 mutable put that the store phase signed once.
#[derive(Debug, Clone)]
pub(crate) struct SignedPut {
    key: PublicKey,
    salt: Vec<u8>,
    seq: i64,
    signature: Signature,
    cas: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct Lookup {
    pub kind: Kind,
    pub target: NodeId,
    pub legs: Vec<Leg>,
    pub seeds_pending: usize,
    /// Bootstrap: seed requests that may still be sent again after a timeout (a lost datagram
    /// must not make a join fail): `lookup_attempts - 1` per seed address.
    pub seed_retries: usize,
    pub started: Instant,
    pub deadline: Instant,
    pub stats: LookupStats,
    pub phase: Phase,
    pub peers: Vec<SocketAddr>,
    pub peers_seen: BTreeSet<SocketAddr>,
    pub item: Option<StoredItem>,
    /// Highest seq any node reported for the mutable target (also without a value).
    pub seen_seq: Option<i64>,
    pub samples: BTreeSet<InfoHash>,
    /// BEP 33: the union of the `BFsd` / `BFpe` filters received, for a scrape.
    pub scrape: Option<Box<crate::event::Scrape>>,
    /// The seq a mutable put stores, once known.
    pub put_seq: Option<i64>,
    /// Internal lookups (refresh) report nothing.
    pub internal: bool,
    /// Requests it sends to one candidate: `lookup_attempts`, or
    /// `lookup_patient_attempts` when patient.
    pub attempts: u8,
    /// Whether it makes `lookup_patient_attempts` and its last attempt to a candidate
    /// named by a near neighbour waits `lookup_vouched_wait` (see [`Node::patient`]).
    pub patient: bool,
    /// Set when the lookup itself decided it failed (a mutable put refused before storing).
    pub failure: Option<CommandError>,
    /// Its store queries, once it sends any.
    pub stores: Stores,
}

/// How one store query to a [`StoreTarget`] ended.
#[derive(Debug, Clone, Copy)]
enum StoreReply {
    /// Answered: stored there.
    Stored(NodeInfo),
    /// Answered with a KRPC error.
    Refused(xorro_wire::ErrorCode),
    /// Its hard timeout passed.
    TimedOut,
}

impl Lookup {
    /// Store target `target`.
    fn store_target(&self, target: usize) -> Option<&StoreTarget> {
        self.stores.targets.get(target)
    }

    /// See [`Lookup::store_target`].
    fn store_target_mut(&mut self, target: usize) -> Option<&mut StoreTarget> {
        self.stores.targets.get_mut(target)
    }

    /// One of the store queries to `target` ended. A target's first answer decides it (the
    /// answer to a retransmitted query after the first one's is counted once); a timeout
    /// fails it only once none of its queries can still be answered.
    fn on_store_reply(&mut self, target: usize, reply: StoreReply) {
        let Stores {
            targets,
            stored_at,
            errors,
            ..
        } = &mut self.stores;
        let Some(t) = targets.get_mut(target) else {
            return;
        };
        t.in_flight = t.in_flight.saturating_sub(1);
        if !matches!(t.state, StoreState::Waiting | StoreState::Slow) {
            return;
        }
        match reply {
            StoreReply::Stored(node) => {
                t.state = StoreState::Stored;
                stored_at.push(node);
            }
            StoreReply::Refused(code) => {
                t.state = StoreState::Failed;
                errors.push(code);
            }
            StoreReply::TimedOut if t.in_flight == 0 => t.state = StoreState::Failed,
            StoreReply::TimedOut => {}
        }
    }
}

/// A datagram waiting to be sent.
#[derive(Debug)]
struct Transmit {
    to: SocketAddr,
    range: std::ops::Range<usize>,
}

/// A sans-IO Mainline DHT node. See the [crate docs](crate) for the contract.
#[derive(Debug)]
pub struct Node {
    pub(crate) config: Config,
    pub(crate) id: NodeId,
    pub(crate) rng: ChaCha12Rng,
    pub(crate) table4: RoutingTable,
    pub(crate) table6: RoutingTable,
    pub(crate) tokens: Tokens,
    pub(crate) peers: PeerStore,
    pub(crate) items: ItemStore,
    pub(crate) limiter: InboundLimiter,
    pub(crate) budget: OutgoingBudget,
    pub(crate) requests: Requests,
    pub(crate) lookups: BTreeMap<CommandId, Lookup>,
    next_command: u64,
    transmits: VecDeque<Transmit>,
    transmit_buf: Vec<u8>,
    events: VecDeque<Event>,
    pub(crate) stats: Stats,
    next_maintenance: Instant,
    /// Set when the outgoing budget stopped a lookup: drive lookups again then.
    budget_wakeup: Option<Instant>,
    /// A lookup started before the node had any contact waits for the running bootstrap's
    /// first answer (see [`Node::seed_waiting`]).
    awaiting_contacts: bool,
    /// The addresses of the last bootstrap given some, asked again while the tables hold
    /// no usable contact (see [`Config::rebootstrap_interval`]).
    seeds: Box<[SocketAddr]>,
    /// When the last bootstrap started.
    last_bootstrap: Option<Instant>,
    /// How often the late candidates of our patient lookups (asked past `lookup_attempts`,
    /// or waited for) answered, exponentially weighted (see [`Node::patient`]).
    late_answer_share: f32,
    /// Outcomes counted into `late_answer_share` so far, up to [`LATE_ANSWER_MEAN_OF`].
    late_outcomes: u8,
    /// Whether strangers reach us over IPv4 and over IPv6 (see
    /// [`Config::detect_unreachable`]; `None` when off): a home connection often has a
    /// public IPv6 address and IPv4 behind NAT.
    pub(crate) reach: Option<Box<[crate::reach::Reach; 2]>>,
    /// Our own addresses, as the driver gave them ([`Node::set_local_ips`]).
    local_ips: Vec<IpAddr>,
    /// By family: the address others see is none of `local_ips` (address translation).
    behind_nat: [bool; 2],
    /// BEP 42: our address as reported by others: address → distinct reporters.
    ip_votes: BTreeMap<IpAddr, BTreeSet<IpAddr>>,
    /// BEP 42: our address as the others agree on it, by family (a dual-stack node has
    /// one of each).
    external: [Option<IpAddr>; 2],
    /// Round-trip times of every answer, for the soft timeout of contacts never timed.
    rto: RttEstimator,
}

/// Capacity a drained transmit buffer keeps (bytes): none. Sends come in bursts; an idle
/// buffer kept for the next one cost up to 1,500 bytes a node, more than the allocation it
/// saves is worth when a process holds many nodes.
const KEEP_TRANSMIT_BYTES: usize = 0;
/// Capacity a drained transmit queue keeps (entries): a reply or two.
const KEEP_QUEUED: usize = 4;
/// Capacity a drained event queue keeps (entries): none. Events come after commands, rarely
/// for most nodes of a large process, and four kept places cost ~770 bytes a node.
const KEEP_EVENTS: usize = 0;

/// Bucket refresh lookups a maintenance tick starts at most, per family; buckets due past
/// them wait for the next tick.
const REFRESHES_PER_TICK: usize = 4;
/// The shortest soft timeout: below it, jitter alone would make requests look slow.
const MIN_SOFT_TIMEOUT: Duration = Duration::from_millis(100);
/// RFC 6298's retransmission timeout before the first RTT sample.
const INITIAL_RTO: Duration = Duration::from_secs(1);
/// The share of late candidates that must answer for a node's lookups to be patient
/// ([`Config::lookup_patient_attempts`]): one in three.
const PATIENT_SHARE: f32 = 1.0 / 3.0;
/// The weight of one outcome in that share, once the node has counted
/// [`LATE_ANSWER_MEAN_OF`]; before, its share is the mean of its outcomes and the prior.
const LATE_ANSWER_WEIGHT: f32 = 1.0 / 8.0;
/// Outcomes after which the share weighs each one [`LATE_ANSWER_WEIGHT`].
const LATE_ANSWER_MEAN_OF: u8 = 7;

/// RFC 6298's smoothed RTT and variation; the timeout is `srtt + 4 × rttvar`.
#[derive(Debug, Clone, Copy, Default)]
struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl RttEstimator {
    fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                let diff = s.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((s * 7 + r) / 8);
            }
        }
    }

    fn timeout(&self) -> Option<Duration> {
        self.srtt
            .map(|s| (s + self.rttvar * 4).max(MIN_SOFT_TIMEOUT))
    }
}

/// Bytes a node holds, by part: see [`Node::memory_usage`]. Heap parts count allocated
/// capacities times element sizes; the B-tree maps (stores, requests in flight) count their
/// elements only, so the figures are a lower bound of what the allocator gives out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// `size_of::<Node>()`: the node itself, with its config and the inline parts of all below.
    pub node: usize,
    /// Both routing tables: buckets, members, replacement caches, the address index.
    pub routing: usize,
    /// The per-source rate limiter.
    pub limiter: usize,
    /// Peers and BEP 44 items stored for the network.
    pub stores: usize,
    /// Requests in flight.
    pub requests: usize,
    /// Running lookups: their candidates, peers and item.
    pub lookups: usize,
    /// Queued datagrams and events, reachability filters, BEP 42 votes.
    pub buffers: usize,
}

impl std::ops::AddAssign for MemoryUsage {
    /// Part by part (for sums over many nodes).
    fn add_assign(&mut self, o: MemoryUsage) {
        self.node += o.node;
        self.routing += o.routing;
        self.limiter += o.limiter;
        self.stores += o.stores;
        self.requests += o.requests;
        self.lookups += o.lookups;
        self.buffers += o.buffers;
    }
}

impl MemoryUsage {
    /// The sum of the parts.
    pub fn total(&self) -> usize {
        self.node
            + self.routing
            + self.limiter
            + self.stores
            + self.requests
            + self.lookups
            + self.buffers
    }
}

/// Everything a node needs to restart warm: see [`Node::snapshot`] and [`Node::restore`].
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Our id.
    pub id: NodeId,
    /// The token secrets.
    pub token_secrets: TokenSecrets,
    /// Routing table contacts, IPv4 and IPv6.
    pub contacts: Vec<SavedContact>,
    /// Stored peers with the time they have left.
    pub peers: Vec<(InfoHash, SocketAddr, bool, Duration)>,
    /// Stored BEP 44 items with the time they have left.
    pub items: Vec<(NodeId, StoredItem, Duration)>,
}

impl Snapshot {
    /// The snapshot as seen `elapsed` after it was taken: every contact answered that much
    /// longer ago.
    pub fn aged(mut self, elapsed: Duration) -> Self {
        for c in &mut self.contacts {
            c.answered_ago = c.answered_ago.map(|ago| ago.saturating_add(elapsed));
        }
        self
    }
}

impl Node {
    /// A node with `config`, started at `now`.
    pub fn new(config: Config, now: Instant) -> Self {
        let mut rng = ChaCha12Rng::seed_from_u64(config.rng_seed);
        let id = config.id.unwrap_or_else(|| NodeId(rng.r#gen()));
        let secret: [u8; 20] = rng.r#gen();
        let first_tid: u32 = rng.r#gen();
        // One copy of each for both tables and both stores.
        let routing = Arc::new(config.routing.clone());
        let store = Arc::new(config.store);
        Node {
            table4: RoutingTable::with_config(id, Arc::clone(&routing)),
            table6: RoutingTable::of_family(Family::V6, id, routing),
            tokens: Tokens::new(config.tokens, secret, now),
            peers: PeerStore::with_config(Arc::clone(&store), id),
            items: ItemStore::with_config(store, id),
            limiter: InboundLimiter::new(&config.rate_limit),
            budget: OutgoingBudget::new(&config.rate_limit, now),
            requests: Requests::new(first_tid),
            lookups: BTreeMap::new(),
            next_command: 1,
            transmits: VecDeque::new(),
            transmit_buf: Vec::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            // The first tick comes soon: a joining node looks for its neighbours again then.
            next_maintenance: now + config.maintenance_interval.min(Duration::from_secs(1)),
            budget_wakeup: None,
            awaiting_contacts: false,
            seeds: Box::default(),
            last_bootstrap: None,
            late_answer_share: 0.5,
            late_outcomes: 0,
            reach: (!config.detect_unreachable.is_zero()
                || !config.detect_unreachable_behind_nat.is_zero())
            .then(|| {
                let key = u64::from_le_bytes(secret[..8].try_into().unwrap_or_default());
                Box::new([
                    crate::reach::Reach::new(now, key),
                    crate::reach::Reach::new(now, key.rotate_left(32)),
                ])
            }),
            local_ips: Vec::new(),
            behind_nat: [false; 2],
            ip_votes: BTreeMap::new(),
            external: [None; 2],
            rto: RttEstimator::default(),
            id,
            rng,
            config,
        }
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Our external IP address as agreed by other nodes' `ip` fields (BEP 42), once known.
    /// The IPv4 one when known, else the IPv6 one (see [`Node::external_ip_in`]).
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.external[0].or(self.external[1])
    }

    /// Our external address in `family` as agreed by other nodes (BEP 42), once known.
    pub fn external_ip_in(&self, family: Family) -> Option<IpAddr> {
        self.external[family_index(family)]
    }

    /// Tells the node its own addresses (those of its interfaces, or the one its socket is
    /// bound to; unspecified addresses are ignored). Once the address other nodes see in a
    /// family is none of these, the node knows it is behind address translation there
    /// ([`Node::behind_nat`], [`Config::detect_unreachable_behind_nat`]). Replaces what was
    /// given before.
    pub fn set_local_ips(&mut self, ips: impl IntoIterator<Item = IpAddr>) {
        self.local_ips = ips
            .into_iter()
            .map(|ip| ip.to_canonical())
            .filter(|ip| !ip.is_unspecified())
            .collect();
        self.local_ips.sort_unstable();
        self.local_ips.dedup();
        self.note_translation();
    }

    /// Whether the address other nodes see in `family` (BEP 42) is none of the node's own
    /// ([`Node::set_local_ips`]): it is behind NAT there. False until both are known.
    pub fn behind_nat(&self, family: Family) -> bool {
        self.behind_nat[family_index(family)]
    }

    /// Compares the adopted external addresses with our own, family by family.
    fn note_translation(&mut self) {
        for family in [Family::V4, Family::V6] {
            self.note_translation_in(family);
        }
    }

    fn note_translation_in(&mut self, family: Family) {
        let Some(ext) = self.external[family_index(family)] else {
            return;
        };
        let mut own = self
            .local_ips
            .iter()
            .filter(|ip| Family::of_ip(**ip) == family)
            .peekable();
        let nat = own.peek().is_some() && !own.any(|ip| *ip == ext);
        if nat != self.behind_nat[family_index(family)] {
            self.behind_nat[family_index(family)] = nat;
            tracing::info!(?family, external = %ext, local = ?self.local_ips, nat, "address translation");
        }
    }

    /// How long the node waits for a stranger's query in `family` before it takes itself for
    /// unreachable there (zero: it does not judge that family).
    fn reach_wait(&self, family: Family) -> Duration {
        if !self.config.detect_unreachable.is_zero() {
            self.config.detect_unreachable
        } else if self.behind_nat(family) {
            self.config.detect_unreachable_behind_nat
        } else {
            Duration::ZERO
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The routing table of a family.
    pub fn routing_table(&self, family: Family) -> &RoutingTable {
        match family {
            Family::V4 => &self.table4,
            Family::V6 => &self.table6,
        }
    }

    pub(crate) fn table_mut(&mut self, family: Family) -> &mut RoutingTable {
        match family {
            Family::V4 => &mut self.table4,
            Family::V6 => &mut self.table6,
        }
    }

    /// Peers stored on behalf of the network.
    pub fn peer_store(&self) -> &PeerStore {
        &self.peers
    }

    /// BEP 44 items stored on behalf of the network.
    pub fn item_store(&self) -> &ItemStore {
        &self.items
    }

    /// Bytes held by this node, by part (to find what a large simulation or a busy node spends
    /// its memory on).
    pub fn memory_usage(&self) -> MemoryUsage {
        use std::mem::size_of;
        let lookups = self
            .lookups
            .values()
            .map(|l| {
                size_of::<(CommandId, Lookup)>()
                    + l.legs.capacity() * size_of::<Leg>()
                    + l.legs.iter().map(Leg::heap_bytes).sum::<usize>()
                    + l.peers.capacity() * size_of::<SocketAddr>()
                    + l.peers_seen.len() * size_of::<SocketAddr>()
                    + l.samples.len() * size_of::<InfoHash>()
            })
            .sum();
        let votes: usize = self
            .ip_votes
            .values()
            .map(|v| size_of::<(IpAddr, BTreeSet<IpAddr>)>() + v.len() * size_of::<IpAddr>())
            .sum();
        MemoryUsage {
            node: size_of::<Node>(),
            routing: self.table4.heap_bytes() + self.table6.heap_bytes(),
            limiter: self.limiter.heap_bytes(),
            stores: self.peers.heap_bytes() + self.items.heap_bytes(),
            requests: self.requests.heap_bytes(),
            lookups,
            buffers: self.transmits.capacity() * size_of::<Transmit>()
                + self.transmit_buf.capacity()
                + self.events.capacity() * size_of::<Event>()
                + self.reach.as_ref().map_or(0, |r| {
                    size_of::<[crate::reach::Reach; 2]>()
                        + r.iter().map(crate::reach::Reach::heap_bytes).sum::<usize>()
                })
                + votes,
        }
    }

    /// Lookups running now.
    pub fn lookups_running(&self) -> usize {
        self.lookups.values().filter(|l| !l.internal).count()
    }

    // ----- outputs -----

    /// The next datagram to send: copies it into `buf` (cleared first) and returns the
    /// destination. Drain until `None` after every input.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let t = self.transmits.pop_front()?;
        buf.clear();
        buf.extend_from_slice(&self.transmit_buf[t.range]);
        if self.transmits.is_empty() {
            self.transmit_buf.clear();
            // A burst (joining, a maintenance round) leaves large buffers behind: give them
            // back (the queue keeps room for a reply or two).
            if self.transmit_buf.capacity() > KEEP_TRANSMIT_BYTES {
                self.transmit_buf = Vec::new();
            }
            if self.transmits.capacity() > KEEP_QUEUED {
                self.transmits = VecDeque::new();
            }
        }
        self.stats.datagrams_out += 1;
        Some(t.to)
    }

    /// Takes a lookup out. The last one out frees the map's room: an emptied B-tree keeps its
    /// root node until it is dropped, and this one holds eleven lookups (about 8.7 KB).
    fn remove_lookup(&mut self, id: CommandId) -> Option<Lookup> {
        let l = self.lookups.remove(&id);
        if self.lookups.is_empty() {
            self.lookups = BTreeMap::new();
        }
        l
    }

    /// When [`Node::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let lookup_deadline = self.lookups.values().map(|l| l.deadline).min();
        [
            Some(self.next_maintenance),
            self.requests.next_deadline(),
            lookup_deadline,
            self.budget_wakeup,
            Some(self.tokens.next_rotation()),
            self.peers.next_expiry(),
            self.items.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front();
        if self.events.is_empty() && self.events.capacity() > KEEP_EVENTS {
            self.events = VecDeque::new();
        }
        e
    }

    pub(crate) fn push_event(&mut self, e: Event) {
        if self.events.len() >= self.config.events_max {
            self.events.pop_front();
            self.stats.drops.events += 1;
        }
        self.events.push_back(e);
    }

    /// Read-only (BEP 43) in `family`: set so, or taken for unreachable there
    /// ([`Config::detect_unreachable`]).
    pub fn acts_read_only_in(&self, family: Family) -> bool {
        self.config.read_only
            || self
                .reach
                .as_ref()
                .is_some_and(|r| r[family_index(family)].acts_read_only())
    }

    /// Read-only in at least one family.
    pub fn acts_read_only(&self) -> bool {
        self.acts_read_only_in(Family::V4) || self.acts_read_only_in(Family::V6)
    }

    /// What the node knows of its own reachability in `family`; `None` unless it judges it
    /// there ([`Config::detect_unreachable`], or [`Config::detect_unreachable_behind_nat`]
    /// once it knows it is behind NAT in that family).
    pub fn reachability(&self, family: Family) -> Option<crate::reach::Reachability> {
        if self.reach_wait(family).is_zero() {
            return None;
        }
        self.reach.as_ref().map(|r| r[family_index(family)].state())
    }

    /// Encodes `msg` and queues it for `to`. Returns false if it was not queued.
    pub(crate) fn send(&mut self, to: SocketAddr, msg: &Message<'_>) -> bool {
        if let Some(r) = &mut self.reach {
            r[family_index(Family::of(&to))].on_sent(to);
        }
        if self.transmits.len() >= self.config.transmit_queue_max {
            self.stats.drops.transmit_queue_full += 1;
            return false;
        }
        let start = self.transmit_buf.len();
        let ok = encode_append(msg, &mut self.transmit_buf).is_ok();
        if ok {
            self.transmits.push_back(Transmit {
                to,
                range: start..self.transmit_buf.len(),
            });
        }
        ok
    }

    // ----- inputs -----

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_in += 1;
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        if !(from.ip().is_loopback() || self.limiter.allow(from.ip(), now)) {
            self.stats.drops.rate_limited += 1;
            tracing::trace!(%from, "rate limited");
            return;
        }
        let msg = match xorro_wire::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                match e.reply() {
                    Some((tid, code)) if !self.acts_read_only_in(Family::of(&from)) => {
                        self.send_error(from, tid, code, None)
                    }
                    _ => self.stats.drops.malformed += 1,
                }
                tracing::trace!(%from, error = %e, "undecodable datagram");
                return;
            }
        };
        match &msg.body {
            Body::Query(q) => self.handle_query(now, from, &msg, q),
            Body::Response(r) => self.handle_response(now, from, &msg, r),
            Body::Error(e) => self.handle_error(now, from, &msg.transaction_id, e.code),
        }
    }

    /// Time passed: fire due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((kind, req)) = self.requests.pop_due(now) {
            match kind {
                Deadline::Soft => match req.purpose {
                    Purpose::Search { lookup, leg } => {
                        if let Some(l) = self.lookups.get_mut(&lookup)
                            && let Some(leg) = l.legs.get_mut(usize::from(leg))
                        {
                            leg.on_slow(&req.to);
                            self.drive(lookup, now);
                        }
                    }
                    Purpose::Store { lookup, target } => self.on_store_slow(lookup, target, now),
                    Purpose::Seed { .. } | Purpose::Ping { .. } => {}
                },
                Deadline::Hard => self.on_request_failed(now, req, true),
            }
        }
        let expired: Vec<CommandId> = self
            .lookups
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.finish(id, now);
        }
        if self.budget_wakeup.is_some_and(|w| w <= now) {
            self.budget_wakeup = None;
            let ids: Vec<CommandId> = self.lookups.keys().copied().collect();
            for id in ids {
                self.drive(id, now);
            }
        }
        if self.tokens.next_rotation() <= now {
            self.tokens.handle_timeout(now, &mut self.rng);
        }
        self.peers.expire(now);
        self.items.expire(now);
        if self.next_maintenance <= now {
            self.maintain(now);
            // While a table holds fewer than k contacts we are still joining (or the network
            // is tiny): tick every second, so nodes that joined after us are found in seconds.
            let joining = [Family::V4, Family::V6].into_iter().any(|f| {
                let t = self.routing_table(f);
                !t.is_empty() && t.len() < self.config.lookup_closest
            });
            let every = if joining {
                self.config.maintenance_interval.min(Duration::from_secs(1))
            } else {
                self.config.maintenance_interval
            };
            self.next_maintenance = now + every;
        }
    }

    /// After joining: one lookup into the range of every bucket but the one covering our id,
    /// so the far buckets (wide ones especially) fill now rather than at their first idle
    /// refresh 15 minutes later (Kademlia's join procedure; libtorrent does the same). A
    /// table that has not split yet (fewer than k contacts, all of them possibly on our side
    /// of the id space) still gets a lookup into the far half: in a young network the seed's
    /// answer names only nodes near our id, and without it the nodes that joined early knew
    /// nothing of the other half until their first refresh.
    fn refresh_buckets(&mut self, now: Instant) {
        for family in [Family::V4, Family::V6] {
            let buckets = self.routing_table(family).bucket_count();
            if self.routing_table(family).is_empty() {
                continue;
            }
            for depth in 0..buckets.saturating_sub(1).clamp(1, 32) {
                let target = random_id_at_depth(&self.id, depth, &mut self.rng);
                let _ = self.start_lookup(Kind::Refresh, target, now, true);
            }
        }
    }

    /// Whether the table of `family` holds a node of our half of the id space (sharing our
    /// first bit). A join whose own-id lookup heard from none of our half (seen on a loaded
    /// CPU) can leave k contacts all in the far half, which the far-half lookup of
    /// [`Node::refresh_buckets`] fills: then our neighbours do not know us, and nothing but
    /// the 15-minute refresh would look for them.
    fn knows_own_half(&self, family: Family) -> bool {
        let mut nearest = Vec::with_capacity(1);
        self.routing_table(family)
            .closest(&self.id, 1, &mut nearest);
        nearest
            .first()
            .is_some_and(|n| n.id.distance(&self.id).leading_zeros() >= 1)
    }

    /// Bootstraps again when alone, pings stale contacts, refreshes idle buckets and forgets
    /// the rate limiter's sources whose buckets are full again.
    fn maintain(&mut self, now: Instant) {
        self.limiter.forget_refilled(now);
        for family in [Family::V4, Family::V6] {
            let unused = self.routing_table(family).is_empty();
            let after = self.reach_wait(family);
            let Some(r) = &mut self.reach else { break };
            let r = &mut r[family_index(family)];
            // A family the node does not use (no contact) is not judged: its wait starts
            // when it gets one.
            if unused {
                r.idle(now);
                continue;
            }
            if let Some(state) = r.tick(now, after) {
                if matches!(state, crate::reach::Reachability::Unreachable { .. }) {
                    self.stats.unreachable_spells += 1;
                }
                tracing::info!(?family, ?state, "reachability");
            }
        }
        self.rebootstrap_if_alone(now);
        for family in [Family::V4, Family::V6] {
            if self.routing_table(family).is_empty() {
                continue;
            }
            let stale = self.table_mut(family).stale_to_ping(now, 8);
            for node in stale {
                self.ping_node(now, node);
            }
            // Fewer than k contacts: we are still joining (or the network is tiny). Look up
            // our own id at every tick, so that nodes that joined after our bootstrap are
            // found within seconds rather than at the 15-minute bucket refresh.
            if self.routing_table(family).len() < self.config.lookup_closest
                || !self.knows_own_half(family)
            {
                let _ = self.start_lookup(Kind::Refresh, self.id, now, true);
            }
            let targets = {
                let Node {
                    table4,
                    table6,
                    rng,
                    ..
                } = self;
                let t = if family == Family::V4 { table4 } else { table6 };
                t.refresh_targets(now, REFRESHES_PER_TICK, rng)
            };
            for target in targets {
                let _ = self.start_lookup(Kind::Refresh, target, now, true);
            }
        }
    }

    fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        r: &Response<'_>,
    ) {
        let Some(req) = self.requests.take(&msg.transaction_id, from) else {
            self.stats.drops.unexpected_response += 1;
            return;
        };
        self.stats.responses_in += 1;
        let node = NodeInfo::new(r.id, from);
        let rtt = now.saturating_duration_since(req.sent);
        self.rto.sample(rtt);
        if !msg.read_only && r.id != self.id && self.acceptable(&node) {
            match self
                .table_mut(Family::of(&from))
                .on_response(node, Some(rtt), now)
            {
                Insertion::PingFirst { stale } => self.ping_node(now, stale),
                other => tracing::trace!(?other, %from, "contact seen"),
            }
        }
        if let Some(ip) = msg.requester_addr() {
            self.vote_external_ip(now, from.ip(), ip.ip());
        }
        if self.awaiting_contacts && !(self.table4.is_empty() && self.table6.is_empty()) {
            self.seed_waiting(now);
        }
        match req.purpose {
            Purpose::Ping { command: Some(id) } => {
                let stats = LookupStats {
                    messages_sent: 1,
                    responses: 1,
                    rounds: 1,
                    duration: rtt,
                    ..Default::default()
                };
                self.push_event(Event::CommandFinished {
                    id,
                    outcome: Outcome::Pong(node),
                    stats,
                });
            }
            Purpose::Ping { command: None } => {}
            Purpose::Seed { lookup } => {
                if let Some(l) = self.lookups.get_mut(&lookup) {
                    l.seeds_pending = l.seeds_pending.saturating_sub(1);
                    l.stats.responses += 1;
                    for leg in &mut l.legs {
                        leg.add(
                            node,
                            1,
                            Hint {
                                rtt: Some(rtt),
                                failures: 0,
                            },
                        );
                        leg.on_response(&from, None, rtt);
                    }
                }
                self.on_search_response(lookup, node, r, 1, now);
            }
            Purpose::Search { lookup, leg } => {
                let hop = self
                    .lookups
                    .get_mut(&lookup)
                    .and_then(|l| {
                        l.stats.responses += 1;
                        l.legs.get_mut(usize::from(leg))
                    })
                    .and_then(|leg| leg.on_response(&from, r.token.map(Token::from), rtt));
                if let Some(hop) = hop {
                    self.on_search_response(lookup, node, r, hop, now);
                }
            }
            Purpose::Store { lookup, target } => {
                if let Some(l) = self.lookups.get_mut(&lookup) {
                    l.stats.responses += 1;
                    l.on_store_reply(usize::from(target), StoreReply::Stored(node));
                }
                self.drive(lookup, now);
            }
        }
    }

    fn handle_error(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &TransactionId,
        code: xorro_wire::ErrorCode,
    ) {
        let Some(req) = self.requests.take(tid, from) else {
            self.stats.drops.unexpected_response += 1;
            return;
        };
        self.stats.errors_in += 1;
        match req.purpose {
            Purpose::Store { lookup, target } => {
                if let Some(l) = self.lookups.get_mut(&lookup) {
                    l.stats.errors += 1;
                    l.on_store_reply(usize::from(target), StoreReply::Refused(code));
                }
                self.drive(lookup, now);
            }
            _ => {
                if let Some(l) = self.lookup_of(&req) {
                    l.stats.errors += 1;
                }
                self.on_request_failed(now, req, false);
            }
        }
    }

    fn lookup_of(&mut self, req: &Request) -> Option<&mut Lookup> {
        req.purpose
            .lookup()
            .and_then(|id| self.lookups.get_mut(&id))
    }

    fn on_request_failed(&mut self, now: Instant, req: Request, timed_out: bool) {
        // A retransmitted lookup request that times out after another one to the same node
        // was answered says nothing about the node: do not count it against it.
        let answered_anyway = match req.purpose {
            Purpose::Search { lookup, leg } => self
                .lookups
                .get(&lookup)
                .and_then(|l| l.legs.get(usize::from(leg)))
                .is_some_and(|leg| leg.responded(&req.to)),
            Purpose::Store { lookup, target } => self
                .lookups
                .get(&lookup)
                .and_then(|l| l.store_target(usize::from(target)))
                .is_some_and(|t| t.state == StoreState::Stored),
            _ => false,
        };
        if timed_out && !answered_anyway {
            self.stats.timeouts += 1;
            let outcome = self
                .table_mut(Family::of(&req.to))
                .on_failure(req.to, req.node_id, now);
            if let FailureOutcome::Replaced { bad, by } = outcome {
                tracing::debug!(%bad.addr, %by.addr, "bad contact replaced");
            }
        }
        match req.purpose {
            Purpose::Ping { command: Some(id) } => {
                let stats = LookupStats {
                    messages_sent: 1,
                    timeouts: u32::from(timed_out),
                    ..Default::default()
                };
                self.push_event(Event::CommandFinished {
                    id,
                    outcome: Outcome::Failed(CommandError::NoResponse),
                    stats,
                });
            }
            Purpose::Ping { command: None } => {}
            Purpose::Seed { lookup } => {
                let mut retry = None;
                if let Some(l) = self.lookups.get_mut(&lookup) {
                    l.seeds_pending = l.seeds_pending.saturating_sub(1);
                    l.stats.timeouts += u32::from(timed_out);
                    // Ask a silent seed again while the bootstrap has no answer at all.
                    if timed_out && l.seed_retries > 0 && l.stats.responses == 0 {
                        l.seed_retries -= 1;
                        retry = Some(l.target);
                    }
                }
                if let Some(target) = retry {
                    self.send_seed_query(now, lookup, req.to, target);
                }
                self.drive(lookup, now);
            }
            Purpose::Search { lookup, leg } => {
                if let Some(l) = self.lookups.get_mut(&lookup) {
                    l.stats.timeouts += u32::from(timed_out);
                    let attempts = l.attempts;
                    if let Some(leg) = l.legs.get_mut(usize::from(leg)) {
                        if timed_out {
                            leg.on_timeout(&req.to, attempts);
                        } else {
                            leg.on_failure(&req.to);
                        }
                    }
                }
                self.drive(lookup, now);
            }
            Purpose::Store { lookup, target } => {
                if let Some(l) = self.lookups.get_mut(&lookup) {
                    l.stats.timeouts += u32::from(timed_out);
                    // Only a hard timeout ends a store query here: handle_error takes errors.
                    l.on_store_reply(usize::from(target), StoreReply::TimedOut);
                }
                self.drive(lookup, now);
            }
        }
    }

    /// BEP 42 enforcement: may this contact enter the routing table / be a storage target?
    pub(crate) fn acceptable(&self, node: &NodeInfo) -> bool {
        !self.config.bep42_enforce
            || xorro_wire::bep42::is_exempt(node.addr.ip())
            || xorro_wire::bep42::is_secure(&node.id, node.addr.ip())
    }

    /// BEP 42: counts a report of our address; adopts it once enough distinct nodes agree,
    /// and derives a secure id from it if configured to.
    fn vote_external_ip(&mut self, now: Instant, voter: IpAddr, ours: IpAddr) {
        let ours = ours.to_canonical();
        let family = Family::of_ip(ours);
        // Votes for the address already adopted decide nothing: keeping them cost ~2 KB a node.
        if self.external[family_index(family)] == Some(ours) {
            return;
        }
        if self.ip_votes.len() >= 16 && !self.ip_votes.contains_key(&ours) {
            return;
        }
        let voters = self.ip_votes.entry(ours).or_default();
        if voters.len() < 64 {
            voters.insert(voter);
        }
        if voters.len() < self.config.bep42_votes {
            return;
        }
        self.external[family_index(family)] = Some(ours);
        // The other family's votes stand: a dual-stack node adopts one address of each.
        self.ip_votes.retain(|ip, _| Family::of_ip(*ip) != family);
        tracing::info!(ip = %ours, "external address agreed by other nodes");
        self.note_translation_in(family);
        // One id for both families: derived from the first address agreed on, and kept
        // while it is secure for one of them.
        let secure_for_other = self.external[family_index(family) ^ 1]
            .is_some_and(|ip| xorro_wire::bep42::is_secure(&self.id, ip));
        if self.config.bep42_derive_id
            && !xorro_wire::bep42::is_exempt(ours)
            && !xorro_wire::bep42::is_secure(&self.id, ours)
            && !secure_for_other
        {
            let new = xorro_wire::bep42::secure_node_id(ours, self.rng.r#gen());
            let old = self.id;
            self.set_id(new);
            tracing::info!(%old, %new, "node id derived from external address (BEP 42)");
            self.push_event(Event::IdChanged { old, new });
            let _ = self.start_lookup(Kind::Refresh, new, now, true);
        }
    }

    fn set_id(&mut self, id: NodeId) {
        self.id = id;
        self.table4.set_own_id(id);
        self.table6.set_own_id(id);
        // The stores keep what is closest to our id when full: measure from the new one.
        self.peers.set_own_id(id);
        self.items.set_own_id(id);
    }

    // ----- commands -----

    /// Joins the network through `addrs` (their ids need not be known), then looks up our own
    /// id. With no addresses and an empty table the node is the first of its network: the
    /// command finishes at once with no contacts, and the node serves whoever joins it.
    ///
    /// The addresses are kept: while the routing tables hold no usable contact, maintenance
    /// asks them again every [`Config::rebootstrap_interval`].
    pub fn start_bootstrap(
        &mut self,
        addrs: &[SocketAddr],
        now: Instant,
    ) -> Result<CommandId, StartError> {
        let addrs: Box<[SocketAddr]> = addrs
            .iter()
            .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
            .collect();
        let id = self.bootstrap(&addrs, now, false)?;
        if !addrs.is_empty() {
            self.seeds = addrs;
        }
        Ok(id)
    }

    /// Starts a bootstrap through `addrs` (canonical) and the tables.
    fn bootstrap(
        &mut self,
        addrs: &[SocketAddr],
        now: Instant,
        internal: bool,
    ) -> Result<CommandId, StartError> {
        let id = self.start_lookup(Kind::Bootstrap, self.id, now, internal)?;
        self.last_bootstrap = Some(now);
        let retries = usize::from(self.config.lookup_attempts.max(1) - 1);
        if let Some(l) = self.lookups.get_mut(&id) {
            l.seed_retries = addrs.len().saturating_mul(retries);
        }
        for &addr in addrs {
            self.send_seed_query(now, id, addr, self.id);
        }
        self.drive(id, now);
        Ok(id)
    }

    /// libtorrent's `need_bootstrap`: with no usable contact in either table (none, or only
    /// bad ones), no bootstrap running and [`Config::rebootstrap_interval`] passed since the
    /// last one, asks the last bootstrap's addresses again.
    fn rebootstrap_if_alone(&mut self, now: Instant) {
        let interval = self.config.rebootstrap_interval;
        if interval.is_zero()
            || self.seeds.is_empty()
            || self
                .last_bootstrap
                .is_some_and(|t| now.saturating_duration_since(t) < interval)
            || self.table4.has_usable()
            || self.table6.has_usable()
            || self.bootstrap_running()
        {
            return;
        }
        let seeds = std::mem::take(&mut self.seeds);
        if self.bootstrap(&seeds, now, true).is_ok() {
            self.stats.rebootstraps += 1;
            tracing::info!(
                seeds = seeds.len(),
                "no usable contact: bootstrapping again"
            );
        }
        self.seeds = seeds;
    }

    /// Sends a bootstrap's find_node to a seed address whose id we do not know.
    fn send_seed_query(&mut self, now: Instant, id: CommandId, addr: SocketAddr, target: NodeId) {
        let msg_kind = QueryKind::FindNode {
            target,
            want: Want::UNSPECIFIED,
        };
        if self.send_query(
            now,
            addr,
            None,
            Purpose::Seed { lookup: id },
            msg_kind,
            None,
        ) && let Some(l) = self.lookups.get_mut(&id)
        {
            l.seeds_pending += 1;
            l.stats.messages_sent += 1;
        }
    }

    /// Finds the nodes closest to `target`.
    pub fn start_find_node(
        &mut self,
        target: NodeId,
        now: Instant,
    ) -> Result<CommandId, StartError> {
        self.start_lookup(Kind::FindNode, target, now, false)
    }

    /// Finds peers for `info_hash` (`PeersFound` events as they arrive). BEP 33: `no_seed`
    /// asks only for peers that are not seeds, `scrape` for the Bloom filters.
    pub fn start_get_peers(
        &mut self,
        info_hash: InfoHash,
        no_seed: bool,
        scrape: bool,
        now: Instant,
    ) -> Result<CommandId, StartError> {
        self.start_lookup(
            Kind::GetPeers { no_seed, scrape },
            info_hash.into(),
            now,
            false,
        )
    }

    /// Announces that we are a peer for `info_hash` on `port` (`None`: BEP 5 `implied_port`,
    /// the UDP source port) to the closest nodes; finds peers on the way. Reported as
    /// `Outcome::Stored` once `Config::announce_quorum` of the `k` closest confirmed.
    pub fn start_announce(
        &mut self,
        info_hash: InfoHash,
        port: Option<u16>,
        seed: bool,
        now: Instant,
    ) -> Result<CommandId, StartError> {
        self.start_lookup(Kind::Announce { port, seed }, info_hash.into(), now, false)
    }

    /// Fetches a BEP 44 item.
    pub fn start_get_item(
        &mut self,
        target: ItemTarget,
        now: Instant,
    ) -> Result<CommandId, StartError> {
        let t = target.target();
        self.start_lookup(Kind::GetItem(target), t, now, false)
    }

    /// Stores a BEP 44 item on the closest nodes.
    pub fn start_put_item(
        &mut self,
        request: PutRequest,
        now: Instant,
    ) -> Result<CommandId, StartError> {
        let (value, salt) = match &request {
            PutRequest::Immutable { value } => (value, None),
            PutRequest::Mutable { value, salt, .. } => (value, Some(salt)),
        };
        let raw = RawValue::new(value)
            .map_err(|_| StartError::InvalidItem("the value is not one bencoded value"))?;
        if value.len() > bep44::MAX_VALUE_LEN {
            return Err(StartError::InvalidItem(
                "the value is over 1000 bytes (BEP 44)",
            ));
        }
        if salt.is_some_and(|s| s.len() > bep44::MAX_SALT_LEN) {
            return Err(StartError::InvalidItem(
                "the salt is over 64 bytes (BEP 44)",
            ));
        }
        let target = match &request {
            PutRequest::Immutable { .. } => bep44::immutable_target(&raw),
            PutRequest::Mutable { keypair, salt, .. } => {
                bep44::mutable_target(&keypair.public_key(), Some(salt))
            }
        };
        self.start_lookup(Kind::PutItem(request), target, now, false)
    }

    /// Collects BEP 51 info-hash samples from the nodes around `target`.
    pub fn start_sample_infohashes(
        &mut self,
        target: NodeId,
        now: Instant,
    ) -> Result<CommandId, StartError> {
        self.start_lookup(Kind::Samples, target, now, false)
    }

    /// Pings `addr`; finishes with `Outcome::Pong` or `Failed(NoResponse)`.
    pub fn start_ping(&mut self, addr: SocketAddr, now: Instant) -> CommandId {
        let id = self.next_command_id();
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        if !self.send_ping(now, addr, None, Some(id)) {
            self.push_event(Event::CommandFinished {
                id,
                outcome: Outcome::Failed(CommandError::NoResponse),
                stats: LookupStats::default(),
            });
        }
        id
    }

    /// Stops a command: it finishes with `Failed(Cancelled)`; late answers are ignored.
    pub fn cancel(&mut self, id: CommandId, now: Instant) {
        if let Some(l) = self.remove_lookup(id) {
            self.requests.remove_where(|r| {
                r.purpose.lookup() == Some(id) || r.purpose == Purpose::Ping { command: Some(id) }
            });
            let stats = LookupStats {
                duration: now.saturating_duration_since(l.started),
                ..l.stats
            };
            self.stats.lookups_finished += 1;
            self.push_event(Event::CommandFinished {
                id,
                outcome: Outcome::Failed(CommandError::Cancelled),
                stats,
            });
        }
    }

    /// Whether a lookup of `kind` starting now is patient (see
    /// [`Config::lookup_patient_attempts`] and [`Config::lookup_vouched_wait`]): refresh
    /// lookups always, so that the count goes on; others while at least one in three late
    /// candidates answered.
    fn patient(&self, kind: &Kind) -> bool {
        matches!(kind, Kind::Refresh) || self.late_answer_share >= PATIENT_SHARE
    }

    /// A search ended: counts which of the late candidates answered — those asked past
    /// `lookup_attempts` and those waited for (`lookup_vouched_wait`).
    fn count_late_answers(&mut self, id: CommandId) {
        let base = self.config.lookup_attempts.max(1);
        let Some(l) = self.lookups.get(&id).filter(|l| l.patient) else {
            return;
        };
        let mut share = self.late_answer_share;
        for c in l.legs.iter().flat_map(Leg::candidates) {
            if c.attempts > c.allowed(base) || c.waited {
                let answered = c.state == crate::lookup::State::Responded;
                if answered {
                    self.stats.late_answers += 1;
                } else {
                    self.stats.late_silences += 1;
                }
                // A plain mean of the outcomes so far and the prior of one in two, until
                // there are enough for the weighted one: a new node learns from its first.
                let weight = if self.late_outcomes < LATE_ANSWER_MEAN_OF {
                    self.late_outcomes += 1;
                    1.0 / f32::from(self.late_outcomes + 1)
                } else {
                    LATE_ANSWER_WEIGHT
                };
                share += (f32::from(u8::from(answered)) - share) * weight;
            }
        }
        self.late_answer_share = share;
    }

    fn next_command_id(&mut self) -> CommandId {
        let id = CommandId(self.next_command);
        self.next_command += 1;
        id
    }

    pub(crate) fn start_lookup(
        &mut self,
        kind: Kind,
        target: NodeId,
        now: Instant,
        internal: bool,
    ) -> Result<CommandId, StartError> {
        if self.lookups.len() >= self.config.lookups_max {
            return Err(StartError::TooManyLookups(self.config.lookups_max));
        }
        let id = self.next_command_id();
        let legs = self.first_legs(&kind, target);
        if let Some(t) = Some(target).filter(|_| matches!(kind, Kind::Refresh)) {
            self.table4.mark_refreshed(&t, now);
            self.table6.mark_refreshed(&t, now);
        }
        let patient = self.patient(&kind);
        let base = self.config.lookup_attempts.max(1);
        let attempts = if patient {
            self.config.lookup_patient_attempts.max(base)
        } else {
            base
        };
        self.lookups.insert(
            id,
            Lookup {
                kind,
                target,
                legs,
                seeds_pending: 0,
                seed_retries: 0,
                started: now,
                deadline: now + self.config.lookup_timeout,
                stats: LookupStats::default(),
                phase: Phase::Search,
                peers: Vec::new(),
                peers_seen: BTreeSet::new(),
                item: None,
                seen_seq: None,
                samples: BTreeSet::new(),
                scrape: None,
                put_seq: None,
                internal,
                failure: None,
                stores: Stores::default(),
                attempts,
                patient,
            },
        );
        self.stats.lookups_started += 1;
        tracing::debug!(id = id.0, %target, internal, "lookup started");
        if !matches!(
            self.lookups.get(&id).map(|l| &l.kind),
            Some(Kind::Bootstrap)
        ) {
            self.drive(id, now);
        }
        Ok(id)
    }
}

impl Node {
    /// A lookup's legs as it starts: for each address family whose table has contacts (or
    /// every family, for a bootstrap), the contacts closest to `target`.
    fn first_legs(&self, kind: &Kind, target: NodeId) -> Vec<Leg> {
        let mut legs = Vec::with_capacity(2);
        let mut closest = Vec::with_capacity(self.config.lookup_candidates_max);
        for family in [Family::V4, Family::V6] {
            let table = self.routing_table(family);
            if table.is_empty() && !matches!(kind, Kind::Bootstrap) {
                continue;
            }
            let mut leg = Leg::new(family, target, self.config.lookup_candidates_max);
            closest.clear();
            table.closest(
                &target,
                self.config.lookup_candidates_max.min(32),
                &mut closest,
            );
            for n in &closest {
                leg.add(*n, 1, table_hint(table, n.addr));
            }
            legs.push(leg);
        }
        legs
    }

    /// A bootstrap is still searching.
    fn bootstrap_running(&self) -> bool {
        self.lookups
            .values()
            .any(|l| matches!(l.kind, Kind::Bootstrap) && matches!(l.phase, Phase::Search))
    }

    /// Starts the lookups that waited for contacts, now that the routing tables have some or
    /// the bootstrap ended (a lookup that still has none then fails as it would have at its
    /// start). Its latency counts from when it was asked for.
    fn seed_waiting(&mut self, now: Instant) {
        self.awaiting_contacts = false;
        let waiting: Vec<CommandId> = self
            .lookups
            .iter()
            .filter(|(_, l)| {
                l.legs.is_empty()
                    && !matches!(l.kind, Kind::Bootstrap)
                    && matches!(l.phase, Phase::Search)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            let Some((kind, target)) = self.lookups.get(&id).map(|l| (l.kind.clone(), l.target))
            else {
                continue;
            };
            let legs = self.first_legs(&kind, target);
            if let Some(l) = self.lookups.get_mut(&id) {
                l.legs = legs;
            }
            self.drive(id, now);
        }
    }
}

/// The index of `family` in per-family arrays.
pub(crate) fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// What `table` knows of the contact at `addr` (nothing if it is not a member).
fn table_hint(table: &RoutingTable, addr: SocketAddr) -> Hint {
    table.get(addr).map_or(Hint::default(), |e| Hint {
        rtt: e.rtt(),
        failures: e.failures(),
    })
}

/// The query a lookup sends to search.
fn search_query(l: &Lookup) -> QueryKind<'static> {
    let want = Want::UNSPECIFIED;
    {
        match &l.kind {
            Kind::FindNode | Kind::Bootstrap | Kind::Refresh => QueryKind::FindNode {
                target: l.target,
                want,
            },
            Kind::GetPeers { no_seed, scrape } => QueryKind::GetPeers {
                info_hash: l.target.into(),
                want,
                no_seed: *no_seed,
                scrape: *scrape,
            },
            Kind::Announce { .. } => QueryKind::GetPeers {
                info_hash: l.target.into(),
                want,
                no_seed: false,
                scrape: false,
            },
            Kind::GetItem(ItemTarget::Mutable { min_seq, .. }) => QueryKind::Get {
                target: l.target,
                seq: *min_seq,
                want,
            },
            Kind::GetItem(_) | Kind::PutItem(_) => QueryKind::Get {
                target: l.target,
                seq: None,
                want,
            },
            Kind::Samples => QueryKind::SampleInfohashes {
                target: l.target,
                want,
            },
        }
    }
}

impl Node {
    /// Sends what a lookup may send now, moves it to its store phase, or finishes it.
    pub(crate) fn drive(&mut self, id: CommandId, now: Instant) {
        let alpha = self.config.lookup_parallelism.max(1);
        let k = self.config.lookup_closest.max(1);
        let burst_after = self.config.lookup_burst_after;
        let unknown = self.soft_timeout(None);
        // Ranks a contact of unknown RTT among known ones (a user's lookup only): the node's
        // smoothed RTT.
        let rtt_choice = self
            .config
            .lookup_rtt_choice
            .then(|| self.rto.srtt.unwrap_or(unknown));
        loop {
            let Some(l) = self.lookups.get_mut(&id) else {
                return;
            };
            if !matches!(l.phase, Phase::Search) {
                break;
            }
            // Nobody waits for an internal lookup (joining, refresh): α is enough.
            let burst_after = if l.internal { 0 } else { burst_after };
            let mut next = None;
            let by_rtt = rtt_choice.filter(|_| !l.internal);
            let (attempts, patient) = (l.attempts, l.patient);
            for (i, leg) in l.legs.iter_mut().enumerate() {
                if let Some(c) = leg.next_to_query(alpha, k, attempts, burst_after, by_rtt) {
                    let wait_longer =
                        patient && c.vouched && !c.disowned && c.attempts >= c.allowed(attempts);
                    next = Some((i, c.node, c.rtt, wait_longer, c.attempts == 1));
                    break;
                }
            }
            let Some((leg, node, rtt, wait_longer, first)) = next else {
                break;
            };
            // A request of the burst goes out a second time soon after, against loss (not
            // for internal lookups: they have no burst).
            let resend = self.config.lookup_resend_after;
            let copy = first
                && !resend.is_zero()
                && l.legs
                    .get(leg)
                    .is_some_and(|g| g.in_burst(k, attempts, burst_after));
            let query = search_query(l);
            let mut soft_after = self.soft_timeout(rtt);
            if wait_longer {
                soft_after = soft_after.max(self.config.lookup_vouched_wait);
            }
            let copy = copy && soft_after > resend;
            if (wait_longer || copy)
                && let Some(c) = self
                    .lookups
                    .get_mut(&id)
                    .and_then(|l| l.legs.get_mut(leg))
                    .and_then(|g| g.get_mut(&node.addr))
            {
                c.waited |= wait_longer;
                c.copied |= copy;
            }
            if copy {
                // Its soft timeout is the copy's time; the copy then has the usual one.
                soft_after = resend;
            }
            let purpose = Purpose::Search {
                lookup: id,
                leg: leg as u8,
            };
            if self.send_query(
                now,
                node.addr,
                Some(node.id),
                purpose,
                query,
                Some(soft_after),
            ) {
                if let Some(l) = self.lookups.get_mut(&id) {
                    l.stats.messages_sent += 1;
                }
            } else {
                // Not sent (outgoing budget or queue full): ask it again at the wake-up.
                if let Some(l) = self.lookups.get_mut(&id)
                    && let Some(leg) = l.legs.get_mut(leg)
                {
                    leg.unsend(&node.addr);
                }
                break;
            }
        }
        let Some(l) = self.lookups.get(&id) else {
            return;
        };
        if matches!((&l.kind, &l.phase), (Kind::Announce { .. }, Phase::Search))
            && self.config.announce_quorum < k
            && l.legs.iter().any(|leg| leg.converged)
        {
            self.store_early(id, now);
        }
        let Some(l) = self.lookups.get(&id) else {
            return;
        };
        match &l.phase {
            Phase::Search => {
                let done =
                    l.seeds_pending == 0 && l.legs.iter().all(|leg| leg.is_done(k, l.attempts));
                let no_contacts = l.legs.is_empty() && !matches!(l.kind, Kind::Bootstrap);
                if done && no_contacts && self.bootstrap_running() {
                    // Started before the node knew anyone (a command right after start):
                    // it waits for the bootstrap's first answer rather than failing.
                    self.awaiting_contacts = true;
                } else if done {
                    self.on_search_done(id, now);
                }
            }
            Phase::Store { .. } => {
                let targets = &l.stores.targets;
                if targets.iter().all(|t| t.state != StoreState::Waiting) {
                    self.finish(id, now);
                    return;
                }
                let closest = || targets.iter().filter(|t| t.closest);
                let quorum = match l.kind {
                    Kind::Announce { .. } => self.config.announce_quorum.max(1),
                    _ => usize::MAX,
                };
                let decided = closest().all(|t| t.state != StoreState::Waiting)
                    || closest().filter(|t| t.state == StoreState::Stored).count() >= quorum;
                if decided && !l.stores.reported {
                    self.report_stored(id, now);
                }
            }
        }
    }

    /// An announce whose search has converged (a leg's closest nodes answered without
    /// naming any closer one) stores at each of the `k` closest live candidates that
    /// answered with a token, as they answer: by the time the search ends, the fast ones
    /// have acknowledged, and `announce_quorum` of them can be reported without a round
    /// trip to the slowest (see `Config::announce_quorum`). A node the search then passes
    /// by keeps the peer as well: one announce_peer more.
    fn store_early(&mut self, id: CommandId, now: Instant) {
        let k = self.config.lookup_closest.max(1);
        let Some(l) = self.lookups.get_mut(&id) else {
            return;
        };
        let first = l.stores.targets.len();
        for leg in l.legs.iter().filter(|leg| leg.converged) {
            for c in leg.closest_live_responded(k, l.attempts) {
                let Some(token) = c.token.as_deref() else {
                    continue;
                };
                if !l.stores.targets.iter().any(|t| t.node.addr == c.node.addr) {
                    let t = StoreTarget::new(c.node, *token, c.rtt, false);
                    l.stores.targets.push(t);
                }
            }
        }
        for i in first..l.stores.targets.len() {
            self.send_store(id, i, now);
        }
    }

    /// Reports a store phase decided (see [`Node::drive`]) while some of its queries still
    /// wait: they run on, to store and be counted, but the caller is told now.
    fn report_stored(&mut self, id: CommandId, now: Instant) {
        let Some(l) = self.lookups.get_mut(&id) else {
            return;
        };
        // Nothing stored yet: `finish` reports it once every query ended.
        if l.internal || l.stores.stored_at.is_empty() {
            return;
        }
        l.stores.reported = true;
        let stats = LookupStats {
            duration: now.saturating_duration_since(l.started),
            ..l.stats
        };
        let outcome = Outcome::Stored {
            stored_at: l.stores.stored_at.clone(),
            seq: l.put_seq,
        };
        self.push_event(Event::CommandFinished { id, outcome, stats });
    }

    /// How long a request to a contact may go unanswered before it counts as slow (and is
    /// sent again): twice the contact's RTT plus 50 ms when known (never under
    /// [`MIN_SOFT_TIMEOUT`]), else the node's retransmission timeout (RFC 6298 over every
    /// answer it had; 1 s, RFC 6298's initial value, before the first answer), at least
    /// `lookup_unknown_wait_min`. Either is
    /// capped by `lookup_soft_timeout`, but never below twice the node's own smoothed RTT: on
    /// a slow link (a satellite, a loaded uplink) every answer takes longer, and a cap under
    /// that would give up on live contacts.
    fn soft_timeout(&self, rtt: Option<Duration>) -> Duration {
        let cap = match self.rto.srtt {
            Some(s) => self.config.lookup_soft_timeout.max(s * 2),
            None => self.config.lookup_soft_timeout.max(INITIAL_RTO),
        };
        match rtt {
            Some(r) => cap.min((r * 2 + Duration::from_millis(50)).max(MIN_SOFT_TIMEOUT)),
            None => self
                .rto
                .timeout()
                .unwrap_or(INITIAL_RTO)
                .max(self.config.lookup_unknown_wait_min)
                .min(cap),
        }
    }

    /// Sends a query, recording it as in flight. False if it could not be sent.
    fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        node_id: Option<NodeId>,
        purpose: Purpose,
        kind: QueryKind<'_>,
        soft: Option<Duration>,
    ) -> bool {
        let max = self
            .config
            .requests_in_flight_max
            .min(crate::rpc::MAX_IN_FLIGHT);
        if self.requests.len() >= max || !self.budget.try_take(now) {
            self.stats.drops.outgoing_budget += 1;
            self.retry_at(self.budget.next_available(now));
            return false;
        }
        let req = Request {
            to,
            node_id,
            sent: now,
            purpose,
        };
        let Some(tid) = self.requests.insert(
            req,
            soft.map(|s| now + s),
            now + self.config.request_timeout,
        ) else {
            // Unreachable below `max`; counted as the budget would be.
            self.stats.drops.outgoing_budget += 1;
            return false;
        };
        let version = self.config.version;
        let msg = Message {
            transaction_id: tid,
            version: version.as_ref().map(|v| &v[..]),
            requester_ip: None,
            read_only: self.acts_read_only_in(Family::of(&to)),
            body: Body::Query(Query { id: self.id, kind }),
        };
        if !self.send(to, &msg) {
            self.requests.take(&tid, to);
            self.retry_at(now + Duration::from_millis(10));
            return false;
        }
        true
    }

    /// Drives every lookup again at `at` (after the budget or the queue stopped one).
    fn retry_at(&mut self, at: Instant) {
        self.budget_wakeup = Some(self.budget_wakeup.map_or(at, |w| w.min(at)));
    }

    /// Pings a node for the routing table: one that queried us (its answer can make it a
    /// member), a stale member, or one just handed out in an answer.
    pub(crate) fn ping_node(&mut self, now: Instant, node: NodeInfo) {
        self.send_ping(now, node.addr, Some(node.id), None);
    }

    fn send_ping(
        &mut self,
        now: Instant,
        to: SocketAddr,
        node_id: Option<NodeId>,
        command: Option<CommandId>,
    ) -> bool {
        let soft = None;
        self.send_query(
            now,
            to,
            node_id,
            Purpose::Ping { command },
            QueryKind::Ping,
            soft,
        )
    }

    /// A search response: learn nodes, collect peers / items / samples.
    fn on_search_response(
        &mut self,
        id: CommandId,
        from: NodeInfo,
        r: &Response<'_>,
        hop: u32,
        now: Instant,
    ) {
        let peers_max = self.config.lookup_peers_max;
        let mut events = Vec::new();
        let acceptable: Vec<NodeInfo> = r
            .nodes
            .iter()
            .flat_map(|n| n.iter())
            .chain(r.nodes6.iter().flat_map(|n| n.iter()))
            .filter(|n| n.id != self.id && n.addr.port() != 0 && self.acceptable(n))
            .collect();
        // A contact sharing this many leading bits with the referrer is in the referrer's
        // near buckets (if its table is as deep as ours), which it pings once silent.
        // Our table's depth, which the referrer's is taken to be; only the vouched wait uses it.
        let depth = (!self.config.lookup_vouched_wait.is_zero())
            .then(|| self.routing_table(Family::of(&from.addr)).bucket_count());
        let near_bits = depth.map(|d| d.saturating_sub(self.config.routing.near_buckets).max(1));
        // A contact sharing this many with the referrer falls in the referrer's deepest
        // bucket, which is never full (it would have split): the referrer holds every such
        // node it has heard from and not seen fail, so its answer passing one over says it
        // does not hold it as good.
        let deepest_bits = depth.map(|d| u32::try_from(d).unwrap_or(u32::MAX).max(1));
        let k = self.config.lookup_closest.max(1);
        let Some(l) = self.lookups.get_mut(&id) else {
            return;
        };
        l.stats.rounds = l.stats.rounds.max(hop);
        let announce = matches!(l.kind, Kind::Announce { .. });
        for leg in &mut l.legs {
            if announce {
                leg.note_answer(&from.addr, &acceptable, k, l.attempts);
            }
            if let Some(bits) = deepest_bits {
                leg.note_passed_over(&from, &acceptable, k, bits);
            }
            for n in &acceptable {
                let vouched = near_bits.is_some_and(|bits| {
                    usize::try_from(n.id.distance(&from.id).leading_zeros())
                        .is_ok_and(|shared| shared >= bits)
                });
                leg.add_vouched(*n, hop + 1, Hint::default(), vouched);
            }
        }
        match &l.kind {
            Kind::GetPeers { .. } | Kind::Announce { .. } => {
                let mut fresh = Vec::new();
                for p in r.values.iter().flat_map(|v| v.iter()) {
                    if p.port() != 0 && l.peers_seen.len() < peers_max && l.peers_seen.insert(p) {
                        fresh.push(p);
                        l.peers.push(p);
                    }
                }
                if !fresh.is_empty() && !l.internal {
                    events.push(Event::PeersFound { id, peers: fresh });
                }
                if let (Kind::GetPeers { scrape: true, .. }, Some(seeds), Some(peers)) =
                    (&l.kind, r.seeds_bloom, r.peers_bloom)
                {
                    let s = l.scrape.get_or_insert_with(Default::default);
                    s.seeds.union(&BloomFilter::from_bytes(seeds));
                    s.peers.union(&BloomFilter::from_bytes(peers));
                    s.responses += 1;
                }
            }
            Kind::GetItem(_) | Kind::PutItem(_) if r.value.is_some() => {
                let asked = match &l.kind {
                    Kind::GetItem(t) => Some(t.clone()),
                    Kind::PutItem(PutRequest::Mutable { keypair, salt, .. }) => {
                        Some(ItemTarget::Mutable {
                            key: keypair.public_key(),
                            salt: salt.clone(),
                            min_seq: None,
                        })
                    }
                    _ => None,
                };
                if let Some(item) = verified_item(l.target, asked.as_ref(), r) {
                    if let StoredItem::Mutable { seq, .. } = &item {
                        l.seen_seq = Some(l.seen_seq.map_or(*seq, |s| s.max(*seq)));
                    }
                    let newer = match (&l.item, &item) {
                        (None, _) => true,
                        (
                            Some(StoredItem::Mutable { seq: a, .. }),
                            StoredItem::Mutable { seq: b, .. },
                        ) => b > a,
                        _ => false,
                    };
                    if newer {
                        if matches!(l.kind, Kind::GetItem(_)) {
                            events.push(Event::ItemFound {
                                id,
                                item: item.clone(),
                                from,
                            });
                        }
                        l.item = Some(item);
                    }
                }
            }
            Kind::Samples => {
                if let Some(s) = &r.samples {
                    let samples: Vec<InfoHash> = s.iter().collect();
                    l.samples.extend(samples.iter().copied());
                    events.push(Event::SamplesReceived {
                        id,
                        from,
                        samples,
                        num: r.num,
                        interval: r.interval,
                    });
                }
            }
            _ => {}
        }
        // An immutable item is final: no need to search further.
        let immutable_found = matches!(
            (&l.kind, &l.item),
            (
                Kind::GetItem(ItemTarget::Immutable(_)),
                Some(StoredItem::Immutable { .. })
            )
        );
        for e in events {
            self.push_event(e);
        }
        if immutable_found {
            self.finish(id, now);
        } else {
            self.drive(id, now);
        }
    }

    /// The search is over: store (announce / put) or finish.
    fn on_search_done(&mut self, id: CommandId, now: Instant) {
        self.count_late_answers(id);
        let k = self.config.lookup_closest;
        let Some(l) = self.lookups.get_mut(&id) else {
            return;
        };
        let targets: Vec<StoreTarget> = l
            .legs
            .iter()
            .flat_map(|leg| {
                leg.closest_responded(k).filter_map(|c| {
                    c.token
                        .as_deref()
                        .map(|&token| StoreTarget::new(c.node, token, c.rtt, true))
                })
            })
            .collect();
        let seen_seq = l.seen_seq;
        let signed = match &l.kind {
            Kind::Announce { .. } => None,
            Kind::PutItem(req) => {
                // The search saw the highest seq the network holds. A put that every holder
                // would refuse (BEP 44: cas first, then seq) fails here: sent anyway, it is
                // stored by the few close nodes that lack the item (the node that put it
                // never stores on itself), the network diverges and the caller is told
                // `Stored`.
                if let (
                    PutRequest::Mutable {
                        seq: Some(seq),
                        cas,
                        ..
                    },
                    Some(current),
                ) = (req, seen_seq)
                {
                    l.failure = if cas.is_some_and(|c| c != current) {
                        Some(CommandError::CasMismatch {
                            current: Some(current),
                        })
                    } else if *seq < current {
                        Some(CommandError::SeqTooLow { seq: *seq, current })
                    } else {
                        None
                    };
                    if l.failure.is_some() {
                        self.finish(id, now);
                        return;
                    }
                }
                let Ok(raw) = RawValue::new(req.value()) else {
                    self.finish(id, now);
                    return;
                };
                match req {
                    PutRequest::Immutable { .. } => None,
                    PutRequest::Mutable {
                        keypair,
                        salt,
                        seq,
                        cas,
                        ..
                    } => {
                        let seq =
                            seq.unwrap_or_else(|| seen_seq.map_or(1, |s| s.saturating_add(1)));
                        l.put_seq = Some(seq);
                        Some(Box::new(SignedPut {
                            key: keypair.public_key(),
                            salt: salt.clone(),
                            seq,
                            signature: keypair.sign(Some(salt), seq, &raw),
                            cas: *cas,
                        }))
                    }
                }
            }
            _ => {
                self.finish(id, now);
                return;
            }
        };
        // An announce may have stored at some of them already (`store_early`).
        let first = l.stores.targets.len();
        for t in targets {
            match l
                .stores
                .targets
                .iter_mut()
                .find(|e| e.node.addr == t.node.addr)
            {
                Some(early) => early.closest = true,
                None => l.stores.targets.push(t),
            }
        }
        let count = l.stores.targets.len();
        l.phase = Phase::Store { signed };
        for i in first..count {
            self.send_store(id, i, now);
        }
        self.drive(id, now);
    }

    /// Sends (again) the store query of lookup `id` to its store target `index`. A target
    /// whose first query cannot be sent (BEP 42 refuses it, or the outgoing budget is spent)
    /// has failed; one whose retransmission cannot be sent is slow (its first query may
    /// still be answered, but it no longer holds the store up).
    fn send_store(&mut self, id: CommandId, index: usize, now: Instant) {
        let Some(l) = self.lookups.get(&id) else {
            return;
        };
        let signed = match &l.phase {
            Phase::Store { signed } => signed,
            Phase::Search => &None,
        };
        let Some(t) = l.stores.targets.get(index) else {
            return;
        };
        let (node, token, rtt) = (t.node, t.token, t.rtt);
        let (kind, signed, info_hash) = (l.kind.clone(), signed.clone(), InfoHash::from(l.target));
        let query = match &kind {
            Kind::Announce { port, seed } => Some(QueryKind::AnnouncePeer {
                info_hash,
                port: port.unwrap_or(0),
                implied_port: port.is_none(),
                token: token.as_token_ref(),
                seed: *seed,
            }),
            Kind::PutItem(req) => RawValue::new(req.value()).ok().map(|value| {
                QueryKind::Put(PutQuery {
                    token: token.as_token_ref(),
                    value,
                    mutable: signed.as_deref().map(|s| MutablePut {
                        key: &s.key.0,
                        signature: &s.signature.0,
                        seq: s.seq,
                        salt: (!s.salt.is_empty()).then_some(s.salt.as_slice()),
                        cas: s.cas,
                    }),
                })
            }),
            _ => None,
        };
        let soft = self.soft_timeout(rtt);
        let sent = match (query, u16::try_from(index)) {
            (Some(q), Ok(target)) if self.acceptable(&node) => self.send_query(
                now,
                node.addr,
                Some(node.id),
                Purpose::Store { lookup: id, target },
                q,
                Some(soft),
            ),
            _ => false,
        };
        let Some(l) = self.lookups.get_mut(&id) else {
            return;
        };
        l.stats.messages_sent += u32::from(sent);
        let Some(t) = l.store_target_mut(index) else {
            return;
        };
        if sent {
            t.sent += 1;
            t.in_flight += 1;
        } else if t.in_flight == 0 {
            t.state = StoreState::Failed;
        } else {
            // The retransmission of a slow query: nothing more will be sent.
            t.state = StoreState::Slow;
        }
    }

    /// A store query passed its soft timeout: send it again while attempts are left; after
    /// the last one the target no longer holds the store phase up.
    fn on_store_slow(&mut self, id: CommandId, target: u16, now: Instant) {
        let attempts = self.config.lookup_attempts.max(1);
        let Some(t) = self
            .lookups
            .get_mut(&id)
            .and_then(|l| l.store_target_mut(usize::from(target)))
        else {
            return;
        };
        if t.state != StoreState::Waiting {
            return;
        }
        if t.sent < attempts {
            self.send_store(id, usize::from(target), now);
        } else {
            t.state = StoreState::Slow;
        }
        self.drive(id, now);
    }

    /// Ends a lookup and reports its outcome.
    pub(crate) fn finish(&mut self, id: CommandId, now: Instant) {
        let Some(l) = self.remove_lookup(id) else {
            return;
        };
        self.requests
            .remove_where(|r| r.purpose.lookup() == Some(id));
        self.stats.lookups_finished += 1;
        let k = self.config.lookup_closest;
        let stats = LookupStats {
            duration: now.saturating_duration_since(l.started),
            ..l.stats
        };
        tracing::debug!(id = id.0, ?stats, "lookup finished");
        if matches!(l.kind, Kind::Bootstrap) && l.stats.responses > 0 {
            self.refresh_buckets(now);
        }
        if matches!(l.kind, Kind::Bootstrap) && self.awaiting_contacts {
            self.seed_waiting(now);
        }
        if l.internal || l.stores.reported {
            return;
        }
        if let Some(failure) = l.failure {
            let outcome = Outcome::Failed(failure);
            self.push_event(Event::CommandFinished { id, outcome, stats });
            return;
        }
        let mut closest: Vec<(xorro_wire::Distance, NodeInfo)> = l
            .legs
            .iter()
            .flat_map(|leg| leg.closest_responded(k).map(|c| (c.distance, c.node)))
            .collect();
        closest.sort();
        let closest: Vec<NodeInfo> = closest.into_iter().map(|(_, n)| n).collect();
        let answered = l.stats.responses > 0;
        let Stores {
            stored_at, errors, ..
        } = l.stores;
        let outcome = match (l.kind, l.phase) {
            (Kind::GetPeers { .. }, _) if answered => Outcome::Peers {
                peers: l.peers,
                closest,
                scrape: l.scrape,
            },
            (Kind::GetItem(_), _) if answered => Outcome::Item(l.item),
            (Kind::Samples, _) if answered => Outcome::Samples(l.samples.into_iter().collect()),
            (Kind::Announce { .. } | Kind::PutItem(_), Phase::Store { .. })
                if !stored_at.is_empty() =>
            {
                Outcome::Stored {
                    stored_at,
                    seq: l.put_seq,
                }
            }
            (Kind::PutItem(PutRequest::Mutable { .. }), Phase::Store { .. })
                if errors.contains(&xorro_wire::ErrorCode::CAS_MISMATCH) =>
            {
                Outcome::Failed(CommandError::CasMismatch {
                    current: l.seen_seq,
                })
            }
            (Kind::PutItem(PutRequest::Mutable { .. }), Phase::Store { .. })
                if errors.contains(&xorro_wire::ErrorCode::SEQ_TOO_LOW) =>
            {
                Outcome::Failed(CommandError::SeqTooLow {
                    seq: l.put_seq.unwrap_or_default(),
                    current: l.seen_seq.unwrap_or_default(),
                })
            }
            (Kind::FindNode, _) if answered => Outcome::Closest(closest),
            // The first node of a network has nobody to ask: that is not a failure.
            (Kind::Bootstrap, _) if answered || l.stats.messages_sent == 0 => {
                Outcome::Closest(closest)
            }
            _ => Outcome::Failed(CommandError::NoResponse),
        };
        self.push_event(Event::CommandFinished { id, outcome, stats });
    }

    // ----- persistence -----

    /// Everything needed to restart warm.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let mut contacts = self.table4.snapshot(now);
        contacts.extend(self.table6.snapshot(now));
        Snapshot {
            id: self.id,
            token_secrets: self.tokens.secrets(),
            contacts,
            peers: self
                .peers
                .iter()
                .map(|p| (p.info_hash, p.addr, p.seed, p.remaining(now)))
                .collect(),
            items: self
                .items
                .iter()
                .map(|i| (i.target, i.item.clone(), i.remaining(now)))
                .collect(),
        }
    }

    /// A node restored from a snapshot: the saved id, secrets, contacts, peers and items with
    /// the time they had left. The contacts' `answered_ago` are read as of `now` (a caller
    /// restoring a snapshot taken earlier adds the time in between, as
    /// [`Snapshot::aged`] does): those that answered within
    /// [`node_good_interval`](crate::routing::RoutingConfig::node_good_interval) come back
    /// good, the others questionable, for [`Node::ping_contacts`] or maintenance to ping.
    pub fn restore(mut config: Config, snapshot: Snapshot, now: Instant) -> Self {
        config.id = Some(snapshot.id);
        let mut node = Node::new(config, now);
        node.tokens = Tokens::restore(node.config.tokens, snapshot.token_secrets, now);
        let (v4, v6): (Vec<SavedContact>, Vec<SavedContact>) = snapshot
            .contacts
            .into_iter()
            .partition(|c| Family::of(&c.node.addr) == Family::V4);
        node.table4.restore(v4, now);
        node.table6.restore(v6, now);
        for (info_hash, addr, seed, left) in snapshot.peers {
            let record = crate::store::PeerRecord {
                info_hash,
                addr,
                seed,
                expires: now + left,
            };
            let _ = node.peers.restore(record, now);
        }
        for (target, item, left) in snapshot.items {
            let _ = node.items.restore(target, item, now + left, now);
        }
        node
    }

    /// Pings every contact that is not good (after [`Node::restore`]: the saved contacts
    /// that had not answered within
    /// [`node_good_interval`](crate::routing::RoutingConfig::node_good_interval)); those
    /// that answer become good. Returns how many were pinged.
    pub fn ping_contacts(&mut self, now: Instant) -> usize {
        let contacts: Vec<NodeInfo> = [&self.table4, &self.table6]
            .into_iter()
            .flat_map(|t| {
                t.iter()
                    .filter(move |e| t.state(e, now) != NodeState::Good)
                    .map(|e| e.node())
            })
            .collect();
        contacts
            .iter()
            .filter(|n| self.send_ping(now, n.addr, Some(n.id), None))
            .count()
    }
}

/// Checks a BEP 44 item in a `get` response against what was asked.
fn verified_item(
    target: NodeId,
    asked: Option<&ItemTarget>,
    r: &Response<'_>,
) -> Option<StoredItem> {
    let v = r.value?;
    match (r.key, r.signature, r.seq) {
        (Some(key), Some(signature), Some(seq)) => {
            let salt = match asked {
                Some(ItemTarget::Mutable { key: k, salt, .. }) if k.0 == *key => salt.clone(),
                Some(ItemTarget::Mutable { .. }) | Some(ItemTarget::Immutable(_)) => return None,
                None => Vec::new(),
            };
            let salt_opt = (!salt.is_empty()).then_some(salt.as_slice());
            (bep44::mutable_target(&key, salt_opt) == target
                && bep44::verify(&key, &signature, salt_opt, seq, &v))
            .then(|| StoredItem::Mutable {
                key: PublicKey(*key),
                salt,
                seq,
                signature: Signature(*signature),
                value: v.as_bytes().to_vec(),
            })
        }
        _ => (bep44::immutable_target(&v) == target).then(|| StoredItem::Immutable {
            value: v.as_bytes().to_vec(),
        }),
    }
}

/// A random id sharing exactly `depth` leading bits with `own` (so it falls in bucket `depth`).
fn random_id_at_depth(own: &NodeId, depth: usize, rng: &mut impl Rng) -> NodeId {
    let mut id: [u8; 20] = rng.r#gen();
    for bit in 0..=depth.min(159) {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        let own_bit = own.0[byte] & mask;
        // The first `depth` bits equal ours; bit `depth` differs.
        let want = if bit == depth {
            own_bit ^ mask
        } else {
            own_bit
        };
        id[byte] = (id[byte] & !mask) | want;
    }
    NodeId(id)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::K;

    #[test]
    fn random_id_at_depth_falls_in_its_bucket() {
        let mut rng = ChaCha12Rng::seed_from_u64(3);
        let own = NodeId(rng.r#gen());
        for depth in [0, 1, 7, 8, 9, 40, 159] {
            let id = random_id_at_depth(&own, depth, &mut rng);
            assert_eq!(own.distance(&id).leading_zeros() as usize, depth);
        }
    }

    /// Requests a lookup sends after the closest of its first α (4 here) answered: a user's
    /// lookup asks the rest of the k closest at once, an internal one (refresh) one more.
    fn sent_after_first_answer(internal: bool) -> usize {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let config = Config {
            id: Some(NodeId([0xff; 20])),
            lookup_parallelism: 4,
            ..Config::default()
        };
        let mut n = Node::new(config, now);
        let contact = |i: u8| {
            let mut id = [0u8; 20];
            id[0] = i;
            NodeInfo::new(NodeId(id), SocketAddr::from(([10, 0, 0, i], 1000)))
        };
        for i in 1..=12 {
            n.table4
                .on_response(contact(i), Some(Duration::from_millis(50)), now);
        }
        let kind = if internal {
            Kind::Refresh
        } else {
            Kind::FindNode
        };
        let _ = n.start_lookup(kind, NodeId::ZERO, now, internal);
        let mut buf = Vec::new();
        let mut first = Vec::new();
        while let Some(to) = n.poll_transmit(&mut buf) {
            first.push((to, buf.clone()));
        }
        assert_eq!(first.len(), 4, "α requests");
        let closest = contact(1);
        let Some((_, bytes)) = first.iter().find(|(to, _)| *to == closest.addr) else {
            panic!("the closest contact was not asked");
        };
        let tid = match xorro_wire::decode(bytes) {
            Ok(m) => m.transaction_id,
            Err(e) => panic!("undecodable request: {e}"),
        };
        let msg = Message {
            transaction_id: tid,
            version: None,
            requester_ip: None,
            read_only: false,
            body: Body::Response(Response::new(closest.id)),
        };
        let mut reply = Vec::new();
        assert!(encode_append(&msg, &mut reply).is_ok());
        n.handle_datagram(now + Duration::from_millis(40), closest.addr, &reply);
        std::iter::from_fn(|| n.poll_transmit(&mut buf)).count()
    }

    #[test]
    fn user_lookup_asks_the_rest_of_the_k_closest_at_once_internal_keeps_to_alpha() {
        // Contacts 5 to 8 of the 8 closest are still to ask.
        assert_eq!(sent_after_first_answer(false), 4);
        assert_eq!(sent_after_first_answer(true), 1);
    }

    #[test]
    fn rtt_estimator_follows_rfc_6298() {
        let mut e = RttEstimator::default();
        assert_eq!(e.timeout(), None);
        e.sample(Duration::from_millis(100));
        assert_eq!(e.timeout(), Some(Duration::from_millis(300)));
        for _ in 0..50 {
            e.sample(Duration::from_millis(100));
        }
        assert!(e.timeout().is_some_and(|t| t < Duration::from_millis(110)));
        assert_eq!(e.timeout().map(|t| t >= MIN_SOFT_TIMEOUT), Some(true));
    }

    /// A node with default settings but its own RNG seed (so that two test nodes differ).
    fn seeded(seed: u64, now: Instant) -> Node {
        Node::new(
            Config {
                rng_seed: seed,
                ..Config::default()
            },
            now,
        )
    }

    /// Delivers every datagram each node has queued to the other, until both are quiet.
    fn pump(a: &mut Node, a_addr: SocketAddr, b: &mut Node, b_addr: SocketAddr, now: Instant) {
        let mut buf = Vec::new();
        for _ in 0..100 {
            let mut moved = false;
            while let Some(to) = a.poll_transmit(&mut buf) {
                if to == b_addr {
                    b.handle_datagram(now, a_addr, &buf);
                    moved = true;
                }
            }
            while let Some(to) = b.poll_transmit(&mut buf) {
                if to == a_addr {
                    a.handle_datagram(now, b_addr, &buf);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// The outcome of command `id`, if it finished (other events are dropped).
    fn finished(n: &mut Node, id: CommandId) -> Option<Outcome> {
        std::iter::from_fn(|| n.poll_event()).find_map(|e| match e {
            Event::CommandFinished { id: i, outcome, .. } if i == id => Some(outcome),
            _ => None,
        })
    }

    #[test]
    fn a_lookup_started_while_bootstrapping_waits_for_contacts() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let seed_addr = SocketAddr::from(([10, 0, 0, 1], 6881));
        let joiner_addr = SocketAddr::from(([10, 0, 0, 2], 6881));
        let mut seed = seeded(1, now);
        let mut joiner = seeded(2, now);
        let target = NodeId([0x42; 20]);
        // Before any bootstrap, an empty node's lookup fails at once, as before.
        let early = joiner.start_find_node(target, now).expect("starts");
        assert!(matches!(
            finished(&mut joiner, early),
            Some(Outcome::Failed(_))
        ));
        joiner.start_bootstrap(&[seed_addr], now).expect("starts");
        let waiting = joiner.start_find_node(target, now).expect("starts");
        assert!(
            finished(&mut joiner, waiting).is_none(),
            "it waits for the bootstrap"
        );
        let later = now + Duration::from_millis(30);
        pump(&mut seed, seed_addr, &mut joiner, joiner_addr, later);
        match finished(&mut joiner, waiting) {
            Some(Outcome::Closest(nodes)) => {
                assert_eq!(
                    nodes.iter().map(|n| n.addr).collect::<Vec<_>>(),
                    [seed_addr]
                );
            }
            other => panic!("the waiting lookup asked the seed: {other:?}"),
        }
    }

    /// A node whose k contacts all lie in the far half of the id space (its own-id lookup
    /// went unanswered while its far-half lookup filled the table) looks up its id again at
    /// its maintenance tick, until it knows a node of its own half.
    #[test]
    fn a_node_that_knows_only_the_far_half_looks_for_its_neighbours() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let own = NodeId([0xff; 20]);
        let with_own_id = || {
            Node::new(
                Config {
                    id: Some(own),
                    ..Config::default()
                },
                now,
            )
        };
        let mut n = with_own_id();
        let contact = |first: u8, i: u8| {
            let mut id = [i; 20];
            id[0] = first;
            NodeInfo::new(NodeId(id), SocketAddr::from(([10, 0, first, i], 1000)))
        };
        let own_id_lookups = |n: &Node| {
            n.lookups
                .values()
                .filter(|l| matches!(l.kind, Kind::Refresh) && l.target == own)
                .count()
        };
        for i in 1..=8 {
            n.table4
                .on_response(contact(0x10, i), Some(Duration::from_millis(50)), now);
        }
        assert_eq!(n.routing_table(Family::V4).len(), 8, "k contacts");
        let tick = now + n.config.maintenance_interval;
        n.handle_timeout(tick);
        assert_eq!(own_id_lookups(&n), 1, "its own id looked up");
        // With a node of its own half it does not.
        let mut m = with_own_id();
        for i in 1..=7 {
            m.table4
                .on_response(contact(0x10, i), Some(Duration::from_millis(50)), now);
        }
        m.table4
            .on_response(contact(0x80, 1), Some(Duration::from_millis(50)), now);
        m.handle_timeout(tick);
        assert_eq!(own_id_lookups(&m), 0);
    }

    #[test]
    fn a_waiting_lookup_fails_when_the_bootstrap_finds_nobody() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let mut n = Node::new(Config::default(), now);
        n.start_bootstrap(&[SocketAddr::from(([10, 0, 0, 9], 6881))], now)
            .expect("starts");
        let waiting = n.start_find_node(NodeId([7; 20]), now).expect("starts");
        assert!(finished(&mut n, waiting).is_none());
        // The seed never answers: its requests time out, the bootstrap ends, and so does the
        // waiting lookup, with the failure it would have had at its start.
        let mut t = now;
        let mut buf = Vec::new();
        let mut outcome = None;
        for _ in 0..1000 {
            while n.poll_transmit(&mut buf).is_some() {}
            if let Some(o) = finished(&mut n, waiting) {
                outcome = Some(o);
                break;
            }
            let Some(next) = n.poll_timeout() else { break };
            t = next.max(t);
            n.handle_timeout(t);
        }
        assert!(
            matches!(outcome, Some(Outcome::Failed(_))),
            "{outcome:?} after {:?}",
            t - now
        );
        assert!(t - now < Duration::from_secs(30), "not the lookup timeout");
    }

    /// Runs `n`'s timers up to `until`, with the seed at `seed_addr` unreachable or (with
    /// `seed`) answering; returns the instants at which datagrams went to the seed.
    fn run_with_seed(
        n: &mut Node,
        n_addr: SocketAddr,
        mut seed: Option<&mut Node>,
        seed_addr: SocketAddr,
        from: Instant,
        until: Instant,
    ) -> Vec<Instant> {
        let mut t = from;
        let mut buf = Vec::new();
        let mut sent = Vec::new();
        while t < until {
            match seed.as_deref_mut() {
                Some(s) => {
                    if n.transmits.iter().any(|x| x.to == seed_addr) {
                        sent.push(t);
                    }
                    pump(s, seed_addr, n, n_addr, t);
                    s.handle_timeout(t);
                }
                None => {
                    while let Some(to) = n.poll_transmit(&mut buf) {
                        if to == seed_addr {
                            sent.push(t);
                        }
                    }
                }
            }
            while n.poll_event().is_some() {}
            let Some(next) = n.poll_timeout() else { break };
            t = next.max(t).min(until);
            n.handle_timeout(t);
        }
        sent
    }

    /// Runs `n`'s timers until find_node lookup `id` has finished its search. Its queries to
    /// `peer` at `peer_addr` reach it when `deliver` says so (given their number), the rest
    /// of `n`'s datagrams to it always; answers come straight back. Returns how many of the
    /// lookup's queries went to `peer_addr`.
    fn run_lookup(
        n: &mut Node,
        n_addr: SocketAddr,
        peer: &mut Node,
        peer_addr: SocketAddr,
        id: CommandId,
        mut deliver: impl FnMut(usize) -> bool,
    ) -> usize {
        let target = n.lookups[&id].target;
        let mut t = n.lookups[&id].started;
        let mut buf = Vec::new();
        let mut sent = 0;
        for _ in 0..1000 {
            while let Some(to) = n.poll_transmit(&mut buf) {
                if to == peer_addr {
                    let ours = matches!(
                        xorro_wire::decode(&buf).map(|m| m.body),
                        Ok(Body::Query(Query { kind: QueryKind::FindNode { target: x, .. }, .. }))
                            if x == target
                    );
                    if ours {
                        sent += 1;
                    }
                    if !ours || deliver(sent) {
                        peer.handle_datagram(t, n_addr, &buf);
                        while peer.poll_transmit(&mut buf).is_some_and(|to| to == n_addr) {
                            n.handle_datagram(t, peer_addr, &buf);
                        }
                    }
                }
            }
            if !n
                .lookups
                .get(&id)
                .is_some_and(|l| matches!(l.phase, Phase::Search))
            {
                break;
            }
            let Some(next) = n.poll_timeout() else { break };
            t = next.max(t);
            n.handle_timeout(t);
        }
        sent
    }

    #[test]
    fn lookups_stay_patient_while_late_candidates_answer() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let (a_addr, b_addr) = (
            SocketAddr::from(([10, 0, 0, 1], 6881)),
            SocketAddr::from(([10, 0, 0, 2], 6881)),
        );
        let mut a = Node::new(
            Config {
                rng_seed: 1,
                lookup_attempts: 2,
                lookup_patient_attempts: 3,
                ..Config::default()
            },
            now,
        );
        let mut b = seeded(2, now);
        a.start_bootstrap(&[b_addr], now).expect("starts");
        pump(&mut a, a_addr, &mut b, b_addr, now);
        while a.poll_event().is_some() {}
        assert_eq!(a.late_answer_share, 0.5, "a new node starts at one in two");
        let target = NodeId([0x42; 20]);

        // B is silent: a patient lookup asks it three times, and counts one silence. A new
        // node's share is the mean of its outcomes and the prior: it learns from its first.
        let t = now + Duration::from_secs(1);
        let id = a.start_find_node(target, t).expect("starts");
        assert_eq!((a.lookups[&id].attempts, a.lookups[&id].patient), (3, true));
        assert_eq!(run_lookup(&mut a, a_addr, &mut b, b_addr, id, |_| false), 3);
        assert_eq!((a.stats.late_answers, a.stats.late_silences), (0, 1));
        assert!((a.late_answer_share - 0.25).abs() < 1e-6);

        // Fewer than one in three late candidates answered: a user's lookup asks twice and
        // waits for nobody, and nothing asked late is counted.
        let t = now + Duration::from_secs(10);
        let id = a.start_find_node(target, t).expect("starts");
        assert_eq!(
            (a.lookups[&id].attempts, a.lookups[&id].patient),
            (2, false)
        );
        assert_eq!(run_lookup(&mut a, a_addr, &mut b, b_addr, id, |_| false), 2);
        assert_eq!((a.stats.late_answers, a.stats.late_silences), (0, 1));

        // A refresh still asks three times, so the count goes on: B answers the third
        // request only, a late answer, and user lookups are patient again.
        let t = now + Duration::from_secs(20);
        let refresh = a
            .start_lookup(Kind::Refresh, target, t, true)
            .expect("starts");
        assert_eq!(a.lookups[&refresh].attempts, 3);
        assert_eq!(
            run_lookup(&mut a, a_addr, &mut b, b_addr, refresh, |n| n == 3),
            3
        );
        assert_eq!((a.stats.late_answers, a.stats.late_silences), (1, 1));
        assert!((a.late_answer_share - 0.5).abs() < 1e-6);
        let id = a.start_find_node(target, t).expect("starts");
        assert_eq!((a.lookups[&id].attempts, a.lookups[&id].patient), (3, true));
        assert_eq!(
            run_lookup(&mut a, a_addr, &mut b, b_addr, id, |n| n == 3),
            3
        );
        assert_eq!((a.stats.late_answers, a.stats.late_silences), (2, 1));

        // Past its first outcomes, each weighs one eighth.
        a.late_outcomes = LATE_ANSWER_MEAN_OF;
        let before = a.late_answer_share;
        let t = now + Duration::from_secs(30);
        let refresh = a
            .start_lookup(Kind::Refresh, target, t, true)
            .expect("starts");
        run_lookup(&mut a, a_addr, &mut b, b_addr, refresh, |_| false);
        assert_eq!((a.stats.late_answers, a.stats.late_silences), (2, 2));
        assert!((a.late_answer_share - before * (1.0 - LATE_ANSWER_WEIGHT)).abs() < 1e-6);
    }

    /// The asker and the node that leaves in the test of a passed-over candidate below.
    const ASKER: usize = 3;
    const GONE: usize = 20;

    /// A 40-node cluster (all reachable, no loss) of `config`, run for a minute.
    fn cluster_of_forty(config: &Config) -> crate::cluster::Cluster {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let mut c = crate::cluster::Cluster::new(5, crate::cluster::Link::default(), now);
        c.grow(40, config);
        c.run_for(Duration::from_secs(60));
        c
    }

    /// Runs a find_node by [`ASKER`] for `target` to its end: whether the lookup was
    /// patient, the nodes it found, and its stats.
    fn find_from_asker(
        c: &mut crate::cluster::Cluster,
        target: NodeId,
    ) -> (bool, Vec<NodeInfo>, LookupStats) {
        let id = c
            .with_node(ASKER, |n, now| n.start_find_node(target, now))
            .expect("starts");
        let patient = c.with_node(ASKER, |n, _| n.lookups[&id].patient);
        let Some((Outcome::Closest(found), stats)) =
            c.run_until_finished(ASKER, id, Duration::from_secs(30))
        else {
            panic!("the lookup did not finish with nodes");
        };
        (patient, found, stats)
    }

    /// A lookup by node 3 of a 40-node cluster for the id of node 15, which has just left,
    /// started at once again when it ends: the first waits the vouched 850 ms for it (its
    /// neighbours still name it, and none passes it over), counts it a late silence, and so
    /// the second, the node's lookups now impatient, does not. (Not every node of the
    /// cluster is such a one: a departed node that one of its neighbours passes over, or
    /// whose attempts all go out before a neighbour names it, is not waited for.)
    #[test]
    fn a_node_whose_waited_for_candidates_stay_silent_stops_waiting() {
        const VOUCHED: usize = 15;
        let mut c = cluster_of_forty(&Config::default());
        let target = c.node(VOUCHED).id();
        c.kill(VOUCHED);
        let silences = c.with_node(ASKER, |n, _| n.stats.late_silences);
        let (patient, _, stats) = find_from_asker(&mut c, target);
        let waited = stats.duration;
        assert!(patient, "a node starts patient");
        assert!(waited > Duration::from_millis(850), "{waited:?}");
        assert_eq!(
            c.with_node(ASKER, |n, _| n.stats.late_silences),
            silences + 1
        );
        let (patient, _, stats) = find_from_asker(&mut c, target);
        let not_waited = stats.duration;
        assert!(!patient);
        assert!(not_waited < Duration::from_millis(700), "{not_waited:?}");
    }

    /// Announces from node 0 of a 48-node cluster to a target whose true closest include
    /// one node 250 ms further away each way; returns what the announce reported, whether
    /// that node held the peer then, how many stores had been acknowledged when the search
    /// ended, and whether it held the peer two seconds later.
    fn announce_past_a_slow_neighbour(quorum: usize) -> (Outcome, bool, usize, bool) {
        use crate::cluster::{Cluster, Link};
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let mut c = Cluster::new(11, Link::default(), now);
        c.grow(48, &Config::default());
        c.with_node(0, |n, _| n.config.announce_quorum = quorum);
        let target = NodeId([0x5a; 20]);
        let ih = InfoHash::from(target);
        let truth = c.true_closest(&target, K, 0);
        let slow = (0..c.len())
            .find(|&i| Some(&c.node(i).id()) == truth.last())
            .expect("the farthest of the true closest is a node");
        c.set_access_delay(slow, Duration::from_millis(250));
        let id = c
            .with_node(0, |n, now| n.start_announce(ih, Some(6881), false, now))
            .expect("starts");
        let mut stored_at_search_end = None;
        let mut reported = None;
        for _ in 0..2000 {
            c.run_for(Duration::from_millis(2));
            let l = c.node(0).lookups.get(&id);
            if stored_at_search_end.is_none() && l.is_none_or(|l| !matches!(l.phase, Phase::Search))
            {
                let stored = l.map_or(0, |l| {
                    let t = &l.stores.targets;
                    t.iter().filter(|t| t.state == StoreState::Stored).count()
                });
                stored_at_search_end = Some(stored);
            }
            let finished = c.events(0).iter().find_map(|e| match e {
                Event::CommandFinished { id: f, outcome, .. } if *f == id => Some(outcome.clone()),
                _ => None,
            });
            if let Some(outcome) = finished {
                let held = c.node(slow).peer_store().peer_count_of(&ih) > 0;
                reported = Some((outcome, held));
                break;
            }
        }
        let Some((outcome, held_then)) = reported else {
            panic!("the announce never finished");
        };
        c.run_for(Duration::from_secs(2));
        let finished = |e: &Event| matches!(e, Event::CommandFinished { id: f, .. } if *f == id);
        assert_eq!(c.events(0).iter().filter(|e| finished(e)).count(), 1);
        assert!(!c.node(0).lookups.contains_key(&id), "the lookup is gone");
        let held_later = c.node(slow).peer_store().peer_count_of(&ih) > 0;
        (
            outcome,
            held_then,
            stored_at_search_end.unwrap_or(0),
            held_later,
        )
    }

    #[test]
    fn an_announce_stores_as_its_search_converges_and_reports_at_its_quorum() {
        // Quorum 5: the seven fast nodes were stored at while the search waited for the
        // slow one; the caller hears of it without another round trip to the slow one, which
        // stores the peer all the same.
        let (outcome, held_then, early, held_later) = announce_past_a_slow_neighbour(5);
        let Outcome::Stored { stored_at, .. } = &outcome else {
            panic!("{outcome:?}");
        };
        assert!(
            early >= 5,
            "{early} stores acknowledged as the search ended"
        );
        assert!((5..K).contains(&stored_at.len()), "{}", stored_at.len());
        assert!(!held_then, "reported before the slow node stored");
        assert!(held_later, "the slow node's store went on after the report");

        // Quorum k: every one of the k closest answers first, as before.
        let (outcome, held_then, _, _) = announce_past_a_slow_neighbour(K);
        let Outcome::Stored { stored_at, .. } = &outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(stored_at.len(), K);
        assert!(held_then);
    }

    /// A lookup by node 3 of a 40-node cluster (vouched wait 1.5 s) for the id of node 20,
    /// which has just left. With `passed_over`, every node but the one nearest to it has
    /// seen it fail (so their answers pass it over); otherwise none has. Returns how long the
    /// lookup took.
    fn lookup_of_a_departed_node(passed_over: bool) -> Duration {
        let mut c = cluster_of_forty(&Config {
            lookup_vouched_wait: Duration::from_millis(1500),
            ..Config::default()
        });
        let target = c.node(GONE).id();
        let nearest = (0..c.len())
            .filter(|&i| i != GONE)
            .min_by_key(|&i| c.node(i).id().distance(&target))
            .expect("nodes");
        c.kill(GONE);
        if passed_over {
            let addr = c.addr(GONE);
            for i in (0..c.len()).filter(|&i| i != nearest && i != GONE) {
                c.with_node(i, |n, now| {
                    for _ in 0..n.config.routing.node_fail_limit {
                        n.table4.on_failure(addr, Some(target), now);
                    }
                });
            }
        }
        find_from_asker(&mut c, target).2.duration
    }

    #[test]
    fn a_departed_node_its_neighbours_pass_over_is_not_waited_for() {
        // Named by near neighbours only: its last attempt waits the vouched 1.5 s.
        let waited = lookup_of_a_departed_node(false);
        assert!(waited > Duration::from_millis(1500), "{waited:?}");
        // Named by its nearest neighbour, passed over by the others: given up after its
        // attempts' soft timeouts, as any silent candidate.
        let not_waited = lookup_of_a_departed_node(true);
        assert!(not_waited < Duration::from_millis(1500), "{not_waited:?}");
    }

    /// A find_node by [`ASKER`] in a 40-node cluster of `config` for the id of a node its
    /// table does not hold (so asked only once the search has had answers: in the burst),
    /// whose first find_node from the asker is lost: the lookup's duration and the queries it
    /// sent (it finds the target).
    fn find_with_first_query_lost(config: &Config) -> (Duration, u32) {
        let mut c = cluster_of_forty(config);
        let table = c.node(ASKER).routing_table(Family::V4);
        let t = (0..c.len())
            .find(|&i| i != ASKER && !table.contains(c.addr(i)))
            .expect("a node the asker does not hold");
        let (from, to) = (c.addr(ASKER), c.addr(t));
        let target = c.node(t).id();
        let mut lost = false;
        c.drop_datagrams(move |f, d, bytes| {
            let query = f == from && d == to && bytes.windows(9).any(|w| w == b"find_node");
            let drop = query && !lost;
            lost |= query;
            drop
        });
        let (_, found, stats) = find_from_asker(&mut c, target);
        assert_eq!(
            found.first().map(|n| n.id),
            Some(target),
            "the target found"
        );
        (stats.duration, stats.messages_sent)
    }

    #[test]
    fn a_lost_request_of_the_burst_is_made_up_by_its_copy() {
        let off = Config {
            lookup_resend_after: Duration::ZERO,
            ..Config::default()
        };
        let on = Config {
            lookup_resend_after: Duration::from_millis(20),
            ..Config::default()
        };
        let (took_off, sent_off) = find_with_first_query_lost(&off);
        let (took_on, sent_on) = find_with_first_query_lost(&on);
        // Without the copy the lost request is sent again after its soft timeout (at least
        // `lookup_unknown_wait_min`, 200 ms: the target's RTT is unknown); with it, 20 ms
        // after the first.
        assert!(
            took_on + Duration::from_millis(150) < took_off,
            "{took_on:?} with the copy, {took_off:?} without"
        );
        assert!(
            sent_on > sent_off,
            "copies are queries: {sent_on} against {sent_off}"
        );
    }

    #[test]
    fn a_lone_node_bootstraps_again_from_its_seeds() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let secs = |s: u64| now + Duration::from_secs(s);
        let seed_addr = SocketAddr::from(([10, 0, 0, 1], 6881));
        let joiner_addr = SocketAddr::from(([10, 0, 0, 2], 6881));
        let mut joiner = seeded(2, now);
        let first = joiner.start_bootstrap(&[seed_addr], now).expect("starts");
        // The seed is unreachable for 100 s: the bootstrap fails, and the seed is asked
        // again, at least 30 s after each bootstrap started.
        let sent = run_with_seed(&mut joiner, joiner_addr, None, seed_addr, now, secs(100));
        assert!(!joiner.lookups.contains_key(&first), "the first one ended");
        // A bootstrap's queries (first and retried) go out within seconds; a new bootstrap
        // starts at least 30 s after the one before.
        let starts: Vec<Instant> = sent
            .iter()
            .enumerate()
            .filter(|&(i, t)| i == 0 || *t - sent[i - 1] >= Duration::from_secs(10))
            .map(|(_, t)| *t)
            .collect();
        assert!(starts.len() >= 3, "asked at {sent:?}");
        assert!(
            starts
                .windows(2)
                .all(|p| p[1] - p[0] >= Duration::from_secs(30)),
            "asked at {sent:?}"
        );
        assert_eq!(
            joiner.stats().rebootstraps,
            u64::try_from(starts.len() - 1).expect("small")
        );
        // The seed comes up: the next bootstrap reaches it, and once the joiner has a
        // contact it stops asking.
        let mut seed = seeded(1, now);
        run_with_seed(
            &mut joiner,
            joiner_addr,
            Some(&mut seed),
            seed_addr,
            secs(100),
            secs(150),
        );
        assert_eq!(joiner.routing_table(Family::V4).len(), 1);
        let joined = joiner.stats().rebootstraps;
        run_with_seed(
            &mut joiner,
            joiner_addr,
            Some(&mut seed),
            seed_addr,
            secs(150),
            secs(400),
        );
        assert_eq!(joiner.stats().rebootstraps, joined, "not alone any more");
        assert_eq!(joiner.routing_table(Family::V4).len(), 1);
    }

    #[test]
    fn no_second_bootstrap_when_switched_off_or_without_seeds() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let seed_addr = SocketAddr::from(([10, 0, 0, 1], 6881));
        let addr = SocketAddr::from(([10, 0, 0, 2], 6881));
        let mut off = Node::new(
            Config {
                rebootstrap_interval: Duration::ZERO,
                ..Config::default()
            },
            now,
        );
        off.start_bootstrap(&[seed_addr], now).expect("starts");
        let sent = run_with_seed(
            &mut off,
            addr,
            None,
            seed_addr,
            now,
            now + Duration::from_secs(600),
        );
        assert!(
            sent.iter().all(|t| *t - now < Duration::from_secs(10)),
            "{sent:?}"
        );
        assert_eq!(off.stats().rebootstraps, 0);
        // The first node of a network has no seed to ask again.
        let mut first = Node::new(Config::default(), now);
        first.start_bootstrap(&[], now).expect("starts");
        let sent = run_with_seed(
            &mut first,
            addr,
            None,
            seed_addr,
            now,
            now + Duration::from_secs(600),
        );
        assert!(sent.is_empty());
        assert_eq!(first.stats().rebootstraps, 0);
        assert_eq!(first.stats().datagrams_out, 0);
    }

    /// Whether the next datagram `n` sends says `ro = 1` (BEP 43); the datagrams are
    /// dropped.
    fn sends_read_only(n: &mut Node) -> Option<bool> {
        let mut buf = Vec::new();
        let mut ro = None;
        while n.poll_transmit(&mut buf).is_some() {
            if let Ok(m) = xorro_wire::decode(&buf)
                && matches!(m.body, xorro_wire::Body::Query(_))
            {
                ro = Some(m.read_only);
            }
        }
        ro
    }

    #[test]
    fn a_node_no_stranger_queries_acts_read_only_until_one_does() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let secs = |s: u64| now + Duration::from_secs(s);
        let a_addr = SocketAddr::from(([20, 0, 0, 1], 6881));
        let b_addr = SocketAddr::from(([20, 0, 0, 2], 6881));
        let c_addr = SocketAddr::from(([20, 0, 0, 3], 6881));
        let mut a = Node::new(
            Config {
                rng_seed: 1,
                detect_unreachable: Duration::from_secs(60),
                ..Config::default()
            },
            now,
        );
        let mut b = seeded(2, now);
        a.start_bootstrap(&[b_addr], now).expect("starts");
        pump(&mut a, a_addr, &mut b, b_addr, now);
        // B, which A wrote to, pings A: no proof.
        b.start_ping(a_addr, secs(10));
        pump(&mut a, a_addr, &mut b, b_addr, secs(10));
        assert!(matches!(
            a.reachability(Family::V4),
            Some(crate::reach::Reachability::Learning { .. })
        ));
        a.handle_timeout(secs(70));
        assert!(matches!(
            a.reachability(Family::V4),
            Some(crate::reach::Reachability::Unreachable { .. })
        ));
        assert_eq!(a.stats().unreachable_spells, 1);
        // Read-only: its queries say so, and it answers none.
        a.start_ping(b_addr, secs(71));
        assert_eq!(sends_read_only(&mut a), Some(true));
        let dropped = a.stats().drops.read_only;
        b.start_ping(a_addr, secs(72));
        pump(&mut a, a_addr, &mut b, b_addr, secs(72));
        assert_eq!(a.stats().drops.read_only, dropped + 1);
        // C, which A never wrote to, pings A: A is reachable, and answers it.
        let mut c = seeded(3, now);
        let ping = c.start_ping(a_addr, secs(80));
        pump(&mut a, a_addr, &mut c, c_addr, secs(80));
        assert_eq!(
            a.reachability(Family::V4),
            Some(crate::reach::Reachability::Reachable)
        );
        assert!(matches!(finished(&mut c, ping), Some(Outcome::Pong(_))));
        a.start_ping(b_addr, secs(81));
        assert_eq!(sends_read_only(&mut a), Some(false));
        // Off (the default), the same silence changes nothing.
        let mut off = Node::new(Config::default(), now);
        off.start_bootstrap(&[b_addr], now).expect("starts");
        off.handle_timeout(secs(7200));
        assert_eq!(off.reachability(Family::V4), None);
        off.start_ping(b_addr, secs(7201));
        assert_eq!(sends_read_only(&mut off), Some(false));
    }

    #[test]
    fn a_node_that_finds_itself_behind_nat_judges_its_reachability() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let secs = |s: u64| now + Duration::from_secs(s);
        let a_addr = SocketAddr::from(([20, 0, 0, 1], 6881));
        let b_addr = SocketAddr::from(([20, 0, 0, 2], 6881));
        // The defaults but one vote: B's answer tells A the address it sees.
        let run = |local: &[IpAddr]| {
            let mut a = Node::new(
                Config {
                    rng_seed: 1,
                    bep42_votes: 1,
                    ..Config::default()
                },
                now,
            );
            a.set_local_ips(local.iter().copied());
            let mut b = seeded(2, now);
            a.start_bootstrap(&[b_addr], now).expect("starts");
            pump(&mut a, a_addr, &mut b, b_addr, now);
            assert_eq!(a.external_ip(), Some(a_addr.ip()));
            // B, which A wrote to, pings A: no proof.
            b.start_ping(a_addr, secs(10));
            pump(&mut a, a_addr, &mut b, b_addr, secs(10));
            a.handle_timeout(secs(130));
            a
        };
        let private = IpAddr::from([192, 168, 1, 5]);
        let v6 = "2001:db8::1".parse::<IpAddr>().expect("an address");
        let a = run(&[private, v6, IpAddr::from([0, 0, 0, 0])]);
        assert!(a.behind_nat(Family::V4) && !a.behind_nat(Family::V6));
        assert!(matches!(
            a.reachability(Family::V4),
            Some(crate::reach::Reachability::Unreachable { .. })
        ));
        assert!(a.acts_read_only_in(Family::V4));
        assert_eq!(a.stats().unreachable_spells, 1);
        // On its own public address, or told nothing, the same silence changes nothing.
        for local in [&[a_addr.ip(), private][..], &[]] {
            let mut a = run(local);
            assert!(!a.behind_nat(Family::V4));
            assert_eq!(a.reachability(Family::V4), None);
            a.handle_timeout(secs(7200));
            assert!(!a.acts_read_only());
            assert_eq!(a.stats().unreachable_spells, 0);
        }
        // Told its addresses after it learned the external one: the same judgement.
        let mut late = run(&[]);
        late.set_local_ips([private]);
        assert!(late.behind_nat(Family::V4));
        late.handle_timeout(secs(7300));
        assert!(late.acts_read_only_in(Family::V4));
    }

    #[test]
    fn a_dual_stack_node_keeps_one_external_address_of_each_family() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let mut a = Node::new(
            Config {
                rng_seed: 1,
                bep42_derive_id: true,
                ..Config::default()
            },
            now,
        );
        let ours4 = IpAddr::from([21, 1, 2, 3]);
        let ours6: IpAddr = "2001:db8::7".parse().expect("an address");
        let mut ids = vec![a.id()];
        // Votes of the two families interleave, as answers over both sockets do; each
        // round brings five new voters of each.
        for round in 0..4u8 {
            for v in 0..5u8 {
                a.vote_external_ip(now, IpAddr::from([30, round, v, 1]), ours4);
                let voter6 =
                    IpAddr::from([0x2001, 0xdb8, 1, u16::from(round), u16::from(v), 0, 0, 1]);
                a.vote_external_ip(now, voter6, ours6);
            }
            if ids.last() != Some(&a.id()) {
                ids.push(a.id());
            }
        }
        assert_eq!(a.external_ip_in(Family::V4), Some(ours4));
        assert_eq!(a.external_ip_in(Family::V6), Some(ours6));
        assert_eq!(a.external_ip(), Some(ours4));
        // The id was derived once, from the first address agreed on, and stays secure for it.
        assert_eq!(ids.len(), 2, "ids {ids:?}");
        assert!(xorro_wire::bep42::is_secure(&a.id(), ours4));
        assert!(a.ip_votes.is_empty(), "no votes kept for adopted addresses");
    }

    #[test]
    fn reachability_is_judged_per_family() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let secs = |s: u64| now + Duration::from_secs(s);
        let a4 = SocketAddr::from(([20, 0, 0, 1], 6881));
        let a6: SocketAddr = "[2001:db8::1]:6881".parse().expect("an address");
        let b4_addr = SocketAddr::from(([20, 0, 0, 2], 6881));
        let b6_addr: SocketAddr = "[2001:db8::2]:6881".parse().expect("an address");
        let c6_addr: SocketAddr = "[2001:db8::3]:6881".parse().expect("an address");
        let node = |seed: u64, detect: u64| {
            Node::new(
                Config {
                    rng_seed: seed,
                    detect_unreachable: Duration::from_secs(detect),
                    ..Config::default()
                },
                now,
            )
        };
        let (mut a, mut b4, mut b6, mut c6) = (node(1, 60), node(2, 0), node(3, 0), node(4, 0));
        a.start_bootstrap(&[b4_addr, b6_addr], now).expect("starts");
        // Both of A's addresses talk to their own family's seed.
        let mut buf = Vec::new();
        while let Some(to) = a.poll_transmit(&mut buf) {
            let (seed, from) = if to == b4_addr {
                (&mut b4, a4)
            } else {
                (&mut b6, a6)
            };
            seed.handle_datagram(now, from, &buf);
            while let Some(back) = seed.poll_transmit(&mut buf) {
                assert!(back == a4 || back == a6);
                a.handle_datagram(now, to, &buf);
            }
        }
        assert_eq!(a.routing_table(Family::V4).len(), 1);
        assert_eq!(a.routing_table(Family::V6).len(), 1);
        // A stranger reaches A over IPv6; nobody new over IPv4.
        c6.start_ping(a6, secs(5));
        pump(&mut a, a6, &mut c6, c6_addr, secs(5));
        a.handle_timeout(secs(70));
        assert!(matches!(
            a.reachability(Family::V4),
            Some(crate::reach::Reachability::Unreachable { .. })
        ));
        assert_eq!(
            a.reachability(Family::V6),
            Some(crate::reach::Reachability::Reachable)
        );
        assert!(a.acts_read_only_in(Family::V4) && !a.acts_read_only_in(Family::V6));
        while a.poll_transmit(&mut buf).is_some() {}
        a.start_ping(b4_addr, secs(71));
        assert_eq!(sends_read_only(&mut a), Some(true), "ro = 1 over IPv4");
        a.start_ping(b6_addr, secs(71));
        assert_eq!(sends_read_only(&mut a), Some(false), "not over IPv6");
    }

    #[test]
    fn soft_timeout_is_capped_but_not_below_a_slow_link() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut node = Node::new(Config::default(), now);
        let cap = node.config.lookup_soft_timeout;
        assert_eq!(cap, ms(300));
        // Before the first answer: RFC 6298's initial second for unknown contacts.
        assert_eq!(node.soft_timeout(None), INITIAL_RTO);
        assert_eq!(
            node.soft_timeout(Some(ms(20))),
            ms(100),
            "never under the minimum"
        );
        assert_eq!(node.soft_timeout(Some(ms(100))), ms(250), "2 × RTT + 50 ms");
        // An ordinary link: the RTO (100 + 4 × 50 ms after one sample) and slow contacts
        // are capped.
        node.rto.sample(ms(100));
        assert_eq!(node.soft_timeout(None), ms(300));
        assert_eq!(node.soft_timeout(Some(ms(400))), cap);
        for _ in 0..50 {
            node.rto.sample(ms(100));
        }
        let rto = node.rto.timeout().expect("sampled");
        assert!(rto < cap);
        // Fast answers (a table of fast members) pull the RTO under the least wait for
        // unknown contacts, 200 ms by default; without it, the RTO alone.
        assert!(rto < ms(200));
        assert_eq!(node.config.lookup_unknown_wait_min, ms(200));
        assert_eq!(node.soft_timeout(None), ms(200), "the least wait");
        node.config.lookup_unknown_wait_min = Duration::ZERO;
        assert_eq!(node.soft_timeout(None), rto, "the RTO when under the cap");
        // A longer least wait: that wait, still under the cap; known RTTs are not touched.
        node.config.lookup_unknown_wait_min = ms(250);
        assert!(rto < ms(250));
        assert_eq!(node.soft_timeout(None), ms(250));
        assert_eq!(node.soft_timeout(Some(ms(20))), ms(100));
        node.config.lookup_unknown_wait_min = ms(5_000);
        assert_eq!(node.soft_timeout(None), cap);
        // A slow link (every answer ~700 ms away): the cap rises to twice the node's own
        // smoothed RTT, so live contacts are waited for.
        let mut slow = Node::new(Config::default(), now);
        for _ in 0..50 {
            slow.rto.sample(ms(700));
        }
        let srtt = slow.rto.srtt.expect("sampled");
        assert_eq!(slow.soft_timeout(Some(ms(700))), srtt * 2);
        assert!(slow.soft_timeout(None) >= ms(700));
    }

    #[test]
    fn drained_queues_give_their_memory_back() {
        #[allow(clippy::disallowed_methods)] // a fixed origin for virtual time
        let now = Instant::now();
        let mut node = Node::new(Config::default(), now);
        // A bootstrap from 200 seeds queues a burst of datagrams at once.
        let seeds: Vec<SocketAddr> = (0..200u16)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 10_000 + i)))
            .collect();
        node.start_bootstrap(&seeds, now)
            .expect("a bootstrap starts");
        let queued = node.memory_usage().buffers;
        let mut buf = Vec::new();
        let mut sent = 0;
        while node.poll_transmit(&mut buf).is_some() {
            sent += 1;
        }
        while node.poll_event().is_some() {}
        assert!(sent > KEEP_QUEUED, "a burst was queued ({sent} datagrams)");
        let left = node.memory_usage().buffers;
        let bound = KEEP_TRANSMIT_BYTES
            + KEEP_QUEUED * std::mem::size_of::<Transmit>()
            + KEEP_EVENTS * std::mem::size_of::<Event>()
            + node.reach.as_ref().map_or(0, |r| {
                r.iter().map(crate::reach::Reach::heap_bytes).sum::<usize>()
            });
        assert!(left <= bound, "{left} bytes kept, at most {bound} expected");
        assert!(left < queued, "{left} bytes kept of {queued}");
    }
}
