//! chaos: a chaos and load testing harness.
//!
//! The run, as data flows (see DESIGN.md): `target::load` + `scenario::load` (validated, with
//! file:line:col diagnostics) -> `target::connect` (start or reach the system, build its
//! driver) -> `run::build` (a `RunPlan`: every fault resolved through the driver; `chaos plan`
//! prints it) -> `run` (one `Clock`; the load engine feeds the recorder task through a
//! `SampleSink`, the fault timeline injects, confirms and reverts through the driver, journaled)
//! -> rollback -> `verify` (read back durable writes with each write's own headers) -> `slo`
//! (judge the windows, recovery, lost writes) -> `report` (report.json as typed records,
//! junit.xml, summary.md, report.html) + the verdict's exit code (0 pass or nothing judged,
//! 1 breached, 2 bad input, 3 aborted, 4 a fault not injected, confirmed or reverted, 130
//! interrupted). `main.rs` is thin: everything here is testable without spawning the binary.

pub mod cli;
pub mod clock;
pub mod drivers;
pub mod fault;
pub mod load;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod scenario;
pub mod shutdown;
pub mod slo;
pub mod target;
pub mod verify;
