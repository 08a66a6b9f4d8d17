//! The stick-table commands of the runtime API: `show table`, `clear table`, `set table`, in
//! HAProxy's formats (`# table: <name>, type: <type>, size:<n>, used:<n>`, then one line per
//! entry).

use std::sync::Arc;

use crate::route::RouteTable;
use crate::stick::table::{Dt, Entry, Key, Table};

/// A `data.<type> <op> <value>` filter.
struct Filter {
    dt: Dt,
    op: fn(u64, u64) -> bool,
    value: u64,
}

/// What follows the table name: filters, or one key.
enum Select {
    All,
    Key(Key),
    Data(Vec<Filter>),
}

fn table<'a>(rt: &'a RouteTable, name: &str) -> Result<&'a Arc<Table>, String> {
    rt.tables.get(name).ok_or_else(|| "No such table\n".to_string())
}

fn data_type(t: &Table, word: &str) -> Result<Dt, String> {
    let name =
        word.strip_prefix("data.").ok_or_else(|| "Optional argument only supports \"data.<store_data_type>\" <operator> <value> or key <key>\n".to_string())?;
    let dt = Dt::by_name(name).ok_or_else(|| "Unknown data type\n".to_string())?;
    if !t.stores(dt) {
        return Err("Data type not stored in this table\n".into());
    }
    Ok(dt)
}

fn select(t: &Table, words: &[&str]) -> Result<Select, String> {
    match words {
        [] => Ok(Select::All),
        ["key", k] => t.parse_key(k).map(Select::Key).ok_or_else(|| "Invalid key\n".to_string()),
        ["key"] => Err("Key value expected\n".into()),
        _ => {
            let mut filters = Vec::new();
            for chunk in words.chunks(3) {
                let [ty, op, value] = chunk else { return Err("Require a valid operator and a value for the data type\n".into()) };
                let dt = data_type(t, ty)?;
                let op: fn(u64, u64) -> bool = match *op {
                    "eq" => |a, b| a == b,
                    "ne" => |a, b| a != b,
                    "le" => |a, b| a <= b,
                    "lt" => |a, b| a < b,
                    "ge" => |a, b| a >= b,
                    "gt" => |a, b| a > b,
                    _ => return Err("Require and operator among \"eq\", \"ne\", \"le\", \"ge\", \"lt\", \"gt\"\n".into()),
                };
                let value = value.parse::<u64>().map_err(|_| "Require a valid integer value to compare against\n".to_string())?;
                filters.push(Filter { dt, op, value });
            }
            Ok(Select::Data(filters))
        }
    }
}

fn matches(t: &Table, e: &Entry, sel: &Select) -> bool {
    match sel {
        Select::All => true,
        Select::Key(k) => e.key == *k,
        Select::Data(fs) => fs.iter().all(|f| t.get(e, f.dt, 0).is_some_and(|v| (f.op)(v, f.value))),
    }
}

/// `show table [<name> [data.<type> <op> <value>]... | [key <key>]]`.
pub fn show(rt: &RouteTable, words: &[&str]) -> Result<String, String> {
    let Some((name, rest)) = words.split_first() else {
        let mut out = String::new();
        for t in &rt.tables.list {
            t.purge_expired();
            out.push_str(&t.header());
        }
        return Ok(out);
    };
    let t = table(rt, name)?;
    let sel = select(t, rest)?;
    t.purge_expired();
    let mut out = t.header();
    let mut entries = match &sel {
        Select::Key(k) => t.lookup(k).into_iter().collect(),
        _ => t.entries(),
    };
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    for e in entries.iter().filter(|e| matches(t, e, &sel)) {
        out.push_str(&t.dump_entry(e));
    }
    Ok(out)
}

/// `clear table <name> [data.<type> <op> <value>]... | [key <key>]`: entries a stream tracks stay.
pub fn clear(rt: &RouteTable, words: &[&str]) -> Result<String, String> {
    let Some((name, rest)) = words.split_first() else { return Err("Require a table name\n".into()) };
    let t = table(rt, name)?;
    let sel = select(t, rest)?;
    t.clear_where(|t, e| matches(t, e, &sel));
    Ok(String::new())
}

/// `set table <name> key <key> [data.<type> <value>]*`: creates the entry when absent.
pub fn set(rt: &RouteTable, words: &[&str]) -> Result<String, String> {
    let Some((name, rest)) = words.split_first() else { return Err("Require a table name\n".into()) };
    let t = table(rt, name)?;
    let (key, data) = match rest {
        ["key", k, data @ ..] => (t.parse_key(k).ok_or_else(|| "Invalid key\n".to_string())?, data),
        ["ptr", ..] => return Err("Setting an entry by pointer is not supported; use 'key <key>'\n".into()),
        _ => return Err("Require 'key <key>'\n".into()),
    };
    let mut updates = Vec::new();
    for pair in data.chunks(2) {
        let [ty, value] = pair else { return Err("Require a valid integer value to store\n".into()) };
        let dt = data_type(t, ty)?;
        let value = value.parse::<i64>().map_err(|_| "Require a valid integer value to store\n".to_string())?;
        updates.push((dt, value));
    }
    let e = t.get_or_create(key).ok_or_else(|| "Unable to allocate a new entry\n".to_string())?;
    for (dt, v) in updates {
        t.set(&e, dt, 0, v as u64);
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::cli::{Ctx, run};
    use crate::control::config::StatsLevel;

    fn ctx() -> Ctx {
        let cfg = crate::config::testing::ok(
            "backend t\n  stick-table type integer size 10 store gpc0,http_req_rate(1s)\nbackend s\n  stick-table type binary len 4 size 10 store gpt0\n",
        );
        Ctx::new(Arc::new(RouteTable::compile(&cfg).unwrap()))
    }

    #[test]
    fn show_table_lists_every_table() {
        let c = ctx();
        assert_eq!(run(&c, StatsLevel::User, &["show", "table"]), "# table: t, type: integer, size:10, used:0\n# table: s, type: binary, size:10, used:0\n");
    }

    #[test]
    fn set_then_show_prints_entries_in_key_order() {
        let c = ctx();
        for k in ["7", "3"] {
            assert_eq!(run(&c, StatsLevel::Admin, &["set", "table", "t", "key", k, "data.gpc0", "2"]), "");
        }
        let out = run(&c, StatsLevel::User, &["show", "table", "t"]);
        let keys: Vec<&str> = out.lines().skip(1).map(|l| l.split(" key=").nth(1).unwrap().split(' ').next().unwrap()).collect();
        assert_eq!(keys, ["3", "7"]);
        assert!(out.lines().nth(1).unwrap().ends_with(" use=0 exp=0 shard=0 gpc0=2 http_req_rate(1000)=0"), "{out}");
    }

    #[test]
    fn binary_keys_are_hex_padded_to_the_length() {
        let c = ctx();
        assert_eq!(run(&c, StatsLevel::Admin, &["set", "table", "s", "key", "0aff", "data.gpt0", "5"]), "");
        let out = run(&c, StatsLevel::User, &["show", "table", "s", "key", "0aff0000"]);
        assert!(out.contains(": key=0AFF0000 use=0 exp=0 shard=0 gpt0=5\n"), "{out}");
    }

    #[test]
    fn errors_and_levels_are_haproxys() {
        let c = ctx();
        assert_eq!(run(&c, StatsLevel::User, &["show", "table", "nope"]), "No such table\n");
        assert_eq!(run(&c, StatsLevel::User, &["show", "table", "t", "data.gpt0", "gt", "1"]), "Data type not stored in this table\n");
        assert_eq!(
            run(&c, StatsLevel::User, &["show", "table", "t", "data.gpc0", "over", "1"]).lines().next(),
            Some("Require and operator among \"eq\", \"ne\", \"le\", \"ge\", \"lt\", \"gt\"")
        );
        assert_eq!(run(&c, StatsLevel::User, &["set", "table", "t", "key", "1"]), "Permission denied\n");
        assert_eq!(run(&c, StatsLevel::User, &["clear", "table", "t"]), "Permission denied\n");
        assert_eq!(run(&c, StatsLevel::Operator, &["set", "table", "t", "key", "x"]), "Invalid key\n");
    }

    #[test]
    fn clear_table_with_a_filter_keeps_the_others() {
        let c = ctx();
        run(&c, StatsLevel::Admin, &["set", "table", "t", "key", "1", "data.gpc0", "1"]);
        run(&c, StatsLevel::Admin, &["set", "table", "t", "key", "2", "data.gpc0", "5"]);
        assert_eq!(run(&c, StatsLevel::Operator, &["clear", "table", "t", "data.gpc0", "ge", "5"]), "");
        let out = run(&c, StatsLevel::User, &["show", "table", "t"]);
        assert!(out.starts_with("# table: t, type: integer, size:10, used:1\n") && out.contains(" key=1 "), "{out}");
        assert_eq!(run(&c, StatsLevel::Operator, &["clear", "table", "t"]), "");
        assert_eq!(run(&c, StatsLevel::User, &["show", "table", "t"]), "# table: t, type: integer, size:10, used:0\n");
    }
}
