"""Filter sets of the gate's API (the admin's changelists filter on the same fields)."""

from __future__ import annotations

import django_filters

from apps.core.filters import FilterSet
from apps.gating.models import (
    CheckState,
    DecisionSource,
    GateCheck,
    GateDecision,
    GatePolicy,
    Verdict,
)


class GateDecisionFilter(FilterSet):
    cluster = django_filters.CharFilter(field_name="cluster__name")
    component = django_filters.CharFilter()
    verdict = django_filters.MultipleChoiceFilter(choices=Verdict.choices)
    source = django_filters.MultipleChoiceFilter(choices=DecisionSource.choices)
    policy = django_filters.CharFilter(field_name="policy_name")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = GateDecision
        fields = ["cluster", "component", "verdict", "source", "policy", "since", "until"]


class GateCheckFilter(FilterSet):
    cluster = django_filters.CharFilter(field_name="cluster__name")
    component = django_filters.CharFilter()
    state = django_filters.MultipleChoiceFilter(choices=CheckState.choices)
    verdict = django_filters.MultipleChoiceFilter(choices=Verdict.choices)

    class Meta:
        model = GateCheck
        fields = ["cluster", "component", "state", "verdict"]


class GatePolicyFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    group = django_filters.CharFilter(field_name="group__name")
    component = django_filters.CharFilter(field_name="rules__component", distinct=True)
    case_set = django_filters.CharFilter(field_name="rules__case_set__name", distinct=True)

    class Meta:
        model = GatePolicy
        fields = ["name", "group", "component", "case_set", "enabled"]
