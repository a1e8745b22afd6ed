#!/usr/bin/env bash
# The local stack: real servers with their own HA, on loopback, from Debian packages
# (apt-get install patroni etcd-server postgresql-15 redis-server redis-sentinel redis-tools
# haproxy).
#
#   ci/local-stack.sh up            start it all and wait until it is healthy
#   ci/local-stack.sh down          stop everything it started (by pid) and remove its directory
#   ci/local-stack.sh start NODE    start one node again (what the process driver's `start` runs)
#   ci/local-stack.sh status        one line per node
#   ci/local-stack.sh restore start|finish
#                                   the restore drill (the target's [restore]: below)
#   ci/local-stack.sh target        print the target file (kind = "local") that describes it;
#                                   with the defaults it is scenarios/targets/local-stack.toml
#                                   (`--target local-stack`)
#
# What runs (ports from CHAOS_STACK_PORT_BASE, default 15400; files under CHAOS_STACK_DIR,
# default /tmp/chaos-local-stack):
#   etcd       one member, client BASE, peer BASE+1 (Patroni's DCS, v3 API)
#   pg1, pg2   PostgreSQL 15 under Patroni: postgres on BASE+10 / BASE+20, Patroni's REST API on
#              BASE+11 / BASE+21; pg1 bootstraps as the leader, pg2 streams from it
#              (asynchronously; CHAOS_STACK_SYNC=1 for Patroni's synchronous_mode). A node is
#              Patroni and its postmaster: killing both is a node's death, and Patroni on the
#              other node promotes it after the leader key's ttl (10 s).
#   r1, r2     Redis 7: r1 the primary on BASE+30, r2 its replica on BASE+31
#   s1..s3     three Redis Sentinels on BASE+40..42 watching `chaos` (quorum 2, down after 1 s)
#   proxy      the built-in fault proxy (`chaos proxy up`, control API on BASE+55) with the
#              stack's network links: db-pg1 / db-pg2 on BASE+12 / BASE+22 (the app's way to
#              each PostgreSQL node), repl-pg1 / repl-pg2 on BASE+13 / BASE+23 (each node's
#              address for replication: Patroni's connect_address, so a replica streams and
#              rewinds through it; the target's `cut-replication` command partitions both),
#              cache-r1 / cache-r2
#              on BASE+32 / BASE+33 (each Redis node's only address: the Sentinels monitor it
#              there, the replica replicates through it, each node announces it), so a
#              scenario's cache-partition, latency and az-outage cut or slow real links
#   a1..a3     the notes app (`chaos app up`) on BASE+51..53, a1 and a2 in zone a, a3 in zone b,
#              on PostgreSQL (multi-host URL through db-pg1,db-pg2, read-write target) and Redis
#              (the primary the Sentinels name, i.e. its cache-* proxy)
#   g1, g2     the green group for blue/green cutovers: the same app, version v2 (a1..a3 are
#              v1), on BASE+56 / BASE+57 in zones a / b, in haproxy's backend at weight 0 until
#              a cutover moves the requests to them (not [processes]: no fault picks idle nodes)
#   backups    pg_dump -Fc of the notes table every CHAOS_STACK_BACKUP_EVERY seconds (default 10)
#              into backups/ (the newest three kept), paused while a restore is under way;
#              `restore start` / `restore finish` are the target file's [restore] (db-restore):
#              the app cut off from PostgreSQL, the table emptied on every instance, refilled
#              from the newest backup, the links back (restore/restore.log says when)
#   lb         haproxy on BASE+50 in front of a1..a3 (health checks every 500 ms, down after 2;
#              in the foreground, its warnings — a server DOWN or UP — in lb/haproxy.log), its
#              runtime API on BASE+58 (`set weight`: the target's [lb], for cutovers)
#              — the stack's base_url. The chaos binary: CHAOS_BIN, else the newer of target/{release,debug}
#              of this repository, else `chaos` on PATH.
#
# Every process writes a pidfile under the stack's directory; `down` stops exactly those.
# PostgreSQL refuses to run as root: as root, Patroni runs as the `postgres` user.
set -euo pipefail

DIR="${CHAOS_STACK_DIR:-/tmp/chaos-local-stack}"
# A running stack's settings (written by `up`: its binary, PostgreSQL and replication mode win
# over the environment, its port base does not), so the copy of this script in its directory —
# what the target file's start commands run — starts a node exactly as `up` did.
if [ "${1:-}" != up ] && [ -f "$DIR/stack.env" ]; then . "$DIR/stack.env"; fi
BASE="${CHAOS_STACK_PORT_BASE:-15400}"
PG_BIN="${CHAOS_PG_BIN:-/usr/lib/postgresql/15/bin}"
SYNC="${CHAOS_STACK_SYNC:-0}"
BACKUP_EVERY="${CHAOS_STACK_BACKUP_EVERY:-10}"
# Seconds a restore waits, the data lost, before it restores (a bigger database's restore time;
# read when `restore start` runs).
RESTORE_TIME="${CHAOS_STACK_RESTORE_TIME:-0}"

ETCD=$BASE
PG_PORT() { case $1 in pg1) echo $((BASE + 10)) ;; pg2) echo $((BASE + 20)) ;; esac; }
API_PORT() { case $1 in pg1) echo $((BASE + 11)) ;; pg2) echo $((BASE + 21)) ;; esac; }
REDIS_PORT() { case $1 in r1) echo $((BASE + 30)) ;; r2) echo $((BASE + 31)) ;; esac; }
# Each node's link through the fault proxy: the address everyone else uses.
PG_LINK() { case $1 in pg1) echo $((BASE + 12)) ;; pg2) echo $((BASE + 22)) ;; esac; }
REPL_LINK() { case $1 in pg1) echo $((BASE + 13)) ;; pg2) echo $((BASE + 23)) ;; esac; }
REDIS_LINK() { case $1 in r1) echo $((BASE + 32)) ;; r2) echo $((BASE + 33)) ;; esac; }
PROXY_CONTROL=$((BASE + 55))
SENTINEL_PORT() { echo $((BASE + 39 + ${1#s})); }
APP_PORT() { case $1 in g*) echo $((BASE + 55 + ${1#g})) ;; *) echo $((BASE + 50 + ${1#a})) ;; esac; }
LB_PORT=$((BASE + 50))
HAPROXY_API=$((BASE + 58))
APP_ZONE() { case $1 in a3 | g2) echo b ;; *) echo a ;; esac; }
APP_VERSION() { case $1 in g*) echo v2 ;; *) echo v1 ;; esac; }

log() { printf '%s local-stack: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Wait up to $1 seconds for the command after it to succeed.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local t=0
  until "$@" >/dev/null 2>&1; do
    t=$((t + 1))
    if [ "$t" -gt $((limit * 5)) ]; then die "$what: not within ${limit}s"; fi
    sleep 0.2
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -s "$1" ] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }

psql_at() { PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -tAq -c "$2"; }

# --- etcd ----------------------------------------------------------------------------------
start_etcd() {
  mkdir -p "$DIR/etcd"
  if pid_alive "$DIR/etcd/etcd.pid"; then return; fi
  etcd --name chaos --data-dir "$DIR/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$ETCD" --advertise-client-urls "http://127.0.0.1:$ETCD" \
    --listen-peer-urls "http://127.0.0.1:$((BASE + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 1))" \
    --initial-cluster "chaos=http://127.0.0.1:$((BASE + 1))" \
    >>"$DIR/etcd/etcd.log" 2>&1 </dev/null &
  echo $! >"$DIR/etcd/etcd.pid"
  wait_for 20 "etcd on $ETCD" port_open "$ETCD"
}

# --- PostgreSQL under Patroni ----------------------------------------------------------------
patroni_conf() {
  local n=$1 d="$DIR/$1"
  cat >"$d/patroni.yml" <<EOF
scope: chaos
name: $n
restapi:
  listen: 127.0.0.1:$(API_PORT "$n")
  connect_address: 127.0.0.1:$(API_PORT "$n")
etcd3:
  hosts: 127.0.0.1:$ETCD
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    synchronous_mode: $([ "$SYNC" = 1 ] && echo true || echo false)
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
  initdb:
    - encoding: UTF8
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:$(PG_PORT "$n")
  connect_address: 127.0.0.1:$(REPL_LINK "$n")
  data_dir: $d/data
  bin_dir: $PG_BIN
  pgpass: $d/pgpass
  authentication:
    replication: {username: replicator, password: replicator}
    superuser: {username: postgres, password: postgres}
    rewind: {username: rewind, password: rewind}
  parameters:
    unix_socket_directories: '$d'
EOF
}

start_pg() {
  local n=$1 d="$DIR/$1"
  mkdir -p "$d"
  if pid_alive "$d/patroni.pid"; then return; fi
  # A postmaster left from a killed Patroni (re-parented to init) is stopped first: Patroni
  # starts its own.
  if pid_alive "$d/data/postmaster.pid"; then
    stop_pidfile "$d/data/postmaster.pid" postgres
  fi
  [ -f "$d/patroni.yml" ] || patroni_conf "$n"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$d"; fi
  # Started directly (not through a shell function, which would fork a subshell): $! is
  # Patroni's own pid (setpriv execs it).
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- \
      patroni "$d/patroni.yml" >>"$d/patroni.log" 2>&1 </dev/null &
  else
    patroni "$d/patroni.yml" >>"$d/patroni.log" 2>&1 </dev/null &
  fi
  echo $! >"$d/patroni.pid"
}

is_primary() { [ "$(psql_at "$(PG_PORT "$1")" 'select pg_is_in_recovery()')" = f ]; }
is_replica() { [ "$(psql_at "$(PG_PORT "$1")" 'select pg_is_in_recovery()')" = t ]; }
streams_to() { [ "$(psql_at "$(PG_PORT "$1")" "select count(*) from pg_stat_replication where state = 'streaming'")" -ge 1 ]; }

# --- Redis and Sentinel ------------------------------------------------------------------------
start_redis() {
  local n=$1 d="$DIR/$1" port
  port=$(REDIS_PORT "$n")
  mkdir -p "$d"
  if pid_alive "$d/redis.pid"; then return; fi
  # It announces its proxy link as its address (to its primary, so to the Sentinels).
  local args=(--port "$port" --bind 127.0.0.1 --daemonize yes --pidfile "$d/redis.pid"
    --dir "$d" --logfile "$d/redis.log" --save "" --appendonly no
    --repl-diskless-sync-delay 0
    --replica-announce-ip 127.0.0.1 --replica-announce-port "$(REDIS_LINK "$n")")
  # A node that comes back asks the Sentinels who the primary is now (each in turn, a few
  # times: one busy or restarting must not make it start as a second primary, which Sentinel
  # would only demote after its INFO period and more); on first start r1 is.
  local primary="" s try
  if [ -f "$DIR/s1/sentinel.conf" ]; then
    for try in 1 2 3; do
      for s in s1 s2 s3; do
        port_open "$(SENTINEL_PORT "$s")" || continue
        primary=$(redis-cli -p "$(SENTINEL_PORT "$s")" sentinel get-master-addr-by-name chaos 2>/dev/null | sed -n 2p || true)
        if [ -n "$primary" ]; then break 2; fi
      done
      sleep 0.5
    done
  fi
  if [ -n "$primary" ] && [ "$primary" != "$(REDIS_LINK "$n")" ]; then
    args+=(--replicaof 127.0.0.1 "$primary")
  elif [ -z "$primary" ] && [ "$n" = r2 ]; then
    args+=(--replicaof 127.0.0.1 "$(REDIS_LINK r1)")
  fi
  redis-server "${args[@]}"
  wait_for 10 "redis $n on $port" redis-cli -p "$port" ping
}

start_sentinel() {
  local n=$1 d="$DIR/$1" port
  port=$(SENTINEL_PORT "$n")
  mkdir -p "$d"
  if pid_alive "$d/sentinel.pid"; then return; fi
  if [ ! -f "$d/sentinel.conf" ]; then
    cat >"$d/sentinel.conf" <<EOF
port $port
bind 127.0.0.1
daemonize yes
pidfile $d/sentinel.pid
logfile $d/sentinel.log
dir $d
sentinel monitor chaos 127.0.0.1 $(REDIS_LINK r1) 2
sentinel down-after-milliseconds chaos 1000
sentinel failover-timeout chaos 2000
sentinel parallel-syncs chaos 1
EOF
  fi
  redis-sentinel "$d/sentinel.conf"
  wait_for 10 "sentinel $n on $port" redis-cli -p "$port" ping
}

sentinel_ready() {
  local info
  info=$(redis-cli -p "$(SENTINEL_PORT s1)" sentinel master chaos)
  echo "$info" | grep -A1 -x 'num-other-sentinels' | tail -n1 | grep -qx 2 &&
    echo "$info" | grep -A1 -x 'num-slaves' | tail -n1 | grep -qx 1
}

# --- the fault proxy -----------------------------------------------------------------------------
# The stack's target file (`target`) is written first: the proxy reads its [proxies.NAME].
start_proxy() {
  local d="$DIR/proxy"
  mkdir -p "$d"
  if pid_alive "$d/proxy.pid"; then return; fi
  rm -f "$d/proxy.pid"
  target >"$DIR/target.toml"
  local bin
  bin=$(chaos_bin) || exit 1
  "$bin" proxy up "$DIR/target.toml" >>"$d/proxy.log" 2>&1 </dev/null &
  echo $! >"$d/proxy.pid"
  wait_for 20 "fault proxy on $PROXY_CONTROL" port_open "$PROXY_CONTROL"
}

# --- the app tier and haproxy --------------------------------------------------------------------
chaos_bin() {
  local root
  root="$(cd "$(dirname "$0")/.." && pwd)"
  local rel="$root/target/release/chaos" dbg="$root/target/debug/chaos"
  # The newer of the two builds: a stale release binary must not serve a newer target file.
  if [ -n "${CHAOS_BIN:-}" ]; then echo "$CHAOS_BIN"
  elif [ -x "$rel" ] && { ! [ -x "$dbg" ] || [ "$rel" -nt "$dbg" ]; }; then echo "$rel"
  elif [ -x "$dbg" ]; then echo "$dbg"
  elif command -v chaos >/dev/null; then command -v chaos
  else die "no chaos binary (CHAOS_BIN, or cargo build)"
  fi
}

start_app() {
  local n=$1 d="$DIR/$1" port
  port=$(APP_PORT "$n")
  mkdir -p "$d"
  if pid_alive "$d/app.pid"; then return; fi
  rm -f "$d/app.pid"
  local bin
  bin=$(chaos_bin) || exit 1
  "$bin" app up --port "$port" --id "$n" --zone "$(APP_ZONE "$n")" --app-version "$(APP_VERSION "$n")" \
    --database "postgres://postgres@127.0.0.1:$(PG_LINK pg1),127.0.0.1:$(PG_LINK pg2)/postgres?target_session_attrs=read-write" \
    --cache "redis-sentinel://127.0.0.1:$(SENTINEL_PORT s1),127.0.0.1:$(SENTINEL_PORT s2),127.0.0.1:$(SENTINEL_PORT s3)/chaos" \
    --pidfile "$d/app.pid" >>"$d/app.log" 2>&1 </dev/null &
  # The app writes its pidfile once it serves.
  wait_for 40 "app $n on $port" test -s "$d/app.pid"
}

start_lb() {
  local d="$DIR/lb"
  mkdir -p "$d"
  if pid_alive "$d/haproxy.pid"; then return; fi
  # In the foreground (-db, its pid is $!): its warnings — a server going DOWN or UP — go to
  # haproxy.log, which the target file's [logs.haproxy] reads.
  cat >"$d/haproxy.cfg" <<EOF
global
  stats socket $d/admin.sock mode 600 level admin
  stats socket ipv4@127.0.0.1:$HAPROXY_API level admin
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  option redispatch
  retries 1
frontend web
  bind 127.0.0.1:$LB_PORT
  default_backend app
backend app
  balance roundrobin
  option httpchk GET /health
  default-server inter 500ms fall 2 rise 2
  server a1 127.0.0.1:$(APP_PORT a1) check
  server a2 127.0.0.1:$(APP_PORT a2) check
  server a3 127.0.0.1:$(APP_PORT a3) check
  server g1 127.0.0.1:$(APP_PORT g1) check weight 0
  server g2 127.0.0.1:$(APP_PORT g2) check weight 0
EOF
  haproxy -db -f "$d/haproxy.cfg" >>"$d/haproxy.log" 2>&1 </dev/null &
  echo $! >"$d/haproxy.pid"
  wait_for 10 "haproxy on $LB_PORT" curl -sf "http://127.0.0.1:$LB_PORT/health"
}

# --- backups and the restore drill -------------------------------------------------------------
# The app's database through whichever node is the primary now (directly, not through the fault
# proxy: backups and restores are the operator's side channel, which a restore's cut leaves).
primary_dsn() {
  echo "host=127.0.0.1,127.0.0.1 port=$(PG_PORT pg1),$(PG_PORT pg2) user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2"
}

# One backup of the notes table (and its id sequence), pg_dump's custom format, named by the
# time (ms since the epoch) just before pg_dump started: its snapshot is no older. Written whole
# or not at all; the newest three are kept. Taken under backups/.lock, and only while no restore
# is under way: `restore start` takes the same lock to begin, so a backup of the lost data can
# never become the newest.
backup_once() {
  local d="$DIR/backups"
  (
    flock 9
    [ "$(cat "$DIR/restore/state" 2>/dev/null || echo done)" = done ] || exit 0
    local t
    t=$(date +%s%3N)
    if "$PG_BIN/pg_dump" -d "$(primary_dsn)" -Fc -t notes -f "$d/.notes-$t.tmp" 2>>"$d/backup.log"; then
      mv -f "$d/.notes-$t.tmp" "$d/notes-$t.dump"
      find "$d" -maxdepth 1 -name 'notes-*.dump' | sort | head -n -3 | xargs -r rm -f
    else
      rm -f "$d/.notes-$t.tmp"
    fi
  ) 9>"$d/.lock"
}

# Every CHAOS_STACK_BACKUP_EVERY seconds (default 10) a backup.
backup_loop() {
  while :; do
    backup_once
    sleep "$BACKUP_EVERY"
  done
}

start_backups() {
  local d="$DIR/backups"
  mkdir -p "$d"
  if pid_alive "$d/loop.pid"; then return; fi
  setsid bash "$DIR/local-stack.sh" backup-loop </dev/null >>"$d/backup.log" 2>&1 &
  echo $! >"$d/loop.pid"
}

# A line of the restore's log (read by the target's [logs.restore]), in Patroni's time format.
rlog() { printf '%s restore: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S,%3N')" "$*" >>"$DIR/restore/restore.log"; }

# The restore's step, written whole (a kill mid-write never leaves half a word).
set_state() { echo "$1" >"$DIR/restore/state.tmp" && mv -f "$DIR/restore/state.tmp" "$DIR/restore/state"; }
get_state() { cat "$DIR/restore/state" 2>/dev/null || echo done; }

# Whether the restore job job.pid names runs: its command line is a restore job's and it is no
# zombie (a pid reused by another program, or a job ended and not reaped, is not the job).
job_alive() {
  local f="$DIR/restore/job.pid" pid st
  [ -s "$f" ] || return 1
  pid=$(head -n1 "$f")
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "restore run" || return 1
  st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
  [ -n "$st" ] && [ "$st" != Z ]
}

# Hold (PUT) or release (DELETE) a partition of the app's links to both PostgreSQL nodes, as
# holder `restore`, leased for the restore's time and 2 minutes more (the proxy heals it by
# itself after that).
db_links() {
  local n lease=$(((RESTORE_TIME + 120) * 1000))
  for n in pg1 pg2; do
    curl -sfS --max-time 5 -o /dev/null -X "$1" \
      "http://127.0.0.1:$PROXY_CONTROL/proxies/db-$n/faults/partition?by=restore&lease_ms=$lease" || return 1
  done
}

# The newest backup's data put back in one transaction: the table emptied, then filled (its id
# sequence set back to the backup's, as a restore from it does). With no backup, left empty,
# as a restore from nothing would.
restore_data() {
  local f
  f=$(find "$DIR/backups" -maxdepth 1 -name 'notes-*.dump' | sort | tail -n1)
  if [ -z "$f" ]; then
    psql -d "$(primary_dsn)" -v ON_ERROR_STOP=1 -qc 'TRUNCATE notes'
    rlog "no backup to restore from: the notes table stays empty"
    return
  fi
  { echo 'BEGIN;'; echo 'TRUNCATE notes;'; "$PG_BIN/pg_restore" --data-only -f - "$f"; echo 'COMMIT;'; } |
    psql -d "$(primary_dsn)" -v ON_ERROR_STOP=1 -q >/dev/null
  local t=${f##*/notes-}
  t=${t%.dump}
  rlog "restored from $(basename "$f"), taken at $(date -u -d "@$((t / 1000)).$(printf %03d $((t % 1000)))" '+%H:%M:%S.%3N')"
}

# The restore job (`restore start` runs it in a session of its own): the loss — the app cut off
# from the database, every client session ended, then every row of the notes table deleted on
# the primary, so on every instance — then the restore from the newest backup, then the app's
# links back. Each step is written to restore/state (truncating: the table may be empty
# already), so `restore finish` knows what is left after an interruption; a failed step is
# logged where the report reads it.
restore_run() {
  trap 'rlog "the restore job failed at step $(get_state)"' ERR
  db_links PUT
  set_state cut
  rlog "the app cut off from the database"
  # Every client session ends with the database (Patroni's own and replication stay).
  psql -d "$(primary_dsn)" -v ON_ERROR_STOP=1 -qAt -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name NOT LIKE 'Patroni%'" >/dev/null
  set_state truncating
  psql -d "$(primary_dsn)" -v ON_ERROR_STOP=1 -qc 'TRUNCATE notes'
  set_state lost
  rlog "the database lost: the notes table emptied on every instance"
  if [ "$RESTORE_TIME" != 0 ]; then
    rlog "restoring for ${RESTORE_TIME}s (CHAOS_STACK_RESTORE_TIME)"
    sleep "$RESTORE_TIME"
  fi
  restore_data
  set_state restored
  db_links DELETE
  set_state done
  rlog "the app's links to the database back"
}

# `restore start` (the fault's inject): the job started, detached, under the backups' lock (no
# backup is under way, and none starts until the restore is done); returns once the job has cut
# the app off (10 s at most), failing with its log when it ended before that.
restore_start() {
  local d="$DIR/restore"
  mkdir -p "$d" "$DIR/backups"
  if job_alive; then die "a restore is under way (pid $(head -n1 "$d/job.pid"))"; fi
  [ "$(get_state)" = done ] || die "the last restore stopped at '$(get_state)': run '$0 restore finish' first"
  (
    flock 9
    set_state start
  ) 9>"$DIR/backups/.lock"
  setsid bash "$DIR/local-stack.sh" restore run </dev/null >>"$d/job.log" 2>&1 &
  echo $! >"$d/job.pid"
  local deadline=$((SECONDS + 10))
  while [ "$(get_state)" = start ]; do
    if ! job_alive; then die "the restore job ended before cutting the app off: $(tail -n 5 "$d/job.log")"; fi
    if [ $SECONDS -ge $deadline ]; then die "the restore job has not cut the app off within 10 s"; fi
    sleep 0.05
  done
}

# `restore finish` (the revert, also what the guardian runs when the harness died): waits for
# the job (60 s at most, then stops it; a CHAOS_STACK_RESTORE_TIME longer than the fault's `for`
# is cut short here); if it stopped with the data lost (or maybe lost), restores it; then the
# app's links back. Idempotent: with no restore under way it does nothing. A fault proxy that
# does not answer holds no partition (its holds die with it).
restore_finish() {
  local d="$DIR/restore" st
  if [ "$(get_state)" = done ] && ! job_alive; then return 0; fi
  local deadline=$((SECONDS + 60))
  while job_alive && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  if job_alive; then
    kill -KILL -- "-$(head -n1 "$d/job.pid")" 2>/dev/null || true
    rlog "the restore job did not end within 60 s: stopped"
  fi
  rm -f "$d/job.pid"
  st=$(get_state)
  case "$st" in
    done) return 0 ;;
    truncating | lost) restore_data ;;
    start | cut | restored) ;;
    *) die "restore/state holds '$st': not a step of the restore" ;;
  esac
  if ! db_links DELETE && port_open "$PROXY_CONTROL"; then die "the fault proxy would not give the app's links back"; fi
  set_state done
  rlog "finished after an interruption at '$st': the app's links to the database back"
}

# --- commands ----------------------------------------------------------------------------------
up() {
  for c in etcd patroni psql flock redis-server redis-sentinel redis-cli setpriv haproxy curl; do
    command -v "$c" >/dev/null || die "$c is not installed (apt-get install patroni etcd-server postgresql-15 redis-server redis-sentinel redis-tools haproxy curl)"
  done
  for c in postgres pg_dump pg_restore; do
    [ -x "$PG_BIN/$c" ] || die "no PostgreSQL ($c) at $PG_BIN (CHAOS_PG_BIN)"
  done
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  # The target file's start commands run this copy, with the settings of this `up` (the
  # binary by its absolute path: a start runs from wherever the run was started).
  local bin src
  bin=$(chaos_bin) || exit 1
  case "$bin" in /*) ;; *) bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" ;; esac
  src="${BASH_SOURCE[0]}"
  if ! [ "$src" -ef "$DIR/local-stack.sh" ]; then
    cp "$src" "$DIR/local-stack.sh.new" && mv -f "$DIR/local-stack.sh.new" "$DIR/local-stack.sh"
  fi
  {
    printf 'CHAOS_BIN=%q\n' "$bin"
    printf 'CHAOS_PG_BIN=%q\n' "$PG_BIN"
    printf 'CHAOS_STACK_SYNC=%q\n' "$SYNC"
    printf 'CHAOS_STACK_BACKUP_EVERY=%q\n' "$BACKUP_EVERY"
    printf 'CHAOS_STACK_PORT_BASE=${CHAOS_STACK_PORT_BASE:-%q}\n' "$BASE"
  } >"$DIR/stack.env"
  log "etcd on $ETCD"
  start_etcd
  # Before PostgreSQL: a replica reaches its leader only through the leader's repl-* link.
  start_proxy
  log "fault proxy: control on $PROXY_CONTROL, links db-pg1 $(PG_LINK pg1), db-pg2 $(PG_LINK pg2), repl-pg1 $(REPL_LINK pg1), repl-pg2 $(REPL_LINK pg2), cache-r1 $(REDIS_LINK r1), cache-r2 $(REDIS_LINK r2)"
  log "pg1 (leader) on $(PG_PORT pg1)"
  start_pg pg1
  wait_for 60 "pg1 leader" is_primary pg1
  log "pg2 (replica) on $(PG_PORT pg2)"
  start_pg pg2
  wait_for 60 "pg2 streaming" streams_to pg1
  log "redis r1 on $(REDIS_PORT r1), r2 on $(REDIS_PORT r2)"
  start_redis r1
  start_redis r2
  for s in s1 s2 s3; do start_sentinel "$s"; done
  log "sentinels on $(SENTINEL_PORT s1)..$(SENTINEL_PORT s3)"
  wait_for 30 "sentinels seeing each other and the replica" sentinel_ready
  for a in a1 a2 a3 g1 g2; do start_app "$a"; done
  log "app nodes on $(APP_PORT a1)..$(APP_PORT a3), green $(APP_PORT g1) $(APP_PORT g2)"
  start_lb
  log "haproxy on $LB_PORT"
  start_backups
  wait_for 30 "the first backup" compgen -G "$DIR/backups/notes-*.dump"
  log "backups of the notes table every ${BACKUP_EVERY}s in $DIR/backups"
  log "up: $DIR"
}

# Stop the process a pidfile names — only if its command line holds $2 (a reused pid of another
# program is left alone).
stop_pidfile() {
  local f=$1 want=$2
  [ -s "$f" ] || return 0
  local pid
  pid=$(head -n1 "$f")
  if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$want"; then return 0; fi
  if kill -0 "$pid" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

down() {
  [ -d "$DIR" ] || return 0
  stop_pidfile "$DIR/backups/loop.pid" backup-loop
  stop_pidfile "$DIR/restore/job.pid" "restore run"
  stop_pidfile "$DIR/lb/haproxy.pid" haproxy
  for a in a1 a2 a3 g1 g2; do stop_pidfile "$DIR/$a/app.pid" "app up"; done
  for s in s1 s2 s3; do stop_pidfile "$DIR/$s/sentinel.pid" redis; done
  for r in r1 r2; do stop_pidfile "$DIR/$r/redis.pid" redis; done
  stop_pidfile "$DIR/proxy/proxy.pid" "proxy up"
  for n in pg1 pg2; do
    stop_pidfile "$DIR/$n/patroni.pid" patroni
    stop_pidfile "$DIR/$n/data/postmaster.pid" postgres
  done
  stop_pidfile "$DIR/etcd/etcd.pid" etcd
  rm -rf "$DIR"
  log "down"
}

start_one() {
  case "$1" in
    etcd) start_etcd ;;
    pg1 | pg2) start_pg "$1" ;;
    r1 | r2) start_redis "$1" ;;
    s1 | s2 | s3) start_sentinel "$1" ;;
    a1 | a2 | a3 | g1 | g2) start_app "$1" ;;
    proxy) start_proxy ;;
    lb) start_lb ;;
    *) die "no node $1 (etcd, pg1, pg2, r1, r2, s1, s2, s3, proxy, a1, a2, a3, g1, g2, lb)" ;;
  esac
}

status() {
  for n in pg1 pg2; do
    local r="down"
    if is_primary "$n" 2>/dev/null; then r=primary; elif is_replica "$n" 2>/dev/null; then r=replica; fi
    echo "$n $r"
  done
  for n in r1 r2; do
    echo "$n $(redis-cli -p "$(REDIS_PORT "$n")" role 2>/dev/null | head -n1 || echo down)"
  done
  echo "sentinel primary $(redis-cli -p "$(SENTINEL_PORT s1)" sentinel get-master-addr-by-name chaos 2>/dev/null | tr '\n' ':' || echo down)"
}

# The target file for this stack: each node's pidfiles, role, zone, start command (the copy of
# this script in the stack's directory) and how it tells it is the primary (PostgreSQL: not in
# recovery; Redis: Sentinel's view); the logs of its HA machinery whose lines are events.
# One [proxies.NAME] section of the target file: NAME LISTEN_PORT UPSTREAM_PORT ZONE [ROLE].
proxy_toml() {
  printf '\n[proxies.%s]\nlisten = "127.0.0.1:%s"\nupstream = "127.0.0.1:%s"\nzone = "%s"\n' "$1" "$2" "$3" "$4"
  if [ -n "${5:-}" ]; then printf 'role = "%s"\n' "$5"; fi
}

target() {
  local z start setup
  start="CHAOS_STACK_DIR='$DIR' CHAOS_STACK_PORT_BASE=$BASE bash '$DIR/local-stack.sh' start"
  local start_restore="CHAOS_STACK_DIR='$DIR' CHAOS_STACK_PORT_BASE=$BASE bash '$DIR/local-stack.sh' restore"
  # How to bring this stack up, named by the harness when its proxy does not answer.
  setup="bash ci/local-stack.sh up"
  if [ "$DIR" != /tmp/chaos-local-stack ] || [ "$BASE" != 15400 ]; then
    setup="CHAOS_STACK_DIR='$DIR' CHAOS_STACK_PORT_BASE=$BASE $setup"
  fi
  cat <<TOML
# The local stack of ci/local-stack.sh (written by \`ci/local-stack.sh target\`; with its defaults
# this is scenarios/targets/local-stack.toml, \`--target local-stack\`). Start it first:
# \`bash ci/local-stack.sh up\`; stop it with \`bash ci/local-stack.sh down\`.
kind = "local"
description = "the local stack of ci/local-stack.sh: haproxy, three app nodes (two more, green, for cutovers), PostgreSQL under Patroni, Redis with Sentinel"
setup = "$setup"
base_url = "http://127.0.0.1:$LB_PORT"
proxy_control = "127.0.0.1:$PROXY_CONTROL"
lease = "15s"
state_dir = "$DIR/holds"
TOML
  for n in pg1 pg2; do
    z=a
    if [ "$n" = pg2 ]; then z=b; fi
    proxy_toml "db-$n" "$(PG_LINK $n)" "$(PG_PORT $n)" "$z" db
  done
  for n in pg1 pg2; do
    z=a
    if [ "$n" = pg2 ]; then z=b; fi
    proxy_toml "repl-$n" "$(REPL_LINK $n)" "$(PG_PORT $n)" "$z"
  done
  for n in r1 r2; do
    z=a
    if [ "$n" = r2 ]; then z=b; fi
    proxy_toml "cache-$n" "$(REDIS_LINK $n)" "$(REDIS_PORT $n)" "$z" cache
  done
  for n in pg1 pg2; do
    z=a
    if [ "$n" = pg2 ]; then z=b; fi
    cat <<TOML

[processes.$n]
pidfiles = ["$DIR/$n/patroni.pid", "$DIR/$n/data/postmaster.pid"]
role = "db"
zone = "$z"
start = "$start $n"
start_timeout = "60s"
primary_if = "PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p $(PG_PORT $n) -U postgres -d postgres -tAqc 'select pg_is_in_recovery()' | grep -qx f"
TOML
  done
  for n in a1 a2 a3; do
    cat <<TOML

[processes.$n]
pidfiles = ["$DIR/$n/app.pid"]
role = "app"
zone = "$(APP_ZONE $n)"
start = "$start $n"
start_timeout = "60s"
TOML
  done
  for n in pg1 pg2; do
    cat <<TOML

[logs.patroni-$n]
file = "$DIR/$n/patroni.log"
lines = ["promoted self to leader", "Demoting self", "demoted self"]
TOML
  done
  local faults="http://127.0.0.1:$PROXY_CONTROL/proxies"
  cat <<TOML

# Replication cut off, both ways (the repl-* links blackholed; the app's links stay): a replica
# falls behind while the primary takes writes. Held for a minute at most if nobody reverts.
[commands.cut-replication]
inject = "for n in pg1 pg2; do curl -sfS -X PUT '$faults/repl-'\$n'/faults/partition?by=command:cut-replication&lease_ms=60000' || exit 1; done"
revert = "for n in pg1 pg2; do curl -sfS -X DELETE '$faults/repl-'\$n'/faults/partition?by=command:cut-replication' || exit 1; done"
timeout = "10s"

[logs.sentinel]
file = "$DIR/s1/sentinel.log"
lines = ["+sdown master", "-sdown master", "+odown", "+switch-master", "+failover-end"]

[logs.haproxy]
file = "$DIR/lb/haproxy.log"
lines = ["is DOWN", "is UP", "has no server available"]
TOML
  for n in r1 r2; do
    z=a
    if [ "$n" = r2 ]; then z=b; fi
    cat <<TOML

[processes.$n]
pidfiles = ["$DIR/$n/redis.pid"]
role = "cache"
zone = "$z"
start = "$start $n"
start_timeout = "60s"
primary_if = "redis-cli -p $(SENTINEL_PORT s1) sentinel get-master-addr-by-name chaos | grep -qx $(REDIS_LINK $n)"
TOML
  done
  cat <<TOML

# The restore drill (db-restore): the app cut off from PostgreSQL, the notes table emptied on
# every instance, then filled from the newest backup (pg_dump every ${BACKUP_EVERY}s by the stack, in
# $DIR/backups) and the links back; the revert waits for that, or finishes it.
[restore]
inject = "$start_restore start"
revert = "$start_restore finish"
timeout = "90s"

[logs.restore]
file = "$DIR/restore/restore.log"
lines = ["restore: "]

# haproxy's runtime API and its backend's two groups: a blue-green fault moves the requests
# from a1..a3 (v1) to g1, g2 (v2) by their weights.
[lb]
haproxy = "127.0.0.1:$HAPROXY_API"
backend = "app"
blue = ["a1", "a2", "a3"]
green = ["g1", "g2"]
TOML
}

case "${1:-}" in
  target) target ;;
  up) up ;;
  down) down ;;
  start) start_one "${2:?start NODE}" ;;
  status) status ;;
  backup-loop) backup_loop ;;
  restore)
    case "${2:-}" in
      start) restore_start ;;
      run) restore_run ;;
      finish) restore_finish ;;
      *) echo "usage: $0 restore start|finish" >&2; exit 2 ;;
    esac
    ;;
  *) echo "usage: $0 up|down|start NODE|status|target|restore start|restore finish" >&2; exit 2 ;;
esac
