//! Game-day hands on the timeline (`--gameday`), in paused time against the test driver: the
//! same steps as the schedule's, who took each, and what a hand is told when a step failed.

use super::*;

/// Game-day hands, in paused time: `a` (scheduled at 10 s for 2 s) injected by hand at 1 s is
/// reverted 2 s later (its `for` counts from the injection), journaled as done by hand; `b`
/// (scheduled at 2 s, until the end) is reverted by hand at 4 s. A hand that does not fit the
/// fault's phase is refused, and a fault is injected once per run.
#[tokio::test(start_paused = true)]
async fn faults_injected_and_reverted_by_hand_go_through_the_same_steps() {
    let d = Arc::new(Flaky::default());
    let p = tmp("hands");
    let j = Journal::create(&p).unwrap();
    let faults = [fault("a", 10_000, 2_000), {
        let mut b = fault("b", 2_000, 0);
        b.duration = None;
        b
    }];
    let planned = plan_all(&d, &faults).await;
    let hands = manual::Hands::new(["a", "b"]);
    let start = Instant::now();
    let stop = Shutdown::new();
    let timeline = run_timeline(
        &planned,
        &d,
        &j,
        (start, Duration::from_secs(20)),
        &stop,
        Some(&hands),
        None,
    );
    let people = async {
        assert!(matches!(
            hands.revert("a").await,
            Err(manual::HandError::NotApplied(_))
        ));
        assert!(matches!(
            hands.inject("nope").await,
            Err(manual::HandError::Unknown { .. })
        ));
        tokio::time::sleep_until(start + Duration::from_secs(1)).await;
        hands.inject("a").await.unwrap();
        assert!(matches!(
            hands.inject("a").await,
            Err(manual::HandError::AlreadyApplied(_))
        ));
        tokio::time::sleep_until(start + Duration::from_secs(4)).await;
        hands.note(
            start.elapsed().as_secs_f64(),
            "b is on by schedule; taking it off",
        );
        hands.revert("b").await.unwrap();
        assert!(matches!(
            hands.inject("a").await,
            Err(manual::HandError::Over(_))
        ));
    };
    let (t, ()) = tokio::join!(timeline, people);
    let [a, b] = &t.outcomes[..] else {
        panic!("{:?}", t.outcomes)
    };
    let near = |v: Option<f64>, want: f64| (v.unwrap() - want).abs() < 0.01;
    assert!(
        near(a.injected_at_s, 1.0) && near(a.reverted_at_s, 3.0),
        "{a:?}"
    );
    assert_eq!(
        a.by_hand,
        manual::ByHand {
            injected: true,
            reverted: false
        }
    );
    assert!(
        near(b.injected_at_s, 2.0) && near(b.reverted_at_s, 4.0),
        "{b:?}"
    );
    assert_eq!(
        b.by_hand,
        manual::ByHand {
            injected: false,
            reverted: true
        }
    );
    assert_eq!(hands.notes().len(), 1);
    let records = journal::read(&p).unwrap();
    let by = |fault: &str, step: Step| {
        records
            .iter()
            .find(|r| r.fault == fault && r.step == step)
            .map(|r| r.by.clone())
    };
    assert_eq!(by("a", Step::Intent), Some(Some(HAND.into())));
    assert_eq!(by("a", Step::Applied), Some(Some(HAND.into())));
    assert_eq!(
        by("a", Step::Reverted),
        Some(None),
        "reverted on its schedule"
    );
    assert_eq!(
        by("b", Step::Applied),
        Some(None),
        "injected on its schedule"
    );
    assert_eq!(by("b", Step::Reverted), Some(Some(HAND.into())));
    // The same steps as a scheduled fault's.
    let steps_of = |fault: &str| -> Vec<Step> {
        records
            .iter()
            .filter(|r| r.fault == fault)
            .map(|r| r.step)
            .collect()
    };
    let all = vec![Step::Intent, Step::Applied, Step::Confirmed, Step::Reverted];
    assert_eq!((steps_of("a"), steps_of("b")), (all.clone(), all));
}

/// A revert by hand that fails is said to have failed (the fault is still applied), never
/// reported done; an inject by hand whose effect never shows is said to have failed too.
#[tokio::test(start_paused = true)]
async fn a_hand_is_told_when_its_revert_or_inject_failed() {
    let d = Arc::new(Flaky::default());
    d.fail_reverts.store(1_000, Ordering::SeqCst);
    d.permanent.store(true, Ordering::SeqCst);
    d.shows_after
        .lock()
        .unwrap()
        .insert("never".into(), Duration::from_secs(3600));
    let p = tmp("hands-fail");
    let j = Journal::create(&p).unwrap();
    let faults = [fault("stuck", 10_000, 2_000), fault("never", 10_000, 2_000)];
    let planned = plan_all(&d, &faults).await;
    let hands = manual::Hands::new(["stuck", "never"]);
    let start = Instant::now();
    *d.epoch.lock().unwrap() = Some(start);
    let stop = Shutdown::new();
    let timeline = run_timeline(
        &planned,
        &d,
        &j,
        (start, Duration::from_secs(20)),
        &stop,
        Some(&hands),
        None,
    );
    let people = async {
        assert_eq!(hands.inject("stuck").await, Ok(manual::By::Hand));
        let r = hands.revert("stuck").await;
        assert!(
            matches!(&r, Err(manual::HandError::Failed { what, .. }) if what.contains("still applied")),
            "{r:?}"
        );
        let r = hands.inject("never").await;
        assert!(
            matches!(&r, Err(manual::HandError::Failed { what, .. })
                if what.contains("never showed") && what.contains("its revert failed too")),
            "{r:?}"
        );
    };
    let (t, ()) = tokio::join!(timeline, people);
    assert_eq!(t.outcomes[0].status, Status::RevertFailed);
    assert_eq!(
        t.outcomes[1].status,
        Status::RevertFailed,
        "its revert fails too"
    );
}
