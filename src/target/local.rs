//! The `local` target kind's settings, validated (DESIGN.md "Target"): a stack you run — real
//! PostgreSQL, Redis, haproxy — reached at `base_url`, with the built-in fault proxy
//! (`chaos proxy up FILE`) between its parts: each `[proxies.NAME]` listens on one address and
//! forwards to one upstream, in a zone, in front of a role. Network faults go through the
//! proxy's control API at `proxy_control`; each is a lease of `lease` the run renews.
//! Each `[processes.NAME]` is one node of the stack — its processes named by pidfiles, never by
//! a name pattern — with a role, a zone and the command that starts it again; each
//! `[commands.NAME]` an inject/revert command pair a scenario's `command` fault names; each
//! `[logs.NAME]` a log file of the stack's own HA machinery (Patroni, Sentinel, haproxy) whose
//! lines that hold one of its `lines` become control-plane events beside the recovery; `[lb]`
//! the stack's haproxy — its runtime API and a backend's two groups of servers (blue, green) —
//! for blue/green cutovers; `[restore]` the command pair a `db-restore` fault runs (the
//! database's data lost and restored from the stack's newest backup).
//!
//! Validation only reads the file: nothing here listens or connects.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::proxy::ProxyConfig;
use crate::scenario::node::Node;
use crate::scenario::validate::{Ctx, Fields};

/// Top-level keys of `kind = "local"` (besides `kind` and `description`).
pub const LOCAL_KEYS: &[&str] = &[
    "base_url",
    "proxy_control",
    "lease",
    "state_dir",
    "proxies",
    "processes",
    "commands",
    "logs",
    "setup",
    "lb",
    "restore",
];
pub const LB_KEYS: &[&str] = &["haproxy", "backend", "blue", "green"];
pub const LOG_KEYS: &[&str] = &["file", "lines"];
pub const PROXY_KEYS: &[&str] = &["listen", "upstream", "zone", "role", "alternates"];
pub const PROCESS_KEYS: &[&str] = &[
    "pidfiles",
    "role",
    "zone",
    "start",
    "start_timeout",
    "primary_if",
];
pub const COMMAND_KEYS: &[&str] = &["inject", "revert", "timeout"];
pub const ROLES: &[&str] = &["app", "db", "cache", "lb"];

/// How long a start command, a `primary_if` probe or a command pair's command may run unless
/// the file says.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT_MAX: Duration = Duration::from_secs(600);

pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
pub const LEASE_MIN: Duration = Duration::from_secs(1);
pub const LEASE_MAX: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq)]
pub struct LocalTarget {
    /// Where the load goes.
    pub base_url: String,
    /// The fault proxy's control API (`chaos proxy up` listens there; loopback only); required
    /// when the file declares proxies.
    pub proxy_control: Option<SocketAddr>,
    /// How long a fault holds without the run renewing it.
    pub lease: Duration,
    /// Where the process driver keeps its lease files (default: `$TMPDIR/chaos-holds`).
    pub state_dir: PathBuf,
    /// By name, in name order.
    pub proxies: Vec<ProxyConfig>,
    /// By name, in name order.
    pub processes: Vec<ProcessConfig>,
    /// By name, in name order.
    pub commands: Vec<CommandConfig>,
    /// By name, in name order.
    pub logs: Vec<LogConfig>,
    /// How the stack is brought up (`setup = "bash ci/local-stack.sh up"`): shown as the
    /// advice when a part of it (the fault proxy) does not answer. Never run by the harness.
    pub setup: Option<String>,
    /// The stack's haproxy (`[lb]`), for blue/green cutovers.
    pub lb: Option<LbConfig>,
    /// How a `db-restore` is done: the inject loses the database and starts its restore from
    /// the newest backup (and returns at once: the restore runs its course); the revert waits
    /// for it to end, or finishes it, and must leave the database serving.
    pub restore: Option<CommandConfig>,
}

/// `[lb]`: the stack's haproxy, for blue/green cutovers: where its runtime API listens (a
/// `stats socket ipv4@127.0.0.1:PORT level admin`, loopback only) and which servers of which
/// backend are the live group (blue) and the new one (green).
#[derive(Debug, Clone, PartialEq)]
pub struct LbConfig {
    pub haproxy: SocketAddr,
    pub backend: String,
    pub blue: Vec<String>,
    pub green: Vec<String>,
}

/// A log file of the stack's HA machinery, and which of its lines are events (each line that
/// holds one of `lines`, written during the run, is one).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub name: String,
    pub file: PathBuf,
    pub lines: Vec<String>,
}

/// One node of a local stack: its processes, where it is, and how it comes back.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessConfig {
    pub name: String,
    /// Each file holds one process id on its first line (a daemon's pidfile, PostgreSQL's
    /// `postmaster.pid`): the node is all of them (Patroni and its postmaster).
    pub pidfiles: Vec<PathBuf>,
    pub role: Option<String>,
    pub zone: Option<String>,
    /// A shell command that starts the node again (run by `sh -c` in the directory the run
    /// started in); `None`: it cannot be restarted by the harness.
    pub start: Option<String>,
    pub start_timeout: Duration,
    /// A shell command that exits 0 when this node is its role's primary (the PostgreSQL
    /// leader, the Redis master): what db-failover and cache-failover kill.
    pub primary_if: Option<String>,
}

/// An inject/revert command pair a `command` fault names.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandConfig {
    pub name: String,
    pub inject: String,
    /// `None`: nothing to undo.
    pub revert: Option<String>,
    pub timeout: Duration,
}

impl LocalTarget {
    /// The zones the proxies and processes are in, sorted.
    pub fn zones(&self) -> Vec<String> {
        let mut z: Vec<String> = self
            .proxies
            .iter()
            .filter_map(|p| p.zone.clone())
            .chain(self.processes.iter().filter_map(|p| p.zone.clone()))
            .collect();
        z.sort();
        z.dedup();
        z
    }
}

pub(super) fn local(cx: &mut Ctx<'_>, top: &Fields<'_>) -> Option<LocalTarget> {
    let base_url = top
        .required(cx, "base_url")
        .and_then(|n| super::file::url(cx, n, "base_url"));
    let proxy_control = match top.get("proxy_control") {
        Some(n) => addr(cx, n, "proxy_control", true).map(Some),
        None => Some(None),
    };
    let setup = match top.get("setup") {
        Some(n) => non_empty(cx, n, "setup").map(Some),
        None => Some(None),
    };
    let state_dir = match top.get("state_dir") {
        Some(n) => cx.string(n, "state_dir").map(PathBuf::from),
        None => Some(std::env::temp_dir().join("chaos-holds")),
    };
    let processes = match top.get("processes") {
        Some(n) => named(cx, n, "processes", process),
        None => Some(Vec::new()),
    };
    let commands = match top.get("commands") {
        Some(n) => named(cx, n, "commands", command),
        None => Some(Vec::new()),
    };
    let logs = match top.get("logs") {
        Some(n) => named(cx, n, "logs", log),
        None => Some(Vec::new()),
    };
    let lease = match top.get("lease") {
        Some(n) => cx.duration_in(n, "lease", LEASE_MIN, LEASE_MAX),
        None => Some(DEFAULT_LEASE),
    };
    let proxies = match top.get("proxies") {
        Some(n) => named(cx, n, "proxies", proxy),
        None => Some(Vec::new()),
    };
    let lb = match top.get("lb") {
        Some(n) => lb(cx, n).map(Some),
        None => Some(None),
    };
    let restore = match top.get("restore") {
        Some(n) => restore(cx, n).map(Some),
        None => Some(None),
    };
    let (proxies, proxy_control) = (proxies?, proxy_control?);
    let Some(control) = proxy_control else {
        if !proxies.is_empty() {
            cx.err(
                &top.node.span,
                "the file declares proxies but no proxy_control",
                Some(
                    "proxy_control = \"127.0.0.1:PORT\": where `chaos proxy up FILE` serves \
                     its control API",
                ),
            );
            return None;
        }
        return Some(LocalTarget {
            base_url: base_url?,
            proxy_control: None,
            lease: lease?,
            state_dir: state_dir?,
            proxies,
            processes: processes?,
            commands: commands?,
            logs: logs?,
            setup: setup?,
            lb: lb?,
            restore: restore?,
        });
    };
    // Two listeners on one address cannot both bind; the control API is one of them.
    let mut seen: BTreeMap<SocketAddr, &str> = BTreeMap::new();
    seen.insert(control, "proxy_control");
    for p in &proxies {
        if let Some(other) = seen.insert(p.listen, &p.name) {
            if let Some(n) = top.get("proxies") {
                cx.err(
                    &n.span,
                    &format!(
                        "proxy `{}` listens on {}, as `{other}` does",
                        p.name, p.listen
                    ),
                    Some("each proxy, and proxy_control, needs an address of its own"),
                );
            }
            return None;
        }
    }
    Some(LocalTarget {
        base_url: base_url?,
        proxy_control: Some(control),
        lease: lease?,
        state_dir: state_dir?,
        proxies,
        processes: processes?,
        commands: commands?,
        logs: logs?,
        setup: setup?,
        lb: lb?,
        restore: restore?,
    })
}

/// A haproxy name (backend, server): letters, digits and `_ . : -`.
fn haproxy_name(cx: &mut Ctx<'_>, n: &Node, what: &str) -> Option<String> {
    let s = non_empty(cx, n, what)?;
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
    {
        cx.err(
            &n.span,
            &format!("{what} `{s}` is not a haproxy name"),
            Some("letters, digits and _ . : - as in haproxy.cfg"),
        );
        return None;
    }
    Some(s)
}

fn lb(cx: &mut Ctx<'_>, n: &Node) -> Option<LbConfig> {
    let t = cx.table(n, "[lb]")?;
    t.check_keys(cx, LB_KEYS, "in [lb]");
    let haproxy = t.required(cx, "haproxy").and_then(|n| {
        let s = cx.string(n, "haproxy")?;
        match s.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Some(a),
            _ => {
                cx.err(
                    &n.span,
                    &format!("haproxy: `{s}` is not a loopback address"),
                    Some(
                        "where haproxy's runtime API listens: `stats socket \
                         ipv4@127.0.0.1:PORT level admin` in haproxy.cfg, and 127.0.0.1:PORT here",
                    ),
                );
                None
            }
        }
    });
    let backend = t
        .required(cx, "backend")
        .and_then(|n| haproxy_name(cx, n, "backend"));
    let mut group = |what: &str| -> Option<Vec<String>> {
        let n = t.required(cx, what)?;
        let items = cx.array(n, what)?;
        if items.is_empty() {
            cx.err(
                &n.span,
                &format!("{what} is empty"),
                Some("the backend's server names of that group, e.g. [\"a1\", \"a2\"]"),
            );
            return None;
        }
        let mut v = Vec::new();
        for i in items {
            v.push(haproxy_name(cx, i, what)?);
        }
        Some(v)
    };
    let (blue, green) = (group("blue"), group("green"));
    let (blue, green) = (blue?, green?);
    if let Some(both) = blue.iter().find(|b| green.contains(b)) {
        if let Some(n) = t.get("green") {
            cx.err(
                &n.span,
                &format!("server `{both}` is in both groups"),
                Some("blue and green are two different sets of servers"),
            );
        }
        return None;
    }
    Some(LbConfig {
        haproxy: haproxy?,
        backend: backend?,
        blue,
        green,
    })
}

/// Something with a name, so a table of them can be sorted by it.
trait Named {
    fn name(&self) -> &str;
}
impl Named for ProxyConfig {
    fn name(&self) -> &str {
        &self.name
    }
}
impl Named for ProcessConfig {
    fn name(&self) -> &str {
        &self.name
    }
}
impl Named for CommandConfig {
    fn name(&self) -> &str {
        &self.name
    }
}
impl Named for LogConfig {
    fn name(&self) -> &str {
        &self.name
    }
}

/// `[what.NAME]` tables, each validated by `each`, in name order.
fn named<T: Named>(
    cx: &mut Ctx<'_>,
    n: &Node,
    what: &str,
    each: fn(&mut Ctx<'_>, &str, &Node) -> Option<T>,
) -> Option<Vec<T>> {
    let t = cx.table(n, what)?;
    let mut out = Vec::new();
    let mut ok = true;
    for e in t.entries {
        let name = e.key.clone();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !valid {
            cx.err(
                &e.key_span,
                &format!("name `{name}` in [{what}]: letters, digits, - and _ only"),
                None,
            );
            ok = false;
            continue;
        }
        match each(cx, &name, &e.node) {
            Some(p) => out.push(p),
            None => ok = false,
        }
    }
    out.sort_by(|a, b| a.name().cmp(b.name()));
    ok.then_some(out)
}

fn process(cx: &mut Ctx<'_>, name: &str, n: &Node) -> Option<ProcessConfig> {
    let t = cx.table(n, &format!("processes.{name}"))?;
    t.check_keys(cx, PROCESS_KEYS, &format!("in [processes.{name}]"));
    let pidfiles = t.required(cx, "pidfiles").and_then(|n| {
        let v = strings(
            cx,
            n,
            "pidfiles",
            "the node would have no process",
            "the files holding its process ids, e.g. [\"/run/stack/app1.pid\"]",
        )?;
        Some(v.into_iter().map(PathBuf::from).collect::<Vec<_>>())
    });
    let zone = match t.get("zone") {
        Some(n) => Some(cx.ident(n, "zone")?),
        None => None,
    };
    let role = match t.get("role") {
        Some(n) => Some(cx.choice(n, "role", ROLES)?),
        None => None,
    };
    let start = match t.get("start") {
        Some(n) => Some(non_empty(cx, n, "start")?),
        None => None,
    };
    let start_timeout = timeout(cx, t.get("start_timeout"), "start_timeout")?;
    let primary_if = match t.get("primary_if") {
        Some(n) => Some(non_empty(cx, n, "primary_if")?),
        None => None,
    };
    Some(ProcessConfig {
        name: name.to_string(),
        pidfiles: pidfiles?,
        role,
        zone,
        start,
        start_timeout,
        primary_if,
    })
}

fn command(cx: &mut Ctx<'_>, name: &str, n: &Node) -> Option<CommandConfig> {
    command_in(cx, name, n, &format!("commands.{name}"))
}

/// `[restore]`: a command pair whose revert is required (it must leave the database serving
/// when the run is stopped mid-restore).
fn restore(cx: &mut Ctx<'_>, n: &Node) -> Option<CommandConfig> {
    let c = command_in(cx, "restore", n, "restore")?;
    if c.revert.is_none() {
        cx.err(
            &n.span,
            "[restore] has no revert",
            Some(
                "revert = \"...\": a command that waits for the restore to end, or finishes it, \
                 so a run stopped mid-restore never leaves the data lost",
            ),
        );
        return None;
    }
    Some(c)
}

fn command_in(cx: &mut Ctx<'_>, name: &str, n: &Node, table: &str) -> Option<CommandConfig> {
    let t = cx.table(n, table)?;
    t.check_keys(cx, COMMAND_KEYS, &format!("in [{table}]"));
    let inject = t
        .required(cx, "inject")
        .and_then(|n| non_empty(cx, n, "inject"));
    let revert = match t.get("revert") {
        Some(n) => Some(non_empty(cx, n, "revert")?),
        None => None,
    };
    let timeout = timeout(cx, t.get("timeout"), "timeout")?;
    Some(CommandConfig {
        name: name.to_string(),
        inject: inject?,
        revert,
        timeout,
    })
}

fn log(cx: &mut Ctx<'_>, name: &str, n: &Node) -> Option<LogConfig> {
    let t = cx.table(n, &format!("logs.{name}"))?;
    t.check_keys(cx, LOG_KEYS, &format!("in [logs.{name}]"));
    let file = t
        .required(cx, "file")
        .and_then(|n| non_empty(cx, n, "file"))
        .map(PathBuf::from);
    let lines = t.required(cx, "lines").and_then(|n| {
        strings(
            cx,
            n,
            "lines",
            "no line of the log would be an event",
            "what the events' lines hold, e.g. [\"promoted self to leader\"]",
        )
    });
    Some(LogConfig {
        name: name.to_string(),
        file: file?,
        lines: lines?,
    })
}

fn timeout(cx: &mut Ctx<'_>, n: Option<&Node>, what: &str) -> Option<Duration> {
    match n {
        Some(n) => cx.duration_in(n, what, Duration::from_millis(100), COMMAND_TIMEOUT_MAX),
        None => Some(DEFAULT_COMMAND_TIMEOUT),
    }
}

/// A non-empty array of non-empty strings; `empty` says what an empty one would mean.
fn strings(cx: &mut Ctx<'_>, n: &Node, what: &str, empty: &str, help: &str) -> Option<Vec<String>> {
    let items = cx.array(n, what)?;
    if items.is_empty() {
        cx.err(&n.span, &format!("{what} is empty: {empty}"), Some(help));
        return None;
    }
    let mut v = Vec::new();
    for i in items {
        v.push(non_empty(cx, i, what)?);
    }
    Some(v)
}

fn non_empty(cx: &mut Ctx<'_>, n: &Node, what: &str) -> Option<String> {
    let s = cx.string(n, what)?;
    if s.trim().is_empty() {
        cx.err(&n.span, &format!("{what} is empty"), None);
        return None;
    }
    Some(s)
}

fn proxy(cx: &mut Ctx<'_>, name: &str, n: &Node) -> Option<ProxyConfig> {
    let t = cx.table(n, &format!("proxies.{name}"))?;
    t.check_keys(cx, PROXY_KEYS, &format!("in [proxies.{name}]"));
    let listen = t
        .required(cx, "listen")
        .and_then(|n| addr(cx, n, "listen", true));
    let upstream = t
        .required(cx, "upstream")
        .and_then(|n| host_port(cx, n, "upstream"));
    let zone = match t.get("zone") {
        Some(n) => Some(cx.ident(n, "zone")?),
        None => None,
    };
    let role = match t.get("role") {
        Some(n) => Some(cx.choice(n, "role", ROLES)?),
        None => None,
    };
    let alternates = match t.get("alternates") {
        Some(n) => {
            let items = cx.array(n, "alternates")?;
            let mut v = Vec::new();
            for i in items {
                v.push(host_port(cx, i, "alternates")?);
            }
            v
        }
        None => Vec::new(),
    };
    Some(ProxyConfig {
        name: name.to_string(),
        listen: listen?,
        upstream: upstream?,
        zone,
        role,
        alternates,
    })
}

/// `127.0.0.1:6380`: an address to listen on; `loopback` only for a control API or a proxy
/// (nothing here is meant to be reached from another machine).
fn addr(cx: &mut Ctx<'_>, n: &Node, what: &str, loopback: bool) -> Option<SocketAddr> {
    let s = cx.string(n, what)?;
    match s.parse::<SocketAddr>() {
        Ok(a) if loopback && !a.ip().is_loopback() => {
            cx.err(
                &n.span,
                &format!("{what} {s} is not a loopback address"),
                Some("the proxy listens on loopback only: 127.0.0.1:PORT or [::1]:PORT"),
            );
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            cx.err(
                &n.span,
                &format!("{what}: `{s}` is not an address"),
                Some("an IP and a port, like 127.0.0.1:16379"),
            );
            None
        }
    }
}

/// `host:port` (a name is resolved at each connection).
fn host_port(cx: &mut Ctx<'_>, n: &Node, what: &str) -> Option<String> {
    let s = cx.string(n, what)?;
    let ok = s
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !ok {
        cx.err(
            &n.span,
            &format!("{what}: `{s}` is not host:port"),
            Some("like 127.0.0.1:6379 or db.internal:5432"),
        );
        return None;
    }
    Some(s)
}
