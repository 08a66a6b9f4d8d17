//! Log-format strings: literal text, `%xx` variables and `%[sample]` expressions. (Interface stub.)

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFormat {
    pub text: String,
}

pub fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    Ok(LogFormat { text: s.to_owned() })
}
