#!/usr/bin/env bash
# API latency on both store backends, side by side (a benchmark, not a test): runs the
# release `examples/bench_api` once on the embedded SQLite store (target/bench-api/N/)
# and once on a private PostgreSQL 15 cluster (scripts/lib-pg.sh: fsync on, default
# settings but shared_buffers = 256MB), each filled with the same 100,000 conversations
# / 300,000 messages by the example's own filling code through the store's API, then
# prints p50/p99 per request kind for both.
#
# The cluster is kept in target/bench-api/N-pgcluster/ (like the SQLite store, so a
# second run measures without refilling; FRESH_PG=1 starts it over) and stopped at the
# end. Env: CONVERSATIONS (default 100000), REQUESTS (default 200).
# Needs root (PostgreSQL runs as the postgres user) and Debian's postgresql-15.
set -euo pipefail

CONVERSATIONS=${CONVERSATIONS:-100000}
REQUESTS=${REQUESTS:-200}
FRESH_PG=${FRESH_PG:-0}
DB=inboxgate_bench
export CONVERSATIONS REQUESTS

cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/lib-pg.sh
. "$REPO/scripts/lib-pg.sh"
die() { printf 'bench-api-pg: %s\n' "$*" >&2; exit 1; }

cargo build --release --example bench_api
BENCH="$REPO/target/release/examples/bench_api"
[ -x "$BENCH" ] || die "no example binary at $BENCH"

OUT=$(mktemp -d -t inboxgate-bench-api.XXXXXX)
CLUSTER="$REPO/target/bench-api/$CONVERSATIONS-pgcluster"
trap 'pg_stop; rm -rf "$OUT"' EXIT
trap 'exit 130' INT TERM

printf '== SQLite (load average %s)\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
BACKEND=sqlite "$BENCH" | tee "$OUT/sqlite.txt"

[ "$FRESH_PG" = 1 ] && rm -rf "$CLUSTER"
pg_start "$CLUSTER" || die "PostgreSQL did not start"
pg_createdb "$DB"
printf '== PostgreSQL (load average %s)\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
BACKEND=postgres PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/$DB" "$BENCH" |
  tee "$OUT/postgres.txt"

# Side by side: the rows of both outputs matched by request (a row ends with p50, p99
# and the item count).
printf '\n== API latency, %s conversations, %s requests each (ms)\n' "$CONVERSATIONS" "$REQUESTS"
awk '
  function name(   i, k) { k = $1; for (i = 2; i <= NF - 3; i++) k = k " " $i; return k }
  FNR == 1 { file++ }
  /^store / { store[file] = $0; next }
  /^worst p99/ { worst[file] = $(NF - 1); next }
  /^request / || NF < 4 { next }
  { k = name(); p50[file, k] = $(NF - 2); p99[file, k] = $(NF - 1); items[file, k] = $NF }
  file == 1 { order[++n] = k }
  END {
    print store[1]; print store[2]
    printf "%-62s %9s %9s %9s %9s %7s\n", "request", "sqlite p50", "p99", "pg p50", "p99", "items"
    for (i = 1; i <= n; i++) {
      k = order[i]
      it = (items[1, k] == items[2, k]) ? items[1, k] : items[1, k] "/" items[2, k]
      printf "%-62s %9s %9s %9s %9s %7s\n", k, p50[1, k], p99[1, k], p50[2, k], p99[2, k], it
    }
    printf "%-62s %9s %9s %9s %9s\n", "worst p99", "", worst[1], "", worst[2]
  }' "$OUT/sqlite.txt" "$OUT/postgres.txt"
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
