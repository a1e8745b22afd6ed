#!/usr/bin/env bash
# Time from `chaos run` to its first request, with the embedded sandbox (started by the run) and
# without (a target already up): the time from exec to the run's clock start — when the first
# arrivals of a constant-rate scenario are due — read from the run's `-v` log, best of RUNS.
#
#   bash ci/startup.sh [RUNS]        (default 5; CHAOS=path/to/chaos, default target/release/chaos)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
CHAOS="${CHAOS:-target/release/chaos}"
[ -x "$CHAOS" ] || cargo build --release --locked --bin chaos >&2
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"; [ -n "${SRV:-}" ] && kill "$SRV" 2>/dev/null || true' EXIT
cat >"$DIR/s.toml" <<'TOML'
name = "startup"
[load]
stages = [{ hold = "100/s", for = "1s" }]
[[load.requests]]
name = "health"
path = "/health"
TOML
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$DIR" >/dev/null 2>&1 &
SRV=$!
sleep 0.5
measure() {
  local best="" i t0 t1 ms
  for ((i = 0; i < RUNS; i++)); do
    rm -rf "$DIR/run"
    t0="$(date +%s.%N)"
    "$CHAOS" -v run "$DIR/s.toml" --out "$DIR/run" --quiet --summary none "$@" 2>"$DIR/log" || true
    t1="$(grep -m1 'run clock started' "$DIR/log" | cut -d' ' -f1)"
    ms="$(python3 -c "import datetime,sys; t=datetime.datetime.fromisoformat('$t1'.replace('Z','+00:00')).timestamp(); print(round((t-$t0)*1000))")"
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best="$ms"; fi
  done
  echo "$best"
}
echo "| start | first request due after (best of $RUNS) |"
echo "|---|---:|"
echo "| with the embedded sandbox (started by the run) | $(measure) ms |"
echo "| without (--target-url, a server already up) | $(measure --target-url "http://127.0.0.1:$PORT") ms |"
