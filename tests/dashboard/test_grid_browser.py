"""The overview's grid in headless Chromium (daphne, Postgres, Redis): 600 clusters × 5
cases drawn with only the rows in view in the DOM, every row reachable by scrolling and
by keyboard, a cell click leading to its run, and live cells reaching rows out of view."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from apps.alerts.models import Alert
from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster
from apps.dashboard import push
from apps.runs.models import ProbeRun
from tests.dashboard.test_browser import (  # noqa: F401 (fixtures)
    PASSWORD,
    SERVER_REDIS,
    browser,
    server,
    wait_matrix_ready,
)
from tests.utils import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

CLUSTERS, CASES = 600, 5


def fleet() -> tuple[list[Case], list[Cluster], dict[tuple[int, int], int]]:
    """Every pair succeeded once; the run ids by (case, cluster)."""
    User.objects.create_superuser("oncall", "oncall@example.com", PASSWORD)
    template = CaseTemplate.objects.create(name="t", image="x")
    cases = Case.objects.bulk_create(
        [Case(name=f"case-{i}", template=template) for i in range(CASES)]
    )
    clusters = Cluster.objects.bulk_create(
        [Cluster(name=f"k-{i:04d}", executor="local", region="eu") for i in range(CLUSTERS)]
    )
    now = timezone.now()
    pairs = [(case, cluster) for cluster in clusters for case in cases]
    runs = ProbeRun.objects.bulk_create(
        [
            ProbeRun(case=case, cluster=cluster, state="succeeded", ok=True, finished_at=now)
            for case, cluster in pairs
        ]
    )
    Alert.objects.bulk_create(
        [
            Alert(case=case, cluster=cluster, latest_run=run, latest_state="succeeded")
            for (case, cluster), run in zip(pairs, runs, strict=True)
        ]
    )
    return cases, clusters, {(c.pk, k.pk): r.pk for (c, k), r in zip(pairs, runs, strict=True)}


def classes(driver: Any, cell_id: str) -> str:
    """A cell's classes, read in one step: a live update replaces the <td> in between."""
    return str(
        driver.execute_script(
            "const td = document.getElementById(arguments[0]); return td ? td.className : ''",
            cell_id,
        )
    )


def login(driver: Any, base: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/dashboard/")
    driver.find_element(By.NAME, "username").send_keys("oncall")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()


def test_the_grid_draws_rows_in_view_and_reaches_every_cell(
    server: str,  # noqa: F811
    browser: Any,  # noqa: F811
    settings: Any,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    cases, clusters, runs = fleet()
    login(browser, server)
    ready_ms = wait_matrix_ready(browser)
    assert ready_ms > 0
    summary = browser.find_element(By.ID, "grid-summary").text
    assert summary.startswith(f"{CLUSTERS} clusters × {CASES} cases")
    drawn = browser.find_elements(By.CSS_SELECTOR, "#matrix tbody tr[data-cluster]")
    assert 10 < len(drawn) < 120, len(drawn)  # the rows in view and a margin, not 600
    first, last = clusters[0], clusters[-1]
    assert browser.find_element(By.ID, f"c-{cases[0].pk}-{first.pk}")
    assert not browser.find_elements(By.ID, f"c-{cases[0].pk}-{last.pk}")

    # Scrolled to the end, the last row is drawn (and the first is gone).
    browser.execute_script(
        "const g = document.getElementById('grid'); g.scrollTop = g.scrollHeight;"
    )
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, f"c-{cases[0].pk}-{last.pk}"))
    assert not browser.find_elements(By.ID, f"c-{cases[0].pk}-{first.pk}")

    # A live cell for a row out of view lands in the model and shows when scrolled to.
    WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.ID, "live-status").get_attribute("data-state") == "live"
    )
    # Pushed from this process as the post-run pipeline pushes, on the server's layer.
    layer = settings.CHANNEL_LAYERS["default"]
    settings.CHANNEL_LAYERS = {
        "default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": [SERVER_REDIS]}}
    }
    target = clusters[CLUSTERS // 2]
    push.push_pair(
        case_id=cases[1].pk,
        cluster_id=target.pk,
        state="firing",
        severity="critical",
        latest_state="failed",
        latest_run_id=runs[(cases[1].pk, target.pk)],
    )
    assert push.flush_pairs()
    WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-counter=firing-critical]").text == "1"
    )
    browser.execute_script(
        "const g = document.getElementById('grid'); g.scrollTop = g.scrollHeight / 2 - 200;"
    )
    cell_id = f"c-{cases[1].pk}-{target.pk}"
    cell = WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, cell_id))[0]
    assert {"run-failed", "alert-firing"} <= set(cell.get_attribute("class").split())
    # And back to green, in view this time (the first state of each kind is index 0).
    push.push_pair(
        case_id=cases[1].pk, cluster_id=target.pk, state="ok", severity="critical",
        latest_state="succeeded", latest_run_id=runs[(cases[1].pk, target.pk)],
    )  # fmt: skip
    assert push.flush_pairs()
    WebDriverWait(browser, 20).until(lambda d: classes(d, cell_id) == "cell run-succeeded alert-ok")
    assert browser.find_element(By.CSS_SELECTOR, "[data-counter=firing-critical]").text == "0"
    push.push_pair(
        case_id=cases[1].pk, cluster_id=target.pk, state="firing", severity="critical",
        latest_state="failed", latest_run_id=runs[(cases[1].pk, target.pk)],
    )  # fmt: skip
    assert push.flush_pairs()
    WebDriverWait(browser, 20).until(lambda d: "alert-firing" in classes(d, cell_id))
    cell = browser.find_element(By.ID, cell_id)

    # Keyboard: from a cell, ArrowDown and ArrowRight move focus, drawing rows as needed.
    cell.find_element(By.TAG_NAME, "a").send_keys(Keys.ARROW_DOWN)
    below = clusters[CLUSTERS // 2 + 1]
    focused = browser.switch_to.active_element
    assert focused.find_element(By.XPATH, "..").get_attribute("id") == f"c-{cases[1].pk}-{below.pk}"
    focused.send_keys(Keys.PAGE_DOWN)
    for _ in range(30):
        browser.switch_to.active_element.send_keys(Keys.PAGE_DOWN)
    parent = browser.switch_to.active_element.find_element(By.XPATH, "..")
    assert parent.get_attribute("id") == f"c-{cases[1].pk}-{last.pk}"

    # A click on a cell opens its run.
    browser.switch_to.active_element.click()
    run_id = runs[(cases[1].pk, last.pk)]
    WebDriverWait(browser, 20).until(lambda d: f"/dashboard/runs/{run_id}/" in d.current_url)
    wait_for(lambda: "k-0599" in browser.page_source, timeout=10, what="the run page")
