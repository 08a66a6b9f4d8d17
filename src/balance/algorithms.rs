//! From the configured `balance` and `hash-type` to the algorithm a backend runs, and what the
//! data plane must put in the [`PickKey`](super::PickKey) for it.

use super::config::{Balance, HashFunction, HashMethod, HashType};
use super::first::First;
use super::hashing::HashBalancer;
use super::leastconn::LeastConn;
use super::random::Random;
use super::roundrobin::RoundRobin;
use super::source::Source;
use super::state::Algorithm;
use super::static_rr::StaticRr;

/// HAProxy's `hash-type` when none is set: map-based, sdbm, no avalanche.
const DEFAULT_HASH_TYPE: HashType = HashType { method: HashMethod::MapBased, function: HashFunction::Sdbm, avalanche: false };

/// The algorithm for a backend's `balance` (round robin when unset) and `hash-type` (map-based
/// sdbm when unset). Call [`Algorithm::rebuild`] before the first pick
/// ([`BackendState::new`](super::BackendState::new) does).
pub fn build_algorithm(balance: Option<&Balance>, hash_type: Option<&HashType>) -> Box<dyn Algorithm> {
    build_algorithm_bounded(balance, hash_type, None)
}

/// [`build_algorithm`] with `hash-balance-factor`: bounded loads on a consistent-hash ring.
pub fn build_algorithm_bounded(balance: Option<&Balance>, hash_type: Option<&HashType>, balance_factor: Option<u32>) -> Box<dyn Algorithm> {
    let hash_type = hash_type.copied().unwrap_or(DEFAULT_HASH_TYPE);
    let factor = balance_factor.unwrap_or(0);
    match balance {
        None | Some(Balance::RoundRobin) => Box::new(RoundRobin::new()),
        Some(Balance::StaticRr) => Box::new(StaticRr::new()),
        Some(Balance::LeastConn) => Box::new(LeastConn::new()),
        Some(Balance::First) => Box::new(First::new()),
        Some(Balance::Source) => Box::new(Source::new(hash_type.method, hash_type.avalanche).with_balance_factor(factor)),
        Some(Balance::Random { draws }) => Box::new(Random::new(*draws)),
        Some(Balance::Uri(_) | Balance::UrlParam { .. } | Balance::Hdr { .. } | Balance::RdpCookie { .. } | Balance::Hash(_)) => {
            Box::new(HashBalancer::new(hash_type.method).with_balance_factor(factor))
        }
    }
}

/// What a pick needs in its [`PickKey`](super::PickKey).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyNeeded {
    /// Nothing: the algorithm ignores the key.
    Nothing,
    /// The client's address in `src` (`balance source`).
    SourceAddr,
    /// The sample `balance` names (URI, URL parameter, header, RDP cookie, `hash` expression),
    /// hashed by the data plane with [`hash_bytes`](super::hash::hash_bytes)`(function,
    /// avalanche, sample)` into `hash`; `None` when the sample is absent.
    SampleHash { function: HashFunction, avalanche: bool },
}

/// What the data plane must compute before picking a server of a backend with this `balance`
/// and `hash-type`.
pub fn key_hash_needed(balance: Option<&Balance>, hash_type: Option<&HashType>) -> KeyNeeded {
    let hash_type = hash_type.copied().unwrap_or(DEFAULT_HASH_TYPE);
    match balance {
        None | Some(Balance::RoundRobin | Balance::StaticRr | Balance::LeastConn | Balance::First | Balance::Random { .. }) => KeyNeeded::Nothing,
        Some(Balance::Source) => KeyNeeded::SourceAddr,
        Some(Balance::Uri(_) | Balance::UrlParam { .. } | Balance::Hdr { .. } | Balance::RdpCookie { .. } | Balance::Hash(_)) => {
            KeyNeeded::SampleHash { function: hash_type.function, avalanche: hash_type.avalanche }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::config::UriHash;

    #[test]
    fn unset_balance_is_round_robin() {
        assert!(format!("{:?}", build_algorithm(None, None)).starts_with("RoundRobin"));
    }

    #[test]
    fn each_balance_gets_its_algorithm() {
        let cases = [
            (Balance::StaticRr, "StaticRr"),
            (Balance::LeastConn, "LeastConn"),
            (Balance::First, "First"),
            (Balance::Source, "Source"),
            (Balance::Random { draws: 2 }, "Random"),
            (Balance::Uri(UriHash::default()), "HashBalancer"),
            (Balance::RdpCookie { name: "mstshash".into() }, "HashBalancer"),
        ];
        for (b, name) in cases {
            assert!(format!("{:?}", build_algorithm(Some(&b), None)).starts_with(name), "{b:?}");
        }
    }

    #[test]
    fn sample_hashes_use_the_configured_function() {
        let ht = HashType { method: HashMethod::Consistent, function: HashFunction::Djb2, avalanche: true };
        let need = key_hash_needed(Some(&Balance::Hdr { name: "host".into(), use_domain_only: false }), Some(&ht));
        assert_eq!(need, KeyNeeded::SampleHash { function: HashFunction::Djb2, avalanche: true });
    }

    #[test]
    fn sample_hashes_default_to_sdbm() {
        let need = key_hash_needed(Some(&Balance::Uri(UriHash::default())), None);
        assert_eq!(need, KeyNeeded::SampleHash { function: HashFunction::Sdbm, avalanche: false });
    }

    #[test]
    fn source_needs_the_client_address_and_others_nothing() {
        assert_eq!(key_hash_needed(Some(&Balance::Source), None), KeyNeeded::SourceAddr);
        assert_eq!(key_hash_needed(Some(&Balance::LeastConn), None), KeyNeeded::Nothing);
        assert_eq!(key_hash_needed(None, None), KeyNeeded::Nothing);
    }
}
