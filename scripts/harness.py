"""Shared by the operator scripts (crash suites, bombs, corpora): a minimal daemon
config on loopback ports, a free port, waiting for a listener, and a private PostgreSQL
cluster for the `--backend postgres` runs of the crash suites."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CONFIG = """
[server]
hostname = "{hostname}"
data_dir = "{data}"
{server_extra}

[smtp]
listen = ["127.0.0.1:{smtp_port}"]
{smtp_extra}

[api]
listen = "127.0.0.1:{api_port}"

[classification]
# The scripts' mail comes from made-up domains: no SPF/DKIM/DMARC lookups.
check_authentication = false

[account]
subdomain = "acme"
fallback_domain = "hs-inbox.test"
company_name = "Acme"

[[users]]
email = "alice@acme.example"
name = "Alice Smith"

[[inboxes]]
name = "Support"
  [[inboxes.channels]]
  kind = "fallback"
  user = "support"
  from_name = {{ mode = "company", company = "Acme Support" }}
"""

SUPPORT = "support@acme.hs-inbox.test"


def config(data, smtp_port, hostname="mx.scripts.test", smtp_extra="", api_port=0, server_extra=""):
    """The config text: one Support inbox at SUPPORT; append more TOML after it.
    `server_extra` goes into [server] (e.g. `node = "mx1"`)."""
    return CONFIG.format(
        hostname=hostname, data=data, smtp_port=smtp_port, smtp_extra=smtp_extra,
        api_port=api_port, server_extra=server_extra,
    )


def add_store_args(parser):
    """The crash suites' shared options: --backend, --nodes and --bin."""
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--bin", default="target/debug/inboxgate")


def parse_store_args(parser):
    """Parses the arguments; exits naming the problem when the binary is missing or
    several nodes are asked of SQLite. `bin` comes back as an absolute path."""
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit("crash-suite: no binary at %s (cargo build first)" % args.bin)
    if args.nodes < 1 or (args.backend == "sqlite" and args.nodes != 1):
        sys.exit("crash-suite: --nodes above 1 needs --backend postgres")
    args.bin = os.path.abspath(args.bin)
    return args


class DaemonProcess:
    """What the crash suites' daemons share: `process` (a Popen, or None before the
    first start), `name` and `log_path` are set by the subclass."""

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def reap(self):
        """SIGKILLs the daemon if it still runs (cleanup on the way out)."""
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def stop(self):
        """SIGTERM; True when the daemon ended within 30 s (else it is SIGKILLed)."""
        if self.process is None or self.process.poll() is not None:
            return True
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
            return True
        except subprocess.TimeoutExpired:
            print("  %s did not stop within 30 s of SIGTERM; killed (see %s)" % (self.name, self.log_path))
            self.kill()
            return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


PG_BIN = "/usr/lib/postgresql/15/bin"
PG_ROLE = "inboxgate"


class PgCluster:
    """A private PostgreSQL 15 cluster: initdb as the postgres user in a new temporary
    folder (trust authentication: loopback and a socket in that folder only), started on
    a free loopback port with fsync on (the crash suites are about durability; only
    initdb skips its final sync, the template files are not under test). Use it
    as a context manager: leaving the block, also on failure, stops the cluster and
    removes its folder. Needs root (runuser) and Debian's postgresql package."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="inboxgate-crash-pg.")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self.started = False

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self):
        if not os.path.isfile(os.path.join(PG_BIN, "initdb")):
            raise SystemExit("crash-suite: no %s/initdb: apt-get install postgresql" % PG_BIN)
        os.chmod(self.root, 0o755)
        shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(
            "initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )
        settings = "-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=300" % (
            self.port, self.root,
        )
        self._as_postgres(
            "pg_ctl", "start", "-w", "-t", "60", "-D", self.data,
            "-l", self.log_path(), "-o", settings,
        )
        self.started = True
        self.psql("CREATE ROLE %s LOGIN" % PG_ROLE, database="postgres")

    def log_path(self):
        return os.path.join(self.root, "postgres.log")

    def create_database(self, name):
        """A new database owned by the daemon's role; returns its `store.url`."""
        self.psql("CREATE DATABASE %s OWNER %s ENCODING 'UTF8'" % (name, PG_ROLE), database="postgres")
        return "postgres://%s@127.0.0.1:%d/%s" % (PG_ROLE, self.port, name)

    def store_section(self, url):
        return '\n[store]\nbackend = "postgres"\nurl = "%s"\n' % url

    def psql(self, sql, database):
        """Runs `sql` as the superuser over the cluster's socket; the rows as lists of
        strings (columns split at the unit separator)."""
        out = subprocess.run(
            [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-F", "\x1f",
             "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h", self.root,
             "-p", str(self.port), "-d", database, "-c", sql],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError("psql: %s: %s" % (sql, out.stderr.decode(errors="replace")))
        text = out.stdout.decode()
        return [line.split("\x1f") for line in text.splitlines() if line]

    def close(self):
        """Stops the cluster and removes its folder (an immediate stop: no shutdown
        checkpoint for data that is thrown away)."""
        if self.started:
            subprocess.run(
                ["runuser", "-u", "postgres", "--", os.path.join(PG_BIN, "pg_ctl"), "stop",
                 "-w", "-m", "immediate", "-D", self.data],
                cwd=self.root, stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
            )
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def _as_postgres(self, program, *args):
        out = subprocess.run(
            ["runuser", "-u", "postgres", "--", os.path.join(PG_BIN, program), *args],
            cwd=self.root, stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(
                "%s failed: %s%s" % (program, out.stderr.decode(errors="replace"),
                                     out.stdout.decode(errors="replace"))
            )


# Consistency checks on a PostgreSQL store after a crash run: each query counts rows
# that break one rule; every count must be 0.
PG_CHECKS = [
    ("messages_without_conversation",
     "SELECT count(*) FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id "
     "WHERE c.id IS NULL"),
    ("known_ids_without_conversation",
     "SELECT count(*) FROM known_ids k LEFT JOIN conversations c ON c.id = k.conversation_id "
     "WHERE c.id IS NULL"),
    ("known_ids_without_message",
     "SELECT count(*) FROM known_ids k LEFT JOIN messages m ON m.id = k.message_row "
     "WHERE k.message_row IS NOT NULL AND m.id IS NULL"),
    ("message_count_mismatch",
     "SELECT count(*) FROM conversations c WHERE c.deleted = 0 AND c.message_count <> "
     "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)"),
    ("empty_conversations",
     "SELECT count(*) FROM conversations c WHERE c.deleted = 0 AND NOT EXISTS "
     "(SELECT 1 FROM messages m WHERE m.conversation_id = c.id)"),
    ("inbound_without_raw",
     "SELECT count(*) FROM messages m LEFT JOIN raw_messages r ON r.id = m.raw_id "
     "WHERE m.direction = 'in' AND r.id IS NULL"),
    ("messages_neither_indexed_nor_queued",
     "SELECT count(*) FROM messages m WHERE NOT EXISTS "
     "(SELECT 1 FROM messages_search s WHERE s.message_row = m.id) AND NOT EXISTS "
     "(SELECT 1 FROM search_pending p WHERE p.message_row = m.id)"),
]


def pg_integrity(cluster, database):
    """`ok`, or the failed checks as `name=count,...`. Runs PG_CHECKS, then amcheck's
    bt_index_check on every B-tree index of the public schema (heapallindexed: every
    table row has its index entries)."""
    failed = []
    for name, sql in PG_CHECKS:
        count = int(cluster.psql(sql, database)[0][0])
        if count:
            failed.append("%s=%d" % (name, count))
    try:
        cluster.psql("CREATE EXTENSION IF NOT EXISTS amcheck", database)
        rows = cluster.psql(
            "SELECT c.relname, bt_index_check(c.oid, true) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE a.amname = 'btree' AND n.nspname = 'public'",
            database,
        )
        if not rows:
            failed.append("amcheck=no_indexes")
    except RuntimeError as error:  # bt_index_check raises on a damaged index
        print("  amcheck: %s" % error)
        failed.append("amcheck=failed")
    return ",".join(failed) or "ok"
