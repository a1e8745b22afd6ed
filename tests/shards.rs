//! Sharded runs (issue 14 §1): three `chaos run --shard I/3 --start-at T` processes on loopback
//! against one sandbox, joined by `chaos merge`. The merged run holds exactly the
//! single-machine schedule's requests, its percentiles are those of every shard's samples
//! together (histograms added, never averaged), its windows are the conductor's faults, and
//! its verdict is the one `chaos report` reaches on the merged recording. With `--conductor`
//! the other shards hold the conductor's fault times in their own records as it served them,
//! and their clock offset to it. A shard killed mid-run fails the merge (exit 1) with the
//! reason; shards of different runs are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use chaos::run::shard::show_start_at;
use common::cli::{chaos, sandbox_urls_with, text, tmpdir};

const SCALE: &str = "0.05";

/// Shard `i` of 3 of the shipped az-outage (at 100 req/s peak, 400 at its 4x), as a process.
fn shard(i: u32, start_at: &str, control: &str, out: &Path) -> Child {
    shard_with(i, start_at, control, out, &[])
}

/// [`shard`] with more flags.
fn shard_with(i: u32, start_at: &str, control: &str, out: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args([
            "run",
            "az-outage",
            "--shard",
            &format!("{i}/3"),
            "--start-at",
            start_at,
            "--sandbox-url",
            control,
            "--time-scale",
            SCALE,
            "--set",
            "load.peak_rps=100",
            "--quiet",
            "--summary",
            "none",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A start far enough ahead for three processes to be ready (to the millisecond).
fn start_in(d: Duration) -> String {
    show_start_at(SystemTime::now() + d)
}

fn wait(mut c: Child) -> (i32, String) {
    let t = std::time::Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read as _;
            c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (st.code().unwrap_or(-1), err);
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "a shard never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_shards_merge_into_exactly_one_run_and_a_killed_shard_fails_the_merge() {
    let dir = tmpdir("shards");
    let (mut sb, urls) = sandbox_urls_with(&["--time-scale", SCALE]);
    let control = urls["control_url"].as_str().unwrap().to_string();
    let dirs: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("shard-{i}"))).collect();
    let at = start_in(Duration::from_secs(4));
    // The conductor's feed on a free loopback port.
    let feed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let children: Vec<Child> = (0..3u32)
        .map(|i| shard_with(i, &at, &control, &dirs[i as usize], &["--conductor", &feed]))
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let (code, err) = wait(c);
        assert!(code == 0 || code == 1, "shard {i}: exit {code}\n{err}");
    }

    // What the single-machine run would have scheduled: the union of the shards' arrivals.
    let s = chaos::run::prepare_with(
        "az-outage",
        SCALE.parse().unwrap(),
        &chaos::scenario::Params::run(&["load.peak_rps=100".into()], &[], false),
    )
    .unwrap();
    let single = chaos::load::schedule::Schedule::new(&s.load.stages).count() as u64;
    let m = chaos::report::merge::merge(&dirs).unwrap_or_else(|e| panic!("{e}"));
    let rec = &m.record;
    assert_eq!(rec.shards.len(), 3);
    assert_eq!(rec.scheduled, single, "the shards sent the whole schedule");
    let all = rec.recording.aggregate(0, usize::MAX, None);
    assert_eq!(
        all.requests(),
        single,
        "every scheduled request was recorded once"
    );
    // An even split: each shard sent a third, give or take one.
    let parts: Vec<chaos::report::record::RunRecord> = dirs
        .iter()
        .map(|d| {
            chaos::report::record::load(&d.join("report.json"))
                .unwrap()
                .into_run_record()
                .unwrap()
        })
        .collect();
    for p in &parts {
        assert!(
            p.scheduled.abs_diff(single / 3) <= 1,
            "{} of {single}",
            p.scheduled
        );
        assert_eq!(p.shards.len(), 1);
        assert!(p.shards[0].late_us < 200_000, "{:?}", p.shards[0]);
    }
    // The merged percentiles are those of every sample together: the shards' whole-run
    // histograms added, compared with the interval-by-interval merge.
    let mut union = chaos::metrics::Stats::default();
    for p in &parts {
        union.add(&p.recording.aggregate(0, usize::MAX, None));
    }
    assert_eq!(union.requests(), all.requests());
    for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
        assert_eq!(
            union.latency.value_at_quantile(q),
            all.latency.value_at_quantile(q),
            "p{q}"
        );
    }
    assert_eq!(union.errors(), all.errors());
    // The windows are the conductor's: its fault, applied and reverted, judged in every shard's
    // samples. The others read its times from the conductor's feed as it ran: their own records
    // hold the same times, and their own reports judge the fault's window on their share.
    let f = &rec.faults[0];
    assert_eq!(f.status, chaos::report::FaultStatus::Reverted, "{f:?}");
    assert!(f.injected_at_s.is_some() && f.reverted_at_s.is_some());
    for (i, p) in parts.iter().enumerate().skip(1) {
        let g = &p.faults[0];
        assert_eq!(g.status, chaos::report::FaultStatus::Reverted, "{g:?}");
        assert_eq!(
            (g.injected_at_s, g.reverted_at_s),
            (f.injected_at_s, f.reverted_at_s),
            "shard {i}: {g:?}"
        );
        assert!(
            g.note
                .contains("driven by shard 0 (the conductor), times from its feed"),
            "{g:?}"
        );
        // Its clock against the conductor's: one machine, one clock, so the offset measured
        // is within half the round trip it was measured on.
        let (offset, rtt) = (
            p.shards[0].clock_offset_us.expect("an offset measured"),
            p.shards[0].clock_rtt_us.expect("its round trip"),
        );
        assert!(
            offset.unsigned_abs() <= rtt / 2 + 1,
            "shard {i}: offset {offset} µs on a {rtt} µs round trip"
        );
        let own = chaos::report::reread::reread(&dirs[i], None).unwrap();
        assert!(
            own.slo
                .iter()
                .any(|x| x.objective.window_label() == "during:zone-a-down"
                    && x.status != chaos::slo::Status::NotJudged),
            "shard {i} judges the fault's window on its own share"
        );
    }
    assert!(
        parts[0].shards[0].clock_offset_us.is_none(),
        "the conductor is the reference"
    );
    // Every shard's acknowledged writes were read back; the merge holds them all.
    let writes: usize = parts.iter().map(|p| p.durable_writes.len()).sum();
    assert_eq!(rec.durable_writes.len(), writes);
    let v = rec.verification.as_ref().expect("read back");
    assert_eq!(v.checked as usize, writes);
    // `chaos merge` writes the merged run's reports; `chaos report` re-judges them alike.
    let out = dir.join("merged");
    let o = chaos(&[
        "merge",
        dirs[0].to_str().unwrap(),
        dirs[1].to_str().unwrap(),
        dirs[2].to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let merged = chaos::report::reread::reread(&out, None).unwrap();
    assert_eq!(
        o.status.code(),
        Some(merged.verdict.exit_code()),
        "{}",
        text(&o.stderr)
    );
    let direct = chaos::report::judge::judge(m.scenario, m.record).unwrap();
    assert_eq!(merged.verdict, direct.verdict);
    let during = |r: &chaos::report::RunReport| {
        r.slo
            .iter()
            .map(|x| (x.objective.text.clone(), x.status, x.value, x.samples))
            .collect::<Vec<_>>()
    };
    assert_eq!(during(&merged), during(&direct));
    assert!(
        merged
            .slo
            .iter()
            .any(|x| x.objective.window_label() == "during:zone-a-down"
                && x.status != chaos::slo::Status::NotJudged),
        "the fault's window is judged"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    // Each shard read back after the conductor's last revert (the others wait for the fault
    // timeline's end): no write of theirs was made unverified for reading back too early.
    let last_revert = merged
        .faults
        .iter()
        .filter_map(|f| f.reverted_at_s)
        .fold(0.0, f64::max);
    for p in &parts[1..] {
        let at = p.shards[0].read_back_at_s.expect("a read-back");
        assert!(at >= last_revert, "{at} < {last_revert}");
    }
    assert!(!merged
        .verification
        .as_ref()
        .unwrap()
        .unverified
        .iter()
        .any(|u| u.reason.contains("before the conductor's last revert")));
    // Never over a shard's evidence; a shard's own run is no run to compare.
    let o = chaos(&[
        "merge",
        dirs[0].to_str().unwrap(),
        dirs[1].to_str().unwrap(),
        dirs[2].to_str().unwrap(),
        "--out",
        dirs[1].to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("a shard's own directory"),
        "{}",
        text(&o.stderr)
    );
    assert!(dirs[1].join("report.json").exists());
    let o = chaos(&["compare", dirs[1].to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("one shard's own run (1/3)"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(json["shards"].as_array().unwrap().len(), 3);
    common::schema::assert_matches_schema(&json);
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("- merged from 3 shards (`chaos merge`)"),
        "{md}"
    );
    let own = std::fs::read_to_string(dirs[1].join("summary.md")).unwrap();
    assert!(own.contains("- shard 1/3 of a run started at"), "{own}");

    // Shards of two different runs are refused (exit 2), and a shard killed mid-run fails
    // the merge (exit 1), naming it.
    let again: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("again-{i}"))).collect();
    let at = start_in(Duration::from_secs(3));
    let mut children: Vec<Child> = (0..3u32)
        .map(|i| shard(i, &at, &control, &again[i as usize]))
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    let killed = children.remove(2);
    common::cli::signal(&killed, "KILL");
    let _ = wait(killed);
    for c in children {
        let (code, err) = wait(c);
        assert!(code == 0 || code == 1, "exit {code}\n{err}");
    }
    // Without --conductor the others record the fault as driven there, with no times.
    let follower = chaos::report::record::load(&again[1].join("report.json"))
        .unwrap()
        .into_run_record()
        .unwrap();
    let g = &follower.faults[0];
    assert_eq!(g.status, chaos::report::FaultStatus::Skipped, "{g:?}");
    assert!(g.note.contains("driven by shard 0"), "{g:?}");
    assert!(g.injected_at_s.is_none(), "{g:?}");
    let o = chaos(&[
        "merge",
        again[0].to_str().unwrap(),
        again[1].to_str().unwrap(),
        again[2].to_str().unwrap(),
        "--out",
        dir.join("m2").to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("the merged run is incomplete"), "{err}");
    assert!(err.contains("again-2: no report.json"), "{err}");
    assert!(err.contains("shard 2/3 is missing"), "{err}");
    assert!(
        !dir.join("m2").exists(),
        "no verdict written on part of a run"
    );
    let o = chaos(&[
        "merge",
        dirs[0].to_str().unwrap(),
        again[1].to_str().unwrap(),
        dirs[2].to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("are not shards of one run: their --start-at differ"),
        "{err}"
    );
    let _ = sb.kill();
    let _ = sb.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--shard` without `--start-at`, a bad shard and a start long past are refused (exit 2)
/// before anything runs.
#[test]
fn shard_flags_are_checked_before_anything_runs() {
    let dir = tmpdir("shard-flags");
    let out = dir.join("run");
    let o = chaos(&[
        "run",
        "az-outage",
        "--shard",
        "1/3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--start-at"),
        "{}",
        text(&o.stderr)
    );
    let o = chaos(&[
        "run",
        "az-outage",
        "--shard",
        "3/3",
        "--start-at",
        "2026-12-07T06:30:00Z",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("e.g. --shard 0/3"),
        "{}",
        text(&o.stderr)
    );
    let o = chaos(&[
        "run",
        "az-outage",
        "--shard",
        "1/3",
        "--start-at",
        "2000-01-01T00:00:00Z",
        "--target-url",
        "http://127.0.0.1:9",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("passed") && err.contains("lock step"), "{err}");
    // A start a year ahead is a typo; shards on the embedded sandbox would each start their own.
    let o = chaos(&[
        "run",
        "az-outage",
        "--shard",
        "0/2",
        "--start-at",
        "2099-01-01T00:00:00Z",
        "--target-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("more than a day ahead"),
        "{}",
        text(&o.stderr)
    );
    let soon = start_in(Duration::from_secs(60));
    let o = chaos(&[
        "run",
        "az-outage",
        "--shard",
        "0/2",
        "--start-at",
        &soon,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("each shard would start a sandbox of its own"),
        "{}",
        text(&o.stderr)
    );
    assert!(!out.exists(), "refused before the run directory");
    // --conductor goes with --shard, and is HOST:PORT.
    let o = chaos(&["run", "az-outage", "--conductor", "127.0.0.1:7070"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--shard"), "{}", text(&o.stderr));
    let o = chaos(&[
        "run",
        "az-outage",
        "--shard",
        "1/2",
        "--start-at",
        &soon,
        "--conductor",
        "conductor",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("is not HOST:PORT"),
        "{}",
        text(&o.stderr)
    );
    // The conductor's port taken: refused before any traffic, with the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = chaos(&[
        "run",
        "az-outage",
        "--shard",
        "0/2",
        "--start-at",
        &start_in(Duration::from_secs(30)),
        "--conductor",
        &addr,
        "--target-url",
        "http://127.0.0.1:9",
        "--skip-faults",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(!out.exists(), "no run directory left behind");
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}
