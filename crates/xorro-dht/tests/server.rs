//! The server side seen from the wire: one node fed crafted datagrams directly (no cluster),
//! its replies decoded. Tokens, BEP 44 signature checks, rate limits, malformed input, BEP 43.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use xorro_dht::{Config, Event, ItemTarget, Node, Outcome};
use xorro_wire::bep44::{self, Keypair};
use xorro_wire::{
    Body, InfoHash, Message, MutablePut, NodeId, NodeInfo, Nodes, PutQuery, QueryKind, RawValue,
    Response, Token, TokenRef, TransactionId, Want, decode, encode,
};

const SEED: u64 = 0x5e;

fn node(seed: u64, now: Instant) -> Node {
    Node::new(
        Config {
            rng_seed: seed,
            ..Config::default()
        },
        now,
    )
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn get_peers(tid: u16, ih: InfoHash) -> Message<'static> {
    query(
        tid,
        NodeId([0x11; 20]),
        QueryKind::GetPeers {
            info_hash: ih,
            want: Want::UNSPECIFIED,
            no_seed: false,
            scrape: false,
        },
    )
}

fn announce(tid: u16, ih: InfoHash, token: &Token) -> Message<'_> {
    query(
        tid,
        NodeId([0x11; 20]),
        QueryKind::AnnouncePeer {
            info_hash: ih,
            port: 7000,
            implied_port: false,
            token: token.as_token_ref(),
            seed: false,
        },
    )
}

fn token_of(bytes: &[u8]) -> Token {
    match decode(bytes).unwrap().body {
        Body::Response(r) => r
            .token
            .expect("get_peers / get replies carry a token")
            .to_token(),
        other => panic!("seed {SEED}: expected a response, got {other:?}"),
    }
}

/// A token from get_peers is accepted after one rotation (5 min) and rejected after two; a
/// token never issued, or issued to another IP, gets 203.
#[test]
fn token_valid_for_one_rotation_then_rejected() {
    let start = t0();
    let mut n = node(SEED, start);
    let me = addr("192.0.2.10:6881");
    let ih = InfoHash([0xab; 20]);
    let token = token_of(&ask(&mut n, start, me, &get_peers(1, ih)));

    // Unknown token: 203.
    let forged = Token::new(b"not-a-token").unwrap();
    let r = ask(&mut n, start, me, &announce(2, ih, &forged));
    assert_eq!(
        error_code(&r),
        Some(203),
        "seed {SEED}: a forged token is refused"
    );
    // Our token from another IP: 203.
    let r = ask(
        &mut n,
        start,
        addr("192.0.2.11:6881"),
        &announce(3, ih, &token),
    );
    assert_eq!(
        error_code(&r),
        Some(203),
        "seed {SEED}: tokens are bound to the IP"
    );

    // After one rotation (5 min) the token still works.
    let t1 = start + Duration::from_secs(5 * 60 + 1);
    advance(&mut n, t1);
    let r = ask(&mut n, t1, me, &announce(4, ih, &token));
    assert_eq!(
        error_code(&r),
        None,
        "seed {SEED}: token refused after one rotation"
    );
    assert_eq!(n.peer_store().peer_count_of(&ih), 1);

    // After the second rotation it does not.
    let t2 = start + Duration::from_secs(10 * 60 + 1);
    advance(&mut n, t2);
    let r = ask(&mut n, t2, me, &announce(5, ih, &token));
    assert_eq!(
        error_code(&r),
        Some(203),
        "seed {SEED}: token accepted after two rotations"
    );
    // A fresh one works again.
    let fresh = token_of(&ask(&mut n, t2, me, &get_peers(6, ih)));
    let r = ask(&mut n, t2, me, &announce(7, ih, &fresh));
    assert_eq!(error_code(&r), None, "seed {SEED}");
}

fn put_query<'a>(
    tid: u16,
    token: &'a Token,
    v: &'a [u8],
    m: Option<MutablePut<'a>>,
) -> Message<'a> {
    query(
        tid,
        NodeId([0x22; 20]),
        QueryKind::Put(PutQuery {
            token: token.as_token_ref(),
            value: RawValue::new(v).unwrap(),
            mutable: m,
        }),
    )
}

/// BEP 44 on the server: a put with a bad signature gets 206 and stores nothing; a valid one
/// is stored; a lower seq gets 302; a wrong cas gets 301; an oversized salt 207.
#[test]
fn server_checks_bep44_puts() {
    let now = t0();
    let mut n = node(SEED + 1, now);
    let me = addr("192.0.2.20:6881");
    let kp = Keypair::from_seed([7; 32]);
    let key = kp.public_key();
    let salt: &[u8] = b"salt";
    let target = bep44::mutable_target(&key, Some(salt));
    let get = query(
        1,
        NodeId([0x22; 20]),
        QueryKind::Get {
            target,
            seq: None,
            want: Want::UNSPECIFIED,
        },
    );
    let token = token_of(&ask(&mut n, now, me, &get));
    let v: &[u8] = b"5:hello";
    let raw = RawValue::new(v).unwrap();
    let good = kp.sign(Some(salt), 2, &raw);
    let mut bad = good;
    bad.0[10] ^= 1;
    let m = |seq, signature, cas| MutablePut {
        key: &key.0,
        signature,
        seq,
        salt: Some(salt),
        cas,
    };

    // Tampered signature (or a value that does not match the signature): 206.
    let r = ask(
        &mut n,
        now,
        me,
        &put_query(2, &token, v, Some(m(2, &bad.0, None))),
    );
    assert_eq!(error_code(&r), Some(206), "seed {}", SEED + 1);
    let r = ask(
        &mut n,
        now,
        me,
        &put_query(3, &token, b"5:hellp", Some(m(2, &good.0, None))),
    );
    assert_eq!(error_code(&r), Some(206), "seed {}", SEED + 1);
    assert!(n.item_store().is_empty(), "a forged item was stored");

    // A good put is stored.
    let r = ask(
        &mut n,
        now,
        me,
        &put_query(4, &token, v, Some(m(2, &good.0, None))),
    );
    assert_eq!(error_code(&r), None, "seed {}", SEED + 1);
    assert_eq!(n.item_store().len(), 1);

    // Lower seq: 302. Wrong cas: 301.
    let low = kp.sign(Some(salt), 1, &raw);
    let r = ask(
        &mut n,
        now,
        me,
        &put_query(5, &token, v, Some(m(1, &low.0, None))),
    );
    assert_eq!(error_code(&r), Some(302), "seed {}", SEED + 1);
    let v3: &[u8] = b"5:world";
    let s3 = kp.sign(Some(salt), 3, &RawValue::new(v3).unwrap());
    let r = ask(
        &mut n,
        now,
        me,
        &put_query(6, &token, v3, Some(m(3, &s3.0, Some(1)))),
    );
    assert_eq!(error_code(&r), Some(301), "seed {}", SEED + 1);
    // The right cas succeeds.
    let r = ask(
        &mut n,
        now,
        me,
        &put_query(7, &token, v3, Some(m(3, &s3.0, Some(2)))),
    );
    assert_eq!(error_code(&r), None, "seed {}", SEED + 1);

    // Salt over 64 bytes: 207.
    let long = [b's'; 65];
    let sl = kp.sign(Some(&long), 1, &raw);
    let put = put_query(
        8,
        &token,
        v,
        Some(MutablePut {
            key: &key.0,
            signature: &sl.0,
            seq: 1,
            salt: Some(&long),
            cas: None,
        }),
    );
    assert_eq!(error_code(&ask(&mut n, now, me, &put)), Some(207));

    // A put with a bad token: 203.
    let nope = Token::new(b"nope").unwrap();
    let put = put_query(9, &nope, v3, Some(m(3, &s3.0, None)));
    assert_eq!(error_code(&ask(&mut n, now, me, &put)), Some(203));

    // What get returns is the last good item.
    let r = ask(&mut n, now, me, &get);
    match decode(&r).unwrap().body {
        Body::Response(r) => {
            assert_eq!(r.seq, Some(3));
            assert_eq!(r.value.map(|v| v.as_bytes()), Some(v3));
        }
        other => panic!("seed {}: {other:?}", SEED + 1),
    }
}

/// A node's `get` lookup rejects forged items in responses: a value whose signature does not
/// verify (mutable) or whose hash is not the target (immutable) is never reported; a genuine
/// one is. The remote node is played by hand.
#[test]
fn lookup_rejects_tampered_items() {
    let now = t0();
    let mut a = node(SEED + 2, now);
    let remote = addr("192.0.2.30:6881");
    let remote_id = NodeId([0x33; 20]);

    // Bootstrap through the hand-played remote node.
    let boot = a.start_bootstrap(&[remote], now).unwrap();
    let out = drain(&mut a);
    let (_, q) = out.iter().find(|(to, _)| *to == remote).unwrap();
    let tid = decode(q).unwrap().transaction_id;
    respond(&mut a, now, remote, tid, Response::new(remote_id));
    let boot_done = events(&mut a).into_iter().any(
        |e| matches!(e, Event::CommandFinished { id, outcome: Outcome::Closest(_), .. } if id == boot),
    );
    assert!(boot_done, "seed {}: bootstrap did not finish", SEED + 2);

    let kp = Keypair::from_seed([9; 32]);
    let key = kp.public_key();
    let salt = b"s".to_vec();
    let v: &[u8] = b"3:abc";
    let raw = RawValue::new(v).unwrap();
    let good = kp.sign(Some(&salt), 5, &raw);
    let mut bad = good;
    bad.0[0] ^= 0x80;

    for (forged, sig) in [(true, bad), (false, good)] {
        let target = ItemTarget::Mutable {
            key,
            salt: salt.clone(),
            min_seq: None,
        };
        let id = a.start_get_item(target, now).unwrap();
        let out = drain(&mut a);
        let (_, q) = out.iter().find(|(to, _)| *to == remote).unwrap();
        let tid = decode(q).unwrap().transaction_id;
        let mut r = Response::new(remote_id);
        r.value = Some(raw);
        r.key = Some(&key.0);
        r.signature = Some(&sig.0);
        r.seq = Some(5);
        r.token = TokenRef::new(b"tok1");
        respond(&mut a, now, remote, tid, r);
        let evs = events(&mut a);
        let found = evs
            .iter()
            .any(|e| matches!(e, Event::ItemFound { id: i, .. } if *i == id));
        let outcome = evs.iter().find_map(|e| match e {
            Event::CommandFinished { id: i, outcome, .. } if *i == id => Some(outcome.clone()),
            _ => None,
        });
        if forged {
            assert!(!found, "seed {}: a forged item was reported", SEED + 2);
            assert_eq!(outcome, Some(Outcome::Item(None)), "seed {}", SEED + 2);
        } else {
            assert!(
                found,
                "seed {}: the genuine item was not reported",
                SEED + 2
            );
            assert!(
                matches!(&outcome, Some(Outcome::Item(Some(item))) if item.seq() == Some(5) && item.value() == v),
                "seed {}: {outcome:?}",
                SEED + 2
            );
        }
    }

    // Immutable: a value that does not hash to the target is dropped.
    let real: &[u8] = b"4:real";
    let target = bep44::immutable_target(&RawValue::new(real).unwrap());
    let id = a
        .start_get_item(ItemTarget::Immutable(target), now)
        .unwrap();
    let out = drain(&mut a);
    let (_, q) = out.iter().find(|(to, _)| *to == remote).unwrap();
    let tid = decode(q).unwrap().transaction_id;
    let mut r = Response::new(remote_id);
    r.value = Some(RawValue::new(b"4:fake").unwrap());
    respond(&mut a, now, remote, tid, r);
    let evs = events(&mut a);
    assert!(
        evs.iter().any(|e| matches!(e, Event::CommandFinished { id: i, outcome: Outcome::Item(None), .. } if *i == id)),
        "seed {}: {evs:?}",
        SEED + 2
    );
}

fn respond(n: &mut Node, now: Instant, from: SocketAddr, tid: TransactionId, r: Response<'_>) {
    let msg = Message {
        transaction_id: tid,
        version: None,
        requester_ip: None,
        read_only: false,
        body: Body::Response(r),
    };
    let mut bytes = Vec::new();
    encode(&msg, &mut bytes).unwrap();
    n.handle_datagram(now, from, &bytes);
    drain(n);
}

/// The reply to `to` whose transaction id is `tid` (the node may also ping the sender).
fn reply_with<'a>(
    out: &'a [(SocketAddr, Vec<u8>)],
    to: SocketAddr,
    tid: &[u8],
) -> Option<Message<'a>> {
    out.iter()
        .filter(|(d, _)| *d == to)
        .filter_map(|(_, b)| decode(b).ok())
        .find(|m| m.transaction_id.as_bytes() == tid)
}

fn events(n: &mut Node) -> Vec<Event> {
    std::iter::from_fn(|| n.poll_event()).collect()
}

/// Thousands of pings from one IP: replies are capped by the per-IP budget and the rest are
/// counted as rate-limited, while pings from other IPs arriving in the middle of the flood
/// are all answered.
#[test]
fn flood_from_one_ip_is_limited_others_still_answered() {
    let start = t0();
    let mut n = node(SEED + 3, start);
    let flooder = addr("203.0.113.7:4000");
    let ping = |tid| query(tid, NodeId([0x44; 20]), QueryKind::Ping);
    let (mut flood_replies, mut other_replies, mut others) = (0u64, 0u64, 0u64);
    let flood = 5_000u64;
    let step = Duration::from_millis(1);
    for i in 0..flood {
        let now = start + step * i as u32;
        let out = deliver(&mut n, now, flooder, &ping(i as u16));
        flood_replies += u64::from(reply_in(&out, flooder, i as u16).is_some());
        if i % 10 == 0 {
            // Someone else, from its own address.
            let k = i / 10;
            let other = SocketAddr::from(([198, 51, (k >> 8) as u8, k as u8], 6881));
            let out = deliver(&mut n, now, other, &ping(i as u16));
            others += 1;
            other_replies += u64::from(reply_in(&out, other, i as u16).is_some());
        }
    }
    let secs = (step * flood as u32).as_secs_f64();
    let cap = 50.0 + 10.0 * secs; // default burst + rate × time
    let stats = n.stats();
    eprintln!(
        "seed {}: {flood} pings from one IP over {secs} s: {flood_replies} answered (cap {cap}), \
         {} rate-limited; {other_replies}/{others} from other IPs answered",
        SEED + 3,
        stats.drops.rate_limited
    );
    assert!(
        (flood_replies as f64) <= cap + 1.0,
        "seed {}: {flood_replies} replies to the flooder, cap {cap}",
        SEED + 3
    );
    assert!(
        flood_replies >= 50,
        "seed {}: the burst is served",
        SEED + 3
    );
    assert_eq!(
        stats.drops.rate_limited,
        flood - flood_replies,
        "seed {}: every unanswered flood ping is counted",
        SEED + 3
    );
    assert_eq!(
        other_replies,
        others,
        "seed {}: other IPs starved",
        SEED + 3
    );
}

/// Bad input: garbage is dropped silently and counted; a query with a bad argument gets 203
/// with its tid; an unknown method gets 204 without a target and nodes (like find_node) with
/// one.
#[test]
fn malformed_datagrams_get_the_right_answer() {
    let now = t0();
    let mut n = node(SEED + 4, now);
    // Give it contacts so that find_node-like replies carry nodes.
    for i in 1..=20u8 {
        let from = SocketAddr::from(([10, 0, 0, i], 6881));
        let id = NodeId([i; 20]);
        n.start_ping(from, now);
        let out = drain(&mut n);
        let (_, q) = out.iter().find(|(to, _)| *to == from).unwrap();
        let tid = decode(q).unwrap().transaction_id;
        respond(&mut n, now, from, tid, Response::new(id));
    }
    assert!(n.routing_table(xorro_wire::Family::V4).len() >= 8);
    let me = addr("192.0.2.40:6881");

    for garbage in [
        &b""[..],
        b"hello",
        b"d1:y1:qe",
        b"\xff\x00\x13",
        b"d1:t2:aa1:y1:r1:rd2:id3:abcee",
        b"lllllllllllllllllllllllllllllllllllllllllllllllllll",
    ] {
        let before = n.stats().drops.malformed;
        n.handle_datagram(now, me, garbage);
        let out = drain(&mut n);
        assert!(out.is_empty(), "seed {}: replied to {garbage:?}", SEED + 4);
        assert_eq!(
            n.stats().drops.malformed,
            before + 1,
            "seed {}: {garbage:?} not counted",
            SEED + 4
        );
    }

    // find_node with a 19-byte target: 203 with our tid.
    let bad = b"d1:ad2:id20:abcdefghij01234567896:target19:abcdefghij012345678e1:q9:find_node1:t2:zz1:y1:qe";
    n.handle_datagram(now, me, bad);
    let out = drain(&mut n);
    let m = reply_with(&out, me, b"zz").expect("an error reply");
    assert!(
        matches!(m.body, Body::Error(ref e) if e.code.0 == 203),
        "{m:?}"
    );

    // Unknown method, no target: 204.
    let unknown = b"d1:ad2:id20:abcdefghij0123456789e1:q6:frobne1:t2:yy1:y1:qe";
    n.handle_datagram(now, me, unknown);
    let out = drain(&mut n);
    let m = reply_with(&out, me, b"yy").expect("an error reply");
    assert!(
        matches!(m.body, Body::Error(ref e) if e.code.0 == 204),
        "{m:?}"
    );

    // Unknown method with a target: nodes, like find_node.
    let with_target =
        b"d1:ad2:id20:abcdefghij01234567896:target20:\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05e1:q6:frobne1:t2:xx1:y1:qe";
    n.handle_datagram(now, me, with_target);
    let out = drain(&mut n);
    let m = reply_with(&out, me, b"xx").expect("a reply");
    match m.body {
        Body::Response(r) => {
            let nodes: Vec<NodeInfo> = r.nodes.as_ref().map(Nodes::iter).unwrap().collect();
            assert_eq!(nodes.len(), 8, "seed {}", SEED + 4);
            assert_eq!(nodes[0].id, NodeId([5; 20]), "closest first");
        }
        other => panic!("seed {}: {other:?}", SEED + 4),
    }
    assert_eq!(n.stats().queries.unknown, 1);
}

/// BEP 43: a read-only node answers nothing, counts what it dropped, and says `ro=1` in its
/// own queries.
#[test]
fn read_only_node_never_answers() {
    let now = t0();
    let mut n = Node::new(
        Config {
            rng_seed: SEED + 5,
            read_only: true,
            ..Config::default()
        },
        now,
    );
    let me = addr("192.0.2.50:6881");
    let out = deliver(&mut n, now, me, &query(1, NodeId([1; 20]), QueryKind::Ping));
    assert!(out.is_empty());
    let out = deliver(&mut n, now, me, &get_peers(2, InfoHash([3; 20])));
    assert!(out.is_empty());
    n.handle_datagram(
        now,
        me,
        b"d1:ad2:id20:abcdefghij0123456789e1:q6:frobne1:t2:yy1:y1:qe",
    );
    assert!(drain(&mut n).is_empty(), "not even errors");
    assert_eq!(n.stats().drops.read_only, 2);
    n.start_ping(me, now);
    let out = drain(&mut n);
    assert!(decode(&out[0].1).unwrap().read_only, "queries carry ro=1");
}
