#!/usr/bin/env python3
"""Crash suite: SMTP senders against a daemon that is SIGKILLed at random moments.

16 concurrent senders (smtplib, a connection per message, unique Message-IDs) deliver to
inboxgate while the daemon is killed with SIGKILL several times and restarted. Afterwards
every message that got a 250 must be stored exactly once, and SQLite's integrity check must
pass.

With `--backend postgres --nodes N` the script starts a private PostgreSQL 15 cluster
(harness.PgCluster, fsync on) and N nodes sharing one database (distinct `[server] node`,
ports and data_dir); the senders are spread over the nodes, each kill SIGKILLs a random
node and restarts it under the same name. The integrity check is then harness.pg_integrity:
no message, known id or search entry pointing nowhere, each conversation's message_count
equal to its messages, no empty conversation, and amcheck on every B-tree index.

Prints one summary line:

    crash-suite: kills=K sent=S acked=A stored=N lost=L duplicated=D integrity=ok backend=B nodes=N

and exits non-zero when anything was lost or duplicated or the database is damaged.

Usage: scripts/crash-suite.py [--kills 5] [--senders 16] [--min-gap 0.3] [--max-gap 1.5]
       [--backend sqlite|postgres] [--nodes 1] [--bin target/debug/inboxgate]
"""

import argparse
import os
import random
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


RCPT = harness.SUPPORT






class Ledger:
    """What the senders saw: ids that got a 250, and how many were attempted."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = []
        self.sent = 0

    def attempt(self):
        with self.lock:
            self.sent += 1

    def ack(self, message_id):
        with self.lock:
            self.acked.append(message_id)


def message(sender, n):
    body = ("Line of text for the crash suite, sender %d message %d.\r\n" % (sender, n)) * 40
    return (
        "Message-ID: <crash-%d-%d@senders.test>\r\n"
        "From: sender%d@customers.test\r\n"
        "To: %s\r\n"
        "Subject: crash %d-%d\r\n\r\n%s" % (sender, n, sender, RCPT, sender, n, body)
    )


def sender_loop(index, port, ledger, stop):
    n = 0
    while not stop.is_set():
        n += 1
        message_id = "crash-%d-%d@senders.test" % (index, n)
        ledger.attempt()
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                smtp.ehlo("sender%d.test" % index)
                code, _ = smtp.docmd("MAIL FROM:<sender%d@customers.test>" % index)
                if code != 250:
                    raise smtplib.SMTPException("MAIL %d" % code)
                code, _ = smtp.docmd("RCPT TO:<%s>" % RCPT)
                if code != 250:
                    raise smtplib.SMTPException("RCPT %d" % code)
                code, _ = smtp.data(message(index, n))
                if code == 250:
                    ledger.ack(message_id)
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)  # the daemon is down or went down mid-session


def start_daemon(binary, config_path, log):
    return subprocess.Popen(
        [binary, "--config", config_path, "serve"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


class Node(harness.DaemonProcess):
    """One daemon: its config (own data_dir and SMTP/API ports; the [store] shared on
    postgres), its log, its process."""

    def __init__(self, binary, work, name, store_section):
        self.binary, self.work, self.name = binary, work, name
        self.port, self.api_port = harness.free_port(), harness.free_port()
        self.config = os.path.join(work, "%s.toml" % name)
        server_extra = 'node = "%s"' % name if store_section else ""
        with open(self.config, "w") as f:
            f.write(
                harness.config(
                    os.path.join(work, "data-" + name), self.port, "mx.crash.test",
                    "max_connections_per_ip = 200", api_port=self.api_port,
                    server_extra=server_extra,
                )
                + store_section
            )
        self.log_path = os.path.join(work, "%s.log" % name)
        self.log = open(self.log_path, "ab")
        self.process = None

    def start(self):
        self.process = start_daemon(self.binary, self.config, self.log)
        if not harness.wait_for_port(self.port):
            sys.exit("crash-suite: node %s did not start; see %s" % (self.name, self.log_path))


def audit(db_path, acked):
    conn = sqlite3.connect(db_path)
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    counts = dict(
        conn.execute(
            "SELECT message_id, COUNT(*) FROM messages WHERE message_id IS NOT NULL "
            "GROUP BY message_id"
        ).fetchall()
    )
    conn.close()
    return integrity, counts


def audit_pg(cluster, database):
    rows = cluster.psql(
        "SELECT message_id, COUNT(*) FROM messages WHERE message_id IS NOT NULL "
        "GROUP BY message_id",
        database,
    )
    counts = {m: int(c) for m, c in rows}
    return harness.pg_integrity(cluster, database), counts


def run(args, work, cluster):
    """Starts the nodes, runs the senders and the kills; returns (ledger, integrity,
    counts, nodes killed in order, nodes that did not stop on SIGTERM)."""
    store_section = ""
    if cluster:
        store_section = cluster.store_section(cluster.create_database("inboxgate"))
    nodes = [
        Node(args.bin, work, "mx%d" % (i + 1), store_section) for i in range(args.nodes)
    ]
    try:
        ledger, killed = send_and_kill(args, nodes)
        hung = [node.name for node in nodes if not node.stop()]
    finally:
        for node in nodes:
            node.reap()
    if cluster:
        integrity, counts = audit_pg(cluster, "inboxgate")
    else:
        integrity, counts = audit(os.path.join(work, "data-mx1", "inboxgate.db"), ledger.acked)
    return ledger, integrity, counts, killed, hung


def send_and_kill(args, nodes):
    """The senders, spread over the nodes, while random nodes are SIGKILLed and
    restarted; returns the ledger and the names of the nodes killed."""
    for node in nodes:
        node.start()
    ledger, stop = Ledger(), threading.Event()
    senders = [
        threading.Thread(
            target=sender_loop, args=(i, nodes[i % len(nodes)].port, ledger, stop), daemon=True
        )
        for i in range(args.senders)
    ]
    for t in senders:
        t.start()
    killed = []
    try:
        for _ in range(args.kills):
            time.sleep(random.uniform(args.min_gap, args.max_gap))
            node = random.choice(nodes)
            node.kill()
            killed.append(node.name)
            node.start()
        time.sleep(random.uniform(args.min_gap, args.max_gap))
    finally:
        stop.set()
        for t in senders:
            t.join(timeout=30)
    return ledger, killed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--min-gap", type=float, default=0.3)
    parser.add_argument("--max-gap", type=float, default=1.5)
    harness.add_store_args(parser)
    args = harness.parse_store_args(parser)

    work = tempfile.mkdtemp(prefix="inboxgate-crash.")
    began = time.monotonic()
    if args.backend == "postgres":
        with harness.PgCluster() as cluster:
            ledger, integrity, counts, killed, hung = run(args, work, cluster)
    else:
        ledger, integrity, counts, killed, hung = run(args, work, None)
    stored = sum(counts.values())
    lost = [m for m in ledger.acked if m not in counts]
    duplicated = [m for m, c in counts.items() if c > 1]
    print(
        "crash-suite: kills=%d sent=%d acked=%d stored=%d lost=%d duplicated=%d integrity=%s"
        " backend=%s nodes=%d"
        % (args.kills, ledger.sent, len(ledger.acked), stored, len(lost), len(duplicated),
           integrity, args.backend, args.nodes)
    )
    if args.nodes > 1:
        print("  killed: %s; %.1f s; logs in %s" % (" ".join(killed), time.monotonic() - began, work))
    for m in lost[:10]:
        print("  lost: %s" % m)
    for m in duplicated[:10]:
        print("  duplicated: %s (%d copies)" % (m, counts[m]))
    for name in hung:
        print("  %s did not stop on SIGTERM" % name)
    ok = not lost and not duplicated and integrity == "ok" and ledger.acked and not hung
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
