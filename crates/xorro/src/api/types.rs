//! The JSON bodies of the HTTP API, shared by the server and the CLI client. Ids, keys and
//! bytes are lowercase hex; durations carry their unit in the field name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xorro_dht::{DropCounts, LookupStats, QueryCounts, Stats};
use xorro_wire::NodeInfo;

/// Every error: what went wrong and what to do about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// What the caller can do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A DHT node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// Its id.
    pub id: String,
    /// Its UDP address.
    pub addr: String,
}

impl From<&NodeInfo> for Node {
    fn from(n: &NodeInfo) -> Self {
        Node {
            id: n.id.to_string(),
            addr: n.addr.to_string(),
        }
    }
}

/// Nodes, closest first.
pub fn nodes(list: &[NodeInfo]) -> Vec<Node> {
    list.iter().map(Node::from).collect()
}

/// How a lookup went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lookup {
    /// Queries sent.
    pub messages_sent: u32,
    /// Responses received.
    pub responses: u32,
    /// Error replies received.
    pub errors: u32,
    /// Requests that timed out.
    pub timeouts: u32,
    /// Hops to the closest node found.
    pub rounds: u32,
    /// From start to finish.
    pub duration_ms: f64,
}

impl From<&LookupStats> for Lookup {
    fn from(s: &LookupStats) -> Self {
        Lookup {
            messages_sent: s.messages_sent,
            responses: s.responses,
            errors: s.errors,
            timeouts: s.timeouts,
            rounds: s.rounds,
            duration_ms: s.duration.as_secs_f64() * 1000.0,
        }
    }
}

/// Queries answered, by method, as (method, count): the one list that both `/v1/status` and
/// `/metrics` use.
pub fn query_counts(q: &QueryCounts) -> [(&'static str, u64); 8] {
    [
        ("ping", q.ping),
        ("find_node", q.find_node),
        ("get_peers", q.get_peers),
        ("announce_peer", q.announce_peer),
        ("get", q.get),
        ("put", q.put),
        ("sample_infohashes", q.sample_infohashes),
        ("unknown", q.unknown),
    ]
}

/// Dropped datagrams by reason, as (reason, count).
pub fn drop_counts(d: &DropCounts) -> [(&'static str, u64); 8] {
    [
        ("malformed", d.malformed),
        ("rate_limited", d.rate_limited),
        ("unexpected_response", d.unexpected_response),
        ("read_only", d.read_only),
        ("transmit_queue_full", d.transmit_queue_full),
        ("outgoing_budget", d.outgoing_budget),
        ("events", d.events),
        ("from_self", d.from_self),
    ]
}

/// The engine's counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Queries answered, by method.
    pub queries: BTreeMap<String, u64>,
    /// Responses to our queries.
    pub responses_in: u64,
    /// Error replies to our queries.
    pub errors_in: u64,
    /// Error replies we sent.
    pub errors_out: u64,
    /// Our requests that timed out.
    pub timeouts: u64,
    /// Datagrams dropped, by reason.
    pub drops: BTreeMap<String, u64>,
    /// Lookups started.
    pub lookups_started: u64,
    /// Lookups finished.
    pub lookups_finished: u64,
    /// Bootstraps started again because the routing tables held no usable contact.
    #[serde(default)]
    pub rebootstraps: u64,
    /// Times the node took itself for unreachable and acted read-only.
    #[serde(default)]
    pub unreachable_spells: u64,
    /// Late candidates that answered: those patient lookups asked past `lookup_attempts`
    /// or waited for (`lookup_vouched_wait`).
    #[serde(default)]
    pub late_answers: u64,
    /// Late candidates that never answered.
    #[serde(default)]
    pub late_silences: u64,
}

impl From<&Stats> for Counters {
    fn from(s: &Stats) -> Self {
        let map =
            |pairs: &[(&str, u64)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        Counters {
            datagrams_in: s.datagrams_in,
            datagrams_out: s.datagrams_out,
            queries: map(&query_counts(&s.queries)),
            responses_in: s.responses_in,
            errors_in: s.errors_in,
            errors_out: s.errors_out,
            timeouts: s.timeouts,
            drops: map(&drop_counts(&s.drops)),
            lookups_started: s.lookups_started,
            lookups_finished: s.lookups_finished,
            rebootstraps: s.rebootstraps,
            unreachable_spells: s.unreachable_spells,
            late_answers: s.late_answers,
            late_silences: s.late_silences,
        }
    }
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// The node id.
    pub id: String,
    /// The UDP addresses it listens on.
    pub local_addrs: Vec<String>,
    /// Its external address as other nodes see it (BEP 42), once known (IPv4 first).
    pub external_ip: Option<String>,
    /// Its external address in each family where it is known (IPv4, then IPv6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<String>,
    /// Contacts in the IPv4 routing table.
    pub table_v4: usize,
    /// Contacts in the IPv6 routing table.
    pub table_v6: usize,
    /// Info-hashes stored for others.
    pub stored_infohashes: usize,
    /// Peers stored for others.
    pub stored_peers: usize,
    /// BEP 44 items stored for others.
    pub stored_items: usize,
    /// Lookups running.
    pub lookups_running: usize,
    /// Own announcements kept alive.
    pub own_announcements: usize,
    /// Own BEP 44 items kept alive.
    pub own_items: usize,
    /// Seconds since the node started.
    pub uptime_secs: f64,
    /// BEP 43 read-only: set so, or taken for unreachable.
    pub read_only: bool,
    /// By family (`ipv4`, `ipv6`) with contacts: `learning`, `reachable` or `unreachable`,
    /// when the node watches for it (`--detect-unreachable`, or by default once it finds
    /// itself behind NAT in that family).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reachability: BTreeMap<String, String>,
    /// Families (`ipv4`, `ipv6`) in which the address other nodes see is none of this
    /// machine's: the node is behind NAT there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub behind_nat: Vec<String>,
    /// Counters.
    pub stats: Counters,
    /// Datagrams lost at the sockets, by kind (`send_failed`, `no_socket`, `recv_failed`,
    /// `truncated`).
    #[serde(default)]
    pub socket_errors: BTreeMap<String, u64>,
}

/// `ipv4` or `ipv6`, as the API names families.
fn family_name(family: xorro_wire::Family) -> &'static str {
    match family {
        xorro_wire::Family::V4 => "ipv4",
        xorro_wire::Family::V6 => "ipv6",
    }
}

impl From<&xorro_node::Status> for Status {
    fn from(s: &xorro_node::Status) -> Self {
        Status {
            id: s.id.to_string(),
            local_addrs: s.local_addrs.iter().map(ToString::to_string).collect(),
            external_ip: s.external_ips.first().map(ToString::to_string),
            external_ips: s.external_ips.iter().map(ToString::to_string).collect(),
            table_v4: s.table_v4,
            table_v6: s.table_v6,
            stored_infohashes: s.stored_infohashes,
            stored_peers: s.stored_peers,
            stored_items: s.stored_items,
            lookups_running: s.lookups_running,
            own_announcements: s.own_announcements,
            own_items: s.own_items,
            uptime_secs: s.uptime.as_secs_f64(),
            read_only: s.read_only,
            reachability: s
                .reachability
                .iter()
                .map(|(family, r)| {
                    use xorro_dht::reach::Reachability;
                    let r = match r {
                        Reachability::Learning { .. } => "learning",
                        Reachability::Reachable => "reachable",
                        Reachability::Unreachable { .. } => "unreachable",
                    };
                    (family_name(*family).to_owned(), r.to_owned())
                })
                .collect(),
            behind_nat: s
                .behind_nat
                .iter()
                .map(|&f| family_name(f).to_owned())
                .collect(),
            stats: Counters::from(&s.stats),
            socket_errors: s
                .socket_errors
                .by_kind()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
        }
    }
}

/// One contact of `GET /v1/routing-table`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contact {
    /// Its id.
    pub id: String,
    /// Its address.
    pub addr: String,
    /// BEP 5 state: good, questionable or bad.
    pub state: String,
    /// Smoothed round-trip time.
    pub rtt_ms: Option<f64>,
    /// Seconds since it last answered us.
    pub last_response_secs: Option<f64>,
}

impl From<&xorro_node::Contact> for Contact {
    fn from(c: &xorro_node::Contact) -> Self {
        Contact {
            id: c.node.id.to_string(),
            addr: c.node.addr.to_string(),
            state: c.state.to_owned(),
            rtt_ms: c.rtt.map(|d| d.as_secs_f64() * 1000.0),
            last_response_secs: c.last_response.map(|d| d.as_secs_f64()),
        }
    }
}

/// `GET /v1/routing-table`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutingTable {
    /// The contacts, IPv4 first.
    pub contacts: Vec<Contact>,
}

/// `POST /v1/ping` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingRequest {
    /// host:port of the node.
    pub addr: String,
}

/// `POST /v1/ping` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pong {
    /// The node that answered.
    pub node: Node,
    /// Round trip, milliseconds.
    pub rtt_ms: f64,
}

/// `GET /v1/find-node/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindNode {
    /// The target.
    pub target: String,
    /// The closest nodes that answered, closest first.
    pub nodes: Vec<Node>,
    /// How the lookup went.
    pub lookup: Lookup,
}

/// `GET /v1/peers/{infohash}` (the whole result).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peers {
    /// The info-hash.
    pub info_hash: String,
    /// Every distinct peer found.
    pub peers: Vec<String>,
    /// The closest nodes that answered.
    pub closest: Vec<Node>,
    /// How the lookup went.
    pub lookup: Lookup,
}

/// A line of `GET /v1/peers/{infohash}?stream=true` (NDJSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PeersLine {
    /// New peers.
    Peers {
        /// Peers not sent before.
        peers: Vec<String>,
    },
    /// The end: everything found.
    Done(Peers),
    /// The lookup failed.
    Error(ErrorBody),
}

/// `POST /v1/announce` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnounceRequest {
    /// The info-hash.
    pub info_hash: String,
    /// The port peers should connect to; absent: the DHT port (BEP 5 `implied_port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `POST /v1/announce` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announced {
    /// The info-hash.
    pub info_hash: String,
    /// The nodes that had confirmed storing the announcement when it was reported: once a
    /// majority of the k closest had, or all had answered or given up (the stores still
    /// waiting then go on).
    pub stored_at: Vec<Node>,
    /// How the lookup went.
    pub lookup: Lookup,
}

/// `DELETE /v1/announce/{infohash}` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unannounced {
    /// The info-hash no longer announced.
    pub info_hash: String,
}

/// `POST /v1/immutable` request: exactly one of the two values.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutImmutable {
    /// The value as hex of its bencoded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_hex: Option<String>,
    /// The value as text, stored as one bencoded byte string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_utf8: Option<String>,
}

/// `POST /v1/mutable` request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutMutable {
    /// The ed25519 seed (secret key) to sign with, 64 hex digits.
    pub seed_hex: String,
    /// The salt as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// The salt as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt_hex: Option<String>,
    /// The value as hex of its bencoded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_hex: Option<String>,
    /// The value as text, stored as one bencoded byte string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_utf8: Option<String>,
    /// The seq; absent: one more than the network holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Store only if the network holds this seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas: Option<i64>,
}

/// `POST /v1/immutable` and `POST /v1/mutable` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The item's DHT key.
    pub target: String,
    /// A mutable item's public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// A mutable item's seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// The nodes that stored it.
    pub stored_at: Vec<Node>,
}

/// `GET /v1/immutable/{target}` and `GET /v1/mutable/{pubkey}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// The item's DHT key.
    pub target: String,
    /// The bencoded value, hex.
    pub value_hex: String,
    /// The text, when the value is a byte string holding UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_utf8: Option<String>,
    /// The value in a readable form (bencode shown as JSON-like text).
    pub value_display: String,
    /// A mutable item's public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// A mutable item's salt, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt_hex: Option<String>,
    /// A mutable item's seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// A mutable item's signature, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Query of `GET /v1/mutable/{pubkey}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MutableQuery {
    /// The salt as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// The salt as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt_hex: Option<String>,
}

/// `GET /v1/samples/{target}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Samples {
    /// Where in the keyspace.
    pub target: String,
    /// The distinct info-hashes collected.
    pub samples: Vec<String>,
}
