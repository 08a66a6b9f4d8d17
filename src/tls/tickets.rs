//! `tls-ticket-keys <file>`: session tickets sealed with keys several sluiced nodes share, so a
//! client resumes on whichever node it reaches. The file holds one base64 key per line (48 or
//! 80 bytes, HAProxy's sizes; `#` comments and blank lines skipped). Each key's first 16 bytes
//! name it; an AES-256-GCM key is derived from the rest with SHA-256. The last key of the file
//! seals new tickets and every key opens them, so keys rotate by appending a line on every node
//! (then dropping the oldest). Tickets are not interchangeable with HAProxy's (which uses
//! AES-CBC and HMAC).

use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::Digest;

/// How long a client may keep a ticket (HAProxy's `tune.ssl.lifetime` default, 300 s, is for
/// its session cache; tickets from a key file live as long as the key is in the file).
const LIFETIME_SECS: u32 = 2 * 60 * 60;

struct Key {
    name: [u8; 16],
    aead: LessSafeKey,
}

/// Tickets sealed with the keys of a file.
pub struct FileTicketer {
    keys: Vec<Key>,
    rng: SystemRandom,
}

impl std::fmt::Debug for FileTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileTicketer({} keys)", self.keys.len())
    }
}

impl FileTicketer {
    pub fn load(path: &Path) -> Result<FileTicketer, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("unable to load TLS ticket keys '{}' : {e}", path.display()))?;
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let raw = crate::route::convert::base64_decode(line.as_bytes())
                .filter(|k| k.len() == 48 || k.len() == 80)
                .ok_or_else(|| format!("'{}' line {} : a TLS ticket key is 48 or 80 bytes in base64", path.display(), i + 1))?;
            let mut name = [0u8; 16];
            name.copy_from_slice(&raw[..16]);
            let secret = sha2::Sha256::digest(&raw[16..]);
            let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret).map_err(|_| "cannot use a TLS ticket key".to_string())?);
            keys.push(Key { name, aead });
        }
        if keys.is_empty() {
            return Err(format!("no TLS ticket key in '{}'", path.display()));
        }
        Ok(FileTicketer { keys, rng: SystemRandom::new() })
    }
}

impl rustls::server::ProducesTickets for FileTicketer {
    fn enabled(&self) -> bool {
        true
    }
    fn lifetime(&self) -> u32 {
        LIFETIME_SECS
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let key = self.keys.last()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut sealed = plain.to_vec();
        key.aead.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(key.name), &mut sealed).ok()?;
        let mut out = Vec::with_capacity(16 + NONCE_LEN + sealed.len());
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let name = cipher.get(..16)?;
        let nonce: [u8; NONCE_LEN] = cipher.get(16..16 + NONCE_LEN)?.try_into().ok()?;
        let key = self.keys.iter().find(|k| k.name == name)?;
        let mut body = cipher.get(16 + NONCE_LEN..)?.to_vec();
        let plain = key.aead.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(key.name), &mut body).ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    fn file(lines: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("sluiced-tickets-{}-{}", std::process::id(), lines.len()));
        std::fs::write(&p, lines).unwrap();
        p
    }

    #[test]
    fn a_ticket_sealed_with_one_file_opens_with_another_holding_the_key() {
        let k1 = String::from_utf8(crate::route::convert::base64(&[1u8; 48])).unwrap();
        let k2 = String::from_utf8(crate::route::convert::base64(&[2u8; 80])).unwrap();
        let a = FileTicketer::load(&file(&format!("# keys\n{k1}\n{k2}\n"))).unwrap();
        let b = FileTicketer::load(&file(&format!("{k2}\n"))).unwrap();
        let t = a.encrypt(b"session state").unwrap();
        assert_eq!(b.decrypt(&t).unwrap(), b"session state");
        let mut bad = t.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(b.decrypt(&bad).is_none());
        let only_k1 = FileTicketer::load(&file(&format!("{k1}\n\n"))).unwrap();
        assert!(only_k1.decrypt(&t).is_none());
    }

    #[test]
    fn bad_key_lengths_are_refused() {
        let short = String::from_utf8(crate::route::convert::base64(&[1u8; 32])).unwrap();
        assert!(FileTicketer::load(&file(&format!("{short}\n"))).unwrap_err().contains("48 or 80 bytes"));
    }
}
