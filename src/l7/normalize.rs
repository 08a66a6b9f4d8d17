//! `http-request normalize-uri <normalizer>`: rewrites of the request target that make two
//! spellings of one resource the same, so that ACLs on `path` cannot be dodged with `//admin`,
//! `/./admin`, `/x/../admin` or `/%61dmin`. The path normalizers work on the path alone, the
//! percent ones on the path and query, `query-sort-by-name` on the query, the fragment ones on
//! what follows `#`. In absolute-form targets the scheme and authority are kept as they are;
//! authority-form (CONNECT) and `*` have no path and are left alone. (The head parser already
//! refuses a bad `%` sequence in a request target, so `strict` guards rewritten targets only.)

use super::config::UriNormalizer;

/// A `strict` normalizer met a `%` not followed by two hex digits.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidPercent;

/// The normalized target, or `Ok(None)` when it is already normal; `Err` for a `strict`
/// normalizer that met an invalid percent-encoding (the request is answered 400).
pub fn normalize(n: UriNormalizer, uri: &[u8]) -> Result<Option<Vec<u8>>, InvalidPercent> {
    let Some(start) = path_start(uri) else { return Ok(None) };
    let (prefix, rest) = uri.split_at(start);
    let frag_at = rest.iter().position(|&c| c == b'#').unwrap_or(rest.len());
    let (before_frag, fragment) = rest.split_at(frag_at);
    let query_at = before_frag.iter().position(|&c| c == b'?').unwrap_or(before_frag.len());
    let (path, query) = before_frag.split_at(query_at);
    let new_rest = match n {
        UriNormalizer::FragmentStrip => before_frag.to_vec(),
        UriNormalizer::FragmentEncode => {
            let mut v = before_frag.to_vec();
            if let Some((_, f)) = fragment.split_first() {
                v.extend_from_slice(b"%23");
                v.extend_from_slice(f);
            }
            v
        }
        UriNormalizer::PathMergeSlashes => join(&merge_slashes(path), query, fragment),
        UriNormalizer::PathStripDot => join(&strip_dot(path), query, fragment),
        UriNormalizer::PathStripDotdot { full } => join(&strip_dotdot(path, full), query, fragment),
        UriNormalizer::PercentToUppercase { strict } => join(&percent_upper(before_frag, strict)?, b"", fragment),
        UriNormalizer::PercentDecodeUnreserved { strict } => join(&percent_decode_unreserved(before_frag, strict)?, b"", fragment),
        UriNormalizer::QuerySortByName => join(path, &sort_query(query), fragment),
    };
    if new_rest == rest {
        return Ok(None);
    }
    let mut out = prefix.to_vec();
    out.extend_from_slice(&new_rest);
    Ok(Some(out))
}

/// Where the path begins: 0 in origin-form, after the authority in absolute-form; `None` for
/// targets without a path.
fn path_start(uri: &[u8]) -> Option<usize> {
    match uri.first() {
        Some(b'/') => Some(0),
        _ => {
            let scheme_end = uri.windows(3).position(|w| w == b"://")? + 3;
            let p = uri[scheme_end..].iter().position(|&c| c == b'/' || c == b'?' || c == b'#')?;
            (uri[scheme_end + p] == b'/').then_some(scheme_end + p)
        }
    }
}

fn join(path: &[u8], query: &[u8], fragment: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(path.len() + query.len() + fragment.len());
    v.extend_from_slice(path);
    v.extend_from_slice(query);
    v.extend_from_slice(fragment);
    v
}

/// `path-merge-slashes`: `//` becomes `/`.
fn merge_slashes(path: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(path.len());
    for &c in path {
        if !(c == b'/' && v.last() == Some(&b'/')) {
            v.push(c);
        }
    }
    v
}

/// Joins segments (the first is the empty one before the leading `/`); an empty result is `/`.
fn join_segments(segs: &[&[u8]]) -> Vec<u8> {
    let v = segs.join(&b'/');
    if v.is_empty() { b"/".to_vec() } else { v }
}

/// `path-strip-dot`: `.` segments go; one that ended the path leaves the trailing `/`.
fn strip_dot(path: &[u8]) -> Vec<u8> {
    let segs: Vec<&[u8]> = path.split(|&c| c == b'/').collect();
    let mut out: Vec<&[u8]> = Vec::with_capacity(segs.len());
    for (i, s) in segs.iter().enumerate() {
        if i > 0 && *s == b"." {
            if i == segs.len() - 1 {
                out.push(b"");
            }
            continue;
        }
        out.push(s);
    }
    join_segments(&out)
}

/// `path-strip-dotdot [full]`: `..` removes itself and the segment before it; at the root it
/// stays, unless `full`. One that ended the path leaves the trailing `/`.
fn strip_dotdot(path: &[u8], full: bool) -> Vec<u8> {
    let segs: Vec<&[u8]> = path.split(|&c| c == b'/').collect();
    let mut out: Vec<&[u8]> = Vec::with_capacity(segs.len());
    for (i, s) in segs.iter().enumerate() {
        if i > 0 && *s == b".." {
            // A segment to climb out of: not the leading empty one, not a `..` kept at the root.
            let can_pop = out.len() > 1 && out.last().is_some_and(|l| *l != b"..");
            if can_pop {
                out.pop();
            } else if !full {
                out.push(s);
                continue;
            }
            if i == segs.len() - 1 {
                out.push(b"");
            }
            continue;
        }
        out.push(s);
    }
    join_segments(&out)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The `%XY` at `i`, when `XY` are hex digits.
fn percent_at(s: &[u8], i: usize) -> Option<u8> {
    Some(hex(*s.get(i + 1)?)? << 4 | hex(*s.get(i + 2)?)?)
}

/// `percent-to-uppercase [strict]`: `%6f` becomes `%6F`.
fn percent_upper(s: &[u8], strict: bool) -> Result<Vec<u8>, InvalidPercent> {
    let mut v = s.to_vec();
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            if percent_at(&v, i).is_some() {
                v[i + 1].make_ascii_uppercase();
                v[i + 2].make_ascii_uppercase();
                i += 3;
                continue;
            }
            if strict {
                return Err(InvalidPercent);
            }
        }
        i += 1;
    }
    Ok(v)
}

/// `percent-decode-unreserved [strict]`: `%61` becomes `a`; reserved characters stay encoded.
fn percent_decode_unreserved(s: &[u8], strict: bool) -> Result<Vec<u8>, InvalidPercent> {
    let mut v = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            match percent_at(s, i) {
                Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                    v.push(b);
                    i += 3;
                    continue;
                }
                Some(_) => {
                    v.extend_from_slice(&s[i..i + 3]);
                    i += 3;
                    continue;
                }
                None if strict => return Err(InvalidPercent),
                None => {}
            }
        }
        v.push(s[i]);
        i += 1;
    }
    Ok(v)
}

/// `query-sort-by-name`: the `&`-separated parameters in the order of their names (stable, so
/// repeated names keep their order).
fn sort_query(query: &[u8]) -> Vec<u8> {
    let Some((_, q)) = query.split_first() else { return Vec::new() };
    let mut params: Vec<&[u8]> = q.split(|&c| c == b'&').collect();
    let name = |p: &[u8]| -> Vec<u8> { p.split(|&c| c == b'=').next().unwrap_or_default().to_vec() };
    params.sort_by_key(|p| name(p));
    let mut v = b"?".to_vec();
    v.extend_from_slice(&params.join(&b'&'));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use UriNormalizer as N;

    fn norm(n: UriNormalizer, uri: &str) -> String {
        match normalize(n, uri.as_bytes()) {
            Ok(Some(v)) => String::from_utf8(v).unwrap(),
            Ok(None) => uri.to_owned(),
            Err(InvalidPercent) => "400".to_owned(),
        }
    }

    #[test]
    fn merge_slashes_in_the_path_only() {
        assert_eq!(norm(N::PathMergeSlashes, "//"), "/");
        assert_eq!(norm(N::PathMergeSlashes, "/foo//bar///baz?a=//b"), "/foo/bar/baz?a=//b");
        assert_eq!(norm(N::PathMergeSlashes, "http://h:80//a//b"), "http://h:80/a/b");
        assert_eq!(normalize(N::PathMergeSlashes, b"/a/b"), Ok(None));
    }

    #[test]
    fn strip_dot_segments() {
        for (from, to) in
            [("/.", "/"), ("/./bar/", "/bar/"), ("/a/./a", "/a/a"), ("/.well-known/", "/.well-known/"), ("/a/.", "/a/"), ("/a/.?x=/./", "/a/?x=/./")]
        {
            assert_eq!(norm(N::PathStripDot, from), to, "{from}");
        }
    }

    #[test]
    fn strip_dotdot_segments_and_full_at_the_root() {
        let plain = N::PathStripDotdot { full: false };
        let full = N::PathStripDotdot { full: true };
        for (from, to, to_full) in [
            ("/foo/../", "/", "/"),
            ("/foo/../bar/", "/bar/", "/bar/"),
            ("/foo/bar/../", "/foo/", "/foo/"),
            ("/../bar/", "/../bar/", "/bar/"),
            ("/bar/../../", "/../", "/"),
            ("/foo/..", "/", "/"),
            ("/foo/..bar/", "/foo/..bar/", "/foo/..bar/"),
            ("/../../a", "/../../a", "/a"),
        ] {
            assert_eq!(norm(plain, from), to, "{from}");
            assert_eq!(norm(full, from), to_full, "{from} full");
        }
    }

    #[test]
    fn percent_normalizers_and_strict_invalid_encodings() {
        assert_eq!(norm(N::PercentToUppercase { strict: false }, "/%6f?q=%2f"), "/%6F?q=%2F");
        assert_eq!(norm(N::PercentToUppercase { strict: false }, "/%zz"), "/%zz");
        assert_eq!(norm(N::PercentToUppercase { strict: true }, "/%zz"), "400");
        assert_eq!(norm(N::PercentToUppercase { strict: true }, "/%4"), "400");
        assert_eq!(norm(N::PercentDecodeUnreserved { strict: false }, "/%61dmin%2Fx%7e"), "/admin%2Fx~");
        assert_eq!(norm(N::PercentDecodeUnreserved { strict: false }, "/%3F"), "/%3F");
        assert_eq!(norm(N::PercentDecodeUnreserved { strict: false }, "/%zz"), "/%zz");
        assert_eq!(norm(N::PercentDecodeUnreserved { strict: true }, "/%zz"), "400");
    }

    #[test]
    fn query_sort_is_stable_by_name() {
        assert_eq!(norm(N::QuerySortByName, "/?c=3&a=1&b=2"), "/?a=1&b=2&c=3");
        assert_eq!(norm(N::QuerySortByName, "/?aaa=3&a=1&aa=2"), "/?a=1&aa=2&aaa=3");
        assert_eq!(norm(N::QuerySortByName, "/?a=3&b=4&a=1&b=5&a=2"), "/?a=3&a=1&a=2&b=4&b=5");
        assert_eq!(norm(N::QuerySortByName, "/p"), "/p");
    }

    #[test]
    fn fragments_and_targets_without_a_path() {
        assert_eq!(norm(N::FragmentStrip, "/#foo"), "/");
        assert_eq!(norm(N::FragmentEncode, "/#foo"), "/%23foo");
        assert_eq!(norm(N::PathMergeSlashes, "example.com:443"), "example.com:443");
        assert_eq!(norm(N::PathMergeSlashes, "*"), "*");
        assert_eq!(norm(N::PathMergeSlashes, "http://h?x"), "http://h?x");
    }
}
