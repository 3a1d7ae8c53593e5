//! The messages of the codec bench, shared with `examples/codec_loop.rs` (which counts the
//! instructions of the same operations on them): the 287-byte find_node response with 8
//! nodes, a get_peers response with 50 values, 8 nodes and a token, and a ping query.

use std::net::SocketAddr;

use xorro_wire::{
    Body, Message, NodeId, NodeInfo, Nodes, Peers, Query, QueryKind, Response, Token, TransactionId,
};

/// The 8 contacts of the responses.
pub fn nodes() -> Vec<NodeInfo> {
    (0..8u8)
        .map(|i| {
            NodeInfo::new(
                NodeId([i.wrapping_mul(31); 20]),
                SocketAddr::from(([10, 1, 2, i], 6881 + u16::from(i))),
            )
        })
        .collect()
}

/// The 50 peers of the get_peers response.
pub fn peers() -> Vec<SocketAddr> {
    (0..50u16)
        .map(|i| SocketAddr::from(([10, 9, (i >> 8) as u8, i as u8], 6881)))
        .collect()
}

/// The get_peers response's write token.
pub fn token() -> Option<Token> {
    Token::new(b"tok12345")
}

fn tid(b: &[u8]) -> TransactionId {
    TransactionId::new(b).unwrap_or(TransactionId::from_u16(0))
}

fn response(tid: TransactionId, r: Response<'_>) -> Message<'_> {
    Message {
        transaction_id: tid,
        version: Some(b"XO\x00\x01"),
        requester_ip: Some(SocketAddr::from(([192, 0, 2, 7], 51413)).into()),
        read_only: false,
        body: Body::Response(r),
    }
}

pub fn find_node_response(nodes: &[NodeInfo]) -> Message<'_> {
    let mut r = Response::new(NodeId([0xab; 20]));
    r.nodes = Some(Nodes::from_slice(nodes));
    response(tid(b"aa"), r)
}

pub fn get_peers_response<'a>(
    peers: &'a [SocketAddr],
    nodes: &'a [NodeInfo],
    token: &'a Token,
) -> Message<'a> {
    let mut r = Response::new(NodeId([0xab; 20]));
    r.values = Some(Peers::from_slice(peers));
    r.nodes = Some(Nodes::from_slice(nodes));
    r.token = Some(token.as_token_ref());
    response(tid(b"ab"), r)
}

pub fn ping_query() -> Message<'static> {
    Message {
        transaction_id: tid(b"aa"),
        version: None,
        requester_ip: None,
        read_only: false,
        body: Body::Query(Query {
            id: NodeId([0x11; 20]),
            kind: QueryKind::Ping,
        }),
    }
}
