//! The live progress view on stderr: an indicatif bar on a terminal, plain periodic lines
//! otherwise (CI logs), nothing with `--quiet`.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::output;
use crate::load::{Progress, ProgressSnapshot};
use crate::slo::{show_ratio, show_us};

fn line(s: &ProgressSnapshot) -> String {
    // With users, the plan's user count; the achieved rate then counts their steps too.
    let target = match s.users {
        None => format!("target {:>7.1} req/s", s.target_rps),
        Some(u) if s.target_rps > 0.0 => {
            format!("target {:>7.1} req/s + {u:>5} users", s.target_rps)
        }
        Some(u) => format!("users {u:>5}"),
    };
    format!(
        "{:>6.1}s/{:.0}s  {target}  achieved {:>7.1} req/s  p99 {:>8}  errors {:>6}  in flight {}",
        s.elapsed.as_secs_f64(),
        s.total.as_secs_f64(),
        s.achieved_rps,
        s.p99_us.map_or_else(|| "—".into(), |v| show_us(v as f64)),
        show_ratio(s.error_rate),
        s.in_flight
    )
}

/// Pick the view for this process's stderr.
pub fn for_stderr(quiet: bool) -> Box<dyn Progress> {
    if quiet {
        Box::new(crate::load::engine::NoProgress)
    } else if std::io::stderr().is_terminal() && !crate::logging::enabled() {
        Box::new(Bar::new())
    } else {
        Box::new(Lines {
            every: Duration::from_secs(5),
            last: None,
        })
    }
}

struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::new(1000);
        bar.set_style(
            ProgressStyle::with_template("{bar:30.cyan/blue} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bar { bar }
    }
}

impl Progress for Bar {
    fn update(&mut self, s: &ProgressSnapshot) {
        let f = s.elapsed.as_secs_f64() / s.total.as_secs_f64().max(1e-9);
        self.bar.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
        self.bar.set_message(line(s));
    }
    fn finish(&mut self, s: &ProgressSnapshot) {
        self.bar.finish_and_clear();
        output::err(&format!("done: {} requests completed", s.completed));
    }
}

/// Plain lines every few seconds: what a CI log wants.
struct Lines {
    every: Duration,
    last: Option<Instant>,
}

impl Progress for Lines {
    fn update(&mut self, s: &ProgressSnapshot) {
        if self.last.is_none_or(|t| t.elapsed() >= self.every) {
            self.last = Some(Instant::now());
            output::err(&line(s));
        }
    }
    fn finish(&mut self, s: &ProgressSnapshot) {
        output::err(&format!("done: {} requests completed", s.completed));
    }
}
