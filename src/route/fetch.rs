//! Sample fetches: addresses, proxy state, constants, the content of the request buffer, and the
//! HTTP messages (in [`super::http_fetch`]). Each fetch is compiled once (arguments parsed) into a [`Fetch`]; evaluation reads
//! the stream through [`StreamCtx`] and borrows from it.
//!
//! A fetch that needs request bytes that have not arrived returns no value with `may_change` set,
//! unless the stream says its data is final. HTTP fetches are absent on streams without an HTTP
//! message. Variables and captures are read through the stream ([`StreamCtx::vars`],
//! [`StreamCtx::captures`]). Fetches the registry knows but sluiced cannot answer yet (TLS
//! termination, stick tables) compile to [`Fetch::Unsupported`] and are absent: an ACL on them
//! does not match.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use super::eval::{SampleRef, StreamCtx};
use super::http_fetch::HttpFetch;
use crate::balance::{AdminState, BackendState};
use crate::config::expr::Call;
use crate::l4::action::{VarName, parse_var_name};
use crate::l4::clienthello;
use crate::log::config::CaptureDir;

/// The fetches evaluated for real; every other fetch of the registry is absent for now.
const IMPLEMENTED: &[&str] = &[
    "hostname",
    "date",
    "rand",
    "uuid",
    "stopping",
    "always_true",
    "always_false",
    "int",
    "str",
    "bool",
    "ipv4",
    "ipv6",
    "env",
    "src",
    "dst",
    "src_port",
    "dst_port",
    "fe_name",
    "fe_id",
    "be_name",
    "be_id",
    "nbsrv",
    "be_conn",
    "connslots",
    "srv_conn",
    "srv_is_up",
    "queue",
    "avg_queue",
    "req.len",
    "req_len",
    "req.payload",
    "req.payload_lv",
    "req.ssl_sni",
    "req_ssl_sni",
    "req.rdp_cookie",
    "rdp_cookie",
    "req.rdp_cookie_cnt",
    "rdp_cookie_cnt",
    "req.ssl_hello_type",
    "req_ssl_hello_type",
    "req.ssl_ver",
    "req_ssl_ver",
    "req.proto_http",
    "method",
    "path",
    "pathq",
    "query",
    "url",
    "base",
    "base32",
    "url_param",
    "urlp",
    "urlp_val",
    "req.hdr",
    "hdr",
    "req.fhdr",
    "req.hdr_cnt",
    "hdr_cnt",
    "req.fhdr_cnt",
    "req.hdr_ip",
    "hdr_ip",
    "req.hdr_val",
    "hdr_val",
    "req.hdrs",
    "req.hdr_names",
    "req.uri",
    "url_ip",
    "url_port",
    "req.body_size",
    "req.cook",
    "cook",
    "req.cook_cnt",
    "cook_cnt",
    "req.cook_val",
    "cook_val",
    "req.body",
    "req.body_len",
    "req.ver",
    "req_ver",
    "http_first_req",
    "http_auth",
    "http_auth_group",
    "http_auth_user",
    "http_auth_type",
    "capture.req.method",
    "capture.req.uri",
    "capture.req.hdr",
    "capture.res.hdr",
    "var",
    "status",
    "res.ver",
    "resp_ver",
    "res.hdr",
    "shdr",
    "res.fhdr",
    "res.hdr_cnt",
    "res.hdr_ip",
    "res.hdr_val",
    "res.cook",
    "scook",
    "req.body_param",
    "unique-id",
    "fc_rtt",
    "fc_rttvar",
    "src_is_local",
    "dst_is_local",
    "fc_err",
    "ssl_fc",
    "ssl_fc_sni",
    "ssl_fc_has_sni",
    "ssl_fc_protocol",
    "ssl_fc_cipher",
    "ssl_fc_alpn",
    "ssl_fc_is_resumed",
    "ssl_fc_err",
    "ssl_fc_has_crt",
    "ssl_c_used",
    "ssl_c_verify",
    "ssl_c_err",
    "ssl_c_ca_err",
    "ssl_c_s_dn",
    "ssl_c_i_dn",
    "ssl_c_sha1",
    "ssl_c_serial",
    "ssl_fc_use_keysize",
];

/// The sample fetches evaluated for real (the list above and the stick-table families); the
/// registry's others evaluate to "absent" for now.
pub fn implemented_fetches() -> &'static [&'static str] {
    static ALL: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let stick =
            super::sample::registry().fetches.iter().map(|d| d.name).filter(|n| matches!(crate::stick::fetch::StickFetch::compile(n, &[]), Ok(Some(_))));
        IMPLEMENTED.iter().copied().chain(stick).collect()
    })
}

/// A fetch's output and whether it may still change as more request data arrives (always false
/// once the stream's data is final).
#[derive(Debug)]
pub(crate) struct Fetched<'a> {
    pub value: Option<SampleRef<'a>>,
    pub may_change: bool,
}

impl<'a> Fetched<'a> {
    fn value(v: SampleRef<'a>) -> Fetched<'a> {
        Fetched { value: Some(v), may_change: false }
    }
    fn absent() -> Fetched<'a> {
        Fetched { value: None, may_change: false }
    }
    /// Not there yet: a miss unless the data is final.
    fn too_short(ctx: &dyn StreamCtx) -> Fetched<'a> {
        Fetched { value: None, may_change: !ctx.req_final() }
    }
}

/// What a server fetch reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SrvFetch {
    /// `srv_conn`: connections established on the server now.
    Conns,
    /// `srv_is_up`.
    IsUp,
}

/// A compiled fetch.
#[derive(Debug)]
pub(crate) enum Fetch {
    /// `hostname`: the machine's name, read once at start.
    Hostname,
    /// `date([<offset>[,<unit>]])`: the time since the epoch in `unit`, `offset` seconds later.
    Date {
        offset: i64,
        unit: TimeUnit,
    },
    /// `rand([<range>])`: below `range` (2^32 when not given).
    Rand(u64),
    /// `uuid([4|7])`.
    Uuid(u8),
    /// `stopping`: the process was told to stop (soft stop: sessions still finish).
    Stopping,
    Bool(bool),
    Int(i64),
    Ip(IpAddr),
    Str(Box<[u8]>),
    Env(String),
    Src,
    Dst,
    SrcPort,
    DstPort,
    FeName,
    FeId,
    BeName,
    BeId,
    /// The backend named, or the current one.
    NbSrv(Option<String>),
    BeConn(Option<String>),
    ConnSlots(Option<String>),
    /// `queue([<backend>])`: streams waiting in the backend's queue and in its servers'.
    Queue(Option<String>),
    /// `avg_queue([<backend>])`: `queue` over the usable servers, rounded up; twice `queue`
    /// when no server is usable (HAProxy's rule).
    AvgQueue(Option<String>),
    /// `srv_conn` and `srv_is_up`: a server of the named backend (or of the current one).
    Server {
        backend: Option<String>,
        server: String,
        what: SrvFetch,
    },
    ReqLen,
    /// `req.payload(offset,length)`; length 0 is "to the end of the buffer".
    Payload {
        offset: usize,
        length: usize,
    },
    /// `req.payload_lv(offset1,length[,offset2])`.
    PayloadLv {
        len_offset: usize,
        len_size: usize,
        block: BlockOffset,
    },
    SslSni,
    /// `req.rdp_cookie([<name>])` (`count`: `req.rdp_cookie_cnt`): the cookie of an RDP
    /// connection request, by name or the first one.
    RdpCookie {
        name: Option<String>,
        count: bool,
    },
    SslHelloType,
    SslVer,
    ProtoHttp,
    /// An HTTP fetch.
    Http(HttpFetch),
    /// Waits for the end of the inspection, then true (the `WAIT_END` predefined ACL).
    WaitEnd,
    /// `var(<name>[,<default>])`: the default, when given, is a string.
    Var {
        var: VarName,
        default: Option<Box<[u8]>>,
    },
    /// `capture.req.hdr(<idx>)`, `capture.res.hdr(<idx>)`.
    Capture(CaptureDir, usize),
    /// A fact of the front connection's TLS handshake.
    Tls(TlsFetch),
    /// `ssl_c_s_dn`/`ssl_c_i_dn`: a name of the client certificate, whole or one entry.
    ClientDn {
        issuer: bool,
        entry: Option<String>,
        /// Which occurrence of `entry`: 1 is the first, -1 the last.
        occ: i64,
        rfc2253: bool,
    },
    /// `sc_*`, `src_*`, `table_cnt`...: read through the stream's stick counters.
    Stick(crate::stick::fetch::StickFetch),
    /// `unique-id`: the transaction's id, made by `unique-id-format` on first use.
    UniqueId,
    /// `fc_rtt`/`fc_rttvar`: the kernel's round-trip time (or its variance) of the client
    /// connection, in microseconds when `us`, else milliseconds.
    Rtt {
        var: bool,
        us: bool,
    },
    /// `src_is_local`/`dst_is_local`: whether the address can be bound on this host.
    IsLocal {
        dst: bool,
    },
    /// Known to the registry, not evaluated at this layer: always absent.
    Unsupported,
}

/// The TLS fetches without arguments.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TlsFetch {
    /// `ssl_fc`: true on TLS, false on a plain connection.
    Fc,
    Sni,
    HasSni,
    Protocol,
    Cipher,
    Alpn,
    Resumed,
    /// `ssl_c_used`, `ssl_fc_has_crt`.
    HasCert,
    /// `ssl_c_verify`, `ssl_c_err`: the verification error `ca-ignore-err`/`crt-ignore-err` let
    /// through, else 0.
    VerifyError,
    /// `ssl_c_ca_err`, `ssl_fc_err`: 0 on TLS (rustls does not tell an error's depth in the
    /// chain, and any library error fails the handshake).
    NoError,
    /// `fc_err`: 0 on every connection that reached the rules.
    ConnNoError,
    Sha1,
    /// `ssl_c_serial`: the client certificate's serial number, binary.
    Serial,
    /// `ssl_fc_use_keysize`: the symmetric key size of the cipher, in bits.
    KeySize,
}

/// Where `req.payload_lv`'s block starts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BlockOffset {
    /// Right after the length field.
    AfterLength,
    /// At this absolute offset.
    Absolute(usize),
    /// This many bytes after the end of the length field (`+n` or `-n`).
    Relative(i64),
}

fn arg(call: &Call, i: usize) -> Option<&str> {
    call.args.get(i).map(String::as_str).filter(|a| !a.is_empty())
}

fn int_arg(call: &Call, i: usize) -> Result<Option<i64>, String> {
    arg(call, i).map(|a| a.parse::<i64>().map_err(|_| format!("{}: argument {} '{a}' is not an integer", call.name, i + 1))).transpose()
}

fn offset_arg(call: &Call, i: usize) -> Result<usize, String> {
    let n = int_arg(call, i)?.unwrap_or(0);
    usize::try_from(n).map_err(|_| format!("{}: argument {} must not be negative", call.name, i + 1))
}

impl Fetch {
    pub fn compile(call: &Call) -> Result<Fetch, String> {
        let name = call.name.as_str();
        if let Some(h) = HttpFetch::compile(name, &call.args)? {
            return Ok(Fetch::Http(h));
        }
        Ok(match name {
            "hostname" => Fetch::Hostname,
            "date" => Fetch::Date { offset: int_arg(call, 0)?.unwrap_or(0), unit: TimeUnit::parse(arg(call, 1))? },
            "rand" => match int_arg(call, 0)? {
                None => Fetch::Rand(1 << 32),
                Some(n) if n > 0 => Fetch::Rand(n as u64),
                Some(n) => return Err(format!("rand: the range must be positive, not {n}")),
            },
            "uuid" => Fetch::Uuid(if arg(call, 0) == Some("7") { 7 } else { 4 }),
            "stopping" => Fetch::Stopping,
            "always_true" => Fetch::Bool(true),
            "always_false" => Fetch::Bool(false),
            "int" => Fetch::Int(int_arg(call, 0)?.unwrap_or(0)),
            "bool" => Fetch::Bool(int_arg(call, 0)?.unwrap_or(0) != 0),
            "str" => Fetch::Str(call.args.first().map(|s| s.as_bytes().into()).unwrap_or_default()),
            "ipv4" | "ipv6" => {
                let a = arg(call, 0).unwrap_or_default();
                let ip: IpAddr = a.parse().map_err(|_| format!("{name}: '{a}' is not a valid address"))?;
                if ip.is_ipv4() != (name == "ipv4") {
                    return Err(format!("{name}: '{a}' is not an {} address", if name == "ipv4" { "IPv4" } else { "IPv6" }));
                }
                Fetch::Ip(ip)
            }
            "env" => Fetch::Env(call.args.first().cloned().unwrap_or_default()),
            "src" => Fetch::Src,
            "dst" => Fetch::Dst,
            "src_port" => Fetch::SrcPort,
            "dst_port" => Fetch::DstPort,
            "fe_name" => Fetch::FeName,
            "fe_id" => Fetch::FeId,
            "be_name" => Fetch::BeName,
            "be_id" => Fetch::BeId,
            "nbsrv" => Fetch::NbSrv(arg(call, 0).map(str::to_owned)),
            "be_conn" => Fetch::BeConn(arg(call, 0).map(str::to_owned)),
            "connslots" => Fetch::ConnSlots(arg(call, 0).map(str::to_owned)),
            "queue" => Fetch::Queue(arg(call, 0).map(str::to_owned)),
            "avg_queue" => Fetch::AvgQueue(arg(call, 0).map(str::to_owned)),
            "srv_conn" | "srv_is_up" => {
                let a = arg(call, 0).ok_or_else(|| format!("{name}: missing server name"))?;
                let (backend, server) = match a.split_once('/') {
                    Some((b, s)) => (Some(b.to_owned()), s.to_owned()),
                    None => (None, a.to_owned()),
                };
                Fetch::Server { backend, server, what: if name == "srv_conn" { SrvFetch::Conns } else { SrvFetch::IsUp } }
            }
            "req.len" | "req_len" => Fetch::ReqLen,
            "req.payload" => Fetch::Payload { offset: offset_arg(call, 0)?, length: offset_arg(call, 1)? },
            "req.payload_lv" => {
                let len_offset = offset_arg(call, 0)?;
                let len_size = offset_arg(call, 1)?;
                if !(1..=4).contains(&len_size) {
                    return Err(format!("{name}: the length field must be 1 to 4 bytes, not {len_size}"));
                }
                let block = match (arg(call, 2), int_arg(call, 2)?) {
                    (Some(a), Some(n)) if a.starts_with(['+', '-']) => BlockOffset::Relative(n),
                    (_, Some(n)) => BlockOffset::Absolute(usize::try_from(n).map_err(|_| format!("{name}: negative offset"))?),
                    _ => BlockOffset::AfterLength,
                };
                Fetch::PayloadLv { len_offset, len_size, block }
            }
            "req.ssl_sni" | "req_ssl_sni" => Fetch::SslSni,
            "req.rdp_cookie" | "rdp_cookie" | "req.rdp_cookie_cnt" | "rdp_cookie_cnt" => {
                Fetch::RdpCookie { name: arg(call, 0).filter(|n| !n.is_empty()).map(str::to_owned), count: name.ends_with("_cnt") }
            }
            "req.ssl_hello_type" | "req_ssl_hello_type" => Fetch::SslHelloType,
            "req.ssl_ver" | "req_ssl_ver" => Fetch::SslVer,
            "req.proto_http" | "req_proto_http" => Fetch::ProtoHttp,
            "wait_end" => Fetch::WaitEnd,
            "unique-id" => Fetch::UniqueId,
            "fc_rtt" | "fc_rttvar" => Fetch::Rtt { var: name == "fc_rttvar", us: arg(call, 0) == Some("us") },
            "src_is_local" => Fetch::IsLocal { dst: false },
            "dst_is_local" => Fetch::IsLocal { dst: true },
            // A `check.` variable belongs to health checks: never set on a stream.
            "var" => match parse_var_name(call.args.first().map(String::as_str).unwrap_or_default()) {
                Ok(var) => Fetch::Var { var, default: call.args.get(1).map(|d| d.as_bytes().into()) },
                Err(_) => Fetch::Unsupported,
            },
            "capture.req.hdr" | "capture.res.hdr" => {
                let dir = if name == "capture.req.hdr" { CaptureDir::Request } else { CaptureDir::Response };
                Fetch::Capture(dir, usize::try_from(int_arg(call, 0)?.unwrap_or(0)).map_err(|_| format!("{name}: negative index"))?)
            }
            "fc_err" => Fetch::Tls(TlsFetch::ConnNoError),
            "ssl_fc" => Fetch::Tls(TlsFetch::Fc),
            "ssl_fc_sni" => Fetch::Tls(TlsFetch::Sni),
            "ssl_fc_has_sni" => Fetch::Tls(TlsFetch::HasSni),
            "ssl_fc_protocol" => Fetch::Tls(TlsFetch::Protocol),
            "ssl_fc_cipher" => Fetch::Tls(TlsFetch::Cipher),
            "ssl_fc_alpn" => Fetch::Tls(TlsFetch::Alpn),
            "ssl_fc_is_resumed" => Fetch::Tls(TlsFetch::Resumed),
            "ssl_fc_has_crt" | "ssl_c_used" => Fetch::Tls(TlsFetch::HasCert),
            "ssl_c_verify" | "ssl_c_err" => Fetch::Tls(TlsFetch::VerifyError),
            "ssl_c_ca_err" | "ssl_fc_err" => Fetch::Tls(TlsFetch::NoError),
            "ssl_c_sha1" => Fetch::Tls(TlsFetch::Sha1),
            "ssl_c_serial" => Fetch::Tls(TlsFetch::Serial),
            "ssl_fc_use_keysize" => Fetch::Tls(TlsFetch::KeySize),
            "ssl_c_s_dn" | "ssl_c_i_dn" => {
                let occ = int_arg(call, 1)?.unwrap_or(1);
                if occ == 0 {
                    return Err(format!("{name}: the occurrence must not be 0"));
                }
                Fetch::ClientDn { issuer: name == "ssl_c_i_dn", entry: arg(call, 0).map(str::to_owned), occ, rfc2253: arg(call, 2) == Some("rfc2253") }
            }
            _ if super::sample::registry().fetch(name).is_some() => match crate::stick::fetch::StickFetch::compile(name, &call.args)? {
                Some(f) => Fetch::Stick(f),
                None => Fetch::Unsupported,
            },
            _ => return Err(format!("unknown fetch method '{name}'")),
        })
    }

    #[inline]
    pub fn eval<'a>(&'a self, ctx: &'a dyn StreamCtx) -> Fetched<'a> {
        // The stick counters' fetches are the usual per-request checks (rate limits): read
        // without the detour through the general match.
        if let Fetch::Stick(f) = self {
            return opt(f.eval(ctx));
        }
        self.eval_any(ctx)
    }

    fn eval_any<'a>(&'a self, ctx: &'a dyn StreamCtx) -> Fetched<'a> {
        match self {
            Fetch::Hostname => Fetched::value(SampleRef::Str(Cow::Borrowed(crate::log::host_name().as_bytes()))),
            Fetch::Date { offset, unit } => Fetched::value(SampleRef::Int(unit.date(std::time::SystemTime::now(), *offset))),
            Fetch::Rand(range) => {
                // The high 32 bits of a draw, scaled to the range (HAProxy's statistical PRNG does
                // the same), so every value below it is about as likely.
                let r = ((crate::balance::random::next_random() >> 32) * range) >> 32;
                Fetched::value(SampleRef::Int(r as i64))
            }
            Fetch::Uuid(v) => Fetched::value(SampleRef::Str(Cow::Owned(uuid(*v, std::time::SystemTime::now()).into_bytes()))),
            Fetch::Stopping => Fetched::value(SampleRef::Bool(crate::runtime::process::stopping())),
            Fetch::Bool(b) => Fetched::value(SampleRef::Bool(*b)),
            Fetch::Int(n) => Fetched::value(SampleRef::Int(*n)),
            Fetch::Ip(a) => Fetched::value(SampleRef::Ip(*a)),
            Fetch::Str(s) => Fetched::value(SampleRef::Str(Cow::Borrowed(s))),
            Fetch::Env(name) => match std::env::var_os(name) {
                Some(v) => Fetched::value(SampleRef::Str(Cow::Owned(v.into_encoded_bytes()))),
                None => Fetched::absent(),
            },
            Fetch::Src => opt(ctx.src().map(|a| SampleRef::Ip(a.ip()))),
            Fetch::Dst => opt(ctx.dst().map(|a| SampleRef::Ip(a.ip()))),
            Fetch::SrcPort => opt(ctx.src().map(|a| SampleRef::Int(a.port().into()))),
            Fetch::DstPort => opt(ctx.dst().map(|a| SampleRef::Int(a.port().into()))),
            Fetch::FeName => Fetched::value(SampleRef::Str(Cow::Borrowed(ctx.frontend_name().as_bytes()))),
            Fetch::FeId => Fetched::value(SampleRef::Int(ctx.frontend_id().into())),
            Fetch::BeName => opt(ctx.current_backend().map(|b| SampleRef::Str(Cow::Borrowed(b.name.as_bytes())))),
            Fetch::BeId => opt(ctx.current_backend_id().map(|id| SampleRef::Int(id.into()))),
            Fetch::NbSrv(be) => opt(backend(ctx, be).map(|b| SampleRef::Int(i64::try_from(b.usable_count()).unwrap_or(i64::MAX)))),
            Fetch::BeConn(be) => opt(backend(ctx, be).map(|b| SampleRef::Int(be_conn(b)))),
            Fetch::ConnSlots(be) => opt(backend(ctx, be).map(|b| SampleRef::Int(connslots(b)))),
            Fetch::Queue(be) => opt(backend(ctx, be).map(|b| SampleRef::Int(queued(b)))),
            Fetch::AvgQueue(be) => opt(backend(ctx, be).map(|b| {
                let q = queued(b);
                SampleRef::Int(match i64::try_from(b.usable_count()).unwrap_or(i64::MAX) {
                    0 => q.saturating_mul(2),
                    n => (q + n - 1) / n,
                })
            })),
            Fetch::Server { backend: be, server, what } => {
                let Some(s) = backend(ctx, be).and_then(|b| b.servers.iter().find(|s| s.name == *server)) else { return Fetched::absent() };
                Fetched::value(match what {
                    SrvFetch::Conns => SampleRef::Int(i64::from(s.cur_conns.load(Ordering::Relaxed))),
                    // Up, and not in maintenance (draining servers count as up).
                    SrvFetch::IsUp => SampleRef::Bool(s.is_up() && s.admin() != AdminState::Maint),
                })
            }
            Fetch::ReqLen => {
                let n = i64::try_from(ctx.req_buffer().len()).unwrap_or(i64::MAX);
                Fetched { value: Some(SampleRef::Int(n)), may_change: !ctx.req_final() }
            }
            Fetch::Payload { offset, length } => payload(ctx, *offset, *length),
            Fetch::PayloadLv { len_offset, len_size, block } => payload_lv(ctx, *len_offset, *len_size, *block),
            Fetch::SslSni => ssl_sni(ctx),
            Fetch::SslHelloType => ssl_hello_type(ctx),
            Fetch::RdpCookie { name, count } => match (rdp_cookie(ctx.req_buffer(), name.as_deref()), *count) {
                (Rdp::TooShort, _) => Fetched::too_short(ctx),
                (Rdp::Found(v), false) => Fetched::value(SampleRef::Str(Cow::Borrowed(v.as_bytes()))),
                (Rdp::NotCookie, false) => Fetched::absent(),
                (found, true) => Fetched::value(SampleRef::Int(i64::from(matches!(found, Rdp::Found(_))))),
            },
            Fetch::SslVer => ssl_ver(ctx),
            Fetch::ProtoHttp => proto_http(ctx),
            Fetch::WaitEnd => {
                if ctx.req_final() {
                    Fetched::value(SampleRef::Bool(true))
                } else {
                    Fetched::too_short(ctx)
                }
            }
            Fetch::Http(h) => opt(h.eval(ctx)),
            Fetch::Var { var, default } => match ctx.vars().and_then(|v| v.get(var)) {
                Some(v) => Fetched::value(v.into_ref()),
                None => opt(default.as_ref().map(|d| SampleRef::Str(Cow::Borrowed(d)))),
            },
            Fetch::Capture(dir, idx) => opt(ctx.captures().and_then(|c| c.borrow().get(*dir, *idx).map(|b| SampleRef::Str(Cow::Owned(b.to_vec()))))),
            Fetch::Tls(f) => opt(tls_fetch(ctx, *f)),
            Fetch::ClientDn { issuer, entry, occ, rfc2253 } => opt(client_dn(ctx, *issuer, entry.as_deref(), *occ, *rfc2253)),
            Fetch::Stick(f) => opt(f.eval(ctx)),
            Fetch::UniqueId => opt(ctx.unique_id().map(|id| SampleRef::Str(Cow::Owned(id.into_bytes())))),
            Fetch::Rtt { var, us } => opt(ctx.client_fd().and_then(crate::runtime::sockopt::tcp_rtt).map(|(rtt, rttvar)| {
                let v = if *var { rttvar } else { rtt };
                SampleRef::Int(i64::from(if *us { v } else { v / 1000 }))
            })),
            Fetch::IsLocal { dst } => opt((if *dst { ctx.dst() } else { ctx.src() }).and_then(|a| is_local(a.ip())).map(SampleRef::Bool)),
            Fetch::Unsupported => Fetched::absent(),
        }
    }

    /// Whether the fetch may yield several values to [`each`](Self::each) (the others yield
    /// their sample).
    #[inline]
    pub fn has_values(&self) -> bool {
        matches!(self, Fetch::Http(_))
    }

    /// For ACLs: calls `f` on every value until it returns true, and says whether it did and
    /// whether the values may still change. Fetches with several values (headers, cookies, URL
    /// parameters) yield them all, as HAProxy iterates over them in ACLs; the others yield their
    /// sample.
    pub fn each<'a>(&'a self, ctx: &'a dyn StreamCtx, f: &mut dyn FnMut(SampleRef<'a>) -> bool) -> (bool, bool) {
        match self {
            Fetch::Http(h) => (h.each(ctx, f), false),
            _ => {
                let Fetched { value, may_change } = self.eval(ctx);
                (value.is_some_and(f), may_change)
            }
        }
    }
}

/// Whether `ip` is one of this host's addresses, HAProxy's way: a UDP socket can be bound to
/// it. `None` when the test itself fails (no socket).
fn is_local(ip: IpAddr) -> Option<bool> {
    match std::net::UdpSocket::bind((ip, 0)) {
        Ok(_) => Some(true),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Some(false),
        Err(_) => None,
    }
}

fn tls_fetch(ctx: &dyn StreamCtx, f: TlsFetch) -> Option<SampleRef<'_>> {
    let str_ref = |s: &'static str| (!s.is_empty()).then_some(SampleRef::Str(Cow::Borrowed(s.as_bytes())));
    match f {
        TlsFetch::Fc => return Some(SampleRef::Bool(ctx.tls().is_some())),
        TlsFetch::ConnNoError => return Some(SampleRef::Int(0)),
        _ => {}
    }
    let t = ctx.tls()?;
    match f {
        TlsFetch::Fc | TlsFetch::ConnNoError => None,
        TlsFetch::Sni => t.sni.as_deref().map(|s| SampleRef::Str(Cow::Borrowed(s.as_bytes()))),
        TlsFetch::HasSni => Some(SampleRef::Bool(t.sni.is_some())),
        TlsFetch::Protocol => str_ref(t.protocol),
        TlsFetch::Cipher => str_ref(t.cipher),
        TlsFetch::Alpn => t.alpn.as_deref().map(|a| SampleRef::Str(Cow::Borrowed(a))),
        TlsFetch::Resumed => Some(SampleRef::Bool(t.resumed)),
        TlsFetch::HasCert => Some(SampleRef::Bool(t.peer_cert.is_some())),
        TlsFetch::NoError => Some(SampleRef::Int(0)),
        TlsFetch::VerifyError => Some(SampleRef::Int(t.verify_error)),
        TlsFetch::Serial => t.peer_cert.as_deref().and_then(crate::tls::der::serial).map(|s| SampleRef::Bin(Cow::Owned(s))),
        TlsFetch::KeySize => match t.cipher {
            "" => None,
            c if c.contains("AES128") || c.contains("AES_128") => Some(SampleRef::Int(128)),
            _ => Some(SampleRef::Int(256)),
        },
        TlsFetch::Sha1 => t.peer_cert.as_deref().map(|c| {
            use sha1::Digest;
            SampleRef::Bin(Cow::Owned(sha1::Sha1::digest(c).to_vec()))
        }),
    }
}

/// HAProxy's `ssl_c_s_dn`/`ssl_c_i_dn`: the whole name in OpenSSL's one-line form (or RFC 2253),
/// or the value of the `occ`th `entry` (negative: from the end).
fn client_dn<'a>(ctx: &'a dyn StreamCtx, issuer: bool, entry: Option<&str>, occ: i64, rfc2253: bool) -> Option<SampleRef<'a>> {
    let cert = ctx.tls()?.peer_cert.as_deref()?;
    let entries = crate::tls::der::dn_entries(cert, issuer)?;
    let value = match entry {
        None => crate::tls::der::format_dn(&entries, rfc2253),
        Some(e) => {
            let mut found = entries.iter().filter(|(k, _)| k.eq_ignore_ascii_case(e)).map(|(_, v)| v);
            let v = if occ > 0 { found.nth(usize::try_from(occ - 1).ok()?) } else { found.rev().nth(usize::try_from(-occ - 1).ok()?) };
            v?.clone()
        }
    };
    Some(SampleRef::Str(Cow::Owned(value.into_bytes())))
}

fn opt(v: Option<SampleRef<'_>>) -> Fetched<'_> {
    Fetched { value: v, may_change: false }
}

fn backend<'a>(ctx: &'a dyn StreamCtx, name: &Option<String>) -> Option<&'a BackendState> {
    match name {
        Some(n) => ctx.backend(n),
        None => ctx.current_backend(),
    }
}

/// Connections established on the backend's servers now.
fn be_conn(b: &BackendState) -> i64 {
    b.servers.iter().map(|s| i64::from(s.cur_conns.load(Ordering::Relaxed))).sum()
}

/// Streams waiting now in the backend queue and in its servers' queues (HAProxy's `totpend`).
fn queued(b: &BackendState) -> i64 {
    let servers: i64 = b.servers.iter().map(|s| i64::from(s.queued.load(Ordering::Relaxed))).sum();
    servers + i64::from(b.queued.load(Ordering::Relaxed))
}

/// HAProxy's `connslots`: over the servers that are not down, the free connection slots plus the
/// free queue places; -1 when any such server has no `maxconn` or no `maxqueue` (unlimited: the
/// count means nothing then).
fn connslots(b: &BackendState) -> i64 {
    let mut total: i64 = 0;
    for s in b.servers.iter().filter(|s| s.is_up() && s.admin() != AdminState::Maint) {
        let maxconn = s.maxconn.load(Ordering::Relaxed);
        if maxconn == 0 || s.maxqueue == 0 {
            return -1;
        }
        let free_conns = i64::from(maxconn) - i64::from(s.cur_conns.load(Ordering::Relaxed));
        let free_queue = i64::from(s.maxqueue) - i64::from(s.queued.load(Ordering::Relaxed));
        total = total.saturating_add(free_conns).saturating_add(free_queue);
    }
    total
}

/// A slice of the request buffer; `length` 0 is everything from `offset`, which may still grow.
fn payload(ctx: &dyn StreamCtx, offset: usize, length: usize) -> Fetched<'_> {
    let buf = ctx.req_buffer();
    let limit = ctx.req_buffer_limit();
    if length == 0 {
        return match buf.get(offset..) {
            Some(rest) => Fetched { value: Some(SampleRef::Bin(Cow::Borrowed(rest))), may_change: !ctx.req_final() && buf.len() < limit },
            None if offset < limit => Fetched::too_short(ctx),
            None => Fetched::absent(),
        };
    }
    let Some(end) = offset.checked_add(length).filter(|&e| e <= limit) else { return Fetched::absent() };
    match buf.get(offset..end) {
        Some(s) => Fetched::value(SampleRef::Bin(Cow::Borrowed(s))),
        None => Fetched::too_short(ctx),
    }
}

/// A block whose big-endian length is stored at `len_offset` on `len_size` bytes.
fn payload_lv(ctx: &dyn StreamCtx, len_offset: usize, len_size: usize, block: BlockOffset) -> Fetched<'_> {
    let buf = ctx.req_buffer();
    let limit = ctx.req_buffer_limit();
    let Some(len_end) = len_offset.checked_add(len_size).filter(|&e| e <= limit) else { return Fetched::absent() };
    let Some(field) = buf.get(len_offset..len_end) else { return Fetched::too_short(ctx) };
    let size = field.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
    let start = match block {
        BlockOffset::AfterLength => Some(len_end),
        BlockOffset::Absolute(o) => Some(o),
        BlockOffset::Relative(d) => isize::try_from(d).ok().and_then(|d| len_end.checked_add_signed(d)),
    };
    // An empty block, or one that cannot fit in the buffer, never matches.
    let Some((start, end)) = start.and_then(|s| Some((s, s.checked_add(size)?))).filter(|&(_, e)| size > 0 && e <= limit) else {
        return Fetched::absent();
    };
    match buf.get(start..end) {
        Some(s) => Fetched::value(SampleRef::Bin(Cow::Borrowed(s))),
        None => Fetched::too_short(ctx),
    }
}

/// The SNI of the ClientHello, as sent (ACLs use `-i` to ignore case, as with HAProxy).
fn ssl_sni(ctx: &dyn StreamCtx) -> Fetched<'_> {
    match clienthello::parse_client_hello(ctx.req_buffer()) {
        Ok(Some(h)) => opt(h.server_name.map(|n| SampleRef::Str(Cow::Borrowed(n)))),
        Ok(None) => Fetched::too_short(ctx),
        Err(_) => Fetched::absent(),
    }
}

/// What the request buffer holds for `req.rdp_cookie`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rdp<'a> {
    Found(&'a str),
    NotCookie,
    /// The buffer ends before the cookie's line does: more may come.
    TooShort,
}

/// The cookie of an RDP connection request (an X.224 Connection Request in a TPKT:
/// `03 00 <len> <li> e0 <dst> <src> <class>` and then `Cookie: <name>=<value>\r\n`), as HAProxy
/// reads it: the 11 bytes of the headers are skipped unchecked, `Cookie:` and the name are
/// compared without case, and without a name the first cookie is taken.
pub(crate) fn rdp_cookie<'b>(buf: &'b [u8], name: Option<&str>) -> Rdp<'b> {
    let Some(data) = buf.get(11..) else { return Rdp::TooShort };
    if data.len() <= 7 {
        return Rdp::TooShort;
    }
    if !data[..7].eq_ignore_ascii_case(b"Cookie:") {
        return Rdp::NotCookie;
    }
    let data = &data[7..];
    let data = &data[data.iter().position(|&b| b != b' ').unwrap_or(data.len())..];
    let value = match name {
        Some(n) => {
            if data.len() <= n.len() {
                return Rdp::TooShort;
            }
            if data[n.len()] != b'=' || !data[..n.len()].eq_ignore_ascii_case(n.as_bytes()) {
                return Rdp::NotCookie;
            }
            &data[n.len() + 1..]
        }
        None => match data.iter().position(|&b| matches!(b, b'=' | b'\r' | b'\n')) {
            Some(i) if data[i] == b'=' => &data[i + 1..],
            Some(_) => return Rdp::NotCookie,
            None => return Rdp::TooShort,
        },
    };
    let Some(end) = value.iter().position(|&b| b == b'\r') else { return Rdp::TooShort };
    match value.get(end + 1) {
        None => Rdp::TooShort,
        Some(b'\n') => std::str::from_utf8(&value[..end]).map_or(Rdp::NotCookie, Rdp::Found),
        Some(_) => Rdp::NotCookie,
    }
}

/// HAProxy's `req.ssl_hello_type`: the handshake message type of the first record (1 for a
/// ClientHello), once the record header, the handshake header and the message are in.
fn ssl_hello_type(ctx: &dyn StreamCtx) -> Fetched<'_> {
    let buf = ctx.req_buffer();
    let Some(&first) = buf.first() else { return Fetched::too_short(ctx) };
    if !is_ssl3_record_type(first) {
        return Fetched::absent();
    }
    let Some(h) = buf.get(..9) else { return Fetched::too_short(ctx) };
    if h[1] < 3 || u16::from_be_bytes([h[3], h[4]]) < 4 {
        return Fetched::absent();
    }
    let hs_len = (usize::from(h[6]) << 16) | (usize::from(h[7]) << 8) | usize::from(h[8]);
    if buf.len() < 9 + hs_len {
        return if 9 + hs_len <= ctx.req_buffer_limit() { Fetched::too_short(ctx) } else { Fetched::absent() };
    }
    Fetched::value(SampleRef::Int(h[5].into()))
}

/// HAProxy's `req.ssl_ver`: the ClientHello's version as `major << 16 | minor` (TLS 1.2 is 3.3,
/// 196611), once the first record is complete. SSLv2 hellos are not recognised.
fn ssl_ver(ctx: &dyn StreamCtx) -> Fetched<'_> {
    let buf = ctx.req_buffer();
    let Some(&first) = buf.first() else { return Fetched::too_short(ctx) };
    if !is_ssl3_record_type(first) {
        return Fetched::absent();
    }
    let Some(h) = buf.get(..11) else { return Fetched::too_short(ctx) };
    let record_len = usize::from(u16::from_be_bytes([h[3], h[4]]));
    if h[1] < 3 || !(6..=(1 << 14) + 2048).contains(&record_len) {
        return Fetched::absent();
    }
    // Waiting for more than the buffer holds would never end: HAProxy settles for a full buffer.
    let need = (5 + record_len).min(ctx.req_buffer_limit());
    if buf.len() < need {
        return Fetched::too_short(ctx);
    }
    Fetched::value(SampleRef::Int((i64::from(h[9]) << 16) | i64::from(h[10])))
}

/// Record types of SSLv3 and later (change_cipher_spec to application_data), and 0xff, which
/// HAProxy accepts too.
fn is_ssl3_record_type(b: u8) -> bool {
    (0x14..=0x17).contains(&b) || b == 0xff
}

/// True once the buffer starts with an HTTP/1 request line (`METHOD target HTTP/x.y` and a line
/// end); false as soon as a byte cannot belong to one. Headers are not checked.
fn proto_http(ctx: &dyn StreamCtx) -> Fetched<'_> {
    if ctx.http_request().is_some() {
        return Fetched::value(SampleRef::Bool(true));
    }
    match http_request_line(ctx.req_buffer()) {
        Some(true) => Fetched::value(SampleRef::Bool(true)),
        Some(false) => Fetched::value(SampleRef::Bool(false)),
        None if ctx.req_buffer().len() >= ctx.req_buffer_limit() => Fetched::value(SampleRef::Bool(false)),
        None => Fetched::too_short(ctx),
    }
}

/// `Some(true)`: a complete request line; `Some(false)`: not one; `None`: a valid prefix.
pub(crate) fn http_request_line(buf: &[u8]) -> Option<bool> {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let mut i = 0;
    // Method: one or more token characters, then a space.
    loop {
        match buf.get(i) {
            None => return None,
            Some(b' ') if i > 0 => break,
            Some(&b) if is_tchar(b) => i += 1,
            Some(_) => return Some(false),
        }
    }
    i += 1;
    // Target: visible characters (or bytes above ASCII), then a space.
    let target = i;
    loop {
        match buf.get(i) {
            None => return None,
            Some(b' ') if i > target => break,
            Some(&b) if b.is_ascii_graphic() || b >= 0x80 => i += 1,
            Some(_) => return Some(false),
        }
    }
    i += 1;
    // Version: HTTP/d.d then CRLF or LF.
    const VERSION: &[u8] = b"HTTP/0.0";
    for (k, &want) in VERSION.iter().enumerate() {
        let &b = buf.get(i + k)?;
        let ok = if want == b'0' { b.is_ascii_digit() } else { b == want };
        if !ok {
            return Some(false);
        }
    }
    i += VERSION.len();
    match (buf.get(i), buf.get(i + 1)) {
        (None, _) | (Some(b'\r'), None) => None,
        (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n')) => Some(true),
        _ => Some(false),
    }
}

/// The unit of `date` and `http_date`: seconds, milliseconds or microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeUnit {
    S,
    Ms,
    Us,
}

impl TimeUnit {
    pub(crate) fn parse(a: Option<&str>) -> Result<TimeUnit, String> {
        match a {
            None | Some("s") => Ok(TimeUnit::S),
            Some("ms") => Ok(TimeUnit::Ms),
            Some("us") => Ok(TimeUnit::Us),
            Some(u) => Err(format!("unknown unit '{u}' (expected s, ms or us)")),
        }
    }

    pub(crate) fn since_epoch(self, t: std::time::SystemTime) -> i64 {
        self.date(t, 0)
    }

    /// `date`'s value: `offset` is in seconds whatever the unit, as in HAProxy.
    pub(crate) fn date(self, t: std::time::SystemTime, offset: i64) -> i64 {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let secs = (d.as_secs() as i64).saturating_add(offset);
        match self {
            TimeUnit::S => secs,
            TimeUnit::Ms => secs.saturating_mul(1_000).saturating_add(i64::from(d.subsec_millis())),
            TimeUnit::Us => secs.saturating_mul(1_000_000).saturating_add(i64::from(d.subsec_micros())),
        }
    }

    /// `n` of this unit as whole seconds and the microseconds left.
    pub(crate) fn split(self, n: i64) -> (i64, u32) {
        let per = match self {
            TimeUnit::S => 1,
            TimeUnit::Ms => 1_000,
            TimeUnit::Us => 1_000_000,
        };
        (n.div_euclid(per), (n.rem_euclid(per) * (1_000_000 / per)) as u32)
    }
}

/// A random UUID (RFC 9562) in its text form: version 4, or version 7 (the milliseconds since the
/// epoch first, so that they sort by time). From the worker's fast generator, as HAProxy's come
/// from its statistical one: unique, not secret.
fn uuid(version: u8, now: std::time::SystemTime) -> String {
    let (a, b) = (crate::balance::random::next_random(), crate::balance::random::next_random());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    if version == 7 {
        let ms = TimeUnit::Ms.since_epoch(now) as u64;
        bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    }
    bytes[6] = (bytes[6] & 0x0f) | (version << 4);
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn uuids_carry_their_version_and_variant_and_version_7_starts_with_the_milliseconds() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(0x0123_4567_89ab);
        for v in [4u8, 7] {
            let u = uuid(v, now);
            assert_eq!(u.len(), 36, "{u}");
            assert_eq!(u.matches('-').count(), 4, "{u}");
            assert_eq!(&u[14..15], &v.to_string(), "{u}");
            assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        }
        assert!(uuid(7, now).starts_with("01234567-89ab-7"), "{}", uuid(7, now));
        assert_ne!(uuid(4, now), uuid(4, now));
    }

    #[test]
    fn time_units_convert_and_split_whole_seconds_from_the_rest() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(TimeUnit::S.since_epoch(t), 1_700_000_000);
        assert_eq!(TimeUnit::Ms.since_epoch(t), 1_700_000_000_123);
        assert_eq!(TimeUnit::Us.since_epoch(t), 1_700_000_000_123_456);
        assert_eq!(TimeUnit::Ms.date(t, 10), 1_700_000_010_123, "the offset is in seconds");
        assert_eq!(TimeUnit::Ms.split(1_500), (1, 500_000));
        assert_eq!(TimeUnit::Us.split(-1), (-1, 999_999));
        assert!(TimeUnit::parse(Some("h")).is_err());
    }
}
