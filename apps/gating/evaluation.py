"""The gate's verdict for one cluster: from the gating cases' latest results, the
open alerts that judged them, silences and open incidents.

Each reason says what it is (`kind`), what it does to the verdict (`effect`:
deny, unknown, or none when it is only listed) and a sentence for people
(`message`). Any deny-reason denies; otherwise any unknown-reason (a case
without a result, one too old, a check's run still going) makes the answer
unknown; otherwise the gate allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, Subquery

from apps.alerts.evaluation import RunView, failure_detail
from apps.alerts.models import PROBLEM_STATES, Alert, AlertState
from apps.alerts.said import STATE
from apps.alerts.selectors import active_silences, silence_for, targets_of
from apps.catalog.models import Case
from apps.clusters.models import Cluster
from apps.core.said import Said, say, stored, word
from apps.gating import said as m
from apps.gating.models import Verdict
from apps.gating.scope import GateScope
from apps.runs.models import FINISHED_STATES, ProbeRun, RunState

ERROR_CHARS = 300
DENY, UNKNOWN, NONE = "deny", "unknown", "none"


@dataclass
class GateAnswer:
    verdict: str
    reasons: list[dict[str, Any]] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)


def _age(seconds: float) -> Said:
    seconds = int(seconds)
    if seconds < 120:
        return say(m.SECONDS, s=seconds)
    if seconds < 7200:
        return say(m.MINUTES, m=seconds // 60)
    return say(m.HOURS, h=seconds // 3600, m=seconds % 3600 // 60)


def said_reason(line: Said, **reason: Any) -> dict[str, Any]:
    """A reason whose `message` is kept in English with its params (apps/core/said.py);
    readers show it with render_items()."""
    text, params = stored(line)
    return {**reason, "message": text, "message_params": params}


def _newest_ids(cluster: Cluster, case_ids: list[int]) -> list[int]:
    """The newest finished run of each case on the cluster, in one query."""
    newest = (
        ProbeRun.objects.filter(case_id=OuterRef("pk"), cluster=cluster, state__in=FINISHED_STATES)
        .order_by("-created_at", "-id")
        .values("pk")[:1]
    )
    rows = Case.objects.filter(pk__in=case_ids).annotate(run_id=Subquery(newest))
    return [pk for pk in rows.values_list("run_id", flat=True) if pk]


def _runs_by_case(run_ids: list[int]) -> dict[int, ProbeRun]:
    runs = ProbeRun.objects.filter(pk__in=run_ids).only(
        "id", "case_id", "cluster_id", "state", "finished_at", "steps", "errors", "reason"
    )
    return {run.case_id: run for run in runs}


def gate_evaluate(
    *,
    cluster: Cluster,
    scope: GateScope,
    now: datetime,
    check_runs: list[ProbeRun] | None = None,
    incident_reasons: list[dict[str, Any]] | None = None,
) -> GateAnswer:
    """The verdict. `check_runs`: a check's own runs stand for each case's result
    (one not finished yet is unknown); otherwise each case's newest finished run."""
    reasons: list[dict[str, Any]] = []
    if not cluster.enabled:
        line = say(m.CLUSTER_DISABLED, cluster=cluster.name)
        reasons.append(said_reason(line, kind="cluster_disabled", effect=UNKNOWN))
    if not scope.cases:
        line = say(m.NO_CASES, policy=scope.policy_name)
        reasons.append(said_reason(line, kind="no_cases", effect=UNKNOWN))
    case_ids = [case.pk for case in scope.cases]
    if check_runs is not None:
        runs = {run.case_id: run for run in check_runs}
    else:
        runs = _runs_by_case(_newest_ids(cluster, case_ids))
    silences = active_silences(now)
    targets = targets_of([(case, cluster) for case in scope.cases]) if silences else {}
    alerts = {
        alert.case_id: alert
        for alert in Alert.objects.filter(
            cluster=cluster, case_id__in=case_ids, state__in=PROBLEM_STATES
        )
    }
    cases = []
    for case in scope.cases:
        run = runs.get(case.pk)
        silence = silence_for(targets[(case.pk, cluster.pk)], silences) if silences else None
        case_reasons = _case_reasons(case.name, run, alerts.get(case.pk), silence, scope, now)
        if check_runs is not None and run is None:
            line = say(m.NO_RUN_IN_CHECK, case=case.name)
            case_reasons = [said_reason(line, kind="no_result", effect=UNKNOWN, case=case.name)]
        reasons.extend(case_reasons)
        cases.append(
            {
                "case": case.name,
                "run": run.pk if run else None,
                "state": run.state if run else None,
                "finished_at": run.finished_at.isoformat() if run and run.finished_at else None,
                "verdict": _combine(case_reasons),
            }
        )
    reasons.extend(incident_reasons or [])
    return GateAnswer(verdict=_combine(reasons), reasons=reasons, cases=cases)


def _combine(reasons: list[dict[str, Any]]) -> str:
    effects = {r["effect"] for r in reasons}
    if DENY in effects:
        return Verdict.DENY
    if UNKNOWN in effects:
        return Verdict.UNKNOWN
    return Verdict.ALLOW


def _case_reasons(
    name: str,
    run: ProbeRun | None,
    alert: Alert | None,
    silence: Any,
    scope: GateScope,
    now: datetime,
) -> list[dict[str, Any]]:
    if run is None:
        line = say(m.NO_RESULT, case=name)
        return [said_reason(line, kind="no_result", effect=UNKNOWN, case=name)]
    if run.state not in FINISHED_STATES:
        line = say(m.RUNNING, case=name, run=run.pk, state=word(m.RUN_STATE, run.state))
        return [said_reason(line, kind="running", effect=UNKNOWN, case=name, run=run.pk)]
    age = (now - run.finished_at).total_seconds() if run.finished_at else 0.0
    if age > scope.max_age.total_seconds():
        line = say(
            m.STALE,
            case=name,
            age=_age(age),
            policy=scope.policy_name,
            max_age=_age(scope.max_age.total_seconds()),
        )
        return [
            said_reason(
                line, kind="stale", effect=UNKNOWN, case=name, run=run.pk, age_seconds=int(age)
            )
        ]
    quiet = silence is not None and not scope.silenced_denies
    under = say(m.SILENCED, silence=silence.comment or str(silence)) if quiet else None
    effect = NONE if quiet else DENY
    if run.state != RunState.SUCCEEDED:
        step, error = failure_detail(
            RunView(
                id=run.pk,
                state=run.state,
                finished_at=run.finished_at,
                steps=run.steps or [],
                errors=run.errors or [],
                reason=run.reason,
            )
        )
        error = error[:ERROR_CHARS]
        state = word(m.RUN_STATE, run.state)
        line = (
            say(m.FAILING_AT, case=name, state=state, at=say(m.AT_STEP, step=step), error=error)
            if step
            else say(m.FAILING, case=name, state=state, error=error)
        )
        if under is not None:
            line = say(m.SUFFIXED, text=line, suffix=under)
        return [
            said_reason(
                line,
                kind="failing",
                effect=effect,
                case=name,
                run=run.pk,
                state=run.state,
                step=step,
                error=error,
            )
        ]
    # The case passed, but its alert judged this very result and is still open
    # (a rule that resolves after several successes). An alert that has not
    # judged it yet (the pipeline is a moment behind) is not held against it.
    if alert is not None and alert.latest_run_id == run.pk and scope.alert_denies:
        silenced = alert.state == AlertState.SILENCED and not scope.silenced_denies
        why = Said(alert.reason_params) if alert.reason_params else alert.reason
        line = say(m.ALERT_OPEN, case=name, state=word(STATE, alert.state), reason=why)
        effect = NONE if silenced else DENY
        return [
            said_reason(
                line, kind="alert", effect=effect, case=name, alert=alert.pk, state=alert.state
            )
        ]
    return []
