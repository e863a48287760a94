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
from django.utils.translation import gettext as _

from apps.alerts.evaluation import RunView, failure_detail
from apps.alerts.models import PROBLEM_STATES, Alert, AlertState
from apps.alerts.selectors import active_silences, silence_for, targets_of
from apps.catalog.models import Case
from apps.clusters.models import Cluster
from apps.core.said import render_field
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


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return _("%(s)ds") % {"s": seconds}
    if seconds < 7200:
        return _("%(m)dm") % {"m": seconds // 60}
    return _("%(h)dh %(m)dm") % {"h": seconds // 3600, "m": seconds % 3600 // 60}


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
        reasons.append(
            {
                "kind": "cluster_disabled",
                "effect": UNKNOWN,
                "message": _("Cluster %(cluster)s is disabled: nothing probes it.")
                % {"cluster": cluster.name},
            }
        )
    if not scope.cases:
        reasons.append(
            {
                "kind": "no_cases",
                "effect": UNKNOWN,
                "message": _("No enabled case gates this request under policy %(policy)s.")
                % {"policy": scope.policy_name},
            }
        )
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
            case_reasons = [
                {
                    "kind": "no_result",
                    "effect": UNKNOWN,
                    "case": case.name,
                    "message": _("%(case)s: the check started no run of it.") % {"case": case.name},
                }
            ]
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
        return [
            {
                "kind": "no_result",
                "effect": UNKNOWN,
                "case": name,
                "message": _("%(case)s: no finished run on this cluster yet.") % {"case": name},
            }
        ]
    if run.state not in FINISHED_STATES:
        return [
            {
                "kind": "running",
                "effect": UNKNOWN,
                "case": name,
                "run": run.pk,
                "message": _("%(case)s: run %(run)s was still %(state)s at the check's timeout.")
                % {"case": name, "run": run.pk, "state": run.state},
            }
        ]
    age = (now - run.finished_at).total_seconds() if run.finished_at else 0.0
    if age > scope.max_age.total_seconds():
        return [
            {
                "kind": "stale",
                "effect": UNKNOWN,
                "case": name,
                "run": run.pk,
                "age_seconds": int(age),
                "message": _(
                    "%(case)s: the latest result is %(age)s old; policy %(policy)s accepts "
                    "at most %(max_age)s."
                )
                % {
                    "case": name,
                    "age": _age(age),
                    "policy": scope.policy_name,
                    "max_age": _age(scope.max_age.total_seconds()),
                },
            }
        ]
    quiet = silence is not None and not scope.silenced_denies
    under = (
        " " + _("(silenced: %(silence)s; not counted)") % {"silence": silence.comment or silence}
        if quiet
        else ""
    )
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
        at = " " + _("at step '%(step)s'") % {"step": step} if step else ""
        return [
            {
                "kind": "failing",
                "effect": effect,
                "case": name,
                "run": run.pk,
                "state": run.state,
                "step": step,
                "error": error,
                "message": f"{name}: {run.state}{at}: {error}{under}",
            }
        ]
    # The case passed, but its alert judged this very result and is still open
    # (a rule that resolves after several successes). An alert that has not
    # judged it yet (the pipeline is a moment behind) is not held against it.
    if alert is not None and alert.latest_run_id == run.pk and scope.alert_denies:
        silenced = alert.state == AlertState.SILENCED and not scope.silenced_denies
        return [
            {
                "kind": "alert",
                "effect": NONE if silenced else DENY,
                "case": name,
                "alert": alert.pk,
                "state": alert.state,
                "message": _("%(case)s: its alert is still %(state)s (%(reason)s)")
                % {
                    "case": name,
                    "state": str(alert.get_state_display()).lower(),
                    "reason": render_field(alert, "reason"),
                },
            }
        ]
    return []
