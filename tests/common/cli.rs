//! Running the `chaos` binary in tests: its output, a fresh directory, a small scenario file.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `chaos <args>`, run to its end, with no `GITHUB_STEP_SUMMARY` inherited.
pub fn chaos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(args)
        .env_remove("GITHUB_STEP_SUMMARY")
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
            r#"name = "verdict-test"
description = "end-to-end test of the verdict"
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
