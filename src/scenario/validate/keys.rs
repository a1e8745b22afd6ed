//! The keys each table of a scenario accepts: one list used by the validator (unknown-key
//! errors, "did you mean") and checked against the JSON Schema in tests.

pub const TOP: &[&str] = &[
    "name",
    "description",
    "load",
    "users",
    "faults",
    "slo",
    "sandbox",
    "abort",
];
pub const ABORT: &[&str] = &["when"];
pub const SANDBOX: &[&str] = &[
    "nodes_per_zone",
    "node_concurrency",
    "service_time",
    "service_jitter",
    "health_interval",
    "unhealthy_after",
    "healthy_after",
    "db_writer_zone",
    "replication",
    "replication_lag",
    "failover_time",
    "snapshot_interval",
    "restore_time",
    "cache_timeout",
    "cache_policy",
    "cache_failover_time",
    "cache_replication_lag",
];
pub const REPLICATIONS: &[&str] = &["sync", "async"];
pub const CACHE_POLICIES: &[&str] = &["fail-open", "fail-closed"];
pub const ZONES: &[&str] = &["a", "b", "c"];
pub const LOAD: &[&str] = &[
    "peak_rps",
    "stages",
    "max_in_flight",
    "responses_by",
    "interval",
    "client",
    "requests",
];
pub const RAMP: &[&str] = &["ramp", "over"];
pub const HOLD: &[&str] = &["hold", "for"];
pub const CLIENT: &[&str] = &["timeout", "retry", "headers", "ca_cert"];
pub const RETRY: &[&str] = &[
    "attempts",
    "backoff",
    "max_backoff",
    "jitter",
    "on",
    "budget",
    "budget_window",
];
pub const REQUEST: &[&str] = &[
    "name", "weight", "method", "path", "headers", "json", "body", "capture", "durable", "expect",
];
/// A journey step: a request without `weight` (steps run in order) or `durable` (refused with
/// its own message: the read-back has no session cookie).
pub const STEP: &[&str] = &[
    "name", "method", "path", "headers", "json", "body", "capture", "expect", "durable",
];
pub const USERS: &[&str] = &["peak", "plan", "think", "client", "journeys"];
pub const THINK: &[&str] = &["min", "max"];
pub const JOURNEY: &[&str] = &["name", "weight", "steps"];
pub const DURABLE: &[&str] = &["id", "read", "same"];
pub const EXPECT: &[&str] = &["status", "body_contains", "json"];
pub const EXPECT_JSON: &[&str] = &["path", "equals"];
pub const FAULT: &[&str] = &["name", "kind", "at", "for"];

/// Fault kinds and the keys each takes besides [`FAULT`]'s.
pub const FAULT_KINDS: &[(&str, &[&str])] = &[
    ("kill-nodes", &["role", "count", "zone", "mode", "restart"]),
    ("freeze", &["role", "count", "zone"]),
    ("restart-nodes", &["role", "down_for", "zone"]),
    ("az-outage", &["zone", "parts"]),
    ("db-failover", &[]),
    (crate::scenario::FaultKind::RESTORE, &[]),
    (crate::scenario::FaultKind::BLUE_GREEN, BLUE_GREEN),
    ("cutover", BLUE_GREEN),
    ("cache-partition", &[]),
    ("cache-failover", &[]),
    ("latency", &["link", "delay", "jitter"]),
    ("command", &["command"]),
];

const BLUE_GREEN: &[&str] = &["steps", "every", "drain"];

pub const ROLES: &[&str] = &["app", "db", "cache", "lb"];
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
pub const JITTERS: &[&str] = &["none", "full", "equal"];
pub const RETRY_ON_WORDS: &[&str] = &["connect", "timeout", "reset"];
pub const LINKS: &[&str] = &["app-db", "app-cache"];
pub const KILL_MODES: &[&str] = &["kill", "stop"];

/// SLO window keys besides `during:<fault>` / `after:<fault>` and request names.
pub const SLO_WINDOWS: &[&str] = &["whole", "baseline", "data", "recovery", "insufficient_data"];
/// SLO keys that belong to the SLO engine issue and are rejected with a pointer to it.
pub const SLO_LATER: &[&str] = &[];
