//! The stats socket: the real daemon with `stats socket` lines, talked to through real unix and
//! TCP streams and through `socat`, with named backends to see where connections land.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::*;

struct Setup {
    _d: Sluiced,
    _a: Backend,
    _b: Backend,
    port: u16,
    admin: PathBuf,
    user: PathBuf,
}

/// A TCP proxy in front of two named servers `a` and `b`, an admin and a user socket, and `extra`
/// more global lines.
fn setup(extra: &str) -> Setup {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    let dir = temp_dir("stats");
    let (admin, user) = (dir.join("s.sock"), dir.join("u.sock"));
    let cfg = format!(
        "global\n  nbthread 1\n  stats socket {} level admin\n  stats socket {} level user\n{extra}defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n  server a {}\n  server b {}\n",
        admin.display(),
        user.display(),
        a.addr(),
        b.addr()
    );
    let d = Sluiced::start(&cfg, &[port]);
    Setup { _d: d, _a: a, _b: b, port, admin, user }
}

fn socat(target: &str, line: &str) -> String {
    let mut child = std::process::Command::new("socat")
        .args(["-t", "5", "-", target])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("socat is installed");
    child.stdin.take().unwrap().write_all(format!("{line}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// True when 8 connections in a row land on `want`.
fn all_on(port: u16, want: &str) -> bool {
    (0..8).all(|_| which_server(port) == want)
}

#[test]
fn help_unknown_chaining_and_show_backend() {
    let s = setup("");
    let help = ask(&s.admin, "help");
    assert!(help.contains("show backend"), "{help}");
    assert!(help.ends_with("\n\n"), "{help:?}");
    let unknown = ask(&s.admin, "frobnicate now");
    assert!(unknown.starts_with("Unknown command: 'frobnicate now', but maybe one of the following ones is a better match:\n"), "{unknown}");
    assert_eq!(ask(&s.admin, "show backend"), "# name\nl\n\n");
    assert_eq!(ask(&s.admin, "show backend; get weight l/a;get weight l/zz"), "# name\nl\n\n1 (initial 1)\n\nNo such server.\n\n");
    assert_eq!(socat(&format!("UNIX-CONNECT:{}", s.admin.display()), "show backend"), "# name\nl\n\n");
}

#[test]
fn levels_refuse_what_the_socket_may_not_do() {
    let s = setup("");
    assert_eq!(ask(&s.user, "disable server l/a"), "Permission denied\n\n");
    assert_eq!(ask(&s.user, "set weight l/a 0; get weight l/a"), "Permission denied\n\n1 (initial 1)\n\n");
    assert_eq!(ask(&s.user, "clear counters"), "Permission denied\n\n");
    assert!(!ask(&s.user, "help").contains("disable server"));
}

#[test]
fn prompt_mode_runs_commands_until_quit() {
    let s = setup("");
    let mut c = UnixStream::connect(&s.admin).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let mut read_until_prompt = |c: &mut UnixStream| {
        let mut got = Vec::new();
        while !got.ends_with(b"> ") {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    };
    c.write_all(b"prompt\n").unwrap();
    assert_eq!(read_until_prompt(&mut c), "> ");
    c.write_all(b"show backend\n").unwrap();
    assert_eq!(read_until_prompt(&mut c), "# name\nl\n\n> ");
    c.write_all(b"get weight l/b\n").unwrap();
    assert_eq!(read_until_prompt(&mut c), "1 (initial 1)\n\n> ");
    c.write_all(b"quit\n").unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn disable_server_takes_it_out_and_enable_brings_it_back() {
    let s = setup("");
    assert_eq!(ask(&s.admin, "disable server l/a"), "\n");
    assert!(all_on(s.port, "b"));
    assert_eq!(ask(&s.admin, "enable server l/a"), "\n");
    assert!((0..8).any(|_| which_server(s.port) == "a"));
    assert_eq!(ask(&s.admin, "set server l/b state maint"), "\n");
    assert!(all_on(s.port, "a"));
    assert_eq!(ask(&s.admin, "set server l/b state bogus"), "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n");
}

#[test]
fn drain_keeps_open_connections_and_sends_new_ones_elsewhere() {
    let s = setup("");
    // Find a connection that landed on `a` and keep it.
    let held = loop {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = [0u8; 2];
        c.read_exact(&mut line).unwrap();
        if &line == b"a\n" {
            break c;
        }
    };
    assert_eq!(ask(&s.admin, "set server l/a state drain"), "\n");
    assert!(all_on(s.port, "b"));
    // The held connection is still open: writing works and no end of stream comes.
    let mut held = held;
    held.write_all(b"still here\n").unwrap();
    held.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut b = [0u8; 1];
    let r = held.read(&mut b);
    assert!(matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut), "{r:?}");
}

#[test]
fn set_weight_and_get_weight() {
    let s = setup("");
    assert_eq!(ask(&s.admin, "set weight l/a 10; get weight l/a"), "\n10 (initial 1)\n\n");
    assert_eq!(ask(&s.admin, "set server l/a weight 300"), "Absolute weight can only be between 0 and 256 inclusive.\n\n");
    assert_eq!(ask(&s.admin, "set weight l/a 0"), "\n");
    assert!(all_on(s.port, "b"));
    assert_eq!(ask(&s.admin, "set weight l/a 100%; get weight l/a"), "\n1 (initial 1)\n\n");
}

#[test]
fn disable_frontend_stops_accepting_until_enabled() {
    let s = setup("");
    assert_eq!(ask(&s.admin, "disable frontend l"), "\n");
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut b = [0u8; 2];
    assert!(c.read(&mut b).is_err(), "served while disabled");
    assert_eq!(ask(&s.admin, "enable frontend l"), "\n");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    c.read_exact(&mut b).unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(ask(&s.admin, "disable frontend nope"), "No such frontend.\n\n");
}

#[test]
fn ipv4_socket_answers_over_tcp() {
    let p = free_port();
    let s = setup(&format!("  stats socket ipv4@127.0.0.1:{p} level operator\n  stats timeout 2s\n  stats maxconn 4\n"));
    assert_eq!(socat(&format!("TCP:127.0.0.1:{p}"), "show backend"), "# name\nl\n\n");
    assert_eq!(socat(&format!("TCP:127.0.0.1:{p}"), "clear counters; disable server l/a"), "\nPermission denied\n\n");
    let _ = s;
}

#[test]
fn an_overlong_line_is_refused() {
    let s = setup("");
    let mut c = UnixStream::connect(&s.admin).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let big = vec![b'x'; 100 * 1024];
    let _ = c.write_all(&big);
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    assert_eq!(out, "Command line too long.\n\n");
}

#[test]
fn disable_health_brings_a_failing_server_back_and_enable_health_resumes_checks() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let (port, dead) = (free_port(), free_port());
    let sock = temp_dir("stats").join("s.sock");
    let cfg = format!(
        "global\n  nbthread 1\n  stats socket {} level admin\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n  server a {} check inter 100ms fall 1 port {dead}\n  server b {}\n",
        sock.display(),
        a.addr(),
        b.addr()
    );
    let mut d = Sluiced::start(&cfg, &[port]);
    let settles = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if all_on(port, want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    assert!(settles("b"), "a never went down");
    assert_eq!(ask(&sock, "disable health l/a"), "\n");
    assert!((0..8).any(|_| which_server(port) == "a"), "a not back after disable health");
    assert_eq!(ask(&sock, "enable health l/a"), "\n");
    let resumed = settles("b");
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(5));
    assert!(resumed, "checks did not resume: {}", d.stderr());
}

#[test]
fn a_stale_socket_file_is_replaced_and_mode_applies() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("stats");
    let sock = dir.join("s.sock");
    // A socket file left behind by a process that is gone.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let port = free_port();
    let cfg = format!(
        "global\n  stats socket {} mode 600 level user\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\nlisten l\n  bind 127.0.0.1:{port}\n  server a 127.0.0.1:1\n",
        sock.display()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(ask(&sock, "show backend"), "# name\nl\n\n");
}

#[test]
fn show_stat_through_socat_has_haproxys_header_and_one_row_per_object() {
    let s = setup("");
    let out = socat(&format!("UNIX-CONNECT:{}", s.admin.display()), "show stat");
    assert!(out.ends_with("\n\n") && !out.ends_with("\n\n\n"), "one empty line ends the answer: {out:?}");
    let header = out.lines().next().unwrap();
    let want: Vec<String> = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/haproxy/show_stat_columns.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').nth(1).unwrap().to_owned())
        .collect();
    let got: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    assert!(got.len() >= want.len(), "{header}");
    let want_cols: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(&got[..want_cols.len()], want_cols.as_slice(), "the standard columns in HAProxy's order");
    let rows: Vec<&str> = out.lines().skip(1).filter(|l| !l.is_empty()).collect();
    let names: Vec<String> = rows.iter().map(|r| r.split(',').take(2).collect::<Vec<_>>().join("/")).collect();
    assert_eq!(names, ["l/FRONTEND", "l/a", "l/b", "l/BACKEND"], "{out}");
    let info = ask(&s.admin, "show info");
    assert!(info.lines().any(|l| l == "Name: HAProxy") && info.lines().any(|l| l.starts_with("Pid: ")), "{info}");
}

#[test]
fn show_stat_reports_the_last_health_check() {
    let dir = temp_dir("statschk");
    let sock = dir.join("s.sock");
    let up = Backend::named("up");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let port = free_port();
    let cfg = format!(
        "global\n  stats socket {} level admin\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nlisten l\n  bind 127.0.0.1:{port}\n  default-server check inter 100ms\n  server up {}\n  server dead 127.0.0.1:{dead_port}\n",
        sock.display(),
        up.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    std::thread::sleep(Duration::from_millis(500));
    let out = ask(&sock, "show stat");
    let header: Vec<&str> = out.lines().next().unwrap().trim_start_matches("# ").split(',').collect();
    let field = |sv: &str, name: &str| -> String {
        let i = header.iter().position(|c| *c == name).unwrap();
        let row = out.lines().find(|l| l.split(',').nth(1) == Some(sv)).unwrap();
        row.split(',').nth(i).unwrap().to_owned()
    };
    assert_eq!(field("up", "check_status"), "L4OK", "{out}");
    assert_eq!(field("dead", "check_status"), "L4CON", "{out}");
    assert_eq!(field("dead", "last_chk"), "Connection refused", "{out}");
    assert_eq!(field("dead", "check_desc"), "Layer4 connection problem", "{out}");
    assert_eq!(field("dead", "status"), "DOWN", "{out}");
    assert!(field("dead", "chkfail").parse::<u64>().unwrap() >= 1, "{out}");
}

/// `show stat` sums the counters of every worker: with two workers, sessions spread over both
/// (the kernel balances `SO_REUSEPORT` listeners) are all counted on the frontend, the backend and
/// the server, and bytes too.
#[test]
fn counters_of_both_workers_are_summed() {
    let a = Backend::named("a");
    let port = free_port();
    let sock = temp_dir("stats2").join("s.sock");
    let cfg = format!(
        "global\n  nbthread 2\n  stats socket {} level admin\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n  server a {}\n",
        sock.display(),
        a.addr()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    const N: u64 = 40;
    for _ in 0..N {
        assert_eq!(which_server(port), "a");
    }
    // The last session may still be ending on its worker: wait until the frontend has none open.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut csv = ask(&sock, "show stat");
    while Instant::now() < deadline && !csv.lines().any(|l| l.starts_with("l,FRONTEND,") && l.split(',').nth(4) == Some("0")) {
        std::thread::sleep(Duration::from_millis(50));
        csv = ask(&sock, "show stat");
    }
    let header: Vec<&str> = csv.lines().next().unwrap().trim_start_matches("# ").split(',').collect();
    let field = |sv: &str, name: &str| -> u64 {
        let i = header.iter().position(|c| *c == name).unwrap();
        let row = csv.lines().find(|l| l.split(',').nth(1) == Some(sv)).unwrap();
        row.split(',').nth(i).unwrap().parse().unwrap_or(0)
    };
    assert_eq!((field("FRONTEND", "stot"), field("a", "stot"), field("BACKEND", "stot")), (N, N, N), "{csv}");
    assert!(field("a", "bout") >= N, "{csv}");
}

/// A backend's `slim` is its `fullconn`: as configured, or by default a tenth of the `maxconn`
/// of the frontends that name it (rounded up).
#[test]
fn backend_slim_is_fullconn_set_or_a_tenth_of_its_frontends_maxconn() {
    let dir = temp_dir("fullconn");
    let sock = dir.join("s.sock");
    let (p1, p2) = (free_port(), free_port());
    let cfg = format!(
        "global\n  stats socket {}\ndefaults\n  mode tcp\n  timeout client 5s\n  timeout server 5s\n  timeout connect 5s\n\
         frontend a\n  bind 127.0.0.1:{p1}\n  maxconn 100\n  default_backend dflt\nfrontend b\n  bind 127.0.0.1:{p2}\n  maxconn 31\n  use_backend dflt if {{ src 10.0.0.1 }}\n  default_backend set\n\
         backend dflt\n  server s 127.0.0.1:1 minconn 2 maxconn 10\nbackend set\n  fullconn 77\n  server s 127.0.0.1:1\n",
        sock.display()
    );
    let _s = Sluiced::start(&cfg, &[p1, p2]);
    let csv = ask(&sock, "show stat");
    let header: Vec<&str> = csv.lines().next().unwrap().trim_start_matches("# ").split(',').collect();
    let slim = header.iter().position(|c| *c == "slim").unwrap();
    let row = |px: &str| csv.lines().find(|l| l.starts_with(&format!("{px},BACKEND,"))).unwrap().split(',').nth(slim).unwrap().to_owned();
    assert_eq!(row("dflt"), "14", "(100 + 31) / 10, rounded up");
    assert_eq!(row("set"), "77");
}
