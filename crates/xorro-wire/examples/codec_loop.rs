//! Instruction counts of the codec (docs/BENCHMARKS.md, "Wire codec"): runs one operation
//! on one of the messages of the codec benchmark 100,000 times, in a function that callgrind
//! can count on its own.
//!
//! ```text
//! cargo build --release -p xorro-wire --example codec_loop
//! valgrind --tool=callgrind --callgrind-out-file=cg.out --toggle-collect='codec_loop::run_*' \
//!     target/release/examples/codec_loop find_node decode
//! callgrind_annotate cg.out | grep 'PROGRAM TOTALS'
//! ```
//!
//! Messages: `find_node` (the 287-byte response with 8 nodes), `get_peers` (50 values, 8
//! nodes and a token), `ping` (the query). Operations: `decode` (the message is returned by
//! value and kept, as the criterion benchmark does), `walk` (decode and iterate every node and
//! peer), `encode`, and `empty` (the same loop doing nothing): (op − empty) / 100,000 is the
//! count per call. `size` prints the size of the message types.

use std::hint::black_box;
use std::net::SocketAddr;
use std::process::ExitCode;

use xorro_wire::{
    Body, Message, NodeId, NodeInfo, Nodes, Peers, Query, QueryKind, Response, Token, TokenRef,
    TransactionId, decode, encode,
};

const CALLS: usize = 100_000;

fn tid(b: &[u8]) -> TransactionId {
    TransactionId::new(b).unwrap_or(TransactionId::from_u16(0))
}

fn response<'a>(
    nodes: &'a [NodeInfo],
    peers: Option<&'a [SocketAddr]>,
    token: Option<TokenRef<'a>>,
) -> Message<'a> {
    let mut r = Response::new(NodeId([0xab; 20]));
    r.nodes = Some(Nodes::from_slice(nodes));
    r.values = peers.map(Peers::from_slice);
    r.token = token;
    Message {
        transaction_id: tid(if peers.is_some() { b"ab" } else { b"aa" }),
        version: Some(b"XO\x00\x01"),
        requester_ip: Some(SocketAddr::from(([192, 0, 2, 7], 51413)).into()),
        read_only: false,
        body: Body::Response(r),
    }
}

#[inline(never)]
fn run_decode(bytes: &[u8]) {
    for _ in 0..CALLS {
        if let Ok(m) = decode(black_box(bytes)) {
            black_box(m);
        }
    }
}

#[inline(never)]
fn run_walk(bytes: &[u8]) {
    for _ in 0..CALLS {
        let n = match decode(black_box(bytes)).map(|m| m.body) {
            Ok(Body::Response(r)) => {
                r.nodes.iter().flat_map(|n| n.iter()).count()
                    + r.values.iter().flat_map(|v| v.iter()).count()
            }
            _ => 0,
        };
        black_box(n);
    }
}

#[inline(never)]
fn run_encode(msg: &Message<'_>, buf: &mut Vec<u8>) {
    for _ in 0..CALLS {
        black_box(encode(black_box(msg), buf).is_ok());
        black_box(buf.len());
    }
}

#[inline(never)]
fn run_empty(bytes: &[u8]) {
    for _ in 0..CALLS {
        black_box(black_box(bytes));
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(which), Some(op)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: codec_loop find_node|get_peers|ping decode|walk|encode|empty|size");
        return ExitCode::FAILURE;
    };
    let nodes: Vec<NodeInfo> = (0..8u8)
        .map(|i| {
            NodeInfo::new(
                NodeId([i.wrapping_mul(31); 20]),
                SocketAddr::from(([10, 1, 2, i], 6881 + u16::from(i))),
            )
        })
        .collect();
    let peers: Vec<SocketAddr> = (0..50u16)
        .map(|i| SocketAddr::from(([10, 9, (i >> 8) as u8, i as u8], 6881)))
        .collect();
    let token = Token::new(b"tok12345");
    let msg = match which.as_str() {
        "find_node" => response(&nodes, None, None),
        "get_peers" => response(
            &nodes,
            Some(&peers),
            token.as_ref().map(Token::as_token_ref),
        ),
        _ => Message {
            transaction_id: tid(b"aa"),
            version: None,
            requester_ip: None,
            read_only: false,
            body: Body::Query(Query {
                id: NodeId([0x11; 20]),
                kind: QueryKind::Ping,
            }),
        },
    };
    let mut buf = Vec::with_capacity(1500);
    if encode(&msg, &mut buf).is_err() {
        return ExitCode::FAILURE;
    }
    let bytes = buf.clone();
    match op.as_str() {
        "decode" => run_decode(&bytes),
        "walk" => run_walk(&bytes),
        "encode" => run_encode(&msg, &mut buf),
        "empty" => run_empty(&bytes),
        "size" => println!(
            "{} bytes; size_of Message {}, Body {}, Response {}, QueryKind {}",
            bytes.len(),
            size_of::<Message<'_>>(),
            size_of::<Body<'_>>(),
            size_of::<Response<'_>>(),
            size_of::<QueryKind<'_>>(),
        ),
        _ => return ExitCode::FAILURE,
    }
    ExitCode::SUCCESS
}
