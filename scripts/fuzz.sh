#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (not part of CI) and prints, per target,
# the executions and whether a crash was found. Crashes land in fuzz/artifacts/TARGET/;
# turn each into a regression test before fixing it.
#
#   SECONDS_PER_TARGET=60 scripts/fuzz.sh [target…]
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The toolchain is stable, so
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${SECONDS_PER_TARGET:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(smtp_session data_framing ingest config_loader)
seed_corpus() {
  local target=$1 dir=corpus/$1
  mkdir -p "$dir"
  case $target in
    ingest) cp ../fixtures/*.eml "$dir"/ 2>/dev/null || true ;;
    config_loader) cp ../config/inboxgate.toml "$dir"/ ;;
    smtp_session)
      printf 'EHLO x\r\nMAIL FROM:<a@b.example> SIZE=10\r\nRCPT TO:<support@demo.hs-inbox.com>\r\nDATA\r\nSubject: s\r\n\r\nhi\r\n.\r\nQUIT\r\n' > "$dir/seed" ;;
    data_framing) printf 'Subject: x\r\n\r\n..dot\r\n.\r\n' > "$dir/seed" ;;
  esac
}
status=0
for target in "${targets[@]}"; do
  seed_corpus "$target"
  log=$(mktemp)
  if RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 >"$log" 2>&1; then
    result="no crash"
  else
    result="CRASH (see fuzz/artifacts/$target/)"; status=1
  fi
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || true)
  [ -n "$runs" ] || runs=$(grep -Eo '#[0-9]+' "$log" | tail -n 1 | tr -d '#')
  echo "fuzz: $target ${seconds}s executions=${runs:-?} $result"
  [ "$status" = 0 ] || tail -n 30 "$log"
  rm -f "$log"
done
exit $status
