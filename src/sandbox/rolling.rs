//! Rolling restarts on the sandbox: a deploy that takes app nodes out one at a time (drained,
//! stopped, started, healthy again) and a maintenance reboot of the database instances
//! (readers first, the writer last, which fails over).
//!
//! A rolling restart acts only through the stack's holds (its own hold per starter), so it
//! must never release a node or instance another fault holds down, and cancelling one restart
//! must never touch another's nodes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::events::lock;
use super::node::Node;
use super::Stack;

/// The hold a rolling restart started by `by` puts on the node it has stopped.
fn rolling_hold(by: &str) -> String {
    format!("rolling-restart:{by}")
}

impl Stack {
    /// A rolling restart (a deploy): one node at a time — taken out of the load balancer,
    /// drained, stopped for `down`, started, and back in rotation once healthy — then the next.
    /// Each holder's restart is its own (two overlapping deploys each roll through the nodes,
    /// and cancelling one leaves the other running). Returns false if `by` already has one
    /// running.
    ///
    /// With `db`, database instances instead (a maintenance reboot): the readers one at a time,
    /// then the writer — which fails over, as a reboot with failover does on RDS.
    pub fn start_rolling(
        self: &Arc<Self>,
        zone: Option<String>,
        down: Duration,
        db: bool,
        by: &str,
    ) -> bool {
        let mut running = lock(&self.rolling);
        if running.get(by).is_some_and(|t| !t.is_finished()) {
            return false;
        }
        let stack = self.clone();
        let hold = rolling_hold(by);
        let by_name = by.to_string();
        let task = tokio::spawn(async move {
            if db {
                stack.roll_db(zone, down, &hold, &by_name).await;
                return;
            }
            let nodes: Vec<Arc<Node>> = stack
                .nodes
                .iter()
                .filter(|n| zone.as_ref().is_none_or(|z| &n.zone == z))
                .cloned()
                .collect();
            stack.events.log(
                "rolling_restart_start",
                json!({
                    "by": by_name,
                    "nodes": nodes.iter().map(|n| n.id.clone()).collect::<Vec<_>>(),
                }),
            );
            for n in nodes {
                let _ = stack.set_node(&n, false, "stop", &hold).await;
                tokio::time::sleep(down).await;
                let _ = stack.set_node(&n, true, "restart", &hold).await;
                let t = tokio::time::Instant::now();
                // (A node another fault holds down will not come back: go on.)
                while !stack.lb.is_healthy(&n.id)
                    && n.holders().is_empty()
                    && t.elapsed() < Duration::from_secs(60)
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            stack
                .events
                .log("rolling_restart_end", json!({ "by": by_name }));
        });
        running.insert(by.to_string(), task);
        true
    }

    /// A rolling reboot of the database instances (in `zone`, or all): readers first, each
    /// down for `down` and back (resynchronised) before the next, the writer last (its loss
    /// fails the cluster over; the next step waits for the promotion).
    async fn roll_db(&self, zone: Option<String>, down: Duration, hold: &str, by: &str) {
        let order = self.db.restart_order(zone.as_deref());
        self.events.log(
            "rolling_restart_start",
            json!({ "by": by, "role": "db", "instances": order }),
        );
        for name in &order {
            self.db.set_held(name, hold, true);
            tokio::time::sleep(down).await;
            self.db.set_held(name, hold, false);
            let t = tokio::time::Instant::now();
            while self.db.is_failing_over() && t.elapsed() < Duration::from_secs(600) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.events
            .log("rolling_restart_end", json!({ "by": by, "role": "db" }));
    }

    /// Stop the rolling restart `by` started and release every node it left down (a node
    /// another fault or another restart holds stays down).
    pub async fn cancel_rolling(&self, by: &str) -> std::io::Result<bool> {
        let t = lock(&self.rolling).remove(by);
        let running = t.as_ref().is_some_and(|t| !t.is_finished());
        if let Some(t) = t {
            t.abort();
            // Wait until it is gone: it must not take a hold after the scan below.
            let _ = t.await;
        }
        let hold = rolling_hold(by);
        for n in &self.nodes {
            if n.holders().contains(&hold) {
                self.set_node(n, true, "restart cancelled", &hold).await?;
            }
        }
        for name in self.db.restart_order(None) {
            self.db.set_held(&name, &hold, false);
        }
        if running {
            self.events
                .log("rolling_restart_cancelled", json!({ "by": by }));
        }
        Ok(running)
    }
}
