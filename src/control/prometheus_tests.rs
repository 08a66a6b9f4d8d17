/// HAProxy's exporter metric names and types (from HAProxy 3.x), the reference these tests hold
/// the exposition to.
use std::collections::HashMap;
use std::time::Duration;

use super::*;

const TSV: &str = include_str!("prometheus_metric_names.tsv");

fn table() -> RouteTable {
    RouteTable::compile(&crate::config::testing::ok(
        "global\n    maxconn 100\n\
         frontend fe\n    mode http\n    bind 127.0.0.1:0\n    maxconn 10\n    default_backend be\n\
         backend be\n    mode http\n    server s1 127.0.0.1:1 maxconn 5 maxqueue 7\n    server s2 127.0.0.1:2 backup\n    server s3 127.0.0.1:3 disabled\n",
    ))
    .unwrap()
}

/// Family name -> type, from the `# TYPE` lines.
fn types(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (n, t) = l.split_once(' ').unwrap();
            (n.to_string(), t.to_string())
        })
        .collect()
}

#[test]
fn every_haproxy_family_emitted_has_the_name_and_type_of_the_reference() {
    let reference: HashMap<&str, &str> = TSV.lines().filter_map(|l| l.split_once('\t')).collect();
    let text = render(&table(), Query::default());
    let emitted = types(&text);
    let mut haproxy = 0;
    for (name, kind) in &emitted {
        if let Some(rest) = name.strip_prefix("sluiced_") {
            // sluiced's own families: latency histograms in seconds, and counters named `_total`.
            match kind.as_str() {
                "histogram" => assert!(rest.ends_with("_seconds"), "{name}"),
                "counter" => assert!(rest.ends_with("_total"), "{name}"),
                other => panic!("{name} has type {other}"),
            }
            continue;
        }
        haproxy += 1;
        assert_eq!(reference.get(name.as_str()), Some(&kind.as_str()), "{name} is not in the reference with type {kind}");
    }
    assert!(haproxy >= 30, "only {haproxy} HAProxy families");
    // Every family has its HELP line first, and every sample belongs to a declared family.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        let family = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
        assert!(emitted.contains_key(name) || emitted.contains_key(family), "{l}");
    }
    assert_eq!(text.matches("# HELP ").count(), emitted.len());
}

#[test]
fn labels_are_the_exporters() {
    let text = render(&table(), Query::default());
    assert!(text.contains("haproxy_process_nbproc 1\n"));
    assert!(text.contains("haproxy_process_max_connections 100\n"));
    assert!(text.contains("haproxy_frontend_limit_sessions{proxy=\"fe\"} 10\n"));
    assert!(text.contains("haproxy_backend_active_servers{proxy=\"be\"} 1\n"));
    assert!(text.contains("haproxy_frontend_status{proxy=\"fe\",state=\"UP\"} 1\n"));
    assert!(text.contains("haproxy_frontend_status{proxy=\"fe\",state=\"DOWN\"} 0\n"));
    assert!(text.contains("haproxy_backend_status{proxy=\"be\",state=\"UP\"} 1\n"));
    assert!(text.contains("haproxy_backend_status{proxy=\"be\",state=\"DOWN\"} 0\n"));
    assert!(text.contains("haproxy_server_status{proxy=\"be\",server=\"s1\",state=\"UP\"} 1\n"));
    assert!(text.contains("haproxy_server_status{proxy=\"be\",server=\"s3\",state=\"MAINT\"} 1\n"));
    assert!(text.contains("haproxy_server_limit_sessions{proxy=\"be\",server=\"s1\"} 5\n"));
    assert!(text.contains("haproxy_server_backup{proxy=\"be\",server=\"s2\"} 1\n"));
    assert!(text.contains("haproxy_backend_weight{proxy=\"be\"} 1\n"));
    assert!(text.contains("haproxy_backend_uweight{proxy=\"be\"} 1\n"));
    assert!(text.contains("haproxy_server_queue_limit{proxy=\"be\",server=\"s1\"} 7\n"));
    // One series per state, exactly one of them at 1.
    let s1: Vec<&str> = text.lines().filter(|l| l.starts_with("haproxy_server_status{proxy=\"be\",server=\"s1\"")).collect();
    assert_eq!(s1.len(), SERVER_STATES.len());
    assert_eq!(s1.iter().filter(|l| l.ends_with(" 1")).count(), 1);
}

#[test]
fn histograms_are_cumulative_with_le_and_count() {
    let rt = table();
    let srv = &rt.backends[0].state.servers[0];
    srv.latency.response.record(Duration::from_micros(300));
    srv.latency.response.record(Duration::from_millis(3));
    let text = render(&rt, Query::default());
    let p = "sluiced_server_response_time_seconds";
    assert!(text.contains(&format!("# TYPE {p} histogram\n")));
    assert!(text.contains(&format!("{p}_bucket{{proxy=\"be\",server=\"s1\",le=\"0.00025\"}} 0\n")));
    assert!(text.contains(&format!("{p}_bucket{{proxy=\"be\",server=\"s1\",le=\"0.0005\"}} 1\n")));
    assert!(text.contains(&format!("{p}_bucket{{proxy=\"be\",server=\"s1\",le=\"0.005\"}} 2\n")));
    assert!(text.contains(&format!("{p}_bucket{{proxy=\"be\",server=\"s1\",le=\"10\"}} 2\n")));
    assert!(text.contains(&format!("{p}_bucket{{proxy=\"be\",server=\"s1\",le=\"+Inf\"}} 2\n")));
    assert!(text.contains(&format!("{p}_count{{proxy=\"be\",server=\"s1\"}} 2\n")));
    assert!(text.contains(&format!("{p}_sum{{proxy=\"be\",server=\"s1\"}} 0.0033\n")));
}

#[test]
fn bucket_bounds_print_as_short_decimals() {
    assert_eq!(format_seconds(100), "0.0001");
    assert_eq!(format_seconds(2_500_000), "2.5");
    assert_eq!(format_seconds(10_000_000), "10");
}

#[test]
fn scope_and_no_maint_follow_the_exporter() {
    let all = Query::default();
    assert_eq!(Query::parse(b"/metrics"), all);
    assert_eq!(Query::parse(b"/metrics?scope=*"), all);
    let q = Query::parse(b"/metrics?scope=server");
    assert!(q.server && !q.global && !q.frontend && !q.backend);
    let q = Query::parse(b"/metrics?scope=frontend&scope=backend");
    assert!(q.frontend && q.backend && !q.server && !q.global);
    assert_eq!(Query::parse(b"/metrics?scope=*&scope="), Query { global: false, frontend: false, backend: false, server: false, no_maint: false });
    let q = Query::parse(b"/metrics?scope=&scope=global&no-maint");
    assert!(q.global && !q.server && q.no_maint);

    let rt = table();
    assert_eq!(render(&rt, Query::parse(b"/m?scope=")), "");
    let servers = render(&rt, Query::parse(b"/m?scope=server"));
    assert!(servers.lines().filter(|l| !l.starts_with('#')).all(|l| l.starts_with("haproxy_server_") || l.starts_with("sluiced_server_")));
    assert!(servers.contains("server=\"s3\""));
    let no_maint = render(&rt, Query::parse(b"/m?scope=server&no-maint"));
    assert!(!no_maint.contains("server=\"s3\""));
    assert!(no_maint.contains("server=\"s1\""));
}

#[test]
fn label_values_are_escaped() {
    let mut s = String::new();
    escape_label(&mut s, "a\"b\\c\nd");
    assert_eq!(s, "a\\\"b\\\\c\\nd");
}

#[test]
fn the_response_is_a_complete_http_answer() {
    let r = response(&table(), b"/metrics?scope=global");
    let text = String::from_utf8(r.bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(head.contains(&format!("content-length: {}", body.len())));
    assert!(body.starts_with("# HELP haproxy_process_nbthread "));
    assert!(!r.close);
}

#[test]
fn server_states_follow_haproxys_precedence() {
    let rt = table();
    let s = &rt.backends[0].state.servers[0];
    assert_eq!(server_state(s), "UP");
    s.set_admin(AdminState::Drain);
    assert_eq!(server_state(s), "DRAIN");
    s.set_nolb(true);
    assert_eq!(server_state(s), "NOLB");
    s.set_admin(AdminState::Maint);
    assert_eq!(server_state(s), "MAINT");
    // s1 takes no traffic: the backup s2 carries the backend's weight.
    assert_eq!(backend_weight(&rt.backends[0].state), 1);
    rt.backends[0].state.servers[1].set_admin(AdminState::Maint);
    assert_eq!(backend_weight(&rt.backends[0].state), 0);
    assert!(render(&rt, Query::default()).contains("haproxy_backend_status{proxy=\"be\",state=\"DOWN\"} 1\n"));
}
