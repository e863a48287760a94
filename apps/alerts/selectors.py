"""Alert reads: the rule for a pair, its recent runs, matcher targets, silences, dependencies."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from apps.alerts.evaluation import RuleView, RunView
from apps.alerts.matchers import Target, matches
from apps.alerts.models import PROBLEM_STATES, Alert, AlertRule, Silence
from apps.catalog.models import Case
from apps.clusters.models import Cluster
from apps.clusters.selectors import cluster_groups_of
from apps.runs.models import FINISHED_STATES, ProbeRun

SPECIFICITY = ("binding", "case", "cluster", "group")
MAX_WINDOW_RUNS = 1000


def rule_for(*, case: Case, cluster: Cluster, binding_id: int | None) -> AlertRule | None:
    """The most specific enabled rule: binding, case, cluster, group, then the default."""
    candidates = list(
        AlertRule.objects.filter(enabled=True)
        .filter(
            Q(binding_id=binding_id, binding_id__isnull=False)
            | Q(case=case)
            | Q(cluster=cluster)
            | Q(group__isnull=False)
            | Q(binding__isnull=True, case__isnull=True, cluster__isnull=True, group__isnull=True)
        )
        .order_by("pk")
    )
    group_rules = [r for r in candidates if r.group_id]
    if group_rules:
        mine = {g.pk for g in cluster_groups_of(cluster=cluster, among=_groups_of(group_rules))}
        candidates = [r for r in candidates if not r.group_id or r.group_id in mine]

    def rank(rule: AlertRule) -> int:
        for index, field in enumerate(SPECIFICITY):
            if getattr(rule, f"{field}_id"):
                return index
        return len(SPECIFICITY)

    return min(candidates, key=rank, default=None)


def _groups_of(rules: list[AlertRule]) -> Any:
    from apps.clusters.models import ClusterGroup

    return ClusterGroup.objects.filter(pk__in={r.group_id for r in rules})


ROOT_CAUSE_FIELDS = (
    "root_cause",
    "root_cause_component",
    "root_cause_confidence",
    "root_cause_source",
    "root_cause_summary",
)


# What judging reads of a run (RunView), for one pair or a batch.
RUN_FIELDS = (
    "id",
    "state",
    "finished_at",
    "steps",
    "errors",
    "reason",
    "duration_ms",
    *ROOT_CAUSE_FIELDS,
)


def recent_runs(*, case_id: int, cluster_id: int, rule: RuleView, now: datetime) -> list[RunView]:
    """Finished runs, newest first: enough for the rule's counts, or its time window."""
    qs = ProbeRun.objects.filter(
        case_id=case_id, cluster_id=cluster_id, state__in=FINISHED_STATES
    ).order_by("-created_at", "-id")
    limit = rule.runs_needed()
    if rule.window_minutes:
        since = now - timedelta(minutes=rule.window_minutes)
        limit = max(limit, qs.filter(finished_at__gte=since).count())
    return [RunView(**row) for row in qs.values(*RUN_FIELDS)[: min(limit, MAX_WINDOW_RUNS)]]


def targets_of(pairs: list[tuple[Case, Cluster]]) -> dict[tuple[int, int], Target]:
    """What matchers see of many (case, cluster) pairs, in three queries whatever their number."""
    from apps.catalog.models import CaseSetMembership
    from apps.clusters.models import ClusterGroup

    cluster_ids = {cluster.pk for _, cluster in pairs}
    case_ids = {case.pk for case, _ in pairs}
    groups: dict[int, set[str]] = {pk: set() for pk in cluster_ids}
    for cluster_id, name in ClusterGroup.members.through.objects.filter(
        cluster_id__in=cluster_ids
    ).values_list("cluster_id", "clustergroup__name"):
        groups[cluster_id].add(name)
    selectors = list(ClusterGroup.objects.exclude(selector={}).values_list("name", "selector"))
    case_sets: dict[int, set[str]] = {pk: set() for pk in case_ids}
    for case_id, name in CaseSetMembership.objects.filter(case_id__in=case_ids).values_list(
        "case_id", "case_set__name"
    ):
        case_sets[case_id].add(name)
    out = {}
    for case, cluster in pairs:
        labels = dict(cluster.labels or {})
        by_selector = {
            name for name, sel in selectors if all(labels.get(k) == v for k, v in sel.items())
        }
        out[(case.pk, cluster.pk)] = Target(
            cluster=cluster.name,
            case=case.name,
            groups=frozenset(groups[cluster.pk] | by_selector),
            case_sets=frozenset(case_sets[case.pk]),
            labels=labels,
        )
    return out


def target_of(case: Case, cluster: Cluster) -> Target:
    return targets_of([(case, cluster)])[(case.pk, cluster.pk)]


def active_silences(now: datetime | None = None) -> list[Silence]:
    now = now or timezone.now()
    return list(Silence.objects.filter(starts_at__lte=now, ends_at__gt=now).order_by("ends_at"))


def silence_for(target: Target, silences: list[Silence]) -> Silence | None:
    return next((s for s in silences if matches(s.matchers, target)), None)


def active_silence(*, target: Target, now: datetime | None = None) -> Silence | None:
    return silence_for(target, active_silences(now))


def firing_dependency(*, rule: AlertRule, cluster_id: int) -> Alert | None:
    """An alert of a case this rule depends on, in trouble on the same cluster."""
    depends = [case.pk for case in rule.depends_on.all()]  # prefetched by a batch
    if not depends:
        return None
    return (
        Alert.objects.filter(case_id__in=depends, cluster_id=cluster_id, state__in=PROBLEM_STATES)
        .select_related("case")
        .first()
    )


# ------------------------------------------------------------------ many pairs at once
# The post-run pipeline judges batches of pairs (apps/alerts/batch.py): these read
# what rule_for, recent_runs and the newest binding read, for every pair of a batch
# in a fixed number of queries.

Pair = tuple[int, int]


def _pair_arrays(pairs: list[Pair]) -> tuple[list[int], list[int]]:
    return [case for case, _ in pairs], [cluster for _, cluster in pairs]


def newest_bindings(*, pairs: list[Pair]) -> dict[Pair, int | None]:
    """The binding of each pair's newest run (any state), as alert_evaluate reads it."""
    from django.db import connection

    table = connection.ops.quote_name(ProbeRun._meta.db_table)
    sql = (
        "SELECT p.case_id, p.cluster_id, (SELECT r.binding_id FROM "  # noqa: S608 (table name)
        f"{table} r WHERE r.case_id = p.case_id AND r.cluster_id = p.cluster_id"
        " ORDER BY r.created_at DESC, r.id DESC LIMIT 1)"
        " FROM unnest(%s::bigint[], %s::bigint[]) AS p(case_id, cluster_id)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, list(_pair_arrays(pairs)))
        return {(case, cluster): binding for case, cluster, binding in cursor.fetchall()}


def rules_for_pairs(
    *, pairs: list[tuple[Case, Cluster, int | None]]
) -> dict[Pair, AlertRule | None]:
    """rule_for() of many (case, cluster, newest binding): the enabled rules read once,
    group membership once per cluster that a group rule could concern."""
    rules = list(
        AlertRule.objects.filter(enabled=True).prefetch_related("depends_on").order_by("pk")
    )
    group_rules = [r for r in rules if r.group_id]
    mine: dict[int, set[int]] = {}
    if group_rules:
        among = _groups_of(group_rules)
        for _, cluster, _ in pairs:
            if cluster.pk not in mine:
                mine[cluster.pk] = {g.pk for g in cluster_groups_of(cluster=cluster, among=among)}

    def applies(rule: AlertRule, case: Case, cluster: Cluster, binding_id: int | None) -> bool:
        if rule.binding_id is not None:
            return binding_id is not None and rule.binding_id == binding_id
        if rule.case_id is not None:
            return rule.case_id == case.pk
        if rule.cluster_id is not None:
            return rule.cluster_id == cluster.pk
        if rule.group_id is not None:
            return rule.group_id in mine.get(cluster.pk, set())
        return True  # the default scope

    def rank(rule: AlertRule) -> int:
        for index, field in enumerate(SPECIFICITY):
            if getattr(rule, f"{field}_id"):
                return index
        return len(SPECIFICITY)

    return {
        (case.pk, cluster.pk): min(
            (r for r in rules if applies(r, case, cluster, binding_id)), key=rank, default=None
        )
        for case, cluster, binding_id in pairs
    }


def recent_runs_many(*, rules: dict[Pair, RuleView], now: datetime) -> dict[Pair, list[RunView]]:
    """recent_runs() of many pairs: one query (a LATERAL scan of each pair's newest runs
    in the run_case_cluster_recent index), except for time-window rules, which count."""
    from django.db import connection

    out: dict[Pair, list[RunView]] = {}
    counted = {pair: rule for pair, rule in rules.items() if rule.window_minutes}
    for (case_id, cluster_id), rule in counted.items():
        out[(case_id, cluster_id)] = recent_runs(
            case_id=case_id, cluster_id=cluster_id, rule=rule, now=now
        )
    plain = [(pair, rule) for pair, rule in rules.items() if pair not in counted]
    if not plain:
        return out
    table = connection.ops.quote_name(ProbeRun._meta.db_table)
    columns = ", ".join(f"r.{connection.ops.quote_name(f)}" for f in RUN_FIELDS)
    sql = (
        f"SELECT p.case_id, p.cluster_id, {columns} FROM unnest(%s::bigint[], %s::bigint[],"  # noqa: S608
        " %s::int[]) AS p(case_id, cluster_id, lim) CROSS JOIN LATERAL (SELECT * FROM"
        f" {table} r WHERE r.case_id = p.case_id AND r.cluster_id = p.cluster_id"
        " AND r.state = ANY(%s) ORDER BY r.created_at DESC, r.id DESC LIMIT p.lim) r"
        " ORDER BY p.case_id, p.cluster_id, r.created_at DESC, r.id DESC"
    )
    cases, clusters = _pair_arrays([pair for pair, _ in plain])
    limits = [min(rule.runs_needed(), MAX_WINDOW_RUNS) for _, rule in plain]
    for pair, _ in plain:
        out[pair] = []
    with connection.cursor() as cursor:
        cursor.execute(sql, [cases, clusters, limits, [str(s) for s in FINISHED_STATES]])
        for case_id, cluster_id, *values in cursor.fetchall():  # each pair's newest first
            row = dict(zip(RUN_FIELDS, values, strict=True))
            for field in ("steps", "errors"):  # Django has psycopg hand JSON over as text
                if isinstance(row[field], str):
                    row[field] = json.loads(row[field])
            out[(case_id, cluster_id)].append(RunView(**row))
    return out
