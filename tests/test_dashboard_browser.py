"""The hub dashboard as an operator sees it, in a real headless Chromium: a failing link in words, lag,
held-back reasons, member reachability, the chart of objects crossing, a refresh without reloading, and
the login. The test run writes a screenshot to var/test-screenshots/federation-dashboard.png."""

import copy
import json
import uuid

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from taxii_federation.clients.federation.alliance import start_alliance
from taxii_federation.clients.federation.config import load_federation_config
from tests.browser import SCREENSHOTS, chromium
from tests.conftest import PASSWORDS, SHARED_INDICATORS, load_bundle, post_envelope, write_federation_files

TLP1_RED = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
TLP2_AMBER_STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"


def _marked(obj: dict, marking: str) -> dict:
    marked = copy.deepcopy(obj)
    marked["id"] = f"{obj['type']}--{uuid.uuid4()}"
    marked["object_marking_refs"] = [marking]
    return marked


def _fresh_indicators(count: int) -> list[dict]:
    template = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "indicator")
    return [dict(template, id=f"indicator--{uuid.uuid4()}", name=f"fresh {n}") for n in range(count)]


@pytest.fixture
def alliance(tmp_path):
    path = write_federation_files(tmp_path / "fed", [SHARED_INDICATORS])
    running = start_alliance(load_federation_config(path), run_links=False)
    yield running
    running.stop()


def _without_refresh_races(driver, check, attempts: int = 5) -> None:
    for attempt in range(attempts):
        try:
            check(driver)
            return
        except StaleElementReferenceException:
            if attempt == attempts - 1:
                raise


def _row(driver, kind: str, key: str):
    return driver.find_element(By.CSS_SELECTOR, f"tr.{kind}[data-{kind}='{key}']")


def _log_in(driver, url: str, user: str, password: str) -> str | None:
    """Log in through the form; the error the page shows, or None once the dashboard is there."""
    driver.get(url)
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "log-in").click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#login-error, #links"))
    errors = driver.find_elements(By.ID, "login-error")
    return errors[0].text if errors else None


def test_the_dashboard_shows_an_operator_what_each_link_and_member_is_doing(alliance):
    indicator = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "indicator")
    published = load_bundle("oasis-examples/apt1.json")
    held = [_marked(indicator, TLP1_RED), _marked(indicator, TLP2_AMBER_STRICT)]
    post_envelope(alliance.nodes["ua"].url, published + held)
    alliance.federation.run_once()  # everything crosses, except what policy keeps home
    ro = alliance.nodes.pop("ro")
    ro.stop()
    post_envelope(alliance.nodes["ua"].url, _fresh_indicators(7))
    alliance.federation.run_once()  # ua->hub catches up; hub->ro fails: ro is down
    backlog = _fresh_indicators(4)
    post_envelope(alliance.nodes["ua"].url, backlog)  # not mirrored yet: ua->hub lags by 4 objects
    hub_url = alliance.nodes["hub"].url
    with chromium() as driver:
        assert "lacks the operator role" in _log_in(driver, f"{hub_url}dashboard/", "cert", PASSWORDS["cert"])
        assert "wrong password" in _log_in(driver, f"{hub_url}dashboard/", "ops", "not-the-password")
        assert _log_in(driver, f"{hub_url}dashboard/", "ops", PASSWORDS["ops"]) is None
        assert driver.title == "Federation dashboard: hub hub"

        def what_the_operator_sees(driver) -> None:
            failing = _row(driver, "link", "hub->ro:alliance-indicators")
            assert failing.get_attribute("data-state") == "failing"
            assert failing.find_element(By.CSS_SELECTOR, ".state").text == "FAILING"
            assert "connection refused" in failing.find_element(By.CSS_SELECTOR, ".last-error").text
            inbound = _row(driver, "link", "ua->hub:alliance-indicators")
            assert inbound.get_attribute("data-state") == "ok"
            assert inbound.find_element(By.CSS_SELECTOR, ".lag").text.startswith("4 objects, ")
            held_text = inbound.find_element(By.CSS_SELECTOR, ".held-back").text
            assert "tlp:red: 1" in held_text and "tlp:amber+strict: 1" in held_text
            assert (
                "none"
                in _row(driver, "link", "hub->md:alliance-indicators")
                .find_element(By.CSS_SELECTOR, ".last-error")
                .text
            )

            down = _row(driver, "member", "ro")
            assert down.get_attribute("data-reachable") == "no"
            assert (
                "unreachable: connection refused" in down.find_element(By.CSS_SELECTOR, ".reachability").text
            )
            assert _row(driver, "member", "md").get_attribute("data-reachable") == "yes"
            chart = driver.find_element(By.CSS_SELECTOR, "svg.throughput[data-member='ua']")
            into_hub = len(published) + 7 + 1  # + the TLP marking definition that travelled with nothing held
            assert int(chart.get_attribute("data-into-hub")) >= len(published) + 7
            assert int(chart.get_attribute("data-into-hub")) <= into_hub
            points = chart.find_element(By.CSS_SELECTOR, "polyline.into-hub").get_attribute("points").split()
            assert (
                len(points) == 60 and len({p.split(",")[1] for p in points}) > 1
            )  # a line with a peak in it
            md_chart = driver.find_element(By.CSS_SELECTOR, "svg.throughput[data-member='md']")
            assert int(md_chart.get_attribute("data-from-hub")) >= len(published)

        # The panel refreshes itself every few seconds, replacing its elements: read it whole, again if a
        # refresh replaced an element halfway through.
        _without_refresh_races(driver, what_the_operator_sees)

        # It refreshes by itself, without a reload: mirror the backlog and watch the lag go.
        driver.execute_script("window.stillTheSamePage = true;")
        alliance.federation.run_once()
        WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: (
                _row(d, "link", "ua->hub:alliance-indicators")
                .find_element(By.CSS_SELECTOR, ".lag")
                .text.startswith("0 objects")
            )
        )
        assert driver.execute_script("return window.stillTheSamePage === true;")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOTS / "federation-dashboard.png"))

    audit = (alliance.nodes["hub"].config.source.parent / "audit.log").read_text().splitlines()
    refused = [json.loads(line) for line in audit if '"login_failed"' in line]
    assert [event["user"] for event in refused] == ["ops"]
