"""Celery queues: which task runs where, so one kind of work never waits behind another.

A backlog of dispatches (thousands of clusters ticking together) must not delay
alert evaluation and delivery, and neither may wait behind slow housekeeping
(reaping, cleanup, API checks). Each kind has a queue of its own, named after the
default queue (`celery` → `celery.dispatch`, …), so a test process or a second
installation on the same Redis that sets `CELERY_TASK_DEFAULT_QUEUE` gets a whole
set of its own. Tasks not listed here stay on the default queue.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

# Beat ticks have their own queue: a tick that waits behind slow dispatches (a
# broken cluster's, before its breaker opens) runs late, and the next punctual
# tick then falls within half a period of it and is refused as a duplicate.
TICKS = "ticks"
DISPATCH = "dispatch"
ALERTS = "alerts"
HOUSEKEEPING = "housekeeping"
KINDS = (TICKS, DISPATCH, ALERTS, HOUSEKEEPING)

TASK_KINDS: dict[str, str] = {
    "apps.scheduling.tasks.fire_binding": TICKS,
    "apps.runs.tasks.dispatch_run": DISPATCH,
    "apps.runs.tasks.dispatch_pending": DISPATCH,
    # The post-run pipeline (apps/postrun) judges alerts: alert work, like delivery.
    "apps.postrun.tasks.process_finished_runs": ALERTS,
    "apps.postrun.tasks.sweep_finished_runs": ALERTS,
    "apps.alerts.tasks.deliver_flips": ALERTS,
    "apps.actions.tasks.deliver_action": ALERTS,
    "apps.runs.tasks.reap_runs": HOUSEKEEPING,
    "apps.runs.tasks.reap_cluster": HOUSEKEEPING,
    "apps.runs.tasks.cleanup_runs": HOUSEKEEPING,
    "apps.runs.tasks.sweep_orphans": HOUSEKEEPING,
    "apps.runs.tasks.purge_runs": HOUSEKEEPING,
    "apps.runs.tasks.maintain_run_partitions": HOUSEKEEPING,
    "apps.alerts.tasks.alerts_housekeeping": HOUSEKEEPING,
    "apps.clusters.tasks.check_cluster_apis": HOUSEKEEPING,
    "apps.diagnosis.tasks.retrain_classifier": HOUSEKEEPING,
    "apps.clusters.tasks.check_cluster_api": HOUSEKEEPING,
    "apps.resident.tasks.judge_resident": ALERTS,
    "apps.resident.tasks.apply_probe": HOUSEKEEPING,
    "apps.resident.tasks.remove_probeconfigs": HOUSEKEEPING,
    "apps.resident.tasks.resync_probeconfigs": HOUSEKEEPING,
    "apps.resident.tasks.resident_housekeeping": HOUSEKEEPING,
}
# Beat sends a heartbeat to every queue (apps/core/heartbeat.py): kwargs `kind`
# names the queue ("default" or one of KINDS).
HEARTBEAT_TASK = "apps.core.tasks.heartbeat"
DEFAULT_KIND = "default"


def queue_kinds() -> list[str]:
    """Every queue's kind as a heartbeat names it: the default queue, then KINDS."""
    return [DEFAULT_KIND, *KINDS]


def queue_name(default: str, kind: str) -> str:
    return f"{default}.{kind}"


def queue_names(default: str) -> list[str]:
    """Every queue of an installation: the default one first, then one per kind."""
    return [default, *(queue_name(default, kind) for kind in KINDS)]


def queue_for(task_name: str, default: str) -> str:
    kind = TASK_KINDS.get(task_name)
    return queue_name(default, kind) if kind else default


def kombu_queues(default: str) -> list[Queue]:
    """The queues a worker consumes when started without `-Q`: all of them."""
    return [Queue(name, Exchange(name), routing_key=name) for name in queue_names(default)]


def route_task(
    name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any = None, **kw: Any
) -> dict[str, str]:
    """Celery router (CELERY_TASK_ROUTES). Reads the default queue on every call,
    because the test suite renames it per process after the app is configured."""
    from kubeprobe_site.celery import app

    default = app.conf.task_default_queue
    if name == HEARTBEAT_TASK:
        kind = (kwargs or {}).get("kind", DEFAULT_KIND)
        return {"queue": queue_name(default, kind) if kind in KINDS else default}
    return {"queue": queue_for(name, default)}
