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
