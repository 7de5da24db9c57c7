"""Headless Chromium from Debian's packages (chromium, chromium-driver; .ci/run installs them), driven by
selenium, for the pages operators look at. A missing browser fails the test that needs it: it never skips."""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

SCREENSHOTS = Path(__file__).resolve().parents[1] / "var" / "test-screenshots"
_FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Without these Chromium reaches out to the network at start, and on a machine without one its
    # connections to the page under test are refused.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1300",
)


def _find(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(
        f"none of {', '.join(names)} is installed: `apt-get install chromium chromium-driver` "
        "(.ci/run does it) — the browser tests need a real headless Chromium"
    )


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = _find("chromium", "chromium-browser")
    for flag in _FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(_find("chromedriver")))
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()
