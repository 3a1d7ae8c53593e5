//! What the node tells its driver: events, command ids, results and counters.

use std::net::SocketAddr;
use std::time::Duration;

use xorro_wire::bep33::BloomFilter;
use xorro_wire::{InfoHash, NodeId, NodeInfo};

use crate::store::StoredItem as Item;

/// The id of a command that finishes later (a lookup, an announce, a ping …). Every event
/// answering the command carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandId(pub u64);

/// How a lookup went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Queries sent (including announce_peer / put).
    pub messages_sent: u32,
    /// Responses received.
    pub responses: u32,
    /// Error replies received.
    pub errors: u32,
    /// Requests that timed out.
    pub timeouts: u32,
    /// Hops from us to the closest node found (1 = a node in our own table).
    pub rounds: u32,
    /// From start to finish.
    pub duration: Duration,
}

/// The result of a finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// find_node, bootstrap, or the search part of the others: the closest nodes that
    /// answered, closest first.
    Closest(Vec<NodeInfo>),
    /// get_peers: every distinct peer found (each also reported in a `PeersFound`), and the
    /// closest nodes that answered.
    Peers {
        /// The peers.
        peers: Vec<SocketAddr>,
        /// The closest nodes that answered.
        closest: Vec<NodeInfo>,
        /// BEP 33, when the lookup asked to scrape and nodes answered with filters.
        scrape: Option<Box<Scrape>>,
    },
    /// announce or put: the nodes that accepted the store.
    Stored {
        /// The nodes that confirmed it: for a put, all that did; for an announce, those
        /// that had when it was reported (`Config::announce_quorum`: the stores still
        /// waiting then go on, unreported).
        stored_at: Vec<NodeInfo>,
        /// For a mutable put, the seq that was stored.
        seq: Option<i64>,
    },
    /// get of a BEP 44 item: the one found (for mutable items, the highest seq), if any.
    Item(Option<Item>),
    /// sample_infohashes: the distinct info-hashes collected.
    Samples(Vec<InfoHash>),
    /// ping: the node that answered.
    Pong(NodeInfo),
    /// The command failed.
    Failed(CommandError),
}

/// BEP 33 scrape: the union of the Bloom filters of the nodes that answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scrape {
    /// `BFsd`: seeds.
    pub seeds: BloomFilter,
    /// `BFpe`: peers that are not seeds.
    pub peers: BloomFilter,
    /// How many nodes sent filters.
    pub responses: u32,
}

impl Scrape {
    /// Estimated number of seeds (BEP 33's formula).
    pub fn seeds_estimate(&self) -> f64 {
        self.seeds.estimate_count()
    }

    /// Estimated number of downloading peers.
    pub fn peers_estimate(&self) -> f64 {
        self.peers.estimate_count()
    }
}

/// Why a command ended without a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No node answered (or there was none to ask: the routing table is empty).
    #[error("no node answered")]
    NoResponse,
    /// A mutable put lost the compare-and-swap: someone stored another seq first.
    #[error("compare-and-swap failed: the stored seq is {current:?}")]
    CasMismatch {
        /// The seq the network holds, if it told us.
        current: Option<i64>,
    },
    /// A mutable put's seq is not above what the network holds.
    #[error("seq {seq} is not above the stored seq {current}")]
    SeqTooLow {
        /// Ours.
        seq: i64,
        /// The network's.
        current: i64,
    },
    /// Cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
}

/// Something the driver should know about, from [`Node::poll_event`](crate::Node::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// New peers for a get_peers or announce command, as they arrive.
    PeersFound {
        /// The command.
        id: CommandId,
        /// Peers not reported before for this command.
        peers: Vec<SocketAddr>,
    },
    /// A BEP 44 item arrived for a get command (a mutable one may be followed by a newer one).
    ItemFound {
        /// The command.
        id: CommandId,
        /// The item, verified.
        item: Item,
        /// Who sent it.
        from: NodeInfo,
    },
    /// A node answered a sample_infohashes command.
    SamplesReceived {
        /// The command.
        id: CommandId,
        /// Who answered.
        from: NodeInfo,
        /// Its samples.
        samples: Vec<InfoHash>,
        /// How many info-hashes it says it stores.
        num: Option<u64>,
        /// How long it asks us to wait before asking again.
        interval: Option<Duration>,
    },
    /// A command finished.
    CommandFinished {
        /// The command.
        id: CommandId,
        /// Its result.
        outcome: Outcome,
        /// Its statistics.
        stats: LookupStats,
    },
    /// Someone announced a peer to us (stored on behalf of the network).
    PeerAnnounced {
        /// The info-hash.
        info_hash: InfoHash,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// Someone stored a BEP 44 item on us.
    ItemStored {
        /// Its target.
        target: NodeId,
    },
    /// Our node id changed (BEP 42: derived from our external address).
    IdChanged {
        /// The old id.
        old: NodeId,
        /// The new id.
        new: NodeId,
    },
}

/// Counters of everything the node did, from [`Node::stats`](crate::Node::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_in: u64,
    /// Datagrams handed out by `poll_transmit`.
    pub datagrams_out: u64,
    /// Queries answered, by method.
    pub queries: QueryCounts,
    /// Responses to our queries that matched a request.
    pub responses_in: u64,
    /// Error replies to our queries.
    pub errors_in: u64,
    /// Error replies we sent (203, 204, BEP 44 errors …).
    pub errors_out: u64,
    /// Requests of ours that timed out.
    pub timeouts: u64,
    /// Why datagrams were dropped.
    pub drops: DropCounts,
    /// Lookups started.
    pub lookups_started: u64,
    /// Lookups finished.
    pub lookups_finished: u64,
    /// Bootstraps started again because the routing tables held no usable contact
    /// ([`Config::rebootstrap_interval`](crate::Config::rebootstrap_interval)).
    pub rebootstraps: u64,
    /// Late candidates that answered: those a patient lookup asked past `lookup_attempts`
    /// ([`Config::lookup_patient_attempts`](crate::Config::lookup_patient_attempts)) or
    /// waited for ([`Config::lookup_vouched_wait`](crate::Config::lookup_vouched_wait)).
    pub late_answers: u64,
    /// Late candidates that never answered.
    pub late_silences: u64,
    /// Times the node took itself for unreachable and acted read-only
    /// ([`Config::detect_unreachable`](crate::Config::detect_unreachable)).
    pub unreachable_spells: u64,
}

/// Queries answered, by method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryCounts {
    /// ping.
    pub ping: u64,
    /// find_node.
    pub find_node: u64,
    /// get_peers.
    pub get_peers: u64,
    /// announce_peer.
    pub announce_peer: u64,
    /// BEP 44 get.
    pub get: u64,
    /// BEP 44 put.
    pub put: u64,
    /// BEP 51 sample_infohashes.
    pub sample_infohashes: u64,
    /// Unknown methods answered like find_node.
    pub unknown: u64,
}

/// Datagrams dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Not decodable and not answerable (no transaction id, or not a query).
    pub malformed: u64,
    /// Over the per-source rate limit.
    pub rate_limited: u64,
    /// A response or error whose transaction id matches no request of ours from that address.
    pub unexpected_response: u64,
    /// A query while we are read-only (BEP 43).
    pub read_only: u64,
    /// The transmit queue was full.
    pub transmit_queue_full: u64,
    /// The outgoing budget was spent; the request was not sent.
    pub outgoing_budget: u64,
    /// The event queue was full; the oldest event was dropped.
    pub events: u64,
    /// A query from ourselves (our own id), a reflection or a loop.
    pub from_self: u64,
}
