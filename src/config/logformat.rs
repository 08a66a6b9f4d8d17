//! Log-format strings (HAProxy configuration manual, section 8.2.6): literal text, `%%`, `%<var>`
//! variables and `%[<sample>]` expressions, each optionally preceded by `{+Q,-X,...}` flags.
//! `%o` carries no value: its flags apply to every item after it.

use super::expr::{SampleExpr, parse_sample};

/// `option httplog`.
pub const HTTP_LOG_FORMAT: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r";
/// `option httpslog`.
pub const HTTPS_LOG_FORMAT: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r \
     %[fc_err]/%[ssl_fc_err,hex]/%[ssl_c_err]/%[ssl_c_ca_err]/%[ssl_fc_is_resumed] %[ssl_fc_sni]/%sslv/%sslc";
/// `option tcplog`.
pub const TCP_LOG_FORMAT: &str = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq";
/// `option httplog clf`.
pub const CLF_HTTP_LOG_FORMAT: &str =
    "%{+Q}o %{-Q}ci - - [%trg] %r %ST %B \"\" \"\" %cp %ms %ft %b %s %TR %Tw %Tc %Tr %Ta %tsc %ac %fc %bc %sc %rc %sq %bq %CC %CS %hrl %hsl";

/// The variables, with what each logs.
pub const VARIABLES: &[(&str, &str)] = &[
    ("o", "no value: its flags apply to all following items"),
    ("B", "bytes read from the server to the client"),
    ("CC", "captured request cookie"),
    ("CS", "captured response cookie"),
    ("H", "host name of the machine"),
    ("HM", "HTTP method"),
    ("HP", "HTTP request URI without the query string"),
    ("HPO", "HTTP path only, without host or query string"),
    ("HQ", "HTTP request query string, with its '?'"),
    ("HU", "HTTP request URI"),
    ("HV", "HTTP version"),
    ("ID", "unique id"),
    ("ST", "status code"),
    ("T", "GMT date and time of the accept"),
    ("Ta", "active time of the request, from TR to the end"),
    ("Tc", "time to connect to the server"),
    ("Td", "data transmission time"),
    ("Th", "connection handshake time (TLS, PROXY protocol)"),
    ("Ti", "idle time before the HTTP request"),
    ("Tl", "local date and time of the accept"),
    ("Tq", "Th + Ti + TR"),
    ("TR", "time to receive the full request from its first byte"),
    ("Tr", "server response time"),
    ("Ts", "accept date as a UNIX timestamp"),
    ("Tt", "total stream duration"),
    ("Tu", "total estimated time as seen from the client"),
    ("Tw", "time spent waiting in queues"),
    ("U", "bytes uploaded from the client to the server"),
    ("ac", "process-wide concurrent connections"),
    ("b", "backend name"),
    ("bc", "backend concurrent connections"),
    ("bi", "backend source IP (the address sluiced connects from)"),
    ("bp", "backend source port"),
    ("bq", "backend queue length"),
    ("ci", "client IP"),
    ("cp", "client port"),
    ("f", "frontend name"),
    ("fc", "frontend concurrent connections"),
    ("fi", "frontend IP (the accepting address)"),
    ("fp", "frontend port"),
    ("ft", "frontend name with '~' appended for TLS"),
    ("hr", "captured request headers, '{a|b}'"),
    ("hrl", "captured request headers, CLF style"),
    ("hs", "captured response headers, '{a|b}'"),
    ("hsl", "captured response headers, CLF style"),
    ("lc", "frontend log counter"),
    ("ms", "milliseconds of the accept date"),
    ("pid", "process id"),
    ("r", "HTTP request line"),
    ("rc", "retries"),
    ("rt", "request counter (HTTP request or TCP session)"),
    ("s", "server name"),
    ("sc", "server concurrent connections"),
    ("si", "server IP"),
    ("sp", "server port"),
    ("sq", "server queue length"),
    ("sslc", "TLS cipher"),
    ("sslv", "TLS version"),
    ("t", "date and time of the accept, with milliseconds"),
    ("tr", "date and time of the start of the HTTP request"),
    ("trg", "GMT date and time of the start of the HTTP request"),
    ("trl", "local date and time of the start of the HTTP request"),
    ("ts", "termination state"),
    ("tsc", "termination state with cookie status"),
];

/// An encoding option: `+Q` quotes, `+X` hexadecimal, `+E` escapes, `+json`/`+cbor`/`+bin` encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    Quote,
    Hex,
    Escape,
    Json,
    Cbor,
    Bin,
}

/// `+X` sets an option, `-X` clears it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag {
    pub on: bool,
    pub kind: FlagKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogItem {
    /// Text copied as is (`%%` already turned into `%`).
    Text(String),
    /// A `%<name>` variable; `name` is one of [`VARIABLES`].
    Var { flags: Vec<Flag>, name: &'static str },
    /// A `%[<sample>]` expression.
    Sample { flags: Vec<Flag>, expr: SampleExpr },
}

/// A parsed log-format string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFormat {
    /// The string as written.
    pub text: String,
    pub items: Vec<LogItem>,
}

impl LogFormat {
    /// Every sample expression in the format, to record the stick tables they name.
    pub fn samples(&self) -> impl Iterator<Item = &SampleExpr> {
        self.items.iter().filter_map(|i| match i {
            LogItem::Sample { expr, .. } => Some(expr),
            _ => None,
        })
    }
}

pub fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    let mut items = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('%') {
        text.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('%') {
            text.push('%');
            rest = r;
            continue;
        }
        if !text.is_empty() {
            items.push(LogItem::Text(std::mem::take(&mut text)));
        }
        let mut flags = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').ok_or_else(|| format!("missing '}}' after '%{{' in log-format '{s}'"))?;
            flags = parse_flags(&r[..end])?;
            rest = &r[end + 1..];
        }
        if let Some(r) = rest.strip_prefix('[') {
            let end = sample_end(r).ok_or_else(|| format!("missing ']' after '%[' in log-format '{s}'"))?;
            let expr = parse_sample(&r[..end]).map_err(|e| format!("in log-format '%[{}]': {e}", &r[..end]))?;
            items.push(LogItem::Sample { flags, expr });
            rest = &r[end + 1..];
            continue;
        }
        let len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
        let name = &rest[..len];
        if name.is_empty() {
            let after = rest.chars().next().map_or("end of string".to_string(), |c| format!("'{c}'"));
            return Err(format!("'%' followed by {after} in log-format '{s}' (use '%%' for a literal '%')"));
        }
        let Some((name, _)) = VARIABLES.iter().find(|(n, _)| *n == name) else {
            let hint = super::diag::did_you_mean(name, VARIABLES.iter().map(|(n, _)| *n)).map(|h| format!("; did you mean '%{h}'?")).unwrap_or_default();
            return Err(format!("unknown log-format variable '%{name}'{hint}"));
        };
        items.push(LogItem::Var { flags, name });
        rest = &rest[len..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        items.push(LogItem::Text(text));
    }
    Ok(LogFormat { text: s.to_owned(), items })
}

/// The index of the `]` closing a `%[` expression: brackets inside converter arguments do not count.
fn sample_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ']' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_flags(s: &str) -> Result<Vec<Flag>, String> {
    s.split(',')
        .map(|f| {
            let (on, name) = match (f.strip_prefix('+'), f.strip_prefix('-')) {
                (Some(n), _) => (true, n),
                (_, Some(n)) => (false, n),
                _ => return Err(format!("log-format flag '{f}' must start with '+' or '-'")),
            };
            let kind = match name {
                "Q" => FlagKind::Quote,
                "X" => FlagKind::Hex,
                "E" => FlagKind::Escape,
                "json" => FlagKind::Json,
                "cbor" => FlagKind::Cbor,
                "bin" => FlagKind::Bin,
                _ => return Err(format!("unknown log-format flag '{f}' (expected Q, X, E, json, cbor or bin)")),
            };
            Ok(Flag { on, kind })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &'static str) -> LogItem {
        LogItem::Var { flags: Vec::new(), name }
    }

    fn text(s: &str) -> LogItem {
        LogItem::Text(s.into())
    }

    #[test]
    fn default_formats_parse() {
        for f in [HTTP_LOG_FORMAT, HTTPS_LOG_FORMAT, TCP_LOG_FORMAT, CLF_HTTP_LOG_FORMAT] {
            parse_log_format(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn variables_end_at_the_first_non_alphanumeric() {
        let f = parse_log_format("%ci:%cp [%tr]").unwrap();
        assert_eq!(f.items, vec![var("ci"), text(":"), var("cp"), text(" ["), var("tr"), text("]")]);
    }

    #[test]
    fn double_percent_is_a_literal_percent() {
        assert_eq!(parse_log_format("100%% %pid").unwrap().items, vec![text("100% "), var("pid")]);
    }

    #[test]
    fn flags_apply_to_the_next_item() {
        let f = parse_log_format("%{+Q,-X}r").unwrap();
        let flags = vec![Flag { on: true, kind: FlagKind::Quote }, Flag { on: false, kind: FlagKind::Hex }];
        assert_eq!(f.items, vec![LogItem::Var { flags, name: "r" }]);
    }

    #[test]
    fn sample_expressions_are_parsed() {
        let f = parse_log_format("be_%[req.hdr(host),lower]").unwrap();
        assert_eq!(f.items.len(), 2);
        assert_eq!(f.samples().map(|e| e.fetch.name.as_str()).collect::<Vec<_>>(), vec!["req.hdr"]);
    }

    #[test]
    fn sample_brackets_inside_arguments_do_not_close_it() {
        let f = parse_log_format("%[path,regsub(([a-z]+),x)]").unwrap();
        assert_eq!(f.samples().next().map(|e| e.converters[0].args[0].as_str()), Some("([a-z]+)"));
    }

    #[test]
    fn flagged_sample_expression() {
        let f = parse_log_format("%{+Q}[ssl_fc_sni]").unwrap();
        assert!(matches!(&f.items[0], LogItem::Sample { flags, .. } if flags.len() == 1));
    }

    #[test]
    fn unknown_variable_is_named_in_the_error() {
        assert_eq!(parse_log_format("%ci %Tx").unwrap_err(), "unknown log-format variable '%Tx'; did you mean '%T'?");
    }

    #[test]
    fn bad_sample_is_an_error() {
        assert!(parse_log_format("%[nope]").unwrap_err().contains("unknown fetch method 'nope'"));
        assert!(parse_log_format("%[]").unwrap_err().contains("missing sample expression"));
    }

    #[test]
    fn unclosed_sample_is_an_error() {
        assert!(parse_log_format("%[src").unwrap_err().contains("missing ']'"));
    }

    #[test]
    fn unclosed_flags_are_an_error() {
        assert!(parse_log_format("%{+Q").unwrap_err().contains("missing '}'"));
    }

    #[test]
    fn unknown_flag_is_an_error() {
        assert!(parse_log_format("%{+Z}r").unwrap_err().contains("unknown log-format flag '+Z'"));
        assert!(parse_log_format("%{Q}r").unwrap_err().contains("must start with"));
    }

    #[test]
    fn lone_percent_is_an_error() {
        assert!(parse_log_format("50%").unwrap_err().contains("end of string"));
        assert!(parse_log_format("% x").unwrap_err().contains("' '"));
    }

    #[test]
    fn text_is_kept() {
        let f = parse_log_format("plain").unwrap();
        assert_eq!((f.text.as_str(), f.items.clone()), ("plain", vec![text("plain")]));
    }
}
