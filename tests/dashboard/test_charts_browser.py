"""The case page's latency charts in a real browser (headless Chromium, daphne): the
legends show the newest values without hovering, failed steps are their own series."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dashboard.test_browser import PASSWORD, browser, screenshot, server, wait, world  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_step_charts_legends_show_values_and_failures(server: str, browser: Any) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    world()
    browser.get(f"{server}/admin/login/?next=/dashboard/cases/pod-lifecycle/")
    browser.find_element(By.NAME, "username").send_keys("oncall")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait(browser, 20).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#step-charts .u-legend")) == 2
    )
    legends = {
        chart.find_element(By.TAG_NAME, "h3").text: chart.find_element(
            By.CLASS_NAME, "u-legend"
        ).text
        for chart in browser.find_elements(By.CSS_SELECTOR, "#step-charts figure")
    }
    screenshot(browser, "case")
    assert set(legends) == {"create", "ready"}
    for name, text in legends.items():
        assert "--" not in text, (name, text)
        assert "p50" in text and "p95" in text and "failed" in text, (name, text)
    # Every "ready" step of the newest results ran 700 ms; pod-lifecycle failed on one cluster.
    assert "700 ms" in legends["ready"]
    assert "✗ 700 ms" in legends["ready"] or "none" in legends["ready"]
    assert "40 ms" in legends["create"] and "none" in legends["create"]
    # Pairs whose alert is ok read "ok" (the case page loads open alerts only).
    rows = browser.find_elements(By.CSS_SELECTOR, "table.stats tbody tr")
    badges = [r.find_elements(By.TAG_NAME, "td")[-1].text for r in rows]
    assert badges.count("ok") == 8 and badges.count("firing · warning") == 1, badges
