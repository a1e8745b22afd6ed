//! A restore's `rpo` on synthetic read-backs: the math, per request, several restores, holes
//! in the restored point in time, and when it cannot or must not be judged.

use super::*;

/// A write sent 20 ms before it was acknowledged.
fn answered(request: &str, acked_ms: u64, found: bool) -> Answered {
    Answered {
        request: request.into(),
        sent_ms: acked_ms - 20,
        acked_ms,
        found,
    }
}

/// A restore at 5 s: `rpo` is from the loss back to the newest write acknowledged before it
/// that read back; with none read back, back to the oldest lost one; per request name; the
/// largest over several restores; insufficient without a restore, a read-back or any write
/// acknowledged before the loss.
#[test]
fn rpo_is_from_the_loss_back_to_the_newest_write_that_survived() {
    let restore = |name: &str, at_ms: u64| FaultSpan {
        name: name.into(),
        kind: crate::slo::rpo::RESTORE_KIND.into(),
        start: Duration::from_millis(at_ms),
        end: Duration::from_millis(at_ms + 2000),
    };
    let tl = |faults| Timeline {
        total: Duration::from_secs(10),
        faults,
    };
    // Writes every 500 ms; those acknowledged from 3.2 s to 5 s were lost (the snapshot was
    // taken at 3.1 s), and writes after the restore were kept.
    let data = DataCheck {
        answered: [
            ("a", 1000, true),
            ("b", 2500, true),
            ("a", 3000, true),
            ("a", 3500, false),
            ("b", 4000, false),
            ("a", 4500, false),
            ("a", 7000, true),
        ]
        .iter()
        .map(|(r, at, found)| answered(r, *at, *found))
        .collect(),
        ..DataCheck::default()
    };
    let judge = |o: Objective, tl: &Timeline, d: Option<&DataCheck>| {
        evaluate_with_data(&[o], &recording(), tl, d, recovery::SUSTAIN).remove(0)
    };
    let rpo = |bound_s: f64| obj(Window::Data, Metric::Rpo, CmpOp::Lt, bound_s * 1e6);
    let one = tl(vec![restore("restore", 5000)]);
    let r = judge(rpo(3.0), &one, Some(&data));
    assert_eq!((r.status, r.value), (Status::Pass, Some(2_000_000.0)));
    assert_eq!(r.samples, 7);
    assert!(
        r.note
            .as_deref()
            .unwrap()
            .contains("acknowledged at 3.0s, 3 acknowledged before the loss lost"),
        "{:?}",
        r.note
    );
    assert_eq!(judge(rpo(2.0), &one, Some(&data)).status, Status::Fail);
    // Request `b`: its newest kept write is at 2.5 s.
    let mut per = rpo(3.0);
    per.request = Some("b".into());
    assert_eq!(judge(per, &one, Some(&data)).value, Some(2_500_000.0));
    // Nothing before the loss read back: the data ends before the oldest lost write.
    let all_lost = DataCheck {
        answered: vec![answered("a", 1000, false), answered("a", 4000, false)],
        ..DataCheck::default()
    };
    assert_eq!(
        judge(rpo(3.0), &one, Some(&all_lost)).value,
        Some(4_000_000.0)
    );
    // Two restores: the worse one.
    let two = tl(vec![restore("first", 5000), restore("second", 8000)]);
    let r = judge(rpo(3.0), &two, Some(&data));
    assert_eq!(
        r.value,
        Some(2_000_000.0),
        "second: 8 s - 7 s = 1 s; first: 2 s"
    );
    assert_eq!(
        r.status,
        Status::Pass,
        "the first restore's losses are no hole in the second's"
    );
    // A write acknowledged before the newest one kept is lost: a hole, whatever the bound.
    let mut holed = data.clone();
    holed.answered[1].found = false;
    let r = judge(rpo(3.0), &one, Some(&holed));
    assert_eq!((r.status, r.value), (Status::Fail, Some(2_000_000.0)));
    assert!(
        r.note
            .as_deref()
            .unwrap()
            .contains("1 acknowledged before the newest kept ones were sent are lost"),
        "{:?}",
        r.note
    );
    let p = crate::slo::rpo::recovery_points(&holed, &one, None);
    assert_eq!((p[0].holes, p[0].lost_before), (1, 4));
    // A write committed after the snapshot whose answer overtook that of one committed before
    // it (acknowledged at 2.99 s, after the kept one at 3.0 s was sent at 2.98 s): no hole.
    let mut overtaken = data.clone();
    overtaken.answered.insert(2, answered("b", 2990, false));
    let r = judge(rpo(3.0), &one, Some(&overtaken));
    assert_eq!((r.status, r.value), (Status::Pass, Some(2_000_000.0)));
    // Insufficient: no restore, no read-back, no write before the loss, an older report.
    let no_restore = tl(vec![]);
    assert_eq!(
        judge(rpo(3.0), &no_restore, Some(&data)).status,
        Status::InsufficientData
    );
    assert_eq!(judge(rpo(3.0), &one, None).status, Status::InsufficientData);
    let early = tl(vec![restore("restore", 500)]);
    assert_eq!(
        judge(rpo(3.0), &early, Some(&data)).status,
        Status::InsufficientData
    );
    let old = DataCheck {
        untimed: 7,
        ..DataCheck::default()
    };
    let r = judge(rpo(3.0), &one, Some(&old));
    assert_eq!(r.status, Status::InsufficientData);
    assert!(r.note.unwrap().contains("older version"));
}

/// An `rpo` whose restore was never applied is not judged (the run fails on the fault), never
/// measured on a loss that did not happen.
#[test]
fn rpo_of_a_restore_that_did_not_take_place_is_not_judged() {
    let s = crate::scenario::parse_str(
        "drill.toml",
        r#"
name = "drill"
[load]
stages = [{ hold = "10/s", for = "10s" }]
[[load.requests]]
name = "a"
path = "/"
[[faults]]
name = "restore"
kind = "db-restore"
at = "5s"
[slo]
data = ["rpo < 1m"]
"#,
    )
    .unwrap();
    let data = DataCheck {
        answered: vec![answered("a", 1000, true)],
        ..DataCheck::default()
    };
    let tl = Timeline::of(&s);
    let judged = |unapplied: &[(&str, &str)]| {
        judge_run(
            &s,
            (&recording(), None),
            &tl,
            std::iter::once(("restore", Some(5.0), None)),
            unapplied,
            Some(&data),
            1.0,
        )
        .0
        .remove(0)
    };
    assert_eq!(judged(&[]).status, Status::Pass);
    let r = judged(&[("restore", "could not be injected")]);
    assert_eq!(r.status, Status::NotJudged);
    assert!(r
        .note
        .unwrap()
        .contains("fault `restore` could not be injected"));
}
