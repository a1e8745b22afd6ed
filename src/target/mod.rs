//! Targets: where the system under test is and how faults are done on it (DESIGN.md "Target").
//!
//! A target file (`--target FILE|NAME`, `scenarios/targets/*.toml`, the embedded `sandbox` by
//! default) names its `kind` and every setting of that kind. This module owns them end to end:
//! loading and validating a file with a scenario's diagnostics ([`file`]), its JSON Schema
//! ([`schema`]), and connecting to it ([`connect`]): starting or reaching the system and
//! building its fault driver. Dispatch over kinds is one `match` on [`Kind`] in each of those
//! places — the only code that knows how a sandbox is spawned or reached. Nothing here sends
//! load or judges anything; loading a target file never touches the network.
//!
//! Kinds today: `sandbox` (the embedded stack, started by the run, or one already running at
//! `control_url`), `url` (load only, no fault driver) and `aws` (an AWS stack: [`aws`] holds its
//! settings, `crate::drivers::aws` its driver, behind the default-on `aws` cargo feature) and
//! `local` (a stack you run, with the built-in fault proxy between its parts: [`local`] holds
//! its settings, `crate::drivers::proxy` its driver, `chaos proxy up` runs the proxy).

pub mod aws;
pub mod builtin;
pub mod connect;
mod file;
pub mod local;
pub mod schema;

use crate::scenario::{Diagnostic, Diagnostics, SandboxSpec, Zones};

pub use connect::{connect, ConnectError, Connected, Lifecycle, Mode};

/// How a target was named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// No target named: the embedded sandbox with its defaults.
    Default,
    /// A shipped target (`--target sandbox-async`).
    Shipped,
    /// A target file (`--target path.toml`).
    File,
    /// `--target-url`.
    TargetUrl,
    /// `--sandbox-url`.
    SandboxUrl,
}

/// A validated target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFile {
    /// How the target is named in reports: the file's stem, a shipped name, or `url`/`sandbox`
    /// for the command-line shorthands.
    pub name: String,
    /// Where it came from, as messages show it: a path, `builtin:NAME`, or the flag.
    pub source: String,
    /// Where it came from, for decisions (never the display string).
    pub origin: Origin,
    pub description: String,
    pub kind: Kind,
    /// Problems that do not make the file invalid.
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// The embedded sandbox: started by the run with `settings`, or already running at
    /// `control_url` (`chaos sandbox up`), whose settings are its own.
    Sandbox {
        control_url: Option<String>,
        settings: Box<SandboxSpec>,
    },
    /// A service reached by URL alone: load and SLOs, no fault driver.
    Url { base_url: String },
    /// An AWS stack: load to its `base_url`, faults through the aws driver.
    Aws(Box<aws::AwsTarget>),
    /// A stack you run, faults through the fault proxy between its parts.
    Local(Box<local::LocalTarget>),
}

impl TargetFile {
    /// The default target: the embedded sandbox with its default settings.
    pub fn default_sandbox() -> TargetFile {
        TargetFile {
            name: "sandbox".into(),
            source: "default".into(),
            origin: Origin::Default,
            description: "The embedded sandbox, started and stopped by the run".into(),
            kind: Kind::Sandbox {
                control_url: None,
                settings: Box::default(),
            },
            warnings: Vec::new(),
        }
    }

    /// `--target-url URL`: a `url` target.
    pub fn from_url(url: &str) -> TargetFile {
        TargetFile {
            name: "url".into(),
            source: "--target-url".into(),
            origin: Origin::TargetUrl,
            description: String::new(),
            kind: Kind::Url {
                base_url: url.to_string(),
            },
            warnings: Vec::new(),
        }
    }

    /// `--sandbox-url URL`: a sandbox already running.
    pub fn from_sandbox_url(control_url: &str) -> TargetFile {
        TargetFile {
            name: "sandbox".into(),
            source: "--sandbox-url".into(),
            origin: Origin::SandboxUrl,
            description: String::new(),
            kind: Kind::Sandbox {
                control_url: Some(control_url.trim_end_matches('/').to_string()),
                settings: Box::default(),
            },
            warnings: Vec::new(),
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Sandbox { .. } => "sandbox",
            Kind::Url { .. } => "url",
            Kind::Aws(_) => "aws",
            Kind::Local(_) => "local",
        }
    }

    /// Whether faults can run here (a driver exists for the kind).
    pub fn has_driver(&self) -> bool {
        match &self.kind {
            Kind::Sandbox { .. } | Kind::Aws(_) | Kind::Local(_) => true,
            Kind::Url { .. } => false,
        }
    }

    /// The zones a scenario's faults may name here; `None` where no fault runs.
    pub fn zones(&self) -> Option<Zones> {
        match &self.kind {
            Kind::Sandbox {
                control_url: None, ..
            } => Some(Zones::sandbox()),
            Kind::Sandbox {
                control_url: Some(u),
                ..
            } => Some(Zones {
                target: format!("the sandbox at {u}"),
                ..Zones::sandbox()
            }),
            Kind::Aws(a) => Some(Zones {
                target: self.shown(),
                zones: a.zones.keys().cloned().collect(),
            }),
            Kind::Local(l) => Some(Zones {
                target: self.shown(),
                zones: l.zones(),
            }),
            Kind::Url { .. } => None,
        }
    }

    /// How messages name the target: "the embedded sandbox", "http://… (a plain URL)".
    pub fn shown(&self) -> String {
        match &self.kind {
            Kind::Sandbox {
                control_url: None, ..
            } => "the embedded sandbox".into(),
            Kind::Sandbox {
                control_url: Some(u),
                ..
            } => format!("the sandbox at {u}"),
            Kind::Url { base_url } => format!("{base_url} (a plain URL)"),
            Kind::Aws(a) => match &a.endpoint_url {
                None => format!("aws account {} in {}", a.account, a.region),
                Some(e) => format!("aws account {} in {} at {e}", a.account, a.region),
            },
            Kind::Local(l) => match l.proxy_control {
                Some(c) => format!("the local stack at {} (fault proxy at {c})", l.base_url),
                None => format!("the local stack at {}", l.base_url),
            },
        }
    }

    /// Whether connecting for a run writes into the run directory (a sandbox the run starts
    /// appends its events there), so the directory must exist first.
    pub fn writes_into_run_dir(&self) -> bool {
        match &self.kind {
            Kind::Sandbox { control_url, .. } => control_url.is_none(),
            Kind::Url { .. } | Kind::Aws(_) | Kind::Local(_) => false,
        }
    }

    /// The sandbox settings a run starts the sandbox with, if it starts one.
    pub fn sandbox_settings(&self) -> Option<&SandboxSpec> {
        match &self.kind {
            Kind::Sandbox {
                control_url: None,
                settings,
            } => Some(settings),
            _ => None,
        }
    }
}

/// The driver that can revert `undo` (a journal's undo data, written by some driver's inject or
/// `undo_for`): how `chaos rollback` and a run's panic path rebuild a driver with no target at
/// hand. One match over the drivers that write undo data.
pub fn driver_for_undo(undo: &crate::fault::Undo) -> Option<Box<dyn crate::fault::Driver>> {
    match undo["driver"].as_str() {
        Some("sandbox") => crate::drivers::sandbox::SandboxDriver::from_undo(undo)
            .map(|d| Box::new(d) as Box<dyn crate::fault::Driver>),
        #[cfg(feature = "aws")]
        Some("aws") => crate::drivers::aws::AwsDriver::from_undo(undo)
            .map(|d| Box::new(d) as Box<dyn crate::fault::Driver>),
        Some("proxy") => crate::drivers::proxy::ProxyDriver::from_undo(undo)
            .map(|d| Box::new(d) as Box<dyn crate::fault::Driver>),
        Some("process") => crate::drivers::process::ProcessDriver::from_undo(undo)
            .map(|d| Box::new(d) as Box<dyn crate::fault::Driver>),
        Some("local") => crate::drivers::local::LocalDriver::from_undo(undo)
            .map(|d| Box::new(d) as Box<dyn crate::fault::Driver>),
        _ => None,
    }
}

/// Why a target could not be loaded (all bad input: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot read the target file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no such target file `{arg}`{hint}")]
    NoSuchFile { arg: String, hint: String },
    #[error("no shipped target `{arg}`{hint} (shipped: {known}); a target file is named by a path: it has a `/` or ends in .toml or .json")]
    NotFound {
        arg: String,
        hint: String,
        known: String,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Load a target from a path, or by the name of a shipped target (`sandbox-async`), as
/// scenarios are: a path must exist; a bare name is a shipped target first, then a file.
pub fn load(arg: &str) -> Result<TargetFile, TargetError> {
    let path = std::path::Path::new(arg);
    let shipped = if crate::scenario::is_path(arg) {
        None
    } else {
        builtin::get(arg)
    };
    let stem = |p: &std::path::Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| arg.to_string())
    };
    if let Some(text) = shipped {
        let file = format!("scenarios/targets/{arg}.toml");
        let mut t = file::parse(&file, text.as_bytes(), arg).map_err(TargetError::Invalid)?;
        t.source = format!("builtin:{arg}");
        t.origin = Origin::Shipped;
        return Ok(t);
    }
    if path.is_file() {
        let bytes = std::fs::read(path).map_err(|source| TargetError::Io {
            path: arg.to_string(),
            source,
        })?;
        return file::parse(arg, &bytes, &stem(path)).map_err(TargetError::Invalid);
    }
    if path.exists() {
        return Err(TargetError::Io {
            path: arg.to_string(),
            source: std::io::Error::other("it is a directory, not a target file"),
        });
    }
    let names = builtin::names();
    let hint = crate::scenario::not_found_hint(arg, &names, &|n| {
        format!("the shipped target `{n}` (`--target {n}`)")
    });
    if crate::scenario::is_path(arg) {
        Err(TargetError::NoSuchFile {
            arg: arg.to_string(),
            hint,
        })
    } else {
        Err(TargetError::NotFound {
            arg: arg.to_string(),
            hint,
            known: names.join(", "),
        })
    }
}

/// Parse target text (tests, and `chaos check` of a shipped name).
pub fn parse_str(file: &str, text: &str) -> Result<TargetFile, Diagnostics> {
    let stem = std::path::Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    file::parse(file, text.as_bytes(), &stem)
}

/// Whether a file holds a target rather than a scenario (`chaos check` accepts both): no
/// `load` or `name`, and a top-level `kind` — or keys only a target has (a misspelt `kinde`
/// next to `failover_time` still gets a target's diagnostics, not a scenario's).
pub fn looks_like_target(text: &str) -> bool {
    let keys: Vec<String> = match toml::from_str::<toml::Table>(text) {
        Ok(t) => t.keys().cloned().collect(),
        Err(_) => match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
            Ok(m) => m.keys().cloned().collect(),
            // Broken TOML: the keys' names, line by line, are enough of a clue.
            Err(_) => text
                .lines()
                .filter_map(|l| {
                    let k = l.trim_start().trim_start_matches('[');
                    let k = k.split(['=', ' ', ']', '.']).next().unwrap_or("");
                    (!k.is_empty()).then(|| k.to_string())
                })
                .collect(),
        },
    };
    let has = |k: &str| keys.iter().any(|x| x == k);
    if has("load") || has("name") {
        return false;
    }
    let target_only = file::KINDS
        .iter()
        .flat_map(|k| file::keys_of(k))
        .filter(|k| *k != "description")
        .any(has);
    target_only || keys.iter().any(|k| k.starts_with("kind"))
}

#[cfg(test)]
mod tests;
