# shellcheck shell=bash
# A private PostgreSQL 15 cluster for the benchmarks (sourced, not run): Debian's
# binaries, run as the postgres user (initdb and postgres refuse root), trust
# authentication on 127.0.0.1 only, its socket in its own directory.
#
# Settings: everything default (fsync = on, synchronous_commit = on, full_page_writes =
# on: a message is acknowledged only once PostgreSQL has it on disk, as SQLite's store
# does) except shared_buffers = 256MB (PG_SHARED_BUFFERS), listen_addresses = 127.0.0.1
# and the port. Use: pg_start DIR [PORT] -> sets PG_PORT, PG_DIR; pg_createdb NAME;
# pg_psql DB SQL; pg_stop (fast shutdown of this cluster only).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-256MB}
PG_DIR=
PG_PORT=

pg_log() { printf '%s\n' "$*" >&2; }

# A free loopback TCP port (the kernel's choice).
pg_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# pg_start DIR [PORT]: initdb DIR/data (unless it exists: kept clusters are reused) and
# start it. DIR must be empty or a cluster directory made here before.
pg_start() {
  PG_DIR=$1
  PG_PORT=${2:-$(pg_free_port)}
  [ -x "$PG_BIN/initdb" ] || { pg_log "no PostgreSQL at $PG_BIN (Debian: postgresql-15)"; return 1; }
  mkdir -p "$PG_DIR"
  chown postgres:postgres "$PG_DIR"
  chmod 700 "$PG_DIR"
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust \
      --locale=C.UTF-8 --encoding=UTF8 >"$PG_DIR/initdb.log" 2>&1 ||
      { cat "$PG_DIR/initdb.log" >&2; return 1; }
  fi
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c shared_buffers=$PG_SHARED_BUFFERS" \
    start >/dev/null || { tail -n 20 "$PG_DIR/server.log" >&2; return 1; }
  pg_log "== PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT" \
    "(data $PG_DIR/data; fsync on, shared_buffers $PG_SHARED_BUFFERS)"
}

# pg_psql DB SQL: one statement's result, unaligned, tuples only.
pg_psql() {
  psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -Atc "$2"
}

# pg_createdb NAME: a database with the C collation the README asks for (unless it exists).
pg_createdb() {
  if [ "$(pg_psql postgres "SELECT 1 FROM pg_database WHERE datname = '$1'")" != 1 ]; then
    pg_psql postgres "CREATE DATABASE $1 TEMPLATE template0 LOCALE 'C.UTF-8' ENCODING 'UTF8'"
  fi
}

# pg_stop: fast shutdown (SIGINT to this cluster's postmaster, by its pid file).
pg_stop() {
  [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null ||
    pg_log "PostgreSQL did not stop (see $PG_DIR/server.log)"
}
