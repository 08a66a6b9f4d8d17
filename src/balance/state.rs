//! Shared server and backend state, and the selection logic common to every algorithm: which
//! servers are eligible (active, or backup when no active server is usable), which have a free
//! connection slot, and the queue of streams waiting for one.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use crate::control::counters::Sharded;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;

use super::list::ServerList;
use super::queue::SlotFreed;

/// Administrative state, set by configuration (`disabled`) and the stats socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AdminState {
    Ready = 0,
    /// Takes no new traffic from balancing; persistent clients may still reach it.
    Drain = 1,
    /// Takes no traffic at all.
    Maint = 2,
}

/// The bit of [`ServerState`]'s admin byte for the resolution maintenance; with it set,
/// [`ServerState::admin`] reads as maintenance whatever state the rest of the byte holds.
const RESOLUTION_MAINT: u8 = 0x80;

/// Where a server is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAddr {
    Inet(SocketAddr),
    /// No port: the client's destination port is used.
    InetSamePort(IpAddr),
    /// `+N`/`-N`: the client's destination port plus an offset.
    InetOffset(IpAddr, i32),
    Unix(PathBuf),
    /// No address yet (`init-addr none` and the name did not resolve): the server starts in
    /// maintenance and cannot be connected to.
    Unresolved,
}

impl ServerAddr {
    /// The address to connect to for a client that reached `dst`.
    pub fn resolve(&self, dst: Option<SocketAddr>) -> Option<ConnectAddr> {
        match self {
            ServerAddr::Inet(a) => Some(ConnectAddr::Inet(*a)),
            ServerAddr::InetSamePort(ip) => dst.map(|d| ConnectAddr::Inet(SocketAddr::new(*ip, d.port()))),
            ServerAddr::InetOffset(ip, off) => {
                let port = i32::from(dst?.port()) + off;
                u16::try_from(port).ok().map(|p| ConnectAddr::Inet(SocketAddr::new(*ip, p)))
            }
            ServerAddr::Unix(p) => Some(ConnectAddr::Unix(p.clone())),
            ServerAddr::Unresolved => None,
        }
    }
}

/// A concrete address to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectAddr {
    Inet(SocketAddr),
    Unix(PathBuf),
}

/// `pool-max-conn` of a server: at most `max` idle connections kept by all workers together
/// (`None`: unlimited, `-1` in the configuration), counted in `idle`; and `max-reuse`: a
/// connection is reused at most `max_reuse` times (so it carries `max_reuse + 1` requests; `None`
/// is unlimited, `0` turns reuse off).
#[derive(Debug, Default)]
pub struct PoolLimit {
    pub max: Option<usize>,
    pub idle: AtomicUsize,
    pub max_reuse: Option<u32>,
}

/// A server's traffic counters: one set per worker, each on its own cache lines, summed when read.
#[derive(Debug, Default)]
pub struct ServerCounts {
    pub total_conns: AtomicU64,
    pub conn_errors: AtomicU64,
    pub retries: AtomicU64,
    pub redispatches: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// A backend's own counters, per worker like [`ServerCounts`].
#[derive(Debug, Default)]
pub struct BackendCounts {
    pub total_conns: AtomicU64,
    pub no_server: AtomicU64,
}

/// One server, shared by every worker.
#[derive(Debug)]
pub struct ServerState {
    pub name: String,
    pub id: u32,
    /// Where the server is reached; `set server addr` swaps it, so workers load it per connection
    /// (a lock-free `ArcSwap` load, no allocation).
    addr: ArcSwap<ServerAddr>,
    /// Bumped when the address changes or the server is deleted: idle pooled connections made
    /// before are closed instead of reused.
    conn_epoch: AtomicU32,
    /// `del server` removed it: its slot in [`ServerList`] stays as a tombstone, never picked and
    /// never listed.
    deleted: AtomicBool,
    /// Added with `add server` (not in the configuration).
    pub dynamic: bool,
    /// Other configuration elements name this server (`track`, `use-server`): it cannot be
    /// deleted at run time.
    pub referenced: bool,
    pub backup: bool,
    /// `cookie` value for persistence.
    pub cookie: Option<String>,
    /// `pool-max-conn` and the idle connections all workers keep for this server.
    pub pool: PoolLimit,
    /// `check` with its `rise`/`fall`, for servers added at run time (the statistics read the
    /// configured servers' from the backend's `stats_info`).
    pub dynamic_check: Option<(u32, u32)>,
    /// Current user weight (0..=256); changeable at run time.
    pub weight: AtomicU32,
    /// The weight from the configuration.
    pub initial_weight: u32,
    admin: AtomicU8,
    /// Operational state from health checks; true until a check says otherwise.
    up: AtomicBool,
    /// Up but taking no new traffic from balancing (HAProxy's NOLB): an HTTP check answered 404
    /// under `http-check disable-on-404`. Persistent clients still reach the server.
    nolb: AtomicBool,
    /// An agent check said `down`, `fail` or `stopped`: down whatever the health check says,
    /// until the agent says `up`.
    agent_down: AtomicBool,
    /// `disable health` on the stats socket: no health check is sent and the server counts as
    /// up, until `enable health`.
    pub check_disabled: AtomicBool,
    /// `disable agent` on the stats socket: no agent check is sent, until `enable agent`.
    pub agent_disabled: AtomicBool,
    /// `on-marked-down shutdown-sessions`: going DOWN closes the sessions this server carries.
    pub on_down_kill: bool,
    /// `on-marked-up shutdown-backup-sessions`: coming UP closes the backup servers' sessions.
    pub on_up_kill_backups: bool,
    /// The last health check's result, for `show stat` (`check_status`, `check_code`,
    /// `check_duration`, `last_chk`); `None` before the first check.
    pub last_check: std::sync::Mutex<Option<CheckReport>>,
    /// Failed health checks so far (`chkfail`).
    pub check_fails: AtomicU64,
    /// Sessions that may be shut down by a state change watch this: bumped, then notified.
    pub kill_epoch: AtomicU64,
    pub kill: tokio::sync::Notify,
    /// Some state change may shut this server's sessions down (set when the routing table is
    /// compiled): only then do its tunnels watch [`Self::kill`].
    pub killable: AtomicBool,
    /// Connections open to this server now, across all workers.
    pub cur_conns: AtomicU32,
    /// 0 is unlimited.
    pub maxconn: AtomicU32,
    /// `minconn`: with the backend's `fullconn`, the limit grows from this to `maxconn` with the
    /// backend's load ([`BackendState::limit_of`]); 0 is none.
    pub minconn: AtomicU32,
    pub maxqueue: u32,
    /// Streams waiting for a slot on this server (after persistence or `use-server`).
    pub queued: AtomicU32,
    /// PROXY protocol version to send: 0 none, 1 or 2.
    pub send_proxy: u8,
    /// Traffic counters, per worker (summed by [`Self::total_conns`] and the other readers).
    pub counts: Sharded<ServerCounts>,
    /// `observe`: which live-traffic errors count against the server's health.
    pub observe: Observe,
    /// Consecutive errors seen on live traffic under `observe`; the check engine reads and resets
    /// it, and acts (`on-error`) once it reaches `error-limit`.
    pub observed_errors: AtomicU32,
    /// HTTP transactions this server answered, for the `sluiced_server_*_seconds` histograms.
    pub latency: super::latency::Latency,
}

/// `observe` of a server: what the data plane reports to the check engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Observe {
    #[default]
    None,
    /// Connection errors count; a successful connection clears the count.
    Layer4,
    /// Connection errors, invalid responses and 5xx statuses (except 501 and 505) count; any
    /// other status clears the count.
    Layer7,
}

/// One health check result as the statistics print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// HAProxy's short status: `L4OK`, `L4CON`, `L7STS`...
    pub status: &'static str,
    /// Its description: `Layer4 check passed`...
    pub reason: &'static str,
    pub code: Option<u32>,
    pub duration_ms: u64,
    /// The info text (`Connection refused`, the HTTP reason...).
    pub desc: String,
}

impl ServerState {
    pub fn new(name: &str, id: u32, addr: ServerAddr, weight: u32, backup: bool) -> ServerState {
        ServerState {
            name: name.to_owned(),
            id,
            addr: ArcSwap::from_pointee(addr),
            conn_epoch: AtomicU32::new(0),
            deleted: AtomicBool::new(false),
            dynamic: false,
            referenced: false,
            backup,
            cookie: None,
            pool: PoolLimit::default(),
            dynamic_check: None,
            weight: AtomicU32::new(weight),
            initial_weight: weight,
            admin: AtomicU8::new(AdminState::Ready as u8),
            up: AtomicBool::new(true),
            nolb: AtomicBool::new(false),
            agent_down: AtomicBool::new(false),
            check_disabled: AtomicBool::new(false),
            agent_disabled: AtomicBool::new(false),
            on_down_kill: false,
            on_up_kill_backups: false,
            last_check: std::sync::Mutex::new(None),
            check_fails: AtomicU64::new(0),
            kill_epoch: AtomicU64::new(0),
            kill: tokio::sync::Notify::new(),
            killable: AtomicBool::new(false),
            cur_conns: AtomicU32::new(0),
            maxconn: AtomicU32::new(0),
            minconn: AtomicU32::new(0),
            maxqueue: 0,
            queued: AtomicU32::new(0),
            send_proxy: 0,
            counts: Sharded::default(),
            observe: Observe::None,
            observed_errors: AtomicU32::new(0),
            latency: super::latency::Latency::default(),
        }
    }

    /// Where the server is reached now.
    pub fn addr(&self) -> arc_swap::Guard<Arc<ServerAddr>> {
        self.addr.load()
    }
    /// Moves the server (`set server addr`): new connections go to `addr`; idle pooled ones to
    /// the old address are not reused.
    pub fn set_addr(&self, addr: ServerAddr) {
        self.addr.store(Arc::new(addr));
        self.conn_epoch.fetch_add(1, Ordering::AcqRel);
    }
    /// Changes with the address and on deletion: a pooled connection made under another epoch
    /// goes to an address the server no longer has.
    pub fn conn_epoch(&self) -> u32 {
        self.conn_epoch.load(Ordering::Acquire)
    }
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }
    /// `del server`: in maintenance for good, out of every listing, its idle connections closed.
    pub fn mark_deleted(&self) {
        self.set_admin(AdminState::Maint);
        self.deleted.store(true, Ordering::Release);
        self.conn_epoch.fetch_add(1, Ordering::AcqRel);
        self.shutdown_sessions();
    }

    /// The data plane reports a connection attempt to this server (`observe`).
    pub fn total_conns(&self) -> u64 {
        self.counts.sum(|c| &c.total_conns)
    }
    pub fn conn_errors(&self) -> u64 {
        self.counts.sum(|c| &c.conn_errors)
    }
    pub fn retries(&self) -> u64 {
        self.counts.sum(|c| &c.retries)
    }
    pub fn redispatches(&self) -> u64 {
        self.counts.sum(|c| &c.redispatches)
    }
    pub fn bytes_in(&self) -> u64 {
        self.counts.sum(|c| &c.bytes_in)
    }
    pub fn bytes_out(&self) -> u64 {
        self.counts.sum(|c| &c.bytes_out)
    }
    /// `clear counters all`.
    pub fn clear_counts(&self) {
        for c in self.counts.each() {
            for a in [&c.total_conns, &c.conn_errors, &c.retries, &c.redispatches, &c.bytes_in, &c.bytes_out] {
                a.store(0, Ordering::Relaxed);
            }
        }
    }

    pub fn observe_connect(&self, ok: bool) {
        match (self.observe, ok) {
            (Observe::None, _) | (Observe::Layer7, true) => {}
            (_, false) => {
                self.observed_errors.fetch_add(1, Ordering::Relaxed);
            }
            (Observe::Layer4, true) => self.observed_errors.store(0, Ordering::Relaxed),
        }
    }

    /// The data plane reports a response (`None`: invalid or missing) from this server
    /// (`observe layer7`).
    pub fn observe_response(&self, status: Option<u16>) {
        if self.observe != Observe::Layer7 {
            return;
        }
        match status {
            Some(s) if !(500..600).contains(&s) || s == 501 || s == 505 => self.observed_errors.store(0, Ordering::Relaxed),
            _ => {
                self.observed_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The administrative state: maintenance when set so, or while the server's name does not
    /// resolve ([`Self::in_resolution_maint`]).
    pub fn admin(&self) -> AdminState {
        match self.admin.load(Ordering::Relaxed) {
            0 => AdminState::Ready,
            1 => AdminState::Drain,
            _ => AdminState::Maint,
        }
    }
    /// Sets the state chosen by the configuration, the stats socket or an agent; a resolution
    /// maintenance stays until the name resolves.
    pub fn set_admin(&self, s: AdminState) {
        let _ = self.admin.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some((v & RESOLUTION_MAINT) | s as u8));
    }
    /// The state set by [`Self::set_admin`], without the resolution maintenance.
    pub fn admin_set(&self) -> AdminState {
        match self.admin.load(Ordering::Relaxed) & !RESOLUTION_MAINT {
            0 => AdminState::Ready,
            1 => AdminState::Drain,
            _ => AdminState::Maint,
        }
    }
    /// In maintenance because the server's name has no address (HAProxy's `RMAINT`: `init-addr
    /// none` left it without one, or the resolvers found none for longer than their `hold`).
    pub fn in_resolution_maint(&self) -> bool {
        self.admin.load(Ordering::Relaxed) & RESOLUTION_MAINT != 0
    }
    /// Enters or leaves the resolution maintenance; true when that changed anything.
    pub fn set_resolution_maint(&self, on: bool) -> bool {
        let old = if on { self.admin.fetch_or(RESOLUTION_MAINT, Ordering::Relaxed) } else { self.admin.fetch_and(!RESOLUTION_MAINT, Ordering::Relaxed) };
        (old & RESOLUTION_MAINT != 0) != on
    }
    /// Operationally up: the health check (or its absence) says so and no agent says down.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed) && !self.agent_down.load(Ordering::Relaxed)
    }
    /// Closes the sessions this server carries now (`shutdown-sessions`).
    pub fn shutdown_sessions(&self) {
        self.kill_epoch.fetch_add(1, Ordering::SeqCst);
        self.kill.notify_waiters();
    }
    /// Resolves once [`Self::shutdown_sessions`] ran after `epoch` was read.
    pub async fn killed_since(&self, epoch: u64) {
        loop {
            let n = self.kill.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.kill_epoch.load(Ordering::SeqCst) != epoch {
                return;
            }
            n.await;
        }
    }
    pub fn set_agent_down(&self, down: bool) {
        self.agent_down.store(down, Ordering::Relaxed);
    }
    pub fn is_agent_down(&self) -> bool {
        self.agent_down.load(Ordering::Relaxed)
    }
    /// The health verdict alone (ignoring the agent), as the check engine or the stats socket
    /// last set it.
    pub fn health_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }
    pub fn is_nolb(&self) -> bool {
        self.nolb.load(Ordering::Relaxed)
    }
    pub fn set_nolb(&self, nolb: bool) {
        self.nolb.store(nolb, Ordering::Relaxed);
    }
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }
    /// May take a stream a rule names it for (`use-server`, `persist rdp-cookie`): up and not in
    /// maintenance, or, with `option persist` (`force`), anything not deleted.
    pub fn takes_named(&self, force: bool) -> bool {
        !self.is_deleted() && (force || (self.is_up() && self.admin() != AdminState::Maint))
    }
    /// Eligible for load balancing: ready, up (and not NOLB), and a non-zero weight.
    pub fn usable(&self) -> bool {
        self.admin() == AdminState::Ready && self.is_up() && !self.is_nolb() && self.weight() > 0
    }
    /// True when a new connection fits under `maxconn`.
    pub fn has_slot(&self) -> bool {
        self.has_slot_under(self.maxconn.load(Ordering::Relaxed))
    }
    /// True when a new connection fits under `max` (0 is unlimited).
    #[inline]
    pub fn has_slot_under(&self, max: u32) -> bool {
        max == 0 || self.cur_conns.load(Ordering::Relaxed) < max
    }
    /// Reserves a connection slot; false when the server is full. Pair with [`release`](Self::release).
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_under(self.maxconn.load(Ordering::Relaxed))
    }
    /// Reserves a connection slot under the limit `max` (0 is unlimited).
    #[inline]
    pub fn try_acquire_under(&self, max: u32) -> bool {
        if max == 0 {
            self.cur_conns.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        self.cur_conns.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| (c < max).then_some(c + 1)).is_ok()
    }
    /// SeqCst: [`SlotFreed`](super::queue::SlotFreed) relies on it to skip waking nobody.
    pub fn release(&self) {
        self.cur_conns.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a pick is keyed on, for the algorithms that hash.
#[derive(Clone, Copy, Debug, Default)]
pub struct PickKey {
    /// The client's address (`balance source`).
    pub src: Option<IpAddr>,
    /// A hash computed by the caller from a sample (`balance uri`, `hdr`, `hash <expr>`); `None`
    /// when the sample is absent, in which case hashing algorithms fall back to round robin.
    pub hash: Option<u64>,
}

/// The outcome of a pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// This server, with a slot already reserved: call [`BackendState::release`] when done.
    Server(usize),
    /// Usable servers exist but all are at `maxconn`: queue, or give up.
    Full,
    /// No usable server (all down, in maintenance, draining, or weight 0).
    NoServer,
}

/// An algorithm picks one of the servers `eligible` accepts; it passes the server's index and the
/// server it looked up in that slot, so that the check does not look it up again. It does not
/// reserve the slot; the backend does, and asks again (with that server excluded) if the
/// reservation loses a race.
pub trait Algorithm: Send + Sync + std::fmt::Debug {
    fn pick(&self, servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool, key: &PickKey) -> Option<usize>;
    /// Called when weights or states changed, for algorithms that precompute a schedule or a ring.
    fn rebuild(&self, _servers: &ServerList) {}
}

/// Options of the backend that shape selection.
#[derive(Clone, Copy, Debug, Default)]
pub struct BalanceOpts {
    /// `option allbackups`: every backup server shares the load, not only the first.
    pub allbackups: bool,
}

/// A backend's servers and its algorithm, shared by every worker.
#[derive(Debug)]
pub struct BackendState {
    pub name: String,
    /// Append-only, indices stable for the backend's life (see [`ServerList`]).
    pub servers: ServerList,
    pub algo: Box<dyn Algorithm>,
    pub opts: BalanceOpts,
    /// Woken whenever a server slot is released, for streams waiting in the backend queue.
    pub slot_freed: SlotFreed,
    /// Streams waiting in the backend queue now.
    pub queued: AtomicU32,
    /// Connections sent to the backend, and those that found no server at all, per worker.
    pub counts: Sharded<BackendCounts>,
    /// Bumped when a server moves or is deleted: the workers' idle pools then close connections
    /// to the old address.
    pub conn_changes: AtomicU64,
    /// HTTP transactions of this backend, for the `sluiced_backend_*_seconds` histograms.
    pub latency: super::latency::Latency,
    /// `fullconn` (or its default): the load at which servers with `minconn` reach `maxconn`.
    pub fullconn: AtomicU32,
}

impl BackendState {
    pub fn new(name: &str, servers: Vec<ServerState>, algo: Box<dyn Algorithm>, opts: BalanceOpts) -> BackendState {
        let servers: ServerList = servers.into_iter().map(Arc::new).collect();
        algo.rebuild(&servers);
        BackendState {
            name: name.to_owned(),
            servers,
            algo,
            opts,
            slot_freed: SlotFreed::new(),
            queued: AtomicU32::new(0),
            counts: Sharded::default(),
            conn_changes: AtomicU64::new(0),
            latency: super::latency::Latency::default(),
            fullconn: AtomicU32::new(0),
        }
    }

    /// The connection limit of server `s` now (0 is unlimited): its `maxconn`, or, with
    /// `minconn`, HAProxy's dynamic limit, which grows from `minconn` to `maxconn` as the backend's
    /// load (its connections and queued streams) goes from 0 to `fullconn`.
    #[inline]
    pub fn limit_of(&self, s: &ServerState) -> u32 {
        let max = s.maxconn.load(Ordering::Relaxed);
        let min = s.minconn.load(Ordering::Relaxed);
        if min == 0 || max == 0 { max } else { self.dynamic_limit(min, max) }
    }

    #[inline(never)]
    fn dynamic_limit(&self, min: u32, max: u32) -> u32 {
        let full = u64::from(self.fullconn.load(Ordering::Relaxed));
        let load: u64 = self.servers.slots().map(|s| u64::from(s.cur_conns.load(Ordering::Relaxed)) + u64::from(s.queued.load(Ordering::Relaxed))).sum::<u64>()
            + u64::from(self.queued.load(Ordering::Relaxed));
        let limit = if load >= full {
            max
        } else if min >= max {
            min
        } else {
            min.max(u32::try_from(load * u64::from(max) / full).unwrap_or(max))
        };
        limit.max(1)
    }

    /// Usable servers now (`nbsrv`): active ones, or backups when no active one is usable.
    pub fn total_conns(&self) -> u64 {
        self.counts.sum(|c| &c.total_conns)
    }
    pub fn no_server(&self) -> u64 {
        self.counts.sum(|c| &c.no_server)
    }
    /// `clear counters all`.
    pub fn clear_counts(&self) {
        for c in self.counts.each() {
            c.total_conns.store(0, Ordering::Relaxed);
            c.no_server.store(0, Ordering::Relaxed);
        }
    }

    pub fn usable_count(&self) -> usize {
        let active = self.servers.iter().filter(|s| !s.backup && s.usable()).count();
        if active > 0 { active } else { self.servers.iter().filter(|s| s.backup && s.usable()).count() }
    }

    /// Picks a server and reserves a slot on it. `exclude` lists servers not to pick again (the
    /// ones a retry is redispatching away from). Active servers are used while any is usable;
    /// otherwise the first usable backup, or all of them with `option allbackups`.
    pub fn pick(&self, key: &PickKey, exclude: &[usize]) -> Pick {
        // A backend of one usable active server: every algorithm picks it, so none is asked (346
        // of the pick's 419 instructions per request saved on this common shape). Anything else,
        // or a full server, takes the general path below.
        if self.servers.len() == 1 && exclude.is_empty() {
            let s = &self.servers[0];
            if !s.backup && s.usable() && self.acquire(s) {
                return Pick::Server(0);
            }
        }
        // One pass, which stops at the first usable active server (the common case: the first).
        let mut any_active = false;
        let mut first_backup = None;
        for (i, s) in self.servers.slots().enumerate() {
            if !s.usable() {
                continue;
            }
            if !s.backup {
                any_active = true;
                break;
            }
            first_backup.get_or_insert(i);
        }
        // The server found above is in the set: none found, none in it.
        if !any_active && first_backup.is_none() {
            return Pick::NoServer;
        }
        let in_set =
            |i: usize, s: &ServerState| s.usable() && if any_active { !s.backup } else { s.backup && (self.opts.allbackups || Some(i) == first_backup) };
        // Servers whose last slot another worker took between the algorithm's check and ours.
        let mut lost: Vec<usize> = Vec::new();
        loop {
            let eligible = |i: usize, s: &ServerState| in_set(i, s) && s.has_slot_under(self.limit_of(s)) && !exclude.contains(&i) && !lost.contains(&i);
            let Some(i) = self.algo.pick(&self.servers, &eligible, key) else {
                // Everything usable is full, or only excluded servers are left.
                let others_usable = (0..self.servers.len()).any(|i| !exclude.contains(&i) && in_set(i, &self.servers[i]));
                return if others_usable { Pick::Full } else { Pick::NoServer };
            };
            if self.acquire(&self.servers[i]) {
                return Pick::Server(i);
            }
            lost.push(i);
        }
    }

    /// Reserves a slot on server `i` without asking the algorithm, for a stream that must go to
    /// that server (cookie persistence): `maxconn` still holds. False when the server is full.
    /// Pair with [`release`](Self::release).
    pub fn take(&self, i: usize) -> bool {
        self.servers.get(i).is_some_and(|s| self.acquire(s))
    }

    /// Reserves a slot on server `s` of this backend and counts the connection on both; false
    /// when the server is full.
    #[inline]
    fn acquire(&self, s: &ServerState) -> bool {
        if !s.try_acquire_under(self.limit_of(s)) {
            return false;
        }
        s.counts.mine().total_conns.fetch_add(1, Ordering::Relaxed);
        self.counts.mine().total_conns.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Releases the slot of server `i` and wakes one stream waiting in the queue, if one waits.
    pub fn release(&self, i: usize) {
        self.servers[i].release();
        self.slot_freed.notify_one();
    }

    /// A server moved (`set server addr`) or was deleted: idle pooled connections to it go.
    pub fn conn_changed(&self) {
        self.conn_changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a server at run time; returns its index. It is picked once usable (after
    /// `enable server` for a server added in maintenance).
    pub fn add_server(&self, s: Arc<ServerState>) -> usize {
        let i = self.servers.push(s);
        self.state_changed();
        i
    }

    /// Recomputes what the algorithm precomputed after a weight or state change.
    pub fn state_changed(&self) {
        self.algo.rebuild(&self.servers);
        self.slot_freed.notify_waiters();
    }
}
