//! Servers' host names resolved at run time (`server ... resolvers <section>`), as HAProxy's
//! resolvers do: one thread of its own (`sluiced-dns`, a current-thread tokio runtime) runs one
//! task per name to follow. A task asks every name server of its section for the name every
//! `timeout resolve`, and moves the servers that follow the name to the addresses of the answer
//! ([`ServerState::set_addr`], read by the workers per connection).
//!
//! - **Asking:** the preferred family first (`resolve-prefer`, IPv6 by default); the other one
//!   when the name has no address of the first. A query goes to all the section's name servers;
//!   the first valid answer is used, an error only once every name server has given one or
//!   `resolve_retries` queries `timeout retry` apart went unanswered.
//! - **Spreading:** servers of one backend that follow one name (a `server-template`) each keep
//!   their address while the answers carry it, and take a free one otherwise, so that no two share
//!   an address (`resolve-opts prevent-dup-ip`, HAProxy's default). A server left without an
//!   address goes into maintenance (`MAINT (resolution)`) until an answer has one for it.
//! - **Failing:** while the name does not resolve (NXDOMAIN, refused, no answer...), a server keeps
//!   its last address for the section's `hold <status>`, then goes into maintenance.
//!
//! The DNS messages are read and written with the `simple-dns` crate; `show resolvers` prints
//! each name server's counters.

pub mod config;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, Question, RCODE, TYPE};
use tokio::net::UdpSocket;

use crate::balance::{ServerAddr, ServerState};
use crate::config::addr::{AddrKind, Host, PortSpec};
use crate::config::model::Config;
use crate::log::config::Level;
use crate::route::RouteTable;
use config::{Hold, Resolvers};

/// One name server's counters, named as `show resolvers` prints them.
#[derive(Debug, Default)]
pub struct NsCounters {
    pub sent: AtomicU64,
    pub snd_error: AtomicU64,
    pub valid: AtomicU64,
    pub update: AtomicU64,
    pub cname: AtomicU64,
    pub cname_error: AtomicU64,
    pub any_err: AtomicU64,
    pub nx: AtomicU64,
    pub timeout: AtomicU64,
    pub refused: AtomicU64,
    pub other: AtomicU64,
    pub invalid: AtomicU64,
    pub too_big: AtomicU64,
    pub truncated: AtomicU64,
    pub outdated: AtomicU64,
}

impl NsCounters {
    fn rows(&self) -> [(&'static str, u64); 15] {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("sent", l(&self.sent)),
            ("snd_error", l(&self.snd_error)),
            ("valid", l(&self.valid)),
            ("update", l(&self.update)),
            ("cname", l(&self.cname)),
            ("cname_error", l(&self.cname_error)),
            ("any_err", l(&self.any_err)),
            ("nx", l(&self.nx)),
            ("timeout", l(&self.timeout)),
            ("refused", l(&self.refused)),
            ("other", l(&self.other)),
            ("invalid", l(&self.invalid)),
            ("too_big", l(&self.too_big)),
            ("truncated", l(&self.truncated)),
            ("outdated", l(&self.outdated)),
        ]
    }
}

/// A name server of a running section.
#[derive(Debug)]
pub struct Ns {
    pub id: String,
    pub addr: SocketAddr,
    pub counters: NsCounters,
}

/// A section as it runs: its settings and its name servers' counters.
#[derive(Debug)]
pub struct Section {
    pub cfg: Resolvers,
    pub nameservers: Vec<Ns>,
}

/// Every section of the running configuration, for `show resolvers` (empty before [`spawn`]).
static SECTIONS: std::sync::OnceLock<Vec<Arc<Section>>> = std::sync::OnceLock::new();

/// `show resolvers [<section>]`, in HAProxy's layout.
pub fn show(section: Option<&str>) -> Result<String, String> {
    let all = SECTIONS.get().map(Vec::as_slice).unwrap_or_default();
    if let Some(name) = section
        && !all.iter().any(|s| s.cfg.name == name)
    {
        return Err("Can't find that resolvers section\n".into());
    }
    let mut out = String::new();
    for s in all.iter().filter(|s| section.is_none_or(|n| n == s.cfg.name)) {
        let _ = writeln!(out, "Resolvers section {}", s.cfg.name);
        for ns in &s.nameservers {
            let _ = writeln!(out, " nameserver {}:", ns.id);
            for (k, v) in ns.counters.rows() {
                let _ = writeln!(out, "  {:<13}{v}", format!("{k}:"));
            }
        }
    }
    Ok(out)
}

/// How a server's port follows its address (the port part of its `server` line).
#[derive(Clone, Copy, Debug)]
enum PortOf {
    Fixed(u16),
    SameAsClient,
    Offset(i32),
}

impl PortOf {
    fn addr(self, ip: IpAddr) -> ServerAddr {
        match self {
            PortOf::Fixed(p) => ServerAddr::Inet(SocketAddr::new(ip, p)),
            PortOf::SameAsClient => ServerAddr::InetSamePort(ip),
            PortOf::Offset(o) => ServerAddr::InetOffset(ip, o),
        }
    }
}

/// A server that follows a name.
struct Follower {
    backend: usize,
    server: Arc<ServerState>,
    port: PortOf,
    nets: Vec<(IpAddr, u8)>,
    allow_dup: bool,
    /// When an answer last gave the server an address (or the daemon started with one).
    last_valid: Instant,
}

/// One name to follow, with the servers that follow it.
struct Resolution {
    section: Arc<Section>,
    fqdn: String,
    prefer_v6: bool,
    followers: Vec<Follower>,
    /// Addresses seen in answers and when, kept for `hold obsolete`.
    seen: Vec<(IpAddr, Instant)>,
}

/// How one resolution ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The addresses of the answer, in its order, with the name server that gave it.
    Valid(Vec<IpAddr>, String),
    Nx,
    Refused,
    Timeout,
    /// No address of either family, a server failure or an answer that could not be read.
    Other,
}

impl Outcome {
    fn status(&self) -> &'static str {
        match self {
            Outcome::Valid(..) => "valid",
            Outcome::Nx => "NX",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::Other => "other",
        }
    }
    fn hold(&self, h: &Hold) -> Duration {
        match self {
            Outcome::Valid(..) => h.valid,
            Outcome::Nx => h.nx,
            Outcome::Refused => h.refused,
            Outcome::Timeout => h.timeout,
            Outcome::Other => h.other,
        }
    }
}

/// The configuration's resolvers sections, with fresh counters for their nameservers.
fn sections(cfg: &Config) -> Vec<Arc<Section>> {
    cfg.resolvers
        .iter()
        .map(|r| {
            let nameservers = r.nameservers.iter().map(|n| Ns { id: n.id.clone(), addr: n.addr, counters: NsCounters::default() }).collect();
            Arc::new(Section { cfg: r.clone(), nameservers })
        })
        .collect()
}

/// Starts the `sluiced-dns` thread when any server names a resolvers section.
pub fn spawn(cfg: &Config, rt: &Arc<RouteTable>) -> std::io::Result<()> {
    let sections = sections(cfg);
    let _ = SECTIONS.set(sections.clone());
    let resolutions = resolutions(cfg, rt, &sections);
    if resolutions.is_empty() {
        return Ok(());
    }
    let rt = rt.clone();
    std::thread::Builder::new().name("sluiced-dns".into()).spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build_local(tokio::runtime::LocalOptions::default()) else {
            eprintln!("[ALERT]    ({}) : cannot start the resolvers' runtime", std::process::id());
            return;
        };
        runtime.block_on(async move {
            let tasks: Vec<_> = resolutions.into_iter().map(|r| tokio::task::spawn_local(follow(rt.clone(), r))).collect();
            for t in tasks {
                let _ = t.await;
            }
        });
    })?;
    Ok(())
}

/// Groups the servers that follow a name by section, name and preferred family.
fn resolutions(cfg: &Config, rt: &RouteTable, sections: &[Arc<Section>]) -> Vec<Resolution> {
    let mut out: Vec<Resolution> = Vec::new();
    let mut index: HashMap<(usize, String, bool), usize> = HashMap::new();
    let now = Instant::now();
    for p in cfg.proxies.iter().filter(|p| p.kind.has_backend()) {
        let Some(bi) = rt.backends.iter().position(|b| b.name == p.name) else { continue };
        for s in &p.servers {
            let Some(section) = s.opts.resolvers.as_deref() else { continue };
            let AddrKind::Inet { host: Host::Name(name), port, .. } = &s.addr.kind else { continue };
            let Some(si) = sections.iter().position(|x| x.cfg.name == section) else { continue };
            let Some(server) = rt.backends[bi].state.servers.iter().find(|x| x.name == s.name).cloned() else { continue };
            let port = match port {
                PortSpec::Fixed(p) => PortOf::Fixed(*p),
                PortSpec::Offset(o) => PortOf::Offset(*o),
                _ => PortOf::SameAsClient,
            };
            let prefer_v6 = s.opts.resolve_prefer.as_deref() != Some("ipv4");
            let fqdn = name.trim_end_matches('.').to_ascii_lowercase();
            let key = (si, fqdn.clone(), prefer_v6);
            let i = *index.entry(key).or_insert_with(|| {
                out.push(Resolution { section: sections[si].clone(), fqdn, prefer_v6, followers: Vec::new(), seen: Vec::new() });
                out.len() - 1
            });
            out[i].followers.push(Follower {
                backend: bi,
                server,
                port,
                nets: s.opts.resolve_net.as_deref().and_then(|n| config::parse_nets(n).ok()).unwrap_or_default(),
                allow_dup: s.opts.resolve_allow_dup.unwrap_or(false),
                last_valid: now,
            });
        }
    }
    out
}

/// Follows one name for as long as the process runs.
async fn follow(rt: Arc<RouteTable>, mut r: Resolution) {
    let mut sockets = Sockets::default();
    loop {
        let outcome = resolve(&r.section, &mut sockets, &r.fqdn, r.prefer_v6).await;
        apply(&rt, &mut r, &outcome, Instant::now());
        tokio::time::sleep(r.section.cfg.timeout_resolve).await;
    }
}

/// One UDP socket per address family, opened when first needed.
#[derive(Default)]
struct Sockets {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Sockets {
    async fn get(&mut self, v6: bool) -> std::io::Result<&UdpSocket> {
        let slot = if v6 { &mut self.v6 } else { &mut self.v4 };
        if slot.is_none() {
            let any: SocketAddr = if v6 { "[::]:0".parse().unwrap_or(SocketAddr::from(([0; 16], 0))) } else { SocketAddr::from(([0, 0, 0, 0], 0)) };
            *slot = Some(UdpSocket::bind(any).await?);
        }
        slot.as_ref().ok_or_else(|| std::io::Error::other("no socket"))
    }
}

/// A query ID that an off-path sender cannot guess.
fn query_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_ne_bytes(b)
}

/// The bytes of a query for `fqdn`, with EDNS0 announcing `payload` when it is above 512.
pub fn build_query(id: u16, fqdn: &str, v6: bool, payload: u16) -> Option<Vec<u8>> {
    let mut p = Packet::new_query(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    let qtype = if v6 { TYPE::AAAA } else { TYPE::A };
    p.questions.push(Question::new(Name::new(fqdn).ok()?, qtype.into(), CLASS::IN.into(), false));
    if payload > 512 {
        *p.opt_mut() = Some(simple_dns::rdata::OPT { opt_codes: Vec::new(), udp_packet_size: payload, version: 0 });
    }
    p.build_bytes_vec().ok()
}

/// What one name server's answer says.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Addresses of the family asked for, and whether a CNAME led to them.
    Addrs(Vec<IpAddr>, bool),
    /// No address of the family asked for (NOERROR with an empty answer).
    Empty,
    Nx,
    Refused,
    /// A server failure or another error code.
    Failed,
    Truncated,
    /// Not an answer to this query (another ID or question): late, from an earlier query.
    Outdated,
    Invalid,
}

/// Reads an answer to the query `id` for `fqdn`: the records of the family asked for whose name
/// is `fqdn` or one its CNAMEs lead to.
pub fn read_answer(buf: &[u8], id: u16, fqdn: &str, v6: bool) -> Answer {
    let Ok(p) = Packet::parse(buf) else { return Answer::Invalid };
    if !p.has_flags(PacketFlag::RESPONSE) {
        return Answer::Invalid;
    }
    let qtype = if v6 { TYPE::AAAA } else { TYPE::A };
    let same_question =
        p.questions.len() == 1 && p.questions[0].qname.to_string().trim_end_matches('.').eq_ignore_ascii_case(fqdn) && p.questions[0].qtype == qtype.into();
    if p.id() != id || !same_question {
        return Answer::Outdated;
    }
    if p.has_flags(PacketFlag::TRUNCATION) {
        return Answer::Truncated;
    }
    match p.rcode() {
        RCODE::NoError => {}
        RCODE::NameError => return Answer::Nx,
        RCODE::Refused => return Answer::Refused,
        _ => return Answer::Failed,
    }
    let mut names = vec![fqdn.to_ascii_lowercase()];
    let mut cname = false;
    // CNAMEs come before what they lead to, but follow them whatever the order (a few rounds).
    for _ in 0..8 {
        let mut grew = false;
        for rr in &p.answers {
            if let RData::CNAME(c) = &rr.rdata {
                let owner = rr.name.to_string().trim_end_matches('.').to_ascii_lowercase();
                let target = c.0.to_string().trim_end_matches('.').to_ascii_lowercase();
                if names.contains(&owner) && !names.contains(&target) {
                    names.push(target);
                    cname = true;
                    grew = true;
                }
            }
        }
        if !grew {
            break;
        }
    }
    let mut addrs = Vec::new();
    for rr in &p.answers {
        let owner = rr.name.to_string().trim_end_matches('.').to_ascii_lowercase();
        if !names.contains(&owner) {
            continue;
        }
        let ip = match (&rr.rdata, v6) {
            (RData::A(a), false) => IpAddr::from(std::net::Ipv4Addr::from(a.address)),
            (RData::AAAA(a), true) => IpAddr::from(std::net::Ipv6Addr::from(a.address)),
            _ => continue,
        };
        if !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }
    if addrs.is_empty() { Answer::Empty } else { Answer::Addrs(addrs, cname) }
}

/// Asks the section's name servers for `fqdn`: the preferred family, then the other one if the
/// name has no address of the first.
async fn resolve(s: &Section, sockets: &mut Sockets, fqdn: &str, prefer_v6: bool) -> Outcome {
    let first = ask(s, sockets, fqdn, prefer_v6).await;
    match first {
        Outcome::Nx | Outcome::Other => match ask(s, sockets, fqdn, !prefer_v6).await {
            Outcome::Valid(a, ns) => Outcome::Valid(a, ns),
            // The first family's status stands when the second has nothing either.
            Outcome::Timeout => Outcome::Timeout,
            _ => first,
        },
        other => other,
    }
}

/// One family: up to `resolve_retries` rounds of a query to every name server.
async fn ask(s: &Section, sockets: &mut Sockets, fqdn: &str, v6: bool) -> Outcome {
    let c = &s.cfg;
    let mut buf = vec![0u8; usize::from(c.accepted_payload_size) + 1];
    for _ in 0..c.resolve_retries {
        let id = query_id();
        let Some(q) = build_query(id, fqdn, v6, c.accepted_payload_size) else { return Outcome::Other };
        let mut waiting: Vec<bool> = vec![false; s.nameservers.len()];
        for (i, ns) in s.nameservers.iter().enumerate() {
            let sent = match sockets.get(ns.addr.is_ipv6()).await {
                Ok(sock) => sock.send_to(&q, ns.addr).await.is_ok(),
                Err(_) => false,
            };
            let counter = if sent { &ns.counters.sent } else { &ns.counters.snd_error };
            counter.fetch_add(1, Ordering::Relaxed);
            waiting[i] = sent;
        }
        let deadline = tokio::time::Instant::now() + c.timeout_retry;
        // The statuses of the name servers that answered with an error.
        let mut errors: Vec<Outcome> = Vec::new();
        while waiting.iter().any(|w| *w) {
            let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, recv_any(sockets, &mut buf)).await else { break };
            let Some(i) = s.nameservers.iter().position(|ns| ns.addr == from) else { continue };
            let k = &s.nameservers[i].counters;
            if n > usize::from(c.accepted_payload_size) {
                k.too_big.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let answer = read_answer(&buf[..n], id, fqdn, v6);
            let error = match answer {
                Answer::Addrs(addrs, cname) => {
                    k.valid.fetch_add(1, Ordering::Relaxed);
                    if cname {
                        k.cname.fetch_add(1, Ordering::Relaxed);
                    }
                    return Outcome::Valid(addrs, s.nameservers[i].id.clone());
                }
                Answer::Outdated => {
                    k.outdated.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Answer::Empty => {
                    k.any_err.fetch_add(1, Ordering::Relaxed);
                    Outcome::Other
                }
                Answer::Nx => {
                    k.nx.fetch_add(1, Ordering::Relaxed);
                    Outcome::Nx
                }
                Answer::Refused => {
                    k.refused.fetch_add(1, Ordering::Relaxed);
                    Outcome::Refused
                }
                Answer::Failed => {
                    k.other.fetch_add(1, Ordering::Relaxed);
                    Outcome::Other
                }
                Answer::Truncated => {
                    k.truncated.fetch_add(1, Ordering::Relaxed);
                    Outcome::Other
                }
                Answer::Invalid => {
                    k.invalid.fetch_add(1, Ordering::Relaxed);
                    Outcome::Other
                }
            };
            waiting[i] = false;
            errors.push(error);
        }
        for (i, w) in waiting.iter().enumerate() {
            if *w {
                s.nameservers[i].counters.timeout.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Every name server answered, and none with an address: that is the outcome. NX is the
        // answer that says the most.
        if !errors.is_empty() && !waiting.iter().any(|w| *w) {
            return [Outcome::Nx, Outcome::Refused].into_iter().find(|o| errors.contains(o)).unwrap_or(Outcome::Other);
        }
    }
    Outcome::Timeout
}

/// The next datagram on either socket.
async fn recv_any(sockets: &Sockets, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    async fn ready(s: &Option<UdpSocket>) -> std::io::Result<()> {
        match s {
            Some(s) => s.readable().await,
            None => std::future::pending().await,
        }
    }
    loop {
        let sock = tokio::select! {
            r = ready(&sockets.v4) => { r?; &sockets.v4 }
            r = ready(&sockets.v6) => { r?; &sockets.v6 }
        };
        let Some(sock) = sock else { continue };
        match sock.try_recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Moves the followers of `r` after an outcome, logging what changes as HAProxy does.
fn apply(rt: &RouteTable, r: &mut Resolution, outcome: &Outcome, now: Instant) {
    let hold = &r.section.cfg.hold;
    let Outcome::Valid(addrs, ns) = outcome else {
        let wait = outcome.hold(hold);
        for f in &r.followers {
            if now.duration_since(f.last_valid) < wait || f.server.in_resolution_maint() {
                continue;
            }
            let why = format!("DNS {} status", outcome.status());
            enter_maint(rt, f, &why);
        }
        return;
    };
    // `hold obsolete`: an address that left the answers is still offered for that long.
    for ip in addrs {
        match r.seen.iter_mut().find(|(a, _)| a == ip) {
            Some(e) => e.1 = now,
            None => r.seen.push((*ip, now)),
        }
    }
    r.seen.retain(|(a, t)| addrs.contains(a) || now.duration_since(*t) < hold.obsolete);
    let mut offered: Vec<IpAddr> = addrs.clone();
    offered.extend(r.seen.iter().map(|(a, _)| *a).filter(|a| !addrs.contains(a)));
    let by = format!("{}/{}", r.section.cfg.name, ns);
    let mut order: Vec<usize> = (0..r.followers.len()).collect();
    order.sort_by_key(|&i| (r.followers[i].backend, r.followers[i].server.id));
    // Taken addresses, by backend: first every server that still has its address keeps it.
    let mut taken: Vec<(usize, IpAddr)> = Vec::new();
    let mut keeps = vec![false; r.followers.len()];
    for &i in &order {
        let f = &r.followers[i];
        let Some(cur) = current_ip(&f.server) else { continue };
        if offered.contains(&cur) && (f.allow_dup || !taken.contains(&(f.backend, cur))) {
            taken.push((f.backend, cur));
            keeps[i] = true;
        }
    }
    let mut updated = false;
    for &i in &order {
        let f = &mut r.followers[i];
        let ip = if keeps[i] {
            current_ip(&f.server)
        } else {
            // A free address: in `resolve-net` first, then of the preferred family, in the
            // answer's order.
            let mut candidates: Vec<IpAddr> = offered.iter().copied().filter(|a| f.allow_dup || !taken.contains(&(f.backend, *a))).collect();
            candidates.sort_by_key(|a| (!f.nets.iter().any(|n| config::in_net(*a, *n)), a.is_ipv6() != r.prefer_v6));
            candidates.first().copied()
        };
        let Some(ip) = ip else {
            enter_maint(rt, f, "No IP for server");
            continue;
        };
        taken.push((f.backend, ip));
        f.last_valid = now;
        let be = &rt.backends[f.backend];
        let old = current_ip(&f.server);
        if old != Some(ip) {
            f.server.set_addr(f.port.addr(ip));
            be.state.conn_changed();
            updated = true;
            let from = old.map_or_else(|| "(none)".to_owned(), |o| o.to_string());
            crate::log::backend_event(rt, f.backend, Level::Notice, &format!("{}/{} changed its IP from {from} to {ip} by {by}.", be.name, f.server.name));
        }
        if f.server.set_resolution_maint(false) {
            be.state.state_changed();
            crate::log::backend_event(
                rt,
                f.backend,
                Level::Notice,
                &format!("Server {}/{} ('{}') is UP/READY (resolves again).", be.name, f.server.name, r.fqdn),
            );
        }
    }
    if updated && let Some(n) = r.section.nameservers.iter().find(|n| n.id == *ns) {
        n.counters.update.fetch_add(1, Ordering::Relaxed);
    }
}

fn current_ip(s: &ServerState) -> Option<IpAddr> {
    match &**s.addr() {
        ServerAddr::Inet(a) => Some(a.ip()),
        ServerAddr::InetSamePort(ip) | ServerAddr::InetOffset(ip, _) => Some(*ip),
        ServerAddr::Unix(_) | ServerAddr::Unresolved => None,
    }
}

fn enter_maint(rt: &RouteTable, f: &Follower, why: &str) {
    let be = &rt.backends[f.backend];
    if !f.server.set_resolution_maint(true) {
        return;
    }
    be.state.state_changed();
    let (mut active, mut backup) = (0, 0);
    for s in be.state.servers.iter().filter(|s| s.usable()) {
        if s.backup { backup += 1 } else { active += 1 }
    }
    let msg = format!(
        "Server {}/{} is going DOWN for maintenance ({why}). {active} active and {backup} backup servers left. {} sessions active, 0 requeued, 0 remaining in queue.",
        be.name,
        f.server.name,
        f.server.cur_conns.load(Ordering::Relaxed)
    );
    crate::log::backend_event(rt, f.backend, Level::Alert, &msg);
    if active + backup == 0 {
        crate::log::backend_event(rt, f.backend, Level::Emerg, &format!("backend {} has no server available!", be.name));
    }
}

#[cfg(test)]
mod tests;
