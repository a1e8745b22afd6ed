//! Fault drivers (DESIGN.md "Driver"): how each fault kind is done on one kind of target.
//! Today: the sandbox driver, the aws driver (behind the default-on `aws` cargo feature) and the
//! proxy driver (the built-in fault proxy of a `local` target); [`control`] is the HTTP client
//! the sandbox and proxy drivers share. The process driver arrives with a later issue.

#[cfg(feature = "aws")]
pub mod aws;
pub mod control;
pub mod proxy;
pub mod sandbox;
