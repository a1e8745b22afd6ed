//! The shipped scenarios, embedded in the binary so `chaos run az-outage` works from any
//! directory and after `cargo install`. The files in `scenarios/` are the source of truth.

/// (name, TOML text), in `chaos list` order.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("az-outage", include_str!("../../scenarios/az-outage.toml")),
    (
        "db-failover",
        include_str!("../../scenarios/db-failover.toml"),
    ),
    (
        "redis-partition",
        include_str!("../../scenarios/redis-partition.toml"),
    ),
    ("node-kill", include_str!("../../scenarios/node-kill.toml")),
    (
        "cache-failover",
        include_str!("../../scenarios/cache-failover.toml"),
    ),
    (
        "db-latency",
        include_str!("../../scenarios/db-latency.toml"),
    ),
    (
        "rolling-deploy",
        include_str!("../../scenarios/rolling-deploy.toml"),
    ),
    ("peak-4x", include_str!("../../scenarios/peak-4x.toml")),
    (
        "blue-green",
        include_str!("../../scenarios/blue-green.toml"),
    ),
    (
        "dr-restore",
        include_str!("../../scenarios/dr-restore.toml"),
    ),
    (
        "journeys-redis-partition",
        include_str!("../../scenarios/journeys-redis-partition.toml"),
    ),
];

/// The text of the shipped scenario `name` (exactly: `az-outage`, not `az-outage.toml`).
pub fn get(name: &str) -> Option<&'static str> {
    SCENARIOS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|(n, _)| *n).collect()
}
