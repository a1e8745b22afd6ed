//! The closed model on goose against the sandbox, called as a library: virtual users run a
//! login → create → read-back journey with their own cookies and captures, every step reaches
//! the recorder under `journey:step`, and the counts match the sandbox's own account (the notes
//! its database holds, the sessions its cache failover lost).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use std::sync::Arc;

use chaos::clock::Clock;
use chaos::load::journeys::{self, Journeys};
use chaos::metrics::recorder::{self, Options};
use chaos::metrics::Outcome;
use chaos::sandbox::Sandbox;
use chaos::shutdown::Shutdown;

/// One journey, login → create → read, written as a scenario's `[users]` (validated as any
/// scenario is): `{{id}}` is what this iteration's create captured, `{{user}}` the user's
/// number. USERS users ramp up over 1 s and hold for HOLD, thinking THINK between steps.
const SCENARIO: &str = r#"
name = "journeys"
[users]
plan = [{ ramp = USERS, over = "1s" }, { hold = USERS, for = "HOLD" }]
think = THINK
[users.client]
timeout = "2s"
[[users.journeys]]
name = "write-and-read"
steps = [
  { name = "login", method = "POST", path = "/login", json = { user = "u{{user}}" } },
  { name = "create", method = "POST", path = "/notes", json = { text = "u{{user}} {{uuid}}" }, capture = { id = "$.id" }, expect = { status = [201] } },
  { name = "read", method = "GET", path = "/notes/{{id}}", expect = { status = [200] } },
]
"#;

fn write_and_read(users: usize, hold: Duration, think: (u64, u64)) -> Journeys {
    let text = SCENARIO
        .replace("USERS", &users.to_string())
        .replace("HOLD", &format!("{}ms", hold.as_millis()))
        .replace(
            "THINK",
            &format!("{{ min = \"{}ms\", max = \"{}ms\" }}", think.0, think.1),
        );
    let s = chaos::scenario::parse_str("journeys.toml", &text).unwrap_or_else(|d| panic!("{d}"));
    let j = Journeys::new(s.users.as_ref().unwrap()).unwrap();
    assert_eq!(
        j.plan,
        [
            (users, Duration::from_secs(1)),
            (users, hold),
            (0, Duration::ZERO)
        ],
        "a hold at the count reached is one step; the users leave at the end"
    );
    j
}

/// goose's killswitch, logger and signal handler are process-wide: one attack at a time.
static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Run `j` against `sb` with a recorder: the journey counts and the recording.
/// The caller holds [`ONE`].
async fn run(sb: &Sandbox, j: &Journeys) -> (Vec<journeys::JourneyCounts>, recorder::Recording) {
    let clock = Clock::start();
    let (sink, handle) = recorder::spawn(
        j.step_names(),
        Duration::from_secs(1),
        clock,
        Options {
            tick: Duration::from_millis(200),
            settle: Duration::from_secs(1),
        },
    );
    let (journey_sink, journeys_rec) = recorder::spawn(
        j.journey_names(),
        Duration::from_secs(1),
        clock,
        Options {
            tick: Duration::from_secs(3600),
            settle: Duration::from_secs(1),
        },
    );
    let shutdown = Arc::new(Shutdown::new());
    let counts = journeys::run(j, &sb.lb_url, sink, journey_sink, clock, 0, shutdown)
        .await
        .unwrap()
        .counts;
    // One journey sample per ended iteration: completed ones ok, failed ones not.
    let jr = journeys_rec.finish().await;
    for (i, c) in counts.iter().enumerate() {
        let s = jr.aggregate(0, jr.intervals.len(), Some(i));
        let failed: u64 = c.failed.iter().map(|(_, n)| n).sum();
        assert_eq!(s.requests(), c.completed + failed, "{c:?}");
        assert_eq!(s.count(Outcome::Ok), c.completed, "{c:?}");
    }
    (counts, handle.finish().await)
}

/// A cache failover that loses every session (the replica never got them) logs the users out:
/// a step after it that carries its user's cookie answers 401 and ends the journey there —
/// which it can only do if the steps carry the session cookie their login set (an anonymous
/// request is never 401). The users log in again on their next iteration and go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_failover_that_loses_the_sessions_logs_the_users_out() {
    // Held before the failover's timer starts: it is timed from this run's start.
    let _one = ONE.lock().await;
    let mut cfg = common::sandbox::fast();
    cfg.cache.replication_lag = Duration::from_secs(600);
    cfg.cache.failover_time = Duration::from_millis(200);
    let sb = Sandbox::start(cfg, None).await.unwrap();
    // Each user is between its login and its last step about two thirds of the time: with 10,
    // at least one is when the failover ends but for a chance of about (1/3)^10.
    let users = 10;
    let j = write_and_read(users, Duration::from_secs(5), (150, 300));
    let cache = sb.stack().cache.clone();
    let failover = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(cache.failover());
    });
    let (counts, rec) = run(&sb, &j).await;
    failover.await.unwrap();
    let c = &counts[0];
    eprintln!("{counts:?}");
    let lost: u64 = common::sandbox::events(&sb, "cache_failover_end")[0]["sessions_lost"]
        .as_u64()
        .unwrap();
    assert!(lost > 0, "the failover lost the sessions");
    let failed = |step: &str| c.failed.iter().find(|(n, _)| n == step).unwrap().1;
    let logged_out = failed("create") + failed("read");
    assert!(logged_out >= 1, "{c:?}");
    assert!(logged_out <= users as u64, "each user once at most: {c:?}");
    assert_eq!(failed("login"), 0, "{c:?}");
    // Every failure is a 401 in the recorder, under its step; the users went on after it.
    let s401 = |i: usize| {
        rec.aggregate(0, rec.intervals.len(), Some(i))
            .statuses
            .get(401)
    };
    assert_eq!(s401(1) + s401(2), logged_out);
    assert!(c.completed > logged_out, "{c:?}");
    assert_eq!(c.canceled, 0, "{c:?}");
    assert_eq!(c.started, c.completed + logged_out, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_run_journeys_on_goose_and_every_step_reaches_the_recorder() {
    let _one = ONE.lock().await;
    let sb = Sandbox::start(common::sandbox::fast(), None).await.unwrap();
    let users = 6;
    let j = write_and_read(users, Duration::from_secs(3), (10, 30));
    assert_eq!(
        j.step_names(),
        [
            "write-and-read:login",
            "write-and-read:create",
            "write-and-read:read"
        ]
    );
    let (counts, rec) = run(&sb, &j).await;
    let c = &counts[0];
    eprintln!("{counts:?}");
    assert!(c.completed >= users as u64, "{c:?}");
    assert_eq!(
        c.started, c.completed,
        "a healthy sandbox fails none: {c:?}"
    );
    assert!(c.failed.iter().all(|(_, n)| *n == 0), "{c:?}");
    // Each iteration's steps, each once, all passed (the read-back found the created id).
    let ok = |i: usize| {
        let s = rec.aggregate(0, rec.intervals.len(), Some(i));
        let total: u64 = s.outcomes.iter().sum();
        assert_eq!(total, s.outcomes[Outcome::Ok.index()], "step {i}: {s:?}");
        total
    };
    assert_eq!((ok(0), ok(1), ok(2)), (c.started, c.completed, c.completed));
    // The sandbox's own account: one note per acknowledged create, each by one of the users.
    let db = chaos::sandbox::db::DbClient::new(sb.stack().db.clone());
    let notes = db.recent(1_000_000).await.unwrap();
    assert_eq!(notes.len() as u64, c.completed);
    for (_, text) in &notes {
        let u: usize = text[1..text.find(' ').unwrap()].parse().unwrap();
        assert!(u < users, "{text}");
    }
}

/// The shipped `journeys-redis-partition` with a `[load]` section added runs both models at
/// once on the embedded sandbox: the users' steps and the load's requests in one recording
/// and every report, the journey counts agreeing with the steps' samples, and the cache
/// partition showing where users see it — sessions made while the cache was cut off are
/// unknown once it is back, so their next steps answer 401 after the heal, not before the cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_journeys_scenario_runs_both_models_at_once_into_every_report() {
    let _one = ONE.lock().await;
    let dir = std::env::temp_dir().join(format!("chaos-journeys-both-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = chaos::scenario::builtin::get("journeys-redis-partition")
        .unwrap()
        .to_string()
        + "\n[load]\npeak_rps = 20\nstages = [{ hold = \"1x\", for = \"75s\" }]\n\
           [[load.requests]]\nname = \"list\"\npath = \"/notes\"\n";
    let file = dir.join("both.toml");
    std::fs::write(&file, text).unwrap();
    let opts = chaos::run::RunOptions {
        scenario: file.display().to_string(),
        out: Some(dir.join("run")),
        time_scale: 0.2,
        // 40 users at the plan's 4x: a debug build on two cores keeps up.
        set: vec!["users.peak=10".into()],
        sandbox_exe: Some(std::path::PathBuf::from(env!("CARGO_BIN_EXE_chaos"))),
        progress_every: Duration::from_secs(3600),
        ..Default::default()
    };
    let o = chaos::run::run(
        &opts,
        Arc::new(Shutdown::new()),
        &mut chaos::load::engine::NoProgress,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let r = &o.report;
    let names = &r.recording.names;
    assert_eq!(
        names,
        &[
            "list",
            "write-and-read:login",
            "write-and-read:create",
            "write-and-read:read",
            "browse:login",
            "browse:list"
        ]
    );
    let totals = |i: usize| r.totals(Some(i));
    assert!(
        totals(0).requests() > 200,
        "the open model ran: {:?}",
        totals(0).requests()
    );
    let js = r.journeys.as_ref().expect("the users' record");
    assert_eq!(js.counts.len(), 2);
    for (j, first) in js.counts.iter().zip([1usize, 4]) {
        let failed: u64 = j.failed.iter().map(|(_, n)| n).sum();
        assert_eq!(j.started, j.completed + j.canceled + failed, "{j:?}");
        assert!(j.completed > 20, "{j:?}");
        // Each iteration sends its first step once; a step's failures are its non-ok samples.
        assert_eq!(totals(first).requests(), j.started, "{j:?}");
        for (k, (step, n)) in j.failed.iter().enumerate() {
            let s = totals(first + k);
            assert_eq!(
                s.requests() - s.count(chaos::metrics::Outcome::Ok),
                *n,
                "{step}"
            );
        }
    }
    // Every create acknowledged is a durable write, read back after the run with its user's
    // session cookie: none is lost (the database was never touched). Those written under a
    // session the cut lost are refused now (401): unverified, never lost — and proof that the
    // read-back carries the session, as the sandbox serves a read without one.
    let creates = totals(2).count(chaos::metrics::Outcome::Ok);
    assert_eq!(r.durable_writes.len() as u64, creates);
    assert!(
        r.durable_writes
            .iter()
            .all(|w| w.request == "write-and-read:create" && w.headers.map().contains_key("cookie")),
        "each with its user's session"
    );
    assert_eq!(r.durable_without_id, 0);
    let v = r.verification.as_ref().expect("the writes were read back");
    assert_eq!(v.checked, creates);
    assert!(v.lost.is_empty(), "{:?}", v.lost);
    assert_eq!(v.found + v.unverified.len() as u64, v.checked);
    assert!(v.found > creates / 2, "{v:?}");
    assert!(!v.unverified.is_empty(), "sessions made during the cut");
    assert!(
        v.unverified.iter().all(|u| u.reason.contains("HTTP 401")),
        "{:?}",
        v.unverified
    );
    // 401s: none before the cut (all sessions known), some after it (sessions made while the
    // cache was cut off); the cut is 30 s..50 s at scale 0.2, i.e. 6 s..10 s.
    let rec = &r.recording;
    let s401 = |from: f64, to: f64| {
        let (a, b) = rec.range(Duration::from_secs_f64(from), Duration::from_secs_f64(to));
        (1..names.len())
            .map(|i| rec.aggregate(a, b, Some(i)).statuses.get(401))
            .sum::<u64>()
    };
    assert_eq!(s401(0.0, 6.0), 0);
    assert!(
        s401(10.0, 15.0) > 0,
        "users logged in during the cut are logged out after it"
    );
    // Journey SLOs are judged on the journeys' own recording: `failed` is the share of ended
    // iterations that failed, exactly the counts'.
    let c = &js.counts[0];
    let failed: u64 = c.failed.iter().map(|(_, n)| n).sum();
    let res = |text: &str, request: &str| {
        r.slo
            .iter()
            .find(|s| s.objective.text == text && s.objective.request.as_deref() == Some(request))
            .unwrap_or_else(|| panic!("no {request} {text}: {:?}", r.slo))
    };
    let jr = &js.recording;
    let all = jr.aggregate(0, jr.intervals.len(), Some(0));
    assert_eq!(
        all.requests(),
        c.completed + failed,
        "one sample per ended iteration"
    );
    assert_eq!(all.errors(), failed, "the failed ones are the errors");
    // `whole` is the run's span: iterations begun in the second goose may overrun the plan
    // by are past it (as requests sent past the end are).
    let (a, b) = jr.range(Duration::ZERO, r.timeline.total);
    let whole = jr.aggregate(a, b, Some(0));
    let f = res("failed < 10%", "journey:write-and-read");
    assert_eq!(f.samples, whole.requests());
    assert!(
        (f.value.unwrap() - whole.error_rate()).abs() < 1e-12,
        "{f:?}"
    );
    assert!(whole.requests() + 20 >= all.requests(), "{whole:?} {all:?}");
    let p95 = res("p95 < 3s", "journey:write-and-read");
    assert!(
        p95.value.unwrap() > 0.0 && p95.samples == f.samples,
        "{p95:?}"
    );
    let during = res("p95 < 2.5s", "journey:browse");
    assert!(
        during.samples > 0 && during.samples < js.counts[1].started,
        "{during:?}"
    );
    // Every report has both: report.json (journeys and the steps), summary.md.
    let json = common_report(&o.dir);
    assert_eq!(json["journeys"].as_array().unwrap().len(), 2);
    let cells = &json["journey_histograms"]["intervals"][3]["requests"];
    assert!(
        cells["write-and-read"].is_object() && cells["browse"].is_object(),
        "{cells}"
    );
    assert!(json["per_request"]["write-and-read:read"].is_object());
    assert!(json["per_request"]["list"].is_object());
    let md = std::fs::read_to_string(o.dir.join("summary.md")).unwrap();
    assert!(
        md.contains("## Journeys") && md.contains("| `write-and-read` |"),
        "{md}"
    );
    assert!(
        md.contains("| list |") && md.contains("| write-and-read:login |"),
        "{md}"
    );
    // The HTML report has the same journeys table, row for row.
    let html = std::fs::read_to_string(o.dir.join("report.html")).unwrap();
    assert!(html.contains("<h2>Journeys</h2>"), "{html}");
    for j in &js.counts {
        let row = format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td>",
            j.name, j.started, j.completed
        );
        assert!(html.contains(&row), "no {row} in {html}");
    }
    assert!(html.contains("steps/s achieved"), "{html}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn common_report(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}
