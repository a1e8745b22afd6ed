//! Fault drivers (DESIGN.md "Driver"): how each fault kind is done on one kind of target.
//! Today: the sandbox driver, the aws driver (behind the default-on `aws` cargo feature), and
//! for a `local` target the local driver, which does each fault through its proxy part (the
//! built-in fault proxy) or its process part (the target's processes and command pairs), and
//! reads its HA machinery's logs ([`logs`]) as control-plane events;
//! [`control`] is the HTTP client the sandbox and proxy drivers share.

#[cfg(feature = "aws")]
pub mod aws;
pub mod control;
pub mod haproxy;
pub mod local;
pub mod logs;
pub mod process;
pub mod proxy;
pub mod sandbox;

/// A blue/green cutover's steps as a plan shows them: `10%, 50%, 100% every 10s, blue drained`.
pub fn cutover_steps(steps: &[u32], every: std::time::Duration, drain: bool) -> String {
    let shares: Vec<String> = steps.iter().map(|s| format!("{s}%")).collect();
    format!(
        "{}{}, {}",
        shares.join(", "),
        if steps.len() > 1 {
            format!(" every {}", crate::scenario::validate::show(every))
        } else {
            String::new()
        },
        if drain {
            "blue drained"
        } else {
            "blue's requests in flight cut"
        }
    )
}
