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
# Headless Chromium screenshots report.html in tests/report_browser.rs (Debian's
# chromium-headless-shell: ~100 MB, no X server needed).
if ! command -v chromium-headless-shell >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium-headless-shell (apt)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium-headless-shell
fi
# Every other server the tests use (the sandbox, HTTP test servers) is started by the tests
# themselves on 127.0.0.1:0. redis-server, postgresql and moto join this list with the drivers
# that need them.

# --- the gate ----------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

log "cargo test"
# Snapshots (insta) are compared, never written, in the gate.
export INSTA_UPDATE=no
cargo test --all-targets --locked
