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
use std::process::ExitCode;

use xorro_wire::{Body, Message, QueryKind, Response, decode, encode};

#[path = "../benches/messages/mod.rs"]
mod messages;

const CALLS: usize = 100_000;

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
    let nodes = messages::nodes();
    let peers = messages::peers();
    let Some(token) = messages::token() else {
        return ExitCode::FAILURE;
    };
    let msg = match which.as_str() {
        "find_node" => messages::find_node_response(&nodes),
        "get_peers" => messages::get_peers_response(&peers, &nodes, &token),
        _ => messages::ping_query(),
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
