//! `chaos compare` on synthetic reports (see [`super::fixture`]): what is noise, what is a
//! regression, what cannot be judged, and which runs may be compared at all.

use super::fixture::*;
use super::*;
use serde_json::json;

#[test]
fn the_issue_example_2_06_to_2_38_percent_is_noise_2_to_10_percent_is_a_regression() {
    // The fault's window has 16,000 requests; 330 vs 381 failed: 2.06% -> 2.38%, +15.5%.
    let a = run(
        "e-a",
        &Spec {
            errors_during: 330,
            ..Spec::default()
        },
    );
    let b = run(
        "e-b",
        &Spec {
            seed: 2,
            errors_during: 381,
            ..Spec::default()
        },
    );
    let c = compare(&a, &b, opts()).unwrap();
    let r = row(&c, "during:f", "errors < 5%");
    assert_eq!((show(r.old), show(r.new)), ("2.06%".into(), "2.38%".into()));
    assert!(r.worse_by > 0.15, "beyond the 10% bound: {}", r.worse_by);
    assert_eq!(r.finding, Finding::NoRegression, "{}", render(&c));
    assert_eq!(c.regressions(), 0, "{}", render(&c));
    // 2% -> 10% of the same requests is no noise.
    let d = run(
        "e-d",
        &Spec {
            seed: 3,
            errors_during: 1600,
            ..Spec::default()
        },
    );
    let c = compare(&a, &d, opts()).unwrap();
    assert!(row(&c, "during:f", "errors < 5%").is_regression());
    assert!(row(&c, "whole", "error rate").is_regression());
    assert!(row(&c, "during:f", "error rate").is_regression());
    // The other way round it got better: nothing.
    assert_eq!(compare(&d, &a, opts()).unwrap().regressions(), 0);
    // ...and a bound above +400% lets even that pass.
    let loose = Options {
        max_regression: 5.0,
        ..opts()
    };
    assert_eq!(compare(&a, &d, loose).unwrap().regressions(), 0);
}

fn show(v: f64) -> String {
    crate::slo::show_ratio(v)
}

#[test]
fn the_confidence_decides_what_counts_as_noise() {
    // 536 -> 619 failures of 26,000 (2.06% -> 2.38% over a whole run): z = 2.47, beyond 99%
    // (2.33) but not 99.9% (3.09).
    let z = stats::two_proportion_z(536, 26_000, 619, 26_000);
    assert!(z > 2.4 && z < 2.5, "{z}");
    assert!(z > stats::normal_quantile(0.99) && z < stats::normal_quantile(0.999));
    // In a report: 16,000 requests in the window, 330 -> 400 failed (z = 2.5).
    let a = run(
        "c-a",
        &Spec {
            errors_during: 330,
            ..Spec::default()
        },
    );
    let b = run(
        "c-b",
        &Spec {
            seed: 2,
            errors_during: 400,
            ..Spec::default()
        },
    );
    let strict = compare(&a, &b, opts()).unwrap();
    assert!(!row(&strict, "during:f", "errors < 5%").is_regression());
    let lax = compare(
        &a,
        &b,
        Options {
            confidence: 0.99,
            ..opts()
        },
    )
    .unwrap();
    assert!(row(&lax, "during:f", "errors < 5%").is_regression());
    // The output says which confidence it used.
    assert!(
        render(&strict).contains("at 99.9% confidence"),
        "{}",
        render(&strict)
    );
    assert!(render(&lax).contains("at 99% confidence"));
}

#[test]
fn tiny_rate_changes_are_below_the_floor() {
    // With no relative bound and a lax confidence, the 0.1-point floor alone decides:
    // 0 -> 8 errors of 16,000 (0.05%, z = 2.8) is not a regression.
    let bare = Options {
        max_regression: 0.0,
        confidence: 0.99,
        ..opts()
    };
    let a = run("t-a", &Spec::default());
    let b = run(
        "t-b",
        &Spec {
            seed: 2,
            errors_during: 8,
            ..Spec::default()
        },
    );
    let c = compare(&a, &b, bare).unwrap();
    let r = row(&c, "during:f", "error rate");
    assert!(r.worse_by.is_infinite());
    assert!(r.evidence.starts_with("z = 2.8"), "{}", r.evidence);
    assert_eq!(r.finding, Finding::NoRegression);
    // 0 -> 32 (0.2%) is.
    let b = run(
        "t-c",
        &Spec {
            seed: 2,
            errors_during: 32,
            ..Spec::default()
        },
    );
    assert!(row(&compare(&a, &b, bare).unwrap(), "during:f", "error rate").is_regression());
    // Throughput is worse downwards: 20% of 26,000 never sent is a regression...
    let t = run(
        "t-t",
        &Spec {
            seed: 3,
            not_sent: 5_200,
            ..Spec::default()
        },
    );
    let c = compare(&a, &t, opts()).unwrap();
    let tp = row(&c, "whole", "throughput > 99%");
    assert!(tp.new < tp.old && tp.worse_by > 0.19, "{}", render(&c));
    assert!(tp.is_regression(), "{}", render(&c));
    // ...13 (0.05%, z = 3.6) is under the floor.
    let t = run(
        "t-u",
        &Spec {
            seed: 3,
            not_sent: 13,
            ..Spec::default()
        },
    );
    let tp = row(&compare(&a, &t, bare).unwrap(), "whole", "throughput > 99%").clone();
    assert!(tp.evidence.starts_with("z = 3.6"), "{}", tp.evidence);
    assert!(!tp.is_regression());
}

#[test]
fn latency_needs_the_samples_to_show_a_change() {
    // Many samples (16,000 in the fault's window): p99 +50% is a regression, an identical
    // distribution drawn again is not, nor is p99 +5%.
    let a = run("l-a", &Spec::default());
    let same = run(
        "l-same",
        &Spec {
            seed: 9,
            ..Spec::default()
        },
    );
    let c = compare(&a, &same, opts()).unwrap();
    assert_eq!(flagged(&c), Vec::<String>::new(), "{}", render(&c));
    let slow = run(
        "l-slow",
        &Spec {
            tail_us: 4_200.0,
            ..Spec::default()
        },
    );
    let c = compare(&a, &slow, opts()).unwrap();
    let r = row(&c, "during:f", "p99 < 1s");
    assert!(r.worse_by > 0.4 && r.worse_by < 0.6, "{}", r.worse_by);
    assert!(r.is_regression(), "{}", render(&c));
    assert!(row(&c, "whole", "p99").is_regression());
    assert!(r.evidence.contains(" → "), "{}", r.evidence);
    let bit = run(
        "l-bit",
        &Spec {
            tail_us: 2_200.0,
            ..Spec::default()
        },
    );
    let c = compare(&a, &bit, opts()).unwrap();
    assert!(!row(&c, "during:f", "p99 < 1s").is_regression());
    // Few samples (160 in the window): the same +50% cannot be told from noise at 99.9% and
    // is reported as not judged, never as a pass or a regression.
    let few = |tag: &str, tail_us: f64| {
        run(
            tag,
            &Spec {
                per: 10,
                tail_us,
                ..Spec::default()
            },
        )
    };
    let c = compare(&few("f-a", 2_000.0), &few("f-b", 4_200.0), opts()).unwrap();
    let r = row(&c, "during:f", "p99 < 1s");
    assert!(r.worse_by > 0.2, "{}", r.worse_by);
    assert!(
        matches!(&r.finding, Finding::NotJudged(why) if why.contains("too few samples")),
        "{:?}",
        r.finding
    );
    assert!(render(&c).contains("not judged"), "{}", render(&c));
    // The median of those 260 requests moved too (+14%), and 260 samples do bound a median.
    assert!(row(&c, "whole", "p50").is_regression(), "{}", render(&c));
}

#[test]
fn an_edited_stored_value_is_judged_with_the_recorded_spread() {
    // What tests/cli.rs does to a copy of a run: the stored during-fault p99 made 3x worse.
    let a = run("s-a", &Spec::default());
    let b = run(
        "s-b",
        &Spec {
            seed: 2,
            ..Spec::default()
        },
    );
    edit(&b, |v| {
        let s = slo(v, "p99 < 1s");
        s["value"] = json!(s["value"].as_f64().unwrap() * 3.0);
    });
    let c = compare(&a, &b, opts()).unwrap();
    assert_eq!(flagged(&c), ["during:f p99 < 1s"], "{}", render(&c));
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("its recorded histograms")),
        "{:?}",
        c.notes
    );
}

#[test]
fn a_maximum_needs_enough_slow_requests_beyond_the_old_one() {
    let a = run("m-a", &Spec::default());
    // Three requests at 500 ms: the max is 15x worse, but three samples of 16,000 above the
    // old maximum happen by chance more often than 1 in 1,000 (ten are needed).
    let b = run(
        "m-b",
        &Spec {
            seed: 2,
            spikes: 3,
            ..Spec::default()
        },
    );
    let c = compare(&a, &b, opts()).unwrap();
    let r = row(&c, "during:f", "max < 5s");
    assert!(r.worse_by > 10.0, "{}", render(&c));
    assert_eq!(r.finding, Finding::NoRegression, "{}", render(&c));
    assert!(
        r.evidence
            .starts_with("3 above the baseline's max (10 needed)"),
        "{}",
        r.evidence
    );
    let b = run(
        "m-c",
        &Spec {
            seed: 2,
            spikes: 20,
            ..Spec::default()
        },
    );
    assert!(row(&compare(&a, &b, opts()).unwrap(), "during:f", "max < 5s").is_regression());
}

#[test]
fn amplification_is_tested_on_the_retries_per_request() {
    let a = run("x-a", &Spec::default());
    // 2,000 of 16,000 requests retried once: 1.00 -> 1.125 attempts per request.
    let b = run(
        "x-b",
        &Spec {
            seed: 2,
            retried: 2_000,
            ..Spec::default()
        },
    );
    let c = compare(&a, &b, opts()).unwrap();
    let r = row(&c, "during:f", "amplification < 2");
    assert!(r.is_regression(), "{}", render(&c));
    // 100 retried (1.006): under the 0.05 floor.
    let b = run(
        "x-c",
        &Spec {
            seed: 2,
            retried: 100,
            ..Spec::default()
        },
    );
    let c = compare(
        &a,
        &b,
        Options {
            max_regression: 0.0,
            ..opts()
        },
    )
    .unwrap();
    assert!(
        !row(&c, "during:f", "amplification < 2").is_regression(),
        "{}",
        render(&c)
    );
}

#[test]
fn recovery_has_a_floor_of_three_recorder_intervals() {
    let a = run("r-a", &Spec::default());
    let set = |dir: &Path, s: f64| {
        edit(dir, |v| {
            let r = slo(v, "recovery < 20s");
            r["value"] = json!(s * 1e6);
            r["status"] = json!("pass");
        })
    };
    set(&a, 4.0);
    let b = run(
        "r-b",
        &Spec {
            seed: 2,
            ..Spec::default()
        },
    );
    // 4 s -> 6 s: +50%, but within 3 intervals of 1 s.
    set(&b, 6.0);
    let c = compare(&a, &b, opts()).unwrap();
    assert_eq!(c.recovery_floor_us, 3e6);
    assert!(!row(&c, "during:f", "recovery < 20s").is_regression());
    set(&b, 8.0);
    let c = compare(&a, &b, opts()).unwrap();
    assert!(row(&c, "during:f", "recovery < 20s").is_regression());
}

#[test]
fn a_value_lost_in_the_new_run_is_a_regression() {
    let a = run("u1", &Spec::default());
    let b = run(
        "u2",
        &Spec {
            seed: 2,
            ..Spec::default()
        },
    );
    // The new run's during-fault p99 could not be judged (e.g. not recovered, no data).
    edit(&b, |v| {
        let s = slo(v, "p99 < 1s");
        s["value"] = Value::Null;
        s["status"] = json!("insufficient_data");
    });
    let c = compare(&a, &b, opts()).unwrap();
    assert_eq!(c.regressions(), 1, "{}", render(&c));
    assert!(
        c.unmeasured[0].starts_with("during:f p99 < 1s"),
        "{:?}",
        c.unmeasured
    );
    assert!(render(&c).contains("**REGRESSION**: during:f"));
    // The other way round (unmeasured before, measured now): nothing to compare.
    assert_eq!(compare(&b, &a, opts()).unwrap().regressions(), 0);
}

#[test]
fn runs_of_different_scenarios_are_refused_unless_allowed() {
    let a = run("d-a", &Spec::default());
    let renamed = run(
        "d-n",
        &Spec {
            seed: 2,
            ..Spec::default()
        },
    );
    edit(&renamed, |v| {
        v["scenario"]["text"] = json!(v["scenario"]["text"]
            .as_str()
            .unwrap()
            .replace("name = \"s\"", "name = \"t\""))
    });
    edit(&renamed, |v| v["scenario"]["name"] = json!("t"));
    let other_load = run(
        "d-l",
        &Spec {
            seed: 2,
            rate: "900/s",
            ..Spec::default()
        },
    );
    for other in [&renamed, &other_load] {
        let e = compare(&a, other, opts()).err().unwrap();
        let msg = e.to_string();
        assert!(matches!(e, CompareError::Different { .. }), "{msg}");
        assert!(
            msg.contains("--allow-different") && msg.contains("fnv1a64:"),
            "{msg}"
        );
        let c = compare(
            &a,
            other,
            Options {
                allow_different: true,
                ..opts()
            },
        )
        .unwrap();
        assert!(
            c.notes[0].starts_with("different scenarios compared"),
            "{:?}",
            c.notes
        );
    }
    // The name differs: both names are in the message.
    let msg = compare(&a, &renamed, opts()).err().unwrap().to_string();
    assert!(msg.contains("`s`") && msg.contains("`t`"), "{msg}");
}

#[test]
fn either_argument_may_be_the_report_json_itself() {
    let a = run("p-a", &Spec::default());
    let b = run(
        "p-b",
        &Spec {
            seed: 2,
            ..Spec::default()
        },
    );
    let by_dir = compare(&a, &b, opts()).unwrap();
    let by_file = compare(&a.join("report.json"), &b.join("report.json"), opts()).unwrap();
    assert_eq!(render(&by_dir), render(&by_file));
    assert!(compare(&a, &b.join("report.json"), opts()).is_ok());
    // Nothing there, not JSON, not a report: errors naming the path.
    let missing = a.join("nope");
    let e = compare(&a, &missing, opts()).err().unwrap().to_string();
    assert!(e.contains("nope") && e.starts_with("cannot read"), "{e}");
    std::fs::write(a.join("x.json"), "{").unwrap();
    let e = compare(&a.join("x.json"), &b, opts())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("x.json: not a JSON report"), "{e}");
    std::fs::write(a.join("y.json"), "{\"schema\": \"other/v9\"}").unwrap();
    let e = compare(&b, &a.join("y.json"), opts())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("y.json: schema \"other/v9\""), "{e}");
}

#[test]
fn without_a_recording_sample_counts_still_bound_latency() {
    // The histograms unreadable: whole-run totals and SLO values with their sample counts.
    let a = run("n-a", &Spec::default());
    let b = run(
        "n-b",
        &Spec {
            seed: 2,
            tail_us: 4_200.0,
            ..Spec::default()
        },
    );
    for d in [&a, &b] {
        edit(d, |v| v["interval_s"] = Value::Null);
    }
    let c = compare(&a, &b, opts()).unwrap();
    assert!(c
        .notes
        .iter()
        .any(|n| n.contains("per-window comparison skipped")));
    assert!(c.rows.iter().all(|r| r.window != "baseline"));
    assert!(
        row(&c, "during:f", "p99 < 1s").is_regression(),
        "{}",
        render(&c)
    );
    assert!(row(&c, "whole", "p99").is_regression());
    // ...and an identical distribution is not.
    let same = run(
        "n-s",
        &Spec {
            seed: 3,
            ..Spec::default()
        },
    );
    edit(&same, |v| v["interval_s"] = Value::Null);
    assert_eq!(
        flagged(&compare(&a, &same, opts()).unwrap()),
        Vec::<String>::new()
    );
}

/// A fault that did not take effect in one run (skipped, not reached, unconfirmed): its
/// windows are ordinary traffic there, never compared with the other run's fault; an SLO the
/// baseline run did not judge is said not to be compared.
#[test]
fn windows_of_a_fault_that_did_not_take_effect_are_not_compared() {
    let a = run("skip-a", &Spec::default());
    let b = run(
        "skip-b",
        &Spec {
            seed: 2,
            errors_during: 1600,
            ..Spec::default()
        },
    );
    // With the fault applied in both, its window is compared (and 10% errors is a regression).
    let c = compare(&a, &b, opts()).unwrap();
    assert!(row(&c, "during:f", "error rate").is_regression());
    edit(&a, |v| {
        v["timeline"]["faults"][0]["injected_at_s"] = Value::Null;
        v["timeline"]["faults"][0]["status"] = json!("skipped");
        let s = slo(v, "errors < 5%");
        s["status"] = json!("not_judged");
        s["value"] = Value::Null;
    });
    let c = compare(&a, &b, opts()).unwrap();
    let text = render(&c);
    assert!(
        !c.rows
            .iter()
            .any(|r| r.window.starts_with("during:f") && r.what == "error rate"),
        "{text}"
    );
    assert!(
        text.contains("fault `f` did not take effect in the baseline run"),
        "{text}"
    );
    assert!(
        text.contains("not judged in the baseline run, so not compared: during:f errors < 5%"),
        "{text}"
    );
}
