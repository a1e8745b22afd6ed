//! A `local` target's processes end to end: `chaos run` freezes a real HTTP server process (a
//! `chaos sandbox up` child, named by a pidfile the test writes), the load sees it stall and
//! recover, and the control-plane events show the process frozen and running again; killed
//! with SIGKILL mid-fault and never rolled back, the process is thawed by the fault's lease
//! guardian once the lease runs out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{chaos, lines, report, scenario_file, text, tmpdir, wait_applied};

/// The state letter of `pid` (`T`: stopped).
fn state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..].trim_start().chars().next()
}

/// A local target in `dir`: the load to `base_url`, one app node whose pidfile names `pid`.
fn target(dir: &Path, base_url: &str, pid: u32, lease: &str) -> String {
    let pidfile = dir.join("app.pid");
    std::fs::write(&pidfile, format!("{pid}\n")).unwrap();
    let file = dir.join("local.toml");
    std::fs::write(
        &file,
        format!(
            "kind = \"local\"\nbase_url = \"{base_url}\"\nlease = \"{lease}\"\nstate_dir = \"{}\"\n\
             [processes.app]\npidfiles = [\"{}\"]\nrole = \"app\"\nzone = \"a\"\n",
            dir.join("state").display(),
            pidfile.display()
        ),
    )
    .unwrap();
    file.display().to_string()
}

fn freeze(dir: &Path, at: &str, dur: &str, secs: f64) -> String {
    scenario_file(
        dir,
        "freeze.toml",
        20,
        secs,
        &format!(
            "[[faults]]\nname = \"pause\"\nkind = \"freeze\"\nrole = \"app\"\nat = \"{at}\"\nfor = \"{dur}\"\n\
             [slo]\nwhole = [\"p99 < 5s\"]"
        ),
    )
}

#[test]
fn a_run_freezes_a_real_server_process_and_the_load_sees_it_stall_and_recover() {
    let (mut sb, urls) = common::cli::sandbox_urls();
    let dir = tmpdir("process-run");
    let t = target(&dir, urls["lb_url"].as_str().unwrap(), sb.id(), "2s");
    let sc = freeze(&dir, "2s", "3s", 8.0);
    let o = chaos(&["plan", &sc, "--target", &t]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("node app (SIGSTOP; SIGCONT on revert)"),
        "{out}"
    );
    let run_dir = dir.join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["run", &sc, "--target", &t, "--quiet", "--out"])
        .arg(&run_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let st = state(sb.id());
    let _ = sb.kill();
    let _ = sb.wait();
    assert!(matches!(st, Some(c) if c != 'T'), "left frozen: {st:?}");
    // The verdict may pass or fail (p99 over the whole run); the run itself finished.
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        text(&o.stderr)
    );
    let steps: Vec<String> = lines(&run_dir.join("journal.jsonl"))
        .iter()
        .map(|r| r["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(steps, ["intent", "applied", "confirmed", "reverted"]);
    let r = report(&run_dir);
    let ev: Vec<String> = r["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}: {} -> {}", e["what"], e["from"], e["to"]))
        .collect();
    assert!(
        ev.contains(&"\"process app\": \"running\" -> \"frozen\"".to_string()),
        "{ev:?}"
    );
    assert!(
        ev.contains(&"\"process app\": \"frozen\" -> \"running\"".to_string()),
        "{ev:?}"
    );
    // Requests sent while it was frozen timed out (the client's 1 s) or waited; after the
    // thaw the service recovered.
    let rec = &r["recovery"][0];
    assert!(rec["failed_requests"].as_u64().unwrap() > 0, "{rec}");
    assert!(
        rec["from_inject_s"].as_f64().is_some(),
        "never recovered: {rec}"
    );
}

#[test]
fn a_run_killed_mid_freeze_is_thawed_by_the_lease_guardian() {
    let (mut sb, urls) = common::cli::sandbox_urls();
    let dir = tmpdir("process-kill");
    let t = target(&dir, urls["lb_url"].as_str().unwrap(), sb.id(), "2s");
    let sc = freeze(&dir, "1s", "60s", 90.0);
    let run_dir = dir.join("run");
    let mut run = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["run", &sc, "--target", &t, "--quiet", "--out"])
        .arg(&run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_applied(&run_dir.join("journal.jsonl"));
    assert_eq!(state(sb.id()), Some('T'), "frozen while the run holds it");
    run.kill().unwrap();
    let _ = run.wait();
    let killed = Instant::now();
    // Nobody runs `chaos rollback`: the 2 s lease (with the guardian's one-second grain).
    while state(sb.id()) == Some('T') {
        if killed.elapsed() > Duration::from_secs(8) {
            let _ = Command::new("kill")
                .args(["-CONT", &sb.id().to_string()])
                .status();
            let _ = sb.kill();
            panic!(
                "still frozen {:?} after the run was killed",
                killed.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The guardian removes its lease once the heal has finished (just after the SIGCONT):
    // nothing of the lease is left.
    let left = || -> Vec<String> {
        std::fs::read_dir(dir.join("state"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".lease") || n.ends_with(".expired") || n.ends_with(".failed"))
            .collect()
    };
    let t = Instant::now();
    while !left().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", left());
        std::thread::sleep(Duration::from_millis(50));
    }
    // A rollback afterwards thaws nothing more and does not fail.
    let o = chaos(&["rollback", run_dir.to_str().unwrap()]);
    let _ = sb.kill();
    let _ = sb.wait();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}
