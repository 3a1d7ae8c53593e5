//! # xorro-sim: a deterministic simulator of large Mainline DHT networks
//!
//! `xorro-sim` runs up to a million [`xorro_dht::Node`]s on one machine, in virtual time,
//! through the same sans-IO interface as the real runtime: `handle_datagram` /
//! `handle_timeout` / `start_*` in, `poll_transmit` / `poll_timeout` / `poll_event` out,
//! drained in that order after every input. There is no simulation-only protocol code: every
//! datagram is encoded by the node's real codec and decoded by the receiving node's.
//!
//! ## The model
//!
//! * **One event queue** ordered by (virtual time, sequence number), one virtual clock, one
//!   seed from which every random choice derives (separate ChaCha streams for the link,
//!   churn, placement and workload, and one seed per node session). The same [`Scenario`]
//!   gives a byte-identical [`Report`].
//! * **Link** ([`link`]): per-node coordinates in a latency plane around six regions plus a
//!   log-normal access delay, scaled so that the median RTT of random pairs is
//!   `link.rtt_median_ms` (100 ms by default, p99 past 400 ms); 10 % jitter; independent
//!   random loss; a fraction of nodes behind NAT (they receive only from addresses they sent
//!   to in the last `nat_timeout_s`; with `nat_read_only` they run BEP 43 read-only, as
//!   nodes that know they are unreachable); timed partitions that cut a fraction of nodes
//!   off.
//! * **Addresses**: node `i` is `20.0.0.0 + i`, port 6881: unique, public-looking IPv4
//!   addresses, so the engine's one-node-per-IP rule, per-IP rate limiter and outgoing
//!   budget all apply as on the internet. Each node is told its own address
//!   (`Node::set_local_ips`) as a driver reads it from its interface: the public one, or
//!   for a node behind NAT a private one (`10.0.0.0/8`), so that it finds itself behind
//!   NAT once the others report what they see (and then judges its reachability, see
//!   `Config::detect_unreachable_behind_nat`).
//! * **Building** ([`BuildMode`]): by default nodes join in waves (each wave as large as the
//!   network so far, capped), spread over a few seconds; each bootstraps through the real
//!   protocol from a few random nodes that joined before. Then maintenance runs for
//!   `build.settle_s`. For the largest runs, `build.mode = "warm"` starts every node with
//!   the table of a node that has been running (drawn from the oracle, through the engine's
//!   public [`xorro_dht::Node::restore`]), so there is no joining traffic: about a quarter of
//!   the events and 60 % of the peak memory, for lookups within a seed's noise of the protocol
//!   build at 10^4 and 10^5 (docs/SIMULATION.md, "Scale"). `"restore"` is a network
//!   restarting at once, each node pinging its saved contacts and bootstrapping as the
//!   daemon does.
//! * **Churn** ([`churn`]): during the workload each node's session is Weibull distributed
//!   (shape 0.5, median 2 h by default: half the nodes gone within two hours of arriving).
//!   The nodes online when the workload begins are at a random point of their sessions, as
//!   in a network that has been running for a while (`churn.start = "equilibrium"`: 0.9 %
//!   of them leave within five minutes), or, with `"fresh"`, all start whole sessions (13 %
//!   within five minutes, a flash crowd's churn; the CI scenario's stress). A departing
//!   node either comes back later with its old id, routing table and store
//!   ([`xorro_dht::Node::snapshot`] / [`xorro_dht::Node::restore`]) or is replaced by a new
//!   node with a new id and address. With `churn.during_settle = true` churn begins with the
//!   settle instead, so that a long settle grows the tables of a network that has been
//!   running under churn, not of one whose nodes all stayed.
//! * **Adversaries**: a fraction of nodes drop every query, answer with random far nodes, or
//!   answer with spoofed contacts (ids next to the target, addresses of other nodes); and
//!   optionally sybils placed next to one info-hash try to eclipse it. Adversaries run the
//!   real node; the simulator rewrites or drops their responses on the wire.
//! * **Workload**: get_peers lookups of random targets; announces each followed by a
//!   get_peers from another node; BEP 44 immutable puts each followed by a get.
//! * **Oracle** ([`oracle`]): the simulator knows every node that can answer (online, not
//!   behind NAT, not dropping queries) and checks each lookup's returned closest nodes
//!   against the true k closest, each read against what was written; it records latency,
//!   rounds, messages, timeouts and bytes.
//!
//! ## What it does not model
//!
//! IPv6 (every node is IPv4), bandwidth and queueing (a datagram's delay does not depend on
//! load), correlated loss, NAT types other than address-restricted cone, clock drift, CPU
//! limits of nodes, BEP 42 secure ids (enforcement is off by default in the engine), and
//! real-world client diversity (every node runs xorro-dht with the same configuration).
//! Messages are always passed as bytes: the engine has no pre-decoded input.
//!
//! ## Use
//!
//! ```no_run
//! let mut scenario = xorro_sim::Scenario::default();
//! scenario.nodes = 2000;
//! scenario.set("churn.enabled", "true").expect("a valid override");
//! let report = xorro_sim::run(&scenario);
//! println!("{}", report.to_json());
//! if let Some(msg) = report.failure_message() {
//!     eprintln!("{msg}");
//! }
//! xorro_sim::write_outputs(&report, None, std::path::Path::new("sim-out")).expect("writable");
//! ```

pub mod churn;
pub mod link;
pub mod oracle;
mod output;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod sweep;

use std::time::Instant;

pub use output::{OutputError, prepare_output_dir, write_outputs};
pub use report::{NodeMemory, OpKind, OpRecord, Progress, Report, RunInfo};
pub use scenario::{
    Behavior, BuildConfig, BuildMode, ChurnStart, Expectations, Scenario, ScenarioError,
};
pub use sim::Simulation;

/// The peak memory a run of `nodes` nodes built in `mode` with the default engine is
/// expected to take, in bytes: a projection from the measured headline runs
/// (docs/SIMULATION.md), whose routing tables grow with log N. With the routing records
/// of 44 bytes (5 Dec 2026, night): the protocol build (and the restore build, measured
/// close to it) peaks at 0.23 GB at 10^4 nodes and 2.37 GB at 10^5, each tenfold adding
/// ~2.3 KB a node; the warm build (no joining traffic, k contacts a bucket) at 0.145 GB at
/// 10^4, 1.44 GB at 10^5 and 14.66 GB at 10^6 (lookups over 60 s), ~0.9 KB a node a
/// tenfold (a line through the first and last).
/// Other engine settings or workloads can differ from it by tens of percent; it says
/// whether a machine can hold a run at all.
pub fn projected_peak_bytes(nodes: usize, mode: BuildMode) -> u64 {
    let (at_1e4, per_decade) = match mode {
        BuildMode::Protocol | BuildMode::Restore => (21_233.0, 2_291.0),
        BuildMode::Warm => (12_891.0, 878.0),
    };
    const BASE: f64 = 16e6;
    #[allow(clippy::cast_precision_loss)] // node counts are far below 2^52
    let n = nodes as f64;
    let per_node = at_1e4 + per_decade * (n / 1e4).log10().max(0.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // positive, < 2^64
    let bytes = (BASE + n * per_node) as u64;
    bytes
}

/// Runs `scenario` and summarises it.
pub fn run(scenario: &Scenario) -> Report {
    run_measured(scenario, &mut |_| {}).0
}

/// Runs `scenario`, reporting progress, and measures wall time and memory.
pub fn run_measured(scenario: &Scenario, progress: &mut dyn FnMut(&Progress)) -> (Report, RunInfo) {
    let rss_before = report::proc_status_bytes("VmRSS:");
    let t0 = Instant::now();
    let mut sim = Simulation::new(scenario);
    sim.build(progress);
    let built = t0.elapsed().as_secs_f64();
    let rss_built = report::proc_status_bytes("VmRSS:");
    let node_memory_built = sim.memory_means();
    sim.workload(progress);
    let total = t0.elapsed().as_secs_f64();
    let report = Report::from_simulation(&sim);
    let events = sim.totals().events as f64;
    let info = RunInfo {
        wall_build_s: built,
        wall_workload_s: total - built,
        wall_total_s: total,
        events_per_s: if total > 0.0 { events / total } else { 0.0 },
        peak_rss_bytes: report::proc_status_bytes("VmHWM:"),
        rss_before_bytes: rss_before,
        rss_built_bytes: rss_built,
        bytes_per_node: rss_built.saturating_sub(rss_before) as f64 / scenario.nodes.max(1) as f64,
        node_struct_bytes: std::mem::size_of::<xorro_dht::Node>() as u64,
        node_memory_built,
    };
    (report, info)
}

#[cfg(test)]
mod tests {
    use super::{BuildMode, projected_peak_bytes};

    #[test]
    fn peak_projection_matches_the_measured_runs() {
        let gb = |n, mode| projected_peak_bytes(n, mode) as f64 / 1e9;
        let protocol = |n| gb(n, BuildMode::Protocol);
        assert!(
            (protocol(10_000) - 0.228).abs() < 0.01,
            "{}",
            protocol(10_000)
        );
        assert!(
            (protocol(100_000) - 2.368).abs() < 0.05,
            "{}",
            protocol(100_000)
        );
        assert!(
            protocol(1_000_000) > 24.0,
            "10^6 does not fit this machine: {}",
            protocol(1_000_000)
        );
        let warm = |n| gb(n, BuildMode::Warm);
        assert!((warm(10_000) - 0.145).abs() < 0.01, "{}", warm(10_000));
        assert!((warm(100_000) - 1.444).abs() < 0.08, "{}", warm(100_000));
        assert!((warm(1_000_000) - 14.66).abs() < 0.1, "{}", warm(1_000_000));
        assert!(
            projected_peak_bytes(10, BuildMode::Protocol)
                < projected_peak_bytes(3_000, BuildMode::Protocol)
        );
    }
}
