//! `option smtpchk [HELO|EHLO <domain>]`: HAProxy reads the greeting, which must be a `2xx` reply,
//! sends `HELO <domain>` (or `EHLO`), and expects a `2xx` reply to it, then says `QUIT`.
//!
//! * a reply that is not `<3 digits>[ -]...` → `L7RSP` with the line;
//! * a greeting or HELO reply whose code is not `2xx` → `L7STS`, code = the reply code, info = the
//!   reply text;
//! * a `2xx` HELO reply → `L7OK`, code = the reply code, info = the reply text (for multi-line
//!   `250-` replies, the last line's).
//!
//! After the HELO reply the conversation sends `QUIT\r\n` and waits for the `221`, so the server
//! does not log an aborted session; whatever happens then (reply, close, timeout), the outcome is
//! the one the HELO reply decided.

use super::{Conversation, Outcome, Step};
use crate::check::config::CheckStatus;

/// The conversation for `option smtpchk`: `ehlo` and `domain` as the config model has them
/// (`HELO localhost` when the option has no arguments).
pub fn smtp(ehlo: bool, domain: &str) -> Box<dyn Conversation> {
    Box::new(Smtp { hello: format!("{} {}\r\n", if ehlo { "EHLO" } else { "HELO" }, domain).into_bytes(), phase: Phase::Greeting, base: 0 })
}

enum Phase {
    Greeting,
    Hello,
    Quit(Outcome),
}

struct Smtp {
    hello: Vec<u8>,
    phase: Phase,
    /// Where the reply being read starts in the data received so far.
    base: usize,
}

enum Reply {
    Incomplete,
    Invalid(String),
    /// Code, text of the last line, and where the reply ends.
    Complete(u32, String, usize),
}

/// One complete SMTP reply (possibly multi-line) at the start of `data`.
fn reply(data: &[u8], closed: bool) -> Reply {
    let mut pos = 0;
    loop {
        let rest = &data[pos..];
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => (&rest[..nl], pos + nl + 1),
            None if closed || rest.len() > 4096 => (rest, data.len()),
            None => {
                // Reject a line that can't become a reply without waiting for its end.
                if rest.len() >= 4 && !valid_prefix(rest) {
                    return Reply::Invalid(text_of(rest));
                }
                return Reply::Incomplete;
            }
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let bare_code = line.len() == 3 && line.iter().all(u8::is_ascii_digit);
        if !valid_prefix(line) && !bare_code {
            return Reply::Invalid(text_of(line));
        }
        let code = std::str::from_utf8(&line[..3]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        if line.get(3) == Some(&b'-') {
            if next < data.len() {
                pos = next;
                continue;
            }
            if !closed {
                return Reply::Incomplete;
            }
        }
        let text = String::from_utf8_lossy(line.get(4..).unwrap_or_default()).trim_start_matches(' ').to_owned();
        return Reply::Complete(code, text, next);
    }
}

fn valid_prefix(line: &[u8]) -> bool {
    line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit) && matches!(line[3], b' ' | b'-' | b'\r')
}

fn text_of(line: &[u8]) -> String {
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned()
}

fn with_code(status: CheckStatus, code: u32, text: String) -> Outcome {
    Outcome { status, code: Some(code), info: text }
}

impl Smtp {
    fn step(&mut self, data: &[u8], closed: bool) -> Step {
        if let Phase::Quit(o) = &self.phase {
            return Step::Done(o.clone());
        }
        let data = &data[self.base.min(data.len())..];
        let (code, text, end) = match reply(data, closed) {
            Reply::Incomplete => return Step::NeedMore,
            Reply::Invalid(line) => return Step::Done(Outcome::new(CheckStatus::L7Rsp, line)),
            Reply::Complete(c, t, e) => (c, t, e),
        };
        if !(200..300).contains(&code) {
            return Step::Done(with_code(CheckStatus::L7Sts, code, text));
        }
        match self.phase {
            Phase::Greeting => {
                self.base += end;
                self.phase = Phase::Hello;
                if closed { Step::Done(Outcome::new(CheckStatus::L7Rsp, "")) } else { Step::Send(self.hello.clone()) }
            }
            Phase::Hello => {
                let ok = with_code(CheckStatus::L7Ok, code, text);
                if closed {
                    return Step::Done(ok);
                }
                self.base += end;
                self.phase = Phase::Quit(ok);
                Step::Send(b"QUIT\r\n".to_vec())
            }
            Phase::Quit(_) => unreachable!(),
        }
    }
}

impl Conversation for Smtp {
    fn start(&mut self) -> Step {
        Step::NeedMore
    }

    fn received(&mut self, data: &[u8]) -> Step {
        self.step(data, false)
    }

    fn closed(&mut self, data: &[u8]) -> Outcome {
        match self.step(data, true) {
            Step::Done(o) => o,
            _ => Outcome::new(CheckStatus::L7Rsp, text_of(&data[self.base.min(data.len())..])),
        }
    }

    fn timed_out(&mut self) -> Outcome {
        match &self.phase {
            Phase::Quit(o) => o.clone(),
            _ => Outcome::new(CheckStatus::L7Tout, ""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helo_conversation_passes() {
        let mut c = smtp(false, "checker.local");
        assert_eq!(c.start(), Step::NeedMore);
        let mut got = b"220 mx.example ESMTP".to_vec();
        assert_eq!(c.received(&got), Step::NeedMore);
        got.extend_from_slice(b"\r\n");
        assert_eq!(c.received(&got), Step::Send(b"HELO checker.local\r\n".to_vec()));
        got.extend_from_slice(b"250 mx.example\r\n");
        assert_eq!(c.received(&got), Step::Send(b"QUIT\r\n".to_vec()));
        got.extend_from_slice(b"221 2.0.0 Bye\r\n");
        let ok = Outcome { status: CheckStatus::L7Ok, code: Some(250), info: "mx.example".into() };
        assert_eq!(c.received(&got), Step::Done(ok.clone()));
        assert_eq!(c.closed(&got), ok);
    }

    #[test]
    fn ehlo_multiline_reply_waits_for_the_last_line() {
        let mut c = smtp(true, "d");
        let mut got = b"220-first\r\n220 second\r\n".to_vec();
        assert_eq!(c.received(&got), Step::Send(b"EHLO d\r\n".to_vec()));
        got.extend_from_slice(b"250-mx.example\r\n250-PIPELINING\r\n");
        assert_eq!(c.received(&got), Step::NeedMore);
        got.extend_from_slice(b"250 8BITMIME\r\n");
        assert_eq!(c.received(&got), Step::Send(b"QUIT\r\n".to_vec()));
        let ok = Outcome { status: CheckStatus::L7Ok, code: Some(250), info: "8BITMIME".into() };
        assert_eq!(c.closed(&got), ok.clone());
        assert_eq!(c.timed_out(), ok);
    }

    #[test]
    fn refused_greeting_and_helo_are_l7sts() {
        let mut c = smtp(false, "d");
        assert_eq!(
            c.received(b"554 5.3.2 No service\r\n"),
            Step::Done(Outcome { status: CheckStatus::L7Sts, code: Some(554), info: "5.3.2 No service".into() })
        );
        let mut c = smtp(false, "d");
        c.received(b"220 hi\r\n");
        assert_eq!(
            c.received(b"220 hi\r\n501 Syntax: HELO hostname\r\n"),
            Step::Done(Outcome { status: CheckStatus::L7Sts, code: Some(501), info: "Syntax: HELO hostname".into() })
        );
    }

    #[test]
    fn garbage_is_l7rsp() {
        let mut c = smtp(false, "d");
        assert_eq!(c.received(b"+OK POP3 ready\r\n"), Step::Done(Outcome::new(CheckStatus::L7Rsp, "+OK POP3 ready")));
        let mut c = smtp(false, "d");
        assert_eq!(c.received(b"SSH-2.0"), Step::Done(Outcome::new(CheckStatus::L7Rsp, "SSH-2.0")));
    }

    #[test]
    fn closed_early() {
        let mut c = smtp(false, "d");
        assert_eq!(c.closed(b"").status, CheckStatus::L7Rsp);
        let mut c = smtp(false, "d");
        assert_eq!(c.closed(b"220 hi\r\n").status, CheckStatus::L7Rsp);
        let mut c = smtp(false, "d");
        c.received(b"220 hi\r\n");
        assert_eq!(c.closed(b"220 hi\r\n250 ok").status, CheckStatus::L7Ok);
        let mut c = smtp(false, "d");
        assert_eq!(c.timed_out().status, CheckStatus::L7Tout);
    }
}
