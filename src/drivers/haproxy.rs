//! Blue/green cutovers on a local stack's haproxy (`[lb]` of the target file): the server
//! weights of one backend moved from its blue servers to its green ones, step by step, through
//! haproxy's runtime API (`set weight`, `shutdown sessions server`).
//!
//! A cutover is a command pair the process driver runs like a `command` fault's
//! ([`super::process::Action::Command`]): the inject sets the first step's weights and leaves a
//! stepper (its own process group, its pid in a file) to set the later ones; the revert stops
//! the stepper and gives blue its configured weights back (`100%`) and green none. So a cutover
//! is journaled with self-contained undo data (`chaos rollback` reverts it), and it is a lease:
//! a run killed outright has its revert run by the process driver's guardian one lease later.
//!
//! Weights: with `b` blue and `g` green servers, green's share `p`% is blue servers at
//! `(100 - p) * g` and green ones at `p * b`, scaled into haproxy's 0..=256. Weight 0 takes a
//! server out of the balancing while its requests in flight finish (draining); without
//! draining, `shutdown sessions server` cuts them when the group loses its last share.
//!
//! It talks only to the runtime API the target names (loopback, checked by the target file),
//! with bash's `/dev/tcp` (no extra tool); every answer that is not empty is an error.

use std::path::Path;
use std::time::Duration;

use crate::target::local::LbConfig;

/// haproxy's largest server weight.
const MAX_WEIGHT: u32 = 256;

/// `(server, weight)` of every server when green has `pct` percent of the requests.
pub fn weights(lb: &LbConfig, pct: u32) -> Vec<(String, u32)> {
    let pct = pct.min(100);
    let (b, g) = (lb.blue.len() as u32, lb.green.len() as u32);
    let top = 100 * b.max(g);
    let scale = |w: u32| -> u32 {
        if top <= MAX_WEIGHT {
            w
        } else {
            ((u64::from(w) * u64::from(MAX_WEIGHT) + u64::from(top) / 2) / u64::from(top)) as u32
        }
    };
    let mut out: Vec<(String, u32)> = lb
        .blue
        .iter()
        .map(|s| (s.clone(), scale((100 - pct) * g)))
        .collect();
    out.extend(lb.green.iter().map(|s| (s.clone(), scale(pct * b))));
    // A share above zero keeps at least weight 1: rounding must never empty a group early.
    for (i, w) in out.iter_mut().enumerate() {
        let share = if i < lb.blue.len() { 100 - pct } else { pct };
        if share > 0 && w.1 == 0 {
            w.1 = 1;
        }
    }
    out
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The bash function every script starts with: `hap "cmd; cmd"` sends one line to the runtime
/// API and fails (with haproxy's answer on stderr) unless every answer is empty.
fn hap_fn(lb: &LbConfig) -> String {
    format!(
        "hap() {{ exec 3<>/dev/tcp/{}/{} || return 1; printf '%s\\n' \"$1\" >&3; \
         r=$(cat <&3); exec 3<&-; case \"$r\" in *[![:space:]]*) echo \"haproxy: $r\" >&2; \
         return 1;; esac; }}",
        lb.haproxy.ip(),
        lb.haproxy.port()
    )
}

fn set_line(lb: &LbConfig, pct: u32) -> String {
    weights(lb, pct)
        .iter()
        .map(|(s, w)| format!("set weight {}/{s} {w}", lb.backend))
        .collect::<Vec<_>>()
        .join("; ")
}

fn shutdown_line(lb: &LbConfig, servers: &[String]) -> String {
    servers
        .iter()
        .map(|s| format!("shutdown sessions server {}/{s}", lb.backend))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The command that sets one step (one `hap` line). Without draining, blue's sessions are shut
/// at the 100% step in the same line: haproxy runs it right after the weights, so the requests
/// in flight then are cut, not left to finish while a second call connects.
fn step_line(lb: &LbConfig, pct: u32, drain: bool) -> String {
    let mut line = set_line(lb, pct);
    if pct == 100 && !drain {
        line.push_str("; ");
        line.push_str(&shutdown_line(lb, &lb.blue));
    }
    format!("hap {}", quote(&line))
}

/// How long each of a cutover's commands (the inject, the revert) may run.
pub const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The cutover's inject and revert commands (each a `bash -c` line). `pidfile`: where the
/// stepper's process group id is kept between them.
pub fn commands(
    lb: &LbConfig,
    steps: &[u32],
    every: Duration,
    drain: bool,
    pidfile: &Path,
) -> (String, String) {
    let hap = hap_fn(lb);
    let pid = quote(&pidfile.display().to_string());
    let first = steps.first().copied().unwrap_or(100);
    let later: Vec<String> = steps
        .iter()
        .skip(1)
        .map(|p| {
            format!(
                "sleep {:.3} && {}",
                every.as_secs_f64(),
                step_line(lb, *p, drain)
            )
        })
        .collect();
    let mut inject = format!("{hap}; {}", step_line(lb, first, drain));
    if !later.is_empty() {
        let stepper = format!("{hap}; {}", later.join(" && "));
        // Its own session (and process group), nothing inherited: the inject returns at once
        // and the revert stops the whole group.
        inject.push_str(&format!(
            " && {{ setsid bash -c {} </dev/null >/dev/null 2>&1 & echo $! > {pid}; }}",
            quote(&stepper)
        ));
    }
    let mut back = lb
        .blue
        .iter()
        .map(|s| format!("set weight {}/{s} 100%", lb.backend))
        .chain(
            lb.green
                .iter()
                .map(|s| format!("set weight {}/{s} 0", lb.backend)),
        )
        .collect::<Vec<_>>()
        .join("; ");
    if !drain {
        back.push_str("; ");
        back.push_str(&shutdown_line(lb, &lb.green));
    }
    let revert = format!(
        "{hap}; if [ -s {pid} ]; then kill -TERM -- -\"$(cat {pid})\" 2>/dev/null; fi; rm -f {pid}; \
         hap {}",
        quote(&back)
    );
    (
        format!("bash -c {}", quote(&inject)),
        format!("bash -c {}", quote(&revert)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb(blue: &[&str], green: &[&str]) -> LbConfig {
        LbConfig {
            haproxy: "127.0.0.1:15458".parse().unwrap_or_else(|_| unreachable!()),
            backend: "app".into(),
            blue: blue.iter().map(|s| s.to_string()).collect(),
            green: green.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Green's share of the weights, in percent.
    fn share(lb: &LbConfig, w: &[(String, u32)]) -> f64 {
        let green: u32 = w
            .iter()
            .filter(|(s, _)| lb.green.contains(s))
            .map(|x| x.1)
            .sum();
        let all: u32 = w.iter().map(|x| x.1).sum();
        100.0 * f64::from(green) / f64::from(all)
    }

    #[test]
    fn weights_give_green_its_share_within_haproxys_range() {
        for (b, g) in [(3, 2), (1, 1), (2, 5), (6, 6)] {
            let names =
                |p: &str, n: usize| -> Vec<String> { (0..n).map(|i| format!("{p}{i}")).collect() };
            let (bn, gn) = (names("a", b), names("g", g));
            let l = lb(
                &bn.iter().map(String::as_str).collect::<Vec<_>>(),
                &gn.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            for pct in [1, 10, 25, 50, 90, 99] {
                let w = weights(&l, pct);
                assert!(w.iter().all(|x| (1..=MAX_WEIGHT).contains(&x.1)), "{w:?}");
                let s = share(&l, &w);
                assert!(
                    (s - f64::from(pct)).abs() < 1.0,
                    "{b}+{g} at {pct}%: {s:.2}% {w:?}"
                );
            }
            let w0 = weights(&l, 0);
            assert!(
                w0.iter().all(|(s, w)| (*w == 0) == l.green.contains(s)),
                "{w0:?}"
            );
            let w100 = weights(&l, 100);
            assert!(
                w100.iter().all(|(s, w)| (*w == 0) == l.blue.contains(s)),
                "{w100:?}"
            );
        }
    }

    #[test]
    fn commands_step_in_the_background_and_the_revert_stops_the_stepper_first() {
        let l = lb(&["a1", "a2", "a3"], &["g1", "g2"]);
        let pid = Path::new("/tmp/x/cutover.pid");
        let (inject, revert) = commands(&l, &[10, 100], Duration::from_secs(5), false, pid);
        assert!(inject.starts_with("bash -c "), "{inject}");
        assert!(inject.contains("/dev/tcp/127.0.0.1/15458"), "{inject}");
        // 90 x 2 and 10 x 3, scaled by 256/300 into haproxy's range.
        assert!(
            inject.contains("set weight app/a1 154; set weight app/a2 154"),
            "{inject}"
        );
        assert!(inject.contains("set weight app/g1 26"), "{inject}");
        assert!(inject.contains("sleep 5.000"), "{inject}");
        // The cut in the same call as the weights that empty blue.
        assert!(
            inject.contains("set weight app/g2 256; shutdown sessions server app/a1"),
            "{inject}"
        );
        assert!(inject.contains("setsid bash -c"), "{inject}");
        let kill = revert.find("kill -TERM").unwrap();
        let back = revert.find("set weight app/a1 100%").unwrap();
        assert!(kill < back, "{revert}");
        assert!(revert.contains("set weight app/g2 0"), "{revert}");
        assert!(
            revert.contains("shutdown sessions server app/g1"),
            "{revert}"
        );
        let (inject, revert) = commands(&l, &[100], Duration::from_secs(5), true, pid);
        assert!(!inject.contains("setsid"), "one step: nothing left to step");
        assert!(!inject.contains("shutdown"), "drained");
        assert!(!revert.contains("shutdown"), "drained");
    }
}
