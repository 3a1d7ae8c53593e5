//! Real sockets on 127.0.0.1: a network of nodes driven through the public `Dht` API.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use xorro_node::Dht;
use xorro_wire::bep44::Keypair;
use xorro_wire::{InfoHash, NodeId};

async fn node(bootstrap: Option<SocketAddr>) -> Dht {
    let b = Dht::builder()
        .bind(["127.0.0.1:0".parse().unwrap()])
        .public_bootstrap(false)
        .bootstrap(bootstrap.map(|a| a.to_string()));
    b.start().await.unwrap()
}

/// Whether `d`, of id `own`, has a contact in each half of the id space: one whose id
/// differs from `own` in the first bit, and one that shares it.
async fn knows_both_halves(d: &Dht, own: NodeId) -> bool {
    let table = d.routing_table().await.unwrap();
    let far = |c: &xorro_node::Contact| (c.node.id.0[0] ^ own.0[0]) & 0x80 != 0;
    table.iter().any(far) && table.iter().any(|c| !far(c))
}

async fn network(n: usize) -> Vec<Dht> {
    let first = node(None).await;
    let boot = first.local_addr();
    let mut nodes = vec![first];
    for _ in 1..n {
        nodes.push(node(Some(boot)).await);
    }
    // Every node bootstraps by itself; wait (bounded) until each knows a few others and, in
    // a network large enough to have both, a node in each half of the id space: joined, not
    // two halves that meet only at the first node, nor a node its neighbours do not know.
    // Under a loaded CPU the early nodes' bootstraps end with a few contacts near their own
    // id (their join's lookup into the far half, and the refresh of a far bucket a split
    // left empty, find the other side), and a late node's own-id lookup can go unanswered
    // while its far-half lookup fills its table (its maintenance looks up its id again).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut ready = 0;
        for d in &nodes {
            let status = d.status().await.unwrap();
            if status.table_v4 >= 5.min(n - 1) && (n < 16 || knows_both_halves(d, status.id).await)
            {
                ready += 1;
            }
        }
        if ready == n || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_nodes_announce_find_put_get() {
    let nodes = network(30).await;
    for d in &nodes {
        let status = d.status().await.unwrap();
        assert!(status.table_v4 >= 5, "every node knows others");
        assert!(
            knows_both_halves(d, status.id).await,
            "and both halves of the id space"
        );
    }

    // find_node for a node's id returns that node first.
    let target = nodes[17].status().await.unwrap().id;
    let found = nodes[3].find_node(target).await.unwrap();
    assert_eq!(found.first().map(|n| n.id), Some(target));

    // Announce on one, get_peers from others.
    let info_hash: InfoHash = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
    let stored = nodes[5].announce(info_hash, Some(4242)).await.unwrap();
    assert!(
        !stored.closest.is_empty(),
        "the announce was stored somewhere"
    );
    for i in [0, 11, 29] {
        let r = nodes[i]
            .get_peers(info_hash)
            .await
            .unwrap()
            .finish()
            .await
            .unwrap();
        let expected = SocketAddr::from(([127, 0, 0, 1], 4242));
        assert!(
            r.peers.contains(&expected),
            "node {i} finds the peer: {:?}",
            r.peers
        );
    }

    // BEP 44 immutable.
    let put = nodes[8]
        .put_immutable(b"12:Hello World!".to_vec())
        .await
        .unwrap();
    assert!(!put.stored_at.is_empty());
    let got = nodes[20].get_immutable(put.target).await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"12:Hello World!"[..]));

    // BEP 44 mutable, updated.
    let kp = Keypair::from_seed([7; 32]);
    let first = nodes[9]
        .put_mutable(kp.clone(), b"salt".to_vec(), b"3:one".to_vec(), None, None)
        .await
        .unwrap();
    let second = nodes[9]
        .put_mutable(kp.clone(), b"salt".to_vec(), b"3:two".to_vec(), None, None)
        .await
        .unwrap();
    assert!(
        second.seq > first.seq,
        "{:?} then {:?}",
        first.seq,
        second.seq
    );
    let got = nodes[25]
        .get_mutable(kp.public_key(), b"salt".to_vec())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.value, b"3:two");
    assert_eq!(Some(got.seq), second.seq);

    // Unknown target: nothing, no error.
    assert_eq!(nodes[1].get_immutable(NodeId([9; 20])).await.unwrap(), None);

    for d in &nodes {
        d.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_identity_contacts_and_stored_data() {
    let nodes = network(8).await;
    let dir = tempfile::tempdir().unwrap();
    let start = |boot: SocketAddr| {
        Dht::builder()
            .bind(["127.0.0.1:0".parse().unwrap()])
            .public_bootstrap(false)
            .bootstrap([boot.to_string()])
            .data_dir(dir.path())
            .start()
    };
    let d = start(nodes[0].local_addr()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while d.status().await.unwrap().table_v4 < 5 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = d.status().await.unwrap();
    let info_hash = InfoHash([0x42; 20]);
    d.announce(info_hash, Some(1234)).await.unwrap();
    d.shutdown().await.unwrap();

    // Restart with a bootstrap address nobody answers on: the saved contacts must do.
    let dead: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let d = start(dead).await.unwrap();
    let after = d.status().await.unwrap();
    assert_eq!(after.id, before.id, "the node id survives a restart");
    assert!(
        after.table_v4 >= 5,
        "the routing table survives a restart: {}",
        after.table_v4
    );
    assert_eq!(
        after.own_announcements, 1,
        "own announcements survive a restart"
    );
    let r = nodes[3]
        .get_peers(info_hash)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert!(r.peers.contains(&SocketAddr::from(([127, 0, 0, 1], 1234))));
    d.shutdown().await.unwrap();
}

/// Datagrams the kernel refuses, or that have no socket of their family, are counted in
/// `Status::socket_errors`, and the node goes on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_errors_are_counted_and_harmless() {
    let a = node(None).await;
    let b = node(None).await;
    assert_eq!(a.status().await.unwrap().socket_errors.total(), 0);

    // Port 0 is not a destination: sendmmsg fails for that datagram (EINVAL).
    assert!(a.ping("127.0.0.1:0".parse().unwrap()).await.is_err());
    // An IPv6 destination on a node bound to IPv4 only: no socket of that family.
    assert!(a.ping("[::1]:6881".parse().unwrap()).await.is_err());

    let errors = a.status().await.unwrap().socket_errors;
    assert!(errors.send_failed >= 1, "{errors:?}");
    assert!(errors.no_socket >= 1, "{errors:?}");
    assert_eq!(errors.truncated + errors.recv_failed, 0, "{errors:?}");

    // The node still works.
    let pong = b.ping(a.local_addr()).await.unwrap();
    assert_eq!(pong.id, a.status().await.unwrap().id);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_before_its_bootstrap_node_joins_once_it_is_up() {
    // The bootstrap node's address is taken by a socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let boot = silent.local_addr().unwrap();
    let config = xorro_dht::Config {
        maintenance_interval: Duration::from_millis(200),
        rebootstrap_interval: Duration::from_secs(1),
        ..xorro_dht::Config::default()
    };
    let lone = Dht::builder()
        .bind(["127.0.0.1:0".parse().unwrap()])
        .public_bootstrap(false)
        .bootstrap([boot.to_string()])
        .config(config)
        .start()
        .await
        .unwrap();
    // Its bootstrap finds nobody (the seed query's retries included) …
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while lone.status().await.unwrap().stats.rebootstraps == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never tried again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lone.status().await.unwrap().table_v4, 0);
    // … then the bootstrap node comes up on that address, and the next try reaches it.
    drop(silent);
    let seed = Dht::builder()
        .bind([boot])
        .public_bootstrap(false)
        .bootstrap(Vec::<String>::new())
        .start()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while lone.status().await.unwrap().table_v4 == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let contacts = lone.routing_table().await.unwrap();
    assert_eq!(contacts[0].node.id, seed.status().await.unwrap().id);
    let lone_id = lone.status().await.unwrap().id;
    assert!(
        seed.routing_table()
            .await
            .unwrap()
            .iter()
            .any(|c| c.node.id == lone_id),
        "the seed knows the joiner"
    );
    lone.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
}
