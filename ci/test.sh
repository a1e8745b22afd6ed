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
# moto (an AWS API emulator, from PyPI) for the aws driver's tests (tests/aws.rs), in a venv
# under target/ (git ignores it; kept between runs on one machine). Started below on a free
# loopback port and stopped when this script exits; the tests reset it between tests.
mkdir -p target
MOTO_VENV="${CHAOS_MOTO_VENV:-target/moto-venv}"
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  log "installing moto[server] into $MOTO_VENV (pip)"
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.*'
fi
MOTO_PORT="$("$MOTO_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log "starting moto on 127.0.0.1:$MOTO_PORT"
"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >target/moto.log 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if "$MOTO_VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$MOTO_PORT/moto-api/reset', data=b'')" 2>/dev/null; then break; fi
  sleep 0.2
done
export CHAOS_MOTO_URL="http://127.0.0.1:$MOTO_PORT"
# The fixture stack builder (ci/moto_stack.py) runs with the venv's python (boto3 comes with moto).
export CHAOS_MOTO_PYTHON="$MOTO_VENV/bin/python"
# kubernetes-validate (PyPI) checks ci/k8s/*.yaml offline against the Kubernetes schemas
# (tests/k8s.rs), from the same venv.
if [ ! -x "$MOTO_VENV/bin/kubernetes-validate" ]; then
  log "installing kubernetes-validate into $MOTO_VENV (pip)"
  "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.*'
fi
export CHAOS_K8S_VALIDATE="$MOTO_VENV/bin/kubernetes-validate"
# The local stack (ci/local-stack.sh; tests/local_stack.rs, tests/local_stack_runs.rs): PostgreSQL 15 under Patroni with
# etcd, Redis with Sentinel, haproxy in front of the app nodes, from Debian packages (~15 s).
# Their services are not started by the install (policy-rc.d): the tests start their own on loopback ports and stop them by pid.
if ! command -v patroni >/dev/null 2>&1 || ! command -v etcd >/dev/null 2>&1 ||
  ! command -v redis-sentinel >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1 ||
  ! command -v psql >/dev/null 2>&1 || [ ! -x /usr/lib/postgresql/15/bin/postgres ] ||
  ! command -v haproxy >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  log "installing patroni, etcd, postgresql-15, redis-server, redis-sentinel, haproxy (apt)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  POLICY=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    POLICY=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    patroni etcd-server postgresql-15 redis-server redis-sentinel redis-tools haproxy curl
  if [ -n "$POLICY" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi
# Every other server the tests use (the sandbox, HTTP test servers, the fault proxy, the
# processes of tests/process.rs) is started by the tests themselves on loopback.

# --- the gate ----------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

log "cargo test"
# Snapshots (insta) are compared, never written, in the gate.
export INSTA_UPDATE=no
cargo test --all-targets --locked
