//! The process driver: faults on the processes of a `local` target, each node named in the
//! target file by its pidfiles ([`crate::target::local::ProcessConfig`]), never by a name
//! pattern:
//! - `kill-nodes`: SIGKILL every process of the picked nodes; the revert runs each node's
//!   `start` command (unless the scenario says `restart = false`: the system heals by itself);
//! - `freeze`: SIGSTOP to the node's processes and every descendant of theirs (a VM freeze: a
//!   PostgreSQL backend stops with its postmaster), then SIGCONT on revert;
//! - `db-failover` / `cache-failover`: the node of the role whose `primary_if` command exits 0
//!   at inject time is killed (its HA machinery — Patroni, Sentinel — must promote another),
//!   then started again on revert to rejoin;
//! - `command`: a `[commands.NAME]` pair's inject command, then its revert command, each with a
//!   timeout; the inject's output goes into the journal with the undo data.
//!
//! Every fault with something to heal is a lease ([`os::LeaseFile`]): a guardian process,
//! detached from the run, runs the heal (start, SIGCONT, the revert command) when the run stops
//! renewing it — a run killed with SIGKILL leaves nothing frozen or down for longer than the
//! lease. Undo data is self-contained (pidfiles, commands, the directory they run in), so
//! `chaos rollback` in another process reverts with it alone.
//!
//! It must never signal a process that is not, at that moment, the one a declared pidfile
//! names ([`os::read_pidfile`]) or, for a freeze, a descendant of one by its parent links
//! ([`os::descendants`]).

pub mod os;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fault::{Call, DriverError, FaultPlan, Undo};
use crate::scenario::{Count, Fault, FaultKind, Role};
use crate::target::local::{LocalTarget, ProcessConfig};
use os::{LeaseFile, Proc};

/// One node as the undo data keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRef {
    pub name: String,
    pub pidfiles: Vec<PathBuf>,
    pub start: Option<String>,
    pub start_timeout_ms: u64,
    pub primary_if: Option<String>,
}

impl NodeRef {
    fn of(p: &ProcessConfig) -> NodeRef {
        NodeRef {
            name: p.name.clone(),
            pidfiles: p.pidfiles.clone(),
            start: p.start.clone(),
            start_timeout_ms: p.start_timeout.as_millis() as u64,
            primary_if: p.primary_if.clone(),
        }
    }

    /// Its processes now, each checked; `Err` names the first that is not running.
    fn procs(&self) -> Result<Vec<Proc>, String> {
        self.pidfiles
            .iter()
            .map(|f| os::read_pidfile(f).map_err(|e| format!("node {}: {e}", self.name)))
            .collect()
    }

    fn live(&self) -> bool {
        self.procs().is_ok()
    }
}

/// What a fault does, as planned.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Action {
    Kill {
        nodes: Vec<NodeRef>,
        restart: bool,
    },
    /// The one of `nodes` that is the primary at inject time.
    KillPrimary {
        role: String,
        nodes: Vec<NodeRef>,
    },
    Freeze {
        nodes: Vec<NodeRef>,
    },
    Command {
        name: String,
        inject: String,
        revert: Option<String>,
        timeout_ms: u64,
    },
}

/// The process driver's plan data and undo data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessUndo {
    /// Always `"process"` (see `target::driver_for_undo`).
    pub driver: String,
    /// The holder: `<run id>:<fault>`.
    pub by: String,
    pub lease_ms: u64,
    pub state_dir: PathBuf,
    /// Where commands run (the directory the run started in).
    pub cwd: PathBuf,
    pub action: Action,
    /// The processes the inject signalled, by node (empty in a plan).
    #[serde(default)]
    pub signalled: Vec<(String, Vec<Proc>)>,
    /// Whether the inject took a lease (there was something to heal).
    #[serde(default)]
    pub leased: bool,
    /// The inject command's output (a `command` fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

impl ProcessUndo {
    fn of(v: &Value) -> Result<ProcessUndo, DriverError> {
        serde_json::from_value(v.clone()).map_err(|e| {
            DriverError::Permanent(format!("bad undo data for the process driver: {e}"))
        })
    }

    fn lease(&self) -> LeaseFile {
        LeaseFile::new(&self.state_dir, &self.by)
    }

    fn scratch(&self) -> PathBuf {
        self.state_dir.join("out")
    }
}

/// (at, end, node names) of one planned fault on nodes.
type Picked = (Duration, Option<Duration>, Vec<String>);

pub struct ProcessDriver {
    spec: Option<LocalTarget>,
    run_id: String,
    cwd: PathBuf,
    picked: std::sync::Mutex<Vec<Picked>>,
    /// How long a revert is retried: twice the slowest start or revert command it may run.
    deadline: Duration,
}

/// Twice the longest of `timeouts`, plus 5 s, at most 20 min.
fn deadline_of(timeouts: impl Iterator<Item = Duration>) -> Duration {
    (timeouts.max().unwrap_or(Duration::ZERO) * 2 + Duration::from_secs(5))
        .min(Duration::from_secs(1200))
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::App => "app",
        Role::Db => "db",
        Role::Cache => "cache",
        Role::Lb => "lb",
    }
}

impl ProcessDriver {
    pub fn new(l: &LocalTarget, run_id: &str) -> ProcessDriver {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        // Paths are made absolute once, here: undo data names the same files wherever
        // `chaos rollback` runs.
        let mut spec = l.clone();
        spec.state_dir = cwd.join(&spec.state_dir);
        for p in &mut spec.processes {
            for f in &mut p.pidfiles {
                *f = cwd.join(&*f);
            }
        }
        let deadline = deadline_of(
            spec.processes
                .iter()
                .map(|p| p.start_timeout)
                .chain(spec.commands.iter().map(|c| c.timeout))
                .chain(spec.restore.iter().map(|c| c.timeout))
                .chain(spec.lb.iter().map(|_| super::haproxy::COMMAND_TIMEOUT)),
        );
        ProcessDriver {
            spec: Some(spec),
            run_id: run_id.to_string(),
            cwd,
            picked: std::sync::Mutex::new(Vec::new()),
            deadline,
        }
    }

    pub fn from_undo(undo: &Undo) -> Option<ProcessDriver> {
        let u = ProcessUndo::of(undo).ok()?;
        let ms = |m: u64| Duration::from_millis(m);
        let timeouts: Vec<Duration> = match &u.action {
            Action::Kill { nodes, .. }
            | Action::KillPrimary { nodes, .. }
            | Action::Freeze { nodes } => nodes.iter().map(|n| ms(n.start_timeout_ms)).collect(),
            Action::Command { timeout_ms, .. } => vec![ms(*timeout_ms)],
        };
        (u.driver == "process").then(|| ProcessDriver {
            spec: None,
            run_id: String::new(),
            cwd: u.cwd,
            picked: std::sync::Mutex::new(Vec::new()),
            deadline: deadline_of(timeouts.into_iter()),
        })
    }

    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    fn spec(&self) -> Result<&LocalTarget, DriverError> {
        self.spec.as_ref().ok_or_else(|| {
            DriverError::Permanent("this process driver was rebuilt to revert only".into())
        })
    }

    /// Node names picked by planned faults whose time overlaps `f`'s.
    fn picked_during(&self, f: &Fault) -> Vec<String> {
        let end = f.duration.map(|d| f.at + d);
        let overlaps = |a: Duration, b: Option<Duration>| {
            b.is_none_or(|b| b > f.at) && end.is_none_or(|e| e > a)
        };
        self.picked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(a, b, _)| overlaps(*a, *b))
            .flat_map(|(_, _, n)| n.clone())
            .collect()
    }

    /// `count` nodes of `role` (in `zone`): ones no overlapping fault picked first, in name
    /// order, then the others.
    fn pick(
        &self,
        f: &Fault,
        role: Role,
        count: &Count,
        zone: Option<&str>,
    ) -> Result<Vec<NodeRef>, DriverError> {
        let s = self.spec()?;
        let r = role_name(role);
        let pool: Vec<&ProcessConfig> = s
            .processes
            .iter()
            .filter(|p| p.role.as_deref() == Some(r))
            .filter(|p| zone.is_none_or(|z| p.zone.as_deref() == Some(z)))
            .collect();
        let where_ = zone.map(|z| format!(" in zone {z}")).unwrap_or_default();
        if pool.is_empty() {
            return Err(DriverError::Unsupported(format!(
                "fault `{}`: the target declares no process of role `{r}`{where_} \
                 ([processes.NAME] with role = \"{r}\")",
                f.name
            )));
        }
        let n = match count {
            Count::Nodes(n) => *n as usize,
            Count::Percent(p) => ((p / 100.0 * pool.len() as f64).ceil() as usize).max(1),
        };
        if n > pool.len() {
            return Err(DriverError::Unsupported(format!(
                "fault `{}`: {n} nodes of role `{r}`{where_}, but the target declares {}",
                f.name,
                pool.len()
            )));
        }
        let taken = self.picked_during(f);
        let mut order: Vec<&ProcessConfig> = pool
            .iter()
            .copied()
            .filter(|p| !taken.contains(&p.name))
            .collect();
        order.extend(pool.iter().copied().filter(|p| taken.contains(&p.name)));
        order.truncate(n);
        self.picked.lock().unwrap_or_else(|p| p.into_inner()).push((
            f.at,
            f.duration.map(|d| f.at + d),
            order.iter().map(|p| p.name.clone()).collect(),
        ));
        Ok(order.into_iter().map(NodeRef::of).collect())
    }

    /// The action for `f`, and what the plan shows of it.
    fn action(&self, f: &Fault) -> Result<(Action, Vec<String>), DriverError> {
        let s = self.spec()?;
        let unsupported =
            |why: String| DriverError::Unsupported(format!("fault `{}`: {why}", f.name));
        Ok(match &f.kind {
            FaultKind::KillNodes {
                role,
                count,
                zone,
                restart,
                ..
            } => {
                let nodes = self.pick(f, *role, count, zone.as_deref())?;
                if *restart {
                    if let Some(n) = nodes.iter().find(|n| n.start.is_none()) {
                        return Err(unsupported(format!(
                            "node {} has no start command to bring it back: add `start = \
                             \"…\"` to [processes.{}], or `restart = false` to the fault",
                            n.name, n.name
                        )));
                    }
                }
                let t = nodes
                    .iter()
                    .map(|n| {
                        let then = if *restart {
                            "started again on revert"
                        } else {
                            "not restarted: the system must heal by itself"
                        };
                        format!("node {} (SIGKILL; {then})", n.name)
                    })
                    .collect();
                (
                    Action::Kill {
                        nodes,
                        restart: *restart,
                    },
                    t,
                )
            }
            FaultKind::Freeze { role, count, zone } => {
                let nodes = self.pick(f, *role, count, zone.as_deref())?;
                let t = nodes
                    .iter()
                    .map(|n| format!("node {} (SIGSTOP; SIGCONT on revert)", n.name))
                    .collect();
                (Action::Freeze { nodes }, t)
            }
            FaultKind::DbFailover {} | FaultKind::CacheFailover {} => {
                let role = if matches!(f.kind, FaultKind::DbFailover {}) {
                    "db"
                } else {
                    "cache"
                };
                let nodes: Vec<NodeRef> = s
                    .processes
                    .iter()
                    .filter(|p| p.role.as_deref() == Some(role) && p.primary_if.is_some())
                    .map(NodeRef::of)
                    .collect();
                if nodes.is_empty() {
                    return Err(unsupported(format!(
                        "no process of role `{role}` has `primary_if` (a command exiting 0 on \
                         the primary): the driver cannot tell which node to kill"
                    )));
                }
                let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                let t = vec![format!(
                    "the {role} primary at inject time, by primary_if, of {} (SIGKILL: its HA \
                     must promote another; started again on revert)",
                    names.join(", ")
                )];
                (
                    Action::KillPrimary {
                        role: role.into(),
                        nodes,
                    },
                    t,
                )
            }
            FaultKind::Command { command } => {
                let c = s
                    .commands
                    .iter()
                    .find(|c| &c.name == command)
                    .ok_or_else(|| {
                        let known: Vec<&str> = s.commands.iter().map(|c| c.name.as_str()).collect();
                        unsupported(format!(
                            "the target declares no command `{command}` ([commands.{command}]); \
                         its commands: {}",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ))
                    })?;
                let t = vec![format!(
                    "command {} (inject, then {})",
                    c.name,
                    if c.revert.is_some() {
                        "its revert command"
                    } else {
                        "nothing to revert"
                    }
                )];
                (
                    Action::Command {
                        name: c.name.clone(),
                        inject: c.inject.clone(),
                        revert: c.revert.clone(),
                        timeout_ms: c.timeout.as_millis() as u64,
                    },
                    t,
                )
            }
            other => {
                return Err(unsupported(format!(
                    "the process driver does kill-nodes, freeze, db-failover, cache-failover \
                     and command, not `{}`",
                    other.name()
                )))
            }
        })
    }

    /// A plan for `action` (the local driver plans an az-outage's freeze with it).
    pub fn plan_action(&self, f: &Fault, action: Action, targets: Vec<String>) -> FaultPlan {
        let lease_ms = self
            .spec
            .as_ref()
            .map_or(15_000, |s| s.lease.as_millis() as u64);
        let state_dir = self
            .spec
            .as_ref()
            .map_or_else(std::env::temp_dir, |s| s.state_dir.clone());
        let call = |op: &str, what: &str, args: &[(&str, String)]| Call {
            service: "process".into(),
            operation: op.into(),
            resource: what.into(),
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        };
        let nodes_calls = |nodes: &[NodeRef], op: &str| -> Vec<Call> {
            nodes
                .iter()
                .map(|n| {
                    let files: Vec<String> =
                        n.pidfiles.iter().map(|p| p.display().to_string()).collect();
                    call(op, &n.name, &[("pidfiles", files.join(","))])
                })
                .collect()
        };
        let start_calls = |nodes: &[NodeRef]| -> Vec<Call> {
            nodes
                .iter()
                .filter_map(|n| {
                    n.start
                        .as_ref()
                        .map(|s| call("start", &n.name, &[("run", s.clone())]))
                })
                .collect()
        };
        let (inject, revert) = match &action {
            Action::Kill { nodes, restart } => (
                nodes_calls(nodes, "SIGKILL"),
                if *restart {
                    start_calls(nodes)
                } else {
                    Vec::new()
                },
            ),
            Action::KillPrimary { role, nodes } => (
                vec![call("SIGKILL", &format!("{role} primary"), &[])],
                start_calls(nodes),
            ),
            Action::Freeze { nodes } => {
                (nodes_calls(nodes, "SIGSTOP"), nodes_calls(nodes, "SIGCONT"))
            }
            Action::Command {
                name,
                inject,
                revert,
                ..
            } => (
                vec![call("inject", name, &[("run", inject.clone())])],
                revert
                    .iter()
                    .map(|r| call("revert", name, &[("run", r.clone())]))
                    .collect(),
            ),
        };
        let undo = ProcessUndo {
            driver: "process".into(),
            by: format!("{}:{}", self.run_id, f.name),
            lease_ms,
            state_dir,
            cwd: self.cwd.clone(),
            action,
            signalled: Vec::new(),
            leased: false,
            output: None,
        };
        FaultPlan {
            fault: f.name.clone(),
            kind: f.kind.name().to_string(),
            targets,
            inject,
            revert,
            check: serde_json::to_value(undo).unwrap_or(Value::Null),
        }
    }

    /// A file of fault `f`'s own in the state directory (`what`: its suffix), e.g. where a
    /// cutover's stepper keeps its pid between the inject and the revert.
    pub fn hold_path(&self, f: &Fault, what: &str) -> PathBuf {
        let state_dir = self
            .spec
            .as_ref()
            .map_or_else(std::env::temp_dir, |s| s.state_dir.clone());
        let safe = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        state_dir.join(format!("{}-{}.{what}", safe(&self.run_id), safe(&f.name)))
    }

    /// The nodes of the target, for an az-outage's freeze.
    pub fn nodes_in_zone(&self, zone: &str, roles: &[&str]) -> Vec<NodeRef> {
        self.spec
            .iter()
            .flat_map(|s| &s.processes)
            .filter(|p| p.zone.as_deref() == Some(zone))
            .filter(|p| p.role.as_deref().is_some_and(|r| roles.contains(&r)))
            .map(NodeRef::of)
            .collect()
    }
}

mod steps;
