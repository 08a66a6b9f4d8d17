//! ACLs, conditions and sample expressions. (Interface stub: a fuller parser lands next.)

use super::lex::Word;

/// A sample fetch with its converter chain: `req.hdr(host),lower,map(/etc/hosts.map)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleExpr {
    pub fetch: Call,
    pub converters: Vec<Call>,
}

/// `name(arg1,arg2)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    pub args: Vec<String>,
}

impl SampleExpr {
    /// Stick tables named by the fetch or the converters (`src_conn_rate(tbl)`, `table_cnt(tbl)`).
    pub fn table_refs(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// The body of an ACL: `<fetch> [flags] [operator] <values>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclBody {
    pub expr: SampleExpr,
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    If,
    Unless,
}

/// One term of a condition: an ACL name or an inline `{ ... }` ACL, possibly negated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub negated: bool,
    pub acl: AclRef,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclRef {
    Named(String),
    Inline(Box<AclBody>),
}

/// `if|unless` followed by ORs of ANDs of terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub polarity: Polarity,
    /// Disjunction of conjunctions.
    pub any_of: Vec<Vec<Term>>,
}

impl Condition {
    pub fn acl_names(&self) -> impl Iterator<Item = &str> {
        self.any_of.iter().flatten().filter_map(|t| match &t.acl {
            AclRef::Named(n) => Some(n.as_str()),
            AclRef::Inline(_) => None,
        })
    }
    pub fn table_refs(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// Splits rule words at the first unquoted `if`/`unless`: (action words, condition words).
pub fn split_condition(words: &[Word]) -> (&[Word], Option<&[Word]>) {
    match words.iter().position(|w| w.is("if") || w.is("unless")) {
        Some(i) => (&words[..i], Some(&words[i..])),
        None => (words, None),
    }
}

/// Parses `if|unless <terms>`; `words[0]` is `if` or `unless`.
pub fn parse_condition(words: &[Word]) -> Result<Condition, String> {
    let polarity = if words.first().is_some_and(|w| w.is("unless")) { Polarity::Unless } else { Polarity::If };
    let mut any_of = vec![Vec::new()];
    for w in &words[1..] {
        if w.is("||") || w.is("or") {
            any_of.push(Vec::new());
            continue;
        }
        let (negated, name) = match w.text.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, w.text.as_str()),
        };
        any_of.last_mut().unwrap().push(Term { negated, acl: AclRef::Named(name.to_owned()) });
    }
    if any_of.iter().any(Vec::is_empty) {
        return Err("missing ACL in condition".into());
    }
    Ok(Condition { polarity, any_of })
}

/// Parses an ACL body: the words after `acl NAME`.
pub fn parse_acl(words: &[Word]) -> Result<AclBody, String> {
    let first = words.first().ok_or("missing fetch method")?;
    Ok(AclBody { expr: parse_sample(&first.text)?, values: words[1..].iter().map(|w| w.text.clone()).collect() })
}

/// Parses a sample expression.
pub fn parse_sample(text: &str) -> Result<SampleExpr, String> {
    if text.is_empty() {
        return Err("missing sample expression".into());
    }
    Ok(SampleExpr { fetch: Call { name: text.to_owned(), args: Vec::new() }, converters: Vec::new() })
}
