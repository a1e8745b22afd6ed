//! chaos: a chaos and load testing harness.
//!
//! The run, as data flows (see DESIGN.md): scenario::load -> plan -> run (load engine +
//! recorder, fault scheduler) -> rollback -> verify -> slo::evaluate -> report + exit code.
//! `main.rs` is thin: everything here is testable without spawning the binary.

pub mod scenario;
