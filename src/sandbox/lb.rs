//! The sandbox's load balancer, ALB-like: one public port; a health check of every deployed node
//! every interval (`GET /health`); a node is marked unhealthy after N consecutive failures and
//! healthy again after M successes; requests go round-robin to the healthy nodes of their target
//! group, in every zone. A node that
//! fails under a request (refused, closed mid-request) gives the client a 502; no healthy node
//! gives a 503; an upstream that does not answer within the LB's timeout gives a 504. It never
//! retries (an ALB doesn't): what the client sees is what the client must handle.
//!
//! Two target groups, as a blue/green deploy has: blue (the live app nodes) and green (a second
//! set, deployed for a cutover: [`super::cutover`]). Each request goes to a group by the
//! listener's weights (green's share in percent, spread evenly over the requests), then round
//! robin over that group's healthy targets; a group with weight but no healthy target answers
//! 503 (no fail-over to the other group: a cutover to a broken green must show). A group whose
//! weight drops to zero is either drained (its in-flight requests finish) or cut (they get a
//! 502 at once, as an ALB with a deregistration delay of 0 closes them).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::sync::watch;

use super::events::Events;
use super::http::{self, Body};
use super::node::Node;

#[derive(Debug, Clone)]
pub struct LbConfig {
    pub interval: Duration,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
    /// Per health check.
    pub check_timeout: Duration,
    /// Longest wait for a node's response before answering 504.
    pub upstream_timeout: Duration,
}

/// Longest connection draining before a stopped node closes anyway.
pub const DRAIN_MAX: Duration = Duration::from_secs(5);

/// A target group of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Blue,
    Green,
}

impl Group {
    pub fn name(self) -> &'static str {
        match self {
            Group::Blue => "blue",
            Group::Green => "green",
        }
    }
    fn idx(self) -> usize {
        self as usize
    }
}

struct Target {
    node: Arc<Node>,
    group: Group,
    healthy: AtomicBool,
    /// Taken out of rotation on purpose: health checks do not bring it back.
    draining: AtomicBool,
    fails: AtomicU32,
    oks: AtomicU32,
    /// Requests forwarded to it and not yet answered (what draining waits for).
    in_flight: AtomicUsize,
}

/// Counts a forwarded request as in flight on its target until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Lb {
    cfg: LbConfig,
    targets: Vec<Target>,
    /// Round robin, per group (one counter for both would tie each group's pick to the
    /// weighted split and leave half of each group idle).
    next: [AtomicUsize; 2],
    /// Green's share of the requests, in percent (blue has the rest).
    green_pct: AtomicU32,
    /// Requests routed so far (spreads green's share evenly).
    routed: AtomicU64,
    /// Per group: bumped to cut every request in flight to it.
    cut: [watch::Sender<u64>; 2],
    /// Per group: requests answered 502 by a cut, so far.
    cut_requests: [AtomicU64; 2],
    proxy: Client<HttpConnector, Incoming>,
    checker: Client<HttpConnector, Empty<Bytes>>,
    events: Arc<Events>,
}

impl Lb {
    /// Blue's targets start healthy (the stack is up); green's once deployed and checked.
    pub fn new(
        cfg: LbConfig,
        blue: &[Arc<Node>],
        green: &[Arc<Node>],
        events: Arc<Events>,
    ) -> Arc<Lb> {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(Duration::from_secs(2)));
        let groups = blue
            .iter()
            .map(|n| (n, Group::Blue))
            .chain(green.iter().map(|n| (n, Group::Green)));
        Arc::new(Lb {
            targets: groups
                .map(|(n, group)| Target {
                    node: n.clone(),
                    group,
                    healthy: AtomicBool::new(group == Group::Blue),
                    draining: AtomicBool::new(false),
                    fails: AtomicU32::new(0),
                    oks: AtomicU32::new(0),
                    in_flight: AtomicUsize::new(0),
                })
                .collect(),
            next: [AtomicUsize::new(0), AtomicUsize::new(0)],
            green_pct: AtomicU32::new(0),
            routed: AtomicU64::new(0),
            cut: [watch::channel(0).0, watch::channel(0).0],
            cut_requests: [AtomicU64::new(0), AtomicU64::new(0)],
            proxy: Client::builder(TokioExecutor::new()).build(conn.clone()),
            checker: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(conn),
            cfg,
            events,
        })
    }

    /// The group the next request goes to: green for `pct` of every 100, spread evenly.
    fn pick_group(&self) -> Group {
        let pct = u64::from(self.green_pct.load(Ordering::SeqCst));
        let n = self.routed.fetch_add(1, Ordering::Relaxed);
        if (n + 1) * pct / 100 > n * pct / 100 {
            Group::Green
        } else {
            Group::Blue
        }
    }

    pub async fn handle(self: Arc<Self>, mut req: Request<Incoming>) -> Response<Body> {
        // Subscribed before the pick (to both groups: the pick may go either way), so a cut
        // sent after the pick reaches this request.
        let mut cuts = [self.cut[0].subscribe(), self.cut[1].subscribe()];
        let group = self.pick_group();
        let cut = &mut cuts[group.idx()];
        let mut picked = None;
        // A few tries: a target can start draining between the pick and the check below.
        for _ in 0..4 {
            let healthy: Vec<&Target> = self
                .targets
                .iter()
                .filter(|t| {
                    t.group == group
                        && t.healthy.load(Ordering::Relaxed)
                        && !t.draining.load(Ordering::SeqCst)
                })
                .collect();
            if healthy.is_empty() {
                break;
            }
            let n = self.next[group.idx()].fetch_add(1, Ordering::Relaxed);
            let t = healthy[n % healthy.len()];
            // Counted in flight before draining is checked, and a drain sets draining before
            // it reads the count (both SeqCst): either this request sees the drain and picks
            // again, or the drain waits for it.
            t.in_flight.fetch_add(1, Ordering::SeqCst);
            let guard = InFlight(&t.in_flight);
            if !t.draining.load(Ordering::SeqCst) {
                picked = Some((t, guard));
                break;
            }
        }
        let Some((t, _in_flight)) = picked else {
            return http::error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("no healthy target in the {} group", group.name()),
            );
        };
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let Ok(uri) = format!("http://{}{pq}", t.node.addr()).parse::<Uri>() else {
            return http::error(StatusCode::BAD_REQUEST, "bad request target");
        };
        *req.uri_mut() = uri;
        let forward = tokio::time::timeout(self.cfg.upstream_timeout, self.proxy.request(req));
        tokio::select! {
            r = forward => match r {
                Ok(Ok(resp)) => resp.map(|b| b.boxed()),
                Ok(Err(_)) => http::error(StatusCode::BAD_GATEWAY, "target failed"),
                Err(_) => http::error(StatusCode::GATEWAY_TIMEOUT, "target timed out"),
            },
            Ok(()) = cut.changed() => {
                self.cut_requests[group.idx()].fetch_add(1, Ordering::SeqCst);
                http::error(
                    StatusCode::BAD_GATEWAY,
                    "target deregistered without draining: request cut",
                )
            }
        }
    }

    /// Green's share of the requests from now on, in percent (at most 100), logged.
    pub fn set_green_weight(&self, pct: u32, by: &str) {
        let pct = pct.min(100);
        self.green_pct.store(pct, Ordering::SeqCst);
        self.events.log(
            "lb_weights",
            json!({ "blue": 100 - pct, "green": pct, "by": by }),
        );
    }

    /// (blue, green) weights in percent.
    pub fn weights(&self) -> (u32, u32) {
        let g = self.green_pct.load(Ordering::SeqCst);
        (100 - g, g)
    }

    /// Requests forwarded to `group` and not yet answered.
    pub fn in_flight(&self, group: Group) -> usize {
        self.targets
            .iter()
            .filter(|t| t.group == group)
            .map(|t| t.in_flight.load(Ordering::SeqCst))
            .sum()
    }

    /// A group that lost its weight lets go of its requests in flight: with `drain`, waits until
    /// they are answered (at most [`DRAIN_MAX`]); without, cuts them at once (each gets a 502).
    /// Logged either way with how many were in flight, and how many a cut answered 502 (a
    /// concurrent cut of the same group may count the other's too).
    pub async fn release_group(&self, group: Group, drain: bool, by: &str) {
        let in_flight = self.in_flight(group);
        let before = self.cut_requests[group.idx()].load(Ordering::SeqCst);
        if !drain {
            self.cut[group.idx()].send_modify(|n| *n += 1);
        }
        // Drained, or every cut request answered (one that reached its target just before the
        // cut finishes normally).
        let t0 = tokio::time::Instant::now();
        while self.in_flight(group) > 0 && t0.elapsed() < DRAIN_MAX {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let left = self.in_flight(group);
        if drain {
            self.events.log(
                "lb_group_drained",
                json!({ "group": group.name(), "in_flight": in_flight, "left": left, "by": by }),
            );
        } else {
            let cut = self.cut_requests[group.idx()].load(Ordering::SeqCst) - before;
            self.events.log(
                "lb_group_cut",
                json!({ "group": group.name(), "in_flight": in_flight, "cut": cut, "by": by }),
            );
        }
    }

    /// Health-check every target every interval, forever (the sandbox aborts it at the end).
    pub async fn health_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A green node not yet deployed has nothing to check.
            let checks = self
                .targets
                .iter()
                .filter(|t| t.node.is_deployed())
                .map(|t| self.check(t));
            http::join_all(checks).await;
        }
    }

    async fn check(&self, t: &Target) {
        let ok = match format!("http://{}/health", t.node.addr()).parse::<Uri>() {
            Ok(uri) => {
                let req = Request::get(uri).body(Empty::new());
                match req {
                    Ok(req) => matches!(
                        tokio::time::timeout(self.cfg.check_timeout, self.checker.request(req)).await,
                        Ok(Ok(r)) if r.status().is_success()
                    ),
                    Err(_) => false,
                }
            }
            Err(_) => false,
        };
        if ok {
            t.fails.store(0, Ordering::Relaxed);
            let oks = t.oks.fetch_add(1, Ordering::Relaxed) + 1;
            if !t.healthy.load(Ordering::Relaxed)
                && !t.draining.load(Ordering::Relaxed)
                && oks >= self.cfg.healthy_after
            {
                t.healthy.store(true, Ordering::SeqCst);
                // A drain that began meanwhile keeps it out.
                if t.draining.load(Ordering::SeqCst) {
                    t.healthy.store(false, Ordering::SeqCst);
                    return;
                }
                self.events.log(
                    "lb_target_healthy",
                    json!({ "node": t.node.id, "zone": t.node.zone }),
                );
            }
        } else {
            t.oks.store(0, Ordering::Relaxed);
            let fails = t.fails.fetch_add(1, Ordering::Relaxed) + 1;
            if t.healthy.load(Ordering::Relaxed) && fails >= self.cfg.unhealthy_after {
                t.healthy.store(false, Ordering::Relaxed);
                self.events.log(
                    "lb_target_unhealthy",
                    json!({ "node": t.node.id, "zone": t.node.zone }),
                );
            }
        }
    }

    /// Take a target out of rotation (draining) until it is registered again, which it then
    /// re-enters after `healthy_after` good checks. Registering a target that is not draining
    /// changes nothing (a repeated start must not drop a healthy node).
    pub fn set_draining(&self, node: &str, draining: bool) {
        if let Some(t) = self.targets.iter().find(|t| t.node.id == node) {
            if t.draining.swap(draining, Ordering::SeqCst) == draining {
                return;
            }
            t.oks.store(0, Ordering::Relaxed);
            t.healthy.store(false, Ordering::Relaxed);
            self.events.log(
                if draining {
                    "lb_target_draining"
                } else {
                    "lb_target_registered"
                },
                json!({ "node": t.node.id, "zone": t.node.zone }),
            );
        }
    }

    /// Wait until a draining target has answered every request forwarded to it (connection
    /// draining), at most [`DRAIN_MAX`] (an ALB's deregistration delay; kept below the
    /// driver's 10 s call timeout).
    pub async fn drained(&self, node: &str) {
        let Some(t) = self.targets.iter().find(|t| t.node.id == node) else {
            return;
        };
        let t0 = tokio::time::Instant::now();
        while t.in_flight.load(Ordering::SeqCst) > 0 && t0.elapsed() < DRAIN_MAX {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn is_healthy(&self, node: &str) -> bool {
        self.targets
            .iter()
            .any(|t| t.node.id == node && t.healthy.load(Ordering::Relaxed))
    }

    /// The group a node is in (`None`: not a target).
    pub fn group_of(&self, node: &str) -> Option<Group> {
        self.targets
            .iter()
            .find(|t| t.node.id == node)
            .map(|t| t.group)
    }

    /// (node id, healthy) for the control API.
    pub fn health(&self) -> Vec<(String, bool)> {
        self.targets
            .iter()
            .map(|t| (t.node.id.clone(), t.healthy.load(Ordering::Relaxed)))
            .collect()
    }
}
