//! HTTP/1.x message heads and framing, strictly. (Interface stub: the parser lands next.)
//!
//! Heads are parsed in place in the connection buffer: a [`Head`] holds offsets into it, never
//! copies of names or values.

use std::ops::Range;

/// Size limits for a head.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `tune.bufsize - tune.maxrewrite`: a head larger than this is refused (431 for requests).
    pub max_head: usize,
    /// `tune.http.maxhdr` (HAProxy's default: 101).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_head: 16384 - 1024, max_headers: 101 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// One header field: offsets of the name and of the value (blanks around the value excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

/// A parsed request or response head, as offsets into the buffer it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Request method; empty range for responses.
    pub method: Range<usize>,
    /// Request target; empty range for responses.
    pub target: Range<usize>,
    pub version: Version,
    /// Response status; 0 for requests.
    pub status: u16,
    /// Response reason phrase; empty for requests.
    pub reason: Range<usize>,
    pub fields: Vec<Field>,
    /// Bytes the head takes, final CRLF included.
    pub len: usize,
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (GET without length, HEAD response, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Responses only: the body runs until the server closes.
    Close,
}

/// Why a message is refused: the status to answer with and a reason for logs and `show errors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H1Error {
    pub status: u16,
    pub reason: &'static str,
}

/// Parses a request head at the start of `buf`. `Ok(None)`: incomplete (read more, unless the
/// buffer is already at `limits.max_head`, which the parser reports as 431 itself).
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<Head>, H1Error> {
    let _ = (buf, limits);
    Err(H1Error { status: 501, reason: "HTTP parser not built yet" })
}

/// Parses a response head at the start of `buf`. Errors are reported as 502.
pub fn parse_response(buf: &[u8], limits: &Limits) -> Result<Option<Head>, H1Error> {
    let _ = (buf, limits);
    Err(H1Error { status: 502, reason: "HTTP parser not built yet" })
}

/// The framing of a request, after checking every rule about it (Content-Length and
/// Transfer-Encoding together, duplicated or malformed lengths, Host, ...).
pub fn request_framing(buf: &[u8], head: &Head) -> Result<Framing, H1Error> {
    let _ = (buf, head);
    Err(H1Error { status: 501, reason: "HTTP parser not built yet" })
}

/// The framing of a response to a request whose method was HEAD when `head_request`.
pub fn response_framing(buf: &[u8], head: &Head, head_request: bool) -> Result<Framing, H1Error> {
    let _ = (buf, head, head_request);
    Err(H1Error { status: 502, reason: "HTTP parser not built yet" })
}

/// Progress of a streamed chunked body through [`Chunked::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that belong to the body (framing included) and may be forwarded.
    pub consumed: usize,
    /// The last chunk and the trailers ended.
    pub done: bool,
}

/// A streaming validator of chunked framing: bytes are checked as they pass, never rewritten.
#[derive(Clone, Debug, Default)]
pub struct Chunked {
    _state: u8,
}

impl Chunked {
    pub fn new() -> Chunked {
        Chunked::default()
    }

    pub fn feed(&mut self, data: &[u8]) -> Result<Progress, H1Error> {
        let _ = data;
        Err(H1Error { status: 400, reason: "chunked decoder not built yet" })
    }
}
