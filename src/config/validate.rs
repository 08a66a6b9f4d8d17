//! Whole-configuration checks, run once everything is read: names are unique, every reference
//! points at something declared, and the combinations HAProxy refuses are refused. Every problem is
//! reported, not the first.

use std::collections::{HashMap, HashSet};

use super::diag::{Diags, did_you_mean};
use super::model::*;

/// Status codes an `errorfile` may replace (HAProxy's list).
pub const ERRORFILE_CODES: &[u16] = &[200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504];

/// ACLs every proxy has without declaring them.
pub const PREDEFINED_ACLS: &[&str] = &[
    "FALSE",
    "HTTP",
    "HTTP_1.0",
    "HTTP_1.1",
    "HTTP_2.0",
    "HTTP_3.0",
    "HTTP_CONTENT",
    "HTTP_URL_ABS",
    "HTTP_URL_SLASH",
    "HTTP_URL_STAR",
    "LOCALHOST",
    "METH_CONNECT",
    "METH_DELETE",
    "METH_GET",
    "METH_HEAD",
    "METH_OPTIONS",
    "METH_POST",
    "METH_PUT",
    "METH_TRACE",
    "RDP_COOKIE",
    "REQ_CONTENT",
    "TRUE",
    "WAIT_END",
];

/// Names every check looks up, built once: a configuration of 1,000 backends must not scan them all
/// for every reference.
struct Index<'a> {
    backends: HashMap<&'a str, &'a Proxy>,
    tables: HashSet<&'a str>,
}

pub fn validate(cfg: &Config, diags: &mut Diags) {
    let index = Index {
        backends: cfg.proxies.iter().rev().filter(|p| p.kind.has_backend()).map(|p| (p.name.as_str(), p)).collect(),
        tables: cfg
            .proxies
            .iter()
            .filter(|q| q.stick.has_table())
            .map(|q| q.name.as_str())
            .chain(cfg.peers.iter().flat_map(|s| s.tables.iter().map(|t| t.full.as_str())))
            .collect(),
    };
    unique_names(cfg, diags);
    for p in &cfg.proxies {
        check_proxy(cfg, &index, p, diags);
    }
    for d in &cfg.defaults {
        unique_servers(d, diags);
    }
    let mut seen = HashSet::new();
    for u in &cfg.userlists {
        if !seen.insert(u.name.as_str()) {
            diags.alert(Some(&u.span), Some("userlist"), format!("userlist '{}' is declared twice", u.name));
        }
        let groups: HashSet<&str> = u.groups.iter().map(|g| g.name.as_str()).collect();
        for user in &u.users {
            for g in &user.groups {
                if !groups.contains(g.as_str()) {
                    diags.alert(Some(&user.span), Some("user"), format!("group '{g}' is not declared in userlist '{}'", u.name));
                }
            }
        }
    }
    let mut seen = HashSet::new();
    for h in &cfg.http_errors {
        if !seen.insert(h.name.as_str()) {
            diags.alert(Some(&h.span), Some("http-errors"), format!("http-errors section '{}' is declared twice", h.name));
        }
        for (_, file, span) in &h.files {
            check_file(file, span, "errorfile", diags);
        }
    }
}

/// Resolves server host names once, when the configuration is loaded, as HAProxy does with its
/// default `init-addr last,libc`: a name that does not resolve is an error at the server's line,
/// unless `init-addr` lists `none` (the server then starts without an address, in maintenance).
pub fn resolve_server_names(cfg: &mut Config, diags: &mut Diags) {
    use super::addr::{AddrKind, Host};
    for p in &mut cfg.proxies {
        for s in &mut p.servers {
            let AddrKind::Inet { host: Host::Name(name), .. } = &s.addr.kind else { continue };
            let methods: Vec<&str> = s.opts.init_addr.as_deref().unwrap_or("last,libc").split(',').collect();
            let found = if methods.contains(&"libc") {
                // `resolve-prefer` picks the family among what the system resolver gives.
                let all: Vec<std::net::IpAddr> =
                    std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 0)).map(|a| a.map(|a| a.ip()).collect()).unwrap_or_default();
                let prefer_v6 = match s.opts.resolve_prefer.as_deref() {
                    Some("ipv4") => Some(false),
                    Some(_) => Some(true),
                    None => None,
                };
                prefer_v6.and_then(|v6| all.iter().find(|a| a.is_ipv6() == v6)).or(all.first()).copied()
            } else {
                None
            };
            match found {
                Some(ip) => s.resolved = Some(ip),
                None if methods.contains(&"none") => {}
                None => diags.alert(
                    Some(&s.span),
                    Some("server"),
                    format!("could not resolve address '{name}' of server '{}' (add 'init-addr none' to start without it)", s.name),
                ),
            }
        }
    }
}

/// A file named by the configuration must exist when it is checked, as HAProxy loads it then,
/// and be a file: a directory would pass here and fail when the routing table reads it.
pub fn check_file(path: &str, span: &super::diag::Span, kw: &str, diags: &mut Diags) {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => diags.alert(Some(span), Some(kw), format!("'{path}' is a directory, not a file")),
        Ok(_) => {}
        Err(_) => diags.alert(Some(span), Some(kw), format!("cannot open file '{path}'")),
    }
}

fn unique_names(cfg: &Config, diags: &mut Diags) {
    // A frontend and a backend may share a name; a listen conflicts with both.
    let mut fe: HashMap<&str, &Proxy> = HashMap::new();
    let mut be: HashMap<&str, &Proxy> = HashMap::new();
    let mut ids: HashMap<u32, &Proxy> = HashMap::new();
    for p in &cfg.proxies {
        for (has, map, side) in [(p.kind.has_frontend(), &mut fe, "frontend"), (p.kind.has_backend(), &mut be, "backend")] {
            if !has {
                continue;
            }
            if let Some(prev) = map.get(p.name.as_str()) {
                if !std::ptr::eq(*prev, p) {
                    diags.alert(
                        Some(&p.span),
                        Some(p.kind.keyword()),
                        format!(
                            "{} '{}' has the same name as {} '{}' declared at {} ({} names must be unique)",
                            p.kind.keyword(),
                            p.name,
                            prev.kind.keyword(),
                            prev.name,
                            prev.span,
                            side
                        ),
                    );
                    break;
                }
            } else {
                map.insert(&p.name, p);
            }
        }
        if let Some(id) = p.id
            && let Some(prev) = ids.insert(id, p)
        {
            diags.alert(Some(p.id_span.as_ref().unwrap_or(&p.span)), Some("id"), format!("proxy id {id} is already used by '{}' at {}", prev.name, prev.span));
        }
    }
    let mut defs: HashMap<&str, &Proxy> = HashMap::new();
    for d in &cfg.defaults {
        if let Some(prev) = defs.insert(&d.name, d) {
            diags.warning(Some(&d.span), Some("defaults"), format!("defaults section '{}' redefines the one at {}", d.name, prev.span));
        }
    }
}

fn unique_servers(p: &Proxy, diags: &mut Diags) {
    let mut names: HashMap<&str, &Server> = HashMap::new();
    let mut ids: HashMap<u32, &Server> = HashMap::new();
    for s in &p.servers {
        if let Some(prev) = names.insert(&s.name, s) {
            diags.alert(
                Some(&s.span),
                Some("server"),
                format!("server '{}' in {} '{}' is already declared at {}", s.name, p.kind.keyword(), p.name, prev.span),
            );
        }
        if let Some(id) = s.id
            && let Some(prev) = ids.insert(id, s)
        {
            diags.alert(Some(&s.span), Some("server"), format!("server id {id} is already used by '{}' at {}", prev.name, prev.span));
        }
    }
}

/// TLS files given as relative paths are resolved against `crt-base`/`ca-base`, which only the
/// whole configuration knows; absolute paths were already checked on their line.
fn check_tls_files(cfg: &Config, p: &Proxy, diags: &mut Diags) {
    let tls = &cfg.global.tls;
    let missing = |path: &std::path::Path| path.is_relative() && std::fs::metadata(path).is_err();
    for b in &p.binds {
        let certs = b.tls.crts.iter().chain(&b.tls.crt_lists).map(|c| tls.crt_path(c));
        let cas = b.tls.ca_file.iter().chain(&b.tls.crl_file).map(|c| tls.ca_path(c));
        for f in certs.chain(cas) {
            if missing(&f) {
                diags.alert(Some(&b.span), Some("bind"), format!("unable to stat SSL certificate from file '{}' : No such file or directory", f.display()));
            }
        }
    }
    for s in &p.servers {
        let certs = s.opts.tls.crt.iter().map(|c| tls.crt_path(c));
        let cas = s.opts.tls.ca_file.iter().chain(&s.opts.tls.crl_file).map(|c| tls.ca_path(c));
        for f in certs.chain(cas) {
            if missing(&f) {
                diags.alert(Some(&s.span), Some("server"), format!("unable to stat SSL file '{}' : No such file or directory", f.display()));
            }
        }
    }
    check_tls_settings(cfg, p, diags);
}

/// Loads what the TLS settings name (certificates, keys, CAs, CRLs) and checks that the TLS
/// library can run them, as the routing table will: a configuration that validates compiles.
fn check_tls_settings(cfg: &Config, p: &Proxy, diags: &mut Diags) {
    let g = &cfg.global.tls;
    let no_cache = crate::tls::server::no_session_cache();
    // Files that do not exist were reported on their own.
    let all_exist = |paths: Vec<std::path::PathBuf>| paths.iter().all(|f| std::fs::metadata(f).is_ok());
    if p.kind.has_frontend() {
        for b in &p.binds {
            let files =
                b.tls.crts.iter().chain(&b.tls.crt_lists).map(|c| g.crt_path(c)).chain(b.tls.ca_file.iter().chain(&b.tls.crl_file).map(|c| g.ca_path(c)));
            if !all_exist(files.collect()) {
                continue;
            }
            if let Err(e) = crate::tls::server::compile_bind(&b.tls, g, &no_cache, p.mode == super::model::Mode::Http, &mut |_| {}) {
                diags.alert(Some(&b.span), Some("bind"), e);
            }
        }
    }
    if p.kind.has_backend() {
        for s in &p.servers {
            let o = &s.opts;
            let files = o.tls.crt.iter().map(|c| g.crt_path(c)).chain(o.tls.ca_file.iter().chain(&o.tls.crl_file).map(|c| g.ca_path(c)));
            if !all_exist(files.collect()) {
                continue;
            }
            let r = crate::tls::client::compile_server(&o.tls, g).map(drop).and_then(|()| {
                if o.check.ssl && !o.tls.ssl {
                    crate::check::engine::check_tls(&o.tls, &o.check, g).map(drop).map_err(|e| format!("check-ssl: {e}"))
                } else {
                    Ok(())
                }
            });
            if let Err(e) = r {
                diags.alert(Some(&s.span), Some("server"), e);
            }
        }
    }
}

/// True when `r` names something whose declaration was already reported as invalid.
fn declared_but_invalid(cfg: &Config, p: &Proxy, r: &Ref) -> bool {
    let matches = |kind: RefKind, name: &str| {
        kind == r.kind
            && match r.kind {
                RefKind::Server => {
                    let full = if r.name.contains('/') { r.name.clone() } else { format!("{}/{}", p.name, r.name) };
                    name == full || name.strip_suffix('*').is_some_and(|prefix| full.starts_with(prefix))
                }
                _ => name == r.name,
            }
    };
    match r.kind {
        RefKind::Acl => p.invalid_decls.iter().any(|(k, n)| matches(*k, n)),
        _ => cfg.proxies.iter().any(|q| q.invalid_decls.iter().any(|(k, n)| matches(*k, n))),
    }
}

fn check_proxy(cfg: &Config, index: &Index<'_>, p: &Proxy, diags: &mut Diags) {
    unique_servers(p, diags);
    check_tls_files(cfg, p, diags);
    if p.kind.has_frontend() && p.binds.is_empty() && !p.disabled {
        diags.warning(Some(&p.span), Some(p.kind.keyword()), format!("{} '{}' has no 'bind' line and will not accept connections", p.kind.keyword(), p.name));
    }
    let acls: HashSet<&str> = p.acls.iter().map(|a| a.name.as_str()).collect();
    let tables = &index.tables;
    for r in &p.refs {
        let ok = match r.kind {
            RefKind::Backend => index.backends.contains_key(r.name.as_str()),
            RefKind::Table if r.name.is_empty() => {
                // `track-sc*` without `table`: the proxy's own stick table (one already refused
                // on its own line is not reported again).
                let refused = p.invalid_decls.iter().any(|(k, n)| *k == RefKind::Table && *n == p.name);
                if !tables.contains(p.name.as_str()) && !refused {
                    diags.alert(
                        Some(&r.span),
                        Some(&r.keyword),
                        format!("'{}' without 'table' tracks in the stick-table of proxy '{}', which declares none", r.keyword, p.name),
                    );
                }
                continue;
            }
            RefKind::Table => tables.contains(r.name.as_str()),
            RefKind::Userlist => cfg.userlists.iter().any(|u| u.name == r.name),
            RefKind::HttpErrors => cfg.http_errors.iter().any(|h| h.name == r.name),
            RefKind::Acl => acls.contains(r.name.as_str()) || PREDEFINED_ACLS.contains(&r.name.as_str()),
            RefKind::Peers => cfg.peers.iter().any(|s| s.name == r.name),
            RefKind::Resolvers => cfg.resolvers.iter().any(|s| s.name == r.name),
            RefKind::Server => {
                let (be, srv) = r.name.split_once('/').unwrap_or((p.name.as_str(), r.name.as_str()));
                index.backends.get(be).is_some_and(|b| b.servers.iter().any(|s| s.name == srv))
            }
        };
        if ok || declared_but_invalid(cfg, p, r) {
            continue;
        }
        let (what, candidates): (&str, Vec<&str>) = match r.kind {
            RefKind::Backend => ("backend", cfg.proxies.iter().filter(|q| q.kind.has_backend()).map(|q| q.name.as_str()).collect()),
            RefKind::Table => ("stick-table", tables.iter().copied().collect()),
            RefKind::Userlist => ("userlist", cfg.userlists.iter().map(|u| u.name.as_str()).collect()),
            RefKind::HttpErrors => ("http-errors section", cfg.http_errors.iter().map(|h| h.name.as_str()).collect()),
            RefKind::Acl => ("ACL", acls.iter().copied().collect()),
            RefKind::Peers => ("peers section", cfg.peers.iter().map(|s| s.name.as_str()).collect()),
            RefKind::Resolvers => ("resolvers section", cfg.resolvers.iter().map(|s| s.name.as_str()).collect()),
            RefKind::Server => ("server", vec![]),
        };
        let hint = did_you_mean(&r.name, candidates).map(|s| format!("; did you mean '{s}' maybe ?")).unwrap_or_default();
        let msg = match r.kind {
            RefKind::Acl => format!("no such ACL : '{}'{hint}", r.name),
            _ => format!("unable to find {what} '{}' referenced in {} '{}'{hint}", r.name, p.kind.keyword(), p.name),
        };
        diags.alert(Some(&r.span), Some(&r.keyword), msg);
    }
    if let Some(db) = &p.default_backend
        && p.kind.has_frontend()
        && !index.backends.contains_key(db.name.as_str())
    {
        let hint = did_you_mean(&db.name, index.backends.keys().copied()).map(|s| format!("; did you mean '{s}' maybe ?")).unwrap_or_default();
        let inherited = if db.span.file != p.span.file || db.span.line < p.span.line { " (inherited from defaults)" } else { "" };
        diags.alert(
            Some(&db.span),
            Some("default_backend"),
            format!("unable to find backend '{}' referenced in {} '{}'{inherited}{hint}", db.name, p.kind.keyword(), p.name),
        );
    }
    for u in &p.use_servers {
        if !p.servers.iter().any(|s| s.name == u.server) {
            diags.alert(Some(&u.span), Some("use-server"), format!("no server '{}' in backend '{}'", u.server, p.name));
        }
    }
    if p.kind.has_backend() {
        for s in &p.servers {
            if let super::addr::AddrKind::Inet { port: super::addr::PortSpec::Range(..), .. } = s.addr.kind {
                diags.alert(Some(&s.span), Some("server"), "port ranges are not allowed on servers");
            }
        }
    }
}
