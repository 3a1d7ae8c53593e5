#![allow(clippy::unwrap_used)]
use std::time::{Duration, Instant};
use xorro_dht::cluster::{Cluster, Link};
use xorro_dht::{Config, Outcome};
use xorro_wire::NodeId;

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

#[test]
fn smoke() {
    let mut c = Cluster::new(1, Link::default(), t0());
    let cfg = Config::default();
    c.grow(200, &cfg);
    let mut exact = 0;
    for q in 0..50u8 {
        let target = NodeId([q.wrapping_mul(37); 20]);
        let i = (q as usize * 7) % c.len();
        let id = c
            .with_node(i, |n, now| n.start_find_node(target, now))
            .unwrap();
        let (out, stats) = c
            .run_until_finished(i, id, Duration::from_secs(120))
            .unwrap();
        let Outcome::Closest(found) = out else {
            panic!("{out:?}")
        };
        let found: Vec<NodeId> = found.iter().map(|n| n.id).collect();
        let truth = c.true_closest(&target, 8, i);
        if found == truth {
            exact += 1
        } else {
            eprintln!("miss {stats:?} {} vs {}", found.len(), truth.len());
        }
    }
    eprintln!(
        "exact {exact}/50, table sizes {:?}",
        (0..5)
            .map(|i| c.node(i).routing_table(xorro_wire::Family::V4).len())
            .collect::<Vec<_>>()
    );
    assert!(exact >= 49);
}
