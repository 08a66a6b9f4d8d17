//! What this build of sluiced is and has. `-vv`, `-cc 'feature(X)'` and `.if` blocks all read these
//! tables, so they can only tell the truth together.

/// sluiced's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The HAProxy release whose behaviour sluiced implements. `version_atleast()` and
/// `version_before()` compare against this, not against [`VERSION`], because configurations use
/// them to ask "does this balancer behave like HAProxy X?".
pub const HAPROXY_COMPAT_VERSION: &str = "3.4";

/// HAProxy's feature names and whether this build has each. A feature turns `+` when the code that
/// provides it lands, not before.
pub const FEATURES: &[(&str, bool)] = &[
    ("EPOLL", true),
    ("POLL", false),
    ("LINUX_SPLICE", true),
    ("LINUX_TPROXY", false),
    ("REUSEPORT", true),
    ("THREAD", true),
    ("CPU_AFFINITY", true),
    ("TFO", false),
    ("NS", false),
    ("OPENSSL", false),
    ("RUSTLS", false),
    ("PROMEX", true),
    ("IO_URING", true),
    ("LUA", false),
    ("PCRE2", false),
    ("ZLIB", false),
    ("QUIC", false),
    ("SYSTEMD", false),
];

/// The `use-service` names this build can serve.
pub const SERVICES: &[&str] = &["prometheus-exporter"];

/// True when `name` is a feature this build has.
pub fn has_feature(name: &str) -> bool {
    FEATURES.iter().any(|(n, on)| *on && n.eq_ignore_ascii_case(name))
}

/// HAProxy's `enabled(<opt>)` run-time options: true only for those this build really runs with.
pub fn enabled(opt: &str) -> bool {
    match opt.to_ascii_uppercase().as_str() {
        "EPOLL" => has_feature("EPOLL"),
        "POLL" => has_feature("POLL"),
        "SPLICE" => has_feature("LINUX_SPLICE"),
        "REUSEPORT" => has_feature("REUSEPORT"),
        "GETADDRINFO" | "KQUEUE" | "EVPORTS" | "FAST-FORWARD" | "SERVER-SSL-VERIFY-NONE" => false,
        _ => false,
    }
}

/// `Feature list : +A -B ...` as `-vv` prints it.
pub fn feature_line() -> String {
    let mut s = String::from("Feature list :");
    for (name, on) in FEATURES {
        s.push(' ');
        s.push(if *on { '+' } else { '-' });
        s.push_str(name);
    }
    s
}

/// Compares dotted versions numerically ("2.10" > "2.9"); missing components count as zero and a
/// non-numeric tail (`-dev1`) is ignored.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(v: &str) -> Vec<u64> {
        v.trim().split('.').map(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0)).collect()
    }
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).copied().unwrap_or(0);
        let y = pb.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            std::cmp::Ordering::Equal => continue,
            o => return o,
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("2.10", "2.9"), Ordering::Greater);
        assert_eq!(compare_versions("3.4", "3.4.0"), Ordering::Equal);
        assert_eq!(compare_versions("2.4-dev1", "2.5"), Ordering::Less);
    }

    #[test]
    fn feature_line_lists_every_feature_with_its_sign() {
        let line = feature_line();
        for (n, on) in FEATURES {
            assert!(line.contains(&format!("{}{n}", if *on { '+' } else { '-' })));
        }
    }
}
