//! Codec speed: decode and encode of the hot messages.
//!
//! `cargo bench -p xorro-wire --bench codec`; figures go to docs/BENCHMARKS.md.
//!
//! `reference/bt_bencode_borrowed/*` decodes the same datagrams with the crate that
//! DEPENDENCIES.md names as the alternative to our decoder (`bt_bencode`, deserializing into
//! borrowed structs that keep only the keys the message needs, unvalidated): the machine is
//! shared and noisy, so the figure to compare across runs is the ratio of the two.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use xorro_wire::{Body, decode, encode};

mod messages;
use messages::{find_node_response, get_peers_response, nodes, peers, ping_query, token};

/// `r` as bt_bencode borrows it: the keys of the benchmark's responses, unvalidated.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct RefResponse<'a> {
    #[serde(with = "serde_bytes", borrow)]
    id: &'a [u8],
    #[serde(with = "serde_bytes", borrow, default)]
    nodes: Option<&'a [u8]>,
    #[serde(with = "serde_bytes", borrow, default)]
    token: Option<&'a [u8]>,
    #[serde(borrow, default)]
    values: Option<Vec<&'a serde_bytes::Bytes>>,
}

/// `a` of a ping.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct RefArgs<'a> {
    #[serde(with = "serde_bytes", borrow)]
    id: &'a [u8],
}

/// A KRPC message as bt_bencode borrows it.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct RefMessage<'a> {
    #[serde(with = "serde_bytes", borrow)]
    t: &'a [u8],
    #[serde(with = "serde_bytes", borrow)]
    y: &'a [u8],
    #[serde(with = "serde_bytes", borrow, default)]
    q: Option<&'a [u8]>,
    #[serde(borrow, default)]
    a: Option<RefArgs<'a>>,
    #[serde(borrow, default)]
    r: Option<RefResponse<'a>>,
    #[serde(with = "serde_bytes", borrow, default)]
    ip: Option<&'a [u8]>,
    #[serde(with = "serde_bytes", borrow, default)]
    v: Option<&'a [u8]>,
}

fn bench(c: &mut Criterion) {
    let nodes = nodes();
    let token = token().unwrap();
    let peers = peers();
    let cases = [
        ("find_node_response_8_nodes", find_node_response(&nodes)),
        (
            "get_peers_response_50_values",
            get_peers_response(&peers, &nodes, &token),
        ),
        ("ping_query", ping_query()),
    ];
    for (name, msg) in &cases {
        let mut buf = Vec::with_capacity(1500);
        encode(msg, &mut buf).unwrap();
        if *name == "find_node_response_8_nodes" {
            assert_eq!(
                buf.len(),
                287,
                "the benchmark message is the 287-byte response of the issue"
            );
        }
        let bytes = buf.clone();
        c.bench_function(&format!("decode/{name}"), |b| {
            b.iter(|| decode(black_box(&bytes)).unwrap())
        });
        c.bench_function(&format!("reference/bt_bencode_borrowed/{name}"), |b| {
            b.iter(|| bt_bencode::from_slice::<RefMessage<'_>>(black_box(&bytes)).unwrap())
        });
        c.bench_function(&format!("decode_and_walk/{name}"), |b| {
            b.iter(|| {
                let m = decode(black_box(&bytes)).unwrap();
                let Body::Response(r) = m.body else { return 0 };
                r.nodes.iter().flat_map(|n| n.iter()).count()
                    + r.values.iter().flat_map(|v| v.iter()).count()
            })
        });
        c.bench_function(&format!("encode/{name}"), |b| {
            b.iter(|| {
                encode(black_box(msg), &mut buf).unwrap();
                buf.len()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
