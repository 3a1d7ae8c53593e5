//! The discrete-event loop: hosts, the event queue, the link, churn, adversaries, workload.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xorro_dht::routing::{MAX_BUCKETS, RoutingConfig, SavedContact, bucket_slot};
use xorro_dht::{Config, Event, ItemTarget, LookupStats, Node, Outcome, PutRequest, Snapshot};
use xorro_wire::{Body, InfoHash, Message, NodeId, NodeInfo, Nodes, QueryKind, RawValue};

use crate::churn::{Weibull, exponential};
use crate::link::LinkModel;
use crate::oracle::Oracle;
use crate::report::{OpKind, OpRecord, Progress, Totals, TrafficCounts, WorkloadTraffic};
use crate::scenario::{Behavior, BuildMode, ChurnStart, Scenario};

/// UDP port of every simulated node.
pub const PORT: u16 = 6881;
/// First virtual IPv4 address (20.0.0.0): node `i` lives at `20.0.0.0 + i`, port 6881.
pub const IP_BASE: u32 = 0x1400_0000;

const NS: u64 = 1_000_000_000;
const NONE: u64 = u64::MAX;

const F_NAT: u8 = 1;
const F_ADVERSARY: u8 = 2;
const F_SYBIL: u8 = 4;

/// The address of host `i`.
pub fn addr_of(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(IP_BASE + i)), PORT)
}

fn host_of(addr: &SocketAddr) -> Option<u32> {
    match addr.ip().to_canonical() {
        IpAddr::V4(v4) if addr.port() == PORT => u32::from(v4).checked_sub(IP_BASE),
        _ => None,
    }
}

fn mix(a: u64, b: u64) -> u64 {
    // splitmix64 of a combination: decorrelates per-node seeds.
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn tid_key(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .fold(bytes.len() as u64, |acc, b| (acc << 8) | u64::from(*b))
}

#[derive(Debug)]
struct Host {
    node: Option<Box<Node>>,
    id: NodeId,
    /// When a timer event for this host is queued (`NONE`: none).
    timer_at: u64,
    /// Saved state of a host that left and will come back.
    snapshot: Option<Box<Snapshot>>,
    flags: u8,
    /// Sessions started so far (a stale `Leave` of an earlier session is ignored).
    session: u32,
    /// Position in `online`, when online.
    pos: u32,
    /// NAT mappings: (remote host, last packet out), sorted by host.
    pinholes: Vec<(u32, u64)>,
    /// When the current session began (virtual ns).
    online_since: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum EvKind {
    Deliver {
        to: u32,
        from: u32,
        bytes: Box<[u8]>,
    },
    Timer {
        host: u32,
    },
    Join {
        host: u32,
    },
    Leave {
        host: u32,
        session: u32,
    },
    Arrive,
    /// [`BuildMode::Restore`] and [`BuildMode::Warm`]: the host starts from its snapshot.
    Restore {
        host: u32,
    },
    Start {
        op: u32,
    },
    Read {
        op: u32,
    },
    Partition {
        on: bool,
        fraction_bits: u64,
    },
    Sample,
}

#[derive(Debug, PartialEq, Eq)]
struct Ev {
    at: u64,
    seq: u64,
    kind: EvKind,
}

impl Ev {
    /// Order among events of the same instant: timers after everything else, by host. A
    /// timer's sequence number says when it was asked for, which depends on how often its
    /// node asks to be woken, not on what the node does; the order of the other events
    /// follows from what the nodes do.
    fn tie(&self) -> u64 {
        match self.kind {
            EvKind::Timer { host } => 1 + u64::from(host),
            _ => 0,
        }
    }
}

/// The event queue: a 4-ary min-heap by (time, tie, sequence). Half the depth of a binary
/// heap, so a pop touches about half as many cache lines of a queue of millions of events;
/// the order is the same total order either way (sequence numbers are unique).
#[derive(Debug, Default)]
struct EventQueue {
    heap: Vec<Ev>,
}

impl EventQueue {
    fn key(ev: &Ev) -> (u64, u64, u64) {
        (ev.at, ev.tie(), ev.seq)
    }

    fn push(&mut self, ev: Ev) {
        self.heap.push(ev);
        let mut i = self.heap.len() - 1;
        let key = Self::key(&self.heap[i]);
        while i > 0 {
            let parent = (i - 1) / 4;
            if key >= Self::key(&self.heap[parent]) {
                break;
            }
            self.heap.swap(i, parent);
            i = parent;
        }
    }

    fn peek(&self) -> Option<&Ev> {
        self.heap.first()
    }

    fn pop(&mut self) -> Option<Ev> {
        if self.heap.is_empty() {
            return None;
        }
        let top = self.heap.swap_remove(0);
        let n = self.heap.len();
        let mut i = 0;
        if n > 0 {
            let key = Self::key(&self.heap[0]);
            loop {
                let first = 4 * i + 1;
                if first >= n {
                    break;
                }
                let mut min = first;
                let mut min_key = Self::key(&self.heap[first]);
                for c in first + 1..(first + 4).min(n) {
                    let k = Self::key(&self.heap[c]);
                    if k < min_key {
                        min = c;
                        min_key = k;
                    }
                }
                if min_key >= key {
                    break;
                }
                self.heap.swap(i, min);
                i = min;
            }
        }
        Some(top)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Bootstrap,
    Write,
    Read,
}

#[derive(Debug)]
struct Op {
    kind: OpKind,
    target: NodeId,
    value: Vec<u8>,
    writer: Option<u32>,
    /// The host running the current phase and its start.
    runner: Option<u32>,
    started: u64,
    first_found: Option<u64>,
    bytes: u64,
    tids: Vec<(u32, u64)>,
    /// Distinct nodes this op asked, each with the time it was first asked.
    asked: Vec<(u32, u64)>,
    /// Distinct nodes this op asked that had left the network when asked.
    departed: u32,
}

/// A running simulation. Build it with [`Simulation::new`], then [`Simulation::run`].
#[derive(Debug)]
pub struct Simulation {
    sc: Scenario,
    base_config: Config,
    base: Instant,
    now: u64,
    seq: u64,
    queue: EventQueue,
    hosts: Vec<Host>,
    online: Vec<u32>,
    link: LinkModel,
    oracle: Oracle,
    net_rng: ChaCha8Rng,
    churn_rng: ChaCha8Rng,
    work_rng: ChaCha8Rng,
    place_rng: ChaCha8Rng,
    weibull: Weibull,
    churn_on: bool,
    horizon: u64,
    commands: BTreeMap<(u32, u64), (u32, Phase)>,
    /// Ops in progress per host (for byte accounting and aborts).
    running: BTreeMap<u32, Vec<u32>>,
    ops: Vec<Op>,
    records: Vec<OpRecord>,
    boot_latencies: Vec<u64>,
    boot_failed: u64,
    pending_boots: usize,
    /// Hosts that joined before the current wave (bootstrap contacts are drawn among them).
    wave_base: usize,
    partition: Option<u64>,
    eclipse_target: Option<NodeId>,
    sybils: Vec<u32>,
    adv_queries: BTreeMap<(u32, u32, u64), NodeId>,
    buf: Vec<u8>,
    traffic: TrafficCounts,
    retired: xorro_dht::Stats,
    totals: Totals,
    samples: Vec<(u64, u64, u64)>,
    workload_start: u64,
    /// Traffic since the workload began (`None` before).
    workload_traffic: Option<WorkloadTraffic>,
    misses: crate::report::MissCounts,
    /// [`BuildMode::Restore`], during the build: every findable node, by id.
    restore_ids: Vec<(NodeId, u32)>,
}

impl Simulation {
    /// A simulation of `sc` with nothing built yet.
    pub fn new(sc: &Scenario) -> Self {
        let seed = sc.seed;
        let mut place_rng = ChaCha8Rng::seed_from_u64(mix(seed, 1));
        let mut link = LinkModel::new(sc.link.access_sigma);
        link.calibrate(sc.link.rtt_median_ms, &mut place_rng);
        Simulation {
            base_config: sc.engine.node_config(),
            base: Instant::now(),
            now: 0,
            seq: 0,
            queue: EventQueue::default(),
            hosts: Vec::with_capacity(sc.nodes),
            online: Vec::with_capacity(sc.nodes),
            link,
            oracle: Oracle::new(),
            net_rng: ChaCha8Rng::seed_from_u64(mix(seed, 2)),
            churn_rng: ChaCha8Rng::seed_from_u64(mix(seed, 3)),
            work_rng: ChaCha8Rng::seed_from_u64(mix(seed, 4)),
            place_rng,
            weibull: Weibull::with_median(sc.churn.weibull_shape, sc.churn.session_median_s),
            churn_on: false,
            horizon: NONE,
            commands: BTreeMap::new(),
            running: BTreeMap::new(),
            ops: Vec::new(),
            records: Vec::new(),
            boot_latencies: Vec::new(),
            boot_failed: 0,
            pending_boots: 0,
            wave_base: 0,
            partition: None,
            eclipse_target: None,
            sybils: Vec::new(),
            adv_queries: BTreeMap::new(),
            buf: Vec::with_capacity(1500),
            traffic: TrafficCounts::default(),
            retired: xorro_dht::Stats::default(),
            totals: Totals::default(),
            samples: Vec::new(),
            workload_start: 0,
            workload_traffic: None,
            misses: Default::default(),
            restore_ids: Vec::new(),
            sc: sc.clone(),
        }
    }

    fn inst(&self, t: u64) -> Instant {
        self.base + Duration::from_nanos(t)
    }

    fn ns(&self, i: Instant) -> u64 {
        u64::try_from(i.saturating_duration_since(self.base).as_nanos()).unwrap_or(NONE - 1)
    }

    fn push(&mut self, at: u64, kind: EvKind) {
        self.seq += 1;
        self.queue.push(Ev {
            at,
            seq: self.seq,
            kind,
        });
    }

    /// Builds the network, runs the workload under churn and faults, and collects records.
    pub fn run(&mut self, progress: &mut dyn FnMut(&Progress)) {
        self.build(progress);
        self.workload(progress);
    }

    // ----- hosts -----

    fn new_host(&mut self, sybil: bool) -> u32 {
        let i = u32::try_from(self.hosts.len()).expect("fewer than 2^32 hosts");
        self.link.add(&mut self.place_rng);
        let mut flags = 0;
        if self.place_rng.gen_bool(self.sc.link.nat_fraction) {
            flags |= F_NAT;
        }
        if sybil {
            flags |= F_SYBIL;
        } else if self.place_rng.gen_bool(self.sc.adversary.fraction) {
            flags |= F_ADVERSARY;
        }
        self.hosts.push(Host {
            node: None,
            id: NodeId::ZERO,
            timer_at: NONE,
            snapshot: None,
            flags,
            session: 0,
            pos: 0,
            pinholes: Vec::new(),
            online_since: 0,
        });
        if sybil {
            self.sybils.push(i);
        }
        i
    }

    /// The address host `i` has on its own interface: its public one, or behind NAT a
    /// private one (10.0.0.0/8).
    fn local_ip(&self, i: u32) -> IpAddr {
        if self.hosts[i as usize].flags & F_NAT != 0 {
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)))
        } else {
            addr_of(i).ip()
        }
    }

    fn findable(&self, i: u32) -> bool {
        let f = self.hosts[i as usize].flags;
        f & F_NAT == 0 && !(f & F_ADVERSARY != 0 && self.sc.adversary.behavior == Behavior::Drop)
    }

    fn honest(&self, i: u32) -> bool {
        self.hosts[i as usize].flags & (F_ADVERSARY | F_SYBIL) == 0
    }

    fn node_config(&self, i: u32) -> Config {
        let h = &self.hosts[i as usize];
        let mut c = self.base_config.clone();
        c.rng_seed = mix(mix(self.sc.seed, u64::from(i) + 7), u64::from(h.session));
        if h.flags & F_NAT != 0 && self.sc.link.nat_read_only {
            c.read_only = true;
        }
        if h.flags & F_SYBIL != 0
            && let Some(v) = self.eclipse_target
        {
            // Sybils sit next to the victim: its first 40 bits, the rest random.
            let mut id = v.0;
            let mut r = ChaCha8Rng::seed_from_u64(c.rng_seed);
            for b in id.iter_mut().skip(5) {
                *b = r.r#gen();
            }
            c.id = Some(NodeId(id));
        }
        c
    }

    /// Brings host `i` online: a fresh node bootstrapping from `contacts`, or (with a
    /// snapshot) the same node coming back with its old id and state.
    fn go_online(&mut self, i: u32, contacts: &[u32]) {
        let now = self.inst(self.now);
        self.hosts[i as usize].session += 1;
        let config = self.node_config(i);
        let snapshot = self.hosts[i as usize].snapshot.take();
        let returning = snapshot.is_some();
        let mut node = Box::new(match snapshot {
            Some(s) => Node::restore(config, *s, now),
            None => Node::new(config, now),
        });
        // Its own address, as a driver reads it from its interfaces: the nodes behind NAT
        // have a private one, so they find out once others tell them what they see.
        node.set_local_ips([self.local_ip(i)]);
        let addrs: Vec<SocketAddr> = contacts.iter().map(|&c| addr_of(c)).collect();
        if returning {
            node.ping_contacts(now);
            self.totals.returns += 1;
        }
        let boot = node.start_bootstrap(&addrs, now);
        let h = &mut self.hosts[i as usize];
        h.id = node.id();
        h.node = Some(node);
        h.online_since = self.now;
        h.pos = u32::try_from(self.online.len()).expect("fewer than 2^32 hosts");
        self.online.push(i);
        // The node becomes part of the truth once its bootstrap finished: before that nobody
        // knows of it, and no protocol could find it.
        if let Ok(cmd) = boot {
            self.commands
                .insert((i, cmd.0), (u32::MAX, Phase::Bootstrap));
            self.pending_boots += 1;
        }
        self.totals.joins += 1;
        if self.churn_on {
            self.schedule_leave(i);
        }
        self.flush(i);
    }

    fn schedule_leave(&mut self, i: u32) {
        let session = self.weibull.sample(&mut self.churn_rng);
        self.schedule_leave_after(i, session);
    }

    /// Schedules host `i` to leave `session` seconds from now.
    fn schedule_leave_after(&mut self, i: u32, session: f64) {
        let at = self.now.saturating_add((session * NS as f64) as u64);
        if at < self.horizon {
            let s = self.hosts[i as usize].session;
            self.push(
                at,
                EvKind::Leave {
                    host: i,
                    session: s,
                },
            );
        }
    }

    fn go_offline(&mut self, i: u32) {
        let now = self.inst(self.now);
        let Some(node) = self.hosts[i as usize].node.take() else {
            return;
        };
        add_stats(&mut self.retired, &node.stats());
        let pos = self.hosts[i as usize].pos as usize;
        self.online.swap_remove(pos);
        if let Some(&moved) = self.online.get(pos) {
            self.hosts[moved as usize].pos = pos as u32;
        }
        let id = self.hosts[i as usize].id;
        if self.findable(i) {
            self.oracle.remove(&id);
        }
        self.hosts[i as usize].timer_at = NONE;
        self.hosts[i as usize].pinholes = Vec::new();
        self.totals.departures += 1;
        // Its commands die with it.
        let cmds: Vec<(u32, u64)> = self
            .commands
            .range((i, 0)..=(i, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for key in cmds {
            if let Some((op, phase)) = self.commands.remove(&key) {
                if phase == Phase::Bootstrap {
                    self.pending_boots = self.pending_boots.saturating_sub(1);
                } else {
                    self.abort(op, phase);
                }
            }
        }
        if self.churn_rng.gen_bool(self.sc.churn.rejoin_fraction) {
            let off = exponential(&mut self.churn_rng, self.sc.churn.offline_mean_s);
            let off_ns = (off * NS as f64) as u64;
            let at = self.now + off_ns;
            // As the daemon's database would give it back: contacts answered that much
            // longer ago.
            let snapshot = node.snapshot(now).aged(Duration::from_nanos(off_ns));
            self.hosts[i as usize].snapshot = Some(Box::new(snapshot));
            self.push(at, EvKind::Join { host: i });
        } else {
            let delay = exponential(&mut self.churn_rng, self.sc.churn.arrival_delay_mean_s);
            let at = self.now + (delay * NS as f64) as u64;
            self.push(at, EvKind::Arrive);
        }
    }

    fn random_online(&mut self, honest_only: bool, not: Option<u32>) -> Option<u32> {
        for _ in 0..64 {
            if self.online.is_empty() {
                return None;
            }
            let i = self.online[self.work_rng.gen_range(0..self.online.len())];
            if (!honest_only || self.honest(i)) && Some(i) != not {
                return Some(i);
            }
        }
        None
    }

    fn contacts(&mut self, n: usize, among: usize) -> Vec<u32> {
        let among = among.min(self.online.len());
        if among == 0 {
            return Vec::new();
        }
        (0..n)
            .map(|_| self.online[self.net_rng.gen_range(0..among)])
            .collect()
    }

    // ----- the loop -----

    /// Runs events up to virtual time `until` (the clock then reads `until`), or until `stop`
    /// holds (the clock then reads the time of the event after which it held).
    fn run_until(
        &mut self,
        until: u64,
        stop: &dyn Fn(&Self) -> bool,
        progress: &mut dyn FnMut(&Progress),
    ) {
        while let Some(ev) = self.queue.peek() {
            if ev.at > until {
                self.now = self.now.max(until);
                return;
            }
            if stop(self) {
                return;
            }
            let Some(ev) = self.queue.pop() else { return };
            self.now = self.now.max(ev.at);
            self.totals.events += 1;
            if self.totals.events & 0xf_ffff == 0 {
                progress(&self.progress("running"));
            }
            self.dispatch(ev.kind);
        }
        self.now = self
            .now
            .max(until.min(self.queue.peek().map_or(until, |e| e.at)));
    }

    fn progress(&self, phase: &'static str) -> Progress {
        Progress {
            phase,
            virtual_s: self.now as f64 / NS as f64,
            online: self.online.len(),
            events: self.totals.events,
            records: self.records.len(),
        }
    }

    fn dispatch(&mut self, kind: EvKind) {
        match kind {
            EvKind::Deliver { to, from, bytes } => self.deliver(to, from, &bytes),
            EvKind::Timer { host } => {
                let now = self.inst(self.now);
                let h = &mut self.hosts[host as usize];
                if h.timer_at != self.now {
                    return; // superseded
                }
                h.timer_at = NONE;
                if let Some(node) = h.node.as_mut() {
                    if node.poll_timeout().is_some_and(|t| t <= now) {
                        node.handle_timeout(now);
                    }
                    self.flush(host);
                }
            }
            EvKind::Join { host } => {
                if self.hosts[host as usize].node.is_none() {
                    let among = if self.churn_on {
                        self.online.len()
                    } else {
                        self.wave_base
                    };
                    let contacts = if self.hosts[host as usize].snapshot.is_some() {
                        Vec::new()
                    } else {
                        self.contacts(self.sc.build.bootstrap_contacts, among)
                    };
                    self.go_online(host, &contacts);
                }
            }
            EvKind::Leave { host, session } => {
                let h = &self.hosts[host as usize];
                if h.node.is_some() && h.session == session {
                    self.go_offline(host);
                }
            }
            EvKind::Arrive => {
                let i = self.new_host(false);
                self.totals.arrivals += 1;
                let n = self.online.len();
                let contacts = self.contacts(self.sc.build.bootstrap_contacts, n);
                self.go_online(i, &contacts);
            }
            EvKind::Restore { host } => self.restore_host(host),
            EvKind::Start { op } => self.start_op(op),
            EvKind::Read { op } => self.start_read(op),
            EvKind::Partition { on, fraction_bits } => {
                self.partition = on.then_some(fraction_bits);
            }
            EvKind::Sample => {
                let t = self.now;
                self.samples
                    .push((t, self.online.len() as u64, self.oracle.len() as u64));
                let at = t + self.sc.workload.bin_s * NS;
                if at < self.horizon {
                    self.push(at, EvKind::Sample);
                }
            }
        }
    }

    fn side(&self, i: u32, fraction_bits: u64) -> bool {
        mix(self.sc.seed ^ 0x5157, u64::from(i)) < fraction_bits
    }

    fn deliver(&mut self, to: u32, from: u32, bytes: &[u8]) {
        let now_ns = self.now;
        let h = &mut self.hosts[to as usize];
        if h.node.is_none() {
            self.traffic.to_offline += 1;
            return;
        }
        if h.flags & F_NAT != 0 {
            let timeout = self.sc.link.nat_timeout_s * NS;
            let open = h
                .pinholes
                .binary_search_by_key(&from, |p| p.0)
                .ok()
                .is_some_and(|at| now_ns.saturating_sub(h.pinholes[at].1) <= timeout);
            if !open {
                self.traffic.nat_blocked += 1;
                return;
            }
        }
        self.traffic.delivered += 1;
        // Byte accounting of measured operations: responses to their queries.
        if let Some(ops) = self.running.get(&to)
            && let Ok(msg) = xorro_wire::decode(bytes)
            && matches!(msg.body, Body::Response(_) | Body::Error(_))
        {
            let key = (from, tid_key(msg.transaction_id.as_bytes()));
            for &op in ops {
                let o = &mut self.ops[op as usize];
                if o.tids.contains(&key) {
                    o.bytes += bytes.len() as u64;
                }
            }
        }
        if self.hosts[to as usize].flags & (F_ADVERSARY | F_SYBIL) != 0
            && let Ok(msg) = xorro_wire::decode(bytes)
            && let Body::Query(q) = &msg.body
            && let Some(target) = query_target(&q.kind)
        {
            if self.adv_queries.len() > 1_000_000 {
                self.adv_queries.clear();
            }
            self.adv_queries
                .insert((to, from, tid_key(msg.transaction_id.as_bytes())), target);
        }
        let now = self.inst(now_ns);
        let Some(node) = self.hosts[to as usize].node.as_mut() else {
            return;
        };
        node.handle_datagram(now, addr_of(from), bytes);
        self.flush(to);
    }

    /// Sends host `i`'s datagrams, schedules its timer, handles its events.
    fn flush(&mut self, i: u32) {
        let mut buf = std::mem::take(&mut self.buf);
        let mut out: Vec<(u32, Box<[u8]>)> = Vec::new();
        {
            let n_hosts = self.hosts.len();
            let Some(node) = self.hosts[i as usize].node.as_mut() else {
                self.buf = buf;
                return;
            };
            while let Some(to) = node.poll_transmit(&mut buf) {
                match host_of(&to) {
                    Some(j) if (j as usize) < n_hosts => {
                        out.push((j, buf.as_slice().into()));
                    }
                    _ => self.traffic.unknown_destination += 1,
                }
            }
        }
        self.buf = buf;
        for (j, bytes) in out {
            self.send(i, j, bytes);
        }
        let next = self.hosts[i as usize]
            .node
            .as_ref()
            .and_then(|n| n.poll_timeout());
        if let Some(t) = next {
            let t = self.ns(t).max(self.now);
            let h = &mut self.hosts[i as usize];
            if h.timer_at == NONE || t < h.timer_at {
                h.timer_at = t;
                self.push(t, EvKind::Timer { host: i });
            }
        }
        let mut events = Vec::new();
        if let Some(node) = self.hosts[i as usize].node.as_mut() {
            while let Some(e) = node.poll_event() {
                events.push(e);
            }
        }
        for e in events {
            self.on_event(i, e);
        }
    }

    fn send(&mut self, from: u32, to: u32, mut bytes: Box<[u8]>) {
        self.traffic.datagrams += 1;
        self.traffic.bytes += bytes.len() as u64;
        let tracked = self.running.get(&from).is_some_and(|ops| !ops.is_empty());
        // Decoded once for both counts below, and only when one of them needs it. (An
        // adversary's tampering only rewrites responses: a query's bytes stay these.)
        let query = if self.workload_traffic.is_some() || tracked {
            SentQuery::of(&bytes)
        } else {
            None
        };
        if let Some(w) = self.workload_traffic.as_mut() {
            w.datagrams += 1;
            w.bytes += bytes.len() as u64;
            if let Some(q) = &query {
                match q.class {
                    QueryClass::Ping => w.ping += 1,
                    QueryClass::FindNode => w.find_node += 1,
                    QueryClass::GetPeers => w.get_peers += 1,
                    QueryClass::Other => w.other_queries += 1,
                }
            }
        }
        let now = self.now;
        let fh = &mut self.hosts[from as usize];
        if fh.flags & F_NAT != 0 {
            match fh.pinholes.binary_search_by_key(&to, |p| p.0) {
                Ok(at) => fh.pinholes[at].1 = now,
                Err(at) => {
                    fh.pinholes.insert(at, (to, now));
                    if fh.pinholes.len() > 256 {
                        let timeout = self.sc.link.nat_timeout_s * NS;
                        fh.pinholes.retain(|p| now.saturating_sub(p.1) <= timeout);
                    }
                }
            }
        }
        if fh.flags & (F_ADVERSARY | F_SYBIL) != 0 {
            match self.tamper(from, to, &bytes) {
                Tamper::Keep => {}
                Tamper::Drop => {
                    self.traffic.tampered += 1;
                    return;
                }
                Tamper::Replace(b) => {
                    self.traffic.tampered += 1;
                    bytes = b.into();
                }
            }
        }
        if let Some(ops) = self.running.get(&from)
            && !ops.is_empty()
            && let Some(q) = query
        {
            let target = q.target;
            let key = (to, q.tid);
            let departed = self.hosts[to as usize].node.is_none();
            for &op in ops {
                let o = &mut self.ops[op as usize];
                if target.is_none_or(|t| t == o.target) {
                    if !o.asked.iter().any(|a| a.0 == to) {
                        o.departed += u32::from(departed);
                        o.asked.push((to, self.now));
                    }
                    o.bytes += bytes.len() as u64;
                    o.tids.push(key);
                    break;
                }
            }
        }
        if self.sc.link.loss > 0.0 && self.net_rng.gen_bool(self.sc.link.loss) {
            self.traffic.lost += 1;
            return;
        }
        if let Some(bits) = self.partition
            && self.side(from, bits) != self.side(to, bits)
        {
            self.traffic.partitioned += 1;
            return;
        }
        let delay = self
            .link
            .one_way_ns(from as usize, to as usize, &mut self.net_rng);
        self.push(self.now + delay, EvKind::Deliver { to, from, bytes });
    }

    fn tamper(&mut self, adv: u32, to: u32, bytes: &[u8]) -> Tamper {
        let Ok(msg) = xorro_wire::decode(bytes) else {
            return Tamper::Keep;
        };
        let Body::Response(r) = &msg.body else {
            return Tamper::Keep;
        };
        let target = self
            .adv_queries
            .remove(&(adv, to, tid_key(msg.transaction_id.as_bytes())));
        let sybil = self.hosts[adv as usize].flags & F_SYBIL != 0;
        let mut fake: Vec<NodeInfo> = Vec::new();
        if sybil {
            let (Some(t), Some(v)) = (target, self.eclipse_target) else {
                return Tamper::Keep;
            };
            if t.0[..4] != v.0[..4] {
                return Tamper::Keep;
            }
            for _ in 0..8.min(self.sybils.len()) {
                let s = self.sybils[self.work_rng.gen_range(0..self.sybils.len())];
                fake.push(NodeInfo::new(self.hosts[s as usize].id, addr_of(s)));
            }
        } else {
            match self.sc.adversary.behavior {
                Behavior::Drop => return Tamper::Drop,
                Behavior::WrongNodes => {
                    for _ in 0..8 {
                        let s = self.online[self.work_rng.gen_range(0..self.online.len())];
                        fake.push(NodeInfo::new(self.hosts[s as usize].id, addr_of(s)));
                    }
                }
                Behavior::SpoofIds => {
                    let Some(t) = target else {
                        return Tamper::Keep;
                    };
                    for _ in 0..8 {
                        let mut id = t.0;
                        for b in id.iter_mut().skip(16) {
                            *b = self.work_rng.r#gen();
                        }
                        let s = self.work_rng.gen_range(0..self.hosts.len()) as u32;
                        fake.push(NodeInfo::new(NodeId(id), addr_of(s)));
                    }
                }
            }
        }
        fake.dedup_by_key(|n| n.addr);
        let mut r2 = r.clone();
        r2.nodes = Some(Nodes::from_slice(&fake));
        r2.nodes6 = None;
        r2.values = None;
        r2.value = None;
        r2.key = None;
        r2.signature = None;
        r2.seq = None;
        let msg2 = Message {
            body: Body::Response(r2),
            ..msg.clone()
        };
        let mut out = Vec::new();
        match xorro_wire::encode(&msg2, &mut out) {
            Ok(()) => Tamper::Replace(out),
            Err(_) => Tamper::Keep,
        }
    }

    // ----- build -----

    /// Builds the network in waves (or, with [`BuildMode::Restore`] and [`BuildMode::Warm`],
    /// restores every node at once), then lets it settle.
    pub fn build(&mut self, progress: &mut dyn FnMut(&Progress)) {
        if self.sc.build.mode != BuildMode::Protocol {
            self.build_restore(progress);
            return;
        }
        let n = self.sc.nodes;
        let sybils = self.sc.adversary.eclipse_sybils.min(n.saturating_sub(1));
        if sybils > 0 {
            self.eclipse_target = Some(NodeId(self.work_rng.r#gen()));
        }
        let first = self.new_host(false);
        self.wave_base = 0;
        self.go_online(first, &[]);
        let mut created = 1usize;
        while created < n {
            self.wave_base = self.online.len();
            let wave = ((created as f64 * self.sc.build.wave_growth).ceil() as usize)
                .clamp(1, self.sc.build.wave_max)
                .min(n - created);
            let start = self.now;
            let spread = self.sc.build.wave_spread_ms * 1_000_000;
            for k in 0..wave {
                // The eclipse sybils are the last hosts created.
                let sybil = created + k >= n - sybils;
                let i = self.new_host(sybil);
                let at = start
                    + if spread > 0 {
                        self.net_rng.gen_range(0..spread)
                    } else {
                        0
                    };
                self.push(at, EvKind::Join { host: i });
            }
            created += wave;
            let cap = start + spread + 120 * NS;
            let joined_by = start + spread;
            // The wave ends at `joined_by` or at the event that finishes its last bootstrap,
            // whichever is later: never at whatever event comes next (an idle timer, say), so
            // that the next wave's start depends on what the nodes do, not on how often they
            // ask to be woken.
            self.run_until(joined_by, &|_| false, progress);
            self.run_until(cap, &|s: &Self| s.pending_boots == 0, progress);
            progress(&self.progress("wave"));
        }
        self.totals.build_virtual_ns = self.now;
        self.settle(progress);
    }

    /// [`BuildMode::Restore`] and [`BuildMode::Warm`]: every node is created (the engine
    /// picks its id), then restored through [`Node::restore`] at a random instant of the
    /// first `wave_spread_ms` with contacts drawn from the oracle ([`EvKind::Restore`]);
    /// then the network settles.
    fn build_restore(&mut self, progress: &mut dyn FnMut(&Progress)) {
        let n = self.sc.nodes;
        let now = self.inst(self.now);
        // Ids and secrets: a fresh node's snapshot, without contacts yet.
        for _ in 0..n {
            let i = self.new_host(false);
            self.hosts[i as usize].session += 1;
            let fresh = Node::new(self.node_config(i), now);
            let h = &mut self.hosts[i as usize];
            h.id = fresh.id();
            h.snapshot = Some(Box::new(fresh.snapshot(now)));
            if self.findable(i) {
                self.oracle.insert(self.hosts[i as usize].id, i);
            }
            let spread = self.sc.build.wave_spread_ms * 1_000_000;
            let at = self.now
                + if spread > 0 {
                    self.net_rng.gen_range(0..spread)
                } else {
                    0
                };
            self.push(at, EvKind::Restore { host: i });
        }
        self.restore_ids = self.oracle.iter().collect();
        let joined_by = self.now + self.sc.build.wave_spread_ms * 1_000_000;
        self.run_until(joined_by, &|_| false, progress);
        self.restore_ids = Vec::new();
        progress(&self.progress("restored"));
        self.totals.build_virtual_ns = self.now;
        self.settle(progress);
    }

    /// Restores host `i` from its snapshot with contacts drawn from the oracle: as a
    /// restarting node ([`BuildMode::Restore`]) or as one that has been up a while
    /// ([`BuildMode::Warm`]: contacts that answered just now, with their links' RTTs).
    fn restore_host(&mut self, i: u32) {
        let now = self.inst(self.now);
        let Some(mut snapshot) = self.hosts[i as usize].snapshot.take() else {
            return;
        };
        let warm = self.sc.build.mode == BuildMode::Warm;
        let per_bucket = self.sc.build.restore_contacts_per_bucket;
        let sorted = &self.restore_ids;
        let link = &self.link;
        let rtt_to = |j: usize| link.rtt_us(i as usize, sorted[j].1 as usize);
        snapshot.contacts = converged_contacts(
            sorted,
            &snapshot.id,
            &self.base_config.routing,
            (per_bucket, self.sc.build.warm_fastest_of.max(1)),
            &rtt_to,
            &mut self.net_rng,
        )
        .into_iter()
        .map(|j| {
            let (id, host) = sorted[j];
            SavedContact {
                node: NodeInfo::new(id, addr_of(host)),
                rtt: warm.then(|| Duration::from_micros(link.rtt_us(i as usize, host as usize))),
                answered_ago: warm.then_some(Duration::ZERO),
            }
        })
        .collect();
        let mut node = Box::new(Node::restore(self.node_config(i), *snapshot, now));
        node.set_local_ips([self.local_ip(i)]);
        if !warm {
            // What the daemon does with a saved table (xorro-node's driver): ping every
            // contact, then bootstrap from the table alone.
            node.ping_contacts(now);
            let _ = node.start_bootstrap(&[], now);
        }
        let h = &mut self.hosts[i as usize];
        h.node = Some(node);
        h.online_since = self.now;
        h.pos = u32::try_from(self.online.len()).expect("fewer than 2^32 hosts");
        self.online.push(i);
        self.totals.joins += 1;
        self.flush(i);
    }

    /// Starts churn, once, if the scenario has it: every online node gets what is left of
    /// its session ([`ChurnStart`]); nodes that join from now on get whole sessions.
    fn start_churn(&mut self) {
        if !self.sc.churn.enabled || self.churn_on {
            return;
        }
        self.churn_on = true;
        let hosts: Vec<u32> = self.online.clone();
        for i in hosts {
            let session = match self.sc.churn.start {
                ChurnStart::Equilibrium => self.weibull.sample_residual(&mut self.churn_rng),
                ChurnStart::Fresh => self.weibull.sample(&mut self.churn_rng),
            };
            self.schedule_leave_after(i, session);
        }
    }

    /// The settle after the build: maintenance runs for `build.settle_s`, under churn when
    /// `churn.during_settle`.
    fn settle(&mut self, progress: &mut dyn FnMut(&Progress)) {
        if self.sc.churn.during_settle {
            self.start_churn();
        }
        let settle = self.now + self.sc.build.settle_s * NS;
        self.run_until(settle, &|_| false, progress);
        progress(&self.progress("built"));
    }

    // ----- workload -----

    /// Runs the workload (with churn and partitions) on the built network.
    pub fn workload(&mut self, progress: &mut dyn FnMut(&Progress)) {
        let w = self.sc.workload.clone();
        let t0 = self.now;
        self.workload_start = t0;
        self.workload_traffic = Some(WorkloadTraffic::default());
        let drain = 90 * NS;
        let end = t0 + w.duration_s * NS + 2 * drain;
        self.horizon = end;
        let eclipses = if self.eclipse_target.is_some() {
            (w.announces / 4).max(10)
        } else {
            0
        };
        let mut kinds = Vec::new();
        kinds.extend(std::iter::repeat_n(OpKind::Lookup, w.lookups));
        kinds.extend(std::iter::repeat_n(OpKind::Announce, w.announces));
        kinds.extend(std::iter::repeat_n(OpKind::Put, w.puts));
        kinds.extend(std::iter::repeat_n(OpKind::Eclipse, eclipses));
        for kind in kinds {
            let op = self.ops.len() as u32;
            let target = match kind {
                OpKind::Eclipse => self.eclipse_target.unwrap_or(NodeId::ZERO),
                _ => NodeId(self.work_rng.r#gen()),
            };
            let value = if kind == OpKind::Put {
                let s = format!("xorro-sim item {op} {}", self.work_rng.r#gen::<u32>());
                format!("{}:{s}", s.len()).into_bytes()
            } else {
                Vec::new()
            };
            let target = match RawValue::new(&value) {
                Ok(raw) if kind == OpKind::Put => xorro_wire::bep44::immutable_target(&raw),
                _ => target,
            };
            self.ops.push(Op {
                kind,
                target,
                value,
                writer: None,
                runner: None,
                started: 0,
                first_found: None,
                bytes: 0,
                tids: Vec::new(),
                asked: Vec::new(),
                departed: 0,
            });
            let at = t0 + self.work_rng.gen_range(0..(w.duration_s * NS).max(1));
            self.push(at, EvKind::Start { op });
        }
        self.start_churn();
        for p in self.sc.link.partitions.clone() {
            let bits = (p.fraction * u64::MAX as f64) as u64;
            self.push(
                t0 + p.start_s * NS,
                EvKind::Partition {
                    on: true,
                    fraction_bits: bits,
                },
            );
            self.push(
                t0 + (p.start_s + p.duration_s) * NS,
                EvKind::Partition {
                    on: false,
                    fraction_bits: bits,
                },
            );
        }
        self.push(t0, EvKind::Sample);
        let total_ops = self.ops.len();
        // As for the waves: the workload ends at the end of its duration or at the event that
        // finishes its last operation, whichever is later.
        self.run_until(t0 + w.duration_s * NS, &|_| false, progress);
        self.run_until(end, &|s: &Self| s.finished_ops() >= total_ops, progress);
        // Whatever is still running is reported as unfinished.
        let left: Vec<(u32, Phase)> = self.commands.values().copied().collect();
        for (op, phase) in left {
            if phase != Phase::Bootstrap {
                self.abort(op, phase);
            }
        }
        self.totals.virtual_ns = self.now;
        progress(&self.progress("done"));
    }

    fn finished_ops(&self) -> usize {
        self.totals.ops_done as usize
    }

    fn start_op(&mut self, op: u32) {
        let Some(host) = self.random_online(true, None) else {
            self.record_unstarted(op, false);
            return;
        };
        let now = self.inst(self.now);
        let o = &self.ops[op as usize];
        let target = o.target;
        let kind = o.kind;
        let value = o.value.clone();
        let Some(node) = self.hosts[host as usize].node.as_mut() else {
            return;
        };
        let res = match kind {
            OpKind::Lookup => node.start_get_peers(InfoHash::from(target), false, false, now),
            OpKind::Announce | OpKind::Eclipse => {
                node.start_announce(InfoHash::from(target), Some(PORT), false, now)
            }
            OpKind::Put => node.start_put_item(PutRequest::Immutable { value }, now),
        };
        let phase = if kind == OpKind::Lookup {
            Phase::Read
        } else {
            Phase::Write
        };
        self.begin(op, host, phase, res.map(|c| c.0).ok());
        if phase == Phase::Write {
            self.ops[op as usize].writer = Some(host);
        }
        self.flush(host);
    }

    fn start_read(&mut self, op: u32) {
        let writer = self.ops[op as usize].writer;
        let Some(host) = self.random_online(true, writer) else {
            self.record_unstarted(op, true);
            return;
        };
        let now = self.inst(self.now);
        let o = &self.ops[op as usize];
        let (target, kind) = (o.target, o.kind);
        let Some(node) = self.hosts[host as usize].node.as_mut() else {
            return;
        };
        let res = match kind {
            OpKind::Put => node.start_get_item(ItemTarget::Immutable(target), now),
            _ => node.start_get_peers(InfoHash::from(target), false, false, now),
        };
        self.begin(op, host, Phase::Read, res.map(|c| c.0).ok());
        self.flush(host);
    }

    fn begin(&mut self, op: u32, host: u32, phase: Phase, cmd: Option<u64>) {
        let o = &mut self.ops[op as usize];
        o.runner = Some(host);
        o.started = self.now;
        o.first_found = None;
        o.bytes = 0;
        o.tids.clear();
        o.asked.clear();
        o.departed = 0;
        match cmd {
            Some(c) => {
                self.commands.insert((host, c), (op, phase));
                self.running.entry(host).or_default().push(op);
            }
            None => self.abort(op, phase),
        }
    }

    fn end_running(&mut self, op: u32) {
        if let Some(host) = self.ops[op as usize].runner
            && let Some(v) = self.running.get_mut(&host)
        {
            v.retain(|&o| o != op);
            if v.is_empty() {
                self.running.remove(&host);
            }
        }
    }

    fn record_unstarted(&mut self, op: u32, read: bool) {
        let kind = self.ops[op as usize].kind;
        self.records.push(OpRecord {
            kind,
            read: read || kind == OpKind::Lookup,
            start_ns: self.now - self.workload_start,
            aborted: true,
            ..OpRecord::default()
        });
        self.totals.ops_done += 1;
    }

    fn abort(&mut self, op: u32, phase: Phase) {
        if op == u32::MAX {
            return;
        }
        self.end_running(op);
        let o = &self.ops[op as usize];
        self.records.push(OpRecord {
            kind: o.kind,
            read: phase == Phase::Read,
            start_ns: o.started.saturating_sub(self.workload_start),
            departed: o.departed,
            aborted: true,
            ..OpRecord::default()
        });
        self.commands.retain(|_, v| v.0 != op);
        if phase == Phase::Read || o.kind == OpKind::Lookup {
            self.totals.ops_done += 1;
        } else {
            // A write that died still gets its read.
            let at = self.now + self.sc.workload.read_delay_ms * 1_000_000;
            self.push(at, EvKind::Read { op });
        }
    }

    fn on_event(&mut self, i: u32, e: Event) {
        match e {
            Event::CommandFinished { id, outcome, stats } => {
                let Some((op, phase)) = self.commands.remove(&(i, id.0)) else {
                    return;
                };
                if phase == Phase::Bootstrap {
                    self.pending_boots = self.pending_boots.saturating_sub(1);
                    if matches!(outcome, Outcome::Failed(_)) {
                        self.boot_failed += 1;
                    } else {
                        self.boot_latencies.push(stats.duration.as_nanos() as u64);
                        if self.findable(i) {
                            self.oracle.insert(self.hosts[i as usize].id, i);
                        }
                    }
                    return;
                }
                self.finish(op, i, phase, outcome, stats);
            }
            Event::PeersFound { id, peers } => {
                if let Some(&(op, Phase::Read)) = self.commands.get(&(i, id.0))
                    && let Some(w) = self.ops[op as usize].writer
                    && peers.contains(&addr_of(w))
                {
                    let o = &mut self.ops[op as usize];
                    o.first_found.get_or_insert(self.now);
                }
            }
            Event::ItemFound { id, item, .. } => {
                if let Some(&(op, Phase::Read)) = self.commands.get(&(i, id.0)) {
                    let o = &mut self.ops[op as usize];
                    if item.value() == o.value.as_slice() {
                        o.first_found.get_or_insert(self.now);
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, op: u32, host: u32, phase: Phase, outcome: Outcome, stats: LookupStats) {
        self.end_running(op);
        let o = &self.ops[op as usize];
        let k = self.base_config.lookup_closest;
        let mut rec = OpRecord {
            kind: o.kind,
            read: phase == Phase::Read,
            start_ns: o.started.saturating_sub(self.workload_start),
            latency_ns: stats.duration.as_nanos() as u64,
            rounds: stats.rounds,
            messages: stats.messages_sent,
            timeouts: stats.timeouts,
            bytes: o.bytes,
            first_found_ns: o.first_found.map(|t| t - o.started),
            departed: o.departed,
            answered: !matches!(outcome, Outcome::Failed(_)),
            ..OpRecord::default()
        };
        let asker = self.hosts[host as usize].id;
        let (mut missed, mut missed_among) = (Vec::new(), Vec::new());
        match &outcome {
            Outcome::Peers { peers, closest, .. } => {
                let truth = self.oracle.closest(&o.target, k, Some(&asker));
                let got: Vec<NodeId> = closest.iter().map(|n| n.id).collect();
                rec.closest_truth = truth.len() as u8;
                rec.closest_found = truth.iter().filter(|t| got.contains(t)).count() as u8;
                // Each true closest node's RTT from the asker, and when this op first asked
                // it: the floor, and when all were asked, the last ask and the earliest end.
                let reach: Vec<(u64, Option<u64>)> = truth
                    .iter()
                    .filter_map(|t| self.oracle.host(t))
                    .map(|j| {
                        let rtt = self.link.rtt_us(host as usize, j as usize) * 1000;
                        let at = o.asked.iter().find(|a| a.0 == j);
                        (rtt, at.map(|a| a.1.saturating_sub(o.started)))
                    })
                    .collect();
                rec.rtt_floor_ns = reach.iter().map(|r| r.0).max();
                if reach.iter().all(|r| r.1.is_some()) {
                    rec.closest_asked_ns = reach.iter().filter_map(|r| r.1).max();
                    rec.closest_bound_ns = reach.iter().filter_map(|r| Some(r.1? + r.0)).max();
                }
                if o.kind == OpKind::Lookup {
                    missed = truth.iter().filter(|t| !got.contains(t)).copied().collect();
                    missed_among = truth;
                }
                if let Some(w) = o.writer {
                    rec.target_found = Some(peers.contains(&addr_of(w)));
                }
            }
            Outcome::Item(item) => {
                rec.target_found = Some(item.as_ref().is_some_and(|it| it.value() == o.value));
            }
            Outcome::Stored { stored_at, .. } => rec.stored_at = stored_at.len() as u32,
            _ => {
                if o.writer.is_some() && phase == Phase::Read {
                    rec.target_found = Some(false);
                }
            }
        }
        for t in &missed {
            self.count_miss(host, t, &missed_among);
        }
        if !missed.is_empty() {
            // The true closest nodes these lookups did find, for comparison.
            for t in missed_among.iter().filter(|t| !missed.contains(t)) {
                if let Some(j) = self.oracle.host(t) {
                    let rtt_ms = self.link.rtt_us(host as usize, j as usize) / 1000;
                    self.misses.found_alongside += 1;
                    self.misses.found_rtt_over_300ms += u64::from(rtt_ms > 300);
                }
            }
        }
        self.records.push(rec);
        if phase == Phase::Write {
            let at = self.now + self.sc.workload.read_delay_ms * 1_000_000;
            self.push(at, EvKind::Read { op });
        } else {
            self.totals.ops_done += 1;
        }
    }

    /// Classifies a true closest node `missed` that a lookup did not return.
    fn count_miss(&mut self, asker: u32, missed: &NodeId, truth: &[NodeId]) {
        let Some(m) = self.oracle.host(missed) else {
            return;
        };
        let h = &self.hosts[m as usize];
        let age = self.now.saturating_sub(h.online_since);
        let returned = h.session > 1;
        let arrived = m as usize >= self.sc.nodes;
        let addr = addr_of(m);
        let known = truth.iter().filter(|t| *t != missed).any(|t| {
            self.oracle
                .host(t)
                .and_then(|j| self.hosts[j as usize].node.as_ref())
                .is_some_and(|n| n.routing_table(xorro_wire::Family::V4).contains(addr))
        });
        let rtt_ms = self.link.rtt_us(asker as usize, m as usize) / 1000;
        let c = &mut self.misses;
        c.missed += 1;
        c.rtt_to_asker_ms_sum += rtt_ms;
        c.rtt_to_asker_over_300ms += u64::from(rtt_ms > 300);
        match age {
            a if a < 10 * NS => c.online_under_10s += 1,
            a if a <= 60 * NS => c.online_10_to_60s += 1,
            _ => c.online_over_60s += 1,
        }
        c.returned += u64::from(returned);
        c.arrived += u64::from(arrived);
        c.known_to_no_neighbour += u64::from(!known);
    }

    /// What the true closest nodes that lookups missed were.
    pub fn misses(&self) -> &crate::report::MissCounts {
        &self.misses
    }

    // ----- results -----

    /// Records of every operation (in the order they ended).
    pub fn records(&self) -> &[OpRecord] {
        &self.records
    }

    /// Bootstrap durations (ns) of the nodes that joined, and how many failed.
    pub fn bootstraps(&self) -> (&[u64], u64) {
        (&self.boot_latencies, self.boot_failed)
    }

    /// Counters of the network.
    pub fn traffic(&self) -> &TrafficCounts {
        &self.traffic
    }

    /// Counters of the run.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// (time ns, online hosts, findable hosts) every `bin_s` during the workload.
    pub fn samples(&self) -> &[(u64, u64, u64)] {
        &self.samples
    }

    /// Datagrams since the workload began, by kind, and the departed nodes the measured
    /// lookups asked.
    pub fn workload_traffic(&self) -> WorkloadTraffic {
        let mut w = self.workload_traffic.clone().unwrap_or_default();
        w.span_ns = self.now.saturating_sub(self.workload_start);
        for r in self.records.iter().filter(|r| r.kind == OpKind::Lookup) {
            w.lookup_departed_asked += u64::from(r.departed);
            w.lookups_meeting_departed += u64::from(r.departed > 0);
        }
        w
    }

    /// Virtual time when the workload began (ns).
    pub fn workload_start(&self) -> u64 {
        self.workload_start
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.sc
    }

    /// The engine counters summed over every node (online now or gone).
    pub fn engine_stats(&self) -> xorro_dht::Stats {
        let mut s = self.retired;
        for h in &self.hosts {
            if let Some(n) = &h.node {
                add_stats(&mut s, &n.stats());
            }
        }
        s
    }

    /// Hosts created, online now, NAT'd, adversarial.
    pub fn host_counts(&self) -> (usize, usize, usize, usize) {
        let nat = self.hosts.iter().filter(|h| h.flags & F_NAT != 0).count();
        let adv = self
            .hosts
            .iter()
            .filter(|h| h.flags & (F_ADVERSARY | F_SYBIL) != 0)
            .count();
        (self.hosts.len(), self.online.len(), nat, adv)
    }

    /// Mean engine memory per online node, by part, and the simulator's own bytes per host.
    pub fn memory_means(&self) -> crate::report::NodeMemory {
        let mut sum = xorro_dht::MemoryUsage::default();
        let mut n = 0usize;
        for h in &self.hosts {
            if let Some(node) = &h.node {
                sum += node.memory_usage();
                n += 1;
            }
        }
        let d = n.max(1) as f64;
        let hosts = self.hosts.len().max(1) as f64;
        let pinholes: usize = self
            .hosts
            .iter()
            .map(|h| h.pinholes.capacity() * std::mem::size_of::<(u32, u64)>())
            .sum();
        let per_host = (self.hosts.capacity() * std::mem::size_of::<Host>()
            + self.online.capacity() * std::mem::size_of::<u32>()
            + pinholes) as f64
            / hosts
            + self.link.bytes_per_host()
            + self.oracle.bytes_per_entry();
        crate::report::NodeMemory {
            node: sum.node as f64 / d,
            routing: sum.routing as f64 / d,
            limiter: sum.limiter as f64 / d,
            stores: sum.stores as f64 / d,
            requests: sum.requests as f64 / d,
            lookups: sum.lookups as f64 / d,
            buffers: sum.buffers as f64 / d,
            engine_total: sum.total() as f64 / d,
            simulator: per_host,
        }
    }

    /// The RTT of the link from each online node to each member of its IPv4 routing table
    /// at the end (ms): all together, against the RTT of random pairs
    /// (`link.rtt_median_ms`), and depth by depth: for each count of leading bits a
    /// member's id shares with its node's (grouped from
    /// [`DEPTH_GROUPED`](crate::report::DEPTH_GROUPED) on), the mean members per online
    /// node and their links' RTTs. Depths no node has a member at are left out.
    pub fn member_rtts(&self) -> (crate::report::Percentiles, Vec<crate::report::DepthMembers>) {
        let link = &self.link;
        let groups = crate::report::DEPTH_GROUPED as usize + 1;
        let mut rtts: Vec<Vec<f64>> = vec![Vec::new(); groups];
        let mut online = 0usize;
        for (i, h) in self.hosts.iter().enumerate() {
            let Some(node) = &h.node else { continue };
            online += 1;
            let own = node.id();
            for e in node.routing_table(xorro_wire::Family::V4).iter() {
                let Some(j) = host_of(&e.addr()).filter(|&j| (j as usize) < link.len()) else {
                    continue;
                };
                let depth = (own.distance(&e.node().id).leading_zeros() as usize).min(groups - 1);
                rtts[depth].push(link.rtt_us(i, j as usize) as f64 / 1000.0);
            }
        }
        let all = crate::report::Percentiles::of(rtts.iter().flatten().copied());
        let nodes = online.max(1) as f64;
        let by_depth = rtts
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(depth, v)| crate::report::DepthMembers {
                depth: depth as u32,
                per_node: (v.len() as f64 / nodes * 1000.0).round() / 1000.0,
                rtt_ms: crate::report::Percentiles::of(v),
            })
            .collect();
        (all, by_depth)
    }

    /// Mean routing-table members, replacement-cache entries, buckets, and stored peers
    /// per online node.
    pub fn table_means(&self) -> (f64, f64, f64, f64) {
        let (mut m, mut c, mut b, mut p, mut n) = (0usize, 0usize, 0usize, 0usize, 0usize);
        for h in &self.hosts {
            if let Some(node) = &h.node {
                let t = node.routing_table(xorro_wire::Family::V4);
                m += t.len();
                c += t.cached_len();
                b += t.bucket_count();
                p += node.peer_store().peer_count();
                n += 1;
            }
        }
        let d = n.max(1) as f64;
        (m as f64 / d, c as f64 / d, b as f64 / d, p as f64 / d)
    }
}

/// Positions in `sorted` (every findable node, by id) of the contacts a converged bootstrap
/// would give the node `own`: for each bucket depth (ids sharing exactly `b` leading bits with
/// `own`, one contiguous range of `sorted`), `per_bucket` random nodes of that range (at most
/// what the bucket holds: the wide sizes for the farthest buckets, k after), down to the last
/// non-empty depth. With `fastest_of` over 1, each bucket's nodes are the fastest (`rtt_to`)
/// of `fastest_of` times as many random candidates, the fastest of each slot first (see
/// [`fastest_by_slot`]).
fn converged_contacts(
    sorted: &[(NodeId, u32)],
    own: &NodeId,
    routing: &RoutingConfig,
    (per_bucket, fastest_of): (usize, usize),
    rtt_to: &dyn Fn(usize) -> u64,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let mut out = Vec::new();
    let mut ranges = Vec::new();
    for b in 0..MAX_BUCKETS {
        // Ids sharing at least b bits: [lo, hi]; exactly b: those whose bit b differs.
        let (lo, hi) = prefix_bounds(own, b + 1, true);
        let (start, end) = (
            sorted.partition_point(|(id, _)| *id < lo),
            sorted.partition_point(|(id, _)| *id <= hi),
        );
        let cap = routing
            .bucket_sizes_far
            .get(b)
            .copied()
            .unwrap_or(routing.bucket_size)
            .min(per_bucket);
        ranges.push((start, end, cap));
        // Nothing left that shares more bits with us than b (but ourselves).
        let (lo, hi) = prefix_bounds(own, b + 1, false);
        let deeper = sorted.partition_point(|(id, _)| *id <= hi)
            - sorted.partition_point(|(id, _)| *id < lo);
        if deeper <= usize::from(sorted.binary_search_by(|(id, _)| id.cmp(own)).is_ok()) {
            break;
        }
    }
    // The engine's near buckets keep their members whatever their speed.
    let far = ranges.len().saturating_sub(routing.near_buckets.max(1));
    for (b, (start, end, cap)) in ranges.into_iter().enumerate() {
        let count = end - start;
        if count == 0 {
            continue;
        }
        let take = cap.min(count);
        let drawn = if b < far {
            take.saturating_mul(fastest_of).min(count)
        } else {
            take
        };
        let picks = rand::seq::index::sample(rng, count, drawn)
            .into_iter()
            .map(|k| start + k);
        if drawn == take {
            out.extend(picks);
        } else {
            let candidates: Vec<usize> = picks.collect();
            out.extend(fastest_by_slot(sorted, b, &candidates, take, rtt_to));
        }
    }
    out
}

/// `take` of `candidates` (positions in `sorted` of ids sharing exactly `b` bits with ours):
/// the fastest of each slot ([`bucket_slot`], as the engine's `prefer_low_rtt` spreads a full
/// bucket), then the fastest of the rest.
fn fastest_by_slot(
    sorted: &[(NodeId, u32)],
    b: usize,
    candidates: &[usize],
    take: usize,
    rtt_to: &dyn Fn(usize) -> u64,
) -> Vec<usize> {
    let slot = |j: usize| bucket_slot(&sorted[j].0, b, take);
    let mut by_speed: Vec<(u64, usize)> = candidates.iter().map(|&j| (rtt_to(j), j)).collect();
    by_speed.sort_unstable();
    let mut seen = vec![false; take.next_power_of_two()];
    let mut first = Vec::with_capacity(take);
    let mut rest = Vec::new();
    for &(_, j) in &by_speed {
        let s = slot(j);
        if seen[s] {
            rest.push(j);
        } else {
            seen[s] = true;
            first.push(j);
        }
    }
    // At most one a slot, and there are no more slots than places.
    let more = take - first.len();
    first.extend(rest.into_iter().take(more));
    first
}

/// The smallest and largest ids whose first `bits` bits are `own`'s, with the last of those
/// bits flipped when `flip_last`.
fn prefix_bounds(own: &NodeId, bits: usize, flip_last: bool) -> (NodeId, NodeId) {
    let mut lo = [0u8; xorro_wire::ID_LEN];
    let mut hi = [0xffu8; xorro_wire::ID_LEN];
    for bit in 0..bits {
        let mask = 0x80u8 >> (bit % 8);
        let mut set = own.0[bit / 8] & mask != 0;
        if flip_last && bit + 1 == bits {
            set = !set;
        }
        if set {
            lo[bit / 8] |= mask;
        } else {
            hi[bit / 8] &= !mask;
        }
    }
    (NodeId(lo), NodeId(hi))
}

enum Tamper {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

/// What the simulator's counts need of a query it carries: its kind, the id its lookup is
/// after (announce_peer's info-hash included; none for a put), its transaction id key.
#[derive(Debug, Clone, Copy)]
struct SentQuery {
    class: QueryClass,
    target: Option<NodeId>,
    tid: u64,
}

/// Query kinds counted apart in the workload's traffic.
#[derive(Debug, Clone, Copy)]
enum QueryClass {
    Ping,
    FindNode,
    GetPeers,
    Other,
}

impl SentQuery {
    /// `None` for anything but a decodable query.
    fn of(bytes: &[u8]) -> Option<Self> {
        let msg = xorro_wire::decode(bytes).ok()?;
        let Body::Query(q) = &msg.body else {
            return None;
        };
        let class = match q.kind {
            QueryKind::Ping => QueryClass::Ping,
            QueryKind::FindNode { .. } => QueryClass::FindNode,
            QueryKind::GetPeers { .. } => QueryClass::GetPeers,
            _ => QueryClass::Other,
        };
        let target = query_target(&q.kind).or(match &q.kind {
            QueryKind::AnnouncePeer { info_hash, .. } => Some(NodeId::from(*info_hash)),
            _ => None,
        });
        Some(SentQuery {
            class,
            target,
            tid: tid_key(msg.transaction_id.as_bytes()),
        })
    }
}

fn query_target(kind: &QueryKind<'_>) -> Option<NodeId> {
    match kind {
        QueryKind::FindNode { target, .. }
        | QueryKind::Get { target, .. }
        | QueryKind::SampleInfohashes { target, .. } => Some(*target),
        QueryKind::GetPeers { info_hash, .. } => Some(NodeId::from(*info_hash)),
        _ => None,
    }
}

fn add_stats(to: &mut xorro_dht::Stats, s: &xorro_dht::Stats) {
    to.datagrams_in += s.datagrams_in;
    to.datagrams_out += s.datagrams_out;
    to.responses_in += s.responses_in;
    to.errors_in += s.errors_in;
    to.errors_out += s.errors_out;
    to.timeouts += s.timeouts;
    to.lookups_started += s.lookups_started;
    to.lookups_finished += s.lookups_finished;
    to.rebootstraps += s.rebootstraps;
    to.late_answers += s.late_answers;
    to.late_silences += s.late_silences;
    to.unreachable_spells += s.unreachable_spells;
    let (d, e) = (&mut to.drops, &s.drops);
    d.malformed += e.malformed;
    d.rate_limited += e.rate_limited;
    d.unexpected_response += e.unexpected_response;
    d.read_only += e.read_only;
    d.transmit_queue_full += e.transmit_queue_full;
    d.outgoing_budget += e.outgoing_budget;
    d.events += e.events;
    d.from_self += e.from_self;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue pops in the order of a sort by (time, tie, sequence), whatever the order of
    /// pushes and pops in between: same-instant timers last and by host, the rest by sequence.
    #[test]
    fn event_queue_pops_in_time_tie_sequence_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut queue = EventQueue::default();
        let mut model: Vec<(u64, u64, u64)> = Vec::new();
        let mut seq = 0;
        for round in 0..2_000 {
            for _ in 0..rng.gen_range(0..6) {
                seq += 1;
                // Few distinct times, so that ties are common.
                let at = rng.gen_range(round..round + 20);
                let kind = if rng.gen_bool(0.5) {
                    EvKind::Timer {
                        host: rng.gen_range(0..50),
                    }
                } else {
                    EvKind::Join {
                        host: rng.gen_range(0..50),
                    }
                };
                let ev = Ev { at, seq, kind };
                model.push(EventQueue::key(&ev));
                queue.push(ev);
            }
            for _ in 0..rng.gen_range(0..5) {
                model.sort_unstable();
                let want = (!model.is_empty()).then(|| model.remove(0));
                assert_eq!(queue.peek().map(EventQueue::key), want);
                assert_eq!(queue.pop().as_ref().map(EventQueue::key), want);
            }
        }
        model.sort_unstable();
        for want in model {
            assert_eq!(queue.pop().as_ref().map(EventQueue::key), Some(want));
        }
        assert!(queue.pop().is_none() && queue.peek().is_none());
    }
}
