//! Fault drivers (DESIGN.md "Driver"): how each fault kind is done on one kind of target.
//! Today: the sandbox driver. The aws, proxy and process drivers arrive with later issues.

pub mod sandbox;
