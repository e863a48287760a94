"""Each kind of work has a Celery queue of its own, so alerts never wait behind dispatches."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings

from apps.alerts.models import Alert
from apps.postrun.tasks import process_finished_runs
from apps.runs.tasks import dispatch_run
from kubeprobe_site.celery import app as celery_app
from kubeprobe_site.queues import HEARTBEAT_TASK, queue_names
from tests.alerts.conftest import add_run
from tests.factories import CaseFactory, ClusterFactory
from tests.runs.test_loop import database_url
from tests.utils import celery_worker, wait_for

EXPECTED = {
    "apps.scheduling.tasks.fire_binding": "ticks",
    "apps.runs.tasks.dispatch_run": "dispatch",
    "apps.runs.tasks.dispatch_pending": "dispatch",
    "apps.postrun.tasks.process_finished_runs": "alerts",
    "apps.postrun.tasks.sweep_finished_runs": "alerts",
    "apps.alerts.tasks.deliver_flips": "alerts",
    "apps.actions.tasks.deliver_action": "alerts",
    "apps.diagnosis.tasks.retrain_classifier": "housekeeping",
    "apps.runs.tasks.reap_runs": "housekeeping",
    "apps.runs.tasks.reap_cluster": "housekeeping",
    "apps.runs.tasks.cleanup_runs": "housekeeping",
    "apps.runs.tasks.sweep_orphans": "housekeeping",
    "apps.runs.tasks.purge_runs": "housekeeping",
    "apps.runs.tasks.maintain_run_partitions": "housekeeping",
    "apps.alerts.tasks.alerts_housekeeping": "housekeeping",
    "apps.clusters.tasks.check_cluster_apis": "housekeeping",
    "apps.clusters.tasks.check_cluster_api": "housekeeping",
    "apps.resident.tasks.judge_resident": "alerts",
    "apps.resident.tasks.apply_probe": "housekeeping",
    "apps.resident.tasks.remove_probeconfigs": "housekeeping",
    "apps.resident.tasks.resync_probeconfigs": "housekeeping",
    "apps.resident.tasks.resident_housekeeping": "housekeeping",
}


@pytest.fixture(scope="module", autouse=True)
def _all_tasks_registered() -> None:
    celery_app.loader.import_default_modules()  # what a worker does at start: autodiscovery


def routed_queue(task_name: str) -> str:
    return str(celery_app.amqp.router.route({}, task_name)["queue"].name)


@pytest.mark.parametrize(("task_name", "kind"), sorted(EXPECTED.items()))
def test_each_task_routes_to_its_queue(task_name: str, kind: str) -> None:
    default = celery_app.conf.task_default_queue
    assert task_name in celery_app.tasks  # a renamed task would silently fall back
    assert routed_queue(task_name) == f"{default}.{kind}"


def test_every_task_of_ours_has_a_queue_and_the_rest_stay_on_the_default() -> None:
    ours = {name for name in celery_app.tasks if name.startswith("apps.")}
    assert ours == {*EXPECTED, HEARTBEAT_TASK}
    assert routed_queue("celery.backend_cleanup") == celery_app.conf.task_default_queue


def test_heartbeats_go_to_the_queue_they_name() -> None:
    default = celery_app.conf.task_default_queue
    route = celery_app.amqp.router.route
    for kind in ("ticks", "dispatch", "alerts", "housekeeping"):
        queue = route({}, HEARTBEAT_TASK, kwargs={"kind": kind})["queue"].name
        assert queue == f"{default}.{kind}"
    assert route({}, HEARTBEAT_TASK, kwargs={"kind": "default"})["queue"].name == default


def test_queue_names_follow_the_default_queue() -> None:
    # The test suite renames the default queue per process; the others follow it.
    assert celery_app.conf.task_default_queue == f"kubeprobe-test-{os.getpid()}"
    default = celery_app.conf.task_default_queue
    assert set(celery_app.amqp.queues) == set(queue_names(default))
    assert queue_names("celery") == [
        "celery",
        "celery.ticks",
        "celery.dispatch",
        "celery.alerts",
        "celery.housekeeping",
    ]


@pytest.fixture
def alerts_worker(tmp_path: Path) -> Iterator[Path]:
    """A real worker consuming only the alerts queue; yields its log file."""
    default = celery_app.conf.task_default_queue
    log_path = tmp_path / "worker.log"
    args = ["-Q", f"{default}.alerts", "--pool", "solo", "--loglevel", "INFO"]
    args += ["--without-mingle", "--without-gossip"]
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_TASK_DEFAULT_QUEUE": default}
    with celery_worker(args, env, log_path, tail=3000):
        yield log_path


@pytest.mark.django_db(transaction=True)
def test_alert_evaluation_does_not_wait_behind_a_dispatch_backlog(alerts_worker: Path) -> None:
    default = celery_app.conf.task_default_queue
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    backlog = 500 + broker.llen(f"{default}.dispatch")  # earlier tests may have left some
    for i in range(500):  # nobody consumes the dispatch queue in this test
        dispatch_run.delay(10**9 + i)
    assert broker.llen(f"{default}.dispatch") == backlog
    case, cluster = CaseFactory(), ClusterFactory()
    run = add_run(case, cluster, False)
    wait_for(
        lambda: b"ready." in alerts_worker.read_bytes(), timeout=60, what="the worker to start"
    )

    started = time.monotonic()
    process_finished_runs.delay([(case.pk, cluster.pk)])
    alert = wait_for(
        lambda: Alert.objects.filter(case=case, cluster=cluster, latest_run=run).first(),
        timeout=10,
        interval=0.05,
        what="the alerts worker to judge the failed run",
    )
    assert alert.latest_state == "failed"
    assert time.monotonic() - started < 10
    # The backlog is still there, untouched: the alert did not queue behind it.
    assert broker.llen(f"{default}.dispatch") == backlog
    assert broker.llen(f"{default}.alerts") == 0
