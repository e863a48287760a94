"""Dashboards listen for changes outside the post-run pipeline and push them.

Finished runs are pushed by the pipeline itself (apps/postrun/pipeline.py).
Here: alert changes by time or by hand (pair_changed: escalation, expiry,
silences, acknowledgements) and runs that were dispatched or started
(run_state_changed, sent by workers).
"""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from apps.alerts.signals import pair_changed
from apps.dashboard import push
from apps.resident.signals import samples_stored
from apps.runs.models import RunState
from apps.runs.signals import run_state_changed, runs_state_changed

LIVE_RUN_STATES = frozenset({RunState.DISPATCHED, RunState.RUNNING})


@receiver(pair_changed, dispatch_uid="dashboard.push_pair")
def push_pair_changed(
    sender: Any,
    case_id: int,
    cluster_id: int,
    state: str,
    severity: str,
    latest_state: str | None = None,
    latest_run_id: int | None = None,
    **kwargs: Any,
) -> None:
    push.push_pair(
        case_id=case_id,
        cluster_id=cluster_id,
        state=state,
        severity=severity,
        latest_state=latest_state,
        latest_run_id=latest_run_id,
    )


@receiver(run_state_changed, dispatch_uid="dashboard.push_run_state")
def push_run_state_changed(
    sender: Any, run_id: int, case_id: int, cluster_id: int, state: str, **kwargs: Any
) -> None:
    if state not in LIVE_RUN_STATES:
        return
    push.push_run_state(run_id=run_id, case_id=case_id, cluster_id=cluster_id, state=str(state))


@receiver(runs_state_changed, dispatch_uid="dashboard.push_runs_state")
def push_runs_state_changed(
    sender: Any, runs: list[tuple[int, int, int]], state: str, **kwargs: Any
) -> None:
    if state in LIVE_RUN_STATES and runs:
        push.push_run_states(runs=runs, state=str(state))


@receiver(samples_stored, dispatch_uid="dashboard.push_samples")
def push_resident_samples(
    sender: Any,
    probe_id: int,
    cluster_id: int,
    windows: list[dict[str, Any]],
    state: str,
    **kwargs: Any,
) -> None:
    points = [[w["t"], w["count"], w["failures"], w["p50"], w["p99"]] for w in windows]
    push.push_samples(probe_id=probe_id, cluster_id=cluster_id, points=points, state=state)
