//! Rewrites of a message head, recorded while the rules run and applied when the head is written
//! out: the parsed [`Head`] stays a set of offsets into the receive buffer and is never modified.
//!
//! Edits apply in rule order with HAProxy's semantics, each seeing the result of the ones before
//! it. [`EditedView`] shows the message as edited so far to the rules that follow (sample fetches
//! read it through [`HttpMsg`]); [`write_head`] writes the final head. Fields no edit touches are
//! copied from the buffer, name and value exactly as received, as `name: value\r\n`. Fields an
//! edit adds get a lower-case name, as HAProxy writes them.
//!
//! `option forwardfor` and `option originalto` are edit producers: [`forwardfor`] and
//! [`originalto`] return the edit to record, if any.

use std::net::IpAddr;
use std::ops::Range;

use regex::bytes::{Captures, Regex};

use crate::l4::action::{IpNet, Pattern};
use crate::l7::config::{ForwardFor, HeaderMatch, OriginalTo};
use crate::l7::h1::{Head, Version};
use crate::l7::reply::{header, reason};
use crate::route::eval::HttpMsg;

/// How `del-header -m` compares header names.
#[derive(Clone, Debug)]
pub enum NameMatch {
    /// Equal, ignoring case.
    Str,
    /// Starts with, ignoring case.
    Beg,
    /// Ends with, ignoring case.
    End,
    /// Contains, ignoring case.
    Sub,
    /// The regex matches the lower-case name (HAProxy stores names in lower case).
    Reg(Regex),
}

impl NameMatch {
    /// The compiled form of the configuration's `-m` method.
    pub fn from_config(m: &HeaderMatch) -> Result<NameMatch, String> {
        Ok(match m {
            HeaderMatch::Str => NameMatch::Str,
            HeaderMatch::Beg => NameMatch::Beg,
            HeaderMatch::End => NameMatch::End,
            HeaderMatch::Sub => NameMatch::Sub,
            HeaderMatch::Reg(p) => NameMatch::Reg(byte_regex(p)?),
        })
    }

    fn matches(&self, pattern: &[u8], name: &[u8]) -> bool {
        match self {
            NameMatch::Str => name.eq_ignore_ascii_case(pattern),
            NameMatch::Beg => name.len() >= pattern.len() && name[..pattern.len()].eq_ignore_ascii_case(pattern),
            NameMatch::End => name.len() >= pattern.len() && name[name.len() - pattern.len()..].eq_ignore_ascii_case(pattern),
            NameMatch::Sub => pattern.is_empty() || name.windows(pattern.len()).any(|w| w.eq_ignore_ascii_case(pattern)),
            NameMatch::Reg(r) => r.is_match(&name.to_ascii_lowercase()),
        }
    }
}

/// The byte-oriented form of a configured regex, compiled once with the routing table: header
/// values need not be UTF-8.
pub fn byte_regex(p: &Pattern) -> Result<Regex, String> {
    Regex::new(p.0.as_str()).map_err(|e| format!("invalid regex '{}': {e}", p.0.as_str()))
}

/// The part of the request target a `replace-*` rewrite matches against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetPart {
    Path,
    PathQ,
    Uri,
}

/// One rewrite. Values are final bytes (log-format strings already evaluated); replacements may
/// refer to the regex's groups as `\0` to `\9` and hold `\xHH` bytes, as in HAProxy.
#[derive(Clone, Debug)]
pub enum Edit {
    /// `set-header`: removes every field of that name, then appends one.
    Set {
        name: String,
        value: Vec<u8>,
    },
    /// `add-header`: appends a field.
    Add {
        name: String,
        value: Vec<u8>,
    },
    /// `del-header`: removes the fields whose name matches.
    Del {
        name: String,
        matching: NameMatch,
    },
    /// `replace-header`: each field of that name whose value the regex matches gets the whole
    /// value replaced by the expanded replacement.
    Replace {
        name: String,
        regex: Regex,
        replacement: Vec<u8>,
    },
    /// `replace-value`: the same for each comma-separated value of the fields of that name.
    ReplaceValue {
        name: String,
        regex: Regex,
        replacement: Vec<u8>,
    },
    /// Gives the fields named `name`, in order, new values: the n-th gets `values[n]`, or is
    /// removed when that is `None`; fields past the end of `values` are kept. Computed from the
    /// message as edited so far, by cookie persistence ([`super::cookie`]), which rewrites single
    /// cookies inside `Cookie` and `Set-Cookie` fields.
    SetFields {
        name: String,
        values: Vec<Option<Vec<u8>>>,
    },
    SetMethod(Vec<u8>),
    /// Replaces the path, keeping the query string (and the scheme and authority of an absolute URI).
    SetPath(Vec<u8>),
    /// Replaces the path and the query string.
    SetPathQ(Vec<u8>),
    /// Replaces the query string (given without `?`); an empty value on a target without a query
    /// adds nothing, on one with a query leaves a bare `?`.
    SetQuery(Vec<u8>),
    /// Replaces the whole request target.
    SetUri(Vec<u8>),
    /// `replace-path`, `replace-pathq`, `replace-uri`: the part is replaced by the expanded
    /// replacement when the regex matches it.
    ReplaceTarget {
        part: TargetPart,
        regex: Regex,
        replacement: Vec<u8>,
    },
    /// `set-status`: the reason defaults to the standard phrase of the code.
    SetStatus {
        status: u16,
        reason: Option<Vec<u8>>,
    },
}

/// The edits of one message, in rule order.
#[derive(Clone, Debug, Default)]
pub struct Edits {
    ops: Vec<Edit>,
}

impl Edits {
    pub fn new() -> Edits {
        Edits::default()
    }

    pub fn push(&mut self, edit: Edit) {
        self.ops.push(edit);
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Edit> {
        self.ops.iter()
    }

    pub fn clear(&mut self) {
        self.ops.clear();
    }
}

/// What [`write_head`] does with `Connection` headers, which belong to each hop and are decided
/// by the connection mode (`option http-keep-alive`, `http-server-close`, `httpclose`), not by the
/// peer that sent the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnHeader {
    /// Writes the `Connection` fields as they are (after edits).
    Preserve,
    /// Removes the `close` and `keep-alive` tokens (other tokens such as `upgrade` stay; a field
    /// left empty is dropped).
    Strip,
    /// As `Strip`, then appends `connection: close`.
    Close,
    /// As `Strip`, then appends `connection: keep-alive` (for HTTP/1.0 peers).
    KeepAlive,
}

/// Bytes of the buffer, or bytes an edit produced.
#[derive(Clone, Debug)]
enum Part {
    Buf(Range<usize>),
    Own(Vec<u8>),
}

impl Part {
    fn get<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        match self {
            Part::Buf(r) => buf.get(r.clone()).unwrap_or(b""),
            Part::Own(v) => v,
        }
    }
}

/// A head with edits applied.
#[derive(Clone, Debug)]
struct Edited {
    method: Part,
    target: Part,
    status: u16,
    reason: Part,
    fields: Vec<(Part, Part)>,
}

impl Edited {
    fn new(head: &Head) -> Edited {
        Edited {
            method: Part::Buf(head.method.clone()),
            target: Part::Buf(head.target.clone()),
            status: head.status,
            reason: Part::Buf(head.reason.clone()),
            fields: head.fields.iter().map(|f| (Part::Buf(f.name.clone()), Part::Buf(f.value.clone()))).collect(),
        }
    }

    fn apply(&mut self, buf: &[u8], edit: &Edit) {
        let named = |n: &Part, name: &str| n.get(buf).eq_ignore_ascii_case(name.as_bytes());
        match edit {
            Edit::Set { name, value } => {
                self.fields.retain(|(n, _)| !named(n, name));
                self.fields.push((Part::Own(name.to_ascii_lowercase().into_bytes()), Part::Own(value.clone())));
            }
            Edit::Add { name, value } => self.fields.push((Part::Own(name.to_ascii_lowercase().into_bytes()), Part::Own(value.clone()))),
            Edit::Del { name, matching } => self.fields.retain(|(n, _)| !matching.matches(name.as_bytes(), n.get(buf))),
            Edit::Replace { name, regex, replacement } => {
                for (n, v) in self.fields.iter_mut() {
                    if !named(n, name) {
                        continue;
                    }
                    if let Some(new) = regex.captures(v.get(buf)).map(|c| expand(replacement, &c)) {
                        *v = Part::Own(new);
                    }
                }
            }
            Edit::ReplaceValue { name, regex, replacement } => {
                for (n, v) in self.fields.iter_mut() {
                    if named(n, name)
                        && let Some(new) = replace_values(v.get(buf), regex, replacement)
                    {
                        *v = Part::Own(new);
                    }
                }
            }
            Edit::SetFields { name, values } => {
                let mut n = 0;
                self.fields.retain_mut(|(f, v)| {
                    if !named(f, name) {
                        return true;
                    }
                    n += 1;
                    match values.get(n - 1) {
                        None => true,
                        Some(None) => false,
                        Some(Some(new)) => {
                            *v = Part::Own(new.clone());
                            true
                        }
                    }
                });
            }
            Edit::SetMethod(m) => self.method = Part::Own(m.clone()),
            Edit::SetUri(u) => self.target = Part::Own(u.clone()),
            Edit::SetPath(p) => self.set_target_part(buf, TargetPart::Path, p),
            Edit::SetPathQ(p) => self.set_target_part(buf, TargetPart::PathQ, p),
            Edit::SetQuery(q) => {
                let t = self.target.get(buf);
                let new = match t.iter().position(|&b| b == b'?') {
                    Some(i) => [&t[..=i], &q[..]].concat(),
                    None if q.is_empty() => return,
                    None => [t, b"?", &q[..]].concat(),
                };
                self.target = Part::Own(new);
            }
            Edit::ReplaceTarget { part, regex, replacement } => {
                let t = self.target.get(buf);
                let span = target_span(t, *part);
                let new = t.get(span.clone()).and_then(|p| regex.captures(p)).map(|c| expand(replacement, &c));
                if let Some(new) = new {
                    self.set_target_part(buf, *part, &new);
                }
            }
            Edit::SetStatus { status, reason: why } => {
                self.status = *status;
                self.reason = Part::Own(why.clone().unwrap_or_else(|| reason(*status).as_bytes().to_vec()));
            }
        }
    }

    fn set_target_part(&mut self, buf: &[u8], part: TargetPart, value: &[u8]) {
        let t = self.target.get(buf);
        let span = target_span(t, part);
        let (Some(before), Some(after)) = (t.get(..span.start), t.get(span.end..)) else { return };
        self.target = Part::Own([before, value, after].concat());
    }
}

/// Where a part lies in a request target. The path starts at the first `/` after the authority of
/// an absolute URI (HAProxy's `http_parse_path()`); a target without one has an empty path at its
/// end.
fn target_span(t: &[u8], part: TargetPart) -> Range<usize> {
    if part == TargetPart::Uri {
        return 0..t.len();
    }
    let start = path_start(t).unwrap_or(t.len());
    let end = match part {
        TargetPart::Path => t.get(start..).and_then(|r| r.iter().position(|&b| b == b'?')).map_or(t.len(), |q| start + q),
        _ => t.len(),
    };
    start..end
}

fn path_start(t: &[u8]) -> Option<usize> {
    let first = *t.first()?;
    if first == b'*' {
        return None;
    }
    let mut from = 0;
    if first.is_ascii_alphabetic() {
        let scheme_end = t.iter().position(|&b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')).unwrap_or(t.len());
        t.get(scheme_end..)?.strip_prefix(b"://")?;
        from = scheme_end + 3;
    }
    t.get(from..)?.iter().position(|&b| b == b'/').map(|p| from + p)
}

/// Expands a replacement as HAProxy's `exp_replace()`: `\N` inserts group N (nothing when it did
/// not participate), `\xHH` a byte, `\<c>` the character c. A trailing `\` is kept as is.
fn expand(replacement: &[u8], caps: &Captures<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(replacement.len() + 16);
    let mut i = 0;
    while let Some(&b) = replacement.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match replacement.get(i) {
            None => out.push(b'\\'),
            Some(d) if d.is_ascii_digit() => {
                i += 1;
                if let Some(m) = caps.get(usize::from(d - b'0')) {
                    out.extend_from_slice(m.as_bytes());
                }
            }
            Some(b'x') => {
                let hex = replacement.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'x');
                        i += 1;
                    }
                }
            }
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Spans of the comma-separated values of a header value, blanks around each excluded; commas
/// inside double quotes do not separate. Empty values are skipped.
fn value_spans(v: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let (mut quoted, mut escaped, mut start) = (false, false, 0);
    let mut push = |s: usize, e: usize| {
        let item = v.get(s..e).unwrap_or(b"");
        let lead = item.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(item.len());
        let trail = item.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(lead, |p| p + 1);
        if trail > lead {
            spans.push(s + lead..s + trail);
        }
    };
    for (i, &b) in v.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted {
            match b {
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == b',' {
            push(start, i);
            start = i + 1;
        }
    }
    push(start, v.len());
    spans
}

/// The value with each matching comma-separated element replaced, the separators kept; `None`
/// when nothing matched.
fn replace_values(v: &[u8], regex: &Regex, replacement: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len() + 16);
    let mut last = 0;
    let mut changed = false;
    for span in value_spans(v) {
        let item = v.get(span.clone()).unwrap_or(b"");
        if let Some(c) = regex.captures(item) {
            out.extend_from_slice(v.get(last..span.start).unwrap_or(b""));
            out.extend_from_slice(&expand(replacement, &c));
            last = span.end;
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    out.extend_from_slice(v.get(last..).unwrap_or(b""));
    Some(out)
}

/// A message as the edits recorded so far leave it: what later rules see. Without edits it reads
/// the parsed head directly and allocates nothing.
#[derive(Clone, Debug)]
pub struct EditedView<'a> {
    buf: &'a [u8],
    head: &'a Head,
    edited: Option<Edited>,
}

impl<'a> EditedView<'a> {
    pub fn new(buf: &'a [u8], head: &'a Head, edits: &Edits) -> EditedView<'a> {
        let mut view = EditedView { buf, head, edited: None };
        for e in edits.iter() {
            view.apply(e);
        }
        view
    }

    /// Applies one more edit (the caller records it in its [`Edits`] too), so a rule sequence
    /// need not rebuild the view after each rewrite.
    pub fn apply(&mut self, edit: &Edit) {
        let (buf, head) = (self.buf, self.head);
        self.edited.get_or_insert_with(|| Edited::new(head)).apply(buf, edit);
    }

    /// The response reason phrase; empty for a request.
    pub fn reason(&self) -> &[u8] {
        match &self.edited {
            None => self.buf.get(self.head.reason.clone()).unwrap_or(b""),
            Some(e) => e.reason.get(self.buf),
        }
    }

    /// Writes the start line and the header fields, then the empty line. See [`write_head`].
    pub fn write(&self, is_request: bool, conn: ConnHeader, out: &mut Vec<u8>) {
        if self.edited.is_none()
            && let Some(line) = self.start_line_as_written(is_request)
        {
            // The start line stands in the buffer as it would be written: it opens the run of
            // fields copied as they stand.
            self.write_parsed_fields(conn, out, line);
            end_head(conn, out);
            return;
        }
        let version = self.version();
        if is_request {
            out.extend_from_slice(self.method());
            out.push(b' ');
            out.extend_from_slice(self.uri());
            out.push(b' ');
            out.extend_from_slice(version);
        } else {
            out.extend_from_slice(version);
            let st = self.status();
            out.extend_from_slice(&[b' ', b'0' + (st / 100 % 10) as u8, b'0' + (st / 10 % 10) as u8, b'0' + (st % 10) as u8, b' ']);
            out.extend(self.reason().iter().copied().filter(|&b| b != b'\r' && b != b'\n' && b != 0));
        }
        out.extend_from_slice(b"\r\n");
        if self.edited.is_none() {
            self.write_parsed_fields(conn, out, 0..0);
        } else {
            for i in 0..self.header_count() {
                let (name, value) = self.header(i);
                if conn != ConnHeader::Preserve && super::h1::is_lowercase(name, b"connection") {
                    self.write_connection(name, value, out);
                    continue;
                }
                header(out, name, value);
            }
        }
        end_head(conn, out);
    }
}

/// The `Connection` field [`ConnHeader`] adds, if any, then the empty line.
fn end_head(conn: ConnHeader, out: &mut Vec<u8>) {
    match conn {
        ConnHeader::Close => header(out, b"connection", b"close"),
        ConnHeader::KeepAlive => header(out, b"connection", b"keep-alive"),
        ConnHeader::Preserve | ConnHeader::Strip => {}
    }
    out.extend_from_slice(b"\r\n");
}

impl EditedView<'_> {
    /// The fields of an unedited head. A field already written as `name: value\r\n` in the
    /// buffer is copied as it stands, and a run of such fields in one copy; others are written
    /// out as that. Parsed values hold no CR, LF or NUL (the parser refuses them), so nothing
    /// needs filtering here.
    fn write_parsed_fields(&self, conn: ConnHeader, out: &mut Vec<u8>, start: Range<usize>) {
        let buf = self.buf;
        let mut run = start;
        for f in &self.head.fields {
            let (name, value) = (buf.get(f.name.clone()).unwrap_or(b""), buf.get(f.value.clone()).unwrap_or(b""));
            if conn != ConnHeader::Preserve && super::h1::is_lowercase(name, b"connection") {
                out.extend_from_slice(buf.get(run.clone()).unwrap_or(b""));
                run = 0..0;
                self.write_connection(name, value, out);
                continue;
            }
            let line_end = f.value.end + 2;
            let as_written =
                f.value.start == f.name.end + 2 && buf.get(f.name.end..f.value.start) == Some(b": ") && buf.get(f.value.end..line_end) == Some(b"\r\n");
            if !as_written {
                out.extend_from_slice(buf.get(run.clone()).unwrap_or(b""));
                run = 0..0;
                header(out, name, value);
            } else if !run.is_empty() && run.end == f.name.start {
                run.end = line_end;
            } else {
                out.extend_from_slice(buf.get(run.clone()).unwrap_or(b""));
                run = f.name.start..line_end;
            }
        }
        out.extend_from_slice(buf.get(run).unwrap_or(b""));
    }

    /// Where the unedited start line stands in the buffer, CRLF included, when it is byte for
    /// byte what [`write`](Self::write) would write: `METHOD SP target SP HTTP/1.x CRLF`, or
    /// `HTTP/1.x SP status SP reason CRLF` (parsed reasons hold no CR, LF or NUL).
    fn start_line_as_written(&self, is_request: bool) -> Option<Range<usize>> {
        let (buf, head) = (self.buf, self.head);
        let version = self.version();
        if is_request {
            let (m, t) = (&head.method, &head.target);
            let v = t.end + 1;
            let end = v + version.len() + 2;
            let ok = !m.is_empty()
                && buf.get(m.end) == Some(&b' ')
                && t.start == m.end + 1
                && buf.get(t.end) == Some(&b' ')
                && buf.get(v..v + version.len()) == Some(version)
                && buf.get(end - 2..end) == Some(b"\r\n");
            return ok.then_some(m.start..end);
        }
        let st = head.status;
        let digits = [b'0' + (st / 100 % 10) as u8, b'0' + (st / 10 % 10) as u8, b'0' + (st % 10) as u8];
        let r = &head.reason;
        let ok = buf.get(..version.len()) == Some(version)
            && buf.get(8) == Some(&b' ')
            && buf.get(9..12) == Some(&digits[..])
            && buf.get(12) == Some(&b' ')
            && r.start == 13
            && buf.get(r.end..r.end + 2) == Some(b"\r\n");
        ok.then_some(0..r.end + 2)
    }

    /// A `Connection` field when [`ConnHeader`] rewrites them: its `close`, `keep-alive` and
    /// hop-by-hop upgrade tokens go, the rest stays.
    fn write_connection(&self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        // The usual values leave nothing.
        if super::h1::is_lowercase(value, b"keep-alive") || super::h1::is_lowercase(value, b"close") {
            return;
        }
        // An `upgrade` token names the Upgrade field: it goes when that field went (as
        // `Upgrade: h2c` does), and so does `HTTP2-Settings`, which only h2c uses.
        let upgrade_left = (0..self.header_count()).any(|j| self.header(j).0.eq_ignore_ascii_case(b"upgrade"));
        let kept: Vec<&[u8]> = value_spans(value)
            .into_iter()
            .filter_map(|s| value.get(s))
            .filter(|t| {
                !t.eq_ignore_ascii_case(b"close")
                    && !t.eq_ignore_ascii_case(b"keep-alive")
                    && !t.eq_ignore_ascii_case(b"http2-settings")
                    && (upgrade_left || !t.eq_ignore_ascii_case(b"upgrade"))
            })
            .collect();
        if !kept.is_empty() {
            header(out, name, &kept.join(&b", "[..]));
        }
    }
}

impl HttpMsg for EditedView<'_> {
    fn method(&self) -> &[u8] {
        match &self.edited {
            None => self.buf.get(self.head.method.clone()).unwrap_or(b""),
            Some(e) => e.method.get(self.buf),
        }
    }

    fn uri(&self) -> &[u8] {
        match &self.edited {
            None => self.buf.get(self.head.target.clone()).unwrap_or(b""),
            Some(e) => e.target.get(self.buf),
        }
    }

    fn version(&self) -> &[u8] {
        match self.head.version {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }

    fn status(&self) -> u16 {
        self.edited.as_ref().map_or(self.head.status, |e| e.status)
    }

    fn header_count(&self) -> usize {
        self.edited.as_ref().map_or(self.head.fields.len(), |e| e.fields.len())
    }

    /// Out of range: two empty slices.
    fn header(&self, i: usize) -> (&[u8], &[u8]) {
        match &self.edited {
            None => match self.head.fields.get(i) {
                Some(f) => (self.buf.get(f.name.clone()).unwrap_or(b""), self.buf.get(f.value.clone()).unwrap_or(b"")),
                None => (b"", b""),
            },
            Some(e) => match e.fields.get(i) {
                Some((n, v)) => (n.get(self.buf), v.get(self.buf)),
                None => (b"", b""),
            },
        }
    }
}

/// Writes the head of a message parsed from `buf` into `out`, with `edits` applied in order: the
/// start line (`METHOD target HTTP/1.x` or `HTTP/1.x status reason`), each field as
/// `name: value\r\n`, then the empty line. `conn` decides the `Connection` fields (see
/// [`ConnHeader`]); framing headers are the caller's business. CR, LF and NUL in edited values are
/// dropped.
pub fn write_head(buf: &[u8], head: &Head, edits: &Edits, is_request: bool, conn: ConnHeader, out: &mut Vec<u8>) {
    EditedView::new(buf, head, edits).write(is_request, conn, out);
}

/// Replaces the value of header `name` in `out`, a request head (and maybe its body) already
/// written by `write_head`, whose `Edit::Set` left that header on one line of its own. Used when
/// a request goes again to another server and a header naming the server must follow it. The
/// body is left as it is; a head without the header is left unchanged.
pub fn replace_sent_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") else { return };
    // Skip the request line; each field line then starts after a CRLF.
    let mut at = match out[..end].windows(2).position(|w| w == b"\r\n") {
        Some(i) => i + 2,
        None => return,
    };
    while at < end + 2 {
        let line_end = out[at..].windows(2).position(|w| w == b"\r\n").map_or(end, |i| at + i);
        let line = &out[at..line_end];
        if let Some(colon) = line.iter().position(|&b| b == b':')
            && line[..colon].eq_ignore_ascii_case(name.as_bytes())
        {
            let mut start = at + colon + 1;
            while start < line_end && (out[start] == b' ' || out[start] == b'\t') {
                start += 1;
            }
            out.splice(start..line_end, value.iter().copied());
            return;
        }
        at = line_end + 2;
    }
}

fn in_net(net: &IpNet, ip: IpAddr) -> bool {
    match (net.addr, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = u32::from(net.prefix.min(32));
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = u32::from(net.prefix.min(128));
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// `option forwardfor`: the header to add with the client's address, unless the client is in the
/// `except` network, is not an IP client (UNIX socket: `None`), or `if-none` is set and the
/// message (as edited so far) already has the header.
pub fn forwardfor(ff: &ForwardFor, client: Option<IpAddr>, msg: &dyn HttpMsg) -> Option<Edit> {
    let ip = client?;
    if ff.except.as_ref().is_some_and(|n| in_net(n, ip)) {
        return None;
    }
    if ff.if_none && (0..msg.header_count()).any(|i| msg.header(i).0.eq_ignore_ascii_case(ff.header.as_bytes())) {
        return None;
    }
    Some(Edit::Add { name: ff.header.clone(), value: ip.to_string().into_bytes() })
}

/// `option originalto`: the header to add with the address the client connected to, unless it is
/// in the `except` network or not an IP address.
pub fn originalto(ot: &OriginalTo, dst: Option<IpAddr>) -> Option<Edit> {
    let ip = dst?;
    if ot.except.as_ref().is_some_and(|n| in_net(n, ip)) {
        return None;
    }
    Some(Edit::Add { name: ot.header.clone(), value: ip.to_string().into_bytes() })
}

#[cfg(test)]
#[path = "edit_tests.rs"]
mod tests;
