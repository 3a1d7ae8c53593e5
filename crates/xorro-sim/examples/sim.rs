//! Runs a simulation scenario and writes its outputs.
//!
//! ```text
//! cargo run --release -p xorro-sim --example sim -- [--scenario FILE.toml] [--out DIR] [--quiet] [name=value ...]
//! ```
//!
//! `name=value` overrides any scenario field by its dotted name (`nodes=100000`,
//! `link.loss=0.01`, `churn.enabled=true`, `engine.lookup_parallelism=8`). The exit code is 1
//! when a check of `[expect]` fails; the seed and the command that reproduces the run are
//! printed then.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use xorro_sim::{Scenario, write_outputs};

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<bool> {
    let mut scenario = Scenario::default();
    let mut out = PathBuf::from("sim-out");
    let mut quiet = false;
    let mut overrides = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--scenario" => {
                let path = args.next().context("--scenario needs a file")?;
                scenario = Scenario::from_file(path.as_ref())
                    .with_context(|| format!("scenario {path}"))?;
            }
            "--out" => out = PathBuf::from(args.next().context("--out needs a directory")?),
            "--quiet" => quiet = true,
            "--help" | "-h" => {
                println!(
                    "usage: sim [--scenario FILE.toml] [--out DIR] [--quiet] [name=value ...]"
                );
                return Ok(true);
            }
            kv => overrides.push(kv.to_string()),
        }
    }
    for kv in overrides {
        scenario.apply(&kv)?;
    }
    let start = std::time::Instant::now();
    let (report, info) = xorro_sim::run_measured(&scenario, &mut |p| {
        if !quiet {
            eprintln!(
                "[{:>7.1} s wall] {:<7} virtual {:>8.1} s, {:>8} online, {:>11} events, {:>6} ops",
                start.elapsed().as_secs_f64(),
                p.phase,
                p.virtual_s,
                p.online,
                p.events,
                p.records
            );
        }
    });
    write_outputs(&report, Some(&info), &out)
        .with_context(|| format!("writing {}", out.display()))?;
    let l = &report.lookups;
    println!(
        "{} nodes: lookups {} ok {:.2} % of true {} closest; latency p50 {:.0} ms p90 {:.0} ms p99 {:.0} ms; rounds {:.2} (analytic {:.2}); {:.1} queries, {:.0} bytes per lookup",
        report.network.nodes,
        l.answered,
        l.closest_success * 100.0,
        scenario.engine.node_config().lookup_closest,
        l.latency_ms.p50,
        l.latency_ms.p90,
        l.latency_ms.p99,
        l.rounds.mean,
        report.analytic_rounds,
        l.messages.mean,
        l.bytes.mean
    );
    if let Some(a) = &report.announces {
        println!(
            "announce p50 {:.0} ms p99 {:.0} ms; peer found by get_peers elsewhere {:.2} %",
            a.write.latency_ms.p50,
            a.write.latency_ms.p99,
            a.found * 100.0
        );
    }
    if let Some(p) = &report.puts {
        println!(
            "put p50 {:.0} ms; item found by get elsewhere {:.2} %",
            p.write.latency_ms.p50,
            p.found * 100.0
        );
    }
    if let Some(e) = &report.eclipse {
        println!("eclipsed info-hash: peer found {:.2} %", e.found * 100.0);
    }
    println!(
        "wall {:.1} s (build {:.1} s), {:.0} events/s, peak RSS {:.2} GB, {:.0} bytes/node built; outputs in {}",
        info.wall_total_s,
        info.wall_build_s,
        info.events_per_s,
        info.peak_rss_bytes as f64 / 1e9,
        info.bytes_per_node,
        out.display()
    );
    println!("engine bytes per node built: {}", info.node_memory_built);
    match report.failure_message() {
        Some(msg) => {
            eprintln!("{msg}");
            Ok(false)
        }
        None => Ok(true),
    }
}
