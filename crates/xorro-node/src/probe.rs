//! `xorro probe`: a conformance checker a user can point at any Mainline DHT node.
//!
//! [`probe`] sends the node every query kind (BEP 5, 32, 33, 42, 43, 44, 51), then a set of
//! inputs the BEPs say to refuse (bad tokens, bad signatures, oversized items) and malformed
//! datagrams (garbage, truncated bencode, wrong types, missing keys, unknown methods,
//! transaction ids of several lengths), checks after each malformed input that the node
//! still answers, and reports what the node did against what the BEPs require:
//!
//! ```no_run
//! # async fn run() {
//! use xorro_node::probe::{ProbeOptions, probe};
//!
//! let report = probe("127.0.0.1:6881".parse().unwrap(), &ProbeOptions::default()).await;
//! println!("{report}"); // a Markdown table
//! println!("{}", report.to_json());
//! std::process::exit(if report.passed() { 0 } else { 1 });
//! # }
//! ```
//!
//! Each check ends in a [`Verdict`]: [`Verdict::Pass`] (what the BEP requires),
//! [`Verdict::Deviation`] (the node works with others but does not do what the BEP says, for
//! example another error code, or accepting what it should refuse where that harms nobody
//! else), [`Verdict::Fail`] (a violation that breaks interoperability or safety: a wrong
//! answer, a missing key, a bad token or signature accepted, a crash), or
//! [`Verdict::NoAnswer`] (silence where the BEP asks for a reply).
//!
//! The probe is a polite client: one datagram in flight at a time, a short pause between
//! checks ([`ProbeOptions::pace`]), about 45 datagrams in all, so that it stays under
//! libtorrent's default per-IP limit (50 packets in 10 s) and Xorro's (a burst of 50). It
//! does not answer the node's own queries, and it stores one announce and a few small BEP 44
//! items (which expire by themselves) on the node.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use xorro_wire::bep44::{self, Keypair};
use xorro_wire::compact::decode_peer;
use xorro_wire::value::Value;
use xorro_wire::{NodeId, PublicKey, RawValue, Signature};

/// How the probe behaves.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// The local address to send from; `None`: any port on the unspecified address of the
    /// target's family (the system picks the source address).
    pub bind: Option<SocketAddr>,
    /// Pause before each datagram, to stay under the node's rate limits.
    pub pace: Duration,
    /// Our node id in queries; `None`: a random one.
    pub node_id: Option<NodeId>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: Duration::from_secs(2),
            bind: None,
            pace: Duration::from_millis(20),
            node_id: None,
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The node did what the BEP requires.
    Pass,
    /// The node breaks the BEP in a way that breaks interoperability or safety.
    Fail,
    /// The node does something else than the BEP says, without harm to other nodes.
    Deviation,
    /// The node did not answer where the BEP asks for an answer.
    NoAnswer,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Deviation => "deviation",
            Verdict::NoAnswer => "no answer",
        })
    }
}

/// One check of a [`ProbeReport`].
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name, stable across versions (for scripts reading the JSON).
    pub name: &'static str,
    /// The BEP that specifies the behaviour.
    pub bep: u16,
    /// What the BEP requires.
    pub expected: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// What the node did.
    pub observed: String,
}

/// Everything [`probe`] found: a Markdown table through `Display`, JSON through
/// [`ProbeReport::to_json`].
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The node probed.
    pub target: SocketAddr,
    /// Its node id (hex), from its first answer.
    pub node_id: Option<String>,
    /// Its client version (`v`), printable characters as they are, others as `\xNN`.
    pub version: Option<String>,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl ProbeReport {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict == Verdict::Pass)
    }

    /// The check named `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// How many checks ended in `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.checks.iter().filter(|c| c.verdict == verdict).count()
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report holds only strings and numbers")
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "probe of {} (node id {}, version {}): {} pass, {} deviation, {} no answer, {} fail",
            self.target,
            self.node_id.as_deref().unwrap_or("unknown"),
            self.version.as_deref().unwrap_or("not sent"),
            self.count(Verdict::Pass),
            self.count(Verdict::Deviation),
            self.count(Verdict::NoAnswer),
            self.count(Verdict::Fail),
        )?;
        writeln!(f)?;
        writeln!(f, "| check | BEP | expected | result | observed |")?;
        writeln!(f, "| --- | --- | --- | --- | --- |")?;
        for c in &self.checks {
            writeln!(
                f,
                "| {} | {} | {} | {} | {} |",
                c.name,
                c.bep,
                c.expected,
                c.verdict,
                c.observed.replace('|', "\\|")
            )?;
        }
        Ok(())
    }
}

/// Probes the node at `target` and reports what it did. Never fails: a local error (no
/// socket) is reported as a failed check.
pub async fn probe(target: SocketAddr, opts: &ProbeOptions) -> ProbeReport {
    match Prober::new(target, opts).await {
        Ok(p) => p.run().await,
        Err(e) => ProbeReport {
            target,
            node_id: None,
            version: None,
            checks: vec![Check {
                name: "socket",
                bep: 5,
                expected: "a local UDP socket to send from",
                verdict: Verdict::Fail,
                observed: format!("cannot open a socket toward {target}: {e}"),
            }],
        },
    }
}

/// The port we announce (BEP 5 `announce_peer`), then look for in `values`.
const ANNOUNCE_PORT: u16 = 6881;
/// The salt of our mutable items.
const SALT: &[u8] = b"xorro-probe";

/// One bencoded dictionary built from pairs.
fn dict<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Dict(
        pairs
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

fn bytes(b: impl AsRef<[u8]>) -> Value {
    Value::Bytes(b.as_ref().to_vec())
}

/// Bytes for a table cell: text when printable, else hex.
fn show(b: &[u8]) -> String {
    if !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        String::from_utf8_lossy(b).into_owned()
    } else {
        format!("0x{}", hex(b))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

/// What came back for one query.
#[derive(Debug, Clone)]
enum Answer {
    /// `y = r`: its `r` dictionary.
    Response { r: Value },
    /// `y = e`: code and message.
    Error { code: i64, message: String },
    /// A datagram with our `t` that is neither (or not bencode).
    Other(String),
    /// Nothing within the timeout.
    Silence,
}

impl Answer {
    fn describe(&self) -> String {
        match self {
            Answer::Response { r, .. } => {
                let keys: Vec<String> = r
                    .as_dict()
                    .map(|d| d.keys().map(|k| show(k)).collect())
                    .unwrap_or_default();
                format!("response {{{}}}", keys.join(", "))
            }
            Answer::Error { code, message } => format!("error {code} \"{message}\""),
            Answer::Other(s) => s.clone(),
            Answer::Silence => "no reply".to_owned(),
        }
    }

    fn r(&self) -> Option<&Value> {
        match self {
            Answer::Response { r, .. } => Some(r),
            _ => None,
        }
    }
}

struct Prober {
    sock: UdpSocket,
    target: SocketAddr,
    local: SocketAddr,
    our_id: [u8; 20],
    opts: ProbeOptions,
    next_t: u16,
    checks: Vec<Check>,
    node_id: Option<NodeId>,
    version: Option<String>,
    /// Responses seen, and how many carried `ip` (BEP 42) / a malformed one.
    responses: usize,
    with_ip: usize,
    bad_ip: Vec<String>,
    /// Our address as the node sees it (its `ip`), else our socket's.
    seen_as: Option<SocketAddr>,
    /// Replies that matched no query we were waiting for.
    strays: Vec<String>,
}

impl Prober {
    async fn new(target: SocketAddr, opts: &ProbeOptions) -> std::io::Result<Prober> {
        let bind = opts.bind.unwrap_or(match target {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        });
        let sock = UdpSocket::bind(bind).await?;
        // Connected: the kernel drops datagrams from anyone else, and local_addr() is the
        // source address the node sees (unless a NAT rewrites it).
        sock.connect(target).await?;
        let local = sock.local_addr()?;
        let our_id = opts
            .node_id
            .map(|id| id.0)
            .unwrap_or_else(rand::random::<[u8; 20]>);
        Ok(Prober {
            sock,
            target,
            local,
            our_id,
            opts: opts.clone(),
            next_t: rand::random(),
            checks: Vec::new(),
            node_id: None,
            version: None,
            responses: 0,
            with_ip: 0,
            bad_ip: Vec::new(),
            seen_as: None,
            strays: Vec::new(),
        })
    }

    fn record(
        &mut self,
        name: &'static str,
        bep: u16,
        expected: &'static str,
        verdict: Verdict,
        observed: impl Into<String>,
    ) {
        self.checks.push(Check {
            name,
            bep,
            expected,
            verdict,
            observed: observed.into(),
        });
    }

    fn fresh_t(&mut self) -> Vec<u8> {
        self.next_t = self.next_t.wrapping_add(1);
        self.next_t.to_be_bytes().to_vec()
    }

    /// A query with our id and a fresh 2-byte `t`, and that `t`.
    fn query(&mut self, method: &str, mut args: BTreeMap<Vec<u8>, Value>) -> (Vec<u8>, Vec<u8>) {
        args.entry(b"id".to_vec())
            .or_insert_with(|| bytes(self.our_id));
        let t = self.fresh_t();
        let msg = dict([
            ("a", Value::Dict(args)),
            ("q", bytes(method)),
            ("t", bytes(&t)),
            ("y", bytes("q")),
        ]);
        (msg.to_bytes(), t)
    }

    async fn send(&mut self, datagram: &[u8]) {
        if !self.opts.pace.is_zero() {
            tokio::time::sleep(self.opts.pace).await;
        }
        if let Err(e) = self.sock.send(datagram).await {
            self.strays.push(format!("send failed: {e}"));
        }
    }

    /// Waits (at most the timeout) for the reply whose `t` is one of `ts`: returns which
    /// and the reply, and every other reply that came meanwhile (the node's own queries are
    /// dropped).
    async fn wait_any(&mut self, ts: &[&[u8]]) -> (Option<(usize, Answer)>, Vec<Unmatched>) {
        let deadline = Instant::now() + self.opts.timeout;
        let mut others = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match tokio::time::timeout_at(deadline, self.sock.recv(&mut buf)).await {
                Err(_) => return (None, others),
                // ICMP port unreachable on a connected socket: nobody listens there.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tokio::time::sleep_until(deadline).await;
                    return (None, others);
                }
                Ok(Err(e)) => {
                    self.strays.push(format!("recv failed: {e}"));
                    return (None, others);
                }
                Ok(Ok(n)) => n,
            };
            let parsed = RawValue::new(&buf[..n])
                .ok()
                .and_then(|raw| Value::parse(&raw).ok())
                .filter(|v| v.as_dict().is_some());
            let Some(msg) = parsed else {
                others.push(Unmatched {
                    answer: Answer::Other(format!(
                        "a datagram that is not a bencoded dictionary ({n} bytes)"
                    )),
                    t: "unknown".to_owned(),
                });
                continue;
            };
            if msg.get(b"y").and_then(Value::as_bytes) == Some(b"q") {
                continue; // the node's own query (libtorrent checks on new contacts)
            }
            let answer = self.classify(&msg);
            let t = msg.get(b"t");
            if let Some(i) = ts
                .iter()
                .position(|want| t.and_then(Value::as_bytes) == Some(*want))
            {
                return (Some((i, answer)), others);
            }
            let t = match t {
                Some(Value::Bytes(b)) if b.is_empty() => "\"\" (empty)".to_owned(),
                Some(Value::Bytes(b)) => format!("0x{}", hex(b)),
                Some(other) => other.to_string(),
                None => "none".to_owned(),
            };
            others.push(Unmatched { answer, t });
        }
    }

    /// Waits for the reply whose `t` is `t` (other replies are kept as strays).
    async fn wait(&mut self, t: &[u8]) -> Answer {
        let (found, others) = self.wait_any(&[t]).await;
        for o in others {
            self.strays.push(o.describe());
        }
        found.map_or(Answer::Silence, |(_, a)| a)
    }

    /// Reads a message whose `y` is not `q`; notes `v`, `ip` and the node id on the way.
    fn classify(&mut self, msg: &Value) -> Answer {
        match msg.get(b"y").and_then(Value::as_bytes) {
            Some(b"r") => {
                let Some(r) = msg.get(b"r").filter(|r| r.as_dict().is_some()) else {
                    return Answer::Other("y = r without an `r` dictionary".to_owned());
                };
                self.responses += 1;
                match msg.get(b"ip") {
                    Some(Value::Bytes(ip)) => match decode_peer(ip) {
                        Some(addr) => {
                            self.with_ip += 1;
                            self.seen_as.get_or_insert(addr);
                        }
                        None => self.bad_ip.push(format!("{} bytes", ip.len())),
                    },
                    Some(other) => self.bad_ip.push(format!("not a string: {other}")),
                    None => {}
                }
                if self.version.is_none()
                    && let Some(v) = msg.get(b"v").and_then(Value::as_bytes)
                {
                    self.version = Some(v.escape_ascii().to_string());
                }
                if self.node_id.is_none()
                    && let Some(id) = r.get(b"id").and_then(Value::as_bytes)
                {
                    self.node_id = NodeId::from_slice(id);
                }
                Answer::Response { r: r.clone() }
            }
            Some(b"e") => match msg.get(b"e").and_then(Value::as_list) {
                Some([Value::Int(code), rest @ ..]) => Answer::Error {
                    code: *code,
                    message: rest
                        .first()
                        .and_then(Value::as_bytes)
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                        .unwrap_or_default(),
                },
                _ => Answer::Other(format!(
                    "an error without [code, message]: {}",
                    msg.get(b"e").map(ToString::to_string).unwrap_or_default()
                )),
            },
            _ => Answer::Other("a message without y = r or e".to_owned()),
        }
    }

    /// Sends a query and waits for its reply.
    async fn ask(&mut self, method: &str, args: BTreeMap<Vec<u8>, Value>) -> Answer {
        let (datagram, t) = self.query(method, args);
        self.send(&datagram).await;
        self.wait(&t).await
    }

    /// Our address as the node sees it: its `ip` if it sent one, else our socket's.
    fn our_ip(&self) -> IpAddr {
        self.seen_as.map_or(self.local.ip(), |a| a.ip())
    }

    async fn run(mut self) -> ProbeReport {
        self.basics().await;
        if self.node_id.is_some() {
            self.bep5().await;
            self.bep44().await;
            self.extensions().await;
            self.malformed().await;
            self.finish().await;
        }
        let mut checks = self.checks;
        if !self.strays.is_empty() {
            checks.push(Check {
                name: "stray_replies",
                bep: 5,
                expected: "one reply per query, echoing its t",
                verdict: Verdict::Deviation,
                observed: self.strays.join("; "),
            });
        }
        ProbeReport {
            target: self.target,
            node_id: self.node_id.map(|id| id.to_string()),
            version: self.version,
            checks,
        }
    }

    // ------------------------------------------------------------------ the checks

    async fn basics(&mut self) {
        const EXPECTED: &str = "response with a 20-byte id";
        let mut answer = Answer::Silence;
        for _ in 0..2 {
            answer = self.ask("ping", BTreeMap::new()).await;
            if !matches!(answer, Answer::Silence) {
                break;
            }
        }
        let (verdict, observed) = match &answer {
            Answer::Response { r, .. } => match r.get(b"id").and_then(Value::as_bytes) {
                Some(id) if id.len() == 20 => (Verdict::Pass, format!("id {}", hex(id))),
                _ => (
                    Verdict::Fail,
                    format!("{}: no 20-byte id", answer.describe()),
                ),
            },
            Answer::Silence => (
                Verdict::NoAnswer,
                format!(
                    "no reply to two pings within {:?}: nothing else was tried",
                    self.opts.timeout
                ),
            ),
            other => (Verdict::Fail, other.describe()),
        };
        self.record("ping", 5, EXPECTED, verdict, observed);
    }

    fn nodes_ok(r: &Value, key: &[u8], size: usize) -> Result<usize, String> {
        match r.get(key) {
            Some(Value::Bytes(b)) if b.len() % size == 0 => Ok(b.len() / size),
            Some(Value::Bytes(b)) => Err(format!(
                "`{}` of {} bytes, not a multiple of {size}",
                show(key),
                b.len()
            )),
            Some(other) => Err(format!("`{}` is not a string: {other}", show(key))),
            None => Err(format!("no `{}`", show(key))),
        }
    }

    /// The key, entry size and description of the contacts a query without `want` gets back:
    /// BEP 32 says a node answers with contacts of the family the query came in on, so
    /// `nodes` (26 bytes each) over IPv4 and `nodes6` (38 bytes each) over IPv6.
    fn own_family(&self) -> (&'static [u8], usize, &'static str) {
        if self.target.is_ipv4() {
            (b"nodes", 26, "`nodes`: compact nodes, 26 bytes each")
        } else {
            (
                b"nodes6",
                38,
                "`nodes6` (over IPv6, BEP 32): compact nodes, 38 bytes each",
            )
        }
    }

    /// [`Self::nodes_ok`] for the contacts of the query's own family ([`Self::own_family`]).
    fn own_nodes_ok(&self, r: &Value) -> Result<usize, String> {
        let (key, size, _) = self.own_family();
        Self::nodes_ok(r, key, size)
    }

    async fn bep5(&mut self) {
        let target: [u8; 20] = rand::random();

        // find_node.
        let a = self
            .ask("find_node", args([("target", bytes(target))]))
            .await;
        let (v, o) = match a.r() {
            Some(r) => match self.own_nodes_ok(r) {
                Ok(n) => (Verdict::Pass, format!("{n} nodes")),
                Err(e) => (Verdict::Fail, e),
            },
            None => Self::unanswered(&a),
        };
        self.record("find_node", 5, self.own_family().2, v, o);

        // BEP 32 want.
        let a = self
            .ask(
                "find_node",
                args([
                    ("target", bytes(target)),
                    ("want", Value::List(vec![bytes("n4"), bytes("n6")])),
                ]),
            )
            .await;
        let (v, o) = match a.r() {
            Some(r) => {
                let n4 = Self::nodes_ok(r, b"nodes", 26);
                let n6 = match r.get(b"nodes6") {
                    None => Ok(None),
                    Some(_) => Self::nodes_ok(r, b"nodes6", 38).map(Some),
                };
                match (n4, n6) {
                    (Ok(n4), Ok(None)) => (
                        Verdict::Pass,
                        format!("{n4} nodes, no nodes6 (no IPv6 contacts)"),
                    ),
                    (Ok(n4), Ok(Some(n6))) => (Verdict::Pass, format!("{n4} nodes, {n6} nodes6")),
                    (Err(e), _) | (_, Err(e)) => (Verdict::Fail, e),
                }
            }
            None => Self::unanswered(&a),
        };
        self.record(
            "find_node_want_n4_n6",
            32,
            "`nodes` (26 bytes each) and, with IPv6 contacts, `nodes6` (38 bytes each)",
            v,
            o,
        );

        // get_peers for an info-hash nobody announced.
        let info_hash: [u8; 20] = rand::random();
        let a = self
            .ask("get_peers", args([("info_hash", bytes(info_hash))]))
            .await;
        let token = a
            .r()
            .and_then(|r| r.get(b"token"))
            .and_then(Value::as_bytes);
        let token = token.filter(|t| !t.is_empty()).map(<[u8]>::to_vec);
        let (v, o) = match (a.r(), &token) {
            (Some(r), Some(token)) => {
                let nodes = self.own_nodes_ok(r);
                let values = r
                    .get(b"values")
                    .and_then(Value::as_list)
                    .map(<[Value]>::len);
                match (nodes, values) {
                    (Ok(n), _) => (
                        Verdict::Pass,
                        format!("token of {} bytes, {n} nodes", token.len()),
                    ),
                    (Err(_), Some(n)) => (
                        Verdict::Pass,
                        format!("token of {} bytes, {n} values", token.len()),
                    ),
                    (Err(e), None) => (Verdict::Fail, e),
                }
            }
            (Some(_), None) => (Verdict::Fail, "no token".to_owned()),
            (None, _) => Self::unanswered(&a),
        };
        let expected = if self.target.is_ipv4() {
            "`token` and `nodes` (or `values`)"
        } else {
            "`token` and `nodes6` (or `values`)"
        };
        self.record("get_peers", 5, expected, v, o);

        // announce_peer with that token, then with a bad one.
        let token = token.unwrap_or_else(|| b"none".to_vec());
        let announce = |token: &[u8]| {
            args([
                ("info_hash", bytes(info_hash)),
                ("port", Value::Int(i64::from(ANNOUNCE_PORT))),
                ("token", bytes(token)),
            ])
        };
        let a = self.ask("announce_peer", announce(&token)).await;
        let (v, o) = match &a {
            Answer::Response { .. } => (Verdict::Pass, "stored".to_owned()),
            Answer::Silence => (Verdict::NoAnswer, a.describe()),
            other => (Verdict::Fail, other.describe()),
        };
        self.record("announce_peer", 5, "response: the announce is stored", v, o);

        let a = self
            .ask("get_peers", args([("info_hash", bytes(info_hash))]))
            .await;
        let expected = SocketAddr::new(self.our_ip(), ANNOUNCE_PORT);
        let (v, o) = match a.r() {
            Some(r) => match r.get(b"values").and_then(Value::as_list) {
                Some(values) => {
                    let peers: Vec<SocketAddr> = values
                        .iter()
                        .filter_map(|p| p.as_bytes().and_then(decode_peer))
                        .collect();
                    if peers.contains(&expected) {
                        (Verdict::Pass, format!("`values` holds {expected}"))
                    } else {
                        (
                            Verdict::Fail,
                            format!("`values` {peers:?} without {expected}"),
                        )
                    }
                }
                None => (Verdict::Fail, format!("no `values`: {}", a.describe())),
            },
            None => Self::unanswered(&a),
        };
        self.record(
            "get_peers_after_announce",
            5,
            "`values` holds our address and the announced port",
            v,
            o,
        );

        let mut bad = token.clone();
        for b in &mut bad {
            *b ^= 0x5a;
        }
        let a = self.ask("announce_peer", announce(&bad)).await;
        let (v, o) = Self::refused(&a, 203, Verdict::Fail);
        self.record("announce_peer_bad_token", 5, "error 203 (bad token)", v, o);

        // BEP 33 scrape, for the info-hash we announced.
        let a = self
            .ask(
                "get_peers",
                args([("info_hash", bytes(info_hash)), ("scrape", Value::Int(1))]),
            )
            .await;
        let (v, o) = match a.r() {
            Some(r) => {
                let bf = |k: &[u8]| {
                    r.get(k)
                        .and_then(Value::as_bytes)
                        .is_some_and(|b| b.len() == 256)
                };
                if bf(b"BFsd") && bf(b"BFpe") {
                    (Verdict::Pass, "256-byte BFsd and BFpe".to_owned())
                } else {
                    (
                        Verdict::Deviation,
                        format!("no 256-byte BFsd/BFpe: {}", a.describe()),
                    )
                }
            }
            None => Self::unsupported(&a),
        };
        self.record(
            "get_peers_scrape",
            33,
            "`BFsd` and `BFpe`, 256 bytes each",
            v,
            o,
        );
    }

    /// Verdict and text for a query that should have had a response and did not.
    fn unanswered(a: &Answer) -> (Verdict, String) {
        match a {
            Answer::Silence => (Verdict::NoAnswer, a.describe()),
            other => (Verdict::Fail, other.describe()),
        }
    }

    /// Verdict and text for an optional extension's query: an error means "not supported".
    fn unsupported(a: &Answer) -> (Verdict, String) {
        match a {
            Answer::Silence => (Verdict::NoAnswer, a.describe()),
            Answer::Error { .. } => (
                Verdict::Deviation,
                format!("{} (not supported)", a.describe()),
            ),
            other => (Verdict::Fail, other.describe()),
        }
    }

    /// Verdict and text for what must be refused with error `code`; `accepted` is the
    /// verdict when the node accepts it instead.
    fn refused(a: &Answer, code: i64, accepted: Verdict) -> (Verdict, String) {
        match a {
            Answer::Error { code: c, .. } if *c == code => (Verdict::Pass, a.describe()),
            Answer::Error { .. } => (Verdict::Deviation, a.describe()),
            Answer::Response { .. } => (accepted, format!("accepted: {}", a.describe())),
            Answer::Silence => (Verdict::NoAnswer, a.describe()),
            Answer::Other(s) => (Verdict::Fail, s.clone()),
        }
    }

    /// A BEP 44 get of `target`: the answer and its token.
    async fn get(&mut self, target: NodeId) -> (Answer, Option<Vec<u8>>) {
        let a = self.ask("get", args([("target", bytes(target.0))])).await;
        let token = a
            .r()
            .and_then(|r| r.get(b"token"))
            .and_then(Value::as_bytes)
            .filter(|t| !t.is_empty())
            .map(<[u8]>::to_vec);
        (a, token)
    }

    /// A BEP 44 put of a mutable item.
    #[allow(clippy::too_many_arguments)]
    async fn put_mutable(
        &mut self,
        keypair: &Keypair,
        salt: &[u8],
        seq: i64,
        v: &[u8],
        token: &[u8],
        cas: Option<i64>,
        sig: Option<Signature>,
    ) -> Answer {
        let raw = RawValue::new(v).expect("our values are bencoded");
        let sig = sig.unwrap_or_else(|| keypair.sign(Some(salt), seq, &raw));
        let mut a = args([
            ("k", bytes(keypair.public_key().0)),
            ("salt", bytes(salt)),
            ("seq", Value::Int(seq)),
            ("sig", bytes(sig.0)),
            ("token", bytes(token)),
            ("v", Value::parse(&raw).expect("our values parse")),
        ]);
        if let Some(cas) = cas {
            a.insert(b"cas".to_vec(), Value::Int(cas));
        }
        self.ask("put", a).await
    }

    async fn bep44(&mut self) {
        // Immutable: get (token), put, get.
        let nonce: [u8; 8] = rand::random();
        let value = Value::Bytes(format!("xorro probe {}", hex(&nonce)).into_bytes()).to_bytes();
        let raw = RawValue::new(&value).expect("bencoded");
        let target = bep44::immutable_target(&raw);
        let (a, token) = self.get(target).await;
        let (v, o) = match (a.r(), &token) {
            (Some(_), Some(t)) => (Verdict::Pass, format!("token of {} bytes", t.len())),
            (Some(_), None) => (Verdict::Fail, format!("no token: {}", a.describe())),
            (None, _) => Self::unsupported(&a),
        };
        self.record("get_no_item", 44, "`token` (and `nodes`)", v, o);
        let token = token.unwrap_or_else(|| b"none".to_vec());

        let put = args([
            ("token", bytes(&token)),
            ("v", Value::parse(&raw).expect("parses")),
        ]);
        let a = self.ask("put", put).await;
        let (v, o) = match &a {
            Answer::Response { .. } => (Verdict::Pass, "stored".to_owned()),
            other => Self::unsupported(other),
        };
        self.record("put_immutable", 44, "response: stored", v, o);

        let (a, _) = self.get(target).await;
        let got = a.r().and_then(|r| r.get(b"v")).map(Value::to_bytes);
        let (v, o) = match (a.r(), got) {
            (Some(_), Some(got)) if got == value => {
                (Verdict::Pass, "`v` is the value put".to_owned())
            }
            (Some(_), Some(got)) => (Verdict::Fail, format!("another `v`: {}", show(&got))),
            (Some(_), None) => (Verdict::Fail, format!("no `v`: {}", a.describe())),
            (None, _) => Self::unanswered(&a),
        };
        self.record("get_immutable", 44, "`v`: the value put", v, o);

        let mut bad = token.clone();
        for b in &mut bad {
            *b ^= 0x5a;
        }
        let a = self
            .ask(
                "put",
                args([
                    ("token", bytes(&bad)),
                    ("v", bytes("xorro probe, bad token")),
                ]),
            )
            .await;
        let (v, o) = Self::refused(&a, 203, Verdict::Fail);
        self.record("put_bad_token", 44, "error 203 (bad token)", v, o);

        // Mutable with salt: put seq 1, get, update to seq 2, get.
        let keypair = Keypair::from_seed(rand::random());
        let key = keypair.public_key();
        let target = bep44::mutable_target(&key, Some(SALT));
        let (_, token) = self.get(target).await;
        let token = token.unwrap_or_else(|| b"none".to_vec());
        let one = Value::Bytes(b"xorro probe: seq 1".to_vec()).to_bytes();
        let two = Value::Bytes(b"xorro probe: seq 2".to_vec()).to_bytes();
        let a = self
            .put_mutable(&keypair, SALT, 1, &one, &token, None, None)
            .await;
        let (v, o) = match &a {
            Answer::Response { .. } => (Verdict::Pass, "stored".to_owned()),
            other => Self::unsupported(other),
        };
        self.record("put_mutable_salt", 44, "response: stored", v, o);

        let (v, o) = self.check_mutable(target, &key, 1, &one).await;
        self.record(
            "get_mutable_salt",
            44,
            "`k`, `seq`, `sig` (valid over salt, seq, v) and `v`",
            v,
            o,
        );

        let a = self
            .put_mutable(&keypair, SALT, 2, &two, &token, Some(1), None)
            .await;
        let stored = matches!(a, Answer::Response { .. });
        let (v, o) = if stored {
            self.check_mutable(target, &key, 2, &two).await
        } else {
            Self::unsupported(&a)
        };
        self.record(
            "put_mutable_update",
            44,
            "a put with a higher seq (and cas = current seq) replaces the item",
            v,
            o,
        );

        // What a storing node must refuse.
        let a = self
            .put_mutable(&keypair, SALT, 1, &one, &token, None, None)
            .await;
        let (v, o) = Self::refused(&a, 302, Verdict::Fail);
        self.record("put_mutable_seq_too_low", 44, "error 302", v, o);

        let three = Value::Bytes(b"xorro probe: seq 3".to_vec()).to_bytes();
        let a = self
            .put_mutable(&keypair, SALT, 3, &three, &token, Some(1), None)
            .await;
        let (v, o) = Self::refused(&a, 301, Verdict::Fail);
        self.record("put_mutable_cas_mismatch", 44, "error 301", v, o);

        let raw3 = RawValue::new(&three).expect("bencoded");
        let mut sig = keypair.sign(Some(SALT), 3, &raw3);
        sig.0[10] ^= 0x01;
        let a = self
            .put_mutable(&keypair, SALT, 3, &three, &token, None, Some(sig))
            .await;
        let (v, o) = Self::refused(&a, 206, Verdict::Fail);
        self.record("put_mutable_bad_signature", 44, "error 206", v, o);

        let long_salt = [b's'; 65];
        let target = bep44::mutable_target(&key, Some(&long_salt));
        let (_, token) = self.get(target).await;
        let token = token.unwrap_or_else(|| b"none".to_vec());
        let a = self
            .put_mutable(&keypair, &long_salt, 1, &one, &token, None, None)
            .await;
        let (v, o) = Self::refused(&a, 207, Verdict::Deviation);
        self.record("put_salt_too_big", 44, "error 207 for a 65-byte salt", v, o);

        // 1001 bytes of content, 1006 bencoded: over the limit however it is counted
        // (bittorrent-dht counts the string's content, BEP 44 the bencoded form).
        let big = Value::Bytes(vec![b'x'; 1001]).to_bytes();
        let raw = RawValue::new(&big).expect("bencoded");
        let (_, token) = self.get(bep44::immutable_target(&raw)).await;
        let token = token.unwrap_or_else(|| b"none".to_vec());
        let a = self
            .ask(
                "put",
                args([
                    ("token", bytes(&token)),
                    ("v", Value::parse(&raw).expect("parses")),
                ]),
            )
            .await;
        let (v, o) = Self::refused(&a, 205, Verdict::Deviation);
        self.record(
            "put_value_too_big",
            44,
            "error 205 for a v of 1006 bytes (BEP 44: a node MAY refuse v over 1000 bytes)",
            v,
            o,
        );
    }

    async fn check_mutable(
        &mut self,
        target: NodeId,
        key: &PublicKey,
        seq: i64,
        value: &[u8],
    ) -> (Verdict, String) {
        let (a, _) = self.get(target).await;
        let Some(r) = a.r() else {
            return Self::unanswered(&a);
        };
        let got_v = r.get(b"v").map(Value::to_bytes);
        let got_k = r.get(b"k").and_then(Value::as_bytes);
        let got_seq = r.get(b"seq").and_then(Value::as_int);
        let got_sig = r
            .get(b"sig")
            .and_then(Value::as_bytes)
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
            .map(Signature);
        let (Some(v), Some(k), Some(s), Some(sig)) = (&got_v, got_k, got_seq, got_sig) else {
            return (
                Verdict::Fail,
                format!("missing k, seq, sig or v: {}", a.describe()),
            );
        };
        if k != key.0 {
            return (Verdict::Fail, "another `k`".to_owned());
        }
        if s != seq || v != value {
            return (
                Verdict::Fail,
                format!("seq {s} and v {} instead of seq {seq}", show(v)),
            );
        }
        let raw = RawValue::new(v).expect("re-encoded bencode");
        if !bep44::verify(key, &sig, Some(SALT), s, &raw) {
            return (Verdict::Fail, "the signature does not verify".to_owned());
        }
        (Verdict::Pass, format!("seq {s}, signature valid"))
    }

    async fn extensions(&mut self) {
        // BEP 51.
        let a = self
            .ask(
                "sample_infohashes",
                args([("target", bytes(rand::random::<[u8; 20]>()))]),
            )
            .await;
        let (v, o) = match a.r() {
            Some(r) => {
                let samples = r.get(b"samples").and_then(Value::as_bytes);
                let num = r.get(b"num").and_then(Value::as_int);
                let interval = r.get(b"interval").and_then(Value::as_int);
                let nodes = self.own_nodes_ok(r);
                match (samples, num, interval, nodes) {
                    (Some(s), Some(num), Some(i), Ok(n))
                        if s.len() % 20 == 0 && num >= 0 && (0..=21600).contains(&i) =>
                    {
                        (
                            Verdict::Pass,
                            format!(
                                "{} samples, num {num}, interval {i} s, {n} nodes",
                                s.len() / 20
                            ),
                        )
                    }
                    _ => (
                        Verdict::Fail,
                        format!("missing or malformed keys: {}", a.describe()),
                    ),
                }
            }
            None => Self::unsupported(&a),
        };
        let expected = if self.target.is_ipv4() {
            "`samples` (20 bytes each), `num`, `interval` (0–21600), `nodes`"
        } else {
            "`samples` (20 bytes each), `num`, `interval` (0–21600), `nodes6`"
        };
        self.record("sample_infohashes", 51, expected, v, o);

        // Unknown methods.
        let a = self.ask("xorro_probe_unknown", BTreeMap::new()).await;
        let (v, o) = match &a {
            Answer::Error { code: 204, .. } => (Verdict::Pass, a.describe()),
            Answer::Error { .. } | Answer::Response { .. } => (Verdict::Deviation, a.describe()),
            Answer::Silence => (Verdict::NoAnswer, a.describe()),
            Answer::Other(s) => (Verdict::Fail, s.clone()),
        };
        self.record("unknown_method", 5, "error 204 (method unknown)", v, o);

        let a = self
            .ask(
                "xorro_probe_unknown",
                args([("target", bytes(rand::random::<[u8; 20]>()))]),
            )
            .await;
        let (v, o) = match &a {
            Answer::Response { r, .. } => match self.own_nodes_ok(r) {
                Ok(n) => (Verdict::Pass, format!("answered like find_node: {n} nodes")),
                Err(e) => (Verdict::Deviation, e),
            },
            Answer::Error { .. } => (Verdict::Deviation, a.describe()),
            Answer::Silence => (Verdict::NoAnswer, a.describe()),
            Answer::Other(s) => (Verdict::Fail, s.clone()),
        };
        self.record(
            "unknown_method_with_target",
            5,
            "answered like find_node (forward compatibility, as libtorrent does; BEP 5 is silent)",
            v,
            o,
        );

        // BEP 43: a read-only node's query is still answered.
        let (datagram, t) = {
            let t = self.fresh_t();
            let msg = dict([
                ("a", dict([("id", bytes(self.our_id))])),
                ("q", bytes("ping")),
                ("ro", Value::Int(1)),
                ("t", bytes(&t)),
                ("y", bytes("q")),
            ]);
            (msg.to_bytes(), t)
        };
        self.send(&datagram).await;
        let a = self.wait(&t).await;
        let (v, o) = match &a {
            Answer::Response { .. } => (Verdict::Pass, "answered".to_owned()),
            Answer::Silence => (Verdict::NoAnswer, a.describe()),
            other => (Verdict::Fail, other.describe()),
        };
        self.record(
            "read_only_query",
            43,
            "a query with `ro = 1` is answered (the querier must stay out of the table: not visible)",
            v,
            o,
        );
    }

    /// Sends `bad`, then a ping whose `t` is `follow_t`; returns what answered `bad` (by its
    /// `t` when it has one, else anything that came before the ping's reply) and the ping's
    /// answer, which tells whether the node is still alive.
    async fn malformed_then_ping(
        &mut self,
        bad: &[u8],
        bad_t: Option<&[u8]>,
        follow_t: &[u8],
    ) -> (Option<Unmatched>, Answer) {
        self.send(bad).await;
        let ping = dict([
            ("a", dict([("id", bytes(self.our_id))])),
            ("q", bytes("ping")),
            ("t", bytes(follow_t)),
            ("y", bytes("q")),
        ])
        .to_bytes();
        self.send(&ping).await;
        // A node answers in order, so a reply to `bad` comes before the ping's.
        let ts: Vec<&[u8]> = bad_t.into_iter().chain([follow_t]).collect();
        let (found, others) = self.wait_any(&ts).await;
        match found {
            Some((0, answer)) if bad_t.is_some() => {
                let ping = self.wait(follow_t).await;
                // Matched by its own `t`: nothing to add.
                let t = String::new();
                (Some(Unmatched { answer, t }), ping)
            }
            Some((_, ping)) => (others.into_iter().next(), ping),
            None => (others.into_iter().next(), Answer::Silence),
        }
    }

    async fn malformed(&mut self) {
        let id = bytes(self.our_id);
        // (name, expected, datagram, its t, the t length of the ping that follows)
        let t_bad = |n: u8| vec![b'm', n];
        let ping_with = |a: Value, t: &[u8]| {
            dict([
                ("a", a),
                ("q", bytes("ping")),
                ("t", bytes(t)),
                ("y", bytes("q")),
            ])
            .to_bytes()
        };
        let mut garbage: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
        garbage[0] = 0xff; // never a valid bencode start
        let full = ping_with(dict([("id", id.clone())]), &t_bad(0));
        let truncated = full[..full.len() / 2].to_vec();
        let without_t = dict([
            ("a", dict([("id", id.clone())])),
            ("q", bytes("ping")),
            ("y", bytes("q")),
        ])
        .to_bytes();
        let without_a = dict([
            ("q", bytes("ping")),
            ("t", bytes(t_bad(5))),
            ("y", bytes("q")),
        ])
        .to_bytes();
        let short_hash = dict([
            (
                "a",
                dict([("id", id.clone()), ("info_hash", bytes(b"short"))]),
            ),
            ("q", bytes("get_peers")),
            ("t", bytes(t_bad(6))),
            ("y", bytes("q")),
        ])
        .to_bytes();

        struct Case {
            name: &'static str,
            expected: &'static str,
            datagram: Vec<u8>,
            t: Option<Vec<u8>>,
            /// Expected error code, or None: no reply expected (no `t` to echo).
            code: Option<i64>,
            follow_t_len: usize,
        }
        let cases = vec![
            Case {
                name: "garbage",
                expected: "no reply (nothing to echo), node keeps answering",
                datagram: garbage,
                t: None,
                code: None,
                follow_t_len: 1,
            },
            Case {
                name: "truncated_bencode",
                expected: "no reply or error 203, node keeps answering",
                datagram: truncated,
                t: None,
                code: None,
                follow_t_len: 2,
            },
            Case {
                name: "wrong_type_id",
                expected: "error 203 (`id` is an integer)",
                datagram: ping_with(dict([("id", Value::Int(42))]), &t_bad(2)),
                t: Some(t_bad(2)),
                code: Some(203),
                follow_t_len: 4,
            },
            Case {
                name: "missing_id",
                expected: "error 203 (`a` without `id`)",
                datagram: ping_with(dict([]), &t_bad(3)),
                t: Some(t_bad(3)),
                code: Some(203),
                follow_t_len: 8,
            },
            Case {
                name: "missing_a",
                expected: "error 203 (query without `a`)",
                datagram: without_a,
                t: Some(t_bad(5)),
                code: Some(203),
                follow_t_len: 20,
            },
            Case {
                name: "missing_t",
                expected: "no reply (nothing to echo), node keeps answering",
                datagram: without_t,
                t: None,
                code: None,
                follow_t_len: 2,
            },
            Case {
                name: "short_info_hash",
                expected: "error 203 (5-byte info_hash)",
                datagram: short_hash,
                t: Some(t_bad(6)),
                code: Some(203),
                follow_t_len: 2,
            },
        ];
        let mut tid_results: Vec<(usize, Answer)> = Vec::new();
        for case in cases {
            let follow_t: Vec<u8> = (0..case.follow_t_len)
                .map(|_| rand::random::<u8>())
                .collect();
            let (reply, ping) = self
                .malformed_then_ping(&case.datagram, case.t.as_deref(), &follow_t)
                .await;
            let alive = matches!(ping, Answer::Response { .. });
            let said = reply
                .as_ref()
                .map_or_else(|| "no reply".to_owned(), Unmatched::describe);
            let reply = reply.map(|r| r.answer);
            let (v, o) = if !alive {
                (
                    Verdict::Fail,
                    format!(
                        "{said}; then the node did not answer a ping ({})",
                        ping.describe()
                    ),
                )
            } else {
                match (case.code, &reply) {
                    (None, None | Some(Answer::Error { .. })) => (Verdict::Pass, said),
                    (None, Some(_)) => (Verdict::Deviation, said),
                    (Some(code), Some(Answer::Error { code: c, .. })) if *c == code => {
                        (Verdict::Pass, said)
                    }
                    (Some(_), Some(Answer::Response { .. })) => {
                        (Verdict::Deviation, format!("accepted: {said}"))
                    }
                    (Some(_), Some(_)) => (Verdict::Deviation, said),
                    (Some(_), None) => (Verdict::Deviation, "dropped silently".to_owned()),
                }
            };
            self.record(case.name, 5, case.expected, v, o);
            if !tid_results.iter().any(|(len, _)| *len == case.follow_t_len) {
                tid_results.push((case.follow_t_len, ping));
            }
        }

        // The ping after each malformed input had a transaction id of 1, 2, 4, 8 or 20 bytes,
        // and replies are matched by `t`: an answer proves the echo.
        tid_results.sort_by_key(|(len, _)| *len);
        for (len, answer) in tid_results {
            let (v, o) = match &answer {
                Answer::Response { .. } => (Verdict::Pass, "echoed verbatim".to_owned()),
                Answer::Silence => (Verdict::NoAnswer, "no reply with this t".to_owned()),
                other => (Verdict::Fail, other.describe()),
            };
            let name = match len {
                1 => "transaction_id_1_byte",
                2 => "transaction_id_2_bytes",
                4 => "transaction_id_4_bytes",
                8 => "transaction_id_8_bytes",
                _ => "transaction_id_20_bytes",
            };
            self.record(name, 5, "the reply echoes `t` verbatim", v, o);
        }
    }

    async fn finish(&mut self) {
        // BEP 42: `ip` in every response.
        let (v, o) = if !self.bad_ip.is_empty() {
            (
                Verdict::Fail,
                format!("malformed `ip`: {}", self.bad_ip.join(", ")),
            )
        } else if self.with_ip == 0 {
            (
                Verdict::Deviation,
                format!("no `ip` in any of {} responses", self.responses),
            )
        } else if self.with_ip < self.responses {
            (
                Verdict::Deviation,
                format!("`ip` in {} of {} responses", self.with_ip, self.responses),
            )
        } else {
            let seen = self.seen_as.map(|a| a.to_string()).unwrap_or_default();
            let note = if self.seen_as == Some(self.local) {
                " (our socket's address)"
            } else {
                ""
            };
            (
                Verdict::Pass,
                format!("in all {} responses: {seen}{note}", self.responses),
            )
        };
        self.record(
            "ip_in_responses",
            42,
            "`ip`: the requester's compact address, in every response",
            v,
            o,
        );

        let a = self.ask("ping", BTreeMap::new()).await;
        let (v, o) = match &a {
            Answer::Response { .. } => (Verdict::Pass, "answered".to_owned()),
            other => (
                Verdict::Fail,
                format!("{}: the node stopped answering", other.describe()),
            ),
        };
        self.record("alive_at_end", 5, "the node still answers ping", v, o);
    }
}

/// A reply that matched no query we waited for, with its `t` (hex, or what it was).
#[derive(Debug)]
struct Unmatched {
    answer: Answer,
    t: String,
}

impl Unmatched {
    fn describe(&self) -> String {
        if self.t.is_empty() {
            self.answer.describe()
        } else {
            format!("{} with t = {}", self.answer.describe(), self.t)
        }
    }
}

/// Query arguments from pairs (`id` is added by [`Prober::query`]).
fn args<const N: usize>(pairs: [(&str, Value); N]) -> BTreeMap<Vec<u8>, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v))
        .collect()
}
