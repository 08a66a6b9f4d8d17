//! See config.rs.
pub mod config;

/// Reports an event of backend `backend` (a server going up or down, `backend X has no server
/// available!`) at `level`: to the backend's log targets and, as HAProxy does when not quiet, to
/// stderr as a `[WARNING]`/`[ALERT]` line. Until log targets are implemented this only writes
/// stderr.
pub fn backend_event(rt: &crate::route::RouteTable, backend: usize, level: config::Level, msg: &str) {
    let _ = (rt, backend);
    let tag = if matches!(level, config::Level::Emerg | config::Level::Alert | config::Level::Crit) { "ALERT" } else { "WARNING" };
    eprintln!("[{tag}]    ({}) : {msg}", std::process::id());
}
