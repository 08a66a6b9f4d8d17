//! Selection through [`BackendState`]: backups, `maxconn`, exclusions and slot accounting,
//! with the algorithms [`build_algorithm`] makes.

use std::sync::atomic::Ordering;

use super::algorithms::build_algorithm;
use super::config::{Balance, HashFunction, HashMethod, HashType};
use super::hash::hash_bytes;
use super::state::{AdminState, BackendState, BalanceOpts, Pick, PickKey, ServerState};
use super::testing::{counts_of, server};

/// `active` active servers then `backup` backup servers, all of weight 1.
fn backend(balance: Balance, active: usize, backup: usize, opts: BalanceOpts) -> BackendState {
    let servers: Vec<ServerState> = (0..active + backup).map(|i| server(i, 1, i >= active)).collect();
    BackendState::new("be", servers, build_algorithm(Some(&balance), None), opts)
}

/// Picks `n` times, releasing each slot at once; the servers picked.
fn picks(be: &BackendState, n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| match be.pick(&PickKey::default(), &[]) {
            Pick::Server(i) => {
                be.release(i);
                i
            }
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn backups_idle_while_an_active_server_is_up() {
    let be = backend(Balance::RoundRobin, 2, 2, BalanceOpts::default());
    be.servers[0].set_up(false);
    be.state_changed();
    assert_eq!(counts_of(&picks(&be, 20), 4), vec![0, 20, 0, 0]);
}

#[test]
fn first_backup_takes_over_when_actives_are_down_or_in_maintenance() {
    let be = backend(Balance::RoundRobin, 2, 2, BalanceOpts::default());
    be.servers[0].set_up(false);
    be.servers[1].set_admin(AdminState::Maint);
    be.state_changed();
    assert_eq!(counts_of(&picks(&be, 20), 4), vec![0, 0, 20, 0]);
}

#[test]
fn allbackups_share_the_load() {
    let be = backend(Balance::RoundRobin, 1, 2, BalanceOpts { allbackups: true });
    be.servers[0].set_up(false);
    be.state_changed();
    assert_eq!(counts_of(&picks(&be, 20), 3), vec![0, 10, 10]);
}

#[test]
fn active_server_back_up_takes_traffic_from_backups() {
    let be = backend(Balance::LeastConn, 1, 1, BalanceOpts::default());
    be.servers[0].set_up(false);
    be.state_changed();
    assert_eq!(picks(&be, 1), vec![1]);
    be.servers[0].set_up(true);
    be.state_changed();
    assert_eq!(picks(&be, 5), vec![0; 5]);
}

#[test]
fn draining_server_takes_no_new_traffic() {
    let be = backend(Balance::RoundRobin, 3, 0, BalanceOpts::default());
    be.servers[1].set_admin(AdminState::Drain);
    be.state_changed();
    assert_eq!(counts_of(&picks(&be, 20), 3), vec![10, 0, 10]);
}

#[test]
fn all_servers_at_maxconn_is_full() {
    for balance in [Balance::RoundRobin, Balance::LeastConn, Balance::First, Balance::Source, Balance::Random { draws: 2 }] {
        let be = backend(balance.clone(), 3, 0, BalanceOpts::default());
        for s in &be.servers {
            s.maxconn.store(2, Ordering::Relaxed);
        }
        let taken: Vec<Pick> = (0..6).map(|_| be.pick(&PickKey::default(), &[])).collect();
        assert!(taken.iter().all(|p| matches!(p, Pick::Server(_))), "{balance:?} {taken:?}");
        assert_eq!(be.pick(&PickKey::default(), &[]), Pick::Full, "{balance:?}");
    }
}

#[test]
fn all_servers_down_is_no_server() {
    let be = backend(Balance::RoundRobin, 2, 1, BalanceOpts::default());
    for s in &be.servers {
        s.set_up(false);
    }
    be.state_changed();
    assert_eq!(be.pick(&PickKey::default(), &[]), Pick::NoServer);
}

#[test]
fn all_weights_zero_is_no_server() {
    let be = backend(Balance::RoundRobin, 2, 0, BalanceOpts::default());
    for s in &be.servers {
        s.weight.store(0, Ordering::Relaxed);
    }
    assert_eq!(be.pick(&PickKey::default(), &[]), Pick::NoServer);
}

#[test]
fn empty_backend_is_no_server() {
    let be = BackendState::new("be", Vec::new(), build_algorithm(None, None), BalanceOpts::default());
    assert_eq!(be.pick(&PickKey::default(), &[]), Pick::NoServer);
}

#[test]
fn excluded_servers_are_not_picked_again() {
    for balance in [Balance::RoundRobin, Balance::LeastConn, Balance::First, Balance::Random { draws: 2 }] {
        let be = backend(balance.clone(), 3, 0, BalanceOpts::default());
        for _ in 0..20 {
            let p = be.pick(&PickKey::default(), &[0, 2]);
            assert_eq!(p, Pick::Server(1), "{balance:?}");
            be.release(1);
        }
    }
}

#[test]
fn excluding_every_server_is_no_server() {
    let be = backend(Balance::RoundRobin, 2, 0, BalanceOpts::default());
    assert_eq!(be.pick(&PickKey::default(), &[0, 1]), Pick::NoServer);
}

#[test]
fn excluded_hash_target_moves_to_another_server() {
    let ht = HashType { method: HashMethod::Consistent, function: HashFunction::Sdbm, avalanche: true };
    let servers: Vec<ServerState> = (0..4).map(|i| server(i, 1, false)).collect();
    let be = BackendState::new(
        "be",
        servers,
        build_algorithm(Some(&Balance::Hash(crate::config::expr::parse_sample("src").unwrap())), Some(&ht)),
        BalanceOpts::default(),
    );
    let key = PickKey { src: None, hash: Some(hash_bytes(ht.function, ht.avalanche, b"/some/uri")) };
    let Pick::Server(home) = be.pick(&key, &[]) else { panic!("no server") };
    be.release(home);
    let Pick::Server(other) = be.pick(&key, &[home]) else { panic!("no server") };
    assert_ne!(home, other);
}

#[test]
fn release_frees_a_slot() {
    let be = backend(Balance::RoundRobin, 1, 0, BalanceOpts::default());
    be.servers[0].maxconn.store(1, Ordering::Relaxed);
    assert_eq!(be.pick(&PickKey::default(), &[]), Pick::Server(0));
    assert_eq!(be.pick(&PickKey::default(), &[]), Pick::Full);
    be.release(0);
    assert_eq!(be.pick(&PickKey::default(), &[]), Pick::Server(0));
}

/// `minconn 2 maxconn 10` with `fullconn 10`: the limit is 2 while the backend is idle and
/// grows with its load (connections and queued streams) to `maxconn` at `fullconn`.
#[test]
fn minconn_limit_grows_with_the_backend_load_up_to_maxconn_at_fullconn() {
    let be = backend(Balance::RoundRobin, 1, 0, BalanceOpts::default());
    let s = &be.servers[0];
    s.maxconn.store(10, Ordering::Relaxed);
    s.minconn.store(2, Ordering::Relaxed);
    be.fullconn.store(10, Ordering::Relaxed);
    assert_eq!(be.limit_of(s), 2, "idle: minconn");
    assert_eq!(be.pick(&PickKey::default(), &[]), Pick::Server(0));
    assert_eq!(be.pick(&PickKey::default(), &[]), Pick::Server(0));
    assert_eq!(be.pick(&PickKey::default(), &[]), Pick::Full, "load 2 of 10: the limit is still 2");
    // Six streams queued: load 8 of 10, 10 * 8 / 10 = 8.
    be.queued.store(6, Ordering::Relaxed);
    assert_eq!(be.limit_of(s), 8);
    assert_eq!(be.pick(&PickKey::default(), &[]), Pick::Server(0));
    // Load 10 reaches fullconn: maxconn.
    be.queued.store(7, Ordering::Relaxed);
    assert_eq!(be.limit_of(s), 10);
    // Without minconn the limit is maxconn, whatever the load.
    s.minconn.store(0, Ordering::Relaxed);
    be.queued.store(0, Ordering::Relaxed);
    assert_eq!(be.limit_of(s), 10);
}

#[test]
fn round_robin_shares_are_exact_through_the_backend() {
    let servers: Vec<ServerState> = [1, 2, 3].iter().enumerate().map(|(i, &w)| server(i, w, false)).collect();
    let be = BackendState::new("be", servers, build_algorithm(Some(&Balance::RoundRobin), None), BalanceOpts::default());
    assert_eq!(counts_of(&picks(&be, 600), 3), vec![100, 200, 300]);
}

#[test]
fn leastconn_counts_stay_consistent_under_two_threads() {
    let be = backend(Balance::LeastConn, 3, 0, BalanceOpts::default());
    for s in &be.servers {
        s.maxconn.store(2, Ordering::Relaxed);
    }
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut held = Vec::new();
                for round in 0..5_000 {
                    if let Pick::Server(i) = be.pick(&PickKey::default(), &[]) {
                        assert!(be.servers[i].cur_conns.load(Ordering::Relaxed) <= 2);
                        held.push(i);
                    }
                    if round % 3 == 0 || held.len() > 2 {
                        for i in held.drain(..) {
                            be.release(i);
                        }
                    }
                }
                for i in held {
                    be.release(i);
                }
            });
        }
    });
    assert!(be.servers.iter().all(|s| s.cur_conns.load(Ordering::Relaxed) == 0));
    assert_eq!(be.servers.iter().map(|s| s.total_conns()).sum::<u64>(), be.total_conns());
}

fn every_algorithm() -> Vec<(Balance, Option<HashType>)> {
    let consistent = HashType { method: HashMethod::Consistent, function: HashFunction::Sdbm, avalanche: false };
    let hash = Balance::Hash(crate::config::expr::parse_sample("src").unwrap());
    vec![
        (Balance::RoundRobin, None),
        (Balance::StaticRr, None),
        (Balance::LeastConn, None),
        (Balance::First, None),
        (Balance::Source, None),
        (Balance::Source, Some(consistent)),
        (Balance::Random { draws: 3 }, None),
        (hash.clone(), None),
        (hash, Some(consistent)),
    ]
}

proptest::proptest! {
    /// Whatever the weights, states and eligibility, and whether or not the algorithm was told of
    /// the last change, a pick never panics, only returns a server that may take it, and finds
    /// one whenever one exists.
    #[test]
    fn picks_exactly_when_a_server_may_take_it(
        servers in proptest::collection::vec((0u32..4, proptest::bool::ANY, proptest::bool::ANY, 0u8..3), 0..8),
        refused in proptest::collection::vec(proptest::bool::ANY, 8),
        changed_after_rebuild in proptest::collection::vec(0u32..4, 8),
        hash in proptest::option::of(proptest::num::u64::ANY),
    ) {
        let states: crate::balance::ServerList = servers.iter().enumerate().map(|(i, &(w, backup, up, admin))| {
            let s = server(i, w, backup);
            s.set_up(up);
            s.set_admin([AdminState::Ready, AdminState::Drain, AdminState::Maint][usize::from(admin)]);
            std::sync::Arc::new(s)
        }).collect();
        let eligible = |i: usize, s: &ServerState| !refused[i] && s.usable();
        let key = PickKey { src: hash.map(|h| std::net::IpAddr::from((h as u32).to_be_bytes())), hash };
        for (balance, ht) in every_algorithm() {
            let algo = build_algorithm(Some(&balance), ht.as_ref());
            algo.rebuild(&states);
            for (s, &w) in states.iter().zip(&changed_after_rebuild) {
                s.weight.store(w, Ordering::Relaxed);
            }
            let any = (0..states.len()).any(|i| eligible(i, &states[i]) && states[i].weight() > 0);
            for _ in 0..3 {
                match algo.pick(&states, &eligible, &key) {
                    Some(i) => proptest::prop_assert!(i < states.len() && eligible(i, &states[i]) && states[i].weight() > 0, "{balance:?} picked {i}"),
                    None => proptest::prop_assert!(!any, "{balance:?} found nothing"),
                }
            }
        }
    }
}

#[test]
fn take_reserves_a_slot_on_a_named_server_within_its_maxconn() {
    let be = backend(Balance::RoundRobin, 2, 0, BalanceOpts::default());
    be.servers[1].maxconn.store(1, Ordering::Relaxed);
    be.servers[1].set_up(false);
    assert!(be.take(1), "the algorithm is not asked: a down server's slot can be taken");
    assert!(!be.take(1), "maxconn holds");
    assert_eq!((be.servers[1].cur_conns.load(Ordering::Relaxed), be.servers[1].total_conns()), (1, 1));
    be.release(1);
    assert!(be.take(1));
    assert!(!be.take(7), "no such server");
    assert_eq!(picks(&be, 3), vec![0, 0, 0], "the down server is still not balanced to");
}

#[test]
fn nolb_server_is_up_but_takes_no_new_traffic() {
    let be = backend(Balance::RoundRobin, 2, 1, BalanceOpts::default());
    be.servers[0].set_nolb(true);
    be.state_changed();
    assert!(be.servers[0].is_up());
    assert_eq!(counts_of(&picks(&be, 20), 3), vec![0, 20, 0]);
    be.servers[1].set_nolb(true);
    be.state_changed();
    assert_eq!(counts_of(&picks(&be, 20), 3), vec![0, 0, 20], "the backup takes over when every active is NOLB");
}

/// What a stream waiting in the backend queue does (`pick_queued` in the data plane): register,
/// pick, and wait for a freed slot while the servers are full.
async fn pick_or_wait(be: &BackendState) -> usize {
    loop {
        let notified = be.slot_freed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Pick::Server(i) = be.pick(&PickKey::default(), &[]) {
            return i;
        }
        tokio::time::timeout(std::time::Duration::from_secs(10), notified).await.expect("a queued stream was not woken when a slot freed");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

#[test]
fn a_stream_queued_on_a_full_server_is_woken_when_a_slot_frees() {
    let be = backend(Balance::RoundRobin, 1, 0, BalanceOpts::default());
    be.servers[0].maxconn.store(1, Ordering::Relaxed);
    runtime().block_on(async {
        assert_eq!(be.pick(&PickKey::default(), &[]), Pick::Server(0));
        let release = async {
            while be.slot_freed.waiters() == 0 {
                tokio::task::yield_now().await;
            }
            tokio::task::yield_now().await;
            be.release(0);
        };
        let (i, ()) = tokio::join!(pick_or_wait(&be), release);
        assert_eq!(i, 0);
    });
    assert_eq!(be.slot_freed.waiters(), 0);
}

#[test]
fn streams_queued_on_several_threads_are_all_served() {
    let be = backend(Balance::RoundRobin, 1, 0, BalanceOpts::default());
    be.servers[0].maxconn.store(1, Ordering::Relaxed);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                runtime().block_on(async {
                    for _ in 0..2_000 {
                        let i = pick_or_wait(&be).await;
                        be.release(i);
                    }
                })
            });
        }
    });
    assert_eq!(be.servers[0].cur_conns.load(Ordering::Relaxed), 0);
    assert_eq!(be.slot_freed.waiters(), 0);
    assert_eq!(be.total_conns(), 8_000);
}

/// A backend of one server (the shape the pick answers without asking the algorithm) behaves
/// as the general path does: picked while usable, full at `maxconn`, no server when it is down,
/// drained, in maintenance or excluded; a lone backup server is picked too.
#[test]
fn a_backend_of_one_server_is_picked_full_or_refused_as_with_more_servers() {
    for balance in [Balance::RoundRobin, Balance::LeastConn, Balance::First, Balance::Source, Balance::Random { draws: 2 }] {
        let be = backend(balance.clone(), 1, 0, BalanceOpts::default());
        assert_eq!(picks(&be, 3), vec![0; 3], "{balance:?}");
        assert_eq!(be.servers[0].cur_conns.load(Ordering::Relaxed), 0, "{balance:?}: every slot released");
        be.servers[0].maxconn.store(1, Ordering::Relaxed);
        assert_eq!(be.pick(&PickKey::default(), &[]), Pick::Server(0), "{balance:?}");
        assert_eq!(be.pick(&PickKey::default(), &[]), Pick::Full, "{balance:?}");
        be.release(0);
        assert_eq!(be.pick(&PickKey::default(), &[0]), Pick::NoServer, "{balance:?}: excluded");
        be.servers[0].maxconn.store(0, Ordering::Relaxed);
        for (what, set, unset) in [
            ("down", (|s: &ServerState| s.set_up(false)) as fn(&ServerState), (|s: &ServerState| s.set_up(true)) as fn(&ServerState)),
            ("drained", |s| s.set_admin(AdminState::Drain), |s| s.set_admin(AdminState::Ready)),
            ("maintenance", |s| s.set_admin(AdminState::Maint), |s| s.set_admin(AdminState::Ready)),
        ] {
            set(&be.servers[0]);
            be.state_changed();
            assert_eq!(be.pick(&PickKey::default(), &[]), Pick::NoServer, "{balance:?}: {what}");
            unset(&be.servers[0]);
            be.state_changed();
            assert_eq!(picks(&be, 1), vec![0], "{balance:?}: back from {what}");
        }
        let lone_backup = backend(balance.clone(), 0, 1, BalanceOpts::default());
        assert_eq!(picks(&lone_backup, 2), vec![0; 2], "{balance:?}: a lone backup");
    }
}
