//! Property: whatever the network size, loss and seed, every command finishes (a
//! `CommandFinished` event arrives) within its virtual time limit.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

use std::time::Duration;

use proptest::prelude::*;
use xorro_dht::cluster::{Cluster, Link};
use xorro_dht::{Config, ItemTarget, Node};
use xorro_wire::{InfoHash, NodeId};

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn lookups_always_finish(
        seed in any::<u64>(),
        nodes in 2usize..24,
        loss in 0.0f64..0.6,
        attempts in 1u8..4,
        kill in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
        targets in proptest::collection::vec((any::<[u8; 20]>(), 0u8..4), 1..6),
    ) {
        let link = Link { loss, ..Link::default() };
        let config = Config { lookup_attempts: attempts, ..Config::default() };
        let mut c = Cluster::new(seed, link, t0());
        c.grow(nodes, &config);
        for k in &kill {
            c.kill(k.index(nodes));
        }
        let askers: Vec<usize> = (0..nodes).filter(|&i| c.is_alive(i)).collect();
        prop_assume!(!askers.is_empty());
        for (q, (target, kind)) in targets.into_iter().enumerate() {
            let asker = askers[q % askers.len()];
            let target = NodeId(target);
            let start = |n: &mut Node, now| match kind {
                0 => n.start_find_node(target, now),
                1 => n.start_get_peers(InfoHash(target.0), false, true, now),
                2 => n.start_announce(InfoHash(target.0), None, false, now),
                _ => n.start_get_item(ItemTarget::Immutable(target), now),
            };
            let id = c.with_node(asker, |n, now| start(n, now).unwrap());
            let done = c.run_until_finished(asker, id, Duration::from_secs(90));
            prop_assert!(
                done.is_some(),
                "seed {seed}, {nodes} nodes, loss {loss}, attempts {attempts}: command {q} ({kind}) from node {asker} never finished"
            );
        }
    }
}
