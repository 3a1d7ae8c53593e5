//! Helpers shared by the scenario tests: the one real clock read, lookups run to completion,
//! and comparisons against the cluster's oracle.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::{Duration, Instant};

use xorro_dht::cluster::Cluster;
use xorro_dht::{CommandId, LookupStats, Node, Outcome};
use xorro_wire::NodeId;

/// The origin of virtual time: the only real clock read of the suite.
#[allow(clippy::disallowed_methods)]
pub fn t0() -> Instant {
    Instant::now()
}

/// Virtual time a command gets to finish (above the default 60 s lookup timeout, so a command
/// that does not finish in time is a bug, not a slow network).
pub const LIMIT: Duration = Duration::from_secs(120);

/// Starts a command on node `i` and runs the cluster until it finishes.
pub fn run(
    c: &mut Cluster,
    i: usize,
    start: impl FnOnce(&mut Node, Instant) -> CommandId,
) -> (Outcome, LookupStats) {
    let id = c.with_node(i, start);
    c.run_until_finished(i, id, LIMIT).unwrap_or_else(|| {
        panic!(
            "seed {}: command {id:?} on node {i} never finished",
            c.seed()
        )
    })
}

/// A deterministic pseudo-random id from a counter (for targets).
pub fn id_from(seed: u64, n: u64) -> NodeId {
    use rand::{Rng, SeedableRng};
    let mut rng =
        rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    NodeId(rng.r#gen())
}

/// The ids of a `Closest` outcome (panics on anything else).
pub fn closest_ids(seed: u64, out: &Outcome) -> Vec<NodeId> {
    match out {
        Outcome::Closest(nodes) => nodes.iter().map(|n| n.id).collect(),
        Outcome::Peers { closest, .. } => closest.iter().map(|n| n.id).collect(),
        other => panic!("seed {seed}: expected closest nodes, got {other:?}"),
    }
}

// ----- talking to one node directly, as a remote peer would -----

use std::net::SocketAddr;
use xorro_wire::{Body, Message, Query, QueryKind, TransactionId, decode, encode};

/// Every datagram the node wants to send now (destination, bytes).
pub fn drain(node: &mut Node) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(to) = node.poll_transmit(&mut buf) {
        out.push((to, buf.clone()));
    }
    out
}

/// A query message from `id` with the two-byte transaction id `tid`.
pub fn query(tid: u16, id: NodeId, kind: QueryKind<'_>) -> Message<'_> {
    Message {
        transaction_id: TransactionId::from_u16(tid),
        version: None,
        requester_ip: None,
        read_only: false,
        body: Body::Query(Query { id, kind }),
    }
}

/// Encodes `msg`, hands it to `node` as coming from `from`, and returns what the node sent.
pub fn deliver(
    node: &mut Node,
    now: Instant,
    from: SocketAddr,
    msg: &Message<'_>,
) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut bytes = Vec::new();
    encode(msg, &mut bytes).unwrap();
    node.handle_datagram(now, from, &bytes);
    drain(node)
}

/// The reply (response or error) to `to` carrying `tid` among `out`, decoded.
pub fn reply_in<'a>(
    out: &'a [(SocketAddr, Vec<u8>)],
    to: SocketAddr,
    tid: u16,
) -> Option<Message<'a>> {
    out.iter()
        .filter(|(dest, _)| *dest == to)
        .filter_map(|(_, bytes)| decode(bytes).ok())
        .find(|m| {
            m.transaction_id == TransactionId::from_u16(tid)
                && matches!(m.body, Body::Response(_) | Body::Error(_))
        })
}

/// Sends `msg` to `node` from `from` and returns the reply's bytes (panics when there is none).
pub fn ask(node: &mut Node, now: Instant, from: SocketAddr, msg: &Message<'_>) -> Vec<u8> {
    let tid = msg
        .transaction_id
        .as_u16()
        .expect("helpers use two-byte tids");
    let out = deliver(node, now, from, msg);
    let found = reply_in(&out, from, tid).is_some();
    assert!(found, "no reply to {msg:?}; sent {out:?}");
    out.into_iter()
        .filter(|(d, _)| *d == from)
        .map(|(_, b)| b)
        .find(|b| {
            decode(b).is_ok_and(|m| {
                m.transaction_id == TransactionId::from_u16(tid)
                    && matches!(m.body, Body::Response(_) | Body::Error(_))
            })
        })
        .unwrap()
}

/// The KRPC error code of a reply, if it is an error.
pub fn error_code(bytes: &[u8]) -> Option<i64> {
    match decode(bytes).ok()?.body {
        Body::Error(e) => Some(e.code.0),
        _ => None,
    }
}

/// Drives a lone node's timers up to `until` (a node outside any cluster); what it sends is
/// lost. Returns its events.
pub fn advance(node: &mut Node, until: Instant) -> Vec<xorro_dht::Event> {
    let mut events = Vec::new();
    for _ in 0..1_000_000 {
        match node.poll_timeout() {
            Some(t) if t <= until => node.handle_timeout(t),
            _ => {
                node.handle_timeout(until);
                drain(node);
                events.extend(std::iter::from_fn(|| node.poll_event()));
                return events;
            }
        }
        drain(node);
        events.extend(std::iter::from_fn(|| node.poll_event()));
    }
    panic!("the node's timer does not advance");
}
