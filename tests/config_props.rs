//! Property tests of the configuration loader: no input makes it panic, and a load without an alert
//! always yields a configuration. Inputs are arbitrary bytes and mutations of the valid corpus files
//! (lines deleted, duplicated, swapped, tokens inserted, text truncated), which keep most of the
//! structure of real configurations and so reach deeper into the keyword parsers than random bytes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use sluiced::config::{Loaded, load_str};

fn load(text: &str) -> Loaded {
    let env = HashMap::<String, String>::new();
    load_str("prop.cfg", text, &env)
}

/// The loader's contract: a result with no alert carries a configuration, one with an alert does not,
/// and a configuration that loaded compiles into a routing table without error.
fn assert_consistent(loaded: &Loaded) -> Result<(), TestCaseError> {
    let has_alert = loaded.diags.has_alerts();
    prop_assert_eq!(loaded.config.is_some(), !has_alert, "config presence must match the absence of alerts");
    if let Some(cfg) = &loaded.config
        && let Err(e) = sluiced::route::RouteTable::compile(cfg)
    {
        prop_assert!(false, "a validated configuration failed to compile: {}", e);
    }
    Ok(())
}

fn valid_corpus() -> &'static [String] {
    static FILES: OnceLock<Vec<String>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/valid");
        let mut paths: Vec<_> =
            std::fs::read_dir(&dir).expect("valid corpus").map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "cfg")).collect();
        paths.sort();
        paths.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
    })
}

/// Words that mean something to the lexer or the parser: section names, directives, quotes, escapes,
/// variables, condition operators.
const TOKENS: &[&str] = &[
    "global",
    "defaults",
    "frontend fe",
    "backend be",
    "listen li",
    "userlist ul",
    "http-errors he",
    "resolvers dns",
    "peers p",
    "cache c",
    ".if",
    ".elif",
    ".else",
    ".endif",
    ".if version_atleast(",
    ".alert x",
    ".warning w",
    "\"",
    "'",
    "\\",
    "\\x",
    "${",
    "${X-",
    "$",
    "#",
    "{",
    "}",
    "!",
    "||",
    "if",
    "unless",
    "from",
    "no",
    "default",
    "option",
    "timeout",
    "bind",
    "server",
    "server-template t 1-",
    "use_backend",
    "default_backend",
    "acl a",
    "%[",
    "%{",
    ":",
    "[::]:",
    "unix@",
    "fd@",
    "ipv4@",
    "-",
    "99999999999999999999",
    "0",
    "\t",
    "\0",
    "\u{feff}",
    "é",
];

#[derive(Clone, Debug)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    InsertToken { line: usize, col: usize, token: usize },
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), any::<usize>(), 0..TOKENS.len()).prop_map(|(line, col, token)| Mutation::InsertToken { line, col, token }),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Applies mutations to a text; indexes are taken modulo the current sizes so every one applies.
fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    for m in mutations {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match *m {
            Mutation::DeleteLine(i) => {
                lines.remove(i % n);
            }
            Mutation::DuplicateLine(i) => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
            Mutation::InsertToken { line, col, token } => {
                let l = &mut lines[line % n];
                let boundaries: Vec<usize> = l.char_indices().map(|(i, _)| i).chain([l.len()]).collect();
                let at = boundaries[col % boundaries.len()];
                l.insert_str(at, TOKENS[token]);
            }
            Mutation::Truncate(at) => {
                let joined = lines.join("\n");
                let mut cut = at % (joined.len() + 1);
                while !joined.is_char_boundary(cut) {
                    cut -= 1;
                }
                lines = joined[..cut].split('\n').map(str::to_owned).collect();
            }
        }
    }
    lines.join("\n")
}

#[test]
fn mutate_applies_each_kind_of_edit() {
    let t = "a\nb\nc";
    assert_eq!(mutate(t, &[Mutation::DeleteLine(1)]), "a\nc");
    assert_eq!(mutate(t, &[Mutation::DuplicateLine(4)]), "a\nb\nb\nc");
    assert_eq!(mutate(t, &[Mutation::SwapLines(0, 2)]), "c\nb\na");
    assert_eq!(mutate(t, &[Mutation::InsertToken { line: 0, col: 1, token: 0 }]), "aglobal\nb\nc");
    assert_eq!(mutate(t, &[Mutation::Truncate(3)]), "a\nb");
}

#[test]
fn valid_corpus_is_not_empty() {
    // The mutation property below would test nothing without files to mutate.
    assert!(valid_corpus().len() >= 40, "valid corpus has {} files", valid_corpus().len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        assert_consistent(&load(&text))?;
    }

    #[test]
    fn arbitrary_lines_of_config_words_never_panic(words in proptest::collection::vec((0..TOKENS.len(), "[ a-z0-9:./_-]{0,12}", prop::bool::ANY), 0..200)) {
        let mut text = String::new();
        for (token, filler, newline) in words {
            text.push_str(TOKENS[token]);
            text.push(' ');
            text.push_str(&filler);
            text.push(if newline { '\n' } else { ' ' });
        }
        assert_consistent(&load(&text))?;
    }

    #[test]
    fn mutated_valid_configs_never_panic(file in any::<prop::sample::Index>(), mutations in proptest::collection::vec(mutation(), 1..8)) {
        let files = valid_corpus();
        let original = &files[file.index(files.len())];
        let text = mutate(original, &mutations);
        assert_consistent(&load(&text))?;
    }
}
