//! The descriptor limit at start, as HAProxy sets it: the soft limit (often 1,024, about 500
//! proxied connections) is raised to the hard one, `ulimit-n` sets it, a global `maxconn` that
//! needs more than can be had stops start-up under `strict-limits` (the default) and is a warning
//! under `no strict-limits`, and `ulimit-n` below what `maxconn` needs is a warning.

mod support;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// `(soft, hard)` descriptor limits of process `pid`, from `/proc/<pid>/limits`.
fn limits(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text.lines().find(|l| l.starts_with("Max open files")).expect("a 'Max open files' line");
    let n: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (n[0], n[1])
}

/// The test process's own hard limit: the most a child may raise its soft limit to.
fn own_hard() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap().1
}

/// A maxconn whose descriptors (two per connection) no process may have, not even root: more
/// than `fs.nr_open`, the kernel's ceiling for any descriptor limit.
fn impossible_maxconn() -> u64 {
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open").unwrap().trim().parse().unwrap();
    nr_open / 2 + 1
}

fn config(global: &str, port: u16) -> String {
    format!(
        "global\n  nbthread 1\n{global}\ndefaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  \
         http-request return status 200 content-type text/plain string ok\n"
    )
}

/// Sets the descriptor limits `soft`/`hard` in the command's child, between fork and exec.
fn with_limits(cmd: &mut Command, soft: u64, hard: u64) {
    // SAFETY: the hook runs in the child between fork and exec and only calls setrlimit, which is
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let l = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Starts sluiced with descriptor limits `soft`/`hard`.
fn start(global: &str, soft: u64, hard: u64) -> (Sluiced, u16) {
    let port = free_port();
    let d = Sluiced::start_with(&config(global, port), &[port], &[], |cmd: &mut Command| with_limits(cmd, soft, hard));
    (d, port)
}

fn serves(port: u16) {
    let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
}

/// Stops the daemon and returns what it wrote on stderr.
fn stop(mut d: Sluiced) -> String {
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(10));
    d.stderr()
}

#[test]
fn soft_descriptor_limit_is_raised_to_the_hard_one_at_start() {
    let hard = own_hard().min(65536);
    let (d, port) = start("", 256, hard);
    assert_eq!(limits(d.pid()), (hard, hard));
    serves(port);
}

#[test]
fn ulimit_n_sets_the_descriptor_limit_below_the_hard_one() {
    let hard = own_hard().min(65536);
    assert!(hard > 3000, "the test needs a hard limit above 3000, not {hard}");
    let (d, port) = start("  ulimit-n 3000", 256, hard);
    assert_eq!(limits(d.pid()), (3000, hard));
    serves(port);
}

#[test]
fn maxconn_needing_more_descriptors_than_can_be_had_stops_start_up_under_strict_limits() {
    let dir = temp_dir("fdstrict");
    let cfg = dir.join("sluiced.cfg");
    let port = free_port();
    std::fs::write(&cfg, config(&format!("  maxconn {}", impossible_maxconn()), port)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluiced"));
    cmd.args(["-d", "-f", cfg.to_str().unwrap()]).stdin(Stdio::null());
    with_limits(&mut cmd, 256, 1024);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("[ALERT]") && err.contains("cannot raise the descriptor limit") && err.contains("'no strict-limits'"), "{err}");
    assert!(!is_listening(port), "nothing was bound");
}

#[test]
fn no_strict_limits_starts_anyway_with_the_hard_limit_and_a_warning() {
    let global = format!("  maxconn {}\n  no strict-limits", impossible_maxconn());
    let (d, port) = start(&global, 256, 1024);
    assert_eq!(limits(d.pid()), (1024, 1024));
    serves(port);
    let err = stop(d);
    assert!(err.contains("[WARNING]") && err.contains("cannot raise the descriptor limit"), "{err}");
}

#[test]
fn ulimit_n_below_what_maxconn_needs_is_warned_about_and_the_daemon_still_starts() {
    let (d, port) = start("  maxconn 5000\n  ulimit-n 1000", 256, 1024);
    assert_eq!(limits(d.pid()), (1000, 1024));
    serves(port);
    let err = stop(d);
    assert!(err.contains("[WARNING]") && err.contains("ulimit-n 1000 is too low for maxconn 5000"), "{err}");
}

#[test]
fn descriptor_limit_enough_for_maxconn_starts_without_a_warning() {
    let (d, port) = start("  maxconn 400", 256, 1024);
    assert_eq!(limits(d.pid()), (1024, 1024));
    serves(port);
    let err = stop(d);
    assert!(!err.contains("descriptor"), "{err}");
}

#[test]
fn listener_out_of_descriptors_pauses_with_one_alert_and_serves_again_once_they_are_freed() {
    let hard = own_hard();
    // 64 descriptors: the daemon holds about 20 of them at start, and each idle client one more.
    let (d, port) = start("  ulimit-n 64", hard, hard);
    assert_eq!(limits(d.pid()).0, 64);
    // More clients than there are descriptors: the kernel completes their handshakes (the
    // backlog), and the daemon's accepts run out.
    let clients: Vec<std::net::TcpStream> = (0..100).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(open_fds(d.pid()) >= 60, "the daemon held {} descriptors: it never ran out", open_fds(d.pid()));
    drop(clients);
    // Freed: the paused listener takes connections again (within its 100 ms pause).
    serves(port);
    serves(port);
    let err = stop(d);
    let alerts: Vec<&str> = err.lines().filter(|l| l.contains("reached process FD limit")).collect();
    assert_eq!(alerts.len(), 1, "one alert in the first ten seconds, however many pauses:\n{err}");
    assert!(
        alerts[0].starts_with("[ALERT]")
            && alerts[0].contains("Proxy f reached process FD limit (ulimit-n 64); raise 'ulimit-n' or lower 'maxconn': accepting paused for 100 ms."),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
