//! The HTTP stats page (`stats enable`, `stats uri`, ...): an HTML table per proxy, or with
//! `;csv` in the URI the `show stat` CSV. The HTTP session calls [`serve`] for every request of a
//! frontend with a stats page, before its `http-request` rules run, as it does for `monitor-uri`;
//! a `backend` section with `stats enable` answers the requests routed to it, after its rules.
//!
//! Implemented: `stats enable`, `uri` (a prefix of the request target, as in HAProxy), `realm`,
//! `auth`, `refresh`, `hide-version`, `show-legends`, `scope`, `show-node`, `show-desc`, and
//! `stats admin if <cond>`: each backend's table then has a form (a checkbox per server, an
//! action) posted to the stats URI as HAProxy's page posts it (`s=<server>&action=<a>&b=#<iid>`);
//! the answer is a 303 to `<uri>;st=<DONE|PART|NONE|ERRP|DENY>`, which the page shows as a message.
//! `stats http-request` is parsed only.

use std::fmt::Write;

use crate::control::config::StatsPage;
use crate::control::stats::{self, StatFilter, StatRow};
use crate::l7::reply::Response;
use crate::route::RouteTable;
use crate::route::eval::CompiledCond;
use crate::route::eval::HttpMsg;

/// The answer of `fe`'s stats page to `req`; `None` when the request is not for the page.
/// `admin` tells whether `stats admin` allows this request's admin actions (given the page's
/// admin conditions); it is only asked for requests of the page.
pub fn serve(
    rt: &RouteTable,
    page: Option<&StatsPage>,
    admin_conds: &[CompiledCond],
    req: &dyn HttpMsg,
    admin: &dyn Fn(&[CompiledCond]) -> bool,
) -> Option<Response> {
    let page = page?;
    let rest = after_uri(req.uri(), page.uri().as_bytes())?;
    if !page.auth.is_empty() && !authorized(page, req) {
        return Some(unauthorized(page));
    }
    let admin = !admin_conds.is_empty() && admin(admin_conds);
    if req.method() == b"POST" {
        let status = if admin { post(rt, req.body().unwrap_or_default()) } else { "DENY" };
        let location = format!("{};st={status}", page.uri());
        let head = format!("HTTP/1.1 303 See Other\r\ncache-control: no-cache\r\ncontent-length: 0\r\nlocation: {location}\r\n\r\n");
        return Some(Response { bytes: head.into_bytes(), close: false });
    }
    let csv = rest.windows(4).any(|w| w == b";csv");
    let norefresh = rest.windows(10).any(|w| w == b";norefresh");
    let st = rest.windows(4).position(|w| w == b";st=").map(|i| &rest[i + 4..]).map(|v| &v[..v.iter().position(|&c| c == b';').unwrap_or(v.len())]);
    let (ctype, body) = if csv {
        ("text/plain", stats::show_stat(rt, stats::Format::Csv, StatFilter::default()))
    } else {
        ("text/html", html(rt, page, admin, st.and_then(|s| std::str::from_utf8(s).ok())))
    };
    let mut out = format!("HTTP/1.1 200 OK\r\ncache-control: no-cache\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n", body.len());
    if let Some(r) = page.refresh.filter(|_| !csv && !norefresh) {
        let _ = write!(out, "refresh: {}\r\n", r.as_secs().max(1));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !req.method().eq_ignore_ascii_case(b"HEAD") {
        bytes.extend_from_slice(body.as_bytes());
    }
    Some(Response { bytes, close: false })
}

/// The admin actions of the page's form, as HAProxy names them.
pub const ACTIONS: &[(&str, &str)] = &[
    ("ready", "Set state to READY"),
    ("drain", "Set state to DRAIN"),
    ("maint", "Set state to MAINT"),
    ("dhlth", "Health: disable checks"),
    ("ehlth", "Health: enable checks"),
    ("hrunn", "Health: force UP"),
    ("hnolb", "Health: force NOLB"),
    ("hdown", "Health: force DOWN"),
    ("dagent", "Agent: disable checks"),
    ("eagent", "Agent: enable checks"),
    ("arunn", "Agent: force UP"),
    ("adown", "Agent: force DOWN"),
    ("shutdown", "Kill Sessions"),
];

/// Applies a posted admin form (`b`, `s`..., `action`); the status the page then shows:
/// `DONE` (every server changed), `PART` (some), `NONE` (none), `ERRP` (a bad form).
fn post(rt: &RouteTable, body: &[u8]) -> &'static str {
    let (mut backend, mut action, mut servers) = (None, None, Vec::new());
    for pair in body.split(|&c| c == b'&') {
        let (k, v) = match pair.iter().position(|&c| c == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let Some(v) = crate::route::convert::form_decode(v).and_then(|v| String::from_utf8(v).ok()) else { return "ERRP" };
        match k {
            b"b" => backend = Some(v),
            b"action" => action = Some(v),
            b"s" => servers.push(v),
            _ => {}
        }
    }
    let (Some(b), Some(action)) = (backend, action) else { return "ERRP" };
    let be = match b.strip_prefix('#') {
        Some(id) => rt.backends.iter().find(|be| id.parse() == Ok(be.id)),
        None => rt.backends.iter().find(|be| be.name == b),
    };
    let Some(be) = be else { return "ERRP" };
    if !ACTIONS.iter().any(|(a, _)| *a == action) {
        return "ERRP";
    }
    let mut done = 0;
    for s in &servers {
        let target = format!("{}/{s}", be.name);
        let set = |what: &str, v: &str| super::cli::set_server(rt, &target, &[what, v]).is_ok();
        let ok = match action.as_str() {
            "ready" | "drain" | "maint" => set("state", &action),
            "hrunn" => set("health", "up"),
            "hnolb" => set("health", "stopping"),
            "hdown" => set("health", "down"),
            "arunn" => set("agent", "up"),
            "adown" => set("agent", "down"),
            "dhlth" | "ehlth" => super::cli::toggle_check(rt, &target, "health", action == "dhlth").is_ok(),
            "dagent" | "eagent" => super::cli::toggle_check(rt, &target, "agent", action == "dagent").is_ok(),
            // HAProxy's `shutdown sessions server`: every session on the server, HTTP ones included.
            "shutdown" => match be.state.servers.iter().position(|x| x.name == *s) {
                Some(i) => {
                    let be_idx = rt.backends.iter().position(|b| std::ptr::eq(b, be)).unwrap_or_default();
                    super::sessions::shutdown_server_sessions(super::sessions::registry(), be_idx, i);
                    true
                }
                None => false,
            },
            _ => false,
        };
        done += usize::from(ok);
    }
    match done {
        0 => "NONE",
        n if n == servers.len() => "DONE",
        _ => "PART",
    }
}

/// The message the page shows after an admin action (`;st=` in the URI).
fn status_message(st: &str) -> Option<&'static str> {
    Some(match st {
        "DONE" => "Action processed successfully.",
        "PART" => "Action not processed for all servers.",
        "NONE" => "Nothing has changed.",
        "ERRP" => "Action not processed because of invalid parameters.",
        "EXCD" => "Action not processed: the buffer couldn't store all the data.",
        "DENY" => "Action denied.",
        _ => return None,
    })
}

/// What follows the stats URI in the request target (the path of an absolute target), when the
/// target starts with it.
fn after_uri<'t>(target: &'t [u8], uri: &[u8]) -> Option<&'t [u8]> {
    let path = match target.windows(3).position(|w| w == b"://") {
        Some(p) if !target.starts_with(b"/") => {
            let from = p + 3;
            target[from..].iter().position(|&c| c == b'/').map_or(&b"/"[..], |s| &target[from + s..])
        }
        _ => target,
    };
    path.strip_prefix(uri)
}

fn authorized(page: &StatsPage, req: &dyn HttpMsg) -> bool {
    let Some(value) = (0..req.header_count()).map(|i| req.header(i)).find(|(n, _)| n.eq_ignore_ascii_case(b"authorization")).map(|(_, v)| v) else {
        return false;
    };
    let Some(sp) = value.iter().position(|&c| c == b' ') else { return false };
    if !value[..sp].eq_ignore_ascii_case(b"basic") {
        return false;
    }
    let Some(decoded) = crate::route::convert::base64_decode(value[sp + 1..].trim_ascii()) else { return false };
    page.auth.iter().any(|u| decoded.len() == u.user.len() + 1 + u.password.len() && decoded == format!("{}:{}", u.user, u.password).as_bytes())
}

fn unauthorized(page: &StatsPage) -> Response {
    let body = "<html><body><h1>401 Unauthorized</h1>\nYou need a valid user and password to access this content.\n</body></html>\n";
    let realm = page.realm().replace('"', "");
    let head = format!(
        "HTTP/1.1 401 Unauthorized\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: text/html\r\nwww-authenticate: Basic realm=\"{realm}\"\r\n\r\n",
        body.len()
    );
    Response { bytes: [head.as_bytes(), body.as_bytes()].concat(), close: false }
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

/// The columns of the page's tables: (heading, `show stat` column).
const PAGE_COLUMNS: &[(&str, &str)] = &[
    ("Queue cur", "qcur"),
    ("Queue max", "qmax"),
    ("Sessions cur", "scur"),
    ("Sessions max", "smax"),
    ("Sessions limit", "slim"),
    ("Sessions total", "stot"),
    ("LbTot", "lbtot"),
    ("Bytes in", "bin"),
    ("Bytes out", "bout"),
    ("Denied req", "dreq"),
    ("Errors req", "ereq"),
    ("Errors conn", "econ"),
    ("Warnings retr", "wretr"),
    ("Warnings redis", "wredis"),
    ("Status", "status"),
    ("Weight", "weight"),
    ("Act", "act"),
    ("Bck", "bck"),
    ("2xx", "hrsp_2xx"),
    ("4xx", "hrsp_4xx"),
    ("5xx", "hrsp_5xx"),
];

/// The HTML page: a table per proxy, its FRONTEND row, its servers, its BACKEND row.
pub fn html(rt: &RouteTable, page: &StatsPage, admin: bool, st: Option<&str>) -> String {
    let rows = stats::stat_rows(rt, StatFilter::default());
    let mut o = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Statistics Report for HAProxy</title>\n");
    o.push_str("<style>table{border-collapse:collapse;margin-bottom:1em}th,td{border:1px solid #999;padding:2px 4px;font:12px sans-serif}th.px{background:#20a0ff;color:#fff;text-align:left}tr.backend{background:#e0e0ff}tr.frontend{background:#e0ffe0}</style>\n</head>\n<body>\n");
    o.push_str("<h1>Statistics Report");
    if !page.hide_version {
        let _ = write!(o, " for sluiced (HAProxy {})", esc(&stats::version_string()));
    }
    o.push_str("</h1>\n");
    if let Some(node) = &page.show_node {
        let _ = writeln!(o, "<p>Node: {}</p>", esc(&node.clone().unwrap_or_else(stats::hostname)));
    }
    if let Some(Some(desc)) = &page.show_desc {
        let _ = writeln!(o, "<p>Description: {}</p>", esc(desc));
    }
    if page.show_legends {
        o.push_str("<p>Legend: UP, DOWN, NOLB (up, taking no new traffic), DRAIN, MAINT (maintenance), no check (not health checked).</p>\n");
    }
    if let Some(msg) = st.and_then(status_message) {
        let _ = writeln!(o, "<p class=\"status\">{msg}</p>");
    }
    let mut i = 0;
    while i < rows.len() {
        let name = rows[i].text("pxname");
        let end = rows[i..].iter().position(|r| r.text("pxname") != name || r.iid != rows[i].iid).map_or(rows.len(), |n| i + n);
        if page.scope.is_empty() || page.scope.contains(&name) {
            let form = admin && rows[i..end].iter().any(|r| r.objtype == stats::ObjType::Server);
            if form {
                let _ = writeln!(o, "<form method=\"post\" action=\"{}\">", esc(page.uri()));
            }
            table(&mut o, &name, &rows[i..end], form);
            if form {
                let _ = write!(o, "<input type=\"hidden\" name=\"b\" value=\"#{}\">\n<select name=\"action\">", rows[i].iid);
                for (a, label) in ACTIONS {
                    let _ = write!(o, "<option value=\"{a}\">{label}</option>");
                }
                o.push_str("</select>\n<input type=\"submit\" value=\"Apply\">\n</form>\n");
            }
        }
        i = end;
    }
    o.push_str("</body>\n</html>\n");
    o
}

/// One proxy's table; with `form`, a first column of checkboxes selects servers for an action.
fn table(o: &mut String, name: &str, rows: &[StatRow], form: bool) {
    let cols = PAGE_COLUMNS.len() + 1 + usize::from(form);
    let _ = write!(o, "<table>\n<tr><th class=\"px\" colspan=\"{cols}\">{}</th></tr>\n<tr>", esc(name));
    if form {
        o.push_str("<th></th>");
    }
    o.push_str("<th>Name</th>");
    for (h, _) in PAGE_COLUMNS {
        let _ = write!(o, "<th>{h}</th>");
    }
    o.push_str("</tr>\n");
    for r in rows {
        let class = match r.objtype {
            stats::ObjType::Frontend => "frontend",
            stats::ObjType::Backend => "backend",
            stats::ObjType::Server => "server",
        };
        let _ = write!(o, "<tr class=\"{class}\">");
        if form {
            match r.objtype {
                stats::ObjType::Server => {
                    let _ = write!(o, "<td><input type=\"checkbox\" name=\"s\" value=\"{}\"></td>", esc(&r.text("svname")));
                }
                _ => o.push_str("<td></td>"),
            }
        }
        let _ = write!(o, "<td>{}</td>", esc(&r.text("svname")));
        for (_, c) in PAGE_COLUMNS {
            let _ = write!(o, "<td>{}</td>", esc(&r.text(c)));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}
