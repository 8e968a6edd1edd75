#!/usr/bin/env bash
# Outbound delivery benchmark (not a test): inboxgate's queue against Postfix's, same
# messages, same receiver.
#
# Receiver: Postfix's `smtp-sink` on 127.0.0.1:$SINK_PORT (accepts and forgets).
# inboxgate: `examples/bench_outbound.rs` queues COUNT replies (one recipient, ~1.5 kB)
# in a fresh store through the store's filing function, starts the real daemon
# (release binary, relay = the sink, tls none) and times until no delivery is pending;
# it reports msg/s and the daemon's peak RSS (VmHWM).
# Postfix: the anchor Postfix (../shared/tools/postfix-anchor.sh, 127.0.0.1:2600) gets a
# transport sending bench.sink.test to the sink; `smtp-source` submits COUNT messages of
# the same size into it and the run is timed until its log shows all of them sent.
# Prints each round, the medians and the ratio inboxgate/postfix.
#
# Env: ROUNDS (default 3), COUNT (default 10000), SINK_PORT (default 2626).
# Needs root (the anchor script installs packages and rewrites /etc/postfix): run it on
# a test machine only.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-10000}
SINK_PORT=${SINK_PORT:-2626}
PF_PORT=2600
PF_LOG=/var/log/postfix.log
SIZE=1500

cd "$(dirname "$0")/.."
REPO=$(pwd)
log() { printf '%s\n' "$*" >&2; }

bash "$REPO/../shared/tools/postfix-anchor.sh"
cargo build --release --bin inboxgate --example bench_outbound >&2

smtp-sink -u nobody -m 200 "127.0.0.1:$SINK_PORT" 1024 &
SINK=$!
trap 'kill $SINK 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$SINK_PORT) 2>/dev/null && break; sleep 0.1; done

# Postfix relays the bench domain to the sink (additive to the anchor's discard domain).
postconf -e "relay_domains = acme.hs-inbox.test bench.sink.test" \
  "transport_maps = inline:{acme.hs-inbox.test=discard:, bench.sink.test=smtp:[127.0.0.1]:$SINK_PORT}" \
  "smtp_destination_concurrency_limit = 20"
postfix reload >/dev/null 2>&1
sleep 1

postfix_sent() { grep -c 'bench.sink.test>.*status=sent' "$PF_LOG" 2>/dev/null || true; }

postfix_round() {
  local before start now
  before=$(postfix_sent)
  start=$(date +%s.%N)
  smtp-source -s 20 -m "$COUNT" -l "$SIZE" -f bench@bench.example \
    -t customer@bench.sink.test "127.0.0.1:$PF_PORT"
  while [ $(( $(postfix_sent) - before )) -lt "$COUNT" ]; do sleep 0.05; done
  now=$(date +%s.%N)
  awk -v n="$COUNT" -v a="$start" -v b="$now" 'BEGIN { printf "%.0f", n / (b - a) }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

ig=() pf=() rss=()
for round in $(seq "$ROUNDS"); do
  out=$(COUNT=$COUNT SINK_PORT=$SINK_PORT "$REPO/target/release/examples/bench_outbound")
  log "round $round: $out"
  ig+=("$(sed -E 's/.* = ([0-9]+) msg\/s.*/\1/' <<<"$out")")
  rss+=("$(sed -E 's/.*peak RSS ([0-9]+) MB.*/\1/' <<<"$out")")
  p=$(postfix_round)
  log "round $round: postfix: $COUNT relayed to the sink at $p msg/s"
  pf+=("$p")
done
IG=$(printf '%s\n' "${ig[@]}" | median)
PF=$(printf '%s\n' "${pf[@]}" | median)
RSS=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
echo "outbound, $COUNT messages of ~$SIZE B to smtp-sink, median of $ROUNDS round(s):"
echo "  inboxgate: $IG msg/s (peak RSS $RSS MB)"
echo "  postfix:   $PF msg/s"
awk -v a="$IG" -v b="$PF" 'BEGIN { printf "  ratio inboxgate/postfix: %.2f\n", a / b }'
