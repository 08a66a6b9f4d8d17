//! The predicate language of `.if` blocks and of `-cc`: `version_atleast(X)`, `version_before(X)`,
//! `feature(X)`, `enabled(X)`, `defined(VAR)`, `streq(a,b)`, `strneq(a,b)`, `strstr(a,b)`, bare numbers
//! and strings, with `!`, `&&`, `||` and parentheses.

use super::lex::Env;
use crate::build;

/// Evaluates a condition. `Err` says what could not be parsed.
pub fn eval(text: &str, env: &dyn Env) -> Result<bool, String> {
    let mut p = CondParser { s: text.as_bytes(), pos: 0, env };
    let v = p.or()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!("unexpected '{}'", &text[p.pos..]));
    }
    Ok(v)
}

struct CondParser<'a> {
    s: &'a [u8],
    pos: usize,
    env: &'a dyn Env,
}

impl CondParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }
    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        if self.s[self.pos..].starts_with(tok.as_bytes()) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<bool, String> {
        let mut v = self.and()?;
        while self.eat("||") {
            let r = self.and()?;
            v = v || r;
        }
        Ok(v)
    }
    fn and(&mut self) -> Result<bool, String> {
        let mut v = self.unary()?;
        while self.eat("&&") {
            let r = self.unary()?;
            v = v && r;
        }
        Ok(v)
    }
    fn unary(&mut self) -> Result<bool, String> {
        if self.eat("!") {
            return Ok(!self.unary()?);
        }
        if self.eat("(") {
            let v = self.or()?;
            if !self.eat(")") {
                return Err("missing ')'".into());
            }
            return Ok(v);
        }
        self.term()
    }
    fn term(&mut self) -> Result<bool, String> {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.s.len() && !b" \t()!&|,".contains(&self.s[self.pos]) {
            self.pos += 1;
        }
        let word = std::str::from_utf8(&self.s[start..self.pos]).map_err(|_| "invalid UTF-8")?.to_owned();
        if word.is_empty() {
            return Err(if self.pos >= self.s.len() { "missing term".into() } else { format!("unexpected '{}'", self.s[self.pos] as char) });
        }
        if self.pos < self.s.len() && self.s[self.pos] == b'(' {
            self.pos += 1;
            let args = self.args()?;
            return self.predicate(&word, &args);
        }
        // A bare term: a number is true when non-zero; other words are not conditions.
        match word.parse::<i64>() {
            Ok(n) => Ok(n != 0),
            Err(_) => Err(format!("unknown term '{word}'")),
        }
    }
    fn args(&mut self) -> Result<Vec<String>, String> {
        let mut args = Vec::new();
        let mut cur = String::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else { return Err("missing ')'".into()) };
            self.pos += 1;
            match c {
                b')' => {
                    args.push(cur.trim().to_owned());
                    if args.len() == 1 && args[0].is_empty() {
                        args.clear();
                    }
                    return Ok(args);
                }
                b',' => args.push(std::mem::take(&mut cur).trim().to_owned()),
                b'"' | b'\'' => {
                    while let Some(&q) = self.s.get(self.pos) {
                        self.pos += 1;
                        if q == c {
                            break;
                        }
                        cur.push(q as char);
                    }
                }
                _ => cur.push(c as char),
            }
        }
    }
    fn predicate(&self, name: &str, args: &[String]) -> Result<bool, String> {
        let want =
            |n: usize| -> Result<(), String> { if args.len() == n { Ok(()) } else { Err(format!("'{name}' takes {n} argument(s), got {}", args.len())) } };
        match name {
            "defined" => {
                want(1)?;
                Ok(self.env.get(&args[0]).is_some())
            }
            "feature" => {
                want(1)?;
                Ok(build::has_feature(&args[0]))
            }
            "enabled" => {
                want(1)?;
                Ok(build::enabled(&args[0]))
            }
            "streq" => {
                want(2)?;
                Ok(args[0] == args[1])
            }
            "strneq" => {
                want(2)?;
                Ok(args[0] != args[1])
            }
            "strstr" => {
                want(2)?;
                Ok(args[0].contains(args[1].as_str()))
            }
            "version_atleast" => {
                want(1)?;
                Ok(build::compare_versions(build::HAPROXY_COMPAT_VERSION, &args[0]).is_ge())
            }
            "version_before" => {
                want(1)?;
                Ok(build::compare_versions(build::HAPROXY_COMPAT_VERSION, &args[0]).is_lt())
            }
            // This build links no OpenSSL: every question about its version is false.
            "openssl_version_atleast" | "openssl_version_before" | "ssllib_name_startswith" | "awslc_api_atleast" | "awslc_api_before" => {
                want(1)?;
                Ok(false)
            }
            other => Err(format!("unknown predicate '{other}'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ev(s: &str) -> Result<bool, String> {
        let env = HashMap::from([("SET".to_string(), "yes".to_string())]);
        eval(s, &env)
    }

    #[test]
    fn version_predicates_compare_against_haproxy_compat_version() {
        assert_eq!(ev("version_atleast(2.5)"), Ok(true));
        assert_eq!(ev("version_atleast(99.0)"), Ok(false));
        assert_eq!(ev("version_before(99)"), Ok(true));
        assert_eq!(ev("version_before(2.0)"), Ok(false));
    }

    #[test]
    fn operators_and_precedence() {
        assert_eq!(ev("version_atleast(2.5) && !feature(FOO)"), Ok(true));
        assert_eq!(ev("0 || 1 && 0"), Ok(false));
        assert_eq!(ev("(0 || 1) && 1"), Ok(true));
        assert_eq!(ev("!!1"), Ok(true));
    }

    #[test]
    fn string_and_env_predicates() {
        assert_eq!(ev("defined(SET) && !defined(UNSET)"), Ok(true));
        assert_eq!(ev(r#"streq("a b", 'a b')"#), Ok(true));
        assert_eq!(ev("strneq(a,b)"), Ok(true));
        assert_eq!(ev("strstr(haystack,st)"), Ok(true));
    }

    #[test]
    fn bad_conditions_are_errors() {
        assert!(ev("nope(1)").is_err());
        assert!(ev("version_atleast(2.5").is_err());
        assert!(ev("streq(a)").is_err());
        assert!(ev("1 &&").is_err());
        assert!(ev("word").is_err());
    }
}
