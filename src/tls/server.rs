//! TLS termination settings of a `bind ... ssl` line compiled into a rustls `ServerConfig`:
//! certificates (PEM bundles, directories, crt-lists) behind an SNI resolver, protocol versions,
//! cipher suites and groups mapped from OpenSSL's syntax, ALPN, client certificate verification
//! with CA and CRL files, the session cache and rotating ticket keys. 0-RTT stays off.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
pub use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::config::{BindTls, GlobalTls, IgnoreErrors, TlsProtocols, TlsVersion, Verify};

/// A compiled `ssl` bind: what a worker needs to terminate TLS on its connections.
#[derive(Debug)]
pub struct Acceptor {
    pub config: Arc<ServerConfig>,
    /// The certificates, also the resolver of `config`: kept here so `commit ssl cert` can swap
    /// them (the routing table, and so this acceptor, is shared by every worker).
    store: Arc<CertStore>,
    /// Parses a certificate given at run time with the same key provider as the bind's own.
    provider: Arc<CryptoProvider>,
    /// With `ca-ignore-err`/`crt-ignore-err`: the strict verifier, run again on an accepted
    /// client certificate to tell `ssl_c_verify` what was ignored.
    pub(crate) reverify: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

impl Acceptor {
    /// The certificate files of this bind, in the order they were loaded, with the certificate
    /// each serves now (its chain, leaf first, in `cert`).
    pub fn certificates(&self) -> Vec<(PathBuf, Arc<CertifiedKey>)> {
        self.store.certs.load().loaded.iter().map(|l| (l.path.clone(), l.key.clone())).collect()
    }

    /// Whether this bind loaded the certificate file `name` (as `show ssl cert` lists it).
    pub fn has_file(&self, name: &str) -> bool {
        self.store.certs.load().loaded.iter().any(|l| l.path.to_str() == Some(name))
    }

    /// Parses a PEM bundle given at run time (`set ssl cert`): the chain and its matching key.
    pub fn parse_bundle(&self, name: &str, pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
        certified_key_from_pem(name, pem, None, &self.provider)
    }

    /// `commit ssl cert`: serves `key` for every entry loaded from the file `name`. Handshakes
    /// that already picked a certificate keep it; the next ones resolve against the new set.
    /// The names the certificate answers for are read again from it, unless a crt-list line
    /// gave them.
    pub fn replace(&self, name: &str, key: &Arc<CertifiedKey>) {
        let mut loaded = self.store.certs.load().loaded.clone();
        for l in loaded.iter_mut().filter(|l| l.path.to_str() == Some(name)) {
            l.key = key.clone();
            if !l.names_from_list {
                l.names = cert_names(key);
                l.names.retain(|n| !l.excluded.iter().any(|x| x.eq_ignore_ascii_case(n)));
            }
        }
        self.store.certs.store(Arc::new(Certs::new(loaded)));
    }
}

/// The SNI names of a certificate: those of its leaf (lower case; `*.x` for wildcards).
fn cert_names(key: &CertifiedKey) -> Vec<String> {
    key.cert.first().map(|c| super::der::dns_names(c)).unwrap_or_default()
}

/// The session cache shared by every `ssl` bind of the process (HAProxy's is process-wide too).
pub type SessionCache = Arc<dyn rustls::server::StoresServerSessions>;

/// The cache `tune.ssl.cachesize` asks for (20000 sessions by default, none with 0).
pub fn session_cache(g: &GlobalTls) -> SessionCache {
    match g.cachesize.unwrap_or(20000) {
        0 => Arc::new(rustls::server::NoServerSessionStorage {}),
        n => rustls::server::ServerSessionMemoryCache::new(n as usize),
    }
}

/// A cache that keeps nothing (for checking a configuration).
pub fn no_session_cache() -> SessionCache {
    Arc::new(rustls::server::NoServerSessionStorage {})
}

/// One certificate with the names it answers for.
#[derive(Clone, Debug)]
struct Loaded {
    /// The file it was read from.
    path: PathBuf,
    key: Arc<CertifiedKey>,
    /// SNI names (lower case; `*.x` for wildcards), from a crt-list filter or the certificate.
    names: Vec<String>,
    /// `names` came from a crt-list filter, so a replaced certificate keeps them.
    names_from_list: bool,
    /// Names a crt-list line excluded (`!name`), excluded again from a replaced certificate's.
    excluded: Vec<String>,
}

/// Picks the certificate for a handshake: the exact SNI name, else the wildcard of its parent
/// domain, else the first certificate of the bind (unless `strict-sni`). Among certificates for
/// one name (an RSA and an ECDSA one), the first whose key can sign with a scheme the client
/// offers.
///
/// The certificates sit behind an `ArcSwap`: a handshake loads the current set without a lock,
/// and `commit ssl cert` swaps in a whole new set.
#[derive(Debug)]
pub struct CertStore {
    certs: arc_swap::ArcSwap<Certs>,
    strict_sni: bool,
}

/// One immutable set of certificates of a bind, indexed by name.
#[derive(Debug)]
struct Certs {
    /// In load order: the first is the default; `show ssl cert` lists them.
    loaded: Vec<Loaded>,
    exact: HashMap<String, Vec<Arc<CertifiedKey>>>,
    wildcard: HashMap<String, Vec<Arc<CertifiedKey>>>,
}

impl Certs {
    fn new(loaded: Vec<Loaded>) -> Certs {
        let mut certs = Certs { loaded: Vec::new(), exact: HashMap::new(), wildcard: HashMap::new() };
        for c in &loaded {
            for n in &c.names {
                match n.strip_prefix("*.") {
                    Some(parent) => certs.wildcard.entry(parent.to_string()).or_default().push(c.key.clone()),
                    None => certs.exact.entry(n.clone()).or_default().push(c.key.clone()),
                }
            }
        }
        certs.loaded = loaded;
        certs
    }
}

impl CertStore {
    fn new(certs: Vec<Loaded>, strict_sni: bool) -> CertStore {
        CertStore { certs: arc_swap::ArcSwap::from_pointee(Certs::new(certs)), strict_sni }
    }

    fn pick(list: &[Arc<CertifiedKey>], schemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        list.iter().find(|c| c.key.choose_scheme(schemes).is_some()).or(list.first()).cloned()
    }

    /// The certificate for `sni`, as a handshake offering `schemes` gets it.
    fn lookup(&self, sni: Option<&str>, schemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(l) = certs.exact.get(&name) {
                return Self::pick(l, schemes);
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(l) = certs.wildcard.get(parent)
            {
                return Self::pick(l, schemes);
            }
            if self.strict_sni {
                return None;
            }
        }
        certs.loaded.first().map(|c| c.key.clone())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name(), hello.signature_schemes())
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("unable to load {what} '{}' : {e}", path.display()))
}

/// Loads a PEM bundle: the certificate chain and its private key (from the same file, or from
/// `<file>.key` as HAProxy looks for it).
pub fn load_certified_key(path: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let pem = read(path, "SSL certificate")?;
    certified_key_from_pem(&path.display().to_string(), &pem, Some(path), provider)
}

/// The chain and key of a PEM bundle named `name`; without a key in it, the key is read from
/// `<key_beside>.key` when given. Refuses a key that does not match the leaf certificate.
fn certified_key_from_pem(name: &str, pem: &[u8], key_beside: Option<&Path>, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|e| format!("unable to load SSL certificate from PEM file '{name}' : {e:?}"))?;
    if chain.is_empty() {
        return Err(format!("unable to load SSL certificate from PEM file '{name}' : no certificate in it"));
    }
    let key = match (PrivateKeyDer::from_pem_slice(pem), key_beside) {
        (Ok(k), _) => k,
        (Err(_), None) => return Err(format!("unable to load SSL private key from PEM file '{name}' : no private key in it")),
        (Err(_), Some(path)) => {
            let mut key_path = path.as_os_str().to_owned();
            key_path.push(".key");
            let key_path = PathBuf::from(key_path);
            let k = std::fs::read(&key_path).map_err(|_| format!("unable to load SSL private key from PEM file '{name}' : no private key in it"))?;
            PrivateKeyDer::from_pem_slice(&k).map_err(|e| format!("unable to load SSL private key from PEM file '{}' : {e:?}", key_path.display()))?
        }
    };
    let signing = provider.key_provider.load_private_key(key).map_err(|e| format!("unable to load SSL private key from PEM file '{name}' : {e}"))?;
    let ck = CertifiedKey::new(chain, signing);
    if let Err(e) = ck.keys_match() {
        return Err(format!("inconsistencies between private key and certificate loaded from PEM file '{name}' : {e}"));
    }
    Ok(Arc::new(ck))
}

/// Files of a certificate directory HAProxy would not load as certificates.
fn is_extra_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with('.') || [".key", ".ocsp", ".issuer", ".sctl", ".crl"].iter().any(|e| name.ends_with(e))
}

fn load_crt(path: &Path, provider: &CryptoProvider, out: &mut Vec<Loaded>) -> Result<(), String> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("unable to read directory '{}' : {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && !is_extra_file(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("no certificate found in directory '{}'", path.display()));
        }
        for f in files {
            load_crt(&f, provider, out)?;
        }
        return Ok(());
    }
    let key = load_certified_key(path, provider)?;
    let names = cert_names(&key);
    out.push(Loaded { path: path.to_path_buf(), key, names, names_from_list: false, excluded: Vec::new() });
    Ok(())
}

/// Reads a crt-list: `<crt> [[<options>]] [[!]<sni filter> ...]` per line. Per-certificate
/// options are refused (every certificate of a bind shares its settings in sluiced).
fn load_crt_list(path: &Path, g: &GlobalTls, provider: &CryptoProvider, out: &mut Vec<Loaded>) -> Result<(), String> {
    let text = String::from_utf8(read(path, "crt-list")?).map_err(|_| format!("crt-list '{}' is not UTF-8 text", path.display()))?;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("crt-list '{}' line {}", path.display(), i + 1);
        let (crt, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let mut rest = rest.trim();
        if let Some(r) = rest.strip_prefix('[') {
            let (opts, after) = r.split_once(']').ok_or_else(|| format!("{} : missing ']'", at()))?;
            if !opts.trim().is_empty() {
                return Err(format!("{} : per-certificate options '[{}]' are not supported by sluiced", at(), opts.trim()));
            }
            rest = after.trim();
        }
        let mut loaded = Vec::new();
        load_crt(&g.crt_path(Path::new(crt)), provider, &mut loaded).map_err(|e| format!("{} : {e}", at()))?;
        let (neg, pos): (Vec<&str>, Vec<&str>) = rest.split_whitespace().partition(|f| f.starts_with('!'));
        for mut l in loaded {
            if !pos.is_empty() {
                l.names = pos.iter().map(|n| n.to_ascii_lowercase()).collect();
                l.names_from_list = true;
            }
            l.names.retain(|n| !neg.iter().any(|x| x[1..].eq_ignore_ascii_case(n)));
            l.excluded = neg.iter().map(|x| x[1..].to_string()).collect();
            out.push(l);
        }
    }
    Ok(())
}

/// The versions rustls offers (1.2 and 1.3) that the settings allow. HAProxy's default oldest
/// version is TLS 1.2.
pub fn versions(p: &TlsProtocols, defaults: &TlsProtocols) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let min = p.min.or(defaults.min).unwrap_or(TlsVersion::Tls12);
    let max = p.max.or(defaults.max).unwrap_or(TlsVersion::Tls13);
    let force = p.force.or(defaults.force);
    let allowed = |v: TlsVersion| v >= min && v <= max && !p.disabled.contains(&v) && !defaults.disabled.contains(&v) && force.is_none_or(|f| f == v);
    let mut out = Vec::new();
    if allowed(TlsVersion::Tls13) {
        out.push(&rustls::version::TLS13);
    }
    if allowed(TlsVersion::Tls12) {
        out.push(&rustls::version::TLS12);
    }
    if out.is_empty() {
        return Err("these settings allow no protocol version sluiced supports (only TLSv1.2 and TLSv1.3 are; SSLv3, TLSv1.0 and TLSv1.1 are not)".into());
    }
    Ok(out)
}

/// OpenSSL's name of a cipher suite, as `ssl_fc_cipher` and `%sslc` show it.
pub fn openssl_name(s: rustls::CipherSuite) -> &'static str {
    use rustls::CipherSuite as C;
    match s {
        C::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        C::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        C::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "UNKNOWN",
    }
}

/// The OpenSSL aliases a TLS 1.2 suite belongs to.
fn tls12_matches(name: &str, alias: &str) -> bool {
    if alias == name {
        return true;
    }
    let ecdsa = name.contains("-ECDSA-");
    let (aes128, aes256, chacha) = (name.contains("AES128"), name.contains("AES256"), name.contains("CHACHA20"));
    match alias {
        "ALL" | "DEFAULT" | "HIGH" | "ECDHE" | "EECDH" | "kECDHE" | "kEECDH" | "AEAD" | "TLSv1.2" | "FIPS" | "SSLv3" | "COMPLEMENTOFALL" => {
            alias != "FIPS" || !chacha
        }
        "ECDSA" | "aECDSA" => ecdsa,
        "RSA" | "aRSA" => !ecdsa,
        "AES" | "AESGCM" => aes128 || aes256,
        "AES128" => aes128,
        "AES256" => aes256,
        "CHACHA20" => chacha,
        "SHA256" => aes128 || chacha,
        "SHA384" => aes256,
        _ => false,
    }
}

/// Applies an OpenSSL cipher list (`ciphers`) to rustls' TLS 1.2 suites: `:`, `,` or space
/// separated elements, each a suite name or `+`-joined aliases, prefixed by `!` (remove for good),
/// `-` (remove) or `+` (move to the end). Names of suites rustls does not implement (DHE, CBC,
/// RSA key exchange...) select nothing, as OpenSSL ignores unknown names; the list fails only
/// when it selects nothing at all.
pub fn select_tls12(spec: &str, all: &[SupportedCipherSuite]) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    let mut banned: Vec<SupportedCipherSuite> = Vec::new();
    for elem in spec.split([':', ',', ' ']).filter(|e| !e.is_empty()) {
        if elem.starts_with('@') {
            continue;
        }
        let (op, body) = match elem.as_bytes()[0] {
            b'!' | b'-' | b'+' => (elem.as_bytes()[0], &elem[1..]),
            _ => (0, elem),
        };
        let matching: Vec<SupportedCipherSuite> = all.iter().copied().filter(|s| body.split('+').all(|a| tls12_matches(openssl_name(s.suite()), a))).collect();
        let same = |a: &SupportedCipherSuite, b: &SupportedCipherSuite| a.suite() == b.suite();
        match op {
            b'!' => {
                chosen.retain(|c| !matching.iter().any(|m| same(c, m)));
                banned.extend(matching);
            }
            b'-' => chosen.retain(|c| !matching.iter().any(|m| same(c, m))),
            b'+' => {
                let (moved, kept): (Vec<_>, Vec<_>) = chosen.iter().partition(|c| matching.iter().any(|m| same(c, m)));
                chosen = kept.into_iter().chain(moved).collect();
            }
            _ => {
                for m in matching {
                    if !chosen.iter().any(|c| same(c, &m)) && !banned.iter().any(|b| same(b, &m)) {
                        chosen.push(m);
                    }
                }
            }
        }
    }
    if chosen.is_empty() {
        let offered: Vec<&str> = all.iter().map(|s| openssl_name(s.suite())).collect();
        return Err(format!("cipher list '{spec}' selects no cipher sluiced supports for TLSv1.2 (it offers {})", offered.join(":")));
    }
    Ok(chosen)
}

/// Applies a TLS 1.3 `ciphersuites` list (colon separated names). The CCM suites OpenSSL knows
/// are skipped (rustls has none); an unknown name is an error.
pub fn select_tls13(spec: &str, all: &[SupportedCipherSuite]) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    for name in spec.split(':').filter(|e| !e.is_empty()) {
        match all.iter().find(|s| openssl_name(s.suite()) == name) {
            Some(s) if !out.iter().any(|o| o.suite() == s.suite()) => out.push(*s),
            Some(_) => {}
            None if matches!(name, "TLS_AES_128_CCM_SHA256" | "TLS_AES_128_CCM_8_SHA256") => {}
            None => return Err(format!("unknown TLSv1.3 cipher suite '{name}' in '{spec}'")),
        }
    }
    if out.is_empty() {
        return Err(format!(
            "ciphersuites '{spec}' selects no suite sluiced supports (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)"
        ));
    }
    Ok(out)
}

/// Maps `curves`/`ecdhe` names to rustls' key exchange groups; names of groups rustls lacks are
/// skipped, and the list fails when it selects none.
fn select_groups(spec: &str, all: &[&'static dyn rustls::crypto::SupportedKxGroup]) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, String> {
    use rustls::NamedGroup as G;
    let mut out: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
    for name in spec.split(':').filter(|e| !e.is_empty()) {
        let want = match name {
            "X25519" | "x25519" => Some(G::X25519),
            "P-256" | "prime256v1" | "secp256r1" => Some(G::secp256r1),
            "P-384" | "secp384r1" => Some(G::secp384r1),
            _ => None,
        };
        if let Some(g) = want.and_then(|w| all.iter().find(|g| g.name() == w))
            && !out.iter().any(|o| o.name() == g.name())
        {
            out.push(*g);
        }
    }
    if out.is_empty() {
        return Err(format!("curves '{spec}' names no group sluiced supports (X25519, P-256, P-384)"));
    }
    Ok(out)
}

/// The crypto provider with the suites and groups the settings choose.
pub fn provider(
    versions: &[&'static SupportedProtocolVersion],
    ciphers: Option<&str>,
    ciphersuites: Option<&str>,
    curves: Option<&str>,
) -> Result<CryptoProvider, String> {
    let base = rustls::crypto::ring::default_provider();
    let has = |v: &SupportedProtocolVersion| versions.iter().any(|x| x.version == v.version);
    let (t13, t12): (Vec<SupportedCipherSuite>, Vec<SupportedCipherSuite>) =
        base.cipher_suites.iter().partition(|s| matches!(s, SupportedCipherSuite::Tls13(_)));
    let mut suites = Vec::new();
    if has(&rustls::version::TLS13) {
        suites.extend(match ciphersuites {
            Some(s) => select_tls13(s, &t13)?,
            None => t13.clone(),
        });
    }
    if has(&rustls::version::TLS12) {
        suites.extend(match ciphers {
            Some(s) => select_tls12(s, &t12)?,
            None => t12.clone(),
        });
    }
    let kx_groups = match curves {
        Some(c) => select_groups(c, &base.kx_groups)?,
        None => base.kx_groups.clone(),
    };
    Ok(CryptoProvider { cipher_suites: suites, kx_groups, ..base })
}

pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let pem = read(path, "CA file")?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&pem) {
        let c = c.map_err(|e| format!("unable to load CA file '{}' : {e:?}", path.display()))?;
        roots.add(c).map_err(|e| format!("invalid CA certificate in '{}' : {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("no CA certificate in '{}'", path.display()));
    }
    Ok(roots)
}

pub(crate) fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let pem = read(path, "CRL file")?;
    let crls: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("unable to load CRL file '{}' : {e:?}", path.display()))?;
    if crls.is_empty() {
        return Err(format!("no CRL in '{}'", path.display()));
    }
    Ok(crls)
}

/// Compiles a bind's TLS settings; `None` without `ssl`. `http`: the frontend is in `mode http`,
/// where sluiced speaks HTTP/1 only, so `h2` is not offered with ALPN (a client that chose it
/// would speak a protocol nobody answers). Warnings (settings without effect) go to `warn`.
pub fn compile_bind(t: &BindTls, g: &GlobalTls, cache: &SessionCache, http: bool, warn: &mut dyn FnMut(String)) -> Result<Option<Arc<Acceptor>>, String> {
    if !t.ssl {
        return Ok(None);
    }
    if t.crts.is_empty() && t.crt_lists.is_empty() {
        return Err("'ssl' needs at least one 'crt' or 'crt-list'".into());
    }
    let d = &g.bind_options;
    let versions = versions(&t.protocols, &d.protocols)?;
    let curves = t.curves.as_deref().or(t.ecdhe.as_deref()).or(g.bind_curves.as_deref());
    let provider = Arc::new(provider(
        &versions,
        t.ciphers.as_deref().or(g.bind_ciphers.as_deref()),
        t.ciphersuites.as_deref().or(g.bind_ciphersuites.as_deref()),
        curves,
    )?);
    let mut certs = Vec::new();
    for c in &t.crts {
        load_crt(&g.crt_path(c), &provider, &mut certs)?;
    }
    for l in &t.crt_lists {
        load_crt_list(&g.crt_path(l), g, &provider, &mut certs)?;
    }
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions).map_err(|e| e.to_string())?;
    let verify = t.verify.unwrap_or(Verify::None);
    let mut reverify = None;
    let builder = match (verify, &t.ca_file) {
        (Verify::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err("verify is enabled but no CA file specified ('ca-file')".into()),
        (v, Some(ca)) => {
            let roots = Arc::new(load_roots(&g.ca_path(ca))?);
            let mut vb = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            if let Some(crl) = &t.crl_file {
                vb = vb.with_crls(load_crls(&g.ca_path(crl))?);
            }
            if v == Verify::Optional {
                vb = vb.allow_unauthenticated();
            }
            let strict = vb.build().map_err(|e| format!("cannot verify client certificates: {e}"))?;
            if t.ca_ignore_err.is_some() || t.crt_ignore_err.is_some() {
                reverify = Some(strict.clone());
                let ignore = [t.ca_ignore_err.clone(), t.crt_ignore_err.clone()].into_iter().flatten().collect();
                builder.with_client_cert_verifier(Arc::new(Ignoring { strict, ignore }))
            } else {
                builder.with_client_cert_verifier(strict)
            }
        }
    };
    if verify == Verify::None && t.crl_file.is_some() {
        warn("'crl-file' has no effect without 'verify optional' or 'verify required'".into());
    }
    if t.allow_0rtt {
        warn("'allow-0rtt' is ignored: sluiced never accepts TLS 1.3 early data".into());
    }
    let store = Arc::new(CertStore::new(certs, t.strict_sni));
    let mut cfg = builder.with_cert_resolver(store.clone());
    cfg.ignore_client_order = !(t.prefer_client_ciphers || d.prefer_client_ciphers);
    let mut alpn: Vec<&String> = t.alpn.iter().flatten().collect();
    if http && alpn.iter().any(|p| *p == "h2") {
        warn("'alpn h2' is not offered: sluiced serves HTTP/1.1 only in mode http for now".into());
        alpn.retain(|p| *p != "h2");
    }
    cfg.alpn_protocols = alpn.into_iter().map(|p| p.as_bytes().to_vec()).collect();
    cfg.session_storage = cache.clone();
    if !(t.no_tls_tickets || d.no_tls_tickets) {
        cfg.ticketer = match &t.tls_ticket_keys {
            Some(f) => Arc::new(super::tickets::FileTicketer::load(f)?),
            None => rustls::crypto::ring::Ticketer::new().map_err(|e| format!("cannot create session ticket keys: {e}"))?,
        };
    }
    cfg.max_early_data_size = 0;
    cfg.max_fragment_size = g.maxrecord.filter(|&n| n > 0).map(|n| (n as usize).max(32));
    Ok(Some(Arc::new(Acceptor { config: Arc::new(cfg), store, provider, reverify })))
}

/// OpenSSL's verification error id and name for a rustls verification error (1, unspecified,
/// for what has no counterpart).
pub fn x509_error(e: &rustls::Error) -> (i64, &'static str) {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => (10, "X509_V_ERR_CERT_HAS_EXPIRED"),
            C::NotValidYet | C::NotValidYetContext { .. } => (9, "X509_V_ERR_CERT_NOT_YET_VALID"),
            C::Revoked => (23, "X509_V_ERR_CERT_REVOKED"),
            C::UnknownIssuer => (20, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
            C::BadSignature => (7, "X509_V_ERR_CERT_SIGNATURE_FAILURE"),
            C::UnhandledCriticalExtension => (34, "X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION"),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => (26, "X509_V_ERR_INVALID_PURPOSE"),
            C::UnknownRevocationStatus => (3, "X509_V_ERR_UNABLE_TO_GET_CRL"),
            C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => (12, "X509_V_ERR_CRL_HAS_EXPIRED"),
            _ => (1, "X509_V_ERR_UNSPECIFIED"),
        },
        _ => (1, "X509_V_ERR_UNSPECIFIED"),
    }
}

/// A client certificate verifier that lets through the errors `ca-ignore-err`/`crt-ignore-err`
/// name. rustls does not say at which depth of the chain an error is, so either list applies to
/// any error.
#[derive(Debug)]
struct Ignoring {
    strict: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    ignore: Vec<IgnoreErrors>,
}

impl rustls::server::danger::ClientCertVerifier for Ignoring {
    fn offer_client_auth(&self) -> bool {
        self.strict.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.strict.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.strict.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        match self.strict.verify_client_cert(end_entity, intermediates, now) {
            Err(e) => {
                let (id, name) = x509_error(&e);
                let ignored = self.ignore.iter().any(|i| match i {
                    IgnoreErrors::All => true,
                    IgnoreErrors::Codes(c) => c.iter().any(|c| c == name || c.parse::<i64>() == Ok(id)),
                });
                if ignored { Ok(rustls::server::danger::ClientCertVerified::assertion()) } else { Err(e) }
            }
            ok => ok,
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.strict.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t12() -> Vec<SupportedCipherSuite> {
        rustls::crypto::ring::default_provider().cipher_suites.into_iter().filter(|s| matches!(s, SupportedCipherSuite::Tls12(_))).collect()
    }

    fn names(v: &[SupportedCipherSuite]) -> Vec<&'static str> {
        v.iter().map(|s| openssl_name(s.suite())).collect()
    }

    #[test]
    fn cipher_list_keeps_order_and_skips_what_rustls_lacks() {
        let v = select_tls12("ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256", &t12()).unwrap();
        assert_eq!(names(&v), ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    }

    #[test]
    fn cipher_aliases_and_removal() {
        let v = select_tls12("ECDHE+AESGCM:!aRSA", &t12()).unwrap();
        assert_eq!(names(&v), ["ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
        let v = select_tls12("HIGH:!CHACHA20:+AES256", &t12()).unwrap();
        assert!(names(&v).iter().all(|n| !n.contains("CHACHA")));
        assert!(names(&v).last().unwrap().contains("AES256"));
    }

    #[test]
    fn cipher_list_that_selects_nothing_is_an_error() {
        let e = select_tls12("AES128-SHA:DES-CBC3-SHA", &t12()).unwrap_err();
        assert!(e.contains("selects no cipher"), "{e}");
    }

    #[test]
    fn tls13_suites_unknown_name_is_an_error() {
        let all: Vec<_> = rustls::crypto::ring::default_provider().cipher_suites.into_iter().filter(|s| matches!(s, SupportedCipherSuite::Tls13(_))).collect();
        assert_eq!(names(&select_tls13("TLS_AES_128_CCM_SHA256:TLS_CHACHA20_POLY1305_SHA256", &all).unwrap()), ["TLS_CHACHA20_POLY1305_SHA256"]);
        assert!(select_tls13("TLS_FOO", &all).unwrap_err().contains("unknown"));
    }

    #[test]
    fn versions_follow_min_max_and_refuse_old_only() {
        let p = TlsProtocols { min: Some(TlsVersion::Tls13), ..Default::default() };
        assert_eq!(versions(&p, &TlsProtocols::default()).unwrap().len(), 1);
        let p = TlsProtocols { force: Some(TlsVersion::Tls11), ..Default::default() };
        assert!(versions(&p, &TlsProtocols::default()).unwrap_err().contains("only TLSv1.2 and TLSv1.3"));
        let d = TlsProtocols { disabled: vec![TlsVersion::Tls12], ..Default::default() };
        assert_eq!(versions(&TlsProtocols::default(), &d).unwrap().len(), 1);
    }
}
