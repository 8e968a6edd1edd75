"""A recording SMTP receiver for the outbound tests (python3-aiosmtpd, run with
/usr/bin/python3).

Usage: smtp_sink.py DIR [OPTIONS_JSON]
OPTIONS_JSON: {"cert": PEM, "key": PEM, "auth": [USER, PASSWORD], "host": IP, "port": N}
-- with cert/key it offers STARTTLS and requires it; with auth it requires AUTH
(PLAIN/LOGIN).

It listens on host (127.0.0.1) and port (a free one) and prints the port on stdout. Every message
that reaches DATA is written to DIR/msg-N.eml with DIR/msg-N.json (envelope, TLS, login,
the reply given). DIR/rules.json, re-read for every command, scripts replies:
  {"rcpt": {"addr": "550 5.1.1 no such user"},   # per-recipient RCPT reply
   "data": ["451 4.3.0 busy", ...],              # replies to successive DATAs, then 250
   "data_delay": 30}                             # seconds to wait before answering DATA
"""

import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

DIR = sys.argv[1]
OPTIONS = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
RULES = os.path.join(DIR, "rules.json")


def rules():
    try:
        with open(RULES) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def next_data_reply():
    r = rules()
    replies = r.get("data", [])
    if not replies:
        return "250 2.0.0 Ok: queued"
    reply = replies.pop(0)
    r["data"] = replies
    with open(RULES + ".tmp", "w") as f:
        json.dump(r, f)
    os.replace(RULES + ".tmp", RULES)
    return reply


class Recorder:
    count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = rules().get("rcpt", {}).get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        Recorder.count += 1
        name = os.path.join(DIR, "msg-%d" % Recorder.count)
        delay = rules().get("data_delay", 0)
        reply = next_data_reply()
        with open(name + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        login = session.auth_data.login.decode() if session.auth_data else None
        with open(name + ".json.tmp", "w") as f:
            json.dump(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "tls": session.ssl is not None,
                    "login": login,
                    "reply": reply,
                },
                f,
            )
        os.replace(name + ".json.tmp", name + ".json")
        if delay:
            await asyncio.sleep(delay)
        return reply


def authenticator(server, session, envelope, mechanism, auth_data):
    user, password = OPTIONS["auth"]
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok, auth_data=auth_data)


def factory():
    kwargs = {"hostname": "sink.test", "decode_data": False}
    if "cert" in OPTIONS:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(OPTIONS["cert"], OPTIONS["key"])
        kwargs.update(tls_context=context, require_starttls=True)
    if "auth" in OPTIONS:
        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls="cert" in OPTIONS,
        )
    return SMTP(Recorder(), **kwargs)


async def main():
    host = OPTIONS.get("host", "127.0.0.1")
    port = OPTIONS.get("port", 0)
    server = await asyncio.get_running_loop().create_server(factory, host, port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
