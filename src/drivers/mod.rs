//! Fault drivers (DESIGN.md "Driver"): how each fault kind is done on one kind of target.
//! Today: the sandbox driver, and the aws driver (behind the default-on `aws` cargo feature).
//! The proxy and process drivers arrive with later issues.

#[cfg(feature = "aws")]
pub mod aws;
pub mod sandbox;
