//! `option mysql-check [user <name> [post-41|pre-41]]`, as HAProxy does it:
//!
//! * the server speaks first with its handshake packet. An error packet there (`0xff`: too many
//!   connections, host blocked...) is `L7STS` with the MySQL error number as code and its message
//!   as info. Without `user`, a handshake is enough: `L7OK` with the server version as info.
//! * with `user`, the check answers the handshake with a client authentication packet for that
//!   user with an empty password (4.1 format unless `pre-41`), followed at once by `COM_QUIT` so
//!   that the server closes cleanly instead of logging an aborted connection. The reply to the
//!   authentication decides: an error packet (`Access denied for user 'x'@'host' (using password:
//!   NO)`) is `L7STS` with the error number and message; any other packet is `L7OK` with the
//!   server version as info.
//!
//! Stricter than HAProxy: a first packet that is neither a handshake (protocol 9 or 10) nor an
//! error is `L7RSP "Invalid MySQL handshake"`, and a packet cut by the server closing is `L7RSP`.
//! The `#<SQLSTATE>` marker of 4.1 error packets is left out of the info.

use super::{Conversation, Outcome, Step};
use crate::check::config::CheckStatus;

/// The conversation for `option mysql-check [user <user> [post-41|pre-41]]`.
pub fn mysql(user: Option<&str>, post_41: bool) -> Box<dyn Conversation> {
    Box::new(MySql { user: user.map(str::to_owned), post_41, version: None, auth_at: 0 })
}

/// `COM_QUIT`: length 1, sequence 0, command 0x01.
pub const COM_QUIT: &[u8] = &[0x01, 0x00, 0x00, 0x00, 0x01];

const CLIENT_LONG_PASSWORD: u32 = 0x0001;
const CLIENT_PROTOCOL_41: u32 = 0x0200;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;

/// Largest packet the check waits for: handshakes and errors are far smaller.
const MAX_PACKET: usize = 64 * 1024;

struct MySql {
    user: Option<String>,
    post_41: bool,
    /// The server version, once the handshake was read.
    version: Option<String>,
    /// Where the authentication reply starts in the data received.
    auth_at: usize,
}

/// The client authentication packet (sequence 1) for `user` with an empty password.
pub fn auth_packet(user: &str, post_41: bool) -> Vec<u8> {
    let mut p = Vec::new();
    if post_41 {
        p.extend_from_slice(&(CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION).to_le_bytes());
        p.extend_from_slice(&0x0100_0000u32.to_le_bytes()); // max packet size
        p.push(0x21); // utf8_general_ci
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        p.push(0); // empty auth response
    } else {
        p.extend_from_slice(&(CLIENT_LONG_PASSWORD as u16).to_le_bytes());
        p.extend_from_slice(&[0x00, 0x00, 0x01]); // max packet size, 3 bytes
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        p.push(0); // empty scramble
    }
    let mut packet = (p.len() as u32).to_le_bytes()[..3].to_vec();
    packet.push(1);
    packet.extend_from_slice(&p);
    packet
}

enum Packet<'a> {
    More,
    TooBig,
    /// Payload and total length with the header.
    Ok(&'a [u8], usize),
}

fn packet(data: &[u8]) -> Packet<'_> {
    if data.len() < 4 {
        return Packet::More;
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], 0]) as usize;
    if len > MAX_PACKET {
        return Packet::TooBig;
    }
    if data.len() < 4 + len {
        return Packet::More;
    }
    Packet::Ok(&data[4..4 + len], 4 + len)
}

/// An error packet's outcome: `L7STS`, the error number, the message.
fn error(payload: &[u8]) -> Outcome {
    let code = payload.get(1..3).map(|b| u16::from_le_bytes([b[0], b[1]]) as u32);
    let mut msg = payload.get(3..).unwrap_or_default();
    if msg.first() == Some(&b'#') && msg.len() >= 6 {
        msg = &msg[6..];
    }
    Outcome { status: CheckStatus::L7Sts, code, info: String::from_utf8_lossy(msg).into_owned() }
}

fn invalid(info: &str) -> Outcome {
    Outcome::new(CheckStatus::L7Rsp, info)
}

impl MySql {
    fn step(&mut self, data: &[u8], closed: bool) -> Step {
        let cut = || if closed { Step::Done(invalid("MySQL packet cut short")) } else { Step::NeedMore };
        match &self.version {
            None => match packet(data) {
                Packet::More => cut(),
                Packet::TooBig => Step::Done(invalid("Invalid MySQL handshake")),
                Packet::Ok(payload, total) => match payload.first() {
                    Some(0xff) => Step::Done(error(payload)),
                    Some(9 | 10) => {
                        let v = &payload[1..];
                        let v = &v[..v.iter().position(|&b| b == 0).unwrap_or(v.len())];
                        let version = String::from_utf8_lossy(v).into_owned();
                        match &self.user {
                            None => Step::Done(Outcome::new(CheckStatus::L7Ok, version)),
                            Some(_) if closed => Step::Done(invalid("MySQL server closed before authentication")),
                            Some(user) => {
                                let mut out = auth_packet(user, self.post_41);
                                out.extend_from_slice(COM_QUIT);
                                self.version = Some(version);
                                self.auth_at = total;
                                Step::Send(out)
                            }
                        }
                    }
                    _ => Step::Done(invalid("Invalid MySQL handshake")),
                },
            },
            Some(version) => match packet(&data[self.auth_at.min(data.len())..]) {
                Packet::More => cut(),
                Packet::TooBig => Step::Done(invalid("Invalid MySQL packet")),
                Packet::Ok(payload, _) if payload.first() == Some(&0xff) => Step::Done(error(payload)),
                Packet::Ok(..) => Step::Done(Outcome::new(CheckStatus::L7Ok, version.clone())),
            },
        }
    }
}

impl Conversation for MySql {
    fn start(&mut self) -> Step {
        Step::NeedMore
    }

    fn received(&mut self, data: &[u8]) -> Step {
        self.step(data, false)
    }

    fn closed(&mut self, data: &[u8]) -> Outcome {
        match self.step(data, true) {
            Step::Done(o) => o,
            _ => invalid("MySQL server closed the connection"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        p.push(seq);
        p.extend_from_slice(payload);
        p
    }

    fn handshake() -> Vec<u8> {
        let mut h = vec![10];
        h.extend_from_slice(b"10.11.6-MariaDB-0+deb12u1\0");
        h.extend_from_slice(&[1, 0, 0, 0]); // thread id
        h.extend_from_slice(b"abcdefgh\0");
        h.extend_from_slice(&[0xfe, 0xf7, 0x21, 0x02, 0x00]);
        pkt(0, &h)
    }

    fn denied() -> Vec<u8> {
        let mut e = vec![0xff, 0x15, 0x04];
        e.extend_from_slice(b"#28000Access denied for user 'nobody'@'localhost' (using password: NO)");
        pkt(2, &e)
    }

    #[test]
    fn handshake_alone_without_user() {
        let mut c = mysql(None, false);
        assert_eq!(c.start(), Step::NeedMore);
        let h = handshake();
        assert_eq!(c.received(&h[..10]), Step::NeedMore);
        assert_eq!(c.received(&h), Step::Done(Outcome::new(CheckStatus::L7Ok, "10.11.6-MariaDB-0+deb12u1")));
    }

    #[test]
    fn with_user_authenticates_then_quits() {
        let mut c = mysql(Some("haproxy"), true);
        let mut data = handshake();
        let Step::Send(out) = c.received(&data) else { panic!() };
        let auth = auth_packet("haproxy", true);
        assert_eq!(out, [auth.as_slice(), COM_QUIT].concat());
        assert_eq!(&auth[3..9], &[1, 0x01, 0x82, 0, 0, 0]);
        assert!(auth.ends_with(b"haproxy\0\0"));
        assert_eq!(auth.len(), 4 + 32 + 9);
        let ok = pkt(2, &[0, 0, 0, 2, 0, 0, 0]);
        data.extend_from_slice(&ok[..5]);
        assert_eq!(c.received(&data), Step::NeedMore);
        data.extend_from_slice(&ok[5..]);
        assert_eq!(c.received(&data), Step::Done(Outcome::new(CheckStatus::L7Ok, "10.11.6-MariaDB-0+deb12u1")));
    }

    #[test]
    fn pre_41_auth_packet() {
        let p = auth_packet("u", false);
        assert_eq!(p, vec![8, 0, 0, 1, 0x01, 0x00, 0x00, 0x00, 0x01, b'u', 0, 0]);
    }

    #[test]
    fn access_denied_is_l7sts_with_the_message() {
        let mut c = mysql(Some("nobody"), true);
        let mut data = handshake();
        c.received(&data);
        data.extend_from_slice(&denied());
        assert_eq!(
            c.received(&data),
            Step::Done(Outcome {
                status: CheckStatus::L7Sts,
                code: Some(1045),
                info: "Access denied for user 'nobody'@'localhost' (using password: NO)".into()
            })
        );
    }

    #[test]
    fn error_instead_of_handshake() {
        let mut e = vec![0xff, 0x10, 0x04];
        e.extend_from_slice(b"Too many connections");
        let mut c = mysql(None, true);
        assert_eq!(c.received(&pkt(0, &e)), Step::Done(Outcome { status: CheckStatus::L7Sts, code: Some(1040), info: "Too many connections".into() }));
    }

    #[test]
    fn garbage_is_l7rsp() {
        let mut c = mysql(None, true);
        assert_eq!(c.received(b"HTTP/1.1 400 Bad Request\r\n"), Step::Done(invalid("Invalid MySQL handshake")));
        let mut c = mysql(None, true);
        assert_eq!(c.received(&pkt(0, b"\x30hello")), Step::Done(invalid("Invalid MySQL handshake")));
    }

    #[test]
    fn closed_early() {
        let mut c = mysql(Some("u"), true);
        assert_eq!(c.closed(b"").status, CheckStatus::L7Rsp);
        let mut c = mysql(Some("u"), true);
        let h = handshake();
        assert_eq!(c.closed(&h[..12]).status, CheckStatus::L7Rsp);
        let mut c = mysql(Some("u"), true);
        c.received(&h);
        assert_eq!(c.closed(&h).status, CheckStatus::L7Rsp);
    }
}
