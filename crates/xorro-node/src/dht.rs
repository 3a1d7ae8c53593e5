//! The async handle to a running node: [`Dht`], built by [`DhtBuilder`].

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use xorro_dht::{
    CommandError, Config, LookupStats, Outcome, StartError as EngineStartError, Stats,
};
use xorro_wire::bep44::{self, Keypair};
use xorro_wire::{InfoHash, NodeId, NodeInfo, PublicKey, Signature};

use crate::driver::{self, Command};
use crate::storage::{Storage, StorageError};

/// The well-known Mainline bootstrap routers, used only when the user gives no bootstrap
/// list and did not turn them off ([`DhtBuilder::public_bootstrap`]).
pub const PUBLIC_ROUTERS: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// The default UDP port of the Mainline DHT.
pub const DEFAULT_PORT: u16 = 6881;

/// How often the node re-announces what it announced (peers expire after 30 min elsewhere).
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// How often the node re-puts its BEP 44 items (they may expire after 2 h, BEP 44).
pub const PUT_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No socket could be bound.
    #[error(
        "cannot bind UDP {addr}: {source} (is another node using this port? pass another --port)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory could not be used.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a call on a [`Dht`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DhtError {
    /// The node has shut down.
    #[error("the node has shut down")]
    Stopped,
    /// The engine refused to start the command (too many lookups, invalid item).
    #[error(transparent)]
    Refused(#[from] EngineStartError),
    /// The command ran and failed.
    #[error(transparent)]
    Failed(#[from] CommandError),
    /// Saving to the data directory failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Configures and starts a node.
#[derive(Debug, Clone)]
pub struct DhtBuilder {
    pub(crate) config: Config,
    pub(crate) bind: Vec<SocketAddr>,
    pub(crate) bootstrap: Vec<String>,
    pub(crate) public_bootstrap: bool,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) announce_interval: Duration,
    pub(crate) put_interval: Duration,
}

impl Default for DhtBuilder {
    fn default() -> Self {
        DhtBuilder {
            config: Config::default(),
            bind: vec![
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, DEFAULT_PORT)),
            ],
            bootstrap: Vec::new(),
            public_bootstrap: true,
            data_dir: None,
            announce_interval: ANNOUNCE_INTERVAL,
            put_interval: PUT_INTERVAL,
        }
    }
}

impl DhtBuilder {
    /// Defaults: port 6881 on IPv4 and IPv6, public bootstrap routers, no persistence.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listens on `port` (0: any free port) on all IPv4 and IPv6 addresses.
    pub fn port(mut self, port: u16) -> Self {
        self.bind = vec![
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
        ];
        self
    }

    /// Listens on exactly these addresses (one per family at most is used).
    pub fn bind(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.bind = addrs.into_iter().collect();
        self
    }

    /// Bootstrap from these `host:port` addresses (instead of the public routers).
    pub fn bootstrap<S: Into<String>>(mut self, addrs: impl IntoIterator<Item = S>) -> Self {
        self.bootstrap = addrs.into_iter().map(Into::into).collect();
        self
    }

    /// Whether to use [`PUBLIC_ROUTERS`] when no bootstrap address is given (default true).
    pub fn public_bootstrap(mut self, on: bool) -> Self {
        self.public_bootstrap = on;
        self
    }

    /// Keeps the node id, routing table, stored data and own publications in `dir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// BEP 43: never answer queries.
    pub fn read_only(mut self, on: bool) -> Self {
        self.config.read_only = on;
        self
    }

    /// Act read-only (BEP 43) after this long without a query from a node we had not
    /// written to: see [`Config::detect_unreachable`] (zero, the default: only once the node
    /// finds itself behind NAT, see [`DhtBuilder::detect_unreachable_behind_nat`]).
    pub fn detect_unreachable(mut self, after: Duration) -> Self {
        self.config.detect_unreachable = after;
        self
    }

    /// The same wait for a node that finds the address other nodes see is none of its
    /// interfaces' (behind NAT): see [`Config::detect_unreachable_behind_nat`] (default
    /// 120 s; zero: off).
    pub fn detect_unreachable_behind_nat(mut self, after: Duration) -> Self {
        self.config.detect_unreachable_behind_nat = after;
        self
    }

    /// The engine configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// How often own announcements are repeated ([`ANNOUNCE_INTERVAL`]).
    pub fn announce_interval(mut self, every: Duration) -> Self {
        self.announce_interval = every;
        self
    }

    /// How often own BEP 44 items are re-put ([`PUT_INTERVAL`]).
    pub fn put_interval(mut self, every: Duration) -> Self {
        self.put_interval = every;
        self
    }

    /// Opens the data directory, binds the sockets, and starts the node in the current tokio
    /// runtime. The node bootstraps by itself.
    pub async fn start(self) -> Result<Dht, StartError> {
        let storage = match &self.data_dir {
            Some(dir) => Some(Storage::open(dir)?),
            None => None,
        };
        driver::start(self, storage).await
    }
}

/// A contact of the routing table, for display.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// The node.
    pub node: NodeInfo,
    /// BEP 5 state: "good", "questionable" or "bad".
    pub state: &'static str,
    /// Smoothed round-trip time.
    pub rtt: Option<Duration>,
    /// Time since it last answered us.
    pub last_response: Option<Duration>,
}

/// What a node is and holds, from [`Dht::status`].
#[derive(Debug, Clone)]
pub struct Status {
    /// Our node id.
    pub id: NodeId,
    /// The addresses we listen on.
    pub local_addrs: Vec<SocketAddr>,
    /// Our external address as agreed by other nodes (BEP 42) in each family where it is
    /// known (IPv4, then IPv6).
    pub external_ips: Vec<std::net::IpAddr>,
    /// Contacts in the IPv4 and IPv6 routing tables.
    pub table_v4: usize,
    /// Contacts in the IPv6 routing table.
    pub table_v6: usize,
    /// Info-hashes and peers stored for others.
    pub stored_infohashes: usize,
    /// Peers stored for others.
    pub stored_peers: usize,
    /// BEP 44 items stored for others.
    pub stored_items: usize,
    /// Lookups running.
    pub lookups_running: usize,
    /// Own announcements kept alive.
    pub own_announcements: usize,
    /// Own BEP 44 items kept alive.
    pub own_items: usize,
    /// Engine counters.
    pub stats: Stats,
    /// Lookup latency histogram: (upper bound, count), cumulative, plus sum and count.
    pub lookup_latency: LatencyHistogram,
    /// Time since the node started.
    pub uptime: Duration,
    /// Whether it is read-only (BEP 43): set so, or taken for unreachable.
    pub read_only: bool,
    /// What it knows of its own reachability in each family it has contacts in, when it
    /// watches for it ([`DhtBuilder::detect_unreachable`], or by default in a family where
    /// it is behind NAT; empty otherwise).
    pub reachability: Vec<(xorro_wire::Family, xorro_dht::reach::Reachability)>,
    /// The families in which the address other nodes see is none of this machine's
    /// ([`Node::behind_nat`](xorro_dht::Node::behind_nat)).
    pub behind_nat: Vec<xorro_wire::Family>,
    /// Datagrams lost at the sockets, before or after the engine.
    pub socket_errors: SocketErrors,
}

/// Datagrams the driver lost at its sockets (the engine's own drops are in [`Stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketErrors {
    /// Datagrams the kernel refused to send (unreachable address, no route, ...), each
    /// dropped while the rest of its batch went on.
    pub send_failed: u64,
    /// Datagrams to a family we have no socket for (an IPv6 contact on an IPv4-only node).
    pub no_socket: u64,
    /// Receive calls that failed with something other than "nothing to read".
    pub recv_failed: u64,
    /// Datagrams received truncated (over the receive buffer) or without a sender address.
    pub truncated: u64,
}

impl SocketErrors {
    /// Every count with its name, as `/v1/status` and `/metrics` show them.
    pub fn by_kind(&self) -> [(&'static str, u64); 4] {
        [
            ("send_failed", self.send_failed),
            ("no_socket", self.no_socket),
            ("recv_failed", self.recv_failed),
            ("truncated", self.truncated),
        ]
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.by_kind().iter().map(|(_, n)| n).sum()
    }
}

/// A cumulative histogram of lookup durations (Prometheus style).
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram {
    /// Upper bounds, seconds.
    pub bounds: Vec<f64>,
    /// Lookups at or under each bound (cumulative).
    pub cumulative: Vec<u64>,
    /// Sum of all durations, seconds.
    pub sum: f64,
    /// Number of lookups.
    pub count: u64,
}

impl LatencyHistogram {
    pub(crate) fn new() -> Self {
        let bounds = vec![
            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ];
        LatencyHistogram {
            cumulative: vec![0; bounds.len()],
            bounds,
            sum: 0.0,
            count: 0,
        }
    }

    pub(crate) fn record(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (b, c) in self.bounds.iter().zip(self.cumulative.iter_mut()) {
            if s <= *b {
                *c += 1;
            }
        }
        self.sum += s;
        self.count += 1;
    }
}

/// The result of a get_peers or announce.
#[derive(Debug, Clone, Default)]
pub struct PeersResult {
    /// Every distinct peer found.
    pub peers: Vec<SocketAddr>,
    /// The closest nodes that answered.
    pub closest: Vec<NodeInfo>,
    /// How the lookup went.
    pub stats: LookupStats,
}

/// Peers as they arrive, then the final result: from [`Dht::get_peers`].
#[derive(Debug)]
pub struct PeerStream {
    rx: mpsc::Receiver<driver::PeerUpdate>,
    peers: Vec<SocketAddr>,
    done: Option<Result<(Vec<NodeInfo>, LookupStats), DhtError>>,
}

impl PeerStream {
    pub(crate) fn new(rx: mpsc::Receiver<driver::PeerUpdate>) -> Self {
        PeerStream {
            rx,
            peers: Vec::new(),
            done: None,
        }
    }

    /// The next batch of new peers; `None` once the lookup is over.
    pub async fn next(&mut self) -> Option<Vec<SocketAddr>> {
        if self.done.is_some() {
            return None;
        }
        match self.rx.recv().await {
            Some(driver::PeerUpdate::Peers(p)) => {
                self.peers.extend(&p);
                Some(p)
            }
            Some(driver::PeerUpdate::Done(r)) => {
                self.done = Some(r);
                None
            }
            None => {
                self.done = Some(Err(DhtError::Stopped));
                None
            }
        }
    }

    /// Waits for the end of the lookup and returns everything found.
    pub async fn finish(mut self) -> Result<PeersResult, DhtError> {
        while self.next().await.is_some() {}
        let (closest, stats) = self.done.unwrap_or(Err(DhtError::Stopped))?;
        Ok(PeersResult {
            peers: self.peers,
            closest,
            stats,
        })
    }
}

/// A BEP 44 mutable item as read from the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableItem {
    /// The bencoded value.
    pub value: Vec<u8>,
    /// Its sequence number.
    pub seq: i64,
    /// The publisher's signature.
    pub signature: Signature,
}

/// The result of a put.
#[derive(Debug, Clone)]
pub struct PutResult {
    /// The item's DHT key.
    pub target: NodeId,
    /// For a mutable item, the seq stored.
    pub seq: Option<i64>,
    /// The nodes that stored it.
    pub stored_at: Vec<NodeInfo>,
}

/// A handle to a running node. Cheap to clone; the node stops when [`Dht::shutdown`] is
/// called or the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Dht {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) local_addrs: Vec<SocketAddr>,
}

type Reply = oneshot::Sender<Result<(Outcome, LookupStats), DhtError>>;

impl Dht {
    /// A builder with defaults.
    pub fn builder() -> DhtBuilder {
        DhtBuilder::new()
    }

    /// The addresses the node listens on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The IPv4 address if there is one, else the first.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(self.local_addrs.first())
            .copied()
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
    }

    async fn call(
        &self,
        make: impl FnOnce(Reply) -> Command,
    ) -> Result<(Outcome, LookupStats), DhtError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| DhtError::Stopped)?;
        let (outcome, stats) = rx.await.map_err(|_| DhtError::Stopped)??;
        match outcome {
            Outcome::Failed(e) => Err(e.into()),
            o => Ok((o, stats)),
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, DhtError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| DhtError::Stopped)?;
        rx.await.map_err(|_| DhtError::Stopped)
    }

    /// Joins the network through `addrs`; returns the closest nodes to our id found.
    pub async fn bootstrap(&self, addrs: Vec<SocketAddr>) -> Result<Vec<NodeInfo>, DhtError> {
        match self
            .call(|reply| Command::Bootstrap { addrs, reply })
            .await?
        {
            (Outcome::Closest(c), _) => Ok(c),
            _ => Ok(Vec::new()),
        }
    }

    /// Pings a node.
    pub async fn ping(&self, addr: SocketAddr) -> Result<NodeInfo, DhtError> {
        match self.call(|reply| Command::Ping { addr, reply }).await? {
            (Outcome::Pong(n), _) => Ok(n),
            _ => Err(CommandError::NoResponse.into()),
        }
    }

    /// The nodes closest to `target`, closest first.
    pub async fn find_node(&self, target: NodeId) -> Result<Vec<NodeInfo>, DhtError> {
        Ok(self.find_node_with_stats(target).await?.0)
    }

    /// [`Dht::find_node`] with the lookup's statistics.
    pub async fn find_node_with_stats(
        &self,
        target: NodeId,
    ) -> Result<(Vec<NodeInfo>, LookupStats), DhtError> {
        match self
            .call(|reply| Command::FindNode { target, reply })
            .await?
        {
            (Outcome::Closest(c), s) => Ok((c, s)),
            (_, s) => Ok((Vec::new(), s)),
        }
    }

    /// Looks for peers of `info_hash`: batches as they arrive, then the result.
    pub async fn get_peers(&self, info_hash: InfoHash) -> Result<PeerStream, DhtError> {
        let (tx, rx) = mpsc::channel(1024);
        self.tx
            .send(Command::GetPeers { info_hash, tx })
            .await
            .map_err(|_| DhtError::Stopped)?;
        Ok(PeerStream::new(rx))
    }

    /// Announces that we are a peer of `info_hash` on `port` (`None`: the DHT port, BEP 5
    /// `implied_port`), and keeps announcing every 15 minutes until [`Dht::unannounce`]. With
    /// a data directory the announcement is durable when this returns, and survives restarts.
    pub async fn announce(
        &self,
        info_hash: InfoHash,
        port: Option<u16>,
    ) -> Result<PeersResult, DhtError> {
        let (outcome, stats) = self
            .call(|reply| Command::Announce {
                info_hash,
                port,
                seed: false,
                reply,
            })
            .await?;
        let closest = match outcome {
            Outcome::Stored { stored_at, .. } => stored_at,
            _ => Vec::new(),
        };
        Ok(PeersResult {
            peers: Vec::new(),
            closest,
            stats,
        })
    }

    /// Stops re-announcing `info_hash`. True if it was announced.
    pub async fn unannounce(&self, info_hash: InfoHash) -> Result<bool, DhtError> {
        self.ask(|reply| Command::Unannounce { info_hash, reply })
            .await?
    }

    /// Fetches an immutable BEP 44 item by its target (SHA-1 of the bencoded value).
    pub async fn get_immutable(&self, target: NodeId) -> Result<Option<Vec<u8>>, DhtError> {
        let item = xorro_dht::ItemTarget::Immutable(target);
        match self
            .call(|reply| Command::GetItem {
                target: item,
                reply,
            })
            .await?
        {
            (Outcome::Item(Some(i)), _) => Ok(Some(i.value().to_vec())),
            _ => Ok(None),
        }
    }

    /// Stores an immutable BEP 44 item (`value` is one bencoded value, at most 1000 bytes)
    /// and keeps re-putting it every hour until [`Dht::stop_put`].
    pub async fn put_immutable(&self, value: Vec<u8>) -> Result<PutResult, DhtError> {
        let raw = xorro_wire::RawValue::new(&value)
            .map_err(|_| EngineStartError::InvalidItem("the value is not one bencoded value"))?;
        let target = bep44::immutable_target(&raw);
        let request = xorro_dht::PutRequest::Immutable { value };
        let (outcome, _) = self
            .call(|reply| Command::PutItem {
                request: Box::new(request),
                reply,
            })
            .await?;
        Ok(put_result(target, outcome))
    }

    /// Fetches the newest mutable item of `key` and `salt`.
    pub async fn get_mutable(
        &self,
        key: PublicKey,
        salt: Vec<u8>,
    ) -> Result<Option<MutableItem>, DhtError> {
        let item = xorro_dht::ItemTarget::Mutable {
            key,
            salt,
            min_seq: None,
        };
        match self
            .call(|reply| Command::GetItem {
                target: item,
                reply,
            })
            .await?
        {
            (
                Outcome::Item(Some(xorro_dht::Item::Mutable {
                    value,
                    seq,
                    signature,
                    ..
                })),
                _,
            ) => Ok(Some(MutableItem {
                value,
                seq,
                signature,
            })),
            _ => Ok(None),
        }
    }

    /// Publishes `value` under `keypair` and `salt` with the next seq (one more than the
    /// network holds, or `seq` if given); `cas` makes it conditional on the current seq. Keeps
    /// re-putting it every hour until [`Dht::stop_put`] or a newer put.
    pub async fn put_mutable(
        &self,
        keypair: Keypair,
        salt: Vec<u8>,
        value: Vec<u8>,
        seq: Option<i64>,
        cas: Option<i64>,
    ) -> Result<PutResult, DhtError> {
        let target = bep44::mutable_target(&keypair.public_key(), Some(&salt));
        let request = xorro_dht::PutRequest::Mutable {
            keypair,
            salt,
            value,
            seq,
            cas,
        };
        let (outcome, _) = self
            .call(|reply| Command::PutItem {
                request: Box::new(request),
                reply,
            })
            .await?;
        Ok(put_result(target, outcome))
    }

    /// Stops re-putting the item at `target`. True if it was kept.
    pub async fn stop_put(&self, target: NodeId) -> Result<bool, DhtError> {
        self.ask(|reply| Command::StopPut { target, reply }).await?
    }

    /// BEP 51: info-hash samples from the nodes closest to `target`.
    pub async fn sample_infohashes(&self, target: NodeId) -> Result<Vec<InfoHash>, DhtError> {
        match self
            .call(|reply| Command::Samples { target, reply })
            .await?
        {
            (Outcome::Samples(s), _) => Ok(s),
            _ => Ok(Vec::new()),
        }
    }

    /// The routing tables' contacts.
    pub async fn routing_table(&self) -> Result<Vec<Contact>, DhtError> {
        self.ask(|reply| Command::RoutingTable { reply }).await
    }

    /// What the node is and holds.
    pub async fn status(&self) -> Result<Status, DhtError> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Saves everything and stops the node; waits until it has.
    pub async fn shutdown(&self) -> Result<(), DhtError> {
        self.ask(|reply| Command::Shutdown { reply }).await?
    }
}

fn put_result(target: NodeId, outcome: Outcome) -> PutResult {
    match outcome {
        Outcome::Stored { stored_at, seq } => PutResult {
            target,
            seq,
            stored_at,
        },
        _ => PutResult {
            target,
            seq: None,
            stored_at: Vec::new(),
        },
    }
}
