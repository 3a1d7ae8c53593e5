//! Persistence: one [redb] file, `xorro.redb`, in the node's data directory.
//!
//! [`Storage`] keeps what the node needs to restart warm and what the user asked it to keep
//! publishing:
//!
//! * the node id and the token secrets ([`Storage::save_identity`]);
//! * the routing table contacts ([`Storage::save_contacts`], all replaced at once);
//! * the peers and BEP 44 items other nodes stored on us, with their expiry
//!   ([`Storage::save_network_data`], all replaced at once, about once a second);
//! * the node's own announcements and puts, which it republishes until told to stop
//!   ([`Storage::add_announcement`], [`Storage::remove_announcement`], [`Storage::add_put`],
//!   [`Storage::remove_put`]).
//!
//! [`Storage::load`] reads everything back as a [`Saved`], and [`Saved::into_snapshot`] turns
//! it into the [`xorro_dht::Snapshot`] that [`xorro_dht::Node::restore`] takes.
//!
//! # File layout (schema version 1)
//!
//! Every table maps bytes to bytes (`&[u8] → &[u8]`); the encodings below are ours, written
//! and read by this module, and are defined by the schema version stored in `meta`. Integers
//! are big-endian; `addr` is `4 ‖ ip(4) ‖ port(2)` or `6 ‖ ip(16) ‖ port(2) ‖ scope_id(4)`
//! (the IPv6 flow label is not kept); `bytes` is `len(u32) ‖ len bytes`; `expiry` is UNIX
//! seconds (u64), because an `Instant` means nothing to another process.
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | `"application"` | `"xorro"` |
//! | `meta` | `"schema_version"` | u32 |
//! | `identity` | `"node"` | id(20) ‖ current secret(20) ‖ has_previous(1) ‖ \[previous secret(20)\] |
//! | `contacts` | index (u32, the routing table's order) | id(20) ‖ addr ‖ flags(1: bit 0 rtt, bit 1 answered) ‖ \[rtt ns (u64)\] ‖ \[last answer, UNIX milliseconds (u64)\] |
//! | `peers` | info_hash(20) ‖ addr | seed(1) ‖ expiry |
//! | `items` | target(20) | expiry ‖ 0 ‖ value:bytes, or expiry ‖ 1 ‖ key(32) ‖ signature(64) ‖ seq(i64) ‖ salt:bytes ‖ value:bytes |
//! | `announcements` | info_hash(20) | flags(1: bit 0 seed, bit 1 port given) ‖ port(u16, 0 when not given) |
//! | `puts` | target(20) | 0 ‖ value:bytes, or 1 ‖ keypair seed(32) ‖ seq(i64) ‖ salt:bytes ‖ value:bytes |
//!
//! A new database is built as `xorro.redb.new`, initialised (every table, `meta`), closed,
//! and only then linked to `xorro.redb`, so a crash during the very first start leaves no
//! half-written file behind (redb writes a new file's header in several steps); a `.new`
//! left by such a crash is replaced. A zero-length `xorro.redb` holds nothing and is replaced
//! the same way. Opening checks `meta`: a redb file without it, or whose `meta` does not say
//! `xorro` (an empty redb file included), is [`StorageError::Foreign`] and left untouched; a
//! schema version above [`SCHEMA_VERSION`] is [`StorageError::NewerSchema`]. A row that does
//! not decode is skipped and counted in [`Saved::skipped_rows`]; the other rows load.
//!
//! A contact's last answer was added to version 1 without a new version: rows written
//! before it (flags 0 or 1) load as contacts that never answered, as they always did; a
//! binary from before it skips the rows that carry one (counted in `skipped_rows`) and
//! loads the rest.
//!
//! # Durability
//!
//! Every call is one redb write transaction: it commits whole or not at all, and a crash at
//! any moment (power loss included, as far as the disk honours `fsync`) leaves the file at
//! some earlier commit, never damaged.
//!
//! * What the user asked for — [`Storage::add_announcement`], [`Storage::remove_announcement`],
//!   [`Storage::add_put`], [`Storage::remove_put`] — and the node's identity and contacts
//!   commit with [`Durability::Immediate`]: they are on disk (`fsync`ed) when the call
//!   returns.
//! * What other nodes stored on us ([`Storage::save_network_data`]) commits with
//!   [`Durability::None`], except one call in [`NETWORK_DATA_DURABLE_EVERY`] (the first
//!   included), which is `Immediate`. A non-durable commit is still atomic and crash-safe
//!   (redb's design: after a crash the file returns to the last durable commit or a later
//!   non-durable one); it is only not guaranteed to survive a crash. Any later `Immediate`
//!   commit, [`Storage::flush`], or dropping the [`Storage`] makes it durable. At one call a
//!   second, a crash loses at most about a minute of data stored for others, which its owners
//!   re-announce anyway, and saves an `fsync` a second.
//!
//! Durable commits are redb's default one-phase commit with checksums (one `fsync`); quick
//! repair is off, so commits stay cheap.
//!
//! # Damaged files
//!
//! Every open verifies the whole file (redb's `check_integrity`: the checksum of every page,
//! the allocator state; repairing from the previous commit after a crash), so a damaged file
//! is reported as [`StorageError::Corrupt`] at open rather than trusted. This reads the whole
//! file: a few milliseconds for the database of a busy node (see the `storage` bench).
//! redb 4.5 reports damage as errors; older versions asserted on some (a truncated file) or
//! aborted the process on others (a damaged page number made them allocate terabytes). As a
//! last guard, every call into redb runs under [`std::panic::catch_unwind`]: a panic becomes
//! [`StorageError::Corrupt`] and the `Storage` refuses further use. This relies on the default
//! `panic = "unwind"`.

use std::fmt;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableError, WriteTransaction,
};
use tracing::{debug, info, warn};
use xorro_dht::Snapshot;
use xorro_dht::routing::SavedContact;
use xorro_dht::store::StoredItem;
use xorro_dht::tokens::TokenSecrets;
use xorro_wire::bep44::Keypair;
use xorro_wire::{InfoHash, NodeId, NodeInfo, PublicKey, Signature};

/// The database file's name inside the data directory.
pub const FILE_NAME: &str = "xorro.redb";

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// One [`Storage::save_network_data`] call in this many commits durably (`fsync`); the others
/// commit with [`Durability::None`]. At one call a second: at most about a minute of data
/// stored for others is lost in a crash.
pub const NETWORK_DATA_DURABLE_EVERY: u32 = 60;

/// redb's page cache. The whole file of a busy node is a few MB; redb's default is 1 GiB.
const CACHE_SIZE: usize = 32 * 1024 * 1024;

/// An expiry further ahead than this is not one we wrote (the stores keep data for hours):
/// the row is skipped, which also keeps `now + remaining` far from overflowing.
const EXPIRY_HORIZON: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The value of `meta["application"]`.
const APPLICATION: &[u8] = b"xorro";
const KEY_APPLICATION: &[u8] = b"application";
const KEY_SCHEMA_VERSION: &[u8] = b"schema_version";
const KEY_NODE: &[u8] = b"node";

type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;

const META: Table = TableDefinition::new("meta");
const IDENTITY: Table = TableDefinition::new("identity");
const CONTACTS: Table = TableDefinition::new("contacts");
const PEERS: Table = TableDefinition::new("peers");
const ITEMS: Table = TableDefinition::new("items");
const ANNOUNCEMENTS: Table = TableDefinition::new("announcements");
const PUTS: Table = TableDefinition::new("puts");

const ALL_TABLES: [Table; 7] = [META, IDENTITY, CONTACTS, PEERS, ITEMS, ANNOUNCEMENTS, PUTS];

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// Why the database could not be opened, read or written. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Another process (or another [`Storage`] in this one) has the database open.
    #[error("another xorro node is using {}; stop it or pass another --data-dir", dir.display())]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// The file is not a redb database, or it is damaged.
    #[error(
        "the database {p} is damaged or not a xorro database; move it aside (mv {p} {p}.bad) \
         and start again — the node will re-join the network",
        p = path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
    },
    /// A valid redb database that xorro did not write (no `meta` table saying `xorro`).
    #[error(
        "{p} is a database of another program, not xorro's; move it aside \
         (mv {p} {p}.other) or pass another --data-dir",
        p = path.display()
    )]
    Foreign {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer xorro with a schema this build cannot read.
    #[error(
        "{} was written by a newer xorro (schema version {found}, this build reads up to \
         {supported}); run that newer version or pass another --data-dir",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version in the file.
        found: u32,
        /// The newest schema version this build reads ([`SCHEMA_VERSION`]).
        supported: u32,
    },
    /// The operating system refused a read or write: permissions, a full disk, a failing disk.
    #[error(
        "cannot read or write {}: check its permissions and that the disk is not full",
        path.display()
    )]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A write transaction failed for another reason; nothing of it was saved.
    #[error("saving to {} failed; the previous contents are intact — restart the node if this persists", path.display())]
    Write {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: redb::Error,
    },
    /// A read transaction failed for another reason.
    #[error("reading {} failed; restart the node if this persists", path.display())]
    Read {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: redb::Error,
    },
}

/// One of the node's own announcements (BEP 5 `announce_peer`), republished until removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Announcement {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The port peers should connect to; `None` announces with BEP 5 `implied_port` (the UDP
    /// source port).
    pub port: Option<u16>,
    /// BEP 33: announced as a seed.
    pub seed: bool,
}

/// One of the node's own BEP 44 puts, republished until removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnPut {
    /// The item's target (SHA-1 of the value, or of key ‖ salt).
    pub target: NodeId,
    /// What to put.
    pub item: OwnItem,
}

/// The content of an [`OwnPut`]: what the node needs to put (and sign) the item again.
///
/// `Debug` does not print the keypair seed, only the public key.
#[derive(Clone, PartialEq, Eq)]
pub enum OwnItem {
    /// An immutable item.
    Immutable {
        /// The bencoded `v`.
        value: Vec<u8>,
    },
    /// A mutable item, signed by the node with its keypair.
    Mutable {
        /// The ed25519 secret seed of the signing keypair ([`Keypair::from_seed`]). Secret.
        keypair_seed: [u8; 32],
        /// The salt, empty when none.
        salt: Vec<u8>,
        /// The bencoded `v`.
        value: Vec<u8>,
        /// The sequence number.
        seq: i64,
    },
}

impl OwnItem {
    /// The signing keypair of a mutable item; `None` for an immutable one.
    pub fn keypair(&self) -> Option<Keypair> {
        match self {
            OwnItem::Immutable { .. } => None,
            OwnItem::Mutable { keypair_seed, .. } => Some(Keypair::from_seed(*keypair_seed)),
        }
    }
}

impl fmt::Debug for OwnItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnItem::Immutable { value } => f
                .debug_struct("Immutable")
                .field("value_len", &value.len())
                .finish(),
            OwnItem::Mutable {
                keypair_seed,
                salt,
                value,
                seq,
            } => f
                .debug_struct("Mutable")
                .field("keypair_seed", &"<redacted>")
                .field(
                    "public_key",
                    &Keypair::from_seed(*keypair_seed).public_key(),
                )
                .field("salt", &salt)
                .field("value_len", &value.len())
                .field("seq", seq)
                .finish(),
        }
    }
}

/// Everything [`Storage::load`] read back. Expired peers and items are left out.
///
/// `Debug` does not print secrets (token secrets, keypair seeds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Saved {
    /// The node id, if one was saved.
    pub id: Option<NodeId>,
    /// The token secrets, saved with the id.
    pub token_secrets: Option<TokenSecrets>,
    /// Routing table contacts, in the order they were saved.
    pub contacts: Vec<SavedContact>,
    /// Peers stored on behalf of others: info_hash, address, seed, time left.
    pub peers: Vec<(InfoHash, SocketAddr, bool, Duration)>,
    /// BEP 44 items stored on behalf of others: target, item, time left.
    pub items: Vec<(NodeId, StoredItem, Duration)>,
    /// The node's own announcements, by info_hash.
    pub announcements: Vec<Announcement>,
    /// The node's own puts, by target.
    pub puts: Vec<OwnPut>,
    /// Rows that did not decode and were skipped.
    pub skipped_rows: usize,
}

impl Saved {
    /// The snapshot to [`xorro_dht::Node::restore`] from; `None` when no id was saved (a
    /// new node). The node's own announcements and puts are not part of it: the driver
    /// republishes them.
    pub fn into_snapshot(self) -> Option<Snapshot> {
        let (Some(id), Some(token_secrets)) = (self.id, self.token_secrets) else {
            return None;
        };
        Some(Snapshot {
            id,
            token_secrets,
            contacts: self.contacts,
            peers: self.peers,
            items: self.items,
        })
    }
}

/// The node's database: one redb file, [`FILE_NAME`], in its data directory.
///
/// Every method is one transaction. `Storage` is `Send + Sync`; calls block on disk I/O
/// (run them off the async runtime's worker threads), and write transactions run one at a
/// time. Dropping it closes the file cleanly (one last durable commit).
pub struct Storage {
    /// `None` only inside `Drop`.
    db: Option<Database>,
    dir: PathBuf,
    path: PathBuf,
    /// Set when redb panicked: the file is damaged, no further call touches it.
    poisoned: AtomicBool,
    network_saves: AtomicU32,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("path", &self.path)
            .field("poisoned", &self.poisoned.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            // Closing commits once more (durably); on a damaged file that may panic.
            match panic::catch_unwind(AssertUnwindSafe(move || db.close())) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(path = %self.path.display(), error = %e, "closing the database failed")
                }
                Err(_) => {
                    warn!(path = %self.path.display(), "closing the damaged database panicked")
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------------

impl Storage {
    /// Opens `dir/xorro.redb`, creating the directory and the database if needed.
    ///
    /// Errors: [`StorageError::Locked`] when another node uses `dir`,
    /// [`StorageError::Corrupt`], [`StorageError::Foreign`], [`StorageError::NewerSchema`],
    /// [`StorageError::Io`]. Never panics, whatever the file holds.
    pub fn open(dir: &Path) -> Result<Storage, StorageError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StorageError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(FILE_NAME);
        match fs::metadata(&path) {
            // A zero-length file holds nothing: create it properly.
            Ok(meta) if meta.is_file() && meta.len() == 0 => {
                fs::remove_file(&path).map_err(io(&path))?;
                create_atomically(dir, &path)?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_atomically(dir, &path)?,
            Err(source) => return Err(StorageError::Io { path, source }),
        }
        Storage::open_file(dir, path, Empty::Foreign)
    }

    /// Opens `path` with redb and checks the schema; `empty` says what a file without any
    /// table is.
    fn open_file(dir: &Path, path: PathBuf, empty: Empty) -> Result<Storage, StorageError> {
        let opened = panic::catch_unwind(|| {
            redb::Builder::new()
                .set_cache_size(CACHE_SIZE)
                // Verify every page's checksum on every open, not only after a crash, so that
                // a damaged file is reported here rather than trusted.
                .set_check_integrity_on_open(true)
                .create(&path)
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(classify(dir, &path, e.into(), Op::Read)),
            Err(_) => {
                warn!(path = %path.display(), "redb panicked opening the database");
                return Err(StorageError::Corrupt { path });
            }
        };
        let storage = Storage {
            db: Some(db),
            dir: dir.to_path_buf(),
            path,
            poisoned: AtomicBool::new(false),
            network_saves: AtomicU32::new(0),
        };
        storage.guarded(|db| storage.check_schema(db, empty))?;
        Ok(storage)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Saves the node id and token secrets (durable on return).
    pub fn save_identity(&self, id: NodeId, secrets: &TokenSecrets) -> Result<(), StorageError> {
        let value = encode_identity(id, secrets);
        self.write(Durability::Immediate, |txn| {
            txn.open_table(IDENTITY)?
                .insert(KEY_NODE, value.as_slice())?;
            Ok(())
        })
    }

    /// Replaces the saved routing table contacts with `contacts`, in one transaction
    /// (durable on return). Their `answered_ago` are read as of `now` and saved as
    /// wall-clock times, which [`Storage::load`] turns back into ages.
    pub fn save_contacts(
        &self,
        contacts: &[SavedContact],
        now: SystemTime,
    ) -> Result<(), StorageError> {
        self.write(Durability::Immediate, |txn| {
            txn.delete_table(CONTACTS)?;
            let mut table = txn.open_table(CONTACTS)?;
            let mut value = Vec::with_capacity(64);
            for (i, contact) in contacts.iter().enumerate() {
                let index = u32::try_from(i).map_err(|_| redb::Error::ValueTooLarge(i))?;
                encode_contact(contact, now, &mut value);
                table.insert(index.to_be_bytes().as_slice(), value.as_slice())?;
            }
            Ok(())
        })
    }

    /// Replaces the peers and items stored on behalf of others, in one transaction.
    ///
    /// Expiries are wall-clock times: convert each `Instant` with the same `now` pair.
    /// Not durable on return, except one call in [`NETWORK_DATA_DURABLE_EVERY`]: see the
    /// module documentation.
    pub fn save_network_data(
        &self,
        peers: &[(InfoHash, SocketAddr, bool, SystemTime)],
        items: &[(NodeId, StoredItem, SystemTime)],
    ) -> Result<(), StorageError> {
        let n = self.network_saves.fetch_add(1, Ordering::Relaxed);
        let durability = if n.is_multiple_of(NETWORK_DATA_DURABLE_EVERY) {
            Durability::Immediate
        } else {
            Durability::None
        };
        self.write(durability, |txn| {
            txn.delete_table(PEERS)?;
            txn.delete_table(ITEMS)?;
            let mut key = Vec::with_capacity(48);
            let mut value = Vec::with_capacity(64);
            {
                let mut table = txn.open_table(PEERS)?;
                for (info_hash, addr, seed, expiry) in peers {
                    key.clear();
                    key.extend_from_slice(info_hash.as_bytes());
                    put_addr(&mut key, addr);
                    value.clear();
                    value.push(u8::from(*seed));
                    value.extend_from_slice(&unix_secs(*expiry).to_be_bytes());
                    table.insert(key.as_slice(), value.as_slice())?;
                }
            }
            let mut table = txn.open_table(ITEMS)?;
            for (target, item, expiry) in items {
                value.clear();
                value.extend_from_slice(&unix_secs(*expiry).to_be_bytes());
                encode_stored_item(item, &mut value)?;
                table.insert(target.as_bytes().as_slice(), value.as_slice())?;
            }
            Ok(())
        })
    }

    /// Adds (or replaces, by info_hash) one of the node's own announcements (durable on
    /// return).
    pub fn add_announcement(&self, announcement: &Announcement) -> Result<(), StorageError> {
        let value = encode_announcement(announcement);
        self.write(Durability::Immediate, |txn| {
            txn.open_table(ANNOUNCEMENTS)?.insert(
                announcement.info_hash.as_bytes().as_slice(),
                value.as_slice(),
            )?;
            Ok(())
        })
    }

    /// Removes the node's announcement of `info_hash`; false when there was none (durable on
    /// return).
    pub fn remove_announcement(&self, info_hash: &InfoHash) -> Result<bool, StorageError> {
        self.remove(ANNOUNCEMENTS, info_hash.as_bytes())
    }

    /// Adds (or replaces, by target) one of the node's own puts (durable on return).
    pub fn add_put(&self, put: &OwnPut) -> Result<(), StorageError> {
        self.write(Durability::Immediate, |txn| {
            let value = encode_own_item(&put.item)?;
            txn.open_table(PUTS)?
                .insert(put.target.as_bytes().as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    /// Removes the node's put of `target`; false when there was none (durable on return).
    pub fn remove_put(&self, target: &NodeId) -> Result<bool, StorageError> {
        self.remove(PUTS, target.as_bytes())
    }

    /// Makes every earlier commit durable (one `fsync`); the driver calls it before exiting.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.write(Durability::Immediate, |_| Ok(()))
    }

    /// Reads everything back; peers and items that expire at or before `now` are left out,
    /// rows that do not decode are skipped and counted in [`Saved::skipped_rows`].
    pub fn load(&self, now: SystemTime) -> Result<Saved, StorageError> {
        self.guarded(|db| {
            let txn = db
                .begin_read()
                .map_err(|e| classify(&self.dir, &self.path, e.into(), Op::Read))?;
            self.read_all(&txn, now)
                .map_err(|e| classify(&self.dir, &self.path, e, Op::Read))
        })
    }

    // ----- internals -----

    fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database is only taken out in Drop")
    }

    /// Runs `f` on the database, turning a redb panic into [`StorageError::Corrupt`].
    fn guarded<R>(
        &self,
        f: impl FnOnce(&Database) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        if self.poisoned.load(Ordering::Relaxed) {
            return Err(StorageError::Corrupt {
                path: self.path.clone(),
            });
        }
        match panic::catch_unwind(AssertUnwindSafe(|| f(self.db()))) {
            Ok(result) => result,
            Err(_) => {
                self.poisoned.store(true, Ordering::Relaxed);
                warn!(path = %self.path.display(), "redb panicked: the database is damaged");
                Err(StorageError::Corrupt {
                    path: self.path.clone(),
                })
            }
        }
    }

    /// One write transaction with `durability`, committed when `f` succeeds.
    fn write<R>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTransaction) -> Result<R, redb::Error>,
    ) -> Result<R, StorageError> {
        self.guarded(|db| {
            let run = || -> Result<R, redb::Error> {
                let mut txn = db.begin_write()?;
                txn.set_durability(durability)?;
                let r = f(&txn)?;
                txn.commit()?;
                Ok(r)
            };
            run().map_err(|e| classify(&self.dir, &self.path, e, Op::Write))
        })
    }

    /// Removes `key` from `table`; commits only when there was something to remove.
    fn remove(&self, table: Table, key: &[u8]) -> Result<bool, StorageError> {
        self.guarded(|db| {
            let run = || -> Result<bool, redb::Error> {
                let txn = db.begin_write()?;
                let removed = txn.open_table(table)?.remove(key)?.is_some();
                if removed {
                    txn.commit()?;
                } else {
                    txn.abort()?;
                }
                Ok(removed)
            };
            run().map_err(|e| classify(&self.dir, &self.path, e, Op::Write))
        })
    }

    /// Checks `meta` of an opened file, or initialises a file with no table.
    fn check_schema(&self, db: &Database, if_empty: Empty) -> Result<(), StorageError> {
        let read_err = |e: redb::Error| classify(&self.dir, &self.path, e, Op::Read);
        let foreign = || StorageError::Foreign {
            path: self.path.clone(),
        };
        let txn = db.begin_read().map_err(|e| read_err(e.into()))?;
        let empty = txn
            .list_tables()
            .map_err(|e| read_err(e.into()))?
            .next()
            .is_none()
            && txn
                .list_multimap_tables()
                .map_err(|e| read_err(e.into()))?
                .next()
                .is_none();
        if empty {
            return match if_empty {
                Empty::Initialise => {
                    drop(txn);
                    self.initialise(db)
                }
                Empty::Foreign => Err(foreign()),
            };
        }
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(
                TableError::TableDoesNotExist(_)
                | TableError::TableTypeMismatch { .. }
                | TableError::TableIsMultimap(_)
                | TableError::TypeDefinitionChanged { .. },
            ) => return Err(foreign()),
            Err(e) => return Err(read_err(e.into())),
        };
        let application = meta.get(KEY_APPLICATION).map_err(|e| read_err(e.into()))?;
        if application.as_ref().map(|v| v.value()) != Some(APPLICATION) {
            return Err(foreign());
        }
        let version = meta
            .get(KEY_SCHEMA_VERSION)
            .map_err(|e| read_err(e.into()))?
            .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(foreign)?;
        if version > SCHEMA_VERSION {
            return Err(StorageError::NewerSchema {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            return Err(foreign());
        }
        // Versions below SCHEMA_VERSION would be migrated here; version 1 is the first.
        debug!(path = %self.path.display(), version, "opened the database");
        Ok(())
    }

    /// Creates every table and writes `meta`, in one durable transaction.
    fn initialise(&self, db: &Database) -> Result<(), StorageError> {
        let run = || -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            for table in ALL_TABLES {
                txn.open_table(table)?;
            }
            {
                let mut meta = txn.open_table(META)?;
                meta.insert(KEY_APPLICATION, APPLICATION)?;
                meta.insert(KEY_SCHEMA_VERSION, SCHEMA_VERSION.to_be_bytes().as_slice())?;
            }
            txn.commit()?;
            Ok(())
        };
        run().map_err(|e| classify(&self.dir, &self.path, e, Op::Write))?;
        info!(path = %self.path.display(), version = SCHEMA_VERSION, "created the database");
        Ok(())
    }

    fn read_all(&self, txn: &ReadTransaction, now: SystemTime) -> Result<Saved, redb::Error> {
        let mut saved = Saved::default();
        let mut skipped = 0;

        for_each_row(txn, IDENTITY, |key, value| {
            if key != KEY_NODE {
                return false;
            }
            let Some((id, secrets)) = decode_identity(value) else {
                return false;
            };
            saved.id = Some(id);
            saved.token_secrets = Some(secrets);
            true
        })
        .map(|n| skipped += n)?;

        for_each_row(txn, CONTACTS, |key, value| {
            if key.len() != 4 {
                return false;
            }
            decode_contact(value, now)
                .map(|c| saved.contacts.push(c))
                .is_some()
        })
        .map(|n| skipped += n)?;

        for_each_row(txn, PEERS, |key, value| {
            let Some((info_hash, addr, seed, expiry)) = decode_peer(key, value) else {
                return false;
            };
            match remaining(expiry, now) {
                Remaining::Left(left) => saved.peers.push((info_hash, addr, seed, left)),
                Remaining::Expired => {}
                Remaining::Invalid => return false,
            }
            true
        })
        .map(|n| skipped += n)?;

        for_each_row(txn, ITEMS, |key, value| {
            let Some(target) = NodeId::from_slice(key) else {
                return false;
            };
            let Some((expiry, item)) = decode_stored_item(value) else {
                return false;
            };
            match remaining(expiry, now) {
                Remaining::Left(left) => saved.items.push((target, item, left)),
                Remaining::Expired => {}
                Remaining::Invalid => return false,
            }
            true
        })
        .map(|n| skipped += n)?;

        for_each_row(txn, ANNOUNCEMENTS, |key, value| {
            let Some(info_hash) = InfoHash::from_slice(key) else {
                return false;
            };
            decode_announcement(info_hash, value)
                .map(|a| saved.announcements.push(a))
                .is_some()
        })
        .map(|n| skipped += n)?;

        for_each_row(txn, PUTS, |key, value| {
            let Some(target) = NodeId::from_slice(key) else {
                return false;
            };
            decode_own_item(value)
                .map(|item| saved.puts.push(OwnPut { target, item }))
                .is_some()
        })
        .map(|n| skipped += n)?;

        if skipped > 0 {
            warn!(path = %self.path.display(), skipped, "skipped rows that did not decode");
        }
        saved.skipped_rows = skipped;
        Ok(saved)
    }
}

/// Creates `path` so that a crash at any moment leaves either no file or a complete,
/// initialised database: the database is built as `xorro.redb.new`, closed, then linked to
/// its name. (redb writes a new file's header in several steps; a crash in between would
/// leave a file it cannot open.) A `.new` file left by such a crash is replaced.
fn create_atomically(dir: &Path, path: &Path) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{FILE_NAME}.new"));
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| StorageError::Io { path, source }
    };
    let storage = match Storage::open_file(dir, tmp.clone(), Empty::Initialise) {
        Ok(storage) => storage,
        Err(e @ (StorageError::Locked { .. } | StorageError::Io { .. })) => return Err(e),
        Err(_) => {
            debug!(path = %tmp.display(), "replacing a half-created database");
            fs::remove_file(&tmp).map_err(io(&tmp))?;
            Storage::open_file(dir, tmp.clone(), Empty::Initialise)?
        }
    };
    drop(storage);
    // A hard link does not replace a file another process may have put there meanwhile.
    match fs::hard_link(&tmp, path) {
        Ok(()) => {}
        // Another process starting on the same directory got there first.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::AlreadyExists | io::ErrorKind::NotFound
            ) => {}
        // A file system without hard links.
        Err(_) => {
            if !path.exists() {
                fs::rename(&tmp, path).map_err(io(path))?;
            }
        }
    }
    if let Err(e) = fs::remove_file(&tmp)
        && e.kind() != io::ErrorKind::NotFound
    {
        warn!(path = %tmp.display(), error = %e, "could not remove the temporary database");
    }
    // Make the new name durable (not possible, nor needed, on every platform).
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Calls `f(key, value)` on every row of `table` (none when the table does not exist);
/// returns how many rows `f` rejected.
fn for_each_row(
    txn: &ReadTransaction,
    table: Table,
    mut f: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<usize, redb::Error> {
    let table = match txn.open_table(table) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut rejected = 0;
    for row in table.iter()? {
        let (key, value) = row?;
        if !f(key.value(), value.value()) {
            rejected += 1;
        }
    }
    Ok(rejected)
}

/// What a redb file without any table is when opened.
#[derive(Clone, Copy)]
enum Empty {
    /// Our own file being created: initialise it.
    Initialise,
    /// `xorro.redb`, which is only ever linked into place initialised: not ours.
    Foreign,
}

#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
}

/// Sorts a redb error into the variant that tells the operator what to do.
fn classify(dir: &Path, path: &Path, e: redb::Error, op: Op) -> StorageError {
    use redb::Error as E;
    let path = path.to_path_buf();
    match e {
        E::DatabaseAlreadyOpen => StorageError::Locked {
            dir: dir.to_path_buf(),
        },
        E::Corrupted(_)
        | E::RepairAborted
        | E::TableTypeMismatch { .. }
        | E::TableIsMultimap(_)
        | E::TableIsNotMultimap(_)
        | E::TypeDefinitionChanged { .. } => StorageError::Corrupt { path },
        // A redb file of an older format: xorro has only ever written format 3.
        E::UpgradeRequired(_) => StorageError::Foreign { path },
        E::Io(source)
            if matches!(
                source.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            StorageError::Corrupt { path }
        }
        E::Io(source) => StorageError::Io { path, source },
        source => match op {
            Op::Read => StorageError::Read { path, source },
            Op::Write => StorageError::Write { path, source },
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

const ADDR_V4: u8 = 4;
const ADDR_V6: u8 = 6;
const ITEM_IMMUTABLE: u8 = 0;
const ITEM_MUTABLE: u8 = 1;
const ANNOUNCE_SEED: u8 = 1;
const ANNOUNCE_PORT: u8 = 2;

/// UNIX seconds of `t`, rounded down; 0 before 1970.
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// UNIX milliseconds of `t`, rounded down; 0 before 1970.
fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

enum Remaining {
    Left(Duration),
    Expired,
    Invalid,
}

fn remaining(expiry_secs: u64, now: SystemTime) -> Remaining {
    let Some(expiry) = UNIX_EPOCH.checked_add(Duration::from_secs(expiry_secs)) else {
        return Remaining::Invalid;
    };
    match expiry.duration_since(now) {
        Ok(left) if left > EXPIRY_HORIZON => Remaining::Invalid,
        Ok(left) if !left.is_zero() => Remaining::Left(left),
        _ => Remaining::Expired,
    }
}

fn put_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            out.push(ADDR_V4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        SocketAddr::V6(a) => {
            out.push(ADDR_V6);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&a.scope_id().to_be_bytes());
        }
    }
}

/// Appends `len(u32) ‖ bytes`.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), redb::Error> {
    let len = u32::try_from(bytes.len()).map_err(|_| redb::Error::ValueTooLarge(bytes.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn encode_identity(id: NodeId, secrets: &TokenSecrets) -> Vec<u8> {
    let mut out = Vec::with_capacity(61);
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&secrets.current);
    match &secrets.previous {
        Some(previous) => {
            out.push(1);
            out.extend_from_slice(previous);
        }
        None => out.push(0),
    }
    out
}

fn decode_identity(bytes: &[u8]) -> Option<(NodeId, TokenSecrets)> {
    let mut r = Reader(bytes);
    let id = NodeId(r.array()?);
    let current = r.array()?;
    let previous = match r.u8()? {
        0 => None,
        1 => Some(r.array()?),
        _ => return None,
    };
    r.finish()?;
    Some((id, TokenSecrets { current, previous }))
}

/// Flags of a contact row: its smoothed RTT follows.
const CONTACT_RTT: u8 = 1;
/// Flags of a contact row: the wall-clock time of its last answer follows.
const CONTACT_ANSWERED: u8 = 2;

fn encode_contact(contact: &SavedContact, now: SystemTime, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(contact.node.id.as_bytes());
    put_addr(out, &contact.node.addr);
    let answered = contact
        .answered_ago
        .and_then(|ago| now.checked_sub(ago))
        .map(unix_millis);
    out.push(contact.rtt.map_or(0, |_| CONTACT_RTT) | answered.map_or(0, |_| CONTACT_ANSWERED));
    if let Some(rtt) = contact.rtt {
        let nanos = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        out.extend_from_slice(&nanos.to_be_bytes());
    }
    if let Some(ms) = answered {
        out.extend_from_slice(&ms.to_be_bytes());
    }
}

/// A contact row; its last answer becomes an age as of `now` (none when it lies after `now`:
/// the clock went back, and nothing says how long ago it was).
fn decode_contact(bytes: &[u8], now: SystemTime) -> Option<SavedContact> {
    let mut r = Reader(bytes);
    let id = NodeId(r.array()?);
    let addr = r.addr()?;
    let flags = r.u8()?;
    if flags & !(CONTACT_RTT | CONTACT_ANSWERED) != 0 {
        return None;
    }
    let rtt = if flags & CONTACT_RTT != 0 {
        Some(Duration::from_nanos(r.u64()?))
    } else {
        None
    };
    let answered_ago = if flags & CONTACT_ANSWERED != 0 {
        let at = UNIX_EPOCH.checked_add(Duration::from_millis(r.u64()?))?;
        now.duration_since(at).ok()
    } else {
        None
    };
    r.finish()?;
    Some(SavedContact {
        node: NodeInfo::new(id, addr),
        rtt,
        answered_ago,
    })
}

fn decode_peer(key: &[u8], value: &[u8]) -> Option<(InfoHash, SocketAddr, bool, u64)> {
    let mut k = Reader(key);
    let info_hash = InfoHash(k.array()?);
    let addr = k.addr()?;
    k.finish()?;
    let mut v = Reader(value);
    let seed = v.bool()?;
    let expiry = v.u64()?;
    v.finish()?;
    Some((info_hash, addr, seed, expiry))
}

fn encode_stored_item(item: &StoredItem, out: &mut Vec<u8>) -> Result<(), redb::Error> {
    match item {
        StoredItem::Immutable { value } => {
            out.push(ITEM_IMMUTABLE);
            put_bytes(out, value)
        }
        StoredItem::Mutable {
            key,
            salt,
            seq,
            signature,
            value,
        } => {
            out.push(ITEM_MUTABLE);
            out.extend_from_slice(&key.0);
            out.extend_from_slice(&signature.0);
            out.extend_from_slice(&seq.to_be_bytes());
            put_bytes(out, salt)?;
            put_bytes(out, value)
        }
    }
}

/// `expiry ‖ item`.
fn decode_stored_item(bytes: &[u8]) -> Option<(u64, StoredItem)> {
    let mut r = Reader(bytes);
    let expiry = r.u64()?;
    let item = match r.u8()? {
        ITEM_IMMUTABLE => StoredItem::Immutable {
            value: r.bytes()?.to_vec(),
        },
        ITEM_MUTABLE => {
            let key = PublicKey(r.array()?);
            let signature = Signature(r.array()?);
            let seq = r.i64()?;
            let salt = r.bytes()?.to_vec();
            let value = r.bytes()?.to_vec();
            StoredItem::Mutable {
                key,
                salt,
                seq,
                signature,
                value,
            }
        }
        _ => return None,
    };
    r.finish()?;
    Some((expiry, item))
}

fn encode_announcement(a: &Announcement) -> [u8; 3] {
    let mut flags = 0;
    if a.seed {
        flags |= ANNOUNCE_SEED;
    }
    if a.port.is_some() {
        flags |= ANNOUNCE_PORT;
    }
    let [hi, lo] = a.port.unwrap_or(0).to_be_bytes();
    [flags, hi, lo]
}

fn decode_announcement(info_hash: InfoHash, bytes: &[u8]) -> Option<Announcement> {
    let mut r = Reader(bytes);
    let flags = r.u8()?;
    let port = r.u16()?;
    r.finish()?;
    if flags & !(ANNOUNCE_SEED | ANNOUNCE_PORT) != 0 {
        return None;
    }
    Some(Announcement {
        info_hash,
        port: (flags & ANNOUNCE_PORT != 0).then_some(port),
        seed: flags & ANNOUNCE_SEED != 0,
    })
}

fn encode_own_item(item: &OwnItem) -> Result<Vec<u8>, redb::Error> {
    let mut out = Vec::with_capacity(64 + item_len(item));
    match item {
        OwnItem::Immutable { value } => {
            out.push(ITEM_IMMUTABLE);
            put_bytes(&mut out, value)?;
        }
        OwnItem::Mutable {
            keypair_seed,
            salt,
            value,
            seq,
        } => {
            out.push(ITEM_MUTABLE);
            out.extend_from_slice(keypair_seed);
            out.extend_from_slice(&seq.to_be_bytes());
            put_bytes(&mut out, salt)?;
            put_bytes(&mut out, value)?;
        }
    }
    Ok(out)
}

fn item_len(item: &OwnItem) -> usize {
    match item {
        OwnItem::Immutable { value } => value.len(),
        OwnItem::Mutable { salt, value, .. } => salt.len() + value.len(),
    }
}

fn decode_own_item(bytes: &[u8]) -> Option<OwnItem> {
    let mut r = Reader(bytes);
    let item = match r.u8()? {
        ITEM_IMMUTABLE => OwnItem::Immutable {
            value: r.bytes()?.to_vec(),
        },
        ITEM_MUTABLE => {
            let keypair_seed = r.array()?;
            let seq = r.i64()?;
            let salt = r.bytes()?.to_vec();
            let value = r.bytes()?.to_vec();
            OwnItem::Mutable {
                keypair_seed,
                salt,
                value,
                seq,
            }
        }
        _ => return None,
    };
    r.finish()?;
    Some(item)
}

/// A bounded reader over a row: every read checks the bytes left; `None` when short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_be_bytes)
    }

    /// `len(u32) ‖ bytes`, bounded by what is left.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }

    fn addr(&mut self) -> Option<SocketAddr> {
        match self.u8()? {
            ADDR_V4 => {
                let ip = Ipv4Addr::from(self.array::<4>()?);
                let port = self.u16()?;
                Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
            }
            ADDR_V6 => {
                let ip = Ipv6Addr::from(self.array::<16>()?);
                let port = self.u16()?;
                let scope_id = self.u32()?;
                Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope_id)))
            }
            _ => None,
        }
    }

    /// `Some` when every byte was read.
    fn finish(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(addr: &str, rtt: Option<Duration>, answered_ago: Option<u64>) -> SavedContact {
        SavedContact {
            node: NodeInfo::new(NodeId([9; 20]), addr.parse().expect("test address")),
            rtt,
            answered_ago: answered_ago.map(Duration::from_secs),
        }
    }

    #[test]
    fn contact_round_trips() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let later = now + Duration::from_secs(30);
        let mut buf = Vec::new();
        for c in [
            contact(
                "1.2.3.4:6881",
                Some(Duration::from_nanos(123_456_789)),
                None,
            ),
            contact("[fe80::1%3]:6881", None, Some(0)),
            contact("[2001:db8::1]:1", Some(Duration::ZERO), Some(600)),
            contact("5.6.7.8:1", None, None),
        ] {
            encode_contact(&c, now, &mut buf);
            assert_eq!(decode_contact(&buf, now), Some(c));
            // Loaded later, it answered that much longer ago.
            let aged = SavedContact {
                answered_ago: c.answered_ago.map(|a| a + Duration::from_secs(30)),
                ..c
            };
            assert_eq!(decode_contact(&buf, later), Some(aged));
            // Loaded by a clock set back before its answer: the age is unknown.
            if c.answered_ago.is_some() {
                let before = now - Duration::from_secs(3_600);
                let unknown = decode_contact(&buf, before).expect("decodes");
                assert_eq!(unknown.answered_ago, None);
            }
            for cut in 0..buf.len() {
                assert_eq!(decode_contact(&buf[..cut], now), None, "cut at {cut}");
            }
            let mut longer = buf.clone();
            longer.push(0);
            assert_eq!(decode_contact(&longer, now), None);
        }
        // A row written before last answers were saved (flags 0 or 1) still loads.
        let old = contact("1.2.3.4:6881", Some(Duration::from_millis(80)), None);
        encode_contact(&old, now, &mut buf);
        assert_eq!(buf[27], CONTACT_RTT, "the old layout, byte for byte");
        assert_eq!(decode_contact(&buf, now), Some(old));
        // Unknown flags are refused.
        buf[27] |= 4;
        assert_eq!(decode_contact(&buf, now), None);
    }

    #[test]
    fn every_truncation_of_a_row_is_rejected_not_a_panic() {
        let item = StoredItem::Mutable {
            key: PublicKey([1; 32]),
            salt: b"salt".to_vec(),
            seq: -5,
            signature: Signature([2; 64]),
            value: b"3:abc".to_vec(),
        };
        let mut buf = 77u64.to_be_bytes().to_vec();
        encode_stored_item(&item, &mut buf).expect("small item");
        assert_eq!(decode_stored_item(&buf), Some((77, item)));
        for cut in 0..buf.len() {
            assert_eq!(decode_stored_item(&buf[..cut]), None, "cut at {cut}");
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(decode_stored_item(&longer), None);
        // A length prefix pointing far beyond the row.
        let mut huge = vec![0; 8];
        huge.push(ITEM_IMMUTABLE);
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode_stored_item(&huge), None);
    }

    #[test]
    fn own_item_debug_hides_the_seed() {
        let item = OwnItem::Mutable {
            keypair_seed: [0xAB; 32],
            salt: Vec::new(),
            value: b"1:x".to_vec(),
            seq: 1,
        };
        let text = format!("{item:?}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.to_lowercase().contains(&"ab".repeat(32)), "{text}");
        assert!(!text.contains("171, 171"), "{text}");
    }

    #[test]
    fn expiry_far_ahead_is_invalid() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(matches!(remaining(u64::MAX, now), Remaining::Invalid));
        assert!(matches!(remaining(1_000_000, now), Remaining::Expired));
        assert!(matches!(remaining(999_999, now), Remaining::Expired));
        assert!(matches!(
            remaining(1_000_010, now),
            Remaining::Left(d) if d == Duration::from_secs(10)
        ));
    }
}
