//! The `aws` target kind's settings, validated (DESIGN.md "Target"): which account and region,
//! which resources play the scenario's roles, the opt-in tag without which nothing is touched,
//! the blast-radius caps and how scenario zone letters map to Availability Zones.
//!
//! Validation only reads the file: it never calls AWS. The aws driver
//! (`crate::drivers::aws`) checks the account (STS) when it connects and the tags and caps
//! when it plans. This file exists without the `aws` cargo feature, so a target file is
//! validated the same way by every build.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::scenario::node::{Node, V};
use crate::scenario::validate::{Ctx, Fields};

/// Top-level keys of `kind = "aws"` (besides `kind` and `description`).
pub const AWS_KEYS: &[&str] = &[
    "region",
    "account",
    "base_url",
    "opt_in_tag",
    "max_instances",
    "max_percent",
    "roles",
    "zones",
    "endpoint_url",
    "observe_every",
];
pub const ROLE_KEYS: &[&str] = &["app", "db", "cache"];
pub const APP_KEYS: &[&str] = &["asg", "tags"];
pub const DB_KEYS: &[&str] = &["aurora_cluster", "rds_instance"];
pub const CACHE_KEYS: &[&str] = &["replication_group", "security_groups"];

/// Default caps: at most this many instances, and this share of a role's, stopped or
/// terminated at once by the run's faults together.
pub const DEFAULT_MAX_INSTANCES: u32 = 10;
pub const DEFAULT_MAX_PERCENT: f64 = 50.0;
/// How often the driver reads the control plane during a run with faults (from one interval
/// before the first to the end; a round is a few describe calls), and the bounds a target
/// file may set.
pub const DEFAULT_OBSERVE_EVERY: Duration = Duration::from_secs(5);
pub const OBSERVE_EVERY_MIN: Duration = Duration::from_secs(1);
pub const OBSERVE_EVERY_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq)]
pub struct AwsTarget {
    pub region: String,
    /// The 12-digit account id STS must report, or nothing runs.
    pub account: String,
    /// Where the load goes (the load balancer's URL).
    pub base_url: String,
    /// A resource without this tag is never touched.
    pub opt_in_tag: Tag,
    /// Blast-radius caps for faults that stop or terminate instances.
    pub max_instances: u32,
    pub max_percent: f64,
    pub app: Option<AppRole>,
    pub db: Option<DbRole>,
    pub cache: Option<CacheRole>,
    /// Scenario zone letter → Availability Zone name (default a → `<region>a`, b, c).
    pub zones: BTreeMap<String, String>,
    /// Another endpoint for every service (moto, LocalStack); `None` = AWS's own.
    pub endpoint_url: Option<String>,
    /// The pause between two reads of the control plane during a run with faults.
    pub observe_every: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// The app's instances: an auto scaling group's, or those carrying all these tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppRole {
    Asg(String),
    Tags(BTreeMap<String, String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbRole {
    AuroraCluster(String),
    RdsInstance(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRole {
    pub replication_group: String,
    /// The cache's security groups (ids `sg-…`, or group names), when they are not the
    /// replication group's members' own.
    pub security_groups: Vec<String>,
}

impl AwsTarget {
    /// The AZ a scenario's zone letter means here.
    pub fn az(&self, zone: &str) -> Option<&str> {
        self.zones.get(zone).map(String::as_str)
    }
}

pub(super) fn aws(cx: &mut Ctx<'_>, top: &Fields<'_>) -> Option<AwsTarget> {
    let region = top.required(cx, "region").and_then(|n| region(cx, n));
    let account = top.required(cx, "account").and_then(|n| account(cx, n));
    let base_url = top
        .required(cx, "base_url")
        .and_then(|n| super::file::url(cx, n, "base_url"));
    let opt_in_tag = top.required(cx, "opt_in_tag").and_then(|n| tag(cx, n));
    let max_instances = match top.get("max_instances") {
        Some(n) => cx.int(n, "max_instances", 1, 10_000).map(|i| i as u32),
        None => Some(DEFAULT_MAX_INSTANCES),
    };
    let max_percent = match top.get("max_percent") {
        Some(n) => percent(cx, n),
        None => Some(DEFAULT_MAX_PERCENT),
    };
    let endpoint_url = match top.get("endpoint_url") {
        Some(n) => Some(super::file::url(cx, n, "endpoint_url")?),
        None => None,
    };
    let observe_every = match top.get("observe_every") {
        Some(n) => cx.duration_in(n, "observe_every", OBSERVE_EVERY_MIN, OBSERVE_EVERY_MAX),
        None => Some(DEFAULT_OBSERVE_EVERY),
    };
    let (app, db, cache) = match top.get("roles") {
        Some(n) => roles(cx, n)?,
        None => (None, None, None),
    };
    let region = region?;
    let zones = match top.get("zones") {
        Some(n) => zones(cx, n, &region)?,
        None => ["a", "b", "c"]
            .iter()
            .map(|z| (z.to_string(), format!("{region}{z}")))
            .collect(),
    };
    Some(AwsTarget {
        region,
        account: account?,
        base_url: base_url?,
        opt_in_tag: opt_in_tag?,
        max_instances: max_instances?,
        max_percent: max_percent?,
        app,
        db,
        cache,
        zones,
        endpoint_url,
        observe_every: observe_every?,
    })
}

fn region(cx: &mut Ctx<'_>, n: &Node) -> Option<String> {
    let s = cx.string(n, "region")?;
    // us-east-1, eu-west-1, ap-southeast-2, us-gov-west-1, cn-north-1.
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit());
    if !ok {
        cx.err(
            &n.span,
            &format!("invalid region \"{s}\""),
            Some("an AWS region name such as \"eu-west-1\" or \"us-east-1\""),
        );
        return None;
    }
    Some(s)
}

fn account(cx: &mut Ctx<'_>, n: &Node) -> Option<String> {
    // Written as a string ("012345678901": an integer would lose a leading zero).
    let s = match &n.v {
        V::Int(i) => {
            cx.err(
                &n.span,
                &format!("account: write the account id as a string, \"{i:012}\""),
                Some("a 12-digit AWS account id in quotes (an integer would lose leading zeros)"),
            );
            return None;
        }
        _ => cx.string(n, "account")?,
    };
    if s.len() != 12 || !s.chars().all(|c| c.is_ascii_digit()) {
        cx.err(
            &n.span,
            &format!("invalid account id \"{s}\""),
            Some("the 12 digits of the AWS account, e.g. \"123456789012\""),
        );
        return None;
    }
    Some(s)
}

fn tag(cx: &mut Ctx<'_>, n: &Node) -> Option<Tag> {
    let t = cx.table(n, "opt_in_tag")?;
    t.check_keys(cx, &["key", "value"], "in opt_in_tag");
    let key = t
        .required(cx, "key")
        .and_then(|n| cx.string(n, "opt_in_tag.key"));
    let value = t
        .required(cx, "value")
        .and_then(|n| cx.string(n, "opt_in_tag.value"));
    let (key, value) = (key?, value?);
    if key.is_empty() || key.starts_with("aws:") {
        cx.err(
            &n.span,
            &format!("opt_in_tag.key \"{key}\" cannot be an opt-in tag"),
            Some("a tag key of your own, e.g. { key = \"chaos\", value = \"allowed\" } (not empty, not aws:…)"),
        );
        return None;
    }
    Some(Tag { key, value })
}

fn percent(cx: &mut Ctx<'_>, n: &Node) -> Option<f64> {
    let help = "a share of a role's instances, e.g. \"50%\" (more than 0%, at most 100%)";
    let p = match &n.v {
        V::Str(s) => match s.strip_suffix('%').map(|p| p.trim().parse::<f64>()) {
            Some(Ok(p)) => p,
            _ => {
                cx.err(&n.span, &format!("invalid max_percent \"{s}\""), Some(help));
                return None;
            }
        },
        _ => cx.number(n, "max_percent")?,
    };
    if !(p > 0.0 && p <= 100.0) {
        cx.err(
            &n.span,
            &format!("max_percent {p}% is out of range"),
            Some(help),
        );
        return None;
    }
    Some(p)
}

type Roles = (Option<AppRole>, Option<DbRole>, Option<CacheRole>);

fn roles(cx: &mut Ctx<'_>, n: &Node) -> Option<Roles> {
    let t = cx.table(n, "roles")?;
    t.check_keys(cx, ROLE_KEYS, "in [roles]");
    let app = match t.get("app") {
        Some(n) => Some(app(cx, n)?),
        None => None,
    };
    let db = match t.get("db") {
        Some(n) => Some(one_of(cx, n, "roles.db", DB_KEYS)?).map(|(k, v)| match k {
            "aurora_cluster" => DbRole::AuroraCluster(v),
            _ => DbRole::RdsInstance(v),
        }),
        None => None,
    };
    let cache = match t.get("cache") {
        Some(n) => Some(cache(cx, n)?),
        None => None,
    };
    Some((app, db, cache))
}

fn app(cx: &mut Ctx<'_>, n: &Node) -> Option<AppRole> {
    let t = cx.table(n, "roles.app")?;
    t.check_keys(cx, APP_KEYS, "in [roles.app]");
    match (t.get("asg"), t.get("tags")) {
        (Some(a), None) => Some(AppRole::Asg(name(cx, a, "roles.app.asg")?)),
        (None, Some(tags)) => {
            let tt = cx.table(tags, "roles.app.tags")?;
            let mut m = BTreeMap::new();
            for e in tt.entries {
                m.insert(e.key.clone(), cx.string(&e.node, "a tag value")?);
            }
            if m.is_empty() {
                cx.err(
                    &tags.span,
                    "roles.app.tags is empty",
                    Some(
                        "at least one tag the app's instances carry, e.g. { Service = \"notes\" }",
                    ),
                );
                return None;
            }
            Some(AppRole::Tags(m))
        }
        _ => {
            cx.err(
                &n.span,
                "roles.app names its instances by exactly one of `asg` or `tags`",
                Some("asg = \"my-asg\" (the auto scaling group's name), or tags = { Service = \"notes\" }"),
            );
            None
        }
    }
}

fn cache(cx: &mut Ctx<'_>, n: &Node) -> Option<CacheRole> {
    let t = cx.table(n, "roles.cache")?;
    t.check_keys(cx, CACHE_KEYS, "in [roles.cache]");
    let rg = t
        .required(cx, "replication_group")
        .and_then(|n| name(cx, n, "roles.cache.replication_group"));
    let mut security_groups = Vec::new();
    if let Some(sgs) = t.get("security_groups") {
        for s in cx.array(sgs, "roles.cache.security_groups")? {
            let id = cx.string(s, "a security group id or name")?;
            if id.is_empty() || id.chars().any(char::is_whitespace) {
                cx.err(
                    &s.span,
                    &format!("\"{id}\" is not a security group id or name"),
                    Some("an id like \"sg-0123456789abcdef0\", or the group's name"),
                );
                return None;
            }
            security_groups.push(id);
        }
    }
    Some(CacheRole {
        replication_group: rg?,
        security_groups,
    })
}

/// Exactly one of `keys` in the table at `n`, with its name.
fn one_of(
    cx: &mut Ctx<'_>,
    n: &Node,
    what: &str,
    keys: &[&'static str],
) -> Option<(&'static str, String)> {
    let t = cx.table(n, what)?;
    t.check_keys(cx, keys, &format!("in [{what}]"));
    let set: Vec<&'static str> = keys
        .iter()
        .copied()
        .filter(|k| t.get(k).is_some())
        .collect();
    if set.len() != 1 {
        cx.err(
            &n.span,
            &format!(
                "{what} names its resource by exactly one of: {}",
                keys.join(", ")
            ),
            Some(&format!("e.g. {} = \"notes-staging\"", keys[0])),
        );
        return None;
    }
    let v = t
        .get(set[0])
        .and_then(|v| name(cx, v, &format!("{what}.{}", set[0])))?;
    Some((set[0], v))
}

/// A resource name or id: not empty, no spaces.
fn name(cx: &mut Ctx<'_>, n: &Node, what: &str) -> Option<String> {
    let s = cx.string(n, what)?;
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        cx.err(
            &n.span,
            &format!("invalid {what} \"{s}\""),
            Some("the resource's name or id, without spaces"),
        );
        return None;
    }
    Some(s)
}

fn zones(cx: &mut Ctx<'_>, n: &Node, region: &str) -> Option<BTreeMap<String, String>> {
    let t = cx.table(n, "zones")?;
    let mut m = BTreeMap::new();
    for e in t.entries {
        let az = cx.string(&e.node, "an Availability Zone")?;
        let letter_ok = !e.key.is_empty()
            && e.key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !letter_ok {
            cx.err(
                &e.key_span,
                &format!("invalid zone name \"{}\"", e.key),
                Some(
                    "a scenario's zone name: lowercase letters or digits, e.g. a = \"eu-west-1a\"",
                ),
            );
            continue;
        }
        if !az.starts_with(region) || az.len() <= region.len() {
            cx.err(
                &e.node.span,
                &format!(
                    "zone {} = \"{az}\" is not an Availability Zone of {region}",
                    e.key
                ),
                Some(&format!(
                    "an AZ name of the target's region, e.g. \"{region}a\""
                )),
            );
            continue;
        }
        if let Some((other, _)) = m.iter().find(|(_, v)| **v == az) {
            cx.err(
                &e.node.span,
                &format!("zones {other} and {} both map to {az}", e.key),
                Some("one scenario zone per Availability Zone"),
            );
            continue;
        }
        m.insert(e.key.clone(), az);
    }
    if m.is_empty() {
        cx.err(
            &n.span,
            "[zones] is empty",
            Some("scenario zone names mapped to AZs, e.g. a = \"eu-west-1a\""),
        );
        return None;
    }
    Some(m)
}
