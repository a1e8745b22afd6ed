//! A check of report.json against the published schema, reports/schema/report.v1.json.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

/// The subset of JSON Schema `reports/schema/report.v1.json` uses: type (one or several),
/// enum, required, properties, items, additionalProperties (as a schema), $ref to #/$defs.
pub fn schema_errors(
    v: &serde_json::Value,
    s: &serde_json::Value,
    root: &serde_json::Value,
    at: &str,
) -> Vec<String> {
    use serde_json::Value;
    let mut errs = Vec::new();
    if let Some(r) = s["$ref"].as_str() {
        let name = r.trim_start_matches("#/$defs/");
        return schema_errors(v, &root["$defs"][name], root, at);
    }
    let type_ok = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_u64() || v.is_i64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    };
    match &s["type"] {
        Value::String(t) if !type_ok(t) => errs.push(format!("{at}: expected {t}, found {v}")),
        Value::Array(ts) if !ts.iter().any(|t| type_ok(t.as_str().unwrap_or(""))) => {
            errs.push(format!("{at}: expected one of {ts:?}, found {v}"))
        }
        _ => {}
    }
    if let Some(e) = s["enum"].as_array() {
        if !e.contains(v) {
            errs.push(format!("{at}: {v} not in {e:?}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in s["required"].as_array().into_iter().flatten() {
            let k = r.as_str().unwrap();
            if !obj.contains_key(k) {
                errs.push(format!("{at}: missing `{k}`"));
            }
        }
        for (k, val) in obj {
            let sub = &s["properties"][k];
            if !sub.is_null() {
                errs.extend(schema_errors(val, sub, root, &format!("{at}.{k}")));
            } else if s["additionalProperties"].is_object() {
                errs.extend(schema_errors(
                    val,
                    &s["additionalProperties"],
                    root,
                    &format!("{at}.{k}"),
                ));
            }
        }
    }
    if let (Some(items), true) = (v.as_array(), s["items"].is_object()) {
        for (i, it) in items.iter().enumerate() {
            errs.extend(schema_errors(it, &s["items"], root, &format!("{at}[{i}]")));
        }
    }
    errs
}

pub fn assert_matches_schema(report: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/reports/schema/report.v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let errs = schema_errors(report, &schema, &schema, "$");
    assert!(
        errs.is_empty(),
        "report.json does not match its schema:\n{}",
        errs.join("\n")
    );
}
