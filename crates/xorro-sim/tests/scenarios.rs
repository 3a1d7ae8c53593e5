//! Simulation scenarios checked against the oracle. Each prints the seed and the command
//! that reproduces it when it fails.

use xorro_sim::{Behavior, ChurnStart, Expectations, Report, Scenario};

/// The CI scenario: a few thousand nodes (fewer in debug builds), churn and 1 % loss.
fn ci_scenario(seed: u64) -> Scenario {
    let mut s = Scenario {
        name: "ci".into(),
        seed,
        nodes: if cfg!(debug_assertions) { 600 } else { 3000 },
        ..Scenario::default()
    };
    s.link.loss = 0.01;
    s.link.nat_fraction = 0.1;
    s.churn.enabled = true;
    // Every node starts a whole session when the workload begins: 12 % of them leave within
    // its four minutes (0.8 % in a network in equilibrium, the default), which exercises
    // departures and returns far more than the headline scenario does.
    s.churn.start = ChurnStart::Fresh;
    s.build.settle_s = 30;
    s.workload.lookups = if cfg!(debug_assertions) { 150 } else { 500 };
    s.workload.announces = 30;
    s.workload.puts = 15;
    s.workload.duration_s = 240;
    // A regression guard for one seed, not the goal: the pooled guard over five seeds is in
    // `ci_scenario_succeeds_and_is_deterministic`; the 99.5 % at 10^6 is tracked in
    // docs/SIMULATION.md. One seed moves by up to 5 points when an engine change reorders
    // events (see `CI_SEEDS`), so this one sits 10 points under the pooled mean.
    s.expect.lookup_success_min = Some(0.82);
    s.expect.announce_found_min = Some(0.9);
    s.expect.put_found_min = Some(0.9);
    s
}

fn assert_passed(r: &Report) {
    if let Some(msg) = r.failure_message() {
        panic!("{msg}\nreport:\n{}", r.to_json());
    }
}

/// Seeds of the CI scenario. One seed's 150 lookups (600 nodes in debug builds) move by up
/// to 4 points whenever an engine change reorders events (one lookup is 0.67 points), so the
/// exactness guard is on the mean of five: measured 91.5 % (seeds 42-46: 91.3, 93.3, 90.0,
/// 94.0, 88.7 %) on 4 Dec 2026, with the routing defaults of that night (near buckets
/// pinged, good members first in answers, failed queriers pinged) and timers last among
/// events of the same instant: 92.5 % before both, 93.5 % with the routing defaults alone,
/// 92.9 % with the event order alone. With the soft timeout capped at 300 ms and α = 5
/// (5 Dec 2026): 92.8 % (94.0, 91.3, 89.3, 94.0, 95.3 %). With lone nodes bootstrapping
/// again: 91.9 % (94.0, 91.3, 84.7, 94.0, 95.3 %; seed 44 has 6 failed bootstraps instead of
/// 4 and 7 more misses), while at 3,000 nodes (release builds) the five seeds moved
/// 95.92 -> 96.00 %.
const CI_SEEDS: std::ops::Range<u64> = 42..47;

/// Mean exactness of the CI seeds' lookups that the guard asks for.
const CI_MEAN_EXACT_MIN: f64 = 0.9;

#[test]
fn ci_scenario_succeeds_and_is_deterministic() {
    let runs: Vec<Report> = CI_SEEDS
        .map(|seed| xorro_sim::run(&ci_scenario(seed)))
        .collect();
    for r in &runs {
        assert_passed(r);
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = runs.iter().map(|r| r.lookups.closest_success).sum::<f64>() / runs.len() as f64;
    assert!(
        mean >= CI_MEAN_EXACT_MIN,
        "mean exactness {mean:.4} < {CI_MEAN_EXACT_MIN} over the seeds:\n{}",
        runs.iter()
            .map(|r| format!(
                "{:.4}: {}",
                r.lookups.closest_success,
                r.reproduce_command()
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let s = ci_scenario(42);
    let a = &runs[0];
    assert!(a.network.departures > 0, "churn happened");
    assert!(
        a.network.returns > 0,
        "some nodes came back with their old id"
    );
    assert!(a.traffic.lost > 0 && a.traffic.nat_blocked > 0);
    assert!(a.lookups.answered >= a.lookups.started * 9 / 10);
    let b = xorro_sim::run(&s);
    assert_eq!(
        a.to_json(),
        b.to_json(),
        "same seed, different summary; reproduce with: {}",
        a.reproduce_command()
    );
    assert_ne!(a.to_json(), runs[1].to_json(), "the seed changes the run");
}

/// A small network with the default churn, `settle_s` of settle and a workload of
/// `lookups` and `announces` over `duration_s` (no BEP 44 puts).
fn churn_scenario(
    (name, seed): (&str, u64),
    nodes: usize,
    settle_s: u64,
    (lookups, announces, duration_s): (usize, usize, u64),
) -> Scenario {
    let mut s = Scenario {
        name: name.into(),
        seed,
        nodes,
        ..Scenario::default()
    };
    s.churn.enabled = true;
    s.build.settle_s = settle_s;
    s.workload.lookups = lookups;
    s.workload.announces = announces;
    s.workload.puts = 0;
    s.workload.duration_s = duration_s;
    s
}

/// By default the nodes online when churn begins are at a random point of their sessions, as
/// in a network that has been running for a while, and so leave far less often in the first
/// minutes than nodes that have just arrived: in ten minutes 1.7 % of them against 18 %
/// with the default sessions (Weibull, shape 0.5, median two hours). Nodes that arrive later
/// start whole sessions in both models.
#[test]
fn a_running_network_loses_fewer_nodes_than_a_new_one() {
    let mut s = churn_scenario(("equilibrium", 5), 400, 10, (20, 0, 600));
    assert_eq!(s.churn.start, ChurnStart::Equilibrium, "the default");
    let running = xorro_sim::run(&s);
    s.churn.start = ChurnStart::Fresh;
    let new = xorro_sim::run(&s);
    let (a, b) = (running.network.departures, new.network.departures);
    // Expected: ~7 and ~72 of the 400 nodes, plus those of the arrivals that leave too.
    assert!(
        a > 0 && a * 5 < b,
        "departures: {a} in equilibrium, {b} fresh"
    );
    assert!(
        running.to_json().contains("\"start\": \"equilibrium\"")
            && new.to_json().contains("\"start\": \"fresh\""),
        "the summary names the model"
    );
}

/// With `churn.during_settle` churn begins when the built network starts to settle, so that
/// the workload meets tables that have lived through departures, returns and arrivals. Over
/// a 20-minute settle with 10-minute median sessions most departures then come before the
/// workload (and the nodes that replaced them joined through the protocol), and lookups
/// still find the true closest nodes of the network as it is.
#[test]
fn churn_can_run_while_the_network_settles() {
    let mut s = churn_scenario(("settle-churn", 6), 200, 1200, (40, 5, 60));
    s.churn.session_median_s = 600.0;
    assert!(!s.churn.during_settle, "off by default");
    let after = xorro_sim::run(&s);
    s.churn.during_settle = true;
    let during = xorro_sim::run(&s);
    assert_passed(&during);
    let (a, d) = (&after.network, &during.network);
    assert!(
        d.departures > 3 * a.departures.max(1) && d.returns + d.arrivals > 0,
        "departures {} with churn from the settle on, {} from the workload on; returns {}, \
         arrivals {}; reproduce with: {}",
        d.departures,
        a.departures,
        d.returns,
        d.arrivals,
        during.reproduce_command()
    );
    let found = during.announces.as_ref().map_or(0.0, |a| a.found);
    assert!(
        during.lookups.closest_success >= 0.8 && found >= 0.8,
        "exact {:.3}, announced peers found {found:.3}; reproduce with: {}",
        during.lookups.closest_success,
        during.reproduce_command()
    );
    assert!(during.to_json().contains("\"during_settle\": true"));
    assert!(
        !after.to_json().contains("during_settle"),
        "left out when off"
    );
}

/// Nodes learn whether waiting for late candidates pays (`lookup_vouched_wait`, and
/// `lookup_patient_attempts` when set): where every node is reachable most of the candidates
/// waited for answer (far nodes), and with a tenth of the nodes behind NAT few do (nodes
/// that answer only the neighbours they write to, who name them): under the one in three
/// below which a node's lookups stop waiting. Both ways of asking late are counted: the
/// default's wait, and patience over two attempts. Measured (600 nodes / 3,000): the wait
/// 0.99 / 0.99 without NAT, 0.18 / 0.11 with; patience 0.89 / 0.92, 0.10 / 0.05.
#[test]
fn lookups_learn_that_nodes_behind_nat_do_not_answer() {
    let share = |nat: f64, patience: bool| {
        let mut s = ci_scenario(42);
        s.churn.start = ChurnStart::Equilibrium;
        s.link.nat_fraction = nat;
        if patience {
            // Patience over two attempts (three are the default, which leaves it off).
            s.engine.lookup_attempts = Some(2);
            s.engine.lookup_patient_attempts = Some(3);
        }
        let r = xorro_sim::run(&s);
        let (yes, no) = (r.engine.late_answers, r.engine.late_silences);
        assert!(
            yes + no > 50,
            "{yes} + {no} late candidates with {nat} behind NAT"
        );
        #[allow(clippy::cast_precision_loss)]
        let share = yes as f64 / (yes + no) as f64;
        share
    };
    for patience in [false, true] {
        let reachable = share(0.0, patience);
        let nat = share(0.1, patience);
        assert!(
            reachable > 0.5 && nat < 1.0 / 3.0,
            "late answers (patience {patience}): {reachable:.3} without NAT, {nat:.3} with"
        );
    }
}

#[test]
fn adversaries_run_and_are_reported() {
    for behavior in [Behavior::Drop, Behavior::WrongNodes, Behavior::SpoofIds] {
        let mut s = Scenario {
            name: format!("adversary-{behavior:?}"),
            seed: 5,
            nodes: if cfg!(debug_assertions) { 300 } else { 1500 },
            ..Scenario::default()
        };
        s.adversary.fraction = 0.1;
        s.adversary.behavior = behavior;
        s.adversary.eclipse_sybils = if behavior == Behavior::Drop { 12 } else { 0 };
        s.workload.lookups = 100;
        s.workload.announces = 20;
        s.workload.puts = 5;
        s.workload.duration_s = 60;
        let r = xorro_sim::run(&s);
        assert!(r.network.adversaries > 0);
        assert!(r.traffic.tampered > 0, "{behavior:?}: adversaries acted");
        assert!(
            r.lookups.answered > 0,
            "{behavior:?}: lookups still answered"
        );
        if behavior == Behavior::Drop {
            let e = r.eclipse.as_ref().expect("eclipse ops ran");
            assert!(e.read.started > 0);
            eprintln!("eclipsed peer found: {}", e.found);
        }
        eprintln!(
            "{behavior:?}: success {} found_mean {} p50 {} ms",
            r.lookups.closest_success, r.lookups.closest_found_mean, r.lookups.latency_ms.p50
        );
    }
}

#[test]
fn partition_heals() {
    let mut s = Scenario {
        seed: 11,
        nodes: if cfg!(debug_assertions) { 300 } else { 1500 },
        ..Scenario::default()
    };
    s.workload.lookups = 200;
    s.workload.announces = 0;
    s.workload.puts = 0;
    s.workload.duration_s = 180;
    s.workload.bin_s = 30;
    s.link.partitions = vec![xorro_sim::scenario::PartitionConfig {
        start_s: 60,
        duration_s: 60,
        fraction: 0.5,
    }];
    let r = xorro_sim::run(&s);
    assert!(r.traffic.partitioned > 0);
    let during = r
        .over_time
        .iter()
        .find(|b| b.start_s == 60)
        .expect("bin at 60 s");
    let after = r
        .over_time
        .iter()
        .find(|b| b.start_s == 150)
        .expect("bin at 150 s");
    assert!(
        during.closest_success < after.closest_success,
        "{:?}",
        r.over_time
    );
}

#[test]
fn outputs_are_written() {
    let mut s = ci_scenario(3);
    s.nodes = 200;
    s.workload.lookups = 50;
    s.expect = Default::default();
    let r = xorro_sim::run(&s);
    let dir = std::env::temp_dir().join(format!("xorro-sim-test-{}", std::process::id()));
    xorro_sim::write_outputs(&r, None, &dir).expect("outputs written");
    for f in [
        "summary.json",
        "scenario.toml",
        "report.md",
        "ops.csv",
        "latency_cdf.svg",
        "latency_cdf.png",
        "rounds.svg",
        "rounds.png",
        "success_over_time.svg",
        "success_over_time.png",
        "messages.svg",
        "messages.png",
    ] {
        let len = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{f} written ({len} bytes)");
    }
    let back = Scenario::from_file(&dir.join("scenario.toml")).unwrap();
    assert_eq!(back, s);
    // The report gives when a read first saw the announced peer: what a get_peers caller
    // waits for its first peers.
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let first = &r
        .announces
        .as_ref()
        .expect("the scenario announces")
        .first_found_ms;
    assert!(first.count > 0, "{report}");
    let line = format!(
        "first seen after p50 {:.0} / p90 {:.0} / p99 {:.0} ms",
        first.p50, first.p90, first.p99
    );
    assert!(report.contains(&line), "{line} in {report}");
    // ... and so does its CDF, drawn beside the lookups' in the latency plot.
    let cdf = &r.announces.as_ref().unwrap().first_found_cdf;
    assert_eq!(cdf.len(), 101);
    assert!(cdf.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
    assert!(
        (cdf[50].0 - first.p50).abs() <= first.p50 * 0.01 + 1.0,
        "{cdf:?} {first:?}"
    );
    let svg = std::fs::read_to_string(dir.join("latency_cdf.svg")).unwrap();
    assert!(svg.contains("the same, to its first peer"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lookup_misses_are_each_classified_once_and_time_is_accounted() {
    let s = ci_scenario(7);
    let mut sim = xorro_sim::Simulation::new(&s);
    sim.run(&mut |_| {});
    let missed: u64 = sim
        .records()
        .iter()
        .filter(|r| r.kind == xorro_sim::OpKind::Lookup && r.closest_truth > 0)
        .map(|r| u64::from(r.closest_truth - r.closest_found))
        .sum();
    let m = sim.misses();
    assert_eq!(
        m.missed, missed,
        "every missed true closest node is counted"
    );
    assert_eq!(
        m.online_under_10s + m.online_10_to_60s + m.online_over_60s,
        m.missed,
        "each miss falls in one age bin"
    );
    assert!(m.returned <= m.missed && m.arrived <= m.missed);
    assert!(m.known_to_no_neighbour <= m.missed && m.rtt_to_asker_over_300ms <= m.missed);
    assert!(
        m.missed > 0,
        "with churn and loss some lookup misses a node; reproduce with: {}",
        xorro_sim::Report::from_simulation(&sim).reproduce_command()
    );
    // A lookup that returned every true closest node heard each of them: it took at least
    // the RTT to the slowest (the link model adds jitter, never takes it off).
    let exact: Vec<_> = sim
        .records()
        .iter()
        .filter(|r| r.kind == xorro_sim::OpKind::Lookup && r.answered && r.closest_ok())
        .collect();
    assert!(!exact.is_empty());
    // And it asked each of them, the last one before it ended.
    for r in &exact {
        let floor = r.rtt_floor_ns.expect("a checked lookup has a floor");
        assert!(r.latency_ns >= floor, "{r:?}");
        let asked = r
            .closest_asked_ns
            .expect("an exact lookup asked its closest");
        let bound = r.closest_bound_ns.expect("and has a bound");
        assert!(asked < r.latency_ns && asked + floor >= bound, "{r:?}");
        assert!(floor <= bound && bound <= r.latency_ns, "{r:?}");
    }
    let l = xorro_sim::Report::from_simulation(&sim).lookups;
    let split = &l.by_departed;
    assert_eq!(split.none.lookups + split.some.lookups, l.answered);
    assert!(
        split.some.lookups > 0,
        "under churn some lookup asks a departed node"
    );
    assert!(l.rtt_floor_ms.p50 > 0.0 && l.rtt_floor_ms.p50 <= l.latency_ms.p50);
}

#[test]
fn restore_build_is_deterministic_and_lookups_succeed() {
    let mut s = ci_scenario(42);
    s.build.mode = xorro_sim::BuildMode::Restore;
    // Seed 42 measured 93.3 % exact at 600 nodes (debug builds) and 96.2 % at 3,000
    // (release) once the nodes ping their contacts and bootstrap from their tables as the
    // daemon does; 86.7 % and 89.4 % before, when they waited for maintenance to ping them.
    // A guard, not a target.
    s.expect.lookup_success_min = Some(0.90);
    let a = xorro_sim::run(&s);
    assert_passed(&a);
    assert!(
        a.scenario.to_toml().contains("restore"),
        "the mode is written"
    );
    assert!(
        !ci_scenario(42).to_toml().contains("mode"),
        "the default mode is left out"
    );
    let b = xorro_sim::run(&s);
    assert_eq!(a.to_json(), b.to_json(), "same seed, different summary");
}

#[test]
fn warm_build_starts_without_joining_traffic_and_lookups_succeed() {
    let mut s = ci_scenario(42);
    s.build.mode = xorro_sim::BuildMode::Warm;
    // A guard, not a target: seed 42 measured 96.7 % at 600 nodes (debug builds).
    s.expect.lookup_success_min = Some(0.90);
    let warm = xorro_sim::run(&s);
    assert_passed(&warm);
    assert!(warm.scenario.to_toml().contains("mode = \"warm\""));
    assert_eq!(
        warm.to_json(),
        xorro_sim::run(&s).to_json(),
        "same seed, different summary"
    );
    // Before the workload a warm network only runs maintenance; a restored one pings every
    // contact and bootstraps every node.
    s.build.mode = xorro_sim::BuildMode::Restore;
    let restored = xorro_sim::run(&s);
    let before = |r: &xorro_sim::Report| r.traffic.datagrams - r.workload_traffic.datagrams;
    assert!(
        before(&warm) * 5 < before(&restored),
        "warm {} restored {}",
        before(&warm),
        before(&restored)
    );
}

#[test]
fn fast_tables_keep_faster_contacts_and_still_find_the_closest() {
    let mut s = ci_scenario(42);
    s.build.mode = xorro_sim::BuildMode::Warm;
    s.expect.lookup_success_min = Some(0.90);
    let random = xorro_sim::run(&s);
    assert!(!random.scenario.to_toml().contains("warm_fastest_of"));
    assert!(!random.scenario.to_toml().contains("prefer_low_rtt"));
    // Tables of the fastest of 8 candidates a place, kept so by the engine.
    assert!(s.set("build.warm_fastest_of", "8").is_ok());
    assert!(s.set("engine.prefer_low_rtt", "true").is_ok());
    assert!(s.set("engine.lookup_unknown_wait_min_ms", "300").is_ok());
    let fast = xorro_sim::run(&s);
    assert_passed(&fast);
    let toml = fast.scenario.to_toml();
    assert!(toml.contains("warm_fastest_of = 8") && toml.contains("prefer_low_rtt = true"));
    let (r, f) = (&random.network.member_rtt_ms, &fast.network.member_rtt_ms);
    assert!(r.count > 0 && f.count > 0);
    // Random contacts are as far as random pairs (the link's median RTT is 100 ms).
    assert!(
        (70.0..130.0).contains(&r.p50),
        "random tables: {} ms",
        r.p50
    );
    assert!(
        f.p50 < r.p50 * 0.8,
        "member RTT p50: {} ms fast against {} ms random",
        f.p50,
        r.p50
    );
    // Depth by depth: every member counted once, depths in order, and the farthest bucket
    // of the fast tables faster than the random tables' (the near ones stay random).
    for report in [&random, &fast] {
        let n = &report.network;
        let depths = &n.members_by_depth;
        assert!(depths.windows(2).all(|w| w[0].depth < w[1].depth));
        let counted: u64 = depths.iter().map(|d| d.rtt_ms.count).sum();
        assert_eq!(counted, n.member_rtt_ms.count);
        let per_node: f64 = depths.iter().map(|d| d.per_node).sum();
        assert!(
            (per_node - n.table_members_mean).abs() < 0.05 * n.table_members_mean,
            "{per_node} members by depth, {} in all",
            n.table_members_mean
        );
    }
    let far = |r: &xorro_sim::Report| r.network.members_by_depth[0].rtt_ms.p50;
    assert_eq!(fast.network.members_by_depth[0].depth, 0);
    assert!(
        far(&fast) < far(&random) * 0.8,
        "{} against {}",
        far(&fast),
        far(&random)
    );
}

#[test]
fn restore_builds_refuse_eclipse_sybils() {
    for mode in ["restore", "warm"] {
        let mut s = ci_scenario(42);
        assert!(s.set("build.mode", mode).is_ok());
        assert!(s.set("adversary.eclipse_sybils", "10").is_err());
    }
}

#[test]
fn nodes_behind_nat_can_run_read_only() {
    let plain = xorro_sim::run(&ci_scenario(42));
    let mut s = ci_scenario(42);
    s.link.nat_read_only = true;
    let ro = xorro_sim::run(&s);
    assert_passed(&ro);
    assert!(ro.scenario.to_toml().contains("nat_read_only = true"));
    assert!(
        !plain.scenario.to_toml().contains("nat_read_only"),
        "left out when off"
    );
    // Read-only nodes stay out of the others' tables, so nobody waits for one it cannot
    // reach: fewer requests time out.
    assert_fewer_timeouts(&ro, &plain);
}

/// Fewer requests timed out in `with` than in `without`.
fn assert_fewer_timeouts(with: &Report, without: &Report) {
    assert!(
        with.engine.timeouts < without.engine.timeouts,
        "timed-out requests: {} against {}",
        with.engine.timeouts,
        without.engine.timeouts
    );
}

/// The spells in which nodes took themselves for unreachable, and the sessions expected
/// behind NAT (joins times the NAT fraction).
#[allow(clippy::cast_precision_loss)]
fn spells_and_sessions_behind_nat(r: &Report, s: &Scenario) -> (f64, f64) {
    (
        r.engine.unreachable_spells as f64,
        r.network.joins as f64 * s.link.nat_fraction,
    )
}

/// By default a node judges its reachability only once it finds itself behind NAT (the
/// address others report is not its own): the nodes behind NAT go read-only after the
/// wait, no reachable node does, and the others then wait for them less.
#[test]
fn by_default_only_nodes_behind_nat_judge_their_reachability() {
    let mut on = ci_scenario(42);
    // Long enough for the nodes behind NAT to find out and the others to drop them.
    on.workload.duration_s = 600;
    let mut off = on.clone();
    off.engine.detect_unreachable_behind_nat_s = Some(0);
    let (r_on, r_off) = (xorro_sim::run(&on), xorro_sim::run(&off));
    assert_passed(&r_on);
    assert_passed(&r_off);
    assert_eq!(r_off.engine.unreachable_spells, 0);
    let (spells, behind) = spells_and_sessions_behind_nat(&r_on, &on);
    // Measured (seed 42, 600 nodes): 61 spells for ~70 sessions behind NAT (those begun in
    // the last two minutes have not waited long enough), and 7,602 requests timed out
    // against 8,773 without the wait.
    assert!(
        (behind * 0.7..=behind * 1.2).contains(&spells),
        "{spells} spells for ~{behind} nodes behind NAT"
    );
    assert_fewer_timeouts(&r_on, &r_off);
}

#[test]
fn nodes_behind_nat_find_out_they_are_unreachable() {
    let mut s = ci_scenario(42);
    s.engine.detect_unreachable_s = Some(60);
    let r = xorro_sim::run(&s);
    assert_passed(&r);
    // About one session in ten is behind NAT: each takes itself for unreachable once it
    // has heard no stranger for a minute, and no reachable node does (measured: 64 spells
    // for 642 sessions).
    let (spells, behind) = spells_and_sessions_behind_nat(&r, &s);
    assert!(
        (behind * 0.8..=behind * 1.2).contains(&spells),
        "{spells} spells for ~{behind} nodes behind NAT"
    );
}

/// The announce's median and the first peer's median and p99 are checked when bounded, and
/// a bound on reads that never happened fails rather than holding on no samples.
#[test]
fn announce_and_first_peer_bounds_are_checked() {
    let mut s = ci_scenario(5);
    s.nodes = 200;
    s.churn.enabled = false;
    s.workload.lookups = 10;
    s.workload.announces = 6;
    s.workload.puts = 0;
    s.workload.duration_s = 30;
    s.expect = Expectations {
        announce_p50_max_ms: Some(1e9),
        first_peer_p50_max_ms: Some(1e9),
        first_peer_p99_max_ms: Some(0.0),
        ..Expectations::default()
    };
    let r = xorro_sim::run(&s);
    let first = &r.announces.as_ref().unwrap().first_found_ms;
    assert!(first.count > 0 && first.p99 > 0.0, "{first:?}");
    let outcome: Vec<(&str, bool)> = r
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.passed))
        .collect();
    assert_eq!(
        outcome,
        [
            ("announces.write.latency_ms.p50 <= 1000000000", true),
            ("announces.first_found_ms.p50 <= 1000000000", true),
            ("announces.first_found_ms.p99 <= 0", false),
        ]
    );
    assert!(!r.passed());

    s.workload.announces = 0;
    s.expect = Expectations {
        first_peer_p50_max_ms: Some(1e9),
        ..Expectations::default()
    };
    let r = xorro_sim::run(&s);
    assert_eq!(r.checks.len(), 1);
    let c = &r.checks[0];
    assert!(
        !c.passed && c.name.ends_with(": no samples"),
        "no reads: {c:?}"
    );
}
