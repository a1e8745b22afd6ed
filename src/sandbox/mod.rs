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
//!
//! A second group of app nodes (green, as many per zone, running version `v2`) waits undeployed
//! for a blue/green cutover ([`cutover`]); the load balancer's weights move traffic to it.
//!
//! This file starts and stops the stack and owns its fault state (who holds which node, zone
//! and link); the knobs are in [`config`], rolling restarts in [`rolling`], cutovers in
//! [`cutover`].

pub mod backend;
pub mod cache;
pub mod child;
mod config;
pub mod control;
mod cutover;
pub mod db;
pub mod events;
pub(crate) mod http;
pub mod lb;
pub mod lease;
pub mod node;
mod rolling;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use serde_json::json;
use tokio::task::JoinHandle;

use backend::{CacheBackend, DbBackend};
use cache::{Cache, CacheClient};
pub use config::SandboxConfig;
use db::{Db, DbClient};
use events::{lock, Events};
use lb::Lb;
use node::{Backends, Node};

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
    /// The live (blue) app nodes.
    pub nodes: Vec<Arc<Node>>,
    /// The green app nodes: held down as not deployed until a cutover deploys them.
    pub green: Vec<Arc<Node>>,
    pub lb: Arc<Lb>,
    pub db: Arc<Db>,
    pub cache: Arc<Cache>,
    pub links: Arc<Links>,
    pub events: Arc<Events>,
    /// Zone → who holds it down.
    zone_holds: Holds<BTreeSet<String>>,
    /// Running rolling restarts, by who started them.
    rolling: Mutex<BTreeMap<String, JoinHandle<()>>>,
    /// The cutover under way or done (one at a time: the listener has one set of weights).
    cutover: Mutex<Option<cutover::Cutover>>,
    /// How long each hold lasts unless renewed.
    pub leases: lease::Leases,
}

impl Sandbox {
    /// Start every server on 127.0.0.1 (ports chosen by the OS), events logged to `events`.
    pub async fn start(cfg: SandboxConfig, events: Option<&Path>) -> std::io::Result<Sandbox> {
        let events = Arc::new(Events::new(events)?);
        let db = Db::start(cfg.db.clone(), &cfg.zones, events.clone()).await?;
        let cache = Cache::start(cfg.cache.clone(), events.clone()).await?;
        let links = Arc::new(Links::default());
        let backends = Arc::new(Backends {
            db: DbBackend::Sim(DbClient::new(db.clone()).over(links.delay(|l| &l.db))),
            cache: CacheBackend::Sim(
                CacheClient::new(cache.clone()).over(links.delay(|l| &l.cache)),
            ),
        });
        let mut nodes = Vec::new();
        let mut green = Vec::new();
        for z in &cfg.zones {
            for i in 1..=cfg.nodes_per_zone {
                let n = Node::new(
                    format!("app-{z}-{i}"),
                    z.clone(),
                    "v1",
                    cfg.node.clone(),
                    backends.clone(),
                );
                n.start().await?;
                nodes.push(n);
                let g = Node::new(
                    format!("green-{z}-{i}"),
                    z.clone(),
                    "v2",
                    cfg.node.clone(),
                    backends.clone(),
                );
                g.set_held(node::NOT_DEPLOYED, true).await?;
                green.push(g);
            }
        }
        let lb = Lb::new(cfg.lb.clone(), &nodes, &green, events.clone());
        let lb_listener = http::bind(0).await?;
        let lb_url = format!("http://{}", lb_listener.local_addr()?);
        let ctl_listener = http::bind(0).await?;
        let control_url = format!("http://{}", ctl_listener.local_addr()?);
        let stack = Arc::new(Stack {
            cfg,
            lb_url: lb_url.clone(),
            control_url: control_url.clone(),
            nodes,
            green,
            lb: lb.clone(),
            db,
            cache,
            links,
            events: events.clone(),
            zone_holds: Mutex::new(BTreeMap::new()),
            rolling: Mutex::new(BTreeMap::new()),
            cutover: Mutex::new(None),
            leases: lease::Leases::default(),
        });
        let l2 = lb.clone();
        let lb_task = tokio::spawn(http::serve(lb_listener, move |req| l2.clone().handle(req)));
        let health_task = tokio::spawn(lb.health_loop());
        let s2 = stack.clone();
        let ctl_task = tokio::spawn(http::serve(ctl_listener, move |req| {
            control::handle(s2.clone(), req)
        }));
        let lease_task = tokio::spawn(control::sweep_leases(stack.clone()));
        events.log(
            "sandbox_up",
            json!({ "lb_url": lb_url, "control_url": control_url, "nodes": stack.nodes.len() }),
        );
        Ok(Sandbox {
            lb_url,
            control_url,
            stack,
            tasks: vec![lb_task, health_task, ctl_task, lease_task],
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
        for n in self.stack.nodes.iter().chain(&self.stack.green) {
            n.stop_now();
        }
        self.stack.db.stop();
        self.stack.cache.stop();
        self.stack.events.log("sandbox_down", json!({}));
    }
}

impl Stack {
    /// A blue or green app node.
    pub fn node(&self, id: &str) -> Option<&Arc<Node>> {
        self.nodes.iter().chain(&self.green).find(|n| n.id == id)
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
        for n in self
            .nodes
            .iter()
            .chain(&self.green)
            .filter(|n| n.zone == zone)
        {
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
        // Green nodes are listed once deployed: before, they are not part of the stack.
        let green = self.green.iter().filter(|n| n.is_deployed());
        for n in self.nodes.iter().chain(green) {
            let healthy = health
                .iter()
                .find(|(id, _)| *id == n.id)
                .is_some_and(|h| h.1);
            let group = self.lb.group_of(&n.id).map(|g| g.name());
            out.push(json!({
                "id": n.id, "role": "app", "zone": n.zone, "group": group,
                "state": if n.is_running() { "running" } else { "stopped" },
                "lb_healthy": healthy, "addr": n.addr().to_string(),
                "held_down_by": n.holders(),
            }));
        }
        let (blue, green) = self.lb.weights();
        out.extend(self.db.describe());
        out.extend(self.cache.describe());
        json!({
            "lb_url": self.lb_url,
            "control_url": self.control_url,
            "zones": self.cfg.zones,
            "zones_down": self.zones_down(),
            "zone_holds": *lock(&self.zone_holds),
            "lb_weights": { "blue": blue, "green": green },
            "cutover": self.cutover_state(),
            "resources": out,
        })
    }
}
