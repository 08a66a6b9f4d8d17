use super::*;
use simple_dns::ResourceRecord;
use simple_dns::rdata::{A, AAAA, CNAME};

fn reply(id: u16, q: &str, v6: bool, rcode: RCODE, answers: Vec<ResourceRecord<'_>>) -> Vec<u8> {
    let mut p = Packet::new_reply(id);
    let t = if v6 { TYPE::AAAA } else { TYPE::A };
    p.questions.push(Question::new(Name::new_unchecked(q), t.into(), CLASS::IN.into(), false));
    *p.rcode_mut() = rcode;
    p.answers = answers;
    p.build_bytes_vec_compressed().unwrap()
}

fn a(name: &str, ip: [u8; 4]) -> ResourceRecord<'_> {
    ResourceRecord::new(Name::new_unchecked(name), CLASS::IN, 30, RData::A(A { address: u32::from_be_bytes(ip) }))
}

#[test]
fn a_query_asks_for_the_family_with_recursion_and_edns_above_512() {
    let q = build_query(7, "app.example", true, 4096).unwrap();
    let p = Packet::parse(&q).unwrap();
    assert_eq!(p.id(), 7);
    assert!(p.has_flags(PacketFlag::RECURSION_DESIRED));
    assert_eq!(p.questions[0].qname.to_string(), "app.example");
    assert_eq!(p.questions[0].qtype, TYPE::AAAA.into());
    assert_eq!(p.opt().map(|o| o.udp_packet_size), Some(4096));
    assert!(Packet::parse(&build_query(7, "app.example", false, 512).unwrap()).unwrap().opt().is_none());
}

#[test]
fn answers_give_the_addresses_of_the_name_and_its_cnames() {
    let cname = ResourceRecord::new(Name::new_unchecked("app.example"), CLASS::IN, 30, RData::CNAME(CNAME(Name::new_unchecked("real.example"))));
    let buf = reply(9, "app.example", false, RCODE::NoError, vec![cname, a("real.example", [10, 0, 0, 2]), a("other.example", [10, 0, 0, 9])]);
    assert_eq!(read_answer(&buf, 9, "app.example", false), Answer::Addrs(vec!["10.0.0.2".parse().unwrap()], true));
    let buf = reply(9, "App.Example", false, RCODE::NoError, vec![a("app.example", [10, 0, 0, 3]), a("APP.example", [10, 0, 0, 4])]);
    assert_eq!(read_answer(&buf, 9, "app.example", false), Answer::Addrs(vec!["10.0.0.3".parse().unwrap(), "10.0.0.4".parse().unwrap()], false));
    // AAAA records do not answer an A query.
    let v6 = ResourceRecord::new(Name::new_unchecked("app.example"), CLASS::IN, 30, RData::AAAA(AAAA { address: 1 }));
    assert_eq!(read_answer(&reply(9, "app.example", false, RCODE::NoError, vec![v6]), 9, "app.example", false), Answer::Empty);
}

#[test]
fn error_codes_late_answers_and_garbage_are_told_apart() {
    assert_eq!(read_answer(&reply(1, "x.example", false, RCODE::NameError, vec![]), 1, "x.example", false), Answer::Nx);
    assert_eq!(read_answer(&reply(1, "x.example", false, RCODE::Refused, vec![]), 1, "x.example", false), Answer::Refused);
    assert_eq!(read_answer(&reply(1, "x.example", false, RCODE::ServerFailure, vec![]), 1, "x.example", false), Answer::Failed);
    // Another ID, another name or another type: an answer to some other query.
    assert_eq!(read_answer(&reply(2, "x.example", false, RCODE::NoError, vec![]), 1, "x.example", false), Answer::Outdated);
    assert_eq!(read_answer(&reply(1, "y.example", false, RCODE::NoError, vec![]), 1, "x.example", false), Answer::Outdated);
    assert_eq!(read_answer(&reply(1, "x.example", true, RCODE::NoError, vec![]), 1, "x.example", false), Answer::Outdated);
    assert_eq!(read_answer(b"\x00\x01\x80", 1, "x.example", false), Answer::Invalid);
    // A query is not an answer.
    assert_eq!(read_answer(&build_query(1, "x.example", false, 512).unwrap(), 1, "x.example", false), Answer::Invalid);
    let plain = reply(1, "x.example", false, RCODE::NoError, vec![]);
    let mut p = Packet::parse(&plain).unwrap();
    p.set_flags(PacketFlag::TRUNCATION);
    assert_eq!(read_answer(&p.build_bytes_vec().unwrap(), 1, "x.example", false), Answer::Truncated);
}

fn setup(text: &str) -> (Arc<RouteTable>, Vec<Resolution>) {
    let cfg = crate::config::testing::ok(text);
    let rt = Arc::new(RouteTable::compile(&cfg).unwrap());
    let sections = sections(&cfg);
    let res = resolutions(&cfg, &rt, &sections);
    (rt, res)
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn addrs(rt: &RouteTable) -> Vec<String> {
    rt.backends[0]
        .state
        .servers
        .iter()
        .map(|s| match (current_ip(s), s.in_resolution_maint()) {
            (_, true) => "maint".to_owned(),
            (Some(ip), false) => ip.to_string(),
            (None, false) => "-".to_owned(),
        })
        .collect()
}

const TEMPLATE: &str = "resolvers dns\n nameserver ns1 127.0.0.1:5353\n hold nx 2s\n hold obsolete 0s\nbackend be\n mode http\n server-template web 3 app.test:8080 resolvers dns init-addr none\n";

#[test]
fn template_servers_each_take_a_different_address_and_keep_it() {
    let (rt, mut res) = setup(TEMPLATE);
    assert_eq!(res.len(), 1);
    let r = &mut res[0];
    assert_eq!(addrs(&rt), ["maint", "maint", "maint"]);
    let t0 = Instant::now();
    apply(&rt, r, &Outcome::Valid(ips(&["10.0.0.1", "10.0.0.2"]), "ns1".into()), t0);
    assert_eq!(addrs(&rt), ["10.0.0.1", "10.0.0.2", "maint"]);
    assert_eq!(**rt.backends[0].state.servers[0].addr(), ServerAddr::Inet("10.0.0.1:8080".parse().unwrap()));
    // The answer's order changes and an address is added: each server keeps its own, the new
    // one goes to the server that had none.
    apply(&rt, r, &Outcome::Valid(ips(&["10.0.0.3", "10.0.0.2", "10.0.0.1"]), "ns1".into()), t0);
    assert_eq!(addrs(&rt), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    // 10.0.0.1 leaves the answers: its server takes the one left free, or goes into maintenance.
    apply(&rt, r, &Outcome::Valid(ips(&["10.0.0.3", "10.0.0.2", "10.0.0.4"]), "ns1".into()), t0);
    assert_eq!(addrs(&rt), ["10.0.0.4", "10.0.0.2", "10.0.0.3"]);
    apply(&rt, r, &Outcome::Valid(ips(&["10.0.0.2"]), "ns1".into()), t0);
    assert_eq!(addrs(&rt), ["maint", "10.0.0.2", "maint"]);
    assert_eq!(r.section.nameservers[0].counters.update.load(Ordering::Relaxed), 3);
}

#[test]
fn failures_keep_the_last_address_for_the_hold_then_put_servers_in_maintenance() {
    let (rt, mut res) = setup(TEMPLATE);
    let r = &mut res[0];
    let t0 = Instant::now();
    apply(&rt, r, &Outcome::Valid(ips(&["10.0.0.1"]), "ns1".into()), t0);
    apply(&rt, r, &Outcome::Nx, t0 + Duration::from_secs(1));
    assert_eq!(addrs(&rt)[0], "10.0.0.1", "within hold nx 2s");
    // A timeout's hold is the default 30s.
    apply(&rt, r, &Outcome::Timeout, t0 + Duration::from_secs(3));
    assert_eq!(addrs(&rt)[0], "10.0.0.1");
    apply(&rt, r, &Outcome::Nx, t0 + Duration::from_secs(3));
    assert_eq!(addrs(&rt)[0], "maint");
    assert_eq!(crate::control::stats::server_status(&rt.backends[0].state.servers[0], false), "MAINT (resolution)");
    // The name resolves again, to the same address: the server is back with it.
    apply(&rt, r, &Outcome::Valid(ips(&["10.0.0.1"]), "ns1".into()), t0 + Duration::from_secs(4));
    assert_eq!(addrs(&rt)[0], "10.0.0.1");
    assert!(rt.backends[0].state.servers[0].usable());
}

#[test]
fn an_operators_maintenance_outlives_the_resolution() {
    let (rt, mut res) = setup(TEMPLATE);
    let s = rt.backends[0].state.servers[0].clone();
    s.set_admin(crate::balance::AdminState::Maint);
    apply(&rt, &mut res[0], &Outcome::Valid(ips(&["10.0.0.1"]), "ns1".into()), Instant::now());
    assert_eq!(current_ip(&s), Some("10.0.0.1".parse().unwrap()));
    assert!(!s.in_resolution_maint());
    assert_eq!(s.admin(), crate::balance::AdminState::Maint);
    s.set_admin(crate::balance::AdminState::Ready);
    assert!(s.usable());
}

#[test]
fn resolve_net_family_and_allow_dup_choose_among_the_answers() {
    let text = "resolvers dns\n nameserver ns1 127.0.0.1:5353\nbackend be\n server a app.test:80 resolvers dns init-addr none resolve-net 10.9.0.0/16\n server b app.test:80 resolvers dns init-addr none resolve-opts allow-dup-ip\n server c app.test resolvers dns init-addr none resolve-opts allow-dup-ip\n";
    let (rt, mut res) = setup(text);
    apply(&rt, &mut res[0], &Outcome::Valid(ips(&["10.0.0.1", "10.9.1.1"]), "ns1".into()), Instant::now());
    assert_eq!(addrs(&rt), ["10.9.1.1", "10.0.0.1", "10.0.0.1"]);
    // No port on the line: the client's destination port is used.
    assert_eq!(**rt.backends[0].state.servers[2].addr(), ServerAddr::InetSamePort("10.0.0.1".parse().unwrap()));
}

#[test]
fn obsolete_addresses_are_offered_for_their_hold() {
    let text = "resolvers dns\n nameserver ns1 127.0.0.1:5353\n hold obsolete 10s\nbackend be\n server a app.test:80 resolvers dns init-addr none\n server b app.test:80 resolvers dns init-addr none\n";
    let (rt, mut res) = setup(text);
    let t0 = Instant::now();
    apply(&rt, &mut res[0], &Outcome::Valid(ips(&["10.0.0.1", "10.0.0.2"]), "ns1".into()), t0);
    apply(&rt, &mut res[0], &Outcome::Valid(ips(&["10.0.0.1"]), "ns1".into()), t0 + Duration::from_secs(5));
    assert_eq!(addrs(&rt), ["10.0.0.1", "10.0.0.2"]);
    apply(&rt, &mut res[0], &Outcome::Valid(ips(&["10.0.0.1"]), "ns1".into()), t0 + Duration::from_secs(11));
    assert_eq!(addrs(&rt), ["10.0.0.1", "maint"]);
}
