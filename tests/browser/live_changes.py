#!/usr/bin/python3
"""Assignment and status changes reach an open list without a reload.

Run by tests/it/web.rs with one JSON argument:
  {"base": "http://127.0.0.1:PORT", "a": {"email", "password"},
   "b": {"email", "password", "name"}, "assign": ID, "close": ID}
Agent A watches the all_open list in chromium; agent B, over plain HTTP with a session
of their own, assigns conversation `assign` to themselves, then closes `close`. The
script times each change (from B's post to A's page showing it) and checks the page
was never reloaded. Prints one JSON line with the times in ms.
"""

import http.cookiejar
import json
import re
import sys
import time
import urllib.parse
import urllib.request

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from web_inbox import browser, log, sign_in


class Agent:
    """A second agent using the web inbox's forms over plain HTTP."""

    def __init__(self, base, user):
        self.base = base
        jar = http.cookiejar.CookieJar()
        self.http = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        self.post("/sign-in", {"email": user["email"], "password": user["password"]})
        page = self.http.open(base + "/", timeout=10).read().decode()
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        if not found:
            raise SystemExit("the second agent is not signed in")
        self.csrf = found.group(1)

    def post(self, path, fields):
        body = urllib.parse.urlencode(fields).encode()
        with self.http.open(self.base + path, data=body, timeout=10) as answer:
            if answer.status != 200:
                raise SystemExit(f"POST {path} answered {answer.status}")

    def act(self, path, fields):
        self.post(path, {"csrf": self.csrf, **fields})


def assignee_of(driver, conversation):
    cells = driver.find_elements(
        By.CSS_SELECTOR, f'tr[data-id="{conversation}"] td.assignee')
    return cells[0].text if cells else None


def timed(driver, change, shown):
    """Milliseconds from `change()` starting to `shown(driver)` holding."""
    started = time.monotonic()
    change()
    WebDriverWait(driver, 5, poll_frequency=0.02,
                  ignored_exceptions=[StaleElementReferenceException]).until(shown)
    took = round((time.monotonic() - started) * 1000)
    if not driver.execute_script("return window.__notReloaded === true;"):
        raise SystemExit("the list reloaded instead of updating in place")
    return took


def main():
    args = json.loads(sys.argv[1])
    base, a, b = args["base"], args["a"], args["b"]
    assign, close = args["assign"], args["close"]
    driver = browser()
    result = {}
    try:
        sign_in(driver, base, a)
        driver.get(base + "/?view=all_open")
        driver.execute_script("window.__notReloaded = true;")
        if assignee_of(driver, assign) != "—" or assignee_of(driver, close) is None:
            raise SystemExit("the list does not show both open, unassigned conversations")
        second = Agent(base, b)
        time.sleep(0.5)  # the page's event stream is connected by now
        result["assign_shown_ms"] = timed(
            driver,
            lambda: second.act(f"/conversations/{assign}/assign", {"assignee": b["email"]}),
            lambda d: assignee_of(d, assign) == b["name"])
        log(f"assignment shown after {result['assign_shown_ms']} ms")
        result["close_shown_ms"] = timed(
            driver,
            lambda: second.act(f"/conversations/{close}/act", {"action": "close"}),
            lambda d: assignee_of(d, close) is None)
        log(f"closed row gone after {result['close_shown_ms']} ms")
        if assignee_of(driver, assign) != b["name"]:
            raise SystemExit("the assigned row went away with the closed one")
    finally:
        driver.quit()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
