//! Giving up root: `chroot`, `user`/`group` (and `uid`/`gid`), `setcap`, `set-dumpable`, and the
//! owner of unix sockets (`bind ... user/group`). The daemon is started as root, as a service
//! manager starts it; each test reads what the kernel says of the running process in `/proc`.
//!
//! The tests that switch identity need root (CI runs as root) and say so when they cannot run.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("skipped: switching user needs root");
            return;
        }
    };
}

/// `nobody`'s and `nogroup`'s ids on this machine (65534 on Debian).
fn nobody() -> (u32, u32) {
    let out = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let out = Command::new("getent").args(["group", "nogroup"]).output().unwrap();
    let gid = String::from_utf8_lossy(&out.stdout).split(':').nth(2).unwrap().trim().parse().unwrap();
    (uid, gid)
}

/// One field of `/proc/<pid>/task/<tid>/status` for every thread of `pid`.
fn per_thread(pid: i32, field: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let s = std::fs::read_to_string(t.path().join("status")).ok()?;
            s.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_owned()))
        })
        .collect()
}

fn threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count()
}

#[test]
fn started_as_root_it_serves_as_the_configured_user_and_group_inside_the_chroot_with_checks_logs_and_stats_working() {
    needs_root!();
    let (uid, gid) = nobody();
    let jail = temp_dir("jail");
    // A syslog socket inside the chroot, named by its path as seen from inside.
    let log = std::os::unix::net::UnixDatagram::bind(jail.join("log.sock")).unwrap();
    // Writable by anyone, as syslog daemons make theirs: the daemon writes to it as nobody.
    std::fs::set_permissions(jail.join("log.sock"), std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    log.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let sock = temp_dir("priv-stats").join("stats.sock");
    let (be, _) = http_backend(|_| ok_response("from the server"));
    let port = free_port();
    let cfg = format!(
        "global\n  chroot {}\n  user nobody\n  group nogroup\n  stats socket {} level admin\n  log /log.sock local0\n  log /missing.sock local0\n\
         defaults\n  mode http\n  log global\n  option httplog\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend f\n  bind 127.0.0.1:{port}\n  http-response set-header x-node %H\n  default_backend b\n\
         backend b\n  server s1 {} check inter 100ms\n",
        jail.display(),
        sock.display(),
        be.addr()
    );
    let mut d = Sluiced::start(&cfg, &[port]);
    let pid = d.pid();
    // The whole process, every thread of it, runs as nobody:nogroup with no other group.
    let want_uid = format!("{uid}\t{uid}\t{uid}\t{uid}");
    let want_gid = format!("{gid}\t{gid}\t{gid}\t{gid}");
    assert!(threads(pid) > 1);
    for (u, g) in per_thread(pid, "Uid").iter().zip(per_thread(pid, "Gid")) {
        assert_eq!((u.as_str(), g.as_str()), (want_uid.as_str(), want_gid.as_str()));
    }
    assert!(per_thread(pid, "Groups").iter().all(|g| g == &gid.to_string()), "{:?}", per_thread(pid, "Groups"));
    assert!(per_thread(pid, "CapEff").iter().all(|c| c == "0000000000000000"), "no capability is left: {:?}", per_thread(pid, "CapEff"));
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/root")).unwrap(), jail, "the process's root is the chroot");
    // Traffic, with the host name read before the chroot hid /proc.
    let (status, head, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((status, body.as_slice()), (200, &b"from the server"[..]));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(head.to_ascii_lowercase().contains(&format!("x-node: {}\r\n", host.trim())), "{head}");
    // The log line reaches the socket inside the chroot.
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = log.recv(&mut buf).expect("a log line inside the chroot");
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        if line.contains("GET / HTTP/1.1") {
            break;
        }
        assert!(Instant::now() < deadline, "no request log line");
    }
    // The health checks (a thread started after the switch) still see the server up.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = ask(&sock, "show stat");
        let row = stat.lines().find(|l| l.starts_with("b,s1,")).unwrap_or_default().to_owned();
        if row.split(',').nth(17) == Some("UP") && row.contains("L4OK") {
            break;
        }
        assert!(Instant::now() < deadline, "the server is not seen UP by its checks: {row}");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(3)), Some(0));
    let err = d.stderr();
    assert!(err.contains("log socket '/missing.sock' does not exist inside chroot"), "{err}");
    assert!(!err.contains("/log.sock' does not exist"), "{err}");
}

#[test]
fn a_user_without_a_group_takes_the_users_primary_group_and_drops_roots_supplementary_groups() {
    needs_root!();
    let (uid, gid) = nobody();
    let port = free_port();
    let cfg = format!(
        "global\n  uid {uid}\ndefaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request return status 200 content-type text/plain string ok\n"
    );
    let d = Sluiced::start(&cfg, &[port]);
    assert_eq!(per_thread(d.pid(), "Gid")[0], format!("{gid}\t{gid}\t{gid}\t{gid}"));
    assert_eq!(per_thread(d.pid(), "Groups")[0], gid.to_string());
    let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
}

/// What a client sees when the daemon silently drops it: a reset when the process may not use
/// `TCP_REPAIR` (a reset with TTL 1, which loopback delivers), nothing at all when it may.
fn silent_drop_outcome(keep: &str) -> Result<usize, ErrorKind> {
    let port = free_port();
    let cfg =
        format!("global\n  user nobody\n{keep}defaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request silent-drop\n");
    let _d = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(800))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).map_err(|e| e.kind())
}

#[test]
fn setcap_keeps_only_the_named_capabilities_across_the_switch_and_they_act() {
    needs_root!();
    let port = free_port();
    let cfg = format!(
        "global\n  user nobody\n  setcap cap_net_admin,cap_net_bind_service\ndefaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  \
         http-request return status 200 content-type text/plain string ok\n"
    );
    let d = Sluiced::start(&cfg, &[port]);
    // CAP_NET_BIND_SERVICE is bit 10, CAP_NET_ADMIN bit 12; the worker threads have them too.
    let pid = d.pid();
    let workers: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().starts_with("sluiced-w"))
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .collect();
    assert!(!workers.is_empty(), "no worker thread found");
    for s in &workers {
        for f in ["CapEff:", "CapPrm:"] {
            let v = s.lines().find_map(|l| l.strip_prefix(f)).unwrap().trim();
            assert_eq!(v, "0000000000001400", "{f} of a worker");
        }
    }
    drop(d);
    // CAP_NET_ADMIN is what lets silent-drop use TCP_REPAIR and send nothing.
    assert_eq!(silent_drop_outcome(""), Err(ErrorKind::ConnectionReset), "without the capability: the TTL-1 reset");
    let kept = silent_drop_outcome("  setcap cap_net_admin\n");
    assert!(matches!(kept, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)), "with cap_net_admin: no packet at all, got {kept:?}");
}

#[test]
fn set_dumpable_keeps_the_process_dumpable_after_the_switch() {
    needs_root!();
    let port = free_port();
    let cfg = |extra: &str| {
        format!(
            "global\n  user nobody\n{extra}defaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  \
             http-request return status 200 content-type text/plain string ok\n"
        )
    };
    // A process that is not dumpable has its /proc files owned by root; a dumpable one by its user.
    let (uid, _) = nobody();
    let d = Sluiced::start(&cfg(""), &[port]);
    assert_eq!(std::fs::metadata(format!("/proc/{}/status", d.pid())).unwrap().uid(), 0);
    drop(d);
    let d = Sluiced::start(&cfg("  set-dumpable\n"), &[port]);
    assert_eq!(std::fs::metadata(format!("/proc/{}/status", d.pid())).unwrap().uid(), uid);
}

#[test]
fn a_new_process_takes_the_port_over_with_sf_from_one_that_switched_user() {
    needs_root!();
    let port = free_port();
    let cfg = |word: &str| {
        format!(
            "global\n  user nobody\ndefaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  \
             http-request return status 200 content-type text/plain string {word}\n"
        )
    };
    let mut old = Sluiced::start(&cfg("old"), &[port]);
    let mut new = Sluiced::start_args(&cfg("new"), &[port], &["-sf", &old.pid().to_string()]);
    assert_eq!(old.wait_exit(Duration::from_secs(3)), Some(0), "the old process did not finish");
    eprintln!("old: {}", old.stderr());
    for i in 0..20 {
        eprintln!("request {i} {:?}", std::time::SystemTime::now());
        let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        assert_eq!((status, body.as_slice()), (200, &b"new"[..]));
    }
    assert_eq!(new.wait_exit(Duration::from_millis(10)), None, "the new process runs: {}", new.stderr());
}

#[test]
fn unix_listeners_get_the_owner_and_group_the_bind_line_names() {
    needs_root!();
    let (uid, gid) = nobody();
    let dir = temp_dir("priv-unix");
    let (a, b) = (dir.join("by-name.sock"), dir.join("by-id.sock"));
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  bind unix@{} user nobody group nogroup mode 660\n  \
         bind unix@{} uid {uid} gid {gid}\n  http-request return status 200 content-type text/plain string ok\n",
        a.display(),
        b.display()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    for p in [&a, &b] {
        let m = std::fs::metadata(p).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{}", p.display());
    }
    assert_eq!(std::fs::metadata(&a).unwrap().mode() & 0o777, 0o660);
    let mut c = std::os::unix::net::UnixStream::connect(&a).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert!(got.starts_with("HTTP/1.1 200") && got.ends_with("ok"), "{got}");
}

fn check(cfg: &str) -> (i32, String) {
    let dir = temp_dir("priv-check");
    let path = dir.join("c.cfg");
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-c", "-f", path.to_str().unwrap()]).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn unknown_users_groups_and_capabilities_are_refused_with_file_line_and_keyword() {
    let base = "defaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:0\n  http-request return status 200\n";
    let (code, err) = check(&format!("global\n  user no-such-user-sluiced\n{base}"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("c.cfg:2] : 'user' : cannot find user id for 'no-such-user-sluiced'"), "{err}");
    let (code, err) = check(&format!("global\n  group no-such-group-sluiced\n{base}"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("c.cfg:2] : 'group' : cannot find group id for 'no-such-group-sluiced'"), "{err}");
    let (code, err) = check(&format!("global\n  setcap cap_chown\n{base}"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("c.cfg:2] : 'setcap' : unsupported capability 'cap_chown'"), "{err}");
    let (code, err) = check(&format!("{base}  bind unix@/tmp/x.sock user no-such-user-sluiced\n"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot find user id for 'no-such-user-sluiced'"), "{err}");
    // Known names pass, with no warning that they are not applied.
    let (code, err) = check(&format!("global\n  user nobody\n  group nogroup\n  chroot /var/empty\n  setcap cap_net_raw\n  set-dumpable\n{base}"));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("not applied"), "{err}");
}

#[test]
fn a_process_that_may_not_switch_refuses_to_start_rather_than_run_as_someone_else() {
    needs_root!();
    let port = free_port();
    let base = format!("defaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request return status 200\n");
    let (uid, gid) = nobody();
    for (global, want) in [(format!("  uid 1\n  gid {gid}\n"), "cannot set uid 1"), ("  chroot /\n".to_owned(), "cannot chroot(/)")] {
        let dir = temp_dir("priv-refuse");
        let path = dir.join("c.cfg");
        std::fs::write(&path, format!("global\n{global}{base}")).unwrap();
        // Started as nobody, who may neither become another user nor chroot.
        let out = {
            use std::os::unix::process::CommandExt;
            Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-d", "-f", path.to_str().unwrap()]).uid(uid).gid(gid).output().unwrap()
        };
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(want) && err.contains("[ALERT]"), "{err}");
    }
}
