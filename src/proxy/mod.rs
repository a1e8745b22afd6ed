//! The built-in TCP fault proxy (DESIGN.md "Driver": `proxy`), long-lived as `chaos proxy up`:
//! each declared proxy listens on its own address and forwards every connection to its
//! upstream, and a small control API on loopback ([`control`]) applies faults to it —
//! `partition` (a blackhole: bytes dropped both ways, on open connections too, so clients time
//! out; a connection that lost bytes is reset when the partition heals, never resumed with a
//! hole in its stream), `reset` (every connection reset, new ones at accept), `down` (the listener closed:
//! connections refused, open ones reset), `latency` (delay plus uniform jitter, per
//! direction, order kept), `bandwidth` (bytes per second, per direction) and
//! `switch-upstream` (new connections go elsewhere: a cluster endpoint following a failover,
//! a blue/green cutover; open ones stay).
//!
//! A fault is a hold: `(fault, holder)` with its parameters and a lease. The effect lasts while
//! any holder holds it (the strongest wins: the longest delay, the lowest bandwidth, the latest
//! switch), and a hold whose lease runs out is healed by the proxy itself — a run that died
//! without a rollback leaves nothing applied once its leases expire. Every change is an event.
//!
//! The data path (listeners, forwarding) is [`forward`]'s; this file owns the holds and leases.
//!
//! It must never forward to anything but the upstreams its configuration names, and never
//! keep a fault past its lease.

pub mod control;
mod forward;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// One proxy as the target file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub name: String,
    pub listen: SocketAddr,
    /// `host:port` (resolved at each new connection: a DNS name may follow a failover).
    pub upstream: String,
    pub zone: Option<String>,
    /// The scenario role behind it (`db`, `cache`, `app`), if any.
    pub role: Option<String>,
    /// Where `switch-upstream` may send new connections besides `upstream` (a replica, the
    /// green deployment): nothing else is ever connected to.
    pub alternates: Vec<String>,
}

/// Which way bytes go: `up` from the client to the upstream, `down` back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
    Both,
}

impl Direction {
    fn has(self, d: Direction) -> bool {
        self == Direction::Both || self == d
    }

    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "up" => Some(Direction::Up),
            "down" => Some(Direction::Down),
            "both" => Some(Direction::Both),
            _ => None,
        }
    }
}

/// A fault on a proxy, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Effect {
    Partition,
    Reset,
    Down,
    Latency {
        delay_ms: u64,
        jitter_ms: u64,
        direction: Direction,
    },
    Bandwidth {
        bytes_per_s: u64,
        direction: Direction,
    },
    SwitchUpstream {
        to: String,
    },
}

impl Effect {
    pub fn name(&self) -> &'static str {
        match self {
            Effect::Partition => "partition",
            Effect::Reset => "reset",
            Effect::Down => "down",
            Effect::Latency { .. } => "latency",
            Effect::Bandwidth { .. } => "bandwidth",
            Effect::SwitchUpstream { .. } => "switch-upstream",
        }
    }

    pub const NAMES: [&'static str; 6] = [
        "partition",
        "reset",
        "down",
        "latency",
        "bandwidth",
        "switch-upstream",
    ];
}

struct Hold {
    effect: Effect,
    by: String,
    /// When the proxy heals it by itself; `None`: held until released.
    expires: Option<Instant>,
}

/// What connections must do now, derived from the holds.
#[derive(Debug, Clone, Default)]
struct Now {
    blackhole: bool,
    refuse: bool,
    reset: bool,
    /// Bumped when a reset or down starts: open connections are reset.
    kill_gen: u64,
    delay_up: (Duration, Duration),
    delay_down: (Duration, Duration),
    bw_up: Option<u64>,
    bw_down: Option<u64>,
    upstream: String,
}

impl Now {
    fn delay(&self, d: Direction) -> Duration {
        let (base, jitter) = if d == Direction::Up {
            self.delay_up
        } else {
            self.delay_down
        };
        if jitter.is_zero() {
            return base;
        }
        let j = rand::rng().random_range(0..=jitter.as_micros() as u64);
        base + Duration::from_micros(j)
    }

    fn bandwidth(&self, d: Direction) -> Option<u64> {
        if d == Direction::Up {
            self.bw_up
        } else {
            self.bw_down
        }
    }
}

/// Counters of one proxy, for `GET /proxies` and the tests.
#[derive(Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub reset: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub dropped: AtomicU64,
    pub upstream_errors: AtomicU64,
}

pub struct Proxy {
    pub config: ProxyConfig,
    holds: Mutex<Vec<Hold>>,
    kill_gen: AtomicU64,
    now: watch::Sender<Now>,
    pub stats: Stats,
}

/// Why a fault could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no proxy `{0}`")]
    NoProxy(String),
    #[error("{0}")]
    Bad(String),
}

impl Proxy {
    fn new(config: ProxyConfig) -> Proxy {
        let now = Now {
            upstream: config.upstream.clone(),
            ..Now::default()
        };
        Proxy {
            config,
            holds: Mutex::new(Vec::new()),
            kill_gen: AtomicU64::new(0),
            now: watch::channel(now).0,
            stats: Stats::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Hold>> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Recompute what connections must do from `holds`; `kill` starts a new generation (open
    /// connections reset).
    fn publish(&self, holds: &[Hold], kill: bool) {
        if kill {
            self.kill_gen.fetch_add(1, Ordering::SeqCst);
        }
        let mut n = Now {
            upstream: self.config.upstream.clone(),
            kill_gen: self.kill_gen.load(Ordering::SeqCst),
            ..Now::default()
        };
        for h in holds {
            match &h.effect {
                Effect::Partition => n.blackhole = true,
                Effect::Reset => n.reset = true,
                Effect::Down => n.refuse = true,
                Effect::Latency {
                    delay_ms,
                    jitter_ms,
                    direction,
                } => {
                    let v = (
                        Duration::from_millis(*delay_ms),
                        Duration::from_millis(*jitter_ms),
                    );
                    for (d, slot) in [
                        (Direction::Up, &mut n.delay_up),
                        (Direction::Down, &mut n.delay_down),
                    ] {
                        if direction.has(d) && v.0 + v.1 > slot.0 + slot.1 {
                            *slot = v;
                        }
                    }
                }
                Effect::Bandwidth {
                    bytes_per_s,
                    direction,
                } => {
                    for (d, slot) in [
                        (Direction::Up, &mut n.bw_up),
                        (Direction::Down, &mut n.bw_down),
                    ] {
                        if direction.has(d) {
                            *slot = Some(slot.map_or(*bytes_per_s, |b| b.min(*bytes_per_s)));
                        }
                    }
                }
                // The latest switch wins (holds are kept in the order they were made).
                Effect::SwitchUpstream { to } => n.upstream = to.clone(),
            }
        }
        self.now.send_replace(n);
    }

    /// Apply (or renew) `effect` held by `by`, for `lease` (`None`: until released). Whether
    /// it is new.
    fn hold(&self, effect: Effect, by: &str, lease: Option<Duration>) -> bool {
        let expires = lease.map(|l| Instant::now() + l);
        let mut holds = self.lock();
        let same = |h: &Hold| h.by == by && h.effect.name() == effect.name();
        let new = match holds.iter_mut().find(|h| same(h)) {
            Some(h) if h.effect == effect => {
                h.expires = expires;
                false
            }
            Some(h) => {
                h.effect = effect.clone();
                h.expires = expires;
                true
            }
            None => {
                holds.push(Hold {
                    effect: effect.clone(),
                    by: by.to_string(),
                    expires,
                });
                true
            }
        };
        let kill = new && matches!(effect, Effect::Reset | Effect::Down);
        self.publish(&holds, kill);
        new
    }

    /// Release `fault` held by `by`: whether it was held.
    fn release(&self, fault: &str, by: &str) -> bool {
        let mut holds = self.lock();
        let before = holds.len();
        holds.retain(|h| !(h.by == by && h.effect.name() == fault));
        let changed = holds.len() != before;
        self.publish(&holds, false);
        changed
    }

    /// Drop the holds whose lease ran out: (fault, holder) of each.
    fn expire(&self, now: Instant) -> Vec<(String, String)> {
        let mut holds = self.lock();
        let gone: Vec<(String, String)> = holds
            .iter()
            .filter(|h| h.expires.is_some_and(|e| e <= now))
            .map(|h| (h.effect.name().to_string(), h.by.clone()))
            .collect();
        if !gone.is_empty() {
            holds.retain(|h| h.expires.is_none_or(|e| e > now));
            self.publish(&holds, false);
        }
        gone
    }

    fn renew(&self, by: &str, lease: Duration) -> usize {
        let mut holds = self.lock();
        let mut n = 0;
        for h in holds
            .iter_mut()
            .filter(|h| h.by == by && h.expires.is_some())
        {
            h.expires = Some(Instant::now() + lease);
            n += 1;
        }
        n
    }

    pub fn describe(&self) -> Value {
        let now = Instant::now();
        let holds: Vec<Value> = self
            .lock()
            .iter()
            .map(|h| {
                let mut v = serde_json::to_value(&h.effect).unwrap_or(Value::Null);
                v["by"] = json!(h.by);
                v["lease_left_ms"] = json!(h
                    .expires
                    .map(|e| e.saturating_duration_since(now).as_millis() as u64));
                v
            })
            .collect();
        let s = &self.stats;
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "name": self.config.name,
            "listen": self.config.listen.to_string(),
            "upstream": self.now.borrow().upstream,
            "configured_upstream": self.config.upstream,
            "zone": self.config.zone,
            "role": self.config.role,
            "faults": holds,
            "connections": { "accepted": c(&s.accepted), "active": c(&s.active), "reset": c(&s.reset) },
            "bytes": { "up": c(&s.bytes_up), "down": c(&s.bytes_down), "dropped": c(&s.dropped) },
            "upstream_errors": c(&s.upstream_errors),
        })
    }
}

/// The event log: every fault applied, released or healed by its lease.
#[derive(Default)]
pub struct Events {
    start: Option<Instant>,
    list: Mutex<VecDeque<Value>>,
    count: AtomicU64,
}

/// The log keeps the latest events only (a long-lived proxy must not grow without bound).
const MAX_EVENTS: usize = 10_000;

impl Events {
    fn push(&self, mut e: Value) {
        let at = self.start.map_or(0, |s| s.elapsed().as_millis() as u64);
        let seq = self.count.fetch_add(1, Ordering::SeqCst);
        e["seq"] = json!(seq);
        e["at_ms"] = json!(at);
        let mut l = self.list.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() == MAX_EVENTS {
            l.pop_front();
        }
        l.push_back(e);
    }

    /// The events from sequence number `since` on.
    pub fn since(&self, since: u64) -> Vec<Value> {
        self.list
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| e["seq"].as_u64().is_some_and(|s| s >= since))
            .cloned()
            .collect()
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

/// Every proxy of a stack, their event log and the default lease.
pub struct Proxies {
    pub list: Vec<Arc<Proxy>>,
    pub events: Events,
    /// The lease a fault gets when the control call names none.
    pub lease: Duration,
}

impl Proxies {
    pub fn get(&self, name: &str) -> Result<&Arc<Proxy>, ProxyError> {
        self.list
            .iter()
            .find(|p| p.config.name == name)
            .ok_or_else(|| ProxyError::NoProxy(name.to_string()))
    }

    /// Apply or renew a fault; `lease` `None`: the default lease; `Some(ZERO)`: no lease.
    pub fn hold(
        &self,
        proxy: &str,
        effect: Effect,
        by: &str,
        lease: Option<Duration>,
    ) -> Result<bool, ProxyError> {
        let p = self.get(proxy)?;
        if let Effect::SwitchUpstream { to } = &effect {
            if *to != p.config.upstream && !p.config.alternates.contains(to) {
                return Err(ProxyError::Bad(format!(
                    "proxy {proxy} may switch only to its upstream {} or an alternate ({})",
                    p.config.upstream,
                    if p.config.alternates.is_empty() {
                        "none configured".to_string()
                    } else {
                        p.config.alternates.join(", ")
                    }
                )));
            }
        }
        let lease = match lease.unwrap_or(self.lease) {
            d if d.is_zero() => None,
            d => Some(d),
        };
        let fault = effect.name();
        let desc = serde_json::to_value(&effect).unwrap_or(Value::Null);
        let new = p.hold(effect, by, lease);
        if new {
            self.events.push(json!({
                "event": "fault_applied", "proxy": proxy, "fault": fault, "by": by,
                "effect": desc, "lease_ms": lease.map(|l| l.as_millis() as u64),
            }));
        }
        Ok(new)
    }

    pub fn release(&self, proxy: &str, fault: &str, by: &str) -> Result<bool, ProxyError> {
        let changed = self.get(proxy)?.release(fault, by);
        if changed {
            self.events.push(json!({
                "event": "fault_released", "proxy": proxy, "fault": fault, "by": by,
            }));
        }
        Ok(changed)
    }

    /// Renew every lease `by` holds, on every proxy: how many.
    pub fn renew(&self, by: &str, lease: Option<Duration>) -> usize {
        let lease = lease.unwrap_or(self.lease);
        self.list.iter().map(|p| p.renew(by, lease)).sum()
    }

    fn expire(&self) {
        let now = Instant::now();
        for p in &self.list {
            for (fault, by) in p.expire(now) {
                tracing::warn!(
                    "proxy {}: the lease of fault {fault} (held by {by}) ran out: healed",
                    p.config.name
                );
                self.events.push(json!({
                    "event": "lease_expired", "proxy": p.config.name, "fault": fault, "by": by,
                }));
            }
        }
    }
}

/// A running set of proxies and their control API; stopped (every listener and connection
/// closed) when dropped.
pub struct ProxyServer {
    pub control_url: String,
    pub proxies: Arc<Proxies>,
    tasks: JoinSet<()>,
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// How often the proxy looks for leases that ran out.
const REAP_EVERY: Duration = Duration::from_millis(100);

impl ProxyServer {
    /// Bind every proxy's listen address and the control API on `control` (port 0: any),
    /// and start serving. A listen address already taken is an error here, not later.
    pub async fn start(
        configs: Vec<ProxyConfig>,
        control: SocketAddr,
        lease: Duration,
    ) -> std::io::Result<ProxyServer> {
        let proxies = Arc::new(Proxies {
            list: configs
                .into_iter()
                .map(|c| Arc::new(Proxy::new(c)))
                .collect(),
            events: Events {
                start: Some(Instant::now()),
                ..Events::default()
            },
            lease,
        });
        let mut tasks = JoinSet::new();
        for p in &proxies.list {
            let l = crate::sandbox::http::bind_addr(p.config.listen)
                .await
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "proxy {}: cannot listen on {}: {e}",
                            p.config.name, p.config.listen
                        ),
                    )
                })?;
            tasks.spawn(forward::serve(p.clone(), Some(l)));
        }
        let ctl = crate::sandbox::http::bind_addr(control).await?;
        let control_url = format!("http://{}", ctl.local_addr()?);
        let ps = proxies.clone();
        tasks.spawn(crate::sandbox::http::serve(ctl, move |req| {
            control::handle(ps.clone(), req)
        }));
        let ps = proxies.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(REAP_EVERY);
            loop {
                tick.tick().await;
                ps.expire();
            }
        });
        Ok(ProxyServer {
            control_url,
            proxies,
            tasks,
        })
    }
}
