//! A check of report.json against the published schema, reports/schema/report.v1.json, by a
//! maintained JSON Schema (draft 2020-12) validator: the `jsonschema` crate, every keyword the
//! schema uses and the ones it may use later.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

/// Every way `v` breaks the schema `s`, one line each: `$.timeline.faults[0].status: "x" is
/// not one of [...]`, `$: missing `timeline``. `root` is the schema `s` is part of (its
/// `$defs` resolve `$ref`s in `s`); `at` names `v`'s place in the lines.
pub fn schema_errors(
    v: &serde_json::Value,
    s: &serde_json::Value,
    root: &serde_json::Value,
    at: &str,
) -> Vec<String> {
    let mut schema = s.clone();
    if s != root {
        if let (Some(o), Some(defs)) = (schema.as_object_mut(), root.get("$defs")) {
            o.entry("$defs").or_insert_with(|| defs.clone());
        }
    }
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("the schema itself is not valid JSON Schema: {e}"));
    validator
        .iter_errors(v)
        .map(|e| {
            let place = format!("{at}{}", pointer_to_path(&e.instance_path().to_string()));
            match e.kind() {
                jsonschema::error::ValidationErrorKind::Required { property } => format!(
                    "{place}: missing `{}`",
                    property
                        .as_str()
                        .map_or(property.to_string(), str::to_string)
                ),
                _ => format!("{place}: {e}"),
            }
        })
        .collect()
}

/// `/timeline/faults/0/status` → `.timeline.faults[0].status`.
fn pointer_to_path(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|seg| {
            let seg = seg.replace("~1", "/").replace("~0", "~");
            if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                format!("[{seg}]")
            } else {
                format!(".{seg}")
            }
        })
        .collect()
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

/// The one documented migration inside report v1: a journal plan's calls were `{method, path}`
/// (sandbox calls only) and are written driver-neutral now, `{service, operation, resource}`;
/// both read. Applied to an old report before comparing it with one written today.
pub fn typed_calls(mut v: serde_json::Value) -> serde_json::Value {
    for r in v["journal"].as_array_mut().into_iter().flatten() {
        let Some(plan) = r.get_mut("plan") else {
            continue;
        };
        for list in ["inject", "revert"] {
            for c in plan[list].as_array_mut().into_iter().flatten() {
                let (m, p) = (c["method"].clone(), c["path"].clone());
                *c = serde_json::json!({ "service": "sandbox", "operation": m, "resource": p });
            }
        }
    }
    v
}
