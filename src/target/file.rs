//! Target files validated like scenarios: every problem in the file, each at file:line:col with
//! the line and what would be accepted (the scenario's diagnostics machinery, reused). The
//! keys each kind accepts are the constants below, which the JSON Schema is tested against.

use super::{Kind, TargetFile};
use crate::scenario::node::Node;
use crate::scenario::validate::keys::SANDBOX;
use crate::scenario::validate::{sandbox::settings, Ctx, Fields};
use crate::scenario::Diagnostics;

pub const KINDS: &[&str] = &["sandbox", "url", "aws", "local"];
/// Keys of every kind.
pub const COMMON: &[&str] = &["kind", "description"];
/// Keys of `kind = "sandbox"` besides its settings ([`SANDBOX`], the scenario's `[sandbox]` keys).
pub const SANDBOX_KEYS: &[&str] = &["control_url"];
pub const URL_KEYS: &[&str] = &["base_url"];

/// Every key a `kind` accepts at the top level.
pub fn keys_of(kind: &str) -> Vec<&'static str> {
    let mut k: Vec<&str> = COMMON.to_vec();
    match kind {
        "sandbox" => {
            k.extend(SANDBOX_KEYS);
            k.extend(SANDBOX);
        }
        "aws" => k.extend(super::aws::AWS_KEYS),
        "local" => k.extend(super::local::LOCAL_KEYS),
        _ => k.extend(URL_KEYS),
    }
    k
}

pub(super) fn parse(file: &str, bytes: &[u8], name: &str) -> Result<TargetFile, Diagnostics> {
    let (mut t, warnings) = crate::scenario::parse_doc(file, bytes, target)?;
    t.name = name.to_string();
    t.source = file.to_string();
    t.origin = super::Origin::File;
    t.warnings = warnings;
    Ok(t)
}

fn target(cx: &mut Ctx<'_>, root: &Node) -> Option<TargetFile> {
    let top = cx.table(root, "the target file")?;
    let kind = top
        .required(cx, "kind")
        .and_then(|n| cx.choice(n, "target kind", KINDS));
    let description = match top.get("description") {
        Some(n) => cx.string(n, "description").unwrap_or_default(),
        None => String::new(),
    };
    let kind = kind?;
    let allowed = keys_of(&kind);
    let place = format!("in a target of kind \"{kind}\"");
    for e in top.entries {
        if allowed.contains(&e.key.as_str()) {
            continue;
        }
        // A key of the other kind: say whose it is rather than "did you mean".
        let other = KINDS
            .iter()
            .find(|k| **k != kind && keys_of(k).contains(&e.key.as_str()));
        match other {
            Some(o) => cx.err(
                &e.key_span,
                &format!("`{}` is a setting of kind \"{o}\", not \"{kind}\"", e.key),
                Some(&format!("accepted keys {place}: {}", allowed.join(", "))),
            ),
            None => cx.unknown_key(e, &allowed, &place),
        }
    }
    let kind = match kind.as_str() {
        "sandbox" => sandbox(cx, &top),
        "aws" => super::aws::aws(cx, &top).map(|a| Kind::Aws(Box::new(a))),
        "local" => super::local::local(cx, &top).map(|l| Kind::Local(Box::new(l))),
        _ => {
            let base_url = top
                .required(cx, "base_url")
                .and_then(|n| url(cx, n, "base_url"))?;
            Some(Kind::Url { base_url })
        }
    }?;
    Some(TargetFile {
        name: String::new(),
        source: String::new(),
        origin: super::Origin::File,
        description,
        kind,
        warnings: Vec::new(),
    })
}

fn sandbox(cx: &mut Ctx<'_>, top: &Fields<'_>) -> Option<Kind> {
    let settings = settings(cx, top);
    let control_url = match top.get("control_url") {
        Some(n) => Some(url(cx, n, "control_url")?),
        None => None,
    };
    if let Some(n) = top.get("control_url") {
        // A sandbox already running keeps the settings it was started with: settings here
        // would silently not apply.
        let set: Vec<&str> = top
            .entries
            .iter()
            .map(|e| e.key.as_str())
            .filter(|k| SANDBOX.contains(k))
            .collect();
        if !set.is_empty() {
            cx.err(
                &n.span,
                &format!(
                    "a sandbox already running (control_url) keeps the settings it was started \
                     with; these would not apply: {}",
                    set.join(", ")
                ),
                Some(
                    "give the settings to the sandbox where it starts (`chaos sandbox up --target \
                     FILE`), or drop control_url to have the run start one with them",
                ),
            );
        }
    }
    Some(Kind::Sandbox {
        control_url,
        settings: Box::new(settings),
    })
}

/// An http(s) URL the load engine (or the control client) can use.
pub(super) fn url(cx: &mut Ctx<'_>, n: &Node, what: &str) -> Option<String> {
    let s = cx.string(n, what)?;
    match crate::load::engine::check_url(&s) {
        Ok(u) => Some(u),
        Err(e) => {
            cx.err(
                &n.span,
                &format!("{what}: {e}"),
                Some("a URL like http://127.0.0.1:8080 or https://staging.example.com"),
            );
            None
        }
    }
}
