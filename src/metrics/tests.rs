//! The recorder task, in paused time: samples reach the right intervals, ticks cover what
//! completed between them, the recording finishes when the last sink drops, and a reader that
//! falls behind never holds the recorder up.

use std::time::Duration;

use super::recorder::{self, Options, RecorderHandle, SampleSink, Tick, DRAIN, TICKS_BUFFERED};
use super::{Outcome, Sample};
use crate::clock::Clock;

fn sample(req: u16, at_ms: u64, outcome: Outcome) -> Sample {
    Sample {
        request: req,
        intended: Duration::from_millis(at_ms),
        latency_us: 1000,
        service_us: 500,
        lateness_us: 10,
        outcome,
        status: if outcome == Outcome::Ok { 200 } else { 503 },
        attempts: 1,
        exhausted: false,
        tag: 0,
    }
}

const TICK: Duration = Duration::from_millis(100);

fn start(settle: Duration) -> (Clock, SampleSink, RecorderHandle) {
    let clock = Clock::start();
    let names = vec!["a".to_string(), "b".to_string()];
    let (sink, h) = recorder::spawn(
        names,
        Duration::from_secs(1),
        clock,
        Options { tick: TICK, settle },
    );
    (clock, sink, h)
}

/// Every tick up to and including the last.
async fn all_ticks(h: &mut RecorderHandle) -> Vec<Tick> {
    let mut v = Vec::new();
    while let Some(t) = h.tick().await {
        v.push(t);
    }
    v
}

#[tokio::test(start_paused = true)]
async fn samples_land_in_their_intervals_and_the_recording_ends_when_every_sink_drops() {
    let (_, sink, mut h) = start(Duration::from_secs(60));
    let other = sink.clone();
    // From another task too: a sink is a cloneable handle, nothing ties it to the engine.
    tokio::spawn(async move {
        other.send(sample(1, 999, Outcome::Http5xx));
        other.send(sample(0, 2500, Outcome::NotSent));
    });
    sink.send(sample(0, 10, Outcome::Ok));
    sink.send(sample(0, 1000, Outcome::Ok));
    // While a sink lives the recording goes on, tick after tick.
    for _ in 0..20 {
        let t = h.tick().await.unwrap();
        assert!(!t.last);
    }
    drop(sink);
    let ticks = all_ticks(&mut h).await;
    let last = ticks.last().unwrap();
    assert!(last.last, "the final tick says so");
    assert_eq!(last.recorded, 4);
    let rec = h.finish().await;
    assert_eq!(rec.names, ["a", "b"]);
    assert_eq!(rec.intervals.len(), 3);
    let first = rec.aggregate(0, 1, None);
    assert_eq!(first.requests(), 2);
    assert_eq!(first.count(Outcome::Http5xx), 1);
    assert_eq!(rec.aggregate(0, 1, Some(1)).requests(), 1);
    assert_eq!(rec.aggregate(1, 2, Some(0)).count(Outcome::Ok), 1);
    assert_eq!(rec.aggregate(2, 3, None).count(Outcome::NotSent), 1);
}

#[tokio::test(start_paused = true)]
async fn ticks_cover_what_completed_between_them_on_the_clock_grid() {
    let (clock, sink, mut h) = start(Duration::from_secs(60));
    for i in 0..3 {
        sink.send(sample(0, i, Outcome::Ok));
    }
    let t1 = h.tick().await.unwrap();
    assert_eq!((t1.since, t1.at), (Duration::ZERO, TICK));
    assert_eq!(t1.live.requests(), 3);
    assert_eq!(t1.recorded, 3);
    // Sent at 100 ms (time stands still while this task runs): in the second tick.
    assert_eq!(clock.elapsed(), TICK);
    sink.send(sample(0, 50, Outcome::Ok));
    sink.send(sample(1, 60, Outcome::Http5xx));
    let t2 = h.tick().await.unwrap();
    assert_eq!((t2.since, t2.at), (TICK, 2 * TICK));
    assert_eq!(t2.live.requests(), 2);
    assert!((t2.live.error_rate() - 0.5).abs() < 1e-9);
    assert_eq!(t2.recorded, 5);
    // Nothing sent: an empty tick, still on the grid.
    let t3 = h.tick().await.unwrap();
    assert_eq!(
        (t3.since, t3.at, t3.live.requests()),
        (2 * TICK, 3 * TICK, 0)
    );
    drop(sink);
    // The recorder notices at its next drain.
    let last = h.tick().await.unwrap();
    assert!(last.last);
    assert_eq!((last.since, last.at), (3 * TICK, 3 * TICK + DRAIN));
    assert_eq!(last.recorded, 5);
    assert!(h.tick().await.is_none());
    assert_eq!(
        h.finish().await.aggregate(0, usize::MAX, None).requests(),
        5
    );
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_falls_behind_gets_ticks_merged_and_loses_nothing() {
    let (clock, sink, mut h) = start(Duration::from_secs(60));
    // 100 ticks' worth of time, one sample in each, and nobody reading the ticks.
    for i in 0..100u64 {
        sink.send(sample(0, i * 100, Outcome::Ok));
        tokio::time::sleep_until(clock.at(TICK * (i as u32 + 1) + TICK / 2)).await;
    }
    drop(sink);
    let ticks = all_ticks(&mut h).await;
    assert!(ticks.len() <= TICKS_BUFFERED + 1, "{} ticks", ticks.len());
    assert!(ticks.last().unwrap().last);
    // Contiguous, and together they hold every sample once.
    assert_eq!(ticks[0].since, Duration::ZERO);
    assert!(ticks.windows(2).all(|w| w[0].at == w[1].since));
    let live: u64 = ticks.iter().map(|t| t.live.requests()).sum();
    assert_eq!(live, 100);
    assert_eq!(
        h.finish().await.aggregate(0, usize::MAX, None).requests(),
        100
    );
}

#[tokio::test(start_paused = true)]
async fn finish_without_reading_any_tick_does_not_wait_on_the_reader() {
    let (clock, sink, h) = start(Duration::from_secs(60));
    sink.send(sample(0, 0, Outcome::Ok));
    // The tick buffer is full long before this.
    tokio::time::sleep_until(clock.at(TICK * 200)).await;
    drop(sink);
    let rec = h.finish().await;
    assert_eq!(rec.aggregate(0, usize::MAX, None).requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_sample_later_than_settle_is_still_counted() {
    let (clock, sink, mut h) = start(Duration::from_millis(200));
    sink.send(sample(0, 50, Outcome::Ok));
    sink.send(sample(0, 1500, Outcome::Ok));
    // By 3 s interval 0 is long compressed.
    tokio::time::sleep_until(clock.at(Duration::from_secs(3))).await;
    sink.send(sample(0, 60, Outcome::Timeout));
    drop(sink);
    all_ticks(&mut h).await;
    let rec = h.finish().await;
    let first = rec.aggregate(0, 1, None);
    assert_eq!(first.requests(), 2);
    assert_eq!(first.count(Outcome::Timeout), 1);
}
