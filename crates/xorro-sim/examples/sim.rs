//! Runs a simulation scenario and writes its outputs.
//!
//! ```text
//! cargo run --release -p xorro-sim --example sim -- [--scenario FILE.toml] [--out DIR] [--quiet] [name=value ...]
//! ```
//!
//! `name=value` overrides any scenario field by its dotted name (`nodes=100000`,
//! `link.loss=0.01`, `churn.enabled=true`, `engine.lookup_parallelism=8`). The exit code is 1
//! when a check of `[expect]` fails; the seed and the command that reproduces the run are
//! printed then. `xorro sim` is the same with the `xorro` command's errors and exit codes.

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
    xorro_sim::prepare_output_dir(&out)?;
    let start = std::time::Instant::now();
    let (report, info) = xorro_sim::run_measured(&scenario, &mut |p| {
        if !quiet {
            eprintln!("[{:>7.1} s wall] {p}", start.elapsed().as_secs_f64());
        }
    });
    write_outputs(&report, Some(&info), &out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{}", report.headline(&info));
    println!("outputs in {}", out.display());
    match report.failure_message() {
        Some(msg) => {
            eprintln!("{msg}");
            Ok(false)
        }
        None => Ok(true),
    }
}
