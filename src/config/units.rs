//! Time and size values as HAProxy writes them: `500`, `10s`, `1m30s` is not accepted (HAProxy takes
//! one unit per value), `16k`.

use std::time::Duration;

/// The largest timer HAProxy accepts: 2^31-1 milliseconds (about 24.8 days).
pub const MAX_TIMER_MS: u64 = i32::MAX as u64;

/// Parses a time with an optional unit (`us`, `ms`, `s`, `m`, `h`, `d`); bare numbers are `default_unit`.
pub fn parse_time_unit(s: &str, default_unit: &str) -> Result<Duration, String> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("'{s}' is not a time: expected a number with an optional unit (us, ms, s, m, h, d)"));
    }
    let n: u64 = s[..digits].parse().map_err(|_| format!("time '{s}' is too large"))?;
    let unit = if digits == s.len() { default_unit } else { &s[digits..] };
    let us: u128 = match unit {
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        other => return Err(format!("unexpected unit '{other}' in time '{s}' (expected us, ms, s, m, h or d)")),
    };
    let total = u128::from(n) * us;
    if total.div_ceil(1000) > u128::from(MAX_TIMER_MS) {
        return Err(format!("time '{s}' overflows the largest timer (2147483647 ms)"));
    }
    Ok(Duration::from_micros(total as u64))
}

/// A time whose bare numbers are milliseconds, the default for HAProxy timeouts.
pub fn parse_time(s: &str) -> Result<Duration, String> {
    parse_time_unit(s, "ms")
}

/// Parses a size with an optional binary unit (`k`, `m`, `g`, either case).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("'{s}' is not a size: expected a number with an optional unit (k, m, g)"));
    }
    let n: u64 = s[..digits].parse().map_err(|_| format!("size '{s}' is too large"))?;
    let mult: u64 = match &s[digits..] {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        other => return Err(format!("unexpected unit '{other}' in size '{s}' (expected k, m or g)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size '{s}' is too large"))
}

/// Parses a non-negative integer that fits `max`, naming `what` in the error.
pub fn parse_uint(s: &str, what: &str, max: u64) -> Result<u64, String> {
    let v: u64 = s.parse().map_err(|_| format!("{what} expects a non-negative integer, got '{s}'"))?;
    if v > max {
        return Err(format!("{what} must be at most {max}, got '{s}'"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_default_to_milliseconds_and_take_units() {
        assert_eq!(parse_time("500"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_time("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_time("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_time("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_time("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_time("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_time_unit("5", "s"), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn bad_times_are_rejected() {
        assert!(parse_time("").is_err());
        assert!(parse_time("10x").is_err());
        assert!(parse_time("s").is_err());
        assert!(parse_time("-1").is_err());
        assert!(parse_time("25d").is_err());
        assert!(parse_time("99999999999999999999999").is_err());
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("16384"), Ok(16384));
        assert_eq!(parse_size("16k"), Ok(16384));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("1t").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("99999999999g").is_err());
    }
}
