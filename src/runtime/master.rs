//! Master-worker mode (`-W`, `-Ws`, the global `master-worker` keyword): a master process that
//! binds nothing and serves no traffic, and starts, reloads and watches the workers that do.
//!
//! - **A worker** is this same program, started again from the path it was started from (so a
//!   reload after an upgrade runs the new binary) with the command line minus the master's own
//!   flags (`-W`, `-Ws`, `-D`, `-p`, `-S`, `-sf`, `-st`, `-x`, `-C`: see `cli::worker_args`). The
//!   environment variable [`ENV`] tells it that it is a worker and names two descriptors it
//!   inherits: the write end of a pipe on which it writes one byte once its listeners are bound
//!   and its threads run ("ready"), and its end of a channel on which it reports its listening
//!   sockets and the master passes it runtime API connections (`@1 show info` on the master
//!   CLI), both with `SCM_RIGHTS`.
//! - **A reload** (SIGUSR2, SIGHUP, or `reload` on the master CLI) starts a new worker, which reads
//!   the configuration again and takes the listening sockets the master kept from the current
//!   worker (binding only what is new).
//!   Once it is ready, the master tells the older workers to finish (SIGUSR1, a soft stop); if it
//!   exits before it is ready (a bad configuration), the old workers keep serving, the reload is
//!   counted as failed, and the master CLI's prompt says `master[ReloadFailed]>`.
//! - **Stopping:** SIGTERM and SIGINT are passed to every worker (a hard stop), SIGUSR1 too (a
//!   soft stop); the master exits 0 once every worker has. A worker that exits while it is the
//!   current one and nobody asked it to is a failure: the master stops the others and exits with
//!   that worker's status, unless `master-worker no-exit-on-failure` keeps it waiting for a reload.
//! - **A master that dies** takes its workers with it: each worker asks the kernel for SIGTERM when
//!   its parent exits (`PR_SET_PDEATHSIG`), as HAProxy's workers leave when the master is gone.
//! - **systemd** (`-Ws`, `Type=notify`): `READY=1` once the first worker is ready, `RELOADING=1`
//!   when a reload starts and `READY=1` again when it ends, `STOPPING=1` when told to stop.
//!
//! Messages use HAProxy's wording ("New worker (1234) forked", "Loading success.", "Former worker
//! (1233) exited with code 0 (Exit)"), so log watchers written for HAProxy's master keep working.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use crate::config::diag::{Severity, format_line};
use crate::control::config::StatsLevel;

/// The environment variable that makes a process a worker: `<master pid>,<ready fd>,<channel fd>`.
pub const ENV: &str = "SLUICED_MASTER";
/// The listening sockets the master kept from the previous worker: one `<fd> <key>` per line
/// (`listener::key`).
pub const LISTENERS_ENV: &str = "SLUICED_LISTENERS";

/// How long a forwarded runtime API command may take in a worker.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a master CLI connection may stay idle.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// What the master needs from the command line and the configuration.
#[derive(Debug, Default)]
pub struct MasterOpts {
    /// The program to start as each worker.
    pub exe: PathBuf,
    /// The workers' command line.
    pub worker_args: Vec<String>,
    /// `-Ws`: tell systemd (`NOTIFY_SOCKET`).
    pub systemd: bool,
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    /// `-S <addr>[,<option>,<value>...]`, each.
    pub sockets: Vec<String>,
    /// False with `master-worker no-exit-on-failure`.
    pub exit_on_failure: bool,
    pub quiet: bool,
}

/// What a worker learns from [`ENV`].
#[derive(Debug)]
pub struct WorkerLink {
    pub master: i32,
    /// The pipe to write "ready" on.
    pub ready: OwnedFd,
    /// The channel runtime API connections arrive on.
    pub channel: OwnedFd,
    /// The listening sockets the master kept, by `listener::key`.
    pub listeners: std::collections::HashMap<String, OwnedFd>,
}

/// Reads [`ENV`]: `None` when this process is not a worker under a master.
pub fn worker_link() -> Option<Result<WorkerLink, String>> {
    let v = std::env::var(ENV).ok()?;
    let parse = || -> Result<WorkerLink, String> {
        let mut it = v.split(',').map(|p| p.parse::<i32>().map_err(|_| format!("{ENV}='{v}' is not <pid>,<fd>,<fd>")));
        let (Some(m), Some(r), Some(c), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(format!("{ENV}='{v}' is not <pid>,<fd>,<fd>"));
        };
        let (master, ready, channel) = (m?, r?, c?);
        let mut listeners = std::collections::HashMap::new();
        for line in std::env::var(LISTENERS_ENV).unwrap_or_default().lines() {
            let Some((fd, key)) = line.split_once(' ') else { continue };
            let fd = fd.parse::<i32>().map_err(|_| format!("{LISTENERS_ENV}: '{line}' is not <fd> <key>"))?;
            listeners.insert(key.to_string(), super::sys::take_inherited_fd(fd)?);
        }
        Ok(WorkerLink { master, ready: super::sys::take_inherited_fd(ready)?, channel: super::sys::take_inherited_fd(channel)?, listeners })
    };
    Some(parse())
}

impl WorkerLink {
    /// Sends the master this worker's TCP listening sockets, so it keeps them for the next
    /// worker, written as `super::handover::encode` lists them.
    /// Sent before [`WorkerLink::ready`], so the master finds them all when it reads "ready".
    pub fn report(&self, listeners: &[(&str, std::os::fd::BorrowedFd<'_>)]) -> Result<(), String> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        // Sequenced packets: each write goes whole or not at all.
        for (text, fds) in super::handover::encode(listeners.iter().map(|(k, fd)| (*k, fd.as_raw_fd()))) {
            let cmsgs = [ControlMessage::ScmRights(&fds)];
            sendmsg::<()>(self.channel.as_raw_fd(), &[IoSlice::new(&text)], if fds.is_empty() { &[] } else { &cmsgs }, MsgFlags::MSG_NOSIGNAL, None)
                .map_err(|e| format!("cannot pass the listeners to the master: {e}"))?;
        }
        Ok(())
    }

    /// Called in the worker once its threads run: the master may now retire the old workers.
    /// The worker also asks for SIGTERM when the master goes (after any change of user, which
    /// clears that request), and leaves at once if the master is already gone.
    pub fn ready(&mut self) {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
        if nix::unistd::getppid().as_raw() != self.master {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM);
        }
        let _ = nix::unistd::write(&self.ready, b"R");
    }
}

fn say(quiet: bool, sev: Severity, msg: &str) {
    if !quiet || sev == Severity::Alert {
        eprint!("{}", format_line(sev, std::process::id(), msg));
    }
}

/// One worker the master knows about.
struct Proc {
    pid: i32,
    started: Instant,
    /// Reloads it has lived through.
    reloads: u32,
    /// False once a newer worker took over.
    current: bool,
    channel: Arc<StdUnixStream>,
}

#[derive(Default)]
struct State {
    procs: Vec<Proc>,
    reloads: u32,
    failed: u32,
    last_failed: bool,
}

/// What the master CLI asks of the master's loop.
enum Request {
    Reload(oneshot::Sender<bool>),
}

/// A worker started and not yet ready.
struct Pending {
    pid: i32,
    channel: Arc<StdUnixStream>,
    waiters: Vec<oneshot::Sender<bool>>,
    /// The exit status, if it exited before the pipe said anything.
    status: Option<String>,
}

/// A master CLI socket from `-S`.
#[derive(Debug)]
struct CliSocket {
    listener: Listener,
    level: StatsLevel,
    path: Option<PathBuf>,
}

#[derive(Debug)]
enum Listener {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

/// Parses and binds `-S <addr>[,<option>,<value>...]`: a unix path (or `unix@path`) or
/// `[ipv4@|ipv6@]<addr>:<port>`, with `mode`, `uid`, `gid`, `user`, `group` and `level`.
fn bind_cli(spec: &str) -> Result<CliSocket, String> {
    let mut parts = spec.split(',');
    let addr = parts.next().unwrap_or_default();
    let (mut mode, mut uid, mut gid, mut level) = (None, None, None, StatsLevel::Admin);
    while let Some(opt) = parts.next() {
        let val = parts.next().ok_or_else(|| format!("-S '{spec}': '{opt}' expects a value"))?;
        match opt {
            "mode" => mode = Some(u32::from_str_radix(val, 8).map_err(|_| format!("-S '{spec}': mode '{val}' is not octal"))?),
            "uid" => uid = Some(val.parse::<u32>().map_err(|_| format!("-S '{spec}': uid '{val}' is not a number"))?),
            "gid" => gid = Some(val.parse::<u32>().map_err(|_| format!("-S '{spec}': gid '{val}' is not a number"))?),
            "user" => uid = Some(super::identity::lookup_user(val).map_err(|e| format!("-S '{spec}': {e}"))?.uid.as_raw()),
            "group" => gid = Some(super::identity::lookup_group(val).map_err(|e| format!("-S '{spec}': {e}"))?.as_raw()),
            "level" => {
                level = match val {
                    "user" => StatsLevel::User,
                    "operator" => StatsLevel::Operator,
                    "admin" => StatsLevel::Admin,
                    _ => return Err(format!("-S '{spec}': level is 'user', 'operator' or 'admin', not '{val}'")),
                }
            }
            _ => return Err(format!("-S '{spec}': unknown option '{opt}' (mode, uid, gid, user, group, level)")),
        }
    }
    let inet = addr.strip_prefix("ipv4@").or_else(|| addr.strip_prefix("ipv6@"));
    let path = addr.strip_prefix("unix@").unwrap_or(addr);
    if inet.is_some() || (!path.starts_with('/') && !path.starts_with('.') && path.contains(':')) {
        let a = inet.unwrap_or(addr);
        let sa: std::net::SocketAddr = a.parse().map_err(|_| format!("-S '{spec}': '{a}' is not an address:port"))?;
        let l = std::net::TcpListener::bind(sa).map_err(|e| format!("-S '{spec}': cannot bind: {e}"))?;
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        return Ok(CliSocket { listener: Listener::Tcp(l), level, path: None });
    }
    if path.is_empty() {
        return Err("-S expects an address".into());
    }
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
    let l = std::os::unix::net::UnixListener::bind(path).map_err(|e| format!("-S '{spec}': cannot bind: {e}"))?;
    if let Some(m) = mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).map_err(|e| format!("-S '{spec}': cannot chmod: {e}"))?;
    }
    if (uid.is_some() || gid.is_some()) && nix::unistd::geteuid().is_root() {
        super::identity::chown_socket(std::path::Path::new(path), uid, gid).map_err(|e| format!("-S '{spec}': {e}"))?;
    }
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(CliSocket { listener: Listener::Unix(l), level, path: Some(PathBuf::from(path)) })
}

/// Runs the master; returns its exit status.
pub fn run(opts: MasterOpts) -> i32 {
    let quiet = opts.quiet;
    let mut sockets = Vec::new();
    for spec in &opts.sockets {
        match bind_cli(spec) {
            Ok(s) => sockets.push(s),
            Err(e) => {
                say(quiet, Severity::Alert, &e);
                return 1;
            }
        }
    }
    if opts.daemon {
        // One thread so far: the runtime below is built after this.
        if let Err(e) = super::sys::daemonize(opts.pidfile.as_deref()) {
            say(quiet, Severity::Alert, &format!("cannot go into the background: {e}"));
            return 1;
        }
    } else if let Some(p) = &opts.pidfile
        && let Err(e) = std::fs::write(p, format!("{}\n", std::process::id()))
    {
        say(quiet, Severity::Alert, &format!("cannot write pid file '{}': {e}", p.display()));
        return 1;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            say(quiet, Severity::Alert, &format!("cannot start the master's runtime: {e}"));
            return 1;
        }
    };
    let paths: Vec<PathBuf> = sockets.iter().filter_map(|s| s.path.clone()).collect();
    let status = rt.block_on(Master::new(opts).run(sockets));
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
    rt.shutdown_timeout(Duration::from_millis(100));
    status
}

struct Master {
    opts: MasterOpts,
    started: Instant,
    state: Arc<Mutex<State>>,
    pending: Option<Pending>,
    /// A reload asked for while one was under way: started when it ends.
    again: Option<Vec<oneshot::Sender<bool>>>,
    /// Workers that closed their pipe without being ready, not reaped yet.
    failing: Vec<i32>,
    stopping: bool,
    /// The status to exit with once every worker is gone.
    exit: i32,
    /// The current worker's TCP listening sockets, by `listener::key`: passed to the next one.
    listeners: Vec<(String, OwnedFd)>,
}

impl Master {
    fn new(opts: MasterOpts) -> Self {
        Master {
            opts,
            started: Instant::now(),
            state: Arc::default(),
            pending: None,
            again: None,
            failing: Vec::new(),
            stopping: false,
            exit: 0,
            listeners: Vec::new(),
        }
    }

    fn say(&self, sev: Severity, msg: &str) {
        say(self.opts.quiet, sev, msg);
    }

    fn notify(&self, states: &[sd_notify::NotifyState]) {
        if self.opts.systemd {
            let _ = sd_notify::notify(states);
        }
    }

    async fn run(mut self, sockets: Vec<CliSocket>) -> i32 {
        let (req_tx, mut req_rx) = mpsc::unbounded_channel::<Request>();
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<(i32, bool)>();
        let (Ok(mut int), Ok(mut term), Ok(mut usr1), Ok(mut usr2), Ok(mut hup), Ok(mut chld)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::user_defined1()),
            signal(SignalKind::user_defined2()),
            signal(SignalKind::hangup()),
            signal(SignalKind::child()),
        ) else {
            self.say(Severity::Alert, "cannot install signal handlers");
            return 1;
        };
        let shared = Arc::new(CliShared { state: self.state.clone(), started: self.started, requests: req_tx });
        for s in sockets {
            tokio::spawn(accept_loop(s, shared.clone()));
        }
        if !self.start_worker(&ready_tx, Vec::new()) {
            return 1;
        }
        loop {
            tokio::select! {
                _ = int.recv() => self.stop(nix::sys::signal::Signal::SIGINT),
                _ = term.recv() => self.stop(nix::sys::signal::Signal::SIGTERM),
                _ = usr1.recv() => self.stop(nix::sys::signal::Signal::SIGUSR1),
                _ = usr2.recv() => self.reload(&ready_tx, Vec::new()),
                _ = hup.recv() => self.reload(&ready_tx, Vec::new()),
                Some(Request::Reload(tx)) = req_rx.recv() => self.reload(&ready_tx, vec![tx]),
                Some((pid, ok)) = ready_rx.recv() => self.on_ready(pid, ok, &ready_tx),
                _ = chld.recv() => {}
            }
            // A child's signal may stand for several exits; reaped after every event, since a
            // worker that failed closes its pipe and exits in either order.
            self.reap();
            if let Some(code) = self.finished() {
                return code;
            }
        }
    }

    /// Starts a worker; false when it could not be started at all.
    fn start_worker(&mut self, ready_tx: &mpsc::UnboundedSender<(i32, bool)>, waiters: Vec<oneshot::Sender<bool>>) -> bool {
        match spawn_worker(&self.opts, &self.listeners) {
            Ok((pid, ready, channel)) => {
                self.say(Severity::Notice, &format!("New worker ({pid}) forked"));
                let tx = ready_tx.clone();
                tokio::spawn(async move {
                    let ok = match tokio::net::unix::pipe::Receiver::from_owned_fd(ready) {
                        Ok(mut rx) => {
                            let mut b = [0u8; 1];
                            matches!(rx.read(&mut b).await, Ok(1))
                        }
                        Err(_) => false,
                    };
                    let _ = tx.send((pid, ok));
                });
                self.pending = Some(Pending { pid, channel: Arc::new(channel), waiters, status: None });
                true
            }
            Err(e) => {
                self.say(Severity::Alert, &format!("cannot start a worker: {e}"));
                for w in waiters {
                    let _ = w.send(false);
                }
                false
            }
        }
    }

    fn reload(&mut self, ready_tx: &mpsc::UnboundedSender<(i32, bool)>, waiters: Vec<oneshot::Sender<bool>>) {
        if self.stopping {
            for w in waiters {
                let _ = w.send(false);
            }
            return;
        }
        if self.pending.is_some() {
            self.again.get_or_insert_default().extend(waiters);
            return;
        }
        self.say(Severity::Notice, "Reloading sluiced");
        let mut reload = vec![sd_notify::NotifyState::Reloading];
        if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
            reload.push(now);
        }
        self.notify(&reload);
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.reloads += 1;
            for p in &mut st.procs {
                p.reloads += 1;
            }
        }
        if !self.start_worker(ready_tx, waiters) {
            self.failed_reload();
        }
    }

    fn failed_reload(&mut self) {
        self.say(Severity::Warning, "Loading failure!");
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.failed += 1;
        st.last_failed = true;
        drop(st);
        self.notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("the last reload failed; the previous workers go on")]);
    }

    fn on_ready(&mut self, pid: i32, ok: bool, ready_tx: &mpsc::UnboundedSender<(i32, bool)>) {
        let Some(p) = self.pending.take_if(|p| p.pid == pid) else { return };
        let initial = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.procs.is_empty() && st.reloads == 0
        };
        if ok {
            self.say(Severity::Notice, "Loading success.");
            match take_listeners(&p.channel) {
                Ok(l) => self.listeners = l,
                Err(e) => {
                    self.say(Severity::Warning, &format!("worker ({pid}): {e}; the next reload binds its listeners anew"));
                    self.listeners.clear();
                }
            }
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            for old in st.procs.iter_mut().filter(|o| o.current) {
                old.current = false;
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(old.pid), nix::sys::signal::Signal::SIGUSR1);
            }
            st.procs.push(Proc { pid, started: Instant::now(), reloads: 0, current: true, channel: p.channel });
            st.last_failed = false;
            drop(st);
            let mut ready = vec![sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("ready")];
            if initial {
                ready.push(sd_notify::NotifyState::MainPid(std::process::id()));
            }
            self.notify(&ready);
        } else {
            // The worker said why on the standard error it shares with the master; its exit is
            // reaped (and its status given) by `reap`.
            match &p.status {
                Some(s) => self.say(Severity::Alert, &format!("New worker ({pid}) exited with {s} before it was ready")),
                None => self.failing.push(pid),
            }
            self.failed_reload();
            if initial {
                self.stopping = true;
                self.exit = 1;
            }
        }
        for w in p.waiters {
            let _ = w.send(ok);
        }
        // Reloads asked for meanwhile are one more reload, which they all wait for.
        if !self.stopping
            && let Some(waiters) = self.again.take()
        {
            self.reload(ready_tx, waiters);
        }
    }

    fn stop(&mut self, sig: nix::sys::signal::Signal) {
        if !self.stopping {
            self.say(Severity::Warning, "Exiting Master process...");
            self.notify(&[sd_notify::NotifyState::Stopping]);
        }
        self.stopping = true;
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let pids = st.procs.iter().map(|p| p.pid).chain(self.pending.as_ref().map(|p| p.pid));
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    }

    /// Collects every exited worker.
    fn reap(&mut self) {
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        loop {
            let (pid, code, why) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code, "Exit".to_string()),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32, signal_words(sig)),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            if let Some(p) = self.pending.as_mut().filter(|p| p.pid == pid) {
                p.status = Some(format!("code {code} ({why})"));
                continue;
            }
            if let Some(i) = self.failing.iter().position(|&f| f == pid) {
                self.failing.swap_remove(i);
                self.say(Severity::Alert, &format!("New worker ({pid}) exited with code {code} ({why}) before it was ready"));
                continue;
            }
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let Some(i) = st.procs.iter().position(|p| p.pid == pid) else { continue };
            let p = st.procs.remove(i);
            let others: Vec<i32> = st.procs.iter().map(|p| p.pid).collect();
            drop(st);
            if !p.current || self.stopping {
                let sev = if p.current { Severity::Alert } else { Severity::Warning };
                let which = if p.current { "Current" } else { "Former" };
                self.say(sev, &format!("{which} worker ({pid}) exited with code {code} ({why})"));
                continue;
            }
            self.say(Severity::Alert, &format!("Current worker ({pid}) exited with code {code} ({why})"));
            if self.opts.exit_on_failure {
                self.say(Severity::Alert, "exit-on-failure: killing every processes with SIGTERM");
                self.stopping = true;
                self.exit = code;
                for o in others.into_iter().chain(self.pending.as_ref().map(|p| p.pid)) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(o), nix::sys::signal::Signal::SIGTERM);
                }
            } else {
                self.say(Severity::Warning, "no-exit-on-failure: the master waits for a reload");
            }
        }
    }

    /// The exit status once stopping and every worker is gone.
    fn finished(&self) -> Option<i32> {
        if !self.stopping || self.pending.is_some() || !self.failing.is_empty() || !self.state.lock().unwrap_or_else(|e| e.into_inner()).procs.is_empty() {
            return None;
        }
        self.say(Severity::Warning, &format!("All workers exited. Exiting... ({})", self.exit));
        Some(self.exit)
    }
}

/// Reads the listening sockets a worker sent before it said "ready" (`WorkerLink::report`).
fn take_listeners(channel: &StdUnixStream) -> Result<Vec<(String, OwnedFd)>, String> {
    use std::os::fd::AsFd;
    super::handover::receive(channel.as_fd(), nix::sys::socket::MsgFlags::MSG_DONTWAIT).map_err(|e| format!("its listeners did not arrive ({e})"))
}

fn signal_words(sig: nix::sys::signal::Signal) -> String {
    use nix::sys::signal::Signal::*;
    match sig {
        SIGTERM => "Terminated".into(),
        SIGKILL => "Killed".into(),
        SIGINT => "Interrupt".into(),
        SIGSEGV => "Segmentation fault".into(),
        SIGABRT => "Aborted".into(),
        SIGBUS => "Bus error".into(),
        SIGUSR1 => "User defined signal 1".into(),
        other => other.as_str().into(),
    }
}

/// Starts one worker: its pid, the read end of its ready pipe and the master's end of its
/// channel.
fn spawn_worker(opts: &MasterOpts, listeners: &[(String, OwnedFd)]) -> Result<(i32, OwnedFd, StdUnixStream), String> {
    use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // Sequenced packets: each message (a passed connection, a batch of listeners) arrives whole.
    let (master_end, worker_end) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(|e| format!("socketpair: {e}"))?;
    // Only the worker's descriptors cross the exec: the master starts workers from this one
    // thread, so no other child can inherit them in between, and the kept listeners are made
    // close-on-exec again right after.
    let inherit = |fd: &OwnedFd, on: bool| fcntl(fd, FcntlArg::F_SETFD(if on { FdFlag::empty() } else { FdFlag::FD_CLOEXEC }));
    inherit(&ready_w, true).map_err(|e| format!("pipe: {e}"))?;
    inherit(&worker_end, true).map_err(|e| format!("socketpair: {e}"))?;
    let mut passed = String::new();
    for (key, fd) in listeners {
        if inherit(fd, true).is_ok() {
            passed.push_str(&format!("{} {key}\n", fd.as_raw_fd()));
        }
    }
    let child = std::process::Command::new(&opts.exe)
        .args(&opts.worker_args)
        .env(ENV, format!("{},{},{}", std::process::id(), ready_w.as_raw_fd(), worker_end.as_raw_fd()))
        .env(LISTENERS_ENV, passed)
        .env_remove("NOTIFY_SOCKET")
        .stdin(std::process::Stdio::null())
        .spawn();
    for (_, fd) in listeners {
        let _ = inherit(fd, false);
    }
    let child = child.map_err(|e| format!("cannot run '{}': {e}", opts.exe.display()))?;
    let master_end = StdUnixStream::from(master_end);
    master_end.set_nonblocking(true).map_err(|e| e.to_string())?;
    // The child is reaped with `waitpid` in `Master::reap`; `Child` has no `Drop` that waits.
    Ok((child.id() as i32, ready_r, master_end))
}

/// What every master CLI connection shares.
struct CliShared {
    state: Arc<Mutex<State>>,
    started: Instant,
    requests: mpsc::UnboundedSender<Request>,
}

async fn accept_loop(s: CliSocket, shared: Arc<CliShared>) {
    let level = s.level;
    match s.listener {
        Listener::Unix(u) => {
            let Ok(l) = tokio::net::UnixListener::from_std(u) else { return };
            loop {
                if let Ok((c, _)) = l.accept().await {
                    tokio::spawn(serve_cli(c, shared.clone(), level));
                }
            }
        }
        Listener::Tcp(t) => {
            let Ok(l) = tokio::net::TcpListener::from_std(t) else { return };
            loop {
                if let Ok((c, _)) = l.accept().await {
                    tokio::spawn(serve_cli(c, shared.clone(), level));
                }
            }
        }
    }
}

const HELP: &str = "The following commands are valid at this level:
  @!<pid>                                 : send a command to the <pid> process
  @<relative pid>                         : send a command to the <relative pid> process
  @master                                 : send a command to the master process
  operator                                : lower the level of the current CLI session to operator
  reload                                  : reload sluiced (start a new worker, retire the old ones)
  show proc                               : show processes status
  show version                            : show version of the current process
  user                                    : lower the level of the current CLI session to user
  help [<command>]                        : list matching or all commands
  prompt                                  : toggle interactive mode with prompt
  quit                                    : disconnect
";

/// Where a session's commands go: the master, or a worker by pid.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    Master,
    Worker(i32),
}

async fn serve_cli<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(conn: S, shared: Arc<CliShared>, mut level: StatsLevel) {
    let (r, mut w) = tokio::io::split(conn);
    let mut r = BufReader::new(r).take(crate::control::socket::MAX_LINE as u64 * 4);
    let mut interactive = false;
    let mut target = Target::Master;
    loop {
        let mut line = String::new();
        match tokio::time::timeout(CLI_TIMEOUT, r.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
        r.set_limit(crate::control::socket::MAX_LINE as u64 * 4);
        let line = line.trim_end_matches(['\n', '\r']).trim();
        let mut out = String::new();
        let mut quit = false;
        // `@...` prefixes pick the process; `@1` alone, in interactive mode, keeps it.
        let (dest, cmd) = match line.strip_prefix('@') {
            Some(rest) => {
                let (who, cmd) = rest.split_once(char::is_whitespace).map_or((rest, ""), |(a, b)| (a, b.trim()));
                match resolve(&shared, who) {
                    Ok(t) if cmd.is_empty() && interactive => {
                        target = t;
                        (None, "")
                    }
                    Ok(t) => (Some(t), cmd),
                    Err(e) => {
                        out = e;
                        (None, "")
                    }
                }
            }
            None => (Some(target), line),
        };
        match dest {
            Some(Target::Worker(pid)) if !cmd.is_empty() => out = forward(&shared, pid, level, cmd).await,
            Some(Target::Master) => {
                for c in cmd.split(';').map(str::trim).filter(|c| !c.is_empty()) {
                    match master_command(&shared, c, &mut level, &mut interactive).await {
                        Some(text) => out.push_str(&text),
                        None => {
                            quit = true;
                            break;
                        }
                    }
                }
            }
            _ => {}
        }
        // Without `prompt`, one line is one exchange.
        let quit = quit || !interactive;
        if interactive && !quit {
            let failed = shared.state.lock().unwrap_or_else(|e| e.into_inner()).last_failed;
            let prompt = match target {
                Target::Master if failed => "master[ReloadFailed]> ".to_string(),
                Target::Master => "master> ".to_string(),
                Target::Worker(pid) => format!("{pid}> "),
            };
            out.push_str(&prompt);
        }
        if w.write_all(out.as_bytes()).await.is_err() || quit {
            let _ = w.shutdown().await;
            return;
        }
    }
}

/// `@1`, `@!<pid>`, `@master` or `@`.
fn resolve(shared: &CliShared, who: &str) -> Result<Target, String> {
    if who.is_empty() || who == "master" {
        return Ok(Target::Master);
    }
    let st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let found = match who.strip_prefix('!') {
        Some(pid) => pid.parse::<i32>().ok().and_then(|pid| st.procs.iter().find(|p| p.pid == pid)),
        // Relative numbers name current workers only (one: sluiced runs one worker process).
        None => who.parse::<usize>().ok().filter(|&n| n >= 1).and_then(|n| st.procs.iter().filter(|p| p.current).nth(n - 1)),
    };
    found.map(|p| Target::Worker(p.pid)).ok_or_else(|| format!("Can't find the target PID matching the prefix '@{who}'\n"))
}

/// Runs one master command; `None` is `quit`.
async fn master_command(shared: &CliShared, cmd: &str, level: &mut StatsLevel, interactive: &mut bool) -> Option<String> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    Some(match words.as_slice() {
        ["quit"] => return None,
        ["prompt"] => {
            *interactive = !*interactive;
            String::new()
        }
        ["help", ..] => HELP.to_string(),
        ["show", "proc"] => show_proc(shared),
        ["show", "version"] => format!("{}\n", crate::build::VERSION),
        ["show", "cli", "level"] => format!("{}\n", level_name(*level)),
        ["operator"] => {
            *level = (*level).min(StatsLevel::Operator);
            String::new()
        }
        ["user"] => {
            *level = StatsLevel::User;
            String::new()
        }
        ["reload"] if *level < StatsLevel::Admin => "Permission denied\n\n".to_string(),
        ["reload"] => {
            let (tx, rx) = oneshot::channel();
            if shared.requests.send(Request::Reload(tx)).is_err() {
                return Some("Success=0\n--\nthe master is stopping\n\n".into());
            }
            match rx.await {
                Ok(true) => "Success=1\n--\n\n".to_string(),
                _ => "Success=0\n--\nthe new worker exited before it was ready: its messages are on the master's standard error\n\n".to_string(),
            }
        }
        _ => format!("Unknown command: '{cmd}'\n{HELP}\n"),
    })
}

fn level_name(l: StatsLevel) -> &'static str {
    match l {
        StatsLevel::User => "user",
        StatsLevel::Operator => "operator",
        StatsLevel::Admin => "admin",
    }
}

fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}d{:02}h{:02}m{:02}s", s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60)
}

/// `show proc`, in HAProxy's columns.
fn show_proc(shared: &CliShared) -> String {
    let st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let v = crate::build::VERSION;
    let mut s = format!("{:<15} {:<15} {:<15} {:<15} {:<15}\n", "#<PID>", "<type>", "<reloads>", "<uptime>", "<version>");
    let row = |pid: u32, kind: &str, reloads: String, up: Duration| format!("{:<15} {:<15} {:<15} {:<15} {v}\n", pid, kind, reloads, uptime(up));
    s.push_str(&row(std::process::id(), "master", format!("{} [failed: {}]", st.reloads, st.failed), shared.started.elapsed()));
    s.push_str("# workers\n");
    for p in st.procs.iter().filter(|p| p.current) {
        s.push_str(&row(p.pid as u32, "worker", p.reloads.to_string(), p.started.elapsed()));
    }
    if st.procs.iter().any(|p| !p.current) {
        s.push_str("# old workers\n");
        for p in st.procs.iter().filter(|p| !p.current) {
            s.push_str(&row(p.pid as u32, "worker", p.reloads.to_string(), p.started.elapsed()));
        }
    }
    s.push_str("# programs\n\n");
    s
}

/// Passes one runtime API connection to worker `pid` and relays what it answers to `cmd`.
async fn forward(shared: &CliShared, pid: i32, level: StatsLevel, cmd: &str) -> String {
    let channel = {
        let st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        match st.procs.iter().find(|p| p.pid == pid) {
            Some(p) => p.channel.clone(),
            None => return format!("Can't find the target PID matching the prefix '@!{pid}'\n"),
        }
    };
    let (ours, theirs) = match StdUnixStream::pair() {
        Ok(p) => p,
        Err(e) => return format!("cannot reach worker {pid}: {e}\n"),
    };
    let lvl = [level as u8];
    let sent = nix::sys::socket::sendmsg::<()>(
        channel.as_raw_fd(),
        &[IoSlice::new(&lvl)],
        &[nix::sys::socket::ControlMessage::ScmRights(&[theirs.as_raw_fd()])],
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        None,
    );
    drop(theirs);
    if let Err(e) = sent {
        return format!("cannot reach worker {pid}: {e}\n");
    }
    let relay = async {
        ours.set_nonblocking(true)?;
        let mut s = tokio::net::UnixStream::from_std(ours)?;
        s.write_all(format!("{cmd}\n").as_bytes()).await?;
        s.shutdown().await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    match tokio::time::timeout(FORWARD_TIMEOUT, relay).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out).into_owned(),
        Ok(Err(e)) => format!("worker {pid}: {e}\n"),
        Err(_) => format!("worker {pid} did not answer within {}s\n", FORWARD_TIMEOUT.as_secs()),
    }
}

/// The worker's side of the channel: each connection the master passes is served at the level
/// the master CLI session had. Returns when the master closes the channel.
pub async fn serve_channel(channel: OwnedFd, mut serve: impl FnMut(StdUnixStream, StatsLevel)) {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::RawFd;
    let std = StdUnixStream::from(channel);
    if std.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(chan) = tokio::net::UnixStream::from_std(std) else { return };
    loop {
        if chan.readable().await.is_err() {
            return;
        }
        let got = chan.try_io(tokio::io::Interest::READABLE, || {
            let mut byte = [0u8; 1];
            let mut iov = [std::io::IoSliceMut::new(&mut byte)];
            let mut space = nix::cmsg_space!([RawFd; 4]);
            let msg = recvmsg::<()>(chan.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).map_err(std::io::Error::from)?;
            let mut fds = Vec::new();
            for c in msg.cmsgs().map_err(std::io::Error::from)? {
                if let ControlMessageOwned::ScmRights(v) = c {
                    fds.extend(v);
                }
            }
            let n = msg.bytes;
            Ok((n, byte[0], fds))
        });
        match got {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
            Ok((0, _, fds)) if fds.is_empty() => return,
            Ok((_, lvl, fds)) => {
                let level = match lvl {
                    x if x == StatsLevel::Admin as u8 => StatsLevel::Admin,
                    x if x == StatsLevel::Operator as u8 => StatsLevel::Operator,
                    _ => StatsLevel::User,
                };
                for fd in fds {
                    serve(StdUnixStream::from(super::sys::take_received_fd(fd)), level);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_proc_uptime_is_days_then_zero_padded_hours_minutes_seconds() {
        assert_eq!(uptime(Duration::from_secs(93_784)), "1d02h03m04s");
        assert_eq!(uptime(Duration::from_secs(59)), "0d00h00m59s");
    }

    #[test]
    fn master_cli_addresses_take_haproxy_s_comma_separated_options() {
        let dir = std::env::temp_dir().join(format!("sluiced-master-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.sock");
        let s = bind_cli(&format!("{},mode,600,level,user", path.display())).unwrap();
        assert_eq!(s.level, StatsLevel::User);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let tcp = bind_cli("ipv4@127.0.0.1:0").unwrap();
        assert!(matches!(tcp.listener, Listener::Tcp(_)));
        assert!(bind_cli(&format!("{},level", path.display())).unwrap_err().contains("'level' expects a value"));
        assert!(bind_cli(&format!("{},colour,red", path.display())).unwrap_err().contains("unknown option 'colour'"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
