//! The agent check (`agent-check`, `agent-port`, `agent-addr`, `agent-inter`, `agent-send`): once
//! connected, the check sends the `agent-send` string (if any) and reads one line (ended by `\n`,
//! or by the agent closing), which the agent fills with words separated by spaces, tabs or
//! commas, case-insensitive:
//!
//! | word | effect (HAProxy semantics) |
//! |---|---|
//! | `75%` | weight = 75 % of the server's *initial* (configured) weight, capped at 256 |
//! | `maxconn:30` | the server's maxconn becomes 30 (0 = unlimited) |
//! | `ready` | administrative state back to READY: cancels any forced DRAIN or MAINT (as the CLI's `set server state ready`) |
//! | `drain` | administrative state DRAIN: only persistent connections reach it (weight reported as 0) |
//! | `maint` | administrative state MAINT: no new connections at all, health checks paused (the agent check goes on, so the agent can say `ready`) |
//! | `up` | operational state UP again, if the health check also says the server is up |
//! | `down`, `fail`, `stopped` | operational state DOWN at once (no `fall` count); the word tells why |
//! | `# text` | the rest of the line is a description, logged with the state change |
//!
//! Words not advertised leave the matching setting unchanged; unknown words are ignored (and kept
//! in [`AgentReply::ignored`]).
//!
//! # How the check engine applies a reply
//!
//! The [`agent`] conversation puts the reply line in `Outcome.info` (its status: `L7OK` when the
//! line held at least one known word and no `down`/`fail`/`stopped`, `L7STS` when it did, `L7RSP`
//! when it held nothing usable, `L7TOUT`/closed-empty as usual). The engine then calls
//! [`parse_agent_reply`]`(&outcome.info)` and applies each field present:
//!
//! * [`AgentReply::weight_for`]`(initial_weight)` → the server's current weight (a weight of 0
//!   makes the server show as DRAIN without changing its admin state);
//! * `maxconn` → the server's maxconn;
//! * `admin`: `Drain` / `Maint` force that administrative state (the same flags as the CLI's
//!   `set server state drain|maint`), `Ready` clears both; only the agent (or the CLI) reverts
//!   what the agent set;
//! * `health`: `Down`/`Fail`/`Stopped` force the server's operational state to DOWN immediately,
//!   with [`AgentReply::reason`] as the log's info (e.g. `"via agent : down (disk full)"`);
//!   `Up` lifts only a DOWN the agent caused: the server is UP again if its health check (when it
//!   has one) also passes. A failed agent *connection* (`L4CON`, `L4TOUT`, `L7TOUT`) never marks
//!   the server down: HAProxy only logs it and keeps the last state the agent reported.

use super::{Conversation, Outcome, Step};
use crate::check::config::CheckStatus;

/// The agent's operational verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentHealth {
    Up,
    Down,
    Fail,
    Stopped,
}

/// The administrative state the agent asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentAdmin {
    Ready,
    Drain,
    Maint,
}

/// One parsed agent reply; `None` fields were not advertised and change nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentReply {
    pub health: Option<AgentHealth>,
    pub admin: Option<AgentAdmin>,
    /// `75%`: a percentage of the server's initial weight.
    pub weight_percent: Option<u32>,
    /// `maxconn:N`.
    pub maxconn: Option<u32>,
    /// The text after `#`, trimmed.
    pub description: Option<String>,
    /// Words that meant nothing.
    pub ignored: Vec<String>,
}

/// HAProxy's upper bound for a server weight.
pub const MAX_WEIGHT: u32 = 256;

impl AgentReply {
    /// True when the reply held at least one known word.
    pub fn is_empty(&self) -> bool {
        self.health.is_none() && self.admin.is_none() && self.weight_percent.is_none() && self.maxconn.is_none()
    }

    /// The new weight for a server configured with `initial` weight, if the agent sent one.
    pub fn weight_for(&self, initial: u32) -> Option<u32> {
        self.weight_percent.map(|p| (initial as u64 * p as u64 / 100).min(MAX_WEIGHT as u64) as u32)
    }

    /// True when the agent marks the server operationally down.
    pub fn marks_down(&self) -> bool {
        matches!(self.health, Some(AgentHealth::Down | AgentHealth::Fail | AgentHealth::Stopped))
    }

    /// The info text for the log line of a state change: `via agent : down (description)`.
    pub fn reason(&self) -> String {
        let word = match self.health {
            Some(AgentHealth::Up) => "up",
            Some(AgentHealth::Down) => "down",
            Some(AgentHealth::Fail) => "fail",
            Some(AgentHealth::Stopped) => "stopped",
            None => "no state",
        };
        match &self.description {
            Some(d) if !d.is_empty() => format!("via agent : {word} ({d})"),
            _ => format!("via agent : {word}"),
        }
    }
}

/// Parses one agent reply line (a trailing `\r\n` is ignored; anything after the first line too).
pub fn parse_agent_reply(line: &str) -> AgentReply {
    let line = line.split('\n').next().unwrap_or_default().trim_end_matches('\r');
    let (words, description) = match line.split_once('#') {
        Some((w, d)) => (w, Some(d.trim().to_owned())),
        None => (line, None),
    };
    let mut r = AgentReply { description, ..AgentReply::default() };
    for word in words.split([' ', '\t', ',']).filter(|w| !w.is_empty()) {
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "up" => r.health = Some(AgentHealth::Up),
            "down" => r.health = Some(AgentHealth::Down),
            "fail" => r.health = Some(AgentHealth::Fail),
            "stopped" => r.health = Some(AgentHealth::Stopped),
            "ready" => r.admin = Some(AgentAdmin::Ready),
            "drain" => r.admin = Some(AgentAdmin::Drain),
            "maint" => r.admin = Some(AgentAdmin::Maint),
            w => {
                if let Some(n) = w.strip_prefix("maxconn:").and_then(|n| n.parse().ok()) {
                    r.maxconn = Some(n);
                } else if let Some(n) = w.strip_suffix('%').filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
                    r.weight_percent = Some(n.parse().unwrap_or(u32::MAX));
                } else {
                    r.ignored.push(word.to_owned());
                }
            }
        }
    }
    r
}

/// The agent conversation: `send` is the `agent-send` string.
pub fn agent(send: Option<&str>) -> Box<dyn Conversation> {
    Box::new(Agent { send: send.unwrap_or_default().as_bytes().to_vec() })
}

struct Agent {
    send: Vec<u8>,
}

/// Longest line read; a longer reply is judged on its first bytes.
const MAX_LINE: usize = 1024;

fn judge(line: &[u8]) -> Outcome {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches(['\r', '\n']).trim();
    if line.is_empty() {
        return Outcome::new(CheckStatus::L7Rsp, "");
    }
    let r = parse_agent_reply(line);
    let status = if r.is_empty() {
        CheckStatus::L7Rsp
    } else if r.marks_down() {
        CheckStatus::L7Sts
    } else {
        CheckStatus::L7Ok
    };
    Outcome::new(status, line)
}

impl Conversation for Agent {
    fn start(&mut self) -> Step {
        Step::Send(std::mem::take(&mut self.send))
    }

    fn received(&mut self, data: &[u8]) -> Step {
        match data.iter().position(|&b| b == b'\n') {
            Some(nl) => Step::Done(judge(&data[..nl])),
            None if data.len() >= MAX_LINE => Step::Done(judge(&data[..MAX_LINE])),
            None => Step::NeedMore,
        }
    }

    fn closed(&mut self, data: &[u8]) -> Outcome {
        let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len()).min(MAX_LINE);
        judge(&data[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_haproxy_words() {
        let r = parse_agent_reply("75%, maxconn:30 drain\tUP # back from maintenance\r\n");
        assert_eq!(r.weight_percent, Some(75));
        assert_eq!(r.maxconn, Some(30));
        assert_eq!(r.admin, Some(AgentAdmin::Drain));
        assert_eq!(r.health, Some(AgentHealth::Up));
        assert_eq!(r.description.as_deref(), Some("back from maintenance"));
        assert!(r.ignored.is_empty());
        assert_eq!(r.weight_for(10), Some(7));
        assert_eq!(r.weight_for(200), Some(150));
        assert_eq!(parse_agent_reply("400%").weight_for(100), Some(MAX_WEIGHT));
        assert_eq!(parse_agent_reply("0%").weight_for(100), Some(0));
    }

    #[test]
    fn down_words_and_reason() {
        for (w, h) in [("down", AgentHealth::Down), ("FAIL", AgentHealth::Fail), ("stopped", AgentHealth::Stopped)] {
            let r = parse_agent_reply(&format!("{w}#disk full"));
            assert_eq!(r.health, Some(h));
            assert!(r.marks_down());
            assert_eq!(r.reason(), format!("via agent : {} (disk full)", w.to_ascii_lowercase()));
        }
        assert_eq!(parse_agent_reply("maint").admin, Some(AgentAdmin::Maint));
        assert_eq!(parse_agent_reply("ready").admin, Some(AgentAdmin::Ready));
        assert_eq!(parse_agent_reply("up").reason(), "via agent : up");
    }

    #[test]
    fn unknown_words_are_ignored() {
        let r = parse_agent_reply("hello 12 maxconn:x %");
        assert!(r.is_empty());
        assert_eq!(r.ignored, ["hello", "12", "maxconn:x", "%"]);
    }

    #[test]
    fn conversation_sends_and_reads_one_line() {
        let mut c = agent(Some("hello\n"));
        assert_eq!(c.start(), Step::Send(b"hello\n".to_vec()));
        assert_eq!(c.received(b"50% up"), Step::NeedMore);
        assert_eq!(c.received(b"50% up\r\nmore\n"), Step::Done(Outcome::new(CheckStatus::L7Ok, "50% up")));
        let mut c = agent(None);
        assert_eq!(c.start(), Step::Send(vec![]));
        assert_eq!(c.received(b"down # gone\n"), Step::Done(Outcome::new(CheckStatus::L7Sts, "down # gone")));
    }

    #[test]
    fn garbage_and_closed_early() {
        let mut c = agent(None);
        assert_eq!(c.received(b"what?\n"), Step::Done(Outcome::new(CheckStatus::L7Rsp, "what?")));
        // A reply ended by the close instead of a newline counts.
        assert_eq!(agent(None).closed(b"drain"), Outcome::new(CheckStatus::L7Ok, "drain"));
        assert_eq!(agent(None).closed(b""), Outcome::new(CheckStatus::L7Rsp, ""));
        assert_eq!(agent(None).timed_out().status, CheckStatus::L7Tout);
        let long = vec![b'x'; 2000];
        assert_eq!(agent(None).received(&long).clone(), Step::Done(Outcome::new(CheckStatus::L7Rsp, "x".repeat(MAX_LINE))));
    }
}
