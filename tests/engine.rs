//! The open-model engine against real HTTP servers on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chaos::clock::Clock;
use chaos::load::{self, engine::NoProgress};
use chaos::metrics::Outcome;
use chaos::scenario::*;
use chaos::shutdown::Shutdown;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_delay_counts_are_exact_and_latency_covers_the_delay() {
    let srv = serve(Behavior::Delay(Duration::from_millis(20))).await;
    let l = hold_load(100.0, 2.0, vec![get("a", "/a"), get("b", "/b")]);
    let r = drive(&l, &srv.url()).await;
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert_eq!(r.scheduled, 200);
    assert_eq!(all.requests(), 200);
    assert_eq!(all.count(Outcome::Ok), 200);
    assert_eq!(srv.seen.count.load(Ordering::SeqCst), 200);
    assert!(all.latency.min() >= 20_000, "min {}", all.latency.min());
    assert!(all.service.min() >= 20_000);
    assert_eq!(all.total_attempts(), 200);
    // Both request names were drawn, and their counts add up.
    let a = r.recording.aggregate(0, usize::MAX, Some(0)).requests();
    let b = r.recording.aggregate(0, usize::MAX, Some(1)).requests();
    assert!(a > 50 && b > 50 && a + b == 200, "a={a} b={b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_first_attempts_are_retried_and_counted() {
    let srv = serve(Behavior::FailOnceBelow(5)).await;
    let mut req = get("a", "/");
    req.path = Template {
        parts: vec![Part::Lit("/i/".into()), Part::Seq],
    };
    let mut l = hold_load(50.0, 1.0, vec![req]);
    l.client.retry = retry(3, status_on(&[503]), None);
    let r = drive(&l, &srv.url()).await;
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert_eq!(all.requests(), 50);
    assert_eq!(
        all.count(Outcome::Ok),
        50,
        "every request recovered by retrying"
    );
    assert_eq!(all.total_attempts(), 55);
    assert_eq!(all.retried(), 5);
    assert_eq!(srv.seen.count.load(Ordering::SeqCst), 55);
    assert_eq!(all.exhausted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_not_listed_are_not_retried() {
    let srv = serve(Behavior::FailFirst(5)).await;
    let mut l = hold_load(50.0, 1.0, vec![get("a", "/")]);
    l.client.retry = retry(3, status_on(&[502]), None);
    let r = drive(&l, &srv.url()).await;
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert_eq!(all.count(Outcome::Http5xx), 5);
    assert_eq!(all.total_attempts(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_retries_at_its_share_of_requests() {
    let srv = serve(Behavior::AlwaysFail).await;
    let mut l = hold_load(100.0, 1.0, vec![get("a", "/")]);
    l.client.retry = retry(3, status_on(&[503]), Some(0.2));
    let r = drive(&l, &srv.url()).await;
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert_eq!(all.requests(), 100);
    assert_eq!(all.count(Outcome::Http5xx), 100);
    let retries = all.total_attempts() - 100;
    // Without the budget this would be 200 retries (3 attempts each).
    assert!((15..=20).contains(&retries), "retries {retries}");
    assert_eq!(
        all.exhausted, 100,
        "every failure used its attempts or hit the budget"
    );
    assert_eq!(srv.seen.count.load(Ordering::SeqCst), all.total_attempts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_freeze_shows_in_p99_because_latency_starts_at_the_intended_time() {
    let srv = serve(Behavior::Freeze {
        from: Duration::from_millis(1000),
        len: Duration::from_millis(500),
    })
    .await;
    let l = hold_load(200.0, 3.0, vec![get("a", "/")]);
    let r = drive(&l, &srv.url()).await;
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert_eq!(all.count(Outcome::Ok), 600);
    let p99 = all.latency.value_at_quantile(0.99);
    let max = all.latency.max();
    // ~100 of 600 requests were due during the freeze and waited up to 500 ms for it to end.
    assert!(p99 >= 400_000, "p99 {p99}µs should cover the 500 ms freeze");
    assert!(max >= 450_000, "max {max}µs");
    // A closed-loop tool that only timed the requests in flight would see one slow request per
    // connection; here the freeze is a sixth of all requests.
    let slow = all.latency.count_between(100_000, u64::MAX);
    assert!(slow >= 80, "{slow} requests above 100 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_follow_the_schedule_counted_per_interval_at_the_server() {
    let srv = serve(Behavior::Delay(Duration::ZERO)).await;
    let l = hold_load(400.0, 2.0, vec![get("a", "/")]);
    let r = drive(&l, &srv.url()).await;
    assert_eq!(r.scheduled, 800);
    let arrivals = srv.seen.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 800);
    // Arrivals per 500 ms, measured by the server: 200 expected in each of 4 buckets. The band
    // (±25%, a 125 ms shift) leaves room for a loaded CI machine's stalls and the first
    // connect, and still fails a schedule that bursts or drifts.
    let mut buckets = [0u32; 5];
    for (t, _) in &arrivals {
        buckets[(t.as_millis() / 500).min(4) as usize] += 1;
    }
    for (i, n) in buckets[..4].iter().enumerate() {
        assert!(
            (150..=250).contains(n),
            "bucket {i}: {n} arrivals, buckets {buckets:?}"
        );
    }
    // And every interval of the recording holds exactly the scheduled count (40 per 100 ms).
    for i in 0..20 {
        assert_eq!(r.recording.aggregate(i, i + 1, None).requests(), 40);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_queues_then_counts_not_sent() {
    let srv = serve(Behavior::Delay(Duration::from_millis(300))).await;
    let mut l = hold_load(100.0, 1.0, vec![get("a", "/")]);
    l.max_in_flight = 5;
    l.client.timeout = Duration::from_millis(700);
    let r = drive(&l, &srv.url()).await;
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert_eq!(all.requests(), 100);
    assert!(srv.seen.max_in_flight.load(Ordering::SeqCst) <= 5);
    let not_sent = all.count(Outcome::NotSent);
    assert!(not_sent >= 50, "not_sent {not_sent}");
    assert_eq!(all.sent() + not_sent, 100);
    assert_eq!(srv.seen.count.load(Ordering::SeqCst), all.sent());
    // Queued requests carry their wait in their latency.
    assert!(all.latency.max() >= 600_000, "max {}", all.latency.max());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_and_timeouts_are_outcomes_not_failures_of_the_run() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut l = hold_load(20.0, 0.5, vec![get("a", "/")]);
    l.client.retry = retry(2, status_on(&[]), None);
    let r = drive(&l, &format!("http://127.0.0.1:{port}")).await;
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert_eq!(all.count(Outcome::ConnectError), 10);
    assert_eq!(all.total_attempts(), 20);

    let srv = serve(Behavior::Delay(Duration::from_secs(5))).await;
    let mut l = hold_load(20.0, 0.5, vec![get("a", "/")]);
    l.client.timeout = Duration::from_millis(200);
    let r = drive(&l, &srv.url()).await;
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert_eq!(all.count(Outcome::Timeout), 10);
    assert!(all.latency.min() >= 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_ids_feed_later_requests_and_durable_writes_are_collected() {
    let srv = serve(Behavior::Notes).await;
    let mut create = get("create", "/notes");
    create.method = "POST".into();
    create.body = Some(Body::Json(JsonTemplate::Object(vec![(
        "text".into(),
        JsonTemplate::String(Template {
            parts: vec![Part::Lit("n ".into()), Part::Seq],
        }),
    )])));
    let id_path = JsonPath {
        text: "$.id".into(),
        steps: vec![PathStep::Key("id".into())],
    };
    create.capture = vec![Capture {
        name: "note_id".into(),
        path: id_path.clone(),
    }];
    create.durable = Some(Durable {
        id: id_path,
        read_method: "GET".into(),
        read_path: "/notes/{id}".into(),
        same: None,
    });
    let mut read = get("read", "/notes/");
    read.path = Template {
        parts: vec![Part::Lit("/notes/".into()), Part::Var("note_id".into())],
    };
    let l = hold_load(100.0, 1.0, vec![create, read]);
    let r = drive(&l, &srv.url()).await;
    let reads = r.recording.aggregate(0, usize::MAX, Some(1));
    let creates = r.recording.aggregate(0, usize::MAX, Some(0));
    assert_eq!(creates.count(Outcome::Ok), creates.requests());
    // Reads sent before any create returned could not be sent; every other read found its note.
    assert_eq!(reads.count(Outcome::Http4xx), 0);
    assert_eq!(
        reads.count(Outcome::Ok) + reads.count(Outcome::NotSent),
        reads.requests()
    );
    assert!(reads.count(Outcome::Ok) > 0);
    assert_eq!(r.durable_writes.len() as u64, creates.count(Outcome::Ok));
    let mut ids: Vec<_> = r.durable_writes.iter().map(|w| w.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), r.durable_writes.len());
    assert!(r
        .durable_writes
        .iter()
        .all(|w| w.read_path == format!("/notes/{}", w.id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_schedule_early_and_accounts_for_every_request() {
    let srv = serve(Behavior::Delay(Duration::ZERO)).await;
    let l = hold_load(100.0, 30.0, vec![get("a", "/")]);
    let sd = Arc::new(Shutdown::new());
    let s2 = sd.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s2.trigger();
    });
    let r = load::run(
        &l,
        &srv.url(),
        Clock::start(),
        sd,
        &mut NoProgress,
        Duration::from_millis(100),
    )
    .await
    .unwrap();
    assert!(r.interrupted);
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert!(r.scheduled < 200, "stopped after ~50, got {}", r.scheduled);
    assert_eq!(all.requests(), r.scheduled);
    assert_eq!(srv.seen.count.load(Ordering::SeqCst), r.scheduled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_mode_is_a_closed_loop_over_a_fixed_number_of_connections() {
    let srv = serve(Behavior::Delay(Duration::from_millis(2))).await;
    let l = hold_load(1.0, 0.5, vec![get("a", "/")]);
    let r = load::run_mode(
        &l,
        &srv.url(),
        load::Mode::Max { connections: 3 },
        Clock::start(),
        Arc::new(Shutdown::new()),
        &mut NoProgress,
        Duration::from_millis(100),
    )
    .await
    .unwrap();
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert!(srv.seen.max_in_flight.load(Ordering::SeqCst) <= 3);
    // Far more than the 0.5 requests a 1 req/s schedule would send: rates are ignored.
    assert!(all.requests() > 30, "{}", all.requests());
    assert_eq!(all.count(Outcome::Ok), all.requests());
    assert_eq!(srv.seen.count.load(Ordering::SeqCst), r.scheduled);
}

/// Every snapshot the engine hands to `progress`.
#[derive(Default)]
struct Collect {
    updates: Vec<load::ProgressSnapshot>,
    finish: Option<load::ProgressSnapshot>,
}

impl load::Progress for Collect {
    fn update(&mut self, s: &load::ProgressSnapshot) {
        self.updates.push(s.clone());
    }
    fn finish(&mut self, s: &load::ProgressSnapshot) {
        self.finish = Some(s.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_comes_from_the_recorders_ticks_and_accounts_for_every_request() {
    let srv = serve(Behavior::Delay(Duration::from_millis(5))).await;
    let l = hold_load(100.0, 1.5, vec![get("a", "/")]);
    let mut p = Collect::default();
    let r = load::run(
        &l,
        &srv.url(),
        Clock::start(),
        Arc::new(Shutdown::new()),
        &mut p,
        Duration::from_millis(100),
    )
    .await
    .unwrap();
    assert_eq!(r.scheduled, 150);
    assert!(p.updates.len() >= 5, "{} updates", p.updates.len());
    let fin = p.finish.expect("finish is called once, with the last tick");
    // The ticks partition the run: together (the final remainder included) they hold every
    // request once, and their counts are the recorder's.
    let live: u64 = p
        .updates
        .iter()
        .chain([&fin])
        .map(|s| s.live.requests())
        .sum();
    assert_eq!(live, 150);
    assert_eq!(fin.completed, 150);
    assert!(p
        .updates
        .windows(2)
        .all(|w| w[0].elapsed <= w[1].elapsed && w[0].completed <= w[1].completed));
    assert!(p
        .updates
        .iter()
        .all(|s| s.total == Duration::from_millis(1500)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_counts_from_the_clock_it_is_given() {
    let srv = serve(Behavior::Delay(Duration::ZERO)).await;
    let l = hold_load(100.0, 1.0, vec![get("a", "/")]);
    // The run's clock started 300 ms before the engine: the schedule is already 300 ms in, so
    // the first 30 requests leave at once, late by up to 300 ms, and are measured so.
    let clock = Clock::start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut p = Collect::default();
    let r = load::run(
        &l,
        &srv.url(),
        clock,
        Arc::new(Shutdown::new()),
        &mut p,
        Duration::from_millis(100),
    )
    .await
    .unwrap();
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert_eq!(all.count(Outcome::Ok), 100);
    assert!(
        all.lateness.max() >= 250_000,
        "lateness {}",
        all.lateness.max()
    );
    assert!(
        all.latency.max() >= 250_000,
        "latency {}",
        all.latency.max()
    );
    assert_eq!(r.started_at, clock.started_at());
    // Wall time is from the epoch too: the last request was due at 990 ms.
    assert!(r.wall >= Duration::from_millis(990), "wall {:?}", r.wall);
    // Progress counts from the same epoch.
    assert!(p.updates[0].elapsed >= Duration::from_millis(300));
}
