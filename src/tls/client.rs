//! TLS towards servers (`server ... ssl`): a rustls `ClientConfig` per server line, with the
//! server's certificate verified against `ca-file` (`verify required`, the default unless
//! `ssl-server-verify none`) or not at all (`verify none`), an optional client certificate
//! (`crt`), ALPN, versions and ciphers, and session resumption (`no-ssl-reuse` turns it off).
//!
//! As HAProxy does, the host name in the certificate is checked only when there is one to check:
//! `verifyhost`, else the SNI sent; without either only the chain is verified.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, Tls12Resumption, WebPkiServerVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::config::{GlobalTls, ServerTls, Verify};
use super::conn::{HandshakeError, TlsConn};
use crate::runtime::io::AnyConn;

/// A compiled `ssl` server.
#[derive(Debug)]
pub struct Connector {
    config: Arc<ClientConfig>,
}

impl Connector {
    /// Runs the client handshake on a new connection to the server at `ip`, sending `sni` when
    /// given (an address is never sent as SNI).
    pub async fn connect(&self, io: AnyConn, sni: Option<&str>, ip: Option<IpAddr>) -> Result<TlsConn, HandshakeError> {
        let name = match sni.and_then(|s| ServerName::try_from(s.to_string()).ok()) {
            Some(n) => n,
            None => ServerName::IpAddress(ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)).into()),
        };
        TlsConn::connect(io, self.config.clone(), name).await
    }
}

/// Checks the server's chain, and its name only when configured to.
#[derive(Debug)]
struct ServerVerifier {
    /// `None` with `verify none`: nothing is checked but the handshake signatures.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// `verifyhost`: the name checked instead of the SNI.
    verifyhost: Option<ServerName<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(w) = &self.webpki else { return Ok(ServerCertVerified::assertion()) };
        let name = self.verifyhost.as_ref().unwrap_or(server_name);
        match w.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            // No name to check (no SNI, no verifyhost: the name is the server's address).
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. }))
                if self.verifyhost.is_none() && matches!(server_name, ServerName::IpAddress(_)) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            r => r,
        }
    }
    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn client_cert(path: &Path) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let pem = std::fs::read(path).map_err(|e| format!("unable to load SSL certificate '{}' : {e}", path.display()))?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&pem).collect::<Result<_, _>>().map_err(|e| format!("unable to load SSL certificate '{}' : {e:?}", path.display()))?;
    let key =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|_| format!("unable to load SSL private key from PEM file '{}' : no private key in it", path.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in '{}'", path.display()));
    }
    Ok((chain, key))
}

/// Compiles a server's TLS settings; `None` without `ssl`.
pub fn compile_server(t: &ServerTls, g: &GlobalTls) -> Result<Option<Arc<Connector>>, String> {
    if !t.ssl {
        return Ok(None);
    }
    let d = &g.server_options;
    let versions = super::server::versions(&t.protocols, &d.protocols)?;
    let provider = Arc::new(super::server::provider(
        &versions,
        t.ciphers.as_deref().or(g.server_ciphers.as_deref()),
        t.ciphersuites.as_deref().or(g.server_ciphersuites.as_deref()),
        None,
    )?);
    let verify = t.verify.or(g.server_verify).unwrap_or(Verify::Required);
    let webpki = match (verify, &t.ca_file) {
        (Verify::None, _) => None,
        (_, None) => {
            return Err("verify is enabled by default but no CA file specified: set 'ca-file', or 'verify none' on the server line, or 'ssl-server-verify none' in the global section".into());
        }
        (_, Some(ca)) => {
            let roots = Arc::new(super::server::load_roots(&g.ca_path(ca))?);
            let mut b = WebPkiServerVerifier::builder_with_provider(roots, provider.clone());
            if let Some(crl) = &t.crl_file {
                b = b.with_crls(super::server::load_crls(&g.ca_path(crl))?);
            }
            Some(b.build().map_err(|e| format!("cannot verify server certificates: {e}"))?)
        }
    };
    let verifyhost = match &t.verifyhost {
        Some(h) => Some(ServerName::try_from(h.clone()).map_err(|_| format!("'verifyhost {h}' is not a valid host name"))?),
        None => None,
    };
    let verifier = Arc::new(ServerVerifier { webpki, verifyhost, provider: provider.clone() });
    let b = ClientConfig::builder_with_provider(provider).with_protocol_versions(&versions).map_err(|e| e.to_string())?;
    let b = b.dangerous().with_custom_certificate_verifier(verifier);
    let mut cfg = match &t.crt {
        Some(p) => {
            let (chain, key) = client_cert(&g.crt_path(p))?;
            b.with_client_auth_cert(chain, key).map_err(|e| format!("unable to use client certificate '{}' : {e}", p.display()))?
        }
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = t.alpn.iter().flatten().map(|p| p.as_bytes().to_vec()).collect();
    cfg.resumption = if t.session_reuse == Some(false) {
        Resumption::disabled()
    } else if t.tls_tickets == Some(false) || d.no_tls_tickets {
        Resumption::default().tls12_resumption(Tls12Resumption::SessionIdOnly)
    } else {
        Resumption::default()
    };
    cfg.enable_early_data = false;
    Ok(Some(Arc::new(Connector { config: Arc::new(cfg) })))
}
