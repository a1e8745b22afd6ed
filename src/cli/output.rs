//! The only place that writes to stdout/stderr directly (the lints deny it elsewhere).
//!
//! A closed stdout or stderr (`chaos plan | head -1`, a CI runner that went away) is not an
//! error: the write is dropped and the command carries on to its real exit code. `println!`
//! would panic on it ("failed printing to stdout: Broken pipe", exit 101).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write as _;

/// A line on stdout (results: summaries, plans, lists); dropped if stdout is closed.
pub fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}").and_then(|()| o.flush());
}

/// A line on stderr (progress, verdicts, messages); dropped if stderr is closed.
pub fn err(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}

/// An error, with one `error:` prefix: diagnostics already carry theirs (one per error).
pub fn error(e: &dyn std::fmt::Display) {
    let text = e.to_string();
    if text.starts_with("error:") || text.starts_with("error[") {
        err(&text);
    } else {
        err(&format!("error: {text}"));
    }
}
