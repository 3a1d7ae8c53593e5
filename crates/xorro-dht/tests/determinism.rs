//! The same seed gives the same run: every event of every node, in order, is identical.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

use std::time::{Duration, Instant};

use xorro_dht::cluster::{Cluster, Link};
use xorro_dht::{Config, PutRequest};
use xorro_wire::InfoHash;

/// A 100-node run with loss and jitter: joins, lookups, announces, get_peers, a BEP 44 put,
/// a killed node and 20 minutes of maintenance. Returns every node's events as Debug strings.
fn trace(seed: u64, start: Instant) -> Vec<String> {
    let link = Link {
        loss: 0.05,
        ..Link::default()
    };
    let mut c = Cluster::new(seed, link, start);
    c.grow(100, &Config::default());
    for q in 0..20u64 {
        let i = (q as usize * 13) % 100;
        let target = id_from(seed, q);
        c.with_node(i, |n, now| n.start_find_node(target, now).unwrap());
        if q % 4 == 0 {
            let ih = InfoHash(target.0);
            c.with_node(i, |n, now| n.start_announce(ih, None, false, now).unwrap());
            c.with_node(99 - i, |n, now| {
                n.start_get_peers(ih, false, false, now).unwrap()
            });
        }
        c.run_for(Duration::from_millis(300));
    }
    let put = PutRequest::Immutable {
        value: b"13:deterministic".to_vec(),
    };
    c.with_node(7, |n, now| n.start_put_item(put, now).unwrap());
    c.kill(42);
    c.run_for(Duration::from_secs(20 * 60));
    let mut out = Vec::new();
    for i in 0..c.len() {
        out.push(format!(
            "node {i} id {} stats {:?}",
            c.node(i).id(),
            c.node(i).stats()
        ));
        out.extend(c.take_events(i).iter().map(|e| format!("node {i}: {e:?}")));
    }
    out
}

#[test]
fn same_seed_same_event_trace() {
    let seed = 2024;
    let start = t0();
    let a = trace(seed, start);
    let b = trace(seed, start);
    let events = a.iter().filter(|l| !l.contains(" stats ")).count();
    assert!(
        events > 50,
        "seed {seed}: a trace of {events} events says little"
    );
    if let Some(k) = (0..a.len().min(b.len())).find(|&k| a[k] != b[k]) {
        panic!("seed {seed}: runs differ at line {k}:\n{}\n{}", a[k], b[k]);
    }
    assert_eq!(a.len(), b.len(), "seed {seed}: runs differ in length");
    let other = trace(seed + 1, start);
    assert_ne!(a, other, "seed {seed}: another seed gave the same run");
}
