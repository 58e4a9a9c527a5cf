"""A real browser for tests: Debian's Chromium driven by Selenium through Debian's
chromedriver (``PORT_TEST_BROWSER``, ``PORT_TEST_BROWSER_DRIVER``: `make services`).

Nothing is downloaded: both paths are given, so Selenium Manager never runs. Every host
but 127.0.0.1 resolves to nothing, so a page that needs the internet fails here as it
would on a lab network. Screenshots go to ``PORT_TEST_SCREENSHOTS`` (default: a folder
under the system's temporary directory), and their paths are printed.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from tests.harness import require

DESKTOP = (1280, 800)
_FAILURES = itertools.count(1)
PHONE = (390, 844)
SIZES = {"desktop": DESKTOP, "phone": PHONE}


def screenshots_dir() -> Path:
    folder = Path(
        os.environ.get("PORT_TEST_SCREENSHOTS")
        or Path(tempfile.gettempdir()) / "port-test-screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium at desktop size; quit afterwards (no process is left). When
    the test fails inside, the page it was on is shot first (``failed-<n>``), as
    evidence: the paths are printed with the failure."""
    binary = os.environ.get("PORT_TEST_BROWSER")
    driver_path = os.environ.get("PORT_TEST_BROWSER_DRIVER")
    if not binary or not driver_path:
        require("Chromium and chromedriver (PORT_TEST_BROWSER(_DRIVER), see `make services`)")
    options = Options()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        # Only 127.0.0.1 exists (and *.localhost, the app origins, on it): a CDN request
        # fails at once, as without internet.
        "--host-resolver-rules=MAP *.localhost 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    except BaseException:
        with suppress(Exception):  # the browser itself may be what failed
            shoot(driver, f"failed-{next(_FAILURES)}")
        raise
    finally:
        driver.quit()


def shoot(driver: webdriver.Chrome, name: str, at: str | None = None) -> list[Path]:
    """Screenshots of the current page at desktop and phone size (scrolled to the
    element of CSS selector ``at``, if given); their paths, printed."""
    taken = []
    for size, (width, height) in SIZES.items():
        driver.set_window_size(width, height)
        if at is not None:
            driver.execute_script(
                "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", at
            )
        path = screenshots_dir() / f"{name}-{size}.png"
        driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
        taken.append(path)
    driver.set_window_size(*DESKTOP)
    return taken
