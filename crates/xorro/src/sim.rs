//! `xorro sim`: runs a scenario of the network simulator (crate `xorro-sim`) and writes its
//! outputs. Reads only the scenario file it is given and `/proc` (memory); writes only into
//! `--out`; sends nothing on any network (the simulated nodes exchange datagrams in memory).
//!
//! Exit codes as for every command: 0 when the run passed the scenario's `[expect]` checks
//! (or has none), 1 when a check failed (the failed checks, the seed and the command that
//! reproduces the run are printed), 2 for a bad scenario file or override.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use xorro_sim::sweep::{self, Axis, Point, Run};
use xorro_sim::{
    BuildMode, Report, RunInfo, Scenario, ScenarioError, prepare_output_dir, write_outputs,
};

use crate::error::Exit;
use crate::flags::SimArgs;

/// Runs `xorro sim`.
pub fn run(a: &SimArgs) -> anyhow::Result<()> {
    let scenario = scenario_of(a)?;
    let sweeping = !a.sweep.is_empty() || !a.seeds.is_empty();
    if a.print_scenario {
        if sweeping {
            return Err(usage(
                "--print-scenario prints one scenario",
                "leave out --sweep and --seeds, or print a point by giving its values as overrides",
            ));
        }
        outln!("{}", scenario.to_toml().trim_end())?;
        return Ok(());
    }
    if sweeping {
        return sweep(a, &scenario);
    }
    if a.jobs.is_some() {
        return Err(usage(
            "--jobs applies to a sweep only",
            "add --sweep NAME=V1,V2 or --seeds 1,2, or leave out --jobs",
        ));
    }
    // Before the run, which can take many minutes, not after it.
    prepare_out(&a.out)?;
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
    let usage = scenario_usage;
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

/// `xorro sim --sweep`: every point of the grid in a process of its own (this executable,
/// `xorro sim --quiet --out OUT/POINT …`), at most `jobs` at once, then the comparison.
/// Every point's scenario is checked before the first run starts.
fn sweep(a: &SimArgs, base: &Scenario) -> anyhow::Result<()> {
    let bad = |e: sweep::SweepError| {
        usage(
            &e.to_string(),
            "see `xorro sim --help` for --sweep and --seeds",
        )
    };
    let axes = a
        .sweep
        .iter()
        .map(|s| Axis::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let points = sweep::grid(&axes, &a.seeds).map_err(bad)?;
    // The largest projected peak of any point (sizes and build modes can be swept).
    let mut need = 0;
    for p in &points {
        let mut s = base.clone();
        for o in p.overrides() {
            s.apply(&o).map_err(|e| {
                let mut exit = scenario_usage(e);
                exit.message = format!("sweep point {}: {}", p.overrides().join(" "), exit.message);
                exit
            })?;
        }
        need = need.max(xorro_sim::projected_peak_bytes(s.nodes, s.build.mode));
    }
    if a.jobs == Some(0) {
        return Err(usage(
            "--jobs 0 would run nothing",
            "give at least 1, or leave it out for one run a core",
        ));
    }
    prepare_out(&a.out)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let jobs = sweep_jobs(a.jobs, cores, need, available_memory()).min(points.len());
    let exe = std::env::current_exe().context("finding this executable to start the runs")?;
    let command = sweep_command(a);
    if !a.quiet {
        eprintln!(
            "sweep: {} runs, {jobs} at a time; outputs in {}",
            points.len(),
            a.out.display()
        );
    }
    let start = Instant::now();
    let mut pending: std::collections::VecDeque<&Point> = points.iter().collect();
    let mut running: Vec<(Child, &Point, Instant)> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let mut done = 0;
    while !pending.is_empty() || !running.is_empty() {
        while running.len() < jobs
            && let Some(p) = pending.pop_front()
        {
            let dir = a.out.join(p.dir_name());
            match spawn_point(&exe, a, p, &dir) {
                Ok(child) => running.push((child, p, Instant::now())),
                Err(e) => {
                    stop_all(&mut running);
                    return Err(e);
                }
            }
        }
        let mut i = 0;
        while i < running.len() {
            let status = match running[i].0.try_wait() {
                Ok(status) => status,
                Err(e) => {
                    stop_all(&mut running);
                    return Err(anyhow::Error::new(e).context("waiting for a sweep run"));
                }
            };
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let (_, p, began) = running.swap_remove(i);
            done += 1;
            let dir = a.out.join(p.dir_name());
            // 0: the checks held; 1: a check failed, which a sweep expects of some points.
            let outcome = match status.code() {
                Some(0 | 1) => read_run(p, &dir),
                _ => Err(anyhow::anyhow!("exited with {status}")),
            };
            match outcome {
                Ok(run) => {
                    if !a.quiet {
                        let l = &run.report.lookups;
                        eprintln!(
                            "[{done}/{}] {}: {:.2} % exact, p50 {:.0} ms, p99 {:.0} ms ({:.0} s)",
                            points.len(),
                            p.dir_name(),
                            l.closest_success * 100.0,
                            l.latency_ms.p50,
                            l.latency_ms.p99,
                            began.elapsed().as_secs_f64()
                        );
                    }
                    runs.push(run);
                }
                Err(e) => {
                    let log = dir.join("run.log");
                    eprintln!(
                        "[{done}/{}] {}: failed: {e:#} (see {})",
                        points.len(),
                        p.dir_name(),
                        log.display()
                    );
                    failed.push(log.display().to_string());
                }
            }
        }
        if !running.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    runs.sort_by_key(|r| r.point.index);
    let rows = sweep::rows(&runs);
    sweep::write_sweep(&a.out, &rows, &runs, &command)
        .with_context(|| format!("writing the sweep's outputs into {}", a.out.display()))?;
    outln!("{}", sweep::markdown(&rows, &command).trim_end())?;
    outln!(
        "{} runs in {:.0} s; outputs in {}",
        runs.len(),
        start.elapsed().as_secs_f64(),
        a.out.display()
    )?;
    if failed.is_empty() {
        return Ok(());
    }
    Err(Exit::failed(
        format!(
            "{} of {} sweep runs failed; the table holds the others",
            failed.len(),
            points.len()
        ),
        Some(format!("see {}", failed.join(", "))),
    ))
}

/// Makes `--out` and checks it can be written (exit 1 if not).
fn prepare_out(out: &Path) -> anyhow::Result<()> {
    prepare_output_dir(out).map_err(|e| {
        Exit::failed(
            e.to_string(),
            Some("choose a writable directory with --out".to_owned()),
        )
    })
}

/// A usage error (exit 2) with what to do about it.
fn usage(message: &str, hint: &str) -> anyhow::Error {
    Exit {
        code: crate::error::Code::Usage,
        message: message.to_owned(),
        hint: Some(hint.to_owned()),
    }
    .into()
}

/// Ends the runs still going when the sweep cannot go on, so none is left behind writing.
fn stop_all(running: &mut Vec<(Child, &Point, Instant)>) {
    for (child, _, _) in running.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    running.clear();
}

/// Runs of a sweep at once: as asked, else one a core; never more than the available memory
/// holds by the projected peak of one run (but at least one: a single run too large for
/// the machine is warned of by the run itself).
fn sweep_jobs(asked: Option<usize>, cores: usize, need: u64, available: Option<u64>) -> usize {
    let want = asked.unwrap_or(cores).max(1);
    let fit = available.map_or(usize::MAX, |avail| {
        usize::try_from(avail / need.max(1)).unwrap_or(usize::MAX)
    });
    want.min(fit).max(1)
}

/// Starts one point: `xorro sim --quiet --out DIR [--scenario FILE] OVERRIDES… POINT…`,
/// its output and errors in `DIR/run.log`.
fn spawn_point(exe: &Path, a: &SimArgs, p: &Point, dir: &Path) -> anyhow::Result<Child> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let log_path = dir.join("run.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let err = log
        .try_clone()
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("sim").arg("--quiet").arg("--out").arg(dir);
    if let Some(file) = &a.scenario {
        cmd.arg("--scenario").arg(file);
    }
    cmd.args(&a.overrides)
        .args(p.overrides())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    cmd.spawn()
        .with_context(|| format!("starting {} sim", exe.display()))
}

/// The summary (and run info) a finished point wrote.
fn read_run(p: &Point, dir: &Path) -> anyhow::Result<Run> {
    let read = |name: &str| -> anyhow::Result<String> {
        let path: PathBuf = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let report: Report =
        serde_json::from_str(&read("summary.json")?).context("parsing summary.json")?;
    let info: Option<RunInfo> = read("run_info.json")
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Ok(Run {
        point: p.clone(),
        report,
        info,
    })
}

/// The command line of a sweep, to head its table.
fn sweep_command(a: &SimArgs) -> String {
    let mut words = vec!["xorro".to_owned(), "sim".to_owned()];
    if let Some(file) = &a.scenario {
        words.push("--scenario".to_owned());
        words.push(file.display().to_string());
    }
    words.extend(a.overrides.iter().cloned());
    for s in &a.sweep {
        words.push("--sweep".to_owned());
        words.push(s.clone());
    }
    if !a.seeds.is_empty() {
        let seeds: Vec<String> = a.seeds.iter().map(u64::to_string).collect();
        words.push("--seeds".to_owned());
        words.push(seeds.join(","));
    }
    words.push("--out".to_owned());
    words.push(a.out.display().to_string());
    let quoted: Vec<String> = words.iter().map(|w| shell_word(w)).collect();
    quoted.join(" ")
}

/// `w` as one shell word: as it is when plain, else in single quotes.
fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/=,:+@%".contains(c));
    if plain {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// A scenario that cannot be used, as a usage error (exit 2) of one line: TOML's messages
/// span lines.
fn scenario_usage(e: ScenarioError) -> Exit {
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
    let mode = scenario.build.mode;
    let need = xorro_sim::projected_peak_bytes(scenario.nodes, mode);
    let available = available?;
    let measured = match mode {
        BuildMode::Warm => "0.14 GB for 10^4 nodes, 1.4 GB for 10^5, 14.7 GB for 10^6",
        BuildMode::Protocol | BuildMode::Restore => "0.23 GB for 10^4 nodes, 2.4 GB for 10^5",
    };
    (need > available).then(|| {
        let warm = if mode == BuildMode::Warm {
            ""
        } else {
            " (build.mode=warm takes about 60 % of it)"
        };
        format!(
            "{} nodes need about {:.1} GB at their peak (measured with the default engine: \
             {measured}), and {:.1} GB are available: the run may be killed for lack of \
             memory{warm}",
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
    fn a_sweep_runs_one_a_core_within_the_memory_available() {
        let gb = 1u64 << 30;
        assert_eq!(sweep_jobs(None, 2, gb, Some(20 * gb)), 2);
        assert_eq!(sweep_jobs(Some(4), 2, gb, Some(20 * gb)), 4);
        assert_eq!(sweep_jobs(None, 2, 3 * gb, Some(4 * gb)), 1);
        assert_eq!(sweep_jobs(None, 2, 30 * gb, Some(20 * gb)), 1);
        assert_eq!(sweep_jobs(None, 8, gb, None), 8);
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(
            shell_word("engine.lookup_attempts=2,3"),
            "engine.lookup_attempts=2,3"
        );
        assert_eq!(shell_word("name=\"a b\""), "'name=\"a b\"'");
        assert_eq!(shell_word("x=[1, 2]"), "'x=[1, 2]'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn memory_warning_only_past_what_is_available() {
        let mut s = Scenario {
            nodes: 1_000_000,
            ..Scenario::default()
        };
        let warning = memory_warning(&s, Some(16 << 30)).expect("10^6 nodes need more");
        assert!(warning.contains("1000000 nodes need about"), "{warning}");
        assert!(warning.contains("build.mode=warm takes about"), "{warning}");
        s.build.mode = BuildMode::Warm;
        let warning = memory_warning(&s, Some(12 << 30)).expect("even warm");
        assert!(warning.contains("1.4 GB for 10^5"), "{warning}");
        assert_eq!(memory_warning(&s, Some(16 << 30)), None, "warm fits 16 GiB");
        s.build.mode = BuildMode::Protocol;
        s.nodes = 1_000;
        assert_eq!(memory_warning(&s, Some(16 << 30)), None);
        assert_eq!(memory_warning(&s, None), None);
    }
}
