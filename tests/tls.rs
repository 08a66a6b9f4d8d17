//! TLS termination: certificates made with the `openssl` CLI in each test, clients that are real
//! TLS stacks (rustls in the test, `curl`, `openssl s_client`), the real daemon in between.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use support::*;

/// A test PKI: a CA and the certificates it signs, as PEM files in a directory of the test's own.
struct Pki {
    dir: PathBuf,
    ca: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `openssl req -newkey` arguments for a key type.
fn newkey(kind: &str) -> Vec<&'static str> {
    match kind {
        "rsa" => vec!["-newkey", "rsa:2048"],
        "ed25519" => vec!["-newkey", "ed25519"],
        _ => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    }
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = temp_dir(tag);
        Pki::with_ca(dir, "ca")
    }

    /// Another CA in the same directory.
    fn with_ca(dir: PathBuf, ca: &str) -> Pki {
        let mut args = vec!["req", "-x509", "-nodes", "-days", "30", "-subj"];
        let subj = format!("/O=Sluiced Tests/CN=Test CA {ca}");
        args.push(&subj);
        args.extend(newkey("ec"));
        let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
        args.extend(["-keyout", &key, "-out", &pem]);
        openssl(&dir, &args);
        Pki { dir, ca: ca.to_string() }
    }

    fn ca_pem(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.ca))
    }

    /// A certificate for `cn` with the DNS names `sans` (server) or for client authentication,
    /// signed by the CA; returns the path of the bundle (chain and key).
    fn issue(&self, name: &str, kind: &str, subj: &str, sans: &[&str], client: bool) -> PathBuf {
        let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
        let mut args = vec!["req", "-new", "-nodes", "-subj", subj, "-keyout", &key, "-out", &csr];
        args.extend(newkey(kind));
        openssl(&self.dir, &args);
        let ext = self.dir.join(format!("{name}.ext"));
        let mut text = String::from(if client { "extendedKeyUsage=clientAuth\n" } else { "extendedKeyUsage=serverAuth\n" });
        if !sans.is_empty() {
            text.push_str(&format!("subjectAltName={}\n", sans.iter().map(|s| format!("DNS:{s}")).collect::<Vec<_>>().join(",")));
        }
        std::fs::write(&ext, text).unwrap();
        let (ca_pem, ca_key) = (format!("{}.pem", self.ca), format!("{}.key", self.ca));
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "30",
                "-out",
                &crt,
                "-extfile",
                ext.to_str().unwrap(),
            ],
        );
        let bundle = self.dir.join(format!("{name}.pem"));
        let mut b = std::fs::read(self.dir.join(&crt)).unwrap();
        b.extend(std::fs::read(self.dir.join(&key)).unwrap());
        std::fs::write(&bundle, b).unwrap();
        bundle
    }
}

impl Pki {
    /// Revokes the certificate `name` and writes the CA's CRL; returns its path.
    fn revoke(&self, name: &str) -> PathBuf {
        std::fs::write(self.dir.join("index.txt"), "").unwrap();
        std::fs::write(self.dir.join("crlnumber"), "01\n").unwrap();
        let cnf = format!(
            "[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\ncertificate = {0}.pem\nprivate_key = {0}.key\n",
            self.ca
        );
        std::fs::write(self.dir.join("ca.cnf"), cnf).unwrap();
        openssl(&self.dir, &["ca", "-config", "ca.cnf", "-revoke", &format!("{name}.crt")]);
        openssl(&self.dir, &["ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem"]);
        self.dir.join("crl.pem")
    }
}

/// The first certificate of a PEM file, DER.
fn cert_der(pem: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(pem).unwrap().next().unwrap().unwrap().as_ref().to_vec()
}

/// Accepts any server certificate: for tests that look at which one was sent.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A rustls client: verifying against `ca` (or accepting anything), offering `alpn`, presenting
/// the bundle `client_cert`.
fn client(ca: Option<&Path>, alpn: &[&str], client_cert: Option<&Path>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let b = match ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            b.with_root_certificates(roots)
        }
        None => b.dangerous().with_custom_certificate_verifier(Arc::new(AnyCert(provider))),
    };
    let mut cfg = match client_cert {
        Some(p) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(p).unwrap().map(|c| c.unwrap()).collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(p).unwrap()).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    Arc::new(cfg)
}

/// What one TLS exchange saw.
struct Exchange {
    peer_cert: Vec<u8>,
    alpn: Option<Vec<u8>>,
    /// Everything read after sending the request, until the server closed.
    reply: String,
}

/// Connects with SNI `sni`, sends `request` and reads until the server closes. `Err` when the
/// handshake fails.
fn exchange(port: u16, sni: &str, cfg: Arc<rustls::ClientConfig>, request: &[u8]) -> Result<Exchange, String> {
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    s.write_all(request).map_err(|e| e.to_string())?;
    s.flush().map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) if reply.is_empty() => return Err(e.to_string()),
            Err(_) => break,
        }
    }
    let peer_cert = s.conn.peer_certificates().and_then(|p| p.first()).map(|c| c.as_ref().to_vec()).unwrap_or_default();
    Ok(Exchange { peer_cert, alpn: s.conn.alpn_protocol().map(<[u8]>::to_vec), reply: String::from_utf8_lossy(&reply).into_owned() })
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn defaults(mode: &str) -> String {
    format!("global\n  nbthread 1\ndefaults\n  mode {mode}\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n")
}

/// An HTTP frontend answering with the TLS facts of the connection.
fn facts_cfg(port: u16, bind_opts: &str) -> String {
    format!(
        "{}frontend f\n  bind 127.0.0.1:{port} {bind_opts}\n  http-request return status 200 content-type text/plain lf-string \"ssl=%[ssl_fc] sni=%[ssl_fc_sni] proto=%[ssl_fc_protocol] cipher=%[ssl_fc_cipher] alpn=%[ssl_fc_alpn] used=%[ssl_c_used] verify=%[ssl_c_verify] s_dn=%[ssl_c_s_dn] i_dn=%[ssl_c_i_dn] cn=%[ssl_c_s_dn(CN)] sha1=%[ssl_c_sha1,hex] serial=%[ssl_c_serial,hex] keysize=%[ssl_fc_use_keysize]\"\n",
        defaults("http")
    )
}

#[test]
fn sni_picks_the_exact_name_the_wildcard_and_the_first_certificate_as_default() {
    let pki = Pki::new("sni");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let certs = pki.dir.join("certs");
    std::fs::create_dir(&certs).unwrap();
    let b = pki.issue("b", "rsa", "/CN=b.example.com", &["b.example.com"], false);
    let c = pki.issue("c", "ed25519", "/CN=c", &["*.c.example.com"], false);
    std::fs::copy(&b, certs.join("b.pem")).unwrap();
    std::fs::copy(&c, certs.join("c.pem")).unwrap();
    let port = free_port();
    let _s = Sluiced::start(&facts_cfg(port, &format!("ssl crt {} crt {}/", a.display(), certs.display())), &[port]);
    let any = client(None, &[], None);
    for (sni, want) in [("a.example.com", &a), ("B.Example.com", &b), ("x.c.example.com", &c), ("c.example.com", &a), ("other.example.org", &a)] {
        let e = exchange(port, sni, any.clone(), GET).unwrap();
        assert_eq!(e.peer_cert, cert_der(want), "SNI {sni} got another certificate");
        assert!(e.reply.contains(&format!("sni={} ", sni.to_ascii_lowercase())), "{}", e.reply);
    }
    // A verifying client accepts each certificate for its own name.
    let verifying = client(Some(&pki.ca_pem()), &[], None);
    for sni in ["a.example.com", "b.example.com", "y.c.example.com"] {
        let e = exchange(port, sni, verifying.clone(), GET).unwrap();
        assert!(e.reply.starts_with("HTTP/1.1 200"), "{}", e.reply);
        assert!(e.reply.contains("ssl=1 ") && e.reply.contains("proto=TLSv1.3"), "{}", e.reply);
    }
}

#[test]
fn strict_sni_refuses_a_name_no_certificate_has() {
    let pki = Pki::new("strict");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let port = free_port();
    let _s = Sluiced::start(&facts_cfg(port, &format!("ssl crt {} strict-sni", a.display())), &[port]);
    assert!(exchange(port, "a.example.com", client(None, &[], None), GET).is_ok());
    assert!(exchange(port, "b.example.com", client(None, &[], None), GET).is_err());
}

#[test]
fn crt_list_names_override_the_certificate_names() {
    let pki = Pki::new("crtlist");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let b = pki.issue("b", "ec", "/CN=b.example.com", &["b.example.com"], false);
    let list = pki.dir.join("list.txt");
    std::fs::write(&list, format!("# default first\n{}\n{} [] www.example.net *.example.io !b.example.com\n", a.display(), b.display())).unwrap();
    let port = free_port();
    let _s = Sluiced::start(&facts_cfg(port, &format!("ssl crt-list {}", list.display())), &[port]);
    let any = client(None, &[], None);
    for (sni, want) in [("www.example.net", &b), ("z.example.io", &b), ("b.example.com", &a), ("a.example.com", &a)] {
        assert_eq!(exchange(port, sni, any.clone(), GET).unwrap().peer_cert, cert_der(want), "SNI {sni}");
    }
}

#[test]
fn alpn_is_negotiated_and_h2_is_not_offered_in_mode_http() {
    let pki = Pki::new("alpn");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let port = free_port();
    let _s = Sluiced::start(&facts_cfg(port, &format!("ssl crt {} alpn h2,http/1.1", a.display())), &[port]);
    let e = exchange(port, "a.example.com", client(None, &["h2", "http/1.1"], None), GET).unwrap();
    assert_eq!(e.alpn.as_deref(), Some(b"http/1.1".as_slice()));
    assert!(e.reply.contains("alpn=http/1.1 "), "{}", e.reply);
    // In mode tcp the list is offered as written.
    let echo = Backend::echo();
    let tport = free_port();
    let cfg = format!(
        "{}frontend t\n  bind 127.0.0.1:{tport} ssl crt {} alpn h2,foo\n  default_backend b\nbackend b\n  server s {}\n",
        defaults("tcp"),
        a.display(),
        echo.addr()
    );
    let _t = Sluiced::start(&cfg, &[tport]);
    let e = exchange(tport, "a.example.com", client(None, &["foo"], None), b"ping").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.alpn.as_deref(), Some(b"foo".as_slice()));
}

#[test]
fn client_certificates_required_optional_and_refused() {
    let pki = Pki::new("mtls");
    let srv = pki.issue("srv", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let good = pki.issue("alice", "ec", "/C=FR/O=Example/OU=ops/CN=alice", &[], true);
    let rogue_ca = Pki::with_ca(pki.dir.clone(), "rogue");
    let bad = rogue_ca.issue("mallory", "ec", "/CN=mallory", &[], true);
    let ca = pki.ca_pem();
    let (req_port, opt_port) = (free_port(), free_port());
    let cfg = facts_cfg(req_port, &format!("ssl crt {} ca-file {} verify required", srv.display(), ca.display()))
        + &format!("  bind 127.0.0.1:{opt_port} ssl crt {} ca-file {} verify optional\n", srv.display(), ca.display());
    let _s = Sluiced::start(&cfg, &[req_port, opt_port]);
    let e = exchange(req_port, "a.example.com", client(None, &[], Some(&good)), GET).unwrap();
    assert!(e.reply.contains("used=1 verify=0 "), "{}", e.reply);
    assert!(e.reply.contains("s_dn=/C=FR/O=Example/OU=ops/CN=alice "), "{}", e.reply);
    assert!(e.reply.contains("i_dn=/O=Sluiced Tests/CN=Test CA ca "), "{}", e.reply);
    assert!(e.reply.contains("cn=alice "), "{}", e.reply);
    let sha1 = Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha1", "-in"]).arg(&good).output().unwrap();
    let sha1 = String::from_utf8_lossy(&sha1.stdout).trim().rsplit('=').next().unwrap().replace(':', "");
    assert!(e.reply.contains(&format!("sha1={sha1} ")), "want {sha1}: {}", e.reply);
    let serial = Command::new("openssl").args(["x509", "-noout", "-serial", "-in"]).arg(&good).output().unwrap();
    let serial = String::from_utf8_lossy(&serial.stdout).trim().trim_start_matches("serial=").to_string();
    assert!(e.reply.contains(&format!("serial={serial} keysize=256")), "want {serial}: {}", e.reply);
    // Without a certificate, or with one of another CA: refused.
    assert!(exchange(req_port, "a.example.com", client(None, &[], None), GET).is_err());
    assert!(exchange(req_port, "a.example.com", client(None, &[], Some(&bad)), GET).is_err());
    // Optional: without one the connection is served; a bad one is still refused.
    let e = exchange(opt_port, "a.example.com", client(None, &[], None), GET).unwrap();
    assert!(e.reply.contains("used=0 ") && e.reply.contains("s_dn=- "), "{}", e.reply);
    assert!(exchange(opt_port, "a.example.com", client(None, &[], Some(&bad)), GET).is_err());
    assert!(exchange(opt_port, "a.example.com", client(None, &[], Some(&good)), GET).unwrap().reply.contains("cn=alice "));
}

#[test]
fn a_revoked_client_certificate_is_refused_with_crl_file() {
    let pki = Pki::new("crl");
    let srv = pki.issue("srv", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let alice = pki.issue("alice", "ec", "/CN=alice", &[], true);
    let bob = pki.issue("bob", "ec", "/CN=bob", &[], true);
    let crl = pki.revoke("bob");
    let port = free_port();
    let _s = Sluiced::start(
        &facts_cfg(port, &format!("ssl crt {} ca-file {} crl-file {} verify required", srv.display(), pki.ca_pem().display(), crl.display())),
        &[port],
    );
    assert!(exchange(port, "a.example.com", client(None, &[], Some(&alice)), GET).unwrap().reply.contains("cn=alice "));
    assert!(exchange(port, "a.example.com", client(None, &[], Some(&bob)), GET).is_err(), "bob's revoked certificate was accepted");
}

/// The first line the daemon writes on its standard output, within 5 s.
fn stdout_line(s: &mut Sluiced) -> String {
    let mut out = s.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        while !got.ends_with(b"\n") {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(got);
    });
    String::from_utf8_lossy(&rx.recv_timeout(Duration::from_secs(5)).expect("a line on stdout")).into_owned()
}

#[test]
fn option_httpslog_logs_the_tls_version_cipher_and_sni() {
    let pki = Pki::new("httpslog");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let port = free_port();
    let cfg = format!(
        "{}frontend fe\n  bind 127.0.0.1:{port} ssl crt {}\n  log stdout format raw local0\n  option httpslog\n  http-request return status 200\n",
        defaults("http"),
        a.display()
    );
    let mut s = Sluiced::start(&cfg, &[port]);
    exchange(port, "a.example.com", client(None, &[], None), GET).unwrap();
    let line = stdout_line(&mut s);
    // `%ft` ends with `~` on TLS; the tail is fc_err/ssl_fc_err/ssl_c_err/ssl_c_ca_err/resumed,
    // then SNI/version/cipher.
    assert!(line.contains("] fe~ "), "{line}");
    assert!(line.trim_end().ends_with("/0/0/0 a.example.com/TLSv1.3/TLS_AES_256_GCM_SHA384"), "{line}");
}

#[test]
fn curl_gets_https_and_plain_http_is_redirected_with_ssl_fc() {
    let pki = Pki::new("curl");
    let a = pki.issue("a", "rsa", "/CN=a.example.com", &["a.example.com"], false);
    let (plain, tls) = (free_port(), free_port());
    let cfg = format!(
        "{}frontend f\n  bind 127.0.0.1:{plain}\n  bind 127.0.0.1:{tls} ssl crt {}\n  http-request redirect scheme https unless {{ ssl_fc }}\n  http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}\n  http-request return status 200 content-type text/plain lf-string \"proto=%[req.hdr(x-forwarded-proto)] %[ssl_fc_protocol]\"\n",
        defaults("http"),
        a.display()
    );
    let _s = Sluiced::start(&cfg, &[plain, tls]);
    let out = Command::new("curl")
        .args(["-s", "-i", "--cacert"])
        .arg(pki.ca_pem())
        .args(["--resolve", &format!("a.example.com:{tls}:127.0.0.1"), &format!("https://a.example.com:{tls}/p")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("HTTP/1.1 200") && text.contains("proto=https TLSv1.3"), "{text}");
    let (status, head, _) = http_request(plain, b"GET /p?q=1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
    assert_eq!(status, 302, "{head}");
    assert!(head.to_ascii_lowercase().contains("location: https://a.example.com/p?q=1"), "{head}");
}

#[test]
fn tcp_mode_terminates_tls_in_front_of_a_plain_service() {
    let pki = Pki::new("tcp");
    let a = pki.issue("a", "ec", "/CN=db.example.com", &["db.example.com"], false);
    let echo = Backend::echo();
    let port = free_port();
    let cfg = format!(
        "{}frontend t\n  bind 127.0.0.1:{port} ssl crt {}\n  tcp-request content reject if !{{ ssl_fc }}\n  default_backend b\nbackend b\n  server s {}\n",
        defaults("tcp"),
        a.display(),
        echo.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    // A megabyte each way through the TLS side and the plain side.
    let name = ServerName::try_from("db.example.com").unwrap();
    let conn = rustls::ClientConnection::new(client(Some(&pki.ca_pem()), &[], None), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    let data = random_bytes(1 << 20, 7);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut sent = 0;
    for chunk in data.chunks(64 * 1024) {
        s.write_all(chunk).unwrap();
        s.flush().unwrap();
        sent += chunk.len();
        while got.len() < sent {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the echoed bytes differ");
}

/// Open descriptors of a process.
fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// CPU time used by a process so far, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Waits until the connection is closed by the peer; panics after 5 s.
fn closed_by_peer(mut c: TcpStream) {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the connection stayed open: {e}"),
        }
    }
}

/// The first bytes of a real ClientHello (from a rustls client writing into a buffer).
fn client_hello() -> Vec<u8> {
    let mut c = rustls::ClientConnection::new(client(None, &[], None), ServerName::try_from("a.example.com").unwrap()).unwrap();
    let mut out = Vec::new();
    c.write_tls(&mut out).unwrap();
    out
}

#[test]
fn bad_handshakes_close_the_connection_without_spinning_or_leaking() {
    let pki = Pki::new("bad");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let port = free_port();
    let s = Sluiced::start(&facts_cfg(port, &format!("ssl crt {}", a.display())), &[port]);
    // Warm up (the first handshake allocates what later ones reuse).
    exchange(port, "a.example.com", client(None, &[], None), GET).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let fds_before = fd_count(s.pid());
    let hello = client_hello();
    for round in 0..20 {
        // Garbage instead of a handshake.
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&random_bytes(300, round)).unwrap();
        closed_by_peer(c);
        // A ClientHello, then a close of the sending side.
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&hello).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        closed_by_peer(c);
        // A record cut short, then a close.
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&hello[..hello.len() / 2]).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        closed_by_peer(c);
    }
    // A client that sends half a ClientHello and waits: closed within `timeout client`, and the
    // worker does not spin meanwhile.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(&hello[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = cpu_ticks(s.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(s.pid()) - t0;
    assert!(used < 20, "the process used {used} ticks in a second while idle");
    let started = Instant::now();
    closed_by_peer(idle);
    assert!(started.elapsed() < Duration::from_secs(6));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fd_count(s.pid()), fds_before, "descriptors leaked");
    // Still serving.
    assert!(exchange(port, "a.example.com", client(None, &[], None), GET).unwrap().reply.starts_with("HTTP/1.1 200"));
}

/// Runs `openssl s_client` once, saving or reusing a session; returns its output.
fn s_client(port: u16, extra: &[&str]) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "a.example.com"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The request asks the server to close after answering: s_client then exits on its own,
    // having read the session tickets (closing its input early could lose them).
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(GET).unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    drop(stdin);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    child.wait().unwrap();
    out + &err
}

#[test]
fn sessions_are_resumed_with_tickets_and_with_the_cache() {
    let pki = Pki::new("resume");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let (tickets, cache) = (free_port(), free_port());
    let cfg = facts_cfg(tickets, &format!("ssl crt {}", a.display())) + &format!("  bind 127.0.0.1:{cache} ssl crt {} no-tls-tickets\n", a.display());
    let _s = Sluiced::start(&cfg, &[tickets, cache]);
    for (port, version) in [(tickets, "-tls1_3"), (tickets, "-tls1_2"), (cache, "-tls1_2"), (cache, "-tls1_3")] {
        let sess = pki.dir.join(format!("sess-{port}{version}.pem"));
        let first = s_client(port, &[version, "-sess_out", sess.to_str().unwrap()]);
        assert!(first.contains("New, TLSv1."), "{version} first handshake: {first}");
        let second = s_client(port, &[version, "-sess_in", sess.to_str().unwrap()]);
        assert!(second.contains("Reused, TLSv1."), "{version} on port {port}: the second handshake was not resumed:\n{second}");
    }
}

/// `sluiced -c` on a configuration; returns (success, stderr).
fn check(cfg: &str) -> (bool, String) {
    let dir = temp_dir("check");
    let f = dir.join("t.cfg");
    std::fs::write(&f, cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-c", "-f", f.to_str().unwrap()]).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn configuration_errors_name_the_bind_line() {
    let pki = Pki::new("cfgerr");
    let a = pki.issue("a", "ec", "/CN=a", &["a"], false);
    let b = pki.issue("b", "ec", "/CN=b", &["b"], false);
    // A certificate with the key of another one.
    let mismatched = pki.dir.join("mismatch.pem");
    let mut m = std::fs::read(pki.dir.join("a.crt")).unwrap();
    m.extend(std::fs::read(pki.dir.join("b.key")).unwrap());
    std::fs::write(&mismatched, m).unwrap();
    let _ = b;
    let cases = [
        (format!("ssl crt {}", mismatched.display()), "inconsistencies between private key and certificate"),
        (format!("ssl crt {}", pki.dir.join("a.crt").display()), "no private key"),
        (format!("ssl crt {} ssl-max-ver TLSv1.1", a.display()), "only TLSv1.2 and TLSv1.3"),
        (format!("ssl crt {} ciphers DES-CBC3-SHA:RC4-SHA", a.display()), "selects no cipher"),
        (format!("ssl crt {} verify required", a.display()), "no CA file"),
        ("ssl".to_string(), "needs at least one 'crt'"),
    ];
    for (opts, want) in cases {
        let (ok, err) = check(&format!("{}frontend f\n  bind 127.0.0.1:1 {opts}\n  http-request return status 200\n", defaults("http")));
        assert!(!ok, "'{opts}' was accepted");
        assert!(err.contains("t.cfg:9] : 'bind' : ") && err.contains(want), "'{opts}': {err}");
    }
    let (ok, err) = check(&format!(
        "{}frontend f\n  bind 127.0.0.1:1 ssl crt {} ciphers ECDHE+AESGCM:DHE-RSA-AES128-GCM-SHA256 ciphersuites TLS_AES_128_GCM_SHA256 curves X25519:P-256\n  http-request return status 200\n",
        defaults("http"),
        a.display()
    ));
    assert!(ok, "{err}");
}

/// What a TLS backend saw of one connection.
#[derive(Debug, Clone)]
struct BackendSeen {
    sni: Option<String>,
    resumed: bool,
    client_cert: bool,
}

/// An HTTPS server with the bundle `cert`, optionally requiring client certificates of `client_ca`;
/// answers each request (keep-alive) with `sni=<name>` and records every connection.
fn tls_backend(cert: &Path, client_ca: Option<&Path>) -> (Backend, Arc<std::sync::Mutex<Vec<BackendSeen>>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(cert).unwrap();
    let b = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let b = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            b.with_client_cert_verifier(rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap())
        }
        None => b.with_no_client_auth(),
    };
    let cfg = Arc::new(b.with_single_cert(chain, key).unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let be = Backend::start(move |sock| {
        let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
        let mut s = rustls::StreamOwned::new(conn, sock);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut recorded = false;
        loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if !recorded {
                recorded = true;
                seen2.lock().unwrap().push(BackendSeen {
                    sni: s.conn.server_name().map(str::to_owned),
                    resumed: s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
                    client_cert: s.conn.peer_certificates().is_some(),
                });
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let close = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase().contains("connection: close");
                buf.drain(..end + 4);
                let body = format!("sni={}", s.conn.server_name().unwrap_or("-"));
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                if s.write_all(resp.as_bytes()).and_then(|_| s.flush()).is_err() || close {
                    s.conn.send_close_notify();
                    let _ = s.flush();
                    return;
                }
            }
        }
    });
    (be, seen)
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let (status, _, body) = http_request(port, format!("GET {path} HTTP/1.1\r\nHost: api.internal\r\nConnection: close\r\n\r\n").as_bytes());
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn servers_behind_tls_are_verified_or_not_as_configured() {
    let pki = Pki::new("srv");
    let api = pki.issue("api", "ec", "/CN=api.internal", &["api.internal"], false);
    let rogue = Pki::with_ca(pki.dir.clone(), "rogue");
    let fake = rogue.issue("fake", "ec", "/CN=api.internal", &["api.internal"], false);
    let (good_be, good_seen) = tls_backend(&api, None);
    let (fake_be, _) = tls_backend(&fake, None);
    let ca = pki.ca_pem();
    let port = free_port();
    let lines = [
        ("/sni", format!("server s {} ssl verify required ca-file {} sni str(api.internal)", good_be.addr(), ca.display())),
        ("/hostsni", format!("server s {} ssl verify required ca-file {} sni req.hdr(host)", good_be.addr(), ca.display())),
        ("/chain", format!("server s {} ssl verify required ca-file {}", good_be.addr(), ca.display())),
        ("/wronghost", format!("server s {} ssl verify required ca-file {} verifyhost other.internal", good_be.addr(), ca.display())),
        ("/rogue", format!("server s {} ssl verify required ca-file {} sni str(api.internal)", fake_be.addr(), ca.display())),
        ("/none", format!("server s {} ssl verify none sni str(api.internal)", fake_be.addr())),
    ];
    let mut cfg = format!("{}  retries 0\nfrontend f\n  bind 127.0.0.1:{port}\n", defaults("http"));
    for (i, (path, _)) in lines.iter().enumerate() {
        cfg.push_str(&format!("  use_backend b{i} if {{ path {path} }}\n"));
    }
    for (i, (_, server)) in lines.iter().enumerate() {
        cfg.push_str(&format!("backend b{i}\n  {server}\n"));
    }
    let _s = Sluiced::start(&cfg, &[port]);
    assert_eq!(http_get(port, "/sni"), (200, "sni=api.internal".to_string()));
    assert_eq!(http_get(port, "/hostsni"), (200, "sni=api.internal".to_string()));
    // Without SNI or verifyhost only the chain is verified, as HAProxy does.
    assert_eq!(http_get(port, "/chain"), (200, "sni=-".to_string()));
    assert_eq!(http_get(port, "/wronghost").0, 503);
    assert_eq!(http_get(port, "/rogue").0, 503);
    assert_eq!(http_get(port, "/none"), (200, "sni=api.internal".to_string()));
    assert!(good_seen.lock().unwrap().iter().all(|s| !s.client_cert));
}

#[test]
fn server_tls_sessions_are_resumed_and_client_certificates_presented() {
    let pki = Pki::new("srvres");
    let api = pki.issue("api", "ec", "/CN=api.internal", &["api.internal"], false);
    let me = pki.issue("lb", "ec", "/CN=sluiced", &[], true);
    let (be, seen) = tls_backend(&api, Some(&pki.ca_pem()));
    let port = free_port();
    let cfg = format!(
        "{}frontend f\n  bind 127.0.0.1:{port}\n  default_backend b\nbackend b\n  http-reuse never\n  server s {} ssl verify required ca-file {} crt {} sni str(api.internal)\n",
        defaults("http"),
        be.addr(),
        pki.ca_pem().display(),
        me.display()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    for _ in 0..3 {
        assert_eq!(http_get(port, "/"), (200, "sni=api.internal".to_string()));
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|s| s.client_cert && s.sni.as_deref() == Some("api.internal")), "{seen:?}");
    assert!(!seen[0].resumed && seen[1].resumed && seen[2].resumed, "{seen:?}");
}

#[test]
fn tcp_mode_reencrypts_to_a_tls_server() {
    let pki = Pki::new("tcpre");
    let front = pki.issue("front", "ec", "/CN=db.example.com", &["db.example.com"], false);
    let api = pki.issue("api", "ec", "/CN=api.internal", &["api.internal"], false);
    let (be, _) = tls_backend(&api, None);
    let port = free_port();
    let cfg = format!(
        "{}frontend t\n  bind 127.0.0.1:{port} ssl crt {}\n  default_backend b\nbackend b\n  server s {} ssl verify required ca-file {} sni ssl_fc_sni\n",
        defaults("tcp"),
        front.display(),
        be.addr(),
        pki.ca_pem().display()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let e = exchange(port, "api.internal", client(None, &[], None), GET);
    let reply = e.map(|e| e.reply).unwrap_or_default();
    assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("sni=api.internal"), "{reply}");
}

#[test]
fn check_ssl_runs_health_checks_over_tls() {
    let pki = Pki::new("checkssl");
    let api = pki.issue("api", "ec", "/CN=api.internal", &["api.internal"], false);
    let rogue = Pki::with_ca(pki.dir.clone(), "rogue");
    let fake = rogue.issue("fake", "ec", "/CN=api.internal", &["api.internal"], false);
    let (good, good_seen) = tls_backend(&api, None);
    let (bad, _) = tls_backend(&fake, None);
    let plain = Backend::named("plain");
    let port = free_port();
    let ca = pki.ca_pem();
    let cfg = format!(
        "{}frontend f\n  bind 127.0.0.1:{port}\n  default_backend be\nbackend be\n  option httpchk GET /health\n  server good {} ssl verify required ca-file {} sni str(api.internal) check inter 100ms check-sni api.internal\n  server fake {} ssl verify required ca-file {} check inter 100ms check-sni api.internal\n  server plain {} check inter 100ms check-ssl verify none\n",
        defaults("http"),
        good.addr(),
        ca.display(),
        bad.addr(),
        ca.display(),
        plain.addr()
    );
    let mut s = Sluiced::start(&cfg, &[port]);
    std::thread::sleep(Duration::from_millis(1500));
    // Only the good server takes traffic.
    for _ in 0..6 {
        assert_eq!(http_get(port, "/"), (200, "sni=api.internal".to_string()));
    }
    s.signal("TERM");
    s.wait_exit(Duration::from_secs(5));
    let err = s.stderr();
    assert!(err.contains("Server be/fake is DOWN, reason: Layer6"), "{err}");
    assert!(err.contains("Server be/plain is DOWN, reason: Layer6"), "{err}");
    assert!(!err.contains("Server be/good is DOWN"), "{err}");
    // The checks reached the good server over TLS with their SNI.
    assert!(good_seen.lock().unwrap().len() > 6);
}

#[test]
fn accept_proxy_on_an_ssl_bind_reads_the_header_before_the_handshake() {
    let pki = Pki::new("proxyssl");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let port = free_port();
    let cfg = format!(
        "{}frontend f\n  bind 127.0.0.1:{port} accept-proxy ssl crt {}\n  http-request return status 200 content-type text/plain lf-string \"src=%[src]:%[src_port] sni=%[ssl_fc_sni]\"\n",
        defaults("http"),
        a.display()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(b"PROXY TCP4 10.1.2.3 10.0.0.1 5555 443\r\n").unwrap();
    let conn = rustls::ClientConnection::new(client(None, &[], None), ServerName::try_from("a.example.com").unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    s.write_all(GET).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains("src=10.1.2.3:5555 sni=a.example.com"), "{reply}");
    // Without the header the connection is closed.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(&client_hello()).unwrap();
    closed_by_peer(c);
}

#[test]
fn a_proxy_header_arriving_in_two_parts_is_waited_for_without_spinning() {
    // The first part is peeked and found incomplete: the wait for the rest must sleep (the
    // socket's readiness cleared), not peek again and again at the bytes already there.
    let pki = Pki::new("proxysplit");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let port = free_port();
    let cfg = format!(
        "{}frontend f\n  bind 127.0.0.1:{port} accept-proxy ssl crt {}\n  http-request return status 200 content-type text/plain lf-string \"src=%[src]\"\n",
        defaults("http"),
        a.display()
    );
    let s = Sluiced::start(&cfg, &[port]);
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(b"PROXY TCP4 10.1.2.3 10.0").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let before = cpu_ticks(s.pid());
    std::thread::sleep(Duration::from_millis(800));
    let used = cpu_ticks(s.pid()) - before;
    // A worker spinning on the socket would use about 80 ticks of the 800 ms.
    assert!(used < 30, "sluiced used {used} ticks of CPU while waiting for the rest of the header");
    sock.write_all(b".0.1 5555 443\r\n").unwrap();
    let conn = rustls::ClientConnection::new(client(None, &[], None), ServerName::try_from("a.example.com").unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(GET).unwrap();
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains("src=10.1.2.3"), "{reply}");
}

#[test]
fn show_ssl_cert_lists_the_files_and_details_one() {
    let pki = Pki::new("showcert");
    let a = pki.issue("a", "ec", "/O=Example/CN=a.example.com", &["a.example.com", "www.example.com"], false);
    let b = pki.issue("b", "rsa", "/CN=b.example.com", &["b.example.com"], false);
    let port = free_port();
    let sock = pki.dir.join("stats.sock");
    let cfg = facts_cfg(port, &format!("ssl crt {} crt {}", a.display(), b.display()))
        .replace("defaults\n", &format!("  stats socket {} level admin\ndefaults\n", sock.display()));
    let _s = Sluiced::start(&cfg, &[port]);
    let list = ask(&sock, "show ssl cert");
    assert_eq!(list, format!("# filename\n{}\n{}\n\n", a.display(), b.display()));
    let one = ask(&sock, &format!("show ssl cert {}", a.display()));
    let serial = Command::new("openssl").args(["x509", "-noout", "-serial", "-in"]).arg(&a).output().unwrap();
    let serial = String::from_utf8_lossy(&serial.stdout).trim().trim_start_matches("serial=").to_string();
    let end = Command::new("openssl").args(["x509", "-noout", "-enddate", "-in"]).arg(&a).output().unwrap();
    let end = String::from_utf8_lossy(&end.stdout).trim().trim_start_matches("notAfter=").to_string();
    assert!(one.starts_with(&format!("Filename: {}\nStatus: Used\nSerial: {serial}\n", a.display())), "{one}");
    assert!(one.contains(&format!("notAfter: {end}\n")), "want {end}: {one}");
    assert!(one.contains("Subject: /O=Example/CN=a.example.com\n") && one.contains("Issuer: /O=Sluiced Tests/CN=Test CA ca\n"), "{one}");
    assert!(one.contains("Subject Alternative Name: DNS:a.example.com, DNS:www.example.com\n"), "{one}");
    assert_eq!(ask(&sock, "show ssl cert /nonexistent.pem"), "Can't display the certificate: Not found or the certificate is a bundle!\n\n");
}

#[test]
fn large_bodies_cross_https_both_ways_on_a_kept_alive_connection() {
    let pki = Pki::new("large");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let big = random_bytes(3 << 20, 11);
    let big2 = big.clone();
    // The server answers a POST with the size of what it got, a GET with 3 MiB.
    let (be, seen) = http_backend(move |req| {
        if req.starts_with(b"POST") {
            let head_end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            ok_response(&format!("got {}", req.len() - head_end))
        } else {
            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big2.len()).into_bytes();
            r.extend_from_slice(&big2);
            r
        }
    });
    let port = free_port();
    let cfg =
        format!("{}frontend f\n  bind 127.0.0.1:{port} ssl crt {}\n  default_backend b\nbackend b\n  server s {}\n", defaults("http"), a.display(), be.addr());
    let _s = Sluiced::start(&cfg, &[port]);
    let conn = rustls::ClientConnection::new(client(Some(&pki.ca_pem()), &[], None), ServerName::try_from("a.example.com").unwrap()).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    let upload = random_bytes(2 << 20, 12);
    for round in 0..2 {
        s.write_all(format!("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", upload.len()).as_bytes()).unwrap();
        s.write_all(&upload).unwrap();
        s.flush().unwrap();
        let (status, body) = read_https_response(&mut s);
        assert_eq!((status, body), (200, format!("got {}", upload.len()).into_bytes()), "round {round}");
        s.write_all(b"GET /down HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        s.flush().unwrap();
        let (status, body) = read_https_response(&mut s);
        assert_eq!(status, 200);
        assert!(body == big, "round {round}: the downloaded body differs ({} bytes)", body.len());
    }
    assert_eq!(seen.lock().unwrap().connections, 1);
}

/// Reads one response with a Content-Length body from a TLS stream.
fn read_https_response(s: &mut impl Read) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse().unwrap()).unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed in the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, buf[head_end..head_end + len].to_vec())
}

#[test]
fn ignored_verification_errors_let_the_client_in_and_show_in_ssl_c_verify() {
    let pki = Pki::new("ignore");
    let srv = pki.issue("srv", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let good = pki.issue("alice", "ec", "/CN=alice", &[], true);
    let rogue = Pki::with_ca(pki.dir.clone(), "rogue");
    let stranger = rogue.issue("stranger", "ec", "/CN=stranger", &[], true);
    let ca = pki.ca_pem();
    let (lenient, strict) = (free_port(), free_port());
    let cfg = facts_cfg(lenient, &format!("ssl crt {} ca-file {} verify optional crt-ignore-err 20", srv.display(), ca.display()))
        + &format!("  bind 127.0.0.1:{strict} ssl crt {} ca-file {} verify optional crt-ignore-err X509_V_ERR_CERT_HAS_EXPIRED\n", srv.display(), ca.display());
    let _s = Sluiced::start(&cfg, &[lenient, strict]);
    // An unknown issuer (20) is let through and reported.
    let e = exchange(lenient, "a.example.com", client(None, &[], Some(&stranger)), GET).unwrap();
    assert!(e.reply.contains("used=1 verify=20 ") && e.reply.contains("cn=stranger "), "{}", e.reply);
    let e = exchange(lenient, "a.example.com", client(None, &[], Some(&good)), GET).unwrap();
    assert!(e.reply.contains("used=1 verify=0 "), "{}", e.reply);
    // Only expired certificates are let through here.
    assert!(exchange(strict, "a.example.com", client(None, &[], Some(&stranger)), GET).is_err());
}

#[test]
fn sni_pass_through_and_termination_side_by_side() {
    let pki = Pki::new("sidebyside");
    let term = pki.issue("term", "ec", "/CN=term.example.com", &["term.example.com"], false);
    let pass = pki.issue("pass", "ec", "/CN=pass.example.com", &["pass.example.com"], false);
    // The pass-through server terminates TLS itself.
    let (pass_be, pass_seen) = tls_backend(&pass, None);
    let (front, inner) = (free_port(), free_port());
    let cfg = format!(
        "{}frontend sni\n  bind 127.0.0.1:{front}\n  tcp-request inspect-delay 2s\n  tcp-request content accept if {{ req.ssl_hello_type 1 }}\n  use_backend passthrough if {{ req.ssl_sni -i pass.example.com }}\n  default_backend terminate\nbackend passthrough\n  server p {}\nbackend terminate\n  server t 127.0.0.1:{inner} send-proxy\nfrontend https\n  mode http\n  bind 127.0.0.1:{inner} accept-proxy ssl crt {}\n  http-request return status 200 content-type text/plain lf-string \"terminated sni=%[ssl_fc_sni] src=%[src]\"\n",
        defaults("tcp"),
        pass_be.addr(),
        term.display()
    );
    let _s = Sluiced::start(&cfg, &[front, inner]);
    let verifying = client(Some(&pki.ca_pem()), &[], None);
    let e = exchange(front, "term.example.com", verifying.clone(), GET).unwrap();
    assert!(e.reply.contains("terminated sni=term.example.com src=127.0.0.1"), "{}", e.reply);
    assert_eq!(e.peer_cert, cert_der(&term));
    let e = exchange(front, "pass.example.com", verifying, GET).unwrap();
    assert!(e.reply.ends_with("sni=pass.example.com"), "{}", e.reply);
    assert_eq!(e.peer_cert, cert_der(&pass));
    assert_eq!(pass_seen.lock().unwrap().len(), 1);
}

#[test]
fn a_failed_handshake_is_logged_as_haproxy_does() {
    let pki = Pki::new("hslog");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let port = free_port();
    let cfg = format!(
        "{}frontend fe\n  bind 127.0.0.1:{port} ssl crt {} name https\n  log stdout format raw local0\n  option httplog\n  http-request return status 200\n",
        defaults("http"),
        a.display()
    );
    let mut s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let local = c.local_addr().unwrap();
    c.write_all(b"this is not TLS\r\n\r\n").unwrap();
    closed_by_peer(c);
    let line = stdout_line(&mut s);
    assert!(line.starts_with(&format!("127.0.0.1:{} [", local.port())), "{line}");
    assert!(line.trim_end().ends_with("] fe/https: SSL handshake failure"), "{line}");
}

/// One `openssl s_client` handshake with `args`; true when it negotiated a cipher.
fn handshake_ok(port: u16, args: &[&str]) -> bool {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "a.example.com"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("New, TLSv1") && !text.contains("Cipher is (NONE)")
}

#[test]
fn no_weak_protocol_or_cipher_is_accepted() {
    let pki = Pki::new("weak");
    let ec = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let rsa = pki.issue("r", "rsa", "/CN=a.example.com", &["a.example.com"], false);
    let port = free_port();
    let _s = Sluiced::start(&facts_cfg(port, &format!("ssl crt {} crt {}", ec.display(), rsa.display())), &[port]);
    assert!(handshake_ok(port, &["-tls1_3"]));
    assert!(handshake_ok(port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]));
    assert!(handshake_ok(port, &["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"]));
    for old in ["-tls1", "-tls1_1"] {
        assert!(!handshake_ok(port, &[old, "-cipher", "DEFAULT@SECLEVEL=0"]), "{old} was accepted");
    }
    for weak in [
        "AES128-SHA",
        "AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
        "DHE-RSA-AES128-GCM-SHA256",
        "DES-CBC3-SHA",
        "NULL-SHA256:@SECLEVEL=0",
    ] {
        assert!(!handshake_ok(port, &["-tls1_2", "-cipher", weak]), "{weak} was accepted");
    }
}

#[test]
fn a_websocket_upgrade_over_https_tunnels_through_tls() {
    let pki = Pki::new("wss");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let be = Backend::start(|mut c| {
        let mut b = [0u8; 65536];
        let _ = c.read(&mut b);
        let _ = c.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        loop {
            match c.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if c.write_all(&b[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let port = free_port();
    let cfg = format!(
        "{}frontend f\n  bind 127.0.0.1:{port} ssl crt {}\n  default_backend b\nbackend b\n  timeout tunnel 5s\n  server s {}\n",
        defaults("http"),
        a.display(),
        be.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let conn = rustls::ClientConnection::new(client(None, &[], None), ServerName::try_from("a.example.com").unwrap()).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    s.flush().unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    // 512 KiB through the tunnel and back.
    let data = random_bytes(512 * 1024, 5);
    let mut got = vec![0u8; data.len()];
    let mut sent = 0;
    let mut read = 0;
    while read < data.len() {
        if sent < data.len() {
            let end = (sent + 32 * 1024).min(data.len());
            s.write_all(&data[sent..end]).unwrap();
            s.flush().unwrap();
            sent = end;
        }
        while read < sent {
            let n = s.read(&mut got[read..sent]).unwrap();
            assert!(n > 0, "the tunnel closed");
            read += n;
        }
    }
    assert!(got == data, "the echoed bytes differ");
}

#[test]
fn tls_ticket_keys_let_a_session_resume_on_another_process() {
    let pki = Pki::new("ticketkeys");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let keys = pki.dir.join("tickets.key");
    let raw = random_bytes(48, 99);
    let out = Command::new("base64").arg("-w0").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().and_then(|mut c| {
        c.stdin.take().unwrap().write_all(&raw)?;
        c.wait_with_output()
    });
    std::fs::write(&keys, format!("{}\n", String::from_utf8_lossy(&out.unwrap().stdout))).unwrap();
    let (p1, p2) = (free_port(), free_port());
    let opts = format!("ssl crt {} tls-ticket-keys {}", a.display(), keys.display());
    // Two processes, each with its own session cache: only the shared keys can resume.
    let _s1 = Sluiced::start(&facts_cfg(p1, &opts), &[p1]);
    let _s2 = Sluiced::start(&facts_cfg(p2, &opts), &[p2]);
    for version in ["-tls1_3", "-tls1_2"] {
        let sess = pki.dir.join(format!("sess{version}.pem"));
        let first = s_client(p1, &[version, "-sess_out", sess.to_str().unwrap()]);
        assert!(first.contains("New, TLSv1."), "{first}");
        let second = s_client(p2, &[version, "-sess_in", sess.to_str().unwrap()]);
        assert!(second.contains("Reused, TLSv1."), "{version}: not resumed on the other process:\n{second}");
    }
}

/// Sends `line <<` and `payload` (its lines, then the empty line that ends it) to the stats
/// socket and reads the answer.
fn ask_payload(sock: &Path, line: &str, payload: &str) -> String {
    let payload = payload.trim_end_matches('\n');
    ask(sock, &format!("{line} <<\n{payload}\n"))
}

/// A frontend with two `ssl` binds that both load `a`, the first also `b`, with a stats socket;
/// `nbthread 2`, so a swap has to reach both workers.
fn runtime_cert_cfg(sock: &Path, ports: [u16; 2], a: &Path, b: &Path) -> String {
    facts_cfg(ports[0], &format!("ssl crt {} crt {}\n  bind 127.0.0.1:{} ssl crt {}", a.display(), b.display(), ports[1], a.display()))
        .replace("global\n  nbthread 1\n", &format!("global\n  nbthread 2\n  stats socket {} level admin\n", sock.display()))
}

/// The leaf certificate a new handshake with SNI `sni` gets on `port`.
fn served(port: u16, sni: &str) -> Vec<u8> {
    exchange(port, sni, client(None, &[], None), GET).unwrap().peer_cert
}

#[test]
fn set_and_commit_ssl_cert_serve_the_new_certificate_on_new_handshakes_while_open_connections_continue() {
    let pki = Pki::new("setcert");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let b = pki.issue("b", "ec", "/CN=b.example.com", &["b.example.com"], false);
    // The replacement: another key type, another subject, one more name.
    let a2 = pki.issue("a2", "rsa", "/CN=a.example.com v2", &["a.example.com", "new.example.com"], false);
    let sock = pki.dir.join("stats.sock");
    let ports = [free_port(), free_port()];
    let _s = Sluiced::start(&runtime_cert_cfg(&sock, ports, &a, &b), &ports);
    let name = a.display().to_string();

    // A keep-alive connection opened before the change.
    let conn = rustls::ClientConnection::new(client(Some(&pki.ca_pem()), &[], None), ServerName::try_from("a.example.com").unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", ports[0])).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut old = rustls::StreamOwned::new(conn, tcp);
    let keepalive = b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
    old.write_all(keepalive).unwrap();
    assert_eq!(read_https_response(&mut old).0, 200);

    let pem = std::fs::read_to_string(&a2).unwrap();
    assert_eq!(ask_payload(&sock, &format!("set ssl cert {name}"), &pem), format!("Transaction created for certificate {name}!\n\n"));
    assert_eq!(ask_payload(&sock, &format!("set ssl cert {name}"), &pem), format!("Transaction updated for certificate {name}!\n\n"));
    assert_eq!(ask(&sock, "show ssl cert"), format!("# transaction\n*{name}\n# filename\n{name}\n{}\n\n", b.display()));
    let pending = ask(&sock, &format!("show ssl cert *{name}"));
    assert!(pending.starts_with(&format!("Filename: *{name}\nStatus: Uncommitted\n")), "{pending}");
    assert!(pending.contains("Subject: /CN=a.example.com v2\n"), "{pending}");
    // Not committed yet: new handshakes still get the old certificate.
    assert_eq!(served(ports[0], "a.example.com"), cert_der(&a));

    assert_eq!(ask(&sock, &format!("commit ssl cert {name}")), format!("Committing {name}\nSuccess!\n\n"));
    // Every bind that loaded the file, on whichever worker accepts (several connections each).
    for port in ports {
        for _ in 0..6 {
            assert_eq!(served(port, "a.example.com"), cert_der(&a2), "port {port}");
        }
    }
    // The new certificate's names are resolved; the other file of the bind is untouched.
    assert_eq!(served(ports[0], "new.example.com"), cert_der(&a2));
    assert_eq!(served(ports[0], "b.example.com"), cert_der(&b));
    let e = exchange(ports[1], "a.example.com", client(Some(&pki.ca_pem()), &[], None), GET).unwrap();
    assert!(e.reply.starts_with("HTTP/1.1 200"), "a verifying client accepts the new certificate: {}", e.reply);
    // openssl sees it too.
    let out = s_client(ports[1], &[]);
    assert!(out.contains("CN=a.example.com v2") || out.contains("CN = a.example.com v2"), "{out}");

    // The connection opened before goes on, with the certificate it was given.
    old.write_all(keepalive).unwrap();
    assert_eq!(read_https_response(&mut old).0, 200);
    assert_eq!(old.conn.peer_certificates().unwrap()[0].as_ref(), cert_der(&a).as_slice());

    let now = ask(&sock, &format!("show ssl cert {name}"));
    assert!(now.starts_with(&format!("Filename: {name}\nStatus: Used\n")) && now.contains("Subject: /CN=a.example.com v2\n"), "{now}");
    assert_eq!(ask(&sock, "show ssl cert"), format!("# filename\n{name}\n{}\n\n", b.display()));
}

#[test]
fn a_bad_payload_or_a_key_that_does_not_match_is_refused_and_changes_nothing() {
    let pki = Pki::new("badcert");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let b = pki.issue("b", "ec", "/CN=b.example.com", &["b.example.com"], false);
    let sock = pki.dir.join("stats.sock");
    let ports = [free_port(), free_port()];
    let _s = Sluiced::start(&runtime_cert_cfg(&sock, ports, &a, &b), &ports);
    let name = a.display().to_string();

    let garbage = ask_payload(&sock, &format!("set ssl cert {name}"), "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n");
    assert!(garbage.ends_with(&format!("Can't update {name}!\n\n")), "{garbage}");
    let no_key = ask_payload(&sock, &format!("set ssl cert {name}"), &std::fs::read_to_string(pki.dir.join("a.crt")).unwrap());
    assert!(no_key.contains("no private key") && no_key.ends_with(&format!("Can't update {name}!\n\n")), "{no_key}");
    // a's certificate with b's key.
    let mut mismatched = std::fs::read_to_string(pki.dir.join("a.crt")).unwrap();
    mismatched.push_str(&std::fs::read_to_string(pki.dir.join("b.key")).unwrap());
    let refused = ask_payload(&sock, &format!("set ssl cert {name}"), &mismatched);
    assert!(refused.contains("inconsistencies between private key and certificate"), "{refused}");
    assert_eq!(
        ask_payload(&sock, "set ssl cert /etc/other.pem", &std::fs::read_to_string(&b).unwrap()),
        "Can't replace a certificate which is not referenced by the configuration!\n\n"
    );
    assert_eq!(ask(&sock, &format!("set ssl cert {name}")), "'set ssl cert' expects a filename and a certificate as a payload\n\n");

    // No transaction was opened, and the certificate in use is the same.
    assert_eq!(ask(&sock, &format!("commit ssl cert {name}")), "No ongoing transaction! !\n\n");
    assert_eq!(ask(&sock, "show ssl cert"), format!("# filename\n{name}\n{}\n\n", b.display()));
    for port in ports {
        assert_eq!(served(port, "a.example.com"), cert_der(&a));
    }
}

#[test]
fn abort_ssl_cert_drops_the_transaction_and_keeps_the_certificate_in_use() {
    let pki = Pki::new("abortcert");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let b = pki.issue("b", "ec", "/CN=b.example.com", &["b.example.com"], false);
    let a2 = pki.issue("a2", "ec", "/CN=a.example.com v2", &["a.example.com"], false);
    let sock = pki.dir.join("stats.sock");
    let ports = [free_port(), free_port()];
    let _s = Sluiced::start(&runtime_cert_cfg(&sock, ports, &a, &b), &ports);
    let name = a.display().to_string();

    assert_eq!(
        ask_payload(&sock, &format!("set ssl cert {name}"), &std::fs::read_to_string(&a2).unwrap()),
        format!("Transaction created for certificate {name}!\n\n")
    );
    // One transaction at a time.
    let other = b.display().to_string();
    assert_eq!(
        ask_payload(&sock, &format!("set ssl cert {other}"), &std::fs::read_to_string(&b).unwrap()),
        format!("The ongoing transaction is about '{name}' but you are trying to set '{other}'\n\n")
    );
    assert_eq!(ask(&sock, &format!("abort ssl cert {name}")), format!("Transaction aborted for certificate '{name}'!\n\n"));
    assert_eq!(ask(&sock, &format!("abort ssl cert {name}")), "No ongoing transaction!\n\n");
    assert_eq!(ask(&sock, &format!("commit ssl cert {name}")), "No ongoing transaction! !\n\n");
    assert_eq!(ask(&sock, &format!("show ssl cert *{name}")), "Can't display the certificate: Not found or the certificate is a bundle!\n\n");
    for port in ports {
        assert_eq!(served(port, "a.example.com"), cert_der(&a));
    }
}

#[test]
fn a_payload_over_one_mib_is_refused_and_the_connection_closed() {
    let pki = Pki::new("bigpayload");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let b = pki.issue("b", "ec", "/CN=b.example.com", &["b.example.com"], false);
    let sock = pki.dir.join("stats.sock");
    let ports = [free_port(), free_port()];
    let _s = Sluiced::start(&runtime_cert_cfg(&sock, ports, &a, &b), &ports);

    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut text = format!("set ssl cert {} <<\n", a.display());
    let line = "A".repeat(1023) + "\n";
    while text.len() < (1 << 20) + 4096 {
        text.push_str(&line);
    }
    text.push('\n');
    // The daemon stops reading at the limit: writing the rest may fail.
    let writer = {
        let mut c = c.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = c.write_all(text.as_bytes());
        })
    };
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert_eq!(out, "Payload too big: at most 1048576 bytes.\n\n");
    drop(c);
    writer.join().unwrap();
    // The socket still answers, and nothing changed.
    assert_eq!(ask(&sock, "show ssl cert"), format!("# filename\n{}\n{}\n\n", a.display(), b.display()));
}

#[test]
fn a_payload_in_prompt_mode_is_read_up_to_its_empty_line_and_the_session_goes_on() {
    let pki = Pki::new("promptcert");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let b = pki.issue("b", "ec", "/CN=b.example.com", &["b.example.com"], false);
    let a2 = pki.issue("a2", "ec", "/CN=a.example.com v2", &["a.example.com"], false);
    let sock = pki.dir.join("stats.sock");
    let ports = [free_port(), free_port()];
    let _s = Sluiced::start(&runtime_cert_cfg(&sock, ports, &a, &b), &ports);
    let name = a.display().to_string();
    let pem = std::fs::read_to_string(&a2).unwrap();
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let script = format!("prompt\nset ssl cert {name} <<\n{}\n\ncommit ssl cert {name}\nquit\n", pem.trim_end());
    c.write_all(script.as_bytes()).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert_eq!(out, format!("> Transaction created for certificate {name}!\n\n> Committing {name}\nSuccess!\n\n> "));
    assert_eq!(served(ports[0], "a.example.com"), cert_der(&a2));
}

#[test]
fn a_certificate_replaced_in_a_crt_list_keeps_the_names_and_exclusions_of_its_line() {
    let pki = Pki::new("crtlistcert");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let b = pki.issue("b", "ec", "/CN=b.example.com", &["b.example.com"], false);
    let c = pki.issue("c", "ec", "/CN=c.example.com", &["c.example.com"], false);
    let b2 = pki.issue("b2", "ec", "/CN=b2", &["b.example.com", "b2.example.com", "gone.example.com"], false);
    let c2 = pki.issue("c2", "ec", "/CN=c2", &["c.example.com", "c2.example.com", "gone.example.com"], false);
    let list = pki.dir.join("list.txt");
    std::fs::write(&list, format!("{}\n{} [] www.example.net\n{} !gone.example.com\n", a.display(), b.display(), c.display())).unwrap();
    let sock = pki.dir.join("stats.sock");
    let port = free_port();
    let cfg = facts_cfg(port, &format!("ssl crt-list {}", list.display()))
        .replace("defaults\n", &format!("  stats socket {} level admin\ndefaults\n", sock.display()));
    let _s = Sluiced::start(&cfg, &[port]);
    for (file, new) in [(&b, &b2), (&c, &c2)] {
        let name = file.display().to_string();
        assert_eq!(
            ask_payload(&sock, &format!("set ssl cert {name}"), &std::fs::read_to_string(new).unwrap()),
            format!("Transaction created for certificate {name}!\n\n")
        );
        assert_eq!(ask(&sock, &format!("commit ssl cert {name}")), format!("Committing {name}\nSuccess!\n\n"));
    }
    // b's line names www.example.net only; c's line takes the certificate's names but gone.example.com.
    for (sni, want) in [("www.example.net", &b2), ("b2.example.com", &a), ("c2.example.com", &c2), ("gone.example.com", &a), ("x.example.org", &a)] {
        assert_eq!(served(port, sni), cert_der(want), "SNI {sni}");
    }
}

/// A reload as HAProxy's classic one: a new process started with `-sf <old pid>` on the same
/// port reads the certificate file afresh and serves it to new handshakes, while the old process
/// finishes the connections it has (a kept-alive one goes on with the old certificate) and exits
/// once they end.
#[test]
fn a_reload_with_sf_serves_the_new_certificate_while_the_old_process_finishes_its_connections() {
    let pki = Pki::new("reload");
    let a = pki.issue("a", "ec", "/CN=a.example.com", &["a.example.com"], false);
    let a2 = pki.issue("a2", "ec", "/CN=a.example.com v2", &["a.example.com"], false);
    let site = pki.dir.join("site.pem");
    std::fs::copy(&a, &site).unwrap();
    let port = free_port();
    let cfg = format!(
        "{}frontend f\n  bind 127.0.0.1:{port} ssl crt {}\n  http-request return status 200 content-type text/plain string ok\n",
        defaults("http"),
        site.display()
    );
    let mut old = Sluiced::start(&cfg, &[port]);
    let conn = rustls::ClientConnection::new(client(Some(&pki.ca_pem()), &[], None), ServerName::try_from("a.example.com").unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut kept = rustls::StreamOwned::new(conn, tcp);
    let get = b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
    kept.write_all(get).unwrap();
    assert_eq!(read_https_response(&mut kept).0, 200);

    // The certificate file changes, then the new process takes over.
    std::fs::copy(&a2, &site).unwrap();
    let _new = Sluiced::start_args(&cfg, &[port], &["-sf", &old.pid().to_string()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut in_a_row = 0;
    while in_a_row < 5 {
        assert!(std::time::Instant::now() < deadline, "new handshakes never settled on the new certificate");
        match exchange(port, "a.example.com", client(None, &[], None), GET) {
            Ok(e) if e.peer_cert == cert_der(&a2) => in_a_row += 1,
            _ => {
                in_a_row = 0;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    // The old process still serves the connection it had, with the old certificate...
    kept.write_all(get).unwrap();
    assert_eq!(read_https_response(&mut kept).0, 200);
    assert_eq!(kept.conn.peer_certificates().unwrap()[0].as_ref(), cert_der(&a).as_slice());
    // ...and exits once it is closed.
    drop(kept);
    assert_eq!(old.wait_exit(Duration::from_secs(10)), Some(0), "the old process did not finish");
}
