"""Reads of the diagnosis app: the evidence of a run, the enabled rules, incidents."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from apps.catalog.models import Case
from apps.diagnosis.models import DiagnosisRule, Incident, IncidentState
from apps.diagnosis.rules import Evidence, RuleSpec
from apps.runs.models import FINISHED_STATES, ProbeRun, RunState

FAILED_STATES = (RunState.FAILED, RunState.ERROR, RunState.TIMED_OUT)
_MODULE_PREFIX = "probe_sdk.cases."


def case_kind_of(case: Case) -> str:
    """The built-in case module a case runs (etcd, lifecycle, …), else its template's name."""
    template = case.template
    for part in template.command or []:
        if isinstance(part, str) and part.startswith(_MODULE_PREFIX):
            return part.removeprefix(_MODULE_PREFIX)
    return template.name


def _failing_step(run: ProbeRun) -> tuple[str, str]:
    """The first failed step and its error, else the run's own error."""
    for step in run.steps or []:
        if isinstance(step, dict) and not step.get("ok", True):
            return str(step.get("name", "")), str(step.get("error") or "")
    return "", ""


def evidence_of(run: ProbeRun) -> Evidence:
    """Everything known about a failed run, for the rules, the classifier and the page."""
    step, step_error = _failing_step(run)
    errors = [str(e) for e in run.errors or [] if e]
    error = "\n".join(dict.fromkeys(p for p in (step_error, *errors, run.reason) if p))
    diagnostics: dict[str, Any] = run.diagnostics if isinstance(run.diagnostics, dict) else {}
    reasons = [
        f"{diagnostics.get('reason', '')}: {diagnostics.get('message', '')}".strip(": "),
        str(diagnostics.get("status_reason", "")),
        str(diagnostics.get("unschedulable", "")),
        *(
            f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ")
            for c in diagnostics.get("containers") or []
            if isinstance(c, dict)
        ),
    ]
    events = [
        f"{e.get('type', '')} {e.get('reason', '')}: {e.get('message', '')}".strip()
        for e in diagnostics.get("events") or []
        if isinstance(e, dict)
    ]
    return Evidence(
        case_kind=case_kind_of(run.case),
        template_kind=run.case.template.kind,
        case=run.case.name,
        step=step,
        error=error,
        reasons=tuple(r for r in dict.fromkeys(reasons) if r),
        events=tuple(events),
        node=str(diagnostics.get("node") or ""),
    )


def rules_enabled() -> list[RuleSpec]:
    return [RuleSpec.of(r) for r in DiagnosisRule.objects.filter(enabled=True)]


def newest_finished_run(*, case_id: int, cluster_id: int) -> ProbeRun | None:
    return (
        ProbeRun.objects.filter(case_id=case_id, cluster_id=cluster_id, state__in=FINISHED_STATES)
        .select_related("case__template", "cluster")
        .order_by("-created_at", "-id")
        .first()
    )


def incidents_list(*, state: str = "") -> QuerySet[Incident]:
    qs = Incident.objects.select_related("case", "cluster").annotate(
        member_count=Count("members", distinct=True)
    )
    return qs.filter(state=state) if state else qs


def incidents_open_count() -> int:
    return Incident.objects.filter(state=IncidentState.OPEN).count()


def incident_detail(*, incident_id: int) -> Incident:
    return Incident.objects.select_related("case", "cluster", "labelled_by").get(pk=incident_id)


def newest_failed_runs(*, pairs: list[tuple[int, int]]) -> list[ProbeRun]:
    """Of many (case, cluster) pairs, each one's newest_finished_run() if it failed, in one
    query (found in the run_case_cluster_recent index); only failed runs are loaded, the
    only ones diagnosis wants."""
    from django.db import connection
    from django.db.models.expressions import RawSQL

    if not pairs:
        return []
    table = connection.ops.quote_name(ProbeRun._meta.db_table)
    newest = RawSQL(  # noqa: S611 (the table name; values are parameters)
        f"SELECT (SELECT r.id FROM {table} r WHERE r.case_id = p.case_id"  # noqa: S608
        " AND r.cluster_id = p.cluster_id AND r.state = ANY(%s)"
        " ORDER BY r.created_at DESC, r.id DESC LIMIT 1)"
        " FROM unnest(%s::bigint[], %s::bigint[]) AS p(case_id, cluster_id)",
        ([str(s) for s in FINISHED_STATES], [c for c, _ in pairs], [k for _, k in pairs]),
    )
    return list(
        ProbeRun.objects.filter(pk__in=newest, state__in=FAILED_STATES).select_related(
            "case__template", "cluster"
        )
    )
