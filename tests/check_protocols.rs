//! The protocol check conversations (`option pgsql-check`, `mysql-check`, `redis-check`, the
//! agent check, `ssl-hello-chk`) against real servers started by the tests on loopback ports:
//! PostgreSQL, Redis and MariaDB from the Debian packages `postgresql`, `redis-server` and
//! `mariadb-server`, and `openssl s_server` (`scripts/test.sh` installs them). A missing binary
//! fails the test with a clear message.
//!
//! The check engine is not involved: a small driver here connects, runs the conversation over the
//! socket (start → send → received with all data → ... → closed/timed out), and returns its
//! outcome.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluiced::check::config::CheckStatus;
use sluiced::check::proto::{Conversation, Outcome, Step, agent, mysql, pgsql, redis, ssl_hello};
use support::*;

/// Runs a conversation over a fresh connection to `port`, within 10 s.
fn converse(port: u16, mut c: Box<dyn Conversation>) -> Outcome {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut data = Vec::new();
    let mut step = c.start();
    loop {
        match step {
            Step::Done(o) => return o,
            Step::Send(bytes) => {
                if s.write_all(&bytes).is_err() {
                    return c.closed(&data);
                }
            }
            Step::NeedMore => {}
        }
        let mut buf = [0u8; 4096];
        loop {
            if Instant::now() > deadline {
                return c.timed_out();
            }
            match s.read(&mut buf) {
                Ok(0) => return c.closed(&data),
                Ok(n) => {
                    data.extend_from_slice(&buf[..n]);
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(_) => return c.closed(&data),
            }
        }
        step = c.received(&data);
    }
}

fn need(bin: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .chain(glob_pg_bins())
        .map(|d| d.join(bin))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("'{bin}' is not installed: run scripts/test.sh (it installs postgresql, redis-server and mariadb-server), or apt-get install them")
    })
}

/// Debian keeps the PostgreSQL server binaries in /usr/lib/postgresql/<version>/bin.
fn glob_pg_bins() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect()).unwrap_or_default();
    v.sort();
    v.reverse();
    v
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

fn wait_listening(port: u16, child: &mut Child, what: &str, log: Option<&Path>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = || log.map(|l| std::fs::read_to_string(l).unwrap_or_default()).unwrap_or_default();
    while Instant::now() < deadline {
        if is_listening(port) {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited early with {st}\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port}\n{}", log());
}

/// A child process killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis(extra: &[&str]) -> (Server, u16) {
    let port = free_port();
    let mut s = Server(
        Command::new(need("redis-server"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server"),
    );
    wait_listening(port, &mut s.0, "redis-server", None);
    (s, port)
}

#[test]
fn redis_check_passes_on_a_live_redis_and_fails_on_noauth() {
    let (_open, port) = start_redis(&[]);
    assert_eq!(converse(port, redis::redis()), Outcome::new(CheckStatus::L7Ok, "Redis server is ok"));

    let (_locked, port) = start_redis(&["--requirepass", "s3cret"]);
    let o = converse(port, redis::redis());
    assert_eq!(o.status, CheckStatus::L7Sts, "{o:?}");
    assert!(o.info.starts_with("-NOAUTH"), "{o:?}");
    assert!(!o.passed());
}

#[test]
fn a_stopped_server_refuses_the_connection() {
    // What the engine reports as L4CON: the conversation never starts.
    let (server, port) = start_redis(&[]);
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_listening(port) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(TcpStream::connect(("127.0.0.1", port)).unwrap_err().kind(), ErrorKind::ConnectionRefused);
}

/// A PostgreSQL cluster in a temporary directory, run as the `postgres` user when the tests run
/// as root (the server refuses to run as root). Its pg_hba.conf: `postgres` and unknown users are
/// trusted, `scram_user` must give a SCRAM password, `rejected` is always refused.
struct Postgres {
    dir: PathBuf,
    pg_ctl: PathBuf,
    port: u16,
}

impl Postgres {
    fn as_postgres(cmd: &Path) -> Command {
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(cmd);
            c
        } else {
            Command::new(cmd)
        }
    }

    fn start() -> Postgres {
        let initdb = need("initdb");
        let pg_ctl = need("pg_ctl");
        let port = free_port();
        let dir = temp_dir("pgcheck");
        if is_root() {
            assert!(Command::new("chown").args(["-R", "postgres:postgres", dir.to_str().unwrap()]).status().unwrap().success());
        }
        let data = dir.join("data");
        let out = Self::as_postgres(&initdb).args(["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"]).output().unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let hba = "local all all trust\n\
                   host all rejected 127.0.0.1/32 reject\n\
                   host all scram_user 127.0.0.1/32 scram-sha-256\n\
                   host all all 127.0.0.1/32 trust\n";
        let out = Self::as_postgres(Path::new("sh")).args(["-c", &format!("printf '%s' \"$1\" > {}/pg_hba.conf", data.display()), "sh", hba]).output().unwrap();
        assert!(out.status.success(), "pg_hba.conf: {}", String::from_utf8_lossy(&out.stderr));
        let opts = format!("-p {port} -k {} -h 127.0.0.1 -c fsync=off", dir.display());
        let out = Self::as_postgres(&pg_ctl)
            .args(["-D", data.to_str().unwrap(), "-o", &opts, "-l", dir.join("log").to_str().unwrap(), "-w", "-t", "60", "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}{}", String::from_utf8_lossy(&out.stdout), std::fs::read_to_string(dir.join("log")).unwrap_or_default());
        Postgres { dir, pg_ctl, port }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Self::as_postgres(&self.pg_ctl).args(["-D", self.dir.join("data").to_str().unwrap(), "-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn pgsql_check_against_a_real_postgresql() {
    let pg = Postgres::start();
    let ok = Outcome::new(CheckStatus::L7Ok, "PostgreSQL server is ok");
    // Trusted: AuthenticationOk.
    assert_eq!(converse(pg.port, pgsql::pgsql("postgres")), ok);
    // A password is asked (SASL): the server is up, as HAProxy judges it.
    assert_eq!(converse(pg.port, pgsql::pgsql("scram_user")), ok);
    // An unknown role under `trust`: PostgreSQL sends AuthenticationOk before it looks the role
    // up, and like HAProxy the check judges that first message only.
    assert_eq!(converse(pg.port, pgsql::pgsql("nobody")), ok);
    // Refused by pg_hba.conf.
    let o = converse(pg.port, pgsql::pgsql("rejected"));
    assert_eq!(o.status, CheckStatus::L7Rsp, "{o:?}");
    assert!(o.info.starts_with("FATAL: pg_hba.conf rejects connection"), "{o:?}");
    assert!(o.info.contains("user \"rejected\""), "{o:?}");
    assert_eq!(sluiced::check::proto::reason(o.status), "Layer7 invalid response");
}

/// A MariaDB server in a temporary directory, with a password-less `haproxy` user created by an
/// init file. As root it runs with `--user=root`; otherwise as the current user.
struct MariaDb {
    dir: PathBuf,
    server: Option<Server>,
    port: u16,
}

impl MariaDb {
    fn start() -> MariaDb {
        let install = need("mariadb-install-db");
        let mariadbd = need("mariadbd");
        let dir = temp_dir("mariadb");
        let data = dir.join("data");
        let user: &[&str] = if is_root() { &["--user=root"] } else { &[] };
        let out = Command::new(&install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(user)
            .output()
            .unwrap();
        assert!(out.status.success(), "mariadb-install-db: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let init = dir.join("init.sql");
        std::fs::write(&init, "CREATE USER IF NOT EXISTS 'haproxy'@'localhost';\nCREATE USER IF NOT EXISTS 'haproxy'@'127.0.0.1';\n").unwrap();
        let port = free_port();
        let log = dir.join("log");
        let mut server = Server(
            Command::new(&mariadbd)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}", dir.join("sock").display()))
                .arg(format!("--pid-file={}", dir.join("pid").display()))
                .arg(format!("--init-file={}", init.display()))
                .arg(format!("--log-error={}", log.display()))
                .arg(format!("--port={port}"))
                .args(["--bind-address=127.0.0.1", "--skip-log-bin", "--innodb-buffer-pool-size=16M"])
                .args(user)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start mariadbd"),
        );
        wait_listening(port, &mut server.0, "mariadbd", Some(&log));
        MariaDb { dir, server: Some(server), port }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn mysql_check_against_a_real_mariadb() {
    let db = MariaDb::start();
    // Without a user: the handshake is enough; the info is the server version.
    let o = converse(db.port, mysql::mysql(None, true));
    assert_eq!(o.status, CheckStatus::L7Ok, "{o:?}");
    assert!(o.info.contains("MariaDB"), "{o:?}");
    // An existing password-less user logs in.
    let o = converse(db.port, mysql::mysql(Some("haproxy"), true));
    assert_eq!(o.status, CheckStatus::L7Ok, "{o:?}");
    assert!(o.info.contains("MariaDB"), "{o:?}");
    // The same in the pre-4.1 format.
    let o = converse(db.port, mysql::mysql(Some("haproxy"), false));
    assert_eq!(o.status, CheckStatus::L7Ok, "{o:?}");
    let o = converse(db.port, mysql::mysql(Some("nobody"), false));
    assert_eq!((o.status, o.code), (CheckStatus::L7Sts, Some(1045)), "{o:?}");
    assert!(o.info.starts_with("Access denied for user 'nobody'@"), "{o:?}");
    // An unknown user: the server's error.
    let o = converse(db.port, mysql::mysql(Some("nobody"), true));
    assert_eq!(o.status, CheckStatus::L7Sts, "{o:?}");
    assert_eq!(o.code, Some(1045), "{o:?}");
    assert!(o.info.starts_with("Access denied for user 'nobody'@"), "{o:?}");
}

#[test]
fn agent_check_reads_the_agents_line() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !got.ends_with(b"\n") {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        c.write_all(b"75%, maxconn:10 drain # nightly backup\r\n").unwrap();
        got
    });
    let o = converse(port, agent::agent(Some("status web1\n")));
    assert_eq!(t.join().unwrap(), b"status web1\n");
    assert_eq!(o, Outcome::new(CheckStatus::L7Ok, "75%, maxconn:10 drain # nightly backup"));
    let r = agent::parse_agent_reply(&o.info);
    assert_eq!(r.weight_for(20), Some(15));
    assert_eq!(r.maxconn, Some(10));
    assert_eq!(r.admin, Some(agent::AgentAdmin::Drain));
    assert_eq!(r.description.as_deref(), Some("nightly backup"));
}

/// Waits (at most 5 s) until sluiced's stderr so far contains `what`; returns all of it.
fn stderr_until(s: &mut Sluiced, what: &str) -> String {
    s.signal("TERM");
    s.wait_exit(Duration::from_secs(5));
    let err = s.stderr();
    assert!(err.contains(what), "expected {what:?} in sluiced's stderr:\n{err}");
    err
}

#[test]
fn redis_check_through_the_engine_marks_a_password_protected_redis_down() {
    let (_open, open_port) = start_redis(&[]);
    let (_locked, locked_port) = start_redis(&["--requirepass", "s3cret"]);
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 1\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nlisten redis\n  bind 127.0.0.1:{port}\n  option redis-check\n  default-server check inter 100ms rise 1 fall 1\n  server open 127.0.0.1:{open_port}\n  server locked 127.0.0.1:{locked_port}\n"
    );
    let mut s = Sluiced::start(&cfg, &[port]);
    std::thread::sleep(Duration::from_millis(800));
    // Only the open Redis answers through the proxy now: every PING gets +PONG.
    for _ in 0..6 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"PING\r\n").unwrap();
        let mut b = [0u8; 64];
        let n = c.read(&mut b).unwrap();
        assert_eq!(&b[..n], b"+PONG\r\n");
    }
    let err = stderr_until(&mut s, "Server redis/locked is DOWN, reason: Layer7 wrong status");
    assert!(err.contains("info: \"-NOAUTH"), "{err}");
    assert!(!err.contains("Server redis/open is DOWN"), "{err}");
}

/// `openssl s_server` on a free loopback port with a fresh self-signed certificate.
fn start_tls_server(dir: &Path) -> (Server, u16) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=check"])
        .args(["-keyout", "k.pem", "-out", "c.pem"])
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    let mut s = Server(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-accept", &format!("127.0.0.1:{port}"), "-cert", "c.pem", "-key", "k.pem"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server"),
    );
    wait_listening(port, &mut s.0, "openssl s_server", None);
    (s, port)
}

#[test]
fn ssl_hello_check_passes_a_tls_server_and_fails_a_plain_http_server() {
    let dir = temp_dir("ssl-hello");
    let (_tls, tls_port) = start_tls_server(&dir);
    let o = converse(tls_port, ssl_hello::ssl_hello());
    assert_eq!(o.status, CheckStatus::L6Ok, "{o:?}");
    assert_eq!(o.info, "TLS server answered the hello", "a TLS 1.2 server answers with its ServerHello: {o:?}");

    let plain = Backend::start(|mut c| {
        let mut b = [0u8; 1024];
        let _ = c.read(&mut b);
        let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    });
    assert_eq!(converse(plain.port, ssl_hello::ssl_hello()).status, CheckStatus::L6Rsp);
}

#[test]
fn ssl_hello_check_through_the_engine_keeps_the_tls_server_up_and_marks_the_plain_one_down() {
    let dir = temp_dir("ssl-hello-engine");
    let (_tls, tls_port) = start_tls_server(&dir);
    let plain = Backend::start(|mut c| {
        let mut b = [0u8; 1024];
        let _ = c.read(&mut b);
        let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    });
    let port = free_port();
    let sock = dir.join("s.sock");
    let cfg = format!(
        "global\n  nbthread 1\n  stats socket {}\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n  timeout check 1s\nlisten tls\n  bind 127.0.0.1:{port}\n  option ssl-hello-chk\n  default-server check inter 100ms rise 1 fall 1\n  server tls 127.0.0.1:{tls_port}\n  server plain 127.0.0.1:{}\n",
        sock.display(),
        plain.port
    );
    let mut s = Sluiced::start(&cfg, &[port]);
    let stat = ask_until(&sock, "show stat", Duration::from_secs(5), |out| {
        out.lines().any(|l| l.starts_with("tls,plain,") && l.contains(",DOWN,")) && out.lines().any(|l| l.starts_with("tls,tls,") && l.contains(",L6OK,"))
    });
    let row = |name: &str| stat.lines().find(|l| l.starts_with(&format!("tls,{name},"))).unwrap_or_else(|| panic!("no row {name}:\n{stat}")).to_string();
    assert!(row("tls").contains(",UP,"), "{}", row("tls"));
    assert!(row("plain").contains(",L6RSP,"), "{}", row("plain"));
    let err = stderr_until(&mut s, "Server tls/plain is DOWN, reason: Layer6 invalid response");
    assert!(!err.contains("Server tls/tls is DOWN"), "{err}");
}
