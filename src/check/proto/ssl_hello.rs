//! `option ssl-hello-chk`: a layer-6 check of a TLS server without a handshake. The check sends
//! one TLS ClientHello and looks at the first record header that comes back. A TLS server
//! answers a hello with a handshake record (content type 22, its ServerHello) or, when it likes
//! nothing in the hello, with an alert (21): either way it speaks TLS, and HAProxy counts both
//! as `L6OK`. Anything else (a plain HTTP server's `HTTP/1.1 400`, a banner) is `L6RSP`, a
//! server that closes first is `L6RSP` too, and silence is `L6TOUT`.
//!
//! HAProxy sends an SSLv3 hello, which current TLS stacks answer with an alert. sluiced sends a
//! TLS 1.2 hello (in a record marked TLS 1.0, as clients do for compatibility) with the usual
//! AEAD suites, groups and signature schemes, so that a current server answers with its
//! ServerHello; the verdict is the same. The hello has no SNI: the check may name no host.

use super::{Conversation, Outcome, Step};
use crate::check::config::CheckStatus;

/// The conversation for `option ssl-hello-chk`.
pub fn ssl_hello() -> Box<dyn Conversation> {
    Box::new(SslHello)
}

struct SslHello;

/// The record header is 5 bytes: type, version (2), length (2). HAProxy waits for 5 bytes too.
const HEADER: usize = 5;

/// TLS content types a server may answer a hello with.
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;

fn u16be(v: usize) -> [u8; 2] {
    [(v >> 8) as u8, v as u8]
}

/// A TLS extension: type, then its data with a 2-byte length.
fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&u16be(data.len()));
    out.extend_from_slice(data);
}

/// A list of 2-byte values with its length in bytes (2-byte), as the hello's lists are.
fn list16(values: &[u16]) -> Vec<u8> {
    let mut v = u16be(values.len() * 2).to_vec();
    for x in values {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

/// The ClientHello record. `random` fills the hello's 32 random bytes: it need not be secret,
/// since no key is ever derived from it.
pub fn client_hello(random: [u8; 32]) -> Vec<u8> {
    // ECDHE with AES-GCM and ChaCha20-Poly1305, then plain RSA key exchange for old servers.
    const SUITES: &[u16] = &[0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009c, 0x009d, 0x002f, 0x0035];
    // x25519, secp256r1, secp384r1.
    const GROUPS: &[u16] = &[0x001d, 0x0017, 0x0018];
    // ECDSA and RSA-PSS and PKCS#1 with SHA-256/384/512, and Ed25519.
    const SCHEMES: &[u16] = &[0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0807];
    let mut ext = Vec::new();
    extension(&mut ext, 0x000a, &list16(GROUPS));
    extension(&mut ext, 0x000b, &[1, 0]); // ec_point_formats: uncompressed
    extension(&mut ext, 0x000d, &list16(SCHEMES));
    extension(&mut ext, 0xff01, &[0]); // renegotiation_info, empty

    let mut body = vec![0x03, 0x03]; // client_version: TLS 1.2
    body.extend_from_slice(&random);
    body.push(0); // no session id
    body.extend_from_slice(&list16(SUITES));
    body.extend_from_slice(&[1, 0]); // compression methods: null only
    body.extend_from_slice(&u16be(ext.len()));
    body.extend_from_slice(&ext);

    let mut hs = vec![1, 0]; // ClientHello, 3-byte length
    hs.extend_from_slice(&u16be(body.len()));
    hs.extend_from_slice(&body);

    let mut rec = vec![HANDSHAKE, 0x03, 0x01];
    rec.extend_from_slice(&u16be(hs.len()));
    rec.extend_from_slice(&hs);
    rec
}

/// The hello's random: the time, as TLS 1.2 hellos began, then random bytes (from `ring`, as
/// the DNS query ids).
fn random() -> [u8; 32] {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut out = [0u8; 32];
    out[..4].copy_from_slice(&(now.as_secs() as u32).to_be_bytes());
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out[4..]);
    out
}

fn judge(data: &[u8]) -> Outcome {
    match data[0] {
        HANDSHAKE => Outcome::new(CheckStatus::L6Ok, "TLS server answered the hello"),
        ALERT => Outcome::new(CheckStatus::L6Ok, "TLS server answered the hello with an alert"),
        _ => Outcome::new(CheckStatus::L6Rsp, "not a TLS answer to a hello"),
    }
}

impl Conversation for SslHello {
    fn start(&mut self) -> Step {
        Step::Send(client_hello(random()))
    }

    fn received(&mut self, data: &[u8]) -> Step {
        // A first byte that is no TLS answer decides at once; a TLS one waits for the whole
        // record header, as HAProxy's `min-recv 5` does.
        if data.len() >= HEADER || data.first().is_some_and(|&b| b != HANDSHAKE && b != ALERT) { Step::Done(judge(data)) } else { Step::NeedMore }
    }

    fn closed(&mut self, data: &[u8]) -> Outcome {
        if data.len() >= HEADER || data.first().is_some_and(|&b| b != HANDSHAKE && b != ALERT) {
            return judge(data);
        }
        Outcome::new(CheckStatus::L6Rsp, "connection closed before a TLS answer")
    }

    fn timed_out(&mut self) -> Outcome {
        Outcome::new(CheckStatus::L6Tout, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hello_is_one_well_formed_tls_record() {
        let rec = client_hello([7; 32]);
        assert_eq!(&rec[..3], &[22, 3, 1]);
        let len = u16::from_be_bytes([rec[3], rec[4]]) as usize;
        assert_eq!(rec.len(), 5 + len);
        // Handshake header: ClientHello with a 3-byte length covering the rest.
        assert_eq!(rec[5], 1);
        let hs_len = ((rec[6] as usize) << 16) | ((rec[7] as usize) << 8) | rec[8] as usize;
        assert_eq!(hs_len, len - 4);
        assert_eq!(&rec[9..11], &[3, 3]);
        assert_eq!(&rec[11..43], &[7; 32]);
        assert_eq!(rec[43], 0, "no session id");
        let suites = u16::from_be_bytes([rec[44], rec[45]]) as usize;
        let after = 46 + suites;
        assert_eq!(&rec[after..after + 2], &[1, 0]);
        let ext_len = u16::from_be_bytes([rec[after + 2], rec[after + 3]]) as usize;
        assert_eq!(after + 4 + ext_len, rec.len());
    }

    #[test]
    fn randoms_differ_and_start_with_the_time() {
        let (a, b) = (random(), random());
        assert_ne!(a, b);
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
        assert!(secs.abs_diff(u32::from_be_bytes([a[0], a[1], a[2], a[3]])) < 5);
    }

    #[test]
    fn a_handshake_or_alert_record_passes_and_anything_else_fails() {
        let mut c = SslHello;
        assert!(matches!(c.start(), Step::Send(_)));
        assert_eq!(c.received(&[22, 3]), Step::NeedMore);
        assert_eq!(c.received(&[22, 3, 3, 0, 80]), Step::Done(Outcome::new(CheckStatus::L6Ok, "TLS server answered the hello")));
        assert!(matches!(c.received(&[21, 3, 3, 0, 2]), Step::Done(o) if o.status == CheckStatus::L6Ok));
        assert!(matches!(c.received(b"H"), Step::Done(o) if o.status == CheckStatus::L6Rsp));
        assert!(matches!(c.received(b"HTTP/1.1 400 Bad Request\r\n"), Step::Done(o) if o.status == CheckStatus::L6Rsp));
        assert_eq!(c.closed(&[]).status, CheckStatus::L6Rsp);
        assert_eq!(c.closed(&[22, 3]).status, CheckStatus::L6Rsp);
        assert_eq!(c.closed(&[21, 3, 3, 0, 2, 2, 70]).status, CheckStatus::L6Ok);
        assert_eq!(c.timed_out().status, CheckStatus::L6Tout);
    }
}
