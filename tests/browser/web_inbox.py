#!/usr/bin/python3
"""The web inbox in a real browser (Debian's chromium over chromedriver, selenium).

Run by tests/it/web.rs with one JSON argument:
  {"base": "http://127.0.0.1:PORT", "smtp_port": N, "support": "support@…",
   "users": [{"email", "password", "lang"}…], "shots": "DIR"}
The first user signs in, watches the open list while a mail arrives over SMTP (it must
appear without a reload), opens it, sees a comment draft survive a reload, and
replies; splits the customer's next mail off and merges it back from the More menu;
then every user signs in and the list
and the conversation are saved as screenshots in their language under DIR.
Prints one JSON line with what it measured; exits non-zero on any failure.
"""

import json
import smtplib
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

SUBJECT = "Live kettle question"
STARTED = time.monotonic()


def log(what):
    print(f"{time.monotonic() - STARTED:6.1f}s {what}", file=sys.stderr, flush=True)


def browser(scripting=True):
    """Headless chromium; `scripting=False` turns the pages' JavaScript off (WebDriver's
    own execute_script still works)."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--window-size=1280,800", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    if not scripting:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def by_label(driver, text):
    """The control a <label> with exactly this text names."""
    label = driver.find_element(By.XPATH, f"//label[normalize-space()='{text}']")
    return driver.find_element(By.ID, label.get_attribute("for"))


def button(driver, text):
    return driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']")


def sign_in(driver, base, user):
    driver.delete_all_cookies()
    driver.get(base + "/")
    WebDriverWait(driver, 10).until(ec.url_contains("/sign-in"))
    by_label(driver, "Email").send_keys(user["email"])
    by_label(driver, "Password").send_keys(user["password"])
    button(driver, "Sign in").click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url.rstrip("/") == base)


def send_mail(port, to):
    message = (
        f"From: Jan Klant <jan@klant.example>\r\nTo: {to}\r\nSubject: {SUBJECT}\r\n"
        "Message-ID: <live-kettle@klant.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "My kettle whistles in B flat. Is that normal?\r\n\r\n"
        "On Fri, 20 Nov 2026, Support wrote:\r\n> Thanks for your order.\r\n"
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("jan@klant.example", [to], message.encode())


SECOND = "Also, the lid sticks."


def send_second_question(port, to):
    """A new question answering the first mail: threaded onto it, to be split off."""
    message = (
        f"From: Jan Klant <jan@klant.example>\r\nTo: {to}\r\nSubject: Re: {SUBJECT}\r\n"
        "Message-ID: <live-lid@klant.example>\r\n"
        "In-Reply-To: <live-kettle@klant.example>\r\n"
        "References: <live-kettle@klant.example>\r\n\r\n"
        f"{SECOND}\r\n"
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("jan@klant.example", [to], message.encode())


def shortcuts_on_question_mark(driver):
    """`?` opens the shortcuts dialog listing the common moves; Escape closes it."""
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys("?")
    dialog = driver.find_element(By.ID, "shortcuts")
    WebDriverWait(driver, 5).until(lambda d: dialog.get_attribute("open") is not None)
    listed = dialog.text
    for key in ["j", "k", "r", "a", "e", "/"]:
        if key not in listed.split():
            raise SystemExit(f"the shortcuts dialog does not list {key!r}: {listed!r}")
    body.send_keys(Keys.ESCAPE)
    WebDriverWait(driver, 5).until(lambda d: dialog.get_attribute("open") is None)
    log("shortcuts shown on ?")


def fits_the_width(driver, page):
    """Nothing of the page sticks out sideways (no horizontal scrolling)."""
    wide, view = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth];")
    if wide > view + 1:
        raise SystemExit(f"the {page} page is {wide}px wide in a {view}px window")


def drafts_outlive_live_refreshes(driver, args):
    """The open conversation takes the second question by a live refresh (no reload);
    a comment typed into the refreshed page's box is still a draft after a reload."""
    driver.execute_script("window.__notReloaded = true;")
    send_second_question(args["smtp_port"], args["support"])
    WebDriverWait(driver, 10, poll_frequency=0.05).until(
        lambda d: SECOND in d.find_element(By.ID, "thread").text)
    if not driver.execute_script("return window.__notReloaded === true;"):
        raise SystemExit("the conversation reloaded instead of updating in place")
    comment_draft_survives_a_reload(driver, "Draft after a live refresh")
    log("draft kept after a live refresh")


def comment_draft_survives_a_reload(driver, text):
    """Types `text` into the comment box, reloads, finds it there, then empties it."""
    by_label(driver, "Comment").send_keys(text)
    driver.refresh()
    comment = WebDriverWait(driver, 10).until(lambda d: by_label(d, "Comment"))
    if comment.get_attribute("value") != text:
        raise SystemExit(f"the comment draft {text!r} did not survive a reload")
    driver.execute_script(
        "var c = document.getElementById('comment'); c.value = '';"
        "c.dispatchEvent(new Event('input', {bubbles: true}));")


def split_and_merge(driver, args, conversation, shots, lang):
    """Splits the newest message off with its Split button, then merges the split
    conversation back through the More menu (confirming once)."""
    driver.get(conversation)
    WebDriverWait(driver, 10).until(
        lambda d: SECOND in d.find_element(By.ID, "thread").text)
    newest = driver.find_elements(By.CSS_SELECTOR, "details.message[open]")[-1]
    newest.find_element(By.XPATH, ".//button[normalize-space()='Split']").click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url != conversation)
    split = driver.current_url
    if SECOND not in driver.find_element(By.ID, "thread").text:
        raise SystemExit("the split conversation does not show the split message")
    log(f"split off into {split}")
    driver.find_element(By.CSS_SELECTOR, "details.more-actions > summary").click()
    driver.save_screenshot(f"{shots}/conversation-more-{lang}.png")
    by_label(driver, "Merge into conversation").send_keys(conversation.rsplit("/", 1)[1])
    driver.find_element(
        By.XPATH, "//details[contains(@class,'more-actions')]//button[normalize-space()='Merge']"
    ).click()
    WebDriverWait(driver, 10).until(
        lambda d: "Merge this conversation into the one below?" in d.page_source)
    driver.save_screenshot(f"{shots}/merge-confirm-{lang}.png")
    button(driver, "Merge").click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url == conversation)
    if SECOND not in driver.find_element(By.ID, "thread").text:
        raise SystemExit("the merged message is not back in the conversation")
    for summary in driver.find_elements(By.CSS_SELECTOR, "details.activity > summary"):
        summary.click()
    driver.save_screenshot(f"{shots}/conversation-merged-{lang}.png")
    log("merged back")


def main():
    args = json.loads(sys.argv[1])
    base, shots = args["base"], args["shots"]
    first, *others = args["users"]
    log("starting chromium")
    driver = browser()
    log("chromium started")
    result = {}
    try:
        sign_in(driver, base, first)
        log("signed in")
        driver.get(base + "/?view=all_open")
        driver.execute_script("window.__notReloaded = true;")
        # Let the page's event stream connect before the mail comes in.
        WebDriverWait(driver, 5).until(
            lambda d: d.execute_script("return document.readyState") == "complete")
        time.sleep(0.5)
        sent = time.monotonic()
        send_mail(args["smtp_port"], args["support"])
        link = WebDriverWait(driver, 5, poll_frequency=0.05).until(
            ec.presence_of_element_located((By.LINK_TEXT, SUBJECT)))
        result["appeared_after_ms"] = round((time.monotonic() - sent) * 1000)
        if not driver.execute_script("return window.__notReloaded === true;"):
            raise SystemExit("the list reloaded instead of updating in place")
        log(f"mail appeared after {result['appeared_after_ms']} ms")
        driver.save_screenshot(f"{shots}/list-{first['lang']}.png")
        shortcuts_on_question_mark(driver)
        link.click()
        reply = WebDriverWait(driver, 10).until(lambda d: by_label(d, "Reply"))
        conversation = driver.current_url
        driver.save_screenshot(f"{shots}/conversation-{first['lang']}.png")
        driver.execute_script("document.getElementById('reply-form').scrollIntoView();")
        driver.save_screenshot(f"{shots}/conversation-reply-{first['lang']}.png")
        driver.execute_script("window.scrollTo(0, 0);")
        comment_draft_survives_a_reload(driver, "Draft: ask about the model")
        log("draft kept across a reload")
        reply = by_label(driver, "Reply")
        reply.send_keys("It does; that is the whistle working. Enjoy your tea!")
        button(driver, "Send").click()
        WebDriverWait(driver, 10).until(
            lambda d: "Enjoy your tea" in d.find_element(By.ID, "thread").text)
        log("replied")
        driver.refresh()
        reply = WebDriverWait(driver, 10).until(lambda d: by_label(d, "Reply"))
        if reply.get_attribute("value") != "":
            raise SystemExit("the sent reply came back as a draft")
        drafts_outlive_live_refreshes(driver, args)
        split_and_merge(driver, args, conversation, shots, first["lang"])
        for user in others:
            sign_in(driver, base, user)
            log(f"signed in as {user['email']}")
            driver.get(base + "/?view=email")
            log("list loaded")
            WebDriverWait(driver, 10).until(
                ec.presence_of_element_located((By.LINK_TEXT, SUBJECT)))
            driver.save_screenshot(f"{shots}/list-{user['lang']}.png")
            driver.get(conversation)
            log("conversation loaded")
            WebDriverWait(driver, 10).until(
                ec.presence_of_element_located((By.ID, "reply")))
            driver.save_screenshot(f"{shots}/conversation-{user['lang']}.png")
            driver.execute_script("document.getElementById('reply-form').scrollIntoView();")
            driver.save_screenshot(f"{shots}/conversation-reply-{user['lang']}.png")
            log(f"screenshots in {user['lang']}")
        driver.get(base + "/compose")
        WebDriverWait(driver, 10).until(
            ec.presence_of_element_located((By.ID, "compose-text")))
        driver.save_screenshot(f"{shots}/compose-{others[-1]['lang'] if others else first['lang']}.png")
        # Phone width: the same page, one pane at a time.
        driver.set_window_size(390, 844)
        driver.get(base + "/?view=email")
        fits_the_width(driver, "list")
        driver.save_screenshot(f"{shots}/list-phone.png")
        driver.get(conversation)
        fits_the_width(driver, "conversation")
        driver.find_element(By.CSS_SELECTOR, "details.more-actions > summary").click()
        driver.save_screenshot(f"{shots}/conversation-phone.png")
    finally:
        driver.quit()
        log("chromium ended")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
