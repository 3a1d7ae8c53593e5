//! The driver task: owns the sockets and the engine and runs the drain loop of DESIGN.md.
//!
//! ```text
//! socket.recv_from -> Node::handle_datagram     sleep_until(poll_timeout) -> handle_timeout
//! command          -> Node::start_*             then: poll_transmit -> send_to,
//!                                                     poll_event -> answer the caller / persist
//! ```
//!
//! Datagrams move in batches: a readable socket is read with `recvmmsg` (up to [`BATCH`]
//! datagrams a system call) into a buffer shared by every driver on the thread, every
//! datagram of the batch goes to the engine, and the answers leave together with `sendmmsg`.
//! A busy node thus crosses into the kernel about twice per batch rather than twice per
//! answer, and its per-node memory holds no receive buffer.
//!
//! Persistence: the node's own announcements and puts are written (durably) before the call
//! returns; data stored on behalf of others is saved in one batch at most once a second when
//! it changed; contacts every minute and at shutdown.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use xorro_dht::{CommandId, Event, ItemTarget, LookupStats, Node, Outcome, PutRequest};
use xorro_wire::bep44::Keypair;
use xorro_wire::{Family, InfoHash, NodeId, NodeInfo};

use crate::dht::{
    Contact, Dht, DhtBuilder, DhtError, LatencyHistogram, PUBLIC_ROUTERS, SocketErrors, StartError,
    Status,
};
use crate::storage::{Announcement, OwnItem, OwnPut, Storage, StorageError};

/// Commands from [`Dht`] handles. Kept small (the large put request is boxed): the command
/// channel's buffer is allocated per node, in blocks of 32 commands.
#[derive(Debug)]
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
        request: Box<PutRequest>,
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

/// Room for one received datagram. DHT datagrams are small (BEP 32: at most 1024 bytes
/// sent); 4 KiB leaves ample room for the larger ones BEP 32 asks us to accept.
const RECV_BUF: usize = 4096;

/// Datagrams per `recvmmsg` / `sendmmsg` call.
const BATCH: usize = 32;

/// Batches read per wakeup before commands and timers get their turn.
const BATCHES_PER_WAKEUP: usize = 8;

thread_local! {
    /// The receive buffers of every driver on this thread: a batch is read and handed to
    /// the engine without an await in between, so one set per thread is enough.
    static RECV_ARENA: RefCell<Vec<u8>> = RefCell::new(vec![0u8; BATCH * RECV_BUF]);
}

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
    let mut node = match storage.as_mut() {
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
    node.set_local_ips(own_ips(&local_addrs));
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
        outbox4: Outbox::default(),
        outbox6: Outbox::default(),
        socket_errors: SocketErrors::default(),
    };
    for k in keeps {
        driver.keep(k, now);
    }
    driver.initial_bootstrap(now);
    tokio::spawn(driver.run());
    Ok(Dht { tx, local_addrs })
}

/// The node's own IP addresses: those its sockets are bound to, and for a socket bound to
/// the unspecified address (IPv6 sockets are IPv6-only) those of every interface of its
/// family. None for a family whose interfaces cannot be read: the node then never takes
/// itself for behind NAT there.
fn own_ips(bound: &[SocketAddr]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = bound
        .iter()
        .map(SocketAddr::ip)
        .filter(|ip| !ip.is_unspecified())
        .collect();
    let any = |v6: bool| {
        bound
            .iter()
            .any(|a| a.is_ipv6() == v6 && a.ip().is_unspecified())
    };
    let (any4, any6) = (any(false), any(true));
    if !(any4 || any6) {
        return ips;
    }
    match nix::ifaddrs::getifaddrs() {
        Ok(ifs) => {
            for a in ifs.filter_map(|i| i.address) {
                match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                    (Some(v4), _) if any4 => ips.push(v4.ip().into()),
                    (_, Some(v6)) if any6 => ips.push(v6.ip().into()),
                    _ => {}
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot read the interfaces' addresses"),
    }
    ips
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
    /// What `poll_transmit` writes into.
    out: Vec<u8>,
    /// Datagrams waiting for `sendmmsg`, per family.
    outbox4: Outbox,
    outbox6: Outbox,
    /// What was lost at the sockets.
    socket_errors: SocketErrors,
}

/// Datagrams to send: their bytes one after another, and where each goes.
#[derive(Debug, Default)]
struct Outbox {
    bytes: Vec<u8>,
    datagrams: Vec<(usize, usize, SocketAddr)>,
}

impl Outbox {
    fn push(&mut self, datagram: &[u8], to: SocketAddr) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(datagram);
        self.datagrams.push((start, datagram.len(), to));
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.datagrams.clear();
        // After a burst, give back what a quiet node does not need.
        // (A busy node pays one allocation per batch for that; a testnet of a thousand
        // mostly quiet nodes keeps no burst-sized buffers.)
        if self.bytes.capacity() > 4096 {
            self.bytes = Vec::new();
            self.datagrams = Vec::new();
        }
    }

    /// One `sendmmsg` of up to [`BATCH`] datagrams from `first` on; how many were sent.
    fn send(&self, sock: &UdpSocket, first: usize) -> io::Result<usize> {
        let end = self.datagrams.len().min(first + BATCH);
        let chosen = &self.datagrams[first..end];
        let slices: Vec<[IoSlice<'_>; 1]> = chosen
            .iter()
            .map(|(start, len, _)| [IoSlice::new(&self.bytes[*start..*start + *len])])
            .collect();
        let addrs: Vec<Option<SockaddrStorage>> = chosen
            .iter()
            .map(|d| Some(SockaddrStorage::from(d.2)))
            .collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chosen.len(), None);
        let cmsgs: [ControlMessage<'_>; 0] = [];
        let sent = sendmmsg(
            sock.as_raw_fd(),
            &mut headers,
            &slices,
            &addrs,
            cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )?;
        Ok(sent.count())
    }
}

/// One `recvmmsg` of up to [`BATCH`] datagrams into `arena`; their lengths and senders go
/// to `meta` (datagram `i` starts at `i * RECV_BUF`). A truncated datagram, or one without a
/// sender address, keeps its position with no sender: the caller drops and counts it.
fn recv_batch(
    sock: &UdpSocket,
    arena: &mut [u8],
    meta: &mut Vec<(usize, Option<SocketAddr>)>,
) -> io::Result<()> {
    let mut slices: Vec<[IoSliceMut<'_>; 1]> = arena
        .chunks_mut(RECV_BUF)
        .map(|c| [IoSliceMut::new(c)])
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
    let received = recvmmsg(
        sock.as_raw_fd(),
        &mut headers,
        slices.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )?;
    for m in received {
        let from = m.address.as_ref().and_then(socket_addr);
        match from {
            Some(from) if !m.flags.contains(MsgFlags::MSG_TRUNC) => {
                meta.push((m.bytes, Some(from)));
            }
            _ => {
                tracing::trace!(
                    ?from,
                    bytes = m.bytes,
                    "truncated or unaddressed datagram dropped"
                );
                meta.push((0, None));
            }
        }
    }
    Ok(())
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        Some(SocketAddr::V4(SocketAddrV4::from(*v4)))
    } else {
        a.as_sockaddr_in6()
            .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
    }
}

async fn readable(sock: Option<&UdpSocket>) -> io::Result<()> {
    match sock {
        Some(s) => s.readable().await,
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
        // One timer for the driver's life, moved only when the next deadline changes.
        let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
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
            .unwrap_or(now + Duration::from_secs(60))
            .max(now);
            if armed != Some(next) || sleep.is_elapsed() {
                sleep.as_mut().reset(tokio::time::Instant::from_std(next));
                armed = Some(next);
            }
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
                r = readable(self.sock4.as_ref()) => self.received(r, Family::V4).await,
                r = readable(self.sock6.as_ref()) => self.received(r, Family::V6).await,
                () = &mut sleep => {
                    armed = None;
                    self.tick();
                }
            }
        }
        tracing::info!("node stopped");
    }

    /// Reads what waits on a readable socket in batches, hands every datagram to the
    /// engine and sends the answers of each batch together, until the socket is empty or
    /// [`BATCHES_PER_WAKEUP`] batches were read (then commands and timers get their turn).
    async fn received(&mut self, r: io::Result<()>, family: Family) {
        if let Err(e) = r {
            tracing::trace!(error = %e, "readiness failed");
            return;
        }
        let mut meta = Vec::with_capacity(BATCH);
        for _ in 0..BATCHES_PER_WAKEUP {
            let sock = match family {
                Family::V4 => self.sock4.as_ref(),
                Family::V6 => self.sock6.as_ref(),
            };
            let Some(sock) = sock else { return };
            let node = &mut self.node;
            let truncated = &mut self.socket_errors.truncated;
            let read = RECV_ARENA.with_borrow_mut(|arena| {
                meta.clear();
                let r = sock.try_io(Interest::READABLE, || {
                    recv_batch(sock, arena, &mut meta)?;
                    if meta.len() < BATCH {
                        // A short batch emptied the queue: say so, and tokio forgets the
                        // readiness, saving the recvmmsg that would only find the queue
                        // empty. Nothing is missed: the socket is registered edge-triggered,
                        // so a datagram queued after this read wakes the driver again.
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(())
                    }
                });
                let now = Instant::now();
                for (i, (len, from)) in meta.iter().enumerate() {
                    match from {
                        // An empty datagram goes to the engine too: it counts it malformed.
                        Some(from) => {
                            let start = i * RECV_BUF;
                            node.handle_datagram(now, *from, &arena[start..start + len]);
                        }
                        None => *truncated += 1,
                    }
                }
                r
            });
            // Answer as we go so replies leave while the next batch is read.
            self.flush().await;
            match read {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.socket_errors.recv_failed += 1;
                    tracing::debug!(error = %e, "recv failed");
                    return;
                }
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
            // Interfaces change (a new lease, a VPN): the node compares what others see
            // with what it has now.
            self.node.set_local_ips(own_ips(&self.local_addrs));
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

    /// Sends every queued datagram on the socket of its family, [`BATCH`] per `sendmmsg`.
    /// When a socket is not known to be writable yet (just bound) or its buffer is full, waits
    /// for it rather than dropping the datagram.
    async fn flush(&mut self) {
        while let Some(to) = self.node.poll_transmit(&mut self.out) {
            match (to.is_ipv4(), &self.sock4, &self.sock6) {
                (true, Some(_), _) => self.outbox4.push(&self.out, to),
                (false, _, Some(_)) => self.outbox6.push(&self.out, to),
                _ => {
                    self.socket_errors.no_socket += 1;
                    tracing::trace!(%to, "no socket of that family");
                }
            }
        }
        for family in [Family::V4, Family::V6] {
            let (sock, outbox) = match family {
                Family::V4 => (self.sock4.as_ref(), &mut self.outbox4),
                Family::V6 => (self.sock6.as_ref(), &mut self.outbox6),
            };
            let Some(sock) = sock else { continue };
            let mut first = 0;
            while first < outbox.datagrams.len() {
                match sock.try_io(Interest::WRITABLE, || outbox.send(sock, first)) {
                    Ok(n) => first += n.max(1),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(e) = sock.writable().await {
                            tracing::trace!(error = %e, "socket not writable");
                            break;
                        }
                    }
                    Err(e) => {
                        // The first datagram of the call failed (unreachable address, ...):
                        // drop it and go on with the rest.
                        tracing::debug!(to = %outbox.datagrams[first].2, error = %e, "send failed");
                        self.socket_errors.send_failed += 1;
                        first += 1;
                    }
                }
            }
            outbox.clear();
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
                let request = *request;
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
                let state = match table.state(&e, now) {
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
            external_ips: [Family::V4, Family::V6]
                .into_iter()
                .filter_map(|f| self.node.external_ip_in(f))
                .collect(),
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
            read_only: self.node.acts_read_only(),
            reachability: [Family::V4, Family::V6]
                .into_iter()
                .filter(|&f| !self.node.routing_table(f).is_empty())
                .filter_map(|f| Some((f, self.node.reachability(f)?)))
                .collect(),
            behind_nat: [Family::V4, Family::V6]
                .into_iter()
                .filter(|&f| self.node.behind_nat(f))
                .collect(),
            socket_errors: self.socket_errors,
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
        let now = Instant::now();
        let mut contacts = self.node.routing_table(Family::V4).snapshot(now);
        contacts.extend(self.node.routing_table(Family::V6).snapshot(now));
        st.save_contacts(&contacts, SystemTime::now())
    }

    /// Saves everything from one snapshot (at shutdown).
    fn save_all(&self) -> Result<(), DhtError> {
        let Some(st) = &self.storage else {
            return Ok(());
        };
        let snap = self.node.snapshot(Instant::now());
        st.save_identity(snap.id, &snap.token_secrets)?;
        st.save_contacts(&snap.contacts, SystemTime::now())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_stay_small() {
        // Every node's command channel holds blocks of 32 of them.
        assert!(
            std::mem::size_of::<Command>() <= 96,
            "{}",
            std::mem::size_of::<Command>()
        );
    }

    #[test]
    fn outbox_keeps_datagrams_in_order_and_gives_memory_back() {
        let mut o = Outbox::default();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:2".parse().unwrap();
        o.push(b"one", a);
        o.push(b"three", b);
        assert_eq!(o.datagrams, vec![(0, 3, a), (3, 5, b)]);
        assert_eq!(&o.bytes[3..8], b"three");
        for _ in 0..100 {
            o.push(&[0u8; 300], a);
        }
        o.clear();
        assert!(o.datagrams.is_empty() && o.bytes.capacity() <= 4096);
    }

    #[tokio::test]
    async fn a_batch_goes_out_in_one_call_and_comes_back_whole() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rx.local_addr().unwrap();
        let mut o = Outbox::default();
        for i in 0..(BATCH + 5) {
            o.push(format!("datagram {i}").as_bytes(), to);
        }
        tx.writable().await.unwrap();
        let sent = o.send(&tx, 0).unwrap();
        assert_eq!(sent, BATCH);
        assert_eq!(o.send(&tx, sent).unwrap(), 5);
        let mut arena = vec![0u8; BATCH * RECV_BUF];
        let mut got = Vec::new();
        while got.len() < BATCH + 5 {
            rx.readable().await.unwrap();
            let mut meta = Vec::new();
            match rx.try_io(Interest::READABLE, || {
                recv_batch(&rx, &mut arena, &mut meta)
            }) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
            assert!(meta.len() <= BATCH);
            for (i, (len, from)) in meta.iter().enumerate() {
                assert_eq!(*from, Some(tx.local_addr().unwrap()));
                got.push(
                    String::from_utf8(arena[i * RECV_BUF..i * RECV_BUF + len].to_vec()).unwrap(),
                );
            }
        }
        let want: Vec<String> = (0..(BATCH + 5)).map(|i| format!("datagram {i}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn own_addresses_are_the_bound_ones_or_the_interfaces() {
        let lo4 = IpAddr::from([127, 0, 0, 1]);
        let bound = [SocketAddr::from((lo4, 6881))];
        assert_eq!(own_ips(&bound), vec![lo4]);
        // On 0.0.0.0: every IPv4 interface (the loopback one is always there), no IPv6.
        let any4 = own_ips(&[SocketAddr::from(([0, 0, 0, 0], 6881))]);
        assert!(any4.contains(&lo4), "{any4:?}");
        assert!(any4.iter().all(IpAddr::is_ipv4), "{any4:?}");
        // On [::] (IPv6 only): IPv6 interfaces alone.
        let any6 = own_ips(&[SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 6881))]);
        assert!(any6.iter().all(IpAddr::is_ipv6), "{any6:?}");
    }
}
