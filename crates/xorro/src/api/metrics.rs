//! `GET /metrics`: the node's counters in the Prometheus (OpenMetrics) text format.
//!
//! Collector style: each scrape takes one [`Status`] from the node, builds a fresh
//! [`Registry`] around a collector that holds it, and encodes that. There is no global
//! registry and no counter kept on the side, so several nodes in one process (a testnet,
//! tests) each report their own.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use xorro_node::Status;

use super::types::{drop_counts, query_counts};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes `status` in the text format.
pub fn encode(status: &Status) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("xorro");
    registry.register_collector(Box::new(StatusCollector(status.clone())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// One scrape's worth of node state.
#[derive(Debug)]
struct StatusCollector(Status);

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

fn labelled_counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in values {
        let labels = [(label, *value)];
        ConstCounter::new(*count).encode(family.encode_family(&labels.as_slice())?)?;
    }
    Ok(())
}

fn labelled_gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, usize)],
) -> Result<(), std::fmt::Error> {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, count) in values {
        let labels = [(label, *value)];
        ConstGauge::new(to_i64(*count)).encode(family.encode_family(&labels.as_slice())?)?;
    }
    Ok(())
}

impl Collector for StatusCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let st = &s.stats;
        counter(
            &mut enc,
            "packets_in",
            "Datagrams received.",
            st.datagrams_in,
        )?;
        counter(&mut enc, "packets_out", "Datagrams sent.", st.datagrams_out)?;
        labelled_counter(
            &mut enc,
            "queries",
            "Queries answered, by method.",
            "method",
            &query_counts(&st.queries),
        )?;
        counter(
            &mut enc,
            "responses_in",
            "Responses to our queries.",
            st.responses_in,
        )?;
        counter(
            &mut enc,
            "errors_in",
            "KRPC error replies to our queries.",
            st.errors_in,
        )?;
        counter(
            &mut enc,
            "errors_out",
            "KRPC error replies we sent.",
            st.errors_out,
        )?;
        counter(
            &mut enc,
            "timeouts",
            "Requests of ours that timed out.",
            st.timeouts,
        )?;
        labelled_counter(
            &mut enc,
            "drops",
            "Datagrams dropped, by reason.",
            "reason",
            &drop_counts(&st.drops),
        )?;
        labelled_counter(
            &mut enc,
            "socket_errors",
            "Datagrams lost at the sockets, by kind.",
            "kind",
            &s.socket_errors.by_kind(),
        )?;
        counter(
            &mut enc,
            "lookups_started",
            "Lookups started.",
            st.lookups_started,
        )?;
        counter(
            &mut enc,
            "lookups_finished",
            "Lookups finished.",
            st.lookups_finished,
        )?;
        counter(
            &mut enc,
            "rebootstraps",
            "Bootstraps started again because the routing tables held no usable contact.",
            st.rebootstraps,
        )?;
        counter(
            &mut enc,
            "unreachable_spells",
            "Times the node took itself for unreachable and acted read-only.",
            st.unreachable_spells,
        )?;
        counter(
            &mut enc,
            "late_answers",
            "Late candidates (asked past lookup_attempts or waited for) that answered.",
            st.late_answers,
        )?;
        counter(
            &mut enc,
            "late_silences",
            "Late candidates (asked past lookup_attempts or waited for) that never answered.",
            st.late_silences,
        )?;
        gauge(
            &mut enc,
            "lookups_running",
            "Lookups running.",
            to_i64(s.lookups_running),
        )?;

        let h = &s.lookup_latency;
        let mut buckets = Vec::with_capacity(h.bounds.len() + 1);
        let mut below = 0;
        for (bound, cumulative) in h.bounds.iter().zip(&h.cumulative) {
            // The encoder wants counts per bucket and adds them up itself.
            buckets.push((*bound, cumulative.saturating_sub(below)));
            below = *cumulative;
        }
        buckets.push((f64::MAX, h.count.saturating_sub(below)));
        let mut m = enc.encode_descriptor(
            "lookup_duration_seconds",
            "Duration of lookups.",
            None,
            MetricType::Histogram,
        )?;
        m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            h.sum, h.count, &buckets, None,
        )?;

        labelled_gauge(
            &mut enc,
            "routing_table_contacts",
            "Contacts in the routing table, by address family.",
            "family",
            &[("ipv4", s.table_v4), ("ipv6", s.table_v6)],
        )?;
        labelled_gauge(
            &mut enc,
            "store_entries",
            "What the node stores for others, by kind.",
            "kind",
            &[
                ("infohashes", s.stored_infohashes),
                ("peers", s.stored_peers),
                ("items", s.stored_items),
            ],
        )?;
        labelled_gauge(
            &mut enc,
            "own_publications",
            "What the node keeps publishing, by kind.",
            "kind",
            &[
                ("announcements", s.own_announcements),
                ("items", s.own_items),
            ],
        )?;
        gauge(
            &mut enc,
            "read_only",
            "1 when the node is read-only (BEP 43).",
            i64::from(s.read_only),
        )?;
        let uptime = i64::try_from(s.uptime.as_secs()).unwrap_or(i64::MAX);
        gauge(
            &mut enc,
            "uptime_seconds",
            "Seconds since the node started.",
            uptime,
        )?;
        Ok(())
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
