//! 1,000-node clusters: everyone joins, then lookups for random targets are compared with the
//! cluster's oracle. Both tests live in this file so that they run in parallel (one thread
//! each) while the other test binaries are small.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

use std::time::Duration;

use rand::{Rng, SeedableRng};
use xorro_dht::cluster::{Cluster, Link};
use xorro_dht::{Config, Outcome};

const NODES: usize = 1000;
const LOOKUPS: u64 = 200;
/// Nodes joining at the same time in each wave.
const WAVE: usize = 25;

/// Grows the cluster to `NODES` in waves of `WAVE` nodes that join at the same time, each
/// bootstrapping from one random node of the earlier waves (the first node alone). Joining in
/// waves keeps the virtual time of the run, and so its maintenance traffic, short. A join that
/// fails (under loss every request to the one seed may be lost) is retried once from another
/// node, as a user would; the retry must succeed. Returns the number of retries.
fn grow_in_waves(c: &mut Cluster, config: &Config) -> usize {
    let seed = c.seed();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let first = c.add_node(config.clone());
    let (out, _) = run(c, first, |n, now| n.start_bootstrap(&[], now).unwrap());
    assert_eq!(out, Outcome::Closest(vec![]), "seed {seed}: the first node");
    let mut retries = 0;
    while c.len() < NODES {
        let before = c.len();
        let wave: Vec<_> = (0..WAVE.min(NODES - before))
            .map(|_| {
                let i = c.add_node(config.clone());
                (i, c.bootstrap(i, &[rng.gen_range(0..before)]))
            })
            .collect();
        for (i, id) in wave {
            let (out, _) = c.run_until_finished(i, id, LIMIT).unwrap();
            if matches!(&out, Outcome::Closest(v) if !v.is_empty()) {
                continue;
            }
            retries += 1;
            let id = c.bootstrap(i, &[rng.gen_range(0..before)]);
            let (out, stats) = c.run_until_finished(i, id, LIMIT).unwrap();
            assert!(
                matches!(&out, Outcome::Closest(v) if !v.is_empty()),
                "seed {seed}: node {i} failed to join twice: {out:?} {stats:?}"
            );
        }
    }
    retries
}

/// Grows a cluster of `NODES`, lets it run for `settle`, and runs `LOOKUPS` find_node lookups from rotating askers;
/// returns how many returned exactly the true 8 closest, and a description of the misses.
fn exact_lookups(seed: u64, link: Link, config: &Config, settle: Duration) -> (usize, Vec<String>) {
    let mut c = Cluster::new(seed, link, t0());
    let retries = grow_in_waves(&mut c, config);
    c.run_for(settle);
    let mut exact = 0;
    let mut misses = Vec::new();
    for q in 0..LOOKUPS {
        let target = id_from(seed, q);
        let asker = (q as usize * 7919) % NODES;
        let (out, stats) = run(&mut c, asker, |n, now| {
            n.start_find_node(target, now).unwrap()
        });
        assert!(
            matches!(out, Outcome::Closest(_)),
            "seed {seed}: lookup {q} from node {asker} failed: {out:?} {stats:?}"
        );
        let found = closest_ids(seed, &out);
        let truth = c.true_closest(&target, 8, asker);
        if found == truth {
            exact += 1;
        } else {
            let missing = truth.iter().filter(|t| !found.contains(t)).count();
            misses.push(format!(
                "lookup {q} from {asker}: {missing} of the true 8 missing, {} found, {stats:?}",
                found.len()
            ));
        }
    }
    eprintln!(
        "seed {seed}: {exact}/{LOOKUPS} exact, {retries} joins retried, {} datagrams, {:?} virtual",
        c.delivered,
        c.elapsed()
    );
    (exact, misses)
}

/// ≥ 99 % of lookups in a healthy 1,000-node network return exactly the true 8 closest.
#[test]
fn thousand_nodes_lookups_find_the_true_closest() {
    let seed = 1000;
    let (exact, misses) = exact_lookups(seed, Link::default(), &Config::default(), Duration::ZERO);
    assert!(
        exact * 100 >= LOOKUPS as usize * 99,
        "seed {seed}: only {exact}/{LOOKUPS} exact; misses: {misses:#?}"
    );
}

/// The same with 20 % of all datagrams lost (requests and replies alike). A request then goes
/// unanswered 36 % of the time, and a lookup is exact only if each of the true 8 closest
/// answered at least once: with `a` attempts per node that happens with probability
/// `(1 - 0.36^a)^8`, 3 % for one attempt, 68 % for three (the default), 99.4 % for seven.
/// So this network runs with seven (`Config::lookup_attempts`).
///
/// Under loss a late joiner is not always known to its neighbours yet: the ping with which a
/// node verifies a newcomer that queried it may be lost, and is not repeated within
/// `node_ping_interval`. The bucket refresh (15 min) repairs that, so the lookups start after
/// 16 minutes of normal operation.
///
/// What is left varies from seed to seed: seeds 1020–1029 gave 193 to 200 exact (mean 198.0)
/// with the routing table's nanosecond times, 195 to 200 (mean 197.7) with its millisecond
/// ticks, which change which of two members seen within one millisecond counts as the older.
/// So the bound is 96 %, below every one of those runs; three attempts (68 % expected) or a
/// broken retry fall far below it.
#[test]
fn thousand_nodes_lookups_with_20_percent_loss() {
    let seed = 1020;
    let link = Link {
        loss: 0.2,
        ..Link::default()
    };
    let config = Config {
        lookup_attempts: 7,
        ..Config::default()
    };
    let (exact, misses) = exact_lookups(seed, link, &config, Duration::from_secs(16 * 60));
    assert!(
        exact * 100 >= LOOKUPS as usize * 96,
        "seed {seed}: only {exact}/{LOOKUPS} exact under 20% loss; misses: {misses:#?}"
    );
}
