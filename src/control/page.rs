//! The HTTP stats page (`stats enable`, `stats uri`, ...): an HTML table per proxy, or with
//! `;csv` in the URI the `show stat` CSV. The HTTP session calls [`serve`] for every request of a
//! frontend with a stats page, before its `http-request` rules run, as it does for `monitor-uri`.
//!
//! Implemented: `stats enable`, `uri` (a prefix of the request target, as in HAProxy), `realm`,
//! `auth`, `refresh`, `hide-version`, `show-legends`, `scope`, `show-node`, `show-desc`.
//! `stats admin` and `stats http-request` are parsed only: the page has no admin actions.

use std::fmt::Write;

use crate::control::config::StatsPage;
use crate::control::stats::{self, StatFilter, StatRow};
use crate::l7::reply::Response;
use crate::route::eval::HttpMsg;
use crate::route::{Frontend, RouteTable};

/// The answer of `fe`'s stats page to `req`; `None` when the request is not for the page.
pub fn serve(rt: &RouteTable, fe: &Frontend, req: &dyn HttpMsg) -> Option<Response> {
    let page = fe.stats_page.as_deref()?;
    let rest = after_uri(req.uri(), page.uri().as_bytes())?;
    if !page.auth.is_empty() && !authorized(page, req) {
        return Some(unauthorized(page));
    }
    let csv = rest.windows(4).any(|w| w == b";csv");
    let norefresh = rest.windows(10).any(|w| w == b";norefresh");
    let (ctype, body) = if csv { ("text/plain", stats::show_stat(rt, stats::Format::Csv, StatFilter::default())) } else { ("text/html", html(rt, page)) };
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
pub fn html(rt: &RouteTable, page: &StatsPage) -> String {
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
    let mut i = 0;
    while i < rows.len() {
        let name = rows[i].text("pxname");
        let end = rows[i..].iter().position(|r| r.text("pxname") != name || r.iid != rows[i].iid).map_or(rows.len(), |n| i + n);
        if page.scope.is_empty() || page.scope.contains(&name) {
            table(&mut o, &name, &rows[i..end]);
        }
        i = end;
    }
    o.push_str("</body>\n</html>\n");
    o
}

fn table(o: &mut String, name: &str, rows: &[StatRow]) {
    let _ = write!(o, "<table>\n<tr><th class=\"px\" colspan=\"{}\">{}</th></tr>\n<tr><th>Name</th>", PAGE_COLUMNS.len() + 1, esc(name));
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
        let _ = write!(o, "<tr class=\"{class}\"><td>{}</td>", esc(&r.text("svname")));
        for (_, c) in PAGE_COLUMNS {
            let _ = write!(o, "<td>{}</td>", esc(&r.text(c)));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}
