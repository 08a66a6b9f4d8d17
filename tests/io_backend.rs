//! The I/O backends: `io-backend`/`--io-backend` choose between io_uring and epoll, `auto` falls
//! back to epoll (with one line saying why) where io_uring is refused, and both backends serve the
//! same traffic. io_uring is refused here the way Docker's default profile does it: a seccomp
//! filter, installed by the test between fork and exec, fails `io_uring_setup` with `EPERM`.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// Classic BPF opcodes (linux/filter.h: `BPF_LD|BPF_W|BPF_ABS`, `BPF_JMP|BPF_JEQ|BPF_K`,
/// `BPF_RET|BPF_K`) and seccomp return values (linux/seccomp.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// A seccomp program that fails `io_uring_setup` with `EPERM` and allows everything else.
fn io_uring_refused_filter() -> Vec<libc::sock_filter> {
    let ins = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
    vec![
        // seccomp_data.arch (offset 4): another architecture's calls are let through untouched.
        ins(BPF_LD_W_ABS, 4, 0, 0),
        ins(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        ins(BPF_RET_K, SECCOMP_RET_ALLOW, 0, 0),
        // seccomp_data.nr (offset 0).
        ins(BPF_LD_W_ABS, 0, 0, 0),
        ins(BPF_JEQ_K, libc::SYS_io_uring_setup as u32, 0, 1),
        ins(BPF_RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32, 0, 0),
        ins(BPF_RET_K, SECCOMP_RET_ALLOW, 0, 0),
    ]
}

/// Makes the command's process run without io_uring.
fn refuse_io_uring(cmd: &mut Command) {
    // Built before the fork: the hook itself only makes two system calls.
    let filter = io_uring_refused_filter();
    // SAFETY: the hook runs in the child between fork and exec and calls only `prctl`, which is
    // async-signal-safe; `filter` lives in the closure, so the program it points to stays valid.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut libc::sock_filter };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// How many io_uring instances the process holds open.
fn rings_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().contains("io_uring"))
        .count()
}

fn stats(sock: &std::path::Path, cmd: &str) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn build_info(sock: &std::path::Path) -> String {
    stats(sock, "show info").lines().find_map(|l| l.strip_prefix("Build info: ").map(str::to_owned)).expect("a Build info line")
}

/// An HTTP frontend and a TCP frontend (to an echo server) on one worker, with a stats socket.
struct Setup {
    cfg: String,
    http: u16,
    tcp: u16,
    sock: std::path::PathBuf,
    _web: Backend,
    _echo: Backend,
}

fn setup(global_extra: &str) -> Setup {
    let (web, _) = http_backend(|_| ok_response("hello"));
    let echo = Backend::echo();
    let (http, tcp) = (free_port(), free_port());
    let sock = temp_dir("iob").join("stats.sock");
    let cfg = format!(
        "global\n  nbthread 1\n  stats socket {} level admin\n{global_extra}\ndefaults\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend fh\n  mode http\n  bind 127.0.0.1:{http}\n  default_backend bh\nbackend bh\n  mode http\n  server w {}\n\
         frontend ft\n  mode tcp\n  bind 127.0.0.1:{tcp}\n  default_backend bt\nbackend bt\n  mode tcp\n  server e {}\n",
        sock.display(),
        web.addr(),
        echo.addr()
    );
    Setup { cfg, http, tcp, sock, _web: web, _echo: echo }
}

/// One HTTP request and a 3 MB round trip through the TCP frontend (large enough to switch the
/// tunnel to splice), both checked byte for byte.
fn serves_traffic(s: &Setup) {
    let (status, _, body) = http_request(s.http, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
    let data = random_bytes(3 << 20, 7);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.tcp)).unwrap();
    let writer = {
        let mut w = c.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || {
            w.write_all(&data).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        })
    };
    let got = read_to_end(&mut c, Duration::from_secs(20)).unwrap();
    writer.join().unwrap();
    assert!(got == data, "echoed {} bytes of {}", got.len(), data.len());
}

#[test]
fn uring_backend_serves_http_and_tcp_through_its_ring() {
    let s = setup("");
    let d = Sluiced::start_args(&s.cfg, &[s.http, s.tcp], &["--io-backend", "uring"]);
    assert_eq!(rings_of(d.pid()), 1, "one worker, one ring");
    serves_traffic(&s);
    assert!(build_info(&s.sock).ends_with(" io-backend=uring"), "{}", build_info(&s.sock));
}

#[test]
fn epoll_backend_serves_without_a_ring() {
    let s = setup("");
    let d = Sluiced::start_args(&s.cfg, &[s.http, s.tcp], &["--io-backend", "epoll"]);
    assert_eq!(rings_of(d.pid()), 0);
    serves_traffic(&s);
    assert!(build_info(&s.sock).ends_with(" io-backend=epoll"), "{}", build_info(&s.sock));
}

#[test]
fn io_backend_keyword_chooses_and_the_command_line_overrides_it() {
    let s = setup("  io-backend epoll");
    let cfg = temp_dir("iobkw").join("s.cfg");
    std::fs::write(&cfg, &s.cfg).unwrap();
    let spawn = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-d", "-f", cfg.to_str().unwrap()]).args(extra).stderr(Stdio::null()).spawn().unwrap()
    };
    for (extra, want) in [(&[][..], "epoll"), (&["--io-backend", "uring"][..], "uring")] {
        let mut child = spawn(extra);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !(is_listening(s.http) && s.sock.exists()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let info = build_info(&s.sock);
        let rings = rings_of(child.id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&s.sock);
        assert!(info.ends_with(&format!(" io-backend={want}")), "{extra:?}: {info}");
        assert_eq!(rings, usize::from(want == "uring"), "{extra:?}");
    }
}

#[test]
fn auto_falls_back_to_epoll_with_one_line_when_seccomp_refuses_io_uring() {
    let s = setup("");
    let mut d = Sluiced::start_with(&s.cfg, &[s.http, s.tcp], &["--io-backend", "auto"], refuse_io_uring);
    assert_eq!(rings_of(d.pid()), 0);
    serves_traffic(&s);
    assert!(build_info(&s.sock).ends_with(" io-backend=epoll"), "{}", build_info(&s.sock));
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
    let err = d.stderr();
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("io_uring")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("[NOTICE]"), "{err}");
    assert!(
        lines[0].contains("io-backend auto: io_uring is not usable (io_uring_setup failed: Operation not permitted") && lines[0].ends_with("using epoll"),
        "{err}"
    );
}

#[test]
fn auto_uses_the_ring_where_the_kernel_allows_it() {
    if !std::path::Path::new("/proc/sys/kernel/io_uring_disabled").exists()
        || std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").unwrap().trim() != "0"
    {
        // The machine itself refuses io_uring: the fallback test covers this case.
        return;
    }
    let s = setup("  io-backend auto");
    let mut d = Sluiced::start_args(&s.cfg, &[s.http, s.tcp], &["--io-backend", "auto"]);
    assert_eq!(rings_of(d.pid()), 1);
    serves_traffic(&s);
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(!d.stderr().contains("io_uring"));
}

#[test]
fn uring_asked_for_where_it_is_refused_is_a_startup_error() {
    let s = setup("");
    let cfg = temp_dir("iobref").join("s.cfg");
    std::fs::write(&cfg, &s.cfg).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluiced"));
    cmd.args(["-d", "-f", cfg.to_str().unwrap(), "--io-backend", "uring"]);
    refuse_io_uring(&mut cmd);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("[ALERT]") && err.contains("io-backend uring: io_uring_setup failed: Operation not permitted"), "{err}");
}

#[test]
fn vv_lists_both_pollers_and_says_which_one_runs() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluiced"));
    cmd.arg("-vv");
    refuse_io_uring(&mut cmd);
    let refused = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    assert!(
        refused.contains("\n   io_uring : pref=400,  test result FAILED\n      epoll : pref=300,  test result OK\nTotal: 2 (1 usable), will use epoll.\n"),
        "{refused}"
    );
    assert!(refused.contains("io_uring unavailable: io_uring_setup failed: Operation not permitted"), "{refused}");
    let out = Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-vv", "--io-backend", "epoll"]).output().unwrap();
    let epoll = String::from_utf8(out.stdout).unwrap();
    assert!(epoll.contains("      epoll : pref=300,  test result OK\nTotal: 2 (") && epoll.contains("), will use epoll.\n"), "{epoll}");
    assert!(epoll.contains("Feature list :") && epoll.contains("+IO_URING"), "{epoll}");
}

#[test]
fn uring_backend_closes_every_connection_it_served() {
    let s = setup("");
    let d = Sluiced::start_args(&s.cfg, &[s.http, s.tcp], &["--io-backend", "uring"]);
    // Warm up: the first connection opens what stays (the server pool's sockets, pipes).
    serves_traffic(&s);
    std::thread::sleep(Duration::from_millis(200));
    let before = open_fds(d.pid());
    for i in 0..100 {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", if i % 2 == 0 { s.http } else { s.tcp })).unwrap();
        if i % 2 == 0 {
            c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
            assert_eq!(read_response(&mut c).0, 200);
        } else {
            // A client that goes away without a word: its idle read is cancelled.
            c.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            c.read_exact(&mut b).unwrap();
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut now = open_fds(d.pid());
    while now > before + 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        now = open_fds(d.pid());
    }
    assert!(now <= before + 2, "descriptors: {before} before, {now} after 100 connections");
}

#[test]
fn uring_backend_serves_more_connections_at_once_than_its_submission_queue_holds() {
    // 1,500 connections answered in the same turns of the worker re-arm 1,500 polls at once, more
    // than the ring's 1,024 submission entries: the driver must submit early, losing none.
    const N: usize = 1500;
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 1\n  maxconn 4000\ndefaults\n  mode http\n  timeout client 20s\nfrontend f\n  bind 127.0.0.1:{port}\n  \
         http-request return status 200 content-type text/plain string ok\n"
    );
    let _d = Sluiced::start_args(&cfg, &[port], &["--io-backend", "uring"]);
    let mut conns: Vec<std::net::TcpStream> = (0..N).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    for round in 0..2 {
        for c in &mut conns {
            c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let (status, _, body) = read_response(c);
            assert_eq!((status, body.as_slice()), (200, &b"ok"[..]), "round {round}, connection {i}");
        }
    }
}
