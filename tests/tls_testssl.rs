//! `testssl` (Debian package `testssl.sh`, installed by `.ci/run`) against an `ssl` bind with
//! the default settings: no weak protocol and no weak cipher is offered.

mod support;

use std::process::Command;

use support::*;

#[test]
fn testssl_finds_no_weak_protocol_or_cipher_on_the_default_settings() {
    let dir = temp_dir("testssl");
    let (key, crt, pem) = (dir.join("k.key"), dir.join("c.crt"), dir.join("c.pem"));
    let st = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl is needed by this test");
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    std::fs::write(&pem, [std::fs::read(&crt).unwrap(), std::fs::read(&key).unwrap()].concat()).unwrap();
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout client 10s\nfrontend f\n  bind 127.0.0.1:{port} ssl crt {}\n  http-request return status 200 content-type text/plain string ok\n",
        pem.display()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    // -p: protocols, -s: cipher categories, -f: forward secrecy.
    let out = Command::new("timeout")
        .args(["170", "testssl", "--quiet", "--color", "0", "--warnings", "off", "-p", "-s", "-f"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("testssl is needed by this test: install the Debian package 'testssl.sh' (.ci/run does)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = |label: &str| text.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("no '{label}' line in:\n{text}")).to_string();
    for weak in ["SSLv2", "SSLv3", "TLS 1 ", "TLS 1.1", "NULL ciphers", "Anonymous NULL", "Export ciphers", "LOW:", "Triple DES", "Obsolete CBC"] {
        assert!(line(weak).contains("not offered"), "{weak} is offered:\n{text}");
    }
    for strong in ["TLS 1.2", "TLS 1.3", "Strong encryption (AEAD"] {
        assert!(line(strong).contains("offered (OK)"), "{strong} is not offered:\n{text}");
    }
    assert!(text.contains("PFS is offered (OK)"), "{text}");
    assert!(!text.contains("NOT ok"), "testssl reports a problem:\n{text}");
}
