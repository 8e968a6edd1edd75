#!/usr/bin/env bash
# IMAP sync benchmark (not a test): inboxgate's full ingest of a team mailbox against
# mbsync (Debian isync) copying the same mailbox to a Maildir.
#
# Mailbox: MESSAGES (default 10000) messages cycled from
# ../shared/corpora/spam/spamassassin, each given a unique Message-ID so none is a
# duplicate, in INBOX of a private Dovecot on a free loopback port (plain IMAP). The
# messages are written into the Maildir and indexed by Dovecot before timing starts.
# Per round, alternating which goes first:
#   inboxgate — a fresh data dir; `inboxgate serve` with one IMAP channel; timed from
#               start until `channels status` reports every message ingested and the
#               channel idle (parse, dedupe, contact, thread, SQLite commit with fsync).
#   mbsync    — a fresh Maildir; `mbsync -a` with Sync Pull (fsyncs each message).
# Prints each round, the medians and the ratio inboxgate/mbsync (below 1: faster).
# Env: ROUNDS (default 3), MESSAGES. Needs root (Dovecot's mail user is uid 8).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-10000}
USER_NAME=help@demo.example
PASSWORD=benchpass

cd "$(dirname "$0")/.."
REPO=$(pwd)
CORPUS="$REPO/../shared/corpora/spam/spamassassin"

log() { printf '%s\n' "$*" >&2; }
die() { log "bench-imap: $*"; exit 1; }

command -v dovecot >/dev/null || die "dovecot not found (apt-get install dovecot-imapd)"
command -v mbsync >/dev/null || die "mbsync not found (apt-get install isync)"
[ -d "$CORPUS" ] || die "missing $CORPUS (shared/ must sit beside the repo)"

log "== building inboxgate (release)"
cargo build --release --quiet
BIN="$REPO/target/release/inboxgate"

TMP=$(mktemp -d -t inboxgate-imap-bench.XXXXXX)
chmod 755 "$TMP"
IG_PID=
cleanup() {
  if [ -n "$IG_PID" ] && kill -0 "$IG_PID" 2>/dev/null; then
    kill -TERM "$IG_PID" 2>/dev/null || true
    wait "$IG_PID" 2>/dev/null || true
  fi
  [ -f "$TMP/dovecot.conf" ] && doveadm -c "$TMP/dovecot.conf" stop 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)

# ---- the mailbox -----------------------------------------------------------------
log "== writing $MESSAGES messages into a Maildir"
MAILDIR="$TMP/home/Maildir"
mkdir -p "$MAILDIR/cur" "$MAILDIR/new" "$MAILDIR/tmp"
/usr/bin/python3 - "$CORPUS" "$MAILDIR/cur" "$MESSAGES" <<'EOF'
import os, sys
corpus, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = sorted(os.path.join(corpus, d, f) for d in ("easy-ham-1", "spam-1")
               for f in os.listdir(os.path.join(corpus, d)))
originals = [open(f, "rb").read() for f in files]
for n in range(count):
    raw = originals[n % len(originals)]
    head, sep, body = raw.partition(b"\n\n")
    lines = head.split(b"\n")
    if lines and lines[0].startswith(b"From "):
        lines = lines[1:]
    lines = [b"X-Original-" + l if l.lower().startswith(b"message-id:") else l for l in lines]
    msg = b"Message-ID: <bench-%d@imap.bench>\n" % n + b"\n".join(lines) + sep + body
    with open(os.path.join(out, "%d.bench%d:2," % (1700000000 + n, n)), "wb") as f:
        f.write(msg)
EOF
chown -R 8:8 "$TMP/home"
echo "$USER_NAME:{PLAIN}$PASSWORD:8:8::$TMP/home::" > "$TMP/users"
echo "$PASSWORD" > "$TMP/password"
cat > "$TMP/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $TMP/run
state_dir = $TMP/state
log_path = $TMP/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $TMP/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $TMP/users
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT
  }
}
EOF
dovecot -c "$TMP/dovecot.conf" </dev/null >/dev/null 2>&1
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
log "== indexing the mailbox in Dovecot (untimed)"
doveadm -c "$TMP/dovecot.conf" index -u "$USER_NAME" INBOX
doveadm -c "$TMP/dovecot.conf" mailbox status -u "$USER_NAME" "messages vsize" INBOX >&2

now_ms() { date +%s%3N; }

# ---- one inboxgate run: prints milliseconds ----------------------------------------
run_inboxgate() {
  local dir="$TMP/ig" ; rm -rf "$dir"; mkdir -p "$dir"
  sed "s|@DATA@|$dir/data|; s|@PORT@|$PORT|; s|@PW@|$TMP/password|" > "$dir/inboxgate.toml" <<'EOF'
[server]
hostname = "bench.test"
data_dir = "@DATA@"
[smtp]
listen = ["127.0.0.1:0"]
[account]
subdomain = "bench"
fallback_domain = "hs-inbox.com"
company_name = "Bench"
[[inboxes]]
name = "Team"
  [[inboxes.channels]]
  kind = "imap"
  address = "help@demo.example"
  from_name = { mode = "company", company = "Bench" }
  imap = { host = "127.0.0.1", port = @PORT@, tls = "none", username = "help@demo.example", password_file = "@PW@" }
EOF
  local start end
  start=$(now_ms)
  "$BIN" --config "$dir/inboxgate.toml" serve 2>"$dir/log" &
  IG_PID=$!
  until "$BIN" --config "$dir/inboxgate.toml" channels status --json 2>/dev/null \
      | /usr/bin/python3 -c "import json,sys; c=json.load(sys.stdin)[0]; sys.exit(0 if c['messages_ingested']>=$MESSAGES and c['state']=='idle' else 1)" 2>/dev/null; do
    kill -0 "$IG_PID" 2>/dev/null || die "inboxgate exited: $(tail -5 "$dir/log")"
    sleep 0.05
  done
  end=$(now_ms)
  kill -TERM "$IG_PID"; wait "$IG_PID" 2>/dev/null || true; IG_PID=
  echo $((end - start))
}

# ---- one mbsync run: prints milliseconds -------------------------------------------
run_mbsync() {
  local dir="$TMP/mb"; rm -rf "$dir"; mkdir -p "$dir/mail"
  cat > "$dir/mbsyncrc" <<EOF
IMAPAccount bench
Host 127.0.0.1
Port $PORT
User $USER_NAME
Pass $PASSWORD
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path $dir/mail/
Inbox $dir/mail/INBOX

Channel bench
Far :remote:
Near :local:
Patterns INBOX
Sync Pull
Create Near
SyncState *
EOF
  local start end
  start=$(now_ms)
  mbsync -q -c "$dir/mbsyncrc" -a >&2
  end=$(now_ms)
  local got; got=$(find "$dir/mail/INBOX" -type f -path '*/cur/*' -o -type f -path '*/new/*' | wc -l)
  [ "$got" -eq "$MESSAGES" ] || die "mbsync copied $got of $MESSAGES"
  echo $((end - start))
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

IG_TIMES=(); MB_TIMES=()
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then
    ig=$(run_inboxgate); mb=$(run_mbsync)
  else
    mb=$(run_mbsync); ig=$(run_inboxgate)
  fi
  IG_TIMES+=("$ig"); MB_TIMES+=("$mb")
  log "round $round: inboxgate ${ig} ms, mbsync ${mb} ms"
done

IG_MED=$(printf '%s\n' "${IG_TIMES[@]}" | median)
MB_MED=$(printf '%s\n' "${MB_TIMES[@]}" | median)
echo "messages:           $MESSAGES"
echo "inboxgate (median): ${IG_MED} ms ($(( MESSAGES * 1000 / (IG_MED > 0 ? IG_MED : 1) )) msg/s)"
echo "mbsync    (median): ${MB_MED} ms ($(( MESSAGES * 1000 / (MB_MED > 0 ? MB_MED : 1) )) msg/s)"
awk -v a="$IG_MED" -v b="$MB_MED" 'BEGIN { printf "ratio inboxgate/mbsync: %.2f\n", a / b }'
