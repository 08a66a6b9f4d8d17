//! The sample fetches and converters sluiced knows: name, arguments, output type and documentation.
//! The expression parser (`config::expr`) checks every fetch and converter against this registry, and
//! the configuration reference prints it. The stick-table families (`sc_*`, `sc0_*`, `src_*`,
//! `table_*`) are generated from one list of stored data types, so a new data type is one line.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::config::registry::{Doc, DocTable, Status};

/// What a fetch or converter produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleType {
    Bool,
    Int,
    Ip,
    Str,
    Bin,
    /// An HTTP method: matched as a string.
    Meth,
    /// Whatever was stored (`var()`); matched as a string in ACLs.
    Any,
}

/// What an argument must be. Checked when the expression is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// Any text, the empty string included.
    Str,
    /// A signed integer.
    Int,
    /// The name of a stick table (a proxy or a `table` in a `peers` section).
    Table,
    /// A variable name: `<scope>.<name>` with scope `proc`, `sess`, `txn`, `req` or `res`.
    Var,
    /// An integer or a variable name (arithmetic converters).
    IntOrVar,
    /// The name of a `userlist` section.
    Userlist,
    /// A regular expression; must compile.
    Regex,
    /// A file path (map files).
    File,
    /// A backend name.
    Backend,
    /// A server name, optionally `<backend>/<server>`.
    Server,
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
}

/// One fetch or converter.
#[derive(Clone, Copy, Debug)]
pub struct SampleDef {
    pub name: &'static str,
    /// Every argument it accepts, in order; `min_args` of them are mandatory.
    pub args: &'static [ArgKind],
    pub min_args: usize,
    pub out: SampleType,
    pub doc: Doc,
}

impl SampleDef {
    pub fn max_args(&self) -> usize {
        self.args.len()
    }
}

/// Both tables, indexed by name.
pub struct SampleRegistry {
    pub fetches: Vec<SampleDef>,
    pub converters: Vec<SampleDef>,
    fetch_by_name: HashMap<&'static str, usize>,
    conv_by_name: HashMap<&'static str, usize>,
}

impl SampleRegistry {
    fn build() -> SampleRegistry {
        let fetches = fetches();
        let converters = converters();
        let fetch_by_name = fetches.iter().enumerate().map(|(i, d)| (d.name, i)).collect();
        let conv_by_name = converters.iter().enumerate().map(|(i, d)| (d.name, i)).collect();
        SampleRegistry { fetches, converters, fetch_by_name, conv_by_name }
    }

    pub fn fetch(&self, name: &str) -> Option<&SampleDef> {
        self.fetch_by_name.get(name).map(|&i| &self.fetches[i])
    }

    pub fn converter(&self, name: &str) -> Option<&SampleDef> {
        self.conv_by_name.get(name).map(|&i| &self.converters[i])
    }
}

static REGISTRY: OnceLock<SampleRegistry> = OnceLock::new();

/// The registry, built on first use.
pub fn registry() -> &'static SampleRegistry {
    REGISTRY.get_or_init(SampleRegistry::build)
}

/// Checks the argument count and each argument's form. `what` is "fetch method" or "converter".
pub fn check_args(def: &SampleDef, what: &str, args: &[String]) -> Result<(), String> {
    let name = def.name;
    if args.len() < def.min_args {
        return Err(format!("{what} '{name}' expects at least {} argument(s), got {} (syntax: {})", def.min_args, args.len(), def.doc.syntax));
    }
    if args.len() > def.max_args() {
        let s = if def.max_args() == 0 { "no argument".to_string() } else { format!("at most {} argument(s)", def.max_args()) };
        return Err(format!("{what} '{name}' takes {s}, got {} (syntax: {})", args.len(), def.doc.syntax));
    }
    for (i, (arg, kind)) in args.iter().zip(def.args).enumerate() {
        // An empty optional argument stands for "not given": `req.hdr(host,)`, `concat(,txn.x,)`.
        if arg.is_empty() && (i >= def.min_args || *kind == ArgKind::Str) {
            continue;
        }
        check_arg(arg, *kind).map_err(|e| format!("{what} '{name}', argument {}: {e}", i + 1))?;
    }
    Ok(())
}

fn check_arg(arg: &str, kind: ArgKind) -> Result<(), String> {
    match kind {
        ArgKind::Str => Ok(()),
        ArgKind::Int => parse_int(arg).map(|_| ()),
        ArgKind::IntOrVar => {
            if parse_int(arg).is_ok() {
                Ok(())
            } else {
                check_var_name(arg).map_err(|_| format!("'{arg}' is neither an integer nor a variable name"))
            }
        }
        ArgKind::Var => check_var_name(arg),
        ArgKind::Regex => regex::Regex::new(arg).map(|_| ()).map_err(|e| format!("invalid regex '{arg}': {}", first_line(&e.to_string()))),
        ArgKind::Table | ArgKind::Userlist | ArgKind::File | ArgKind::Backend | ArgKind::Server => {
            if arg.is_empty() {
                Err("missing name".into())
            } else {
                Ok(())
            }
        }
        ArgKind::OneOf(words) => {
            if words.contains(&arg) {
                Ok(())
            } else {
                Err(format!("'{arg}' is not one of {}", words.join(", ")))
            }
        }
    }
}

/// The last line of a regex error, which says what is wrong; the others draw the pattern.
pub fn first_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).map_or(s, str::trim)
}

/// A signed integer argument.
pub fn parse_int(s: &str) -> Result<i64, String> {
    s.parse::<i64>().map_err(|_| format!("'{s}' is not an integer"))
}

/// `<scope>.<name>`: the scopes HAProxy variables live in.
pub fn check_var_name(s: &str) -> Result<(), String> {
    let Some((scope, name)) = s.split_once('.') else {
        return Err(format!("variable '{s}' has no scope (expected proc., sess., txn., req. or res.)"));
    };
    if !matches!(scope, "proc" | "sess" | "txn" | "req" | "res" | "check") {
        return Err(format!("unknown variable scope '{scope}' in '{s}' (expected proc, sess, txn, req, res or check)"));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        return Err(format!("invalid variable name '{s}'"));
    }
    Ok(())
}

/// The stick tables `args` names, given the argument kinds of their fetch or converter.
pub fn table_args<'a>(def: &SampleDef, args: &'a [String]) -> impl Iterator<Item = &'a str> {
    args.iter().zip(def.args.iter().copied()).filter(|(a, k)| *k == ArgKind::Table && !a.is_empty()).map(|(a, _)| a.as_str())
}

use ArgKind as A;
use SampleType as T;

const fn def(name: &'static str, args: &'static [ArgKind], min_args: usize, out: SampleType, doc: Doc) -> SampleDef {
    SampleDef { name, args, min_args, out, doc }
}

macro_rules! d {
    ($syntax:expr, $desc:expr, $example:expr) => {
        Doc { syntax: $syntax, desc: $desc, example: $example, status: Status::Parsed }
    };
}

const JSON_CODES: &[&str] = &["ascii", "utf8", "utf8s", "utf8p", "utf8ps"];
const SHA2_BITS: &[&str] = &["224", "256", "384", "512"];
const DATE_UNITS: &[&str] = &["s", "ms", "us"];

fn fetches() -> Vec<SampleDef> {
    let mut v = vec![
        // Internal states and layer 4.
        def("always_true", &[], 0, T::Bool, d!("always_true", "Always true.", "http-request deny if always_true")),
        def("always_false", &[], 0, T::Bool, d!("always_false", "Always false.", "use_backend be_x if always_false")),
        def("int", &[A::Int], 1, T::Int, d!("int(<integer>)", "The integer constant given.", "http-request set-var(txn.n) int(42)")),
        def("str", &[A::Str], 1, T::Str, d!("str(<string>)", "The string constant given.", "http-request set-var(txn.s) str(hello)")),
        def("bool", &[A::Int], 1, T::Bool, d!("bool(<integer>)", "The boolean constant given (0 is false).", "acl t bool(1)")),
        def("ipv4", &[A::Str], 1, T::Ip, d!("ipv4(<address>)", "The IPv4 address constant given.", "http-request set-var(txn.ip) ipv4(10.0.0.1)")),
        def("ipv6", &[A::Str], 1, T::Ip, d!("ipv6(<address>)", "The IPv6 address constant given.", "http-request set-var(txn.ip) ipv6(::1)")),
        def("rand", &[A::Int], 0, T::Int, d!("rand([<range>])", "A random integer, below <range> when given.", "acl sample rand(100) lt 5")),
        def("env", &[A::Str], 1, T::Str, d!("env(<name>)", "The value of an environment variable of the process.", "acl prod env(STAGE) -m str prod")),
        def(
            "date",
            &[A::Int, A::OneOf(DATE_UNITS)],
            0,
            T::Int,
            d!(
                "date([<offset>[,<unit>]])",
                "The current date as a UNIX timestamp in seconds, or in ms or us with <unit>, <offset> seconds later.",
                "http-response set-header Expires %[date(3600),http_date]"
            ),
        ),
        def("var", &[A::Var, A::Str], 1, T::Any, d!("var(<name>[,<default>])", "The content of a variable.", "acl blocked var(txn.blocked) -m bool")),
        def(
            "uuid",
            &[A::OneOf(&["4", "7"])],
            0,
            T::Str,
            d!("uuid([<version>])", "A freshly generated UUID, version 4 (random) or 7 (time-ordered).", "http-request set-header X-Request-Id %[uuid]"),
        ),
        def("hostname", &[], 0, T::Str, d!("hostname", "The host name of the machine.", "http-response set-header X-Node %[hostname]")),
        def("stopping", &[], 0, T::Bool, d!("stopping", "True while the process is stopping.", "http-response set-header Connection close if stopping")),
        def("src", &[], 0, T::Ip, d!("src", "The client's source address.", "acl internal src 10.0.0.0/8 192.168.0.0/16")),
        def("dst", &[], 0, T::Ip, d!("dst", "The local address the client connected to.", "acl on_vip dst 203.0.113.10")),
        def("src_port", &[], 0, T::Int, d!("src_port", "The client's source port.", "acl low_port src_port lt 1024")),
        def("dst_port", &[], 0, T::Int, d!("dst_port", "The local port the client connected to.", "use_backend be_alt if { dst_port 8080 }")),
        def("src_is_local", &[], 0, T::Bool, d!("src_is_local", "True when the source address is one of the host's addresses.", "acl local src_is_local")),
        def("dst_is_local", &[], 0, T::Bool, d!("dst_is_local", "True when the destination address is one of the host's addresses.", "acl local dst_is_local")),
        def("so_id", &[], 0, T::Int, d!("so_id", "The numeric id of the listening socket that accepted the connection.", "acl first_bind so_id 1")),
        def("fe_id", &[], 0, T::Int, d!("fe_id", "The numeric id of the frontend.", "acl fe1 fe_id 1")),
        def("fe_name", &[], 0, T::Str, d!("fe_name", "The name of the frontend.", "http-request set-header X-Frontend %[fe_name]")),
        def("be_id", &[], 0, T::Int, d!("be_id", "The numeric id of the backend.", "acl be1 be_id 1")),
        def("be_name", &[], 0, T::Str, d!("be_name", "The name of the backend.", "http-response set-header X-Backend %[be_name]")),
        def("nbsrv", &[A::Backend], 0, T::Int, d!("nbsrv([<backend>])", "The number of usable servers in the backend.", "acl dead nbsrv(be_app) lt 1")),
        def(
            "be_conn",
            &[A::Backend],
            0,
            T::Int,
            d!("be_conn([<backend>])", "The number of connections currently established on the backend.", "acl busy be_conn(be_app) gt 100"),
        ),
        def(
            "be_sess_rate",
            &[A::Backend],
            0,
            T::Int,
            d!("be_sess_rate([<backend>])", "The backend's session creation rate, per second.", "acl hot be_sess_rate(be_app) gt 50"),
        ),
        def(
            "connslots",
            &[A::Backend],
            0,
            T::Int,
            d!("connslots([<backend>])", "Free connection slots (maxconn and maxqueue) left in the backend.", "acl full connslots(be_app) lt 1"),
        ),
        def(
            "srv_conn",
            &[A::Server],
            1,
            T::Int,
            d!("srv_conn([<backend>/]<server>)", "The number of connections currently established on the server.", "acl busy srv_conn(be_app/s1) gt 50"),
        ),
        def("srv_is_up", &[A::Server], 1, T::Bool, d!("srv_is_up([<backend>/]<server>)", "True when the server is up.", "acl s1_up srv_is_up(be_app/s1)")),
        def(
            "queue",
            &[A::Backend],
            0,
            T::Int,
            d!("queue([<backend>])", "The number of streams queued in the backend and its servers.", "acl queued queue(be_app) gt 0"),
        ),
        def(
            "avg_queue",
            &[A::Backend],
            0,
            T::Int,
            d!("avg_queue([<backend>])", "Queued streams divided by usable servers in the backend.", "acl slow avg_queue(be_app) gt 10"),
        ),
        def("fc_err", &[], 0, T::Int, d!("fc_err", "The error code of the front connection, 0 when none.", "log-format %[fc_err]")),
        def("fc_err_str", &[], 0, T::Str, d!("fc_err_str", "The error message of the front connection.", "log-format %[fc_err_str]")),
        def(
            "fc_rtt",
            &[A::OneOf(&["ms", "us"])],
            0,
            T::Int,
            d!(
                "fc_rtt([<unit>])",
                "The front connection's smoothed round-trip time, as the kernel measures it (TCP_INFO), in ms (the default) or us.",
                "acl slow_client fc_rtt gt 200"
            ),
        ),
        def(
            "fc_rttvar",
            &[A::OneOf(&["ms", "us"])],
            0,
            T::Int,
            d!(
                "fc_rttvar([<unit>])",
                "The variance of the front connection's round-trip time (TCP_INFO), in ms (the default) or us.",
                "log-format \"%ci rtt=%[fc_rtt(us)]+-%[fc_rttvar(us)]\""
            ),
        ),
        // Layer 6: request buffer contents.
        def("req.len", &[], 0, T::Int, d!("req.len", "The number of bytes in the request buffer.", "tcp-request content accept if { req.len gt 0 }")),
        def("req_len", &[], 0, T::Int, d!("req_len", "Old name of req.len.", "acl has_data req_len gt 0")),
        def(
            "req.payload",
            &[A::Int, A::Int],
            2,
            T::Bin,
            d!("req.payload(<offset>,<length>)", "A slice of the request buffer.", "acl tls req.payload(0,1) -m bin 16"),
        ),
        def(
            "req.payload_lv",
            &[A::Int, A::Int, A::Int],
            2,
            T::Bin,
            d!("req.payload_lv(<offset1>,<length>[,<offset2>])", "A length-prefixed block of the request buffer.", "acl v req.payload_lv(11,1) -m bin 00"),
        ),
        def(
            "req.ssl_sni",
            &[],
            0,
            T::Str,
            d!("req.ssl_sni", "The SNI of a TLS ClientHello in the request buffer (TCP mode).", "use_backend be_a if { req.ssl_sni -i a.example.com }"),
        ),
        def("req_ssl_sni", &[], 0, T::Str, d!("req_ssl_sni", "Old name of req.ssl_sni.", "acl a req_ssl_sni -i a.example.com")),
        def(
            "req.ssl_hello_type",
            &[],
            0,
            T::Int,
            d!(
                "req.ssl_hello_type",
                "The TLS handshake type found in the request buffer (1 is a ClientHello).",
                "tcp-request content accept if { req.ssl_hello_type 1 }"
            ),
        ),
        def("req_ssl_hello_type", &[], 0, T::Int, d!("req_ssl_hello_type", "Old name of req.ssl_hello_type.", "acl hello req_ssl_hello_type 1")),
        def(
            "req.ssl_ver",
            &[],
            0,
            T::Int,
            d!("req.ssl_ver", "The TLS version announced in the request buffer, as major.minor.", "acl old_tls req.ssl_ver lt 3.3"),
        ),
        def("req_ssl_ver", &[], 0, T::Int, d!("req_ssl_ver", "Old name of req.ssl_ver.", "acl sslv3 req_ssl_ver 3")),
        def(
            "req.proto_http",
            &[],
            0,
            T::Bool,
            d!("req.proto_http", "True when the request buffer holds an HTTP request.", "tcp-request content accept if { req.proto_http }"),
        ),
        def(
            "req.rdp_cookie",
            &[A::Str],
            0,
            T::Str,
            d!(
                "req.rdp_cookie([<name>])",
                "The value of the cookie <name> (any name when omitted) of an RDP connection request at the start of the request buffer (Cookie: <name>=<value> after the TPKT and X.224 headers); waits for more data while the line is incomplete. balance rdp-cookie hashes it.",
                "acl has_rdp req.rdp_cookie(mstshash) -m found"
            ),
        ),
        def("rdp_cookie", &[A::Str], 0, T::Str, d!("rdp_cookie([<name>])", "Alias of req.rdp_cookie.", "stick on rdp_cookie(mstshash)")),
        def(
            "req.rdp_cookie_cnt",
            &[A::Str],
            0,
            T::Int,
            d!(
                "req.rdp_cookie_cnt([<name>])",
                "1 when the request buffer holds that RDP cookie (req.rdp_cookie), else 0; the RDP_COOKIE ACL tests it.",
                "acl has_rdp req.rdp_cookie_cnt gt 0"
            ),
        ),
        def("rdp_cookie_cnt", &[A::Str], 0, T::Int, d!("rdp_cookie_cnt([<name>])", "Alias of req.rdp_cookie_cnt.", "acl has_rdp rdp_cookie_cnt gt 0")),
        // Layer 7: HTTP request.
        def("method", &[], 0, T::Meth, d!("method", "The HTTP request method.", "acl get method GET HEAD")),
        def("path", &[], 0, T::Str, d!("path", "The request path, without the query string.", "acl api path_beg /api/")),
        def("pathq", &[], 0, T::Str, d!("pathq", "The request path with the query string.", "http-request set-var(txn.pq) pathq")),
        def("query", &[], 0, T::Str, d!("query", "The query string, without the question mark.", "acl has_q query -m found")),
        def("url", &[], 0, T::Str, d!("url", "The request URI as received.", "acl absolute url_beg http://")),
        def("req.uri", &[], 0, T::Str, d!("req.uri", "Alias of url: the request URI as received.", "http-request set-var(txn.u) req.uri")),
        def("url_ip", &[], 0, T::Ip, d!("url_ip", "The address in an absolute request URI.", "acl to_lan url_ip 10.0.0.0/8")),
        def("url_port", &[], 0, T::Int, d!("url_port", "The port in an absolute request URI.", "acl alt url_port 8080")),
        def("base", &[], 0, T::Str, d!("base", "The Host header followed by the path.", "acl static base_beg static.example.com/")),
        def("base32", &[], 0, T::Int, d!("base32", "A 32-bit hash of the Host header and the path.", "http-request set-var(txn.h) base32")),
        def(
            "url_param",
            &[A::Str, A::Str, A::OneOf(&["i"])],
            0,
            T::Str,
            d!("url_param([<name>[,<delim>[,i]]])", "The value of a query-string parameter.", "acl debug url_param(debug) -m found"),
        ),
        def("urlp", &[A::Str, A::Str, A::OneOf(&["i"])], 0, T::Str, d!("urlp([<name>[,<delim>[,i]]])", "Alias of url_param.", "acl user urlp(user) admin")),
        def(
            "urlp_val",
            &[A::Str, A::Str, A::OneOf(&["i"])],
            0,
            T::Int,
            d!("urlp_val([<name>[,<delim>[,i]]])", "A query-string parameter as an integer.", "acl big urlp_val(n) gt 100"),
        ),
        def(
            "req.hdr",
            &[A::Str, A::Int],
            0,
            T::Str,
            d!("req.hdr([<name>[,<occ>]])", "A request header value (one comma-delimited value per occurrence).", "use_backend be_%[req.hdr(host),lower]"),
        ),
        def(
            "hdr",
            &[A::Str, A::Int],
            0,
            T::Str,
            d!("hdr([<name>[,<occ>]])", "Request header in a request, response header in a response.", "acl host_a hdr(host) -i a.example.com"),
        ),
        def(
            "req.fhdr",
            &[A::Str, A::Int],
            1,
            T::Str,
            d!("req.fhdr(<name>[,<occ>])", "A full request header line value, commas included.", "http-request set-var(txn.ua) req.fhdr(user-agent)"),
        ),
        def(
            "req.hdr_cnt",
            &[A::Str],
            0,
            T::Int,
            d!("req.hdr_cnt([<name>])", "The number of occurrences of a request header.", "acl dup_host req.hdr_cnt(host) gt 1"),
        ),
        def("hdr_cnt", &[A::Str], 0, T::Int, d!("hdr_cnt([<name>])", "Alias of req.hdr_cnt.", "acl dup_host hdr_cnt(host) gt 1")),
        def(
            "req.fhdr_cnt",
            &[A::Str],
            0,
            T::Int,
            d!("req.fhdr_cnt([<name>])", "The number of full lines of a request header.", "acl dup req.fhdr_cnt(host) gt 1"),
        ),
        def(
            "req.hdr_ip",
            &[A::Str, A::Int],
            0,
            T::Ip,
            d!("req.hdr_ip([<name>[,<occ>]])", "A request header value parsed as an IP address.", "acl trusted req.hdr_ip(x-forwarded-for,-1) 10.0.0.0/8"),
        ),
        def("hdr_ip", &[A::Str, A::Int], 0, T::Ip, d!("hdr_ip([<name>[,<occ>]])", "Alias of req.hdr_ip.", "acl trusted hdr_ip(x-forwarded-for,-1) 10.0.0.0/8")),
        def(
            "req.hdr_val",
            &[A::Str, A::Int],
            0,
            T::Int,
            d!("req.hdr_val([<name>[,<occ>]])", "A request header value parsed as an integer.", "acl big req.hdr_val(content-length) gt 1000000"),
        ),
        def("hdr_val", &[A::Str, A::Int], 0, T::Int, d!("hdr_val([<name>[,<occ>]])", "Alias of req.hdr_val.", "acl big hdr_val(content-length) gt 1000000")),
        def("req.hdrs", &[], 0, T::Str, d!("req.hdrs", "The request header block as received.", "http-request set-var(txn.h) req.hdrs")),
        def(
            "req.hdr_names",
            &[A::Str],
            0,
            T::Str,
            d!("req.hdr_names([<delim>])", "The names of the request headers, comma-delimited.", "http-request set-var(txn.n) req.hdr_names"),
        ),
        def("req.cook", &[A::Str], 0, T::Str, d!("req.cook([<name>])", "The value of a request cookie.", "acl logged_in req.cook(session) -m found")),
        def("cook", &[A::Str], 0, T::Str, d!("cook([<name>])", "Alias of req.cook.", "acl beta cook(beta) 1")),
        def(
            "req.cook_cnt",
            &[A::Str],
            0,
            T::Int,
            d!("req.cook_cnt([<name>])", "The number of occurrences of a request cookie.", "acl dup req.cook_cnt(session) gt 1"),
        ),
        def("cook_cnt", &[A::Str], 0, T::Int, d!("cook_cnt([<name>])", "Alias of req.cook_cnt.", "acl dup cook_cnt(session) gt 1")),
        def(
            "req.cook_val",
            &[A::Str],
            0,
            T::Int,
            d!("req.cook_val([<name>])", "A request cookie value parsed as an integer.", "acl v2 req.cook_val(version) ge 2"),
        ),
        def("cook_val", &[A::Str], 0, T::Int, d!("cook_val([<name>])", "Alias of req.cook_val.", "acl v2 cook_val(version) ge 2")),
        def("req.body", &[], 0, T::Bin, d!("req.body", "The buffered request body.", "http-request set-var(txn.b) req.body")),
        def("req.body_len", &[], 0, T::Int, d!("req.body_len", "The length of the buffered request body.", "acl big req.body_len gt 1024")),
        def("req.body_size", &[], 0, T::Int, d!("req.body_size", "The announced size of the request body.", "acl big req.body_size gt 1048576")),
        def(
            "req.body_param",
            &[A::Str, A::OneOf(&["i"])],
            0,
            T::Str,
            d!("req.body_param([<name>[,i]])", "A parameter of a url-encoded request body.", "acl admin req.body_param(user) admin"),
        ),
        def("req.ver", &[], 0, T::Str, d!("req.ver", "The HTTP version of the request (\"1.1\").", "acl h10 req.ver 1.0")),
        def("req_ver", &[], 0, T::Str, d!("req_ver", "Old name of req.ver.", "acl h10 req_ver 1.0")),
        def("http_first_req", &[], 0, T::Bool, d!("http_first_req", "True for the first request of a connection.", "acl first http_first_req")),
        def(
            "http_auth",
            &[A::Userlist],
            1,
            T::Bool,
            d!("http_auth(<userlist>)", "True when the request's credentials match a user of the userlist.", "http-request auth unless { http_auth(admins) }"),
        ),
        def(
            "http_auth_group",
            &[A::Userlist],
            1,
            T::Str,
            d!("http_auth_group(<userlist>)", "The group of the authenticated user, matched against group names.", "acl ops http_auth_group(users) ops"),
        ),
        def(
            "http_auth_user",
            &[],
            0,
            T::Str,
            d!("http_auth_user", "The user name from the Authorization header.", "http-request set-header X-User %[http_auth_user]"),
        ),
        def(
            "http_auth_type",
            &[],
            0,
            T::Str,
            d!("http_auth_type", "The scheme of the Authorization header (basic, bearer...).", "acl bearer http_auth_type bearer"),
        ),
        def("unique-id", &[], 0, T::Str, d!("unique-id", "The stream's unique id (see unique-id-format).", "http-request set-header X-Unique-ID %[unique-id]")),
        def(
            "capture.req.hdr",
            &[A::Int],
            1,
            T::Str,
            d!("capture.req.hdr(<idx>)", "The request header captured in slot <idx>.", "log-format %[capture.req.hdr(0)]"),
        ),
        def(
            "capture.res.hdr",
            &[A::Int],
            1,
            T::Str,
            d!("capture.res.hdr(<idx>)", "The response header captured in slot <idx>.", "log-format %[capture.res.hdr(0)]"),
        ),
        def("capture.req.method", &[], 0, T::Str, d!("capture.req.method", "The method of the request, kept for logging.", "log-format %[capture.req.method]")),
        def("capture.req.uri", &[], 0, T::Str, d!("capture.req.uri", "The URI of the request, kept for logging.", "log-format %[capture.req.uri]")),
        // Layer 7: HTTP response.
        def("status", &[], 0, T::Int, d!("status", "The HTTP status code of the response.", "acl server_error status ge 500")),
        def("res.ver", &[], 0, T::Str, d!("res.ver", "The HTTP version of the response.", "acl h10 res.ver 1.0")),
        def("resp_ver", &[], 0, T::Str, d!("resp_ver", "Old name of res.ver.", "acl h10 resp_ver 1.0")),
        def("res.hdr", &[A::Str, A::Int], 0, T::Str, d!("res.hdr([<name>[,<occ>]])", "A response header value.", "acl cached res.hdr(x-cache) -i hit")),
        def("shdr", &[A::Str, A::Int], 0, T::Str, d!("shdr([<name>[,<occ>]])", "Alias of res.hdr.", "acl cached shdr(x-cache) -i hit")),
        def(
            "res.hdr_cnt",
            &[A::Str],
            0,
            T::Int,
            d!("res.hdr_cnt([<name>])", "The number of occurrences of a response header.", "acl many res.hdr_cnt(set-cookie) gt 5"),
        ),
        def(
            "res.hdr_ip",
            &[A::Str, A::Int],
            0,
            T::Ip,
            d!("res.hdr_ip([<name>[,<occ>]])", "A response header value parsed as an IP address.", "acl lan res.hdr_ip(x-server) 10.0.0.0/8"),
        ),
        def(
            "res.hdr_val",
            &[A::Str, A::Int],
            0,
            T::Int,
            d!("res.hdr_val([<name>[,<occ>]])", "A response header value parsed as an integer.", "acl big res.hdr_val(content-length) gt 1000000"),
        ),
        def(
            "res.fhdr",
            &[A::Str, A::Int],
            1,
            T::Str,
            d!("res.fhdr(<name>[,<occ>])", "A full response header line value, commas included.", "http-response set-var(txn.d) res.fhdr(date)"),
        ),
        def(
            "res.cook",
            &[A::Str],
            0,
            T::Str,
            d!("res.cook([<name>])", "The value of a cookie set by the response.", "acl sets_session res.cook(session) -m found"),
        ),
        def("scook", &[A::Str], 0, T::Str, d!("scook([<name>])", "Alias of res.cook.", "acl sets_session scook(session) -m found")),
        def("res.len", &[], 0, T::Int, d!("res.len", "The number of bytes in the response buffer.", "acl has_data res.len gt 0")),
        // TLS, front connection.
        def("ssl_fc", &[], 0, T::Bool, d!("ssl_fc", "True when the front connection uses TLS.", "http-request redirect scheme https unless { ssl_fc }")),
        def(
            "ssl_fc_sni",
            &[],
            0,
            T::Str,
            d!("ssl_fc_sni", "The SNI the client sent on the front connection.", "use_backend be_a if { ssl_fc_sni -i a.example.com }"),
        ),
        def("ssl_fc_has_sni", &[], 0, T::Bool, d!("ssl_fc_has_sni", "True when the client sent an SNI.", "acl sni ssl_fc_has_sni")),
        def(
            "ssl_fc_protocol",
            &[],
            0,
            T::Str,
            d!("ssl_fc_protocol", "The TLS version of the front connection (\"TLSv1.3\").", "acl old_tls ssl_fc_protocol TLSv1 TLSv1.1"),
        ),
        def("ssl_fc_cipher", &[], 0, T::Str, d!("ssl_fc_cipher", "The cipher suite of the front connection.", "log-format %[ssl_fc_cipher]")),
        def("ssl_fc_alpn", &[], 0, T::Str, d!("ssl_fc_alpn", "The ALPN protocol negotiated on the front connection.", "acl h2 ssl_fc_alpn h2")),
        def("ssl_fc_is_resumed", &[], 0, T::Bool, d!("ssl_fc_is_resumed", "True when the TLS session was resumed.", "acl resumed ssl_fc_is_resumed")),
        def("ssl_fc_err", &[], 0, T::Int, d!("ssl_fc_err", "The TLS library error code of the front connection.", "log-format %[ssl_fc_err,hex]")),
        def(
            "ssl_fc_use_keysize",
            &[],
            0,
            T::Int,
            d!("ssl_fc_use_keysize", "The symmetric key size used on the front connection, in bits.", "acl weak ssl_fc_use_keysize lt 128"),
        ),
        def("ssl_fc_has_crt", &[], 0, T::Bool, d!("ssl_fc_has_crt", "True when the client presented a certificate.", "acl has_cert ssl_fc_has_crt")),
        def("ssl_c_used", &[], 0, T::Bool, d!("ssl_c_used", "True when a client certificate was used on the connection.", "acl mtls ssl_c_used")),
        def(
            "ssl_c_verify",
            &[],
            0,
            T::Int,
            d!("ssl_c_verify", "The client certificate verification result (0 is success).", "http-request deny unless { ssl_c_verify 0 }"),
        ),
        def("ssl_c_err", &[], 0, T::Int, d!("ssl_c_err", "The first verification error on the client certificate.", "log-format %[ssl_c_err]")),
        def(
            "ssl_c_ca_err",
            &[],
            0,
            T::Int,
            d!("ssl_c_ca_err", "The first verification error on the client certificate's chain.", "log-format %[ssl_c_ca_err]"),
        ),
        def(
            "ssl_c_s_dn",
            &[A::Str, A::Int, A::OneOf(&["rfc2253"])],
            0,
            T::Str,
            d!("ssl_c_s_dn([<entry>[,<occ>[,<format>]]])", "The subject DN of the client certificate, or one entry of it.", "acl ops ssl_c_s_dn(OU) ops"),
        ),
        def(
            "ssl_c_i_dn",
            &[A::Str, A::Int, A::OneOf(&["rfc2253"])],
            0,
            T::Str,
            d!(
                "ssl_c_i_dn([<entry>[,<occ>[,<format>]]])",
                "The issuer DN of the client certificate, or one entry of it.",
                "acl our_ca ssl_c_i_dn(CN) \"Example CA\""
            ),
        ),
        def(
            "ssl_c_sha1",
            &[],
            0,
            T::Bin,
            d!("ssl_c_sha1", "The SHA-1 fingerprint of the client certificate.", "http-request set-header X-Cert-Sha1 %[ssl_c_sha1,hex]"),
        ),
        def(
            "ssl_c_serial",
            &[],
            0,
            T::Bin,
            d!("ssl_c_serial", "The serial number of the client certificate.", "http-request set-header X-Cert-Serial %[ssl_c_serial,hex]"),
        ),
        // Stick tables as a whole.
        def("table_cnt", &[A::Table], 0, T::Int, d!("table_cnt([<table>])", "The number of entries in the table.", "acl crowded table_cnt(st_src) gt 10000")),
        def("table_avl", &[A::Table], 0, T::Int, d!("table_avl([<table>])", "The number of free entries in the table.", "acl full table_avl(st_src) lt 1")),
        def(
            "src_updt_conn_cnt",
            &[A::Table],
            0,
            T::Int,
            d!(
                "src_updt_conn_cnt([<table>])",
                "Increments the source's connection count in the table and returns it.",
                "acl abuse src_updt_conn_cnt(st_src) gt 100"
            ),
        ),
    ];
    v.extend(stick_fetches());
    v
}

/// A stored stick-table data type, with what its fetch returns.
struct DataType {
    name: &'static str,
    what: &'static str,
    out: SampleType,
    /// Which families have it.
    families: u8,
}

const SC: u8 = 1;
const SRC: u8 = 2;
const TABLE: u8 = 4;
const ALL: u8 = SC | SRC | TABLE;
const FETCH: u8 = SC | SRC;

const DATA_TYPES: &[DataType] = &[
    DataType { name: "conn_cnt", what: "the cumulative number of connections", out: T::Int, families: ALL },
    DataType { name: "conn_cur", what: "the number of concurrent connections", out: T::Int, families: ALL },
    DataType { name: "conn_rate", what: "the connection rate over the table's period", out: T::Int, families: ALL },
    DataType { name: "sess_cnt", what: "the cumulative number of sessions", out: T::Int, families: ALL },
    DataType { name: "sess_rate", what: "the session rate over the table's period", out: T::Int, families: ALL },
    DataType { name: "http_req_cnt", what: "the cumulative number of HTTP requests", out: T::Int, families: ALL },
    DataType { name: "http_req_rate", what: "the HTTP request rate over the table's period", out: T::Int, families: ALL },
    DataType { name: "http_err_cnt", what: "the cumulative number of HTTP request errors", out: T::Int, families: ALL },
    DataType { name: "http_err_rate", what: "the HTTP request error rate over the table's period", out: T::Int, families: ALL },
    DataType { name: "http_fail_cnt", what: "the cumulative number of HTTP response failures", out: T::Int, families: ALL },
    DataType { name: "http_fail_rate", what: "the HTTP response failure rate over the table's period", out: T::Int, families: ALL },
    DataType { name: "bytes_in_cnt", what: "the cumulative number of bytes received from the client", out: T::Int, families: ALL },
    DataType { name: "bytes_in_rate", what: "the rate of bytes received from the client", out: T::Int, families: ALL },
    DataType { name: "bytes_out_cnt", what: "the cumulative number of bytes sent to the client", out: T::Int, families: ALL },
    DataType { name: "bytes_out_rate", what: "the rate of bytes sent to the client", out: T::Int, families: ALL },
    DataType { name: "kbytes_in", what: "the cumulative number of kilobytes received from the client", out: T::Int, families: ALL },
    DataType { name: "kbytes_out", what: "the cumulative number of kilobytes sent to the client", out: T::Int, families: ALL },
    DataType { name: "glitch_cnt", what: "the cumulative number of protocol glitches on front connections", out: T::Int, families: ALL },
    DataType { name: "glitch_rate", what: "the rate of protocol glitches on front connections", out: T::Int, families: ALL },
    DataType { name: "gpc0", what: "the value of general purpose counter 0", out: T::Int, families: TABLE },
    DataType { name: "gpc1", what: "the value of general purpose counter 1", out: T::Int, families: TABLE },
    DataType { name: "gpt0", what: "the value of general purpose tag 0", out: T::Int, families: TABLE },
    DataType { name: "gpc0_rate", what: "the increment rate of general purpose counter 0", out: T::Int, families: ALL },
    DataType { name: "gpc1_rate", what: "the increment rate of general purpose counter 1", out: T::Int, families: ALL },
    DataType { name: "get_gpc0", what: "the value of general purpose counter 0", out: T::Int, families: FETCH },
    DataType { name: "get_gpc1", what: "the value of general purpose counter 1", out: T::Int, families: FETCH },
    DataType { name: "get_gpt0", what: "the value of general purpose tag 0", out: T::Int, families: FETCH },
    DataType { name: "inc_gpc0", what: "general purpose counter 0 after incrementing it", out: T::Int, families: FETCH },
    DataType { name: "inc_gpc1", what: "general purpose counter 1 after incrementing it", out: T::Int, families: FETCH },
    DataType { name: "clr_gpc0", what: "general purpose counter 0 before clearing it", out: T::Int, families: FETCH },
    DataType { name: "clr_gpc1", what: "general purpose counter 1 before clearing it", out: T::Int, families: FETCH },
    DataType { name: "tracked", what: "whether the counter is currently tracked", out: T::Bool, families: SC },
    DataType { name: "trackers", what: "the number of streams tracking the entry", out: T::Int, families: SC | TABLE },
    DataType { name: "tokens", what: "the tokens left in the entry's token_bucket (sluiced extension)", out: T::Int, families: ALL },
];

/// The indexed general purpose counters and tags (`sc_get_gpc(<idx>,<ctr>)`, `src_get_gpc(<idx>)`).
const INDEXED: &[(&str, &str)] = &[
    ("get_gpc", "the value of general purpose counter <idx>"),
    ("gpc_rate", "the increment rate of general purpose counter <idx>"),
    ("inc_gpc", "general purpose counter <idx> after incrementing it"),
    ("clr_gpc", "general purpose counter <idx> before clearing it"),
    ("get_gpt", "the value of general purpose tag <idx>"),
];

/// Generated names and documentation live for the whole process: the registry is built once.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn stick_def(name: String, args: &'static [ArgKind], min_args: usize, out: SampleType, syntax: String, desc: String, example: String) -> SampleDef {
    let name = leak(name);
    SampleDef { name, args, min_args, out, doc: Doc { syntax: leak(syntax), desc: leak(desc), example: leak(example), status: Status::Parsed } }
}

fn example_for(out: SampleType, expr: &str) -> String {
    if out == T::Bool { format!("acl t {expr}") } else { format!("acl abuse {expr} gt 100") }
}

fn stick_fetches() -> Vec<SampleDef> {
    let mut v = Vec::new();
    for dt in DATA_TYPES.iter().filter(|d| d.families & SC != 0) {
        let n = dt.name;
        let what = capitalize(dt.what);
        v.push(stick_def(
            format!("sc_{n}"),
            &[A::Int, A::Table],
            1,
            dt.out,
            format!("sc_{n}(<ctr>[,<table>])"),
            format!("{what}, for the entry tracked by stick counter <ctr>."),
            example_for(dt.out, &format!("sc_{n}(0)")),
        ));
        for ctr in 0..3 {
            v.push(stick_def(
                format!("sc{ctr}_{n}"),
                &[A::Table],
                0,
                dt.out,
                format!("sc{ctr}_{n}([<table>])"),
                format!("{what}, for the entry tracked by stick counter {ctr}."),
                example_for(dt.out, &format!("sc{ctr}_{n}")),
            ));
        }
    }
    for dt in DATA_TYPES.iter().filter(|d| d.families & SRC != 0) {
        let n = dt.name;
        v.push(stick_def(
            format!("src_{n}"),
            &[A::Table],
            0,
            dt.out,
            format!("src_{n}([<table>])"),
            format!("{}, for the client's source address in the table.", capitalize(dt.what)),
            example_for(dt.out, &format!("src_{n}(st_src)")),
        ));
    }
    for (n, what) in INDEXED {
        let what = capitalize(what);
        v.push(stick_def(
            format!("sc_{n}"),
            &[A::Int, A::Int, A::Table],
            2,
            T::Int,
            format!("sc_{n}(<idx>,<ctr>[,<table>])"),
            format!("{what}, for the entry tracked by stick counter <ctr>."),
            example_for(T::Int, &format!("sc_{n}(0,0)")),
        ));
        v.push(stick_def(
            format!("src_{n}"),
            &[A::Int, A::Table],
            1,
            T::Int,
            format!("src_{n}(<idx>[,<table>])"),
            format!("{what}, for the client's source address in the table."),
            example_for(T::Int, &format!("src_{n}(0,st_src)")),
        ));
    }
    v
}

fn stick_converters() -> Vec<SampleDef> {
    let mut v = Vec::new();
    for dt in DATA_TYPES.iter().filter(|d| d.families & TABLE != 0) {
        let n = dt.name;
        v.push(stick_def(
            format!("table_{n}"),
            &[A::Table],
            1,
            dt.out,
            format!("table_{n}(<table>)"),
            format!("{}, for the entry of <table> whose key is the input sample.", capitalize(dt.what)),
            example_for(dt.out, &format!("src,table_{n}(st_src)")),
        ));
    }
    for (n, what) in [
        ("gpc", "the value of general purpose counter <idx>"),
        ("gpc_rate", "the increment rate of general purpose counter <idx>"),
        ("gpt", "the value of general purpose tag <idx>"),
    ] {
        v.push(stick_def(
            format!("table_{n}"),
            &[A::Int, A::Table],
            2,
            T::Int,
            format!("table_{n}(<idx>,<table>)"),
            format!("{}, for the entry of <table> whose key is the input sample.", capitalize(what)),
            example_for(T::Int, &format!("src,table_{n}(0,st_src)")),
        ));
    }
    v
}

/// The map converters: `map_<match>[_<output>](<file>[,<default>])`.
fn map_converters() -> Vec<SampleDef> {
    const MATCHES: &[(&str, &str)] = &[
        ("str", "equals"),
        ("beg", "begins with"),
        ("sub", "contains"),
        ("dir", "contains as a slash-delimited part"),
        ("dom", "contains as a dot-delimited part"),
        ("end", "ends with"),
        ("reg", "matches as a regex"),
        ("int", "equals as an integer"),
        ("ip", "is in the network of"),
    ];
    const OUTS: &[(&str, SampleType)] = &[("str", T::Str), ("int", T::Int), ("ip", T::Ip)];
    let mut v = vec![def(
        "map",
        &[A::File, A::Str],
        1,
        T::Str,
        d!(
            "map(<file>[,<default>])",
            "The value of the map entry whose key equals the input, else <default>.",
            "use_backend %[req.hdr(host),lower,map(/etc/sluiced/hosts.map,be_default)]"
        ),
    )];
    for (m, how) in MATCHES {
        for (i, (o, out)) in OUTS.iter().enumerate() {
            // `map_str` is `map_str_str`; both spellings exist.
            let names: Vec<String> = if i == 0 { vec![format!("map_{m}"), format!("map_{m}_{o}")] } else { vec![format!("map_{m}_{o}")] };
            for name in names {
                v.push(stick_def(
                    name.clone(),
                    &[A::File, A::Str],
                    1,
                    *out,
                    format!("{name}(<file>[,<default>])"),
                    format!("The {o} value of the first map entry whose key the input {how}, else <default>."),
                    format!("http-request set-var(txn.v) req.hdr(host),{name}(/etc/sluiced/x.map)"),
                ));
            }
        }
    }
    v
}

fn converters() -> Vec<SampleDef> {
    let mut v = vec![
        def("lower", &[], 0, T::Str, d!("lower", "The input string in lower case.", "use_backend be_%[req.hdr(host),lower]")),
        def("upper", &[], 0, T::Str, d!("upper", "The input string in upper case.", "http-request set-header X-M %[method,upper]")),
        def(
            "ipmask",
            &[A::Str, A::Str],
            1,
            T::Ip,
            d!("ipmask(<mask4>[,<mask6>])", "The input address with the network mask applied.", "http-request track-sc0 src,ipmask(24)"),
        ),
        def(
            "regsub",
            &[A::Regex, A::Str, A::Str],
            2,
            T::Str,
            d!("regsub(<regex>,<subst>[,<flags>])", "The input with regex matches replaced (flags: i, g).", "http-request set-path %[path,regsub(^/api/,/,g)]"),
        ),
        def(
            "field",
            &[A::Int, A::Str, A::Int],
            2,
            T::Str,
            d!("field(<index>,<delims>[,<count>])", "The <index>th field of the input split on any of <delims>.", "acl v1 path,field(2,/) v1"),
        ),
        def(
            "word",
            &[A::Int, A::Str, A::Int],
            2,
            T::Str,
            d!("word(<index>,<delims>[,<count>])", "The <index>th word of the input; runs of delimiters count once.", "acl v1 path,word(1,/) v1"),
        ),
        def(
            "concat",
            &[A::Str, A::Var, A::Str],
            0,
            T::Str,
            d!(
                "concat([<start>][,<var>][,<end>])",
                "The input with <start>, a variable's content and <end> appended.",
                "http-request set-var(txn.k) src,concat(:,txn.host,)"
            ),
        ),
        def(
            "json",
            &[A::OneOf(JSON_CODES)],
            0,
            T::Str,
            d!("json([<input-code>])", "The input escaped for a JSON string.", "log-format {\"ua\":\"%[capture.req.hdr(0),json(utf8s)]\"}"),
        ),
        def("base64", &[], 0, T::Str, d!("base64", "The input encoded in base64.", "http-request set-header X-B %[src,base64]")),
        def("b64dec", &[], 0, T::Bin, d!("b64dec", "The input decoded from base64.", "http-request set-var(txn.tok) req.hdr(x-token),b64dec")),
        def("hex", &[], 0, T::Str, d!("hex", "The input bytes as upper-case hexadecimal.", "log-format %[ssl_fc_err,hex]")),
        def("hex2i", &[], 0, T::Int, d!("hex2i", "The input hexadecimal string as an integer.", "acl odd req.hdr(x-id),hex2i,and(1) 1")),
        def("sha1", &[], 0, T::Bin, d!("sha1", "The SHA-1 digest of the input.", "http-request set-header X-H %[src,sha1,hex]")),
        def(
            "sha2",
            &[A::OneOf(SHA2_BITS)],
            0,
            T::Bin,
            d!("sha2([<bits>])", "The SHA-2 digest of the input (default 256 bits).", "http-request set-header X-H %[src,sha2(256),hex]"),
        ),
        def("crc32", &[A::Int], 0, T::Int, d!("crc32([<avalanche>])", "The CRC32 of the input.", "acl bucket src,crc32,mod(10) 0")),
        def("djb2", &[A::Int], 0, T::Int, d!("djb2([<avalanche>])", "The DJB2 hash of the input.", "acl bucket src,djb2,mod(10) 0")),
        def("sdbm", &[A::Int], 0, T::Int, d!("sdbm([<avalanche>])", "The SDBM hash of the input.", "acl bucket src,sdbm,mod(10) 0")),
        def("wt6", &[A::Int], 0, T::Int, d!("wt6([<avalanche>])", "The WT6 hash of the input.", "acl bucket src,wt6,mod(10) 0")),
        def("xxh3", &[A::Int], 0, T::Int, d!("xxh3([<seed>])", "The 64-bit XXH3 hash of the input.", "acl bucket src,xxh3,mod(10) 0")),
        def("xxh32", &[A::Int], 0, T::Int, d!("xxh32([<seed>])", "The 32-bit xxHash of the input.", "acl bucket src,xxh32,mod(10) 0")),
        def("xxh64", &[A::Int], 0, T::Int, d!("xxh64([<seed>])", "The 64-bit xxHash of the input.", "acl bucket src,xxh64,mod(10) 0")),
        def("length", &[], 0, T::Int, d!("length", "The length of the input string.", "acl long_ua req.hdr(user-agent),length gt 512")),
        def(
            "bytes",
            &[A::IntOrVar, A::IntOrVar],
            1,
            T::Bin,
            d!("bytes(<offset>[,<length>])", "A slice of the input bytes.", "acl v1 req.payload(0,8),bytes(0,1) -m bin 16"),
        ),
        def("add", &[A::IntOrVar], 1, T::Int, d!("add(<value>)", "The input integer plus <value>.", "http-request set-var(txn.n) var(txn.n),add(1)")),
        def("sub", &[A::IntOrVar], 1, T::Int, d!("sub(<value>)", "The input integer minus <value>.", "http-request set-var(txn.n) var(txn.n),sub(1)")),
        def("mul", &[A::IntOrVar], 1, T::Int, d!("mul(<value>)", "The input integer times <value>.", "http-request set-var(txn.n) var(txn.n),mul(2)")),
        def("div", &[A::IntOrVar], 1, T::Int, d!("div(<value>)", "The input integer divided by <value>.", "http-request set-var(txn.n) var(txn.n),div(2)")),
        def("mod", &[A::IntOrVar], 1, T::Int, d!("mod(<value>)", "The input integer modulo <value>.", "acl bucket src,crc32,mod(10) 0")),
        def("neg", &[], 0, T::Int, d!("neg", "The input integer negated.", "http-request set-var(txn.n) var(txn.n),neg")),
        def("and", &[A::IntOrVar], 1, T::Int, d!("and(<value>)", "The bitwise AND of the input integer and <value>.", "acl odd src_port,and(1) 1")),
        def(
            "or",
            &[A::IntOrVar],
            1,
            T::Int,
            d!("or(<value>)", "The bitwise OR of the input integer and <value>.", "http-request set-var(txn.f) var(txn.f),or(4)"),
        ),
        def(
            "xor",
            &[A::IntOrVar],
            1,
            T::Int,
            d!("xor(<value>)", "The bitwise XOR of the input integer and <value>.", "http-request set-var(txn.f) var(txn.f),xor(4)"),
        ),
        def("cpl", &[], 0, T::Int, d!("cpl", "The bitwise complement of the input integer.", "http-request set-var(txn.n) var(txn.n),cpl")),
        def("not", &[], 0, T::Bool, d!("not", "True when the input integer is zero.", "acl no_conn be_conn(be_app),not")),
        def("bool", &[], 0, T::Bool, d!("bool", "True when the input integer is not zero.", "acl has_conn be_conn(be_app),bool")),
        def("even", &[], 0, T::Bool, d!("even", "True when the input integer is even.", "acl even_port src_port,even")),
        def("odd", &[], 0, T::Bool, d!("odd", "True when the input integer is odd.", "acl odd_port src_port,odd")),
        def("url_dec", &[A::Int], 0, T::Str, d!("url_dec([<in_form>])", "The input with URL %-escapes decoded.", "acl admin url_param(u),url_dec admin")),
        def(
            "url_enc",
            &[A::OneOf(&["query"])],
            0,
            T::Str,
            d!("url_enc([<enc_type>])", "The input URL-encoded.", "http-request redirect location /login?next=%[pathq,url_enc]"),
        ),
        def("ltrim", &[A::Str], 1, T::Str, d!("ltrim(<chars>)", "The input with leading <chars> removed.", "acl v req.hdr(x-v),ltrim(\" \") 1")),
        def("rtrim", &[A::Str], 1, T::Str, d!("rtrim(<chars>)", "The input with trailing <chars> removed.", "acl v req.hdr(x-v),rtrim(\" \") 1")),
        def(
            "strcmp",
            &[A::Var],
            1,
            T::Int,
            d!("strcmp(<var>)", "The comparison of the input with a variable (0 when equal).", "acl same req.hdr(x-a),strcmp(txn.a) eq 0"),
        ),
        def(
            "secure_memcmp",
            &[A::Var],
            1,
            T::Bool,
            d!("secure_memcmp(<var>)", "True when the input equals a variable, in constant time.", "acl ok req.hdr(x-token),secure_memcmp(txn.token)"),
        ),
        def("in_table", &[A::Table], 1, T::Bool, d!("in_table(<table>)", "True when the input is a key of the table.", "acl known src,in_table(st_src)")),
        def(
            "table_expire",
            &[A::Table, A::Int],
            1,
            T::Int,
            d!(
                "table_expire(<table>[,<default>])",
                "Milliseconds until the input's entry in the table expires; <default> (else no sample) when the key is not in the table or the table has no expire.",
                "acl soon src,table_expire(st_src) lt 1000"
            ),
        ),
        def(
            "table_idle",
            &[A::Table, A::Int],
            1,
            T::Int,
            d!(
                "table_idle(<table>[,<default>])",
                "Milliseconds since the input's entry in the table was last updated; <default> (else no sample) when the key is not in the table.",
                "acl idle src,table_idle(st_src) gt 60000"
            ),
        ),
        def(
            "set-var",
            &[A::Var, A::Str, A::Str, A::Str, A::Str],
            1,
            T::Any,
            d!(
                "set-var(<var>[,<cond>...])",
                "The input unchanged, stored in a variable on the way (absent when a condition such as ifnotexists prevents it).",
                "http-request set-header X-H %[req.hdr(host),set-var(txn.host)]"
            ),
        ),
        def(
            "unset-var",
            &[A::Var],
            1,
            T::Any,
            d!("unset-var(<var>)", "The input unchanged; the variable is removed.", "http-request set-var(txn.x) str(a),unset-var(txn.y)"),
        ),
        def(
            "debug",
            &[A::Str, A::Str],
            0,
            T::Any,
            d!(
                "debug([<prefix>][,<destination>])",
                "The input unchanged; a copy goes to the debug ring.",
                "http-request set-var(txn.h) req.hdr(host),debug(host)"
            ),
        ),
        def("host_only", &[], 0, T::Str, d!("host_only", "The host part of an authority, without the port.", "acl a req.hdr(host),host_only a.example.com")),
        def("port_only", &[], 0, T::Int, d!("port_only", "The port of an authority (0 when absent).", "acl alt req.hdr(host),port_only 8080")),
        def(
            "ltime",
            &[A::Str, A::Int],
            1,
            T::Str,
            d!("ltime(<format>[,<offset>])", "The input UNIX timestamp formatted in local time.", "log-format %[date,ltime(%Y-%m-%d)]"),
        ),
        def(
            "utime",
            &[A::Str, A::Int],
            1,
            T::Str,
            d!("utime(<format>[,<offset>])", "The input UNIX timestamp formatted in UTC.", "log-format %[date,utime(%Y-%m-%d)]"),
        ),
        def(
            "http_date",
            &[A::Int, A::OneOf(DATE_UNITS)],
            0,
            T::Str,
            d!(
                "http_date([<offset>[,<unit>]])",
                "The input UNIX timestamp (in <unit>) as an HTTP date (IMF-fixdate), <offset> seconds later.",
                "http-response set-header Expires %[date(3600),http_date]"
            ),
        ),
        def(
            "json_query",
            &[A::Str, A::OneOf(&["int"])],
            1,
            T::Str,
            d!(
                "json_query(<path>[,int])",
                "The value at a JSON path ($, .name and [N] steps) in the input: a string unescaped, a boolean, a number as its %g text or, with 'int', its integer part, an array as its JSON text; null, an object, a missing path or bad JSON give nothing.",
                "acl admin req.body,json_query('$.role') admin"
            ),
        ),
    ];
    v.extend(map_converters());
    v.extend(stick_converters());
    v
}

fn entries(defs: &[SampleDef]) -> Vec<(String, Option<crate::config::registry::Sections>, Doc)> {
    defs.iter().map(|d| (d.name.to_string(), None, d.doc)).collect()
}

pub fn doc_tables() -> Vec<DocTable> {
    let r = registry();
    vec![DocTable { title: "sample fetches", entries: entries(&r.fetches) }, DocTable { title: "converters", entries: entries(&r.converters) }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_are_unique_in_each_table() {
        let r = registry();
        assert_eq!(r.fetch_by_name.len(), r.fetches.len());
        assert_eq!(r.conv_by_name.len(), r.converters.len());
    }

    #[test]
    fn every_requested_fetch_is_known() {
        let names = "src dst src_port dst_port so_id fe_id fe_name be_id be_name nbsrv be_conn be_sess_rate connslots srv_conn srv_is_up queue avg_queue \
             always_true always_false int str ipv4 ipv6 bool rand env date var uuid method path pathq query url base base32 url_param urlp req.hdr hdr \
             req.fhdr req.hdr_cnt hdr_cnt req.hdr_ip req.hdrs req.cook cook req.cook_cnt req.body req.body_len req.body_param req.len req.payload \
             req.payload_lv req.proto_http req.ver http_first_req http_auth http_auth_group res.hdr shdr res.cook status res.ver capture.req.hdr \
             capture.res.hdr unique-id req.ssl_sni req.ssl_hello_type req.ssl_ver ssl_fc ssl_fc_sni ssl_fc_protocol ssl_fc_cipher ssl_fc_alpn ssl_c_used \
             ssl_c_verify ssl_c_s_dn ssl_c_i_dn ssl_c_sha1 ssl_fc_has_crt sc_http_req_rate sc0_conn_cur sc_get_gpc0 sc_inc_gpc0 sc_get_gpt0 \
             src_conn_rate src_http_req_rate src_get_gpc0 table_cnt table_avl sc2_glitch_rate src_kbytes_out sc_get_gpc src_get_gpt sc_gpc_rate";
        for n in names.split_whitespace() {
            assert!(registry().fetch(n).is_some(), "missing fetch {n}");
        }
    }

    #[test]
    fn every_requested_converter_is_known() {
        let names = "lower upper ipmask map map_str map_beg map_sub map_dir map_dom map_end map_reg map_int map_ip map_str_int map_ip_ip regsub field word \
             concat json base64 b64dec hex hex2i sha1 sha2 crc32 djb2 wt6 xxh3 length bytes add sub mul div mod neg and or xor not bool url_dec url_enc \
             ltrim rtrim strcmp secure_memcmp in_table table_http_req_rate table_conn_cur table_trackers table_gpc0 set-var unset-var debug host_only port_only";
        for n in names.split_whitespace() {
            assert!(registry().converter(n).is_some(), "missing converter {n}");
        }
    }

    #[test]
    fn stick_families_leave_out_types_they_do_not_have() {
        assert!(registry().fetch("src_tracked").is_none());
        assert!(registry().fetch("sc0_gpc0").is_none());
        assert!(registry().converter("table_inc_gpc0").is_none());
        assert_eq!(registry().fetch("sc1_tracked").map(|d| d.out), Some(T::Bool));
    }

    #[test]
    fn too_many_arguments_are_reported_with_the_syntax() {
        let d = registry().fetch("src").unwrap();
        let e = check_args(d, "fetch method", &strings(&["x"])).unwrap_err();
        assert!(e.contains("takes no argument"), "{e}");
    }

    #[test]
    fn missing_mandatory_arguments_are_reported() {
        let d = registry().converter("regsub").unwrap();
        let e = check_args(d, "converter", &strings(&["a"])).unwrap_err();
        assert!(e.contains("at least 2"), "{e}");
    }

    #[test]
    fn integer_arguments_must_be_integers() {
        let d = registry().fetch("req.hdr").unwrap();
        assert!(check_args(d, "fetch method", &strings(&["host", "-1"])).is_ok());
        let e = check_args(d, "fetch method", &strings(&["host", "x"])).unwrap_err();
        assert!(e.contains("argument 2"), "{e}");
    }

    #[test]
    fn arithmetic_accepts_an_integer_or_a_variable() {
        let d = registry().converter("add").unwrap();
        assert!(check_args(d, "converter", &strings(&["5"])).is_ok());
        assert!(check_args(d, "converter", &strings(&["txn.n"])).is_ok());
        assert!(check_args(d, "converter", &strings(&["five"])).is_err());
    }

    #[test]
    fn variable_scopes_are_checked() {
        assert!(check_var_name("txn.x").is_ok());
        assert!(check_var_name("foo.x").unwrap_err().contains("unknown variable scope"));
        assert!(check_var_name("x").unwrap_err().contains("no scope"));
        assert!(check_var_name("txn.").is_err());
    }

    #[test]
    fn regex_arguments_must_compile() {
        let d = registry().converter("regsub").unwrap();
        let e = check_args(d, "converter", &strings(&["(", "x"])).unwrap_err();
        assert!(e.contains("invalid regex"), "{e}");
    }

    #[test]
    fn empty_optional_arguments_count_as_absent() {
        let d = registry().converter("concat").unwrap();
        assert!(check_args(d, "converter", &strings(&["", "txn.x", ""])).is_ok());
    }

    #[test]
    fn table_arguments_are_found_by_kind() {
        let r = registry();
        let args = strings(&["0", "st_src"]);
        assert_eq!(table_args(r.fetch("sc_http_req_rate").unwrap(), &args).collect::<Vec<_>>(), vec!["st_src"]);
        assert_eq!(table_args(r.fetch("sc_http_req_rate").unwrap(), &args[..1]).count(), 0);
    }

    #[test]
    fn doc_tables_have_both_titles_and_complete_entries() {
        let t = doc_tables();
        assert_eq!(t.iter().map(|t| t.title).collect::<Vec<_>>(), vec!["sample fetches", "converters"]);
        for (name, _, doc) in t.iter().flat_map(|t| &t.entries) {
            assert!(!doc.syntax.is_empty() && !doc.desc.is_empty() && !doc.example.is_empty(), "{name}");
            assert!(doc.syntax.starts_with(name.as_str()), "{name}: {}", doc.syntax);
        }
    }
}
