//! Files of a run: the JSON summary, SVG and PNG plots, a Markdown report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::{LookupSummary, Report, RunInfo, StoreSummary};

/// Why the outputs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("cannot draw {0}: {1}")]
    Plot(String, String),
}

pub(crate) const FONT: &str = "sans-serif";
static FONT_ONCE: Once = Once::new();

/// Registers the embedded font (Ubuntu Light, shipped by `epaint_default_fonts`): no system
/// font library is needed.
pub(crate) fn register_font() {
    FONT_ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), OutputError> {
    std::fs::write(path, text).map_err(|source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates `dir` if needed and checks that a file can be written there, so that a run of
/// many minutes does not end on an unwritable output directory.
pub fn prepare_output_dir(dir: &Path) -> Result<(), OutputError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OutputError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let probe = dir.join(".xorro-sim-write-check");
    std::fs::write(&probe, b"").map_err(io(&probe))?;
    std::fs::remove_file(&probe).map_err(io(&probe))
}

/// Writes into `dir`: `summary.json` (the deterministic [`Report`]), `scenario.toml`,
/// `run_info.json` (when given), `report.md`, `ops.csv` (every operation, see
/// [`Report::ops_csv`]; as deterministic as the summary), and four plots as SVG and PNG:
/// `latency_cdf`, `rounds`, `success_over_time`, `messages`.
pub fn write_outputs(
    report: &Report,
    info: Option<&RunInfo>,
    dir: &Path,
) -> Result<(), OutputError> {
    std::fs::create_dir_all(dir).map_err(|source| OutputError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    write(&dir.join("summary.json"), &(report.to_json() + "\n"))?;
    write(&dir.join("scenario.toml"), &report.scenario.to_toml())?;
    if let Some(info) = info {
        let text = serde_json::to_string_pretty(info).unwrap_or_default();
        write(&dir.join("run_info.json"), &(text + "\n"))?;
    }
    write(&dir.join("report.md"), &markdown(report, info))?;
    write(&dir.join("ops.csv"), &report.ops_csv())?;
    register_font();
    for name in PLOTS {
        let svg = dir.join(format!("{name}.svg"));
        let png = dir.join(format!("{name}.png"));
        let err = |e: String| OutputError::Plot(name.to_string(), e);
        {
            let root = SVGBackend::new(&svg, (800, 500)).into_drawing_area();
            draw(name, &root, report).map_err(err)?;
            root.present().map_err(|e| err(e.to_string()))?;
        }
        {
            let root = BitMapBackend::new(&png, (800, 500)).into_drawing_area();
            draw(name, &root, report).map_err(err)?;
            root.present().map_err(|e| err(e.to_string()))?;
        }
    }
    Ok(())
}

const PLOTS: [&str; 4] = ["latency_cdf", "rounds", "success_over_time", "messages"];

fn draw<DB: DrawingBackend>(
    name: &str,
    root: &DrawingArea<DB, Shift>,
    r: &Report,
) -> Result<(), String> {
    match name {
        "latency_cdf" => latency_cdf(root, r),
        "rounds" => rounds(root, r),
        "success_over_time" => success_over_time(root, r),
        _ => messages(root, r),
    }
}

fn e<E: std::fmt::Debug>(err: E) -> String {
    format!("{err:?}")
}

fn title(r: &Report, what: &str) -> String {
    format!(
        "{what} — {} nodes, seed {}",
        r.scenario.nodes, r.scenario.seed
    )
}

fn latency_cdf<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &Report,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(e)?;
    type Series<'a> = (&'a str, &'a [(f64, f64)], RGBColor);
    let mut series: Vec<Series<'_>> = vec![("get_peers lookups", &r.lookups.latency_cdf, BLUE)];
    if let Some(a) = &r.announces {
        series.push(("announce (search + store)", &a.write.latency_cdf, RED));
        series.push(("get_peers after announce", &a.read.latency_cdf, GREEN));
        series.push(("the same, to its first peer", &a.first_found_cdf, CYAN));
    }
    if let Some(p) = &r.puts {
        series.push(("BEP 44 get after put", &p.read.latency_cdf, MAGENTA));
    }
    let p99 = series
        .iter()
        .filter_map(|s| s.1.get(99).map(|p| p.0))
        .fold(100.0f64, f64::max);
    let x_max = (p99 * 1.1).max(100.0);
    let mut chart = ChartBuilder::on(root)
        .caption(title(r, "Lookup latency CDF"), (FONT, 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..x_max, 0f64..1f64)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms); cut at the 99th percentile")
        .y_desc("fraction of lookups")
        .label_style((FONT, 14))
        .draw()
        .map_err(e)?;
    for (name, pts, color) in series {
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    Ok(())
}

fn histogram<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    caption: String,
    x_desc: String,
    hist: &std::collections::BTreeMap<u32, u64>,
    bin: u32,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(e)?;
    let mut binned: std::collections::BTreeMap<u32, u64> = Default::default();
    for (&k, &v) in hist {
        *binned.entry(k / bin * bin).or_insert(0) += v;
    }
    let total: u64 = binned.values().sum::<u64>().max(1);
    let x_max = binned.keys().last().copied().unwrap_or(1) + bin;
    let y_max = binned.values().copied().max().unwrap_or(1) as f64 / total as f64 * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(caption, (FONT, 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0u32..x_max, 0f64..y_max.max(0.01))
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("fraction of lookups")
        .label_style((FONT, 14))
        .draw()
        .map_err(e)?;
    chart
        .draw_series(binned.iter().map(|(&k, &v)| {
            Rectangle::new(
                [(k, 0.0), (k + bin, v as f64 / total as f64)],
                BLUE.mix(0.6).filled(),
            )
        }))
        .map_err(e)?;
    Ok(())
}

fn rounds<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Result<(), String> {
    histogram(
        root,
        title(r, "Rounds per lookup"),
        format!(
            "rounds (hops to the closest node); analytic log2 N / (1 + log2(k+1)) = {:.2}, measured mean {:.2}",
            r.analytic_rounds, r.lookups.rounds.mean
        ),
        &r.lookups.rounds_histogram,
        1,
    )
}

fn messages<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Result<(), String> {
    let max = r
        .lookups
        .messages_histogram
        .keys()
        .last()
        .copied()
        .unwrap_or(1);
    histogram(
        root,
        title(r, "Queries per lookup"),
        format!(
            "queries sent (median {:.0}, mean {:.1})",
            r.lookups.messages.p50, r.lookups.messages.mean
        ),
        &r.lookups.messages_histogram,
        (max / 40).max(1),
    )
}

fn success_over_time<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &Report,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(e)?;
    let x_max = r
        .over_time
        .last()
        .map_or(1, |b| b.start_s + r.scenario.workload.bin_s) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(title(r, "Lookup success over time"), (FONT, 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .right_y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..1.05f64)
        .map_err(e)?
        .set_secondary_coord(
            0f64..x_max,
            0f64..(r.over_time.iter().map(|b| b.online).max().unwrap_or(1) as f64 * 1.1),
        );
    chart
        .configure_mesh()
        .x_desc("seconds since the workload began")
        .y_desc("found the true k closest")
        .label_style((FONT, 14))
        .draw()
        .map_err(e)?;
    chart
        .configure_secondary_axes()
        .y_desc("nodes online")
        .label_style((FONT, 14))
        .draw()
        .map_err(e)?;
    let half = r.scenario.workload.bin_s as f64 / 2.0;
    chart
        .draw_series(LineSeries::new(
            r.over_time
                .iter()
                .filter(|b| b.lookups > 0)
                .map(|b| (b.start_s as f64 + half, b.closest_success)),
            BLUE.stroke_width(2),
        ))
        .map_err(e)?
        .label("lookup success")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_secondary_series(LineSeries::new(
            r.over_time
                .iter()
                .map(|b| (b.start_s as f64, b.online as f64)),
            RED.stroke_width(1),
        ))
        .map_err(e)?
        .label("nodes online")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    Ok(())
}

fn row(out: &mut String, name: &str, s: &LookupSummary) {
    let _ = writeln!(
        out,
        "| {name} | {} | {} | {} | {:.2} % | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} | {:.0} |",
        s.started,
        s.failed,
        s.aborted,
        s.closest_success * 100.0,
        s.latency_ms.p50,
        s.latency_ms.p90,
        s.latency_ms.p99,
        s.rounds.mean,
        s.messages.mean,
        s.bytes.mean,
    );
}

fn store_rows(out: &mut String, name: &str, s: &Option<StoreSummary>) {
    if let Some(s) = s {
        row(out, &format!("{name}: store"), &s.write);
        row(out, &format!("{name}: read"), &s.read);
    }
}

/// The Markdown report.
pub fn markdown(r: &Report, info: Option<&RunInfo>) -> String {
    let mut o = String::new();
    let n = &r.network;
    let _ = writeln!(
        o,
        "# Simulation `{}`: {} nodes, seed {}\n",
        r.scenario.name, n.nodes, r.scenario.seed
    );
    let _ = writeln!(o, "Reproduce: `{}`\n", r.reproduce_command());
    let _ = writeln!(o, "## Network\n");
    let _ = writeln!(
        o,
        "{} hosts ({} behind NAT, {} adversarial); built in {:.0} s of virtual time; {:.0} s simulated in all; {} events.",
        n.hosts, n.nat, n.adversaries, n.build_virtual_s, n.virtual_s, n.events
    );
    let _ = writeln!(
        o,
        "Bootstrap: median {:.0} ms, p99 {:.0} ms, {} failed. Churn: {} departures, {} returns with the old id, {} new arrivals; {} online at the end.",
        n.bootstrap_ms.p50,
        n.bootstrap_ms.p99,
        n.bootstrap_failed,
        n.departures,
        n.returns,
        n.arrivals,
        n.online_end
    );
    let _ = writeln!(
        o,
        "Routing tables at the end: {:.1} members, {:.1} waiting in replacement caches, {:.1} buckets per node (mean); RTT to a member p50 {:.0} ms, p90 {:.0} ms (random pairs: {:.0} ms at the median).\n",
        n.table_members_mean,
        n.table_cache_mean,
        n.table_buckets_mean,
        n.member_rtt_ms.p50,
        n.member_rtt_ms.p90,
        r.scenario.link.rtt_median_ms
    );
    let depths: Vec<String> = n
        .members_by_depth
        .iter()
        .filter(|d| d.per_node >= 0.1)
        .map(|d| {
            let plus = if d.depth == crate::report::DEPTH_GROUPED {
                "+"
            } else {
                ""
            };
            format!(
                "{}{plus}: {:.1} at {:.0} ms",
                d.depth, d.per_node, d.rtt_ms.p50
            )
        })
        .collect();
    if !depths.is_empty() {
        let _ = writeln!(
            o,
            "Members by depth (id bits shared with the node: members per node, at their median RTT): {}.\n",
            depths.join("; ")
        );
    }
    let w = &r.workload_traffic;
    if w.span_ns > 0 {
        let node_minutes = n.online_end.max(1) as f64 * w.span_ns as f64 / 60e9;
        let _ = writeln!(
            o,
            "Workload phase ({:.0} s): {} datagrams, {} bytes ({:.1} datagrams and {:.0} bytes per node per minute, nodes online at the end); queries sent: {} ping, {} find_node, {} get_peers, {} other ({:.2} pings per node per minute). The measured lookups asked {} nodes that had left the network ({} lookups asked at least one).\n",
            w.span_ns as f64 / 1e9,
            w.datagrams,
            w.bytes,
            w.datagrams as f64 / node_minutes,
            w.bytes as f64 / node_minutes,
            w.ping,
            w.find_node,
            w.get_peers,
            w.other_queries,
            w.ping as f64 / node_minutes,
            w.lookup_departed_asked,
            w.lookups_meeting_departed
        );
    }
    let m = &n.lookup_misses;
    if m.missed > 0 {
        let _ = writeln!(
            o,
            "True closest nodes that get_peers lookups missed: {} in all; online for < 10 s: {}, 10-60 s: {}, > 60 s: {}; came back with their old id: {}; new arrivals: {}; a member of none of the other true closest nodes' tables: {}; RTT from the asker: mean {:.0} ms, over 300 ms for {} (of the {} true closest nodes the same lookups found, {} were over 300 ms away).\n",
            m.missed,
            m.online_under_10s,
            m.online_10_to_60s,
            m.online_over_60s,
            m.returned,
            m.arrived,
            m.known_to_no_neighbour,
            m.rtt_to_asker_ms_sum as f64 / m.missed as f64,
            m.rtt_to_asker_over_300ms,
            m.found_alongside,
            m.found_rtt_over_300ms
        );
    }
    let l = &r.lookups;
    if l.rtt_floor_ms.count > 0 {
        let (none, some) = (&l.by_departed.none, &l.by_departed.some);
        let _ = writeln!(
            o,
            "Where get_peers lookups spend their time: the RTT from the asker to the slowest of the true k closest nodes, which a lookup must hear, is p50 {:.0} ms, p99 {:.0} ms (the link model's floor). {} lookups asked no departed node: p50 {:.0} ms, p99 {:.0} ms, {:.2} % exact; {} asked one or more: p50 {:.0} ms, p99 {:.0} ms, {:.2} % exact.\n",
            l.rtt_floor_ms.p50,
            l.rtt_floor_ms.p99,
            none.lookups,
            none.latency_ms.p50,
            none.latency_ms.p99,
            none.closest_success * 100.0,
            some.lookups,
            some.latency_ms.p50,
            some.latency_ms.p99,
            some.closest_success * 100.0,
        );
    }
    if l.closest_bound_ms.count > 0 {
        let _ = writeln!(
            o,
            "Of the {} lookups that asked all of their true k closest nodes, the last was first asked after p50 {:.0} ms, p99 {:.0} ms (the search learning them), and the earliest they could all have answered, as asked, is p50 {:.0} ms, p99 {:.0} ms; the rest of the latency is lost answers, retransmissions and jitter.\n",
            l.closest_bound_ms.count,
            l.closest_asked_ms.p50,
            l.closest_asked_ms.p99,
            l.closest_bound_ms.p50,
            l.closest_bound_ms.p99,
        );
    }
    let _ = writeln!(o, "## Operations\n");
    let _ = writeln!(
        o,
        "| operation | started | failed | aborted | true k closest found | p50 ms | p90 ms | p99 ms | rounds | queries | bytes |"
    );
    let _ = writeln!(
        o,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    row(&mut o, "get_peers (random target)", &r.lookups);
    store_rows(&mut o, "announce", &r.announces);
    store_rows(&mut o, "BEP 44 put", &r.puts);
    store_rows(&mut o, "eclipse target", &r.eclipse);
    let _ = writeln!(o);
    for (name, s) in [
        ("announced peer", &r.announces),
        ("stored item", &r.puts),
        ("eclipsed peer", &r.eclipse),
    ] {
        if let Some(s) = s {
            let _ = writeln!(
                o,
                "- {name} found by a read from another node: {:.2} % (first seen after p50 {:.0} / p90 {:.0} / p99 {:.0} ms); stored on a median of {:.0} nodes.",
                s.found * 100.0,
                s.first_found_ms.p50,
                s.first_found_ms.p90,
                s.first_found_ms.p99,
                s.stored_at.p50
            );
        }
    }
    let _ = writeln!(
        o,
        "- rounds: measured mean {:.2}, median {:.0}; analytic log2 N / (1 + log2(k+1)) = {:.2}.\n",
        r.lookups.rounds.mean, r.lookups.rounds.p50, r.analytic_rounds
    );
    let t = &r.traffic;
    let g = &r.engine;
    let _ = writeln!(o, "## Traffic\n");
    let _ = writeln!(
        o,
        "{} datagrams ({:.1} MB): {} lost, {} cut by partitions, {} blocked by NAT, {} to departed nodes, {} tampered by adversaries. Engine: {} timeouts, {} rate-limited, {} not sent (outgoing budget), {} late responses.\n",
        t.datagrams,
        t.bytes as f64 / 1e6,
        t.lost,
        t.partitioned,
        t.nat_blocked,
        t.to_offline,
        t.tampered,
        g.timeouts,
        g.drop_rate_limited,
        g.drop_outgoing_budget,
        g.drop_unexpected_response
    );
    if !r.over_time.is_empty() {
        let _ = writeln!(
            o,
            "## Over time\n\n| from s | online | lookups | success | p50 ms |\n| ---: | ---: | ---: | ---: | ---: |"
        );
        for b in &r.over_time {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.2} % | {:.0} |",
                b.start_s,
                b.online,
                b.lookups,
                b.closest_success * 100.0,
                b.latency_p50_ms
            );
        }
        let _ = writeln!(o);
    }
    if !r.checks.is_empty() {
        let _ = writeln!(o, "## Checks\n");
        for c in &r.checks {
            let _ = writeln!(
                o,
                "- [{}] {} (measured {})",
                if c.passed { "x" } else { " " },
                c.name,
                c.value
            );
        }
        let _ = writeln!(o);
    }
    if let Some(i) = info {
        let _ = writeln!(o, "## This machine\n");
        let _ = writeln!(
            o,
            "Wall time {:.1} s (build {:.1} s, workload {:.1} s), {:.0} events/s, peak RSS {:.2} GB, {:.0} bytes per node once built (`size_of::<Node>()` = {}).\n",
            i.wall_total_s,
            i.wall_build_s,
            i.wall_workload_s,
            i.events_per_s,
            i.peak_rss_bytes as f64 / 1e9,
            i.bytes_per_node,
            i.node_struct_bytes
        );
        let _ = writeln!(
            o,
            "Engine memory per node once built (`Node::memory_usage`, lower bound): {}.\n",
            i.node_memory_built
        );
    }
    let _ = writeln!(
        o,
        "![latency](latency_cdf.svg) ![rounds](rounds.svg) ![success](success_over_time.svg) ![messages](messages.svg)"
    );
    o
}
