//! Servers' names resolved at run time (`resolvers` sections): a DNS server written here answers
//! on loopback from a table the test changes, the daemon follows the answers, and named backends
//! on 127.0.0.2-4 (one port) show where connections land.

mod support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Packet, QTYPE, RCODE, ResourceRecord, TYPE};
use support::*;

/// What the test DNS server says of a name.
#[derive(Clone)]
enum Zone {
    Addrs(Vec<Ipv4Addr>),
    Nx,
    /// No answer at all.
    Silent,
}

/// A DNS server on 127.0.0.1: A queries get the table's addresses, AAAA queries an empty
/// answer (the names have no IPv6 address), unknown names NXDOMAIN.
struct Dns {
    port: u16,
    table: Arc<Mutex<HashMap<String, Zone>>>,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Dns {
    fn start() -> Dns {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let port = sock.local_addr().unwrap().port();
        let table: Arc<Mutex<HashMap<String, Zone>>> = Arc::default();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, q, st) = (table.clone(), queries.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                let Ok(query) = Packet::parse(&buf[..n]) else { continue };
                q.fetch_add(1, Ordering::Relaxed);
                let Some(question) = query.questions.first() else { continue };
                let name = question.qname.to_string().to_ascii_lowercase();
                let zone = t.lock().unwrap().get(&name).cloned().unwrap_or(Zone::Nx);
                let mut reply = Packet::new_reply(query.id());
                reply.questions.push(question.clone());
                match zone {
                    Zone::Silent => continue,
                    Zone::Nx => *reply.rcode_mut() = RCODE::NameError,
                    Zone::Addrs(list) if question.qtype == QTYPE::TYPE(TYPE::A) => {
                        for ip in list {
                            let rr = ResourceRecord::new(question.qname.clone(), CLASS::IN, 5, RData::A(A { address: u32::from(ip) }));
                            reply.answers.push(rr);
                        }
                    }
                    Zone::Addrs(_) => {}
                }
                let _ = sock.send_to(&reply.build_bytes_vec_compressed().unwrap(), from);
            }
        });
        Dns { port, table, queries, stop }
    }

    fn set(&self, name: &str, zone: Zone) {
        self.table.lock().unwrap().insert(name.to_owned(), zone);
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Named backends on 127.0.0.2, .3 and .4, all on one port (a server line has one port).
fn named_backends() -> (u16, Vec<Backend>) {
    let names: [&'static str; 3] = ["two", "three", "four"];
    for _ in 0..20 {
        let first = TcpListener::bind("127.0.0.2:0").unwrap();
        let port = first.local_addr().unwrap().port();
        let rest: Vec<_> = [3, 4].iter().filter_map(|l| TcpListener::bind((ip(*l), port)).ok()).collect();
        if rest.len() < 2 {
            continue;
        }
        let mut backends = Vec::new();
        for (l, name) in std::iter::once(first).chain(rest).zip(names) {
            backends.push(Backend::start_on(l, move |mut c| {
                use std::io::{Read, Write};
                let _ = c.write_all(format!("{name}\n").as_bytes());
                let mut buf = [0u8; 64];
                while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
            }));
        }
        return (port, backends);
    }
    panic!("no port free on 127.0.0.2-4");
}

/// Server `srv`'s `status` and `addr` columns in `show stat`.
fn stat_of(sock: &Path, srv: &str) -> (String, String) {
    let csv = ask(sock, "show stat");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().trim_start_matches("# ").split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let row = lines.map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>()).find(|f| f.get(1).map(String::as_str) == Some(srv)).unwrap();
    (row[col("status")].clone(), row[col("addr")].clone())
}

/// `which_server` until it says `want`, for at most 5 s.
fn lands_on(port: u16, want: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if which_server(port) == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// One name server's counter in `show resolvers`.
fn counter(text: &str, ns: &str, name: &str) -> u64 {
    let mut inside = false;
    for l in text.lines() {
        if let Some(rest) = l.trim().strip_prefix("nameserver ") {
            inside = rest.trim_end_matches(':') == ns;
        } else if inside && let Some(v) = l.trim().strip_prefix(&format!("{name}:")) {
            return v.trim().parse().unwrap();
        }
    }
    panic!("no {name} for {ns} in:\n{text}");
}

fn proxy(dns: &Dns, extra_section: &str, servers: &str) -> (Sluiced, u16, std::path::PathBuf) {
    let port = free_port();
    let sock = temp_dir("resolvers").join("admin.sock");
    let cfg = format!(
        "global\n  nbthread 1\n  stats socket {} level admin\nresolvers dns\n  nameserver ns1 127.0.0.1:{}\n  timeout resolve 100ms\n  timeout retry 100ms\n{extra_section}defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n{servers}",
        sock.display(),
        dns.port
    );
    (Sluiced::start(&cfg, &[port]), port, sock)
}

#[test]
fn a_server_follows_its_name_through_changes_and_nxdomain() {
    let (bport, _backends) = named_backends();
    let dns = Dns::start();
    dns.set("app.test", Zone::Addrs(vec![ip(2)]));
    let (_d, port, sock) = proxy(&dns, "  hold nx 400ms\n", &format!("  server s1 app.test:{bport} resolvers dns init-addr none\n"));
    assert!(lands_on(port, "two"), "{:?}", stat_of(&sock, "s1"));
    assert_eq!(stat_of(&sock, "s1"), ("no check".to_owned(), format!("127.0.0.2:{bport}")));

    dns.set("app.test", Zone::Addrs(vec![ip(3)]));
    assert!(lands_on(port, "three"), "{:?}", stat_of(&sock, "s1"));

    // NXDOMAIN: the server keeps its address for `hold nx`, then goes into maintenance.
    dns.set("app.test", Zone::Nx);
    let t0 = Instant::now();
    let a = ask_until(&sock, "show stat", Duration::from_secs(5), |a| a.contains("MAINT (resolution)"));
    assert!(a.contains("MAINT (resolution)"), "{a}");
    assert!(t0.elapsed() >= Duration::from_millis(300), "went down after {:?}, before hold nx 400ms", t0.elapsed());
    assert_eq!(which_server(port), "", "no server to connect to");
    let state = ask(&sock, "show servers state l");
    let row: Vec<&str> = state.lines().nth(2).unwrap().split(' ').collect();
    assert_eq!(row[6], "32", "srv_admin_state has RMAINT (0x20): {state}");

    dns.set("app.test", Zone::Addrs(vec![ip(2)]));
    assert!(lands_on(port, "two"));
    assert_eq!(stat_of(&sock, "s1").0, "no check");

    let counters = ask(&sock, "show resolvers dns");
    assert!(counters.starts_with("Resolvers section dns\n nameserver ns1:\n  sent:"), "{counters}");
    assert!(counter(&counters, "ns1", "valid") >= 3, "{counters}");
    assert!(counter(&counters, "ns1", "nx") >= 2, "AAAA and A both NX: {counters}");
    // IPv6 is asked for first and the names have none: an empty answer each time.
    assert!(counter(&counters, "ns1", "any_err") >= 3, "{counters}");
    assert!(counter(&counters, "ns1", "update") >= 3, "{counters}");
    assert!(counter(&counters, "ns1", "sent") as usize <= dns.queries.load(Ordering::Relaxed), "{counters}");
    assert_eq!(ask(&sock, "show resolvers nope").trim_end(), "Can't find that resolvers section");
}

#[test]
fn template_servers_spread_over_the_answers_and_fill_as_addresses_appear() {
    let (bport, _backends) = named_backends();
    let dns = Dns::start();
    dns.set("pool.test", Zone::Addrs(vec![ip(2), ip(3)]));
    let (_d, port, sock) = proxy(
        &dns,
        "  resolve_retries 2\n",
        &format!("  balance roundrobin\n  server-template web 3 pool.test:{bport} resolvers dns init-addr none resolve-prefer ipv4\n"),
    );
    ask_until(&sock, "show stat", Duration::from_secs(5), |a| a.matches("no check").count() == 2);
    let mut addrs: Vec<String> = ["web1", "web2"].iter().map(|s| stat_of(&sock, s).1).collect();
    addrs.sort();
    assert_eq!(addrs, [format!("127.0.0.2:{bport}"), format!("127.0.0.3:{bport}")]);
    assert_eq!(stat_of(&sock, "web3").0, "MAINT (resolution)");
    let seen: std::collections::HashSet<String> = (0..6).map(|_| which_server(port)).collect();
    assert_eq!(seen, ["two", "three"].iter().map(|s| s.to_string()).collect());

    // A third address appears: the server without one takes it, the others keep theirs.
    dns.set("pool.test", Zone::Addrs(vec![ip(4), ip(3), ip(2)]));
    ask_until(&sock, "show stat", Duration::from_secs(5), |a| a.matches("no check").count() == 3);
    let after: Vec<String> = ["web1", "web2"].iter().map(|s| stat_of(&sock, s).1).collect();
    let mut sorted = after.clone();
    sorted.sort();
    assert_eq!(sorted, addrs, "web1 and web2 kept their addresses");
    assert_eq!(stat_of(&sock, "web3"), ("no check".to_owned(), format!("127.0.0.4:{bport}")));
    let seen: std::collections::HashSet<String> = (0..9).map(|_| which_server(port)).collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn a_silent_name_server_times_out_and_the_server_goes_into_maintenance_after_hold_timeout() {
    let (bport, _backends) = named_backends();
    let dns = Dns::start();
    dns.set("app.test", Zone::Addrs(vec![ip(3)]));
    let (_d, port, sock) = proxy(&dns, "  resolve_retries 2\n  hold timeout 500ms\n", &format!("  server s1 app.test:{bport} resolvers dns init-addr none\n"));
    assert!(lands_on(port, "three"));
    dns.set("app.test", Zone::Silent);
    let a = ask_until(&sock, "show stat", Duration::from_secs(6), |a| a.contains("MAINT (resolution)"));
    assert!(a.contains("MAINT (resolution)"), "{a}");
    let counters = ask(&sock, "show resolvers");
    assert!(counter(&counters, "ns1", "timeout") >= 2, "{counters}");
}

#[test]
fn bad_resolvers_lines_are_refused_with_file_line_and_keyword() {
    let dir = temp_dir("resolvers-bad");
    let cfg = dir.join("bad.cfg");
    std::fs::write(
        &cfg,
        "resolvers dns\n  nameserver ns1 tcp@127.0.0.1:53\n  timeout resolve 0\n  hold sometimes 1s\n  accepted_payload_size 100\n  frobnicate\nresolvers empty\nbackend b\n  server s1 app.test:80 resolvers nope init-addr none\n  server s2 app.test:80 resolvers dns init-addr none resolve-prefer ipv5\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-c", "-f", cfg.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let f = cfg.display();
    for (line, kw, what) in [
        (2, "nameserver", "TCP"),
        (3, "timeout", "greater than 0"),
        (4, "hold", "unknown status 'sometimes'"),
        (5, "accepted_payload_size", "between 512 and 65535"),
        (6, "frobnicate", "unknown keyword 'frobnicate' in 'resolvers' section"),
        (7, "resolvers", "has no nameserver"),
        (9, "server", "unable to find resolvers section 'nope'"),
        (10, "server", "ipv5"),
    ] {
        let at = format!("[{f}:{line}] : '{kw}'");
        assert!(err.lines().any(|l| l.contains(&at) && l.contains(what)), "missing {at} ... {what} in:\n{err}");
    }
}
