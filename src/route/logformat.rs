//! Log-format strings compiled for evaluation per stream: text, `%[sample]` expressions and the
//! `%`-variables the data plane knows so far (the full set comes with logging).

use crate::config::logformat::{LogFormat, LogItem};
use crate::route::eval::{CompiledSample, Sample, StreamCtx};

#[derive(Debug)]
enum Part {
    Text(String),
    Sample(CompiledSample),
    Var(&'static str),
}

/// A log-format string ready to evaluate.
#[derive(Debug)]
pub struct CompiledLf {
    parts: Vec<Part>,
}

impl CompiledLf {
    pub fn compile(lf: &LogFormat) -> Result<CompiledLf, String> {
        let mut parts = Vec::with_capacity(lf.items.len());
        for it in &lf.items {
            parts.push(match it {
                LogItem::Text(t) => Part::Text(t.clone()),
                LogItem::Sample { expr, .. } => Part::Sample(CompiledSample::compile(expr)?),
                LogItem::Var { name, .. } => Part::Var(name),
            });
        }
        Ok(CompiledLf { parts })
    }

    /// A constant string, when the format has no variable part.
    pub fn as_constant(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// The expression, when the format is one `%[...]` and nothing else (`use_backend
    /// %[req.hdr(host),lower,map(hosts.map)]`): its text is [`eval`](Self::eval)'s, which a
    /// caller can compare without building a string.
    pub fn single_sample(&self) -> Option<&CompiledSample> {
        match self.parts.as_slice() {
            [Part::Sample(s)] => Some(s),
            _ => None,
        }
    }

    pub fn eval(&self, ctx: &dyn StreamCtx) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Sample(s) => {
                    if let Ok(Some(v)) = s.eval(ctx) {
                        push_sample(&mut out, &v);
                    } else {
                        out.push('-');
                    }
                }
                Part::Var(v) => push_var(&mut out, v, ctx),
            }
        }
        out
    }
}

fn push_sample(out: &mut String, v: &Sample) {
    match v {
        Sample::Bool(b) => out.push(if *b { '1' } else { '0' }),
        Sample::Int(i) => out.push_str(&i.to_string()),
        Sample::Ip(ip) => out.push_str(&ip.to_string()),
        Sample::Str(s) => out.push_str(s),
        Sample::Bin(b) => out.push_str(&String::from_utf8_lossy(b)),
    }
}

fn push_var(out: &mut String, v: &str, ctx: &dyn StreamCtx) {
    match v {
        "ci" => out.push_str(&ctx.src().map_or("-".into(), |a| a.ip().to_string())),
        "cp" => out.push_str(&ctx.src().map_or("-".into(), |a| a.port().to_string())),
        "fi" => out.push_str(&ctx.dst().map_or("-".into(), |a| a.ip().to_string())),
        "fp" => out.push_str(&ctx.dst().map_or("-".into(), |a| a.port().to_string())),
        "f" | "ft" => out.push_str(ctx.frontend_name()),
        "b" => out.push_str(ctx.current_backend().map_or("-", |b| b.name.as_str())),
        "pid" => out.push_str(&std::process::id().to_string()),
        "H" => out.push_str(crate::log::host_name()),
        // The rest of HAProxy's variables come with logging.
        _ => out.push('-'),
    }
}
