//! The JSON Schema of the scenario format, printed by `chaos schema` for editors (taplo, VS Code
//! "Even Better TOML", JSON language servers).
//!
//! The schema describes shapes; rules that need the whole file (a fault window inside the run,
//! template variables that some request captures, SLO windows naming real faults) are only in
//! the validator. Its property lists are tested against [`super::validate::keys`].

use serde_json::{json, Value};

use super::validate::keys;

pub(crate) const DURATION: &str = "^\\s*([0-9]+(\\.[0-9]+)?\\s*(us|µs|ms|s|m|min|h)\\s*)+$";
const RATE: &str = "^\\s*[0-9]+(\\.[0-9]+)?\\s*(x|/s|rps|req/s)\\s*$";
const PERCENT: &str = "^\\s*[0-9]+(\\.[0-9]+)?\\s*%\\s*$";
const IDENT: &str = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$";

/// A string holding `${env:NAME}` or `${env:NAME:-default}`: numeric and duration fields accept
/// one (substituted, then validated as the field).
const ENV_REF: &str = "\\$\\{env:[A-Za-z0-9_]+(:-[^}]*)?\\}";

/// `v`, or a string with `${env:…}` in it.
fn or_env(mut v: Value) -> Value {
    let desc = v.as_object_mut().and_then(|o| o.remove("description"));
    let mut out = json!({ "anyOf": [v, { "type": "string", "pattern": ENV_REF }] });
    if let Some(d) = desc {
        out["description"] = d;
    }
    out
}

fn duration(desc: &str) -> Value {
    or_env(json!({ "type": "string", "pattern": DURATION, "description": desc }))
}

fn rate() -> Value {
    or_env(json!({
        "description": "a multiple of peak_rps (\"4x\") or requests per second (\"800/s\", \"800 rps\", 800)",
        "oneOf": [
            { "type": "string", "pattern": RATE },
            { "type": "number", "minimum": 0 }
        ]
    }))
}

/// An integer field that also takes `${env:…}`.
fn int(v: Value) -> Value {
    or_env(v)
}

fn strings(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

fn headers() -> Value {
    json!({
        "type": "object",
        "description": "header name -> value; values are templates and may use ${env:NAME} (shown as *** everywhere)",
        "additionalProperties": { "type": "string" }
    })
}

fn slo_list() -> Value {
    json!({
        "type": "array",
        "items": { "type": "string", "description": "`<metric> <op> <value>`, e.g. \"p99 < 800ms\", \"errors < 2%\"" }
    })
}

/// The schema of a scenario file, draft 2020-12.
pub fn json_schema() -> Value {
    let fault_kinds: Vec<&str> = keys::FAULT_KINDS.iter().map(|(k, _)| *k).collect();
    let fault_variants: Vec<Value> = keys::FAULT_KINDS
        .iter()
        .map(|(k, extra)| {
            let mut props = serde_json::Map::new();
            for key in keys::FAULT.iter().chain(*extra) {
                props.insert(key.to_string(), fault_field(key));
            }
            props.insert("kind".into(), json!({ "const": k }));
            let mut required = vec!["name", "kind", "at"];
            if *k == "az-outage" {
                required.push("zone");
            }
            if *k == "command" {
                required.push("command");
            }
            if *k == "latency" {
                required.extend(["link", "delay"]);
            }
            json!({
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": false
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/chaos/chaos/scenario.v1.json",
        "title": "chaos scenario",
        "description": "Traffic, a fault timeline and SLOs for `chaos run`.",
        "type": "object",
        "required": ["name"],
        "anyOf": [{ "required": ["load"] }, { "required": ["users"] }],
        "additionalProperties": false,
        "properties": {
            "name": { "type": "string", "pattern": IDENT, "description": "used in report directory names" },
            "description": { "type": "string", "description": "one line, shown by `chaos list`" },
            "load": {
                "type": "object",
                "required": ["stages", "requests"],
                "additionalProperties": false,
                "properties": {
                    "peak_rps": or_env(json!({ "type": "number", "exclusiveMinimum": 0, "description": "the service's stated peak; \"Nx\" rates are multiples of it" })),
                    "stages": {
                        "type": "array",
                        "minItems": 1,
                        "items": { "oneOf": [
                            {
                                "type": "object",
                                "description": "linear ramp from the previous stage's rate (0 at the start)",
                                "required": ["ramp", "over"],
                                "additionalProperties": false,
                                "properties": { "ramp": rate(), "over": duration("length of the ramp") }
                            },
                            {
                                "type": "object",
                                "description": "constant rate",
                                "required": ["hold", "for"],
                                "additionalProperties": false,
                                "properties": { "hold": rate(), "for": duration("length of the stage") }
                            }
                        ]}
                    },
                    "max_in_flight": int(json!({ "type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 10_000 })),
                    "interval": duration("recorder interval, 100ms to 60s (default 1s)"),
                    "responses_by": { "type": "string", "description": "a response header each interval counts responses by, e.g. x-app-version (the report's versions chart)" },
                    "client": client(),
                    "requests": requests()
                }
            },
            "users": users(),
            "faults": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": { "kind": strings(&fault_kinds) },
                    "oneOf": fault_variants
                }
            },
            "sandbox": sandbox(),
            "abort": {
                "type": "object",
                "description": "stop the run early (faults reverted, exit 3) when the service is hurt too much",
                "additionalProperties": false,
                "properties": {
                    "when": {
                        "type": "array",
                        "items": { "type": "string", "description": "\"errors > 50% for 10s\", \"p99 > 5s for 30s\"" }
                    }
                }
            },
            "slo": {
                "type": "object",
                "description": "window -> SLOs; windows: whole, baseline, during:<fault>, after:<fault>, each optionally trimmed as <window>[from..to] (\"baseline[10s..]\": without its first 10 s; \"during:f[..-5s]\": without its last 5 s); a request name -> its own windows",
                "properties": {
                    "whole": slo_list(),
                    "baseline": slo_list(),
                    "data": slo_list(),
                    "insufficient_data": {
                        "enum": ["fail", "allow"],
                        "description": "an SLO whose window holds too few samples to judge it: fail the run (default) or only report it"
                    },
                    "recovery": {
                        "type": "object",
                        "description": "fault name -> bound on its recovery time, e.g. \"< 30s\"",
                        "additionalProperties": { "type": "string" }
                    }
                },
                "patternProperties": {
                    "^(during|after):": slo_list(),
                    TRIMMED: slo_list(),
                    "^journey:": {
                        "description": "a journey's SLOs on its iterations (steps' time without think time): \"failed < 1%\", \"p95 < 3s\", \"max < 10s\"; a list for the whole run, or windows -> lists",
                        "oneOf": [
                            slo_list(),
                            {
                                "type": "object",
                                "properties": { "whole": slo_list(), "baseline": slo_list() },
                                "patternProperties": { "^(during|after):": slo_list(), TRIMMED: slo_list() },
                                "additionalProperties": false
                            }
                        ]
                    }
                },
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "whole": slo_list(),
                        "baseline": slo_list(),
                        "recovery": {
                            "type": "object",
                            "description": "fault name -> bound on this request's recovery time",
                            "additionalProperties": { "type": "string" }
                        }
                    },
                    "patternProperties": {
                        "^(during|after):": slo_list(),
                        TRIMMED: slo_list()
                    },
                    "additionalProperties": false
                }
            }
        }
    })
}

/// `whole` or `baseline` trimmed, e.g. `baseline[10s..]` (`during:`/`after:` keys match above).
const TRIMMED: &str = "^(whole|baseline)\\[[^\\]]*\\]$";

fn fault_field(key: &str) -> Value {
    match key {
        "name" => json!({ "type": "string", "pattern": IDENT }),
        "kind" => json!({ "type": "string" }),
        "at" => duration("offset from the start of the run"),
        "for" => duration("how long it stays applied (default: until the end of the run)"),
        "role" => strings(keys::ROLES),
        "count" => or_env(json!({ "oneOf": [
            { "type": "integer", "minimum": 1 },
            { "type": "string", "pattern": PERCENT }
        ]})),
        "zone" => json!({ "type": "string", "pattern": IDENT }),
        "mode" => strings(keys::KILL_MODES),
        "parts" => json!({
            "type": "array", "minItems": 1,
            "items": strings(&crate::scenario::model::AzPart::NAMES),
            "description": "what the outage does (default: all): the zone's network cut, its app instances stopped, the ASG kept out, the db and cache failed over if their primary is there"
        }),
        "restart" => {
            json!({ "type": "boolean", "default": true, "description": "false: the system must bring the nodes back by itself; the revert does nothing" })
        }
        "command" => {
            json!({ "type": "string", "pattern": IDENT, "description": "a command pair the target file declares ([commands.NAME])" })
        }
        "down_for" => duration("how long each node stays down (default 10s)"),
        "steps" => json!({
            "type": "array", "minItems": 1,
            "items": { "type": "string", "pattern": PERCENT },
            "description": "blue/green: green's share of the requests, step by step, increasing (default [\"100%\"])"
        }),
        "every" => duration("blue/green: time between steps (default 30s)"),
        "drain" => {
            json!({ "type": "boolean", "default": true, "description": "blue/green: let the group that loses its traffic finish its requests in flight (false: they are cut, 502)" })
        }
        "link" => strings(keys::LINKS),
        "delay" | "jitter" => duration("added delay"),
        _ => json!({}),
    }
}

fn client() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "timeout": duration("per attempt (default 10s)"),
            "retry": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "attempts": int(json!({ "type": "integer", "minimum": 1, "maximum": 10, "default": 1, "description": "total attempts including the first" })),
                    "backoff": duration("first retry delay (default 100ms), doubled per retry"),
                    "max_backoff": duration("cap of the backoff (default 10s)"),
                    "jitter": strings(keys::JITTERS),
                    "on": {
                        "type": "array",
                        "description": "outcomes retried (default: connect, reset, 502, 503, 504)",
                        "items": { "oneOf": [
                            { "type": "string", "pattern": "^(connect|timeout|reset|[1-5][0-9][0-9]|[1-5]xx)$" },
                            { "type": "integer", "minimum": 100, "maximum": 599 }
                        ]}
                    },
                    "budget": or_env(json!({ "type": "string", "pattern": PERCENT, "description": "retries <= budget x requests over budget_window" })),
                    "budget_window": duration("sliding window of the retry budget (default 10s)")
                }
            },
            "headers": headers(),
            "ca_cert": { "type": "string", "description": "PEM file of an extra root CA, relative to the scenario file" }
        }
    })
}

/// `[users]`: the closed model (journeys on goose).
fn users() -> Value {
    let count = or_env(json!({
        "description": "a multiple of peak (\"4x\") or a number of users (200)",
        "oneOf": [
            { "type": "string", "pattern": "^\\s*([0-9]+(\\.[0-9]+)?\\s*x|[0-9]+)\\s*$" },
            { "type": "integer", "minimum": 0 }
        ]
    }));
    let mut step = requests()["items"].clone();
    if let Some(p) = step["properties"].as_object_mut() {
        p.remove("weight");
        let methods: Vec<&str> = keys::METHODS
            .iter()
            .copied()
            .filter(|m| *m != "OPTIONS")
            .collect();
        p.insert("method".into(), strings(&methods));
        p.insert("path".into(), json!({ "type": "string", "pattern": "^/", "description": "template: {{user}}, {{seq}}, {{uuid}}, {{rand_int(a,b)}}, {{captured by an earlier step}}" }));
    }
    json!({
        "type": "object",
        "description": "virtual users running journeys with think time and their own cookies (the closed model, on goose); runs with [load] when both are given",
        "required": ["plan", "journeys"],
        "additionalProperties": false,
        "properties": {
            "peak": int(json!({ "type": "integer", "minimum": 1, "description": "the stated peak of concurrent users; \"Nx\" counts are multiples of it" })),
            "plan": {
                "type": "array",
                "minItems": 1,
                "items": { "oneOf": [
                    {
                        "type": "object",
                        "description": "linear ramp of the user count from the previous stage's (0 at the start)",
                        "required": ["ramp", "over"],
                        "additionalProperties": false,
                        "properties": { "ramp": count.clone(), "over": duration("length of the ramp") }
                    },
                    {
                        "type": "object",
                        "description": "a constant user count",
                        "required": ["hold", "for"],
                        "additionalProperties": false,
                        "properties": { "hold": count, "for": duration("length of the stage") }
                    }
                ]}
            },
            "think": {
                "type": "object",
                "description": "think time drawn in [min, max] between two steps and two iterations (default 1s..3s)",
                "additionalProperties": false,
                "properties": { "min": duration("shortest think time"), "max": duration("longest think time") }
            },
            "client": client(),
            "journeys": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "steps"],
                    "additionalProperties": false,
                    "properties": {
                        "name": { "type": "string", "pattern": IDENT },
                        "weight": int(json!({ "type": "integer", "minimum": 0, "default": 1, "description": "share of the users that run this journey" })),
                        "steps": { "type": "array", "minItems": 1, "items": step }
                    }
                }
            }
        }
    })
}

fn requests() -> Value {
    json!({
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "required": ["name", "path"],
            "additionalProperties": false,
            "properties": {
                "name": { "type": "string", "pattern": IDENT },
                "weight": int(json!({ "type": "integer", "minimum": 0, "default": 1 })),
                "method": strings(keys::METHODS),
                "path": { "type": "string", "pattern": "^/", "description": "template: {{seq}}, {{uuid}}, {{rand_int(a,b)}}, {{captured}}" },
                "headers": headers(),
                "json": { "description": "JSON body; strings are templates" },
                "body": { "type": "string", "description": "raw body template" },
                "capture": {
                    "type": "object",
                    "description": "name -> JSON path (\"$.id\") into a successful response; used later as {{name}}",
                    "additionalProperties": { "type": "string", "pattern": "^\\$" }
                },
                "durable": {
                    "type": "object",
                    "required": ["id", "read"],
                    "additionalProperties": false,
                    "properties": {
                        "id": { "type": "string", "pattern": "^\\$" },
                        "read": { "type": "string", "description": "\"GET /notes/{id}\"" },
                        "same": { "type": "string", "pattern": "^\\$", "description": "a JSON path (\"$.text\"): the read-back must hold there what the write sent there, or the write is lost (another value under its id)" }
                    }
                },
                "expect": expect()
            }
        }
    })
}

/// `expect`: what counts as a success for one request (default: any status below 400).
fn expect() -> Value {
    let status = json!({ "oneOf": [
        { "type": "integer", "minimum": 100, "maximum": 599 },
        { "type": "string", "pattern": "^\\s*([1-5][0-9][0-9]|[1-5]xx)\\s*$" }
    ]});
    json!({
        "type": "object",
        "description": "what counts as a success (default: any status below 400); a response it rejects is an error: `unexpected` below 400, its class (4xx/5xx) otherwise",
        "minProperties": 1,
        "additionalProperties": false,
        "properties": {
            "status": {
                "description": "statuses that count as success, e.g. [200, 201, 404] or [\"2xx\", 404]",
                "oneOf": [status.clone(), { "type": "array", "minItems": 1, "items": status }]
            },
            "body_contains": { "type": "string", "minLength": 1, "description": "text the body must contain (reads the whole body)" },
            "json": {
                "type": "object",
                "description": "the value at `path` exists, or equals `equals` (reads the whole body as JSON)",
                "required": ["path"],
                "additionalProperties": false,
                "properties": {
                    "path": { "type": "string", "pattern": "^\\$" },
                    "equals": { "description": "any JSON value; numbers compare by value" }
                }
            }
        }
    })
}

pub(crate) fn sandbox() -> Value {
    let d = |desc: &str| duration(desc);
    json!({
        "type": "object",
        "description": "settings of the embedded sandbox (ignored for other targets); unset keys keep the defaults",
        "additionalProperties": false,
        "properties": {
            "nodes_per_zone": int(json!({ "type": "integer", "minimum": 1, "maximum": 20, "default": 2 })),
            "node_concurrency": int(json!({ "type": "integer", "minimum": 1, "default": 3 })),
            "service_time": d("per request on a node (default 10ms)"),
            "service_jitter": d("uniform extra service time (default 6ms)"),
            "health_interval": d("load-balancer health checks (default 1s)"),
            "unhealthy_after": int(json!({ "type": "integer", "minimum": 1, "default": 2 })),
            "healthy_after": int(json!({ "type": "integer", "minimum": 1, "default": 2 })),
            "db_writer_zone": strings(keys::ZONES),
            "replication": strings(keys::REPLICATIONS),
            "replication_lag": d("async replication lag (default 500ms)"),
            "failover_time": d("database failover (default 5s)"),
            "snapshot_interval": d("how often the database is snapshotted, what db-restore brings back (default 30s)"),
            "restore_time": d("how long a db-restore takes, the database down meanwhile (default 20s)"),
            "cache_timeout": d("app nodes' cache timeout (default 200ms)"),
            "cache_policy": strings(keys::CACHE_POLICIES),
            "cache_failover_time": d("cache failover (default 2s)"),
            "cache_replication_lag": d("how far the cache replica trails (default 200ms)")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    }

    fn sorted(k: &[&str]) -> Vec<String> {
        let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    #[test]
    fn expect_lists_exactly_the_keys_the_validator_accepts() {
        let s = json_schema();
        let e = &s["properties"]["load"]["properties"]["requests"]["items"]["properties"]["expect"];
        assert_eq!(props(e), sorted(keys::EXPECT));
        assert_eq!(props(&e["properties"]["json"]), sorted(keys::EXPECT_JSON));
    }
}
