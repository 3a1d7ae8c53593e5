//! `xorro sim`: runs a scenario of the network simulator (crate `xorro-sim`) and writes its
//! outputs. Reads only the scenario file it is given and `/proc` (memory); writes only into
//! `--out`; sends nothing on any network (the simulated nodes exchange datagrams in memory).
//!
//! Exit codes as for every command: 0 when the run passed the scenario's `[expect]` checks
//! (or has none), 1 when a check failed (the failed checks, the seed and the command that
//! reproduces the run are printed), 2 for a bad scenario file or override.

use std::time::Instant;

use anyhow::Context;
use xorro_sim::{Scenario, ScenarioError, prepare_output_dir, write_outputs};

use crate::error::Exit;
use crate::flags::SimArgs;

/// Runs `xorro sim`.
pub fn run(a: &SimArgs) -> anyhow::Result<()> {
    let scenario = scenario_of(a)?;
    if a.print_scenario {
        outln!("{}", scenario.to_toml().trim_end())?;
        return Ok(());
    }
    // Before the run, which can take many minutes, not after it.
    prepare_output_dir(&a.out).map_err(|e| {
        Exit::failed(
            e.to_string(),
            Some("choose a writable directory with --out".to_owned()),
        )
    })?;
    if let Some(warning) = memory_warning(&scenario, available_memory()) {
        eprintln!("warning: {warning}");
    }
    let start = Instant::now();
    let quiet = a.quiet;
    let (report, info) = xorro_sim::run_measured(&scenario, &mut |p| {
        if !quiet {
            eprintln!("[{:>7.1} s wall] {p}", start.elapsed().as_secs_f64());
        }
    });
    write_outputs(&report, Some(&info), &a.out)
        .with_context(|| format!("writing the outputs into {}", a.out.display()))?;
    outln!("{}", report.headline(&info))?;
    outln!("outputs in {}", a.out.display())?;
    let failed: Vec<_> = report.checks.iter().filter(|c| !c.passed).collect();
    if failed.is_empty() {
        return Ok(());
    }
    for c in &failed {
        eprintln!("check failed: {} (measured {})", c.name, c.value);
    }
    Err(Exit::failed(
        format!(
            "{} of {} simulation checks failed (seed {})",
            failed.len(),
            report.checks.len(),
            scenario.seed
        ),
        Some(format!("reproduce with: {}", report.reproduce_command())),
    ))
}

/// The scenario of the file (or the defaults) with the overrides applied in order.
fn scenario_of(a: &SimArgs) -> anyhow::Result<Scenario> {
    // TOML's messages span lines; an error here is one line.
    let usage = |e: ScenarioError| {
        let hint = match e {
            ScenarioError::Read(..) => "check the path given to --scenario",
            _ => "see every field and its default with `xorro sim --print-scenario`",
        };
        Exit {
            code: crate::error::Code::Usage,
            message: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            hint: Some(hint.to_owned()),
        }
    };
    let mut scenario = match &a.scenario {
        Some(path) => Scenario::from_file(path).map_err(|e| {
            anyhow::Error::new(usage(e)).context(format!("scenario {}", path.display()))
        })?,
        None => Scenario::default(),
    };
    for kv in &a.overrides {
        scenario.apply(kv).map_err(usage)?;
    }
    Ok(scenario)
}

/// Bytes of memory the system can still give (`MemAvailable`), where `/proc` tells.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A warning when the run's peak memory, projected from the measured runs, is above what is
/// available: better said now than found out when the kernel kills the run.
fn memory_warning(scenario: &Scenario, available: Option<u64>) -> Option<String> {
    let need = xorro_sim::projected_peak_bytes(scenario.nodes);
    let available = available?;
    (need > available).then(|| {
        format!(
            "{} nodes need about {:.1} GB at their peak (measured with the default engine: \
             0.26 GB for 10^4 nodes, 3.0 GB for 10^5), and {:.1} GB are available: \
             the run may be killed for lack of memory",
            scenario.nodes,
            need as f64 / 1e9,
            available as f64 / 1e9
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_warning_only_past_what_is_available() {
        let mut s = Scenario {
            nodes: 1_000_000,
            ..Scenario::default()
        };
        let warning = memory_warning(&s, Some(16 << 30)).expect("10^6 nodes need more");
        assert!(warning.contains("1000000 nodes need about"), "{warning}");
        s.nodes = 1_000;
        assert_eq!(memory_warning(&s, Some(16 << 30)), None);
        assert_eq!(memory_warning(&s, None), None);
    }
}
