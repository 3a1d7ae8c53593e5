//! What a run produced: the deterministic [`Report`] (the JSON summary) and the
//! non-deterministic [`RunInfo`] (wall time, memory).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;
use crate::sim::Simulation;

const NS: f64 = 1e9;
const MS: f64 = 1e6;

/// What an operation of the workload was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// get_peers of a random target.
    #[default]
    Lookup,
    /// announce_peer, then get_peers from another node.
    Announce,
    /// BEP 44 immutable put, then get from another node.
    Put,
    /// announce then get_peers on the info-hash the sybils try to eclipse.
    Eclipse,
}

/// One finished (or aborted) phase of an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpRecord {
    /// The operation.
    pub kind: OpKind,
    /// The read phase (get_peers, get) rather than the write (announce, put).
    pub read: bool,
    /// Start, after the workload began (ns of virtual time).
    pub start_ns: u64,
    /// Start to finish (ns), from the engine's `LookupStats::duration`.
    pub latency_ns: u64,
    /// Hops to the closest node found (`LookupStats::rounds`).
    pub rounds: u32,
    /// Queries sent.
    pub messages: u32,
    /// Requests that timed out.
    pub timeouts: u32,
    /// Bytes of the queries sent and responses received.
    pub bytes: u64,
    /// True k closest findable nodes (the oracle) that the lookup returned.
    pub closest_found: u8,
    /// How many the oracle had (k, unless the network is tiny).
    pub closest_truth: u8,
    /// The RTT from the asker to the slowest of those true closest nodes (ns): no lookup
    /// that hears every one of them can end sooner. `None` where no truth was checked.
    pub rtt_floor_ns: Option<u64>,
    /// When the last of those true closest nodes was first asked, from the start (ns): the
    /// time the search took to learn them all. `None` where one was never asked or no truth
    /// was checked.
    pub closest_asked_ns: Option<u64>,
    /// The earliest the lookup could have heard all of them, as it asked them: the latest
    /// of first-asked time plus RTT over the true closest nodes (ns). Past it, the lookup
    /// waited for a lost answer, a retransmission or another candidate; before it, the
    /// search took the time to learn them. `None` with `closest_asked_ns`.
    pub closest_bound_ns: Option<u64>,
    /// Distinct nodes the lookup asked that had left the network when asked.
    pub departed: u32,
    /// For reads after a write: whether the announced peer / stored item was found.
    pub target_found: Option<bool>,
    /// For reads: time from start to the first sight of the peer / item (ns).
    pub first_found_ns: Option<u64>,
    /// For writes: nodes that confirmed the store.
    pub stored_at: u32,
    /// The command ended with an answer (not `Failed`).
    pub answered: bool,
    /// The runner left the network (churn) or could not start it.
    pub aborted: bool,
}

impl OpRecord {
    /// All of the true k closest were found.
    pub fn closest_ok(&self) -> bool {
        self.closest_truth > 0 && self.closest_found == self.closest_truth
    }
}

/// A progress note for long runs.
#[derive(Debug, Clone)]
pub struct Progress {
    /// "wave", "built", "running", "done".
    pub phase: &'static str,
    /// Virtual seconds since the start.
    pub virtual_s: f64,
    /// Nodes online.
    pub online: usize,
    /// Events processed.
    pub events: u64,
    /// Operation records so far.
    pub records: usize,
}

impl std::fmt::Display for Progress {
    /// One aligned line: phase, virtual time, nodes online, events, operations done.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<7} virtual {:>8.1} s, {:>8} online, {:>11} events, {:>6} ops",
            self.phase, self.virtual_s, self.online, self.events, self.records
        )
    }
}

/// What happened to datagrams in the network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficCounts {
    /// Datagrams sent by nodes to simulated addresses.
    pub datagrams: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Delivered to a node.
    pub delivered: u64,
    /// Lost at random.
    pub lost: u64,
    /// Dropped at a partition.
    pub partitioned: u64,
    /// Dropped by a NAT (unsolicited).
    pub nat_blocked: u64,
    /// Arrived after the node left.
    pub to_offline: u64,
    /// Sent to an address no simulated node has.
    pub unknown_destination: u64,
    /// Responses an adversary dropped or rewrote.
    pub tampered: u64,
}

/// Counters of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Events processed.
    pub events: u64,
    /// Sessions started (joins and returns).
    pub joins: u64,
    /// Sessions that ended.
    pub departures: u64,
    /// Departed nodes that came back with their old id and state.
    pub returns: u64,
    /// New nodes that arrived during the workload.
    pub arrivals: u64,
    /// Operations done.
    pub ops_done: u64,
    /// Virtual time when the last wave finished (ns).
    pub build_virtual_ns: u64,
    /// Virtual time at the end (ns).
    pub virtual_ns: u64,
}

/// Percentiles of a distribution (ms for latencies, counts otherwise).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// From values in a unit where 3 significant digits are enough (hdrhistogram).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Percentiles {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << 50, 3)
            .expect("bounds and 3 significant figures are valid");
        let mut sum = 0.0;
        for v in values {
            // Kept in thousandths so that fractional ms survive.
            h.saturating_record((v.max(0.0) * 1000.0) as u64);
            sum += v;
        }
        let n = h.len();
        if n == 0 {
            return Percentiles::default();
        }
        let q = |p: f64| round3(h.value_at_quantile(p) as f64 / 1000.0);
        Percentiles {
            count: n,
            mean: round3(sum / n as f64),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: round3(h.max() as f64 / 1000.0),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rate(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        (num as f64 / den as f64 * 1e5).round() / 1e5
    }
}

/// Summary of lookups (or of the search part of reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LookupSummary {
    /// Started.
    pub started: u64,
    /// Ended with an answer.
    pub answered: u64,
    /// Ended without any answer (`Failed`).
    pub failed: u64,
    /// Runner left (churn) or could not start.
    pub aborted: u64,
    /// Fraction of answered lookups that found all the true k closest findable nodes.
    pub closest_success: f64,
    /// Mean fraction of the true k closest found.
    pub closest_found_mean: f64,
    /// Latency, ms.
    pub latency_ms: Percentiles,
    /// Hops to the closest node found.
    pub rounds: Percentiles,
    /// Rounds → lookups.
    pub rounds_histogram: BTreeMap<u32, u64>,
    /// Queries sent per lookup.
    pub messages: Percentiles,
    /// Queries → lookups.
    pub messages_histogram: BTreeMap<u32, u64>,
    /// Requests that timed out per lookup.
    pub timeouts: Percentiles,
    /// Bytes sent and received per lookup.
    pub bytes: Percentiles,
    /// Latency CDF: (ms, fraction) at every percent.
    pub latency_cdf: Vec<(f64, f64)>,
    /// RTT from the asker to the slowest of the true k closest nodes, ms: the floor of a
    /// lookup's latency that the link model alone sets (the lookup must hear them all).
    #[serde(default)]
    pub rtt_floor_ms: Percentiles,
    /// Of the lookups that asked every one of their true k closest nodes: when the last of
    /// them was first asked, ms from the start (the time the search took to learn them).
    #[serde(default)]
    pub closest_asked_ms: Percentiles,
    /// Of the same lookups: the earliest each could have heard them all as it asked them
    /// (first-asked time plus RTT, the latest over the k), ms. Latency beyond it went to
    /// lost answers, retransmissions and jitter.
    #[serde(default)]
    pub closest_bound_ms: Percentiles,
    /// The answered lookups that asked no departed node, and those that asked one or more.
    #[serde(default)]
    pub by_departed: DepartedSplit,
}

/// Answered lookups split by whether they asked a node that had left the network: what
/// departed nodes in answers cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DepartedSplit {
    /// Lookups that asked none.
    pub none: SplitPart,
    /// Lookups that asked one or more.
    pub some: SplitPart,
}

/// One part of a [`DepartedSplit`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitPart {
    /// Answered lookups in this part.
    pub lookups: u64,
    /// Fraction of those checked against the oracle that found all the true k closest.
    pub closest_success: f64,
    /// Latency, ms.
    pub latency_ms: Percentiles,
}

impl SplitPart {
    fn of(recs: &[&OpRecord]) -> SplitPart {
        let checked: Vec<&OpRecord> = recs
            .iter()
            .copied()
            .filter(|r| r.closest_truth > 0)
            .collect();
        SplitPart {
            lookups: recs.len() as u64,
            closest_success: exact_rate(&checked),
            latency_ms: Percentiles::of(recs.iter().map(|r| r.latency_ns as f64 / MS)),
        }
    }
}

/// Percentiles, in ms, of a time in ns that the records may have.
fn ms_percentiles(recs: &[&OpRecord], ns: impl Fn(&OpRecord) -> Option<u64>) -> Percentiles {
    Percentiles::of(recs.iter().filter_map(|r| ns(r)).map(|t| t as f64 / MS))
}

/// The CDF of `values` (sorted in place) at each percent, 0 to 100: (value, fraction); empty
/// without values.
fn cdf(values: &mut [f64]) -> Vec<(f64, f64)> {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return Vec::new();
    }
    (0..=100)
        .map(|p| {
            let i = ((values.len() - 1) as f64 * p as f64 / 100.0).round() as usize;
            (round3(values[i]), p as f64 / 100.0)
        })
        .collect()
}

/// Of lookups checked against the oracle, the fraction that found all the true k closest.
fn exact_rate(checked: &[&OpRecord]) -> f64 {
    rate(
        checked.iter().filter(|r| r.closest_ok()).count() as u64,
        checked.len() as u64,
    )
}

impl LookupSummary {
    fn of<'a>(recs: impl Iterator<Item = &'a OpRecord> + Clone) -> LookupSummary {
        let done: Vec<&OpRecord> = recs.clone().filter(|r| !r.aborted).collect();
        let ans: Vec<&OpRecord> = done.iter().copied().filter(|r| r.answered).collect();
        let checked: Vec<&OpRecord> = ans
            .iter()
            .copied()
            .filter(|r| r.closest_truth > 0)
            .collect();
        let mut lat: Vec<f64> = ans.iter().map(|r| r.latency_ns as f64 / MS).collect();
        let latency_cdf = cdf(&mut lat);
        let mut rounds_histogram = BTreeMap::new();
        let mut messages_histogram = BTreeMap::new();
        for r in &ans {
            *rounds_histogram.entry(r.rounds).or_insert(0) += 1;
            *messages_histogram.entry(r.messages).or_insert(0) += 1;
        }
        LookupSummary {
            started: recs.count() as u64,
            answered: ans.len() as u64,
            failed: (done.len() - ans.len()) as u64,
            aborted: 0,
            closest_success: exact_rate(&checked),
            closest_found_mean: if checked.is_empty() {
                0.0
            } else {
                round3(
                    checked
                        .iter()
                        .map(|r| f64::from(r.closest_found) / f64::from(r.closest_truth))
                        .sum::<f64>()
                        / checked.len() as f64,
                )
            },
            latency_ms: Percentiles::of(lat.iter().copied()),
            rounds: Percentiles::of(ans.iter().map(|r| f64::from(r.rounds))),
            rounds_histogram,
            messages: Percentiles::of(ans.iter().map(|r| f64::from(r.messages))),
            messages_histogram,
            timeouts: Percentiles::of(ans.iter().map(|r| f64::from(r.timeouts))),
            bytes: Percentiles::of(ans.iter().map(|r| r.bytes as f64)),
            latency_cdf,
            rtt_floor_ms: ms_percentiles(&checked, |r| r.rtt_floor_ns),
            closest_asked_ms: ms_percentiles(&ans, |r| r.closest_asked_ns),
            closest_bound_ms: ms_percentiles(&ans, |r| r.closest_bound_ns),
            by_departed: {
                let (some, none): (Vec<&OpRecord>, Vec<&OpRecord>) =
                    ans.iter().partition(|r| r.departed > 0);
                DepartedSplit {
                    none: SplitPart::of(&none),
                    some: SplitPart::of(&some),
                }
            },
        }
        .with_aborted(done.len())
    }

    fn with_aborted(mut self, done: usize) -> Self {
        self.aborted = self.started - done as u64;
        self
    }
}

/// A store followed by a read from another node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreSummary {
    /// The stores (announce / put): latency includes the store round.
    pub write: LookupSummary,
    /// Nodes that confirmed each store.
    pub stored_at: Percentiles,
    /// The reads (get_peers / get) from another random node.
    pub read: LookupSummary,
    /// Fraction of finished reads that found the announced peer / stored item.
    pub found: f64,
    /// Time to the first sight of the peer / item, ms.
    pub first_found_ms: Percentiles,
    /// Its CDF over the reads that found it: (ms, fraction) at each percent.
    #[serde(default)]
    pub first_found_cdf: Vec<(f64, f64)>,
}

impl StoreSummary {
    fn of(records: &[OpRecord], kind: OpKind) -> Option<StoreSummary> {
        let writes = records.iter().filter(|r| r.kind == kind && !r.read);
        let reads = records.iter().filter(|r| r.kind == kind && r.read);
        if writes.clone().next().is_none() && reads.clone().next().is_none() {
            return None;
        }
        let finished: Vec<&OpRecord> = reads.clone().filter(|r| !r.aborted).collect();
        let mut first_found: Vec<f64> = finished
            .iter()
            .filter_map(|r| r.first_found_ns)
            .map(|t| t as f64 / MS)
            .collect();
        Some(StoreSummary {
            write: LookupSummary::of(writes.clone()),
            stored_at: Percentiles::of(
                writes
                    .filter(|r| !r.aborted && r.answered)
                    .map(|r| f64::from(r.stored_at)),
            ),
            read: LookupSummary::of(reads),
            found: rate(
                finished
                    .iter()
                    .filter(|r| r.target_found == Some(true))
                    .count() as u64,
                finished.len() as u64,
            ),
            first_found_ms: Percentiles::of(first_found.iter().copied()),
            first_found_cdf: cdf(&mut first_found),
        })
    }
}

/// Lookups in one bin of the workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Start of the bin, seconds after the workload began.
    pub start_s: u64,
    /// Nodes online at the start of the bin.
    pub online: u64,
    /// Lookups started in the bin that finished.
    pub lookups: u64,
    /// Fraction of them that found the true k closest.
    pub closest_success: f64,
    /// Median latency in the bin (ms).
    pub latency_p50_ms: f64,
}

/// The network as built and as it ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkSummary {
    /// Nodes asked for.
    pub nodes: u64,
    /// Hosts ever created (nodes plus arrivals).
    pub hosts: u64,
    /// Online at the end.
    pub online_end: u64,
    /// Behind NAT.
    pub nat: u64,
    /// Adversaries and sybils.
    pub adversaries: u64,
    /// Sessions started.
    pub joins: u64,
    /// Sessions ended.
    pub departures: u64,
    /// Nodes that came back with their old id.
    pub returns: u64,
    /// New nodes during the workload.
    pub arrivals: u64,
    /// Bootstrap durations (ms).
    pub bootstrap_ms: Percentiles,
    /// Bootstraps that got no answer.
    pub bootstrap_failed: u64,
    /// Virtual seconds the waves took.
    pub build_virtual_s: f64,
    /// Virtual seconds in all.
    pub virtual_s: f64,
    /// Mean routing-table members per online node at the end.
    pub table_members_mean: f64,
    /// Mean replacement-cache entries per online node.
    pub table_cache_mean: f64,
    /// Mean buckets per online node.
    pub table_buckets_mean: f64,
    /// RTT of the link from each online node to each of its routing-table members at the
    /// end (ms).
    pub member_rtt_ms: Percentiles,
    /// The same members by depth: how many a node keeps, and how far they are, at each
    /// count of leading id bits shared with the node (bucket by bucket, where the overall
    /// median can hide wide far buckets of random contacts behind fast deeper ones).
    #[serde(default)]
    pub members_by_depth: Vec<DepthMembers>,
    /// Mean peers stored per online node.
    pub stored_peers_mean: f64,
    /// Events processed.
    pub events: u64,
    /// What the true closest nodes that lookups missed were.
    pub lookup_misses: MissCounts,
}

/// Routing-table members at one depth: members whose id shares `depth` leading bits with
/// their node's id (the last entry, [`DEPTH_GROUPED`], counts that many or more).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DepthMembers {
    /// Leading id bits shared with the node.
    pub depth: u32,
    /// Mean members at this depth per online node.
    pub per_node: f64,
    /// RTT of the link from the node to each such member (ms).
    pub rtt_ms: Percentiles,
}

/// Members sharing this many leading bits with their node or more are counted together in
/// [`NetworkSummary::members_by_depth`].
pub const DEPTH_GROUPED: u32 = 24;

/// The true closest nodes that get_peers lookups of random targets did not return, by what
/// they were when the lookup ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MissCounts {
    /// True closest nodes missed, over all lookups.
    pub missed: u64,
    /// Of those, online for less than 10 s (since they came online, bootstrap included).
    pub online_under_10s: u64,
    /// Online for 10 to 60 s.
    pub online_10_to_60s: u64,
    /// Online for more than 60 s.
    pub online_over_60s: u64,
    /// Came back with their old id and state (churn).
    pub returned: u64,
    /// New nodes that arrived during the workload.
    pub arrived: u64,
    /// In the routing table (as members) of none of the other true closest nodes.
    pub known_to_no_neighbour: u64,
    /// Sum of the link model's RTT from the asker to the missed node (ms), for the mean.
    pub rtt_to_asker_ms_sum: u64,
    /// Missed nodes more than 300 ms away from the asker (link model RTT, before jitter).
    pub rtt_to_asker_over_300ms: u64,
    /// The true closest nodes that the same lookups found.
    pub found_alongside: u64,
    /// Of those, more than 300 ms away from the asker.
    pub found_rtt_over_300ms: u64,
}

/// Datagrams of the workload phase (from its start to the end of the run), by kind, and the
/// departed nodes the measured lookups asked. Written to `report.md` only (not to
/// `summary.json`, so that summaries of earlier trees stay comparable byte for byte).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadTraffic {
    /// Virtual time the counts cover (ns): the workload's start to the end of the run.
    pub span_ns: u64,
    /// Datagrams sent.
    pub datagrams: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Queries sent: ping.
    pub ping: u64,
    /// Queries sent: find_node.
    pub find_node: u64,
    /// Queries sent: get_peers.
    pub get_peers: u64,
    /// Queries sent: any other kind.
    pub other_queries: u64,
    /// Distinct (measured lookup, node) pairs where the lookup asked a node that had left
    /// the network.
    pub lookup_departed_asked: u64,
    /// Measured lookups that asked at least one node that had left the network.
    pub lookups_meeting_departed: u64,
}

/// The engine's own counters, summed over every node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineCounters {
    /// Requests that timed out.
    pub timeouts: u64,
    /// Responses received.
    pub responses_in: u64,
    /// Dropped: over the per-source rate limit.
    pub drop_rate_limited: u64,
    /// Not sent: outgoing budget or in-flight cap.
    pub drop_outgoing_budget: u64,
    /// Dropped: transmit queue full.
    pub drop_transmit_queue_full: u64,
    /// Responses matching no request (late, after a timeout).
    pub drop_unexpected_response: u64,
    /// Undecodable.
    pub drop_malformed: u64,
    /// Events dropped (queue full).
    pub drop_events: u64,
    /// Bootstraps started again by nodes left with no usable contact.
    pub rebootstraps: u64,
    /// Candidates asked past `lookup_attempts` by patient lookups that answered.
    pub late_answers: u64,
    /// Candidates asked past `lookup_attempts` by patient lookups that never answered.
    pub late_silences: u64,
    /// Times a node took itself for unreachable and acted read-only.
    pub unreachable_spells: u64,
}

/// One check of [`crate::Expectations`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// The bound.
    pub bound: f64,
    /// Whether it held.
    pub passed: bool,
}

/// The deterministic summary of a run: the same scenario and seed give byte-identical JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The scenario that ran.
    pub scenario: Scenario,
    /// The network.
    pub network: NetworkSummary,
    /// Datagrams.
    pub traffic: TrafficCounts,
    /// Engine counters.
    pub engine: EngineCounters,
    /// get_peers lookups of random targets.
    pub lookups: LookupSummary,
    /// Announce then get_peers.
    pub announces: Option<StoreSummary>,
    /// BEP 44 put then get.
    pub puts: Option<StoreSummary>,
    /// Announce then get_peers on the eclipsed info-hash.
    pub eclipse: Option<StoreSummary>,
    /// Lookups by start time (churn, partitions).
    pub over_time: Vec<Bin>,
    /// Analytic rounds: log2 N / (1 + log2(k + 1)).
    pub analytic_rounds: f64,
    /// The expectations checked.
    pub checks: Vec<Check>,
    /// Workload-phase traffic and departed nodes asked (`report.md` only).
    #[serde(skip)]
    pub workload_traffic: WorkloadTraffic,
    /// Every operation of the workload, in the order they finished (`ops.csv` only: the
    /// summary holds their distributions).
    #[serde(skip)]
    pub records: Vec<OpRecord>,
}

impl OpKind {
    /// The name used in `ops.csv` and the summary.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Lookup => "lookup",
            OpKind::Announce => "announce",
            OpKind::Put => "put",
            OpKind::Eclipse => "eclipse",
        }
    }
}

/// The header of [`Report::ops_csv`].
pub const OPS_CSV_HEADER: &str = "kind,phase,start_ms,latency_ms,rounds,queries,timeouts,bytes,closest_found,closest_truth,exact,rtt_floor_ms,closest_asked_ms,closest_bound_ms,departed_asked,target_found,first_found_ms,stored_at,answered,aborted";

impl Report {
    /// Every operation as CSV, one row each (header [`OPS_CSV_HEADER`]): for looking into
    /// the tails the summary only counts. Times in ms of virtual time, the start counted
    /// from the beginning of the workload; empty cells where a field does not apply.
    pub fn ops_csv(&self) -> String {
        use std::fmt::Write as _;
        let ms = |ns: u64| format!("{:.3}", ns as f64 / MS);
        let opt = |v: Option<String>| v.unwrap_or_default();
        let mut o = String::with_capacity(64 + self.records.len() * 96);
        o.push_str(OPS_CSV_HEADER);
        o.push('\n');
        for r in &self.records {
            let _ = writeln!(
                o,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.kind.name(),
                if r.read { "read" } else { "write" },
                ms(r.start_ns),
                ms(r.latency_ns),
                r.rounds,
                r.messages,
                r.timeouts,
                r.bytes,
                r.closest_found,
                r.closest_truth,
                u8::from(r.closest_ok()),
                opt(r.rtt_floor_ns.map(ms)),
                opt(r.closest_asked_ns.map(ms)),
                opt(r.closest_bound_ns.map(ms)),
                r.departed,
                opt(r.target_found.map(|f| u8::from(f).to_string())),
                opt(r.first_found_ns.map(ms)),
                r.stored_at,
                u8::from(r.answered),
                u8::from(r.aborted),
            );
        }
        o
    }

    /// Summarises a finished simulation.
    pub fn from_simulation(sim: &Simulation) -> Report {
        let sc = sim.scenario().clone();
        let recs = sim.records();
        let lookups = LookupSummary::of(recs.iter().filter(|r| r.kind == OpKind::Lookup));
        let (boots, boot_failed) = sim.bootstraps();
        let (hosts, online, nat, adv) = sim.host_counts();
        let (members, cache, buckets, peers) = sim.table_means();
        let (member_rtt_ms, members_by_depth) = sim.member_rtts();
        let t = sim.totals();
        let e = sim.engine_stats();
        let bin_ns = sc.workload.bin_s * 1_000_000_000;
        let mut over_time = Vec::new();
        for &(at, online, _) in sim.samples() {
            let start = at - sim.workload_start();
            let in_bin: Vec<&OpRecord> = recs
                .iter()
                .filter(|r| {
                    r.kind == OpKind::Lookup
                        && !r.aborted
                        && r.answered
                        && r.start_ns >= start
                        && r.start_ns < start + bin_ns
                })
                .collect();
            if in_bin.is_empty() && start >= sc.workload.duration_s * 1_000_000_000 {
                continue;
            }
            let checked: Vec<&&OpRecord> = in_bin.iter().filter(|r| r.closest_truth > 0).collect();
            over_time.push(Bin {
                start_s: start / 1_000_000_000,
                online,
                lookups: in_bin.len() as u64,
                closest_success: rate(
                    checked.iter().filter(|r| r.closest_ok()).count() as u64,
                    checked.len() as u64,
                ),
                latency_p50_ms: Percentiles::of(in_bin.iter().map(|r| r.latency_ns as f64 / MS))
                    .p50,
            });
        }
        let k = sc.engine.node_config().lookup_closest as f64;
        let n = sc.nodes.max(2) as f64;
        let mut report = Report {
            network: NetworkSummary {
                nodes: sc.nodes as u64,
                hosts: hosts as u64,
                online_end: online as u64,
                nat: nat as u64,
                adversaries: adv as u64,
                joins: t.joins,
                departures: t.departures,
                returns: t.returns,
                arrivals: t.arrivals,
                bootstrap_ms: Percentiles::of(boots.iter().map(|&b| b as f64 / MS)),
                bootstrap_failed: boot_failed,
                build_virtual_s: round3(t.build_virtual_ns as f64 / NS),
                virtual_s: round3(t.virtual_ns as f64 / NS),
                table_members_mean: round3(members),
                table_cache_mean: round3(cache),
                table_buckets_mean: round3(buckets),
                member_rtt_ms,
                members_by_depth,
                stored_peers_mean: round3(peers),
                events: t.events,
                lookup_misses: sim.misses().clone(),
            },
            traffic: sim.traffic().clone(),
            engine: EngineCounters {
                timeouts: e.timeouts,
                responses_in: e.responses_in,
                drop_rate_limited: e.drops.rate_limited,
                drop_outgoing_budget: e.drops.outgoing_budget,
                drop_transmit_queue_full: e.drops.transmit_queue_full,
                drop_unexpected_response: e.drops.unexpected_response,
                drop_malformed: e.drops.malformed,
                drop_events: e.drops.events,
                rebootstraps: e.rebootstraps,
                late_answers: e.late_answers,
                late_silences: e.late_silences,
                unreachable_spells: e.unreachable_spells,
            },
            lookups,
            announces: StoreSummary::of(recs, OpKind::Announce),
            puts: StoreSummary::of(recs, OpKind::Put),
            eclipse: StoreSummary::of(recs, OpKind::Eclipse),
            over_time,
            analytic_rounds: round3(n.log2() / (1.0 + (k + 1.0).log2())),
            checks: Vec::new(),
            workload_traffic: sim.workload_traffic(),
            records: recs.to_vec(),
            scenario: sc,
        };
        report.checks = report.evaluate();
        report
    }

    fn evaluate(&self) -> Vec<Check> {
        let x = &self.scenario.expect;
        let mut out = Vec::new();
        let mut min = |name: &str, value: f64, bound: Option<f64>| {
            if let Some(b) = bound {
                out.push(Check {
                    name: format!("{name} >= {b}"),
                    value,
                    bound: b,
                    passed: value >= b,
                });
            }
        };
        min(
            "lookups.closest_success",
            self.lookups.closest_success,
            x.lookup_success_min,
        );
        min(
            "announces.found",
            self.announces.as_ref().map_or(0.0, |a| a.found),
            x.announce_found_min,
        );
        min(
            "puts.found",
            self.puts.as_ref().map_or(0.0, |a| a.found),
            x.put_found_min,
        );
        // A bound on percentiles without samples (no lookup, no announce, no read that found
        // its peer) cannot hold: it fails, named so.
        let mut max = |name: &str, of: Option<&Percentiles>, at: fn(&Percentiles) -> f64, bound| {
            if let Some(b) = bound {
                out.push(match of.filter(|p| p.count > 0).map(at) {
                    Some(value) => Check {
                        name: format!("{name} <= {b}"),
                        value,
                        bound: b,
                        passed: value <= b,
                    },
                    None => Check {
                        name: format!("{name} <= {b}: no samples"),
                        value: 0.0,
                        bound: b,
                        passed: false,
                    },
                });
            }
        };
        let lookups = Some(&self.lookups.latency_ms);
        max(
            "lookups.latency_ms.p50",
            lookups,
            |p| p.p50,
            x.lookup_p50_max_ms,
        );
        max(
            "lookups.latency_ms.p99",
            lookups,
            |p| p.p99,
            x.lookup_p99_max_ms,
        );
        let announces = self.announces.as_ref();
        let (write, first) = (
            announces.map(|a| &a.write.latency_ms),
            announces.map(|a| &a.first_found_ms),
        );
        max(
            "announces.write.latency_ms.p50",
            write,
            |p| p.p50,
            x.announce_p50_max_ms,
        );
        max(
            "announces.first_found_ms.p50",
            first,
            |p| p.p50,
            x.first_peer_p50_max_ms,
        );
        max(
            "announces.first_found_ms.p99",
            first,
            |p| p.p99,
            x.first_peer_p99_max_ms,
        );
        out
    }

    /// True when every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The JSON summary (pretty, stable field order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The command that reproduces this run (from a checkout, `cargo run --release -p xorro
    /// --` in place of `xorro`).
    pub fn reproduce_command(&self) -> String {
        let mut cmd = String::from("xorro sim");
        for o in self.scenario.overrides() {
            cmd.push_str(&format!(" '{o}'"));
        }
        cmd
    }

    /// What a finished run prints: lookups against the oracle, announces, puts, an eclipse,
    /// then the wall time and memory of `info`, one line each.
    pub fn headline(&self, info: &RunInfo) -> String {
        let l = &self.lookups;
        let mut text = format!(
            "{} nodes: lookups {} ok {:.2} % of true {} closest; latency p50 {:.0} ms p90 {:.0} ms p99 {:.0} ms; rounds {:.2} (analytic {:.2}); {:.1} queries, {:.0} bytes per lookup\n",
            self.network.nodes,
            l.answered,
            l.closest_success * 100.0,
            self.scenario.engine.node_config().lookup_closest,
            l.latency_ms.p50,
            l.latency_ms.p90,
            l.latency_ms.p99,
            l.rounds.mean,
            self.analytic_rounds,
            l.messages.mean,
            l.bytes.mean
        );
        if let Some(a) = &self.announces {
            text += &format!(
                "announce p50 {:.0} ms p99 {:.0} ms; peer found by get_peers elsewhere {:.2} %, first after p50 {:.0} ms p99 {:.0} ms\n",
                a.write.latency_ms.p50,
                a.write.latency_ms.p99,
                a.found * 100.0,
                a.first_found_ms.p50,
                a.first_found_ms.p99
            );
        }
        if let Some(p) = &self.puts {
            text += &format!(
                "put p50 {:.0} ms; item found by get elsewhere {:.2} %\n",
                p.write.latency_ms.p50,
                p.found * 100.0
            );
        }
        if let Some(e) = &self.eclipse {
            text += &format!("eclipsed info-hash: peer found {:.2} %\n", e.found * 100.0);
        }
        text += &format!(
            "wall {:.1} s (build {:.1} s), {:.0} events/s, peak RSS {:.2} GB, {:.0} bytes/node built\n",
            info.wall_total_s,
            info.wall_build_s,
            info.events_per_s,
            info.peak_rss_bytes as f64 / 1e9,
            info.bytes_per_node,
        );
        text += &format!("engine bytes per node built: {}", info.node_memory_built);
        text
    }

    /// A message for a failed run: which checks failed, the seed and the command.
    pub fn failure_message(&self) -> Option<String> {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("  {} (measured {})", c.name, c.value))
            .collect();
        if failed.is_empty() {
            return None;
        }
        Some(format!(
            "simulation checks failed (seed {}):\n{}\nreproduce with:\n  {}",
            self.scenario.seed,
            failed.join("\n"),
            self.reproduce_command()
        ))
    }
}

/// Measurements of the run that depend on the machine (kept out of the [`Report`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Wall seconds to build the network (waves and settling).
    pub wall_build_s: f64,
    /// Wall seconds of the workload.
    pub wall_workload_s: f64,
    /// Wall seconds in all.
    pub wall_total_s: f64,
    /// Events per wall second.
    pub events_per_s: f64,
    /// Peak resident memory (VmHWM), bytes; 0 where /proc is not available.
    pub peak_rss_bytes: u64,
    /// Resident memory before the run, bytes.
    pub rss_before_bytes: u64,
    /// Resident memory once the network was built, bytes.
    pub rss_built_bytes: u64,
    /// (RSS once built − RSS before) / nodes.
    pub bytes_per_node: f64,
    /// `size_of::<xorro_dht::Node>()`.
    pub node_struct_bytes: u64,
    /// Engine memory per online node once built, by part ([`xorro_dht::Node::memory_usage`],
    /// mean over the online nodes).
    pub node_memory_built: NodeMemory,
}

/// Mean bytes per node by part of the engine (see [`xorro_dht::MemoryUsage`]), plus what the
/// simulator keeps per host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeMemory {
    /// The `Node` struct itself.
    pub node: f64,
    /// Routing tables.
    pub routing: f64,
    /// Per-source rate limiter.
    pub limiter: f64,
    /// Peer and item stores.
    pub stores: f64,
    /// Requests in flight.
    pub requests: f64,
    /// Running lookups.
    pub lookups: f64,
    /// Queues and scratch buffers.
    pub buffers: f64,
    /// Sum of the engine's parts.
    pub engine_total: f64,
    /// The simulator's own state per host (host record, link coordinates, oracle entry), by
    /// size.
    pub simulator: f64,
}

impl std::fmt::Display for NodeMemory {
    /// The parts, the engine's total and the simulator's share, in bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {:.0}, routing {:.0}, limiter {:.0}, stores {:.0}, requests {:.0}, lookups {:.0}, buffers {:.0}; total {:.0} bytes; simulator per host {:.0} bytes",
            self.node,
            self.routing,
            self.limiter,
            self.stores,
            self.requests,
            self.lookups,
            self.buffers,
            self.engine_total,
            self.simulator
        )
    }
}

/// Reads a field of /proc/self/status in bytes (Linux); 0 elsewhere.
pub fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
