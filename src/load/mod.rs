//! The load engine: the open model (arrival-rate schedule, coordinated omission corrected), the
//! HTTP client under test (headers; its transport: connections, TLS, the keep-alive pool), its
//! retry policy and budget, request templates, `expect` (what counts as a success) and the
//! samples of failed responses kept for the post-mortem; and the closed model, users running
//! journeys on goose ([`journeys`]).
//!
//! The engine never learns about faults: it measures the system only through its own requests.

pub mod client;
pub mod engine;
pub mod expect;
pub mod failures;
pub mod journeys;
mod prepared;
pub mod progress;
pub mod retry;
pub mod schedule;
pub mod template;
pub mod transport;

pub use engine::{run, run_mode, Engine, EngineError, LoadResult, Mode};
pub use progress::{NoProgress, Progress, ProgressSnapshot};
