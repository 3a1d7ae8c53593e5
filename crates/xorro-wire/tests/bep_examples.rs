//! The example messages of the BEPs, decoded with exact field checks and re-encoded byte for
//! byte (they are canonical bencode), and the decoder's error contract on malformed input.
//!
//! * BEP 5 gives ten bencoded examples; they are copied verbatim. Two of them carry the
//!   placeholder `nodes` value `def456...` (9 bytes, not compact node info), which the decoder
//!   must reject; the same messages with a real 26-byte contact round-trip.
//! * BEP 32, 33, 42, 43, 44 and 51 give message templates (or single keys) rather than
//!   bencoded strings: the messages here are those templates filled in with BEP 5's example
//!   values and the BEPs' own test vectors (BEP 33 Bloom filter, BEP 42 node ids, BEP 44
//!   keys and signatures).
//!
//! BEP texts: <https://github.com/bittorrent/bittorrent.org/tree/master/beps>.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use xorro_wire::bep33::BloomFilter;
use xorro_wire::bep42;
use xorro_wire::bep44;
use xorro_wire::decode::MAX_DEPTH;
use xorro_wire::{
    Body, DecodeError, DecodeErrorKind, ErrorCode, InfoHash, Message, NodeId, NodeInfo, Query,
    QueryKind, RawValue, Response, TransactionId, Want, decode, encode,
};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Decodes `bytes`, checks that encoding the message gives the same bytes back, and returns it.
fn roundtrip(bytes: &[u8]) -> Message<'_> {
    let m = decode(bytes).unwrap_or_else(|e| panic!("{}: {e:?}", bytes.escape_ascii()));
    let mut out = Vec::new();
    encode(&m, &mut out).unwrap();
    assert_eq!(
        out.escape_ascii().to_string(),
        bytes.escape_ascii().to_string(),
        "re-encoding changed the bytes"
    );
    m
}

/// Decodes `bytes` and checks that the re-encoded message decodes to the same message (for
/// inputs that are not canonical, or carry what the codec drops); returns the re-encoding.
fn reencoded(bytes: &[u8]) -> Vec<u8> {
    let m = decode(bytes).unwrap();
    let mut out = Vec::new();
    encode(&m, &mut out).unwrap();
    assert_eq!(decode(&out).unwrap(), m);
    out
}

fn decode_err(bytes: &[u8]) -> DecodeError {
    match decode(bytes) {
        Ok(m) => panic!("{} decoded to {m:?}", bytes.escape_ascii()),
        Err(e) => e,
    }
}

/// A bencoded byte string `<len>:<bytes>`.
fn bstr(b: &[u8]) -> Vec<u8> {
    let mut out = b.len().to_string().into_bytes();
    out.push(b':');
    out.extend_from_slice(b);
    out
}

fn hex<const N: usize>(s: &str) -> [u8; N] {
    let digits: String = s.split_whitespace().collect();
    hex::decode(digits).unwrap().try_into().unwrap()
}

fn aa() -> TransactionId {
    TransactionId::new(b"aa").unwrap()
}

fn id(s: &[u8; 20]) -> NodeId {
    NodeId(*s)
}

fn query<'m, 'a>(m: &'m Message<'a>) -> &'m Query<'a> {
    match &m.body {
        Body::Query(q) => q,
        other => panic!("expected a query, got {other:?}"),
    }
}

fn response<'m, 'a>(m: &'m Message<'a>) -> &'m Response<'a> {
    match &m.body {
        Body::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// The BEP 5 examples' envelope: `t = "aa"`, no `v`, `ip` or `ro`.
fn assert_plain(m: &Message<'_>) {
    assert_eq!(m.transaction_id, aa());
    assert_eq!(m.version, None);
    assert_eq!(m.requester_ip, None);
    assert!(!m.read_only);
}

const ABC: &[u8; 20] = b"abcdefghij0123456789";
const MNO: &[u8; 20] = b"mnopqrstuvwxyz123456";

/// A real 26-byte contact standing in for BEP 5's `def456...`: id, 127.0.0.1:6881.
fn contact() -> Vec<u8> {
    let mut c = b"def456...def456...00".to_vec();
    c.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
    c
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

// ---------------------------------------------------------------------------------------------
// BEP 5: every example packet.

#[test]
fn bep5_error() {
    let m = roundtrip(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee");
    assert_plain(&m);
    let Body::Error(e) = &m.body else {
        panic!("{m:?}")
    };
    assert_eq!(e.code, ErrorCode::GENERIC);
    assert_eq!(e.message, b"A Generic Error Ocurred"); // sic
}

#[test]
fn bep5_ping_query() {
    let m = roundtrip(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe");
    assert_plain(&m);
    assert_eq!(
        query(&m),
        &Query {
            id: id(ABC),
            kind: QueryKind::Ping
        }
    );
}

#[test]
fn bep5_ping_response() {
    let m = roundtrip(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re");
    assert_plain(&m);
    assert_eq!(response(&m), &Response::new(id(MNO)));
}

#[test]
fn bep5_find_node_query() {
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
    );
    assert_plain(&m);
    assert_eq!(
        query(&m),
        &Query {
            id: id(ABC),
            kind: QueryKind::FindNode {
                target: id(MNO),
                want: Want::UNSPECIFIED
            }
        }
    );
}

/// BEP 5's find_node response has `nodes` = `def456...`, 9 bytes: a placeholder, not a
/// multiple of 26. A response is never answered, so the error has no reply.
#[test]
fn bep5_find_node_response_placeholder_is_rejected() {
    let e = decode_err(b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re");
    assert_eq!(e.kind, DecodeErrorKind::InvalidValue("nodes"));
    assert_eq!(e.transaction_id, Some(aa()));
    assert!(!e.from_querier);
    assert_eq!(e.reply(), None);
}

#[test]
fn bep5_find_node_response() {
    let bytes = [
        &b"d1:rd2:id20:0123456789abcdefghij5:nodes"[..],
        &bstr(&contact()),
        b"e1:t2:aa1:y1:re",
    ]
    .concat();
    let m = roundtrip(&bytes);
    assert_plain(&m);
    let r = response(&m);
    assert_eq!(r.id, id(b"0123456789abcdefghij"));
    let nodes: Vec<NodeInfo> = r.nodes.unwrap().iter().collect();
    assert_eq!(
        nodes,
        [NodeInfo::new(id(b"def456...def456...00"), localhost(6881))]
    );
    assert_eq!(
        r,
        &Response {
            nodes: r.nodes,
            ..Response::new(r.id)
        }
    );
}

#[test]
fn bep5_get_peers_query() {
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
    );
    assert_plain(&m);
    assert_eq!(
        query(&m),
        &Query {
            id: id(ABC),
            kind: QueryKind::GetPeers {
                info_hash: InfoHash(*MNO),
                want: Want::UNSPECIFIED,
                no_seed: false,
                scrape: false,
            }
        }
    );
}

#[test]
fn bep5_get_peers_response_with_peers() {
    let m = roundtrip(
        b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
    );
    assert_plain(&m);
    let r = response(&m);
    assert_eq!(r.id, id(ABC));
    assert_eq!(r.token.unwrap().as_bytes(), b"aoeusnth");
    let values: Vec<SocketAddr> = r.values.unwrap().iter().collect();
    // "axje.u" and "idhtnm" read as compact peers.
    assert_eq!(
        values,
        [
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(b'a', b'x', b'j', b'e')), 0x2e75),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(b'i', b'd', b'h', b't')), 0x6e6d),
        ]
    );
    assert_eq!(r.nodes, None);
}

#[test]
fn bep5_get_peers_response_with_nodes_placeholder_is_rejected() {
    let e = decode_err(
        b"d1:rd2:id20:abcdefghij01234567895:nodes9:def456...5:token8:aoeusnthe1:t2:aa1:y1:re",
    );
    assert_eq!(e.kind, DecodeErrorKind::InvalidValue("nodes"));
    assert_eq!(e.reply(), None);
}

#[test]
fn bep5_get_peers_response_with_nodes() {
    let bytes = [
        &b"d1:rd2:id20:abcdefghij01234567895:nodes"[..],
        &bstr(&contact()),
        b"5:token8:aoeusnthe1:t2:aa1:y1:re",
    ]
    .concat();
    let m = roundtrip(&bytes);
    assert_plain(&m);
    let r = response(&m);
    assert_eq!(r.id, id(ABC));
    assert_eq!(r.token.unwrap().as_bytes(), b"aoeusnth");
    assert_eq!(r.nodes.unwrap().len(), 1);
    assert_eq!(r.values, None);
}

/// BEP 5's bencoded announce_peer example (an HTML `<br />` in the BEP's text removed). It
/// has no `implied_port`, although the dictionary form above it has `"implied_port": 1`.
#[test]
fn bep5_announce_peer_query() {
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
    );
    assert_plain(&m);
    let QueryKind::AnnouncePeer {
        info_hash,
        port,
        implied_port,
        token,
        seed,
    } = query(&m).kind
    else {
        panic!("{m:?}")
    };
    assert_eq!(query(&m).id, id(ABC));
    assert_eq!(info_hash, InfoHash(*MNO));
    assert_eq!(port, 6881);
    assert!(!implied_port);
    assert_eq!(token.as_bytes(), b"aoeusnth");
    assert!(!seed);
}

/// The dictionary form of the same example: `"implied_port": 1`.
#[test]
fn bep5_announce_peer_query_implied_port() {
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
    );
    let QueryKind::AnnouncePeer {
        port, implied_port, ..
    } = query(&m).kind
    else {
        panic!("{m:?}")
    };
    assert!(implied_port);
    assert_eq!(
        port, 6881,
        "kept as sent; the server uses the UDP source port"
    );
}

#[test]
fn bep5_announce_peer_response() {
    let m = roundtrip(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re");
    assert_plain(&m);
    assert_eq!(response(&m), &Response::new(id(MNO)));
}

// ---------------------------------------------------------------------------------------------
// BEP 44: the message templates, filled with the BEP's test vectors.

const HELLO: &[u8] = b"12:Hello World!";
/// Test 1 and 2: the public key.
const BEP44_KEY: &str = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";
/// Test 1 (no salt, seq 1).
const BEP44_SIG1: &str = "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff
                          1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01";
/// Test 2 (salt "foobar", seq 1).
const BEP44_SIG2: &str = "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d
                          df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08";

fn put_query_args<'a>(m: &Message<'a>) -> xorro_wire::PutQuery<'a> {
    match &query(m).kind {
        QueryKind::Put(p) => p.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bep44_put_immutable() {
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567895:token8:aoeusnth1:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe",
    );
    assert_plain(&m);
    let put = put_query_args(&m);
    assert_eq!(put.token.as_bytes(), b"aoeusnth");
    assert_eq!(put.value.as_bytes(), HELLO);
    assert_eq!(put.mutable, None);
    // Test 3 (immutable): the target.
    assert_eq!(
        bep44::immutable_target(&put.value).to_string(),
        "e5f96f6f38320f0f33959cb4d3d656452117aadb"
    );
    // The response: `{id}`.
    let m = roundtrip(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re");
    assert_eq!(response(&m), &Response::new(id(MNO)));
}

#[test]
fn bep44_get_immutable() {
    let target: [u8; 20] = hex("e5f96f6f38320f0f33959cb4d3d656452117aadb");
    let bytes = [
        &b"d1:ad2:id20:abcdefghij01234567896:target"[..],
        &bstr(&target),
        b"e1:q3:get1:t2:aa1:y1:qe",
    ]
    .concat();
    let m = roundtrip(&bytes);
    assert_eq!(
        query(&m).kind,
        QueryKind::Get {
            target: NodeId(target),
            seq: None,
            want: Want::UNSPECIFIED
        }
    );

    // "Responses to get should always include nodes and nodes6", a token and the value.
    let node6 = [&[7u8; 20][..], &Ipv6Addr::LOCALHOST.octets(), &[0x1a, 0xe1]].concat();
    let bytes = [
        &b"d1:rd2:id20:mnopqrstuvwxyz1234565:nodes"[..],
        &bstr(&contact()),
        b"6:nodes6",
        &bstr(&node6),
        b"5:token8:aoeusnth1:v12:Hello World!e1:t2:aa1:y1:re",
    ]
    .concat();
    let m = roundtrip(&bytes);
    let r = response(&m);
    let v = r.value.unwrap();
    assert_eq!(v.as_bytes(), HELLO);
    assert_eq!(bep44::immutable_target(&v), NodeId(target));
    assert_eq!(r.nodes.unwrap().len(), 1);
    let nodes6: Vec<NodeInfo> = r.nodes6.unwrap().iter().collect();
    assert_eq!(
        nodes6,
        [NodeInfo::new(
            NodeId([7; 20]),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 6881)
        )]
    );
    assert_eq!(r.token.unwrap().as_bytes(), b"aoeusnth");
    assert_eq!((r.key, r.signature, r.seq), (None, None, None));
}

/// Test 1: a mutable put without salt, and the item a get returns.
#[test]
fn bep44_mutable_test1() {
    let key: [u8; 32] = hex(BEP44_KEY);
    let sig: [u8; 64] = hex(BEP44_SIG1);
    let bytes = [
        &b"d1:ad2:id20:abcdefghij01234567891:k"[..],
        &bstr(&key),
        b"3:seqi1e3:sig",
        &bstr(&sig),
        b"5:token8:aoeusnth1:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe",
    ]
    .concat();
    let m = roundtrip(&bytes);
    let put = put_query_args(&m);
    let mutable = put.mutable.unwrap();
    assert_eq!(mutable.key, &key);
    assert_eq!(mutable.signature, &sig);
    assert_eq!((mutable.seq, mutable.salt, mutable.cas), (1, None, None));
    assert!(bep44::verify(
        &mutable.key,
        &mutable.signature,
        None,
        1,
        &put.value
    ));
    assert_eq!(
        bep44::mutable_target(&mutable.key, None).to_string(),
        "4a533d47ec9c7d95b1ad75f576cffc641853b750"
    );

    // get {id, seq, target} with seq 0, and the response {id, k, nodes, seq, sig, token, v}.
    let target = bep44::mutable_target(&mutable.key, None);
    let bytes = [
        &b"d1:ad2:id20:abcdefghij01234567893:seqi0e6:target"[..],
        &bstr(target.as_bytes()),
        b"e1:q3:get1:t2:aa1:y1:qe",
    ]
    .concat();
    let m = roundtrip(&bytes);
    assert_eq!(
        query(&m).kind,
        QueryKind::Get {
            target,
            seq: Some(0),
            want: Want::UNSPECIFIED
        }
    );
    let bytes = [
        &b"d1:rd2:id20:mnopqrstuvwxyz1234561:k"[..],
        &bstr(&key),
        b"5:nodes",
        &bstr(&contact()),
        b"3:seqi1e3:sig",
        &bstr(&sig),
        b"5:token8:aoeusnth1:v12:Hello World!e1:t2:aa1:y1:re",
    ]
    .concat();
    let m = roundtrip(&bytes);
    let r = response(&m);
    assert_eq!(r.key, Some(&key));
    assert_eq!(r.seq, Some(1));
    assert_eq!(r.value.unwrap().as_bytes(), HELLO);
    assert!(bep44::verify(
        &r.key.unwrap(),
        &r.signature.unwrap(),
        None,
        1,
        &r.value.unwrap()
    ));
}

/// Test 2: a mutable put with salt "foobar", and `cas`.
#[test]
fn bep44_mutable_test2_with_salt_and_cas() {
    let key: [u8; 32] = hex(BEP44_KEY);
    let sig: [u8; 64] = hex(BEP44_SIG2);
    let bytes = [
        &b"d1:ad3:casi1e2:id20:abcdefghij01234567891:k"[..],
        &bstr(&key),
        b"4:salt6:foobar3:seqi1e3:sig",
        &bstr(&sig),
        b"5:token8:aoeusnth1:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe",
    ]
    .concat();
    let m = roundtrip(&bytes);
    let put = put_query_args(&m);
    let mutable = put.mutable.unwrap();
    assert_eq!(mutable.salt, Some(&b"foobar"[..]));
    assert_eq!(mutable.cas, Some(1));
    assert_eq!(mutable.seq, 1);
    assert!(bep44::verify(
        &mutable.key,
        &mutable.signature,
        Some(b"foobar"),
        1,
        &put.value
    ));
    assert!(!bep44::verify(
        &mutable.key,
        &mutable.signature,
        None,
        1,
        &put.value
    ));
    assert_eq!(
        bep44::mutable_target(&mutable.key, mutable.salt).to_string(),
        "411eba73b6f087ca51a3795d9c8c938d365e32c1"
    );
}

/// A value may be any bencoded type; it is kept verbatim, even when not canonical.
#[test]
fn bep44_value_is_kept_verbatim() {
    let bytes = b"d1:ad2:id20:abcdefghij01234567895:token8:aoeusnth1:vd1:bi1e1:ai2eee1:q3:put1:t2:aa1:y1:qe";
    let m = roundtrip(bytes);
    assert_eq!(put_query_args(&m).value.as_bytes(), b"d1:bi1e1:ai2ee");
}

/// BEP 44's error codes, in the error message template.
#[test]
fn bep44_errors() {
    for (code, constant, text) in [
        (205, ErrorCode::VALUE_TOO_BIG, "message (v field) too big."),
        (206, ErrorCode::INVALID_SIGNATURE, "invalid signature"),
        (207, ErrorCode::SALT_TOO_BIG, "salt (salt field) too big."),
        (
            301,
            ErrorCode::CAS_MISMATCH,
            "the CAS hash mismatched, re-read value and try again.",
        ),
        (
            302,
            ErrorCode::SEQ_TOO_LOW,
            "sequence number less than current.",
        ),
    ] {
        let bytes = [
            format!("d1:eli{code}e").as_bytes(),
            &bstr(text.as_bytes()),
            b"e1:t2:aa1:y1:ee",
        ]
        .concat();
        let m = roundtrip(&bytes);
        let Body::Error(e) = &m.body else {
            panic!("{m:?}")
        };
        assert_eq!(e.code, constant);
        assert_eq!(e.code, ErrorCode(code));
        assert_eq!(e.message, text.as_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// BEP 51: sample_infohashes.

#[test]
fn bep51_query() {
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q17:sample_infohashes1:t2:aa1:y1:qe",
    );
    assert_eq!(
        query(&m),
        &Query {
            id: id(ABC),
            kind: QueryKind::SampleInfohashes {
                target: id(MNO),
                want: Want::UNSPECIFIED
            }
        }
    );
}

/// The response template `{id, nodes, samples}`, plus `interval` and `num` (in the BEP as
/// published; the copy of `bep_0051.rst` read for this test shows only the three keys).
#[test]
fn bep51_response() {
    let samples = [&[1u8; 20][..], &[2u8; 20]].concat();
    let bytes = [
        &b"d1:rd2:id20:mnopqrstuvwxyz1234568:intervali21600e5:nodes"[..],
        &bstr(&contact()),
        b"3:numi2e7:samples",
        &bstr(&samples),
        b"e1:t2:aa1:y1:re",
    ]
    .concat();
    let m = roundtrip(&bytes);
    let r = response(&m);
    assert_eq!(r.interval, Some(Duration::from_secs(21600)));
    assert_eq!(r.num, Some(2));
    let got: Vec<InfoHash> = r.samples.unwrap().iter().collect();
    assert_eq!(got, [InfoHash([1; 20]), InfoHash([2; 20])]);
    assert_eq!(r.nodes.unwrap().len(), 1);

    // "Nodes supporting this extension should always include the samples field in the
    // response, even when it is zero-length."
    let m = roundtrip(b"d1:rd2:id20:mnopqrstuvwxyz1234567:samples0:e1:t2:aa1:y1:re");
    assert!(response(&m).samples.unwrap().is_empty());

    // samples must be N × 20 bytes.
    let e = decode_err(b"d1:rd2:id20:mnopqrstuvwxyz1234567:samples3:abce1:t2:aa1:y1:re");
    assert_eq!(e.kind, DecodeErrorKind::InvalidValue("samples"));
    assert_eq!(e.reply(), None);
}

// ---------------------------------------------------------------------------------------------
// BEP 33: scrapes.

/// BEP 33's test vector: 192.0.2.0 - 192.0.2.255 and 2001:DB8:: - 2001:DB8::3E7 inserted.
const BEP33_FILTER: &str = "
    F6C3F5EA A07FFD91 BDE89F77 7F26FB2B FF37BDB8 FB2BBAA2 FD3DDDE7 BACFFF75 EE7CCBAE
    FE5EEDB1 FBFAFF67 F6ABFF5E 43DDBCA3 FD9B9FFD F4FFD3E9 DFF12D1B DF59DB53 DBE9FA5B
    7FF3B8FD FCDE1AFB 8BEDD7BE 2F3EE71E BBBFE93B CDEEFE14 8246C2BC 5DBFF7E7 EFDCF24F
    D8DC7ADF FD8FFFDF DDFFF7A4 BBEEDF5C B95CE81F C7FCFF1F F4FFFFDF E5F7FDCB B7FD79B3
    FA1FC77B FE07FFF9 05B7B7FF C7FEFEFF E0B8370B B0CD3F5B 7F2BD93F EB4386CF DD6F7FD5
    BFAF2E9E BFFFFEEC D67ADBF7 C67F17EF D5D75EBA 6FFEBA7F FF47A91E B1BFBB53 E8ABFB57
    62ABE8FF 237279BF EFBFEEF5 FFC5FEBF DFE5ADFF ADFEE1FB 737FFFFB FD9F6AEF FEEE76B6
    FD8F72EF";

#[test]
fn bep33_get_peers_noseed_scrape() {
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234566:noseedi1e6:scrapei1ee1:q9:get_peers1:t2:aa1:y1:qe",
    );
    assert_eq!(
        query(&m).kind,
        QueryKind::GetPeers {
            info_hash: InfoHash(*MNO),
            want: Want::UNSPECIFIED,
            no_seed: true,
            scrape: true,
        }
    );
    // 0 is the same as absent, and is not written back.
    let out = reencoded(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234566:noseedi0e6:scrapei0ee1:q9:get_peers1:t2:aa1:y1:qe",
    );
    assert_eq!(
        out,
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe"
    );
}

#[test]
fn bep33_announce_peer_seed() {
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e4:seedi1e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
    );
    let QueryKind::AnnouncePeer { seed, port, .. } = query(&m).kind else {
        panic!("{m:?}")
    };
    assert!(seed);
    assert_eq!(port, 6881);
}

#[test]
fn bep33_response_with_bloom_filters() {
    let peers: [u8; 256] = hex(BEP33_FILTER);
    let seeds = [0u8; 256];
    let bytes = [
        &b"d1:rd4:BFpe"[..],
        &bstr(&peers),
        b"4:BFsd",
        &bstr(&seeds),
        b"2:id20:mnopqrstuvwxyz1234565:token8:aoeusnth6:valuesl6:axje.uee1:t2:aa1:y1:re",
    ]
    .concat();
    let m = roundtrip(&bytes);
    let r = response(&m);
    assert_eq!(r.peers_bloom, Some(&peers));
    assert_eq!(r.seeds_bloom, Some(&seeds));
    assert_eq!(r.values.unwrap().len(), 1);
    let estimate = BloomFilter::from_bytes(r.peers_bloom.unwrap()).estimate_count();
    assert!((estimate - 1224.9308).abs() < 1e-3, "{estimate}");
    assert!(BloomFilter::from_bytes(r.seeds_bloom.unwrap()).is_empty());

    // "Each field must be 256 bytes in size."
    let bytes = [
        &b"d1:rd4:BFpe"[..],
        &bstr(&peers[..255]),
        b"2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
    ]
    .concat();
    assert_eq!(
        decode_err(&bytes).kind,
        DecodeErrorKind::InvalidValue("BFpe")
    );
}

// ---------------------------------------------------------------------------------------------
// BEP 43: read-only nodes.

/// "In each outgoing query message the read-only DHT node places a 'ro' key in the top-level
/// message dictionary and sets its value to 1. This will appear in the request as '2:roi1e'."
#[test]
fn bep43_read_only_query() {
    let m = roundtrip(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t2:aa1:y1:qe");
    assert!(m.read_only);
    assert_eq!(query(&m).kind, QueryKind::Ping);
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node2:roi1e1:t2:aa1:y1:qe",
    );
    assert!(m.read_only);
    // ro = 0 is not read-only, and is not written back.
    let out = reencoded(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi0e1:t2:aa1:y1:qe");
    assert_eq!(
        out,
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
    );
    assert!(!decode(&out).unwrap().read_only);
}

// ---------------------------------------------------------------------------------------------
// BEP 42: `ip` and secure node ids.

/// BEP 42's test vectors: (IP, node id).
const BEP42_VECTORS: [(&str, &str); 5] = [
    ("124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
    ("21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
    ("65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
    ("84.124.73.14", "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
    ("43.213.53.83", "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
];

/// "All DHT responses SHOULD include a top-level field called ip, containing a compact binary
/// representation of the requestor's IP and port."
#[test]
fn bep42_ip_in_responses() {
    for (ip, node_id) in BEP42_VECTORS {
        let ip: Ipv4Addr = ip.parse().unwrap();
        let node_id = NodeId(hex(node_id));
        let bytes = [
            &b"d2:ip"[..],
            &bstr(&[&ip.octets()[..], &[0x1a, 0xe1]].concat()),
            b"1:rd2:id",
            &bstr(node_id.as_bytes()),
            b"e1:t2:aa1:y1:re",
        ]
        .concat();
        let m = roundtrip(&bytes);
        assert_eq!(
            m.requester_addr(),
            Some(SocketAddr::new(IpAddr::V4(ip), 6881))
        );
        // The responder's id is secure for the address the vector gives it.
        assert!(bep42::is_secure(&response(&m).id, IpAddr::V4(ip)), "{ip}");
    }

    // IPv6: 16 bytes of address and 2 of port.
    let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let bytes = [
        &b"d2:ip"[..],
        &bstr(&[&v6.octets()[..], &[0xc8, 0xd5]].concat()),
        b"1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
    ]
    .concat();
    let m = roundtrip(&bytes);
    assert_eq!(
        m.requester_addr(),
        Some(SocketAddr::new(IpAddr::V6(v6), 51413))
    );

    // "Nodes that enforce the node-ID will respond with an error message": `ip` there too.
    let bytes = [
        &b"d1:eli203e14:Protocol Errore2:ip"[..],
        &bstr(&[124, 31, 75, 21, 0x1a, 0xe1]),
        b"1:t2:aa1:y1:ee",
    ]
    .concat();
    let m = roundtrip(&bytes);
    assert_eq!(
        m.requester_addr(),
        Some("124.31.75.21:6881".parse().unwrap())
    );
    assert!(matches!(m.body, Body::Error(_)));

    // An `ip` of another length is ignored, not an error.
    let m = decode(b"d2:ip5:abcde1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re").unwrap();
    assert_eq!(m.requester_ip, None);
}

// ---------------------------------------------------------------------------------------------
// BEP 32: IPv6 (`want`, `nodes6`, hybrid `values`).

#[test]
fn bep32_want() {
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe",
    );
    assert_eq!(
        query(&m).kind,
        QueryKind::FindNode {
            target: id(MNO),
            want: Want::BOTH
        }
    );
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:wantl2:n6ee1:q9:get_peers1:t2:aa1:y1:qe",
    );
    let QueryKind::GetPeers { want, .. } = query(&m).kind else {
        panic!("{m:?}")
    };
    assert_eq!(
        want,
        Want {
            v4: false,
            v6: true
        }
    );

    // "For future extensibility, other strings may be present in the list, and must be
    // silently ignored on reception." They are not written back.
    let out = reencoded(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n52:n6ee1:q9:find_node1:t2:aa1:y1:qe",
    );
    assert_eq!(
        out,
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe"
    );

    // Not a list: malformed (203).
    let e = decode_err(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:want2:n4e1:q9:find_node1:t2:aa1:y1:qe",
    );
    assert_eq!(e.kind, DecodeErrorKind::InvalidValue("want"));
    assert_eq!(e.reply(), Some((aa(), ErrorCode::PROTOCOL)));
}

#[test]
fn bep32_nodes6_and_hybrid_values() {
    let v6 = SocketAddr::new(IpAddr::V6("2001:db8::2".parse().unwrap()), 6881);
    let mut node6 = vec![9u8; 20];
    node6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
    node6.extend_from_slice(&[0x1a, 0xe1]);
    let mut peer6 = "2001:db8::2".parse::<Ipv6Addr>().unwrap().octets().to_vec();
    peer6.extend_from_slice(&[0x1a, 0xe1]);
    let bytes = [
        &b"d1:rd2:id20:mnopqrstuvwxyz1234565:nodes"[..],
        &bstr(&contact()),
        b"6:nodes6",
        &bstr(&[&node6[..], &node6].concat()),
        b"5:token8:aoeusnth6:valuesl6:axje.u",
        &bstr(&peer6),
        b"ee1:t2:aa1:y1:re",
    ]
    .concat();
    let m = roundtrip(&bytes);
    let r = response(&m);
    let nodes6: Vec<NodeInfo> = r.nodes6.unwrap().iter().collect();
    assert_eq!(nodes6, [NodeInfo::new(NodeId([9; 20]), v6); 2]);
    assert_eq!(r.nodes.unwrap().len(), 1);
    // "Implementations of this specification must be able to properly parse hybrid values
    // lists."
    let values: Vec<SocketAddr> = r.values.unwrap().iter().collect();
    assert_eq!(values.len(), 2);
    assert_eq!(values[1], v6);

    // nodes6 must be a multiple of 38 bytes (26 is IPv4's size).
    let bytes = [
        &b"d1:rd2:id20:mnopqrstuvwxyz1234566:nodes6"[..],
        &bstr(&contact()),
        b"e1:t2:aa1:y1:re",
    ]
    .concat();
    let e = decode_err(&bytes);
    assert_eq!(e.kind, DecodeErrorKind::InvalidValue("nodes6"));
    assert_eq!(e.reply(), None);
}

// ---------------------------------------------------------------------------------------------
// The decoder's error contract: what `DecodeError::reply` tells a server to do.

#[test]
fn missing_transaction_id_is_dropped() {
    let e = decode_err(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe");
    assert_eq!(e.kind, DecodeErrorKind::MissingKey("t"));
    assert_eq!(e.transaction_id, None);
    assert_eq!(e.reply(), None);
}

#[test]
fn query_without_id_gets_203_with_its_transaction_id() {
    let e = decode_err(b"d1:ade1:q4:ping1:t2:aa1:y1:qe");
    assert_eq!(e.kind, DecodeErrorKind::MissingKey("id"));
    assert_eq!(e.reply(), Some((aa(), ErrorCode::PROTOCOL)));
    // A short id too.
    let e = decode_err(b"d1:ad2:id5:abcdee1:q4:ping1:t2:aa1:y1:qe");
    assert_eq!(e.kind, DecodeErrorKind::InvalidValue("id"));
    assert_eq!(e.reply(), Some((aa(), ErrorCode::PROTOCOL)));
    // A query without `a` (libtorrent's "missing 'a' key").
    let e = decode_err(b"d1:q4:ping1:t2:aa1:y1:qe");
    assert_eq!(e.kind, DecodeErrorKind::MissingKey("a"));
    assert_eq!(e.reply(), Some((aa(), ErrorCode::PROTOCOL)));
}

#[test]
fn unknown_method_without_target_gets_204() {
    let e = decode_err(b"d1:ad2:id20:abcdefghij0123456789e1:q13:xorro_unknown1:t2:aa1:y1:qe");
    assert_eq!(e.kind, DecodeErrorKind::UnknownMethod);
    assert_eq!(e.reply(), Some((aa(), ErrorCode::METHOD_UNKNOWN)));
}

#[test]
fn unknown_method_with_target_decodes_keeping_it() {
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q13:xorro_unknown1:t2:aa1:y1:qe",
    );
    assert_eq!(
        query(&m).kind,
        QueryKind::Unknown {
            method: b"xorro_unknown",
            target: Some(id(MNO)),
            info_hash: None,
            want: Want::UNSPECIFIED,
        }
    );
    assert_eq!(query(&m).kind.method(), b"xorro_unknown");
    // With an info_hash instead.
    let m = roundtrip(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q13:xorro_unknown1:t2:aa1:y1:qe",
    );
    let QueryKind::Unknown {
        target, info_hash, ..
    } = query(&m).kind
    else {
        panic!("{m:?}")
    };
    assert_eq!((target, info_hash), (None, Some(InfoHash(*MNO))));
}

#[test]
fn response_with_bad_nodes_is_never_answered() {
    let bytes = [
        &b"d1:rd2:id20:mnopqrstuvwxyz1234565:nodes"[..],
        &bstr(&contact()[..25]),
        b"e1:t2:aa1:y1:re",
    ]
    .concat();
    let e = decode_err(&bytes);
    assert_eq!(e.kind, DecodeErrorKind::InvalidValue("nodes"));
    assert_eq!(e.transaction_id, Some(aa()));
    assert!(!e.from_querier);
    assert_eq!(e.reply(), None);
    // An error message that is malformed is not answered either.
    let e = decode_err(b"d1:e3:abc1:t2:aa1:y1:ee");
    assert_eq!(e.kind, DecodeErrorKind::InvalidValue("e"));
    assert_eq!(e.reply(), None);
}

#[test]
fn transaction_id_lengths() {
    for len in [1usize, 2, 3, 4, 8, 32] {
        let t: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let bytes = [
            &b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t"[..],
            &bstr(&t),
            b"1:y1:qe",
        ]
        .concat();
        let m = roundtrip(&bytes);
        assert_eq!(m.transaction_id.as_bytes(), &t[..], "length {len}");
    }
    for len in [0usize, 33, 64] {
        let bytes = [
            &b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t"[..],
            &bstr(&vec![b'a'; len]),
            b"1:y1:qe",
        ]
        .concat();
        let e = decode_err(&bytes);
        assert_eq!(e.kind, DecodeErrorKind::InvalidValue("t"), "length {len}");
        // No transaction id to answer with.
        assert_eq!(e.reply(), None, "length {len}");
    }
}

/// A full 64 KiB datagram of nested lists: TooDeep, quickly, without a stack overflow.
#[test]
fn deep_nesting_is_too_deep() {
    const LEN: usize = 64 * 1024;
    let prefix = b"d1:t2:aa1:y1:q1:x";
    let n = (LEN - prefix.len() - 1) / 2;
    let mut bytes = prefix.to_vec();
    bytes.resize(prefix.len() + n, b'l');
    bytes.resize(prefix.len() + 2 * n, b'e');
    bytes.push(b'e');
    assert_eq!(bytes.len(), LEN);
    let e = decode_err(&bytes);
    assert_eq!(e.kind, DecodeErrorKind::TooDeep);
    assert_eq!(e.reply(), Some((aa(), ErrorCode::PROTOCOL)));

    // Unterminated, before `t`: dropped.
    let mut bytes = b"d1:x".to_vec();
    bytes.resize(LEN, b'l');
    let e = decode_err(&bytes);
    assert_eq!(e.kind, DecodeErrorKind::TooDeep);
    assert_eq!(e.reply(), None);

    // Nested dictionaries inside the return values of a response: dropped.
    let mut bytes = b"d1:t2:aa1:y1:r1:rd2:id20:mnopqrstuvwxyz1234561:x".to_vec();
    while bytes.len() + 4 < LEN {
        bytes.extend_from_slice(b"d1:x");
    }
    let e = decode_err(&bytes);
    assert_eq!(e.kind, DecodeErrorKind::TooDeep);
    assert_eq!(e.reply(), None);

    // Inside a BEP 44 value, which may nest, the same bound holds.
    let mut bytes = b"d1:t2:aa1:y1:q1:q3:put1:ad2:id20:abcdefghij01234567895:token1:x1:v".to_vec();
    bytes.resize(LEN, b'l');
    assert_eq!(decode_err(&bytes).kind, DecodeErrorKind::TooDeep);
}

/// Values nested up to the bound decode; one level more does not.
#[test]
fn nesting_bound_is_max_depth() {
    let ping = |depth: usize| {
        // The message dictionary is level 1, so `x` may hold MAX_DEPTH - 1 more.
        let mut bytes = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:x".to_vec();
        bytes.extend(std::iter::repeat_n(b'l', depth));
        bytes.extend(std::iter::repeat_n(b'e', depth));
        bytes.extend_from_slice(b"1:y1:qe");
        bytes
    };
    assert!(decode(&ping(MAX_DEPTH - 1)).is_ok());
    assert_eq!(decode_err(&ping(MAX_DEPTH)).kind, DecodeErrorKind::TooDeep);
}

#[test]
fn raw_value_new_checks_one_value() {
    assert!(RawValue::new(HELLO).is_ok());
    assert!(RawValue::new(b"12:Hello World!x").is_err());
    assert!(RawValue::new(b"").is_err());
}
