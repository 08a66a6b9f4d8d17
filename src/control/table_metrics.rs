//! Stick-table metrics for the Prometheus exporter: HAProxy's `haproxy_sticktable_size` and
//! `haproxy_sticktable_used`, one sample per table labelled with its name and key type. They are
//! part of the unfiltered output (no `scope`, or `scope=*`).

use std::fmt::Write as _;

use crate::route::RouteTable;

/// The exposition text of the table metrics; empty without tables.
pub fn render(rt: &RouteTable) -> String {
    let mut out = String::new();
    if rt.tables.is_empty() {
        return out;
    }
    type Metric = (&'static str, &'static str, fn(&crate::stick::table::Table) -> u64);
    const METRICS: [Metric; 2] = [
        ("haproxy_sticktable_size", "Stick table size.", |t| u64::from(t.size)),
        ("haproxy_sticktable_used", "Number of entries used in this stick table.", |t| t.used() as u64),
    ];
    for (name, help, value) in METRICS {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
        for t in &rt.tables.list {
            if name.ends_with("used") {
                t.purge_expired();
            }
            // Table names are proxy names: no quote or backslash to escape.
            let _ = writeln!(out, "{name}{{name=\"{}\",type=\"{}\"}} {}", t.name, t.type_name(), value(t));
        }
    }
    out
}
