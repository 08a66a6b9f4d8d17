//! docs/configuration.md must list exactly what the registry accepts.

use std::path::PathBuf;

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md")
}

#[test]
fn configuration_reference_matches_the_keyword_registry() {
    let want = sluiced::config::docs::render_configuration_md();
    let have = std::fs::read_to_string(doc_path()).unwrap_or_default();
    if std::env::var_os("SLUICED_BLESS").is_some() {
        std::fs::write(doc_path(), &want).expect("write docs/configuration.md");
        return;
    }
    if have != want {
        let first = have.lines().zip(want.lines()).position(|(a, b)| a != b).unwrap_or(have.lines().count().min(want.lines().count()));
        panic!(
            "docs/configuration.md is out of date (first difference at line {}); regenerate it with `SLUICED_BLESS=1 cargo test --test docs_sync`",
            first + 1
        );
    }
}

#[test]
fn every_registered_keyword_has_syntax_description_and_example() {
    for t in sluiced::config::registry::doc_tables() {
        for (name, _, doc) in &t.entries {
            assert!(!doc.syntax.is_empty() && !doc.desc.is_empty() && !doc.example.is_empty(), "{}: '{name}' lacks documentation", t.title);
        }
    }
}

#[test]
fn keyword_names_are_unique_within_each_table() {
    for t in sluiced::config::registry::doc_tables() {
        let mut seen = std::collections::HashSet::new();
        for (name, _, _) in &t.entries {
            assert!(seen.insert(name.as_str()), "{}: '{name}' is registered twice", t.title);
        }
    }
}

#[test]
fn every_name_marked_implemented_exists_in_its_table() {
    let tables = sluiced::config::registry::doc_tables();
    for (title, names) in sluiced::route::IMPLEMENTED {
        let t = tables.iter().find(|t| t.title == *title).unwrap_or_else(|| panic!("no table '{title}'"));
        for n in *names {
            assert!(t.entries.iter().any(|(name, _, _)| name == n), "'{n}' is marked implemented but is not in table '{title}'");
        }
    }
}
