"""Admin and dashboards in a real browser (headless Chromium, daphne, Postgres):
from the admin's run list to a run's readable page, on to its dashboard page and
back; every change list fits a 1400 px window; "View site" is the dashboards."""

from __future__ import annotations

from typing import Any

import pytest

from apps.alerts.models import Alert
from apps.runs.models import ProbeRun
from tests.dashboard.test_browser import FAILURE, PASSWORD, browser, screenshot, server, wait, world  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def overflow(driver: Any) -> int:
    """How many pixels of the page or of its result table are scrolled out of sight sideways."""
    return int(
        driver.execute_script(
            "const r = document.querySelector('.results');"
            "return Math.max(document.documentElement.scrollWidth - window.innerWidth,"
            " r ? r.scrollWidth - r.clientWidth : 0);"
        )
    )


def test_admin_to_dashboard_and_back(server: str, browser: Any) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    world()
    failed = ProbeRun.objects.filter(state="failed").select_related("case", "cluster").first()
    assert failed is not None
    # A long error, as real ones are (it must not widen the alert list).
    Alert.objects.filter(state="firing").update(error=f"{FAILURE}: {'x' * 160}")
    browser.set_window_size(1400, 1000)
    browser.get(f"{server}/admin/")
    browser.find_element(By.NAME, "username").send_keys("oncall")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait(browser, 20).until(lambda d: d.current_url.rstrip("/").endswith("/admin"))
    view_site = browser.find_element(By.LINK_TEXT, "VIEW SITE")
    assert view_site.get_attribute("href") == f"{server}/dashboard/"

    # Change lists without sideways scrolling at 1400 px.
    for path in ("runs/proberun", "alerts/alert", "clusters/cluster", "catalog/case"):
        browser.get(f"{server}/admin/{path}/")
        assert browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"), path
        screenshot(browser, f"admin-{path.replace('/', '-')}")
        assert overflow(browser) <= 0, (path, overflow(browser))

    # The run list → the run: a title naming it, steps, errors and metrics as tables.
    browser.get(f"{server}/admin/runs/proberun/?state__exact=failed")
    browser.find_element(By.LINK_TEXT, str(failed.pk)).click()
    title = f"Run {failed.pk} · {failed.case.name} on {failed.cluster.name} · failed"
    wait(browser, 20).until(lambda d: title in d.find_element(By.ID, "content").text)
    crumbs = browser.find_element(By.CSS_SELECTOR, ".breadcrumbs").text
    assert crumbs == f"Home › Probe runs › Runs › {title}", crumbs
    steps = browser.find_element(By.CSS_SELECTOR, ".field-steps_display table")
    heads = [c.text.lower() for c in steps.find_elements(By.CSS_SELECTOR, "thead th")]
    assert heads == ["#", "step", "result", "duration", "error"]
    rows = steps.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["create", "ready"]
    assert "✗ failed" in rows[1].text and "etcdserver: request timed out" in rows[1].text
    assert "700 ms" in rows[1].text
    errors = browser.find_element(By.CSS_SELECTOR, ".field-errors_display").text
    assert "step ready failed: etcdserver: request timed out" in errors
    assert "[" not in errors  # not raw JSON
    admin_url = browser.current_url
    screenshot(browser, "admin-run")

    # → its dashboard page, and back.
    browser.find_element(By.LINK_TEXT, "VIEW ON DASHBOARD").click()
    wait(browser, 20).until(lambda d: d.current_url == f"{server}/dashboard/runs/{failed.pk}/")
    assert "etcdserver: request timed out" in browser.find_element(By.ID, "run-detail").text
    browser.back()
    wait(browser, 20).until(lambda d: d.current_url == admin_url)
    assert title in browser.find_element(By.ID, "content").text

    # Cases, clusters and alerts lead to their dashboard pages too.
    alert = Alert.objects.filter(state="firing").select_related("case", "cluster").first()
    assert alert is not None
    for admin_path, dashboard_path in (
        (f"catalog/case/{alert.case_id}/change/", f"/dashboard/cases/{alert.case.name}/"),
        (
            f"clusters/cluster/{alert.cluster_id}/change/",
            f"/dashboard/clusters/{alert.cluster.name}/",
        ),
        (f"alerts/alert/{alert.pk}/change/", f"/dashboard/alerts/#alert-{alert.pk}"),
    ):
        browser.get(f"{server}/admin/{admin_path}")
        browser.find_element(By.LINK_TEXT, "VIEW ON DASHBOARD").click()
        wait(browser, 20).until(lambda d, p=dashboard_path: d.current_url == f"{server}{p}")
        assert browser.find_element(By.TAG_NAME, "main")
