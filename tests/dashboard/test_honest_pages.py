"""The case and run pages say what is true: a fast failure is not plotted as a speed-up,
the case has a run history, the run page has the firing counters, local runs are
processes, a succeeded run's missing log is explained and a healthy alert reads OK."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

from apps.runs.models import ProbeRun
from tests.dashboard.conftest import World, finished_run, set_alert

pytestmark = pytest.mark.django_db

Login = Callable[[User], Client]


def charts_of(html: str) -> dict:
    found = re.search(r'<script id="step-latency" type="application/json">(.*?)</script>', html)
    assert found
    return json.loads(found.group(1))


def test_failed_steps_are_plotted_apart_not_as_faster(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    etcd, _ = world.cases
    ProbeRun.objects.all().delete()
    for i in range(4):
        finished_run(
            etcd,
            world.a1,
            ok=True,
            steps=[{"name": "put", "ok": True, "duration_ms": 200}],
            ago=timedelta(minutes=60 * (i + 1)),
        )
    # The newest run fails fast (3 ms, connection refused).
    finished_run(
        etcd,
        world.a1,
        ok=False,
        steps=[{"name": "put", "ok": False, "duration_ms": 3, "error": "refused"}],
        ago=timedelta(seconds=10),
    )
    charts = charts_of(
        login(make_user("viewer")).get("/dashboard/cases/etcd-meta/").content.decode()
    )
    put = next(s for s in charts["steps"] if s["name"] == "put")
    assert len(put["failed"]) == len(put["p50"]) == len(charts["x"])
    assert [v for v in put["failed"] if v is not None] == [3]
    # Percentiles are of the steps that passed only: the 3 ms failure lowers nothing.
    assert min(v for v in put["p50"] if v is not None) == 200
    # The newest bucket holds only the failure: no p50 there, a failed point instead.
    assert put["p50"][-1] is None and put["failed"][-1] == 3


def test_case_page_has_the_run_history(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    html = login(make_user("viewer")).get("/dashboard/cases/etcd-meta/").content.decode()
    history = html[html.index('id="run-history"') :].split("</table>")[0]
    runs = re.findall(r'href="/dashboard/runs/(\d+)/"', history)
    # Both etcd runs (prod-a1 succeeded, stage-b1 failed at "ready"), newest first.
    expected = sorted(
        [world.runs["a1-etcd"], world.runs["b1-etcd"]], key=lambda r: (r.created_at, r.pk)
    )[::-1]
    assert runs == [str(r.pk) for r in expected]
    assert "stage-b1" in history and "prod-a1" in history and ">ready<" in history


def test_run_page_counters_local_process_log_and_ok_alert(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    etcd, _ = world.cases
    run = world.runs["a1-etcd"]
    ProbeRun.objects.filter(pk=run.pk).update(executor="local", pod_name="pid 16024")
    set_alert(etcd, world.a1, run, state="ok", severity="warning")
    html = login(make_user("viewer")).get(f"/dashboard/runs/{run.pk}/").content.decode()
    # The world fires one critical (pods on prod-a1) and one warning (etcd on stage-b1).
    assert '<span data-counter="firing-critical">1</span>' in html
    assert '<span data-counter="firing-warning">1</span>' in html
    assert "pod pid" not in html and "process <code>pid 16024</code> on the worker host" in html
    assert "No log." not in html and "the probe reported its own result" in html
    assert "OK · warning" not in html and '<span class="badge st-ok">OK</span>' in html
