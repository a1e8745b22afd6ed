#!/usr/bin/env bash
# The aws driver, end to end, with no AWS account: moto (an AWS API emulator) on
# 127.0.0.1:5000 with the fixture stack of ci/moto_stack.py, a local sandbox for the load, then `chaos plan` and `chaos run az-outage --target moto-demo --yes`.
#
# The faults go to moto, the traffic to the sandbox: they are different systems here, so the
# run's numbers show no effect of the faults. What to look at is the journal and the fault
# timeline in the report (injected, confirmed by describe calls, reverted) and moto's state.
#
#   bash ci/moto-demo.sh            # az-outage; or: bash ci/moto-demo.sh db-failover
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO="${1:-az-outage}"
VENV="${CHAOS_MOTO_VENV:-target/moto-venv}"
if [ ! -x "$VENV/bin/moto_server" ]; then
  mkdir -p target
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.*'
fi
cargo build --release --quiet
CHAOS=target/release/chaos
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN

"$VENV/bin/moto_server" -H 127.0.0.1 -p 5000 >target/moto-demo.log 2>&1 &
MOTO=$!
# The sandbox picks its own ports: the target used is moto-demo.toml with base_url set to them.
"$CHAOS" sandbox up >target/moto-demo-sandbox.txt 2>/dev/null &
SANDBOX=$!
trap 'kill $MOTO $SANDBOX 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do [ -s target/moto-demo-sandbox.txt ] && break; sleep 0.1; done
LB="$(head -1 target/moto-demo-sandbox.txt | sed 's/.*"lb_url":"\([^"]*\)".*/\1/')"
sed "s|^base_url = .*|base_url = \"$LB\"|" scenarios/targets/moto-demo.toml >target/moto-demo.toml
for _ in $(seq 1 50); do
  curl -sf -X POST http://127.0.0.1:5000/moto-api/reset >/dev/null 2>&1 && break
  sleep 0.2
done
"$VENV/bin/python" ci/moto_stack.py --endpoint-url http://127.0.0.1:5000 >target/moto-demo-stack.json
echo "== the stack (target/moto-demo-stack.json), then what chaos would do" >&2
"$CHAOS" plan "$SCENARIO" --target target/moto-demo.toml
echo "== the run (the load on the sandbox at $LB, the faults on moto)" >&2
"$CHAOS" run "$SCENARIO" --target target/moto-demo.toml --yes --time-scale 0.1 --out target/moto-demo-run --force
echo "== the journal: intent, applied, confirmed, reverted" >&2
cut -c1-160 target/moto-demo-run/journal.jsonl
