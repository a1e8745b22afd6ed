//! The run proper, once its plan is built and confirmed ([`super::run_connected`]): the load
//! and the fault timeline driven together on one clock, the conductor's feed served or followed
//! for a shard, the durable writes read back, and the raw run record judged. It owns the
//! guarantee the run module states: every applied fault is reverted — at its time, at the end,
//! on Ctrl-C/SIGTERM, on an abort, on a panic (the timeline reverts, or the journal is rolled
//! back) — before it returns. It never writes the reports ([`crate::report::write`] does).

use std::path::Path;
use std::sync::Arc;

use super::*;

/// The run proper on a built plan: drive load and faults together, read back, judge.
pub(super) async fn execute(
    opts: &RunOptions,
    scenario: Scenario,
    connected: &Connected,
    plan: RunPlan,
    dir: &Path,
    shutdown: Arc<Shutdown>,
    progress: &mut dyn Progress,
) -> Result<RunReport, RunError> {
    let url = connected.base_url.clone();
    let driver = connected
        .driver
        .as_deref()
        .filter(|_| !plan.faults.is_empty());
    // The conductor feed (--conductor): served by shard 0 from before the start (the others
    // measure their clock offset meanwhile) until every other shard has read the end of its
    // timeline; read by the others.
    let board = opts
        .conductor
        .as_ref()
        .filter(|_| opts.shard.is_some_and(|s| s.is_conductor()))
        .map(|_| Arc::new(fault::live::Board::new(&plan.faults)));
    let served = match (&opts.conductor, &board, opts.shard) {
        (Some(addr), Some(b), Some(s)) => match conductor::serve(addr, b.clone(), s.count).await {
            Ok(served) => Some(served),
            Err(e) => {
                // Nothing written yet: the run directory goes too (only if empty).
                let _ = std::fs::remove_dir(dir);
                return Err(RunError::Usage(e));
            }
        },
        _ => None,
    };
    let follower = match (&opts.conductor, opts.shard) {
        (Some(addr), Some(s)) if !s.is_conductor() => Some(conductor::follow(addr, s.index)),
        _ => None,
    };
    let journal = if driver.is_some() && !scenario.faults.is_empty() {
        let path = dir.join("journal.jsonl");
        Some(Journal::create(&path).map_err(|e| RunError::Write {
            path: path.display().to_string(),
            source: e,
        })?)
    } else {
        None
    };

    let timeline = Timeline::of(&scenario);
    let mut watch = AbortWatch::new(&scenario.abort, progress, shutdown.clone());
    // Abort conditions are judged per tick: tick at least once per recorder interval.
    let tick = opts.progress_every.min(scenario.load.interval);
    // The engine is built (requests prepared, TLS set up, a CA file read) before the clock
    // starts: its setup is not counted as the first sends' lateness.
    let mut engine = load::engine::Engine::new(&scenario.load, &url, load::engine::Mode::Open)?;
    if let Some(sh) = opts.shard {
        engine = engine.with_shard(sh)?;
    }
    if let Some(u) = &scenario.users {
        engine = engine.with_users(u, &url)?;
    }
    // The run's one clock: the schedule's offsets, the fault timeline, the recorder and the
    // report's started_at all count from this epoch — with --start-at, that agreed instant.
    let (clock, mut shards) = match opts.start_at {
        None => (crate::clock::Clock::start(), Vec::new()),
        Some(at) => start_at(at, opts.shard, &shutdown).await?,
    };
    tracing::info!(target_url = %url, "run clock started: the first arrivals are due now");
    // The game-day desk: open from the clock's start to the timeline's end (dropped below).
    let hands = (opts.gameday && driver.is_some() && journal.is_some()).then(|| {
        Arc::new(fault::manual::Hands::new(
            plan.faults.iter().map(|p| p.fault.name.as_str()),
        ))
    });
    let desk = match &hands {
        Some(h) => Some(
            gameday::open(h.clone(), dir, clock)
                .await
                .map_err(|source| RunError::Write {
                    path: dir.join(gameday::FILE).display().to_string(),
                    source,
                })?,
        ),
        None => None,
    };
    if let (Some(_), Some(opened)) = (&desk, &opts.desk_opened) {
        let _ = opened.set(dir.to_path_buf());
    }
    let load_fut = engine.run(clock, shutdown.clone(), &mut watch, tick);
    // A panic in the load path must not skip the reverts: it is caught here, the run is shut
    // down, the fault timeline reverts everything, and only then is the panic resumed.
    let sd = shutdown.clone();
    let load_fut = async move {
        let r = crate::shutdown::CatchUnwind(Box::pin(load_fut)).await;
        // A panic, or the load ending before its time for any reason (its scheduler died):
        // stop the fault timeline too, so no fault is injected into a run without traffic.
        if !matches!(&r, Ok(res) if !res.interrupted) {
            sd.trigger();
        }
        r
    };
    // A panic in the fault timeline (or a driver) is caught too: the run is shut down and
    // whatever the journal shows applied is reverted from it, as `chaos rollback` would.
    let faults_fut = async {
        let (Some(d), Some(j)) = (driver, &journal) else {
            return None;
        };
        let t = fault::run_timeline(
            &plan.faults,
            d,
            j,
            (clock.epoch(), timeline.total),
            &shutdown,
            hands.as_deref(),
            board.as_deref(),
        );
        let r = crate::shutdown::CatchUnwind(Box::pin(t)).await;
        if r.is_err() {
            shutdown.trigger();
        }
        Some(r)
    };
    let (result, timeline_result) = tokio::join!(load_fut, faults_fut);
    // The feed says "over" only once every fault is: after a panic in the timeline the
    // rollback below is still to come, so the followers are left to their silence limit.
    if let Some(s) = served
        .as_ref()
        .filter(|_| !matches!(timeline_result, Some(Err(_))))
    {
        s.linger().await;
    }
    drop(served);
    // Every fault is over: no more hands (notes typed after this are refused: the file is gone).
    drop(desk);
    let notes = hands.as_ref().map(|h| h.notes()).unwrap_or_default();
    let (outcomes, events) = match timeline_result {
        None => (None, Vec::new()),
        Some(Ok(t)) => (Some(t.outcomes), t.events),
        Some(Err(panic)) => {
            let still: Vec<String> = match &journal {
                None => Vec::new(),
                Some(j) => match fault::rollback(j.path(), &target::driver_for_undo).await {
                    Ok(done) => done
                        .into_iter()
                        .filter(|r| r.result.is_err())
                        .map(|r| r.fault)
                        .collect(),
                    Err(e) => vec![format!("(journal unreadable: {e})")],
                },
            };
            crate::cli::output::err(&panic_notice(&still, dir));
            std::panic::resume_unwind(panic);
        }
    };
    let result = match result {
        Ok(r) => r,
        Err(panic) => {
            let still: Vec<String> = outcomes
                .iter()
                .flatten()
                .filter(|o| o.status == fault::Status::RevertFailed)
                .map(|o| o.name.clone())
                .collect();
            crate::cli::output::err(&panic_notice(&still, dir));
            std::panic::resume_unwind(panic);
        }
    };
    let aborted = watch.fired.take();
    let users = result.users;
    if let Some(e) = users.as_ref().and_then(|u| u.error.clone()) {
        // Every fault is reverted by now (the timeline returned); the run is no run.
        return Err(RunError::Users(e));
    }

    // Stopped by Ctrl-C/SIGTERM (an abort condition also stops the load early, but the run ran
    // its course as the scenario asked: its acknowledged writes are still read back).
    let interrupted = aborted.is_none() && (result.interrupted || shutdown.is_triggered());
    // The data check, once the faults are reverted (run_timeline returns only then).
    let mut durable_writes = result.durable_writes;
    let mut durable_without_id = result.durable_without_id;
    let load_writes = durable_writes.len();
    if let Some(u) = users.as_ref() {
        durable_writes.extend(u.durable_writes.iter().cloned());
        durable_without_id += u.durable_without_id;
    }
    // A shard that is not the conductor has no fault timeline to wait for: before its read-back
    // it waits for the timeline's end, when the conductor reverts what is left (a revert still
    // running then shows in the merge, which compares this start with the conductor's last
    // revert). Ctrl-C meanwhile interrupts the run.
    // With the conductor's feed, it waits for the feed's end instead (its last times too).
    let (interrupted, feed_end) = match &follower {
        Some(f) if !interrupted => tokio::select! {
            over = f.wait_over(clock.at(timeline.total)) => (
                false,
                if over { conductor::FeedEnd::Over } else { conductor::FeedEnd::Lost },
            ),
            () = shutdown.wait() => (true, conductor::FeedEnd::Stopped),
        },
        _ => (interrupted, conductor::FeedEnd::Stopped),
    };
    if let (Some(f), Some(info)) = (&follower, shards.first_mut()) {
        if let Some((rtt, offset)) = f.seen().best {
            info.clock_offset_us = Some(offset);
            info.clock_rtt_us = Some(rtt);
        }
    }
    let interrupted = if !interrupted
        && follower.is_none()
        && !durable_writes.is_empty()
        && opts.shard.is_some_and(|s| !s.is_conductor())
    {
        tokio::select! {
            () = tokio::time::sleep_until(clock.at(timeline.total)) => false,
            () = shutdown.wait() => true,
        }
    } else {
        interrupted
    };
    let verification = if !interrupted && !durable_writes.is_empty() {
        if let Some(info) = shards.first_mut() {
            info.read_back_at_s = Some(clock.elapsed().as_secs_f64());
        }
        // The load's writes with [load.client], the journeys' with [users.client].
        let (load_w, users_w) = durable_writes.split_at(load_writes);
        let users_client = scenario.users.as_ref().map(|u| &u.client);
        let groups = [
            (&scenario.load.client, load_w),
            (users_client.unwrap_or(&scenario.load.client), users_w),
        ];
        Some(crate::verify::read_back_groups(&url, &groups).await)
    } else {
        None
    };
    let faults: Vec<FaultRecord> = match outcomes {
        Some(outcomes) => outcomes
            .into_iter()
            .zip(plan.faults.iter().map(|f| &f.plan))
            .map(|(o, p)| FaultRecord {
                status: match o.status {
                    fault::Status::Reverted => FaultStatus::Reverted,
                    fault::Status::NotReached => FaultStatus::NotReached,
                    fault::Status::InjectFailed => FaultStatus::InjectFailed,
                    fault::Status::Unconfirmed => FaultStatus::Unconfirmed,
                    fault::Status::RevertFailed => FaultStatus::RevertFailed,
                },
                note: match &o.error {
                    Some(e) if o.status == fault::Status::RevertFailed => format!(
                        "{e}; still applied on {}: undo with `chaos rollback {}`",
                        p.targets.join(", "),
                        dir.display()
                    ),
                    Some(e) => e.clone(),
                    None if p.revert.is_empty() => {
                        format!(
                            "on {} (nothing to revert: it stays done)",
                            p.targets.join(", ")
                        )
                    }
                    None => format!("on {}", p.targets.join(", ")),
                },
                name: o.name,
                kind: o.kind,
                injected_at_s: o.injected_at_s,
                reverted_at_s: o.reverted_at_s,
                by_hand: o.by_hand,
            })
            .collect(),
        None if follower.is_some() && plan.skipped == Some(Skipped::Conductor) => {
            let f = follower.as_ref().map(|f| (f.addr.clone(), f.seen()));
            let (addr, seen) = f.unwrap_or_default();
            conductor::records(&scenario, &addr, &seen, feed_end)
        }
        None => scenario
            .faults
            .iter()
            .map(|f| FaultRecord {
                name: f.name.clone(),
                kind: f.kind.name().to_string(),
                status: FaultStatus::Skipped,
                note: match plan.skipped {
                    Some(Skipped::NoDriver) => format!(
                        "not injected: {} has no fault driver (--skip-faults)",
                        connected.shown
                    ),
                    Some(Skipped::Conductor) => format!(
                        "driven by shard {} (the conductor): its record holds the times, `chaos merge` judges on them",
                        shard::CONDUCTOR
                    ),
                    _ => "not injected: --skip-faults".into(),
                },
                injected_at_s: None,
                reverted_at_s: None,
                by_hand: Default::default(),
            })
            .collect(),
    };
    // The journal as written (fsynced records); what rollback would read.
    let journal = journal
        .as_ref()
        .and_then(|j| fault::journal::read(j.path()).ok())
        .unwrap_or_default();
    // The run's raw record, judged by the same function as `chaos report`'s: SLOs and recovery
    // on the faults as they really were applied (from each injection to its revert — a slow
    // inject call moves "during" with it — the scheduled times for a fault that never ran).
    let record = report::record::RunRecord {
        scenario: report::json::scenario_info(&scenario),
        target_url: url,
        time_scale: opts.time_scale,
        started_at: result.started_at,
        wall: result.wall,
        interrupted,
        scheduled: result.scheduled,
        aborted,
        recording: result.recording,
        faults,
        durable_writes,
        durable_without_id,
        verification,
        journal,
        events,
        notes,
        journeys: users.map(|u| report::JourneysRecord {
            counts: u.counts,
            recording: u.recording,
        }),
        shards,
    };
    Ok(report::judge::judge(scenario, record)?)
}

/// Wait for `--start-at` and start the run's clock there; for a shard, what its record says
/// about it (how late it really started). A start already past is refused ([`late_start`]).
async fn start_at(
    at: std::time::SystemTime,
    sh: Option<shard::Shard>,
    shutdown: &Shutdown,
) -> Result<(crate::clock::Clock, Vec<shard::ShardInfo>), RunError> {
    late_start(at)?;
    // Mapped to the monotonic clock once a second before the start, again: a wall clock
    // stepped meanwhile (NTP on a node just started) moves the start with it.
    let early = crate::clock::Clock::starting_at(at);
    let remap = early.epoch().checked_sub(std::time::Duration::from_secs(1));
    if let Some(t) = remap.filter(|t| *t > tokio::time::Instant::now()) {
        tokio::select! {
            () = tokio::time::sleep_until(t) => {}
            () = shutdown.wait() => return Err(RunError::Interrupted),
        }
    }
    let clock = crate::clock::Clock::starting_at(at);
    tokio::select! {
        () = tokio::time::sleep_until(clock.epoch()) => {}
        () = shutdown.wait() => return Err(RunError::Interrupted),
    }
    let late_us = clock.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
    let info = sh.map(|s| shard::ShardInfo {
        index: s.index,
        count: s.count,
        start_at: shard::show_start_at(at),
        late_us,
        conductor: shard::CONDUCTOR,
        read_back_at_s: None,
        clock_offset_us: None,
        clock_rtt_us: None,
    });
    Ok((clock, info.into_iter().collect()))
}

/// What a run says after a caught panic, with the faults reverted as far as possible.
fn panic_notice(still: &[String], dir: &Path) -> String {
    format!(
        "internal error: the run panicked; {}",
        if still.is_empty() {
            "every applied fault was reverted".to_string()
        } else {
            format!(
                "STILL APPLIED: {} — undo with `chaos rollback {}`",
                still.join(", "),
                dir.display()
            )
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_notice_says_what_is_left_and_how_to_undo_it() {
        let dir = Path::new("reports/x");
        assert_eq!(
            panic_notice(&[], dir),
            "internal error: the run panicked; every applied fault was reverted"
        );
        assert_eq!(
            panic_notice(&["zone-a-down".into(), "kill".into()], dir),
            "internal error: the run panicked; STILL APPLIED: zone-a-down, kill — undo with \
             `chaos rollback reports/x`"
        );
    }
}
