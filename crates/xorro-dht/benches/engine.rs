//! Engine throughput: a [`Node`] answering queries fed as bytes, in process, no sockets.
//!
//! `cargo bench -p xorro-dht --bench engine -- --warm-up-time 1 --measurement-time 3`;
//! figures go to docs/BENCHMARKS.md. Queries per second on one core = 1e9 / (ns per query).
//!
//! Setup: one node with a full routing table, built the way a live node builds it: it pings
//! 20,000 random nodes and each answers (default config: far buckets 128/64/32/16, then
//! k = 8, so about 300 members and full replacement caches). It also stores 64 swarms of 50
//! peers, announced with real tokens. Queries are pre-encoded, each from its own source
//! address out of 65,536 (so the per-IP limiter sees every source rarely and never limits;
//! its tracked-source map, 10,000 by default, is full and evicts on every new source, as on a
//! busy public node). What is measured per query: `handle_datagram` (decode, limiter,
//! routing-table update for the querier, the answer: closest nodes, token, peers, encode)
//! plus draining `poll_transmit` into one reused buffer. `now` is fixed: the node's timers
//! are not part of this measure.
//!
//! `find_node_known_sources` sends the same queries from 1,024 sources that keep coming back
//! (their limiter entries and routing-table records exist), with the per-IP rate raised to
//! 1e9/s so that the limiter counts but never drops: the steady-state cost of a query.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xorro_dht::{Config, Node};
use xorro_wire::{
    Body, Family, InfoHash, Message, NodeId, Query, QueryKind, Response, Token, TransactionId,
    Want, decode, encode,
};

const CONTACTS: u32 = 20_000;
const SOURCES: u32 = 65_536;
const SWARMS: usize = 64;
const PEERS_PER_SWARM: u32 = 50;
/// Sources of the `find_node_known_sources` variant.
const KNOWN_SOURCES: u32 = 1024;

#[allow(clippy::disallowed_methods)] // a benchmark needs one real instant; the node reads no clock
fn start() -> Instant {
    Instant::now()
}

fn msg(tid: u32, body: Body<'_>) -> Message<'_> {
    Message {
        transaction_id: TransactionId::new(&tid.to_be_bytes()).unwrap(),
        version: Some(b"LT\x01\x02"),
        requester_ip: None,
        read_only: false,
        body,
    }
}

fn encoded(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(m, &mut out).unwrap();
    out
}

/// Source `i`: its own public IPv4 address (100.64.0.0 + i, outside loopback and private
/// ranges, which some rules exempt).
fn source(i: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x6440_0000 + i), 6881))
}

/// Contact `i`: 20.0.0.0 + i.
fn contact(i: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x1400_0000 + i), 6881))
}

/// A node whose routing table is full, with stored swarms.
fn busy_node(rng: &mut ChaCha8Rng, now: Instant) -> (Node, Vec<InfoHash>) {
    let mut node = Node::new(
        Config {
            rng_seed: 1,
            ..Config::default()
        },
        now,
    );
    let mut buf = Vec::new();
    let mut t = now;
    for i in 0..CONTACTS {
        // Outgoing budget: 250 a second by default; space the pings out in virtual time.
        t += Duration::from_millis(5);
        node.handle_timeout(t);
        while node.poll_transmit(&mut buf).is_some() {}
        let to = contact(i);
        node.start_ping(to, t);
        let mut tid = None;
        while let Some(dest) = node.poll_transmit(&mut buf) {
            if dest == to {
                tid = Some(decode(&buf).unwrap().transaction_id);
            }
        }
        let Some(tid) = tid else { continue };
        let id = NodeId(rng.r#gen());
        let reply = Message {
            transaction_id: tid,
            version: None,
            requester_ip: None,
            read_only: false,
            body: Body::Response(Response::new(id)),
        };
        node.handle_datagram(t, to, &encoded(&reply));
        while node.poll_transmit(&mut buf).is_some() {}
        while node.poll_event().is_some() {}
    }
    // Swarms: announced by peers that first got a token with get_peers.
    let swarms: Vec<InfoHash> = (0..SWARMS).map(|_| InfoHash(rng.r#gen())).collect();
    for (s, ih) in swarms.iter().enumerate() {
        for p in 0..PEERS_PER_SWARM {
            let from = SocketAddr::from((Ipv4Addr::from(0x1e00_0000 + (s as u32) * 256 + p), 6881));
            let q = msg(
                1,
                Body::Query(Query {
                    id: NodeId(rng.r#gen()),
                    kind: QueryKind::GetPeers {
                        info_hash: *ih,
                        want: Want::UNSPECIFIED,
                        no_seed: false,
                        scrape: false,
                    },
                }),
            );
            node.handle_datagram(t, from, &encoded(&q));
            let mut token = None;
            while let Some(dest) = node.poll_transmit(&mut buf) {
                if dest == from
                    && let Ok(m) = decode(&buf)
                    && let Body::Response(r) = m.body
                {
                    token = r.token.map(Token::from);
                }
            }
            let a = msg(
                2,
                Body::Query(Query {
                    id: NodeId(rng.r#gen()),
                    kind: QueryKind::AnnouncePeer {
                        info_hash: *ih,
                        port: 51413,
                        implied_port: false,
                        token: token.as_ref().unwrap().as_token_ref(),
                        seed: p % 3 == 0,
                    },
                }),
            );
            node.handle_datagram(t, from, &encoded(&a));
            while node.poll_transmit(&mut buf).is_some() {}
            while node.poll_event().is_some() {}
        }
    }
    (node, swarms)
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let t = start();
    let (node, swarms) = busy_node(&mut rng, t);
    let table = node.routing_table(Family::V4);
    eprintln!(
        "engine: {} contacts, {} waiting, {} buckets; {} swarms of {} peers",
        table.len(),
        table.cached_len(),
        table.bucket_count(),
        node.peer_store().infohash_count(),
        node.peer_store().peer_count() / SWARMS.max(1),
    );
    let now = t + Duration::from_secs(200);

    // Each source has its own node id. Query `i` comes from source `i % sources`.
    let ids: Vec<NodeId> = (0..SOURCES).map(|_| NodeId(rng.r#gen())).collect();
    let queries = |rng: &mut ChaCha8Rng,
                   sources: u32,
                   make: &dyn Fn(&mut ChaCha8Rng) -> QueryKind<'static>| {
        (0..SOURCES)
            .map(|i| {
                let from = i % sources;
                let kind = make(rng);
                let m = msg(
                    i,
                    Body::Query(Query {
                        id: ids[from as usize],
                        kind,
                    }),
                );
                (source(from), encoded(&m))
            })
            .collect::<Vec<_>>()
    };
    let find_node_query = |rng: &mut ChaCha8Rng| QueryKind::FindNode {
        target: NodeId(rng.r#gen()),
        want: Want::UNSPECIFIED,
    };
    let find_node = queries(&mut rng, SOURCES, &find_node_query);
    let get_peers = queries(&mut rng, SOURCES, &|rng| QueryKind::GetPeers {
        info_hash: InfoHash(rng.r#gen()),
        want: Want::UNSPECIFIED,
        no_seed: false,
        scrape: false,
    });
    let get_peers_values = {
        let swarms = swarms.clone();
        queries(&mut rng, SOURCES, &move |rng| QueryKind::GetPeers {
            info_hash: swarms[rng.gen_range(0..swarms.len())],
            want: Want::UNSPECIFIED,
            no_seed: false,
            scrape: false,
        })
    };
    let ping = queries(&mut rng, SOURCES, &|_| QueryKind::Ping);
    // find_node from 1,024 sources that come back again and again.
    let find_node_known = queries(&mut rng, KNOWN_SOURCES, &find_node_query);

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    for (name, set, known) in [
        ("find_node", &find_node, false),
        ("get_peers", &get_peers, false),
        ("get_peers_50_values", &get_peers_values, false),
        ("ping", &ping, false),
        ("find_node_known_sources", &find_node_known, true),
    ] {
        let mut config = Config {
            rng_seed: 7,
            ..Config::default()
        };
        if known {
            // 1,024 sources sending at full speed with `now` fixed: raise the per-IP budget so
            // that the limiter is exercised (every packet is counted) but never decides.
            config.rate_limit.per_ip_rate = 1e9;
            config.rate_limit.per_ip_burst = u32::MAX;
        }
        let mut node = Node::restore(config, node.snapshot(now), now);
        let mut out = Vec::with_capacity(1500);
        let mut next = 0usize;
        let mut sent = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                let (from, bytes) = &set[next % set.len()];
                next += 1;
                node.handle_datagram(now, *from, black_box(bytes));
                while let Some(to) = node.poll_transmit(&mut out) {
                    black_box((to, out.len()));
                    sent += 1;
                }
                while node.poll_event().is_some() {}
            })
        });
        let s = node.stats();
        eprintln!(
            "engine/{name}: {} in, {} datagrams out ({} answers, {} errors), drops {:?}",
            s.datagrams_in,
            sent,
            s.queries.find_node + s.queries.get_peers + s.queries.ping,
            s.errors_out,
            s.drops
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
