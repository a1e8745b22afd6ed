//! What `chaos compare` is given and which scenario each run ran: a run directory or its
//! `report.json`, and the scenario's name and content digest.
//!
//! The digest is FNV-1a (64 bit) over the canonical JSON (keys sorted) of the *parsed*
//! scenario's `load`, `faults` and `users` (only when it has users: a scenario without keeps the
//! digest it had before `[users]` existed), time-scaled as the run ran them: the traffic and
//! the fault timeline, which is what makes two runs' numbers comparable. A comment, a description, the SLOs
//! and the `[sandbox]` settings do not count — a worse sandbox under the same scenario is exactly
//! what `compare` is for. It is computed from the scenario text stored in report.json, parsed
//! by this build, so two reports written by different chaos versions still agree; the stored
//! `scenario_digest` is used only when that text is absent or no longer parses, and the stored
//! `load` and `faults` when both are missing (reports from before either was written).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::CompareError;
use crate::report::record::{self, ReportFile, ScenarioInfo};
use crate::scenario::Scenario;

/// The digest of a scenario as run (see the module doc), e.g. `fnv1a64:0f3c…`: written into
/// report.json as `scenario_digest`.
pub fn digest(s: &Scenario) -> String {
    let load = serde_json::to_value(&s.load).unwrap_or(Value::Null);
    let faults = serde_json::to_value(&s.faults).unwrap_or(Value::Null);
    let users = s.users.as_ref().and_then(|u| serde_json::to_value(u).ok());
    digest_of(&load, &faults, users.as_ref())
}

/// A scenario without users keeps the digest it had before `[users]` existed.
fn digest_of(load: &Value, faults: &Value, users: Option<&Value>) -> String {
    let mut text = String::new();
    let mut of = serde_json::json!({ "load": load, "faults": faults });
    if let Some(u) = users {
        of["users"] = u.clone();
    }
    canonical(&of, &mut text);
    // FNV-1a: stable across platforms and versions (std's hasher is neither), and enough to
    // tell scenarios apart; nobody forges a scenario to pass for another here.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

/// JSON with object keys sorted, whatever order the map kept them in.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// A run directory (holding report.json) or a report.json file itself: the path read and the
/// report, checked to be a chaos report of the layout this build reads.
pub(super) fn load(arg: &Path) -> Result<(PathBuf, ReportFile), CompareError> {
    let path = if arg.is_dir() {
        arg.join("report.json")
    } else {
        arg.to_path_buf()
    };
    let r = record::load(&path)?;
    if let [one] = r.shards.as_slice() {
        if one.count > 1 {
            return Err(CompareError::Shard {
                path,
                index: one.index,
                count: one.count,
            });
        }
    }
    Ok((path, r))
}

/// Which scenario a report's run ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub name: String,
    pub digest: String,
    pub time_scale: f64,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` ({}", self.name, self.digest)?;
        if self.time_scale != 1.0 {
            write!(f, ", --time-scale {}", self.time_scale)?;
        }
        f.write_str(")")
    }
}

/// The scenario stored in a report, parsed by this build and time-scaled as it ran; `None`
/// when the report has no text or it no longer parses.
fn stored_scenario(s: &ScenarioInfo, scale: f64) -> Option<Scenario> {
    let text = s.text.as_deref()?;
    // With the run's own `--set` overrides and numeric `${env:…}` values (as `chaos report`
    // re-reads it): `--set load.peak_rps=400` is another load than 100. Secrets are
    // `${env:…}` references in the text; their values are never part of it.
    let params = crate::scenario::Params::recorded(&s.params);
    let no_env = |_: &str| None;
    let source = s.source.as_str();
    let parsed =
        crate::scenario::parse_full(source, text, &no_env, Path::new(source).parent(), &params)
            .ok()?;
    Some(if scale == 1.0 {
        parsed
    } else {
        parsed.time_scaled(scale)
    })
}

pub(super) fn identity(r: &ReportFile) -> Identity {
    of(&r.scenario, r.scenario_digest.as_deref(), r.time_scale)
}

/// [`identity`] from its parts: the stored scenario, the stored digest, the time scale.
fn of(s: &ScenarioInfo, stored_digest: Option<&str>, time_scale: f64) -> Identity {
    let null = Value::Null;
    let digest = match (stored_scenario(s, time_scale), stored_digest) {
        (Some(parsed), _) => digest(&parsed),
        (None, Some(d)) => d.to_string(),
        (None, None) => digest_of(
            s.model.get("load").unwrap_or(&null),
            s.model.get("faults").unwrap_or(&null),
            s.model.get("users"),
        ),
    };
    Identity {
        name: s.name.clone(),
        digest,
        time_scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../scenarios/db-failover.toml");

    /// The identity of a report's fields (only those it is made of: the test reports are
    /// partial).
    fn identity(r: &Value) -> Identity {
        let s: ScenarioInfo = serde_json::from_value(r["scenario"].clone()).unwrap();
        of(
            &s,
            r["scenario_digest"].as_str(),
            r["time_scale"].as_f64().unwrap(),
        )
    }

    fn report_of(text: &str, scale: f64) -> Value {
        let s = crate::scenario::parse_str("scenarios/x.toml", text).unwrap();
        let s = if scale == 1.0 {
            s
        } else {
            s.time_scaled(scale)
        };
        serde_json::json!({
            "schema": crate::report::SCHEMA,
            "time_scale": scale,
            "scenario": s,
            "scenario_digest": digest(&s),
        })
    }

    #[test]
    fn the_digest_follows_load_and_faults_not_comments_slos_or_the_sandbox() {
        let base = identity(&report_of(SHIPPED, 0.1));
        // The digest stored at run time is the one recomputed from the text.
        assert_eq!(
            Some(base.digest.as_str()),
            report_of(SHIPPED, 0.1)["scenario_digest"].as_str()
        );
        let same = [
            format!("# a comment\n{SHIPPED}"),
            SHIPPED.replace("\"p99 < 1s\"", "\"p99 < 2s\""),
            format!("{SHIPPED}\n[sandbox]\nfailover_time = \"50s\"\n"),
        ];
        for t in &same {
            assert_eq!(identity(&report_of(t, 0.1)), base, "{t}");
        }
        let different = [
            SHIPPED.replace("peak_rps = 200", "peak_rps = 250"),
            SHIPPED.replace("at = \"30s\"", "at = \"35s\""),
        ];
        for t in &different {
            let other = identity(&report_of(t, 0.1));
            assert_eq!(other.name, base.name);
            assert_ne!(other.digest, base.digest, "{t}");
        }
        // Another time scale is another run of the load: a different digest.
        assert_ne!(identity(&report_of(SHIPPED, 1.0)).digest, base.digest);
    }

    /// The users are traffic too: another user plan, think time or journey is another run;
    /// their SLOs and comments are not.
    #[test]
    fn the_digest_follows_the_users() {
        let users = crate::scenario::builtin::get("journeys-redis-partition").unwrap();
        let base = identity(&report_of(users, 0.1));
        let same = [
            format!("# a comment\n{users}"),
            users.replace("\"failed < 10%\"", "\"failed < 5%\""),
        ];
        for t in &same {
            assert_eq!(identity(&report_of(t, 0.1)), base, "{t}");
        }
        let different = [
            users.replace("peak = 50", "peak = 60"),
            users.replace("min = \"500ms\"", "min = \"400ms\""),
            users.replace("weight = 3", "weight = 2"),
            users.replace("path = \"/notes\" }", "path = \"/notes?all\" }"),
        ];
        for t in &different {
            assert_ne!(t, users, "the replacement applies");
            assert_ne!(identity(&report_of(t, 0.1)).digest, base.digest, "{t}");
        }
        // Users beside a load are not the load alone.
        let both = format!(
            "{users}\n[load]\npeak_rps = 20\nstages = [{{ hold = \"1x\", for = \"75s\" }}]\n[[load.requests]]\nname = \"list\"\npath = \"/notes\"\n"
        );
        assert_ne!(identity(&report_of(&both, 0.1)).digest, base.digest);
    }

    /// A run's recorded `--set` overrides are part of what it ran: `--set load.peak_rps=400`
    /// is another load than the file's 200 (one equal to the file's value is not).
    #[test]
    fn recorded_overrides_count_in_the_digest() {
        let base = identity(&report_of(SHIPPED, 0.1));
        let with = |set: &str| {
            let mut r = report_of(SHIPPED, 0.1);
            r["scenario"]["params"] = serde_json::json!({ "set": [set] });
            identity(&r)
        };
        assert_ne!(with("load.peak_rps=400").digest, base.digest);
        assert_eq!(with("load.peak_rps=200").digest, base.digest);
    }

    #[test]
    fn old_reports_without_text_or_digest_still_get_one() {
        let full = report_of(SHIPPED, 0.1);
        let want = identity(&full).digest;
        // No text: the stored digest.
        let mut no_text = full.clone();
        no_text["scenario"]["text"] = Value::Null;
        assert_eq!(identity(&no_text).digest, want);
        // No text, no digest: computed from the stored load and faults, the same way.
        no_text["scenario_digest"] = Value::Null;
        assert_eq!(identity(&no_text).digest, want);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let mut a = String::new();
        canonical(
            &serde_json::json!({"b": [1, {"d": 2, "c": "x"}], "a": null}),
            &mut a,
        );
        assert_eq!(a, r#"{"a":null,"b":[1,{"c":"x","d":2}]}"#);
    }
}
