#!/usr/bin/env python3
"""C4 spam accuracy: train on 80% of the SpamAssassin corpus (spam-1 and easy-ham-1),
classify the held-back 20%, print precision and recall of the `spam` verdict — for
inboxgate (features alone, then features plus the trained token model) and, when it is
installed, for SpamAssassin beside it (its stock rules with network tests off, plus its
own Bayes trained on the same 80% with sa-learn, scanned through spamd/spamc).

    python3 scripts/measure-spam.py [--binary target/release/inboxgate] [--no-spamassassin]

The split is fixed (every fifth file, in name order, is held back), so runs compare.
The corpus is from 2002-2003: its DNS facts no longer hold, so no network test runs on
either side (README of ../shared/corpora)."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from harness import config, free_port, wait_for_port

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpora", "spam", "spamassassin")
SPAM = os.path.join(ROOT, "spam-1")
HAM = os.path.join(ROOT, "easy-ham-1")


def split(folder):
    files = sorted(os.path.join(folder, n) for n in os.listdir(folder) if not n.startswith("."))
    held = [f for i, f in enumerate(files) if i % 5 == 0]
    train = [f for i, f in enumerate(files) if i % 5 != 0]
    return train, held


def link_all(files, folder):
    os.makedirs(folder)
    for f in files:
        os.symlink(os.path.abspath(f), os.path.join(folder, os.path.basename(f)))


def inboxgate_verdicts(binary, conf, files):
    spam = set()
    for start in range(0, len(files), 200):
        out = subprocess.run([binary, "--config", conf, "classify", "--json", *files[start:start + 200]],
                             capture_output=True, text=True, check=True)
        for line in out.stdout.splitlines():
            row = json.loads(line)
            if row["verdict"] == "spam":
                spam.add(row["file"])
    return spam


def report(name, spam_held, ham_held, flagged):
    caught = len(flagged & set(spam_held))
    false = len(flagged & set(ham_held))
    precision = caught / (caught + false) if caught + false else 0.0
    recall = caught / len(spam_held)
    print(f"{name:<44} {caught:>4}/{len(spam_held):<4} {false:>4}/{len(ham_held):<5} "
          f"{precision:>9.3f} {recall:>7.3f}")


def spamassassin_flagged(tmp, spam_train, ham_train, files):
    site = os.path.join(tmp, "sa-site")
    os.makedirs(site)
    for name in os.listdir("/etc/spamassassin"):
        if name.endswith(".pre"):
            shutil.copy(os.path.join("/etc/spamassassin", name), site)
    bayes = os.path.join(tmp, "sa-bayes")
    os.makedirs(bayes)
    with open(os.path.join(site, "local.cf"), "w") as f:
        f.write(f"use_bayes 1\nbayes_auto_learn 0\nbayes_path {bayes}/bayes\n"
                "bayes_file_mode 0666\nskip_rbl_checks 1\n")
    os.chmod(tmp, 0o755)
    os.chmod(bayes, 0o777)
    common = ["--siteconfigpath", site, "-L"]
    for flag, folder in (("--spam", spam_train), ("--ham", ham_train)):
        subprocess.run(["sa-learn", *common, flag, folder], check=True, capture_output=True)
    subprocess.run(["chmod", "-R", "a+rw", bayes], check=True)
    port = free_port()
    spamd = subprocess.Popen(
        ["spamd", "-L", "-x", "--siteconfigpath", site, "-u", "nobody", "-i", "127.0.0.1",
         "-p", str(port), "--max-children", "2", "--pidfile", os.path.join(tmp, "spamd.pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_for_port(port, timeout=60):
            raise RuntimeError("spamd did not start")

        def is_spam(path):
            with open(path, "rb") as f:
                out = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(port), "-c"],
                                     stdin=f, capture_output=True, text=True)
            return path if out.returncode == 1 else None

        with ThreadPoolExecutor(2) as pool:
            return {p for p in pool.map(is_spam, files) if p}
    finally:
        spamd.terminate()
        spamd.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/inboxgate")
    ap.add_argument("--no-spamassassin", action="store_true")
    args = ap.parse_args()
    spam_train, spam_held = split(SPAM)
    ham_train, ham_held = split(HAM)
    held = spam_held + ham_held
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "inboxgate.toml")
        with open(conf, "w") as f:
            f.write(config(os.path.join(tmp, "data"), 2525))
        link_all(spam_train, os.path.join(tmp, "train-spam"))
        link_all(ham_train, os.path.join(tmp, "train-ham"))
        print(f"train {len(spam_train)} spam + {len(ham_train)} ham; "
              f"held back {len(spam_held)} spam + {len(ham_held)} ham")
        print(f"{'classifier':<44} {'caught':>9} {'false pos':>10} {'precision':>9} {'recall':>7}")
        report("inboxgate, features only (untrained)", spam_held, ham_held,
               inboxgate_verdicts(args.binary, conf, held))
        started = time.monotonic()
        subprocess.run([args.binary, "--config", conf, "spam", "train",
                        "--spam", os.path.join(tmp, "train-spam"),
                        "--ham", os.path.join(tmp, "train-ham")], check=True)
        trained_in = time.monotonic() - started
        report("inboxgate, features + token model", spam_held, ham_held,
               inboxgate_verdicts(args.binary, conf, held))
        print(f"  (spam train took {trained_in:.1f} s)")
        if args.no_spamassassin:
            return 0
        if not shutil.which("spamd") or not shutil.which("spamc"):
            print("SpamAssassin: not installed (apt-get install spamassassin spamc)")
            return 0
        report(f"SpamAssassin {sa_version()}, rules + Bayes (no network)", spam_held, ham_held,
               spamassassin_flagged(tmp, os.path.join(tmp, "train-spam"),
                                    os.path.join(tmp, "train-ham"), held))
    return 0


def sa_version():
    out = subprocess.run(["spamassassin", "--version"], capture_output=True, text=True)
    return out.stdout.split()[2] if out.returncode == 0 else "?"


if __name__ == "__main__":
    sys.exit(main())
