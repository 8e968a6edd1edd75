#!/usr/bin/env python3
"""C4 spam accuracy on held-out mail (issue 14): inboxgate beside SpamAssassin.

    python3 scripts/measure-spam.py [--binary target/release/inboxgate]
        [--split date|domain|fifth ...] [--hard-ham DIR] [--no-spamassassin]
        [--sa-cache FILE] [--csv FILE] [--without GROUP,...] [--bench]

Splits of the shared folders (../shared/corpora/spam/spamassassin: spam-1, easy-ham-1):
- `date`   (default): every message dated by its Date header (the topmost Received
  date when the header is missing or outside 1995-2010, as forged spam dates are);
  each class cut at its own 70th percentile: train on the older 70%, test on the
  newer 30%. (One cut-off for both would leave 17 spam to test: spam-1 ends earlier
  than easy-ham-1.)
- `domain` (default): by the From address's domain, md5(domain) % 4 == 0 is tested,
  the rest trained; no sender domain is on both sides.
- `fifth`: the old split (every fifth file held back), which leaks campaigns.
`--hard-ham DIR` adds a folder of hard ham to the test side of every split (the shared
folders hold none, so by default the test ham is easy ham only: say so when quoting).

For each split: inboxgate trained with `spam train` on the training side, then
`classify --json` on the test side (no network checks on either side); SpamAssassin
4 with its stock rules (skip_rbl_checks, no network) and its Bayes trained with sa-learn
on the same training side, scanned through spamd/spamc on loopback. SpamAssassin's
scores do not change while inboxgate does, so they are cached (`--sa-cache`, default
target/measure-spam-sa.json); delete the file to rescan. Every test message is scanned
(about 900 per split, ~1 s each on 2 cores on the first run).

Prints per split: counts, recall and false-positive rate at each one's own threshold,
then the precision/recall curve over the score for both, and the lowest threshold that
keeps false positives at or under 0.5%. Per-message scores go to `--csv` (default
target/measure-spam.csv).

`--bench` instead times one `inboxgate classify` process over the whole corpus (3,000
messages) with a model trained on all of it, on one core (taskset -c 0 when available),
and prints messages per second with and without start-up and model load."""

import argparse
import csv
import email
import email.utils
import hashlib
import json
import os
import re
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
GOAL_FP = 0.005


def listing(folder):
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if not n.startswith("."))


def headers_of(path):
    with open(path, "rb") as f:
        raw = f.read(65536)
    end = raw.find(b"\n\n")
    return email.message_from_bytes(raw if end < 0 else raw[:end + 2])


def timestamp(value):
    try:
        t = email.utils.parsedate_to_datetime(value)
        return t.timestamp() if 1995 <= t.year <= 2010 else None
    except (TypeError, ValueError, IndexError):
        return None


def message_date(path):
    h = headers_of(path)
    t = timestamp(str(h.get("Date", "")))
    if t is not None:
        return t
    for received in h.get_all("Received", []):
        t = timestamp(str(received).rsplit(";", 1)[-1].strip())
        if t is not None:
            return t
    return 0.0


def sender_domain(path):
    address = email.utils.parseaddr(str(headers_of(path).get("From", "")))[1].lower()
    return address.rsplit("@", 1)[-1] if "@" in address else "(none)"


def split_date(spam, ham):
    cuts, train = [], set()
    for files in (spam, ham):
        dated = sorted((message_date(f), f) for f in files)
        cut = int(len(dated) * 0.7)
        cuts.append(dated[cut][0])
        train |= {f for _, f in dated[:cut]}
    return cuts, train


def split_domain(spam, ham):
    train = set()
    for f in spam + ham:
        if int(hashlib.md5(sender_domain(f).encode()).hexdigest(), 16) % 4 != 0:
            train.add(f)
    return None, train


def split_fifth(spam, ham):
    train = set()
    for files in (spam, ham):
        train |= {f for i, f in enumerate(files) if i % 5 != 0}
    return None, train


SPLITS = {"date": split_date, "domain": split_domain, "fifth": split_fifth}


def link_all(files, folder):
    os.makedirs(folder)
    for f in files:
        os.symlink(os.path.abspath(f), os.path.join(folder, os.path.basename(f)))


def inboxgate_scores(binary, conf, files):
    """file -> (score, verdict)"""
    scores = {}
    for start in range(0, len(files), 500):
        out = subprocess.run([binary, "--config", conf, "classify", "--json", *files[start:start + 500]],
                             capture_output=True, text=True, check=True)
        for line in out.stdout.splitlines():
            row = json.loads(line)
            scores[row["file"]] = (row["score"] or 0.0, row["verdict"])
    return scores


def inboxgate_run(binary, tmp, train_spam, train_ham, test):
    conf = os.path.join(tmp, "inboxgate.toml")
    with open(conf, "w") as f:
        f.write(config(os.path.join(tmp, "data"), 2525))
    link_all(train_spam, os.path.join(tmp, "train-spam"))
    link_all(train_ham, os.path.join(tmp, "train-ham"))
    started = time.monotonic()
    subprocess.run([binary, "--config", conf, "spam", "train",
                    "--spam", os.path.join(tmp, "train-spam"),
                    "--ham", os.path.join(tmp, "train-ham")], check=True, capture_output=True)
    trained_in = time.monotonic() - started
    started = time.monotonic()
    scores = inboxgate_scores(binary, conf, test)
    return scores, trained_in, time.monotonic() - started


def spamassassin_scores(tmp, train_spam_dir, train_ham_dir, files):
    """file -> (score, required)"""
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
    for flag, folder in (("--spam", train_spam_dir), ("--ham", train_ham_dir)):
        subprocess.run(["sa-learn", *common, flag, folder], check=True, capture_output=True)
    subprocess.run(["chmod", "-R", "a+rw", bayes], check=True)
    port = free_port()
    spamd = subprocess.Popen(
        ["spamd", "-L", "-x", "--siteconfigpath", site, "-u", "nobody", "-i", "127.0.0.1",
         "-p", str(port), "--max-children", "2", "--pidfile", os.path.join(tmp, "spamd.pid")],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "spamd.log"), "w"))
    try:
        if not wait_for_port(port, timeout=60) or spamd.poll() is not None:
            with open(os.path.join(tmp, "spamd.log")) as log:
                raise RuntimeError("spamd did not start: " + log.read()[-2000:])

        def scan(path):
            with open(path, "rb") as f:
                out = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(port), "-c"],
                                     stdin=f, capture_output=True, text=True)
            score, required = out.stdout.strip().split("/")
            if float(required) == 0.0:
                raise RuntimeError(f"spamc failed on {path}: {out.stderr.strip()}")
            return path, (float(score), float(required))

        with ThreadPoolExecutor(2) as pool:
            return dict(pool.map(scan, files))
    finally:
        spamd.terminate()
        spamd.wait()


def counts(spam, ham, flagged):
    caught = sum(1 for f in spam if f in flagged)
    false = sum(1 for f in ham if f in flagged)
    return caught, false


def line(name, spam, ham, flagged, threshold):
    caught, false = counts(spam, ham, flagged)
    print(f"  {name:<30} {threshold:>9} {caught:>4}/{len(spam):<4} {caught / max(len(spam), 1):>7.1%} "
          f"{false:>4}/{len(ham):<5} {false / max(len(ham), 1):>7.2%}")


def curve(name, spam, ham, score, thresholds):
    print(f"  {name}: precision/recall over the score threshold")
    print(f"    {'threshold':>9} {'caught':>9} {'recall':>7} {'false pos':>10} {'FP rate':>7} {'precision':>9}")
    for t in thresholds:
        caught, false = counts(spam, ham, {f for f in spam + ham if score(f) >= t})
        precision = caught / (caught + false) if caught + false else 1.0
        print(f"    {t:>9.2f} {caught:>4}/{len(spam):<4} {caught / len(spam):>7.1%} {false:>4}/{len(ham):<5} "
              f"{false / len(ham):>7.2%} {precision:>9.3f}")
    # The exact operating point, over every score seen (not only the rows above).
    for t in sorted(set(score(f) for f in spam + ham)):
        caught, false = counts(spam, ham, {f for f in spam + ham if score(f) >= t})
        if false / len(ham) <= GOAL_FP:
            print(f"    lowest threshold with FP <= {GOAL_FP:.1%}: {t:.2f} -> {caught}/{len(spam)} "
                  f"({caught / len(spam):.1%}) caught, {false}/{len(ham)} ({false / len(ham):.2%}) false")
            return


def spread(values, n=20):
    values = sorted(set(round(v, 2) for v in values))
    if len(values) <= n:
        return values
    return [values[int(i * (len(values) - 1) / (n - 1))] for i in range(n)]


def run_split(args, name, spam_all, ham_all, hard_ham, sa_cache, rows):
    cut, train = SPLITS[name](spam_all, ham_all)
    train_spam = [f for f in spam_all if f in train]
    train_ham = [f for f in ham_all if f in train]
    test_spam = [f for f in spam_all if f not in train]
    test_ham = [f for f in ham_all if f not in train] + hard_ham
    test = test_spam + test_ham
    when = ", cut-off spam {} ham {}".format(*(time.strftime('%Y-%m-%d', time.gmtime(c)) for c in cut)) \
        if cut else ""
    print(f"\n== split {name}{when}: train {len(train_spam)} spam + {len(train_ham)} ham; "
          f"test {len(test_spam)} spam + {len(test_ham)} ham ({len(hard_ham)} hard)")
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "ig"))
        ig, trained_in, scored_in = inboxgate_run(args.binary, os.path.join(tmp, "ig"), train_spam, train_ham, test)
        print(f"  inboxgate: spam train {trained_in:.1f} s, classify {len(test)} in {scored_in:.1f} s")
        sa = {}
        if not args.no_spamassassin and shutil.which("spamd"):
            key = f"{name}:{len(train_spam)}:{len(train_ham)}"
            cached = sa_cache.get(key, {})
            if all(f in cached for f in test):
                sa = {f: tuple(cached[f]) for f in test}
                print("  SpamAssassin: scores from the cache")
            else:
                started = time.monotonic()
                sa_tmp = os.path.join(tmp, "sa")
                os.makedirs(sa_tmp)
                os.chmod(tmp, 0o755)  # spamd runs as nobody
                link_all(train_spam, os.path.join(sa_tmp, "train-spam"))
                link_all(train_ham, os.path.join(sa_tmp, "train-ham"))
                sa = spamassassin_scores(sa_tmp, os.path.join(sa_tmp, "train-spam"),
                                         os.path.join(sa_tmp, "train-ham"), test)
                sa_cache[key] = sa
                print(f"  SpamAssassin: trained and scanned in {time.monotonic() - started:.0f} s")
    print(f"  {'classifier':<30} {'threshold':>9} {'caught':>9} {'recall':>7} {'false pos':>10} {'FP rate':>7}")
    line("inboxgate (verdict spam)", test_spam, test_ham,
         {f for f, (_, v) in ig.items() if v == "spam"}, "config")
    if sa:
        line(f"SpamAssassin {sa_version()}", test_spam, test_ham,
             {f for f, (s, r) in sa.items() if s >= r}, f"{next(iter(sa.values()))[1]:.1f}")
    curve("inboxgate", test_spam, test_ham, lambda f: ig[f][0], spread(s for s, _ in ig.values()))
    if sa:
        curve("SpamAssassin", test_spam, test_ham, lambda f: sa[f][0], spread(s for s, _ in sa.values()))
    for f in test:
        rows.append([name, os.path.relpath(f, ROOT) if f.startswith(ROOT) else f,
                     "spam" if f in test_spam else "ham", ig[f][0], ig[f][1],
                     sa[f][0] if f in sa else ""])


def bench(binary):
    files = listing(SPAM) + listing(HAM)
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "ig"))
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
        inboxgate_run(binary, os.path.join(tmp, "ig"), listing(SPAM), listing(HAM), [])
        conf = os.path.join(tmp, "ig", "inboxgate.toml")

        def timed(paths):
            started = time.monotonic()
            subprocess.run([*pin, binary, "--config", conf, "classify", "--json", *paths],
                           check=True, stdout=subprocess.DEVNULL)
            return time.monotonic() - started

        start_up = min(timed(files[:1]) for _ in range(3))
        took = timed(files)
    print(f"classified {len(files)} messages in one process in {took:.2f} s on one core: "
          f"{len(files) / took:.0f} messages/s with start-up and model load ({start_up:.2f} s); "
          f"{(len(files) - 1) / (took - start_up):.0f} messages/s classifying")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/inboxgate")
    ap.add_argument("--split", action="append", choices=sorted(SPLITS))
    ap.add_argument("--hard-ham", action="append", default=[])
    ap.add_argument("--no-spamassassin", action="store_true")
    ap.add_argument("--sa-cache", default="target/measure-spam-sa.json")
    ap.add_argument("--csv", default="target/measure-spam.csv")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--without", default="",
                    help="token groups left out, to measure what each adds: "
                         "headers,urls,html,bigrams,case,features")
    args = ap.parse_args()
    if args.without:
        os.environ["INBOXGATE_TOKENS_WITHOUT"] = args.without
    if args.bench:
        bench(args.binary)
        return 0
    spam, ham = listing(SPAM), listing(HAM)
    hard_ham = [f for d in args.hard_ham for f in listing(d)]
    try:
        with open(args.sa_cache) as f:
            sa_cache = json.load(f)
    except (OSError, ValueError):
        sa_cache = {}
    rows = []
    for name in args.split or ["date", "domain"]:
        run_split(args, name, spam, ham, hard_ham, sa_cache, rows)
        with open(args.sa_cache, "w") as f:
            json.dump(sa_cache, f)
    with open(args.csv, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["split", "file", "class", "inboxgate_score", "inboxgate_verdict", "spamassassin_score"])
        out.writerows(rows)
    print(f"\nper-message scores: {args.csv}")
    return 0


def sa_version():
    out = subprocess.run(["spamassassin", "--version"], capture_output=True, text=True)
    return out.stdout.split()[2] if out.returncode == 0 else "?"


if __name__ == "__main__":
    sys.exit(main())
