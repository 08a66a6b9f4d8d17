//! Stick-table replication over the peers protocol: between sluiced nodes, with a real HAProxy
//! node, across a reload, and what a node that speaks it wrongly gets.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

/// A node's configuration: a peers section `mesh` with `peers` (name, port), an HTTP frontend
/// that tracks the `x-user` header in the replicated table `be` and answers by itself.
fn node_cfg(sock: &Path, http: u16, peers: &[(&str, u16)], store: &str) -> String {
    let peer_lines: String = peers.iter().map(|(n, p)| format!("    peer {n} 127.0.0.1:{p}\n")).collect();
    format!(
        "global\n    stats socket {} level admin\npeers mesh\n{peer_lines}defaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 1s\n\
         frontend fe\n    bind 127.0.0.1:{http}\n    http-request track-sc0 req.hdr(x-user) table be\n    http-request sc-inc-gpc0(0) if {{ req.hdr(x-flag) -m found }}\n\
         \x20   http-request return status 200 content-type text/plain string \"ok\\n\"\n\
         backend be\n    stick-table type string size 1k expire 1m peers mesh store {store}\n",
        sock.display()
    )
}

fn request(port: u16, user: &str, flag: bool) {
    let flag = if flag { "X-Flag: 1\r\n" } else { "" };
    let (status, _, _) = http_request(port, format!("GET / HTTP/1.1\r\nHost: x\r\nX-User: {user}\r\n{flag}Connection: close\r\n\r\n").as_bytes());
    assert_eq!(status, 200);
}

/// The `show table be` line of `key`, once it has `want` in it (within 5 s).
fn entry_with(sock: &Path, key: &str, want: &str) -> String {
    let t = ask_until(sock, "show table be", Duration::from_secs(5), |t| t.lines().any(|l| l.contains(&format!("key={key} ")) && l.contains(want)));
    t.lines().find(|l| l.contains(&format!("key={key} "))).map(str::to_owned).unwrap_or_else(|| panic!("no entry {key} with {want}:\n{t}"))
}

fn show_peers_until(sock: &Path, ok: impl Fn(&str) -> bool) -> String {
    ask_until(sock, "show peers", Duration::from_secs(8), ok)
}

#[test]
fn two_sluiced_nodes_replicate_tracked_entries_both_ways() {
    let (pa, pb, ha, hb) = (free_port(), free_port(), free_port(), free_port());
    let (da, db) = (temp_dir("peers-a"), temp_dir("peers-b"));
    let (sa, sb) = (da.join("s.sock"), db.join("s.sock"));
    let peers = [("a", pa), ("b", pb)];
    let store = "http_req_cnt,http_req_rate(10s),gpc0,conn_cur";
    let _a = Sluiced::start_args(&node_cfg(&sa, ha, &peers, store), &[ha, pa], &["-L", "a"]);
    let _b = Sluiced::start_args(&node_cfg(&sb, hb, &peers, store), &[hb, pb], &["-L", "b"]);
    show_peers_until(&sa, |t| t.contains("id=b(remote,active)") && t.contains("last_status=ESTA"));
    for _ in 0..3 {
        request(ha, "alice", false);
    }
    request(hb, "bob", true);
    // Each node learns the other's entry with its counters; the rate carries its events.
    let l = entry_with(&sb, "alice", "http_req_cnt=3");
    assert!(l.contains("http_req_rate(10000)=3"), "{l}");
    let l = entry_with(&sa, "bob", "gpc0=1");
    assert!(l.contains("http_req_cnt=1"), "{l}");
    // A key both nodes update: the last change wins on both, as with HAProxy.
    request(hb, "alice", false);
    entry_with(&sa, "alice", "http_req_cnt=4");
    // conn_cur stays each node's own (no stream holds the entry now: 0 on both), and the
    // learned expiry is the table's.
    let l = entry_with(&sa, "alice", "conn_cur=0");
    let exp: u64 = l.split("exp=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(exp > 50_000 && exp <= 60_000, "{l}");
}

#[test]
fn a_node_started_later_is_taught_the_running_nodes_entries() {
    let (pa, pb, ha, hb) = (free_port(), free_port(), free_port(), free_port());
    let (da, db) = (temp_dir("peers-a"), temp_dir("peers-b"));
    let (sa, sb) = (da.join("s.sock"), db.join("s.sock"));
    let peers = [("a", pa), ("b", pb)];
    let store = "http_req_cnt,gpc0";
    let _a = Sluiced::start_args(&node_cfg(&sa, ha, &peers, store), &[ha, pa], &["-L", "a"]);
    for u in ["u1", "u2", "u3"] {
        request(ha, u, true);
    }
    // `b` starts after the changes were made: it asks `a` for a full resync on connecting.
    let _b = Sluiced::start_args(&node_cfg(&sb, hb, &peers, store), &[hb, pb], &["-L", "b"]);
    for u in ["u1", "u2", "u3"] {
        entry_with(&sb, u, "gpc0=1 http_req_cnt=1");
    }
    let p = show_peers_until(&sb, |t| t.contains("resync_timeout=<PAST>"));
    assert!(p.contains("id=a(remote,active)"), "{p}");
}

#[test]
fn a_reload_hands_the_stick_table_to_the_new_process() {
    let (pp, hp) = (free_port(), free_port());
    let d = temp_dir("peers-reload");
    let sock = d.join("s.sock");
    // One node: the section only keeps the table across reloads.
    let cfg = node_cfg(&sock, hp, &[("lb1", pp)], "http_req_cnt,gpc0");
    let mut old = Sluiced::start_args(&cfg, &[hp, pp], &["-L", "lb1"]);
    for _ in 0..4 {
        request(hp, "carol", false);
    }
    request(hp, "dave", true);
    entry_with(&sock, "carol", "http_req_cnt=4");
    let pid = old.pid().to_string();
    let _new = Sluiced::start_args(&cfg, &[], &["-L", "lb1", "-sf", &pid]);
    assert!(old.wait_exit(Duration::from_secs(8)).is_some(), "the old process did not stop");
    let l = entry_with(&sock, "carol", "http_req_cnt=4");
    // The expiry goes on from where it was, not from the reload.
    let exp: u64 = l.split("exp=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(exp < 60_000, "{l}");
    entry_with(&sock, "dave", "gpc0=1");
    // The new process counts on from what it was handed.
    request(hp, "carol", false);
    entry_with(&sock, "carol", "http_req_cnt=5");
}

/// A HAProxy node, stopped when dropped.
struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy(cfg_text: &str, dir: &Path, name: &str, wait: &[u16]) -> Haproxy {
    let cfg: PathBuf = dir.join("haproxy.cfg");
    std::fs::write(&cfg, cfg_text).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f", cfg.to_str().unwrap(), "-L", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy is installed (.ci/run installs it)");
    let h = Haproxy(child);
    for &p in wait {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !is_listening(p) {
            assert!(std::time::Instant::now() < until, "haproxy did not listen on {p}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    h
}

#[test]
fn haproxy_and_sluiced_nodes_share_one_table() {
    let (ps, ph, hs, hh) = (free_port(), free_port(), free_port(), free_port());
    let (ds, dh) = (temp_dir("peers-s"), temp_dir("peers-h"));
    let (ss, sh) = (ds.join("s.sock"), dh.join("h.sock"));
    let peers = [("sl", ps), ("ha", ph)];
    // HAProxy's default string key (31 bytes and a zero) is sluiced's: the definitions match.
    let store = "http_req_cnt,http_req_rate(10s),gpc0,gpt0";
    let _s = Sluiced::start_args(&node_cfg(&ss, hs, &peers, store), &[hs, ps], &["-L", "sl"]);
    let _h = haproxy(&node_cfg(&sh, hh, &peers, store), &dh, "ha", &[hh, ph]);
    show_peers_until(&ss, |t| t.contains("id=ha(remote,active)") && t.contains("last_status=ESTA"));
    request(hs, "erin", true);
    request(hs, "erin", false);
    let l = entry_with(&sh, "erin", "http_req_cnt=2");
    assert!(l.contains("gpc0=1") && l.contains("http_req_rate(10000)=2"), "HAProxy learned: {l}");
    for _ in 0..3 {
        request(hh, "frank", false);
    }
    ask(&sh, "set table be key frank data.gpt0 9");
    let l = entry_with(&ss, "frank", "gpt0=9");
    assert!(l.contains("http_req_cnt=3") && l.contains("http_req_rate(10000)=3"), "sluiced learned: {l}");
    // HAProxy's view of the session: established, and acknowledging sluiced's updates.
    let p = ask(&sh, "show peers");
    assert!(p.contains("id=sl(remote,active)") && p.contains("last_status=ESTA"), "{p}");
    let p = ask(&ss, "show peers");
    assert!(p.contains("proto_err=0"), "{p}");
}

/// Connects to a peers listener and sends `hello`; returns the stream and the status line.
fn hello(port: u16, text: &str) -> (TcpStream, String) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(text.as_bytes()).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while c.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    (c, String::from_utf8(line).unwrap())
}

#[test]
fn a_peer_speaking_the_protocol_wrongly_gets_haproxys_status_or_an_error() {
    let (pa, pb, ha) = (free_port(), free_port(), free_port());
    let d = temp_dir("peers-bad");
    let sock = d.join("s.sock");
    let _a = Sluiced::start_args(&node_cfg(&sock, ha, &[("a", pa), ("b", pb)], "gpc0"), &[ha, pa], &["-L", "a"]);
    assert_eq!(hello(pa, "HAProxyS 3.0\na\nb 1 1\n").1, "502", "another major version");
    assert_eq!(hello(pa, "GET / HTTP/1.1\r\n\r\n\r\n").1, "501", "not the protocol");
    assert_eq!(hello(pa, "HAProxyS 2.1\nnot-me\nb 1 1\n").1, "503", "names another node");
    assert_eq!(hello(pa, "HAProxyS 2.1\na\nstranger 1 1\n").1, "504", "not a peer of the section");
    let (mut c, status) = hello(pa, "HAProxyS 2.1\na\nb 1 1\n");
    assert_eq!(status, "200");
    // An update before any table definition is ignored; a reserved class is an error: the node
    // answers with a protocol error message and closes.
    c.write_all(&[10, 0x80, 5, 0, 0, 0, 1, 0]).unwrap();
    c.write_all(&[255, 0]).unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.ends_with(&[1, 0]), "{rest:?}");
    let p = show_peers_until(&sock, |t| t.contains("proto_err=1"));
    assert!(p.contains("id=b(remote,"), "{p}");
}

#[test]
fn peers_sections_refuse_bad_lines_with_file_line_and_keyword() {
    let d = temp_dir("peers-cfg");
    let check = |text: &str| {
        let f = d.join("bad.cfg");
        std::fs::write(&f, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-c", "-f", f.to_str().unwrap(), "-L", "a"]).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let head = "defaults\n    mode tcp\n    timeout client 1s\n    timeout server 1s\n    timeout connect 1s\nfrontend f\n    bind 127.0.0.1:1\n    default_backend be\n";
    let (code, err) = check(&format!("peers p\n    peer a 127.0.0.1\n{head}backend be\n    stick-table type ip size 1 peers p\n"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bad.cfg:2") && err.contains("'peer'") && err.contains("missing port"), "{err}");
    let (code, err) = check(&format!("peers p\n    peer a 127.0.0.1:1000\n    frobnicate 1\n{head}backend be\n    stick-table type ip size 1 peers p\n"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bad.cfg:3") && err.contains("unknown keyword 'frobnicate' in 'peers' section"), "{err}");
    let (code, err) =
        check(&format!("peers p\n    peer a 127.0.0.1:1000\n    peer b 127.0.0.1:1000\n{head}backend be\n    stick-table type ip size 1 peers p\n"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bad.cfg:3") && err.contains("has the address of another peer"), "{err}");
    let (code, err) = check(&format!("peers p\n    peer a 127.0.0.1:1000\n{head}backend be\n    stick-table type ip size 1 peers q\n"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("unable to find peers section 'q'") && err.contains("did you mean 'p'"), "{err}");
    // No node of this name in the section: it is left out with HAProxy's warning, and the
    // configuration is still valid.
    let (code, err) = check(&format!("peers p\n    peer z 127.0.0.1:1000\n{head}backend be\n    stick-table type ip size 1 peers p\n"));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("Removing incomplete section 'peers p'") && err.contains("no peer named 'a'"), "{err}");
}

#[test]
fn a_peers_section_table_is_named_section_slash_name_and_shared_with_haproxy() {
    let (ps, ph, hs, hh) = (free_port(), free_port(), free_port(), free_port());
    let (ds, dh) = (temp_dir("peers-ts"), temp_dir("peers-th"));
    let (ss, sh) = (ds.join("s.sock"), dh.join("h.sock"));
    // The same text for both nodes: HAProxy reads it as sluiced does.
    let cfg = |sock: &Path, http: u16| {
        format!(
            "global\n    stats socket {} level admin\npeers mesh\n    peer sl 127.0.0.1:{ps}\n    peer ha 127.0.0.1:{ph}\n    \
             table per_user type string len 16 size 1k expire 1m store http_req_cnt,gpc0\n\
             defaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 1s\n\
             frontend fe\n    bind 127.0.0.1:{http}\n    http-request track-sc1 req.hdr(x-user) table mesh/per_user\n\
             \x20   http-request return status 200 content-type text/plain lf-string \"%[sc1_http_req_cnt]\\n\"\n",
            sock.display()
        )
    };
    let _s = Sluiced::start_args(&cfg(&ss, hs), &[hs, ps], &["-L", "sl"]);
    let _h = haproxy(&cfg(&sh, hh), &dh, "ha", &[hh, ph]);
    show_peers_until(&ss, |t| t.contains("id=ha(remote,active)"));
    let get = |port: u16, user: &str| {
        let (status, _, body) = http_request(port, format!("GET / HTTP/1.1\r\nHost: x\r\nX-User: {user}\r\nConnection: close\r\n\r\n").as_bytes());
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    };
    assert_eq!(get(hs, "gina"), "1\n");
    assert_eq!(get(hs, "gina"), "2\n");
    let t = ask_until(&sh, "show table mesh/per_user", Duration::from_secs(5), |t| t.contains("key=gina ") && t.contains("http_req_cnt=2"));
    assert!(t.contains("# table: mesh/per_user, type: string"), "{t}");
    assert!(t.contains("key=gina ") && t.contains("http_req_cnt=2"), "HAProxy learned: {t}");
    get(hh, "hank");
    let t = ask_until(&ss, "show table mesh/per_user", Duration::from_secs(5), |t| t.contains("key=hank ") && t.contains("http_req_cnt=1"));
    assert!(t.contains("# table: mesh/per_user, type: string") && t.contains("key=hank "), "sluiced learned: {t}");
    // The count goes on from the learned value on the node that learned it.
    assert_eq!(get(hs, "hank"), "2\n");
}

#[test]
fn a_master_worker_reload_hands_the_stick_table_to_the_new_worker() {
    let (pp, hp) = (free_port(), free_port());
    let d = temp_dir("peers-mw");
    let sock = d.join("s.sock");
    let cfg = node_cfg(&sock, hp, &[("lb1", pp)], "http_req_cnt");
    let master = Sluiced::start_args(&cfg, &[hp, pp], &["-W", "-L", "lb1"]);
    for _ in 0..3 {
        request(hp, "ivan", false);
    }
    entry_with(&sock, "ivan", "http_req_cnt=3");
    let pid_of = |info: &str| info.lines().find(|l| l.starts_with("Pid: ")).map(str::to_owned);
    let before = pid_of(&ask(&sock, "show info"));
    assert!(before.is_some());
    master.signal("USR2");
    // The new worker answers on the stats socket with its own pid (the socket file is replaced
    // meanwhile: a failed connection is asked again), and was handed the entry.
    let until = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        let info = std::os::unix::net::UnixStream::connect(&sock).ok().and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            c.write_all(b"show info\n").ok()?;
            let mut out = String::new();
            c.read_to_string(&mut out).ok()?;
            Some(out)
        });
        if info.as_deref().and_then(pid_of).is_some_and(|p| Some(p) != before) {
            break;
        }
        assert!(std::time::Instant::now() < until, "no new worker on the stats socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    entry_with(&sock, "ivan", "http_req_cnt=3");
    request(hp, "ivan", false);
    entry_with(&sock, "ivan", "http_req_cnt=4");
}

#[test]
fn peers_replicate_over_ipv6_loopback() {
    let (pa, pb, ha, hb) = (free_port(), free_port(), free_port(), free_port());
    let (da, db) = (temp_dir("peers-6a"), temp_dir("peers-6b"));
    let (sa, sb) = (da.join("s.sock"), db.join("s.sock"));
    let cfg = |sock: &Path, http: u16| {
        node_cfg(sock, http, &[("a", pa), ("b", pb)], "gpc0")
            .replace(&format!("127.0.0.1:{pa}"), &format!("[::1]:{pa}"))
            .replace(&format!("127.0.0.1:{pb}"), &format!("[::1]:{pb}"))
    };
    let _a = Sluiced::start_args(&cfg(&sa, ha), &[ha, pa], &["-L", "a"]);
    let _b = Sluiced::start_args(&cfg(&sb, hb), &[hb, pb], &["-L", "b"]);
    let p = show_peers_until(&sa, |t| t.contains("id=b(remote,active)"));
    assert!(p.contains(&format!("addr=[::1]:{pb}")), "{p}");
    request(ha, "kim", true);
    entry_with(&sb, "kim", "gpc0=1");
}
