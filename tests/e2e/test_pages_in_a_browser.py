"""Port's pages in a real browser (Chromium) that cannot reach the internet."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import chromium, shoot
from tests.harness import require
from tests.serverproc import PORT, Server, remove_what_it_ran, start, stop


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Server]:
    server = start(tmp_path / "data")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            stop(server)
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)


def test_graphiql_runs_a_query_without_internet(served: Server) -> None:
    """Repro: without internet GraphiQL stayed on "Loading..." for ever (its assets came
    from a CDN). Here no host but 127.0.0.1 resolves, and it answers a query."""
    with chromium() as browser:
        browser.get(f"{served.base}/graphql")
        wait = WebDriverWait(browser, 30)
        run = wait.until(
            expected_conditions.element_to_be_clickable(
                (By.CSS_SELECTOR, ".graphiql-execute-button")
            )
        )
        shoot(browser, "graphiql")
        run.click()
        wait.until(lambda b: '"apps"' in b.find_element(By.CSS_SELECTOR, ".graphiql-response").text)
        logs: list[dict[str, str]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
        errors = [e for e in logs if e["level"] == "SEVERE"]
        assert errors == []  # nothing failed to load, no script was refused


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Server]:
    """`port serve --with-examples`: the bundled example apps, as `make run` serves them,
    on the real Docker engine (whose machine the fit badges describe)."""
    if not os.environ.get("PORT_TEST_DOCKER"):
        require("a Docker engine (PORT_TEST_DOCKER, see `make services`)")
    server = start(
        tmp_path / "data",
        str(PORT),
        "serve",
        "--with-examples",
        env={"PORT_ALLOWED_REGISTRIES": '["localhost:5000"]'},
    )
    try:
        yield server
    finally:
        if server.process.poll() is None:
            stop(server)
        remove_what_it_ran(server)


def test_a_visitor_finds_an_app_and_reads_its_page(store: Server) -> None:
    with chromium() as browser:
        wait = WebDriverWait(browser, 30)
        browser.get(store.base + "/")
        cards = browser.find_elements(By.CSS_SELECTOR, ".card h2")
        assert [c.text for c in cards] == ["fiji", "Napari", "renamer", "Stardist"]
        shoot(browser, "catalogue")

        search = browser.find_element(By.ID, "q")  # a plain form: no script needed
        search.send_keys("nuclei" + Keys.ENTER)
        wait.until(lambda b: "nuclei" in b.title)
        assert [c.text for c in browser.find_elements(By.CSS_SELECTOR, ".card h2")] == ["Stardist"]
        browser.find_element(By.LINK_TEXT, "Stardist").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".releases"))
        shoot(browser, "app")
        page = browser.find_element(By.TAG_NAME, "main").text
        assert "Star-convex object detection" in page
        assert "BSD-3-Clause" in page
        newest = browser.find_element(By.CSS_SELECTOR, ".release")
        flavours = {
            f.find_element(By.CSS_SELECTOR, ".flavour-name").text: f.text
            for f in newest.find_elements(By.CSS_SELECTOR, ".flavour")
        }
        assert "NVIDIA GPU, CUDA 11.8+, compute 7.5+" in flavours["cuda"]
        assert "not here: no CUDA GPU" in flavours["cuda"]  # this machine has none
        assert "2+ CPUs" in flavours["cpu"]
        assert "4 GB RAM" in flavours["cpu"]

        # An Arkitekt app asking to be granted a folder: the person sees what and where.
        browser.get(store.base + "/apps/fiji")
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".releases"))
        asks = browser.find_element(By.CSS_SELECTOR, ".release .badge-ask")
        assert asks.text == "asks: images: a read-only host folder at /images"
        assert "badge-optional" in (asks.get_attribute("class") or "")  # may be declined
        shoot(browser, "app-capabilities", at=".release .badge-ask")
        logs: list[dict[str, str]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
        assert [e for e in logs if e["level"] == "SEVERE"] == []


def test_the_owner_installs_an_example_and_opens_it_on_its_own_origin(store: Server) -> None:
    """The newcomer's journey: sign in, install Napari, press Open, see the app. On the
    app's origin, a script cannot read Port's pages or API with the visitor's session."""
    with chromium() as browser:
        # The live part is swapped every few seconds: an element may go stale under us.
        wait = WebDriverWait(browser, 60, ignored_exceptions=[StaleElementReferenceException])
        browser.get(f"{store.base}/sign-in")
        browser.find_element(By.NAME, "name").send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(store.password() + Keys.ENTER)
        wait.until(lambda b: b.find_elements(By.LINK_TEXT, "My apps"))
        browser.get(f"{store.base}/account")
        assert "No redeem token is stored." in browser.find_element(By.TAG_NAME, "main").text
        shoot(browser, "account-arkitekt", at="#arkitekt-title")
        # What an app asks to be granted is asked on its install form, nothing ticked.
        browser.get(f"{store.base}/apps/fiji/install")
        grants = browser.find_element(By.CSS_SELECTOR, "fieldset.grants")
        assert "images: a read-only host folder at /images (may be declined)" in grants.text
        assert browser.find_element(By.ID, "grant.images").get_attribute("value") == ""
        shoot(browser, "install-permissions", at="fieldset.grants")
        browser.get(f"{store.base}/apps/napari/install")
        variables = browser.find_element(By.CSS_SELECTOR, ".variables").text
        assert "NAPARI_THEME — The viewer's colour theme (default dark)" in variables
        shoot(browser, "install", at=".variables")
        browser.find_element(By.CSS_SELECTOR, "form.install button[type=submit]").click()
        wait.until(lambda b: "Running" in b.find_element(By.ID, "live").text)
        wait.until(lambda b: b.find_elements(By.LINK_TEXT, "Open"))
        shoot(browser, "setup-open")
        shoot(browser, "setup-permissions", at="#grants-title")
        setup_page = urlsplit(browser.current_url).path
        browser.get(f"{store.base}{setup_page}/open")  # what Open does, in this tab
        wait.until(lambda b: b.find_elements(By.TAG_NAME, "h1"))
        assert urlsplit(browser.current_url).hostname == "napari-1.apps.localhost"
        assert browser.find_element(By.TAG_NAME, "h1").text == "Napari"
        assert "Release 0.5.0, flavour vanilla" in browser.find_element(By.TAG_NAME, "p").text
        shoot(browser, "app-opened")
        browser.find_element(By.PARTIAL_LINK_TEXT, "reach Port").click()
        asked = browser.find_element(By.TAG_NAME, "body").text  # from inside its container
        port_number = urlsplit(store.base).port
        assert asked == f"Port answers at http://port.internal:{port_number}: ok", asked
        browser.back()

        # What any app's script could try, with the visitor's cookies at hand.
        tries = browser.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            const port = arguments[0];
            const attempt = (url, init) => fetch(url, {credentials: "include", ...init})
              .then(r => r.type === "opaque" ? "opaque" : r.text()).catch(e => "blocked");
            Promise.all([
              attempt(port + "/setups"),
              attempt(port + "/graphql", {method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({query: "{ me { name } }"})}),
              attempt(port + "/account", {mode: "no-cors"}),
            ]).then(done);
            """,
            store.base,
        )
        assert tries == ["blocked", "blocked", "opaque"]
        assert "port_session" not in browser.execute_script("return document.cookie")
