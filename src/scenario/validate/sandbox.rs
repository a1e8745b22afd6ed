//! `[sandbox]`: settings of the embedded stack for this scenario (ignored against other
//! targets). Each key is optional; unset keys keep the sandbox's defaults.

use std::time::Duration;

use super::keys;
use super::{Ctx, Fields};
use crate::scenario::model::SandboxSpec;
use crate::scenario::node::Node;

pub(super) fn sandbox(cx: &mut Ctx<'_>, n: &Node) -> SandboxSpec {
    let Some(t) = cx.table(n, "[sandbox]") else {
        return SandboxSpec::default();
    };
    t.check_keys(cx, keys::SANDBOX, "in [sandbox]");
    settings(cx, &t)
}

/// The sandbox's settings among the keys of `t` (a scenario's `[sandbox]`, a sandbox target
/// file's top level); other keys are the caller's to check.
pub(crate) fn settings(cx: &mut Ctx<'_>, t: &Fields<'_>) -> SandboxSpec {
    let mut s = SandboxSpec::default();
    let secs = |cx: &mut Ctx<'_>, key: &str, lo: Duration, hi: Duration| {
        t.get(key)
            .and_then(|v| cx.duration_in(v, key, lo, hi))
            .map(|d| d.as_secs_f64())
    };
    let ms = Duration::from_millis;
    let min = |m: u64| Duration::from_secs(m * 60);
    // Optional integers in `lo..=hi` (all small and positive: the casts below cannot truncate).
    let int = |cx: &mut Ctx<'_>, key: &str, lo: i64, hi: i64| {
        t.get(key).and_then(|v| cx.int(v, key, lo, hi))
    };
    s.nodes_per_zone = int(cx, "nodes_per_zone", 1, 20).map(|v| v as usize);
    s.node_concurrency = int(cx, "node_concurrency", 1, 10_000).map(|v| v as usize);
    s.service_time_s = secs(cx, "service_time", Duration::ZERO, min(1));
    s.service_jitter_s = secs(cx, "service_jitter", Duration::ZERO, min(1));
    s.health_interval_s = secs(cx, "health_interval", ms(100), min(1));
    s.unhealthy_after = int(cx, "unhealthy_after", 1, 100).map(|v| v as u32);
    s.healthy_after = int(cx, "healthy_after", 1, 100).map(|v| v as u32);
    s.db_writer_zone = t
        .get("db_writer_zone")
        .and_then(|v| cx.choice(v, "db_writer_zone", keys::ZONES));
    s.replication = t
        .get("replication")
        .and_then(|v| cx.choice(v, "replication", keys::REPLICATIONS));
    s.replication_lag_s = secs(cx, "replication_lag", Duration::ZERO, min(10));
    s.failover_time_s = secs(cx, "failover_time", Duration::ZERO, min(10));
    s.snapshot_interval_s = secs(
        cx,
        "snapshot_interval",
        Duration::from_secs(1),
        min(24 * 60),
    );
    s.restore_time_s = secs(cx, "restore_time", Duration::ZERO, min(60));
    s.cache_timeout_s = secs(cx, "cache_timeout", ms(1), min(1));
    s.cache_policy = t
        .get("cache_policy")
        .and_then(|v| cx.choice(v, "cache_policy", keys::CACHE_POLICIES));
    s.cache_failover_time_s = secs(cx, "cache_failover_time", Duration::ZERO, min(10));
    s.cache_replication_lag_s = secs(cx, "cache_replication_lag", Duration::ZERO, min(10));
    s
}
