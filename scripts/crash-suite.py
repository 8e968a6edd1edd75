#!/usr/bin/env python3
"""Crash suite: SMTP senders against a daemon that is SIGKILLed at random moments.

16 concurrent senders (smtplib, a connection per message, unique Message-IDs) deliver to
inboxgate while the daemon is killed with SIGKILL several times and restarted. Afterwards
every message that got a 250 must be stored exactly once, and SQLite's integrity check must
pass. Prints one summary line:

    crash-suite: kills=K sent=S acked=A stored=N lost=L duplicated=D integrity=ok

and exits non-zero when anything was lost or duplicated or the database is damaged.

Usage: scripts/crash-suite.py [--kills 5] [--senders 16] [--seconds-between 0.3-1.5]
       [--bin target/debug/inboxgate]
"""

import argparse
import os
import random
import signal
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


def audit(db_path, acked):
    conn = sqlite3.connect(db_path)
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    counts = dict(
        conn.execute(
            "SELECT message_id, COUNT(*) FROM messages WHERE message_id IS NOT NULL "
            "GROUP BY message_id"
        ).fetchall()
    )
    stored = sum(counts.values())
    conn.close()
    lost = [m for m in acked if m not in counts]
    duplicated = [m for m, c in counts.items() if c > 1]
    return integrity, stored, lost, duplicated


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--min-gap", type=float, default=0.3)
    parser.add_argument("--max-gap", type=float, default=1.5)
    parser.add_argument("--bin", default="target/debug/inboxgate")
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit("crash-suite: no binary at %s (cargo build first)" % args.bin)

    work = tempfile.mkdtemp(prefix="inboxgate-crash.")
    port = harness.free_port()
    config_path = os.path.join(work, "crash.toml")
    with open(config_path, "w") as f:
        f.write(harness.config(os.path.join(work, "data"), port, "mx.crash.test", "max_connections_per_ip = 200"))
    log = open(os.path.join(work, "daemon.log"), "ab")

    daemon = start_daemon(args.bin, config_path, log)
    if not harness.wait_for_port(port):
        sys.exit("crash-suite: daemon did not start; see %s/daemon.log" % work)
    ledger, stop = Ledger(), threading.Event()
    senders = [
        threading.Thread(target=sender_loop, args=(i, port, ledger, stop), daemon=True)
        for i in range(args.senders)
    ]
    for t in senders:
        t.start()

    for _ in range(args.kills):
        time.sleep(random.uniform(args.min_gap, args.max_gap))
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        daemon = start_daemon(args.bin, config_path, log)
        if not harness.wait_for_port(port):
            sys.exit("crash-suite: daemon did not restart; see %s/daemon.log" % work)

    time.sleep(random.uniform(args.min_gap, args.max_gap))
    stop.set()
    for t in senders:
        t.join(timeout=30)
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=30)

    integrity, stored, lost, duplicated = audit(os.path.join(work, "data", "inboxgate.db"), ledger.acked)
    print(
        "crash-suite: kills=%d sent=%d acked=%d stored=%d lost=%d duplicated=%d integrity=%s"
        % (args.kills, ledger.sent, len(ledger.acked), stored, len(lost), len(duplicated), integrity)
    )
    for m in lost[:10]:
        print("  lost: %s" % m)
    for m in duplicated[:10]:
        print("  duplicated: %s" % m)
    ok = not lost and not duplicated and integrity == "ok" and ledger.acked
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
