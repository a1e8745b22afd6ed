//! The embedded sandbox: a small local cloud for `chaos run` with no target.
//!
//! A load balancer and app nodes (2 per zone in zones a, b, c by default) are real HTTP servers
//! on 127.0.0.1; behind them, a database cluster (writer + readers, sync or async replication,
//! failover) and a cache (partition, failover), each instance a TCP server on its own loopback
//! port ([`wire`]) that the nodes call over the network. A control API on its own
//! loopback port is the sandbox driver's only way in, as the AWS API is for the aws driver:
//! list resources, kill/start nodes, zone down/up, db failover, cache partition/heal/failover,
//! link latency. Every effect is real in what clients see: a killed node's port is closed and
//! its connections dropped, a partition is a timeout, a failover is a promotion. Everything the
//! sandbox undergoes is logged with its time ([`events`]): the ground truth tests check.
//!
//! `chaos sandbox up` runs it in the foreground; `chaos run` with no target starts it as a
//! child process of the same binary (its own runtime, apart from the load generator's) and stops
//! it at the end. The scenario's `[sandbox]` table sets its knobs ([`SandboxConfig::with_spec`]).

pub mod cache;
pub mod child;
pub mod control;
pub mod db;
pub mod events;
mod http;
pub mod lb;
pub mod node;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use serde_json::json;
use tokio::task::JoinHandle;

use cache::{Cache, CacheClient, CacheConfig, CachePolicy};
use db::{Db, DbClient, DbConfig, Replication};
use events::{lock, Events};
use lb::{Lb, LbConfig};
use node::{Backends, Node, NodeConfig};

/// Every knob, with defaults that make the shipped scenarios meaningful: at 4x the shipped
/// peak (800 req/s) six nodes run at about half their capacity, four (a zone lost) at about
/// 80% — latency rises, service holds.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub zones: Vec<String>,
    pub nodes_per_zone: usize,
    pub node: NodeConfig,
    pub lb: LbConfig,
    pub db: DbConfig,
    pub cache: CacheConfig,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            zones: ["a", "b", "c"].iter().map(|z| z.to_string()).collect(),
            nodes_per_zone: 2,
            node: NodeConfig {
                // 3 at once, 13 ms on average: ~230 req/s a node. The shipped scenarios' 4x
                // peak (800 req/s) runs six nodes at 58% of capacity and, with a zone lost,
                // four at 87%: it still holds, and the queueing shows (az-outage: p99 18.0 ms
                // before the outage, 26.6 ms during it).
                concurrency: 3,
                service_time: Duration::from_millis(10),
                service_jitter: Duration::from_millis(6),
            },
            lb: LbConfig {
                interval: Duration::from_secs(1),
                unhealthy_after: 2,
                healthy_after: 2,
                check_timeout: Duration::from_millis(500),
                upstream_timeout: Duration::from_secs(30),
            },
            db: DbConfig {
                writer_zone: "b".into(),
                replication: Replication::Sync,
                failover_time: Duration::from_secs(5),
            },
            cache: CacheConfig {
                timeout: Duration::from_millis(200),
                policy: CachePolicy::FailOpen,
                failover_time: Duration::from_secs(2),
                ttl: Duration::from_secs(1),
                replication_lag: Duration::from_millis(200),
            },
        }
    }
}

impl SandboxConfig {
    /// The defaults with a scenario's `[sandbox]` settings applied (already validated).
    pub fn with_spec(mut self, s: &crate::scenario::SandboxSpec) -> SandboxConfig {
        let d = Duration::from_secs_f64;
        if let Some(v) = s.nodes_per_zone {
            self.nodes_per_zone = v;
        }
        if let Some(v) = s.node_concurrency {
            self.node.concurrency = v;
        }
        if let Some(v) = s.service_time_s {
            self.node.service_time = d(v);
        }
        if let Some(v) = s.service_jitter_s {
            self.node.service_jitter = d(v);
        }
        if let Some(v) = s.health_interval_s {
            self.lb.interval = d(v);
            self.lb.check_timeout = self.lb.check_timeout.min(d(v));
        }
        if let Some(v) = s.unhealthy_after {
            self.lb.unhealthy_after = v;
        }
        if let Some(v) = s.healthy_after {
            self.lb.healthy_after = v;
        }
        if let Some(v) = &s.db_writer_zone {
            self.db.writer_zone = v.clone();
        }
        let lag = d(s.replication_lag_s.unwrap_or(0.5));
        match s.replication.as_deref() {
            Some("async") => self.db.replication = Replication::Async { lag },
            Some(_) => self.db.replication = Replication::Sync,
            None => {}
        }
        if let Some(v) = s.failover_time_s {
            self.db.failover_time = d(v);
        }
        if let Some(v) = s.cache_timeout_s {
            self.cache.timeout = d(v);
        }
        match s.cache_policy.as_deref() {
            Some("fail-closed") => self.cache.policy = CachePolicy::FailClosed,
            Some(_) => self.cache.policy = CachePolicy::FailOpen,
            None => {}
        }
        if let Some(v) = s.cache_failover_time_s {
            self.cache.failover_time = d(v);
        }
        if let Some(v) = s.cache_replication_lag_s {
            self.cache.replication_lag = d(v);
        }
        self
    }

    /// `--time-scale`: the sandbox's own clocks (health checks, failovers) shrink with the
    /// scenario's, so a scaled run keeps the same shape. Timeouts and service times stay.
    pub fn time_scaled(mut self, f: f64) -> SandboxConfig {
        let sc = |d: Duration| d.mul_f64(f).max(Duration::from_millis(10));
        self.lb.interval = sc(self.lb.interval);
        self.db.failover_time = sc(self.db.failover_time);
        self.cache.failover_time = sc(self.cache.failover_time);
        self
    }
}

/// Who holds what: a fault's effect stays while anyone holds it, so overlapping faults (two
/// kill-nodes picking the same node, two outages of one zone, a kill during a rolling restart)
/// never undo each other, and releasing twice is harmless (reverts are idempotent).
pub type Holds<T> = Mutex<BTreeMap<String, T>>;

/// Added delay on the app→db and app→cache links (the `latency` fault), per holder; the
/// largest delay held applies.
#[derive(Default)]
pub struct Links {
    db: Holds<(Duration, Duration)>,
    cache: Holds<(Duration, Duration)>,
}

impl Links {
    /// One request's delay on a link: the largest held delay plus uniform jitter.
    fn sample(l: &Holds<(Duration, Duration)>) -> Duration {
        let (delay, jitter) = lock(l).values().copied().max().unwrap_or_default();
        if jitter.is_zero() {
            delay
        } else {
            delay + rand::rng().random_range(Duration::ZERO..jitter)
        }
    }
    /// A link (`Links::db` or `Links::cache`) as the delay of the clients that cross it.
    fn delay(self: &Arc<Self>, link: fn(&Links) -> &Holds<(Duration, Duration)>) -> wire::Delay {
        let l = self.clone();
        Arc::new(move || Self::sample(link(&l)))
    }
}

/// Puts a node back into rotation if dropped (see [`Stack::set_node`]).
struct Undrain<'a> {
    lb: &'a Lb,
    node: &'a Node,
    armed: bool,
}

impl Drop for Undrain<'_> {
    fn drop(&mut self) {
        if self.armed && self.node.is_running() {
            self.lb.set_draining(&self.node.id, false);
        }
    }
}

/// The hold a rolling restart started by `by` puts on the node it has stopped.
fn rolling_hold(by: &str) -> String {
    format!("rolling-restart:{by}")
}

/// A running sandbox. Dropping it does not stop it; call [`Sandbox::stop`].
pub struct Sandbox {
    pub lb_url: String,
    pub control_url: String,
    stack: Arc<Stack>,
    tasks: Vec<JoinHandle<()>>,
}

pub struct Stack {
    pub cfg: SandboxConfig,
    pub lb_url: String,
    pub control_url: String,
    pub nodes: Vec<Arc<Node>>,
    pub lb: Arc<Lb>,
    pub db: Arc<Db>,
    pub cache: Arc<Cache>,
    pub links: Arc<Links>,
    pub events: Arc<Events>,
    /// Zone → who holds it down.
    zone_holds: Holds<BTreeSet<String>>,
    /// Running rolling restarts, by who started them.
    rolling: Mutex<BTreeMap<String, JoinHandle<()>>>,
}

impl Sandbox {
    /// Start every server on 127.0.0.1 (ports chosen by the OS), events logged to `events`.
    pub async fn start(cfg: SandboxConfig, events: Option<&Path>) -> std::io::Result<Sandbox> {
        let events = Arc::new(Events::new(events)?);
        let db = Db::start(cfg.db.clone(), &cfg.zones, events.clone()).await?;
        let cache = Cache::start(cfg.cache.clone(), events.clone()).await?;
        let links = Arc::new(Links::default());
        let backends = Arc::new(Backends {
            db: DbClient::new(db.clone()).over(links.delay(|l| &l.db)),
            cache: CacheClient::new(cache.clone()).over(links.delay(|l| &l.cache)),
        });
        let mut nodes = Vec::new();
        for z in &cfg.zones {
            for i in 1..=cfg.nodes_per_zone {
                let n = Node::new(
                    format!("app-{z}-{i}"),
                    z.clone(),
                    cfg.node.clone(),
                    backends.clone(),
                );
                n.start().await?;
                nodes.push(n);
            }
        }
        let lb = Lb::new(cfg.lb.clone(), &nodes, events.clone());
        let lb_listener = http::bind(0).await?;
        let lb_url = format!("http://{}", lb_listener.local_addr()?);
        let ctl_listener = http::bind(0).await?;
        let control_url = format!("http://{}", ctl_listener.local_addr()?);
        let stack = Arc::new(Stack {
            cfg,
            lb_url: lb_url.clone(),
            control_url: control_url.clone(),
            nodes,
            lb: lb.clone(),
            db,
            cache,
            links,
            events: events.clone(),
            zone_holds: Mutex::new(BTreeMap::new()),
            rolling: Mutex::new(BTreeMap::new()),
        });
        let l2 = lb.clone();
        let lb_task = tokio::spawn(http::serve(lb_listener, move |req| l2.clone().handle(req)));
        let health_task = tokio::spawn(lb.health_loop());
        let s2 = stack.clone();
        let ctl_task = tokio::spawn(http::serve(ctl_listener, move |req| {
            control::handle(s2.clone(), req)
        }));
        events.log(
            "sandbox_up",
            json!({ "lb_url": lb_url, "control_url": control_url, "nodes": stack.nodes.len() }),
        );
        Ok(Sandbox {
            lb_url,
            control_url,
            stack,
            tasks: vec![lb_task, health_task, ctl_task],
        })
    }

    pub fn stack(&self) -> &Arc<Stack> {
        &self.stack
    }

    /// Stop every server (ports closed, connections dropped).
    pub fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        for n in &self.stack.nodes {
            n.stop_now();
        }
        self.stack.db.stop();
        self.stack.cache.stop();
        self.stack.events.log("sandbox_down", json!({}));
    }
}

impl Stack {
    pub fn node(&self, id: &str) -> Option<&Arc<Node>> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// `holder` takes a node down (`up = false`) or releases it; `how` is "kill" (at once),
    /// "stop" (taken out of the load balancer and drained first, as a graceful shutdown) or
    /// what started it. Logged when the node's state changes; it is back only once no one
    /// holds it (and its zone is up).
    pub async fn set_node(
        &self,
        n: &Node,
        up: bool,
        how: &str,
        holder: &str,
    ) -> std::io::Result<()> {
        // If this future is dropped while draining (a rolling restart cancelled, a control
        // call abandoned), the node goes back into rotation: it was never stopped.
        let mut undrain = Undrain {
            lb: &self.lb,
            node: n,
            armed: false,
        };
        if !up && how == "stop" && n.is_running() {
            self.lb.set_draining(&n.id, true);
            undrain.armed = true;
            self.lb.drained(&n.id).await;
        }
        let changed = n.set_held(holder, !up).await;
        undrain.armed = false;
        if changed? {
            self.events.log(
                if up { "node_up" } else { "node_down" },
                json!({ "node": n.id, "zone": n.zone, "how": how, "by": holder }),
            );
        }
        if n.is_running() {
            self.lb.set_draining(&n.id, false);
        }
        Ok(())
    }

    /// `holder` takes a zone down (its nodes' ports closed, its database instance unreachable —
    /// a writer there fails over) or releases it; the zone is back once no one holds it.
    /// Returns whether the zone's state changed.
    pub async fn set_zone(&self, zone: &str, up: bool, holder: &str) -> std::io::Result<bool> {
        {
            let mut holds = lock(&self.zone_holds);
            let set = holds.entry(zone.to_string()).or_default();
            let was_down = !set.is_empty();
            if up {
                set.remove(holder);
            } else {
                set.insert(holder.to_string());
            }
            if was_down != set.is_empty() {
                return Ok(false);
            }
        }
        self.events.log(
            if up { "zone_up" } else { "zone_down" },
            json!({ "zone": zone }),
        );
        for n in self.nodes.iter().filter(|n| n.zone == zone) {
            if n.set_zone_down(!up).await? {
                self.events.log(
                    if up { "node_up" } else { "node_down" },
                    json!({ "node": n.id, "zone": n.zone, "how": "zone" }),
                );
            }
        }
        self.db.set_zone(zone, up);
        Ok(true)
    }

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

    /// `holder` adds latency to a link (`None`: releases it). False for an unknown link.
    pub fn set_link(&self, link: &str, delay: Option<(Duration, Duration)>, holder: &str) -> bool {
        let slot = match link {
            "app-db" => &self.links.db,
            "app-cache" => &self.links.cache,
            _ => return false,
        };
        let (d, j) = {
            let mut held = lock(slot);
            match delay {
                Some(dj) => {
                    held.insert(holder.to_string(), dj);
                }
                None => {
                    held.remove(holder);
                }
            }
            held.values().copied().max().unwrap_or_default()
        };
        self.events.log(
            "link_latency",
            json!({ "link": link, "by": holder, "delay_ms": d.as_secs_f64() * 1e3, "jitter_ms": j.as_secs_f64() * 1e3 }),
        );
        true
    }

    pub fn zones_down(&self) -> Vec<String> {
        lock(&self.zone_holds)
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(z, _)| z.clone())
            .collect()
    }

    /// Every resource with its role, zone and state: what the driver resolves targets from.
    pub fn describe(&self) -> serde_json::Value {
        let health = self.lb.health();
        let mut out: Vec<serde_json::Value> =
            vec![json!({ "id": "lb", "role": "lb", "zone": null, "state": "running" })];
        for n in &self.nodes {
            let healthy = health
                .iter()
                .find(|(id, _)| *id == n.id)
                .is_some_and(|h| h.1);
            out.push(json!({
                "id": n.id, "role": "app", "zone": n.zone,
                "state": if n.is_running() { "running" } else { "stopped" },
                "lb_healthy": healthy, "addr": n.addr().to_string(),
                "held_down_by": n.holders(),
            }));
        }
        out.extend(self.db.describe());
        out.extend(self.cache.describe());
        json!({
            "lb_url": self.lb_url,
            "control_url": self.control_url,
            "zones": self.cfg.zones,
            "zones_down": self.zones_down(),
            "zone_holds": *lock(&self.zone_holds),
            "resources": out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `[sandbox]` key reaches the stack's configuration.
    #[test]
    fn every_sandbox_key_reaches_the_config() {
        let text = r#"
name = "knobs"
[load]
stages = [{ hold = "1/s", for = "1s" }]
[[load.requests]]
name = "home"
path = "/"
[sandbox]
nodes_per_zone = 3
node_concurrency = 7
service_time = "20ms"
service_jitter = "3ms"
health_interval = "500ms"
unhealthy_after = 4
healthy_after = 5
db_writer_zone = "c"
replication = "async"
replication_lag = "2s"
failover_time = "9s"
cache_timeout = "150ms"
cache_policy = "fail-closed"
cache_failover_time = "4s"
cache_replication_lag = "750ms"
"#;
        let sc = crate::scenario::parse_str("knobs.toml", text).unwrap();
        let c = SandboxConfig::default().with_spec(&sc.sandbox);
        let ms = Duration::from_millis;
        assert_eq!(c.nodes_per_zone, 3);
        assert_eq!(c.node.concurrency, 7);
        assert_eq!(c.node.service_time, ms(20));
        assert_eq!(c.node.service_jitter, ms(3));
        assert_eq!(c.lb.interval, ms(500));
        assert_eq!((c.lb.unhealthy_after, c.lb.healthy_after), (4, 5));
        assert_eq!(c.db.writer_zone, "c");
        assert_eq!(c.db.replication, Replication::Async { lag: ms(2000) });
        assert_eq!(c.db.failover_time, ms(9000));
        assert_eq!(c.cache.timeout, ms(150));
        assert_eq!(c.cache.policy, CachePolicy::FailClosed);
        assert_eq!(c.cache.failover_time, ms(4000));
        assert_eq!(c.cache.replication_lag, ms(750));
        // The key list above is the whole of [sandbox]: a key added without reaching the
        // config fails here.
        assert_eq!(crate::scenario::validate::keys::SANDBOX.len(), 15);
    }
}
