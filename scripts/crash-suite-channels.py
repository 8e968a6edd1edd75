#!/usr/bin/env python3
"""Crash suite for the IMAP and outbound channels: SIGKILL mid-sync and mid-delivery.

imap: N messages are appended to a private Dovecot (config, state and log in a temp dir, as
tests/it/dovecot.rs does); inboxgate syncs the mailbox and is SIGKILLed at random moments
several times, then restarted until the sync is complete. Every appended message must be
stored exactly once (batches are filed with their UID checkpoint in one transaction).

outbound: M messages are queued with `inboxgate compose` while the daemon is down; the
daemon delivers them to a real SMTP receiver (tests/it/smtp_sink.py on python3-aiosmtpd,
recording every DATA, answering after a short delay so kills land mid-delivery) and is
SIGKILLed several times. After a final restart every message must be received at least
once and at most twice (a delivery interrupted after the receiver's DATA is resent once).
The bound is per interruption: kills closer together than the resend takes (the
`--out-min-gap` default of 1 s leaves room for it) can interrupt a resend too, and that
message then arrives a third time.

With `--backend postgres --nodes N` each case starts a private PostgreSQL 15 cluster
(harness.PgCluster, fsync on) and N nodes on one database (distinct `[server] node`,
ports and data_dir), restarted under the same name after each kill:

imap: the mailbox is configured on every node; messages keep being appended during the
kills; each kill (once more mail was filed) SIGKILLs the node holding the folder's lease
(imap_leases) and waits for another node to take the lease over (fencing raised), then
restarts the killed node. The takeover times are printed beside the lease period (3 poll
intervals, at least 5 s); a takeover missing after 4 lease periods fails the case.

outbound: the nodes run while the replies are composed, and each kill SIGKILLs a random
node among deliveries in flight (its restart requeues its own claims at once); the same
at-least-once, at-most-twice bound holds.

Integrity is then harness.pg_integrity (consistency queries and amcheck) instead of
SQLite's integrity check. A node that does not stop within 30 s of SIGTERM fails the case.

Prints one summary line per case, in the style of crash-suite.py:

    crash-suite imap: kills=K appended=N stored=S lost=L duplicated=D integrity=ok
    crash-suite outbound: kills=K queued=M received=R lost=L duplicated=D max_copies=C integrity=ok

(on postgres followed by backend=postgres nodes=N, and for imap takeover_s=[..] lease_s=5)
and exits non-zero when a case fails. Needs root (Dovecot users, runuser), dovecot-imapd,
python3-aiosmtpd (/usr/bin/python3) and, for postgres, postgresql 15.

Usage: scripts/crash-suite-channels.py [--case imap|outbound|both] [--kills 4]
       [--messages 1500] [--replies 150] [--backend sqlite|postgres] [--nodes 1]
       [--bin target/debug/inboxgate]
"""

import argparse
import concurrent.futures
import glob
import imaplib
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SINK = os.path.join(HERE, "..", "tests", "it", "smtp_sink.py")
USER = "help@acme.example"
PASSWORD = "s3cret pass"
TEAM = "team@acme.example"
SUPPORT = harness.SUPPORT


IMAP_CHANNEL = """
[[inboxes]]
name = "Team"
  [[inboxes.channels]]
  kind = "imap"
  address = "{team}"
  from_name = {{ mode = "company", company = "Acme Team" }}
  folders = ["INBOX"]
  poll_interval = 1
  imap = {{ host = "127.0.0.1", port = {port}, tls = "none", username = "{user}", password_file = "{password_file}" }}
"""

OUTBOUND = """
[outbound]
relay = {{ host = "127.0.0.1", port = {port}, tls = "none" }}
"""

DOVECOT = """protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""






# Every Daemon made, for the cleanup on the way out; the names of those that did not
# stop within 30 s of SIGTERM (a failure of the case).
DAEMONS = []
HUNG = []


class Daemon(harness.DaemonProcess):
    """inboxgate serve on a config file, killed and restarted at will. On postgres, one of
    several nodes: `[server] node = name`, its own ports, data_dir and log."""

    def __init__(self, binary, work, extra, name="mx1", store_section=""):
        self.binary = binary
        self.work = work
        self.name = name
        self.smtp_port, self.api_port = harness.free_port(), harness.free_port()
        suffix = "" if not store_section else "-" + name
        self.data = os.path.join(work, "data" + suffix)
        self.config = os.path.join(work, "inboxgate%s.toml" % suffix)
        server_extra = 'node = "%s"' % name if store_section else ""
        with open(self.config, "w") as f:
            f.write(
                harness.config(
                    self.data, self.smtp_port, "mx.crash.test", api_port=self.api_port,
                    server_extra=server_extra,
                )
                + extra
                + store_section
            )
        self.log_path = os.path.join(work, "daemon%s.log" % suffix)
        self.log = open(self.log_path, "ab")
        self.process = None
        DAEMONS.append(self)

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--config", self.config, "serve"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        if not harness.wait_for_port(self.api_port):
            sys.exit("crash-suite: daemon did not start; see %s" % self.log_path)

    def stop(self):
        stopped = super().stop()
        if not stopped:
            HUNG.append(self.name)
        return stopped

    def cli(self, *args):
        out = subprocess.run(
            [self.binary, "--config", self.config, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
        )
        return out.stdout.decode()


class Store:
    """Queries on the suite's store: the one node's SQLite file, or the shared
    PostgreSQL database."""

    def __init__(self, work, cluster=None):
        self.work, self.cluster = work, cluster
        self.database = "inboxgate"
        self.section = ""
        if cluster:
            self.section = cluster.store_section(cluster.create_database(self.database))

    def query(self, sql):
        if self.cluster:
            return [tuple(row) for row in self.cluster.psql(sql, self.database)]
        conn = sqlite3.connect(os.path.join(self.work, "data", "inboxgate.db"), timeout=10)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def count(self, sql):
        return int(self.query(sql)[0][0])

    def integrity(self):
        if self.cluster:
            return harness.pg_integrity(self.cluster, self.database)
        return self.query("PRAGMA integrity_check")[0][0]

    def nodes(self, binary, extra, n):
        return [
            Daemon(binary, self.work, extra, "mx%d" % (i + 1), self.section) for i in range(n)
        ]


# ---- imap -----------------------------------------------------------------------------


class Dovecot:
    def __init__(self, work):
        self.root = os.path.join(work, "dovecot")
        home = os.path.join(self.root, "home")
        os.makedirs(home)
        os.chmod(work, 0o755)
        os.chmod(self.root, 0o755)
        os.chown(home, 8, 8)  # the `mail` user: Dovecot refuses uid 0
        with open(os.path.join(self.root, "users"), "w") as f:
            f.write("%s:{PLAIN}%s:8:8::%s::\n" % (USER, PASSWORD, home))
        os.chmod(os.path.join(self.root, "users"), 0o644)
        self.password_file = os.path.join(self.root, "password")
        with open(self.password_file, "w") as f:
            f.write(PASSWORD + "\n")
        self.port = harness.free_port()
        self.config = os.path.join(self.root, "dovecot.conf")
        with open(self.config, "w") as f:
            f.write(DOVECOT.format(d=self.root, port=self.port))
        subprocess.run(
            ["dovecot", "-c", self.config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        if not harness.wait_for_port(self.port):
            sys.exit("crash-suite: dovecot did not start; see %s/dovecot.log" % self.root)

    def append(self, first, n):
        """Appends imap-crash-<first>.. imap-crash-<first+n-1>."""
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login(USER, PASSWORD)
        for i in range(first, first + n):
            imap.append("INBOX", None, None, imap_message(i))
        imap.logout()

    def keep_appending(self, first, stop, appended):
        """Appends one message at a time from `first` until `stop` is set; `appended`
        (a one-item list) counts them."""
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login(USER, PASSWORD)
        i = first
        while not stop.is_set():
            imap.append("INBOX", None, None, imap_message(i))
            i += 1
            appended[0] += 1
            time.sleep(0.03)  # a steady trickle: the holder always has new mail
        imap.logout()

    def stop(self):
        for args in (["kick", USER], ["stop"]):
            subprocess.run(
                ["doveadm", "-c", self.config, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )


def imap_message(i):
    body = "Line of text for the IMAP crash suite.\r\n" * 60
    return (
        "Message-ID: <imap-crash-%d@customers.test>\r\nFrom: c%d@customers.test\r\n"
        "To: %s\r\nSubject: imap crash %d\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n%s"
        % (i, i, TEAM, i, body)
    ).encode()


def stored_ids(store, prefix):
    rows = store.query(
        "SELECT message_id, COUNT(*) FROM messages WHERE message_id LIKE '%s%%' GROUP BY message_id"
        % prefix
    )
    return {m: int(c) for m, c in rows}


def imap_case(args, work, cluster=None):
    dovecot = Dovecot(work)
    try:
        dovecot.append(0, args.messages)
        extra = IMAP_CHANNEL.format(
            team=TEAM, port=dovecot.port, user=USER, password_file=dovecot.password_file
        )
        store = Store(work, cluster)
        if cluster:
            appended, progress, takeovers = imap_nodes_run(args, store, dovecot, extra)
        else:
            progress = imap_single_run(args, store, extra)
            appended, takeovers = args.messages, []
        counts = stored_ids(store, "imap-crash-")
        integrity = store.integrity()
    finally:
        dovecot.stop()
    expected = ["imap-crash-%d@customers.test" % i for i in range(appended)]
    lost = [m for m in expected if m not in counts]
    duplicated = [m for m, c in counts.items() if c > 1]
    line = (
        "crash-suite imap: kills=%d appended=%d stored=%d lost=%d duplicated=%d integrity=%s"
        " stored_at_kills=%s"
        % (args.kills, appended, sum(counts.values()), len(lost), len(duplicated),
           integrity, progress)
    )
    if cluster:
        line += " backend=postgres nodes=%d takeover_s=%s lease_s=%d" % (
            args.nodes, [None if t is None else round(t, 1) for t in takeovers], LEASE_SECONDS,
        )
    print(line)
    for m in (lost + duplicated)[:10]:
        print("  %s: %s" % ("lost" if m in lost else "duplicated", m))
    return not lost and not duplicated and integrity == "ok" and None not in takeovers


def imap_single_run(args, store, extra):
    """SQLite: one daemon killed and restarted at random moments; the stored counts at
    each kill."""
    daemon = Daemon(args.bin, store.work, extra)
    daemon.start()
    progress = []
    for _ in range(args.kills):
        time.sleep(random.uniform(args.min_gap, args.max_gap))
        daemon.kill()
        progress.append(sum(stored_ids(store, "imap-crash-").values()))
        daemon.start()
    wait_until_stored(store, args.messages)
    time.sleep(1.5)  # one more poll: nothing may be fetched again
    daemon.stop()
    return progress


# The channel's poll_interval is 1 s: its lease is 3 x 1 s, clamped to at least 5 s.
LEASE_SECONDS = 5


def imap_nodes_run(args, store, dovecot, extra):
    """PostgreSQL: every node polls the mailbox; each kill, once more mail was filed
    since the last, SIGKILLs the lease holder while messages keep arriving, waits for another node to take the lease (or for 4
    lease periods), then restarts the killed node under its name. Returns (appended,
    stored at each kill, takeover seconds or None each)."""
    nodes = {d.name: d for d in store.nodes(args.bin, extra, args.nodes)}
    for node in nodes.values():
        node.start()
    stop, appended = threading.Event(), [0]
    appender = threading.Thread(
        target=dovecot.keep_appending, args=(args.messages, stop, appended), daemon=True
    )
    appender.start()
    progress, takeovers = [], []
    stored = 0
    for _ in range(args.kills):
        wait_until_stored(store, stored + 1, timeout=60)  # the holder is filing
        time.sleep(random.uniform(args.min_gap, args.max_gap))
        holder, fencing = lease_holder(store)
        victim = nodes[holder]
        victim.kill()
        killed_at = time.monotonic()
        stored = sum(stored_ids(store, "imap-crash-").values())
        progress.append(stored)
        takeovers.append(wait_for_takeover(store, holder, fencing, killed_at))
        victim.start()
    stop.set()
    appender.join(timeout=30)
    total = args.messages + appended[0]
    wait_until_stored(store, total)
    time.sleep(1.5)  # one more poll: nothing may be fetched again
    for node in nodes.values():
        node.stop()
    return total, progress, takeovers


def lease_holder(store, timeout=30.0):
    """(holder, fencing) of the INBOX lease, waiting until someone holds it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = store.query("SELECT holder, fencing FROM imap_leases WHERE folder = 'INBOX'")
        if rows:
            return rows[0][0], int(rows[0][1])
        time.sleep(0.1)
    sys.exit("crash-suite: no node took the IMAP lease in %.0f s" % timeout)


def wait_for_takeover(store, holder, fencing, killed_at):
    """Seconds from the kill until another node holds the lease with a higher fencing
    number; None when that took over 4 lease periods."""
    while time.monotonic() - killed_at < 4 * LEASE_SECONDS:
        rows = store.query("SELECT holder, fencing FROM imap_leases WHERE folder = 'INBOX'")
        if rows and rows[0][0] != holder and int(rows[0][1]) > fencing:
            return time.monotonic() - killed_at
        time.sleep(0.05)
    return None


def wait_until_stored(store, n, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(stored_ids(store, "imap-crash-")) >= n:
            return
        time.sleep(0.2)


# ---- outbound -------------------------------------------------------------------------


def start_sink(work):
    sink_dir = os.path.join(work, "sink")
    os.makedirs(sink_dir)
    with open(os.path.join(sink_dir, "rules.json"), "w") as f:
        json.dump({"data_delay": 0.2}, f)
    sink = subprocess.Popen(
        ["/usr/bin/python3", SINK, sink_dir],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    port = int(sink.stdout.readline().decode().strip())
    return sink, sink_dir, port


def received_ids(sink_dir):
    counts = {}
    for path in glob.glob(os.path.join(sink_dir, "msg-*.eml")):
        with open(path, "rb") as f:
            head = f.read().split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        found = re.search(r"(?im)^Message-ID:\s*<([^>]+)>", head)
        if found:
            counts[found.group(1)] = counts.get(found.group(1), 0) + 1
    return counts


def outbound_case(args, work, cluster=None):
    sink, sink_dir, port = start_sink(work)
    try:
        store = Store(work, cluster)
        nodes = store.nodes(args.bin, OUTBOUND.format(port=port), args.nodes)
        if cluster:
            queued, progress, killed = outbound_nodes_run(args, work, nodes, sink_dir)
        else:
            queued = queue_replies(args, work, nodes[0])
            nodes[0].start()
            progress, killed = kill_while_sending(args, nodes, sink_dir), []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if store.count("SELECT COUNT(*) FROM outbound_deliveries WHERE status != 'sent'") == 0:
                break
            time.sleep(0.2)
        for node in nodes:
            node.stop()
        integrity = store.integrity()
        counts = received_ids(sink_dir)
    finally:
        sink.kill()
        sink.wait()
    lost = [m for m in queued if m not in counts]
    duplicated = [m for m in queued if counts.get(m, 0) > 1]
    max_copies = max([counts.get(m, 0) for m in queued] or [0])
    line = (
        "crash-suite outbound: kills=%d queued=%d received=%d lost=%d duplicated=%d"
        " max_copies=%d integrity=%s received_at_kills=%s"
        % (args.kills, len(queued), sum(counts.values()), len(lost), len(duplicated),
           max_copies, integrity, progress)
    )
    if cluster:
        line += " backend=postgres nodes=%d killed=%s" % (args.nodes, ",".join(killed))
    print(line)
    for m in lost[:10]:
        print("  lost: %s" % m)
    for m in [m for m in queued if counts.get(m, 0) > 2][:10]:
        print("  %d copies: %s" % (counts[m], m))
    return not lost and max_copies <= 2 and integrity == "ok"


def kill_while_sending(args, nodes, sink_dir, killed=None):
    """--kills times: a random node SIGKILLed and restarted under its name; the count
    received at each kill."""
    progress = []
    for _ in range(args.kills):
        time.sleep(random.uniform(args.out_min_gap, args.out_max_gap))
        node = random.choice(nodes)
        node.kill()
        if killed is not None:
            killed.append(node.name)
        progress.append(len(received_ids(sink_dir)))
        node.start()
    return progress


def outbound_nodes_run(args, work, nodes, sink_dir):
    """PostgreSQL: the nodes run while the replies are composed (3 at a time, from
    mx1's config), so the kills land among deliveries in flight. Returns (queued,
    received at each kill, names killed)."""
    for node in nodes:
        node.start()
    composed = []
    composer = threading.Thread(
        target=lambda: composed.extend(queue_replies(args, work, nodes[0], 3)), daemon=True
    )
    composer.start()
    killed = []
    progress = kill_while_sending(args, nodes, sink_dir, killed)
    composer.join()
    if len(composed) != args.replies:
        sys.exit("crash-suite: composing the replies failed")
    return composed, progress, killed


def queue_replies(args, work, daemon, workers=1):
    """`inboxgate compose` of --replies messages while the daemons are down, `workers`
    at a time; their Message-IDs."""
    body = os.path.join(work, "body.txt")
    with open(body, "w") as f:
        f.write("Here is the quote you asked for.\n")

    def compose(i):
        out = daemon.cli(
            "compose", "--as", "alice@acme.example", "--from", SUPPORT,
            "--to", "customer%d@customers.test" % i, "--subject", "Quote %d" % i,
            "--body-file", body, "--json",
        )
        return json.loads(out)["message_id"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(compose, range(args.replies)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["imap", "outbound", "both"], default="both")
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--replies", type=int, default=250)
    parser.add_argument("--min-gap", type=float, default=0.3)
    parser.add_argument("--max-gap", type=float, default=1.2)
    parser.add_argument("--out-min-gap", type=float, default=1.0)
    parser.add_argument("--out-max-gap", type=float, default=1.5)
    harness.add_store_args(parser)
    args = harness.parse_store_args(parser)
    ok = True
    for case, run, prefix in (
        ("imap", imap_case, "inboxgate-crash-imap."),
        ("outbound", outbound_case, "inboxgate-crash-out."),
    ):
        if args.case not in (case, "both"):
            continue
        began = time.monotonic()
        work = tempfile.mkdtemp(prefix=prefix)
        try:
            if args.backend == "postgres":
                with harness.PgCluster() as cluster:
                    ok &= run(args, work, cluster)
            else:
                ok &= run(args, work)
        finally:
            for daemon in DAEMONS:
                daemon.reap()
        if HUNG:
            ok = False
            HUNG.clear()
        if args.backend == "postgres":
            print("  %s: %.1f s; logs in %s" % (case, time.monotonic() - began, work))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
