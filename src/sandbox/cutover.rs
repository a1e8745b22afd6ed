//! Blue/green cutovers on the sandbox: green (a second node group running `v2`) is deployed,
//! checked healthy by the load balancer, then given the listener's weight in steps
//! (`10%, 50%, 100%`, one every `every`); blue keeps running (hot). Once blue's weight is zero
//! its requests in flight are drained, or cut when the cutover says `drain = false`. A rollback
//! puts every request back on blue at once and releases green the same way.
//!
//! Every weight change is an event (`lb_weights`), as are the cutover's start, green's
//! deployment, the release of the group that lost its traffic (`lb_group_drained` /
//! `lb_group_cut`), the end and the rollback. One cutover at a time (the listener has one set of
//! weights); it belongs to its starter, and only that holder's rollback undoes it. This module
//! never stops a blue node: killing nodes is other faults' business.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;

use super::events::lock;
use super::lb::Group;
use super::node::NOT_DEPLOYED;
use super::Stack;

/// Longest wait for green to pass its health checks before the weights move anyway (the
/// requests then sent to an unhealthy green get 503s: what a premature cutover does).
const DEPLOY_MAX: Duration = Duration::from_secs(60);

/// A cutover started (under way, or done and not rolled back).
pub struct Cutover {
    by: String,
    drain: bool,
    steps: Vec<u32>,
    /// The steps; taken by the rollback, which keeps the slot until it is done (a cutover
    /// started meanwhile would have its weights reset and its green requests drained or cut).
    task: Option<JoinHandle<()>>,
}

/// Why a cutover cannot start.
#[derive(Debug)]
pub enum Refused {
    /// Someone else's cutover holds the listener.
    Busy(String),
    /// The steps are not increasing percentages in 1..=100.
    Steps(String),
}

impl Stack {
    /// Start a cutover by `by`: deploy green, then move `steps` of the traffic to it (percent of
    /// requests, increasing, the first at once and each next after `every`). Returns false if
    /// `by` already has one.
    pub fn start_cutover(
        self: &Arc<Self>,
        steps: Vec<u32>,
        every: Duration,
        drain: bool,
        by: &str,
    ) -> Result<bool, Refused> {
        if steps.is_empty()
            || steps.iter().any(|p| !(1..=100).contains(p))
            || steps.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(Refused::Steps(format!(
                "steps must be increasing percentages from 1 to 100, got {steps:?}"
            )));
        }
        let mut cur = lock(&self.cutover);
        if let Some(c) = cur.as_ref() {
            return if c.by == by && c.task.is_some() {
                Ok(false)
            } else {
                Err(Refused::Busy(c.by.clone()))
            };
        }
        let stack = self.clone();
        let by_name = by.to_string();
        let plan = steps.clone();
        let task = tokio::spawn(async move {
            stack.events.log(
                "cutover_start",
                json!({ "by": by_name, "steps": plan, "every_ms": every.as_millis() as u64,
                        "drain": drain }),
            );
            stack.deploy_green().await;
            for (i, pct) in plan.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(every).await;
                }
                stack.lb.set_green_weight(*pct, &by_name);
                if *pct == 100 {
                    stack.lb.release_group(Group::Blue, drain, &by_name).await;
                }
            }
            stack.events.log("cutover_end", json!({ "by": by_name }));
        });
        *cur = Some(Cutover {
            by: by.to_string(),
            drain,
            steps,
            task: Some(task),
        });
        Ok(true)
    }

    /// `by`'s rollback: the steps stopped, every request back on blue, green's requests in
    /// flight drained or cut as the cutover said. Green stays deployed (hot, for another try).
    /// Returns false if `by` has no cutover. Runs to its end on its own task, even if the
    /// caller stops waiting (an abandoned control call must not leave the slot taken).
    pub async fn rollback_cutover(self: &Arc<Self>, by: &str) -> bool {
        let stack = self.clone();
        let by = by.to_string();
        tokio::spawn(async move { stack.rollback(&by).await })
            .await
            .unwrap_or(false)
    }

    async fn rollback(&self, by: &str) -> bool {
        let (task, drain) = {
            let mut cur = lock(&self.cutover);
            match cur.as_mut() {
                // (A rollback already under way has taken the task.)
                Some(c) if c.by == by => match c.task.take() {
                    Some(t) => (t, c.drain),
                    None => return false,
                },
                _ => return false,
            }
        };
        task.abort();
        // Wait until it is gone: it must not move a weight after the one below.
        let _ = task.await;
        let had_green = self.lb.weights().1 > 0;
        self.lb.set_green_weight(0, by);
        self.events.log("cutover_rollback", json!({ "by": by }));
        if had_green {
            self.lb.release_group(Group::Green, drain, by).await;
        }
        // Only now may another cutover start.
        *lock(&self.cutover) = None;
        true
    }

    /// The cutover for `/resources`: who holds it, its steps and drain, or null.
    pub fn cutover_state(&self) -> serde_json::Value {
        lock(&self.cutover)
            .as_ref()
            .map_or(serde_json::Value::Null, |c| {
                json!({ "by": c.by, "steps": c.steps, "drain": c.drain,
                    "done": c.task.as_ref().is_none_or(|t| t.is_finished()),
                    "rolling_back": c.task.is_none() })
            })
    }

    /// Start every green node (those whose zone is up) and wait until the load balancer holds
    /// each running one healthy, at most [`DEPLOY_MAX`].
    async fn deploy_green(&self) {
        for n in &self.green {
            if n.is_deployed() {
                continue;
            }
            match n.set_held(NOT_DEPLOYED, false).await {
                Ok(true) => self.events.log(
                    "node_up",
                    json!({ "node": n.id, "zone": n.zone, "how": "deploy" }),
                ),
                Ok(false) => {}
                Err(e) => self.events.log(
                    "deploy_failed",
                    json!({ "node": n.id, "zone": n.zone, "error": e.to_string() }),
                ),
            }
        }
        let t0 = tokio::time::Instant::now();
        let pending = || -> Vec<String> {
            self.green
                .iter()
                .filter(|n| n.is_running() && !self.lb.is_healthy(&n.id))
                .map(|n| n.id.clone())
                .collect()
        };
        while !pending().is_empty() && t0.elapsed() < DEPLOY_MAX {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let healthy: Vec<&str> = self
            .green
            .iter()
            .filter(|n| self.lb.is_healthy(&n.id))
            .map(|n| n.id.as_str())
            .collect();
        self.events.log(
            "green_deployed",
            json!({ "healthy": healthy, "unhealthy": pending(),
                    "waited_ms": t0.elapsed().as_millis() as u64 }),
        );
    }
}
