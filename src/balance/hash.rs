//! The hash functions of `hash-type`, and the avalanche mixer, with HAProxy's definitions so a
//! key lands in the same place of the hash space as it would under HAProxy.
//!
//! Every function yields 32 bits: HAProxy's hash space is 32 bits wide, and the consistent-hash
//! ring lives in that space.

use super::config::HashFunction;

/// Hashes `data` with `f`, then applies [`avalanche`] when `hash-type ... avalanche` asks for it.
/// The data plane calls this with the sample named by `balance` (the URI, a header, a URL
/// parameter, the `hash` expression) and puts the result in [`PickKey::hash`](super::PickKey::hash).
///
/// For `none`, `data` is the sample's text form and its leading decimal integer is the hash, as in
/// HAProxy (an integer sample already hashed by a converter).
pub fn hash_bytes(f: HashFunction, avalanche_mix: bool, data: &[u8]) -> u64 {
    let h = match f {
        HashFunction::Sdbm => sdbm(data),
        HashFunction::Djb2 => djb2(data),
        HashFunction::Wt6 => wt6(data),
        HashFunction::Crc32 => crc32(data),
        HashFunction::None => leading_int(data),
    };
    u64::from(if avalanche_mix { avalanche(h) } else { h })
}

/// `hash = c + (hash << 6) + (hash << 16) - hash`, from the sdbm database library.
pub fn sdbm(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |h, &c| u32::from(c).wrapping_add(h << 6).wrapping_add(h << 16).wrapping_sub(h))
}

/// Bernstein's `hash * 33 + c`, starting from 5381.
pub fn djb2(data: &[u8]) -> u32 {
    data.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(u32::from(c)))
}

/// Willy Tarreau's wt6: two 32-bit halves, rotated by amounts the data itself decides.
pub fn wt6(data: &[u8]) -> u32 {
    let (mut h0, mut h1) = (0xa53c_965a_u32, 0x5ca6_953a_u32);
    let (mut step0, mut step1) = (6u32, 18u32);
    for &c in data {
        let c = u32::from(c);
        h0 = !(h0 ^ c);
        h1 = !(h1.wrapping_add(c));
        // A rotation by 0 keeps the value, as HAProxy's shift pair does on the machines it runs on.
        let rotated_h1 = h1.rotate_left(step0);
        h1 = h0.rotate_left(step1);
        h0 = rotated_h1;
        let t = ((h0 >> 16) ^ h1) & 0xffff;
        step0 = t & 0x1f;
        step1 = t >> 11;
    }
    h0 ^ h1
}

/// The reflected IEEE 802.3 polynomial (zlib, Ethernet, PNG).
const CRC32_POLY: u32 = 0xedb8_8320;

const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ CRC32_POLY } else { c >> 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE), table-driven: `crc32(b"123456789") == 0xCBF43926`.
pub fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &b| (crc >> 8) ^ CRC32_TABLE[usize::from((crc as u8) ^ b)])
}

/// Bob Jenkins' public-domain 32-bit integer hash (six shifts), the full-avalanche mixer HAProxy
/// applies for `avalanche`, `balance source` with consistent hashing, and ring points: every
/// input bit flips each output bit with probability one half, so close keys land far apart.
pub fn avalanche(a: u32) -> u32 {
    let a = a.wrapping_add(0x7ed5_5d16).wrapping_add(a << 12);
    let a = (a ^ 0xc761_c23c) ^ (a >> 19);
    let a = a.wrapping_add(0x1656_67b1).wrapping_add(a << 5);
    let a = a.wrapping_add(0xd3a2_646c) ^ (a << 9);
    let a = a.wrapping_add(0xfd70_46c5).wrapping_add(a << 3);
    (a ^ 0xb55a_4f09) ^ (a >> 16)
}

/// The leading (optionally negative) decimal integer of `data`, truncated to 32 bits; 0 when
/// there is none.
fn leading_int(data: &[u8]) -> u32 {
    let (negative, digits) = match data.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, data),
    };
    let v = digits.iter().take_while(|c| c.is_ascii_digit()).fold(0u64, |v, c| v.wrapping_mul(10).wrapping_add(u64::from(c - b'0')));
    (if negative { v.wrapping_neg() } else { v }) as u32
}

/// Folds a caller's 64-bit hash into the 32-bit hash space: identity for the values
/// [`hash_bytes`] returns, and the high bits still count for wider ones.
pub(crate) fn fold32(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"The quick brown fox jumps over the lazy dog"), 0x414f_a339);
    }

    #[test]
    fn djb2_follows_its_definition() {
        assert_eq!(djb2(b""), 5381);
        assert_eq!(djb2(b"a"), 5381 * 33 + 97);
        assert_eq!(djb2(b"ab"), (5381 * 33 + 97) * 33 + 98);
    }

    #[test]
    fn djb2_wraps_on_long_input() {
        let long = vec![b'z'; 1000];
        let expected = long.iter().fold(5381u64, |h, &c| (h * 33 + u64::from(c)) & 0xffff_ffff);
        assert_eq!(u64::from(djb2(&long)), expected);
    }

    #[test]
    fn sdbm_follows_its_definition() {
        assert_eq!(sdbm(b""), 0);
        assert_eq!(sdbm(b"a"), 97);
        // 98 + (97 << 6) + (97 << 16) - 97
        assert_eq!(sdbm(b"ab"), 6_363_201);
    }

    #[test]
    fn sdbm_is_the_multiply_by_65599_form() {
        let data = b"/images/logo.png?v=3";
        let expected = data.iter().fold(0u32, |h, &c| h.wrapping_mul(65599).wrapping_add(u32::from(c)));
        assert_eq!(sdbm(data), expected);
    }

    #[test]
    fn wt6_of_nothing_is_its_seed_mix() {
        assert_eq!(wt6(b""), 0xa53c_965a ^ 0x5ca6_953a);
    }

    #[test]
    fn wt6_depends_on_every_byte() {
        assert_ne!(wt6(b"/a/b/c"), wt6(b"/a/b/d"));
        assert_ne!(wt6(b"ab"), wt6(b"ba"));
    }

    #[test]
    fn avalanche_spreads_neighbouring_inputs() {
        // Consecutive inputs differ in about half of their output bits.
        let flipped: u32 = (0..1000u32).map(|i| (avalanche(i) ^ avalanche(i + 1)).count_ones()).sum();
        let mean = f64::from(flipped) / 1000.0;
        assert!((12.0..20.0).contains(&mean), "mean flipped bits {mean}");
    }

    #[test]
    fn none_uses_the_leading_integer() {
        assert_eq!(hash_bytes(HashFunction::None, false, b"12345"), 12345);
        assert_eq!(hash_bytes(HashFunction::None, false, b"42abc"), 42);
        assert_eq!(hash_bytes(HashFunction::None, false, b"-1"), 0xffff_ffff);
        assert_eq!(hash_bytes(HashFunction::None, false, b"x"), 0);
    }

    #[test]
    fn avalanche_flag_mixes_the_result() {
        assert_eq!(hash_bytes(HashFunction::Djb2, true, b"key"), u64::from(avalanche(djb2(b"key"))));
        assert_eq!(hash_bytes(HashFunction::Crc32, false, b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn hashes_stay_in_32_bits() {
        for f in [HashFunction::Sdbm, HashFunction::Djb2, HashFunction::Wt6, HashFunction::Crc32, HashFunction::None] {
            assert!(hash_bytes(f, true, b"99999999999999999999 some text") <= u64::from(u32::MAX));
        }
    }

    #[test]
    fn fold32_keeps_32_bit_values() {
        assert_eq!(fold32(0xdead_beef), 0xdead_beef);
        assert_ne!(fold32(1 << 40), fold32(0));
    }
}
