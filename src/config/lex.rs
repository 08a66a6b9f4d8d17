//! Splits configuration text into lines of words (HAProxy's quoting, escapes and environment
//! variables), then applies the `.if/.elif/.else/.endif` blocks and the `.notice/.warning/.alert/.diag`
//! directives. What comes out is every active line, each word already unquoted and expanded, each line
//! with its `file:line`.

use std::sync::Arc;

use pest::Parser;
use pest_derive::Parser;

use super::cond;
use super::diag::{Diag, Diags, Severity, Span};

#[derive(Parser)]
#[grammar = "config/grammar.pest"]
struct LineParser;

/// One word of a configuration line, with quotes removed and variables expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// True when any part of the word was quoted or escaped: a quoted `{` or `if` is text, not syntax.
    pub quoted: bool,
}

impl Word {
    pub fn bare(s: &str) -> Word {
        Word { text: s.to_owned(), quoted: false }
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// True when this word is the unquoted token `tok`.
    pub fn is(&self, tok: &str) -> bool {
        !self.quoted && self.text == tok
    }
}

/// One active, non-empty line.
#[derive(Clone, Debug)]
pub struct Line {
    pub span: Span,
    pub words: Vec<Word>,
}

/// Looks up environment variables; a trait so tests and `-cc` can supply their own.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
    /// Applies a `setenv`, `presetenv`, `unsetenv` or `resetenv` line (`op` and its expanded
    /// arguments) for the lines after it. Only [`EnvOverlay`] keeps such changes.
    fn apply(&self, op: &str, args: &[String]) {
        let _ = (op, args);
    }
}

/// An environment that `setenv`, `presetenv`, `unsetenv` and `resetenv` change as the
/// configuration is read, as HAProxy's do: each line sees what the lines before it set, in
/// `${VAR}` expansion and `.if` conditions alike. The changes live here, over `base`, not in the
/// process environment: sluiced runs no programs that would inherit them, and a thread-safe
/// `setenv(3)` does not exist.
pub struct EnvOverlay<'a> {
    base: &'a dyn Env,
    /// Set (`Some`) and removed (`None`) variables.
    changed: std::cell::RefCell<std::collections::HashMap<String, Option<String>>>,
    /// After `resetenv`: what is not in `changed` is unset.
    cleared: std::cell::Cell<bool>,
}

impl<'a> EnvOverlay<'a> {
    pub fn new(base: &'a dyn Env) -> EnvOverlay<'a> {
        EnvOverlay { base, changed: Default::default(), cleared: Default::default() }
    }
}

impl Env for EnvOverlay<'_> {
    fn get(&self, name: &str) -> Option<String> {
        match self.changed.borrow().get(name) {
            Some(v) => v.clone(),
            None if self.cleared.get() => None,
            None => self.base.get(name),
        }
    }

    fn apply(&self, op: &str, args: &[String]) {
        match (op, args) {
            ("setenv", [name, value]) => {
                self.changed.borrow_mut().insert(name.clone(), Some(value.clone()));
            }
            ("presetenv", [name, value]) if self.get(name).is_none() => {
                self.changed.borrow_mut().insert(name.clone(), Some(value.clone()));
            }
            ("unsetenv", names) => {
                for n in names {
                    self.changed.borrow_mut().insert(n.clone(), None);
                }
            }
            ("resetenv", keep) => {
                let kept: std::collections::HashMap<String, Option<String>> = keep.iter().map(|n| (n.clone(), self.get(n))).collect();
                *self.changed.borrow_mut() = kept;
                self.cleared.set(true);
            }
            _ => {}
        }
    }
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// Splits one line of text into words. `Err` carries a message for a line that cannot be split
/// (an unmatched quote, a trailing backslash).
///
/// Most configuration lines have no quote, escape or variable; for those the grammar reduces to
/// "runs of non-blank characters up to a `#`", which [`split_plain`] does directly. The grammar
/// costs about 65,000 instructions per line in pest, which put a 20,000-line configuration over
/// its 100 ms load budget; a property test checks that both paths give the same words.
pub fn split_words(text: &str, env: &dyn Env) -> Result<Vec<Word>, String> {
    if !text.bytes().any(|b| matches!(b, b'"' | b'\'' | b'\\' | b'$')) {
        return Ok(split_plain(text));
    }
    split_words_grammar(text, env)
}

/// The fast path of [`split_words`], for lines without `"`, `'`, `\\` or `$`.
fn split_plain(text: &str) -> Vec<Word> {
    let body = text.split('#').next().unwrap_or("");
    body.split([' ', '\t', '\r']).filter(|w| !w.is_empty()).map(|w| Word { text: w.to_owned(), quoted: false }).collect()
}

/// Splits a line with the pest grammar (the definition of the syntax).
pub fn split_words_grammar(text: &str, env: &dyn Env) -> Result<Vec<Word>, String> {
    let mut pairs = LineParser::parse(Rule::line, text).map_err(|e| {
        let col = match e.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((p, _)) => p,
        };
        describe_error(text, col)
    })?;
    let line = pairs.next().expect("line rule always yields one pair");
    let mut words = Vec::new();
    for w in line.into_inner() {
        if w.as_rule() != Rule::word {
            continue;
        }
        let mut text = String::new();
        let mut quoted = false;
        for part in w.into_inner() {
            match part.as_rule() {
                Rule::bare | Rule::dollar => text.push_str(part.as_str()),
                Rule::escape => {
                    quoted = true;
                    push_escape(&mut text, part.as_str());
                }
                Rule::var => expand_var(&mut text, part, env),
                Rule::squoted => {
                    quoted = true;
                    text.push_str(part.into_inner().next().map_or("", |p| p.as_str()));
                }
                Rule::dquoted => {
                    quoted = true;
                    for inner in part.into_inner() {
                        match inner.as_rule() {
                            Rule::escape => push_escape(&mut text, inner.as_str()),
                            Rule::var => expand_var(&mut text, inner, env),
                            _ => text.push_str(inner.as_str()),
                        }
                    }
                }
                _ => text.push_str(part.as_str()),
            }
        }
        words.push(Word { text, quoted });
    }
    Ok(words)
}

fn describe_error(text: &str, col: usize) -> String {
    let mut in_dq = false;
    let mut in_sq = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if !in_sq && chars.next().is_none() => return "trailing backslash at end of line".into(),
            '\\' => {}
            '"' if !in_sq => in_dq = !in_dq,
            '\'' if !in_dq => in_sq = !in_sq,
            '#' if !in_dq && !in_sq => break,
            _ => {}
        }
    }
    if in_dq {
        "unmatched double quote".into()
    } else if in_sq {
        "unmatched single quote".into()
    } else {
        format!("cannot split line into words at column {}", col + 1)
    }
}

/// Decodes one escape. HAProxy decodes `\ `, `\#`, `\\`, `\"`, `\'`, `\$`, `\r`, `\n`, `\t` and
/// `\xNN`, and keeps any other sequence as written: that is what lets `replace-path ... /\1`
/// reach the regex engine with its backreference.
fn push_escape(out: &mut String, esc: &str) {
    let body = &esc[1..];
    match body {
        "n" => out.push('\n'),
        "r" => out.push('\r'),
        "t" => out.push('\t'),
        " " | "#" | "\\" | "\"" | "'" | "$" => out.push_str(body),
        b if b.len() == 3 && b.starts_with('x') => {
            let v = u8::from_str_radix(&b[1..], 16).unwrap_or(b'?');
            out.push(char::from(v));
        }
        other => {
            out.push('\\');
            out.push_str(other);
        }
    }
}

fn expand_var(out: &mut String, var: pest::iterators::Pair<'_, Rule>, env: &dyn Env) {
    let mut name = "";
    let mut default = None;
    for p in var.into_inner() {
        match p.as_rule() {
            Rule::var_name => name = p.as_str(),
            Rule::var_default => default = Some(p.as_str()),
            _ => {}
        }
    }
    match env.get(name) {
        Some(v) => out.push_str(&v),
        None => out.push_str(default.unwrap_or("")),
    }
}

/// What `.if` blocks may ask about the build; filled in by the binary from its feature list.
pub struct CondContext<'a> {
    pub env: &'a dyn Env,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    /// This branch is being read.
    Taken,
    /// No branch taken yet; a later `.elif`/`.else` may be.
    Waiting,
    /// A branch was already taken, or the enclosing block is skipped.
    Done,
}

/// Lexes a whole file's text into active lines, applying conditional blocks and directives.
pub fn lex_file(file: &Arc<str>, text: &str, ctx: &CondContext<'_>, diags: &mut Diags) -> Vec<Line> {
    let mut out = Vec::new();
    // Each open `.if`: its state and the line it opened on.
    let mut stack: Vec<(Block, u32, bool)> = Vec::new();
    for (idx, raw) in text.split('\n').enumerate() {
        let lineno = idx as u32 + 1;
        let span = Span::new(file.clone(), lineno);
        let active = stack.iter().all(|(b, _, _)| *b == Block::Taken);
        let words = match split_words(raw, ctx.env) {
            Ok(w) => w,
            Err(msg) => {
                if active {
                    diags.alert(Some(&span), None, msg);
                }
                continue;
            }
        };
        let Some(first) = words.first() else { continue };
        if !first.quoted && first.text.starts_with('.') {
            let directive = first.text.as_str();
            let rest = &words[1..];
            match directive {
                ".if" => {
                    let state = if !active {
                        Block::Done
                    } else if eval_line_cond(rest, &span, directive, ctx, diags) {
                        Block::Taken
                    } else {
                        Block::Waiting
                    };
                    stack.push((state, lineno, false));
                }
                ".elif" => match stack.last_mut() {
                    None => diags.alert(Some(&span), Some(".elif"), "'.elif' without a matching '.if'"),
                    Some((_, _, true)) => diags.alert(Some(&span), Some(".elif"), "'.elif' after '.else'"),
                    Some(top) => {
                        top.0 = match top.0 {
                            Block::Taken => Block::Done,
                            Block::Waiting => {
                                if eval_line_cond(rest, &span, directive, ctx, diags) {
                                    Block::Taken
                                } else {
                                    Block::Waiting
                                }
                            }
                            Block::Done => Block::Done,
                        }
                    }
                },
                ".else" => match stack.last_mut() {
                    None => diags.alert(Some(&span), Some(".else"), "'.else' without a matching '.if'"),
                    Some((_, _, true)) => diags.alert(Some(&span), Some(".else"), "'.else' after '.else'"),
                    Some(top) => {
                        top.2 = true;
                        top.0 = if top.0 == Block::Waiting { Block::Taken } else { Block::Done };
                    }
                },
                ".endif" if stack.pop().is_none() => {
                    diags.alert(Some(&span), Some(".endif"), "'.endif' without a matching '.if'");
                }
                ".endif" => {}
                ".notice" | ".warning" | ".alert" | ".diag" if active => {
                    let msg = rest.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
                    let sev = match directive {
                        ".alert" => Severity::Alert,
                        ".warning" => Severity::Warning,
                        _ => Severity::Notice,
                    };
                    diags.push(Diag { severity: sev, span: Some(span.clone()), keyword: None, msg });
                }
                ".notice" | ".warning" | ".alert" | ".diag" => {}
                other if active => {
                    diags.alert(Some(&span), Some(other), format!("unknown directive '{other}'"));
                }
                _ => {}
            }
            continue;
        }
        if active {
            if !first.quoted && matches!(first.text.as_str(), "setenv" | "presetenv" | "unsetenv" | "resetenv") {
                let args: Vec<String> = words[1..].iter().map(|w| w.text.clone()).collect();
                ctx.env.apply(&first.text, &args);
            }
            out.push(Line { span, words });
        }
    }
    for (_, lineno, _) in stack {
        diags.alert(Some(&Span::new(file.clone(), lineno)), Some(".if"), "'.if' block is not closed by '.endif'");
    }
    out
}

fn eval_line_cond(words: &[Word], span: &Span, kw: &str, ctx: &CondContext<'_>, diags: &mut Diags) -> bool {
    let text = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
    match cond::eval(&text, ctx.env) {
        Ok(v) => v,
        Err(e) => {
            diags.alert(Some(span), Some(kw), format!("failed to parse condition: {e}"));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env() -> HashMap<String, String> {
        HashMap::from([("HOST".to_string(), "10.0.0.1".to_string()), ("EMPTY".to_string(), String::new())])
    }

    fn texts(s: &str) -> Vec<String> {
        split_words(s, &env()).unwrap().into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn words_split_on_blanks_and_comments_end_the_line() {
        assert_eq!(texts("  bind :80   # web"), ["bind", ":80"]);
        assert_eq!(texts("# only a comment"), Vec::<String>::new());
        assert_eq!(texts("a\tb"), ["a", "b"]);
    }

    #[test]
    fn quotes_group_and_concatenate() {
        assert_eq!(texts(r#"x "a b"c'd e'"#), ["x", "a bcd e"]);
        assert_eq!(texts(r#"x "a#b""#), ["x", "a#b"]);
    }

    #[test]
    fn escapes_are_decoded_outside_single_quotes() {
        assert_eq!(texts(r"a\ b \x41 \# '\n'"), ["a b", "A", "#", "\\n"]);
        assert_eq!(texts(r#""\"q\"""#), ["\"q\""]);
    }

    #[test]
    fn env_vars_expand_in_double_quotes_and_bare_words_not_single() {
        assert_eq!(texts(r#"server s "${HOST}":80 $HOST '${HOST}'"#), ["server", "s", "10.0.0.1:80", "10.0.0.1", "${HOST}"]);
        assert_eq!(texts(r#""${NOPE-def}" ${NOPE} ${EMPTY-x}"#), ["def", "", ""]);
        assert_eq!(texts("cost $ 5"), ["cost", "$", "5"]);
    }

    proptest::proptest! {
        #[test]
        fn plain_lines_split_the_same_on_the_fast_path_and_the_grammar(line in "[ a-z0-9#:./_,\t\r()-]{0,60}") {
            let e = env();
            proptest::prop_assert_eq!(split_plain(&line), split_words_grammar(&line, &e).unwrap());
        }
    }

    #[test]
    fn unknown_escapes_are_kept_for_regex_backreferences() {
        assert_eq!(texts(r"replace-path /a/(.*) /\1 \d"), ["replace-path", "/a/(.*)", r"/\1", r"\d"]);
        assert_eq!(texts(r#""\1""#), [r"\1"]);
    }

    #[test]
    fn unmatched_quote_is_reported() {
        assert_eq!(split_words(r#"a "b"#, &env()).unwrap_err(), "unmatched double quote");
        assert_eq!(split_words("a 'b", &env()).unwrap_err(), "unmatched single quote");
        assert_eq!(split_words("a \\", &env()).unwrap_err(), "trailing backslash at end of line");
    }

    #[test]
    fn conditional_blocks_select_lines() {
        let text = ".if defined(HOST)\nA\n.elif 1\nB\n.else\nC\n.endif\n.if 0\nD\n.elif 1\nE\n.else\nF\n.endif\n";
        let mut d = Diags::default();
        let e = env();
        let lines = lex_file(&"t".into(), text, &CondContext { env: &e }, &mut d);
        let got: Vec<_> = lines.iter().map(|l| l.words[0].text.clone()).collect();
        assert_eq!(got, ["A", "E"]);
        assert!(d.items.is_empty(), "{:?}", d.items);
        assert_eq!(lines[1].span.line, 11);
    }

    #[test]
    fn unclosed_if_and_alert_directive_are_errors() {
        let mut d = Diags::default();
        let e = env();
        lex_file(&"t".into(), ".if 1\n.alert stop here\n", &CondContext { env: &e }, &mut d);
        let msgs: Vec<_> = d.alerts().map(|d| d.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].contains("[t:2]") && msgs[0].contains("stop here"));
        assert!(msgs[1].contains("[t:1]") && msgs[1].contains("not closed"));
    }

    /// What `echo` says on each line after the environment lines of `text`, loaded as files in
    /// turn with `base` as the process environment.
    fn seen(files: &[&str], base: &HashMap<String, String>) -> Vec<String> {
        let texts: Vec<(String, String)> = files.iter().enumerate().map(|(i, t)| (format!("f{i}.cfg"), t.to_string())).collect();
        let overlay = EnvOverlay::new(base);
        let ctx = CondContext { env: &overlay };
        let mut d = Diags::default();
        let mut out = Vec::new();
        for (name, text) in &texts {
            for l in lex_file(&name.as_str().into(), text, &ctx, &mut d) {
                if l.words[0].text == "echo" {
                    out.push(l.words[1..].iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" "));
                }
            }
        }
        out
    }

    #[test]
    fn setenv_is_seen_by_the_lines_after_it_in_this_file_and_the_next() {
        let got = seen(&["echo [${A}]\nsetenv A one\necho [${A}] [\"$A\"]\nsetenv B ${A}/two\n", "echo ${B}\n"], &env());
        assert_eq!(got, ["[]", "[one] [one]", "one/two"]);
    }

    #[test]
    fn presetenv_sets_only_what_is_unset_and_unsetenv_removes() {
        let got = seen(&["presetenv HOST 127.0.0.1\npresetenv PORT 8080\necho ${HOST}:${PORT}\nunsetenv HOST PORT\necho [${HOST}${PORT}]\n"], &env());
        assert_eq!(got, ["10.0.0.1:8080", "[]"]);
    }

    #[test]
    fn resetenv_keeps_only_the_names_given() {
        let got = seen(&["setenv A 1\nsetenv B 2\nresetenv HOST A\necho ${HOST} [${A}] [${B}] [${EMPTY}]\nsetenv C 3\necho ${C}\n"], &env());
        assert_eq!(got, ["10.0.0.1 [1] [] []", "3"]);
    }

    #[test]
    fn setenv_inside_a_skipped_block_changes_nothing_and_if_conditions_see_what_is_set() {
        let got = seen(&[".if 0\nsetenv A no\n.endif\necho [${A}]\nsetenv A yes\n.if streq(\"$A\",yes)\necho taken\n.endif\n"], &env());
        assert_eq!(got, ["[]", "taken"]);
    }
}
