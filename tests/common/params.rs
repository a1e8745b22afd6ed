//! The parametrized scenario the scenario_params tests share: every numeric and duration field
//! a scenario can parametrize, each `${env:…}` with a default.
#![allow(dead_code)]

/// Every numeric and duration field a scenario can parametrize, each with a default.
pub const PARAM: &str = r#"name = "param"
description = "one scenario for staging and production"

[load]
peak_rps = "${env:PEAK:-200}"
stages = [
  { ramp = "1x", over = "${env:RAMP:-10s}" },
  { hold = "${env:MULT:-2}x", for = "${env:SOAK:-50s}" },
]
max_in_flight = "${env:IN_FLIGHT:-500}"

[load.client]
timeout = "${env:TIMEOUT:-2s}"
retry = { attempts = "${env:ATTEMPTS:-3}", backoff = "${env:BACKOFF:-50ms}" }

[[load.requests]]
name = "list"
path = "/notes"

[[faults]]
name = "zone-a-down"
kind = "az-outage"
zone = "a"
at = "${env:AT:-20s}"
for = "${env:FOR:-20s}"

[sandbox]
nodes_per_zone = "${env:NODES:-3}"
failover_time = "${env:FAILOVER:-4s}"

[slo]
whole = ["p99 < 800ms", "errors < 2%"]
"during:zone-a-down" = ["p99 < 2s"]
"#;
