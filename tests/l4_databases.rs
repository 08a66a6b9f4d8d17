//! Real database servers behind `mode tcp`: a PostgreSQL and a Redis started by the test, queried
//! with `psql` and `redis-cli` through sluiced. `scripts/test.sh` installs them (Debian packages
//! `postgresql` and `redis-server`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn need(bin: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(glob_pg_bins())
        .map(|d| d.join(bin))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("'{bin}' is not installed: run scripts/test.sh (it installs postgresql and redis-server), or apt-get install them"))
}

/// Debian keeps the PostgreSQL server binaries in /usr/lib/postgresql/<version>/bin.
fn glob_pg_bins() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect()).unwrap_or_default();
    v.sort();
    v.reverse();
    v
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if is_listening(port) {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited early with {st}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port}");
}

fn tcp_listen(port: u16, server_port: u16, opts: &str) -> String {
    format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\nlisten db\n  bind 127.0.0.1:{port}\n  server db1 127.0.0.1:{server_port} {opts}\n"
    )
}

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn redis_answers_redis_cli_through_the_proxy() {
    let server = need("redis-server");
    let cli = need("redis-cli");
    let rport = free_port();
    let mut redis = Redis(
        Command::new(server)
            .args(["--port", &rport.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server"),
    );
    wait_listening(rport, &mut redis.0, "redis-server");
    let port = free_port();
    let _s = Sluiced::start(&tcp_listen(port, rport, ""), &[port]);
    let run = |args: &[&str]| {
        let out = Command::new(&cli).args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(run(&["PING"]), "PONG");
    assert_eq!(run(&["SET", "sluiced:key", "through the proxy"]), "OK");
    assert_eq!(run(&["GET", "sluiced:key"]), "through the proxy");
    // A pipeline of many commands on one connection.
    let out = Command::new(&cli)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let mut input = String::new();
            for i in 0..1000 {
                input.push_str(&format!("SET k{i} v{i}\r\n"));
            }
            c.stdin.take().unwrap().write_all(input.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("replies: 1000"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(run(&["GET", "k999"]), "v999");
}

/// A PostgreSQL cluster in a temporary directory, run as the `postgres` user (the server refuses
/// to run as root).
struct Postgres {
    dir: PathBuf,
    pg_ctl: PathBuf,
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

    fn start(port: u16) -> Postgres {
        let initdb = need("initdb");
        let pg_ctl = need("pg_ctl");
        let dir = temp_dir("pg");
        if is_root() {
            assert!(Command::new("chown").args(["-R", "postgres:postgres", dir.to_str().unwrap()]).status().unwrap().success());
        }
        let data = dir.join("data");
        let out = Self::as_postgres(&initdb).args(["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"]).output().unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let opts = format!("-p {port} -k {} -h 127.0.0.1 -c fsync=off", dir.display());
        let out = Self::as_postgres(&pg_ctl)
            .args(["-D", data.to_str().unwrap(), "-o", &opts, "-l", dir.join("log").to_str().unwrap(), "-w", "-t", "30", "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}{}", String::from_utf8_lossy(&out.stdout), std::fs::read_to_string(dir.join("log")).unwrap_or_default());
        Postgres { dir, pg_ctl }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Self::as_postgres(&self.pg_ctl).args(["-D", self.dir.join("data").to_str().unwrap(), "-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn postgresql_answers_psql_through_the_proxy() {
    let psql = need("psql");
    let pport = free_port();
    let _pg = Postgres::start(pport);
    let port = free_port();
    let _s = Sluiced::start(&tcp_listen(port, pport, ""), &[port]);
    let q = |sql: &str| {
        let out =
            Command::new(&psql).args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "postgres", "-tA", "-c", sql]).output().unwrap();
        assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(q("select 41 + 1"), "42");
    q("create table t (id int primary key, v text)");
    q("insert into t select g, md5(g::text) from generate_series(1, 5000) g");
    assert_eq!(q("select count(*) from t"), "5000");
    // A large result crosses the proxy in many segments.
    let big = q("select string_agg(v, '') from t");
    assert_eq!(big.len(), 5000 * 32);
}
