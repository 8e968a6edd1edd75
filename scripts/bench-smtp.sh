#!/usr/bin/env bash
# Ingest load benchmark (not a test): inboxgate against Postfix, same load, side by side.
#
# Load: smtp-source with 1 and 20 concurrent sessions, a connection per message, 4 KB
# messages (like `smtp-source -s 20 -m 2000 -l 4096`). Postfix (Debian package, set up by
# ../shared/tools/postfix-anchor.sh on 127.0.0.1:2600) queues with fsync and discards on
# delivery; inboxgate stores into SQLite and acknowledges after commit. Both get the same
# runs, alternating (the order flips every round), each after the Postfix queue drained.
# Prints msg/s per round, the median for each side, the ratio inboxgate/postfix,
# inboxgate's peak RSS (VmHWM), and checks inboxgate stored every message it accepted.
#
# Env: ROUNDS (default 5), MESSAGES per run (default 2000), SESSIONS (default "1 20"),
# WARMUP messages sent untimed to each side first (default 200; 0 to skip).
# AUTH=1 turns inboxgate's SPF/DKIM/DMARC checks on, against a private dnsmasq standing in
# for the local caching resolver a mail server runs (Postfix here checks nothing, so the
# default, AUTH=0, compares like with like).
# Needs root (the anchor script installs packages and rewrites /etc/postfix/main.cf):
# run it on a test machine only.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-"1 20"}
WARMUP=${WARMUP:-200}
AUTH=${AUTH:-0}
SIZE=4096
IG_PORT=2526
PF_PORT=2600

cd "$(dirname "$0")/.."
REPO=$(pwd)

log() { printf '%s\n' "$*" >&2; }
die() { log "bench-smtp: $*"; exit 1; }


# ---- Postfix anchor -------------------------------------------------------------
# shellcheck source=scripts/lib-bench.sh
. "$REPO/scripts/lib-bench.sh"
ANCHOR="$REPO/../shared/tools/postfix-anchor.sh"
[ -f "$ANCHOR" ] || die "missing $ANCHOR (shared/ must sit beside the repo)"
log "== starting the Postfix anchor on 127.0.0.1:$PF_PORT"
bash "$ANCHOR"
command -v smtp-source >/dev/null || die "smtp-source not found after the anchor script"

# ---- inboxgate ------------------------------------------------------------------
log "== building inboxgate (release)"
cargo build --release
BIN="$REPO/target/release/inboxgate"
[ -x "$BIN" ] || die "no binary at $BIN"

port_open "$IG_PORT" && die "127.0.0.1:$IG_PORT is already in use"

TMP=$(mktemp -d -t inboxgate-bench.XXXXXX)
IG_PID=
DNS_PID=""
cleanup() {
  [ -n "$DNS_PID" ] && kill "$DNS_PID" 2>/dev/null || true
  if [ -n "$IG_PID" ] && kill -0 "$IG_PID" 2>/dev/null; then
    kill -TERM "$IG_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$IG_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$IG_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$TMP/data"
cat > "$TMP/bench.toml" <<EOF
[server]
hostname = "mx.bench.test"
data_dir = "$TMP/data"

[smtp]
listen = ["127.0.0.1:$IG_PORT"]

EOF
bench_inbox_toml >>"$TMP/bench.toml"
if [ "$AUTH" = 1 ]; then
  command -v dnsmasq >/dev/null || die "AUTH=1 needs dnsmasq (Debian dnsmasq-base)"
  DNS_PORT=5353
  dnsmasq --no-daemon --port=$DNS_PORT --listen-address=127.0.0.1 --bind-interfaces \
    --no-resolv --no-hosts --conf-file=/dev/null --pid-file= --local=/example/ \
    --txt-record=sender.example,"v=spf1 ip4:127.0.0.1 -all" \
    --txt-record=_dmarc.sender.example,"v=DMARC1; p=reject" >/dev/null 2>&1 &
  DNS_PID=$!
  printf 'check_authentication = true\nnameservers = ["127.0.0.1:%s"]\n' "$DNS_PORT" >>"$TMP/bench.toml"
  log "== SPF/DKIM/DMARC on, resolver: dnsmasq on 127.0.0.1:$DNS_PORT"
else
  printf 'check_authentication = false\n' >>"$TMP/bench.toml"
fi

"$BIN" --config "$TMP/bench.toml" check-config || die "bench config rejected"

log "== starting inboxgate on 127.0.0.1:$IG_PORT (data in $TMP/data)"
bench_serve "$TMP/bench.toml" "$TMP/serve.log" "$IG_PORT" inboxgate
IG_PID=$BENCH_PID

# ---- the runs -------------------------------------------------------------------
# Waits (at most 120 s) until Postfix has delivered (discarded) its queue, so that one
# side's runs do not pay for the other's background work.
postfix_drain() {
  for _ in $(seq 1200); do
    postqueue -p 2>/dev/null | grep -q 'Mail queue is empty' && return 0
    sleep 0.1
  done
  log "   (Postfix queue not empty after 120 s; going on)"
}

# run NAME PORT RCPT SESSIONS -> prints msg/s, or "fail"
run() {
  local name=$1 port=$2 rcpt=$3 s=$4 t0 t1
  postfix_drain
  t0=$(date +%s.%N)
  if ! smtp-source -s "$s" -m "$MESSAGES" -l "$SIZE" -f bench@sender.example -t "$rcpt" \
      "127.0.0.1:$port" 2>"$TMP/smtp-source.err"; then
    log "   $name: smtp-source failed: $(tail -n 3 "$TMP/smtp-source.err")"
    echo fail
    return
  fi
  t1=$(date +%s.%N)
  awk -v m="$MESSAGES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", m / (b - a) }'
}

median() { # numbers on stdin ("fail" lines ignored) -> median, or "n/a"
  { grep -v '^fail$' || true; } | sort -g | awk '{ v[NR] = $1 }
    END { if (NR == 0) { print "n/a"; exit }
          if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

SENT=0        # messages inboxgate accepted in runs that completed
FAILED_IG=0   # inboxgate runs that did not complete (count of their messages unknown)
SUMMARY=()
if [ "$WARMUP" -gt 0 ]; then
  # Untimed: Postfix spawns its smtpd processes, inboxgate opens and warms its store.
  log "== warm-up: $WARMUP messages to each side"
  postfix_drain
  smtp-source -s 4 -m "$WARMUP" -l "$SIZE" -f bench@sender.example -t x@acme.hs-inbox.test \
    "127.0.0.1:$PF_PORT" || die "warm-up against Postfix failed"
  smtp-source -s 4 -m "$WARMUP" -l "$SIZE" -f bench@sender.example \
    -t support@acme.hs-inbox.test "127.0.0.1:$IG_PORT" || die "warm-up against inboxgate failed"
  SENT=$((SENT + WARMUP))
fi
log "== $ROUNDS rounds of $MESSAGES messages of $SIZE bytes, a connection per message"
for s in $SESSIONS; do
  ig_rates=() pf_rates=()
  printf '\n-- %s session(s)\n' "$s"
  printf '%-6s %14s %14s\n' round 'inboxgate/s' 'postfix/s'
  for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then
      ig=$(run inboxgate "$IG_PORT" support@acme.hs-inbox.test "$s")
      pf=$(run postfix "$PF_PORT" x@acme.hs-inbox.test "$s")
    else
      pf=$(run postfix "$PF_PORT" x@acme.hs-inbox.test "$s")
      ig=$(run inboxgate "$IG_PORT" support@acme.hs-inbox.test "$s")
    fi
    if [ "$ig" = fail ]; then FAILED_IG=$((FAILED_IG + 1)); else SENT=$((SENT + MESSAGES)); fi
    ig_rates+=("$ig") pf_rates+=("$pf")
    printf '%-6s %14s %14s\n' "$r" "$ig" "$pf"
  done
  ig_med=$(printf '%s\n' "${ig_rates[@]}" | median)
  pf_med=$(printf '%s\n' "${pf_rates[@]}" | median)
  ratio=$(awk -v a="$ig_med" -v b="$pf_med" 'BEGIN {
    if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f\n", a / b }')
  printf '%-6s %14s %14s   ratio inboxgate/postfix %s\n' median "$ig_med" "$pf_med" "$ratio"
  SUMMARY+=("$(printf 'sessions=%-3s inboxgate %8s msg/s   postfix %8s msg/s   ratio %s' \
    "$s" "$ig_med" "$pf_med" "$ratio")")
done

# ---- peak memory, stored count, stop --------------------------------------------
kill -0 "$IG_PID" 2>/dev/null || { cat "$TMP/serve.log" >&2; die "inboxgate died during the runs"; }
HWM=$(awk '/^VmHWM:/ { print $2, $3 }' "/proc/$IG_PID/status")

STORED=$("$BIN" --config "$TMP/bench.toml" conversations list --json |
  python3 -c 'import json,sys; print(sum(c["message_count"] for c in json.load(sys.stdin)))') ||
  STORED="error"

log "== stopping inboxgate (SIGTERM)"
kill -TERM "$IG_PID"
STOP_RC=0
for _ in $(seq 300); do kill -0 "$IG_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$IG_PID" 2>/dev/null; then
  log "   inboxgate still running 30 s after SIGTERM"
  STOP_RC=1
else
  wait "$IG_PID" || STOP_RC=$?
fi
IG_PID=

printf '\n== summary (%s rounds x %s messages of %s bytes)\n' "$ROUNDS" "$MESSAGES" "$SIZE"
printf '%s\n' "${SUMMARY[@]}"
printf 'inboxgate peak RSS (VmHWM): %s\n' "$HWM"
printf 'inboxgate stored %s of %s messages sent' "$STORED" "$SENT"
[ "$FAILED_IG" -gt 0 ] && printf ' (%s run(s) failed part-way, not counted)' "$FAILED_IG"
printf '\n'
printf 'inboxgate exit status after SIGTERM: %s\n' "$STOP_RC"

if [ "$STORED" != "$SENT" ] && [ "$FAILED_IG" -eq 0 ]; then
  die "stored count differs from sent count"
fi
