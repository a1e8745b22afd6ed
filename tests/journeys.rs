//! The closed model on goose against the sandbox, called as a library: virtual users run a
//! login → create → read-back journey with their own cookies and captures, every step reaches
//! the recorder under `journey:step`, and the counts match the sandbox's own account (the notes
//! its database holds, the sessions its cache failover lost).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use chaos::clock::Clock;
use chaos::load::client::ClientConfig;
use chaos::load::journeys::{self, Journey, Journeys};
use chaos::metrics::recorder::{self, Options};
use chaos::metrics::Outcome;
use chaos::sandbox::Sandbox;
use chaos::scenario::{Body, JsonTemplate, Part, RequestSpec, Template};

/// `step`'s JSON body `{KEY = "USER"}` becomes `{KEY = "u{{user}}"}`, with ` {{uuid}}` after
/// it when `uuid`.
fn with_user(step: &mut RequestSpec, uuid: bool) {
    let Some(Body::Json(JsonTemplate::Object(fields))) = &mut step.body else {
        panic!("{step:?}")
    };
    let mut parts = vec![Part::Lit("u".into()), Part::Var("user".into())];
    if uuid {
        parts.extend([Part::Lit(" ".into()), Part::Uuid]);
    }
    fields[0].1 = JsonTemplate::String(Template { parts });
}

/// The steps, written as a scenario's requests (validated as any scenario is): `{{id}}` is
/// what this iteration's create captured. `{{user}}` (the user's number) is the journeys' own
/// variable, which the open model's validator does not know: [`with_user`] puts it in.
const STEPS: &str = r#"
name = "steps"
[load]
peak_rps = 1
stages = [{ hold = "1x", for = "1s" }]
[[load.requests]]
name = "login"
method = "POST"
path = "/login"
json = { user = "USER" }
[[load.requests]]
name = "create"
method = "POST"
path = "/notes"
json = { text = "USER" }
capture = { id = "$.id" }
expect = { status = [201] }
[[load.requests]]
name = "read"
method = "GET"
path = "/notes/{{id}}"
expect = { status = [200] }
"#;

/// One journey, login → create → read, for `users` users: ramped up over 1 s, held for
/// `hold`, with `think` between steps and iterations.
fn write_and_read(users: usize, hold: Duration, think: (u64, u64)) -> Journeys {
    let mut steps = chaos::scenario::parse_str("steps.toml", STEPS)
        .unwrap_or_else(|d| panic!("{d:?}"))
        .load
        .requests;
    with_user(&mut steps[0], false);
    with_user(&mut steps[1], true);
    Journeys {
        journeys: vec![Journey {
            name: "write-and-read".into(),
            weight: 1,
            steps,
        }],
        plan: vec![
            (users, Duration::from_secs(1)),
            (users, hold),
            (0, Duration::ZERO),
        ],
        think: (
            Duration::from_millis(think.0),
            Duration::from_millis(think.1),
        ),
        client: ClientConfig::plain(Duration::from_secs(2)),
    }
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
    let counts = journeys::run(j, &sb.lb_url, sink, clock, 0).await.unwrap();
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
