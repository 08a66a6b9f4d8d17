//! Renders `docs/configuration.md` from the keyword registry, so the reference lists exactly what
//! the parser accepts. `tests/docs_sync.rs` fails when the file and the registry disagree, and
//! rewrites the file when run with `SLUICED_BLESS=1`.

use super::registry::{DocTable, doc_tables};

const INTRO: &str = "# Configuration reference

sluiced reads HAProxy's configuration language. This page lists every keyword, option, action,
fetch and converter that sluiced accepts, the sections that accept it, its syntax, an example, and
its status:

- **implemented**: the daemon acts on it.
- **parsed only**: checked and kept in the model; its behaviour lands with a later release. Each
  use gets a warning at start with its file and line, for example
  `parsing [/etc/sluiced/sluiced.cfg:12] : 'http-request' : the http-request action 'normalize-uri' is parsed but not applied yet: sluiced does not act on it`,
  so a configuration brought over from HAProxy never loses a rule, a limit or a check without a
  word (`zero-warning` or `-dW` then refuses it).
- **ignored**: accepted so that HAProxy configurations load, with no effect by design and no
  warning: performance hints sluiced tunes itself, text shown nowhere yet, knobs with nothing to
  act on here.

A keyword that is not listed here is refused with a `file:line` error naming it: sluiced never
skips a line silently.

This file is generated from the keyword registry in the source (`src/*/config.rs`); a test keeps the
two in sync. To regenerate it: `SLUICED_BLESS=1 cargo test --test docs_sync`.

## Text rules

- Lines are split into words on spaces and tabs; `#` starts a comment unless quoted or escaped.
- `\"double quotes\"` group words and expand environment variables and escapes; `'single quotes'`
  take everything literally; quoted and unquoted parts next to each other form one word.
- Escapes: `\\ ` (space), `\\#`, `\\\\`, `\\\"`, `\\'`, `\\n`, `\\r`, `\\t`, `\\xNN`.
- Environment variables: `$NAME`, `${NAME}`, `${NAME-default}`; an unset variable is empty.
- Conditional blocks: `.if <cond>`, `.elif <cond>`, `.else`, `.endif`, with the predicates
  `defined(VAR)`, `feature(NAME)`, `enabled(OPT)`, `streq(a,b)`, `strneq(a,b)`, `strstr(a,b)`,
  `version_atleast(X)`, `version_before(X)` and `!`, `&&`, `||`, parentheses. Version predicates
  compare against the HAProxy release whose behaviour sluiced implements (3.4), not sluiced's own
  version. `sluiced -cc '<cond>'` evaluates one condition and exits 0 (true), 1 (false) or 2 (error).
- Directives: `.notice <msg>`, `.warning <msg>` (fatal with `-dW`), `.alert <msg>` (fatal), `.diag <msg>`.
- Times: a number with an optional unit `us`, `ms`, `s`, `m`, `h`, `d` (default `ms`), at most 2147483647 ms.
- Sizes: a number with an optional unit `k`, `m`, `g` (powers of 1024).
- Addresses: `addr:port`, `:port`, `*:port`, `[v6]:port`, `ipv4@`, `ipv6@`, `udp@`, `quic4@`, `quic6@`,
  `unix@/path` or `/path`, `abns@name`, `fd@N` (an inherited listening socket), `sockpair@N`; port
  ranges `a:p1-p2` on `bind`; port offsets `+N`/`-N` on `server`.

## Sections

- `global` (several are merged), `defaults [<name>] [from <defaults>]` (each `defaults` section resets
  the defaults, as in HAProxy, and the last one applies to the proxies after it; a proxy can name
  another with `from`), `frontend <name> [from <defaults>]`, `backend <name> [from <defaults>]`,
  `listen <name> [from <defaults>]`, `userlist <name>`, `http-errors <name>`, `resolvers <name>`
  (see \"resolvers section\" below; a server naming `resolvers default` when no such section is
  declared gets one made from `/etc/resolv.conf`, as in HAProxy).
- `peers <name>` (see \"peers section\" below): the nodes a `stick-table ... peers <name>` is
  replicated with, over HAProxy's peers protocol.
- `cache`, `program`, `ring`, `mailers`, `crt-store`, `log-forward`, `fcgi-app`, `traces`, `acme` are
  refused with an error.
";

fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn table(out: &mut String, t: &DocTable) {
    out.push_str(&format!("\n## {}\n\n", t.title));
    let with_sections = t.entries.iter().any(|(_, s, _)| s.is_some());
    if with_sections {
        out.push_str("| keyword | defaults | frontend | listen | backend | syntax | description | example | status |\n");
        out.push_str("|---|:-:|:-:|:-:|:-:|---|---|---|---|\n");
    } else {
        out.push_str("| name | syntax | description | example | status |\n|---|---|---|---|---|\n");
    }
    let mut entries: Vec<_> = t.entries.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, sections, doc) in entries {
        let cols = match sections {
            Some(s) => s.columns().iter().map(|on| if *on { " X |" } else { " - |" }).collect::<String>(),
            None if with_sections => " | | | |".into(),
            None => String::new(),
        };
        out.push_str(&format!(
            "| `{}` |{} `{}` | {} | `{}` | {} |\n",
            escape(name),
            cols,
            escape(doc.syntax),
            escape(doc.desc),
            escape(doc.example),
            doc.status.label()
        ));
    }
}

/// The whole of `docs/configuration.md`.
pub fn render_configuration_md() -> String {
    let mut out = String::from(INTRO);
    for t in doc_tables() {
        table(&mut out, &t);
    }
    out
}
