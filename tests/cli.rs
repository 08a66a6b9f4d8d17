//! The command line as HAProxy users and their tools drive it.

use std::process::Command;

fn sluiced(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluiced")).args(args).output().expect("run sluiced")
}

#[test]
fn dash_v_prints_sluiced_and_haproxy_compatible_version_lines() {
    let out = sluiced(&["-v"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with(&format!("sluiced version {}", env!("CARGO_PKG_VERSION"))));
    // Tools read the third word of an `HAProxy version` line.
    let hap = lines.next().unwrap();
    assert!(hap.starts_with("HAProxy version 3.4"), "{hap}");
    assert!(!text.contains("Feature list"));
}

#[test]
fn dash_vv_feature_list_and_services_tell_what_this_build_has() {
    let out = sluiced(&["-vv"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let features = text.lines().find(|l| l.starts_with("Feature list : ")).expect("a Feature list line");
    for (name, on) in sluiced::build::FEATURES {
        let tok = format!("{}{name}", if *on { '+' } else { '-' });
        assert!(features.split(' ').any(|w| w == tok), "{tok} missing from {features}");
    }
    let services = text.lines().find(|l| l.starts_with("Available services : ")).expect("an Available services line");
    if sluiced::build::SERVICES.is_empty() {
        assert_eq!(services, "Available services : none");
    }
    // -cc answers feature() from the same table.
    for (name, on) in sluiced::build::FEATURES {
        let st = sluiced(&["-cc", &format!("feature({name})")]).status.code();
        assert_eq!(st, Some(if *on { 0 } else { 1 }), "feature({name})");
    }
}

#[test]
fn unknown_flags_fail_with_usage_but_unknown_debug_flags_are_ignored() {
    let out = sluiced(&["-Z"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unknown option '-Z'") && err.contains("Usage : sluiced"), "{err}");
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/quickstart.cfg");
    let out = sluiced(&["-dM", "-dI", "-dS", "-c", "-f", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_mode_prints_valid_and_quiet_mode_prints_nothing() {
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/quickstart.cfg");
    let out = sluiced(&["-c", "-f", cfg]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "Configuration file is valid\n");
    let out = sluiced(&["-c", "-q", "-f", cfg]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn quiet_in_global_is_dash_q_warnings_and_the_valid_line_are_not_printed_alerts_are() {
    let dir = std::env::temp_dir().join(format!("sluiced-cli-quiet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("quiet.cfg");
    // `maxsslconn` is parsed only, so it is warned about.
    let text = "global\n    quiet\n    maxsslconn 10\ndefaults\n    mode http\n    timeout client 5s\nfrontend f\n    bind 127.0.0.1:0\n    http-request return status 200\n";
    std::fs::write(&f, text).unwrap();
    let out = sluiced(&["-c", "-f", f.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let loud = text.replace("    quiet\n", "");
    std::fs::write(&f, &loud).unwrap();
    let out = sluiced(&["-c", "-f", f.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("'maxsslconn' : parsed but not applied yet"));
    std::fs::write(&f, text.replace("mode http", "mode nonsense")).unwrap();
    let out = sluiced(&["-c", "-f", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[ALERT]"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_mode_shows_the_warnings_of_building_the_routing_table_and_zero_warning_refuses_them() {
    let dir = std::env::temp_dir().join(format!("sluiced-cli-compile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("compile.cfg");
    // Valid for the parser; the routing table warns that cookie persistence needs mode http.
    std::fs::write(
        &f,
        "defaults\n    mode tcp\n    timeout client 5s\n    timeout connect 5s\n    timeout server 5s\nfrontend f\n    bind 127.0.0.1:0\n    default_backend b\nbackend b\n    cookie SRV insert\n    server s 127.0.0.1:1\n",
    )
    .unwrap();
    let path = f.to_str().unwrap();
    let out = sluiced(&["-c", "-f", path]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("[WARNING]") && err.contains("cookie persistence needs mode http"), "{err}");
    let strict = sluiced(&["-c", "-dW", "-f", path]);
    let err = String::from_utf8_lossy(&strict.stderr).into_owned();
    assert_eq!(strict.status.code(), Some(1), "{err}");
    assert!(err.contains("cookie persistence needs mode http") && err.contains("'zero-warning' is set"), "{err}");
    // The daemon itself refuses to start on it under -dW.
    let run = sluiced(&["-dW", "-f", path]);
    assert_eq!(run.status.code(), Some(1));
    assert!(sluiced(&["-c", "-q", "-f", path]).stderr.is_empty(), "quiet shows nothing");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_configuration_file_is_an_error() {
    let out = sluiced(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("No configuration file specified"));
}

#[test]
fn alerts_carry_the_process_id_as_haproxy_prints_it() {
    let dir = std::env::temp_dir().join(format!("sluiced-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.cfg");
    std::fs::write(&f, "backend b\n  balanse roundrobin\n").unwrap();
    let out = sluiced(&["-c", "-f", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let first = err.lines().next().unwrap();
    assert!(first.starts_with("[ALERT]    ("), "{first}");
    assert!(first.contains(&format!("parsing [{}:2] : 'balanse'", f.display())), "{first}");
    assert!(err.lines().last().unwrap().ends_with("Fatal errors found in configuration."), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
