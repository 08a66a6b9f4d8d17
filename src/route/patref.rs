//! Pattern references, as HAProxy calls them: the entries of a map file, of an ACL pattern file, or
//! of the values written on an `acl` line, which the runtime API lists and changes (`show map`,
//! `add acl`, ...). A reference keeps its entries in file order for the control plane; every
//! converter or ACL that reads it keeps its own index, swapped whole (copy-on-write) when the
//! entries change, so lookups take no lock. Changes are in memory only, as in HAProxy.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// One entry: a key (an ACL pattern) and, in a map, its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Unique in the process, printed as `0x<hex>` and accepted back as `#0x<hex>` (HAProxy prints
    /// the entry's address).
    pub id: u64,
    pub key: String,
    pub value: Option<String>,
}

static NEXT_ENTRY: AtomicU64 = AtomicU64::new(0x1000);

impl Entry {
    pub fn new(key: impl Into<String>, value: Option<String>) -> Entry {
        Entry { id: NEXT_ENTRY.fetch_add(0x10, Ordering::Relaxed), key: key.into(), value }
    }
}

/// A reader of references: a map converter's index or an ACL's matcher.
pub(crate) trait PatUser: Send + Sync + std::fmt::Debug {
    /// Builds the index anew from the entries `view` gives for each reference, and returns what
    /// installs it; an entry that does not parse for this reader is an error and changes nothing.
    fn stage(self: Arc<Self>, view: &dyn Fn(&PatRef) -> Vec<Entry>) -> Result<Box<dyn FnOnce() + '_>, String>;
    /// `get map|acl`: one line describing how `input` matches (`type=str, case=sensitive, ...`).
    fn lookup(&self, input: &str, entries: &dyn Fn(&PatRef) -> Vec<Entry>, map: bool) -> String;
}

/// A map file, ACL pattern file or ACL line's values.
#[derive(Debug)]
pub struct PatRef {
    /// `-u <id>` or numbered in order of creation (known once the whole table is compiled).
    id: AtomicI64,
    /// The file name; empty for an ACL line's own values.
    pub reference: String,
    /// Entries carry values: a file read as a map (by a converter or by `acl -M`).
    pub map_format: bool,
    /// Read by a map converter (`show map` lists it) / by an ACL (`show acl` lists it).
    used_as_map: AtomicBool,
    used_as_acl: AtomicBool,
    /// Where it is used, for the description (`used by map`, `acl 'src' file 'x' line 3`).
    uses: Mutex<Vec<String>>,
    entries: Mutex<Vec<Entry>>,
    users: Mutex<Vec<Weak<dyn PatUser>>>,
}

/// Serializes changes: two commands changing one reference must not install indexes built from
/// each other's older entries. Control plane only.
static CHANGE: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PatRef {
    fn new(id: i64, reference: &str, map_format: bool, entries: Vec<Entry>) -> PatRef {
        PatRef {
            id: AtomicI64::new(id),
            reference: reference.into(),
            map_format,
            used_as_map: AtomicBool::new(false),
            used_as_acl: AtomicBool::new(false),
            uses: Mutex::new(Vec::new()),
            entries: Mutex::new(entries),
            users: Mutex::new(Vec::new()),
        }
    }

    pub fn id(&self) -> i64 {
        self.id.load(Ordering::Relaxed)
    }

    pub fn is_map(&self) -> bool {
        self.used_as_map.load(Ordering::Relaxed)
    }

    pub fn is_acl(&self) -> bool {
        self.used_as_acl.load(Ordering::Relaxed)
    }

    pub fn entries(&self) -> Vec<Entry> {
        lock(&self.entries).clone()
    }

    /// The `show map`/`show acl` description, without the id and file columns.
    pub fn description(&self) -> String {
        let uses = lock(&self.uses);
        let n = lock(&self.entries).len();
        let what = if self.reference.is_empty() {
            uses.first().cloned().unwrap_or_default()
        } else {
            let mut d = format!("pattern loaded from file '{}'", self.reference);
            for (i, u) in uses.iter().enumerate() {
                d.push_str(if i == 0 { " used by " } else { ", by " });
                d.push_str(u);
            }
            d
        };
        format!("{what}. curr_ver=0 next_ver=0 entry_cnt={n}")
    }

    /// Registers a reader: it is rebuilt whenever the entries change.
    pub(crate) fn add_user(&self, user: Weak<dyn PatUser>, map: bool, used_at: String) {
        if map {
            self.used_as_map.store(true, Ordering::Relaxed);
        } else {
            self.used_as_acl.store(true, Ordering::Relaxed);
        }
        let mut uses = lock(&self.uses);
        if !uses.contains(&used_at) {
            uses.push(used_at);
        }
        lock(&self.users).push(user);
    }

    fn live_users(&self) -> Vec<Arc<dyn PatUser>> {
        let mut users = lock(&self.users);
        users.retain(|u| u.strong_count() > 0);
        users.iter().filter_map(Weak::upgrade).collect()
    }

    /// Applies `change` to a copy of the entries, rebuilds every reader from it and, when all of
    /// them accept it, installs the indexes and the entries. Returns what `change` returned.
    pub fn change<R>(&self, change: impl FnOnce(&mut Vec<Entry>) -> Result<R, String>) -> Result<R, String> {
        let _serial = lock(&CHANGE);
        let mut candidate = self.entries();
        let r = change(&mut candidate)?;
        let view = |p: &PatRef| if std::ptr::eq(p, self) { candidate.clone() } else { p.entries() };
        let users = self.live_users();
        let mut installs = Vec::with_capacity(users.len());
        for u in &users {
            installs.push(u.clone().stage(&view)?);
        }
        for i in installs {
            i();
        }
        *lock(&self.entries) = candidate;
        Ok(r)
    }

    /// `get map|acl`: one line per reader.
    pub fn lookup(&self, input: &str, map: bool) -> String {
        let _serial = lock(&CHANGE);
        let view = |p: &PatRef| p.entries();
        self.live_users().iter().map(|u| u.lookup(input, &view, map)).collect()
    }
}

/// The references of one routing table, in order of creation.
#[derive(Debug, Default)]
pub struct PatRegistry {
    pub refs: Vec<Arc<PatRef>>,
}

impl PatRegistry {
    /// `<file>` or `#<id>`.
    pub fn find(&self, name: &str) -> Option<&Arc<PatRef>> {
        match name.strip_prefix('#') {
            Some(id) => {
                let id: i64 = id.parse().ok()?;
                self.refs.iter().find(|r| r.id() == id)
            }
            None => self.refs.iter().find(|r| !r.reference.is_empty() && r.reference == name),
        }
    }
}

/// The references made while a routing table compiles, so that every reader of one file in it
/// shares one reference.
#[derive(Default)]
struct Builder {
    refs: Vec<(Option<i64>, Arc<PatRef>)>,
    /// ACL lines' value references by line, so that each line has one.
    lines: Vec<(String, Arc<PatRef>)>,
}

thread_local! {
    static BUILDING: RefCell<Option<Builder>> = const { RefCell::new(None) };
}

/// Collects the references made on this thread until [`Collecting::finish`].
pub(crate) struct Collecting(());

impl Collecting {
    pub fn start() -> Collecting {
        BUILDING.with(|b| *b.borrow_mut() = Some(Builder::default()));
        Collecting(())
    }

    /// Numbers the references without `-u` after those with one, as HAProxy does: the lowest id
    /// not taken, in order of creation.
    pub fn finish(self) -> PatRegistry {
        let b = BUILDING.with(|b| b.borrow_mut().take()).unwrap_or_default();
        let taken: Vec<i64> = b.refs.iter().filter_map(|(id, _)| *id).collect();
        let mut next = 0;
        let mut refs = Vec::with_capacity(b.refs.len());
        for (id, r) in b.refs {
            let id = match id {
                Some(id) => id,
                None => {
                    while taken.contains(&next) {
                        next += 1;
                    }
                    next += 1;
                    next - 1
                }
            };
            r.id.store(id, Ordering::Relaxed);
            refs.push(r);
        }
        // Listed by id, as HAProxy sorts its references once the ids are known.
        refs.sort_by_key(|r| r.id());
        PatRegistry { refs }
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        BUILDING.with(|b| *b.borrow_mut() = None);
    }
}

/// The reference for file `path` read as a map (`map_format`) or as a list of patterns, shared
/// within the routing table being compiled; the file is read when first named.
pub(crate) fn for_file(path: &str, map_format: bool, unique_id: Option<i64>) -> Result<Arc<PatRef>, String> {
    let found = BUILDING
        .with(|b| b.borrow().as_ref().and_then(|b| b.refs.iter().find(|(_, r)| r.reference == path && r.map_format == map_format).map(|(_, r)| r.clone())));
    if let Some(r) = found {
        return Ok(r);
    }
    let entries = read_file(path, map_format)?;
    Ok(register(PatRef::new(-1, path, map_format, entries), unique_id))
}

/// The reference for the values of an ACL line, shared by every use of the line (`line` names
/// it) within the routing table being compiled.
pub(crate) fn for_values(values: &[String], unique_id: Option<i64>, line: Option<String>) -> Arc<PatRef> {
    let found = BUILDING.with(|b| {
        let b = b.borrow();
        let b = b.as_ref()?;
        let line = line.as_ref()?;
        b.lines.iter().find(|(l, _)| l == line).map(|(_, r)| r.clone())
    });
    if let Some(r) = found {
        return r;
    }
    let r = register(PatRef::new(-1, "", false, values.iter().map(|v| Entry::new(v.clone(), None)).collect()), unique_id);
    if let Some(line) = line {
        BUILDING.with(|b| {
            if let Some(b) = b.borrow_mut().as_mut() {
                b.lines.push((line, r.clone()));
            }
        });
    }
    r
}

/// A reference for values no command can name (an inline ACL's).
pub(crate) fn unlisted_values(values: &[String]) -> Arc<PatRef> {
    Arc::new(PatRef::new(-1, "", false, values.iter().map(|v| Entry::new(v.clone(), None)).collect()))
}

fn register(r: PatRef, unique_id: Option<i64>) -> Arc<PatRef> {
    let r = Arc::new(r);
    if let Some(id) = unique_id {
        r.id.store(id, Ordering::Relaxed);
    }
    BUILDING.with(|b| {
        if let Some(b) = b.borrow_mut().as_mut() {
            b.refs.push((unique_id, r.clone()));
        }
    });
    r
}

/// Reads a pattern or map file: blank lines and `#` comments skipped; a map line is a key and the
/// rest of the line after blanks, a pattern line is the whole line without surrounding blanks.
fn read_file(path: &str, map_format: bool) -> Result<Vec<Entry>, String> {
    let cannot = |e: &dyn std::fmt::Display| format!("cannot open file '{path}': {e}");
    let meta = std::fs::metadata(path).map_err(|e| cannot(&e))?;
    // Only regular files: reading a device such as /dev/zero would never end.
    if !meta.is_file() {
        return Err(cannot(&"not a regular file"));
    }
    let text = std::fs::read(path).map_err(|e| cannot(&e))?;
    if map_format {
        return Ok(super::map::entries(&text)
            .map(|(_, k, v)| Entry::new(String::from_utf8_lossy(k).into_owned(), Some(String::from_utf8_lossy(v).into_owned())))
            .collect());
    }
    Ok(String::from_utf8_lossy(&text).lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(|l| Entry::new(l, None)).collect())
}
