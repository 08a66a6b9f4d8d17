//! HTTP Basic authentication against `userlist` sections, for `http_auth` and `http_auth_group`.
//!
//! As HAProxy: the credentials come from the first `Authorization` header whose scheme is `Basic`;
//! a user's password is either `insecure-password` text or a crypt(3) hash. SHA-512 (`$6$`) and
//! SHA-256 (`$5$`) crypt hashes are checked; any other hash never matches.

use std::borrow::Cow;

use super::eval::HttpMsg;
use super::http_fetch::Values;
use crate::config::model::{User, UserPassword, Userlist};

/// The scheme and the credentials after it, from the first Authorization value.
fn authorization(msg: &dyn HttpMsg) -> Option<(&[u8], &[u8])> {
    let v = Values::new(msg, Some(b"authorization"), false).next()?;
    let space = v.iter().position(|&c| c == b' ').filter(|&i| i > 0)?;
    Some((&v[..space], &v[space + 1..]))
}

/// `http_auth_type`: the scheme of the Authorization header as HAProxy names it.
pub(crate) fn scheme(msg: &dyn HttpMsg) -> Option<&'static str> {
    let (scheme, _) = authorization(msg)?;
    if scheme.eq_ignore_ascii_case(b"basic") {
        Some("Basic")
    } else if scheme.eq_ignore_ascii_case(b"digest") {
        Some("Digest")
    } else if scheme.eq_ignore_ascii_case(b"bearer") {
        Some("Bearer")
    } else {
        None
    }
}

/// The decoded `user:password` of a `Basic` Authorization header.
pub(crate) struct Credentials {
    decoded: Vec<u8>,
    colon: usize,
}

impl Credentials {
    pub fn user(&self) -> &[u8] {
        &self.decoded[..self.colon]
    }

    pub fn pass(&self) -> &[u8] {
        &self.decoded[self.colon + 1..]
    }

    pub fn into_user(mut self) -> Vec<u8> {
        self.decoded.truncate(self.colon);
        self.decoded
    }
}

/// The credentials of a `Basic` Authorization header.
pub(crate) fn basic_credentials(msg: &dyn HttpMsg) -> Option<Credentials> {
    let (scheme, data) = authorization(msg)?;
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = super::convert::base64_decode(data)?;
    let colon = decoded.iter().position(|&c| c == b':')?;
    Some(Credentials { decoded, colon })
}

/// The user of `ul` the credentials name, when the password is theirs.
pub(crate) fn check_user<'a>(ul: &'a Userlist, cred: &Credentials) -> Option<&'a User> {
    let pass = cred.pass();
    let u = ul.users.iter().find(|u| u.name.as_bytes() == cred.user())?;
    let ok = match &u.password {
        UserPassword::Insecure(p) => constant_time_eq(p.as_bytes(), pass),
        UserPassword::Hashed(h) => crypt_matches(h, pass),
    };
    ok.then_some(u)
}

/// True when `user` is in one of `groups`: named by its own `groups` option or by the group's
/// `users` list.
pub(crate) fn in_any_group(ul: &Userlist, user: &str, groups: &[Box<str>]) -> bool {
    let Some(u) = ul.users.iter().find(|u| u.name == user) else { return false };
    groups.iter().any(|g| u.groups.iter().any(|ug| **ug == **g) || ul.groups.iter().any(|lg| *lg.name == **g && lg.users.iter().any(|m| *m == user)))
}

fn crypt_matches(hash: &str, pass: &[u8]) -> bool {
    // The crate checks `&str` passwords; crypt(3) hashes bytes, so other bytes cannot match here.
    let pass: Cow<'_, str> = match std::str::from_utf8(pass) {
        Ok(p) => Cow::Borrowed(p),
        Err(_) => return false,
    };
    if hash.starts_with("$6$") {
        sha_crypt::sha512_check(&pass, hash).is_ok()
    } else if hash.starts_with("$5$") {
        sha_crypt::sha256_check(&pass, hash).is_ok()
    } else {
        false
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_hashes_never_match_nor_panic() {
        for h in
            ["$6$", "$6$salt", "$6$salt$", "$6$salt$!!!!", "$6$rounds=10$salt$abc", "$6$rounds=x$s$h", "$5$$", "$5$a$b$c", "$6$$$$$", "$2y$10$abc", "", "plain"]
        {
            assert!(!crypt_matches(h, b"secret"), "{h}");
        }
        assert!(!crypt_matches("$6$saltsalt$x", b"\xff"));
    }
}
