//! Running the `chaos` binary in tests: its output, a fresh directory, a small scenario file.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// `chaos <args>`, run to its end, with no `GITHUB_STEP_SUMMARY` or `RUST_LOG` inherited.
pub fn chaos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(args)
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// [`chaos`] from async code (a test server runs on the same runtime).
pub async fn chaos_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        chaos(&a)
    })
    .await
    .unwrap()
}

/// `chaos run <scenario> --target-url <url> --out <out> [extra…]`, to its end.
pub async fn run_url(scenario: &str, url: &str, out: &Path, extra: &[&str]) -> Output {
    let mut a: Vec<String> = vec![
        "run".into(),
        scenario.into(),
        "--target-url".into(),
        url.into(),
        "--out".into(),
        out.display().to_string(),
    ];
    a.extend(extra.iter().map(|x| x.to_string()));
    chaos_async(a).await
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A new, empty directory for one test.
pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaos-t-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `chaos report RUN --out AGAIN`: the run's reports written again from its report.json alone;
/// the new summary.md.
pub fn report_again(run: &Path, again: &Path) -> String {
    let o = chaos(&[
        "report",
        run.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    std::fs::read_to_string(again.join("summary.md")).unwrap()
}

pub fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// A scenario file `<dir>/<file>`: `rps` for `secs` of GET /, then `tail` (TOML: `[slo]`,
/// `[[faults]]`…) as given.
pub fn scenario_file(dir: &Path, file: &str, rps: u32, secs: f64, tail: &str) -> String {
    let p = dir.join(file);
    std::fs::write(
        &p,
        format!(
            r#"name = "cli-test"
description = "end-to-end test of the binary"
[load]
stages = [{{ hold = "{rps}/s", for = "{secs}s" }}]
interval = "100ms"
[load.client]
timeout = "1s"
[[load.requests]]
name = "home"
path = "/"
{tail}
"#
        ),
    )
    .unwrap();
    p.display().to_string()
}

/// End-to-end runs on the sandbox drive hundreds of requests per second through a debug build:
/// two at once on a 2-core machine would measure the machine, not the system. They take turns.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// `chaos run <scenario> --time-scale 0.1 --quiet [extra...] --out <out>`, to be finished and
/// started.
pub fn run_cmd(scenario: &str, extra: &[&str], out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chaos"));
    c.args(["run", scenario, "--time-scale", "0.1", "--quiet"])
        .args(extra)
        .arg("--out")
        .arg(out);
    c
}

/// [`run_cmd`] for the shipped az-outage on the embedded sandbox.
pub fn az_outage(out: &Path) -> Command {
    run_cmd("az-outage", &[], out)
}

/// A small scenario: `rps` for `secs`, one GET, the given `whole` SLO list.
pub fn scenario(dir: &Path, rps: u32, secs: f64, slo: &str) -> String {
    scenario_file(dir, "s.toml", rps, secs, &format!("[slo]\nwhole = [{slo}]"))
}

pub fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn count(events: &[serde_json::Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// A plain HTTP/1.0 request on loopback (the control API), without any client library.
pub fn http(method: &str, url: &str) -> serde_json::Value {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let body = buf.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

/// `chaos sandbox up` as a separate process: (its process, its control URL).
pub fn sandbox_up() -> (std::process::Child, String) {
    let (sb, urls) = sandbox_urls();
    (sb, urls["control_url"].as_str().unwrap().to_string())
}

/// `chaos sandbox up` as a separate process: (its process, its URLs: `control_url`, `lb_url`).
pub fn sandbox_urls() -> (std::process::Child, serde_json::Value) {
    sandbox_urls_with(&[])
}

/// [`sandbox_urls`] with more arguments to `chaos sandbox up`.
pub fn sandbox_urls_with(extra: &[&str]) -> (std::process::Child, serde_json::Value) {
    use std::io::BufRead as _;
    let mut sb = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["sandbox", "up", "--exit-on-stdin-eof"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(sb.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (sb, serde_json::from_str(&line).unwrap())
}

/// Wait (at most 20 s) until the journal records an applied and confirmed fault.
pub fn wait_applied(journal: &Path) {
    let t = std::time::Instant::now();
    // Applied and confirmed: the driver has seen the effect (after `applied` it still checks).
    while !std::fs::read_to_string(journal).is_ok_and(|j| j.contains("\"confirmed\"")) {
        assert!(t.elapsed() < Duration::from_secs(20), "fault never applied");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Send `kill -<sig>` to a child.
pub fn signal(child: &std::process::Child, sig: &str) {
    let k = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
}

/// Wait (at most 20 s) for a child to exit by itself; kill it and fail otherwise.
pub fn wait_exit(child: &mut std::process::Child, after: &str) -> std::process::ExitStatus {
    let t = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("chaos did not stop after {after}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
