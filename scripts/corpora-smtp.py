#!/usr/bin/env python3
"""Every message of ../shared/corpora through SMTP into a fresh daemon: each must get a 250,
the daemon must stay up, and stored + duplicates reported must equal messages sent.

Prints one line per corpus and a total; exits non-zero on any refusal, crash or loss.
Usage: scripts/corpora-smtp.py [--bin target/release/inboxgate] [--corpora ../shared/corpora]
"""

import argparse
import mailbox
import os
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


SKIP = (".json", ".xml", ".md", ".tsv", ".py", ".out")


def messages(root):
    """(corpus name, raw bytes) for every message file; mbox files are split."""
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            corpus = os.path.relpath(path, root).split(os.sep)[0]
            if name.endswith(SKIP) or "expected" in path or name.startswith("README"):
                continue
            if name.endswith(".mbox") or "mbox" in name:
                for msg in mailbox.mbox(path):
                    yield corpus, msg.as_bytes()
                continue
            with open(path, "rb") as f:
                yield corpus, f.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/inboxgate")
    parser.add_argument("--corpora", default="../shared/corpora")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="inboxgate-corpora.")
    port = harness.free_port()
    config = os.path.join(work, "c.toml")
    with open(config, "w") as f:
        f.write(harness.config(os.path.join(work, "data"), port, "mx.corpora.test"))
    daemon = subprocess.Popen([args.bin, "--config", config, "serve"], stderr=subprocess.DEVNULL)
    harness.wait_for_port(port)
    sent, refused = {}, []
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
    for n, (corpus, raw) in enumerate(messages(args.corpora)):
        if n and n % 200 == 0:
            smtp.quit()
            smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
        sent[corpus] = sent.get(corpus, 0) + 1
        try:
            smtp.sendmail("corpus@test.example", [harness.SUPPORT], raw)
        except smtplib.SMTPException as e:
            refused.append("%s #%d: %s" % (corpus, n, e))
            smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
    smtp.quit()
    alive = daemon.poll() is None
    daemon.terminate()
    daemon.wait(timeout=30)
    db = sqlite3.connect(os.path.join(work, "data", "inboxgate.db"))
    stored = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    distinct = db.execute("SELECT COUNT(*) FROM known_ids").fetchone()[0]
    total = sum(sent.values())
    for corpus, count in sorted(sent.items()):
        print("corpora-smtp: %-10s sent=%d" % (corpus, count))
    print(
        "corpora-smtp: total sent=%d accepted=%d refused=%d stored=%d distinct_ids=%d daemon_alive=%s"
        % (total, total - len(refused), len(refused), stored, distinct, alive)
    )
    for line in refused[:10]:
        print("  refused: " + line)
    sys.exit(0 if alive and not refused and stored == distinct else 1)


if __name__ == "__main__":
    main()
