//! Routing table speed: `on_response` and `on_query_from` into a full table and `closest`
//! (k = 8) on it.
//!
//! `cargo bench -p xorro-dht --bench routing -- --warm-up-time 1 --measurement-time 3`;
//! figures go to docs/BENCHMARKS.md.
//!
//! The table is filled with 10,000 random nodes (default config: far buckets 128/64/32/16,
//! then k = 8), so the far buckets are wide and the buckets near our id have split.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xorro_dht::routing::{BUCKET_SIZES_FAR, RoutingConfig, RoutingTable};
use xorro_wire::{NodeId, NodeInfo};

const FILL: u32 = 10_000;
const POOL: usize = 1 << 16;

/// Node `i`: a random id and its own IPv4 address (1.0.0.0 + i), so one-node-per-IP never
/// refuses it.
fn node(rng: &mut ChaCha8Rng, i: u32) -> NodeInfo {
    let addr = SocketAddr::from((Ipv4Addr::from(0x0100_0000 + i), 6881));
    NodeInfo::new(NodeId(rng.r#gen()), addr)
}

#[allow(clippy::disallowed_methods)] // a benchmark needs one real instant; the table reads no clock
fn start() -> Instant {
    Instant::now()
}

/// The largest table a node keeps: libtorrent's wide far buckets (not the default, whose
/// buckets all hold k), so the figures stay those of docs/BENCHMARKS.md's ~300 members.
fn full_table(rng: &mut ChaCha8Rng, now: Instant) -> RoutingTable {
    let config = RoutingConfig {
        bucket_sizes_far: BUCKET_SIZES_FAR.to_vec(),
        prefer_low_rtt: false,
        ..RoutingConfig::default()
    };
    let mut table = RoutingTable::new(NodeId(rng.r#gen()), config);
    for i in 0..FILL {
        table.on_response(node(rng, i), Some(Duration::from_millis(80)), now);
    }
    table
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let now = start();
    let mut table = full_table(&mut rng, now);
    eprintln!(
        "routing table: {} members, {} waiting, {} buckets",
        table.len(),
        table.cached_len(),
        table.bucket_count()
    );

    // New nodes: their bucket is full of good nodes, so they go to the replacement cache
    // (after the id, IP and address checks). The pool is far larger than all the caches
    // together, so a node coming round again is almost never still known.
    let newcomers: Vec<NodeInfo> = (0..POOL).map(|i| node(&mut rng, FILL + i as u32)).collect();
    let mut next = 0;
    c.bench_function("routing/on_response_new_node_full_table", |b| {
        b.iter(|| {
            let n = newcomers[next % POOL];
            next += 1;
            black_box(table.on_response(black_box(n), Some(Duration::from_millis(50)), now))
        })
    });

    // Unknown nodes querying us: the server's path for every new querier. Their bucket is
    // full of good nodes, so each waits in the replacement cache (pushing out the oldest
    // unverified contact) after the id, IP and address checks.
    let queriers: Vec<NodeInfo> = (0..POOL)
        .map(|i| node(&mut rng, FILL + POOL as u32 + i as u32))
        .collect();
    let mut next = 0;
    c.bench_function("routing/on_query_from_new_node_full_table", |b| {
        b.iter(|| {
            let n = queriers[next % POOL];
            next += 1;
            black_box(table.on_query_from(black_box(n), now))
        })
    });

    // Members answering again (the common case during lookups).
    let members: Vec<NodeInfo> = table.iter().map(|e| e.node()).collect();
    let mut next = 0;
    c.bench_function("routing/on_response_known_member", |b| {
        b.iter(|| {
            let n = members[next % members.len()];
            next += 1;
            black_box(table.on_response(black_box(n), Some(Duration::from_millis(50)), now))
        })
    });

    let targets: Vec<NodeId> = (0..4096).map(|_| NodeId(rng.r#gen())).collect();
    let mut out = Vec::with_capacity(8);
    let mut next = 0;
    c.bench_function("routing/closest_8_random_target", |b| {
        b.iter(|| {
            let target = &targets[next % targets.len()];
            next += 1;
            table.closest(black_box(target), 8, &mut out);
            black_box(out.len())
        })
    });

    // Targets near our own id: the walk starts in the deep buckets and spans several.
    let own = table.own_id();
    let near: Vec<NodeId> = (0..4096)
        .map(|_| {
            let mut id = own;
            id.0[2..].iter_mut().for_each(|b| *b = rng.r#gen());
            id
        })
        .collect();
    let mut next = 0;
    c.bench_function("routing/closest_8_near_own_id", |b| {
        b.iter(|| {
            let target = &near[next % near.len()];
            next += 1;
            table.closest(black_box(target), 8, &mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
