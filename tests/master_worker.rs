//! Master-worker mode (`-W`, `-Ws`, `master-worker`): the master starts the worker, reloads it on
//! SIGUSR2 or the master CLI's `reload` (keeping the old one when the new configuration is bad),
//! passes runtime API commands to it (`@1 ...`), tells systemd, and stops with it.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn cfg(port: u16, word: &str) -> String {
    format!(
        "global\n  stats timeout 5s\ndefaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request return status 200 content-type text/plain string {word}\n"
    )
}

fn body(port: u16) -> String {
    let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body).into_owned()
}

/// The pids under `# workers` (current) and `# old workers` in `show proc`.
fn workers(show_proc: &str) -> (Vec<i32>, Vec<i32>) {
    let (mut cur, mut old, mut section) = (Vec::new(), Vec::new(), "");
    for l in show_proc.lines() {
        if l.starts_with('#') {
            section = l;
            continue;
        }
        let Some(pid) = l.split_whitespace().next().and_then(|p| p.parse().ok()) else { continue };
        match section {
            "# workers" => cur.push(pid),
            "# old workers" => old.push(pid),
            _ => {}
        }
    }
    (cur, old)
}

fn alive(pid: i32) -> bool {
    // A worker is the master's child: once reaped, its /proc entry is gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
}

fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: not within {within:?}");
}

/// Starts `sluiced -W -S <dir>/master.sock<options>`; returns it and the master CLI's path.
fn start_master(text: &str, port: u16, options: &str) -> (Sluiced, std::path::PathBuf) {
    let dir = temp_dir("mw");
    let sock = dir.join("master.sock");
    let spec = format!("{}{options}", sock.display());
    let s = Sluiced::start_args(text, &[port], &["-W", "-S", spec.as_str()]);
    wait_for("the master CLI", Duration::from_secs(5), || sock.exists());
    (s, sock)
}

#[test]
fn sigusr2_to_the_master_reloads_the_configuration_and_retires_the_old_worker() {
    let port = free_port();
    let (s, sock) = start_master(&cfg(port, "one"), port, "");
    assert_eq!(body(port), "one");
    let (first, old) = workers(&ask(&sock, "show proc"));
    assert_eq!((first.len(), old.len()), (1, 0));
    assert_ne!(first[0], s.pid(), "the master serves no traffic itself");
    std::fs::write(&s.cfg, cfg(port, "two")).unwrap();
    s.signal("USR2");
    wait_for("the new configuration", Duration::from_secs(5), || body(port) == "two");
    wait_for("the old worker to finish", Duration::from_secs(5), || !alive(first[0]) && workers(&ask(&sock, "show proc")).1.is_empty());
    let proc_ = ask(&sock, "show proc");
    let (now, old) = workers(&proc_);
    assert_eq!(old, Vec::<i32>::new(), "{proc_}");
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], first[0]);
    let master = proc_.lines().find(|l| l.contains(" master ")).unwrap();
    assert!(master.starts_with(&s.pid().to_string()), "{proc_}");
    assert!(master.contains("1 [failed: 0]"), "{proc_}");
    // SIGHUP reloads as well.
    std::fs::write(&s.cfg, cfg(port, "three")).unwrap();
    s.signal("HUP");
    wait_for("the third configuration", Duration::from_secs(5), || body(port) == "three");
}

#[test]
fn a_reload_with_a_bad_configuration_keeps_the_old_worker_serving_and_says_it_failed() {
    let port = free_port();
    let (mut s, sock) = start_master(&cfg(port, "good"), port, "");
    let (first, _) = workers(&ask(&sock, "show proc"));
    std::fs::write(&s.cfg, cfg(port, "bad") + "  bogus-keyword here\n").unwrap();
    let answer = ask(&sock, "reload");
    assert!(answer.starts_with("Success=0\n--\n"), "{answer}");
    for _ in 0..5 {
        assert_eq!(body(port), "good");
    }
    let proc_ = ask(&sock, "show proc");
    assert_eq!(workers(&proc_).0, first, "{proc_}");
    assert!(proc_.contains("1 [failed: 1]"), "{proc_}");
    // The prompt says the running configuration is not the file's.
    let mut c = UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"prompt\n").unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"master[ReloadFailed]> ");
    drop(c);
    std::fs::write(&s.cfg, cfg(port, "fixed")).unwrap();
    assert_eq!(ask(&sock, "reload"), "Success=1\n--\n\n");
    // The new worker is ready when `reload` answers; the old one may take a last connection
    // from the shared socket before its SIGUSR1 lands.
    wait_for("the fixed configuration", Duration::from_secs(5), || body(port) == "fixed");
    s.signal("TERM");
    assert_eq!(s.wait_exit(Duration::from_secs(5)), Some(0));
    let err = s.stderr();
    assert!(err.contains("'bogus-keyword' : unknown keyword"), "the bad line is named on the master's standard error:\n{err}");
    assert!(err.contains("Loading failure!"), "{err}");
}

#[test]
fn the_master_cli_passes_commands_to_the_worker_at_its_own_level() {
    let port = free_port();
    let (_s, sock) = start_master(&cfg(port, "x"), port, "");
    let (w, _) = workers(&ask(&sock, "show proc"));
    let info = ask(&sock, "@1 show info");
    assert!(info.contains(&format!("\nPid: {}\n", w[0])), "{info}");
    let stat = ask(&sock, &format!("@!{} show stat", w[0]));
    assert!(stat.starts_with("# pxname,svname,"), "{stat}");
    assert!(ask(&sock, "@!1 show info").starts_with("Can't find the target PID"));
    assert!(ask(&sock, "show version").starts_with(env!("CARGO_PKG_VERSION")));
    // Interactive: `@1` alone moves the session to the worker; `@master` back.
    let mut c = UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"prompt\n@1\nshow info\n@master\nquit\n").unwrap();
    let mut all = String::new();
    c.read_to_string(&mut all).unwrap();
    assert!(all.starts_with(&format!("master> {}> Name: ", w[0])), "{all}");
    assert!(all.ends_with("master> "), "{all}");

    // A master CLI at level user may not reload, and its forwarded commands run at level user.
    let port2 = free_port();
    let (_s2, user_sock) = start_master(&cfg(port2, "y"), port2, ",level,user");
    assert_eq!(ask(&user_sock, "reload"), "Permission denied\n\n");
    assert!(ask(&user_sock, "@1 clear counters").contains("Permission denied"));
    assert!(ask(&user_sock, "@1 show info").contains("Name: "));
}

#[test]
fn sigterm_to_the_master_stops_its_workers_and_exits_0() {
    let port = free_port();
    let (mut s, sock) = start_master(&cfg(port, "x"), port, "");
    let (w, _) = workers(&ask(&sock, "show proc"));
    s.signal("TERM");
    assert_eq!(s.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(!alive(w[0]));
    assert!(!sock.exists(), "the master removes its CLI socket");
    assert!(!is_listening(port));
}

#[test]
fn a_worker_that_dies_stops_the_master_with_its_status_unless_no_exit_on_failure() {
    let port = free_port();
    let (mut s, sock) = start_master(&cfg(port, "x"), port, "");
    let (w, _) = workers(&ask(&sock, "show proc"));
    Command::new("kill").args(["-KILL", &w[0].to_string()]).status().unwrap();
    assert_eq!(s.wait_exit(Duration::from_secs(5)), Some(137), "128 + SIGKILL, as HAProxy's master");
    let err = s.stderr();
    assert!(err.contains(&format!("Current worker ({}) exited with code 137 (Killed)", w[0])), "{err}");

    // `master-worker no-exit-on-failure` in the configuration, without -W.
    let port = free_port();
    let dir = temp_dir("mw-noexit");
    let sock = dir.join("m.sock");
    let text = cfg(port, "again").replacen("global\n", "global\n  master-worker no-exit-on-failure\n", 1);
    let s = Sluiced::start_args(&text, &[port], &["-S", sock.to_str().unwrap()]);
    wait_for("the master CLI", Duration::from_secs(5), || sock.exists());
    let (w, _) = workers(&ask(&sock, "show proc"));
    Command::new("kill").args(["-KILL", &w[0].to_string()]).status().unwrap();
    wait_for("the worker to be reaped", Duration::from_secs(5), || workers(&ask(&sock, "show proc")).0.is_empty());
    assert!(alive(s.pid()), "the master waits");
    // The master keeps the listening socket: a client connecting while no worker runs waits in
    // its queue and is served by the next worker. (The pause lets a uring worker's ring, torn
    // down after the process, drop the accept it had in flight first.)
    std::thread::sleep(Duration::from_millis(200));
    assert!(is_listening(port));
    let early = std::thread::spawn(move || body(port));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(ask(&sock, "reload"), "Success=1\n--\n\n");
    assert_eq!(body(port), "again");
    assert_eq!(early.join().unwrap(), "again");
}

#[test]
fn a_master_that_is_killed_takes_its_worker_with_it() {
    let port = free_port();
    let (mut s, sock) = start_master(&cfg(port, "x"), port, "");
    let (w, _) = workers(&ask(&sock, "show proc"));
    s.signal("KILL");
    s.wait_exit(Duration::from_secs(5));
    // The worker is re-parented once the master is gone; it leaves on its own.
    wait_for("the orphaned worker to leave", Duration::from_secs(5), || !alive(w[0]));
    wait_for("the port to close", Duration::from_secs(5), || !is_listening(port));
}

/// Reads notifications from the `NOTIFY_SOCKET` until one contains `want`.
fn notified(sock: &UnixDatagram, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.lines().any(|l| l == want) {
                return msg;
            }
        }
    }
    panic!("no '{want}' notification within 5 s");
}

#[test]
fn with_ws_the_master_tells_systemd_when_it_is_ready_and_when_it_reloads() {
    let port = free_port();
    let dir = temp_dir("mw-notify");
    let notify_path = dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let s = Sluiced::start_with(&cfg(port, "one"), &[port], &["-Ws"], |c| {
        c.env("NOTIFY_SOCKET", &notify_path);
    });
    let ready = notified(&notify, "READY=1");
    assert!(ready.contains(&format!("MAINPID={}", s.pid())), "{ready}");
    std::fs::write(&s.cfg, cfg(port, "two")).unwrap();
    s.signal("USR2");
    notified(&notify, "RELOADING=1");
    notified(&notify, "READY=1");
    wait_for("the new worker to answer", Duration::from_secs(5), || body(port) == "two");
    s.signal("TERM");
    notified(&notify, "STOPPING=1");
}

#[test]
fn in_the_background_the_pid_file_names_the_master() {
    let port = free_port();
    let dir = temp_dir("mw-daemon");
    let (cfg_path, pidfile) = (dir.join("c.cfg"), dir.join("pid"));
    std::fs::write(&cfg_path, cfg(port, "bg")).unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_sluiced"))
        .args(["-W", "-D", "-p", pidfile.to_str().unwrap(), "-f", cfg_path.to_str().unwrap()])
        .args(backend_override())
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let master: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    wait_for("the worker to listen", Duration::from_secs(5), || is_listening(port));
    assert_eq!(body(port), "bg");
    let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap();
    let worker: i32 = children.split_whitespace().next().expect("the master has a worker").parse().unwrap();
    let cmdline = std::fs::read(format!("/proc/{worker}/cmdline")).unwrap();
    assert!(!cmdline.split(|&b| b == 0).any(|a| a == b"-D" || a == b"-W" || a == b"-p"), "the worker runs without the master's flags");
    Command::new("kill").args(["-TERM", &master.to_string()]).status().unwrap();
    wait_for("the master to exit", Duration::from_secs(5), || !alive(master));
    assert!(!alive(worker));
}

/// The master passes the listening sockets from one worker to the next, and a worker told to
/// finish stops accepting without closing them: clients connecting all through a series of
/// reloads are all answered (with `-sf` and no master, connections waiting in the old process's
/// queue when it leaves are reset).
#[test]
fn reloads_under_load_lose_no_connection() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let port = free_port();
    let (s, sock) = start_master(&cfg(port, "v0"), port, "");
    let (first, _) = workers(&ask(&sock, "show proc"));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let got = (|| -> std::io::Result<Vec<u8>> {
                        let mut c = std::net::TcpStream::connect(("127.0.0.1", port))?;
                        c.set_read_timeout(Some(Duration::from_secs(5)))?;
                        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
                        let mut out = Vec::new();
                        c.read_to_end(&mut out)?;
                        Ok(out)
                    })();
                    match got {
                        Ok(r) if r.starts_with(b"HTTP/1.1 200") => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failed.lock().unwrap().push(format!("answer {:?}", String::from_utf8_lossy(&r))),
                        Err(e) => failed.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    for round in 1..=20 {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::write(&s.cfg, cfg(port, &format!("v{round}"))).unwrap();
        s.signal("USR2");
    }
    wait_for("the last configuration", Duration::from_secs(5), || body(port) == "v20");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failed = failed.lock().unwrap();
    assert!(failed.is_empty(), "{} of {} requests failed: {:?}", failed.len(), failed.len() + ok.load(Ordering::Relaxed), &failed[..failed.len().min(5)]);
    assert!(ok.load(Ordering::Relaxed) > 100, "too few requests to say anything: {}", ok.load(Ordering::Relaxed));
    assert!(!alive(first[0]), "the first worker has finished");
}

/// Debian's `haproxy.service` checks the file before a reload with the start-up flags plus `-c
/// -q`: that must check and exit, not start a master.
#[test]
fn the_systemd_units_check_line_checks_and_exits() {
    let dir = temp_dir("mw-check");
    let (good, bad, sock) = (dir.join("good.cfg"), dir.join("bad.cfg"), dir.join("m.sock"));
    std::fs::write(&good, cfg(free_port(), "x")).unwrap();
    std::fs::write(&bad, cfg(free_port(), "x") + "  bogus-keyword\n").unwrap();
    let check = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_sluiced"))
            .args(["-Ws", "-f", file.to_str().unwrap(), "-c", "-q", "-S", sock.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let ok = check(&good);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let ko = check(&bad);
    assert_eq!(ko.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&ko.stderr).contains("bad.cfg:9"), "{}", String::from_utf8_lossy(&ko.stderr));
    assert!(!sock.exists(), "a check opens no master CLI");
}
