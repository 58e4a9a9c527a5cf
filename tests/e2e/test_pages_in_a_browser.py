"""Port's pages in a real browser (Chromium) that cannot reach the internet."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import chromium, shoot
from tests.serverproc import Server, start, stop


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
