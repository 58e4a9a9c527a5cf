"""The storefront's journey in a real browser, every part real: `port serve` as a
process, a repository on `git daemon`, a signed webhook, the Docker engine, Chromium.

The first admin signs in with the password the first start printed, adds the
repository and reads the located error of its broken tag, and adds two users with
passwords. A user signs in, searches, opens the app, installs it and sees it Running
and its logs without reloading the page; a new tag and its webhook update it, and a
next one whose container exits at once is rolled back, with why, all shown live;
another user sees none of it; the user stops and deletes it. Screenshots of every page
at desktop and phone size land in PORT_TEST_SCREENSHOTS (printed), for people to look
at and as failure evidence.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import chromium, shoot
from tests.integration.dockerfixtures import TestImages, remove_instance
from tests.integration.gitfixtures import GitDaemon, WorkRepo, image_yaml
from tests.serverproc import Server, start, stop
from tests.unit.test_webhooks_forges import SECRET, encode, github_headers, github_push

pytestmark = [pytest.mark.docker, pytest.mark.git]
PASSWORD = "a long password"


@dataclass
class Store:
    server: Server
    work: WorkRepo
    name: str  # the repository's path on the daemon
    url: str  # where the daemon serves it
    next_image: str  # the `forever` image under a second name: a new release's build

    def release(self, version: str, image: str) -> None:
        self.work.commit(version, {"port.yaml": image_yaml("busy", version, image)})
        self.work.tag(f"v{version}")
        self.work.push()

    def webhook(self, version: str) -> None:
        payload = github_push(f"refs/tags/v{version}")
        payload["repository"].update(
            clone_url=f"https://127.0.0.1/{self.name}.git",
            html_url=f"https://127.0.0.1/{self.name}",
        )
        body = encode(payload)
        request = urllib.request.Request(  # noqa: S310 - our own server on 127.0.0.1
            f"{self.server.base}/webhooks/github",
            data=body,
            headers=github_headers(body, delivery=uuid.uuid4().hex),
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            assert json.loads(answer.read())["jobs"] == 1


@pytest.fixture
def store(
    docker_engine: Any,
    docker_images: TestImages,
    docker_network: str,
    git_daemon: GitDaemon,
    tmp_path: Path,
) -> Iterator[Store]:
    name = uuid.uuid4().hex[:10]
    bare = git_daemon.base / f"{name}.git"
    work = WorkRepo(tmp_path / "work", bare)
    instance = f"j{secrets.token_hex(5)}"
    env = {
        "PORT_INSTANCE": instance,
        "PORT_DOCKER_NETWORK": docker_network,
        "PORT_ALLOWED_REGISTRIES": json.dumps([os.environ.get("PORT_TEST_REGISTRY", "")]),
        "PORT_RECONCILE_SECONDS": "0.5",
        "PORT_JOB_POLL_SECONDS": "0.2",
        "PORT_POLL_SECONDS": "0",  # only the webhook starts an index run
        "PORT_UPDATE_GRACE_SECONDS": "1",
        "PORT_RESTART_BACKOFF_SECONDS": "0.5",
        "PORT_STOP_TIMEOUT_SECONDS": "1",
        "PORT_ACCESS_LOG": "false",
    }
    data = tmp_path / "data"
    next_image = f"port-test/forever-next:{instance}"
    docker_engine.api.tag(docker_images["forever"], *next_image.split(":"))
    server = start(data, env=env)
    try:
        yield Store(server, work, name, git_daemon.url(bare), next_image)
    finally:
        if server.process.poll() is None:
            stop(server)
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
        print("".join(server.output[-200:]))  # pytest shows it when the test failed
        remove_instance(docker_engine, instance)
        docker_engine.images.remove(next_image, force=True)


def sign_in(
    browser: WebDriver,
    base: str,
    name: str,
    password: str = PASSWORD,
    *,
    shots: str | None = None,
) -> None:
    browser.get(base + "/")
    browser.find_element(By.LINK_TEXT, "Sign in").click()
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(password)
    if shots:
        shoot(browser, shots)
    browser.find_element(By.ID, "password").send_keys(Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda b: "Sign out" in b.page_source)


def live_text(browser: WebDriver) -> str:
    """The live part's text; htmx replaces it every 2 s, so a read may race a swap."""
    for _ in range(5):
        try:
            return str(browser.find_element(By.ID, "live").text)
        except StaleElementReferenceException:
            continue
    raise AssertionError("#live was replaced during every read")


def waiting(browser: WebDriver) -> WebDriverWait[WebDriver]:
    """A wait that reads again when htmx swapped the element out from under it."""
    return WebDriverWait(browser, 60, ignored_exceptions=[StaleElementReferenceException])


def test_install_watch_update_roll_back_and_delete_in_a_browser(
    store: Store, docker_images: TestImages
) -> None:
    store.work.commit("broken", {"port.yaml": "apiVersion: port/v1\nversion: [oops\n"})
    store.work.tag("v0.9.0")
    store.release("1.0.0", docker_images["forever"])
    base = store.server.base

    with chromium() as admin:
        wait = waiting(admin)
        sign_in(admin, base, "admin", store.server.password(), shots="sign-in")
        admin.find_element(By.LINK_TEXT, "Repositories").click()
        admin.find_element(By.ID, "url").send_keys(store.url)
        admin.find_element(By.ID, "webhook_secret").send_keys(SECRET)
        shoot(admin, "admin-repos")
        admin.find_element(By.XPATH, "//button[text()='Add and scan']").click()

        def scanned(browser: WebDriver) -> bool:
            browser.refresh()  # the scan is a job; its run shows once done
            return "Succeeded" in browser.page_source

        wait.until(scanned)
        runs = admin.find_element(By.CSS_SELECTOR, ".runs").text
        assert "added busy 1.0.0" in runs
        assert "port.yaml:3:1 at v0.9.0: YAML syntax error" in runs  # located
        shoot(admin, "admin-repo")

        for name in ("alice", "bob"):
            admin.find_element(By.LINK_TEXT, "Users").click()
            admin.find_element(By.ID, "name").send_keys(name)
            admin.find_element(By.ID, "password").send_keys(PASSWORD)
            admin.find_element(By.XPATH, "//button[text()='Add the user']").click()
            shown = f">{name}<"
            wait.until(lambda b: shown in b.page_source)  # noqa: B023 - waited for at once
        shoot(admin, "admin-users")

    with chromium() as browser:
        wait = waiting(browser)
        sign_in(browser, store.server.base, "alice")
        search = browser.find_element(By.ID, "q")
        search.send_keys("busy" + Keys.ENTER)
        wait.until(lambda b: "busy" in b.title)
        browser.find_element(By.LINK_TEXT, "Busy").click()
        browser.find_element(By.LINK_TEXT, "Install").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "form.install"))
        shoot(browser, "install")
        assert "cpu: the only flavour." in browser.page_source
        browser.find_element(By.CSS_SELECTOR, "form.install button[type=submit]").click()
        wait.until(lambda b: b.find_elements(By.ID, "live"))
        setup_page = browser.current_url
        heading = browser.find_element(By.TAG_NAME, "h1")

        # Running, and its logs, without reloading: the same document all along.
        wait.until(lambda b: "Running" in live_text(b))
        wait.until(lambda b: "tick" in b.find_element(By.CSS_SELECTOR, ".logs").text)
        assert heading.text == "Busy"  # not stale: no reload happened
        shoot(browser, "setup-running")

        # A new tag and its webhook: the Setup (following MINOR) moves to it by itself.
        store.release("1.1.0", store.next_image)
        store.webhook("1.1.0")
        wait.until(lambda b: "Update succeeded" in live_text(b))
        wait.until(
            lambda b: "Release\n1.1.0" in b.find_element(By.CSS_SELECTOR, "#live .facts").text
        )
        # A tag whose container exits at once: the update is rolled back, with why.
        store.release("1.2.0", docker_images["exit3"])
        store.webhook("1.2.0")
        wait.until(lambda b: "Update rolled back" in live_text(b))
        assert "exited with code 3" in live_text(browser)
        assert "Running" in live_text(browser)  # still 1.1.0
        assert heading.text == "Busy"
        shoot(browser, "setup-rolled-back")

        with chromium() as other:
            sign_in(other, store.server.base, "bob")
            other.get(store.server.base + "/setups")
            assert "Nothing installed yet" in other.page_source
            other.get(setup_page)
            assert "You have no such app." in other.page_source

        browser.get(store.server.base + "/setups")
        assert "Busy" in browser.find_element(By.TAG_NAME, "main").text
        shoot(browser, "my-apps")
        browser.get(setup_page)
        browser.find_element(By.XPATH, "//button[text()='Stop']").click()
        wait.until(lambda b: "Stopped" in live_text(b))
        browser.find_element(By.LINK_TEXT, "Delete…").click()
        shoot(browser, "setup-delete")
        browser.find_element(By.XPATH, "//button[text()='Delete it']").click()
        wait.until(lambda b: "Nothing installed yet" in b.page_source)
        logs: list[dict[str, str]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
        assert [e for e in logs if e["level"] == "SEVERE"] == []
