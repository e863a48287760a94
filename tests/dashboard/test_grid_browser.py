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
from apps.resident.models import ResidentProbe, ResidentTarget
from apps.runs.models import ProbeRun
from tests.dashboard.test_browser import (  # noqa: F401 (fixtures)
    PASSWORD,
    SERVER_REDIS,
    browser,
    server,
    wait,
    wait_matrix_ready,
)
from tests.utils import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

CLUSTERS, CASES = 600, 5
# How many resident refetches (state.json?part=resident) finished; true once above arguments[0].
REFETCHED = """
const n = performance.getEntriesByType("resource")
  .filter((e) => e.name.includes("part=resident") && e.responseEnd > 0).length;
return arguments[0] < 0 ? n : n > arguments[0];
"""


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

    cases, clusters, runs = fleet()
    # A resident probe in the middle cluster: a column after the cases, up at first.
    probe = ResidentProbe.objects.create(name="etcd-resident", image="kubeprobe/probe:0.1.0")
    middle = clusters[CLUSTERS // 2]
    resident = ResidentTarget.objects.create(
        probe=probe, cluster=middle, state="up", last_sample_at=timezone.now()
    )
    login(browser, server)
    ready_ms = wait_matrix_ready(browser)
    assert ready_ms > 0
    summary = browser.find_element(By.ID, "grid-summary").text
    assert summary.startswith(f"{CLUSTERS} clusters × {CASES} cases + 1 resident probe (◉)")
    assert browser.find_element(By.ID, "resident-legend").is_displayed()
    head = browser.find_element(By.CSS_SELECTOR, "#matrix th.resident")
    assert head.text == "◉ etcd-resident"
    assert (
        head.find_element(By.TAG_NAME, "a")
        .get_attribute("href")
        .endswith("/dashboard/resident/etcd-resident/")
    )
    # A cluster it does not run in: an empty cell keeps the columns aligned.
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-cluster='{clusters[0].pk}']")
    assert row.find_elements(By.TAG_NAME, "td")[-1].get_attribute("class") == (
        "rcell res-none res-first"
    )
    drawn = browser.find_elements(By.CSS_SELECTOR, "#matrix tbody tr[data-cluster]")
    assert 10 < len(drawn) < 120, len(drawn)  # the rows in view and a margin, not 600
    first, last = clusters[0], clusters[-1]
    assert browser.find_element(By.ID, f"c-{cases[0].pk}-{first.pk}")
    assert not browser.find_elements(By.ID, f"c-{cases[0].pk}-{last.pk}")

    # Scrolled to the end, the last row is drawn (and the first is gone).
    browser.execute_script(
        "const g = document.getElementById('grid'); g.scrollTop = g.scrollHeight;"
    )
    wait(browser, 10).until(lambda d: d.find_elements(By.ID, f"c-{cases[0].pk}-{last.pk}"))
    assert not browser.find_elements(By.ID, f"c-{cases[0].pk}-{first.pk}")

    # A live cell for a row out of view lands in the model and shows when scrolled to.
    wait(browser, 20).until(
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
    wait(browser, 20).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-counter=firing-critical]").text == "1"
    )
    browser.execute_script(
        "const g = document.getElementById('grid'); g.scrollTop = g.scrollHeight / 2 - 200;"
    )
    cell_id = f"c-{cases[1].pk}-{target.pk}"
    cell = wait(browser, 10).until(lambda d: d.find_elements(By.ID, cell_id))[0]
    assert {"run-failed", "alert-firing"} <= set(cell.get_attribute("class").split())
    # And back to green, in view this time (the first state of each kind is index 0).
    push.push_pair(
        case_id=cases[1].pk, cluster_id=target.pk, state="ok", severity="critical",
        latest_state="succeeded", latest_run_id=runs[(cases[1].pk, target.pk)],
    )  # fmt: skip
    assert push.flush_pairs()
    wait(browser, 20).until(lambda d: classes(d, cell_id) == "cell run-succeeded alert-ok")
    assert browser.find_element(By.CSS_SELECTOR, "[data-counter=firing-critical]").text == "0"
    push.push_pair(
        case_id=cases[1].pk, cluster_id=target.pk, state="firing", severity="critical",
        latest_state="failed", latest_run_id=runs[(cases[1].pk, target.pk)],
    )  # fmt: skip
    assert push.flush_pairs()
    wait(browser, 20).until(lambda d: "alert-firing" in classes(d, cell_id))

    # A resident cell pushed down ("rcell", through the same ordered queue) while its
    # row is out of view: the grid's model takes it, and the row shows it when drawn.
    browser.execute_script("document.getElementById('grid').scrollTop = 0;")
    resident_id = f"r-{probe.pk}-{middle.pk}"
    wait(browser, 10).until(lambda d: not d.find_elements(By.ID, resident_id))
    fetched = browser.execute_script(REFETCHED, -1)
    browser.execute_script(
        "window.rcells = 0; document.addEventListener('kubeprobe:frame', function (e) {"
        " if (e.detail.type === 'rcell') window.rcells += 1; });"
    )
    ResidentTarget.objects.filter(pk=resident.pk).update(state="down")  # what a refetch reads
    push.push_samples(probe_id=probe.pk, cluster_id=middle.pk, points=[], state="down")
    wait(browser, 20).until(lambda d: d.execute_script("return window.rcells") >= 1)
    # resident-matrix.js also refetches the numbers a second later; let that land too,
    # so neither could have been applied to a drawn cell.
    wait(browser, 20).until(lambda d: d.execute_script(REFETCHED, fetched))
    assert not browser.find_elements(By.ID, resident_id)  # both arrived while not drawn
    browser.execute_script(
        "const g = document.getElementById('grid'); g.scrollTop = g.scrollHeight / 2 - 200;"
    )
    wait(browser, 20).until(lambda d: "res-down" in classes(d, resident_id))
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
    wait(browser, 20).until(lambda d: f"/dashboard/runs/{run_id}/" in d.current_url)
    wait_for(lambda: "k-0599" in browser.page_source, timeout=10, what="the run page")
