"""Shared by the operator scripts (crash suites, bombs, corpora): a minimal daemon
config on loopback ports, a free port, and waiting for a listener."""

import socket
import time

CONFIG = """
[server]
hostname = "{hostname}"
data_dir = "{data}"

[smtp]
listen = ["127.0.0.1:{smtp_port}"]
{smtp_extra}

[api]
listen = "127.0.0.1:{api_port}"

[classification]
# The scripts' mail comes from made-up domains: no SPF/DKIM/DMARC lookups.
check_authentication = false

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
  from_name = {{ mode = "company", company = "Acme Support" }}
"""

SUPPORT = "support@acme.hs-inbox.test"


def config(data, smtp_port, hostname="mx.scripts.test", smtp_extra="", api_port=0):
    """The config text: one Support inbox at SUPPORT; append more TOML after it."""
    return CONFIG.format(
        hostname=hostname, data=data, smtp_port=smtp_port, smtp_extra=smtp_extra, api_port=api_port
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
