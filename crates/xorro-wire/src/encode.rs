//! Canonical KRPC encoding into a reused buffer.
//!
//! Keys are written in sorted order by construction (bencode requires it, and BEP 44
//! signatures depend on it), integers without leading zeros. A datagram never exceeds
//! [`MAX_DATAGRAM_LEN`] (BEP 32): a long `values` or `samples` list is trimmed to fit, and a
//! message that still does not fit is an [`EncodeError`] rather than an oversized packet.

use std::net::SocketAddr;

use crate::compact::{Family, NodeInfo, Nodes, encode_node, encode_peer};
use crate::message::{Body, ErrorBody, Message, PutQuery, Query, QueryKind, Response, Want};

/// BEP 32: "A node obeying this specification must not send UDP datagrams with a payload
/// larger than 1024 octets" (it crosses a Teredo tunnel without fragmentation).
pub const MAX_DATAGRAM_LEN: usize = 1024;

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Even with `values` and `samples` trimmed the message would be `len` bytes, over the
    /// limit (usually a BEP 44 value that is too large with this salt).
    #[error("message of {len} bytes exceeds the {max}-byte datagram limit")]
    TooLarge {
        /// The size it would have had.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Encodes `msg` into `out` (cleared first), within [`MAX_DATAGRAM_LEN`] bytes.
pub fn encode(msg: &Message<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_with_limit(msg, out, MAX_DATAGRAM_LEN)
}

/// Encodes `msg` into `out` (cleared first), within `max` bytes.
pub fn encode_with_limit(
    msg: &Message<'_>,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), EncodeError> {
    let mut limits = Limits {
        values: usize::MAX,
        samples: usize::MAX,
    };
    // At most three passes: the first measures, the next ones trim lists by the excess.
    for _ in 0..3 {
        out.clear();
        write_message(msg, out, &limits);
        if out.len() <= max {
            return Ok(());
        }
        let excess = out.len() - max;
        let Body::Response(r) = &msg.body else { break };
        if !limits.trim(r, excess) {
            break;
        }
    }
    let len = out.len();
    out.clear();
    Err(EncodeError::TooLarge { len, max })
}

/// How many items of the trimmable lists to write.
struct Limits {
    values: usize,
    samples: usize,
}

impl Limits {
    /// Drops enough `values` (then `samples`) to save `excess` bytes; false if nothing is left
    /// to drop.
    fn trim(&mut self, r: &Response<'_>, mut excess: usize) -> bool {
        let mut trimmed = false;
        if let Some(values) = &r.values {
            let written: Vec<usize> = values
                .iter()
                .take(self.values)
                .map(|a| match Family::of(&a) {
                    Family::V4 => 8,
                    Family::V6 => 21,
                })
                .collect();
            let mut keep = written.len();
            while excess > 0 && keep > 0 {
                keep -= 1;
                excess = excess.saturating_sub(written[keep]);
                trimmed = true;
            }
            self.values = keep;
        }
        if excess > 0
            && let Some(samples) = &r.samples
        {
            let have = samples.len().min(self.samples);
            // 20 bytes a hash; one more hash covers a shorter length prefix.
            let drop = excess.div_ceil(20).min(have);
            self.samples = have - drop;
            trimmed |= drop > 0;
        }
        trimmed
    }
}

fn write_message(msg: &Message<'_>, out: &mut Vec<u8>, limits: &Limits) {
    out.push(b'd');
    match &msg.body {
        Body::Query(q) => {
            key(out, b"a");
            write_args(q, out);
            write_ip(msg, out);
            key(out, b"q");
            bytes(out, q.kind.method());
            if msg.read_only {
                key(out, b"ro");
                int(out, 1);
            }
        }
        Body::Response(r) => {
            write_ip(msg, out);
            key(out, b"r");
            write_response(r, out, limits);
            if msg.read_only {
                key(out, b"ro");
                int(out, 1);
            }
        }
        Body::Error(e) => {
            write_error(e, out);
            write_ip(msg, out);
            if msg.read_only {
                key(out, b"ro");
                int(out, 1);
            }
        }
    }
    key(out, b"t");
    bytes(out, msg.transaction_id.as_bytes());
    if let Some(v) = msg.version {
        key(out, b"v");
        bytes(out, v);
    }
    key(out, b"y");
    bytes(
        out,
        match msg.body {
            Body::Query(_) => b"q",
            Body::Response(_) => b"r",
            Body::Error(_) => b"e",
        },
    );
    out.push(b'e');
}

fn write_ip(msg: &Message<'_>, out: &mut Vec<u8>) {
    if let Some(ip) = &msg.requester_ip {
        key(out, b"ip");
        peer(out, ip);
    }
}

fn write_error(e: &ErrorBody<'_>, out: &mut Vec<u8>) {
    key(out, b"e");
    out.push(b'l');
    int(out, e.code.0);
    bytes(out, e.message);
    out.push(b'e');
}

fn write_args(q: &Query<'_>, out: &mut Vec<u8>) {
    out.push(b'd');
    match &q.kind {
        QueryKind::Ping => id(out, q),
        QueryKind::FindNode { target, want } | QueryKind::SampleInfohashes { target, want } => {
            id(out, q);
            key(out, b"target");
            bytes(out, target.as_bytes());
            write_want(out, *want);
        }
        QueryKind::GetPeers {
            info_hash,
            want,
            no_seed,
            scrape,
        } => {
            id(out, q);
            key(out, b"info_hash");
            bytes(out, info_hash.as_bytes());
            flag(out, b"noseed", *no_seed);
            flag(out, b"scrape", *scrape);
            write_want(out, *want);
        }
        QueryKind::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            seed,
        } => {
            id(out, q);
            flag(out, b"implied_port", *implied_port);
            key(out, b"info_hash");
            bytes(out, info_hash.as_bytes());
            key(out, b"port");
            int(out, i64::from(*port));
            flag(out, b"seed", *seed);
            key(out, b"token");
            bytes(out, token.as_bytes());
        }
        QueryKind::Get { target, seq, want } => {
            id(out, q);
            if let Some(seq) = seq {
                key(out, b"seq");
                int(out, *seq);
            }
            key(out, b"target");
            bytes(out, target.as_bytes());
            write_want(out, *want);
        }
        QueryKind::Put(p) => write_put(q, p, out),
        QueryKind::Unknown {
            target,
            info_hash,
            want,
            ..
        } => {
            id(out, q);
            if let Some(h) = info_hash {
                key(out, b"info_hash");
                bytes(out, h.as_bytes());
            }
            if let Some(t) = target {
                key(out, b"target");
                bytes(out, t.as_bytes());
            }
            write_want(out, *want);
        }
    }
    out.push(b'e');
}

fn write_put(q: &Query<'_>, p: &PutQuery<'_>, out: &mut Vec<u8>) {
    // Sorted: cas id k salt seq sig token v
    if let Some(m) = &p.mutable
        && let Some(cas) = m.cas
    {
        key(out, b"cas");
        int(out, cas);
    }
    id(out, q);
    if let Some(m) = &p.mutable {
        key(out, b"k");
        bytes(out, &m.key.0);
        if let Some(salt) = m.salt {
            key(out, b"salt");
            bytes(out, salt);
        }
        key(out, b"seq");
        int(out, m.seq);
        key(out, b"sig");
        bytes(out, &m.signature.0);
    }
    key(out, b"token");
    bytes(out, p.token.as_bytes());
    key(out, b"v");
    out.extend_from_slice(p.value.as_bytes());
}

fn write_response(r: &Response<'_>, out: &mut Vec<u8>, limits: &Limits) {
    // Sorted: BFpe BFsd id interval k nodes nodes6 num samples seq sig token v values
    out.push(b'd');
    if let Some(b) = r.peers_bloom {
        key(out, b"BFpe");
        bytes(out, b);
    }
    if let Some(b) = r.seeds_bloom {
        key(out, b"BFsd");
        bytes(out, b);
    }
    key(out, b"id");
    bytes(out, r.id.as_bytes());
    if let Some(i) = r.interval {
        key(out, b"interval");
        int(out, i64::try_from(i.as_secs()).unwrap_or(i64::MAX));
    }
    if let Some(k) = &r.key {
        key(out, b"k");
        bytes(out, &k.0);
    }
    if let Some(n) = &r.nodes {
        write_nodes(out, b"nodes", n, Family::V4);
    }
    if let Some(n) = &r.nodes6 {
        write_nodes(out, b"nodes6", n, Family::V6);
    }
    if let Some(n) = r.num {
        key(out, b"num");
        int(out, i64::try_from(n).unwrap_or(i64::MAX));
    }
    if let Some(s) = &r.samples {
        key(out, b"samples");
        let n = s.len().min(limits.samples);
        len_prefix(out, n * 20);
        for h in s.iter().take(n) {
            out.extend_from_slice(h.as_bytes());
        }
    }
    if let Some(seq) = r.seq {
        key(out, b"seq");
        int(out, seq);
    }
    if let Some(sig) = &r.signature {
        key(out, b"sig");
        bytes(out, &sig.0);
    }
    if let Some(t) = &r.token {
        key(out, b"token");
        bytes(out, t.as_bytes());
    }
    if let Some(v) = &r.value {
        key(out, b"v");
        out.extend_from_slice(v.as_bytes());
    }
    if let Some(values) = &r.values {
        key(out, b"values");
        out.push(b'l');
        for a in values.iter().take(limits.values) {
            peer(out, &a);
        }
        out.push(b'e');
    }
    out.push(b'e');
}

fn write_nodes(out: &mut Vec<u8>, name: &[u8], nodes: &Nodes<'_>, family: Family) {
    key(out, name);
    if let Some(bytes) = nodes.as_compact(family) {
        self::bytes(out, bytes);
        return;
    }
    let count = nodes
        .iter()
        .filter(|n: &NodeInfo| Family::of(&n.addr) == family)
        .count();
    len_prefix(out, count * family.node_len());
    for n in nodes.iter().filter(|n| Family::of(&n.addr) == family) {
        encode_node(&n, out);
    }
}

fn write_want(out: &mut Vec<u8>, want: Want) {
    if want.is_unspecified() {
        return;
    }
    key(out, b"want");
    out.push(b'l');
    if want.v4 {
        bytes(out, b"n4");
    }
    if want.v6 {
        bytes(out, b"n6");
    }
    out.push(b'e');
}

fn id(out: &mut Vec<u8>, q: &Query<'_>) {
    key(out, b"id");
    bytes(out, q.id.as_bytes());
}

fn flag(out: &mut Vec<u8>, name: &[u8], set: bool) {
    if set {
        key(out, name);
        int(out, 1);
    }
}

#[inline]
fn key(out: &mut Vec<u8>, k: &[u8]) {
    bytes(out, k);
}

#[inline]
fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    len_prefix(out, b.len());
    out.extend_from_slice(b);
}

fn peer(out: &mut Vec<u8>, addr: &SocketAddr) {
    len_prefix(out, Family::of(addr).peer_len());
    encode_peer(addr, out);
}

#[inline]
fn len_prefix(out: &mut Vec<u8>, n: usize) {
    decimal(out, n as u64);
    out.push(b':');
}

fn int(out: &mut Vec<u8>, i: i64) {
    out.push(b'i');
    if i < 0 {
        out.push(b'-');
    }
    decimal(out, i.unsigned_abs());
    out.push(b'e');
}

#[inline]
fn decimal(out: &mut Vec<u8>, mut n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while n > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeId, TransactionId, decode};

    #[test]
    fn bep5_ping_is_canonical() {
        let m = Message {
            transaction_id: TransactionId::new(b"aa").unwrap(),
            version: None,
            requester_ip: None,
            read_only: false,
            body: Body::Query(Query {
                id: NodeId(*b"abcdefghij0123456789"),
                kind: QueryKind::Ping,
            }),
        };
        let mut out = Vec::new();
        encode(&m, &mut out).unwrap();
        assert_eq!(
            out,
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
        );
        assert_eq!(decode(&out).unwrap(), m);
    }

    #[test]
    fn integers() {
        let mut out = Vec::new();
        for (i, s) in [
            (0i64, "i0e"),
            (-1, "i-1e"),
            (i64::MIN, "i-9223372036854775808e"),
            (1234, "i1234e"),
        ] {
            out.clear();
            int(&mut out, i);
            assert_eq!(out, s.as_bytes());
        }
    }
}
