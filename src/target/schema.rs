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
            }
        ]
    })
}
