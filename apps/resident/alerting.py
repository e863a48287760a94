"""Alerts over resident series, judged every few seconds by a beat task.

Each enabled probe with a rule (its own, else the first enabled global rule by
name) is judged per cluster over the rule's window: availability below X %,
p99 latency above Y ms (the count-weighted mean of the windows' p99s, as the
series show it), or no samples for N minutes from a cluster that reported
before. The verdict goes through the alert state machine of run alerts
(apps.alerts.services.alert_record_verdict), on the Alert row of the probe's
own subject case and the cluster, so silences, flapping, channels, the alerts
API and the dashboards treat it like any alert. Firing needs a condition to
hold; resolving needs data within the window and no condition holding.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.utils import timezone

from apps.alerts.evaluation import Judgement
from apps.alerts.models import PROBLEM_STATES, Alert, AlertState
from apps.alerts.said import LAST_MINUTES
from apps.alerts.services import alert_record_verdict
from apps.core.said import Said, say
from apps.resident import said as m
from apps.resident import storage
from apps.resident.models import ResidentAlertRule, ResidentProbe, ResidentTarget


def _rules_by_probe() -> dict[int, ResidentAlertRule]:
    rules = list(ResidentAlertRule.objects.filter(enabled=True).order_by("name"))
    fallback = next((r for r in rules if r.probe_id is None), None)
    own = {r.probe_id: r for r in reversed(rules) if r.probe_id is not None}
    out = {}
    for probe_id in ResidentProbe.objects.filter(
        enabled=True, alert_case__isnull=False
    ).values_list("pk", flat=True):
        rule = own.get(probe_id) or fallback
        if rule is not None:
            out[probe_id] = rule
    return out


def resident_verdict(
    *,
    rule: ResidentAlertRule,
    totals: storage.Row | None,
    last_report_at: datetime | None,
    now: datetime,
) -> Judgement:
    reasons: list[Said] = []
    step = error = ""
    count = totals.count if totals else 0
    scope = say(LAST_MINUTES, minutes=rule.window_minutes)
    if count and totals is not None:
        availability = 100.0 * (1 - totals.failures / count)
        if rule.availability_below is not None and availability < rule.availability_below:
            reasons.append(
                say(
                    m.AVAILABILITY,
                    rate=f"{availability:.2f}",
                    scope=scope,
                    limit=f"{rule.availability_below:g}",
                )
            )
            step, error = "availability", f"{totals.failures} of {count} samples failed"
        p99 = totals.p99_sum / count
        if rule.latency_p99_above_ms is not None and p99 > rule.latency_p99_above_ms:
            reasons.append(
                say(m.P99, p99=f"{p99:.1f}", scope=scope, limit=f"{rule.latency_p99_above_ms:g}")
            )
            if not step:
                step, error = "latency", f"p99 {p99:.1f} ms"
    silent_for = now - last_report_at if last_report_at else None
    if (
        rule.no_data_minutes is not None
        and silent_for is not None
        and silent_for > timedelta(minutes=rule.no_data_minutes)
    ):
        minutes = silent_for.total_seconds() / 60
        reasons.append(say(m.NO_SAMPLES, minutes=f"{minutes:.0f}"))
        if not step:
            step, error = "report", f"the resident probe sent nothing for {minutes:.0f} min"
    return Judgement(
        firing=bool(reasons),
        healthy=not reasons and count > 0,
        reasons=tuple(reasons),
        run=None,
        step=step,
        error=error,
    )


def resident_alerts_judge(*, now: datetime | None = None) -> int:
    """Judge every (probe, cluster) that reported; returns how many alerts changed state.

    One aggregate query per distinct rule window, one for the targets and one for
    their alerts; only pairs whose state must change take the alert's row lock.
    """
    now = now or timezone.now()
    rules = _rules_by_probe()
    if not rules:
        return 0
    subjects = dict(ResidentProbe.objects.filter(pk__in=rules).values_list("pk", "alert_case_id"))
    by_window: dict[int, list[int]] = defaultdict(list)
    for probe_id, rule in rules.items():
        by_window[rule.window_minutes].append(probe_id)
    totals: dict[tuple[int, int], storage.Row] = {}
    for minutes, probe_ids in by_window.items():
        totals.update(
            storage.totals_since(since=now - timedelta(minutes=minutes), probe_ids=probe_ids)
        )
    states = {
        (case_id, cluster_id): state
        for case_id, cluster_id, state in Alert.objects.filter(
            case_id__in=subjects.values()
        ).values_list("case_id", "cluster_id", "state")
    }
    changed = 0
    targets = ResidentTarget.objects.filter(
        probe_id__in=rules, last_report_at__isnull=False
    ).values_list("probe_id", "cluster_id", "last_report_at")
    for probe_id, cluster_id, last_report_at in targets:
        rule = rules[probe_id]
        verdict = resident_verdict(
            rule=rule,
            totals=totals.get((probe_id, cluster_id)),
            last_report_at=last_report_at,
            now=now,
        )
        state = states.get((subjects[probe_id], cluster_id), AlertState.OK)
        must_fire = verdict.firing and state == AlertState.OK
        must_resolve = verdict.healthy and state in PROBLEM_STATES
        if must_fire or must_resolve:
            alert_record_verdict(
                case_id=subjects[probe_id],
                cluster_id=cluster_id,
                verdict=verdict,
                severity=rule.severity,
                now=now,
            )
            changed += 1
    return changed
