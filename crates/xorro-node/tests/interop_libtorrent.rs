//! Interop with libtorrent-rasterbar 2.0 (Debian's python3-libtorrent) on loopback: each side
//! bootstraps from the other and ends up in the other's routing table, lookups, announce and
//! get_peers, BEP 44 immutable and mutable items, in both directions.
//!
//! The libtorrent nodes run `interop/peers/libtorrent_peer.py` (settings and why in
//! docs/INTEROP.md). What libtorrent cannot be asked to do from Python, and how it is covered:
//!
//! * it has no ping or find_node call, and sends neither on its own (bootstrap, refresh and
//!   liveness checks are all `get_peers`): "libtorrent pings Xorro" is checked as libtorrent
//!   sending queries to a Xorro node, getting answers, and keeping it in its table;
//! * Debian's bindings of 2.0.8 cannot call `dht_announce`: it announces by adding a
//!   trackerless magnet, with its listen port;
//! * it can only put BEP 44 items whose value is a string.
//!
//! Missing libtorrent fails these tests (run ./scripts/install-peers.sh); they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../interop/peers/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use harness::{Impl, Peer, bstr, eventually, info_hash, ip, unhex, xorro, xorro_table};
use serde_json::json;
use xorro_node::Dht;
use xorro_wire::bep44::Keypair;
use xorro_wire::{InfoHash, NodeId};

/// 127.31.<test>.<host>
const FILE: u8 = 31;
const LT: Impl = Impl::Libtorrent;
/// Bound on anything the network does by itself (a routing table filling).
const SETTLE: Duration = Duration::from_secs(30);
/// Bound on a whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);

async fn in_table(table: &[(NodeId, SocketAddr)], addr: SocketAddr) -> bool {
    table.iter().any(|(_, a)| *a == addr)
}

/// Three Xorro and two libtorrent nodes, bootstrapped in a chain that alternates between the
/// implementations (X0 <- L0 <- X1 <- L1 <- X2), then every libtorrent node told about every
/// Xorro node, as a user's client would learn them; returns once every node knows all others.
async fn network(test: u8) -> (Vec<Dht>, Vec<Peer>) {
    let x0 = xorro(ip(FILE, test, 1), &[]).await;
    let mut l0 = Peer::start(LT, ip(FILE, test, 11), &[]).await;
    l0.add_nodes(&[x0.local_addr()]).await;
    let x1 = xorro(ip(FILE, test, 2), &[l0.addr]).await;
    let mut l1 = Peer::start(LT, ip(FILE, test, 12), &[]).await;
    l1.add_nodes(&[x1.local_addr()]).await;
    let x2 = xorro(ip(FILE, test, 3), &[l1.addr]).await;
    let xs = vec![x0, x1, x2];
    let all_x: Vec<SocketAddr> = xs.iter().map(Dht::local_addr).collect();
    let mut ls = vec![l0, l1];
    for l in &mut ls {
        l.add_nodes(&all_x).await;
    }
    let n = xs.len() + ls.len();
    let xs_ready = eventually(SETTLE, || async {
        for x in &xs {
            if xorro_table(x).await.len() < n - 1 {
                return false;
            }
        }
        true
    })
    .await;
    assert!(xs_ready, "every Xorro node knows the 4 others");
    for l in &mut ls {
        let table = l.routing_table().await;
        assert!(
            table.len() >= xs.len(),
            "libtorrent {} knows the Xorro nodes: {table:?}",
            l.addr
        );
    }
    (xs, ls)
}

async fn shutdown(xs: Vec<Dht>, ls: Vec<Peer>) {
    for l in ls {
        l.quit().await;
    }
    for x in xs {
        x.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_both_ways_routing_tables_ping_find_node() {
    harness::retry_once_if_a_peer_crashes(bootstrap_both_ways_routing_tables_ping_find_node_once)
        .await;
}

async fn bootstrap_both_ways_routing_tables_ping_find_node_once() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // libtorrent bootstraps from a Xorro node.
        let x0 = xorro(ip(FILE, 1, 1), &[]).await;
        let mut lt = Peer::start(LT, ip(FILE, 1, 11), &[]).await;
        lt.add_nodes(&[x0.local_addr()]).await;
        // A Xorro node bootstraps from libtorrent, which knows x0 and hands it out.
        let x1 = xorro(ip(FILE, 1, 2), &[lt.addr]).await;

        let found = eventually(SETTLE, || async {
            let t0 = xorro_table(&x0).await;
            let t1 = xorro_table(&x1).await;
            in_table(&t0, lt.addr).await
                && in_table(&t1, lt.addr).await
                && in_table(&t1, x0.local_addr()).await
        })
        .await;
        assert!(
            found,
            "libtorrent is in both Xorro tables and x1 learned x0 from it: x0 {:?}, x1 {:?}",
            xorro_table(&x0).await,
            xorro_table(&x1).await
        );
        // libtorrent adds nodes that query it after pinging them (get_peers) on its 5 s tick.
        let (found, lt_table) = lt
            .wait_for_contacts(&[x0.local_addr(), x1.local_addr()], SETTLE)
            .await;
        assert!(
            found,
            "both Xorro nodes in libtorrent's table: {lt_table:?}"
        );
        let x0_id = x0.status().await.unwrap().id;
        let x1_id = x1.status().await.unwrap().id;
        assert!(
            lt_table.contains(&(x0_id, x0.local_addr())),
            "libtorrent holds x0 with its id"
        );
        assert!(lt_table.contains(&(x1_id, x1.local_addr())));

        // Xorro -> libtorrent: ping, and find_node lookups through it.
        let pong = x1.ping(lt.addr).await.unwrap();
        assert_eq!(pong.id, lt.id, "ping returns libtorrent's id");
        let closest = x1.find_node(lt.id).await.unwrap();
        assert_eq!(closest.first().map(|n| n.addr), Some(lt.addr));
        let closest = x1.find_node(x0_id).await.unwrap();
        assert_eq!(
            closest.first().map(|n| n.addr),
            Some(x0.local_addr()),
            "find_node finds x0"
        );

        // libtorrent -> Xorro: its own lookup (get_peers, which libtorrent also uses to ping)
        // for x1's id goes through both Xorro nodes; they answered every query it sent them.
        lt.call(json!({"cmd": "get_peers", "info_hash": x1_id.to_string()}))
            .await;
        let traffic = lt.traffic().await;
        for x in [&x0, &x1] {
            let a = x.local_addr().to_string();
            let sent = &traffic["sent"][&a];
            let got = &traffic["received"][&a];
            let queries: u64 = sent
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| k.starts_with("q:"))
                        .map(|(_, v)| v.as_u64().unwrap())
                        .sum()
                })
                .unwrap_or(0);
            assert!(queries > 0, "libtorrent queried {a}: {traffic}");
            assert!(
                got["r"].as_u64().unwrap_or(0) > 0,
                "{a} answered libtorrent: {traffic}"
            );
            assert!(
                got.get("e").is_none(),
                "{a} sent libtorrent no error: {traffic}"
            );
        }

        lt.quit().await;
        x0.shutdown().await.unwrap();
        x1.shutdown().await.unwrap();
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_and_get_peers_both_ways() {
    harness::retry_once_if_a_peer_crashes(announce_and_get_peers_both_ways_once).await;
}

async fn announce_and_get_peers_both_ways_once() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (xs, mut ls) = network(2).await;

        // Xorro announces, libtorrent finds it.
        let ih = info_hash("xorro announces, libtorrent looks");
        let stored = xs[0]
            .announce(ih.parse().unwrap(), Some(4242))
            .await
            .unwrap();
        assert!(!stored.closest.is_empty(), "the announce was stored");
        let expected = SocketAddr::from((xs[0].local_addr().ip(), 4242));
        let peers = ls[0].get_peers(&ih).await;
        assert!(
            peers.contains(&expected),
            "libtorrent finds {expected}: {peers:?}"
        );

        // libtorrent announces (its listen port), Xorro finds it.
        let ih = info_hash("libtorrent announces, xorro looks");
        let r = ls[1]
            .call(json!({"cmd": "announce", "info_hash": ih}))
            .await;
        let port = u16::try_from(r["port"].as_u64().unwrap()).unwrap();
        let expected = SocketAddr::from((ls[1].addr.ip(), port));
        for x in &xs {
            let found = x
                .get_peers(ih.parse::<InfoHash>().unwrap())
                .await
                .unwrap()
                .finish()
                .await
                .unwrap();
            assert!(
                found.peers.contains(&expected),
                "{} finds libtorrent's {expected}: {:?} (announce acked by {})",
                x.local_addr(),
                found.peers,
                r["acked_by"]
            );
        }
        shutdown(xs, ls).await;
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_items_both_ways() {
    harness::retry_once_if_a_peer_crashes(immutable_items_both_ways_once).await;
}

async fn immutable_items_both_ways_once() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (xs, mut ls) = network(3).await;

        // Xorro puts, libtorrent gets.
        let value = bstr("an immutable item put by Xorro");
        let put = xs[0].put_immutable(value.clone()).await.unwrap();
        assert!(!put.stored_at.is_empty());
        let got = ls[0]
            .call(json!({"cmd": "get_immutable", "target": put.target.to_string()}))
            .await;
        assert_eq!(
            got["value"].as_str().map(unhex),
            Some(value),
            "libtorrent gets Xorro's item"
        );

        // libtorrent puts, Xorro gets.
        let data = "an immutable item put by libtorrent";
        let put = ls[1]
            .call(json!({"cmd": "put_immutable", "data": data}))
            .await;
        assert!(put["success"].as_u64().unwrap() > 0, "stored: {put}");
        let target: NodeId = put["target"].as_str().unwrap().parse().unwrap();
        for x in &xs {
            let got = x.get_immutable(target).await.unwrap();
            assert_eq!(
                got,
                Some(bstr(data)),
                "{} gets libtorrent's item",
                x.local_addr()
            );
        }
        shutdown(xs, ls).await;
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutable_items_with_salt_and_updates_both_ways() {
    harness::retry_once_if_a_peer_crashes(mutable_items_with_salt_and_updates_both_ways_once).await;
}

async fn mutable_items_with_salt_and_updates_both_ways_once() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (xs, mut ls) = network(4).await;
        let salt = "xorro-interop";

        // Xorro puts and updates (seq 1 then 2); libtorrent reads the update.
        let kp = Keypair::from_seed([0x51; 32]);
        let key = kp.public_key();
        let first = xs[0]
            .put_mutable(kp.clone(), salt.into(), bstr("one"), None, None)
            .await
            .unwrap();
        let second = xs[0]
            .put_mutable(kp.clone(), salt.into(), bstr("two"), None, None)
            .await
            .unwrap();
        assert!(
            second.seq > first.seq,
            "{:?} then {:?}",
            first.seq,
            second.seq
        );
        let got = ls[0]
            .call(json!({"cmd": "get_mutable", "key": harness::hex(&key.0), "salt": salt}))
            .await;
        assert_eq!(got["value"].as_str().map(unhex), Some(bstr("two")), "{got}");
        assert_eq!(got["seq"].as_i64(), second.seq);

        // libtorrent updates Xorro's item: it reads seq 2 from the network and puts seq 3.
        let r = ls[1]
            .call(
                json!({"cmd": "put_mutable", "seed": harness::hex(&[0x51; 32]),
                          "key": harness::hex(&key.0), "salt": salt, "data": "three"}),
            )
            .await;
        assert!(r["success"].as_u64().unwrap() > 0, "{r}");
        let got = xs[1].get_mutable(key, salt.into()).await.unwrap().unwrap();
        assert_eq!((got.value, got.seq), (bstr("three"), 3));

        // libtorrent puts and updates its own item; Xorro reads the update.
        let seed = [0x52; 32];
        let key = Keypair::from_seed(seed).public_key();
        for data in ["first", "second"] {
            let r = ls[0]
                .call(json!({"cmd": "put_mutable", "seed": harness::hex(&seed),
                              "key": harness::hex(&key.0), "salt": salt, "data": data}))
                .await;
            assert!(r["success"].as_u64().unwrap() > 0, "{r}");
        }
        for x in &xs {
            let got = x.get_mutable(key, salt.into()).await.unwrap();
            let got = got.expect("Xorro finds libtorrent's item");
            assert_eq!(
                (got.value, got.seq),
                (bstr("second"), 2),
                "{}",
                x.local_addr()
            );
        }
        shutdown(xs, ls).await;
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_libtorrent() {
    harness::retry_once_if_a_peer_crashes(probe_libtorrent_once).await;
}

async fn probe_libtorrent_once() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // One libtorrent node with one contact (so that its `nodes` are not empty).
        let x = xorro(ip(FILE, 5, 1), &[]).await;
        let mut lt = Peer::start(LT, ip(FILE, 5, 11), &[]).await;
        lt.add_nodes(&[x.local_addr()]).await;

        let report = harness::probe_peer(&lt, ip(FILE, 5, 100)).await;
        lt.check_alive().await;
        harness::check_probe(&report, harness::LIBTORRENT_PROBE);
        lt.quit().await;
        x.shutdown().await.unwrap();
    })
    .await
    .expect("the test finishes in time");
}
