//! Certificates at run time, in HAProxy's formats: `show ssl cert` lists the certificate files
//! the `ssl` binds loaded and details one; `set ssl cert` opens a transaction with a new PEM
//! bundle for one of them, `commit ssl cert` serves it on the new handshakes of every bind that
//! loaded the file (the binds are shared by all workers), `abort ssl cert` drops it. Parsing
//! and swapping are the TLS module's; nothing here uses the TLS library.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::route::RouteTable;
use crate::tls::server::CertifiedKey;

/// An uncommitted certificate: the file it replaces and the parsed bundle.
pub struct Transaction {
    file: String,
    key: Arc<CertifiedKey>,
}

/// Every certificate file, once, in the order the binds loaded them, with what it serves now.
fn files(rt: &RouteTable) -> Vec<(std::path::PathBuf, Arc<CertifiedKey>)> {
    let mut out: Vec<(std::path::PathBuf, Arc<CertifiedKey>)> = Vec::new();
    for a in rt.frontends.iter().flat_map(|f| f.tls.iter().flatten()) {
        for (p, key) in a.certificates() {
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, key));
            }
        }
    }
    out
}

fn lock(txn: &Mutex<Option<Transaction>>) -> std::sync::MutexGuard<'_, Option<Transaction>> {
    txn.lock().unwrap_or_else(|e| e.into_inner())
}

/// `show ssl cert [[*]<filename>]`: `*` names the file's uncommitted transaction.
pub fn show_cert(rt: &RouteTable, txn: &Mutex<Option<Transaction>>, name: Option<&str>) -> Result<String, String> {
    let not_found = || "Can't display the certificate: Not found or the certificate is a bundle!\n".to_string();
    let all = files(rt);
    let txn = lock(txn);
    let Some(name) = name else {
        let mut out = String::new();
        if let Some(t) = txn.as_ref() {
            let _ = writeln!(out, "# transaction\n*{}", t.file);
        }
        out.push_str("# filename\n");
        for (p, _) in &all {
            let _ = writeln!(out, "{}", p.display());
        }
        return Ok(out);
    };
    let (shown, status, key) = match name.strip_prefix('*') {
        Some(file) => match txn.as_ref().filter(|t| t.file == file) {
            Some(t) => (name.to_string(), "Uncommitted", t.key.clone()),
            None => return Err(not_found()),
        },
        None => match all.iter().find(|(p, _)| p.to_str() == Some(name)) {
            Some((p, k)) => (p.display().to_string(), "Used", k.clone()),
            None => return Err(not_found()),
        },
    };
    let chain: Vec<&[u8]> = key.cert.iter().map(|c| c.as_ref()).collect();
    let mut out = String::new();
    let _ = writeln!(out, "Filename: {shown}");
    let _ = writeln!(out, "Status: {status}");
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

/// `set ssl cert <filename> <payload>`: parses the bundle (chain and matching key) and opens or
/// updates the transaction. A payload that does not parse changes nothing.
pub fn set_cert(rt: &RouteTable, txn: &Mutex<Option<Transaction>>, name: Option<&str>, payload: Option<&str>) -> Result<String, String> {
    let (Some(name), Some(payload)) = (name, payload.filter(|p| !p.trim().is_empty())) else {
        return Err("'set ssl cert' expects a filename and a certificate as a payload\n".into());
    };
    let mut txn = lock(txn);
    if let Some(t) = txn.as_ref()
        && t.file != name
    {
        return Err(format!("The ongoing transaction is about '{}' but you are trying to set '{name}'\n", t.file));
    }
    let Some(bind) = rt.frontends.iter().flat_map(|f| f.tls.iter().flatten()).find(|a| a.has_file(name)) else {
        return Err("Can't replace a certificate which is not referenced by the configuration!\n".into());
    };
    let key = bind.parse_bundle(name, payload.as_bytes()).map_err(|e| format!("{e}\nCan't update {name}!\n"))?;
    let verb = if txn.is_some() { "updated" } else { "created" };
    *txn = Some(Transaction { file: name.to_string(), key });
    Ok(format!("Transaction {verb} for certificate {name}!\n"))
}

/// `commit ssl cert <filename>`: every bind that loaded the file serves the new certificate on
/// its next handshakes; connections already established keep theirs.
pub fn commit_cert(rt: &RouteTable, txn: &Mutex<Option<Transaction>>, name: Option<&str>) -> Result<String, String> {
    let Some(name) = name else {
        return Err("'commit ssl cert' expects a filename\n".into());
    };
    let mut txn = lock(txn);
    let t = match txn.as_ref() {
        None => return Err("No ongoing transaction! !\n".into()),
        Some(t) if t.file != name => return Err(format!("The ongoing transaction is about '{}' but you are trying to set '{name}'\n", t.file)),
        Some(t) => t,
    };
    for bind in rt.frontends.iter().flat_map(|f| f.tls.iter().flatten()).filter(|a| a.has_file(name)) {
        bind.replace(name, &t.key);
    }
    *txn = None;
    Ok(format!("Committing {name}\nSuccess!\n"))
}

/// `abort ssl cert <filename>`: drops the transaction; the certificate in use stays.
pub fn abort_cert(txn: &Mutex<Option<Transaction>>, name: Option<&str>) -> Result<String, String> {
    let Some(name) = name else {
        return Err("'abort ssl cert' expects a filename\n".into());
    };
    let mut txn = lock(txn);
    match txn.as_ref() {
        None => Err("No ongoing transaction!\n".into()),
        Some(t) if t.file != name => Err(format!("The ongoing transaction is about '{}' but you are trying to abort a transaction for '{name}'\n", t.file)),
        Some(_) => {
            *txn = None;
            Ok(format!("Transaction aborted for certificate '{name}'!\n"))
        }
    }
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
