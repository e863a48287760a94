"""The whole loop with no mocks inside the portal.

A real Celery worker with embedded beat (DatabaseScheduler) runs as a separate
process against this test's Postgres database and Redis; bindings with a
1-second schedule dispatch cases on a `local` cluster; the cases use probe_sdk
in real subprocesses and report over real HTTP to a live server.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster, Executor
from apps.runs.models import ProbeRun, RunState
from apps.scheduling.models import Binding
from kubeprobe_site.celery import app as celery_app
from kubeprobe_site.queues import queue_names
from tests.utils import celery_worker, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def database_url() -> str:
    db = django_settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@pytest.fixture
def worker(live_server, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:  # type: ignore[no-untyped-def]
    queue = celery_app.conf.task_default_queue
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "KUBEPROBE_PUBLIC_URL": live_server.url,
        "KUBEPROBE_LOCAL_EXECUTOR_ENABLED": "true",
        "KUBEPROBE_LOCAL_RUN_DIR": str(tmp_path / "runs"),
        "KUBEPROBE_REPORT_GRACE_SECONDS": "1",
        "KUBEPROBE_REAP_INTERVAL_SECONDS": "1",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
    }
    args = [
        "-B",
        "-Q",
        ",".join(queue_names(queue)),  # ticks, dispatch, alerts, housekeeping and the default
        "--concurrency",
        "2",
        "--loglevel",
        "INFO",
        "--without-mingle",
        "--without-gossip",
        "-s",
        str(tmp_path / "beat-schedule"),
    ]
    with celery_worker(args, env, tmp_path / "worker.log") as process:
        yield process
    celery_app.control.purge()


def local_case(name: str, module: str, timeout: int = 30) -> Case:
    template = CaseTemplate.objects.create(
        name=f"{name}-template",
        image="local",
        command=["python", "-m", f"tests.runs.cases.{module}"],
        timeout_seconds=timeout,
    )
    return Case.objects.create(name=name, template=template)


def every_second(name: str, cluster: Cluster, case: Case) -> Binding:
    binding = Binding.objects.create(name=name, interval_seconds=1)
    binding.clusters.set([cluster])
    binding.cases.set([case])
    return binding


def finished_run(case: Case) -> ProbeRun | None:
    return (
        ProbeRun.objects.filter(case=case, state__in=["succeeded", "failed", "error", "timed_out"])
        .order_by("pk")
        .first()
    )


def test_schedule_dispatch_report_and_timeout(worker: subprocess.Popen[bytes]) -> None:
    cluster = Cluster.objects.create(name="local", executor=Executor.LOCAL)
    passing = local_case("passing", "passing")
    failing = local_case("failing", "failing")
    silent = local_case("silent", "silent", timeout=3)
    every_second("b-pass", cluster, passing)
    every_second("b-fail", cluster, failing)
    b_silent = every_second("b-silent", cluster, silent)

    ok = wait_for(lambda: finished_run(passing), timeout=90, what="a passing run to finish")
    assert ok.state == RunState.SUCCEEDED, (ok.state, ok.reason, ok.log_tail)
    assert ok.trigger == "schedule" and ok.binding.name == "b-pass"
    assert [s["name"] for s in ok.steps] == ["create object", "read it back"]
    assert all(s["ok"] for s in ok.steps)
    assert ok.steps[0]["duration_ms"] >= 50
    assert ok.metrics["objects"] == 1.0 and ok.duration_ms is not None

    bad = wait_for(lambda: finished_run(failing), timeout=60, what="a failing run to finish")
    assert bad.state == RunState.FAILED, (bad.state, bad.reason)
    assert bad.errors == [
        "step wait pod ready failed: RuntimeError: Failed to create pod sandbox: rpc error: code = Unknown"
    ]
    assert [(s["name"], s["ok"]) for s in bad.steps] == [
        ("create statefulset", True),
        ("wait pod ready", False),
    ]

    hung = wait_for(lambda: finished_run(silent), timeout=60, what="the silent run to time out")
    assert hung.state == RunState.TIMED_OUT, (hung.state, hung.reason)
    assert "no report within the case timeout of 3s" in hung.reason
    assert "starting, then hanging" in hung.log_tail
    # While it hung, later ticks were skipped and counted, not stacked.
    assert Binding.objects.get(pk=b_silent.pk).skipped_count > 0
    Binding.objects.update(enabled=False)
