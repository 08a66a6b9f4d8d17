//! HTTP rules as the data plane runs them: `http-request`, `http-response` and
//! `http-after-response`, compiled once with the routing table and run on a message head.
//!
//! A rule list runs in order until a rule decides (allow, deny, return, redirect, auth, tarpit,
//! reject) or the list ends. Rewrites are recorded as [`Edits`] and applied to an [`EditedView`]
//! at once, so the conditions and values of later rules see the message as edited so far, as in
//! HAProxy. Log-format values are evaluated per message.
//!
//! `set-var`, `set-var-fmt` and `unset-var` store in the stream's variables
//! ([`crate::route::vars`]); `capture` stores in the transaction's capture slots
//! ([`crate::route::capture`]). The actions not compiled here are parsed only: the routing table
//! reports them when it compiles.

use regex::bytes::Regex;

use crate::config::logformat::LogFormat;
use crate::config::model::HttpErrors;
use crate::l4::action::{AddrPart, CaptureSlot, CommonAction, Service};
use crate::l7::config::{HttpAction, Redirect, RequestPart};
use crate::l7::edit::{Edit, Edits, NameMatch, TargetPart, byte_regex};
use crate::l7::reply::{CompiledReply, ErrorResponses, FileLoader, RedirectRequest, ReplyKind, Response, error_response, redirect_response};
use crate::l7::session::{HttpCtx, Msg};
use crate::log::config::CaptureDir;
use crate::route::capture::CaptureConfig;
use crate::route::eval::{CompiledCond, CompiledSample, HttpMsg, SampleRef, StreamCtx, Tri};
use crate::route::logformat::CompiledLf;
use crate::route::vars::VarAction;

/// Which rule set a rule belongs to: it decides the defaults (`deny` answers 403 to a request,
/// 502 in place of a response) and which message the rewrites apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Request,
    Response,
    AfterResponse,
}

/// What a rule does, compiled.
#[derive(Debug)]
pub enum Action {
    /// Stops this rule set; the message goes on.
    Allow,
    /// Answers with the reply instead of the message (`return`).
    Reply(CompiledReply),
    /// `deny`: answers with the reply and counts a denied request.
    Deny(CompiledReply),
    /// Holds the request for `timeout tarpit`, then answers with the reply.
    Tarpit(CompiledReply),
    /// Closes the connection without an answer.
    Reject,
    /// `silent-drop [rst-ttl <ttl>]`: closes the connection telling the client nothing.
    SilentDrop(Option<u8>),
    Redirect(Redirect),
    /// Answers 401 asking for Basic credentials in `realm` (the frontend's name by default).
    Auth(Option<String>),
    /// A rewrite of the message.
    Rewrite(Rewrite),
    /// `set-var`, `set-var-fmt`, `unset-var`.
    Var(VarAction),
    /// `set-src`, `set-dst`, `set-src-port`, `set-dst-port`: the addresses later rules, the
    /// balancing, `option forwardfor` and servers without an address of their own see.
    SetAddr(AddrPart, CompiledSample),
    /// `capture <expr> len <n>|id <n>`: the value, as a string, into a slot of the frontend.
    Capture {
        expr: CompiledSample,
        dir: CaptureDir,
        slot: usize,
    },
    /// `use-service prometheus-exporter`: answers with the metrics exposition.
    PrometheusExporter,
    /// `track-sc*`, `sc-inc-gpc*`, `sc-set-gpt*`, `sc-take-token` (an empty bucket answers 429).
    Stick(crate::stick::track::StickAction),
    /// `disable-l7-retry`: `retry-on` does not send this request again once it has gone out.
    DisableL7Retry,
    /// `set-log-level <level>`: the level of this transaction's log line (`silent`: none).
    SetLogLevel(crate::l4::action::LogLevel),
    /// `set-timeout client|server|tunnel <time|expr>`: a timeout for this transaction only; an
    /// expression gives milliseconds, and a value that is absent or not positive changes nothing.
    SetTimeout(crate::l7::config::StreamTimeout, TimeValue),
    /// `normalize-uri <normalizer>`: rewrites the target; a `strict` one answers 400 to an
    /// invalid percent-encoding.
    NormalizeUri(crate::l7::config::UriNormalizer),
    /// `wait-for-body time <time> [at-least <size>]`: while the request body is not all read,
    /// stops the set so that the session reads it.
    WaitForBody {
        time: std::time::Duration,
        at_least: Option<u64>,
    },
}

/// A time given in the configuration, or an expression evaluated per stream (milliseconds).
#[derive(Debug)]
pub enum TimeValue {
    Time(std::time::Duration),
    Expr(CompiledSample),
}

/// A rewrite whose values are evaluated per message.
#[derive(Debug)]
pub enum Rewrite {
    Set(String, CompiledLf),
    Add(String, CompiledLf),
    Del(String, NameMatch),
    Replace { name: String, regex: Regex, replace: CompiledLf },
    ReplaceValue { name: String, regex: Regex, replace: CompiledLf },
    SetPart(RequestPart, CompiledLf),
    ReplaceTarget(TargetPart, Regex, CompiledLf),
    SetStatus(u16, Option<Vec<u8>>),
}

#[derive(Debug)]
pub struct HttpRule {
    pub action: Action,
    pub cond: Option<CompiledCond>,
}

/// What the files and sections replies may name, and the capture slots, while the routing table
/// compiles.
pub struct CompileEnv<'a> {
    pub sections: &'a [HttpErrors],
    pub loader: &'a mut FileLoader,
    /// The proxy's capture slots when it has a frontend; a backend cannot check `id`s, which
    /// name slots of whatever frontend passes the request on.
    pub captures: Option<&'a CaptureConfig>,
    /// The slot of each `http-request capture ... len` rule not compiled yet, in rule order.
    pub capture_len_slots: std::vec::IntoIter<usize>,
    /// The proxy the rules belong to: `track-sc` without `table` uses its table.
    pub proxy: &'a str,
    pub tables: &'a crate::stick::table::Tables,
}

/// `capture <expr> len <n>|id <n>` of a rule set: where the value goes.
fn compile_capture(expr: &crate::config::expr::SampleExpr, slot: CaptureSlot, stage: Stage, env: &mut CompileEnv<'_>) -> Result<Action, String> {
    let dir = if stage == Stage::Request { CaptureDir::Request } else { CaptureDir::Response };
    let slot = match slot {
        CaptureSlot::Len(_) => match env.captures {
            Some(_) => env.capture_len_slots.next().ok_or("capture slot numbering failed")?,
            None => return Err(
                "'capture ... len' needs a frontend: declare the slot in the frontend with 'declare capture request len <n>' and use 'capture ... id <n>' here"
                    .into(),
            ),
        },
        CaptureSlot::Id(id) => {
            let id = id as usize;
            let count = env.captures.map(|c| if dir == CaptureDir::Request { c.req_lens.len() } else { c.res_lens.len() });
            if count.is_some_and(|n| id >= n) {
                return Err(format!("unable to find capture id '{id}' referenced by the capture rule (declare it with 'declare capture')"));
            }
            id
        }
    };
    Ok(Action::Capture { expr: CompiledSample::compile(expr)?, dir, slot })
}

/// Compiles an action of the `stage` rule set; `None` when the data plane does not implement it
/// (it is then parsed only).
pub fn compile_action(a: &HttpAction, stage: Stage, env: &mut CompileEnv<'_>) -> Result<Option<Action>, String> {
    let reply = |r, kind, env: &mut CompileEnv<'_>| CompiledReply::compile(r, kind, env.sections, env.loader);
    if let HttpAction::Common(c) = a
        && let Some(v) = VarAction::compile(c)?
    {
        return Ok(Some(Action::Var(v)));
    }
    // `track-sc*` in `http-request` and `http-response` rules (as HAProxy), `sc-take-token` in
    // `http-request` ones.
    if let HttpAction::Common(c) = a
        && (stage == Stage::Request || !matches!(c, CommonAction::TakeToken { .. }))
        && (stage != Stage::AfterResponse || !matches!(c, CommonAction::TrackSc { .. }))
        && let Some(s) = crate::stick::track::compile(c, env.proxy, env.tables)?
    {
        return Ok(Some(Action::Stick(s)));
    }
    if let HttpAction::Common(CommonAction::SetAddr { part, expr }) = a
        && stage == Stage::Request
    {
        return Ok(Some(Action::SetAddr(*part, CompiledSample::compile(expr)?)));
    }
    Ok(Some(match a {
        HttpAction::Allow => Action::Allow,
        HttpAction::Reject => Action::Reject,
        HttpAction::Deny(r) => Action::Deny(reply(r, ReplyKind::Error, env)?),
        HttpAction::Return(r) => Action::Reply(reply(r, ReplyKind::Return, env)?),
        HttpAction::Tarpit(r) => Action::Tarpit(reply(r, ReplyKind::Error, env)?),
        HttpAction::Redirect(r) => Action::Redirect(r.clone()),
        HttpAction::Auth { realm } => Action::Auth(realm.clone()),
        HttpAction::SetHeader { name, value } => Action::Rewrite(Rewrite::Set(name.clone(), CompiledLf::compile(value)?)),
        HttpAction::AddHeader { name, value } => Action::Rewrite(Rewrite::Add(name.clone(), CompiledLf::compile(value)?)),
        HttpAction::DelHeader { name, matching } => Action::Rewrite(Rewrite::Del(name.clone(), NameMatch::from_config(matching)?)),
        HttpAction::ReplaceHeader { name, regex, replace } => {
            Action::Rewrite(Rewrite::Replace { name: name.clone(), regex: byte_regex(regex)?, replace: CompiledLf::compile(replace)? })
        }
        HttpAction::ReplaceValue { name, regex, replace } => {
            Action::Rewrite(Rewrite::ReplaceValue { name: name.clone(), regex: byte_regex(regex)?, replace: CompiledLf::compile(replace)? })
        }
        HttpAction::SetRequestPart { part, value } => Action::Rewrite(Rewrite::SetPart(*part, CompiledLf::compile(value)?)),
        HttpAction::ReplaceRequestPart { part, regex, replace } => {
            let part = match part {
                RequestPart::Path => TargetPart::Path,
                RequestPart::PathQ => TargetPart::PathQ,
                RequestPart::Uri => TargetPart::Uri,
                RequestPart::Method | RequestPart::Query => return Ok(None),
            };
            Action::Rewrite(Rewrite::ReplaceTarget(part, byte_regex(regex)?, CompiledLf::compile(replace)?))
        }
        HttpAction::SetStatus { status, reason } => Action::Rewrite(Rewrite::SetStatus(*status, reason.as_ref().map(|r| r.clone().into_bytes()))),
        HttpAction::Common(CommonAction::Capture { expr, slot }) => compile_capture(expr, *slot, stage, env)?,
        HttpAction::Common(CommonAction::SilentDrop { rst_ttl }) => Action::SilentDrop(*rst_ttl),
        HttpAction::UseService(Service::PrometheusExporter) if stage == Stage::Request => Action::PrometheusExporter,
        HttpAction::DisableL7Retry if stage == Stage::Request => Action::DisableL7Retry,
        HttpAction::NormalizeUri(n) if stage == Stage::Request => Action::NormalizeUri(*n),
        HttpAction::WaitForBody { time, at_least } if stage == Stage::Request => Action::WaitForBody { time: *time, at_least: *at_least },
        HttpAction::Common(CommonAction::SetLogLevel(l)) => Action::SetLogLevel(*l),
        HttpAction::SetTimeout { timeout, value } => Action::SetTimeout(
            *timeout,
            match value {
                crate::l7::config::TimeOrExpr::Time(d) => TimeValue::Time(*d),
                crate::l7::config::TimeOrExpr::Expr(e) => TimeValue::Expr(CompiledSample::compile(e)?),
            },
        ),
        _ => return Ok(None),
    }))
}

/// How a rule set ended.
pub enum Flow {
    /// The message goes on (the list ended, or `allow`).
    Continue,
    /// Answer with this response instead.
    Reply(Response),
    /// Hold the request for `timeout tarpit`, then answer with this response.
    Tarpit(Response),
    /// Close without an answer (after `silent-drop`, one that tells the client nothing).
    Reject,
    /// A `wait-for-body` rule stopped the set (`TxnSettings::wait_for_body` says how long and
    /// where to go on): the session reads the body, then runs the set from the next rule.
    WaitForBody,
}

/// Evaluates a log-format the reply module hands over. Replies keep their formats uncompiled, so
/// the rare reply with a log-format body compiles it when sent.
pub fn eval_format(f: &LogFormat, ctx: &dyn StreamCtx) -> String {
    CompiledLf::compile(f).map(|c| c.eval(ctx)).unwrap_or_default()
}

/// The error tables in HAProxy's lookup order: the backend's, then the frontend's.
pub(crate) fn error_tables<'a>(ctx: &HttpCtx<'a>) -> Vec<&'a ErrorResponses> {
    let mut t = Vec::with_capacity(2);
    if let Some(be) = ctx.backend.and_then(|b| ctx.rt.backends.get(b)) {
        t.push(&be.http.errors);
    }
    t.push(&ctx.fe.http.errors);
    t
}

/// A request denied by a rule (`deny`, `reject`, `tarpit`) counts in `dreq` of the frontend, and
/// of the backend once one is chosen, as in HAProxy.
fn count_denied(base: &HttpCtx<'_>, is_request: bool) {
    if is_request {
        base.fe.counters.denied();
        if let Some(be) = base.backend.and_then(|b| base.rt.backends.get(b)) {
            be.counters.denied();
        }
    }
}

/// Runs `rules` on `msg`. For a request `other` is `None`; for a response it is the request when
/// it is still at hand. Rewrites go to `msg` (so later rules see them) and to `edits`.
#[inline(always)]
pub(crate) fn run(rules: &[HttpRule], base: &HttpCtx<'_>, msg: &mut Msg<'_>, other: Option<&Msg<'_>>, is_request: bool, edits: &mut Edits) -> Flow {
    run_from(rules, 0, base, msg, other, is_request, edits)
}

/// [`run`] from the rule at `from`: the rules after a `wait-for-body`. Inlined, so that an empty
/// rule set costs its callers a comparison and no call.
#[inline(always)]
pub(crate) fn run_from(
    rules: &[HttpRule],
    from: usize,
    base: &HttpCtx<'_>,
    msg: &mut Msg<'_>,
    other: Option<&Msg<'_>>,
    is_request: bool,
    edits: &mut Edits,
) -> Flow {
    // Most rule sets of a request are empty: no call at all for them.
    if rules.len() <= from { Flow::Continue } else { run_set(rules, from, base, msg, other, is_request, edits) }
}

fn run_set(rules: &[HttpRule], from: usize, base: &HttpCtx<'_>, msg: &mut Msg<'_>, other: Option<&Msg<'_>>, is_request: bool, edits: &mut Edits) -> Flow {
    let mut next = from;
    while next < rules.len() {
        // The stream as the rules see it: built once, and again after each rewrite of `msg`.
        let ctx = with_msg(base, msg, other, is_request);
        let edit = loop {
            let Some(r) = rules.get(next) else { return Flow::Continue };
            next += 1;
            if !r.cond.as_ref().is_none_or(|c| c.eval(&ctx) == Tri::Yes) {
                continue;
            }
            let lf = |f: &LogFormat| eval_format(f, &ctx);
            let edit = match &r.action {
                Action::Allow => return Flow::Continue,
                Action::Reject => {
                    count_denied(base, is_request);
                    return Flow::Reject;
                }
                Action::SilentDrop(ttl) => {
                    // The client socket is readied here, so that `Flow` (returned by every rule
                    // run of every request) keeps its shape: a variant with data cost each call
                    // site instructions (bench/RESULTS.md).
                    crate::runtime::sockopt::silent_drop(std::os::fd::AsFd::as_fd(base.dst.client.socket()), *ttl);
                    count_denied(base, is_request);
                    return Flow::Reject;
                }
                Action::Reply(rep) => return Flow::Reply(rep.render(&error_tables(&ctx), &lf)),
                Action::Deny(rep) => {
                    count_denied(base, is_request);
                    return Flow::Reply(rep.render(&error_tables(&ctx), &lf));
                }
                Action::PrometheusExporter => return Flow::Reply(crate::control::prometheus::response(base.rt, msg.uri())),
                Action::Tarpit(rep) => {
                    count_denied(base, is_request);
                    return Flow::Tarpit(rep.render(&error_tables(&ctx), &lf));
                }
                Action::Redirect(red) => {
                    let req: &dyn HttpMsg = if is_request { &*msg } else { other.map_or(&*msg as &dyn HttpMsg, |o| o as &dyn HttpMsg) };
                    let host = (0..req.header_count()).map(|i| req.header(i)).find(|(n, _)| n.eq_ignore_ascii_case(b"host")).map(|(_, v)| v);
                    let rr = RedirectRequest { target: req.uri(), host, body_pending: base.body_pending };
                    match redirect_response(red, &rr, &lf) {
                        Some(resp) => return Flow::Reply(resp),
                        None => continue,
                    }
                }
                Action::Auth(realm) => {
                    let realm = realm.as_deref().unwrap_or(&base.fe.name).replace('"', "");
                    let mut resp = error_response(401, &error_tables(&ctx), &lf);
                    if let Some(pos) = resp.bytes.windows(2).position(|w| w == b"\r\n") {
                        let h = format!("\r\nwww-authenticate: Basic realm=\"{realm}\"");
                        resp.bytes.splice(pos..pos, h.bytes());
                    }
                    return Flow::Reply(resp);
                }
                Action::Rewrite(w) => rewrite(w, &ctx, is_request),
                Action::NormalizeUri(n) => match super::normalize::normalize(*n, msg.uri()) {
                    Ok(uri) => uri.map(Edit::SetUri),
                    Err(super::normalize::InvalidPercent) => return Flow::Reply(error_response(400, &error_tables(&ctx), &lf)),
                },
                Action::Var(v) => {
                    v.run(&ctx);
                    None
                }
                Action::DisableL7Retry => {
                    base.txn.no_l7_retry.set(true);
                    None
                }
                Action::WaitForBody { time, at_least } => {
                    // With the whole body read (or none to read), there is nothing to wait for.
                    if !base.body_pending {
                        continue;
                    }
                    base.txn.wait_for_body.set(Some(crate::l7::session::WaitForBody { time: *time, at_least: *at_least, next }));
                    return Flow::WaitForBody;
                }
                Action::SetLogLevel(l) => {
                    base.txn.log_level.set(Some(*l));
                    None
                }
                Action::SetTimeout(which, value) => {
                    let d = match value {
                        TimeValue::Time(d) => Some(*d),
                        TimeValue::Expr(e) => match e.eval_ref(&ctx) {
                            Ok(Some(v)) => v.as_int().and_then(|ms| u64::try_from(ms).ok()).map(std::time::Duration::from_millis),
                            _ => None,
                        },
                    };
                    if let Some(d) = d.filter(|d| !d.is_zero()) {
                        base.txn.set_timeout(*which, d);
                    }
                    None
                }
                Action::Stick(s) => match s.run(&ctx, if is_request { crate::stick::track::Level::Http } else { crate::stick::track::Level::HttpResponse }) {
                    Ok(()) => None,
                    Err(wait_ms) => return Flow::Reply(too_many_requests(&error_tables(&ctx), &lf, wait_ms)),
                },
                Action::SetAddr(part, expr) => {
                    if let Ok(Some(v)) = expr.eval_ref(&ctx) {
                        set_addr(base, *part, &v);
                    }
                    None
                }
                Action::Capture { expr, dir, slot } => {
                    if let Ok(Some(v)) = expr.eval_ref(&ctx) {
                        base.captures.borrow_mut().store(*dir, *slot, &v.as_bytes());
                    }
                    None
                }
            };
            if let Some(e) = edit {
                break e;
            }
        };
        msg.view.apply(&edit);
        edits.push(edit);
    }
    Flow::Continue
}

/// The answer of `sc-take-token` on an empty bucket: 429 (the proxies' page for it, if any) with
/// `Retry-After` in whole seconds, rounded up.
fn too_many_requests(tables: &[&ErrorResponses], lf: &dyn Fn(&LogFormat) -> String, wait_ms: u64) -> Response {
    let mut resp = error_response(429, tables, lf);
    if let Some(pos) = resp.bytes.windows(2).position(|w| w == b"\r\n") {
        let h = format!("\r\nretry-after: {}", wait_ms.div_ceil(1000).max(1));
        resp.bytes.splice(pos..pos, h.bytes());
    }
    resp
}

/// Applies `set-src`/`set-dst` (an address; the port is kept when the family allows, else 0)
/// or `set-src-port`/`set-dst-port` (an integer). A value of the wrong kind changes nothing.
fn set_addr(base: &HttpCtx<'_>, part: AddrPart, v: &SampleRef<'_>) {
    use std::net::SocketAddr;
    let with_ip = |old: Option<SocketAddr>| v.as_ip().map(|ip| SocketAddr::new(ip, old.filter(|o| o.is_ipv4() == ip.is_ipv4()).map_or(0, |o| o.port())));
    let with_port = |old: Option<SocketAddr>| {
        let port = v.as_int().and_then(|p| u16::try_from(p).ok())?;
        old.map(|mut a| {
            a.set_port(port);
            a
        })
    };
    match part {
        AddrPart::Src => {
            if let Some(a) = with_ip(base.src.get()) {
                base.src.set(Some(a));
            }
        }
        AddrPart::SrcPort => {
            if let Some(a) = with_port(base.src.get()) {
                base.src.set(Some(a));
            }
        }
        AddrPart::Dst => {
            if let Some(a) = with_ip(base.dst.get()) {
                base.dst.set(Some(a));
            }
        }
        AddrPart::DstPort => {
            if let Some(a) = with_port(base.dst.get()) {
                base.dst.set(Some(a));
            }
        }
    }
}

/// Whether a stats page's admin actions are allowed for `msg`: one of its `stats admin if <cond>`
/// conditions holds.
pub(crate) fn stats_admin_allowed(conds: &[crate::route::eval::CompiledCond], base: &HttpCtx<'_>, msg: &Msg<'_>) -> bool {
    let ctx = with_msg(base, msg, None, true);
    conds.iter().any(|c| c.eval(&ctx) == Tri::Yes)
}

/// The stream with `msg` as the request or the response.
// Out of line: inlined, the compiler loads every field of `base` ahead of the rule loop of
// `run`, which costs more than the copy.
#[inline(never)]
fn with_msg<'b>(base: &HttpCtx<'b>, msg: &'b Msg<'_>, other: Option<&'b Msg<'_>>, is_request: bool) -> HttpCtx<'b> {
    if is_request {
        HttpCtx { req: Some(msg), req_buf: msg.buf, res: None, ..*base }
    } else {
        match other {
            Some(o) => HttpCtx { req: Some(o), req_buf: o.buf, res: Some(msg), ..*base },
            None => HttpCtx { res: Some(msg), ..*base },
        }
    }
}

fn rewrite(w: &Rewrite, ctx: &dyn StreamCtx, is_request: bool) -> Option<Edit> {
    let v = |lf: &CompiledLf| lf.eval(ctx).into_bytes();
    Some(match w {
        Rewrite::Set(name, value) => Edit::Set { name: name.clone(), value: v(value) },
        Rewrite::Add(name, value) => Edit::Add { name: name.clone(), value: v(value) },
        Rewrite::Del(name, matching) => Edit::Del { name: name.clone(), matching: matching.clone() },
        Rewrite::Replace { name, regex, replace } => Edit::Replace { name: name.clone(), regex: regex.clone(), replacement: v(replace) },
        Rewrite::ReplaceValue { name, regex, replace } => Edit::ReplaceValue { name: name.clone(), regex: regex.clone(), replacement: v(replace) },
        Rewrite::SetPart(part, value) if is_request => match part {
            RequestPart::Method => Edit::SetMethod(v(value)),
            RequestPart::Path => Edit::SetPath(v(value)),
            RequestPart::PathQ => Edit::SetPathQ(v(value)),
            RequestPart::Query => Edit::SetQuery(v(value)),
            RequestPart::Uri => Edit::SetUri(v(value)),
        },
        Rewrite::ReplaceTarget(part, regex, replace) if is_request => Edit::ReplaceTarget { part: *part, regex: regex.clone(), replacement: v(replace) },
        Rewrite::SetStatus(status, reason) if !is_request => Edit::SetStatus { status: *status, reason: reason.clone() },
        _ => return None,
    })
}
