//! Evaluating conditions and sample expressions against a stream. Conditions are compiled once per
//! routing table from the configuration's `Condition`s and the proxy's declared ACLs; evaluation
//! reads the stream through [`StreamCtx`].
//!
//! Evaluation follows HAProxy (configuration manual 7.1 and 7.2): an ACL matches when any of its
//! patterns matches the sample (and when any of its same-named declarations matches); terms are
//! ANDed, groups ORed, `unless` inverts. A sample that is absent, or present but still able to change
//! (`req.len`), while more request data may arrive gives [`Tri::Miss`], which propagates with
//! three-valued logic. Once [`StreamCtx::req_final`] is true a miss is a no-match.
//!
//! Samples are computed into [`SampleRef`], which borrows from the request buffer and the compiled
//! expression: matching a string or a payload slice allocates nothing.

use std::borrow::Cow;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::acl::{self, CompiledAcl};
use super::capture::Captured;
use super::convert::Conv;
use super::fetch::{Fetch, Fetched};
use super::vars::VarStore;
use crate::balance::BackendState;
use crate::config::expr::{AclRef, Condition, Polarity, SampleExpr};
use crate::config::model::{AclDecl, Userlist};

pub use super::convert::implemented_converters;
pub use super::fetch::implemented_fetches;

/// A sample value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sample {
    Bool(bool),
    Int(i64),
    Ip(IpAddr),
    Str(String),
    Bin(Vec<u8>),
}

impl Sample {
    /// The value as a [`SampleRef`] that owns it (a variable's copy, for instance).
    pub fn into_ref(self) -> SampleRef<'static> {
        match self {
            Sample::Bool(b) => SampleRef::Bool(b),
            Sample::Int(n) => SampleRef::Int(n),
            Sample::Ip(a) => SampleRef::Ip(a),
            Sample::Str(s) => SampleRef::Str(Cow::Owned(s.into_bytes())),
            Sample::Bin(b) => SampleRef::Bin(Cow::Owned(b)),
        }
    }
}

/// A sample value that may borrow from the stream's buffer or from the compiled expression. Strings
/// are bytes: what a client sent need not be UTF-8.
#[derive(Clone, Debug)]
pub enum SampleRef<'a> {
    Bool(bool),
    Int(i64),
    Ip(IpAddr),
    Str(Cow<'a, [u8]>),
    /// A string shared with a map's index (the values of the `map*` converters): taken without
    /// a copy, and kept if the index is replaced at run time meanwhile. In every other way a
    /// string, as `Str` (equal to a `Str` of the same bytes).
    SharedStr(Arc<[u8]>),
    Bin(Cow<'a, [u8]>),
}

impl PartialEq for SampleRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        use SampleRef::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Ip(a), Ip(b)) => a == b,
            (Bin(a), Bin(b)) => a == b,
            (Str(_) | SharedStr(_), Str(_) | SharedStr(_)) => self.as_bytes() == other.as_bytes(),
            _ => false,
        }
    }
}

impl Eq for SampleRef<'_> {}

impl SampleRef<'_> {
    /// An owned copy; strings that are not UTF-8 are converted lossily.
    pub fn to_sample(&self) -> Sample {
        match self {
            SampleRef::Bool(b) => Sample::Bool(*b),
            SampleRef::Int(n) => Sample::Int(*n),
            SampleRef::Ip(a) => Sample::Ip(*a),
            SampleRef::Str(s) => Sample::Str(String::from_utf8_lossy(s).into_owned()),
            SampleRef::SharedStr(s) => Sample::Str(String::from_utf8_lossy(s).into_owned()),
            SampleRef::Bin(b) => Sample::Bin(b.to_vec()),
        }
    }

    /// The sample as an integer, as HAProxy casts: booleans are 0 or 1, strings are parsed.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            SampleRef::Bool(b) => Some(i64::from(*b)),
            SampleRef::Int(n) => Some(*n),
            SampleRef::Str(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
            SampleRef::SharedStr(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
            SampleRef::Ip(_) | SampleRef::Bin(_) => None,
        }
    }

    /// The sample as an address: strings are parsed.
    pub fn as_ip(&self) -> Option<IpAddr> {
        match self {
            SampleRef::Ip(a) => Some(*a),
            SampleRef::Str(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
            SampleRef::SharedStr(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// The sample as a string: borrowed for strings and binaries, formatted otherwise.
    pub fn as_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            SampleRef::Str(s) | SampleRef::Bin(s) => Cow::Borrowed(s.as_ref()),
            SampleRef::SharedStr(s) => Cow::Borrowed(s),
            SampleRef::Bool(b) => Cow::Borrowed(if *b { b"1" } else { b"0" }),
            SampleRef::Int(n) => Cow::Owned(n.to_string().into_bytes()),
            SampleRef::Ip(a) => Cow::Owned(a.to_string().into_bytes()),
        }
    }

    /// The sample as binary input (hashes, `hex`, `base64`): addresses are their network-order
    /// bytes, as HAProxy casts them; everything else as [`as_bytes`](Self::as_bytes).
    pub fn as_bin(&self) -> Cow<'_, [u8]> {
        match self {
            SampleRef::Ip(IpAddr::V4(a)) => Cow::Owned(a.octets().to_vec()),
            SampleRef::Ip(IpAddr::V6(a)) => Cow::Owned(a.octets().to_vec()),
            _ => self.as_bytes(),
        }
    }
}

impl<'a> SampleRef<'a> {
    /// The string or binary content, moved out without copying; other types are formatted.
    pub(crate) fn into_bytes(self) -> Cow<'a, [u8]> {
        match self {
            SampleRef::Str(s) | SampleRef::Bin(s) => s,
            other => Cow::Owned(other.as_bytes().into_owned()),
        }
    }
}

/// The outcome of a condition. `Miss` means the answer needs data that has not arrived yet (content
/// inspection before `inspect-delay` expires); once the stream says its data is final, a miss is
/// a no-match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tri {
    Yes,
    No,
    Miss,
}

impl Tri {
    /// Three-valued AND: a `No` decides, then a `Miss`.
    pub fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Miss, _) | (_, Tri::Miss) => Tri::Miss,
            _ => Tri::Yes,
        }
    }

    /// Three-valued OR: a `Yes` decides, then a `Miss`.
    pub fn or(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::Yes, _) | (_, Tri::Yes) => Tri::Yes,
            (Tri::Miss, _) | (_, Tri::Miss) => Tri::Miss,
            _ => Tri::No,
        }
    }

    /// Negation; a miss stays a miss.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Tri {
        match self {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            Tri::Miss => Tri::Miss,
        }
    }

    pub fn from_bool(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }
}

/// An HTTP message as fetches see it: the request or response head after the rules that ran so far
/// (header edits included), and its body when it was buffered. Names compare case-insensitively.
pub trait HttpMsg {
    /// Request method (`GET`); empty for a response.
    fn method(&self) -> &[u8];
    /// Request target as received (`/path?query`, or absolute form); empty for a response.
    fn uri(&self) -> &[u8];
    /// `HTTP/1.1`.
    fn version(&self) -> &[u8];
    /// Response status; 0 for a request.
    fn status(&self) -> u16;
    fn header_count(&self) -> usize;
    /// The `i`th header field, in order: (name, value), value without surrounding blanks.
    fn header(&self, i: usize) -> (&[u8], &[u8]);
    /// The body, when `option http-buffer-request` (or `wait-for-body`) buffered it.
    fn body(&self) -> Option<&[u8]> {
        None
    }
    /// True for the first request of a connection (`http_first_req`).
    fn first_request(&self) -> bool {
        true
    }
}

/// What the evaluator may ask of a stream.
pub trait StreamCtx {
    /// The client's address (after PROXY protocol, the original client's).
    fn src(&self) -> Option<SocketAddr>;
    /// The address the client connected to.
    fn dst(&self) -> Option<SocketAddr>;
    fn frontend_name(&self) -> &str;
    fn frontend_id(&self) -> u32;
    /// A backend by name, for `nbsrv(be)`, `be_conn(be)`, `connslots(be)`.
    fn backend(&self, name: &str) -> Option<&BackendState>;
    /// The backend chosen so far, if any (fetches without an argument use it).
    fn current_backend(&self) -> Option<&BackendState>;
    /// The numeric id of [`current_backend`](Self::current_backend), for `be_id`; `None` makes
    /// `be_id` absent.
    fn current_backend_id(&self) -> Option<u32> {
        None
    }
    /// The bytes the client sent so far, not yet forwarded (content inspection).
    fn req_buffer(&self) -> &[u8];
    /// The most bytes the request buffer will ever hold (HAProxy's `tune.bufsize`): a payload
    /// beyond it can never arrive, so waiting for it is pointless and it does not match at once.
    fn req_buffer_limit(&self) -> usize {
        16384
    }
    /// True when no more request data will be waited for: a miss is then a no-match.
    fn req_final(&self) -> bool;
    /// The HTTP request, on HTTP streams once its head is parsed.
    fn http_request(&self) -> Option<&dyn HttpMsg> {
        None
    }
    /// The HTTP response, once its head is parsed.
    fn http_response(&self) -> Option<&dyn HttpMsg> {
        None
    }
    /// A `userlist` section by name, for `http_auth(<userlist>)` and `http_auth_group`; with
    /// `None` those fetches are absent.
    fn userlist(&self, _name: &str) -> Option<&Userlist> {
        None
    }
    /// The variables the stream reads and writes (`var()`, `set-var`); with `None` variables are
    /// absent and setting one does nothing.
    fn vars(&self) -> Option<VarStore<'_>> {
        None
    }
    /// The capture slots of the current transaction (`capture.req.hdr`, `capture ... id`); with
    /// `None` captures are absent.
    fn captures(&self) -> Option<&RefCell<Captured>> {
        None
    }
    /// What the TLS handshake of the front connection settled; `None` on a plain connection.
    fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        None
    }
    /// The stick tables and the stream's stick counters; with `None` the stick-table fetches
    /// are absent and the tracking actions do nothing.
    fn stick(&self) -> Option<crate::stick::track::StickView<'_>> {
        None
    }
    /// The stream's stick counters alone, as [`stick`](Self::stick) has them: what the
    /// per-request `track-sc` and `sc_*` reads need.
    fn stick_ctrs(&self) -> Option<&crate::stick::track::StickCtrs> {
        self.stick().map(|v| v.ctrs)
    }
    /// The transaction's unique id (`unique-id-format`), made on first use; `None` without a
    /// format.
    fn unique_id(&self) -> Option<String> {
        None
    }
    /// The client connection's socket, for what the kernel knows of it (`fc_rtt`).
    fn client_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

/// A condition ready to evaluate.
#[derive(Debug)]
pub struct CompiledCond {
    unless: bool,
    /// ORs of ANDs of (negated, index into `acls`).
    any_of: Vec<Vec<(bool, usize)>>,
    /// The one term when there is one (`if { ... }`, `if acl_name`): evaluated without the loops.
    single: Option<(bool, usize)>,
    /// Each ACL the condition names, compiled once even when named several times.
    acls: Vec<CompiledAcl>,
}

impl CompiledCond {
    /// Compiles `cond`, resolving named ACLs against `acls` (the proxy's declarations; several
    /// declarations of one name are ORed) and then the predefined ACLs.
    pub fn compile(cond: &Condition, acls: &[AclDecl]) -> Result<CompiledCond, String> {
        let mut compiled = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let mut any_of = Vec::with_capacity(cond.any_of.len());
        for group in &cond.any_of {
            let mut terms = Vec::with_capacity(group.len());
            for term in group {
                let index = match &term.acl {
                    AclRef::Named(name) => match names.iter().position(|n| n == name) {
                        Some(i) => i,
                        None => {
                            compiled.push(acl::compile_named(name, acls)?);
                            names.push(name);
                            compiled.len() - 1
                        }
                    },
                    AclRef::Inline(body) => {
                        compiled.push(CompiledAcl::compile(std::slice::from_ref(body.as_ref()))?);
                        // Inline ACLs are never shared: keep `names` aligned with an impossible name.
                        names.push("");
                        compiled.len() - 1
                    }
                };
                terms.push((term.negated, index));
            }
            any_of.push(terms);
        }
        let single = match any_of.as_slice() {
            [group] => match group.as_slice() {
                [term] => Some(*term),
                _ => None,
            },
            _ => None,
        };
        Ok(CompiledCond { unless: cond.polarity == Polarity::Unless, any_of, single, acls: compiled })
    }

    pub fn eval(&self, ctx: &dyn StreamCtx) -> Tri {
        if let Some((negated, i)) = self.single {
            // One group of one term: the loops below would give the term's value.
            let Some(acl) = self.acls.get(i) else { return Tri::No };
            let t = acl.eval(ctx);
            return if negated != self.unless { t.not() } else { t };
        }
        let mut result = Tri::No;
        for group in &self.any_of {
            let mut all = Tri::Yes;
            for &(negated, i) in group {
                let Some(acl) = self.acls.get(i) else { return Tri::No };
                let t = acl.eval(ctx);
                all = all.and(if negated { t.not() } else { t });
                if all == Tri::No {
                    break;
                }
            }
            result = result.or(all);
            if result == Tri::Yes {
                break;
            }
        }
        if self.unless { result.not() } else { result }
    }
}

/// A sample expression ready to evaluate.
#[derive(Debug)]
pub struct CompiledSample {
    fetch: Fetch,
    converters: Vec<Conv>,
}

impl CompiledSample {
    /// Compiles the fetch and converters, parsing constant arguments (`ipv4(...)`, masks, regexes)
    /// once. Fetches and converters not implemented at this layer compile to "absent".
    pub fn compile(expr: &SampleExpr) -> Result<CompiledSample, String> {
        let fetch = Fetch::compile(&expr.fetch)?;
        let converters = expr.converters.iter().map(Conv::compile).collect::<Result<_, _>>()?;
        Ok(CompiledSample { fetch, converters })
    }

    /// `Err(())` is a miss (data not there yet); `Ok(None)` is an absent sample.
    #[allow(clippy::result_unit_err)]
    pub fn eval(&self, ctx: &dyn StreamCtx) -> Result<Option<Sample>, ()> {
        self.eval_ref(ctx).map(|s| s.map(|s| s.to_sample()))
    }

    /// As [`eval`](Self::eval), borrowing from the stream and the expression where it can.
    #[allow(clippy::result_unit_err)]
    pub fn eval_ref<'a>(&'a self, ctx: &'a dyn StreamCtx) -> Result<Option<SampleRef<'a>>, ()> {
        let f = self.fetched(ctx);
        match f.value {
            None if f.may_change => Err(()),
            v => Ok(v),
        }
    }

    /// For ACLs: whether `pred` holds for any value of the sample (each occurrence of a header,
    /// cookie or URL parameter, converted), and whether the values may still change.
    #[inline]
    pub(crate) fn any_value(&self, ctx: &dyn StreamCtx, mut pred: impl FnMut(&SampleRef<'_>) -> bool) -> (bool, bool) {
        if !self.fetch.has_values() {
            // One value (most fetches): no iteration to set up.
            let Fetched { value, may_change } = self.fetched(ctx);
            return (value.is_some_and(|v| pred(&v)), may_change);
        }
        self.each_value(ctx, &mut pred)
    }

    fn each_value(&self, ctx: &dyn StreamCtx, pred: &mut dyn FnMut(&SampleRef<'_>) -> bool) -> (bool, bool) {
        self.fetch.each(ctx, &mut |v| {
            let mut value = Some(v);
            for c in &self.converters {
                let Some(v) = value else { break };
                value = c.apply(v, ctx);
            }
            value.is_some_and(|v| pred(&v))
        })
    }

    /// The sample and whether it may still change (more data may arrive).
    pub(crate) fn fetched<'a>(&'a self, ctx: &'a dyn StreamCtx) -> Fetched<'a> {
        let Fetched { value, may_change } = self.fetch.eval(ctx);
        let mut value = value;
        for c in &self.converters {
            let Some(v) = value else { break };
            value = c.apply(v, ctx);
        }
        Fetched { value, may_change }
    }
}
