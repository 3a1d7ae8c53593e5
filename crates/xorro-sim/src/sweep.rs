//! Sweeps: one scenario run for every combination of a few settings and seeds, and the table
//! that compares the runs. This is how engine defaults are chosen here: each setting is a
//! point on a trade (exactness against the median and the tail), and a sweep shows the whole
//! trade at once, with the points that no other point beats marked.
//!
//! This module parses the grid (`name=v1,v2,…` per axis, plus seeds), names each run's
//! directory, and summarises finished runs (`sweep.md`, `sweep.json` and a plot of
//! exactness against p99). Running the points is the caller's: `xorro sim --sweep` runs each
//! in a process of its own, so that each run's memory figures are its own and a run that
//! dies takes no other with it. Reads and writes nothing but the directory it is given.

use std::fmt::Write as _;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;

use crate::output::{OutputError, register_font, write};
use crate::report::{Report, RunInfo};

/// A sweep specification that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SweepError {
    /// Not of the form `name=v1,v2,…`.
    #[error(
        "bad sweep {0:?}: expected NAME=VALUE1,VALUE2,… (for example engine.lookup_attempts=2,3)"
    )]
    Syntax(String),
    /// One name swept twice.
    #[error("{0} is swept twice: give all its values in one --sweep")]
    Repeated(String),
    /// A value given twice on one axis (or a seed twice).
    #[error("{0}: the value {1} is given twice")]
    Duplicate(String, String),
}

/// One swept setting: a scenario field by its dotted name and the values it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis {
    /// Dotted name, as in an override (`engine.lookup_soft_timeout_ms`).
    pub name: String,
    /// The values, as override values (TOML).
    pub values: Vec<String>,
}

impl Axis {
    /// Parses `name=v1,v2,…`. Commas inside brackets or quotes belong to a value, so arrays
    /// and strings can be swept: `engine.bucket_sizes_far=[],[128,64,32,16]`.
    pub fn parse(spec: &str) -> Result<Axis, SweepError> {
        let bad = || SweepError::Syntax(spec.to_owned());
        let (name, list) = spec.split_once('=').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(bad());
        }
        let mut values = Vec::new();
        let (mut depth, mut quote, mut current) = (0usize, None, String::new());
        for ch in list.chars() {
            match (quote, ch) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(ch),
                (None, '[' | '{') => depth += 1,
                (None, ']' | '}') => depth = depth.checked_sub(1).ok_or_else(bad)?,
                (None, ',') if depth == 0 => {
                    values.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
            current.push(ch);
        }
        if depth != 0 || quote.is_some() {
            return Err(bad());
        }
        values.push(current);
        let values: Vec<String> = values.iter().map(|v| v.trim().to_owned()).collect();
        if values.iter().any(String::is_empty) {
            return Err(bad());
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                return Err(SweepError::Duplicate(name.to_owned(), v.clone()));
            }
        }
        Ok(Axis {
            name: name.to_owned(),
            values,
        })
    }
}

/// One run of a sweep: a value for each axis, and a seed when seeds are swept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Point {
    /// Position in the grid (0-based), the order the runs are listed in.
    pub index: usize,
    /// `(name, value)` for each axis, in the order the axes were given.
    pub setting: Vec<(String, String)>,
    /// The seed, when swept (otherwise the scenario's own).
    pub seed: Option<u64>,
}

impl Point {
    /// The overrides that make this point's scenario from the base one.
    pub fn overrides(&self) -> Vec<String> {
        let mut o: Vec<String> = self
            .setting
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        o.extend(self.seed.map(|s| format!("seed={s}")));
        o
    }

    /// The setting alone (what the seeds of one row share), `name=value` joined by spaces;
    /// "(base scenario)" when only seeds are swept.
    pub fn setting_label(&self) -> String {
        if self.setting.is_empty() {
            return "(base scenario)".to_owned();
        }
        let parts: Vec<String> = self
            .setting
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        parts.join(" ")
    }

    /// The run's directory name: its index (so listings keep the grid's order and no two
    /// names collide) then its overrides, with characters other than letters, digits and
    /// `.=,+-` made `_`.
    pub fn dir_name(&self) -> String {
        let text = self.overrides().join(",");
        let safe: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".=,+-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if safe.is_empty() {
            format!("{:03}", self.index)
        } else {
            format!("{:03}_{safe}", self.index)
        }
    }
}

/// Every combination of the axes' values, each with each seed (or once, with the scenario's
/// seed, when `seeds` is empty). The first axis varies slowest, the seed fastest, so the
/// runs of one setting are next to each other.
pub fn grid(axes: &[Axis], seeds: &[u64]) -> Result<Vec<Point>, SweepError> {
    for (i, a) in axes.iter().enumerate() {
        if axes[..i].iter().any(|b| b.name == a.name) || (a.name == "seed" && !seeds.is_empty()) {
            return Err(SweepError::Repeated(a.name.clone()));
        }
    }
    for (i, seed) in seeds.iter().enumerate() {
        if seeds[..i].contains(seed) {
            return Err(SweepError::Duplicate("--seeds".into(), seed.to_string()));
        }
    }
    let mut settings: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for a in axes {
        settings = settings
            .into_iter()
            .flat_map(|s| {
                a.values.iter().map(move |v| {
                    let mut s = s.clone();
                    s.push((a.name.clone(), v.clone()));
                    s
                })
            })
            .collect();
    }
    let seeds: Vec<Option<u64>> = if seeds.is_empty() {
        vec![None]
    } else {
        seeds.iter().copied().map(Some).collect()
    };
    let mut points = Vec::new();
    for setting in settings {
        for &seed in &seeds {
            points.push(Point {
                index: points.len(),
                setting: setting.clone(),
                seed,
            });
        }
    }
    Ok(points)
}

/// A finished run: its point, its summary and, when written, its machine measurements.
#[derive(Debug, Clone)]
pub struct Run {
    /// Where in the grid.
    pub point: Point,
    /// `summary.json` of the run.
    pub report: Report,
    /// `run_info.json` of the run.
    pub info: Option<RunInfo>,
}

/// One setting of a sweep: the means over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The setting (see [`Point::setting_label`]).
    pub setting: String,
    /// Its values alone, joined by " / " (a plot's label).
    pub values: String,
    /// Runs (seeds) averaged.
    pub runs: usize,
    /// Lookups that found the true k closest, as a fraction.
    pub exact: f64,
    /// Lookup latency percentiles (ms).
    pub p50_ms: f64,
    /// 90th percentile (ms).
    pub p90_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Rounds a lookup.
    pub rounds: f64,
    /// Queries a lookup.
    pub queries: f64,
    /// Announce (lookup and announce_peer acknowledged) median (ms), when the scenario has
    /// announces.
    pub announce_p50_ms: Option<f64>,
    /// Median time (ms) until a get_peers after an announce first held the announced peer,
    /// when some did.
    pub first_peer_p50_ms: Option<f64>,
    /// BEP 44 put median (ms), when the scenario has puts.
    pub put_p50_ms: Option<f64>,
    /// Datagrams of the whole run a node (build included).
    pub datagrams_per_node: f64,
    /// Highest peak RSS of the setting's runs (bytes), when measured.
    pub peak_rss_bytes: Option<u64>,
    /// The scenario's `[expect]` checks passed, over all runs.
    pub checks_passed: usize,
    /// The checks evaluated, over all runs.
    pub checks: usize,
    /// No other row is at least as exact, as fast at the median and as fast at p99, and
    /// better in one of them.
    pub pareto: bool,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// The rows of finished runs: one a setting, in the order the settings first appear.
pub fn rows(runs: &[Run]) -> Vec<Row> {
    let mut order: Vec<String> = Vec::new();
    for r in runs {
        let label = r.point.setting_label();
        if !order.contains(&label) {
            order.push(label);
        }
    }
    let mut rows: Vec<Row> = order
        .into_iter()
        .map(|setting| {
            let of: Vec<&Run> = runs
                .iter()
                .filter(|r| r.point.setting_label() == setting)
                .collect();
            let m = |f: &dyn Fn(&Report) -> f64| mean(of.iter().map(|r| f(&r.report)));
            let store = |f: &dyn Fn(&Report) -> Option<f64>| {
                let v: Vec<f64> = of.iter().filter_map(|r| f(&r.report)).collect();
                (!v.is_empty()).then(|| mean(v.into_iter()))
            };
            let peaks = of
                .iter()
                .filter_map(|r| r.info.as_ref().map(|i| i.peak_rss_bytes))
                .filter(|&b| b > 0);
            Row {
                runs: of.len(),
                exact: m(&|r| r.lookups.closest_success),
                p50_ms: m(&|r| r.lookups.latency_ms.p50),
                p90_ms: m(&|r| r.lookups.latency_ms.p90),
                p99_ms: m(&|r| r.lookups.latency_ms.p99),
                rounds: m(&|r| r.lookups.rounds.mean),
                queries: m(&|r| r.lookups.messages.mean),
                announce_p50_ms: store(&|r| {
                    r.announces
                        .as_ref()
                        .filter(|s| s.write.answered > 0)
                        .map(|s| s.write.latency_ms.p50)
                }),
                first_peer_p50_ms: store(&|r| {
                    r.announces
                        .as_ref()
                        .filter(|s| s.first_found_ms.count > 0)
                        .map(|s| s.first_found_ms.p50)
                }),
                put_p50_ms: store(&|r| {
                    r.puts
                        .as_ref()
                        .filter(|s| s.write.answered > 0)
                        .map(|s| s.write.latency_ms.p50)
                }),
                datagrams_per_node: m(&|r| {
                    r.traffic.datagrams as f64 / r.network.hosts.max(1) as f64
                }),
                peak_rss_bytes: peaks.max(),
                checks_passed: of
                    .iter()
                    .map(|r| r.report.checks.iter().filter(|c| c.passed).count())
                    .sum(),
                checks: of.iter().map(|r| r.report.checks.len()).sum(),
                pareto: false,
                values: of
                    .first()
                    .map(|r| {
                        let v: Vec<&str> =
                            r.point.setting.iter().map(|(_, v)| v.as_str()).collect();
                        if v.is_empty() {
                            "base".to_owned()
                        } else {
                            v.join(" / ")
                        }
                    })
                    .unwrap_or_default(),
                setting,
            }
        })
        .collect();
    let marks: Vec<bool> = rows
        .iter()
        .map(|a| !rows.iter().any(|b| dominates(b, a)))
        .collect();
    for (row, mark) in rows.iter_mut().zip(marks) {
        row.pareto = mark;
    }
    rows
}

/// `b` is at least as good as `a` in exactness, median and p99, and better in one.
fn dominates(b: &Row, a: &Row) -> bool {
    let no_worse = b.exact >= a.exact && b.p50_ms <= a.p50_ms && b.p99_ms <= a.p99_ms;
    let better = b.exact > a.exact || b.p50_ms < a.p50_ms || b.p99_ms < a.p99_ms;
    no_worse && better
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.0}"))
}

/// The sweep as a Markdown table, under the command that ran it.
pub fn markdown(rows: &[Row], command: &str) -> String {
    let mut o = String::new();
    let seeds = rows.iter().map(|r| r.runs).max().unwrap_or(0);
    let _ = writeln!(o, "# Simulation sweep\n\n```text\n{command}\n```\n");
    let _ = writeln!(
        o,
        "Each row is the mean over its {seeds} run(s) (one a seed); latencies of get_peers \
         lookups in ms; ★: no other row is at least as exact, as fast at the median and as \
         fast at p99, and better in one. Each run's own outputs are in its directory.\n"
    );
    o.push_str(
        "| # | setting | runs | exact | p50 | p90 | p99 | rounds | queries | announce p50 | first peer p50 | put p50 | datagrams / node | peak RSS | checks | ★ |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |\n",
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.2} % | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} | {} | {} | {} | {:.0} | {} | {} | {} |",
            i + 1,
            r.setting.replace('|', "\\|"),
            r.runs,
            r.exact * 100.0,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.rounds,
            r.queries,
            ms(r.announce_p50_ms),
            ms(r.first_peer_p50_ms),
            ms(r.put_p50_ms),
            r.datagrams_per_node,
            r.peak_rss_bytes
                .map_or_else(|| "—".to_owned(), |b| format!("{:.2} GB", b as f64 / 1e9)),
            if r.checks == 0 {
                "—".to_owned()
            } else {
                format!("{}/{}", r.checks_passed, r.checks)
            },
            if r.pareto { "★" } else { "" },
        );
    }
    o
}

#[derive(Serialize)]
struct RunJson<'a> {
    dir: String,
    setting: &'a [(String, String)],
    seed: u64,
    exact: f64,
    p50_ms: f64,
    p99_ms: f64,
    checks_passed: usize,
    checks: usize,
    wall_s: Option<f64>,
    peak_rss_bytes: Option<u64>,
}

/// The sweep as JSON: the command, the rows, and every run's key figures and directory.
pub fn to_json(rows: &[Row], runs: &[Run], command: &str) -> String {
    let runs: Vec<RunJson> = runs
        .iter()
        .map(|r| RunJson {
            dir: r.point.dir_name(),
            setting: &r.point.setting,
            seed: r.report.scenario.seed,
            exact: r.report.lookups.closest_success,
            p50_ms: r.report.lookups.latency_ms.p50,
            p99_ms: r.report.lookups.latency_ms.p99,
            checks_passed: r.report.checks.iter().filter(|c| c.passed).count(),
            checks: r.report.checks.len(),
            wall_s: r.info.as_ref().map(|i| i.wall_total_s),
            peak_rss_bytes: r.info.as_ref().map(|i| i.peak_rss_bytes),
        })
        .collect();
    let doc = serde_json::json!({ "command": command, "rows": rows, "runs": runs });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Writes `sweep.md`, `sweep.json` and the plot `sweep.svg` / `sweep.png` (exactness against
/// p99, one point a setting) into `dir`.
pub fn write_sweep(
    dir: &Path,
    rows: &[Row],
    runs: &[Run],
    command: &str,
) -> Result<(), OutputError> {
    write(&dir.join("sweep.md"), &markdown(rows, command))?;
    write(
        &dir.join("sweep.json"),
        &(to_json(rows, runs, command) + "\n"),
    )?;
    register_font();
    let err = |e: String| OutputError::Plot("sweep".to_owned(), e);
    let (svg, png) = (dir.join("sweep.svg"), dir.join("sweep.png"));
    let bounds = Bounds::of(runs);
    {
        let root = SVGBackend::new(&svg, (900, 560)).into_drawing_area();
        plot(&root, rows, bounds).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let root = BitMapBackend::new(&png, (900, 560)).into_drawing_area();
    plot(&root, rows, bounds).map_err(err)?;
    root.present().map_err(|e| err(e.to_string()))
}

/// The scenario's `[expect]` bounds on the plotted figures, drawn as dashed lines.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Bounds {
    /// `lookups.closest_success >= …`, in %.
    exact_min: Option<f64>,
    /// `lookups.latency_ms.p99 <= …`, in ms.
    p99_max: Option<f64>,
}

impl Bounds {
    /// The bounds the first run checked (every run of a sweep has the same `[expect]`
    /// unless the sweep changes it).
    fn of(runs: &[Run]) -> Bounds {
        let checks = runs.first().map_or(&[][..], |r| &r.report.checks[..]);
        let bound = |prefix: &str| {
            checks
                .iter()
                .find(|c| c.name.starts_with(prefix))
                .map(|c| c.bound)
        };
        Bounds {
            exact_min: bound("lookups.closest_success >=").map(|b| b * 100.0),
            p99_max: bound("lookups.latency_ms.p99 <="),
        }
    }
}

fn plot<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    bounds: Bounds,
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| format!("{x:?}");
    root.fill(&WHITE).map_err(e)?;
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for r in rows {
        x0 = x0.min(r.p99_ms);
        x1 = x1.max(r.p99_ms);
        y0 = y0.min(r.exact * 100.0);
        y1 = y1.max(r.exact * 100.0);
    }
    if rows.is_empty() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 100.0);
    }
    // The targets stay in view.
    if let Some(b) = bounds.p99_max {
        (x0, x1) = (x0.min(b), x1.max(b));
    }
    if let Some(b) = bounds.exact_min {
        (y0, y1) = (y0.min(b), y1.max(b));
    }
    let (dx, dy) = (((x1 - x0) * 0.15).max(50.0), ((y1 - y0) * 0.15).max(0.5));
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Exactness against p99 (red: no other row beats it; #: row of sweep.md; dashed: targets)",
            (crate::output::FONT, 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - dx).max(0.0)..x1 + dx, (y0 - dy)..(y1 + dy).min(100.2))
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("p99 lookup latency (ms, mean over seeds)")
        .y_desc("lookups exact (%)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style((crate::output::FONT, 14))
        .draw()
        .map_err(e)?;
    let (xr, yr) = ((x0 - dx).max(0.0)..x1 + dx, (y0 - dy)..(y1 + dy).min(100.2));
    let target = ShapeStyle::from(&BLACK.mix(0.6)).stroke_width(1);
    if let Some(b) = bounds.p99_max {
        chart
            .draw_series(DashedLineSeries::new(
                [(b, yr.start), (b, yr.end)],
                6,
                4,
                target,
            ))
            .map_err(e)?;
    }
    if let Some(b) = bounds.exact_min {
        chart
            .draw_series(DashedLineSeries::new(
                [(xr.start, b), (xr.end, b)],
                6,
                4,
                target,
            ))
            .map_err(e)?;
    }
    for (i, r) in rows.iter().enumerate() {
        let (x, y) = (r.p99_ms, r.exact * 100.0);
        let color = if r.pareto { RED } else { BLUE };
        let label = format!("#{}: {}", i + 1, r.values);
        // The label beside its point, not on it.
        let point = EmptyElement::at((x, y))
            + Circle::new((0, 0), 5, color.filled())
            + Text::new(
                label,
                (9, -7),
                (crate::output::FONT, 13).into_font().color(&BLACK),
            );
        chart.draw_series(std::iter::once(point)).map_err(e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Check, LookupSummary};

    #[test]
    fn an_axis_splits_at_commas_outside_brackets_and_quotes() {
        let a = Axis::parse("engine.lookup_attempts=2, 3,4").expect("valid");
        assert_eq!(a.name, "engine.lookup_attempts");
        assert_eq!(a.values, ["2", "3", "4"]);
        let a = Axis::parse("engine.bucket_sizes_far=[],[128,64,32,16]").expect("valid");
        assert_eq!(a.values, ["[]", "[128,64,32,16]"]);
        let a = Axis::parse(r#"name="a,b","c""#).expect("valid");
        assert_eq!(a.values, [r#""a,b""#, r#""c""#]);
        assert_eq!(Axis::parse("seed=7").expect("one value").values, ["7"]);
        for bad in [
            "nodes",
            "=1,2",
            "nodes=",
            "nodes=1,,2",
            "x=[1,2",
            "x=]",
            "x=\"a",
            "a b=1",
        ] {
            assert!(
                matches!(Axis::parse(bad), Err(SweepError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(
            Axis::parse("nodes=5,5"),
            Err(SweepError::Duplicate("nodes".into(), "5".into()))
        );
    }

    #[test]
    fn the_grid_is_every_combination_with_seeds_fastest() {
        let axes = [
            Axis::parse("a=1,2").expect("valid"),
            Axis::parse("b=x,y").expect("valid"),
        ];
        let points = grid(&axes, &[7, 8]).expect("valid");
        assert_eq!(points.len(), 8);
        assert_eq!(points[0].overrides(), ["a=1", "b=x", "seed=7"]);
        assert_eq!(points[1].overrides(), ["a=1", "b=x", "seed=8"]);
        assert_eq!(points[2].overrides(), ["a=1", "b=y", "seed=7"]);
        assert_eq!(points[7].overrides(), ["a=2", "b=y", "seed=8"]);
        assert!(points.iter().enumerate().all(|(i, p)| p.index == i));
        assert_eq!(points[3].setting_label(), "a=1 b=y");
        assert_eq!(points[3].dir_name(), "003_a=1,b=y,seed=8");
        // Seeds only, or settings only.
        let seeds = grid(&[], &[1, 2]).expect("valid");
        assert_eq!(seeds.len(), 2);
        assert_eq!(seeds[0].setting_label(), "(base scenario)");
        let once = grid(&axes[..1], &[]).expect("valid");
        assert_eq!(once.len(), 2);
        assert_eq!(once[1].overrides(), ["a=2"]);
        // Odd characters stay out of directory names.
        let odd = grid(&[Axis::parse(r#"name="a b/c""#).expect("valid")], &[]).expect("valid");
        assert_eq!(odd[0].dir_name(), "000_name=_a_b_c_");
        // One name, one axis.
        assert_eq!(
            grid(&[axes[0].clone(), axes[0].clone()], &[]),
            Err(SweepError::Repeated("a".into()))
        );
        assert_eq!(
            grid(&[Axis::parse("seed=1,2").expect("valid")], &[3]),
            Err(SweepError::Repeated("seed".into()))
        );
        assert_eq!(
            grid(&axes, &[1, 2, 1]),
            Err(SweepError::Duplicate("--seeds".into(), "1".into()))
        );
    }

    fn run(setting: &str, seed: u64, exact: f64, p50: f64, p99: f64, passed: bool) -> Run {
        let mut report = Report {
            lookups: LookupSummary {
                closest_success: exact,
                ..LookupSummary::default()
            },
            ..Report::default()
        };
        report.scenario.seed = seed;
        report.lookups.latency_ms.p50 = p50;
        report.lookups.latency_ms.p99 = p99;
        report.checks.push(Check {
            name: "x".into(),
            value: 0.0,
            bound: 0.0,
            passed,
        });
        let (name, value) = setting.split_once('=').expect("name=value");
        Run {
            point: Point {
                index: 0,
                setting: vec![(name.into(), value.into())],
                seed: Some(seed),
            },
            report,
            info: None,
        }
    }

    #[test]
    fn rows_average_the_seeds_and_mark_what_nothing_beats() {
        let runs = [
            run("t=1", 1, 0.96, 500.0, 2000.0, false),
            run("t=1", 2, 0.98, 520.0, 1800.0, true),
            // Faster at p99, less exact: on the front.
            run("t=2", 1, 0.95, 505.0, 1400.0, false),
            // Beaten by t=1 on every count.
            run("t=3", 1, 0.90, 600.0, 2500.0, false),
            // Equal to t=1 on exactness and p99 but slower at the median: beaten.
            run("t=4", 1, 0.97, 511.0, 1900.0, false),
        ];
        let rows = rows(&runs);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].setting, "t=1");
        assert_eq!(rows[0].runs, 2);
        assert!((rows[0].exact - 0.97).abs() < 1e-12);
        assert!((rows[0].p50_ms - 510.0).abs() < 1e-9);
        assert!((rows[0].p99_ms - 1900.0).abs() < 1e-9);
        assert_eq!((rows[0].checks_passed, rows[0].checks), (1, 2));
        let front: Vec<bool> = rows.iter().map(|r| r.pareto).collect();
        assert_eq!(front, [true, true, false, false]);
        let md = markdown(&rows, "xorro sim --sweep t=1,2,3,4");
        let json = to_json(&rows, &runs, "cmd");
        assert!(md.contains("xorro sim --sweep t=1,2,3,4"), "{md}");
        assert!(
            md.contains("| 1 | t=1 | 2 | 97.00 % | 510 | 0 | 1900 |"),
            "{md}"
        );
        assert_eq!(md.matches('★').count(), 1 + 1 + 2, "{md}");
        let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(json["rows"].as_array().map(Vec::len), Some(4));
        assert_eq!(json["runs"][1]["seed"], 2);
        assert_eq!(json["runs"][0]["dir"], "000_t=1,seed=1");
    }

    #[test]
    fn the_targets_come_from_the_checks() {
        let mut r = run("t=1", 1, 0.96, 500.0, 2000.0, false);
        assert_eq!(Bounds::of(std::slice::from_ref(&r)), Bounds::default());
        for (name, bound) in [
            ("lookups.closest_success >= 0.995", 0.995),
            ("lookups.latency_ms.p50 <= 300", 300.0),
            ("lookups.latency_ms.p99 <= 1500", 1500.0),
        ] {
            r.report.checks.push(Check {
                name: name.into(),
                value: 0.0,
                bound,
                passed: false,
            });
        }
        let b = Bounds::of(&[r]);
        assert!(
            b.exact_min.is_some_and(|v| (v - 99.5).abs() < 1e-9),
            "{b:?}"
        );
        assert_eq!(b.p99_max, Some(1500.0));
        assert_eq!(Bounds::of(&[]), Bounds::default());
    }

    #[test]
    fn the_outputs_are_written() {
        let dir = tempfile_dir();
        let runs = [
            run("t=1", 1, 0.96, 500.0, 2000.0, false),
            run("t=2", 1, 0.95, 505.0, 1400.0, false),
        ];
        let rows = rows(&runs);
        write_sweep(&dir, &rows, &runs, "cmd").expect("written");
        for f in ["sweep.md", "sweep.json", "sweep.svg", "sweep.png"] {
            let len = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
            assert!(len > 100, "{f}: {len} bytes");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xorro-sweep-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
