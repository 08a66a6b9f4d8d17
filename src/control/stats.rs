//! The statistics HAProxy's tooling reads, rendered from the shared server and backend state:
//! `show stat` (CSV, typed, JSON), `show info`, `show servers state`. The stats socket and the
//! stats page both call these; counters are read (summed) at call time.

use crate::route::RouteTable;

/// How `show stat` / `show info` are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Typed,
    Json,
}

/// `show stat [<iid> <type> <sid>]`: which proxies and object types to print (`None`: all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFilter {
    /// Proxy id, `-1`/`None` for all.
    pub iid: Option<i64>,
    /// Bit field as HAProxy's: 1 frontends, 2 backends, 4 servers; `None` for all.
    pub types: Option<u32>,
    /// Server id, `-1`/`None` for all.
    pub sid: Option<i64>,
}

/// Process-wide facts `show info` needs that the routing table does not hold.
#[derive(Clone, Debug, Default)]
pub struct ProcessInfo {
    pub pid: u32,
    pub nbthread: u32,
    pub start_unix_secs: u64,
    pub uptime_secs: u64,
}

/// `show stat`: the CSV header (`# pxname,svname,...`) and one row per frontend, server and
/// backend, or the typed/JSON forms. Not implemented yet: returns an empty table.
pub fn show_stat(rt: &RouteTable, format: Format, filter: StatFilter) -> String {
    let _ = (rt, format, filter);
    String::new()
}

/// `show info`: `Name: value` lines (typed/JSON forms too). Not implemented yet.
pub fn show_info(rt: &RouteTable, info: &ProcessInfo, format: Format) -> String {
    let _ = (rt, info, format);
    String::new()
}

/// `show servers state [<backend>]`: the version line `1`, the `#` header, one line per server.
/// Not implemented yet.
pub fn show_servers_state(rt: &RouteTable, backend: Option<&str>) -> String {
    let _ = (rt, backend);
    String::new()
}
