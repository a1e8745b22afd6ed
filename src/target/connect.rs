//! Connecting to a target: start or reach the system, build its fault driver, and know how to
//! let go of it at the end ([`Connected::close`]). The one place that spawns a sandbox, waits
//! for it to be healthy and stops it; `chaos run` and `chaos plan` both come through here.
//!
//! Never sends load and never injects anything: a connected target is as it was found.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Kind, TargetFile};
use crate::drivers::sandbox::SandboxDriver;
use crate::fault::{Driver, DriverError};
use crate::sandbox::child::SandboxChild;
use crate::scenario::SandboxSpec;

/// What the connection is for.
#[derive(Debug, Clone)]
pub enum Mode {
    /// A run: a sandbox to start is started as a child process of `exe` (default: this
    /// program), appending its events to `events`, its clocks scaled by `time_scale`.
    Run {
        exe: Option<PathBuf>,
        events: PathBuf,
        time_scale: f64,
    },
    /// `chaos plan`: only the faults are resolved. A sandbox to start is started in this
    /// process, throwaway; one already running is only read (`GET /resources`).
    Plan,
}

/// What a run holds on a target until it ends.
pub enum Lifecycle {
    /// Nothing to stop: a URL, or a system a test brought itself.
    Nothing,
    /// The sandbox child this run started: stopped at the end.
    Spawned(SandboxChild),
    /// A throwaway sandbox in this process (`chaos plan`).
    InProcess(crate::sandbox::Sandbox),
    /// A sandbox someone else runs: left running; its events are copied into the run
    /// directory at the end.
    Existing { control_url: String },
}

/// A target, reached: where the load goes, the driver its faults go through (none for a URL),
/// and what to let go of at the end.
pub struct Connected {
    pub base_url: String,
    /// What the user types to confirm a run on a terminal (an aws target: its account id);
    /// `None` where a run needs no confirmation.
    pub confirm: Option<String>,
    pub driver: Option<Box<dyn Driver>>,
    pub lifecycle: Lifecycle,
    /// How messages and reports name it ("the embedded sandbox").
    pub shown: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot find this program to start the sandbox: {0}")]
    Exe(#[source] std::io::Error),
    #[error("cannot start the sandbox: {0}")]
    Start(String),
    #[error(transparent)]
    Child(#[from] crate::sandbox::child::ChildError),
    /// A scenario's `[sandbox]` table and a target file both set the sandbox's settings.
    #[error(
        "both the scenario's [sandbox] table and the target {target} set the sandbox's settings: \
         keep them in the target file (move the scenario's [sandbox] keys there)"
    )]
    SettingsTwice { target: String },
    /// A scenario's `[sandbox]` table for a sandbox already running.
    #[error(
        "the scenario's [sandbox] table cannot apply to the sandbox already running at \
         {control_url} (it keeps the settings it was started with): start that sandbox with them \
         (`chaos sandbox up --target FILE`, the keys in a target file), or name no running sandbox"
    )]
    SettingsIgnored { control_url: String },
    /// What answers at a control URL is not a sandbox.
    #[error("{url}: what answers there is not a chaos sandbox (its /resources has no lb_url)")]
    NotASandbox { url: String },
    /// The aws target's credentials are for another account, or cannot be checked.
    #[cfg(feature = "aws")]
    #[error("{target}: {source}")]
    Aws {
        target: String,
        #[source]
        source: crate::drivers::aws::AwsError,
    },
    /// This build has no aws driver.
    #[error("{target} is an aws target, and this chaos was built without the `aws` feature (cargo build --features aws)")]
    NoAws { target: String },
    #[error("the sandbox started but is not healthy: {0}")]
    NotHealthy(String),
    /// The local target's fault proxy is not running, or not the one the file describes.
    #[error("{target}: {message}")]
    Proxy { target: String, message: String },
    #[error("{flag} {url}: no sandbox answers there ({source})")]
    Unreachable {
        flag: String,
        url: String,
        #[source]
        source: DriverError,
    },
}

impl Connected {
    /// A system the caller brought (tests: their own server and driver).
    pub fn given(base_url: &str, driver: Option<Box<dyn Driver>>) -> Connected {
        Connected {
            base_url: base_url.trim_end_matches('/').to_string(),
            confirm: None,
            driver,
            lifecycle: Lifecycle::Nothing,
            shown: base_url.to_string(),
        }
    }

    /// Let go of the target: copy an existing sandbox's events into `dir`, stop what this
    /// connection started. Never fails (a run's reports do not wait on it).
    pub async fn close(self, dir: Option<&Path>) {
        match self.lifecycle {
            Lifecycle::Nothing => {}
            Lifecycle::Existing { control_url } => {
                // The sandbox's ground truth for this run, from the sandbox itself.
                let Some(dir) = dir else { return };
                if let Ok(ev) = SandboxDriver::new(&control_url)
                    .call("GET", "/events")
                    .await
                {
                    let lines: Vec<String> = ev
                        .as_array()
                        .map(|a| a.iter().map(|e| e.to_string()).collect())
                        .unwrap_or_default();
                    let _ =
                        std::fs::write(dir.join("sandbox-events.jsonl"), lines.join("\n") + "\n");
                }
            }
            Lifecycle::Spawned(child) => {
                let _ = tokio::task::spawn_blocking(move || child.stop()).await;
            }
            Lifecycle::InProcess(sb) => sb.stop(),
        }
    }
}

/// Reach `t` for `mode`, with `settings` for a sandbox this connection starts (the target's,
/// or a scenario's deprecated `[sandbox]`: see [`settings_for`]).
pub async fn connect(
    t: &TargetFile,
    settings: &SandboxSpec,
    mode: &Mode,
) -> Result<Connected, ConnectError> {
    match &t.kind {
        #[cfg(feature = "aws")]
        Kind::Aws(a) => {
            let d = crate::drivers::aws::AwsDriver::connect(a)
                .await
                .map_err(|source| ConnectError::Aws {
                    target: t.source.clone(),
                    source,
                })?;
            Ok(Connected {
                base_url: a.base_url.clone(),
                confirm: Some(a.account.clone()),
                driver: Some(Box::new(d)),
                lifecycle: Lifecycle::Nothing,
                shown: t.shown(),
            })
        }
        #[cfg(not(feature = "aws"))]
        Kind::Aws(_) => Err(ConnectError::NoAws {
            target: t.source.clone(),
        }),
        Kind::Local(l) => {
            let d = crate::drivers::local::LocalDriver::connect(l)
                .await
                .map_err(|message| ConnectError::Proxy {
                    target: t.source.clone(),
                    message,
                })?;
            Ok(Connected {
                base_url: l.base_url.clone(),
                confirm: None,
                driver: Some(Box::new(d)),
                lifecycle: Lifecycle::Nothing,
                shown: t.shown(),
            })
        }
        Kind::Url { base_url } => Ok(Connected {
            confirm: None,
            base_url: base_url.clone(),
            driver: None,
            lifecycle: Lifecycle::Nothing,
            shown: t.shown(),
        }),
        Kind::Sandbox {
            control_url: Some(ctl),
            ..
        } => {
            let d = SandboxDriver::new(ctl);
            let res =
                d.call("GET", "/resources")
                    .await
                    .map_err(|source| ConnectError::Unreachable {
                        flag: if t.origin == super::Origin::SandboxUrl {
                            "--sandbox-url".into()
                        } else {
                            format!("control_url of {}", t.source)
                        },
                        url: ctl.clone(),
                        source,
                    })?;
            let lifecycle = match mode {
                Mode::Run { .. } => Lifecycle::Existing {
                    control_url: ctl.clone(),
                },
                Mode::Plan => Lifecycle::Nothing,
            };
            let Some(lb) = res["lb_url"].as_str().filter(|u| !u.is_empty()) else {
                return Err(ConnectError::NotASandbox { url: ctl.clone() });
            };
            Ok(Connected {
                confirm: None,
                base_url: lb.to_string(),
                driver: Some(Box::new(d)),
                lifecycle,
                shown: t.shown(),
            })
        }
        Kind::Sandbox {
            control_url: None, ..
        } => match mode {
            Mode::Plan => {
                let cfg = crate::sandbox::SandboxConfig::default().with_spec(settings);
                let sb = crate::sandbox::Sandbox::start(cfg, None)
                    .await
                    .map_err(|e| ConnectError::Start(e.to_string()))?;
                Ok(Connected {
                    confirm: None,
                    base_url: sb.lb_url.clone(),
                    driver: Some(Box::new(SandboxDriver::new(&sb.control_url))),
                    lifecycle: Lifecycle::InProcess(sb),
                    shown: t.shown(),
                })
            }
            Mode::Run {
                exe,
                events,
                time_scale,
            } => {
                let exe = match exe {
                    Some(p) => p.clone(),
                    None => std::env::current_exe().map_err(ConnectError::Exe)?,
                };
                let (events, ts, spec) = (events.clone(), *time_scale, settings.clone());
                let child = tokio::task::spawn_blocking(move || {
                    SandboxChild::start(&exe, &events, ts, &spec)
                })
                .await
                .map_err(|e| ConnectError::Start(e.to_string()))??;
                if let Err(e) = wait_healthy(&child.control_url).await {
                    let _ = tokio::task::spawn_blocking(move || child.stop()).await;
                    return Err(ConnectError::NotHealthy(e));
                }
                Ok(Connected {
                    confirm: None,
                    base_url: child.lb_url.clone(),
                    driver: Some(Box::new(SandboxDriver::new(&child.control_url))),
                    lifecycle: Lifecycle::Spawned(child),
                    shown: t.shown(),
                })
            }
        },
    }
}

/// The settings a sandbox started for `t` runs with: the target file's; or, for the default
/// target only, a scenario's `[sandbox]` table (the form before target files, still read).
/// Both at once is refused, and so is a `[sandbox]` table for a sandbox already running (it
/// keeps its own settings): either would silently not apply.
pub fn settings_for(t: &TargetFile, scenario: &SandboxSpec) -> Result<SandboxSpec, ConnectError> {
    let in_scenario = *scenario != SandboxSpec::default();
    let own = match &t.kind {
        Kind::Url { .. } | Kind::Aws(_) | Kind::Local(_) => return Ok(SandboxSpec::default()),
        Kind::Sandbox {
            control_url: Some(u),
            ..
        } if in_scenario => {
            return Err(ConnectError::SettingsIgnored {
                control_url: u.clone(),
            })
        }
        Kind::Sandbox {
            control_url: Some(_),
            ..
        } => return Ok(SandboxSpec::default()),
        Kind::Sandbox { settings, .. } => settings,
    };
    if !in_scenario {
        return Ok((**own).clone());
    }
    if t.origin == super::Origin::Default {
        return Ok(scenario.clone());
    }
    Err(ConnectError::SettingsTwice {
        target: t.source.clone(),
    })
}

/// Wait (at most 10 s) until the sandbox's load balancer holds every app node healthy: the
/// run's baseline starts on a whole stack.
async fn wait_healthy(control_url: &str) -> Result<(), String> {
    let d = SandboxDriver::new(control_url);
    let t = std::time::Instant::now();
    loop {
        let last = match d.call("GET", "/resources").await {
            Ok(v) => {
                let apps: Vec<&serde_json::Value> = v["resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["role"] == "app")
                    .collect();
                let sick: Vec<&str> = apps
                    .iter()
                    .filter(|r| r["lb_healthy"] != true)
                    .filter_map(|r| r["id"].as_str())
                    .collect();
                if !apps.is_empty() && sick.is_empty() {
                    return Ok(());
                }
                format!(
                    "app nodes not healthy in the load balancer: {}",
                    sick.join(", ")
                )
            }
            Err(e) => e.to_string(),
        };
        if t.elapsed() > Duration::from_secs(10) {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
