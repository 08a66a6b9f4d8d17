//! The map and ACL commands of the runtime API (`show|get|add|set|del|clear map|acl`), with
//! HAProxy's answers. A map or ACL is named by its file or by `#<id>` (the first column of `show
//! map`); an entry by its key or by `#<ref>` (the first column of `show map <map>`). Changes are in
//! memory only and seen by every converter and ACL that reads the reference.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::route::RouteTable;
use crate::route::patref::{Entry, PatRef};

/// Which kind of reference a command names (`map` or `acl`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Acl,
}

impl Kind {
    fn unknown(self) -> String {
        match self {
            Kind::Map => "Unknown map identifier. Please use #<id> or <file>.\n".into(),
            Kind::Acl => "Unknown ACL identifier. Please use #<id> or <file>.\n".into(),
        }
    }

    fn lists(self, r: &PatRef) -> bool {
        match self {
            Kind::Map => r.is_map(),
            Kind::Acl => r.is_acl(),
        }
    }
}

/// Runs `<verb> map|acl <args>`.
pub fn run(rt: &RouteTable, verb: &str, kind: &str, args: &[&str]) -> Result<String, String> {
    let kind = if kind == "map" { Kind::Map } else { Kind::Acl };
    let args = without_version(args)?;
    match verb {
        "show" => show(rt, kind, &args),
        "get" => get(rt, kind, &args),
        "add" => add(rt, kind, &args),
        "set" if kind == Kind::Map => set(rt, &args),
        "del" => del(rt, kind, &args),
        "clear" => clear(rt, kind, &args),
        _ => Err(format!("Unknown command: '{verb} acl'\n")),
    }
}

/// Drops a leading `@<ver>`: only the current version (0) exists, as `prepare`/`commit` are not
/// supported.
fn without_version<'a>(args: &[&'a str]) -> Result<Vec<&'a str>, String> {
    match args.first().and_then(|a| a.strip_prefix('@')) {
        Some("0") => Ok(args[1..].to_vec()),
        Some(_) => Err("Unknown version: only the current version (@0) exists; 'prepare' and 'commit' are not supported.\n".into()),
        None => Ok(args.to_vec()),
    }
}

/// The reference `name` (`<file>` or `#<id>`) that `kind` lists.
fn find<'a>(rt: &'a RouteTable, kind: Kind, name: &str) -> Result<&'a Arc<PatRef>, String> {
    rt.patterns.find(name).filter(|r| kind.lists(r)).ok_or_else(|| kind.unknown())
}

fn show(rt: &RouteTable, kind: Kind, args: &[&str]) -> Result<String, String> {
    let mut out = String::new();
    match args.first() {
        None => {
            out.push_str("# id (file) description\n");
            for r in rt.patterns.refs.iter().filter(|r| kind.lists(r)) {
                let _ = writeln!(out, "{} ({}) {}", r.id(), r.reference, r.description());
            }
        }
        Some(name) => {
            for e in find(rt, kind, name)?.entries() {
                match &e.value {
                    Some(v) => {
                        let _ = writeln!(out, "{:#x} {} {v}", e.id, e.key);
                    }
                    None => {
                        let _ = writeln!(out, "{:#x} {}", e.id, e.key);
                    }
                }
            }
        }
    }
    Ok(out)
}

fn get(rt: &RouteTable, kind: Kind, args: &[&str]) -> Result<String, String> {
    let [name, value, ..] = args else {
        return Err(match kind {
            Kind::Map => "Missing map identifier and/or key.\n".into(),
            Kind::Acl => "Missing ACL identifier and/or key.\n".into(),
        });
    };
    let r = rt.patterns.find(name).ok_or_else(|| kind.unknown())?;
    Ok(r.lookup(value, kind == Kind::Map))
}

/// A change refused by a reader: HAProxy's form, the message and a full stop.
fn refused(e: String) -> String {
    format!("{}.\n", e.trim_end_matches('.'))
}

fn add(rt: &RouteTable, kind: Kind, args: &[&str]) -> Result<String, String> {
    let r = match kind {
        Kind::Map => {
            let [name, key, value, ..] = args else {
                return Err("'add map' expects three parameters (map identifier, key and value) or one parameter (map identifier) and a payload\n".into());
            };
            let r = rt.patterns.find(name).filter(|r| r.map_format).ok_or_else(|| kind.unknown())?;
            let entry = Entry::new(*key, Some((*value).to_owned()));
            r.change(|list| {
                list.push(entry);
                Ok(())
            })
        }
        Kind::Acl => {
            let [name, pattern, ..] = args else {
                return Err("'add acl' expects two parameters: ACL identifier and pattern.\n".into());
            };
            let r = rt.patterns.find(name).ok_or_else(|| kind.unknown())?;
            if r.map_format {
                return Err("This ACL is shared with a map containing samples. You must use the command 'add map' to add values.\n".into());
            }
            let entry = Entry::new(*pattern, None);
            r.change(|list| {
                list.push(entry);
                Ok(())
            })
        }
    };
    r.map(|()| String::new()).map_err(refused)
}

/// `#0x<hex>`: an entry's id; `None` for a key. A `#` form that is not a number is an error.
fn entry_id(s: &str) -> Result<Option<u64>, String> {
    match s.strip_prefix("#0x") {
        Some(hex) => u64::from_str_radix(hex, 16).map(Some).map_err(|_| "Malformed identifier. Please use #<id> or <file>.\n".into()),
        None => Ok(None),
    }
}

fn set(rt: &RouteTable, args: &[&str]) -> Result<String, String> {
    let [name, which, value, ..] = args else {
        return Err("'set map' expects three parameters: map identifier, key and value.\n".into());
    };
    let r = rt.patterns.find(name).filter(|r| r.map_format).ok_or_else(|| Kind::Map.unknown())?;
    let id = entry_id(which)?;
    r.change(|list| {
        let mut hit = false;
        for e in list.iter_mut().filter(|e| id.map_or(e.key == *which, |id| e.id == id)) {
            e.value = Some((*value).to_owned());
            hit = true;
        }
        if hit { Ok(()) } else { Err("entry not found".into()) }
    })
    .map(|()| String::new())
    .map_err(refused)
}

fn del(rt: &RouteTable, kind: Kind, args: &[&str]) -> Result<String, String> {
    let [name, which, ..] = args else {
        return Err(match kind {
            Kind::Map => "This command expects two parameters: map identifier and key.\n".into(),
            Kind::Acl => "This command expects two parameters: ACL identifier and key.\n".into(),
        });
    };
    let r = find(rt, kind, name)?;
    let id = entry_id(which)?;
    let removed = r.change(|list| {
        let before = list.len();
        list.retain(|e| !id.map_or(e.key == *which, |id| e.id == id));
        Ok(before != list.len())
    });
    match removed {
        Ok(true) => Ok(String::new()),
        Ok(false) => Err("Key not found.\n".into()),
        Err(e) => Err(refused(e)),
    }
}

fn clear(rt: &RouteTable, kind: Kind, args: &[&str]) -> Result<String, String> {
    let Some(name) = args.first() else {
        return Err(match kind {
            Kind::Map => "Missing map identifier.\n".into(),
            Kind::Acl => "Missing ACL identifier.\n".into(),
        });
    };
    find(rt, kind, name)?
        .change(|list| {
            list.clear();
            Ok(())
        })
        .map(|()| String::new())
        .map_err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table reading `hosts.map` as `map_str_int` and `map_beg`, and an ACL file with `-u 5`.
    fn table(tag: &str) -> (RouteTable, String, String) {
        let dir = std::env::temp_dir().join(format!("sluiced-maps-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (map, list) = (dir.join("hosts.map"), dir.join("nets.lst"));
        std::fs::write(&map, "a 1\n# comment\nb 2\n").unwrap();
        std::fs::write(&list, "10.0.0.0/8\n").unwrap();
        let (m, l) = (map.display().to_string(), list.display().to_string());
        let text = format!(
            "defaults\n    mode http\nfrontend f\n    bind :8080\n    acl nets src -u 5 -f {l}\n    http-request deny if nets\n    http-request set-var(txn.n) req.hdr(host),map_str_int({m})\n    use_backend %[req.hdr(host),map_beg({m},be)]\nbackend be\n    server s1 127.0.0.1:1\n"
        );
        let rt = RouteTable::compile(&crate::config::testing::ok(&text)).unwrap();
        // Read once compiled: changes are in memory from now on.
        std::fs::remove_dir_all(&dir).unwrap();
        (rt, m, l)
    }

    #[test]
    fn references_are_numbered_after_the_explicit_ids_and_listed_by_id() {
        let (rt, m, l) = table("ids");
        let ids: Vec<(i64, String)> = rt.patterns.refs.iter().map(|r| (r.id(), r.reference.clone())).collect();
        // In the order the routing table compiles them (`use_backend` before `http-request`).
        assert_eq!(ids, vec![(0, m.clone()), (1, String::new()), (5, l.clone())]);
        assert_eq!(run(&rt, "show", "map", &[]).unwrap().lines().count(), 2);
        assert!(run(&rt, "show", "acl", &["#5"]).unwrap().ends_with(" 10.0.0.0/8\n"));
        assert_eq!(run(&rt, "show", "acl", &[&m]), Err(Kind::Acl.unknown()), "a map file used by no ACL is not an ACL");
    }

    #[test]
    fn a_value_one_reader_cannot_parse_changes_nothing() {
        let (rt, m, _) = table("refuse");
        assert_eq!(run(&rt, "add", "map", &[&m, "c", "three"]), Err("'three' is not an integer.\n".into()));
        assert_eq!(run(&rt, "show", "map", &[&m]).unwrap().lines().count(), 2);
        assert_eq!(run(&rt, "add", "map", &[&m, "c", "3"]), Ok(String::new()));
        let get = run(&rt, "get", "map", &[&m, "c"]).unwrap();
        assert_eq!(
            get,
            "type=beg, case=sensitive, found=yes, idx=tree, key=\"c\", value=\"3\", type=\"str\"\n\
             type=str, case=sensitive, found=yes, idx=tree, key=\"c\", value=\"3\", type=\"sint\"\n"
        );
        assert_eq!(run(&rt, "show", "map", &["@1", &m]).unwrap_err().lines().count(), 1);
        assert_eq!(run(&rt, "del", "map", &[&m, "#0xzz"]), Err("Malformed identifier. Please use #<id> or <file>.\n".into()));
        assert_eq!(run(&rt, "clear", "map", &[]), Err("Missing map identifier.\n".into()));
        assert_eq!(run(&rt, "get", "acl", &["#5"]), Err("Missing ACL identifier and/or key.\n".into()));
    }
}
