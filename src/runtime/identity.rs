//! Giving up root once the sockets are bound: `chroot`, `user`/`uid`, `group`/`gid`, `setcap`
//! and `set-dumpable` of the `global` section, applied as HAProxy applies them.
//!
//! The main thread calls [`drop_privileges`] after every listener and stats socket is bound, the
//! pid file written and old processes told to go (`-sf`), and before any worker, health-check or
//! stats thread starts, so every thread that serves traffic starts with the reduced identity.
//! Order: `chroot` and `chdir("/")`, then the supplementary groups and the group, then the user.
//! A failure at any step is fatal: a daemon configured to drop root and still running as root is
//! worse than one that does not start.
//!
//! A reload is a new process (`-sf`), started by the service manager as root and outside the
//! chroot, as with HAProxy; the old process never needs root again. What it does need at run time
//! and cannot have inside a chroot is read before the switch: the host name, and the pipe limits
//! of [`super::pipe`]. Log lines to a unix socket are sent by path at each line, so the path is
//! looked up inside the chroot, as HAProxy's are; [`drop_privileges`] warns when it is not there.

use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid};

/// The capabilities `setcap` may keep, by HAProxy's names.
pub const KEEPABLE: &[(&str, Capability)] = &[
    ("cap_net_raw", Capability::CAP_NET_RAW),
    ("cap_net_admin", Capability::CAP_NET_ADMIN),
    ("cap_net_bind_service", Capability::CAP_NET_BIND_SERVICE),
    ("cap_sys_admin", Capability::CAP_SYS_ADMIN),
];

/// Parses `setcap`'s comma-separated list.
pub fn parse_caps(list: &str) -> Result<Vec<&'static str>, String> {
    let names = || KEEPABLE.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let mut out = Vec::new();
    for name in list.split(',') {
        let name = name.trim();
        match KEEPABLE.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((n, _)) if !out.contains(n) => out.push(*n),
            Some(_) => {}
            None if name.is_empty() => return Err(format!("expects a comma-separated list of capabilities among {}", names())),
            None => return Err(format!("unsupported capability '{name}'; supported: {}", names())),
        }
    }
    Ok(out)
}

/// A user name from the system's user database, as `user` and `bind ... user` take it.
pub fn lookup_user(name: &str) -> Result<nix::unistd::User, String> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(format!("cannot find user id for '{name}'")),
        Err(e) => Err(format!("cannot find user id for '{name}': {e}")),
    }
}

/// A group name from the system's group database, as `group` and `bind ... group` take it.
pub fn lookup_group(name: &str) -> Result<Gid, String> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(format!("cannot find group id for '{name}'")),
        Err(e) => Err(format!("cannot find group id for '{name}': {e}")),
    }
}

/// Gives a unix socket file its owner and group. Only root may give a file away; for anyone else
/// the file keeps the process's identity, as HAProxy leaves it.
pub fn chown_socket(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), String> {
    if (uid.is_none() && gid.is_none()) || !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    nix::unistd::chown(path, uid.map(Uid::from_raw), gid.map(Gid::from_raw)).map_err(|e| format!("cannot chown '{}': {e}", path.display()))
}

/// What the `global` section asks for, resolved to numbers when the configuration was read.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub chroot: Option<PathBuf>,
    /// The user to become; 0 or `None` leaves the user as it is.
    pub uid: Option<u32>,
    /// The group to become: `group`/`gid`, else the primary group of `user`.
    pub gid: Option<u32>,
    /// `setcap`: capabilities kept when switching from root to another user.
    pub keep: Vec<&'static str>,
    /// `set-dumpable`.
    pub dumpable: bool,
    /// Unix socket paths that log lines go to, checked inside the chroot.
    pub log_sockets: Vec<PathBuf>,
}

impl Plan {
    pub fn from_config(cfg: &crate::config::model::Config) -> Plan {
        use crate::log::config::{LogEntry, LogTarget};
        let g = &cfg.global;
        let mut log_sockets: Vec<PathBuf> = Vec::new();
        let targets = g
            .log
            .loggers
            .iter()
            .chain(cfg.proxies.iter().flat_map(|p| p.log.loggers.iter()).filter_map(|e| if let LogEntry::Logger(l) = e { Some(l) } else { None }));
        for l in targets {
            if let LogTarget::Unix(p) = &l.target
                && !log_sockets.contains(p)
            {
                log_sockets.push(p.clone());
            }
        }
        let uid = g.uid.filter(|&u| u != 0);
        // Without a group, `user` brings its own primary group rather than keeping root's.
        let gid = g.gid.or(if uid.is_some() { g.user_gid } else { None });
        Plan { chroot: g.chroot.as_ref().map(PathBuf::from), uid, gid, keep: g.setcap.clone(), dumpable: g.set_dumpable, log_sockets }
    }

    pub fn is_empty(&self) -> bool {
        self.chroot.is_none() && self.uid.is_none() && self.gid.is_none() && !self.dumpable
    }
}

/// What [`drop_privileges`] did, for the caller's notices.
#[derive(Debug, Default)]
pub struct Dropped {
    /// The user changed from root to another one (so the caller probes again what that user may
    /// do, such as making an io_uring ring).
    pub switched_user: bool,
    pub warnings: Vec<String>,
}

/// Applies `plan` to the process; see the module documentation for the order. `Err` is fatal.
pub fn drop_privileges(plan: &Plan) -> Result<Dropped, String> {
    let mut out = Dropped::default();
    if plan.is_empty() {
        return Ok(out);
    }
    // Read inside the old root what later code reads at run time.
    crate::log::host_name();
    let was_root = nix::unistd::geteuid().is_root();
    let leaving_root = was_root && plan.uid.is_some_and(|u| Uid::from_raw(u) != nix::unistd::geteuid());
    super::pipe::fix_grow_budget(leaving_root && !plan.keep.contains(&"cap_sys_admin"));
    if let Some(dir) = &plan.chroot {
        nix::unistd::chroot(dir).map_err(|e| format!("cannot chroot({}): {e}", dir.display()))?;
        nix::unistd::chdir("/").map_err(|e| format!("cannot chdir('/') in chroot {}: {e}", dir.display()))?;
        for p in &plan.log_sockets {
            if std::fs::symlink_metadata(p).is_err() {
                out.warnings.push(format!(
                    "log socket '{}' does not exist inside chroot '{}': log lines sent to it are lost until it does (create it there, as Debian's rsyslog does with /var/lib/haproxy/dev/log)",
                    p.display(),
                    dir.display()
                ));
            }
        }
    }
    if let Some(gid) = plan.gid.map(Gid::from_raw)
        && (gid != nix::unistd::getegid() || was_root)
    {
        // Supplementary groups (root's, usually) go too: only root may change them.
        if was_root {
            nix::unistd::setgroups(&[gid]).map_err(|e| format!("cannot drop supplementary groups: {e}"))?;
        }
        nix::unistd::setgid(gid).map_err(|e| format!("cannot set gid {gid}: {e}"))?;
    }
    if let Some(uid) = plan.uid.map(Uid::from_raw)
        && uid != nix::unistd::geteuid()
    {
        let keep: CapsHashSet = plan.keep.iter().filter_map(|n| KEEPABLE.iter().find(|(k, _)| k == n).map(|(_, c)| *c)).collect();
        if leaving_root && !keep.is_empty() {
            caps::securebits::set_keepcaps(true).map_err(|e| format!("setcap: cannot keep capabilities across the user switch: {e}"))?;
        }
        nix::unistd::setuid(uid).map_err(|e| format!("cannot set uid {uid}: {e}"))?;
        if leaving_root && !keep.is_empty() {
            // The permitted set survived the switch whole; keep only what was asked for, and make
            // it effective (the switch cleared the effective set).
            caps::set(None, CapSet::Effective, &keep).map_err(|e| format!("setcap: {e}"))?;
            caps::set(None, CapSet::Permitted, &keep).map_err(|e| format!("setcap: {e}"))?;
            let _ = caps::securebits::set_keepcaps(false);
        }
        out.switched_user = leaving_root;
    }
    if plan.dumpable {
        // A process that changed user is not dumpable by default; HAProxy's set-dumpable also
        // raises the core size limit to what the hard limit allows.
        nix::sys::prctl::set_dumpable(true).map_err(|e| format!("set-dumpable: {e}"))?;
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_CORE)
            && let Err(e) = setrlimit(Resource::RLIMIT_CORE, hard, hard)
        {
            out.warnings.push(format!("set-dumpable: cannot raise the core size limit: {e}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setcap_takes_haproxys_names_in_any_case_once_each_and_names_the_supported_ones_on_error() {
        assert_eq!(parse_caps("cap_net_raw,CAP_NET_BIND_SERVICE,cap_net_raw"), Ok(vec!["cap_net_raw", "cap_net_bind_service"]));
        assert_eq!(parse_caps("cap_sys_admin"), Ok(vec!["cap_sys_admin"]));
        let e = parse_caps("cap_chown").unwrap_err();
        assert!(e.contains("'cap_chown'") && e.contains("cap_net_admin"), "{e}");
        assert!(parse_caps("").unwrap_err().contains("cap_net_bind_service"));
        assert!(parse_caps("cap_net_raw,").is_err());
    }

    #[test]
    fn user_and_group_lookups_name_what_is_missing() {
        assert_eq!(lookup_user("root").unwrap().uid.as_raw(), 0);
        assert_eq!(lookup_group("root").unwrap().as_raw(), 0);
        assert_eq!(lookup_user("no-such-user-sluiced").unwrap_err(), "cannot find user id for 'no-such-user-sluiced'");
        assert_eq!(lookup_group("no-such-group-sluiced").unwrap_err(), "cannot find group id for 'no-such-group-sluiced'");
    }

    #[test]
    fn a_user_without_a_group_takes_its_primary_group_and_uid_0_changes_nothing() {
        let mut cfg = crate::config::model::Config::default();
        cfg.global.uid = Some(65534);
        cfg.global.user_gid = Some(65533);
        let p = Plan::from_config(&cfg);
        assert_eq!((p.uid, p.gid), (Some(65534), Some(65533)));
        cfg.global.gid = Some(100);
        assert_eq!(Plan::from_config(&cfg).gid, Some(100));
        cfg.global.uid = Some(0);
        cfg.global.gid = None;
        let p = Plan::from_config(&cfg);
        assert_eq!((p.uid, p.gid), (None, None));
        assert!(p.is_empty());
    }
}
