#!/usr/bin/env python3
"""C5 accuracy: runs `inboxgate classify` over the bounce corpus (sisimai set-of-emails,
with its expected-results.tsv) and the SpamAssassin easy ham, and prints precision and
recall per class (bounce, auto_reply, feedback) plus what the ham was taken for.

    python3 scripts/measure-autoflags.py [--binary target/release/inboxgate]

Truth: a tsv row with reason `vacation` is an auto-reply, `feedback` a feedback report,
any other row a bounce; maildir/not/ holds mail that is none of these. In the ham, a
message with a List-Id, List-Post or Mailing-List header is list mail and must come out
`bulk`; no ham may come out bounce, auto_reply or feedback."""

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
        print(f"bounce corpus: {len(truth)} messages")
        print(f"{'class':<11} {'truth':>5} {'flagged':>7} {'right':>5} {'precision':>9} {'recall':>7}")
        for cls in CLASSES:
            actual = {p for p, k in truth.items() if k == cls}
            flagged = {p for p, r in got.items() if r["verdict"] == cls}
            right = actual & flagged
            precision = len(right) / len(flagged) if flagged else 0.0
            recall = len(right) / len(actual) if actual else 0.0
            print(f"{cls:<11} {len(actual):>5} {len(flagged):>7} {len(right):>5} {precision:>9.3f} {recall:>7.3f}")
        misses = {}
        for p, k in truth.items():
            v = got.get(p, {}).get("verdict", "missing")
            if v != k and not (k == "none" and v in ("clean", "bulk", "spam")):
                misses.setdefault(f"{k} -> {v}", []).append(os.path.basename(p))
        for key, names in sorted(misses.items()):
            print(f"  {key}: {len(names)} e.g. {', '.join(names[:6])}")

        ham = sorted(os.path.join(HAM, n) for n in os.listdir(HAM))
        got = classify(args.binary, conf, ham)
        counts = {}
        for r in got.values():
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
        lists = [p for p in ham if is_list_mail(p)]
        lists_bulk = sum(1 for p in lists if got.get(p, {}).get("verdict") == "bulk")
        wrong = sum(counts.get(c, 0) for c in CLASSES)
        print(f"easy ham: {len(ham)} messages, verdicts {dict(sorted(counts.items()))}")
        print(f"  list mail (List-Id/List-Post/Mailing-List): {len(lists)}, bulk {lists_bulk} "
              f"(recall {lists_bulk / max(len(lists), 1):.3f})")
        print(f"  ham taken for bounce/auto_reply/feedback: {wrong} ({wrong / len(ham):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
