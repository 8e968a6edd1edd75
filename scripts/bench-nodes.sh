#!/usr/bin/env bash
# Ingest load benchmark across store backends (not a test): Postfix, one inboxgate node
# on SQLite, one node on PostgreSQL, and two nodes sharing that PostgreSQL database,
# the same load side by side in one run.
#
# Load: smtp-source, a connection per message, 4 KB messages, at 1 and 20 concurrent
# sessions (as scripts/bench-smtp.sh). Targets:
#   postfix  the anchor (../shared/tools/postfix-anchor.sh, 127.0.0.1:2600): fsync'd
#            queue, discarded on delivery
#   sqlite   one node, embedded SQLite store
#   pg1      one node (mx1) on PostgreSQL
#   pg2      two nodes (mx1, mx2) on the same PostgreSQL database, the load split:
#            two smtp-source processes at once, one per node, each with half the
#            sessions (at least one: at SESSIONS=1 that is one per node, two in all) and
#            half the messages; the rate is all messages over the wall time of both.
# Every node acknowledges after its commit; PostgreSQL runs with fsync and
# synchronous_commit on (scripts/lib-pg.sh: a private cluster, default settings but
# shared_buffers = 256MB), so each 250 is durable on every side.
# Each round runs every target once, the order reversed every other round, each run
# after Postfix's queue drained and every node's search indexing caught up (so a run
# does not pay for the previous one's background work). Prints msg/s per round, the
# medians, each median's ratio to Postfix's, each node's peak RSS (VmHWM), and checks
# that every message accepted was stored (SQLite: the node's file; PostgreSQL: the
# shared database, pg1 + pg2 runs together).
#
# Env: ROUNDS (default 3), MESSAGES per run (default 2000), SESSIONS (default "1 20"),
# BACKENDS (default "sqlite pg1 pg2"; Postfix always runs), WARMUP messages sent untimed
# to each target first (default 200; 0 to skip).
# Needs root (Postfix's anchor rewrites /etc/postfix/main.cf; PostgreSQL runs as the
# postgres user) and Debian's postgresql-15: run it on a test machine only.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-"1 20"}
BACKENDS=${BACKENDS:-"sqlite pg1 pg2"}
WARMUP=${WARMUP:-200}
SIZE=4096
PF_PORT=2600
PF_RCPT=x@acme.hs-inbox.test
IG_RCPT=support@acme.hs-inbox.test
DB=inboxgate_bench

cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/lib-pg.sh
. "$REPO/scripts/lib-pg.sh"
# shellcheck source=scripts/lib-bench.sh
. "$REPO/scripts/lib-bench.sh"

log() { printf '%s\n' "$*" >&2; }
die() { log "bench-nodes: $*"; exit 1; }
wants() { case " $BACKENDS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

for b in $BACKENDS; do
  case $b in sqlite | pg1 | pg2) ;; *) die "unknown backend $b (sqlite, pg1, pg2)" ;; esac
done
NODES=()
wants sqlite && NODES+=(sqlite)
{ wants pg1 || wants pg2; } && NODES+=(mx1)
wants pg2 && NODES+=(mx2)

# ---- Postfix anchor, build ------------------------------------------------------
ANCHOR="$REPO/../shared/tools/postfix-anchor.sh"
[ -f "$ANCHOR" ] || die "missing $ANCHOR (shared/ must sit beside the repo)"
log "== starting the Postfix anchor on 127.0.0.1:$PF_PORT"
bash "$ANCHOR"
command -v smtp-source >/dev/null || die "smtp-source not found after the anchor script"
command -v sqlite3 >/dev/null || die "sqlite3 (Debian sqlite3) is needed to check the SQLite store"

log "== building inboxgate (release)"
cargo build --release
BIN="$REPO/target/release/inboxgate"
[ -x "$BIN" ] || die "no binary at $BIN"

TMP=$(mktemp -d -t inboxgate-bench-nodes.XXXXXX)
PG_TMP=$(mktemp -d -t inboxgate-bench-pg.XXXXXX)
declare -A PID PORT
STOP_RC=
stop_node() { # NAME: SIGTERM, then SIGKILL after 10 s; sets STOP_RC (exit status or "killed")
  local pid=${PID[$1]:-}
  STOP_RC=none
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    STOP_RC=killed
  else
    STOP_RC=0
    wait "$pid" 2>/dev/null || STOP_RC=$?
  fi
  PID[$1]=
}
cleanup() {
  for n in "${NODES[@]}"; do stop_node "$n"; done
  pg_stop
  rm -rf "$TMP" "$PG_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- PostgreSQL -----------------------------------------------------------------
if [ "${#NODES[@]}" -gt 1 ] || [ "${NODES[0]:-}" != sqlite ]; then
  pg_start "$PG_TMP" || die "PostgreSQL did not start"
  pg_createdb "$DB"
fi

# ---- nodes ----------------------------------------------------------------------
node_config() { # NAME SMTP_PORT -> writes $TMP/NAME.toml
  local name=$1 port=$2 store=""
  [ "$name" != sqlite ] &&
    store=$(printf '[store]\nbackend = "postgres"\nurl = "postgres://postgres@127.0.0.1:%s/%s"\n' \
      "$PG_PORT" "$DB")
  mkdir -p "$TMP/$name"
  cat >"$TMP/$name.toml" <<EOF
[server]
hostname = "$name.bench.test"
data_dir = "$TMP/$name"
node = "$name"

[smtp]
listen = ["127.0.0.1:$port"]

[api]
listen = "127.0.0.1:0"

$store

EOF
  bench_inbox_toml >>"$TMP/$name.toml"
  printf 'check_authentication = false\n' >>"$TMP/$name.toml"
}

start_node() { # NAME
  local name=$1 port
  port=$(pg_free_port)
  node_config "$name" "$port"
  "$BIN" --config "$TMP/$name.toml" check-config >/dev/null || die "$name: bench config rejected"
  bench_serve "$TMP/$name.toml" "$TMP/$name.log" "$port" "$name"
  PID[$name]=$BENCH_PID
  PORT[$name]=$port
  log "== node $name on 127.0.0.1:$port ($([ "$name" = sqlite ] && echo SQLite || echo PostgreSQL))"
}
for n in "${NODES[@]}"; do start_node "$n"; done

# ---- quiet between runs -----------------------------------------------------------
# Waits (at most 120 s each) until Postfix's queue is empty and every node's search
# index has caught up with what it stored.
wait_for() { # DESCRIPTION COMMAND...: until COMMAND prints 0
  for _ in $(seq 1200); do
    [ "$("${@:2}" 2>/dev/null)" = 0 ] && return 0
    sleep 0.1
  done
  log "   ($1 not done after 120 s; going on)"
}
postfix_queued() { postqueue -p 2>/dev/null | grep -q 'Mail queue is empty' && echo 0 || echo 1; }
sqlite_unindexed() {
  sqlite3 -readonly "$TMP/sqlite/inboxgate.db" \
    "SELECT (SELECT COALESCE(MAX(id), 0) FROM messages) - last_message FROM fts_progress"
}
pg_unindexed() { pg_psql "$DB" "SELECT COUNT(*) FROM search_pending"; }
quiet() {
  wait_for "Postfix queue" postfix_queued
  wants sqlite && wait_for "SQLite indexing" sqlite_unindexed
  [ -n "$PG_PORT" ] && wait_for "PostgreSQL indexing" pg_unindexed
  return 0
}

# ---- the runs -------------------------------------------------------------------
source_to() { # PORT RCPT SESSIONS COUNT
  smtp-source -s "$3" -m "$4" -l "$SIZE" -f bench@sender.example -t "$2" "127.0.0.1:$1" \
    2>>"$TMP/smtp-source.err"
}

# run TARGET SESSIONS -> msg/s over the wall time, or "fail"
run() {
  local target=$1 s=$2 t0 t1 rc=0 a b half
  quiet
  t0=$(date +%s.%N)
  case $target in
    postfix) source_to "$PF_PORT" "$PF_RCPT" "$s" "$MESSAGES" || rc=1 ;;
    sqlite) source_to "${PORT[sqlite]}" "$IG_RCPT" "$s" "$MESSAGES" || rc=1 ;;
    pg1) source_to "${PORT[mx1]}" "$IG_RCPT" "$s" "$MESSAGES" || rc=1 ;;
    pg2)
      half=$((s / 2)); [ "$half" -ge 1 ] || half=1
      source_to "${PORT[mx1]}" "$IG_RCPT" "$half" $((MESSAGES / 2)) & a=$!
      source_to "${PORT[mx2]}" "$IG_RCPT" "$half" $((MESSAGES - MESSAGES / 2)) & b=$!
      wait "$a" || rc=1
      wait "$b" || rc=1
      ;;
  esac
  t1=$(date +%s.%N)
  if [ "$rc" != 0 ]; then
    log "   $target: smtp-source failed: $(tail -n 3 "$TMP/smtp-source.err")"
    echo fail
    return
  fi
  awk -v m="$MESSAGES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", m / (b - a) }'
}

median() { # numbers on stdin ("fail" lines ignored) -> median, or "n/a"
  { grep -v '^fail$' || true; } | sort -g | awk '{ v[NR] = $1 }
    END { if (NR == 0) { print "n/a"; exit }
          if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
  if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }

# Messages each store accepted in completed runs, and runs that failed part-way.
declare -A SENT=([sqlite]=0 [pg]=0) FAILED=([sqlite]=0 [pg]=0)
store_of() { [ "$1" = sqlite ] && echo sqlite || echo pg; }
TARGETS=(postfix $BACKENDS)

if [ "$WARMUP" -gt 0 ]; then
  # Untimed: Postfix spawns its smtpd processes, nodes open and warm their stores.
  log "== warm-up: $WARMUP messages to Postfix and each node"
  quiet
  source_to "$PF_PORT" "$PF_RCPT" 4 "$WARMUP" || die "warm-up against Postfix failed"
  for n in "${NODES[@]}"; do
    source_to "${PORT[$n]}" "$IG_RCPT" 4 "$WARMUP" || die "warm-up against $n failed"
    st=$(store_of "$n")
    SENT[$st]=$((SENT[$st] + WARMUP))
  done
fi

log "== $ROUNDS rounds of $MESSAGES messages of $SIZE bytes, a connection per message"
SUMMARY=()
for s in $SESSIONS; do
  declare -A RATES=()
  printf '\n-- %s session(s)%s\n' "$s" \
    "$( { wants pg2 && [ "$s" -lt 2 ]; } && echo ' (pg2: one per node, two in all)')"
  printf '%-6s' round; printf ' %12s' "${TARGETS[@]/%//s}"; printf '\n'
  for r in $(seq "$ROUNDS"); do
    order=("${TARGETS[@]}")
    if [ $((r % 2)) -eq 0 ]; then
      order=(); for ((i = ${#TARGETS[@]} - 1; i >= 0; i--)); do order+=("${TARGETS[$i]}"); done
    fi
    declare -A this=()
    for t in "${order[@]}"; do
      this[$t]=$(run "$t" "$s")
      RATES[$t]="${RATES[$t]:-} ${this[$t]}"
      if [ "$t" != postfix ]; then
        st=$(store_of "$t")
        if [ "${this[$t]}" = fail ]; then FAILED[$st]=$((FAILED[$st] + 1))
        else SENT[$st]=$((SENT[$st] + MESSAGES)); fi
      fi
    done
    printf '%-6s' "$r"; for t in "${TARGETS[@]}"; do printf ' %12s' "${this[$t]}"; done; printf '\n'
    unset this
  done
  declare -A MED=()
  for t in "${TARGETS[@]}"; do MED[$t]=$(printf '%s\n' ${RATES[$t]} | median); done
  printf '%-6s' median; for t in "${TARGETS[@]}"; do printf ' %12s' "${MED[$t]}"; done; printf '\n'
  printf '%-6s' ratio; for t in "${TARGETS[@]}"; do printf ' %12s' "$(ratio "${MED[$t]}" "${MED[postfix]}")"; done
  printf '   (median / Postfix median)\n'
  line=$(printf 'sessions=%-3s postfix %7s msg/s' "$s" "${MED[postfix]}")
  for t in $BACKENDS; do
    line+=$(printf ' | %s %7s (%s)' "$t" "${MED[$t]}" "$(ratio "${MED[$t]}" "${MED[postfix]}")")
  done
  SUMMARY+=("$line")
  unset RATES MED
done

# ---- peak memory, stored counts, stop -------------------------------------------
quiet
declare -A HWM STOPPED
for n in "${NODES[@]}"; do
  kill -0 "${PID[$n]}" 2>/dev/null || { cat "$TMP/$n.log" >&2; die "$n died during the runs"; }
  HWM[$n]=$(awk '/^VmHWM:/ { print $2, $3 }' "/proc/${PID[$n]}/status")
done
declare -A STORED
wants sqlite && STORED[sqlite]=$(sqlite3 -readonly "$TMP/sqlite/inboxgate.db" \
  "SELECT COUNT(*) FROM messages WHERE direction = 'in'" || echo error)
[ -n "$PG_PORT" ] && STORED[pg]=$(pg_psql "$DB" \
  "SELECT COUNT(*) FROM messages WHERE direction = 'in'" || echo error)
log "== stopping the nodes (SIGTERM)"
for n in "${NODES[@]}"; do stop_node "$n"; STOPPED[$n]=$STOP_RC; done

printf '\n== summary (%s rounds x %s messages of %s bytes; medians in msg/s, ratio to Postfix)\n' \
  "$ROUNDS" "$MESSAGES" "$SIZE"
printf '%s\n' "${SUMMARY[@]}"
for n in "${NODES[@]}"; do
  printf 'node %-6s peak RSS (VmHWM) %s, exit status after SIGTERM %s\n' "$n" "${HWM[$n]}" "${STOPPED[$n]}"
done
BAD=0
for st in sqlite pg; do
  [ -n "${STORED[$st]:-}" ] || continue
  printf '%-6s store holds %s of %s messages accepted' "$st" "${STORED[$st]}" "${SENT[$st]}"
  [ "${FAILED[$st]}" -gt 0 ] && printf ' (%s run(s) failed part-way, not counted)' "${FAILED[$st]}"
  printf '\n'
  [ "${STORED[$st]}" = "${SENT[$st]}" ] || [ "${FAILED[$st]}" -gt 0 ] || BAD=1
done
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
[ "$BAD" = 0 ] || die "a stored count differs from the accepted count"
for n in "${NODES[@]}"; do [ "${STOPPED[$n]}" = 0 ] || die "$n did not exit cleanly"; done
