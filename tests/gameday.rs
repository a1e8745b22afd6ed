//! Game days end to end (`chaos run --gameday` on the embedded sandbox, driven from "another
//! terminal": `chaos inject|revert|note <run-dir> …` as separate processes): a fault injected
//! and reverted by hand goes through the same journal steps and gets the same windows as its
//! scheduled equivalent, the sandbox's own log shows it really happened, notes reach every
//! report, wrong hands are refused with exit 2, and Ctrl-C during a fault applied by hand
//! reverts it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::*;
use common::schema::*;

/// 8 s at 100 req/s on the sandbox; fault `kill` (one app node) at `at` for `for_` (until the
/// end of the run when empty).
fn game(dir: &Path, file: &str, at: &str, for_: &str) -> String {
    let for_ = if for_.is_empty() {
        String::new()
    } else {
        format!("for = \"{for_}\"\n")
    };
    scenario_file(
        dir,
        file,
        100,
        8.0,
        &format!(
            "[[faults]]\nname = \"kill\"\nkind = \"kill-nodes\"\nrole = \"app\"\ncount = 1\nat = \"{at}\"\n{for_}\n[slo]\nwhole = [\"throughput > 90%\"]\n"
        ),
    )
}

fn start(scenario: &str, out: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["run", scenario, "--quiet", "--summary", "none", "--out"])
        .arg(out)
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until the run's desk is open (its gameday.json written).
fn desk_open(out: &Path, run: &mut Child) {
    let t = Instant::now();
    while !out.join("gameday.json").exists() {
        assert!(run.try_wait().unwrap().is_none(), "the run ended first");
        assert!(t.elapsed() < Duration::from_secs(20), "no game-day desk");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hand(args: &[&str]) -> (i32, String, String) {
    let o = chaos(args);
    (o.status.code().unwrap(), text(&o.stdout), text(&o.stderr))
}

fn steps(out: &Path) -> Vec<(String, Option<String>)> {
    lines(&out.join("journal.jsonl"))
        .iter()
        .map(|r| {
            (
                r["step"].as_str().unwrap().to_string(),
                r["by"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn a_game_day_driven_from_another_terminal_matches_its_scheduled_equivalent() {
    let _turn = heavy();
    let dir = tmpdir("gameday");
    // Scheduled at 7 s until the end: injected by hand at about 2 s, reverted by hand about
    // 2 s later.
    let by_hand = game(&dir, "hand.toml", "7s", "");
    let out = dir.join("hand");
    let mut run = start(&by_hand, &out, &["--gameday"]);
    desk_open(&out, &mut run);
    // The desk opens as the run's clock starts: the times below count from here.
    let t0 = Instant::now();
    let d = out.to_str().unwrap();
    // Wrong hands: exit 2, and the run goes on.
    let (code, _, err) = hand(&["revert", d, "kill"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not applied"), "{err}");
    let (code, _, err) = hand(&["inject", d, "kil"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("its faults: kill"), "{err}");
    std::thread::sleep(Duration::from_secs(2).saturating_sub(t0.elapsed()));
    let (code, said, err) = hand(&["inject", d, "kill"]);
    assert_eq!(code, 0, "{err}");
    assert!(said.starts_with("kill: injected at"), "{said}");
    assert!(!said.contains("by its schedule"), "{said}");
    let (code, _, err) = hand(&["inject", d, "kill"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already applied"), "{err}");
    let (code, said, err) = hand(&["note", d, "one app node down by hand; watching p99"]);
    assert_eq!(code, 0, "{err}");
    assert!(said.starts_with("noted at"), "{said}");
    std::thread::sleep(Duration::from_secs(2));
    let (code, said, err) = hand(&["revert", d, "kill"]);
    assert_eq!(code, 0, "{err}");
    assert!(said.starts_with("kill: reverted at"), "{said}");
    let st = wait_exit(&mut run, "its 8 s");
    assert_eq!(st.code(), Some(0));
    // The desk is closed with the run: a late hand finds no run.
    assert!(!out.join("gameday.json").exists());
    let (code, _, err) = hand(&["note", d, "too late"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no game-day run in progress"), "{err}");

    let r = report(&out);
    assert_matches_schema(&r);
    let f = &r["timeline"]["faults"][0];
    assert_eq!(f["status"], "reverted");
    assert_eq!(f["by_hand"]["injected"], true);
    assert_eq!(f["by_hand"]["reverted"], true);
    let (inj, rev) = (
        f["injected_at_s"].as_f64().unwrap(),
        f["reverted_at_s"].as_f64().unwrap(),
    );
    // About 2 s in, whatever the machine's load: not at the fault's scheduled 7 s.
    assert!((1.9..5.0).contains(&inj), "injected at {inj}");
    assert!(rev < 7.5, "reverted by hand, before the run's end: {rev}");
    // The target's control plane is watched from the start in a game day: the node going down
    // by hand, long before the fault's scheduled time, is seen.
    let seen: Vec<f64> = r["timeline"]["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["at_s"].as_f64()).collect())
        .unwrap_or_default();
    assert!(
        seen.iter().any(|t| (inj..inj + 2.0).contains(t)),
        "no control-plane event within 2 s of the inject at {inj:.1}s: {seen:?}"
    );
    let notes = r["timeline"]["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["text"], "one app node down by hand; watching p99");
    let at = notes[0]["at_s"].as_f64().unwrap();
    assert!(
        inj <= at && at <= rev,
        "the note was written while the fault was on: {at}"
    );
    assert_eq!(lines(&out.join("notes.jsonl")).len(), 1);
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("(injected and reverted by hand)"),
        "{summary}"
    );
    assert!(
        summary.contains("note: one app node down by hand; watching p99"),
        "{summary}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("one app node down by hand; watching p99"));
    // The note is marked on every chart, at its time.
    let charts = html.matches("<figure>").count();
    assert!(charts >= 3, "{charts} charts");
    assert_eq!(html.matches(r#"<g class="note">"#).count(), charts);
    assert!(html.contains(&format!(
        "<title>{at:.1}s: one app node down by hand; watching p99</title>"
    )));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("testcase"), "{junit}");
    // The sandbox's ground truth: one node down, and back.
    let ev = lines(&out.join("sandbox-events.jsonl"));
    assert_eq!((count(&ev, "node_down"), count(&ev, "node_up")), (1, 1));
    let hand_steps = steps(&out);
    let hand_ = Some("hand".to_string());
    assert_eq!(
        hand_steps,
        [
            ("intent".to_string(), hand_.clone()),
            ("applied".to_string(), hand_.clone()),
            ("confirmed".to_string(), None),
            ("reverted".to_string(), hand_),
        ]
    );

    // The scheduled equivalent: the same fault at the times the hands chose.
    let scheduled = game(
        &dir,
        "scheduled.toml",
        &format!("{}ms", (inj * 1e3) as u64),
        &format!("{}ms", ((rev - inj) * 1e3) as u64),
    );
    let out2 = dir.join("scheduled");
    let mut run = start(&scheduled, &out2, &[]);
    assert_eq!(wait_exit(&mut run, "its 8 s").code(), Some(0));
    let r2 = report(&out2);
    let f2 = &r2["timeline"]["faults"][0];
    assert!(f2.get("by_hand").is_none(), "{f2}");
    let same_steps: Vec<String> = steps(&out2).into_iter().map(|s| s.0).collect();
    let hand_steps: Vec<String> = hand_steps.into_iter().map(|s| s.0).collect();
    assert_eq!(same_steps, hand_steps, "the same journal steps");
    // The same windows (each from its injection to its revert, as applied).
    let span = |f: &serde_json::Value| {
        (
            f["injected_at_s"].as_f64().unwrap(),
            f["reverted_at_s"].as_f64().unwrap(),
        )
    };
    let ((a, b), (c, e)) = (span(f), span(f2));
    assert!(
        (a - c).abs() < 0.3 && (b - e).abs() < 0.3,
        "by hand {a:.2}..{b:.2}, scheduled {c:.2}..{e:.2}"
    );
}

#[test]
fn ctrl_c_during_a_fault_injected_by_hand_reverts_it() {
    let _turn = heavy();
    let dir = tmpdir("gameday-int");
    let s = game(&dir, "g.toml", "7s", "");
    let out = dir.join("run");
    let mut run = start(&s, &out, &["--gameday"]);
    desk_open(&out, &mut run);
    let (code, _, err) = hand(&["inject", out.to_str().unwrap(), "kill"]);
    assert_eq!(code, 0, "{err}");
    signal(&run, "INT");
    let st = wait_exit(&mut run, "Ctrl-C");
    assert_eq!(st.code(), Some(130));
    let steps: Vec<String> = steps(&out).into_iter().map(|s| s.0).collect();
    assert_eq!(
        steps.last().map(String::as_str),
        Some("reverted"),
        "{steps:?}"
    );
    let ev = lines(&out.join("sandbox-events.jsonl"));
    assert_eq!((count(&ev, "node_down"), count(&ev, "node_up")), (1, 1));
    assert!(!out.join("gameday.json").exists());
    let (code, said, _) = hand(&["rollback", out.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(said.contains("nothing to roll back"), "{said}");
}

/// In a game day any fault may be moved by hand, so two kill-nodes faults whose schedules do
/// not overlap are still planned on different nodes (injected early, they would overlap).
#[test]
fn a_game_day_plans_every_fault_as_if_it_could_be_on_at_any_time() {
    let _turn = heavy();
    let dir = tmpdir("gameday-plan");
    let s = scenario_file(
        &dir,
        "two.toml",
        50,
        4.0,
        "[[faults]]\nname = \"first\"\nkind = \"kill-nodes\"\nat = \"500ms\"\nfor = \"1s\"\n\n\
         [[faults]]\nname = \"second\"\nkind = \"kill-nodes\"\nat = \"2s\"\nfor = \"1s\"\n\n\
         [slo]\nwhole = [\"throughput > 90%\"]\n",
    );
    let out = dir.join("run");
    let mut run = start(&s, &out, &["--gameday"]);
    assert_eq!(wait_exit(&mut run, "its 4 s").code(), Some(0));
    let targets: Vec<String> = lines(&out.join("journal.jsonl"))
        .iter()
        .filter(|r| r["step"] == "intent")
        .map(|r| r["plan"]["targets"].to_string())
        .collect();
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert_ne!(targets[0], targets[1], "the same node for both");
}

/// A hurried user's `--gameday`: with `--skip-faults`, on a scenario without faults, or on a
/// target that cannot inject them, it is refused at once (exit 2, the reason named) and the
/// run directory is never created; a hand on a directory that holds no run in progress is
/// refused too (exit 2).
#[test]
fn gameday_misuse_is_refused_before_anything_runs() {
    let dir = tmpdir("gameday-misuse");
    let with_fault = game(&dir, "g.toml", "1s", "1s");
    let no_fault = scenario_file(
        &dir,
        "none.toml",
        10,
        1.0,
        "[slo]\nwhole = [\"throughput > 90%\"]\n",
    );
    for (i, (s, extra)) in [
        (&with_fault, vec!["--skip-faults"]),
        (&no_fault, vec![]),
        (&with_fault, vec!["--target-url", "http://127.0.0.1:9"]),
    ]
    .into_iter()
    .enumerate()
    {
        let out = dir.join(format!("run-{i}"));
        let mut args = vec![
            "run",
            s.as_str(),
            "--gameday",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let o = chaos(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("--gameday"), "{}", text(&o.stderr));
        assert!(!out.exists(), "{args:?} created {}", out.display());
    }
    let (code, _, err) = hand(&["inject", dir.to_str().unwrap(), "kill"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no game-day run in progress"), "{err}");
}

/// The console: commands typed where the run runs (here piped in with `--console`) — Enter
/// lists the faults, a fault's number injects it and, once applied, reverts it, `n TEXT`
/// writes a note — go through the same desk: journaled by hand, noted, answered on stderr.
#[test]
fn a_game_day_driven_from_the_runs_own_console() {
    use std::io::{Read as _, Write as _};
    let _turn = heavy();
    let dir = tmpdir("gameday-console");
    let s = game(&dir, "console.toml", "7s", "");
    let out = dir.join("run");
    let mut run = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args([
            "run",
            &s,
            "--quiet",
            "--summary",
            "none",
            "--gameday",
            "--console",
            "--out",
        ])
        .arg(&out)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    desk_open(&out, &mut run);
    let mut stdin = run.stdin.take().unwrap();
    for (line, pause) in [
        ("", 0),
        ("1", 2),
        ("n writer looks fine", 0),
        ("1", 0),
        ("7", 0),
    ] {
        std::thread::sleep(Duration::from_secs(pause));
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        // One command at a time, as a person types: answered before the next.
        std::thread::sleep(Duration::from_millis(700));
    }
    drop(stdin);
    assert_eq!(wait_exit(&mut run, "its 8 s").code(), Some(0));
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("game day: 1 kill (waiting)"), "{err}");
    assert!(err.contains("game day: kill injected at"), "{err}");
    assert!(err.contains("game day: noted at"), "{err}");
    assert!(err.contains("game day: kill reverted at"), "{err}");
    assert!(err.contains("game day: no fault 7 (1 to 1)"), "{err}");
    let r = report(&out);
    let f = &r["timeline"]["faults"][0];
    assert_eq!(f["by_hand"]["injected"], true, "{f}");
    assert_eq!(f["by_hand"]["reverted"], true, "{f}");
    assert_eq!(r["timeline"]["notes"][0]["text"], "writer looks fine");
    let hand = Some("hand".to_string());
    assert_eq!(
        steps(&out),
        [
            ("intent".to_string(), hand.clone()),
            ("applied".to_string(), hand.clone()),
            ("confirmed".to_string(), None),
            ("reverted".to_string(), hand),
        ]
    );
}
