//! `xorro bench`: a query load generator for any DHT node.
//!
//! Many source sockets (on a loopback target each bound to its own address, 127.0.0.2,
//! 127.0.0.3, ..., so that per-IP rate limits do not decide the figure) each keep `window`
//! queries in flight: every answer or timeout sends the next query. The sockets are
//! non-blocking and `connect`ed to the target (the kernel filters other traffic); each
//! generator thread runs one edge-triggered poll loop (mio) over its share of them, reading
//! every datagram waiting on a socket per wakeup (`recvmmsg`) and sending a source's next
//! queries together (`sendmmsg`), so the generator costs well under one system call per
//! query and no task or timer per packet: it must be cheaper than the servers it loads. Queries carry `ro = 1` (BEP 43) so the target does not add the sources to its
//! routing table. With `--pid`, the target's CPU time comes from `/proc/PID/stat`.
//!
//! `xorro bench-echo ADDR` is the bound a node is compared with: a plain blocking
//! `recv_from` / `send_to` loop that sends every datagram back as it is. The generator
//! counts a query that comes back unchanged as echoed, and an echo as a reply.

use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};
use serde::Serialize;
use std::os::fd::AsRawFd;
use xorro_wire::{Body, InfoHash, Message, NodeId, Query, QueryKind, TransactionId, Want};

use crate::error::Exit;
use crate::flags::{BenchArgs, BenchEchoArgs, BenchQuery};

/// Most source sockets.
pub const SOURCES_MAX: usize = 10_000;

/// Most queries in flight per source.
pub const WINDOW_MAX: usize = 1024;

/// Linux reports process times in units of USER_HZ, which is 100 on every architecture the
/// kernel's `/proc` ABI exposes (it is fixed, independent of the kernel's CONFIG_HZ).
const USER_HZ: f64 = 100.0;

/// Validated settings of `xorro bench`.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    /// The node under load.
    pub target: SocketAddr,
    /// The query.
    pub query: BenchQuery,
    /// Source sockets.
    pub sources: usize,
    /// Queries in flight per source.
    pub window: usize,
    /// How long to send.
    pub duration: Duration,
    /// When an unanswered query counts as lost.
    pub timeout: Duration,
    /// The target's process, for its CPU time.
    pub pid: Option<u32>,
    /// Generator threads.
    pub threads: usize,
    /// JSON output.
    pub json: bool,
}

impl BenchSettings {
    /// Validates the flags.
    pub fn from_args(a: &BenchArgs) -> anyhow::Result<Self> {
        let addrs: Vec<SocketAddr> = a
            .target
            .to_socket_addrs()
            .map_err(|_| {
                Exit::usage(format!(
                    "HOST:PORT must be a reachable host:port, got '{}'",
                    a.target
                ))
            })?
            .collect();
        let target = addrs
            .iter()
            .find(|s| s.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| Exit::usage(format!("'{}' resolves to no address", a.target)))?;
        if a.sources == 0 || a.sources > SOURCES_MAX {
            return Err(Exit::usage(format!(
                "--sources must be 1 to {SOURCES_MAX}, got {}",
                a.sources
            )));
        }
        if a.window == 0 || a.window > WINDOW_MAX {
            return Err(Exit::usage(format!(
                "--window must be 1 to {WINDOW_MAX}, got {}",
                a.window
            )));
        }
        if !(a.duration > 0.0 && a.duration <= 86_400.0) {
            return Err(Exit::usage(format!(
                "--duration must be 0 to 86400 seconds, got {}",
                a.duration
            )));
        }
        if a.threads == 0 || a.threads > 64 {
            return Err(Exit::usage(format!(
                "--threads must be 1 to 64, got {}",
                a.threads
            )));
        }
        if a.timeout_ms == 0 {
            return Err(Exit::usage("--timeout-ms must be above 0".to_owned()));
        }
        if let Some(pid) = a.pid {
            cpu_seconds(pid).map_err(|e| Exit::usage(format!("--pid {pid}: {e:#}")))?;
        }
        Ok(BenchSettings {
            target,
            query: a.query,
            sources: a.sources,
            window: a.window,
            duration: Duration::from_secs_f64(a.duration),
            timeout: Duration::from_millis(a.timeout_ms),
            pid: a.pid,
            threads: a.threads,
            json: a.json,
        })
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchReport {
    /// The node under load.
    pub target: String,
    /// The query sent.
    pub query: String,
    /// Source sockets.
    pub sources: usize,
    /// The first and last source address.
    pub source_addrs: String,
    /// Queries in flight per source.
    pub window: usize,
    /// How long it ran.
    pub duration_secs: f64,
    /// Queries sent.
    pub sent: u64,
    /// Responses (`y = r`) received in time.
    pub answered: u64,
    /// KRPC error replies received.
    pub errors: u64,
    /// Queries sent back unchanged (by `xorro bench-echo`).
    pub echoed: u64,
    /// Queries without an answer within the timeout.
    pub timeouts: u64,
    /// Replies (answers and echoes) per second.
    pub answered_per_sec: f64,
    /// The target's CPU time (user + system) over the run.
    pub target_cpu_secs: Option<f64>,
    /// Replies (answers and echoes) per second of the target's CPU time.
    pub answers_per_cpu_sec: Option<f64>,
}

/// One source's tally.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    sent: u64,
    answered: u64,
    errors: u64,
    echoed: u64,
    timeouts: u64,
}

/// Runs the benchmark and prints the report.
pub fn run(settings: BenchSettings) -> anyhow::Result<()> {
    let report = measure(&settings)?;
    if settings.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).context("cannot encode JSON")?
        )?;
    } else {
        print_report(&report)?;
    }
    if report.answered + report.echoed == 0 {
        return Err(Exit::failed(
            format!("{} answered no query", report.target),
            Some("is a DHT node listening on that UDP port?".to_owned()),
        ));
    }
    Ok(())
}

fn print_report(r: &BenchReport) -> std::io::Result<()> {
    outln!(
        "{} -> {}: {} sources ({}), {} in flight each, {:.1} s",
        r.query,
        r.target,
        r.sources,
        r.source_addrs,
        r.window,
        r.duration_secs
    )?;
    #[allow(clippy::cast_precision_loss)]
    let pct = if r.sent == 0 {
        0.0
    } else {
        100.0 * (r.answered + r.echoed) as f64 / r.sent as f64
    };
    outln!(
        "sent {}, answered {}, echoed {} ({pct:.1}%), errors {}, timed out {}",
        r.sent,
        r.answered,
        r.echoed,
        r.errors,
        r.timeouts
    )?;
    outln!("replies/s {:.0}", r.answered_per_sec)?;
    if let (Some(cpu), Some(per)) = (r.target_cpu_secs, r.answers_per_cpu_sec) {
        outln!(
            "target CPU {cpu:.2} s ({:.0}% of one core), {per:.0} replies per CPU-second",
            100.0 * cpu / r.duration_secs.max(f64::MIN_POSITIVE)
        )?;
    }
    Ok(())
}

/// The source address of socket `i` for `target`.
fn source_addr(target: SocketAddr, i: usize) -> SocketAddr {
    match target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            let n = u32::try_from(i).unwrap_or(0).saturating_add(2);
            SocketAddr::from((Ipv4Addr::from(0x7f00_0000 | (n & 0x00ff_ffff)), 0))
        }
        IpAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        IpAddr::V6(ip) if ip.is_loopback() => SocketAddr::from((ip, 0)),
        IpAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    }
}

fn query_name(q: BenchQuery) -> &'static str {
    match q {
        BenchQuery::Ping => "ping",
        BenchQuery::FindNode => "find_node",
        BenchQuery::GetPeers => "get_peers",
    }
}

fn measure(s: &BenchSettings) -> anyhow::Result<BenchReport> {
    let mut sockets = Vec::with_capacity(s.sources);
    for i in 0..s.sources {
        let from = source_addr(s.target, i);
        let sock = std::net::UdpSocket::bind(from)
            .with_context(|| format!("cannot bind a source socket to {from}"))?;
        sock.connect(s.target)
            .with_context(|| format!("cannot address {}", s.target))?;
        sock.set_nonblocking(true)
            .context("cannot make a socket non-blocking")?;
        sockets.push(sock);
    }
    let ip = |x: Option<&std::net::UdpSocket>| {
        x.and_then(|x| x.local_addr().ok())
            .map(|a| a.ip().to_string())
    };
    let (first, last) = (
        ip(sockets.first()).unwrap_or_default(),
        ip(sockets.last()).unwrap_or_default(),
    );
    let source_addrs = if first == last {
        first
    } else {
        format!("{first} to {last}")
    };

    // Deal the sockets out to the threads.
    let mut shares: Vec<Vec<Source>> = (0..s.threads).map(|_| Vec::new()).collect();
    for (i, sock) in sockets.into_iter().enumerate() {
        shares[i % s.threads].push(Source::new(
            mio::net::UdpSocket::from_std(sock),
            s.window,
            i as u64,
        ));
    }
    let cpu_before = s.pid.map(cpu_seconds).transpose()?;
    let start = Instant::now();
    let stop = start + s.duration;
    let config = LoopConfig {
        query: s.query,
        window: s.window,
        timeout: s.timeout,
        stop,
    };
    let tallies = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || drive(share, config)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a generator thread panicked"))?
            })
            .collect::<Vec<_>>()
    });
    let elapsed = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    let cpu = match (s.pid, cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_seconds(pid)? - before),
        _ => None,
    };
    let mut total = Tally::default();
    for t in tallies {
        let t = t?;
        total.sent += t.sent;
        total.answered += t.answered;
        total.errors += t.errors;
        total.echoed += t.echoed;
        total.timeouts += t.timeouts;
    }
    #[allow(clippy::cast_precision_loss)]
    let answered = (total.answered + total.echoed) as f64;
    Ok(BenchReport {
        target: s.target.to_string(),
        query: query_name(s.query).to_owned(),
        sources: s.sources,
        source_addrs,
        window: s.window,
        duration_secs: elapsed,
        sent: total.sent,
        answered: total.answered,
        errors: total.errors,
        echoed: total.echoed,
        timeouts: total.timeouts,
        answered_per_sec: answered / elapsed,
        target_cpu_secs: cpu,
        answers_per_cpu_sec: cpu.filter(|c| *c > 0.0).map(|c| answered / c),
    })
}

/// A xorshift generator for query targets: fast, and good enough to spread them.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn id(&mut self) -> [u8; 20] {
        let mut out = [0u8; 20];
        for chunk in out.chunks_mut(8) {
            let bytes = self.next().to_be_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        out
    }
}

/// Encodes query `tid` into `buf`.
fn encode_query(query: BenchQuery, id: NodeId, tid: u16, rng: &mut XorShift, buf: &mut Vec<u8>) {
    let kind = match query {
        BenchQuery::Ping => QueryKind::Ping,
        BenchQuery::FindNode => QueryKind::FindNode {
            target: NodeId::from(rng.id()),
            want: Want::UNSPECIFIED,
        },
        BenchQuery::GetPeers => QueryKind::GetPeers {
            info_hash: InfoHash::from(rng.id()),
            want: Want::UNSPECIFIED,
            no_seed: false,
            scrape: false,
        },
    };
    let msg = Message {
        transaction_id: TransactionId::from_u16(tid),
        version: None,
        requester_ip: None,
        read_only: true,
        body: Body::Query(Query { id, kind }),
    };
    // A query of these kinds is far below the datagram limit: encoding cannot fail.
    let _ = xorro_wire::encode(&msg, buf);
}

/// What every generator thread runs with.
#[derive(Debug, Clone, Copy)]
struct LoopConfig {
    query: BenchQuery,
    window: usize,
    timeout: Duration,
    stop: Instant,
}

/// One source socket and its queries in flight (in the order sent).
struct Source {
    sock: mio::net::UdpSocket,
    id: NodeId,
    rng: XorShift,
    inflight: VecDeque<(u16, Instant)>,
    next_tid: u16,
    tally: Tally,
}

impl Source {
    fn new(sock: mio::net::UdpSocket, window: usize, seed: u64) -> Self {
        let mut rng =
            XorShift((0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d)) | 1);
        let id = NodeId::from(rng.id());
        Source {
            sock,
            id,
            rng,
            inflight: VecDeque::with_capacity(window),
            next_tid: 0,
            tally: Tally::default(),
        }
    }

    /// Sends until `window` queries are in flight or the socket's buffer is full, up to
    /// [`BATCH`] queries per `sendmmsg`.
    fn refill(&mut self, c: &LoopConfig, out: &mut Vec<u8>, now: Instant) {
        let mut one = Vec::with_capacity(128);
        while self.inflight.len() < c.window {
            let count = (c.window - self.inflight.len()).min(BATCH);
            // Queries next_tid, next_tid + 1, ...: those sent take their tids, the others
            // are encoded again next time.
            out.clear();
            let mut ends = [0usize; BATCH];
            for (j, end) in ends.iter_mut().enumerate().take(count) {
                let tid = self.next_tid.wrapping_add(u16::try_from(j).unwrap_or(0));
                encode_query(c.query, self.id, tid, &mut self.rng, &mut one);
                out.extend_from_slice(&one);
                *end = out.len();
            }
            let slices: Vec<[IoSlice<'_>; 1]> = (0..count)
                .map(|j| {
                    let start = if j == 0 { 0 } else { ends[j - 1] };
                    [IoSlice::new(&out[start..ends[j]])]
                })
                .collect();
            let addrs: Vec<Option<SockaddrStorage>> = vec![None; count];
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(count, None);
            let cmsgs: [ControlMessage<'_>; 0] = [];
            let sent = sendmmsg(
                self.sock.as_raw_fd(),
                &mut headers,
                &slices,
                &addrs,
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
            )
            .map(Iterator::count);
            match sent {
                Ok(k) if k > 0 => {
                    for _ in 0..k {
                        self.inflight.push_back((self.next_tid, now));
                        self.next_tid = self.next_tid.wrapping_add(1);
                    }
                    self.tally.sent += k as u64;
                    if k < count {
                        break;
                    }
                }
                // WouldBlock: a writable event comes later. Anything else (nobody listens
                // yet: ICMP unreachable) is retried at the next timeout sweep.
                _ => break,
            }
        }
    }

    /// Reads every datagram waiting, up to [`BATCH`] per `recvmmsg`; returns how many.
    fn drain(&mut self, arena: &mut [u8], in_time: bool) -> usize {
        let mut total = 0;
        loop {
            let mut lens = [0usize; BATCH];
            let got = {
                let mut slices: Vec<[IoSliceMut<'_>; 1]> = arena
                    .chunks_mut(RECV_SLOT)
                    .take(BATCH)
                    .map(|c| [IoSliceMut::new(c)])
                    .collect();
                let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
                recvmmsg(
                    self.sock.as_raw_fd(),
                    &mut headers,
                    slices.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                )
                .map(|r| {
                    let mut n = 0;
                    for (len, m) in lens.iter_mut().zip(r) {
                        *len = m.bytes;
                        n += 1;
                    }
                    n
                })
            };
            match got {
                Ok(n) => {
                    total += n;
                    for (j, len) in lens.iter().enumerate().take(n) {
                        let start = j * RECV_SLOT;
                        account(
                            &arena[start..start + len],
                            &mut self.inflight,
                            &mut self.tally,
                            in_time,
                        );
                    }
                    if n < BATCH {
                        return total;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return total,
                // ECONNREFUSED and the like: the pending error is consumed; go on.
                Err(_) => {}
            }
        }
    }

    fn expire(&mut self, timeout: Duration, now: Instant) {
        while self
            .inflight
            .front()
            .is_some_and(|(_, sent)| *sent + timeout <= now)
        {
            self.inflight.pop_front();
            self.tally.timeouts += 1;
        }
    }
}

/// Datagrams per `sendmmsg` / `recvmmsg` of the generator.
const BATCH: usize = 32;

/// Room for one answer.
const RECV_SLOT: usize = 2048;

/// How often queries are checked for timeouts (and stalled sockets refilled).
const SWEEP_INTERVAL: Duration = Duration::from_millis(10);

/// One generator thread: an edge-triggered poll loop over its sources until `stop`.
fn drive(mut sources: Vec<Source>, c: LoopConfig) -> anyhow::Result<Tally> {
    let mut poll = mio::Poll::new().context("cannot create a poller")?;
    for (k, s) in sources.iter_mut().enumerate() {
        poll.registry()
            .register(
                &mut s.sock,
                mio::Token(k),
                mio::Interest::READABLE | mio::Interest::WRITABLE,
            )
            .context("cannot register a socket")?;
    }
    let mut events = mio::Events::with_capacity(1024);
    let mut out = Vec::with_capacity(256);
    let mut buf = vec![0u8; BATCH * RECV_SLOT];
    let mut next_sweep = Instant::now();
    loop {
        let now = Instant::now();
        if now >= c.stop {
            break;
        }
        if now >= next_sweep {
            for s in &mut sources {
                s.expire(c.timeout, now);
                s.refill(&c, &mut out, now);
            }
            next_sweep = now + SWEEP_INTERVAL;
        }
        let wait = next_sweep.min(c.stop).saturating_duration_since(now);
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("polling the sockets failed"),
        }
        // Edge-triggered: read everything waiting on each socket that became readable,
        // then send as many new queries as came back, in one sendmmsg.
        let now = Instant::now();
        let in_time = now < c.stop;
        for ev in &events {
            let Some(s) = sources.get_mut(ev.token().0) else {
                continue;
            };
            if ev.is_readable() || ev.is_error() {
                s.drain(&mut buf, in_time);
            }
            if in_time {
                s.refill(&c, &mut out, now);
            }
        }
    }
    // Answers that arrive after the end do not count, but take their queries off the books.
    for s in &mut sources {
        s.drain(&mut buf, false);
    }
    let mut total = Tally::default();
    for s in &sources {
        total.sent += s.tally.sent;
        total.answered += s.tally.answered;
        total.errors += s.tally.errors;
        total.echoed += s.tally.echoed;
        total.timeouts += s.tally.timeouts;
    }
    Ok(total)
}

/// Matches an answer to its query and counts it.
fn account(
    datagram: &[u8],
    inflight: &mut VecDeque<(u16, Instant)>,
    tally: &mut Tally,
    in_time: bool,
) {
    let Ok(msg) = xorro_wire::decode(datagram) else {
        return;
    };
    let Some(tid) = msg.transaction_id.as_u16() else {
        return;
    };
    let Some(pos) = inflight.iter().position(|(t, _)| *t == tid) else {
        return;
    };
    inflight.remove(pos);
    if !in_time {
        return;
    }
    match msg.body {
        Body::Response(_) => tally.answered += 1,
        Body::Error(_) => tally.errors += 1,
        Body::Query(_) => tally.echoed += 1,
    }
}

/// A blocking UDP socket with the socket buffers a xorro node asks for (4 MiB, capped by the
/// kernel), so that both lose datagrams alike in a burst.
fn echo_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// `xorro bench-echo`: sends every datagram back to its sender, one `recv_from` and one
/// `send_to` each, until killed. Deliberately plain (no batching, no polling): the cost of
/// the two system calls every answer needs at least.
pub fn echo_server(a: &BenchEchoArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = a
        .bind
        .parse()
        .map_err(|_| Exit::usage(format!("ADDR must be ip:port, got '{}'", a.bind)))?;
    let sock = echo_socket(addr).map_err(|e| {
        Exit::failed(
            format!("cannot bind UDP {addr}: {e}"),
            Some("is another program using this port? pass another ADDR".to_owned()),
        )
    })?;
    let local = sock.local_addr().context("the socket has no address")?;
    outln!("echo: listening on {local}")?;
    let mut buf = vec![0u8; 65_536];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                // A full send buffer or an unreachable sender loses that echo only.
                let _ = sock.send_to(&buf[..n], from);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("receiving failed"),
        }
    }
}

/// The CPU time (user + system) of process `pid` so far, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {path}: is the process running?"))?;
    parse_stat(&text).with_context(|| format!("{path} has an unexpected format"))
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in seconds. The command
/// name (field 2) may contain spaces and parentheses, so fields are counted after its last
/// `)`.
fn parse_stat(text: &str) -> anyhow::Result<f64> {
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("no ')' after the command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .context("too few fields")?
            .parse::<u64>()
            .context("not a number")
    };
    #[allow(clippy::cast_precision_loss)]
    Ok((field(14)? + field(15)?) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        let line =
            "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0";
        assert!((parse_stat(line).unwrap() - 3.0).abs() < 1e-9);
        assert!(parse_stat("garbage").is_err());
        assert!(cpu_seconds(std::process::id()).is_ok());
    }

    #[test]
    fn loopback_sources_get_their_own_addresses() {
        let t: SocketAddr = "127.0.0.1:6881".parse().unwrap();
        assert_eq!(source_addr(t, 0).ip().to_string(), "127.0.0.2");
        assert_eq!(source_addr(t, 300).ip().to_string(), "127.0.1.46");
        let t: SocketAddr = "192.0.2.1:6881".parse().unwrap();
        assert!(source_addr(t, 5).ip().is_unspecified());
    }

    #[test]
    fn queries_decode() {
        let mut rng = XorShift(7);
        let mut buf = Vec::new();
        for q in [BenchQuery::Ping, BenchQuery::FindNode, BenchQuery::GetPeers] {
            encode_query(q, NodeId::ZERO, 513, &mut rng, &mut buf);
            let m = xorro_wire::decode(&buf).unwrap();
            assert_eq!(m.transaction_id.as_u16(), Some(513));
            assert!(m.read_only);
        }
    }
}
