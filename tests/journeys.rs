//! The closed model on goose against the sandbox, called as a library: virtual users run a
//! login → create → read-back journey with their own cookies and captures, every step reaches
//! the recorder under `journey:step`, and the counts match the sandbox's own account (the notes
//! its database holds).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use chaos::clock::Clock;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_run_journeys_on_goose_and_every_step_reaches_the_recorder() {
    let sb = Sandbox::start(common::sandbox::fast(), None).await.unwrap();
    let mut steps = chaos::scenario::parse_str("steps.toml", STEPS)
        .unwrap_or_else(|d| panic!("{d:?}"))
        .load
        .requests;
    with_user(&mut steps[0], false);
    with_user(&mut steps[1], true);
    let users = 6;
    let j = Journeys {
        journeys: vec![Journey {
            name: "write-and-read".into(),
            weight: 1,
            steps,
        }],
        plan: vec![
            (users, Duration::from_secs(1)),
            (users, Duration::from_secs(3)),
            (0, Duration::ZERO),
        ],
        think: (Duration::from_millis(20), Duration::from_millis(60)),
        timeout: Duration::from_secs(2),
    };
    let clock = Clock::start();
    let names = j.step_names();
    assert_eq!(
        names,
        [
            "write-and-read:login",
            "write-and-read:create",
            "write-and-read:read"
        ]
    );
    let (sink, handle) = recorder::spawn(
        names,
        Duration::from_secs(1),
        clock,
        Options {
            tick: Duration::from_millis(200),
            settle: Duration::from_secs(1),
        },
    );
    let counts = journeys::run(&j, &sb.lb_url, sink, clock, 0).await.unwrap();
    let rec = handle.finish().await;
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
