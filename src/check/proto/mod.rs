//! Check conversations: what a health check sends once connected and how it judges what comes
//! back, as pure state machines over bytes. The check engine ([`super`]) owns the socket, the
//! timeouts and the server state; a conversation only sees data. Every check kind (HTTP,
//! `tcp-check` rules, PostgreSQL, MySQL, Redis, SMTP, LDAP, TLS hello, agent) is one [`Conversation`].

use super::config::CheckStatus;

/// What a check found, in HAProxy's terms: the status code (`L7OK`, `L4CON`...) and the `info`
/// text its log line quotes (`"Connection refused"`, `"HTTP status check returned code <503>"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: CheckStatus,
    /// The HTTP (or protocol) code when there is one, for `%hc`-style reporting.
    pub code: Option<u32>,
    pub info: String,
}

impl Outcome {
    pub fn new(status: CheckStatus, info: impl Into<String>) -> Outcome {
        Outcome { status, code: None, info: info.into() }
    }

    /// True for the statuses that count as a success (`L4OK`, `L6OK`, `L7OK`, `L7OKC`).
    pub fn passed(&self) -> bool {
        matches!(self.status, CheckStatus::L4Ok | CheckStatus::L6Ok | CheckStatus::L7Ok | CheckStatus::L7OkC)
    }
}

/// HAProxy's reason text for a status, as its `Server ... is DOWN, reason: <text>` lines print it.
pub fn reason(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::L4Ok => "Layer4 check passed",
        CheckStatus::L6Ok => "Layer6 check passed",
        CheckStatus::L7Ok => "Layer7 check passed",
        CheckStatus::L7OkC => "Layer7 check conditionally passed",
        CheckStatus::L4Con => "Layer4 connection problem",
        CheckStatus::L4Tout => "Layer4 timeout",
        CheckStatus::L6Rsp => "Layer6 invalid response",
        CheckStatus::L6Tout => "Layer6 timeout",
        CheckStatus::L7Rsp => "Layer7 invalid response",
        CheckStatus::L7Sts => "Layer7 wrong status",
        CheckStatus::L7Tout => "Layer7 timeout",
        CheckStatus::Hana => "Health analyze",
    }
}

/// HAProxy's short name for a status, as `show stat`'s `check_status` prints it.
pub fn short_name(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::L4Ok => "L4OK",
        CheckStatus::L6Ok => "L6OK",
        CheckStatus::L7Ok => "L7OK",
        CheckStatus::L7OkC => "L7OKC",
        CheckStatus::L4Con => "L4CON",
        CheckStatus::L4Tout => "L4TOUT",
        CheckStatus::L6Rsp => "L6RSP",
        CheckStatus::L6Tout => "L6TOUT",
        CheckStatus::L7Rsp => "L7RSP",
        CheckStatus::L7Sts => "L7STS",
        CheckStatus::L7Tout => "L7TOUT",
        CheckStatus::Hana => "HANA",
    }
}

/// The next step of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes (may be empty), then wait for data.
    Send(Vec<u8>),
    /// Wait for more data.
    NeedMore,
    /// The conversation is over.
    Done(Outcome),
}

/// One check exchange over a connected stream.
pub trait Conversation: Send {
    /// Called once the connection is established: what to send first (`Step::NeedMore` to
    /// send nothing and wait, `Step::Done` to decide at once, as a plain connect check does).
    fn start(&mut self) -> Step;
    /// Called with everything received so far (not only the new bytes).
    fn received(&mut self, data: &[u8]) -> Step;
    /// The peer closed: decide with what arrived (`data` is everything received).
    fn closed(&mut self, data: &[u8]) -> Outcome;
    /// The check timed out waiting for data: by default `L7TOUT` once something was sent.
    fn timed_out(&mut self) -> Outcome {
        Outcome::new(CheckStatus::L7Tout, "")
    }
}

pub mod agent;
pub mod ldap;
pub mod mysql;
pub mod pgsql;
pub mod redis;
pub mod smtp;
pub mod ssl_hello;
