//! The `xorro` command end to end: daemons on 127.0.0.1 (each with its own data directory),
//! the client commands against their HTTP APIs, the testnet, and the error paths.
//!
//! Nothing here contacts an address outside 127.0.0.0/8: every node gets
//! `--no-public-bootstrap` or a loopback `--bootstrap`. Waits poll with a deadline.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);
const INFOHASH: &str = "0123456789abcdef0123456789abcdef01234567";

/// The binary, with no XORRO_* setting inherited from the environment.
fn xorro() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xorro"));
    for (k, _) in std::env::vars() {
        if k.starts_with("XORRO_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn");
    c
}

fn run(args: &[&str]) -> Output {
    xorro().args(args).output().expect("the xorro binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Calls `f` until it returns `Some`, or panics with `what` after [`DEADLINE`].
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `xorro node` child process, killed when dropped.
struct Daemon {
    child: Child,
    api: String,
    udp: u16,
    data_dir: PathBuf,
    log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(bootstrap: Option<&Daemon>) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut d = Daemon::spawn(&data_dir, free_udp_port(), bootstrap, &[]);
        d._dir = Some(dir);
        d
    }

    fn spawn(data_dir: &Path, udp: u16, bootstrap: Option<&Daemon>, extra: &[&str]) -> Daemon {
        let api = format!("127.0.0.1:{}", free_tcp_port());
        let log = data_dir.with_extension(format!("{udp}.log"));
        let mut cmd = xorro();
        cmd.args([
            "node",
            "--port",
            &udp.to_string(),
            "--api",
            &api,
            "--no-public-bootstrap",
        ]);
        cmd.arg("--data-dir").arg(data_dir);
        if let Some(b) = bootstrap {
            cmd.args(["--bootstrap", &format!("127.0.0.1:{}", b.udp)]);
        }
        cmd.args(extra).env("RUST_LOG", "info");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("xorro node starts");
        let mut d = Daemon {
            child,
            api,
            udp,
            data_dir: data_dir.to_owned(),
            log,
            _dir: None,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let api = self.api.clone();
        let log = self.log.clone();
        let child = &mut self.child;
        wait_for("the node's API", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "xorro node exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            run(&["status", "--api", &api])
                .status
                .success()
                .then_some(())
        });
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let mut full = args.to_vec();
        full.extend_from_slice(&["--api", &self.api]);
        run(&full)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.push("--json");
        let out = self.cmd(&full);
        assert!(
            out.status.success(),
            "xorro {args:?} failed: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("xorro {args:?} --json: {e}: {}", text(&out.stdout)))
    }

    fn contacts(&self) -> u64 {
        self.json(&["status"])["table_v4"].as_u64().unwrap()
    }
}

/// Three nodes: the first is the bootstrap of the other two; returns once every node knows
/// the other two.
fn cluster() -> [Daemon; 3] {
    let a = Daemon::start(None);
    let b = Daemon::start(Some(&a));
    let c = Daemon::start(Some(&a));
    for d in [&a, &b, &c] {
        wait_for("full routing tables", || {
            if d.contacts() >= 2 {
                return Some(());
            }
            // Lookups are how nodes learn of each other: ask for something.
            let _ = d.cmd(&["find-node", INFOHASH]);
            None
        });
    }
    [a, b, c]
}

#[test]
fn announce_on_one_node_and_find_the_peer_from_another() {
    let [_a, b, c] = cluster();
    let out = wait_for("a stored announcement", || {
        let out = b.cmd(&["announce", INFOHASH]);
        out.status.success().then_some(out)
    });
    assert!(
        text(&out.stdout).contains("announced"),
        "{}",
        text(&out.stdout)
    );
    let peer = format!("127.0.0.1:{}", b.udp);
    let out = wait_for("the peer", || {
        let out = c.cmd(&["peers", INFOHASH]);
        (out.status.success() && text(&out.stdout).contains(&peer)).then_some(out)
    });
    assert_eq!(out.status.code(), Some(0));
    let json = c.json(&["peers", INFOHASH]);
    let peers: Vec<&str> = json["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(peers.contains(&peer.as_str()), "{json}");

    // Stop announcing: the node says so; a second time it is not announced (exit 1).
    let out = b.cmd(&["unannounce", INFOHASH]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(b.cmd(&["unannounce", INFOHASH]).status.code(), Some(1));
}

#[test]
fn immutable_put_on_one_node_get_from_another() {
    let [a, _b, c] = cluster();
    let put = wait_for("a stored item", || {
        let out = a.cmd(&["put", "hello, xorro", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    let target = put["target"].as_str().unwrap().to_owned();
    let out = wait_for("the item", || {
        let out = c.cmd(&["get", &target]);
        out.status.success().then_some(out)
    });
    assert_eq!(text(&out.stdout).trim(), "hello, xorro");
    let item = c.json(&["get", &target]);
    assert_eq!(item["value_utf8"], "hello, xorro");

    // A bencoded value given as hex comes back as such.
    let put = a.json(&["put", "--bencoded", "69343265"]);
    let item = c.json(&["get", put["target"].as_str().unwrap()]);
    assert_eq!(item["value_hex"], "69343265");
    assert_eq!(item["value_display"], "42");

    // An item nobody stored: exit 1 and a message.
    let out = c.cmd(&["get", INFOHASH]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("error: no node holds the item"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn mutable_put_then_update_then_get_returns_the_new_value() {
    let [a, b, c] = cluster();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    let key = key.to_str().unwrap();
    let first = wait_for("a stored mutable item", || {
        let out = a.cmd(&["put", "--mutable", "--key-file", key, "--salt", "s", "v1"]);
        out.status.success().then_some(out)
    });
    assert!(
        text(&first.stderr).contains("created the key file"),
        "{}",
        text(&first.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let second = b.json(&["put", "--mutable", "--key-file", key, "--salt", "s", "v2"]);
    let pk = second["public_key"].as_str().unwrap().to_owned();
    assert!(second["seq"].as_i64().unwrap() >= 2, "{second}");

    let item = wait_for("the new value", || {
        let out = c.cmd(&["get", "--mutable", "--key", &pk, "--salt", "s", "--json"]);
        let item: Value = serde_json::from_slice(&out.stdout).ok()?;
        (item["value_utf8"] == "v2").then_some(item)
    });
    assert_eq!(item["public_key"], pk.as_str());
    let out = c.cmd(&["get", "--mutable", "--key-file", key, "--salt", "s"]);
    assert_eq!(text(&out.stdout).trim(), "v2");
    // Another salt is another item.
    assert_eq!(
        c.cmd(&["get", "--mutable", "--key", &pk, "--salt", "other"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn testnet_of_50_nodes_starts_and_answers_status() {
    let api = format!("127.0.0.1:{}", free_tcp_port());
    let mut child = xorro()
        .args(["testnet", "--nodes", "50", "--api", &api])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let ready = wait_for("the ready line", || {
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
        lines
            .iter()
            .find(|l| l.starts_with("testnet ready: 50 nodes"))
            .cloned()
    });
    assert!(ready.contains("contacts each on average"), "{ready}");
    assert!(
        lines.iter().any(|l| l.starts_with("bootstrap: 127.0.0.1:")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains(&api)), "{lines:?}");

    let out = run(&["status", "--api", &api, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status["table_v4"].as_u64().unwrap() >= 8, "{status}");
    let out = run(&["routing-table", "--api", &api]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("contacts"));
}

#[test]
fn a_corrupted_database_is_a_one_line_error_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("xorro.redb"),
        b"this is not a redb database, just garbage".repeat(100),
    )
    .unwrap();
    let mut child = xorro()
        .args([
            "node",
            "--no-public-bootstrap",
            "--port",
            &free_udp_port().to_string(),
        ])
        .args(["--api", &format!("127.0.0.1:{}", free_tcp_port())])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_for("the node to exit", || child.try_wait().unwrap());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("cannot start the node"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("hint: ") && l.contains("xorro.redb")),
        "{stderr}"
    );
}

#[test]
fn bad_hex_is_a_usage_error_that_names_the_argument() {
    let out = run(&["peers", "0123456789ab"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: INFOHASH must be 40 hex digits, got 12 characters"
    );
    let out = run(&["get", "xyz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("TARGET must be 40 hex digits, got 3 characters"));
    let out = run(&["get", "--mutable", "--key", "abcd"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--key must be 64 hex digits, got 4 characters"));
    let out = run(&["put", "--bencoded", "zz"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["announce", INFOHASH, "--port", "70000"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap's own usage errors are 2 as well"
    );
    let out = run(&["node", "--bootstrap", "nohost", "--no-public-bootstrap"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--bootstrap must be host:port"));
}

#[test]
fn no_daemon_is_exit_code_3_with_a_hint() {
    let api = format!("127.0.0.1:{}", free_tcp_port());
    for args in [vec!["status"], vec!["peers", INFOHASH], vec!["put", "x"]] {
        let mut full = args.clone();
        full.extend_from_slice(&["--api", &api]);
        let out = run(&full);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("error: no xorro node answers at {api}: start one with `xorro node` (or `xorro testnet`)")),
            "{stderr}"
        );
    }
    // XORRO_API is the default --api.
    let out = xorro()
        .args(["status"])
        .env("XORRO_API", &api)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains(&api));
}

#[test]
fn json_output_parses() {
    let a = Daemon::start(None);
    let status = a.json(&["status"]);
    assert_eq!(status["id"].as_str().unwrap().len(), 40);
    assert!(status["stats"]["queries"].is_object());
    let table = a.json(&["routing-table"]);
    assert!(table["contacts"].is_array());
    // With an empty routing table a lookup fails: exit 1, an error and a hint.
    let out = a.cmd(&["find-node", INFOHASH]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("hint:"), "{}", text(&out.stderr));
}

#[test]
fn settings_come_from_env_over_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port) = (free_udp_port(), free_udp_port());
    let api = format!("127.0.0.1:{}", free_tcp_port());
    let config = dir.path().join("xorro.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!("port = {file_port}\napi = \"{api}\"\npublic_bootstrap = false\ndata_dir = {:?}\nread_only = true\n", data),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = xorro()
        .args(["node", "--config"])
        .arg(&config)
        .env("XORRO_PORT", env_port.to_string())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut d = Daemon {
        child,
        api,
        udp: env_port,
        data_dir: data.clone(),
        log: dir.path().join("log"),
        _dir: None,
    };
    d.wait_ready();
    let status = d.json(&["status"]);
    let addrs: Vec<&str> = status["local_addrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        addrs.iter().any(|a| a.ends_with(&format!(":{env_port}"))),
        "the environment beats the file: {addrs:?}"
    );
    assert_eq!(status["read_only"], true, "the file beats the default");
    assert!(
        data.join("xorro.redb").exists(),
        "the data directory comes from the file"
    );

    // A typo in the config file is a usage error.
    std::fs::write(&config, "prot = 1\n").unwrap();
    let out = xorro()
        .args(["node", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("prot"), "{}", text(&out.stderr));
}

#[test]
fn sigterm_saves_the_state_and_the_node_restarts_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let udp = free_udp_port();
    let mut d = Daemon::spawn(&data, udp, None, &[]);
    let id = d.json(&["status"])["id"].as_str().unwrap().to_owned();
    let killed = Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_for("the node to exit", || d.child.try_wait().unwrap());
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&d.log).unwrap_or_default()
    );
    drop(d);

    let d = Daemon::spawn(&data, udp, None, &[]);
    assert_eq!(d.json(&["status"])["id"].as_str().unwrap(), id);
    assert_eq!(d.data_dir, data);
}

#[test]
fn bench_counts_answers_of_a_node() {
    let a = Daemon::start(None);
    let target = format!("127.0.0.1:{}", a.udp);
    let pid = a.child.id().to_string();
    for query in ["ping", "find-node", "get-peers"] {
        let out = run(&[
            "bench",
            &target,
            "--query",
            query,
            "--sources",
            "4",
            "--window",
            "4",
            "--duration",
            "0.5",
            "--pid",
            &pid,
            "--json",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(r["answered"].as_u64().unwrap() > 0, "{r}");
        assert!(r["target_cpu_secs"].as_f64().is_some(), "{r}");
        assert_eq!(r["source_addrs"], "127.0.0.2 to 127.0.0.5");
    }
}

#[test]
fn probe_of_a_xorro_node_passes_every_check_and_a_silent_address_fails() {
    let a = Daemon::start(None);
    let target = format!("127.0.0.1:{}", a.udp);
    let out = run(&["probe", &target, "--strict", "--json"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() >= 30, "{} checks", checks.len());
    assert!(
        checks
            .iter()
            .all(|c| c["verdict"] == "Pass" || c["verdict"] == "pass"),
        "{report}"
    );

    // The same node over IPv6: BEP 32 answers carry `nodes6` there, and every check passes.
    let target6 = format!("[::1]:{}", a.udp);
    let out = run(&["probe", &target6, "--strict"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("`nodes6`"),
        "{}",
        text(&out.stdout)
    );

    // Nobody listens there: the node never answers, exit 1.
    let silent = format!("127.0.0.1:{}", free_udp_port());
    let out = run(&["probe", &silent, "--timeout-ms", "200"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    // A zero timeout is a usage error, before any traffic.
    let out = run(&["probe", &target, "--timeout-ms", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--timeout-ms"));
}

#[test]
fn a_closed_output_pipe_ends_a_command_quietly() {
    // `xorro probe ... | head -0`: the reader is gone before the report is written. The
    // command stops there and exits 0, with no panic message (println! would panic).
    let silent = format!("127.0.0.1:{}", free_udp_port());
    let mut child = xorro()
        .args(["probe", &silent, "--timeout-ms", "200", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// A small simulated network: 200 nodes, 20 lookups, 2 announces and 2 puts.
const SIM_SMALL: [&str; 5] = [
    "nodes=200",
    "workload.lookups=20",
    "workload.announces=2",
    "workload.puts=2",
    "workload.duration_s=30",
];

fn sim(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["sim", "--quiet", "--out", out.to_str().unwrap()];
    args.extend_from_slice(&SIM_SMALL);
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn sim_runs_a_network_writes_its_outputs_and_repeats_them_for_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let out = sim(&a, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("200 nodes: lookups 20 ok"), "{stdout}");
    assert!(
        stdout.contains("peer found by get_peers elsewhere"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("outputs in {}", a.display())),
        "{stdout}"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["network"]["nodes"], 200);
    assert_eq!(summary["lookups"]["started"], 20);
    for file in [
        "report.md",
        "scenario.toml",
        "run_info.json",
        "latency_cdf.svg",
        "rounds.png",
    ] {
        assert!(a.join(file).is_file(), "{file} written");
    }
    let report = std::fs::read_to_string(a.join("report.md")).unwrap();
    assert!(report.contains("`xorro sim 'nodes=200'"), "{report}");
    // Every operation, one row each: 20 lookups, 2 announces and 2 puts, each with a read.
    let ops = std::fs::read_to_string(a.join("ops.csv")).unwrap();
    let mut rows = ops.lines();
    assert_eq!(rows.next(), Some(xorro_sim::report::OPS_CSV_HEADER));
    let rows: Vec<Vec<&str>> = rows.map(|l| l.split(',').collect()).collect();
    let columns = xorro_sim::report::OPS_CSV_HEADER.split(',').count();
    assert!(rows.iter().all(|r| r.len() == columns), "{ops}");
    let count = |kind: &str| rows.iter().filter(|r| r[0] == kind).count();
    assert_eq!(count("lookup"), 20, "{ops}");
    assert_eq!((count("announce"), count("put")), (4, 4), "{ops}");
    let exact = rows
        .iter()
        .filter(|r| r[0] == "lookup" && r[10] == "1")
        .count();
    let success = summary["lookups"]["closest_success"].as_f64().unwrap();
    let answered = summary["lookups"]["answered"].as_u64().unwrap();
    assert!(
        (exact as f64 / answered as f64 - success).abs() < 1e-4,
        "{ops}"
    );
    // The same scenario again: the same summary and operations, byte for byte.
    assert_eq!(sim(&b, &[]).status.code(), Some(0));
    for file in ["summary.json", "ops.csv"] {
        assert_eq!(
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
            "{file}"
        );
    }
    // Without --quiet, progress goes to stderr and the result to stdout.
    let out = run(&[
        "sim",
        "--out",
        a.to_str().unwrap(),
        "nodes=50",
        "workload.lookups=5",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("s wall] built"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).starts_with("50 nodes:"));
}

#[test]
fn sim_failed_check_exits_1_with_the_seed_and_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = sim(dir.path(), &["seed=7", "expect.lookup_p50_max_ms=1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("check failed: lookups.latency_ms.p50 <= 1 (measured "),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: 1 of 1 simulation checks failed (seed 7)"),
        "{stderr}"
    );
    let hint = stderr
        .lines()
        .find_map(|l| l.strip_prefix("hint: reproduce with: "))
        .expect("the command that reproduces the run");
    assert!(
        hint.starts_with("xorro sim 'expect.lookup_p50_max_ms=1.0' 'nodes=200' 'seed=7'"),
        "{hint}"
    );
    assert!(
        dir.path().join("summary.json").is_file(),
        "outputs written anyway"
    );
}

#[test]
fn sim_bad_input_is_a_one_line_error_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], i32, &str, &str); 4] = [
        (
            &["sim", "nodes=abc"],
            2,
            "error: bad override \"nodes=abc\": invalid type: string \"abc\", expected usize in `nodes`",
            "hint: see every field and its default with `xorro sim --print-scenario`",
        ),
        (
            &["sim", "link.lossy=0.1"],
            2,
            "error: bad override \"link.lossy=0.1\": unknown field `lossy`",
            "hint: see every field",
        ),
        (
            &["sim", "--scenario", "/nonexistent/scenario.toml"],
            2,
            "error: scenario /nonexistent/scenario.toml: cannot read the file",
            "hint: check the path given to --scenario",
        ),
        (
            &["sim", "nodes=0"],
            2,
            "error: invalid scenario:",
            "hint: see every field",
        ),
    ];
    for (args, code, error, hint) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "an error line and a hint: {stderr}");
        assert!(lines[0].starts_with(error), "{args:?}: {stderr}");
        assert!(lines[1].starts_with(hint), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing ran: {}", text(&out.stdout));
    }
    // An output directory that cannot be made is found before the run, not after it.
    let file = dir.path().join("file");
    std::fs::write(&file, "mine").unwrap();
    let out = sim(&file.join("out"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: cannot write "), "{stderr}");
    assert!(
        stderr.contains("hint: choose a writable directory with --out"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

#[test]
fn sim_print_scenario_shows_the_fields_with_the_overrides_applied() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "sim",
        "--print-scenario",
        "nodes=1234",
        "churn.enabled=true",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let table: toml::Table = toml::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(table["nodes"].as_integer(), Some(1234));
    assert_eq!(table["churn"]["enabled"].as_bool(), Some(true));
    assert!(table["engine"].is_table() && table["link"].is_table());
    // What it prints is a scenario file that runs.
    let file = dir.path().join("s.toml");
    std::fs::write(&file, text(&out.stdout)).unwrap();
    let out = run(&[
        "sim",
        "--print-scenario",
        "--scenario",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("nodes = 1234"));
}

#[test]
fn sim_sweep_runs_every_point_and_compares_them() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("sweep");
    let mut args = vec!["sim", "--quiet", "--out", out_dir.to_str().unwrap()];
    args.extend_from_slice(&SIM_SMALL);
    args.extend_from_slice(&[
        "--sweep",
        "engine.lookup_attempts=1,2",
        "--seeds",
        "3,4",
        "--jobs",
        "2",
    ]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("# Simulation sweep"), "{stdout}");
    assert!(
        stdout.contains("| 1 | engine.lookup_attempts=1 | 2 |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| 2 | engine.lookup_attempts=2 | 2 |"),
        "{stdout}"
    );
    assert!(stdout.contains("4 runs in "), "{stdout}");
    // Each point is a run of its own, with the seed and setting it was given.
    for (i, (attempts, seed)) in [(1, 3), (1, 4), (2, 3), (2, 4)].into_iter().enumerate() {
        let point = out_dir.join(format!(
            "{i:03}_engine.lookup_attempts={attempts},seed={seed}"
        ));
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(point.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["scenario"]["seed"], seed, "{}", point.display());
        assert_eq!(
            summary["scenario"]["engine"]["lookup_attempts"],
            attempts,
            "{}",
            point.display()
        );
        assert_eq!(summary["network"]["nodes"], 200);
        assert!(point.join("report.md").is_file() && point.join("run.log").is_file());
    }
    // The same point run alone gives the same summary: a sweep adds nothing to a run.
    let alone = dir.path().join("alone");
    let out = sim(&alone, &["engine.lookup_attempts=2", "seed=4"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(alone.join("summary.json")).unwrap(),
        std::fs::read(out_dir.join("003_engine.lookup_attempts=2,seed=4/summary.json")).unwrap()
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("sweep.json")).unwrap())
            .unwrap();
    assert_eq!(json["rows"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["runs"].as_array().map(Vec::len), Some(4));
    // A row's first peer is the mean of its runs' medians.
    let first_peer = |i: usize, seed: u64| {
        let point = out_dir.join(format!("{i:03}_engine.lookup_attempts=1,seed={seed}"));
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(point.join("summary.json")).unwrap())
                .unwrap();
        summary["announces"]["first_found_ms"]["p50"]
            .as_f64()
            .unwrap()
    };
    let mean = (first_peer(0, 3) + first_peer(1, 4)) / 2.0;
    let row = json["rows"][0]["first_peer_p50_ms"].as_f64().unwrap();
    assert!(
        mean > 0.0 && (row - mean).abs() < 1e-9,
        "{row} against {mean}"
    );
    assert!(
        json["command"]
            .as_str()
            .unwrap()
            .contains("--sweep engine.lookup_attempts=1,2 --seeds 3,4")
    );
    for file in ["sweep.md", "sweep.svg", "sweep.png"] {
        assert!(out_dir.join(file).is_file(), "{file} written");
    }
}

#[test]
fn sim_sweep_bad_input_is_a_one_line_error_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("never");
    let out = out_dir.to_str().unwrap();
    let cases: [(&[&str], &str, &str); 6] = [
        (
            &["--sweep", "engine.lookup_attempts"],
            "error: bad sweep \"engine.lookup_attempts\": expected NAME=VALUE1,VALUE2,…",
            "hint: see `xorro sim --help`",
        ),
        (
            &["--sweep", "nodes=100,abc"],
            "error: sweep point nodes=abc: bad override \"nodes=abc\"",
            "hint: see every field",
        ),
        (
            &["--sweep", "nodes=100", "--sweep", "nodes=200"],
            "error: nodes is swept twice: give all its values in one --sweep",
            "hint: see `xorro sim --help`",
        ),
        (
            &["--seeds", "1,2", "--print-scenario"],
            "error: --print-scenario prints one scenario",
            "hint: leave out --sweep and --seeds",
        ),
        (
            &["--jobs", "2"],
            "error: --jobs applies to a sweep only",
            "hint: add --sweep",
        ),
        (
            &["--seeds", "1", "--jobs", "0"],
            "error: --jobs 0 would run nothing",
            "hint: give at least 1",
        ),
    ];
    for (extra, error, hint) in cases {
        let mut args = vec!["sim", "--quiet", "--out", out, "nodes=100"];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "an error line and a hint: {stderr}");
        assert!(lines[0].starts_with(error), "{extra:?}: {stderr}");
        assert!(lines[1].starts_with(hint), "{extra:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing ran: {}", text(&out.stdout));
        assert!(!out_dir.exists(), "{extra:?}: nothing written");
    }
    // A point whose directory cannot be made stops the sweep with that reason.
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("000_nodes=100"), "mine").unwrap();
    let out = run(&["sim", "--quiet", "--out", out, "--sweep", "nodes=100,120"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: creating "), "{stderr}");
    assert!(stderr.contains("000_nodes=100"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("000_nodes=100")).unwrap(),
        "mine"
    );
}

#[test]
fn detect_unreachable_shows_in_status_and_a_loopback_querier_proves_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let a = Daemon::spawn(
        &dir.path().join("a"),
        free_udp_port(),
        None,
        &["--detect-unreachable", "300"],
    );
    let b = Daemon::start(Some(&a));
    assert!(
        b.json(&["status"]).get("reachability").is_none(),
        "absent when off"
    );
    // B's bootstrap queries A from 127.0.0.1, which counts as a stranger.
    wait_for("A to be reachable", || {
        (a.json(&["status"])["reachability"]["ipv4"] == "reachable").then_some(())
    });
    let out = a.cmd(&["status"]);
    assert!(
        text(&out.stdout).contains("read-write (ipv4 reachable)"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&[
        "node",
        "--detect-unreachable",
        "30",
        "--no-public-bootstrap",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("at least 120 seconds"),
        "{}",
        text(&out.stderr)
    );
}
