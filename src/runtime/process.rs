//! The life of the process once the configuration is valid: compile, bind, detach (`-D`), write
//! the pid file, tell old processes to go (`-sf`/`-st`), give up root (`super::identity`), run
//! the workers, and stop on signals: SIGINT/SIGTERM stop at once, SIGUSR1 stops accepting and lets
//! sessions finish (bounded by `hard-stop-after`); either way the listeners leave their ports at
//! once (`super::listener::leave_port`).

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::worker::{self, Stop};
use crate::config::diag::{Diags, Severity, format_line};
use crate::config::model::Config;
use crate::route::RouteTable;

static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once the process was told to stop (the `stopping` fetch).
pub fn stopping() -> bool {
    STOPPING.load(std::sync::atomic::Ordering::Relaxed)
}

/// What the command line adds to the configuration.
#[derive(Debug, Default)]
pub struct RunOpts {
    pub daemon: bool,
    pub pidfile: Option<std::path::PathBuf>,
    pub quiet: bool,
    pub soft_finish: Vec<u32>,
    pub terminate: Vec<u32>,
    pub mem_limit_mb: Option<u64>,
    /// The I/O backend asked for: `--io-backend`, else the `io-backend` keyword.
    pub io_backend: super::config::IoBackend,
    /// Set when this process is a worker under a master (`super::master`): it neither detaches
    /// nor writes a pid file, and tells the master when it is ready.
    pub master: Option<super::master::WorkerLink>,
    /// Listening sockets taken from the old process with `-x` (`super::handover`), by key.
    pub inherited: std::collections::HashMap<String, std::os::fd::OwnedFd>,
}

fn alert(msg: &str) {
    eprint!("{}", format_line(Severity::Alert, std::process::id(), msg));
}

/// Descriptors a proxied connection holds: its client socket and its server socket (a tunnel that
/// splices holds a pipe too, so this is a floor), and a margin for listeners, logs, checks and the
/// stats socket.
const FDS_PER_CONN: u64 = 2;
const FDS_SPARE: u64 = 100;

/// Sets the process's descriptor limit before anything is opened, as HAProxy does: to `ulimit-n`
/// when it is given, else the soft limit up to the hard one (the soft limit is often 1,024, about
/// 500 proxied connections) and, when the global `maxconn` needs more, to that (raising the hard
/// limit needs `CAP_SYS_RESOURCE`). `Err` is a limit that could not be set; the caller makes it
/// fatal under `strict-limits` (the default) and a warning otherwise, and the process then runs
/// with the most it could have. `Ok(Some(_))` is a warning: `ulimit-n` set below what the global
/// `maxconn` needs.
pub fn raise_fd_limit(ulimit_n: Option<u32>, maxconn: Option<u32>) -> Result<Option<String>, String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("cannot read the descriptor limit: {e}"))?;
    let need = maxconn.map(|m| u64::from(m) * FDS_PER_CONN + FDS_SPARE);
    let (want, why) = match (ulimit_n, need) {
        (Some(n), _) => (u64::from(n), format!("ulimit-n {n}")),
        (None, Some(need)) if need > hard => (need, format!("maxconn {}", maxconn.unwrap_or(0))),
        (None, _) => (hard, String::new()),
    };
    let short = match (ulimit_n, need) {
        (Some(n), Some(need)) if u64::from(n) < need => Some(format!(
            "ulimit-n {n} is too low for maxconn {}, which needs about {need} descriptors: connections past it wait in the backlog",
            maxconn.unwrap_or(0)
        )),
        _ => None,
    };
    if want == soft {
        return Ok(short);
    }
    let set = if want <= hard { setrlimit(Resource::RLIMIT_NOFILE, want, hard) } else { setrlimit(Resource::RLIMIT_NOFILE, want, want) };
    if let Err(e) = set {
        // Run with the most there is: the hard limit.
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        let why = if why.is_empty() { String::new() } else { format!(" for {why}") };
        return Err(format!(
            "cannot raise the descriptor limit to {want}{why}: {e}; the hard limit is {hard}. Raise it ('ulimit -Hn', systemd's LimitNOFILE) or lower maxconn"
        ));
    }
    Ok(short)
}

/// Runs the daemon; returns the exit status.
pub fn run(cfg: &Config, mut opts: RunOpts) -> i32 {
    let mut diags = Diags::default();
    let rt = match RouteTable::compile_with(cfg, &mut diags) {
        Ok(rt) => rt,
        Err(e) => {
            alert(&format!("config : {e}"));
            return 1;
        }
    };
    if !opts.quiet {
        eprint!("{}", diags.render(std::process::id()));
    }
    crate::log::QUIET.store(opts.quiet || opts.daemon, std::sync::atomic::Ordering::Relaxed);
    if rt.frontends.is_empty() {
        alert("config : no frontend or listen section with a 'bind' line: nothing to run.");
        return 1;
    }
    // `auto` without a usable ring says why, once, and runs on epoll.
    match super::uring::select(opts.io_backend) {
        Ok(Some(why)) if !opts.quiet => eprint!("{}", format_line(Severity::Notice, std::process::id(), &why)),
        Ok(_) => {}
        Err(e) => {
            alert(&e);
            return 1;
        }
    }
    match raise_fd_limit(cfg.global.ulimit_n, cfg.global.maxconn) {
        Ok(None) => {}
        Ok(Some(warning)) if !opts.quiet => eprint!("{}", format_line(Severity::Warning, std::process::id(), &warning)),
        Ok(Some(_)) => {}
        Err(e) if cfg.global.strict_limits.unwrap_or(true) => {
            alert(&format!("{e} ('no strict-limits' would start anyway)"));
            return 1;
        }
        Err(e) if !opts.quiet => eprint!("{}", format_line(Severity::Warning, std::process::id(), &e)),
        Err(_) => {}
    }
    let tune = &cfg.global.runtime.tune;
    if let Some(why) = super::uring::set_send_zero_copy(tune.uring_send_zc(), tune.uring_send_zc_min())
        && !opts.quiet
    {
        eprint!("{}", format_line(Severity::Notice, std::process::id(), &why));
    }
    super::sockopt::set_socket_buffers(super::sockopt::SocketBuffers {
        rcv_client: tune.rcvbuf_client,
        snd_client: tune.sndbuf_client,
        rcv_server: tune.rcvbuf_server,
        snd_server: tune.sndbuf_server,
    });
    let nworkers = crate::runtime::config::thread_count(&cfg.global.runtime) as usize;
    let backlog_of = |fi: usize| cfg.proxies.iter().filter(|p| p.kind.has_frontend() && !p.disabled).nth(fi).and_then(|p| p.backlog.or(p.maxconn));
    let mut inherited = match opts.master.as_mut() {
        Some(m) => std::mem::take(&mut m.listeners),
        None => std::mem::take(&mut opts.inherited),
    };
    let mut listeners = match super::listener::bind_all(&rt, nworkers, backlog_of, &mut inherited) {
        Ok(l) => l,
        Err(e) => {
            alert(&format!("Starting proxies: {e}"));
            return 1;
        }
    };
    // Sockets the previous worker had and this configuration no longer binds close here; the
    // previous worker's own copies go when it stops.
    drop(inherited);
    if let Some(m) = &opts.master {
        // The master keeps these for the next worker; they are shared with it from then on, so
        // this process never takes them off the port (the next worker accepts from them), it
        // only stops accepting (`worker::AcceptLoop::left`).
        let keyed: Vec<(&str, std::os::fd::BorrowedFd<'_>)> = super::listener::keyed(&listeners).collect();
        if let Err(e) = m.report(&keyed) {
            alert(&e);
            return 1;
        }
        for l in listeners.iter_mut().flatten() {
            if l.key.is_some() {
                l.owned = false;
            }
        }
    }
    // `expose-fd listeners`: a copy of each TCP listener for the next process's `-x`.
    if cfg.global.stats.sockets.iter().any(|s| s.expose_fd_listeners) {
        super::handover::expose(super::listener::keyed(&listeners).filter_map(|(k, fd)| fd.try_clone_to_owned().ok().map(|fd| (k.to_string(), fd))).collect());
    }
    let leave = super::listener::leave_handles(&listeners);
    let stats_sockets = match crate::control::socket::bind_all(&cfg.global.stats) {
        Ok(s) => s,
        Err(e) => {
            alert(&format!("Starting proxies: {e}"));
            return 1;
        }
    };
    if let Some(mb) = opts.mem_limit_mb {
        let bytes = mb.saturating_mul(1024 * 1024);
        if let Err(e) = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_AS, bytes, bytes) {
            alert(&format!("-m {mb}: cannot limit memory: {e}"));
            return 1;
        }
    }
    let under_master = opts.master.is_some();
    let pidfile = opts.pidfile.clone().or_else(|| rt.process.pidfile.clone().map(std::path::PathBuf::from)).filter(|_| !under_master);
    if !under_master && (opts.daemon || rt.process.daemon) {
        // Listeners are bound before detaching, so a bind error is still seen by the caller.
        if let Err(e) = super::sys::daemonize(pidfile.as_deref()) {
            alert(&format!("cannot go into the background: {e}"));
            return 1;
        }
    } else if let Some(p) = &pidfile
        && let Err(e) = std::fs::write(p, format!("{}\n", std::process::id()))
    {
        alert(&format!("cannot write pid file '{}': {e}", p.display()));
        return 1;
    }
    for (pids, sig) in [(&opts.soft_finish, nix::sys::signal::Signal::SIGUSR1), (&opts.terminate, nix::sys::signal::Signal::SIGTERM)] {
        for &pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    }
    // Root is given up here: everything is bound, and no thread that serves traffic runs yet.
    match super::identity::drop_privileges(&super::identity::Plan::from_config(cfg)) {
        Ok(dropped) => {
            if !opts.quiet {
                for w in &dropped.warnings {
                    eprint!("{}", format_line(Severity::Warning, std::process::id(), w));
                }
            }
            // Root may make a ring where the new user may not (`kernel.io_uring_disabled` 1).
            if dropped.switched_user && super::uring::selected() {
                match super::uring::select(opts.io_backend) {
                    Ok(Some(why)) if !opts.quiet => eprint!("{}", format_line(Severity::Notice, std::process::id(), &why)),
                    Ok(_) => {}
                    Err(e) => {
                        alert(&format!("{e} (after switching user)"));
                        return 1;
                    }
                }
            }
        }
        Err(e) => {
            alert(&e);
            return 1;
        }
    }
    let hard_stop_after = rt.process.hard_stop_after;
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    let rt = Arc::new(rt);
    if let Err(e) = crate::check::engine::spawn(cfg, &rt) {
        alert(&format!("cannot start the health check thread: {e}"));
        return 1;
    }
    if let Err(e) = crate::dns::spawn(cfg, &rt) {
        alert(&format!("cannot start the resolvers thread: {e}"));
        return 1;
    }
    if let Err(e) = crate::peers::spawn(&rt.peers, &rt.tables) {
        alert(&format!("cannot start the peers: {e}"));
        return 1;
    }
    let channel = opts.master.as_mut().and_then(|m| m.channel.try_clone().ok());
    if let Err(e) = crate::control::socket::spawn(rt.clone(), &cfg.global.stats, stats_sockets, channel) {
        alert(&format!("cannot start the stats socket thread: {e}"));
        return 1;
    }
    let handles = match worker::spawn(rt, listeners, stop_rx) {
        Ok(h) => h,
        Err(e) => {
            alert(&format!("cannot start worker threads: {e}"));
            return 1;
        }
    };
    if let Some(m) = opts.master.as_mut() {
        m.ready();
    }
    let main_rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            alert(&format!("cannot start the control runtime: {e}"));
            return 1;
        }
    };
    let status = main_rt.block_on(control(stop_tx, handles, hard_stop_after, leave));
    main_rt.shutdown_timeout(std::time::Duration::from_millis(100));
    status
}

/// How long after a soft stop the main thread takes the listeners off their ports itself, when a
/// worker has not (each does at once, unless it is stuck in a long computation).
const LEAVE_FALLBACK: std::time::Duration = std::time::Duration::from_millis(500);

/// The control loop of the main thread: signals in, stop requests out, until every worker ended.
async fn control(
    stop_tx: watch::Sender<Stop>,
    handles: Vec<std::thread::JoinHandle<()>>,
    hard_stop_after: Option<std::time::Duration>,
    leave: Vec<std::os::fd::OwnedFd>,
) -> i32 {
    // Told to stop, the workers are told first, then the listeners leave their ports (the
    // workers' accepts in flight then fail, and they know why). On a hard stop that is at once;
    // on a soft stop each worker drains and leaves its own listeners first (`worker::AcceptLoop`),
    // and the main thread's copies follow after `LEAVE_FALLBACK`, for a worker that is stuck.
    let mut leave = Some(leave);
    let mut leave_at: Option<tokio::time::Instant> = None;
    let stop = |tx: &watch::Sender<Stop>, how: Stop, leave: &mut Option<Vec<std::os::fd::OwnedFd>>, leave_at: &mut Option<tokio::time::Instant>| {
        STOPPING.store(true, std::sync::atomic::Ordering::Relaxed);
        crate::peers::stop();
        let _ = tx.send(how);
        if how == Stop::Hard {
            // Sockets given to a new process (`-x`) are its own now: closed here, not shut down.
            if let Some(l) = leave.take().filter(|_| !super::handover::given()) {
                super::listener::leave_port(l);
            }
        } else {
            leave_at.get_or_insert(tokio::time::Instant::now() + LEAVE_FALLBACK);
        }
    };
    let (Ok(mut int), Ok(mut term), Ok(mut usr1), Ok(mut hup), Ok(mut usr2)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined2()),
    ) else {
        alert("cannot install signal handlers");
        stop(&stop_tx, Stop::Hard, &mut leave, &mut leave_at);
        return 1;
    };
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let total = handles.len();
    for h in handles {
        let tx = done_tx.clone();
        std::thread::spawn(move || {
            // A worker that panicked is a failed process, not a clean stop.
            let _ = tx.send(h.join().is_ok());
        });
    }
    let mut ended = 0;
    let mut failed = false;
    let mut hard_deadline: Option<tokio::time::Instant> = None;
    // A soft stop (not a hard one first): the stick tables are handed over before the exit.
    let mut soft = false;
    let mut hard = false;
    loop {
        let hard_timer = async {
            match hard_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let leave_timer = async {
            match (leave_at, leave.is_some()) {
                (Some(d), true) => tokio::time::sleep_until(d).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = int.recv() => { (soft, hard) = (false, true); stop(&stop_tx, Stop::Hard, &mut leave, &mut leave_at) }
            _ = term.recv() => { (soft, hard) = (false, true); stop(&stop_tx, Stop::Hard, &mut leave, &mut leave_at) }
            _ = usr1.recv() => {
                soft = !hard;
                stop(&stop_tx, Stop::Soft, &mut leave, &mut leave_at);
                if let Some(d) = hard_stop_after {
                    hard_deadline.get_or_insert(tokio::time::Instant::now() + d);
                }
            }
            // A reload is the master's business (or a new process with `-sf`): a worker, or a
            // process without a master, ignores these as HAProxy's workers do.
            _ = hup.recv() => {}
            _ = usr2.recv() => {}
            _ = hard_timer => { let _ = stop_tx.send(Stop::Hard); hard_deadline = None; }
            _ = leave_timer => if let Some(l) = leave.take().filter(|_| !super::handover::given()) { super::listener::leave_port(l) },
            r = done_rx.recv() => {
                ended += 1;
                if r == Some(false) {
                    alert("a worker thread failed; stopping");
                    stop(&stop_tx, Stop::Hard, &mut leave, &mut leave_at);
                    failed = true;
                }
                if ended == total || r.is_none() {
                    // A soft stop hands the replicated stick tables to the next process first.
                    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(4);
                    while soft && !failed && hard_deadline.is_none_or(|d| d > tokio::time::Instant::now()) && !crate::peers::handed_over() && tokio::time::Instant::now() < until {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    return i32::from(failed);
                }
            }
        }
    }
}
