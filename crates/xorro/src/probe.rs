//! `xorro probe HOST:PORT`: checks any DHT node against the BEPs (see
//! [`xorro_node::probe`]) and prints what it did against what they require.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;
use xorro_node::probe::{ProbeOptions, Verdict, probe};

use crate::error::Exit;
use crate::flags::ProbeArgs;

/// Runs the probe; exit 1 when a check failed or the node stopped answering (with
/// `--strict`: when any check did not pass).
pub fn run(a: &ProbeArgs) -> anyhow::Result<()> {
    if a.timeout_ms == 0 {
        return Err(Exit::usage("--timeout-ms must be above 0".to_owned()));
    }
    let target = resolve(&a.target)?;
    let opts = ProbeOptions {
        timeout: Duration::from_millis(a.timeout_ms),
        bind: a.bind,
        ..ProbeOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(probe(target, &opts));
    if a.json {
        outln!("{}", report.to_json())?;
    } else {
        outln!("{report}")?;
    }
    let failed = report.count(Verdict::Fail);
    // The node must answer the first ping, and still answer at the end.
    let passed = |name| {
        report
            .check(name)
            .is_some_and(|c| c.verdict == Verdict::Pass)
    };
    let alive = passed("ping")
        && report
            .check("alive_at_end")
            .is_none_or(|c| c.verdict == Verdict::Pass);
    let not_passed = report.checks.len() - report.count(Verdict::Pass);
    if failed > 0 || !alive || (a.strict && not_passed > 0) {
        return Err(Exit::failed(
            format!(
                "{target}: {not_passed} of {} checks did not pass ({failed} failed)",
                report.checks.len()
            ),
            (!alive).then(|| {
                "the node did not answer ping, or stopped answering during the probe".to_owned()
            }),
        ));
    }
    Ok(())
}

fn resolve(target: &str) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|_| {
            Exit::usage(format!(
                "HOST:PORT must be a reachable host:port, got '{target}'"
            ))
        })?
        .collect();
    addrs
        .iter()
        .find(|s| s.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| Exit::usage(format!("'{target}' resolves to no address")))
}
