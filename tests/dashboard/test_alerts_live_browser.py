"""The alerts page is live like the others, and the inbox shows the notification a
chat channel would get (headless Chromium, daphne, Celery eager in daphne)."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from tests.dashboard.test_browser import (  # noqa: F401 (fixtures)
    PASSWORD,
    browser,
    report_failure,
    screenshot,
    server,
    wait,
    world,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_group_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server sends a flip's notification at once. Eager Celery (the server runs tasks
    inline) ignores countdowns: a delivery that waits for the group wait would re-run
    itself inline until the flip is ready, and no beat runs here to send it later."""
    monkeypatch.setenv("KUBEPROBE_ALERT_GROUP_WAIT_SECONDS", "0")


def test_alerts_page_updates_live_and_the_inbox_has_the_message(
    no_group_wait: None,
    server: str,  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    from selenium.webdriver.common.by import By

    run = world()
    call_command("demo_inbox", stdout=StringIO())
    browser.get(f"{server}/admin/login/?next=/dashboard/alerts/")
    browser.find_element(By.NAME, "username").send_keys("oncall")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait(browser, 20).until(
        lambda d: d.find_element(By.ID, "live-status").get_attribute("data-state") == "live"
    )
    row = f"#alerts-firing tr[data-case='{run.case_id}'][data-cluster='{run.cluster_id}']"
    assert not browser.find_elements(By.CSS_SELECTOR, row)
    assert browser.find_element(By.CSS_SELECTOR, "[data-counter=firing-warning]").text == "2"
    browser.execute_script("window.kubeprobeNoReload = true;")

    report_failure(server, run)

    wait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, row))
    # The row comes with the alert's message; the counters with the coalesced cells.
    wait(browser, 20).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-counter=firing-warning]").text == "3"
    )
    assert browser.execute_script("return window.kubeprobeNoReload === true;")
    screenshot(browser, "alerts")

    browser.find_element(By.LINK_TEXT, "Inbox").click()
    wait(browser, 20).until(lambda d: d.current_url.endswith("/dashboard/inbox/"))
    # The inbox is live too: a message row may be redrawn while it is read.
    wait(browser, 20).until(
        lambda d: any(
            "pod-lifecycle" in m.text and "prod-eu-west-1" in m.text
            for m in d.find_elements(By.CSS_SELECTOR, "#inbox .inbox-message")
        )
    )
    screenshot(browser, "inbox")
