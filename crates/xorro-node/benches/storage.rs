//! The cost of the node's database: a durable `add_announcement` (one `fsync`), a
//! `save_network_data` of 10,000 peers and 1,000 items (mostly non-durable commits, one in
//! `NETWORK_DATA_DURABLE_EVERY` durable), `load`, and `open` (which verifies the whole file).
//!
//! `cargo bench -p xorro-node --bench storage`. The figures depend on the disk's `fsync`.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use xorro_dht::routing::SavedContact;
use xorro_dht::store::StoredItem;
use xorro_dht::tokens::TokenSecrets;
use xorro_node::storage::{Announcement, Storage};
use xorro_wire::{InfoHash, NodeId, NodeInfo, PublicKey, Signature};

type Peers = Vec<(InfoHash, SocketAddr, bool, SystemTime)>;
type Items = Vec<(NodeId, StoredItem, SystemTime)>;

fn id(n: u32) -> [u8; 20] {
    let mut b = [0x5a; 20];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b
}

fn network_data(peers: u32, items: u32) -> (Peers, Items) {
    let expiry = SystemTime::now() + Duration::from_secs(1800);
    let peers = (0..peers)
        .map(|i| {
            let addr = SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i), 6881);
            (
                InfoHash(id(i / 8)),
                SocketAddr::V4(addr),
                i % 3 == 0,
                expiry,
            )
        })
        .collect();
    let items = (0..items)
        .map(|i| {
            let item = StoredItem::Mutable {
                key: PublicKey([7; 32]),
                salt: i.to_be_bytes().to_vec(),
                seq: i64::from(i),
                signature: Signature([9; 64]),
                value: vec![b'x'; 200],
            };
            (NodeId(id(i)), item, expiry)
        })
        .collect();
    (peers, items)
}

fn open(dir: &std::path::Path) -> Storage {
    match Storage::open(dir) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (peers, items) = network_data(10_000, 1_000);
    {
        let s = open(dir.path());
        let mut n = 0u32;
        c.bench_function("storage/add_announcement (durable)", |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                s.add_announcement(&Announcement {
                    info_hash: InfoHash(id(n % 1000)),
                    port: Some(6881),
                    seed: false,
                })
                .expect("add_announcement")
            })
        });
        c.bench_function("storage/save_network_data 10k peers 1k items", |b| {
            b.iter(|| s.save_network_data(&peers, &items).expect("save"))
        });
        let contacts: Vec<SavedContact> = (0..300)
            .map(|i| SavedContact {
                node: NodeInfo::new(
                    NodeId(id(i)),
                    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(0x0b00_0000 + i), 6881)),
                ),
                rtt: Some(Duration::from_millis(u64::from(i))),
                answered_ago: Some(Duration::from_secs(u64::from(i))),
            })
            .collect();
        s.save_contacts(&contacts, SystemTime::now())
            .expect("contacts");
        s.save_identity(
            NodeId(id(1)),
            &TokenSecrets {
                current: [1; 20],
                previous: None,
            },
        )
        .expect("identity");
        s.flush().expect("flush");
        c.bench_function("storage/load (10k peers, 1k items, 300 contacts)", |b| {
            b.iter(|| black_box(s.load(SystemTime::now()).expect("load")))
        });
    }
    let len = std::fs::metadata(dir.path().join(xorro_node::storage::FILE_NAME))
        .map(|m| m.len())
        .unwrap_or_default();
    eprintln!("database file: {len} bytes");
    let mut g = c.benchmark_group("storage");
    g.sample_size(20);
    g.bench_function("open, verify and close (same database)", |b| {
        b.iter_batched(
            || (),
            |()| drop(black_box(open(dir.path()))),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
