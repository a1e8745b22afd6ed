//! A sharded run's conductor feed (`chaos run --shard I/N --conductor HOST:PORT`, the same
//! address on every shard). The conductor (shard 0) serves its live fault board
//! ([`crate::fault::live`]) and its wall clock there; every other shard polls it from before
//! the start to the end of the conductor's fault timeline. A follower:
//! - records the conductor's fault times as its own, so every shard's windows (its own report,
//!   its abort conditions' view after the run, and the merge) are the conductor's;
//! - measures its clock's offset to the conductor's the way NTP does: the conductor's time
//!   against the middle of the round trip, keeping the sample with the shortest round trip
//!   (the error is at most half of it);
//! - waits for the conductor's timeline to be over before its read-back and its record.
//!
//! The feed is read-only: `GET /timeline` is its only route, and nothing it serves can act on
//! a fault. It binds the address given when its host is an IP address (`localhost` is
//! 127.0.0.1), and all interfaces at that port when it is a name — a Kubernetes service name
//! the other pods resolve. It never drives a fault.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::fault::live::{Board, LiveFault};
use crate::fault::Status;
use crate::report::{FaultRecord, FaultStatus};
use crate::sandbox::http;
use crate::scenario::Scenario;

/// How often a follower reads the feed.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// A follower gives up waiting for the conductor's timeline to end when the feed has not
/// answered for this long past the run's scheduled end.
pub const SILENCE_MAX: Duration = Duration::from_secs(15);
/// How long the conductor keeps serving after its timeline ended, at most, for followers that
/// have not read the end yet.
const LINGER_MAX: Duration = Duration::from_secs(3);

/// What the feed answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Feed {
    /// The conductor's wall clock when it answered, µs since the Unix epoch.
    pub wall_us: u64,
    pub faults: Vec<LiveFault>,
    /// The conductor's fault timeline is over: every fault's fate is final.
    pub over: bool,
}

/// `HOST:PORT`, checked: a port, and a host.
pub fn parse(s: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "--conductor {s:?} is not HOST:PORT: where shard 0 serves its fault times to the other shards, the same on every shard, e.g. --conductor 127.0.0.1:7070 (or a Kubernetes service name)"
        )
    };
    let (host, port) = s.trim().rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(s.trim().to_string())
}

/// Where the conductor listens for `addr` (see the module doc).
fn listen_on(addr: &str) -> Result<SocketAddr, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("--conductor {addr}: no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("--conductor {addr}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
    };
    Ok(SocketAddr::new(ip, port))
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The conductor's side: the feed, served while this lives.
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    board: Arc<Board>,
    /// The followers (by shard index) that have read the feed since it was over.
    saw_over: Arc<Mutex<std::collections::BTreeSet<u32>>>,
    followers: u32,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Served {
    /// Once the timeline is over: serve on until every follower has read that (or
    /// [`LINGER_MAX`]), so none waits out its silence limit for an end it missed.
    pub async fn linger(&self) {
        self.board.close();
        let until = tokio::time::Instant::now() + LINGER_MAX;
        while tokio::time::Instant::now() < until {
            let seen = self.saw_over.lock().map_or(0, |s| s.len() as u32);
            if seen >= self.followers {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Serve `board` at `addr` (the conductor of `count` shards).
pub async fn serve(addr: &str, board: Arc<Board>, count: u32) -> Result<Served, String> {
    let at = listen_on(addr)?;
    let listener = http::bind_addr(at)
        .await
        .map_err(|e| format!("--conductor {addr}: cannot listen on {at}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("--conductor {addr}: {e}"))?;
    let saw_over = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let (b, seen) = (board.clone(), saw_over.clone());
    let task = tokio::spawn(http::serve(listener, move |req| {
        let (b, seen) = (b.clone(), seen.clone());
        async move {
            if req.method() != Method::GET || req.uri().path() != "/timeline" {
                return http::error(StatusCode::NOT_FOUND, "GET /timeline only");
            }
            let (faults, over) = b.snapshot();
            if over {
                let shard = req.uri().query().and_then(|q| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix("shard="))
                        .and_then(|v| v.parse::<u32>().ok())
                });
                if let (Some(i), Ok(mut s)) = (shard, seen.lock()) {
                    s.insert(i);
                }
            }
            let feed = Feed {
                wall_us: now_us(),
                faults,
                over,
            };
            http::json(
                StatusCode::OK,
                &serde_json::to_value(feed).unwrap_or_default(),
            )
        }
    }));
    tracing::info!(%at, "conductor: serving the fault times to the other shards");
    Ok(Served {
        addr: bound,
        task,
        board,
        saw_over,
        followers: count.saturating_sub(1),
    })
}

/// What a follower has read from the feed so far.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The latest feed read.
    pub feed: Option<Feed>,
    /// When (local) the feed last answered.
    pub last_answer: Option<tokio::time::Instant>,
    /// The shortest round trip seen (µs) and the offset measured on it: the conductor's clock
    /// minus this shard's (µs).
    pub best: Option<(u64, i64)>,
    pub answers: u64,
    pub failures: u64,
    pub last_error: Option<String>,
}

/// A follower's side: the feed polled in the background while this lives.
pub struct Follower {
    pub addr: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start polling the conductor at `addr` as shard `index`.
pub fn follow(addr: &str, index: u32) -> Follower {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let url = format!("http://{addr}/timeline?shard={index}");
    let s = seen.clone();
    let task = tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build();
        let Ok(client) = client else { return };
        loop {
            let t0 = now_us();
            let sent = tokio::time::Instant::now();
            let r = match client.get(&url).send().await {
                Ok(resp) => resp.json::<Feed>().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let t3 = now_us();
            {
                let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
                match r {
                    Ok(feed) => {
                        let rtt = t3.saturating_sub(t0);
                        let offset = feed.wall_us as i64 - ((t0 + t3) / 2) as i64;
                        if s.best.is_none_or(|(r, _)| rtt < r) {
                            s.best = Some((rtt, offset));
                        }
                        let over = feed.over;
                        s.feed = Some(feed);
                        s.answers += 1;
                        s.last_answer = Some(tokio::time::Instant::now());
                        if over {
                            return;
                        }
                    }
                    Err(e) => {
                        s.failures += 1;
                        s.last_error = Some(e);
                    }
                }
            }
            tokio::time::sleep_until(sent + POLL_EVERY).await;
        }
    });
    Follower {
        addr: addr.to_string(),
        seen,
        task,
    }
}

impl Follower {
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Wait until the conductor's timeline is over — or, past `end` (the run's scheduled end,
    /// local), until the feed has been silent for [`SILENCE_MAX`]. False when it ended without
    /// the conductor's end.
    pub async fn wait_over(&self, end: tokio::time::Instant) -> bool {
        loop {
            let s = self.seen();
            if s.feed.as_ref().is_some_and(|f| f.over) {
                return true;
            }
            let now = tokio::time::Instant::now();
            let quiet_since = s.last_answer.map_or(end, |t| t.max(end));
            if now >= end && now.duration_since(quiet_since) >= SILENCE_MAX {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A follower's fault records: the conductor's times from its feed (`over`: the feed's end
/// was read). A fault the conductor reverted is recorded reverted, with its times, so this
/// shard's windows are the conductor's; one it never reached, not reached; any other fate
/// (failed, unconfirmed, still applied) is the conductor's to report and undo — here it is
/// skipped with that fate in its note, so this shard's verdict never takes an exit code for a
/// fault it did not drive.
pub fn records(scenario: &Scenario, addr: &str, seen: &Seen, over: bool) -> Vec<FaultRecord> {
    let from = format!(
        "driven by shard {} (the conductor), times from its feed at {addr}",
        super::shard::CONDUCTOR
    );
    let live = seen
        .feed
        .as_ref()
        .map(|f| f.faults.as_slice())
        .unwrap_or(&[]);
    scenario
        .faults
        .iter()
        .map(|f| {
            let l = live.iter().find(|l| l.name == f.name);
            let (status, note) = match l.and_then(|l| l.status) {
                Some(Status::Reverted) => (FaultStatus::Reverted, from.clone()),
                Some(Status::NotReached) => (FaultStatus::NotReached, from.clone()),
                Some(other) => (
                    FaultStatus::Skipped,
                    format!(
                        "{from}: {} there (the conductor's record says what became of it; `chaos merge` judges on it)",
                        serde_json::to_value(other)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    ),
                ),
                None => (
                    FaultStatus::Skipped,
                    match (&seen.feed, over) {
                        (None, _) => format!(
                            "driven by shard {} (the conductor); its feed at {addr} never answered ({}): `chaos merge` judges on its record",
                            super::shard::CONDUCTOR,
                            seen.last_error.as_deref().unwrap_or("no answer")
                        ),
                        _ => format!(
                            "{from}: the feed ended before this fault was over; `chaos merge` judges on the conductor's record"
                        ),
                    },
                ),
            };
            FaultRecord {
                name: f.name.clone(),
                kind: f.kind.name().to_string(),
                status,
                note,
                injected_at_s: l.and_then(|l| l.injected_at_s),
                reverted_at_s: l.and_then(|l| l.reverted_at_s),
                by_hand: Default::default(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_host_and_port_and_a_name_listens_everywhere() {
        assert_eq!(parse("127.0.0.1:7070").unwrap(), "127.0.0.1:7070");
        assert_eq!(
            parse("chaos-shards-0.chaos-shards:7070").unwrap(),
            "chaos-shards-0.chaos-shards:7070"
        );
        for bad in [
            "7070",
            "127.0.0.1",
            ":7070",
            "host:0",
            "host:http",
            "host:70000",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("HOST:PORT"), "{bad}: {e}");
        }
        assert_eq!(
            listen_on("127.0.0.1:7070").unwrap(),
            "127.0.0.1:7070".parse().unwrap()
        );
        assert_eq!(
            listen_on("localhost:7070").unwrap(),
            "127.0.0.1:7070".parse().unwrap()
        );
        assert_eq!(
            listen_on("[::1]:7070").unwrap(),
            "[::1]:7070".parse().unwrap()
        );
        assert_eq!(
            listen_on("conductor.svc:7070").unwrap(),
            "0.0.0.0:7070".parse().unwrap()
        );
    }

    fn feed(status: Option<Status>, over: bool) -> Seen {
        Seen {
            feed: Some(Feed {
                wall_us: 1,
                faults: vec![LiveFault {
                    name: "zone-a-down".into(),
                    kind: "az-outage".into(),
                    injected_at_s: Some(3.0),
                    reverted_at_s: status.map(|_| 4.5),
                    status,
                }],
                over,
            }),
            ..Seen::default()
        }
    }

    /// A follower takes the conductor's times for a fault it reverted or never reached, and
    /// never another fate (that is the conductor's to report and undo); without the feed's
    /// word it says why.
    #[test]
    fn a_follower_records_the_conductors_times_and_never_its_failures() {
        let s = super::super::prepare("az-outage", 1.0).unwrap();
        let one = |seen: &Seen, over: bool| records(&s, "c:7070", seen, over).remove(0);
        let r = one(&feed(Some(Status::Reverted), true), true);
        assert_eq!(r.status, FaultStatus::Reverted);
        assert_eq!((r.injected_at_s, r.reverted_at_s), (Some(3.0), Some(4.5)));
        assert!(
            r.note.contains("times from its feed at c:7070"),
            "{}",
            r.note
        );
        let r = one(&feed(Some(Status::NotReached), true), true);
        assert_eq!(r.status, FaultStatus::NotReached);
        let r = one(&feed(Some(Status::RevertFailed), true), true);
        assert_eq!(r.status, FaultStatus::Skipped);
        assert!(r.note.contains("revert_failed there"), "{}", r.note);
        let r = one(&feed(None, false), false);
        assert_eq!(r.status, FaultStatus::Skipped);
        assert_eq!(r.injected_at_s, Some(3.0));
        assert!(
            r.note.contains("the feed ended before this fault was over"),
            "{}",
            r.note
        );
        let silent = Seen {
            last_error: Some("connection refused".into()),
            ..Seen::default()
        };
        let r = one(&silent, false);
        assert_eq!(r.status, FaultStatus::Skipped);
        assert!(
            r.note.contains("never answered (connection refused)"),
            "{}",
            r.note
        );
    }

    /// A conductor that never answers holds a follower only until the feed has been silent
    /// for [`SILENCE_MAX`] past the run's end; one that serves the end lets it go at once.
    #[tokio::test(start_paused = true)]
    async fn a_silent_conductor_holds_a_follower_only_so_long() {
        // Nothing listens on port 1.
        let f = follow("127.0.0.1:1", 1);
        let t = tokio::time::Instant::now();
        let end = t + Duration::from_millis(300);
        assert!(!f.wait_over(end).await);
        let waited = t.elapsed();
        assert!(
            waited >= SILENCE_MAX && waited < SILENCE_MAX + Duration::from_secs(2),
            "{waited:?}"
        );
        assert!(f.seen().failures > 0);
        assert!(f.seen().best.is_none());
    }

    #[tokio::test]
    async fn a_follower_reads_the_conductors_end_and_its_clock() {
        let board = Arc::new(Board::default());
        let served = serve("127.0.0.1:0", board.clone(), 2).await.unwrap();
        let f = follow(&served.addr.to_string(), 1);
        let end = tokio::time::Instant::now() + Duration::from_secs(60);
        let over = async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            served.linger().await;
        };
        let (read, ()) = tokio::join!(f.wait_over(end), over);
        assert!(read, "the end was read");
        let (rtt, offset) = f.seen().best.expect("a measured offset");
        assert!(offset.unsigned_abs() <= rtt / 2 + 1, "{offset} on {rtt}");
        assert!(f.seen().answers >= 2);
    }
}
