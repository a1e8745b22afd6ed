//! The shipped target files, embedded in the binary so `--target sandbox-async` works from any
//! directory. The files in `scenarios/targets/` are the source of truth.

/// (name, TOML text).
pub const TARGETS: &[(&str, &str)] = &[
    (
        "sandbox",
        include_str!("../../scenarios/targets/sandbox.toml"),
    ),
    (
        "sandbox-async",
        include_str!("../../scenarios/targets/sandbox-async.toml"),
    ),
    (
        "url-example",
        include_str!("../../scenarios/targets/url-example.toml"),
    ),
    (
        "aws-example",
        include_str!("../../scenarios/targets/aws-example.toml"),
    ),
    (
        "moto-demo",
        include_str!("../../scenarios/targets/moto-demo.toml"),
    ),
    (
        "local-example",
        include_str!("../../scenarios/targets/local-example.toml"),
    ),
    (
        "local-stack",
        include_str!("../../scenarios/targets/local-stack.toml"),
    ),
];

/// The text of the shipped target `name`.
pub fn get(name: &str) -> Option<&'static str> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn names() -> Vec<&'static str> {
    TARGETS.iter().map(|(n, _)| *n).collect()
}
