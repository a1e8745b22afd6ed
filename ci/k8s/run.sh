#!/usr/bin/env bash
# One chaos run split over several load generators on the current kubectl context, with one
# merged verdict:  bash ci/k8s/run.sh SCENARIO.toml TARGET.toml [SECONDS_AHEAD]
# (docs: README "Past one machine"). The image `chaos:latest` must be pullable by the cluster
# (ci/k8s/Dockerfile builds it). The target must be a shared one (a target file: aws, local,
# or a sandbox at its control_url) — never the embedded sandbox, which each shard would start
# for itself. Exits with the merged run's exit code.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCENARIO="$1"
TARGET="$2"
AHEAD="${3:-60}"
# How long to wait for the shards, then the merge, before giving up (seconds).
MAX_WAIT="${MAX_WAIT:-7200}"
RUN="$(basename "$SCENARIO" .toml)-$(date -u +%Y%m%dT%H%M%SZ)"
# The start is computed once, here, for every shard: far enough ahead for every pod to be
# scheduled, pull the image and connect (a shard that starts more than 1 s late refuses).
START_AT="$(date -u -d "+$AHEAD seconds" +%FT%TZ)"

kubectl apply -f ci/k8s/volume.yaml
kubectl create configmap chaos-scenarios --from-file="$SCENARIO" --from-file="$TARGET" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl create configmap chaos-run \
  --from-literal=scenario="/scenarios/$(basename "$SCENARIO")" \
  --from-literal=target="/scenarios/$(basename "$TARGET")" \
  --from-literal=start_at="$START_AT" \
  --from-literal=run="$RUN" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl delete job chaos-shards chaos-merge --ignore-not-found
kubectl apply -f ci/k8s/conductor-service.yaml
kubectl apply -f ci/k8s/shards-job.yaml
echo "run $RUN: shards start at $START_AT" >&2

# Wait for a Job to end, whether it succeeds or fails (for the shards, the merge says which).
wait_job() {
  local waited=0 state
  while :; do
    state="$(kubectl get job "$1" -o jsonpath='{.status.conditions[?(@.status=="True")].type}')"
    case "$state" in *Complete* | *Failed*) return 0 ;; esac
    if [ "$waited" -ge "$MAX_WAIT" ]; then
      echo "job $1 did not end within ${MAX_WAIT}s (MAX_WAIT)" >&2
      return 1
    fi
    sleep 5
    waited=$((waited + 5))
  done
}
wait_job chaos-shards
kubectl apply -f ci/k8s/merge-job.yaml
wait_job chaos-merge
kubectl logs job/chaos-merge
code="$(kubectl get pods -l job-name=chaos-merge \
  -o jsonpath='{.items[0].status.containerStatuses[0].state.terminated.exitCode}' || true)"
echo "merged run: /runs/$RUN/merged on volume chaos-runs (exit ${code:-unknown})" >&2
exit "${code:-1}"
