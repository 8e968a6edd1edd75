#!/usr/bin/python3
"""The web inbox with JavaScript off (chromium's content setting): plain forms only.

Run by tests/it/web.rs with one JSON argument:
  {"base": "http://127.0.0.1:PORT", "user": {"email", "password", "name"},
   "subject": "…", "reply": "…"}
Proves scripting is off (the <noscript> Assign button shows, and changing the Assignee
select does not submit it), signs in, opens the conversation from the list, replies,
assigns it to the agent with the Assign button and closes it with Close.
Prints one JSON line with what it saw; exits non-zero on any failure.
"""

import json
import sys
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from web_inbox import browser, button, by_label, log, sign_in

ASSIGN = "//form[contains(@class,'assign')]//button[normalize-space()='Assign']"
CLOSE = "//form[contains(@class,'status')]//button[normalize-space()='Close']"
REOPEN = "//form[contains(@class,'status')]//button[normalize-space()='Reopen']"


def scripting_is_off(driver):
    """The <noscript> Assign button is shown, and choosing an assignee does not submit
    the form (app.js would); the choice is left selected for the Assign button."""
    shown = [b for b in driver.find_elements(By.XPATH, ASSIGN) if b.is_displayed()]
    if not shown:
        raise SystemExit("no <noscript> Assign button shows: scripting is on")
    assign = shown[0]
    driver.execute_script("window.__samePage = true;")
    return assign


def main():
    args = json.loads(sys.argv[1])
    base, user = args["base"], args["user"]
    driver = browser(scripting=False)
    result = {}
    try:
        sign_in(driver, base, user)
        log("signed in without scripting")
        driver.get(base + "/?view=all_open")
        driver.find_element(By.LINK_TEXT, args["subject"]).click()
        WebDriverWait(driver, 10).until(lambda d: by_label(d, "Reply"))
        conversation = driver.current_url
        log(f"opened {conversation}")
        by_label(driver, "Reply").send_keys(args["reply"])
        button(driver, "Send").click()
        WebDriverWait(driver, 10).until(
            lambda d: args["reply"] in d.find_element(By.ID, "thread").text)
        log("replied")
        assign = scripting_is_off(driver)
        Select(by_label(driver, "Assignee")).select_by_visible_text(user["name"])
        time.sleep(1)
        if not driver.execute_script("return window.__samePage === true;"):
            raise SystemExit("choosing an assignee submitted the form: scripting is on")
        result["noscript_button_shown"] = True
        assign.click()
        WebDriverWait(driver, 10).until(
            lambda d: not d.execute_script("return window.__samePage === true;"))
        chosen = Select(by_label(driver, "Assignee")).first_selected_option.text
        if chosen != user["name"]:
            raise SystemExit(f"after Assign the Assignee select shows {chosen!r}")
        log("assigned with the Assign button")
        driver.find_element(By.XPATH, CLOSE).click()
        WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.XPATH, REOPEN)))
        log("closed")
        result["closed_at"] = driver.current_url
    finally:
        driver.quit()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
