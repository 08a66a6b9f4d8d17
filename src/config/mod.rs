//! Configuration: text in, validated model out. `lex` splits lines into words and applies `.if`
//! blocks, `parse` builds the model keyword by keyword through the registry, `validate` checks the
//! whole. `route` compiles the result; nothing else reads the model.

pub mod addr;
pub mod cond;
pub mod core_kw;
pub mod diag;
pub mod docs;
pub mod expr;
pub mod lex;
pub mod logformat;
pub mod model;
pub mod parse;
pub mod registry;
#[cfg(test)]
pub mod testing;
pub mod units;
pub mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use diag::{Diags, Severity};
use lex::{CondContext, Env};
use model::Config;

/// The result of loading: the model when there was no alert, and every message.
pub struct Loaded {
    pub config: Option<Config>,
    pub diags: Diags,
}

/// Expands `-f` arguments: a directory contributes its `*.cfg` files in lexical order.
pub fn expand_paths(args: &[PathBuf], diags: &mut Diags) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for a in args {
        match std::fs::metadata(a) {
            Ok(m) if m.is_dir() => {
                let mut files: Vec<PathBuf> = match std::fs::read_dir(a) {
                    Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "cfg") && p.is_file()).collect(),
                    Err(e) => {
                        diags.alert(None, None, format!("Could not read configuration directory '{}' : {e}", a.display()));
                        continue;
                    }
                };
                if files.is_empty() {
                    diags.alert(None, None, format!("configuration directory '{}' contains no '.cfg' file", a.display()));
                }
                files.sort();
                out.extend(files);
            }
            Ok(_) => out.push(a.clone()),
            Err(e) => diags.alert(None, None, format!("Could not open configuration file '{}' : {}", a.display(), io_reason(&e))),
        }
    }
    out
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}

/// Loads configuration files (directories already expanded) with the process environment.
pub fn load_files(files: &[PathBuf], env: &dyn Env) -> Loaded {
    let mut texts = Vec::new();
    let mut diags = Diags::default();
    for f in files {
        match std::fs::read(f) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => texts.push((f.display().to_string(), t)),
                Err(_) => diags.alert(None, None, format!("configuration file '{}' is not valid UTF-8 text", f.display())),
            },
            Err(e) => diags.alert(None, None, format!("Could not open configuration file '{}' : {}", f.display(), io_reason(&e))),
        }
    }
    let mut loaded = load_texts(&texts, env);
    diags.extend(std::mem::take(&mut loaded.diags));
    if diags.has_alerts() {
        loaded.config = None;
    }
    loaded.diags = diags;
    loaded
}

/// Loads configuration from `(file name, text)` pairs, in order. Used by tests, fuzzing and benches.
pub fn load_texts(texts: &[(String, String)], env: &dyn Env) -> Loaded {
    let mut diags = Diags::default();
    let mut builder = parse::Builder::new();
    // `setenv` and friends change the environment for the lines after them, across files.
    let overlay = lex::EnvOverlay::new(env);
    let ctx = CondContext { env: &overlay };
    let mut any_line = false;
    for (name, text) in texts {
        let file: Arc<str> = Arc::from(name.as_str());
        let lines = lex::lex_file(&file, text, &ctx, &mut diags);
        if lines.is_empty() && !diags.has_alerts() {
            diags.alert(None, None, format!("configuration file '{name}' is empty (no keyword in it)"));
        }
        any_line |= !lines.is_empty();
        builder.feed(&lines);
    }
    let _ = any_line;
    let (mut cfg, bdiags) = builder.finish();
    diags.extend(bdiags);
    // Lexing runs before building: order the parse-stage messages as the lines they point at, so
    // the output reads top to bottom. Validation messages follow.
    let file_index = |d: &diag::Diag| d.span.as_ref().and_then(|s| texts.iter().position(|(n, _)| **n == *s.file)).unwrap_or(usize::MAX);
    diags.items.sort_by_key(|d| (file_index(d), d.span.as_ref().map_or(0, |s| s.line)));
    cfg.files = texts.iter().map(|(n, _)| n.clone()).collect();
    validate::resolve_server_names(&mut cfg, &mut diags);
    crate::dns::config::validate(&mut cfg, &mut diags);
    crate::peers::config::validate(&cfg, &mut diags);
    validate::validate(&cfg, &mut diags);
    let config = if diags.has_alerts() { None } else { Some(cfg) };
    Loaded { config, diags }
}

/// Convenience for one in-memory file.
pub fn load_str(name: &str, text: &str, env: &dyn Env) -> Loaded {
    load_texts(&[(name.to_owned(), text.to_owned())], env)
}

/// True when the messages make the load fail: any alert, or any warning in zero-warning mode.
pub fn is_fatal(diags: &Diags, zero_warning: bool) -> bool {
    diags.items.iter().any(|d| d.severity == Severity::Alert || (zero_warning && d.severity == Severity::Warning))
}

/// The directory part of a path, for messages.
pub fn display_dir(p: &Path) -> String {
    p.parent().map(|d| d.display().to_string()).unwrap_or_default()
}
