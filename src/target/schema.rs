//! The JSON Schema of target files (`chaos schema --target`), for editors and linters. Its
//! property lists are tested against the keys the validator accepts, so the two cannot drift.

use serde_json::{json, Map, Value};

use super::file::KINDS;

pub fn json_schema() -> Value {
    let sandbox = crate::scenario::schema::sandbox();
    let mut sandbox_props: Map<String, Value> = sandbox["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let url = json!({ "type": "string", "pattern": "^https?://", "format": "uri" });
    let common = |props: &mut Map<String, Value>, kind: &str| {
        props.insert("kind".into(), json!({ "const": kind }));
        props.insert(
            "description".into(),
            json!({ "type": "string", "description": "one line: what this target is" }),
        );
    };
    common(&mut sandbox_props, "sandbox");
    let mut sb = sandbox_props.clone();
    sb.insert(
        "control_url".into(),
        json!({
            "description": "the control API of a sandbox already running (`chaos sandbox up` prints it); it keeps its own settings",
            "allOf": [url.clone()]
        }),
    );
    let mut url_props = Map::new();
    common(&mut url_props, "url");
    url_props.insert(
        "base_url".into(),
        json!({ "description": "where the load goes, e.g. https://staging.example.com", "allOf": [url] }),
    );
    let mut aws = Map::new();
    common(&mut aws, "aws");
    let name = json!({ "type": "string", "minLength": 1, "pattern": "^\\S+$" });
    for (k, v) in [
        (
            "region",
            json!({ "type": "string", "pattern": "^[a-z]+(-[a-z]+)+-[0-9]+$", "description": "the AWS region, e.g. eu-west-1" }),
        ),
        (
            "account",
            json!({ "type": "string", "pattern": "^[0-9]{12}$", "description": "the account id STS GetCallerIdentity must report, or nothing runs" }),
        ),
        (
            "base_url",
            json!({ "description": "where the load goes (the load balancer's URL)", "allOf": [url.clone()] }),
        ),
        (
            "endpoint_url",
            json!({ "description": "another endpoint for every AWS service (moto, LocalStack)", "allOf": [url.clone()] }),
        ),
        (
            "opt_in_tag",
            json!({
                "type": "object", "description": "a resource without this tag is never touched",
                "properties": { "key": { "type": "string", "minLength": 1 }, "value": { "type": "string" } },
                "required": ["key", "value"], "additionalProperties": false
            }),
        ),
        (
            "max_instances",
            json!({ "type": "integer", "minimum": 1, "maximum": 10000, "description": "at most this many instances stopped or terminated at once by the run's faults together (default 10)" }),
        ),
        (
            "max_percent",
            json!({ "description": "at most this share of a role's instances stopped or terminated at once (default \"50%\")", "oneOf": [
            { "type": "string", "pattern": "^[0-9.]+ *%$" }, { "type": "number", "exclusiveMinimum": 0, "maximum": 100 } ] }),
        ),
        (
            "observe_every",
            json!({ "type": "string", "pattern": crate::scenario::schema::DURATION, "description": "how often the control plane is read during a run with faults (from one interval before the first to the end), from 1s to 1m (default 5s)" }),
        ),
        (
            "zones",
            json!({ "type": "object", "description": "scenario zone names to AZ names (default a, b, c to <region>a, b, c)",
            "additionalProperties": { "type": "string" }, "minProperties": 1 }),
        ),
        (
            "roles",
            json!({
                "type": "object", "additionalProperties": false,
                "properties": {
                    "app": { "type": "object", "additionalProperties": false, "description": "the app's instances: an auto scaling group's, or those with these tags",
                        "properties": { "asg": name.clone(), "tags": { "type": "object", "additionalProperties": { "type": "string" }, "minProperties": 1 } },
                        "oneOf": [ { "required": ["asg"] }, { "required": ["tags"] } ] },
                    "db": { "type": "object", "additionalProperties": false,
                        "properties": { "aurora_cluster": name.clone(), "rds_instance": name.clone() },
                        "oneOf": [ { "required": ["aurora_cluster"] }, { "required": ["rds_instance"] } ] },
                    "cache": { "type": "object", "additionalProperties": false,
                        "properties": { "replication_group": name.clone(),
                            "security_groups": { "type": "array", "items": name.clone(), "description": "the cache's security groups, by id (sg-…) or name; default: the replication group's own" } },
                        "required": ["replication_group"] }
                }
            }),
        ),
    ] {
        aws.insert(k.into(), v);
    }
    let mut local = Map::new();
    common(&mut local, "local");
    let addr = json!({ "type": "string", "pattern": "^(127\\.[0-9.]+|\\[::1\\]):[0-9]+$" });
    let host_port = json!({ "type": "string", "pattern": "^.+:[0-9]+$" });
    for (k, v) in [
        (
            "base_url",
            json!({ "description": "where the load goes (the stack's load balancer)", "allOf": [url.clone()] }),
        ),
        (
            "proxy_control",
            json!({ "description": "the fault proxy's control API (`chaos proxy up FILE` listens there), loopback: 127.0.0.1:PORT", "allOf": [addr.clone()] }),
        ),
        (
            "setup",
            json!({ "type": "string", "minLength": 1, "description": "how the stack is brought up (e.g. `bash ci/local-stack.sh up`): the advice shown when its fault proxy does not answer; never run by the harness" }),
        ),
        (
            "lease",
            json!({ "type": "string", "pattern": crate::scenario::schema::DURATION, "description": "how long a fault holds unless the run renews it, from 1s to 10m (default 15s): the proxy heals it by itself after" }),
        ),
        (
            "proxies",
            json!({
                "type": "object", "description": "the proxies between the stack's parts, by name",
                "propertyNames": { "pattern": "^[A-Za-z0-9_-]+$" },
                "additionalProperties": {
                    "type": "object", "additionalProperties": false, "required": ["listen", "upstream"],
                    "properties": {
                        "listen": { "description": "where the proxy listens (loopback)", "allOf": [addr] },
                        "upstream": { "description": "host:port it forwards to", "allOf": [host_port.clone()] },
                        "zone": { "type": "string" },
                        "role": { "enum": crate::target::local::ROLES },
                        "alternates": { "type": "array", "items": host_port, "description": "where switch-upstream may send new connections" }
                    }
                }
            }),
        ),
        (
            "state_dir",
            json!({ "type": "string", "minLength": 1, "description": "where the process driver keeps its lease files (default: $TMPDIR/chaos-holds)" }),
        ),
        (
            "processes",
            json!({
                "type": "object", "description": "the stack's nodes, by name: each one's processes, named by pidfiles (never by a name pattern)",
                "propertyNames": { "pattern": "^[A-Za-z0-9_-]+$" },
                "additionalProperties": {
                    "type": "object", "additionalProperties": false, "required": ["pidfiles"],
                    "properties": {
                        "pidfiles": { "type": "array", "minItems": 1, "items": { "type": "string", "minLength": 1 }, "description": "files each holding one process id on its first line (Patroni's pidfile and PostgreSQL's postmaster.pid): the node is all of them" },
                        "role": { "enum": crate::target::local::ROLES },
                        "zone": { "type": "string" },
                        "start": { "type": "string", "minLength": 1, "description": "a shell command that starts the node again (run by sh -c where the run started)" },
                        "start_timeout": { "type": "string", "pattern": crate::scenario::schema::DURATION, "description": "how long the start command may run, 100ms to 10m (default 30s)" },
                        "primary_if": { "type": "string", "minLength": 1, "description": "a shell command exiting 0 when this node is its role's primary (what db-failover and cache-failover kill)" }
                    }
                }
            }),
        ),
        (
            "lb",
            json!({
                "type": "object", "additionalProperties": false,
                "required": ["haproxy", "backend", "blue", "green"],
                "description": "the stack's haproxy, for blue/green cutovers",
                "properties": {
                    "haproxy": { "type": "string", "description": "its runtime API on loopback: `stats socket ipv4@127.0.0.1:PORT level admin` in haproxy.cfg" },
                    "backend": { "type": "string", "pattern": "^[A-Za-z0-9_.:-]+$" },
                    "blue": { "type": "array", "minItems": 1, "items": { "type": "string", "pattern": "^[A-Za-z0-9_.:-]+$" }, "description": "the backend's live servers" },
                    "green": { "type": "array", "minItems": 1, "items": { "type": "string", "pattern": "^[A-Za-z0-9_.:-]+$" }, "description": "the servers a cutover moves the requests to" }
                }
            }),
        ),
        (
            "restore",
            json!({
                "type": "object", "additionalProperties": false,
                "required": ["inject", "revert"],
                "description": "what a db-restore fault runs: the inject loses the database's data and starts its restore from the stack's newest backup, returning at once; the revert waits for the restore to end, or finishes it",
                "properties": {
                    "inject": { "type": "string", "minLength": 1 },
                    "revert": { "type": "string", "minLength": 1 },
                    "timeout": { "type": "string", "pattern": crate::scenario::schema::DURATION, "description": "each command's limit, 100ms to 10m (default 30s); then its process group is killed" }
                }
            }),
        ),
        (
            "logs",
            json!({
                "type": "object", "description": "log files of the stack's HA machinery (Patroni, Sentinel, haproxy), by name: each line written during the run that holds one of `lines` is a control-plane event",
                "propertyNames": { "pattern": "^[A-Za-z0-9_-]+$" },
                "additionalProperties": {
                    "type": "object", "additionalProperties": false, "required": ["file", "lines"],
                    "properties": {
                        "file": { "type": "string", "minLength": 1 },
                        "lines": { "type": "array", "minItems": 1, "items": { "type": "string", "minLength": 1 }, "description": "what an event's line holds (plain text, not a pattern)" }
                    }
                }
            }),
        ),
        (
            "commands",
            json!({
                "type": "object", "description": "inject/revert command pairs a scenario's `command` fault names",
                "propertyNames": { "pattern": "^[A-Za-z0-9_-]+$" },
                "additionalProperties": {
                    "type": "object", "additionalProperties": false, "required": ["inject"],
                    "properties": {
                        "inject": { "type": "string", "minLength": 1 },
                        "revert": { "type": "string", "minLength": 1 },
                        "timeout": { "type": "string", "pattern": crate::scenario::schema::DURATION, "description": "each command's limit, 100ms to 10m (default 30s); then its process group is killed" }
                    }
                }
            }),
        ),
    ] {
        local.insert(k.into(), v);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/chaos-harness/chaos/schemas/target.json",
        "title": "chaos target file",
        "description": "Where the system under test is and how faults are done on it: `chaos run SCENARIO --target FILE`",
        "type": "object",
        "required": ["kind"],
        "properties": { "kind": { "enum": KINDS } },
        "oneOf": [
            {
                "title": "sandbox: the embedded stack (started by the run, or one already running at control_url)",
                "properties": sb,
                "additionalProperties": false,
                "required": ["kind"]
            },
            {
                "title": "url: load only, no fault driver",
                "properties": url_props,
                "additionalProperties": false,
                "required": ["kind", "base_url"]
            },
            {
                "title": "aws: an AWS stack, faults through the aws driver (only on resources with the opt-in tag)",
                "properties": aws,
                "additionalProperties": false,
                "required": ["kind", "region", "account", "base_url", "opt_in_tag"]
            },
            {
                "title": "local: a stack you run, faults through the built-in fault proxy between its parts (`chaos proxy up FILE`) and on its processes",
                "properties": local,
                "additionalProperties": false,
                "required": ["kind", "base_url"],
                "dependentRequired": { "proxies": ["proxy_control"] }
            }
        ]
    })
}
