"""The dashboards in a real browser: headless Chromium (Debian's chromium + chromium-driver)
against the real ASGI server (daphne), Postgres and Redis.

Log in, open the overview, make a run fail through the report API, and see its
cell turn red without a reload (and a resident probe's cell, in its matrix column,
after a failing sample batch); then open the run page from that cell and see
the failing step. Set KUBEPROBE_SCREENSHOTS=<dir> to save the pages as PNGs
(the README's screenshots come from here).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from apps.alerts.models import Alert, AlertRule
from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster
from apps.resident import tokens as resident_tokens
from apps.resident.models import ResidentProbe
from apps.runs.models import ProbeRun
from tests.cases.servers import free_port
from tests.utils import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PASSWORD = "browser-Test-pw-1"
TOKEN = "browser-test-run-token"
# A Redis database of its own for the server below: the channel layer and cache keys of
# this pytest process (other tests push and schedule too) stay out of its way.
SERVER_REDIS = "redis://127.0.0.1:6379/11"
RESIDENT_TOKEN = "kpr_browser-test-resident-token"
FAILURE = "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox"

pytestmark = pytest.mark.django_db(transaction=True)


def _require(path: str) -> None:
    if not shutil.which(path):
        missing = f"{path} is missing (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):  # .ci/run installs them: missing there is a CI bug
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.fixture
def server() -> Iterator[str]:
    """daphne serving the portal (HTTP and websockets) on the test database.

    Celery runs eagerly in it, so a report's alert evaluation and live push happen
    in that process, as a worker would do them.
    """
    db = connection.settings_dict
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "REDIS_URL": SERVER_REDIS,
        "KUBEPROBE_DEBUG": "1",  # static files straight from static/ (no collectstatic)
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "KUBEPROBE_PUBLIC_URL": url,
        "LOG_LEVEL": "WARNING",
    }
    log = (Path(os.environ.get("TMPDIR", "/tmp")) / f"kubeprobe-browser-{port}.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "kubeprobe_site.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        try:
            with urllib.request.urlopen(url + "/livez", timeout=1) as answer:
                return answer.status == 200
        except OSError:
            assert process.poll() is None, Path(log.name).read_text()
            return False

    try:
        wait_for(up, timeout=30, what="daphne to answer")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    _require(CHROMIUM)
    _require(CHROMEDRIVER)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def world() -> ProbeRun:
    """A small fleet with assorted results, and one running probe about to fail."""
    User.objects.create_superuser("oncall", "oncall@example.com", PASSWORD)
    AlertRule.objects.filter(name="default").update(consecutive_failures=1)
    template = CaseTemplate.objects.create(name="builtin", image="kubeprobe/probe:0.1.0")
    cases = [
        Case.objects.create(name=name, template=template)
        for name in (
            "pod-lifecycle",
            "deployment-lifecycle",
            "statefulset-lifecycle",
            "etcd-blackbox",
            "canary-release",
            "apiserver-certificates",
        )
    ]
    regions = ["eu-west", "us-east", "ap-south"]
    clusters = [
        Cluster.objects.create(
            name=f"prod-{regions[i % 3]}-{i + 1}",
            executor="local",
            region=regions[i % 3],
            environment="prod",
        )
        for i in range(9)
    ]
    now = timezone.now()
    for ci, cluster in enumerate(clusters):
        for ki, case in enumerate(cases):
            failed = (ci, ki) in {(2, 3), (5, 4), (7, 0)}
            run = ProbeRun.objects.create(
                case=case,
                cluster=cluster,
                trigger="schedule",
                state="failed" if failed else "succeeded",
                ok=not failed,
                finished_at=now - timedelta(seconds=30),
                duration_ms=800 + 37 * ki,
                steps=[
                    {"name": "create", "ok": True, "duration_ms": 40, "error": ""},
                    {
                        "name": "ready",
                        "ok": not failed,
                        "duration_ms": 700,
                        "error": "etcdserver: request timed out" if failed else "",
                    },
                ],
                errors=["step ready failed: etcdserver: request timed out"] if failed else [],
            )
            Alert.objects.create(
                case=case,
                cluster=cluster,
                state="firing" if failed else "ok",
                severity="critical" if (ci, ki) == (2, 3) else "warning",
                latest_run=run,
                latest_state=run.state,
                latest_duration_ms=run.duration_ms,
                last_finished_at=run.finished_at,
                step="ready" if failed else "",
                error="etcdserver: request timed out" if failed else "",
                firing_since=now - timedelta(minutes=4) if failed else None,
            )
    # A resident probe on two clusters, up on both (its samples come in the test, over HTTP).
    probe = ResidentProbe.objects.create(name="etcd-resident", image="kubeprobe/probe:0.1.0")
    probe.clusters.set(clusters[:2])
    nonce = resident_tokens.new_nonce()
    ResidentProbe.objects.filter(pk=probe.pk).update(
        token_nonce=nonce,
        token_hash=resident_tokens.hash_token(RESIDENT_TOKEN),
    )
    return ProbeRun.objects.create(
        case=cases[0],
        cluster=clusters[0],
        trigger="schedule",
        state="running",
        dispatched_at=now,
        deadline=now + timedelta(minutes=10),
        token_hash=hashlib.sha256(TOKEN.encode()).hexdigest(),
    )


def report_failure(server: str, run: ProbeRun) -> None:
    body = {
        "ok": False,
        "errors": [f"step ready failed: {FAILURE}"],
        "steps": [
            {"name": "create", "ok": True, "duration_ms": 41},
            {"name": "scheduled", "ok": True, "duration_ms": 310},
            {"name": "ready", "ok": False, "duration_ms": 30012, "error": FAILURE},
        ],
        "metrics": {"replicas": 1},
    }
    request = urllib.request.Request(
        f"{server}/api/v1/runs/{run.pk}/report",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def wait(driver: Any, seconds: float = 20) -> Any:
    """A WebDriverWait that keeps polling when the page under it is replaced (a click that
    navigates, a live redraw): an element gone stale or not there yet is "not yet"."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver, seconds, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    )


def wait_matrix_ready(driver: Any) -> float:
    """Wait for grid.js to draw the matrix; ms from navigation start to its "matrix-ready" mark."""

    wait(driver, 20).until(
        lambda d: d.execute_script("return performance.getEntriesByName('matrix-ready').length")
    )
    return float(
        driver.execute_script("return performance.getEntriesByName('matrix-ready')[0].startTime")
    )


def post_resident_batch(server: str, cluster: str, state: str, seconds_ago: int) -> None:
    start = timezone.now() - timedelta(seconds=seconds_ago)
    wins = [
        {
            "start": (start + timedelta(seconds=i)).isoformat(),
            "end": (start + timedelta(seconds=i + 1)).isoformat(),
            "count": 10,
            "failures": 0 if state == "up" else 10,
            "latency_ms": {"p50": 2.0, "p99": 6.0, "max": 8.0},
            "state": state,
        }
        for i in range(5)
    ]
    body = {"batch_id": uuid.uuid4().hex, "probe": "etcd-resident", "cluster": cluster,
            "windows": wins}  # fmt: skip
    request = urllib.request.Request(
        f"{server}/api/v1/resident/samples",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {RESIDENT_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202


def screenshot(driver: Any, name: str) -> None:
    target = os.environ.get("KUBEPROBE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(target) / f"{name}.png"))


def test_a_failing_report_turns_the_cell_red_live_and_leads_to_the_failing_step(
    server: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    run = world()
    for cluster in ("prod-eu-west-1", "prod-us-east-2"):
        post_resident_batch(server, cluster, "up", seconds_ago=30)
    browser.get(f"{server}/dashboard/")
    assert "/admin/login/" in browser.current_url  # login required
    browser.find_element(By.NAME, "username").send_keys("oncall")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait(browser, 20).until(lambda d: d.current_url.rstrip("/").endswith("/dashboard"))
    wait_matrix_ready(browser)

    cell_id = f"c-{run.case_id}-{run.cluster_id}"
    cell = browser.find_element(By.ID, cell_id)
    assert "run-succeeded" in cell.get_attribute("class")
    # The resident probe is a column of the matrix, after the cases.
    heads = browser.find_elements(By.CSS_SELECTOR, "#matrix thead th")
    assert heads[-1].text.endswith("etcd-resident")
    assert "resident" in heads[-1].get_attribute("class")
    probe_id = ResidentProbe.objects.get(name="etcd-resident").pk
    resident_id = f"r-{probe_id}-{run.cluster_id}"
    resident = browser.find_element(By.ID, resident_id)
    assert "res-up" in resident.get_attribute("class") and resident.text == "100"
    assert (
        resident.find_element(By.TAG_NAME, "a")
        .get_attribute("href")
        .endswith("/dashboard/resident/etcd-resident/")
    )
    warnings = browser.find_element(By.CSS_SELECTOR, "[data-counter=firing-warning]")
    assert warnings.text == "2"
    # Wait until the page's socket is subscribed, then mark the page: a reload would lose the mark.
    wait(browser, 20).until(
        lambda d: d.find_element(By.ID, "live-status").get_attribute("data-state") == "live"
    )
    browser.execute_script("window.kubeprobeNoReload = true;")

    report_failure(server, run)
    post_resident_batch(server, "prod-eu-west-1", "down", seconds_ago=20)

    wait(browser, 20).until(
        lambda d: (
            {"run-failed", "alert-firing"}
            <= set(d.find_element(By.ID, cell_id).get_attribute("class").split())
        )
    )
    cell = browser.find_element(By.ID, cell_id)
    link = cell.find_element(By.TAG_NAME, "a")
    assert link.text == "✗" and link.get_attribute("title") == "failed; alert firing (warning)"
    assert link.get_attribute("href").endswith(f"/dashboard/runs/{run.pk}/")
    assert warnings.text == "3"  # the counter follows the cells
    # The resident cell turned red too, and its availability followed (50 samples of 100 ok).
    wait(browser, 20).until(
        lambda d: "res-down" in d.find_element(By.ID, resident_id).get_attribute("class")
    )
    wait(browser, 20).until(lambda d: d.find_element(By.ID, resident_id).text == "50.0")
    assert browser.execute_script("return window.kubeprobeNoReload === true;")
    screenshot(browser, "overview")

    cell.find_element(By.TAG_NAME, "a").click()
    wait(browser, 20).until(lambda d: f"/dashboard/runs/{run.pk}/" in d.current_url)
    detail = browser.find_element(By.ID, "run-detail").text
    assert "ready" in detail and FAILURE in detail
    assert "pod-lifecycle" in browser.page_source and "prod-eu-west-1" in browser.page_source
    screenshot(browser, "run")


def test_the_top_bar_switch_shows_the_page_in_chinese_and_back_in_english(
    server: str, browser: Any
) -> None:
    """One page in each language: the switch's choice is kept (a cookie) across pages,
    and the live script's words come from the JavaScript catalog."""
    from selenium.webdriver.common.by import By

    world()
    browser.get(f"{server}/admin/login/?next=/dashboard/")
    browser.find_element(By.NAME, "username").send_keys("oncall")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait(browser, 20).until(lambda d: d.current_url.rstrip("/").endswith("/dashboard"))

    def nav() -> str:
        return browser.find_element(By.CSS_SELECTOR, "header.top nav").text

    def lang(driver: Any) -> str:
        # Asked of the document in place, never through an element a navigation can replace.
        return str(driver.execute_script("return document.documentElement.lang"))

    def switch_to(code: str) -> None:
        browser.find_element(By.CSS_SELECTOR, f"header.top [data-language='{code}']").click()
        wait(browser, 20).until(lambda d: lang(d) == code)

    wait_matrix_ready(browser)  # the page the login redirected to has settled
    assert lang(browser) == "en"
    assert "Overview" in nav() and "Alerts" in nav()

    switch_to("zh-hans")
    assert browser.current_url.rstrip("/").endswith("/dashboard")  # back on the same page
    assert "总览" in nav() and "告警" in nav() and "Overview" not in nav()
    # The grid's words (grid.js) come from the JavaScript catalog too.
    wait_matrix_ready(browser)
    wait(browser, 20).until(lambda d: "个集群" in d.find_element(By.ID, "grid-summary").text)
    corner = browser.find_element(By.CSS_SELECTOR, "#matrix th.corner").text
    assert corner == "集群"
    wait(browser, 20).until(
        lambda d: d.find_element(By.ID, "live-status").text == "实时"  # from /jsi18n/
    )
    screenshot(browser, "overview-zh-hans")
    # Remembered on the next page.
    browser.get(f"{server}/dashboard/alerts/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "告警"

    switch_to("en")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Alerts"
    wait(browser, 20).until(lambda d: d.find_element(By.ID, "live-status").text == "live")
