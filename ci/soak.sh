#!/usr/bin/env bash
# Soak: one long run on the embedded sandbox with a fault every minute, sampling the harness's
# resident memory and open file descriptors once a minute; then checks that both stayed flat
# (within ±5% of their median after the first minutes' warm-up; open fds also within ±2), that
# the report is complete and that nothing is left applied.
#
#   bash ci/soak.sh [MINUTES] [OUT_DIR]        (default 30 minutes, target/soak)
#   CHAOS=target/release/chaos bash ci/soak.sh (the binary to soak; default: release, built)
#   RPS=200                                     (the load's constant rate)
#
# Writes OUT_DIR/soak.toml (the generated scenario), OUT_DIR/run/ (the run directory) and
# OUT_DIR/samples.tsv (minute, RSS KiB, open fds of chaos; RSS KiB of its sandbox child).
# Exit 0 when all three checks hold, 1 otherwise. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-30}"
OUT="${2:-target/soak}"
RPS="${RPS:-200}"
# The first minutes are warm-up: a full cycle of the five fault kinds (the pool grows to what
# the slowest of them needs, and stays).
WARMUP="${WARMUP:-6}"
if [ -z "${CHAOS:-}" ]; then
  cargo build --release --locked --bin chaos >&2
  CHAOS=target/release/chaos
fi
mkdir -p "$OUT"
rm -rf "$OUT/run"

# The scenario: a constant rate for MINUTES minutes; from minute 1 on, a fault every minute
# (20 s each), cycling through the sandbox's kinds.
{
  cat <<TOML
name = "soak"
description = "${MINUTES} minutes at ${RPS} req/s with a fault every minute"

[load]
peak_rps = ${RPS}
stages = [{ hold = "1x", for = "${MINUTES}m" }]
# What a run keeps by design grows with its length: the recording (about 1 KB per request name
# per interval) and each acknowledged durable write until its read-back (about 250 B). A 10 s
# interval and no durable write keep that under 1% of the RSS, so what the soak sees is
# everything else: the engine, the transport's pool, the fault machinery.
interval = "10s"

[load.client]
timeout = "2s"
retry = { attempts = 2, backoff = "50ms", on = ["connect", "timeout", "502", "503", "504"], budget = "20%" }

[[load.requests]]
name = "list"
weight = 7
path = "/notes"

[[load.requests]]
name = "create"
weight = 3
method = "POST"
path = "/notes"
json = { text = "soak {{seq}}" }
TOML
  kinds=("kind = \"kill-nodes\"
role = \"app\"
count = 1" "kind = \"az-outage\"
zone = \"b\"" "kind = \"db-failover\"" "kind = \"cache-partition\"" "kind = \"latency\"
link = \"app-db\"
delay = \"50ms\"")
  for ((m = 1; m < MINUTES; m++)); do
    printf '\n[[faults]]\nname = "f%d"\n%s\nat = "%dm"\n' "$m" "${kinds[$(((m - 1) % 5))]}" "$m"
    case $(((m - 1) % 5)) in 2) ;; *) printf 'for = "20s"\n' ;; esac
  done
  cat <<TOML

[slo]
whole = ["throughput > 99%"]
TOML
} >"$OUT/soak.toml"
"$CHAOS" check "$OUT/soak.toml" >&2

"$CHAOS" run "$OUT/soak.toml" --out "$OUT/run" --quiet --summary none &
PID=$!
printf 'minute\trss_kib\tfds\tsandbox_rss_kib\n' >"$OUT/samples.tsv"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Sampled 40 s into each minute: after that minute's fault (20 s) is reverted, so a sample
# sees the steady state, not the connections a fault's retries hold open.
sleep 40
for ((m = 1; m <= MINUTES; m++)); do
  [ "$m" -eq 1 ] || sleep 60
  kill -0 "$PID" 2>/dev/null || break
  child="$(pgrep -P "$PID" | head -1 || true)"
  fds="$(ls "/proc/$PID/fd" 2>/dev/null | wc -l)"
  printf '%d\t%s\t%s\t%s\n' "$m" "$(rss "$PID")" "$fds" "$( [ -n "$child" ] && rss "$child" || echo 0)" \
    | tee -a "$OUT/samples.tsv" >&2
done
set +e
wait "$PID"
CODE=$?
set -e
echo "chaos run exited $CODE" >&2

python3 - "$OUT" "$WARMUP" <<'PY'
import json, statistics, sys, os
out, warm = sys.argv[1], int(sys.argv[2])
rows = [l.split("\t") for l in open(f"{out}/samples.tsv").read().split("\n")[1:] if l]
ok = True
# Flat: every sample after the warm-up within 5% of the median; for open fds (a few dozen at
# most, where 5% is less than one) within 2 descriptors also counts as flat.
for col, name, slack in [(1, "RSS", 0), (2, "open fds", 2)]:
    vals = [int(r[col]) for r in rows if int(r[0]) > warm]
    if not vals:
        print(f"{name}: no samples after the warm-up"); ok = False; continue
    med = statistics.median(vals)
    spread = max(abs(v - med) / med for v in vals) if med else 0
    flat = spread <= 0.05 or max(abs(v - med) for v in vals) <= slack
    ok &= flat
    print(f"{name}: median {med:.0f}, min {min(vals)}, max {max(vals)}, largest deviation {spread:.1%} -> {'flat' if flat else 'NOT flat'}")
rep = json.load(open(f"{out}/run/report.json"))
faults = rep["timeline"]["faults"]
left = [f["name"] for f in faults if f.get("status") != "reverted"]
print(f"report: verdict {rep['verdict']}, {rep['scheduled']} scheduled, {len(faults)} faults, not reverted: {left or 'none'}")
ok &= not left and rep["verdict"] in ("pass", "fail")
sys.exit(0 if ok else 1)
PY
# Nothing left applied: the journal agrees (rollback finds nothing to revert).
"$CHAOS" rollback "$OUT/run" >&2
