//! Measures what an idle `xorro_dht::Node` costs in memory: `Node::new` for N nodes, RSS
//! before and after (Linux).
//!
//! ```text
//! cargo run --release -p xorro-sim --example node_memory -- 100000
//! ```

use std::time::Instant;

fn rss() -> u64 {
    xorro_sim::report::proc_status_bytes("VmRSS:")
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let now = Instant::now();
    let config = xorro_dht::Config::default();
    let before = rss();
    let nodes: Vec<Box<xorro_dht::Node>> = (0..n)
        .map(|i| {
            let mut c = config.clone();
            c.rng_seed = i as u64 + 1;
            Box::new(xorro_dht::Node::new(c, now))
        })
        .collect();
    let after = rss();
    println!(
        "{n} idle nodes: {:.0} bytes per node (size_of::<Node>() = {}, size_of::<Config>() = {})",
        after.saturating_sub(before) as f64 / n as f64,
        std::mem::size_of::<xorro_dht::Node>(),
        std::mem::size_of::<xorro_dht::Config>()
    );
    drop(nodes);
}
