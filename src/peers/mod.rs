//! Stick-table replication with the nodes of a `peers` section, over HAProxy's peers protocol
//! (version 2.1, [`proto`]), so that HAProxy and sluiced nodes can share tables.
//!
//! One thread of its own (`sluiced-peers`, a current-thread tokio runtime) runs every section:
//! - **A listener** on this node's address (bound before the workers start, with `SO_REUSEPORT`
//!   so that the next process of a reload can bind beside this one).
//! - **A connector per other node**: it connects when no session with that node is up, again
//!   every 5 s (HAProxy's reconnect time) while it cannot. Two nodes may connect to each other at
//!   once: the listener then ends the older session and the connector waits a random 50 ms to
//!   2 s, as HAProxy does, so that the two settle on one session.
//! - **A collector** that takes the tables' queued local changes every 20 ms (a key changed by
//!   every request goes out once per round, with its latest values), gives each an update id and
//!   sends one batch (a switch message and the updates) to every session.
//! - **A session per connected node**: it defines the tables, sends the changes the node has not
//!   acknowledged (all of them on a first connection), asks the node for a full resync while this
//!   process has not learned the tables yet, then exchanges updates, acknowledgements and
//!   heartbeats (every 3 s of silence; a node silent for 5 s is dropped and reconnected).
//!
//! Learned updates are not sent on, as in HAProxy (every node is connected to every other). On a
//! soft stop (a reload), the old process closes its listener and connects to its own address,
//! which is the new process's now, teaches it every entry and waits for its confirmation before
//! it exits: a section with only this node keeps its tables across reloads.

pub mod config;
pub mod proto;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

use self::config::SectionPlan;
use self::proto::{Define, TypeParam, Update, Value};
use crate::stick::table::{Dt, Entry, Table, Wire};

/// HAProxy's times: reconnection, heartbeat, and how long a silent session is kept.
const RECONNECT: Duration = Duration::from_secs(5);
const HEARTBEAT: Duration = Duration::from_secs(3);
const SILENCE: Duration = Duration::from_secs(5);
/// How long a new process waits to be taught before it takes its tables as learned.
const RESYNC_WAIT: Duration = Duration::from_secs(5);
/// How often the collector takes the tables' changes.
const COLLECT_EVERY: Duration = Duration::from_millis(20);

/// A table replicated with a section.
struct Shared {
    table: Arc<Table>,
    /// This node's id for the table in the protocol (its place in the section, from 1).
    id: u64,
    def: Define,
}

/// A node of a section, as `show peers` reports it.
struct Peer {
    name: String,
    /// `None` for this node.
    addr: Option<SocketAddr>,
    local: bool,
    /// Bumped when a session with the node starts: an older session sees it and ends.
    generation: AtomicU64,
    st: Mutex<PeerState>,
}

#[derive(Debug, Default)]
struct PeerState {
    /// The last handshake status (200 established, 5xx refused); `None` before any.
    status: Option<u32>,
    last_hdshk: Option<Instant>,
    connected: bool,
    new_conn: u64,
    proto_err: u64,
    coll: u64,
    tx_hbt: u64,
    rx_hbt: u64,
    /// Per table: the last update id the node acknowledged, and the last one it sent.
    acked: Vec<u32>,
    last_get: Vec<u32>,
    /// Per table: the node's id for it, from its definition.
    remote_id: Vec<u64>,
    /// No connection attempt before this.
    reconnect_at: Option<Instant>,
}

/// A section as this process runs it.
struct Section {
    plan: SectionPlan,
    tables: Vec<Shared>,
    peers: Vec<Arc<Peer>>,
    /// Every batch of changes goes to every session.
    tx: broadcast::Sender<Arc<Vec<u8>>>,
    /// The tables are learned (from a peer's full resync, the old process, or after
    /// [`RESYNC_WAIT`]).
    synced: AtomicBool,
    /// A full resync was asked of a peer and is not answered yet.
    resync_asked: AtomicBool,
    started: Instant,
}

static SECTIONS: OnceLock<Vec<Arc<Section>>> = OnceLock::new();
/// Woken by the first local change of a replicated table after the collector took them: an idle
/// process does not wake up for its peers.
static CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Woken when the process is told to stop.
static STOP: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Tells the peers thread that the process stops: it hands its tables over (on a soft stop).
pub fn stop() {
    STOP.notify_one();
}

/// Tells the collector that a replicated table has changes (from any thread).
pub fn wake() {
    CHANGED.notify_one();
}
/// Set once the tables were handed to the next process on a soft stop (or there is nothing to
/// hand over).
static HANDED_OVER: AtomicBool = AtomicBool::new(true);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn define(id: u64, name: &str, t: &Table) -> Define {
    let (key_type, key_size) = t.wire_key();
    let mut data = 0u64;
    let mut params = Vec::new();
    for (dt, count, period) in t.wire_types() {
        let n = dt as u8;
        data |= 1 << n;
        if proto::is_array(n) || proto::is_rate(n) {
            params.push(TypeParam { dt: n, nbelem: u32::from(count), period });
        }
    }
    Define { id, name: name.to_owned(), key_type, key_size, data, expire: t.expire, params }
}

/// The update message of an entry with its current values.
fn update_msg(sh: &Shared, e: &Entry, id: u32, timed: bool, now: u64) -> Vec<u8> {
    let t = &sh.table;
    let values = t
        .wire_values(e, now)
        .into_iter()
        .map(|(dt, i, w)| {
            let v = match w {
                Wire::Int(n) => Value::Int(n),
                Wire::Freq { age, curr, prev } => Value::Freq { age, curr, prev },
                // The text is sent each time with cache id 1: no dictionary state to keep.
                Wire::Text(Some(s)) => Value::Dict(Some((1, Some(s)))),
                Wire::Text(None) => Value::Dict(None),
            };
            (dt as u8, i as u32, v)
        })
        .collect();
    let expire = if timed { t.expire_left(e, now).map(|l| l.min(u64::from(u32::MAX)) as u32) } else { None };
    Update { id: Some(id), expire, key: t.key_to_wire(&e.key), values }.encode(&sh.def)
}

/// Starts the `sluiced-peers` thread when a section of this node has replicated tables. The
/// listeners are bound here, so that a port in use stops the start-up.
pub fn spawn(plans: &[SectionPlan], tables: &crate::stick::table::Tables) -> std::io::Result<()> {
    let mut sections = Vec::new();
    let mut listeners = Vec::new();
    for plan in plans {
        let shared: Vec<Shared> = plan
            .tables
            .iter()
            .filter_map(|(n, wire)| Some((tables.get(n)?, wire)))
            .enumerate()
            .map(|(i, (t, wire))| Shared { table: t.clone(), id: i as u64 + 1, def: define(i as u64 + 1, wire, t) })
            .collect();
        let mut peers: Vec<Arc<Peer>> = plan
            .remotes
            .iter()
            .map(|(n, a)| Arc::new(Peer { name: n.clone(), addr: Some(*a), local: false, generation: AtomicU64::new(0), st: Mutex::default() }))
            .collect();
        peers.push(Arc::new(Peer { name: plan.local.clone(), addr: None, local: true, generation: AtomicU64::new(0), st: Mutex::default() }));
        for p in &peers {
            let mut st = lock(&p.st);
            st.acked = vec![0; shared.len()];
            st.last_get = vec![0; shared.len()];
            st.remote_id = vec![0; shared.len()];
        }
        let l = bind(plan.listen).map_err(|e| std::io::Error::new(e.kind(), format!("peers section '{}': cannot bind {}: {e}", plan.name, plan.listen)))?;
        listeners.push(l);
        let (tx, _) = broadcast::channel(1024);
        sections.push(Arc::new(Section {
            plan: plan.clone(),
            tables: shared,
            peers,
            tx,
            synced: AtomicBool::new(false),
            resync_asked: AtomicBool::new(false),
            started: Instant::now(),
        }));
    }
    if sections.is_empty() {
        return Ok(());
    }
    HANDED_OVER.store(false, Ordering::Relaxed);
    let _ = SECTIONS.set(sections.clone());
    std::thread::Builder::new().name("sluiced-peers".into()).spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build_local(tokio::runtime::LocalOptions::default()) else {
            eprintln!("[ALERT]    ({}) : cannot start the peers' runtime", std::process::id());
            HANDED_OVER.store(true, Ordering::Relaxed);
            return;
        };
        runtime.block_on(async move {
            let mut tasks = Vec::new();
            tasks.push(tokio::task::spawn_local(collect(sections.clone())));
            for (s, l) in sections.iter().zip(listeners) {
                let Ok(l) = TcpListener::from_std(l) else { continue };
                tasks.push(tokio::task::spawn_local(listen(s.clone(), l)));
                for p in s.peers.iter().filter(|p| !p.local) {
                    tasks.push(tokio::task::spawn_local(connect_loop(s.clone(), p.clone())));
                }
            }
            // A soft stop: the listeners close, and each section hands its tables to the next
            // process before this one exits.
            while !crate::runtime::process::stopping() {
                STOP.notified().await;
            }
            for t in &tasks {
                t.abort();
            }
            // Let the aborted tasks go, the listeners with them, before connecting to the
            // next process at the same address.
            tokio::time::sleep(Duration::from_millis(20)).await;
            for s in &sections {
                let _ = tokio::time::timeout(Duration::from_secs(3), hand_over(s.clone())).await;
            }
            HANDED_OVER.store(true, Ordering::Relaxed);
        });
    })?;
    Ok(())
}

/// Whether the tables were handed over (or need not be): the process may exit.
pub fn handed_over() -> bool {
    HANDED_OVER.load(Ordering::Relaxed)
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(64)?;
    Ok(s.into())
}

/// Takes the tables' changes and sends them to every session of their section: woken by the
/// first change, it lets [`COLLECT_EVERY`] pass so that a key changed by a burst of requests goes
/// out once, with its latest values.
async fn collect(sections: Vec<Arc<Section>>) {
    loop {
        let resync_due = sections.iter().filter(|s| !s.synced.load(Ordering::Relaxed)).map(|s| s.started + RESYNC_WAIT).min();
        match resync_due {
            Some(due) => {
                let _ = tokio::time::timeout_at(due.into(), CHANGED.notified()).await;
            }
            None => CHANGED.notified().await,
        }
        tokio::time::sleep(COLLECT_EVERY).await;
        let now = crate::stick::table::now_ms();
        for s in &sections {
            if !s.synced.load(Ordering::Relaxed) && s.started.elapsed() >= RESYNC_WAIT {
                s.synced.store(true, Ordering::Relaxed);
            }
            for sh in &s.tables {
                let changes = sh.table.take_changes();
                if changes.is_empty() {
                    continue;
                }
                let mut batch = proto::switch(sh.id);
                for (e, id) in &changes {
                    batch.extend_from_slice(&update_msg(sh, e, *id, false, now));
                }
                let _ = s.tx.send(Arc::new(batch));
            }
        }
    }
}

/// Reads one line (up to `\n`, a `\r` before it dropped) from the stream, keeping what follows in
/// `buf`.
async fn read_line(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = buf.drain(..=i).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return String::from_utf8(line).ok();
        }
        if buf.len() > 1024 {
            return None;
        }
        let mut tmp = [0u8; 512];
        match stream.read(&mut tmp).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

async fn listen(s: Arc<Section>, l: TcpListener) {
    loop {
        let Ok((stream, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        tokio::task::spawn_local(accepted(s.clone(), stream));
    }
}

/// A node connected to this one: its hello is checked line by line, and answered with a status.
async fn accepted(s: Arc<Section>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let hello = async {
        let l1 = read_line(&mut stream, &mut buf).await?;
        let l2 = read_line(&mut stream, &mut buf).await?;
        let l3 = read_line(&mut stream, &mut buf).await?;
        Some((l1, l2, l3))
    };
    let Ok(Some((l1, l2, l3))) = tokio::time::timeout(SILENCE, hello).await else { return };
    let checked = proto::check_version(&l1).and_then(|_| if l2 == s.plan.local { Ok(()) } else { Err(proto::HelloError::Host) }).and_then(|_| {
        let name = proto::sender_name(&l3)?;
        s.peers.iter().find(|p| p.name == name).cloned().ok_or(proto::HelloError::Peer)
    });
    let peer = match checked {
        Ok(p) => p,
        Err(e) => {
            let _ = stream.write_all(format!("{}\n", e.status()).as_bytes()).await;
            return;
        }
    };
    {
        let mut st = lock(&peer.st);
        if st.connected && !peer.local {
            // Both ends connected at once: this session replaces the older one, and this node
            // waits a little before connecting again, so that the two settle.
            st.coll += 1;
            st.reconnect_at = Some(Instant::now() + Duration::from_millis(50 + rand_below(2000)));
        }
    }
    if stream.write_all(format!("{}\n", proto::ST_SUCCESS).as_bytes()).await.is_err() {
        return;
    }
    run_session(s, peer, stream, buf, false).await;
}

fn rand_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n.max(1)
}

/// Connects to a node whenever no session with it is up.
async fn connect_loop(s: Arc<Section>, peer: Arc<Peer>) {
    let Some(addr) = peer.addr else { return };
    loop {
        let wait = {
            let st = lock(&peer.st);
            if st.connected {
                Some(Duration::from_millis(200))
            } else {
                st.reconnect_at.map(|t| t.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
            }
        };
        if let Some(d) = wait {
            tokio::time::sleep(d.min(Duration::from_secs(1))).await;
            continue;
        }
        {
            let mut st = lock(&peer.st);
            st.new_conn += 1;
            st.reconnect_at = Some(Instant::now() + RECONNECT);
        }
        if let Some((stream, rest)) = handshake(&s, &peer, addr, &peer.name).await {
            run_session(s.clone(), peer.clone(), stream, rest, false).await;
        }
    }
}

/// Connects and sends the hello naming `remote`; the stream and the bytes after the status
/// when the node answered 200.
async fn handshake(s: &Section, peer: &Peer, addr: SocketAddr, remote: &str) -> Option<(TcpStream, Vec<u8>)> {
    let mut stream = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await.ok()?.ok()?;
    let _ = stream.set_nodelay(true);
    stream.write_all(proto::hello(remote, &s.plan.local, std::process::id()).as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    let line = tokio::time::timeout(SILENCE, read_line(&mut stream, &mut buf)).await.ok()??;
    let status = line.trim().parse::<u32>().ok()?;
    {
        let mut st = lock(&peer.st);
        st.status = Some(status);
        st.last_hdshk = Some(Instant::now());
    }
    (status == proto::ST_SUCCESS).then_some((stream, buf))
}

/// What a session reads: the node's table definitions and the current one.
struct Rx {
    /// The node's table id -> its definition and the local table it matches (index).
    defs: HashMap<u64, (Define, Option<usize>)>,
    current: Option<u64>,
    /// The `server_key` texts the node sent, by its cache id.
    dict: HashMap<u64, String>,
    /// Tables whose received updates are not acknowledged yet.
    to_ack: Vec<usize>,
    /// The node asked for a full resync.
    teach: bool,
    /// Control replies to send (confirmations).
    replies: Vec<[u8; 2]>,
    /// The node confirmed a resync this process taught it.
    confirmed: bool,
}

/// Sends the definitions of the tables, then each entry (all of them, or those changed locally
/// after what the node acknowledged), in update id order.
fn catch_up(s: &Section, peer: &Peer, all: bool, out: &mut Vec<u8>) {
    let acked = lock(&peer.st).acked.clone();
    let now = crate::stick::table::now_ms();
    for (i, sh) in s.tables.iter().enumerate() {
        let since = acked.get(i).copied().unwrap_or(0);
        let mut entries: Vec<(u32, Arc<Entry>)> =
            sh.table.entries().into_iter().map(|e| (e.update_id(), e)).filter(|(u, _)| all || (*u != 0 && u.wrapping_sub(since) as i32 > 0)).collect();
        entries.sort_by_key(|(u, _)| *u);
        out.extend_from_slice(&proto::switch(sh.id));
        for (u, e) in entries {
            out.extend_from_slice(&update_msg(sh, &e, u, true, now));
        }
    }
}

/// Handles the messages framed in `buf`; `Err` on a protocol error.
fn receive(s: &Section, peer: &Peer, rx: &mut Rx, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut used = 0;
    loop {
        let f = match proto::frame(&buf[used..]) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => return Err("message too large".into()),
        };
        used += f.len;
        match (f.class, f.kind) {
            (proto::CLASS_CONTROL, proto::CTRL_RESYNC_REQ) => rx.teach = true,
            (proto::CLASS_CONTROL, k @ (proto::CTRL_RESYNC_FINISHED | proto::CTRL_RESYNC_PARTIAL)) => {
                if k == proto::CTRL_RESYNC_FINISHED {
                    s.synced.store(true, Ordering::Relaxed);
                }
                s.resync_asked.store(false, Ordering::Relaxed);
                rx.replies.push(proto::short(proto::CLASS_CONTROL, proto::CTRL_RESYNC_CONFIRM));
            }
            (proto::CLASS_CONTROL, proto::CTRL_RESYNC_CONFIRM) => rx.confirmed = true,
            (proto::CLASS_CONTROL, proto::CTRL_HEARTBEAT) => lock(&peer.st).rx_hbt += 1,
            (proto::CLASS_CONTROL, _) => {}
            (proto::CLASS_ERROR, k) => return Err(format!("the peer reported an error ({k})")),
            (proto::CLASS_RESERVED, _) => return Err("reserved message class".into()),
            (proto::CLASS_STKT, proto::STKT_DEFINE) => {
                let d = Define::decode(f.body).ok_or("malformed table definition")?;
                let local = s.tables.iter().position(|sh| sh.def.name == d.name && (sh.def.key_type, sh.def.key_size) == (d.key_type, d.key_size));
                if let Some(i) = local {
                    lock(&peer.st).remote_id[i] = d.id;
                }
                rx.current = Some(d.id);
                rx.defs.insert(d.id, (d, local));
            }
            (proto::CLASS_STKT, proto::STKT_SWITCH) => {
                let mut pos = 0;
                rx.current = Some(proto::get_int(f.body, &mut pos).ok_or("malformed switch")?);
            }
            (proto::CLASS_STKT, proto::STKT_ACK) => {
                let (id, upd) = proto::decode_ack(f.body).ok_or("malformed acknowledgement")?;
                if let Some(i) = s.tables.iter().position(|sh| sh.id == id) {
                    lock(&peer.st).acked[i] = upd;
                }
            }
            (proto::CLASS_STKT, k) if proto::update_shape(k).is_some() => {
                let Some((def, local)) = rx.current.and_then(|c| rx.defs.get(&c)) else { continue };
                let u = Update::decode(k, f.body, def).ok_or("malformed update")?;
                let Some(i) = *local else { continue };
                {
                    let mut st = lock(&peer.st);
                    st.last_get[i] = u.id.unwrap_or_else(|| st.last_get[i].wrapping_add(1));
                }
                if !rx.to_ack.contains(&i) {
                    rx.to_ack.push(i);
                }
                let t = &s.tables[i].table;
                let Some(key) = t.key_from_wire(&u.key) else { continue };
                let mut values = Vec::with_capacity(u.values.len());
                for (dt, el, v) in u.values {
                    let Some(d) = Dt::from_index(dt) else { continue };
                    let w = match v {
                        Value::Int(n) => Wire::Int(n),
                        Value::Freq { age, curr, prev } => Wire::Freq { age, curr, prev },
                        Value::Dict(None) => continue,
                        Value::Dict(Some((id, Some(text)))) => {
                            rx.dict.insert(id, text.clone());
                            Wire::Text(Some(text))
                        }
                        Value::Dict(Some((id, None))) => match rx.dict.get(&id) {
                            Some(t) => Wire::Text(Some(t.clone())),
                            None => continue,
                        },
                    };
                    values.push((d, el as usize, w));
                }
                t.learn(key, u.expire.map(u64::from), &values);
            }
            _ => {}
        }
    }
    buf.drain(..used);
    Ok(())
}

/// A session with a node, from after the handshake until it ends. `teacher`: this process is
/// stopping and hands its tables to the next one.
async fn run_session(s: Arc<Section>, peer: Arc<Peer>, mut stream: TcpStream, mut buf: Vec<u8>, teacher: bool) -> bool {
    let generation = peer.generation.fetch_add(1, Ordering::AcqRel) + 1;
    {
        let mut st = lock(&peer.st);
        st.connected = true;
        st.status = Some(proto::ST_SUCCESS);
        st.last_hdshk = Some(Instant::now());
    }
    let mut events = s.tx.subscribe();
    let mut out = Vec::new();
    for sh in &s.tables {
        out.extend_from_slice(&sh.def.encode());
    }
    catch_up(&s, &peer, teacher, &mut out);
    let mut asked = false;
    if teacher {
        let end = if s.synced.load(Ordering::Relaxed) { proto::CTRL_RESYNC_FINISHED } else { proto::CTRL_RESYNC_PARTIAL };
        out.extend_from_slice(&proto::short(proto::CLASS_CONTROL, end));
    } else if !peer.local && !s.synced.load(Ordering::Relaxed) && !s.resync_asked.swap(true, Ordering::AcqRel) {
        out.extend_from_slice(&proto::short(proto::CLASS_CONTROL, proto::CTRL_RESYNC_REQ));
        asked = true;
    }
    let mut rx = Rx { defs: HashMap::new(), current: None, dict: HashMap::new(), to_ack: Vec::new(), teach: false, replies: Vec::new(), confirmed: false };
    let mut last_read = Instant::now();
    let mut last_write = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ok = write_out(&mut stream, &out).await;
    let mut tmp = vec![0u8; 16 * 1024];
    while ok {
        if peer.generation.load(Ordering::Acquire) != generation || (teacher && rx.confirmed) {
            break;
        }
        out.clear();
        tokio::select! {
            r = stream.read(&mut tmp) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    last_read = Instant::now();
                    buf.extend_from_slice(&tmp[..n]);
                    if let Err(_why) = receive(&s, &peer, &mut rx, &mut buf) {
                        lock(&peer.st).proto_err += 1;
                        let _ = stream.write_all(&proto::short(proto::CLASS_ERROR, proto::ERR_PROTOCOL)).await;
                        break;
                    }
                    for r in rx.replies.drain(..) {
                        out.extend_from_slice(&r);
                    }
                    if std::mem::take(&mut rx.teach) {
                        catch_up(&s, &peer, true, &mut out);
                        let end = if s.synced.load(Ordering::Relaxed) { proto::CTRL_RESYNC_FINISHED } else { proto::CTRL_RESYNC_PARTIAL };
                        out.extend_from_slice(&proto::short(proto::CLASS_CONTROL, end));
                    }
                    if !rx.to_ack.is_empty() {
                        let st = lock(&peer.st);
                        for i in rx.to_ack.drain(..) {
                            out.extend_from_slice(&proto::ack(st.remote_id[i], st.last_get[i]));
                        }
                    }
                }
            },
            b = events.recv() => match b {
                Ok(batch) if !teacher => out.extend_from_slice(&batch),
                Ok(_) => {}
                // Too far behind: what it missed is sent again from the tables.
                Err(broadcast::error::RecvError::Lagged(_)) => catch_up(&s, &peer, false, &mut out),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                if last_read.elapsed() >= SILENCE {
                    break;
                }
                if last_write.elapsed() >= HEARTBEAT {
                    out.extend_from_slice(&proto::short(proto::CLASS_CONTROL, proto::CTRL_HEARTBEAT));
                    lock(&peer.st).tx_hbt += 1;
                }
            }
        }
        if !out.is_empty() {
            ok = write_out(&mut stream, &out).await;
            last_write = Instant::now();
        }
    }
    if asked && !s.synced.load(Ordering::Relaxed) {
        s.resync_asked.store(false, Ordering::Relaxed);
    }
    let mut st = lock(&peer.st);
    if peer.generation.load(Ordering::Acquire) == generation {
        st.connected = false;
    }
    rx.confirmed
}

/// Writes `out` in pieces of 64 kB: a node that takes none of a piece for [`SILENCE`] is dropped
/// as a silent one is, while a full resync of a large table to a slow node keeps going.
async fn write_out(stream: &mut TcpStream, out: &[u8]) -> bool {
    for piece in out.chunks(64 * 1024) {
        if !matches!(tokio::time::timeout(SILENCE, stream.write_all(piece)).await, Ok(Ok(()))) {
            return false;
        }
    }
    true
}

/// On a soft stop: teaches every entry to the next process, listening on this node's address
/// now that this process's listener is closed, and waits for its confirmation.
async fn hand_over(s: Arc<Section>) {
    if s.tables.iter().all(|sh| sh.table.used() == 0) {
        return;
    }
    let Some(me) = s.peers.iter().find(|p| p.local).cloned() else { return };
    for _ in 0..5 {
        if let Some((stream, rest)) = handshake(&s, &me, s.plan.listen, &s.plan.local).await
            && run_session(s.clone(), me.clone(), stream, rest, true).await
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The date as HAProxy writes it in `show peers`: `22/Nov/2026:10:00:00`.
fn date_now() -> String {
    let t = crate::log::sink::Tm::from(std::time::SystemTime::now());
    format!("{:02}/{}/{}:{:02}:{:02}:{:02}", t.day, t.month_name(), t.year, t.hour, t.min, t.sec)
}

/// `show peers [<section>]`: each section, its nodes and their sessions, and the tables they
/// share, in the shape of HAProxy's output.
pub fn show(which: Option<&str>) -> Result<String, String> {
    use std::fmt::Write as _;
    let sections = SECTIONS.get().map(Vec::as_slice).unwrap_or_default();
    if let Some(n) = which
        && !sections.iter().any(|s| s.plan.name == n)
    {
        return Err(format!("'{n}' is not a peers section.\n"));
    }
    let ms = |t: Option<Instant>| t.map_or("<NEVER>".to_string(), |t| format!("{}ms", t.elapsed().as_millis()));
    let mut out = String::new();
    for s in sections.iter().filter(|s| which.is_none_or(|n| n == s.plan.name)) {
        let _ = writeln!(
            out,
            "{:p}: [{}] id={} disabled=0 flags=0x{:x} resync_timeout={} task_calls=0",
            Arc::as_ptr(s),
            date_now(),
            s.plan.name,
            u32::from(s.synced.load(Ordering::Relaxed)) << 1,
            if s.synced.load(Ordering::Relaxed) { "<PAST>".to_string() } else { format!("{}ms", RESYNC_WAIT.saturating_sub(s.started.elapsed()).as_millis()) }
        );
        for p in &s.peers {
            let st = lock(&p.st);
            let status = match (st.connected, st.status) {
                (true, _) => "ESTA",
                (false, Some(proto::ST_TRYAGAIN)) => "RETR",
                (false, Some(proto::ST_ERRPROTO)) => "PROT",
                (false, Some(proto::ST_ERRVERSION)) => "VERS",
                (false, Some(proto::ST_ERRHOST)) => "NAME",
                (false, Some(proto::ST_ERRPEER)) => "UNKN",
                (false, Some(_)) => "CONN",
                (false, None) => "NONE",
            };
            let addr = p.addr.unwrap_or(s.plan.listen);
            let _ = writeln!(
                out,
                "  {:p}: id={}({},{}) addr={addr} last_status={status} last_hdshk={}",
                Arc::as_ptr(p),
                p.name,
                if p.local { "local" } else { "remote" },
                if st.connected { "active" } else { "inactive" },
                ms(st.last_hdshk)
            );
            let _ = writeln!(
                out,
                "        reconnect={} heartbeat=<NEVER> confirm=0 tx_hbt={} rx_hbt={} no_hbt=0 new_conn={} proto_err={} coll={}",
                st.reconnect_at.map_or("<NEVER>".to_string(), |t| format!("{}ms", t.saturating_duration_since(Instant::now()).as_millis())),
                st.tx_hbt,
                st.rx_hbt,
                st.new_conn,
                st.proto_err,
                st.coll
            );
            let _ = writeln!(out, "        shared tables:");
            for (i, sh) in s.tables.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "          {:p}: id={} local_id={} remote_id={} flags=0x0 remote_data=0x{:x}",
                    Arc::as_ptr(&sh.table),
                    sh.table.name,
                    sh.id,
                    st.remote_id[i],
                    sh.def.data
                );
                let _ = writeln!(
                    out,
                    "              last_acked={} last_pushed={} last_get={} update={}",
                    st.acked[i],
                    sh.table.last_update(),
                    st.last_get[i],
                    st.acked[i]
                );
                let _ = writeln!(
                    out,
                    "              table:{:p} id={} update={} localupdate={} refcnt=1",
                    Arc::as_ptr(&sh.table),
                    sh.table.name,
                    sh.table.last_update(),
                    sh.table.last_update()
                );
            }
        }
    }
    Ok(out)
}
