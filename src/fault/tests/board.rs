//! The conductor's live board (`--conductor`), in paused time against the test driver: what it
//! shows while a fault is applied, before the timeline is over, and once it is.

use super::*;

/// `a` (at 1 s for 2 s) and `b` (at 10 s; the run is stopped at 4 s: never reached). At 2 s
/// the board shows `a` injected at 1 s and not over, `b` waiting; once the timeline returns,
/// `a` reverted at 3 s and `b` not reached — the same times as the outcomes.
#[tokio::test(start_paused = true)]
async fn the_board_shows_each_fault_as_it_happens() {
    let d = Arc::new(Flaky::default());
    let j = Journal::create(&tmp("board")).unwrap();
    let faults = [fault("a", 1_000, 2_000), fault("b", 10_000, 1_000)];
    let planned = plan_all(&d, &faults).await;
    let board = live::Board::new(&planned);
    let start = Instant::now();
    let stop = Shutdown::new();
    let timeline = run_timeline(
        &planned,
        &d,
        &j,
        (start, Duration::from_secs(20)),
        &stop,
        None,
        Some(&board),
    );
    let look = async {
        tokio::time::sleep_until(start + Duration::from_secs(2)).await;
        let (now, over) = board.snapshot();
        assert!(!over);
        let [a, b] = &now[..] else { panic!("{now:?}") };
        assert!(
            a.injected_at_s.is_some_and(|s| (1.0..1.1).contains(&s)),
            "{a:?}"
        );
        assert_eq!((a.reverted_at_s, a.status), (None, None), "{a:?}");
        assert_eq!((b.injected_at_s, b.status), (None, None), "{b:?}");
        tokio::time::sleep_until(start + Duration::from_secs(4)).await;
        stop.trigger();
    };
    let (t, ()) = tokio::join!(timeline, look);
    board.close();
    let (end, over) = board.snapshot();
    assert!(over);
    for (l, o) in end.iter().zip(&t.outcomes) {
        assert_eq!(l.name, o.name);
        assert_eq!(l.status, Some(o.status), "{l:?}");
        assert_eq!(
            (l.injected_at_s, l.reverted_at_s),
            (o.injected_at_s, o.reverted_at_s)
        );
    }
    assert_eq!(end[0].status, Some(Status::Reverted));
    assert!(end[0]
        .reverted_at_s
        .is_some_and(|s| (3.0..3.1).contains(&s)));
    assert_eq!(end[1].status, Some(Status::NotReached));
}
