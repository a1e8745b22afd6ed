use super::*;
use crate::metrics::{Recorder, Sample};
use crate::scenario::CmpOp;

fn obj(window: Window, metric: Metric, op: CmpOp, bound: f64) -> Objective {
    Objective {
        text: String::new(),
        window,
        trim: None,
        request: None,
        metric,
        op,
        bound,
    }
}

/// 10 s at 200 req/s, 1 s intervals; from 4 s to 6 s every request fails slowly.
fn recording() -> Recording {
    let mut r = Recorder::new(vec!["a".into()], Duration::from_secs(1));
    for i in 0..2000u64 {
        let t = Duration::from_millis(i * 5);
        let bad = (4..6).contains(&t.as_secs());
        r.record(&Sample {
            request: 0,
            intended: t,
            latency_us: if bad { 2_000_000 } else { 10_000 },
            service_us: 9_000,
            lateness_us: 50,
            outcome: if bad { Outcome::Timeout } else { Outcome::Ok },
            attempts: if bad { 3 } else { 1 },
            exhausted: bad,
            status: 0,
            tag: 0,
        });
    }
    r.finish()
}

fn timeline() -> Timeline {
    Timeline {
        total: Duration::from_secs(10),
        faults: vec![FaultSpan {
            name: "f".into(),
            kind: "db-failover".into(),
            start: Duration::from_secs(4),
            end: Duration::from_secs(6),
        }],
    }
}

#[test]
fn windows_split_the_run_around_the_fault() {
    let tl = timeline();
    assert_eq!(
        tl.span(&Window::Baseline),
        (Duration::ZERO, Duration::from_secs(4))
    );
    assert_eq!(
        tl.span(&Window::After("f".into())),
        (Duration::from_secs(6), Duration::from_secs(10))
    );
    let objs = [
        obj(Window::Baseline, Metric::Errors, CmpOp::Lt, 0.005),
        obj(Window::During("f".into()), Metric::Errors, CmpOp::Lt, 0.5),
        obj(
            Window::After("f".into()),
            Metric::Latency(0.99),
            CmpOp::Lt,
            20_000.0,
        ),
        obj(Window::Whole, Metric::Errors, CmpOp::Lt, 0.25),
        obj(Window::Whole, Metric::Amplification, CmpOp::Le, 1.4),
        obj(Window::Whole, Metric::RetriesExhausted, CmpOp::Eq, 0.2),
    ];
    let res = evaluate(&objs, &recording(), &tl);
    let st: Vec<_> = res.iter().map(|r| r.status).collect();
    assert_eq!(
        st,
        vec![
            Status::Pass,
            Status::Fail,
            Status::Pass,
            Status::Pass,
            Status::Pass,
            Status::Pass
        ]
    );
    assert_eq!(res[1].value, Some(1.0));
    assert_eq!(res[1].samples, 400);
    assert!((res[3].value.unwrap() - 0.2).abs() < 1e-12);
    assert!((res[4].value.unwrap() - 1.4).abs() < 1e-12);
}

fn trimmed(window: Window, text: &str, metric: Metric, op: CmpOp, bound: f64) -> Objective {
    Objective {
        trim: Some(crate::scenario::values::trim(text).unwrap()),
        ..obj(window, metric, op, bound)
    }
}

/// 10 s at 200 req/s, 1 s intervals; the first 2 s (a warm-up) are slow.
fn warm_up_recording() -> Recording {
    let mut r = Recorder::new(vec!["a".into()], Duration::from_secs(1));
    for i in 0..2000u64 {
        let t = Duration::from_millis(i * 5);
        r.record(&Sample {
            request: 0,
            intended: t,
            latency_us: if t.as_secs() < 2 { 900_000 } else { 10_000 },
            service_us: 9_000,
            lateness_us: 50,
            outcome: Outcome::Ok,
            attempts: 1,
            exhausted: false,
            status: 0,
            tag: 0,
        });
    }
    r.finish()
}

#[test]
fn a_trimmed_window_leaves_out_exactly_the_trimmed_intervals() {
    let tl = timeline();
    let base = trimmed(
        Window::Baseline,
        "2s..",
        Metric::Latency(0.99),
        CmpOp::Lt,
        300_000.0,
    );
    assert_eq!(
        tl.span_of(&base),
        (Duration::from_secs(2), Duration::from_secs(4))
    );
    assert_eq!(base.window_label(), "baseline[2s..]");
    let res = evaluate(
        &[
            obj(
                Window::Baseline,
                Metric::Latency(0.99),
                CmpOp::Lt,
                300_000.0,
            ),
            base.clone(),
            // One interval too little trimmed: the warm-up's second still counts.
            trimmed(
                Window::Baseline,
                "1s..",
                Metric::Latency(0.99),
                CmpOp::Lt,
                300_000.0,
            ),
            // The last 1 s of the run (`after:f` is 6..10 s): 200 requests.
            trimmed(
                Window::After("f".into()),
                "-1s..",
                Metric::Errors,
                CmpOp::Lt,
                0.01,
            ),
            // Crossed ends (6..10 s cut to [3 s from its start .. 2 s before its end]): empty.
            trimmed(
                Window::After("f".into()),
                "3s..-2s",
                Metric::Errors,
                CmpOp::Lt,
                0.01,
            ),
        ],
        &warm_up_recording(),
        &tl,
    );
    let st: Vec<_> = res.iter().map(|r| r.status).collect();
    assert_eq!(
        st,
        vec![
            Status::Fail,
            Status::Pass,
            Status::Fail,
            Status::Pass,
            Status::InsufficientData
        ]
    );
    assert_eq!(res[1].samples, 400);
    assert_eq!(res[2].samples, 600);
    assert_eq!(res[3].samples, 200);
    assert!(res[4].note.as_deref().unwrap().contains("after:f[3s..-2s]"));
}

#[test]
fn trims_parse_and_bad_ones_say_what_is_accepted() {
    use crate::scenario::values::trim;
    let t = trim("10s..").unwrap();
    assert_eq!(
        (t.from.unwrap().by, t.from.unwrap().from_end),
        (Duration::from_secs(10), false)
    );
    assert!(t.to.is_none());
    let t = trim("..-5s").unwrap();
    assert!(t.from.is_none() && t.to.unwrap().from_end);
    assert!(trim("5s..20s").is_ok());
    for bad in ["..", "10s", "20s..5s", "-5s..-10s", "x..", "5s..ten"] {
        let e = trim(bad).unwrap_err();
        assert!(e.message.contains(bad), "{bad}: {}", e.message);
        assert!(e.help.contains("baseline[10s..]"), "{bad}");
    }
}

/// 50 fast, successful requests in one second, no fault: too few to judge most SLOs.
fn fifty_fast_requests() -> (Recording, Timeline) {
    let mut r = Recorder::new(vec!["a".into()], Duration::from_secs(1));
    for i in 0..50u64 {
        r.record(&Sample {
            request: 0,
            intended: Duration::from_millis(i),
            latency_us: 100,
            service_us: 100,
            lateness_us: 0,
            outcome: Outcome::Ok,
            attempts: 1,
            exhausted: false,
            status: 0,
            tag: 0,
        });
    }
    let tl = Timeline {
        total: Duration::from_secs(1),
        faults: vec![],
    };
    (r.finish(), tl)
}

#[test]
fn too_few_samples_is_insufficient_not_a_pass() {
    let (rec, tl) = fifty_fast_requests();
    let res = evaluate(
        &[
            obj(Window::Whole, Metric::Latency(0.99), CmpOp::Lt, 1e6),
            obj(Window::Whole, Metric::Latency(0.95), CmpOp::Lt, 1e6),
        ],
        &rec,
        &tl,
    );
    assert_eq!(res[0].status, Status::InsufficientData);
    assert!(res[0].note.as_deref().unwrap().contains("100 needed"));
    assert_eq!(res[1].status, Status::Pass);
    assert!(!all_pass(&res));
}

#[test]
fn formats_for_humans() {
    assert_eq!(show_us(812_345.0), "812.3ms");
    assert_eq!(show_us(2_500_000.0), "2.50s");
    assert_eq!(show_us(950.0), "950µs");
    assert_eq!(show_ratio(0.02), "2.00%");
    assert_eq!(show_ratio(0.25), "25.0%");
    assert_eq!(show_ratio(0.0001), "0.010%");
}

#[test]
fn unverified_writes_keep_lost_writes_from_passing() {
    let tl = Timeline {
        total: Duration::from_secs(10),
        faults: vec![],
    };
    let data = |checked, lost, unverified| DataCheck {
        per_request: vec![("a".into(), checked, lost)],
        unverified: if unverified > 0 {
            vec![("a".into(), unverified)]
        } else {
            vec![]
        },
        ..DataCheck::default()
    };
    let judge = |d: &DataCheck| {
        let o = obj(Window::Data, Metric::LostWrites, CmpOp::Eq, 0.0);
        evaluate_with_data(&[o], &recording(), &tl, Some(d), recovery::SUSTAIN).remove(0)
    };
    assert_eq!(judge(&data(100, 0, 0)).status, Status::Pass);
    let r = judge(&data(1, 0, 99));
    assert_eq!(r.status, Status::InsufficientData);
    assert!(r
        .note
        .unwrap()
        .starts_with("99 acknowledged writes could not"));
    assert_eq!(judge(&data(0, 0, 3)).status, Status::InsufficientData);
    // Already broken by the writes found lost: a failure whatever the rest holds.
    assert_eq!(judge(&data(10, 2, 5)).status, Status::Fail);
}

#[test]
fn ratio_bounds_need_enough_requests_to_be_judged() {
    let need = |m: Metric, op: CmpOp, b: f64| min_samples(&obj(Window::Whole, m, op, b));
    assert_eq!(need(Metric::Errors, CmpOp::Lt, 0.005), 200);
    assert_eq!(need(Metric::Errors, CmpOp::Lt, 0.05), 20);
    assert_eq!(need(Metric::Errors, CmpOp::Lt, 0.00001), 1000, "capped");
    assert_eq!(need(Metric::Errors, CmpOp::Eq, 0.0), 1);
    assert_eq!(need(Metric::Throughput, CmpOp::Gt, 0.99), 100);
    assert_eq!(need(Metric::Latency(0.99), CmpOp::Lt, 1e6), 100);
    assert_eq!(need(Metric::Amplification, CmpOp::Lt, 1.5), 1);
    // 50 requests without an error do not show that errors < 0.5%: insufficient data...
    let (rec, tl) = fifty_fast_requests();
    let objs = [
        obj(Window::Whole, Metric::Errors, CmpOp::Lt, 0.005),
        obj(Window::Whole, Metric::Errors, CmpOp::Lt, 0.05),
    ];
    let mut res = evaluate(&objs, &rec, &tl);
    assert_eq!(res[0].status, Status::InsufficientData);
    assert!(res[0]
        .note
        .as_deref()
        .unwrap()
        .contains("insufficient data: 50 samples in window whole, 200 needed"));
    assert_eq!(res[1].status, Status::Pass);
    assert!(!all_pass(&res));
    // ...which fails the run unless the scenario allows it.
    allow_insufficient(&mut res);
    assert_eq!(res[0].status, Status::InsufficientAllowed);
    assert_eq!(res[1].status, Status::Pass);
    assert!(all_pass(&res));
}

#[test]
fn windows_follow_the_faults_as_they_were_applied() {
    let tl = timeline(); // f scheduled 4 s .. 6 s of 10 s
    let applied = tl.as_applied([("f", Some(4.3), Some(6.8))].into_iter());
    let ms = Duration::from_millis;
    assert_eq!(
        applied.span(&Window::During("f".into())),
        (ms(4300), ms(6800))
    );
    assert_eq!(
        applied.span(&Window::After("f".into())),
        (ms(6800), ms(10_000))
    );
    assert_eq!(applied.span(&Window::Baseline), (Duration::ZERO, ms(4300)));
    // Never injected (the run stopped first) or unknown: the schedule stands.
    let same = tl.as_applied([("f", None, None), ("other", Some(1.0), None)].into_iter());
    assert_eq!(same.span(&Window::During("f".into())), (ms(4000), ms(6000)));
    // Nonsense times are ignored; a revert past the end is the end.
    let clamped = tl.as_applied([("f", Some(f64::NAN), Some(99.0))].into_iter());
    assert_eq!(
        clamped.span(&Window::During("f".into())),
        (ms(4000), ms(10_000))
    );
}

/// Two request names over 10 s: "a" 1000 ok responses taking 1..=1000 ms; "b" 100 requests of
/// which 10 were never sent, 20 needed 2 attempts, 5 failed after 3 (retries exhausted).
fn two_requests() -> Recording {
    let mut r = Recorder::new(vec!["a".into(), "b".into()], Duration::from_secs(1));
    for i in 0..1000u64 {
        r.record(&Sample {
            request: 0,
            intended: Duration::from_millis(i * 10),
            latency_us: (i + 1) * 1000,
            service_us: 1000,
            lateness_us: 0,
            outcome: Outcome::Ok,
            attempts: 1,
            exhausted: false,
            status: 0,
            tag: 0,
        });
    }
    for i in 0..100u64 {
        let (outcome, attempts, exhausted) = match i {
            0..10 => (Outcome::NotSent, 0, false),
            10..30 => (Outcome::Ok, 2, false),
            30..35 => (Outcome::Http5xx, 3, true),
            _ => (Outcome::Ok, 1, false),
        };
        r.record(&Sample {
            request: 1,
            intended: Duration::from_millis(i * 100),
            latency_us: if outcome == Outcome::NotSent {
                0
            } else {
                5_000
            },
            service_us: 5_000,
            lateness_us: 0,
            outcome,
            attempts,
            exhausted,
            status: 0,
            tag: 0,
        });
    }
    r.finish()
}

#[test]
fn every_metric_per_request_on_a_synthetic_recording() {
    let tl = Timeline {
        total: Duration::from_secs(10),
        faults: vec![],
    };
    let per = |req: &str, m: Metric| Objective {
        request: Some(req.into()),
        ..obj(Window::Whole, m, CmpOp::Lt, f64::MAX)
    };
    let objs = [
        per("a", Metric::Latency(0.5)),
        per("a", Metric::Latency(0.9)),
        per("a", Metric::Latency(0.999)),
        per("a", Metric::MaxLatency),
        per("b", Metric::Throughput),
        per("b", Metric::NotSent),
        per("b", Metric::RetryRate),
        per("b", Metric::Amplification),
        per("b", Metric::RetriesExhausted),
        per("b", Metric::Errors),
        per("a", Metric::Errors),
    ];
    let res = evaluate(&objs, &two_requests(), &tl);
    let v: Vec<f64> = res.iter().map(|r| r.value.unwrap()).collect();
    // HDR histograms keep 3 significant digits: within 0.1%.
    let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1.0;
    assert!(near(v[0], 500_000.0), "p50 {}", v[0]);
    assert!(near(v[1], 900_000.0), "p90 {}", v[1]);
    assert!(near(v[2], 999_000.0), "p99.9 {}", v[2]);
    assert!(near(v[3], 1_000_000.0), "max {}", v[3]);
    assert!((v[4] - 0.9).abs() < 1e-12, "throughput: 90 of 100 sent");
    assert!((v[5] - 0.1).abs() < 1e-12, "not_sent");
    assert!(
        (v[6] - 25.0 / 90.0).abs() < 1e-12,
        "retry_rate: 25 of 90 sent"
    );
    assert!(
        (v[7] - 120.0 / 90.0).abs() < 1e-12,
        "amplification: 120 attempts / 90"
    );
    assert!((v[8] - 0.05).abs() < 1e-12, "retries_exhausted");
    assert!(
        (v[9] - 0.15).abs() < 1e-12,
        "errors: 10 not sent + 5 failed"
    );
    assert_eq!(v[10], 0.0, "a has no errors");
    assert_eq!(res[4].samples, 100);
    assert_eq!(res[0].samples, 1000);
    // p99.9 needs 1000 samples: "a" has exactly enough, "b" (90 latencies) does not.
    assert_eq!(res[2].status, Status::Pass);
    let b999 = evaluate(&[per("b", Metric::Latency(0.999))], &two_requests(), &tl);
    assert_eq!(b999[0].status, Status::InsufficientData);
}

#[test]
fn recovery_per_request_name() {
    // "a" fails from 4 s to 6 s; "b" is never hurt. The fault lasts 4..6 s of 10 s.
    let mut r = Recorder::new(vec!["a".into(), "b".into()], Duration::from_secs(1));
    for i in 0..2000u64 {
        let t = Duration::from_millis(i * 5);
        let req = (i % 2) as u16;
        let bad = req == 0 && (4..6).contains(&t.as_secs());
        r.record(&Sample {
            request: req,
            intended: t,
            latency_us: 10_000,
            service_us: 9_000,
            lateness_us: 50,
            outcome: if bad { Outcome::Timeout } else { Outcome::Ok },
            attempts: 1,
            exhausted: false,
            status: 0,
            tag: 0,
        });
    }
    let rec = r.finish();
    let tl = timeline();
    let rec_for = |req: &str, bound_s: f64| Objective {
        request: Some(req.into()),
        ..obj(
            Window::During("f".into()),
            Metric::Recovery,
            CmpOp::Lt,
            bound_s * 1e6,
        )
    };
    let res = evaluate_with_data(
        &[rec_for("a", 1.0), rec_for("b", 1.0)],
        &rec,
        &tl,
        None,
        Duration::from_secs(2),
    );
    assert_eq!(
        res[0].value,
        Some(2e6),
        "a recovers 2 s after the injection"
    );
    assert_eq!(res[0].status, Status::Fail);
    assert_eq!(res[1].value, Some(0.0), "b was never hurt");
    assert_eq!(res[1].status, Status::Pass);
    assert_eq!(res[1].samples, 200, "b's requests during the fault");
}

#[test]
fn a_request_the_recording_does_not_hold_is_insufficient_data_never_every_request() {
    // A report re-judged against a recording made before a request was added, say: its SLOs
    // have no samples. Aggregating every request instead would pass "c" on "a"'s and "b"'s.
    let tl = Timeline {
        total: Duration::from_secs(10),
        faults: vec![],
    };
    let c = |m: Metric| Objective {
        request: Some("c".into()),
        ..obj(Window::Whole, m, CmpOp::Lt, f64::MAX)
    };
    let res = evaluate(
        &[c(Metric::Latency(0.5)), c(Metric::Errors)],
        &two_requests(),
        &tl,
    );
    for r in &res {
        assert_eq!(r.status, Status::InsufficientData, "{r:?}");
        assert_eq!(r.samples, 0, "{r:?}");
    }
    // Its recovery too: no recovery of every request under its name.
    let rec = Objective {
        request: Some("c".into()),
        ..obj(Window::During("f".into()), Metric::Recovery, CmpOp::Lt, 1e6)
    };
    let res = evaluate_with_data(
        &[rec],
        &two_requests(),
        &timeline(),
        None,
        Duration::from_secs(2),
    );
    assert_ne!(res[0].status, Status::Pass, "{:?}", res[0]);
    assert_eq!(res[0].value, None, "{:?}", res[0]);
}

mod rpo;
