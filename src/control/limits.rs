//! `set maxconn frontend|global` and `set rate-limit`: the admission limits changed while the
//! process runs, with HAProxy's answers.

use crate::route::RouteTable;

/// `set maxconn frontend <frontend> <n>`: `0` removes the frontend's own limit.
pub fn set_maxconn_frontend(rt: &RouteTable, name: Option<&str>, value: Option<&str>) -> Result<String, String> {
    let Some(name) = name else {
        return Err("A frontend name is expected.\n".into());
    };
    let Some(fe) = rt.frontends.iter().find(|f| f.name == name) else {
        return Err("No such frontend.\n".into());
    };
    let Some(value) = value else {
        return Err("Integer value expected.\n".into());
    };
    let n = atoi(value);
    if n < 0 {
        return Err("Value out of range.\n".into());
    }
    fe.limit.set(u32::try_from(n).unwrap_or(u32::MAX));
    Ok(String::new())
}

/// `set maxconn global <n>`: at most the configured `maxconn` (`Hard_maxconn`); `0` or less is
/// that configured value again (no limit when none was configured).
pub fn set_maxconn_global(rt: &RouteTable, value: Option<&str>) -> Result<String, String> {
    let Some(value) = value else {
        return Err("Expects an integer value.\n".into());
    };
    let n = atoi(value);
    let hard = rt.limits.hard_maxconn;
    if let Some(h) = hard
        && n > i64::from(h)
    {
        return Err("Value out of range.\n".into());
    }
    let v = if n <= 0 { hard.unwrap_or(0) } else { u32::try_from(n).unwrap_or(u32::MAX) };
    rt.limits.maxconn.set(v);
    Ok(String::new())
}

const RATE_USAGE: &str = "'set rate-limit' only supports :\n   - 'connections global' to set the per-process maximum connection rate\n   - 'sessions global' to set the per-process maximum session rate\n";

/// `set rate-limit connections|sessions global <n>`: `0` is no limit.
pub fn set_rate_limit(rt: &RouteTable, args: &[&str]) -> Result<String, String> {
    let rate = match args {
        ["connections", "global", ..] => &rt.limits.conn_rate,
        ["sessions", "global", ..] => &rt.limits.sess_rate,
        _ => return Err(RATE_USAGE.into()),
    };
    let Some(value) = args.get(2) else {
        return Err("Expects an integer value.\n".into());
    };
    let n = atoi(value);
    if !(0..=i64::from(i32::MAX)).contains(&n) {
        return Err("Value out of range.\n".into());
    }
    rate.set(n as u32);
    Ok(String::new())
}

/// C's `atoi`: leading blanks, a sign, then digits; what follows is ignored, nothing is 0.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).fold(0i64, |n, d| n.saturating_mul(10).saturating_add(i64::from(d - b'0')));
    if neg { -n } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(global: &str) -> RouteTable {
        let text =
            format!("global\n{global}defaults\n    mode tcp\nfrontend f\n    bind :8080\n    default_backend be\nbackend be\n    server s1 127.0.0.1:1\n");
        RouteTable::compile(&crate::config::testing::ok(&text)).unwrap()
    }

    #[test]
    fn atoi_reads_like_c() {
        assert_eq!(atoi("12x"), 12);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("x"), 0);
    }

    #[test]
    fn global_maxconn_stays_under_the_configured_one() {
        let rt = table("    maxconn 100\n");
        assert_eq!(set_maxconn_global(&rt, Some("101")), Err("Value out of range.\n".into()));
        assert_eq!(set_maxconn_global(&rt, Some("10")), Ok(String::new()));
        assert_eq!(rt.limits.maxconn.max(), Some(10));
        assert_eq!(set_maxconn_global(&rt, Some("0")), Ok(String::new()));
        assert_eq!(rt.limits.maxconn.max(), Some(100));
        assert_eq!(set_maxconn_global(&rt, None), Err("Expects an integer value.\n".into()));
    }

    #[test]
    fn frontend_maxconn_and_rates_change() {
        let rt = table("");
        assert_eq!(set_maxconn_frontend(&rt, Some("nope"), Some("1")), Err("No such frontend.\n".into()));
        assert_eq!(set_maxconn_frontend(&rt, Some("f"), None), Err("Integer value expected.\n".into()));
        assert_eq!(set_maxconn_frontend(&rt, Some("f"), Some("-1")), Err("Value out of range.\n".into()));
        set_maxconn_frontend(&rt, Some("f"), Some("7")).unwrap();
        assert_eq!(rt.frontends[0].limit.max(), Some(7));
        set_rate_limit(&rt, &["connections", "global", "5"]).unwrap();
        set_rate_limit(&rt, &["sessions", "global", "6"]).unwrap();
        assert_eq!((rt.limits.conn_rate.limit(), rt.limits.sess_rate.limit()), (5, 6));
        assert!(set_rate_limit(&rt, &["ssl-sessions", "global", "6"]).unwrap_err().starts_with("'set rate-limit' only supports :\n"));
        assert_eq!(set_rate_limit(&rt, &["connections", "global"]), Err("Expects an integer value.\n".into()));
    }
}
