#!/usr/bin/python3
"""The status page in a real browser, against the real `foolock serve`.

Drives Debian's Chromium through Debian's chromedriver with Debian's python3-selenium; nothing
is downloaded. Checks that the page follows the server live (a job acquired over HTTP appears
without a reload and its countdown goes down; a released job disappears), that it reconnects
after the server restarts on the same port and state directory, and that it fits a phone's
width; takes light and dark screenshots along the way. Then, against a server with an access
token (from a token file), that the page asks for the token and shows no locks before it, that
a wrong token is refused with a message, and that with the right one the page goes live.

Usage: status_page.py FOOLOCK_BINARY [--screenshots DIR]
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Generous: every wait ends as soon as what it waits for is seen.
WAIT = 30


class Failure(Exception):
    pass


def wait_for(what, predicate, timeout=WAIT):
    """Polls `predicate` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the page may be mid-update; try again
            last_error = e
        time.sleep(0.1)
    raise Failure(f"timed out after {timeout} s waiting for {what} (last error: {last_error})")


class Server:
    """`foolock serve` on loopback with its own config and state directory."""

    def __init__(self, binary, workdir, token=None):
        self.binary = binary
        self.workdir = workdir
        self.token = token
        self.proc = None
        self.addr = None
        if token:
            # The token in a file only its owner may read, named by the config file.
            path = os.path.join(workdir, "token")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
            with open(os.path.join(workdir, "config.toml"), "w") as f:
                f.write('auth_token_file = "token"\n')

    def start(self, listen="127.0.0.1:0"):
        out = open(os.path.join(self.workdir, "server.out"), "w")
        env = dict(os.environ,
                   FOOLOCK_CONFIG=os.path.join(self.workdir, "config.toml"),
                   RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", listen, "--default-ttl", "30s",
             "--grace-period", "5s", "--state-dir", os.path.join(self.workdir, "state")],
            stdout=out, stderr=subprocess.STDOUT, env=env)

        def announced():
            if self.proc.poll() is not None:
                raise Failure("server exited: " + open(out.name).read())
            m = re.search(r"listening on (\S+?);", open(out.name).read())
            return m and m.group(1)
        self.addr = wait_for("the server to listen", announced)
        return self.addr

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=WAIT)
        self.proc = None

    def request(self, method, path, token=None):
        """`method path` with `token` (default: the server's own, if it has one)."""
        req = urllib.request.Request(f"http://{self.addr}{path}", method=method)
        token = token if token is not None else self.token
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=WAIT) as res:
                return res.status, json.load(res)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)


def start_browser(profile):
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ["--headless=new", f"--user-data-dir={profile}", "--no-sandbox",
                 "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic",
                 "--disable-dev-shm-usage", "--window-size=1000,760", "--lang=en-GB"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def row(driver, job):
    rows = driver.find_elements(By.CSS_SELECTOR, f'#job-rows tr[data-job="{job}"]')
    return rows[0] if rows else None


def countdown_seconds(driver, job):
    """The countdown of `job`'s row in seconds (`29 s`, `1 min 05 s`)."""
    text = row(driver, job).find_element(By.CSS_SELECTOR, ".countdown time").text
    m = re.fullmatch(r"(?:(\d+) min )?(\d+) s", text)
    if not m:
        raise Failure(f"unexpected countdown {text!r}")
    return int(m.group(1) or 0) * 60 + int(m.group(2))


def connection(driver):
    return driver.find_element(By.ID, "connection").text


def shown(driver, element_id):
    return driver.find_element(By.ID, element_id).is_displayed()


def enter_token(driver, token):
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#auth button[type=submit]").click()


def with_token(binary, work, driver, step):
    """The page of a server that wants an access token."""
    token = "correct-horse-battery-staple"
    os.makedirs(os.path.join(work, "token-server"))
    server = Server(binary, os.path.join(work, "token-server"), token=token)
    try:
        addr = server.start()
        status, body = server.request("POST", "/lock?job=before-page&client=nas&ttl=5m")
        assert status == 200, body
        status, body = server.request("POST", "/lock?job=x&client=nas", token="")
        assert status == 401, (status, body)
        status, body = server.request("GET", "/events", token="wrong")
        assert status == 401, (status, body)

        driver.get(f"http://{addr}/")
        wait_for("the token form", lambda: shown(driver, "auth"))
        assert not shown(driver, "jobs-section"), "the table is hidden before the token"
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "before-page" not in text and "nas" not in text, text
        label = driver.find_element(By.CSS_SELECTOR, "label[for=token]").text
        assert label == "Access token", label
        step("with a token configured the page shows no locks and asks for the token")

        enter_token(driver, "not-the-token")
        wait_for("the refusal message", lambda: shown(driver, "auth-error"))
        message = driver.find_element(By.ID, "auth-error").text
        assert "did not accept" in message, message
        assert shown(driver, "auth") and not shown(driver, "jobs-section")
        kept = driver.execute_script("return localStorage.getItem('foolock-token')")
        assert kept is None, f"a refused token is forgotten, not {kept!r}"
        step("a wrong token is refused with a message and asked for again")

        enter_token(driver, token)
        wait_for("the page to go live", lambda: connection(driver) == "Live")
        wait_for("the job held before the page loaded", lambda: row(driver, "before-page"))
        assert not shown(driver, "auth") and not shown(driver, "auth-error")
        driver.execute_script("window.__noReload = true")
        status, body = server.request("POST", "/lock?job=backup&client=laptop&ttl=30s")
        assert status == 200, body
        wait_for("the acquired job's row", lambda: row(driver, "backup"))
        cells = [c.text for c in row(driver, "backup").find_elements(By.CSS_SELECTOR, "th, td")]
        assert cells[:3] == ["backup", "laptop", str(body["token"])], cells
        assert driver.execute_script("return window.__noReload === true"), "page was reloaded"
        force = row(driver, "backup").find_elements(By.CSS_SELECTOR, "details.force summary")
        assert force, "Force release is offered with the token on the server's own machine"
        step("with the token the page goes live: a job acquired over HTTP appears")

        force[0].click()
        row(driver, "backup").find_element(By.CSS_SELECTOR, "button.danger").click()
        wait_for("the force-released job to disappear", lambda: row(driver, "backup") is None)
        step("Force release sends the token")

        driver.refresh()
        wait_for("the page to go live again", lambda: connection(driver) == "Live")
        wait_for("the held job after the reload", lambda: row(driver, "before-page"))
        assert not shown(driver, "auth"), "a kept token is not asked for again"
        step("the token is kept across a reload")
    finally:
        server.stop()


def run(binary, screenshots):
    work = tempfile.mkdtemp(prefix="foolock-browser-")
    server = Server(binary, work)
    driver = None
    passed = 0
    try:
        addr = server.start()
        port = addr.rsplit(":", 1)[1]
        driver = start_browser(os.path.join(work, "profile"))
        driver.get(f"http://{addr}/")
        wait_for("the page to go live", lambda: connection(driver) == "Live")
        # A marker that a reload would wipe.
        driver.execute_script("window.__noReload = true")

        def step(name):
            nonlocal passed
            passed += 1
            print(f"ok {passed} - {name}", flush=True)

        status, body = server.request("POST", "/lock?job=backup&client=nas&ttl=30s")
        assert status == 200, body
        wait_for("the acquired job's row", lambda: row(driver, "backup"))
        assert driver.execute_script("return window.__noReload === true"), "page was reloaded"
        cells = [c.text for c in row(driver, "backup").find_elements(By.CSS_SELECTOR, "th, td")]
        assert cells[:3] == ["backup", "nas", str(body["token"])], cells
        assert cells[4] == "held", cells
        step("a job acquired over HTTP appears without a reload")

        first = countdown_seconds(driver, "backup")
        assert 25 <= first <= 30, first
        wait_for("the countdown to go down", lambda: countdown_seconds(driver, "backup") < first)
        step("its countdown goes down")

        status, body = server.request("DELETE", "/lock?job=backup&client=nas")
        assert status == 200, body
        wait_for("the released job's row to disappear", lambda: row(driver, "backup") is None)
        events = driver.find_element(By.ID, "events").text
        assert "released backup by nas" in events, events
        step("a released job disappears and is listed under recent events")

        # A fuller table for the screenshots: three jobs, one with a client waiting.
        for job, client, ttl in [("backup", "nas", "10m"), ("photos-sync", "imac", "2m"),
                                 ("nightly-build", "ci-runner", "45s")]:
            status, body = server.request("POST", f"/lock?job={job}&client={client}&ttl={ttl}")
            assert status == 200, body
        waiter = threading.Thread(target=server.request,
                                  args=("POST", "/lock?job=backup&client=laptop&wait=20s"))
        waiter.start()
        wait_for("the waiter to be shown", lambda: row(driver, "backup").find_elements(
            By.CSS_SELECTOR, "td")[4].text == "1")
        wait_for("all three rows", lambda: len(driver.find_elements(
            By.CSS_SELECTOR, "#job-rows tr")) == 3)
        force = row(driver, "backup").find_elements(By.CSS_SELECTOR, "details.force summary")
        assert force, "Force release is offered on the server's own machine"
        if screenshots:
            os.makedirs(screenshots, exist_ok=True)
            driver.save_screenshot(os.path.join(screenshots, "status-light.png"))
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        background = driver.execute_script(
            "return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(18, 20, 23)", background
        if screenshots:
            driver.save_screenshot(os.path.join(screenshots, "status-dark.png"))
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        step("dark mode follows prefers-color-scheme" + (" (screenshots taken)" if screenshots else ""))

        # The confirmation, then the release through the page itself.
        force[0].click()
        row(driver, "backup").find_element(By.CSS_SELECTOR, "button.danger").click()
        wait_for("the force-released job to pass to its waiter", lambda: row(
            driver, "backup").find_elements(By.CSS_SELECTOR, "td")[0].text == "laptop")
        waiter.join(timeout=WAIT)
        step("Force release (after its confirmation) frees the job for its waiter")

        driver.set_window_size(390, 844)
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone"
        driver.set_window_size(1000, 760)
        step("the page fits a phone's width")

        server.stop()
        wait_for("the page to notice the server went away", lambda: connection(driver) != "Live")
        server.start(listen=f"127.0.0.1:{port}")
        status, body = server.request("POST", "/lock?job=after-restart&client=pc&ttl=1m")
        assert status == 200, body
        wait_for("a job acquired after the restart", lambda: row(driver, "after-restart"))
        assert connection(driver) == "Live"
        assert row(driver, "photos-sync"), "jobs held across the restart are still listed"
        assert driver.execute_script("return window.__noReload === true"), "page was reloaded"
        step("the page reconnects after the server restarts")

        with_token(binary, work, driver, step)
        print(f"browser: {passed} passed, 0 failed", flush=True)
        return 0
    except (Failure, AssertionError) as e:
        print(f"not ok {passed + 1} - {e}", flush=True)
        if driver:
            shot = os.path.join(work, "failure.png")
            driver.save_screenshot(shot)
            print(f"# page text:\n{driver.find_element(By.TAG_NAME, 'body').text}")
        print(f"# server output:\n{open(os.path.join(work, 'server.out')).read()}")
        print(f"browser: {passed} passed, 1 failed", flush=True)
        return 1
    finally:
        if driver:
            driver.quit()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--screenshots", help="directory for status-light.png and status-dark.png")
    args = parser.parse_args()
    sys.exit(run(os.path.abspath(args.binary), args.screenshots))


if __name__ == "__main__":
    main()
