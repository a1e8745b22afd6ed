//! The process driver on real processes (`sleep`, each named by a pidfile the test writes):
//! kill and restart, freeze and thaw, the primary found by `primary_if`, command pairs with
//! their timeout, a lease that runs out healing a frozen process with no revert, and decoy
//! processes — outside the target file, or behind a stale pidfile — that are never signalled.
//! Every process a test starts ends by itself within a minute (`sleep 60`) and is killed by
//! pid at the end; each test's files are in a directory of its own, removed at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use chaos::drivers::local::LocalDriver;
use chaos::fault::{Driver, DriverError, FaultPlan};
use chaos::scenario::{Count, Fault, FaultKind, KillMode, Role};
use chaos::target::local::LocalTarget;
use chaos::target::Kind;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "chaos-process-{tag}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // Every process a pidfile here names is killed (by pid), then the files go.
        for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "pid") {
                if let Ok(pid) = std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .trim()
                    .parse::<i32>()
                {
                    let _ = std::process::Command::new("kill")
                        .args(["-CONT", &pid.to_string()])
                        .status();
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shell command that starts a node: a `sleep 60` in the background, its pid in `pidfile`.
fn start_cmd(pidfile: &Path) -> String {
    format!("sleep 60 >/dev/null 2>&1 & echo $! > {}", pidfile.display())
}

/// Start a node now (as its start command would) and return its pid.
fn start(pidfile: &Path) -> i32 {
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(start_cmd(pidfile))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    pid_of(pidfile)
}

fn pid_of(pidfile: &Path) -> i32 {
    std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The state letter of `pid` (`S` sleeping, `T` stopped), or `None` once it is gone (or a
/// zombie: killed, not yet reaped by init).
fn state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let c = s[s.rfind(')')? + 1..].trim_start().chars().next()?;
    (c != 'Z').then_some(c)
}

/// Whether `pid` is alive and not stopped.
fn running(pid: i32) -> bool {
    matches!(state(pid), Some(c) if c != 'T')
}

/// Wait (bounded) until `f` holds.
async fn until(what: &str, limit: Duration, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn target(dir: &Dir, body: &str) -> LocalTarget {
    target_leased(dir, "1s", body)
}

/// [`target`] with another lease: long enough for a test to act on the lease's files before
/// the guardian could find it run out, on a busy machine.
fn target_leased(dir: &Dir, lease: &str, body: &str) -> LocalTarget {
    let text = format!(
        "kind = \"local\"\nbase_url = \"http://127.0.0.1:9\"\nlease = \"{lease}\"\nstate_dir = \"{}\"\n{body}",
        dir.path("state").display()
    );
    let t = chaos::target::parse_str("t.toml", &text).unwrap_or_else(|d| panic!("{d:?}"));
    match t.kind {
        Kind::Local(l) => *l,
        _ => panic!("not local"),
    }
}

/// The one file in the target's state directory with extension `ext` (`lease`, `pids`).
fn state_file(dir: &Dir, ext: &str) -> PathBuf {
    std::fs::read_dir(dir.path("state"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == ext))
        .unwrap_or_else(|| panic!("no .{ext} file in the state directory"))
}

/// Freeze the one app node of `d`'s target, confirmed: its plan and undo data.
async fn freeze_app(d: &LocalDriver) -> (FaultPlan, chaos::fault::Undo) {
    let p = d
        .plan(&fault(FaultKind::Freeze {
            role: Role::App,
            count: Count::Nodes(1),
            zone: None,
        }))
        .await
        .unwrap();
    let undo = d.inject(&p).await.unwrap();
    confirmed(d, &p, &undo).await;
    (p, undo)
}

fn node(dir: &Dir, name: &str, role: &str, zone: &str) -> String {
    let pf = dir.path(&format!("{name}.pid"));
    format!(
        "[processes.{name}]\npidfiles = [\"{}\"]\nrole = \"{role}\"\nzone = \"{zone}\"\nstart = \"{}\"\nstart_timeout = \"5s\"\n",
        pf.display(),
        start_cmd(&pf)
    )
}

fn fault(kind: FaultKind) -> Fault {
    Fault {
        name: "f".into(),
        kind,
        at: Duration::ZERO,
        duration: Some(Duration::from_secs(10)),
    }
}

async fn driver(l: &LocalTarget) -> LocalDriver {
    LocalDriver::connect(l).await.unwrap()
}

async fn confirmed(d: &LocalDriver, p: &FaultPlan, undo: &chaos::fault::Undo) {
    let t = Instant::now();
    loop {
        match d.confirm(p, undo).await {
            Ok(()) => return,
            Err(e) if t.elapsed() < Duration::from_secs(5) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("not confirmed: {e}"),
        }
    }
}

#[tokio::test]
async fn kill_nodes_kills_only_the_picked_node_and_the_revert_starts_it_again() {
    let dir = Dir::new("kill");
    let l = target(
        &dir,
        &format!(
            "{}{}",
            node(&dir, "app1", "app", "a"),
            node(&dir, "app2", "app", "b")
        ),
    );
    let app1 = start(&dir.path("app1.pid"));
    let app2 = start(&dir.path("app2.pid"));
    // A decoy: the same program, started the same way, named by no pidfile of the target.
    let decoy = start(&dir.path("decoy.pid"));
    let d = driver(&l).await;
    let f = fault(FaultKind::KillNodes {
        role: Role::App,
        count: Count::Nodes(1),
        zone: Some("b".into()),
        mode: KillMode::Kill,
        restart: true,
    });
    let p = d.plan(&f).await.unwrap();
    assert_eq!(p.targets.len(), 1, "{:?}", p.targets);
    assert!(p.targets[0].contains("app2"), "{:?}", p.targets);
    let undo = d.inject(&p).await.unwrap();
    confirmed(&d, &p, &undo).await;
    assert_eq!(state(app2), None, "the picked node is killed");
    assert!(state(app1).is_some(), "the other zone's node is untouched");
    assert!(state(decoy).is_some(), "the decoy is never signalled");
    d.revert(&undo).await.unwrap();
    let again = pid_of(&dir.path("app2.pid"));
    assert_ne!(again, app2, "the start command ran");
    assert!(state(again).is_some(), "the node runs again");
    assert!(state(decoy).is_some() && state(app1).is_some());
    // Nothing of the lease is left, and a second revert starts nothing more.
    let left: Vec<_> = std::fs::read_dir(dir.path("state"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.path()
                .extension()
                .is_some_and(|x| x == "lease" || x == "reverting")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A second revert finds nothing left to do and starts nothing more.
    assert!(matches!(
        d.revert(&undo).await,
        Err(DriverError::AlreadyReverted)
    ));
    assert_eq!(pid_of(&dir.path("app2.pid")), again);
}

#[tokio::test]
async fn freeze_stops_every_process_of_the_role_and_the_revert_continues_them() {
    let dir = Dir::new("freeze");
    let l = target(
        &dir,
        &format!(
            "{}{}",
            node(&dir, "app1", "app", "a"),
            node(&dir, "app2", "app", "b")
        ),
    );
    let pids = [start(&dir.path("app1.pid")), start(&dir.path("app2.pid"))];
    let decoy = start(&dir.path("decoy.pid"));
    let d = driver(&l).await;
    let p = d
        .plan(&fault(FaultKind::Freeze {
            role: Role::App,
            count: Count::Percent(100.0),
            zone: None,
        }))
        .await
        .unwrap();
    let undo = d.inject(&p).await.unwrap();
    confirmed(&d, &p, &undo).await;
    for pid in pids {
        assert_eq!(state(pid), Some('T'), "pid {pid} is stopped");
    }
    assert!(running(decoy), "the decoy keeps running");
    d.revert(&undo).await.unwrap();
    for pid in pids {
        until("thawed", Duration::from_secs(5), || running(pid)).await;
    }
}

#[tokio::test]
async fn a_lease_that_runs_out_thaws_a_frozen_node_with_no_revert() {
    let dir = Dir::new("lease");
    let l = target(&dir, &node(&dir, "app1", "app", "a"));
    let pid = start(&dir.path("app1.pid"));
    {
        let d = driver(&l).await;
        let p = d
            .plan(&fault(FaultKind::Freeze {
                role: Role::App,
                count: Count::Nodes(1),
                zone: None,
            }))
            .await
            .unwrap();
        let undo = d.inject(&p).await.unwrap();
        confirmed(&d, &p, &undo).await;
        assert_eq!(state(pid), Some('T'));
        // The run "dies" here: the driver is dropped, nobody renews or reverts.
    }
    // The lease is 1 s (the guardian's clock has a one-second grain): healed within a few.
    until("thawed by the guardian", Duration::from_secs(8), || {
        running(pid)
    })
    .await;
    // The guardian removes the lease once its heal has finished (just after the SIGCONT).
    let lease_left = || {
        std::fs::read_dir(dir.path("state"))
            .unwrap()
            .flatten()
            .any(|e| {
                e.path()
                    .extension()
                    .is_some_and(|x| x == "lease" || x == "expired" || x == "failed")
            })
    };
    until(
        "the guardian removes the lease",
        Duration::from_secs(5),
        || !lease_left(),
    )
    .await;
}

/// The guardian continues a pid only while it is the process the freeze stopped: a pid that a
/// stranger has taken since (here: a stopped process listed with another start time, as a
/// reused pid would be) gets no signal, while the frozen node is thawed.
#[tokio::test]
async fn a_guardian_never_continues_a_pid_another_process_has_taken() {
    let dir = Dir::new("reused");
    let l = target_leased(&dir, "4s", &node(&dir, "app1", "app", "a"));
    let pid = start(&dir.path("app1.pid"));
    let stranger = start(&dir.path("stranger.pid"));
    {
        let d = driver(&l).await;
        freeze_app(&d).await;
        assert_eq!(state(pid), Some('T'));
        // The stranger, stopped by someone else, under a pid the lease lists with the start
        // time of the process that had it before.
        let pids = state_file(&dir, "pids");
        let listed = std::fs::read_to_string(&pids).unwrap();
        assert!(listed.starts_with(&format!("{pid} ")), "{listed:?}");
        std::fs::write(&pids, format!("{listed}{stranger} 1\n")).unwrap();
        assert!(std::process::Command::new("kill")
            .args(["-STOP", &stranger.to_string()])
            .status()
            .unwrap()
            .success());
        // The run "dies" here: nobody renews or reverts.
    }
    until("thawed by the guardian", Duration::from_secs(8), || {
        running(pid)
    })
    .await;
    // The heal has finished: it removes the pids file last.
    until("the heal ends", Duration::from_secs(5), || {
        !std::fs::read_dir(dir.path("state"))
            .unwrap()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "pids"))
    })
    .await;
    assert_eq!(state(stranger), Some('T'), "the stranger got no SIGCONT");
    for p in [pid, stranger] {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &p.to_string()])
            .status();
    }
}

/// A run killed in the middle of its revert (it had taken the lease back, then died before
/// healing) leaves nothing applied: the guardian watches the reverting process `.owner` names
/// and heals in its place once that process is gone.
#[tokio::test]
async fn a_revert_that_dies_half_way_is_finished_by_the_guardian() {
    let dir = Dir::new("half-revert");
    let l = target_leased(&dir, "4s", &node(&dir, "app1", "app", "a"));
    let pid = start(&dir.path("app1.pid"));
    let d = driver(&l).await;
    let (_, undo) = freeze_app(&d).await;
    assert_eq!(state(pid), Some('T'));
    // What a revert does first, by a process that then dies: it names itself the owner and
    // takes the lease (renamed to `.reverting`), and never gets to the SIGCONT.
    let lease = state_file(&dir, "lease");
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let with = |ext: &str| PathBuf::from(format!("{}{ext}", lease.display()));
    std::fs::write(with(".owner"), format!("{dead_pid} 1\n")).unwrap();
    std::fs::rename(&lease, with(".reverting")).unwrap();
    until("thawed by the guardian", Duration::from_secs(8), || {
        running(pid)
    })
    .await;
    until("the guardian cleans up", Duration::from_secs(5), || {
        !with(".reverting").exists() && !with(".expired").exists() && !with(".owner").exists()
    })
    .await;
    // A later revert (`chaos rollback`) finds nothing left to do, and leaves nothing behind.
    assert!(matches!(
        d.revert(&undo).await,
        Err(DriverError::AlreadyReverted)
    ));
    assert!(!with(".owner").exists());
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// The guardian that takes over a dead revert of killed nodes starts only the nodes that
/// revert had not started yet (its notes): a node is never started twice.
#[tokio::test]
async fn a_guardian_taking_over_a_revert_starts_only_the_nodes_not_started_yet() {
    let dir = Dir::new("half-start");
    let l = target_leased(
        &dir,
        "4s",
        &format!(
            "{}{}",
            node(&dir, "app1", "app", "a"),
            node(&dir, "app2", "app", "b")
        ),
    );
    let app1 = start(&dir.path("app1.pid"));
    let app2 = start(&dir.path("app2.pid"));
    let d = driver(&l).await;
    let p = d
        .plan(&fault(FaultKind::KillNodes {
            role: Role::App,
            count: Count::Nodes(2),
            zone: None,
            mode: KillMode::Kill,
            restart: true,
        }))
        .await
        .unwrap();
    let undo = d.inject(&p).await.unwrap();
    confirmed(&d, &p, &undo).await;
    assert_eq!((state(app1), state(app2)), (None, None));
    // A revert that noted app1 as started (it did not, here: so a start would show) and died.
    let lease = state_file(&dir, "lease");
    let with = |ext: &str| PathBuf::from(format!("{}{ext}", lease.display()));
    std::fs::write(with(".owner"), "999999999 1\n").unwrap();
    std::fs::rename(&lease, with(".reverting")).unwrap();
    std::fs::write(with(".reverting"), "app1\n").unwrap();
    until(
        "app2 started by the guardian",
        Duration::from_secs(8),
        || pid_of(&dir.path("app2.pid")) != app2,
    )
    .await;
    until("the guardian's heal ends", Duration::from_secs(5), || {
        !with(".expired").exists()
    })
    .await;
    assert_eq!(
        pid_of(&dir.path("app1.pid")),
        app1,
        "app1, noted as started, is not started again"
    );
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid_of(&dir.path("app2.pid")).to_string()])
        .status();
}

#[tokio::test]
async fn renewing_keeps_a_fault_past_its_lease() {
    let dir = Dir::new("renew");
    let l = target(&dir, &node(&dir, "app1", "app", "a"));
    let pid = start(&dir.path("app1.pid"));
    let d = driver(&l).await;
    let p = d
        .plan(&fault(FaultKind::Freeze {
            role: Role::App,
            count: Count::Nodes(1),
            zone: None,
        }))
        .await
        .unwrap();
    let undo = d.inject(&p).await.unwrap();
    // Three leases' worth, renewed every third of one.
    for _ in 0..9 {
        tokio::time::sleep(Duration::from_millis(333)).await;
        d.renew(&undo).await.unwrap();
        assert_eq!(state(pid), Some('T'), "still frozen while renewed");
    }
    d.revert(&undo).await.unwrap();
    until("thawed", Duration::from_secs(5), || running(pid)).await;
    // Renewing what was reverted is an error: the lease is gone.
    assert!(d.renew(&undo).await.is_err());
}

#[tokio::test]
async fn a_stale_pidfile_naming_another_process_is_refused_and_nothing_is_signalled() {
    let dir = Dir::new("stale");
    let l = target(&dir, &node(&dir, "app1", "app", "a"));
    let decoy = start(&dir.path("decoy.pid"));
    // app1's pidfile names the decoy's pid, written an hour before the decoy started: the pid
    // was reused, it is not the process the file was written by.
    let pf = dir.path("app1.pid");
    std::fs::write(&pf, format!("{decoy}\n")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&pf)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let d = driver(&l).await;
    let p = d
        .plan(&fault(FaultKind::KillNodes {
            role: Role::App,
            count: Count::Nodes(1),
            zone: None,
            mode: KillMode::Kill,
            restart: true,
        }))
        .await
        .unwrap();
    let e = d.inject(&p).await.unwrap_err().to_string();
    assert!(e.contains("stale pidfile"), "{e}");
    assert!(running(decoy), "the decoy is never signalled");
    // Rolling back from the plan alone finds no lease (the inject failed before it did
    // anything): nothing to undo, nothing started, the decoy still left alone.
    std::fs::remove_file(&pf).unwrap();
    assert!(matches!(
        d.revert(&d.undo_for(&p)).await,
        Err(DriverError::AlreadyReverted)
    ));
    assert!(!pf.exists(), "a node the fault never killed is not started");
    assert!(running(decoy));
}

#[tokio::test]
async fn db_failover_kills_the_node_that_says_it_is_primary() {
    let dir = Dir::new("primary");
    let marker = dir.path("pg2-is-primary");
    std::fs::write(&marker, "").unwrap();
    let mut body = String::new();
    for n in ["pg1", "pg2"] {
        body.push_str(&node(&dir, n, "db", "a"));
        body.push_str(&format!(
            "primary_if = \"test -e {}\"\n",
            dir.path(&format!("{n}-is-primary")).display()
        ));
    }
    let l = target(&dir, &body);
    let pg1 = start(&dir.path("pg1.pid"));
    let pg2 = start(&dir.path("pg2.pid"));
    let d = driver(&l).await;
    let p = d.plan(&fault(FaultKind::DbFailover {})).await.unwrap();
    let undo = d.inject(&p).await.unwrap();
    confirmed(&d, &p, &undo).await;
    assert_eq!(state(pg2), None, "the primary is killed");
    assert!(state(pg1).is_some(), "the replica is not");
    d.revert(&undo).await.unwrap();
    assert!(
        state(pid_of(&dir.path("pg2.pid"))).is_some(),
        "the old primary is started again"
    );
    // With no node saying it is primary, nothing is killed.
    std::fs::remove_file(&marker).unwrap();
    let e = d.inject(&p).await.unwrap_err().to_string();
    assert!(e.contains("no db node says it is the primary"), "{e}");
    assert!(state(pg1).is_some());
}

#[tokio::test]
async fn a_command_pair_runs_its_inject_and_revert_and_a_command_past_its_timeout_is_killed() {
    let dir = Dir::new("command");
    let marker = dir.path("applied");
    let slow_pid = dir.path("slow.pid");
    let l = target(
        &dir,
        &format!(
            "[commands.mark]\ninject = \"echo injecting; touch {m}\"\nrevert = \"rm {m}\"\ntimeout = \"5s\"\n\
             [commands.slow]\ninject = \"sleep 30 & echo $! > {s}; wait\"\ntimeout = \"300ms\"\n",
            m = marker.display(),
            s = slow_pid.display()
        ),
    );
    let d = driver(&l).await;
    let f = |c: &str| Fault {
        name: c.into(),
        ..fault(FaultKind::Command { command: c.into() })
    };
    let p = d.plan(&f("mark")).await.unwrap();
    let undo = d.inject(&p).await.unwrap();
    assert!(marker.exists());
    assert_eq!(
        undo["output"], "injecting",
        "the output goes into the journal's undo data"
    );
    d.revert(&undo).await.unwrap();
    assert!(!marker.exists(), "the revert command ran");
    // Reverted already: nothing runs twice.
    assert!(matches!(
        d.revert(&undo).await,
        Err(DriverError::AlreadyReverted)
    ));

    let p = d.plan(&f("slow")).await.unwrap();
    let e = d.inject(&p).await.unwrap_err().to_string();
    assert!(e.contains("did not finish within"), "{e}");
    let pid = pid_of(&slow_pid);
    until(
        "the timed-out command is killed",
        Duration::from_secs(5),
        || state(pid).is_none(),
    )
    .await;

    let e = d.plan(&f("nope")).await.unwrap_err().to_string();
    assert!(
        e.contains("no command `nope`") && e.contains("mark, slow"),
        "{e}"
    );
}

/// A command whose future is dropped mid-run (a panic unwinding the run, a runtime shut down)
/// takes its whole process group with it, not only the `sh` that runs it.
#[tokio::test]
async fn a_cancelled_command_is_killed_with_its_process_group() {
    let dir = Dir::new("cancel");
    let child_pid = dir.path("child.pid");
    let l = target(
        &dir,
        &format!(
            "[commands.long]\ninject = \"sleep 30 & echo $! > {s}; wait\"\ntimeout = \"60s\"\n",
            s = child_pid.display()
        ),
    );
    let d = driver(&l).await;
    let f = Fault {
        name: "long".into(),
        ..fault(FaultKind::Command {
            command: "long".into(),
        })
    };
    let p = d.plan(&f).await.unwrap();
    // A boxed future: dropping it drops the inject itself.
    let mut inject = d.inject(&p);
    // Until the command's child is up, then the inject is dropped unfinished.
    let t = Instant::now();
    while !child_pid.exists()
        || std::fs::read_to_string(&child_pid)
            .unwrap()
            .trim()
            .is_empty()
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the command never started"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), &mut inject).await;
    }
    let pid = pid_of(&child_pid);
    assert!(state(pid).is_some());
    drop(inject);
    until(
        "the cancelled command's child is killed",
        Duration::from_secs(5),
        || state(pid).is_none(),
    )
    .await;
}

#[tokio::test]
async fn faults_the_target_cannot_do_are_refused_at_plan_time() {
    let dir = Dir::new("refuse");
    let l = target(&dir, &node(&dir, "app1", "app", "a"));
    let d = driver(&l).await;
    let plan = |k| {
        let d = &d;
        async move { d.plan(&fault(k)).await.unwrap_err().to_string() }
    };
    let e = plan(FaultKind::KillNodes {
        role: Role::App,
        count: Count::Nodes(2),
        zone: None,
        mode: KillMode::Kill,
        restart: true,
    })
    .await;
    assert!(
        e.contains("2 nodes of role `app`") && e.contains("declares 1"),
        "{e}"
    );
    let e = plan(FaultKind::KillNodes {
        role: Role::Db,
        count: Count::Nodes(1),
        zone: None,
        mode: KillMode::Kill,
        restart: true,
    })
    .await;
    assert!(e.contains("no process of role `db`"), "{e}");
    let e = plan(FaultKind::DbFailover {}).await;
    assert!(e.contains("primary_if"), "{e}");
    let e = plan(FaultKind::CachePartition {}).await;
    assert!(e.contains("needs proxies"), "{e}");
    // An outage of a zone with nothing in it changes nothing.
    let e = plan(FaultKind::AzOutage {
        zone: "b".into(),
        parts: Default::default(),
    })
    .await;
    assert!(e.contains("would change nothing"), "{e}");
}

#[tokio::test]
async fn a_heal_that_fails_in_the_guardian_is_taken_up_by_a_later_revert() {
    let dir = Dir::new("failed-heal");
    let marker = dir.path("applied");
    let ok = dir.path("revert-may-run");
    let l = target(
        &dir,
        &format!(
            "[commands.mark]\ninject = \"touch {m}\"\nrevert = \"test -e {ok} && rm {m}\"\ntimeout = \"5s\"\n",
            m = marker.display(),
            ok = ok.display()
        ),
    );
    let f = Fault {
        name: "mark".into(),
        ..fault(FaultKind::Command {
            command: "mark".into(),
        })
    };
    let undo = {
        let d = driver(&l).await;
        let p = d.plan(&f).await.unwrap();
        d.inject(&p).await.unwrap()
        // The run dies: no renewal, no revert.
    };
    // The lease runs out; the guardian's heal (the revert command) fails: it is kept as failed.
    let failed = || {
        std::fs::read_dir(dir.path("state"))
            .unwrap()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "failed"))
    };
    until("the guardian's heal fails", Duration::from_secs(8), failed).await;
    assert!(marker.exists());
    // A rollback later (the revert command can run now) reverts it.
    std::fs::write(&ok, "").unwrap();
    let d = driver(&l).await;
    d.revert(&undo).await.unwrap();
    assert!(!marker.exists(), "the later revert ran the revert command");
    assert!(!failed());
}

/// The pids whose parent is `pid`.
fn children(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|c| {
            std::fs::read_to_string(format!("/proc/{c}/stat")).is_ok_and(|s| {
                s.rfind(')').is_some_and(|i| {
                    s[i + 1..].split_whitespace().nth(1) == Some(pid.to_string().as_str())
                })
            })
        })
        .collect()
}

/// A frozen node is frozen whole, as a VM would be: the process its pidfile names and every
/// descendant (a postmaster's backends), stopped; a process beside it is not. When the run
/// dies, the lease's guardian continues them all.
#[tokio::test]
async fn freeze_stops_a_nodes_descendants_too_and_the_guardian_continues_them() {
    let dir = Dir::new("tree");
    let pf = dir.path("db1.pid");
    let parent_cmd = format!(
        "sh -c 'sleep 60 & (sleep 60 & wait) & wait' >/dev/null 2>&1 & echo $! > {}",
        pf.display()
    );
    let l = target(
        &dir,
        &format!(
            "[processes.db1]\npidfiles = [\"{}\"]\nrole = \"db\"\nzone = \"a\"\n",
            pf.display()
        ),
    );
    assert!(std::process::Command::new("sh")
        .arg("-c")
        .arg(&parent_cmd)
        .status()
        .unwrap()
        .success());
    let root = pid_of(&pf);
    // Its tree: two children, one of them with a child of its own.
    let tree = || {
        let mut all = vec![root];
        let mut i = 0;
        while i < all.len() {
            all.extend(children(all[i]));
            i += 1;
        }
        all
    };
    until("the node's tree is up", Duration::from_secs(5), || {
        tree().len() >= 4
    })
    .await;
    let pids = tree();
    let decoy = start(&dir.path("decoy.pid"));
    {
        let d = driver(&l).await;
        let p = d
            .plan(&fault(FaultKind::Freeze {
                role: Role::Db,
                count: Count::Nodes(1),
                zone: None,
            }))
            .await
            .unwrap();
        let undo = d.inject(&p).await.unwrap();
        confirmed(&d, &p, &undo).await;
        for pid in &pids {
            assert_eq!(state(*pid), Some('T'), "pid {pid} of {pids:?} is stopped");
        }
        assert!(running(decoy), "the decoy keeps running");
        // The run "dies" here: nobody renews or reverts.
    }
    for pid in &pids {
        until("thawed by the guardian", Duration::from_secs(8), || {
            running(*pid)
        })
        .await;
    }
    for pid in pids.iter().chain([&decoy]) {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
}
