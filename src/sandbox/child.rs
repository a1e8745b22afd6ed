//! The sandbox as a child process of the same binary (`chaos sandbox up`), as `chaos run` starts
//! it when no target is named: its own process and runtime, apart from the load generator's.
//!
//! The child is tied to the parent by its stdin (`--exit-on-stdin-eof`): when the parent exits
//! for any reason — even SIGKILL — the pipe closes and the sandbox stops, so no run leaves one
//! behind.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the sandbox child did not come up.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot start the sandbox ({exe}): {source}")]
    Spawn {
        exe: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the sandbox did not start within 20 s")]
    Timeout,
    #[error("the sandbox failed to start (it said: {0:?})")]
    BadStart(String),
}

pub struct SandboxChild {
    child: Child,
    pub lb_url: String,
    pub control_url: String,
}

impl SandboxChild {
    /// Start `exe sandbox up`, wait for its URLs (at most 20 s).
    pub fn start(
        exe: &Path,
        events: &Path,
        time_scale: f64,
        spec: &crate::scenario::SandboxSpec,
    ) -> Result<SandboxChild, ChildError> {
        let mut cmd = Command::new(exe);
        cmd.args(["sandbox", "up", "--exit-on-stdin-eof", "--time-scale"])
            .arg(time_scale.to_string())
            .arg("--config")
            .arg(serde_json::to_string(spec).unwrap_or_else(|_| "{}".into()))
            .arg("--events")
            .arg(events);
        // Its own process group: a Ctrl-C at the terminal reaches the run (which reverts its
        // faults through the sandbox, then stops it), not the sandbox under it.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| ChildError::Spawn {
                exe: exe.display().to_string(),
                source,
            })?;
        let stdout = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            if let Some(out) = stdout {
                let _ = std::io::BufReader::new(out).read_line(&mut line);
            }
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ChildError::Timeout);
            }
        };
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
        match (v["lb_url"].as_str(), v["control_url"].as_str()) {
            (Some(lb), Some(ctl)) => Ok(SandboxChild {
                lb_url: lb.to_string(),
                control_url: ctl.to_string(),
                child,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(ChildError::BadStart(line.trim().to_string()))
            }
        }
    }

    /// Close its stdin (it stops by itself), wait up to 5 s, then kill it.
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
