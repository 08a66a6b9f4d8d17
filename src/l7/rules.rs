//! `http-request` rules as the data plane runs them, and the request head writer that applies
//! their header edits. (First cut: allow, deny, return, reject, redirect, and the header edits;
//! the other actions are parsed and reported as not implemented when the configuration loads.)

use crate::l7::config::{HeaderMatch, HttpAction, RedirectKind, RedirectTarget, ReplyBody};
use crate::l7::h1::Head;
use crate::l7::session::{Verdict, error_response, reason};
use crate::route::Frontend;
use crate::route::eval::{CompiledCond, StreamCtx, Tri};
use crate::route::logformat::CompiledLf;

/// A reply compiled for sending.
#[derive(Debug)]
pub struct CompiledReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: ReplyPayload,
    pub headers: Vec<(String, CompiledLf)>,
}

#[derive(Debug)]
pub enum ReplyPayload {
    /// The built-in error page for the status.
    Default,
    Bytes(Vec<u8>),
    Format(CompiledLf),
}

/// What an `http-request` rule does, compiled.
#[derive(Debug)]
pub enum ReqAction {
    Allow,
    Deny(CompiledReply),
    Reject,
    Return(CompiledReply),
    Redirect {
        code: u16,
        kind: RedirectKind,
        target: CompiledLf,
        drop_query: bool,
        append_slash: bool,
    },
    SetHeader(String, CompiledLf),
    AddHeader(String, CompiledLf),
    DelHeader(String, HeaderMatch),
    /// Answers 401 asking for Basic credentials in `realm` (the frontend's name by default).
    Auth(Option<String>),
}

#[derive(Debug)]
pub struct HttpRule {
    pub action: ReqAction,
    pub cond: Option<CompiledCond>,
}

fn compile_reply(r: &crate::l7::config::Reply, default_status: u16) -> Result<Option<CompiledReply>, String> {
    let body = match &r.body {
        ReplyBody::Empty | ReplyBody::DefaultErrorfiles => ReplyPayload::Default,
        ReplyBody::String(s) => ReplyPayload::Bytes(s.clone().into_bytes()),
        ReplyBody::LfString(lf) => ReplyPayload::Format(CompiledLf::compile(lf)?),
        ReplyBody::File(f) => ReplyPayload::Bytes(std::fs::read(f).map_err(|e| format!("cannot read '{f}': {e}"))?),
        // Error files and lf-files come with the reply engine.
        ReplyBody::Errorfile(_) | ReplyBody::Errorfiles(_) | ReplyBody::LfFile(_) => return Ok(None),
    };
    let mut headers = Vec::new();
    for (n, v) in &r.headers {
        headers.push((n.clone(), CompiledLf::compile(v)?));
    }
    let status = if r.status == 0 { default_status } else { r.status };
    Ok(Some(CompiledReply { status, content_type: r.content_type.clone(), body, headers }))
}

/// Compiles an action; `None` when the data plane does not implement it yet.
pub fn compile_action(a: &HttpAction) -> Result<Option<ReqAction>, String> {
    Ok(Some(match a {
        HttpAction::Allow => ReqAction::Allow,
        HttpAction::Reject => ReqAction::Reject,
        HttpAction::Deny(r) => match compile_reply(r, 403)? {
            Some(r) => ReqAction::Deny(r),
            None => return Ok(None),
        },
        HttpAction::Return(r) => match compile_reply(r, 200)? {
            Some(r) => ReqAction::Return(r),
            None => return Ok(None),
        },
        HttpAction::Redirect(r) => ReqAction::Redirect {
            code: r.code,
            kind: r.kind,
            target: match &r.target {
                RedirectTarget::Literal(s) => CompiledLf::compile(&crate::config::logformat::LogFormat {
                    text: s.clone(),
                    items: vec![crate::config::logformat::LogItem::Text(s.clone())],
                })?,
                RedirectTarget::Format(lf) => CompiledLf::compile(lf)?,
            },
            drop_query: r.drop_query,
            append_slash: r.append_slash,
        },
        HttpAction::SetHeader { name, value } => ReqAction::SetHeader(name.clone(), CompiledLf::compile(value)?),
        HttpAction::AddHeader { name, value } => ReqAction::AddHeader(name.clone(), CompiledLf::compile(value)?),
        HttpAction::DelHeader { name, matching } => ReqAction::DelHeader(name.clone(), matching.clone()),
        HttpAction::Auth { realm } => ReqAction::Auth(realm.clone()),
        _ => return Ok(None),
    }))
}

/// A header edit, applied when the head is written.
#[derive(Debug, Clone)]
pub enum Edit {
    Set(String, String),
    Add(String, String),
    Del(String, HeaderMatch),
}

pub type Edits = Vec<Edit>;

fn render_reply(r: &CompiledReply, ctx: &dyn StreamCtx) -> Vec<u8> {
    let body: Vec<u8> = match &r.body {
        ReplyPayload::Default => return error_response(r.status, false),
        ReplyPayload::Bytes(b) => b.clone(),
        ReplyPayload::Format(lf) => lf.eval(ctx).into_bytes(),
    };
    let mut out = format!("HTTP/1.1 {} {}\r\ncontent-length: {}\r\n", r.status, reason(r.status), body.len()).into_bytes();
    if let Some(ct) = &r.content_type {
        out.extend_from_slice(format!("content-type: {ct}\r\n").as_bytes());
    }
    for (n, v) in &r.headers {
        out.extend_from_slice(format!("{n}: {}\r\n", v.eval(ctx)).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

fn redirect(code: u16, kind: RedirectKind, target: &str, drop_query: bool, append_slash: bool, ctx: &dyn StreamCtx) -> Vec<u8> {
    let uri = ctx.http_request().map(|r| String::from_utf8_lossy(r.uri()).into_owned()).unwrap_or_default();
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (uri.clone(), None),
    };
    let mut path = path;
    if append_slash && !path.ends_with('/') {
        path.push('/');
    }
    let tail = match (&query, drop_query) {
        (Some(q), false) => format!("{path}?{q}"),
        _ => path,
    };
    let location = match kind {
        RedirectKind::Location => target.to_owned(),
        RedirectKind::Prefix => {
            if target == "/" {
                tail
            } else {
                format!("{}{tail}", target.trim_end_matches('/'))
            }
        }
        RedirectKind::Scheme => {
            let host = ctx
                .http_request()
                .and_then(|r| {
                    (0..r.header_count())
                        .map(|i| r.header(i))
                        .find(|(n, _)| n.eq_ignore_ascii_case(b"host"))
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                })
                .unwrap_or_default();
            format!("{target}://{host}{tail}")
        }
    };
    format!("HTTP/1.1 {code} {}\r\ncontent-length: 0\r\nlocation: {location}\r\ncache-control: no-cache\r\n\r\n", redirect_reason(code)).into_bytes()
}

fn redirect_reason(code: u16) -> &'static str {
    match code {
        301 => "Moved Permanently",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        _ => "Found",
    }
}

/// Runs the frontend's `http-request` rules in order until one decides.
pub fn request(fe: &Frontend, ctx: &dyn StreamCtx) -> (Verdict, Edits) {
    let mut edits = Edits::new();
    for r in &fe.http_request_rules {
        let hit = r.cond.as_ref().is_none_or(|c| c.eval(ctx) == Tri::Yes);
        if !hit {
            continue;
        }
        match &r.action {
            ReqAction::Allow => break,
            ReqAction::Reject => return (Verdict::Reject, edits),
            ReqAction::Deny(rep) | ReqAction::Return(rep) => return (Verdict::Reply { bytes: render_reply(rep, ctx), close: false }, edits),
            ReqAction::Redirect { code, kind, target, drop_query, append_slash } => {
                return (Verdict::Reply { bytes: redirect(*code, *kind, &target.eval(ctx), *drop_query, *append_slash, ctx), close: false }, edits);
            }
            ReqAction::SetHeader(n, v) => edits.push(Edit::Set(n.clone(), v.eval(ctx))),
            ReqAction::AddHeader(n, v) => edits.push(Edit::Add(n.clone(), v.eval(ctx))),
            ReqAction::DelHeader(n, m) => edits.push(Edit::Del(n.clone(), m.clone())),
            ReqAction::Auth(realm) => {
                let realm = realm.as_deref().unwrap_or(&fe.name).replace('"', "");
                let mut bytes = crate::l7::session::error_response(401, false);
                if let Some(pos) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                    let h = format!("\r\nwww-authenticate: Basic realm=\"{realm}\"");
                    bytes.splice(pos..pos, h.bytes());
                }
                return (Verdict::Reply { bytes, close: false }, edits);
            }
        }
    }
    (Verdict::Forward, edits)
}

fn matches_del(value: &[u8], name_in_edit: &str, m: &HeaderMatch) -> bool {
    let v = String::from_utf8_lossy(value);
    match m {
        HeaderMatch::Str => true,
        HeaderMatch::Beg => v.starts_with(name_in_edit),
        HeaderMatch::End => v.ends_with(name_in_edit),
        HeaderMatch::Sub => v.contains(name_in_edit),
        HeaderMatch::Reg(_) => true,
    }
}

type Bytes<'a> = std::borrow::Cow<'a, [u8]>;

/// Writes a request head with `edits` applied in order, and the `Connection` header this hop
/// needs. Without edits, fields are copied as received.
pub fn write_request_head(buf: &[u8], head: &Head, edits: &Edits, close: bool, out: &mut Vec<u8>) {
    let line_end = buf[..head.len].windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    out.extend_from_slice(&buf[..line_end + 2]);
    let mut fields: Vec<(Bytes<'_>, Bytes<'_>)> =
        head.fields.iter().map(|f| (std::borrow::Cow::Borrowed(&buf[f.name.clone()]), std::borrow::Cow::Borrowed(&buf[f.value.clone()]))).collect();
    for e in edits {
        match e {
            Edit::Set(n, v) => {
                fields.retain(|(fname, _)| !fname.eq_ignore_ascii_case(n.as_bytes()));
                fields.push((n.as_bytes().to_vec().into(), v.as_bytes().to_vec().into()));
            }
            Edit::Add(n, v) => fields.push((n.as_bytes().to_vec().into(), v.as_bytes().to_vec().into())),
            Edit::Del(n, m) => fields.retain(|(fname, fval)| !(fname.eq_ignore_ascii_case(n.as_bytes()) && matches_del(fval, n, m))),
        }
    }
    for (n, v) in &fields {
        if n.eq_ignore_ascii_case(b"connection") {
            continue;
        }
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if head.version == crate::l7::h1::Version::Http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}
