//! An in-memory network of [`Node`]s in virtual time, for tests and examples.
//!
//! One event queue delivers datagrams after a configurable delay with random loss, and fires
//! each node's timer at its [`Node::poll_timeout`]. Items of the same instant run datagrams
//! first, in the order they were sent, then timers by node: when a node asks to be woken
//! (and so where its timer entries fall among the others) does not change the run. Everything
//! derives from one seed, so a run is reproducible: a failing test prints its seed. Nodes
//! live at `10.x.y.z:6881` (a private range: exempt from BEP 42 enforcement). The cluster also
//! knows the truth — every live node's id — so tests can compare lookups with the true
//! closest nodes.
//!
//! This is the harness of the crate's scenario tests; the simulator (`xorro-sim`) is the
//! large-scale, link-model-rich version of the same idea.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use xorro_wire::NodeId;

use crate::{CommandId, Config, Event, LookupStats, Node, Outcome};

/// How datagrams travel between nodes.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// One-way delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..jitter`.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(30),
            loss: 0.0,
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// Deliver `bytes` from `from` to node `to`.
    Datagram {
        to: usize,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// Fire node `node`'s timer.
    Timer { node: usize },
}

impl Due {
    /// Order among items of the same instant: timers after datagrams, by node. A timer entry's
    /// sequence number says when it was queued, which depends on how often its node asks to
    /// be woken, not on what the node does.
    fn tie(&self) -> u64 {
        match self {
            Due::Datagram { .. } => 0,
            Due::Timer { node } => 1 + *node as u64,
        }
    }
}

/// A virtual network of nodes.
#[derive(Debug)]
pub struct Cluster {
    seed: u64,
    start: Instant,
    now: Instant,
    seq: u64,
    link: Link,
    rng: ChaCha12Rng,
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
    alive: Vec<bool>,
    /// Extra one-way delay of every datagram from or to each node (a slow access link).
    access: Vec<Duration>,
    by_addr: HashMap<SocketAddr, usize>,
    /// (time, [`Due::tie`], sequence, item), earliest first.
    queue: BinaryHeap<Reverse<(Instant, u64, u64, Due)>>,
    events: Vec<Vec<Event>>,
    buf: Vec<u8>,
    /// Datagrams delivered so far.
    pub delivered: u64,
    drop_filter: Option<DropFilter>,
}

/// A test's choice of datagrams to lose: `(from, to, bytes)` → true to drop.
type DropFn = Box<dyn FnMut(SocketAddr, SocketAddr, &[u8]) -> bool>;

struct DropFilter(DropFn);

impl std::fmt::Debug for DropFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DropFilter")
    }
}

impl Cluster {
    /// An empty network; `start` is the origin of virtual time.
    pub fn new(seed: u64, link: Link, start: Instant) -> Self {
        Cluster {
            seed,
            start,
            now: start,
            seq: 0,
            link,
            rng: ChaCha12Rng::seed_from_u64(seed),
            nodes: Vec::new(),
            addrs: Vec::new(),
            alive: Vec::new(),
            access: Vec::new(),
            by_addr: HashMap::new(),
            queue: BinaryHeap::new(),
            events: Vec::new(),
            buf: Vec::with_capacity(1500),
            delivered: 0,
            drop_filter: None,
        }
    }

    /// The seed (print it when a check fails).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The address of node `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// The address node `i` would get.
    pub fn addr_of(i: usize) -> SocketAddr {
        let i = i + 1;
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
            6881,
        )
    }

    /// Number of nodes (alive or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Adds a node with `config` (its RNG seed derived from the cluster's unless set) and
    /// returns its index. It does nothing until told to (e.g. [`Cluster::bootstrap`]).
    pub fn add_node(&mut self, mut config: Config) -> usize {
        let i = self.nodes.len();
        if config.rng_seed == 0 {
            config.rng_seed = self
                .seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(i as u64 + 1);
        }
        let addr = Self::addr_of(i);
        self.nodes.push(Node::new(config, self.now));
        self.addrs.push(addr);
        self.alive.push(true);
        self.access.push(Duration::ZERO);
        self.by_addr.insert(addr, i);
        self.events.push(Vec::new());
        self.flush(i);
        i
    }

    /// Gives node `i` a slow access link: `delay` more on every datagram it sends or
    /// receives (so `2 × delay` more on each of its round trips).
    pub fn set_access_delay(&mut self, i: usize, delay: Duration) {
        self.access[i] = delay;
    }

    /// Runs a command on node `i` and sends what it produced.
    pub fn with_node<T>(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant) -> T) -> T {
        let now = self.now;
        let out = f(&mut self.nodes[i], now);
        self.flush(i);
        out
    }

    /// Starts node `i`'s bootstrap from the given nodes.
    pub fn bootstrap(&mut self, i: usize, from: &[usize]) -> CommandId {
        let addrs: Vec<SocketAddr> = from.iter().map(|&j| self.addrs[j]).collect();
        self.with_node(i, |n, now| n.start_bootstrap(&addrs, now))
            .expect("a new node has room for a lookup")
    }

    /// Node `i` stops answering and sending (its datagrams are lost), as a crashed host.
    pub fn kill(&mut self, i: usize) {
        self.alive[i] = false;
    }

    /// Whether node `i` is alive.
    pub fn is_alive(&self, i: usize) -> bool {
        self.alive[i]
    }

    /// Delivers `bytes` to node `to` as if sent from `from`, after the link delay.
    pub fn inject(&mut self, to: usize, from: SocketAddr, bytes: Vec<u8>) {
        let at = self.now + self.link.delay;
        self.push(at, Due::Datagram { to, from, bytes });
    }

    /// Events node `i` produced so far (drained).
    pub fn take_events(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.events[i])
    }

    /// Events node `i` produced so far.
    pub fn events(&self, i: usize) -> &[Event] {
        &self.events[i]
    }

    /// The ids of the `k` live nodes closest to `target` other than node `asker`: the truth a
    /// lookup by `asker` is checked against (a lookup never returns the node that runs it).
    pub fn true_closest(&self, target: &NodeId, k: usize, asker: usize) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| self.alive[*j] && *j != asker)
            .map(|(_, n)| n.id())
            .collect();
        // Cached keys: one distance per node rather than two per comparison (this oracle runs
        // after every lookup of a 1,000-node test, in debug builds).
        ids.sort_by_cached_key(|id| id.distance(target));
        ids.truncate(k);
        ids
    }

    fn push(&mut self, at: Instant, due: Due) {
        self.seq += 1;
        self.queue.push(Reverse((at, due.tie(), self.seq, due)));
    }

    /// Sends node `i`'s datagrams, schedules its timer, collects its events.
    fn flush(&mut self, i: usize) {
        let from = self.addrs[i];
        while let Some(to) = self.nodes[i].poll_transmit(&mut self.buf) {
            if !self.alive[i] || self.rng.gen_bool(self.link.loss.clamp(0.0, 1.0)) {
                continue;
            }
            let Some(&j) = self.by_addr.get(&to) else {
                continue;
            };
            if let Some(DropFilter(drop)) = &mut self.drop_filter
                && drop(from, to, &self.buf)
            {
                continue;
            }
            let jitter = if self.link.jitter.is_zero() {
                Duration::ZERO
            } else {
                self.link.jitter.mul_f64(self.rng.r#gen::<f64>())
            };
            let at = self.now + self.link.delay + jitter + self.access[i] + self.access[j];
            let bytes = self.buf.clone();
            self.push(at, Due::Datagram { to: j, from, bytes });
        }
        if let Some(t) = self.nodes[i].poll_timeout() {
            self.push(t.max(self.now), Due::Timer { node: i });
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.events[i].push(e);
        }
    }

    /// Processes the next queued item; false when nothing is queued before `until`.
    fn step(&mut self, until: Instant) -> bool {
        let Some(Reverse((at, ..))) = self.queue.peek() else {
            return false;
        };
        if *at > until {
            return false;
        }
        let Some(Reverse((at, _, _, due))) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(at);
        match due {
            Due::Datagram { to, from, bytes } => {
                if self.alive[to] {
                    self.delivered += 1;
                    self.nodes[to].handle_datagram(self.now, from, &bytes);
                    self.flush(to);
                }
            }
            Due::Timer { node } => {
                // Stale timer entries are skipped: only fire when the node's timer is due.
                if self.nodes[node]
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    self.nodes[node].handle_timeout(self.now);
                    self.flush(node);
                }
            }
        }
        true
    }

    /// Loses, besides the link's random loss, every datagram for which `drop(from, to,
    /// bytes)` returns true (a test's targeted loss).
    pub fn drop_datagrams(
        &mut self,
        drop: impl FnMut(SocketAddr, SocketAddr, &[u8]) -> bool + 'static,
    ) {
        self.drop_filter = Some(DropFilter(Box::new(drop)));
    }

    /// Runs until virtual time `d` from now.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.step(until) {}
        self.now = self.now.max(until);
    }

    /// Runs until node `i` reports command `id` finished (or `limit` of virtual time passes);
    /// returns the outcome and statistics.
    pub fn run_until_finished(
        &mut self,
        i: usize,
        id: CommandId,
        limit: Duration,
    ) -> Option<(Outcome, LookupStats)> {
        let until = self.now + limit;
        loop {
            if let Some(pos) = self.events[i]
                .iter()
                .position(|e| matches!(e, Event::CommandFinished { id: c, .. } if *c == id))
                && let Event::CommandFinished { outcome, stats, .. } = self.events[i].remove(pos)
            {
                return Some((outcome, stats));
            }
            if !self.step(until) {
                return None;
            }
        }
    }

    /// Bootstraps `n` nodes with `config`, each from a random earlier one (the first alone),
    /// and runs until all bootstraps finished. Returns the indexes.
    pub fn grow(&mut self, n: usize, config: &Config) -> Vec<usize> {
        let mut added = Vec::with_capacity(n);
        for _ in 0..n {
            let i = self.add_node(config.clone());
            let from: Vec<usize> = if i == 0 {
                vec![]
            } else {
                vec![self.rng.gen_range(0..i)]
            };
            let id = self.bootstrap(i, &from);
            let _ = self.run_until_finished(i, id, Duration::from_secs(120));
            added.push(i);
        }
        added
    }
}
