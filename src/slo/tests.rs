use super::*;
use crate::metrics::{Recorder, Sample};
use crate::scenario::CmpOp;

fn obj(window: Window, metric: Metric, op: CmpOp, bound: f64) -> Objective {
    Objective {
        text: String::new(),
        window,
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
        obj(Window::Baseline, Metric::Errors, CmpOp::Lt, 0.001),
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

#[test]
fn too_few_samples_is_insufficient_not_a_pass() {
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
        });
    }
    let rec = r.finish();
    let tl = Timeline {
        total: Duration::from_secs(1),
        faults: vec![],
    };
    let res = evaluate(
        &[
            obj(Window::Whole, Metric::Latency(0.99), CmpOp::Lt, 1e6),
            obj(Window::Whole, Metric::Latency(0.95), CmpOp::Lt, 1e6),
        ],
        &rec,
        &tl,
    );
    assert_eq!(res[0].status, Status::InsufficientData);
    assert!(res[0].note.as_deref().unwrap().contains("at least 100"));
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
