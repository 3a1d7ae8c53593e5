//! Interop with webtorrent's bittorrent-dht 11 (npm, pinned in interop/js) on Node.js, on
//! loopback: each side bootstraps from the other and ends up in the other's routing table,
//! ping and find_node both ways, announce and get_peers, BEP 44 immutable and mutable items,
//! in both directions.
//!
//! The bittorrent-dht nodes run `interop/peers/bittorrent_dht_peer.mjs` with an explicit
//! loopback bootstrap list, or `bootstrap: false` when there is none (leaving it unset means
//! the public routers). What the library does not do by itself, and how it is covered:
//!
//! * it has no ping or find_node call: the driver sends them with its KRPC layer (k-rpc),
//!   and a find_node lookup with k-rpc's `closest`, as bittorrent-dht's own bootstrap does;
//! * its `get_peers` lookup also reports the peers it stores itself, so the driver tells
//!   those that came in replies apart (`remote_peers`);
//! * its BEP 44 `put` takes the seq from the caller (it does not read the current one).
//!
//! Missing Node.js or the npm package fails these tests (run ./scripts/install-peers.sh);
//! they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../interop/peers/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use harness::{Impl, Peer, addrs, bstr, eventually, info_hash, ip, unhex, xorro, xorro_table};
use serde_json::json;
use xorro_node::Dht;
use xorro_wire::bep44::Keypair;
use xorro_wire::{InfoHash, NodeId};

/// 127.32.<test>.<host>
const FILE: u8 = 32;
const BT: Impl = Impl::BittorrentDht;
/// Bound on anything the network does by itself (a routing table filling).
const SETTLE: Duration = Duration::from_secs(30);
/// Bound on a whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);

/// Three Xorro and two bittorrent-dht nodes, bootstrapped in a chain that alternates between
/// the implementations (X0 <- B0 <- X1 <- B1 <- X2), then every bittorrent-dht node told
/// about every Xorro node; returns once every node knows all others.
async fn network(test: u8) -> (Vec<Dht>, Vec<Peer>) {
    let x0 = xorro(ip(FILE, test, 1), &[]).await;
    let b0 = Peer::start(BT, ip(FILE, test, 11), &[x0.local_addr()]).await;
    let x1 = xorro(ip(FILE, test, 2), &[b0.addr]).await;
    let b1 = Peer::start(BT, ip(FILE, test, 12), &[x1.local_addr()]).await;
    let x2 = xorro(ip(FILE, test, 3), &[b1.addr]).await;
    let xs = vec![x0, x1, x2];
    let all_x: Vec<SocketAddr> = xs.iter().map(Dht::local_addr).collect();
    let mut bs = vec![b0, b1];
    for b in &mut bs {
        b.add_nodes(&all_x).await;
    }
    let n = xs.len() + bs.len();
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
    for b in &mut bs {
        let (all, table) = b.wait_for_contacts(&all_x, SETTLE).await;
        assert!(
            all,
            "bittorrent-dht {} knows the Xorro nodes: {table:?}",
            b.addr
        );
    }
    (xs, bs)
}

async fn shutdown(xs: Vec<Dht>, bs: Vec<Peer>) {
    for b in bs {
        b.quit().await;
    }
    for x in xs {
        x.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_both_ways_routing_tables_ping_find_node() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // bittorrent-dht bootstraps from a Xorro node (its own bootstrap: find_node for its id).
        let x0 = xorro(ip(FILE, 1, 1), &[]).await;
        let mut bt = Peer::start(BT, ip(FILE, 1, 11), &[x0.local_addr()]).await;
        // A Xorro node bootstraps from bittorrent-dht, which knows x0 and hands it out.
        let x1 = xorro(ip(FILE, 1, 2), &[bt.addr]).await;

        let found = eventually(SETTLE, || async {
            let t0 = xorro_table(&x0).await;
            let t1 = xorro_table(&x1).await;
            t0.iter().any(|(_, a)| *a == bt.addr)
                && t1.iter().any(|(_, a)| *a == bt.addr)
                && t1.iter().any(|(_, a)| *a == x0.local_addr())
        })
        .await;
        assert!(
            found,
            "bittorrent-dht is in both Xorro tables and x1 learned x0 from it: x0 {:?}, x1 {:?}; \
             bittorrent-dht's traffic {}; x0 {:?}",
            xorro_table(&x0).await,
            xorro_table(&x1).await,
            bt.traffic().await,
            x0.status().await.unwrap().stats,
        );
        let (found, bt_table) = bt
            .wait_for_contacts(&[x0.local_addr(), x1.local_addr()], SETTLE)
            .await;
        assert!(
            found,
            "both Xorro nodes in bittorrent-dht's table: {bt_table:?}"
        );
        let x0_id = x0.status().await.unwrap().id;
        let x1_id = x1.status().await.unwrap().id;
        assert!(bt_table.contains(&(x0_id, x0.local_addr())));
        assert!(bt_table.contains(&(x1_id, x1.local_addr())));

        // Xorro -> bittorrent-dht: ping, and find_node lookups through it.
        let pong = x1.ping(bt.addr).await.unwrap();
        assert_eq!(pong.id, bt.id, "ping returns bittorrent-dht's id");
        let closest = x1.find_node(bt.id).await.unwrap();
        assert_eq!(closest.first().map(|n| n.addr), Some(bt.addr));
        let closest = x1.find_node(x0_id).await.unwrap();
        assert_eq!(closest.first().map(|n| n.addr), Some(x0.local_addr()));

        // bittorrent-dht -> Xorro: ping, a find_node query, a find_node lookup.
        let r = bt
            .call(json!({"cmd": "ping", "addr": x0.local_addr().to_string()}))
            .await;
        assert_eq!(r["id"].as_str(), Some(x0_id.to_string().as_str()));
        let r = bt
            .call(
                json!({"cmd": "find_node", "addr": x0.local_addr().to_string(),
                          "target": x1_id.to_string()}),
            )
            .await;
        assert_eq!(r["id"].as_str(), Some(x0_id.to_string().as_str()));
        let nodes: Vec<&str> = r["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["addr"].as_str().unwrap())
            .collect();
        assert!(
            nodes.contains(&x1.local_addr().to_string().as_str()),
            "x0 returns x1 to bittorrent-dht's find_node: {r}"
        );
        let r = bt
            .call(json!({"cmd": "lookup_nodes", "target": x1_id.to_string()}))
            .await;
        assert_eq!(
            r["closest"][0]["addr"].as_str(),
            Some(x1.local_addr().to_string().as_str()),
            "bittorrent-dht's lookup finds x1 first: {r}"
        );
        let traffic = bt.traffic().await;
        for x in [&x0, &x1] {
            let got = &traffic["received"][x.local_addr().to_string()];
            assert!(got["r"].as_u64().unwrap_or(0) > 0, "{traffic}");
            assert!(
                got.get("e").is_none(),
                "no error to bittorrent-dht: {traffic}"
            );
        }

        bt.quit().await;
        x0.shutdown().await.unwrap();
        x1.shutdown().await.unwrap();
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_and_get_peers_both_ways() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (xs, mut bs) = network(2).await;

        // Xorro announces, bittorrent-dht finds it in the replies of other nodes.
        let ih = info_hash("xorro announces, bittorrent-dht looks");
        let stored = xs[0]
            .announce(ih.parse().unwrap(), Some(4242))
            .await
            .unwrap();
        assert!(!stored.closest.is_empty(), "the announce was stored");
        let expected = SocketAddr::from((xs[0].local_addr().ip(), 4242));
        let r = bs[0]
            .call(json!({"cmd": "get_peers", "info_hash": ih}))
            .await;
        assert!(
            addrs(&r["remote_peers"]).contains(&expected),
            "bittorrent-dht finds {expected}: {r}"
        );

        // bittorrent-dht announces, Xorro finds it.
        let ih = info_hash("bittorrent-dht announces, xorro looks");
        let r = bs[1]
            .call(json!({"cmd": "announce", "info_hash": ih, "port": 5151}))
            .await;
        assert!(r["acked"].as_u64().unwrap() > 0, "{r}");
        let expected = SocketAddr::from((bs[1].addr.ip(), 5151));
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
                "{} finds bittorrent-dht's {expected}: {:?}",
                x.local_addr(),
                found.peers
            );
        }
        shutdown(xs, bs).await;
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_items_both_ways() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (xs, mut bs) = network(3).await;

        let value = bstr("an immutable item put by Xorro");
        let put = xs[0].put_immutable(value.clone()).await.unwrap();
        assert!(!put.stored_at.is_empty());
        let got = bs[0]
            .call(json!({"cmd": "get_immutable", "target": put.target.to_string()}))
            .await;
        assert_eq!(got["value"].as_str().map(unhex), Some(value));

        let data = "an immutable item put by bittorrent-dht";
        let put = bs[1]
            .call(json!({"cmd": "put_immutable", "data": data}))
            .await;
        assert!(put["success"].as_u64().unwrap() > 0, "stored: {put}");
        let target: NodeId = put["target"].as_str().unwrap().parse().unwrap();
        for x in &xs {
            let got = x.get_immutable(target).await.unwrap();
            assert_eq!(
                got,
                Some(bstr(data)),
                "{} gets bittorrent-dht's item",
                x.local_addr()
            );
        }
        shutdown(xs, bs).await;
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutable_items_with_salt_and_updates_both_ways() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (xs, mut bs) = network(4).await;
        let salt = "xorro-interop";

        // Xorro puts and updates; bittorrent-dht reads the update.
        let seed = [0x61; 32];
        let kp = Keypair::from_seed(seed);
        let key = kp.public_key();
        let first = xs[0]
            .put_mutable(kp.clone(), salt.into(), bstr("one"), None, None)
            .await
            .unwrap();
        let second = xs[0]
            .put_mutable(kp.clone(), salt.into(), bstr("two"), None, None)
            .await
            .unwrap();
        assert!(second.seq > first.seq);
        let got = bs[0]
            .call(json!({"cmd": "get_mutable", "key": harness::hex(&key.0), "salt": salt}))
            .await;
        assert_eq!(got["value"].as_str().map(unhex), Some(bstr("two")), "{got}");
        assert_eq!(got["seq"].as_i64(), second.seq);

        // bittorrent-dht updates Xorro's item (it takes the seq from its caller).
        let next = second.seq.unwrap() + 1;
        let r = bs[1]
            .call(json!({"cmd": "put_mutable", "seed": harness::hex(&seed),
                          "key": harness::hex(&key.0), "salt": salt, "data": "three",
                          "seq": next}))
            .await;
        assert!(r["success"].as_u64().unwrap() > 0, "{r}");
        let got = xs[1].get_mutable(key, salt.into()).await.unwrap().unwrap();
        assert_eq!((got.value, got.seq), (bstr("three"), next));

        // bittorrent-dht puts and updates its own item; Xorro reads the update.
        let seed = [0x62; 32];
        let key = Keypair::from_seed(seed).public_key();
        for (seq, data) in [(1, "first"), (2, "second")] {
            let r = bs[0]
                .call(json!({"cmd": "put_mutable", "seed": harness::hex(&seed),
                              "key": harness::hex(&key.0), "salt": salt, "data": data,
                              "seq": seq}))
                .await;
            assert!(r["success"].as_u64().unwrap() > 0, "{r}");
        }
        for x in &xs {
            let got = x.get_mutable(key, salt.into()).await.unwrap();
            let got = got.expect("Xorro finds bittorrent-dht's item");
            assert_eq!(
                (got.value, got.seq),
                (bstr("second"), 2),
                "{}",
                x.local_addr()
            );
        }
        shutdown(xs, bs).await;
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_bittorrent_dht() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let x = xorro(ip(FILE, 5, 1), &[]).await;
        let bt = Peer::start(BT, ip(FILE, 5, 11), &[x.local_addr()]).await;
        let report = harness::probe_peer(&bt, ip(FILE, 5, 100)).await;
        harness::check_probe(&report, harness::BITTORRENT_DHT_PROBE);
        bt.quit().await;
        x.shutdown().await.unwrap();
    })
    .await
    .expect("the test finishes in time");
}
