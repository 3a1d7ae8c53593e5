//! Canonical KRPC encoding into a reused buffer.
//!
//! Keys are written in sorted order by construction (bencode requires it, and BEP 44
//! signatures depend on it), integers without leading zeros. A datagram never exceeds
//! [`MAX_DATAGRAM_LEN`] (BEP 32): a long `values` or `samples` list is trimmed to fit, and a
//! message that still does not fit is an [`EncodeError`] rather than an oversized packet.

use std::net::SocketAddr;

use crate::compact::{
    CompactAddr, Family, NODE_V4_LEN, NODE_V6_LEN, NodeInfo, Nodes, PEER_V4_LEN, PEER_V6_LEN, Peers,
};
use crate::id::ID_LEN;
use crate::message::{Body, Message, PutQuery, Query, QueryKind, Response, Want};

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
    out.clear();
    // A reused buffer grows once.
    out.reserve(MAX_DATAGRAM_LEN);
    write_message(msg, out, &Limits::NONE);
    if out.len() <= max {
        return Ok(());
    }
    encode_trimmed(msg, out, max)
}

/// Appends the encoding of `msg` to `out`, within [`MAX_DATAGRAM_LEN`] bytes, leaving what
/// `out` held before it untouched (on error, `out` is as it was). For a sender that queues
/// datagrams back to back in one buffer: no copy through a scratch buffer.
pub fn encode_append(msg: &Message<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.reserve(MAX_DATAGRAM_LEN);
    write_message(msg, out, &Limits::NONE);
    if out.len() - start <= MAX_DATAGRAM_LEN {
        return Ok(());
    }
    append_trimmed(msg, out, start)
}

/// The rest of [`encode_append`] for a message over the limit: trimmed apart, then appended.
#[cold]
#[inline(never)]
fn append_trimmed(msg: &Message<'_>, out: &mut Vec<u8>, start: usize) -> Result<(), EncodeError> {
    let mut first = out.split_off(start);
    let result = encode_trimmed(msg, &mut first, MAX_DATAGRAM_LEN);
    if result.is_ok() {
        out.extend_from_slice(&first);
    }
    result
}

/// The rest of [`encode_with_limit`] when the first pass (in `out`) is over `max`: at most
/// two more passes, each trimming the lists by the excess of the one before.
#[cold]
#[inline(never)]
fn encode_trimmed(msg: &Message<'_>, out: &mut Vec<u8>, max: usize) -> Result<(), EncodeError> {
    let mut limits = Limits::NONE;
    for pass in 0..3 {
        if pass > 0 {
            out.clear();
            write_message(msg, out, &limits);
            if out.len() <= max {
                return Ok(());
            }
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
    /// Everything is written.
    const NONE: Limits = Limits {
        values: usize::MAX,
        samples: usize::MAX,
    };

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
    // Keys in sorted order: a e ip q r ro t v y. Constant runs are written in one piece.
    match &msg.body {
        Body::Query(q) => {
            put(out, b"d1:ad");
            write_args(q, out);
            write_ip(msg, out);
            put(out, b"1:q");
            bytes(out, q.kind.method());
        }
        Body::Response(r) => {
            out.push(b'd');
            write_ip(msg, out);
            put(out, b"1:rd");
            write_response(r, out, limits);
        }
        Body::Error(e) => {
            put(out, b"d1:el");
            int(out, e.code.0);
            bytes(out, e.message);
            out.push(b'e');
            write_ip(msg, out);
        }
    }
    if msg.read_only {
        put(out, b"2:roi1e");
    }
    short_field(out, b't', msg.transaction_id.as_bytes());
    if let Some(v) = msg.version {
        short_field(out, b'v', v);
    }
    put(
        out,
        match msg.body {
            Body::Query(_) => b"1:y1:qe",
            Body::Response(_) => b"1:y1:re",
            Body::Error(_) => b"1:y1:ee",
        },
    );
}

#[inline(always)]
fn write_ip(msg: &Message<'_>, out: &mut Vec<u8>) {
    match msg.requester_ip {
        None => {}
        Some(CompactAddr::V4([i0, i1, i2, i3, p0, p1])) => put(
            out,
            &[b'2', b':', b'i', b'p', b'6', b':', i0, i1, i2, i3, p0, p1],
        ),
        Some(CompactAddr::V6(b)) => {
            put(out, b"2:ip18:");
            put(out, &b);
        }
    }
}

/// A one-letter key (`t`, `v`) and its string value; the usual two-byte transaction id and
/// four-byte version in one write.
#[inline(always)]
fn short_field(out: &mut Vec<u8>, key: u8, b: &[u8]) {
    if let Ok(&[b0, b1]) = <&[u8; 2]>::try_from(b) {
        put(out, &[b'1', b':', key, b'2', b':', b0, b1]);
    } else if let Ok(&[b0, b1, b2, b3]) = <&[u8; 4]>::try_from(b) {
        put(out, &[b'1', b':', key, b'4', b':', b0, b1, b2, b3]);
    } else {
        put(out, &[b'1', b':', key]);
        bytes(out, b);
    }
}

/// Appends `b`, with fixed-size copies for the common short lengths (method names, tokens)
/// rather than a call to `memcpy`.
#[inline(always)]
fn put_short(out: &mut Vec<u8>, b: &[u8]) {
    if let Ok(a) = <&[u8; 4]>::try_from(b) {
        put(out, a);
    } else if let Ok(a) = <&[u8; 8]>::try_from(b) {
        put(out, a);
    } else {
        out.extend_from_slice(b);
    }
}

/// The arguments `a`, after its `d`.
fn write_args(q: &Query<'_>, out: &mut Vec<u8>) {
    match &q.kind {
        QueryKind::Ping => id(out, q),
        QueryKind::FindNode { target, want } | QueryKind::SampleInfohashes { target, want } => {
            id(out, q);
            put(out, b"6:target20:");
            put(out, target.as_bytes());
            write_want(out, *want);
        }
        QueryKind::GetPeers {
            info_hash,
            want,
            no_seed,
            scrape,
        } => {
            id(out, q);
            put(out, b"9:info_hash20:");
            put(out, info_hash.as_bytes());
            if *no_seed {
                put(out, b"6:noseedi1e");
            }
            if *scrape {
                put(out, b"6:scrapei1e");
            }
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
            if *implied_port {
                put(out, b"12:implied_porti1e");
            }
            put(out, b"9:info_hash20:");
            put(out, info_hash.as_bytes());
            put(out, b"4:port");
            int(out, i64::from(*port));
            if *seed {
                put(out, b"4:seedi1e");
            }
            put(out, b"5:token");
            bytes(out, token.as_bytes());
        }
        QueryKind::Get { target, seq, want } => {
            id(out, q);
            if let Some(seq) = seq {
                put(out, b"3:seq");
                int(out, *seq);
            }
            put(out, b"6:target20:");
            put(out, target.as_bytes());
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
                put(out, b"9:info_hash20:");
                put(out, h.as_bytes());
            }
            if let Some(t) = target {
                put(out, b"6:target20:");
                put(out, t.as_bytes());
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
        put(out, b"3:cas");
        int(out, cas);
    }
    id(out, q);
    if let Some(m) = &p.mutable {
        put(out, b"1:k32:");
        put(out, m.key);
        if let Some(salt) = m.salt {
            put(out, b"4:salt");
            bytes(out, salt);
        }
        put(out, b"3:seq");
        int(out, m.seq);
        put(out, b"3:sig64:");
        put(out, m.signature);
    }
    put(out, b"5:token");
    bytes(out, p.token.as_bytes());
    put(out, b"1:v");
    out.extend_from_slice(p.value.as_bytes());
}

/// The return values `r`, after its `d`.
fn write_response(r: &Response<'_>, out: &mut Vec<u8>, limits: &Limits) {
    // Sorted: BFpe BFsd id interval k nodes nodes6 num samples seq sig token v values
    if let Some(b) = r.peers_bloom {
        put(out, b"4:BFpe256:");
        put(out, b);
    }
    if let Some(b) = r.seeds_bloom {
        put(out, b"4:BFsd256:");
        put(out, b);
    }
    put(out, b"2:id20:");
    put(out, r.id.as_bytes());
    if let Some(i) = r.interval {
        put(out, b"8:interval");
        int(out, i64::try_from(i.as_secs()).unwrap_or(i64::MAX));
    }
    if let Some(k) = &r.key {
        put(out, b"1:k32:");
        put(out, *k);
    }
    if let Some(n) = &r.nodes {
        put(out, b"5:nodes");
        write_nodes(out, n, Family::V4);
    }
    if let Some(n) = &r.nodes6 {
        put(out, b"6:nodes6");
        write_nodes(out, n, Family::V6);
    }
    if let Some(n) = r.num {
        put(out, b"3:num");
        int(out, i64::try_from(n).unwrap_or(i64::MAX));
    }
    if let Some(s) = &r.samples {
        put(out, b"7:samples");
        let n = s.len().min(limits.samples);
        len_prefix(out, n * ID_LEN);
        match s.as_compact() {
            Some(b) => out.extend_from_slice(b.get(..n * ID_LEN).unwrap_or(b)),
            None => {
                for h in s.iter().take(n) {
                    put(out, h.as_bytes());
                }
            }
        }
    }
    if let Some(seq) = r.seq {
        put(out, b"3:seq");
        int(out, seq);
    }
    if let Some(sig) = &r.signature {
        put(out, b"3:sig64:");
        put(out, *sig);
    }
    if let Some(t) = &r.token {
        put(out, b"5:token");
        bytes(out, t.as_bytes());
    }
    if let Some(v) = &r.value {
        put(out, b"1:v");
        out.extend_from_slice(v.as_bytes());
    }
    if let Some(values) = &r.values {
        put(out, b"6:valuesl");
        write_values(out, values, limits.values);
        out.push(b'e');
    }
    out.push(b'e');
}

/// The items of `values` (inside `l` … `e`), at most `limit` of them.
fn write_values(out: &mut Vec<u8>, values: &Peers<'_>, limit: usize) {
    if let Some(peers) = values.as_slice() {
        let peers = peers.get(..limit).unwrap_or(peers);
        // Usually all IPv4: written in one pass, else undone and written one by one.
        let mark = out.len();
        if fill_peers_v4(out, peers) {
            return;
        }
        out.truncate(mark);
        for a in peers {
            peer(out, a);
        }
    } else if let Some((items, count)) = values.as_bencoded()
        && count <= limit
    {
        // Decoded items are `6:` / `18:` strings, as `peer` writes them.
        out.extend_from_slice(items);
    } else {
        for a in values.iter().take(limit) {
            peer(out, &a);
        }
    }
}

/// Appends `peers` as `6:` strings, sized once and filled in place; false (and partly
/// written) if one is not IPv4.
fn fill_peers_v4(out: &mut Vec<u8>, peers: &[SocketAddr]) -> bool {
    const ITEM: usize = 2 + PEER_V4_LEN;
    let start = out.len();
    out.resize(start + peers.len() * ITEM, 0);
    let Some(dst) = out.get_mut(start..) else {
        return false;
    };
    for (dst, a) in dst.as_chunks_mut::<ITEM>().0.iter_mut().zip(peers) {
        let SocketAddr::V4(a) = a else {
            return false;
        };
        let [i0, i1, i2, i3] = a.ip().octets();
        let [p0, p1] = a.port().to_be_bytes();
        *dst = [b'6', b':', i0, i1, i2, i3, p0, p1];
    }
    true
}

/// The value of `nodes` / `nodes6`: the contacts of `family`, as one string.
fn write_nodes(out: &mut Vec<u8>, nodes: &Nodes<'_>, family: Family) {
    if let Some(bytes) = nodes.as_compact(family) {
        self::bytes(out, bytes);
        return;
    }
    if let Some(slice) = nodes.as_slice() {
        // Usually every contact is of the field's family: written in one pass, else undone.
        let mark = out.len();
        len_prefix(out, slice.len() * family.node_len());
        let complete = match family {
            Family::V4 => fill_nodes_v4(out, slice),
            Family::V6 => fill_nodes_v6(out, slice),
        };
        if complete {
            return;
        }
        out.truncate(mark);
    }
    let count = nodes
        .iter()
        .filter(|n: &NodeInfo| Family::of(&n.addr) == family)
        .count();
    len_prefix(out, count * family.node_len());
    for n in nodes.iter().filter(|n| Family::of(&n.addr) == family) {
        node(out, &n);
    }
}

/// Appends the compact node infos of `nodes`: sized once, then filled in place, with no
/// capacity check per contact. False (and partly written) if one is not IPv4.
#[inline(always)]
fn fill_nodes_v4(out: &mut Vec<u8>, nodes: &[NodeInfo]) -> bool {
    let start = out.len();
    out.resize(start + nodes.len() * NODE_V4_LEN, 0);
    let Some(dst) = out.get_mut(start..) else {
        return false;
    };
    for (dst, n) in dst.as_chunks_mut::<NODE_V4_LEN>().0.iter_mut().zip(nodes) {
        let SocketAddr::V4(a) = n.addr else {
            return false;
        };
        let (id, addr) = dst.split_at_mut(ID_LEN);
        id.copy_from_slice(&n.id.0);
        let (ip, port) = addr.split_at_mut(4);
        ip.copy_from_slice(&a.ip().octets());
        port.copy_from_slice(&a.port().to_be_bytes());
    }
    true
}

/// [`fill_nodes_v4`] for IPv6 contacts.
#[inline(always)]
fn fill_nodes_v6(out: &mut Vec<u8>, nodes: &[NodeInfo]) -> bool {
    let start = out.len();
    out.resize(start + nodes.len() * NODE_V6_LEN, 0);
    let Some(dst) = out.get_mut(start..) else {
        return false;
    };
    for (dst, n) in dst.as_chunks_mut::<NODE_V6_LEN>().0.iter_mut().zip(nodes) {
        let SocketAddr::V6(a) = n.addr else {
            return false;
        };
        let (id, addr) = dst.split_at_mut(ID_LEN);
        id.copy_from_slice(&n.id.0);
        let (ip, port) = addr.split_at_mut(16);
        ip.copy_from_slice(&a.ip().octets());
        port.copy_from_slice(&a.port().to_be_bytes());
    }
    true
}

/// One compact node info (26 or 38 bytes), written in one piece.
#[inline(always)]
fn node(out: &mut Vec<u8>, n: &NodeInfo) {
    match n.addr {
        SocketAddr::V4(a) => {
            let mut b = [0u8; NODE_V4_LEN];
            let (id, rest) = b.split_at_mut(ID_LEN);
            id.copy_from_slice(n.id.as_bytes());
            let (ip, port) = rest.split_at_mut(4);
            ip.copy_from_slice(&a.ip().octets());
            port.copy_from_slice(&a.port().to_be_bytes());
            put(out, &b);
        }
        SocketAddr::V6(a) => {
            let mut b = [0u8; NODE_V6_LEN];
            let (id, rest) = b.split_at_mut(ID_LEN);
            id.copy_from_slice(n.id.as_bytes());
            let (ip, port) = rest.split_at_mut(16);
            ip.copy_from_slice(&a.ip().octets());
            port.copy_from_slice(&a.port().to_be_bytes());
            put(out, &b);
        }
    }
}

/// One compact peer info as a string (`6:` + 6 bytes or `18:` + 18 bytes), in one piece.
#[inline(always)]
fn peer(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            let [i0, i1, i2, i3] = a.ip().octets();
            let [p0, p1] = a.port().to_be_bytes();
            put(out, &[b'6', b':', i0, i1, i2, i3, p0, p1]);
        }
        SocketAddr::V6(a) => {
            let mut b = [0u8; 3 + PEER_V6_LEN];
            let (head, rest) = b.split_at_mut(3);
            head.copy_from_slice(b"18:");
            let (ip, port) = rest.split_at_mut(16);
            ip.copy_from_slice(&a.ip().octets());
            port.copy_from_slice(&a.port().to_be_bytes());
            put(out, &b);
        }
    }
}

fn write_want(out: &mut Vec<u8>, want: Want) {
    match (want.v4, want.v6) {
        (false, false) => {}
        (true, false) => put(out, b"4:wantl2:n4e"),
        (false, true) => put(out, b"4:wantl2:n6e"),
        (true, true) => put(out, b"4:wantl2:n42:n6e"),
    }
}

#[inline(always)]
fn id(out: &mut Vec<u8>, q: &Query<'_>) {
    put(out, b"2:id20:");
    put(out, q.id.as_bytes());
}

/// Appends bytes. Always inlined, so that constant and fixed-size pieces become a few moves.
#[inline(always)]
fn put(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b);
}

/// A string: length prefix and bytes.
#[inline(always)]
fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    len_prefix(out, b.len());
    put_short(out, b);
}

/// `<n>:`
#[inline(always)]
fn len_prefix(out: &mut Vec<u8>, n: usize) {
    if n < 10 {
        put(out, &[b'0' + n as u8, b':']);
    } else if n < 100 {
        let [a, b] = digit_pair(n);
        put(out, &[a, b, b':']);
    } else if n < 1000 {
        let [a, b] = digit_pair(n % 100);
        put(out, &[b'0' + (n / 100) as u8, a, b, b':']);
    } else {
        decimal(out, n as u64);
        out.push(b':');
    }
}

/// The two decimal digits of `n` (below 100).
#[inline(always)]
fn digit_pair(n: usize) -> [u8; 2] {
    const PAIRS: [[u8; 2]; 100] = {
        let mut t = [[0u8; 2]; 100];
        let mut i = 0;
        while i < 100 {
            t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
            i += 1;
        }
        t
    };
    PAIRS.get(n).copied().unwrap_or([b'0'; 2])
}

/// `i<i>e`
fn int(out: &mut Vec<u8>, i: i64) {
    out.push(b'i');
    if i < 0 {
        out.push(b'-');
    }
    decimal(out, i.unsigned_abs());
    out.push(b'e');
}

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
    fn encode_append_keeps_what_was_there() {
        use crate::{NodeInfo, Nodes, Peers, PutQuery, RawValue, Response, Token, TokenRef};
        let nodes: Vec<NodeInfo> = (0..8u8)
            .map(|i| NodeInfo::new(NodeId([i; 20]), SocketAddr::from(([1, 2, 3, i], 1))))
            .collect();
        let peers: Vec<SocketAddr> = (0..300u16)
            .map(|i| SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881)))
            .collect();
        let message = |body| Message {
            transaction_id: TransactionId::from_u16(7),
            version: Some(b"XO01"),
            requester_ip: None,
            read_only: false,
            body,
        };
        let mut small = Response::new(NodeId([1; 20]));
        small.nodes = Some(Nodes::from_slice(&nodes));
        // Over the limit until its values are trimmed.
        let mut large = small.clone();
        large.values = Some(Peers::from_slice(&peers));
        let token = Token::new(b"12345678").unwrap();
        large.token = Some(token.as_token_ref());
        for m in [
            message(Body::Response(small)),
            message(Body::Response(large)),
        ] {
            let mut alone = Vec::new();
            encode(&m, &mut alone).unwrap();
            let mut out = b"queued before".to_vec();
            encode_append(&m, &mut out).unwrap();
            assert_eq!(&out[..13], b"queued before");
            assert_eq!(&out[13..], &alone[..]);
        }
        // Too large whatever is trimmed: an error, and the buffer as it was.
        let mut v = b"1000:".to_vec();
        v.extend([b'x'; 1000]);
        let put = message(Body::Query(Query {
            id: NodeId::ZERO,
            kind: QueryKind::Put(PutQuery {
                token: TokenRef::new(b"t").unwrap(),
                value: RawValue::new(&v).unwrap(),
                mutable: None,
            }),
        }));
        let mut out = b"queued before".to_vec();
        assert!(matches!(
            encode_append(&put, &mut out),
            Err(EncodeError::TooLarge { .. })
        ));
        assert_eq!(out, b"queued before");
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
        for (n, s) in [
            (0, "0:"),
            (9, "9:"),
            (10, "10:"),
            (208, "208:"),
            (1000, "1000:"),
        ] {
            out.clear();
            len_prefix(&mut out, n);
            assert_eq!(out, s.as_bytes());
        }
    }

    #[test]
    fn contacts_of_the_other_family_are_left_out() {
        use crate::{NodeInfo, Nodes, Peers, Response};
        let v4 = NodeInfo::new(NodeId([1; 20]), "1.2.3.4:5".parse().unwrap());
        let v6 = NodeInfo::new(NodeId([2; 20]), "[::1]:6".parse().unwrap());
        for nodes in [vec![v4, v6], vec![v6, v4], vec![v4, v4]] {
            let peers: Vec<_> = nodes.iter().map(|n| n.addr).collect();
            let mut r = Response::new(NodeId([3; 20]));
            r.nodes = Some(Nodes::from_slice(&nodes));
            r.nodes6 = Some(Nodes::from_slice(&nodes));
            r.values = Some(Peers::from_slice(&peers));
            let m = Message {
                transaction_id: TransactionId::from_u16(1),
                version: None,
                requester_ip: None,
                read_only: false,
                body: Body::Response(r),
            };
            let mut out = Vec::new();
            encode(&m, &mut out).unwrap();
            let Body::Response(back) = decode(&out).unwrap().body else {
                panic!("not a response")
            };
            let of = |f| nodes.iter().filter(|n| Family::of(&n.addr) == f).count();
            assert_eq!(back.nodes.unwrap().len(), of(Family::V4));
            assert_eq!(back.nodes6.unwrap().len(), of(Family::V6));
            assert!(back.values.unwrap().iter().eq(peers.iter().copied()));
        }
    }
}
