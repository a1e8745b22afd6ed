//! The process driver's steps ([`Driver`]): inject, confirm, revert, renew and observe, on the
//! plan data [`super::ProcessDriver::plan_action`] wrote.

use std::time::Duration;

use super::os::{self, Holder, Proc};
use super::{Action, NodeRef, ProcessDriver, ProcessUndo};
use crate::fault::{BoxFut, Driver, DriverError, FaultPlan, Planned, Snapshot, Undo};
use crate::scenario::Fault;

/// How long one `primary_if` probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a freeze looks again for children forked before their parent stopped.
const FREEZE_SCANS: usize = 10;

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl ProcessUndo {
    /// What the guardian runs if the lease runs out, and how long it may take.
    fn heal(&self, nodes: &[NodeRef], procs: &[Proc]) -> Option<(String, Duration)> {
        match &self.action {
            Action::Kill { restart: false, .. } => None,
            // Each node's start command, unless a revert the guardian took over had started
            // it already (its notes, carried into `.expired`): never started twice.
            Action::Kill { .. } | Action::KillPrimary { .. } => {
                let notes = sh_quote(&self.lease().expired().display().to_string());
                let starts: Vec<String> = nodes
                    .iter()
                    .filter_map(|n| {
                        n.start.as_ref().map(|s| {
                            format!(
                                "{{ grep -qxF {} {notes} 2>/dev/null || sh -c {}; }}",
                                sh_quote(&n.name),
                                sh_quote(s)
                            )
                        })
                    })
                    .collect();
                let t = nodes.iter().map(|n| n.start_timeout_ms).sum::<u64>();
                (!starts.is_empty()).then(|| (starts.join("; "), Duration::from_millis(t)))
            }
            // Each pid the freeze stopped, listed with its start time in its pids file
            // (children found late too): continued one by one while it is still that process
            // (the start time after the last `) ` of /proc/PID/stat, its 20th field there);
            // one gone meanwhile, or whose pid another process now has, is skipped — not a
            // failed heal, and no signal to a stranger.
            Action::Freeze { .. } => (!procs.is_empty()).then(|| {
                let f = sh_quote(&self.lease().pids().display().to_string());
                (
                    format!(
                        "while read -r p s; do \
                         now=$(sed 's/.*) //' /proc/\"$p\"/stat 2>/dev/null | cut -d' ' -f20); \
                         [ -n \"$p\" ] && [ \"$now\" = \"$s\" ] || continue; \
                         kill -CONT \"$p\" 2>/dev/null || ! kill -0 \"$p\" 2>/dev/null || exit 1; \
                         done < {f}; rm -f {f}"
                    ),
                    Duration::from_secs(5),
                )
            }),
            Action::Command {
                revert, timeout_ms, ..
            } => revert
                .as_ref()
                .map(|r| (r.clone(), Duration::from_millis(*timeout_ms))),
        }
    }

    /// Take the lease for what `nodes`/`procs` need healed, before anything is done to them.
    fn take_lease(&mut self, nodes: &[NodeRef], procs: &[Proc]) -> Result<(), DriverError> {
        if let Some((heal, t)) = self.heal(nodes, procs) {
            self.lease()
                .take(Duration::from_millis(self.lease_ms), &heal, t, &self.cwd)
                .map_err(DriverError::Permanent)?;
            self.leased = true;
        }
        Ok(())
    }

    async fn run(&self, what: &str, cmd: &str, timeout: Duration) -> Result<os::Ran, DriverError> {
        let group = self.leased.then(|| self.lease().command_group());
        let r = os::sh(cmd, &self.cwd, &self.scratch(), timeout, group.as_deref())
            .await
            .map_err(|e| DriverError::Permanent(format!("{what}: {e}")))?;
        if !r.ok() {
            let code = r
                .code
                .map_or("a signal".to_string(), |c| format!("exit {c}"));
            return Err(DriverError::Permanent(format!(
                "{what} `{cmd}` failed ({code}){}",
                if r.output.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.output)
                }
            )));
        }
        Ok(r)
    }

    /// The primary among `nodes`, by their `primary_if` commands, run at once.
    async fn primary(&self, role: &str, nodes: &[NodeRef]) -> Result<NodeRef, DriverError> {
        let probes = nodes.iter().map(|n| async move {
            let cmd = n.primary_if.as_deref().unwrap_or("false");
            let r = os::sh(cmd, &self.cwd, &self.scratch(), PROBE_TIMEOUT, None).await;
            (n, matches!(r, Ok(r) if r.ok()))
        });
        let said: Vec<&NodeRef> = futures_util::future::join_all(probes)
            .await
            .into_iter()
            .filter_map(|(n, yes)| yes.then_some(n))
            .collect();
        match said.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(DriverError::Permanent(format!(
                "no {role} node says it is the primary (primary_if): nothing killed"
            ))),
            many => Err(DriverError::Permanent(format!(
                "{} {role} nodes say they are the primary ({}): nothing killed",
                many.len(),
                many.iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Signal every process of `nodes` with `sig`, after the lease is taken. A freeze stops
    /// their descendants too, each listed in the lease's pids file before it is signalled (so
    /// the guardian continues every one), scanning again until no child forked before its
    /// parent stopped is left running.
    fn signal_nodes(&mut self, nodes: &[NodeRef], sig: os::Signal) -> Result<(), DriverError> {
        let freeze = sig == os::Signal::STOP;
        let mut all = Vec::new();
        for n in nodes {
            let mut procs = n.procs().map_err(DriverError::Permanent)?;
            if freeze {
                let children = os::descendants(&procs);
                procs.extend(children);
            }
            all.push((n.name.clone(), procs));
        }
        let flat: Vec<Proc> = all.iter().flat_map(|(_, p)| p.clone()).collect();
        if freeze {
            self.lease()
                .add_pids(&flat)
                .map_err(DriverError::Permanent)?;
        }
        self.take_lease(nodes, &flat)?;
        // Recorded before signalling: a revert after a failure halfway knows them all.
        self.signalled = all;
        for p in &flat {
            os::signal(p, sig).map_err(DriverError::Permanent)?;
        }
        // Children forked before their parent stopped: stopped too, until a scan finds none
        // new (bounded), each listed for the guardian before it is signalled.
        for _ in 0..FREEZE_SCANS {
            if !freeze {
                break;
            }
            let mut found = false;
            let lease = self.lease();
            for (_, procs) in &mut self.signalled {
                let late = os::descendants(procs);
                if late.is_empty() {
                    continue;
                }
                found = true;
                lease.add_pids(&late).map_err(DriverError::Permanent)?;
                for p in &late {
                    os::signal(p, sig).map_err(DriverError::Permanent)?;
                }
                procs.extend(late);
            }
            if !found {
                break;
            }
        }
        Ok(())
    }

    /// The nodes a kill's revert starts again.
    fn killed_nodes(&self) -> Vec<NodeRef> {
        match &self.action {
            Action::Kill { nodes, .. } => nodes.clone(),
            Action::KillPrimary { nodes, .. } if !self.signalled.is_empty() => nodes
                .iter()
                .filter(|n| self.signalled.iter().any(|(s, _)| s == &n.name))
                .cloned()
                .collect(),
            Action::KillPrimary { nodes, .. } => nodes.clone(),
            _ => Vec::new(),
        }
    }
}

impl Driver for ProcessDriver {
    fn name(&self) -> &'static str {
        "process"
    }

    fn plan<'a>(&'a self, f: &'a Fault) -> BoxFut<'a, Result<FaultPlan, DriverError>> {
        Box::pin(async move {
            let (action, targets) = self.action(f)?;
            Ok(self.plan_action(f, action, targets))
        })
    }

    fn inject<'a>(&'a self, p: &'a FaultPlan) -> BoxFut<'a, Result<Undo, DriverError>> {
        Box::pin(async move {
            let mut u = ProcessUndo::of(&p.check)?;
            match u.action.clone() {
                Action::Kill { nodes, .. } => u.signal_nodes(&nodes, os::Signal::KILL)?,
                Action::KillPrimary { role, nodes } => {
                    let primary = u.primary(&role, &nodes).await?;
                    u.signal_nodes(&[primary], os::Signal::KILL)?;
                }
                Action::Freeze { nodes } => u.signal_nodes(&nodes, os::Signal::STOP)?,
                Action::Command {
                    inject, timeout_ms, ..
                } => {
                    u.take_lease(&[], &[])?;
                    let r = u
                        .run(
                            "the inject command",
                            &inject,
                            Duration::from_millis(timeout_ms),
                        )
                        .await?;
                    u.output = Some(r.output);
                }
            }
            Ok(serde_json::to_value(&u).unwrap_or_default())
        })
    }

    fn confirm<'a>(
        &'a self,
        _p: &'a FaultPlan,
        undo: &'a Undo,
    ) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let u = ProcessUndo::of(undo)?;
            let want_stopped = matches!(u.action, Action::Freeze { .. });
            for (node, procs) in &u.signalled {
                for p in procs {
                    // A frozen node's child may have exited on its own meanwhile.
                    let shows = if want_stopped {
                        os::stopped(p) || (p.child && !os::alive(p))
                    } else {
                        !os::alive(p)
                    };
                    if !shows {
                        return Err(DriverError::retryable(format!(
                            "node {node}: pid {} is not {} yet",
                            p.pid,
                            if want_stopped { "stopped" } else { "gone" }
                        )));
                    }
                }
            }
            Ok(())
        })
    }

    fn revert<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let u = ProcessUndo::of(undo)?;
            let lease = u.lease();
            let holder = lease.claim();
            if holder == Holder::Guardian {
                return Err(DriverError::retryable(
                    "its lease ran out and the lease guardian is healing it now",
                ));
            }
            // A fault with something to heal takes its lease before it does anything: no lease
            // on disk means nothing was done (an inject that failed first), or its guardian
            // healed it already. Either way nothing is touched now — no node started that the
            // fault never killed, no SIGCONT to a process another fault stopped.
            if holder == Holder::Nobody && u.heal(&u.killed_nodes(), &[]).is_some() {
                return Err(DriverError::AlreadyReverted);
            }
            if holder == Holder::Nobody && matches!(u.action, Action::Freeze { .. }) {
                return Err(DriverError::AlreadyReverted);
            }
            match &u.action {
                Action::Kill { restart: false, .. } => {}
                Action::Kill { .. } | Action::KillPrimary { .. } => {
                    let done = lease.notes();
                    for n in u.killed_nodes() {
                        let Some(start) = &n.start else { continue };
                        if n.live() || done.contains(&n.name) {
                            continue;
                        }
                        let r = u
                            .run(
                                &format!("node {}: the start command", n.name),
                                start,
                                Duration::from_millis(n.start_timeout_ms),
                            )
                            .await
                            .map_err(|e| DriverError::retryable(e.to_string()))?;
                        // Never started twice: a later try skips it.
                        lease.note(&n.name);
                        if !r.output.is_empty() {
                            tracing::info!("node {} start: {}", n.name, r.output);
                        }
                    }
                }
                Action::Freeze { nodes } => {
                    let mut procs: Vec<Proc> =
                        u.signalled.iter().flat_map(|(_, p)| p.clone()).collect();
                    // Undo data from a plan alone: whatever the pidfiles name now, and theirs.
                    for n in nodes {
                        let named: Vec<Proc> = n
                            .pidfiles
                            .iter()
                            .filter_map(|f| os::read_pidfile(f).ok())
                            .collect();
                        procs.extend(os::descendants(&named));
                        procs.extend(named);
                    }
                    for p in &procs {
                        os::signal(p, os::Signal::CONT).map_err(DriverError::retryable)?;
                    }
                }
                Action::Command {
                    revert: Some(cmd),
                    timeout_ms,
                    ..
                } => {
                    let r = u
                        .run(
                            "the revert command",
                            cmd,
                            Duration::from_millis(*timeout_ms),
                        )
                        .await
                        .map_err(|e| DriverError::retryable(e.to_string()))?;
                    if !r.output.is_empty() {
                        tracing::info!("revert command output: {}", r.output);
                    }
                }
                Action::Command { revert: None, .. } => {}
            }
            lease.release();
            Ok(())
        })
    }

    fn undo_for(&self, p: &FaultPlan) -> Undo {
        p.check.clone()
    }

    fn revert_deadline(&self) -> Duration {
        self.deadline()
    }

    fn lease(&self) -> Option<Duration> {
        self.spec.as_ref().map(|s| s.lease)
    }

    fn renew<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let u = ProcessUndo::of(undo)?;
            if !u.leased {
                return Ok(());
            }
            let lease = u.lease();
            if lease.renew().is_ok() || lease.reverting().exists() {
                return Ok(());
            }
            Err(DriverError::Permanent(format!(
                "the lease of {} ran out: its guardian healed the fault",
                u.by
            )))
        })
    }

    fn observe<'a>(
        &'a self,
        _planned: &'a [Planned],
    ) -> Option<BoxFut<'a, Result<Snapshot, DriverError>>> {
        let s = self.spec.as_ref()?;
        if s.processes.is_empty() {
            return None;
        }
        Some(Box::pin(async move {
            let scratch = s.state_dir.join("out");
            let each = s.processes.iter().map(|p| {
                let scratch = scratch.clone();
                async move {
                    let n = NodeRef::of(p);
                    let state = match n.procs() {
                        Ok(procs) if procs.iter().any(os::stopped) => "frozen".to_string(),
                        Ok(_) => "running".to_string(),
                        Err(_) => "not running".to_string(),
                    };
                    let primary = match &p.primary_if {
                        Some(cmd) => {
                            let r = os::sh(cmd, &self.cwd, &scratch, PROBE_TIMEOUT, None).await;
                            Some(if matches!(r, Ok(r) if r.ok()) {
                                "primary"
                            } else {
                                "not primary"
                            })
                        }
                        None => None,
                    };
                    (p.name.clone(), state, primary)
                }
            });
            let mut snap = Snapshot::new();
            for (name, state, primary) in futures_util::future::join_all(each).await {
                snap.insert(format!("process {name}"), state);
                if let Some(pr) = primary {
                    snap.insert(format!("process {name} role"), pr.to_string());
                }
            }
            Ok(snap)
        }))
    }

    fn observe_every(&self) -> Duration {
        Duration::from_secs(1)
    }
}
