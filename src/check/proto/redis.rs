//! `option redis-check`: HAProxy sends `PING` as a RESP array (`*1\r\n$4\r\nPING\r\n`) and
//! expects `+PONG\r\n`: that is `L7OK "Redis server is ok"`; any other first line (`-NOAUTH
//! Authentication required.`, `-LOADING ...`) is `L7STS` with that line as info. A server that
//! closes without a word is `L7RSP "Empty response"`.

use super::{Conversation, Outcome, Step};
use crate::check::config::CheckStatus;

/// What the check sends.
pub const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// The conversation for `option redis-check`.
pub fn redis() -> Box<dyn Conversation> {
    Box::new(Redis)
}

struct Redis;

fn judge(line: &[u8]) -> Outcome {
    if line == b"+PONG" {
        Outcome::new(CheckStatus::L7Ok, "Redis server is ok")
    } else {
        Outcome::new(CheckStatus::L7Sts, String::from_utf8_lossy(line).into_owned())
    }
}

impl Conversation for Redis {
    fn start(&mut self) -> Step {
        Step::Send(PING.to_vec())
    }

    fn received(&mut self, data: &[u8]) -> Step {
        match data.windows(2).position(|w| w == b"\r\n") {
            Some(end) => Step::Done(judge(&data[..end])),
            // Not a reply that can become "+PONG": no need to wait for the line's end.
            None if !b"+PONG".starts_with(&data[..data.len().min(5)]) => {
                let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
                Step::Done(judge(line.strip_suffix(b"\r").unwrap_or(line)))
            }
            None if data.len() > 4096 => Step::Done(judge(data)),
            None => Step::NeedMore,
        }
    }

    fn closed(&mut self, data: &[u8]) -> Outcome {
        if data.is_empty() {
            return Outcome::new(CheckStatus::L7Rsp, "Empty response");
        }
        let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // "+PONG" without its CRLF is not the reply HAProxy expects.
        if line == b"+PONG" && !data.ends_with(b"\r\n") {
            return Outcome::new(CheckStatus::L7Sts, "+PONG");
        }
        judge(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pong_is_up() {
        let mut c = redis();
        assert_eq!(c.start(), Step::Send(b"*1\r\n$4\r\nPING\r\n".to_vec()));
        assert_eq!(c.received(b"+PO"), Step::NeedMore);
        assert_eq!(c.received(b"+PONG"), Step::NeedMore);
        assert_eq!(c.received(b"+PONG\r\n"), Step::Done(Outcome::new(CheckStatus::L7Ok, "Redis server is ok")));
    }

    #[test]
    fn noauth_is_l7sts_with_the_line() {
        let mut c = redis();
        c.start();
        assert_eq!(c.received(b"-NOAUTH Authentication required.\r\n"), Step::Done(Outcome::new(CheckStatus::L7Sts, "-NOAUTH Authentication required.")));
    }

    #[test]
    fn garbage_is_l7sts() {
        let mut c = redis();
        assert_eq!(c.received(b"SSH-2.0-OpenSSH"), Step::Done(Outcome::new(CheckStatus::L7Sts, "SSH-2.0-OpenSSH")));
        let mut c = redis();
        assert_eq!(c.received(b"+PONGX\r\n"), Step::Done(Outcome::new(CheckStatus::L7Sts, "+PONGX")));
    }

    #[test]
    fn closed_early() {
        let mut c = redis();
        assert_eq!(c.closed(b""), Outcome::new(CheckStatus::L7Rsp, "Empty response"));
        assert_eq!(c.closed(b"+PONG"), Outcome::new(CheckStatus::L7Sts, "+PONG"));
        assert_eq!(c.closed(b"+PONG\r\n"), Outcome::new(CheckStatus::L7Ok, "Redis server is ok"));
    }
}
