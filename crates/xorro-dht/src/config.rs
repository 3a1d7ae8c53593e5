//! Every tunable of the engine, with the defaults of DESIGN.md and PROTOCOL.md.

use std::time::Duration;

use xorro_wire::NodeId;

use crate::ratelimit::RateLimitConfig;
use crate::routing::RoutingConfig;
use crate::store::StoreConfig;
use crate::tokens::TokenConfig;

/// BEP 5: "K" — buckets hold eight nodes, lookups end at the eight closest.
pub const K: usize = 8;

/// The client version sent in `v`: "XO" and two bytes of version (BEP 5 suggests this form).
pub const VERSION: [u8; 4] = *b"XO\x00\x01";

/// The default `lookup_attempts`, and so of `lookup_patient_attempts` (patience off).
pub const LOOKUP_ATTEMPTS: u8 = 3;

/// Configuration of a [`Node`](crate::Node).
#[derive(Debug, Clone)]
pub struct Config {
    /// Our node id; `None` draws one from the RNG (BEP 42 may replace it once our external
    /// address is known, see [`Config::bep42_derive_id`]).
    pub id: Option<NodeId>,
    /// Seed of the node's only RNG: the same seed and inputs always give the same outputs.
    pub rng_seed: u64,
    /// Routing tables (one per address family).
    pub routing: RoutingConfig,
    /// Peer and BEP 44 item storage.
    pub store: StoreConfig,
    /// Write tokens.
    pub tokens: TokenConfig,
    /// Inbound per-source limits and the outgoing budget.
    pub rate_limit: RateLimitConfig,

    /// α: requests a lookup keeps in flight (libtorrent 5, jech/dht 4, anacrolix 3).
    /// Default 5 (4 before 5 Dec 2026). Swept at 10^4 nodes with churn, seeds 1–3 (with the
    /// 300 ms soft-timeout cap, docs/SIMULATION.md): against 4, median 503 → 481 ms, p99
    /// 1,754 → 1,695 ms, announce median 745 → 681 ms, exactness 96.48 → 96.10 %, for 9 %
    /// more queries a lookup and 6 % more datagrams; on the CI scenario at 3,000 nodes
    /// (10 % behind NAT), seeds 42–46: exactness 95.00 → 95.92 %, median 670 → 656 ms.
    /// α = 6 added queries and nothing else.
    pub lookup_parallelism: usize,
    /// k: a lookup is done when this many closest nodes have answered (BEP 5: 8).
    pub lookup_closest: usize,
    /// Once this many of the `k` closest candidates have answered, a lookup asks every other
    /// one of them at once instead of α at a time (0: never past α). The search is then
    /// among the target's neighbours, and all of them must answer before it ends. Internal
    /// lookups (joining, refresh) keep to α: nobody waits for them. Simulated at 10^4 nodes
    /// with churn, two seeds: median lookup 696 → 632 ms, p90 1,313 → 1,203 ms, exactness
    /// and queries a lookup unchanged (see docs/SIMULATION.md).
    pub lookup_burst_after: usize,
    /// Among the new candidates as close to the target as the closest one (sharing as many
    /// leading bits with it, so the same expected progress), a user's lookup asks first the
    /// one with the fewest failures in our routing table, then the lowest RTT known from it
    /// (a contact of unknown RTT ranks at the node's smoothed RTT), rather than the closest.
    /// Internal lookups (joining, refresh) keep to distance order. Simulated at 10^4 nodes
    /// with churn, two seeds: median lookup 632 → 616 ms, announce median 955 → 908 ms,
    /// exactness 95.90 % on both (see docs/SIMULATION.md).
    pub lookup_rtt_choice: bool,
    /// Candidates a lookup remembers beyond the closest (bounds its memory).
    pub lookup_candidates_max: usize,
    /// The longest a request waits for its answer before it counts as slow: the lookup then
    /// sends it again (while `lookup_attempts` allow) and lets one more request go out. A
    /// contact with a known RTT gets `max(2 × RTT + 50 ms, 100 ms)`, one of unknown RTT the
    /// node's retransmission timeout (RFC 6298 over every answer it had; 1 s before the
    /// first), each capped by this, but the cap never goes below twice the node's own
    /// smoothed RTT, so that a node on a slow link keeps waiting long enough for live
    /// contacts. A slow request's answer is still taken until its hard timeout.
    ///
    /// Default 300 ms (libtorrent: 1 s, and 1 s here before 5 Dec 2026). The RTO of a node
    /// is ~300–400 ms on an Internet-like link (median RTT 100 ms, a long tail) and swings
    /// with the heavy-tailed samples; the cap gives up sooner on a contact that never answers
    /// (departed, or behind NAT). Simulated against 1 s (docs/SIMULATION.md): 10^4 nodes with
    /// churn, seeds 1–3: p99 1,954 → 1,754 ms, median 505 → 503 ms, exactness 96.43 →
    /// 96.48 %, put median 760 → 698 ms, announce median 732 → 745 ms; the CI scenario at
    /// 3,000 nodes (10 % behind NAT), seeds 42–46: p99 2,539 → 2,185 ms, median 678 →
    /// 670 ms, exactness 94.52 → 95.00 %, announce median 901 → 862 ms.
    pub lookup_soft_timeout: Duration,
    /// The least soft timeout of the last attempt to a candidate that one of its near
    /// neighbours named (a referrer sharing at least as many leading bits with it as our own
    /// table's near buckets do with us): such a neighbour pinged it within a minute or so
    /// (near buckets are pinged once silent for `routing.near_ping_interval`), so it is more
    /// likely far than departed, and worth waiting for. Only patient lookups wait: those of
    /// a node whose late candidates answered at least one time in three (see
    /// `lookup_patient_attempts`; a candidate waited for is one), and refreshes. Zero: off.
    ///
    /// Default 850 ms since 6 Dec 2026 (off before, then 700 ms for a few hours). A node
    /// behind NAT is named by the neighbours it wrote to and answers nobody else, so where
    /// many are (a young network) the waits are mostly silent and the nodes soon stop
    /// waiting; where every node is reachable three in four answer. Simulated
    /// (docs/SIMULATION.md, "The vouched wait by default"), exact / p50 / p99, off → 700 ms
    /// → 850 ms: 10^6 nodes, tables drawn as converged, 98.78 → 99.44 → 99.54 % / 342 → 338
    /// → 338 / 1,689 → 1,587 → 1,671 ms; random tables 98.91 → 99.40 → 99.60 % / 515 → 513
    /// → 513 / 1,909 → 1,939 → 1,966 ms; 10^4 nodes after two hours under churn (seeds 1–3)
    /// 98.83 → 99.35 → 99.47 % / 302 → 302 → 304 / 1,408 → 1,518 → 1,593 ms; a running
    /// network with a tenth of its nodes behind NAT (CI scenario at 3,000 nodes, seeds
    /// 42–46) 98.36 → 98.64 → 98.52 % / 347 → 346 → 339 / 1,677 → 1,486 → 1,491 ms; a young
    /// one 97.32 → 97.20 → 97.36 % / 822 → 834 → 850 / 2,779 → 3,055 → 3,224 ms (700 ms
    /// without the learning: 97.24 % / 861 / 3,440). 850 ms is the shortest wait tried that
    /// finds the true 8 closest for 99.5 % of lookups at 10^6; 150 ms more costs p99 ~80 ms.
    ///
    /// A candidate that another neighbour passes over is not waited for: a full answer
    /// naming nodes farther from the target but not it, from a node that shares as many
    /// leading bits with it as our table has buckets (it would hold it in its deepest
    /// bucket, which is never full) — that neighbour saw it fail, so it has most likely
    /// left. Since 6 Dec 2026; at 10^4 nodes after two hours under churn, seed 1, 1 s
    /// over three attempts: 99.65 % / p99 1,897 ms without it, 99.55 % / 1,718 ms with it.
    pub lookup_vouched_wait: Duration,
    /// The least soft timeout of a contact of unknown RTT, under the cap of
    /// `lookup_soft_timeout` (200 ms by default; zero: the node's RTO
    /// alone). The RTO follows the answers the node has: when its table keeps fast contacts
    /// (`routing.prefer_low_rtt`, the default) they make it shorter than what a stranger
    /// needs, and lookups give far live nodes up sooner. Simulated (docs/SIMULATION.md,
    /// "Fast tables", "Tables that grow fast"): at 10^4 nodes after two simulated hours,
    /// tables grown fast lose 0.8 points of exactness without it; 200 ms gives them back
    /// (95.85 → 96.85 %, seed 1) for +6 ms of median, where 300 ms costs ~100 ms of median
    /// with 10 % of the nodes behind NAT (the CI scenario).
    pub lookup_unknown_wait_min: Duration,
    /// Once a user's lookup is in its burst (`lookup_burst_after` of the `k` closest live
    /// candidates answered), the first request to each candidate it asks goes out a second
    /// time after this long unless answered: a copy against loss, one request more than
    /// `lookup_attempts` allow. A lookup ends when the last of its `k` closest has answered,
    /// and a lost request or answer costs its soft timeout (200–300 ms for a contact of
    /// unknown RTT, as the target's neighbours mostly are); at 1 % loss each way one lookup
    /// in seven loses one of the 8. The copy waits a little so that one burst of loss on
    /// the path does not take both. Internal lookups (joining, refresh) send no copies.
    /// Zero: off.
    ///
    /// Default 20 ms since 6 Dec 2026 (off before). Simulated (docs/SIMULATION.md, "A copy
    /// of each request of the burst"), off → 20 ms, exact / p50 / p90 / p99 / announce p50:
    /// 10^4 nodes, seeds 1–4: 99.54 → 99.55 % / 395 → 379 / 743 → 722 / 1,670 → 1,691 /
    /// 425 → 415 ms; 10^5 with tables drawn as converged: 99.65 % / 318 → 305 / 633 → 622 /
    /// 1,625 → 1,626 / 371 → 361 ms, 20.3 → 24.9 queries a lookup; 10^6 with tables drawn
    /// as converged: 99.53 → 99.58 % / 339 → 326 / 688 → 672 / 1,693 → 1,735 / 372 → 360 ms;
    /// a running network with a tenth of its nodes behind NAT (the CI scenario after 15
    /// minutes, seeds 42–46): 98.32 → 98.16 % / 339 → 325 / 763 → 736 / 1,549 → 1,687 /
    /// 372 → 352 ms (p99 within its noise: the seeds spread 1.34–2.18 s). Without
    /// loss the same 10^5 network's median is 295 ms: the copy takes back two thirds of
    /// what loss costs there, for a quarter more queries (α = 10 gives as much for 55 %).
    pub lookup_resend_after: Duration,
    /// Requests a lookup sends to a silent candidate while late answers are common here, in
    /// place of `lookup_attempts` (at most `lookup_attempts`: off, as by default, where both
    /// are [`LOOKUP_ATTEMPTS`]). A node counts how often its late candidates answered: those
    /// it asked past `lookup_attempts`, and those it waited for (`lookup_vouched_wait`) —
    /// the mean of its first seven outcomes and a prior of one in two, then exponentially
    /// weighted, 1/8 an outcome. While at least one in three answered, its lookups are
    /// patient: they make this many attempts, and the last one waits `lookup_vouched_wait`
    /// for a candidate its near neighbours named; otherwise they make `lookup_attempts` and
    /// wait for nobody.
    /// Refresh lookups (nobody waits for them) are always patient, so the count goes on. A
    /// late answer is a far node (a slow access link, another continent); a silent one is
    /// mostly a node behind NAT, kept and handed out by the neighbours it writes to, whom
    /// alone it answers. Simulated with 3 over `lookup_attempts = 2` (docs/SIMULATION.md,
    /// "Patience", from before three attempts were the default), 10^4 nodes in a network in
    /// equilibrium: where every node is reachable, 85 % of the late candidates answer, and
    /// lookups find the true 8 closest 99.05 % of the time instead of 96.43 % at the same
    /// median, for p99 1.57 s instead of 1.33 s; with 10 % of the nodes behind NAT 5 % answer
    /// and the median stays, but p99 still grows by 0.3 s (most nodes have too few outcomes
    /// to learn from in a five-minute run). Not a default for that tail.
    pub lookup_patient_attempts: u8,
    /// After this long without an answer a request has failed (jech/dht and mainline: 2–10 s).
    pub request_timeout: Duration,
    /// Requests a lookup sends to one node before giving up on it: a slow request (past its
    /// soft timeout) to one of the `k` closest is retransmitted until this many were sent, and
    /// the node fails when all of them timed out; a bootstrap seed is asked again this many
    /// times in all, and so is each node of a store phase (announce_peer / put) whose store
    /// query passed its soft timeout (once the last passed it, the store ends without it).
    /// With loss `p` each way one request goes unanswered with probability `1 - (1 - p)²`,
    /// and a lookup returns the true k closest only if each of them answered once: for 99 %
    /// of lookups exact at 20 % loss that takes 7 attempts, at 5 % loss 3.
    /// The default, 3 ([`LOOKUP_ATTEMPTS`]), is for far live nodes more than for loss: a
    /// candidate past its soft timeout (at most `lookup_soft_timeout`) is more often a node
    /// with a slow access link than one that left, and the third attempt lets the first
    /// answer arrive up to ~0.9 s late. Simulated (docs/SIMULATION.md, "Three attempts by
    /// default") at 10^4 nodes in a network that has run two hours under churn (seeds 1–3):
    /// 96.98 → 98.93 % of lookups with the true 8 closest at the same median, p99 1.23 →
    /// 1.34 s; in a running network with 10 % of the nodes behind NAT (read-only once they
    /// know it) +5 ms of median. A node that left costs a lookup three soft timeouts
    /// instead of two.
    pub lookup_attempts: u8,
    /// A lookup that has not finished after this long ends with what it has.
    pub lookup_timeout: Duration,
    /// Lookups running at once; more is [`StartError::TooManyLookups`](crate::StartError).
    pub lookups_max: usize,
    /// Requests of ours in flight at once, over all lookups and pings.
    pub requests_in_flight_max: usize,
    /// Peers a get_peers lookup reports in all (more are dropped).
    pub lookup_peers_max: usize,
    /// Acknowledgements from the `k` closest nodes at which an announce reports
    /// `Outcome::Stored` (at least 1). Below `k`, an announce whose search has converged
    /// (one of the `k` closest answered naming no closer node) stores at each of the `k`
    /// closest as it answers, so the fast ones have acknowledged by the time the search
    /// ends, and the caller is not held up by the slowest of them; the store queries
    /// still waiting go on (sent again when slow, as ever), unreported. `k` or more: the
    /// announce stores once its search ended and reports when every one of the `k`
    /// answered or gave up (libtorrent waits for none; bittorrent-dht for all).
    ///
    /// Default 5, a majority of [`K`] (`k` before 6 Dec 2026): the peer is then
    /// held by most of the nodes a get_peers ends at, whatever becomes of the others'
    /// stores. Simulated (docs/SIMULATION.md, "Announces reported at a majority"): 10^4
    /// nodes, 60-s settle, seeds 1–2: announce median 606 → 442 ms, lookups and queries
    /// per announce (27.0) unchanged.
    pub announce_quorum: usize,

    /// Datagrams waiting in [`Node::poll_transmit`](crate::Node::poll_transmit)'s queue at
    /// most; past it a datagram is dropped and counted.
    pub transmit_queue_max: usize,
    /// Events waiting in [`Node::poll_event`](crate::Node::poll_event) at most; past it the
    /// oldest is dropped and counted.
    pub events_max: usize,

    /// BEP 43: we never answer queries and say `ro = 1` in ours.
    pub read_only: bool,
    /// BEP 42: derive our id from our external address once enough responses agree on it.
    pub bep42_derive_id: bool,
    /// BEP 42: responses from this many distinct nodes must agree before we adopt an address.
    pub bep42_votes: usize,
    /// BEP 42: do not insert nodes whose id does not match their address (loopback and
    /// private ranges are exempt) and do not store on them.
    pub bep42_enforce: bool,

    /// BEP 51: info-hashes in one `sample_infohashes` reply at most (20 bytes each).
    pub sample_infohashes_max: usize,
    /// BEP 51 `interval`: how long a requester should wait before sampling us again (0–6 h).
    pub sample_infohashes_interval: Duration,

    /// A node that hears no query from a node it had not written to (within
    /// [`reach::WINDOW`](crate::reach::WINDOW)) for this long after it started takes itself
    /// for unreachable (behind NAT or a firewall) and acts read-only (BEP 43) for
    /// [`reach::REPROBE`](crate::reach::REPROBE), then tries again; a query from such a
    /// stranger, or from a loopback or private address, proves it reachable for good. Zero:
    /// off (the default). See [`crate::reach`].
    pub detect_unreachable: Duration,
    /// [`detect_unreachable`](Self::detect_unreachable) for a node that knows it is behind
    /// address translation, in the family where it is; used where `detect_unreachable` is
    /// zero. A node knows it once the address other nodes see (BEP 42, agreed by
    /// `bep42_votes` of them) is none of its own addresses, which its driver gives with
    /// [`Node::set_local_ips`](crate::Node::set_local_ips) (a node that was given none
    /// never knows). Behind NAT, a node is reachable only where the NAT forwards a port to
    /// it, and a query from a stranger proves that; a node on a public address is never
    /// judged this way, so small and quiet networks of public servers, which mislead the
    /// wait, are safe. Zero: off. Simulated in docs/SIMULATION.md ("Nodes behind NAT that
    /// know it"): with a tenth of the nodes behind NAT and 15 minutes of churn in
    /// equilibrium, 120 s takes the median lookup from 536 to 410 ms, p99 from 1.91 to
    /// 1.66 s and the median announce from 756 to 584 ms (three seeds); where every node
    /// is reachable nothing changes.
    pub detect_unreachable_behind_nat: Duration,
    /// How often stale (questionable) contacts are pinged and buckets refreshed.
    pub maintenance_interval: Duration,
    /// A node whose routing tables hold no usable contact (none, or only bad ones) sends
    /// the addresses of its last bootstrap ([`Node::start_bootstrap`](crate::Node::start_bootstrap))
    /// a bootstrap again once this long has passed since the last one (30 s, libtorrent's
    /// `need_bootstrap`), checked at maintenance: a node started while its network was
    /// unreachable, or cut off from it since, joins once it is back. Zero: never.
    pub rebootstrap_interval: Duration,
    /// Our client version, sent as `v` in every message.
    pub version: Option<[u8; 4]>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: None,
            rng_seed: 0,
            routing: RoutingConfig::default(),
            store: StoreConfig::default(),
            tokens: TokenConfig::default(),
            rate_limit: RateLimitConfig::default(),
            lookup_parallelism: 5,
            lookup_closest: K,
            lookup_burst_after: 1,
            lookup_rtt_choice: true,
            lookup_candidates_max: 64,
            lookup_soft_timeout: Duration::from_millis(300),
            lookup_vouched_wait: Duration::from_millis(850),
            lookup_unknown_wait_min: Duration::from_millis(200),
            lookup_resend_after: Duration::from_millis(20),
            request_timeout: Duration::from_secs(4),
            lookup_attempts: LOOKUP_ATTEMPTS,
            lookup_patient_attempts: LOOKUP_ATTEMPTS,
            lookup_timeout: Duration::from_secs(60),
            lookups_max: 256,
            requests_in_flight_max: 2048,
            lookup_peers_max: 2048,
            announce_quorum: K / 2 + 1,
            transmit_queue_max: 4096,
            events_max: 4096,
            read_only: false,
            bep42_derive_id: false,
            bep42_votes: 5,
            bep42_enforce: false,
            sample_infohashes_max: 20,
            sample_infohashes_interval: Duration::from_secs(6 * 3600),
            detect_unreachable: Duration::ZERO,
            detect_unreachable_behind_nat: Duration::from_secs(120),
            maintenance_interval: Duration::from_secs(15),
            rebootstrap_interval: Duration::from_secs(30),
            version: Some(VERSION),
        }
    }
}
