"""Run creation: pending runs in bulk per request (tick, event, click), dispatched after commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from apps.catalog.models import Case
from apps.clusters.models import Cluster
from apps.runs.models import ACTIVE_STATES, ProbeRun, RunState, Trigger


@dataclass
class CreateResult:
    created: list[int] = field(default_factory=list)
    skipped: int = 0  # previous run of the same case on the same cluster still active
    duplicates: int = 0  # already created by an earlier identical request (repeated tick)


def redispatch_window(period: timedelta | None) -> timedelta:
    """How long a pending run waits for its dispatch before it is sent again.

    Twice the binding's period: a lost dispatch is noticed within about two
    ticks (each skipped while the run stays active), and frequent schedules
    recover in seconds instead of a fixed minute. Never below the floor, so a
    dispatch queue that is merely busy is not flooded with second copies.
    """
    floor = timedelta(seconds=settings.KUBEPROBE_REDISPATCH_MIN_SECONDS)
    return max(2 * period, floor) if period else floor


def _enqueue_dispatch(run_ids: Sequence[int]) -> None:
    from apps.runs.tasks import dispatch_run

    for run_id in run_ids:
        dispatch_run.delay(run_id)


@transaction.atomic
def runs_create(
    *,
    pairs: Iterable[tuple[Case, Cluster]],
    trigger: str,
    key: str,
    binding_id: int | None = None,
    event_id: int | None = None,
    requested_by_id: int | None = None,
    skip_if_active: bool = True,
    redispatch_after: timedelta | None = None,
) -> CreateResult:
    """Create one pending run per (case, cluster) in bulk and dispatch them after commit.

    `key` identifies the request (a binding's tick, an event, a manual click):
    each run's idempotency key is `key:case:cluster`, so repeating the same
    request creates nothing twice, even from two workers at once.
    `redispatch_after`: see redispatch_window (default: its floor).
    """
    result = CreateResult()
    wanted = {f"{key}:{case.pk}:{cluster.pk}": (case, cluster) for case, cluster in pairs}
    if not wanted:
        return result
    existing = set(
        ProbeRun.objects.filter(idempotency_key__in=wanted).values_list(
            "idempotency_key", flat=True
        )
    )
    result.duplicates = len(existing)
    todo = {k: v for k, v in wanted.items() if k not in existing}
    if skip_if_active and todo:
        case_ids = {case.pk for case, _ in todo.values()}
        cluster_ids = {cluster.pk for _, cluster in todo.values()}
        active = set(
            ProbeRun.objects.filter(
                state__in=ACTIVE_STATES, case_id__in=case_ids, cluster_id__in=cluster_ids
            ).values_list("case_id", "cluster_id")
        )
        before = len(todo)
        todo = {k: (c, k8s) for k, (c, k8s) in todo.items() if (c.pk, k8s.pk) not in active}
        result.skipped = before - len(todo)
    ProbeRun.objects.bulk_create(
        [
            ProbeRun(
                case=case,
                cluster=cluster,
                binding_id=binding_id,
                event_id=event_id,
                trigger=trigger,
                idempotency_key=k,
                requested_by_id=requested_by_id,
                executor=cluster.executor,
                redispatch_after=redispatch_after or redispatch_window(None),
            )
            for k, (case, cluster) in todo.items()
        ],
        batch_size=2000,
        ignore_conflicts=True,  # a racing twin inserted the same keys first
    )
    result.created = list(
        ProbeRun.objects.filter(idempotency_key__in=todo, state=RunState.PENDING).values_list(
            "pk", flat=True
        )
    )
    created = list(result.created)
    transaction.on_commit(lambda: _enqueue_dispatch(created))
    return result


def manual_key() -> str:
    return f"manual:{uuid.uuid4().hex}"


def runs_for_manual_request(
    *, cases: Sequence[Case], clusters: Sequence[Cluster], requested_by_id: int | None
) -> CreateResult:
    pairs = [(case, cluster) for case in cases for cluster in clusters]
    return runs_create(
        pairs=pairs, trigger=Trigger.MANUAL, key=manual_key(), requested_by_id=requested_by_id
    )
