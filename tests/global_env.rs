//! `setenv`, `presetenv`, `unsetenv` and `resetenv` in `global`, as HAProxy reads them: each line
//! sees what the lines before it set, so a configuration can name its addresses once.

mod support;

use support::*;

#[test]
fn setenv_in_global_feeds_the_addresses_and_replies_of_later_lines() {
    let port = free_port();
    let cfg = format!(
        "global\n  setenv LISTEN 127.0.0.1:{port}\n  presetenv GREETING hello-from-presetenv\n  presetenv LISTEN 127.0.0.1:1\n  setenv GONE x\n  unsetenv GONE\n\
         defaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind ${{LISTEN}}\n  \
         http-request return status 200 content-type text/plain string \"${{GREETING}}[${{GONE}}]\"\n"
    );
    let mut d = Sluiced::start(&cfg, &[port]);
    let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((status, String::from_utf8_lossy(&body).into_owned()), (200, "hello-from-presetenv[]".to_owned()));
    d.signal("TERM");
    d.wait_exit(std::time::Duration::from_secs(10));
    let err = d.stderr();
    assert!(!err.contains("not applied"), "setenv and its kin are applied, so not warned about:\n{err}");
}
