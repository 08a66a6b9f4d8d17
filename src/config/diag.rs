//! Diagnostics: every configuration problem is collected with its `file:line` and keyword, and all of
//! them are printed at once in HAProxy's `[ALERT]`/`[WARNING]` style.

use std::fmt;
use std::sync::Arc;

/// Where a configuration token came from. Line numbers start at 1.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: Arc<str>,
    pub line: u32,
}

impl Span {
    pub fn new(file: Arc<str>, line: u32) -> Span {
        Span { file, line }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Notice,
    Warning,
    Alert,
}

impl Severity {
    fn tag(self) -> &'static str {
        match self {
            Severity::Notice => "[NOTICE]",
            Severity::Warning => "[WARNING]",
            Severity::Alert => "[ALERT]",
        }
    }
}

/// One message about the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diag {
    pub severity: Severity,
    pub span: Option<Span>,
    /// The keyword the message is about (`server`, `timeout client`, ...), when there is one.
    pub keyword: Option<String>,
    pub msg: String,
}

impl Diag {
    pub fn alert(span: Option<Span>, keyword: Option<&str>, msg: impl Into<String>) -> Diag {
        Diag { severity: Severity::Alert, span, keyword: keyword.map(str::to_owned), msg: msg.into() }
    }
    pub fn warning(span: Option<Span>, keyword: Option<&str>, msg: impl Into<String>) -> Diag {
        Diag { severity: Severity::Warning, span, keyword: keyword.map(str::to_owned), msg: msg.into() }
    }
    pub fn notice(span: Option<Span>, keyword: Option<&str>, msg: impl Into<String>) -> Diag {
        Diag { severity: Severity::Notice, span, keyword: keyword.map(str::to_owned), msg: msg.into() }
    }
}

impl fmt::Display for Diag {
    /// `[ALERT]    (pid) : config : parsing [file:line] : 'keyword' : message`, the shape HAProxy
    /// users grep for. The pid is printed by [`Diags::render`]; this form omits it for tests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config : ")?;
        if let Some(span) = &self.span {
            write!(f, "parsing [{span}] : ")?;
        }
        if let Some(kw) = &self.keyword {
            write!(f, "'{kw}' : ")?;
        }
        write!(f, "{}", self.msg)
    }
}

/// The collected messages of one load.
#[derive(Clone, Debug, Default)]
pub struct Diags {
    pub items: Vec<Diag>,
}

impl Diags {
    pub fn push(&mut self, d: Diag) {
        self.items.push(d);
    }
    pub fn alert(&mut self, span: Option<&Span>, keyword: Option<&str>, msg: impl Into<String>) {
        self.items.push(Diag::alert(span.cloned(), keyword, msg));
    }
    pub fn warning(&mut self, span: Option<&Span>, keyword: Option<&str>, msg: impl Into<String>) {
        self.items.push(Diag::warning(span.cloned(), keyword, msg));
    }
    pub fn has_alerts(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Alert)
    }
    pub fn alerts(&self) -> impl Iterator<Item = &Diag> {
        self.items.iter().filter(|d| d.severity == Severity::Alert)
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Diag> {
        self.items.iter().filter(|d| d.severity == Severity::Warning)
    }
    pub fn extend(&mut self, other: Diags) {
        self.items.extend(other.items);
    }

    /// Renders every message, one per line, as HAProxy prints them on stderr.
    pub fn render(&self, pid: u32) -> String {
        let mut out = String::new();
        for d in &self.items {
            out.push_str(&format_line(d.severity, pid, &d.to_string()));
        }
        out
    }
}

/// `[ALERT]    (1234) : message\n`: the tag is padded to ten columns as HAProxy pads it.
pub fn format_line(sev: Severity, pid: u32, msg: &str) -> String {
    format!("{:<10} ({pid}) : {msg}\n", sev.tag())
}

/// The closest candidate to `word` within a small edit distance, for "did you mean" hints.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(word, c);
        let limit = (word.len().max(c.len()) / 3).max(2);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_line_carries_file_line_and_keyword() {
        let d = Diag::alert(Some(Span::new("a.cfg".into(), 7)), Some("bind"), "bad address");
        assert_eq!(d.to_string(), "config : parsing [a.cfg:7] : 'bind' : bad address");
        assert_eq!(format_line(Severity::Alert, 42, &d.to_string()), "[ALERT]    (42) : config : parsing [a.cfg:7] : 'bind' : bad address\n");
    }

    #[test]
    fn did_you_mean_finds_close_keyword() {
        assert_eq!(did_you_mean("defalt_backend", ["default_backend", "use_backend"]), Some("default_backend"));
        assert_eq!(did_you_mean("zzzzzz", ["default_backend", "use_backend"]), None);
    }
}
