//! Property tests of the codec: every message kind survives `decode(encode(m)) == m`, any
//! bytes decode to a message or an error without panicking, and whatever decodes re-encodes
//! to a datagram that decodes to the same message.

#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use proptest::prelude::*;
use xorro_wire::{
    Body, ErrorBody, ErrorCode, Family, InfoHash, MAX_DATAGRAM_LEN, Message, MutablePut, NodeId,
    NodeInfo, Nodes, Peers, PutQuery, Query, QueryKind, RawValue, Response, Samples, TokenRef,
    TransactionId, Want, decode, encode,
};

/// Owned storage from which a borrowed [`Message`] of any kind is built.
#[derive(Debug, Clone)]
struct Spec {
    kind: u8,
    tid: Vec<u8>,
    version: Option<Vec<u8>>,
    ip: Option<SocketAddr>,
    read_only: bool,
    id: [u8; 20],
    target: [u8; 20],
    want: (bool, bool),
    flags: (bool, bool, bool),
    port: u16,
    token: Vec<u8>,
    seq: Option<i64>,
    cas: Option<i64>,
    salt: Option<Vec<u8>>,
    key: [u8; 32],
    sig: Vec<u8>,
    value: Vec<u8>,
    method: Vec<u8>,
    nodes: Option<Vec<NodeInfo>>,
    nodes6: Option<Vec<NodeInfo>>,
    values: Option<Vec<SocketAddr>>,
    blooms: (Option<Vec<u8>>, Option<Vec<u8>>),
    samples: Option<Vec<InfoHash>>,
    num: Option<u64>,
    interval: Option<u32>,
    error: (i64, Vec<u8>),
}

fn addr_v4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
}

fn addr_v6() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 16]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)))
}

fn node(addr: impl Strategy<Value = SocketAddr>) -> impl Strategy<Value = NodeInfo> {
    (any::<[u8; 20]>(), addr).prop_map(|(id, addr)| NodeInfo::new(NodeId(id), addr))
}

/// A small bencoded value: a string, an integer, a list or a dictionary.
fn bencoded() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| {
            let mut out = format!("{}:", b.len()).into_bytes();
            out.extend(b);
            out
        }),
        any::<i64>().prop_map(|i| format!("i{i}e").into_bytes()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                let mut out = b"l".to_vec();
                items.iter().for_each(|i| out.extend(i));
                out.push(b'e');
                out
            }),
            proptest::collection::btree_map("[a-z]{1,5}", inner, 0..4).prop_map(|m| {
                let mut out = b"d".to_vec();
                for (k, v) in m {
                    out.extend(format!("{}:{k}", k.len()).into_bytes());
                    out.extend(v);
                }
                out.push(b'e');
                out
            }),
        ]
    })
}

fn spec() -> impl Strategy<Value = Spec> {
    let head = (
        0u8..12,
        proptest::collection::vec(any::<u8>(), 1..=32),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        proptest::option::of(prop_oneof![addr_v4(), addr_v6()]),
        any::<bool>(),
        any::<[u8; 20]>(),
        any::<[u8; 20]>(),
        any::<(bool, bool)>(),
        any::<(bool, bool, bool)>(),
        any::<u16>(),
    );
    let bep44 = (
        proptest::collection::vec(any::<u8>(), 1..=64),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<i64>()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=64)),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 64),
        bencoded(),
        "[a-z_]{1,12}"
            .prop_filter("unknown", |m| !KNOWN.contains(&m.as_str()))
            .prop_map(String::into_bytes),
    );
    let lists = (
        proptest::option::of(proptest::collection::vec(node(addr_v4()), 0..8)),
        proptest::option::of(proptest::collection::vec(node(addr_v6()), 0..8)),
        proptest::option::of(proptest::collection::vec(
            prop_oneof![addr_v4(), addr_v6()],
            0..16,
        )),
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 256)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 256)),
        ),
        proptest::option::of(proptest::collection::vec(
            any::<[u8; 20]>().prop_map(InfoHash),
            0..8,
        )),
        proptest::option::of(0..=i64::MAX as u64),
        proptest::option::of(any::<u32>()),
        (any::<i64>(), proptest::collection::vec(any::<u8>(), 0..30)),
    );
    (head, bep44, lists).prop_map(
        |(
            (kind, tid, version, ip, read_only, id, target, want, flags, port),
            (token, seq, cas, salt, key, sig, value, method),
            (nodes, nodes6, values, blooms, samples, num, interval, error),
        )| Spec {
            kind,
            tid,
            version,
            ip,
            read_only,
            id,
            target,
            want,
            flags,
            port,
            token,
            seq,
            cas,
            salt,
            key,
            sig,
            value,
            method,
            nodes,
            nodes6,
            values,
            blooms,
            samples,
            num,
            interval,
            error,
        },
    )
}

const KNOWN: [&str; 7] = [
    "ping",
    "find_node",
    "get_peers",
    "announce_peer",
    "get",
    "put",
    "sample_infohashes",
];

impl Spec {
    fn message(&self) -> Message<'_> {
        let want = Want {
            v4: self.want.0,
            v6: self.want.1,
        };
        let target = NodeId(self.target);
        let token = TokenRef::new(&self.token).unwrap();
        let sig = <&[u8; 64]>::try_from(self.sig.as_slice()).unwrap();
        let value = RawValue::new(&self.value).unwrap();
        let query = |kind| {
            Body::Query(Query {
                id: NodeId(self.id),
                kind,
            })
        };
        let body = match self.kind {
            0 => query(QueryKind::Ping),
            1 => query(QueryKind::FindNode { target, want }),
            2 => query(QueryKind::GetPeers {
                info_hash: InfoHash(self.target),
                want,
                no_seed: self.flags.0,
                scrape: self.flags.1,
            }),
            3 => query(QueryKind::AnnouncePeer {
                info_hash: InfoHash(self.target),
                port: self.port,
                implied_port: self.flags.0,
                token,
                seed: self.flags.2,
            }),
            4 => query(QueryKind::Get {
                target,
                seq: self.seq,
                want,
            }),
            5 => query(QueryKind::Put(PutQuery {
                token,
                value,
                mutable: None,
            })),
            6 => query(QueryKind::Put(PutQuery {
                token,
                value,
                mutable: Some(MutablePut {
                    key: &self.key,
                    signature: sig,
                    seq: self.seq.unwrap_or(1),
                    salt: self.salt.as_deref(),
                    cas: self.cas,
                }),
            })),
            7 => query(QueryKind::SampleInfohashes { target, want }),
            8 => query(QueryKind::Unknown {
                method: &self.method,
                target: self.flags.0.then_some(target),
                info_hash: (!self.flags.0 || self.flags.1).then_some(InfoHash(self.id)),
                want,
            }),
            9 | 10 => {
                let mut r = Response::new(NodeId(self.id));
                r.nodes = self.nodes.as_deref().map(Nodes::from_slice);
                r.nodes6 = self.nodes6.as_deref().map(Nodes::from_slice);
                r.token = self.flags.0.then_some(token);
                r.values = self.values.as_deref().map(Peers::from_slice);
                r.seeds_bloom = self.blooms.0.as_deref().map(|b| b.try_into().unwrap());
                r.peers_bloom = self.blooms.1.as_deref().map(|b| b.try_into().unwrap());
                if self.kind == 10 {
                    r.value = Some(value);
                    r.key = self.flags.1.then_some(&self.key);
                    r.signature = self.flags.1.then_some(sig);
                    r.seq = self.seq;
                    r.samples = self.samples.as_deref().map(Samples::from_slice);
                    r.num = self.num;
                    r.interval = self.interval.map(|s| Duration::from_secs(u64::from(s)));
                }
                Body::Response(r)
            }
            _ => Body::Error(ErrorBody {
                code: ErrorCode(self.error.0),
                message: &self.error.1,
            }),
        };
        Message {
            transaction_id: TransactionId::new(&self.tid).unwrap(),
            version: self.version.as_deref(),
            requester_ip: self.ip.map(Into::into),
            read_only: self.read_only,
            body,
        }
    }
}

/// A valid datagram of any kind, for mutation.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    spec().prop_filter_map("fits", |s| {
        let mut out = Vec::new();
        encode(&s.message(), &mut out).ok().map(|()| out)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(s in spec()) {
        let m = s.message();
        let mut out = Vec::new();
        match encode(&m, &mut out) {
            Ok(()) => {
                prop_assert!(out.len() <= MAX_DATAGRAM_LEN);
                let back = decode(&out).map_err(|e| TestCaseError::fail(format!("{e}: {}", out.escape_ascii())))?;
                // Only `values` / `samples` may have been trimmed to fit.
                if let (Body::Response(a), Body::Response(b)) = (&m.body, &back.body) {
                    let mut a = a.clone();
                    let mut b = b.clone();
                    let kept: Vec<SocketAddr> = b.values.iter().flat_map(|v| v.iter()).collect();
                    let sent: Vec<SocketAddr> = a.values.iter().flat_map(|v| v.iter()).collect();
                    prop_assert!(sent.starts_with(&kept));
                    let kept_s: Vec<InfoHash> = b.samples.iter().flat_map(|v| v.iter()).collect();
                    let sent_s: Vec<InfoHash> = a.samples.iter().flat_map(|v| v.iter()).collect();
                    prop_assert!(sent_s.starts_with(&kept_s));
                    (a.values, b.values, a.samples, b.samples) = (None, None, None, None);
                    prop_assert_eq!(a, b);
                } else {
                    prop_assert_eq!(&back, &m);
                }
            }
            Err(xorro_wire::EncodeError::TooLarge { len, .. }) => {
                prop_assert!(len > MAX_DATAGRAM_LEN);
                prop_assert!(out.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_datagrams_decode_or_fail_cleanly(
        d in datagram(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = d;
        for (at, byte, op) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        if let Ok(m) = decode(&bytes) {
            // What we accept, we can re-encode and read back identically.
            let mut out = Vec::new();
            if encode(&m, &mut out).is_ok() {
                prop_assert_eq!(decode(&out).unwrap(), m);
            }
        }
    }
}

#[test]
fn long_values_are_trimmed_to_fit() {
    let peers: Vec<SocketAddr> = (0..300u16)
        .map(|i| SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881)))
        .collect();
    let mut r = Response::new(NodeId([1; 20]));
    r.values = Some(Peers::from_slice(&peers));
    r.token = TokenRef::new(b"12345678");
    let nodes: Vec<NodeInfo> = (0..8u8)
        .map(|i| NodeInfo::new(NodeId([i; 20]), SocketAddr::from(([1, 2, 3, i], 1))))
        .collect();
    r.nodes = Some(Nodes::from_slice(&nodes));
    let m = Message {
        transaction_id: TransactionId::from_u16(7),
        version: Some(b"XO01"),
        requester_ip: Some("1.2.3.4:5".parse::<std::net::SocketAddr>().unwrap().into()),
        read_only: false,
        body: Body::Response(r),
    };
    let mut out = Vec::new();
    encode(&m, &mut out).unwrap();
    assert!(out.len() <= MAX_DATAGRAM_LEN);
    assert!(
        out.len() > MAX_DATAGRAM_LEN - 8,
        "trimmed no more than needed: {}",
        out.len()
    );
    let back = decode(&out).unwrap();
    let Body::Response(b) = back.body else {
        panic!()
    };
    let n = b.values.unwrap().len();
    assert!((80..300).contains(&n), "{n} values kept");
    assert_eq!(b.nodes.unwrap().len(), 8);
}

#[test]
fn too_large_put_is_an_error() {
    let mut v = b"1000:".to_vec();
    v.extend([b'x'; 1000]);
    let m = Message {
        transaction_id: TransactionId::from_u16(7),
        version: None,
        requester_ip: None,
        read_only: false,
        body: Body::Query(Query {
            id: NodeId::ZERO,
            kind: QueryKind::Put(PutQuery {
                token: TokenRef::new(b"t").unwrap(),
                value: RawValue::new(&v).unwrap(),
                mutable: None,
            }),
        }),
    };
    let mut out = Vec::new();
    assert!(matches!(
        encode(&m, &mut out),
        Err(xorro_wire::EncodeError::TooLarge { .. })
    ));
}

#[test]
fn nodes_encoder_keeps_only_the_fields_family() {
    let mixed = [
        NodeInfo::new(NodeId([1; 20]), "1.2.3.4:1".parse().unwrap()),
        NodeInfo::new(NodeId([2; 20]), "[::1]:2".parse().unwrap()),
    ];
    let mut r = Response::new(NodeId::ZERO);
    r.nodes = Some(Nodes::from_slice(&mixed));
    r.nodes6 = Some(Nodes::from_slice(&mixed));
    let m = Message {
        transaction_id: TransactionId::from_u16(1),
        version: None,
        requester_ip: None,
        read_only: false,
        body: Body::Response(r),
    };
    let mut out = Vec::new();
    encode(&m, &mut out).unwrap();
    let Body::Response(b) = decode(&out).unwrap().body else {
        panic!()
    };
    let v4: Vec<_> = b.nodes.unwrap().iter().collect();
    let v6: Vec<_> = b.nodes6.unwrap().iter().collect();
    assert_eq!(v4, [mixed[0]]);
    assert_eq!(v6, [mixed[1]]);
    assert!(v4.iter().all(|n| Family::of(&n.addr) == Family::V4));
}
