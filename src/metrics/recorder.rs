//! The recorder: per interval and per request name, HDR histograms and outcome counters, and
//! the task that owns them.
//!
//! Ownership is the concurrency story: one recorder task ([`spawn`]) owns a [`Recorder`] and is
//! fed [`Sample`]s through a [`SampleSink`] (a cloneable handle on an mpsc channel), so the hot
//! path (`record`) takes no lock at all and requests never contend with each other on shared
//! state. Whatever produces samples — the open-model engine, the goose journeys — holds a sink
//! clone; shards record on their own machines and their recordings merge ([`Recording::merge`]). Intervals are keyed by *intended* send
//! time, so a request belongs to the moment the schedule wanted it, however late it ended.
//!
//! The task drains the channel on its own timer instead of being woken per sample, ticks (a
//! [`Tick`]: what completed since the previous one, for the live view and abort conditions: they
//! read the recorder, never the engine), and ends with the finished [`Recording`] once every sink
//! is dropped. It takes time only from the run's [`Clock`], so it runs in paused time in tests.
//! It never blocks on whoever reads its ticks: a reader that falls behind gets them merged.
//!
//! Memory stays flat over long runs: an interval that can no longer receive samples (older than
//! the longest a logical request can live) is compressed to the HDR V2 deflate form. A sample
//! that arrives for a compressed interval anyway is still counted exactly (the interval is
//! decompressed, updated and compressed again) — slower, never lost.

use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use super::{hist, FailedResponse, Outcome, Sample, Stats, StatusCounts, MAX_ATTEMPTS};
use crate::clock::Clock;

/// A histogram either live (being recorded) or compressed (its interval is closed).
#[derive(Debug, Clone)]
enum Slot {
    Open(Box<Stats>),
    Closed(Box<Compact>),
}

/// A closed interval's statistics: counters plus V2 deflate histograms.
#[derive(Debug, Clone, Default)]
pub struct Compact {
    pub latency: Vec<u8>,
    pub service: Vec<u8>,
    pub lateness: Vec<u8>,
    pub outcomes: [u64; Outcome::COUNT],
    pub attempts: [u64; MAX_ATTEMPTS + 1],
    pub exhausted: u64,
    pub statuses: StatusCounts,
    /// By [`super::tags`] id; [`Recording::tags`] names them.
    pub tags: StatusCounts,
}

impl Compact {
    fn from_stats(s: &Stats) -> Compact {
        Compact {
            latency: hist::encode(&s.latency),
            service: hist::encode(&s.service),
            lateness: hist::encode(&s.lateness),
            outcomes: s.outcomes,
            attempts: s.attempts,
            exhausted: s.exhausted,
            statuses: s.statuses.clone(),
            tags: s.tags.clone(),
        }
    }

    /// Back to full statistics. The bytes were produced by `hist::encode`, so decoding only
    /// fails on a broken invariant; an empty histogram is used then rather than unwinding.
    pub fn to_stats(&self) -> Stats {
        let dec = |b: &[u8]| hist::decode(b).unwrap_or_else(|_| hist::new_hist());
        Stats {
            latency: dec(&self.latency),
            service: dec(&self.service),
            lateness: dec(&self.lateness),
            outcomes: self.outcomes,
            attempts: self.attempts,
            exhausted: self.exhausted,
            statuses: self.statuses.clone(),
            tags: self.tags.clone(),
        }
    }
}

impl Slot {
    fn stats_mut(&mut self) -> &mut Stats {
        if let Slot::Closed(c) = self {
            *self = Slot::Open(Box::new(c.to_stats()));
        }
        match self {
            Slot::Open(s) => s,
            Slot::Closed(_) => unreachable!("just opened"),
        }
    }

    fn close(&mut self) {
        if let Slot::Open(s) = self {
            *self = Slot::Closed(Box::new(Compact::from_stats(s)));
        }
    }

    fn compact(&self) -> Compact {
        match self {
            Slot::Open(s) => Compact::from_stats(s),
            Slot::Closed(c) => (**c).clone(),
        }
    }
}

/// Live, per-request-name, per-interval recording. Owned by one task.
pub struct Recorder {
    interval: Duration,
    names: Vec<String>,
    /// `intervals[i][r]`: interval i (intended time in [i*interval, (i+1)*interval)), request r.
    intervals: Vec<Vec<Slot>>,
    /// Intervals below this index are compressed.
    closed_below: usize,
    /// Samples by *completion* since the last `take_live`, for the progress view.
    live: Stats,
    live_requests: u64,
}

impl Recorder {
    pub fn new(names: Vec<String>, interval: Duration) -> Recorder {
        assert!(!interval.is_zero(), "interval must be positive");
        Recorder {
            interval,
            names,
            intervals: Vec::new(),
            closed_below: 0,
            live: Stats::default(),
            live_requests: 0,
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn index_of(&self, t: Duration) -> usize {
        (t.as_nanos() / self.interval.as_nanos()) as usize
    }

    /// The hot path: bucket one sample. No allocation once an interval exists.
    pub fn record(&mut self, s: &Sample) {
        let i = self.index_of(s.intended);
        while self.intervals.len() <= i {
            let row = (0..self.names.len())
                .map(|_| Slot::Open(Box::default()))
                .collect();
            self.intervals.push(row);
        }
        let r = (s.request as usize).min(self.names.len().saturating_sub(1));
        let slot = &mut self.intervals[i][r];
        let reopened = matches!(slot, Slot::Closed(_));
        slot.stats_mut().record(s);
        if reopened {
            slot.close();
        }
        self.live.record(s);
        self.live_requests += 1;
    }

    /// Compress every interval that ends at or before `t` (intended time). Call with
    /// `now - longest request lifetime`: nothing can arrive for those any more.
    pub fn close_before(&mut self, t: Duration) {
        let end = self.index_of(t).min(self.intervals.len());
        for row in &mut self.intervals[self.closed_below.min(end)..end] {
            for slot in row.iter_mut() {
                slot.close();
            }
        }
        self.closed_below = self.closed_below.max(end);
    }

    /// Statistics of the samples completed since the last call (for the progress view).
    pub fn take_live(&mut self) -> Stats {
        self.live_requests = 0;
        std::mem::take(&mut self.live)
    }

    /// End the recording: every interval compressed.
    pub fn finish(mut self) -> Recording {
        let n = self.intervals.len();
        self.close_before(self.interval * n as u32);
        Recording {
            interval: self.interval,
            names: self.names,
            intervals: self
                .intervals
                .iter()
                .map(|row| row.iter().map(Slot::compact).collect())
                .collect(),
            failures: Vec::new(),
            tags: Vec::new(),
        }
    }
}

/// A finished recording: what reports and SLO evaluation work from (and, with shards, a merge).
#[derive(Debug, Clone)]
pub struct Recording {
    pub interval: Duration,
    pub names: Vec<String>,
    /// `intervals[i][r]`, all compressed.
    pub intervals: Vec<Vec<Compact>>,
    /// The first few failed responses of each request name (the load engine fills them in; the
    /// recorder itself never sees a response), ordered by request, then intended time.
    pub failures: Vec<FailedResponse>,
    /// The names of the [`super::tags`] ids the cells count by: id k is `tags[k - 1]` (the
    /// engine fills them in; empty without `responses_by`).
    pub tags: Vec<String>,
}

impl Recording {
    /// Merge intervals `[from, to)` for one request (or all when `None`).
    pub fn aggregate(&self, from: usize, to: usize, request: Option<usize>) -> Stats {
        let mut acc = Stats::default();
        let to = to.min(self.intervals.len());
        for row in self.intervals.get(from..to).unwrap_or(&[]) {
            for (r, c) in row.iter().enumerate() {
                if request.is_none_or(|want| want == r) {
                    acc.add(&c.to_stats());
                }
            }
        }
        acc
    }

    /// The interval range covering intended times `[start, end)`, each end moved back to the
    /// start of the interval holding it: an interval cut by a window's boundary belongs to the
    /// window that starts inside it (the interval in which a fault is injected counts as during
    /// the fault, not before it). Boundaries on interval starts are exact.
    pub fn range(&self, start: Duration, end: Duration) -> (usize, usize) {
        let iv = self.interval.as_nanos().max(1);
        let n = self.intervals.len();
        let from = (start.as_nanos() / iv) as usize;
        // A window reaching into the last (possibly partial) interval of the run takes it: no
        // later window could.
        let to = if n > 0 && end.as_nanos() > (n as u128 - 1) * iv {
            n
        } else {
            (end.as_nanos() / iv) as usize
        };
        (from.min(self.intervals.len()), to.min(self.intervals.len()))
    }

    /// Add `other`'s samples to this recording, interval by interval and request by request:
    /// histograms added exactly (HDR), counters summed — the recording of both runs' samples
    /// together, as if one recorder had seen them all (shards merge so). Refused unless both
    /// have the same interval and request names; the longer run's extra intervals are kept.
    /// The kept failed responses are left to the caller.
    pub fn merge(&mut self, other: &Recording) -> Result<(), String> {
        if self.interval != other.interval {
            return Err(format!(
                "recorder intervals differ ({:?} and {:?})",
                self.interval, other.interval
            ));
        }
        if self.names != other.names {
            return Err(format!(
                "request names differ ({} and {})",
                self.names.join(", "),
                other.names.join(", ")
            ));
        }
        // Their tag ids as ours: the same name is the same id, a new name a new id.
        let ids: Vec<u16> = other
            .tags
            .iter()
            .map(|name| match self.tags.iter().position(|t| t == name) {
                Some(i) => (i + 1) as u16,
                None => {
                    self.tags.push(name.clone());
                    self.tags.len() as u16
                }
            })
            .collect();
        let ours = |c: &Compact| -> Compact {
            let mut c = c.clone();
            let mut tags = StatusCounts::default();
            for (id, n) in c.tags.iter() {
                tags.add(ids.get(usize::from(id) - 1).copied().unwrap_or(id), n);
            }
            c.tags = tags;
            c
        };
        for (i, row) in other.intervals.iter().enumerate() {
            if i == self.intervals.len() {
                self.intervals.push(row.iter().map(ours).collect());
                continue;
            }
            for (mine, theirs) in self.intervals[i].iter_mut().zip(row) {
                let mut s = mine.to_stats();
                s.add(&ours(theirs).to_stats());
                *mine = Compact::from_stats(&s);
            }
        }
        Ok(())
    }

    pub fn request_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Latency histogram of one interval over all requests (for series).
    pub fn interval_latency(&self, i: usize) -> Histogram<u64> {
        self.aggregate(i, i + 1, None).latency
    }
}

/// Where samples go: a cloneable handle on the recorder task. The recording finishes when the
/// last clone is dropped.
#[derive(Debug, Clone)]
pub struct SampleSink {
    tx: mpsc::UnboundedSender<Sample>,
}

impl SampleSink {
    /// Hand one sample to the recorder. Never blocks and never wakes the recorder (it drains on
    /// its own timer). A sample sent after the recorder has gone (only possible if it panicked)
    /// is dropped: the run is failing anyway, and a request must not unwind for it.
    #[inline]
    pub fn send(&self, s: Sample) {
        let _ = self.tx.send(s);
    }
}

/// How the recorder task ticks and when it compresses.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How often a [`Tick`] is produced (the live view's refresh, abort conditions' step).
    pub tick: Duration,
    /// The longest a sample can arrive after its intended time: intervals older than this
    /// behind the clock are compressed. Too short costs only speed (a late sample reopens its
    /// interval), never a count.
    pub settle: Duration,
}

/// What completed between two ticks: the recorder's live view.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Clock offsets of the previous tick (of the recorder's start for the first) and of this
    /// one: `live` holds the samples recorded in between.
    pub since: Duration,
    pub at: Duration,
    /// Everything recorded in `(since, at]`, by arrival (completion), all request names.
    pub live: Stats,
    /// Samples recorded since the start.
    pub recorded: u64,
    /// The last tick: every sink was dropped, the recording is complete.
    pub last: bool,
}

impl Tick {
    /// Fold a later tick into this one (when the reader fell behind).
    fn absorb(&mut self, later: Tick) {
        self.at = later.at;
        self.live.add(&later.live);
        self.recorded = later.recorded;
        self.last |= later.last;
    }
}

/// The other end of [`spawn`]: ticks while the recording runs, then the [`Recording`].
pub struct RecorderHandle {
    ticks: mpsc::Receiver<Tick>,
    task: tokio::task::JoinHandle<Recording>,
}

impl RecorderHandle {
    /// The next tick; `None` once the recording is complete (after the tick marked `last`).
    pub async fn tick(&mut self) -> Option<Tick> {
        self.ticks.recv().await
    }

    /// The finished recording, once every sink is dropped. Ticks not read yet are discarded.
    /// A panic in the recorder task (a broken invariant) is resumed here, in the caller, so the
    /// run's panic handling (rollback first) sees it.
    pub async fn finish(self) -> Recording {
        // Closing the tick channel first: the task never waits on a reader that has stopped.
        drop(self.ticks);
        match self.task.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: only a runtime shutting down does that, and then nobody is waiting.
            Err(e) => panic!("recorder task cancelled: {e}"),
        }
    }
}

/// Ticks buffered for a slow reader before they are merged instead.
pub(crate) const TICKS_BUFFERED: usize = 64;
/// The recorder drains the channel on its own clock instead of being woken per sample: at tens
/// of thousands of requests per second, a wake-up per send (a futex call across threads) costs
/// more than the recording itself. Samples wait at most this long in the channel; their times
/// were taken when they happened, so nothing measured changes.
pub(crate) const DRAIN: Duration = Duration::from_millis(5);
/// Samples taken off the channel before they are recorded, in one go.
const BATCH: usize = 4096;

/// Start the recorder task on the current runtime: samples sent into the returned sink (and its
/// clones) are recorded per `interval` of intended time, per request name (`names`, indexed by
/// [`Sample::request`]); the handle yields a [`Tick`] every `opts.tick` of `clock` time and the
/// [`Recording`] when every sink is gone.
pub fn spawn(
    names: Vec<String>,
    interval: Duration,
    clock: Clock,
    opts: Options,
) -> (SampleSink, RecorderHandle) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ticks_tx, ticks) = mpsc::channel(TICKS_BUFFERED);
    let rec = Recorder::new(names, interval);
    let task = tokio::spawn(record_task(rec, rx, clock, opts, ticks_tx));
    (SampleSink { tx }, RecorderHandle { ticks, task })
}

async fn record_task(
    mut rec: Recorder,
    mut rx: mpsc::UnboundedReceiver<Sample>,
    clock: Clock,
    opts: Options,
    ticks: mpsc::Sender<Tick>,
) -> Recording {
    let tick = opts.tick.max(DRAIN);
    let mut buf = Vec::with_capacity(BATCH);
    let mut recorded = 0u64;
    let mut since = clock.elapsed();
    // Ticks on a grid from the epoch: a drain that passes a tick late does not push the later
    // ones back.
    let mut next = tick * (since.as_nanos() / tick.as_nanos() + 1) as u32;
    // A tick the reader had no room for: later ones are merged into it.
    let mut pending: Option<Tick> = None;
    let offer = |t: Tick, pending: &mut Option<Tick>| {
        let t = match pending.take() {
            Some(mut p) => {
                p.absorb(t);
                p
            }
            None => t,
        };
        match ticks.try_send(t) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(t)) => *pending = Some(t),
            // Nobody reads ticks (any more): fine, the recording goes on.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    };
    loop {
        tokio::time::sleep(DRAIN).await;
        let open = drain(&mut rx, &mut buf, &mut rec, &mut recorded);
        if !open {
            break;
        }
        let now = clock.elapsed();
        if now >= next {
            next += tick;
            if next <= now {
                next = now + tick;
            }
            let t = Tick {
                since,
                at: now,
                live: rec.take_live(),
                recorded,
                last: false,
            };
            since = now;
            offer(t, &mut pending);
            rec.close_before(now.saturating_sub(opts.settle));
        }
    }
    let mut last = Tick {
        since,
        at: clock.elapsed(),
        live: rec.take_live(),
        recorded,
        last: true,
    };
    if let Some(mut p) = pending.take() {
        p.absorb(last);
        last = p;
    }
    // The last tick waits for room: a reader reading until `None` gets it, and `finish` closes
    // the channel so a reader that stopped never holds the recording up.
    let _ = ticks.send(last).await;
    rec.finish()
}

/// Take everything waiting in the channel and record it, in batches. Returns false once every
/// sender is gone (and everything they sent is recorded).
fn drain(
    rx: &mut mpsc::UnboundedReceiver<Sample>,
    buf: &mut Vec<Sample>,
    rec: &mut Recorder,
    recorded: &mut u64,
) -> bool {
    let mut flush = |buf: &mut Vec<Sample>| {
        *recorded += buf.len() as u64;
        for s in buf.drain(..) {
            rec.record(&s);
        }
    };
    let open = loop {
        match rx.try_recv() {
            Ok(s) => buf.push(s),
            Err(mpsc::error::TryRecvError::Empty) => break true,
            // Every sender is gone: all samples are accounted for.
            Err(mpsc::error::TryRecvError::Disconnected) => break false,
        }
        if buf.len() >= BATCH {
            flush(buf);
        }
    };
    flush(buf);
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(req: u16, at_ms: u64, lat_us: u64, outcome: Outcome, attempts: u8) -> Sample {
        Sample {
            request: req,
            intended: Duration::from_millis(at_ms),
            latency_us: lat_us,
            service_us: lat_us / 2,
            lateness_us: 10,
            outcome,
            status: match outcome {
                Outcome::Ok => 200,
                Outcome::Http4xx => 404,
                Outcome::Http5xx => 503,
                _ => 0,
            },
            attempts,
            exhausted: false,
            tag: 0,
        }
    }

    /// Tag counts survive compression, and a merge maps the other recording's ids to this
    /// one's by name (shards see the versions in different orders).
    #[test]
    fn tags_are_counted_and_merged_by_name() {
        let record = |tags: &[(u8, u64)], names: &[&str]| {
            let mut r = Recorder::new(vec!["a".into()], Duration::from_secs(1));
            let mut s = sample(0, 10, 1000, Outcome::Ok, 1);
            for &(tag, at) in tags {
                s.tag = tag;
                s.intended = Duration::from_millis(at);
                r.record(&s);
            }
            let mut rec = r.finish();
            rec.tags = names.iter().map(|n| n.to_string()).collect();
            rec
        };
        // Shard one saw v1 first, shard two v2 first; an untagged response counts nowhere.
        let mut one = record(&[(1, 10), (1, 20), (2, 1500)], &["v1", "v2"]);
        let two = record(&[(1, 10), (2, 30), (0, 40), (1, 2500)], &["v2", "v1"]);
        one.merge(&two).unwrap();
        assert_eq!(one.tags, ["v1", "v2"]);
        let at = |rec: &Recording, i: usize| {
            let s = rec.aggregate(i, i + 1, None);
            s.tags.iter().collect::<Vec<_>>()
        };
        assert_eq!(at(&one, 0), [(1, 3), (2, 1)]);
        assert_eq!(at(&one, 1), [(2, 1)]);
        assert_eq!(at(&one, 2), [(2, 1)], "their extra interval, in our ids");
        let three = record(&[(1, 10)], &["v3"]);
        one.merge(&three).unwrap();
        assert_eq!(one.tags, ["v1", "v2", "v3"]);
        assert_eq!(at(&one, 0), [(1, 3), (2, 1), (3, 1)]);
    }

    #[test]
    fn buckets_by_intended_time_and_request() {
        let mut r = Recorder::new(vec!["a".into(), "b".into()], Duration::from_secs(1));
        r.record(&sample(0, 10, 1000, Outcome::Ok, 1));
        r.record(&sample(1, 999, 2000, Outcome::Http5xx, 2));
        r.record(&sample(0, 1000, 3000, Outcome::Ok, 1));
        r.record(&sample(0, 2500, 0, Outcome::NotSent, 0));
        let rec = r.finish();
        assert_eq!(rec.intervals.len(), 3);
        let first = rec.aggregate(0, 1, None);
        assert_eq!(first.requests(), 2);
        assert_eq!(first.errors(), 1);
        assert_eq!(first.total_attempts(), 3);
        assert_eq!(first.retried(), 1);
        assert_eq!(rec.aggregate(0, 3, Some(0)).requests(), 3);
        let all = rec.aggregate(0, 3, None);
        assert_eq!(all.count(Outcome::NotSent), 1);
        assert_eq!(all.latency.len(), 3, "not_sent has no latency");
        assert!((all.throughput() - 0.75).abs() < 1e-9);
        // Statuses survive compression and merging, each code apart; no response, no status.
        assert_eq!(
            all.statuses.iter().collect::<Vec<_>>(),
            [(200, 2), (503, 1)]
        );
    }

    #[test]
    fn statuses_are_counted_per_interval_and_request_exactly() {
        let mut r = Recorder::new(vec!["a".into(), "b".into()], Duration::from_secs(1));
        let mut s = sample(0, 10, 1000, Outcome::Http4xx, 1);
        for (req, at, status, n) in [
            (0, 10, 404, 3),
            (0, 20, 401, 2),
            (1, 30, 429, 4),
            (0, 1500, 404, 1),
        ] {
            s.request = req;
            s.intended = Duration::from_millis(at);
            s.status = status;
            for _ in 0..n {
                r.record(&s);
            }
        }
        r.close_before(Duration::from_secs(1));
        s.request = 0;
        s.intended = Duration::from_millis(900);
        r.record(&s); // late, into a compressed interval
        let rec = r.finish();
        let first = rec.aggregate(0, 1, Some(0)).statuses;
        assert_eq!(first.iter().collect::<Vec<_>>(), [(401, 2), (404, 4)]);
        assert_eq!(rec.aggregate(0, 1, Some(1)).statuses.get(429), 4);
        let all = rec.aggregate(0, 2, None).statuses;
        assert_eq!(
            all.iter().collect::<Vec<_>>(),
            [(401, 2), (404, 5), (429, 4)]
        );
    }

    #[test]
    fn late_sample_for_a_closed_interval_is_still_counted() {
        let mut r = Recorder::new(vec!["a".into()], Duration::from_millis(100));
        r.record(&sample(0, 50, 1000, Outcome::Ok, 1));
        r.record(&sample(0, 350, 1000, Outcome::Ok, 1));
        r.close_before(Duration::from_millis(300));
        r.record(&sample(0, 60, 5_000_000, Outcome::Timeout, 1));
        let rec = r.finish();
        let s = rec.aggregate(0, 1, None);
        assert_eq!(s.requests(), 2);
        assert!(s.latency.max() >= 4_990_000);
    }

    #[test]
    fn range_maps_times_to_intervals() {
        let mut r = Recorder::new(vec!["a".into()], Duration::from_secs(1));
        r.record(&sample(0, 9_500, 1, Outcome::Ok, 1));
        let rec = r.finish();
        assert_eq!(rec.range(Duration::ZERO, Duration::from_secs(10)), (0, 10));
        // 6.5 s cuts interval 6: it belongs to the window that starts there.
        assert_eq!(
            rec.range(Duration::from_secs(3), Duration::from_millis(6500)),
            (3, 6)
        );
        assert_eq!(
            rec.range(Duration::from_millis(6500), Duration::from_secs(10)),
            (6, 10)
        );
        // The run's last, partial interval belongs to windows reaching into it.
        let n = rec.intervals.len();
        let end = rec.interval * (n as u32 - 1) + Duration::from_millis(300);
        assert_eq!(rec.range(Duration::ZERO, end), (0, n));
        // Adjacent windows share no interval and leave none out.
        let (a, b) = (Duration::from_millis(3003), Duration::from_millis(7999));
        assert_eq!(rec.range(Duration::ZERO, a).1, rec.range(a, b).0);
        assert_eq!(rec.range(a, b).1, rec.range(b, Duration::from_secs(10)).0);
    }
}
