//! Test harness for the interop tests of `crates/xorro-node/tests/interop_*.rs`: third-party
//! DHT nodes as child processes, and Xorro nodes, all on their own loopback addresses.
//!
//! Included by each test file with
//! `#[path = "../../../interop/peers/harness.rs"] mod harness;`.
//!
//! A [`Peer`] is one libtorrent or bittorrent-dht node run by a driver script of this folder
//! (`libtorrent_peer.py` under Debian's `/usr/bin/python3`, `bittorrent_dht_peer.mjs` under
//! `node`): the test writes one JSON command a line to its stdin and reads one JSON answer a
//! line from its stdout. The process is killed when the `Peer` is dropped. Every wait has a
//! deadline; a missing peer fails the test with the command that installs it.
//!
//! Addresses: every node gets its own address in 127.0.0.0/8 (Linux routes all of it to
//! `lo`), so per-IP limits (libtorrent: one routing-table entry and one rate-limit bucket per
//! IP; Xorro: one rate-limit bucket per IP) never see two nodes as one. Each test file uses
//! its own second octet and each test its own third octet, so tests may run in parallel.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;
use xorro_node::Dht;
use xorro_wire::NodeId;

/// The Python that has Debian's libtorrent bindings (`LT_PYTHON` overrides it).
pub fn lt_python() -> String {
    std::env::var("LT_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_owned())
}

/// The Node.js binary (`NODE` overrides it).
pub fn node_bin() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".to_owned())
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn peers_dir() -> PathBuf {
    repo_root().join("interop/peers")
}

/// How a failure caused by a third-party peer's crash (its process killed by a signal) starts.
pub const PEER_CRASHED: &str = "crashed (killed by signal";

/// Runs a test body; when it fails because a third-party peer crashed, runs it once more with
/// fresh peers and says so on stderr. Another failure, or a second crash, fails the test.
///
/// libtorrent 2.0.8 (Debian's python3-libtorrent) segfaults now and then in these tests, in
/// its own code, on traffic it handles fine thousands of times otherwise (seen 2 times in
/// about 100 runs of the interop tests on a loaded machine; docs/INTEROP.md). A crash is a
/// bug of that peer, not a result about Xorro; a second one in a row is reported as a failure.
pub async fn retry_once_if_a_peer_crashes<F, Fut>(body: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    for attempt in 1..=2 {
        let Err(e) = tokio::spawn(body()).await else {
            return;
        };
        let Ok(payload) = e.try_into_panic() else {
            panic!("the test body was cancelled");
        };
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if attempt == 1 && message.contains(PEER_CRASHED) {
            eprintln!(
                "WARNING: a third-party peer crashed (a bug of that peer); running the test \
                 once more with fresh peers. The failure was:\n{message}"
            );
            continue;
        }
        std::panic::resume_unwind(payload);
    }
}

/// A third-party implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// libtorrent-rasterbar (Debian's python3-libtorrent).
    Libtorrent,
    /// webtorrent's bittorrent-dht on Node.js.
    BittorrentDht,
}

impl Impl {
    pub fn name(self) -> &'static str {
        match self {
            Impl::Libtorrent => "libtorrent",
            Impl::BittorrentDht => "bittorrent-dht",
        }
    }

    /// Fails the test (never skips) when the implementation is not installed.
    pub fn require(self) {
        const HOW: &str = "run ./scripts/install-peers.sh (the README's test command, \
                           ./scripts/test, does it); interop tests never skip";
        match self {
            Impl::Libtorrent => {
                let py = lt_python();
                let ok = std::process::Command::new(&py)
                    .args(["-c", "import libtorrent"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(
                    ok,
                    "libtorrent's Python bindings do not import under {py} \
                     (Debian package python3-libtorrent): {HOW}"
                );
            }
            Impl::BittorrentDht => {
                let node = node_bin();
                let ok = std::process::Command::new(&node)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "Node.js ({node}) is not installed: {HOW}");
                let module = repo_root().join("interop/js/node_modules/bittorrent-dht/index.js");
                assert!(
                    module.exists(),
                    "{} is missing (npm ci in interop/js): {HOW}",
                    module.display()
                );
            }
        }
    }
}

/// Our loopback address number `host` of test `test` in file `file`: 127.file.test.host.
pub fn ip(file: u8, test: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, file, test, host)
}

/// How long a driver command may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// One running third-party node.
#[derive(Debug)]
pub struct Peer {
    pub kind: Impl,
    /// Where it listens (its DHT socket).
    pub addr: SocketAddr,
    /// Its node id.
    pub id: NodeId,
    /// The implementation's version.
    pub version: String,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Peer {
    /// Starts a node of `kind` on `bind` (any free port) that bootstraps from `bootstrap`
    /// (loopback addresses only; none: it waits to be contacted).
    pub async fn start(kind: Impl, bind: Ipv4Addr, bootstrap: &[SocketAddr]) -> Peer {
        kind.require();
        assert!(bind.is_loopback(), "peers bind loopback addresses only");
        for b in bootstrap {
            assert!(
                b.ip().is_loopback(),
                "peers bootstrap from loopback only: {b}"
            );
        }
        let list: Vec<String> = bootstrap.iter().map(ToString::to_string).collect();
        let mut cmd = match kind {
            Impl::Libtorrent => {
                let mut c = Command::new(lt_python());
                // A crash inside libtorrent then prints the Python stack to stderr.
                c.arg("-X").arg("faulthandler");
                c.arg(peers_dir().join("libtorrent_peer.py"));
                c
            }
            Impl::BittorrentDht => {
                let mut c = Command::new(node_bin());
                c.arg(peers_dir().join("bittorrent_dht_peer.mjs"));
                c
            }
        };
        cmd.arg("--bind")
            .arg(format!("{bind}:0"))
            .arg("--bootstrap")
            .arg(list.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {} driver: {e}", kind.name()));
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let log = stderr.clone();
        let mut err_lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        // XORRO_INTEROP_LOG=1 shows the drivers' logs as they come (cargo test -- --nocapture).
        let echo = std::env::var_os("XORRO_INTEROP_LOG").is_some();
        let who = format!("{} {bind}", kind.name());
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                if echo {
                    eprintln!("[{who}] {line}");
                }
                let mut l = log.lock().unwrap();
                if l.len() == 200 {
                    l.pop_front();
                }
                l.push_back(line);
            }
        });
        let mut peer = Peer {
            kind,
            addr: SocketAddr::from((bind, 0)),
            id: NodeId::ZERO,
            version: String::new(),
            child,
            stdin,
            stdout,
            stderr,
        };
        let ready = peer.read_line(Duration::from_secs(30)).await;
        if ready["event"] != "ready" {
            peer.fail(&format!("did not start: {ready}"));
        }
        peer.addr = ready["addr"].as_str().unwrap().parse().unwrap();
        peer.id = ready["id"].as_str().unwrap().parse().unwrap();
        peer.version = ready["version"].as_str().unwrap_or("?").to_owned();
        peer
    }

    fn fail(&self, what: &str) -> ! {
        let log: Vec<String> = self.stderr.lock().unwrap().iter().cloned().collect();
        panic!(
            "{} at {}: {what}\n--- its stderr (last lines) ---\n{}",
            self.kind.name(),
            self.addr,
            log.join("\n")
        )
    }

    async fn read_line(&mut self, within: Duration) -> Value {
        match tokio::time::timeout(within, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => serde_json::from_str(&line)
                .unwrap_or_else(|e| self.fail(&format!("bad output line {line:?}: {e}"))),
            Ok(Ok(None)) => {
                // Let the stderr reader catch the last lines (a crash report) first.
                let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok);
                tokio::time::sleep(Duration::from_millis(200)).await;
                match status.and_then(|s| s.signal()) {
                    Some(sig) => self.fail(&format!("{PEER_CRASHED} {sig})")),
                    None => self.fail(&format!("exited ({status:?})")),
                }
            }
            Ok(Err(e)) => self.fail(&format!("reading its output: {e}")),
            Err(_) => self.fail(&format!("no answer within {within:?}")),
        }
    }

    /// Fails the test, marked as a crash of the peer, when its process was killed by a signal.
    pub async fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait()
            && let Some(sig) = status.signal()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.fail(&format!("{PEER_CRASHED} {sig})"));
        }
    }

    /// Sends one command and returns its answer, or the driver's error message.
    pub async fn try_call(&mut self, mut cmd: Value) -> Result<Value, String> {
        cmd["timeout"] = json!(COMMAND_TIMEOUT.as_secs());
        let mut line = cmd.to_string();
        line.push('\n');
        if let Err(e) = self.stdin.write_all(line.as_bytes()).await {
            self.fail(&format!("cannot send {cmd}: {e}"));
        }
        let _ = self.stdin.flush().await;
        let answer = self
            .read_line(COMMAND_TIMEOUT + Duration::from_secs(10))
            .await;
        if answer["ok"] == true {
            Ok(answer)
        } else {
            Err(answer["error"].as_str().unwrap_or("?").to_owned())
        }
    }

    /// Sends one command; fails the test if it fails.
    pub async fn call(&mut self, cmd: Value) -> Value {
        match self.try_call(cmd.clone()).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("{cmd} failed: {e}")),
        }
    }

    /// add_dht_node / addNode for each address, then a lookup for our own id.
    pub async fn add_nodes(&mut self, addrs: &[SocketAddr]) {
        let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        self.call(json!({"cmd": "add_nodes", "addrs": addrs, "lookup": true}))
            .await;
    }

    /// The routing table's contacts.
    pub async fn routing_table(&mut self) -> Vec<(NodeId, SocketAddr)> {
        let r = self.call(json!({"cmd": "routing_table"})).await;
        r["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["id"].as_str().unwrap().parse().unwrap(),
                    n["addr"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    /// Polls the routing table (every 200 ms, at most `within`) until it holds every address
    /// of `addrs`; returns the last table read, and whether it did.
    pub async fn wait_for_contacts(
        &mut self,
        addrs: &[SocketAddr],
        within: Duration,
    ) -> (bool, Vec<(NodeId, SocketAddr)>) {
        let deadline = Instant::now() + within;
        loop {
            let table = self.routing_table().await;
            let all = addrs.iter().all(|a| table.iter().any(|(_, t)| t == a));
            if all || Instant::now() >= deadline {
                return (all, table);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Peers found by a get_peers lookup.
    pub async fn get_peers(&mut self, info_hash: &str) -> Vec<SocketAddr> {
        let r = self
            .call(json!({"cmd": "get_peers", "info_hash": info_hash}))
            .await;
        addrs(&r["peers"])
    }

    /// The driver's count of datagrams sent and received, per remote address and kind
    /// (`q:<method>`, `r`, `e`).
    pub async fn traffic(&mut self) -> Value {
        self.call(json!({"cmd": "traffic"})).await
    }

    /// Stops the process (also done on drop).
    pub async fn quit(mut self) {
        let _ = self.try_call(json!({"cmd": "quit"})).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// `["ip:port", ...]` to addresses.
pub fn addrs(v: &Value) -> Vec<SocketAddr> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// A Xorro node on `bind` (any free port) that bootstraps from `bootstrap` only.
pub async fn xorro(bind: Ipv4Addr, bootstrap: &[SocketAddr]) -> Dht {
    Dht::builder()
        .bind([SocketAddr::from((bind, 0))])
        .public_bootstrap(false)
        .bootstrap(bootstrap.iter().map(ToString::to_string))
        .start()
        .await
        .expect("a Xorro node starts")
}

/// The addresses in a Xorro node's routing tables.
pub async fn xorro_table(dht: &Dht) -> Vec<(NodeId, SocketAddr)> {
    dht.routing_table()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.node.id, c.node.addr))
        .collect()
}

/// Polls `check` every 100 ms until it returns true or `within` has passed; returns whether
/// it did. Use it to wait for what the network does by itself (a table filling); assert on
/// the result.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of hex (the drivers' output).
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from the driver"))
        .collect()
}

/// A bencoded string.
pub fn bstr(s: &str) -> Vec<u8> {
    format!("{}:{s}", s.len()).into_bytes()
}

/// A fresh info-hash, from a label (SHA-1 would be overkill: tests need distinct values).
pub fn info_hash(label: &str) -> String {
    let mut b = [0u8; 20];
    for (i, c) in label.bytes().enumerate() {
        b[i % 20] = b[i % 20].wrapping_mul(31).wrapping_add(c);
    }
    hex(&b)
}

/// Runs `xorro probe` against `peer` from `from`, prints the table, and writes it (Markdown
/// and JSON) to `$CARGO_TARGET_TMPDIR/probe-<impl>.{md,json}` for docs/INTEROP.md.
pub async fn probe_peer(peer: &Peer, from: Ipv4Addr) -> xorro_node::probe::ProbeReport {
    use xorro_node::probe::{ProbeOptions, probe};
    let opts = ProbeOptions {
        bind: Some(SocketAddr::from((from, 0))),
        timeout: Duration::from_secs(1),
        ..ProbeOptions::default()
    };
    let report = probe(peer.addr, &opts).await;
    println!("{} {}\n{report}", peer.kind.name(), peer.version);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let name = format!("probe-{}", peer.kind.name());
    let _ = std::fs::write(
        dir.join(format!("{name}.md")),
        format!("{} {}\n\n{report}", peer.kind.name(), peer.version),
    );
    let _ = std::fs::write(dir.join(format!("{name}.json")), report.to_json());
    report
}

/// Compares a probe report with the verdicts recorded in docs/INTEROP.md (`expected`: check
/// name, verdict), so that the document stays true.
pub fn check_probe(report: &xorro_node::probe::ProbeReport, expected: &[(&str, &str)]) {
    let mut diffs = Vec::new();
    for c in &report.checks {
        let want = expected.iter().find(|(n, _)| *n == c.name).map(|(_, v)| *v);
        let got = c.verdict.to_string();
        if want != Some(got.as_str()) {
            diffs.push(format!(
                "{}: {got} ({}), docs/INTEROP.md says {}",
                c.name,
                c.observed,
                want.unwrap_or("nothing")
            ));
        }
    }
    for (name, _) in expected {
        if report.check(name).is_none() {
            diffs.push(format!("{name}: not in the report"));
        }
    }
    assert!(
        diffs.is_empty(),
        "the probe's results differ from docs/INTEROP.md (update it if the peer changed):\n{}\n\n{report}",
        diffs.join("\n")
    );
}

/// The probe's verdicts for libtorrent 2.0.8, as docs/INTEROP.md records them.
pub const LIBTORRENT_PROBE: &[(&str, &str)] = &[
    ("ping", "pass"),
    ("find_node", "pass"),
    ("find_node_want_n4_n6", "pass"),
    ("get_peers", "pass"),
    ("announce_peer", "pass"),
    ("get_peers_after_announce", "pass"),
    ("announce_peer_bad_token", "pass"),
    ("get_peers_scrape", "pass"),
    ("get_no_item", "pass"),
    ("put_immutable", "pass"),
    ("get_immutable", "pass"),
    ("put_bad_token", "pass"),
    ("put_mutable_salt", "pass"),
    ("get_mutable_salt", "pass"),
    ("put_mutable_update", "pass"),
    ("put_mutable_seq_too_low", "pass"),
    ("put_mutable_cas_mismatch", "pass"),
    ("put_mutable_bad_signature", "pass"),
    ("put_salt_too_big", "pass"),
    ("put_value_too_big", "pass"),
    ("sample_infohashes", "pass"),
    ("unknown_method", "deviation"),
    ("unknown_method_with_target", "pass"),
    ("read_only_query", "pass"),
    ("garbage", "pass"),
    ("truncated_bencode", "pass"),
    ("wrong_type_id", "pass"),
    ("missing_id", "pass"),
    ("missing_a", "pass"),
    ("missing_t", "deviation"),
    ("short_info_hash", "pass"),
    ("transaction_id_1_byte", "pass"),
    ("transaction_id_2_bytes", "pass"),
    ("transaction_id_4_bytes", "pass"),
    ("transaction_id_8_bytes", "pass"),
    ("transaction_id_20_bytes", "pass"),
    ("ip_in_responses", "pass"),
    ("alive_at_end", "pass"),
];

/// The probe's verdicts for bittorrent-dht 11.0.12, as docs/INTEROP.md records them.
pub const BITTORRENT_DHT_PROBE: &[(&str, &str)] = &[
    ("ping", "pass"),
    ("find_node", "pass"),
    ("find_node_want_n4_n6", "pass"),
    ("get_peers", "pass"),
    ("announce_peer", "pass"),
    ("get_peers_after_announce", "pass"),
    ("announce_peer_bad_token", "pass"),
    ("get_peers_scrape", "deviation"),
    ("get_no_item", "pass"),
    ("put_immutable", "pass"),
    ("get_immutable", "pass"),
    ("put_bad_token", "pass"),
    ("put_mutable_salt", "pass"),
    ("get_mutable_salt", "pass"),
    ("put_mutable_update", "pass"),
    ("put_mutable_seq_too_low", "pass"),
    ("put_mutable_cas_mismatch", "pass"),
    ("put_mutable_bad_signature", "no answer"),
    ("put_salt_too_big", "deviation"),
    ("put_value_too_big", "pass"),
    ("sample_infohashes", "no answer"),
    ("unknown_method", "no answer"),
    ("unknown_method_with_target", "no answer"),
    ("read_only_query", "pass"),
    ("garbage", "pass"),
    ("truncated_bencode", "pass"),
    ("wrong_type_id", "deviation"),
    ("missing_id", "deviation"),
    ("missing_a", "deviation"),
    ("missing_t", "deviation"),
    ("short_info_hash", "deviation"),
    ("transaction_id_1_byte", "pass"),
    ("transaction_id_2_bytes", "pass"),
    ("transaction_id_4_bytes", "pass"),
    ("transaction_id_8_bytes", "pass"),
    ("transaction_id_20_bytes", "pass"),
    ("ip_in_responses", "deviation"),
    ("alive_at_end", "pass"),
];
