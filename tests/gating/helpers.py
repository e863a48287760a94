"""Building blocks of the gate tests: clusters, gating case sets, finished runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from apps.catalog.models import Case, CaseSet, CaseSetMembership
from apps.clusters.models import Cluster
from apps.gating.models import GatePolicy, GateRule
from apps.runs.models import ProbeRun, RunState, Trigger
from tests.factories import CaseFactory, CaseSetFactory


def gating_set(*cases: Case, name: str | None = None) -> CaseSet:
    case_set = CaseSetFactory(**({"name": name} if name else {}))
    CaseSetMembership.objects.bulk_create(
        [CaseSetMembership(case_set=case_set, case=c) for c in cases]
    )
    return case_set


def policy(
    rules: list[tuple[str, CaseSet]], group: Any = None, name: str = "p", **fields: Any
) -> GatePolicy:
    made = GatePolicy.objects.create(name=name, group=group, **fields)
    for component, case_set in rules:
        GateRule.objects.create(policy=made, component=component, case_set=case_set)
    return made


def finished(
    case: Case,
    cluster: Cluster,
    state: str = RunState.SUCCEEDED,
    at: datetime | None = None,
    step: str = "wait pod ready",
    error: str = "Failed to create pod sandbox: rpc error",
) -> ProbeRun:
    """A finished run of case on cluster, `at` (default now)."""
    at = at or timezone.now()
    ok = state == RunState.SUCCEEDED
    steps = [{"name": "create", "ok": True, "duration_ms": 10}]
    if not ok:
        steps.append({"name": step, "ok": False, "duration_ms": 30000, "error": error})
    run = ProbeRun.objects.create(
        case=case,
        cluster=cluster,
        trigger=Trigger.SCHEDULE,
        state=state,
        ok=ok,
        steps=steps,
        errors=[] if ok else [f"step {step} failed: {error}"],
        finished_at=at,
    )
    # created_at is auto_now_add: line it up with the finishing time for ordering.
    ProbeRun.objects.filter(pk=run.pk).update(created_at=at - timedelta(seconds=5))
    return run


def cases(n: int) -> list[Case]:
    return [CaseFactory() for _ in range(n)]
