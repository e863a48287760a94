"""Gate writes: decisions (each answer recorded with who asked and why) and checks."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import CaseSet
from apps.clusters.models import Cluster
from apps.core.models import ApiToken
from apps.gating.evaluation import gate_evaluate
from apps.gating.incidents import incident_reasons
from apps.gating.models import CheckState, DecisionSource, GateCheck, GateDecision
from apps.gating.scope import GateScope, UnknownComponent, gate_scope
from apps.runs.models import ACTIVE_STATES, FINISHED_STATES, ProbeRun, Trigger
from apps.runs.services import runs_create
from apps.scheduling.models import Event


def _asked_by(user: Any, token: ApiToken | None) -> str:
    name = getattr(user, "username", "") or ""
    if token is not None:
        return f"{name} (token {token.name})" if name else f"token {token.name}"
    return name


def _record(
    *,
    cluster: Cluster,
    component: str,
    case_set: CaseSet | None,
    scope: GateScope,
    source: str,
    user: Any,
    token: ApiToken | None,
    now: datetime,
    check: GateCheck | None = None,
    check_runs: list[ProbeRun] | None = None,
    asked_by: str = "",
) -> GateDecision:
    incidents = incident_reasons(cluster=cluster, denies=scope.incident_denies)
    answer = gate_evaluate(
        cluster=cluster, scope=scope, now=now, check_runs=check_runs, incident_reasons=incidents
    )
    user = user if getattr(user, "pk", None) else None
    return GateDecision.objects.create(
        cluster=cluster,
        component=component,
        verdict=answer.verdict,
        reasons=answer.reasons,
        inputs={
            "cluster": cluster.name,
            "component": component,
            "case_set": case_set.name if case_set else None,
            "policy": scope.policy_name,
            "max_result_age_seconds": int(scope.max_age.total_seconds()),
            "cases": answer.cases,
            "check": check.pk if check else None,
        },
        policy_name=scope.policy_name,
        source=source,
        user=user,
        token=token,
        asked_by=asked_by or _asked_by(user, token),
        gate_check=check,
    )


def gate_decide(
    *,
    cluster: Cluster,
    component: str = "",
    case_set: CaseSet | None = None,
    source: str = DecisionSource.API,
    user: Any = None,
    token: ApiToken | None = None,
    asked_by: str = "",
    now: datetime | None = None,
) -> GateDecision:
    """Decide from what is known now, and record it. UnknownComponent for a typo.
    `asked_by`: who asked, when no user or token says it (a shell)."""
    scope = gate_scope(cluster=cluster, component=component, case_set=case_set)
    return _record(
        cluster=cluster,
        component=component,
        case_set=case_set,
        scope=scope,
        source=source,
        user=user,
        token=token,
        now=now or timezone.now(),
        asked_by=asked_by,
    )


@transaction.atomic
def gate_check_start(
    *,
    cluster: Cluster,
    timeout_seconds: int,
    component: str = "",
    case_set: CaseSet | None = None,
    user: Any = None,
    token: ApiToken | None = None,
    event: Event | None = None,
    source: str = DecisionSource.CHECK,
    asked_by: str = "",
) -> GateCheck:
    """Start the gate's cases on the cluster now (dispatched after commit). A case
    already running there is not started twice: the check waits for that run."""
    scope = gate_scope(cluster=cluster, component=component, case_set=case_set)
    now = timezone.now()
    check = GateCheck.objects.create(
        cluster=cluster,
        component=component,
        case_set=case_set,
        timeout_seconds=timeout_seconds,
        deadline=now + timedelta(seconds=timeout_seconds),
        user=user if getattr(user, "pk", None) else None,
        token=token,
        event=event,
        source=DecisionSource.EVENT if event else source,
        asked_by=asked_by or _asked_by(user, token) or (f"event {event.pk}" if event else ""),
    )
    result = runs_create(
        pairs=[(case, cluster) for case in scope.cases],
        trigger=Trigger.GATE,
        key=f"gate:{check.pk}",
        event_id=event.pk if event else None,
        requested_by_id=check.user_id,
    )
    run_ids = list(result.created)
    started = set(ProbeRun.objects.filter(pk__in=run_ids).values_list("case_id", flat=True))
    for case in scope.cases:
        if case.pk in started:
            continue
        active = (
            ProbeRun.objects.filter(case=case, cluster=cluster, state__in=ACTIVE_STATES)
            .order_by("-created_at", "-id")
            .values_list("pk", flat=True)
            .first()
        )
        if active:
            run_ids.append(active)
    check.run_ids = sorted(run_ids)
    GateCheck.objects.filter(pk=check.pk).update(run_ids=check.run_ids)
    if not run_ids:
        gate_check_refresh(check_id=check.pk)
        check.refresh_from_db()
    return check


def gate_check_refresh(*, check_id: int, now: datetime | None = None) -> GateCheck:
    """Decide a running check whose runs all finished, or whose deadline passed. Once:
    the check's row is locked, and a decided check is left as it is."""
    now = now or timezone.now()
    with transaction.atomic():
        check = (
            GateCheck.objects.select_for_update(of=("self",))
            .select_related("cluster", "case_set", "user", "token")
            .get(pk=check_id)
        )
        if check.state != CheckState.RUNNING:
            return check
        runs = list(ProbeRun.objects.filter(pk__in=check.run_ids))
        done = all(run.state in FINISHED_STATES for run in runs)
        if not done and now < check.deadline:
            return check
        scope = _scope_or_empty(check)
        decision = _record(
            cluster=check.cluster,
            component=check.component,
            case_set=check.case_set,
            scope=scope,
            source=check.source,
            user=check.user,
            token=check.token,
            now=now,
            check=check,
            check_runs=runs,
            asked_by=check.asked_by,
        )
        check.state = CheckState.FINISHED if done else CheckState.TIMED_OUT
        check.verdict = decision.verdict
        check.finished_at = now
        check.save(update_fields=["state", "verdict", "finished_at"])
        return check


def _scope_or_empty(check: GateCheck) -> GateScope:
    try:
        return gate_scope(cluster=check.cluster, component=check.component, case_set=check.case_set)
    except UnknownComponent:  # the rule naming it was removed since the check started
        return gate_scope(cluster=check.cluster, component="", case_set=check.case_set)


def gate_check_wait(*, check_id: int) -> GateCheck:
    """Re-read the check until it is decided (its runs finished or its deadline passed).
    This holds the caller (an HTTP request with `wait`, the CLI) for at most the
    check's timeout plus one poll."""
    poll = settings.KUBEPROBE_GATE_CHECK_POLL_SECONDS
    while True:
        check = gate_check_refresh(check_id=check_id)
        if check.state != CheckState.RUNNING:
            return check
        left = (check.deadline - timezone.now()).total_seconds()
        time.sleep(max(0.01, min(poll, left)))
