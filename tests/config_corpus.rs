//! The configuration corpus: every file of `tests/corpus/valid` passes `sluiced -c`, every file of
//! `tests/corpus/invalid` fails with the message its first line announces, and the command line's
//! check-mode exit statuses behave as HAProxy's do.
//!
//! An invalid file starts with `# expect: <line> <keyword> <substring>`: stderr must hold an alert
//! `parsing [<file>:<line>] : '<keyword>' : ...` containing `<substring>`, and no other located
//! alert (each invalid file has exactly one mistake). A keyword of several words is written in
//! single quotes (`'timeout clinet'`); `-` stands for a message that names no keyword.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary from the repository root, as the corpus files name their data files from there.
fn sluiced(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluiced")).args(args).current_dir(repo_root()).output().expect("run sluiced")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `.cfg` files of a corpus directory, as paths relative to the repository root, sorted.
fn corpus(kind: &str) -> Vec<String> {
    let dir = repo_root().join("tests/corpus").join(kind);
    let mut files: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cfg"))
        .map(|n| format!("tests/corpus/{kind}/{n}"))
        .collect();
    files.sort();
    files
}

#[derive(Debug, PartialEq)]
struct Expect {
    line: u32,
    keyword: Option<String>,
    substring: String,
}

/// Parses `# expect: <line> <keyword|'several words'|-> <substring>`.
fn parse_expect(first_line: &str) -> Result<Expect, String> {
    let rest = first_line.strip_prefix("# expect: ").ok_or("first line must start with '# expect: '")?;
    let (line, rest) = rest.split_once(' ').ok_or("missing keyword after the line number")?;
    let line: u32 = line.parse().map_err(|_| format!("'{line}' is not a line number"))?;
    let (keyword, rest) = if let Some(quoted) = rest.strip_prefix('\'') {
        let (kw, rest) = quoted.split_once("' ").ok_or("unterminated quoted keyword")?;
        (Some(kw.to_owned()), rest)
    } else {
        let (kw, rest) = rest.split_once(' ').ok_or("missing message substring after the keyword")?;
        ((kw != "-").then(|| kw.to_owned()), rest)
    };
    if rest.trim().is_empty() {
        return Err("empty message substring".into());
    }
    Ok(Expect { line, keyword, substring: rest.trim().to_owned() })
}

/// Alert lines that point at a file and line.
fn located_alerts(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.starts_with("[ALERT]") && l.contains("parsing [")).collect()
}

/// Checks one invalid file; `Err` says what is wrong.
fn check_invalid(path: &str) -> Result<(), String> {
    let text = fs::read_to_string(repo_root().join(path)).map_err(|e| e.to_string())?;
    let expect = parse_expect(text.lines().next().unwrap_or_default())?;
    let out = sluiced(&["-c", "-f", path]);
    let err = stderr(&out);
    if out.status.code() != Some(1) {
        return Err(format!("exit status {:?}, expected 1\n{err}", out.status.code()));
    }
    let prefix = match &expect.keyword {
        Some(kw) => format!("parsing [{path}:{}] : '{kw}' : ", expect.line),
        None => format!("parsing [{path}:{}] : ", expect.line),
    };
    let hit = err.lines().any(|l| l.split_once(&prefix).is_some_and(|(_, msg)| msg.contains(&expect.substring)));
    if !hit {
        return Err(format!("no alert '{prefix}...{}...'\n{err}", expect.substring));
    }
    let alerts = located_alerts(&err);
    if alerts.len() != 1 {
        return Err(format!("{} located alerts, expected exactly one\n{err}", alerts.len()));
    }
    Ok(())
}

#[test]
fn expect_header_parses_single_word_quoted_and_absent_keywords() {
    assert_eq!(parse_expect("# expect: 7 bind invalid address"), Ok(Expect { line: 7, keyword: Some("bind".into()), substring: "invalid address".into() }));
    assert_eq!(
        parse_expect("# expect: 12 'timeout clinet' unknown keyword"),
        Ok(Expect { line: 12, keyword: Some("timeout clinet".into()), substring: "unknown keyword".into() })
    );
    assert_eq!(parse_expect("# expect: 3 - quote"), Ok(Expect { line: 3, keyword: None, substring: "quote".into() }));
    assert!(parse_expect("# expect: x bind y").is_err());
    assert!(parse_expect("# expect: 3 bind").is_err());
    assert!(parse_expect("# nothing").is_err());
}

#[test]
fn corpus_has_at_least_forty_valid_and_forty_invalid_files() {
    let valid = corpus("valid").len();
    let invalid = corpus("invalid").len();
    assert!(valid >= 40, "only {valid} valid corpus files");
    assert!(invalid >= 40, "only {invalid} invalid corpus files");
}

#[test]
fn every_valid_corpus_file_passes_check_mode() {
    let mut failures = Vec::new();
    let files = corpus("valid");
    for path in &files {
        let out = sluiced(&["-c", "-f", path]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.code() != Some(0) || !stdout.contains("Configuration file is valid") {
            failures.push(format!("--- {path} (exit {:?})\n{}", out.status.code(), stderr(&out)));
        }
    }
    assert!(failures.is_empty(), "{} of {} valid files fail:\n{}", failures.len(), files.len(), failures.join("\n"));
}

#[test]
fn every_invalid_corpus_file_fails_with_its_expected_message() {
    let files = corpus("invalid");
    let failures: Vec<String> = files.iter().filter_map(|p| check_invalid(p).err().map(|e| format!("--- {p}: {e}"))).collect();
    assert!(failures.is_empty(), "{} of {} invalid files are not rejected as expected:\n{}", failures.len(), files.len(), failures.join("\n"));
}

#[test]
fn invalid_corpus_files_name_distinct_mistakes() {
    // Two files expecting the same keyword and message would test the same thing twice.
    let mut seen = std::collections::HashMap::new();
    for path in corpus("invalid") {
        let text = fs::read_to_string(repo_root().join(&path)).unwrap();
        let e = parse_expect(text.lines().next().unwrap_or_default()).unwrap_or_else(|m| panic!("{path}: {m}"));
        if let Some(prev) = seen.insert((e.keyword.clone(), e.substring.clone()), path.clone()) {
            panic!("{path} and {prev} expect the same message");
        }
    }
}

#[test]
fn conf_directory_examples_pass_check_mode() {
    let out = sluiced(&["-c", "-f", "conf/"]);
    assert_eq!(out.status.code(), Some(0), "conf/ fails:\n{}", stderr(&out));
}

#[test]
fn check_condition_exit_statuses() {
    assert_eq!(sluiced(&["-cc", "version_atleast(2.5) && !feature(FOO)"]).status.code(), Some(0));
    assert_eq!(sluiced(&["-cc", "version_before(2.0)"]).status.code(), Some(1));
    let bad = sluiced(&["-cc", "nope(1)"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("nope"), "{}", stderr(&bad));
}

/// A scratch directory under the target directory, removed and recreated for each test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn zero_warning_flag_turns_a_warning_into_exit_one() {
    let dir = scratch("zero_warning");
    let file = dir.join("warn.cfg");
    // A frontend without 'bind' loads with a warning.
    fs::write(&file, "defaults\n    mode http\n    timeout client 5s\n\nfrontend idle\n    default_backend be\n\nbackend be\n    server s1 10.0.0.1:80\n")
        .unwrap();
    let f = file.to_str().unwrap();
    let plain = sluiced(&["-c", "-f", f]);
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    assert!(stderr(&plain).contains("[WARNING]"), "expected a warning:\n{}", stderr(&plain));
    let strict = sluiced(&["-c", "-dW", "-f", f]);
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
    assert!(stderr(&strict).contains("zero-warning"), "{}", stderr(&strict));
}

#[test]
fn empty_file_is_rejected_with_a_message() {
    let dir = scratch("empty_file");
    let file = dir.join("empty.cfg");
    fs::write(&file, "# only a comment\n\n").unwrap();
    let out = sluiced(&["-c", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
}

#[test]
fn directory_without_cfg_files_is_rejected_with_a_message() {
    let dir = scratch("no_cfg");
    fs::write(dir.join("notes.txt"), "global\n").unwrap();
    let out = sluiced(&["-c", "-f", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no '.cfg' file"), "{}", stderr(&out));
}

#[test]
fn missing_file_is_rejected_with_a_message() {
    let out = sluiced(&["-c", "-f", "tests/corpus/does-not-exist.cfg"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("tests/corpus/does-not-exist.cfg") && err.contains("No such file or directory"), "{err}");
}

#[test]
fn every_mistake_of_a_file_is_reported_in_one_run() {
    let dir = scratch("many_mistakes");
    let file = dir.join("many.cfg");
    let text = "\
global
    maxcon 1000
defaults
    mode http
    timeout client 30x
    timeout connect 5s
    timeout server 5s
frontend fe
    bind 10.0.0.300:80
    use_backend nowhere
backend be
    server s1 10.0.0.1:80
    server s1 10.0.0.2:80
";
    fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap();
    let out = sluiced(&["-c", "-f", f]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for (line, kw) in [(2, "maxcon"), (5, "timeout client"), (9, "bind"), (10, "use_backend"), (13, "server")] {
        let needle = format!("parsing [{f}:{line}] : '{kw}' : ");
        assert!(err.contains(&needle), "missing '{needle}' in:\n{err}");
    }
    assert_eq!(located_alerts(&err).len(), 5, "{err}");
}

#[test]
fn several_files_and_a_directory_load_as_one_configuration() {
    // The backend of one file is found from the frontend of another, as with HAProxy's -f dir.
    let dir = scratch("split_config");
    fs::write(
        dir.join("10-front.cfg"),
        "defaults\n    mode http\n    timeout client 5s\n    timeout connect 5s\n    timeout server 5s\nfrontend fe\n    bind :8080\n    default_backend be\n",
    )
    .unwrap();
    fs::write(dir.join("20-back.cfg"), "backend be\n    server s1 10.0.0.1:80\n").unwrap();
    let out = sluiced(&["-c", "-f", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fs::remove_file(dir.join("20-back.cfg")).unwrap();
    let out = sluiced(&["-c", "-f", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("unable to find backend 'be'"), "{}", stderr(&out));
}

/// `chroot`, `user`, `group`, `uid` and `gid` act (tests/privileges.rs), so a Debian-style global
/// section passes `-c` without a warning, even in zero-warning mode; naming the user twice
/// (`user` then `uid`) is warned about, as HAProxy does, and the later line wins.
#[test]
fn privilege_keywords_pass_check_without_a_warning_and_a_second_user_is_warned_about() {
    let dir = scratch("privileges");
    let file = dir.join("debian.cfg");
    let base = "defaults\n    mode http\n    timeout client 5s\n\nfrontend f\n    bind 127.0.0.1:8080\n    http-request return status 200\n";
    fs::write(&file, format!("global\n    chroot /var/lib/haproxy\n    user nobody\n    group nogroup\n\n{base}")).unwrap();
    let f = file.to_str().unwrap();
    let out = sluiced(&["-c", "-dW", "-f", f]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));
    fs::write(&file, format!("global\n    user nobody\n    uid 99\n    gid 99\n    group nogroup\n\n{base}")).unwrap();
    let out = sluiced(&["-c", "-f", f]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    for (line, kw, what) in [(3, "uid", "user/uid"), (5, "group", "group/gid")] {
        let at = format!("parsing [{f}:{line}] : '{kw}' : {what} already specified; this line replaces it");
        assert!(err.lines().any(|l| l.starts_with("[WARNING]") && l.contains(&at)), "no warning for '{kw}' on line {line}:\n{err}");
    }
}
