#!/usr/bin/python3
"""Two agents on one conversation in two real browsers (chromium over chromedriver).

Run by tests/it/web.rs with one JSON argument:
  {"base": "http://127.0.0.1:PORT", "smtp_port": N, "support": "support@…",
   "conversation": ID, "message_id": "<…>", "a": {"email", "password", "name"},
   "b": {…}, "shots": "DIR"}
B opens the conversation, then A does: B must see "A is viewing", then, once A types
in the reply box, "A is replying" (each within a deadline). Then the customer writes
again over SMTP while A's reply is typed; A presses Send and must be told a newer
message arrived, with nothing sent (the conversation holds no outbound message at
that point); A confirms and the reply shows in the thread.
Prints one JSON line with what it measured; exits non-zero on any failure.
"""

import json
import smtplib
import sys
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from web_inbox import browser, button, by_label, log, sign_in

REPLY = "The lid is on its way, no charge."


def presence_text(driver):
    return driver.find_element(By.ID, "presence").text


def wait_presence(driver, text, seconds=5):
    """Waits until the presence line says `text`; returns how long it took (ms)."""
    start = time.monotonic()
    WebDriverWait(driver, seconds, poll_frequency=0.05).until(
        lambda d: text in presence_text(d),
        message=f"{text!r} within {seconds} s")
    return round((time.monotonic() - start) * 1000)


def customer_writes_again(port, to, parent):
    message = (
        f"From: Jan Klant <jan@klant.example>\r\nTo: {to}\r\nSubject: Re: Broken lid\r\n"
        f"Message-ID: <again@klant.example>\r\nIn-Reply-To: {parent}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Also, the handle is loose.\r\n"
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("jan@klant.example", [to], message.encode())


def outbound_in_thread(driver, url):
    """How many outbound messages the conversation page lists now (read by A)."""
    return driver.execute_async_script(
        "var url = arguments[0], done = arguments[arguments.length - 1];"
        "fetch(url, {credentials: 'same-origin'}).then(r => r.text()).then(t => {"
        "  var doc = new DOMParser().parseFromString(t, 'text/html');"
        "  done(doc.querySelectorAll('#thread details.message.out').length);"
        "}).catch(e => done(-1));", url)


def main():
    args = json.loads(sys.argv[1])
    base, shots = args["base"], args["shots"]
    url = f"{base}/conversations/{args['conversation']}"
    a_name, result = args["a"]["name"], {}
    log("starting two chromiums")
    a, b = browser(), browser()
    try:
        sign_in(a, base, args["a"])
        sign_in(b, base, args["b"])
        log("both signed in")
        b.get(url)
        WebDriverWait(b, 10).until(ec.presence_of_element_located((By.ID, "presence")))
        a.get(url)
        reply = WebDriverWait(a, 10).until(lambda d: by_label(d, "Reply"))
        result["viewing_after_ms"] = wait_presence(b, f"{a_name} is viewing")
        log(f"B saw A viewing after {result['viewing_after_ms']} ms")
        reply.send_keys(REPLY)
        result["replying_after_ms"] = wait_presence(b, f"{a_name} is replying")
        log(f"B saw A replying after {result['replying_after_ms']} ms")
        b.save_screenshot(f"{shots}/presence-en.png")

        customer_writes_again(args["smtp_port"], args["support"], args["message_id"])
        # The thread is not swapped under A's typed reply: A is told instead.
        WebDriverWait(a, 5, poll_frequency=0.05).until(
            lambda d: d.find_element(By.ID, "live-note").is_displayed(),
            message="the new-activity note under a typed reply")
        if by_label(a, "Reply").get_attribute("value") != REPLY:
            raise SystemExit("A's typed reply was lost")
        button(a, "Send").click()
        notice = WebDriverWait(a, 10).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "p.notice[role=alert]"))
        if "A new message arrived" not in notice.text:
            raise SystemExit(f"A was not told about the new message: {notice.text!r}")
        if "the handle is loose" not in a.find_element(By.ID, "thread").text:
            raise SystemExit("the new message is not shown with the held reply")
        held = outbound_in_thread(a, url)
        if held != 0:
            raise SystemExit(f"{held} outbound message(s) before confirming")
        result["outbound_before_confirm"] = held
        a.save_screenshot(f"{shots}/held-reply-en.png")
        log("A was told; nothing sent")
        button(a, "Send").click()
        WebDriverWait(a, 10).until(lambda d: d.current_url == url)
        WebDriverWait(a, 10).until(
            lambda d: REPLY in d.find_element(By.ID, "thread").text)
        log("confirmed and sent")
    finally:
        a.quit()
        b.quit()
        log("chromiums ended")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
