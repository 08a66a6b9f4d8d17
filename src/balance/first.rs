//! `balance first`: the usable server with the lowest id that has a free slot takes the
//! connection, so servers fill one after the other and the last ones can be powered down.
//! The backend's eligibility check already refuses full servers (`maxconn`).

use super::list::ServerList;
use super::schedule::pickable;
use super::state::{Algorithm, PickKey, ServerState};

#[derive(Debug, Default)]
pub struct First;

impl First {
    pub fn new() -> First {
        First
    }
}

impl Algorithm for First {
    fn pick(&self, servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool, _key: &PickKey) -> Option<usize> {
        (0..servers.len()).filter(|&i| pickable(servers, eligible, i)).min_by_key(|&i| (servers[i].id, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::state::{ServerAddr, ServerState};
    use std::sync::Arc;

    fn with_ids(ids: &[u32]) -> ServerList {
        let addr = ServerAddr::Inet("127.0.0.1:80".parse().unwrap());
        ids.iter().map(|&id| Arc::new(ServerState::new(&format!("s{id}"), id, addr.clone(), 1, false))).collect()
    }

    #[test]
    fn lowest_id_wins_whatever_the_order() {
        let s = with_ids(&[7, 3, 5]);
        assert_eq!(First.pick(&s, &|_, _| true, &PickKey::default()), Some(1));
    }

    #[test]
    fn full_server_hands_over_to_the_next_id() {
        let s = with_ids(&[1, 2, 3]);
        // The backend refuses full servers through `eligible`.
        assert_eq!(First.pick(&s, &|i, _| i != 0, &PickKey::default()), Some(1));
    }

    #[test]
    fn nothing_eligible_picks_nothing() {
        assert_eq!(First.pick(&with_ids(&[1]), &|_, _| false, &PickKey::default()), None);
        assert_eq!(First.pick(&ServerList::new(), &|_, _| true, &PickKey::default()), None);
    }
}
