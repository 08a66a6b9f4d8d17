//! The few X.509 fields sluiced reads itself: the subject and issuer names (for `ssl_c_s_dn`,
//! `ssl_c_i_dn`) and the DNS names a certificate is for (SNI selection). A minimal DER walker over
//! the certificate bytes; anything it does not understand reads as absent, never as an error of
//! the connection.

/// One DER element: its tag and content.
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Splits the first element off `buf`.
fn next(buf: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = if l0 < 0x80 {
        (usize::from(l0), rest)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |a, &b| (a << 8) | usize::from(b)), &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((Tlv { tag, body: &rest[..len] }, &rest[len..]))
}

fn elements(mut buf: &[u8]) -> impl Iterator<Item = Tlv<'_>> {
    std::iter::from_fn(move || {
        let (t, rest) = next(buf)?;
        buf = rest;
        Some(t)
    })
}

/// The fields of `tbsCertificate`, in order.
fn tbs(cert: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let (c, _) = next(cert)?;
    let (tbs, _) = next(c.body)?;
    let mut fields: Vec<Tlv<'_>> = elements(tbs.body).collect();
    // The version is an explicit [0] before the serial number; without it, v1.
    if fields.first().is_some_and(|f| f.tag != 0xa0) {
        fields.insert(0, Tlv { tag: 0xa0, body: &[] });
    }
    Some(fields)
}

/// Short names OpenSSL prints for the usual attribute types.
fn attr_name(oid: &[u8]) -> String {
    const KNOWN: &[(&[u8], &str)] = &[
        (&[0x55, 0x04, 0x03], "CN"),
        (&[0x55, 0x04, 0x04], "SN"),
        (&[0x55, 0x04, 0x05], "serialNumber"),
        (&[0x55, 0x04, 0x06], "C"),
        (&[0x55, 0x04, 0x07], "L"),
        (&[0x55, 0x04, 0x08], "ST"),
        (&[0x55, 0x04, 0x09], "street"),
        (&[0x55, 0x04, 0x0a], "O"),
        (&[0x55, 0x04, 0x0b], "OU"),
        (&[0x55, 0x04, 0x0c], "title"),
        (&[0x55, 0x04, 0x2a], "GN"),
        (&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19], "DC"),
        (&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01], "UID"),
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01], "emailAddress"),
    ];
    if let Some((_, n)) = KNOWN.iter().find(|(o, _)| *o == oid) {
        return (*n).to_string();
    }
    // Dotted form for the others.
    let mut parts = Vec::new();
    if let Some((&first, rest)) = oid.split_first() {
        parts.push((first / 40).to_string());
        parts.push((first % 40).to_string());
        let mut v: u64 = 0;
        for &b in rest {
            v = (v << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                parts.push(v.to_string());
                v = 0;
            }
        }
    }
    parts.join(".")
}

/// The (type, value) pairs of a Name, in the order of the certificate.
fn name_entries(name: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rdn in elements(name) {
        for atv in elements(rdn.body) {
            let mut it = elements(atv.body);
            let (Some(oid), Some(val)) = (it.next(), it.next()) else { continue };
            let value = match val.tag {
                // BMPString: UTF-16.
                0x1e => {
                    let units: Vec<u16> = val.body.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                    String::from_utf16_lossy(&units)
                }
                _ => String::from_utf8_lossy(val.body).into_owned(),
            };
            out.push((attr_name(oid.body), value));
        }
    }
    out
}

/// A certificate's subject (`issuer` false) or issuer name, as (type, value) pairs.
pub fn dn_entries(cert: &[u8], issuer: bool) -> Option<Vec<(String, String)>> {
    let f = tbs(cert)?;
    // version, serial, signature, issuer, validity, subject
    let idx = if issuer { 3 } else { 5 };
    Some(name_entries(f.get(idx)?.body))
}

/// HAProxy's forms of a name: OpenSSL's one-line form `/C=FR/O=Example/CN=name`, or RFC 2253
/// (`CN=name,O=Example,C=FR`, last entry first).
pub fn format_dn(entries: &[(String, String)], rfc2253: bool) -> String {
    if rfc2253 {
        let esc = |v: &str| {
            let mut s = String::new();
            for (i, ch) in v.chars().enumerate() {
                if matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || (i == 0 && matches!(ch, '#' | ' ')) {
                    s.push('\\');
                }
                s.push(ch);
            }
            s
        };
        entries.iter().rev().map(|(k, v)| format!("{k}={}", esc(v))).collect::<Vec<_>>().join(",")
    } else {
        entries.iter().map(|(k, v)| format!("/{k}={v}")).collect()
    }
}

/// The DNS names a certificate serves: its subjectAltName dNSNames, or its CN when it has none.
pub fn dns_names(cert: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let Some(f) = tbs(cert) else { return names };
    // Extensions are the explicit [3] after subjectPublicKeyInfo.
    if let Some(ext) = f.iter().skip(7).find(|t| t.tag == 0xa3)
        && let Some((seq, _)) = next(ext.body)
    {
        for e in elements(seq.body) {
            let mut it = elements(e.body);
            let Some(oid) = it.next() else { continue };
            if oid.body != [0x55, 0x1d, 0x11] {
                continue;
            }
            let Some(value) = it.find(|t| t.tag == 0x04) else { continue };
            let Some((general_names, _)) = next(value.body) else { continue };
            for gn in elements(general_names.body) {
                if gn.tag == 0x82 {
                    names.push(String::from_utf8_lossy(gn.body).to_ascii_lowercase());
                }
            }
        }
    }
    if names.is_empty()
        && let Some(cn) = f.get(5).map(|s| name_entries(s.body)).and_then(|e| e.into_iter().rev().find(|(k, _)| k == "CN"))
    {
        names.push(cn.1.to_ascii_lowercase());
    }
    names
}

/// The serial number's bytes (a leading zero byte of the DER integer dropped).
pub fn serial(cert: &[u8]) -> Option<Vec<u8>> {
    let f = tbs(cert)?;
    let b = f.get(1)?.body;
    Some(if b.len() > 1 && b[0] == 0 { &b[1..] } else { b }.to_vec())
}

/// The serial number, as upper-case hexadecimal.
pub fn serial_hex(cert: &[u8]) -> Option<String> {
    Some(serial(cert)?.iter().map(|x| format!("{x:02X}")).collect())
}

/// `notBefore` and `notAfter` as OpenSSL prints them (`Sep 13 21:20:24 2019 GMT`).
pub fn validity(cert: &[u8]) -> Option<(String, String)> {
    let f = tbs(cert)?;
    let mut it = elements(f.get(4)?.body);
    let (a, b) = (it.next()?, it.next()?);
    Some((asn1_time(&a)?, asn1_time(&b)?))
}

fn asn1_time(t: &Tlv<'_>) -> Option<String> {
    let s = std::str::from_utf8(t.body).ok()?;
    let (year, rest) = match t.tag {
        0x17 => {
            let yy: u32 = s.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let n = |r: std::ops::Range<usize>| rest.get(r).and_then(|v| v.parse::<u32>().ok());
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.get(usize::try_from(n(0..2)?).ok()?.checked_sub(1)?)?;
    Some(format!("{month} {:>2} {:02}:{:02}:{:02} {year} GMT", n(2..4)?, n(4..6)?, n(6..8)?, n(8..10)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_openssl_does() {
        assert_eq!(asn1_time(&Tlv { tag: 0x17, body: b"190913212024Z" }).unwrap(), "Sep 13 21:20:24 2019 GMT");
        assert_eq!(asn1_time(&Tlv { tag: 0x18, body: b"21260105010203Z" }).unwrap(), "Jan  5 01:02:03 2126 GMT");
    }

    #[test]
    fn dn_forms() {
        let e = vec![("C".to_string(), "FR".to_string()), ("O".to_string(), "A, B".to_string()), ("CN".to_string(), "x".to_string())];
        assert_eq!(format_dn(&e, false), "/C=FR/O=A, B/CN=x");
        assert_eq!(format_dn(&e, true), "CN=x,O=A\\, B,C=FR");
    }
}
