//! The sandbox's leases, as the fault proxy has them: every hold a control call takes (a node,
//! a zone, a database instance, the cache, a link's latency, a rolling restart, a cutover — each held by
//! `?by=<holder>`) lasts a lease unless renewed (`POST /renew?by=H`), and the sandbox lets go of
//! it by itself when the lease runs out. A run killed without a rollback (a CI job at its
//! timeout) leaves a sandbox started apart from it (`chaos sandbox up`) whole within a lease.
//!
//! This file owns the table only: which release undoes which hold, and when. Letting go is the
//! control API's own release call (`start`, `up`, `heal`, `DELETE`, `cancel`, `rollback`) made by the
//! sandbox for that holder ([`super::control`]), so a lease that runs out does exactly what the
//! run's revert would have done. It must never release a hold of another holder.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::events::lock;

/// The lease a hold gets when neither the call nor `chaos sandbox up --lease` names one.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// How often the sandbox looks for leases that ran out.
pub const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// The control call that lets go of a hold: `("POST", "/zones/a/up")`.
pub type Release = (&'static str, String);

/// The release call of a control call that takes a hold, or `None` for one that takes none (a
/// read, a release itself, a one-shot failover).
pub fn release_of(method: &str, segs: &[&str]) -> Option<Release> {
    Some(match (method, segs) {
        ("POST", ["nodes", id, "kill" | "stop"]) => ("POST", format!("/nodes/{id}/start")),
        ("POST", ["zones", z, "down"]) => ("POST", format!("/zones/{z}/up")),
        ("POST", ["rolling-restart"]) => ("POST", "/rolling-restart/cancel".into()),
        ("POST", ["cutover"]) => ("POST", "/cutover/rollback".into()),
        ("POST", ["db", id, "kill" | "stop"]) => ("POST", format!("/db/{id}/start")),
        ("POST", ["cache", "kill" | "stop"]) => ("POST", "/cache/start".into()),
        ("POST", ["cache", "partition"]) => ("POST", "/cache/heal".into()),
        ("PUT", ["links", link]) => ("DELETE", format!("/links/{link}")),
        _ => return None,
    })
}

/// The hold a release call lets go of, as [`release_of`] names it: the release itself.
pub fn is_release(method: &str, segs: &[&str]) -> Option<Release> {
    Some(match (method, segs) {
        ("POST", ["nodes", id, "start"]) => ("POST", format!("/nodes/{id}/start")),
        ("POST", ["zones", z, "up"]) => ("POST", format!("/zones/{z}/up")),
        ("POST", ["rolling-restart", "cancel"]) => ("POST", "/rolling-restart/cancel".into()),
        ("POST", ["cutover", "rollback"]) => ("POST", "/cutover/rollback".into()),
        ("POST", ["db", id, "start"]) => ("POST", format!("/db/{id}/start")),
        ("POST", ["cache", "start"]) => ("POST", "/cache/start".into()),
        ("POST", ["cache", "heal"]) => ("POST", "/cache/heal".into()),
        ("DELETE", ["links", link]) => ("DELETE", format!("/links/{link}")),
        _ => return None,
    })
}

/// Every lease: (release, holder) → when it runs out (`None`: held until released).
pub struct Leases {
    default: Mutex<Duration>,
    table: Mutex<BTreeMap<(Release, String), Option<Instant>>>,
}

impl Default for Leases {
    fn default() -> Self {
        Leases {
            default: Mutex::new(DEFAULT_LEASE),
            table: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Leases {
    /// The lease a hold gets when its call names none.
    pub fn default_lease(&self) -> Duration {
        *lock(&self.default)
    }

    pub fn set_default(&self, lease: Duration) {
        *lock(&self.default) = lease;
    }

    /// `by` took (or took again) the hold `release` lets go of: it lasts `lease` from now
    /// (`None`: the default lease; zero: until released).
    pub fn hold(&self, release: Release, by: &str, lease: Option<Duration>) {
        let lease = lease.unwrap_or_else(|| self.default_lease());
        let expires = (!lease.is_zero()).then(|| Instant::now() + lease);
        lock(&self.table).insert((release, by.to_string()), expires);
    }

    /// `by` let go of the hold: its lease ends with it.
    pub fn released(&self, release: &Release, by: &str) {
        lock(&self.table).remove(&(release.clone(), by.to_string()));
    }

    /// Every lease `by` holds runs `lease` (`None`: the default) from now: how many.
    pub fn renew(&self, by: &str, lease: Option<Duration>) -> usize {
        let lease = lease.unwrap_or_else(|| self.default_lease());
        let mut t = lock(&self.table);
        let mut n = 0;
        for ((_, holder), expires) in t.iter_mut() {
            if holder == by {
                *expires = Some(Instant::now() + lease);
                n += 1;
            }
        }
        n
    }

    /// Take out the leases that ran out: (release, holder) of each, to be let go of.
    pub fn expired(&self) -> Vec<(Release, String)> {
        let now = Instant::now();
        let mut t = lock(&self.table);
        let gone: Vec<_> = t
            .iter()
            .filter(|(_, e)| e.is_some_and(|e| e <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            t.remove(k);
        }
        gone
    }

    /// Every lease, for `GET /resources`: holder, release call, time left.
    pub fn describe(&self) -> Value {
        let now = Instant::now();
        let list: Vec<Value> = lock(&self.table)
            .iter()
            .map(|(((m, path), by), e)| {
                json!({
                    "by": by,
                    "release": format!("{m} {path}"),
                    "lease_left_ms": e.map(|e| e.saturating_duration_since(now).as_millis() as u64),
                })
            })
            .collect();
        json!(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_hold_runs_out_unless_renewed_and_a_release_ends_it() {
        let l = Leases::default();
        let zone = release_of("POST", &["zones", "a", "down"]).unwrap();
        assert_eq!(zone, ("POST", "/zones/a/up".to_string()));
        l.hold(zone.clone(), "fault:z", Some(Duration::from_secs(2)));
        l.hold(zone.clone(), "fault:other", Some(Duration::ZERO));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(l.expired().is_empty());
        assert_eq!(l.renew("fault:z", None), 1, "the default lease now: 15 s");
        tokio::time::sleep(Duration::from_secs(14)).await;
        assert!(l.expired().is_empty(), "renewed for 15 s, not the 2 s");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(l.expired(), vec![(zone.clone(), "fault:z".to_string())]);
        assert!(l.expired().is_empty(), "taken out once");
        // Held until released: never runs out; its release ends the lease.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(l.expired().is_empty());
        assert_eq!(l.renew("fault:nobody", None), 0);
        let rel = is_release("POST", &["zones", "a", "up"]).unwrap();
        assert_eq!(rel, zone);
        l.released(&rel, "fault:other");
        assert_eq!(l.describe(), json!([]));
    }

    #[test]
    fn every_hold_has_its_release_and_reads_take_none() {
        for (m, path) in [
            ("POST", "nodes/app-a-1/kill"),
            ("POST", "nodes/app-a-1/stop"),
            ("POST", "zones/b/down"),
            ("POST", "rolling-restart"),
            ("POST", "cutover"),
            ("POST", "db/db-a/kill"),
            ("POST", "cache/stop"),
            ("POST", "cache/partition"),
            ("PUT", "links/app-db"),
        ] {
            let segs: Vec<&str> = path.split('/').collect();
            let (rm, rp) = release_of(m, &segs).unwrap();
            let rsegs: Vec<&str> = rp.trim_matches('/').split('/').collect();
            assert_eq!(is_release(rm, &rsegs), Some((rm, rp.clone())), "{m} {path}");
            assert_eq!(release_of(rm, &rsegs), None, "{rm} {rp} takes no hold");
        }
        for (m, path) in [
            ("GET", "resources"),
            ("POST", "db/failover"),
            ("POST", "cache/failover"),
            ("POST", "renew"),
        ] {
            let segs: Vec<&str> = path.split('/').collect();
            assert_eq!(release_of(m, &segs), None, "{m} {path}");
        }
    }
}
