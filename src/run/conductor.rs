//! A sharded run's conductor feed (`chaos run --shard I/N --conductor HOST:PORT`, the same
//! address on every shard). The conductor (shard 0) serves its live fault board
//! ([`crate::fault::live`]) and its wall clock there; every other shard polls it from before
//! the start to the end of the conductor's fault timeline. A follower:
//! - records the conductor's times of each fault it reverted as its own, so the shard's own
//!   report judges the same windows as the conductor's and the merge (the times are used as
//!   they are: clocks that differ by the measured offset shift each window by it);
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
/// A follower waits at most this long past the run's end for the conductor's timeline to end,
/// even while the feed answers (a revert retried for long, or stuck).
pub const OVERRUN_MAX: Duration = Duration::from_secs(20 * 60);
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
    // An IPv6 address goes in brackets ([::1]:7070), as in a URL.
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if !bracketed && host.contains(':') {
        return Err(bad());
    }
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
                // Only the other shards' reads count (1..count): a stray client cannot cut
                // the wait short.
                let shard = req.uri().query().and_then(|q| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix("shard="))
                        .and_then(|v| v.parse::<u32>().ok())
                        .filter(|i| (1..count).contains(i))
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

/// The conductor's clock minus this shard's (µs), NTP's way: its wall clock `wall_us` read
/// somewhere in a round trip of `rtt_us` that began at `t0_us` on this shard's wall clock, taken
/// as read in the middle (the error is at most half the round trip).
pub fn offset_of(t0_us: u64, rtt_us: u64, wall_us: u64) -> i64 {
    wall_us as i64 - (t0_us + rtt_us / 2) as i64
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
            // The round trip on the monotonic clock: a wall clock stepped meanwhile must not
            // make a round trip of 0 that would win forever.
            let rtt = sent.elapsed().as_micros() as u64;
            {
                let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
                match r {
                    Ok(feed) => {
                        let offset = offset_of(t0, rtt, feed.wall_us);
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
    /// local), until the feed has been silent for [`SILENCE_MAX`], or [`OVERRUN_MAX`] past the
    /// end whatever it says (a conductor stuck in a revert). False when it ended without the
    /// conductor's end.
    pub async fn wait_over(&self, end: tokio::time::Instant) -> bool {
        loop {
            let s = self.seen();
            if s.feed.as_ref().is_some_and(|f| f.over) {
                return true;
            }
            let now = tokio::time::Instant::now();
            let quiet_since = s.last_answer.map_or(end, |t| t.max(end));
            if now >= end
                && (now.duration_since(quiet_since) >= SILENCE_MAX
                    || now.duration_since(end) >= OVERRUN_MAX)
            {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// How a follower's wait for the conductor's end ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEnd {
    /// It read the conductor's end.
    Over,
    /// The feed went silent, or the conductor overran ([`Follower::wait_over`]).
    Lost,
    /// This shard was stopped first (Ctrl-C, SIGTERM).
    Stopped,
}

/// A follower's fault records from what it read of the feed. A fault the conductor reverted is
/// recorded reverted, with the conductor's times, so this shard's windows are the conductor's;
/// one it never reached, not reached. Any other fate (failed, unconfirmed, still applied, or
/// not over when the feed ended) is the conductor's to report, judge and undo: here it is
/// skipped, with no times (none of its windows judged on this shard's share) and its fate in
/// the note — this shard's verdict never takes an exit code for a fault it did not drive.
pub fn records(scenario: &Scenario, addr: &str, seen: &Seen, end: FeedEnd) -> Vec<FaultRecord> {
    let from = format!(
        "driven by shard {} (the conductor), times from its feed at {addr}",
        super::shard::CONDUCTOR
    );
    let judged_there = "`chaos merge` judges it on the conductor's record";
    let live = seen
        .feed
        .as_ref()
        .map(|f| f.faults.as_slice())
        .unwrap_or(&[]);
    let shown = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.3} s"));
    scenario
        .faults
        .iter()
        .map(|f| {
            let l = live.iter().find(|l| l.name == f.name);
            let (status, note) = match (l, l.and_then(|l| l.status)) {
                (_, Some(Status::Reverted)) => (FaultStatus::Reverted, from.clone()),
                (_, Some(Status::NotReached)) => (FaultStatus::NotReached, from.clone()),
                (Some(l), Some(other)) => (
                    FaultStatus::Skipped,
                    format!(
                        "{from}: {} there (injected at {}, reverted at {}); {judged_there}",
                        serde_json::to_value(other)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        shown(l.injected_at_s),
                        shown(l.reverted_at_s)
                    ),
                ),
                _ if seen.feed.is_none() => (
                    FaultStatus::Skipped,
                    format!(
                        "driven by shard {} (the conductor); its feed at {addr} never answered ({}): {judged_there}",
                        super::shard::CONDUCTOR,
                        seen.last_error.as_deref().unwrap_or("no answer")
                    ),
                ),
                (None, _) => (
                    FaultStatus::Skipped,
                    format!(
                        "not driven by the conductor (its feed at {addr} lists no such fault: skipped there, by --skip-faults or for want of a driver)"
                    ),
                ),
                (Some(l), None) => (
                    FaultStatus::Skipped,
                    format!(
                        "{from}: {} before this fault was over (injected at {}); {judged_there}",
                        match end {
                            FeedEnd::Stopped => "this shard was stopped",
                            _ => "the feed ended",
                        },
                        shown(l.injected_at_s)
                    ),
                ),
            };
            let times = status == FaultStatus::Reverted;
            FaultRecord {
                name: f.name.clone(),
                kind: f.kind.name().to_string(),
                status,
                note,
                injected_at_s: l.filter(|_| times).and_then(|l| l.injected_at_s),
                reverted_at_s: l.filter(|_| times).and_then(|l| l.reverted_at_s),
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
            "::1:7070",
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
            listen_on(&parse("[::1]:7070").unwrap()).unwrap(),
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
        let one = |seen: &Seen, end: FeedEnd| records(&s, "c:7070", seen, end).remove(0);
        let r = one(&feed(Some(Status::Reverted), true), FeedEnd::Over);
        assert_eq!(r.status, FaultStatus::Reverted);
        assert_eq!((r.injected_at_s, r.reverted_at_s), (Some(3.0), Some(4.5)));
        assert!(
            r.note.contains("times from its feed at c:7070"),
            "{}",
            r.note
        );
        let r = one(&feed(Some(Status::NotReached), true), FeedEnd::Over);
        assert_eq!(r.status, FaultStatus::NotReached);
        // Another fate is the conductor's: no times here, so no window judged on this share.
        for other in [
            Status::RevertFailed,
            Status::Unconfirmed,
            Status::InjectFailed,
        ] {
            let r = one(&feed(Some(other), true), FeedEnd::Over);
            assert_eq!(r.status, FaultStatus::Skipped);
            assert_eq!(
                (r.injected_at_s, r.reverted_at_s),
                (None, None),
                "{other:?}"
            );
            assert!(!r.applied(), "{other:?}");
        }
        let r = one(&feed(Some(Status::RevertFailed), true), FeedEnd::Over);
        assert!(
            r.note.contains("revert_failed there (injected at 3.000 s"),
            "{}",
            r.note
        );
        let r = one(&feed(None, false), FeedEnd::Lost);
        assert_eq!(r.status, FaultStatus::Skipped);
        assert_eq!(r.injected_at_s, None);
        assert!(
            r.note.contains("the feed ended before this fault was over"),
            "{}",
            r.note
        );
        let r = one(&feed(None, false), FeedEnd::Stopped);
        assert!(
            r.note.contains("this shard was stopped before"),
            "{}",
            r.note
        );
        let none = Seen {
            feed: Some(Feed {
                wall_us: 1,
                faults: Vec::new(),
                over: true,
            }),
            ..Seen::default()
        };
        let r = one(&none, FeedEnd::Over);
        assert!(r.note.contains("not driven by the conductor"), "{}", r.note);
        let silent = Seen {
            last_error: Some("connection refused".into()),
            ..Seen::default()
        };
        let r = one(&silent, FeedEnd::Lost);
        assert_eq!(r.status, FaultStatus::Skipped);
        assert!(
            r.note.contains("never answered (connection refused)"),
            "{}",
            r.note
        );
    }

    /// The offset's sign: a conductor whose clock is 5 ms ahead of this shard's reads +5 ms
    /// (the middle of a 2 ms round trip), one behind reads negative.
    #[test]
    fn the_offset_is_the_conductors_clock_minus_this_ones() {
        assert_eq!(offset_of(1_000_000, 2_000, 1_006_000), 5_000);
        assert_eq!(offset_of(1_000_000, 2_000, 996_000), -5_000);
        assert_eq!(offset_of(1_000_000, 0, 1_000_000), 0);
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
        assert!(f.seen().answers >= 1);
    }
}
