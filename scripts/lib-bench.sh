# shellcheck shell=bash
# What the SMTP benchmarks share (sourced, not run): the account, user and Support
# inbox every benchmark node is configured with.

# bench_inbox_toml: the config from [account] to an open [classification] section
# (append its keys after it).
bench_inbox_toml() {
  cat <<'TOML'
[account]
subdomain = "acme"
fallback_domain = "hs-inbox.test"
company_name = "Acme"

[[users]]
email = "alice@acme.example"
name = "Alice Smith"

[[inboxes]]
name = "Support"

  [[inboxes.channels]]
  kind = "fallback"
  user = "support"
  from_name = { mode = "company", company = "Acme Support" }

[classification]
TOML
}

# port_open PORT: whether something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# bench_serve CONFIG LOG PORT LABEL: starts `$BIN --config CONFIG serve` in the
# background (its pid in BENCH_PID, a child of the calling shell) and waits up to 30 s
# for it to listen on PORT; otherwise prints its log and dies (the script's `die`).
bench_serve() {
  local config=$1 log=$2 port=$3 label=$4
  "$BIN" --config "$config" serve >"$log" 2>&1 &
  BENCH_PID=$!
  for _ in $(seq 300); do
    port_open "$port" && return 0
    kill -0 "$BENCH_PID" 2>/dev/null || { cat "$log" >&2; die "$label exited at start"; }
    sleep 0.1
  done
  cat "$log" >&2
  die "$label did not listen within 30 s"
}
