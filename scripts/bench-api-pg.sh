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

# Side by side: the rows of both outputs, matched by request (the first 58 columns).
printf '\n== API latency, %s conversations, %s requests each (ms)\n' "$CONVERSATIONS" "$REQUESTS"
awk '
  function row(line) { return substr(line, 1, 58) }
  FNR == 1 { file++ }
  /^store / { store[file] = $0; next }
  /^request / || /^worst p99/ { if (/^worst/) worst[file] = $NF; next }
  file == 1 { order[++n] = row($0); split(substr($0, 59), a, " "); s50[row($0)] = a[1]; s99[row($0)] = a[2]; sit[row($0)] = a[3] }
  file == 2 { split(substr($0, 59), a, " "); p50[row($0)] = a[1]; p99[row($0)] = a[2]; pit[row($0)] = a[3] }
  END {
    print store[1]; print store[2]
    printf "%-58s %9s %9s %9s %9s %7s\n", "request", "sqlite50", "sqlite99", "pg50", "pg99", "items"
    for (i = 1; i <= n; i++) {
      k = order[i]
      items = (sit[k] == pit[k]) ? sit[k] : sit[k] "/" pit[k]
      printf "%-58s %9s %9s %9s %9s %7s\n", k, s50[k], s99[k], p50[k], p99[k], items
    }
    printf "%-58s %9s %9s %9s %9s\n", "worst p99", "", worst[1], "", worst[2]
  }' "$OUT/sqlite.txt" "$OUT/postgres.txt"
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
