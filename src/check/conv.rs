//! The conversations the engine owns: a plain connect, `option httpchk` with its `http-check`
//! rules, and `option tcp-check` walking its `tcp-check` rules. Protocol checks (pgsql, mysql,
//! redis, smtp, ldap, agent) live in [`super::proto`].

use super::config::{CheckStatus, Expect, HttpCheckRule, HttpChk, HttpMatch, TcpCheckRule, TcpMatch, TcpSendData, Text};
use super::proto::{Conversation, Outcome, Step};
use crate::config::logformat::{LogFormat, LogItem};

/// Only the literal parts of a log-format string: check-time samples are not evaluated yet.
fn literal(f: &LogFormat) -> String {
    f.items.iter().filter_map(|i| if let LogItem::Text(t) = i { Some(t.as_str()) } else { None }).collect()
}

fn text(t: &Text) -> String {
    match t {
        Text::Plain(s) => s.clone(),
        Text::Fmt(f) => literal(f),
    }
}

/// A connect check: success as soon as the connection is established.
pub struct PlainConnect;

impl Conversation for PlainConnect {
    fn start(&mut self) -> Step {
        Step::Done(Outcome::new(CheckStatus::L4Ok, ""))
    }
    fn received(&mut self, _: &[u8]) -> Step {
        Step::Done(Outcome::new(CheckStatus::L4Ok, ""))
    }
    fn closed(&mut self, _: &[u8]) -> Outcome {
        Outcome::new(CheckStatus::L4Ok, "")
    }
}

/// `option httpchk`: one request, then every `http-check expect` in order (2xx/3xx when none).
pub struct HttpCheck {
    request: Vec<u8>,
    expects: Vec<Expect<HttpMatch>>,
    /// `http-check disable-on-404`: a 404 is `L7OKC`, the server stays up but takes no new traffic.
    disable_on_404: bool,
}

impl HttpCheck {
    pub fn new(chk: &HttpChk, rules: &[HttpCheckRule]) -> HttpCheck {
        let mut method = chk.method.clone().unwrap_or_else(|| "OPTIONS".into());
        let mut uri = chk.uri.clone().unwrap_or_else(|| "/".into());
        let mut version = chk.version.clone().unwrap_or_else(|| "HTTP/1.0".into());
        let mut headers: Vec<(String, String)> = chk.headers.clone();
        let mut body = String::new();
        let mut expects = Vec::new();
        for r in rules {
            match r {
                HttpCheckRule::Send(s) => {
                    if let Some(m) = &s.method {
                        method = m.clone();
                    }
                    if let Some(u) = &s.uri {
                        uri = text(u);
                    }
                    if let Some(v) = &s.version {
                        version = v.clone();
                    }
                    headers.extend(s.headers.iter().map(|(n, v)| (n.clone(), literal(v))));
                    if let Some(b) = &s.body {
                        body = text(b);
                    }
                }
                HttpCheckRule::Expect(e) => expects.push(e.clone()),
                // A second connection per check, comments and check variables: nothing to send.
                HttpCheckRule::Connect(_) | HttpCheckRule::Comment(_) | HttpCheckRule::SetVar(_) | HttpCheckRule::UnsetVar(_) => {}
            }
        }
        let mut req = format!("{method} {uri} {version}\r\n");
        for (n, v) in &headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        HttpCheck { request: req.into_bytes(), expects, disable_on_404: false }
    }

    pub fn disable_on_404(mut self, on: bool) -> HttpCheck {
        self.disable_on_404 = on;
        self
    }

    /// Judges a complete (or closed) answer.
    fn judge(&self, data: &[u8], complete: bool) -> Step {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(data) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if !complete => return Step::NeedMore,
            _ => return Step::Done(Outcome::new(CheckStatus::L7Rsp, "")),
        };
        let code = resp.code.unwrap_or(0);
        let phrase = resp.reason.unwrap_or("").to_owned();
        let hdrs: Vec<(String, String)> = resp.headers.iter().map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned())).collect();
        let body = &data[head_len..];
        let needs_body = self.expects.iter().any(|e| matches!(e.matcher, HttpMatch::String(_) | HttpMatch::RString(_)));
        if needs_body && !complete {
            let len = hdrs.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.trim().parse::<usize>().ok());
            if len.is_none_or(|l| body.len() < l) {
                return Step::NeedMore;
            }
        }
        let with_code = |status, info: String| Step::Done(Outcome { status, code: Some(u32::from(code)), info });
        if self.disable_on_404 && code == 404 {
            return with_code(CheckStatus::L7OkC, phrase);
        }
        if self.expects.is_empty() {
            return if (200..400).contains(&code) { with_code(CheckStatus::L7Ok, phrase) } else { with_code(CheckStatus::L7Sts, phrase) };
        }
        for e in &self.expects {
            let matched = http_match(&e.matcher, code, &hdrs, body);
            if matched == e.negated {
                let status = e.error_status.unwrap_or(match e.matcher {
                    HttpMatch::Status(_) | HttpMatch::RStatus(_) => CheckStatus::L7Sts,
                    _ => CheckStatus::L7Rsp,
                });
                let info = match &e.matcher {
                    HttpMatch::Status(_) | HttpMatch::RStatus(_) => phrase,
                    HttpMatch::String(_) | HttpMatch::RString(_) => "HTTP content check did not match".into(),
                    HttpMatch::Hdr { .. } => "HTTP header check did not match".into(),
                };
                return with_code(status, e.comment.clone().unwrap_or(info));
            }
        }
        let ok = self.expects.last().and_then(|e| e.ok_status).unwrap_or(CheckStatus::L7Ok);
        with_code(ok, phrase)
    }
}

/// Whether an `http-check expect` pattern matches an answer (before negation).
pub fn http_match(m: &HttpMatch, code: u16, headers: &[(String, String)], body: &[u8]) -> bool {
    use super::config::{HdrMethod, HdrPattern};
    let pat = |p: &HdrPattern, s: &str, ci: bool| {
        let (meth, want) = match p {
            HdrPattern::Reg(r) => return r.regex.is_match(s),
            HdrPattern::Str(meth, w) => (*meth, w.clone()),
            HdrPattern::Fmt(meth, f) => (*meth, literal(f)),
        };
        let (s, want) = if ci { (s.to_ascii_lowercase(), want.to_ascii_lowercase()) } else { (s.to_owned(), want) };
        match meth {
            HdrMethod::Str => s == want,
            HdrMethod::Beg => s.starts_with(&want),
            HdrMethod::End => s.ends_with(&want),
            HdrMethod::Sub => s.contains(&want),
        }
    };
    match m {
        HttpMatch::Status(ranges) => ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&code)),
        HttpMatch::RStatus(r) => r.regex.is_match(&code.to_string()),
        HttpMatch::String(s) => memchr_find(body, s.as_bytes()),
        HttpMatch::RString(r) => r.regex.is_match(&String::from_utf8_lossy(body)),
        HttpMatch::Hdr { full, name, value } => headers.iter().any(|(n, v)| {
            pat(name, n, true)
                && match value {
                    None => true,
                    Some(vp) if *full => pat(vp, v, false),
                    Some(vp) => v.split(',').any(|part| pat(vp, part.trim(), false)),
                }
        }),
    }
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

impl Conversation for HttpCheck {
    fn start(&mut self) -> Step {
        Step::Send(self.request.clone())
    }
    fn received(&mut self, data: &[u8]) -> Step {
        self.judge(data, false)
    }
    fn closed(&mut self, data: &[u8]) -> Outcome {
        if data.is_empty() {
            return Outcome::new(CheckStatus::L7Rsp, "");
        }
        match self.judge(data, true) {
            Step::Done(o) => o,
            _ => Outcome::new(CheckStatus::L7Rsp, ""),
        }
    }
}

/// `option tcp-check`: the rules run in order; each `expect` waits for its pattern in what
/// arrived since the previous `expect` matched.
pub struct TcpCheck {
    rules: Vec<TcpCheckRule>,
    next: usize,
    /// Where the data the current `expect` looks at starts.
    mark: usize,
}

impl TcpCheck {
    pub fn new(rules: &[TcpCheckRule]) -> TcpCheck {
        TcpCheck { rules: rules.to_vec(), next: 0, mark: 0 }
    }

    /// Runs rules from `next` until one needs data: sends are gathered into one write.
    fn run(&mut self, data: &[u8], closed: bool) -> Step {
        let mut out = Vec::new();
        while let Some(rule) = self.rules.get(self.next) {
            match rule {
                TcpCheckRule::Send(s) => {
                    // The answer to this send is what the next `expect` looks at.
                    self.mark = data.len();
                    out.extend(match &s.data {
                        TcpSendData::String(t) => t.clone().into_bytes(),
                        TcpSendData::StringLf(f) => literal(f).into_bytes(),
                        TcpSendData::Binary(b) => b.clone(),
                        TcpSendData::BinaryLf(f) => hex_decode(&literal(f)),
                    })
                }
                TcpCheckRule::Expect(e) => {
                    if !out.is_empty() {
                        return Step::Send(out);
                    }
                    let seen = &data[self.mark.min(data.len())..];
                    let found = tcp_find(&e.matcher, seen).is_some();
                    let enough = closed || e.min_recv.is_some_and(|m| seen.len() >= m as usize);
                    if found == e.negated {
                        if !found && !enough {
                            return Step::NeedMore;
                        }
                        let why = if found { "TCPCHK matched unwanted content" } else { "TCPCHK did not match content" };
                        return Step::Done(self.fail(e, why));
                    }
                }
                TcpCheckRule::Connect(_) | TcpCheckRule::Comment(_) | TcpCheckRule::SetVar(_) | TcpCheckRule::UnsetVar(_) => {}
            }
            self.next += 1;
        }
        if !out.is_empty() {
            // Trailing sends: write them, then the check passes.
            return Step::Send(out);
        }
        let ok = self.rules.iter().rev().find_map(|r| if let TcpCheckRule::Expect(e) = r { e.ok_status } else { None });
        let status = ok.unwrap_or(if self.rules.iter().any(|r| matches!(r, TcpCheckRule::Expect(_))) { CheckStatus::L7Ok } else { CheckStatus::L4Ok });
        Step::Done(Outcome::new(status, if status == CheckStatus::L7Ok { "(tcp-check)" } else { "" }))
    }

    fn fail(&self, e: &Expect<TcpMatch>, default: &str) -> Outcome {
        let info = e.comment.clone().unwrap_or_else(|| format!("{default} at step {}", self.next + 1));
        Outcome::new(e.error_status.unwrap_or(CheckStatus::L7Rsp), info)
    }
}

/// Where a `tcp-check expect` pattern ends in `data`, if it matches.
pub fn tcp_find(m: &TcpMatch, data: &[u8]) -> Option<usize> {
    let find = |needle: &[u8]| {
        if needle.is_empty() {
            return Some(0);
        }
        data.windows(needle.len()).position(|w| w == needle).map(|p| p + needle.len())
    };
    match m {
        TcpMatch::String(s) => find(s.as_bytes()),
        TcpMatch::StringLf(f) => find(literal(f).as_bytes()),
        TcpMatch::Binary(b) => find(b),
        TcpMatch::BinaryLf(f) => find(&hex_decode(&literal(f))),
        TcpMatch::RString(r) => r.regex.find(&String::from_utf8_lossy(data)).map(|m| m.end().min(data.len())),
        TcpMatch::RBinary(r) => {
            let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
            r.regex.find(&hex).map(|m| m.end().div_ceil(2))
        }
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    s.chunks(2).filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok()).collect()
}

impl Conversation for TcpCheck {
    fn timed_out(&mut self) -> Outcome {
        let tout = match self.rules.get(self.next) {
            Some(TcpCheckRule::Expect(e)) => e.tout_status,
            _ => None,
        };
        Outcome::new(tout.unwrap_or(CheckStatus::L7Tout), format!("TCPCHK timeout at step {}", self.next + 1))
    }

    fn start(&mut self) -> Step {
        self.next = 0;
        self.mark = 0;
        self.run(&[], false)
    }
    fn received(&mut self, data: &[u8]) -> Step {
        self.run(data, false)
    }
    fn closed(&mut self, data: &[u8]) -> Outcome {
        match self.run(data, true) {
            Step::Done(o) => o,
            Step::Send(_) => Outcome::new(CheckStatus::L7Rsp, "TCPCHK connection closed before the rules ran"),
            Step::NeedMore => Outcome::new(CheckStatus::L7Rsp, format!("TCPCHK did not match content at step {}", self.next + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::config::{CheckRegex, TcpSend};

    fn expect<M>(matcher: M, negated: bool) -> Expect<M> {
        Expect {
            min_recv: None,
            comment: None,
            ok_status: None,
            error_status: None,
            tout_status: None,
            on_success: None,
            on_error: None,
            status_code: None,
            negated,
            matcher,
        }
    }

    fn http(rules: Vec<HttpCheckRule>, resp: &[u8]) -> Outcome {
        let mut c = HttpCheck::new(&HttpChk::default(), &rules);
        assert!(matches!(c.start(), Step::Send(_)));
        match c.received(resp) {
            Step::Done(o) => o,
            _ => c.closed(resp),
        }
    }

    #[test]
    fn default_request_and_2xx_3xx() {
        let c = HttpCheck::new(&HttpChk::default(), &[]);
        assert_eq!(c.request, b"OPTIONS / HTTP/1.0\r\n\r\n");
        assert_eq!(http(vec![], b"HTTP/1.1 302 Found\r\n\r\n").status, CheckStatus::L7Ok);
        let o = http(vec![], b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        assert_eq!((o.status, o.code, o.info.as_str()), (CheckStatus::L7Sts, Some(503), "Service Unavailable"));
    }

    #[test]
    fn expect_status_string_and_negation() {
        let st = HttpCheckRule::Expect(expect(HttpMatch::Status(vec![(200, 200)]), false));
        assert_eq!(http(vec![st.clone()], b"HTTP/1.1 204 No Content\r\n\r\n").status, CheckStatus::L7Sts);
        let s = HttpCheckRule::Expect(expect(HttpMatch::String("ready".into()), false));
        assert_eq!(http(vec![s], b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nis ready").status, CheckStatus::L7Ok);
        let ns = HttpCheckRule::Expect(expect(HttpMatch::String("ready".into()), true));
        assert_eq!(http(vec![ns], b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nis ready").status, CheckStatus::L7Rsp);
        let rs = HttpCheckRule::Expect(expect(HttpMatch::RStatus(CheckRegex::new("^2").unwrap()), false));
        assert_eq!(http(vec![rs], b"HTTP/1.1 250 X\r\n\r\n").status, CheckStatus::L7Ok);
    }

    #[test]
    fn disable_on_404_passes_conditionally() {
        let mut c = HttpCheck::new(&HttpChk::default(), &[]).disable_on_404(true);
        assert!(matches!(c.received(b"HTTP/1.1 404 Not Found\r\n\r\n"), Step::Done(o) if o.status == CheckStatus::L7OkC));
    }

    #[test]
    fn string_expect_waits_for_the_body() {
        let s = HttpCheckRule::Expect(expect(HttpMatch::String("ready".into()), false));
        let mut c = HttpCheck::new(&HttpChk::default(), &[s]);
        assert_eq!(c.received(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nis "), Step::NeedMore);
        assert!(matches!(c.received(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nis ready"), Step::Done(o) if o.status == CheckStatus::L7Ok));
    }

    #[test]
    fn tcp_check_walks_send_expect() {
        let rules = vec![
            TcpCheckRule::Send(TcpSend { data: TcpSendData::String("PING\r\n".into()), comment: None }),
            TcpCheckRule::Expect(expect(TcpMatch::String("+PONG".into()), false)),
            TcpCheckRule::Send(TcpSend { data: TcpSendData::Binary(vec![0x51]), comment: None }),
            TcpCheckRule::Expect(expect(TcpMatch::RBinary(CheckRegex::new("^4F4B").unwrap()), false)),
        ];
        let mut c = TcpCheck::new(&rules);
        assert_eq!(c.start(), Step::Send(b"PING\r\n".to_vec()));
        assert_eq!(c.received(b"+PO"), Step::NeedMore);
        assert_eq!(c.received(b"+PONG\r\n"), Step::Send(vec![0x51]));
        assert!(matches!(c.received(b"+PONG\r\nOK"), Step::Done(o) if o.status == CheckStatus::L7Ok));
        let mut c = TcpCheck::new(&rules);
        c.start();
        assert_eq!(c.closed(b"-ERR").status, CheckStatus::L7Rsp);
    }
}
