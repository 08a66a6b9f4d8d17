//! Configuration of TLS: `ssl` bind and server options and the `ssl-default-*` globals.
//!
//! Cipher, curve and signature algorithm strings are kept as OpenSSL-style text; mapping them onto
//! what the TLS library offers happens when the configuration is compiled.
//!
//! Relative certificate paths are checked here only when they exist as written; otherwise they are
//! kept as written and resolved against `crt-base`/`ca-base` ([`GlobalTls::crt_path`],
//! [`GlobalTls::ca_path`]) once the whole configuration is known.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::expr::{SampleExpr, parse_sample};
use crate::config::model::{Bind, ServerOpts};
use crate::config::registry::{BindOption, Doc, DocTable, GlobalKeyword, GlobalParse, KwArgs, ServerOption};
use crate::config::units::{parse_time_unit, parse_uint};
use crate::doc;

/// Protocol versions, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    Ssl3,
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn parse(s: &str) -> Result<TlsVersion, String> {
        Ok(match s {
            "SSLv3" => TlsVersion::Ssl3,
            "TLSv1.0" => TlsVersion::Tls10,
            "TLSv1.1" => TlsVersion::Tls11,
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            _ => return Err(format!("unknown protocol version '{s}' (expected SSLv3, TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3)")),
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Ssl3 => "SSLv3",
            TlsVersion::Tls10 => "TLSv1.0",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

/// Which protocol versions a side may negotiate: `ssl-min-ver`, `ssl-max-ver`, `no-*`, `force-*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsProtocols {
    pub min: Option<TlsVersion>,
    pub max: Option<TlsVersion>,
    /// `no-sslv3`, `no-tlsv10`, ...: each version at most once, in the order written.
    pub disabled: Vec<TlsVersion>,
    /// `force-tlsv12`, ...: only this version.
    pub force: Option<TlsVersion>,
}

impl TlsProtocols {
    fn set_min(&mut self, v: &str) -> Result<(), String> {
        let v = TlsVersion::parse(v)?;
        if let Some(max) = self.max.filter(|max| v > *max) {
            return Err(format!("'ssl-min-ver' {} is above 'ssl-max-ver' {}", v.name(), max.name()));
        }
        self.min = Some(v);
        Ok(())
    }
    fn set_max(&mut self, v: &str) -> Result<(), String> {
        let v = TlsVersion::parse(v)?;
        if let Some(min) = self.min.filter(|min| v < *min) {
            return Err(format!("'ssl-max-ver' {} is below 'ssl-min-ver' {}", v.name(), min.name()));
        }
        self.max = Some(v);
        Ok(())
    }
    fn disable(&mut self, v: TlsVersion) {
        if !self.disabled.contains(&v) {
            self.disabled.push(v);
        }
    }
    /// Applies one `no-*`/`force-*` flag; false when `word` is none of them.
    fn flag(&mut self, word: &str) -> bool {
        match word.strip_prefix("no-").and_then(flag_version) {
            Some(v) => self.disable(v),
            None => match word.strip_prefix("force-").and_then(flag_version) {
                Some(v) => self.force = Some(v),
                None => return false,
            },
        }
        true
    }
}

/// The version a `no-`/`force-` suffix names: `sslv3`, `tlsv10` ... `tlsv13`.
fn flag_version(s: &str) -> Option<TlsVersion> {
    Some(match s {
        "sslv3" => TlsVersion::Ssl3,
        "tlsv10" => TlsVersion::Tls10,
        "tlsv11" => TlsVersion::Tls11,
        "tlsv12" => TlsVersion::Tls12,
        "tlsv13" => TlsVersion::Tls13,
        _ => return None,
    })
}

/// Peer certificate verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    None,
    /// Verify a certificate if the client sends one (bind only).
    Optional,
    Required,
}

/// `ca-ignore-err`/`crt-ignore-err`: verification errors to ignore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IgnoreErrors {
    All,
    /// Numeric ids or `X509_V_ERR_*` names, as written.
    Codes(Vec<String>),
}

/// TLS settings of one `bind` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindTls {
    /// `ssl`: the listener terminates TLS.
    pub ssl: bool,
    /// `crt`: certificate files or directories of certificates, in order (the first is the default).
    pub crts: Vec<PathBuf>,
    /// `crt-list`: files listing certificates with per-certificate options and SNI filters.
    pub crt_lists: Vec<PathBuf>,
    /// `alpn`: protocols offered, in preference order.
    pub alpn: Option<Vec<String>>,
    pub protocols: TlsProtocols,
    pub ciphers: Option<String>,
    pub ciphersuites: Option<String>,
    pub curves: Option<String>,
    pub ecdhe: Option<String>,
    pub sigalgs: Option<String>,
    pub client_sigalgs: Option<String>,
    /// CA certificates that client certificates are verified against.
    pub ca_file: Option<PathBuf>,
    pub crl_file: Option<PathBuf>,
    pub verify: Option<Verify>,
    pub ca_ignore_err: Option<IgnoreErrors>,
    pub crt_ignore_err: Option<IgnoreErrors>,
    /// `strict-sni`: refuse handshakes whose SNI matches no certificate instead of using the default.
    pub strict_sni: bool,
    pub allow_0rtt: bool,
    pub no_tls_tickets: bool,
    pub tls_ticket_keys: Option<PathBuf>,
    pub prefer_client_ciphers: bool,
}

/// TLS settings of a `server`/`default-server` line.
#[derive(Clone, Debug, Default)]
pub struct ServerTls {
    /// `ssl` / `no-ssl`.
    pub ssl: bool,
    pub verify: Option<Verify>,
    /// Name the server certificate must carry (defaults to the SNI when verifying).
    pub verifyhost: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub crl_file: Option<PathBuf>,
    /// Client certificate presented to the server.
    pub crt: Option<PathBuf>,
    /// Expression giving the SNI sent to the server, evaluated per stream.
    pub sni: Option<SampleExpr>,
    pub alpn: Option<Vec<String>>,
    pub protocols: TlsProtocols,
    pub ciphers: Option<String>,
    pub ciphersuites: Option<String>,
    /// `ssl-reuse` / `no-ssl-reuse`: resume sessions with the server.
    pub session_reuse: Option<bool>,
    /// `tls-tickets` / `no-tls-tickets`.
    pub tls_tickets: Option<bool>,
    pub allow_0rtt: bool,
}

/// `ssl-default-bind-options` / `ssl-default-server-options`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsDefaultOptions {
    pub protocols: TlsProtocols,
    pub no_tls_tickets: bool,
    /// Bind side only.
    pub prefer_client_ciphers: bool,
}

/// The `global` section's TLS settings.
#[derive(Clone, Debug, Default)]
pub struct GlobalTls {
    pub bind_options: TlsDefaultOptions,
    pub bind_ciphers: Option<String>,
    pub bind_ciphersuites: Option<String>,
    pub bind_curves: Option<String>,
    pub bind_sigalgs: Option<String>,
    pub server_options: TlsDefaultOptions,
    pub server_ciphers: Option<String>,
    pub server_ciphersuites: Option<String>,
    /// `ssl-server-verify`: the default of servers' `verify` (HAProxy's default is `required`).
    pub server_verify: Option<Verify>,
    /// Directory relative `crt`/`crt-list` paths are read from.
    pub crt_base: Option<PathBuf>,
    /// Directory relative `ca-file`/`crl-file` paths are read from.
    pub ca_base: Option<PathBuf>,
    pub dh_param_file: Option<PathBuf>,
    /// `tune.ssl.default-dh-param`: DH key size in bits.
    pub default_dh_param: Option<u32>,
    /// `tune.ssl.cachesize`: sessions kept for resumption; 0 disables the cache.
    pub cachesize: Option<u32>,
    /// `tune.ssl.lifetime`: how long a cached session stays valid.
    pub lifetime: Option<Duration>,
    /// `tune.ssl.maxrecord`: largest TLS record sent; 0 is the library's maximum.
    pub maxrecord: Option<u32>,
}

impl GlobalTls {
    /// A `crt`/`crt-list` path as it will be opened.
    pub fn crt_path(&self, p: &Path) -> PathBuf {
        based(self.crt_base.as_deref(), p)
    }
    /// A `ca-file`/`crl-file` path as it will be opened.
    pub fn ca_path(&self, p: &Path) -> PathBuf {
        based(self.ca_base.as_deref(), p)
    }
}

fn based(base: Option<&Path>, p: &Path) -> PathBuf {
    match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p.to_path_buf(),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}

/// Checks that `path` exists. Relative paths that do not exist as written are accepted here: they
/// may be relative to `crt-base`/`ca-base`, which a bind or server option cannot see.
fn existing(v: Option<&str>, what: &str) -> Result<PathBuf, String> {
    let v = v.unwrap_or_default();
    if v.is_empty() {
        return Err(format!("missing {what} path"));
    }
    let path = PathBuf::from(v);
    match std::fs::metadata(&path) {
        Ok(_) => Ok(path),
        Err(_) if path.is_relative() => Ok(path),
        Err(e) => Err(format!("unable to stat {what} from file '{v}' : {}", io_reason(&e))),
    }
}

fn text(v: Option<&str>) -> Result<String, String> {
    match v {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err("expects a non-empty argument".into()),
    }
}

fn parse_alpn(v: Option<&str>) -> Result<Vec<String>, String> {
    let v = v.unwrap_or_default();
    let mut out = Vec::new();
    for p in v.split(',') {
        if p.is_empty() || p.len() > 255 {
            return Err(format!("invalid ALPN protocol list '{v}' (expects comma-separated names of 1 to 255 bytes)"));
        }
        out.push(p.to_owned());
    }
    Ok(out)
}

fn parse_ignore(v: Option<&str>) -> Result<IgnoreErrors, String> {
    let v = v.unwrap_or_default();
    if v == "all" {
        return Ok(IgnoreErrors::All);
    }
    let codes: Vec<String> = v.split(',').map(str::to_owned).collect();
    if codes.iter().any(|c| c.is_empty() || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')) {
        return Err(format!("expects 'all' or a comma-separated list of error ids or names, got '{v}'"));
    }
    Ok(IgnoreErrors::Codes(codes))
}

fn parse_verify(v: Option<&str>, optional_allowed: bool) -> Result<Verify, String> {
    match v.unwrap_or_default() {
        "none" => Ok(Verify::None),
        "optional" if optional_allowed => Ok(Verify::Optional),
        "required" => Ok(Verify::Required),
        other if optional_allowed => Err(format!("expects 'none', 'optional' or 'required', got '{other}'")),
        other => Err(format!("expects 'none' or 'required', got '{other}'")),
    }
}

fn bopt(name: &'static str, takes_arg: bool, parse: fn(&mut Bind, Option<&str>) -> Result<(), String>, doc: Doc) -> BindOption {
    BindOption { name, takes_arg, parse, doc }
}

fn sopt(name: &'static str, takes_arg: bool, parse: fn(&mut ServerOpts, Option<&str>) -> Result<(), String>, doc: Doc) -> ServerOption {
    ServerOption { name, takes_arg, default_server: true, parse, doc }
}

/// A bind option that stores its argument as text.
macro_rules! bind_text {
    ($name:literal, $field:ident, $desc:literal, $example:literal) => {
        bopt(
            $name,
            true,
            |b, v| {
                b.tls.$field = Some(text(v)?);
                Ok(())
            },
            doc!(Parsed, concat!($name, " <string>"), $desc, $example),
        )
    };
}

/// A bind option without argument that sets a flag.
macro_rules! bind_flag {
    ($name:literal, $field:ident, $desc:literal) => {
        bopt(
            $name,
            false,
            |b, _| {
                b.tls.$field = true;
                Ok(())
            },
            doc!(Parsed, $name, $desc, concat!("bind :443 ssl crt /etc/sluiced/site.pem ", $name)),
        )
    };
}

/// `no-*`/`force-*` for binds or servers.
macro_rules! proto_flag {
    ($ctor:ident, $name:literal, $desc:literal, $example:literal) => {
        $ctor(
            $name,
            false,
            |o, _| {
                o.tls.protocols.flag($name);
                Ok(())
            },
            doc!(Parsed, $name, $desc, $example),
        )
    };
}

pub fn bind_options() -> Vec<BindOption> {
    vec![
        bopt(
            "ssl",
            false,
            |b, _| {
                b.tls.ssl = true;
                Ok(())
            },
            doc!(Parsed, "ssl", "Terminates TLS on this listener; needs at least one 'crt' or 'crt-list'.", "bind :443 ssl crt /etc/sluiced/site.pem"),
        ),
        bopt(
            "crt",
            true,
            |b, v| {
                b.tls.crts.push(existing(v, "SSL certificate")?);
                Ok(())
            },
            doc!(
                Parsed,
                "crt <file|dir>",
                "PEM certificate with its key, or a directory of them; repeatable; relative paths use crt-base.",
                "bind :443 ssl crt /etc/sluiced/certs/"
            ),
        ),
        bopt(
            "crt-list",
            true,
            |b, v| {
                b.tls.crt_lists.push(existing(v, "crt-list")?);
                Ok(())
            },
            doc!(
                Parsed,
                "crt-list <file>",
                "File listing certificates, one per line, with optional SNI filters and options.",
                "bind :443 ssl crt-list /etc/sluiced/crt-list.txt"
            ),
        ),
        bopt(
            "alpn",
            true,
            |b, v| {
                b.tls.alpn = Some(parse_alpn(v)?);
                Ok(())
            },
            doc!(
                Parsed,
                "alpn <proto>[,<proto>...]",
                "Protocols offered with ALPN, in preference order.",
                "bind :443 ssl crt /etc/sluiced/site.pem alpn h2,http/1.1"
            ),
        ),
        bopt(
            "npn",
            true,
            |_, _| Err("NPN is not supported by sluiced (it was superseded by ALPN); use 'alpn'".into()),
            doc!(
                Parsed,
                "npn <proto>[,<proto>...]",
                "Not supported (NPN was superseded by ALPN); rejected with a hint to use 'alpn'.",
                "bind :443 ssl crt /etc/sluiced/site.pem alpn h2"
            ),
        ),
        bopt(
            "ssl-min-ver",
            true,
            |b, v| b.tls.protocols.set_min(v.unwrap_or_default()),
            doc!(
                Parsed,
                "ssl-min-ver SSLv3|TLSv1.0|TLSv1.1|TLSv1.2|TLSv1.3",
                "Oldest protocol version accepted.",
                "bind :443 ssl crt /etc/sluiced/site.pem ssl-min-ver TLSv1.2"
            ),
        ),
        bopt(
            "ssl-max-ver",
            true,
            |b, v| b.tls.protocols.set_max(v.unwrap_or_default()),
            doc!(
                Parsed,
                "ssl-max-ver SSLv3|TLSv1.0|TLSv1.1|TLSv1.2|TLSv1.3",
                "Newest protocol version accepted.",
                "bind :443 ssl crt /etc/sluiced/site.pem ssl-max-ver TLSv1.3"
            ),
        ),
        bind_text!(
            "ciphers",
            ciphers,
            "TLS 1.2 cipher list in OpenSSL syntax, mapped onto rustls' suites; names rustls lacks select nothing, a list that selects nothing is an error.",
            "bind :443 ssl crt /etc/sluiced/site.pem ciphers ECDHE+AESGCM"
        ),
        bind_text!(
            "ciphersuites",
            ciphersuites,
            "TLS 1.3 cipher suites, colon separated.",
            "bind :443 ssl crt /etc/sluiced/site.pem ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"
        ),
        bind_text!("curves", curves, "Key exchange groups offered, colon separated.", "bind :443 ssl crt /etc/sluiced/site.pem curves X25519:P-256"),
        bind_text!("ecdhe", ecdhe, "The one named curve used for ECDHE (older form of 'curves').", "bind :443 ssl crt /etc/sluiced/site.pem ecdhe prime256v1"),
        bind_text!(
            "sigalgs",
            sigalgs,
            "Signature algorithms accepted in the handshake.",
            "bind :443 ssl crt /etc/sluiced/site.pem sigalgs ECDSA+SHA256:RSA-PSS+SHA256"
        ),
        bind_text!(
            "client-sigalgs",
            client_sigalgs,
            "Signature algorithms accepted for client certificates.",
            "bind :443 ssl crt /etc/sluiced/site.pem client-sigalgs ECDSA+SHA256"
        ),
        bopt(
            "ca-file",
            true,
            |b, v| {
                b.tls.ca_file = Some(existing(v, "CA file")?);
                Ok(())
            },
            doc!(
                Parsed,
                "ca-file <file>",
                "CA certificates client certificates are verified against; relative paths use ca-base.",
                "bind :443 ssl crt /etc/sluiced/site.pem ca-file /etc/sluiced/clients-ca.pem verify required"
            ),
        ),
        bopt(
            "crl-file",
            true,
            |b, v| {
                b.tls.crl_file = Some(existing(v, "CRL file")?);
                Ok(())
            },
            doc!(
                Parsed,
                "crl-file <file>",
                "Certificate revocation lists checked when verifying client certificates.",
                "bind :443 ssl crt /etc/sluiced/site.pem ca-file /etc/sluiced/ca.pem crl-file /etc/sluiced/crl.pem verify required"
            ),
        ),
        bopt(
            "verify",
            true,
            |b, v| {
                b.tls.verify = Some(parse_verify(v, true)?);
                Ok(())
            },
            doc!(
                Parsed,
                "verify none|optional|required",
                "Whether client certificates are requested and verified.",
                "bind :443 ssl crt /etc/sluiced/site.pem ca-file /etc/sluiced/ca.pem verify optional"
            ),
        ),
        bopt(
            "ca-ignore-err",
            true,
            |b, v| {
                b.tls.ca_ignore_err = Some(parse_ignore(v)?);
                Ok(())
            },
            doc!(
                Parsed,
                "ca-ignore-err all|<id>[,<id>...]",
                "Client certificate chain errors to ignore while verifying.",
                "bind :443 ssl crt /etc/sluiced/site.pem verify optional ca-file /etc/sluiced/ca.pem ca-ignore-err all"
            ),
        ),
        bopt(
            "crt-ignore-err",
            true,
            |b, v| {
                b.tls.crt_ignore_err = Some(parse_ignore(v)?);
                Ok(())
            },
            doc!(
                Parsed,
                "crt-ignore-err all|<id>[,<id>...]",
                "Client certificate errors (not of the chain) to ignore while verifying.",
                "bind :443 ssl crt /etc/sluiced/site.pem verify optional ca-file /etc/sluiced/ca.pem crt-ignore-err X509_V_ERR_CERT_HAS_EXPIRED"
            ),
        ),
        proto_flag!(bopt, "no-sslv3", "Refuses SSLv3.", "bind :443 ssl crt /etc/sluiced/site.pem no-sslv3"),
        proto_flag!(bopt, "no-tlsv10", "Refuses TLS 1.0.", "bind :443 ssl crt /etc/sluiced/site.pem no-tlsv10"),
        proto_flag!(bopt, "no-tlsv11", "Refuses TLS 1.1.", "bind :443 ssl crt /etc/sluiced/site.pem no-tlsv11"),
        proto_flag!(bopt, "no-tlsv12", "Refuses TLS 1.2.", "bind :443 ssl crt /etc/sluiced/site.pem no-tlsv12"),
        proto_flag!(bopt, "no-tlsv13", "Refuses TLS 1.3.", "bind :443 ssl crt /etc/sluiced/site.pem no-tlsv13"),
        proto_flag!(bopt, "force-tlsv12", "Accepts only TLS 1.2.", "bind :443 ssl crt /etc/sluiced/site.pem force-tlsv12"),
        proto_flag!(bopt, "force-tlsv13", "Accepts only TLS 1.3.", "bind :443 ssl crt /etc/sluiced/site.pem force-tlsv13"),
        bind_flag!("strict-sni", strict_sni, "Refuses handshakes whose SNI matches no certificate instead of using the default one."),
        bind_flag!("allow-0rtt", allow_0rtt, "Accepts TLS 1.3 early data (0-RTT); sluiced never does and warns."),
        bind_flag!("no-tls-tickets", no_tls_tickets, "Disables stateless session resumption with tickets."),
        bind_flag!("prefer-client-ciphers", prefer_client_ciphers, "Uses the client's cipher preference instead of the server's."),
        bopt(
            "tls-ticket-keys",
            true,
            |b, v| {
                b.tls.tls_ticket_keys = Some(existing(v, "TLS ticket keys")?);
                Ok(())
            },
            doc!(
                Parsed,
                "tls-ticket-keys <file>",
                "File of base64 session ticket keys (48 or 80 bytes each) shared by several nodes; the last key seals new tickets, every key opens them.",
                "bind :443 ssl crt /etc/sluiced/site.pem tls-ticket-keys /etc/sluiced/tickets.key"
            ),
        ),
        bopt(
            "generate-certificates",
            false,
            |_, _| Err("on-the-fly certificate generation is not supported by sluiced".into()),
            doc!(Parsed, "generate-certificates", "Not supported (on-the-fly certificate generation); rejected.", "bind :443 ssl crt /etc/sluiced/certs/"),
        ),
    ]
}

/// A server option that stores its argument as text.
macro_rules! server_text {
    ($name:literal, $field:ident, $desc:literal, $example:literal) => {
        sopt(
            $name,
            true,
            |o, v| {
                o.tls.$field = Some(text(v)?);
                Ok(())
            },
            doc!(Parsed, concat!($name, " <string>"), $desc, $example),
        )
    };
}

pub fn server_options() -> Vec<ServerOption> {
    vec![
        sopt(
            "ssl",
            false,
            |o, _| {
                o.tls.ssl = true;
                Ok(())
            },
            doc!(Parsed, "ssl", "Connects to the server over TLS.", "server s1 10.0.0.1:443 ssl verify required ca-file /etc/ssl/certs/ca.pem"),
        ),
        sopt(
            "no-ssl",
            false,
            |o, _| {
                o.tls.ssl = false;
                Ok(())
            },
            doc!(Parsed, "no-ssl", "Cancels an 'ssl' inherited from default-server.", "server s1 10.0.0.1:80 no-ssl"),
        ),
        sopt(
            "verify",
            true,
            |o, v| {
                o.tls.verify = Some(parse_verify(v, false)?);
                Ok(())
            },
            doc!(
                Parsed,
                "verify none|required",
                "Whether the server's certificate is verified (default from ssl-server-verify).",
                "server s1 10.0.0.1:443 ssl verify required ca-file /etc/ssl/certs/ca.pem"
            ),
        ),
        server_text!(
            "verifyhost",
            verifyhost,
            "Host name the server's certificate must match.",
            "server s1 10.0.0.1:443 ssl verify required ca-file /etc/ssl/certs/ca.pem verifyhost api.internal"
        ),
        sopt(
            "ca-file",
            true,
            |o, v| {
                o.tls.ca_file = Some(existing(v, "CA file")?);
                Ok(())
            },
            doc!(
                Parsed,
                "ca-file <file>",
                "CA certificates the server's certificate is verified against; relative paths use ca-base.",
                "server s1 10.0.0.1:443 ssl verify required ca-file /etc/ssl/certs/ca.pem"
            ),
        ),
        sopt(
            "crl-file",
            true,
            |o, v| {
                o.tls.crl_file = Some(existing(v, "CRL file")?);
                Ok(())
            },
            doc!(
                Parsed,
                "crl-file <file>",
                "Certificate revocation lists checked when verifying the server.",
                "server s1 10.0.0.1:443 ssl verify required ca-file /etc/ssl/certs/ca.pem crl-file /etc/ssl/crl.pem"
            ),
        ),
        sopt(
            "crt",
            true,
            |o, v| {
                o.tls.crt = Some(existing(v, "SSL certificate")?);
                Ok(())
            },
            doc!(
                Parsed,
                "crt <file>",
                "Client certificate and key presented to the server; relative paths use crt-base.",
                "server s1 10.0.0.1:443 ssl crt /etc/sluiced/client.pem verify none"
            ),
        ),
        sopt(
            "sni",
            true,
            |o, v| {
                o.tls.sni = Some(parse_sample(v.unwrap_or_default())?);
                Ok(())
            },
            doc!(Parsed, "sni <expr>", "Sample expression giving the SNI sent to the server.", "server s1 10.0.0.1:443 ssl verify none sni req.hdr(host)"),
        ),
        sopt(
            "alpn",
            true,
            |o, v| {
                o.tls.alpn = Some(parse_alpn(v)?);
                Ok(())
            },
            doc!(Parsed, "alpn <proto>[,<proto>...]", "Protocols offered to the server with ALPN.", "server s1 10.0.0.1:443 ssl verify none alpn h2,http/1.1"),
        ),
        sopt(
            "ssl-min-ver",
            true,
            |o, v| o.tls.protocols.set_min(v.unwrap_or_default()),
            doc!(
                Parsed,
                "ssl-min-ver SSLv3|TLSv1.0|TLSv1.1|TLSv1.2|TLSv1.3",
                "Oldest protocol version used with the server.",
                "server s1 10.0.0.1:443 ssl verify none ssl-min-ver TLSv1.2"
            ),
        ),
        sopt(
            "ssl-max-ver",
            true,
            |o, v| o.tls.protocols.set_max(v.unwrap_or_default()),
            doc!(
                Parsed,
                "ssl-max-ver SSLv3|TLSv1.0|TLSv1.1|TLSv1.2|TLSv1.3",
                "Newest protocol version used with the server.",
                "server s1 10.0.0.1:443 ssl verify none ssl-max-ver TLSv1.2"
            ),
        ),
        server_text!("ciphers", ciphers, "TLS 1.2 and older cipher list towards the server.", "server s1 10.0.0.1:443 ssl verify none ciphers ECDHE+AESGCM"),
        server_text!(
            "ciphersuites",
            ciphersuites,
            "TLS 1.3 cipher suites towards the server.",
            "server s1 10.0.0.1:443 ssl verify none ciphersuites TLS_AES_128_GCM_SHA256"
        ),
        proto_flag!(sopt, "no-sslv3", "Does not use SSLv3 with the server.", "server s1 10.0.0.1:443 ssl verify none no-sslv3"),
        proto_flag!(sopt, "no-tlsv10", "Does not use TLS 1.0 with the server.", "server s1 10.0.0.1:443 ssl verify none no-tlsv10"),
        proto_flag!(sopt, "no-tlsv11", "Does not use TLS 1.1 with the server.", "server s1 10.0.0.1:443 ssl verify none no-tlsv11"),
        proto_flag!(sopt, "no-tlsv12", "Does not use TLS 1.2 with the server.", "server s1 10.0.0.1:443 ssl verify none no-tlsv12"),
        proto_flag!(sopt, "no-tlsv13", "Does not use TLS 1.3 with the server.", "server s1 10.0.0.1:443 ssl verify none no-tlsv13"),
        proto_flag!(sopt, "force-tlsv12", "Uses only TLS 1.2 with the server.", "server s1 10.0.0.1:443 ssl verify none force-tlsv12"),
        proto_flag!(sopt, "force-tlsv13", "Uses only TLS 1.3 with the server.", "server s1 10.0.0.1:443 ssl verify none force-tlsv13"),
        sopt(
            "ssl-reuse",
            false,
            |o, _| {
                o.tls.session_reuse = Some(true);
                Ok(())
            },
            doc!(Parsed, "ssl-reuse", "Resumes TLS sessions with the server (the default).", "server s1 10.0.0.1:443 ssl verify none ssl-reuse"),
        ),
        sopt(
            "no-ssl-reuse",
            false,
            |o, _| {
                o.tls.session_reuse = Some(false);
                Ok(())
            },
            doc!(Parsed, "no-ssl-reuse", "Makes a full handshake on every connection to the server.", "server s1 10.0.0.1:443 ssl verify none no-ssl-reuse"),
        ),
        sopt(
            "tls-tickets",
            false,
            |o, _| {
                o.tls.tls_tickets = Some(true);
                Ok(())
            },
            doc!(Parsed, "tls-tickets", "Uses session tickets with the server.", "server s1 10.0.0.1:443 ssl verify none tls-tickets"),
        ),
        sopt(
            "no-tls-tickets",
            false,
            |o, _| {
                o.tls.tls_tickets = Some(false);
                Ok(())
            },
            doc!(Parsed, "no-tls-tickets", "Does not use session tickets with the server.", "server s1 10.0.0.1:443 ssl verify none no-tls-tickets"),
        ),
        sopt(
            "allow-0rtt",
            false,
            |o, _| {
                o.tls.allow_0rtt = true;
                Ok(())
            },
            doc!(Parsed, "allow-0rtt", "Sends early data (0-RTT) when resuming a TLS 1.3 session.", "server s1 10.0.0.1:443 ssl verify none allow-0rtt"),
        ),
    ]
}

fn one<'a>(a: &KwArgs<'a>, what: &str) -> Result<&'a str, String> {
    let v = a.need(0, what)?;
    a.at_most(1)?;
    Ok(v)
}

fn gkw(name: &'static str, parse: GlobalParse, doc: Doc) -> GlobalKeyword {
    GlobalKeyword { name, negatable: false, parse, doc }
}

/// The words of `ssl-default-bind-options`/`ssl-default-server-options`.
fn parse_default_options(a: &KwArgs<'_>, bind: bool) -> Result<TlsDefaultOptions, String> {
    let args = a.args();
    if args.is_empty() {
        return Err("expects at least one option".into());
    }
    let mut o = TlsDefaultOptions::default();
    let mut i = 0;
    while i < args.len() {
        let w = args[i].text.as_str();
        match w {
            "ssl-min-ver" | "ssl-max-ver" => {
                i += 1;
                let v = args.get(i).map(|w| w.text.as_str()).ok_or_else(|| format!("'{w}' expects a version"))?;
                if w == "ssl-min-ver" { o.protocols.set_min(v)? } else { o.protocols.set_max(v)? }
            }
            "no-tls-tickets" => o.no_tls_tickets = true,
            "prefer-client-ciphers" if bind => o.prefer_client_ciphers = true,
            _ if o.protocols.flag(w) => {}
            _ => return Err(format!("unknown option '{w}'")),
        }
        i += 1;
    }
    Ok(o)
}

/// A global keyword that stores its one argument as text.
macro_rules! global_text {
    ($name:literal, $field:ident, $desc:literal, $example:literal) => {
        gkw(
            $name,
            |a, g| {
                g.tls.$field = Some(one(a, "value")?.to_owned());
                Ok(())
            },
            doc!(Parsed, concat!($name, " <string>"), $desc, $example),
        )
    };
}

fn base_dir(a: &KwArgs<'_>, slot: &mut Option<PathBuf>) -> Result<(), String> {
    let dir = one(a, "directory")?;
    if slot.is_some() {
        return Err(format!("'{}' already specified", a.keyword));
    }
    *slot = Some(PathBuf::from(dir));
    Ok(())
}

pub fn global_keywords() -> Vec<GlobalKeyword> {
    vec![
        gkw(
            "ssl-default-bind-options",
            |a, g| {
                g.tls.bind_options = parse_default_options(a, true)?;
                Ok(())
            },
            doc!(
                Parsed,
                "ssl-default-bind-options [ssl-min-ver <v>] [ssl-max-ver <v>] [no-sslv3|no-tlsv1x|force-tlsv1x...] [no-tls-tickets] [prefer-client-ciphers]",
                "Protocol options applied to every 'ssl' bind line.",
                "ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets"
            ),
        ),
        global_text!(
            "ssl-default-bind-ciphers",
            bind_ciphers,
            "Default TLS 1.2 and older cipher list of bind lines.",
            "ssl-default-bind-ciphers ECDHE+AESGCM:ECDHE+CHACHA20"
        ),
        global_text!(
            "ssl-default-bind-ciphersuites",
            bind_ciphersuites,
            "Default TLS 1.3 cipher suites of bind lines.",
            "ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"
        ),
        global_text!("ssl-default-bind-curves", bind_curves, "Default key exchange groups of bind lines.", "ssl-default-bind-curves X25519:P-256"),
        global_text!(
            "ssl-default-bind-sigalgs",
            bind_sigalgs,
            "Default signature algorithms of bind lines.",
            "ssl-default-bind-sigalgs ECDSA+SHA256:RSA-PSS+SHA256"
        ),
        gkw(
            "ssl-default-server-options",
            |a, g| {
                g.tls.server_options = parse_default_options(a, false)?;
                Ok(())
            },
            doc!(
                Parsed,
                "ssl-default-server-options [ssl-min-ver <v>] [ssl-max-ver <v>] [no-sslv3|no-tlsv1x|force-tlsv1x...] [no-tls-tickets]",
                "Protocol options applied to every 'ssl' server.",
                "ssl-default-server-options ssl-min-ver TLSv1.2"
            ),
        ),
        global_text!(
            "ssl-default-server-ciphers",
            server_ciphers,
            "Default TLS 1.2 and older cipher list towards servers.",
            "ssl-default-server-ciphers ECDHE+AESGCM"
        ),
        global_text!(
            "ssl-default-server-ciphersuites",
            server_ciphersuites,
            "Default TLS 1.3 cipher suites towards servers.",
            "ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256"
        ),
        gkw(
            "ssl-server-verify",
            |a, g| {
                g.tls.server_verify = Some(parse_verify(Some(one(a, "'none' or 'required'")?), false)?);
                Ok(())
            },
            doc!(Parsed, "ssl-server-verify none|required", "Default of servers' 'verify' (required unless set).", "ssl-server-verify required"),
        ),
        gkw(
            "crt-base",
            |a, g| base_dir(a, &mut g.tls.crt_base),
            doc!(Parsed, "crt-base <dir>", "Directory relative 'crt' and 'crt-list' paths are read from.", "crt-base /etc/ssl/private"),
        ),
        gkw(
            "ca-base",
            |a, g| base_dir(a, &mut g.tls.ca_base),
            doc!(Parsed, "ca-base <dir>", "Directory relative 'ca-file' and 'crl-file' paths are read from.", "ca-base /etc/ssl/certs"),
        ),
        gkw(
            "ssl-dh-param-file",
            |a, g| {
                g.tls.dh_param_file = Some(existing(Some(one(a, "file")?), "DH parameters")?);
                Ok(())
            },
            doc!(Parsed, "ssl-dh-param-file <file>", "DH parameters used by certificates that carry none.", "ssl-dh-param-file /etc/sluiced/dhparam.pem"),
        ),
        gkw(
            "tune.ssl.default-dh-param",
            |a, g| {
                let v = one(a, "number of bits")?;
                let n = parse_uint(v, "tune.ssl.default-dh-param", u32::MAX.into())? as u32;
                if n < 1024 {
                    return Err(format!("tune.ssl.default-dh-param must be at least 1024, got '{v}'"));
                }
                g.tls.default_dh_param = Some(n);
                Ok(())
            },
            doc!(Parsed, "tune.ssl.default-dh-param <bits>", "Size of generated DH parameters when no file gives them.", "tune.ssl.default-dh-param 2048"),
        ),
        gkw(
            "tune.ssl.cachesize",
            |a, g| {
                g.tls.cachesize = Some(parse_uint(one(a, "number of sessions")?, "tune.ssl.cachesize", u32::MAX.into())? as u32);
                Ok(())
            },
            doc!(Parsed, "tune.ssl.cachesize <n>", "Sessions kept for resumption (0 disables the cache).", "tune.ssl.cachesize 100000"),
        ),
        gkw(
            "tune.ssl.lifetime",
            |a, g| {
                g.tls.lifetime = Some(parse_time_unit(one(a, "time")?, "s")?);
                Ok(())
            },
            doc!(Parsed, "tune.ssl.lifetime <time>", "How long a cached session may be resumed; bare numbers are seconds.", "tune.ssl.lifetime 600"),
        ),
        gkw(
            "tune.ssl.maxrecord",
            |a, g| {
                g.tls.maxrecord = Some(parse_uint(one(a, "size")?, "tune.ssl.maxrecord", 16384)? as u32);
                Ok(())
            },
            doc!(Parsed, "tune.ssl.maxrecord <bytes>", "Largest TLS record sent (0 is the maximum, 16384).", "tune.ssl.maxrecord 1419"),
        ),
        gkw(
            "ssl-engine",
            |_, _| Err("OpenSSL engines are not supported by sluiced".into()),
            doc!(Parsed, "ssl-engine <name> [algo ...]", "Not supported (OpenSSL engines); rejected.", "ssl-engine rdrand"),
        ),
        gkw(
            "ssl-mode-async",
            |_, _| Err("asynchronous OpenSSL engine mode is not supported by sluiced".into()),
            doc!(Parsed, "ssl-mode-async", "Not supported (asynchronous OpenSSL engines); rejected.", "ssl-mode-async"),
        ),
    ]
}

/// The bind and server option tables are built from the registry; TLS adds no table of its own.
pub fn doc_tables() -> Vec<DocTable> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{ok, one_alert};

    /// A self-signed ECDSA certificate with its key (CN sluiced-unit-test, valid until 2126): the
    /// configuration loads what it names, so the files must be real.
    const TEST_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBpjCCAUugAwIBAgIUBQrXpyJUbXOF3WMbCIxRTUVa4g8wCgYIKoZIzj0EAwIw\nHDEaMBgGA1UEAwwRc2x1aWNlZC11bml0LXRlc3QwIBcNMjYxMTIyMTU1OTA1WhgP\nMjEyNjEwMjkxNTU5MDVaMBwxGjAYBgNVBAMMEXNsdWljZWQtdW5pdC10ZXN0MFkw\nEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENkf4J0RiRqmeIB3oIRX49bf5O4WU4cOI\nqZDvs7+psPYaJeoqFP48oxbPR6zkGNuf2wPz1t0idEjdF6baJk4BIaNpMGcwHQYD\nVR0OBBYEFMFNFfU0s30AMtOlSpNX2F4OgcMnMB8GA1UdIwQYMBaAFMFNFfU0s30A\nMtOlSpNX2F4OgcMnMA8GA1UdEwEB/wQFMAMBAf8wFAYDVR0RBA0wC4IJdW5pdC50\nZXN0MAoGCCqGSM49BAMCA0kAMEYCIQD3EZMFlfMXAnR124eIynhqAnsjVuVWKy0g\nc0CQguHLmgIhANHOtHXe05gzAze7x2QQsfQx1vsVMr+783vD6r3Hw97V\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqaXo29Lk7L78CG75\n+wJq07iPA+XWCoX/gCv5QxDI/YGhRANCAAQ2R/gnRGJGqZ4gHeghFfj1t/k7hZTh\nw4ipkO+zv6mw9hol6ioU/jyjFs9HrOQY25/bA/PW3SJ0SN0XptomTgEh\n-----END PRIVATE KEY-----\n";

    /// A file that exists for the test's duration: a certificate bundle, or `text`.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str) -> TempFile {
            Self::with(tag, TEST_PEM)
        }
        fn with(tag: &str, text: &str) -> TempFile {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("sluiced-tls-{}-{n}-{tag}.pem", std::process::id()));
            std::fs::write(&p, text).unwrap();
            TempFile(p)
        }
        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn bind_tls(opts: &str) -> BindTls {
        let cfg = ok(&format!("frontend fe\n    bind :443 {opts}\n"));
        cfg.proxy("fe").unwrap().binds[0].tls.clone()
    }

    fn server_tls(opts: &str) -> ServerTls {
        let cfg = ok(&format!("backend be\n    server s1 10.0.0.1:443 {opts}\n"));
        cfg.proxy("be").unwrap().servers[0].opts.tls.clone()
    }

    #[test]
    fn bind_ssl_with_certificates_and_alpn() {
        let (c1, c2) = (TempFile::new("a"), TempFile::new("b"));
        let t = bind_tls(&format!("ssl crt {} crt {} alpn h2,http/1.1", c1.path(), c2.path()));
        assert!(t.ssl);
        assert_eq!(t.crts, vec![c1.0.clone(), c2.0.clone()]);
        assert_eq!(t.alpn, Some(vec!["h2".to_string(), "http/1.1".to_string()]));
    }

    #[test]
    fn bind_crt_that_does_not_exist_is_an_error() {
        let (line, kw, msg) = one_alert("frontend fe\n    bind :443 ssl crt /nonexistent/sluiced/site.pem\n");
        assert_eq!((line, kw.as_str()), (2, "bind"));
        assert!(msg.contains("unable to stat SSL certificate from file '/nonexistent/sluiced/site.pem'"), "{msg}");
    }

    #[test]
    fn bind_crt_directory_is_accepted() {
        let dir = std::env::temp_dir().join(format!("sluiced-tls-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("site.pem"), TEST_PEM).unwrap();
        let t = bind_tls(&format!("ssl crt {}", dir.display()));
        assert_eq!(t.crts, vec![dir.clone()]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bind_crt_list_must_exist() {
        let c = TempFile::new("listed");
        let l = TempFile::with("list", &format!("{}\n", c.path()));
        assert_eq!(bind_tls(&format!("ssl crt-list {}", l.path())).crt_lists, vec![l.0.clone()]);
        assert!(one_alert("frontend fe\n    bind :443 ssl crt-list /nonexistent/list.txt\n").2.contains("crt-list"));
    }

    #[test]
    fn bind_protocol_versions_and_flags() {
        let c = TempFile::new("v");
        let t = bind_tls(&format!("ssl crt {} ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3 no-sslv3 no-tlsv10 no-tlsv10 force-tlsv13", c.path()));
        assert_eq!(t.protocols.min, Some(TlsVersion::Tls12));
        assert_eq!(t.protocols.max, Some(TlsVersion::Tls13));
        assert_eq!(t.protocols.disabled, vec![TlsVersion::Ssl3, TlsVersion::Tls10]);
        assert_eq!(t.protocols.force, Some(TlsVersion::Tls13));
    }

    #[test]
    fn bind_min_version_above_max_is_an_error() {
        let (_, _, msg) = one_alert("frontend fe\n    bind :443 ssl-max-ver TLSv1.2 ssl-min-ver TLSv1.3\n");
        assert!(msg.contains("above 'ssl-max-ver'"), "{msg}");
    }

    #[test]
    fn bind_unknown_version_is_an_error() {
        let (_, _, msg) = one_alert("frontend fe\n    bind :443 ssl-min-ver TLSv1.4\n");
        assert!(msg.contains("unknown protocol version 'TLSv1.4'"), "{msg}");
    }

    #[test]
    fn bind_verification_and_text_options() {
        let ca = TempFile::new("ca");
        let t = bind_tls(&format!(
            "ssl crt {} ca-file {} verify optional ca-ignore-err all crt-ignore-err 10,X509_V_ERR_CERT_HAS_EXPIRED ciphers ECDHE+AESGCM ciphersuites TLS_AES_128_GCM_SHA256 curves X25519:P-256 strict-sni allow-0rtt no-tls-tickets prefer-client-ciphers",
            ca.path(),
            ca.path()
        ));
        assert_eq!(t.verify, Some(Verify::Optional));
        assert_eq!(t.ca_file, Some(ca.0.clone()));
        assert_eq!(t.ca_ignore_err, Some(IgnoreErrors::All));
        assert_eq!(t.crt_ignore_err, Some(IgnoreErrors::Codes(vec!["10".into(), "X509_V_ERR_CERT_HAS_EXPIRED".into()])));
        assert_eq!(t.ciphers.as_deref(), Some("ECDHE+AESGCM"));
        assert_eq!(t.ciphersuites.as_deref(), Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(t.curves.as_deref(), Some("X25519:P-256"));
        assert!(t.strict_sni && t.allow_0rtt && t.no_tls_tickets && t.prefer_client_ciphers);
    }

    #[test]
    fn bind_bad_verify_value_is_an_error() {
        assert!(one_alert("frontend fe\n    bind :443 verify always\n").2.contains("'none', 'optional' or 'required'"));
    }

    #[test]
    fn npn_and_generate_certificates_are_rejected() {
        assert!(one_alert("frontend fe\n    bind :443 npn h2\n").2.contains("use 'alpn'"));
        assert!(one_alert("frontend fe\n    bind :443 generate-certificates\n").2.contains("not supported"));
    }

    #[test]
    fn bind_empty_alpn_entry_is_an_error() {
        assert!(one_alert("frontend fe\n    bind :443 alpn h2,,http/1.1\n").2.contains("invalid ALPN"));
    }

    #[test]
    fn server_tls_options() {
        let ca = TempFile::new("sca");
        let t = server_tls(&format!(
            "ssl verify required ca-file {} verifyhost api.internal sni req.hdr(host) alpn h2 ssl-min-ver TLSv1.2 no-ssl-reuse no-tls-tickets allow-0rtt ciphers ECDHE+AESGCM",
            ca.path()
        ));
        assert!(t.ssl);
        assert_eq!(t.verify, Some(Verify::Required));
        assert_eq!(t.verifyhost.as_deref(), Some("api.internal"));
        assert!(t.sni.is_some());
        assert_eq!(t.alpn, Some(vec!["h2".to_string()]));
        assert_eq!(t.protocols.min, Some(TlsVersion::Tls12));
        assert_eq!((t.session_reuse, t.tls_tickets, t.allow_0rtt), (Some(false), Some(false), true));
    }

    #[test]
    fn server_verify_optional_is_an_error() {
        let (line, kw, msg) = one_alert("backend be\n    server s1 10.0.0.1:443 ssl verify optional\n");
        assert_eq!((line, kw.as_str()), (2, "server"));
        assert!(msg.contains("'none' or 'required'"), "{msg}");
    }

    #[test]
    fn no_ssl_cancels_default_server_ssl() {
        let cfg = ok("backend be\n    default-server ssl verify none\n    server s1 10.0.0.1:443\n    server s2 10.0.0.2:80 no-ssl\n");
        let be = cfg.proxy("be").unwrap();
        assert!(be.servers[0].opts.tls.ssl);
        assert!(!be.servers[1].opts.tls.ssl);
    }

    #[test]
    fn server_client_certificate_must_exist() {
        assert!(one_alert("backend be\n    server s1 10.0.0.1:443 ssl crt /nonexistent/client.pem\n").2.contains("unable to stat SSL certificate"));
    }

    #[test]
    fn default_bind_and_server_options() {
        let g = ok(
            "global\n    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets prefer-client-ciphers no-tlsv11\n    ssl-default-server-options force-tlsv13\n",
        )
        .global
        .tls;
        assert_eq!(g.bind_options.protocols.min, Some(TlsVersion::Tls12));
        assert!(g.bind_options.no_tls_tickets && g.bind_options.prefer_client_ciphers);
        assert_eq!(g.bind_options.protocols.disabled, vec![TlsVersion::Tls11]);
        assert_eq!(g.server_options.protocols.force, Some(TlsVersion::Tls13));
    }

    #[test]
    fn default_options_reject_unknown_words() {
        let (line, kw, msg) = one_alert("global\n    ssl-default-server-options prefer-client-ciphers\n");
        assert_eq!((line, kw.as_str()), (2, "ssl-default-server-options"));
        assert!(msg.contains("unknown option 'prefer-client-ciphers'"), "{msg}");
    }

    #[test]
    fn global_ciphers_verify_and_bases() {
        let g = ok(
            "global\n    ssl-default-bind-ciphers ECDHE+AESGCM\n    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256\n    ssl-default-server-ciphers HIGH\n    ssl-server-verify none\n    crt-base /etc/ssl/private\n    ca-base /etc/ssl/certs\n",
        )
        .global
        .tls;
        assert_eq!(g.bind_ciphers.as_deref(), Some("ECDHE+AESGCM"));
        assert_eq!(g.bind_ciphersuites.as_deref(), Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(g.server_ciphers.as_deref(), Some("HIGH"));
        assert_eq!(g.server_verify, Some(Verify::None));
        assert_eq!(g.crt_path(Path::new("site.pem")), PathBuf::from("/etc/ssl/private/site.pem"));
        assert_eq!(g.ca_path(Path::new("/abs/ca.pem")), PathBuf::from("/abs/ca.pem"));
    }

    #[test]
    fn crt_base_twice_is_an_error() {
        let (line, _, msg) = one_alert("global\n    crt-base /a\n    crt-base /b\n");
        assert_eq!(line, 3);
        assert!(msg.contains("already specified"), "{msg}");
    }

    #[test]
    fn tune_ssl_values() {
        let g = ok("global\n    tune.ssl.default-dh-param 2048\n    tune.ssl.cachesize 0\n    tune.ssl.lifetime 600\n    tune.ssl.maxrecord 1419\n").global.tls;
        assert_eq!(g.default_dh_param, Some(2048));
        assert_eq!(g.cachesize, Some(0));
        assert_eq!(g.lifetime, Some(Duration::from_secs(600)));
        assert_eq!(g.maxrecord, Some(1419));
    }

    #[test]
    fn tune_ssl_limits_are_enforced() {
        assert!(one_alert("global\n    tune.ssl.default-dh-param 512\n").2.contains("at least 1024"));
        assert!(one_alert("global\n    tune.ssl.maxrecord 20000\n").2.contains("at most 16384"));
    }

    #[test]
    fn openssl_engines_are_rejected() {
        assert!(one_alert("global\n    ssl-engine rdrand\n").2.contains("engines are not supported"));
        assert_eq!(one_alert("global\n    ssl-mode-async\n").1, "ssl-mode-async");
    }

    #[test]
    fn dh_param_file_must_exist() {
        assert!(one_alert("global\n    ssl-dh-param-file /nonexistent/dh.pem\n").2.contains("unable to stat DH parameters"));
    }

    #[test]
    fn option_and_keyword_names_are_not_taken_by_another_module() {
        let reg = crate::config::registry::Registry::get();
        for o in bind_options() {
            assert_eq!(reg.bind.iter().filter(|b| b.name == o.name).count(), 1, "bind option '{}' registered twice", o.name);
        }
        for o in server_options() {
            assert_eq!(reg.server.iter().filter(|s| s.name == o.name).count(), 1, "server option '{}' registered twice", o.name);
        }
        for k in global_keywords() {
            assert_eq!(reg.global.iter().filter(|g| g.name == k.name).count(), 1, "'{}' registered twice", k.name);
        }
    }
}
