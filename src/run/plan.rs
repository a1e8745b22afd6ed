//! Building a run (CONVENTIONS 2: raw, validated, built): the validated scenario resolved
//! against the connected target, every fault at once through its driver — the driver sees the
//! whole timeline (two overlapping kill-nodes faults pick different nodes) — into a [`RunPlan`]
//! with each fault's blast radius and every call it would make. `chaos plan` prints it and
//! `chaos run` executes exactly it; neither plans on its own. Building changes nothing on the
//! target (a driver's `plan` only reads).

use std::fmt::Write as _;

use crate::fault::{DriverError, Planned};
use crate::report::plural;
use crate::scenario::Scenario;
use crate::target::Connected;

/// What a run will do to the target.
pub struct RunPlan {
    /// Every fault with its plan, in the scenario's order; empty when faults are skipped.
    pub faults: Vec<Planned>,
    /// Why the scenario's faults are not run, if they are not.
    pub skipped: Option<Skipped>,
    /// The driver the faults go through.
    pub driver: Option<&'static str>,
    /// How the target is named ("the embedded sandbox").
    pub target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// `--skip-faults`.
    Flag,
    /// `--skip-faults` on a target without a fault driver.
    NoDriver,
    /// A shard that is not the conductor: the conductor drives every fault.
    Conductor,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Faults on a target that has no driver, without `--skip-faults`.
    #[error(
        "scenario `{scenario}` injects {count}: {list}; {target} has no fault driver. \
         Pass --skip-faults to run the load alone (the faults are reported as skipped), \
         or run it on a target with a driver (the embedded sandbox is the default)"
    )]
    NoDriver {
        scenario: String,
        count: String,
        list: String,
        target: String,
    },
    /// The driver cannot do a fault here, or could not resolve it.
    #[error("{0}")]
    Plan(#[from] DriverError),
}

/// Resolve `s`'s faults on `c`. With `skip_faults` nothing is planned on any target.
pub async fn build(s: &Scenario, c: &Connected, skip_faults: bool) -> Result<RunPlan, BuildError> {
    let mut plan = RunPlan {
        faults: Vec::new(),
        skipped: None,
        driver: c.driver.as_ref().map(|d| d.name()),
        target: c.shown.clone(),
    };
    if s.faults.is_empty() {
        return Ok(plan);
    }
    let Some(driver) = c.driver.as_ref() else {
        if skip_faults {
            plan.skipped = Some(Skipped::NoDriver);
            return Ok(plan);
        }
        return Err(no_driver(s, &c.shown));
    };
    if skip_faults {
        plan.skipped = Some(Skipped::Flag);
        return Ok(plan);
    }
    // In the scenario's order: a fault the target cannot do stops the build here, before any
    // traffic, never halfway through a run.
    for f in &s.faults {
        let p = driver.plan(f).await?;
        plan.faults.push(Planned {
            fault: f.clone(),
            plan: p,
        });
    }
    Ok(plan)
}

/// The plan of a shard that is not the conductor: no fault is driven here (the conductor,
/// shard 0, drives them all; `chaos merge` takes their times from its record).
pub fn driven_by_conductor(s: &Scenario, c: &Connected) -> RunPlan {
    RunPlan {
        faults: Vec::new(),
        skipped: (!s.faults.is_empty()).then_some(Skipped::Conductor),
        driver: c.driver.as_ref().map(|d| d.name()),
        target: c.shown.clone(),
    }
}

/// The refusal of a scenario with faults on a target without a fault driver (`chaos run` says
/// it before it touches the run directory).
pub fn no_driver(s: &Scenario, target: &str) -> BuildError {
    let list: Vec<String> = s
        .faults
        .iter()
        .map(|f| format!("{} ({})", f.name, f.kind.name()))
        .collect();
    BuildError::NoDriver {
        scenario: s.name.clone(),
        count: plural(list.len(), "fault"),
        list: list.join(", "),
        target: target.to_string(),
    }
}

impl RunPlan {
    /// The blast radius as `chaos plan` prints it: each fault, what it hits, every call.
    pub fn render(&self) -> String {
        let mut o = String::new();
        match (self.skipped, self.faults.is_empty()) {
            (Some(Skipped::Flag), _) => {
                let _ = writeln!(o, "\nfaults skipped (--skip-faults): nothing is injected");
                return o;
            }
            (Some(Skipped::NoDriver), _) => {
                let _ = writeln!(
                    o,
                    "\nfaults skipped (--skip-faults): {} has no fault driver",
                    self.target
                );
                return o;
            }
            (Some(Skipped::Conductor), _) => {
                let _ = writeln!(
                    o,
                    "\nfaults driven by shard 0 (the conductor): nothing is injected from this shard"
                );
                return o;
            }
            (None, true) => return o,
            (None, false) => {}
        }
        let _ = writeln!(
            o,
            "\nfault plan on {} (driver: {})",
            self.target,
            self.driver.unwrap_or("none")
        );
        for Planned { fault: f, plan: p } in &self.faults {
            let _ = writeln!(
                o,
                "  {} ({}) hits {}",
                f.name,
                f.kind.name(),
                p.targets.join(", ")
            );
            for c in &p.inject {
                let _ = writeln!(o, "      inject  {c}");
            }
            for c in &p.revert {
                let _ = writeln!(o, "      revert  {c}");
            }
            if p.revert.is_empty() {
                let _ = writeln!(o, "      revert  (nothing: it stays done)");
            }
        }
        o
    }
}
