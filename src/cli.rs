//! The command line HAProxy users type: `-f`, `-c`, `-cc`, `-v`, `-vv`, `-dW`, `-sf`, ...
//!
//! Parsed by hand rather than with clap: HAProxy's flags are multi-letter single-dash words (`-dW`,
//! `-cc`, `-sf <pid>...`, `-vv`) and unknown `-d*` flags must be accepted, which clap cannot express.

use std::path::PathBuf;

use crate::build;
use crate::config::{
    self,
    diag::{Diags, Severity, format_line},
    lex::ProcessEnv,
};

/// What the command line asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cli {
    pub files: Vec<PathBuf>,
    /// `-c`: check the configuration and exit.
    pub check: bool,
    /// `-cc <expr>`: evaluate a condition and exit 0 (true) or 1 (false).
    pub cond: Option<String>,
    /// `-d`: debug, foreground.
    pub debug: bool,
    /// `-D`: daemon.
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    pub quiet: bool,
    pub verbose: bool,
    /// `-v` (1) or `-vv` (2).
    pub version: u8,
    /// `-dW`: warnings are fatal.
    pub zero_warning: bool,
    /// `-L <name>`.
    pub local_peer: Option<String>,
    /// `-m <MB>`: memory limit.
    pub mem_limit_mb: Option<u64>,
    /// `-sf <pid>...`: ask old processes to finish.
    pub soft_finish: Vec<u32>,
    /// `-st <pid>...`: terminate old processes.
    pub terminate: Vec<u32>,
    /// `-x <socket>`: fetch listeners from an old process.
    pub fetch_listeners: Option<PathBuf>,
    /// `-W`/`-Ws`: master-worker mode.
    pub master_worker: bool,
    /// `-Ws`: master-worker mode that tells systemd (`Type=notify`).
    pub systemd: bool,
    /// `-S <addr>[,<option>,<value>...]`: the master CLI's sockets.
    pub master_sockets: Vec<String>,
    pub help: bool,
    /// `--io-backend auto|uring|epoll` (sluiced's own flag): overrides the `io-backend` keyword.
    pub io_backend: Option<crate::runtime::config::IoBackend>,
}

pub const USAGE: &str = "Usage : sluiced [-f <cfgfile|cfgdir>]* [ -vdVD ] [ -n <maxconn> ] [ -N <maxpconn> ]
        [ -p <pidfile> ] [ -m <max megs> ] [ -C <dir> ] [-- <cfgfile>*]
        -v displays version ; -vv shows known build options.
        -d enters debug mode ; -db only disables background mode.
        -dM[<byte>,help,...] debug memory (default: poison with <byte>/0x50)
        -V enters verbose mode (disables quiet mode)
        -D goes daemon ; -C changes to <dir> before loading files.
        -W master-worker mode ; -Ws with systemd notifications.
        -S <bind>[,<bind options>...] new master CLI
        -q quiet mode : don't display messages
        -c check mode : only check config files and exit
        -cc check condition : evaluate a condition and exit
        -n sets the maximum total # of connections (uses ulimit -n)
        -m limits the usable amount of memory (in MB)
        -N sets the default, per-proxy maximum # of connections
        -L set local peer name (default to hostname)
        -p writes pids of all children to this file
        -dW fails if any warning is emitted
        -sf/-st [pid ]* finishes/terminates old pids.
        -x <unix_socket> get listening sockets from a unix socket
        --io-backend auto|uring|epoll overrides the 'io-backend' keyword (sluiced)
";

fn pids(args: &[String], i: &mut usize) -> Result<Vec<u32>, String> {
    let mut v = Vec::new();
    while let Some(a) = args.get(*i + 1) {
        match a.parse::<u32>() {
            Ok(p) => {
                v.push(p);
                *i += 1;
            }
            Err(_) if a.starts_with('-') => break,
            Err(_) => return Err(format!("'{a}' is not a process id")),
        }
    }
    Ok(v)
}

/// The command line of a worker started by the master: the master's own, without what only the
/// master acts on (`-W`, `-Ws`, `-D`, `-p`, `-S`, `-sf`, `-st`, `-x`, and `-C`, whose directory
/// the worker inherits).
pub fn worker_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--" => {
                out.extend(args[i..].iter().cloned());
                break;
            }
            "-W" | "-Ws" | "-D" => {}
            "-p" | "-S" | "-x" | "-C" => i += 1,
            "-sf" | "-st" => {
                while args.get(i + 1).is_some_and(|p| p.parse::<u32>().is_ok()) {
                    i += 1;
                }
            }
            "-f" | "-cc" | "-L" | "-m" | "-n" | "-N" | "--io-backend" => {
                out.extend(args[i..(i + 2).min(args.len())].iter().cloned());
                i += 1;
            }
            _ => out.push(args[i].clone()),
        }
        i += 1;
    }
    out
}

/// Parses arguments (without the program name).
pub fn parse_args(args: &[String]) -> Result<Cli, String> {
    let mut cli = Cli::default();
    let mut i = 0;
    let value = |i: &mut usize, flag: &str| -> Result<String, String> {
        *i += 1;
        args.get(*i).cloned().ok_or_else(|| format!("option '{flag}' expects an argument"))
    };
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--" => {
                cli.files.extend(args[i + 1..].iter().map(PathBuf::from));
                break;
            }
            "-f" => cli.files.push(value(&mut i, a)?.into()),
            "-c" => cli.check = true,
            "-cc" => cli.cond = Some(value(&mut i, a)?),
            "-d" | "-db" => cli.debug = true,
            "-D" => cli.daemon = true,
            "-p" => cli.pidfile = Some(value(&mut i, a)?.into()),
            "-q" => cli.quiet = true,
            "-V" => cli.verbose = true,
            "-v" => cli.version = cli.version.max(1),
            "-vv" => cli.version = 2,
            "-dW" => cli.zero_warning = true,
            "-L" => cli.local_peer = Some(value(&mut i, a)?),
            "-m" => {
                let v = value(&mut i, a)?;
                cli.mem_limit_mb = Some(v.parse().map_err(|_| format!("'-m' expects a number of megabytes, got '{v}'"))?);
            }
            "-n" | "-N" => {
                let v = value(&mut i, a)?;
                v.parse::<u32>().map_err(|_| format!("'{a}' expects a number, got '{v}'"))?;
            }
            "-C" => {
                let dir = value(&mut i, a)?;
                std::env::set_current_dir(&dir).map_err(|e| format!("cannot change directory to '{dir}': {e}"))?;
            }
            "-sf" => cli.soft_finish.extend(pids(args, &mut i)?),
            "-st" => cli.terminate.extend(pids(args, &mut i)?),
            "-x" => cli.fetch_listeners = Some(value(&mut i, a)?.into()),
            "-W" => cli.master_worker = true,
            "-Ws" => {
                cli.master_worker = true;
                cli.systemd = true;
            }
            "-S" => cli.master_sockets.push(value(&mut i, a)?),
            "-h" | "--help" => cli.help = true,
            "--io-backend" => cli.io_backend = Some(io_backend(&value(&mut i, a)?)?),
            // HAProxy's debug and tuning switches (-dM, -dI, -dS, -de, -dp, -dr, -dV, -dK...): accepted, no effect.
            d if d.starts_with("-d") => {}
            other => return Err(format!("unknown option '{other}'")),
        }
        i += 1;
    }
    Ok(cli)
}

/// The value of `--io-backend`.
fn io_backend(v: &str) -> Result<crate::runtime::config::IoBackend, String> {
    use crate::runtime::config::IoBackend;
    match v {
        "auto" => Ok(IoBackend::Auto),
        "uring" => Ok(IoBackend::Uring),
        "epoll" => Ok(IoBackend::Epoll),
        other => Err(format!("'--io-backend' expects 'auto', 'uring' or 'epoll', got '{other}'")),
    }
}

/// `-vv`'s polling systems, in HAProxy's layout; `wanted` is the `--io-backend` override.
fn pollers_text(wanted: crate::runtime::config::IoBackend) -> String {
    use crate::runtime::config::IoBackend;
    let probe = crate::runtime::uring::probe();
    let uring_ok = probe.is_ok();
    let mut s = String::from("Available polling systems :\n");
    s.push_str(&format!("   io_uring : pref=400,  test result {}\n", if uring_ok { "OK" } else { "FAILED" }));
    s.push_str("      epoll : pref=300,  test result OK\n");
    let uses = match wanted {
        IoBackend::Epoll => "epoll".to_owned(),
        IoBackend::Uring if uring_ok => "io_uring".to_owned(),
        IoBackend::Uring => "none (io_uring was asked for and is unavailable)".to_owned(),
        IoBackend::Auto if uring_ok => "io_uring".to_owned(),
        IoBackend::Auto => "epoll".to_owned(),
    };
    s.push_str(&format!("Total: 2 ({} usable), will use {uses}.\n", if uring_ok { 2 } else { 1 }));
    if let Err(e) = probe {
        s.push_str(&format!("io_uring unavailable: {e}\n"));
    }
    s
}

/// `-v` and `-vv` output.
pub fn version_text(level: u8) -> String {
    version_text_for(level, crate::runtime::config::IoBackend::Auto)
}

/// `-v` and `-vv` output when the command line chose the I/O backend `wanted`.
pub fn version_text_for(level: u8, wanted: crate::runtime::config::IoBackend) -> String {
    let mut s = format!(
        "sluiced version {v} - HAProxy-compatible load balancer\nHAProxy version {h}.0-sluiced-{v} - behaviour of HAProxy {h} as implemented by sluiced\n",
        v = build::VERSION,
        h = build::HAPROXY_COMPAT_VERSION
    );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    s.push_str(&format!("Running on: Linux {} {}\n", kernel.trim(), std::env::consts::ARCH));
    if level >= 2 {
        s.push_str("\nBuild options :\n  TARGET  = linux\n  RUST    = rustc (edition 2024)\n\n");
        s.push_str(&build::feature_line());
        s.push_str("\n\nDefault settings :\n  bufsize = 16384, maxrewrite = 1024, maxpollevents = 200\n\n");
        s.push_str(&format!("HAProxy compatibility level : {}\n\n", build::HAPROXY_COMPAT_VERSION));
        s.push_str(&pollers_text(wanted));
        s.push('\n');
        s.push_str(&format!("Available services : {}\n", if build::SERVICES.is_empty() { "none".to_string() } else { build::SERVICES.join(" ") }));
        s.push_str("\nAvailable filters : none\n");
    }
    s
}

/// Runs the command line; returns the exit status.
pub fn run(args: &[String]) -> i32 {
    crate::control::prometheus::mark_start();
    let pid = std::process::id();
    let cli = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}", format_line(Severity::Alert, pid, &e));
            eprint!("{USAGE}");
            return 1;
        }
    };
    if cli.help {
        print!("{USAGE}");
        return 0;
    }
    if cli.version > 0 {
        print!("{}", version_text_for(cli.version, cli.io_backend.unwrap_or_default()));
        return 0;
    }
    if let Some(expr) = &cli.cond {
        return match config::cond::eval(expr, &ProcessEnv) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprint!("{}", format_line(Severity::Alert, pid, &format!("failed to evaluate condition '{expr}': {e}")));
                2
            }
        };
    }
    if cli.files.is_empty() {
        eprint!("{}", format_line(Severity::Alert, pid, "No configuration file specified (use -f <file|dir>)."));
        eprint!("{USAGE}");
        return 1;
    }
    let mut diags = Diags::default();
    let files = config::expand_paths(&cli.files, &mut diags);
    let loaded = if diags.has_alerts() { None } else { Some(config::load_files(&files, &ProcessEnv)) };
    if let Some(l) = &loaded {
        diags.extend(l.diags.clone());
    }
    let zero_warning = cli.zero_warning || loaded.as_ref().and_then(|l| l.config.as_ref()).is_some_and(|c| c.global.zero_warning);
    // `quiet` in `global` is `-q`.
    let quiet = cli.quiet || loaded.as_ref().and_then(|l| l.config.as_ref()).is_some_and(|c| c.global.quiet);
    let fatal = config::is_fatal(&diags, zero_warning);
    let shown: Diags = Diags {
        items: diags.items.iter().filter(|d| !quiet || d.severity == Severity::Alert || (zero_warning && d.severity == Severity::Warning)).cloned().collect(),
    };
    eprint!("{}", shown.render(pid));
    if fatal {
        let why =
            if diags.has_alerts() { "Fatal errors found in configuration." } else { "Some warnings were found and 'zero-warning' is set. Please fix them." };
        eprint!("{}", format_line(Severity::Alert, pid, &format!("config : {why}")));
        return 1;
    }
    let mut cfg = loaded.and_then(|l| l.config).expect("no alert means a model");
    // `-L` names this node in peers sections, over `localpeer`.
    if let Some(l) = &cli.local_peer {
        cfg.global.localpeer = Some(l.clone());
    }
    // Building the routing table warns too (a rule set a mode does not run, a log target that
    // cannot be used): `-c` shows those warnings as the daemon would at start, and
    // `zero-warning` refuses them as it refuses the parser's.
    let mut compiled = Diags::default();
    if let Err(e) = crate::route::RouteTable::compile_with(&cfg, &mut compiled) {
        eprint!("{}", format_line(Severity::Alert, pid, &format!("config : {e}")));
        return 1;
    }
    if zero_warning && compiled.warnings().next().is_some() {
        eprint!("{}", compiled.render(pid));
        eprint!("{}", format_line(Severity::Alert, pid, "config : Some warnings were found and 'zero-warning' is set. Please fix them."));
        return 1;
    }
    if cli.check {
        if !quiet {
            eprint!("{}", compiled.render(pid));
        }
        if !quiet {
            println!("Configuration file is valid");
        }
        return 0;
    }
    let worker = match crate::runtime::master::worker_link() {
        Some(Ok(link)) => Some(link),
        Some(Err(e)) => {
            eprint!("{}", format_line(Severity::Alert, pid, &e));
            return 1;
        }
        None => None,
    };
    if worker.is_none() && (cli.master_worker || cfg.global.master_worker) {
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => {
                eprint!("{}", format_line(Severity::Alert, pid, &format!("master-worker: cannot find this program's path: {e}")));
                return 1;
            }
        };
        return crate::runtime::master::run(crate::runtime::master::MasterOpts {
            exe,
            worker_args: worker_args(args),
            systemd: cli.systemd,
            daemon: (cli.daemon || cfg.global.daemon) && !cli.debug,
            pidfile: cli.pidfile.clone().or_else(|| cfg.global.pidfile.clone().map(std::path::PathBuf::from)),
            sockets: cli.master_sockets.clone(),
            exit_on_failure: !cfg.global.master_worker_no_exit_on_failure,
            quiet,
        });
    }
    if !cli.master_sockets.is_empty() && worker.is_none() && !quiet {
        eprint!("{}", format_line(Severity::Warning, pid, "'-S' is only used in master-worker mode (-W or -Ws): no master CLI is opened."));
    }
    // `-x`: the old process's listening sockets. Without them the reload still works, binding
    // beside the old process, as HAProxy goes on when it cannot get them.
    let inherited = match (&cli.fetch_listeners, &worker) {
        (Some(path), None) => match crate::runtime::handover::fetch(path) {
            Ok(l) => l,
            Err(e) => {
                if !quiet {
                    eprint!("{}", format_line(Severity::Warning, pid, &format!("Failed to get the sockets from the old process: {e}; binding them anew.")));
                }
                Default::default()
            }
        },
        _ => Default::default(),
    };
    crate::runtime::process::run(
        &cfg,
        crate::runtime::process::RunOpts {
            // `-d` keeps the process in the foreground even when the configuration says `daemon`.
            daemon: cli.daemon && !cli.debug,
            pidfile: cli.pidfile.clone(),
            quiet,
            soft_finish: cli.soft_finish.clone(),
            terminate: cli.terminate.clone(),
            mem_limit_mb: cli.mem_limit_mb,
            io_backend: cli.io_backend.unwrap_or(cfg.global.runtime.io_backend),
            master: worker,
            inherited,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, String> {
        parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn haproxy_flags_parse() {
        let c = p(&["-f", "a.cfg", "-f", "dir", "-c", "-dW", "-q", "-L", "lb1", "-m", "512", "-p", "/run/x.pid"]).unwrap();
        assert_eq!(c.files, vec![PathBuf::from("a.cfg"), PathBuf::from("dir")]);
        assert!(c.check && c.zero_warning && c.quiet);
        assert_eq!(c.local_peer.as_deref(), Some("lb1"));
        assert_eq!(c.mem_limit_mb, Some(512));
        assert_eq!(p(&["-vv"]).unwrap().version, 2);
        assert_eq!(p(&["-v"]).unwrap().version, 1);
    }

    #[test]
    fn a_worker_gets_the_command_line_without_the_masters_own_flags() {
        let args: Vec<String> = [
            "-Ws",
            "-f",
            "/etc/a.cfg",
            "-p",
            "/run/x.pid",
            "-S",
            "/run/m.sock,level,admin",
            "-D",
            "-sf",
            "12",
            "34",
            "-q",
            "-C",
            "/etc",
            "-dW",
            "--io-backend",
            "epoll",
            "-f",
            "-b.cfg",
            "--",
            "c.cfg",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(worker_args(&args), ["-f", "/etc/a.cfg", "-q", "-dW", "--io-backend", "epoll", "-f", "-b.cfg", "--", "c.cfg"]);
        let c = p(&["-Ws", "-S", "/run/m.sock", "-f", "x"]).unwrap();
        assert!(c.master_worker && c.systemd);
        assert_eq!(c.master_sockets, ["/run/m.sock"]);
        assert!(!p(&["-W", "-f", "x"]).unwrap().systemd);
    }

    #[test]
    fn sf_and_st_take_every_following_pid() {
        let c = p(&["-f", "x", "-sf", "12", "34", "-st", "56", "-c"]).unwrap();
        assert_eq!(c.soft_finish, vec![12, 34]);
        assert_eq!(c.terminate, vec![56]);
        assert!(c.check);
    }

    #[test]
    fn unknown_debug_flags_are_ignored_other_unknown_flags_fail() {
        assert!(p(&["-dM", "-dI", "-dS", "-dKcmd"]).is_ok());
        assert!(p(&["-z"]).is_err());
        assert!(p(&["-f"]).is_err());
    }

    #[test]
    fn files_after_double_dash() {
        assert_eq!(p(&["--", "a.cfg", "b.cfg"]).unwrap().files.len(), 2);
    }

    #[test]
    fn io_backend_override_takes_one_of_three_names() {
        use crate::runtime::config::IoBackend;
        assert_eq!(p(&["--io-backend", "uring"]).unwrap().io_backend, Some(IoBackend::Uring));
        assert_eq!(p(&["--io-backend", "epoll", "--io-backend", "auto"]).unwrap().io_backend, Some(IoBackend::Auto));
        assert_eq!(p(&["-f", "a.cfg"]).unwrap().io_backend, None);
        assert!(p(&["--io-backend", "kqueue"]).unwrap_err().contains("'--io-backend' expects 'auto', 'uring' or 'epoll', got 'kqueue'"));
        assert!(p(&["--io-backend"]).is_err());
    }
}
