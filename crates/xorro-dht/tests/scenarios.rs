//! Scenarios on an in-memory cluster in virtual time: joining, announcing, BEP 44, BEP 51,
//! BEP 43, expiry, failing nodes, snapshots. Each test uses a fixed seed, printed on failure.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use xorro_dht::cluster::{Cluster, Link};
use xorro_dht::routing::{NodeState, RoutingConfig};
use xorro_dht::{
    CommandError, Config, Event, Item, ItemTarget, LookupStats, Node, Outcome, PutRequest,
};
use xorro_wire::bep33::BloomFilter;
use xorro_wire::bep44::Keypair;
use xorro_wire::{Body, Family, InfoHash, NodeId, QueryKind, Want, decode};

fn table_has(c: &Cluster, i: usize, j: usize) -> bool {
    c.node(i).routing_table(Family::V4).contains(c.addr(j))
}

fn cluster(seed: u64, n: usize) -> Cluster {
    let mut c = Cluster::new(seed, Link::default(), t0());
    c.grow(n, &Config::default());
    c
}

/// The first announce_peer and the first put to every node are lost: each is sent again at
/// its soft timeout, as a lookup's queries are, so both stores reach all k closest nodes and
/// end long before `request_timeout` (with the store queries sent once, both ended at
/// `request_timeout` with nothing stored). The announce is reported at its quorum, and its
/// stores still waiting then go on.
#[test]
fn lost_store_queries_are_sent_again() {
    let seed = 21;
    let mut c = cluster(seed, 40);
    let mut lost = BTreeSet::new();
    c.drop_datagrams(move |_, to, bytes| {
        let kind = match decode(bytes).map(|m| m.body) {
            Ok(Body::Query(q)) => match q.kind {
                QueryKind::AnnouncePeer { .. } => 0,
                QueryKind::Put(_) => 1,
                _ => return false,
            },
            _ => return false,
        };
        lost.insert((to, kind))
    });
    let request_timeout = Config::default().request_timeout;
    // Stored on all k closest, before any hard timeout could have passed.
    let stored_everywhere = |what: &str, out: &Outcome, stats: &LookupStats| {
        match out {
            Outcome::Stored { stored_at, .. } => assert_eq!(
                stored_at.len(),
                8,
                "seed {seed}: {what} stored at {stored_at:?}, {stats:?}"
            ),
            other => panic!("seed {seed}: {what}: {other:?} {stats:?}"),
        }
        assert!(
            stats.duration < request_timeout,
            "seed {seed}: {what} took {:?}",
            stats.duration
        );
    };
    let ih = InfoHash(id_from(seed, 7).0);
    let (out, stats) = run(&mut c, 0, |n, now| {
        n.start_announce(ih, Some(7000), false, now).unwrap()
    });
    let quorum = Config::default().announce_quorum;
    match &out {
        Outcome::Stored { stored_at, .. } => assert!(
            stored_at.len() >= quorum,
            "seed {seed}: announce stored at {stored_at:?}, {stats:?}"
        ),
        other => panic!("seed {seed}: announce: {other:?} {stats:?}"),
    }
    assert!(stats.duration < request_timeout, "seed {seed}: {stats:?}");
    c.run_for(Duration::from_secs(2));
    let holders = c
        .true_closest(&NodeId(ih.0), 8, 0)
        .iter()
        .filter(|id| {
            (0..c.len())
                .any(|i| c.node(i).id() == **id && c.node(i).peer_store().peer_count_of(&ih) > 0)
        })
        .count();
    assert_eq!(holders, 8, "seed {seed}: the k closest hold the peer");
    let req = PutRequest::Immutable {
        value: b"4:lost".to_vec(),
    };
    let (out, stats) = run(&mut c, 1, |n, now| n.start_put_item(req, now).unwrap());
    stored_everywhere("put", &out, &stats);
    // What was stored is found from elsewhere.
    let (out, _) = run(&mut c, 30, |n, now| {
        n.start_get_peers(ih, false, false, now).unwrap()
    });
    let Outcome::Peers { peers, .. } = out else {
        panic!("seed {seed}: get_peers: {out:?}")
    };
    assert_eq!(
        peers,
        vec![SocketAddr::new(c.addr(0).ip(), 7000)],
        "seed {seed}"
    );
}

/// Three nodes find each other: each ends up in the two others' routing tables.
#[test]
fn three_nodes_find_each_other() {
    let seed = 3;
    let mut c = Cluster::new(seed, Link::default(), t0());
    for _ in 0..3 {
        c.add_node(Config::default());
    }
    let b0 = c.bootstrap(0, &[]);
    let (out, _) = c.run_until_finished(0, b0, LIMIT).unwrap();
    assert_eq!(out, Outcome::Closest(vec![]), "seed {seed}");
    for i in 1..3 {
        let b = c.bootstrap(i, &[0]);
        let (out, _) = c.run_until_finished(i, b, LIMIT).unwrap();
        assert!(
            matches!(out, Outcome::Closest(_)),
            "seed {seed}: node {i}: {out:?}"
        );
    }
    c.run_for(Duration::from_secs(60));
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                assert!(
                    table_has(&c, i, j),
                    "seed {seed}: node {j} not in node {i}'s table"
                );
            }
        }
        assert_eq!(c.node(i).routing_table(Family::V4).len(), 2, "seed {seed}");
    }
}

/// A lone first node bootstraps with no addresses and finishes with no contacts (not a
/// failure); 50 joiners bootstrap from it; every table holds at least k contacts and lookups
/// from anywhere return the true 8 closest.
#[test]
fn lone_first_node_then_fifty_joiners() {
    let seed = 51;
    let mut c = Cluster::new(seed, Link::default(), t0());
    c.add_node(Config::default());
    let (out, stats) = run(&mut c, 0, |n, now| n.start_bootstrap(&[], now).unwrap());
    assert_eq!(out, Outcome::Closest(vec![]), "seed {seed}: {stats:?}");
    for _ in 0..50 {
        let i = c.add_node(Config::default());
        let id = c.bootstrap(i, &[0]);
        let (out, stats) = c.run_until_finished(i, id, LIMIT).unwrap();
        assert!(
            matches!(&out, Outcome::Closest(v) if !v.is_empty()),
            "seed {seed}: joiner {i}: {out:?} {stats:?}"
        );
    }
    c.run_for(Duration::from_secs(60));
    for i in 0..c.len() {
        let len = c.node(i).routing_table(Family::V4).len();
        assert!(len >= 8, "seed {seed}: node {i} knows only {len} nodes");
    }
    for q in 0..30 {
        let target = id_from(seed, q);
        let asker = (q as usize * 17) % c.len();
        let (out, stats) = run(&mut c, asker, |n, now| {
            n.start_find_node(target, now).unwrap()
        });
        assert_eq!(
            closest_ids(seed, &out),
            c.true_closest(&target, 8, asker),
            "seed {seed}: lookup {q} from {asker}: {stats:?}"
        );
    }
}

/// Announces (implied port and explicit port, seeds and not) are found by get_peers from 20
/// other nodes; a scrape of a storing node returns Bloom filters that count the seeds and
/// the other peers.
#[test]
fn announce_then_get_peers_from_twenty_nodes() {
    let seed = 20;
    let mut c = cluster(seed, 60);
    let ih = InfoHash(id_from(seed, 999).0);
    // Nodes 0..3 are seeds on their UDP port (implied_port); 3..8 leechers on port 7000 + i.
    let mut expected = BTreeSet::new();
    for i in 0..8 {
        let (port, is_seed) = if i < 3 {
            (None, true)
        } else {
            (Some(7000 + i as u16), false)
        };
        let (out, stats) = run(&mut c, i, |n, now| {
            n.start_announce(ih, port, is_seed, now).unwrap()
        });
        match &out {
            Outcome::Stored { stored_at, .. } => {
                assert!(
                    stored_at.len() >= Config::default().announce_quorum,
                    "seed {seed}: announce {i} stored at {stored_at:?}"
                )
            }
            other => panic!("seed {seed}: announce {i}: {other:?} {stats:?}"),
        }
        let addr = c.addr(i);
        expected.insert(SocketAddr::new(addr.ip(), port.unwrap_or(addr.port())));
    }
    for asker in 30..50 {
        let (out, stats) = run(&mut c, asker, |n, now| {
            n.start_get_peers(ih, false, false, now).unwrap()
        });
        let Outcome::Peers { peers, .. } = out else {
            panic!("seed {seed}: get_peers from {asker}: {out:?}")
        };
        let found: BTreeSet<SocketAddr> = peers.iter().copied().collect();
        assert_eq!(
            found, expected,
            "seed {seed}: get_peers from {asker}: {stats:?}"
        );
        let reported: BTreeSet<SocketAddr> = c
            .take_events(asker)
            .into_iter()
            .flat_map(|e| match e {
                Event::PeersFound { peers, .. } => peers,
                _ => vec![],
            })
            .collect();
        assert_eq!(
            reported, expected,
            "seed {seed}: PeersFound events from {asker}"
        );
    }

    // BEP 33 scrape, asked of every node that stores the swarm.
    let (mut storers, mut full) = (0, 0);
    for i in 0..c.len() {
        if c.node(i).peer_store().peer_count_of(&ih) == 0 {
            continue;
        }
        storers += 1;
        let from: SocketAddr = "192.0.2.99:6881".parse().unwrap();
        let q = query(
            9,
            NodeId([0x99; 20]),
            QueryKind::GetPeers {
                info_hash: ih,
                want: Want::UNSPECIFIED,
                no_seed: false,
                scrape: true,
            },
        );
        let reply = c.with_node(i, |n, now| ask(n, now, from, &q));
        let Body::Response(r) = decode(&reply).unwrap().body else {
            panic!("seed {seed}: node {i} did not answer the scrape")
        };
        // An empty filter estimates 0.5 (BEP 33's clamp): count it as none.
        let count = |bf: BloomFilter| {
            if bf.is_empty() {
                0.0
            } else {
                bf.estimate_count()
            }
        };
        let seeds = count(BloomFilter::from_bytes(r.seeds_bloom.expect("BFsd")));
        let peers = count(BloomFilter::from_bytes(r.peers_bloom.expect("BFpe")));
        // What this node holds (an announcer never stores on itself, and a node just past
        // the 8 closest gets only some announces): the filters must count exactly that.
        let (mut want_seeds, mut want_peers) = (0.0, 0.0);
        for p in c.node(i).peer_store().iter().filter(|p| p.info_hash == ih) {
            assert!(
                expected.contains(&p.addr),
                "seed {seed}: node {i} holds a stray {p:?}"
            );
            *(if p.seed {
                &mut want_seeds
            } else {
                &mut want_peers
            }) += 1.0;
        }
        assert_eq!(
            seeds.round(),
            want_seeds,
            "seed {seed}: node {i} BFsd estimate {seeds}"
        );
        assert_eq!(
            peers.round(),
            want_peers,
            "seed {seed}: node {i} BFpe estimate {peers}"
        );
        if want_seeds + want_peers >= 7.0 {
            full += 1;
        }
    }
    assert!(
        full >= 6,
        "seed {seed}: only {full} of {storers} nodes store the whole swarm"
    );
}

fn item_of(seed: u64, out: &Outcome) -> Option<Item> {
    match out {
        Outcome::Item(item) => item.clone(),
        other => panic!("seed {seed}: expected an item outcome, got {other:?}"),
    }
}

/// BEP 44 immutable: put from one node, get from 20 others returns the same value.
#[test]
fn bep44_immutable_put_get() {
    let seed = 44;
    let mut c = cluster(seed, 50);
    let value = b"l5:hello5:worlde".to_vec();
    let req = PutRequest::Immutable {
        value: value.clone(),
    };
    let (out, stats) = run(&mut c, 1, |n, now| n.start_put_item(req, now).unwrap());
    let target = match &out {
        Outcome::Stored { stored_at, seq } => {
            assert!(
                stored_at.len() >= 6 && seq.is_none(),
                "seed {seed}: {out:?}"
            );
            xorro_wire::bep44::immutable_target(&xorro_wire::RawValue::new(&value).unwrap())
        }
        other => panic!("seed {seed}: put: {other:?} {stats:?}"),
    };
    for asker in 20..40 {
        let (out, stats) = run(&mut c, asker, |n, now| {
            n.start_get_item(ItemTarget::Immutable(target), now)
                .unwrap()
        });
        assert_eq!(
            item_of(seed, &out),
            Some(Item::Immutable {
                value: value.clone()
            }),
            "seed {seed}: get from {asker}: {stats:?}"
        );
    }
    // Something nobody stored: found nothing, but the lookup itself worked.
    let (out, _) = run(&mut c, 5, |n, now| {
        n.start_get_item(ItemTarget::Immutable(id_from(seed, 1)), now)
            .unwrap()
    });
    assert_eq!(out, Outcome::Item(None), "seed {seed}");
}

/// BEP 44 mutable with a salt: put, get, update with a higher seq read back, a lower seq
/// refused (SeqTooLow), a wrong cas refused (CasMismatch), a right cas and an automatic seq
/// accepted.
#[test]
fn bep44_mutable_put_get_seq_and_cas() {
    let seed = 45;
    let mut c = cluster(seed, 50);
    let kp = Keypair::from_seed([45; 32]);
    let salt = b"profile".to_vec();
    let put = |value: &[u8], seq: Option<i64>, cas: Option<i64>| PutRequest::Mutable {
        keypair: kp.clone(),
        salt: salt.clone(),
        value: value.to_vec(),
        seq,
        cas,
    };
    let target = ItemTarget::Mutable {
        key: kp.public_key(),
        salt: salt.clone(),
        min_seq: None,
    };
    let get = |c: &mut Cluster, asker: usize| {
        let t = target.clone();
        let (out, stats) = run(c, asker, |n, now| n.start_get_item(t, now).unwrap());
        match item_of(seed, &out) {
            Some(Item::Mutable {
                seq,
                value,
                salt: s,
                ..
            }) => {
                assert_eq!(s, salt, "seed {seed}");
                Some((seq, value))
            }
            other => panic!("seed {seed}: get from {asker}: {other:?} {stats:?}"),
        }
    };

    let (out, _) = run(&mut c, 0, |n, now| {
        n.start_put_item(put(b"3:one", Some(1), None), now).unwrap()
    });
    assert!(
        matches!(out, Outcome::Stored { seq: Some(1), .. }),
        "seed {seed}: {out:?}"
    );
    for asker in [10, 20, 30] {
        assert_eq!(
            get(&mut c, asker),
            Some((1, b"3:one".to_vec())),
            "seed {seed}"
        );
    }

    let (out, _) = run(&mut c, 0, |n, now| {
        n.start_put_item(put(b"3:two", Some(2), None), now).unwrap()
    });
    assert!(
        matches!(out, Outcome::Stored { seq: Some(2), .. }),
        "seed {seed}: {out:?}"
    );
    for asker in [11, 21, 31] {
        assert_eq!(
            get(&mut c, asker),
            Some((2, b"3:two".to_vec())),
            "seed {seed}"
        );
    }

    // Lower seq, from another node holding the key.
    let (out, _) = run(&mut c, 5, |n, now| {
        n.start_put_item(put(b"3:old", Some(1), None), now).unwrap()
    });
    assert_eq!(
        out,
        Outcome::Failed(CommandError::SeqTooLow { seq: 1, current: 2 }),
        "seed {seed}"
    );
    // Compare-and-swap against a seq the network does not hold.
    let (out, _) = run(&mut c, 5, |n, now| {
        n.start_put_item(put(b"3:cas", Some(3), Some(1)), now)
            .unwrap()
    });
    assert_eq!(
        out,
        Outcome::Failed(CommandError::CasMismatch { current: Some(2) }),
        "seed {seed}"
    );
    assert_eq!(
        get(&mut c, 12),
        Some((2, b"3:two".to_vec())),
        "seed {seed}: a refused put changed the item"
    );
    // The right cas works; so does "one more than the network holds".
    let (out, _) = run(&mut c, 5, |n, now| {
        n.start_put_item(put(b"3:cas", Some(3), Some(2)), now)
            .unwrap()
    });
    assert!(
        matches!(out, Outcome::Stored { seq: Some(3), .. }),
        "seed {seed}: {out:?}"
    );
    let (out, _) = run(&mut c, 6, |n, now| {
        n.start_put_item(put(b"4:auto", None, None), now).unwrap()
    });
    assert!(
        matches!(out, Outcome::Stored { seq: Some(4), .. }),
        "seed {seed}: {out:?}"
    );
    assert_eq!(
        get(&mut c, 40),
        Some((4, b"4:auto".to_vec())),
        "seed {seed}"
    );
}

/// BEP 51: info-hashes announced around the network are collected by sample_infohashes
/// lookups toward them.
#[test]
fn sample_infohashes_collects_announced() {
    let seed = 510;
    let mut c = cluster(seed, 50);
    let hashes: Vec<InfoHash> = (0..10).map(|q| InfoHash(id_from(seed, q).0)).collect();
    for (k, ih) in hashes.iter().enumerate() {
        let (out, _) = run(&mut c, k, |n, now| {
            n.start_announce(*ih, Some(6000), false, now).unwrap()
        });
        assert!(
            matches!(out, Outcome::Stored { .. }),
            "seed {seed}: {out:?}"
        );
    }
    let mut all = BTreeSet::new();
    for (k, ih) in hashes.iter().enumerate() {
        let asker = 20 + k;
        let (out, stats) = run(&mut c, asker, |n, now| {
            n.start_sample_infohashes(NodeId(ih.0), now).unwrap()
        });
        let Outcome::Samples(samples) = out else {
            panic!("seed {seed}: sample lookup {k}: {out:?}")
        };
        assert!(
            samples.contains(ih),
            "seed {seed}: {ih} not sampled near itself: {stats:?}"
        );
        all.extend(samples);
        let evs = c.take_events(asker);
        assert!(
            evs.iter().any(|e| matches!(e, Event::SamplesReceived { num: Some(n), interval: Some(_), .. } if *n >= 1)),
            "seed {seed}: no SamplesReceived with num and interval"
        );
    }
    let announced: BTreeSet<InfoHash> = hashes.iter().copied().collect();
    assert_eq!(
        all, announced,
        "seed {seed}: samples are only what was announced"
    );
}

/// BEP 43: a read-only node looks things up like any other but never answers a query and
/// never appears in another node's routing table.
#[test]
fn read_only_node_looks_up_but_stays_invisible() {
    let seed = 43;
    let mut c = cluster(seed, 40);
    let ro = c.add_node(Config {
        read_only: true,
        ..Config::default()
    });
    let id = c.bootstrap(ro, &[0, 1]);
    let (out, _) = c.run_until_finished(ro, id, LIMIT).unwrap();
    assert!(
        matches!(&out, Outcome::Closest(v) if !v.is_empty()),
        "seed {seed}: {out:?}"
    );
    for q in 0..10 {
        let target = id_from(seed, q);
        let (out, _) = run(&mut c, ro, |n, now| n.start_find_node(target, now).unwrap());
        assert_eq!(
            closest_ids(seed, &out),
            c.true_closest(&target, 8, ro),
            "seed {seed}: lookup {q}"
        );
    }
    // Others keep working around it, and some try to reach it.
    for q in 0..10 {
        let target = c.node(ro).id();
        let _ = run(&mut c, q * 3, |n, now| {
            n.start_find_node(target, now).unwrap()
        });
    }
    let ro_addr = c.addr(ro);
    let (out, _) = run(&mut c, 0, |n, now| n.start_ping(ro_addr, now));
    assert_eq!(
        out,
        Outcome::Failed(CommandError::NoResponse),
        "seed {seed}: it answered a ping"
    );
    c.run_for(Duration::from_secs(20 * 60));
    for i in 0..c.len() - 1 {
        assert!(
            !table_has(&c, i, ro),
            "seed {seed}: node {i} has the read-only node in its table"
        );
    }
    let s = c.node(ro).stats();
    assert_eq!(
        s.queries,
        Default::default(),
        "seed {seed}: it answered {:?}",
        s.queries
    );
    assert!(s.drops.read_only >= 1, "seed {seed}: {:?}", s.drops);
}

/// A silent node (crashed) turns bad in the tables of those that knew it and is replaced
/// there over time by maintenance pings; lookups stop returning it.
#[test]
fn silent_node_is_replaced() {
    let seed = 77;
    let mut c = Cluster::new(seed, Link::default(), t0());
    // k = 8 everywhere (no wide far buckets), so buckets fill and keep replacements.
    let config = Config {
        routing: RoutingConfig {
            bucket_sizes_far: vec![],
            ..RoutingConfig::default()
        },
        ..Config::default()
    };
    c.grow(80, &config);
    // Some traffic so that replacement caches hold verified nodes.
    for q in 0..40 {
        let target = id_from(seed, q);
        let _ = run(&mut c, q as usize % 80, |n, now| {
            n.start_find_node(target, now).unwrap()
        });
    }
    let victim = (0..c.len())
        .max_by_key(|&v| (0..c.len()).filter(|&i| table_has(&c, i, v)).count())
        .unwrap();
    let holders: Vec<usize> = (0..c.len()).filter(|&i| table_has(&c, i, victim)).collect();
    assert!(
        holders.len() >= 10,
        "seed {seed}: victim known by {}",
        holders.len()
    );
    let victim_addr = c.addr(victim);
    let victim_id = c.node(victim).id();
    c.kill(victim);

    c.run_for(Duration::from_secs(40 * 60));
    let now = c.now();
    let mut replaced = 0;
    for &i in &holders {
        let table = c.node(i).routing_table(Family::V4);
        match table.get(victim_addr) {
            None => replaced += 1,
            Some(e) => assert_eq!(
                table.state(&e, now),
                NodeState::Bad,
                "seed {seed}: node {i} still holds the dead node as not bad: {e:?}"
            ),
        }
    }
    eprintln!(
        "seed {seed}: dead node {victim} replaced in {replaced} of {} tables, bad in the rest",
        holders.len()
    );
    assert!(
        replaced * 2 >= holders.len(),
        "seed {seed}: replaced in only {replaced} of {} tables",
        holders.len()
    );
    for &asker in &holders[..5] {
        let (out, _) = run(&mut c, asker, |n, now| {
            n.start_find_node(victim_id, now).unwrap()
        });
        assert!(
            !closest_ids(seed, &out).contains(&victim_id),
            "seed {seed}: a lookup returned the dead node"
        );
        assert_eq!(
            closest_ids(seed, &out),
            c.true_closest(&victim_id, 8, asker),
            "seed {seed}"
        );
    }
}

/// An announced peer is gone after 30 min without re-announce; a BEP 44 item after 2 h.
#[test]
fn announced_peers_and_items_expire() {
    let seed = 30;
    let mut c = cluster(seed, 40);
    let ih = InfoHash(id_from(seed, 1).0);
    let (out, _) = run(&mut c, 0, |n, now| {
        n.start_announce(ih, Some(5000), false, now).unwrap()
    });
    assert!(
        matches!(out, Outcome::Stored { .. }),
        "seed {seed}: {out:?}"
    );
    let value = b"6:expire".to_vec();
    let req = PutRequest::Immutable {
        value: value.clone(),
    };
    let (out, _) = run(&mut c, 0, |n, now| n.start_put_item(req, now).unwrap());
    assert!(
        matches!(out, Outcome::Stored { .. }),
        "seed {seed}: {out:?}"
    );
    let target = xorro_wire::bep44::immutable_target(&xorro_wire::RawValue::new(&value).unwrap());
    let peers_of = |c: &mut Cluster, asker| {
        let (out, _) = run(c, asker, |n, now| {
            n.start_get_peers(ih, false, false, now).unwrap()
        });
        match out {
            Outcome::Peers { peers, .. } => peers,
            other => panic!("seed {seed}: {other:?}"),
        }
    };
    let item_at = |c: &mut Cluster, asker| {
        let (out, _) = run(c, asker, |n, now| {
            n.start_get_item(ItemTarget::Immutable(target), now)
                .unwrap()
        });
        item_of(seed, &out)
    };

    c.run_for(Duration::from_secs(25 * 60));
    assert_eq!(
        peers_of(&mut c, 10).len(),
        1,
        "seed {seed}: peer gone before 30 min"
    );
    c.run_for(Duration::from_secs(6 * 60));
    assert!(
        peers_of(&mut c, 11).is_empty(),
        "seed {seed}: peer still there after 31 min"
    );
    assert!(
        (0..c.len()).all(|i| c.node(i).peer_store().peer_count() == 0),
        "seed {seed}: a store still holds the peer"
    );

    c.run_for(Duration::from_secs(79 * 60)); // 1 h 50 min after the put
    assert!(
        item_at(&mut c, 12).is_some(),
        "seed {seed}: item gone before 2 h"
    );
    c.run_for(Duration::from_secs(11 * 60));
    assert_eq!(
        item_at(&mut c, 13),
        None,
        "seed {seed}: item still there after 2 h"
    );
    assert!(
        (0..c.len()).all(|i| c.node(i).item_store().is_empty()),
        "seed {seed}: a store still holds the item"
    );
}

/// A node restored from its snapshot keeps its id, contacts, stored peers and items, and the
/// tokens it handed out before still work.
#[test]
fn snapshot_restore_keeps_everything() {
    let seed = 99;
    let mut c = cluster(seed, 40);
    let value = b"8:snapshot".to_vec();
    let req = PutRequest::Immutable {
        value: value.clone(),
    };
    let (out, _) = run(&mut c, 1, |n, now| n.start_put_item(req, now).unwrap());
    let Outcome::Stored { stored_at, .. } = out else {
        panic!("seed {seed}: {out:?}")
    };
    let a = (0..c.len())
        .find(|&i| c.addr(i) == stored_at[0].addr)
        .unwrap();
    // Peers announced to `a`: an info-hash equal to its id puts `a` among the closest.
    let ih = InfoHash(c.node(a).id().0);
    for i in [2, 3, 4] {
        let (out, _) = run(&mut c, i, |n, now| {
            n.start_announce(ih, Some(4000 + i as u16), false, now)
                .unwrap()
        });
        assert!(
            matches!(out, Outcome::Stored { .. }),
            "seed {seed}: {out:?}"
        );
    }
    assert_eq!(c.node(a).peer_store().peer_count_of(&ih), 3, "seed {seed}");
    assert_eq!(c.node(a).item_store().len(), 1, "seed {seed}");

    // A token handed to an outside client before the snapshot.
    let client: SocketAddr = "192.0.2.77:6881".parse().unwrap();
    let gp = query(
        1,
        NodeId([0x77; 20]),
        QueryKind::GetPeers {
            info_hash: ih,
            want: Want::UNSPECIFIED,
            no_seed: false,
            scrape: false,
        },
    );
    let reply = c.with_node(a, |n, now| ask(n, now, client, &gp));
    let Body::Response(r) = decode(&reply).unwrap().body else {
        panic!("seed {seed}")
    };
    let token = r.token.unwrap();

    let now = c.now();
    let old = c.node(a);
    let snap = old.snapshot(now);
    let later = now + Duration::from_secs(60);
    let minute = Duration::from_secs(60);
    let answered_lately = snap
        .contacts
        .iter()
        .filter(|c| c.answered_ago.is_some_and(|a| a + minute < 15 * minute))
        .count();
    assert!(answered_lately > 0, "seed {seed}");
    // Restored 20 minutes after the snapshot, no contact is trusted: every one is pinged.
    let mut stale = Node::restore(Config::default(), snap.clone().aged(20 * minute), later);
    assert_eq!(
        stale.ping_contacts(later),
        snap.contacts.len(),
        "seed {seed}"
    );
    // A minute after, those that had answered within the last 14 minutes are still good.
    let mut restored = Node::restore(Config::default(), snap.aged(minute), later);
    assert_eq!(
        restored.ping_contacts(later),
        restored.routing_table(Family::V4).len() - answered_lately,
        "seed {seed}"
    );
    assert_eq!(restored.id(), old.id(), "seed {seed}");
    let contacts = |n: &Node| -> BTreeSet<SocketAddr> {
        n.routing_table(Family::V4)
            .iter()
            .map(|e| e.node().addr)
            .collect()
    };
    assert_eq!(contacts(&restored), contacts(old), "seed {seed}");
    let peers = |n: &Node| -> Vec<(InfoHash, SocketAddr)> {
        n.peer_store()
            .iter()
            .map(|p| (p.info_hash, p.addr))
            .collect()
    };
    assert_eq!(peers(&restored), peers(old), "seed {seed}");
    let items = |n: &Node| -> Vec<(NodeId, Item)> {
        n.item_store()
            .iter()
            .map(|i| (i.target, i.item.clone()))
            .collect()
    };
    assert_eq!(items(&restored), items(old), "seed {seed}");

    // The old token is accepted by the restored node.
    let ann = query(
        2,
        NodeId([0x77; 20]),
        QueryKind::AnnouncePeer {
            info_hash: ih,
            port: 9999,
            implied_port: false,
            token,
            seed: false,
        },
    );
    let reply = ask(&mut restored, later, client, &ann);
    assert_eq!(
        error_code(&reply),
        None,
        "seed {seed}: old token refused after restore"
    );
    assert_eq!(restored.peer_store().peer_count_of(&ih), 4, "seed {seed}");
    // And it serves the item.
    let target = xorro_wire::bep44::immutable_target(&xorro_wire::RawValue::new(&value).unwrap());
    let get = query(
        3,
        NodeId([0x77; 20]),
        QueryKind::Get {
            target,
            seq: None,
            want: Want::UNSPECIFIED,
        },
    );
    let reply = ask(&mut restored, later, client, &get);
    let Body::Response(r) = decode(&reply).unwrap().body else {
        panic!("seed {seed}")
    };
    assert_eq!(
        r.value.map(|v| v.as_bytes().to_vec()),
        Some(value),
        "seed {seed}"
    );
}

/// BEP 33 from the client side: a get_peers lookup with `scrape` unites the Bloom filters of
/// the nodes that answer, and their estimates count the seeds and the other peers.
#[test]
fn get_peers_lookup_scrapes_the_swarm() {
    let seed = 33;
    let mut c = cluster(seed, 40);
    let ih = InfoHash(id_from(seed, 7).0);
    for i in 0..6 {
        let is_seed = i < 2;
        let (out, _) = run(&mut c, i, |n, now| {
            n.start_announce(ih, Some(6000), is_seed, now).unwrap()
        });
        assert!(
            matches!(out, Outcome::Stored { .. }),
            "seed {seed}: announce {i}: {out:?}"
        );
    }
    let (out, stats) = run(&mut c, 30, |n, now| {
        n.start_get_peers(ih, false, true, now).unwrap()
    });
    let Outcome::Peers {
        scrape: Some(s), ..
    } = out
    else {
        panic!("seed {seed}: no scrape result: {out:?} {stats:?}")
    };
    assert!(s.responses > 0, "seed {seed}: {s:?}");
    assert_eq!(
        s.seeds_estimate().round(),
        2.0,
        "seed {seed}: seeds in {s:?}"
    );
    assert_eq!(
        s.peers_estimate().round(),
        4.0,
        "seed {seed}: peers in {s:?}"
    );
}

/// The target's closest node is alive but slow (a 600 ms access link: ~1.3 s round trips).
/// A lookup gives it up after its second soft timeout (~0.6 s) unless
/// `lookup_vouched_wait` lets the last attempt wait: the nodes that named it are its near
/// neighbours, so it is waited for, and found.
#[test]
fn a_slow_node_named_by_its_neighbours_is_waited_for() {
    for seed in [7, 8, 9] {
        let mut found = Vec::new();
        for wait in [Duration::ZERO, Duration::from_millis(1500)] {
            let config = Config {
                lookup_vouched_wait: wait,
                ..Config::default()
            };
            let mut c = Cluster::new(seed, Link::default(), t0());
            c.grow(40, &config);
            c.run_for(Duration::from_secs(60));
            let slow = 20;
            c.set_access_delay(slow, Duration::from_millis(600));
            let target = c.node(slow).id();
            let asker = 3;
            let id = c.with_node(asker, |n, now| n.start_find_node(target, now).unwrap());
            let (out, stats) = c
                .run_until_finished(asker, id, Duration::from_secs(60))
                .unwrap_or_else(|| panic!("seed {seed}: the lookup never finished"));
            let Outcome::Closest(nodes) = out else {
                panic!("seed {seed}: {out:?}");
            };
            assert_eq!(nodes.len(), 8, "seed {seed}");
            found.push((nodes.iter().any(|n| n.id == target), stats.duration));
        }
        let [(without, fast), (with, slow_wait)] = found[..] else {
            unreachable!()
        };
        assert!(!without, "seed {seed}: found without waiting ({fast:?})");
        assert!(with, "seed {seed}: not found with the wait ({slow_wait:?})");
    }
}

/// Every other node has a slow access link (150 ms each way on top of the link's 20–50 ms).
/// Nodes whose tables prefer fast members (`prefer_low_rtt`) end up, after some lookups of
/// random targets (whose answers are the RTT samples they choose among), with far fewer slow
/// nodes in their farthest bucket (half the network, so always full) than nodes that keep
/// the first to answer; their near buckets are left alone.
#[test]
fn tables_that_prefer_fast_nodes_keep_fewer_slow_ones() {
    let seed = 41;
    let n = 120;
    let mut shares = Vec::new();
    for prefer in [false, true] {
        let config = Config {
            routing: RoutingConfig {
                prefer_low_rtt: prefer,
                bucket_sizes_far: Vec::new(),
                ..RoutingConfig::default()
            },
            ..Config::default()
        };
        let mut c = Cluster::new(seed, Link::default(), t0());
        for i in 0..n {
            let j = c.add_node(config.clone());
            if i % 2 == 1 {
                c.set_access_delay(j, Duration::from_millis(150));
            }
            let from = if j == 0 { vec![] } else { vec![j / 2] };
            let id = c.bootstrap(j, &from);
            assert!(c.run_until_finished(j, id, LIMIT).is_some(), "seed {seed}");
        }
        for round in 0..10u64 {
            for i in 0..n {
                let target = id_from(seed, round * 1000 + i as u64);
                c.with_node(i, |node, now| node.start_find_node(target, now).unwrap());
            }
            c.run_for(Duration::from_secs(60));
        }
        let slow: BTreeSet<SocketAddr> = (0..n).filter(|i| i % 2 == 1).map(|i| c.addr(i)).collect();
        let (mut far, mut far_slow) = (0, 0);
        for i in 0..n {
            let node = c.node(i);
            for e in node.routing_table(Family::V4).iter() {
                if node.id().distance(&e.node().id).leading_zeros() == 0 {
                    far += 1;
                    far_slow += usize::from(slow.contains(&e.node().addr));
                }
            }
        }
        assert!(far >= n * 7, "seed {seed}: {far} far members");
        shares.push(far_slow as f64 / far as f64);
    }
    let [keep, prefer] = shares[..] else {
        unreachable!()
    };
    assert!(
        keep > 0.3 && prefer < keep / 2.0,
        "seed {seed}: slow share of the far buckets {keep:.2} kept, {prefer:.2} preferring fast"
    );
}
