#!/usr/bin/env python3
"""Resource bombs against a real daemon: each must get its expected reply within stated
time and memory bounds, and leave the daemon answering.

A fresh `inboxgate serve` (release build by default) runs for each bomb so its peak RSS
(VmHWM) is the bomb's alone. Prints one line per bomb:

    bomb                        reply  seconds  peak_rss_mb  bound_s  bound_mb  ok

and exits non-zero if any bomb misses its reply or a bound. Bounds are stated in BOMBS
below; they are what an operator can rely on for a 50 MB message size limit.

Usage: scripts/bombs.py [--bin target/release/inboxgate] [--only NAME]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

LIMIT = 50 * 1024 * 1024
RCPT = harness.SUPPORT


SMTP_LIMITS = """max_message_size = %d
session_timeout = 5
idle_timeout = 3
max_connections = 500
max_connections_per_ip = 50""" % LIMIT

HEAD = "From: bomb@bombs.test\r\nTo: %s\r\nMIME-Version: 1.0\r\n" % RCPT


def deep_nesting(depth=1000):
    s = HEAD + 'Subject: deep\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n'
    for i in range(1, depth):
        s += '--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (i - 1, i)
    s += "--b%d\r\nContent-Type: text/plain\r\n\r\nbottom\r\n" % (depth - 1)
    s += "".join("--b%d--\r\n" % i for i in reversed(range(depth)))
    return s.encode()


def many_parts(count=100_000):
    s = HEAD + 'Subject: many\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n'
    s += "".join("--x\r\nContent-Type: text/plain\r\n\r\np%d\r\n" % i for i in range(count))
    return (s + "--x--\r\n").encode()


def huge_header(megabytes=10):
    line = "X-Filler: " + "a" * 70 + "\r\n"
    filler = line * (megabytes * 1024 * 1024 // len(line))
    return (HEAD + "Subject: header\r\n" + filler + "\r\nbody\r\n").encode()


def at_the_limit():
    line = ("0123456789" * 9 + "\r\n").encode()
    head = (HEAD + "Subject: at the limit\r\n\r\n").encode()
    body = line * ((LIMIT - len(head) - 4096) // len(line))
    return head + body


def over_the_limit():
    return at_the_limit() + b"x" * (10 * 1024 * 1024) + b"\r\n"


def no_newline(megabytes=10):
    return (HEAD + "Subject: one line\r\n\r\n").encode() + b"y" * (megabytes * 1024 * 1024) + b"\r\n"


# --- ways to deliver a bomb; each returns the reply that matters -----------------

class Smtp:
    def __init__(self, port, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.greeting = self.reply()

    def reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "\n".join(lines) or "(closed)"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            text = line.decode("utf-8", "replace").rstrip("\r")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return "\n".join(lines)

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.sock.close()


def send_message(port, message):
    s = Smtp(port)
    s.cmd("EHLO bombs.test")
    s.cmd("MAIL FROM:<bomb@bombs.test>")
    s.cmd("RCPT TO:<%s>" % RCPT)
    s.cmd("DATA")
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    s.sock.sendall(stuffed + b".\r\n")
    reply = s.reply()
    s.close()
    return reply


def long_command(port):
    s = Smtp(port)
    s.sock.sendall(b"EHLO " + b"z" * (10 * 1024 * 1024) + b"\r\n")
    reply = s.reply()
    after = s.cmd("NOOP")
    s.close()
    return reply.splitlines()[0] + " / then " + after


def many_rcpts(port, count=10_000):
    s = Smtp(port)
    s.cmd("EHLO bombs.test")
    s.cmd("MAIL FROM:<bomb@bombs.test>")
    batch = b"".join(b"RCPT TO:<support+%d@acme.hs-inbox.test>\r\n" % i for i in range(count))
    s.sock.sendall(batch)
    replies = [s.reply() for _ in range(count)]
    s.close()
    accepted = sum(r.startswith("250") for r in replies)
    refused = sum(r.startswith("452 4.5.3") for r in replies)
    return "250x%d 452x%d" % (accepted, refused)


def slowloris(port):
    s = Smtp(port, timeout=30)
    for ch in b"EHLO slow.test":
        try:
            s.sock.sendall(bytes([ch]))
        except OSError:
            break
        time.sleep(1)
        s.sock.setblocking(False)
        try:
            data = s.sock.recv(4096)
        except BlockingIOError:
            data = b""
        s.sock.setblocking(True)
        if data:
            s.close()
            return data.decode("utf-8", "replace").strip()
    reply = s.reply()
    s.close()
    return reply


def idle_connections(port, count=2000):
    socks, greetings = [], {}
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            greetings["refused"] = greetings.get("refused", 0) + 1
            continue
        socks.append(sock)
    for sock in socks:
        try:
            line = sock.recv(512).decode("utf-8", "replace")[:9]
        except OSError:
            line = "(error)"
        greetings[line] = greetings.get(line, 0) + 1
    for sock in socks:
        sock.close()
    return " ".join("%s x%d" % (k.strip(), v) for k, v in sorted(greetings.items()))


# name, deliver, expected reply prefix, seconds bound, MB bound
BOMBS = [
    ("50MB message at the limit", lambda p: send_message(p, at_the_limit()), "250", 20, 400),
    ("60MB over the limit", lambda p: send_message(p, over_the_limit()), "552 5.3.4", 20, 200),
    ("10MB body without newline", lambda p: send_message(p, no_newline()), "250", 10, 150),
    ("10MB command line", long_command, "500 5.5.2", 10, 50),
    ("10MB header", lambda p: send_message(p, huge_header()), "250", 20, 250),
    ("100,000 MIME parts", lambda p: send_message(p, many_parts()), "250", 30, 400),
    ("1,000-deep nesting", lambda p: send_message(p, deep_nesting()), "250", 10, 100),
    ("10,000 RCPT attempts", many_rcpts, "250x100 452x9900", 10, 50),
    ("slowloris 1 byte/s", slowloris, "421 4.4.2", 10, 50),
    ("2,000 idle connections", idle_connections, "220 mx.bo x50 421 4.7.0 x1950", 30, 100),
]




def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_bomb(binary, name, deliver, expected, bound_s, bound_mb):
    work = tempfile.mkdtemp(prefix="inboxgate-bomb.")
    port = harness.free_port()
    config = os.path.join(work, "bombs.toml")
    with open(config, "w") as f:
        f.write(harness.config(os.path.join(work, "data"), port, "mx.bombs.test", SMTP_LIMITS))
    log = open(os.path.join(work, "daemon.log"), "wb")
    daemon = subprocess.Popen([binary, "--config", config, "serve"], stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.2)  # let the probe connection's session end
        started = time.monotonic()
        reply = deliver(port)
        seconds = time.monotonic() - started
        alive = Smtp(port).cmd("NOOP").startswith("250") if daemon.poll() is None else False
        rss = peak_rss_mb(daemon.pid) if daemon.poll() is None else float("nan")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    ok = reply.startswith(expected) and alive and seconds <= bound_s and rss <= bound_mb
    print("%-28s %-34s %7.2f %9.1f %7d %8d  %s" % (name, reply.splitlines()[0][:34], seconds, rss, bound_s, bound_mb, "ok" if ok else "FAIL"))
    return ok


def raise_fd_limit():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def main():
    raise_fd_limit()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="target/release/inboxgate")
    parser.add_argument("--only")
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit("bombs: no binary at %s (cargo build --release first)" % args.bin)
    print("%-28s %-34s %7s %9s %7s %8s  %s" % ("bomb", "reply", "seconds", "peak_mb", "bound_s", "bound_mb", "ok"))
    results = [
        run_bomb(args.bin, *bomb)
        for bomb in BOMBS
        if not args.only or args.only.lower() in bomb[0].lower()
    ]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
