#!/usr/bin/env bash
# The test command (README): installs what the tests need when it is missing, then runs the
# whole gate — fmt, clippy with -D warnings, and every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*" >&2; }

# --- what the tests need -----------------------------------------------------------------
# The Rust toolchain is the machine's (rustup). rustfmt and clippy are components of it.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  log "installing rustfmt and clippy"
  rustup component add rustfmt clippy
fi
# Servers used by integration tests are installed here as the test suite grows (redis-server,
# postgresql, moto in a venv); today's tests start their own HTTP servers in-process on
# 127.0.0.1:0 and need nothing installed.

# --- the gate ----------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

log "cargo test"
# Snapshots (insta) are compared, never written, in the gate.
export INSTA_UPDATE=no
cargo test --all-targets --locked
