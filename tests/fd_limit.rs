//! The descriptor limit at start, as HAProxy sets it: the soft limit (often 1,024, about 500
//! proxied connections) is raised to the hard one, `ulimit-n` sets it, and a limit too low for
//! the global `maxconn` is warned about.

mod support;

use std::os::unix::process::CommandExt;
use std::process::Command;
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

/// Starts sluiced with descriptor limits `soft`/`hard` set between fork and exec.
fn start(global: &str, soft: u64, hard: u64) -> (Sluiced, u16) {
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 1\n{global}\ndefaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  \
         http-request return status 200 content-type text/plain string ok\n"
    );
    let d = Sluiced::start_with(&cfg, &[port], &[], |cmd: &mut Command| {
        // SAFETY: the hook runs in the child between fork and exec and only calls setrlimit,
        // which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let l = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    (d, port)
}

fn serves(port: u16) {
    let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
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
fn descriptor_limit_too_low_for_maxconn_is_warned_about_and_the_daemon_still_starts() {
    let (mut d, port) = start("  maxconn 5000", 256, 1024);
    assert_eq!(limits(d.pid()), (1024, 1024));
    serves(port);
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(10));
    let err = d.stderr();
    assert!(err.contains("[WARNING]") && err.contains("the descriptor limit (1024) is too low for maxconn 5000"), "{err}");
}

#[test]
fn descriptor_limit_enough_for_maxconn_starts_without_a_warning() {
    let (mut d, port) = start("  maxconn 400", 256, 1024);
    serves(port);
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(10));
    let err = d.stderr();
    assert!(!err.contains("descriptor limit"), "{err}");
}
