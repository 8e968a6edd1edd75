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

Prints one summary line per case, in the style of crash-suite.py:

    crash-suite imap: kills=K appended=N stored=S lost=L duplicated=D integrity=ok
    crash-suite outbound: kills=K queued=M received=R lost=L duplicated=D max_copies=C integrity=ok

and exits non-zero when a case fails. Needs root (Dovecot users), dovecot-imapd and
python3-aiosmtpd (/usr/bin/python3).

Usage: scripts/crash-suite-channels.py [--case imap|outbound|both] [--kills 4]
       [--messages 1500] [--replies 150] [--bin target/debug/inboxgate]
"""

import argparse
import glob
import imaplib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
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






class Daemon:
    """inboxgate serve on a config file, killed and restarted at will."""

    def __init__(self, binary, work, extra):
        self.binary = binary
        self.work = work
        self.smtp_port, self.api_port = harness.free_port(), harness.free_port()
        self.data = os.path.join(work, "data")
        self.config = os.path.join(work, "inboxgate.toml")
        with open(self.config, "w") as f:
            f.write(
                harness.config(self.data, self.smtp_port, "mx.crash.test", api_port=self.api_port)
                + extra
            )
        self.log = open(os.path.join(work, "daemon.log"), "ab")
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--config", self.config, "serve"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        if not harness.wait_for_port(self.api_port):
            sys.exit("crash-suite: daemon did not start; see %s/daemon.log" % self.work)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)

    def cli(self, *args):
        out = subprocess.run(
            [self.binary, "--config", self.config, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
        )
        return out.stdout.decode()

    def query(self, sql):
        conn = sqlite3.connect(os.path.join(self.data, "inboxgate.db"), timeout=10)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


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

    def append(self, n):
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login(USER, PASSWORD)
        body = "Line of text for the IMAP crash suite.\r\n" * 60
        for i in range(n):
            raw = (
                "Message-ID: <imap-crash-%d@customers.test>\r\nFrom: c%d@customers.test\r\n"
                "To: %s\r\nSubject: imap crash %d\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n%s"
                % (i, i, TEAM, i, body)
            )
            imap.append("INBOX", None, None, raw.encode())
        imap.logout()

    def stop(self):
        for args in (["kick", USER], ["stop"]):
            subprocess.run(
                ["doveadm", "-c", self.config, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )


def stored_ids(daemon, prefix):
    rows = daemon.query(
        "SELECT message_id, COUNT(*) FROM messages WHERE message_id LIKE '%s%%' GROUP BY message_id"
        % prefix
    )
    return dict(rows)


def imap_case(args, work):
    dovecot = Dovecot(work)
    try:
        dovecot.append(args.messages)
        extra = IMAP_CHANNEL.format(
            team=TEAM, port=dovecot.port, user=USER, password_file=dovecot.password_file
        )
        daemon = Daemon(args.bin, work, extra)
        daemon.start()
        progress = []
        for _ in range(args.kills):
            time.sleep(random.uniform(args.min_gap, args.max_gap))
            daemon.kill()
            progress.append(sum(stored_ids(daemon, "imap-crash-").values()))
            daemon.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(stored_ids(daemon, "imap-crash-")) >= args.messages:
                break
            time.sleep(0.2)
        time.sleep(1.5)  # one more poll: nothing may be fetched again
        daemon.stop()
        counts = stored_ids(daemon, "imap-crash-")
        integrity = daemon.query("PRAGMA integrity_check")[0][0]
    finally:
        dovecot.stop()
    expected = ["imap-crash-%d@customers.test" % i for i in range(args.messages)]
    lost = [m for m in expected if m not in counts]
    duplicated = [m for m, c in counts.items() if c > 1]
    print(
        "crash-suite imap: kills=%d appended=%d stored=%d lost=%d duplicated=%d integrity=%s"
        " stored_at_kills=%s"
        % (args.kills, args.messages, sum(counts.values()), len(lost), len(duplicated),
           integrity, progress)
    )
    for m in (lost + duplicated)[:10]:
        print("  %s: %s" % ("lost" if m in lost else "duplicated", m))
    return not lost and not duplicated and integrity == "ok"


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


def outbound_case(args, work):
    sink, sink_dir, port = start_sink(work)
    try:
        daemon = Daemon(args.bin, work, OUTBOUND.format(port=port))
        body = os.path.join(work, "body.txt")
        with open(body, "w") as f:
            f.write("Here is the quote you asked for.\n")
        queued = []
        for i in range(args.replies):
            out = daemon.cli(
                "compose", "--as", "alice@acme.example", "--from", SUPPORT,
                "--to", "customer%d@customers.test" % i, "--subject", "Quote %d" % i,
                "--body-file", body, "--json",
            )
            queued.append(json.loads(out)["message_id"])
        daemon.start()
        progress = []
        for _ in range(args.kills):
            time.sleep(random.uniform(args.out_min_gap, args.out_max_gap))
            daemon.kill()
            progress.append(len(received_ids(sink_dir)))
            daemon.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pending = daemon.query(
                "SELECT COUNT(*) FROM outbound_deliveries WHERE status != 'sent'"
            )[0][0]
            if pending == 0:
                break
            time.sleep(0.2)
        daemon.stop()
        integrity = daemon.query("PRAGMA integrity_check")[0][0]
        counts = received_ids(sink_dir)
    finally:
        sink.kill()
        sink.wait()
    lost = [m for m in queued if m not in counts]
    duplicated = [m for m in queued if counts.get(m, 0) > 1]
    max_copies = max([counts.get(m, 0) for m in queued] or [0])
    print(
        "crash-suite outbound: kills=%d queued=%d received=%d lost=%d duplicated=%d"
        " max_copies=%d integrity=%s received_at_kills=%s"
        % (args.kills, len(queued), sum(counts.values()), len(lost), len(duplicated),
           max_copies, integrity, progress)
    )
    for m in lost[:10]:
        print("  lost: %s" % m)
    return not lost and max_copies <= 2 and integrity == "ok"


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
    parser.add_argument("--bin", default="target/debug/inboxgate")
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit("crash-suite: no binary at %s (cargo build first)" % args.bin)
    args.bin = os.path.abspath(args.bin)
    ok = True
    if args.case in ("imap", "both"):
        ok &= imap_case(args, tempfile.mkdtemp(prefix="inboxgate-crash-imap."))
    if args.case in ("outbound", "both"):
        ok &= outbound_case(args, tempfile.mkdtemp(prefix="inboxgate-crash-out."))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
