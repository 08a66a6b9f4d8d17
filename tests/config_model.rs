//! How configuration text becomes the model: sections, inheritance, names, references.

use std::collections::HashMap;
use std::time::Duration;

use sluiced::config::model::{Config, Mode, ProxyKind};
use sluiced::config::{Loaded, load_str};

fn env() -> HashMap<String, String> {
    HashMap::from([("BACKEND_ADDR".to_string(), "10.1.2.3".to_string())])
}

fn ok(text: &str) -> Config {
    let l = load_str("t.cfg", text, &env());
    let alerts: Vec<String> = l.diags.alerts().map(|d| d.to_string()).collect();
    assert!(alerts.is_empty(), "unexpected alerts: {alerts:#?}");
    l.config.expect("a config when there is no alert")
}

fn alerts(text: &str) -> Vec<String> {
    let l: Loaded = load_str("t.cfg", text, &env());
    assert!(l.config.is_none() || !l.diags.has_alerts());
    l.diags.alerts().map(|d| d.to_string()).collect()
}

#[test]
fn proxy_without_from_inherits_the_last_defaults_section() {
    let c = ok("defaults\n mode http\n timeout client 5s\nfrontend f\n bind :80\n default_backend b\nbackend b\n server s 127.0.0.1:81\n");
    let f = c.proxy("f").unwrap();
    assert_eq!(f.mode, Mode::Http);
    assert_eq!(f.timeouts.client, Some(Duration::from_secs(5)));
}

#[test]
fn a_new_defaults_section_resets_what_the_previous_one_set() {
    let c = ok("defaults\n mode http\n timeout client 5s\ndefaults\n timeout server 7s\nbackend b\n server s 127.0.0.1:81\n");
    let b = c.proxy("b").unwrap();
    assert_eq!(b.mode, Mode::Tcp, "mode from the first defaults must not leak through the second");
    assert_eq!(b.timeouts.client, None);
    assert_eq!(b.timeouts.server, Some(Duration::from_secs(7)));
}

#[test]
fn from_selects_a_named_defaults_section() {
    let c = ok(
        "defaults web\n mode http\ndefaults db\n mode tcp\n timeout server 1h\nbackend w from web\n server s 127.0.0.1:81\nbackend d\n server s 127.0.0.1:82\n",
    );
    assert_eq!(c.proxy("w").unwrap().mode, Mode::Http);
    assert_eq!(c.proxy("d").unwrap().mode, Mode::Tcp);
    assert_eq!(c.proxy("d").unwrap().timeouts.server, Some(Duration::from_secs(3600)));
    assert_eq!(c.defaults.len(), 2);
}

#[test]
fn from_an_unknown_defaults_section_is_an_error_with_a_hint() {
    let a = alerts("defaults web\n mode http\nbackend w from wbe\n server s 127.0.0.1:81\n");
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(a[0].contains("[t.cfg:3]") && a[0].contains("'wbe' not found") && a[0].contains("did you mean 'web'"), "{a:?}");
}

#[test]
fn several_global_sections_merge() {
    let c = ok("global\n maxconn 100\nglobal\n pidfile /tmp/x.pid\nbackend b\n server s 127.0.0.1:81\n");
    assert_eq!(c.global.maxconn, Some(100));
    assert_eq!(c.global.pidfile.as_deref(), Some("/tmp/x.pid"));
}

#[test]
fn environment_variables_expand_in_server_addresses() {
    let c = ok("backend b\n server s \"${BACKEND_ADDR}:8080\"\n server t ${UNSET_ADDR-127.0.0.9}:80\n");
    let b = c.proxy("b").unwrap();
    assert_eq!(b.servers[0].addr.text, "10.1.2.3:8080");
    assert_eq!(b.servers[1].addr.text, "127.0.0.9:80");
}

#[test]
fn conditional_blocks_keep_only_the_taken_branch() {
    let c = ok(".if version_atleast(2.4)\nbackend new\n server s 127.0.0.1:1\n.else\nbackend old\n server s 127.0.0.1:1\n.endif\n");
    assert!(c.proxy("new").is_some());
    assert!(c.proxy("old").is_none());
}

#[test]
fn a_frontend_and_a_backend_may_share_a_name_but_two_backends_may_not() {
    ok("frontend app\n bind :80\n default_backend app\nbackend app\n server s 127.0.0.1:81\n");
    let a = alerts("backend app\n server s 127.0.0.1:81\nbackend app\n server s 127.0.0.1:82\n");
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(a[0].contains("[t.cfg:3]") && a[0].contains("same name"), "{a:?}");
    let a = alerts("frontend app\n bind :80\nlisten app\n bind :81\n server s 127.0.0.1:82\n");
    assert!(a.iter().any(|m| m.contains("[t.cfg:3]")), "{a:?}");
}

#[test]
fn duplicate_server_names_are_reported_at_the_second_one() {
    let a = alerts("backend b\n server s 127.0.0.1:81\n server s 127.0.0.1:82\n");
    assert_eq!(a.len(), 1);
    assert!(a[0].contains("[t.cfg:3] : 'server'") && a[0].contains("already declared at t.cfg:2"), "{a:?}");
}

#[test]
fn references_to_undeclared_backends_and_acls_are_errors() {
    let a = alerts("frontend f\n bind :80\n use_backend api if is_api\n default_backend webb\nbackend web\n server s 127.0.0.1:81\n");
    assert_eq!(a.len(), 3, "{a:?}");
    assert!(a.iter().any(|m| m.contains("[t.cfg:3] : 'use_backend'") && m.contains("backend 'api'")), "{a:?}");
    assert!(a.iter().any(|m| m.contains("[t.cfg:3] : 'use_backend'") && m.contains("no such ACL : 'is_api'")), "{a:?}");
    assert!(a.iter().any(|m| m.contains("[t.cfg:4] : 'default_backend'") && m.contains("did you mean 'web'")), "{a:?}");
}

#[test]
fn predefined_acls_need_no_declaration() {
    ok("frontend f\n bind :80\n use_backend b if METH_GET || TRUE\nbackend b\n server s 127.0.0.1:81\n");
}

#[test]
fn a_keyword_outside_its_sections_names_the_section() {
    let a = alerts("frontend f\n bind :80\n server s 127.0.0.1:81\n");
    assert_eq!(a.len(), 1);
    assert!(a[0].contains("'server' is not allowed in 'frontend' sections"), "{a:?}");
    let a = alerts("backend b\n bind :80\n");
    assert!(a[0].contains("'bind' is not allowed in 'backend' sections"), "{a:?}");
}

#[test]
fn no_prefix_is_refused_on_keywords_that_are_not_options() {
    let a = alerts("backend b\n no retries 3\n");
    assert_eq!(a.len(), 1);
    assert!(a[0].contains("cannot be prefixed with 'no'"), "{a:?}");
    let c = ok("defaults\n option redispatch\nbackend b\n no option redispatch\n server s 127.0.0.1:1\n");
    assert_eq!(c.proxy("b").unwrap().options.redispatch, Some(false));
}

#[test]
fn every_error_in_a_file_is_reported_in_one_pass() {
    let a = alerts("global\n maxconn lots\nfrontend f\n bind :99999\n timeout client 5x\n mode htp\n frobnicate\n");
    let lines: Vec<&str> = ["[t.cfg:2]", "[t.cfg:4]", "[t.cfg:5]", "[t.cfg:6]", "[t.cfg:7]"].to_vec();
    for l in lines {
        assert!(a.iter().any(|m| m.contains(l)), "missing {l} in {a:#?}");
    }
}

#[test]
fn server_template_declares_numbered_servers() {
    let c = ok("backend b\n server-template web 3 localhost:80 weight 5\n server-template api 8-9 10.0.0.1:81\n");
    let names: Vec<&str> = c.proxy("b").unwrap().servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web1", "web2", "web3", "api8", "api9"]);
    assert_eq!(c.proxy("b").unwrap().servers[0].opts.weight, Some(5));
}

#[test]
fn default_server_options_apply_to_later_servers_only() {
    let c = ok("backend b\n server a 127.0.0.1:1\n default-server weight 7 maxconn 10\n server b 127.0.0.1:2\n server c 127.0.0.1:3 weight 2\n");
    let s = &c.proxy("b").unwrap().servers;
    assert_eq!(s[0].opts.weight, None);
    assert_eq!((s[1].opts.weight, s[1].opts.maxconn), (Some(7), Some(10)));
    assert_eq!(s[2].opts.weight, Some(2));
}

#[test]
fn bind_accepts_comma_separated_addresses_and_options() {
    let c = ok("frontend f\n bind :80,127.0.0.1:8080 name web backlog 100 accept-proxy\n");
    let b = &c.proxy("f").unwrap().binds[0];
    assert_eq!(b.addrs.len(), 2);
    assert_eq!(b.backlog, Some(100));
    assert!(b.accept_proxy);
    assert_eq!(b.name.as_deref(), Some("web"));
}

#[test]
fn unknown_bind_and_server_options_get_hints() {
    let a = alerts("frontend f\n bind :80 acept-proxy\n");
    assert!(a[0].contains("unknown bind option 'acept-proxy'; did you mean 'accept-proxy'"), "{a:?}");
    let a = alerts("backend b\n server s 127.0.0.1:1 wieght 3\n");
    assert!(a[0].contains("unknown server option 'wieght'; did you mean 'weight'"), "{a:?}");
}

#[test]
fn server_weight_above_256_is_refused() {
    let a = alerts("backend b\n server s 127.0.0.1:1 weight 300\n");
    assert!(a[0].contains("[t.cfg:2] : 'server'") && a[0].contains("at most 256"), "{a:?}");
}

#[test]
fn listen_is_both_frontend_and_backend() {
    let c = ok("listen l\n bind :80\n server s 127.0.0.1:1\n");
    let p = c.proxy("l").unwrap();
    assert_eq!(p.kind, ProxyKind::Listen);
    assert!(c.backend("l").is_some());
}

#[test]
fn userlists_and_http_errors_sections_are_read() {
    let path = std::env::temp_dir().join(format!("sluiced-503-{}.http", std::process::id()));
    std::fs::write(&path, "HTTP/1.1 503 Service Unavailable\r\n\r\n").unwrap();
    let text = format!(
        "userlist admins\n group ops users alice\n user alice insecure-password s3cret groups ops\nhttp-errors site\n errorfile 503 {}\nbackend b\n server s 127.0.0.1:1\n",
        path.display()
    );
    let c = ok(&text);
    assert_eq!(c.userlists[0].users[0].name, "alice");
    assert_eq!(c.http_errors[0].files[0].0, 503);
    std::fs::remove_file(path).ok();
    let a = alerts("userlist u\n user bob insecure-password x groups nope\nbackend b\n server s 127.0.0.1:1\n");
    assert!(a[0].contains("group 'nope' is not declared"), "{a:?}");
}

#[test]
fn resolvers_and_peers_sections_are_read_without_a_warning() {
    let l = load_str("t.cfg", "resolvers dns\n nameserver ns1 127.0.0.53:53\nbackend b\n server s 127.0.0.1:1\n", &env());
    assert!(!l.diags.has_alerts());
    assert!(!l.diags.warnings().any(|w| w.to_string().contains("not supported yet")), "{:?}", l.diags.warnings().collect::<Vec<_>>());
    let l = load_str("t.cfg", "peers mypeers\n peer a 127.0.0.1:10000\n peer b 127.0.0.1:10001\nbackend b\n server s 127.0.0.1:1\n", &env());
    assert!(!l.diags.has_alerts());
    assert_eq!(l.diags.warnings().count(), 0, "{:?}", l.diags.warnings().collect::<Vec<_>>());
    let c = l.config.unwrap();
    assert_eq!(c.peers[0].peers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn unsupported_sections_are_errors() {
    let a = alerts("cache c\n total-max-size 4\nbackend b\n server s 127.0.0.1:1\n");
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(a[0].contains("'cache' sections are not supported"), "{a:?}");
}

#[test]
fn keywords_before_any_section_are_errors() {
    let a = alerts("maxconn 10\nbackend b\n server s 127.0.0.1:1\n");
    assert!(a[0].contains("[t.cfg:1]") && a[0].contains("out of section"), "{a:?}");
}

#[test]
fn http_auth_acls_must_name_a_declared_userlist() {
    let a = alerts(
        "frontend f\n bind :80\n acl ok http_auth(admns)\n http-request auth unless ok\n default_backend b\nbackend b\n server s 127.0.0.1:1\nuserlist admins\n user a insecure-password x\n",
    );
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(a[0].contains("[t.cfg:3] : 'acl'") && a[0].contains("userlist 'admns'") && a[0].contains("did you mean 'admins'"), "{a:?}");
    let a = alerts("frontend f\n bind :80\n http-request deny if !{ http_auth(nope) }\n");
    assert!(a.iter().any(|m| m.contains("userlist 'nope'")), "{a:?}");
}

#[test]
fn stick_tables_named_in_dynamic_backend_names_must_exist() {
    let a = alerts("frontend f\n bind :80\n use_backend be_%[src_conn_cnt(nosuch)]\n");
    assert!(a.iter().any(|m| m.contains("[t.cfg:3] : 'use_backend'") && m.contains("stick-table 'nosuch'")), "{a:?}");
}

#[test]
fn a_default_backend_inherited_from_defaults_must_exist() {
    let a = alerts("defaults\n mode http\n default_backend nosuch\nfrontend f\n bind :80\nbackend b\n server s 127.0.0.1:1\n");
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(
        a[0].contains("[t.cfg:3] : 'default_backend'") && a[0].contains("backend 'nosuch'") && a[0].contains("frontend 'f' (inherited from defaults)"),
        "{a:?}"
    );
    // A backend inheriting it is not using it.
    ok("defaults\n default_backend nosuch\nbackend b\n server s 127.0.0.1:1\n");
}

#[test]
fn an_unresolvable_server_name_is_an_error_unless_init_addr_allows_none() {
    let a = alerts("backend b\n server s no-such-host.invalid:80\n");
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(a[0].contains("[t.cfg:2] : 'server'") && a[0].contains("could not resolve address 'no-such-host.invalid'"), "{a:?}");
    let c = ok("backend b\n server s no-such-host.invalid:80 init-addr last,libc,none\n server t localhost:81\n");
    let b = c.proxy("b").unwrap();
    assert_eq!(b.servers[0].resolved, None);
    assert!(b.servers[1].resolved.is_some_and(|ip| ip.is_loopback()));
    // The unresolved server starts in maintenance; the table still compiles.
    let rt = sluiced::route::RouteTable::compile(&c).unwrap();
    assert_eq!(rt.backends[0].state.servers[0].admin(), sluiced::balance::AdminState::Maint);
}
