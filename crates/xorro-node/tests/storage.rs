//! Tests of the node's database (`xorro_node::storage`): round trips, expiry, durability of
//! the node's own publications across a `kill -9`, and every kind of bad file.
//!
//! The crash test re-executes this test binary as a child (`crash_child`, active only when
//! `XORRO_STORAGE_CRASH_DIR` is set). Failures print the seed; rerun with
//! `XORRO_TEST_SEED=<seed> cargo test -p xorro-node --test storage`.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use xorro_dht::routing::SavedContact;
use xorro_dht::store::StoredItem;
use xorro_dht::tokens::TokenSecrets;
use xorro_node::storage::{
    Announcement, FILE_NAME, OwnItem, OwnPut, SCHEMA_VERSION, Saved, Storage, StorageError,
};
use xorro_wire::{InfoHash, NodeId, NodeInfo, PublicKey, Signature};

type Bytes = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;

const CRASH_DIR_VAR: &str = "XORRO_STORAGE_CRASH_DIR";
const CRASH_START_VAR: &str = "XORRO_STORAGE_CRASH_START";

// ----- helpers -----

/// A fixed wall-clock "now" so that expiries are exact.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(250)
}

fn id(n: u32) -> NodeId {
    let mut b = [0u8; 20];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b[19] = 0x5a;
    NodeId(b)
}

fn ih(n: u32) -> InfoHash {
    InfoHash(id(n).0)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn secrets() -> TokenSecrets {
    TokenSecrets {
        current: [0xC1; 20],
        previous: Some([0xC2; 20]),
    }
}

fn contacts() -> Vec<SavedContact> {
    vec![
        SavedContact {
            node: NodeInfo::new(id(1), addr("10.0.0.1:6881")),
            rtt: Some(Duration::from_micros(12_345)),
            answered_ago: Some(Duration::from_secs(90)),
        },
        SavedContact {
            node: NodeInfo::new(id(2), addr("[2001:db8::2]:6882")),
            rtt: None,
            answered_ago: Some(Duration::ZERO),
        },
        SavedContact {
            node: NodeInfo::new(id(3), addr("[fe80::3%7]:6883")),
            rtt: Some(Duration::from_nanos(1)),
            answered_ago: None,
        },
        SavedContact {
            node: NodeInfo::new(id(0), addr("192.168.1.1:1")),
            rtt: Some(Duration::from_secs(2)),
            answered_ago: None,
        },
    ]
}

fn mutable_item(seq: i64) -> StoredItem {
    StoredItem::Mutable {
        key: PublicKey([0x11; 32]),
        salt: b"foobar".to_vec(),
        seq,
        signature: Signature([0x22; 64]),
        value: b"12:Hello World!".to_vec(),
    }
}

fn immutable_item() -> StoredItem {
    StoredItem::Immutable {
        value: b"12:Hello World!".to_vec(),
    }
}

fn mutable_put() -> OwnPut {
    OwnPut {
        target: id(77),
        item: OwnItem::Mutable {
            keypair_seed: [0x33; 32],
            salt: Vec::new(),
            value: b"i42e".to_vec(),
            seq: 9,
        },
    }
}

fn immutable_put() -> OwnPut {
    OwnPut {
        target: id(78),
        item: OwnItem::Immutable {
            value: b"5:hello".to_vec(),
        },
    }
}

fn open(dir: &Path) -> Storage {
    match Storage::open(dir) {
        Ok(s) => s,
        Err(e) => panic!("opening {}: {e}", dir.display()),
    }
}

fn write_file(dir: &Path, bytes: &[u8]) {
    std::fs::write(dir.join(FILE_NAME), bytes).expect("write test file");
}

/// splitmix64: a tiny seeded generator for the tests' random choices.
struct Rng(u64);

impl Rng {
    fn from_env() -> (Rng, u64) {
        let seed = std::env::var("XORRO_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        (Rng(seed), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A real, closed database with some of everything, and its bytes.
fn real_database(dir: &Path) -> Vec<u8> {
    {
        let s = open(dir);
        s.save_identity(id(42), &secrets()).expect("identity");
        s.save_contacts(&contacts(), now()).expect("contacts");
        let peers: Vec<_> = (0..2000)
            .map(|i| {
                (
                    ih(i / 10),
                    addr(&format!("10.1.{}.{}:{}", i / 250, i % 250, 1000 + i)),
                    i % 2 == 0,
                    now() + Duration::from_secs(600),
                )
            })
            .collect();
        s.save_network_data(&peers, &[(id(5), mutable_item(1), now())])
            .expect("network data");
        for i in 0..50 {
            s.add_announcement(&Announcement {
                info_hash: ih(i),
                port: Some(6881),
                seed: false,
            })
            .expect("announcement");
        }
    }
    std::fs::read(dir.join(FILE_NAME)).expect("read database")
}

// ----- round trips -----

#[test]
fn round_trip_of_everything_and_reopen() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ttl = Duration::from_secs(1800);
    let peers = vec![
        (ih(1), addr("1.2.3.4:6881"), true, now() + ttl),
        (ih(1), addr("[2001:db8::9]:51413"), false, now() + ttl),
        (
            ih(2),
            addr("5.6.7.8:1"),
            false,
            now() + Duration::from_secs(7),
        ),
    ];
    let items = vec![
        (id(10), immutable_item(), now() + ttl),
        (id(11), mutable_item(-3), now() + ttl),
    ];
    let announcements = vec![
        Announcement {
            info_hash: ih(100),
            port: Some(6881),
            seed: false,
        },
        Announcement {
            info_hash: ih(101),
            port: None,
            seed: true,
        },
        Announcement {
            info_hash: ih(102),
            port: Some(0),
            seed: true,
        },
    ];
    let expected = Saved {
        id: Some(id(42)),
        token_secrets: Some(secrets()),
        contacts: contacts(),
        peers: vec![
            (
                ih(1),
                addr("1.2.3.4:6881"),
                true,
                ttl - Duration::from_millis(250),
            ),
            (
                ih(1),
                addr("[2001:db8::9]:51413"),
                false,
                ttl - Duration::from_millis(250),
            ),
            (ih(2), addr("5.6.7.8:1"), false, Duration::from_millis(6750)),
        ],
        items: vec![
            (id(10), immutable_item(), ttl - Duration::from_millis(250)),
            (id(11), mutable_item(-3), ttl - Duration::from_millis(250)),
        ],
        announcements: announcements.clone(),
        puts: vec![mutable_put(), immutable_put()],
        skipped_rows: 0,
    };
    {
        let s = open(dir.path());
        assert_eq!(s.load(now())?, Saved::default(), "a new database is empty");
        s.save_identity(id(42), &secrets())?;
        s.save_contacts(&contacts(), now())?;
        s.save_network_data(&peers, &items)?;
        for a in &announcements {
            s.add_announcement(a)?;
        }
        s.add_put(&immutable_put())?;
        s.add_put(&mutable_put())?;
        assert_eq!(s.load(now())?, expected);
    }
    let s = open(dir.path());
    let saved = s.load(now())?;
    assert_eq!(saved, expected, "after reopening");

    let snapshot = saved.into_snapshot().context("an id was saved")?;
    assert_eq!(snapshot.id, id(42));
    assert_eq!(snapshot.token_secrets, secrets());
    assert_eq!(snapshot.contacts, contacts());
    assert_eq!(snapshot.peers, expected.peers);
    assert_eq!(snapshot.items, expected.items);
    Ok(())
}

#[test]
fn identity_without_previous_secret_and_replacement() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = open(dir.path());
    let first = TokenSecrets {
        current: [1; 20],
        previous: None,
    };
    s.save_identity(id(1), &first)?;
    let saved = s.load(now())?;
    assert_eq!((saved.id, saved.token_secrets), (Some(id(1)), Some(first)));
    s.save_identity(id(2), &secrets())?;
    let saved = s.load(now())?;
    assert_eq!(
        (saved.id, saved.token_secrets),
        (Some(id(2)), Some(secrets()))
    );
    Ok(())
}

#[test]
fn into_snapshot_is_none_without_an_id() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = open(dir.path());
    s.save_contacts(&contacts(), now())?;
    s.add_announcement(&Announcement {
        info_hash: ih(1),
        port: None,
        seed: false,
    })?;
    let saved = s.load(now())?;
    assert_eq!(saved.contacts.len(), 4);
    assert_eq!(saved.into_snapshot(), None);
    Ok(())
}

#[test]
fn saves_replace_the_previous_contents() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = open(dir.path());
    let later = now() + Duration::from_secs(100);
    s.save_contacts(&contacts(), now())?;
    s.save_contacts(&contacts()[2..], now())?;
    s.save_network_data(
        &[
            (ih(1), addr("1.1.1.1:1"), false, later),
            (ih(2), addr("2.2.2.2:2"), false, later),
        ],
        &[(id(1), immutable_item(), later)],
    )?;
    s.save_network_data(&[(ih(3), addr("3.3.3.3:3"), true, later)], &[])?;
    let saved = s.load(now())?;
    assert_eq!(saved.contacts, contacts()[2..].to_vec());
    assert_eq!(
        saved.peers,
        vec![(
            ih(3),
            addr("3.3.3.3:3"),
            true,
            Duration::from_millis(99_750)
        )]
    );
    assert!(saved.items.is_empty());
    s.save_contacts(&[], now())?;
    s.save_network_data(&[], &[])?;
    let saved = s.load(now())?;
    assert!(saved.contacts.is_empty() && saved.peers.is_empty());
    Ok(())
}

#[test]
fn many_network_saves_keep_the_last_and_survive_a_clean_close() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let later = now() + Duration::from_secs(100);
    {
        let s = open(dir.path());
        // More than NETWORK_DATA_DURABLE_EVERY calls: durable and non-durable commits mixed;
        // the last one is non-durable.
        for i in 0..75u32 {
            let peers: Vec<_> = (0..50)
                .map(|j| {
                    (
                        ih(i),
                        addr(&format!("10.0.0.{j}:{}", 1000 + i)),
                        false,
                        later,
                    )
                })
                .collect();
            s.save_network_data(&peers, &[(id(i), immutable_item(), later)])?;
        }
        let saved = s.load(now())?;
        assert_eq!(saved.peers.len(), 50);
        assert!(saved.peers.iter().all(|p| p.0 == ih(74)));
        assert_eq!(saved.items.len(), 1);
    }
    // Dropping the storage made the last, non-durable, commit durable.
    let saved = open(dir.path()).load(now())?;
    assert_eq!(saved.peers.len(), 50);
    assert!(saved.peers.iter().all(|p| p.0 == ih(74)));
    assert_eq!(saved.items[0].0, id(74));
    Ok(())
}

#[test]
fn flush_makes_network_data_durable() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = open(dir.path());
    let later = now() + Duration::from_secs(100);
    s.save_network_data(&[], &[])?; // the first call commits durably
    s.save_network_data(&[(ih(1), addr("1.1.1.1:1"), false, later)], &[])?;
    s.flush()?;
    assert_eq!(s.load(now())?.peers.len(), 1);
    Ok(())
}

// ----- own publications -----

#[test]
fn own_announcements_and_puts_survive_reopen() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let a = |n, port, seed| Announcement {
        info_hash: ih(n),
        port,
        seed,
    };
    {
        let s = open(dir.path());
        s.add_announcement(&a(1, Some(1), false))?;
        s.add_announcement(&a(2, None, true))?;
        s.add_announcement(&a(3, Some(3), false))?;
        // Same info_hash again: replaced, not duplicated.
        s.add_announcement(&a(1, Some(1111), true))?;
        s.add_put(&immutable_put())?;
        s.add_put(&mutable_put())?;
    }
    {
        let s = open(dir.path());
        let saved = s.load(now())?;
        assert_eq!(
            saved.announcements,
            vec![
                a(1, Some(1111), true),
                a(2, None, true),
                a(3, Some(3), false)
            ]
        );
        assert_eq!(saved.puts, vec![mutable_put(), immutable_put()]);

        assert!(s.remove_announcement(&ih(2))?);
        assert!(!s.remove_announcement(&ih(2))?, "already removed");
        assert!(!s.remove_announcement(&ih(99))?, "never added");
        assert!(s.remove_put(&id(77))?);
        assert!(!s.remove_put(&id(77))?);
        // A newer seq of the same mutable put replaces it.
        let mut newer = immutable_put();
        newer.item = OwnItem::Mutable {
            keypair_seed: [5; 32],
            salt: b"s".to_vec(),
            value: b"1:v".to_vec(),
            seq: 10,
        };
        s.add_put(&newer)?;
    }
    let saved = open(dir.path()).load(now())?;
    assert_eq!(
        saved.announcements,
        vec![a(1, Some(1111), true), a(3, Some(3), false)]
    );
    assert_eq!(saved.puts.len(), 1);
    assert_eq!(saved.puts[0].target, id(78));
    assert!(matches!(
        saved.puts[0].item,
        OwnItem::Mutable { seq: 10, .. }
    ));
    let keypair = saved.puts[0].item.keypair().context("mutable")?;
    assert_eq!(keypair.to_seed(), [5; 32]);
    Ok(())
}

// ----- expiry -----

#[test]
fn expired_entries_are_left_out() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = open(dir.path());
    let secs = Duration::from_secs;
    s.save_network_data(
        &[
            (ih(1), addr("1.1.1.1:1"), false, now() - secs(60)),
            (ih(2), addr("2.2.2.2:2"), false, now()),
            (ih(3), addr("3.3.3.3:3"), false, now() + secs(10)),
            (ih(4), addr("4.4.4.4:4"), false, now() + secs(1000)),
            (ih(5), addr("5.5.5.5:5"), false, UNIX_EPOCH - secs(5)),
        ],
        &[
            (id(1), immutable_item(), now() - secs(1)),
            (id(2), mutable_item(1), now() + secs(10)),
            (id(3), mutable_item(2), now() + secs(1000)),
        ],
    )?;
    let saved = s.load(now())?;
    let peers: Vec<_> = saved.peers.iter().map(|p| (p.0, p.3)).collect();
    assert_eq!(
        peers,
        vec![
            (ih(3), secs(10) - Duration::from_millis(250)),
            (ih(4), secs(1000) - Duration::from_millis(250))
        ]
    );
    let items: Vec<_> = saved.items.iter().map(|i| i.0).collect();
    assert_eq!(items, vec![id(2), id(3)]);
    assert_eq!(saved.skipped_rows, 0, "expired rows are not skipped rows");

    // Later, more has expired.
    let saved = s.load(now() + secs(20))?;
    assert_eq!(saved.peers.len(), 1);
    assert_eq!(saved.peers[0].3, secs(980) - Duration::from_millis(250));
    assert_eq!(saved.items.len(), 1);
    // Own publications never expire.
    s.add_announcement(&Announcement {
        info_hash: ih(9),
        port: None,
        seed: false,
    })?;
    assert_eq!(s.load(now() + secs(1_000_000))?.announcements.len(), 1);
    Ok(())
}

// ----- rows that do not decode -----

#[test]
fn undecodable_rows_are_skipped_and_counted() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let later = now() + Duration::from_secs(100);
    {
        let s = open(dir.path());
        s.save_identity(id(42), &secrets())?;
        s.save_contacts(&contacts(), now())?;
        s.save_network_data(
            &[(ih(1), addr("1.1.1.1:1"), false, later)],
            &[(id(1), immutable_item(), later)],
        )?;
        s.add_announcement(&Announcement {
            info_hash: ih(1),
            port: Some(1),
            seed: false,
        })?;
        s.add_put(&immutable_put())?;
    }
    {
        // Something (a bug, a bit flip) wrote rows this schema cannot read, one per table.
        let db = redb::Database::create(dir.path().join(FILE_NAME))?;
        let txn = db.begin_write()?;
        let bad: [(&str, &[u8], &[u8]); 9] = [
            ("identity", b"other", b"x"),
            ("contacts", b"\0\0\0\x09", b"short"),
            ("contacts", b"toolongkey", &[0; 40]),
            ("peers", &[7; 27], &[0; 9]), // address tag 7
            ("peers", &[1; 27], &[2, 0, 0, 0, 0, 0, 0, 0, 0]), // seed flag 2
            ("items", &[3; 20], &[0, 0, 0, 0, 0, 0, 0, 0, 9]), // item kind 9
            ("items", &[4; 20], &[0xff; 8]), // expiry far beyond the horizon, truncated
            ("announcements", &[5; 20], &[0xf0, 0, 1]), // unknown flags
            ("puts", &[6; 19], &[0, 0, 0, 0, 0]), // 19-byte target
        ];
        for (table, key, value) in bad {
            let def: Bytes = redb::TableDefinition::new(table);
            txn.open_table(def)?.insert(key, value)?;
        }
        {
            // A well-formed item whose expiry is centuries away is not ours either.
            let def: Bytes = redb::TableDefinition::new("items");
            let mut row = u64::MAX.to_be_bytes().to_vec();
            row.extend_from_slice(&[0, 0, 0, 0, 1, b'x']);
            txn.open_table(def)?
                .insert([8u8; 20].as_slice(), row.as_slice())?;
        }
        txn.commit()?;
    }
    let saved = open(dir.path()).load(now())?;
    assert_eq!(saved.skipped_rows, 10);
    assert_eq!(saved.id, Some(id(42)));
    assert_eq!(saved.contacts, contacts());
    assert_eq!(saved.peers.len(), 1);
    assert_eq!(saved.items.len(), 1);
    assert_eq!(saved.announcements.len(), 1);
    assert_eq!(saved.puts, vec![immutable_put()]);
    Ok(())
}

// ----- bad files and the errors they give -----

#[test]
fn a_second_open_of_the_same_dir_is_locked() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let first = open(dir.path());
    match Storage::open(dir.path()) {
        Err(e @ StorageError::Locked { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("another xorro node is using"), "{msg}");
            assert!(msg.contains("--data-dir"), "{msg}");
        }
        other => bail!("expected Locked, got {other:?}"),
    }
    drop(first);
    open(dir.path());
    Ok(())
}

#[test]
fn random_bytes_are_corrupt() -> Result<()> {
    let (mut rng, seed) = Rng::from_env();
    for len in [1, 9, 100, 511, 4096, 65_536] {
        let dir = tempfile::tempdir()?;
        write_file(dir.path(), &rng.bytes(len));
        match Storage::open(dir.path()) {
            Err(e @ StorageError::Corrupt { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(".bad"), "{msg}");
                assert!(msg.contains("re-join the network"), "{msg}");
            }
            other => bail!("{len} random bytes (seed {seed}): expected Corrupt, got {other:?}"),
        }
    }
    let dir = tempfile::tempdir()?;
    write_file(dir.path(), b"this is a text file, not a database\n");
    assert!(matches!(
        Storage::open(dir.path()),
        Err(StorageError::Corrupt { .. })
    ));
    Ok(())
}

#[test]
fn a_truncated_database_is_corrupt() -> Result<()> {
    let src = tempfile::tempdir()?;
    let bytes = real_database(src.path());
    assert!(bytes.len() > 16_384, "a database of several pages");
    for cut in [
        1,
        10,
        100,
        512,
        4096,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 4096,
        bytes.len() - 1,
    ] {
        let dir = tempfile::tempdir()?;
        write_file(dir.path(), &bytes[..cut]);
        let r = Storage::open(dir.path());
        assert!(
            matches!(r, Err(StorageError::Corrupt { .. })),
            "cut at {cut} of {}: {r:?}",
            bytes.len()
        );
    }
    Ok(())
}

#[test]
fn damaged_bytes_never_panic() -> Result<()> {
    let (mut rng, seed) = Rng::from_env();
    let src = tempfile::tempdir()?;
    let bytes = real_database(src.path());
    eprintln!("damaged_bytes_never_panic: seed {seed}");
    let mut tally = std::collections::BTreeMap::<&str, usize>::new();
    for round in 0..24 {
        let mut damaged = bytes.clone();
        // The header and first pages most of the time, anywhere otherwise.
        let span = if round % 2 == 0 { 8192 } else { damaged.len() };
        let at = rng.below(span as u64) as usize;
        let len = 1 + rng.below(32) as usize;
        for b in damaged.iter_mut().skip(at).take(len) {
            *b ^= rng.next() as u8 | 1;
        }
        let dir = tempfile::tempdir()?;
        write_file(dir.path(), &damaged);
        // Whatever happens is one of these, and no panic reaches us.
        let outcome = Storage::open(dir.path()).and_then(|s| {
            let saved = s.load(now())?;
            s.add_announcement(&Announcement {
                info_hash: ih(1000),
                port: None,
                seed: false,
            })?;
            Ok(saved)
        });
        let kind = match outcome {
            Ok(_) => "opened",
            Err(StorageError::Corrupt { .. }) => "corrupt",
            Err(StorageError::Foreign { .. }) => "foreign",
            Err(StorageError::NewerSchema { .. }) => "newer schema",
            Err(e) => bail!("damage at {at}+{len} (seed {seed}): unexpected {e:?}"),
        };
        *tally.entry(kind).or_default() += 1;
    }
    eprintln!("damaged files: {tally:?} (seed {seed})");
    Ok(())
}

#[test]
fn a_zero_length_file_starts_a_new_database() -> Result<()> {
    // What a crash during the very first start leaves behind: nothing to lose, so the node
    // starts fresh instead of asking the operator to move an empty file.
    let dir = tempfile::tempdir()?;
    write_file(dir.path(), b"");
    let s = open(dir.path());
    assert_eq!(s.load(now())?, Saved::default());
    s.save_identity(id(1), &secrets())?;
    drop(s);
    assert_eq!(open(dir.path()).load(now())?.id, Some(id(1)));
    Ok(())
}

#[test]
fn a_half_created_database_is_replaced() -> Result<()> {
    // A crash during the very first start leaves `xorro.redb.new` (in any state) and no
    // `xorro.redb`: the next start creates the database again.
    let (mut rng, seed) = Rng::from_env();
    let src = tempfile::tempdir()?;
    let real = real_database(src.path());
    let leftovers: [(&str, Vec<u8>); 4] = [
        ("random bytes", rng.bytes(3000)),
        ("a truncated database", real[..real.len() / 2].to_vec()),
        ("an empty file", Vec::new()),
        ("a header only", real[..512].to_vec()),
    ];
    for (what, bytes) in leftovers {
        let dir = tempfile::tempdir()?;
        let tmp = dir.path().join(format!("{FILE_NAME}.new"));
        std::fs::write(&tmp, &bytes)?;
        let s =
            Storage::open(dir.path()).with_context(|| format!("leftover {what} (seed {seed})"))?;
        assert_eq!(s.load(now())?, Saved::default(), "{what}");
        assert!(!tmp.exists(), "{what}: the temporary file is gone");
        assert!(dir.path().join(FILE_NAME).exists());
    }
    // A complete leftover (the crash came after the first commit): used as it is.
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join(format!("{FILE_NAME}.new")), &real)?;
    assert_eq!(open(dir.path()).load(now())?.announcements.len(), 50);
    Ok(())
}

#[test]
fn a_redb_database_of_another_program_is_foreign() -> Result<()> {
    // (a) other tables, no meta; (b) a `meta` table of other types;
    // (c) a `meta` table like ours naming another application; (d) no schema version;
    // (e) no table at all (xorro only ever puts an initialised file in place).
    type Fill = fn(&redb::WriteTransaction) -> Result<()>;
    let cases: [(&str, Fill); 5] = [
        ("other tables", |txn| {
            let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("stuff");
            txn.open_table(def)?.insert(1, 2)?;
            Ok(())
        }),
        ("meta of other types", |txn| {
            let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("meta");
            txn.open_table(def)?.insert(1, 2)?;
            Ok(())
        }),
        ("another application", |txn| {
            let def: Bytes = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(def)?;
            meta.insert(b"application".as_slice(), b"something-else".as_slice())?;
            meta.insert(b"schema_version".as_slice(), 1u32.to_be_bytes().as_slice())?;
            Ok(())
        }),
        ("no schema version", |txn| {
            let def: Bytes = redb::TableDefinition::new("meta");
            txn.open_table(def)?
                .insert(b"application".as_slice(), b"xorro".as_slice())?;
            Ok(())
        }),
        ("no table at all", |_| Ok(())),
    ];
    for (what, fill) in cases {
        let dir = tempfile::tempdir()?;
        {
            let db = redb::Database::create(dir.path().join(FILE_NAME))?;
            let txn = db.begin_write()?;
            fill(&txn)?;
            txn.commit()?;
        }
        match Storage::open(dir.path()) {
            Err(e @ StorageError::Foreign { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("not xorro's"), "{msg}");
            }
            other => bail!("{what}: expected Foreign, got {other:?}"),
        }
        // The file was left as it was.
        let db = redb::Database::create(dir.path().join(FILE_NAME))?;
        let txn = redb::ReadableDatabase::begin_read(&db)?;
        let tables: Vec<String> = txn
            .list_tables()?
            .map(|t| redb::TableHandle::name(&t).to_string())
            .collect();
        assert!(tables.len() <= 1, "{what}: untouched, has {tables:?}");
        assert!(!tables.iter().any(|t| t == "puts"), "{what}: untouched");
    }
    Ok(())
}

#[test]
fn a_newer_schema_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let s = open(dir.path());
        s.add_announcement(&Announcement {
            info_hash: ih(1),
            port: None,
            seed: false,
        })?;
    }
    {
        let db = redb::Database::create(dir.path().join(FILE_NAME))?;
        let txn = db.begin_write()?;
        let def: Bytes = redb::TableDefinition::new("meta");
        txn.open_table(def)?.insert(
            b"schema_version".as_slice(),
            (SCHEMA_VERSION + 1).to_be_bytes().as_slice(),
        )?;
        txn.commit()?;
    }
    match Storage::open(dir.path()) {
        Err(
            e @ StorageError::NewerSchema {
                found, supported, ..
            },
        ) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            assert!(e.to_string().contains("newer xorro"), "{e}");
        }
        other => bail!("expected NewerSchema, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_data_dir_that_cannot_be_created_is_io() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"")?;
    match Storage::open(&file.join("data")) {
        Err(e @ StorageError::Io { .. }) => {
            assert!(e.to_string().contains("permissions"), "{e}");
            assert!(
                std::error::Error::source(&e).is_some(),
                "the OS error is the source"
            );
        }
        other => bail!("expected Io, got {other:?}"),
    }
    // The database path is a directory.
    std::fs::create_dir(dir.path().join(FILE_NAME))?;
    assert!(matches!(
        Storage::open(dir.path()),
        Err(StorageError::Io { .. })
    ));
    Ok(())
}

// ----- secrets and types -----

#[test]
fn debug_output_redacts_secrets() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = open(dir.path());
    s.save_identity(id(1), &secrets())?;
    s.add_put(&mutable_put())?;
    let saved = s.load(now())?;
    let text = format!("{saved:?} {s:?}");
    for secret in [[0xC1u8; 20].as_slice(), &[0xC2; 20], &[0x33; 32]] {
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let dec = format!("{}, {}", secret[0], secret[1]);
        assert!(!text.contains(&hex), "{text}");
        assert!(!text.contains(&dec), "{text}");
    }
    assert!(text.contains("redacted"), "{text}");
    Ok(())
}

#[test]
fn storage_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Storage>();
    assert_send_sync::<StorageError>();
}

// ----- crash consistency -----

/// Adds announcements (and puts and network data) in a loop until killed, printing
/// `committed <kind> <n>` after each call returns. Does nothing unless run by
/// `own_publications_survive_kill_9`.
#[test]
fn crash_child() -> Result<()> {
    let Ok(dir) = std::env::var(CRASH_DIR_VAR) else {
        return Ok(());
    };
    let start: u32 = std::env::var(CRASH_START_VAR)?.parse()?;
    let s = Storage::open(Path::new(&dir))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "opened")?;
    out.flush()?;
    let later = SystemTime::now() + Duration::from_secs(3600);
    for n in start..start + 100_000 {
        s.add_announcement(&Announcement {
            info_hash: ih(n),
            port: Some((n % 60_000) as u16),
            seed: n % 2 == 0,
        })?;
        writeln!(out, "committed announce {n}")?;
        out.flush()?;
        if n % 3 == 0 {
            s.add_put(&OwnPut {
                target: id(n),
                item: OwnItem::Immutable {
                    value: format!("{}:{n}", n.to_string().len()).into_bytes(),
                },
            })?;
            writeln!(out, "committed put {n}")?;
            out.flush()?;
        }
        if n % 4 == 0 {
            // Mostly non-durable commits in between the durable ones.
            let peers: Vec<_> = (0..200)
                .map(|j| {
                    (
                        ih(n),
                        addr(&format!("10.0.{}.{}:6881", j / 200, j % 200)),
                        false,
                        later,
                    )
                })
                .collect();
            s.save_network_data(&peers, &[(id(n), immutable_item(), later)])?;
        }
    }
    Ok(())
}

#[test]
fn own_publications_survive_kill_9() -> Result<()> {
    let (mut rng, seed) = Rng::from_env();
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut all_announced: Vec<u32> = Vec::new();
    let mut all_put: Vec<u32> = Vec::new();
    let mut killed_while_opening = 0;
    for round in 0..10u32 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CRASH_DIR_VAR, dir.path())
            .env(CRASH_START_VAR, (round * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().expect("reader lock").push(line);
                }
            })
        };
        // Some rounds are killed while opening (redb repairs after the previous kill).
        let delay = Duration::from_millis(rng.below(if round % 3 == 0 { 60 } else { 400 }));
        std::thread::sleep(delay);
        child.kill()?; // SIGKILL
        child.wait()?;
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;

        let lines = lines.lock().expect("lines lock").clone();
        for line in &lines {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("committed"), Some("announce"), Some(n)) => all_announced.push(n.parse()?),
                (Some("committed"), Some("put"), Some(n)) => all_put.push(n.parse()?),
                _ => {}
            }
        }
        let opened_by_child = lines.iter().any(|l| l.ends_with("opened"));
        killed_while_opening += usize::from(!opened_by_child);

        let s = Storage::open(dir.path()).with_context(|| {
            format!("round {round} (seed {seed}, killed after {delay:?}): reopen")
        })?;
        let saved = s.load(SystemTime::now())?;
        let context = || {
            format!(
                "round {round} (seed {seed}, killed after {delay:?}, child opened: \
                 {opened_by_child}, {} committed announcements so far)",
                all_announced.len()
            )
        };
        assert_eq!(saved.skipped_rows, 0, "{}", context());
        let announced: std::collections::BTreeSet<InfoHash> =
            saved.announcements.iter().map(|a| a.info_hash).collect();
        for &n in &all_announced {
            assert!(
                announced.contains(&ih(n)),
                "announcement {n} lost: {}",
                context()
            );
        }
        let put: std::collections::BTreeSet<NodeId> = saved.puts.iter().map(|p| p.target).collect();
        for &n in &all_put {
            assert!(put.contains(&id(n)), "put {n} lost: {}", context());
        }
        // At most the one in flight when the child died is there without being reported.
        assert!(
            saved.announcements.len() <= all_announced.len() + round as usize + 1,
            "{}",
            context()
        );
        for a in &saved.announcements {
            let n = u32::from_be_bytes(a.info_hash.0[..4].try_into()?);
            assert_eq!(a.port, Some((n % 60_000) as u16), "{}", context());
            assert_eq!(a.seed, n % 2 == 0, "{}", context());
        }
    }
    assert!(
        !all_announced.is_empty(),
        "the children committed nothing in 10 rounds (seed {seed})"
    );
    eprintln!(
        "kill -9: {} announcements and {} puts committed over 10 rounds ({} killed before \
         the child had opened the database), none lost (seed {seed})",
        all_announced.len(),
        all_put.len(),
        killed_while_opening
    );
    Ok(())
}
