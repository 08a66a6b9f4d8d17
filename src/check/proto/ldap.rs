//! `option ldap-check`: HAProxy sends an anonymous LDAPv3 simple bind (message ID 1, empty name,
//! empty password) and reads the BindResponse:
//!
//! * not a BER SEQUENCE holding message ID 1 and a BindResponse (`[APPLICATION 1]`) →
//!   `L7RSP "Not LDAPv3 protocol"`;
//! * resultCode 0 → `L7OK "Success"`;
//! * another resultCode → `L7STS "See RFC: http://tools.ietf.org/html/rfc4511#section-4.1.9"`,
//!   the result code in `Outcome.code`.

use super::{Conversation, Outcome, Step};
use crate::check::config::CheckStatus;

/// `SEQUENCE { messageID 1, [APPLICATION 0] BindRequest { version 3, name "", simple "" } }`.
pub const BIND_REQUEST: &[u8] = &[0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00];

/// The conversation for `option ldap-check`.
pub fn ldap() -> Box<dyn Conversation> {
    Box::new(Ldap)
}

struct Ldap;

fn not_ldap() -> Outcome {
    Outcome::new(CheckStatus::L7Rsp, "Not LDAPv3 protocol")
}

enum Parse<T> {
    More,
    Bad,
    Ok(T),
}

/// A BER length at `data[0..]`: (length, bytes it took).
fn ber_len(data: &[u8]) -> Parse<(usize, usize)> {
    let Some(&first) = data.first() else { return Parse::More };
    if first < 0x80 {
        return Parse::Ok((first as usize, 1));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return Parse::Bad;
    }
    if data.len() < 1 + n {
        return Parse::More;
    }
    Parse::Ok((data[1..1 + n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize), 1 + n))
}

/// A tag-length-value at `data[0..]` with the expected tag: (value range start, end).
fn tlv(data: &[u8], tag: u8) -> Parse<(usize, usize)> {
    let Some(&t) = data.first() else { return Parse::More };
    if t != tag {
        return Parse::Bad;
    }
    match ber_len(&data[1..]) {
        Parse::More => Parse::More,
        Parse::Bad => Parse::Bad,
        Parse::Ok((len, took)) => Parse::Ok((1 + took, 1 + took + len)),
    }
}

fn judge(data: &[u8]) -> Parse<Outcome> {
    macro_rules! get {
        ($e:expr) => {
            match $e {
                Parse::More => return Parse::More,
                Parse::Bad => return Parse::Bad,
                Parse::Ok(v) => v,
            }
        };
    }
    let (start, _end) = get!(tlv(data, 0x30));
    let mut p = start;
    let (id_start, id_end) = get!(tlv(&data[p..], 0x02));
    if data.len() < p + id_end {
        return Parse::More;
    }
    if data[p + id_start..p + id_end] != [0x01] {
        return Parse::Bad;
    }
    p += id_end;
    let (op_start, _) = get!(tlv(&data[p..], 0x61));
    p += op_start;
    let (rc_start, rc_end) = get!(tlv(&data[p..], 0x0a));
    if data.len() < p + rc_end {
        return Parse::More;
    }
    if rc_end - rc_start != 1 {
        return Parse::Bad;
    }
    let code = data[p + rc_start];
    Parse::Ok(if code == 0 {
        Outcome { status: CheckStatus::L7Ok, code: Some(0), info: "Success".into() }
    } else {
        Outcome { status: CheckStatus::L7Sts, code: Some(code.into()), info: "See RFC: http://tools.ietf.org/html/rfc4511#section-4.1.9".into() }
    })
}

impl Conversation for Ldap {
    fn start(&mut self) -> Step {
        Step::Send(BIND_REQUEST.to_vec())
    }

    fn received(&mut self, data: &[u8]) -> Step {
        match judge(data) {
            Parse::More if data.len() < 64 * 1024 => Step::NeedMore,
            Parse::More | Parse::Bad => Step::Done(not_ldap()),
            Parse::Ok(o) => Step::Done(o),
        }
    }

    fn closed(&mut self, data: &[u8]) -> Outcome {
        match judge(data) {
            Parse::Ok(o) => o,
            _ => not_ldap(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUCCESS: &[u8] = &[0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00];

    #[test]
    fn sends_an_anonymous_v3_bind() {
        assert_eq!(ldap().start(), Step::Send(BIND_REQUEST.to_vec()));
    }

    #[test]
    fn success_bind_response_is_up() {
        let mut c = ldap();
        for i in 0..10 {
            assert_eq!(c.received(&SUCCESS[..i]), Step::NeedMore, "after {i} bytes");
        }
        let ok = Outcome { status: CheckStatus::L7Ok, code: Some(0), info: "Success".into() };
        assert_eq!(c.received(&SUCCESS[..10]), Step::Done(ok.clone()));
        assert_eq!(c.received(SUCCESS), Step::Done(ok));
    }

    #[test]
    fn long_form_lengths_are_read() {
        let mut c = ldap();
        let m = [0x30, 0x84, 0, 0, 0, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x84, 0, 0, 0, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00];
        assert_eq!(c.received(&m).clone(), Step::Done(Outcome { status: CheckStatus::L7Ok, code: Some(0), info: "Success".into() }));
    }

    #[test]
    fn a_failed_bind_is_l7sts() {
        // inappropriateAuthentication (48), as servers that refuse anonymous binds answer.
        let m = [0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 48, 0x04, 0x00, 0x04, 0x00];
        let Step::Done(o) = ldap().received(&m) else { panic!() };
        assert_eq!(o.status, CheckStatus::L7Sts);
        assert_eq!(o.code, Some(48));
        assert_eq!(o.info, "See RFC: http://tools.ietf.org/html/rfc4511#section-4.1.9");
    }

    #[test]
    fn garbage_is_not_ldap() {
        assert_eq!(ldap().received(b"HTTP/1.0 400"), Step::Done(not_ldap()));
        // Wrong message ID, wrong operation.
        assert_eq!(ldap().received(&[0x30, 0x0c, 0x02, 0x01, 0x02, 0x61]), Step::Done(not_ldap()));
        assert_eq!(ldap().received(&[0x30, 0x0c, 0x02, 0x01, 0x01, 0x65]), Step::Done(not_ldap()));
    }

    #[test]
    fn closed_early() {
        assert_eq!(ldap().closed(b""), not_ldap());
        assert_eq!(ldap().closed(&SUCCESS[..8]), not_ldap());
        assert_eq!(ldap().closed(SUCCESS).status, CheckStatus::L7Ok);
    }
}
