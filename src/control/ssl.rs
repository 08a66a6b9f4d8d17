//! `show ssl cert`: the certificate files the `ssl` binds loaded, and the details of one, in
//! HAProxy's format. Certificates are read from the routing table; nothing here uses the TLS
//! library.

use std::fmt::Write as _;

use crate::route::RouteTable;

/// Every certificate file, once, in the order the binds loaded them.
fn files(rt: &RouteTable) -> Vec<(&std::path::Path, Vec<&[u8]>)> {
    let mut out: Vec<(&std::path::Path, Vec<&[u8]>)> = Vec::new();
    for a in rt.frontends.iter().flat_map(|f| f.tls.iter().flatten()) {
        for (p, chain) in a.certificates() {
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, chain));
            }
        }
    }
    out
}

/// `show ssl cert [<filename>]`.
pub fn show_cert(rt: &RouteTable, name: Option<&str>) -> Result<String, String> {
    let all = files(rt);
    let Some(name) = name else {
        let mut out = String::from("# filename\n");
        for (p, _) in &all {
            let _ = writeln!(out, "{}", p.display());
        }
        return Ok(out);
    };
    let Some((path, chain)) = all.iter().find(|(p, _)| p.to_str() == Some(name)) else {
        return Err("Can't display the certificate: Not found or the certificate is a bundle!\n".into());
    };
    let mut out = String::new();
    let _ = writeln!(out, "Filename: {}", path.display());
    let _ = writeln!(out, "Status: Used");
    if let Some(leaf) = chain.first() {
        describe(&mut out, leaf, "");
        let names = crate::tls::der::dns_names(leaf);
        if !names.is_empty() {
            let _ = writeln!(out, "Subject Alternative Name: {}", names.iter().map(|n| format!("DNS:{n}")).collect::<Vec<_>>().join(", "));
        }
        use sha1::Digest;
        let fp: String = sha1::Sha1::digest(leaf).iter().map(|b| format!("{b:02X}")).collect();
        let _ = writeln!(out, "SHA1 FingerPrint: {fp}");
    }
    for c in chain.iter().skip(1) {
        let dn = |issuer| crate::tls::der::dn_entries(c, issuer).map(|e| crate::tls::der::format_dn(&e, false)).unwrap_or_default();
        let _ = writeln!(out, "Chain Subject: {}", dn(false));
        let _ = writeln!(out, "Chain Issuer: {}", dn(true));
    }
    Ok(out)
}

fn describe(out: &mut String, cert: &[u8], prefix: &str) {
    if let Some(s) = crate::tls::der::serial_hex(cert) {
        let _ = writeln!(out, "{prefix}Serial: {s}");
    }
    if let Some((from, to)) = crate::tls::der::validity(cert) {
        let _ = writeln!(out, "{prefix}notBefore: {from}");
        let _ = writeln!(out, "{prefix}notAfter: {to}");
    }
    let dn = |issuer| crate::tls::der::dn_entries(cert, issuer).map(|e| crate::tls::der::format_dn(&e, false)).unwrap_or_default();
    let _ = writeln!(out, "{prefix}Subject: {}", dn(false));
    let _ = writeln!(out, "{prefix}Issuer: {}", dn(true));
}
