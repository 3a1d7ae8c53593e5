//! What to simulate: a [`Scenario`], read from TOML or built from defaults and overrides.
//!
//! Every field has a default, so a TOML file names only what differs:
//!
//! ```toml
//! seed = 7
//! nodes = 10000
//!
//! [workload]
//! lookups = 1000
//! announces = 100
//!
//! [churn]
//! enabled = true
//!
//! [link]
//! loss = 0.01
//! ```
//!
//! The same dotted names work as command-line overrides ([`Scenario::set`]): `link.loss=0.01`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a scenario could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The TOML text does not parse or does not match the scenario's fields.
    #[error("scenario does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    /// A scenario file (the path) cannot be read.
    #[error("cannot read the file: {1}")]
    Read(String, std::io::Error),
    /// An override is not of the form `dotted.name=value`, or names no field.
    #[error("bad override {0:?}: {1}")]
    Override(String, String),
    /// A value is out of its range.
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

/// A whole simulation: the network, its faults, the work done on it and what must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// A name for reports.
    pub name: String,
    /// The one seed every random choice derives from.
    pub seed: u64,
    /// Nodes in the network once it is built (before churn).
    pub nodes: usize,
    /// How the network is built.
    pub build: BuildConfig,
    /// Latency, loss, NAT and partitions.
    pub link: LinkConfig,
    /// Sessions, departures, arrivals and returns.
    pub churn: ChurnConfig,
    /// Misbehaving nodes.
    pub adversary: AdversaryConfig,
    /// Operations run once the network is built and checked against the oracle.
    pub workload: WorkloadConfig,
    /// The engine's settings (only what a scenario usually varies; the rest are the
    /// defaults of `xorro_dht::Config`).
    pub engine: EngineConfig,
    /// What must hold for the run to pass.
    pub expect: Expectations,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "default".into(),
            seed: 1,
            nodes: 1000,
            build: BuildConfig::default(),
            link: LinkConfig::default(),
            churn: ChurnConfig::default(),
            adversary: AdversaryConfig::default(),
            workload: WorkloadConfig::default(),
            engine: EngineConfig::default(),
            expect: Expectations::default(),
        }
    }
}

/// How the network is built ([`BuildConfig::mode`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildMode {
    /// Every node joins through the real protocol: nodes join in waves, each wave
    /// bootstrapping concurrently (in virtual time) from random nodes that joined before.
    /// The default, and the mode of the CI scenario.
    #[default]
    Protocol,
    /// A warm start, for scale runs: every node starts at once through the engine's public
    /// persistence path (`Node::restore`, as a restarting node does) with a saved table the
    /// simulator draws from the oracle as a converged bootstrap would find it: for each
    /// bucket (shared-prefix length with the node's id), random live nodes of that bucket's
    /// id range (`restore_contacts_per_bucket`, at most the bucket's size). The nodes start
    /// at random instants over `wave_spread_ms`; their contacts start questionable, as
    /// restored contacts do, and each node does what the daemon does with a saved table: it
    /// pings every contact and bootstraps from the table (a lookup of its own id). The
    /// network then settles through the real protocol for `settle_s` (maintenance refreshes
    /// the buckets). The workload runs through the real codec and engine as in the other
    /// mode. Not a protocol shortcut in the engine, but not
    /// a test of joining either: bootstrap latencies are not measured in this mode.
    Restore,
    /// A network that has been running, for the largest runs: every node starts as in
    /// [`BuildMode::Restore`] (through `Node::restore`, at a random instant of
    /// `wave_spread_ms`, with contacts drawn from the oracle), but with the table of a node
    /// that has been up a while: each contact answered it just now
    /// (`SavedContact::answered_ago` zero) and has the RTT of its link as its smoothed RTT.
    /// Such contacts come back good, so the node neither pings them nor bootstraps: there is
    /// no joining traffic at all. From then on everything is the real protocol through the
    /// real codec: maintenance (near members are pinged once silent for a minute, every
    /// member once questionable), churn (arrivals join through the protocol), the workload.
    /// It tests neither joining nor a restart, and its tables are drawn, not grown by
    /// traffic (k a bucket, no waiting contacts at the start): read its figures as those of
    /// a network in steady state. Bootstrap latencies are only measured for arrivals.
    Warm,
}

impl BuildMode {
    fn is_protocol(&self) -> bool {
        *self == BuildMode::Protocol
    }
}

/// How the network is built: by default nodes join in waves through the real protocol
/// ([`BuildMode`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildConfig {
    /// Protocol build (default) or warm start from oracle-drawn tables. Left out of the
    /// written scenario when it is the default.
    #[serde(skip_serializing_if = "BuildMode::is_protocol")]
    pub mode: BuildMode,
    /// Each wave adds this many times the nodes already joined (1.0 doubles the network).
    pub wave_growth: f64,
    /// Largest wave, in nodes (bounds the burst of traffic, and of memory: every joining
    /// node runs its bootstrap and bucket-refresh lookups at once, and the heap they leave
    /// behind when done stays with the process). 10,000 by default: at 10^5 nodes it took
    /// the peak from 3.71 to 2.97 GB and the build from 780 to 595 s of wall time against
    /// waves of up to 50,000, with the same lookup figures (docs/SIMULATION.md, "Scale").
    pub wave_max: usize,
    /// The joins of one wave are spread uniformly over this long (milliseconds).
    pub wave_spread_ms: u64,
    /// Contacts each joining node is given (random nodes that joined before).
    pub bootstrap_contacts: usize,
    /// After the last wave, time to let maintenance run before the workload (seconds).
    pub settle_s: u64,
    /// [`BuildMode::Restore`] and [`BuildMode::Warm`]: contacts restored per bucket, at most
    /// the bucket's size (the default, k = 8, fills the engine's default buckets and leaves
    /// wide far buckets, when `engine.bucket_sizes_far` asks for them, to fill through
    /// traffic, as a bootstrap does). Left out of the written scenario in the protocol
    /// build.
    #[serde(skip_serializing_if = "is_default_per_bucket")]
    pub restore_contacts_per_bucket: usize,
    /// [`BuildMode::Restore`] and [`BuildMode::Warm`]: each bucket's contacts are the
    /// fastest (by the RTT of their link) of this many times as many random candidates of
    /// its range, one per slot first (the bits after the bucket's prefix, as
    /// `engine.prefer_low_rtt` keeps them): the table of a node that has measured that
    /// many candidates and kept the fastest. 1 (the default): random contacts. Written out
    /// only when set.
    #[serde(skip_serializing_if = "is_one")]
    pub warm_fastest_of: usize,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_default_per_bucket(n: &usize) -> bool {
    *n == xorro_dht::K
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            mode: BuildMode::Protocol,
            wave_growth: 1.0,
            wave_max: 10_000,
            wave_spread_ms: 5_000,
            bootstrap_contacts: 3,
            settle_s: 60,
            restore_contacts_per_bucket: xorro_dht::K,
            warm_fastest_of: 1,
        }
    }
}

/// The link model (see [`crate::link`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// Median round-trip time over random pairs of nodes (milliseconds); coordinates are
    /// scaled to give it.
    pub rtt_median_ms: f64,
    /// Spread (σ of the log) of the per-node access delay; larger gives a longer tail.
    pub access_sigma: f64,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Fraction of nodes behind NAT: they can send, and receive only from addresses they
    /// sent to within `nat_timeout_s`.
    pub nat_fraction: f64,
    /// How long a NAT keeps a mapping open after the last packet out (seconds).
    pub nat_timeout_s: u64,
    /// The nodes behind NAT run read-only (BEP 43, `xorro node --read-only`), as a node
    /// that knows it cannot be reached should: the others then keep them out of their
    /// tables and never wait for them. Written out only when set.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nat_read_only: bool,
    /// Network partitions.
    pub partitions: Vec<PartitionConfig>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            rtt_median_ms: 100.0,
            access_sigma: 1.6,
            loss: 0.0,
            nat_fraction: 0.0,
            nat_timeout_s: 60,
            nat_read_only: false,
            partitions: Vec::new(),
        }
    }
}

/// A partition: for a while, a fraction of the nodes cannot exchange datagrams with the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PartitionConfig {
    /// Start, in seconds after the workload begins.
    pub start_s: u64,
    /// Duration in seconds.
    pub duration_s: u64,
    /// Fraction of the nodes on the cut-off side.
    pub fraction: f64,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            start_s: 60,
            duration_s: 120,
            fraction: 0.3,
        }
    }
}

/// Churn during the workload (and the settle, if asked): each node's session length is
/// Weibull distributed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChurnConfig {
    /// Whether nodes leave and arrive at all.
    pub enabled: bool,
    /// Weibull shape k (< 1: heavy tail; measured Mainline sessions fit 0.4–0.6).
    pub weibull_shape: f64,
    /// Median session length in seconds (half the nodes gone after this long).
    pub session_median_s: f64,
    /// Fraction of departing nodes that come back later with their old id and state.
    pub rejoin_fraction: f64,
    /// Mean time a returning node stays away (seconds, exponential).
    pub offline_mean_s: f64,
    /// Mean delay before a departing node that does not return is replaced by a new one
    /// (seconds, exponential); keeps the population near `nodes`.
    pub arrival_delay_mean_s: f64,
    /// What is left of the sessions of the nodes online when churn begins.
    pub start: ChurnStart,
    /// Whether churn begins when the built network starts to settle (`build.settle_s`)
    /// rather than with the workload: the workload then meets tables that have lived
    /// through the departures, returns and arrivals of a running network, not tables
    /// grown among nodes that all stayed. Off by default (left out of the written
    /// scenario when off).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub during_settle: bool,
}

/// The sessions of the nodes online when churn begins ([`ChurnConfig::start`]). Nodes that
/// arrive or come back later always start a whole new session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChurnStart {
    /// The network has been running for a while: each node is at a random point of a
    /// session, drawn from the equilibrium of the session distribution (long sessions are
    /// more likely to be under way, and a node that has stayed long is likely to stay). With
    /// the default sessions, 0.9 % of the nodes leave within five minutes, the rate at which
    /// a network of that size keeps losing nodes.
    #[default]
    Equilibrium,
    /// Every node has just arrived: each starts a whole session, as if the whole network had
    /// joined at once (a flash crowd). With the default sessions, 13 % of the nodes leave
    /// within five minutes, since with a shape under 1 most departures come early in a
    /// session; this was the only model before 5 Dec 2026.
    Fresh,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        ChurnConfig {
            enabled: false,
            weibull_shape: 0.5,
            session_median_s: 7200.0,
            rejoin_fraction: 0.5,
            offline_mean_s: 300.0,
            arrival_delay_mean_s: 30.0,
            start: ChurnStart::Equilibrium,
            during_settle: false,
        }
    }
}

/// How adversarial nodes misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Behavior {
    /// Never answer queries.
    Drop,
    /// Answer with random far nodes and never with peers or items.
    WrongNodes,
    /// Answer with made-up contacts whose ids are next to the target and whose addresses
    /// belong to other (maybe gone) nodes.
    SpoofIds,
}

/// Misbehaving nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdversaryConfig {
    /// Fraction of the nodes that misbehave.
    pub fraction: f64,
    /// How they misbehave.
    pub behavior: Behavior,
    /// Sybils placed around one info-hash that try to eclipse it: they answer queries for
    /// it with each other only and never with peers. 0 disables the attack. The workload's
    /// announces then include announce/get_peers pairs on the eclipsed info-hash.
    pub eclipse_sybils: usize,
}

impl Default for AdversaryConfig {
    fn default() -> Self {
        AdversaryConfig {
            fraction: 0.0,
            behavior: Behavior::Drop,
            eclipse_sybils: 0,
        }
    }
}

/// Operations run during the workload phase, at random times and from random live nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadConfig {
    /// get_peers lookups of random targets, checked against the true k closest.
    pub lookups: usize,
    /// Announces, each followed by a get_peers for the same info-hash from another node.
    pub announces: usize,
    /// BEP 44 immutable puts, each followed by a get from another node.
    pub puts: usize,
    /// The operations start uniformly over this long (seconds).
    pub duration_s: u64,
    /// Delay between a store (announce, put) finishing and the read from elsewhere (ms).
    pub read_delay_ms: u64,
    /// Width of the bins of the success-over-time series (seconds).
    pub bin_s: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            lookups: 1000,
            announces: 100,
            puts: 50,
            duration_s: 300,
            read_delay_ms: 1000,
            bin_s: 60,
        }
    }
}

/// The engine settings a scenario varies; everything else is `xorro_dht::Config::default()`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// α (`lookup_parallelism`); `None` keeps the engine default.
    pub lookup_parallelism: Option<usize>,
    /// `lookup_burst_after` (answers among the k closest after which the rest of them are
    /// asked at once, 0 = never); `None` keeps the engine default.
    pub lookup_burst_after: Option<usize>,
    /// `lookup_rtt_choice` (equally close candidates asked fastest first); `None` keeps the
    /// engine default.
    pub lookup_rtt_choice: Option<bool>,
    /// `lookup_soft_timeout` in ms; `None` keeps the engine default.
    pub lookup_soft_timeout_ms: Option<u64>,
    /// `request_timeout` in ms; `None` keeps the engine default.
    pub request_timeout_ms: Option<u64>,
    /// `lookup_attempts` (requests to one node before a lookup gives up on it); `None` keeps
    /// the engine default.
    pub lookup_attempts: Option<u8>,
    /// `routing.bucket_sizes_far` (farthest first); `None` keeps the engine default (none:
    /// every bucket k), `[128,64,32,16]` gives libtorrent's wide far buckets.
    pub bucket_sizes_far: Option<Vec<usize>>,
    /// `routing.replacement_cache_size`; `None` keeps the engine default.
    pub replacement_cache_size: Option<usize>,
    /// `rate_limit.tracked_ips_max`; `None` keeps the engine default.
    pub tracked_ips_max: Option<usize>,
    /// `routing.node_good_interval` in seconds; `None` keeps the engine default. Written out
    /// only when set (as are the knobs below), so that earlier summaries stay the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_good_interval_s: Option<u64>,
    /// `routing.node_ping_interval` in seconds (least time between two pings of one node);
    /// `None` keeps the engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_ping_interval_s: Option<u64>,
    /// `routing.near_buckets` (the buckets closest to our id, whose members are pinged once
    /// silent for `near_ping_interval_s`); `None` keeps the engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_buckets: Option<usize>,
    /// `routing.near_ping_interval` in seconds; `None` keeps the engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_ping_interval_s: Option<u64>,
    /// `routing.handout_ping_after` in seconds (a member handed out in an answer, silent for
    /// this long, is pinged; 0: off); `None` keeps the engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handout_ping_after_s: Option<u64>,
    /// `routing.answer_good_first` (answers hold good members first); `None` keeps the
    /// engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_good_first: Option<bool>,
    /// `routing.ping_failed_queriers` (a member that failed and then queries us is pinged);
    /// `None` keeps the engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_failed_queriers: Option<bool>,
    /// `routing.prefer_low_rtt` (a node that answers may take the place of a slower member
    /// of its full bucket); `None` keeps the engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefer_low_rtt: Option<bool>,
    /// `lookup_unknown_wait_min` in ms (the least soft timeout of a contact of unknown
    /// RTT; 0: the RTO alone); `None` keeps the engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup_unknown_wait_min_ms: Option<u64>,
    /// `lookup_resend_after` in ms (a request of a lookup's burst goes out a second time
    /// after this long unless answered; 0: off); `None` keeps the engine default (20 ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup_resend_after_ms: Option<u64>,
    /// `lookup_vouched_wait` in ms (the least soft timeout of the last attempt to a
    /// candidate named by one of its near neighbours, while late candidates answer; 0: off);
    /// `None` keeps the engine default (850 ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup_vouched_wait_ms: Option<u64>,
    /// `detect_unreachable` in seconds (a node no stranger queried for this long acts
    /// read-only; 0: off); `None` keeps the engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_unreachable_s: Option<u64>,
    /// `detect_unreachable_behind_nat` in seconds (the same wait, for a node that found its
    /// external address is not its own: the nodes behind NAT, whose own address the
    /// simulator gives as a private one; 0: off); `None` keeps the engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_unreachable_behind_nat_s: Option<u64>,
    /// `lookup_patient_attempts` (requests to a silent candidate while late answers are
    /// common; at most `lookup_attempts`: off); `None` keeps the engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup_patient_attempts: Option<u8>,
    /// `announce_quorum` (acknowledgements of the k closest at which an announce is
    /// reported); `None` keeps the engine default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce_quorum: Option<usize>,
}

impl EngineConfig {
    /// The node configuration these settings give (ids and seeds are set per node).
    pub fn node_config(&self) -> xorro_dht::Config {
        let mut c = xorro_dht::Config::default();
        if let Some(a) = self.lookup_parallelism {
            c.lookup_parallelism = a;
        }
        if let Some(n) = self.lookup_burst_after {
            c.lookup_burst_after = n;
        }
        if let Some(b) = self.lookup_rtt_choice {
            c.lookup_rtt_choice = b;
        }
        if let Some(ms) = self.lookup_soft_timeout_ms {
            c.lookup_soft_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.request_timeout_ms {
            c.request_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = self.lookup_attempts {
            c.lookup_attempts = n;
        }
        if let Some(far) = &self.bucket_sizes_far {
            c.routing.bucket_sizes_far = far.clone();
        }
        if let Some(n) = self.replacement_cache_size {
            c.routing.replacement_cache_size = n;
        }
        if let Some(n) = self.tracked_ips_max {
            c.rate_limit.tracked_ips_max = n;
        }
        if let Some(s) = self.node_good_interval_s {
            c.routing.node_good_interval = Duration::from_secs(s);
        }
        if let Some(s) = self.node_ping_interval_s {
            c.routing.node_ping_interval = Duration::from_secs(s);
        }
        if let Some(n) = self.near_buckets {
            c.routing.near_buckets = n;
        }
        if let Some(s) = self.near_ping_interval_s {
            c.routing.near_ping_interval = Duration::from_secs(s);
        }
        if let Some(s) = self.handout_ping_after_s {
            c.routing.handout_ping_after = Duration::from_secs(s);
        }
        if let Some(b) = self.answer_good_first {
            c.routing.answer_good_first = b;
        }
        if let Some(b) = self.ping_failed_queriers {
            c.routing.ping_failed_queriers = b;
        }
        if let Some(b) = self.prefer_low_rtt {
            c.routing.prefer_low_rtt = b;
        }
        if let Some(ms) = self.lookup_resend_after_ms {
            c.lookup_resend_after = Duration::from_millis(ms);
        }
        if let Some(ms) = self.lookup_unknown_wait_min_ms {
            c.lookup_unknown_wait_min = Duration::from_millis(ms);
        }
        if let Some(ms) = self.lookup_vouched_wait_ms {
            c.lookup_vouched_wait = Duration::from_millis(ms);
        }
        if let Some(s) = self.detect_unreachable_s {
            c.detect_unreachable = Duration::from_secs(s);
        }
        if let Some(s) = self.detect_unreachable_behind_nat_s {
            c.detect_unreachable_behind_nat = Duration::from_secs(s);
        }
        if let Some(n) = self.lookup_patient_attempts {
            c.lookup_patient_attempts = n;
        }
        if let Some(n) = self.announce_quorum {
            c.announce_quorum = n;
        }
        c
    }
}

/// Thresholds checked at the end of a run; a failed one prints the seed and the command.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Expectations {
    /// Least fraction of lookups that find all of the true k closest live nodes.
    pub lookup_success_min: Option<f64>,
    /// Least fraction of get_peers after an announce that find the announced peer.
    pub announce_found_min: Option<f64>,
    /// Least fraction of gets after a put that find the item.
    pub put_found_min: Option<f64>,
    /// Largest median lookup latency (ms).
    pub lookup_p50_max_ms: Option<f64>,
    /// Largest 99th percentile lookup latency (ms).
    pub lookup_p99_max_ms: Option<f64>,
    /// Largest median announce latency (ms): the search and the store acknowledged.
    pub announce_p50_max_ms: Option<f64>,
    /// Largest median time (ms) until a get_peers after an announce first holds the
    /// announced peer (`announces.first_found_ms`: what its caller waits for peers, which
    /// `Dht::get_peers` streams as they arrive). A bound on no samples fails.
    pub first_peer_p50_max_ms: Option<f64>,
    /// Largest 99th percentile of the same (ms).
    pub first_peer_p99_max_ms: Option<f64>,
}

impl Scenario {
    /// Reads a scenario from TOML text (missing fields take their defaults).
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    /// Reads a scenario file (TOML, see [`Scenario::from_toml`]).
    pub fn from_file(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::Read(path.display().to_string(), e))?;
        Scenario::from_toml(&text)
    }

    /// The scenario as TOML text (every field), which [`Scenario::from_toml`] reads back.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"))
    }

    /// Applies one override in its command-line form, `dotted.name=value` (see
    /// [`Scenario::set`]).
    pub fn apply(&mut self, override_: &str) -> Result<(), ScenarioError> {
        let (key, value) = override_.split_once('=').ok_or_else(|| {
            ScenarioError::Override(override_.to_string(), "expected name=value".into())
        })?;
        self.set(key, value)
    }

    /// Sets one field by its dotted name from a TOML value: `set("link.loss", "0.01")`,
    /// `set("engine.bucket_sizes_far", "[128, 64]")`, `set("name", "\"x\"")` (a bare word
    /// is taken as a string).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ScenarioError> {
        let bad = |why: &str| ScenarioError::Override(format!("{key}={value}"), why.into());
        let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
            Ok(mut t) => t.remove("v").ok_or_else(|| bad("no value"))?,
            Err(_) => toml::Value::String(value.to_string()),
        };
        let mut root =
            toml::Value::try_from(&*self).map_err(|e| bad(&format!("cannot serialize: {e}")))?;
        let mut at = &mut root;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let table = at.as_table_mut().ok_or_else(|| bad("not a table"))?;
            if i + 1 == parts.len() {
                table.insert((*part).to_string(), parsed.clone());
                break;
            }
            at = table
                .entry((*part).to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        }
        let s: Scenario = root
            .try_into()
            .map_err(|e: toml::de::Error| bad(&e.to_string()))?;
        s.validate()?;
        *self = s;
        Ok(())
    }

    /// The fields that differ from [`Scenario::default`], as `name=value` overrides that
    /// [`Scenario::set`] accepts (what the reproduce command prints).
    pub fn overrides(&self) -> Vec<String> {
        let (Ok(mine), Ok(base)) = (
            toml::Value::try_from(self),
            toml::Value::try_from(Scenario::default()),
        ) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        diff("", &mine, Some(&base), &mut out);
        out
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: &str| Err(ScenarioError::Invalid(m.into()));
        let frac = |x: f64| (0.0..=1.0).contains(&x);
        if self.nodes == 0 || self.nodes > 16_000_000 {
            return bad("nodes must be in 1..=16,000,000");
        }
        if !frac(self.link.loss) || !frac(self.link.nat_fraction) || !frac(self.adversary.fraction)
        {
            return bad("loss, nat_fraction and adversary.fraction are in 0..=1");
        }
        if self.link.rtt_median_ms <= 0.0 || self.link.access_sigma < 0.0 {
            return bad("rtt_median_ms must be positive and access_sigma not negative");
        }
        if self.churn.weibull_shape <= 0.0 || self.churn.session_median_s <= 0.0 {
            return bad("weibull_shape and session_median_s must be positive");
        }
        if !frac(self.churn.rejoin_fraction) {
            return bad("rejoin_fraction is in 0..=1");
        }
        if self.build.wave_growth <= 0.0 || self.build.wave_max == 0 {
            return bad("wave_growth and wave_max must be positive");
        }
        if self.build.warm_fastest_of == 0 {
            return bad("build.warm_fastest_of must be at least 1 (1: random contacts)");
        }
        if self.build.mode != BuildMode::Protocol && self.adversary.eclipse_sybils > 0 {
            return bad(
                "build.mode = \"restore\" or \"warm\" does not place eclipse sybils: use the protocol build",
            );
        }
        if self.workload.bin_s == 0 {
            return bad("workload.bin_s must be positive");
        }
        if self.link.partitions.iter().any(|p| !frac(p.fraction)) {
            return bad("partition fractions are in 0..=1");
        }
        if self.engine.lookup_parallelism == Some(0) {
            return bad("lookup_parallelism must be at least 1");
        }
        Ok(())
    }
}

fn diff(prefix: &str, mine: &toml::Value, base: Option<&toml::Value>, out: &mut Vec<String>) {
    match (mine, base) {
        (toml::Value::Table(t), Some(toml::Value::Table(b))) => {
            for (k, v) in t {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                diff(&name, v, b.get(k), out);
            }
        }
        (v, b) if Some(v) != b => out.push(format!("{prefix}={}", inline(v))),
        _ => {}
    }
}

fn inline(v: &toml::Value) -> String {
    match v {
        toml::Value::Table(t) => {
            let parts: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        toml::Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(inline).collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_overrides() {
        let mut s = Scenario::from_toml("seed = 9\nnodes = 500\n[link]\nloss = 0.02\n").unwrap();
        assert_eq!((s.seed, s.nodes, s.link.loss), (9, 500, 0.02));
        s.set("churn.enabled", "true").unwrap();
        s.set("engine.bucket_sizes_far", "[128, 64]").unwrap();
        s.set("name", "ci").unwrap();
        assert!(s.churn.enabled);
        assert_eq!(s.engine.bucket_sizes_far, Some(vec![128, 64]));
        assert_eq!(Scenario::from_toml(&s.to_toml()).unwrap(), s);
        let mut again = Scenario::default();
        for o in s.overrides() {
            again.apply(&o).unwrap();
        }
        assert_eq!(again, s);
        assert!(again.apply("link.loss").is_err(), "no '='");
        again.apply("link.loss=0.03").unwrap();
        assert_eq!(again.link.loss, 0.03);
        assert!(s.set("link.nope", "1").is_err());
        assert!(s.set("link.loss", "2").is_err());
        assert!(s.set("build.warm_fastest_of", "0").is_err());
        assert!(s.set("build.warm_fastest_of", "4").is_ok());
    }

    #[test]
    fn routing_knobs_are_written_only_when_set() {
        let knobs = [
            "node_good_interval_s",
            "node_ping_interval_s",
            "near_buckets",
            "near_ping_interval_s",
            "handout_ping_after_s",
            "answer_good_first",
            "ping_failed_queriers",
            "prefer_low_rtt",
        ];
        let mut s = Scenario::default();
        let json = serde_json::to_string(&s).unwrap();
        let toml = s.to_toml();
        for k in knobs {
            assert!(!json.contains(k) && !toml.contains(k), "{k} written unset");
        }
        for (k, v) in [
            ("node_good_interval_s", "300"),
            ("node_ping_interval_s", "20"),
            ("near_buckets", "3"),
            ("near_ping_interval_s", "60"),
            ("handout_ping_after_s", "20"),
            ("answer_good_first", "true"),
            ("ping_failed_queriers", "true"),
            ("prefer_low_rtt", "true"),
        ] {
            s.set(&format!("engine.{k}"), v).unwrap();
        }
        let json = serde_json::to_string(&s).unwrap();
        for k in knobs {
            assert!(json.contains(k), "{k} not written");
        }
        assert_eq!(Scenario::from_toml(&s.to_toml()).unwrap(), s);
        let c = s.engine.node_config().routing;
        assert_eq!(c.node_good_interval, Duration::from_secs(300));
        assert_eq!(c.node_ping_interval, Duration::from_secs(20));
        assert_eq!(c.near_buckets, 3);
        assert_eq!(c.near_ping_interval, Duration::from_secs(60));
        assert_eq!(c.handout_ping_after, Duration::from_secs(20));
        assert!(c.answer_good_first && c.ping_failed_queriers && c.prefer_low_rtt);
    }
}
