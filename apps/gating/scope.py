"""Which policy applies to a cluster, and which cases gate a request.

A cluster gets the enabled policy of one of its groups (lowest priority number,
then name), else the enabled policy without a group, else the built-in default:
every enabled case that an enabled binding runs on the cluster (for a named
component: the bindings whose event triggers name it), results at most
KUBEPROBE_GATE_DEFAULT_MAX_AGE_SECONDS old, open incidents and open alerts deny,
failures under a silence deny too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q

from apps.catalog.models import Case, CaseSet, CaseSetMembership
from apps.clusters.models import Cluster, ClusterGroup
from apps.clusters.selectors import cluster_groups_of
from apps.gating.models import DEFAULT_POLICY_NAME, GatePolicy, GateRule
from apps.scheduling.models import Binding


class UnknownComponent(ValueError):
    """No gate rule and no binding's event trigger names this component."""


@dataclass(frozen=True)
class GateScope:
    policy: GatePolicy | None
    cases: list[Case]
    max_age: timedelta
    incident_denies: bool
    alert_denies: bool
    silenced_denies: bool

    @property
    def policy_name(self) -> str:
        return self.policy.name if self.policy else DEFAULT_POLICY_NAME


def gate_policy_for(*, cluster: Cluster) -> GatePolicy | None:
    """The policy that decides for this cluster; None: the built-in default."""
    policies = list(GatePolicy.objects.filter(enabled=True).order_by("priority", "name"))
    grouped = [p for p in policies if p.group_id]
    if grouped:
        among = ClusterGroup.objects.filter(pk__in={p.group_id for p in grouped})
        mine = {g.pk for g in cluster_groups_of(cluster=cluster, among=among)}
        for policy in grouped:
            if policy.group_id in mine:
                return policy
    return next((p for p in policies if not p.group_id), None)


def gate_known_components() -> set[str]:
    """Components the gate can answer for: named by a gate rule or a binding's event trigger."""
    known = set(GateRule.objects.exclude(component="").values_list("component", flat=True))
    for triggers in Binding.objects.exclude(event_triggers=[]).values_list(
        "event_triggers", flat=True
    ):
        known.update(t.get("component") for t in triggers if t.get("component"))
    return known


def _bindings_on(cluster: Cluster) -> list[Binding]:
    groups = cluster_groups_of(cluster=cluster)
    return list(
        Binding.objects.filter(enabled=True)
        .filter(Q(clusters=cluster) | Q(groups__in=[g.pk for g in groups]))
        .distinct()
        .order_by("pk")
    )


def _enabled_cases(condition: Q) -> list[Case]:
    return list(Case.objects.filter(condition, enabled=True).distinct().order_by("name"))


def _default_cases(cluster: Cluster, component: str) -> list[Case]:
    bindings = _bindings_on(cluster)
    if component:
        bindings = [
            b for b in bindings if any(t.get("component") == component for t in b.event_triggers)
        ]
    ids = [b.pk for b in bindings]
    if not ids:
        return []
    return _enabled_cases(Q(bindings__in=ids) | Q(case_sets__bindings__in=ids))


def _policy_cases(policy: GatePolicy, component: str) -> list[Case]:
    rules = policy.rules.all()
    if component:
        rules = rules.filter(component__in=["", component])
    set_ids = list(rules.values_list("case_set_id", flat=True))
    members = CaseSetMembership.objects.filter(case_set_id__in=set_ids).values("case_id")
    return _enabled_cases(Q(pk__in=members))


def gate_scope(
    *, cluster: Cluster, component: str = "", case_set: CaseSet | None = None
) -> GateScope:
    """The policy and the gating cases of a request; UnknownComponent for a typo."""
    if component and component not in gate_known_components():
        raise UnknownComponent(component)
    policy = gate_policy_for(cluster=cluster)
    if case_set is not None:
        cases = _enabled_cases(Q(pk__in=case_set.memberships.values("case_id")))
    elif policy is not None:
        cases = _policy_cases(policy, component)
    else:
        cases = _default_cases(cluster, component)
    if policy is None:
        return GateScope(
            policy=None,
            cases=cases,
            max_age=timedelta(seconds=settings.KUBEPROBE_GATE_DEFAULT_MAX_AGE_SECONDS),
            incident_denies=True,
            alert_denies=True,
            silenced_denies=True,
        )
    return GateScope(
        policy=policy,
        cases=cases,
        max_age=timedelta(seconds=policy.max_result_age_seconds),
        incident_denies=policy.incident_denies,
        alert_denies=policy.alert_denies,
        silenced_denies=policy.silenced_denies,
    )
