#!/usr/bin/python3
"""Hostile mail in the real web inbox (Debian's chromium over chromedriver, selenium).

Run by tests/it/mail_html.rs with one JSON argument:
  {"base": "http://127.0.0.1:PORT", "user": {"email", "password"},
   "conversations": [{"id": N, "fixture": "NAME"}…], "canary": "http://127.0.0.1:PORT"}
The user signs in and opens every conversation, unfolds its HTML version and waits
until the message's frame holds the served mail document. After a short settle time
for late fetches it asks the canary for /marker/show-images itself: every canary hit
before that marker came from mail shown with images blocked. Then it opens every
conversation that offers "Show images", clicks it and waits until the frame holds the
document with images shown. Throughout it records what a script that ran would have
changed: an alert, the page's title or address, another window, or the mark the
fixtures' scripts leave in their own document.
Prints one JSON line with what it saw; exits non-zero when the page cannot be used.
"""

import json
import sys
import time
import urllib.request

from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from web_inbox import browser, log, sign_in

# Time after the frames loaded for fetches a late script or style might still make.
SETTLE_SECONDS = 1.0
# A document a script of the fixtures ran in (tests/fixtures/xss/README.md).
SCRIPT_MARK = ("return document.title === 'script ran'"
               " || document.documentElement.hasAttribute('data-script-ran');")
# The mail document the body route serves (mail_html::mail_document), once complete.
MAIL_DOCUMENT = ("return document.readyState === 'complete'"
                 " && location.pathname.endsWith('/body')"
                 " && location.search === arguments[0]"
                 " && document.querySelector('meta[name=referrer][content=no-referrer]')"
                 " !== null;")


def open_conversation(driver, base, conversation):
    """Loads the conversation page; returns its title and address as loaded."""
    driver.get(f"{base}/conversations/{conversation['id']}")
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete")
    return driver.title, driver.current_url


def frames(driver):
    """Unfolds every message's HTML version; returns the frames inside them."""
    for summary in driver.find_elements(By.CSS_SELECTOR, "details.html > summary"):
        summary.click()
    return driver.find_elements(By.CSS_SELECTOR, "details.html iframe")


def in_frame(driver, frame, script, *args):
    """Runs `script` (by WebDriver, not as the page) inside `frame`'s document."""
    driver.switch_to.frame(frame)
    try:
        return driver.execute_script(script, *args)
    finally:
        driver.switch_to.default_content()


def wait_for_mail_document(driver, frame, search):
    """Waits until `frame` holds the complete mail document with query `search`."""
    try:
        WebDriverWait(driver, 10, poll_frequency=0.05).until(
            lambda d: in_frame(d, frame, MAIL_DOCUMENT, search))
    except TimeoutException:
        state = in_frame(driver, frame, "return [location.href, document.readyState];")
        raise SystemExit(f"{driver.current_url}: the frame never held the mail document"
                         f" with {search!r}; it holds {state}") from None


def side_effects(driver, title, url, frames_now):
    """What a script that ran would have changed, as a list of findings."""
    found = []
    try:
        found.append(f"alert: {driver.switch_to.alert.text!r}")
    except NoAlertPresentException:
        pass
    if driver.title != title:
        found.append(f"page title became {driver.title!r}")
    if driver.current_url != url:
        found.append(f"page moved to {driver.current_url}")
    if len(driver.window_handles) != 1:
        found.append(f"{len(driver.window_handles)} windows")
    for frame in frames_now:
        if in_frame(driver, frame, SCRIPT_MARK):
            found.append("a script marked its frame")
    return found


def with_images_blocked(driver, base, conversations, result):
    """Every conversation with its HTML frame loaded; notes which offer Show images."""
    offering = []
    for conversation in conversations:
        title, url = open_conversation(driver, base, conversation)
        loaded = frames(driver)
        for frame in loaded:
            wait_for_mail_document(driver, frame, "")
        result["frames_loaded"] += len(loaded)
        if loaded:
            result["opened"].append(conversation["fixture"])
        if driver.find_elements(By.LINK_TEXT, "Show images"):
            offering.append(conversation)
        for finding in side_effects(driver, title, url, loaded):
            result["side_effects"].append(f"{conversation['fixture']}: {finding}")
    log(f"{result['frames_loaded']} frames loaded with images blocked")
    return offering


def mark_showing_images(canary):
    """Asks the canary for the marker, directly (no proxy): the line between phases."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{canary}/marker/show-images", timeout=10) as answer:
        answer.read()


def with_images_shown(driver, base, conversations, result):
    """Clicks Show images in each conversation and waits for the frame to reload."""
    for conversation in conversations:
        title, url = open_conversation(driver, base, conversation)
        loaded = frames(driver)
        for frame in loaded:
            wait_for_mail_document(driver, frame, "")
        for link in driver.find_elements(By.LINK_TEXT, "Show images"):
            name = link.get_attribute("target")
            frame = driver.find_element(By.CSS_SELECTOR, f"iframe[name='{name}']")
            link.click()
            wait_for_mail_document(driver, frame, "?images=shown")
            result["shown"].append(conversation["fixture"])
        for finding in side_effects(driver, title, url, loaded):
            result["side_effects"].append(f"{conversation['fixture']} (shown): {finding}")
    log(f"images shown in {len(result['shown'])} frames")


def main():
    args = json.loads(sys.argv[1])
    base, conversations = args["base"], args["conversations"]
    result = {"opened": [], "frames_loaded": 0, "shown": [], "side_effects": []}
    log("starting chromium")
    driver = browser()
    try:
        sign_in(driver, base, args["user"])
        log("signed in")
        offering = with_images_blocked(driver, base, conversations, result)
        time.sleep(SETTLE_SECONDS)
        mark_showing_images(args["canary"])
        with_images_shown(driver, base, offering, result)
        time.sleep(SETTLE_SECONDS)
    finally:
        driver.quit()
        log("chromium ended")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
