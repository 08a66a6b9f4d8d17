//! `mode tcp` forwarding: every byte, both directions, half-closes, timeouts, signals.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use support::*;

fn listen_cfg(port: u16, server: &str, extra: &str) -> String {
    format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 20s\n  timeout server 20s\n{extra}\nlisten l\n  bind 127.0.0.1:{port}\n  server s1 {server}\n"
    )
}

/// Sends `data` while reading the echo concurrently; returns what came back.
fn echo_through(port: u16, data: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = c.try_clone().unwrap();
    let to_send = data.to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(&to_send).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_to_end(&mut c, Duration::from_secs(60)).unwrap();
    writer.join().unwrap();
    got
}

#[test]
fn sixty_four_mib_each_way_arrive_intact_with_splice() {
    let be = Backend::echo();
    let port = free_port();
    let _s = Sluiced::start(&listen_cfg(port, &be.addr(), ""), &[port]);
    let data = random_bytes(64 << 20, 1);
    let got = echo_through(port, &data);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echoed bytes differ");
}

#[test]
fn sixty_four_mib_each_way_arrive_intact_without_splice() {
    let be = Backend::echo();
    let port = free_port();
    let _s = Sluiced::start(&listen_cfg(port, &be.addr(), "  no option splice-auto"), &[port]);
    let data = random_bytes(64 << 20, 2);
    let got = echo_through(port, &data);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echoed bytes differ");
}

/// The sizes of the kernel pipes the process `pid` holds open, read through `/proc`.
fn pipe_sizes(pid: i32) -> Vec<usize> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let mut sizes = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let is_pipe = std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("pipe:"));
        if !is_pipe {
            continue;
        }
        // Opening a pipe's /proc entry opens the same pipe (as a FIFO is opened).
        let Ok(f) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(e.path()) else { continue };
        let sz = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETPIPE_SZ) };
        if sz > 0 {
            sizes.push(sz as usize);
        }
    }
    sizes
}

#[test]
fn a_bulk_spliced_transfer_grows_its_pipe_to_256_kib() {
    let be = Backend::echo();
    let port = free_port();
    let s = Sluiced::start(&listen_cfg(port, &be.addr(), ""), &[port]);
    let data = random_bytes(64 << 20, 11);
    let got = echo_through(port, &data);
    assert!(got == data, "echoed bytes differ");
    // The tunnel's pipes went back to the worker's pool, still open.
    let sizes = pipe_sizes(s.pid());
    assert!(sizes.contains(&(256 << 10)), "pipe sizes after a 64 MiB spliced echo: {sizes:?}");
}

#[test]
fn a_set_tune_pipesize_keeps_every_pipe_at_that_size_under_bulk_transfer() {
    let be = Backend::echo();
    let port = free_port();
    let cfg = format!("global\n  tune.pipesize 65536\n{}", listen_cfg(port, &be.addr(), ""));
    let s = Sluiced::start(&cfg, &[port]);
    let data = random_bytes(64 << 20, 12);
    let got = echo_through(port, &data);
    assert!(got == data, "echoed bytes differ");
    let sizes = pipe_sizes(s.pid());
    assert!(sizes.contains(&65536), "the tunnel's pipes are gone: {sizes:?}");
    assert!(sizes.iter().all(|&z| z <= 65536), "pipe sizes with tune.pipesize 65536: {sizes:?}");
}

#[test]
fn a_copied_download_to_a_client_that_reads_late_arrives_intact() {
    // Splicing off: every byte goes through the proxy's buffered writes, and the client's socket
    // fills while the client does not read, so writes meet a full socket and must wait.
    let data = random_bytes(8 << 20, 3);
    let sent = data.clone();
    let be = Backend::start(move |mut c| {
        let _ = c.write_all(&sent);
    });
    let port = free_port();
    let cfg = format!("global\n  nosplice\n{}", listen_cfg(port, &be.addr(), ""));
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let got = read_to_end(&mut c, Duration::from_secs(30)).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "downloaded bytes differ");
}

#[test]
fn client_half_close_still_gets_the_whole_reply() {
    // The server answers only once it has read the client's end of stream.
    let be = Backend::start(|mut c| {
        let mut req = Vec::new();
        c.read_to_end(&mut req).unwrap();
        let reply = random_bytes(3 << 20, req.len() as u64);
        c.write_all(&reply).unwrap();
    });
    let port = free_port();
    let _s = Sluiced::start(&listen_cfg(port, &be.addr(), ""), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"hello, then nothing more").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let got = read_to_end(&mut c, Duration::from_secs(10)).unwrap();
    assert_eq!(got, random_bytes(3 << 20, 24));
}

#[test]
fn server_half_close_lets_the_client_keep_sending() {
    // The server sends a greeting and shuts its write side, but keeps reading and counts bytes.
    let (tx, rx) = std::sync::mpsc::channel();
    let be = Backend::start(move |mut c| {
        c.write_all(b"bye").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        tx.send(all.len()).unwrap();
    });
    let port = free_port();
    let _s = Sluiced::start(&listen_cfg(port, &be.addr(), ""), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut greeting = [0u8; 3];
    c.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"bye");
    // End of stream from the server reaches the client...
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(c.read(&mut [0u8; 16]).unwrap(), 0);
    // ...and the client can still send.
    c.write_all(&vec![7u8; 1 << 20]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 1 << 20);
}

#[test]
fn idle_client_is_closed_after_timeout_client() {
    let be = Backend::echo();
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 300ms\n  timeout server 20s\nlisten l\n  bind 127.0.0.1:{port}\n  server s1 {}\n",
        be.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let t0 = Instant::now();
    let got = read_to_end(&mut c, Duration::from_secs(5));
    let elapsed = t0.elapsed();
    assert!(matches!(got, Ok(ref v) if v.is_empty()), "{got:?}");
    assert!(elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
}

#[test]
fn a_spliced_tunnel_that_goes_quiet_is_closed_after_timeout_client_counted_from_its_last_byte() {
    // 1 MiB each way makes both directions switch to splice; then nothing moves, and the idle
    // timeout must count from the last spliced chunk, not from the connection's start.
    let be = Backend::echo();
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1s\n  timeout server 20s\nlisten l\n  bind 127.0.0.1:{port}\n  server s1 {}\n",
        be.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        // Paced so the transfer outlasts the idle timeout: it must not be cut while bytes move.
        for _ in 0..8 {
            w.write_all(&[3u8; 128 * 1024]).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while got < 1 << 20 {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {got} bytes while the transfer was running");
        assert!(buf[..n].iter().all(|&b| b == 3));
        got += n;
    }
    writer.join().unwrap();
    let t0 = Instant::now();
    let rest = read_to_end(&mut c, Duration::from_secs(5));
    let elapsed = t0.elapsed();
    assert!(matches!(rest, Ok(ref v) if v.is_empty()), "{rest:?}");
    assert!(elapsed >= Duration::from_millis(750) && elapsed < Duration::from_secs(4), "closed {elapsed:?} after the last byte");
}

#[test]
fn a_download_the_client_never_answers_is_not_cut_by_timeout_client() {
    // The server streams for longer than `timeout client` while the client sends nothing: the
    // client side is active (it is being written to), so the session must live.
    let be = Backend::start(|mut c| {
        for _ in 0..12 {
            if c.write_all(&[1u8; 1000]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 400ms\n  timeout server 5s\nlisten l\n  bind 127.0.0.1:{port}\n  server s1 {}\n",
        be.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let got = read_to_end(&mut c, Duration::from_secs(10)).unwrap();
    assert_eq!(got.len(), 12_000);
}

#[test]
fn sigterm_stops_the_daemon_within_a_second_with_status_zero() {
    let be = Backend::echo();
    let port = free_port();
    let mut s = Sluiced::start(&listen_cfg(port, &be.addr(), ""), &[port]);
    // An open session must not hold the stop up.
    let _open = TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    s.signal("TERM");
    assert_eq!(s.wait_exit(Duration::from_secs(1)), Some(0), "did not exit 0 within a second");
    assert!(t0.elapsed() < Duration::from_secs(1));
}

#[test]
fn sigint_stops_the_daemon_with_status_zero() {
    let be = Backend::echo();
    let port = free_port();
    let mut s = Sluiced::start(&listen_cfg(port, &be.addr(), ""), &[port]);
    s.signal("INT");
    assert_eq!(s.wait_exit(Duration::from_secs(1)), Some(0));
}

#[test]
fn sigusr1_stops_listening_but_lets_open_sessions_finish() {
    let be = Backend::echo();
    let port = free_port();
    let mut s = Sluiced::start(&listen_cfg(port, &be.addr(), ""), &[port]);
    let mut open = TcpStream::connect(("127.0.0.1", port)).unwrap();
    open.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    open.read_exact(&mut b).unwrap();
    s.signal("USR1");
    std::thread::sleep(Duration::from_millis(300));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "still accepting after SIGUSR1");
    assert_eq!(s.wait_exit(Duration::from_millis(200)), None, "exited with a session open");
    // The open session still works, and its end lets the process exit.
    open.write_all(b"pong").unwrap();
    open.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"pong");
    drop(open);
    assert_eq!(s.wait_exit(Duration::from_secs(3)), Some(0));
}

#[test]
fn hard_stop_after_bounds_a_soft_stop() {
    let be = Backend::echo();
    let port = free_port();
    let mut s = Sluiced::start(&listen_cfg(port, &be.addr(), "").replace("defaults", "global\n  hard-stop-after 500ms\ndefaults"), &[port]);
    let _open = TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    s.signal("USR1");
    assert_eq!(s.wait_exit(Duration::from_secs(3)), Some(0));
    assert!(t0.elapsed() >= Duration::from_millis(400), "exited after {:?}", t0.elapsed());
}

#[test]
fn daemon_mode_detaches_and_writes_the_pid_file() {
    let be = Backend::echo();
    let port = free_port();
    let dir = temp_dir("daemon");
    let cfg = dir.join("d.cfg");
    let pidfile = dir.join("d.pid");
    std::fs::write(&cfg, listen_cfg(port, &be.addr(), "")).unwrap();
    let st =
        std::process::Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-D", "-p", pidfile.to_str().unwrap(), "-f", cfg.to_str().unwrap()]).status().unwrap();
    assert!(st.success(), "the launching process should exit 0 once the daemon runs");
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert_eq!(echo_through(port, b"through the daemon"), b"through the daemon");
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "daemon still running");
}

#[test]
fn a_port_in_use_fails_start_up_with_an_alert() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = temp_dir("inuse");
    let cfg = dir.join("c.cfg");
    std::fs::write(&cfg, listen_cfg(port, "127.0.0.1:1", "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-d", "-f", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[ALERT]") && err.contains("cannot bind socket"), "{err}");
}

#[test]
fn an_inherited_fd_listener_serves_connections() {
    // The parent binds and listens, and hands the socket over as descriptor 0, as systemd or a
    // previous process would with `fd@N`.
    let be = Backend::echo();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let dir = temp_dir("fd");
    let cfg = dir.join("c.cfg");
    std::fs::write(
        &cfg,
        format!("defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind fd@0\n  server s1 {}\n", be.addr()),
    )
    .unwrap();
    let fd: std::os::fd::OwnedFd = l.into();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluiced"))
        .args(["-d", "-f", cfg.to_str().unwrap()])
        .stdin(std::process::Stdio::from(fd))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let got = echo_through(port, b"over an inherited socket");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert_eq!(got, b"over an inherited socket");
}

#[test]
fn dash_sf_soft_stops_the_old_process_and_dash_st_terminates_it() {
    let be = Backend::echo();
    // -sf: the old process has no session and finishes at once.
    let (p1, p2) = (free_port(), free_port());
    let mut old = Sluiced::start(&listen_cfg(p1, &be.addr(), ""), &[p1]);
    let _new = Sluiced::start_args(&listen_cfg(p2, &be.addr(), ""), &[p2], &["-sf", &old.pid().to_string()]);
    assert_eq!(old.wait_exit(Duration::from_secs(3)), Some(0), "-sf did not stop the old process");
    // -st: the old process goes even with a session open.
    let (p3, p4) = (free_port(), free_port());
    let mut old = Sluiced::start(&listen_cfg(p3, &be.addr(), ""), &[p3]);
    let _open = TcpStream::connect(("127.0.0.1", p3)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let _new = Sluiced::start_args(&listen_cfg(p4, &be.addr(), ""), &[p4], &["-st", &old.pid().to_string()]);
    assert_eq!(old.wait_exit(Duration::from_secs(1)), Some(0), "-st did not terminate the old process");
}

/// The CPUs each worker thread of `pid` may run on, by thread name.
fn worker_cpus(pid: i32) -> std::collections::HashMap<String, String> {
    let mut m = std::collections::HashMap::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_owned();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        if let Some(l) = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")) {
            m.insert(name, l["Cpus_allowed_list:".len()..].trim().to_owned());
        }
    }
    m
}

#[test]
fn cpu_map_pins_each_worker_thread() {
    let be = Backend::echo();
    let port = free_port();
    let cfg = listen_cfg(port, &be.addr(), "").replace("defaults", "global\n  nbthread 2\n  cpu-map auto:1-2 1 0\ndefaults");
    let s = Sluiced::start(&cfg, &[port]);
    let cpus = worker_cpus(s.pid());
    assert_eq!(cpus.get("sluiced-w1").map(String::as_str), Some("1"), "{cpus:?}");
    assert_eq!(cpus.get("sluiced-w2").map(String::as_str), Some("0"), "{cpus:?}");
}
