//! `option pgsql-check user <name>`: HAProxy sends a PostgreSQL StartupMessage (protocol 3.0, the
//! `user` parameter only) and judges the first message the server answers with:
//!
//! * `R` (Authentication) carrying "ok" (0) or a request the server makes to go on (cleartext,
//!   MD5, SCM, GSS, SSPI, SASL...) → `L7OK "PostgreSQL server is ok"`: the server is up and talking
//!   the protocol, which is all the check asks (HAProxy accepts these since its issue #1508);
//! * `E` (ErrorResponse) → `L7RSP` with the server's error as info (for example
//!   `FATAL: role "nobody" does not exist`);
//! * anything else → `L7STS "PostgreSQL unknown error"`; the server closing without a word →
//!   `L7RSP "Empty response"`.
//!
//! The check never answers an authentication request: once judged, the engine closes. Like
//! HAProxy it judges the first message only, so a role unknown to a server that `trust`s it still
//! passes (PostgreSQL sends AuthenticationOk before it looks the role up), and so does any user
//! the server asks a password of; only errors sent first (`pg_hba.conf` rejects or lacks an
//! entry, too many connections, the server starting up or shutting down) fail the check.

use super::{Conversation, Outcome, Step};
use crate::check::config::CheckStatus;

/// The conversation for `option pgsql-check user <user>`.
pub fn pgsql(user: &str) -> Box<dyn Conversation> {
    Box::new(PgSql { user: user.to_owned() })
}

struct PgSql {
    user: String,
}

/// Authentication request codes that mean "the server is up and wants to go on": ok (0),
/// Kerberos V5 (2), cleartext (3), crypt (4), MD5 (5), SCM (6), GSS (7), SSPI (9), SASL (10).
const AUTH_CODES_OK: [u32; 9] = [0, 2, 3, 4, 5, 6, 7, 9, 10];

/// The StartupMessage: length, protocol 3.0, `user\0<user>\0`, and the final `\0`.
pub fn startup_message(user: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + user.len());
    body.extend_from_slice(&0x0003_0000u32.to_be_bytes());
    body.extend_from_slice(b"user\0");
    body.extend_from_slice(user.as_bytes());
    body.push(0);
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

fn unknown() -> Outcome {
    Outcome::new(CheckStatus::L7Sts, "PostgreSQL unknown error")
}

/// The fields of an ErrorResponse body (`<type byte><text>\0`...), as "SEVERITY: message".
fn error_text(body: &[u8]) -> String {
    let mut severity = None;
    let mut message = None;
    for field in body.split(|&b| b == 0) {
        let Some((&kind, text)) = field.split_first() else { continue };
        let text = String::from_utf8_lossy(text).into_owned();
        match kind {
            b'S' if severity.is_none() => severity = Some(text),
            b'V' => severity = Some(text),
            b'M' => message = Some(text),
            _ => {}
        }
    }
    match (severity, message) {
        (Some(s), Some(m)) => format!("{s}: {m}"),
        (None, Some(m)) => m,
        (Some(s), None) => s,
        (None, None) => "PostgreSQL error".to_owned(),
    }
}

impl PgSql {
    /// `None` while the first message is incomplete.
    fn judge(&self, data: &[u8]) -> Option<Outcome> {
        let (&kind, _) = data.split_first()?;
        if kind != b'R' && kind != b'E' {
            return Some(unknown());
        }
        if data.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        if !(4..=64 * 1024).contains(&len) {
            return Some(unknown());
        }
        if kind == b'R' {
            // The authentication code is the first 4 bytes of the body; more body (MD5 salt,
            // SASL mechanisms) does not need to arrive.
            if len < 8 {
                return Some(unknown());
            }
            if data.len() < 9 {
                return None;
            }
            let code = u32::from_be_bytes([data[5], data[6], data[7], data[8]]);
            return Some(if AUTH_CODES_OK.contains(&code) { Outcome::new(CheckStatus::L7Ok, "PostgreSQL server is ok") } else { unknown() });
        }
        if data.len() < 1 + len {
            return None;
        }
        Some(Outcome::new(CheckStatus::L7Rsp, error_text(&data[5..1 + len])))
    }
}

impl Conversation for PgSql {
    fn start(&mut self) -> Step {
        Step::Send(startup_message(&self.user))
    }

    fn received(&mut self, data: &[u8]) -> Step {
        match self.judge(data) {
            Some(o) => Step::Done(o),
            None => Step::NeedMore,
        }
    }

    fn closed(&mut self, data: &[u8]) -> Outcome {
        match self.judge(data) {
            Some(o) => o,
            // An ErrorResponse cut short still says what it is.
            None if data.is_empty() => Outcome::new(CheckStatus::L7Rsp, "Empty response"),
            None if data.first() == Some(&b'E') => Outcome::new(CheckStatus::L7Rsp, error_text(data.get(5..).unwrap_or_default())),
            None => unknown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn sends_a_v3_startup_message_with_the_user() {
        let mut c = pgsql("haproxy");
        let Step::Send(b) = c.start() else { panic!() };
        assert_eq!(&b[..4], &(b.len() as u32).to_be_bytes());
        assert_eq!(&b[4..8], &[0, 3, 0, 0]);
        assert_eq!(&b[8..], b"user\0haproxy\0\0");
    }

    #[test]
    fn auth_ok_and_auth_requests_are_up() {
        for code in [0u32, 3, 5, 10] {
            let mut c = pgsql("u");
            c.start();
            let mut body = code.to_be_bytes().to_vec();
            if code == 5 {
                body.extend_from_slice(b"salt");
            }
            let m = msg(b'R', &body);
            // Byte by byte: undecided until the code has arrived.
            for i in 1..9 {
                assert_eq!(c.received(&m[..i]), Step::NeedMore, "code {code} after {i} bytes");
            }
            assert_eq!(c.received(&m), Step::Done(Outcome::new(CheckStatus::L7Ok, "PostgreSQL server is ok")));
        }
    }

    #[test]
    fn an_unknown_auth_code_is_an_unknown_error() {
        let mut c = pgsql("u");
        assert_eq!(c.received(&msg(b'R', &99u32.to_be_bytes())), Step::Done(unknown()));
    }

    #[test]
    fn an_error_response_is_l7rsp_with_the_message() {
        let mut c = pgsql("nobody");
        let m = msg(b'E', b"SFATAL\0VFATAL\0C28000\0Mrole \"nobody\" does not exist\0Fauth.c\0\0");
        assert_eq!(c.received(&m[..10]), Step::NeedMore);
        let Step::Done(o) = c.received(&m) else { panic!() };
        assert_eq!(o, Outcome::new(CheckStatus::L7Rsp, "FATAL: role \"nobody\" does not exist"));
        assert_eq!(o.status, CheckStatus::L7Rsp);
    }

    #[test]
    fn garbage_is_an_unknown_error() {
        let mut c = pgsql("u");
        assert_eq!(c.received(b"HTTP/1.1 400 Bad Request\r\n"), Step::Done(unknown()));
        let mut c = pgsql("u");
        assert_eq!(c.received(&[b'R', 0xff, 0xff, 0xff, 0xff]), Step::Done(unknown()));
    }

    #[test]
    fn closed_early() {
        let mut c = pgsql("u");
        assert_eq!(c.closed(b""), Outcome::new(CheckStatus::L7Rsp, "Empty response"));
        assert_eq!(c.closed(b"R\0\0"), unknown());
        assert_eq!(c.closed(b"E\0\0\0\x40SFATAL\0Mtoo many"), Outcome::new(CheckStatus::L7Rsp, "FATAL: too many"));
        assert_eq!(c.timed_out().status, CheckStatus::L7Tout);
    }
}
