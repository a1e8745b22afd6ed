//! The only place that writes to stdout/stderr directly (the lints deny it elsewhere).
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub fn out(s: &str) {
    println!("{s}");
}

pub fn err(s: &str) {
    eprintln!("{s}");
}
