//! chaos: a chaos and load testing harness.
//!
//! The run, as data flows (see DESIGN.md): scenario::load -> plan -> run (load engine +
//! recorder, fault scheduler) -> rollback -> verify -> slo::evaluate -> report + exit code.
//! `main.rs` is thin: everything here is testable without spawning the binary.

pub mod cli;
pub mod clock;
pub mod drivers;
pub mod fault;
pub mod load;
pub mod logging;
pub mod metrics;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod scenario;
pub mod shutdown;
pub mod slo;
pub mod target;
pub mod verify;
