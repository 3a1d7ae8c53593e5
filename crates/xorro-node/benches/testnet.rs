//! Testnet figures on real loopback sockets (release build, one process):
//!
//! - start: time until every node of an N-node testnet has a full-enough table
//!   ([`testnet::start`] then [`testnet::fill`], as `xorro testnet` does), over several runs;
//! - first peer: in one such testnet, time from a `get_peers` call on one node until the
//!   first peer arrives, for an info-hash another node announced just before (a new one
//!   each time); median over many lookups;
//! - memory: resident bytes a node adds in a testnet of M nodes (VmRSS after its tables are
//!   full minus VmRSS before its nodes started, divided by M).
//!
//! `cargo bench -p xorro-node --bench testnet -- [--nodes 100] [--runs 5] [--lookups 100]
//! [--memory-nodes 1000]` (a count of 0 skips that part). Timings are wall-clock and
//! depend on the machine's load: print it beside them.

use std::time::{Duration, Instant};

use xorro_node::testnet;
use xorro_wire::InfoHash;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a count"))
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn summary(label: &str, unit: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "{label}: median {:.2} {unit}, p10 {:.2}, p90 {:.2}, min {:.2}, max {:.2} ({} samples)",
        percentile(&v, 0.5),
        percentile(&v, 0.1),
        percentile(&v, 0.9),
        v.first().copied().unwrap_or(f64::NAN),
        v.last().copied().unwrap_or(f64::NAN),
        v.len()
    );
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("a VmRSS line")
        * 1024
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn stop(nodes: &[xorro_node::Dht]) {
    for n in nodes {
        let _ = n.shutdown().await;
    }
}

async fn run(args: Vec<String>) {
    let n = arg(&args, "--nodes", 100);
    let runs = arg(&args, "--runs", 5);
    let lookups = arg(&args, "--lookups", 100);
    let memory_nodes = arg(&args, "--memory-nodes", 1000);
    println!("load before: {}", loadavg());

    if memory_nodes > 0 {
        let before = rss_bytes();
        let t = Instant::now();
        let nodes = testnet::start(memory_nodes, 0).await.expect("testnet");
        let (avg, min) = testnet::fill(&nodes, Duration::from_secs(60))
            .await
            .expect("fill");
        let after = rss_bytes();
        println!(
            "memory, {memory_nodes} nodes: {:.1} s to ready, {avg:.0} contacts a node on average \
             (fewest {min}), VmRSS {} -> {} KiB: {:.1} KiB a node",
            t.elapsed().as_secs_f64(),
            before / 1024,
            after / 1024,
            (after.saturating_sub(before)) as f64 / 1024.0 / memory_nodes as f64
        );
        stop(&nodes).await;
    }

    let mut starts = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let nodes = testnet::start(n, 0).await.expect("testnet");
        let (avg, min) = testnet::fill(&nodes, Duration::from_secs(30))
            .await
            .expect("fill");
        let took = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "start, {n} nodes: {took:.0} ms, {avg:.1} contacts on average (fewest {min}){}",
            if testnet::full_enough(n, avg, min) {
                ""
            } else {
                " NOT full enough"
            }
        );
        starts.push(took);
        stop(&nodes).await;
    }
    if !starts.is_empty() {
        summary(&format!("start, {n} nodes"), "ms", starts);
    }

    if lookups > 0 && n >= 2 {
        let nodes = testnet::start(n, 0).await.expect("testnet");
        testnet::fill(&nodes, Duration::from_secs(30))
            .await
            .expect("fill");
        let mut firsts = Vec::new();
        let mut whole = Vec::new();
        for i in 0..lookups {
            let info_hash = InfoHash::from(rand::random::<[u8; 20]>());
            let a = &nodes[i % n];
            let b = &nodes[(i * 7 + 1 + n / 2) % n];
            let b = if std::ptr::eq(a, b) {
                &nodes[(i + 1) % n]
            } else {
                b
            };
            a.announce(info_hash, Some(6881)).await.expect("announce");
            let t = Instant::now();
            let mut stream = b.get_peers(info_hash).await.expect("get_peers");
            let mut first = None;
            while let Some(batch) = stream.next().await {
                if first.is_none() && !batch.is_empty() {
                    first = Some(t.elapsed());
                }
            }
            let done = t.elapsed();
            match first {
                Some(f) => firsts.push(f.as_secs_f64() * 1000.0),
                None => println!("lookup {i}: no peer found"),
            }
            whole.push(done.as_secs_f64() * 1000.0);
        }
        summary(
            &format!("get_peers, {n} nodes, time to the first peer"),
            "ms",
            firsts,
        );
        summary(
            &format!("get_peers, {n} nodes, time to the end of the lookup"),
            "ms",
            whole,
        );
        stop(&nodes).await;
    }
    println!("load after: {}", loadavg());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run(args));
}
