//! What other nodes store on us: peers per info-hash ([`PeerStore`], BEP 5 `announce_peer`,
//! BEP 33 scrapes, BEP 51 samples) and BEP 44 items ([`ItemStore`]).
//!
//! # Time
//!
//! Every entry has an expiry `Instant`. Each store keeps an index ordered by
//! `(expiry, insertion number)`, so `expire(now)` costs O(log n) per entry removed and a single
//! O(log n) look when nothing is due, and `next_expiry()` tells the node when to set its timer.
//! Between two `expire` calls an entry past its expiry may still be served by [`PeerStore`]
//! (its readers take no `now`); [`ItemStore::get`] takes `now` and hides expired items.
//!
//! # Bounds and eviction
//!
//! Every map has a cap in [`StoreConfig`]. Reaching one evicts an entry or refuses the new one
//! with a named error; nothing grows without bound.
//!
//! * A full info-hash keeps at most `peers_per_infohash_max` peers: a new peer replaces the
//!   one closest to expiry (the least recently announced).
//! * Between info-hashes the store keeps "what is closest to our id and what is popular". The
//!   **retention score** of an info-hash is `prefix + floor(log2(peers))`, where `prefix` is
//!   the number of leading bits it shares with our id: each doubling of its peers is worth one
//!   bit of closeness. Ties go to the one closer to our id (every info-hash is at a different
//!   distance, so the order is total). The lowest-ranked info-hash is the eviction victim:
//!   - a new info-hash when `infohashes_max` are stored evicts the lowest-ranked one with all
//!     its peers, unless the newcomer (one peer) would rank lowest itself: then the announce
//!     fails with [`AnnounceError::Full`];
//!   - a new peer when `peers_total_max` are stored evicts the peer closest to expiry of the
//!     lowest-ranked info-hash (which may be the announced one: then it is a replacement).
//!     A new info-hash that would rank lowest is refused here too.
//!
//!   Nodes closest to an info-hash are the ones lookups reach (BEP 5 stores on the k closest),
//!   so far info-hashes are the ones that arrived through stale routing and matter least;
//!   popular ones serve many requesters and would cost many announces to rebuild.
//! * BEP 44 items (`items_max`): a put that brings a new target into a full store considers
//!   the `items_eviction_window` stored items closest to expiry (the least recently put or
//!   re-put, since each put sets the expiry to `now + item_ttl`) together with the new one;
//!   the one farthest from our id loses: a stored item is evicted, or the put fails with
//!   [`PutError::Full`]. Reads do not count as use: `get` needs no token and is free to spam.
//!
//! # Persistence
//!
//! [`PeerStore::iter`] and [`ItemStore::iter`] list every entry in a deterministic order (by
//! key) with its expiry; `remaining(now)` turns that into a duration to save. The node loads
//! entries back with [`PeerStore::restore`] / [`ItemStore::restore`], passing
//! `expires = now + remaining`; the stores drop entries already expired and clamp expiries
//! to one TTL from `now`. Restoring applies the same caps and eviction as live traffic.

use std::cmp::Reverse;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::{IteratorRandom, SliceRandom};
use xorro_wire::{Distance, ErrorCode, Family, InfoHash, NodeId, PublicKey, Signature};

/// Default cap on peers stored per info-hash (libtorrent's `max_peers`: 500).
pub const PEERS_PER_INFOHASH_MAX: usize = 500;

/// Default cap on info-hashes stored (libtorrent keeps 2000 torrents, jech/dht 16,384).
pub const INFOHASHES_MAX: usize = 5_000;

/// Default cap on peers stored over all info-hashes (bittorrent-dht keeps 10,000 values; a
/// peer costs about 100 bytes here, so this is ~10 MB at most).
pub const PEERS_TOTAL_MAX: usize = 100_000;

/// Default peer lifetime without a re-announce: 30 minutes (libtorrent 45, jech/dht 32;
/// BEP 5 leaves it open, clients re-announce every 15 to 30 minutes).
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);

/// Default cap on BEP 44 items (libtorrent: 700).
pub const ITEMS_MAX: usize = 1_000;

/// BEP 44: "Without re-announcement, these items MAY expire in 2 hours."
pub const ITEM_TTL: Duration = Duration::from_secs(2 * 3600);

/// Default number of peers in one `get_peers` reply.
///
/// BEP 32: a datagram is at most 1024 bytes. A reply to an IPv4 requester with `id`, an
/// 8-byte `token`, BEP 42 `ip`, eight IPv4 `nodes` (208 bytes), a 4-byte `t` and a 4-byte
/// `v` takes 316 bytes without its peers, leaving room for 88 IPv4 peers at 8 bytes each
/// (`6:` + 6); 80 keeps a margin (the test `values_per_reply_fit_a_datagram` encodes it). Replies that also carry `nodes6`, BEP 33 Bloom filters or IPv6 peers
/// (21 bytes each) are trimmed further by the encoder (`xorro_wire::encode`). libtorrent
/// sends up to 100 and lets its encoder trim.
pub const VALUES_PER_REPLY_MAX: usize = 80;

/// Default number of least recently put items considered for eviction.
pub const ITEMS_EVICTION_WINDOW: usize = 8;

/// The longest TTL honoured; longer ones are clamped so `now + ttl` cannot overflow.
const TTL_MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Caps and lifetimes of both stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Peers kept per info-hash ([`PEERS_PER_INFOHASH_MAX`]).
    pub peers_per_infohash_max: usize,
    /// Info-hashes kept ([`INFOHASHES_MAX`]).
    pub infohashes_max: usize,
    /// Peers kept over all info-hashes ([`PEERS_TOTAL_MAX`]).
    pub peers_total_max: usize,
    /// How long a peer stays without a re-announce ([`PEER_TTL`]).
    pub peer_ttl: Duration,
    /// BEP 44 items kept ([`ITEMS_MAX`]).
    pub items_max: usize,
    /// How long an item stays without a re-put ([`ITEM_TTL`]).
    pub item_ttl: Duration,
    /// Least recently put items considered when the item store is full
    /// ([`ITEMS_EVICTION_WINDOW`]).
    pub items_eviction_window: usize,
    /// Peers in one `get_peers` reply ([`VALUES_PER_REPLY_MAX`]); the server passes it as
    /// `max` to [`PeerStore::peers`].
    pub values_per_reply_max: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            peers_per_infohash_max: PEERS_PER_INFOHASH_MAX,
            infohashes_max: INFOHASHES_MAX,
            peers_total_max: PEERS_TOTAL_MAX,
            peer_ttl: PEER_TTL,
            items_max: ITEMS_MAX,
            item_ttl: ITEM_TTL,
            items_eviction_window: ITEMS_EVICTION_WINDOW,
            values_per_reply_max: VALUES_PER_REPLY_MAX,
        }
    }
}

/// `now + ttl`, with `ttl` clamped to a year.
fn deadline(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl.min(TTL_MAX)).unwrap_or(now)
}

/// Position in an expiry index: the expiry, then a unique insertion number.
type ExpiryKey = (Instant, u64);

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/// Why an announce (or a restored peer) was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// The store is at `infohashes_max` or `peers_total_max` and this new info-hash would
    /// rank below every stored one (see the module docs), or a cap is zero.
    #[error("peer store full: info-hash {info_hash} ranks below every stored one")]
    Full {
        /// The info-hash refused.
        info_hash: InfoHash,
    },
}

/// One stored peer, as listed by [`PeerStore::iter`] and loaded by [`PeerStore::restore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRecord {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The peer's address (IPv4-mapped addresses are stored as IPv4).
    pub addr: SocketAddr,
    /// BEP 33: it announced with `seed = 1`.
    pub seed: bool,
    /// When it expires unless re-announced.
    pub expires: Instant,
}

impl PeerRecord {
    /// Time left before expiry at `now` (zero when past), the figure to persist.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires.saturating_duration_since(now)
    }
}

/// Retention rank of an info-hash: the smallest is evicted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// Shared prefix with our id plus floor(log2(peers)).
    score: u32,
    /// Closer is better, so a greater distance sorts first.
    closeness: Reverse<Distance>,
}

fn rank(own_id: &NodeId, info_hash: &InfoHash, peers: usize) -> Rank {
    let distance = own_id.distance(&NodeId::from(*info_hash));
    let popularity = peers.max(1).ilog2();
    Rank {
        score: distance.leading_zeros() + popularity,
        closeness: Reverse(distance),
    }
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    seed: bool,
    expiry: ExpiryKey,
}

#[derive(Debug, Clone)]
struct Torrent {
    peers: BTreeMap<SocketAddr, Peer>,
    /// The same peers ordered by expiry, for replacing the one closest to expiry.
    by_expiry: BTreeMap<ExpiryKey, SocketAddr>,
    /// Index in `PeerStore::slots`.
    slot: usize,
    rank: Rank,
}

/// Peers announced to us, per info-hash, with expiry and bounded by [`StoreConfig`].
#[derive(Debug, Clone)]
pub struct PeerStore {
    /// Shared with the node's other store.
    config: Arc<StoreConfig>,
    own_id: NodeId,
    torrents: BTreeMap<InfoHash, Torrent>,
    /// Every info-hash by retention rank, lowest (first evicted) first.
    ranks: BTreeSet<(Rank, InfoHash)>,
    /// Every peer by expiry.
    expiry: BTreeMap<ExpiryKey, InfoHash>,
    /// Every info-hash once, in an order that only depends on the operations made: lets
    /// [`PeerStore::sample`] pick at random in O(max).
    slots: Vec<InfoHash>,
    peers_total: usize,
    next_seq: u64,
}

/// An address in the one form it is stored under: IPv4-mapped IPv6 becomes IPv4, and IPv6
/// flow info and scope id are cleared.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => addr,
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, a.port())),
            None => SocketAddr::V6(SocketAddrV6::new(*a.ip(), a.port(), 0, 0)),
        },
    }
}

impl PeerStore {
    /// An empty store for the node `own_id`.
    pub fn new(config: StoreConfig, own_id: NodeId) -> Self {
        Self::with_config(Arc::new(config), own_id)
    }

    /// An empty store for the node `own_id` whose settings are shared.
    pub fn with_config(config: Arc<StoreConfig>, own_id: NodeId) -> Self {
        Self {
            config,
            own_id,
            torrents: BTreeMap::new(),
            ranks: BTreeSet::new(),
            expiry: BTreeMap::new(),
            slots: Vec::new(),
            peers_total: 0,
            next_seq: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The id closeness is measured from.
    pub fn own_id(&self) -> NodeId {
        self.own_id
    }

    /// Measures closeness from a new id (after a BEP 42 id change); re-ranks every info-hash
    /// in O(n log n).
    pub fn set_own_id(&mut self, own_id: NodeId) {
        self.own_id = own_id;
        self.ranks.clear();
        for (info_hash, torrent) in &mut self.torrents {
            torrent.rank = rank(&own_id, info_hash, torrent.peers.len());
            self.ranks.insert((torrent.rank, *info_hash));
        }
    }

    /// BEP 5 `announce_peer` (the server has checked the token): stores `addr` under
    /// `info_hash` until `now + peer_ttl`. A re-announce of the same address refreshes the
    /// expiry and the `seed` flag. See the module docs for what happens at the caps.
    pub fn announce(
        &mut self,
        info_hash: InfoHash,
        addr: SocketAddr,
        seed: bool,
        now: Instant,
    ) -> Result<(), AnnounceError> {
        self.insert(
            info_hash,
            canonical(addr),
            seed,
            deadline(now, self.config.peer_ttl),
        )
    }

    /// Loads a persisted peer: skipped (Ok) if it expired by `now`, its expiry clamped to
    /// `now + peer_ttl`, then stored like an announce.
    pub fn restore(&mut self, record: PeerRecord, now: Instant) -> Result<(), AnnounceError> {
        if record.expires <= now {
            return Ok(());
        }
        let expires = record.expires.min(deadline(now, self.config.peer_ttl));
        self.insert(
            record.info_hash,
            canonical(record.addr),
            record.seed,
            expires,
        )
    }

    /// Up to `max` peers of `info_hash` of the requester's `family` (BEP 32: IPv4 peers for
    /// IPv4 requesters), leaving out seeds when `no_seed` (BEP 33 `noseed`). When more match
    /// than `max`, a uniformly random subset; the order is shuffled either way.
    pub fn peers(
        &self,
        info_hash: &InfoHash,
        family: Family,
        no_seed: bool,
        max: usize,
        rng: &mut impl Rng,
    ) -> Vec<SocketAddr> {
        let Some(torrent) = self.torrents.get(info_hash) else {
            return Vec::new();
        };
        let mut out = torrent
            .peers
            .iter()
            .filter(|(addr, peer)| Family::of(addr) == family && !(no_seed && peer.seed))
            .map(|(addr, _)| *addr)
            .choose_multiple(rng, max);
        out.shuffle(rng);
        out
    }

    /// Every stored peer's IP and seed flag, for the server to build BEP 33 `BFsd` (seeds) and
    /// `BFpe` (the others) Bloom filters. Both address families.
    pub fn scrape_sets(&self, info_hash: &InfoHash) -> impl Iterator<Item = (IpAddr, bool)> + '_ {
        self.torrents
            .get(info_hash)
            .into_iter()
            .flat_map(|t| t.peers.iter().map(|(addr, peer)| (addr.ip(), peer.seed)))
    }

    /// Up to `max` distinct stored info-hashes chosen uniformly at random, for BEP 51
    /// `samples`. Costs O(max).
    pub fn sample(&self, max: usize, rng: &mut impl Rng) -> Vec<InfoHash> {
        let amount = max.min(self.slots.len());
        rand::seq::index::sample(rng, self.slots.len(), amount)
            .into_iter()
            .filter_map(|i| self.slots.get(i).copied())
            .collect()
    }

    /// How many info-hashes are stored (BEP 51 `num`).
    pub fn infohash_count(&self) -> usize {
        self.torrents.len()
    }

    /// About how many bytes the store holds on the heap: its elements' sizes (B-tree nodes
    /// add up to about half as much again, not counted).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let per_peer = size_of::<(SocketAddr, Peer)>()
            + size_of::<(ExpiryKey, SocketAddr)>()
            + size_of::<(ExpiryKey, InfoHash)>();
        let per_torrent = size_of::<(InfoHash, Torrent)>()
            + size_of::<(Rank, InfoHash)>()
            + size_of::<InfoHash>();
        self.peers_total * per_peer
            + self.torrents.len() * per_torrent
            + (self.slots.capacity() - self.slots.len()) * size_of::<InfoHash>()
    }

    /// How many peers are stored over all info-hashes.
    pub fn peer_count(&self) -> usize {
        self.peers_total
    }

    /// How many peers are stored for `info_hash`.
    pub fn peer_count_of(&self, info_hash: &InfoHash) -> usize {
        self.torrents.get(info_hash).map_or(0, |t| t.peers.len())
    }

    /// Removes every peer whose expiry is at or before `now`; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some((&key, &info_hash)) = self.expiry.first_key_value()
            && key.0 <= now
        {
            self.remove_peer(info_hash, key);
            removed += 1;
        }
        if removed > 0 {
            tracing::debug!(removed, peers = self.peers_total, "peers expired");
        }
        removed
    }

    /// The earliest expiry, when [`PeerStore::expire`] next has work to do.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first_key_value().map(|(key, _)| key.0)
    }

    /// Every stored peer, ordered by info-hash then address.
    pub fn iter(&self) -> impl Iterator<Item = PeerRecord> + '_ {
        self.torrents.iter().flat_map(|(info_hash, t)| {
            t.peers.iter().map(|(addr, peer)| PeerRecord {
                info_hash: *info_hash,
                addr: *addr,
                seed: peer.seed,
                expires: peer.expiry.0,
            })
        })
    }

    fn bump(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn insert(
        &mut self,
        info_hash: InfoHash,
        addr: SocketAddr,
        seed: bool,
        expires: Instant,
    ) -> Result<(), AnnounceError> {
        let key = (expires, self.bump());

        // A known peer: refresh it.
        if let Some(torrent) = self.torrents.get_mut(&info_hash)
            && let Some(peer) = torrent.peers.get_mut(&addr)
        {
            torrent.by_expiry.remove(&peer.expiry);
            self.expiry.remove(&peer.expiry);
            *peer = Peer { seed, expiry: key };
            torrent.by_expiry.insert(key, addr);
            self.expiry.insert(key, info_hash);
            return Ok(());
        }

        // A new peer: make room.
        let full = AnnounceError::Full { info_hash };
        match self.torrents.get(&info_hash) {
            None => {
                if self.config.infohashes_max == 0
                    || self.config.peers_total_max == 0
                    || self.config.peers_per_infohash_max == 0
                {
                    return Err(full);
                }
                let infohashes_full = self.torrents.len() >= self.config.infohashes_max;
                if infohashes_full || self.peers_total >= self.config.peers_total_max {
                    let Some(&(worst_rank, worst)) = self.ranks.first() else {
                        return Err(full);
                    };
                    if rank(&self.own_id, &info_hash, 1) < worst_rank {
                        tracing::trace!(%info_hash, "announce refused: store full");
                        return Err(full);
                    }
                    if infohashes_full {
                        tracing::debug!(info_hash = %worst, "info-hash evicted");
                        self.remove_torrent(&worst);
                    }
                }
            }
            Some(torrent) if torrent.peers.len() >= self.config.peers_per_infohash_max => {
                self.remove_soonest_peer(info_hash);
            }
            Some(_) => {}
        }
        if self.peers_total >= self.config.peers_total_max
            && let Some(&(_, worst)) = self.ranks.first()
        {
            self.remove_soonest_peer(worst);
        }

        let own_id = self.own_id;
        let slot = self.slots.len();
        let torrent = match self.torrents.entry(info_hash) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let rank = rank(&own_id, &info_hash, 1);
                self.slots.push(info_hash);
                self.ranks.insert((rank, info_hash));
                e.insert(Torrent {
                    peers: BTreeMap::new(),
                    by_expiry: BTreeMap::new(),
                    slot,
                    rank,
                })
            }
        };
        torrent.peers.insert(addr, Peer { seed, expiry: key });
        torrent.by_expiry.insert(key, addr);
        self.expiry.insert(key, info_hash);
        self.peers_total += 1;
        self.rerank(info_hash);
        Ok(())
    }

    /// Removes the peer of `info_hash` closest to expiry.
    fn remove_soonest_peer(&mut self, info_hash: InfoHash) {
        let key = self
            .torrents
            .get(&info_hash)
            .and_then(|t| t.by_expiry.first_key_value().map(|(key, _)| *key));
        if let Some(key) = key {
            self.remove_peer(info_hash, key);
        }
    }

    /// Removes the peer of `info_hash` at `key` in the expiry index, and the info-hash when it
    /// was its last peer.
    fn remove_peer(&mut self, info_hash: InfoHash, key: ExpiryKey) {
        self.expiry.remove(&key);
        let Some(torrent) = self.torrents.get_mut(&info_hash) else {
            return;
        };
        let Some(addr) = torrent.by_expiry.remove(&key) else {
            return;
        };
        torrent.peers.remove(&addr);
        self.peers_total -= 1;
        if torrent.peers.is_empty() {
            self.remove_torrent(&info_hash);
        } else {
            self.rerank(info_hash);
        }
    }

    fn remove_torrent(&mut self, info_hash: &InfoHash) {
        let Some(torrent) = self.torrents.remove(info_hash) else {
            return;
        };
        for key in torrent.by_expiry.keys() {
            self.expiry.remove(key);
        }
        self.peers_total -= torrent.peers.len();
        self.ranks.remove(&(torrent.rank, *info_hash));
        if torrent.slot < self.slots.len() {
            self.slots.swap_remove(torrent.slot);
            if let Some(moved) = self.slots.get(torrent.slot)
                && let Some(m) = self.torrents.get_mut(moved)
            {
                m.slot = torrent.slot;
            }
        }
    }

    /// Moves `info_hash` in the rank index after its peer count changed.
    fn rerank(&mut self, info_hash: InfoHash) {
        let Some(torrent) = self.torrents.get_mut(&info_hash) else {
            return;
        };
        let new = rank(&self.own_id, &info_hash, torrent.peers.len());
        if new != torrent.rank {
            self.ranks.remove(&(torrent.rank, info_hash));
            self.ranks.insert((new, info_hash));
            torrent.rank = new;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// BEP 44 items
// ---------------------------------------------------------------------------------------------

/// A BEP 44 item as stored; `value` is the verbatim bencoded `v` (BEP 44: "It is important
/// to use the verbatim bencoded representation as it appeared in the message").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredItem {
    /// An immutable item: its target is SHA-1 of `value`.
    Immutable {
        /// The bencoded `v`.
        value: Vec<u8>,
    },
    /// A mutable item: its target is SHA-1 of `key ‖ salt`.
    Mutable {
        /// `k`: the ed25519 public key.
        key: PublicKey,
        /// `salt`, empty when absent (BEP 44: the same thing).
        salt: Vec<u8>,
        /// `seq`.
        seq: i64,
        /// `sig`.
        signature: Signature,
        /// The bencoded `v`.
        value: Vec<u8>,
    },
}

impl StoredItem {
    /// The bencoded `v`.
    pub fn value(&self) -> &[u8] {
        match self {
            StoredItem::Immutable { value } | StoredItem::Mutable { value, .. } => value,
        }
    }

    /// `seq` of a mutable item.
    pub fn seq(&self) -> Option<i64> {
        match self {
            StoredItem::Immutable { .. } => None,
            StoredItem::Mutable { seq, .. } => Some(*seq),
        }
    }
}

/// The arguments of a BEP 44 mutable `put`, borrowed from the query (the server has checked
/// the token, the sizes and the signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MutableItem<'a> {
    /// `k`.
    pub key: PublicKey,
    /// `salt`, empty when absent.
    pub salt: &'a [u8],
    /// `seq`.
    pub seq: i64,
    /// `sig`.
    pub signature: Signature,
    /// The bencoded `v`.
    pub value: &'a [u8],
}

/// Why a BEP 44 `put` was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    /// BEP 44: "Storing nodes receiving a put request where seq is lower than or equal to
    /// what's already stored on the node, MUST reject the request" (an equal seq is accepted
    /// only with an identical value, as a refresh). Error 302.
    #[error("sequence number {offered} is not above the stored {stored}")]
    SeqTooLow {
        /// The stored item's seq.
        stored: i64,
        /// The put's seq.
        offered: i64,
    },
    /// BEP 44: "Only if the cas matches the stored sequence number is the put performed."
    /// Error 301.
    #[error("cas {expected} does not match the stored sequence number {stored}")]
    CasMismatch {
        /// The put's `cas`.
        expected: i64,
        /// The stored item's seq.
        stored: i64,
    },
    /// The target holds an item of the other kind, or a mutable item with another key or salt
    /// (possible only through a SHA-1 collision, as targets are hashes of those).
    #[error("target {target} holds a different item")]
    TargetConflict {
        /// The target.
        target: NodeId,
    },
    /// The store is at `items_max` and the new target is farther from our id than every
    /// eviction candidate (or `items_max` is zero).
    #[error("item store full: target {target} is farther than every eviction candidate")]
    Full {
        /// The target refused.
        target: NodeId,
    },
}

impl PutError {
    /// The KRPC error to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            PutError::SeqTooLow { .. } => ErrorCode::SEQ_TOO_LOW,
            PutError::CasMismatch { .. } => ErrorCode::CAS_MISMATCH,
            PutError::TargetConflict { .. } => ErrorCode::GENERIC,
            PutError::Full { .. } => ErrorCode::SERVER,
        }
    }
}

/// One stored item, as listed by [`ItemStore::iter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemRecord<'a> {
    /// The target it is stored under.
    pub target: NodeId,
    /// The item.
    pub item: &'a StoredItem,
    /// When it expires unless re-put.
    pub expires: Instant,
}

impl ItemRecord<'_> {
    /// Time left before expiry at `now` (zero when past), the figure to persist.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires.saturating_duration_since(now)
    }
}

#[derive(Debug, Clone)]
struct ItemEntry {
    item: StoredItem,
    expiry: ExpiryKey,
}

/// BEP 44 items stored on us, by target, with expiry and bounded by [`StoreConfig`].
#[derive(Debug, Clone)]
pub struct ItemStore {
    /// Shared with the node's other store.
    config: Arc<StoreConfig>,
    own_id: NodeId,
    items: BTreeMap<NodeId, ItemEntry>,
    /// Every item by expiry; since each put sets `now + item_ttl`, also by last put.
    expiry: BTreeMap<ExpiryKey, NodeId>,
    next_seq: u64,
}

impl ItemStore {
    /// An empty store for the node `own_id`.
    pub fn new(config: StoreConfig, own_id: NodeId) -> Self {
        Self::with_config(Arc::new(config), own_id)
    }

    /// An empty store for the node `own_id` whose settings are shared.
    pub fn with_config(config: Arc<StoreConfig>, own_id: NodeId) -> Self {
        Self {
            config,
            own_id,
            items: BTreeMap::new(),
            expiry: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The id closeness is measured from.
    pub fn own_id(&self) -> NodeId {
        self.own_id
    }

    /// Measures closeness from a new id (after a BEP 42 id change).
    pub fn set_own_id(&mut self, own_id: NodeId) {
        self.own_id = own_id;
    }

    /// The item under `target`, unless absent or expired at `now`.
    pub fn get(&self, target: &NodeId, now: Instant) -> Option<&StoredItem> {
        self.items
            .get(target)
            .filter(|e| e.expiry.0 > now)
            .map(|e| &e.item)
    }

    /// BEP 44 immutable `put` (the server has checked the token, the size and that `target`
    /// is SHA-1 of `value`). A re-put refreshes the expiry.
    pub fn put_immutable(
        &mut self,
        target: NodeId,
        value: &[u8],
        now: Instant,
    ) -> Result<(), PutError> {
        self.drop_if_expired(&target, now);
        let expires = deadline(now, self.config.item_ttl);
        match self.items.get(&target).map(|e| &e.item) {
            Some(StoredItem::Immutable { .. }) => {
                self.refresh(&target, expires);
                Ok(())
            }
            Some(StoredItem::Mutable { .. }) => Err(PutError::TargetConflict { target }),
            None => {
                self.make_room(&target)?;
                self.insert(
                    target,
                    StoredItem::Immutable {
                        value: value.to_vec(),
                    },
                    expires,
                );
                Ok(())
            }
        }
    }

    /// BEP 44 mutable `put` (the server has checked the token, the sizes, the signature and
    /// that `target` is SHA-1 of `k ‖ salt`).
    ///
    /// Against a stored item, in this order: a `cas` different from the stored seq is
    /// [`PutError::CasMismatch`]; a lower seq, or an equal seq with a different value, is
    /// [`PutError::SeqTooLow`]; an equal seq with the same value refreshes the expiry (BEP 44:
    /// "the node SHOULD reset its timeout counter"); a higher seq replaces the item. With
    /// nothing stored (or only an expired item), `cas` is ignored, as BEP 44 says: "If there
    /// is no current value, the cas field SHOULD be ignored."
    pub fn put_mutable(
        &mut self,
        target: NodeId,
        item: MutableItem<'_>,
        cas: Option<i64>,
        now: Instant,
    ) -> Result<(), PutError> {
        self.drop_if_expired(&target, now);
        let expires = deadline(now, self.config.item_ttl);
        let new = || StoredItem::Mutable {
            key: item.key,
            salt: item.salt.to_vec(),
            seq: item.seq,
            signature: item.signature,
            value: item.value.to_vec(),
        };
        let Some(entry) = self.items.get_mut(&target) else {
            self.make_room(&target)?;
            self.insert(target, new(), expires);
            return Ok(());
        };
        let StoredItem::Mutable {
            key,
            salt,
            seq: stored,
            value,
            ..
        } = &entry.item
        else {
            return Err(PutError::TargetConflict { target });
        };
        if *key != item.key || salt.as_slice() != item.salt {
            return Err(PutError::TargetConflict { target });
        }
        let stored = *stored;
        if let Some(expected) = cas
            && expected != stored
        {
            return Err(PutError::CasMismatch { expected, stored });
        }
        if item.seq < stored || (item.seq == stored && value.as_slice() != item.value) {
            return Err(PutError::SeqTooLow {
                stored,
                offered: item.seq,
            });
        }
        if item.seq > stored {
            entry.item = new();
        }
        self.refresh(&target, expires);
        Ok(())
    }

    /// Loads a persisted item: skipped (Ok) if it expired by `now`, its expiry clamped to
    /// `now + item_ttl`; it replaces what is stored under `target` without the seq rules (the
    /// snapshot is trusted), and a new target goes through the eviction rule.
    pub fn restore(
        &mut self,
        target: NodeId,
        item: StoredItem,
        expires: Instant,
        now: Instant,
    ) -> Result<(), PutError> {
        if expires <= now {
            return Ok(());
        }
        let expires = expires.min(deadline(now, self.config.item_ttl));
        if let Some(entry) = self.items.get_mut(&target) {
            entry.item = item;
            self.refresh(&target, expires);
            return Ok(());
        }
        self.make_room(&target)?;
        self.insert(target, item, expires);
        Ok(())
    }

    /// Removes every item whose expiry is at or before `now`; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some((&key, &target)) = self.expiry.first_key_value()
            && key.0 <= now
        {
            self.expiry.remove(&key);
            self.items.remove(&target);
            removed += 1;
        }
        if removed > 0 {
            tracing::debug!(removed, items = self.items.len(), "items expired");
        }
        removed
    }

    /// The earliest expiry, when [`ItemStore::expire`] next has work to do.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first_key_value().map(|(key, _)| key.0)
    }

    /// About how many bytes the store holds on the heap: its elements' sizes and the values
    /// (B-tree nodes add up to about half as much again, not counted).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.items
            .values()
            .map(|e| {
                size_of::<(NodeId, ItemEntry)>()
                    + size_of::<(ExpiryKey, NodeId)>()
                    + e.item.value().len()
            })
            .sum()
    }

    /// How many items are stored (expired ones included until [`ItemStore::expire`]).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no item is stored.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every stored item, ordered by target.
    pub fn iter(&self) -> impl Iterator<Item = ItemRecord<'_>> + '_ {
        self.items.iter().map(|(target, e)| ItemRecord {
            target: *target,
            item: &e.item,
            expires: e.expiry.0,
        })
    }

    fn bump(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn drop_if_expired(&mut self, target: &NodeId, now: Instant) {
        if let Some(entry) = self.items.get(target)
            && entry.expiry.0 <= now
        {
            self.expiry.remove(&entry.expiry);
            self.items.remove(target);
        }
    }

    fn refresh(&mut self, target: &NodeId, expires: Instant) {
        let key = (expires, self.bump());
        if let Some(entry) = self.items.get_mut(target) {
            self.expiry.remove(&entry.expiry);
            entry.expiry = key;
            self.expiry.insert(key, *target);
        }
    }

    fn insert(&mut self, target: NodeId, item: StoredItem, expires: Instant) {
        let key = (expires, self.bump());
        self.items.insert(target, ItemEntry { item, expiry: key });
        self.expiry.insert(key, target);
    }

    /// Makes room for the new `target` in a full store, or refuses it (module docs).
    fn make_room(&mut self, target: &NodeId) -> Result<(), PutError> {
        if self.items.len() < self.config.items_max {
            return Ok(());
        }
        let victim = self
            .expiry
            .iter()
            .take(self.config.items_eviction_window)
            .map(|(key, t)| (self.own_id.distance(t), *key, *t))
            .max_by_key(|(distance, _, _)| *distance);
        match victim {
            Some((distance, key, victim)) if distance > self.own_id.distance(target) => {
                tracing::debug!(target = %victim, "item evicted");
                self.expiry.remove(&key);
                self.items.remove(&victim);
                Ok(())
            }
            _ => {
                tracing::trace!(%target, "put refused: item store full");
                Err(PutError::Full { target: *target })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A fixed origin for virtual time; every other instant is derived from it.
    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// An info-hash sharing exactly `prefix` leading bits with `NodeId::ZERO` (prefix < 144),
    /// made unique by `tag` in the last two bytes.
    fn ih_at(prefix: u32, tag: u16) -> InfoHash {
        let mut b = [0u8; 20];
        let p = prefix as usize;
        b[p / 8] |= 0x80 >> (p % 8);
        b[18..].copy_from_slice(&tag.to_be_bytes());
        InfoHash(b)
    }

    fn ih(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    fn v4(n: u32, port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::from(n), port))
    }

    fn v6(n: u128, port: u16) -> SocketAddr {
        SocketAddr::from((Ipv6Addr::from(n), port))
    }

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn small(cfg: impl FnOnce(&mut StoreConfig)) -> StoreConfig {
        let mut c = StoreConfig::default();
        cfg(&mut c);
        c
    }

    impl PeerStore {
        /// Checks every index against the others.
        fn check(&self) {
            let mut total = 0;
            for (i, h) in self.slots.iter().enumerate() {
                assert_eq!(self.torrents[h].slot, i);
            }
            assert_eq!(self.slots.len(), self.torrents.len());
            assert_eq!(self.ranks.len(), self.torrents.len());
            for (h, t) in &self.torrents {
                assert!(!t.peers.is_empty());
                assert!(t.peers.len() <= self.config.peers_per_infohash_max);
                assert_eq!(t.peers.len(), t.by_expiry.len());
                assert_eq!(t.rank, rank(&self.own_id, h, t.peers.len()));
                assert!(self.ranks.contains(&(t.rank, *h)));
                for (a, p) in &t.peers {
                    assert_eq!(t.by_expiry[&p.expiry], *a);
                    assert_eq!(self.expiry[&p.expiry], *h);
                }
                total += t.peers.len();
            }
            assert_eq!(total, self.peers_total);
            assert_eq!(self.expiry.len(), total);
            assert!(self.torrents.len() <= self.config.infohashes_max);
            assert!(total <= self.config.peers_total_max);
        }
    }

    // ----- peers -----

    #[test]
    fn announce_and_get_by_family_and_seed() {
        let now = t0();
        let mut s = PeerStore::new(StoreConfig::default(), NodeId::ZERO);
        let h = ih(1);
        s.announce(h, v4(1, 6881), false, now).unwrap();
        s.announce(h, v4(2, 6881), true, now).unwrap();
        s.announce(h, v6(3, 6881), false, now).unwrap();
        let mut r = rng(1);
        let mut got = s.peers(&h, Family::V4, false, 100, &mut r);
        got.sort();
        assert_eq!(got, vec![v4(1, 6881), v4(2, 6881)]);
        assert_eq!(
            s.peers(&h, Family::V4, true, 100, &mut r),
            vec![v4(1, 6881)]
        );
        assert_eq!(
            s.peers(&h, Family::V6, false, 100, &mut r),
            vec![v6(3, 6881)]
        );
        assert!(s.peers(&ih(2), Family::V4, false, 100, &mut r).is_empty());
        let mut scrape: Vec<_> = s.scrape_sets(&h).collect();
        scrape.sort();
        assert_eq!(
            scrape,
            vec![
                (v4(1, 0).ip(), false),
                (v4(2, 0).ip(), true),
                (v6(3, 0).ip(), false)
            ]
        );
        assert_eq!(s.scrape_sets(&ih(2)).count(), 0);
        assert_eq!(
            (s.infohash_count(), s.peer_count(), s.peer_count_of(&h)),
            (1, 3, 3)
        );
        s.check();
    }

    #[test]
    fn address_stored_once_and_mapped_is_ipv4() {
        let now = t0();
        let mut s = PeerStore::new(StoreConfig::default(), NodeId::ZERO);
        let h = ih(1);
        let plain = v4(0x0a00_0001, 1000);
        let mapped = SocketAddr::from((Ipv4Addr::from(0x0a00_0001).to_ipv6_mapped(), 1000));
        s.announce(h, plain, false, now).unwrap();
        s.announce(h, mapped, true, now + secs(1)).unwrap();
        s.announce(h, plain, true, now + secs(2)).unwrap();
        assert_eq!(s.peer_count(), 1);
        let only: Vec<_> = s.iter().collect();
        assert_eq!(only[0].addr, plain);
        assert!(only[0].seed);
        // Another port of the same IP is another peer.
        s.announce(h, v4(0x0a00_0001, 1001), false, now).unwrap();
        assert_eq!(s.peer_count(), 2);
        s.check();
    }

    #[test]
    fn reannounce_refreshes_expiry() {
        let now = t0();
        let mut s = PeerStore::new(StoreConfig::default(), NodeId::ZERO);
        let h = ih(1);
        s.announce(h, v4(1, 1), false, now).unwrap();
        s.announce(h, v4(2, 1), false, now).unwrap();
        assert_eq!(s.next_expiry(), Some(now + PEER_TTL));
        s.announce(h, v4(1, 1), false, now + secs(600)).unwrap();
        assert_eq!(s.expire(now + PEER_TTL - secs(1)), 0);
        assert_eq!(s.expire(now + PEER_TTL), 1);
        assert_eq!(s.next_expiry(), Some(now + secs(600) + PEER_TTL));
        assert_eq!(
            s.peers(&h, Family::V4, false, 10, &mut rng(0)),
            vec![v4(1, 1)]
        );
        assert_eq!(s.expire(now + secs(600) + PEER_TTL), 1);
        assert_eq!(
            (s.infohash_count(), s.peer_count(), s.next_expiry()),
            (0, 0, None)
        );
        s.check();
    }

    #[test]
    fn random_subset_when_over_max_and_deterministic() {
        let now = t0();
        let mut s = PeerStore::new(StoreConfig::default(), NodeId::ZERO);
        let h = ih(1);
        for i in 0..300 {
            s.announce(h, v4(i, 1), i % 2 == 0, now).unwrap();
        }
        let a = s.peers(&h, Family::V4, false, 50, &mut rng(7));
        assert_eq!(a.len(), 50);
        let distinct: BTreeSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), 50);
        assert_eq!(a, s.peers(&h, Family::V4, false, 50, &mut rng(7)));
        assert_ne!(a, s.peers(&h, Family::V4, false, 50, &mut rng(8)));
        // No seeds: only odd addresses.
        let b = s.peers(&h, Family::V4, true, 500, &mut rng(7));
        assert_eq!(b.len(), 150);
        assert!(
            b.iter()
                .all(|a| matches!(a.ip(), IpAddr::V4(ip) if u32::from(ip) % 2 == 1))
        );
        // Every peer can be picked.
        let mut seen = BTreeSet::new();
        let mut r = rng(9);
        for _ in 0..100 {
            seen.extend(s.peers(&h, Family::V4, false, 50, &mut r));
        }
        assert_eq!(seen.len(), 300);
    }

    #[test]
    fn per_infohash_cap_replaces_soonest_to_expire() {
        let now = t0();
        let cfg = small(|c| c.peers_per_infohash_max = 3);
        let mut s = PeerStore::new(cfg, NodeId::ZERO);
        let h = ih(1);
        s.announce(h, v4(1, 1), false, now + secs(2)).unwrap();
        s.announce(h, v4(2, 1), false, now).unwrap();
        s.announce(h, v4(3, 1), false, now + secs(1)).unwrap();
        s.announce(h, v4(4, 1), false, now + secs(3)).unwrap();
        let mut got = s.peers(&h, Family::V4, false, 10, &mut rng(0));
        got.sort();
        assert_eq!(got, vec![v4(1, 1), v4(3, 1), v4(4, 1)]);
        s.check();
    }

    #[test]
    fn infohash_cap_evicts_lowest_rank_or_refuses() {
        let now = t0();
        let cfg = small(|c| c.infohashes_max = 3);
        let mut s = PeerStore::new(cfg, NodeId::ZERO);
        let (far, mid, near) = (ih_at(1, 1), ih_at(10, 2), ih_at(20, 3));
        for h in [far, mid, near] {
            s.announce(h, v4(1, 1), false, now).unwrap();
        }
        // A newcomer farther than everything stored is refused.
        let farther = ih_at(0, 4);
        assert_eq!(
            s.announce(farther, v4(1, 1), false, now),
            Err(AnnounceError::Full { info_hash: farther })
        );
        // A closer one evicts the farthest.
        s.announce(ih_at(5, 5), v4(1, 1), false, now).unwrap();
        assert_eq!(s.peer_count_of(&far), 0);
        assert_eq!(s.infohash_count(), 3);
        // Same prefix: the exact distance breaks the tie.
        let a = ih_at(5, 9);
        assert!(
            s.announce(a, v4(1, 1), false, now).is_err(),
            "farther within the same prefix"
        );
        s.check();
        // Seen from another id, the order changes: `mid` becomes the farthest.
        s.set_own_id(NodeId(ih_at(5, 5).0));
        s.check();
        s.announce(ih_at(5, 6), v4(1, 1), false, now).unwrap();
        assert_eq!(s.peer_count_of(&mid), 0);
        assert_eq!(s.peer_count_of(&near), 1);
        s.check();
    }

    #[test]
    fn popularity_outweighs_a_little_distance() {
        let now = t0();
        let cfg = small(|c| c.infohashes_max = 2);
        let mut s = PeerStore::new(cfg, NodeId::ZERO);
        let popular = ih_at(3, 1); // 3 bits + log2(32) = 8
        let close = ih_at(6, 2); // 6 bits + log2(1) = 6
        for i in 0..32 {
            s.announce(popular, v4(i, 1), false, now).unwrap();
        }
        s.announce(close, v4(1, 1), false, now).unwrap();
        // A newcomer scoring 7 evicts the lonely close one (6), not the popular far one (8).
        let newcomer = ih_at(7, 3);
        s.announce(newcomer, v4(1, 1), false, now).unwrap();
        assert_eq!(s.peer_count_of(&close), 0);
        assert_eq!(s.peer_count_of(&popular), 32);
        // Something much closer evicts the newcomer (7), still below the popular one (8).
        let very_close = ih_at(30, 4);
        s.announce(very_close, v4(1, 1), false, now).unwrap();
        assert_eq!(s.peer_count_of(&newcomer), 0);
        assert_eq!(s.peer_count_of(&popular), 32);
        // Once the popular one loses peers it ranks lower: 31 peers score 3 + 4 = 7, and an
        // equal score goes to the closer info-hash.
        let key = s.torrents[&popular]
            .by_expiry
            .keys()
            .next()
            .copied()
            .unwrap();
        s.remove_peer(popular, key);
        s.announce(ih_at(7, 5), v4(1, 1), false, now).unwrap();
        assert_eq!(s.peer_count_of(&popular), 0);
        s.check();
    }

    #[test]
    fn total_cap_takes_a_peer_from_lowest_rank() {
        let now = t0();
        let cfg = small(|c| c.peers_total_max = 4);
        let mut s = PeerStore::new(cfg, NodeId::ZERO);
        let (far, near) = (ih_at(1, 1), ih_at(40, 2));
        s.announce(far, v4(1, 1), false, now).unwrap();
        s.announce(far, v4(2, 1), false, now + secs(1)).unwrap();
        s.announce(near, v4(3, 1), false, now).unwrap();
        s.announce(near, v4(4, 1), false, now).unwrap();
        // Full: a peer for `near` takes the soonest-expiring peer of `far`.
        s.announce(near, v4(5, 1), false, now).unwrap();
        assert_eq!(
            s.peers(&far, Family::V4, false, 10, &mut rng(0)),
            vec![v4(2, 1)]
        );
        // A peer for `far` (now the lowest) replaces its own soonest peer.
        s.announce(far, v4(6, 1), false, now + secs(5)).unwrap();
        assert_eq!(
            s.peers(&far, Family::V4, false, 10, &mut rng(0)),
            vec![v4(6, 1)]
        );
        assert_eq!(s.peer_count_of(&near), 3);
        // A new far info-hash is refused; a new near one takes `far`'s last peer.
        assert!(s.announce(ih_at(0, 3), v4(7, 1), false, now).is_err());
        s.announce(ih_at(50, 4), v4(7, 1), false, now).unwrap();
        assert_eq!(s.peer_count_of(&far), 0);
        assert_eq!(s.peer_count(), 4);
        s.check();
    }

    #[test]
    fn zero_caps_refuse() {
        let now = t0();
        for cfg in [
            small(|c| c.infohashes_max = 0),
            small(|c| c.peers_total_max = 0),
            small(|c| c.peers_per_infohash_max = 0),
        ] {
            let mut s = PeerStore::new(cfg, NodeId::ZERO);
            assert!(s.announce(ih(1), v4(1, 1), false, now).is_err());
            s.check();
        }
    }

    #[test]
    fn sample_is_distinct_and_bounded() {
        let now = t0();
        let mut s = PeerStore::new(StoreConfig::default(), NodeId::ZERO);
        assert!(s.sample(20, &mut rng(0)).is_empty());
        for i in 0..50u8 {
            s.announce(ih(i), v4(1, 1), false, now).unwrap();
        }
        let a = s.sample(20, &mut rng(3));
        assert_eq!(a.len(), 20);
        assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), 20);
        assert_eq!(a, s.sample(20, &mut rng(3)));
        assert_eq!(s.sample(100, &mut rng(3)).len(), 50);
        // Removals keep the sampling index consistent.
        for i in (0..50u8).step_by(3) {
            let key = s.torrents[&ih(i)].by_expiry.keys().next().copied().unwrap();
            s.remove_peer(ih(i), key);
        }
        s.check();
        let all: BTreeSet<_> = s.sample(100, &mut rng(4)).into_iter().collect();
        assert_eq!(all, s.torrents.keys().copied().collect());
    }

    #[test]
    fn peers_snapshot_round_trip() {
        let now = t0();
        let mut s = PeerStore::new(StoreConfig::default(), NodeId::ZERO);
        for i in 0..20u32 {
            s.announce(
                ih((i % 4) as u8),
                v4(i, 1),
                i % 3 == 0,
                now + secs(u64::from(i)),
            )
            .unwrap();
        }
        s.announce(ih(9), v6(1, 2), true, now).unwrap();
        // Save 100 s later as remaining durations; load after a restart at `later`.
        let saved: Vec<_> = s
            .iter()
            .map(|r| (r, r.remaining(now + secs(100))))
            .collect();
        let later = now + secs(10_000);
        let mut back = PeerStore::new(StoreConfig::default(), NodeId::ZERO);
        for (r, left) in &saved {
            back.restore(
                PeerRecord {
                    expires: later + *left,
                    ..*r
                },
                later,
            )
            .unwrap();
        }
        back.check();
        let expected: Vec<_> = s
            .iter()
            .map(|r| PeerRecord {
                expires: later + r.remaining(now + secs(100)),
                ..r
            })
            .collect();
        assert_eq!(back.iter().collect::<Vec<_>>(), expected);
        // Expired records are skipped, far expiries clamped.
        let mut c = PeerStore::new(StoreConfig::default(), NodeId::ZERO);
        let r = PeerRecord {
            info_hash: ih(1),
            addr: v4(1, 1),
            seed: false,
            expires: later,
        };
        c.restore(r, later).unwrap();
        assert_eq!(c.peer_count(), 0);
        c.restore(
            PeerRecord {
                expires: later + secs(1_000_000),
                ..r
            },
            later,
        )
        .unwrap();
        assert_eq!(c.next_expiry(), Some(later + PEER_TTL));
    }

    #[test]
    fn values_per_reply_fit_a_datagram() {
        use xorro_wire::{
            Body, Message, NodeInfo, Nodes, Peers, Response, TokenRef, TransactionId,
        };
        let peers: Vec<_> = (0..VALUES_PER_REPLY_MAX as u32)
            .map(|i| v4(i, 6881))
            .collect();
        let nodes: Vec<_> = (0..8u8)
            .map(|i| NodeInfo::new(NodeId([i; 20]), v4(u32::from(i), 1)))
            .collect();
        let msg = Message {
            transaction_id: TransactionId::new(b"abcd").unwrap(),
            version: Some(b"XO01"),
            requester_ip: Some(v4(1, 1).into()),
            read_only: false,
            body: Body::Response(Response {
                token: Some(TokenRef::new(&[1; 8]).unwrap()),
                nodes: Some(Nodes::from_slice(&nodes)),
                values: Some(Peers::from_slice(&peers)),
                ..Response::new(NodeId::ZERO)
            }),
        };
        let mut out = Vec::new();
        xorro_wire::encode(&msg, &mut out).unwrap();
        let back = xorro_wire::decode(&out).unwrap();
        let Body::Response(r) = back.body else {
            panic!("a response")
        };
        assert_eq!(
            r.values.map(|v| v.len()),
            Some(VALUES_PER_REPLY_MAX),
            "nothing trimmed"
        );
        assert!(out.len() <= xorro_wire::MAX_DATAGRAM_LEN);
    }

    // ----- items -----

    const KEY: PublicKey = PublicKey([1; 32]);
    const SIG: Signature = Signature([2; 64]);

    fn mutable(seq: i64, value: &[u8]) -> MutableItem<'_> {
        MutableItem {
            key: KEY,
            salt: b"",
            seq,
            signature: SIG,
            value,
        }
    }

    fn target(n: u8) -> NodeId {
        NodeId([n; 20])
    }

    #[test]
    fn immutable_put_get_refresh_expire() {
        let now = t0();
        let mut s = ItemStore::new(StoreConfig::default(), NodeId::ZERO);
        let t = target(1);
        s.put_immutable(t, b"5:hello", now).unwrap();
        assert_eq!(s.get(&t, now).map(StoredItem::value), Some(&b"5:hello"[..]));
        s.put_immutable(t, b"5:hello", now + secs(3600)).unwrap();
        assert_eq!(s.expire(now + ITEM_TTL), 0, "re-put refreshed it");
        assert!(s.get(&t, now + ITEM_TTL).is_some());
        assert!(
            s.get(&t, now + secs(3600) + ITEM_TTL).is_none(),
            "get hides expired items"
        );
        assert_eq!(s.next_expiry(), Some(now + secs(3600) + ITEM_TTL));
        assert_eq!(s.expire(now + secs(3600) + ITEM_TTL), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn mutable_seq_rules() {
        let now = t0();
        let mut s = ItemStore::new(StoreConfig::default(), NodeId::ZERO);
        let t = target(1);
        s.put_mutable(t, mutable(5, b"1:a"), None, now).unwrap();
        assert_eq!(
            s.put_mutable(t, mutable(4, b"1:b"), None, now),
            Err(PutError::SeqTooLow {
                stored: 5,
                offered: 4
            })
        );
        assert_eq!(
            s.put_mutable(t, mutable(5, b"1:b"), None, now),
            Err(PutError::SeqTooLow {
                stored: 5,
                offered: 5
            }),
            "equal seq with another value"
        );
        // Equal seq, same value: a refresh.
        s.put_mutable(t, mutable(5, b"1:a"), None, now + secs(60))
            .unwrap();
        assert_eq!(s.next_expiry(), Some(now + secs(60) + ITEM_TTL));
        s.put_mutable(t, mutable(6, b"1:c"), None, now).unwrap();
        let got = s.get(&t, now).unwrap();
        assert_eq!((got.seq(), got.value()), (Some(6), &b"1:c"[..]));
        assert_eq!(
            PutError::SeqTooLow {
                stored: 0,
                offered: 0
            }
            .code(),
            ErrorCode::SEQ_TOO_LOW
        );
    }

    #[test]
    fn mutable_cas_rules() {
        let now = t0();
        let mut s = ItemStore::new(StoreConfig::default(), NodeId::ZERO);
        let t = target(1);
        // Nothing stored: cas is ignored.
        s.put_mutable(t, mutable(5, b"1:a"), Some(99), now).unwrap();
        assert_eq!(
            s.put_mutable(t, mutable(6, b"1:b"), Some(4), now),
            Err(PutError::CasMismatch {
                expected: 4,
                stored: 5
            })
        );
        // cas is checked before seq.
        assert_eq!(
            s.put_mutable(t, mutable(1, b"1:b"), Some(4), now),
            Err(PutError::CasMismatch {
                expected: 4,
                stored: 5
            })
        );
        // Matching cas with a low seq is still too low.
        assert!(matches!(
            s.put_mutable(t, mutable(5, b"1:b"), Some(5), now),
            Err(PutError::SeqTooLow { .. })
        ));
        s.put_mutable(t, mutable(6, b"1:b"), Some(5), now).unwrap();
        assert_eq!(s.get(&t, now).and_then(StoredItem::seq), Some(6));
        assert_eq!(
            PutError::CasMismatch {
                expected: 0,
                stored: 1
            }
            .code(),
            ErrorCode::CAS_MISMATCH
        );
    }

    #[test]
    fn expired_item_does_not_block_a_lower_seq() {
        let now = t0();
        let mut s = ItemStore::new(StoreConfig::default(), NodeId::ZERO);
        let t = target(1);
        s.put_mutable(t, mutable(9, b"1:a"), None, now).unwrap();
        s.put_mutable(t, mutable(1, b"1:b"), Some(9), now + ITEM_TTL)
            .unwrap();
        assert_eq!(s.get(&t, now + ITEM_TTL).and_then(StoredItem::seq), Some(1));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn target_conflicts() {
        let now = t0();
        let mut s = ItemStore::new(StoreConfig::default(), NodeId::ZERO);
        let (a, b) = (target(1), target(2));
        s.put_immutable(a, b"1:x", now).unwrap();
        assert_eq!(
            s.put_mutable(a, mutable(1, b"1:x"), None, now),
            Err(PutError::TargetConflict { target: a })
        );
        s.put_mutable(b, mutable(1, b"1:x"), None, now).unwrap();
        assert_eq!(
            s.put_immutable(b, b"1:x", now),
            Err(PutError::TargetConflict { target: b })
        );
        let other_key = MutableItem {
            key: PublicKey([9; 32]),
            ..mutable(2, b"1:y")
        };
        assert!(matches!(
            s.put_mutable(b, other_key, None, now),
            Err(PutError::TargetConflict { .. })
        ));
        let other_salt = MutableItem {
            salt: b"s",
            ..mutable(2, b"1:y")
        };
        assert!(matches!(
            s.put_mutable(b, other_salt, None, now),
            Err(PutError::TargetConflict { .. })
        ));
    }

    #[test]
    fn item_cap_evicts_farthest_of_least_recently_put() {
        let now = t0();
        let cfg = small(|c| {
            c.items_max = 4;
            c.items_eviction_window = 2;
        });
        let mut s = ItemStore::new(cfg, NodeId::ZERO);
        // Put order = age order. The two oldest are 0x40.. (near) and 0xf0.. (far).
        let (near_old, far_old, far_new, mid_new) =
            (target(0x40), target(0xf0), target(0xe0), target(0x80));
        for (i, t) in [near_old, far_old, far_new, mid_new]
            .into_iter()
            .enumerate()
        {
            s.put_immutable(t, b"1:x", now + secs(i as u64)).unwrap();
        }
        // A new item: candidates are near_old and far_old; far_old goes.
        s.put_immutable(target(0x10), b"1:x", now + secs(10))
            .unwrap();
        assert!(s.get(&far_old, now + secs(10)).is_none());
        assert!(
            s.get(&far_new, now + secs(10)).is_some(),
            "recently put, not a candidate"
        );
        // Candidates now near_old (0x40) and far_new (0xe0): a target at 0xff is farther than
        // both and is refused.
        assert_eq!(
            s.put_immutable(target(0xff), b"1:x", now + secs(11)),
            Err(PutError::Full {
                target: target(0xff)
            })
        );
        assert_eq!(
            PutError::Full { target: target(0) }.code(),
            ErrorCode::SERVER
        );
        assert_eq!(s.len(), 4);
        // A re-put keeps an old far item out of the window.
        s.put_immutable(far_new, b"1:x", now + secs(12)).unwrap();
        s.put_immutable(target(0x20), b"1:x", now + secs(13))
            .unwrap();
        assert!(s.get(&far_new, now + secs(13)).is_some());
        assert!(
            s.get(&mid_new, now + secs(13)).is_none(),
            "mid_new (0x80) was the farther candidate"
        );
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn zero_item_cap_refuses() {
        let mut s = ItemStore::new(small(|c| c.items_max = 0), NodeId::ZERO);
        assert!(matches!(
            s.put_immutable(target(1), b"1:x", t0()),
            Err(PutError::Full { .. })
        ));
    }

    #[test]
    fn items_snapshot_round_trip() {
        let now = t0();
        let mut s = ItemStore::new(StoreConfig::default(), NodeId::ZERO);
        s.put_immutable(target(3), b"1:x", now).unwrap();
        s.put_mutable(
            target(1),
            MutableItem {
                salt: b"salt",
                ..mutable(7, b"i1e")
            },
            None,
            now + secs(5),
        )
        .unwrap();
        let saved: Vec<_> = s
            .iter()
            .map(|r| (r.target, r.item.clone(), r.remaining(now + secs(10))))
            .collect();
        assert_eq!(
            saved.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![target(1), target(3)]
        );
        let later = now + secs(1_000_000);
        let mut back = ItemStore::new(StoreConfig::default(), NodeId::ZERO);
        for (t, item, left) in saved.clone() {
            back.restore(t, item, later + left, later).unwrap();
        }
        let again: Vec<_> = back
            .iter()
            .map(|r| (r.target, r.item.clone(), r.remaining(later)))
            .collect();
        assert_eq!(again, saved);
        // Expired entries are skipped.
        let mut c = ItemStore::new(StoreConfig::default(), NodeId::ZERO);
        c.restore(
            target(1),
            StoredItem::Immutable {
                value: b"1:x".to_vec(),
            },
            later,
            later,
        )
        .unwrap();
        assert!(c.is_empty());
    }

    // ----- properties -----

    #[derive(Debug, Clone)]
    enum PeerOp {
        Announce { ih: u8, ip: u8, seed: bool },
        Advance(u64),
        Expire,
    }

    fn peer_op() -> impl Strategy<Value = PeerOp> {
        prop_oneof![
            6 => (0u8..24, 0u8..32, any::<bool>()).prop_map(|(ih, ip, seed)| PeerOp::Announce { ih, ip, seed }),
            2 => (0u64..600).prop_map(PeerOp::Advance),
            1 => Just(PeerOp::Expire),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Under any traffic, every cap holds, the indexes agree, and after `expire(now)`
        /// nothing past its expiry is left. Two runs of the same ops give the same store.
        #[test]
        fn peer_store_invariants(ops in prop::collection::vec(peer_op(), 1..300), own in any::<[u8; 20]>()) {
            let cfg = StoreConfig {
                peers_per_infohash_max: 5,
                infohashes_max: 8,
                peers_total_max: 20,
                peer_ttl: secs(1800),
                ..StoreConfig::default()
            };
            let run = || {
                let mut s = PeerStore::new(cfg, NodeId(own));
                let mut now = t0();
                for op in &ops {
                    match *op {
                        PeerOp::Announce { ih, ip, seed } => {
                            let h = InfoHash([ih.wrapping_mul(37); 20]);
                            let _ = s.announce(h, v4(u32::from(ip), 1), seed, now);
                        }
                        PeerOp::Advance(n) => now += secs(n),
                        PeerOp::Expire => {
                            s.expire(now);
                            assert!(s.iter().all(|r| r.expires > now));
                        }
                    }
                    s.check();
                }
                s.iter().map(|r| (r.info_hash, r.addr, r.seed)).collect::<Vec<_>>()
            };
            prop_assert_eq!(run(), run());
        }

        /// The stored seq of a mutable item never decreases and equals the highest accepted.
        #[test]
        fn mutable_seq_is_monotonic(puts in prop::collection::vec((-5i64..20, 0u8..3, prop::option::of(-5i64..20)), 1..100)) {
            let now = t0();
            let mut s = ItemStore::new(StoreConfig::default(), NodeId::ZERO);
            let t = target(1);
            let mut stored: Option<(i64, u8)> = None;
            for (seq, v, cas) in puts {
                let value = [b'i', b'0' + v, b'e'];
                let res = s.put_mutable(t, mutable(seq, &value), cas, now);
                let expect_ok = match stored {
                    None => true,
                    Some((cur, cur_v)) => cas.is_none_or(|c| c == cur) && (seq > cur || (seq == cur && v == cur_v)),
                };
                prop_assert_eq!(res.is_ok(), expect_ok);
                if res.is_ok() {
                    stored = Some((seq, v));
                }
                prop_assert_eq!(s.get(&t, now).and_then(StoredItem::seq), stored.map(|s| s.0));
            }
        }

        /// The item store never exceeds its cap and its expiry index matches its items.
        #[test]
        fn item_store_bounded(puts in prop::collection::vec((any::<u8>(), 0u64..100), 1..300)) {
            let cfg = StoreConfig { items_max: 16, items_eviction_window: 4, ..StoreConfig::default() };
            let mut s = ItemStore::new(cfg, NodeId([0x55; 20]));
            let mut now = t0();
            for (t, dt) in puts {
                now += secs(dt);
                let _ = s.put_immutable(target(t), b"1:x", now);
                prop_assert!(s.len() <= 16);
                prop_assert_eq!(s.expiry.len(), s.items.len());
                if t % 7 == 0 {
                    s.expire(now);
                }
            }
        }
    }
}
