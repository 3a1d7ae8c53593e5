//! The driver task: owns the sockets and the engine and runs the drain loop of DESIGN.md.
//!
//! ```text
//! socket.recv_from -> Node::handle_datagram     sleep_until(poll_timeout) -> handle_timeout
//! command          -> Node::start_*             then: poll_transmit -> send_to,
//!                                                     poll_event -> answer the caller / persist
//! ```
//!
//! Persistence: the node's own announcements and puts are written (durably) before the call
//! returns; data stored on behalf of others is saved in one batch at most once a second when
//! it changed; contacts every minute and at shutdown.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use xorro_dht::{CommandId, Event, ItemTarget, LookupStats, Node, Outcome, PutRequest};
use xorro_wire::bep44::Keypair;
use xorro_wire::{Family, InfoHash, NodeId, NodeInfo};

use crate::dht::{
    Contact, Dht, DhtBuilder, DhtError, LatencyHistogram, PUBLIC_ROUTERS, StartError, Status,
};
use crate::storage::{Announcement, OwnItem, OwnPut, Storage, StorageError};

/// Commands from [`Dht`] handles.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per API call, through a bounded channel
pub(crate) enum Command {
    Bootstrap {
        addrs: Vec<SocketAddr>,
        reply: Reply,
    },
    Ping {
        addr: SocketAddr,
        reply: Reply,
    },
    FindNode {
        target: NodeId,
        reply: Reply,
    },
    GetPeers {
        info_hash: InfoHash,
        tx: mpsc::Sender<PeerUpdate>,
    },
    Announce {
        info_hash: InfoHash,
        port: Option<u16>,
        seed: bool,
        reply: Reply,
    },
    Unannounce {
        info_hash: InfoHash,
        reply: oneshot::Sender<Result<bool, DhtError>>,
    },
    GetItem {
        target: ItemTarget,
        reply: Reply,
    },
    PutItem {
        request: PutRequest,
        reply: Reply,
    },
    StopPut {
        target: NodeId,
        reply: oneshot::Sender<Result<bool, DhtError>>,
    },
    Samples {
        target: NodeId,
        reply: Reply,
    },
    RoutingTable {
        reply: oneshot::Sender<Vec<Contact>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Shutdown {
        reply: oneshot::Sender<Result<(), DhtError>>,
    },
}

type Reply = oneshot::Sender<Result<(Outcome, LookupStats), DhtError>>;

/// Receive buffer per socket.
const RECV_BUF: usize = 4096;

/// What a [`crate::PeerStream`] receives.
#[derive(Debug)]
pub(crate) enum PeerUpdate {
    Peers(Vec<SocketAddr>),
    Done(Result<(Vec<NodeInfo>, LookupStats), DhtError>),
}

/// Who waits for a command.
#[derive(Debug)]
enum Waiter {
    Reply(Reply),
    Peers(mpsc::Sender<PeerUpdate>),
    /// The initial bootstrap: fall back to the bootstrap list if it finds nobody.
    InitialBootstrap,
    /// A republish or other internal command.
    Nobody,
}

/// Something the node keeps publishing.
#[derive(Debug, Clone)]
enum Keep {
    Announce(Announcement),
    Put(OwnPut),
}

/// Binds the sockets, restores state, and spawns the driver.
pub(crate) async fn start(b: DhtBuilder, mut storage: Option<Storage>) -> Result<Dht, StartError> {
    let mut sock4: Option<UdpSocket> = None;
    let mut sock6: Option<UdpSocket> = None;
    let mut first_err = None;
    for addr in &b.bind {
        if (if addr.is_ipv4() { &sock4 } else { &sock6 }).is_some() {
            continue;
        }
        // With port 0, take the port the other family got, so both listen on one port.
        let addr = *addr;
        let other_port = sock4
            .iter()
            .chain(sock6.iter())
            .filter_map(|s| s.local_addr().ok())
            .map(|a| a.port())
            .next();
        let same_port = match other_port {
            Some(port) if addr.port() == 0 => bind(SocketAddr::new(addr.ip(), port)).ok(),
            _ => None,
        };
        let bound = match same_port {
            Some(s) => Ok(s),
            None => bind(addr),
        };
        let slot = if addr.is_ipv4() {
            &mut sock4
        } else {
            &mut sock6
        };
        match bound {
            Ok(s) => *slot = Some(s),
            Err(source) => {
                tracing::debug!(%addr, error = %source, "cannot bind");
                first_err.get_or_insert(StartError::Bind { addr, source });
            }
        }
    }
    if sock4.is_none() && sock6.is_none() {
        return Err(first_err.unwrap_or(StartError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source: io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"),
        }));
    }
    if let (Some(_), Some(e)) = (&sock4, &first_err) {
        tracing::info!(error = %e, "IPv6 unavailable; running IPv4 only");
    }
    let local_addrs: Vec<SocketAddr> = sock4
        .iter()
        .chain(sock6.iter())
        .filter_map(|s| s.local_addr().ok())
        .collect();

    let now = Instant::now();
    let wall = SystemTime::now();
    let mut config = b.config.clone();
    if config.rng_seed == 0 {
        config.rng_seed = rand::random();
    }
    let mut keeps = Vec::new();
    let node = match storage.as_mut() {
        Some(st) => {
            let saved = st.load(wall)?;
            if saved.skipped_rows > 0 {
                tracing::warn!(
                    rows = saved.skipped_rows,
                    "unreadable rows skipped in the database"
                );
            }
            keeps.extend(saved.announcements.iter().cloned().map(Keep::Announce));
            keeps.extend(saved.puts.iter().cloned().map(Keep::Put));
            let node = match saved.into_snapshot() {
                Some(snapshot) => Node::restore(config, snapshot, now),
                None => Node::new(config, now),
            };
            let secrets = node.snapshot(now).token_secrets;
            st.save_identity(node.id(), &secrets)?;
            node
        }
        None => Node::new(config, now),
    };
    tracing::info!(id = %node.id(), addrs = ?local_addrs, "node started");

    let (tx, rx) = mpsc::channel(256);
    let mut driver = Driver {
        node,
        sock4,
        sock6,
        rx,
        waiters: BTreeMap::new(),
        storage,
        network_dirty: false,
        next_flush: now + Duration::from_secs(1),
        next_contacts_save: now + Duration::from_secs(60),
        keeps: BTreeMap::new(),
        put_commands: BTreeMap::new(),
        bootstrap_list: b.bootstrap.clone(),
        public_bootstrap: b.public_bootstrap,
        announce_interval: b.announce_interval,
        put_interval: b.put_interval,
        latency: LatencyHistogram::new(),
        started: now,
        local_addrs: local_addrs.clone(),
        out: Vec::with_capacity(1500),
    };
    for k in keeps {
        driver.keep(k, now);
    }
    driver.initial_bootstrap(now);
    tokio::spawn(driver.run());
    Ok(Dht { tx, local_addrs })
}

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Large buffers absorb bursts; the kernel caps them at its own maximum.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Resolves `host:port` strings; unresolvable ones are logged and skipped.
fn resolve(list: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for s in list {
        match s.to_socket_addrs() {
            Ok(addrs) => out.extend(addrs),
            Err(e) => tracing::warn!(addr = %s, error = %e, "cannot resolve bootstrap address"),
        }
    }
    out
}

struct Driver {
    node: Node,
    sock4: Option<UdpSocket>,
    sock6: Option<UdpSocket>,
    rx: mpsc::Receiver<Command>,
    waiters: BTreeMap<CommandId, Waiter>,
    storage: Option<Storage>,
    network_dirty: bool,
    next_flush: Instant,
    next_contacts_save: Instant,
    /// Own publications by DHT key, with when to publish next.
    keeps: BTreeMap<NodeId, (Keep, Instant)>,
    /// Mutable puts in flight whose seq is to be recorded: command → target.
    put_commands: BTreeMap<CommandId, NodeId>,
    bootstrap_list: Vec<String>,
    public_bootstrap: bool,
    announce_interval: Duration,
    put_interval: Duration,
    latency: LatencyHistogram,
    started: Instant,
    local_addrs: Vec<SocketAddr>,
    out: Vec<u8>,
}

async fn recv(sock: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn bootstrap_addrs(&self) -> Vec<SocketAddr> {
        if !self.bootstrap_list.is_empty() {
            resolve(&self.bootstrap_list)
        } else if self.public_bootstrap {
            let routers: Vec<String> = PUBLIC_ROUTERS.iter().map(|s| (*s).to_owned()).collect();
            resolve(&routers)
        } else {
            Vec::new()
        }
    }

    /// Warm restart: look up our id through the saved contacts (which verifies them); if they
    /// are too few, bootstrap from the list at once, else only if the lookup finds nobody.
    fn initial_bootstrap(&mut self, now: Instant) {
        let saved =
            self.node.routing_table(Family::V4).len() + self.node.routing_table(Family::V6).len();
        let addrs = if saved >= 8 {
            Vec::new()
        } else {
            self.bootstrap_addrs()
        };
        if saved > 0 {
            self.node.ping_contacts(now);
        }
        match self.node.start_bootstrap(&addrs, now) {
            Ok(id) => {
                let waiter = if addrs.is_empty() {
                    Waiter::InitialBootstrap
                } else {
                    Waiter::Nobody
                };
                self.waiters.insert(id, waiter);
            }
            Err(e) => tracing::warn!(error = %e, "bootstrap not started"),
        }
    }

    async fn run(mut self) {
        // DHT datagrams are small (BEP 32: at most 1024 bytes sent); 4 KiB leaves ample room
        // for the larger ones BEP 32 asks us to accept, without 64 KiB per node in a testnet.
        let mut buf4 = vec![0u8; if self.sock4.is_some() { RECV_BUF } else { 0 }];
        let mut buf6 = vec![0u8; if self.sock6.is_some() { RECV_BUF } else { 0 }];
        loop {
            self.drain().await;
            let now = Instant::now();
            let next = [
                self.node.poll_timeout(),
                Some(self.next_flush),
                Some(self.next_contacts_save),
                self.keeps.values().map(|(_, at)| *at).min(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(60));
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(next.max(now)));
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        let r = self.save_all();
                        // Close the database before answering, so the caller may reopen it.
                        self.storage = None;
                        let _ = reply.send(r);
                        break;
                    }
                    Some(cmd) => self.command(cmd),
                    None => {
                        let _ = self.save_all();
                        break;
                    }
                },
                r = recv(self.sock4.as_ref(), &mut buf4) => self.received(r, &mut buf4, Family::V4).await,
                r = recv(self.sock6.as_ref(), &mut buf6) => self.received(r, &mut buf6, Family::V6).await,
                () = sleep => self.tick(),
            }
        }
        tracing::info!("node stopped");
    }

    /// Handles one datagram, then whatever else is already waiting on that socket (bounded),
    /// so a busy node answers in batches without a trip through the select loop per packet.
    async fn received(
        &mut self,
        r: io::Result<(usize, SocketAddr)>,
        buf: &mut [u8],
        family: Family,
    ) {
        match r {
            Ok((n, from)) => self.node.handle_datagram(Instant::now(), from, &buf[..n]),
            Err(e) => {
                tracing::trace!(error = %e, "recv failed");
                return;
            }
        }
        for _ in 0..64 {
            // Answer as we go so replies leave while the batch is read.
            self.flush().await;
            let sock = match family {
                Family::V4 => self.sock4.as_ref(),
                Family::V6 => self.sock6.as_ref(),
            };
            let Some(sock) = sock else { return };
            match sock.try_recv_from(buf) {
                Ok((n, from)) => self.node.handle_datagram(Instant::now(), from, &buf[..n]),
                Err(_) => break,
            }
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_timeout(now);
        }
        if self.next_flush <= now {
            self.next_flush = now + Duration::from_secs(1);
            if self.network_dirty {
                self.network_dirty = false;
                if let Err(e) = self.save_network_data() {
                    tracing::warn!(error = %e, "saving stored data failed");
                }
            }
        }
        if self.next_contacts_save <= now {
            self.next_contacts_save = now + Duration::from_secs(60);
            if let Err(e) = self.save_contacts() {
                tracing::warn!(error = %e, "saving contacts failed");
            }
        }
        let due: Vec<NodeId> = self
            .keeps
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some((keep, _)) = self.keeps.get(&key).cloned() {
                self.publish(&keep, now, Waiter::Nobody);
                let every = self.interval(&keep);
                if let Some(entry) = self.keeps.get_mut(&key) {
                    entry.1 = now + every;
                }
            }
        }
    }

    fn interval(&self, keep: &Keep) -> Duration {
        match keep {
            Keep::Announce(_) => self.announce_interval,
            Keep::Put(_) => self.put_interval,
        }
    }

    /// Sends datagrams and dispatches events.
    async fn drain(&mut self) {
        self.flush().await;
        while let Some(e) = self.node.poll_event() {
            self.event(e);
        }
        // Events may have started commands (fallback bootstrap): send their queries too.
        self.flush().await;
    }

    /// Sends every queued datagram on the socket of its family. `try_send_to` first (no
    /// trip through the reactor when the socket is writable, the usual case); when the socket
    /// is not known to be writable yet (just bound) or its buffer is full, wait for it.
    async fn flush(&mut self) {
        while let Some(to) = self.node.poll_transmit(&mut self.out) {
            let sock = if to.is_ipv4() {
                self.sock4.as_ref()
            } else {
                self.sock6.as_ref()
            };
            let Some(sock) = sock else { continue };
            let sent = match sock.try_send_to(&self.out, to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    sock.send_to(&self.out, to).await
                }
                other => other,
            };
            if let Err(e) = sent {
                tracing::trace!(%to, error = %e, "send failed");
            }
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::PeersFound { id, peers } => {
                if let Some(Waiter::Peers(tx)) = self.waiters.get(&id) {
                    let _ = tx.try_send(PeerUpdate::Peers(peers));
                }
            }
            Event::CommandFinished { id, outcome, stats } => {
                if !matches!(outcome, Outcome::Pong(_)) {
                    self.latency.record(stats.duration);
                }
                self.put_finished(id, &outcome);
                match self.waiters.remove(&id) {
                    Some(Waiter::Reply(r)) => {
                        let _ = r.send(Ok((outcome, stats)));
                    }
                    Some(Waiter::Peers(tx)) => {
                        let done = match outcome {
                            Outcome::Peers { closest, .. } => Ok((closest, stats)),
                            Outcome::Failed(e) => Err(DhtError::Failed(e)),
                            _ => Ok((Vec::new(), stats)),
                        };
                        let _ = tx.try_send(PeerUpdate::Done(done));
                    }
                    Some(Waiter::InitialBootstrap) => {
                        let found = matches!(&outcome, Outcome::Closest(c) if !c.is_empty());
                        if !found {
                            let addrs = self.bootstrap_addrs();
                            tracing::info!(
                                count = addrs.len(),
                                "saved contacts did not answer; bootstrapping"
                            );
                            if !addrs.is_empty()
                                && let Ok(id) = self.node.start_bootstrap(&addrs, Instant::now())
                            {
                                self.waiters.insert(id, Waiter::Nobody);
                            }
                        }
                    }
                    Some(Waiter::Nobody) | None => {}
                }
            }
            Event::PeerAnnounced { .. } | Event::ItemStored { .. } => self.network_dirty = true,
            Event::IdChanged { new, .. } => {
                if let Some(st) = &self.storage {
                    let secrets = self.node.snapshot(Instant::now()).token_secrets;
                    if let Err(e) = st.save_identity(new, &secrets) {
                        tracing::warn!(error = %e, "saving the new node id failed");
                    }
                }
            }
            Event::ItemFound { .. } | Event::SamplesReceived { .. } => {}
        }
    }

    fn start(&mut self, started: Result<CommandId, xorro_dht::StartError>, waiter: Waiter) {
        match (started, waiter) {
            (Ok(id), w) => {
                self.waiters.insert(id, w);
            }
            (Err(e), Waiter::Reply(r)) => {
                tracing::debug!(error = %e, "command refused");
                let _ = r.send(Err(DhtError::Refused(e)));
            }
            (Err(e), Waiter::Peers(tx)) => {
                let _ = tx.try_send(PeerUpdate::Done(Err(DhtError::Refused(e))));
            }
            (Err(e), _) => tracing::debug!(error = %e, "command refused"),
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Bootstrap { addrs, reply } => {
                let r = self.node.start_bootstrap(&addrs, now);
                self.start(r, Waiter::Reply(reply));
            }
            Command::Ping { addr, reply } => {
                let id = self.node.start_ping(addr, now);
                self.waiters.insert(id, Waiter::Reply(reply));
            }
            Command::FindNode { target, reply } => {
                let r = self.node.start_find_node(target, now);
                self.start(r, Waiter::Reply(reply));
            }
            Command::GetPeers { info_hash, tx } => {
                let r = self.node.start_get_peers(info_hash, false, false, now);
                self.start(r, Waiter::Peers(tx));
            }
            Command::Announce {
                info_hash,
                port,
                seed,
                reply,
            } => {
                let keep = Keep::Announce(Announcement {
                    info_hash,
                    port,
                    seed,
                });
                if let Err(e) = self.persist(&keep) {
                    tracing::warn!(error = %e, "announcement not saved");
                    let _ = reply.send(Err(DhtError::Storage(e)));
                    return;
                }
                self.publish(&keep, now, Waiter::Reply(reply));
                self.keep(keep, now + self.announce_interval);
            }
            Command::Unannounce { info_hash, reply } => {
                let key = NodeId::from(info_hash);
                let known = self.keeps.remove(&key).is_some();
                let r = match &self.storage {
                    Some(st) => st
                        .remove_announcement(&info_hash)
                        .map(|found| found || known)
                        .map_err(DhtError::from),
                    None => Ok(known),
                };
                let _ = reply.send(r);
            }
            Command::GetItem { target, reply } => {
                let r = self.node.start_get_item(target, now);
                self.start(r, Waiter::Reply(reply));
            }
            Command::PutItem { request, reply } => {
                let r = self.node.start_put_item(request.clone(), now);
                let Ok(id) = r else {
                    self.start(r, Waiter::Reply(reply));
                    return;
                };
                self.waiters.insert(id, Waiter::Reply(reply));
                self.keep_put(id, request);
            }
            Command::StopPut { target, reply } => {
                let known = self.keeps.remove(&target).is_some();
                let r = match &self.storage {
                    Some(st) => st
                        .remove_put(&target)
                        .map(|found| found || known)
                        .map_err(DhtError::from),
                    None => Ok(known),
                };
                let _ = reply.send(r);
            }
            Command::Samples { target, reply } => {
                let r = self.node.start_sample_infohashes(target, now);
                self.start(r, Waiter::Reply(reply));
            }
            Command::RoutingTable { reply } => {
                let _ = reply.send(self.contacts(now));
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status(now));
            }
            Command::Shutdown { .. } => {}
        }
    }

    /// Keeps (and persists) a put for republishing. A mutable put whose seq the engine picks
    /// is recorded with that seq when it finishes, so re-puts refresh rather than bump it.
    fn keep_put(&mut self, id: CommandId, request: PutRequest) {
        let keep = match request {
            PutRequest::Immutable { value } => {
                let target = xorro_wire::RawValue::new(&value)
                    .map(|raw| xorro_wire::bep44::immutable_target(&raw));
                match target {
                    Ok(target) => Keep::Put(OwnPut {
                        target,
                        item: OwnItem::Immutable { value },
                    }),
                    Err(_) => return,
                }
            }
            PutRequest::Mutable {
                keypair,
                salt,
                value,
                seq,
                ..
            } => {
                let target = xorro_wire::bep44::mutable_target(&keypair.public_key(), Some(&salt));
                self.put_commands.insert(id, target);
                Keep::Put(OwnPut {
                    target,
                    item: OwnItem::Mutable {
                        keypair_seed: keypair.to_seed(),
                        salt,
                        value,
                        seq: seq.unwrap_or(0),
                    },
                })
            }
        };
        if let Err(e) = self.persist(&keep) {
            tracing::warn!(error = %e, "put not saved for republishing");
        }
        let at = Instant::now() + self.put_interval;
        self.keep(keep, at);
    }

    /// A mutable put finished with `seq`: record it in the kept item.
    fn put_finished(&mut self, id: CommandId, outcome: &Outcome) {
        let Some(target) = self.put_commands.remove(&id) else {
            return;
        };
        let Outcome::Stored {
            seq: Some(stored), ..
        } = outcome
        else {
            return;
        };
        let Some((
            Keep::Put(OwnPut {
                item: OwnItem::Mutable { seq, .. },
                ..
            }),
            _,
        )) = self.keeps.get_mut(&target)
        else {
            return;
        };
        *seq = *stored;
        if let Some((keep, _)) = self.keeps.get(&target)
            && let Err(e) = self.persist(keep)
        {
            tracing::warn!(error = %e, "put not saved for republishing");
        }
    }

    fn persist(&self, keep: &Keep) -> Result<(), StorageError> {
        match (&self.storage, keep) {
            (Some(st), Keep::Announce(a)) => st.add_announcement(a),
            (Some(st), Keep::Put(p)) => st.add_put(p),
            (None, _) => Ok(()),
        }
    }

    fn keep(&mut self, keep: Keep, at: Instant) {
        let key = match &keep {
            Keep::Announce(a) => NodeId::from(a.info_hash),
            Keep::Put(p) => p.target,
        };
        self.keeps.insert(key, (keep, at));
    }

    fn publish(&mut self, keep: &Keep, now: Instant, waiter: Waiter) {
        let r = match keep {
            Keep::Announce(a) => self.node.start_announce(a.info_hash, a.port, a.seed, now),
            Keep::Put(p) => {
                let request = match &p.item {
                    OwnItem::Immutable { value } => PutRequest::Immutable {
                        value: value.clone(),
                    },
                    OwnItem::Mutable {
                        keypair_seed,
                        salt,
                        value,
                        seq,
                    } => PutRequest::Mutable {
                        keypair: Keypair::from_seed(*keypair_seed),
                        salt: salt.clone(),
                        value: value.clone(),
                        seq: (*seq != 0).then_some(*seq),
                        cas: None,
                    },
                };
                self.node.start_put_item(request, now)
            }
        };
        self.start(r, waiter);
    }

    fn contacts(&self, now: Instant) -> Vec<Contact> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            let table = self.node.routing_table(family);
            for e in table.iter() {
                let state = match table.state(e, now) {
                    xorro_dht::routing::NodeState::Good => "good",
                    xorro_dht::routing::NodeState::Questionable => "questionable",
                    xorro_dht::routing::NodeState::Bad => "bad",
                };
                out.push(Contact {
                    node: e.node(),
                    state,
                    rtt: e.rtt(),
                    last_response: e.last_response().map(|t| now.saturating_duration_since(t)),
                });
            }
        }
        out
    }

    fn status(&self, now: Instant) -> Status {
        let (mut announcements, mut items) = (0, 0);
        for (keep, _) in self.keeps.values() {
            match keep {
                Keep::Announce(_) => announcements += 1,
                Keep::Put(_) => items += 1,
            }
        }
        Status {
            id: self.node.id(),
            local_addrs: self.local_addrs.clone(),
            external_ip: self.node.external_ip(),
            table_v4: self.node.routing_table(Family::V4).len(),
            table_v6: self.node.routing_table(Family::V6).len(),
            stored_infohashes: self.node.peer_store().infohash_count(),
            stored_peers: self.node.peer_store().peer_count(),
            stored_items: self.node.item_store().len(),
            lookups_running: self.node.lookups_running(),
            own_announcements: announcements,
            own_items: items,
            stats: self.node.stats(),
            lookup_latency: self.latency.clone(),
            uptime: now.saturating_duration_since(self.started),
            read_only: self.node.config().read_only,
        }
    }

    /// Saves the data stored on behalf of others (expiries converted to wall-clock time).
    fn save_network_data(&self) -> Result<(), StorageError> {
        match &self.storage {
            Some(st) => write_network_data(st, self.node.snapshot(Instant::now())),
            None => Ok(()),
        }
    }

    /// Saves the routing tables' contacts.
    fn save_contacts(&self) -> Result<(), StorageError> {
        let Some(st) = &self.storage else {
            return Ok(());
        };
        let mut contacts = self.node.routing_table(Family::V4).snapshot();
        contacts.extend(self.node.routing_table(Family::V6).snapshot());
        st.save_contacts(&contacts)
    }

    /// Saves everything from one snapshot (at shutdown).
    fn save_all(&self) -> Result<(), DhtError> {
        let Some(st) = &self.storage else {
            return Ok(());
        };
        let snap = self.node.snapshot(Instant::now());
        st.save_identity(snap.id, &snap.token_secrets)?;
        st.save_contacts(&snap.contacts)?;
        write_network_data(st, snap)?;
        Ok(())
    }
}

/// Writes a snapshot's peers and items, their remaining time turned into wall-clock expiries.
fn write_network_data(st: &Storage, snap: xorro_dht::Snapshot) -> Result<(), StorageError> {
    let wall = SystemTime::now();
    let peers: Vec<_> = snap
        .peers
        .into_iter()
        .map(|(ih, addr, seed, left)| (ih, addr, seed, wall + left))
        .collect();
    let items: Vec<_> = snap
        .items
        .into_iter()
        .map(|(t, item, left)| (t, item, wall + left))
        .collect();
    st.save_network_data(&peers, &items)
}
