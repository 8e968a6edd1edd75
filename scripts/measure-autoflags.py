#!/usr/bin/env python3
"""C5 accuracy: runs `inboxgate classify` over the bounce corpus (sisimai set-of-emails,
with its expected-results.tsv) and over mail from people (the ham folders), and prints
precision and recall per class (bounce, auto_reply, feedback) with their counts, what
each class was confused with, how many bounces the bounce parser could link to the
message they return, and what the ham was wrongly taken for.

    python3 scripts/measure-autoflags.py [--binary target/release/inboxgate]

Truth: a tsv row with reason `vacation` is an auto-reply, `feedback` a feedback report,
any other row a bounce; maildir/not/ holds mail that is none of these. Ham (none of the
three classes): the SpamAssassin easy ham, the notmuch list threads (default, lkml) and
the project's own fixtures/ (mail from people, and the people's replies and forwards
in fixtures/autoflags/). In the easy ham, a message with a List-Id, List-Post or
Mailing-List header is list mail and must come out `bulk`. Precision counts every
message flagged with a class, in the bounce corpus and in the ham."""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from harness import config

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpora")
BOUNCES = os.path.join(ROOT, "bounces", "sisimai-set-of-emails")
HAM = os.path.join(ROOT, "spam", "spamassassin", "easy-ham-1")
THREADS = os.path.join(ROOT, "threads", "notmuch-test-corpora")
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")
CLASSES = ["bounce", "auto_reply", "feedback"]


def classify(binary, conf, files):
    verdicts = {}
    for start in range(0, len(files), 200):
        out = subprocess.run(
            [binary, "--config", conf, "classify", "--json", *files[start:start + 200]],
            capture_output=True, text=True, check=False)
        for line in out.stdout.splitlines():
            row = json.loads(line)
            verdicts[row["file"]] = row
    return verdicts


def truth_of_bounces():
    truth = {}
    with open(os.path.join(BOUNCES, "expected-results.tsv")) as f:
        next(f)
        for line in f:
            cols = line.rstrip("\n").split("\t")
            name, reason = cols[0], cols[4]
            kind = {"vacation": "auto_reply", "feedback": "feedback"}.get(reason, "bounce")
            path = os.path.join(BOUNCES, "maildir", "bsd", name)
            if os.path.exists(path):
                truth[path] = kind
    for name in sorted(os.listdir(os.path.join(BOUNCES, "maildir", "not"))):
        truth[os.path.join(BOUNCES, "maildir", "not", name)] = "none"
    return truth


def is_list_mail(path):
    with open(path, "rb") as f:
        head = f.read().split(b"\n\n", 1)[0].lower()
    return any(b"\n" + h in b"\n" + head for h in (b"list-id:", b"list-post:", b"mailing-list:"))


def files_under(*dirs):
    found = []
    for top in dirs:
        for base, _, names in os.walk(top):
            found.extend(os.path.join(base, n) for n in names if not n.endswith((".md", ".txt")))
    return sorted(found)


def ham_sources():
    return {
        "easy-ham-1": sorted(os.path.join(HAM, n) for n in os.listdir(HAM)),
        "notmuch default+lkml": files_under(os.path.join(THREADS, "default"),
                                            os.path.join(THREADS, "lkml")),
        # fixtures/autoflags/ also holds bounces, a delay warning and an out-of-office.
        "fixtures/": [p for p in files_under(FIXTURES) if p.endswith(".eml")
                      and not os.path.basename(p).startswith(("bounce-", "delay-", "out-of-office-"))],
    }


def report_corpus(truth, got):
    print(f"bounce corpus: {len(truth)} messages")
    misses = {}
    for p, k in truth.items():
        v = got.get(p, {}).get("verdict", "missing")
        if v != k and not (k == "none" and v in ("clean", "bulk", "spam")):
            misses.setdefault(f"{k} -> {v}", []).append(os.path.basename(p))
    for key, names in sorted(misses.items()):
        print(f"  {key}: {len(names)} e.g. {', '.join(names[:6])}")
    bounces = [p for p, k in truth.items() if k == "bounce" and got.get(p, {}).get("verdict") == "bounce"]
    parsed = [got[p]["bounce"] for p in bounces if got[p].get("bounce")]
    with_ids = sum(1 for b in parsed if b["message_ids"])
    with_failed = sum(1 for b in parsed if b["failed"])
    print(f"  bounces flagged: {len(bounces)}; read as a bounce report or notice: {len(parsed)}, "
          f"naming the returned Message-ID: {with_ids}, naming failed recipients: {with_failed}")


def report_ham(binary, conf):
    flagged = {c: 0 for c in CLASSES}
    for name, files in ham_sources().items():
        got = classify(binary, conf, files)
        counts, wrong = {}, {}
        for p, r in got.items():
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
            if r["verdict"] in CLASSES:
                flagged[r["verdict"]] += 1
                wrong.setdefault(r["verdict"], []).append(
                    f"{os.path.basename(p)} ({' '.join(r['reasons'][:1])})")
        print(f"{name}: {len(files)} messages, verdicts {dict(sorted(counts.items()))}")
        if name == "easy-ham-1":
            lists = [p for p in files if is_list_mail(p)]
            lists_bulk = sum(1 for p in lists if got.get(p, {}).get("verdict") == "bulk")
            print(f"  list mail (List-Id/List-Post/Mailing-List): {len(lists)}, bulk {lists_bulk} "
                  f"(recall {lists_bulk / max(len(lists), 1):.3f})")
        total = sum(len(v) for v in wrong.values())
        print(f"  taken for bounce/auto_reply/feedback: {total} ({total / max(len(files), 1):.4f})")
        for cls, names in sorted(wrong.items()):
            print(f"    {cls}: {len(names)} e.g. {', '.join(names[:4])}")
    return flagged


def report_classes(truth, got, ham_flagged):
    print(f"{'class':<11} {'truth':>5} {'flagged':>7} {'right':>5} {'ham hit':>7} "
          f"{'precision':>9} {'recall':>7}")
    for cls in CLASSES:
        actual = {p for p, k in truth.items() if k == cls}
        flagged = {p for p, r in got.items() if r["verdict"] == cls}
        right = actual & flagged
        all_flagged = len(flagged) + ham_flagged[cls]
        precision = len(right) / all_flagged if all_flagged else 0.0
        recall = len(right) / len(actual) if actual else 0.0
        print(f"{cls:<11} {len(actual):>5} {len(flagged):>7} {len(right):>5} {ham_flagged[cls]:>7} "
              f"{precision:>9.3f} {recall:>7.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/inboxgate")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "inboxgate.toml")
        with open(conf, "w") as f:
            f.write(config(os.path.join(tmp, "data"), 2525))
        truth = truth_of_bounces()
        got = classify(args.binary, conf, sorted(truth))
        report_corpus(truth, got)
        ham_flagged = report_ham(args.binary, conf)
        print("per class, over the bounce corpus and the ham:")
        report_classes(truth, got, ham_flagged)
    return 0


if __name__ == "__main__":
    sys.exit(main())
